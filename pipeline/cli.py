"""The planie command line: ``planie --help`` lists the stages."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from pipeline.schema import DEFAULT_SCHEMA_PATH, label_studio_config, load_schema


def _add_schema_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schema", default=str(DEFAULT_SCHEMA_PATH), help="schema YAML (default: %(default)s)")


def cmd_ls_config(args: argparse.Namespace) -> int:
    sys.stdout.write(label_studio_config(load_schema(args.schema)))
    return 0


def _expand_json(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    return files


def _documents_index(dirs: list[str]) -> dict[str, Path]:
    return {f.stem: f for d in dirs for f in sorted(Path(d).rglob("*.txt"))}


def cmd_validate(args: argparse.Namespace) -> int:
    from pipeline.validate import validate_export

    schema = load_schema(args.schema)
    documents = _documents_index(args.docs) if args.docs else None
    files = _expand_json(args.files)
    total = 0
    for f in files:
        problems = validate_export(f, schema, documents)
        for p in problems:
            print(p, file=sys.stderr)
        total += len(problems)
    print(f"{len(files)} file(s) checked, {total} problem(s)")
    return 1 if total else 0


def cmd_stats(args: argparse.Namespace) -> int:
    from pipeline.annotations import load_gold_dir

    schema = load_schema(args.schema)
    docs = load_gold_dir(args.files)
    labels = list(schema.entity_labels) + list(schema.relation_labels)
    header = ["document", "chars", *labels]
    rows = []
    totals: Counter[str] = Counter()
    for d in docs:
        c = Counter(s.label for s in d.spans) + Counter(r.label for r in d.relations)
        totals.update(c)
        totals["chars"] += len(d.text)
        rows.append([d.doc_id, str(len(d.text)), *(str(c[lab]) for lab in labels)])
    rows.append(["TOTAL", str(totals["chars"]), *(str(totals[lab]) for lab in labels)])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


def cmd_markup(args: argparse.Namespace) -> int:
    from pipeline.annotations import load_gold, write_export
    from pipeline.documents import first_difference, read_document
    from pipeline.markup import parse_markup, render_markup
    from pipeline.validate import validate_export

    if args.direction == "to-json":
        doc = read_document(args.doc)
        marked = parse_markup(Path(args.input).read_text(encoding="utf-8"), doc.doc_id, args.source or args.doc)
        if marked.text != doc.text:
            at = first_difference(doc.text, marked.text)
            line = doc.text.count("\n", 0, at) + 1
            print(
                f"{args.input}: without markup the text differs from {args.doc} at character {at} (line {line}): "
                f"document {doc.text[at : at + 20]!r} vs markup {marked.text[at : at + 20]!r}",
                file=sys.stderr,
            )
            return 1
        write_export(args.out, [marked])
        problems = validate_export(args.out, load_schema(args.schema), {doc.doc_id: Path(args.doc)})
        for p in problems:
            print(p, file=sys.stderr)
        print(
            f"wrote {args.out}: {len(marked.spans)} spans, {len(marked.relations)} relations, "
            f"{len(problems)} problem(s)"
        )
        return 1 if problems else 0
    for doc in load_gold(args.input):
        out = Path(args.out)
        out.write_text(render_markup(doc), encoding="utf-8")
        print(f"wrote {out}")
    return 0


def _collect_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (recursive) and globs, in a stable order, without duplicates."""
    import glob

    suffixes = {".txt", ".docx", ".html", ".htm"}
    found: dict[Path, None] = {}
    for item in inputs:
        matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))] or [Path(item)]
        for path in matches:
            if path.is_dir():
                found.update((f, None) for f in sorted(path.rglob("*")) if f.suffix.lower() in suffixes and f.is_file())
            else:
                found[path] = None
    return list(found)


def load_extractor(model: str):  # noqa: ANN201 - returns an Extractor
    from pipeline.extract import RulesExtractor

    if model == "rules":
        return RulesExtractor()
    raise SystemExit(f"planie: unknown model {model!r} (use 'rules' or a trained model directory)")


def cmd_extract(args: argparse.Namespace) -> int:
    from pipeline.documents import DocumentError, read_document
    from pipeline.extract import extract_documents, write_outputs

    paths = _collect_inputs(args.inputs)
    if not paths:
        print("planie extract: no input documents found", file=sys.stderr)
        return 1
    extractor = load_extractor(args.model)
    documents, failed = [], 0
    for path in paths:
        try:
            documents.append(read_document(path))
        except DocumentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    docs = extract_documents(documents, extractor)
    written = write_outputs(Path(args.out), docs, extractor)
    print(f"{len(docs)} document(s) extracted, {failed} failed; outputs:")
    for path in written.values():
        print(f"  {path}")
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pipeline.annotations import load_gold_dir
    from pipeline.documents import Document
    from pipeline.evaluate import evaluation_report
    from pipeline.extract import extract_documents

    schema = load_schema(args.schema)
    gold = load_gold_dir(args.gold)
    extractor = load_extractor(args.model)
    pred = extract_documents([Document(d.doc_id, d.source, d.text, "utf-8") for d in gold], extractor)
    report = evaluation_report(gold, pred, schema, title=f"{extractor.ner_id} on {len(gold)} document(s)")
    if args.out:
        report.write(Path(args.out))
        print(f"report written to {args.out}")
    sys.stdout.write(report.markdown())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="planie",
        description="Structured commitments (agency, action, indicator, value, deadline) from Chinese plan documents.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ls-config", help="print the Label Studio labeling config generated from the schema")
    _add_schema_arg(p)
    p.set_defaults(func=cmd_ls_config)

    p = sub.add_parser("validate", help="check Label Studio exports against documents and schema")
    p.add_argument("files", nargs="+", help="export JSON files or folders of them")
    p.add_argument("--docs", nargs="*", help="folders of the source .txt documents (matched by doc_id = file stem)")
    _add_schema_arg(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("stats", help="count spans and relations per label and document")
    p.add_argument("files", nargs="+", help="export JSON files or folders of them")
    _add_schema_arg(p)
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("markup", help="convert between inline markup ([[text|LABEL|id|rel:id]]) and an export")
    p.add_argument("direction", choices=["to-json", "from-json"])
    p.add_argument("input", help="markup file (to-json) or export JSON (from-json)")
    p.add_argument("--doc", help="the source document (to-json): the markup must reproduce it exactly")
    p.add_argument("--source", help="source path to record in the export (default: --doc)")
    p.add_argument("--out", required=True, help="output file")
    _add_schema_arg(p)
    p.set_defaults(func=cmd_markup)

    p = sub.add_parser("extract", help="extract entities, relations, targets and tasks from documents")
    p.add_argument("inputs", nargs="+", help="documents: files, folders (recursive) or globs (.txt)")
    p.add_argument("--out", required=True, help="output folder (extractions.jsonl, targets.csv, tasks.csv)")
    p.add_argument("--model", default="rules", help="'rules' (the baseline) or a trained model folder")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("evaluate", help="score a model against gold annotations (strict spans, relations, targets)")
    p.add_argument("gold", nargs="+", help="gold Label Studio exports (files or folders)")
    p.add_argument("--model", default="rules", help="'rules' or a trained model folder")
    p.add_argument("--out", help="folder for report.md and metrics.json")
    _add_schema_arg(p)
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())

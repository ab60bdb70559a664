"""Gold spans per label per section kind (pipeline.core.sections), and sentences per kind.

A span counts in the kind of the sentence its first character stands in. The table shows which
(label, kind) pairs never or almost never hold a gold span: the candidates for the section rules
(configs/schema.yaml, ``absent_in``). ``--examples`` lists the gold spans found in the kinds the
schema rules out, with their sentence, for reading.

    python scripts/section_table.py annotations/*.json \
        --out scripts/results/section-kinds/gold_by_section.md --examples 40
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from pipeline.core.annotations import AnnotatedDoc, load_gold
from pipeline.core.files import write_atomic
from pipeline.core.schema import load_schema
from pipeline.core.sections import SECTION_KINDS, SectionIndex

COMMAND = "python scripts/section_table.py annotations/*.json --out scripts/results/section-kinds/gold_by_section.md"


def in_regions(doc: AnnotatedDoc, start: int) -> bool:
    """Whether an offset lies in the annotated part of a document (files built from paragraph tasks)."""
    regions = doc.meta.get("regions") or [(0, len(doc.text))]
    return any(a <= start < b for a, b in regions)


def count(docs: list[AnnotatedDoc], labels: tuple[str, ...]) -> tuple[Counter, Counter, Counter, list]:
    """(spans per (label, kind), sentences per kind, documents per kind, spans in ruled-out kinds)."""
    rules = load_schema().section_rules
    spans: Counter = Counter()
    sentences: Counter = Counter()
    documents: Counter = Counter()
    ruled_out = []
    for doc in docs:
        index = SectionIndex(doc.text)
        kinds = [s.kind for s in index.sentences if in_regions(doc, s.start)]
        sentences.update(kinds)
        documents.update(set(kinds))
        for span in doc.spans:
            if span.label in labels and in_regions(doc, span.start):
                kind = index.kind_at(span.start)
                spans[span.label, kind] += 1
                if kind in rules.get(span.label, ()):
                    ruled_out.append((doc.doc_id, span, kind, sentence_of(index, span.start)))
    return spans, sentences, documents, ruled_out


def sentence_of(index: SectionIndex, offset: int) -> str:
    return next((s.text for s in index.sentences if s.start <= offset < s.end), "")


def table(spans: Counter, sentences: Counter, documents: Counter, labels: tuple[str, ...], n_docs: int) -> list[str]:
    head = ["kind", "documents", "sentences", *labels, "spans per 100 sentences"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kind in SECTION_KINDS:
        n = sentences[kind]
        total = sum(spans[label, kind] for label in labels)
        cells = [str(spans[label, kind]) for label in labels]
        density = f"{100 * total / n:.0f}" if n else "-"
        rows.append(f"| {kind} | {documents[kind]} | {n} | " + " | ".join(cells) + f" | {density} |")
    totals = [str(sum(spans[label, k] for k in SECTION_KINDS)) for label in labels]
    rows.append(f"| all | {n_docs} | {sum(sentences.values())} | " + " | ".join(totals) + " | |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gold", nargs="+", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--examples", type=int, default=0, help="list up to N gold spans found in ruled-out kinds")
    args = ap.parse_args()
    docs = [d for f in args.gold for d in load_gold(f)]
    labels = load_schema().entity_labels
    spans, sentences, documents, ruled_out = count(docs, labels)
    lines = [
        "# Gold spans per section kind",
        "",
        f"{len(docs)} gold documents; the kind of a span is the kind of the sentence it starts in"
        " (`pipeline.core.sections.sentence_kinds`).",
        "",
        f"    {COMMAND}",
        "",
        *table(spans, sentences, documents, labels, len(docs)),
    ]
    rules = load_schema().section_rules
    lines += [
        "",
        "Section rules in `configs/schema.yaml` (`absent_in`): "
        + "; ".join(f"{label} absent in {', '.join(kinds)}" for label, kinds in rules.items()),
        "",
    ]
    lines += [f"Gold spans inside the ruled-out kinds: {len(ruled_out)}.", ""]
    for doc_id, span, kind, sentence in ruled_out[: args.examples]:
        lines.append(f"- `{doc_id}` {span.label} `{span.text}` in {kind}: {sentence[:90]}")
    text = "\n".join(lines) + "\n"
    if args.out:
        write_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()

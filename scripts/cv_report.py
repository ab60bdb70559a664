"""One table for the province-grouped cross-validation: model configurations (planie cv outputs),
the rules baseline and the peers (scripts/peers), all on the same folds, pooled strict scores.

    python scripts/cv_report.py --folds runs/cv-province/folds.json \
        --cv "shipped config=runs/cv-province" "+ places=runs/cv-places" \
        --peers runs/peers --out scripts/results/cv-province/README.md

--cv NAME=DIR: a folder written by `planie cv` (its cv.json; the first one also gives the rules row).
--peers DIR: DIR/PEER/FOLD/predictions.jsonl as written by scripts/peers/run.sh (entities only;
without --cv the table holds the peers alone).
--not-run NAME=WHY: a row for a system that did not run, with the reason.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.core.annotations import AnnotatedDoc, Span, load_gold_dir
from pipeline.core.files import write_atomic
from pipeline.core.metrics import PRF
from pipeline.core.schema import load_schema
from pipeline.evaluation.scoring import score_entities

Row = dict[str, Any]  # name, entities {label: PRF dict}, relations PRF dict | None, triples PRF dict | None, folds


def cv_rows(name: str, folder: Path, with_rules: bool) -> list[Row]:
    summary = json.loads((folder / "cv.json").read_text(encoding="utf-8"))
    systems = ["model", "rules"] if with_rules else ["model"]
    rows = []
    for system in systems:
        pooled = summary["pooled"][system]
        rows.append(
            {
                "name": name if system == "model" else "rules baseline",
                "entities": pooled["entities"],
                "relations": pooled["relations"]["micro"],
                "triples": pooled["targets"]["triples"],
                "folds": len(summary["folds"]),
            }
        )
    return rows


def peer_predictions(path: Path, gold: dict[str, AnnotatedDoc]) -> list[AnnotatedDoc]:
    docs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        text = gold[record["doc_id"]].text
        spans = tuple(
            Span(f"p{j}", e["start"], e["end"], e["label"], text[e["start"] : e["end"]])
            for j, e in enumerate(record["entities"])
        )
        docs.append(AnnotatedDoc(record["doc_id"], text, spans))
    return docs


def peer_row(peer_dir: Path, folds: list[dict[str, Any]], gold: dict[str, AnnotatedDoc], labels: list[str]) -> Row:
    pooled = {lab: PRF(0, 0, 0) for lab in [*labels, "micro"]}
    done, cut_steps = 0, []
    for fold in folds:
        path = peer_dir / fold["name"] / "predictions.jsonl"
        if not path.exists():
            continue
        done += 1
        info = peer_dir / fold["name"] / "info.json"
        settings = json.loads(info.read_text(encoding="utf-8")).get("settings", {}) if info.exists() else {}
        if settings.get("cut_by_budget"):
            cut_steps.append(settings.get("steps_done"))
        scores = score_entities([gold[d] for d in fold["test"]], peer_predictions(path, gold), labels)
        pooled = {k: PRF(v.tp + scores[k].tp, v.fp + scores[k].fp, v.fn + scores[k].fn) for k, v in pooled.items()}
    name = f"peer: {peer_dir.name}"
    if cut_steps:
        name += (
            f" (stopped by its time budget in {len(cut_steps)} folds, after {min(cut_steps)}–{max(cut_steps)} steps)"
        )
    return {
        "name": name,
        "entities": {k: v.as_dict() for k, v in pooled.items()},
        "relations": None,
        "triples": None,
        "folds": done,
    }


def markdown(rows: list[Row], labels: list[str], k: int, command: str) -> str:
    head = ["system", "folds", *labels, "micro P", "micro R", "micro F1", "relations e2e F1", "triples F1"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in rows:
        ent = r["entities"]
        if ent is None:  # a system that did not run: the reason fills the row
            lines.append(f"| {r['name']} | 0/{k} | not run: {r['why']} |" + " |" * (len(head) - 3))
            continue
        cells = [r["name"], f"{r['folds']}/{k}", *(f"{ent[lab]['f1']:.3f}" for lab in labels)]
        cells += [f"{ent['micro'][m]:.3f}" for m in ("precision", "recall", "f1")]
        cells += [f"{r[x]['f1']:.3f}" if r[x] else "-" for x in ("relations", "triples")]
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "# Province-grouped cross-validation: every system on the same folds\n\n"
        "Strict scores pooled over the folds (true positives, false positives and false negatives summed: every\n"
        "document is scored by a system that never saw its province). Relations end to end: predicted entities\n"
        "and predicted links against the gold. Triples: (INDICATOR, VALUE, DEADLINE-or-none), exact.\n"
        "Peers predict entities only.\n\n" + "\n".join(lines) + f"\n\nCommand: `{command}`\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", required=True, help="folds.json written by planie cv")
    ap.add_argument("--cv", nargs="*", default=[], metavar="NAME=DIR", help="planie cv output folders")
    ap.add_argument("--peers", help="folder of peer predictions (PEER/FOLD/predictions.jsonl)")
    ap.add_argument("--not-run", nargs="*", default=[], metavar="NAME=WHY", help="a system that did not run, and why")
    ap.add_argument("--annotations", default="annotations")
    ap.add_argument("--out", required=True, help="markdown to write (a .json beside it)")
    args = ap.parse_args()
    labels = list(load_schema().entity_labels)
    folds = json.loads(Path(args.folds).read_text(encoding="utf-8"))["folds"]
    rows: list[Row] = []
    for i, item in enumerate(args.cv):
        name, _, folder = item.partition("=")
        rows += cv_rows(name, Path(folder), with_rules=i == 0)
    if args.peers:
        gold = {d.doc_id: d for d in load_gold_dir([args.annotations])}
        peer_dirs = sorted(p for p in Path(args.peers).iterdir() if p.is_dir())
        rows += [peer_row(p, folds, gold, labels) for p in peer_dirs]
    for item in args.not_run:
        name, _, why = item.partition("=")
        rows.append({"name": name, "entities": None, "relations": None, "triples": None, "folds": 0, "why": why})
    command = f"python scripts/cv_report.py --folds {args.folds}"
    command += (" --cv " + " ".join(f'"{c}"' for c in args.cv)) if args.cv else ""
    command += f" --peers {args.peers}" if args.peers else ""
    command += (" --not-run " + " ".join(f'"{n}"' for n in args.not_run)) if args.not_run else ""
    command += f" --out {args.out}"
    out = Path(args.out)
    write_atomic(out, markdown(rows, labels, len(folds), command))
    write_atomic(out.with_suffix(".json"), json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()

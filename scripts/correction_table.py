"""What the annotators changed in the model's pre-annotations of the pool: one row per document.

Spans are compared by offsets and label. A pre-annotated span is *kept* when the gold has the
same span, *fixed* when it overlaps a gold span that no pre-annotation matched exactly (a new
boundary or label), *deleted* otherwise; gold spans left over were *added*. Relations are kept
when the gold links the same two spans with the same label.

    python scripts/correction_table.py annotations/pool_preannotations.jsonl annotations/pool_*.json \
        --out annotations/CORRECTIONS.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.core.annotations import load_gold
from pipeline.core.files import write_atomic

Key = tuple[int, int, str]


def compare_spans(pred: set[Key], gold: set[Key]) -> dict[str, int]:
    kept = pred & gold
    gold_left = sorted(gold - kept)
    fixed = deleted = 0
    taken: set[Key] = set()
    for p in sorted(pred - kept):
        partner = next((g for g in gold_left if g not in taken and g[0] < p[1] and p[0] < g[1]), None)
        if partner is None:
            deleted += 1
        else:
            taken.add(partner)
            fixed += 1
    return {"kept": len(kept), "fixed": fixed, "deleted": deleted, "added": len(gold_left) - len(taken)}


def compare_relations(pred: set[tuple[Key, Key, str]], gold: set[tuple[Key, Key, str]]) -> dict[str, int]:
    kept = pred & gold
    return {"kept": len(kept), "deleted": len(pred - kept), "added": len(gold - kept)}


def record_keys(entities: list[dict], relations: list[dict]) -> tuple[set[Key], set[tuple[Key, Key, str]]]:
    by_id = {e["id"]: (e["start"], e["end"], e["label"]) for e in entities}
    spans = set(by_id.values())
    rels = {(by_id[r["head"]], by_id[r["tail"]], r["label"]) for r in relations}
    return spans, rels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("predictions", help="extractions.jsonl of the model that pre-annotated the documents")
    ap.add_argument("gold", nargs="+", help="corrected gold exports")
    ap.add_argument("--out", required=True, help="markdown table to write")
    args = ap.parse_args()
    preds = {}
    model = ""
    for line in Path(args.predictions).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        preds[r["doc_id"]] = record_keys(r["entities"], r["relations"])
        model = json.dumps(r.get("model", ""), ensure_ascii=False)
    head = "| doc | spans kept | fixed | deleted | added | gold spans | relations kept | deleted | added | gold rels |"
    rows = [head, "|" + "---|" * 10]
    total = dict.fromkeys(("kept", "fixed", "deleted", "added", "gold", "rkept", "rdeleted", "radded", "rgold"), 0)
    for path in args.gold:
        for doc in load_gold(path):
            spans = {s.id: (s.start, s.end, s.label) for s in doc.spans}
            gold_spans = set(spans.values())
            gold_rels = {(spans[r.head], spans[r.tail], r.label) for r in doc.relations}
            pred_spans, pred_rels = preds[doc.doc_id]
            s, r = compare_spans(pred_spans, gold_spans), compare_relations(pred_rels, gold_rels)
            cells = [s["kept"], s["fixed"], s["deleted"], s["added"], len(gold_spans)]
            cells += [r["kept"], r["deleted"], r["added"], len(gold_rels)]
            rows.append(f"| {doc.doc_id} | " + " | ".join(map(str, cells)) + " |")
            for key, val in zip(total, cells, strict=True):
                total[key] += val
    rows.append("| **all** | " + " | ".join(f"**{v}**" for v in total.values()) + " |")
    share = total["kept"] / total["gold"] if total["gold"] else 0.0
    rshare = total["rkept"] / total["rgold"] if total["rgold"] else 0.0
    text = (
        "# What the annotators changed in the model's pre-annotations (pool)\n\n"
        f"Pre-annotations: `{args.predictions}` (model {model}). Command:\n"
        "`python scripts/correction_table.py annotations/pool_preannotations.jsonl annotations/pool_*.json "
        "--out annotations/CORRECTIONS.md`.\n\n"
        f"{total['kept']} of {total['gold']} gold spans ({share:.1%}) and {total['rkept']} of {total['rgold']} "
        f"gold relations ({rshare:.1%}) were the model's, unchanged; "
        f"{total['fixed']} spans were re-bounded or re-labelled, {total['deleted']} deleted, "
        f"{total['added']} added.\n\n" + "\n".join(rows) + "\n"
    )
    write_atomic(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""One-off consistency pass over the gold (see annotations/GUIDELINES.md, "Harmonisation").

Several annotators worked in parallel; this applies the project-wide decisions they differed on:
1. Two verbs in a row form one ACTION only if the pair is in FIXED_PAIRS; otherwise the ACTION
   is the first verb, or the second where the first acts as an adverb (统筹推进 → 推进).
2. responsible_for always points at the FIRST ACTION of the agency's task item.
Run: python scripts/harmonize_gold.py annotations/*.json   (prints every change)
"""

from __future__ import annotations

import sys
from dataclasses import replace

from pipeline.core.annotations import AnnotatedDoc, Relation, Span, load_gold, write_export
from pipeline.core.documents import task_items
from pipeline.extractors.relations import assignment_regions

ADVERBIAL_FIRST = {"统筹实施": "实施", "统筹推进": "推进", "联动推进": "推进"}
SPLIT_TO_FIRST = {
    "推广应用": "推广", "予以加分": "予以", "宣传推行": "宣传", "严打重罚": "严打", "组织做好": "组织",
    "试点推广": "试点", "编制完成": "编制", "充实扩展": "充实", "制定出台": "制定", "培育扶持": "培育",
    "创建扶持": "创建", "培育创建": "培育", "制定完成": "制定", "建立实施": "建立", "采集充实": "采集",
    "传递提供": "传递", "建设培育": "建设", "严查彻办": "严查", "延伸推广": "延伸", "评估分析": "评估",
    "细化分解": "细化", "学习贯彻": "学习", "研究解决": "研究", "组织制订": "组织",
}


def harmonise_action(text: str, s: Span) -> Span:
    if s.label != "ACTION":
        return s
    if s.text in ADVERBIAL_FIRST:
        keep = ADVERBIAL_FIRST[s.text]
        start = s.end - len(keep)
        return replace(s, start=start, text=text[start : s.end])
    if s.text in SPLIT_TO_FIRST:
        keep = SPLIT_TO_FIRST[s.text]
        return replace(s, end=s.start + len(keep), text=text[s.start : s.start + len(keep)])
    return s


def harmonise_responsibility(doc: AnnotatedDoc) -> tuple[Relation, ...]:
    by_id = doc.span_by_id()
    items = task_items(doc.text)
    out = []
    for r in doc.relations:
        if r.label == "responsible_for" and r.head in by_id:
            head = by_id[r.head]
            item = next(i for i in items if i.start <= head.start < i.end)
            regions = assignment_regions(doc.text, item)
            actions = [
                s for s in doc.spans
                if s.label == "ACTION" and item.start <= s.start < item.end
                and not any(a <= s.start < b for a, b in regions)
            ]
            if actions and actions[0].id != r.tail:
                print(f"  {doc.doc_id}: responsible_for {head.text} -> {by_id[r.tail].text} becomes {actions[0].text}")
                r = replace(r, tail=actions[0].id)
        out.append(r)
    return tuple(dict.fromkeys(out))


def main(paths: list[str]) -> None:
    for path in paths:
        (doc,) = load_gold(path)
        spans = tuple(harmonise_action(doc.text, s) for s in doc.spans)
        for old, new in zip(doc.spans, spans, strict=True):
            if old != new:
                print(f"  {doc.doc_id}: ACTION {old.text} -> {new.text}")
        doc = replace(doc, spans=spans)
        doc = replace(doc, relations=harmonise_responsibility(doc))
        write_export(path, [doc])


if __name__ == "__main__":
    main(sys.argv[1:])

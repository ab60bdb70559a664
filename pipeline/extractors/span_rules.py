"""Schema-aware post-decoding steps on predicted spans (a declared step, not hidden in the model)."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.core.annotations import Span

SEPARATE_WHEN_ADJACENT = {"AGENCY"}  # 党中央国务院: two bodies may touch; other labels never do in the gold


# Scope words that open an indicator's noun phrase (主要农产品…合格率, 全省名优产品…): the schema takes
# "the whole noun phrase naming the metric"; the model, trained on few of them, tends to start after them.
INDICATOR_MODIFIERS = ("主要", "重点", "全省", "全市", "全区", "全县", "全国", "城市", "城镇", "农村", "干线")


CLAUSE_BOUNDARY = set('，,；;。：:、（(）)“”"《》 \t\r\n\u3000')
# characters a span never starts or ends with (the schema's spans are phrases without the punctuation
# around them; in the gold only opening quotes start a span and closing brackets end one)
NOT_AT_START = (CLAUSE_BOUNDARY - set('“"《（(')) | {"的"}
NOT_AT_END = (CLAUSE_BOUNDARY - set('”"》）)')) | {"的"}


# one-character spans of these labels are pieces of words (出 of 出口, 培 of 培育): the gold has none for
# INDICATOR and AGENCY, and 8 one-character ACTIONs (使, 让, 做 ...) among 2,391
ONE_CHARACTER_FRAGMENTS = ("INDICATOR", "AGENCY", "ACTION")


def tidy_spans(text: str, spans: Sequence[Span]) -> list[Span]:
    """Schema-aware clean-up of decoded spans:
    0. punctuation and 的 at either edge are trimmed off (NOT_AT_START, NOT_AT_END);
    1. touching spans of the same label (B after B: 主要|农产品…合格率) are one span, except AGENCY;
    2. one-character INDICATOR, AGENCY or ACTION fragments are dropped (ONE_CHARACTER_FRAGMENTS);
    3. an INDICATOR needs a VALUE in its sentence (the schema's definition);
    4. an INDICATOR right after a scope word (INDICATOR_MODIFIERS) that opens its clause includes it."""
    from pipeline.core.documents import SentenceIndex

    merged: list[Span] = []
    for s in sorted(filter(None, (_trimmed(text, s) for s in spans)), key=lambda s: s.start):
        prev = merged[-1] if merged else None
        if prev and prev.label == s.label and prev.end == s.start and s.label not in SEPARATE_WHEN_ADJACENT:
            score = None if prev.score is None or s.score is None else round(min(prev.score, s.score), 4)
            merged[-1] = Span(prev.id, prev.start, s.end, s.label, text[prev.start : s.end], score)
        else:
            merged.append(s)
    merged = [s for s in merged if not (s.label in ONE_CHARACTER_FRAGMENTS and s.end - s.start < 2)]
    index = SentenceIndex(text)
    with_value = {index.of(s.start) for s in merged if s.label == "VALUE"}
    kept = [s for s in merged if s.label != "INDICATOR" or index.of(s.start) in with_value]
    ends = {s.end for s in kept}  # once per text: per span it made long documents quadratic
    return [_with_modifier(text, s, ends) if s.label == "INDICATOR" else s for s in kept]


def _trimmed(text: str, span: Span) -> Span | None:
    start, end = span.start, span.end
    while start < end and text[start] in NOT_AT_START:
        start += 1
    while end > start and text[end - 1] in NOT_AT_END:
        end -= 1
    if (start, end) == (span.start, span.end):
        return span
    return Span(span.id, start, end, span.label, text[start:end], span.score) if start < end else None


def _with_modifier(text: str, span: Span, ends: set[int]) -> Span:
    for word in INDICATOR_MODIFIERS:
        start = span.start - len(word)
        if (
            start >= 0
            and text[start : span.start] == word
            and (start == 0 or text[start - 1] in CLAUSE_BOUNDARY or start in ends)
        ):
            return Span(span.id, start, span.end, span.label, text[start : span.end], span.score)
    return span


def with_rule_spans(spans: Sequence[Span], text: str, labels: set[str]) -> list[Span]:
    """The model's spans with ``labels`` taken from the rules instead: the model's spans of those
    labels are dropped, and so is any other model span overlapping a rule span."""
    from pipeline.extractors.rules import rule_spans

    ruled = [r for r in rule_spans(text) if r.label in labels]
    kept = [s for s in spans if s.label not in labels and not any(r.start < s.end and s.start < r.end for r in ruled)]
    return sorted([*kept, *ruled], key=lambda s: s.start)

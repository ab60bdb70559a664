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
    0. punctuation, 的 and unbalanced brackets at either edge are trimmed off (NOT_AT_START, NOT_AT_END);
       an AGENCY starting inside 自治区/州/县 takes the whole word;
    1. touching spans of the same label (B after B: 主要|农产品…合格率) are one span, except AGENCY;
    2. one-character INDICATOR, AGENCY or ACTION fragments are dropped (ONE_CHARACTER_FRAGMENTS);
    3. an INDICATOR needs a VALUE in its sentence (the schema's definition), and ends where its
       predicate or VALUE begins (indicator_to_its_predicate);
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
    value_starts = sorted(s.start for s in kept if s.label == "VALUE")
    kept = [indicator_to_its_predicate(text, s, value_starts) if s.label == "INDICATOR" else s for s in kept]
    ends = {s.end for s in kept}  # once per text: per span it made long documents quadratic
    return [_with_modifier(text, s, ends) if s.label == "INDICATOR" else s for s in kept]


# The words that open an indicator's predicate (达到 90%, 稳定在, 累计 …): in the gold an INDICATOR ends
# right before one of them, before a coordinated indicator (、 和), or right before its VALUE.
PREDICATE_WORDS = tuple(
    sorted(
        {
            *("达到", "达", "稳定在", "保持在", "保持", "增长", "增加", "累计", "超过", "提高", "提升", "突破"),
            *("逐年", "力争", "分别", "每年", "比上年", "均", "实现", "不低于", "不少于", "控制在", "下降", "减少"),
            *("上升", "年均", "在", "為", "为"),
            *("達到", "達", "穩定在", "累計", "超過", "力爭", "分別", "實現", "減少"),  # traditional forms
        },
        key=len,
        reverse=True,
    )
)
COORDINATORS = ("、", "和", "及", "与", "與", "或")
ENDING_PREDICATES = {"均", "累计", "累計", "分别", "分別", "比上年"}  # never the last word of an INDICATOR in the gold
MAX_INDICATOR_REPAIR = 3  # characters an INDICATOR may grow or shrink by at its end


def _predicate_at(text: str, pos: int) -> str | None:
    return next((w for w in PREDICATE_WORDS if text.startswith(w, pos)), None)


def indicator_to_its_predicate(text: str, span: Span, value_starts: Sequence[int]) -> Span:
    """An INDICATOR that stops inside a word (餐饮食品抽检合格|率达到90%) grows to the next predicate
    word or VALUE of its clause; one that runs into its predicate (全国质量标杆累|计18个) ends before it."""
    end = span.end
    for k in range(max(span.start + 2, end - MAX_INDICATOR_REPAIR), end):
        word = _predicate_at(text, k)
        if word and (len(word) > 1 and k + len(word) > end or text[k:end] in ENDING_PREDICATES):
            end = k
            break
    else:
        nxt = min((v for v in value_starts if v >= end), default=None)
        gap = text[end:nxt] if nxt is not None else ""
        if gap and not gap.startswith(COORDINATORS) and not _predicate_at(text, end):
            cut = next(
                (i for i in range(len(gap)) if gap[i] in COORDINATORS or _predicate_at(text, end + i)), len(gap)
            )
            grow = gap[:cut]
            if len(grow) <= MAX_INDICATOR_REPAIR and all("\u4e00" <= c <= "\u9fff" for c in grow):
                end += len(grow)
    if end == span.end:
        return span
    return Span(span.id, span.start, end, span.label, text[span.start : end], span.score)


BRACKETS = {"(": ")", "（": "）"}
AUTONOMOUS = ("自治区", "自治州", "自治县", "自治旗")  # 自治区人民政府 must not lose 自治


def _trimmed(text: str, span: Span) -> Span | None:
    start, end = span.start, span.end
    while start < end and text[start] in NOT_AT_START:
        start += 1
    while end > start and text[end - 1] in NOT_AT_END:
        end -= 1
    for opening, closing in BRACKETS.items():  # a bracket the span does not close or open is not its own
        inside = text[start:end]
        if inside.endswith(closing) and inside.count(closing) > inside.count(opening):
            end -= 1
        inside = text[start:end]
        if inside.startswith(opening) and inside.count(opening) > inside.count(closing):
            start += 1
    if span.label == "AGENCY":
        for word in AUTONOMOUS:  # the span starts on the word's last character (区 of 自治区)
            opened = start - len(word) + 1
            if opened >= 0 and text.startswith(word, opened):
                start = opened
                break
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

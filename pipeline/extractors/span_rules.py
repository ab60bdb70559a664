"""Schema-aware post-decoding steps on predicted spans (a declared step, not hidden in the model)."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from pipeline.core.annotations import Span
from pipeline.core.documents import SentenceIndex, is_han, to_simplified
from pipeline.extractors.rules import VALUE_EXTENT, rule_spans

MAX_VALUE_REACH = 12  # characters around a VALUE searched for the number expression it is part of
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


def tidy_spans(text: str, spans: Sequence[Span], words: Collection[str] = frozenset()) -> list[Span]:
    """Schema-aware clean-up of decoded spans:
    0. punctuation, 的 and unbalanced brackets at either edge are trimmed off (NOT_AT_START, NOT_AT_END);
       an AGENCY starting inside 自治区/州/县 takes the whole word;
    1. touching spans of the same label (B after B: 主要|农产品…合格率) are one span, except AGENCY;
    2. one-character INDICATOR, AGENCY or ACTION fragments are dropped (ONE_CHARACTER_FRAGMENTS), and a
       VALUE covers the whole number expression it is part of (values_to_their_numbers);
    3. an INDICATOR needs a VALUE in its sentence (the schema's definition), ends where its
       predicate or VALUE begins (indicator_to_its_predicate), and coordinated metric names are one
       INDICATOR each (split_coordinated_metrics);
    4. an INDICATOR that starts inside one of ``words`` starts where the word starts (indicator_from_word_start;
       the model passes its vocabulary's multi-character pieces);
    5. a counted INDICATOR starts after the verbs that count it (indicator_without_counting_verb);
    6. an INDICATOR right after a scope word (INDICATOR_MODIFIERS) that opens its clause includes it."""
    merged: list[Span] = []
    for s in sorted(filter(None, (_trimmed(text, s) for s in spans)), key=lambda s: s.start):
        prev = merged[-1] if merged else None
        if prev and prev.label == s.label and prev.end == s.start and s.label not in SEPARATE_WHEN_ADJACENT:
            score = None if prev.score is None or s.score is None else round(min(prev.score, s.score), 4)
            merged[-1] = Span(prev.id, prev.start, s.end, s.label, text[prev.start : s.end], score)
        else:
            merged.append(s)
    merged = [s for s in merged if not (s.label in ONE_CHARACTER_FRAGMENTS and s.end - s.start < 2)]
    return _tidy_indicators(text, values_to_their_numbers(text, merged), words)


def values_to_their_numbers(text: str, spans: list[Span]) -> list[Span]:
    """A VALUE overlapping a number expression (rules.VALUE_EXTENT, on the simplified text) takes the
    expression's whole extent (21|.47件 → 21.47件, 200项以 → 200项以上) unless that runs into a span of
    another label; two VALUEs of one expression are one."""
    out, seen = [], set()
    others = {i for s in spans if s.label != "VALUE" for i in range(s.start, s.end)}
    for s in spans:
        if s.label == "VALUE":
            a = max(0, s.start - MAX_VALUE_REACH)
            window = to_simplified(text[a : s.end + MAX_VALUE_REACH])  # the converter is slow on a whole text
            found = [(a + i, a + j) for i, j in (m.span() for m in VALUE_EXTENT.finditer(window))]
            found = [(i, j) for i, j in found if _overlap((i, j), s)]
            start = min([s.start, *(i for i, _ in found)])
            end = max([s.end, *(j for _, j in found)])
            if (start, end) != (s.start, s.end) and not others.intersection(range(start, end)):
                s = Span(s.id, start, end, s.label, text[start:end], s.score)
            if (s.start, s.end) in seen:
                continue
            seen.add((s.start, s.end))
        out.append(s)
    return out


def _overlap(extent: tuple[int, int], span: Span) -> bool:
    return extent[0] < span.end and span.start < extent[1]


def _tidy_indicators(text: str, spans: list[Span], words: Collection[str]) -> list[Span]:
    """Steps 3-6 of tidy_spans, in this order."""
    index = SentenceIndex(text)
    with_value = {index.of(s.start) for s in spans if s.label == "VALUE"}
    kept = [s for s in spans if s.label != "INDICATOR" or index.of(s.start) in with_value]
    value_starts = sorted(s.start for s in kept if s.label == "VALUE")
    kept = [indicator_to_its_predicate(text, s, value_starts) if s.label == "INDICATOR" else s for s in kept]
    kept = [part for s in kept for part in (split_coordinated_metrics(text, s) if s.label == "INDICATOR" else [s])]
    if words:
        taken = {i for s in kept for i in range(s.start, s.end)}
        kept = [indicator_from_word_start(text, s, words, taken) if s.label == "INDICATOR" else s for s in kept]
    kept = [indicator_without_counting_verb(text, s) if s.label == "INDICATOR" else s for s in kept]
    ends = {s.end for s in kept}  # once per text: per span it made long documents quadratic
    return [_with_modifier(text, s, ends) if s.label == "INDICATOR" else s for s in kept]


# The words that open an indicator's predicate (达到 90%, 稳定在, 累计 …): in the gold an INDICATOR ends
# right before one of them, before a coordinated indicator (、 和), or right before its VALUE.
PREDICATE_WORDS = tuple(
    sorted(
        {
            *("达到", "达", "稳定在", "保持在", "保持", "增长", "增加", "累计", "超过", "提高", "提升", "突破"),
            *("逐年", "力争", "分别", "每年", "比上年", "均", "实现", "不低于", "不少于", "控制在", "下降", "减少"),
            *("上升", "年均", "在", "為", "为", "同比"),
            *("達到", "達", "穩定在", "累計", "超過", "力爭", "分別", "實現", "減少"),  # traditional forms
        },
        key=len,
        reverse=True,
    )
)
COORDINATORS = ("、", "和", "及", "与", "與", "或")
ENDING_PREDICATES = {"均", "累计", "累計", "分别", "分別", "比上年"}  # never the last word of an INDICATOR in the gold
MAX_INDICATOR_REPAIR = 3  # characters an INDICATOR may lose at its end to a predicate it runs into
# characters an INDICATOR may grow by to reach its predicate or VALUE (社会消|费品零售总额增长5%: long
# metric names are cut anywhere by the model; the growth stops at punctuation, a coordinator or a predicate)
MAX_INDICATOR_GROWTH = 25


def _predicate_at(text: str, pos: int) -> str | None:
    return next((w for w in PREDICATE_WORDS if text.startswith(w, pos)), None)


def indicator_to_its_predicate(text: str, span: Span, value_starts: Sequence[int]) -> Span:
    """An INDICATOR that stops inside a word (餐饮食品抽检合格|率达到90%) grows to the next predicate
    word or VALUE of its clause; one that runs into its predicate (全国质量标杆累|计18个) ends before it."""
    end = span.end
    for k in range(max(span.start + 2, end - MAX_INDICATOR_REPAIR), end):
        word = _predicate_at(text, k)
        if word and (len(word) > 1 and k + len(word) >= end or text[k:end] in ENDING_PREDICATES):
            end = k
            break
    else:
        nxt = min((v for v in value_starts if v >= end), default=None)
        gap = text[end:nxt] if nxt is not None else ""
        if gap and not gap.startswith(COORDINATORS) and not _predicate_at(text, end):
            cut = next((i for i in range(len(gap)) if gap[i] in COORDINATORS or _predicate_at(text, end + i)), len(gap))
            grow = gap[:cut]
            short = len(grow) <= MAX_INDICATOR_REPAIR  # a longer growth does not cross 的 (天数|的空气质量)
            if len(grow) <= MAX_INDICATOR_GROWTH and all(is_han(c) for c in grow) and (short or "的" not in grow):
                end += len(grow)
    if end == span.end:
        return span
    return Span(span.id, span.start, end, span.label, text[span.start : end], span.score)


# last words of a metric's name (…合格率, …总产值, …满意度, …比重): a coordinator right after one of them
# separates two indicators (A合格率和B合格率均达到98%: one INDICATOR each, as the schema says), while
# coordinated things counted together stay one (首店、旗舰店、创新店累计落地超过500个)
METRIC_HEADS = ("率", "量", "数", "數", "值", "度", "额", "額", "比重", "比例", "占比", "佔比", "指数", "指數", "收入")


def split_coordinated_metrics(text: str, span: Span) -> list[Span]:
    """An INDICATOR holding coordinated metric names (重点监控设备定期检验率、隐患整改率) is one span per name."""
    parts, start = [], span.start
    for k in range(span.start + 2, span.end - 2):
        if text[k] in COORDINATORS and text[start:k].endswith(METRIC_HEADS):
            parts.append(Span(span.id, start, k, span.label, text[start:k], span.score))
            start = k + 1
    if not parts:
        return [span]
    return [*parts, Span(span.id, start, span.end, span.label, text[start : span.end], span.score)]


# verbs that open a counted target (制定团体标准800项以上 → INDICATOR 团体标准: the schema keeps the verb out)
COUNTING_VERBS = tuple(
    sorted(
        {
            *("新增", "新建", "创建", "培育", "制定", "修订", "制修订", "提升", "改造", "推荐", "建设", "建成"),
            *("完成", "认定", "打造", "获得", "争取"),
        },
        key=len,
        reverse=True,
    )
)
COUNTED_VALUE = re.compile(r"\d[\d.,]*[万千百]?(?:项|件|个|個|家|批次|次|名|人|条|座|所|項)")


def indicator_without_counting_verb(text: str, span: Span) -> Span:
    """A counted INDICATOR right before its count (新建提升改造社会公用计量标准50项) loses the verbs it starts
    with (looked up on the simplified text); at least two characters stay."""
    if not COUNTED_VALUE.match(text, span.end):
        return span
    simplified, start = to_simplified(text[span.start : span.end]), span.start
    while verb := next((v for v in COUNTING_VERBS if simplified.startswith(v, start - span.start)), None):
        if span.end - start - len(verb) < 2:
            break
        start += len(verb)
    if start == span.start:
        return span
    return Span(span.id, start, span.end, span.label, text[start : span.end], span.score)


def indicator_from_word_start(text: str, span: Span, words: Collection[str], taken: set[int]) -> Span:
    """An INDICATOR whose first character is not the first of a word (主|导或参与…标准, 著|名商标, 全|市主要…)
    starts where that word starts, unless another span holds the characters before it. Words are looked up
    on the simplified text (the word list is simplified Chinese)."""
    start = span.start
    offset = max(0, start - 3)
    window = to_simplified(text[offset : start + 3])
    for a in range(offset, start):
        if text[a] in NOT_AT_START or any(i in taken for i in range(a, start)):
            continue
        if any(window[a - offset : a - offset + n] in words and a + n > start for n in (2, 3, 4)):
            if all(is_han(c) for c in window[a - offset : start - offset + 1]):
                return Span(span.id, a, span.end, span.label, text[a : span.end], span.score)
    return span


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
    ruled = [r for r in rule_spans(text) if r.label in labels]
    kept = [s for s in spans if s.label not in labels and not any(r.start < s.end and s.start < r.end for r in ruled)]
    return sorted([*kept, *ruled], key=lambda s: s.start)

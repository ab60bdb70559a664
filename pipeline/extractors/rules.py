"""The rules baseline: regex + lexicon entity spans."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pipeline.core.annotations import Span
from pipeline.core.documents import Segment, is_heading, paragraphs, sentences, to_simplified

NUM = r"(?:\d+(?:\.\d+)?|[一二三四五六七八九十百千万两]+)"


UNIT = (
    r"(?:%|％|个百分点|百分点|万亿元|亿元|万元|元|万人次|万人|人次|名|人|项|个|家|件|批次|次|种|所|座|条|户|处|套|台"
    r"|分|倍|公里|千米|米|吨|万吨|天|小时|个工作日|工作日|年|位|支|批|类|部|篇|期|场|本|张|块|片|区|县|市|强)"
)


QUAL = r"(?:以上|以下|左右|以内)"


VALUE_RE = re.compile(rf"{NUM}(?:\s*[-~—至到]\s*{NUM})?{UNIT}{QUAL}?|\d+(?:\.\d+)?{QUAL}")


# the whole extent of a number expression, for a VALUE the model found (pipeline.extractors.span_rules):
# 21.47件, 10万次以上, 1%至2%, 22万元/人, 5个百分点
NUMBER = r"(?:\d+(?:\.\d+)?[万亿千百]?|[一二三四五六七八九十百千万两]+)"
VALUE_EXTENT = re.compile(
    rf"{NUMBER}{UNIT}?(?:\s*[-~—至到]\s*{NUMBER})?{UNIT}(?:/[\u4e00-\u9fff])?{QUAL}?|\d+(?:\.\d+)?{QUAL}"
)


INDICATOR_STOP = re.compile(r"[，,；;。：:、！!？?（）()“”\"《》\s]|力争|确保|全省|全市|以及|其中|均|分别|稳步|逐步")


TARGET_VERB = (
    r"(?:达到|达|超过|稳定在|保持在|控制在|提高到|提升到|提高|提升|增长|下降|降低|降至|减少|不低于|不少于|不超过|低于|高于"
    r"|增加|新增|培育|创建|建成|建设|制修订|制定|修订|打造|认定|争创|突破|为)"
)


VALUE_CONTEXT = re.compile(rf"{TARGET_VERB}(?:到|至)?(?:了)?\s*$")


# a bare year opening a clause and followed by a comma or a target verb (2023年，… / 2012年培育…): in a goals
# section, the deadline of the staged targets that follow (annotations/GUIDELINES.md, Targets and deadlines)
DEADLINE_RE = re.compile(
    r"(?:到|至|截至|截止到)\s*(?:“十[一二三四五]五”末|\d{4}\s*年(?:\d{1,2}月)?(?:底|末)?(?:前)?)"
    r"|(?:从|自)\d{4}年(?:\d{1,2}月)?起"
    r"|\d{4}年(?:\d{1,2}月)?(?:\d{1,2}日)?(?:底|末)?(?:前|之前|以前)"
    r"|\d{4}年(?:\d{1,2}月)?起"
    r"|(?:今年)?年底前|年内|上半年|下半年"
    r"|\d{4}年(?=(?:底|内)?(?:完成|实现|建成|启动|出台|制定|开展|全面|基本|力争|争取|底))"
    rf"|(?<![^\n。；;，,\s])\d{{4}}年(?=[，,]|{TARGET_VERB})"
)


PROVINCES = (
    "北京|天津|河北|山西|内蒙古|辽宁|吉林|黑龙江|上海|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|广东|广西|海南|重庆|四川"
    "|贵州|云南|西藏|陕西|甘肃|青海|宁夏|新疆|香港|澳门|台湾"
)


CITY = r"(?<![\u4e00-\u9fa5])[\u4e00-\u9fa5]{2,3}(?:市|海关)"


AGENCY_PREFIX = rf"(?:各级|各|省|市|县|区|国家|国务院|中共|党中央|自治区|人行|(?:{PROVINCES})|{CITY})"


AGENCY_SUFFIX = (
    r"(?:人民政府办公厅|人民政府|政府办公厅|政府|办公厅|领导小组成员单位|领导小组|成员单位|直属各单位|各部门|部门"
    r"|管理局|监管局|检验检疫局|总局|局|委员会|委|办公室|办|厅|部|署|海关|中心支行|支行|分行|管委会)"
)


AGENCY_RE = re.compile(rf"{AGENCY_PREFIX}[\u4e00-\u9fa5（）()、]{{0,14}}?{AGENCY_SUFFIX}")


AGENCY_SET_TAIL = re.compile(r"各有关部门|有关部门|各部门|直属各单位|各成员单位|各直属机构")


AGENCY_BAD = re.compile(r"企业|消费者|社会|会议|党代会|全省上下|群众|行业协会|干部|本部门|工作|质量|标准")


ADVERBS = (
    "进一步",
    "大力",
    "积极",
    "深入",
    "切实",
    "全面",
    "着力",
    "努力",
    "力争",
    "争取",
    "抓紧",
    "加快",
    "不断",
    "继续",
    "认真",
    "扎实",
    "持续",
    "稳步",
    "逐步",
    "重点",
    "严格",
    "广泛",
    "加大力度",
    "要",
    "应",
    "须",
    "必须",
    "还要",
)


ACTION_VERBS = sorted(
    {
        "建立健全",
        "组织实施",
        "推动实施",
        "推进实施",
        "探索建立",
        "研究制定",
        "修订完善",
        "贯彻落实",
        "制定实施",
        "组织开展",
        "加强",
        "推进",
        "开展",
        "培育",
        "实施",
        "落实",
        "提高",
        "完善",
        "建立",
        "推动",
        "强化",
        "健全",
        "制定",
        "深化",
        "促进",
        "提升",
        "构建",
        "打造",
        "引导",
        "鼓励",
        "支持",
        "发挥",
        "建设",
        "规范",
        "打击",
        "扩大",
        "做好",
        "抓好",
        "实行",
        "严厉打击",
        "加大",
        "坚持",
        "围绕",
        "贯彻",
        "整治",
        "督促",
        "指导",
        "推行",
        "推广",
        "组织",
        "建成",
        "创建",
        "增强",
        "优化",
        "加快",
        "树立",
        "营造",
        "弘扬",
        "突出",
        "发展",
        "引进",
        "加强对",
        "严把",
        "严格执行",
        "宣传",
        "普及",
        "开发",
        "制修订",
        "修订",
        "编制",
        "出台",
        "设立",
        "成立",
        "搭建",
        "形成",
        "保障",
        "确保",
        "提供",
        "落实好",
        "完成",
        "深化改革",
        "创新",
        "改进",
        "整合",
        "清理",
        "监督",
        "检查",
        "认定",
        "评选",
        "表彰",
        "奖励",
        "评价",
        "健全完善",
        "建设完善",
        "培养",
        "引领",
        "服务",
        "保护",
        "防范",
        "治理",
        "查处",
        "严厉查处",
        "加速",
        "拓展",
        "壮大",
        "扶持",
        "培训",
        "利用",
        "依托",
        "结合",
        "鼓励支持",
        "统筹",
        "协调",
        "部署",
        "启动",
        "推进建设",
        "试行",
        "探索",
        "研究",
    },
    key=len,
    reverse=True,
)


CLAUSE_SPLIT = re.compile(r"[^，,；;。：:！!？?\r\n]+")


GOAL_HEADING = re.compile(r"目标")


RETROSPECTIVE = re.compile(r"^(?:近年来|多年来|\d+年来|“十[一二三四五]五”(?:以来|期间)|过去|目前|当前|长期以来)")


PREAMBLE = re.compile(r"^为.*(?:制定本|特制定|现提出|提出如下)|印发|请.*(?:贯彻|执行|落实)|现将|通知如下")


TITLE = re.compile(r"《[^》]*》")


def _spans_outside_titles(text: str, seg: Segment) -> list[tuple[int, int]]:
    """Sub-ranges of a segment that are not inside 《》 titles."""
    ranges, pos = [], seg.start
    for m in TITLE.finditer(text, seg.start, seg.end):
        ranges.append((pos, m.start()))
        pos = m.end()
    ranges.append((pos, seg.end))
    return [(a, b) for a, b in ranges if b > a]


def find_deadlines(text: str, seg: Segment) -> Iterator[tuple[int, int]]:
    if re.fullmatch(r"\s*\d{4}\s*年\d{1,2}月\d{1,2}日\s*", seg.text):
        return  # a date line (signature / publication)
    for a, b in _spans_outside_titles(text, seg):
        for m in DEADLINE_RE.finditer(text, a, b):
            prev = text[m.start() - 1 : m.start()]
            if prev in ("-", "—", "～", "~") or text[m.end() : m.end() + 1] in ("-", "—", "～"):
                continue  # a period such as 2012-2020年
            yield m.start(), m.end()


def find_values(text: str, sent: Segment) -> Iterator[tuple[int, int]]:
    for a, b in _spans_outside_titles(text, sent):
        for m in VALUE_RE.finditer(text, a, b):
            start, end = m.start(), m.end()
            if start > 0 and (text[start - 1].isdigit() or text[start - 1] in "第."):
                continue
            piece = m.group()
            if re.match(r"[一两][^十百千万]", piece):
                continue  # 一批, 一个: not a quantitative target
            if re.fullmatch(r"\d{4}年.*", piece) or piece.endswith(("年", "月", "日")):
                continue
            before = text[max(sent.start, start - 12) : start]
            after = text[end : end + 2]
            if VALUE_CONTEXT.search(before) or re.match(QUAL, piece[-2:]) or piece.endswith(("%", "％", "百分点")):
                if after.startswith(("的", "年")):
                    continue
                yield start, end


def indicator_before(text: str, sent: Segment, value_start: int) -> tuple[int, int] | None:
    """The noun phrase before the target verb that precedes a value, if it looks like a metric."""
    window = text[sent.start : value_start]
    verb = re.search(rf"{TARGET_VERB}(?:到|至)?(?:了)?(?:力争)?\s*$", window)
    end = sent.start + (verb.start() if verb else len(window))
    tail = text[sent.start : end]
    stop = list(INDICATOR_STOP.finditer(tail))
    start = sent.start + (stop[-1].end() if stop else 0)
    if verb and verb.group().startswith(
        ("培育", "创建", "建成", "建设", "制修订", "制定", "打造", "新增", "认定", "争创")
    ):
        # counted targets: 培育国家级示范单位20个以上 -> the counted thing is between verb and number
        start, end = sent.start + verb.end(), value_start
    lead = re.match(TARGET_VERB, text[start:end])
    if lead:
        start += lead.end()
    while start < end and text[start] in "的和及与":
        start += 1
    while end > start and text[end - 1] in "的和及与":
        end -= 1
    if end - start < 2 or end - start > 30:
        return None
    return start, end


def find_agencies(text: str, seg: Segment) -> Iterator[tuple[int, int]]:
    for a, b in _spans_outside_titles(text, seg):
        for m in AGENCY_RE.finditer(text, a, b):
            end = m.end()
            tail = AGENCY_SET_TAIL.match(text, end, b)
            if tail:
                end = tail.end()
            start = m.start() + len(re.match(r"(?:已经|经|由|请|报|向|在)?", m.group()).group())
            for part in _split_agency_list(text[start:end], start):
                if not AGENCY_BAD.search(text[part[0] : part[1]]):
                    yield part


def _split_agency_list(piece: str, offset: int) -> list[tuple[int, int]]:
    parts, pos, depth = [], 0, 0
    for i, ch in enumerate(piece):
        depth += ch in "（("
        depth -= ch in "）)"
        if ch == "、" and depth == 0:
            parts.append((offset + pos, offset + i))
            pos = i + 1
    parts.append((offset + pos, offset + len(piece)))
    return [(s, e) for s, e in parts if e - s >= 2]


MODAL = re.compile(r"要|应当|应|须|必须|将|负责|牵头")


def find_action(text: str, clause: Segment) -> tuple[int, int] | None:
    """The directive verb opening a clause (after numbering, adverbs, or a subject ending in 要/应)."""
    starts = [
        clause.start + len(_NUMBERING.match(clause.text).group()) if _NUMBERING.match(clause.text) else clause.start
    ]
    leading_deadline = DEADLINE_RE.match(text, starts[0], clause.end)
    if leading_deadline:
        starts.append(leading_deadline.end())
    starts += [m.end() for m in MODAL.finditer(text, clause.start, min(clause.end, clause.start + 16))]
    for pos in starts:
        while True:
            verb = next((v for v in ACTION_VERBS if text.startswith(v, pos) and pos + len(v) <= clause.end), None)
            if verb:
                return pos, pos + len(verb)
            adverb = next((a for a in ADVERBS if text.startswith(a, pos)), None)
            if not adverb:
                break
            pos += len(adverb)
    return None


def _clauses(text: str, seg: Segment) -> Iterator[Segment]:
    for a, b in _spans_outside_titles(text, seg):
        for m in CLAUSE_SPLIT.finditer(text, a, b):
            s, e = m.start(), m.end()
            while s < e and text[s].isspace():
                s += 1
            if e > s:
                yield Segment(s, e, text[s:e])


_NUMBERING = re.compile(
    r"^(?:[一二三四五六七八九十]+、|[（(][一二三四五六七八九十\d]+[）)]|\d{1,2}[.．、]?(?![\d.％%年月日个项]))"
)


def rule_spans(original: str) -> list[Span]:
    """All rule-based entity spans of a document, sorted and non-overlapping. The patterns run on
    the simplified-character form (same length); span texts come from the original."""
    text = to_simplified(original)
    found: list[tuple[int, int, str]] = []
    in_goals = False
    for para in paragraphs(text):
        heading = is_heading(para.text)
        if heading or _NUMBERING.match(para.text):
            in_goals = bool(GOAL_HEADING.search(para.text[:30])) or (in_goals and not heading)
        found += [(s, e, "DEADLINE") for s, e in find_deadlines(text, para)]
        found += [(s, e, "AGENCY") for s, e in find_agencies(text, para)]
        retro = bool(RETROSPECTIVE.match(_NUMBERING.sub("", para.text)))
        for sent in sentences(text, para):
            if retro:
                continue
            for vs, ve in find_values(text, sent):
                found.append((vs, ve, "VALUE"))
                ind = indicator_before(text, sent, vs)
                if ind:
                    found.append((*ind, "INDICATOR"))
            if in_goals or PREAMBLE.search(sent.text):
                continue
            for clause in _clauses(text, sent):
                act = find_action(text, clause)
                if act:
                    found.append((*act, "ACTION"))
    return _resolve_overlaps(original, found)


_PRIORITY = {"DEADLINE": 0, "VALUE": 1, "AGENCY": 2, "INDICATOR": 3, "ACTION": 4}


def _resolve_overlaps(text: str, found: list[tuple[int, int, str]]) -> list[Span]:
    chosen: list[tuple[int, int, str]] = []
    for s, e, lab in sorted(set(found), key=lambda t: (_PRIORITY[t[2]], t[0], -(t[1] - t[0]))):
        if all(e <= cs or s >= ce for cs, ce, _ in chosen):
            chosen.append((s, e, lab))
    chosen.sort()
    return [Span(f"T{i + 1}", s, e, lab, text[s:e]) for i, (s, e, lab) in enumerate(chosen)]

"""Section kinds of a plan document: which part of the genre every sentence stands in.

Chinese plan documents (规划, 方案, 意见, 行动计划, 纲要 and the notices that issue them) share one
layout: a notice header (title, document number, addressees, the forwarding line 现将《…》印发给你们),
a purpose preamble (为……，制定本方案), then numbered sections: guiding thought and principles
(指导思想, 基本原则), goals (主要目标), sometimes a review of past work (发展基础, "十三五"以来成效)
or of the situation (形势, 背景), the tasks (主要任务, or verb-phrase headings), the safeguards
(保障措施, 组织实施), and a signature (issuing body, date, 抄送, 附件).

``sentence_kinds`` gives every sentence one of SECTION_KINDS. Kinds come from the headings (their cue
words, with the numbering style giving the nesting: a sub-heading without a cue inherits the kind of
the heading above it) and from sentence cues for the furniture around the body. The reader is
conservative: a sentence it cannot place is ``other``. Cue words are written in simplified
characters; the text is converted first (``to_simplified``, length kept), and a small fold table
covers the cue characters where the converter is not installed.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from pipeline.core.documents import Segment, is_heading, paragraphs, sentences, to_simplified

SECTION_KINDS = (
    "header",  # notice/forwarding title, document number, addressees, forwarding line, page furniture
    "preamble",  # purpose preamble: 为……，制定本方案 / 前言
    "guiding",  # 指导思想, 总体要求, 基本原则
    "goals",  # 主要目标, 发展目标, 到2025年…… under the guiding part
    "past",  # review of work done: 发展基础, 现实基础, 发展成效, 工作回顾
    "background",  # the situation: 形势, 背景, 重大意义
    "tasks",  # 主要任务, 重点工作, 活动内容
    "safeguards",  # 保障措施, 组织实施, 工作要求
    "signature",  # issuing body and date lines, 抄送, 附件, (此件公开发布)
    "other",  # anything the reader cannot place: no rule applies to it
)

# Traditional forms of the characters in the cue words below, for a machine without the converter.
_TRADITIONAL = str.maketrans(
    "與業嚴舉義爭於們優會體關養內決況減擊劃則創刪別辦務動勵勢協單廳壓縣發葉號員圍堅壯實導將鞏廣開強當徹態總戰執擴掃揚報揮撐數斷時機來極構標"
    "樹檔瀏點狀現電監碼礎確積築籌類級紀綱組細織結繞給統績續維編職聯範營慮補見規視覽計訂認訊設評話請讀責質貫轉進郵針門閉間閱閲際頁項顧領題驟齊",
    "与业严举义争于们优会体关养内决况减击划则创删别办务动励势协单厅压县发叶号员围坚壮实导将巩广开强当彻态总战执扩扫扬报挥撑数断时机来极构标"
    "树档浏点状现电监码础确积筑筹类级纪纲组细织结绕给统绩续维编职联范营虑补见规视览计订认讯设评话请读责质贯转进邮针门闭间阅阅际页项顾领题骤齐",
)


@dataclass(frozen=True)
class KindedSentence:
    """A sentence (offsets into the original text) and the kind of section it stands in."""

    start: int
    end: int
    text: str
    kind: str


def normalised(text: str) -> str:
    """The text in simplified characters, same length (offsets are unchanged)."""
    return to_simplified(text).translate(_TRADITIONAL)


# --- headings --------------------------------------------------------------------------------------

_NUMBER_STYLES = (
    ("chapter", r"第[一二三四五六七八九十百\d]+[章节篇部分]+"),
    ("cn", r"[一二三四五六七八九十]+[、．.]"),
    ("paren_cn", r"[（(][一二三四五六七八九十]+[）)]"),
    ("arabic", r"\d{1,2}[.．、](?!\d)"),
    ("paren_arabic", r"[（(]\d{1,2}[）)]"),
    ("circled", r"[①②③④⑤⑥⑦⑧⑨⑩]"),
)
_NUMBER = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _NUMBER_STYLES))
COLON_STYLE = "colon"  # an unnumbered short line ending in a colon: the lowest level

# Cue words of heading bodies, per kind (simplified characters); a cue names the section when it
# ends the heading, alone or before a coordinated second part (指导思想和发展目标, 发展基础与形势).
# The permissive kinds are listed first: a heading with cues of several kinds gets the first of them
# (目标任务 is a task heading, 指导思想和发展目标 a guiding one whose sub-headings refine it), since
# an unsure kind must not drop anything.
HEADING_CUES: tuple[tuple[str, str], ...] = (
    (
        "tasks",
        r"任务|重点工作|主要工作|工作重点|主要内容|工作内容|活动内容|活动安排|重点领域|主要措施|工作措施|具体措施"
        r"|主要举措|重点举措|工作举措|实施步骤|工作步骤|步骤安排|任务分工|责任分工|职责分工|重点项目|重点工程",
    ),
    (
        "safeguards",
        r"保障措施|保障体系|组织保障|实施保障|工作保障|政策保障|支撑保障|保障机制|组织实施|组织领导|工作要求"
        r"|推进措施|支撑体系|监督考核|考核评估|实施机制",
    ),
    (
        "guiding",
        r"指导思想|总体思路|基本思路|工作思路|发展思路|总体要求|基本原则|工作原则|指导原则|主要原则|工作方针"
        r"|指导方针|基本方针|战略定位|总体考虑|总体部署",
    ),
    ("background", r"形势|背景|重大意义|重要意义|机遇|挑战"),
    ("goals", r"目标|目标要求|主要指标|发展指标|指标体系"),
    ("past", r"(?:^|发展|现实|工作|已有|良好|的)基础|现状|成效|成就|成绩|回顾|进展情况|完成情况"),
    ("preamble", r"^(?:前言|序言|引言)"),
)
_HEADING_CUES = tuple((kind, re.compile(rf"(?:{pattern})(?:[和与及、].{{0,16}})?$")) for kind, pattern in HEADING_CUES)
_HEADING_TAIL = re.compile(r"(?:[（(][^（）()]*[）)]|[。.：:；;，,\s\u3000])+$")
RESTRICTIVE_KINDS = frozenset({"goals", "past", "background", "preamble"})

# A heading opening with a directive verb is a task heading whatever nouns follow
# (夯实质量发展基础, 完善质量统计指标体系, 明确发展目标): it takes no restrictive kind.
DIRECTIVE_OPENERS = re.compile(
    r"^(?:加强|强化|推进|推动|实施|完善|健全|建立|建设|构建|打造|培育|提升|提高|优化|创新|深化|夯实|筑牢|巩固|打牢|发挥"
    r"|促进|加快|做好|抓好|落实|开展|扩大|保障|严格|营造|增强|坚持|全面|深入|大力|着力|积极|持续|不断|切实|明确|实现"
    r"|支持|鼓励|引导|规范|狠抓|突出|聚焦|围绕|探索|推广|树立|弘扬|厚植|拓展|壮大|激发|强基|守牢|守住|提档|补齐"
    r"|破解|攻克|确保|形成|完成|落细|压实|用好|重视|培养|引进|组织|扎实|统筹|协同|聚力|提质|防范|打击)"
)


@dataclass(frozen=True)
class Heading:
    style: str  # a name from _NUMBER_STYLES, or COLON_STYLE
    body: str  # the heading without its number
    kind: str | None  # from its cue words; None: inherits the kind of the heading above


def heading_kind(body: str) -> str | None:
    """The kind a heading's cue words name (``body`` without the number, simplified), or None."""
    body = _HEADING_TAIL.sub("", body.strip())
    kinds = [kind for kind, cue in _HEADING_CUES if cue.search(body)]
    if DIRECTIVE_OPENERS.match(body):
        kinds = [k for k in kinds if k not in RESTRICTIVE_KINDS]
    return kinds[0] if kinds else None


_PAGE_NUMBER = re.compile(r"[\s\u3000]\d{1,3}$")  # a table-of-contents line: 二、总体要求 10


def read_heading(sentence: str, whole_paragraph: bool) -> Heading | None:
    """The heading a (normalised) sentence is, or None. A numbered heading may open a running
    paragraph ((一)指导思想。以……); an unnumbered one must be its whole line and end in a colon."""
    m = _NUMBER.match(sentence)
    if m and is_heading(sentence) and not _PAGE_NUMBER.search(sentence):
        body = sentence[m.end() :]
        return Heading(m.lastgroup or "cn", body, heading_kind(body))
    if whole_paragraph and sentence.endswith(("：", ":")) and is_heading(sentence):
        return Heading(COLON_STYLE, sentence, heading_kind(sentence))
    return None


def is_contents_line(sentence: str) -> bool:
    """A table-of-contents line: a numbered heading followed by its page number."""
    return bool(_NUMBER.match(sentence)) and bool(_PAGE_NUMBER.search(sentence)) and len(sentence) <= 50


# --- sentence cues -------------------------------------------------------------------------------------

_DAY = r"[\d一二三四五六七八九十]{1,3}"
_DATE = rf"(?:\d{{4}}|[〇○零一二三四五六七八九]{{4}})\s*年\s*{_DAY}\s*月\s*{_DAY}\s*日"
_DATE_LINE = re.compile(rf"^[（(]?{_DATE}[）)]?(?:印发|发布|印)?$")
_PRINTED_LINE = re.compile(rf"^\S{{2,30}}\s*{_DATE}\s*印发$")
_SIGNATURE_LINE = re.compile(
    r"^(?:抄送|抄报|附件)\s*\d*\s*[:：]|^附件\s*\d*$|^[（(]\s*此件(?:公开发布|主动公开|不予公开|依申请公开)\s*[）)]$|^[（(]此文有删减[）)]$"
)
_AGENCY_LINE = re.compile(
    r"^[\u4e00-\u9fff（）()、\s]{2,40}(?:人民政府|政府|办公厅|办公室|委员会|领导小组|管委会|管理委员会|局|厅|委|省委|市委|县委)$"
)

# Notice boilerplate and page furniture: the line is not part of the plan's own text.
_FORWARDING = re.compile(
    r"印发给你们|转发给你们|印发给各|现将《|现予印发|现印发|现转发|请认真贯彻执行|请认真贯彻落实|请结合实际认真|请认真组织实施"
    r"|请认真抓好|请遵照执行|请认真遵照执行|请结合实际，认真"
)
_FURNITURE = re.compile(
    r"发布时间|发布日期|成文日期|印发日期|信息来源|来源[:：]|索\s*引\s*号|浏览次数|点击次数|阅读次数|当前位置|当前的位置|首页\s*[>»]"
    r"|字号[:：]|打印本页|关闭窗口|扫描二维码|放大字体|发文机关|发布机构|发布单位|发文字号|发文单位|主题分类|效力状态|有效性[:：]"
    r"|文\s*号[:：]|政策级别|政策类型|发文部门|行业类型|联系人[:：]|联系电话|电子邮箱|通讯地址|地址[:：]|邮编|今天是"
)
_DOCUMENT_NUMBER_LINE = re.compile(r"^[（(]?[\u4e00-\u9fff]{1,10}[〔\[［(（]\d{4}[〕\]］)）]\s*\d+\s*号[）)]?$")
_TITLE_END = r"(?:通知|意见|方案|规划|纲要|计划|要点|决定|办法|细则|通告|公告|纪要|报告|文件)"
_TITLE_LINE = re.compile(
    rf"^《?[^，。；;,!！?？:：]{{2,80}}?{_TITLE_END}》?(?:[（(][^（）()]{{0,30}}[）)])*(?:[\u4e00-\u9fff]{{1,10}}[〔\[［]\d{{4}}[〕\]］]\d+号)?$"
)
_NOTICE_TITLE = re.compile(r"^[^，。；;,]{0,60}(?:关于印发|关于转发|转发|印发)[^，。；;,]{0,80}$")
_ADDRESSEES = re.compile(r"^各[^。]{2,200}[:：]")

# A purpose preamble ends by naming the document it introduces.
_DOCUMENT_KIND = r"(?:方案|规划|意见|计划|纲要|办法|细则|要点)"
_PREAMBLE = re.compile(
    rf"(?:制定|制订|编制|出台|提出)了?(?:本|如下|以下|此)[^，。；,;]{{0,6}}?{_DOCUMENT_KIND}"  # 制定本工作方案
    rf"|{_DOCUMENT_KIND}如下|提出(?:如下|以下)|现就[^。]{{2,60}}提出|(?:有关事项|有关工作|具体事项)?通知如下"
)
# A public-consultation notice wrapped around a draft (征求意见稿) is notice boilerplate too.
_CONSULTATION = re.compile(r"征求意见稿|现(?:向社会)?公开征求|征求意见时间|欢迎社会各界|意见请于|反馈至")
# A sentence reporting past work (the schema's 近年来……, 5年来……) unless it turns to what must be done.
_PAST_OPENER = re.compile(
    r"^(?:近年来|近几年来?|多年来|[一二三四五六七八九十\d]+年来|“十[一二三四五六七八九]五”以来|截至目前|过去[一二三四五六七八九十\d]*年)"
)
_DIRECTIVE_TURN = re.compile(r"必须|应当|务必|亟需|亟待|要(?:进一步|加快|加强|继续|切实|坚持|着力|大力|全面|深入)")
_GOALS_OPENER = re.compile(r"^(?:力争)?到\s*(?:20\d\d\s*年|“十[一二三四五六七八九]五”末|本世纪中叶)")


def front_matter_kind(sentence: str, whole_paragraph: bool, in_front: bool) -> str | None:
    """header/signature/preamble for furniture and boilerplate sentences, None for the others.
    ``in_front``: no numbered heading seen yet (titles and addressees are looked for only there)."""
    line = sentence.strip()
    if whole_paragraph and (_DATE_LINE.match(line) or _PRINTED_LINE.match(line) or _SIGNATURE_LINE.match(line)):
        return "signature"
    if _FORWARDING.search(line) or (_FURNITURE.search(line) and len(line) <= 120):
        return "header"
    if whole_paragraph and _DOCUMENT_NUMBER_LINE.match(line):
        return "header"
    if in_front:
        if _PREAMBLE.search(line):
            return "preamble"
        if _CONSULTATION.search(line):
            return "header"
        if whole_paragraph and (_TITLE_LINE.match(line) or _NOTICE_TITLE.match(line)):
            return "header"
        if _ADDRESSEES.match(line) and len(line) <= 200:
            return "header"
    return None


# --- the reader -------------------------------------------------------------------------------------


class _Sections:
    """The open headings, as a stack of (style, kind): a heading closes every open heading at its
    own level or below (the level of a numbering style is the order in which the document first used
    it, the genre's usual 一、 > (一) > 1. > (1) included)."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, str]] = []

    @property
    def kind(self) -> str:
        return self.stack[-1][1] if self.stack else "other"

    def open(self, heading: Heading) -> str:
        while self.stack and self.stack[-1][0] == COLON_STYLE:
            self.stack.pop()
        styles = [style for style, _ in self.stack]
        if heading.style != COLON_STYLE and heading.style in styles:
            del self.stack[styles.index(heading.style) :]
        kind = heading.kind or self.kind
        self.stack.append((heading.style, kind))
        return kind

    def switch_to_goals(self) -> None:
        """A target paragraph (到2025年，……) in a guiding section opens its goals, up to the next heading."""
        self.stack.append((COLON_STYLE, "goals"))


def sentence_kinds(text: str) -> list[KindedSentence]:
    """Every sentence of the text (as ``pipeline.core.documents.sentences`` cuts them) with its kind."""
    simple = normalised(text)
    sections = _Sections()
    in_front = True
    out: list[KindedSentence] = []
    lines: list[int] = []  # indices of the sentences that are a whole paragraph
    for para in paragraphs(simple):
        para_sentences = sentences(simple, para)
        pending: list[int] = []  # sentences of this paragraph since its last placed one (a preamble's lead-in)
        for i, seg in enumerate(para_sentences):
            whole = len(para_sentences) == 1
            kind, in_front = _place(seg.text, whole, i == 0, in_front, sections)
            if kind == "preamble":
                for j in pending:
                    out[j] = _with_kind(out[j], "preamble")
            pending = [] if kind != sections.kind else [*pending, len(out)]
            lines += [len(out)] if whole else []
            out.append(KindedSentence(seg.start, seg.end, text[seg.start : seg.end], kind))
    return _with_signing_bodies(out, simple, lines)


def _with_signing_bodies(out: list[KindedSentence], simple: str, lines: list[int]) -> list[KindedSentence]:
    """A line naming only a body, next to a date line, signs the document (or the notice at its top)."""
    dated = {i for i in lines if _DATE_LINE.match(simple[out[i].start : out[i].end])}
    for i in lines:
        if (i - 1 in dated or i + 1 in dated) and _AGENCY_LINE.match(simple[out[i].start : out[i].end]):
            out[i] = _with_kind(out[i], "signature")
    return out


def _place(sentence: str, whole: bool, opens_paragraph: bool, in_front: bool, sections: _Sections) -> tuple[str, bool]:
    """The kind of one sentence, and whether the front matter still goes on after it."""
    if is_contents_line(sentence):
        return "header", in_front
    heading = read_heading(sentence, whole)
    if heading is not None and heading.style != COLON_STYLE:
        return sections.open(heading), False
    cue = front_matter_kind(sentence, whole, in_front)
    if cue is not None:
        return cue, in_front
    if heading is not None and heading.kind is not None:  # 到2015年，产品质量发展的具体目标：
        return sections.open(heading), in_front
    numbered = _NUMBER.match(sentence) if opens_paragraph else None
    if numbered:  # a numbered running paragraph (三、研判和起草过程 根据……) still ends the sections at its level
        return sections.open(Heading(numbered.lastgroup or "cn", sentence[numbered.end() :], None)), False
    if opens_paragraph and sections.kind == "guiding" and _GOALS_OPENER.match(sentence):
        sections.switch_to_goals()
    if _PAST_OPENER.match(sentence) and not _DIRECTIVE_TURN.search(sentence):
        return "past", in_front
    return sections.kind, in_front


def _with_kind(s: KindedSentence, kind: str) -> KindedSentence:
    return KindedSentence(s.start, s.end, s.text, kind)


class SectionIndex:
    """The section kind at any character offset of a text (``other`` between sentences)."""

    def __init__(self, text: str) -> None:
        self.sentences = sentence_kinds(text)
        self._starts = [s.start for s in self.sentences]

    def kind_at(self, offset: int) -> str:
        i = bisect_right(self._starts, offset) - 1
        return self.sentences[i].kind if i >= 0 and offset < self.sentences[i].end else "other"

    def segments(self) -> list[Segment]:
        return [Segment(s.start, s.end, s.text) for s in self.sentences]

"""WhatsApp "Export chat" text files (iOS and Android, all the date/time styles we have seen), and a writer.

A message starts on a line with a timestamp header; every other line continues the previous message.
The header style depends on phone OS and locale, so one file is read like this:

1. Invisible marks are normalised once, where a line is read: U+FEFF, LRM/RLM, the bidi embeddings and
   isolates (U+202A-U+202E, U+2066-U+2069) are dropped from the header and no-break spaces in it
   become spaces, so one regex per style matches however a phone sprinkled them (before the line,
   after `[`, around every number of an Arabic date). Marks never cost more than a pass over the
   line: nothing here is a regex quantifier over them (a line of 100k marks once took forever).
2. The first line that looks like any header fixes the file's primary *style* (a `Shape`: brackets
   or ` - `, date separator, year first / 2 / 4 digits / era, seconds, 12-hour clock, ...). A style
   that heads at least MIN_STYLE_LINES other lines is taken too (a chat exported on one phone,
   continued on another, files concatenated); a lone line of another style is a pasted quote, i.e.
   text. Which styles a file mixes is reported (DATE_DECISIONS).
3. Dates and times are kept as raw strings (few distinct values) and converted once each at the end.
   Day/month order is inferred per style from the whole file: a field > 12 settles it, then
   chronology, then locale hints; `--date-order` overrides it.
4. iOS marks attachments, deleted messages and notices with a mark at the start of the text, but a
   person may start a message with one too, so the mark alone decides nothing: the localized
   wording (placeholder tables, with any file name before it) makes a placeholder, the notice table
   makes a notice, and a "sender" that never writes one unmarked line is the group's own name
   (iOS writes group events as `<group>: \u200eX added Y`). Everything else is a real message.

Locales seen: iOS and Android, `/ . -` and `13. 6. 2018.` dates, 2/4-digit years, Thai Buddhist-era
years (`2565`, `3/27/2565 BE`), Japanese era dates (`R4/03/27`, `3/27/R4`), Eastern Arabic digits with
U+200F marks and the Arabic comma (م/ص = PM/AM), `a. m.`/`p. m.`, dotted times (21.41.35, 01.55 PM),
the time first (`[21:41:35, 3/27/22]`), `à`/`klo` between date and time, and `: `/`; `/nothing
(after `13. 6. 2018.`) before the sender.

Why this shape: exports of 1M messages are common for long-running chats; this parses them in a few
seconds and keeps only the messages in memory.
"""

from __future__ import annotations

import calendar
import gc
import itertools
import re
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, iter_lines
from .placeholders import MARKS, MEDIA_KINDS, notice_kind, placeholder_kind
from .placeholders import index as placeholder_index

SOURCE = "whatsapp_txt"
RLM = "\u200f"  # RIGHT-TO-LEFT MARK: the same in Arabic and Hebrew exports
LRM = "\u200e"   # LEFT-TO-RIGHT MARK: starts iOS media/system lines; removed from senders and texts
BOM = "\ufeff"  # a byte-order mark inside the text is never meant: removed from texts
NNBSP = "\u202f"  # NARROW NO-BREAK SPACE: before AM/PM since 2023
MARK_SET = frozenset(MARKS)
# Header normalisation: marks dropped (one C-level pass over <= HEAD_CHARS characters, only on the lines
# that have one). No-break spaces stay: the header regexes accept them wherever a space may be.
_HEAD_TABLE = str.maketrans(dict.fromkeys(MARKS))
_NEEDS_NORM = re.compile(f"[{MARKS}]")
_SENDER_TABLE = str.maketrans({**dict.fromkeys(MARKS), "\u00a0": " ", NNBSP: " "})
_SP = "[ \u00a0\u202f]"  # a space in a header: plain, no-break or narrow no-break
HEAD_CHARS = 160  # a header is at most ~50 visible characters; marks beyond this are not a header
MIN_STYLE_LINES = 3  # a second header style counts when it heads this many lines

# 12-hour marker: "PM", "pm", "\u202fPM", "a. m.", "p.\u00a0m.", Arabic "م"/"ص", German "nachm."/"vorm."
_AMPM = rf"(?:{_SP}?(?:[AaPp]\.?{_SP}?[Mm]\.?|[\u0645\u0635]|vorm\.|nachm\.))"
_PM_MARKS = ("p", "\u0645", "nachm")
_ERA = "RHS"  # Japanese eras: Reiwa (2019-), Heisei (1989-2019), Showa (1926-1989)
_ERA_BASE = {"R": 2018, "H": 1988, "S": 1925}

# Any header (on a normalised line), to find the first one and learn the file's styles. `\d` also
# matches Eastern Arabic digits, which int() reads. Dates: "31/12/2023", "31.12.23", "13. 6. 2018.",
# "2019-01-31", "3/27/2565 BE", era "R4/03/27" or "3/27/R4"; times "21:05", "21.41.35", "01.55 PM";
# between them ", ", " ", "، ", " à ", " klo ", " - "; after them "] " (iOS), " - " (Android, also
# with two spaces or an en dash), ": " or "; ", or just " " after a "13. 6. 2018." date.
_DATE_P = (r"(?P<date>(?P<era>[RHS])?(?P<a>\d{1,4})(?P<dsep>\. ?|[/-])(?P<b>\d{1,2})(?P=dsep)"
           r"(?P<era2>[RHS])?(?P<c>\d{1,4})(?P<dend>\.)?(?P<be> BE)?)")
_TIME_P = r"(?P<time>\d{1,2}(?P<tsep>[:.])\d{2}(?P<sec>(?P=tsep)\d{2})?(?P<ampm>" + _AMPM + r")?)"
_PROBE = re.compile(
    r"(?P<br>\[)?" + _DATE_P + r"(?P<dts>,? |\u060c ?| \u00e0 | klo | - )" + _TIME_P
    + r"(?P<end>(?(br)\] |(?: {1,2}[-\u2013] |: |; |(?(dend) (?![-\u2013:;] )|(?!)))))")
_PROBE_NB = str.maketrans({"\u00a0": " ", NNBSP: " "})  # the probe reads plain spaces
_PROBE_TIME_FIRST = re.compile(r"\[" + _TIME_P + r", " + _DATE_P + r"\] ")
# Looks like the start of a header (date, then a time within a few characters): what the one-line
# error quotes when a file is not read, so that the user can report the style we missed.
_LOOSE = re.compile(r"\W{0,3}\d{1,4}[^\n]{0,24}?\d{1,2}[:.]\d{2}")

_DIGITS = re.compile(r"\d+")


class Shape(NamedTuple):
    """What the headers of one style look like."""

    ios: bool  # "[date, time] Name: text" (else Android "date, time - Name: text")
    sep: str  # date separator: "/", ".", "-" or ". " ("13. 6. 2018.")
    year_first: bool  # 2019/01/31 (and Japanese era dates R4/03/27)
    year_digits: int  # 2 or 4 (0 for an era year: "R4/03/27", or "3/27/R4" when not year_first)
    seconds: bool
    twelve_hour: bool
    time_sep: str = ":"  # ":" or "." ("21.41.35")
    date_end: str = ""  # after the year: "." ("13. 6. 2018."), " BE" (Buddhist era), ". BE"
    between: str = ", "  # between date and time: ", ", " ", "، ", " à ", " klo ", " - "
    end: str = " - "  # after the header: "] ", " - ", ": ", "; ", " "
    time_first: bool = False  # "[21:41:35, 3/27/22] "


def _shape_of(m: re.Match, time_first: bool = False) -> Shape | None:
    """The shape of a probe match, or None when its digit counts fit no real date layout."""
    g = m.groupdict()
    first, last = g["a"], g["c"]
    if g["era"] and g["era2"]:
        return None
    if g["era"] or g["era2"]:
        if len(first) > 2 or len(last) > 2:
            return None
        year_first, year_digits = bool(g["era"]), 0
    elif len(first) == 4 and len(last) <= 2:
        year_first, year_digits = True, 4
    elif len(first) <= 2 and len(last) in (2, 4):
        year_first, year_digits = False, len(last)
    else:
        return None
    date_end = (g["dend"] or "") + (g["be"] or "")
    if g["be"] and (year_digits != 4 or year_first):
        return None
    if time_first:
        return Shape(True, g["dsep"], year_first, year_digits, g["sec"] is not None, g["ampm"] is not None,
                     g["tsep"], date_end, ", ", "] ", True)
    ios = g["br"] is not None
    end = "] " if ios else (" - " if g["end"].strip() in ("-", "\u2013") else g["end"])
    return Shape(ios, g["dsep"], year_first, year_digits, g["sec"] is not None, g["ampm"] is not None,
                 g["tsep"], date_end, g["dts"], end, False)


@lru_cache(maxsize=64)
def header_regex(shape: Shape) -> re.Pattern:
    """The regex of one style's headers, matched against a normalised line. Groups: raw date, raw time
    (raw time first for `time_first` styles); the match ends where the sender starts."""
    s = re.escape(shape.sep)
    if shape.year_digits == 0:
        date_rx = (rf"[{_ERA}]\d{{1,2}}{s}\d{{1,2}}{s}\d{{1,2}}" if shape.year_first
                   else rf"\d{{1,2}}{s}\d{{1,2}}{s}[{_ERA}]\d{{1,2}}")
    elif shape.year_first:
        date_rx = rf"\d{{4}}{s}\d{{1,2}}{s}\d{{1,2}}"
    else:
        date_rx = rf"\d{{1,2}}{s}\d{{1,2}}{s}\d{{{shape.year_digits}}}"
    date_rx += re.escape(shape.date_end)
    t = re.escape(shape.time_sep)
    time_rx = rf"\d{{1,2}}{t}\d{{2}}" + (rf"{t}\d{{2}}" if shape.seconds else "") + (
        _AMPM if shape.twelve_hour else "")
    if shape.time_first:
        return re.compile(rf"\[({time_rx}), ({date_rx})\] ")
    between = f",?{_SP}" if shape.between in (", ", " ") else re.escape(shape.between)
    if shape.ios:
        return re.compile(rf"\[({date_rx}){between}({time_rx})\] ")
    if shape.end.strip() == "-":
        return re.compile(rf"({date_rx}){between}({time_rx}) {{1,2}}[-\u2013] ")
    if shape.end == " ":
        return re.compile(rf"({date_rx}){between}({time_rx}) (?![-\u2013:;] )")
    return re.compile(rf"({date_rx}){between}({time_rx}){re.escape(shape.end)}")


def _start_of_header(line: str) -> str | None:
    """`line` without its leading marks when it could start a header ("[", a digit, an era letter)."""
    if line and line[0] in MARK_SET:
        line = line.lstrip(MARKS)
    c = line[:1]
    if c == "[" or c.isdigit() or (c in _ERA and c != ""):
        return line
    return None


def _normalised_head(s: str) -> tuple[str, bool]:
    """The first HEAD_CHARS characters of `s` with marks dropped, and whether anything was dropped
    (then header positions must be mapped back to `s`)."""
    head = s[:HEAD_CHARS]
    if _NEEDS_NORM.search(head) is None:
        return head, False
    norm = head.translate(_HEAD_TABLE)
    return norm, len(norm) != len(head)


def _orig_end(s: str, end: int) -> int:
    """Index in `s` just after its `end`-th character that is not a mark."""
    kept = 0
    for i, ch in enumerate(s):
        if kept == end:
            return i
        if ch not in MARK_SET:
            kept += 1
    return len(s)


def find_shape(line: str) -> Shape | None:
    """The header shape of `line`, or None if it is not a WhatsApp header."""
    s = _start_of_header(line)
    if s is None:
        return None
    head = _normalised_head(s)[0].translate(_PROBE_NB)
    m = _PROBE.match(head)
    if m is not None:
        return _shape_of(m)
    m = _PROBE_TIME_FIRST.match(head)
    return _shape_of(m, time_first=True) if m is not None else None


def near_miss(lines: Iterable[str]) -> tuple[int, str] | None:
    """(line number, line) of the first line that looks like a message header but no WhatsApp style
    reads, for the one-line error of a file that is not read."""
    for n, line in enumerate(lines, 1):
        s = _start_of_header(line)
        if s is None:
            continue
        head = _normalised_head(s)[0].translate(_PROBE_NB)
        if _LOOSE.match(head) and find_shape(line) is None:
            return n, line
    return None


# ---------------------------------------------------------------------------------------------- detect

def _detect(sniff: Sniff) -> bool:
    """The first non-empty line is a header, and at least 1 in 5 head lines has its shape.

    Real exports start with a header (the encryption notice or the first message); accepting one
    further down would let a header-like line inside another format's first message claim the file.
    Multi-line messages make many lines continuations, so "most lines" would be too strict.
    """
    lines = [ln for ln in sniff.lines if ln.strip(MARKS).strip()]  # a line of marks only is blank
    shape = find_shape(lines[0]) if lines else None
    if shape is None:
        return False
    style = _Style(shape, 0, 1, lines[0])
    hits = sum(1 for line in lines if style.split(line) is not None)
    return hits * 5 >= len(lines)


# ----------------------------------------------------------------------------------------------- parse

class _Style:
    """One header style of a file, compiled: `split(line)` -> (raw date, raw time, rest) or None."""

    __slots__ = ("shape", "match", "index", "first_line", "example", "twelve", "time_first", "lines")

    def __init__(self, shape: Shape, index: int, first_line: int, example: str):
        self.shape, self.index, self.first_line = shape, index, first_line
        self.match = header_regex(shape).match
        head = _normalised_head(example.lstrip(MARKS))[0]
        m = self.match(head)
        self.example = head[:m.end()] if m is not None else ""  # the header only: no names, no text
        self.twelve, self.time_first = shape.twelve_hour, shape.time_first
        self.lines = 0

    def split(self, line: str) -> tuple[str, str, str] | None:
        s = _start_of_header(line)
        if s is None:
            return None
        head, dropped = _normalised_head(s)
        m = self.match(head)
        if m is None:
            return None
        end = m.end()
        rest = s[_orig_end(s, end):] if dropped else s[end:]
        if self.time_first:
            return m.group(2), m.group(1), rest
        return m.group(1), m.group(2), rest


def _time_part(raw: str, twelve_hour: bool) -> str | None:
    """"9:05:07 PM" -> "T21:05:07" ("T..:..:00" without seconds); None if out of range.

    12 AM is 00:xx and 12 PM is 12:xx. An hour above 12 with a marker is taken as 24-hour.
    """
    nums = [int(x) for x in _DIGITS.findall(raw)]
    h, mi, sec = nums[0], nums[1], (nums[2] if len(nums) > 2 else 0)
    if twelve_hour and h <= 12:
        low = raw.lower()
        h = h % 12 + (12 if any(p in low for p in _PM_MARKS) else 0)
    if h > 23 or mi > 59 or sec > 59:
        return None
    return f"T{h:02d}:{mi:02d}:{sec:02d}"


def _parse(path: Path) -> list[Message]:
    """Find the first header (it fixes the primary style), read the file once with it, and once more
    when other styles head enough lines to be the file's own."""
    lineno = 0
    for line in iter_lines(path):
        lineno += 1
        shape = find_shape(line)
        if shape is not None:
            break
    else:
        near = near_miss(iter_lines(path))
        hint = (f"; line {near[0]} looks like one but was not understood: {near[1][:80]!r} (please report "
                "this style)") if near else ""
        raise InputError("no WhatsApp message header (like '31/12/2023, 21:05 - Name: text') found" + hint, path,
                         near[0] if near else None)
    styles = [_Style(shape, 0, lineno, line)]
    decisions: list[tuple[str, str, str]] = []
    with no_gc():
        msgs, others = _parse_lines(path, styles, decisions)
        extra = [(first, shape, ex) for shape, (count, first, ex) in others.items() if count >= MIN_STYLE_LINES]
        if extra:
            styles += [_Style(shape, i + 1, first, ex) for i, (first, shape, ex) in enumerate(sorted(extra))]
            decisions.clear()
            msgs, _ = _parse_lines(path, styles, decisions)
    DATE_DECISIONS.extend(decisions)
    return msgs


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a million acyclic objects.

    Each Message is a tracked container, so the collector would otherwise walk the growing list again
    and again (about a quarter of the parse time at 1M messages). Nothing built here forms cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _clean_text(text: str) -> str:
    if text and text[0] in MARK_SET:
        text = text.lstrip(MARKS)
    if LRM in text:
        text = text.replace(LRM, "")
    if BOM in text:
        text = text.replace(BOM, "")
    return text


def _parse_lines(path: Path, styles: list[_Style], decisions: list[tuple[str, str, str]]
                 ) -> tuple[list[Message], dict[Shape, list]]:
    """The single pass over all lines with the given styles (primary first).

    Returns the messages and, for every other style that some non-header line shows, [count, first
    line, example]. Timestamps are first stored as the time part only; `_fill_dates` prefixes the
    dates once the day/month order of each style is known.
    """
    idx = placeholder_index()
    exact, edges, tail_words = idx.exact, idx.edges, idx.tail_words
    known = {s.shape for s in styles}
    for st in styles:
        st.lines = 0
    primary = styles[0]
    fast = primary.match
    msgs: list[Message] = []
    append = msgs.append
    senders: dict[str, str] = {}  # raw -> cleaned, and one string object per sender
    times: dict[str, str] = {}  # raw time -> "THH:MM:SS" (12-hour raw times always carry their marker)
    dates: list[dict[str, int]] = [{} for _ in styles]  # per style: raw date -> line it first appears on
    runs: list[tuple[int, str, int]] = []  # (style, raw date, index of the first message after it changed)
    others: dict[Shape, list] = {}
    marked: list[int] = []  # indexes of iOS messages whose only sign of being a notice is a leading mark
    cur_raw: str | None = None
    cur_style: _Style | None = None
    cur: Message | None = None  # message being continued; None after a system line
    cont: list[str] = []
    lines = iter_lines(path)
    for _ in itertools.islice(lines, primary.first_line - 1):
        pass
    lineno = primary.first_line - 1
    for line in lines:
        lineno += 1
        m = fast(line)  # the common line: primary style, no marks
        if m is not None:
            style = primary
            end = m.end()
            parts = (m.group(2), m.group(1), line[end:]) if primary.time_first else (
                m.group(1), m.group(2), line[end:])
        else:
            parts = style = None
            for st in styles:
                parts = st.split(line)
                if parts is not None:
                    style = st
                    break
        if parts is None:
            cont.append(line)
            if line and (line[0] in "[0123456789" or line[0] in MARK_SET or line[0].isdigit()):
                shape = find_shape(line)
                if shape is not None and shape not in known:
                    seen = others.get(shape)
                    if seen is None:
                        others[shape] = [1, lineno, line]
                    else:
                        seen[0] += 1
            continue
        if cont:
            if cur is not None:
                _append_lines(cur, cont)
            cont = []
        raw_date, raw_time, rest = parts
        style.lines += 1
        if raw_date != cur_raw or style is not cur_style:
            cur_raw, cur_style = raw_date, style
            dates[style.index].setdefault(raw_date, lineno)
            runs.append((style.index, raw_date, len(msgs)))
        t = times.get(raw_time)
        if t is None:
            t = _time_part(raw_time.translate(_PROBE_NB), style.twelve)
            if t is None:
                raise InputError(f"invalid time {raw_time!r} in a WhatsApp header", path, lineno)
            times[raw_time] = t
        i = rest.find(": ")
        if i >= 0:
            raw_sender, text = rest[:i], rest[i + 2:]
        elif rest.endswith(":"):  # "Name:" and the text starts on the next line
            raw_sender, text = rest[:-1], ""
        else:  # Android system line: "X added Y", "Messages and calls are end-to-end encrypted..."
            cur = None
            continue
        lead_mark = bool(text) and text[0] in MARK_SET
        had_mark = lead_mark or LRM in text or BOM in text or RLM in text
        if had_mark:
            text = _clean_text(text)
        kind = exact.get(text)
        # iOS puts a mark before the wording of a named attachment: "Notes.txt \u200edocument omitted"
        if kind is None and text and (lead_mark or text[0] in edges or text[-1] in edges or "://" in text
                                      or (had_mark and text[text.rfind(" ") + 1:] in tail_words)):
            kind = placeholder_kind(text, lead_mark)
        sender = senders.get(raw_sender)
        if sender is None:
            sender = senders[raw_sender] = raw_sender.translate(_SENDER_TABLE).strip()
        if lead_mark and kind is None and style.shape.ios:
            if notice_kind(text) is not None:  # "Messages and calls are end-to-end encrypted", security code
                cur = None
                continue
            marked.append(len(msgs))
        cur = Message(sender, text, t, "", SOURCE, kind in MEDIA_KINDS, kind)
        append(cur)
    if cont and cur is not None:
        _append_lines(cur, cont)
    _fill_dates(path, msgs, dates, runs, styles, times, decisions)
    if marked:  # real people write at least one line without a leading mark (or a placeholder)
        flagged = set(marked)
        persons = {m.sender for i, m in enumerate(msgs) if i not in flagged}
        group = {i for i in marked if msgs[i].sender not in persons}
        if group:  # the group's own notices ("<group>: \u200eX added Y"); their continuation lines go too
            msgs = [m for i, m in enumerate(msgs) if i not in group]
    return msgs, others


def _append_lines(msg: Message, cont: list[str]) -> None:
    more = "\n".join([_clean_text(c) if c and c[0] in MARK_SET else c for c in cont])
    if LRM in more:
        more = more.replace(LRM, "")
    if BOM in more:
        more = more.replace(BOM, "")
    msg.text = msg.text + "\n" + more
    if msg.placeholder is None and "://" in more:  # Android venue: "name\naddress\nhttps://foursquare.com/v/..."
        kind = placeholder_kind(msg.text)
        if kind is not None:
            msg.placeholder, msg.media = kind, kind in MEDIA_KINDS


# ----------------------------------------------------------------------------------------------- dates

# --date-order (set by the pipeline for a run; None = infer per file) and what each file got, for the
# run's summary and stats.json: [(file, order, why)].
DATE_ORDER: str | None = None
DATE_DECISIONS: list[tuple[str, str, str]] = []


def _infer_order(parsed: dict[str, tuple[int, int, int]], runs: list[tuple[str, int]],
                 shape: Shape, raw_times: Iterable[str] = ()) -> tuple[str, str]:
    """("dmy" or "mdy", why) for a file whose dates are `a<sep>b<sep>year`, judged on the whole file.

    1. A first field > 12 means day first; a middle field > 12 means month first.
    2. Otherwise the reading in which the dates (in file order) go backwards fewer times.
    3. Otherwise locale hints: "a. m."/"p. m." (Spanish), "vorm."/"nachm.", Arabic marks, dotted
       times and 24-hour clocks are day-first locales; a plain AM/PM clock and unpadded M/D/YY are US.
    """
    a_big = any(a > 12 for a, _, _ in parsed.values())
    b_big = any(b > 12 for _, b, _ in parsed.values())
    if a_big != b_big:
        return ("dmy", "a first field > 12") if a_big else ("mdy", "a middle field > 12")
    if a_big:  # both: the reading with fewer impossible dates wins (the rest are reported)
        bad_dmy = sum(b > 12 for _, b, _ in parsed.values())
        bad_mdy = sum(a > 12 for a, _, _ in parsed.values())
        if bad_dmy != bad_mdy:
            return ("dmy" if bad_dmy < bad_mdy else "mdy"), "fewer impossible dates"
    seq = [parsed[raw] for raw, _ in runs]
    back_dmy = sum((q[2], q[1], q[0]) < (p[2], p[1], p[0]) for p, q in zip(seq, seq[1:]))
    back_mdy = sum((q[2], q[0], q[1]) < (p[2], p[0], p[1]) for p, q in zip(seq, seq[1:]))
    if back_dmy != back_mdy:
        return ("dmy" if back_dmy < back_mdy else "mdy"), "dates in order (chronology)"
    if shape.twelve_hour:
        sample = " ".join(itertools.islice(raw_times, 50)).lower()
        if any(h in sample for h in ("a. m.", "p. m.", "vorm.", "nachm.", "\u0645", "\u0635")) \
                or shape.time_sep == "." or shape.sep != "/":
            return "dmy", "locale hint (day-first 12-hour markers / separators)"
        return "mdy", "locale hint (US 12-hour clock)"
    if shape.sep == "/" and shape.year_digits == 2 and any(
            len(part) == 1 for raw in parsed for part in raw.split("/")[:2]):
        return "mdy", "locale hint (unpadded M/D/YY)"
    return "dmy", "locale hint (24-hour clock: day first)"


def _year(y: int, raw: str) -> int:
    """Full year: 2-digit years are 20xx, Thai Buddhist-era years (2565) are 543 ahead, and Japanese
    era years count from the era (R1 = 2019, H1 = 1989, S1 = 1926)."""
    for era in _ERA:
        if era in raw:
            return y + _ERA_BASE[era]
    if y < 100:
        return y + 2000
    if y >= 2400:
        return y - 543
    return y


def _fill_dates(path: Path, msgs: list[Message], dates: list[dict[str, int]], runs: list[tuple[int, str, int]],
                styles: list[_Style], raw_times: Iterable[str], decisions: list[tuple[str, str, str]]) -> None:
    """Convert each distinct raw date once per style, then prefix it to the time part of its messages;
    the order chosen for each style (and why) goes to `decisions`."""
    iso: list[dict[str, str]] = []
    used = [s for s in styles if s.lines]
    for style in styles:
        style_dates = dates[style.index]
        parsed = {raw: tuple(int(x) for x in _DIGITS.findall(raw)) for raw in style_dates}
        style_runs = [(raw, start) for si, raw, start in runs if si == style.index]
        shape = style.shape
        if not parsed:
            iso.append({})
            continue
        if shape.year_first:
            order, why = "ymd", "year first"
        elif DATE_ORDER in ("dmy", "mdy", "ymd"):
            order, why = DATE_ORDER, "--date-order"
        else:
            style_times = [t.translate(_PROBE_NB) for t in raw_times
                           if (_AMPM_RE.search(t) is not None) == shape.twelve_hour]
            order, why = _infer_order(parsed, style_runs, shape, style_times)
        if len(used) > 1:
            why = (f"{why}; the file mixes {len(used)} header styles, this one from line {style.first_line} "
                   f"({style.example!r}, {style.lines} messages)")
        decisions.append((str(path), order, why))
        conv: dict[str, str] = {}
        for raw, (a, b, c) in parsed.items():
            y, mo, d = (a, b, c) if order == "ymd" else (c, b, a) if order == "dmy" else (c, a, b)
            y = _year(y, raw)
            if not (1 <= mo <= 12 and 1 <= d <= 31 and 1 <= y <= 9998) or d > _days_in_month(y, mo):
                raise InputError(f"invalid date {raw!r} (the file's dates read as {order.upper()}; "
                                 f"override with --date-order dmy|mdy|ymd)", path, style_dates[raw])
            conv[raw] = f"{y:04d}-{mo:02d}-{d:02d}"
        iso.append(conv)
    ends = [start for _, _, start in runs[1:]] + [len(msgs)]
    for (si, raw, start), end in zip(runs, ends):
        day = iso[si][raw]
        for i in range(start, end):
            m = msgs[i]
            m.timestamp = day + m.timestamp


_AMPM_RE = re.compile(_AMPM + "$")


def _days_in_month(y: int, mo: int) -> int:
    return calendar.monthrange(y, mo)[1]


# ---------------------------------------------------------------------------------------------- writer

_DateFmt = Callable[[int, int, int], str]
_TimeFmt = Callable[[int, int, int], str]


def _h12(h: int) -> tuple[int, str]:
    return (h % 12 or 12), ("AM" if h < 12 else "PM")


# style -> (ios, date format (y, m, d), time format (h, m, s))
_STYLES: dict[str, tuple[bool, _DateFmt, _TimeFmt]] = {
    # 31/12/2023, 21:05 - Name: text
    "android_24h": (False, lambda y, m, d: f"{d:02d}/{m:02d}/{y:04d}", lambda h, mi, s: f"{h:02d}:{mi:02d}"),
    # 12/31/23, 9:05\u202fPM - Name: text
    "android_us_12h": (False, lambda y, m, d: f"{m}/{d}/{y % 100:02d}",
                       lambda h, mi, s: "{}:{:02d}\u202f{}".format(_h12(h)[0], mi, _h12(h)[1])),
    # 31.12.23, 21:05 - Name: text
    "android_de_24h": (False, lambda y, m, d: f"{d:02d}.{m:02d}.{y % 100:02d}",
                       lambda h, mi, s: f"{h:02d}:{mi:02d}"),
    # [31.12.23, 21:05:07] Name: text
    "ios_24h": (True, lambda y, m, d: f"{d:02d}.{m:02d}.{y % 100:02d}",
                lambda h, mi, s: f"{h:02d}:{mi:02d}:{s:02d}"),
    # [12/31/23, 9:05:07\u202fPM] Name: text
    "ios_us_12h": (True, lambda y, m, d: f"{m}/{d}/{y % 100:02d}",
                   lambda h, mi, s: "{}:{:02d}:{:02d}\u202f{}".format(_h12(h)[0], mi, s, _h12(h)[1])),
}
WHATSAPP_STYLES: tuple[str, ...] = tuple(_STYLES)

_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?")


def format_whatsapp(messages: Iterable[Message], style: str = "android_24h") -> str:
    """Write messages as a WhatsApp export in one of WHATSAPP_STYLES (for sample data and benchmarks).

    What the format cannot hold is the caller's to avoid: senders with ": " or a newline, text lines
    that look like a header, seconds in the Android styles (dropped), years outside 2000-2099 in the
    2-digit-year styles. Timestamps are read as `YYYY-MM-DDTHH:MM[:SS]`; any offset is ignored.
    Messages without a sender or timestamp raise ValueError.
    """
    try:
        ios, date_fmt, time_fmt = _STYLES[style]
    except KeyError:
        raise ValueError(f"unknown WhatsApp style {style!r}; known: {', '.join(WHATSAPP_STYLES)}") from None
    open_, mid, close = ("[", ", ", "] ") if ios else ("", ", ", " - ")
    day_cache: dict[str, str] = {}
    time_cache: dict[str, str] = {}
    out: list[str] = []
    for msg in messages:
        ts = msg.timestamp
        g = _ISO.match(ts) if ts else None
        if g is None or msg.sender is None:
            raise ValueError(f"format_whatsapp needs a sender and an ISO timestamp: {msg!r}")
        day = day_cache.get(ts[:10])
        if day is None:
            day = day_cache[ts[:10]] = date_fmt(int(g[1]), int(g[2]), int(g[3]))
        key = ts[11:19]
        clock = time_cache.get(key)
        if clock is None:
            clock = time_cache[key] = time_fmt(int(g[4]), int(g[5]), int(g[6] or 0))
        out.append(f"{open_}{day}{mid}{clock}{close}{msg.sender}: {msg.text}")
    out.append("")
    return "\n".join(out)


PARSERS = [
    Parser(SOURCE, _detect, _parse, priority=30,
           description="WhatsApp 'Export chat' .txt (iOS [date, time] Name: / Android date, time - Name:)"),
]

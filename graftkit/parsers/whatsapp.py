"""WhatsApp "Export chat" text files (iOS and Android, all the date/time styles we have seen), and a writer.

A message starts on a line with a timestamp header; every other line continues the previous message.
The header style depends on phone OS and locale, so one file is read like this:

1. The first line that looks like any header fixes the file's *shape*: brackets (iOS) or ` - ` (Android),
   date separator, year first / 2 / 4 digits, seconds, 12-hour clock. Lines with another shape are
   continuations (a pasted `[1.2.2019, 00:00:00] x: y` inside a message is text, not a message).
2. One regex compiled for that shape matches every line; nothing else runs per line except a split
   on the first `": "`. Dates and times are kept as the raw strings (few distinct values) and
   converted once each at the end.
3. Day/month order is inferred from the whole file: a field > 12 settles it, then chronology (the
   reading with fewer backward jumps wins), then locale hints; `--date-order` overrides it, and the
   order chosen for each file (and why) is reported (DATE_DECISIONS).

Locales seen: iOS and Android, `/ . -` and `13. 6. 2018.` dates, 2/4-digit years, Thai Buddhist-era
years (2565 = 2022), Japanese era dates (R4/03/27), Eastern Arabic digits with U+200F marks and the
Arabic comma (م/ص = PM/AM), `a. m.`/`p. m.`, dotted times (21.41.35, 01.55 PM), the time first
(`[21:41:35, 3/27/22]`), `à`/`klo` between date and time, and `: `/`; ` after the time.

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
from .placeholders import MEDIA_KINDS, placeholder_kind
from .placeholders import index as placeholder_index

SOURCE = "whatsapp_txt"
LRM = "\u200e"   # LEFT-TO-RIGHT MARK: starts iOS media/system lines; removed from senders and texts
NNBSP = "\u202f"  # NARROW NO-BREAK SPACE: before AM/PM since 2023

# 12-hour marker: "PM", "pm", "\u202fPM", "a. m.", "p. m.", Arabic "م"/"ص", German "nachm."/"vorm."
_AMPM = r"(?:[ \u202f\u00a0]?(?:[AaPp]\.?[ \u202f\u00a0]?[Mm]\.?|[\u0645\u0635]|vorm\.|nachm\.))"
_PM_MARKS = ("p", "\u0645", "nachm")
_BIDI = "[\u200e\u200f]*"  # LRM/RLM: Arabic and Hebrew exports put them around the fields

# Any header, to find the first one and learn the file's shape. `\d` also matches Eastern Arabic
# digits (٠-٩), which int() reads. Dates: "31/12/2023", "31.12.23", "13. 6. 2018.", "2019-01-31",
# Japanese era "R4/03/27"; times "21:05", "21.41.35", "01.55 PM"; between them ", ", " ", "، ",
# " à ", " klo ", " - "; after them "] " (iOS), " - " (Android, also with two spaces), ": " or "; "
# (old iOS and some Android builds). iOS may also write the time first: "[21:41:35, 3/27/22] ".
_DATE_P = (r"(?P<date>(?P<era>[RH])?(?P<a>\d{1,4})\u200f?(?P<dsep>\. ?|[/-])(?P<b>\d{1,2})\u200f?(?P=dsep)"
           r"(?P<c>\d{1,4})(?P<dend>\.)?)")
_TIME_P = r"(?P<time>\d{1,2}(?P<tsep>[:.])\d{2}(?P<sec>(?P=tsep)\d{2})?(?P<ampm>" + _AMPM + r")?)"
_PROBE = re.compile(
    r"\u200e*(?P<br>\[)?" + _BIDI + _DATE_P + _BIDI + r"(?P<dts>,? |\u060c ?| \u00e0 | klo | - )" + _BIDI
    + _TIME_P + _BIDI + r"(?P<end>(?(br)\] |(?: {1,2}[-\u2013] |: |; )))")
_PROBE_TIME_FIRST = re.compile(r"\u200e*\[" + _BIDI + _TIME_P + r", " + _BIDI + _DATE_P + _BIDI + r"\] ")

_DIGITS = re.compile(r"\d+")


class Shape(NamedTuple):
    """What one file's headers look like; all headers of a file must have the same shape."""

    ios: bool  # "[date, time] Name: text" (else Android "date, time - Name: text")
    sep: str  # date separator: "/", ".", "-" or ". " ("13. 6. 2018.")
    year_first: bool  # 2019/01/31 (and Japanese era dates R4/03/27)
    year_digits: int  # 2 or 4 (0 for an era year)
    seconds: bool
    twelve_hour: bool
    time_sep: str = ":"  # ":" or "." ("21.41.35")
    date_end: str = ""  # "." after the year ("13. 6. 2018.")
    between: str = ", "  # between date and time: ", ", " ", "، ", " à ", " klo ", " - "
    end: str = " - "  # after the header: "] ", " - ", ": ", "; "
    time_first: bool = False  # "[21:41:35, 3/27/22] "
    bidi: bool = False  # LRM/RLM marks around the fields


def _shape_of(m: re.Match, time_first: bool = False) -> Shape | None:
    """The shape of a probe match, or None when its digit counts fit no real date layout."""
    g = m.groupdict()
    first, last = g["a"], g["c"]
    if g["era"]:
        if len(first) > 2 or len(last) > 2:
            return None
        year_first, year_digits = True, 0
    elif len(first) == 4 and len(last) <= 2:
        year_first, year_digits = True, 4
    elif len(first) <= 2 and len(last) in (2, 4):
        year_first, year_digits = False, len(last)
    else:
        return None
    line = m.group(0)
    bidi = "\u200f" in line or "\u200e" in line.lstrip("\u200e")
    if time_first:
        return Shape(True, g["dsep"], year_first, year_digits, g["sec"] is not None, g["ampm"] is not None,
                     g["tsep"], g["dend"] or "", ", ", "] ", True, bidi)
    ios = g["br"] is not None
    end = "] " if ios else (" - " if g["end"].strip() in ("-", "\u2013") else g["end"])
    return Shape(ios, g["dsep"], year_first, year_digits, g["sec"] is not None, g["ampm"] is not None,
                 g["tsep"], g["dend"] or "", g["dts"], end, False, bidi)


@lru_cache(maxsize=64)
def header_regex(shape: Shape) -> re.Pattern:
    """The one regex for all headers of a file. Groups: leading U+200E, raw date, raw time, rest of line
    (raw time before raw date for `time_first` shapes)."""
    s = ("\u200f?" if shape.bidi else "") + re.escape(shape.sep)
    if shape.year_first:
        year = r"[RH]\d{1,2}" if shape.year_digits == 0 else r"\d{4}"
        date_rx = rf"{year}{s}\d{{1,2}}{s}\d{{1,2}}"
    else:
        date_rx = rf"\d{{1,2}}{s}\d{{1,2}}{s}\d{{{shape.year_digits}}}"
    date_rx += re.escape(shape.date_end)
    t = re.escape(shape.time_sep)
    time_rx = rf"\d{{1,2}}{t}\d{{2}}" + (rf"{t}\d{{2}}" if shape.seconds else "") + (
        _AMPM if shape.twelve_hour else "")
    b = _BIDI if shape.bidi else ""
    if shape.time_first:
        return re.compile(rf"(\u200e*)\[{b}({time_rx}), {b}({date_rx}){b}\] (.*)", re.DOTALL)
    lead = rf"(\u200e*){b}"
    between = ",? " if shape.between in (", ", " ") else re.escape(shape.between)
    if shape.ios:
        head = rf"(\u200e*)\[{b}({date_rx}){b}{between}{b}({time_rx}){b}\] "
    elif shape.end.strip() == "-":
        head = rf"{lead}({date_rx}){b}{between}{b}({time_rx}){b} {{1,2}}[-\u2013] "
    else:
        head = rf"{lead}({date_rx}){b}{between}{b}({time_rx}){b}{re.escape(shape.end)}"
    return re.compile(head + "(.*)", re.DOTALL)


def find_shape(line: str) -> Shape | None:
    """The header shape of `line`, or None if it is not a WhatsApp header."""
    m = _PROBE.match(line)
    if m is not None:
        return _shape_of(m)
    m = _PROBE_TIME_FIRST.match(line)
    return _shape_of(m, time_first=True) if m is not None else None


# ---------------------------------------------------------------------------------------------- detect

def _detect(sniff: Sniff) -> bool:
    """The first non-empty line is a header, and at least 1 in 5 head lines has its shape.

    Real exports start with a header (the encryption notice or the first message); accepting one
    further down would let a header-like line inside another format's first message claim the file.
    Multi-line messages make many lines continuations, so "most lines" would be too strict.
    """
    lines = sniff.lines
    shape = find_shape(lines[0]) if lines else None
    if shape is None:
        return False
    match = header_regex(shape).match
    hits = sum(1 for line in lines if match(line))
    return hits * 5 >= len(lines)


# ----------------------------------------------------------------------------------------------- parse

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
    """Find the first header (it fixes the file's shape), then hand the rest to the single pass."""
    lines = iter_lines(path)
    lineno = 0
    for line in lines:
        lineno += 1
        shape = find_shape(line)
        if shape is not None:
            with no_gc():
                return _parse_lines(path, itertools.chain([line], lines), lineno, shape)
    raise InputError("no WhatsApp message header (like '31/12/2023, 21:05 - Name: text') found", path)


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


def _parse_lines(path: Path, lines: Iterator[str], lineno: int, shape: Shape) -> list[Message]:
    """The single pass over all lines, starting at the first header (line `lineno`).

    Timestamps are first stored as the time part only; `_fill_dates` prefixes the dates once the
    day/month order of the whole file is known.
    """
    match = header_regex(shape).match
    idx = placeholder_index()
    exact, edges = idx.exact, idx.edges
    twelve, ios, time_first = shape.twelve_hour, shape.ios, shape.time_first
    msgs: list[Message] = []
    append = msgs.append
    senders: dict[str, str] = {}  # raw -> cleaned, and one string object per sender
    times: dict[str, str] = {}  # raw time -> "THH:MM:SS"
    dates: dict[str, int] = {}  # raw date -> line it first appears on
    runs: list[tuple[str, int]] = []  # (raw date, index of the first message after it changed)
    cur_date = None
    cur: Message | None = None  # message being continued; None after a system line
    cont: list[str] = []
    lineno -= 1
    for line in lines:
        lineno += 1
        m = match(line)
        if m is None:
            cont.append(line)
            continue
        if cont:
            if cur is not None:
                _append_lines(cur, cont)
            cont = []
        if time_first:
            lrm, raw_time, raw_date, rest = m.groups()
        else:
            lrm, raw_date, raw_time, rest = m.groups()
        if raw_date != cur_date:
            cur_date = raw_date
            dates.setdefault(raw_date, lineno)
            runs.append((raw_date, len(msgs)))
        t = times.get(raw_time)
        if t is None:
            t = _time_part(raw_time, twelve)
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
        kind = exact.get(text)
        if kind is None and text and (text[0] in edges or text[-1] in edges or "://" in text):
            kind = placeholder_kind(text)
        if LRM in text:
            # iOS starts the text of every attachment, deleted message and system line with U+200E, in
            # every language. The line itself starts with U+200E for attachments and deleted messages
            # (they have a real sender); group events ("<group name>: \u200eX added Y") do not, and
            # are no messages at all (after a rename the "sender" is the new group name).
            if ios and text.startswith(LRM):
                clean = text.replace(LRM, "")
                kind = kind or placeholder_kind(clean)
                if not lrm and kind is None:
                    cur = None
                    continue
                kind = kind or "media"
            text = text.replace(LRM, "")
        sender = senders.get(raw_sender)
        if sender is None:
            sender = senders[raw_sender] = raw_sender.replace(LRM, "").replace("\u200f", "").strip()
        cur = Message(sender, text, t, "", SOURCE, kind in MEDIA_KINDS, kind)
        append(cur)
    if cont and cur is not None:
        _append_lines(cur, cont)
    _fill_dates(path, msgs, dates, runs, shape, times)
    return msgs


def _append_lines(msg: Message, cont: list[str]) -> None:
    more = "\n".join(cont)
    if LRM in more:
        more = more.replace(LRM, "")
    msg.text = msg.text + "\n" + more


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
    era years count from the era (R1 = 2019, H1 = 1989)."""
    if raw[:1] in "RH" and not raw[:1].isdigit():
        return y + (2018 if raw[0] == "R" else 1988)
    if y < 100:
        return y + 2000
    if y >= 2400:
        return y - 543
    return y


def _fill_dates(path: Path, msgs: list[Message], dates: dict[str, int], runs: list[tuple[str, int]],
                shape: Shape, raw_times: Iterable[str] = ()) -> None:
    """Convert each distinct raw date once, then prefix it to the time part of its messages."""
    parsed = {raw: tuple(int(x) for x in _DIGITS.findall(raw)) for raw in dates}
    if shape.year_first:
        order, why = "ymd", "year first"
    elif DATE_ORDER in ("dmy", "mdy", "ymd"):
        order, why = DATE_ORDER, "--date-order"
    else:
        order, why = _infer_order(parsed, runs, shape, raw_times)
    DATE_DECISIONS.append((str(path), order, why))
    iso: dict[str, str] = {}
    for raw, (a, b, c) in parsed.items():
        y, mo, d = (a, b, c) if order == "ymd" else (c, b, a) if order == "dmy" else (c, a, b)
        y = _year(y, raw)
        if not (1 <= mo <= 12 and 1 <= d <= 31 and 1 <= y <= 9998) or d > _days_in_month(y, mo):
            raise InputError(f"invalid date {raw!r} (the file's dates read as {order.upper()}; "
                             f"override with --date-order dmy|mdy|ymd)", path, dates[raw])
        iso[raw] = f"{y:04d}-{mo:02d}-{d:02d}"
    ends = [start for _, start in runs[1:]] + [len(msgs)]
    for (raw, start), end in zip(runs, ends):
        day = iso[raw]
        for i in range(start, end):
            m = msgs[i]
            m.timestamp = day + m.timestamp


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

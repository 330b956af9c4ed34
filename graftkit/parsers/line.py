"""LINE "Export chat history" text files (English and Japanese UI, 24- and 12-hour clocks).

    [LINE] Chat history with Bob
    Saved on: 2024/01/01 10:00

    2023/12/31(Sun)
    21:05<TAB>Alice<TAB>Hi Bob!
    21:08<TAB>Alice<TAB>"Two lines:
    second ""quoted"" line"
    21:10<TAB>Bob unsent a message.

Messages carry only the time; the date comes from the last date line. A multi-line text is wrapped in
double quotes with inner quotes doubled (CSV style). A line with two fields is a system line.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, iter_lines

SOURCE = "line_txt"

# Date lines: "2023/12/31(Sun)", "2023/12/31(日)", "2023.12.31 Sunday", "2023年12月31日(日)", and the
# Android English "Sun, 12/31/2023" (month first).
_DATE_YMD = re.compile(r"(\d{4})[/.\-年](\d{1,2})[/.\-月](\d{1,2})日?(?:\s*\([^)\t]*\)|\s+[^\d\s\t]+)?\s*")
_DATE_MDY = re.compile(r"[^\d\s,\t]+,\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*")
# Message and system lines: a time, a TAB, then "sender<TAB>text" or a system text.
_TIME = re.compile(
    r"(?:(AM|PM|午前|午後)\s?)?(\d{1,2}):(\d{2})(?:\s?([AaPp][Mm]))?\t(.*)", re.DOTALL)
_PLACEHOLDERS = {"[Sticker]", "[Photo]", "[Video]", "[Voice message]", "[File]", "[Album]", "[スタンプ]", "[写真]",
                 "[動画]", "[ボイスメッセージ]", "[ファイル]", "[アルバム]"}


def _date_of(line: str) -> tuple[int, int, int] | None:
    """(year, month, day) of a date line, else None."""
    m = _DATE_YMD.fullmatch(line)
    if m is not None:
        return int(m[1]), int(m[2]), int(m[3])
    m = _DATE_MDY.fullmatch(line)
    if m is not None:
        return int(m[3]), int(m[1]), int(m[2])
    return None


def _detect(sniff: Sniff) -> bool:
    """`[LINE]` on the first line, or a date line soon followed by TAB-separated time lines that make
    up most of the head."""
    lines = sniff.lines
    if not lines:
        return False
    if lines[0].startswith("[LINE]"):
        return True
    first_date = next((i for i, line in enumerate(lines[:5]) if _date_of(line) is not None), None)
    if first_date is None:
        return False
    body = lines[first_date:]
    timed = sum(1 for line in body if _TIME.match(line))
    dated = sum(1 for line in body if _date_of(line) is not None)
    return timed >= 1 and (timed + dated) * 10 >= len(body) * 6


def _clock(m: re.Match) -> tuple[int, int] | None:
    """(hour, minute) of a _TIME match on the 24-hour clock; None when out of range."""
    h, mi = int(m[2]), int(m[3])
    marker = m[1] or m[4]
    if marker is not None and h <= 12:
        h = h % 12 + (12 if marker in ("PM", "午後") or marker.lower() == "pm" else 0)
    if h > 23 or mi > 59:
        return None
    return h, mi


def _unquote(lines: list[str], i: int, first: str) -> tuple[str, int] | None:
    """A multi-line quoted text starting with `first` (which starts with '"') on line index i.

    Returns (text, index of its last line), or None when the text is not a multi-line quoted field
    (it closes on its first line, has a stray quote, or never closes): such a text is kept verbatim.
    Why only multi-line: LINE quotes texts that contain newlines; a one-line `"hi"` is written as is.
    """
    parts = []
    seg = first[1:]
    j = i
    while True:
        bare = seg.replace('""', "")
        n = bare.count('"')
        if n == 0:
            parts.append(seg)
        elif n == 1 and bare.endswith('"') and j > i:
            parts.append(seg[:-1])
            return "\n".join(parts).replace('""', '"'), j
        else:
            return None
        j += 1
        if j >= len(lines):
            return None
        seg = lines[j]


def _parse(path: Path) -> list[Message]:
    lines = list(iter_lines(path))
    msgs: list[Message] = []
    day: str | None = None
    cur: Message | None = None  # target of unquoted continuation lines (older exports)
    i = 0
    while i < len(lines):
        line = lines[i]
        lineno = i + 1
        i += 1
        ymd = _date_of(line)
        if ymd is not None:
            day = _iso_day(path, lineno, ymd)
            cur = None
            continue
        m = _TIME.match(line)
        if m is None:
            if cur is not None and line.strip():
                cur.text += "\n" + line
            continue  # header lines ("[LINE] ...", "Saved on: ..."), blank lines
        if day is None:
            raise InputError("LINE message before any date line", path, lineno)
        hm = _clock(m)
        if hm is None:
            raise InputError(f"invalid time in LINE message line: {line.split(chr(9), 1)[0]!r}", path, lineno)
        sender, tab, text = m[5].partition("\t")
        if not tab:  # "Bob unsent a message.", "Alice joined the group."
            cur = None
            continue
        if text.startswith('"'):
            quoted = _unquote(lines, i - 1, text)
            if quoted is not None:
                text, last = quoted
                i = last + 1
        cur = Message(sender, text, f"{day}T{hm[0]:02d}:{hm[1]:02d}:00", "", SOURCE, text in _PLACEHOLDERS)
        msgs.append(cur)
    if day is None:
        raise InputError("no LINE date line (like '2023/12/31(Sun)') found", path)
    return msgs


def _iso_day(path: Path, lineno: int, ymd: tuple[int, int, int]) -> str:
    try:
        return date(*ymd).isoformat()
    except ValueError:
        raise InputError("invalid date in LINE date line", path, lineno) from None


PARSERS = [
    Parser(SOURCE, _detect, _parse, priority=22,
           description="LINE chat history .txt: date lines, then HH:MM<TAB>Name<TAB>text"),
]

"""LINE "Export chat history" text files: the mobile export (tab-separated) and the PC export (spaces).

Mobile (English, Japanese, Chinese, Thai UI; 24- and 12-hour clocks):

    [LINE] Chat history with Bob
    Saved on: 2024/01/01 10:00

    2023/12/31(Sun)
    21:05<TAB>Alice<TAB>Hi Bob!
    21:08<TAB>Alice<TAB>"Two lines:
    second ""quoted"" line"
    21:10<TAB>Bob unsent a message.

PC (Windows) export, the same chat: `2023.12.31 Sunday` / `2021.1.1 金曜日` date lines and
`21:05 Alice Hi Bob!`. Names may contain spaces and nothing separates them from the text, so the
names are learned from the whole file (`_pc_names`).

Messages carry only the time; the date comes from the last date line. A multi-line text is wrapped in
double quotes with inner quotes doubled (CSV style). A line with two fields is a system line.
Placeholders (`[Sticker]`, `☎ Missed call`, `ノートに投稿しました。`) stay messages, marked, so that
messages.jsonl keeps them and no sample does (tables in placeholder_tables/line/).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from functools import lru_cache
from pathlib import Path

import yaml

from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, iter_lines
from .placeholders import norm

SOURCE = "line_txt"
TABLES = Path(__file__).with_name("placeholder_tables") / "line"

# Date lines: "2023/12/31(Sun)", "2023/12/31(日)", "2024/01/15（一）", "2023.12.31 Sunday", "2021.1.1 金曜日",
# "2023年12月31日(日)", and the Android English "Sun, 12/31/2023" (month first) or, with the Thai
# Buddhist calendar, "Sun, 15/01/2566 BE" (day first).
_DATE_YMD = re.compile(
    r"(\d{4})[/.\-年](\d{1,2})[/.\-月](\d{1,2})日?(?:\s*\([^)\t]*\)|\s*（[^）\t]*）|\s+[^\d\s\t]+)?\s*")
_DATE_WEEKDAY = re.compile(r"[^\d\s,\t]+,\s*(\d{1,2})/(\d{1,2})/(\d{4})(\s*BE)?\s*")
# Message and system lines: a time, a TAB, then "sender<TAB>text" or a system text.
_TIME = re.compile(
    r"(?:(AM|PM|午前|午後)\s?)?(\d{1,2}):(\d{2})(?:\s?([AaPp][Mm]))?\t(.*)", re.DOTALL)
# PC export lines: a time, ONE space, then "sender text" (or a system text).
_PC_DATE = re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2}) [^\d\s]\S*\s*")
_PC_TIME = re.compile(r"(\d{1,2}):(\d{2}) (\S.*)", re.DOTALL)
_BRACKET_WORD = re.compile(r"\[[^\s\[\]]{1,16}\]")


@lru_cache(maxsize=1)
def _table() -> dict[str, object]:
    """All LINE wording tables folded: {"media": set, "media_pc": set, "location": tuple, "notice": tuple}."""
    media: set[str] = set()
    media_pc: set[str] = set()
    location: list[str] = []
    notice: list[str] = []
    for path in sorted(TABLES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        media.update(data.get("media", []))
        media_pc.update(data.get("media_pc", []))
        location += data.get("location", [])
        notice += [norm(x) for x in data.get("notice", [])]  # matched against t.rstrip(".。").casefold()
    return {"media": media, "media_pc": media_pc, "location": tuple(location), "notice": tuple(notice)}


def line_kind(text: str, pc: bool = False, frequent: frozenset[str] = frozenset()) -> str | None:
    """The placeholder kind of a LINE message text ("media", "location", "call", "system"), or None.

    `frequent`: bracketed words the file shows three times or more (sticker labels in any language).
    """
    t = text.strip()
    if not t or len(t) > 200:
        return None
    table = _table()
    c = t[0]
    if c == "☎":
        return "call"
    if c == "[":
        if t in table["media"] or t in frequent:
            return "media"
        if t.startswith(table["location"]):
            return "location"
    elif pc and t in table["media_pc"]:
        return "media"
    n = t.rstrip(".。").casefold()
    if n.startswith(table["notice"]) or n.endswith(table["notice"]):
        return "system"
    return None


def _date_of(line: str) -> tuple[int, int, int] | None:
    """(year, month, day) of a mobile date line, else None."""
    m = _DATE_YMD.fullmatch(line)
    if m is not None:
        return int(m[1]), int(m[2]), int(m[3])
    m = _DATE_WEEKDAY.fullmatch(line)
    if m is not None:
        a, b, y = int(m[1]), int(m[2]), int(m[3])
        if m[4]:
            y -= 543
        day_first = a > 12 or (bool(m[4]) and b <= 12)
        return (y, b, a) if day_first else (y, a, b)
    return None


def _detect(sniff: Sniff) -> bool:
    """`[LINE]` on the first line, or a date line soon followed by time lines (TAB-separated in the
    mobile export, space-separated under `YYYY.M.D weekday` lines in the PC export) that make up most
    of the head."""
    lines = sniff.lines
    if not lines:
        return False
    if lines[0].startswith("[LINE]"):
        return True
    first_date = next((i for i, line in enumerate(lines[:5]) if _date_of(line) is not None), None)
    if first_date is None:
        return False
    body = lines[first_date:]
    dated = sum(1 for line in body if _date_of(line) is not None)
    timed = sum(1 for line in body if _TIME.match(line))
    if timed >= 1 and (timed + dated) * 10 >= len(body) * 6:
        return True
    if _PC_DATE.fullmatch(body[0]) is None:
        return False
    timed = sum(1 for line in body if _PC_TIME.match(line))
    return timed >= 1 and (timed + dated) * 10 >= len(body) * 6


def _clock(m: re.Match) -> tuple[int, int, bool] | None:
    """(hour, minute, is "午前12") of a _TIME match on the 24-hour clock; None when out of range.

    午前12:xx is read as noon: the PC export of the same chat says 12:xx (LINE counts the morning
    0-12 in Japanese). `_fix_midnight` turns it back into 00:xx when the chat's order says so.
    """
    h, mi = int(m[2]), int(m[3])
    marker = m[1] or m[4]
    am12 = marker == "午前" and h == 12
    if marker is not None and h <= 12 and not am12:
        h = h % 12 + (12 if marker in ("PM", "午後") or marker.lower() == "pm" else 0)
    if h == 24:  # some exports write 24:xx for 00:xx
        h = 0
    if h > 23 or mi > 59:
        return None
    return h, mi, am12


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


def _frequent_brackets(texts: list[str]) -> frozenset[str]:
    counts = Counter(t for t in texts if _BRACKET_WORD.fullmatch(t))
    return frozenset(t for t, c in counts.items() if c >= 3)


def _parse(path: Path) -> list[Message]:
    lines = list(iter_lines(path))
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    head = [ln for ln in lines[:60] if ln.strip()]
    if not any(_TIME.match(ln) for ln in head) and any(_PC_DATE.fullmatch(ln) for ln in head[:5]):
        return _parse_pc(path, lines)
    msgs: list[Message] = []
    am12: list[int] = []  # messages written "午前12:xx" (see _clock)
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
                cur.text += "\n" + (line[1:] if line.startswith("\t") else line)
            continue  # header lines ("[LINE] ...", "Saved on: ..."), blank lines
        if day is None:
            raise InputError("LINE message before any date line (like '2023/12/31(Sun)')", path, lineno)
        hm = _clock(m)
        if hm is None:
            raise InputError(f"invalid time in LINE message line: {line.split(chr(9), 1)[0]!r}", path, lineno)
        sender, tab, text = m[5].partition("\t")
        if not tab or not sender:  # "Bob unsent a message.", "\tAlice joined the group."
            cur = None
            continue
        if text.startswith('"'):
            quoted = _unquote(lines, i - 1, text)
            if quoted is not None:
                text, last = quoted
                i = last + 1
        if hm[2]:
            am12.append(len(msgs))
        cur = Message(sender, text, f"{day}T{hm[0]:02d}:{hm[1]:02d}:00", "", SOURCE)
        msgs.append(cur)
    if day is None:
        raise InputError("no LINE date line (like '2023/12/31(Sun)') found", path)
    _fix_midnight(msgs, am12)
    _mark(msgs, pc=False)
    return msgs


def _fix_midnight(msgs: list[Message], am12: list[int]) -> None:
    """A "午前12:xx" message followed, the same day, by a morning time was written at midnight."""
    for i in am12:
        day = msgs[i].timestamp[:10]
        nxt = next((m for m in msgs[i + 1:i + 50] if m.timestamp[:10] == day and m.timestamp[11:13] != "12"), None)
        if nxt is not None and nxt.timestamp[11:16] < "12:00":
            msgs[i].timestamp = f"{day}T00{msgs[i].timestamp[13:]}"


def _mark(msgs: list[Message], pc: bool) -> None:
    frequent = _frequent_brackets([m.text for m in msgs])
    for m in msgs:
        kind = line_kind(m.text, pc, frequent)
        if kind is not None:
            m.placeholder = kind
            m.media = kind in ("media", "location")


def _pc_names(rests: list[str]) -> list[str]:
    """The senders of a PC export, longest first: for each first word, the longest run of words (up to
    four) that nearly all of its lines start with ("Ben Ortiz" when every "Ben" line goes on with
    "Ortiz"). A second word needs two such lines, a third five, so that a one-off message or two
    messages starting alike do not become a name."""
    prefixes: Counter = Counter()
    for rest in rests:
        words = rest.split(" ")
        for k in range(1, min(len(words), 4) + 1):
            prefixes[" ".join(words[:k])] += 1
    names = set()
    for rest in rests:
        words = rest.split(" ")
        name = words[0]
        for k in range(2, min(len(words) - 1, 4) + 1):
            longer = " ".join(words[:k])
            if prefixes[longer] >= (2 if k == 2 else 5) and prefixes[longer] * 10 >= prefixes[name] * 9:
                name = longer
            else:
                break
        names.add(name)
    return sorted(names, key=len, reverse=True)


def _parse_pc(path: Path, lines: list[str]) -> list[Message]:
    rests = [m[3] for m in map(_PC_TIME.match, lines) if m is not None]
    names = _pc_names(rests)
    msgs: list[Message] = []
    day: str | None = None
    cur: Message | None = None
    for lineno, line in enumerate(lines, 1):
        d = _PC_DATE.fullmatch(line)
        if d is not None:
            day = _iso_day(path, lineno, (int(d[1]), int(d[2]), int(d[3])))
            cur = None
            continue
        m = _PC_TIME.match(line)
        if m is None or day is None:
            if cur is not None:
                cur.text += "\n" + line
            continue
        h, mi, rest = int(m[1]), int(m[2]), m[3]
        if h == 24:
            h = 0
        if h > 23 or mi > 59:
            raise InputError(f"invalid time in LINE message line: {line[:5]!r}", path, lineno)
        sender = next((n for n in names if rest == n or rest.startswith(n + " ")), rest.split(" ", 1)[0])
        cur = Message(sender, rest[len(sender) + 1:], f"{day}T{h:02d}:{mi:02d}:00", "", SOURCE)
        msgs.append(cur)
    if day is None:
        raise InputError("no LINE date line (like '2023.12.31 Sunday') found", path)
    _mark(msgs, pc=True)
    return msgs


def _iso_day(path: Path, lineno: int, ymd: tuple[int, int, int]) -> str:
    try:
        return date(*ymd).isoformat()
    except ValueError:
        raise InputError("invalid date in LINE date line", path, lineno) from None


PARSERS = [
    Parser(SOURCE, _detect, _parse, priority=22,
           description="LINE chat history .txt: date lines, then HH:MM<TAB>Name<TAB>text (or the PC export's "
                       "HH:MM Name text)"),
]

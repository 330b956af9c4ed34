"""DiscordChatExporter exports: JSON (typed messages) and CSV (no type column).

Why: only `Default` and `Reply` entries are things people wrote; joins, pins, calls and thread
notices are system entries and would teach the model to say "Joined the server.". The CSV export has
no type column, so the fallback texts DiscordChatExporter writes for system entries are recognised
by their exact wording instead.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import brief
from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, load_json_messages
from .generic_csv import csv_rows

JSON_NAME = "discordchatexporter_json"
CSV_NAME = "discordchatexporter_csv"

CSV_HEADER = ["AuthorID", "Author", "Date", "Content", "Attachments", "Reactions"]
_MESSAGE_TYPES = {"Default", "Reply"}

# DiscordChatExporter's fallback content for system messages (MessageExtensions.GetFallbackContent).
_CSV_SYSTEM_EXACT = {"Joined the server.", "Pinned a message.", "Started a thread.", "Changed the channel icon.",
                     "Left the group."}
_CSV_SYSTEM_RE = re.compile(r"^(?:Started a call that lasted [\d,.]+ minutes?\.|Started a call\.|"
                            r"Added .+ to the group\.|Removed .+ from the group\.|Changed the channel name: .*)$")

_GUILD = re.compile(r'"guild"\s*:\s*\{')
_CHANNEL = re.compile(r'"channel"\s*:\s*\{')

# Date formats DiscordChatExporter writes with common locales; the first one that reads every row wins.
_CSV_DATE_FORMATS = ("%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S",
                     "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S",
                     "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%d-%b-%y %I:%M %p", "%d-%b-%y %H:%M")


def _detect_json(sniff: Sniff) -> bool:
    """A JSON object whose head has `guild` and `channel` objects (DiscordChatExporter writes them first)."""
    text = sniff.text
    return text.lstrip().startswith("{") and bool(_GUILD.search(text)) and bool(_CHANNEL.search(text))


def iso_seconds(value: str) -> str:
    """ISO 8601 with optional fraction and offset, truncated to seconds, offset kept (`Z` as +00:00)."""
    dt = datetime.fromisoformat(value.strip())
    return dt.replace(microsecond=0).isoformat()


def _author_name(author: Any) -> str | None:
    """Username, plus `#1234` for legacy accounts, as the CSV export writes it."""
    if not isinstance(author, dict):
        return None
    name = author.get("name")
    if not isinstance(name, str):
        return None
    disc = author.get("discriminator")
    if isinstance(disc, str) and disc not in ("", "0", "0000") and "#" not in name:
        return f"{name}#{disc}"
    return name


def _display_names(author: Any, sender: str | None) -> tuple[str, ...]:
    """The names people know a Discord user by besides the username: server nickname and global
    display name (`nickname`, `globalName`/`displayName` where the exporter writes them), and the
    bare username of a legacy `name#1234` account."""
    if not isinstance(author, dict):
        return ()
    names = []
    for key in ("nickname", "globalName", "displayName", "global_name", "name"):
        v = author.get(key)
        if isinstance(v, str) and v.strip() and v != sender and v not in names:
            names.append(v)
    return tuple(names)


def _parse_json(path: Path) -> list[Message]:
    data, msgs = load_json_messages(path, "DiscordChatExporter export",
                                    "export incomplete or not a DiscordChatExporter JSON")
    channel = data.get("channel") if isinstance(data.get("channel"), dict) else {}
    guild = data.get("guild") if isinstance(data.get("guild"), dict) else {}
    conv = "/".join(str(x) for x in (guild.get("name"), channel.get("name")) if x)
    out: list[Message] = []
    aliases: dict[tuple, tuple[str, ...]] = {}  # one shared tuple per (name, nickname, display name)
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise InputError(f"message {i} is not an object", path)
        mtype = m.get("type", "Default")
        if not isinstance(mtype, str) or mtype not in _MESSAGE_TYPES:
            continue
        content = m.get("content")
        text = content if isinstance(content, str) else ""
        ts = m.get("timestamp")
        try:
            timestamp = iso_seconds(ts) if isinstance(ts, str) else None
        except ValueError:
            raise InputError(f"message {i} (id {brief(m.get('id'))}): unreadable timestamp {brief(ts)}", path) from None
        media = not text and any(m.get(k) for k in ("attachments", "stickers", "embeds"))
        author = m.get("author")
        sender = _author_name(author)
        names = _display_names(author, sender)
        alias = aliases.get(names)
        if alias is None:
            alias = aliases[names] = names
        out.append(Message(sender=sender, text=text, timestamp=timestamp,
                           conversation=conv, source=JSON_NAME, media=media, aliases=alias))
    return out


def _read_header(line: str) -> list[str] | None:
    try:
        return next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return None


def _detect_csv(sniff: Sniff) -> bool:
    """First row is exactly DiscordChatExporter's header (quoted as it writes it, or unquoted)."""
    if not sniff.lines:
        return False
    first = sniff.lines[0].strip()
    return first.startswith(('"AuthorID"', "AuthorID")) and _read_header(first) == CSV_HEADER


def _pick_date_format(dates: list[tuple[int, str]], path: Path) -> str | None:
    """The first format that reads every Date; None for ISO dates. Errors name the first unreadable row."""
    if all(_try_iso(d) for _, d in dates):
        return None
    for fmt in _CSV_DATE_FORMATS:
        try:
            for _, d in dates:
                datetime.strptime(d, fmt)
            return fmt
        except ValueError:
            continue
    for fmt_line, d in dates:  # name the first row no format can read
        if not _try_iso(d) and not any(_try_strptime(d, f) for f in _CSV_DATE_FORMATS):
            raise InputError(f"unrecognised Date {brief(d)}", path, fmt_line)
    raise InputError("Date column mixes several date formats", path)


def _try_iso(d: str) -> bool:
    try:
        datetime.fromisoformat(d)
        return True
    except ValueError:
        return False


def _try_strptime(d: str, fmt: str) -> bool:
    try:
        datetime.strptime(d, fmt)
        return True
    except ValueError:
        return False


def _norm_date(d: str) -> str:
    # .NET puts U+202F (or NBSP) before AM/PM on newer ICU data
    return " ".join(d.replace("\u202f", " ").replace("\u00a0", " ").split())


def _parse_csv(path: Path) -> list[Message]:
    stream = csv_rows(path)  # streamed; a huge field stops at the limit (generic_csv.MAX_FIELD_CHARS)
    first = next(stream, None)
    if first is None or first[1] != CSV_HEADER:
        raise InputError(f"expected header {','.join(CSV_HEADER)}", path, 1)
    rows = list(stream)
    for line, row in rows:
        if len(row) != len(CSV_HEADER):
            raise InputError(f"expected {len(CSV_HEADER)} fields, got {len(row)}", path, line)
    dates = [(line, _norm_date(row[2])) for line, row in rows]
    fmt = _pick_date_format(dates, path) if dates else None
    out: list[Message] = []
    for (line, row), (_, date) in zip(rows, dates):
        _author_id, author, _date, content, attachments, _reactions = row
        if not attachments and (content in _CSV_SYSTEM_EXACT or _CSV_SYSTEM_RE.match(content)):
            continue
        if fmt is None:
            timestamp = iso_seconds(date)
        else:
            timestamp = datetime.strptime(date, fmt).isoformat()
        out.append(Message(sender=author, text=content, timestamp=timestamp, source=CSV_NAME,
                           media=not content and bool(attachments.strip())))
    return out


PARSERS = [
    Parser(JSON_NAME, _detect_json, _parse_json, priority=21,
           description="DiscordChatExporter JSON (guild/channel/messages)"),
    Parser(CSV_NAME, _detect_csv, _parse_csv, priority=22,
           description="DiscordChatExporter CSV (AuthorID,Author,Date,Content,Attachments,Reactions)"),
]

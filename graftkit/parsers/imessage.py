"""macOS Messages `chat.db` (SQLite), opened read-only.

Why read-only (`file:...?mode=ro`): this is the user's live message store; a training kit must never
be able to change it, not even by creating a journal.

Rules: `date` is nanoseconds since 2001-01-01 UTC (seconds on macOS before 10.13); the owner's
messages (`is_from_me`) are sent by "Me", others by their handle (phone number or e-mail, the database
has no contact names). Tapbacks (`associated_message_type` 2000-3999) and group events
(`item_type` != 0) are not messages. Recent macOS leaves `text` NULL and keeps the text only in the
typedstream `attributedBody`. U+FFFC marks where an attachment sat; an attachment-only message has
text "" and media=True. All chats are merged in chronological order.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, utc_iso

NAME = "imessage_chatdb"
OWNER = "Me"
APPLE_EPOCH = 978307200  # 2001-01-01T00:00:00Z in Unix seconds
_REQUIRED = {"message", "handle", "chat_message_join"}


def _connect(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True)


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}


def _detect(sniff: Sniff) -> bool:
    """An SQLite file with the tables `message`, `handle` and `chat_message_join`."""
    if not sniff.raw.startswith(b"SQLite format 3\x00"):
        return False
    try:
        con = _connect(sniff.path)
        try:
            return _REQUIRED <= _tables(con)
        finally:
            con.close()
    except (sqlite3.Error, OSError, ValueError):
        return False


def decode_attributed_body(blob: bytes | None) -> str | None:
    """Text of a typedstream NSAttributedString: after b"NSString", skip 5 bytes, read a length-prefixed UTF-8 string.

    Length: one byte, or 0x81 + uint16 LE, or 0x82 + uint32 LE. Returns None when the blob has no such string.
    """
    if not blob:
        return None
    blob = bytes(blob)
    i = blob.find(b"NSString")
    if i < 0:
        return None
    i += len(b"NSString") + 5
    if i >= len(blob):
        return None
    lead = blob[i]
    if lead == 0x81:
        n, i = int.from_bytes(blob[i + 1:i + 3], "little"), i + 3
    elif lead == 0x82:
        n, i = int.from_bytes(blob[i + 1:i + 5], "little"), i + 5
    else:
        n, i = lead, i + 1
    raw = blob[i:i + n]
    if len(raw) != n:
        return None
    return raw.decode("utf-8", errors="replace")


def apple_time(value: int | float | None) -> str | None:
    """Messages `date` to UTC ISO: nanoseconds since 2001 on macOS 10.13+, seconds before."""
    if not value or not isinstance(value, (int, float)):
        return None
    secs = value / 1e9 if abs(value) > 1e11 else value
    return utc_iso(secs + APPLE_EPOCH)


_QUERY = """
SELECT m.ROWID, m.text, {body}, m.is_from_me, m.date, h.id, {has_att},
       c.display_name, c.chat_identifier
FROM message m
LEFT JOIN handle h ON h.ROWID = m.handle_id
LEFT JOIN chat_message_join cmj ON cmj.message_id = m.ROWID
LEFT JOIN chat c ON c.ROWID = cmj.chat_id
WHERE {filters}
ORDER BY m.date, m.ROWID
"""


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}


def _parse(path: Path) -> list[Message]:
    try:
        con = _connect(path)
    except (sqlite3.Error, OSError, ValueError) as e:
        raise InputError(f"cannot open SQLite database: {e}", path) from None
    try:
        tables = _tables(con)
        if not _REQUIRED <= tables:
            raise InputError("SQLite file without the Messages tables (message, handle, chat_message_join)", path)
        cols = _columns(con, "message")
        filters = ["1=1"]
        if "item_type" in cols:
            filters.append("COALESCE(m.item_type, 0) = 0")
        if "associated_message_type" in cols:
            filters.append("NOT (COALESCE(m.associated_message_type, 0) BETWEEN 2000 AND 3999)")
        has_att = "m.cache_has_attachments" if "cache_has_attachments" in cols else "0"
        for needed in ("text", "is_from_me", "date", "handle_id"):
            if needed not in cols:
                raise InputError(f"table message has no column {needed!r}", path)
        body_col = "m.attributedBody" if "attributedBody" in cols else "NULL"
        if "chat" not in tables:
            raise InputError("SQLite file without the table chat", path)
        query = _QUERY.format(body=body_col, has_att=has_att, filters=" AND ".join(filters))
        out: list[Message] = []
        seen: set[int] = set()
        for rowid, text, body, from_me, date, handle, attach, display, ident in con.execute(query):
            if rowid in seen:  # a message joined to two chats: keep it once
                continue
            seen.add(rowid)
            if text is None and isinstance(body, bytes):
                text = decode_attributed_body(body)
            if isinstance(text, bytes):
                text = text.decode("utf-8", errors="replace")
            text = text if isinstance(text, str) else ""
            handle = str(handle) if handle is not None else None
            media = bool(attach)
            if "\ufffc" in text:
                text = text.replace("\ufffc", "").strip()
                media = True
            if not text and not media:
                continue  # nothing written and nothing attached (e.g. an unsent/retracted message)
            media = media and not text
            sender = OWNER if from_me else handle
            try:
                timestamp = apple_time(date)
            except ValueError:
                raise InputError(f"message ROWID {rowid}: date out of range {date!r}", path) from None
            out.append(Message(sender=sender, text=text, timestamp=timestamp,
                               conversation=str(display or ident or handle or ""), source=NAME, media=media))
        return out
    except sqlite3.Error as e:
        raise InputError(f"cannot read Messages database: {e}", path) from None
    finally:
        con.close()


PARSERS = [
    Parser(NAME, _detect, _parse, priority=27,
           description="macOS Messages chat.db (SQLite, opened read-only)"),
]

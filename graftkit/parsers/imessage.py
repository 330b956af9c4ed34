"""macOS Messages `chat.db` (SQLite), opened without ever writing next to it.

Why: this is the user's live message store; a training kit must never change it, not even by
creating `-wal`/`-shm` files beside it (plain `mode=ro` does that for a WAL database). Without a
`-wal` file the database is opened `mode=ro&immutable=1` (no locks, no side files); with one, the
database and its WAL are copied to a private temp folder first, so the newest messages (still in
the WAL) are read too and nothing is created beside the original. A truncated file, a file that is
not a readable database, or one that stays locked is reported as such, naming the file.

Rules: `date` is nanoseconds since 2001-01-01 UTC (seconds on macOS before 10.13); the owner's
messages (`is_from_me`) are sent by "Me", others by their handle (phone number or e-mail, the database
has no contact names). Tapbacks (`associated_message_type` 2000-3999) and group events
(`item_type` != 0) are not messages. Recent macOS leaves `text` NULL and keeps the text only in the
typedstream `attributedBody`. U+FFFC marks where an attachment sat; an attachment-only message has
text "" and media=True. All chats are merged in chronological order.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..config import brief
from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, utc_iso

NAME = "imessage_chatdb"
OWNER = "Me"
APPLE_EPOCH = 978307200  # 2001-01-01T00:00:00Z in Unix seconds
_REQUIRED = {"message", "handle", "chat_message_join"}
_READ = _REQUIRED | {"chat"}  # every table the query reads
# Bounds on one read. A real chat.db of 1M messages reads in well under a minute; a crafted one (a
# recursive VIEW named `message`, which never ends) must not run forever.
MAX_SECONDS = 600.0
MAX_ROWS = 20_000_000
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _connect(path: Path) -> sqlite3.Connection:
    """Read-only and immutable: SQLite takes no locks and creates no -wal/-shm/-journal files."""
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True)


def sqlite_problem(path: Path) -> str | None:
    """Why an SQLite file cannot be a complete database, from its 100-byte header; None if it looks whole.

    Header: page size at bytes 16-17 (1 means 65536), page count at 28-31 (valid when the change
    counter at 24-27 equals the version-valid-for number at 92-95).
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    if len(head) < 100:
        return f"truncated SQLite database ({size} bytes, shorter than its header)"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return "corrupt SQLite header (invalid page size)"
    pages = int.from_bytes(head[28:32], "big")
    if head[24:28] == head[92:96] and pages and size < pages * page:
        return (f"truncated SQLite database: {size} bytes, the header says {pages * page} "
                f"(an incomplete copy? copy chat.db again with Messages closed)")
    if size % page:
        return f"truncated SQLite database: {size} bytes is not a whole number of {page}-byte pages"
    return None


@contextmanager
def open_chat_db(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection that never writes beside `path` (see the module docstring)."""
    wal = path.with_name(path.name + "-wal")
    tmp = None
    try:
        if wal.exists() and wal.stat().st_size > 0:
            tmp = tempfile.mkdtemp(prefix="graftkit-chatdb-")
            os.chmod(tmp, 0o700)
            copy = Path(tmp) / "chat.db"
            shutil.copyfile(path, copy)
            shutil.copyfile(wal, Path(tmp) / "chat.db-wal")
            con = sqlite3.connect(copy.as_uri() + "?mode=ro", uri=True)
        else:
            con = _connect(path)
        try:
            yield con
        finally:
            con.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


IN_USE = "chat.db is in use (Messages is open, or another program is writing it): close Messages and try again"


def _in_use(path: Path) -> bool:
    """True when another process holds a write lock on the database. Probed by taking, then releasing,
    the shared lock every SQLite reader takes: SQLite's lock bytes start at 1 GiB (the PENDING byte),
    which no data ever overlaps."""
    try:
        import fcntl
    except ImportError:  # Windows: no POSIX locks to probe
        return False
    try:
        with open(path, "rb") as f:
            try:
                fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB, 512, 0x40000000)
            except OSError:
                return True
            fcntl.lockf(f, fcntl.LOCK_UN, 512, 0x40000000)
    except OSError:
        return False
    return False


def _explain(e: sqlite3.Error, path: Path) -> str:
    msg = str(e)
    if "locked" in msg or "busy" in msg:
        return f"{IN_USE} ({msg})"
    if "malformed" in msg or "not a database" in msg or "disk I/O" in msg:
        if _in_use(path) or any(os.path.exists(str(path) + s) for s in _SIDE_FILES):
            return (f"{IN_USE}; it changed while being read ({msg}). If Messages is closed, copy chat.db "
                    f"again: the copy is damaged")
        return f"damaged or truncated SQLite database ({msg}); copy chat.db again with Messages closed"
    return f"cannot read Messages database: {msg}"


def _tables(con: sqlite3.Connection) -> set[str]:
    """Names of the real tables. Why not views: a VIEW named `message` can be an endless recursive query,
    and a virtual table runs a module's code; the Messages app writes neither."""
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                      "AND upper(COALESCE(sql, '')) NOT LIKE 'CREATE VIRTUAL%'")}


def _not_tables(con: sqlite3.Connection) -> list[str]:
    """Which of the tables the query reads exist as something else (a view, a virtual table)."""
    real = _tables(con)
    rows = con.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
    return sorted(f"{name} ({kind if kind == 'view' else 'virtual table'})" for name, kind in rows
                  if name in _READ and name not in real)


def _detect(sniff: Sniff) -> bool:
    """An SQLite file with the tables `message`, `handle` and `chat_message_join`, or an SQLite file
    that cannot be read at all (truncated, damaged, locked): parsing then names the real cause
    instead of the caller calling it an unknown binary file."""
    if not sniff.raw.startswith(b"SQLite format 3\x00"):
        return False
    if sqlite_problem(sniff.path) is not None:
        return True
    try:
        with open_chat_db(sniff.path) as con:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
            return _REQUIRED <= names  # a view is claimed here and refused by the parser, naming it
    except (sqlite3.Error, OSError):
        return True
    except ValueError:
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
    problem = sqlite_problem(path)
    if problem is not None:
        raise InputError(problem, path)
    if _in_use(path):
        raise InputError(IN_USE, path)
    if os.path.exists(str(path) + "-journal"):  # read as is, the half-done write would be read as data
        raise InputError("chat.db-journal lies beside it: a write to chat.db was interrupted; open Messages once "
                         "and close it (that finishes or undoes the write), then try again", path)
    deadline = time.monotonic() + MAX_SECONDS
    try:
        with open_chat_db(path) as con:
            # every 100k SQLite steps: stop a query that runs past the deadline (returning 1 interrupts it)
            con.set_progress_handler(lambda: int(time.monotonic() > deadline), 100_000)
            return _read(con, path)
    except sqlite3.OperationalError as e:
        if "interrupt" in str(e):
            raise InputError(f"reading the Messages database took more than {MAX_SECONDS:.0f} s: not a "
                             f"Messages database, or a damaged one", path) from None
        raise InputError(_explain(e, path), path) from None
    except sqlite3.Error as e:
        raise InputError(_explain(e, path), path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path) from None


def _read(con: sqlite3.Connection, path: Path) -> list[Message]:
    """Every message of an open Messages database, in chronological order."""
    odd = _not_tables(con)
    if odd:
        raise InputError(f"{', '.join(odd)} must be a table: not a Messages database (the Messages app "
                         f"writes tables only)", path)
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
    for n, (rowid, text, body, from_me, date, handle, attach, display, ident) in enumerate(con.execute(query)):
        if n >= MAX_ROWS:
            raise InputError(f"more than {MAX_ROWS:,} message rows: not a Messages database, or a damaged one", path)
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
            raise InputError(f"message ROWID {rowid}: date out of range {brief(date)}", path) from None
        out.append(Message(sender=sender, text=text, timestamp=timestamp,
                           conversation=str(display or ident or handle or ""), source=NAME, media=media,
                           owner=bool(from_me)))
    return out


PARSERS = [
    Parser(NAME, _detect, _parse, priority=27,
           description="macOS Messages chat.db (SQLite, opened read-only)"),
]

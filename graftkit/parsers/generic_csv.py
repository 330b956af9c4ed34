"""A plain CSV with a `timestamp,sender,text` header: the escape hatch for any chat we have no parser for.

RFC 4180 quoting (newlines inside quoted fields), optional UTF-8 BOM and CRLF (Excel). The columns may
come in any order and extra columns are ignored, so a spreadsheet export with an id column still works.
Only a header naming all three columns is claimed: DiscordChatExporter's CSV
(`"AuthorID","Author","Date","Content",...`) and other CSVs are left to their own parsers.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, read_text

SOURCE = "generic_csv"
COLUMNS = ("timestamp", "sender", "text")


def _columns(header: list[str]) -> dict[str, int] | None:
    """Index of each required column in a header row (case and surrounding spaces ignored), or None."""
    names = [h.strip().lower() for h in header]
    if not all(c in names for c in COLUMNS):
        return None
    return {c: names.index(c) for c in COLUMNS}


def _detect(sniff: Sniff) -> bool:
    if not sniff.lines:
        return False
    try:
        header = next(csv.reader([sniff.lines[0]]))
    except (csv.Error, StopIteration):
        return False
    return _columns(header) is not None


def normalise_timestamp(raw: str) -> str | None:
    """An ISO 8601 rendering of `raw` when it parses, else `raw` as written ("" -> None).

    "2023-12-31 21:05" -> "2023-12-31T21:05:00"; offsets are kept ("Z" -> "+00:00"); all-digit values
    of 9-13 digits are epoch seconds or milliseconds, rendered in UTC like other absolute instants.
    """
    s = raw.strip()
    if not s:
        return None
    if s.isdigit() and 9 <= len(s) <= 13:
        seconds = int(s) / 1000 if len(s) >= 12 else int(s)
        return datetime.fromtimestamp(int(seconds), timezone.utc).isoformat()
    try:
        return datetime.fromisoformat(s).isoformat()
    except ValueError:
        return s


def _parse(path: Path) -> list[Message]:
    # strict: an unterminated quote must be an error, not a last message swallowing the rest of the file
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    start = 1  # line the current row starts on (rows may span lines)
    try:
        header = next(reader, None)
        if header is None:
            raise InputError("empty CSV file", path)
        cols = _columns(header)
        if cols is None:
            raise InputError(f"CSV header must name the columns {', '.join(COLUMNS)}; got {header!r}", path, 1)
        its, isd, itx = cols["timestamp"], cols["sender"], cols["text"]
        msgs: list[Message] = []
        start = reader.line_num + 1
        for row in reader:
            if row:  # blank lines are skipped
                if len(row) != len(header):
                    raise InputError(f"expected {len(header)} fields, got {len(row)}", path, start)
                text = row[itx]
                if "\r" in text:
                    text = text.replace("\r\n", "\n").replace("\r", "\n")
                msgs.append(Message(row[isd] or None, text, normalise_timestamp(row[its]), "", SOURCE))
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"malformed CSV: {e}", path, start) from None
    return msgs


PARSERS = [
    # Before the line-based formats: the header check is exact, and a quoted text may hold lines that
    # look like WhatsApp or Signal headers.
    Parser(SOURCE, _detect, _parse, priority=15,
           description="CSV with a header timestamp,sender,text (RFC 4180, BOM/CRLF allowed)"),
]

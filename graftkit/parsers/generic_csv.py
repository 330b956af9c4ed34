"""A plain CSV with a `timestamp,sender,text` header: the escape hatch for any chat we have no parser for.

RFC 4180 quoting (newlines inside quoted fields), optional UTF-8 BOM and CRLF (Excel). The columns may
come in any order and extra columns are ignored, so a spreadsheet export with an id column still works.
Only a header naming all three columns is claimed: DiscordChatExporter's CSV
(`"AuthorID","Author","Date","Content",...`) and other CSVs are left to their own parsers.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from ..config import brief
from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, iter_lines

SOURCE = "generic_csv"
COLUMNS = ("timestamp", "sender", "text")
# The longest field read (the csv module's own default limit). Lines are streamed and a physical line
# may be at most this plus a little (the row's other fields), so a 1 GB field fails after reading
# about this much, instead of after holding the whole file twice (5.3 GB for a 1 GB field before).
MAX_FIELD_CHARS = 131_072


def csv_rows(path: Path, strict: bool = False) -> Iterator[tuple[int, list[str]]]:
    """(line the row starts on, fields) of every non-empty CSV row, streamed from `path` (UTF-8 with or
    without BOM, or UTF-16). Errors are InputErrors naming the line: malformed quoting, or a field
    longer than MAX_FIELD_CHARS (a physical line that long is refused before it is held whole)."""
    limit = MAX_FIELD_CHARS
    lines = iter_lines(path, max_line_chars=limit + 4096)
    start = 1
    reader = csv.reader((line + "\n" for line in lines), strict=strict)
    old = csv.field_size_limit(limit)
    try:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise InputError(f"malformed CSV: {e}", path, start) from None
            except InputError as e:
                if e.message.startswith("a line longer"):
                    raise InputError(f"a CSV field longer than {limit:,} characters: not a chat export, or a "
                                     f"damaged one", path, e.line) from None
                raise
            if row:
                yield start, row
            start = reader.line_num + 1
    finally:
        csv.field_size_limit(old)


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
    if s.isascii() and s.isdigit() and 9 <= len(s) <= 13:  # isdigit() alone also takes "¹²³" and "٣"
        seconds = int(s) / 1000 if len(s) >= 12 else int(s)
        return datetime.fromtimestamp(int(seconds), timezone.utc).isoformat()
    try:
        return datetime.fromisoformat(s).isoformat()
    except ValueError:
        return s


def _parse(path: Path) -> list[Message]:
    # strict: an unterminated quote must be an error, not a last message swallowing the rest of the file
    rows = csv_rows(path, strict=True)
    first = next(rows, None)
    if first is None:
        raise InputError("empty CSV file", path)
    header = first[1]
    cols = _columns(header)
    if cols is None:
        raise InputError(f"CSV header must name the columns {', '.join(COLUMNS)}; got {brief(header)}", path,
                         first[0])
    its, isd, itx = cols["timestamp"], cols["sender"], cols["text"]
    msgs: list[Message] = []
    for start, row in rows:  # blank lines are skipped
        if len(row) != len(header):
            raise InputError(f"expected {len(header)} fields, got {len(row)}", path, start)
        text = row[itx]
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        msgs.append(Message(row[isd] or None, text, normalise_timestamp(row[its]), "", SOURCE))
    return msgs


PARSERS = [
    # Before the line-based formats: the header check is exact, and a quoted text may hold lines that
    # look like WhatsApp or Signal headers.
    Parser(SOURCE, _detect, _parse, priority=15,
           description="CSV with a header timestamp,sender,text (RFC 4180, BOM/CRLF allowed)"),
]

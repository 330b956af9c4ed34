"""What every format parser shares: the Parser record and safe text reading.

A parser module defines `PARSERS = [Parser(...), ...]`. `detect` must be cheap (it sees the first
64 KiB through `Sniff`) and must not raise; `parse` reads the whole file and raises InputError
(naming the file and line where known) for anything it cannot read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import InputError
from ..messages import Message

SNIFF_BYTES = 64 * 1024


class Sniff:
    """Cheap, cached look at the start of a file (or a directory), shared by all detectors."""

    def __init__(self, path: Path):
        self.path = path

    @cached_property
    def raw(self) -> bytes:
        if self.path.is_dir():
            return b""
        with open(self.path, "rb") as f:
            return f.read(SNIFF_BYTES)

    @cached_property
    def is_binary(self) -> bool:
        return b"\x00" in self.raw[:8192]

    @cached_property
    def text(self) -> str:
        """The head decoded as UTF-8 (BOM dropped); "" if binary. A cut multi-byte char at the end is ignored."""
        if self.is_binary:
            return ""
        raw = self.raw[3:] if self.raw.startswith(b"\xef\xbb\xbf") else self.raw
        return raw.decode("utf-8", errors="replace" if len(self.raw) == SNIFF_BYTES else "replace")

    @cached_property
    def lines(self) -> list[str]:
        """Up to 50 first non-empty lines of the head."""
        out = []
        # Split as files are read (iter_lines, csv): on "\n", "\r\n", "\r" only. str.splitlines() would
        # also split on U+2028, U+0085 and form feeds, which occur inside messages and JSON strings.
        for line in self.text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if line.strip():
                out.append(line)
                if len(out) >= 50:
                    break
        return out


@dataclass(frozen=True)
class Parser:
    """One format: an id (as in FORMATS.md), a detector and a parser.

    is_dir: the parser takes a directory (Slack export, a Messenger thread split over files).
    priority: lower runs first in auto-detection; generic formats (plain transcript) go last.
    """

    name: str
    detect: Callable[[Sniff], bool]
    parse: Callable[[Path], list[Message]]
    is_dir: bool = False
    priority: int = 50
    description: str = field(default="", compare=False)


def read_text(path: Path) -> str:
    """Read a whole export as UTF-8 (BOM allowed). Binary or non-UTF-8 files raise a clear InputError.

    We never guess another encoding silently: a Latin-1 WhatsApp export is a corrupted export, and
    guessing would feed mojibake into training.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except OSError as e:  # a folder, no permission, ...
        raise InputError(f"cannot read file: {e.strerror or e}", path) from None
    if b"\x00" in data[:8192]:
        raise InputError("binary file, not a text chat export", path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{data[e.start]:02x}); re-export the chat as UTF-8 or convert it, "
            f"e.g. `iconv -f latin1 -t utf-8`", path, line) from None


def load_json(path: Path) -> Any:
    """Read a whole JSON export (UTF-8, BOM allowed) with one json.loads; errors become InputError.

    Why a shared helper: a truncated download is the most common broken export, and the user needs
    the file and line where it stops, not a JSONDecodeError traceback.
    """
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        rest = text[e.pos:]
        truncated = not rest.strip() or (e.msg.startswith("Unterminated string") and "\n" not in rest.rstrip())
        hint = "; the file ends early (truncated download?)" if truncated else ""
        raise InputError(f"invalid JSON ({e.msg.removesuffix(' at')}, column {e.colno}){hint}", path,
                         e.lineno) from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply", path) from None


_MESSAGES_LIST = re.compile(r'"messages"\s*:\s*\[')


def sniff_json_messages(text: str, *fields: re.Pattern[str]) -> bool:
    """Cheap detection on the first kilobytes: a JSON object with a "messages" list whose entries
    carry all `fields` (key patterns). Several exporters share the "messages" list, so the
    per-message keys are what tell them apart; a full json.loads here would cost the whole file."""
    if not text.lstrip().startswith("{"):
        return False
    m = _MESSAGES_LIST.search(text)
    if m is None:
        return False
    rest = text[m.end():]
    return all(f.search(rest) for f in fields)


def load_json_messages(path: Path, what: str, hint: str) -> tuple[dict, list]:
    """The top-level object and its "messages" list, or an InputError naming the file and what was
    expected (`what`: the export kind; `hint`: why a file can lack the list)."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object ({what})", path)
    msgs = data.get("messages")
    if not isinstance(msgs, list):
        raise InputError(f"no 'messages' list; {hint}", path)
    return data, msgs


def utc_iso(seconds: float) -> str:
    """Epoch seconds as `YYYY-MM-DDTHH:MM:SS+00:00` (fraction dropped), the rendering for absolute instants.

    Raises ValueError for values no calendar can show, so callers can report the offending record.
    """
    try:
        return datetime.fromtimestamp(math.floor(seconds), timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError) as e:
        raise ValueError(f"timestamp out of range: {seconds!r}") from e


def iter_lines(path: Path, chunk_chars: int = 1 << 20) -> Iterator[str]:
    """Yield the lines of a UTF-8 text export (BOM allowed) without their line ends, reading in chunks.

    Why not `read_text(path).split("\\n")`: a 1M-message export would sit in memory three times
    (bytes, one str that turns 4 bytes/char as soon as it holds one emoji, and the line list). Here only
    1 MiB chunks are held. "\\r\\n" and lone "\\r" end lines too (universal newlines); U+2028, U+0085
    and friends do not, so they stay in the text verbatim. Errors are read_text's: binary and
    non-UTF-8 files raise InputError naming the file (and the line of the first bad byte).
    """
    try:
        with open(path, "rb") as f:
            if b"\x00" in f.read(8192):
                raise InputError("binary file, not a text chat export", path)
        with open(path, encoding="utf-8-sig", newline=None) as f:
            rest = ""
            while chunk := f.read(chunk_chars):
                parts = (rest + chunk).split("\n")
                rest = parts.pop()
                yield from parts
            if rest:
                yield rest
    except UnicodeDecodeError:
        read_text(path)  # raises the InputError that names the line of the bad byte
        raise InputError("not valid UTF-8", path) from None
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path) from None

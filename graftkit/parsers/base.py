"""What every format parser shares: the Parser record and safe text reading.

A parser module defines `PARSERS = [Parser(...), ...]`. `detect` must be cheap (it sees the first
64 KiB through `Sniff`) and must not raise; `parse` reads the whole file and raises InputError
(naming the file and line where known) for anything it cannot read.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from ..errors import InputError
from ..messages import Message

SNIFF_BYTES = 64 * 1024
CHUNK_BYTES = 1 << 20
# The longest line iter_lines accepts. A chat message is at most a few thousand characters; a
# "line" of a million characters is a broken or hostile file, and holding it would only cost memory.
MAX_LINE_CHARS = 1 << 20


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | Path) -> BinaryIO:
    """Open `path` for binary reading only if it is a regular file; anything else is an InputError.

    Why: opening a FIFO blocks until some writer appears (forever), and /dev/zero or /dev/urandom
    never end. O_NONBLOCK makes the open itself return at once, and fstat on the opened file (not
    the name, which could be swapped in between) decides.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except PermissionError:
        raise InputError("permission denied: cannot read this file (check its permissions)", path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(f"{_file_kind(mode)}, not a regular file; only regular files are read", path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def detect_encoding(head: bytes) -> str:
    """The codec of a text export from its first bytes: UTF-8 (BOM optional) or UTF-16.

    Why UTF-16: WhatsApp and Notepad on Windows save "Unicode" text as UTF-16 with a BOM; without
    one, ASCII-heavy UTF-16 shows as a NUL byte after (LE) or before (BE) almost every character.
    Anything else is read as UTF-8 and fails with a clear error, never as a silent guess.
    """
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    sample = head[:4096]
    n = len(sample) // 2 * 2
    if n >= 8:
        even_nul = sample[0:n:2].count(0)
        odd_nul = sample[1:n:2].count(0)
        if odd_nul >= 0.9 * (n // 2) and even_nul == 0:
            return "utf-16-le"
        if even_nul >= 0.9 * (n // 2) and odd_nul == 0:
            return "utf-16-be"
    return "utf-8"


class Sniff:
    """Cheap, cached look at the start of a file (or a directory), shared by all detectors.

    Never raises and never blocks: a FIFO, a device or an unreadable file sniff as empty, with the
    reason in `error` (parse_input reports it).
    """

    def __init__(self, path: Path):
        self.path = path
        self.error: InputError | None = None

    @cached_property
    def raw(self) -> bytes:
        if self.path.is_dir():
            return b""
        try:
            with open_regular(self.path) as f:
                return f.read(SNIFF_BYTES)
        except InputError as e:
            self.error = e
            return b""

    @cached_property
    def encoding(self) -> str:
        return detect_encoding(self.raw)

    @cached_property
    def _decoded(self) -> str:
        raw = self.raw
        if self.encoding.startswith("utf-16"):
            raw = raw[: len(raw) // 2 * 2]
        return raw.decode(self.encoding, errors="replace")

    @cached_property
    def is_binary(self) -> bool:
        return "\x00" in self._decoded[:8192]

    @cached_property
    def text(self) -> str:
        """The head decoded (UTF-8 or UTF-16, BOM dropped); "" if binary. A cut character at the end is ignored."""
        if self.is_binary:
            return ""
        return self._decoded.lstrip("\ufeff")

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
    """Read a whole export as UTF-8 (BOM allowed) or UTF-16 (Windows). Binary or undecodable files
    raise a clear InputError naming the line.

    We never guess another encoding silently: a Latin-1 WhatsApp export is a corrupted export, and
    guessing would feed mojibake into training. Read in chunks, each checked for NUL bytes, so that
    a huge file with zeros after a valid header stops at the first bad chunk instead of being
    loaded whole; UTF-8 is then decoded in one call (as fast as before the check).
    """
    with open_regular(path) as f:
        data = f.read(SNIFF_BYTES)
        encoding = detect_encoding(data)
        if encoding.startswith("utf-16"):
            return _read_utf16(f, data, encoding, path)
        buf = bytearray()
        while data:
            nul = data.find(b"\x00")
            if nul >= 0:
                raise InputError("binary data (NUL bytes), not a text chat export", path,
                                 buf.count(b"\n") + data.count(b"\n", 0, nul) + 1)
            buf += data
            data = f.read(CHUNK_BYTES)
    try:
        return buf.decode(encoding)
    except UnicodeDecodeError as e:
        raise InputError(
            f"not valid UTF-8 (byte 0x{buf[e.start]:02x}); re-export the chat as UTF-8 or convert it, "
            f"e.g. `iconv -f latin1 -t utf-8`", path, buf.count(b"\n", 0, e.start) + 1) from None


def _read_utf16(f: BinaryIO, data: bytes, encoding: str, path: Path) -> str:
    parts: list[str] = []
    lines = 0
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    while True:
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            raise InputError(f"not valid UTF-16 (at line {lines + 1} or after); re-export the chat as UTF-8",
                             path, lines + 1) from None
        _check_no_nul(text, path, lines)
        lines += text.count("\n")
        parts.append(text)
        if not data:
            break
        data = f.read(CHUNK_BYTES)
    text = "".join(parts)
    return text[1:] if text.startswith("\ufeff") else text


def _check_no_nul(text: str, path: Path, lines_before: int) -> None:
    nul = text.find("\x00")
    if nul >= 0:
        raise InputError("binary data (NUL bytes), not a text chat export", path,
                         lines_before + text.count("\n", 0, nul) + 1)


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
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise InputError("a number of more than 4,300 digits (valid: at most 4,300; ids, dates and counts are "
                         "far shorter): not a chat export", path, too_long_number(text)) from None


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


def iter_lines(path: Path, chunk_chars: int = 1 << 20, max_line_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """Yield the lines of a UTF-8 or UTF-16 text export (BOM allowed) without their line ends, reading in chunks.

    Why not `read_text(path).split("\\n")`: a 1M-message export would sit in memory three times
    (bytes, one str that turns 4 bytes/char as soon as it holds one emoji, and the line list). Here only
    1 MiB chunks are held. "\\r\\n" and lone "\\r" end lines too (universal newlines); U+2028, U+0085
    and friends do not, so they stay in the text verbatim. Errors are read_text's: binary content
    anywhere in the file, non-UTF-8 bytes and a line longer than `max_line_chars` raise InputError
    naming the file and line.
    """
    lineno = 0
    try:
        with open_regular(path) as raw:
            encoding = detect_encoding(raw.read(4096))
            raw.seek(0)
            f = io.TextIOWrapper(raw, encoding="utf-16" if encoding == "utf-16" else encoding, newline=None)
            rest = ""
            first = True
            while chunk := f.read(chunk_chars):
                if first:
                    chunk = chunk.lstrip("\ufeff")
                    first = False
                _check_no_nul(chunk, path, lineno)
                parts = (rest + chunk).split("\n")
                rest = parts.pop()
                if len(rest) > max_line_chars:
                    raise InputError(f"a line longer than {max_line_chars:,} characters (no line breaks): not a "
                                     f"text chat export, or a damaged one", path, lineno + len(parts) + 1)
                lineno += len(parts)
                yield from parts
            if rest:
                yield rest
    except UnicodeDecodeError:
        read_text(path)  # raises the InputError that names the line of the bad byte
        raise InputError("not valid UTF-8", path) from None
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror or e}", path) from None


# Epoch instants any parser accepts: the years 1 to 9999, all that datetime (and a person) can read.
MIN_EPOCH_S, MAX_EPOCH_S = -62135596800, 253402300799


def epoch_iso(value: Any, per_second: int, what: str, path: Path, line: int | None = None,
              shown: Any = None) -> str:
    """UTC ISO of the epoch number `value`, counted in 1/per_second seconds (1: seconds, 1000: ms).

    Anything else (NaN, Infinity, a 400-digit number, a bool) is an InputError naming `what` (the
    record and field), the value (bounded, config.brief) and the valid range: before, such values
    ended in OverflowError / ValueError tracebacks from float() or datetime. `shown`: the value as
    written in the file, when `value` is a conversion of it.
    """
    from ..config import brief

    lo, hi = MIN_EPOCH_S * per_second, (MAX_EPOCH_S + 1) * per_second - 1
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
          and lo <= value <= hi)
    if not ok:
        unit = "seconds" if per_second == 1 else "milliseconds" if per_second == 1000 else f"1/{per_second} s"
        raise InputError(f"{what}: {brief(value if shown is None else shown)} is out of range (valid: {lo} to {hi}, {unit} since 1970, "
                         f"years 1 to 9999)", path, line)
    return utc_iso(value / per_second)


def too_long_number(text: str) -> int | None:
    """Line (1-based) of the first number of more than 4,300 digits in `text`, Python's limit for
    converting digits to an int (json.loads then raises a bare ValueError); None if there is none."""
    m = re.search(r"\d{4301}", text)
    return None if m is None else text.count("\n", 0, m.start()) + 1

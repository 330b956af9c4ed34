"""What every format parser shares: the Parser record and safe text reading.

A parser module defines `PARSERS = [Parser(...), ...]`. `detect` must be cheap (it sees the first
64 KiB through `Sniff`) and must not raise; `parse` reads the whole file and raises InputError
(naming the file and line where known) for anything it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

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
        for line in self.text.splitlines():
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
    if b"\x00" in data[:8192]:
        raise InputError("binary file, not a text chat export", path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{data[e.start]:02x}); re-export the chat as UTF-8 or convert it, "
            f"e.g. `iconv -f latin1 -t utf-8`", path, line) from None

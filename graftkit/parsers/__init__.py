"""Chat-export parsing: detect the format of a file, folder or .zip and parse it to Messages.

Entry point: `parse_input(path, fmt=None) -> ParseResult`. Each format lives in its own module and
registers `PARSERS`; this module only orders them and walks folders and zips.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..messages import Message
from . import (discord, generic_csv, google_chat, imessage, line, meta, plain, signal, slack, sms,
               telegram, training_jsonl, whatsapp)
from .base import Parser, Sniff, read_text

__all__ = ["Parser", "Sniff", "read_text", "ALL_PARSERS", "FORMAT_NAMES", "ParseResult", "parse_input",
           "detect_format"]

_MODULES = (whatsapp, signal, line, telegram, discord, meta, slack, imessage, sms, google_chat,
            training_jsonl, generic_csv, plain)
ALL_PARSERS: list[Parser] = sorted((p for m in _MODULES for p in m.PARSERS), key=lambda p: p.priority)
# A format may have a file-level and a folder-level parser under one id (Messenger: one message_N.json,
# or a thread folder of them); --format picks the file-level one, and _walk uses the folder-level one.
_BY_NAME: dict[str, Parser] = {p.name: p for p in sorted(ALL_PARSERS, key=lambda p: not p.is_dir)}
_DIR_BY_NAME: dict[str, Parser] = {p.name: p for p in ALL_PARSERS if p.is_dir}
FORMAT_NAMES: list[str] = sorted(_BY_NAME)

# Files in export folders that are never chats (media, metadata).
_SKIP_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".mp4", ".mov", ".opus", ".ogg",
                  ".mp3", ".m4a", ".aac", ".pdf", ".vcf", ".webm", ".wav", ".avi", ".html", ".css", ".js"}


@dataclass
class ParseResult:
    messages: list[Message] = field(default_factory=list)
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (path, format, messages)
    skipped: list[str] = field(default_factory=list)  # files in folders with no recognised format


def detect_format(path: Path) -> Parser | None:
    """The first parser whose detector accepts `path` (a file or a directory), or None."""
    sniff = Sniff(path)
    is_dir = path.is_dir()
    for p in ALL_PARSERS:
        if p.is_dir != is_dir:
            continue
        try:
            if p.detect(sniff):
                return p
        except (OSError, ValueError, UnicodeError):
            continue
    return None


def _parse_one(path: Path, parser: Parser, result: ParseResult, label: str) -> None:
    msgs = parser.parse(path)
    for m in msgs:
        if not m.source:
            m.source = parser.name
        if not m.conversation:
            m.conversation = label
    result.messages.extend(msgs)
    result.files.append((label, parser.name, len(msgs)))


def _walk(folder: Path, root: Path, result: ParseResult, fmt: Parser | None, shown_root: str) -> None:
    def label(p: Path) -> str:
        rel = p.relative_to(root).as_posix()
        return f"{shown_root}/{rel}" if rel != "." else shown_root

    dir_parser = fmt if (fmt is not None and fmt.is_dir) else None
    if fmt is not None and not fmt.is_dir:
        dir_parser = _DIR_BY_NAME.get(fmt.name)
    if dir_parser is None and fmt is None:
        dir_parser = detect_format(folder)
    if dir_parser is not None and (fmt is None or dir_parser.detect(Sniff(folder))):
        _parse_one(folder, dir_parser, result, label(folder))
        return
    for child in sorted(folder.iterdir()):
        if child.name.startswith(".") or child.name == "__MACOSX":
            continue
        if child.is_dir():
            _walk(child, root, result, fmt, shown_root)
        elif child.suffix.lower() not in _SKIP_SUFFIXES:
            parser = fmt if (fmt is not None and not fmt.is_dir) else detect_format(child)
            if parser is None or (fmt is not None and fmt.is_dir):
                result.skipped.append(label(child))
                continue
            _parse_one(child, parser, result, label(child))


def parse_input(path: str | Path, fmt: str | None = None) -> ParseResult:
    """Parse one export file, export folder or .zip into messages in conversation order.

    `fmt` forces a format id (see FORMAT_NAMES) instead of auto-detection.
    """
    path = Path(path)
    forced = None
    if fmt is not None:
        if fmt not in _BY_NAME:
            raise InputError(f"unknown format {fmt!r}; known formats: {', '.join(FORMAT_NAMES)}")
        forced = _BY_NAME[fmt]
    if not path.exists():
        raise InputError("no such file or folder", path)
    result = ParseResult()
    if path.is_file() and zipfile.is_zipfile(path):
        with tempfile.TemporaryDirectory(prefix="graftkit-zip-") as tmp:
            try:
                with zipfile.ZipFile(path) as zf:
                    for info in zf.infolist():  # refuse path traversal
                        target = os.path.realpath(os.path.join(tmp, info.filename))
                        if not target.startswith(os.path.realpath(tmp) + os.sep) and target != os.path.realpath(tmp):
                            raise InputError(f"unsafe path in zip: {info.filename}", path)
                    zf.extractall(tmp)
            except zipfile.BadZipFile as e:
                raise InputError(f"broken zip file: {e}", path) from None
            try:
                _walk(Path(tmp), Path(tmp), result, forced, str(path))
            except InputError as e:
                # name the zip, not the temp folder it was unpacked to
                if e.path and e.path.startswith(tmp):
                    e = InputError(e.message, str(path) + e.path[len(tmp):], e.line)
                raise e from None
            # an export folder zipped with a single top-level folder
    elif path.is_dir():
        _walk(path, path, result, forced, str(path))
    else:
        parser = forced or detect_format(path)
        if parser is None:
            sniff = Sniff(path)
            if not sniff.raw:
                raise InputError("empty file", path)
            if sniff.is_binary:
                raise InputError("binary file, not a chat export (unknown format)", path)
            raise InputError(f"unknown chat export format; use --format with one of: {', '.join(FORMAT_NAMES)}",
                             path)
        if parser.is_dir:
            raise InputError(f"format {parser.name} needs a folder, got a file", path)
        _parse_one(path, parser, result, str(path))
    if not result.messages:
        if result.files:
            raise InputError("no chat messages found (only system lines or empty chats)", path)
        raise InputError("no chat export found here" + (
            f" ({len(result.skipped)} files in no known format)" if result.skipped else ""), path)
    return result

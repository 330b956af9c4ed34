"""Chat-export parsing: detect the format of a file, folder or .zip and parse it to Messages.

Entry point: `parse_input(path, fmt=None) -> ParseResult`. Each format lives in its own module and
registers `PARSERS`; this module only orders them and walks folders and zips.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import brief
from ..errors import InputError
from ..messages import Message
from . import (discord, generic_csv, google_chat, imessage, line, meta, plain, signal, slack, sms,
               telegram, training_jsonl, whatsapp)
from ..fileio import own_output_names, pid_alive
from .base import Parser, Sniff, open_regular, read_text
from .walk import OUTSIDE, collect_skips, end_collect, examine

__all__ = ["Parser", "Sniff", "read_text", "ALL_PARSERS", "FORMAT_NAMES", "ParseResult", "parse_input",
           "detect_format", "ZipLimits", "ZIP_LIMITS"]

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
class ZipLimits:
    """How much a .zip INPUT may unpack to. Why: a 3 MB zip can hold gigabytes of one repeated
    byte; unchecked, it fills the temp folder and memory before any error. Honest chat exports
    compress about 3-10x (text) and their media is not unpacked at all.

    max_bytes: total bytes unpacked from one INPUT (nested zips included).
    max_ratio: unpacked bytes per byte of zip, checked once more than `ratio_floor` bytes are out.
    max_entries: members listed in one zip. max_depth: zips inside zips followed.
    """

    max_bytes: int = 2 * 1024**3
    max_ratio: float = 100.0
    ratio_floor: int = 10 * 1024**2
    max_entries: int = 100_000
    max_depth: int = 2


ZIP_LIMITS = ZipLimits()  # prepare_training_data.py sets these from --max-unzipped-size / --max-zip-ratio

_TEMP_PREFIX = "graftkit-zip-"
_TEMP_RE = re.compile(r"^graftkit-zip-(\d+)-")


@dataclass
class ParseResult:
    messages: list[Message] = field(default_factory=list)
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (path, format, messages)
    # files not read: unknown format, or the reason in parentheses (a link out of the folder, a FIFO)
    skipped: list[str] = field(default_factory=list)


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
        except (OSError, ValueError, UnicodeError, RecursionError):
            continue
    return None


def _parse_one(path: Path, parser: Parser, result: ParseResult, label: str) -> None:
    sink, token = collect_skips()  # what a folder parser skipped (links out of its folder, FIFOs)
    try:
        msgs = parser.parse(path)
    except RecursionError:
        raise InputError("nested too deeply (more than ~1000 levels of JSON brackets): not a chat export",
                         path) from None
    finally:
        end_collect(token)
    for p, why in sink:
        try:
            shown = f"{label}/{p.relative_to(path).as_posix()}"
        except ValueError:
            shown = str(p)
        result.skipped.append(f"{shown} ({why})")
    for m in msgs:
        if not m.source:
            m.source = parser.name
        if not m.conversation:
            m.conversation = label
    result.messages.extend(msgs)
    result.files.append((label, parser.name, len(msgs)))


class _Budget:
    """Bytes unpacked so far from one INPUT, against ZIP_LIMITS."""

    def __init__(self, limits: ZipLimits, shown: str):
        self.limits, self.shown, self.total = limits, shown, 0

    def check(self, zip_size: int, unpacked: int, shown: str) -> None:
        lim = self.limits
        if self.total + unpacked > lim.max_bytes:
            raise InputError(f"zip unpacks to more than {_size(lim.max_bytes)} (a zip bomb, or an export too big "
                             f"for one run; raise the cap with --max-unzipped-size)", shown)
        if unpacked > lim.ratio_floor and unpacked > lim.max_ratio * max(zip_size, 1):
            raise InputError(f"zip unpacks to more than {lim.max_ratio:g}x its size (a zip bomb? chat exports "
                             f"compress far less; raise the cap with --max-zip-ratio)", shown)


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} GB"


def _wanted(name: str) -> bool:
    """Zip members worth unpacking: not media (never parsed), not macOS metadata or hidden files."""
    parts = name.rstrip("/").split("/")
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return False
    return os.path.splitext(parts[-1])[1].lower() not in _SKIP_SUFFIXES


def _unpack(zpath: Path, dest: Path, budget: _Budget, shown: str) -> None:
    """Unpack the wanted members of `zpath` into `dest`, streaming, within the budget.

    Why not extractall: it trusts every size and name in the zip. Here each member is checked
    (path escape, encryption, file/folder clash) before anything is written, then copied in 1 MiB
    pieces while counting, so a lying size header cannot get past the caps either.
    """
    try:
        with zipfile.ZipFile(zpath) as zf:
            infos = zf.infolist()
            if len(infos) > budget.limits.max_entries:
                raise InputError(f"zip lists {len(infos):,} entries (more than {budget.limits.max_entries:,}): "
                                 f"not a chat export", shown)
            root = os.path.realpath(dest)
            files: set[str] = set()
            dirs: set[str] = set()
            for info in infos:
                target = os.path.realpath(os.path.join(root, info.filename))
                if not target.startswith(root + os.sep) and target != root:
                    raise InputError(f"unsafe path in zip: {info.filename}", shown)
                name = info.filename.replace("\\", "/").strip("/")
                parts = name.split("/")
                dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
                (dirs if info.is_dir() else files).add(name)
            clash = sorted(files & dirs)
            if clash:
                raise InputError(f"zip holds both a file and a folder named {brief(clash[0])}: damaged, or not an export",
                                 shown)
            wanted = [i for i in infos if not i.is_dir() and _wanted(i.filename)]
            for info in wanted:
                if info.flag_bits & 0x1:
                    raise InputError(f"zip is password-protected ({info.filename} is encrypted): unzip it yourself "
                                     f"and give the folder as INPUT", shown)
            zip_size = zpath.stat().st_size
            budget.check(zip_size, sum(i.file_size for i in wanted), shown)  # honest headers: fail before writing
            done = 0
            for info in wanted:
                target = dest / info.filename
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                with zf.open(info) as src, open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                                                "wb") as dst:
                    while piece := src.read(1 << 20):
                        done += len(piece)
                        budget.check(zip_size, done, shown)
                        dst.write(piece)
            budget.total += done
    except InputError:
        raise
    except RuntimeError as e:  # zipfile says "encrypted, password required" this way
        raise InputError(f"cannot unpack zip: {e}", shown) from None
    except NotImplementedError as e:
        raise InputError(f"cannot unpack zip: {e} (re-zip it with standard deflate)", shown) from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise InputError(f"broken zip file: {e}", shown) from None
    except OSError as e:
        if e.errno in (28, 27):  # ENOSPC, EFBIG
            raise InputError(f"cannot unpack zip into {tempfile.gettempdir()}: {e.strerror}; free space or set "
                             f"TMPDIR to a bigger disk", shown) from None
        raise InputError(f"cannot unpack zip: {e.strerror or e}", shown) from None


def _remove_stale_temps() -> None:
    """Zips unpacked by a run that was killed (kill -9, power loss) stay in the temp folder holding
    personal data; remove those whose process is gone."""
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for name in names:
        m = _TEMP_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


class _Walker:
    """Walk one INPUT folder: every regular file once, no link out of the folder, no loops.

    Why so careful: `x -> .` in an export folder made the walk endless, and a link to the same
    chat read it many times; FIFOs and devices block or never end; and a prepare output folder
    inside the input would be read back as chats on the next run.
    """

    def __init__(self, root: Path, shown_root: str, fmt: Parser | None, result: ParseResult, budget: _Budget,
                 depth: int = 0):
        self.root, self.shown_root, self.fmt, self.result, self.budget = root, shown_root, fmt, result, budget
        self.real_root = os.path.realpath(root)
        self.seen: set[str] = set()
        self.depth = depth

    def label(self, p: Path) -> str:
        rel = p.relative_to(self.root).as_posix()
        return f"{self.shown_root}/{rel}" if rel != "." else self.shown_root

    def walk(self, folder: Path) -> None:
        real = os.path.realpath(folder)
        if real in self.seen:
            return
        self.seen.add(real)
        fmt = self.fmt
        dir_parser = fmt if (fmt is not None and fmt.is_dir) else None
        if fmt is not None and not fmt.is_dir:
            dir_parser = _DIR_BY_NAME.get(fmt.name)
        if dir_parser is None and fmt is None:
            dir_parser = detect_format(folder)
        if dir_parser is not None and (fmt is None or dir_parser.detect(Sniff(folder))):
            _parse_one(folder, dir_parser, self.result, self.label(folder))
            return
        try:
            children = sorted(folder.iterdir())
        except PermissionError:
            raise InputError("permission denied: cannot list this folder (check its permissions)", folder) from None
        except OSError as e:
            raise InputError(f"cannot list folder: {e.strerror or e}", folder) from None
        ours = own_output_names(folder, [c.name for c in children])
        for child in children:
            if child.name.startswith(".") or child.name == "__MACOSX" or child.name in ours:
                continue
            self.visit(child)

    def visit(self, child: Path) -> None:
        skipped = self.result.skipped
        kind, real, _ = examine(child, self.real_root)  # the rule folder parsers follow too (walk.py)
        if kind == "outside":
            skipped.append(f"{self.label(child)} ({OUTSIDE})")
            return
        if kind == "broken":  # a dangling link, or a loop of links
            skipped.append(f"{self.label(child)} (broken link)")
            return
        if real in self.seen:  # a loop, or a second link to something already read
            return
        if kind == "dir":
            self.walk(child)
            return
        self.seen.add(real)
        if kind != "file":
            skipped.append(f"{self.label(child)} (not a regular file)")
            return
        suffix = child.suffix.lower()
        if suffix in _SKIP_SUFFIXES:
            return
        open_regular(child).close()  # unreadable: one clear error naming it, not a silent skip
        if suffix == ".zip" and zipfile.is_zipfile(child):
            self.nested_zip(child)
            return
        fmt = self.fmt
        parser = fmt if (fmt is not None and not fmt.is_dir) else detect_format(child)
        if parser is None or (fmt is not None and fmt.is_dir):
            skipped.append(self.label(child))
            return
        _parse_one(child, parser, self.result, self.label(child))

    def nested_zip(self, child: Path) -> None:
        """A zip inside the folder (or inside a zip): look inside, within the same size budget."""
        shown = self.label(child)
        if self.depth >= self.budget.limits.max_depth:
            raise InputError(f"zips nested more than {self.budget.limits.max_depth} deep; unzip them yourself", shown)
        _walk_zip(child, shown, self.fmt, self.result, self.budget, self.depth + 1)


def _walk_zip(path: Path, shown: str, fmt: Parser | None, result: ParseResult, budget: _Budget, depth: int) -> None:
    with tempfile.TemporaryDirectory(prefix=f"{_TEMP_PREFIX}{os.getpid()}-") as tmp:
        _unpack(path, Path(tmp), budget, shown)
        try:
            _Walker(Path(tmp), shown, fmt, result, budget, depth).walk(Path(tmp))
        except InputError as e:
            # name the zip, not the temp folder it was unpacked to
            if e.path and e.path.startswith(tmp):
                raise InputError(e.message, shown + e.path[len(tmp):], e.line) from None
            raise


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
    _remove_stale_temps()
    if path.is_dir():
        _Walker(path, str(path), forced, result, _Budget(ZIP_LIMITS, str(path))).walk(path)
    else:
        open_regular(path).close()  # a FIFO, a device or an unreadable file: one clear error, no hang
        if zipfile.is_zipfile(path):
            _walk_zip(path, str(path), forced, result, _Budget(ZIP_LIMITS, str(path)), 0)
        else:
            parser = forced or detect_format(path)
            if parser is None:
                sniff = Sniff(path)
                if not sniff.raw:
                    raise sniff.error or InputError("empty file", path)
                if sniff.is_binary:
                    raise InputError("binary file, not a chat export (unknown format)", path)
                near = whatsapp.near_miss(sniff.text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
                if near is not None:  # so that the user can report the style we missed
                    raise InputError(f"unknown chat export format: this line looks like a message header but no "
                                     f"reader understood it: {near[1][:80]!r} (please report it); use --format "
                                     f"with one of: {', '.join(FORMAT_NAMES)}", path, near[0])
                raise InputError(f"unknown chat export format; use --format with one of: {', '.join(FORMAT_NAMES)}",
                                 path)
            if parser.is_dir:
                raise InputError(f"format {parser.name} needs a folder, got a file", path)
            _parse_one(path, parser, result, str(path))
    if not result.messages:
        if result.files:
            raise InputError("no chat messages found (only system lines or empty chats)", path)
        raise InputError("no chat export found here" + (
            f" ({len(result.skipped)} files not read: {', '.join(result.skipped[:3])})" if result.skipped else ""),
            path)
    return result

"""Atomic file writes and line-numbered JSONL reading.

Why atomic: a crash, a Ctrl-C or a bad input half-way through must never leave a truncated
checkpoint or a half-written dataset where a good one used to be. Everything is written to a temp
file in the same directory and renamed into place (rename is atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import InputError


def _umask_mode() -> int:
    """Permissions a plain open() would give a new file (mkstemp would give 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_beside(final: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    os.chmod(tmp, _umask_mode())
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temp_beside(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write one JSON object a line; returns the number of rows."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")
            n += 1
    return n


class OutputSet:
    """Stage several output files and publish them together.

    Use: `with OutputSet(out_dir) as out: out.write_text("a.txt", ...)`. Files go to temp names and
    are renamed into place only when the block exits without an exception, so a failure half-way
    leaves every previous output untouched.
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self._staged: list[tuple[Path, Path]] = []

    def __enter__(self) -> "OutputSet":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self

    def path(self, name: str) -> Path:
        """A temp path to write `name` to; it becomes out_dir/name on success."""
        final = self.out_dir / name
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(final)
        self._staged.append((tmp, final))
        return tmp

    def write_text(self, name: str, text: str) -> None:
        self.path(name).write_text(text, encoding="utf-8")

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")

    def write_jsonl(self, name: str, rows: Iterable[Any]) -> int:
        n = 0
        with open(self.path(name), "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False))
                f.write("\n")
                n += 1
        return n

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            for tmp, final in self._staged:
                os.replace(tmp, final)
        for tmp, _ in self._staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._staged.clear()


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line_number, object) for each non-blank line; bad JSON raises InputError naming the line."""
    path = Path(path)
    try:
        f = open(path, encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a .jsonl file", path) from None
    with f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputError(f"invalid JSON ({e.msg.removesuffix(' at')} at column {e.colno})", path, lineno) from None
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", path) from None

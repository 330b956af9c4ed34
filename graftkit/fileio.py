"""Atomic file writes, all-or-nothing output sets, and line-numbered JSONL reading.

Why atomic: a crash, a Ctrl-C, a full disk or a bad input half-way through must never leave a
truncated checkpoint or a half-written dataset where a good one used to be. A single file is
written to a temp file in the same directory, fsynced and renamed into place (rename is atomic).

Why private: these files hold someone's chats (or models trained on them). New files are 0600 and
new folders 0700 (narrowed further by the umask), whatever the umask would allow otherwise.

Temp files are named `.NAME.PID.RANDOM.tmp`; those of a process that no longer runs (kill -9,
power loss) are removed the next time the same file is written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import InputError, UserError

FILE_MODE = 0o600
DIR_MODE = 0o700
MANIFEST_NAME = ".graftkit-outputs.json"  # written last: which files form the published set
JOURNAL_NAME = ".graftkit-publishing.json"  # present only while (or if killed while) a set is renamed into place
STAGING_PREFIX = ".graftkit-staging-"
# prepare_training_data.py's outputs as written before output sets had a manifest
LEGACY_OUTPUTS = ("messages.jsonl", "sharegpt_format.jsonl", "sharegpt_train.jsonl", "sharegpt_val.jsonl",
                  "corpus_train.txt", "corpus_val.txt", "stats.json")
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_LEGACY_TEMP_AGE_S = 600


def _mode(mode: int) -> int:
    """`mode` narrowed by the umask, as the OS would apply it to a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def write_error(e: OSError, path: str | Path, kept: str = "the previous files are kept") -> UserError:
    """One clear line for an OSError while writing: disk full, file too big, read-only, no permission."""
    why = {errno.ENOSPC: "disk full (ENOSPC)", errno.EFBIG: "file too large for this system or limit (EFBIG)",
           errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
           errno.EPERM: "operation not permitted"}.get(e.errno or 0, e.strerror or str(e))
    if e.errno == getattr(errno, "EDQUOT", None):
        why = "disk quota exceeded (EDQUOT)"
    return UserError(f"cannot write: {why}; {kept}", path)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (on this machine); unsure counts as alive."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_stale_temps(folder: str | Path, name: str | None = None) -> int:
    """Delete our temp files in `folder` (for `name` only, if given) left by dead processes.

    Why: after kill -9 they pile up, each holding personal data. A temp names its writer's pid, so
    a live writer's file is never touched; old-style temps without a pid go when older than 10 min.
    """
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    pat = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.[A-Za-z0-9_]+|[A-Za-z0-9_]{8})\.tmp$")
    removed = 0
    now = time.time()
    for n in names:
        m = pat.match(n)
        if not m or (name is not None and m.group("name") != name):
            continue
        p = folder / n
        try:
            if m.group("pid") is not None:
                stale = not pid_alive(int(m.group("pid")))
            else:
                stale = now - p.lstat().st_mtime > _LEGACY_TEMP_AGE_S
            if stale and p.is_file():
                p.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _fsync_path(path: str | Path, directory: bool = False) -> None:
    """Flush a file's (or a folder's entries') data to disk; best effort where the OS cannot."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_private_dirs(path: str | Path) -> Path:
    """`mkdir -p` where every folder created (the parents too, unlike Path.mkdir) is 0700.

    A folder that cannot be created (read-only file system, no permission, a file in the way) is one
    UserError naming it.
    """
    path = Path(path)
    missing = []
    for p in (path, *path.parents):
        if p.is_dir():
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not p.is_dir():
                raise UserError("exists and is not a folder", p) from None
        except OSError as e:
            raise write_error(e, p, "nothing was written") from None
    if not path.is_dir():
        raise UserError("exists and is not a folder", path)
    return path


def _mkdir(path: Path) -> None:
    make_private_dirs(path)


def _temp_beside(final: Path) -> Path:
    remove_stale_temps(final.parent, final.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)
    except OSError as e:
        raise write_error(e, final) from None
    os.close(fd)
    os.chmod(tmp, _mode(FILE_MODE))
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; fsync it and rename it onto `path` only if the block succeeds.

    A full disk or a file-size limit while writing becomes a UserError (one line); the old file stays.
    """
    path = Path(path)
    _mkdir(path.parent)
    tmp_path = _temp_beside(path)
    try:
        try:
            yield tmp_path
            _fsync_path(tmp_path)
            os.replace(tmp_path, path)
        except OSError as e:
            if e.errno in _WRITE_ERRNOS or e.errno in (errno.EROFS, errno.EACCES):
                raise write_error(e, path, "the previous file is kept") from None
            raise
        _fsync_path(path.parent, directory=True)
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


def write_jsonl_rows(f: Any, rows: Iterable[Any]) -> int:
    """One JSON object a line (UTF-8 kept as is) to an open text file; returns the number of rows."""
    n = 0
    for row in rows:
        f.write(json.dumps(row, ensure_ascii=False))
        f.write("\n")
        n += 1
    return n


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write one JSON object a line; returns the number of rows."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        return write_jsonl_rows(f, rows)


def _lock(folder: Path, wait_s: float = 0.0) -> int | None:
    """An exclusive lock on `folder` itself (flock on the directory: no lock file to leave behind,
    and the kernel drops it when the process dies). Returns the fd, or None where flock is missing."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs are not serialised there
        return None
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # cannot even open the folder: the write that follows reports why
        return None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise UserError(f"another run{_writer(folder)} is writing to this folder; wait for it to finish "
                                f"or choose another output folder", folder) from None
            time.sleep(0.05)
        except OSError:  # a file system without locks (some network mounts): go on unlocked
            os.close(fd)
            return None


def _writer(folder: Path) -> str:
    for n in _listdir(folder):
        if n.startswith(STAGING_PREFIX):
            pid = n[len(STAGING_PREFIX):].split("-")[0]
            if pid.isdigit() and pid_alive(int(pid)):
                return f" (pid {pid})"
    return ""


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _roll_forward(folder: Path) -> None:
    """Finish a publication that a kill interrupted between its renames (the journal lists them)."""
    journal = folder / JOURNAL_NAME
    try:
        plan = json.loads(journal.read_text(encoding="utf-8"))
        moves = plan["moves"]
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink(missing_ok=True)  # written by rename only, so unreadable means not ours
        return
    if not all(_safe_move(m) for m in moves):  # never move files outside the folder on a forged journal
        journal.unlink(missing_ok=True)
        return
    for staged, final in moves:
        src = folder / staged
        if src.exists():
            (folder / final).parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            os.replace(src, folder / final)
    os.replace(journal, folder / MANIFEST_NAME)
    _fsync_path(folder, directory=True)
    staging = plan.get("staging")
    if isinstance(staging, str) and staging.startswith(STAGING_PREFIX) and "/" not in staging:
        shutil.rmtree(folder / staging, ignore_errors=True)


def _safe_move(move: Any) -> bool:
    if not (isinstance(move, list) and len(move) == 2 and all(isinstance(x, str) for x in move)):
        return False
    staged, final = move
    parts = Path(staged).parts + Path(final).parts
    return staged.startswith(STAGING_PREFIX) and ".." not in parts and not Path(staged).is_absolute() \
        and not Path(final).is_absolute() and bool(final)


def _remove_stale_staging(folder: Path) -> None:
    for n in _listdir(folder):
        if n.startswith(STAGING_PREFIX):
            shutil.rmtree(folder / n, ignore_errors=True)
    remove_stale_temps(folder)


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of the output set published in `folder`, or None if there is none."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def own_output_names(folder: Path, names: Iterable[str]) -> set[str]:
    """Names in `folder` that are outputs of ours (a published set), so input walks skip them:
    with --out inside the input folder, the next run must not read its own outputs as chats."""
    names = set(names)
    manifest = read_manifest(folder) if MANIFEST_NAME in names else None
    if manifest is not None:
        return {n.split("/")[0] for n in manifest["files"]} | {MANIFEST_NAME}
    if {"stats.json", "messages.jsonl", "sharegpt_format.jsonl"} <= names:
        return set(LEGACY_OUTPUTS) & names
    return set()


def verify_output_set(folder: str | Path, wait_s: float = 10.0) -> None:
    """For readers of an output set: make sure `folder` does not hold a half-published set.

    If a publication was interrupted (the journal is there and nobody holds the lock), it is
    finished now; if one is running, wait up to `wait_s` for it. Raises UserError otherwise.
    """
    folder = Path(folder)
    if not (folder / JOURNAL_NAME).exists():
        return
    try:
        fd = _lock(folder, wait_s)
    except OSError as e:
        raise UserError(f"the outputs here are half-published and cannot be repaired ({e.strerror}); rerun the "
                        f"step that wrote them", folder) from None
    try:
        _roll_forward(folder)
    except OSError as e:
        raise UserError(f"the outputs here are half-published and cannot be repaired ({e.strerror}); rerun the "
                        f"step that wrote them", folder) from None
    finally:
        if fd is not None:
            os.close(fd)


def check_prepared(*paths: str | Path | None, wait_s: float = 10.0) -> None:
    """The one check every reader of prepare_training_data.py's output runs before reading a file.

    For each distinct folder holding one of `paths` (files; empty ones are skipped): a set whose
    publication a kill interrupted is finished now, one being published is waited for, and one that
    cannot be finished is refused with one line. So a reader never sees one run's train split next to
    another run's validation split.
    """
    seen: set[Path] = set()
    for p in paths:
        if not p:
            continue
        folder = Path(p).parent
        if folder not in seen:
            seen.add(folder)
            verify_output_set(folder, wait_s)


class OutputSet:
    """Stage several output files and publish them together, all or nothing.

    Use: `with OutputSet(out_dir) as out: out.write_text("a.txt", ...)`. How:
    - a lock on out_dir: a second run on the same folder stops with one line instead of mixing;
    - files are written into a private staging folder inside out_dir (0700, files 0600);
    - on success each file is fsynced, then a journal listing the renames is put in place with one
      rename (the commit point), the files are renamed, and the journal becomes the manifest.
      A kill during the renames is finished by the next OutputSet or `verify_output_set`, so the
      folder never stays a mix of two runs; a failure before the commit changes nothing;
    - staging folders and temps left by killed runs are removed at the start;
    - a full disk or a file-size limit while writing becomes a UserError (one line).
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self._staged: list[tuple[str, str]] = []  # (staged path relative to out_dir, final name)
        self._lock_fd: int | None = None
        self._staging: Path | None = None
        self._committed = False

    def __enter__(self) -> "OutputSet":
        _mkdir(self.out_dir)
        self._lock_fd = _lock(self.out_dir)
        try:
            _roll_forward(self.out_dir)
            _remove_stale_staging(self.out_dir)
            self._staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=self.out_dir))
        except OSError as e:
            self._unlock()
            raise write_error(e, self.out_dir, "nothing was written") from None
        except BaseException:
            self._unlock()
            raise
        return self

    def path(self, name: str) -> Path:
        """A path to write `name` to (created empty, mode 0600); it becomes out_dir/name on success."""
        assert self._staging is not None, "use OutputSet as a context manager"
        staged = self._staging / name
        try:
            staged.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            os.close(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _mode(FILE_MODE)))
        except OSError as e:
            raise write_error(e, self.out_dir / name, "nothing was replaced") from None
        self._staged.append((staged.relative_to(self.out_dir).as_posix(), name))
        return staged

    def write_text(self, name: str, text: str) -> None:
        with open(self.path(name), "w", encoding="utf-8") as f:
            f.write(text)

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")

    def write_jsonl(self, name: str, rows: Iterable[Any]) -> int:
        with open(self.path(name), "w", encoding="utf-8") as f:
            return write_jsonl_rows(f, rows)

    def _publish(self) -> None:
        files = {}
        for staged, name in self._staged:
            _fsync_path(self.out_dir / staged)
            st = os.stat(self.out_dir / staged)
            files[name] = {"size": st.st_size}
        assert self._staging is not None
        plan = {"moves": self._staged, "files": files, "staging": self._staging.name, "pid": os.getpid(),
                "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        pending = self._staging / JOURNAL_NAME
        with open(os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _mode(FILE_MODE)), "w") as f:
            json.dump(plan, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync_path(self._staging, directory=True)
        os.replace(pending, self.out_dir / JOURNAL_NAME)  # the commit point
        self._committed = True
        _fsync_path(self.out_dir, directory=True)
        _roll_forward(self.out_dir)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    self._publish()
                except OSError as e:
                    raise write_error(e, self.out_dir, "the previous outputs are kept") from None
            elif isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
                raise write_error(exc, self.out_dir, "the previous outputs are kept") from None
        finally:
            # after the commit point the staged files belong to the journal: the next run finishes them
            if self._staging is not None and (not self._committed or not (self.out_dir / JOURNAL_NAME).exists()):
                shutil.rmtree(self._staging, ignore_errors=True)
            self._staged.clear()
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


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
                except RecursionError:
                    raise InputError("invalid JSON: nested too deeply (over ~1000 levels)", path, lineno) from None
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", path) from None

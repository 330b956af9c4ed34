"""What both trainers need around a run, whatever the model: stop signals, one run per folder, private files.

Why one module: train_tiny_gpt.py and train_lora.py must behave the same when
- the machine is taken away: Colab, Kaggle, spot/preemptible VMs, `docker stop`, `timeout` and a closed
  terminal send SIGTERM or SIGHUP, not Ctrl-C. Each is treated like Ctrl-C: finish the step, save,
  exit with 128 + the signal's number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). A second Ctrl-C stops at
  once; a repeated SIGTERM / SIGHUP does not (torchrun sends SIGTERM twice within milliseconds, and the
  hard stop of a scheduler is SIGKILL anyway). A signal ignored when the run starts (`nohup` ignores
  SIGHUP) stays ignored;
- a second notebook cell or terminal starts a run on the same output folder: the second stops with one
  line naming the first's pid, instead of both writing the same checkpoints and metrics by turns;
- the output folder cannot be created (a read-only file system such as /kaggle/input): one line;
- the run writes personal data (checkpoints of a model trained on someone's chats), some of it through
  libraries (the Hugging Face Trainer) that create folders 0755 and files 0644: while a run holds its
  folder the process umask is 077, so everything written is 0700 / 0600 from the first byte.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import UserError
from .fileio import make_private_dirs, pid_alive, write_error

LOCK_NAME = ".graftkit-run.lock"


class Stopped(KeyboardInterrupt):
    """A run stopped by a signal after saving; the scripts exit with 128 + `signum` (Ctrl-C: 130)."""

    def __init__(self, signum: int = signal.SIGINT, message: str = ""):
        super().__init__(message)
        self.signum = int(signum)


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def stop_signals() -> list[int]:
    """SIGINT, SIGTERM and (where it exists) SIGHUP."""
    return [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


class _QuietStream:
    """stdout/stderr after SIGHUP: the terminal is gone, and a write that fails (EIO) must not stop the save."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError, ValueError):
            return self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def on_stop_signal(request: Callable[[int], None]) -> Iterator[None]:
    """Call `request(signum)` on the first SIGINT / SIGTERM / SIGHUP; raise Stopped on a second Ctrl-C.

    Outside the main thread (where Python cannot install handlers) nothing is installed. After SIGHUP,
    stdout and stderr no longer raise on a lost terminal.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def handler(signum, frame):
        if seen:
            if signum == signal.SIGINT:
                raise Stopped(signum)
            return  # already saving and stopping
        seen.append(signum)
        if signum == getattr(signal, "SIGHUP", None):
            sys.stdout, sys.stderr = _QuietStream(sys.stdout), _QuietStream(sys.stderr)
        # a print inside the handler can hit "reentrant call" when the signal interrupted a print to the same
        # stream (a progress bar writes all the time): the flag is set first, a lost message costs nothing
        with contextlib.suppress(RuntimeError, OSError):
            request(signum)

    previous: dict[int, Any] = {}
    for s in stop_signals():
        old = signal.getsignal(s)
        if old == signal.SIG_IGN and s != signal.SIGINT:  # nohup: the user asked to survive a hang-up
            continue
        previous[s] = old
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """umask 077 for the block (or the user's own where it is stricter): every folder and file written, by us
    or a library, is 0700 / 0600 at most."""
    old = os.umask(0o077)
    os.umask(old | 0o077)
    try:
        yield
    finally:
        os.umask(old)


def _describe(info: dict) -> str:
    pid, host = info.get("pid"), info.get("host")
    where = f"pid {pid}" if isinstance(pid, int) else "another process"
    if isinstance(host, str) and host and host != socket.gethostname():
        where += f" on {host[:64]}"
    started = info.get("started")
    return where + (f", started {started[:32]}" if isinstance(started, str) else "")


def _read_lock(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(4096).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RunLock:
    """One training run per output folder.

    The lock is a file in the folder, `flock`ed for the whole run (the kernel drops it when the process
    dies, even on kill -9), holding the owner's pid, host and start time so that a second run can say
    who holds it. Where the file system has no flock (some network mounts) the file itself is the lock,
    created exclusively; one left by a dead process on this machine is taken over.
    """

    def __init__(self, folder: str | Path, what: str = "output folder"):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._owned_file = False

    def _busy(self, info: dict) -> UserError:
        return UserError(f"another training run ({_describe(info)}) is using this {self.what}; wait for it to finish, "
                         f"stop it, or choose another {self.what}", self.folder)

    def _stamp(self) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode()

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # Windows
            fcntl = None
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as e:
                raise write_error(e, self.folder, "nothing was written") from None
            if fcntl is None:
                os.close(fd)
                return self._acquire_exclusive_file()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._busy(_read_lock(self.path)) from None
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    return self._acquire_exclusive_file()
                raise write_error(e, self.folder, "nothing was written") from None
            try:  # the file may have been removed by the previous owner between our open and flock: retry
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, self._stamp())
            except OSError as e:
                os.close(fd)
                raise write_error(e, self.folder, "nothing was written") from None
            self._fd = fd
            return self
        raise self._busy(_read_lock(self.path))

    def _acquire_exclusive_file(self) -> "RunLock":
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                info = _read_lock(self.path)
                pid, host = info.get("pid"), info.get("host")
                if isinstance(pid, int) and host == socket.gethostname() and not pid_alive(pid):
                    self.path.unlink(missing_ok=True)  # its owner died: take it over
                    continue
                raise self._busy(info) from None
            except OSError as e:
                raise write_error(e, self.folder, "nothing was written") from None
            with os.fdopen(fd, "wb") as f:
                f.write(self._stamp())
            self._owned_file = True
            return self
        raise self._busy(_read_lock(self.path))

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while still locked: the next run creates a fresh file
            os.close(self._fd)
            self._fd = None
        elif self._owned_file:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self._owned_file = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


@contextlib.contextmanager
def run_folder(folder: str | Path, what: str = "output folder", lock: bool = True) -> Iterator[Path]:
    """For the length of a training run: `folder` exists (created 0700 with any parents we create; one line
    when it cannot be, e.g. on a read-only file system), is locked against a second run (`lock=False`
    for the other ranks of a torchrun job: rank 0 holds it), and the process umask is 077."""
    folder = Path(folder)
    make_private_dirs(folder)
    with contextlib.ExitStack() as stack:
        if lock:
            stack.enter_context(RunLock(folder, what))
        stack.enter_context(private_umask())
        yield folder


__all__ = ["LOCK_NAME", "RunLock", "Stopped", "on_stop_signal", "private_umask", "run_folder",
           "signal_name", "stop_signals"]

"""One error type for everything a user can fix, and a wrapper that turns it into one clean line.

Why: users of a training kit hit bad exports, typos in configs and missing files far more often than
real bugs. They deserve `error: path:line: what is wrong` and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., int | None])


class UserError(Exception):
    """Something the user can fix: bad input, bad config, missing dependency.

    `path` and `line` (1-based) are optional and, when given, prefix the message so the user knows
    exactly where to look.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(self.format())

    def format(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        return where + self.message


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (its type name when it has none), cut to `limit`
    characters: what a library error contributes to our one-line messages."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def notice(msg: str) -> None:
    """A one-line `notice: ...` on stderr for something the user should know but need not fix; printed by
    the first process only (torchrun / accelerate set RANK), so N processes do not say it N times."""
    if int(os.environ.get("RANK", "0") or 0) == 0:
        print(f"notice: {msg}", file=sys.stderr, flush=True)


class InputError(UserError):
    """A chat export or data file that cannot be read as what it claims to be."""


class ConfigError(UserError):
    """A config file or `key=value` override that is invalid."""


class ScriptFailed(Exception):
    """A script run inside IPython/Jupyter failed: shown there as its one `error:` line, not a traceback.

    Why not SystemExit: in a notebook that prints "An exception has occurred ... SystemExit: 2" and a
    warning about exiting the kernel. IPython renders an exception with `_render_traceback_` as the lines
    it returns, and the cell still fails, so "Run all" stops at the failing step."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.message, self.code = message, code

    def _render_traceback_(self) -> list[str]:
        return [self.message]


def signal_label(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def cli_main(func: F) -> Callable[..., int]:
    """Run a script's `main(argv)`: a UserError becomes one `error:` line and exit status 2, Ctrl-C 130
    (a run stopped by SIGTERM / SIGHUP after saving: 143 / 129).

    The same script works from a shell, `!python` and a notebook (`%run script.py ...` or
    `script.main([...])`): argv=None in a kernel ignores the kernel's own `-f kernel.json`; under IPython
    a failure raises ScriptFailed (one line, no SystemExit) instead of returning a status, argparse's
    exits are caught, and the loss-curve PNGs the run wrote are shown inline at the end.
    """

    @functools.wraps(func)
    def wrapper(argv: list[str] | None = None, **kwargs) -> int:
        from . import notebook

        ipython = notebook.ipython_shell() is not None
        argv = notebook.script_argv(argv)
        notebook.forget_figures()
        saved_argv0 = sys.argv[0] if sys.argv else ""
        if ipython:  # argparse names the program after sys.argv[0]: the script, not ipykernel_launcher.py
            module_file = getattr(sys.modules.get(func.__module__), "__file__", None)
            sys.argv[:1] = [os.path.basename(module_file or saved_argv0)]
        message = None
        try:
            rc = func(argv, **kwargs)
            rc = 0 if rc is None else int(rc)
        except UserError as e:
            message, rc = f"error: {e.format()}", 2
        except KeyboardInterrupt as e:  # graftkit.runstate.Stopped carries the signal: 143 SIGTERM, 129 SIGHUP
            signum = getattr(e, "signum", 2)
            message, rc = "interrupted" + (f" ({signal_label(signum)})" if signum != 2 else ""), 128 + signum
        except BrokenPipeError:  # e.g. `... | head`
            rc = 0
        except SystemExit as e:  # argparse: --help (0) or a usage error (2, message already printed)
            if not ipython:
                raise
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            message = f"exit status {rc}"
        finally:
            if ipython:
                sys.argv[:1] = [saved_argv0]
        if ipython:
            notebook.show_figures()
            if rc != 0:
                raise ScriptFailed(message or f"exit status {rc}", rc)
        elif message:
            print(message, file=sys.stderr)
        return rc

    return wrapper


def run_script(main: Callable[..., int]) -> None:
    """`if __name__ == "__main__": run_script(main)`: sys.exit(main()) from a shell; under IPython's
    `%run` just main(), which raises ScriptFailed on failure rather than exiting the kernel."""
    rc = main()
    from . import notebook

    if notebook.ipython_shell() is None:
        sys.exit(rc)

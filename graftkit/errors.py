"""One error type for everything a user can fix, and a wrapper that turns it into one clean line.

Why: users of a training kit hit bad exports, typos in configs and missing files far more often than
real bugs. They deserve `error: path:line: what is wrong` and a non-zero exit, not a traceback.
"""

from __future__ import annotations

import functools
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


class InputError(UserError):
    """A chat export or data file that cannot be read as what it claims to be."""


class ConfigError(UserError):
    """A config file or `key=value` override that is invalid."""


def cli_main(func: F) -> Callable[..., int]:
    """Run a script's main(); print a UserError as one `error:` line on stderr and exit 2.

    KeyboardInterrupt exits 130 quietly (the training loops save before re-raising it).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> int:
        try:
            rc = func(*args, **kwargs)
            return 0 if rc is None else int(rc)
        except UserError as e:
            print(f"error: {e.format()}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # e.g. `... | head`
            return 0

    return wrapper

"""The one rule for reading the files of an INPUT folder, shared by the folder walker and by the parsers
that read a folder themselves (Slack workspace, Messenger/Instagram thread folders).

Why one rule: the walker skipped links leading out of the INPUT, but the Slack and Messenger readers
listed their folders themselves and followed such links, and the Slack reader joined channel names
from channels.json (`../x`, `/home/...`) to the path, so another file's text ended up in the corpus.
Now every file any parser opens inside a folder comes from `examine` or `Folder`: a link is followed
only when its target lies inside the root, nothing but regular files and folders is read, and a name
from a file's content never becomes part of a path (it can only select an entry found by listing).
What is skipped is reported in ParseResult.skipped, with the reason, like the walker's own skips.
"""

from __future__ import annotations

import contextvars
import os
import stat
from pathlib import Path

# (path, reason) pairs of entries a folder parser skipped; parse_input collects them per parse call.
_SKIPPED: contextvars.ContextVar[list[tuple[Path, str]] | None] = contextvars.ContextVar("skipped", default=None)

OUTSIDE = "link to outside the folder, not followed; give its target as an INPUT to read it"


def is_inside(real: str, real_root: str) -> bool:
    """`real` (a resolved path) is `real_root` or lies below it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def examine(child: Path, real_root: str) -> tuple[str, str, os.stat_result | None]:
    """(kind, resolved path, stat) of one folder entry, links resolved: kind is "dir", "file" (regular),
    "other" (FIFO, device, socket), "outside" (a link whose target is outside `real_root`) or "broken"
    (a dangling link or a loop of links)."""
    try:
        st = child.lstat()
        real = os.path.realpath(child)
        if stat.S_ISLNK(st.st_mode):
            if not is_inside(real, real_root):
                return "outside", real, None
            st = os.stat(real)
    except (OSError, ValueError):
        return "broken", str(child), None
    if stat.S_ISDIR(st.st_mode):
        return "dir", real, st
    if stat.S_ISREG(st.st_mode):
        return "file", real, st
    return "other", real, st


def skip(path: Path, why: str) -> None:
    """Record that a folder parser did not read `path` (shown in the run's list of skipped files)."""
    sink = _SKIPPED.get()
    if sink is not None and (path, why) not in sink:
        sink.append((path, why))


def collect_skips() -> tuple[list[tuple[Path, str]], contextvars.Token]:
    """Start collecting skip() calls; give the token back to `_SKIPPED.reset` when done."""
    sink: list[tuple[Path, str]] = []
    return sink, _SKIPPED.set(sink)


def end_collect(token: contextvars.Token) -> None:
    _SKIPPED.reset(token)


class Folder:
    """Listing for a parser that reads a whole folder: only regular files and folders that lie inside
    `root` (after resolving links), each entry found by listing, never by a name read from a file."""

    def __init__(self, root: Path):
        self.root = root
        self.real_root = os.path.realpath(root)

    def entries(self, folder: Path) -> list[tuple[Path, str]]:
        """(path, "dir" | "file") of `folder`'s entries in name order; hidden entries are left out and
        links out of the root, broken links and special files are skipped (and reported)."""
        out = []
        for child in sorted(folder.iterdir()):
            if child.name.startswith(".") or child.name == "__MACOSX":
                continue
            kind, _, _ = examine(child, self.real_root)
            if kind in ("dir", "file"):
                out.append((child, kind))
            elif kind == "outside":
                skip(child, OUTSIDE)
            elif kind == "broken":
                skip(child, "broken link")
            else:
                skip(child, "not a regular file")
        return out

    def files(self, folder: Path) -> list[Path]:
        return [p for p, kind in self.entries(folder) if kind == "file"]

    def folders(self, folder: Path) -> list[Path]:
        return [p for p, kind in self.entries(folder) if kind == "dir"]

    def file(self, folder: Path, name: str) -> Path | None:
        """The regular file `name` directly in `folder` (a fixed name such as users.json), if it is one
        and lies inside the root; a link out of the root is reported and None returned."""
        child = folder / name
        if not os.path.lexists(child):
            return None
        kind, _, _ = examine(child, self.real_root)
        if kind == "file":
            return child
        if kind == "outside":
            skip(child, OUTSIDE)
        return None

"""Plain transcripts: one `Name: text` line per message, no timestamps.

The most generic format there is, so it runs last and its detector is strict: most head lines must
look like `Name: text` with a short, plain name, and the names must repeat like speakers do (a YAML
file or a mail header has a new key on every line). Lines without a `Name: ` prefix continue the
previous message; blank lines are ignored.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, iter_lines

SOURCE = "plain_transcript"
MAX_NAME = 40
_BAD_FIRST = set("[{<(\"'#-*>|/\\=+`~")


def speaker(line: str) -> str | None:
    """The name in a `Name: text` line, if the part before the first ": " can be a name."""
    i = line.find(": ")
    if i <= 0 or i > MAX_NAME:
        return None
    name = line[:i]
    if name[0] in _BAD_FIRST or name != name.strip() or "\t" in name or name.count(" ") > 5:
        return None
    return name


def _detect(sniff: Sniff) -> bool:
    lines = sniff.lines
    if len(lines) < 2:
        return False
    names = [n for n in map(speaker, lines) if n is not None]
    if len(names) < 2 or len(names) * 10 < len(lines) * 8:
        return False
    return len(set(names)) <= max(2, len(names) * 6 // 10)


def _parse(path: Path) -> list[Message]:
    msgs: list[Message] = []
    for lineno, line in enumerate(iter_lines(path), 1):
        if not line.strip():
            continue
        name = speaker(line)
        if name is not None:
            msgs.append(Message(name, line[len(name) + 2:], None, "", SOURCE))
        elif msgs:
            msgs[-1].text += "\n" + line
        else:
            raise InputError("expected a 'Name: text' line", path, lineno)
    return msgs


PARSERS = [
    Parser(SOURCE, _detect, _parse, priority=99,
           description="plain transcript: 'Name: text' lines, no timestamps"),
]

"""Signal exports written by third-party tools: plain text and signal-export style Markdown.

    signal_txt:       [2019-12-24, 12:23] Jane Doe: Hello
    signal_markdown:  [2023-12-31 21:05] Alice: text        (attachments: ![name](./media/...))

Both are local wall time without seconds; a line without a header continues the previous message.
The headers are matched strictly (ISO date, two-digit hour, no seconds) because a looser pattern would
also take Swedish WhatsApp exports (`[2019-12-24 12:23:45] ...`); these parsers run before WhatsApp's.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, iter_lines

# Groups: date, time, rest of the line ("Name: text").
_TXT = re.compile(r"\[(\d{4}-\d{2}-\d{2}), (\d{2}:\d{2})\] (.*)", re.DOTALL)
_MD = re.compile(r"\[(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2})\] (.*)", re.DOTALL)
# A message that is (or starts with) a Markdown image/attachment link.
_ATTACHMENT = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")


def _detector(header: re.Pattern):
    """The first non-empty line is a header, and at least 1 in 5 head lines are headers."""
    def detect(sniff: Sniff) -> bool:
        lines = sniff.lines
        if not lines or header.match(lines[0]) is None:
            return False
        return sum(1 for line in lines if header.match(line)) * 5 >= len(lines)
    return detect


def _parser(header: re.Pattern, source: str, strip_trailing_blank: bool):
    """Header lines start messages; "Name: text" splits on the first ": "; headers without one are
    group-update lines and are skipped (with their continuation lines).

    Markdown puts blank lines between paragraphs freely, so trailing blank lines of a Markdown
    message are layout, not text; the plain-text export keeps every line verbatim.
    """
    def parse(path: Path) -> list[Message]:
        msgs: list[Message] = []
        cur: Message | None = None
        cont: list[str] = []
        seen_header = False
        valid: set[tuple[str, str]] = set()
        for lineno, line in enumerate(iter_lines(path), 1):
            m = header.match(line)
            if m is None:
                if seen_header:  # lines before the first header (a title) belong to no message
                    cont.append(line)
                continue
            seen_header = True
            _finish(cur, cont, strip_trailing_blank)
            cont = []
            day, clock, rest = m.groups()
            if (day, clock) not in valid:
                _check_stamp(path, lineno, day, clock)
                valid.add((day, clock))
            i = rest.find(": ")
            if i >= 0:
                sender, text = rest[:i], rest[i + 2:]
            elif rest.endswith(":"):
                sender, text = rest[:-1], ""
            else:
                cur = None
                continue
            cur = Message(sender, text, f"{day}T{clock}:00", "", source,
                          _ATTACHMENT.match(text) is not None)
            msgs.append(cur)
        _finish(cur, cont, strip_trailing_blank)
        if not seen_header:
            raise InputError(f"no {source} message header found", path)
        return msgs
    return parse


def _check_stamp(path: Path, lineno: int, day: str, clock: str) -> None:
    """Reject impossible dates and times (2023-13-01, 25:61) with the line they are on."""
    try:
        datetime.fromisoformat(f"{day}T{clock}")
    except ValueError:
        raise InputError(f"invalid date/time {day} {clock}", path, lineno) from None


def _finish(msg: Message | None, cont: list[str], strip_trailing_blank: bool) -> None:
    if msg is not None and cont:
        msg.text = "\n".join([msg.text, *cont])
    if msg is not None and strip_trailing_blank and msg.text.endswith("\n"):
        msg.text = msg.text.rstrip("\n")


PARSERS = [
    Parser("signal_txt", _detector(_TXT), _parser(_TXT, "signal_txt", False), priority=20,
           description="Signal plain-text export: [YYYY-MM-DD, HH:MM] Name: text"),
    Parser("signal_markdown", _detector(_MD), _parser(_MD, "signal_markdown", True), priority=21,
           description="signal-export Markdown: [YYYY-MM-DD HH:MM] Name: text"),
]

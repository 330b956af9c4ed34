"""ShareGPT and OpenAI `messages` JSONL read as messages (sender = the role as written).

These are already training data; prepare_training_data.py validates them and builds the splits
from the conversations directly (graftkit.samples), but they parse to messages too so that every
input goes through one entry point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..fileio import read_jsonl
from ..messages import Message
from ..samples import ROLE_TO_SHAREGPT, parse_record
from .base import Parser, Sniff, iter_lines, too_long_number


def _first_record(sniff: Sniff) -> dict | None:
    for line in sniff.lines[:1]:
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None
    return None


def _detect(kind: str, turn_key: str):
    """JSONL whose first line is an object with a `kind` list of turns carrying `turn_key`."""
    def detect(sniff: Sniff) -> bool:
        if not sniff.lines or not sniff.lines[0].lstrip().startswith("{"):
            return False
        obj = _first_record(sniff)
        if obj is None:  # first line longer than the sniffed head: look at its start
            head = sniff.lines[0][:300]
            return f'"{kind}"' in head and f'"{turn_key}"' in head
        turns = obj.get(kind)
        return isinstance(turns, list) and bool(turns) and isinstance(turns[0], dict) and turn_key in turns[0]
    return detect


def _records(path: Path) -> Iterator[tuple[int, object]]:
    """read_jsonl's (line, object) pairs; a number too long to convert (json.loads raises a bare
    ValueError for more than 4,300 digits) is one InputError naming the line, not a traceback."""
    last = 0
    it = read_jsonl(path)
    while True:
        try:
            lineno, obj = next(it)
        except StopIteration:
            return
        except InputError:
            raise
        except ValueError:
            raise InputError("a number of more than 4,300 digits (valid: at most 4,300): not a training "
                             "record", path, _long_number_line(path, last)) from None
        last = lineno
        yield lineno, obj


def _long_number_line(path: Path, after: int) -> int | None:
    try:
        for lineno, line in enumerate(iter_lines(path), 1):
            if lineno > after and too_long_number(line) is not None:
                return lineno
    except InputError:
        pass
    return None


def _parse(path: Path) -> list[Message]:
    msgs: list[Message] = []
    for idx, (lineno, obj) in enumerate(_records(path)):
        kind, turns = parse_record(obj, path, lineno)
        for t in turns:
            sender = ROLE_TO_SHAREGPT[t["role"]] if kind == "sharegpt" else t["role"]
            msgs.append(Message(sender=sender, text=t["content"], timestamp=None, conversation=str(idx),
                                source="sharegpt_jsonl" if kind == "sharegpt" else "openai_messages_jsonl"))
    return msgs


PARSERS = [
    Parser("sharegpt_jsonl", _detect("conversations", "from"), _parse, priority=10,
           description="ShareGPT JSONL: {'conversations': [{'from', 'value'}]}"),
    Parser("openai_messages_jsonl", _detect("messages", "role"), _parse, priority=11,
           description="OpenAI JSONL: {'messages': [{'role', 'content'}]}"),
]

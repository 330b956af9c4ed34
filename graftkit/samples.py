"""Training conversations: reading and writing ShareGPT and OpenAI `messages` JSONL.

One in-memory shape everywhere: a conversation is a list of `{"role", "content"}` turns with roles
system / user / assistant (assistant = the person being grafted). ShareGPT `from`/`value` with
system / human / gpt is mapped onto it on read and back on write, because ShareGPT is what
Unsloth notebooks expect on disk and `messages` is what chat templates and TRL expect in memory.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterable

from .errors import InputError
from .fileio import read_jsonl

Conversation = list[dict[str, str]]


def subsample(items: list, n: int, seed: int) -> list:
    """At most `n` of `items` (0 = all): a seeded choice, in their original order. Used wherever a fixed sample
    must come out the same on every call (evaluation pools, the speaker texts, train_lora.py's val cap)."""
    if n and len(items) > n:
        keep = sorted(random.Random(seed).sample(range(len(items)), n))
        return [items[i] for i in keep]
    return items

SHAREGPT_TO_ROLE = {"system": "system", "human": "user", "gpt": "assistant"}
ROLE_TO_SHAREGPT = {v: k for k, v in SHAREGPT_TO_ROLE.items()}
OPENAI_ROLES = ("system", "user", "assistant")
SWAP = {"user": "assistant", "assistant": "user"}


def swap_roles(turns: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """The conversation with the person and the partner swapped (system turns kept): a partner's
    message, scored as the person's reply in the swapped conversation, is a real reply in a real
    context exactly as the person's own replies are."""
    return [{"role": SWAP.get(t["role"], t["role"]), "content": t["content"]} for t in turns]


def _content_text(content: Any, path: Path, lineno: int, turn: int) -> str:
    """OpenAI content is a string or a list of `{"type": "text", "text": ...}` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    raise InputError(f"turn {turn}: content must be a string or a list of text parts", path, lineno)


def parse_record(obj: Any, path: Path, lineno: int) -> tuple[str, Conversation]:
    """Validate one JSONL record; return its kind ("sharegpt" or "openai") and its turns."""
    if not isinstance(obj, dict):
        raise InputError("expected a JSON object with 'conversations' or 'messages'", path, lineno)
    if "conversations" in obj:
        kind, turns_raw = "sharegpt", obj["conversations"]
    elif "messages" in obj:
        kind, turns_raw = "openai", obj["messages"]
    else:
        raise InputError("expected a 'conversations' (ShareGPT) or 'messages' (OpenAI) list", path, lineno)
    if not isinstance(turns_raw, list) or not turns_raw:
        raise InputError(f"'{'conversations' if kind == 'sharegpt' else 'messages'}' must be a non-empty list",
                         path, lineno)
    turns: Conversation = []
    for i, t in enumerate(turns_raw, 1):
        if not isinstance(t, dict):
            raise InputError(f"turn {i}: expected an object", path, lineno)
        if kind == "sharegpt":
            who, text = t.get("from"), t.get("value")
            if who not in SHAREGPT_TO_ROLE:
                raise InputError(f"turn {i}: unknown role from={who!r} (expected system, human or gpt)", path, lineno)
            role = SHAREGPT_TO_ROLE[who]
            if not isinstance(text, str):
                raise InputError(f"turn {i}: 'value' must be a string", path, lineno)
        else:
            role = t.get("role")
            if role not in OPENAI_ROLES:
                raise InputError(f"turn {i}: unknown role {role!r} (expected system, user or assistant)", path, lineno)
            text = _content_text(t.get("content"), path, lineno, i)
        if not text.strip():
            raise InputError(f"turn {i}: empty {role} turn", path, lineno)
        turns.append({"role": role, "content": text})
    return kind, turns


def read_conversations(path: str | Path, require_assistant: bool = True) -> list[Conversation]:
    """Read and validate a ShareGPT or OpenAI JSONL file; errors name the file and line."""
    path = Path(path)
    convs: list[Conversation] = []
    kinds: set[str] = set()
    for lineno, obj in read_jsonl(path):
        kind, turns = parse_record(obj, path, lineno)
        kinds.add(kind)
        if require_assistant and not any(t["role"] == "assistant" for t in turns):
            raise InputError("conversation has no assistant ('gpt') turn to learn from", path, lineno)
        convs.append(turns)
    if not convs:
        raise InputError("no conversations in file", path)
    return convs


def to_sharegpt(conv: Conversation) -> dict[str, Any]:
    return {"conversations": [{"from": ROLE_TO_SHAREGPT[t["role"]], "value": t["content"]} for t in conv]}


def sharegpt_rows(convs: Iterable[Conversation]) -> Iterable[dict[str, Any]]:
    return (to_sharegpt(c) for c in convs)

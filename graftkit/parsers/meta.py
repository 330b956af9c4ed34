"""Meta "Download Your Information" JSON: Facebook Messenger and Instagram direct messages.

Why the special handling:
- Meta writes every non-ASCII string as its UTF-8 bytes escaped one per `\\u00XX` code point
  ("é" -> "\\u00c3\\u00a9"). Training on that mojibake would teach the model garbage, so each string
  is repaired with `encode("latin-1").decode("utf-8")` (left alone where that is not possible).
- `messages` is newest first and long threads are split into message_1.json (newest),
  message_2.json, ...; a thread folder is read as one conversation and put in chronological order.
- Join/leave entries (`users` list, `Subscribe`/`Unsubscribe`) and calls are system entries.

Messenger and Instagram share the format; they are told apart by the export's path
(`your_instagram_activity/` or a folder named like instagram), as expected.json does.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, epoch_iso, load_json_messages, sniff_json_messages
from .walk import Folder

MESSENGER = "messenger_json"
INSTAGRAM = "instagram_json"

_MEDIA_KEYS = ("photos", "videos", "audio_files", "gifs", "files", "sticker", "share")
_SYSTEM_TYPES = {"Subscribe", "Unsubscribe", "Call"}
_PART = re.compile(r"^message_(\d+)\.json$")
_SENDER = re.compile(r'"sender_name"\s*:')
_TS_MS = re.compile(r'"timestamp_ms"\s*:')


def fix_mojibake(s: str) -> str:
    """Undo Meta's UTF-8-as-Latin-1 escaping; strings that are not mojibake are returned unchanged."""
    if s.isascii():
        return s
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def _looks_meta(text: str) -> bool:
    """A JSON object with a `messages` list whose entries carry `sender_name` and `timestamp_ms`."""
    return sniff_json_messages(text, _SENDER, _TS_MS)


def _is_instagram(path: Path, head: str) -> bool:
    """Instagram exports live under `your_instagram_activity/` (older ones: a folder named instagram-...).

    `path` is a thread file; only the 5 folders above it are looked at, and only folders named
    `instagram`, `instagram-*`/`instagram_*` or `your_instagram_activity` count, so that a home folder
    that merely mentions instagram does not turn Messenger into Instagram.
    """
    try:
        path = path.resolve()
    except OSError:
        pass
    for part in path.parts[-6:-1]:
        p = part.lower()
        if p in ("instagram", "your_instagram_activity") or p.startswith(("instagram-", "instagram_")):
            return True
    return "your_instagram_activity" in head


def _thread_files(folder: Path) -> list[Path]:
    """message_1.json, message_2.json, ... in numeric order, listed as the folder walker lists files:
    a link out of the thread folder is skipped and reported, never read."""
    found = []
    try:
        for child in Folder(folder).files(folder):
            m = _PART.match(child.name)
            if m and len(m.group(1)) <= 9:
                found.append((int(m.group(1)), child))
    except OSError:
        return []
    return [p for _, p in sorted(found)]


def _head(path: Path) -> str:
    return Sniff(path).text


def _detect_file(instagram: bool):
    def detect(sniff: Sniff) -> bool:
        return _looks_meta(sniff.text) and _is_instagram(sniff.path, sniff.text) == instagram
    return detect


def _detect_dir(instagram: bool):
    """A thread folder: message_1.json present and in the Meta shape."""
    def detect(sniff: Sniff) -> bool:
        first = Folder(sniff.path).file(sniff.path, "message_1.json")
        if first is None:
            return False
        head = _head(first)
        return _looks_meta(head) and _is_instagram(first, head) == instagram
    return detect


def _read_part(path: Path) -> tuple[dict, list[tuple[int, dict]]]:
    data, msgs = load_json_messages(path, "Messenger/Instagram message_N.json",
                                    "not a complete Messenger/Instagram thread file")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise InputError(f"message {i} is not an object", path)
        ts = m.get("timestamp_ms")
        if not isinstance(ts, (int, float)) or isinstance(ts, bool):
            raise InputError(f"message {i}: missing or non-numeric 'timestamp_ms'", path)
        epoch_iso(ts, 1000, f"message {i}: timestamp_ms", path)  # NaN, Infinity, 400 digits: one clear error
        out.append((int(ts), m))
    return data, out


def _to_message(ts_ms: int, m: dict, conversation: str, source: str, path: Path) -> Message | None:
    mtype = m.get("type")
    if (isinstance(mtype, str) and mtype in _SYSTEM_TYPES) or "users" in m or "call_duration" in m:
        return None
    content = m.get("content")
    text = fix_mojibake(content) if isinstance(content, str) else ""
    sender = m.get("sender_name")
    sender = fix_mojibake(sender) if isinstance(sender, str) else None
    media = not isinstance(content, str) or any(m.get(k) for k in _MEDIA_KEYS)
    timestamp = epoch_iso(ts_ms, 1000, "timestamp_ms", path)
    return Message(sender=sender, text=text, timestamp=timestamp, conversation=conversation, source=source,
                   media=media)


def _conversation(data: dict) -> str:
    """thread_path ("inbox/renee_abc123") is unique; titles are not. Empty: the file/folder label is used."""
    tp = data.get("thread_path")
    if isinstance(tp, str) and tp:
        return tp
    return ""


def _parse_parts(parts: list[Path], source: str) -> list[Message]:
    entries: list[tuple[int, dict, Path]] = []
    conversation = ""
    for part in parts:  # message_1 (newest) first, each file newest first
        data, msgs = _read_part(part)
        conversation = conversation or _conversation(data)
        entries.extend((ts, m, part) for ts, m in msgs)
    entries.reverse()  # oldest first; the stable sort below only fixes files that are out of order
    entries.sort(key=lambda e: e[0])
    out = []
    for ts, m, part in entries:
        msg = _to_message(ts, m, conversation, source, part)
        if msg is not None:
            out.append(msg)
    return out


def _parse_file(source: str):
    def parse(path: Path) -> list[Message]:
        return _parse_parts([path], source)
    return parse


def _parse_dir(source: str):
    def parse(path: Path) -> list[Message]:
        parts = _thread_files(path)
        if not parts:
            raise InputError("no message_N.json files in this thread folder", path)
        return _parse_parts(parts, source)
    return parse


PARSERS = [
    Parser(INSTAGRAM, _detect_dir(True), _parse_dir(INSTAGRAM), is_dir=True, priority=23,
           description="Instagram DM thread folder (message_1.json, message_2.json, ...)"),
    Parser(MESSENGER, _detect_dir(False), _parse_dir(MESSENGER), is_dir=True, priority=24,
           description="Messenger thread folder (message_1.json, message_2.json, ...)"),
    Parser(INSTAGRAM, _detect_file(True), _parse_file(INSTAGRAM), priority=23,
           description="Instagram DM JSON (message_N.json)"),
    Parser(MESSENGER, _detect_file(False), _parse_file(MESSENGER), priority=24,
           description="Facebook Messenger JSON (message_N.json)"),
]

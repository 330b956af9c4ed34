"""Telegram Desktop JSON export (`result.json`): one chat, or the whole account (`chats.list`).

Why the details below matter for training data:
- `text` is a string or a list mixing strings and entity objects; flattening by plain concatenation
  is what Telegram shows (adding spaces would invent text the person never typed).
- `service` entries (calls, pins, joins, renames) are not something anybody wrote: excluded.
- `date` is the wall time of the exporting computer, which is what the person saw; we keep it as is.
  Older exports only have `date_unixtime`, an absolute instant, rendered in UTC with `+00:00`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..config import brief
from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, epoch_iso, load_json, sniff_json_messages

NAME = "telegram_json"

# Keys that mark a message as carrying media (photo, file, sticker, voice, poll, location, ...).
_MEDIA_KEYS = ("photo", "file", "media_type", "sticker_emoji", "poll", "location_information",
               "contact_information", "game_title", "invoice_information", "place_name")

_FULL_EXPORT = re.compile(r'"chats"\s*:\s*\{\s*(?:"about"\s*:\s*"(?:[^"\\]|\\.)*"\s*,\s*)?"list"\s*:\s*\[')
_MSG_TYPE = re.compile(r'"type"\s*:\s*"(?:message|service)"')
_MSG_DATE = re.compile(r'"date(?:_unixtime)?"\s*:\s*"')
_WALL_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d)(:\d\d)?$")


def _detect(sniff: Sniff) -> bool:
    """A JSON object with `chats.list` (full account) or a `messages` list of typed, dated entries.

    Looks at the head only (exports are often hundreds of MB), so a truncated file is still claimed and
    then reported precisely by the JSON reader.
    """
    text = sniff.text
    if not text.lstrip().startswith("{"):
        return False
    if _FULL_EXPORT.search(text):
        return True
    return sniff_json_messages(text, _MSG_TYPE, _MSG_DATE)


def flatten_text(value: Any) -> str:
    """Telegram `text`: a string, or a list of strings and `{"type", "text"}` entities, concatenated as is."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(value)


def _timestamp(msg: dict, path: Path, what: str) -> str | None:
    date = msg.get("date")
    if isinstance(date, str):
        m = _WALL_TIME.match(date)
        if m:
            return m.group(1) + (m.group(2) or ":00")
    raw = unix = msg.get("date_unixtime")
    if isinstance(unix, str):
        try:
            unix = float(unix)  # a 400-digit string reads as inf: reported below, with the digits
        except ValueError:
            return None  # not a number at all: undated, as before
    if isinstance(unix, (int, float)) and not isinstance(unix, bool):
        return epoch_iso(unix, 1, f"{what}: date_unixtime", path, shown=raw)  # 400 digits, NaN: one clear line
    return None


def _owner(data: dict) -> tuple[str | None, tuple[str, ...]]:
    """The account owner of a full export: its `from_id` ("user<id>") and the names it goes by
    (username, "@username", first + last name), from `personal_information`."""
    info = data.get("personal_information")
    if not isinstance(info, dict) or info.get("user_id") is None:
        return None, ()
    names = []
    user = info.get("username")
    if isinstance(user, str) and user.strip():
        names += [user.lstrip("@"), "@" + user.lstrip("@")]
    full = " ".join(str(info.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
    if full:
        names.append(full)
    return f"user{info['user_id']}", tuple(names)


def _chat_messages(chat: dict, conversation: str, path: Path, where: str,
                   owner: tuple[str | None, tuple[str, ...]] = (None, ())) -> list[Message]:
    msgs = chat.get("messages")
    if not isinstance(msgs, list):
        raise InputError(f"{where}: no 'messages' list; is this a complete Telegram export?", path)
    out: list[Message] = []
    for i, msg in enumerate(msgs):
        if not isinstance(msg, dict):
            raise InputError(f"{where}: message {i} is not an object", path)
        if msg.get("type", "message") != "message":
            continue  # service entries: calls, pins, joins, title changes
        text = flatten_text(msg.get("text"))
        sender = msg.get("from")
        if sender is not None and not isinstance(sender, str):
            sender = str(sender)
        media = not text and any(msg.get(k) not in (None, "") for k in _MEDIA_KEYS)
        mine = owner[0] is not None and msg.get("from_id") == owner[0]
        out.append(Message(sender=sender, text=text, timestamp=_timestamp(msg, path, f"{where}: message {i}"),
                           conversation=conversation,
                           source=NAME, media=media, owner=mine, aliases=owner[1] if mine else ()))
    return out


def _chat_label(chat: dict, seen: dict[str, Any]) -> str:
    """Chat name; saved messages have none. Two different chats with one name get their id appended."""
    name = chat.get("name")
    cid = chat.get("id")
    if not isinstance(name, str) or not name:
        name = "Saved Messages" if chat.get("type") == "saved_messages" else (str(cid) if cid is not None else "")
    if name in seen and seen[name] != cid:
        name = f"{name} ({cid})"
    seen.setdefault(name, cid)
    return name


def _parse(path: Path) -> list[Message]:
    data = load_json(path)
    if not isinstance(data, dict):
        raise InputError("expected a JSON object (Telegram result.json)", path)
    chats_obj = data.get("chats")
    if isinstance(chats_obj, dict) and "list" in chats_obj:
        chats: list[Any] = []
        for key in ("chats", "left_chats"):
            block = data.get(key)
            if isinstance(block, dict):
                lst = block.get("list")
                if not isinstance(lst, list):
                    raise InputError(f"'{key}.list' is not a list", path)
                chats.extend(lst)
        seen: dict[str, Any] = {}
        out: list[Message] = []
        owner = _owner(data)
        for i, chat in enumerate(chats):
            if not isinstance(chat, dict):
                raise InputError(f"chat {i} is not an object", path)
            label = _chat_label(chat, seen)
            out.extend(_chat_messages(chat, label, path, f"chat {brief(label)}", owner))
        return out
    if "messages" not in data:
        raise InputError("no 'messages' list and no 'chats.list'; not a complete Telegram export", path)
    label = _chat_label(data, {}) if ("name" in data or "id" in data) else ""
    return _chat_messages(data, label, path, "chat")


PARSERS = [
    Parser(NAME, _detect, _parse, priority=20,
           description="Telegram Desktop JSON export (single chat or full account result.json)"),
]

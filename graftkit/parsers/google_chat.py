"""Google Takeout, Google Chat: `Groups/<DM_xxx|Space_xxx>/messages.json`.

Why: `created_date` is an English long date ("Sunday, December 31, 2023 at 9:05:07 PM UTC"), newer
exports with U+202F before AM/PM, and a zone name at the end. A zone we can name exactly (UTC, GMT,
and the common fixed abbreviations) gives an ISO string with its offset; any other zone name keeps the
wall time without an offset rather than inventing one. Deleted messages carry no text and are not
messages.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from ..errors import InputError
from ..messages import Message
from .base import Parser, Sniff, load_json_messages, sniff_json_messages

NAME = "google_chat_json"

_CREATOR = re.compile(r'"creator"\s*:\s*\{')
_CREATED = re.compile(r'"created_date"\s*:\s*"')

_MONTHS = {m: i for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july", "august",
                                        "september", "october", "november", "december"), 1)}
_MONTHS.update({k[:3]: v for k, v in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_ZONES = {"UTC": "+00:00", "GMT": "+00:00", "Z": "+00:00", "WET": "+00:00", "BST": "+01:00", "CET": "+01:00",
          "CEST": "+02:00", "EET": "+02:00", "EEST": "+03:00", "MSK": "+03:00", "JST": "+09:00", "KST": "+09:00",
          "AEST": "+10:00", "AEDT": "+11:00", "NZST": "+12:00", "NZDT": "+13:00", "EST": "-05:00",
          "EDT": "-04:00", "CST": "-06:00", "CDT": "-05:00", "MST": "-07:00", "MDT": "-06:00", "PST": "-08:00",
          "PDT": "-07:00", "AKST": "-09:00", "AKDT": "-08:00", "HST": "-10:00"}
_SP = r"[ \u00a0\u202f]+"
_DATE = re.compile(
    r"^\s*(?:[A-Za-z]+,?" + _SP + r")?"                                  # weekday
    r"(?:(?P<mon1>[A-Za-z]+)\.?" + _SP + r"(?P<day1>\d{1,2}),?" + _SP + r"(?P<year1>\d{4})"  # December 31, 2023
    r"|(?P<day2>\d{1,2})" + _SP + r"(?P<mon2>[A-Za-z]+)\.?,?" + _SP + r"(?P<year2>\d{4}))"  # 31 December 2023
    r",?(?:" + _SP + r"at)?" + _SP +
    r"(?P<h>\d{1,2}):(?P<mi>\d\d)(?::(?P<s>\d\d))?"
    r"(?:[ \u00a0\u202f]*(?P<ampm>[AaPp]\.?[Mm]\.?))?"
    r"(?:" + _SP + r"(?P<zone>(?:UTC|GMT)?[+-]\d{1,2}(?::?\d\d)?|[A-Za-z]{1,5}))?\s*$")


def _detect(sniff: Sniff) -> bool:
    """A JSON object with a `messages` list whose entries have `creator` and `created_date`."""
    return sniff_json_messages(sniff.text, _CREATOR, _CREATED)


def _offset(zone: str) -> str | None:
    if zone.upper() in _ZONES:
        return _ZONES[zone.upper()]
    m = re.fullmatch(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d\d))?", zone)
    if m:
        return f"{m.group(1)}{int(m.group(2)):02d}:{m.group(3) or '00'}"
    return None


def parse_created_date(value: str) -> str:
    """English long date -> ISO 8601 (with offset where the zone is known). Raises ValueError."""
    m = _DATE.match(value)
    if not m:
        raise ValueError(value)
    mon = (m.group("mon1") or m.group("mon2")).lower()
    if mon not in _MONTHS:
        raise ValueError(value)
    day = int(m.group("day1") or m.group("day2"))
    year = int(m.group("year1") or m.group("year2"))
    hour, minute, sec = int(m.group("h")), int(m.group("mi")), int(m.group("s") or 0)
    ampm = m.group("ampm")
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError(value)
        pm = ampm[0] in "Pp"
        hour = (hour % 12) + (12 if pm else 0)
    wall = datetime(year, _MONTHS[mon], day, hour, minute, sec).isoformat()
    zone = m.group("zone")
    off = _offset(zone) if zone else None
    return wall + off if off else wall


def _parse(path: Path) -> list[Message]:
    data, _ = load_json_messages(path, "Google Chat messages.json", "not a Google Chat messages.json")
    out: list[Message] = []
    conversation = path.parent.name if path.parent.name.startswith(("DM", "Space")) else ""
    for i, m in enumerate(data["messages"]):
        if not isinstance(m, dict):
            raise InputError(f"message {i} is not an object", path)
        if m.get("deletion_metadata") is not None:
            continue
        text = m.get("text") if isinstance(m.get("text"), str) else ""
        files = m.get("attached_files")
        if not text and not files:
            continue  # nothing anybody wrote (e.g. a card or a removed message without metadata)
        creator = m.get("creator") if isinstance(m.get("creator"), dict) else {}
        sender = creator.get("name") or creator.get("email")
        created = m.get("created_date")
        try:
            timestamp = parse_created_date(created) if isinstance(created, str) else None
        except ValueError:
            raise InputError(f"message {i}: unrecognised created_date {created!r}", path) from None
        out.append(Message(sender=sender if isinstance(sender, str) else None, text=text, timestamp=timestamp,
                           conversation=conversation, source=NAME, media=not text and bool(files)))
    return out


PARSERS = [
    Parser(NAME, _detect, _parse, priority=25,
           description="Google Takeout Google Chat messages.json"),
]

"""The one message record every parser produces and every later stage consumes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(slots=True)
class Message:
    """One chat message as the export shows it.

    sender: display name (or phone/e-mail where the export has nothing better); None when the export
        has no sender (e.g. a deleted Telegram account).
    text: the message text; multi-line messages keep their "\\n"; media-only messages have "" or the
        export's placeholder, with `media=True`.
    timestamp: ISO 8601 as the export shows it (`YYYY-MM-DDTHH:MM:SS`, local wall time), or with an
        offset where the export carries an absolute instant (epoch values are rendered in UTC,
        `+00:00`); None for formats without time.
    conversation: id of the chat/thread/channel it belongs to (file-relative when the format has none).
    source: format id, as in FORMATS.md (`whatsapp_txt`, `telegram_json`, ...).
    media: True for media placeholders and attachment-only messages.
    placeholder: what the text stands in for when it is no real message: "media", "deleted", "call",
        "location", "view_once", "poll" (graftkit.parsers.placeholders), else None. Set by the parser
        where the export itself says so (WhatsApp iOS marks), otherwise by the pipeline from the
        placeholder tables. Such messages stay in messages.jsonl, marked, and never reach training.
    owner: True when the export itself says the device owner sent it (SMS `type="2"`, iMessage
        `is_from_me`); its sender is then "Me" until `--me` names the person.
    aliases: other names the export shows for the same sender (Discord display name / nickname,
        username) so that `--me` can use any of them; one shared tuple per sender.
    """

    sender: str | None
    text: str
    timestamp: str | None = None
    conversation: str = ""
    source: str = ""
    media: bool = False
    placeholder: str | None = None
    owner: bool = False
    aliases: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

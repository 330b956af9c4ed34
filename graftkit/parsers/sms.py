"""SMS Backup & Restore (Android) XML: `<smses>` with `<sms>` and `<mms>` elements.

Why the pre-processing: the app writes characters outside the BMP (most emoji) as numeric references
to UTF-16 surrogates (`&#55357;&#56832;`), which every conforming XML parser rejects. Adjacent
surrogate pairs are merged into one reference before parsing; a lone surrogate becomes U+FFFD.

Safety: xml.etree (expat) never fetches external entities; a DOCTYPE is refused outright, since SMS
Backup & Restore never writes one and internal entities are the only other way to blow up memory.
The file is parsed incrementally and each message element is freed once read, because backups with
MMS pictures inline (base64) get large.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import InputError
from ..messages import Message
from ..config import brief
from .base import Parser, Sniff, epoch_iso, read_text

NAME = "sms_backup_restore_xml"
OWNER = "Me"  # sent messages: the export has no name for the phone's owner (`owner=True`; --me names it)

_ROOT = re.compile(r"^\s*(?:<\?[^>]*\?>\s*|<!--.*?-->\s*)*<smses[\s>/]", re.S)
_SURROGATE_RUN = re.compile(r"(?:&#(?:\d{5}|[xX][dD][89a-fA-F][0-9a-fA-F]{2});)+")
_REF = re.compile(r"&#(\d+|[xX][0-9a-fA-F]+);")
_INTEGER = re.compile(r"-?[0-9]+")
_NO_NAME = {"", "(Unknown)", "null"}
_DRAFT, _MMS_FROM, _MMS_TEXT_TYPES = "3", "137", ("text/plain",)


_COMMENT_OR_CDATA = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>", re.S)


def _declares_doctype(text: str) -> bool:
    """A DOCTYPE or ENTITY declaration outside comments and CDATA. Why not a plain substring test: a
    backup whose comment (or a message quoted in CDATA) says "<!DOCTYPE" is valid and was refused.
    The comments are only stripped in the rare file that holds the word at all."""
    if "<!DOCTYPE" not in text and "<!ENTITY" not in text:
        return False
    bare = _COMMENT_OR_CDATA.sub("", text)
    return "<!DOCTYPE" in bare or "<!ENTITY" in bare


def _detect(sniff: Sniff) -> bool:
    """XML whose root element is `<smses>` (after the declaration, comments and stylesheet PI)."""
    return bool(_ROOT.match(sniff.text[:8192]))


def merge_surrogate_refs(text: str) -> str:
    """Turn `&#55357;&#56832;` (UTF-16 surrogates) into `&#128512;`; lone surrogates into U+FFFD."""
    def fix_run(m: re.Match) -> str:
        values = [int(v[1:], 16) if v[0] in "xX" else int(v) for v in _REF.findall(m.group(0))]
        out, i = [], 0
        while i < len(values):
            v = values[i]
            if 0xD800 <= v <= 0xDBFF and i + 1 < len(values) and 0xDC00 <= values[i + 1] <= 0xDFFF:
                out.append(f"&#{0x10000 + ((v - 0xD800) << 10) + (values[i + 1] - 0xDC00)};")
                i += 2
                continue
            out.append("&#65533;" if 0xD800 <= v <= 0xDFFF else f"&#{v};")
            i += 1
        return "".join(out)
    return _SURROGATE_RUN.sub(fix_run, text)


def _epoch_ms(value: str | None, path: Path, where: str) -> str | None:
    if not value or value == "null":
        return None
    v = value.strip()
    if not _INTEGER.fullmatch(v):
        raise InputError(f"{where}: unreadable date {brief(value)} (valid: milliseconds since 1970)", path)
    n = int(v) if len(v) <= 40 else float("inf")  # a 400-digit date: out of range, never converted
    # milliseconds; a value below 1e10 can only be seconds (as ms it would predate April 1970),
    # which some tools write for <mms>
    return epoch_iso(n, 1 if abs(n) < 10**10 else 1000, f"{where}: date", path, shown=value)


def _name(el: ET.Element) -> str | None:
    name = el.get("contact_name")
    return None if name is None or name in _NO_NAME else name


def _sms(el: ET.Element, path: Path, where: str) -> Message | None:
    kind = el.get("type", "1")
    if kind == _DRAFT:
        return None
    address = el.get("address") or None
    contact = _name(el) or address
    sender = contact if kind == "1" else OWNER
    return Message(sender=sender, text=el.get("body") or "", timestamp=_epoch_ms(el.get("date"), path, where),
                   conversation=contact or "", source=NAME, owner=kind != "1")


def _mms(el: ET.Element, path: Path, where: str) -> Message | None:
    box = el.get("msg_box", "1")
    if box == _DRAFT:
        return None
    texts, media = [], False
    for part in el.iter("part"):
        ct = (part.get("ct") or "").lower()
        if ct in _MMS_TEXT_TYPES:
            t = part.get("text")
            if t and t != "null":
                texts.append(t)
        elif ct != "application/smil":
            media = True
    address = el.get("address") or None
    contact = _name(el)
    if box == "1":
        sender_addr = next((a.get("address") for a in el.iter("addr") if a.get("type") == _MMS_FROM), None)
        group = address is not None and "~" in address
        sender = (contact if contact and not group else None) or sender_addr or address
    else:
        sender = OWNER
    return Message(sender=sender, text="\n".join(texts), timestamp=_epoch_ms(el.get("date"), path, where),
                   conversation=contact or address or "", source=NAME, media=media, owner=box != "1")


def _parse(path: Path) -> list[Message]:
    text = merge_surrogate_refs(read_text(path))
    if _declares_doctype(text):
        raise InputError("XML with a DOCTYPE/ENTITY declaration; not an SMS Backup & Restore file", path)
    parser = ET.XMLPullParser(events=("start", "end"))
    entries: list[tuple[bool, str, int, Message]] = []
    root_seen = False
    count: dict[str, int] = {}
    depth = 0
    chunk = 1 << 20
    try:
        for pos in range(0, len(text), chunk):
            parser.feed(text[pos:pos + chunk])
            for event, el in parser.read_events():
                if event == "start":
                    depth += 1
                    if depth == 1:
                        if el.tag != "smses":
                            raise InputError(f"root element is <{el.tag}>, expected <smses>", path)
                        root_seen = True
                    continue
                depth -= 1
                if depth != 1 or el.tag not in ("sms", "mms"):
                    continue
                count[el.tag] = count.get(el.tag, 0) + 1
                msg = (_sms if el.tag == "sms" else _mms)(el, path, f"<{el.tag}> number {count[el.tag]}")
                if msg is not None:
                    entries.append((msg.timestamp is None, msg.timestamp or "", len(entries), msg))
                el.clear()  # free bodies and base64 picture data
        parser.close()
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise InputError(f"broken XML: {e}", path, line) from None
    if not root_seen:
        raise InputError("no <smses> root element", path)
    # The app writes all <sms> first, then all <mms>: order by time. UTC ISO strings of one shape sort like
    # the instants they name; undated messages keep their file order at the end.
    entries.sort(key=lambda e: e[:3])
    return [e[3] for e in entries]


PARSERS = [
    Parser(NAME, _detect, _parse, priority=26,
           description="SMS Backup & Restore XML (<smses> with <sms>/<mms>)"),
]

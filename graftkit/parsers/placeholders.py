"""Placeholder texts: what chat apps write instead of a message (media, deleted, calls, polls, ...).

Why: a model trained on "<Media omitted>", "image absente" or "You deleted this message." learns to
say them. The words live in one data table per language (`placeholder_tables/LANG.yaml`, WhatsApp's
own strings), loaded together, because one export can mix languages (a phone switched language, a
group with members abroad). Besides the words, three language-free signals are used:

- WhatsApp iOS starts every attachment/deleted line with U+200E (the WhatsApp parser sees it and
  marks the message before this module is asked);
- Android attachments are a file name WhatsApp generates (`IMG-20230101-WA0001.jpg`, `PTT-...opus`,
  a `.vcf` card) followed by a tag in parentheses, whatever the tag's language;
- a location is `label: https://maps.google.com/?q=...`, whatever the label's language.

`placeholder_kind(text)` returns the fine kind ("media", "deleted", "call", "location", "view_once",
"poll") or None; `coarse(kind)` maps it to "media" or "system", the two marks messages.jsonl keeps.
The check costs one dict lookup for almost every message (texts that cannot be placeholders are
rejected by their first and last character).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import yaml

from ..messages import Message

TABLES = Path(__file__).with_name("placeholder_tables")
KINDS = ("media", "deleted", "call", "location", "view_once", "poll", "system")
MEDIA_KINDS = frozenset({"media", "location", "view_once"})
_KEYS = ("media", "attached", "attached_ios", "deleted", "call", "location", "view_once", "poll")
_MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"  # bidi marks WhatsApp adds
_MARKS_RE = re.compile(f"[{_MARKS}]")


def strip_marks(text: str) -> str:
    return _MARKS_RE.sub("", text) if _MARKS_RE.search(text) else text

# Android: "FILE (tag)". A name WhatsApp generates marks an attachment whatever the tag's language;
# any other file name needs a known tag.
_WA_NAME = re.compile(r"(?:IMG|VID|PTT|STK|DOC|AUD|GIF)-\d{8}-WA\d{3,}(?:\.\w{1,5})?")
_FILE_NAME = re.compile(r"[^\n]{0,200}\.\w{2,5}")
_MAPS = re.compile(r"[^\n:]{1,40}: ?https?://(?:maps\.google\.[a-z.]+/|goo\.gl/maps/|maps\.app\.goo\.gl/)\S*")


def norm(text: str) -> str:
    """Matching key: bidi marks removed, outer space and one trailing '.' dropped, case-folded."""
    t = strip_marks(text).strip()
    if t.endswith("."):
        t = t[:-1].rstrip()
    return t.casefold()


def load_tables(folder: Path = TABLES) -> dict[str, dict[str, list[str]]]:
    """Every language table: {"en": {"media": [...], ...}, ...}; unknown keys are an error (typos)."""
    tables: dict[str, dict[str, list[str]]] = {}
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        bad = set(data) - set(_KEYS)
        if bad:
            raise ValueError(f"{path}: unknown keys {sorted(bad)} (known: {', '.join(_KEYS)})")
        tables[path.stem] = {k: [str(x) for x in v] for k, v in data.items()}
    return tables


class _Index:
    """All tables folded into lookups: exact texts, attachment tags, iOS labels, location labels, polls."""

    def __init__(self, tables: dict[str, dict[str, list[str]]]):
        self.exact: dict[str, str] = {}  # raw text as written (and common variants) -> kind
        self.normed: dict[str, str] = {}  # norm(text) -> kind
        self.tags: set[str] = set()  # norm("file attached")
        self.ios_labels: set[str] = set()  # norm("attached")
        self.loc_labels: set[str] = set()
        self.polls: set[str] = set()
        for table in tables.values():
            for key, values in table.items():
                for v in values:
                    n = norm(v)
                    if key == "attached":
                        self.tags.add(n)
                    elif key == "attached_ios":
                        self.ios_labels.add(n)
                    elif key == "poll":
                        self.polls.add(n.rstrip(":： "))
                    else:
                        if key == "location":
                            self.loc_labels.add(n)
                        self.normed[n] = key
                        base = v.rstrip(".")
                        for variant in (v, base, base + ".", base.lower(), base.capitalize()):
                            self.exact[variant] = key
        # A placeholder not found as written has one of these first/last characters (marks, brackets,
        # spaces, a file tag's ")", a poll's ":"), a line break (polls) or a URL (locations).
        self.edges = frozenset("<>‹›():： \t\r\n" + _MARKS)


_INDEX: _Index | None = None


def index() -> _Index:
    """The folded tables, loaded on first use (about 20 small YAML files)."""
    global _INDEX
    if _INDEX is None:
        _INDEX = _Index(load_tables())
    return _INDEX


def placeholder_kind(text: str) -> str | None:
    """The placeholder kind of a whole message text, or None for a real message."""
    idx = _INDEX or index()
    kind = idx.exact.get(text)
    if kind is not None:
        return kind
    if not text or len(text) > 400:
        return None
    first, last = text[0], text[-1]
    if first not in idx.edges and last not in idx.edges and "\n" not in text and "://" not in text:
        return None
    head = text.split("\n", 1)[0]
    n = norm(head)
    if head == text:
        kind = idx.normed.get(n)
        if kind is not None:
            return kind
        if n[:1] in "<‹" and n[-1:] in ">›":  # "<attached: X>", "<Médias omis>" with other brackets
            inner = n[1:-1].strip()
            kind = idx.normed.get("<" + inner + ">") or idx.normed.get(inner)
            if kind is not None:
                return kind
            label = inner.split(":", 1)[0].strip()
            if ":" in inner and label in idx.ios_labels:
                return "media"
    if n.endswith(")") and " (" in n:
        name, _, tag = strip_marks(head).strip()[:-1].rpartition(" (")
        if _WA_NAME.fullmatch(name) or (norm(tag) in idx.tags and _FILE_NAME.fullmatch(name)):
            return "media"
    if n.rstrip(":： ") in idx.polls and (head != text or n.endswith((":", "："))):
        return "poll"
    if head == text and "://" in text and _MAPS.fullmatch(strip_marks(text).strip()):
        return "location"
    return None


def mark(messages: Iterable[Message], done_sources: frozenset[str] = frozenset({"whatsapp_txt"})) -> None:
    """Set `placeholder` (and `media` for media kinds) on every message whose text is a placeholder.

    Inlines the cheap rejections of placeholder_kind: this runs once per message of every export.
    done_sources: formats whose parser already asked placeholder_kind about every message (WhatsApp
    must, to tell iOS system lines from attachments), skipped here.
    """
    idx = _INDEX or index()
    exact, edges, kind_of = idx.exact, idx.edges, placeholder_kind
    for m in messages:
        if m.placeholder is not None or m.source in done_sources:
            continue
        text = m.text
        kind = exact.get(text)
        if kind is None and text and (text[0] in edges or text[-1] in edges or "\n" in text or "://" in text):
            kind = kind_of(text)
        if kind is not None:
            m.placeholder = kind
            if kind in MEDIA_KINDS:
                m.media = True
        elif m.media:
            m.placeholder = "media"


def coarse(kind: str | None) -> str:
    """"text" for a real message, else "media" (something was sent but is not here) or "system"."""
    if kind is None:
        return "text"
    return "media" if kind in MEDIA_KINDS else "system"


def coverage() -> dict[str, dict[str, int]]:
    """Per language, how many entries of each kind its table has (for the docs and the report)."""
    return {lang: {k: len(v) for k, v in table.items()} for lang, table in load_tables().items()}

"""Placeholder texts: what chat apps write instead of a message (media, deleted, calls, polls, ...).

Why: a model trained on "<Media omitted>", "image absente" or "You deleted this message." learns to
say them. The words live in one data table per language (`placeholder_tables/LANG.yaml`, WhatsApp's
own strings), loaded together, because one export can mix languages (a phone switched language, a
group with members abroad). Besides the words, three language-free signals are used:

- iOS attachments with media are `<label: 00000012-name.ext>` (an 8-digit counter and a file name),
  whatever the label's language, and any file name may stand before them;
- Android attachments are a file name WhatsApp generates (`IMG-20230101-WA0001.jpg`, `PTT-...opus`,
  `AUD-...WA0000.` without extension) followed by a tag in parentheses, whatever the tag's language;
- a location is `label: https://maps.google.com/?q=...` (or a Foursquare venue link), whatever the
  label's language.

A placeholder is recognised by its localized wording at the END of the text, with any file name
before it: iOS writes `Notes.txt \u200edocument omitted` and `Budget.pdf • \u200e2 pages
\u200edocument omitted`, Android `Alex Kim.vcf (файл добавлен)`. The WhatsApp iOS mark before the
wording decides nothing on its own: people start messages with marks too. `notice_kind(text)` knows
the notices iOS writes under a person's name (encryption, security code changed).

`placeholder_kind(text)` returns the fine kind ("media", "deleted", "call", "location", "view_once",
"poll") or None; `coarse(kind)` maps it to "media" or "system", the two marks messages.jsonl keeps.
The check costs one dict lookup for almost every message (texts that cannot be placeholders are
rejected by their first and last character).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Iterable

import yaml

from ..messages import Message

TABLES = Path(__file__).with_name("placeholder_tables")
KINDS = ("media", "deleted", "call", "location", "view_once", "poll", "system")
MEDIA_KINDS = frozenset({"media", "location", "view_once"})
_KEYS = ("media", "attached", "attached_ios", "deleted", "call", "location", "view_once", "poll", "notice")
# Invisible marks phones put into exports: byte-order mark, LRM/RLM, bidi embeddings and isolates.
MARKS = "\ufeff\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_MARKS = MARKS
_MARKS_RE = re.compile(f"[{_MARKS}]")


def strip_marks(text: str) -> str:
    return _MARKS_RE.sub("", text) if _MARKS_RE.search(text) else text

# Android: "FILE (tag)". A name WhatsApp generates marks an attachment whatever the tag's language;
# any other file name needs a known tag.
_WA_NAME = re.compile(r"(?:IMG|VID|PTT|STK|DOC|AUD|GIF)-\d{8}-WA\d{3,}(?:\.\w{0,5})?")
_FILE_NAME = re.compile(r"[^\n]{0,200}\.\w{2,5}")
_MAPS = re.compile(r"[^\n:]{1,60}: ?https?://(?:maps\.google\.[a-z.]+/|goo\.gl/maps/|maps\.app\.goo\.gl/|"
                   r"foursquare\.com/v/)\S*")
# Android shares a place as "name\n(address\n)https://foursquare.com/v/...".
_VENUE = re.compile(r"[^\n]{1,80}\n(?:[^\n]{1,120}\n)?https?://foursquare\.com/v/\S+")
# iOS export with media: "<label: 00000012-name.ext>" in any label language, maybe after a file name.
_IOS_ATTACHED = re.compile(r"(?:[^\n]{0,200}\s)?<\s?[^<>:\n]{1,40}: ?\d{6,10}-[^<>\n]{1,200}?\s?>")
# What stands before a named attachment's wording: a file name ("Notes.txt", "Budget 2022.pdf • 2 pages").
_NAMED_HEAD = re.compile(r"[^\n]{0,200}?\S\.\w{1,8}(?:\s•[^\n]{0,40})?")


def norm(text: str) -> str:
    """Matching key: bidi marks removed, composed (NFC: Hindi exports write ड़ both ways), outer space and
    one trailing '.' or '。' dropped, case-folded."""
    t = strip_marks(text).strip()
    if not t.isascii():
        t = unicodedata.normalize("NFC", t)
    if t.endswith((".", "。")):
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
        self.notices: list[str] = []  # norm(notice fragment)
        self.tails: set[str] = set()  # norm(media wording) that may follow a file name
        self.tail_words: set[str] = set()  # last word of those, as written: a cheap pre-check
        for table in tables.values():
            for key, values in table.items():
                for v in values:
                    n = norm(v)
                    if key == "notice":
                        self.notices.append(n)
                        continue
                    if key == "media" and n[:1] not in "<‹":
                        self.tails.add(n)
                        for w in (v.rsplit(None, 1)[-1], v.rsplit(None, 1)[-1].lower()):
                            self.tail_words.update((w, w + "."))
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
                        base = v.rstrip(".。")
                        for variant in (v, base, base + ".", base + "。", base.lower(), base.capitalize()):
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


def notice_kind(text: str) -> str | None:
    """"system" when `text` holds a notice WhatsApp iOS writes under a person's name (end-to-end
    encryption, security code changed), in any language of the tables; else None.

    Fragments, not whole texts: the notices carry the contact's name ("Benとのセキュリティコードが変更
    されました。") and grew longer over the years. Asked only about texts that start with a mark.
    """
    idx = _INDEX or index()
    n = norm(text)
    return "system" if any(f in n for f in idx.notices) else None


def _named(text: str, idx: _Index) -> str | None:
    """"media" for "<file name> <media wording>" ("Notes.txt document omitted"), else None."""
    words = strip_marks(text).split()
    for j in range(1, min(len(words), 7)):
        tail = norm(" ".join(words[-j:]))
        if tail in idx.tails and _NAMED_HEAD.fullmatch(" ".join(words[:-j])):
            return "media"
    return None


def placeholder_kind(text: str, marked: bool = False) -> str | None:
    """The placeholder kind of a whole message text, or None for a real message.

    marked: the export put a mark before the text (WhatsApp iOS): the cheap rejection by first and
    last character is skipped, so that wordings written in another Unicode form are found too.
    """
    idx = _INDEX or index()
    kind = idx.exact.get(text)
    if kind is not None:
        return kind
    if not text or len(text) > 400:
        return None
    first, last = text[0], text[-1]
    if (not marked and first not in idx.edges and last not in idx.edges and "\n" not in text
            and "://" not in text):
        if text[text.rfind(" ") + 1:] in idx.tail_words:
            return _named(text, idx)
        return None
    head = text.split("\n", 1)[0]
    n = norm(head)
    if head == text:
        kind = idx.normed.get(n)
        if kind is not None:
            return kind
        if n.endswith(">") and _IOS_ATTACHED.fullmatch(strip_marks(head).strip()):
            return "media"
        if n.endswith(">") and " <" in n:  # old iOS: "2015-08-04-PHOTO-00004762.jpg <attached>"
            name, _, label = strip_marks(head).strip()[:-1].rpartition(" <")
            if norm(label) in idx.ios_labels and _FILE_NAME.fullmatch(name):
                return "media"
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
    if "://" in text:
        clean = strip_marks(text).strip()
        if (head == text and _MAPS.fullmatch(clean)) or _VENUE.fullmatch(clean):
            return "location"
    if text[text.rfind(" ") + 1:] in idx.tail_words:
        return _named(text, idx)
    return None


def mark(messages: Iterable[Message], done_sources: frozenset[str] = frozenset({"whatsapp_txt"})) -> None:
    """Set `placeholder` (and `media` for media kinds) on every message whose text is a placeholder.

    Inlines the cheap rejections of placeholder_kind: this runs once per message of every export.
    done_sources: formats whose parser already asked placeholder_kind about every message (WhatsApp
    must, to tell iOS system lines from attachments), skipped here.
    """
    idx = _INDEX or index()
    exact, edges, tails, kind_of = idx.exact, idx.edges, idx.tail_words, placeholder_kind
    for m in messages:
        if m.placeholder is not None or m.source in done_sources:
            continue
        text = m.text
        kind = exact.get(text)
        if kind is None and text and (text[0] in edges or text[-1] in edges or "\n" in text or "://" in text
                                      or text[text.rfind(" ") + 1:] in tails):
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

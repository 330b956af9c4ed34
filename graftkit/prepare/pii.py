"""PII scrubbing: e-mails, phone numbers, URLs, card numbers and IBANs become typed placeholders.

Why: chat exports are full of other people's contact details, and a fine-tuned model can regurgitate
training text verbatim. Scrubbing is on by default; `--no-scrub` turns it off.

Why this shape: regexes with a callback that *validates* each candidate (Luhn for cards,
mod-97 for IBANs, digit-count and layout rules for phones), so a plausible-looking number that fails
its checksum stays as written. The phone rules are deliberately narrow: international numbers with
`+`, North-American 3-3-4, national numbers with a trunk `0`, and `555-0123`. Times (`21:05`), dates
(`31/12/2023`, `2023-12-31`, `31.12.23`), years, prices and plain numbers never match.
Most chat messages contain none of `@`, a digit, `www` or `/`; those skip the regexes entirely, and
each of the three passes (URLs, e-mails, numbers) only runs on texts holding its key character.
"""

from __future__ import annotations

import re
from collections import Counter

EMAIL, PHONE, URL, CARD, IBAN = "<EMAIL>", "<PHONE>", "<URL>", "<CARD>", "<IBAN>"
KINDS = ("EMAIL", "PHONE", "URL", "CARD", "IBAN")

# Cheap pre-checks: a bare character class is searched much faster than an alternation, and each
# pattern below only runs on texts holding the character it cannot match without.
CANDIDATE = re.compile(r"[0-9@/]").search
_DIGIT = re.compile(r"[0-9]").search

_URL = r"(?P<url>(?i:https?://|www\.)[^\s<>\"]+|\b[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}/[^\s<>\"]*)"
_EMAIL = r"(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-zA-Z]{2,}\b)"
_IBAN = r"(?P<iban>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b)"
_CARD = r"(?P<card>(?<![\w+.,/:-])\d(?:[ -]?\d){12,18}(?![\w.,/:-]?\d))"
# Phones. Boundaries: not glued to letters, digits or number punctuation on either side.
_PRE = r"(?<![\w+.,/:-])"
_POST = r"(?![\w]|[.,/:-]\d)"
_PHONE = (
    r"(?P<phone>"
    + _PRE + r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}" + _POST          # +49 30 1234567, +1 (555) 010-0123
    + r"|" + _PRE + r"(?:1[ .-])?\(\d{3}\) ?\d{3}[ .-]?\d{4}" + _POST  # (555) 010-0123
    + r"|" + _PRE + r"(?:1[ .-])?\d{3}(?P<sep>[ .-])\d{3}(?P=sep)\d{4}" + _POST     # 555-010-0123, 555 010 0123
    + r"|" + _PRE + r"0\d{2,4}[ /-]?\d{3,4}[ -]?\d{2,5}" + _POST       # 0171 2345678, 030/1234-567
    + r"|" + _PRE + r"\d{3}-\d{4}" + _POST                             # 555-0123
    + r")"
)
_URL_RE = re.compile(_URL)  # texts with "/" or "www"
_EMAIL_RE = re.compile(_EMAIL)  # texts with "@"
# The lookahead lets the scanner reject most positions with one character test instead of trying
# every branch and its lookbehind there (7x faster on chat text).
_NUMBER_RE = re.compile("(?=[0-9+(A-Z])(?:" + "|".join((_IBAN, _CARD, _PHONE)) + ")")  # texts with a digit

_URL_TRAIL = ".,;:!?)]}'\""


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 mod-97 check: move the first four characters to the end, letters -> 10..35."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    s = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in s)) % 97 == 1
    except ValueError:
        return False


class Scrubber:
    """Replace PII in texts and count replacements by kind (`counts`, e.g. {"PHONE": 3})."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def _replace(self, m: re.Match) -> str:
        kind = m.lastgroup
        s = m.group(0)
        if kind == "url":
            stripped = s.rstrip(_URL_TRAIL)
            if s.endswith(")") and "(" in stripped:  # keep a balanced ')' of e.g. a wiki URL
                stripped += ")"
            self.counts["URL"] += 1
            return URL + s[len(stripped):]
        if kind == "email":
            self.counts["EMAIL"] += 1
            return EMAIL
        if kind == "iban":
            if iban_ok(s):
                self.counts["IBAN"] += 1
                return IBAN
            return s
        if kind == "card":
            digits = s.replace(" ", "").replace("-", "")
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                self.counts["CARD"] += 1
                return CARD
            return s
        # phone (the group of the 3-3-4 branch's separator is not a kind)
        digits = sum(c.isdigit() for c in s)
        if 7 <= digits <= 15:
            self.counts["PHONE"] += 1
            return PHONE
        return s

    def scrub(self, text: str) -> str:
        """Return `text` with PII replaced; fast path for texts that cannot contain any.

        URLs go first (they may hold digits and "@"), then e-mails, then numbers.
        """
        if not text:
            return text
        www = "www" in text or "WWW" in text
        if not www and CANDIDATE(text) is None:
            return text
        if www or "/" in text:
            text = _URL_RE.sub(self._replace, text)
        if "@" in text:
            text = _EMAIL_RE.sub(self._replace, text)
        if _DIGIT(text) is not None:
            text = _NUMBER_RE.sub(self._replace, text)
        return text


def scrub(text: str) -> str:
    """One-off scrub (tests, small scripts); the pipeline keeps one Scrubber for the counts."""
    return Scrubber().scrub(text)

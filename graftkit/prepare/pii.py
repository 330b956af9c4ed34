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

# Every repetition is bounded (labels <= 63, local parts <= 64, <= 10 labels, ...): a regex that
# fails after scanning an unbounded run is retried at every start position of that run, which is
# quadratic in its length ("ab.ab.ab..." of 60 KB took 44 s). Bounded, each start costs a constant.
_LABEL = r"[\w-]{1,63}"
_DOMAIN = _LABEL + r"(?:\." + _LABEL + r"){0,10}\.[a-zA-Z]{2,24}"
_URL = (r"(?P<url>(?i:https?://|www\.)[^\s<>\"]+|(?<![\w.-])" + _DOMAIN + r"/[^\s<>\"]*)")
_EMAIL = r"(?P<email>(?<![\w.+-])[\w.+-]{1,64}@" + _DOMAIN + r"\b)"
_IBAN = r"(?P<iban>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b)"
# Cards: 14-19 digits written as one run or in groups of 4 (Amex/Diners 4-6-5 / 4-6-4); the brand
# prefix and the Luhn check are verified in _replace. Order numbers (3-7-7) and EAN-13 barcodes
# do not fit.
_CARD = (r"(?P<card>(?<![\w+.,/:-])(?:\d{14,19}|\d{4}(?P<csep>[ -])\d{4}(?P=csep)\d{4}(?P=csep)\d{4}"
         r"(?:(?P=csep)\d{1,3})?|\d{4}[ -]\d{6}[ -]\d{4,5})(?![\w.,/:-]?\d))")
# Phones. Boundaries: not glued to letters, digits or number punctuation on either side; a ")" is
# only part of a number when its "(" is.
_PRE = r"(?<![\w+.,/:-])"
_POST = r"(?![\w]|[.,/:-]\d)"
_GROUP = r"(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4}))"
_PHONE = (
    r"(?P<phone>"
    + _PRE + r"(?:\+|00)[1-9]\d{0,2}" + _GROUP + r"{2,6}" + _POST      # +49 30 1234567, 0049 30 1234567
    + r"|" + _PRE + r"(?:1[ .-])?\(\d{3}\) ?\d{3}[ .-]?\d{4}" + _POST  # (555) 010-0123
    + r"|" + _PRE + r"(?:1[ .-])?\d{3}(?P<sep>[ .-])\d{3}(?P=sep)\d{4}" + _POST     # 555-010-0123, 555 010 0123
    + r"|" + _PRE + r"0[1-9]\d{1,3}[ /-]?\d{3,4}[ -]?\d{2,5}" + _POST       # 0171 2345678, 030/1234-567
    + r"|" + _PRE + r"0[1-9](?P<fsep>[ .-])\d{2}(?P=fsep)\d{2}(?P=fsep)\d{2}(?P=fsep)\d{2}" + _POST  # FR 06 12 34 56 78
    + r"|" + _PRE + r"0[1-9]\d{0,2}[ -]\d{6,8}" + _POST                     # NL 06-12345678, 020-1234567
    + r"|" + _PRE + r"[6-9]\d{2}(?P<esep>[ .])\d{3}(?P=esep)\d{3}" + _POST  # ES 612 345 678
    + r"|" + _PRE + r"[6-9]\d{4} \d{5}" + _POST                         # IN 98765 43210
    + r"|" + _PRE + r"\(0?\d{2}\) ?9?\d{4}[ -]?\d{4}" + _POST           # AU (02) 9876 5432, BR (11) 91234-5678
    + r"|" + _PRE + r"8 ?\(\d{3}\) ?\d{3}-?\d{2}-?\d{2}" + _POST        # RU 8 (912) 345-67-89
    + r"|" + _PRE + r"\d{3}-\d{4}" + _POST                             # 555-0123
    + r")"
)
_URL_RE = re.compile(_URL)  # texts with "/" or "www"
_EMAIL_RE = re.compile(_EMAIL)  # texts with "@"
# The lookahead lets the scanner reject most positions with one character test instead of trying
# every branch and its lookbehind there (7x faster on chat text).
_NUMBER_RE = re.compile("(?=[0-9+(A-Z])(?:" + "|".join((_IBAN, _CARD, _PHONE)) + ")")  # texts with a digit
# Texts longer than this are scrubbed in pieces cut at whitespace (a bound on any one regex call).
SCRUB_PIECE = 4096
_SPACE = re.compile(r"\s")

_URL_TRAIL = ".,;:!?)]}'\""


def _phone_digits_ok(s: str) -> bool:
    """7-15 digits (E.164); a national number (no "+"/"00") has at most 12, so a 13-digit barcode
    starting with 0 is not a phone."""
    digits = sum(c.isdigit() for c in s)
    return 7 <= digits <= (15 if s.startswith(("+", "00")) else 12)


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


def card_brand_ok(digits: str) -> bool:
    """Length and issuer prefix of a real card brand (Visa, Mastercard, Amex, Discover, JCB, Diners,
    UnionPay, Maestro). Why: many long numbers pass Luhn by chance (1 in 10); order numbers and
    barcodes do not start like a card of their length."""
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if p2 in (36, 38, 39) or 3000 <= p4 <= 3059:
        return 14 <= n <= 19
    if 3528 <= p4 <= 3589 or p2 == 62 or p4 == 6011 or p2 == 65 or 644 <= int(digits[:3]) <= 649:
        return 16 <= n <= 19
    if p2 in (50, 56, 57, 58, 63, 67):
        return 16 <= n <= 19
    return False


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
        self.pseudonyms: dict[str, str] = {}  # normalised phone/e-mail -> "<PHONE_1>", "<EMAIL_2>", ...
        self._numbered = False

    def scrub_name(self, name: str) -> str:
        """Scrub a sender name or a conversation id: each distinct phone number or e-mail gets its
        own stable pseudonym (`<PHONE_1>`, `<PHONE_2>`, `<EMAIL_1>`), the same for every file of the
        run. Why: unsaved contacts in a group are their numbers; one shared `<PHONE>` would merge
        several people into one sender and their messages into one turn."""
        self._numbered = True
        try:
            return self.scrub(name)
        finally:
            self._numbered = False

    def _pseudonym(self, kind: str, value: str) -> str:
        key = kind + ":" + ("".join(c for c in value if c.isdigit()).removeprefix("00") if kind == "PHONE"
                            else value.casefold())
        p = self.pseudonyms.get(key)
        if p is None:
            n = sum(1 for k in self.pseudonyms if k.startswith(kind + ":")) + 1
            p = self.pseudonyms[key] = f"<{kind}_{n}>"
        return p

    def _replace(self, m: re.Match) -> str:
        kind = m.lastgroup
        s = m.group(0)
        if self._numbered and kind in ("email", "phone", "sep", "fsep", "esep"):
            if kind == "email":
                self.counts["EMAIL"] += 1
                return self._pseudonym("EMAIL", s)
            if _phone_digits_ok(s):
                self.counts["PHONE"] += 1
                return self._pseudonym("PHONE", s)
            return s
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
            if card_brand_ok(digits) and luhn_ok(digits):
                self.counts["CARD"] += 1
                return CARD
            return s
        # phone (the group of the 3-3-4 branch's separator is not a kind)
        if _phone_digits_ok(s):
            self.counts["PHONE"] += 1
            return PHONE
        return s

    def scrub(self, text: str) -> str:
        """Return `text` with PII replaced; fast path for texts that cannot contain any.

        URLs go first (they may hold digits and "@"), then e-mails, then numbers. A text longer
        than SCRUB_PIECE is scrubbed in pieces cut at whitespace, so no regex call sees more.
        """
        if not text:
            return text
        www = "www" in text or "WWW" in text
        if not www and CANDIDATE(text) is None:
            return text
        if len(text) > SCRUB_PIECE:
            return "".join(self._scrub(p) for p in _pieces(text))
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        """One piece of a long text (the same passes as scrub, without the length check)."""
        www = "www" in text or "WWW" in text
        if www or "/" in text:
            text = _URL_RE.sub(self._replace, text)
        if "@" in text:
            text = _EMAIL_RE.sub(self._replace, text)
        if _DIGIT(text) is not None:
            text = _NUMBER_RE.sub(self._replace, text)
        return text


def _pieces(text: str) -> list[str]:
    """Cut `text` into pieces of at most SCRUB_PIECE characters, after a whitespace where there is one
    in the last quarter of a piece (so a number or address is rarely cut in two)."""
    out, start, n = [], 0, len(text)
    while start < n:
        end = min(start + SCRUB_PIECE, n)
        if end < n:
            m = None
            for m in _SPACE.finditer(text, end - SCRUB_PIECE // 4, end):
                pass
            if m is not None:
                end = m.end()
        out.append(text[start:end])
        start = end
    return out


def scrub(text: str) -> str:
    """One-off scrub (tests, small scripts); the pipeline keeps one Scrubber for the counts."""
    return Scrubber().scrub(text)

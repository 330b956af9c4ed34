"""PII scrubbing: every kind is replaced, checksums are honoured, and ordinary numbers survive."""

from __future__ import annotations

import pytest

from graftkit.prepare.pii import Scrubber, iban_ok, luhn_ok, scrub


@pytest.mark.parametrize("text, expected", [
    ("call me at +1 555 0100 ok", "call me at <PHONE> ok"),
    ("+12025550147", "<PHONE>"),
    ("(555) 010-0123", "<PHONE>"),
    ("555-010-0123 or 555.010.0123", "<PHONE> or <PHONE>"),
    ("my number 555-0123!", "my number <PHONE>!"),
    ("ruf an: 0171 2345678", "ruf an: <PHONE>"),
    ("+49 (0)30 1234567", "<PHONE>"),
    ("+44 7700 900123.", "<PHONE>."),
    ("mail carol@example.com.", "mail <EMAIL>."),
    ("bob.smith+x@mail.example.org", "<EMAIL>"),
    ("see https://example.com/tickets/42, ok", "see <URL>, ok"),
    ("www.example.org.", "<URL>."),
    ("(https://en.wikipedia.org/wiki/Foo_(bar))", "(<URL>)"),
    ("instagram.com/sam_smith", "<URL>"),
    ("card 4111 1111 1111 1111", "card <CARD>"),
    ("4111-1111-1111-1111", "<CARD>"),
    ("IBAN DE89 3704 0044 0532 0130 00", "IBAN <IBAN>"),
    ("GB82WEST12345698765432", "<IBAN>"),
])
def test_replaces_each_kind(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize("text", [
    "at 10:30 on 31/12/2023", "2023-12-31", "31.12.23", "in 2023, 10 people", "10", "2023",
    "9:05 PM", "21:05:07", "12/31/23", "2019-2023", "score 3-2", "$1,299.99", "1,000,000",
    "3.14159", "v1.2.3", "epoch 1704053107", "year 2023 2024", "16:9", "10-20 people", "1.000.000",
    "12.5.2023", "01/02/2023", "0.5", "100%", "km/h", "and/or", "24/7", "1/2 cup", "50/50",
    "2/11/19: Arrival", "room 101", "ISBN 978-3-16-148410-0", "192.168.1.1", "lol 555", "call me at 9",
    "4111 1111 1111 1112",  # fails Luhn
    "DE89 3704 0044 0532 0130 01",  # fails mod 97
    "hello there", "",
])
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert scrub(text) == text


def test_counts_by_kind() -> None:
    s = Scrubber()
    s.scrub("a@b.example, +1 555 0100, https://x.example/ and 4111111111111111")
    s.scrub("no pii here")
    assert dict(s.counts) == {"EMAIL": 1, "PHONE": 1, "URL": 1, "CARD": 1}


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")
    assert not iban_ok("DE89")

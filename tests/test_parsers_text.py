"""Text chat formats (WhatsApp, Signal, LINE, plain transcript, generic CSV) beyond the fixtures.

Unit tests pin the tricky rules (date-order inference, 12 AM/PM, continuation lines, system lines,
U+200E, detection, clean errors). Property tests write random messages with a writer for each format
and check that parse_input reads back exactly the same senders, texts and timestamps.
"""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graftkit.errors import InputError
from graftkit.messages import Message
from graftkit.parsers import detect_format, parse_input
from graftkit.parsers import generic_csv, line, plain, signal, whatsapp
from graftkit.parsers.base import Sniff
from graftkit.parsers.placeholders import MARKS
from graftkit.parsers.whatsapp import WHATSAPP_STYLES, find_shape, format_whatsapp

LRM, NNBSP = "\u200e", "\u202f"


def write(tmp_path: Path, content: str | bytes, name: str = "chat.txt") -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8", newline="")
    return p


def parse(tmp_path: Path, content: str, name: str = "chat.txt", fmt: str | None = None) -> list[Message]:
    return parse_input(write(tmp_path, content, name), fmt).messages


def triples(msgs: list[Message]) -> list[tuple]:
    return [(m.sender, m.text, m.timestamp) for m in msgs]


# --------------------------------------------------------------------------------- WhatsApp: dates

def test_day_first_settled_by_a_late_day_above_12(tmp_path):
    msgs = parse(tmp_path, "01/02/23, 09:15 - A: x\n05/02/23, 10:00 - B: y\n25/03/23, 22:10 - A: z\n")
    assert [m.timestamp for m in msgs] == ["2023-02-01T09:15:00", "2023-02-05T10:00:00", "2023-03-25T22:10:00"]


def test_month_first_settled_by_a_middle_field_above_12(tmp_path):
    msgs = parse(tmp_path, "01/02/23, 09:15 - A: x\n01/20/23, 10:00 - B: y\n")
    assert [m.timestamp[:10] for m in msgs] == ["2023-01-02", "2023-01-20"]


def test_ambiguous_dates_follow_chronology_over_locale_hint(tmp_path):
    # Every field <= 12. Read month first (the 12-hour hint) they would jump back from Dec to Jan;
    # read day first they run forward, so day first wins.
    text = ("11/01/23, 9:00 AM - A: a\n12/01/23, 9:00 AM - B: b\n"
            "01/02/23, 9:00 AM - A: c\n02/02/23, 9:00 AM - B: d\n")
    assert [m.timestamp[:10] for m in parse(tmp_path, text)] == [
        "2023-01-11", "2023-01-12", "2023-02-01", "2023-02-02"]


@pytest.mark.parametrize("header, want", [
    ("01/02/23, 9:00 PM - ", "2023-01-02"),  # 12-hour clock: US, month first
    ("1/2/23, 21:00 - ", "2023-01-02"),  # unpadded M/D/YY: US Android
    ("01/02/2023, 21:00 - ", "2023-02-01"),  # padded DD/MM/YYYY: day first
    ("01.02.23, 21:00 - ", "2023-02-01"),  # dotted: day first
    ("[01.02.23, 21:00:00] ", "2023-02-01"),
    ("2023/01/02, 21:00 - ", "2023-01-02"),  # year first is always Y/M/D
])
def test_fully_ambiguous_single_date_uses_locale_hints(tmp_path, header, want):
    assert parse(tmp_path, header + "A: hi\n")[0].timestamp[:10] == want


def test_impossible_date_is_an_error_with_its_line(tmp_path):
    p = write(tmp_path, "25/01/2023, 10:00 - A: x\n26/01/2023, 10:00 - A: y\n31/02/2023, 10:00 - A: z\n")
    with pytest.raises(InputError) as err:
        parse_input(p)
    assert err.value.line == 3 and str(p) in err.value.format()


def test_dates_that_fit_no_single_order_are_an_error(tmp_path):
    text = "13/01/2023, 10:00 - A: x\n14/01/2023, 10:00 - A: x\n01/20/2023, 10:00 - A: y\n"
    with pytest.raises(InputError) as err:
        parse(tmp_path, text)
    assert err.value.line == 3


def test_invalid_time_is_an_error_with_its_line(tmp_path):
    with pytest.raises(InputError) as err:
        parse(tmp_path, "31/12/2023, 21:05 - A: x\n31/12/2023, 25:05 - A: y\n", fmt="whatsapp_txt")
    assert err.value.line == 2


# ------------------------------------------------------------------------------- WhatsApp: clock

@pytest.mark.parametrize("clock, want", [
    (f"12:00{NNBSP}AM", "00:00:00"), (f"12:30{NNBSP}PM", "12:30:00"), (f"1:05{NNBSP}PM", "13:05:00"),
    ("11:59 pm", "23:59:00"), ("00:08 a. m.", "00:08:00"), ("12:10 p. m.", "12:10:00"),
    ("08:49 p. m.", "20:49:00"), ("9:05 AM", "09:05:00"),
])
def test_12_hour_clock(tmp_path, clock, want):
    assert parse(tmp_path, f"12/31/23, {clock} - A: x\n")[0].timestamp == f"2023-12-31T{want}"


def test_ios_12_hour_with_seconds_and_en_dash(tmp_path):
    msgs = parse(tmp_path, f"[12/31/23, 12:00:03{NNBSP}AM] A: x\n09/17/19, 4:30:10 PM \u2013 B: y\n")
    assert triples(msgs) == [("A", "x\n09/17/19, 4:30:10 PM \u2013 B: y", "2023-12-31T00:00:03")]
    msgs = parse(tmp_path, "09/17/19, 4:30:10 PM \u2013 B: y\n")
    assert msgs[0].timestamp == "2019-09-17T16:30:10"


# ------------------------------------------------------------------------ WhatsApp: continuations

def test_continuation_lines_and_other_header_shapes(tmp_path):
    text = ("[04.01.18, 11:53:57] A: first\n"
            "second line\n"
            "\n"
            "[1.2.2019, 00:00:00] B: a 4-digit year: not this file's header\n"
            "2/11/19, 14:48 - C: Android header in an iOS file\n"
            "2/11/19: Arrival\n"
            "[04.01.18, 11:54:00] B: next")  # no newline at the end
    msgs = parse(tmp_path, text)
    assert triples(msgs) == [
        ("A", "first\nsecond line\n\n[1.2.2019, 00:00:00] B: a 4-digit year: not this file's header\n"
              "2/11/19, 14:48 - C: Android header in an iOS file\n2/11/19: Arrival", "2018-01-04T11:53:57"),
        ("B", "next", "2018-01-04T11:54:00")]


def test_text_may_start_with_a_name_and_contain_colons_and_separators(tmp_path):
    msgs = parse(tmp_path, "31/12/2023, 21:12 - Bob: Bob: quoting: \"x\" - 21:10 - y\n")
    assert triples(msgs) == [("Bob", "Bob: quoting: \"x\" - 21:10 - y", "2023-12-31T21:12:00")]


def test_empty_first_line_after_name(tmp_path):
    msgs = parse(tmp_path, "2/11/19, 14:48 - John Doe:\n\n👍\n2/11/19, 14:51 - n: ok\n")
    assert triples(msgs) == [("John Doe", "\n\n👍", "2019-02-11T14:48:00"), ("n", "ok", "2019-02-11T14:51:00")]


def test_crlf_and_bom(tmp_path):
    msgs = parse(tmp_path, "\ufeff31/12/2023, 21:05 - A: x\r\ny\r\n31/12/2023, 21:06 - B: z\r\n")
    assert triples(msgs) == [("A", "x\ny", "2023-12-31T21:05:00"), ("B", "z", "2023-12-31T21:06:00")]


def test_unicode_line_separators_stay_in_the_text(tmp_path):
    msgs = parse(tmp_path, "31/12/2023, 21:05 - A: x\u2028y\x85z\x0cw\n")
    assert msgs[0].text == "x\u2028y\x85z\x0cw"


# ------------------------------------------------------------------------ WhatsApp: system lines

def test_android_system_lines_are_skipped_with_their_continuations(tmp_path):
    text = ("31/12/2023, 20:58 - Messages and calls are end-to-end encrypted. Tap to learn more.\n"
            "31/12/2023, 20:59 - +1 555 0100 created group \"Trip: 2024\"\n"
            "31/12/2023, 20:59 - You were added\n"
            "31/12/2023, 21:00 - John Doe:.\n"
            "31/12/2023, 21:01 - Ömer hat die Gruppe verlassen\n"
            "31/12/2023, 21:05 - Alice: <Media omitted>\n"
            "31/12/2023, 21:06 - Bob: This message was deleted\n")
    msgs = parse(tmp_path, text)
    assert [(m.sender, m.text, m.media) for m in msgs] == [
        ("+1 555 0100 created group \"Trip", "2024\"", False),  # a system line with ": " cannot be told apart
        ("Alice", "<Media omitted>", True), ("Bob", "This message was deleted", False)]


def test_ios_system_lines_use_the_group_name_even_after_a_rename(tmp_path):
    text = (f"[12/30/23, 6:58:01{NNBSP}PM] Trip 🏕️: {LRM}Messages and calls are end-to-end encrypted.\n"
            f"[12/30/23, 6:58:02{NNBSP}PM] Trip 🏕️: {LRM}You added Bob\n"
            f"[12/30/23, 7:01:15{NNBSP}PM] Alice: Hi: all\n"
            f"[12/30/23, 7:07:20{NNBSP}PM] Trip 🏕️: {LRM}Carol changed the subject to “Cabin”\n"
            f"{LRM}[12/30/23, 7:08:00{NNBSP}PM] Bob: {LRM}image omitted\n"
            f"{LRM}[12/30/23, 7:08:30{NNBSP}PM] Bob: {LRM}<attached: 00000012-PHOTO.jpg>\n"
            f"{LRM}[12/30/23, 7:09:00{NNBSP}PM] Bob: {LRM}This message was deleted.\n"
            f"[1/1/24, 12:16:10{NNBSP}PM] Cabin: {LRM}Dmitri left\n"
            f"[1/1/24, 12:20:00{NNBSP}PM] Bob: {LRM}Contact card omitted\n"
            f"[1/1/24, 12:21:00{NNBSP}PM] Carol: bye\n")
    msgs = parse(tmp_path, text)
    assert [(m.sender, m.text, m.media) for m in msgs] == [
        ("Alice", "Hi: all", False), ("Bob", "image omitted", True),
        ("Bob", "<attached: 00000012-PHOTO.jpg>", True), ("Bob", "This message was deleted.", False),
        ("Bob", "Contact card omitted", True), ("Carol", "bye", False)]
    assert msgs[0].timestamp == "2023-12-30T19:01:15" and msgs[-1].timestamp == "2024-01-01T12:21:00"


def test_ios_info_line_without_sender_is_skipped(tmp_path):
    msgs = parse(tmp_path, "[04.01.18, 11:54:03] A: x\n[04.01.18, 11:54:23] This is an info entry\n"
                           f"{LRM}[04.01.18, 11:54:34] B: y\n")
    assert triples(msgs) == [("A", "x", "2018-01-04T11:54:03"), ("B", "y", "2018-01-04T11:54:34")]


def test_lrm_is_removed_from_senders_and_texts_only(tmp_path):
    msgs = parse(tmp_path, f"{LRM}31/12/2023, 21:05 - {LRM}Al{LRM}ice: a{LRM}b\nc{LRM}\u202ad\u202c\n")
    assert triples(msgs) == [("Alice", "ab\nc\u202ad\u202c", "2023-12-31T21:05:00")]


# ------------------------------------------------------------------------------ WhatsApp: writer

@pytest.mark.parametrize("style, want", [
    ("android_24h", "01/02/2024, 00:05 - Al: hi\n31/12/2023, 21:05 - Bo: x\ny\n"),
    ("android_us_12h", f"2/1/24, 12:05{NNBSP}AM - Al: hi\n12/31/23, 9:05{NNBSP}PM - Bo: x\ny\n"),
    ("android_de_24h", "01.02.24, 00:05 - Al: hi\n31.12.23, 21:05 - Bo: x\ny\n"),
    ("ios_24h", "[01.02.24, 00:05:00] Al: hi\n[31.12.23, 21:05:07] Bo: x\ny\n"),
    ("ios_us_12h", f"[2/1/24, 12:05:00{NNBSP}AM] Al: hi\n[12/31/23, 9:05:07{NNBSP}PM] Bo: x\ny\n"),
])
def test_format_whatsapp_styles(style, want):
    msgs = [Message("Al", "hi", "2024-02-01T00:05:00"), Message("Bo", "x\ny", "2023-12-31T21:05:07+01:00")]
    assert format_whatsapp(msgs, style) == want


def test_format_whatsapp_rejects_what_it_cannot_write():
    with pytest.raises(ValueError):
        format_whatsapp([Message("A", "x", None)])
    with pytest.raises(ValueError):
        format_whatsapp([Message(None, "x", "2023-12-31T21:05:00")])
    with pytest.raises(ValueError):
        format_whatsapp([], style="symbian")


# --------------------------------------------------------------------------------- other formats

def test_signal_txt_and_markdown(tmp_path):
    txt = "[2019-12-24, 12:23] Jane Doe: Hello: John\n[2020-01-17, 21:49] John Doe: Hello\nJane!\n"
    assert triples(parse(tmp_path, txt)) == [("Jane Doe", "Hello: John", "2019-12-24T12:23:00"),
                                             ("John Doe", "Hello\nJane!", "2020-01-17T21:49:00")]
    md = ("[2023-12-31 21:08] Bob: ![p.jpg](./media/p.jpg)\n\n[2023-12-31 21:09] Alice joined the group\n"
          "[2024-01-01 00:00] Alice: a\n\nb\n\n")
    msgs = parse(tmp_path, md, "chat.md")
    assert triples(msgs) == [("Bob", "![p.jpg](./media/p.jpg)", "2023-12-31T21:08:00"),
                             ("Alice", "a\n\nb", "2024-01-01T00:00:00")]
    assert [m.media for m in msgs] == [True, False]
    assert all(m.source == "signal_markdown" for m in msgs)


def test_signal_invalid_date_names_the_line(tmp_path):
    with pytest.raises(InputError) as err:
        parse(tmp_path, "[2023-12-31 21:08] A: x\n[2023-13-01 21:08] A: y\n")
    assert err.value.line == 2


def test_line_12_hour_variants_and_system_lines(tmp_path):
    text = ("2023.12.31 Sunday\nPM 09:05\tAlice\tHi\n12:00 AM\tBob\tmidnight\n09:10 PM\tBob left the chat.\n"
            "Sun, 12/31/2023\n午後9:15\tボブ\t[スタンプ]\n午前12:30\tボブ\t\"a\n\"\"b\"\"\"\n")
    msgs = parse(tmp_path, text)
    # 午前12:30 is 12:30 (noon) in LINE's Japanese UI: the PC export of the same chat says 12:30 (issue 25).
    assert triples(msgs) == [("Alice", "Hi", "2023-12-31T21:05:00"), ("Bob", "midnight", "2023-12-31T00:00:00"),
                             ("ボブ", "[スタンプ]", "2023-12-31T21:15:00"), ("ボブ", "a\n\"b\"", "2023-12-31T12:30:00")]
    assert [m.media for m in msgs] == [False, False, True, False]


def test_line_single_line_quotes_are_verbatim(tmp_path):
    text = '[LINE] Chat history with B\n\n2023/12/31(Sun)\n21:05\tA\t"hi"\n21:06\tB\t"he said" ok\n21:07\tA\t"x\n'
    assert [m.text for m in parse(tmp_path, text)] == ['"hi"', '"he said" ok', '"x']


def test_line_message_before_a_date_line_names_the_line(tmp_path):
    with pytest.raises(InputError) as err:
        parse(tmp_path, "[LINE] Chat history with B\n21:05\tA\thi\n")
    assert err.value.line == 2


def test_plain_transcript(tmp_path):
    text = "Alice: hi: there\n\ncontinued\nDr. Bob-Smith: yo\n"
    assert triples(parse(tmp_path, text, fmt="plain_transcript")) == [
        ("Alice", "hi: there\ncontinued", None), ("Dr. Bob-Smith", "yo", None)]
    with pytest.raises(InputError) as err:
        parse(tmp_path, "\njust a line\nAlice: hi\n", fmt="plain_transcript")
    assert err.value.line == 2


def test_generic_csv_columns_timestamps_and_errors(tmp_path):
    text = ("Text,Sender,Timestamp,id\r\n\"a\r\nb\",A,2023-12-31 21:05,1\r\nx,,2023-12-31T21:05:07Z,2\r\n"
            "y,B,1704056707,3\r\nz,B,yesterday,4\r\nw,B,,5\r\n")
    assert triples(parse(tmp_path, text, "c.csv")) == [
        ("A", "a\nb", "2023-12-31T21:05:00"), (None, "x", "2023-12-31T21:05:07+00:00"),
        ("B", "y", "2023-12-31T21:05:07+00:00"), ("B", "z", "yesterday"), ("B", "w", None)]
    with pytest.raises(InputError) as err:
        parse(tmp_path, 'timestamp,sender,text\n1,A,"x\ny"\n2,B\n', "c.csv")
    assert err.value.line == 4
    with pytest.raises(InputError) as err:
        parse(tmp_path, 'timestamp,sender,text\n1,A,"unterminated\nmore\n', "c.csv")
    assert "c.csv" in err.value.format()


# ------------------------------------------------------------------------------------- detection

MINE = [p for m in (whatsapp, signal, line, plain, generic_csv) for p in m.PARSERS]
NOT_CHATS = {
    "discord.csv": '"AuthorID","Author","Date","Content","Attachments","Reactions"\n'
                   '"1","alice","12/31/2023 9:05 PM","Hi: there","",""\n',
    "other.csv": "date,from,message\n2023-12-31,A,hi\n",
    "result.json": '{\n  "name": "Bob",\n  "type": "personal_chat",\n  "messages": []\n}\n',
    "config.yaml": "model: tiny\nlr: 0.001\nepochs: 3\nbatch: 8\nseed: 1\n",
    "mail.txt": "From: a@example.com\nTo: b@example.com\nSubject: hi\nDate: today\n\nHello Bob: see below.\n",
    "LICENSE.txt": "MIT License\n\nCopyright (c) 2021 Someone\n\nPermission is hereby granted, free of charge, "
                   "to any person obtaining a copy\nof this software: the above copyright notice shall be "
                   "included.\n",
    "notes.md": "# Notes\n\n- item: one\n- item: two\n\nSome text: more text.\n",
    "code.py": "def f(x):\n    return {'a': x}\n\nprint(f(1))\n",
    "messages.xml": '<?xml version="1.0"?>\n<smses count="1">\n<sms address="1" body="Hi: x" />\n</smses>\n',
}


@pytest.mark.parametrize("name", sorted(NOT_CHATS))
def test_no_text_detector_claims_other_files(tmp_path, name):
    sniff = Sniff(write(tmp_path, NOT_CHATS[name], name))
    assert [p.name for p in MINE if p.detect(sniff)] == []


@pytest.mark.parametrize("content, fmt", [
    ("[2019-12-24, 12:23] Jane Doe: Hello\n[2020-01-17, 21:49] John Doe: Hi\n", "signal_txt"),
    ("[2023-12-31 21:05] Alice: Hi\n", "signal_markdown"),
    ("[31.12.23, 21:05:07] Alice: Hi\n", "whatsapp_txt"),
    ("[2023-12-31 21:05:07] Alice: Hi\n", "whatsapp_txt"),  # Swedish iOS WhatsApp has seconds; Signal does not
    ("2023/12/31(Sun)\n21:05\tAlice\tHi\n21:06\tBob\tYo\n", "line_txt"),
    ("timestamp,sender,text\n2023-12-31,A,hi\n", "generic_csv"),
    ("Alice: hi\nBob: hey\nAlice: ok\n", "plain_transcript"),
])
def test_detect_format(tmp_path, content, fmt):
    assert detect_format(write(tmp_path, content)).name == fmt


def test_plain_detector_wants_repeating_short_names(tmp_path):
    assert not plain._detect(Sniff(write(tmp_path, "Alice: hi\n")))
    assert not plain._detect(Sniff(write(tmp_path, "A: 1\nB: 2\nC: 3\nD: 4\nE: 5\n")))
    long_name = "This is a rather long sentence that goes on: and on\nAnd another one like it here: ok\n"
    assert not plain._detect(Sniff(write(tmp_path, long_name)))


def test_header_detectors_need_a_header_on_the_first_line(tmp_path):
    late = "hello\n31/12/2023, 21:05 - A: x\n31/12/2023, 21:06 - B: y\n"
    assert not whatsapp._detect(Sniff(write(tmp_path, late)))
    assert parse(tmp_path, late, fmt="whatsapp_txt")[0].sender == "A"  # a forced format skips the preamble
    signal_in_whatsapp = "31/12/2023, 21:05 - A: hi\n[2023-12-31 21:05] X: y\n"
    assert detect_format(write(tmp_path, signal_in_whatsapp)).name == "whatsapp_txt"


# ------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("fmt", ["whatsapp_txt", "signal_txt", "signal_markdown", "line_txt", "plain_transcript",
                                 "generic_csv"])
def test_broken_files_raise_input_error_naming_file(tmp_path, fmt):
    for content, line_no in [(b"", None), (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None),
                             ("31/12/2023, 21:05 - A: x\nok\n".encode() + b"caf\xe9\n", 3)]:
        p = write(tmp_path, content)
        with pytest.raises(InputError) as err:
            parse_input(p, fmt)
        assert str(p) in err.value.format()
        if line_no is not None:
            assert err.value.line == line_no


def test_forced_whatsapp_on_another_format(tmp_path):
    with pytest.raises(InputError, match="no WhatsApp message header"):
        parse(tmp_path, "Alice: hi\nBob: yo\n", fmt="whatsapp_txt")


# ------------------------------------------------------------------------------- property tests
# Random messages written in each format and parsed back must come out unchanged. The strategies only
# generate what a format can represent; `fix_*` rewrite the few lines that would read as headers.

PROPS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TEXT_CHAR = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=LRM + "\ufeff")
_TEXT_TOKEN = st.one_of(_TEXT_CHAR, st.sampled_from([
    ":", ": ", "[", "]", "(", ")", "-", " - ", "\u2013", '"', '""', "\t", " ", "\u2028", "\x85", "😀", "👍🏽",
    "👨\u200d👩\u200d👧", NNBSP, "12/31/23, 9:05 PM - X: ", "[1/1/24, 9:05:07 PM] X: ", "[2023-12-31 21:05] X: ",
    "21:05\tX\t", "2023/12/31(Sun)", "Name: ", "![a](./media/a.jpg)", "<Media omitted>"]))
_LINE = st.lists(_TEXT_TOKEN, max_size=10).map("".join)
TEXTS = st.lists(_LINE, min_size=1, max_size=3).map("\n".join)
_NAME_CHAR = st.sampled_from(list("AbcXyzéßжあ李09 -._'()+") + ["😀", "🤓", "👍🏽", "\u2013", "🏕️", ":"])
NAMES = (st.lists(_NAME_CHAR, min_size=1, max_size=14).map("".join).map(str.strip)
         .filter(lambda n: plain.speaker(n + ": x") == n))


def _stamps(seconds: bool) -> st.SearchStrategy[datetime]:
    dt = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59))
    return dt if seconds else dt.map(lambda d: d.replace(second=0, microsecond=0))


def chats(seconds: bool, fix, timed: bool = True) -> st.SearchStrategy[list[Message]]:
    """Chronological chats of 1-8 messages whose texts went through `fix` (first line, rest lines)."""
    def build(items):
        items = sorted(items, key=lambda it: it[2])
        return [Message(s, fix(t), d.replace(microsecond=0).isoformat() if timed else None)
                for s, t, d in items]
    return st.lists(st.tuples(NAMES, TEXTS, _stamps(seconds)), min_size=1, max_size=8).map(build)


def _fix_rest(text: str, bad) -> str:
    first, *rest = text.split("\n")
    return "\n".join([first] + [("x" + ln if bad(ln) else ln) for ln in rest])


def fix_whatsapp(text: str) -> str:
    """Header-like lines get an "x"; invisible marks at the start of a line go (the parser drops them:
    phones put them there, issue 25)."""
    text = _fix_rest(text, lambda ln: find_shape(ln) is not None)
    return "\n".join(ln.lstrip(MARKS) for ln in text.split("\n"))


def fix_signal(text: str) -> str:
    return _fix_rest(text, lambda ln: signal._TXT.match(ln) or signal._MD.match(ln))


def fix_signal_md(text: str) -> str:
    return fix_signal(text).rstrip("\n")


def fix_line(text: str) -> str:
    return "x" + text if "\n" not in text and text.startswith('"') else text


def fix_plain(text: str) -> str:
    return _fix_rest(text, lambda ln: plain.speaker(ln) is not None or not ln.strip()).replace("\nx", "\n- ")


def roundtrip(content: str, name: str, fmt: str | None, want_format: str) -> list[tuple]:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / name
        p.write_text(content, encoding="utf-8", newline="")
        result = parse_input(p, fmt)
    assert [f for _, f, _ in result.files] == [want_format]
    return triples(result.messages)


@pytest.mark.parametrize("style", WHATSAPP_STYLES)
def test_whatsapp_roundtrip(style):
    @PROPS
    @given(chats(seconds=style.startswith("ios"), fix=fix_whatsapp))
    def check(msgs):
        assert roundtrip(format_whatsapp(msgs, style), "chat.txt", None, "whatsapp_txt") == triples(msgs)
    check()


def write_signal(msgs: list[Message], markdown: bool) -> str:
    sep = " " if markdown else ", "
    return "".join(f"[{m.timestamp[:10]}{sep}{m.timestamp[11:16]}] {m.sender}: {m.text}\n" for m in msgs)


@PROPS
@given(chats(seconds=False, fix=fix_signal))
def test_signal_txt_roundtrip(msgs):
    assert roundtrip(write_signal(msgs, False), "chat.txt", None, "signal_txt") == triples(msgs)


@PROPS
@given(chats(seconds=False, fix=fix_signal_md))
def test_signal_markdown_roundtrip(msgs):
    assert roundtrip(write_signal(msgs, True), "chat.md", None, "signal_markdown") == triples(msgs)


def write_line(msgs: list[Message]) -> str:
    out = ["[LINE] Chat history with Bob", "Saved on: 2024/01/01 10:00", ""]
    day = None
    for m in msgs:
        if m.timestamp[:10] != day:
            day = m.timestamp[:10]
            out += ["", f"{day.replace('-', '/')}(Sun)"]
        text = m.text if "\n" not in m.text else '"' + m.text.replace('"', '""') + '"'
        out.append(f"{m.timestamp[11:16]}\t{m.sender}\t{text}")
    return "\n".join(out) + "\n"


@PROPS
@given(chats(seconds=False, fix=fix_line))
def test_line_roundtrip(msgs):
    assert roundtrip(write_line(msgs), "chat.txt", None, "line_txt") == triples(msgs)


@PROPS
@given(chats(seconds=False, fix=fix_plain, timed=False))
def test_plain_roundtrip(msgs):
    content = "".join(f"{m.sender}: {m.text}\n" for m in msgs)
    assert roundtrip(content, "chat.txt", "plain_transcript", "plain_transcript") == triples(msgs)


@PROPS
@given(chats(seconds=True, fix=lambda t: t), st.booleans())
def test_generic_csv_roundtrip(msgs, excel):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n" if excel else "\n")
    w.writerow(["timestamp", "sender", "text"])
    w.writerows([m.timestamp, m.sender, m.text] for m in msgs)
    content = ("\ufeff" if excel else "") + buf.getvalue()
    assert roundtrip(content, "chat.csv", None, "generic_csv") == triples(msgs)


@pytest.mark.parametrize("inner", ["12/31/23, 9:05 PM - X: ", "[2023-12-31 21:05] X: ", "[2019-12-24, 12:23] X: "])
def test_csv_with_header_like_text_is_still_csv(tmp_path, inner):
    p = write(tmp_path, f'timestamp,sender,text\n2000-01-01T00:00:00,A,"\n{inner}"\n', "c.csv")
    assert detect_format(p).name == "generic_csv"


def test_line_separators_inside_messages_do_not_break_detection(tmp_path):
    p = write(tmp_path, "01/01/2000, 00:00 - A: \u20280\u20280\n0\u20280\u20280\n")
    assert detect_format(p).name == "whatsapp_txt"

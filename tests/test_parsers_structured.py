"""Structured-export parsers (Telegram, Discord, Messenger/Instagram, Slack, iMessage, SMS, Google Chat).

Two kinds of tests:
- targeted cases the fixtures do not cover (mojibake repair, entity lists, surrogate references,
  split threads, zips, broken and truncated files, detection boundaries, the read-only chat.db);
- hypothesis round trips: random messages (emoji, newlines, odd names) are written in each writable
  format by the small writers below and must come back through `parse_input` unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graftkit.errors import InputError
from graftkit.parsers import Sniff, detect_format, parse_input
from graftkit.parsers import discord, google_chat, imessage, meta, slack, sms, telegram
from graftkit.parsers.meta import fix_mojibake
from graftkit.parsers.sms import merge_surrogate_refs

MY_PARSERS = [p for m in (telegram, discord, meta, slack, imessage, sms, google_chat) for p in m.PARSERS]
UTC = timezone.utc
OWNER = "Me"


def _utc(dt: datetime) -> str:
    return dt.replace(tzinfo=UTC).isoformat()


def _epoch(dt: datetime) -> int:
    return int(dt.replace(tzinfo=UTC).timestamp())


def _got(path: Path, fmt: str | None = None) -> list[tuple]:
    return [(m.sender, m.text, m.timestamp, m.media) for m in parse_input(path, fmt).messages]


def _write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- writers
# Each takes [(sender, text, naive datetime, media)] and returns the path parse_input gets, plus the
# (sender, text, timestamp, media) tuples it must give back.

def write_telegram(root: Path, msgs, full_account: bool = False):
    items, want = [], []
    for i, (sender, text, dt, media) in enumerate(msgs):
        item = {"id": i + 1, "type": "message", "date": dt.isoformat(), "date_unixtime": str(_epoch(dt) - 3600),
                "from": sender}
        if media:
            item.update(photo="photos/p.jpg", text="", text_entities=[])
            text = ""
        elif i % 2:  # entity-list form: alternate plain strings and bold entities, 3 chars each
            chunks = [text[j:j + 3] for j in range(0, len(text), 3)]
            item["text"] = [c if k % 2 == 0 else {"type": "bold", "text": c} for k, c in enumerate(chunks)]
        else:
            item["text"] = text
        items.append({"id": 1000 + i, "type": "service", "date": dt.isoformat(), "actor": "x",
                      "action": "pin_message", "text": ""})
        items.append(item)
        want.append((sender, text, dt.isoformat(), media))
    chat = {"name": "Chat", "type": "personal_chat", "id": 7, "messages": items}
    obj = {"about": "...", "chats": {"about": "...", "list": [chat]}} if full_account else chat
    return _write_json(root / "result.json", obj), want


OFFSETS = ["+00:00", "+01:00", "-05:00", "+05:30"]


def write_discord_json(root: Path, msgs):
    items, want = [], []
    for i, (sender, text, dt, media) in enumerate(msgs):
        off = OFFSETS[i % len(OFFSETS)]
        items.append({"id": str(i), "type": "GuildMemberJoin", "timestamp": dt.isoformat() + off,
                      "content": "Joined the server.", "author": {"name": "joiner", "discriminator": "0000"}})
        items.append({"id": str(i), "type": "Reply" if i % 3 == 2 else "Default",
                      "timestamp": dt.isoformat(timespec="milliseconds") + off,
                      "content": "" if media else text,
                      "author": {"id": "1", "name": sender, "discriminator": "0000", "nickname": "nick",
                                 "isBot": False},
                      "attachments": [{"id": "9", "url": "https://x/cat.png", "fileName": "cat.png"}] if media else [],
                      "embeds": [], "stickers": [], "reactions": [], "mentions": []})
        want.append((sender, "" if media else text, dt.isoformat() + off, media))
    obj = {"guild": {"id": "1", "name": "G"}, "channel": {"id": "2", "name": "general"}, "messages": items,
           "messageCount": len(items)}
    return _write_json(root / "discord.json", obj), want


def write_discord_csv(root: Path, msgs):
    path, want = root / "discord.csv", []
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow(discord.CSV_HEADER)
        for sender, text, dt, media in msgs:
            dt = dt.replace(second=0)
            date = f"{dt:%m/%d/%Y} {dt.hour % 12 or 12}:{dt:%M} {'PM' if dt.hour >= 12 else 'AM'}"
            w.writerow(["1", sender, date, "" if media else text, "https://x/cat.png" if media else "", ""])
            want.append((sender, "" if media else text, dt.isoformat(), media))
    return path, want


def _mojibake(s: str) -> str:
    return s.encode("utf-8").decode("latin-1")


def write_messenger(root: Path, msgs, split: bool = True):
    """Thread folder, newest first, split over message_1.json (newest) and message_2.json when split."""
    entries, want = [], []
    for sender, text, dt, media in sorted(msgs, key=lambda m: m[2]):
        ms = _epoch(dt) * 1000 + 123
        e = {"sender_name": _mojibake(sender), "timestamp_ms": ms, "is_geoblocked_for_viewer": False}
        if media:
            e["photos"] = [{"uri": "messages/inbox/t/photos/1.jpg", "creation_timestamp": ms // 1000}]
        else:
            e["content"] = _mojibake(text)
        entries.append(e)
        want.append((sender, "" if media else text, _utc(dt), media))
    entries.reverse()
    folder = root / "messages" / "inbox" / "thread_1"
    half = (len(entries) + 1) // 2 if split else len(entries)
    parts = [entries[:half], entries[half:]] if split and len(entries) > 1 else [entries]
    names = sorted({_mojibake(m[0]) for m in msgs})
    for n, part in enumerate(parts, 1):
        _write_json(folder / f"message_{n}.json", {"participants": [{"name": x} for x in names], "messages": part,
                                                   "title": "t", "thread_path": "inbox/thread_1"})
    return folder, want


def _xml_attr(s: str) -> str:
    out = []
    for ch in s:
        cp = ord(ch)
        if ch in '&<>"' or ch in "\t\n\r" or cp > 0xFFFF:
            if cp > 0xFFFF:  # as SMS Backup & Restore writes it: UTF-16 surrogate references
                cp -= 0x10000
                out.append(f"&#{0xD800 + (cp >> 10)};&#{0xDC00 + (cp & 0x3FF)};")
            else:
                out.append(f"&#{cp};")
        else:
            out.append(ch)
    return "".join(out)


def write_sms(root: Path, msgs):
    rows, want = [], []
    for i, (sender, text, dt, media) in enumerate(sorted(msgs, key=lambda m: m[2])):
        ms = _epoch(dt) * 1000 + 456
        sent = i % 3 == 1
        if media:
            text_part = "" if i % 2 else f'<part ct="text/plain" text="{_xml_attr(text)}" />'
            rows.append(f'<mms date="{ms}" msg_box="{2 if sent else 1}" address="+15550100" '
                        f'contact_name="{_xml_attr(sender)}"><parts><part ct="application/smil" text="&lt;smil/&gt;" />'
                        f'<part ct="image/jpeg" text="null" data="AAAA" />{text_part}</parts>'
                        f'<addrs><addr address="+15550100" type="137" /></addrs></mms>')
            want.append((OWNER if sent else sender, "" if i % 2 else text, _utc(dt), True))
        else:
            rows.append(f'<sms address="+15550100" date="{ms}" type="{2 if sent else 1}" body="{_xml_attr(text)}" '
                        f'contact_name="{_xml_attr(sender)}" readable_date="x" />')
            want.append((OWNER if sent else sender, text, _utc(dt), False))
    rows.append('<sms address="+15550100" date="1" type="3" body="draft" contact_name="Bob" />')
    path = root / "sms.xml"
    path.write_text("<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n<!--File Created By SMS Backup-->\n"
                    f'<smses count="{len(rows)}">\n' + "\n".join(rows) + "\n</smses>\n", encoding="utf-8")
    return path, want


def write_slack(root: Path, msgs, folder_name: str = "export"):
    export = root / folder_name
    ids: dict[str, str] = {}
    for sender, *_ in msgs:
        ids.setdefault(sender, f"U{len(ids):04d}")
    _write_json(export / "users.json", [{"id": uid, "name": f"user{uid}", "real_name": name,
                                         "profile": {"real_name": name, "display_name": ""}}
                                        for name, uid in ids.items()])
    _write_json(export / "channels.json", [{"id": "C1", "name": "general"}, {"id": "C2", "name": "random"}])
    days: dict[tuple[str, str], list] = {}
    want = []
    for i, (sender, text, dt, media) in enumerate(sorted(msgs, key=lambda m: m[2])):
        channel = "general" if i % 2 == 0 else "random"
        m = {"type": "message", "user": ids[sender], "text": "" if media else text, "ts": f"{_epoch(dt)}.{i:06d}"}
        if media:
            m["files"] = [{"id": "F1", "name": "a.png"}]
        days.setdefault((channel, dt.strftime("%Y-%m-%d")), []).append(m)
        days[(channel, dt.strftime("%Y-%m-%d"))].append(
            {"type": "message", "subtype": "channel_join", "user": ids[sender], "text": "joined",
             "ts": f"{_epoch(dt)}.{i:06d}"})
        want.append((sender, "" if media else text, _utc(dt), media))
    for (channel, day), items in days.items():
        _write_json(export / channel / f"{day}.json", items)
    return export, want


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def google_date(dt: datetime, sep: str = "\u202f") -> str:
    return (f"{DAYS[dt.weekday()]}, {MONTHS[dt.month - 1]} {dt.day}, {dt.year} at "
            f"{dt.hour % 12 or 12}:{dt:%M:%S}{sep}{'PM' if dt.hour >= 12 else 'AM'} UTC")


def write_google_chat(root: Path, msgs):
    items, want = [], []
    for i, (sender, text, dt, media) in enumerate(msgs):
        m = {"creator": {"name": sender, "email": "a@example.com", "user_type": "Human"},
             "created_date": google_date(dt, "\u202f" if i % 2 else " "), "topic_id": "t", "message_id": str(i)}
        if media:
            m["attached_files"] = [{"original_name": "a.pdf", "export_name": "File-a.pdf"}]
        else:
            m["text"] = text
        items.append(m)
        items.append({"creator": m["creator"], "created_date": m["created_date"], "deletion_metadata": {}})
        want.append((sender, "" if media else text, _utc(dt), media))
    path = _write_json(root / "Groups" / "DM_x" / "messages.json", {"messages": items})
    return path, want


# ---------------------------------------------------------------------------------- hypothesis round trip

_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Cn"))
_SPECIAL = st.sampled_from(["😀", "👍🏽", "🇨🇦", "👨‍👩‍👧", "\n", "é", "Ж", "中", "\u202f", ": ", '"', "&", "<", ",",
                           "#"])
TEXT = st.lists(st.one_of(_CHARS, _SPECIAL), min_size=1, max_size=25).map("".join)
NAME = st.lists(st.one_of(_CHARS, st.sampled_from(["😀", "é", ": ", "#", " ", "-"])), min_size=1,
                max_size=12).map("".join).filter(lambda s: s.strip() and s not in ("(Unknown)", "null"))
DT = st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(2090, 12, 30)).map(
    lambda d: d.replace(microsecond=0))
MESSAGES = st.lists(st.tuples(NAME, TEXT, DT, st.booleans()), min_size=1, max_size=8)

WRITERS = {
    "telegram_json": write_telegram,
    "telegram_json_full": lambda root, msgs: write_telegram(root, msgs, full_account=True),
    "discordchatexporter_json": write_discord_json,
    "discordchatexporter_csv": write_discord_csv,
    "messenger_json": write_messenger,
    "sms_backup_restore_xml": write_sms,
    "slack_export": write_slack,
    "google_chat_json": write_google_chat,
}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_round_trip(fmt):
    @settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(MESSAGES)
    def check(msgs):
        with tempfile.TemporaryDirectory() as tmp:
            path, want = WRITERS[fmt](Path(tmp), msgs)
            result = parse_input(path)
            assert [(m.sender, m.text, m.timestamp, m.media) for m in result.messages] == want
            assert {f[1] for f in result.files} == {fmt.removesuffix("_full")}
    check()


# ------------------------------------------------------------------------------------------ Telegram

def test_telegram_entity_list_concatenated_without_spaces(tmp_path):
    chat = {"name": "c", "messages": [
        {"type": "message", "date": "2023-12-31T21:05", "from": "A",
         "text": [{"type": "bold", "text": "Link:"}, {"type": "link", "text": "https://t.org/"}, " ok", 5]},
        {"type": "service", "date": "2023-12-31T21:06:00", "actor": "A", "action": "phone_call", "text": ""},
        {"type": "message", "date_unixtime": "1704053107", "from": None, "text": "old export"}]}
    path = _write_json(tmp_path / "result.json", chat)
    assert _got(path) == [("A", "Link:https://t.org/ ok", "2023-12-31T21:05:00", False),
                          (None, "old export", "2023-12-31T20:05:07+00:00", False)]


def test_telegram_full_account_saved_messages_and_left_chats(tmp_path):
    msg = {"type": "message", "date": "2023-12-31T08:00:00", "from": "A", "text": "x"}
    obj = {"chats": {"list": [{"type": "saved_messages", "id": 1, "messages": [msg]},
                              {"name": "Bob", "id": 2, "messages": [msg]},
                              {"name": "Bob", "id": 3, "messages": [msg]}]},
           "left_chats": {"list": [{"name": "Old", "id": 4, "messages": [msg]}]}}
    path = _write_json(tmp_path / "result.json", obj)
    assert [m.conversation for m in parse_input(path).messages] == ["Saved Messages", "Bob", "Bob (3)", "Old"]


def test_telegram_chat_without_messages_is_an_error(tmp_path):
    path = _write_json(tmp_path / "result.json", {"chats": {"list": [{"name": "Bob", "id": 2}]}})
    with pytest.raises(InputError, match="messages"):
        parse_input(path)


# ------------------------------------------------------------------------- broken and truncated JSON

@pytest.mark.parametrize("fmt", ["telegram_json", "discordchatexporter_json", "messenger_json", "google_chat_json"])
def test_truncated_json_names_file_and_line(tmp_path, fmt):
    msgs = [("Ann", f"message number {i}", datetime(2023, 1, 1, 10, i), False) for i in range(6)]
    path, _ = WRITERS[fmt](tmp_path, msgs)
    if path.is_dir():
        path = path / "message_1.json"
    data = path.read_text(encoding="utf-8")
    path.write_text(data[: len(data) * 2 // 3], encoding="utf-8")
    with pytest.raises(InputError) as err:
        parse_input(path)
    assert err.value.path.endswith(path.name) and err.value.line is not None
    assert "truncated" in err.value.message


def test_broken_slack_day_file_is_named(tmp_path):
    export, _ = write_slack(tmp_path, [("Ann", "hi", datetime(2023, 1, 1, 10), False)])
    day = next((export / "general").iterdir())
    day.write_text('[{"type": "message", "ts": ', encoding="utf-8")
    with pytest.raises(InputError) as err:
        parse_input(export)
    assert err.value.path == str(day) and err.value.line == 1


def test_slack_zip_error_names_the_zip(tmp_path):
    export, _ = write_slack(tmp_path, [("Ann", "hi", datetime(2023, 1, 1, 10), False)])
    next((export / "general").iterdir()).write_text("[", encoding="utf-8")
    zpath = tmp_path / "slack.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in export.rglob("*"):
            zf.write(f, f.relative_to(export).as_posix())
    with pytest.raises(InputError) as err:
        parse_input(zpath)
    assert err.value.path.startswith(str(zpath)) and "general/" in err.value.path


@pytest.mark.parametrize("obj", [
    {"guild": {"id": "1"}, "channel": {"id": "2"}},
    {"guild": {"id": "1"}, "channel": {"id": "2"}, "messages": {"not": "a list"}},
    {"guild": {"id": "1"}, "channel": {"id": "2"}, "messages": ["not an object"]},
])
def test_discord_header_without_messages_is_an_error(tmp_path, obj):
    with pytest.raises(InputError):
        parse_input(_write_json(tmp_path / "d.json", obj))


@pytest.mark.parametrize("fmt", ["telegram_json", "discordchatexporter_json", "messenger_json", "google_chat_json"])
def test_wrong_shapes_inside_valid_json_raise_input_error(tmp_path, fmt):
    path, _ = WRITERS[fmt](tmp_path, [("Ann", "hi", datetime(2023, 1, 1, 10), False)])
    if path.is_dir():
        path = path / "message_1.json"
    obj = json.loads(path.read_text(encoding="utf-8"))
    holder = obj["chats"]["list"][0] if "chats" in obj else obj
    for bad in (None, 5, "x", [None], [["list"]], [{"timestamp_ms": "soon", "created_date": 7, "timestamp": 3}]):
        holder["messages"] = bad
        path.write_text(json.dumps(obj), encoding="utf-8")
        try:
            parse_input(path)
        except InputError:
            pass


# ---------------------------------------------------------------------------------- Discord CSV

def test_discord_csv_system_rows_and_bad_date(tmp_path):
    path = tmp_path / "d.csv"
    rows = [discord.CSV_HEADER, ["1", "carol", "12/31/2023 8:59 PM", "Joined the server.", "", ""],
            ["1", "bob", "12/31/2023 9:00 PM", 'He said "hi",\nthen left', "", ""],
            ["1", "bob", "12/31/2023 9:01 PM", "Pinned a message.", "", ""]]
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(rows)
    assert _got(path) == [("bob", 'He said "hi",\nthen left', "2023-12-31T21:00:00", False)]
    with open(path, "a", encoding="utf-8", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerow(["1", "bob", "yesterday", "x", "", ""])
    with pytest.raises(InputError) as err:
        parse_input(path)
    assert err.value.line == 6  # the quoted newline makes row 3 two lines


# ---------------------------------------------------------------------------- Messenger / Instagram

def test_mojibake_repair():
    assert fix_mojibake("Ren\u00c3\u00a9e \u00f0\u009f\u0098\u0080") == "Renée 😀"
    assert fix_mojibake("plain") == "plain"
    assert fix_mojibake("déjà") == "déjà"  # not mojibake: left alone
    assert fix_mojibake("€ sign") == "€ sign"


def test_messenger_single_file_newest_first_is_reversed_and_system_entries_dropped(tmp_path):
    obj = {"participants": [{"name": "Zo\u00c3\u00ab"}], "messages": [
        {"sender_name": "Zo\u00c3\u00ab", "timestamp_ms": 3000,
         "content": "third \u00e2\u009c\u0088\u00ef\u00b8\u008f"},
        {"sender_name": "A", "timestamp_ms": 2000, "audio_files": [{"uri": "a.mp4"}]},
        {"sender_name": "A", "timestamp_ms": 1500, "content": "A added B to the group.", "users": [{"name": "B"}]},
        {"sender_name": "A", "timestamp_ms": 1000, "content": "first"}]}
    path = _write_json(tmp_path / "inbox" / "t" / "message_1.json", obj)
    assert _got(path) == [("A", "first", "1970-01-01T00:00:01+00:00", False),
                          ("A", "", "1970-01-01T00:00:02+00:00", True),
                          ("Zoë", "third ✈️", "1970-01-01T00:00:03+00:00", False)]
    assert parse_input(path).messages[0].source == "messenger_json"


def test_split_thread_folder_and_forced_format(tmp_path):
    msgs = [("Ann", f"m{i}", datetime(2023, 1, 1, 10, i), False) for i in range(5)]
    folder, want = write_messenger(tmp_path, msgs)
    assert sorted(p.name for p in folder.iterdir()) == ["message_1.json", "message_2.json"]
    assert _got(folder) == want
    assert _got(folder, "messenger_json") == want  # forced file format still merges the thread folder
    assert _got(tmp_path) == want  # found by walking down from the export root
    assert len(_got(folder / "message_2.json")) == 2  # the 2 oldest


def test_meta_source_told_apart_by_path(tmp_path):
    tmp_path = tmp_path / "home_of_an_instagram_fan"  # a mere mention of instagram does not count
    obj = {"participants": [], "messages": [{"sender_name": "a", "timestamp_ms": 1000, "content": "hi"}]}
    ig = _write_json(tmp_path / "your_instagram_activity" / "messages" / "inbox" / "a_1" / "message_1.json", obj)
    fb = _write_json(tmp_path / "fb" / "messages" / "inbox" / "a_1" / "message_1.json", obj)
    assert detect_format(ig).name == "instagram_json" and detect_format(fb).name == "messenger_json"
    assert detect_format(ig.parent).name == "instagram_json" and detect_format(fb.parent).name == "messenger_json"
    assert parse_input(ig.parent).messages[0].source == "instagram_json"


# ------------------------------------------------------------------------------------------- Slack

def test_slack_zip_equals_folder_both_layouts(tmp_path):
    msgs = [("Ann", "hi <@U0001> &amp; :tada:", datetime(2023, 1, 1, 10), False),
            ("Bob", "", datetime(2023, 1, 2, 9), True), ("Ann", "later", datetime(2023, 1, 2, 11), False)]
    export, want = write_slack(tmp_path, msgs)
    folder_msgs = [m.to_dict() for m in parse_input(export).messages]
    assert [(m["sender"], m["text"], m["timestamp"], m["media"]) for m in folder_msgs] == want
    for prefix in ("", "slack_export/"):  # entries at the archive root, or under one top-level folder
        zpath = tmp_path / f"export{len(prefix)}.zip"
        with zipfile.ZipFile(zpath, "w") as zf:
            for f in sorted(export.rglob("*")):
                if f.is_file():
                    zf.write(f, prefix + f.relative_to(export).as_posix())
        assert [m.to_dict() for m in parse_input(zpath).messages] == folder_msgs


def test_slack_fixture_zip_equals_folder(fixtures_dir):
    a = [m.to_dict() for m in parse_input(fixtures_dir / "synthetic" / "slack_export").messages]
    b = [m.to_dict() for m in parse_input(fixtures_dir / "synthetic" / "slack_export.zip").messages]
    assert a == b and len(a) == 9


def test_slack_bot_and_unknown_users(tmp_path):
    export, _ = write_slack(tmp_path, [("Ann", "hi", datetime(2023, 1, 1, 10), False)])
    _write_json(export / "general" / "2023-01-03.json", [
        {"type": "message", "subtype": "bot_message", "bot_id": "B1", "username": "deploybot", "text": "ok",
         "ts": "1672740000.000100"},
        {"type": "message", "subtype": "bot_message", "bot_id": "B2", "text": "anon", "ts": "1672740001.000100"},
        {"type": "message", "user": "UGONE", "text": "who", "ts": "1672740002.000100"},
        {"type": "message", "subtype": "pinned_item", "user": "U0000", "text": "pinned", "ts": "1672740003.000100"}])
    assert [m.sender for m in parse_input(export).messages] == ["Ann", "deploybot", "B2", "UGONE"]


# ------------------------------------------------------------------------------------------ SMS

def test_surrogate_reference_merging():
    assert merge_surrogate_refs("&#55357;&#56832;") == "&#128512;"
    assert merge_surrogate_refs("&#xD83D;&#xDE00;&#55357;&#56397;") == "&#128512;&#128077;"
    assert merge_surrogate_refs("a&#55357;b") == "a&#65533;b"  # lone high surrogate
    assert merge_surrogate_refs("&#56832;&#55357;") == "&#65533;&#65533;"  # wrong order
    assert merge_surrogate_refs("&#55000;&#10;&#65;") == "&#55000;&#10;&#65;"  # not surrogates: untouched


def test_sms_entities_refused_and_broken_xml_named(tmp_path):
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE smses [<!ENTITY a "aaaaaaaaaa">]>\n'
                    '<smses><sms body="&a;" date="1" type="1" address="1" /></smses>', encoding="utf-8")
    with pytest.raises(InputError):
        parse_input(bomb)  # not detected: a DOCTYPE before <smses> is not what the app writes
    with pytest.raises(InputError, match="DOCTYPE"):
        parse_input(bomb, "sms_backup_restore_xml")
    broken = tmp_path / "broken.xml"
    broken.write_text('<?xml version="1.0"?>\n<smses>\n<sms body="unclosed date="1" />\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        parse_input(broken)
    assert err.value.path.endswith("broken.xml") and err.value.line is not None


def test_sms_unknown_contact_falls_back_to_address(tmp_path):
    path = tmp_path / "s.xml"
    path.write_text('<smses><sms address="+1555" date="1704074880000" type="1" body="code 1" '
                    'contact_name="(Unknown)" /></smses>', encoding="utf-8")
    assert _got(path) == [("+1555", "code 1", "2024-01-01T02:08:00+00:00", False)]


# ----------------------------------------------------------------------------------- Google Chat

@pytest.mark.parametrize("value,iso", [
    ("Sunday, December 31, 2023 at 9:05:07\u202fPM UTC", "2023-12-31T21:05:07+00:00"),
    ("Monday, January 1, 2024 at 12:00:01 AM UTC", "2024-01-01T00:00:01+00:00"),
    ("Monday, January 1, 2024 at 12:30:00 PM PST", "2024-01-01T12:30:00-08:00"),
    ("Monday, 1 January 2024 at 13:30:00 GMT+5:30", "2024-01-01T13:30:00+05:30"),
    ("Monday, January 1, 2024 at 1:30 PM Mars/Olympus", None),
    ("Monday, January 1, 2024 at 1:30 PM XYZ", "2024-01-01T13:30:00"),
])
def test_google_chat_dates(value, iso):
    if iso is None:
        with pytest.raises(ValueError):
            google_chat.parse_created_date(value)
    else:
        assert google_chat.parse_created_date(value) == iso


def test_google_chat_bad_date_is_input_error(tmp_path):
    path = _write_json(tmp_path / "messages.json", {"messages": [
        {"creator": {"name": "A"}, "created_date": "yesterday", "text": "x"}]})
    with pytest.raises(InputError, match="created_date"):
        parse_input(path)


# -------------------------------------------------------------------------------------- iMessage

def _ts_int(n: int) -> bytes:
    if n <= 127:
        return bytes([n])
    return b"\x81" + n.to_bytes(2, "little")


def _attributed_body(text: str) -> bytes:
    raw = text.encode("utf-8")
    return (b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x12NSAttributedString\x00\x84\x84\x08NSObject"
            b"\x00\x85\x92\x84\x84\x84\x08NSString\x01\x94\x84\x01+" + _ts_int(len(raw)) + raw + b"\x86\x84\x02iI")


def _make_chat_db(path: Path, seconds: bool = False) -> None:
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE handle (ROWID INTEGER PRIMARY KEY, id TEXT, service TEXT);
        CREATE TABLE chat (ROWID INTEGER PRIMARY KEY, chat_identifier TEXT, display_name TEXT);
        CREATE TABLE message (ROWID INTEGER PRIMARY KEY, text TEXT, attributedBody BLOB, handle_id INTEGER,
          date INTEGER, is_from_me INTEGER, item_type INTEGER DEFAULT 0, associated_message_type INTEGER DEFAULT 0,
          cache_has_attachments INTEGER DEFAULT 0);
        CREATE TABLE chat_message_join (chat_id INTEGER, message_id INTEGER);
        INSERT INTO handle VALUES (1, '+15550100', 'iMessage');
        INSERT INTO chat VALUES (1, '+15550100', '');
    """)
    long_text = "long ✨ " * 40  # > 255 bytes: 0x81 length prefix
    rows = [(1, "hello", None, 1, 0, 0, 0, 0), (2, None, _attributed_body(long_text), 0, 1, 0, 0, 0),
            (3, "Loved “hello”", None, 1, 0, 0, 2000, 0), (4, None, None, 1, 0, 2, 0, 0),
            (5, "\ufffc", None, 0, 1, 0, 0, 1), (6, "\ufffcwith caption", None, 1, 0, 0, 0, 1)]
    for rowid, text, body, handle, me, item, assoc, att in rows:
        date = rowid * 60 if seconds else rowid * 60 * 10**9
        con.execute("INSERT INTO message VALUES (?,?,?,?,?,?,?,?,?)",
                    (rowid, text, body, handle, 694224000 * (1 if seconds else 10**9) + date, me, item, assoc, att))
        con.execute("INSERT INTO chat_message_join VALUES (1, ?)", (rowid,))
    con.commit()
    con.close()


@pytest.mark.parametrize("seconds", [False, True])
def test_imessage_db_read_only_and_rules(tmp_path, seconds):
    db = tmp_path / "chat.db"
    _make_chat_db(db, seconds)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    got = _got(db)
    assert got == [("+15550100", "hello", "2023-01-01T00:01:00+00:00", False),
                   ("Me", "long ✨ " * 40, "2023-01-01T00:02:00+00:00", False),
                   ("Me", "", "2023-01-01T00:05:00+00:00", True),
                   ("+15550100", "with caption", "2023-01-01T00:06:00+00:00", False)]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.db"]  # no journal or wal left behind


def test_other_sqlite_is_not_imessage_and_a_corrupt_db_is_named_as_such(tmp_path):
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    assert detect_format(other) is None
    corrupt = tmp_path / "chat.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x00garbage" * 20)
    for fmt in (None, "imessage_chatdb"):
        with pytest.raises(InputError) as err:
            parse_input(corrupt, fmt)
        assert "binary" not in err.value.message and "SQLite" in err.value.message, err.value.message


# ------------------------------------------------------------------------------------- detection

OTHER_FORMATS = {
    "whatsapp.txt": "12/31/23, 9:05 PM - Alice: {\"messages\": [\"type\": \"message\", \"date\": \"x\"]}\n",
    "generic.csv": "timestamp,sender,text\n2023-12-31T21:05:00,Alice,\"AuthorID,Author\"\n",
    "plain.txt": "Alice: \"guild\": {} \"channel\": {}\nBob: <smses>\n",
    "line.txt": "[LINE] Chat history with Bob\nSaved on: 2024/01/01 10:00\n\n2023/12/31(Sun)\n21:05\tAlice\tHi\n",
    "openai.jsonl": '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}\n',
    "sharegpt.jsonl": '{"conversations": [{"from": "human", "value": "\\"type\\": \\"message\\""}]}\n',
    "slack_day.json": '[{"type": "message", "text": "hi", "ts": "1.0", "user": "U1"}]',
    "array.json": '[{"messages": [{"type": "message", "date": "2023-01-01T00:00:00"}]}]',
    "empty_messages.json": '{"messages": []}',
    "meta_like_text.txt": 'see "messages": [ "sender_name": "timestamp_ms": ]',
    "xml_other.xml": "<?xml version='1.0'?><root><smses/></root>",
}


@pytest.mark.parametrize("name", sorted(OTHER_FORMATS))
def test_detectors_do_not_claim_other_formats(tmp_path, name):
    path = tmp_path / name
    path.write_text(OTHER_FORMATS[name], encoding="utf-8")
    sniff = Sniff(path)
    assert [p.name for p in MY_PARSERS if not p.is_dir and p.detect(sniff)] == []


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_each_writer_output_claimed_by_exactly_one_of_ours(tmp_path, fmt):
    path, _ = WRITERS[fmt](tmp_path, [("Ann", "hi", datetime(2023, 1, 1, 10), False)])
    sniff = Sniff(path)
    claimed = {p.name for p in MY_PARSERS if p.is_dir == path.is_dir() and p.detect(sniff)}
    assert claimed == {fmt.removesuffix("_full")}
    assert detect_format(path).name == fmt.removesuffix("_full")


def test_folder_detectors_ignore_plain_folders(tmp_path):
    (tmp_path / "users.json").write_text("[]", encoding="utf-8")  # users.json alone is not Slack
    (tmp_path / "message_1.json").write_text('{"x": 1}', encoding="utf-8")  # not the Meta shape
    sniff = Sniff(tmp_path)
    assert [p.name for p in MY_PARSERS if p.is_dir and p.detect(sniff)] == []


# ------------------------------------------------------------------------------ training JSONL

def test_training_jsonl_errors_name_line_2(tmp_path):
    bad = tmp_path / "openai.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [{"role": "user", "cont\n'
                   '{"messages": [{"role": "assistant", "content": "ok"}]}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        parse_input(bad)
    assert err.value.line == 2
    role = tmp_path / "sharegpt.jsonl"
    role.write_text('{"conversations": [{"from": "human", "value": "hi"}]}\n'
                    '{"conversations": [{"from": "narrator", "value": "once"}]}\n', encoding="utf-8")
    with pytest.raises(InputError) as err:
        parse_input(role)
    assert err.value.line == 2 and "narrator" in err.value.message


def test_imessage_wal_database_is_read_without_files_beside_it(tmp_path):
    """A live Messages database is in WAL mode with recent rows only in chat.db-wal: those are read,
    and nothing (-shm, a new -wal) is created or changed next to the user's files."""
    db = tmp_path / "chat.db"
    _make_chat_db(db)
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("INSERT INTO message VALUES (7, 'only in the wal', NULL, 1, ?, 0, 0, 0, 0)",
                (694224000 * 10**9 + 420 * 10**9,))
    con.execute("INSERT INTO chat_message_join VALUES (1, 7)")
    con.commit()
    # keep the WAL as a live Messages app does: copy the files while a connection holds them open
    live = tmp_path / "live"
    live.mkdir()
    for name in ("chat.db", "chat.db-wal"):
        (live / name).write_bytes((tmp_path / name).read_bytes())
    con.close()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in live.iterdir()}
    got = _got(live / "chat.db")
    assert got[-1][1] == "only in the wal"
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in live.iterdir()} == before


def test_truncated_chat_db_is_named_truncated(tmp_path):
    db = tmp_path / "chat.db"
    _make_chat_db(db)
    data = db.read_bytes()
    cut = tmp_path / "cut" / "chat.db"
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(InputError) as err:
        parse_input(cut)
    assert "truncated SQLite database" in err.value.message and "chat.db" in err.value.format()
    assert sorted(p.name for p in cut.parent.iterdir()) == ["chat.db"]

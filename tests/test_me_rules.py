"""Who is "me": one --me across WhatsApp + SMS + iMessage, and Discord display names.

SMS Backup & Restore and iMessage know the device owner (`type="2"`, `is_from_me`) but not their
name ("Me"); DiscordChatExporter shows a username and a display name / nickname. The tests build
every export themselves.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from graftkit.errors import UserError
from graftkit.prepare.pipeline import PrepareOptions, prepare
from test_parsers_structured import _make_chat_db, write_discord_json, write_sms


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()]


def test_one_me_covers_whatsapp_sms_and_imessage(tmp_path: Path) -> None:
    wa = tmp_path / "WhatsApp Chat with Bob.txt"
    wa.write_text("31/12/2023, 21:05 - Bob: hi Alex\n31/12/2023, 21:06 - Alex Kim: hey Bob\n"
                  "31/12/2023, 21:07 - Bob: dinner?\n31/12/2023, 21:08 - Alex Kim: sure\n", encoding="utf-8")
    msgs = [("Bob", f"sms {i}", datetime(2023, 1, 1, 10, i), False) for i in range(6)]
    sms_path, _ = write_sms(tmp_path, msgs)
    db = tmp_path / "chat.db"
    _make_chat_db(db)
    out = tmp_path / "out"
    stats = prepare(PrepareOptions(inputs=[str(wa), str(sms_path), str(db)], out=str(out), me=["Alex Kim"],
                                   progress=False, val_fraction=0))
    rows = _rows(out)
    mine = [r for r in rows if r["is_me"]]
    assert {r["source"] for r in mine} == {"whatsapp_txt", "sms_backup_restore_xml", "imessage_chatdb"}
    assert {r["sender"] for r in mine} == {"Alex Kim"}
    assert not any(r["sender"] == "Me" for r in rows)
    assert stats["me"] == ["Alex Kim"]
    train = (out / "sharegpt_train.jsonl").read_text(encoding="utf-8")
    assert '"from": "gpt", "value": "sms 1"' in train  # an SMS the owner sent is a "gpt" turn


def test_without_me_the_owner_is_listed_as_me(tmp_path: Path) -> None:
    sms_path, _ = write_sms(tmp_path, [("Bob", f"sms {i}", datetime(2023, 1, 1, 10, i), False) for i in range(4)])
    with pytest.raises(UserError) as err:
        prepare(PrepareOptions(inputs=[str(sms_path)], out=str(tmp_path / "out"), progress=False))
    assert "Me (" in err.value.message


@pytest.mark.parametrize("me", ["Alex Kim", "alex kim", "alexkim", "AK"])
def test_discord_me_matches_username_nickname_and_global_name(tmp_path: Path, me: str) -> None:
    msgs = [("alexkim" if i % 2 else "bob", f"line {i}", datetime(2023, 1, 1, 10, i), False) for i in range(6)]
    path, _ = write_discord_json(tmp_path, msgs)
    obj = json.loads(path.read_text(encoding="utf-8"))
    for m in obj["messages"]:
        if m["author"]["name"] == "alexkim":
            m["author"]["nickname"] = "Alex Kim"
            m["author"]["globalName"] = "AK"
        elif m["author"]["name"] == "bob":
            m["author"]["nickname"] = "Bobby"
    path.write_text(json.dumps(obj), encoding="utf-8")
    out = tmp_path / "out"
    stats = prepare(PrepareOptions(inputs=[str(path)], out=str(out), me=[me], progress=False, val_fraction=0))
    assert stats["me"] == ["alexkim"]
    assert {r["text"] for r in _rows(out) if r["is_me"]} == {"line 1", "line 3", "line 5"}


def test_discord_unknown_me_still_suggests(tmp_path: Path) -> None:
    msgs = [("alexkim" if i % 2 else "bob", f"line {i}", datetime(2023, 1, 1, 10, i), False) for i in range(4)]
    path, _ = write_discord_json(tmp_path, msgs)
    with pytest.raises(UserError, match="matches no sender"):
        prepare(PrepareOptions(inputs=[str(path)], out=str(tmp_path / "out"), me=["Zed Q"], progress=False))


@pytest.mark.parametrize("me", ["Alex Kim", "alexk", "@alexk", "Alex"])
def test_telegram_full_export_knows_its_owner(tmp_path: Path, me: str) -> None:
    """A full Telegram export names its owner (personal_information): --me may be the display name,
    the username or the first + last name, and the owner's messages take the --me name."""
    items = []
    for i in range(6):
        mine = i % 2 == 1
        items.append({"id": i, "type": "message", "date": f"2023-01-01T10:0{i}:00",
                      "from": "Alex" if mine else "Bob", "from_id": "user42" if mine else "user7",
                      "text": f"line {i}"})
    obj = {"about": "...", "personal_information": {"user_id": 42, "first_name": "Alex", "last_name": "Kim",
                                                   "username": "alexk", "phone_number": "+44 7700 900123"},
           "chats": {"about": "...", "list": [{"name": "Bob", "type": "personal_chat", "id": 7,
                                               "messages": items}]}}
    path = tmp_path / "result.json"
    path.write_text(json.dumps(obj), encoding="utf-8")
    out = tmp_path / "out"
    prepare(PrepareOptions(inputs=[str(path)], out=str(out), me=[me], progress=False, val_fraction=0))
    rows = _rows(out)
    assert {r["text"] for r in rows if r["is_me"]} == {"line 1", "line 3", "line 5"}
    assert {r["sender"] for r in rows if r["is_me"]} == {me}

"""Placeholders of every language table never reach training, and stay marked in messages.jsonl.

Each test builds a WhatsApp export (Android and iOS) from every entry of one language table,
interleaved with real messages, runs the whole pipeline and reads the output files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftkit.parsers.placeholders import coarse, load_tables, placeholder_kind
from graftkit.prepare.pipeline import PrepareOptions, prepare

TABLES = load_tables()
LRM = "\u200e"


def _placeholders(table: dict[str, list[str]], ios: bool) -> list[tuple[str, str]]:
    """(text as the export writes it, expected kind) for every entry of one table."""
    out: list[tuple[str, str]] = []
    for key, values in table.items():
        for i, v in enumerate(values):
            if key == "notice":
                continue  # not messages at all: test_ios_notices_are_not_messages
            if key == "attached":
                if not ios:
                    out += [(f"IMG-20230101-WA{i:04d}.jpg ({v})", "media"),
                            (f"PTT-20230101-WA{i:04d}.opus ({v})", "media"),
                            (f"AUD-20230101-WA{i:04d}. ({v})", "media"),
                            (f"Ana Lima.vcf ({v})", "media"), (f"{LRM}Alex Kim.vcf ({v})", "media"),
                            (f"plan v2.pdf ({v})", "media")]
            elif key == "attached_ios":
                if ios:
                    out += [(f"<{v}: 00000012-PHOTO-2023-01-01-12-00-{i:02d}.jpg>", "media"),
                            (f"Notes 2024.txt {LRM}<{v}: 000000{i + 10:02d}-Notes 2024.txt>", "media")]
            elif key == "media" and ios and not v.startswith(("<", "‹")):
                # iOS names the file before the wording: "Notes.txt \u200edocument omitted"
                out += [(v, key), (f"Notes 2024.txt {LRM}{v}", key), (f"Budget.pdf • {LRM}2 pages {LRM}{v}", key)]
            elif key == "poll":
                out.append((f"{v}\nWhere do we eat?\nOPTION: Pizza (2 votes)", "poll"))
            elif key == "location":
                out += [(v, "location"), (f"{v}: https://maps.google.com/?q=52.37{i},4.89", "location")]
            else:
                out.append((v, key))
                if key == "deleted":
                    out.append((v.rstrip(".") + ".", key))
    return out


def _export(placeholders: list[tuple[str, str]], ios: bool) -> str:
    lines = []
    for i, (text, _) in enumerate(placeholders):
        pair = (("Alex", f"real question number {i}"), ("Sam", f"real answer number {i}"))
        for j, (who, real) in enumerate(pair):
            minute = (2 * i + j) % 60
            hour = 10 + (2 * i + j) // 60
            lines.append(f"[31.12.23, {hour}:{minute:02d}:00] {who}: {real}" if ios else
                         f"31/12/2023, {hour}:{minute:02d} - {who}: {real}")
        sender = "Sam" if i % 2 else "Alex"
        if ios:  # iOS: the line and the text both start with U+200E
            lines.append(f"{LRM}[31.12.23, 23:{i % 60:02d}:30] {sender}: {LRM}{text}")
        else:
            lines.append(f"31/12/2023, 23:{i % 60:02d} - {sender}: {text}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("lang", sorted(TABLES))
def test_no_placeholder_reaches_training(tmp_path: Path, lang: str) -> None:
    for ios in (False, True):
        phs = _placeholders(TABLES[lang], ios)
        src = tmp_path / f"WhatsApp Chat {lang} {'ios' if ios else 'android'}.txt"
        src.write_text(_export(phs, ios), encoding="utf-8")
        out = tmp_path / ("out_ios" if ios else "out_android")
        stats = prepare(PrepareOptions(inputs=[str(src)], out=str(out), me=["Sam"], progress=False,
                                       session_gap=None, val_fraction=0.2, window_turns=8))
        training = "".join((out / f).read_text(encoding="utf-8") for f in (
            "sharegpt_train.jsonl", "sharegpt_val.jsonl", "sharegpt_format.jsonl", "corpus_train.txt",
            "corpus_val.txt"))
        for text, _ in phs:
            first_line = text.split("\n")[0]
            assert first_line not in training, (lang, ios, text)
        assert "maps.google" not in training and "<URL>" not in training and "OPTION" not in training
        assert training.count("real answer number") >= len(phs) * 2  # real messages all kept (x3 files)
        rows = [json.loads(line) for line in (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()]
        marked = [r for r in rows if r["kind"] != "text"]
        assert len(marked) == len(phs), (lang, ios)
        for r, (_, kind) in zip(marked, phs):
            assert r["placeholder"] == kind and r["kind"] == coarse(kind), (lang, ios, r)
        assert sum(stats["dropped"][k] for k in ("media", "deleted", "call", "location", "view_once", "poll")) \
            == len(phs)
        assert stats["dropped"]["location"] == sum(k == "location" for _, k in phs)


@pytest.mark.parametrize("lang", sorted(TABLES))
def test_ios_notices_are_not_messages(tmp_path: Path, lang: str) -> None:
    """iOS writes the encryption and security-code notices under the contact's name, the text starting
    with a mark: they are no messages, even from a sender who also writes real ones."""
    notices = TABLES[lang].get("notice", [])
    lines = ["[31.12.23, 10:00:00] Ben: a real message"]
    for i, v in enumerate(notices):
        lines += [f"[31.12.23, 11:{i:02d}:00] Ben: {LRM}{LRM}{v} Ben Ortiz. {LRM}More.",
                  f"[31.12.23, 12:{i:02d}:00] Ben: {LRM}a real message {i} that starts with a mark"]
    src = tmp_path / "chat.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from graftkit.parsers import parse_input
    texts = [m.text for m in parse_input(src).messages]
    assert texts == ["a real message"] + [f"a real message {i} that starts with a mark" for i in range(len(notices))]


def test_every_language_of_the_issue_has_a_full_table() -> None:
    wanted = {"en", "de", "fr", "es", "it", "pt_BR", "pt_PT", "nl", "ru", "uk", "pl", "cs", "tr", "ar", "hi",
              "id", "vi", "ja", "ko", "zh", "th"}
    assert wanted <= set(TABLES)
    for lang in wanted:
        assert {"media", "attached", "deleted", "call", "location", "poll", "notice"} <= set(TABLES[lang]), lang


@pytest.mark.parametrize("text", [
    "the part about sizes was omitted", "ok :)", "see it (now)", "location?", "my notes.txt (draft)",
    "POLL results tomorrow", "null and void", "https://example.com/maps", "I deleted this message already",
    "the image omitted", "is the document omitted?", "check https://foursquare.com/v/123 later", "a <3 b",
])
def test_real_messages_are_not_placeholders(text: str) -> None:
    assert placeholder_kind(text) is None


@pytest.mark.parametrize("text,kind", [
    ("\u200e<attached: 00000003-AUDIO-2023-01-01-10-00-00.opus>", "media"),
    ("IMG-20230101-WA0001.jpg (some tag in an unknown language)", "media"),
    ("‹Без медиафайлов›", "media"), ("You deleted this message.", "deleted"), ("image absente", "media"),
    ("Dokument weggelassen", "media"), ("Ortsangabe: https://maps.google.com/?q=1.0,2.0", "location"),
    # issue 25: file names before the wording, any label language, old iOS and Android shapes
    ("Notes.txt \u200edocument omitted", "media"), ("Budget.pdf • \u200e2 pages \u200edocument omitted", "media"),
    ("Notes.txt \u200e<attached: 00000046-Notes.txt>", "media"),
    ("\u200e<συνημμένο: 00000053-PHOTO-2022-03-27-21-53-30.jpg>", "media"),
    ("< attached: 00000042-PHOTO-2020-06-07-15-13-20.jpg >", "media"),
    ("2015-08-04-PHOTO-00004762.jpg <\u200eattached>", "media"),
    ("\u200eAlex.vcf (файл добавлен)", "media"), ("TR.vcf (soubor byl přiložen)", "media"),
    ("AUD-20190101-WA0000. (file attached)", "media"), ("أنت حذفت هذه الرسالة.", "deleted"),
    ("Pimlico Gardens (London, United Kingdom): https://foursquare.com/v/4e89af95e5fa82ad4c0aa03b", "location"),
])
def test_issue_examples(text: str, kind: str) -> None:
    assert placeholder_kind(text) == kind

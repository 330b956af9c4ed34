"""prepare_training_data.py: shaping, split, senders, tokenizer report, the CLI and its failure modes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
import re
from pathlib import Path

import pytest

from graftkit.corpus import END, ME, THEM
from graftkit.errors import UserError
from graftkit.messages import Message
from graftkit.prepare.pipeline import PrepareOptions, parse_duration, prepare
from graftkit.prepare.senders import ask_me, match_me
from graftkit.prepare.shaping import (ShapeStats, build_sessions, clean_text, dedupe_messages,
                                      group_by_conversation, session_samples)
from graftkit.prepare.split import assign_split
from graftkit.prepare.tokenizer_report import load_token_counter, percentile, token_report

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "prepare_training_data.py"
OUTPUTS = ("messages.jsonl", "sharegpt_format.jsonl", "sharegpt_train.jsonl", "sharegpt_val.jsonl",
           "corpus_train.txt", "corpus_val.txt", "stats.json")


def msg(sender: str | None, text: str, ts: str | None, conv: str = "c1", media: bool = False) -> Message:
    return Message(sender=sender, text=text, timestamp=ts, conversation=conv, source="test", media=media)


def sessions_of(messages: list[Message], me: str = "Me", **kw):
    is_me = {m.sender: m.sender == me for m in messages}
    stats = ShapeStats()
    return build_sessions(group_by_conversation(messages), is_me, stats=stats, **kw), stats


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------
# shaping

def test_clean_text_drops_placeholders_and_cuts_edit_marker() -> None:
    assert clean_text("<Media omitted>", False) == (None, "media")
    assert clean_text("\u200eimage omitted", False) == (None, "media")
    assert clean_text("\u200e<attached: 00000012-PHOTO-2023-12-31.jpg>", False) == (None, "media")
    assert clean_text("look at this", True) == (None, "media")
    assert clean_text("This message was deleted", False) == (None, "deleted")
    assert clean_text("   \n ", False) == (None, "empty")
    assert clean_text("see you soon <This message was edited>", False) == ("see you soon", None)
    assert clean_text("the part about sizes was omitted", False) == ("the part about sizes was omitted", None)
    assert clean_text("  two\nlines ", False) == ("two\nlines", None)


def test_merge_within_gap_and_sessions_at_silences() -> None:
    msgs = [
        msg("Ann", "hey", "2024-01-01T10:00:00"),
        msg("Ann", "you there?", "2024-01-01T10:03:00"),      # merged (3 min)
        msg("Me", "yes", "2024-01-01T10:04:00"),
        msg("Me", "what's up", "2024-01-01T10:30:00"),        # not merged (26 min > 10 min)
        msg("Ann", "<Media omitted>", "2024-01-01T10:31:00"),  # dropped
        msg("Ann", "ok", "2024-01-01T18:00:00"),              # new session (7.5 h)
        msg("Me", "sure", "2024-01-01T18:01:00"),
    ]
    sessions, stats = sessions_of(msgs)
    assert [[(t.sender, t.text) for t in s.turns] for s in sessions] == [
        [("Ann", "hey\nyou there?"), ("Me", "yes"), ("Me", "what's up")],
        [("Ann", "ok"), ("Me", "sure")],
    ]
    assert stats.merged == 1 and stats.dropped["media"] == 1
    assert sessions[0].end < sessions[1].start
    # --session-gap off: one session; --merge-gap off: nothing merged
    sessions, _ = sessions_of(msgs, session_gap=None, merge_gap=None)
    assert len(sessions) == 1 and len(sessions[0].turns) == 6


def test_untimed_conversations_are_one_session_or_windows() -> None:
    msgs = [msg("Me" if i % 2 else "Ann", f"line {i}", None) for i in range(10)]
    by_window, _ = sessions_of(msgs, untimed="window", window_turns=4)
    assert [len(s.turns) for s in by_window] == [4, 4, 2]
    whole, _ = sessions_of(msgs, untimed="conversation", window_turns=4)
    assert [len(s.turns) for s in whole] == [10]


def test_windows_overlap_trim_and_alternate() -> None:
    msgs = [msg("Me" if i % 2 else "Ann", f"t{i}", f"2024-01-01T10:{i:02d}:00") for i in range(10)]
    (session,), _ = sessions_of(msgs, merge_gap=None)
    drops: Counter = Counter()
    samples = session_samples(session, window_turns=4, window_overlap=1, counts=drops)
    # stride 3: windows start at 0, 3, 6; trailing turns of others are trimmed
    assert [[t for _, t in s] for s in samples] == [["t0", "t1", "t2", "t3"], ["t3", "t4", "t5"],
                                                    ["t6", "t7", "t8", "t9"]]
    assert all(s[-1][0] == "assistant" for s in samples)
    # a window without any turn of the person is no sample
    only_them = [msg("Ann", "a", "2024-01-01T10:00:00"), msg("Bob", "b", "2024-01-01T10:01:00")]
    (s2,), _ = sessions_of(only_them)
    assert session_samples(s2, counts=drops) == [] and drops["no_me_turn"] == 1


def test_group_chat_prefixes_and_system_prompt() -> None:
    msgs = [msg("Ann", "hi all", "2024-01-01T10:00:00"), msg("Bob", "yo", "2024-01-01T10:01:00"),
            msg("Me", "hey!", "2024-01-01T10:02:00")]
    (session,), _ = sessions_of(msgs)
    (auto,) = session_samples(session, system_prompt="You are Me.")
    assert auto == [("system", "You are Me."), ("user", "Ann: hi all\nBob: yo"), ("assistant", "hey!")]
    (never,) = session_samples(session, group_names="never")
    assert never == [("user", "hi all\nyo"), ("assistant", "hey!")]
    (dm,), _ = sessions_of([msg("Ann", "hi", "2024-01-01T10:00:00"), msg("Me", "hey", "2024-01-01T10:01:00")])
    assert session_samples(dm) == [[("user", "hi"), ("assistant", "hey")]]
    assert session_samples(dm, group_names="always") == [[("user", "Ann: hi"), ("assistant", "hey")]]


def test_sample_may_start_with_me_but_needs_min_turns() -> None:
    (s,), _ = sessions_of([msg("Me", "hello?", "2024-01-01T10:00:00"), msg("Ann", "hi", "2024-01-01T10:01:00"),
                           msg("Me", "how are you", "2024-01-01T10:02:00")], merge_gap=None)
    assert session_samples(s) == [[("assistant", "hello?"), ("user", "hi"), ("assistant", "how are you")]]
    (lone,), _ = sessions_of([msg("Me", "hello?", "2024-01-01T10:00:00"), msg("Ann", "hi", "2024-01-01T10:01:00")])
    drops: Counter = Counter()
    assert session_samples(lone, counts=drops) == [] and drops["too_short"] == 1


def test_dedupe_double_export_but_keep_coincidences() -> None:
    chat = [msg("Me", f"m{i}", f"2024-01-01T10:{i:02d}:00", conv="a.txt") for i in range(20)]
    chat.append(msg("Me", "ok", "2024-01-01T11:00:00", conv="a.txt"))
    chat.append(msg("Me", "ok", "2024-01-01T11:00:00", conv="a.txt"))  # real repeat in one chat: kept
    again = [Message(m.sender, m.text, m.timestamp, "a (1).txt", "test") for m in chat[5:]]  # partial re-export
    other = [msg("Me", "m3", "2024-01-01T10:03:00", conv="b.txt"), msg("Ann", "x", "2024-01-01T12:00:00", "b.txt"),
             msg("Me", "y", "2024-01-01T12:01:00", "b.txt"), msg("Ann", "z", "2024-01-01T12:02:00", "b.txt")]
    kept, dropped = dedupe_messages(chat + again + other)
    assert dropped == len(again)
    assert [m.conversation for m in kept].count("b.txt") == 4  # one shared "m3" is a coincidence
    assert [m.text for m in kept].count("ok") == 2


def test_parse_duration() -> None:
    assert parse_duration("90s") == 90 and parse_duration("10m") == 600 and parse_duration("6h") == 21600
    assert parse_duration("15") == 900 and parse_duration("off") is None
    with pytest.raises(ValueError):
        parse_duration("soon")


# ---------------------------------------------------------------------------------------------------
# split

def test_split_random_is_seeded_stable_and_nonempty() -> None:
    keys = [f"s{i}" for i in range(200)]
    a = assign_split(keys, [1] * 200, [None] * 200, val_fraction=0.1, seed=1)
    assert a == assign_split(keys, [1] * 200, [None] * 200, val_fraction=0.1, seed=1)
    assert a != assign_split(keys, [1] * 200, [None] * 200, val_fraction=0.1, seed=2)
    assert sum(a) == 20  # the fraction is met in samples
    weighted = assign_split(keys, [1] * 100 + [3] * 100, [None] * 200, val_fraction=0.1, seed=1)
    assert 40 <= sum(w for w, v in zip([1] * 100 + [3] * 100, weighted) if v) <= 42
    # adding units later moves only units near the cut
    more = assign_split(keys + [f"new{i}" for i in range(10)], [1] * 210, [None] * 210, val_fraction=0.1, seed=1)
    assert sum(x != y for x, y in zip(a, more)) <= 3
    assert sum(assign_split(["x", "y"], [3, 3], [None, None], val_fraction=0.01)) == 1
    assert assign_split(["x"], [3], [None], val_fraction=0.5) == [False]


def test_split_recent_takes_newest() -> None:
    times = [100.0, 500.0, 300.0, 400.0, 200.0, None]
    flags = assign_split([str(i) for i in range(6)], [1, 1, 1, 1, 1, 1], times, val_fraction=0.3, mode="recent")
    assert [i for i, f in enumerate(flags) if f] == [1, 3]  # times 500 and 400


def test_pipeline_split_keeps_units_whole() -> None:
    from graftkit.prepare.pipeline import Unit, _split
    units = []
    for c in range(30):
        for k in range(3):
            units.append(Unit(f"c{c}\x1f{k}", f"c{c}", float(c * 100 + k), samples=[[("assistant", f"{c}/{k}")]]))
    by_conv = PrepareOptions(["x"], split_by="conversation", val_fraction=0.2)
    _split(units, by_conv)
    sides: dict[str, set[bool]] = {}
    for u in units:
        sides.setdefault(u.conversation, set()).add(u.is_val)
    assert all(len(v) == 1 for v in sides.values()) and any(u.is_val for u in units)
    _split(units, PrepareOptions(["x"], split="recent", val_fraction=0.2))
    newest_train = max(u.end for u in units if not u.is_val)
    assert all(u.end > newest_train for u in units if u.is_val)
    assert sum(u.is_val for u in units) == 18


# ---------------------------------------------------------------------------------------------------
# senders

def test_match_me_forgiving_and_strict() -> None:
    counts = Counter({"Sam": 10, "sam ": 2, "Sam Smith": 5, "Alex": 7})
    assert match_me(counts, ["SAM"]) == {"Sam", "sam "}
    assert match_me(counts, ["sam", "sam smith"]) == {"Sam", "sam ", "Sam Smith"}
    with pytest.raises(UserError, match="did you mean 'Alex'"):
        match_me(counts, ["Alx"])


def test_ask_me_lists_senders(capsys) -> None:
    counts = Counter({"Sam": 10, "Alex": 7})
    with pytest.raises(UserError, match="pass --me NAME"):
        ask_me(counts, interactive=False)
    assert "Sam" in capsys.readouterr().out
    answers = iter(["Nobody", "2"])
    assert ask_me(counts, interactive=True, ask=lambda _: next(answers)) == ["Alex"]


# ---------------------------------------------------------------------------------------------------
# tokenizer report

def test_percentiles() -> None:
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 99)) == (50, 90, 99)
    assert percentile([], 50) == 0


def test_tokenizers_file_and_hf_folder(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["hello there how are you", "fine thanks"],
                            trainers.WordLevelTrainer(special_tokens=["[UNK]", ME, THEM, END]))
    tok.save(str(tmp_path / "tokenizer.json"))
    samples = [[("user", "hello there"), ("assistant", "fine thanks")], [("user", "how are you " * 20),
                                                                          ("assistant", "fine")]]
    rep = token_report(load_token_counter(str(tmp_path / "tokenizer.json")), samples, max_seq_length=20)
    assert rep["kind"] == "tokenizers" and rep["samples"] == 2 and rep["over_max_seq_length"] == 1
    assert rep["p50"] == 7  # <|them|> hello there <|me|> fine thanks <|endoftext|>: markers are single tokens
    from transformers import PreTrainedTokenizerFast
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    hf.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }}\n{% endfor %}"
    hf.save_pretrained(str(tmp_path / "hf"))
    rep = token_report(load_token_counter(str(tmp_path / "hf")), samples, max_seq_length=20)
    assert rep["kind"] == "hf_chat_template" and rep["max"] > 60


def test_tokenizer_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a folder, a tokenizer.json or a tiktoken encoding"):
        load_token_counter("no_such_encoding")
    with pytest.raises(UserError, match="no such tokenizer"):
        load_token_counter(str(tmp_path / "missing" / "tokenizer.json"))
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(UserError, match="not a `tokenizers` tokenizer.json"):
        load_token_counter(str(tmp_path / "junk.json"))
    try:  # offline and uncached, tiktoken's download must become one clear error
        counter = load_token_counter("gpt2")
    except UserError as e:
        assert re.search(r"not cached and could not be downloaded|cannot fetch tiktoken encoding 'gpt2'", str(e))
    else:
        assert counter.kind == "tiktoken"


# ---------------------------------------------------------------------------------------------------
# pipeline on ShareGPT / OpenAI input and the bundled sample

def test_sharegpt_and_openai_inputs(fixtures_dir: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    syn = fixtures_dir / "synthetic"
    out = tmp_path / "out"
    stats = prepare(PrepareOptions([str(syn / "sharegpt.jsonl"), str(syn / "openai_messages.jsonl")],
                                   out=str(out), tokenizer=str(tmp_path / "tokenizer.json"),
                                   max_seq_length=8, progress=False))
    assert stats["tokenizer"]["samples"] == stats["samples"]["total"] and stats["tokenizer"]["max"] > 8
    assert stats["tokenizer"]["over_max_seq_length"] >= 1
    rows = read_jsonl(out / "sharegpt_format.jsonl")
    assert len(rows) == stats["samples"]["total"] == stats["samples"]["train"] + stats["samples"]["val"]
    assert all(t["from"] in ("system", "human", "gpt") for r in rows for t in r["conversations"])
    assert rows[0]["conversations"][-1] == {"from": "gpt", "value": "Paris."}
    assert "<|me|>Paris.\n" in (out / "corpus_train.txt").read_text() + (out / "corpus_val.txt").read_text()


@pytest.mark.parametrize("name", ["openai_bad_line.jsonl", "sharegpt_unknown_role.jsonl"])
def test_broken_training_jsonl_names_line_2(fixtures_dir: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as e:
        prepare(PrepareOptions([str(fixtures_dir / "broken" / name)], out=str(tmp_path), progress=False))
    assert e.value.path.endswith(name) and e.value.line == 2
    assert not list(tmp_path.iterdir())


def test_sample_chat_end_to_end(tmp_path: Path) -> None:
    sample = ROOT / "training_data" / "sample_chat"
    stats = prepare(PrepareOptions([str(sample)], out=str(tmp_path), me=["sam"], progress=False))
    if stats["messages"]["written"] < 20000:
        pytest.skip("WhatsApp parser not complete yet")
    assert stats["me"] == ["Sam"] and stats["samples"]["val"] > 0
    _check_outputs(tmp_path, me_names={"Sam"})


# ---------------------------------------------------------------------------------------------------
# CLI

WHATSAPP = """\
31/12/2023, 20:58 - Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them.
31/12/2023, 21:00 - Ann: are you coming tonight?
31/12/2023, 21:01 - Sam: yes! leaving in 10
31/12/2023, 21:01 - Sam: bringing snacks
31/12/2023, 21:02 - Ann: <Media omitted>
31/12/2023, 21:03 - Ann: great, my number is +1 555 0100 if you get lost
31/12/2023, 21:04 - Sam: ok, mail me at sam@example.com
with the address
01/01/2024, 12:00 - Sam: happy new year!
01/01/2024, 12:05 - Ann: you too!!
01/01/2024, 12:06 - Sam: see https://example.com/photos
02/01/2024, 09:00 - Ann: lunch?
02/01/2024, 09:10 - Sam: sure, 12:30 at the usual place
03/01/2024, 18:00 - Sam: thanks for lunch
03/01/2024, 18:20 - Ann: anytime
03/01/2024, 18:21 - Sam: same time next week?
"""


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=120)


def _check_outputs(out: Path, me_names: set[str]) -> None:
    """Every output exists and they agree with each other."""
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    messages = read_jsonl(out / "messages.jsonl")
    allrows = read_jsonl(out / "sharegpt_format.jsonl")
    train, val = read_jsonl(out / "sharegpt_train.jsonl"), read_jsonl(out / "sharegpt_val.jsonl")
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert Counter(map(key, allrows)) == Counter(map(key, train)) + Counter(map(key, val))
    assert not set(map(key, train)) & set(map(key, val))
    my_lines = {line for m in messages if m["is_me"] for line in m["text"].strip().splitlines()}
    assert {m["sender"] for m in messages if m["is_me"]} == me_names
    for r in allrows:
        for t in r["conversations"]:
            assert t["value"].strip()
            if t["from"] == "gpt":
                assert set(t["value"].splitlines()) <= my_lines, t["value"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["samples"]["train"] == len(train) and stats["samples"]["val"] == len(val)
    for side in ("train", "val"):
        corpus = (out / f"corpus_{side}.txt").read_text(encoding="utf-8")
        sessions = [s for s in corpus.split(END + "\n") if s]
        assert corpus == "" or corpus.endswith(END + "\n")
        assert len(sessions) == stats["corpus"][f"{side}_sessions"]
        assert all(s.startswith((ME, THEM)) for s in sessions)
    # no session on both sides: transcripts of train and val share no session
    tr = set((out / "corpus_train.txt").read_text().split(END + "\n")) - {""}
    va = set((out / "corpus_val.txt").read_text().split(END + "\n")) - {""}
    assert not tr & va


def test_cli_end_to_end_whatsapp(tmp_path: Path) -> None:
    export = tmp_path / "WhatsApp Chat with Ann.txt"
    export.write_text(WHATSAPP, encoding="utf-8")
    out = tmp_path / "out"
    r = run_cli(str(export), "--me", "SAM", "--out", str(out), "--session-gap", "6h", "--val-fraction", "0.3",
                "--system-prompt", "auto")
    assert r.returncode == 0, r.stderr
    _check_outputs(out, me_names={"Sam"})
    stats = json.loads((out / "stats.json").read_text())
    if stats["messages"]["written"] != 14:
        pytest.skip("WhatsApp parser not complete yet")
    assert stats["dropped"]["media"] == 1 and stats["merged_messages"] == 1
    assert stats["sessions"]["total"] == 4 and stats["samples"]["val"] >= 1
    assert stats["pii"]["replacements"] == {"EMAIL": 1, "PHONE": 1, "URL": 1, "CARD": 0, "IBAN": 0}
    everything = "".join((out / n).read_text() for n in OUTPUTS[:-1])
    assert "555 0100" not in everything and "sam@example.com" not in everything and "<PHONE>" in everything
    assert "12:30 at the usual place" in everything  # a time is not a phone number
    first = read_jsonl(out / "sharegpt_format.jsonl")[0]["conversations"]
    assert first[0] == {"from": "system", "value": "You are Sam. Reply the way Sam would in a chat."}
    assert {"from": "gpt", "value": "yes! leaving in 10\nbringing snacks"} in first
    assert "samples:" in r.stdout

    # the same export given twice does not double the data
    out2 = tmp_path / "out2"
    r = run_cli(str(export), str(export), "--me", "Sam", "--out", str(out2), "--val-fraction", "0.3",
                "--system-prompt", "auto")
    assert r.returncode == 0, r.stderr
    for name in ("sharegpt_format.jsonl", "sharegpt_train.jsonl", "corpus_train.txt"):
        assert (out2 / name).read_text() == (out / name).read_text()
    assert json.loads((out2 / "stats.json").read_text())["dropped"]["duplicate_message"] == 14


GROUP = """\
[12/31/23, 9:00:00\u202fPM] Ann: who's in for tonight?
[12/31/23, 9:00:30\u202fPM] +1 555 0100: me
[12/31/23, 9:01:00\u202fPM] Sam: count me in
[12/31/23, 9:02:00\u202fPM] Ann: \u200eimage omitted
[12/31/23, 9:03:00\u202fPM] Ann: great
"""


def test_group_chat_names_are_prefixed_and_scrubbed(tmp_path: Path) -> None:
    export = tmp_path / "group.txt"
    export.write_text(GROUP, encoding="utf-8")
    stats = prepare(PrepareOptions([str(export)], out=str(tmp_path / "out"), me=["sam"], progress=False))
    if stats["messages"]["written"] != 5:
        pytest.skip("WhatsApp iOS parsing not complete yet")
    (row,) = read_jsonl(tmp_path / "out" / "sharegpt_format.jsonl")
    assert row["conversations"] == [{"from": "human", "value": "Ann: who's in for tonight?\n<PHONE_1>: me"},
                                    {"from": "gpt", "value": "count me in"}]
    assert "555" not in (tmp_path / "out" / "messages.jsonl").read_text()
    assert stats["dropped"]["media"] == 1 and stats["messages"]["by_sender"]["<PHONE_1>"] == 1


def test_cli_without_me_lists_senders(tmp_path: Path) -> None:
    export = tmp_path / "chat.txt"
    export.write_text(WHATSAPP, encoding="utf-8")
    r = run_cli(str(export), "--out", str(tmp_path / "out"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "pass --me NAME" in r.stderr
    if "Sam" in r.stdout:  # the sender list (once the WhatsApp parser is in)
        assert "Ann" in r.stdout
    r = run_cli(str(export), "--me", "Sma", "--out", str(tmp_path / "out"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1


def _bad_inputs(tmp: Path, fixtures: Path) -> dict[str, Path]:
    (tmp / "no_chats").mkdir()
    (tmp / "no_chats" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    (tmp / "unknown.dat").write_text("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >>\nendobj\n")
    return {
        "empty": fixtures / "broken" / "empty.txt",
        "truncated": fixtures / "broken" / "telegram_truncated.json",
        "binary": fixtures / "broken" / "binary_renamed.txt",
        "unknown_format": tmp / "unknown.dat",
        "nonexistent": tmp / "does_not_exist.txt",
        "folder_without_chats": tmp / "no_chats",
        "bad_sharegpt_role": fixtures / "broken" / "sharegpt_unknown_role.jsonl",
        "bad_openai_json": fixtures / "broken" / "openai_bad_line.jsonl",
    }


def test_cli_bad_inputs_fail_cleanly(tmp_path: Path, fixtures_dir: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "sharegpt_format.jsonl"
    keep.write_text("previous run\n")
    procs = {}
    for case, path in _bad_inputs(tmp_path, fixtures_dir).items():
        procs[case] = (path, subprocess.Popen(
            [sys.executable, str(SCRIPT), str(path), "--me", "Sam", "--out", str(out)], cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for case, (path, p) in procs.items():
        _, err = p.communicate(timeout=120)
        assert p.returncode != 0, case
        assert "Traceback" not in err, (case, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and path.name in lines[0], (case, err)
        if case.startswith("bad_"):
            assert f"{path.name}:2:" in lines[0], (case, err)
    assert keep.read_text() == "previous run\n"
    assert sorted(p.name for p in out.iterdir()) == ["sharegpt_format.jsonl"]


def test_cli_help_documents_every_flag() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for flag in ("--me", "--out", "--format", "--merge-gap", "--session-gap", "--window-turns", "--window-overlap",
                 "--group-names", "--system-prompt", "--no-scrub", "--split", "--split-by", "--val-fraction",
                 "--seed", "--tokenizer", "--max-seq-length", "--untimed-sessions", "--min-turns",
                 "--keep-duplicates"):
        assert flag in r.stdout
    assert "python prepare_training_data.py training_data/sample_chat --me Sam --out training_data" in r.stdout


def test_unsaved_numbers_stay_distinct_people_in_every_file(tmp_path: Path) -> None:
    """Three unsaved contacts in a group: three pseudonyms, three turns; the same number in a second
    file (and in that file's name) gets the same pseudonym; numbers leave no trace in any output."""
    nums = ["+44 7700 900123", "+44 7700 900456", "+1 202 555 0147"]
    lines = []
    for i in range(6):
        lines.append(f"31/12/2023, 21:{10 * i:02d} - {nums[i % 3]}: message {i} from number {i % 3}")
        lines.append(f"31/12/2023, 21:{10 * i + 1:02d} - Sam: reply {i}")
    group = tmp_path / "group.txt"
    group.write_text("\n".join(lines) + "\n", encoding="utf-8")
    direct = tmp_path / f"WhatsApp Chat with {nums[1]}.txt"
    direct.write_text(f"01/01/2024, 10:00 - {nums[1]}: happy new year\n01/01/2024, 10:01 - Sam: you too\n",
                      encoding="utf-8")
    out = tmp_path / "out"
    stats = prepare(PrepareOptions([str(group), str(direct)], out=str(out), me=["Sam"], progress=False,
                                   val_fraction=0, merge_gap=3600.0))
    rows = read_jsonl(out / "messages.jsonl")
    by_text = {r["text"]: r["sender"] for r in rows}
    senders = [by_text[f"message {i} from number {i % 3}"] for i in range(3)]
    assert len(set(senders)) == 3 and all(s.startswith("<PHONE_") for s in senders)
    assert by_text["happy new year"] == senders[1]
    assert {r["conversation"] for r in rows} == {"group.txt", f"WhatsApp Chat with {senders[1]}.txt"}
    everything = "".join(p.read_text(encoding="utf-8") for p in out.iterdir())
    for n in nums:
        assert n not in everything and n.replace(" ", "") not in everything
    assert "7700" not in everything
    assert stats["messages"]["by_sender"][senders[0]] == 2
    sample = read_jsonl(out / "sharegpt_format.jsonl")[0]["conversations"]
    assert sample[0]["value"] == f"{senders[0]}: message 0 from number 0"  # its own turn, its own name


def test_corpus_written_in_batches_equals_render_session(tmp_path: Path) -> None:
    """The corpus is streamed a batch of turns at a time (memory); the text must be render_session's."""
    from graftkit.corpus import render_session
    from graftkit.fileio import OutputSet
    from graftkit.prepare.pipeline import Unit, _write_corpus
    from graftkit.prepare.shaping import Session, Turn, render_turns
    turns = [Turn(["Ann", "Bob", "Me"][i % 3], i % 3 == 2, f"t{i}", None) for i in range(10)]
    s = Session("c", 0, 0, "x", turns)
    u = Unit(s.key, "c", None, session=s, samples=[[("user", "x")]])
    with OutputSet(tmp_path) as out:
        stats = _write_corpus(out, [u], "auto", batch=3)
    text = (tmp_path / "corpus_train.txt").read_text(encoding="utf-8")
    assert text == render_session(render_turns(s, "auto")) and stats["train_chars"] == len(text)

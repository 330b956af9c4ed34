"""Hostile inputs, take two (issue 26, items 7, 8, 10, 11, 13-16 and the SMS DOCTYPE note): each test builds
the attack itself and checks for the right messages or one clear error line, in bounded time and memory.

As in test_hostile_inputs.py, a SIGALRM guard turns a hang into a failure. Attacks whose failure mode was
eating memory run in a child process under an address-space limit (RLIMIT_AS) and report their own peak
RSS, so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import fail_if_hung

from graftkit.config import brief, load_config
from graftkit.corpus import END, ME, MARKER_BREAK, THEM
from graftkit.errors import ConfigError, InputError, UserError
from graftkit.parsers import parse_input

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_parsers_structured import _make_chat_db  # noqa: E402


@pytest.fixture(autouse=True)
def no_hang():
    """Fail (instead of hanging forever) if one test takes more than 180 s (each takes a few seconds; the
    attacks took minutes or never ended; the margin is for a loaded machine)."""
    with fail_if_hung(180):
        yield


# The peak RSS of this process alone. Not ru_maxrss: Linux keeps that across exec, so a child started
# from a big pytest process would report the parent's size.
PEAK_MB = """
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
"""


def bounded(code: str, mem_mb: int = 1500, timeout: float = 150) -> tuple[str, int]:
    """Run `code` in a child Python limited to `mem_mb` of address space; returns (its last stdout line, its
    peak RSS in MB, VmHWM). The code prints its result (and may call peak_mb()); the peak is measured by the
    child itself."""
    prog = "\n".join([
        "import resource, sys",
        PEAK_MB,
        f"resource.setrlimit(resource.RLIMIT_AS, ({mem_mb} << 20, {mem_mb} << 20))",
        f"sys.path.insert(0, {str(ROOT)!r})",
        "try:",
        textwrap.indent(textwrap.dedent(code).strip("\n"), "    "),
        "finally:",
        "    print('PEAK', peak_mb())",
    ])
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and lines and lines[-1].startswith("PEAK"), (r.returncode, r.stdout[-2000:],
                                                                          r.stderr[-2000:])
    return (lines[-2] if len(lines) > 1 else ""), int(lines[-1].split()[1])


def whatsapp(lines: list[tuple[str, str]]) -> str:
    return "".join(f"12/03/2021, 10:{i:02d} - {who}: {text}\n" for i, (who, text) in enumerate(lines))


# --- 7. reading outside the input: one walker, channel names never become paths -------------------------

def _day(path: Path, msgs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(msgs), encoding="utf-8")


def _slack(root: Path, secret: Path) -> None:
    root.mkdir()
    (root / "users.json").write_text(json.dumps([{"id": "U1", "real_name": "Sam"}, {"id": "U2", "real_name": "Alex"}]))
    (root / "channels.json").write_text(json.dumps([{"name": "general"}, {"name": "../secret"}, {"name": str(secret)},
                                                    {"name": "/etc"}]))
    _day(root / "general" / "2021-01-01.json", [{"type": "message", "user": "U2", "text": "hi", "ts": "1609459300.0"},
                                                {"type": "message", "user": "U1", "text": "yo", "ts": "1609459400.0"}])


def test_slack_channel_names_and_links_never_read_outside(tmp_path):
    secret = tmp_path / "secret"
    _day(secret / "2021-01-01.json", [{"type": "message", "user": "U1", "text": "SECRET", "ts": "1609459200.0"}])
    export = tmp_path / "slack"
    _slack(export, secret)
    assert [m.text for m in parse_input(export).messages] == ["hi", "yo"]  # before: SECRET twice

    os.symlink(secret, export / "leak")  # a channel folder that is a link out of the export
    os.symlink(secret / "2021-01-01.json", export / "general" / "2021-01-02.json")  # a day file that is one
    res = parse_input(export)
    assert [m.text for m in res.messages] == ["hi", "yo"]
    notes = " ".join(res.skipped)
    assert f"{export}/leak (link to outside the folder" in notes
    assert f"{export}/general/2021-01-02.json (link to outside the folder" in notes

    z = tmp_path / "slack.zip"  # inside a zip, "../secret" and the absolute path stay names too
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(export.rglob("*")):
            if f.is_file() and not f.is_symlink() and not any(p.is_symlink() for p in f.parents):
                zf.write(f, "ws/" + f.relative_to(export).as_posix())
    assert [m.text for m in parse_input(z).messages] == ["hi", "yo"]


def test_slack_users_json_link_out_is_not_read(tmp_path):
    outside = tmp_path / "users.json"
    outside.write_text(json.dumps([{"id": "U1", "real_name": "Leaked Name"}]))
    export = tmp_path / "slack"
    _slack(export, tmp_path / "nowhere")
    (export / "users.json").unlink()
    os.symlink(outside, export / "users.json")
    with pytest.raises(InputError) as e:  # no users.json of its own: not read as a Slack export at all
        parse_input(export)
    assert "users.json (link to outside the folder" in e.value.message and "Leaked" not in e.value.message


def test_messenger_thread_part_linked_outside_is_skipped(tmp_path):
    def part(path: Path, content: str, ts: int) -> None:
        path.write_text(json.dumps({"participants": [{"name": "Sam"}, {"name": "Alex"}], "thread_path": "inbox/a_1",
                                    "messages": [{"sender_name": "Alex", "timestamp_ms": ts, "content": content},
                                                 {"sender_name": "Sam", "timestamp_ms": ts - 1000, "content": "hey"}]}))
    thread = tmp_path / "export" / "inbox" / "a_1"
    thread.mkdir(parents=True)
    part(thread / "message_1.json", "hello", 1609459200000)
    part(tmp_path / "elsewhere.json", "SECRET", 1609450000000)
    os.symlink(tmp_path / "elsewhere.json", thread / "message_2.json")
    res = parse_input(tmp_path / "export")
    assert [m.text for m in res.messages] == ["hey", "hello"]  # before: SECRET and its "hey" too
    assert any("message_2.json (link to outside the folder" in s for s in res.skipped)


# --- 8. speaker-marker injection ---------------------------------------------------------------------------

def test_marker_injection_in_texts_and_names_is_neutralised(tmp_path):
    import prepare_training_data as cli
    from graftkit.tiny_gpt.tokenizer import build_tokenizer

    chat = tmp_path / "in" / "WhatsApp Chat with Alex.txt"
    chat.parent.mkdir()
    chat.write_text(whatsapp([
        ("Alex", f"{ME}I am Sam and I hate you{END}{THEM}ok"), ("Sam", "what?"),
        (ME, "hi from a name"), ("Sam", "sure <|im_end|> </s> [INST]"), ("Alex", "a <| b |> c <s>"), ("Sam", "k"),
    ]), encoding="utf-8")
    out = tmp_path / "out"
    assert cli.main([str(chat.parent), "--me", "Sam", "--out", str(out), "--val-fraction", "0"]) == 0
    corpus = (out / "corpus_train.txt").read_text(encoding="utf-8")
    lines = corpus.splitlines()
    # the markers appear only where prepare put them: one at the start of each turn, END once per session
    assert corpus.count(ME) == sum(line.startswith(ME) for line in lines) == 3
    assert corpus.count(THEM) == sum(line.startswith(THEM) for line in lines) == 3
    assert corpus.count(END) == lines.count(END) == 1
    for bad in ("<|im_end|>", "</s>", "[INST]", "<s>", "<|"):
        assert bad not in corpus.replace(ME, "").replace(THEM, "").replace(END, "")
    assert f"<{MARKER_BREAK}|me|>I am Sam" in corpus  # the text is kept, readable, just not a token
    tok = build_tokenizer("char", corpus)  # the tokenizer sees exactly the markers prepare wrote
    ids = tok.encode(corpus).ids
    assert ids.count(tok.token_to_id(ME)) == 3 and ids.count(tok.token_to_id(END)) == 1
    for name in ("sharegpt_format.jsonl", "messages.jsonl"):
        text = (out / name).read_text(encoding="utf-8")
        assert ME not in text and END not in text and "<|im_end|>" not in text, name
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["special_tokens_escaped"] == {"texts": 3, "names": 1}


def test_prepare_tokenizer_special_tokens_are_neutralised_too(tmp_path):
    import prepare_training_data as cli
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken("<unused7>", special=True)])
    tok.save(str(tmp_path / "tokenizer.json"))
    chat = tmp_path / "WhatsApp Chat with Alex.txt"
    chat.write_text(whatsapp([("Alex", "hi <unused7> there"), ("Sam", "ok")]), encoding="utf-8")
    out = tmp_path / "out"
    assert cli.main([str(chat), "--me", "Sam", "--out", str(out), "--tokenizer", str(tmp_path / "tokenizer.json"),
                     "--val-fraction", "0"]) == 0
    assert "<unused7>" not in (out / "corpus_train.txt").read_text(encoding="utf-8")
    assert json.loads((out / "stats.json").read_text())["special_tokens_escaped"]["texts"] == 1


# --- 10. YAML alias bomb, deep nesting, long values in config errors ----------------------------------------

def _laughs(key: str = "n_layer") -> str:
    parts = [f'{key}: [&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        parts.append(f", &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    return "".join(parts) + "]\n"


def test_yaml_alias_bomb_config_is_one_bounded_line(tmp_path):
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text(_laughs())
    assert bomb.stat().st_size < 600  # 9**9 = 387M strings once expanded
    line, peak = bounded(f"""
        from graftkit.config import load_config
        from graftkit.tiny_gpt.config import TinyGPTConfig
        from graftkit.errors import ConfigError
        try:
            load_config(TinyGPTConfig, {str(bomb)!r})
        except ConfigError as e:
            print(e.format())
    """)  # before: 114 s and 6.15 GB, then MemoryError
    assert line.startswith(f"{bomb}: config holds more than 100,000 values") and len(line) < 300, line
    assert peak < 400, peak
    with pytest.raises(ConfigError, match="more than 100,000 values"):  # as an override too
        load_config(_tiny_cfg(), None, [_laughs("n_layer").replace(": ", "=", 1)])


def _tiny_cfg():
    from graftkit.tiny_gpt.config import TinyGPTConfig
    return TinyGPTConfig


def test_config_errors_never_echo_unbounded_values(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("n_layer: " + "x" * 200_000 + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(_tiny_cfg(), cfg)
    assert len(e.value.format()) < 300 and "(200,000 characters)" in e.value.format()
    assert brief(list(range(100))) == "a list of 100 items" and brief(10**5000) == "an integer of about 5001 digits"
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than 1024 KB"):
        load_config(_tiny_cfg(), big)


# --- 11. a checkpoint of shared nested lists ---------------------------------------------------------------

def test_checkpoint_of_shared_nested_lists_is_refused_before_printing(tmp_path):
    import torch

    bomb: list = ["lol"] * 10
    for _ in range(12):
        bomb = [bomb] * 10  # 10**13 strings when printed, 1.5 KB pickled
    paths = {"format": tmp_path / "a" / "last.pt", "model_args": tmp_path / "b" / "last.pt"}
    for where, path in paths.items():
        path.parent.mkdir()
        torch.save({"format": bomb, "model_args": {}} if where == "format" else {
            "format": "graftkit-tiny-gpt/1", "model_args": {"vocab_size": 1, "n_layer": bomb},
            "tokenizer": {"sha256": "x", "vocab_size": 1},  # every other key a resumable last.pt holds
            **{k: 0 for k in ("model", "optimizer", "scaler", "iter", "best_val_loss", "best_iter", "evals_since_best",
                              "last_eval_iter", "tokens_seen", "rng", "sampler")}}, path)
        assert path.stat().st_size < 3000
    line, peak = bounded(f"""
        from types import SimpleNamespace
        from graftkit.checkpoint import load_checkpoint
        from graftkit.tiny_gpt.checkpoints import check_resumable, load_for_inference
        from graftkit.tiny_gpt.config import TinyGPTConfig
        from graftkit.errors import UserError
        tok = SimpleNamespace(sha256="x", vocab_size=1, path="tok.json")
        msgs = []
        for path in {[str(p) for p in paths.values()]!r}:
            try:
                check_resumable(load_checkpoint(path), TinyGPTConfig(), tok, path)
            except UserError as e:
                msgs.append(e.format())
        try:
            load_for_inference(TinyGPTConfig(), msgs and {str(paths["format"])!r})
        except UserError as e:
            msgs.append(e.format())
        print(" || ".join(msgs))
    """, mem_mb=3000)  # before: 108 s and 8.1 GB
    fmt, args, inference = line.split(" || ")
    assert fmt == (f"{paths['format']}: not a tiny GPT checkpoint (format a list of 10 items); use another out_dir "
                   f"or init_from=scratch"), fmt
    assert "n_layer=a list of 10 items" in args and len(args) < 400, args
    assert inference.startswith(f"{paths['format']}: not a tiny GPT checkpoint (format a list of 10 items)")
    assert peak < 1200, peak


# --- 13. iMessage: a recursive VIEW, bounded reads, a locked database --------------------------------------

def test_imessage_recursive_view_is_refused_at_once(tmp_path):
    db = tmp_path / "chat.db"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE handle (ROWID INTEGER PRIMARY KEY, id TEXT);
        CREATE TABLE chat (ROWID INTEGER PRIMARY KEY, chat_identifier TEXT, display_name TEXT);
        CREATE TABLE chat_message_join (chat_id INTEGER, message_id INTEGER);
        CREATE VIEW message AS WITH RECURSIVE r(ROWID, text, is_from_me, date, handle_id) AS
          (SELECT 1, 'x', 0, 0, 1 UNION ALL SELECT ROWID + 1, text, is_from_me, date, handle_id FROM r)
          SELECT * FROM r;
    """)
    con.close()
    with pytest.raises(InputError, match=r"message \(view\) must be a table: not a Messages database"):
        parse_input(db)  # before: never ended (killed at 15 s)


def test_imessage_reads_are_bounded_in_time_and_rows(tmp_path, monkeypatch):
    from graftkit.parsers import imessage

    db = tmp_path / "chat.db"
    _make_chat_db(db)
    con = sqlite3.connect(db)
    con.executemany("INSERT INTO message (ROWID, text, handle_id, date, is_from_me) VALUES (?, 'x', 1, ?, 0)",
                    [(i, 694224000 * 10**9 + i) for i in range(10, 40_000)])
    con.executemany("INSERT INTO chat_message_join VALUES (1, ?)", [(i,) for i in range(10, 40_000)])
    con.commit()
    con.close()
    monkeypatch.setattr(imessage, "MAX_SECONDS", 0.0)
    with pytest.raises(InputError, match="took more than 0 s"):
        parse_input(db)
    monkeypatch.setattr(imessage, "MAX_SECONDS", 600.0)
    monkeypatch.setattr(imessage, "MAX_ROWS", 100)
    with pytest.raises(InputError, match="more than 100 message rows"):
        parse_input(db)


def test_locked_chat_db_says_in_use_close_messages(tmp_path):
    db = tmp_path / "chat.db"
    _make_chat_db(db)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys, time
        con = sqlite3.connect({str(db)!r}, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        con.execute("UPDATE message SET text = 'changing'")
        print("locked", flush=True)
        sys.stdin.readline()
        con.execute("ROLLBACK")
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError) as e:
            parse_input(db)  # before: read without a word while another process was writing it
        assert "in use" in e.value.message and "close Messages" in e.value.message
        assert "damaged" not in e.value.message
    finally:
        holder.communicate("done\n", timeout=10)
    assert len(parse_input(db).messages) == 4  # released: read as usual
    (tmp_path / "chat.db-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(504))
    with pytest.raises(InputError, match="a write to chat.db was interrupted; open Messages once"):
        parse_input(db)  # a hot journal left by a crash


# --- 14. a CSV with one huge field ---------------------------------------------------------------------------

def test_csv_huge_field_stops_at_the_limit_without_holding_it(tmp_path):
    p = tmp_path / "chat.csv"
    with open(p, "w", encoding="utf-8") as f:
        f.write('timestamp,sender,text\n2021-01-01 10:00,Alex,"')
        chunk = "a" * (1 << 20)
        for _ in range(64):  # 64 MB in one field, no line break
            f.write(chunk)
        f.write('"\n')
    line, peak = bounded(f"""
        from graftkit.parsers import parse_input
        from graftkit.errors import InputError
        before = peak_mb()
        try:
            parse_input({str(p)!r})
        except InputError as e:
            print(before, e.format())
    """, mem_mb=1000)  # before (a 200 MB field): 1.0 GB peak; a 1 GB field needed 5.3 GB
    before, msg = line.split(" ", 1)
    assert msg == f"{p}:2: a CSV field longer than 131,072 characters: not a chat export, or a damaged one"
    assert peak - int(before) < 24, (before, peak)


def test_csv_field_limit_applies_across_lines(tmp_path, monkeypatch):
    from graftkit.parsers import generic_csv

    monkeypatch.setattr(generic_csv, "MAX_FIELD_CHARS", 1000)
    p = tmp_path / "chat.csv"
    p.write_text('timestamp,sender,text\n2021-01-01 10:00,Alex,"' + "line\n" * 1000 + '"\n2021-01-01 10:01,Sam,ok\n')
    with pytest.raises(InputError, match="field larger than field limit") as e:
        parse_input(p)
    assert e.value.line == 2
    monkeypatch.setattr(generic_csv, "MAX_FIELD_CHARS", 131_072)
    assert [m.sender for m in parse_input(p).messages] == ["Alex", "Sam"]


# --- 15. numbers: one line naming the file, the record and the valid range -----------------------------------

def _tg(**fields) -> dict:
    msg = {"id": 1, "type": "message", "date": "2021-01-01T10:00:00", "from": "Alex", "from_id": "user1", "text": "hi"}
    msg.update(fields)
    return {"name": "Alex", "type": "personal_chat", "id": 5, "messages": [msg]}


def _messenger(tmp_path: Path, ts: str) -> Path:
    d = tmp_path / "thread"
    d.mkdir()
    (d / "message_1.json").write_text('{"participants": [], "messages": [{"sender_name": "Alex", "timestamp_ms": '
                                      + ts + ', "content": "hi"}]}')
    return d


NUMBER_ATTACKS = {
    "sms_date_400_digits": ("sms.xml", '<?xml version="1.0"?>\n<smses count="1"><sms address="1" date="' + "9" * 400
                            + '" type="1" body="hi"/></smses>\n',
                            r"<sms> number 1: date: '9999.*' \(400 characters\) is out of range \(valid: "
                            r"-62135596800000 to 253402300799999, milliseconds since 1970"),
    "telegram_id_5000_digits": ("result.json", json.dumps(_tg()).replace('"id": 5', '"id": ' + "7" * 5000),
                                r"a number of more than 4,300 digits \(valid: at most 4,300"),
    "telegram_unixtime_400_digits": ("result.json", json.dumps(_tg(date="x", date_unixtime="9" * 400)),
                                     r"chat: message 0: date_unixtime: '9999.*is out of range \(valid: -62135596800 "
                                     r"to 253402300799, seconds since 1970"),
    "telegram_unixtime_400_digit_number": ("result.json", json.dumps(_tg(date="x")).replace(
        '"date": "x"', '"date": "x", "date_unixtime": ' + "9" * 400),
        r"date_unixtime: an integer of about 401 digits is out of range"),
    "sharegpt_5000_digits": ("train.jsonl", '{"conversations": [{"from": "human", "value": ' + "1" * 5000
                             + '}, {"from": "gpt", "value": "x"}]}\n', r"more than 4,300 digits"),
    "slack_ts": (None, None, r"message 0: ts: .* is out of range"),
}


@pytest.mark.parametrize("name", sorted(NUMBER_ATTACKS))
def test_number_attacks_are_one_line_with_the_range(tmp_path, name):
    fname, content, pattern = NUMBER_ATTACKS[name]
    if name == "slack_ts":
        export = tmp_path / "slack"
        _slack(export, tmp_path / "none")
        _day(export / "general" / "2021-01-02.json", [{"type": "message", "user": "U1", "text": "x", "ts": "9" * 400}])
        path = export
    else:
        path = tmp_path / fname
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=pattern) as e:
        parse_input(path)
    msg = e.value.format()
    assert "\n" not in msg and len(msg) < 400, msg
    if name.startswith(("telegram_id", "sharegpt")):
        assert e.value.line == 1


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "9" * 400])
def test_messenger_timestamp_ms_out_of_range(tmp_path, value):
    with pytest.raises(InputError, match=r"message 0: timestamp_ms: .* is out of range \(valid: -62135596800000 to "
                                         r"253402300799999, milliseconds since 1970"):
        parse_input(_messenger(tmp_path, value))


def test_csv_superscript_timestamp_is_text_not_a_crash(tmp_path):
    p = tmp_path / "chat.csv"
    p.write_text("timestamp,sender,text\n¹²³¹²³¹²³¹,Alex,hi\n2021-01-01 10:00,Sam,ok\n", encoding="utf-8")
    msgs = parse_input(p).messages  # before: ValueError from int("¹²³¹²³¹²³¹")
    assert [m.timestamp for m in msgs] == ["¹²³¹²³¹²³¹", "2021-01-01T10:00:00"]


def _lora_cfg():
    from graftkit.lora.config import LoraTrainConfig
    return LoraTrainConfig


@pytest.mark.parametrize("cls", [_tiny_cfg, _lora_cfg])
def test_config_numbers_nesting_and_nul(tmp_path, cls):
    c = cls()
    with pytest.raises(ConfigError, match=r"^command line: seed: 1000000000000000000000000000000 is out of range "
                                          r"\(valid: 0 to 4294967295\)$"):
        load_config(c, None, [f"seed={10**30}"])
    y = tmp_path / "c.yaml"
    y.write_text(f"seed: {10**30}\n")
    with pytest.raises(ConfigError, match=f"^{y}: seed: .* is out of range"):
        load_config(c, y)
    with pytest.raises(ConfigError, match=r"contains a NUL character \(\\x00\)"):
        load_config(c, None, ["output_dir=a\x00b" if cls is _lora_cfg else "out_dir=a\x00b"])
    nul = tmp_path / "nul.yaml"
    nul.write_text('tokenizer_path: "a\\0b"\n' if cls is _tiny_cfg else 'output_dir: "a\\0b"\n')
    with pytest.raises(ConfigError, match=f"^{nul}: .*contains a NUL character"):
        load_config(c, nul)
    big = tmp_path / "big.json"
    big.write_text('{"seed": ' + "1" * 5000 + "}")
    with pytest.raises(ConfigError, match="invalid JSON: Exceeds the limit"):
        load_config(c, big)


def test_config_nested_2000_deep(tmp_path):
    c = _tiny_cfg()
    for name, text in (("deep.yaml", "seed: " + "[" * 2000 + "]" * 2000 + "\n"),
                       ("deep.json", '{"seed": ' + "[" * 2000 + "]" * 2000 + "}"),
                       ("shallow.yaml", "seed: " + "[" * 60 + "]" * 60 + "\n")):
        f = tmp_path / name
        f.write_text(text)
        with pytest.raises(ConfigError, match=f"^{f}: .*(nested too deeply|nested more than 50 levels)"):
            load_config(c, f)  # before: RecursionError traceback
    with pytest.raises(ConfigError, match="nested more than 50 levels"):
        load_config(c, None, ["seed=" + "[" * 2000 + "]" * 2000])


def test_cli_seed_and_nul_are_one_line(tmp_path, capsys):
    import train_tiny_gpt

    for override in (f"seed={10**30}", "out_dir=a\x00b"):
        assert train_tiny_gpt.main(["--config", str(ROOT / "tiny_gpt_config.yaml"), override]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: command line: "), err
    import prepare_training_data as cli
    chat = tmp_path / "WhatsApp Chat with Alex.txt"
    chat.write_text(whatsapp([("Alex", "hi"), ("Sam", "ok")]))
    assert cli.main([str(chat), "--me", "Sam", "--out", "a\x00b"]) == 2  # from a notebook; a shell cannot
    assert capsys.readouterr().err.strip() == "error: --out contains a NUL character (\\x00), which no path can hold"
    import evaluate_persona

    assert evaluate_persona.main(["--config", str(ROOT / "lora_config.yaml"), "--seed", str(10**30)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --seed must be a whole number from 0 to 4294967295, got " + str(10**30)]


# --- 16. lone surrogates in sender names ---------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["telegram", "discord"])
def test_lone_surrogate_in_sender_name(tmp_path, fmt, capsys):
    import prepare_training_data as cli

    if fmt == "telegram":
        data = _tg(**{"from": "Al\ud83dex"})
        data["messages"].append({"id": 2, "type": "message", "date": "2021-01-01T10:01:00", "from": "Sam",
                                 "from_id": "user2", "text": "yo"})
        data["messages"].append({**data["messages"][0], "id": 3, "date": "2021-01-01T10:02:00", "text": "k"})
        path = tmp_path / "result.json"
    else:
        data = {"guild": {"name": "g"}, "channel": {"name": "c"}, "messages": [
            {"type": "Default", "timestamp": "2021-01-01T10:00:00+00:00", "content": "hi", "author": {"name": "\ud83d"}},
            {"type": "Default", "timestamp": "2021-01-01T10:01:00+00:00", "content": "yo", "author": {"name": "Sam"}},
            {"type": "Default", "timestamp": "2021-01-01T10:02:00+00:00", "content": "k", "author": {"name": "\ud83d"}}]}
        path = tmp_path / "discord.json"
    path.write_text(json.dumps(data), encoding="utf-8")  # json writes the half emoji as the escape \ud83d
    out = tmp_path / "out"
    assert cli.main([str(path), "--me", "Sam", "--out", str(out), "--val-fraction", "0"]) == 0  # before: traceback
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    name = "Al\\ud83dex" if fmt == "telegram" else "\\ud83d"  # shown as its escape, like a text's
    assert stats["messages"]["by_sender"] == {name: 2, "Sam": 1}
    assert name in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[0]["sender"] == name
    # --me can name that sender as it is shown
    assert cli.main([str(path), "--me", name, "--out", str(tmp_path / "out2"), "--val-fraction", "0"]) == 0


# --- also noted: an SMS backup with "<!DOCTYPE" in a comment ---------------------------------------------------

def test_sms_doctype_in_a_comment_is_accepted_and_a_real_one_refused(tmp_path):
    body = ('<smses count="2"><sms address="1" date="1609459200000" type="1" body="hi" contact_name="Alex"/>'
            '<sms address="1" date="1609459300000" type="2" body="yo" contact_name="Alex"/></smses>\n')
    ok = tmp_path / "ok.xml"
    ok.write_text('<?xml version="1.0"?>\n<!-- exported; no <!DOCTYPE or <!ENTITY here -->\n' + body)
    assert [m.text for m in parse_input(ok).messages] == ["hi", "yo"]  # before: refused as DOCTYPE
    for i, head in enumerate(('<!DOCTYPE smses [<!ENTITY a "lol">]>\n', '<!-- note -->\n<!DOCTYPE smses>\n',
                              '<!-- unclosed comment <!DOCTYPE smses>\n')):
        bad = tmp_path / f"bad{i}.xml"
        bad.write_text('<?xml version="1.0"?>\n' + head + body)
        with pytest.raises(InputError, match="DOCTYPE|broken XML"):
            parse_input(bad, "sms_backup_restore_xml")

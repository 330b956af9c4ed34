"""Hostile and broken inputs (issue 14): each test builds the attack itself and checks that parsing
ends quickly with the right messages or one clear InputError, and leaves nothing behind.

A SIGALRM guard turns a hang (the failure these tests reproduce) into a test failure, not a stuck run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from conftest import fail_if_hung

from graftkit.errors import InputError, UserError
from graftkit.parsers import ZipLimits, parse_input
import graftkit.parsers as parsers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_hang():
    """Fail (instead of hanging forever) if one test takes more than 20 s."""
    with fail_if_hung(20):
        yield


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch):
    """A private TMPDIR, so a test can check that nothing is left in it."""
    t = tmp_path / "TMP"
    t.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(t))
    return t


def chat(n: int = 20, who: str = "Alex") -> str:
    """A synthetic WhatsApp (Android) export of n alternating messages."""
    lines = []
    for i in range(n):
        sender = "Sam" if i % 2 else who
        lines.append(f"12/03/2021, {10 + i // 60:02d}:{i % 60:02d} - {sender}: message number {i} from {sender}")
    return "\n".join(lines) + "\n"


def write_chat(folder: Path, name: str = "WhatsApp Chat with Alex.txt", n: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(chat(n), encoding="utf-8")
    return p


# --- 1. zip bombs ------------------------------------------------------------------------------

def _text_bomb(path: Path, megabytes: int) -> None:
    line = b"12/03/2021, 10:00 - Alex: " + b"a" * 997 + b"\n"
    block = line * 1024
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("WhatsApp Chat with Bomb.txt", "w") as f:
            for _ in range(megabytes):
                f.write(block)


def test_zip_bomb_stops_at_the_ratio_cap_and_leaves_nothing(tmp_path, tmpdir_env):
    bomb = tmp_path / "bomb.zip"
    _text_bomb(bomb, 40)  # 40 MB of text in ~50 KB
    assert bomb.stat().st_size < 400_000
    with pytest.raises(InputError, match=r"more than 100x its size") as e:
        parse_input(bomb)
    assert e.value.path == str(bomb)
    assert list(tmpdir_env.iterdir()) == []  # the unpacked part is gone


def test_zip_total_size_cap(tmp_path, tmpdir_env, monkeypatch):
    z = tmp_path / "big.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("WhatsApp Chat with Alex.txt", chat(200))
    monkeypatch.setattr(parsers, "ZIP_LIMITS", ZipLimits(max_bytes=4096))
    with pytest.raises(InputError, match=r"more than 4.0 KB"):
        parse_input(z)
    assert list(tmpdir_env.iterdir()) == []
    monkeypatch.setattr(parsers, "ZIP_LIMITS", ZipLimits())
    assert len(parse_input(z).messages) == 200


def test_zip_media_is_not_unpacked(tmp_path, tmpdir_env, monkeypatch):
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("WhatsApp Chat with Alex.txt", chat(10))
        zf.writestr("IMG-0001.jpg", b"\0" * 5_000_000)  # would break the 1 MB cap if unpacked
    monkeypatch.setattr(parsers, "ZIP_LIMITS", ZipLimits(max_bytes=1_000_000))
    assert len(parse_input(z).messages) == 10


def test_stale_zip_temps_of_dead_runs_are_removed(tmp_path, tmpdir_env):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmpdir_env / f"graftkit-zip-{dead.pid}-abcd"
    stale.mkdir()
    (stale / "WhatsApp Chat with Alex.txt").write_text(chat(3))
    live = tmpdir_env / f"graftkit-zip-{os.getpid()}-keep"
    live.mkdir()
    write_chat(tmp_path / "in")
    parse_input(tmp_path / "in")
    assert not stale.exists() and live.exists()


# --- 2. links: loops, copies, escapes ----------------------------------------------------------

def test_symlink_loop_and_duplicate_links_read_each_chat_once(tmp_path):
    folder = tmp_path / "export"
    write_chat(folder)
    os.symlink(".", folder / "x")  # x -> .  (an endless walk before)
    os.symlink("..", folder / "up")  # up -> parent: outside the folder
    for i in range(5):
        os.symlink("WhatsApp Chat with Alex.txt", folder / f"copy{i}.txt")
    outside = tmp_path / "elsewhere"
    write_chat(outside, "WhatsApp Chat with Eve.txt", 7)
    os.symlink(outside, folder / "link_out")
    os.symlink(folder / "nope", folder / "dangling.txt")
    res = parse_input(folder)
    assert len(res.messages) == 20
    assert [f for f, _, _ in res.files] == [f"{folder}/WhatsApp Chat with Alex.txt"]
    notes = " ".join(res.skipped)
    assert "link_out (link to outside the folder" in notes and "up (link to outside" in notes
    assert "dangling.txt (broken link)" in notes


def test_a_link_given_as_input_is_followed(tmp_path):
    """Links are refused only when they leave the folder being walked; an INPUT is what the user asked for."""
    real = write_chat(tmp_path / "real")
    os.symlink(real, tmp_path / "link.txt")
    assert len(parse_input(tmp_path / "link.txt").messages) == 20


# --- 3. FIFOs and devices ----------------------------------------------------------------------

def test_fifo_in_folder_is_skipped_and_fifo_input_is_refused(tmp_path):
    folder = tmp_path / "export"
    write_chat(folder)
    os.mkfifo(folder / "pipe.txt")
    res = parse_input(folder)
    assert len(res.messages) == 20 and any("pipe.txt (not a regular file)" in s for s in res.skipped)
    os.mkfifo(tmp_path / "lone.txt")
    with pytest.raises(InputError, match="FIFO"):
        parse_input(tmp_path / "lone.txt")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_input_is_refused():
    with pytest.raises(InputError, match="character device"):
        parse_input("/dev/zero")


# --- 4. huge files: NULs after a valid head, endless lines ---------------------------------------

def test_2gb_sparse_file_with_valid_head_then_zeros_fails_fast(tmp_path):
    p = tmp_path / "WhatsApp Chat with Alex.txt"
    head = chat(400).encode()  # > 8 KiB of valid lines: the old binary check saw only those
    assert len(head) > 16_384
    with open(p, "wb") as f:
        f.write(head)
        f.truncate(2 * 1024**3)  # sparse: no disk used
    with pytest.raises(InputError, match="binary data") as e:
        parse_input(p)
    assert e.value.line == 401


def test_line_without_newline_is_bounded(tmp_path):
    p = tmp_path / "WhatsApp Chat with Alex.txt"
    with open(p, "w", encoding="utf-8") as f:
        f.write(chat(5))
        f.write("12/03/2021, 11:00 - Alex: " + "a" * (3 * 1024 * 1024))
    with pytest.raises(InputError, match="longer than") as e:
        parse_input(p)
    assert e.value.line == 6


# --- encodings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_whatsapp_exports_are_read(tmp_path, codec):
    text = chat(30).replace("message number 3 ", "message número 3 ✓ ")
    p = tmp_path / "WhatsApp Chat with Alex.txt"
    p.write_bytes(text.encode(codec))
    u8 = tmp_path / "u8" / p.name
    u8.parent.mkdir()
    u8.write_text(text, encoding="utf-8")
    got = [(m.sender, m.text, m.timestamp) for m in parse_input(p).messages]
    assert got == [(m.sender, m.text, m.timestamp) for m in parse_input(u8).messages]
    assert any("número 3 ✓" in t for _, t, _ in got)


# --- broken zips, nested zips ------------------------------------------------------------------

def _encrypt_flag(z: Path) -> None:
    """Mark every member as encrypted, as `zip -P` does (the data itself does not matter here)."""
    b = bytearray(z.read_bytes())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(sig)
        while i >= 0:
            b[i + off] |= 1
            i = b.find(sig, i + 4)
    z.write_bytes(bytes(b))


def test_password_zip_file_folder_clash_and_nested_zips(tmp_path, tmpdir_env):
    enc = tmp_path / "enc.zip"
    with zipfile.ZipFile(enc, "w") as zf:
        zf.writestr("WhatsApp Chat with Alex.txt", chat(5))
    _encrypt_flag(enc)
    with pytest.raises(InputError, match="password-protected"):
        parse_input(enc)

    clash = tmp_path / "clash.zip"
    with zipfile.ZipFile(clash, "w") as zf:
        zf.writestr("a", b"x")
        zf.writestr("a/WhatsApp Chat with Alex.txt", chat(5))
    with pytest.raises(InputError, match="both a file and a folder named 'a'"):
        parse_input(clash)

    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("WhatsApp Chat with Alex.txt", chat(12))
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "WhatsApp Chat with Alex.zip")
    res = parse_input(outer)
    assert len(res.messages) == 12
    assert res.files[0][0] == f"{outer}/WhatsApp Chat with Alex.zip/WhatsApp Chat with Alex.txt"

    deeper = outer
    for i in range(3):  # zips inside zips beyond max_depth: named, not silently ignored
        nxt = tmp_path / f"deep{i}.zip"
        with zipfile.ZipFile(nxt, "w") as zf:
            zf.write(deeper, f"level{i}.zip")
        deeper = nxt
    with pytest.raises(InputError, match="nested more than 2 deep"):
        parse_input(deeper)
    assert list(tmpdir_env.iterdir()) == []


def test_json_nested_beyond_recursion_limit(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text('{"conversations": ' + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(InputError):  # auto-detection: one clear error, no RecursionError
        parse_input(p)
    with pytest.raises(InputError, match="nested too deeply") as e:
        parse_input(p, "sharegpt_jsonl")
    assert e.value.line == 1
    j = tmp_path / "result.json"
    j.write_text('{"name": "x", "type": "personal_chat", "messages": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(InputError, match="nested too deeply"):
        parse_input(j, "telegram_json")


# --- unreadable files and folders --------------------------------------------------------------

def _deny(monkeypatch, target: Path) -> None:
    """Make `target` unreadable. chmod does not stop root, so as root the OS calls are made to fail
    as they do for a normal user (EACCES)."""
    if os.geteuid() != 0:
        os.chmod(target, 0)
        return
    real_open, real_listdir = os.open, os.listdir

    def denied(path) -> PermissionError:
        return PermissionError(13, "Permission denied", str(path))

    def deny_open(path, flags, *a, **k):
        if Path(path) == target:
            raise denied(path)
        return real_open(path, flags, *a, **k)

    def deny_listdir(path="."):
        if Path(path) == target:
            raise denied(path)
        return real_listdir(path)
    monkeypatch.setattr(os, "open", deny_open)
    monkeypatch.setattr(os, "listdir", deny_listdir)


def test_unreadable_file_and_folder_are_one_clear_error(tmp_path, monkeypatch):
    f = write_chat(tmp_path / "a")
    _deny(monkeypatch, f)
    with pytest.raises(InputError, match="permission denied") as e:
        parse_input(f)
    assert e.value.path == str(f)
    with pytest.raises(InputError, match="permission denied"):
        parse_input(tmp_path / "a")
    monkeypatch.undo()
    os.chmod(f, 0o600)
    folder = tmp_path / "b" / "locked"
    write_chat(folder)
    _deny(monkeypatch, folder)
    with pytest.raises(InputError, match="permission denied") as e:
        parse_input(tmp_path / "b")
    assert e.value.path == str(folder)
    monkeypatch.undo()
    os.chmod(folder, 0o700)


# --- the CLI: one line, non-zero exit, no traceback ----------------------------------------------

def test_cli_hostile_inputs_are_one_line_each(tmp_path, capsys):
    import prepare_training_data as cli

    enc = tmp_path / "enc.zip"
    with zipfile.ZipFile(enc, "w") as zf:
        zf.writestr("WhatsApp Chat with Alex.txt", chat(5))
    _encrypt_flag(enc)
    clash = tmp_path / "clash.zip"
    with zipfile.ZipFile(clash, "w") as zf:
        zf.writestr("a", b"x")
        zf.writestr("a/b.txt", chat(5))
    os.mkfifo(tmp_path / "pipe.txt")
    good = write_chat(tmp_path / "good")
    cases = {
        "password": ([str(enc)], "password-protected"),
        "clash": ([str(clash)], "both a file and a folder"),
        "fifo": ([str(tmp_path / "pipe.txt")], "FIFO"),
        "out_is_file": ([str(good), "--out", str(good)], "not a folder"),
        "min_turns": ([str(good), "--min-turns", "-5"], "--min-turns: -5 is out of range (valid: [1, 100000])"),
        "val_fraction": ([str(good), "--val-fraction", "2"], "--val-fraction: 2 is out of range (valid: [0, 1))"),
        "zip_ratio": ([str(good), "--max-zip-ratio", "0"], "--max-zip-ratio: 0 is out of range (valid: at least 1)"),
    }
    for k, (args, needle) in cases.items():
        out = [] if "--out" in args else ["--out", str(tmp_path / f"out_{k}")]
        try:
            rc = cli.main([*args, "--me", "Sam", *out])
        except SystemExit as e:  # argparse: usage line, then its error line
            rc = e.code
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and needle in err[-1] and "error" in err[-1], (k, err)
        if k in ("password", "clash", "fifo", "out_is_file"):
            assert len(err) == 1, (k, err)


# --- 6. networks that accept but never answer --------------------------------------------------

def test_tiktoken_download_times_out_with_an_offline_hint(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tiktoken")
    pytest.importorskip("requests")
    from graftkit.prepare.tokenizer_report import load_token_counter

    hole = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    proxy = f"http://127.0.0.1:{hole.getsockname()[1]}"
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("GRAFTKIT_FETCH_TIMEOUT", "1")
    try:
        with pytest.raises(UserError) as e:
            load_token_counter("cl100k_base")
    finally:
        hole.close()
    msg = e.value.format()
    assert "timed out after 1 s" in msg and "cl100k_base" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "local tokenizer" in msg
    assert "fetching tiktoken encoding 'cl100k_base' from https://" in capsys.readouterr().err

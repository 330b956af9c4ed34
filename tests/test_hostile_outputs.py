"""Output sets under crashes and careless use (issue 14, items 7-10 and the write errors):
all-or-nothing publication, a lock on --out, no temp litter after kill -9, private files, and one
clear line for a full disk, a file-size limit or a read-only folder, with the previous set intact.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from graftkit.errors import UserError
from graftkit.fileio import (JOURNAL_NAME, MANIFEST_NAME, OutputSet, atomic_write_text, read_manifest,
                             verify_output_set)
from graftkit.prepare import pipeline
from graftkit.prepare.pipeline import PrepareOptions, prepare

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("messages.jsonl", "sharegpt_format.jsonl", "sharegpt_train.jsonl", "sharegpt_val.jsonl",
           "corpus_train.txt", "corpus_val.txt", "stats.json")


def chat(n: int, who: str = "Alex") -> str:
    """A synthetic WhatsApp export: n alternating messages, 7 minutes apart."""
    t0 = datetime(2021, 3, 1, 10, 0)
    lines = []
    for i in range(n):
        sender = "Sam" if i % 2 else who
        lines.append(f"{t0 + timedelta(minutes=7 * i):%d/%m/%Y, %H:%M} - {sender}: note {i} from {sender}")
    return "\n".join(lines) + "\n"


def make_input(folder: Path, n: int = 120) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "WhatsApp Chat with Alex.txt").write_text(chat(n), encoding="utf-8")
    return folder


def run_prepare(inp: Path, out: Path, **kw) -> dict:
    return prepare(PrepareOptions([str(inp)], out=str(out), me=["Sam"], progress=False, **kw))


def snapshot(out: Path) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in OUTPUTS}


# --- 7. all or nothing, and a lock -------------------------------------------------------------

KILL_AFTER_RENAMES = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from graftkit.fileio import OutputSet
    real, n = os.replace, [0]
    def replace(a, b):
        real(a, b)
        n[0] += 1
        if n[0] == {kill_at}:
            os._exit(9)  # as kill -9: no cleanup, no finally
    os.replace = replace
    with OutputSet({out!r}) as out:
        for i in range(5):
            out.write_text(f"f{{i}}.txt", f"new {{i}}\\n")
""")


@pytest.mark.parametrize("kill_at", [1, 3])  # 1: only the journal committed; 3: two of five files renamed
def test_kill_between_renames_is_finished_by_the_next_reader_or_writer(tmp_path, kill_at):
    out = tmp_path / "out"
    with OutputSet(out) as o:
        for i in range(5):
            o.write_text(f"f{i}.txt", f"old {i}\n")
    code = KILL_AFTER_RENAMES.format(root=str(ROOT), out=str(out), kill_at=kill_at + 1)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 9, r.stderr
    assert (out / JOURNAL_NAME).exists()  # the kill left a half-published set, with its journal
    verify_output_set(out)  # a reader finishes the publication before reading
    assert [(out / f"f{i}.txt").read_text() for i in range(5)] == [f"new {i}\n" for i in range(5)]
    assert not (out / JOURNAL_NAME).exists() and set(read_manifest(out)["files"]) == {f"f{i}.txt" for i in range(5)}
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME] + [f"f{i}.txt" for i in range(5)]


def test_kill_before_commit_keeps_the_old_set_and_litter_is_removed(tmp_path):
    out = tmp_path / "out"
    with OutputSet(out) as o:
        o.write_text("a.txt", "old\n")
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from graftkit.fileio import OutputSet
        with OutputSet({str(out)!r}) as out:
            out.write_text("a.txt", "new, half written")
            os._exit(9)
    """)
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 9
    assert (out / "a.txt").read_text() == "old\n"
    assert any(p.name.startswith(".graftkit-staging-") for p in out.iterdir())  # personal data left behind ...
    with OutputSet(out) as o:
        o.write_text("a.txt", "newer\n")
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "a.txt"]  # ... and cleaned up at the next start


def test_second_writer_on_the_same_folder_stops_with_one_line(tmp_path):
    out = tmp_path / "out"
    with OutputSet(out) as first:
        first.write_text("a.txt", "first\n")
        with pytest.raises(UserError, match="another run .*is writing to this folder"):
            with OutputSet(out):
                pass
    assert (out / "a.txt").read_text() == "first\n"
    with OutputSet(out) as again:  # the lock goes with the first set
        again.write_text("a.txt", "again\n")


# --- 8. --out inside the input folder ----------------------------------------------------------

def test_out_inside_input_is_not_read_back(tmp_path):
    inp = make_input(tmp_path / "chats")
    first = run_prepare(inp, inp / "prepared")
    second = run_prepare(inp, inp / "prepared")
    assert second["messages"]["parsed"] == first["messages"]["parsed"] == 120
    assert second["samples"] == first["samples"]


def test_legacy_output_folder_without_manifest_is_skipped(tmp_path):
    inp = make_input(tmp_path / "chats")
    run_prepare(inp, inp / "old_run")
    (inp / "old_run" / MANIFEST_NAME).unlink()  # as written before manifests existed
    assert run_prepare(inp, tmp_path / "out")["messages"]["parsed"] == 120


# --- 9. stale temps after kill -9 --------------------------------------------------------------

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temps_of_our_naming_are_removed_at_start(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    stale = [out / f".last.pt.{dead}.x1y2z3.tmp", out / f".messages.jsonl.{dead}.abcdefgh.tmp"]
    old_style = out / ".stats.json.k2j4h5g6.tmp"  # no pid: removed once it is old
    for p in stale + [old_style]:
        p.write_text("personal data")
    os.utime(old_style, (0, 0))
    live = out / f".last.pt.{os.getpid()}.q1w2e3.tmp"  # a writer that is still running: kept
    live.write_text("in progress")
    someone_elses = out / ".notes.txt.swp"
    someone_elses.write_text("not ours")
    atomic_write_text(out / "last.pt", "checkpoint")  # a single-file write cleans its own name
    assert not stale[0].exists() and stale[1].exists()
    with OutputSet(out) as o:  # an output set cleans every stale temp of ours in its folder
        o.write_text("messages.jsonl", "{}\n")
    assert not stale[1].exists() and not old_style.exists()
    assert live.exists() and someone_elses.exists()


# --- 10. private files, fsync'd ----------------------------------------------------------------

def test_prepare_outputs_are_private(tmp_path):
    mask = os.umask(0o022)
    try:
        run_prepare(make_input(tmp_path / "in"), tmp_path / "new_out")
    finally:
        os.umask(mask)
    out = tmp_path / "new_out"
    assert out.stat().st_mode & 0o777 == 0o700
    assert {n: (out / n).stat().st_mode & 0o777 for n in OUTPUTS} == {n: 0o600 for n in OUTPUTS}


# --- write errors: disk full, file-size limit, read-only folder --------------------------------

def test_disk_full_while_writing_keeps_the_previous_outputs(tmp_path, monkeypatch):
    inp = make_input(tmp_path / "in")
    out = tmp_path / "out"
    run_prepare(inp, out)
    before = snapshot(out)
    real_open = open

    class FullDisk:
        """A file whose writes fail with ENOSPC after 10 KB, as on a full disk."""

        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, s):
            self.n += len(s)
            if self.n > 10_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(s)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr(pipeline, "open", lambda *a, **k: FullDisk(real_open(*a, **k)), raising=False)
    with pytest.raises(UserError, match=r"disk full \(ENOSPC\); the previous outputs are kept"):
        run_prepare(make_input(tmp_path / "in", 300), out)
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST_NAME, *OUTPUTS])


def test_file_size_limit_is_one_line_and_keeps_the_previous_outputs(tmp_path):
    inp = make_input(tmp_path / "in", 2000)
    out = tmp_path / "out"
    out.mkdir()
    (out / "corpus_train.txt").write_text("previous\n")
    code = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
        import prepare_training_data
        sys.exit(prepare_training_data.main([{str(inp)!r}, "--me", "Sam", "--out", {str(out)!r}]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {out}: cannot write: file too large for this system or limit "
                                             f"(EFBIG); the previous outputs are kept"]
    assert sorted(p.name for p in out.iterdir()) == ["corpus_train.txt"]
    assert (out / "corpus_train.txt").read_text() == "previous\n"


def test_read_only_out_is_one_clear_error(tmp_path, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    (out / "stats.json").write_text("{}")
    if os.geteuid() == 0:  # chmod does not stop root: fail the calls as a read-only mount does
        real_mkdir, real_open = os.mkdir, os.open

        def ro_mkdir(path, *a, **k):
            if str(path).startswith(str(out)):
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return real_mkdir(path, *a, **k)

        def ro_open(path, flags, *a, **k):
            if str(path).startswith(str(out)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return real_open(path, flags, *a, **k)
        monkeypatch.setattr(os, "mkdir", ro_mkdir)
        monkeypatch.setattr(os, "open", ro_open)
    else:
        os.chmod(out, 0o500)
    try:
        with pytest.raises(UserError, match="cannot write: (read-only file system|permission denied)") as e:
            run_prepare(make_input(tmp_path / "in"), out)
        assert e.value.path == str(out)
        with pytest.raises(UserError, match="cannot write"):
            atomic_write_text(out / "x.txt", "x")
    finally:
        monkeypatch.undo()
        os.chmod(out, 0o700)
    assert [p.name for p in out.iterdir()] == ["stats.json"] and json.loads((out / "stats.json").read_text()) == {}


def test_forged_journal_moves_nothing_outside_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / ".graftkit-staging-1-x").mkdir()
    (out / JOURNAL_NAME).write_text(json.dumps({"moves": [["../victim.txt", "stolen.txt"]], "files": {}}))
    with OutputSet(out) as o:
        o.write_text("a.txt", "a")
    assert victim.read_text() == "keep me" and not (out / "stolen.txt").exists()


def test_trainer_finishes_a_half_published_corpus_before_reading_it(tmp_path):
    """The tiny GPT reads corpus_*.txt: a prepare run killed mid-publication is finished first, so the trainer
    never sees new train text beside an old val text."""
    from graftkit.config import load_config
    from graftkit.tiny_gpt.config import TinyGPTConfig

    out = tmp_path / "data"
    names = ["corpus_train.txt", "corpus_val.txt", "x.txt", "y.txt", "z.txt"]
    with OutputSet(out) as o:
        for n in names:
            o.write_text(n, "old\n")
    code = KILL_AFTER_RENAMES.format(root=str(ROOT), out=str(out), kill_at=3).replace(
        'out.write_text(f"f{i}.txt", f"new {i}\\n")', f'out.write_text({names!r}[i], "new\\n")')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 9 and (out / JOURNAL_NAME).exists(), r.stderr
    assert {(out / n).read_text() for n in names} == {"old\n", "new\n"}  # mixed, as the kill left it
    cfg = load_config(TinyGPTConfig, None, [f"train_file={out / names[0]}", f"val_file={out / names[1]}",
                                            f"tokenizer_path={tmp_path / 'tok.json'}", f"out_dir={tmp_path / 'run'}"])
    cfg.check_data_files()
    assert {(out / n).read_text() for n in names} == {"new\n"} and not (out / JOURNAL_NAME).exists()

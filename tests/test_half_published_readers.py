"""Issue 25, section 6: prepare_training_data.py killed between two of its renames leaves one run's files beside
another's (and a journal). Every script that reads a prepare output folder goes through the same check
(graftkit.fileio.check_prepared), which finishes the publication before reading, so no reader trains or evaluates
on one run's train split next to another run's validation split."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from graftkit.config import load_config
from graftkit.errors import UserError
from graftkit.fileio import JOURNAL_NAME, read_manifest
from test_hostile_outputs import run_prepare

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPLITS = ("sharegpt_train.jsonl", "sharegpt_val.jsonl", "corpus_train.txt", "corpus_val.txt", "sharegpt_format.jsonl",
          "messages.jsonl")

def make_input(folder: Path, n: int) -> Path:
    """A WhatsApp export of n messages in conversations of 10 (two days apart), so both splits get some."""
    folder.mkdir(parents=True, exist_ok=True)
    t0 = datetime(2021, 3, 1, 10, 0)
    lines = []
    for i in range(n):
        sender = "Sam" if i % 2 else "Alex"
        t = t0 + timedelta(days=2 * (i // 10), minutes=3 * (i % 10))
        lines.append(f"{t:%d/%m/%Y, %H:%M} - {sender}: note {i} from {sender} about {'pizza' if i % 3 else 'films'}")
    (folder / "WhatsApp Chat with Alex.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


# prepare in a subprocess, killed (as by kill -9) right after the journal and two files were renamed into place
KILLED_PREPARE = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from graftkit.fileio import JOURNAL_NAME
    from graftkit.prepare.pipeline import PrepareOptions, prepare
    real, after_journal = os.replace, [None]
    def replace(a, b):
        real(a, b)
        if str(b).endswith(JOURNAL_NAME):
            after_journal[0] = 0
        elif after_journal[0] is not None:
            after_journal[0] += 1
            if after_journal[0] == 2:
                os._exit(9)
    os.replace = replace
    prepare(PrepareOptions([{inp!r}], out={out!r}, me=["Sam"], progress=False))
""")


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """(half-published folder, the clean new set for comparison): old set = 300 messages, new = 400."""
    base = tmp_path_factory.mktemp("half")
    old_in, new_in = make_input(base / "in_old", 300), make_input(base / "in_new", 400)
    half, clean = base / "half", base / "clean"
    run_prepare(old_in, half)
    run_prepare(new_in, clean)
    r = subprocess.run([sys.executable, "-c", KILLED_PREPARE.format(root=str(ROOT), inp=str(new_in), out=str(half))],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 9, r.stderr[-1500:]
    assert (half / JOURNAL_NAME).exists()
    mixed = [n for n in SPLITS if (half / n).read_bytes() != (clean / n).read_bytes()]
    assert mixed and len(mixed) < len(SPLITS)  # some files of the new run, some of the old: the leak to prevent
    return half, clean


def finished(folder: Path, clean: Path) -> bool:
    return (not (folder / JOURNAL_NAME).exists() and read_manifest(folder) is not None
            and all((folder / n).read_bytes() == (clean / n).read_bytes() for n in SPLITS))


@pytest.fixture
def folder(sets, tmp_path) -> Path:
    half, _ = sets
    copy = tmp_path / "training_data"
    shutil.copytree(half, copy)  # the journal names its staging folder relatively: the copy is the same state
    assert not finished(copy, sets[1])
    return copy


def test_tokenizer_setup_finishes_the_set(folder, sets, tmp_path):
    import tokenizer_setup

    rc = tokenizer_setup.main(["--config", str(ROOT / "tiny_gpt_config.yaml"), "--type", "char", "--train",
                               str(folder / "corpus_train.txt"), "--val", str(folder / "corpus_val.txt"), "--out",
                               str(tmp_path / "tok.json")])
    assert rc == 0 and finished(folder, sets[1])


def test_tiny_gpt_finishes_the_set(folder, sets, tmp_path):
    import train_tiny_gpt
    from graftkit.tiny_gpt.config import TinyGPTConfig

    cfg = load_config(TinyGPTConfig, ROOT / "tiny_gpt_config.yaml", [
        f"train_file={folder / 'corpus_train.txt'}", f"val_file={folder / 'corpus_val.txt'}", "tokenizer_type=char",
        f"tokenizer_path={tmp_path / 'tok.json'}", f"out_dir={tmp_path / 'run'}", "max_iters=1", "n_layer=1",
        "n_embd=16", "n_head=2", "block_size=16", "batch_size=2", "eval_iters=1", "num_samples=0", "device=cpu",
        "dtype=float32", "progress=false"])
    train_tiny_gpt.train(cfg, log=lambda m: None)
    assert finished(folder, sets[1])


def test_lora_data_finishes_the_set(folder, sets):
    from graftkit.lora.config import LoraTrainConfig
    from graftkit.lora.data import load_splits  # what train_lora.run() reads first, before any model

    cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", [
        f"train_file={folder / 'sharegpt_train.jsonl'}", f"val_file={folder / 'sharegpt_val.jsonl'}"])
    train, val = load_splits(cfg)
    assert finished(folder, sets[1])
    n_val = sum(1 for line in (sets[1] / "sharegpt_val.jsonl").read_text().splitlines() if line.strip())
    assert len(val) == n_val and train


@pytest.mark.parametrize("kind", ["lora", "tiny_gpt"])
def test_evaluate_persona_finishes_the_set(folder, sets, tmp_path, kind):
    from graftkit.evaluate.loading import load_target
    from graftkit.lora.config import LoraTrainConfig
    from graftkit.tiny_gpt.config import TinyGPTConfig

    if kind == "lora":
        cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", [
            f"train_file={folder / 'sharegpt_train.jsonl'}", f"val_file={folder / 'sharegpt_val.jsonl'}",
            f"output_dir={tmp_path / 'none'}"])
    else:
        cfg = load_config(TinyGPTConfig, ROOT / "tiny_gpt_config.yaml", [
            f"train_file={folder / 'corpus_train.txt'}", f"val_file={folder / 'corpus_val.txt'}",
            f"out_dir={tmp_path / 'none'}"])
    with pytest.raises(UserError, match="no trained LoRA model|no checkpoint"):  # the data is read before the model
        load_target(kind, cfg, None, max_new_tokens=4, temperature=0.0)
    assert finished(folder, sets[1])


def test_explicit_evaluation_files_are_checked_too(folder, sets, tmp_path):
    from graftkit.evaluate.loading import load_target
    from graftkit.lora.config import LoraTrainConfig

    cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", [f"output_dir={tmp_path / 'none'}"])
    with pytest.raises(UserError, match="no trained LoRA model"):
        load_target("lora", cfg, None, max_new_tokens=4, temperature=0.0,
                    train_file=str(folder / "sharegpt_train.jsonl"), val_file=str(folder / "sharegpt_val.jsonl"))
    assert finished(folder, sets[1])


def test_a_set_that_cannot_be_finished_is_refused(folder, monkeypatch):
    """A read-only copy of a half-published folder (e.g. uploaded to /kaggle/input) cannot be repaired: one line."""
    import os

    from graftkit.fileio import check_prepared

    real = os.replace

    def read_only(a, b):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(UserError, match=r"half-published and cannot be repaired \(Read-only file system\); rerun"):
        check_prepared(folder / "sharegpt_train.jsonl")
    monkeypatch.setattr(os, "replace", real)

"""`torchrun --nproc_per_node=2 train_lora.py` on CPU (gloo): DDP through the Trainer, no launcher of ours.

Two processes split one epoch of the data between them (each trains on its own share; together they
cover it), rank 0 alone writes the adapter and the summary, and a second launch resumes from the
checkpoint. The model is the tiny random Llama, so both launches take seconds of training; most of
the time is two Python start-ups per launch: ~5 min on a 2-core machine shared with other jobs, so it is
marked slow:  python -m pytest tests/test_lora_ddp.py -m slow -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_lora import write_data
from tiny_llama import make_tiny_llama

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def torchrun(*overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "train_lora.py", "--config", "lora_config.yaml", *overrides]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_two_gloo_processes_split_the_data_save_once_and_resume(tmp_path):
    tiny = make_tiny_llama(tmp_path / "tiny")
    data = write_data(tmp_path / "data.jsonl", n=16)
    out = tmp_path / "out"
    common = [f"base_model={tiny}", f"data_file={data}", f"output_dir={out}", "val_fraction=0", "batch_size=2",
              "gradient_accumulation_steps=1", "gradient_checkpointing=false", "max_seq_length=128",
              "logging_steps=1", "save_steps=2", "packing=false", "learning_rate=1e-2", "contrast_pairs=0"]

    p = torchrun(*common, "max_steps=2")
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads((out / "train_summary.json").read_text())
    assert s["processes"] == 2 and s["global_step"] == 2
    # 2 steps x 2 conversations on each rank: each rank trained on its own (different) conversations
    a, b = s["label_tokens_per_rank"]
    assert a > 0 and b > 0
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "checkpoint-2").is_dir()
    assert p.stdout.count("done: step 2") == 1  # rank 0 alone reports (and saves)

    # together the ranks cover the epoch: 16 conversations = 2 ranks x 2 per step x 4 steps
    p = torchrun(*common, "max_steps=0", "epochs=1")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resuming from" in p.stdout
    s = json.loads((out / "train_summary.json").read_text())
    assert s["global_step"] == 4 and s["steps_this_run"] == 2  # 8 per rank, half of the 16 each
    assert (out / "checkpoint-4").is_dir()


def test_persona_score_under_two_processes_selects_one_checkpoint(tmp_path):
    """The persona score at every evaluation, shared between the ranks (graftkit.lora.persona.score_shared):
    the run finishes, logs the persona numbers once per evaluation and keeps the best-gap checkpoint."""
    tiny = make_tiny_llama(tmp_path / "tiny")
    data = write_data(tmp_path / "data.jsonl", n=40)
    out = tmp_path / "out"
    p = torchrun(f"base_model={tiny}", f"data_file={data}", f"output_dir={out}", "val_fraction=0.2",
                 "persona_holdout=0.25", "persona_messages=50", "batch_size=2", "gradient_accumulation_steps=1",
                 "gradient_checkpointing=false", "max_seq_length=128", "packing=false", "learning_rate=1e-2",
                 "max_steps=4", "eval_steps=2", "save_steps=2", "save_total_limit=0", "eval_on_start=false",
                 "early_stopping_patience=0", "logging_steps=1")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    gaps = {r["step"]: r["eval_persona_gap"] for r in rows if "eval_persona_gap" in r}
    assert sorted(gaps) == [2, 4]
    s = json.loads((out / "train_summary.json").read_text())
    kept = s["selection"]["kept_step"]
    assert gaps[kept] == max(gaps.values())

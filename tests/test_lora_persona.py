"""The persona score during LoRA training (tiny random Llama, CPU, seconds): logged at every evaluation, the
kept adapter is the checkpoint with the best persona gap, early stopping watches it, and the slice it is
measured on is held out of training and named for the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftkit.evaluate.loading import selection_note
from test_lora import tiny_cfg, write_data
from tiny_llama import make_tiny_llama


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("lora_persona")
    return {"tiny": make_tiny_llama(base / "tiny"), "data": write_data(base / "data.jsonl", n=40), "base": base}


def evals(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "eval_loss" in r]


def adapter_tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


SELECT = ("max_steps=8", "eval_steps=2", "save_steps=2", "save_total_limit=0", "persona_holdout=0.25",
          "persona_messages=50", "early_stopping_patience=0", "eval_on_start=false")


@pytest.fixture(scope="module")
def selected(env):
    """A run evaluated every 2 steps, every checkpoint kept."""
    from train_lora import run

    out = env["base"] / "select"
    return run(tiny_cfg(env["tiny"], env["data"], out, *SELECT)), out


def test_kept_adapter_is_the_checkpoint_with_the_best_persona_gap(selected):
    summary, out = selected
    rows = evals(out)
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    for r in rows:  # every evaluation has the persona gap with its interval and both sides' drops
        assert r["eval_persona_gap_lo"] <= r["eval_persona_gap"] <= r["eval_persona_gap_hi"]
        assert abs(r["eval_persona_gap"] - (r["eval_persona_drop_person"] - r["eval_persona_drop_partners"])) < 1e-9
        # and the report's other two persona numbers, from the same slice: who wrote it (hits@1, k+1 choices)
        # and the speaker test (AUC with the base's beside it)
        assert r["eval_persona_who_wrote_it_lo"] <= r["eval_persona_who_wrote_it"] <= r["eval_persona_who_wrote_it_hi"]
        assert 0 <= r["eval_persona_who_wrote_it"] <= 1 and 0 < r["eval_persona_who_wrote_it_chance"] <= 0.5
        assert r["eval_persona_speaker_auc_lo"] <= r["eval_persona_speaker_auc"] <= r["eval_persona_speaker_auc_hi"]
        assert 0 <= r["eval_persona_speaker_auc_base"] <= 1
    # the base's speaker AUC never changes (adapter off); the tuned one moves as the adapter trains
    assert len({r["eval_persona_speaker_auc_base"] for r in rows}) == 1
    assert len({r["eval_persona_speaker_auc"] for r in rows}) > 1
    gaps = [r["eval_persona_gap"] for r in rows]
    assert len(set(gaps)) > 1  # the adapter changes, so does the score
    best = rows[max(range(len(rows)), key=lambda i: gaps[i])]["step"]
    sel = summary["selection"]
    assert sel["select_on"] == "persona gap" and sel["kept_step"] == best
    kept, ckpt = adapter_tensors(out / "adapter"), adapter_tensors(out / f"checkpoint-{best}")
    assert kept.keys() == ckpt.keys() and all((kept[k] == ckpt[k]).all() for k in kept)
    if best != 8:  # and not simply the last step
        last = adapter_tensors(out / "checkpoint-8")
        assert any((kept[k] != last[k]).any() for k in kept)
    # the slice is held out of training, by conversation, and named for evaluate_persona.py's report
    hold = sel["persona_holdout"]
    assert hold["conversations"] == 8 and len(hold["lines"]) == 8  # 25 % of the 32 training conversations
    assert summary["data"]["train"]["conversations"] == 32 - 8
    meta = json.loads((out / "adapter" / "graftkit_lora.json").read_text())
    assert meta["selection"] == sel and meta["train_on"] == "both"
    note = selection_note(meta["selection"])
    assert f"step {best}" in note and "8 conversations held out of" in note and "not on the conversations" in note
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_early_stopping_watches_the_persona_gap(env):
    from train_lora import run

    out = env["base"] / "early"
    # no later evaluation can beat the first by 100 nats/token: patience 1 stops at the second evaluation
    summary = run(tiny_cfg(env["tiny"], env["data"], out, "max_steps=12", "eval_steps=2", "save_steps=2",
                           "save_total_limit=0", "persona_holdout=0.25", "persona_messages=50",
                           "early_stopping_patience=1", "early_stopping_threshold=100", "eval_on_start=false",
                           "val_max_conversations=3"))
    assert summary["stopped_early"] and summary["global_step"] == 4
    assert summary["data"]["val"]["conversations"] == 3  # the val-loss pass reads 3 of the 8, the slice is untouched
    assert summary["selection"]["persona_holdout"]["conversations"] == 8
    assert [r["step"] for r in evals(out)] == [2, 4]
    assert summary["selection"]["kept_step"] in (2, 4)


def test_select_on_loss_and_no_holdout_keep_the_old_behaviour(env):
    from train_lora import run

    out = env["base"] / "loss"
    summary = run(tiny_cfg(env["tiny"], env["data"], out, "max_steps=4", "eval_steps=2", "save_steps=2",
                           "persona_holdout=0", "eval_on_start=false", "learning_rate=auto"))
    assert all("eval_persona_gap" not in r for r in evals(out))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["learning_rate"] for r in rows if "learning_rate" in r]
    assert lrs and 2e-3 < max(lrs) <= 3e-3  # auto: a model under 500M parameters trains at 3e-3
    assert summary["selection"]["persona_holdout"] is None and summary["selection"]["select_on"] == "val loss"
    assert summary["data"]["train"]["conversations"] == 32


def test_selection_table_shows_all_three_persona_numbers_and_the_kept_step():
    from graftkit.lora.persona import selection_table

    hist = [{"loss": 3.0, "step": 5},
            {"step": 10, "eval_loss": 3.2, "eval_persona_gap": 0.1, "eval_persona_gap_lo": -0.05,
             "eval_persona_gap_hi": 0.2, "eval_persona_who_wrote_it": 0.125, "eval_persona_who_wrote_it_lo": 0.05,
             "eval_persona_who_wrote_it_hi": 0.2, "eval_persona_speaker_auc": 0.61,
             "eval_persona_speaker_auc_lo": 0.55, "eval_persona_speaker_auc_hi": 0.67},
            {"step": 20, "eval_loss": 3.1}]  # select_on: loss, or no slice: the persona columns are empty
    lines = selection_table(hist, kept_step=10).splitlines()
    assert len(lines) == 3 and "who wrote it" in lines[0] and "speaker AUC" in lines[0]
    assert "+0.1000 [-0.0500, +0.2000]" in lines[1] and "0.125 [0.050, 0.200]" in lines[1]
    assert "0.610 [0.550, 0.670]" in lines[1] and lines[1].endswith("<- kept as adapter/")
    assert lines[2].split()[:2] == ["20", "3.1000"] and "kept" not in lines[2] and lines[2].count("-") == 3


def test_checkpoints_rescored_give_the_numbers_the_run_logged(env, selected, tmp_path):
    """bench/persona_checkpoints.py reloads each checkpoint into a fresh model and scores the same slice: the
    numbers must be the ones the run logged at that step (the same weights, the same items)."""
    import subprocess
    import sys

    from test_lora import ROOT

    _, out = selected
    cfg_args = [f"base_model={env['tiny']}", f"data_file={env['data']}", f"output_dir={out}", "val_fraction=0.2",
                "max_seq_length=128", *SELECT]
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "persona_checkpoints.py"), str(out),
                          "--config", str(ROOT / "lora_config.yaml"), *cfg_args, "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rescored = {r["step"]: r for r in json.loads((tmp_path / "r.json").read_text())}
    logged = {r["step"]: r for r in evals(out)}
    assert sorted(rescored) == sorted(logged) == [2, 4, 6, 8]
    for step, r in rescored.items():
        for key in ("eval_persona_gap", "eval_persona_who_wrote_it", "eval_persona_speaker_auc"):
            assert abs(r[key] - logged[step][key]) < 1e-4, (step, key)
    assert "kept" not in res.stdout and len(res.stdout.splitlines()) == 6


class _RecordingModel:
    """A stand-in ReplyModel: a score that depends on the item alone, and a record of what it was asked."""

    def __init__(self):
        self.seen: list[str] = []

    def score(self, items):
        self.seen += [text for _, text, _ in items]
        return [(len(ctx) * 10.0 + len(text) / 4, len(text)) for ctx, text, _ in items]


ITEMS = [(["hi"] * (i % 4), "x" * (i + 1), "assistant") for i in range(11)]


def _shared_worker(rank: int, world: int, init_file: str, out_dir: str, n_items: int) -> None:
    import torch.distributed as dist

    from graftkit.lora.persona import score_shared

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = _RecordingModel()
    arr = score_shared(model, ITEMS[:n_items])
    Path(out_dir, f"{rank}.json").write_text(json.dumps({"arr": arr.tolist(), "seen": model.seen}))
    dist.destroy_process_group()


@pytest.mark.parametrize("world,n_items", [(2, 11), (3, 2)])
def test_persona_score_is_shared_out_between_processes(tmp_path, world, n_items):
    """Under torchrun each rank scores its own share of the persona items once, and every rank ends with the
    whole array, in order, equal to one process scoring everything (gloo, real processes)."""
    import torch.multiprocessing as mp

    from graftkit.lora.persona import score_shared

    mp.spawn(_shared_worker, args=(world, str(tmp_path / "init"), str(tmp_path), n_items), nprocs=world, join=True)
    alone = score_shared(_RecordingModel(), ITEMS[:n_items]).tolist()
    got = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(world)]
    assert all(g["arr"] == alone for g in got)
    seen = [g["seen"] for g in got]
    assert [t for s in seen for t in s] == [text for _, text, _ in ITEMS[:n_items]]  # each item once, in order
    assert max(map(len, seen)) - min(map(len, seen)) <= 1  # the work is split evenly

"""Tiny GPT pipeline: model, sampler, training loop, exact resume, checkpoints, export, CLI errors."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from graftkit.checkpoint import atomic_torch_save, capture_rng_state, load_checkpoint, restore_rng_state
from graftkit.config import load_config
from graftkit.corpus import ME, THEM, render_corpus
from graftkit.errors import ConfigError, UserError
from graftkit.tiny_gpt.config import TinyGPTConfig
from graftkit.tiny_gpt.data import EpochSampler, eval_batches
from graftkit.tiny_gpt.model import ModelArgs, TinyGPT

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("hey", "lol", "ok", "see you", "tonight", "pizza", "yes", "no way", "haha", "where", "now", "😀")


def make_corpus(n_sessions: int, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    sessions = []
    for _ in range(n_sessions):
        turns = []
        for t in range(int(torch.randint(2, 6, (1,), generator=g))):
            idx = torch.randint(0, len(WORDS), (3,), generator=g).tolist()
            turns.append((t % 2 == 1, " ".join(WORDS[i] for i in idx)))
        sessions.append(turns)
    return render_corpus(sessions)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny_data")
    (d / "train.txt").write_text(make_corpus(220, 0), encoding="utf-8")
    (d / "val.txt").write_text(make_corpus(30, 1), encoding="utf-8")
    return d


def tiny_cfg(data_dir: Path, out_dir: Path, **kw) -> TinyGPTConfig:
    base = dict(train_file=str(data_dir / "train.txt"), val_file=str(data_dir / "val.txt"),
                tokenizer_path=str(data_dir / "tok_char.json"), tokenizer_type="char", min_char_freq=1,
                n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8, dropout=0.1, bias=False,
                learning_rate=3e-3, min_lr=3e-4, warmup_iters=5, max_iters=20, eval_interval=10, eval_iters=2,
                log_interval=5, patience=0, num_samples=1, max_new_tokens=16, out_dir=str(out_dir),
                device="cpu", dtype="float32", progress=False, seed=7)
    base.update(kw)
    cfg = TinyGPTConfig(**base)
    cfg.validate()
    return cfg


def quiet(msg: str) -> None:
    pass


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- model

def test_param_count_and_shapes():
    args = ModelArgs(vocab_size=100, block_size=16, n_layer=2, n_head=4, n_embd=32, bias=False)
    m = TinyGPT(args)
    C, L, V = 32, 2, 100
    per_block = 2 * C + (C * 3 * C) + C * C + (C * 4 * C) + (4 * C * C)  # 2 LN gains + attn + mlp
    assert m.num_params() == V * C + 16 * C + L * per_block + C  # tied head counted once
    assert m.num_params(non_embedding=True) == m.num_params() - 16 * C
    idx = torch.randint(0, V, (3, 16))
    logits, loss = m(idx, idx)
    assert logits.shape == (3, 16, V) and loss.ndim == 0
    assert abs(loss.item() - math.log(V)) < 0.5  # ~uniform at init
    last, none = m(idx, last_only=True)
    assert last.shape == (3, 1, V) and none is None
    assert torch.allclose(last[:, 0], logits[:, -1], atol=1e-5)
    assert m.lm_head.weight is m.wte.weight
    with pytest.raises(ValueError, match="block_size"):
        m(torch.zeros(1, 17, dtype=torch.long))
    with_bias = TinyGPT(dataclasses.replace(args, bias=True))
    assert with_bias.num_params() - m.num_params() == L * (2 * C + 3 * C + C + 4 * C + C) + C


def test_attention_is_causal():
    m = TinyGPT(ModelArgs(vocab_size=50, block_size=12, n_layer=2, n_head=2, n_embd=16)).eval()
    a = torch.randint(0, 50, (1, 12))
    b = a.clone()
    b[0, 8:] = (b[0, 8:] + 1) % 50
    la, _ = m(a)
    lb, _ = m(b)
    assert torch.allclose(la[0, :8], lb[0, :8], atol=1e-6) and not torch.allclose(la[0, 8:], lb[0, 8:])


def test_optimizer_groups_and_lr_schedule(data_dir, tmp_path):
    from train_tiny_gpt import get_lr_scale, make_optimizer

    cfg = tiny_cfg(data_dir, tmp_path, bias=True, warmup_iters=10, max_iters=100, optimizer="adamw",
                   lr_schedule="cosine")
    m = TinyGPT(ModelArgs(vocab_size=40, block_size=32, n_layer=2, n_head=2, n_embd=32, bias=True))
    opt = make_optimizer(m, cfg)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == cfg.weight_decay and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(m.parameters()))
    lrs = [get_lr_scale(i, cfg, 100) * cfg.learning_rate for i in range(101)]
    assert lrs[0] < lrs[9] < lrs[10] == pytest.approx(cfg.learning_rate)
    assert lrs[100] == pytest.approx(cfg.min_lr) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


# ----------------------------------------------------------------------------- data

def test_sampler_is_deterministic_covers_epoch_and_resumes():
    data = torch.arange(1000)
    s = EpochSampler(data, block_size=10, batch_size=4, seed=3)
    assert s.n_windows == (1000 - 1 - 10) // 10
    epoch0 = []
    for _ in range(s.batches_per_epoch):
        x, y = s.next_batch()
        assert torch.equal(y, x + 1)  # targets are inputs shifted by one (data is arange)
        epoch0 += x[:, 0].tolist()
    assert len(set(epoch0)) == len(epoch0)  # no window twice within an epoch
    state = s.state_dict()
    nxt = [s.next_batch()[0] for _ in range(3)]
    assert s.state.epoch == 1
    s2 = EpochSampler(data, block_size=10, batch_size=4, seed=3)
    s2.load_state_dict(state)
    assert all(torch.equal(a, s2.next_batch()[0]) for a in nxt)
    # two ranks split each global batch between them
    r0 = EpochSampler(data, 10, 2, seed=3, rank=0, world_size=2).next_batch()[0]
    r1 = EpochSampler(data, 10, 2, seed=3, rank=1, world_size=2).next_batch()[0]
    one = EpochSampler(data, 10, 4, seed=3).next_batch()[0]
    assert torch.equal(torch.cat([r0, r1]), one)


def test_eval_batches_fixed():
    data = torch.arange(500)
    a = [x for x, _ in eval_batches(data, 16, 4, 3)]
    b = [x for x, _ in eval_batches(data, 16, 4, 3)]
    assert len(a) == 3 and all(torch.equal(p, q) for p, q in zip(a, b))


# ----------------------------------------------------------------------------- training

def test_loss_decreases_and_outputs(trained):
    import json

    out = Path(trained.out_dir)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["iter"] for r in evals] == [0, 15, 30]
    assert evals[-1]["val_loss"] < evals[1]["val_loss"] < evals[0]["val_loss"] - 0.5
    assert evals[-1]["val_bpc"] > 0 and evals[-1]["samples"][0].startswith(trained.prompt)
    assert [r["iter"] for r in rows if r["kind"] == "train"] == [5, 10, 15, 20, 25, 30]
    assert all(r["tok_s"] > 0 and 0 < r["mfu"] < 2 for r in rows if r["kind"] == "train")
    for name in ("last.pt", "best.pt", "loss_curve.png", "metrics.jsonl"):
        assert (out / name).is_file()
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["iter"] == 30 and ckpt["tokenizer"]["vocab_size"] == ckpt["model_args"]["vocab_size"]
    assert isinstance(ckpt["config"], dict) and ckpt["sampler"]["epoch"] >= 0
    assert isinstance(ckpt["rng"]["torch"], torch.Tensor)
    for key in ("model", "optimizer", "scaler", "iter", "epoch", "rng", "sampler", "config", "tokenizer",
                "tokenizer_json", "model_args", "best_val_loss"):
        assert key in ckpt, key
    assert set(ckpt["rng"]) >= {"python", "numpy", "torch"} and {"epoch", "pos"} <= set(ckpt["sampler"])
    assert len(ckpt["tokenizer"]["sha256"]) == 64 and ckpt["config"]["n_embd"] == trained.n_embd


def test_console_log_format(trained):
    """The issue's line, `iter 120 | loss 1.93 | 142.0 ms | 21630 tok/s | mfu 61%`, then extras."""
    log = "\n".join(TRAINED_LOG)
    lines = [m for m in TRAINED_LOG if m.startswith("iter ")]
    assert len(lines) == 6
    for line in lines:
        assert re.match(r"^iter \d+ \| loss \d+\.\d+ \| \d+\.\d ms \| \d+ tok/s \| mfu \d+% \| lr \S+ \| epoch "
                        r"\d+\.\d\d$", line), line
    assert re.search(r"model: [\d,]+ parameters \(0\.03M", log)  # the parameter count
    evals = [m for m in TRAINED_LOG if m.startswith("eval iter ")]
    assert len(evals) == 3 and all(re.search(r"train loss [\d.]+ \| val loss [\d.]+ \| val ppl [\d.]+ \| "
                                             r"val bpc [\d.]+", m) for m in evals)
    assert sum(m.startswith("--- sample 1 (iter ") for m in TRAINED_LOG) == 3
    assert re.search(r"dtype float32 \(set in config\)", log) and "done (max_iters)" in log


def test_max_iters_derived_from_epochs(data_dir, tmp_path):
    from graftkit.tiny_gpt.data import derive_max_iters

    cfg = tiny_cfg(data_dir, tmp_path, max_iters=None, epochs=10, batch_size=8, block_size=32,
                   gradient_accumulation_steps=2)
    assert derive_max_iters(cfg, 51200, 1) == 10 * 51200 // (8 * 32 * 2)
    assert derive_max_iters(cfg, 51200, 2) == 10 * 51200 // (8 * 32 * 2 * 2)


def _state(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_exact_resume_is_bit_identical(data_dir, tmp_path):
    from train_tiny_gpt import train

    kw = dict(max_iters=14, eval_interval=5, gradient_accumulation_steps=2, dropout=0.1)
    train(tiny_cfg(data_dir, tmp_path / "straight", **kw), log=quiet)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(data_dir, tmp_path / "resumed", **kw), log=quiet, interrupt_at=7)
    assert _state(tmp_path / "resumed/last.pt")["iter"] == 7
    logs = []
    train(tiny_cfg(data_dir, tmp_path / "resumed", **kw), log=logs.append)
    assert any("resumed from" in m and "iter 7" in m for m in logs)
    a, b = _state(tmp_path / "straight/last.pt"), _state(tmp_path / "resumed/last.pt")
    assert a["iter"] == b["iter"] == 14
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for pid, st in a["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(v, b["optimizer"]["state"][pid][k]), (pid, k)
    assert a["sampler"] == b["sampler"]
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    # the resumed run's metrics have no duplicate evaluations
    import json

    rows = [json.loads(line) for line in (tmp_path / "resumed/metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows if r["kind"] == "eval"] == [0, 5, 10, 14]


def test_resume_refuses_other_tokenizer_or_shape(data_dir, tmp_path):
    from train_tiny_gpt import train

    out = tmp_path / "run"
    train(tiny_cfg(data_dir, out, max_iters=2, eval_interval=2), log=quiet)
    other_tok = tmp_path / "other_tok.json"
    other_tok.write_text((data_dir / "tok_char.json").read_text().replace('"a":', '"a" :'), encoding="utf-8")
    with pytest.raises(UserError, match="differs from the one this checkpoint was trained with"):
        train(tiny_cfg(data_dir, out, max_iters=4, tokenizer_path=str(other_tok)), log=quiet)
    with pytest.raises(UserError, match="n_embd=32"):
        train(tiny_cfg(data_dir, out, max_iters=4, n_embd=48), log=quiet)
    train(tiny_cfg(data_dir, out, max_iters=2, n_embd=48, init_from="scratch"), log=quiet)  # fresh is fine


def test_atomic_checkpoint_survives_crash_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"w": torch.arange(5), "iter": 1}, path)
    real_save = torch.save

    def crashing_save(obj, f, *a, **kw):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError):
        atomic_torch_save({"w": torch.zeros(5), "iter": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    ckpt = load_checkpoint(path)
    assert ckpt["iter"] == 1 and torch.equal(ckpt["w"], torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind
    path.write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot load checkpoint"):
        load_checkpoint(path)


def test_rng_state_round_trip_weights_only(tmp_path):
    import random

    import numpy as np

    state = capture_rng_state()
    atomic_torch_save(state, tmp_path / "rng.pt")
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    import train_tiny_gpt as train_mod

    out = tmp_path / "run"
    calls = {"n": 0}
    real_forward = TinyGPT.forward

    def poisoned(self, idx, targets=None, last_only=False, cache=None):
        logits, loss = real_forward(self, idx, targets, last_only, cache)
        if targets is not None and self.training:
            calls["n"] += 1
            if calls["n"] > 6:
                loss = loss * float("nan")
        return logits, loss

    monkeypatch.setattr(TinyGPT, "forward", poisoned)
    with pytest.raises(train_mod.TrainingDiverged, match="loss became nan at iter 6"):
        train_mod.train(tiny_cfg(data_dir, out, max_iters=20, eval_interval=5), log=quiet)
    ckpt = _state(out / "last.pt")
    assert ckpt["iter"] == 5 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_early_stopping_after_patience_evaluations(data_dir, tmp_path, monkeypatch):
    import train_tiny_gpt as train_mod

    vals = iter([2.0, 1.5, 1.6, 1.55, 1.7, 1.4])  # best at iter 5, then no better for 3 evaluations
    monkeypatch.setattr(train_mod, "estimate_loss", lambda *a: {"train": 1.0, "val": next(vals)})
    logs = []
    s = train_mod.train(tiny_cfg(data_dir, tmp_path / "run", max_iters=100, eval_interval=5, patience=3,
                                 num_samples=0), log=logs.append)
    assert s["stopped_by"] == "early stopping" and s["iters"] == 20
    assert s["best_iter"] == 5 and s["best_val_loss"] == 1.5
    assert _state(tmp_path / "run/best.pt")["iter"] == 5 and _state(tmp_path / "run/last.pt")["iter"] == 20
    assert any(m.startswith("early stopping: val loss has not improved for 3 evaluations") for m in logs)
    # running again does not train on: it says so and exits cleanly
    logs.clear()
    s = train_mod.train(tiny_cfg(data_dir, tmp_path / "run", max_iters=100, eval_interval=5, patience=3,
                                 num_samples=0), log=logs.append)
    assert s["stopped_by"] == "already done" and any("already trained to iter 20" in m for m in logs)


def test_dtype_auto_fp32_on_cpu_without_native_bf16(monkeypatch):
    from graftkit.tiny_gpt import runtime

    native = runtime.cpu_fast_bf16()
    assert native == (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    if not native:  # e.g. an AVX2-only CPU: emulated bf16 is far slower than fp32
        assert runtime.resolve_dtype("auto", "cpu")[0] == torch.float32
    monkeypatch.setattr(runtime, "cpu_fast_bf16", lambda: False)
    assert runtime.resolve_dtype("auto", "cpu")[0] == torch.float32
    monkeypatch.setattr(runtime, "cpu_fast_bf16", lambda: True)
    assert runtime.resolve_dtype("auto", "cpu")[0] == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert runtime.resolve_dtype("auto", "cuda")[0] == torch.bfloat16  # Ampere or newer
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert runtime.resolve_dtype("auto", "cuda:1") == (torch.float16, "GPU without bf16: fp16 autocast + GradScaler")
    assert runtime.resolve_dtype("auto", "mps")[0] == torch.float32
    assert runtime.resolve_dtype("bfloat16", "cpu")[0] == torch.bfloat16  # an explicit choice is kept
    with pytest.raises(ConfigError, match="float16 is not supported on CPU"):
        runtime.resolve_dtype("float16", "cpu")


def test_device_auto_prefers_cuda_then_mps(monkeypatch):
    from graftkit.tiny_gpt import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="device=cuda but CUDA is not available"):
        runtime.resolve_device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_device("auto") == "cuda" and runtime.resolve_device("cuda:1") == "cuda:1"


def test_fp16_uses_grad_scaler(data_dir, tmp_path, monkeypatch):
    """What auto picks on pre-Ampere GPUs; run here through CPU fp16 autocast to exercise the scaler path."""
    import train_tiny_gpt as train_mod
    from graftkit.tiny_gpt import runtime

    monkeypatch.setattr(runtime, "resolve_dtype", lambda name, device: (torch.float16, "test"))
    s = train_mod.train(tiny_cfg(data_dir, tmp_path / "fp16", max_iters=4, eval_interval=4, num_samples=0), log=quiet)
    ckpt = _state(tmp_path / "fp16/last.pt")
    assert s["iters"] == 4 and ckpt["scaler"]["scale"] > 0 and ckpt["scaler"]["_growth_tracker"] == 4
    assert math.isfinite(s["final_val_loss"])


def test_wandb_is_off_by_default_and_optional(data_dir, tmp_path, monkeypatch):
    from train_tiny_gpt import train

    assert TinyGPTConfig().wandb is False
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    with pytest.raises(UserError, match="pip install wandb"):
        train(tiny_cfg(data_dir, tmp_path / "w", max_iters=2, eval_interval=2, wandb=True), log=quiet)


def test_tokenizer_is_built_when_missing(data_dir, tmp_path):
    from graftkit.tiny_gpt.tokenizer import ensure_tokenizer

    logs = []
    path = tmp_path / "sub" / "tok.json"
    tok = ensure_tokenizer(tiny_cfg(data_dir, tmp_path, tokenizer_path=str(path), tokenizer_type="bpe",
                                    vocab_size=300), log=logs.append)
    assert path.is_file() and tok.kind == "bpe" and "not found: building a bpe tokenizer" in logs[0]
    with pytest.raises(ConfigError, match="is a bpe tokenizer but tokenizer_type is char"):
        ensure_tokenizer(tiny_cfg(data_dir, tmp_path, tokenizer_path=str(path)), log=quiet)


@pytest.mark.slow
def test_compile_option_trains(data_dir, tmp_path):
    """compile=true (torch.compile; on CPU it needs a C++ compiler): same loop, checkpoint without _orig_mod."""
    from train_tiny_gpt import train

    s = train(tiny_cfg(data_dir, tmp_path / "c", max_iters=4, eval_interval=4, num_samples=1, compile=True), log=quiet)
    ckpt = _state(tmp_path / "c/last.pt")
    assert s["iters"] == 4 and math.isfinite(s["final_val_loss"])
    assert not any(k.startswith("_orig_mod") for k in ckpt["model"])


def test_ddp_gloo_world_size_one(data_dir, tmp_path, monkeypatch):
    from train_tiny_gpt import train

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)).items():
        monkeypatch.setenv(k, v)
    s = train(tiny_cfg(data_dir, tmp_path / "ddp", max_iters=4, eval_interval=4, gradient_accumulation_steps=2),
              log=quiet)
    assert s["iters"] == 4 and (tmp_path / "ddp/last.pt").is_file()
    assert not torch.distributed.is_initialized()


# ----------------------------------------------------------------------------- generation, export

TRAINED_LOG: list[str] = []


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    from train_tiny_gpt import train

    out = tmp_path_factory.mktemp("trained")
    cfg = tiny_cfg(data_dir, out, max_iters=30, eval_interval=15, dropout=0.0)
    TRAINED_LOG.clear()
    train(cfg, log=TRAINED_LOG.append)
    return cfg


def test_chat_answers_as_me_with_piped_stdin(trained):
    from graftkit.tiny_gpt.generate import chat
    from graftkit.tiny_gpt.checkpoints import load_for_inference

    model, tok, path, _ = load_for_inference(trained)
    assert path.name == "best.pt"
    out = io.StringIO()
    n = chat(model, tok, max_new_tokens=20, temperature=0.8, top_k=10, seed=0,
             stdin=io.StringIO("hey\n\n/reset\nwhere are you 😀\n" + "ok\n" * 12), stdout=out)
    assert n == 14
    lines = out.getvalue().splitlines()
    assert "(history cleared)" in lines and sum(1 for line in lines if line.startswith("me> ")) >= 14
    assert THEM not in out.getvalue()


def test_cli_sample_chat_and_export(trained, tmp_path, monkeypatch, capsys):
    import train_tiny_gpt

    overrides = [f"{k}={v}" for k, v in (("out_dir", trained.out_dir), ("train_file", trained.train_file),
                                         ("val_file", trained.val_file), ("device", "cpu"), ("num_samples", 2))]
    assert train_tiny_gpt.main(["--config", "tiny_gpt_config.yaml", "--sample", "<|them|>hey\\n<|me|>", *overrides]) == 0
    out = capsys.readouterr().out
    assert out.count("--- sample") == 2 and f"{THEM}hey\n{ME}" in out
    assert train_tiny_gpt.main(["--config", "tiny_gpt_config.yaml", "--sample", "temperature=0.5", *overrides]) == 0
    assert capsys.readouterr().out.count(trained.prompt) == 2  # `--sample key=value`: the config's prompt
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi there\nwhat now\n"))
    assert train_tiny_gpt.main(["--config", "tiny_gpt_config.yaml", "--chat", *overrides]) == 0
    assert capsys.readouterr().out.count("me> ") >= 2
    dest = tmp_path / "hf"
    assert train_tiny_gpt.main(["--config", "tiny_gpt_config.yaml", "--export-hf", str(dest), *overrides]) == 0
    assert (dest / "config.json").is_file() and (dest / "model.safetensors").is_file()
    assert (dest / "tokenizer.json").is_file()


@pytest.mark.parametrize("bias", [False, True])
def test_hf_export_logits_match(tmp_path, bias, data_dir):
    from transformers import AutoTokenizer, GPT2LMHeadModel

    from graftkit.tiny_gpt.export import export_hf
    from graftkit.tiny_gpt.tokenizer import ensure_tokenizer

    tok = ensure_tokenizer(tiny_cfg(data_dir, tmp_path), log=quiet)
    torch.manual_seed(0)
    model = TinyGPT(ModelArgs(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32, bias=bias))
    with torch.no_grad():  # make biases and LayerNorm parameters non-trivial
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    export_hf(model, tok, tmp_path / "hf")
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "hf", torch_dtype=torch.float32).eval()
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = f"{THEM}hey lol\n{ME}ok see you 😀\n"
    ids = tok.encode(text)
    assert hf_tok.encode(text) == ids and hf_tok.decode(ids) == text
    x = torch.tensor([ids + ids[:32 - len(ids)]][:32])[:, :32]
    with torch.no_grad():
        ours, _ = model(x)
        theirs = hf(x).logits
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-4), (ours - theirs).abs().max()


# ----------------------------------------------------------------------------- config and CLI errors

def test_config_validation_messages(tmp_path):
    with pytest.raises(ConfigError, match=r"n_embd \(130\) must be divisible by n_head \(4\)"):
        load_config(TinyGPTConfig, None, ["n_embd=130"])
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        load_config(TinyGPTConfig, None, ["learnig_rate=1e-3"])
    cfg = load_config(TinyGPTConfig, ROOT / "tiny_gpt_config.yaml")
    assert cfg == TinyGPTConfig()  # the YAML states the defaults
    j = tmp_path / "c.json"
    j.write_text('{"n_layer": 2, "epochs": 12}')
    assert load_config(TinyGPTConfig, j).n_layer == 2


def test_yaml_documents_every_key():
    text = (ROOT / "tiny_gpt_config.yaml").read_text()
    keys = {f.name for f in dataclasses.fields(TinyGPTConfig)}
    found = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+):(.*)$", line)
        if m:
            found[m.group(1)] = m.group(2)
    assert set(found) == keys
    for k, rest in found.items():
        assert "#" in rest, f"{k} has no comment"


def test_help_lists_every_key_and_flag():
    import train_tiny_gpt

    text = train_tiny_gpt.build_parser().format_help()
    for flag in ("--config", "--sample", "--chat", "--export-hf", "--checkpoint"):
        assert flag in text
    for f in dataclasses.fields(TinyGPTConfig):
        assert f"  {f.name} = " in text


@pytest.mark.parametrize("args, pattern", [
    (["learnig_rate=0.01"], r"unknown key 'learnig_rate' \(did you mean 'learning_rate'\?\)"),
    (["n_embd=100", "n_head=3"], r"n_embd \(100\) must be divisible by n_head \(3\)"),
    (["train_file=/nonexistent/corpus.txt"], r"train_file not found: /nonexistent/corpus.txt"),
    (["n_layer=two"], r"n_layer: expected an integer, got 'two'"),
    (["dtype=fp8"], r"dtype: must be one of 'auto', 'float32', 'bfloat16', 'float16', got 'fp8'"),
    (["learning_rate=-1"], r"learning_rate must be > 0, got -1"),
])
def test_cli_bad_config_is_one_line_error(args, pattern):
    r = subprocess.run([sys.executable, "train_tiny_gpt.py", "--config", "tiny_gpt_config.yaml", *args],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("error: ") and re.search(pattern, r.stderr), r.stderr


def test_cli_bad_config_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_layer: 2\nn_layers: 3\n", encoding="utf-8")
    for config, pattern in ((bad, r"bad\.yaml.*unknown key 'n_layers' \(did you mean 'n_layer'\?\)"),
                            (tmp_path / "missing.yaml", r"missing\.yaml: config file not found")):
        r = subprocess.run([sys.executable, "train_tiny_gpt.py", "--config", str(config)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert r.stderr.startswith("error: ") and re.search(pattern, r.stderr), r.stderr


def test_ctrl_c_saves_last_and_exits_130(data_dir, tmp_path):
    out = tmp_path / "run"
    cfg = tiny_cfg(data_dir, out, max_iters=100000, eval_interval=100000, log_interval=1, num_samples=0)
    overrides = [f"{f.name}={getattr(cfg, f.name)}" for f in dataclasses.fields(cfg)
                 if f.name in ("train_file", "val_file", "tokenizer_path", "tokenizer_type", "min_char_freq", "n_layer",
                               "n_head", "n_embd", "block_size", "batch_size", "max_iters", "eval_interval",
                               "eval_iters", "log_interval", "num_samples", "out_dir", "device", "dtype")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "train_tiny_gpt.py", "--config", "tiny_gpt_config.yaml", *overrides],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 600  # a loaded machine can take minutes to import torch; readline returns per line
        while time.time() < deadline:
            line = p.stdout.readline()
            if line.startswith("iter ") or not line:
                break
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    stdout, stderr = p.communicate()
    assert rc == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    ckpt = _state(out / "last.pt")
    assert ckpt["iter"] >= 1


# ----------------------------------------------------------------------------- hostile settings (issue 14)

def _strict_json_rows(path: Path) -> list[dict]:
    import json

    def no_nan(name):
        raise ValueError(f"{name} is not valid JSON")

    return [json.loads(line, parse_constant=no_nan) for line in path.read_text().splitlines()]


def test_learning_rate_inf_never_saves_a_broken_model(data_dir, tmp_path):
    import train_tiny_gpt

    out = tmp_path / "inf"
    with pytest.raises(train_tiny_gpt.TrainingDiverged, match=r"loss became nan at iter 1; .* last good checkpoint "
                                                               r"is .*last\.pt \(iter 0\)"):
        train_tiny_gpt.train(tiny_cfg(data_dir, out, learning_rate=math.inf, min_lr=0.0, eval_interval=5), log=quiet)
    ckpt = _state(out / "last.pt")
    assert ckpt["iter"] == 0 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert _strict_json_rows(out / "metrics.jsonl")[0]["kind"] == "eval"


def test_learning_rate_100_gives_valid_metrics_and_finite_checkpoints(data_dir, tmp_path):
    """Huge but finite losses: perplexity overflows (exp(800)); metrics.jsonl must stay valid JSON."""
    import train_tiny_gpt

    out = tmp_path / "lr100"
    with contextlib.suppress(train_tiny_gpt.TrainingDiverged):
        train_tiny_gpt.train(tiny_cfg(data_dir, out, learning_rate=100.0, min_lr=0.0, warmup_iters=0, max_iters=20,
                                      eval_interval=4, num_samples=0, grad_clip=0.0), log=quiet)
    rows = _strict_json_rows(out / "metrics.jsonl")
    assert any(r["kind"] == "eval" and r["iter"] > 0 and r["val_ppl"] is None for r in rows)  # exp() overflowed
    for name in ("last.pt", "best.pt"):
        assert all(torch.isfinite(v).all() for v in _state(out / name)["model"].values())


def test_nonfinite_weights_are_never_saved_on_ctrl_c(data_dir, tmp_path, monkeypatch):
    """The loss of the poisoned step is still finite; the weights are not: Ctrl-C must keep the old last.pt."""
    import train_tiny_gpt

    real_make = train_tiny_gpt.make_optimizer
    steps = {"n": 0}

    def poisoning_optimizer(model, cfg):
        opt = real_make(model, cfg)
        real_step = opt.step

        def step(*a, **kw):
            out = real_step(*a, **kw)
            steps["n"] += 1
            if steps["n"] == 2:
                with torch.no_grad():
                    model.ln_f.weight[0] = float("nan")
            return out

        opt.step = step
        return opt

    monkeypatch.setattr(train_tiny_gpt, "make_optimizer", poisoning_optimizer)
    out = tmp_path / "run"
    with pytest.raises(train_tiny_gpt.TrainingDiverged, match=r"weights became NaN or infinite by iter 2; nothing saved"):
        train_tiny_gpt.train(tiny_cfg(data_dir, out, eval_interval=100, num_samples=0), log=quiet, interrupt_at=2)
    assert _state(out / "last.pt")["iter"] == 0


@pytest.mark.parametrize("bad, pattern", [
    ("out_dir", r"out_dir .*: .*afile is a file, not a folder"),
    ("tokenizer_path", r"tokenizer_path .* is a folder; it must name a tokenizer \.json file"),
    ("n_embd=8192", r"this model needs at least [\d,.]+ GiB to train .* but only [\d,.]+ GiB is available"),
    ("n_layer=64 n_embd=4096", r"this model needs at least [\d,.]+ GiB"),
])
def test_paths_and_sizes_that_cannot_work_are_one_line_errors(data_dir, tmp_path, capsys, bad, pattern):
    import train_tiny_gpt

    cfg = tiny_cfg(data_dir, tmp_path / "out")
    overrides = {"train_file": cfg.train_file, "val_file": cfg.val_file, "tokenizer_path": cfg.tokenizer_path,
                 "tokenizer_type": "char", "out_dir": cfg.out_dir, "device": "cpu", "n_head": 4}
    if bad == "out_dir":
        (tmp_path / "afile").write_text("x")
        overrides["out_dir"] = str(tmp_path / "afile" / "run")
    elif bad == "tokenizer_path":
        overrides["tokenizer_path"] = str(tmp_path)
    else:
        overrides.update(kv.split("=") for kv in bad.split())  # within the config's ranges, beyond memory
    t0 = time.perf_counter()
    assert train_tiny_gpt.main(["--config", "tiny_gpt_config.yaml", *(f"{k}={v}" for k, v in overrides.items())]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and re.search(pattern, err[0]), err
    assert time.perf_counter() - t0 < 30 and not (tmp_path / "out" / "last.pt").exists()

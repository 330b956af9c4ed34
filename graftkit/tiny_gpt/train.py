"""The tiny GPT training loop, in the order it runs.

1. runtime: torchrun/DDP environment, device (cuda > mps > cpu), precision (bf16 autocast where the
   hardware is fast at it, fp16 + GradScaler on older GPUs, else fp32), peak FLOP/s for MFU.
2. data: tokenizer (built if missing), train/val token tensors, chars per token (for bits/char).
3. model + AdamW (decay on 2-D weights only, fused kernel where available) + warmup/cosine LR.
4. start fresh or resume from out_dir/last.pt (model, optimizer, scaler, RNGs, sampler position),
   refusing a checkpoint made with another tokenizer or model shape.
5. loop: evaluate (train/val loss, perplexity, bits/char, samples; best.pt; early stopping) every
   eval_interval, train one optimiser step (gradient accumulation, clipping), log every log_interval.
   Ctrl-C finishes the current step, writes last.pt and exits 130; a NaN/inf loss stops before the bad
   step is applied and keeps the last good checkpoint.
6. the end: last.pt, metrics.jsonl, loss_curve.png.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoint import atomic_torch_save, capture_rng_state, load_checkpoint, restore_rng_state, seed_everything
from ..errors import ConfigError, UserError
from ..fileio import atomic_write_text
from ..plots import save_loss_curve
from .config import MODEL_KEYS, TinyGPTConfig
from .data import EpochSampler, eval_batches, tokens_tensor
from .generate import sample_texts
from .model import ModelArgs, TinyGPT
from .optim import build_optimizer, lr_at as lr_scale_at
from .tokenizer import TinyTokenizer, ensure_tokenizer, read_text, tokenizer_from_json

CKPT_FORMAT = "graftkit-tiny-gpt/1"


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


# ----------------------------------------------------------------------------- 1. runtime

@dataclass
class Runtime:
    device: str
    device_type: str
    dtype: torch.dtype
    dtype_reason: str
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    ddp: bool = False

    @property
    def master(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def resolve_device(name: str) -> str:
    if name != "auto":
        kind = name.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device={name} but CUDA is not available (use device=auto or cpu)")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise ConfigError(f"device={name} but MPS is not available (use device=auto or cpu)")
        return name
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_fast_bf16() -> bool:
    """True where bf16 matmuls are native (AVX512-BF16 or AMX). On plain AVX2 CPUs bf16 is emulated
    and far slower than fp32 (measured ~170x slower on an AVX2 EPYC), so auto must not pick it there."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, c, lambda: False)() for c in checks)


def resolve_dtype(name: str, device: str) -> tuple[torch.dtype, str]:
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    kind = device.split(":")[0]
    if name != "auto":
        if name == "float16" and kind == "cpu":
            raise ConfigError("dtype=float16 is not supported on CPU (use bfloat16 or float32)")
        return table[name], "set in config"
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "GPU supports bf16 (Ampere or newer)"
        return torch.float16, "GPU without bf16: fp16 autocast + GradScaler"
    if kind == "cpu":
        if cpu_fast_bf16():
            return torch.bfloat16, "CPU has AVX512-BF16/AMX"
        return torch.float32, "CPU has no native bf16 (AVX512-BF16/AMX): fp32 is fastest"
    return torch.float32, f"{kind}: float32"


_GPU_PEAKS = (  # dense bf16/fp16 tensor-core peak FLOP/s by device name, rough
    ("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40", 181e12), ("L4", 121e12),
    ("A10", 125e12), ("4090", 165e12), ("3090", 71e12), ("V100", 125e12), ("T4", 65e12))


def default_peak_flops(device: str, dtype: torch.dtype) -> tuple[float, str]:
    kind = device.split(":")[0]
    if kind == "cuda":
        name = torch.cuda.get_device_name(torch.device(device))
        peak = next((p for key, p in _GPU_PEAKS if key in name), 100e12)
        if dtype == torch.float32:
            peak /= 2  # TF32 is about half the bf16 rate
        return peak, f"{name}, table value"
    if kind == "mps":
        return 10e12, "Apple GPU, rough"
    threads = torch.get_num_threads()
    cap = torch.backends.cpu.get_cpu_capability()
    per_cycle = 64 if "512" in cap else 32  # fp32 FLOPs/cycle/core: 2 FMA units x (16 or 8) lanes x 2
    if dtype == torch.bfloat16:
        per_cycle *= 2
    ghz = 2.5
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                ghz = float(line.split(":")[1]) / 1000
                break
    return threads * per_cycle * ghz * 1e9, f"cpu: {threads} threads x {per_cycle} FLOP/cycle ({cap}) x {ghz:.2f} GHz"


def setup_runtime(cfg: TinyGPTConfig) -> Runtime:
    ddp = int(os.environ.get("RANK", -1)) != -1 and int(os.environ.get("WORLD_SIZE", 1)) >= 1
    rank = int(os.environ.get("RANK", 0)) if ddp else 0
    local_rank = int(os.environ.get("LOCAL_RANK", 0)) if ddp else 0
    world = int(os.environ.get("WORLD_SIZE", 1)) if ddp else 1
    device = resolve_device(cfg.device)
    if ddp:
        import torch.distributed as dist

        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device.startswith("cuda") else "gloo")
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
    dtype, reason = resolve_dtype(cfg.dtype, device)
    return Runtime(device, device.split(":")[0], dtype, reason, rank, local_rank, world, ddp)


# ----------------------------------------------------------------------------- 2. data

@dataclass
class Data:
    train: torch.Tensor
    val: torch.Tensor
    train_chars_per_token: float
    val_chars_per_token: float


def load_data(cfg: TinyGPTConfig, tok: TinyTokenizer) -> Data:
    train_text = read_text(cfg.train_file, "train_file")
    val_text = read_text(cfg.val_file, "val_file")
    train = tokens_tensor(tok.encode_corpus(train_text))
    val = tokens_tensor(tok.encode_corpus(val_text))
    if len(val) < 2:
        raise ConfigError(f"val_file {cfg.val_file} has fewer than 2 tokens")
    if len(train) < cfg.block_size + 2:
        raise ConfigError(f"train_file {cfg.train_file} has {len(train)} tokens, fewer than block_size+2 "
                          f"({cfg.block_size + 2}); lower block_size or add data")
    return Data(train, val, len(train_text) / len(train), len(val_text) / len(val))


# ----------------------------------------------------------------------------- 3. model, optimiser, LR

def make_optimizer(model: TinyGPT, cfg: TinyGPTConfig, device_type: str) -> torch.optim.AdamW:
    """Weight decay on 2-D tensors (matmul weights, embeddings) only; biases and LayerNorm gains are
    not decayed. The fused AdamW kernel (one kernel for all tensors) is used where torch has it."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    kw = dict(lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2))
    if device_type in ("cuda", "cpu"):
        try:
            return torch.optim.AdamW(groups, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.AdamW(groups, **kw)


def lr_at(it: int, cfg: TinyGPTConfig, max_iters: int) -> float:
    """Linear warmup to learning_rate, then cosine decay to min_lr at max_iters."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    span = max(1, max_iters - cfg.warmup_iters)
    ratio = min(1.0, (it - cfg.warmup_iters) / span)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.learning_rate - cfg.min_lr)


def model_args_from(cfg: TinyGPTConfig, vocab_size: int) -> ModelArgs:
    return ModelArgs(vocab_size=vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                     n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias,
                     zero_init_proj=cfg.zero_init_proj)


def derive_max_iters(cfg: TinyGPTConfig, train_tokens: int, world_size: int) -> int:
    if cfg.max_iters is not None:
        return cfg.max_iters
    per_iter = cfg.batch_size * cfg.block_size * cfg.gradient_accumulation_steps * world_size
    return max(1, math.ceil(cfg.epochs * train_tokens / per_iter))


# ----------------------------------------------------------------------------- 4/5. the trainer

class StopFlag:
    """Ctrl-C sets a flag; the loop finishes the current step, saves and then stops.
    A second Ctrl-C interrupts immediately."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


@dataclass
class Progress:
    iter: int = 0
    best_val_loss: float = float("inf")
    best_iter: int = -1
    evals_since_best: int = 0
    last_eval_iter: int = -1
    tokens_seen: int = 0
    history: list = field(default_factory=list)


class Trainer:
    def __init__(self, cfg: TinyGPTConfig, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.out_dir = Path(cfg.out_dir)
        self.rt = setup_runtime(cfg)
        self._log = log
        self.bar = None
        cfg.check_data_files()
        seed_everything(cfg.seed + self.rt.rank)
        self.tok = ensure_tokenizer(cfg, log=self.log)
        self.data = load_data(cfg, self.tok)
        try:
            self.sampler = EpochSampler(self.data.train, cfg.block_size, cfg.batch_size, cfg.seed,
                                        self.rt.rank, self.rt.world_size)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.max_iters = derive_max_iters(cfg, len(self.data.train), self.rt.world_size)
        self.model_args = model_args_from(cfg, self.tok.vocab_size)
        self.model = TinyGPT(self.model_args).to(self.rt.device)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scaler = torch.amp.GradScaler("cuda" if self.rt.device_type == "cuda" else "cpu",
                                           enabled=self.rt.dtype == torch.float16)
        self.progress = Progress()
        self.resumed_from: str | None = None
        self._maybe_resume()
        self.train_model: torch.nn.Module = self.model
        if cfg.compile:
            self.train_model = torch.compile(self.model)
        if self.rt.ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.rt.local_rank] if self.rt.device_type == "cuda" else None
            self.train_model = DDP(self.train_model, device_ids=ids)
        peak, how = (cfg.peak_flops, "set in config") if cfg.peak_flops else default_peak_flops(self.rt.device, self.rt.dtype)
        self.peak_flops = peak * self.rt.world_size  # peak_flops is per device; tok/s counts every rank
        self.peak_how = how + (f", x {self.rt.world_size} processes" if self.rt.world_size > 1 else "")
        self.tokens_per_iter = cfg.batch_size * cfg.block_size * cfg.gradient_accumulation_steps * self.rt.world_size
        self.flops_per_token = self.model.flops_per_token()
        self.wandb = None
        self.interrupted_cleanly = False

    # -- logging ------------------------------------------------------------
    def log(self, msg: str) -> None:
        if not self.rt.master:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            self._log(msg)

    def _metric(self, row: dict) -> None:
        if not self.rt.master:
            return
        self.progress.history.append(row)
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=row["iter"])

    # -- checkpoints --------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        p = self.progress
        return {
            "format": CKPT_FORMAT,
            "model": self.model.state_dict(),
            "model_args": self.model_args.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iter": p.iter,
            "epoch": self.sampler.epoch_progress,
            "max_iters": self.max_iters,
            "best_val_loss": p.best_val_loss,
            "best_iter": p.best_iter,
            "evals_since_best": p.evals_since_best,
            "last_eval_iter": p.last_eval_iter,
            "tokens_seen": p.tokens_seen,
            "rng": capture_rng_state(),
            "sampler": self.sampler.state_dict(),
            "world_size": self.rt.world_size,
            "config": asdict(self.cfg),
            "tokenizer": self.tok.identity(),
            "tokenizer_json": self.tok.json_text,
            "chars_per_token": {"train": self.data.train_chars_per_token, "val": self.data.val_chars_per_token},
        }

    def save(self, name: str) -> Path:
        path = self.out_dir / name
        if self.rt.master:
            atomic_torch_save(self.checkpoint_state(), path)
        return path

    def _maybe_resume(self) -> None:
        cfg = self.cfg
        last = self.out_dir / "last.pt"
        if cfg.init_from == "resume" and not last.is_file():
            raise ConfigError(f"init_from=resume but {last} does not exist (use init_from=auto or scratch)")
        if cfg.init_from == "scratch" or not last.is_file():
            if self.rt.master:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.out_dir / "metrics.jsonl", "")
            return
        ckpt = load_checkpoint(last, map_location=self.rt.device)
        if ckpt.get("format") != CKPT_FORMAT:
            raise UserError(f"not a tiny GPT checkpoint (format {ckpt.get('format')!r}); "
                            f"use another out_dir or init_from=scratch", last)
        saved_tok = ckpt.get("tokenizer", {})
        if saved_tok.get("sha256") != self.tok.sha256 or saved_tok.get("vocab_size") != self.tok.vocab_size:
            raise UserError(
                f"tokenizer {self.tok.path} (vocab {self.tok.vocab_size}, sha256 {self.tok.sha256[:12]}) differs "
                f"from the one this checkpoint was trained with (vocab {saved_tok.get('vocab_size')}, sha256 "
                f"{str(saved_tok.get('sha256'))[:12]}); restore that tokenizer, use another out_dir, or "
                f"init_from=scratch", last)
        saved_args = ckpt["model_args"]
        diffs = [f"{k}={saved_args[k]!r} (config says {getattr(cfg, k)!r})" for k in MODEL_KEYS
                 if saved_args.get(k) != getattr(cfg, k)]
        if diffs:
            raise UserError(f"checkpoint was trained with {', '.join(diffs)}; use another out_dir or "
                            f"init_from=scratch to start over", last)
        saved_opt = ckpt.get("config", {}).get("optimizer", "adamw")
        if saved_opt != cfg.optimizer:
            raise UserError(f"checkpoint was trained with optimizer={saved_opt} (config says {cfg.optimizer}); "
                            f"set optimizer={saved_opt}, use another out_dir, or init_from=scratch", last)
        self.model.load_state_dict(ckpt["model"])
        base_lrs = [g["base_lr"] for g in self.optimizer.param_groups]  # the config's peak rates win on resume
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for g, base in zip(self.optimizer.param_groups, base_lrs):
            g["base_lr"] = base
        self.scaler.load_state_dict(ckpt["scaler"])
        self.sampler.load_state_dict(ckpt["sampler"])
        p = self.progress
        p.iter = int(ckpt["iter"])
        p.best_val_loss = float(ckpt["best_val_loss"])
        p.best_iter = int(ckpt["best_iter"])
        p.evals_since_best = int(ckpt["evals_since_best"])
        p.last_eval_iter = int(ckpt["last_eval_iter"])
        p.tokens_seen = int(ckpt["tokens_seen"])
        restore_rng_state(ckpt["rng"])
        if int(ckpt.get("world_size", 1)) != self.rt.world_size:
            self.log(f"note: checkpoint was written with world_size {ckpt.get('world_size')}, now "
                     f"{self.rt.world_size}: training continues with the next unseen batches")
        self.resumed_from = str(last)
        if self.rt.master:
            self._trim_metrics(p.iter)

    def _trim_metrics(self, upto: int) -> None:
        """Drop metric rows written after the checkpoint (by the run that was interrupted later)."""
        path = self.out_dir / "metrics.jsonl"
        rows = []
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    row = json.loads(line)
                    if row.get("iter", 0) <= upto:
                        rows.append(row)
        self.progress.history = rows
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))

    # -- evaluation ---------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        cfg, model = self.cfg, self.model
        model.eval()
        out = {}
        for split, data in (("train", self.data.train), ("val", self.data.val)):
            total, n = 0.0, 0
            for x, y in eval_batches(data, cfg.block_size, cfg.batch_size, cfg.eval_iters):
                x, y = x.to(self.rt.device), y.to(self.rt.device)
                with self.rt.autocast():
                    _, loss = model(x, y)
                total += float(loss) * x.numel()
                n += x.numel()
            out[split] = total / n
        model.train()
        return out

    def samples(self, it: int) -> list[str]:
        cfg = self.cfg
        if cfg.num_samples <= 0:
            return []
        with self.rt.autocast():
            return sample_texts(self.model, self.tok, cfg.prompt, cfg.num_samples, cfg.max_new_tokens,
                                cfg.temperature, cfg.top_k, seed=cfg.seed + it, device=self.rt.device)

    def _eval_step(self, it: int) -> bool:
        """Evaluate at iteration `it`, checkpoint; returns True when early stopping says stop."""
        cfg, p = self.cfg, self.progress
        stop = False
        if self.rt.master:
            losses = self.evaluate()
            val, train = losses["val"], losses["train"]
            improved = val < p.best_val_loss
            if improved:
                p.best_val_loss, p.best_iter, p.evals_since_best = val, it, 0
            else:
                p.evals_since_best += 1
            p.last_eval_iter = it
            bpc_val = val / math.log(2) / self.data.val_chars_per_token
            bpc_train = train / math.log(2) / self.data.train_chars_per_token
            self.log(f"eval iter {it} | train loss {train:.4f} | val loss {val:.4f} | val ppl {math.exp(val):.2f} "
                     f"| val bpc {bpc_val:.3f} | epoch {self.sampler.epoch_progress:.2f}"
                     + (" | new best" if improved else f" | best {p.best_val_loss:.4f} @ {p.best_iter}"))
            texts = self.samples(it)
            for i, t in enumerate(texts):
                self.log(f"--- sample {i + 1} (iter {it}) ---\n{t}")
            self._metric({"kind": "eval", "iter": it, "train_loss": train, "val_loss": val,
                          "val_ppl": math.exp(val), "train_bpc": bpc_train, "val_bpc": bpc_val,
                          "epoch": self.sampler.epoch_progress, "tokens": p.tokens_seen, "samples": texts})
            if improved:
                self.save("best.pt")
            self.save("last.pt")
            stop = bool(cfg.patience) and p.evals_since_best >= cfg.patience
            if stop:
                self.log(f"early stopping: val loss has not improved for {p.evals_since_best} evaluations "
                         f"(best {p.best_val_loss:.4f} at iter {p.best_iter})")
        if self.rt.ddp:
            import torch.distributed as dist

            flag = torch.tensor([1.0 if stop else 0.0], device=self.rt.device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        return stop

    # -- one optimiser step -------------------------------------------------
    def train_step(self, it: int) -> float:
        cfg, rt = self.cfg, self.rt
        scale = lr_scale_at(it, self.max_iters, cfg)
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * scale
        accum = cfg.gradient_accumulation_steps
        loss_sum = torch.zeros((), device=rt.device)
        for micro in range(accum):
            x, y = self.sampler.next_batch()
            x, y = x.to(rt.device, non_blocking=True), y.to(rt.device, non_blocking=True)
            sync = contextlib.nullcontext()
            if rt.ddp and micro < accum - 1:
                sync = self.train_model.no_sync()
            with sync:
                with rt.autocast():
                    _, loss = self.train_model(x, y)
                    loss = loss / accum
                self.scaler.scale(loss).backward()
            loss_sum += loss.detach()
        if rt.ddp:
            import torch.distributed as dist

            dist.all_reduce(loss_sum, op=dist.ReduceOp.AVG if rt.device_type == "cuda" else dist.ReduceOp.SUM)
            if rt.device_type != "cuda":
                loss_sum /= rt.world_size
        lossf = float(loss_sum)
        if not math.isfinite(lossf):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(
                f"loss became {lossf} at iter {it}; stopped before applying that step. The last good checkpoint "
                f"is {self.out_dir / 'last.pt'} (iter {self.progress.last_eval_iter}). Try a lower learning_rate, "
                f"grad_clip=1.0, or dtype=float32")
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.tokens_seen += self.tokens_per_iter
        return lossf

    # -- the loop -----------------------------------------------------------
    def describe(self) -> None:
        cfg, rt, m = self.cfg, self.rt, self.model
        self.log(f"device {rt.device} | dtype {str(rt.dtype).replace('torch.', '')} ({rt.dtype_reason}) | "
                 f"threads {torch.get_num_threads()} | compile {cfg.compile}"
                 + (f" | DDP rank {rt.rank}/{rt.world_size}" if rt.ddp else ""))
        self.log(f"tokenizer {self.tok.kind}, vocab {self.tok.vocab_size} | train {len(self.data.train):,} tokens "
                 f"({self.data.train_chars_per_token:.2f} chars/token) | val {len(self.data.val):,} tokens")
        self.log(f"model: {m.num_params():,} parameters ({m.num_params() / 1e6:.2f}M; "
                 f"{m.num_params(non_embedding=True):,} without position embeddings) | "
                 f"{cfg.n_layer} layers, {cfg.n_head} heads, n_embd {cfg.n_embd}, block {cfg.block_size}")
        fused = any(g.get("fused") for g in self.optimizer.param_groups)
        per_epoch = self.sampler.tokens_per_epoch / self.tokens_per_iter
        how = "max_iters" if cfg.max_iters is not None else f"{cfg.epochs:g} epochs"
        self.log(f"{self.max_iters} iterations ({how}; {per_epoch:.1f} iterations/epoch) x "
                 f"{self.tokens_per_iter:,} tokens | {cfg.optimizer} fused={fused} | MFU vs {self.peak_flops / 1e9:,.0f} "
                 f"GFLOP/s peak ({self.peak_how}; set peak_flops to change)")
        if self.resumed_from:
            self.log(f"resumed from {self.resumed_from} at iter {self.progress.iter} "
                     f"(epoch {self.sampler.epoch_progress:.2f})")

    def run(self, interrupt_at: int | None = None) -> dict[str, Any]:
        """Train to max_iters (or early stop). `interrupt_at` simulates Ctrl-C at that iteration (tests)."""
        cfg, p = self.cfg, self.progress
        self._start_iter = p.iter
        self.describe()
        if p.last_eval_iter == p.iter and (p.iter >= self.max_iters or
                                           (cfg.patience and p.evals_since_best >= cfg.patience)):
            why = (f"max_iters {self.max_iters}" if p.iter >= self.max_iters else
                   f"early stopping: {p.evals_since_best} evaluations without a new best")
            self.log(f"already trained to iter {p.iter} ({why}); raise epochs/max_iters/patience to continue, "
                     f"or init_from=scratch to start over")
            return self.summary(0.0, "already done")
        if cfg.wandb and self.rt.master:
            try:
                import wandb
            except ImportError:
                raise UserError("wandb: true needs the wandb package: pip install wandb (or set wandb=false)") from None
            self.wandb = wandb
            wandb.init(project=cfg.wandb_project, name=cfg.wandb_run_name or None, config=asdict(cfg),
                       resume="allow")
        from tqdm import tqdm

        show_bar = cfg.progress and self.rt.master and sys.stderr.isatty()
        self.bar = tqdm(total=self.max_iters, initial=p.iter, unit="it", dynamic_ncols=True, disable=not show_bar,
                        leave=False) if show_bar else None
        t_start = time.perf_counter()
        t_log, iters_since_log, train_time = time.perf_counter(), 0, 0.0
        reason = "max_iters"
        try:
            with StopFlag() as flag:
                while True:
                    it = p.iter
                    if (it % cfg.eval_interval == 0 or it >= self.max_iters) and p.last_eval_iter != it:
                        t_eval = time.perf_counter()
                        stop = self._eval_step(it)
                        t_log += time.perf_counter() - t_eval  # eval time does not count as training speed
                        if stop:
                            reason = "early stopping"
                            break
                    if it >= self.max_iters:
                        break
                    if interrupt_at is not None and it == interrupt_at:
                        flag.requested = True
                    if self._stop_requested(flag):
                        self.interrupted_cleanly = True
                        self.save("last.pt")
                        self.log(f"interrupted at iter {it}: saved {self.out_dir / 'last.pt'}; run the same "
                                 f"command again to resume")
                        raise KeyboardInterrupt
                    t0 = time.perf_counter()
                    lossf = self.train_step(it)
                    train_time += time.perf_counter() - t0
                    p.iter = it + 1
                    iters_since_log += 1
                    if self.bar is not None:
                        self.bar.update(1)
                        self.bar.set_postfix(loss=f"{lossf:.3f}", epoch=f"{self.sampler.epoch_progress:.2f}")
                    if p.iter % cfg.log_interval == 0 or p.iter == self.max_iters:
                        now = time.perf_counter()
                        dt = (now - t_log) / max(1, iters_since_log)
                        t_log, iters_since_log = now, 0
                        tok_s = self.tokens_per_iter / dt
                        mfu = self.flops_per_token * tok_s / self.peak_flops
                        lr = self.optimizer.param_groups[-1]["lr"]  # the AdamW rate (groups: [muon,] adamw...)
                        # nanoGPT-style line; what follows mfu is extra
                        self.log(f"iter {p.iter} | loss {lossf:.4f} | {dt * 1000:.1f} ms | {tok_s:.0f} tok/s | "
                                 f"mfu {100 * mfu:.0f}% | lr {lr:.2e} | epoch {self.sampler.epoch_progress:.2f}")
                        self._metric({"kind": "train", "iter": p.iter, "loss": lossf, "lr": lr, "ms": dt * 1000,
                                      "tok_s": tok_s, "mfu": mfu, "epoch": self.sampler.epoch_progress,
                                      "tokens": p.tokens_seen})
        finally:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            if self.rt.master:
                with contextlib.suppress(Exception):
                    plot_losses(self.progress.history, self.out_dir / "loss_curve.png")
            if self.wandb is not None:
                with contextlib.suppress(Exception):
                    self.wandb.finish()
        wall = time.perf_counter() - t_start
        return self.summary(wall, reason, train_time)

    def _stop_requested(self, flag: StopFlag) -> bool:
        if not self.rt.ddp:
            return flag.requested
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag.requested else 0.0], device=self.rt.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def summary(self, wall: float, reason: str, train_time: float = 0.0) -> dict[str, Any]:
        p = self.progress
        evals = [r for r in p.history if r.get("kind") == "eval"]
        last = evals[-1] if evals else {}
        s = {"iters": p.iter, "max_iters": self.max_iters, "stopped_by": reason, "wall_s": wall,
             "train_s": train_time, "best_val_loss": p.best_val_loss, "best_iter": p.best_iter,
             "final_train_loss": last.get("train_loss"), "final_val_loss": last.get("val_loss"),
             "epoch": self.sampler.epoch_progress, "tokens_seen": p.tokens_seen,
             "tok_s": self.tokens_per_iter * (p.iter - self._start_iter) / train_time if train_time else None,
             "out_dir": str(self.out_dir)}
        if self.rt.master and evals:
            self.log(f"done ({reason}) in {wall:.0f} s: iter {p.iter}, epoch {self.sampler.epoch_progress:.2f}, "
                     f"train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}, best val "
                     f"{p.best_val_loss:.4f} at iter {p.best_iter} -> {self.out_dir / 'best.pt'}")
        return s


def plot_losses(history: list[dict], path: Path) -> None:
    train = [r for r in history if r.get("kind") == "train"]
    evals = [r for r in history if r.get("kind") == "eval"]
    iters = [r["iter"] for r in evals]
    save_loss_curve(path, [
        ("train (batch)", [r["iter"] for r in train], [r["loss"] for r in train], "-", {"alpha": 0.4, "lw": 1}),
        ("train (eval)", iters, [r["train_loss"] for r in evals], "o-", {}),
        ("val", iters, [r["val_loss"] for r in evals], "o-", {}),
    ], xlabel="iteration", title="tiny GPT loss")


def train(cfg: TinyGPTConfig, log: Callable[[str], None] = print, interrupt_at: int | None = None) -> dict[str, Any]:
    trainer = Trainer(cfg, log=log)
    together = False  # every rank leaves run() at the same point (done, early stop or a Ctrl-C they agreed on)
    try:
        summary = trainer.run(interrupt_at=interrupt_at)
        together = True
        return summary
    except KeyboardInterrupt:
        together = trainer.interrupted_cleanly
        raise
    finally:
        if trainer.rt.ddp:
            import torch.distributed as dist

            if dist.is_initialized():
                if together:
                    # wait for rank 0 to finish writing its files: a rank that tears gloo down while another
                    # is still busy can die with "terminate called without an active exception" (SIGABRT)
                    dist.barrier()
                dist.destroy_process_group()


# ----------------------------------------------------------------------------- inference helpers

def find_checkpoint(cfg: TinyGPTConfig, explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    out = Path(cfg.out_dir)
    for name in ("best.pt", "last.pt"):
        if (out / name).is_file():
            return out / name
    raise UserError(f"no checkpoint in {out} (best.pt or last.pt): train first with "
                    f"`python train_tiny_gpt.py --config ...` or set out_dir=...")


def load_for_inference(cfg: TinyGPTConfig, checkpoint: str | None = None,
                       device: str | None = None) -> tuple[TinyGPT, TinyTokenizer, Path, dict]:
    """Model and the exact tokenizer it was trained with (stored in the checkpoint)."""
    path = find_checkpoint(cfg, checkpoint)
    dev = device or resolve_device(cfg.device)
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt.get("format") != CKPT_FORMAT:
        raise UserError("not a tiny GPT checkpoint", path)
    args = ModelArgs(**ckpt["model_args"])
    args.dropout = 0.0
    model = TinyGPT(args)
    model.load_state_dict(ckpt["model"])
    model.to(dev).eval()
    tok = tokenizer_from_json(ckpt["tokenizer_json"], f"{path} (embedded tokenizer)")
    return model, tok, path, ckpt

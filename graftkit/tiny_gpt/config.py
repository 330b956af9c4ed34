"""The tiny GPT's config: every key, its default and its help text, declared once.

The names follow nanoGPT's train.py (n_layer, learning_rate, eval_interval, ...) so anyone who has
trained nanoGPT reads the YAML without a glossary. This module imports no torch, so a bad config is
reported in a fraction of a second, before the heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from ..config import key as _h  # a field with its --help text
from ..errors import ConfigError


@dataclass
class TinyGPTConfig:
    # Names people bring from nanoGPT / other trainers: `unknown key` errors suggest ours.
    KEY_ALIASES: ClassVar[dict[str, str]] = {
        "lr": "learning_rate", "max_lr": "learning_rate", "num_epochs": "epochs", "n_epochs": "epochs",
        "context_length": "block_size", "seq_len": "block_size", "max_seq_length": "block_size",
        "d_model": "n_embd", "hidden_size": "n_embd", "n_layers": "n_layer", "num_layers": "n_layer",
        "n_heads": "n_head", "num_heads": "n_head", "vocab": "vocab_size", "clip": "grad_clip",
        "warmup_steps": "warmup_iters", "out": "out_dir", "output_dir": "out_dir", "tokenizer": "tokenizer_path",
    }
    # --- data and tokenizer ---
    train_file: str = _h("training_data/corpus_train.txt", "training transcript (written by prepare_training_data.py)")
    val_file: str = _h("training_data/corpus_val.txt", "validation transcript")
    tokenizer_path: str = _h("training_data/tokenizer_tiny.json",
                             "tokenizer.json to use; built from train_file by tokenizer_setup's code if missing")
    tokenizer_type: Literal["bpe", "char", "tiktoken"] = _h(
        "bpe", "bpe (byte-level BPE, vocab_size tokens), char (one token per character) or tiktoken (comparison)")
    vocab_size: int = _h(512, "BPE vocabulary size incl. 256 byte tokens and the 3 speaker markers (259-512)",
                         range=(1, 65535))
    min_char_freq: int = _h(2, "char tokenizer: characters seen fewer times than this map to <unk> (1-10)",
                            range=(1, 1000000))
    tiktoken_encoding: str = _h("gpt2", "tiktoken encoding name when tokenizer_type is tiktoken (needs internet)")
    # --- model ---
    n_layer: int = _h(3, "transformer blocks (2-4)", range=(1, 64))
    n_head: int = _h(4, "attention heads; n_embd must be divisible by it (2-4)", range=(1, 64))
    n_embd: int = _h(128, "embedding width (128-256)", range=(1, 8192))
    block_size: int = _h(256, "context length in tokens (256-512)", range=(2, 65536))
    dropout: float = _h(0.0, "dropout probability (0.0-0.2); > 0 helps only when val loss rises while train loss falls, "
                        "and on CPU it about halves the speed", range=(0.0, 1.0))
    bias: bool = _h(False, "biases in Linear and LayerNorm layers like GPT-2 (false is a bit faster)")
    block: Literal["gpt2", "modern"] = _h(
        "gpt2", "gpt2: GPT-2 blocks (exports to GPT2LMHeadModel); modern: RMSNorm, RoPE, QK-norm, gated SiLU MLP, "
        "untied zero-init head (exports to Qwen3ForCausalLM)")
    mlp_act: Literal["silu", "relu2"] = _h("silu", "block=modern only: activation of the gated MLP (silu = SwiGLU, "
                                           "or relu2)")
    zero_init_proj: bool = _h(True, "start each block's output projections at zero: every block begins as the "
                              "identity (lower loss at equal steps, free)")
    # --- optimiser and schedule ---
    optimizer: Literal["muon", "adamw"] = _h(
        "muon", "muon: Muon on the blocks' 2-D weights + AdamW on embeddings and gains; adamw: AdamW on everything")
    muon_lr: float = _h(0.02, "peak Muon learning rate (0.01-0.05); only with optimizer=muon", range=(0.0, None))
    muon_momentum: float = _h(0.95, "Muon's Nesterov momentum (0.9-0.95)", range=(0.0, 1.0))
    learning_rate: float = _h(1e-2, "peak AdamW learning rate (muon: embeddings and gains only, 3e-3 to 2e-2; "
                              "adamw: everything, 3e-4 to 3e-3)")
    min_lr: float = _h(1e-3, "learning rate at the end of the decay (~learning_rate/10)")
    decay_lr: bool = _h(True, "linear warmup then cosine decay to min_lr; false keeps learning_rate constant")
    lr_schedule: Literal["wsd", "cosine"] = _h(
        "wsd", "wsd: warmup, flat, then linear cool-down to min_lr over the last cooldown_frac; cosine: nanoGPT's")
    cooldown_frac: float = _h(0.4, "wsd: fraction of the run spent cooling down linearly to min_lr (0.2-0.6)",
                              range=(0.0, 1.0))
    weight_decay: float = _h(0.1, "AdamW weight decay on 2-D weights only (0.0-0.2)", range=(0.0, 1.0))
    beta1: float = _h(0.9, "AdamW beta1 (0.9)", range=(0.0, 1.0))
    beta2: float = _h(0.99, "AdamW beta2 (0.95-0.999)", range=(0.0, 1.0))
    grad_clip: float = _h(1.0, "clip the gradient norm at this value; 0 disables (0.5-1.0)", range=(0.0, None))
    warmup_iters: int = _h(50, "linear learning-rate warmup iterations (0-1000)", range=(0, None))
    epochs: float = _h(10, "passes over the training tokens; sets max_iters when max_iters is null (10-50)",
                       range=(0.0, 100000.0))
    max_iters: int | None = _h(None, "total optimiser steps; null derives it from epochs and the corpus size",
                               range=(0, None))
    batch_size: int = _h(6, "sequences per micro-batch (4-64)", range=(1, 65536))
    gradient_accumulation_steps: int = _h(1, "micro-batches per optimiser step (1-8)", range=(1, 4096))
    # --- evaluation, early stopping, logging ---
    eval_interval: int = _h(400, "evaluate, sample and checkpoint every this many iterations (50-1000)",
                            range=(1, None))
    eval_iters: int = _h(40, "batches per split in each evaluation (10-200)", range=(1, 100000))
    log_interval: int = _h(20, "print a training line every this many iterations (1-100)", range=(1, None))
    patience: int = _h(5, "stop after this many evaluations without a new best val loss; 0 never stops early",
                       range=(0, None))
    peak_flops: float = _h(0.0, "peak FLOP/s of one device that MFU is measured against; 0 = estimate for the device",
                           range=(0.0, None))
    progress: bool = _h(True, "tqdm progress bar (on a terminal, or a widget in Jupyter/Colab)")
    wandb: bool = _h(False, "log to Weights & Biases (pip install wandb)")
    wandb_project: str = _h("graftkit-tiny-gpt", "wandb project name")
    wandb_run_name: str = _h("", "wandb run name; empty lets wandb choose")
    # --- sampling ---
    prompt: str = _h("<|them|>hey, what are you up to tonight?\n<|me|>",
                     "prompt for the samples shown at each evaluation and by --sample when none is given")
    temperature: float = _h(0.8, "sampling temperature (0.5-1.2; lower is more conservative)", range=(0.0, 100.0))
    top_k: int = _h(40, "sample only from the k most likely tokens; 0 disables (20-200)", range=(0, 1000000))
    max_new_tokens: int = _h(120, "tokens generated per sample or chat reply (50-500)", range=(1, 100000))
    num_samples: int = _h(2, "samples generated at each evaluation and by --sample (1-10)", range=(0, 1000))
    # --- system ---
    out_dir: str = _h("out-tiny", "where last.pt, best.pt, metrics.jsonl and loss_curve.png go")
    init_from: Literal["auto", "scratch", "resume"] = _h(
        "auto", "auto resumes from out_dir/last.pt if it exists; scratch starts fresh; resume requires last.pt")
    seed: int = _h(1337, "random seed (model init, batch order, dropout)")
    device: str = _h("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = _h(
        "auto", "auto: bfloat16 autocast where the hardware is fast at it (Ampere+ GPUs, CPUs with AVX512-BF16/AMX), "
        "float16 + GradScaler on older GPUs, else float32")
    compile: bool = _h(False, "torch.compile the model (needs a C++ compiler on CPU; first step is slow)")
    backend: str = _h("auto", "torch.distributed backend under torchrun: auto (nccl on CUDA, gloo on CPU), nccl, gloo")

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.n_layer >= 1, f"n_layer must be >= 1, got {self.n_layer}")
        need(self.n_head >= 1, f"n_head must be >= 1, got {self.n_head}")
        need(self.n_embd >= 1, f"n_embd must be >= 1, got {self.n_embd}")
        need(self.n_embd % self.n_head == 0,
             f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}); "
             f"e.g. n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}")
        need(self.block_size >= 2, f"block_size must be >= 2, got {self.block_size}")
        need(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        need(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        need(0 <= self.min_lr <= self.learning_rate, f"min_lr must be in [0, learning_rate], got {self.min_lr}")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
        need(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        need(self.grad_clip >= 0, f"grad_clip must be >= 0 (0 disables), got {self.grad_clip}")
        need(self.warmup_iters >= 0, f"warmup_iters must be >= 0, got {self.warmup_iters}")
        need(self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        need(self.max_iters is None or self.max_iters >= 0, f"max_iters must be >= 0 or null, got {self.max_iters}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.gradient_accumulation_steps >= 1,
             f"gradient_accumulation_steps must be >= 1, got {self.gradient_accumulation_steps}")
        need(self.eval_interval >= 1, f"eval_interval must be >= 1, got {self.eval_interval}")
        need(self.eval_iters >= 1, f"eval_iters must be >= 1, got {self.eval_iters}")
        need(self.log_interval >= 1, f"log_interval must be >= 1, got {self.log_interval}")
        need(self.patience >= 0, f"patience must be >= 0, got {self.patience}")
        need(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        need(self.top_k >= 0, f"top_k must be >= 0 (0 disables), got {self.top_k}")
        need(self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        need(self.num_samples >= 0, f"num_samples must be >= 0, got {self.num_samples}")
        need(self.peak_flops >= 0, f"peak_flops must be >= 0 (0 = auto), got {self.peak_flops}")
        need(self.min_char_freq >= 1, f"min_char_freq must be >= 1, got {self.min_char_freq}")
        if self.tokenizer_type == "bpe":
            need(256 + 3 <= self.vocab_size <= 65535,
                 f"vocab_size must be at least 259 (256 bytes + 3 speaker markers) for bpe, got {self.vocab_size}")
        need(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
             f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        need(self.backend in ("auto", "nccl", "gloo"), f"backend must be auto, nccl or gloo, got {self.backend!r}")
        need(bool(self.out_dir), "out_dir must not be empty")
        need(not (self.block == "modern" and self.bias),
             "block=modern has no biases (Qwen3's layout, which it exports to); set bias=false")
        need(self.muon_lr > 0, f"muon_lr must be > 0, got {self.muon_lr}")
        need(0 <= self.muon_momentum < 1, f"muon_momentum must be in [0, 1), got {self.muon_momentum}")
        need(0 < self.cooldown_frac <= 1, f"cooldown_frac must be in (0, 1], got {self.cooldown_frac}")

    def check_data_files(self, need_val: bool = True) -> None:
        """Missing data is the most common first-run mistake: say which file and how to make it. Also refuse,
        before any work, a tokenizer_path that is a folder and an out_dir that is (or lies inside) a file."""
        from ..fileio import check_prepared

        files = [("train_file", self.train_file)] + ([("val_file", self.val_file)] if need_val else [])
        check_prepared(*(path for _, path in files))  # never a corpus half-published by a killed prepare run
        for key, path in files:
            if not Path(path).is_file():
                raise ConfigError(
                    f"{key} not found: {path} (run prepare_training_data.py first, or set {key}=...)")
        if Path(self.tokenizer_path).is_dir():
            raise ConfigError(f"tokenizer_path {self.tokenizer_path} is a folder; it must name a tokenizer .json "
                              f"file, e.g. tokenizer_path={Path(self.tokenizer_path) / 'tokenizer_tiny.json'}")
        for parent in (Path(self.out_dir), *Path(self.out_dir).parents):
            if parent.exists() and not parent.is_dir():
                raise ConfigError(f"out_dir {self.out_dir}: {parent} is a file, not a folder; set out_dir=... "
                                  f"to a folder for last.pt, best.pt and metrics.jsonl")


MODEL_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "block", "mlp_act")
# what checkpoints saved before a key existed were trained with
MODEL_KEY_DEFAULTS = {"block": "gpt2", "mlp_act": "silu"}

"""Token data and a deterministic, resumable batch sampler.

Why not nanoGPT's `torch.randint` batches: random windows drawn from the global RNG make "epoch"
meaningless and make exact resume depend on every other consumer of that RNG. Here an epoch is one
pass over the training tokens cut into block_size windows: each epoch uses a random window offset
and a random order of the windows, both derived from (seed, epoch) alone. The sampler's whole state
is (epoch, windows consumed), so a checkpoint can store it and a resumed run sees exactly the
batches the uninterrupted run would have.

Under torchrun every step consumes batch_size * world_size windows and rank r takes its own slice of
them (DistributedSampler-style sharding); the saved position is global, so a run may resume on a
different number of processes and still continue with the next unseen windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .config import TinyGPTConfig
from .tokenizer import TinyTokenizer, read_text


def tokens_tensor(ids) -> torch.Tensor:
    return torch.as_tensor(np.asarray(ids, dtype=np.int64))


@dataclass
class Data:
    train: torch.Tensor
    val: torch.Tensor
    train_chars_per_token: float  # for bits per character, comparable across tokenizers
    val_chars_per_token: float


def load_data(cfg: TinyGPTConfig, tok: TinyTokenizer) -> Data:
    """Both transcripts as token tensors; too little data is a ConfigError saying what to change."""
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


def derive_max_iters(cfg: TinyGPTConfig, train_tokens: int, world_size: int) -> int:
    """max_iters as set, else enough optimiser steps for `epochs` passes over the training tokens."""
    if cfg.max_iters is not None:
        return cfg.max_iters
    per_iter = cfg.batch_size * cfg.block_size * cfg.gradient_accumulation_steps * world_size
    return max(1, math.ceil(cfg.epochs * train_tokens / per_iter))


@dataclass
class SamplerState:
    epoch: int = 0
    pos: int = 0  # windows consumed in this epoch, summed over all ranks


class EpochSampler:
    def __init__(self, data: torch.Tensor, block_size: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        self.data = data
        self.T = block_size
        self.B = batch_size
        self.seed = seed
        self.rank = rank
        self.world = world_size
        # windows of T+1 tokens (inputs and the targets shifted by one), at most T tokens of offset
        self.n_windows = (len(data) - 1 - block_size) // block_size
        if self.n_windows < batch_size * world_size:
            raise ValueError(
                f"training data has {len(data):,} tokens: too few for one batch of {batch_size} x "
                f"{block_size} tokens{f' on {world_size} processes' if world_size > 1 else ''}; "
                f"lower batch_size or block_size, or add data")
        self.state = SamplerState()
        self._cached_epoch = -1
        self._starts: torch.Tensor | None = None
        self._arange = torch.arange(block_size + 1)

    @property
    def batches_per_epoch(self) -> int:
        """Optimiser-independent count of global batches (batch_size x world_size windows) per epoch."""
        return self.n_windows // (self.B * self.world)

    @property
    def tokens_per_epoch(self) -> int:
        return self.n_windows * self.T

    def _epoch_starts(self, epoch: int) -> torch.Tensor:
        if epoch != self._cached_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            offset = int(torch.randint(0, self.T + 1, (1,), generator=g))
            order = torch.randperm(self.n_windows, generator=g)
            self._starts = offset + order * self.T
            self._cached_epoch = epoch
        assert self._starts is not None
        return self._starts

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's (x, y) for the next global batch; both (batch_size, block_size) int64."""
        step = self.B * self.world
        if self.state.pos + step > self.n_windows:  # not enough windows left: next epoch
            self.state = SamplerState(self.state.epoch + 1, 0)
        starts = self._epoch_starts(self.state.epoch)
        lo = self.state.pos + self.rank * self.B
        chunk = self.data[starts[lo:lo + self.B, None] + self._arange]
        self.state.pos += step
        return chunk[:, :-1], chunk[:, 1:]

    @property
    def epoch_progress(self) -> float:
        """Epochs completed, fractional (e.g. 2.35)."""
        return self.state.epoch + self.state.pos / self.n_windows

    def state_dict(self) -> dict:
        return {"epoch": self.state.epoch, "pos": self.state.pos, "seed": self.seed,
                "n_windows": self.n_windows, "block_size": self.T, "batch_size": self.B}

    def load_state_dict(self, sd: dict) -> None:
        self.state = SamplerState(int(sd["epoch"]), int(sd["pos"]))


def eval_batches(data: torch.Tensor, block_size: int, batch_size: int, n_batches: int):
    """Fixed, evenly spread windows (no RNG): every evaluation scores the same text, so successive
    val losses are comparable and evaluating never disturbs the training randomness."""
    T = block_size
    if len(data) < T + 1:
        T = len(data) - 1
    last = len(data) - T - 1
    n = n_batches * batch_size
    starts = torch.linspace(0, max(0, last), n).round().long()
    ar = torch.arange(T + 1)
    for i in range(0, n, batch_size):
        chunk = data[starts[i:i + batch_size, None] + ar]
        yield chunk[:, :-1], chunk[:, 1:]

"""Batched sampling for transformers models: many replies decoded together, each from its own generator.

Why a loop of our own rather than `model.generate`: every context samples from its own seeded
generator (so a reply does not depend on which batch it lands in, and base and tuned draw the same
random stream), finished replies leave the batch, and the KV cache does not copy itself at every step.

How (measured on SmolLM2-135M, 2 CPU cores, in the docstring of HFChatModel.generate_batch):
- prefill: the prompts (sorted by length) go through the model in groups of similar length, each
  left-padded only to its own longest prompt, so padding costs little;
- the groups' keys and values are copied, right-aligned, into one preallocated buffer per layer
  (`PreallocatedLayer`) with room for every new token: a decoding step writes one column instead of
  concatenating the whole cache (transformers' DynamicLayer copies it every step, which at 50+
  contexts x 500 tokens cost more than the model);
- decoding: one token per context per step; contexts that ended their turn are dropped from the
  batch (cache rows included) once a quarter of the batch has finished.
Models whose cache is not a plain list of full-attention layers (sliding windows, older
transformers) keep the simple path (HFChatModel._decode).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch

from ..tiny_gpt.generate import sample_rows

# forward(input_ids, attention_mask, position_ids, cache or None) -> (last-position logits [B, V], cache)
Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, Any]]


def preallocated_cache_supported() -> bool:
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer  # noqa: F401
    except ImportError:  # transformers < 4.56 has no cache layers
        return False
    return True


@functools.cache
def _layer_class():
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        """A full-attention cache layer over a buffer [B, heads, capacity, dim]: `keys`/`values` are views of
        its first `length` positions, and `update` writes the new positions in place."""

        def __init__(self, k_buf: torch.Tensor, v_buf: torch.Tensor, length: int):
            super().__init__()
            self.k_buf, self.v_buf, self.length = k_buf, v_buf, length
            self.device, self.is_initialized = k_buf.device, True
            self._views()

        def _views(self) -> None:
            self.keys = self.k_buf[:, :, :self.length]
            self.values = self.v_buf[:, :, :self.length]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            t = key_states.shape[-2]
            if self.length + t > self.k_buf.shape[2]:
                raise RuntimeError("preallocated KV cache is full")
            self.k_buf[:, :, self.length:self.length + t] = key_states
            self.v_buf[:, :, self.length:self.length + t] = value_states
            self.length += t
            self._views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self.k_buf, self.v_buf = self.k_buf[indices], self.v_buf[indices]
            self._views()

    return PreallocatedLayer


def _groups(lengths: Sequence[int], max_tokens: int) -> list[tuple[int, int]]:
    """Consecutive [a, b) ranges of (sorted) prompts whose padded size rows x longest fits max_tokens."""
    out, a = [], 0
    while a < len(lengths):
        b = a + 1
        while b < len(lengths) and (b - a + 1) * lengths[b] <= max_tokens:
            b += 1
        out.append((a, b))
        a = b
    return out


def left_padded(prompts: Sequence[list[int]], width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), both [len(prompts), width]: each prompt right-aligned, padding on the left."""
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[b, width - len(p):] = 1
    return ids, mask


def next_tokens(logits: torch.Tensor, rows: Sequence[int], done: list[bool], out: list[list[int]],
                generators: Sequence[torch.Generator], *, temperature: float, top_k: int, stop_ids: set[int],
                pad_id: int) -> tuple[list[int], list[int], int]:
    """One decoding step's tokens: logits row r belongs to prompt rows[r]. Unfinished rows draw from their own
    generator in one sample_rows call; a stop token marks the prompt done, any other token is appended to its
    reply. Returns (the token each row is fed next, padding for finished rows; the rows still going; how many
    replies ended at this step). Shared by decode() and HFChatModel's fallback path."""
    live = [r for r, i in enumerate(rows) if not done[i]]
    drawn = dict(zip(live, sample_rows(logits[live], temperature, top_k, [generators[rows[r]] for r in live])))
    fed, keep, ended = [], [], 0
    for r, i in enumerate(rows):
        tok = pad_id  # a finished row still in the batch is fed padding until it is dropped
        if r in drawn:
            tok = drawn[r]
            if tok in stop_ids:
                done[i], ended = True, ended + 1
            else:
                out[i].append(tok)
                keep.append(r)
        fed.append(tok)
    return fed, keep, ended


@torch.no_grad()
def decode(forward: Forward, prompts: Sequence[list[int]], generators: Sequence[torch.Generator], *,
           max_new_tokens: int, stop_ids: set[int], pad_id: int, temperature: float, top_k: int,
           prefill_tokens: int, device: torch.device | str = "cpu",
           progress: Callable[[int], None] | None = None) -> tuple[list[list[int]], int]:
    """Sample one reply per prompt (prompts sorted by length, shortest first). Returns the new token ids of
    each reply (without the stop token) and how many replies were cut at max_new_tokens."""
    from transformers.cache_utils import DynamicCache

    Layer = _layer_class()
    n = len(prompts)
    width = max(len(p) for p in prompts)
    capacity = width + max_new_tokens
    k_bufs: list[torch.Tensor] = []
    v_bufs: list[torch.Tensor] = []
    first: list[torch.Tensor] = []  # each group's last-position logits
    for a, b in _groups([len(p) for p in prompts], prefill_tokens):
        w = max(len(p) for p in prompts[a:b])
        ids, mask = left_padded(prompts[a:b], w, pad_id)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        last, cache = forward(ids.to(device), mask.to(device), pos.to(device), None)
        first.append(last.float().cpu())
        for li, layer in enumerate(cache.layers):
            k, v = layer.keys, layer.values
            if len(k_bufs) <= li:
                k_bufs.append(torch.zeros((n, k.shape[1], capacity, k.shape[3]), dtype=k.dtype, device=k.device))
                v_bufs.append(torch.zeros((n, v.shape[1], capacity, v.shape[3]), dtype=v.dtype, device=v.device))
            k_bufs[li][a:b, :, width - w:width] = k  # right-aligned: every prompt ends at position `width`
            v_bufs[li][a:b, :, width - w:width] = v
        del cache
    logits = torch.cat(first)
    cache = DynamicCache()
    cache.layers = [Layer(k, v, width) for k, v in zip(k_bufs, v_bufs)]
    _, mask = left_padded(prompts, width, pad_id)
    next_pos = torch.tensor([len(p) for p in prompts], dtype=torch.long)
    rows = list(range(n))  # prompt index of each row still in the batch
    out: list[list[int]] = [[] for _ in prompts]
    done = [False] * n
    for step in range(max_new_tokens):
        step_tokens, keep, ended = next_tokens(logits, rows, done, out, generators, temperature=temperature,
                                               top_k=top_k, stop_ids=stop_ids, pad_id=pad_id)
        if progress and ended:
            progress(ended)
        if not keep or step == max_new_tokens - 1:
            break
        tokens = torch.tensor(step_tokens, dtype=torch.long)
        if len(rows) - len(keep) >= max(1, len(rows) // 4):  # drop finished rows (a copy of the cache's rows)
            sel = torch.tensor(keep, dtype=torch.long)
            cache.batch_select_indices(sel.to(device))
            mask, next_pos, tokens = mask[sel], next_pos[sel], tokens[sel]
            rows = [rows[r] for r in keep]
        mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
        last, cache = forward(tokens.unsqueeze(1).to(device), mask.to(device), next_pos.unsqueeze(1).to(device), cache)
        logits = last.float().cpu()
        next_pos += 1
    hit = done.count(False)
    if progress and hit:
        progress(hit)
    return out, hit

"""Packed scoring: many (prompt, text) pairs in few forwards, each context read once.

Why: the evaluation scores thousands of texts after their contexts. One conversation's messages each
come after the conversation so far (nested prompts), and the 10 candidates of context fit share one
context. Scored one pair per sequence, a conversation of 40 turns goes through the model 40 times.

How: a *trunk* is the longest prompt of a chain of nested prompts; every text whose prompt is a
prefix of it hangs off the trunk at its prompt's length. A *unit* is one trunk plus texts, laid out
in one row: the trunk's tokens, then each text's tokens (all but its last, which predicts nothing
scored). A 4-D attention mask lets trunk tokens see the trunk before them, and a text's tokens see the
trunk up to its prompt's length plus the text's own earlier tokens; position ids continue from the
prompt's length. Each text therefore gets exactly the logits it would get alone (up to float
rounding): token 0 is predicted at the trunk position prompt_len - 1, token j at the text's token
j - 1. Units are sorted by length and padded into batches of at most `batch_tokens` tokens.

A text that the trunk itself continues with (its prompt plus all its tokens but the last are a prefix of
the trunk) adds no tokens at all: its logits are read at the trunk's own positions. Scored after the whole
conversation so far, most of a conversation's messages are such texts (the later prompts contain them), so
a conversation costs about its own length per orientation instead of about 1.5 times it (measured on the
persona-free control's LoRA evaluation: 131 k -> 102 k tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch


@dataclass
class Unit:
    trunk: list[int]
    texts: list[tuple[int, int, list[int]]] = field(default_factory=list)  # (item index, prompt length, text ids)
    inside: list[tuple[int, int, list[int]]] = field(default_factory=list)  # texts the trunk continues with

    def __len__(self) -> int:
        return len(self.trunk) + sum(len(t) - 1 for _, _, t in self.texts)


def pack_units(seqs: Sequence[tuple[list[int], list[int]]], row_tokens: int) -> list[Unit]:
    """Group (prompt ids, text ids) pairs under trunks; a trunk whose texts' tokens overflow `row_tokens` is
    repeated in as many units as it takes. Texts whose prompt plus all tokens but the last are a prefix of a
    trunk go to that trunk's `inside` (no tokens of their own)."""
    prompts = {tuple(p) for p, _ in seqs}
    heads = {tuple(p) + tuple(t[:-1]) for p, t in seqs}  # what a text needs read before its last token
    trunk_of: dict[tuple[int, ...], tuple[int, ...]] = {}
    trunk: tuple[int, ...] = ()
    # sorted, a sequence comes right before those that extend it: scanned backwards, `trunk` is always the
    # longest prompt that extends the sequence at hand, if any prompt does (only prompts become trunks)
    for p in sorted(prompts | heads, reverse=True):
        inside = bool(trunk) and len(p) <= len(trunk) and trunk[:len(p)] == p
        if p in prompts and not inside:
            trunk, inside = p, True
        if inside:
            trunk_of[p] = trunk
    units_of: dict[tuple[int, ...], list[Unit]] = {}
    for i, (p, text) in enumerate(seqs):
        head = tuple(p) + tuple(text[:-1])
        if head in trunk_of:  # the trunk continues with this text
            t = trunk_of[head]
            units_of.setdefault(t, [Unit(list(t))])[0].inside.append((i, len(p), list(text)))
            continue
        t = trunk_of[tuple(p)]
        units = units_of.setdefault(t, [Unit(list(t))])
        unit = units[-1]
        if unit.texts and len(unit) - len(t) + len(text) - 1 > row_tokens:
            unit = Unit(list(t))
            units.append(unit)
        unit.texts.append((i, len(p), list(text)))
    return [u for units in units_of.values() for u in units]


def _layout(unit: Unit, width: int, pad_id: int, neg: float):
    """(ids, position ids, additive mask [width, width], [(item, [logit row of each text token])]) of one unit."""
    n = len(unit.trunk)
    ids = torch.full((width,), pad_id, dtype=torch.long)
    pos = torch.zeros(width, dtype=torch.long)
    mask = torch.full((width, width), neg)
    ids[:n] = torch.tensor(unit.trunk, dtype=torch.long)
    pos[:n] = torch.arange(n)
    mask[:n, :n] = torch.triu(torch.full((n, n), neg), diagonal=1)
    rows: list[tuple[int, list[int], list[int]]] = [(item, list(range(plen - 1, plen - 1 + len(text))), text)
                                                    for item, plen, text in unit.inside]
    at = n
    for item, plen, text in unit.texts:
        k = len(text) - 1  # the text's tokens placed in the row (its last token is only predicted)
        if k:
            ids[at:at + k] = torch.tensor(text[:-1], dtype=torch.long)
            pos[at:at + k] = torch.arange(plen, plen + k)
            mask[at:at + k, :plen] = 0.0
            mask[at:at + k, at:at + k] = torch.triu(torch.full((k, k), neg), diagonal=1)
        rows.append((item, [plen - 1] + list(range(at, at + k)), text))
        at += k
    for j in range(at, width):  # padding attends to itself only (no fully masked row)
        mask[j, j] = 0.0
    return ids, pos, mask, rows


def score_packed(logits_fn: Callable[..., torch.Tensor], units: Sequence[Unit], n_items: int, *, batch_tokens: int,
                 pad_id: int, device: torch.device | str, dtype: torch.dtype,
                 progress: Callable[[int], None] | None = None) -> list[tuple[float, int]]:
    """[(summed NLL of the text, its token count)] per item. `logits_fn(keep [B, T] bool, input_ids=...,
    attention_mask=..., position_ids=...)` returns the logits of the kept positions, row-major."""
    neg = torch.finfo(dtype).min
    out: list[tuple[float, int]] = [(0.0, 0)] * n_items
    order = sorted(range(len(units)), key=lambda u: (len(units[u]), u))
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end - start + 1) * len(units[order[end]]) <= batch_tokens:
            end += 1
        batch = [units[u] for u in order[start:end]]
        width = len(batch[-1])
        laid = [_layout(u, width, pad_id, neg) for u in batch]
        ids = torch.stack([x[0] for x in laid])
        pos = torch.stack([x[1] for x in laid])
        mask = torch.stack([x[2] for x in laid]).unsqueeze(1).to(dtype)
        keep = torch.zeros(ids.shape, dtype=torch.bool)
        for b, (_, _, _, rows) in enumerate(laid):
            for _, where, _ in rows:
                keep[b, where] = True
        rank = torch.full(ids.shape, -1, dtype=torch.long)
        rank[keep] = torch.arange(int(keep.sum()))
        logits = logits_fn(keep.to(device), input_ids=ids.to(device), attention_mask=mask.to(device),
                           position_ids=pos.to(device), use_cache=False).float().cpu()
        logp = torch.log_softmax(logits, dim=-1)
        for b, (_, _, _, rows) in enumerate(laid):
            for item, where, text in rows:
                picked = logp[rank[b, where], torch.tensor(text, dtype=torch.long)]
                out[item] = (float(-picked.double().sum()), len(text))
        if progress:
            progress(sum(len(u.texts) + len(u.inside) for u in batch))
        start = end
    return out

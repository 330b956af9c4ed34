"""A GPT-2 style decoder, small enough to train from scratch on one person's chat history.

Read top to bottom: ModelArgs -> Attention -> FeedForward -> Block -> TinyGPT.

Architecture (GPT-2): learned token and position embeddings; n_layer pre-LayerNorm blocks, each
`x + attention(ln_1(x))` then `x + mlp(ln_2(x))`; causal multi-head attention through
`F.scaled_dot_product_attention` (fused flash kernels on CPU and GPU); a 4x GELU MLP (exact erf
GELU, so the exported transformers GPT2 with activation_function="gelu" computes the same
function); a final LayerNorm; and an output head that shares its weight with the token embedding.

Layer names follow GPT-2's (wte, wpe, h.N.ln_1, attn.c_attn, mlp.c_fc, ...) so export to
`transformers.GPT2LMHeadModel` is a rename-free copy (plus the Conv1D transpose).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelArgs:
    vocab_size: int
    block_size: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False
    zero_init_proj: bool = False  # start every block as the identity (see TinyGPT._init_weights)

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Keys and values of every layer for the tokens seen so far, so sampling runs each new token
    through the model once instead of re-running the whole context (see generate.generate)."""

    def __init__(self, n_layer: int):
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer
        self.pos = 0  # tokens already cached = position of the next token

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: KVCache | None, layer: int,
           dropout_p: float) -> torch.Tensor:
    """Causal attention of q over k, v, all (B, n_head, T, head_dim). Training (no cache) is one fused
    causal SDPA call. With a cache, the new keys/values join the cached ones; the T new queries then
    see every cached token and the new ones up to themselves (a bottom-right aligned causal mask)."""
    if cache is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
    k, v = cache.append(layer, k, v)
    T, S = q.size(2), k.size(2)
    mask = None if T == 1 else torch.ones(T, S, dtype=torch.bool, device=q.device).tril(S - T)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class Attention(nn.Module):
    """Causal multi-head self-attention; q, k, v come from one fused projection."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        assert args.n_embd % args.n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = args.n_head
        self.head_dim = args.n_embd // args.n_head
        self.dropout = args.dropout
        self.c_attn = nn.Linear(args.n_embd, 3 * args.n_embd, bias=args.bias)
        self.c_proj = nn.Linear(args.n_embd, args.n_embd, bias=args.bias)
        self.resid_drop = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        # (B, T, 3C) -> three (B, n_head, T, head_dim) tensors
        q, k, v = self.c_attn(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        y = attend(q, k, v, cache, layer, self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, C)  # heads side by side again
        return self.resid_drop(self.c_proj(y))


class FeedForward(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.c_fc = nn.Linear(args.n_embd, 4 * args.n_embd, bias=args.bias)
        self.c_proj = nn.Linear(4 * args.n_embd, args.n_embd, bias=args.bias)
        self.drop = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.ln_1 = nn.LayerNorm(args.n_embd, bias=args.bias)
        self.attn = Attention(args)
        self.ln_2 = nn.LayerNorm(args.n_embd, bias=args.bias)
        self.mlp = FeedForward(args)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.wte = nn.Embedding(args.vocab_size, args.n_embd)
        self.wpe = nn.Embedding(args.block_size, args.n_embd)
        self.drop = nn.Dropout(args.dropout)
        self.h = nn.ModuleList(Block(args) for _ in range(args.n_layer))
        self.ln_f = nn.LayerNorm(args.n_embd, bias=args.bias)
        self.lm_head = nn.Linear(args.n_embd, args.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: one matrix embeds and un-embeds tokens
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2 init: N(0, 0.02) everywhere, residual output projections scaled by 1/sqrt(2 * n_layer).
        zero_init_proj zeroes those projections instead (modded-nanogpt): each block starts as the
        identity, so early steps train a clean embedding -> head path and blocks join in as they learn;
        a lower loss at equal steps, at no cost."""
        resid_std = 0.02 / math.sqrt(2 * self.args.n_layer)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = resid_std if name.endswith("c_proj") else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if name.endswith("c_proj") and self.args.zero_init_proj:
                    nn.init.zeros_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """All parameters (the tied matrix counted once); non_embedding drops the position table."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward): 6 per weight plus attention's 12*L*T*C.
        The same estimate nanoGPT uses (PaLM paper, appendix B), so MFU figures compare directly."""
        a = self.args
        T = seq_len or a.block_size
        return 6 * self.num_params(non_embedding=True) + 12 * a.n_layer * a.n_embd * T

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, last_only: bool = False,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) token ids -> logits (B, T, vocab) and, given targets (B, T), the mean cross-entropy.
        last_only computes logits for the final position only (what sampling needs).
        cache (sampling only): idx are the tokens that follow the cache's; their keys/values are added."""
        B, T = idx.shape
        start = cache.pos if cache is not None else 0  # position of idx[:, 0]
        if start + T > self.args.block_size:
            raise ValueError(f"sequence of {start + T} tokens is longer than block_size {self.args.block_size}")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for i, block in enumerate(self.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.pos += T
        x = self.ln_f(x)
        if last_only and targets is None:
            return self.lm_head(x[:, -1:, :]), None
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1)
        return logits, loss

"""A GPT-2 style decoder, small enough to train from scratch on one person's chat history.

Read top to bottom: ModelArgs -> KVCache -> Attention -> FeedForward -> the `modern` pieces -> Block -> TinyGPT.

Architecture (GPT-2): learned token and position embeddings; n_layer pre-LayerNorm blocks, each
`x + attention(ln_1(x))` then `x + mlp(ln_2(x))`; causal multi-head attention through
`F.scaled_dot_product_attention` (fused flash kernels on CPU and GPU); a 4x GELU MLP (exact erf
GELU, so the exported transformers GPT2 with activation_function="gelu" computes the same
function); a final LayerNorm; and an output head that shares its weight with the token embedding.

Layer names follow GPT-2's (wte, wpe, h.N.ln_1, attn.c_attn, mlp.c_fc, ...) so export to
`transformers.GPT2LMHeadModel` is a rename-free copy (plus the Conv1D transpose).

block="modern" (opt-in) swaps in the pieces of a 2025 decoder, each a few lines below: RMSNorm, rotary
positions (RoPE) instead of the position table, RMSNorm on each head's q and k, a gated MLP with
SiLU (SwiGLU; or ReLU^2), an untied output head, and zero-initialised output projections and head. It is laid
out exactly like transformers' Qwen3ForCausalLM, which it exports to (export.py).
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
    block: str = "gpt2"  # "gpt2" or "modern" (checkpoints from before this key are gpt2)
    mlp_act: str = "silu"  # modern only: the gated MLP's activation, silu (SwiGLU) or relu2
    rope_theta: float = 10000.0  # modern only: RoPE base
    norm_eps: float = 1e-6  # modern only: RMSNorm epsilon (Qwen3's rms_norm_eps)

    @property
    def ffn_hidden(self) -> int:
        """Modern MLP width: three matrices of C x H hold as many weights as GPT-2's two of C x 4C when
        H = 8C/3; rounded to a multiple of 16 (two AVX2 vectors of 8 floats) -> 336 for C = 128."""
        return max(16, 16 * round(8 * self.n_embd / 3 / 16))

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


# ------------------------------------------------------------------------- block="modern"

def rms_norm(args: ModelArgs, dim: int) -> nn.Module:
    """RMSNorm (weight * x / rms(x)): LayerNorm without the mean subtraction and bias; as good and cheaper."""
    return nn.RMSNorm(dim, eps=args.norm_eps)


class Rotary(nn.Module):
    """Rotary position embedding (RoPE, "rotate_half" layout as in transformers' Llama/Qwen3): q and k are
    rotated by angles proportional to their position, so q.k depends on the relative distance only. It
    replaces the learned position table (no parameters, and every position trains every offset)."""

    def __init__(self, args: ModelArgs, head_dim: int):
        super().__init__()
        inv_freq = 1.0 / (args.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        angles = torch.outer(torch.arange(args.block_size, dtype=torch.float), inv_freq).repeat(1, 2)
        self.register_buffer("cos", angles.cos(), persistent=False)  # tables, not weights: not saved
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """x (B, n_head, T, head_dim) at positions start .. start+T-1."""
        cos, sin = self.cos[start:start + x.size(2)], self.sin[start:start + x.size(2)]
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class ModernAttention(nn.Module):
    """Causal attention with separate q/k/v/o projections (Qwen3's names and layout), RMSNorm on each
    head's q and k (QK-norm: attention logits stay bounded, so higher learning rates stay stable) and RoPE."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        assert args.n_embd % args.n_head == 0, "n_embd must be divisible by n_head"
        self.n_head, self.head_dim = args.n_head, args.n_embd // args.n_head
        C = args.n_embd
        self.q_proj, self.k_proj = nn.Linear(C, C, bias=False), nn.Linear(C, C, bias=False)
        self.v_proj, self.o_proj = nn.Linear(C, C, bias=False), nn.Linear(C, C, bias=False)
        self.q_norm, self.k_norm = rms_norm(args, self.head_dim), rms_norm(args, self.head_dim)
        self.rotary = Rotary(args, self.head_dim)
        self.dropout = args.dropout
        self.resid_drop = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        heads = lambda t: t.view(B, T, self.n_head, self.head_dim)  # noqa: E731
        q = self.q_norm(heads(self.q_proj(x))).transpose(1, 2)  # norm per head, before RoPE (as Qwen3)
        k = self.k_norm(heads(self.k_proj(x))).transpose(1, 2)
        v = heads(self.v_proj(x)).transpose(1, 2)
        start = cache.pos if cache is not None else 0
        q, k = self.rotary(q, start), self.rotary(k, start)
        y = attend(q, k, v, cache, layer, self.dropout if self.training else 0.0)
        return self.resid_drop(self.o_proj(y.transpose(1, 2).reshape(B, T, C)))


class GatedMLP(nn.Module):
    """down(act(gate(x)) * up(x)): the gate lets each hidden unit switch its input on or off. SiLU
    (SwiGLU) or ReLU^2 (modded-nanogpt); both are in transformers' ACT2FN, so the export is exact."""

    ACTS = {"relu2": lambda t: F.relu(t).square(), "silu": F.silu}

    def __init__(self, args: ModelArgs):
        super().__init__()
        C, H = args.n_embd, args.ffn_hidden
        self.gate_proj, self.up_proj = nn.Linear(C, H, bias=False), nn.Linear(C, H, bias=False)
        self.down_proj = nn.Linear(H, C, bias=False)
        self.act = self.ACTS[args.mlp_act]
        self.drop = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x)))


# ------------------------------------------------------------------------- the model

def block_norm(args: ModelArgs) -> nn.Module:
    return rms_norm(args, args.n_embd) if args.block == "modern" else nn.LayerNorm(args.n_embd, bias=args.bias)


class Block(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        modern = args.block == "modern"
        self.ln_1 = block_norm(args)
        self.attn = ModernAttention(args) if modern else Attention(args)
        self.ln_2 = block_norm(args)
        self.mlp = GatedMLP(args) if modern else FeedForward(args)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        if args.block not in ("gpt2", "modern"):
            raise ValueError(f"block must be gpt2 or modern, got {args.block!r}")
        self.args = args
        modern = args.block == "modern"
        self.wte = nn.Embedding(args.vocab_size, args.n_embd)
        self.wpe = None if modern else nn.Embedding(args.block_size, args.n_embd)  # modern: RoPE instead
        self.drop = nn.Dropout(args.dropout)
        self.h = nn.ModuleList(Block(args) for _ in range(args.n_layer))
        self.ln_f = block_norm(args)
        self.lm_head = nn.Linear(args.n_embd, args.vocab_size, bias=False)
        if not modern:  # weight tying: one matrix embeds and un-embeds tokens. modern unties them (the
            self.lm_head.weight = self.wte.weight  # head then learns its own output geometry; speedrun)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2 init: N(0, 0.02) everywhere, residual output projections scaled by 1/sqrt(2 * n_layer).
        zero_init_proj zeroes those projections instead (modded-nanogpt): each block starts as the
        identity, so early steps train a clean embedding -> head path and blocks join in as they learn;
        a lower loss at equal steps, at no cost. block=modern: the output projections are o_proj and
        down_proj, and the untied head starts at zero too (uniform predictions at step 0, as in the speedrun)."""
        resid_std = 0.02 / math.sqrt(2 * self.args.n_layer)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                out_proj = name.endswith(("c_proj", "o_proj", "down_proj"))
                std = resid_std if out_proj else 0.02
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if (out_proj and self.args.zero_init_proj) or (name == "lm_head" and self.args.block == "modern"):
                    nn.init.zeros_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """All parameters (the tied matrix counted once); non_embedding drops the lookup tables that cost no
        FLOPs: the position table (gpt2) or the untied token embedding (modern; its head is a matmul)."""
        n = sum(p.numel() for p in self.parameters())
        if not non_embedding:
            return n
        return n - (self.wpe.weight.numel() if self.wpe is not None else self.wte.weight.numel())

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
        x = self.wte(idx)
        if self.wpe is not None:  # gpt2: learned positions; modern rotates q and k instead (Rotary)
            x = x + self.wpe(pos)
        x = self.drop(x)
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

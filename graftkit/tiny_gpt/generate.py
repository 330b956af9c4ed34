"""Sampling from a trained tiny GPT: plain continuations and an interactive chat as "me".

Sampling draws from its own torch.Generator, never the global RNG, so printing samples during
training cannot change the training run (exact resume stays exact).
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable, Sequence, TextIO

import torch
import torch.nn.functional as F

from ..corpus import END, ME, THEM
from .model import KVCache, TinyGPT
from .tokenizer import TinyTokenizer


def session_start(tok: TinyTokenizer) -> list[int]:
    """Tokens that open a new session exactly as the training corpus does (END, then a newline), so
    the model sees the context it was trained on before the first turn."""
    return tok.encode(END + "\n")


def sample_rows(logits: torch.Tensor, temperature: float, top_k: int,
                generators: Sequence[torch.Generator | None]) -> list[int]:
    """One token id per row of [rows, vocab] logits, row r drawn with generators[r]: greedy (argmax) when
    temperature <= 0, otherwise a draw from softmax(logits / temperature) restricted to the top_k most likely
    tokens when top_k > 0. The kit's one sampler (chat, training samples and the persona evaluation).

    Why inverse CDF: each row takes one uniform number from its own generator and finds it in the running
    sum of its probabilities. torch.multinomial draws an exponential number per vocabulary entry instead
    (1.3 ms a row for SmolLM2's 49 k tokens on one core, most of a batched evaluation's sampling time), and
    rows in one batch still get exactly the token each would get alone."""
    logits = logits.float().cpu()
    if temperature <= 0:
        return [int(i) for i in torch.argmax(logits, dim=-1)]
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    cdf = F.softmax(logits, dim=-1).double().cumsum(dim=-1)  # float64: the sum of 49 k small numbers stays exact enough
    u = torch.cat([torch.rand(1, dtype=torch.float64, generator=g) for g in generators])
    idx = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
    return [int(i) for i in idx.clamp(max=logits.shape[-1] - 1)]


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                generator: torch.Generator | None = None) -> int:
    """One token id from a [vocab] row of logits (sample_rows with one row)."""
    return sample_rows(logits.reshape(1, -1), temperature, top_k, [generator])[0]


@torch.no_grad()  # sampling never needs gradients (and the cache must not hold an autograd graph)
def generate(model: TinyGPT, ids: list[int], max_new_tokens: int, temperature: float = 1.0,
             top_k: int = 0, stop_ids: Iterable[int] = (), generator: torch.Generator | None = None,
             device: str | torch.device = "cpu") -> list[int]:
    """Continue `ids` by up to max_new_tokens tokens; stop early (excluding it) at any of stop_ids.
    Returns only the new tokens. The context is cropped to the last block_size tokens.

    A KV cache makes each new token one single-token forward: the prompt is run once (prefill), then
    every step feeds only the token just sampled. The tokens are exactly those of re-running the
    cropped context each step (tests/test_tiny_gpt_kvcache.py checks it)."""
    was_training = model.training
    model.eval()
    stop = set(stop_ids)
    block = model.args.block_size
    ctx = list(ids or [0])
    out: list[int] = []
    cache: KVCache | None = None
    try:
        for _ in range(max_new_tokens):
            if cache is None or cache.pos >= block:
                # (re)prefill with the last block_size tokens. Once the context is full, GPT-2's learned
                # positions cannot slide (every cached token would move to another position), and even
                # RoPE's cached keys saw tokens that have left the window, so each further step re-runs
                # the whole window, exactly as sampling without a cache does.
                cache = KVCache(model.args.n_layer)
                feed = ctx[-block:]
            else:
                feed = ctx[-1:]  # the token sampled last step; everything before it is cached
            logits, _ = model(torch.tensor([feed], dtype=torch.long, device=device), last_only=True, cache=cache)
            nxt = sample_next(logits[0, -1], temperature, top_k, generator)
            if nxt in stop:
                break
            out.append(nxt)
            ctx.append(nxt)
    finally:
        model.train(was_training)
    return out


def prompt_ids(tok: TinyTokenizer, prompt: str) -> list[int]:
    """An empty prompt starts a fresh conversation (the END token separates sessions)."""
    return tok.encode(prompt) if prompt else session_start(tok)


def sample_texts(model: TinyGPT, tok: TinyTokenizer, prompt: str, num_samples: int, max_new_tokens: int,
                 temperature: float, top_k: int, seed: int, device="cpu") -> list[str]:
    g = torch.Generator().manual_seed(seed)
    start = prompt_ids(tok, prompt)
    return [prompt + tok.decode(generate(model, start, max_new_tokens, temperature, top_k,
                                         stop_ids=(tok.end_id,), generator=g, device=device))
            for _ in range(num_samples)]


def chat(model: TinyGPT, tok: TinyTokenizer, max_new_tokens: int, temperature: float, top_k: int,
         seed: int, device="cpu", stdin: TextIO | None = None, stdout: TextIO | None = None,
         name: str = "me") -> int:
    """Interactive chat: each line you type is a `<|them|>` message, the model answers as `<|me|>`.

    The reply runs until the model hands the turn back (<|them|>) or ends the session
    (<|endoftext|>); a reply of several messages (lines) is shown as several `me>` lines. The history is
    kept as tokens and trimmed from the oldest turn so prompt + reply fit in block_size.
    Commands: /reset clears the history, /quit (or end of input) leaves. Returns the replies given.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    g = torch.Generator().manual_seed(seed)
    interactive = stdin.isatty()
    history: list[int] = session_start(tok)
    budget = max(1, model.args.block_size - max_new_tokens)
    replies = 0
    write: Callable[[str], None] = lambda s: (stdout.write(s), stdout.flush())  # noqa: E731
    if interactive:
        write("chatting with the model (it answers as you). /reset clears the history, /quit or Ctrl-D leaves.\n")
    while True:
        if interactive:
            write("them> ")
        line = stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if text.strip() in ("/quit", "/exit"):
            break
        if text.strip() == "/reset":
            history = session_start(tok)
            write("(history cleared)\n")
            continue
        if not text.strip():
            continue
        history += tok.encode(f"{THEM}{text}\n{ME}")
        if len(history) > budget:
            history = _trim(history, budget, {tok.them_id, tok.end_id})
        new = generate(model, history, max_new_tokens, temperature, top_k,
                       stop_ids=(tok.them_id, tok.end_id), generator=g, device=device)
        reply = tok.decode(new)
        history += new
        # one line per message: a turn may hold several (newlines, or repeated <|me|> markers)
        messages = [m for m in reply.replace(ME, "\n").split("\n") if m.strip()] or [""]
        for m in messages:
            write(f"{name}> {m}\n")
        replies += 1
        # the turn ended: close it so the next <|them|> starts on a fresh line
        if not reply.endswith("\n"):
            history += tok.encode("\n")
    return replies


def _trim(history: list[int], budget: int, boundaries: set[int]) -> list[int]:
    """Keep the newest tokens within `budget`, starting at a turn boundary when one is available."""
    tail = history[-budget:]
    for i, t in enumerate(tail):
        if t in boundaries:
            return tail[i:]
    return tail

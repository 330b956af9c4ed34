#!/usr/bin/env python3
"""Sampling speed of the tiny GPT with and without the KV cache (the persona evaluation's hot loop).

    OMP_NUM_THREADS=1 python bench/bench_kvcache.py --rounds 2

Workload: --gens generations x --new tokens (temperature 0.8, top_k 40, no stop token) from ~--prompt
token prompts, default config shape (3 layers, 4 heads, n_embd 128, block 256, vocab 512), random
weights (speed does not depend on what the model learned), 1 torch thread. Each round runs the three
samplers one after another (alternating, so machine load hits all of them):
  before     the sampler as it was: the whole cropped context through the model for every token, with
             autograd on (generate() had no torch.no_grad)
  no-cache   the same loop under torch.no_grad (what the cache alone buys = no-cache / after)
  after      generate(): prefill once, then one token per step through the KV cache
Every sampler draws from the same torch.Generator seeds, and the bench asserts all three give the same
tokens. Prints seconds per round and the median ratio before/after.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from graftkit.tiny_gpt.generate import generate, sample_next  # noqa: E402
from graftkit.tiny_gpt.model import ModelArgs, TinyGPT  # noqa: E402


def old_generate(model, ids, max_new_tokens, temperature, top_k, generator):
    """generate() before the KV cache (the same loop, autograd left on as it was)."""
    block = model.args.block_size
    ctx = torch.tensor([ids])
    out = []
    for _ in range(max_new_tokens):
        logits, _ = model(ctx[:, -block:], last_only=True)
        nxt = sample_next(logits[0, -1], temperature, top_k, generator)
        out.append(nxt)
        ctx = torch.cat([ctx, torch.tensor([[nxt]])], dim=1)
    return out


def run(sampler, model, prompts, new) -> tuple[float, list[list[int]]]:
    t = time.perf_counter()
    outs = [sampler(model, p, new, 0.8, 40, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(prompts)]
    return time.perf_counter() - t, outs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (before, no-cache, after)")
    ap.add_argument("--gens", type=int, default=100, help="generations per round and sampler")
    ap.add_argument("--new", type=int, default=64, help="new tokens per generation")
    ap.add_argument("--prompt", type=int, default=150, help="prompt length in tokens (+-10)")
    ap.add_argument("--block", default="gpt2", choices=["gpt2", "modern"], help="model block")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    extra = {} if a.block == "gpt2" else {"block": a.block}
    model = TinyGPT(ModelArgs(vocab_size=512, block_size=256, n_layer=3, n_head=4, n_embd=128, **extra)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # zero-init parts would make sampling degenerate
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 512, (a.prompt - 10 + i % 21,), generator=g).tolist() for i in range(a.gens)]

    def nograd(*args, **kw):
        with torch.no_grad():
            return old_generate(*args, **kw)

    samplers = {"before": old_generate, "no-cache": nograd, "after": generate}
    times: dict[str, list[float]] = {k: [] for k in samplers}
    for r in range(a.rounds):
        outs = {}
        for name, fn in samplers.items():
            sec, outs[name] = run(fn, model, prompts, a.new)
            times[name].append(sec)
            print(f"round {r + 1} {name:9s} {sec:7.2f} s", flush=True)
        assert outs["before"] == outs["no-cache"] == outs["after"], "cached tokens differ"
    med = {k: statistics.median(v) for k, v in times.items()}
    print("median s: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    print(f"before/after {med['before'] / med['after']:.2f}x, no-cache/after {med['no-cache'] / med['after']:.2f}x "
          f"(all three gave identical tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

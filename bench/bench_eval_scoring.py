#!/usr/bin/env python3
"""Packed vs unpacked scoring, and old vs new batched sampling, of the LoRA evaluation on SmolLM2-135M
(issue 11: evaluation speed).

    python bench/bench_eval_scoring.py                       # 10 contexts, 30 messages per side, 2 threads
    python bench/bench_eval_scoring.py --contexts 20 --pool 60 --threads 2 --repeats 2
    python bench/bench_eval_scoring.py --generation --contexts 100 --repeats 2   # sampling, as the evaluation does

--generation: one reply (at most 96 tokens, temperature 0.8) to each of --contexts held-out contexts (the
last 8 turns), with HFChatModel.generate_batch both ways, alternating, on the same loaded model:
  cache-copy    transformers' own KV cache, batches of 4 x batch_tokens (the path before)
  preallocated  graftkit/evaluate/decoding.py: prompts prefilled in groups, one preallocated cache per batch of
                up to 16 x batch_tokens, finished replies leave the batch
Prints seconds, the ratio, and how many replies came out identical (sampling from per-context generators, so
all of them up to float rounding of differently padded matmuls).

Builds the evaluation's own item sets (graftkit/evaluate/core.py: context fit with 10 candidates per
context, who-wrote-it / persona-gap messages after the whole conversation so far, their role-swapped
twins) from the sample's held-out conversations, and scores them with HFChatModel.score both ways,
alternating (ABAB...), on the same loaded model:
  unpacked  every (prompt, text) pair as its own right-padded sequence (batched_nll), as before
  packed    graftkit/evaluate/packing.py: each context read once, texts attached by the attention mask
Prints seconds, tokens put through the model and the ratio, and checks both give the same numbers.
Needs the SmolLM2 GGUF (bench/sample_model.py downloads it) and the sample prepared in
training_data/ (the README's first command) or bench/.cache/fidelity/sample/data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def item_sets(val: list, contexts: int, pool: int, seed: int = 1234) -> list:
    from graftkit.evaluate.core import subsample, build_samples, context_fit_candidates, first_message
    from graftkit.samples import swap_roles

    samples = build_samples(val, max_samples=contexts, seed=seed, max_context_turns=8)
    windowed = build_samples(val, max_samples=None, seed=seed, max_context_turns=8)
    cands = context_fit_candidates(samples, windowed, 10, seed + 5)
    fit = [(s.context, c, "assistant") for s, cs in zip(samples, cands) for c in cs]
    person = [first_message(s) for s in subsample(build_samples(val, max_samples=None, seed=seed,
                                                                 max_context_turns=0), pool, seed + 1)]
    partner = [first_message(s) for s in subsample(build_samples([swap_roles(c) for c in val], max_samples=None,
                                                                   seed=seed, max_context_turns=0), pool, seed + 2)]
    own = [(s.context, s.reply, "assistant") for s in person + partner]
    return fit + own + [(swap_roles(c), t, "user") for c, t, _ in own]


def bench_generation(m, val: list, args) -> int:
    import graftkit.evaluate.decoding as decoding
    from graftkit.evaluate.core import build_samples, sample_seed

    samples = build_samples(val, max_samples=args.contexts, seed=1234, max_context_turns=8)
    contexts, seeds = [s.context for s in samples], [sample_seed(1234, i) for i in range(len(samples))]
    m.max_new_tokens, m.temperature = 96, 0.8
    supported = decoding.preallocated_cache_supported
    times: dict[str, list[float]] = {"cache-copy": [], "preallocated": []}
    out = {}
    for _ in range(args.repeats):
        for name in times:
            decoding.preallocated_cache_supported = supported if name == "preallocated" else (lambda: False)
            t = time.perf_counter()
            out[name] = m.generate_batch(contexts, seeds)
            times[name].append(time.perf_counter() - t)
    decoding.preallocated_cache_supported = supported
    same = sum(a == b for a, b in zip(out["cache-copy"], out["preallocated"]))
    print(f"{len(contexts)} contexts, at most 96 new tokens, {args.threads} threads, {args.repeats} round(s)")
    med = {name: statistics.median(t) for name, t in times.items()}
    for name in times:
        print(f"{name:12s} median {med[name]:7.1f} s  (runs {', '.join(f'{x:.1f}' for x in times[name])})")
    print(f"ratio cache-copy / preallocated: {med['cache-copy'] / med['preallocated']:.2f}x; "
          f"identical replies: {same} of {len(contexts)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contexts", type=int, default=10, help="contexts for context fit (10 candidates each)")
    ap.add_argument("--pool", type=int, default=30, help="messages per side for who-wrote-it / persona gap")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--repeats", type=int, default=1, help="alternating rounds (default 1)")
    ap.add_argument("--generation", action="store_true", help="bench batched sampling instead of scoring")
    ap.add_argument("--val", default="", help="held-out sharegpt file (default: training_data/ or the fidelity cache)")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from graftkit.evaluate.models import HFChatModel
    from graftkit.samples import read_conversations
    from sample_model import GGUF_NAME, smollm2_dir

    torch.set_num_threads(args.threads)
    val_file = Path(args.val) if args.val else next(
        (p for p in (ROOT / "training_data" / "sharegpt_val.jsonl",
                     ROOT / "bench" / ".cache" / "fidelity" / "sample" / "data" / "sharegpt_val.jsonl") if p.exists()),
        None)
    if val_file is None:
        sys.exit("error: no sharegpt_val.jsonl; run prepare_training_data.py first (the README's first command)")
    folder = smollm2_dir()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_NAME)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_NAME).eval()
    m = HFChatModel(model, tok, name="smollm2", max_length=1024)
    if args.generation:
        return bench_generation(m, read_conversations(str(val_file)), args)
    items = item_sets(read_conversations(str(val_file)), args.contexts, args.pool)
    fed: list[int] = []
    model.register_forward_pre_hook(lambda mod, a, kw: fed.append(kw["input_ids"].numel()), with_kwargs=True)
    times: dict[str, list[float]] = {"unpacked": [], "packed": []}
    tokens, results = {}, {}
    for _ in range(args.repeats):
        for name in ("unpacked", "packed"):
            m._packing_ok = name == "packed"
            fed.clear()
            t = time.perf_counter()
            results[name] = m.score(items)
            times[name].append(time.perf_counter() - t)
            tokens[name] = sum(fed)
    worst = max(abs(a[0] - b[0]) for a, b in zip(results["packed"], results["unpacked"]))
    print(f"{len(items)} items ({args.contexts} contexts x 10 candidates, {args.pool} messages per side and their "
          f"swapped twins), {args.threads} threads, {args.repeats} round(s)")
    for name in times:
        print(f"{name:9s} median {statistics.median(times[name]):7.1f} s  (runs {', '.join(f'{x:.1f}' for x in times[name])})"
              f"  {tokens[name]:8,d} tokens through the model")
    print(f"ratio unpacked / packed: {statistics.median(times['unpacked']) / statistics.median(times['packed']):.2f}x"
          f"; largest difference in a summed NLL: {worst:.2e} nats")
    return 0 if worst < 1e-2 else 1


if __name__ == "__main__":
    sys.exit(main())

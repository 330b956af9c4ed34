#!/usr/bin/env python3
"""Benchmark train_tiny_gpt.py against nanoGPT's own train.py: CPU throughput, MFU, val loss at equal tokens.

    python bench/bench_tiny_gpt.py                                   # both shapes, 2 repeats
    python bench/bench_tiny_gpt.py --shapes 256 --iters 150          # one shape; merged into the results file
    python bench/bench_tiny_gpt.py --repeats 3 --variants eager,compile --nanogpt /tmp/nanogpt

Shapes: 4 layers, 4 heads, block 256, batch 12, n_embd 128 and 256 (bias off, dropout 0). Both
trainers see the same token data: the corpus is tokenized once with our byte-level BPE (512 tokens,
built into bench/.cache/) and written in nanoGPT's train.bin/val.bin/meta.pkl format into
<nanogpt>/data/graftkit_bench/. Both use the same optimiser settings (AdamW, lr 2e-3 warmup + cosine
to 2e-4, betas 0.9/0.99, weight decay 0.1, clip 1.0) and the same number of iterations, so they
see the same number of training tokens.

  nanoGPT: python train.py --device=cpu --compile=False --dtype=float32 + the shape flags
           (its own loop, data loader and model; run from a checkout of karpathy/nanoGPT)
  ours:    python train_tiny_gpt.py with dtype=auto (bf16 autocast only where the CPU has native
           bf16) and fused AdamW; optionally compile=true

Throughput is each trainer's own per-iteration time as it prints it (median after the first
iterations), turned into tokens/s; MFU uses the same FLOP count (6N + 12*L*T*C per token, nanoGPT's
formula) and the same CPU peak for both (see train.default_peak_flops). Val loss is computed here,
identically for both final checkpoints, over every non-overlapping 256-token window of the val set.
Each trainer's own CPU time and peak RSS come from os.wait4. The repeats are interleaved (nanoGPT, ours, nanoGPT, ours, ...), so the ratio holds on a noisy,
shared machine; the reported ratio is the median of the per-repeat ratios.

nanoGPT checkout: `git clone https://github.com/karpathy/nanoGPT /tmp/nanogpt` (it is run from there,
never copied into this project; only the val-loss check loads its model.py, from the checkout). Results go to bench/results/tiny_gpt.json (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from graftkit.tiny_gpt.model import ModelArgs, TinyGPT  # noqa: E402
from graftkit.tiny_gpt.tokenizer import build_bpe_tokenizer, load_tokenizer, save_tokenizer, split_sessions  # noqa: E402
from graftkit.tiny_gpt.runtime import default_peak_flops  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results" / "tiny_gpt.json"
BATCH, BLOCK, LAYERS, HEADS = 12, 256, 4, 4
OPT = dict(learning_rate=2e-3, min_lr=2e-4, beta1=0.9, beta2=0.99, weight_decay=0.1, grad_clip=1.0)

NANO_ITER = re.compile(r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms")
OURS_ITER = re.compile(r"^iter (\d+) \| loss ([\d.]+) \| ([\d.]+) ms")


def prepare(args) -> tuple[Path, torch.Tensor]:
    """Tokenizer (cached), nanoGPT-format data; returns (tokenizer path, val tokens)."""
    train_text = Path(args.train).read_text(encoding="utf-8")
    val_text = Path(args.val).read_text(encoding="utf-8")
    CACHE.mkdir(parents=True, exist_ok=True)
    tok_path = CACHE / "tokenizer_bench_bpe512.json"
    if not tok_path.exists():
        save_tokenizer(build_bpe_tokenizer(split_sessions(train_text), 512), tok_path)
    tok = load_tokenizer(tok_path)
    data_dir = Path(args.nanogpt) / "data" / "graftkit_bench"
    data_dir.mkdir(parents=True, exist_ok=True)
    train_ids = np.array(tok.encode_corpus(train_text), dtype=np.uint16)
    val_ids = np.array(tok.encode_corpus(val_text), dtype=np.uint16)
    train_ids.tofile(data_dir / "train.bin")
    val_ids.tofile(data_dir / "val.bin")
    with open(data_dir / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": tok.vocab_size}, f)
    print(f"data: {len(train_ids):,} train / {len(val_ids):,} val tokens, vocab {tok.vocab_size} -> {data_dir}")
    return tok_path, torch.from_numpy(val_ids.astype(np.int64))


def run(cmd: list[str], cwd: Path, pattern: re.Pattern, timeout: int) -> dict:
    """Run one trainer; its wall time, per-iteration ms, and its own CPU time and peak RSS (os.wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{stderr[-3000:]}")
    ms = [(int(m.group(1)), float(m.group(3))) for m in map(pattern.match, stdout.splitlines()) if m]
    return {"wall_s": wall, "ms": ms, "cpu_s": usage.ru_utime + usage.ru_stime,
            "max_rss_mb": usage.ru_maxrss / 1024, "stdout_tail": stdout[-600:]}


def median_ms(ms: list[tuple[int, float]], skip: int) -> float:
    vals = [v for i, v in ms if i >= skip]
    return statistics.median(vals)


def nanogpt_cmd(args, n_embd: int, iters: int, out: Path) -> list[str]:
    flags = dict(dataset="graftkit_bench", device="cpu", compile=False, dtype="float32", n_layer=LAYERS,
                 n_head=HEADS, n_embd=n_embd, block_size=BLOCK, batch_size=BATCH, gradient_accumulation_steps=1,
                 max_iters=iters, lr_decay_iters=iters, eval_interval=iters, eval_iters=1, log_interval=1,
                 dropout=0.0, bias=False, warmup_iters=args.warmup, out_dir=str(out), always_save_checkpoint=True,
                 **OPT)
    return [sys.executable, "train.py"] + [f"--{k}={v}" for k, v in flags.items()]


def ours_cmd(args, tok_path: Path, n_embd: int, iters: int, out: Path, variant: str) -> list[str]:
    keys = dict(train_file=args.train, val_file=args.val, tokenizer_path=str(tok_path), tokenizer_type="bpe",
                vocab_size=512, n_layer=LAYERS, n_head=HEADS, n_embd=n_embd, block_size=BLOCK, batch_size=BATCH,
                gradient_accumulation_steps=1, max_iters=iters, eval_interval=iters, eval_iters=1, log_interval=1,
                dropout=0.0, bias=False, warmup_iters=args.warmup, num_samples=0, patience=0, out_dir=str(out),
                init_from="scratch", progress=False, device="cpu", dtype="auto",
                compile=variant == "compile", **OPT,
                # nanoGPT's recipe (AdamW, cosine, GPT-2 init): this bench compares throughput like for like;
                # the default Muon/WSD recipe is measured by bench_ttq.py
                optimizer="adamw", lr_schedule="cosine", zero_init_proj=False)
    return [sys.executable, str(ROOT / "train_tiny_gpt.py"), "--config", str(ROOT / "tiny_gpt_config.yaml")] + \
        [f"{k}={v}" for k, v in keys.items()]


@torch.no_grad()
def val_loss(model: torch.nn.Module, val: torch.Tensor, forward) -> float:
    """Mean cross-entropy over every non-overlapping BLOCK-token window of the val set."""
    model.eval()
    n = (len(val) - 1) // BLOCK
    x = val[: n * BLOCK].view(n, BLOCK)
    y = val[1: n * BLOCK + 1].view(n, BLOCK)
    total = 0.0
    for i in range(0, n, 16):
        total += forward(model, x[i:i + 16], y[i:i + 16]) * len(x[i:i + 16])
    return total / n


def nanogpt_val(args, out: Path, val: torch.Tensor) -> float:
    sys.path.insert(0, str(args.nanogpt))
    try:
        import model as nano  # nanoGPT's model.py, from its checkout
    finally:
        sys.path.pop(0)
    ckpt = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    m = nano.GPT(nano.GPTConfig(**ckpt["model_args"]))
    m.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    return val_loss(m, val, lambda mod, x, y: float(mod(x, y)[1]))


def ours_val(out: Path, val: torch.Tensor) -> float:
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    m = TinyGPT(ModelArgs(**ckpt["model_args"]))
    m.load_state_dict(ckpt["model"])
    return val_loss(m, val, lambda mod, x, y: float(mod(x, y)[1]))


def merge_previous(results: dict, fresh: bool) -> None:
    """Keep shapes from the previous results file that this run did not measure (same machine and settings),
    so each shape can be measured in its own invocation; shapes are then ordered by n_embd."""
    old = None
    if not fresh and RESULTS.is_file():
        try:
            old = json.loads(RESULTS.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
    same = (isinstance(old, dict) and old.get("settings") == results["settings"]
            and {k: v for k, v in old.get("machine", {}).items() if k != "peak_flops"}
            == {k: v for k, v in results["machine"].items() if k != "peak_flops"})
    if same:
        for k, v in old.get("shapes", {}).items():
            results["shapes"].setdefault(k, v)
    results["shapes"] = dict(sorted(results["shapes"].items(), key=lambda kv: int(kv[0])))


def flops_per_token(n_embd: int, vocab: int) -> float:
    m = TinyGPT(ModelArgs(vocab_size=vocab, block_size=BLOCK, n_layer=LAYERS, n_head=HEADS, n_embd=n_embd))
    return m.flops_per_token()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nanogpt", default="/tmp/nanogpt", help="checkout of karpathy/nanoGPT (default /tmp/nanogpt)")
    ap.add_argument("--train", default=str(ROOT / "training_data" / "corpus_train.txt"))
    ap.add_argument("--val", default=str(ROOT / "training_data" / "corpus_val.txt"))
    ap.add_argument("--shapes", default="128,256", help="n_embd values (default 128,256)")
    ap.add_argument("--iters", default="300,150", help="iterations per shape, same order (default 300,150)")
    ap.add_argument("--warmup", type=int, default=30, help="warmup iterations (both)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--variants", default="eager", help="ours: eager and/or compile (comma-separated)")
    ap.add_argument("--skip", type=int, default=10, help="iterations ignored at the start of each timing")
    ap.add_argument("--fresh", action="store_true",
                    help="drop shapes measured by earlier runs from the results file (default: keep those not "
                         "re-measured now, when machine and settings match, so shapes can be run one at a time)")
    args = ap.parse_args()
    if not (Path(args.nanogpt) / "train.py").is_file():
        raise SystemExit(f"no nanoGPT checkout at {args.nanogpt}: git clone https://github.com/karpathy/nanoGPT "
                         f"{args.nanogpt}")
    for f in (args.train, args.val):
        if not Path(f).is_file():
            raise SystemExit(f"{f} not found: run prepare_training_data.py first (or pass --train/--val)")
    shapes = [int(s) for s in args.shapes.split(",")]
    iters = [int(s) for s in args.iters.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    tok_path, val = prepare(args)
    vocab = load_tokenizer(tok_path).vocab_size
    peak, peak_how = default_peak_flops("cpu", torch.float32)
    from graftkit.tiny_gpt.runtime import cpu_fast_bf16

    results: dict = {"machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                 "torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                 "native_bf16": cpu_fast_bf16(), "peak_flops": peak, "peak_how": peak_how},
                     "settings": {"batch": BATCH, "block": BLOCK, "n_layer": LAYERS, "n_head": HEADS, **OPT,
                                  "warmup": args.warmup, "skip": args.skip}, "shapes": {}}
    with tempfile.TemporaryDirectory(prefix="bench_tiny_gpt_") as tmp:
        tmp = Path(tmp)
        for n_embd, n_iter in zip(shapes, iters):
            fpt = flops_per_token(n_embd, vocab)
            shape = results["shapes"].setdefault(str(n_embd), {"iters": n_iter, "tokens": n_iter * BATCH * BLOCK,
                                                               "flops_per_token": fpt, "runs": [],
                                                               "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")})
            for rep in range(args.repeats):
                row: dict = {"repeat": rep}
                out = tmp / f"nano_{n_embd}_{rep}"
                r = run(nanogpt_cmd(args, n_embd, n_iter, out), Path(args.nanogpt), NANO_ITER, 3600)
                ms = median_ms(r["ms"], args.skip)
                row["nanogpt"] = {"ms": ms, "tok_s": BATCH * BLOCK / ms * 1000, "wall_s": r["wall_s"],
                                  "cpu_s": r["cpu_s"], "max_rss_mb": r["max_rss_mb"],
                                  "val_loss": nanogpt_val(args, out, val)}
                for variant in variants:
                    out = tmp / f"ours_{variant}_{n_embd}_{rep}"
                    r = run(ours_cmd(args, tok_path, n_embd, n_iter, out, variant), ROOT, OURS_ITER, 3600)
                    ms = median_ms(r["ms"], args.skip)
                    row[f"ours_{variant}"] = {"ms": ms, "tok_s": BATCH * BLOCK / ms * 1000, "wall_s": r["wall_s"],
                                              "cpu_s": r["cpu_s"], "max_rss_mb": r["max_rss_mb"],
                                              "val_loss": ours_val(out, val)}
                for k, v in row.items():
                    if isinstance(v, dict):
                        v["mfu"] = fpt * v["tok_s"] / peak
                        if k != "nanogpt":
                            v["ratio_vs_nanogpt"] = v["tok_s"] / row["nanogpt"]["tok_s"]
                shape["runs"].append(row)
                print(f"n_embd {n_embd} repeat {rep}: " + ", ".join(
                    f"{k} {v['tok_s']:,.0f} tok/s val {v['val_loss']:.4f}" for k, v in row.items() if isinstance(v, dict)),
                    flush=True)
            names = [k for k in shape["runs"][0] if k != "repeat"]
            shape["median"] = {k: {f: statistics.median(r[k][f] for r in shape["runs"]) for f in
                                   ("tok_s", "ms", "mfu", "val_loss", "wall_s", "cpu_s", "max_rss_mb")} for k in names}
            for k in names:
                if k != "nanogpt":
                    shape["median"][k]["ratio_vs_nanogpt"] = statistics.median(
                        r[k]["ratio_vs_nanogpt"] for r in shape["runs"])
    merge_previous(results, args.fresh)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nCPU: {results['machine']['cpu_capability']}, {results['machine']['threads']} threads, native bf16: "
          f"{results['machine']['native_bf16']}; MFU vs {peak / 1e9:.0f} GFLOP/s ({peak_how})")
    print(f"{'n_embd':>6} {'trainer':<14} {'tok/s':>9} {'ms/iter':>8} {'MFU':>6} {'val loss':>9} {'ratio':>6}  tokens")
    for n_embd, shape in results["shapes"].items():
        for k, v in shape["median"].items():
            ratio = f"{v['ratio_vs_nanogpt']:.2f}x" if "ratio_vs_nanogpt" in v else ""
            print(f"{n_embd:>6} {k:<14} {v['tok_s']:>9,.0f} {v['ms']:>8.1f} {100 * v['mfu']:>5.0f}% "
                  f"{v['val_loss']:>9.4f} {ratio:>6}  {shape['tokens']:,}")
    counts = ", ".join(f"{k}: {len(v['runs'])}" for k, v in results["shapes"].items())
    print(f"(medians of interleaved repeats per shape ({counts}); ratio = median of per-repeat ratios) -> {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

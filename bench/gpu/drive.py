#!/usr/bin/env python3
"""The GPU check: train_lora.py on Unsloth and on PEFT with the same data, the label-mask check, and the
tiny GPT in bf16 with torch.compile; prints one report and writes report.json.

    PYTHONPATH=/tmp/graftkit-site python3 bench/gpu/drive.py --out $OUT        # on the GPU machine
    python bench/gpu/drive.py --tiny --backends peft --steps 2 --tiny-gpt-iters 20  # CPU: the same code path, tiny

Per preset (random-init with the preset's shapes, bench/gpu/random_model.py, so nothing is
downloaded) and backend: `train_lora.py` with load_in_4bit, gradient checkpointing, save_formats
lora + merged_16bit, on the sample chat prepared by prepare_training_data.py; from its
train_summary.json: trained tokens per second (TRL's num_tokens / train_runtime, non-pad tokens),
seconds per step, peak VRAM, and whether the adapter and the merged model were written.
Mask check: graftkit's label mask (both backends use it) against Unsloth's
`train_on_responses_only` on the same token ids: every token graftkit trains on must be one Unsloth
trains on too, and Unsloth's extra tokens may only be the whitespace after the end-of-turn token.
Tiny GPT: `train_tiny_gpt.py dtype=auto compile=true`; median tok/s and MFU after warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PACKAGES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes", "unsloth", "unsloth_zoo")


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"


def prepare_data(work: Path) -> Path:
    """The repository's sample chat through prepare_training_data.py (LoRA JSONL + tiny GPT transcripts)."""
    data = work / "data"
    if not (data / "sharegpt_train.jsonl").is_file():
        subprocess.run([sys.executable, "prepare_training_data.py", "training_data/sample_chat", "--me", "Sam",
                        "--out", str(data)], cwd=ROOT, check=True, capture_output=True, text=True)
    return data


def run_logged(cmd: list[str], log: Path, env: dict | None = None) -> int:
    with open(log, "w") as f:
        return subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}).returncode


def train_lora(model_dir: Path, data: Path, out: Path, backend: str, steps: int, seq: int, batch: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "train_lora.py", "--config", "lora_config.yaml", f"base_model={model_dir}",
           f"backend={backend}", f"train_file={data / 'sharegpt_train.jsonl'}", f"val_file={data / 'sharegpt_val.jsonl'}",
           f"output_dir={out}", f"max_steps={steps}", "load_in_4bit=true", "gradient_checkpointing=true",
           "save_formats=[lora,merged_16bit]", f"max_seq_length={seq}", f"batch_size={batch}",
           "gradient_accumulation_steps=1", "logging_steps=5", "eval_on_start=false", f"eval_steps={steps}",
           f"save_steps={steps}", "early_stopping_patience=0", "resume=false",
           "contrast_pairs=16"]  # a short contrast stage: DPOTrainer on this backend (Unsloth: PatchDPOTrainer)
    t0 = time.perf_counter()
    rc = run_logged(cmd, out / "train.log", {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    row = {"backend": backend, "rc": rc, "wall_s": round(time.perf_counter() - t0, 1), "log": str(out / "train.log")}
    summary_path = out / "train_summary.json"
    if rc or not summary_path.is_file():
        tail = (out / "train.log").read_text(errors="replace").strip().splitlines()[-3:]
        return {**row, "error": " | ".join(tail)}
    s = json.loads(summary_path.read_text())
    runtime, tokens = s.get("train_runtime") or 0.0, s.get("num_tokens")
    return {**row, "steps": s["global_step"], "seconds_per_step": s.get("median_seconds_per_step"),
            "tokens_per_s": round(tokens / runtime, 1) if tokens and runtime else None,
            "peak_vram_gb": s.get("peak_vram_gb"), "last_train_loss": s.get("last_train_loss"),
            "adapter": (out / "adapter" / "adapter_model.safetensors").is_file(),
            "merged": any((out / "merged_16bit").glob("*.safetensors"))}


def mask_check(model_dir: Path, data: Path, seq: int) -> dict:
    """graftkit's labels vs unsloth_zoo's train_on_responses_only on the same ids (run in its own process)."""
    from graftkit.config import load_config
    from graftkit.lora.config import LoraTrainConfig
    from graftkit.lora.data import IGNORE, encode_samples, read_samples, setup_tokenizer

    cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", [f"base_model={model_dir}", f"max_seq_length={seq}"])
    try:  # Unsloth's helper (imported first, as train_lora.py does on that backend)
        import unsloth  # noqa: F401
        from unsloth_zoo.dataset_utils import train_on_responses_only
    except Exception as e:  # noqa: BLE001 - no unsloth here (CPU): only graftkit's own mask is counted
        train_on_responses_only, why = None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    info = setup_tokenizer(tok, cfg)
    rows, _ = encode_samples(tok, read_samples(data / "sharegpt_train.jsonl"), info, seq, "truncate", "")
    ours = [[i for i, lab in enumerate(r["labels"]) if lab != IGNORE] for r in rows]
    result = {"samples": len(rows), "graftkit_tokens": sum(map(len, ours)),  # replies close with the end-of-turn token
              "eot_labelled": sum(r["input_ids"][i] == info.eot_id for r, k in zip(rows, ours) for i in k)}
    if train_on_responses_only is None:
        return {**result, "unsloth": None, "note": f"unsloth_zoo not importable ({why}); graftkit's mask only"}
    fn = train_on_responses_only(None, instruction_part=info.instruction_part, response_part=info.response_part,
                                 tokenizer=tok, return_function=True)
    theirs_labels = fn({"input_ids": [r["input_ids"] for r in rows]})["labels"]
    theirs = [[i for i, lab in enumerate(labs) if lab != IGNORE] for labs in theirs_labels]
    missing = sum(len(set(a) - set(b)) for a, b in zip(ours, theirs))
    extra = [tok.decode([r["input_ids"][i]]) for r, a, b in zip(rows, ours, theirs) for i in sorted(set(b) - set(a))]
    return {**result, "unsloth": True, "unsloth_tokens": sum(map(len, theirs)), "graftkit_not_in_unsloth": missing,
            "unsloth_extra": len(extra), "unsloth_extra_non_whitespace": sorted({t for t in extra if t.strip()})[:10],
            "ok": missing == 0 and not any(t.strip() for t in extra)}


def tiny_gpt(data: Path, out: Path, iters: int) -> dict:
    cmd = [sys.executable, "train_tiny_gpt.py", "--config", "tiny_gpt_config.yaml",
           f"train_file={data / 'corpus_train.txt'}", f"val_file={data / 'corpus_val.txt'}",
           f"tokenizer_path={out / 'tokenizer_tiny.json'}", f"out_dir={out}", "dtype=auto", "compile=true",
           f"max_iters={iters}", f"eval_interval={iters}", "eval_iters=5", f"log_interval={max(1, iters // 20)}",
           "device=auto"]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rc = run_logged(cmd, out / "train.log")
    row = {"rc": rc, "wall_s": round(time.perf_counter() - t0, 1), "log": str(out / "train.log")}
    metrics = out / "metrics.jsonl"
    rows = [json.loads(ln) for ln in metrics.read_text().splitlines()] if metrics.is_file() else []
    train = [r for r in rows if r.get("kind") == "train"]
    if rc or not train:
        return {**row, "error": " | ".join((out / "train.log").read_text(errors="replace").strip().splitlines()[-3:])}
    late = train[len(train) // 2:]  # after the compile warm-up
    return {**row, "iters": train[-1]["iter"], "tok_s": round(statistics.median(r["tok_s"] for r in late)),
            "mfu": round(statistics.median(r["mfu"] for r in late), 4), "last_loss": round(train[-1]["loss"], 4)}


def _fmt(v, spec: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return format(v, spec) if spec else str(v)


def format_report(report: dict) -> str:
    """The report as a few plain lines: environment, one row per preset x backend, mask check, tiny GPT."""
    v = report["versions"]
    lines = [f"GPU check on {report['device']} | " + " ".join(f"{k} {v[k]}" for k in v if v[k]),
             f"{'preset':<14} {'backend':<8} {'steps':>5} {'s/step':>7} {'tokens/s':>9} {'VRAM GB':>8} "
             f"{'loss':>7} {'adapter':>7} {'merged':>6}"]
    for preset, p in report["lora"].items():
        for r in p["runs"]:
            if r.get("error"):
                lines.append(f"{preset:<14} {r['backend']:<8} FAILED (exit {r['rc']}): {r['error'][:150]}")
                continue
            lines.append(f"{preset:<14} {r['backend']:<8} {_fmt(r['steps']):>5} {_fmt(r['seconds_per_step'], '.3f'):>7} "
                         f"{_fmt(r['tokens_per_s'], ',.0f'):>9} {_fmt(r['peak_vram_gb'], '.2f'):>8} "
                         f"{_fmt(r['last_train_loss'], '.3f'):>7} {_fmt(r['adapter']):>7} {_fmt(r['merged']):>6}")
        ok = {r["backend"]: r.get("tokens_per_s") for r in p["runs"] if not r.get("error")}
        if ok.get("unsloth") and ok.get("peft"):
            lines.append(f"{preset:<14} unsloth / peft tokens/s: {ok['unsloth'] / ok['peft']:.2f}x")
        m = p.get("mask") or {}
        if m.get("error"):
            lines.append(f"{preset:<14} mask check FAILED: {m['error'][:150]}")
        elif m.get("unsloth"):
            lines.append(f"{preset:<14} mask check {'ok' if m['ok'] else 'MISMATCH'}: graftkit {m['graftkit_tokens']} "
                         f"tokens, train_on_responses_only {m['unsloth_tokens']} ({m['graftkit_not_in_unsloth']} of "
                         f"ours not in theirs; {m['unsloth_extra']} extra, non-whitespace: "
                         f"{m['unsloth_extra_non_whitespace'] or 'none'})")
        elif m:
            lines.append(f"{preset:<14} mask: graftkit {m['graftkit_tokens']} tokens in {m['samples']} samples, "
                         f"end-of-turn token labelled {m['eot_labelled']} times; {m.get('note', '')}")
    t = report.get("tiny_gpt")
    if t:
        lines.append(f"tiny GPT (dtype=auto, compile=true): FAILED (exit {t['rc']}): {t['error'][:150]}" if t.get("error")
                     else f"tiny GPT (dtype=auto, compile=true): {t['iters']} iters, {t['tok_s']:,} tok/s, "
                          f"MFU {100 * t['mfu']:.1f}%, loss {t['last_loss']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="qwen2.5-0.5b,llama-3.2-1b",
                    help="comma-separated presets (llama-3.2-1b, qwen2.5-0.5b, qwen2.5-1.5b, mistral-7b)")
    ap.add_argument("--layers", type=int, default=None, help="fewer transformer blocks than the preset (faster)")
    ap.add_argument("--tiny", action="store_true", help="CPU-sized models (proves the path without a GPU)")
    ap.add_argument("--backends", default="unsloth,peft", help="comma-separated: unsloth, peft")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per training run")
    ap.add_argument("--seq", type=int, default=512, help="max_seq_length")
    ap.add_argument("--batch", type=int, default=8, help="batch_size")
    ap.add_argument("--tiny-gpt-iters", type=int, default=300, help="tiny GPT iterations (0 = skip)")
    ap.add_argument("--mask-check", nargs=3, metavar=("MODEL", "DATA", "SEQ"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "bench" / "results" / "gpu"),
                    help="where report.json (and train logs under work/) go; default $OUT, else bench/results/gpu")
    args = ap.parse_args(argv)
    if args.mask_check:  # child process: unsloth patches transformers on import, keep it out of the driver
        print(json.dumps(mask_check(Path(args.mask_check[0]), Path(args.mask_check[1]), int(args.mask_check[2]))))
        return 0
    import random_model

    out = Path(args.out)
    work = Path(os.environ.get("GRAFTKIT_GPU_WORK", "/tmp/graftkit-gpu"))
    work.mkdir(parents=True, exist_ok=True)
    data = prepare_data(work)
    report = {"device": device_name(), "versions": versions(), "args": vars(args), "lora": {}}
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        model_dir = random_model.build(preset, work / "models" / f"{preset}-{args.layers or 'all'}{'-tiny' if args.tiny else ''}",
                                       layers=args.layers, tiny=args.tiny)
        runs = [train_lora(model_dir, data, work / "runs" / f"{preset}-{b}", b, args.steps, args.seq, args.batch)
                for b in [b.strip() for b in args.backends.split(",") if b.strip()]]
        p = subprocess.run([sys.executable, __file__, "--mask-check", str(model_dir), str(data), str(args.seq)],
                           cwd=ROOT, capture_output=True, text=True)
        try:
            mask = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            mask = {"error": (p.stderr.strip().splitlines() or ["no output"])[-1]}
        report["lora"][preset] = {"model_dir": str(model_dir), "runs": runs, "mask": mask}
        print(format_report({**report, "tiny_gpt": None}).splitlines()[-1], flush=True)
    if args.tiny_gpt_iters:
        report["tiny_gpt"] = tiny_gpt(data, work / "tiny_gpt", args.tiny_gpt_iters)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    text = format_report(report)
    (out / "report.txt").write_text(text + "\n")
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

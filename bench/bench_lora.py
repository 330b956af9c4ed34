#!/usr/bin/env python
"""Benchmark train_lora.py against a minimal plain TRL + PEFT script (same model, data, settings).

    python bench/bench_lora.py                    # SmolLM2-135M if cached/downloadable, else the tiny model
    python bench/bench_lora.py --model smollm2 --steps 8 --repeats 4   # what bench/results/lora.json holds
    python bench/bench_lora.py --model tiny --steps 200 --repeats 4

CPU: the two scripts run interleaved in ABBA order (ours, plain, plain, ours, ...), each as
`python <script>` in a fresh process. Per run: seconds per optimizer step (the Trainer's
train_runtime / steps, i.e. the whole training loop with logging, callbacks and the end-of-run
checkpoint both scripts save; model loading excluded and reported separately), the median
single-step time (a step-timing callback in both), the tokens trained (must match, else the
comparison is void), and peak RSS and minor page faults of the process (ru_maxrss / ru_minflt from
os.wait4). The medians over runs give the ratios ours / plain (target <= 1.05: graftkit's own
tokenization, label mask and callbacks must not cost training speed or memory).
CUDA with unsloth installed: also train_lora.py backend=unsloth vs backend=peft (tokens/s, peak VRAM).
Writes bench/results/lora.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graftkit.errors import UserError  # noqa: E402
from graftkit.fileio import atomic_write_json  # noqa: E402
from graftkit.lora.presets import CHATML_TEMPLATE  # noqa: E402
from bench.sample_model import GGUF_NAME, smollm2_dir, write_sample_conversations  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
SAVE_STEPS = 100000  # both scripts: no mid-run checkpoint, one at the end (the Trainer's rule for save_strategy=steps)

# The baseline: what someone would write with TRL + PEFT directly (~40 lines).
PLAIN = r'''
import json, sys, time
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer


class StepTimer(TrainerCallback):  # measurement only: the same per-step timing train_lora.py records
    times, t = [], 0.0
    def on_step_begin(self, *a, **k): self.t = time.perf_counter()
    def on_step_end(self, *a, **k): self.times.append(time.perf_counter() - self.t)


a = json.loads(sys.argv[1])
t0 = time.perf_counter()
tok_kw, model_kw = {}, {}
if a["gguf_file"]:
    from transformers import GgufConfig
    tok_kw = {"gguf_file": a["gguf_file"]}
    model_kw = {"gguf_file": a["gguf_file"], "quantization_config": GgufConfig(dequantize=True)}
tok = AutoTokenizer.from_pretrained(a["model"], **tok_kw)
model = AutoModelForCausalLM.from_pretrained(a["model"], dtype=torch.float32, **model_kw)
tok.chat_template = a["template"]  # ChatML with {% generation %} markers, for assistant_only_loss
tok.eos_token, tok.pad_token = "<|im_end|>", a["pad"]
roles = {"system": "system", "human": "user", "gpt": "assistant"}
rows = [{"messages": [{"role": roles[t["from"]], "content": t["value"]} for t in json.loads(line)["conversations"]]}
        for line in open(a["data"], encoding="utf-8") if line.strip()]
load_s = time.perf_counter() - t0
args = SFTConfig(
    output_dir=a["out"], max_length=a["max_length"], assistant_only_loss=True, max_steps=a["steps"],
    per_device_train_batch_size=a["batch"], gradient_accumulation_steps=1, learning_rate=2e-4, warmup_steps=0,
    lr_scheduler_type="linear", weight_decay=0.01, optim="adamw_torch", seed=a["seed"], logging_steps=5,
    save_strategy="steps", save_steps=a["save_steps"], eval_strategy="no", bf16=False, use_cpu=True,
    gradient_checkpointing=False, report_to="none")
peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                         task_type="CAUSAL_LM")
timer = StepTimer()
trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                     peft_config=peft_config, callbacks=[timer])
res = trainer.train()
trainer.model.save_pretrained(a["out"] + "/adapter")
json.dump({"load_seconds": load_s, "train_runtime": res.metrics["train_runtime"], "steps": trainer.state.global_step,
           "median_seconds_per_step": sorted(timer.times)[len(timer.times) // 2],
           "num_tokens": next(r["num_tokens"] for r in reversed(trainer.state.log_history) if "num_tokens" in r)},
          open(a["out"] + "/plain.json", "w"))
'''


def timed(cmd: list[str], log: Path) -> tuple[int, float, float, int]:
    """Run `cmd`; return (exit code, wall seconds, peak RSS in MiB, minor page faults) of that process."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - t0, usage.ru_maxrss / 1024, usage.ru_minflt  # Linux: KiB


def pick_model(choice: str) -> tuple[Path, str, str]:
    """(model folder, gguf file name or "", pad token) for the SmolLM2 sample or the tiny test model."""
    if choice in ("auto", "smollm2"):
        try:
            return smollm2_dir(CACHE), GGUF_NAME, "<|endoftext|>"
        except UserError as e:
            if choice == "smollm2":
                raise
            print(f"SmolLM2 unavailable ({e}); using the tiny model")
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_llama import make_tiny_llama

    return make_tiny_llama(CACHE / "tiny_llama"), "", "<pad>"


def pick_data(n: int) -> Path:
    """The first n training conversations (prepared sample data if present, else a generated set)."""
    src = ROOT / "training_data" / "sharegpt_train.jsonl"
    out = CACHE / "bench_data.jsonl"
    if src.is_file():
        lines = [ln for ln in src.read_text(encoding="utf-8").splitlines(keepends=True) if ln.strip()][:n]
        out.write_text("".join(lines), encoding="utf-8")
        return out
    return write_sample_conversations(out, n=n)


def ours_cmd(model: Path, gguf: str, data: Path, out: Path, steps: int, batch: int, max_len: int, seed: int,
             *extra: str) -> list[str]:
    return [sys.executable, "train_lora.py", "--config", "lora_config.yaml", f"base_model={model}",
            f"gguf_file={gguf}", f"data_file={data}", "val_fraction=0", f"output_dir={out}", "resume=false",
            f"max_steps={steps}", f"batch_size={batch}", "gradient_accumulation_steps=1", "learning_rate=2e-4",
            "warmup_steps=0", "lr_scheduler=linear", "weight_decay=0.01", "logging_steps=5", f"save_steps={SAVE_STEPS}",
            "gradient_checkpointing=false", f"max_seq_length={max_len}", "chat_template=chatml", f"seed={seed}",
            "early_stopping_patience=0", "save_formats=[lora]", *extra]


def run_cpu(args: argparse.Namespace, model: Path, gguf: str, pad: str, data: Path) -> dict:
    plain_py = CACHE / "plain_trl_peft.py"
    plain_py.write_text(PLAIN, encoding="utf-8")
    runs: dict[str, list[dict]] = {"ours": [], "plain": []}
    for rep in range(args.repeats):
        # ABBA order (ours, plain, plain, ours, ...): a slow drift of the machine's load hits both alike
        for name in (("ours", "plain") if rep % 2 == 0 else ("plain", "ours")):
            out = CACHE / f"run_{name}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            if name == "ours":
                cmd = ours_cmd(model, gguf, data, out, args.steps, args.batch, args.max_length, args.seed)
            else:
                spec = {"model": str(model), "gguf_file": gguf, "data": str(data), "out": str(out),
                        "steps": args.steps, "batch": args.batch, "max_length": args.max_length, "seed": args.seed,
                        "template": CHATML_TEMPLATE, "pad": pad, "save_steps": SAVE_STEPS}
                cmd = [sys.executable, str(plain_py), json.dumps(spec)]
            rc, wall, rss, faults = timed(cmd, CACHE / f"{name}_{rep}.log")
            if rc != 0:
                raise SystemExit(f"{name} run failed (exit {rc}); see {CACHE / f'{name}_{rep}.log'}")
            res = json.loads((out / ("train_summary.json" if name == "ours" else "plain.json")).read_text())
            steps = res.get("global_step", res.get("steps"))
            row = {"seconds_per_step": res["train_runtime"] / steps,
                   "median_step_seconds": res["median_seconds_per_step"], "train_runtime": res["train_runtime"],
                   "steps": steps, "num_tokens": res["num_tokens"], "setup_seconds": wall - res["train_runtime"],
                   "wall_seconds": wall, "peak_rss_mib": rss, "minor_page_faults": faults}
            runs[name].append(row)
            print(f"  {name:5s} run {rep + 1}: {row['seconds_per_step']:.3f} s/step (median step "
                  f"{row['median_step_seconds']:.3f} s), {row['num_tokens']:.0f} tokens, setup "
                  f"{row['setup_seconds']:.1f} s, wall {wall:.1f} s, peak RSS {rss:.0f} MiB, {faults} page faults",
                  flush=True)
    tokens = {n: {r["num_tokens"] for r in rs} for n, rs in runs.items()}
    if tokens["ours"] != tokens["plain"]:
        raise SystemExit(f"the two scripts trained on different token counts {tokens}: not comparable")
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    return {"runs": runs, "median": med,
            "ratio_seconds_per_step": med["ours"]["seconds_per_step"] / med["plain"]["seconds_per_step"],
            "ratio_median_step": med["ours"]["median_step_seconds"] / med["plain"]["median_step_seconds"],
            "ratio_peak_rss": med["ours"]["peak_rss_mib"] / med["plain"]["peak_rss_mib"]}


def run_gpu(args: argparse.Namespace, data: Path) -> dict:
    """backend=unsloth vs backend=peft through train_lora.py (QLoRA 4-bit both): tokens/s and peak VRAM."""
    res = {}
    for backend in ("unsloth", "peft"):
        out = CACHE / f"gpu_{backend}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = ours_cmd(Path(args.gpu_model), "", data, out, args.gpu_steps, args.batch, args.max_length, args.seed,
                       f"backend={backend}", "load_in_4bit=true", "gradient_checkpointing=true", "chat_template=auto")
        rc, wall, _, _ = timed(cmd, CACHE / f"gpu_{backend}.log")
        if rc != 0:
            res[backend] = {"error": f"exit {rc}, see {CACHE / f'gpu_{backend}.log'}"}
            continue
        s = json.loads((out / "train_summary.json").read_text())
        res[backend] = {"tokens_per_second": (s["num_tokens"] or 0) / s["train_runtime"],
                        "seconds_per_step": s["train_runtime"] / s["global_step"], "peak_vram_gb": s["peak_vram_gb"],
                        "load_seconds": s["load_seconds"], "wall_seconds": wall}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["auto", "smollm2", "tiny"], default="auto", help="model for the CPU comparison")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps per run (fixed)")
    ap.add_argument("--repeats", type=int, default=4, help="runs of each script, interleaved ABBA")
    ap.add_argument("--batch", type=int, default=2, help="batch size")
    ap.add_argument("--max-length", type=int, default=256, help="max_seq_length / max_length")
    ap.add_argument("--seed", type=int, default=3407)
    ap.add_argument("--gpu-model", default="qwen2.5-0.5b", help="base_model for the CUDA unsloth-vs-peft comparison")
    ap.add_argument("--gpu-steps", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lora.json"))
    args = ap.parse_args()

    CACHE.mkdir(parents=True, exist_ok=True)
    import importlib.util

    import torch

    model, gguf, pad = pick_model(args.model)
    data = pick_data(args.steps * args.batch)
    print(f"CPU: train_lora.py vs plain TRL+PEFT on {model.name}{'/' + gguf if gguf else ''}, {args.steps} steps x "
          f"batch {args.batch}, {args.repeats} runs each, torch threads {torch.get_num_threads()}", flush=True)
    result = {"model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model), "gguf_file": gguf,
              "data": str(data.relative_to(ROOT)), "steps": args.steps, "batch": args.batch,
              "max_length": args.max_length, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "cpu": run_cpu(args, model, gguf, pad, data)}
    if torch.cuda.is_available() and importlib.util.find_spec("unsloth") is not None:
        result["gpu"] = run_gpu(args, data)
    else:
        result["gpu"] = {"skipped": "the Unsloth vs PEFT comparison needs a CUDA GPU with unsloth installed "
                                    "(pip install -r requirements-gpu.txt)"}
    atomic_write_json(args.out, result)

    med = result["cpu"]["median"]
    print(f"\n{'':18s}{'train_lora.py':>15s}{'plain TRL+PEFT':>16s}{'ratio':>8s}")
    for key, label, fmt in [("seconds_per_step", "s/step (median)", "{:.3f}"),
                            ("median_step_seconds", "one step (median)", "{:.3f}"),
                            ("peak_rss_mib", "peak RSS MiB", "{:.0f}"), ("minor_page_faults", "page faults", "{:.0f}"),
                            ("setup_seconds", "setup s (excl.)", "{:.1f}"),
                            ("wall_seconds", "wall s", "{:.1f}")]:
        a, b = med["ours"][key], med["plain"][key]
        print(f"{label:18s}{fmt.format(a):>15s}{fmt.format(b):>16s}{a / b:>8.3f}")
    if "skipped" in result["gpu"]:
        print(f"\nGPU: skipped: {result['gpu']['skipped']}")
    else:
        for backend, r in result["gpu"].items():
            print(f"GPU {backend}: {r}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

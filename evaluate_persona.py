#!/usr/bin/env python
"""Does it sound like you? Compare the fine-tuned model with its base on held-out conversations.

    python evaluate_persona.py --config lora_config.yaml
    python evaluate_persona.py --config tiny_gpt_config.yaml
    python evaluate_persona.py --config lora_config.yaml --max-samples 30 --max-new-tokens 48   # quick, on a CPU
    python evaluate_persona.py --config lora_config.yaml output_dir=outputs/lora2 --greedy --out eval-lora2
    python evaluate_persona.py --config tiny_gpt_config.yaml --model out-tiny/last.pt --max-samples 0   # all replies

Uses the same config as training (LoRA or tiny GPT; detected from its keys, or --kind) and runs on
the held-out conversations (training_data/sharegpt_val.jsonl from prepare_training_data.py). The
report leads with the numbers that are about *you* rather than chat in general, each with a 95%
bootstrap interval and its chance level:

- speaker test: does the model tell your messages from your partners' (AUC, chance 0.5)?
- who wrote it: does it pick your real reply among partners' messages (hits@1 of 10, chance 10%)?
- persona gap: did training help more on your replies than on your partners' messages?
- authorship of its own replies: a you / partners / junk classifier, tuned minus the same model
  writing as your partner, beside a parrot of your training messages;
- for LoRA, the same numbers for the base model prompted with 20 of your own messages (the free
  alternative to fine-tuning: --prompt-examples), and the speaker test's change from the base;
then context fit (your reply among your replies to other conversations), reply perplexity, style
statistics with intervals and side-by-side examples. See graftkit/evaluate/core.py for definitions.

"base" is the pretrained model without the adapter for LoRA, and a unigram model of the training
corpus for the tiny GPT (which has no pretrained base). Writes report.md, metrics.json,
distributions.png and generations.jsonl to --out (default: <model output dir>/eval/). Deterministic:
the same --seed, settings and --threads give byte-identical files. Key=value overrides after the
flags change the config as in training (output_dir=..., out_dir=..., base_model=...).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from graftkit.config import brief
from graftkit.errors import InputError, UserError, cli_main, run_script


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, metavar="FILE",
                    help="the training config: lora_config.yaml or tiny_gpt_config.yaml (or your copy)")
    ap.add_argument("overrides", nargs="*", metavar="key=value",
                    help="override config keys as in training, e.g. output_dir=outputs/lora2")
    ap.add_argument("--kind", choices=["auto", "lora", "tiny_gpt"], default="auto",
                    help="which pipeline the config belongs to (default: auto, from its keys)")
    ap.add_argument("--model", metavar="PATH",
                    help="the trained model to evaluate: LoRA adapter (or merged) folder, default "
                         "output_dir/adapter; tiny GPT checkpoint, default out_dir/best.pt (else last.pt)")
    ap.add_argument("--val-file", metavar="FILE",
                    help="held-out ShareGPT/messages JSONL (default: the config's validation split, "
                         "training_data/sharegpt_val.jsonl)")
    ap.add_argument("--train-file", metavar="FILE",
                    help="training ShareGPT/messages JSONL the authorship classifier is fitted on (default: the "
                         "config's train split; the tiny GPT's unigram base always uses the config's train_file)")
    ap.add_argument("--out", metavar="DIR", help="output folder (default: <output_dir or out_dir>/eval)")
    ap.add_argument("--max-samples", type=int, default=100, metavar="N",
                    help="generate for at most N held-out contexts, a seeded random sample from the conversations "
                         "--pool-size reads (default: 100; 0 = all of them)")
    ap.add_argument("--max-new-tokens", type=int, default=96, metavar="N",
                    help="longest generated reply in tokens (default: 96; the report counts replies cut there)")
    ap.add_argument("--temperature", type=float, default=0.8,
                    help="sampling temperature for generated replies (default: 0.8; 0 = greedy)")
    ap.add_argument("--top-k", type=int, default=0, metavar="K",
                    help="sample only from the K most likely tokens (default: 0 = no limit)")
    ap.add_argument("--greedy", action="store_true", help="greedy decoding (same as --temperature 0)")
    ap.add_argument("--seed", type=int, default=1234,
                    help="seed for the sample of contexts, the per-context sampling generators and the "
                         "classifier (default: 1234)")
    ap.add_argument("--max-context-turns", type=int, default=8, metavar="N",
                    help="turns before each reply for generation, oldest dropped first; system turns always "
                         "kept (default: 8; 0 = all). Every scored number (who wrote it, the persona gap, context "
                         "fit, perplexity) reads the whole conversation so far, cut to the model's context")
    ap.add_argument("--examples", type=int, default=5, metavar="N",
                    help="side-by-side examples in the report (default: 5); the base model writes replies for these "
                         "contexts only (a before picture), the tuned model for all of them")
    ap.add_argument("--candidates", type=int, default=10, metavar="N",
                    help="N of hits@1 of N for who-wrote-it and context fit: the real reply and N-1 others "
                         "(default: 10, chance 10%%)")
    ap.add_argument("--pool-size", type=int, default=200, metavar="N",
                    help="read whole held-out conversations, drawn at random, until each side has at least N "
                         "messages: who-wrote-it and the persona gap score all of them, the speaker test up to N "
                         "of each side, and the --max-samples contexts come from them (default: 200; 0 = every "
                         "conversation). The time the evaluation takes follows N, not the size of the held-out file")
    ap.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                    help="bootstrap resamples for the 95%% intervals (default: 1000)")
    ap.add_argument("--threads", type=int, default=0, metavar="N",
                    help="torch threads (default: 0 = auto: 1 for the tiny GPT, whose small matrices gain "
                         "nothing from more, and up to 4 cores for LoRA). Same seed and threads = same files")
    ap.add_argument("--prompt-examples", type=int, default=20, metavar="N",
                    help="LoRA: also score the prompting baseline, the base model with N of your own training "
                         "messages as style examples in its system prompt (the free alternative to fine-tuning), "
                         "with the same persona numbers (default: 20; 0 = off; costs about a fifth more scoring)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def console_summary(results: dict) -> list[str]:
    """The persona numbers, one line each, with 95% intervals."""
    def ci(d: dict, pct: bool = True) -> str:
        f = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
        return f"{f(d['value'])} [{f(d['ci95'][0])}, {f(d['ci95'][1])}]"

    out = []
    if "tuned" in results["speaker"]:
        out.append(f"speaker test AUC (chance 0.500): {ci(results['speaker']['tuned'], pct=False)}")
    if "who_wrote_it" in results:
        w = results["who_wrote_it"]
        out.append(f"who wrote it, hits@1 of {w['n']} (chance {100 * w['chance']:.0f}%): {ci(w['headline'])}")
        out.append(f"persona gap, nats/token (0 = none): {ci(results['persona_gap'], pct=False)}")
    a = results["authorship"]
    if a.get("not_a_persona_number"):
        out.append(f"authorship: not a persona number here ({a['not_a_persona_number']})")
    elif "tuned_minus_partner_voice" in a:
        out.append(f"authorship, tuned minus tuned-as-partner (0 = none): {ci(a['tuned_minus_partner_voice'])}; "
                   f"parrot {100 * a['parrot']['attributed_share']:.0f}%, your real "
                   f"{100 * a['person_real']['attributed_share']:.0f}%")
    pb = results.get("prompting_baseline")
    if pb:
        out.append(f"prompting baseline (base model + {pb['n_examples']} of your messages in its prompt): speaker AUC "
                   f"{ci(pb['speaker'], pct=False)}, who wrote it {ci(pb['who_wrote_it'])}, persona gap "
                   f"{ci(pb['persona_gap'], pct=False)}")
    f = results["context_fit"]
    out.append(f"context fit (not about you), hits@1 of {f['n']} (chance {100 * f['chance']:.0f}%): "
               f"{ci(f['tuned'])}")
    p = results["perplexity"]
    out.append(f"reply perplexity (not about you): base {p['base']:.2f} -> tuned {p['tuned']:.2f}")
    return out


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    for flag in ("max_samples", "max_context_turns", "examples", "top_k"):
        if getattr(args, flag) < 0:
            raise UserError(f"--{flag.replace('_', '-')} must not be negative")
    if args.candidates < 2:
        raise UserError("--candidates must be at least 2")
    if not 0 <= args.seed <= 2**32 - 1:
        raise UserError(f"--seed must be a whole number from 0 to 4294967295, got {brief(args.seed)}")
    if args.prompt_examples < 0:
        raise UserError("--prompt-examples must not be negative (0 = no prompting baseline)")
    if args.pool_size < 0 or args.bootstrap < 1 or args.threads < 0:
        raise UserError("--pool-size and --threads must not be negative, --bootstrap must be at least 1")
    if args.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1")
    if args.temperature < 0:
        raise UserError("--temperature must not be negative (0 = greedy)")
    temperature = 0.0 if args.greedy else args.temperature
    warnings.filterwarnings("ignore", category=FutureWarning)

    from graftkit.evaluate.loading import detect_kind, load_target

    t_start = time.time()
    kind, cfg = detect_kind(args.config, args.overrides, args.kind)

    import os

    import torch

    threads = args.threads or (1 if kind == "tiny_gpt" else max(1, min(4, len(os.sched_getaffinity(0)))))
    torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    target = load_target(kind, cfg, args.model, max_new_tokens=args.max_new_tokens, temperature=temperature,
                         top_k=args.top_k, train_file=args.train_file, val_file=args.val_file)
    train_convs, val_convs = target.load_data()

    from graftkit.evaluate.core import EvalSettings, build_samples, pick_conversations, run_evaluation
    from graftkit.evaluate.report import write_outputs

    settings = EvalSettings(max_samples=args.max_samples, max_context_turns=args.max_context_turns, seed=args.seed,
                            n_examples=args.examples, n_candidates=args.candidates, pool_size=args.pool_size,
                            n_boot=args.bootstrap)
    candidates = build_samples(val_convs, max_samples=None, seed=args.seed, max_context_turns=args.max_context_turns)
    pool = pick_conversations(val_convs, args.pool_size, args.seed)  # everything is read from these conversations
    samples = build_samples(val_convs, max_samples=args.max_samples, seed=args.seed,
                            max_context_turns=args.max_context_turns, only=pool)
    if not samples:
        raise InputError("no held-out reply of the person comes after a partner message; nothing to evaluate",
                         target.val_file)
    if not args.quiet:
        print(f"evaluating {target.meta.get('model_dir')} ({kind}) against its base on {len(samples)} held-out "
              f"contexts, {threads} thread(s)", file=sys.stderr)
    from graftkit.evaluate.loading import prompting_baseline

    prompted = prompting_baseline(target, train_convs, args.prompt_examples, args.seed)
    results, rows = run_evaluation(samples, target.models, settings, train_convs=train_convs, val_convs=val_convs,
                                   progress=not args.quiet, prompted=prompted)
    decoding = "greedy" if temperature == 0 else f"sampling at temperature {temperature:g}" + (
        f", top-k {args.top_k}" if args.top_k else "")
    meta = {
        "kind": kind, "config": str(args.config), **target.meta,
        "val_file": target.val_file, "train_file": target.train_file, "n_candidates": len(candidates),
        "generation": f"{decoding}, at most {args.max_new_tokens} new tokens, seed {args.seed}",
        "max_new_tokens": args.max_new_tokens, "temperature": temperature, "top_k": args.top_k,
        "threads": threads,
    }
    out_dir = Path(args.out) if args.out else target.out_dir / "eval"
    results["seconds"]["total"] = round(time.time() - t_start, 2)
    paths = write_outputs(out_dir, results, rows, meta)

    for line in console_summary(results):
        print(line)
    secs = ", ".join(f"{k} {v:.1f} s" for k, v in results["seconds"].items())
    print(f"{results['n_contexts']} contexts in {results['seconds']['total']:.0f} s ({secs}); "
          f"report: {paths['report.md']}")
    return 0


if __name__ == "__main__":
    run_script(main)  # sys.exit(main()), except inside IPython/Jupyter

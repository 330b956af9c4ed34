#!/usr/bin/env python
"""Does it sound like you? Compare the fine-tuned model with its base on held-out conversations.

    python evaluate_persona.py --config lora_config.yaml
    python evaluate_persona.py --config tiny_gpt_config.yaml
    python evaluate_persona.py --config lora_config.yaml --max-samples 30 --max-new-tokens 48   # quick, on a CPU
    python evaluate_persona.py --config lora_config.yaml output_dir=outputs/lora2 --greedy --out eval-lora2
    python evaluate_persona.py --config tiny_gpt_config.yaml --model out-tiny/last.pt --max-samples 0   # all replies

Uses the same config as training (LoRA or tiny GPT; detected from its keys, or --kind) and runs on
the held-out conversations (training_data/sharegpt_val.jsonl from prepare_training_data.py). For
every context before one of your real replies it reports, base vs fine-tuned side by side:

- reply perplexity of your real replies given the preceding turns (only reply tokens scored);
- style of generated replies vs your real ones: length, lines per reply, emoji, lowercase,
  punctuation, questions, vocabulary overlap, distinct-1/2, and one overall style distance;
- an authorship test: a character n-gram classifier trained on the train split to tell your
  messages from your partners' says how many generated replies look like yours (beside your real
  held-out replies, your partners', and shuffled-letter nonsense as a control);
- side-by-side examples.

"base" is the pretrained model without the adapter for LoRA, and a unigram model of the training
corpus for the tiny GPT (which has no pretrained base). Writes report.md, metrics.json,
distributions.png and generations.jsonl to --out (default: <model output dir>/eval/). Deterministic:
the same --seed and settings give the same metrics.json and generations.jsonl (the report adds the
runtime). Key=value overrides after the flags change the config as in training (output_dir=...,
out_dir=..., base_model=...).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

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
                    help="evaluate at most N held-out replies, a seeded random sample (default: 100; 0 = all)")
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
                    help="turns before each reply given to the models, oldest dropped first; system turns "
                         "always kept (default: 8; 0 = all)")
    ap.add_argument("--examples", type=int, default=5, metavar="N",
                    help="side-by-side examples in the report (default: 5)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    for flag in ("max_samples", "max_context_turns", "examples", "top_k"):
        if getattr(args, flag) < 0:
            raise UserError(f"--{flag.replace('_', '-')} must not be negative")
    if args.max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1")
    if args.temperature < 0:
        raise UserError("--temperature must not be negative (0 = greedy)")
    temperature = 0.0 if args.greedy else args.temperature
    warnings.filterwarnings("ignore", category=FutureWarning)

    from graftkit.evaluate.loading import detect_kind, load_target

    t_start = time.time()
    kind, cfg = detect_kind(args.config, args.overrides, args.kind)

    import torch

    torch.manual_seed(args.seed)
    target = load_target(kind, cfg, args.model, max_new_tokens=args.max_new_tokens, temperature=temperature,
                         top_k=args.top_k, train_file=args.train_file, val_file=args.val_file)
    train_convs, val_convs = target.load_data()

    from graftkit.evaluate.core import EvalSettings, build_samples, run_evaluation
    from graftkit.evaluate.report import write_outputs

    settings = EvalSettings(max_samples=args.max_samples, max_context_turns=args.max_context_turns, seed=args.seed,
                            n_examples=args.examples)
    candidates = build_samples(val_convs, max_samples=None, seed=args.seed, max_context_turns=args.max_context_turns)
    samples = build_samples(val_convs, max_samples=args.max_samples, seed=args.seed,
                            max_context_turns=args.max_context_turns)
    if not samples:
        raise InputError("no held-out reply of the person comes after a partner message; nothing to evaluate",
                         target.val_file)
    if not args.quiet:
        print(f"evaluating {target.meta.get('model_dir')} ({kind}) against its base on {len(samples)} held-out "
              "replies", file=sys.stderr)
    results, rows = run_evaluation(samples, target.models, settings, train_convs=train_convs, val_convs=val_convs,
                                   progress=not args.quiet)
    decoding = "greedy" if temperature == 0 else f"sampling at temperature {temperature:g}" + (
        f", top-k {args.top_k}" if args.top_k else "")
    meta = {
        "kind": kind, "config": str(args.config), **target.meta,
        "val_file": target.val_file, "train_file": target.train_file, "n_candidates": len(candidates),
        "generation": f"{decoding}, at most {args.max_new_tokens} new tokens, seed {args.seed}",
        "max_new_tokens": args.max_new_tokens, "temperature": temperature, "top_k": args.top_k,
    }
    out_dir = Path(args.out) if args.out else target.out_dir / "eval"
    results["seconds"]["total"] = round(time.time() - t_start, 2)
    paths = write_outputs(out_dir, results, rows, meta)

    ppl, dist, auth = results["perplexity"], results["style"]["distance"], results["authorship"]
    verdict = "lower, better" if ppl["tuned"] < ppl["base"] else "NOT lower: see the report"
    print(f"reply perplexity: base {ppl['base']:.2f} -> tuned {ppl['tuned']:.2f} "
          f"({100 * ppl['relative_change']:+.1f}%, {verdict})")
    print(f"style distance to your replies: base {dist['base']:.3f}, tuned {dist['tuned']:.3f} "
          f"(partners {dist['partners']:.3f})")
    share = {k: f"{100 * auth[k]['attributed_share']:.0f}%" for k in
             ("base", "tuned", "person_real", "partners_real", "scrambled_real")}
    print(f"authorship (attributed to you): base {share['base']}, tuned {share['tuned']} (your real replies "
          f"{share['person_real']}, partners {share['partners_real']}, shuffled-letter nonsense "
          f"{share['scrambled_real']})")
    print(f"{results['n_contexts']} contexts in {results['seconds']['total']:.0f} s; report: {paths['report.md']}")
    return 0


if __name__ == "__main__":
    run_script(main)  # sys.exit(main()), except inside IPython/Jupyter

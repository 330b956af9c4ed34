#!/usr/bin/env python3
"""Train a tiny GPT (GPT-2 architecture, under 1M parameters by default) from scratch on your chat transcript.

    python train_tiny_gpt.py --config tiny_gpt_config.yaml                  # train (resumes if out_dir/last.pt exists)
    python train_tiny_gpt.py --config tiny_gpt_config.yaml epochs=20 n_embd=192   # any key=value override
    python train_tiny_gpt.py --config tiny_gpt_config.yaml --sample "<|them|>hi!\n<|me|>"
    python train_tiny_gpt.py --config tiny_gpt_config.yaml --chat           # you write as them, it answers as you
    python train_tiny_gpt.py --config tiny_gpt_config.yaml --export-hf out/tiny_gpt_hf
    torchrun --standalone --nproc_per_node=4 train_tiny_gpt.py --config tiny_gpt_config.yaml   # multi-GPU (DDP)

Reads training_data/corpus_train.txt and corpus_val.txt (from prepare_training_data.py), builds the
tokenizer if it is missing, and writes out_dir/last.pt, best.pt, metrics.jsonl and loss_curve.png.
Ctrl-C saves last.pt and exits (run again to resume exactly where it stopped). In --sample prompts
"\\n" means a newline; an empty prompt starts a new conversation.
"""

from __future__ import annotations

import argparse
import sys

from graftkit.config import add_config_args, config_help, load_config
from graftkit.errors import cli_main
from graftkit.tiny_gpt.config import TinyGPTConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, epilog=config_help(TinyGPTConfig),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, "tiny_gpt_config.yaml")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sample", metavar="PROMPT", nargs="?", const=None, default=argparse.SUPPRESS,
                      help="print num_samples continuations of PROMPT (default: the config's prompt) and exit")
    mode.add_argument("--chat", action="store_true", help="chat with the model on stdin/stdout; it answers as you")
    mode.add_argument("--export-hf", metavar="DIR", help="write a transformers GPT2LMHeadModel folder and exit")
    p.add_argument("--checkpoint", metavar="FILE", help="checkpoint for --sample/--chat/--export-hf "
                   "(default: out_dir/best.pt, else out_dir/last.pt)")
    return p


def _looks_like_override(text: str) -> bool:
    import dataclasses
    import re

    m = re.match(r"^([A-Za-z_]\w*)=", text)
    return bool(m) and m.group(1) in {f.name for f in dataclasses.fields(TinyGPTConfig)}


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sampling = hasattr(args, "sample")
    if sampling and args.sample is not None and _looks_like_override(args.sample):
        args.overrides.insert(0, args.sample)  # `--sample key=value ...`: no prompt given
        args.sample = None
    cfg = load_config(TinyGPTConfig, args.config, args.overrides)
    if not (sampling or args.chat or args.export_hf):
        cfg.check_data_files()  # before the heavy imports: a missing file is reported instantly
        from graftkit.tiny_gpt.train import train

        train(cfg)
        return 0

    from graftkit.tiny_gpt.train import load_for_inference

    model, tok, path, _ = load_for_inference(cfg, args.checkpoint)
    if args.export_hf:
        from graftkit.tiny_gpt.export import export_hf

        out = export_hf(model, tok, args.export_hf)
        print(f"exported {path} -> {out} (load with transformers.AutoModelForCausalLM.from_pretrained)")
        return 0
    device = next(model.parameters()).device
    if args.chat:
        from graftkit.tiny_gpt.generate import chat

        chat(model, tok, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.seed, device=device)
        return 0
    from graftkit.tiny_gpt.generate import sample_texts

    prompt = cfg.prompt if args.sample is None else args.sample.replace("\\n", "\n")
    print(f"# {path}", file=sys.stderr)
    texts = sample_texts(model, tok, prompt, max(1, cfg.num_samples), cfg.max_new_tokens, cfg.temperature,
                         cfg.top_k, cfg.seed, device=device)
    for i, t in enumerate(texts):
        print(f"--- sample {i + 1} ---\n{t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

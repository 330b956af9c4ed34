#!/usr/bin/env python
"""Fine-tune a pre-trained chat model with LoRA on your conversations, then chat with it.

    python train_lora.py --config lora_config.yaml
    python train_lora.py --config lora_config.yaml base_model=llama-3.2-1b max_steps=30
    python train_lora.py --config lora_config.yaml --chat          # talk to the result

Reads training_data/sharegpt_train.jsonl / sharegpt_val.jsonl from prepare_training_data.py
(ShareGPT or OpenAI `messages` JSONL; the person is the "gpt"/assistant side) and trains only on
the person's replies. Backend `auto` uses Unsloth (4-bit, fast) on an NVIDIA GPU when it is
installed (pip install -r requirements-gpu.txt), otherwise transformers + PEFT (QLoRA on CUDA,
fp32 on CPU). Writes output_dir/adapter (always), checkpoints, metrics.jsonl, loss_curve.png,
train_summary.json, and merged_16bit / GGUF exports when asked (save_formats). Re-running resumes
from the newest checkpoint in output_dir (resume=false starts over).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from graftkit.config import add_config_args, config_help, load_config
from graftkit.errors import cli_main
from graftkit.lora.config import LoraTrainConfig


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, epilog=config_help(LoraTrainConfig),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(ap, "lora_config.yaml")
    ap.add_argument("--chat", action="store_true",
                    help="instead of training, chat with the trained model: one message per stdin line (piped "
                         "stdin works); replies stop at the end-of-turn token")
    ap.add_argument("--model-dir", metavar="DIR",
                    help="with --chat: an adapter folder or a merged_16bit folder (default: output_dir/adapter)")
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_config(LoraTrainConfig, args.config, args.overrides)
    # transformers 5.x deprecation noise (gradient_checkpointing -> activation_checkpointing, see notes)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    if args.chat:
        from graftkit.lora.chat import chat_loop

        return chat_loop(cfg, args.model_dir or Path(cfg.output_dir) / "adapter")
    from graftkit.lora.train import run

    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())

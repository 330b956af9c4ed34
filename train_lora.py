#!/usr/bin/env python
"""Fine-tune a pre-trained chat model with LoRA on your conversations, then chat with it.

    python train_lora.py --config lora_config.yaml
    python train_lora.py --config lora_config.yaml base_model=llama-3.2-1b max_steps=30
    python train_lora.py --config lora_config.yaml --chat          # talk to the result
    torchrun --nproc_per_node=2 train_lora.py --config lora_config.yaml   # DDP on 2 GPUs (PEFT backend)

Reads training_data/sharegpt_train.jsonl / sharegpt_val.jsonl from prepare_training_data.py
(ShareGPT or OpenAI `messages` JSONL; the person is the "gpt"/assistant side), or splits one file
itself (data_file=training_data/sharegpt_format.jsonl; also done when the split files are missing),
and trains only on the person's replies, packing whole conversations into rows of max_seq_length
tokens instead of padding them (packing: auto; no conversation attends to another). Backend `auto`
uses Unsloth (4-bit, fast) on an NVIDIA GPU when it is installed (pip install -r
requirements-gpu.txt), otherwise transformers + PEFT (QLoRA on CUDA, fp32 on CPU). Writes output_dir/adapter (always), checkpoints, metrics.jsonl, loss_curve.png,
train_summary.json, and merged_16bit / GGUF exports when asked (save_formats). Re-running resumes
from the newest checkpoint in output_dir (resume=false starts over).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from graftkit.config import add_config_args, config_help, load_config
from graftkit.errors import ConfigError, cli_main, run_script
from graftkit.lora.config import LoraTrainConfig

# Names people bring from TRL / transformers / other trainers, for "unknown key" errors.
KEY_ALIASES = {
    "lr": "learning_rate", "r": "lora_r", "rank": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout",
    "model": "base_model", "model_name": "base_model", "model_name_or_path": "base_model",
    "max_length": "max_seq_length", "num_train_epochs": "epochs", "num_epochs": "epochs",
    "per_device_train_batch_size": "batch_size", "lr_scheduler_type": "lr_scheduler", "scheduler": "lr_scheduler",
    "warmup_ratio": "warmup_steps", "out": "output_dir", "data": "data_file", "dataset": "data_file",
    "resume_from_checkpoint": "resume", "report_to": "wandb", "grad_accum": "gradient_accumulation_steps",
    "patience": "early_stopping_patience", "system": "system_prompt", "template": "chat_template",
    "quantize": "load_in_4bit", "4bit": "load_in_4bit", "qlora": "load_in_4bit",
}


def load_lora_config(path: str | None, overrides: list[str]) -> LoraTrainConfig:
    try:
        return load_config(LoraTrainConfig, path, overrides)
    except ConfigError as e:
        key = e.message.split("'")[1] if e.message.startswith("unknown key '") else None
        if key in KEY_ALIASES and "did you mean" not in e.message:
            raise ConfigError(f"{e.message} (did you mean {KEY_ALIASES[key]!r}?)", e.path, e.line) from None
        raise


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
    cfg = load_lora_config(args.config, args.overrides)
    # transformers 5.x deprecation noise (gradient_checkpointing -> activation_checkpointing, see notes)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    if args.chat:
        from graftkit.lora.chat import chat_loop

        return chat_loop(cfg, args.model_dir or Path(cfg.output_dir) / "adapter")
    from graftkit.lora.train import run

    run(cfg)
    return 0


if __name__ == "__main__":
    run_script(main)  # sys.exit(main()), except inside IPython/Jupyter

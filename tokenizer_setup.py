#!/usr/bin/env python3
"""Build the tiny GPT's tokenizer from the training transcript and report how well it fits.

    python tokenizer_setup.py --config tiny_gpt_config.yaml
    python tokenizer_setup.py --config tiny_gpt_config.yaml --type char --min-char-freq 3
    python tokenizer_setup.py --type bpe --vocab-size 384 --out training_data/tokenizer_384.json

Kinds: `char` (one token per character, rare characters -> <unk>), `bpe` (byte-level BPE trained
on the corpus, 256-512 tokens) or `tiktoken` (an existing encoding such as gpt2, for comparison;
needs internet the first time). The speaker markers <|me|>, <|them|>, <|endoftext|> are special
tokens. The result is a tokenizer.json that `transformers.PreTrainedTokenizerFast(tokenizer_file=...)`
loads. Prints the vocabulary size, characters per token on train and val, and the unknown-token
rate (coverage) on val. Flags override the config file; key=value overrides work too.
"""

from __future__ import annotations

import argparse
import json

from graftkit.config import add_config_args, config_help, load_config
from graftkit.errors import cli_main, run_script
from graftkit.tiny_gpt.config import TinyGPTConfig

FLAG_KEYS = {"type": "tokenizer_type", "vocab_size": "vocab_size", "min_char_freq": "min_char_freq",
             "encoding": "tiktoken_encoding", "train": "train_file", "val": "val_file", "out": "tokenizer_path"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, epilog=config_help(TinyGPTConfig),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, "tiny_gpt_config.yaml")
    p.add_argument("--type", choices=["bpe", "char", "tiktoken"], help="tokenizer kind (config: tokenizer_type)")
    p.add_argument("--vocab-size", type=int, help="BPE vocabulary size, 259-512 (config: vocab_size)")
    p.add_argument("--min-char-freq", type=int, help="char: rarer characters become <unk> (config: min_char_freq)")
    p.add_argument("--encoding", help="tiktoken encoding name, e.g. gpt2 (config: tiktoken_encoding)")
    p.add_argument("--train", metavar="FILE", help="training transcript (config: train_file)")
    p.add_argument("--val", metavar="FILE", help="validation transcript for the stats (config: val_file)")
    p.add_argument("--out", metavar="FILE", help="where to write tokenizer.json (config: tokenizer_path)")
    p.add_argument("--json", action="store_true", help="print the stats as JSON")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = list(args.overrides)
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_config(TinyGPTConfig, args.config, overrides)

    from pathlib import Path

    from graftkit.tiny_gpt.tokenizer import (build_tokenizer, format_stats, load_tokenizer, read_text,
                                             save_tokenizer, tokenizer_stats)

    from graftkit.fileio import check_prepared

    check_prepared(cfg.train_file, cfg.val_file)  # never a corpus half-published by a killed prepare run
    cfg.check_data_files(need_val=False)
    if cfg.tokenizer_type == "tiktoken":
        from graftkit.prepare.tokenizer_report import load_tiktoken

        load_tiktoken(cfg.tiktoken_encoding)  # announced, time-bounded download; build_tokenizer then reuses it
    train_text = read_text(cfg.train_file, "train_file")
    val_text = read_text(cfg.val_file, "val_file") if Path(cfg.val_file).is_file() else None
    tok = build_tokenizer(cfg.tokenizer_type, train_text, cfg.vocab_size, cfg.min_char_freq, cfg.tiktoken_encoding)
    save_tokenizer(tok, cfg.tokenizer_path)
    stats = tokenizer_stats(load_tokenizer(cfg.tokenizer_path), train_text, val_text)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats))
        print(f"saved {cfg.tokenizer_path}")
    return 0


if __name__ == "__main__":
    run_script(main)  # sys.exit(main()), except inside IPython/Jupyter

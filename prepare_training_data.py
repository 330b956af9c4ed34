#!/usr/bin/env python3
"""Turn chat exports into training data for the tiny GPT and for LoRA fine-tunes.

    python prepare_training_data.py training_data/sample_chat --me Sam --out training_data

INPUT is an export file, an export folder or a .zip (WhatsApp, Telegram, Discord, Messenger,
Instagram, Slack, iMessage, SMS, Signal, LINE, Google Chat, CSV, plain transcripts; auto-detected,
--format forces one), or ShareGPT / OpenAI `messages` JSONL that is validated and split as is
(assistant = you). Several INPUTs are combined; a chat exported twice is counted once.

Writes into --out (all files replaced together, only when the whole run succeeds):
  messages.jsonl         every chat message: conversation, timestamp, sender, text, is_me, source
  sharegpt_format.jsonl  all samples, {"conversations": [{"from": system|human|gpt, "value"}]};
                         "gpt" turns are yours. train_lora.py reads this (or the two splits)
  sharegpt_train.jsonl / sharegpt_val.jsonl   the split, by session: no session in both
  corpus_train.txt / corpus_val.txt           <|them|>/<|me|> transcripts for the tiny GPT, same split
  stats.json             counts: senders, sources, drops, PII replacements, split, token lengths

A sample is one session (messages with no silence longer than --session-gap), cut into windows of
at most --window-turns turns, that contains at least one of your messages. E-mails, phone numbers,
URLs, card numbers and IBANs are replaced by <EMAIL>, <PHONE>, <URL>, <CARD>, <IBAN> unless
--no-scrub.
"""

from __future__ import annotations

import argparse
import sys

from graftkit.errors import cli_main, run_script
from graftkit.parsers import FORMAT_NAMES, ZIP_LIMITS
from graftkit.prepare.pipeline import PrepareOptions, parse_duration, prepare


def _duration(text: str) -> float | None:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _number(kind: type, lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False):
    """An argparse type: `kind` within [lo, hi] (an open end excluded), so `--min-turns -5` is one
    clear line naming the valid range instead of an empty or nonsense run."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
                from None
        below = lo is not None and (value <= lo if lo_open else value < lo)
        above = hi is not None and (value >= hi if hi_open else value > hi)
        if below or above or value != value:
            if hi is None:
                valid = f"{'above' if lo_open else 'at least'} {lo}"
            else:
                valid = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
            raise argparse.ArgumentTypeError(f"{text} is out of range (valid: {valid})")
        return value
    return parse


def _size(text: str) -> int:
    """'2G', '500M', '100k' or plain bytes -> bytes."""
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 500M, 2G)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is out of range (valid: at least 1 byte)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", metavar="INPUT", help="export file, export folder or .zip (several allowed)")
    ap.add_argument("--me", action="append", metavar="NAME",
                    help="your sender name, case-insensitive; repeat for names used in different exports. "
                         "Missing: the senders are listed (and asked for on a terminal)")
    ap.add_argument("--out", default="training_data", metavar="DIR", help="output folder (default: training_data)")
    ap.add_argument("--format", dest="fmt", choices=FORMAT_NAMES, metavar="FORMAT",
                    help="force the input format instead of auto-detecting it: " + ", ".join(FORMAT_NAMES))

    g = ap.add_argument_group("shaping")
    g.add_argument("--merge-gap", type=_duration, metavar="DURATION", default="10m",
                   help="join consecutive messages of one sender sent within this gap into one turn, with "
                        "newlines (e.g. 90s, 10m; bare numbers are minutes; 'off' never joins; default 10m)")
    g.add_argument("--session-gap", type=_duration, metavar="DURATION", default="6h",
                   help="a silence longer than this starts a new session (default 6h; 'off': one session "
                        "per conversation)")
    g.add_argument("--untimed-sessions", choices=("window", "conversation"), default="window",
                   help="conversations without timestamps: cut into sessions of --window-turns turns "
                        "(default, so one long transcript can still be split) or keep one session each")
    g.add_argument("--window-turns", type=_number(int, 1, 100_000), metavar="N", default=32,
                   help="longest sample in turns; longer sessions become several windows (default 32)")
    g.add_argument("--window-overlap", type=_number(int, 0, 100_000), metavar="N", default=0,
                   help="turns shared by neighbouring windows of a session, as context (default 0)")
    g.add_argument("--min-turns", type=_number(int, 1, 100_000), metavar="N", default=2,
                   help="drop samples with fewer turns, e.g. a lone 'hello?' nobody answered (default 2)")
    g.add_argument("--group-names", choices=("auto", "always", "never"), default="auto",
                   help="prefix other people's turns with 'Name: ': auto = when a session has more than "
                        "one other participant (group chats; default), always, never")
    g.add_argument("--system-prompt", metavar="TEXT", default=None,
                   help="system turn for every sample; {me} is replaced by your name; 'auto' = "
                        "\"You are {me}. Reply the way {me} would in a chat.\" (default: none, so the "
                        "model needs no special prompt at chat time)")
    g.add_argument("--date-order", choices=("dmy", "mdy", "ymd"), default=None,
                   help="day/month order of WhatsApp dates such as 01/02/23 (default: inferred per file from "
                        "the whole file: a day > 12, chronology, then locale hints; the summary says which)")
    g.add_argument("--keep-duplicates", dest="dedupe", action="store_false",
                   help="do not drop messages seen in another conversation (same sender, time, text; "
                        "a chat exported twice)")

    g = ap.add_argument_group("privacy")
    g.add_argument("--no-scrub", dest="scrub", action="store_false",
                   help="keep e-mails, phone numbers, URLs, card numbers and IBANs (scrubbed by default)")

    g = ap.add_argument_group("split")
    g.add_argument("--val-fraction", type=_number(float, 0, 1, hi_open=True), metavar="FRACTION", default=0.1,
                   help="share of sessions for validation (default 0.1; 0: no validation set)")
    g.add_argument("--split", choices=("random", "recent"), default="random",
                   help="random: seeded, stable when you add exports later (default); recent: the newest "
                        "sessions are validation")
    g.add_argument("--split-by", choices=("session", "conversation"), default="session",
                   help="unit kept on one side: a session (default) or a whole conversation")
    g.add_argument("--seed", type=_number(int, 0, 2**32 - 1), metavar="N", default=1337,
                   help="seed of the random split (default 1337)")

    g = ap.add_argument_group("tokenizer report")
    g.add_argument("--tokenizer", metavar="SPEC",
                   help="report token lengths with: a local Hugging Face tokenizer folder (its chat template "
                        "is used), a tokenizers tokenizer.json (tiny GPT), or a tiktoken encoding name "
                        "(cl100k_base, gpt2, ...; needs it cached or internet)")
    g.add_argument("--max-seq-length", type=_number(int, 1, 10_000_000), metavar="TOKENS", default=2048,
                   help="count samples longer than this many tokens (default 2048)")

    g = ap.add_argument_group("limits (against zip bombs)")
    g.add_argument("--max-unzipped-size", type=_size, metavar="SIZE", default=ZIP_LIMITS.max_bytes,
                   help="most a .zip INPUT may unpack to, nested zips included (default 2G); media files are "
                        "never unpacked")
    g.add_argument("--max-zip-ratio", type=_number(float, 1, None), metavar="X", default=ZIP_LIMITS.max_ratio,
                   help="most a .zip may unpack to per byte of zip, checked past 10 MB (default 100; chat text "
                        "compresses 3-10x)")
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ZIP_LIMITS.max_bytes, ZIP_LIMITS.max_ratio = args.max_unzipped_size, args.max_zip_ratio
    opts = PrepareOptions(
        inputs=args.inputs, out=args.out, me=args.me, fmt=args.fmt, merge_gap=args.merge_gap,
        session_gap=args.session_gap, untimed_sessions=args.untimed_sessions, window_turns=args.window_turns,
        window_overlap=args.window_overlap, min_turns=args.min_turns, group_names=args.group_names,
        system_prompt=args.system_prompt, scrub=args.scrub, dedupe=args.dedupe, val_fraction=args.val_fraction,
        split=args.split, split_by=args.split_by, seed=args.seed, tokenizer=args.tokenizer,
        max_seq_length=args.max_seq_length, date_order=args.date_order, interactive=sys.stdin.isatty())
    prepare(opts)
    return 0


if __name__ == "__main__":
    run_script(main)  # sys.exit(main()), except inside IPython/Jupyter

#!/usr/bin/env python3
"""The three persona numbers of every saved checkpoint of a LoRA run, on the run's own held-out slice.

    python bench/persona_checkpoints.py /work/runs/sample --config lora_config.yaml \
        base_model=bench/.cache/smollm2 gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf backend=peft \
        train_file=bench/.cache/fidelity/sample/data/sharegpt_train.jsonl \
        val_file=bench/.cache/fidelity/sample/data/sharegpt_val.jsonl

Pass the same config and overrides the run was trained with (the slice is drawn from them, with the run's
seed). Why: a run logs the persona gap at every evaluation, but whether who wrote it and the speaker test keep
rising after the gap stops is what decides how long to train, and a run from before they were logged, or one
evaluated too rarely, can be re-read from its checkpoints without training again. The base model's scores are
computed once; each checkpoint costs one persona evaluation (~30-60 s on 2 CPU cores for SmolLM2-135M).
Prints one row per checkpoint; `--json` writes them too.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graftkit.config import load_config  # noqa: E402
from graftkit.lora.config import LoraTrainConfig  # noqa: E402
from graftkit.lora.data import load_splits  # noqa: E402
from graftkit.lora.persona import PersonaScorer, selection_table, split_persona_holdout  # noqa: E402


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in run_dir.iterdir()
             if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / "adapter_model.safetensors").is_file()]
    return sorted(found)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="the run's output_dir (its checkpoint-N folders are read)")
    ap.add_argument("--config", default="lora_config.yaml", help="the run's config (default: lora_config.yaml)")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the run's overrides")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--steps", default="", help="only these checkpoints, comma-separated (default: all)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_intermixed_args()

    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from train_lora import load_for_training

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(LoraTrainConfig, args.config, args.overrides)
    train_s, _ = load_splits(cfg)
    _, persona_s = split_persona_holdout(train_s, cfg.persona_holdout, cfg.seed)
    found = checkpoints(args.run_dir)
    if args.steps:
        wanted = {int(x) for x in args.steps.split(",") if x.strip()}
        found = [(step, path) for step, path in found if step in wanted]
    if not persona_s or not found:
        sys.exit(f"error: {args.run_dir}: no checkpoints, or persona_holdout gives no slice")
    loaded = load_for_training(cfg, "peft")
    scorer = PersonaScorer(loaded.model, loaded.tokenizer, loaded.info, [s.messages for s in persona_s],
                           system_prompt=cfg.system_prompt, max_length=cfg.max_seq_length,
                           messages=cfg.persona_messages, seed=cfg.seed)
    history = []
    for step, path in found:
        set_peft_model_state_dict(loaded.model, load_file(str(path / "adapter_model.safetensors")))
        row = {"step": step, "eval_loss": float("nan"), **{f"eval_{k}": v for k, v in scorer.score().items()}}
        state = path / "trainer_state.json"
        if state.is_file():  # the val loss the run logged at this step
            logged = [r for r in json.loads(state.read_text())["log_history"] if r.get("step") == step
                      and "eval_loss" in r]
            row["eval_loss"] = logged[-1]["eval_loss"] if logged else float("nan")
        history.append(row)
        print(f"checkpoint-{step}: scored in {row['eval_persona_seconds']:.0f} s", file=sys.stderr)
    print(f"{args.run_dir}: {scorer.n_person} + {len(scorer.items) - scorer.n_person} messages, "
          f"{scorer.n_speak_person} + {len(scorer.speak_items) // 2 - scorer.n_speak_person} speaker texts, "
          f"{scorer.n_conversations} held-out conversations; base speaker AUC "
          f"{history[0].get('eval_persona_speaker_auc_base', float('nan')):.3f}")
    print(selection_table(history, None))
    if args.json:
        args.json.write_text(json.dumps(history, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

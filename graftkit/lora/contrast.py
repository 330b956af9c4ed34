"""The contrast stage: after supervised fine-tuning, teach the adapter which of two turns is yours.

Why: supervised fine-tuning on a group chat teaches the model the group. Your partners' messages gain nearly as
much as yours when they are read in your role (who wrote it sat at 13 % of 10 after two epochs; bench/NOTES_lora.md),
because what the model learns (the topics, the slang, the lowercase) is shared by everybody in the chat. The
contrast stage shows it your real turn after its conversation so far (chosen) next to the partner turn that
follows it in the same conversation (rejected: same topic, another voice), read after *its own* conversation so
far with the roles swapped (the partner in your role; `contrast_rejected: own_context`, the default), and trains
it to prefer yours: a DPO stage (Rafailov et al. 2023, TRL's `DPOTrainer`) with the supervised loss on your turn
beside it (RPO, Pang et al. 2024), so your turns keep gaining rather than only the partners' falling. Each turn
after its own context is what who wrote it and the persona gap score, and it leaves coherence nothing to tell the
two apart; read after your context instead (same_context), the partner turn answers a message it never saw, and
the stage learned far less (400 pairs: who wrote it 14.9 % against 23.1 %, bench/NOTES_lora.md). The reference is the
adapter as supervised training left it (TRL copies it), so the stage moves away from the kept checkpoint only as
far as the pairs ask.

Only training conversations make pairs (never the persona slice or the validation file), so the persona numbers
that judge it stay on conversations it never saw; the persona-free control, trained the same way, is the check
that it learns a person and not a trick of the pairs.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Sequence

from ..samples import swap_roles
from .data import EncodeError, TemplateInfo, render, with_system_prompt

MAX_CONTEXT_TURNS = 8  # turns of context before each pair's turn, fewer when they pass max_prompt tokens
CONTRAST_PAIRS_PER_STEP = 4  # pairs per optimizer step (batch_size per pass, accumulated up to this)
CONTRAST_MAX_REPLY = 128  # tokens of each pair's turn after its prompt (max_length = max_prompt + this)


def contrast_pairs(tok: Any, convs: Sequence[list[dict[str, str]]], info: TemplateInfo, *, system_prompt: str,
                   max_prompt: int, limit: int, seed: int, rejected_context: str) -> list[dict[str, Any]]:
    """Up to `limit` pairs {prompt, chosen, rejected}, drawn at random (seeded) from every reply of the person
    that has a partner turn after it in its conversation.

    prompt: the conversation before the reply (at most MAX_CONTEXT_TURNS turns, fewer until it fits `max_prompt`
    tokens), rendered by the training template up to the opening of the person's turn. chosen: the person's
    reply. rejected: the first partner turn after it (one that is not in the prompt, so the stage cannot learn
    "do not repeat what was said"). With rejected_context "own_context" the pair also holds `rejected_prompt_ids`:
    the tokens of that partner turn's own conversation so far with the roles swapped (the partner in your role),
    which OwnContextCollator puts before the rejected turn. Why: after your context the partner turn answers a
    message it never saw, so "reply to the last message" alone tells the two apart (the persona-free control
    reached 0.43-0.73 preference accuracy on its own pairs); after its own context it is as coherent as yours,
    and only the voice differs, exactly as who wrote it and the persona gap read partners' messages.
    A reply whose context the template cannot render, or whose last turn of context alone is over `max_prompt`
    tokens, makes no pair."""
    candidates = [(ci, i) for ci, conv in enumerate(convs) for i, t in enumerate(conv)
                  if t["role"] == "assistant" and i > 0 and t["content"].strip()
                  and any(u["role"] == "user" and u["content"].strip() for u in conv[i + 1:])]
    random.Random(seed).shuffle(candidates)
    pairs: list[dict[str, Any]] = []
    for ci, i in candidates:
        if len(pairs) >= limit:
            break
        conv = convs[ci]
        j = next(k for k in range(i + 1, len(conv)) if conv[k]["role"] == "user" and conv[k]["content"].strip())
        prompt = _fitting_prompt(tok, conv, i, info, system_prompt, max_prompt)
        if prompt is None:
            continue
        pair: dict[str, Any] = {"prompt": prompt, "chosen": conv[i]["content"], "rejected": conv[j]["content"]}
        if rejected_context == "own_context":
            own = _fitting_prompt(tok, swap_roles(conv), j, info, system_prompt, max_prompt)
            if own is None:
                continue
            pair["rejected_prompt_ids"] = tok(own, add_special_tokens=False)["input_ids"]
        pairs.append(pair)
    return pairs


def _fitting_prompt(tok: Any, conv: list[dict[str, str]], i: int, info: TemplateInfo, system_prompt: str,
                    max_prompt: int) -> str | None:
    """The rendered context of turn i with as many of its last turns (at most MAX_CONTEXT_TURNS) as fit in
    `max_prompt` tokens; None when not even the last turn alone fits (the pair is skipped)."""
    system = [t for t in conv[:i] if t["role"] == "system"]
    turns = [t for t in conv[:i] if t["role"] != "system"]
    for lo in range(max(0, len(turns) - MAX_CONTEXT_TURNS), len(turns)):
        try:
            prompt = render(tok, with_system_prompt(system + turns[lo:], system_prompt), info,
                            add_generation_prompt=True)
        except EncodeError:  # e.g. a strict template whose roles must alternate: try from the next turn
            continue
        if len(tok(prompt, add_special_tokens=False)["input_ids"]) <= max_prompt:
            return prompt
    return None


def own_context_trainer() -> Any:
    """TRL's DPOTrainer, whose pairs may carry `rejected_prompt_ids`: the rejected turn is then read after that
    context instead of the chosen turn's prompt (contrast_rejected: own_context). Only the collator changes: it
    builds the chosen rows as TRL does and the rejected rows from their own prompt, so the losses, the reference
    log-probs (precomputed through the same collator) and the truncation are TRL's own."""
    import torch
    import torch.nn.functional as F
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    class OwnContextCollator(DataCollatorForPreference):
        def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
            if "rejected_prompt_ids" not in examples[0]:
                return super().torch_call(examples)
            # the chosen half of each call: TRL's rows for (prompt, chosen) and for (rejected_prompt, rejected)
            chosen = super().torch_call(examples)
            rejected = super().torch_call([{**e, "prompt_ids": e["rejected_prompt_ids"],
                                            "chosen_ids": e["rejected_ids"]} for e in examples])
            n = len(examples)
            width = max(chosen["input_ids"].shape[1], rejected["input_ids"].shape[1])
            out = dict(chosen)
            for key, fill in (("input_ids", self.pad_token_id), ("attention_mask", 0), ("completion_mask", 0)):
                halves = [chosen[key][:n], rejected[key][:n]]
                out[key] = torch.cat([F.pad(h, (0, width - h.shape[1]), value=fill) for h in halves])
            return out

    class OwnContextDPOTrainer(DPOTrainer):
        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if "rejected_prompt_ids" not in self._signature_columns:
                self._signature_columns.append("rejected_prompt_ids")

    return OwnContextDPOTrainer, OwnContextCollator


def run_contrast(cfg: Any, loaded: Any, convs: Sequence[list[dict[str, str]]], out: Path, persona: Any,
                 gap_before: float | None, stop: Any = None) -> dict[str, Any]:
    """The contrast stage on `loaded.model` (the adapter supervised training kept), in place.

    With a persona scorer, the held-out slice is scored after the stage and its adapter is kept only if the
    persona gap did not fall (`gap_before`: the kept checkpoint's); otherwise the supervised weights are put
    back. Returns what happened, for train_summary.json and graftkit_lora.json."""
    from datasets import Dataset
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from ..errors import notice
    from ..fileio import atomic_write_jsonl
    from .backend import say, trainer_device_args

    tok, info, model = loaded.tokenizer, loaded.info, loaded.model
    own = cfg.contrast_rejected == "own_context"
    pairs = contrast_pairs(tok, convs, info, system_prompt=cfg.system_prompt, max_prompt=cfg.contrast_max_prompt,
                           limit=cfg.contrast_pairs, seed=cfg.seed, rejected_context=cfg.contrast_rejected)
    if not pairs:
        notice("contrast stage skipped: no reply of yours has a partner turn after it to contrast with")
        return {"pairs": 0, "kept": False}
    say(f"contrast stage: {len(pairs)} pairs (your turn vs the next partner turn, "
        + ("each after its own context, roles swapped), " if own else "after the same context), ") +
        f"lr {cfg.contrast_learning_rate:g}, beta {cfg.contrast_beta:g}")
    supervised = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    args = DPOConfig(
        output_dir=str(out / "contrast"), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=max(1, CONTRAST_PAIRS_PER_STEP // cfg.batch_size), num_train_epochs=1,
        learning_rate=cfg.contrast_learning_rate, beta=cfg.contrast_beta, loss_type=["sigmoid", "sft"],
        max_length=cfg.contrast_max_prompt + CONTRAST_MAX_REPLY,  # a longer turn loses its end (keep_start)
        lr_scheduler_type="linear", warmup_steps=0.03, weight_decay=cfg.weight_decay, seed=cfg.seed,
        precompute_ref_log_probs=True,  # the reference (the supervised adapter) is read once, not every step
        logging_steps=cfg.logging_steps, save_strategy="no",
        **trainer_device_args(loaded.device, cfg.wandb),
        gradient_checkpointing=False, ddp_find_unused_parameters=False,
    )
    if loaded.backend == "unsloth":  # Unsloth's patch for TRL's DPOTrainer on its fast models (untested here: no GPU)
        from unsloth import PatchDPOTrainer

        PatchDPOTrainer()
    class StopAfterStep(TrainerCallback):
        """Ctrl-C / SIGTERM / SIGHUP (train_lora's StopOnInterrupt) ends the stage after the current step, without
        a checkpoint: the supervised weights are put back and a re-run redoes the stage."""

        def on_step_end(self, args, state, control, **kwargs):
            if stop is not None and stop.requested:
                control.should_training_stop = True

    t = time.perf_counter()
    Trainer, Collator = own_context_trainer() if own else (DPOTrainer, None)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    collator = Collator(pad_token_id=pad_id, max_length=args.max_length, truncation_mode=args.truncation_mode,
                        pad_to_multiple_of=args.pad_to_multiple_of) if Collator else None
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(pairs), processing_class=tok,
                      data_collator=collator, callbacks=[StopAfterStep()])
    try:
        trainer.train()
    finally:
        if "ref" in model.peft_config:  # TRL's frozen copy of the supervised adapter, the reference
            model.delete_adapter("ref")
        model.set_adapter("default")
    if trainer.is_world_process_zero():
        (out / "contrast").mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(out / "contrast" / "metrics.jsonl", trainer.state.log_history)
    if stop is not None and stop.requested:
        set_peft_model_state_dict(model, supervised)
        return {"pairs": len(pairs), "kept": False, "stopped": True}
    logs = [r for r in trainer.state.log_history if "rewards/margins" in r]
    res: dict[str, Any] = {"pairs": len(pairs), "steps": trainer.state.global_step,
                           "seconds": round(time.perf_counter() - t, 1),
                           "learning_rate": cfg.contrast_learning_rate, "beta": cfg.contrast_beta,
                           "rejected": cfg.contrast_rejected,
                           "last_margin": logs[-1]["rewards/margins"] if logs else None,
                           "last_accuracy": logs[-1]["rewards/accuracies"] if logs else None}
    if persona is None:
        notice("contrast stage kept unchecked: no held-out persona slice to score it on (no validation data, or "
               "persona_holdout: 0)")
        return {**res, "kept": True}
    after = persona.score()
    res.update({"persona_gap_before": gap_before, "persona_gap_after": after["persona_gap"],
                "persona_who_wrote_it_after": after.get("persona_who_wrote_it"),
                "persona_speaker_auc_after": after.get("persona_speaker_auc")})
    res["kept"] = gap_before is None or after["persona_gap"] >= gap_before
    if not res["kept"]:
        set_peft_model_state_dict(model, supervised)
    before = f"{gap_before:+.4f}" if gap_before is not None else "n/a"
    say(f"contrast stage: persona gap on the held-out slice {before} -> {after['persona_gap']:+.4f}, who wrote it "
        f"{100 * after.get('persona_who_wrote_it', float('nan')):.1f} %; "
        + ("adapter/ keeps the contrast stage" if res["kept"] else "the gap fell: adapter/ keeps the supervised one"))
    return res

"""The persona score during LoRA training: does the adapter learn *the person*, or only chat?

At every evaluation the Trainer also scores a slice of conversations held out of the training split
(`persona_holdout`, by conversation): each of the person's messages after its whole conversation so far
(the assistant turn) and each partner message the same way with the roles swapped, by the model with the
adapter on (tuned) and off (base: the same weights, LoRA disabled). The persona gap is

    (base NLL - tuned NLL on the person's messages) - (the same on the partners' messages), nats per token,

exactly evaluate_persona.py's persona gap (graftkit.evaluate.core.persona_gap_stats), with a bootstrap
interval over conversations. Learning chat in general lowers both terms; only learning the person lowers the
first more. It selects the checkpoint kept as adapter/ and drives early stopping (`select_on: persona`).

Why a slice of the *training* file and not the validation file: evaluate_persona.py scores the validation
conversations, and choosing the checkpoint on them would inflate its report. The slice is never trained on
and never read by the report; train_summary.json and the report say which conversations did what.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from ..samples import Conversation
from .data import Sample, renderer, split_samples

HOLDOUT_SEED_OFFSET = 17  # the persona slice is drawn with seed + this, apart from a val split of the same file


def split_persona_holdout(train: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(conversations to train on, conversations held out for the persona score), by whole conversation."""
    if fraction <= 0 or len(train) < 4:
        return train, []
    return split_samples(train, fraction, seed + HOLDOUT_SEED_OFFSET)


class PersonaScorer:
    """Scores the persona gap of the model being trained on held-out conversations (see the module docstring).

    The base model's scores never change (the adapter is disabled), so they are computed once. Each call
    scores about `messages` messages per side: whole conversations, drawn like evaluate_persona.py's pool.
    """

    def __init__(self, model: Any, tokenizer: Any, info: Any, convs: Sequence[Conversation], *, system_prompt: str,
                 max_length: int, messages: int, seed: int, n_boot: int = 1000):
        from ..evaluate.core import persona_items, pick_conversations
        from ..evaluate.models import HFChatModel

        convs = [list(c) for c in convs]
        pool = pick_conversations(convs, messages, seed)
        person, partner = persona_items(convs, pool, seed)
        self.items = [(s.context, s.reply, "assistant") for s in person + partner]
        self.n_person = len(person)
        self.clusters = [[s.conv for s in person], [s.conv for s in partner]]
        self.n_conversations = len(pool)
        self.seed, self.n_boot = seed, n_boot

        common = dict(max_length=max_length, render=renderer(info, system_prompt), eot=info.eot_token)
        self.tuned = HFChatModel(model, tokenizer, name="tuned", use_adapter=True, **common)
        self.base = HFChatModel(model, tokenizer, name="base", use_adapter=False, **common)
        self._base_scores: Any = None

    @property
    def usable(self) -> bool:
        return self.n_person > 0 and len(self.items) > self.n_person

    def score(self) -> dict[str, float]:
        """persona_gap (+ its 95 % interval), the NLL drop on each side, and the seconds it took."""
        import numpy as np
        import torch

        from ..evaluate.core import persona_gap_stats

        t = time.perf_counter()
        model = self.tuned.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                if self._base_scores is None:
                    self._base_scores = np.asarray(self.base.score(self.items), dtype=float)
                tuned = np.asarray(self.tuned.score(self.items), dtype=float)
        finally:
            model.train(was_training)
        res = persona_gap_stats(self._base_scores, tuned, self.n_person, self.clusters, seed=self.seed,
                                n_boot=self.n_boot)
        return {"persona_gap": res["value"], "persona_gap_lo": res["ci95"][0], "persona_gap_hi": res["ci95"][1],
                "persona_drop_person": res["drop_person"], "persona_drop_partners": res["drop_partners"],
                "persona_seconds": round(time.perf_counter() - t, 2)}


def selection_table(log_history: list[dict], kept_step: int | None) -> str:
    """Both curves per evaluation (val loss, persona gap) and which checkpoint was kept, for the console."""
    rows = [r for r in log_history if "eval_loss" in r]
    if not rows:
        return ""
    lines = ["  step   val loss   persona gap [95% interval]"]
    for r in rows:
        gap = r.get("eval_persona_gap")
        gap_s = (f"{gap:+.4f} [{r.get('eval_persona_gap_lo', float('nan')):+.4f}, "
                 f"{r.get('eval_persona_gap_hi', float('nan')):+.4f}]") if gap is not None else "-"
        mark = "  <- kept as adapter/" if kept_step is not None and r.get("step") == kept_step else ""
        lines.append(f"  {r.get('step', 0):>5}  {r['eval_loss']:9.4f}   {gap_s}{mark}")
    return "\n".join(lines)


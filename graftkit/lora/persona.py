"""The persona score during LoRA training: does the adapter learn *the person*, or only chat?

At every evaluation the Trainer also scores a slice of conversations held out of the training split
(`persona_holdout`, by conversation): each of the person's messages after its whole conversation so far
(the assistant turn) and each partner message the same way with the roles swapped, by the model with the
adapter on (tuned) and off (base: the same weights, LoRA disabled). The persona gap is

    (base NLL - tuned NLL on the person's messages) - (the same on the partners' messages), nats per token,

exactly evaluate_persona.py's persona gap (graftkit.evaluate.core.persona_gap_stats), with a bootstrap
interval over conversations. Learning chat in general lowers both terms; only learning the person lowers the
first more. It selects the checkpoint kept as adapter/ and drives early stopping (`select_on: persona`).

Beside it, from the same slice and computed as the report computes them, the other two persona numbers:
who wrote it (hits@1 of 10 on the same scores: is the person's message the one the adapter gained most on,
against nine partner messages of similar length?) and the speaker test (the first lines of both sides' messages
read alone as the assistant and as the user: AUC, and its change from the base). A mean gap can rise on a few
messages; who wrote it and the speaker test ask whether the gain is consistent message by message, which is
what the report's bar is about. They are logged, not selected on (the gap is the smoothest of the three).

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
        from ..evaluate.core import persona_items, pick_conversations, speaker_items, speaker_texts
        from ..evaluate.models import HFChatModel

        convs = [list(c) for c in convs]
        pool = pick_conversations(convs, messages, seed)
        person, partner = persona_items(convs, pool, seed)
        self.items = [(s.context, s.reply, "assistant") for s in person + partner]
        self.n_person = len(person)
        self.clusters = [[s.conv for s in person], [s.conv for s in partner]]
        # the speaker test's texts: first lines alone, up to half of `messages` a side from the same conversations
        # (each is read twice, once per role, and at `messages` a side they doubled the cost of an evaluation)
        speak = speaker_texts(convs, pool, max(1, messages // 2), seed)
        self.speak_items = speaker_items(*speak)
        self.n_speak_person = len(speak[0])
        self.speak_clusters = [[c for c, _ in side] for side in speak]
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

        from ..evaluate import stats
        from ..evaluate.core import persona_gap_stats, speaker_auc, speaker_scores, who_wrote_it_matched

        t = time.perf_counter()
        model = self.tuned.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                if self._base_scores is None:
                    self._base_scores = score_shared(self.base, self.items + self.speak_items)
                tuned = score_shared(self.tuned, self.items + self.speak_items)
        finally:
            model.train(was_training)
        n, boot = len(self.items), dict(seed=self.seed, n_boot=self.n_boot)
        base_own, tuned_own = self._base_scores[:n], tuned[:n]
        res = persona_gap_stats(base_own, tuned_own, self.n_person, self.clusters, **boot)
        out = {"persona_gap": res["value"], "persona_gap_lo": res["ci95"][0], "persona_gap_hi": res["ci95"][1],
               "persona_drop_person": res["drop_person"], "persona_drop_partners": res["drop_partners"]}
        # who wrote it, as the report's headline (reference: the base): the same scores, per token
        n_tok = np.maximum(tuned_own[:, 1], 1)
        k = max(1, min(9, n - self.n_person))
        ww = who_wrote_it_matched((base_own[:, 0] - tuned_own[:, 0]) / n_tok, n_tok, self.n_person, k,
                                  self.clusters, boot)
        out.update({"persona_who_wrote_it": ww["value"], "persona_who_wrote_it_lo": ww["ci95"][0],
                    "persona_who_wrote_it_hi": ww["ci95"][1], "persona_who_wrote_it_chance": 1 / (k + 1)})
        if all(self.speak_clusters):  # texts on both sides
            sp_t, base_sp = tuned[n:], speaker_scores(self._base_scores[n:])
            auc = speaker_auc(sp_t, self.n_speak_person, self.speak_clusters, boot)
            out.update({"persona_speaker_auc": auc["value"], "persona_speaker_auc_lo": auc["ci95"][0],
                        "persona_speaker_auc_hi": auc["ci95"][1],
                        "persona_speaker_auc_base": stats.auc(base_sp[:self.n_speak_person],
                                                              base_sp[self.n_speak_person:])})
        out["persona_seconds"] = round(time.perf_counter() - t, 2)
        return out


def score_shared(model: Any, items: list) -> Any:
    """`model.score(items)` as an array, shared out between torchrun's processes when there are several.

    Why: every rank must get the same numbers (best model and early stopping act on them on each rank), and
    scoring the whole slice on every GPU costs each of them the whole time. Each rank scores a contiguous share
    (neighbouring items come from the same conversation, so packing still reads each context once) and every
    rank gathers the whole, in order."""
    import numpy as np
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return np.asarray(model.score(items), dtype=float)
    world, rank = dist.get_world_size(), dist.get_rank()
    bounds = [len(items) * r // world for r in range(world + 1)]
    mine = model.score(items[bounds[rank]:bounds[rank + 1]]) if bounds[rank] < bounds[rank + 1] else []
    parts: list = [None] * world
    dist.all_gather_object(parts, [(float(nll), int(n)) for nll, n in mine])
    return np.asarray([row for part in parts for row in part], dtype=float).reshape(len(items), 2)


def selection_table(log_history: list[dict], kept_step: int | None) -> str:
    """Both curves per evaluation (val loss, persona gap), who wrote it and the speaker AUC beside them, and
    which checkpoint was kept, for the console."""
    rows = [r for r in log_history if "eval_loss" in r]
    if not rows:
        return ""

    def ci(r: dict, key: str, fmt: str) -> str:
        if r.get(key) is None:
            return "-"
        lo, hi = r.get(f"{key}_lo", float("nan")), r.get(f"{key}_hi", float("nan"))
        return f"{r[key]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    lines = [f"  {'step':>5}  {'val loss':>8}   {'persona gap [95% interval]':<29}  {'who wrote it':<21}  speaker AUC"]
    for r in rows:
        mark = "  <- kept as adapter/" if kept_step is not None and r.get("step") == kept_step else ""
        lines.append(f"  {r.get('step', 0):>5}  {r['eval_loss']:8.4f}   {ci(r, 'eval_persona_gap', '+.4f'):<29}  "
                     f"{ci(r, 'eval_persona_who_wrote_it', '.3f'):<21}  {ci(r, 'eval_persona_speaker_auc', '.3f')}"
                     f"{mark}")
    return "\n".join(lines)

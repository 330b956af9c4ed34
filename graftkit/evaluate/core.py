"""The evaluation loop: held-out contexts -> both models -> every number in the report.

A context is everything before one of the person's (assistant) turns in a held-out conversation,
with at least one partner (user) turn before it; the reply is that real turn. System turns are kept
at the front; only the last `max_context_turns` other turns are kept (long chats would otherwise
make every context as long as the whole conversation).
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Sequence

from ..samples import Conversation
from . import metrics
from .authorship import AuthorshipClassifier, person_and_partner_texts, scramble
from .models import ReplyModel, Turn

MODEL_NAMES = ("base", "tuned")


@dataclass
class EvalSample:
    conv: int  # index of the conversation in the validation file
    turn: int  # index of the real reply inside it
    context: list[Turn]
    reply: str
    partner: str  # the partner's last message before the reply (for the partners' style reference)


@dataclass
class EvalSettings:
    max_samples: int = 100
    max_context_turns: int = 8
    seed: int = 1234
    n_examples: int = 5
    top_k_words: int = 50


def build_samples(convs: Sequence[Conversation], *, max_samples: int | None, seed: int,
                  max_context_turns: int) -> list[EvalSample]:
    """All (context, real reply) pairs, then a seeded sample of `max_samples` of them in file order."""
    out: list[EvalSample] = []
    for ci, conv in enumerate(convs):
        for ti, turn in enumerate(conv):
            if turn["role"] != "assistant":
                continue
            before = conv[:ti]
            users = [t for t in before if t["role"] == "user"]
            if not users:
                continue
            system = [t for t in before if t["role"] == "system"]
            rest = [t for t in before if t["role"] != "system"]
            if max_context_turns > 0:
                rest = rest[-max_context_turns:]
            out.append(EvalSample(ci, ti, [dict(t) for t in system + rest], turn["content"], users[-1]["content"]))
    if max_samples and len(out) > max_samples:
        keep = sorted(random.Random(seed).sample(range(len(out)), max_samples))
        out = [out[i] for i in keep]
    return out


def sample_seed(seed: int, index: int) -> int:
    """The generator seed for context `index`: independent of the model, so base and tuned match."""
    return seed * 1_000_003 + index


def _finite(x: float) -> float | None:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def run_evaluation(samples: Sequence[EvalSample], models: dict[str, ReplyModel], settings: EvalSettings, *,
                   train_convs: Sequence[Conversation], val_convs: Sequence[Conversation],
                   progress: bool = True) -> tuple[dict, list[dict]]:
    """Score and generate with each model; returns (results for the JSON, one row per context)."""
    from tqdm import tqdm

    t0 = time.time()
    rows: list[dict] = []
    scores: dict[str, list[tuple[float, int]]] = {m: [] for m in models}
    limit_before = {name: getattr(m, "hit_limit", 0) for name, m in models.items()}
    bar = tqdm(total=len(samples) * len(models), desc="evaluating", unit="reply", file=sys.stderr,
               disable=not progress)
    for i, s in enumerate(samples):
        row = {"conv": s.conv, "turn": s.turn, "context": s.context, "real": s.reply, "nll": {}, "tokens": {}}
        for name, model in models.items():
            nll, n = model.reply_nll(s.context, s.reply)
            scores[name].append((nll, n))
            row["nll"][name], row["tokens"][name] = nll, n
            row[name] = model.generate(s.context, seed=sample_seed(settings.seed, i))
            bar.update(1)
        rows.append(row)
    bar.close()
    t_models = time.time() - t0

    results: dict = {"n_contexts": len(samples), "settings": asdict(settings)}

    # Perplexity of the real replies.
    ppl: dict = {"tokens": {}, "nll_per_token": {}}
    for name in models:
        p, total, n = metrics.pooled_perplexity(scores[name])
        ppl[name] = p
        ppl["tokens"][name] = n
        ppl["nll_per_token"][name] = total / n if n else float("nan")
    if "base" in models and "tuned" in models:
        ppl["relative_change"] = metrics.relative_change(ppl["base"], ppl["tuned"])
    results["perplexity"] = ppl

    # Style of generated replies vs the real ones (partners' messages as a reference point).
    real = [r["real"] for r in rows]
    others = {name: [r[name] for r in rows] for name in models}
    others["partners"] = [s.partner for s in samples]
    results["style"] = metrics.compare_styles(real, others, settings.top_k_words)
    results["empty_generations"] = {name: sum(1 for r in rows if not r[name].strip()) for name in models}
    results["hit_token_limit"] = {name: getattr(m, "hit_limit", 0) - limit_before[name] for name, m in models.items()}

    # Authorship: trained on the train split, checked on held-out real turns, applied to generations.
    t1 = time.time()
    me_train, them_train = person_and_partner_texts(train_convs)
    clf = AuthorshipClassifier(seed=settings.seed).fit(me_train, them_train)
    me_val, them_val = person_and_partner_texts(val_convs)
    rng = random.Random(settings.seed)
    scrambled = [scramble(r, rng) for r in real]  # the nonsense control (see authorship.py)
    auth: dict = {
        "n_train": clf.n_train,
        "heldout_auc": clf.auc(me_val, them_val),
        "person_real": clf.score(me_val).to_dict(),
        "partners_real": clf.score(them_val).to_dict(),
        "contexts_real": clf.score(real).to_dict(),
        "scrambled_real": clf.score(scrambled).to_dict(),
    }
    for name in models:
        p = clf.p_person(others[name])
        auth[name] = clf.score(others[name]).to_dict()
        for r, pi in zip(rows, p):
            r.setdefault("p_person", {})[name] = float(pi)
    for r, pi in zip(rows, clf.p_person(real)):
        r.setdefault("p_person", {})["real"] = float(pi)
    results["authorship"] = auth
    results["seconds"] = {"models": round(t_models, 2), "authorship": round(time.time() - t1, 2)}

    # Side-by-side examples: evenly spread over the evaluated contexts.
    k = min(settings.n_examples, len(rows))
    picks = sorted({round(j * (len(rows) - 1) / max(1, k - 1)) for j in range(k)}) if k else []
    results["examples"] = [
        {"context": rows[j]["context"][-3:], "real": rows[j]["real"], **{m: rows[j][m] for m in models}}
        for j in picks
    ]
    return results, rows


def all_finite(results: dict) -> bool:
    """True when every headline number is finite (used by tests and as a sanity check)."""
    vals = [results["perplexity"][m] for m in MODEL_NAMES if m in results["perplexity"]]
    vals += list(results["style"]["distance"].values())
    vals += [results["authorship"][m]["attributed_share"] for m in MODEL_NAMES if m in results["authorship"]]
    return all(_finite(v) is not None for v in vals)

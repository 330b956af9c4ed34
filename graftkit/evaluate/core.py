"""The evaluation loop: held-out conversations -> both models -> every number in the report.

What is measured, and why each number is about *the person* (or says plainly that it is not):

1. Speaker test (no context): each held-out message of the person and of their partners is scored
   by the tuned model once as the person's turn and once as a partner's; score = log P(as person) -
   log P(as partner). AUC over person vs partner messages. Only real text is scored, so gibberish
   cannot game it, and with no person (a random side of each chat as "me") both sides are
   exchangeable, so the AUC is 0.5 up to noise.
2. Who wrote it (response selection against partners): each held-out reply, in its own real context,
   gets the PMI score log P_tuned - log P_base as the person's turn, per token of the reply.
   Partners' messages get the same score in their own real context with the roles swapped (so each
   is also "a reply in context"). The model picks the person's reply out of 1 + N-1 random partner
   messages of similar length (the same token-count quartile) as often as hits@1 of N says (computed
   exactly over all draws, see stats.py). Chance = 1/N; near chance with no person.
3. Persona gap: (NLL drop reference -> tuned on the person's replies) - (the drop on partners' messages),
   nats per token, the same items and reference as in 2: learning chat in general lowers both,
   learning the person lowers the first more.
4. Authorship of generated replies with a junk class (authorship.py); headline = tuned share minus the
   share of the tuned model's replies written as the *partner* (same contexts, roles swapped). A parrot
   (random training replies of the person) is shown as a baseline. It is a persona number only when the
   model was trained on both sides' turns (else the as-partner replies come from an untrained role and
   are not generated) and the classifier tells the person's real held-out messages from the partners'
   (its AUC interval above 0.5); otherwise the report says which of the two is missing.
5. Context fit (response selection against the person's own replies to other contexts, PMI score):
   about chat in general, not the person; a parrot cannot pass it. Tuned model only.
6. Style statistics with bootstrap intervals, partners and parrot as references; reply perplexity.

Everything is read from whole held-out conversations drawn at random until each side has at least
`pool_size` messages (pick_conversations): the cost follows the pool, not the size of the held-out file.
A context is everything before one of the person's (assistant) turns with at least one partner turn
before it; system turns kept at the front. Generation keeps only the last `max_context_turns` other turns.
Who wrote it, the persona gap, context fit and reply perplexity score each message after the whole
conversation so far (the model cuts what does not fit its context), so the prompts of one conversation are
nested and an HF model reads each conversation about once per orientation (HFChatModel.score). Context fit
scores the first message of each reply, like the persona items; reply perplexity the whole reply.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Collection, Sequence

import numpy as np

from ..samples import Conversation, subsample, swap_roles
from . import metrics, stats
from .authorship import AuthorshipClassifier, junk_texts, person_and_partner_texts, scramble, word_salad
from .models import Item, ReplyModel, Turn

MODEL_NAMES = ("base", "tuned")
PER_REPLY_STYLE = ["words_mean", "emoji_rate", "lowercase_rate", "ends_period_rate", "exclaim_rate",
                   "question_rate", "ellipsis_rate"]


@dataclass
class EvalSample:
    conv: int  # index of the conversation in the validation file
    turn: int  # index of the real reply inside it
    context: list[Turn]
    reply: str
    partner: str  # the partner's last message before the reply (for the partners' style reference)


@dataclass
class EvalSettings:
    max_samples: int = 100  # contexts for generation and context fit
    max_context_turns: int = 8  # generation only
    seed: int = 1234
    n_examples: int = 5
    top_k_words: int = 50
    n_candidates: int = 10  # N of hits@1 of N
    pool_size: int = 200  # at least this many messages of each side, from whole conversations (pick_conversations)
    n_boot: int = stats.N_BOOT


def build_samples(convs: Sequence[Conversation], *, max_samples: int | None, seed: int,
                  max_context_turns: int, only: Collection[int] | None = None) -> list[EvalSample]:
    """All (context, real reply) pairs (of the conversations `only`, default all), then a seeded sample of
    `max_samples` of them in file order."""
    out: list[EvalSample] = []
    for ci, conv in enumerate(convs):
        if only is not None and ci not in only:
            continue
        for ti, turn in enumerate(conv):
            if turn["role"] != "assistant" or not turn["content"].strip():
                continue
            before = conv[:ti]
            users = [t for t in before if t["role"] == "user"]
            if not users:
                continue
            out.append(EvalSample(ci, ti, context_before(conv, ti, max_context_turns), turn["content"],
                                  users[-1]["content"]))
    return subsample(out, max_samples or 0, seed)


def persona_items(convs: Sequence[Conversation], pool: Collection[int],
                  seed: int) -> tuple[list[EvalSample], list[EvalSample]]:
    """The items of who-wrote-it and the persona gap, from the conversations `pool`: every reply of the person
    and (roles swapped) of the partners, first message only, after the whole conversation so far."""
    person = build_samples(convs, max_samples=None, seed=seed, max_context_turns=0, only=pool)
    partner = build_samples([swap_roles(c) for c in convs], max_samples=None, seed=seed, max_context_turns=0,
                            only=pool)
    return [first_message(s) for s in person], [first_message(s) for s in partner]


def pick_conversations(convs: Sequence[Conversation], pool_size: int, seed: int) -> set[int]:
    """Whole held-out conversations, in a seeded random order, until both sides have at least `pool_size`
    messages that answer the other side (0 = every conversation).

    Why whole conversations: every scored message is read after its whole conversation so far, so the cost of
    the evaluation is the tokens of the conversations it touches. A pool of messages drawn one by one touches
    nearly every conversation (on the sample, 300 of 611 replies came from all 49), and on a real history with
    hundreds of held-out conversations it would read hundreds of them. Drawn by conversation, the cost follows
    the pool, and every message of a conversation that is read anyway is scored. The intervals resample
    conversations, so they stay honest about messages of one conversation being alike."""
    order = list(range(len(convs)))
    if not pool_size:
        return set(order)
    random.Random(seed).shuffle(order)
    chosen: set[int] = set()
    mine = theirs = 0
    for ci in order:
        if mine >= pool_size and theirs >= pool_size:
            break
        chosen.add(ci)
        seen: set[str] = set()
        for t in convs[ci]:  # the items build_samples makes: a non-empty turn after one of the other side's
            if t["content"].strip():
                mine += t["role"] == "assistant" and "user" in seen
                theirs += t["role"] == "user" and "assistant" in seen
            seen.add(t["role"])
    return chosen


def context_before(conv: Conversation, turn: int, max_context_turns: int = 0) -> list[Turn]:
    """The turns before `turn`: system turns first, then the last `max_context_turns` others (0 = all)."""
    before = conv[:turn]
    rest = [t for t in before if t["role"] != "system"]
    if max_context_turns > 0:
        rest = rest[-max_context_turns:]
    return [dict(t) for t in before if t["role"] == "system"] + [dict(t) for t in rest]


def sample_seed(seed: int, index: int) -> int:
    """The generator seed for context `index`: independent of the model, so base and tuned match."""
    return seed * 1_000_003 + index


def _finite(x: float) -> float | None:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def _ci(value_lo_hi: tuple[float, float, float]) -> dict:
    return stats.interval(*value_lo_hi)


def context_fit_candidates(samples: Sequence[EvalSample], pool: Sequence[EvalSample], n: int,
                           seed: int) -> list[list[str]]:
    """For each sample: its real reply, then n - 1 of the person's replies to other held-out contexts
    (other conversations, different text), drawn with a seeded generator."""
    rng = random.Random(seed)
    out = []
    for s in samples:
        options = sorted({p.reply for p in pool if p.conv != s.conv and p.reply.strip() != s.reply.strip()})
        picks = rng.sample(options, min(n - 1, len(options)))
        out.append([s.reply] + picks)
    return out


class Scorer:
    """Runs every model over a list of items in one batched pass, with one shared progress bar."""

    def __init__(self, models: dict[str, ReplyModel], bar: Callable[[int], None] | None):
        self.models, self.bar = models, bar

    def __call__(self, items: Sequence[Item], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """{model: [n_items, 2] array of (summed NLL, tokens)}."""
        out = {}
        for name in self.models if names is None else names:
            res = self.models[name].score(items, progress=self.bar)
            out[name] = np.asarray(res, dtype=float).reshape(-1, 2)
        return out


def run_evaluation(samples: Sequence[EvalSample], models: dict[str, ReplyModel], settings: EvalSettings, *,
                   train_convs: Sequence[Conversation], val_convs: Sequence[Conversation],
                   progress: bool = True, prompted: ReplyModel | None = None) -> tuple[dict, list[dict]]:
    """Score and generate with each model; returns (results for the JSON, one row per context).

    `prompted` (the base model with a system prompt of the person's own training messages, the free
    alternative to fine-tuning) gets the three persona numbers too, against the same base, on the same items:
    results["prompting_baseline"]."""
    from tqdm import tqdm

    t0 = time.time()
    seed, n_cand = settings.seed, settings.n_candidates
    # --- the item sets -----------------------------------------------------------------------------
    # the persona items are scored after the whole conversation so far (the model cuts what does not fit): the
    # prompts of one conversation are then nested, and an HF model reads each conversation about once
    # ... of whole conversations drawn at random (pick_conversations), every message of them
    pool = pick_conversations(val_convs, settings.pool_size, seed)
    all_person = build_samples(val_convs, max_samples=None, seed=seed, max_context_turns=0)
    person_items, partner_items = persona_items(val_convs, pool, seed)
    me_held, them_held = turns_with_conv(val_convs, "assistant"), turns_with_conv(val_convs, "user")
    me_val, them_val = [t for _, t in me_held], [t for _, t in them_held]  # every held-out message of each side
    # the speaker test scores texts alone (no conversation to read): up to pool_size of each side, from the same pool
    me_speak, them_speak = speaker_texts(val_convs, pool, settings.pool_size, seed)
    # context fit: the first message of the real reply and of 9 replies to other conversations, each after the
    # whole conversation so far, like the persona items: they hang off the same trees (one pass, packing.py)
    fit_samples = [EvalSample(s.conv, s.turn, context_before(val_convs[s.conv], s.turn), first_line(s.reply),
                              s.partner) for s in samples]
    fit_cands = context_fit_candidates(fit_samples, [first_message(p) for p in all_person], n_cand, seed + 5)
    me_train, them_train = person_and_partner_texts(train_convs)
    rng = random.Random(seed + 6)
    parrot = [rng.choice(me_train) if me_train else "" for _ in samples]

    fit_items = [(s.context, c, "assistant") for s, cands in zip(fit_samples, fit_cands) for c in cands]
    reply_items = [(f.context, s.reply, "assistant") for f, s in zip(fit_samples, samples)]  # whole replies: perplexity
    fit_texts = sorted({c for cands in fit_cands for c in cands})  # each candidate once without context
    groups = [len(c) for c in fit_cands]  # n_cand each, fewer when the held-out set is tiny
    starts = np.cumsum([0] + groups[:-1]).astype(int)
    own_items = ([(s.context, s.reply, "assistant") for s in person_items]
                 + [(s.context, s.reply, "assistant") for s in partner_items])
    own_swapped = [(swap_roles(ctx), text, "user") for ctx, text, _ in own_items]
    speak_items = speaker_items(me_speak, them_speak)
    cond = [m for m in models if getattr(models[m], "has_speaker", True)]  # models that read context and speaker
    # context fit is not about the person, so it is measured for the tuned model alone: the base's would only be
    # a reference (the LoRA control: 44 % tuned, 44 % base) and costs a sixth of a LoRA evaluation's scoring
    fitted = ["tuned"] if "tuned" in cond else cond
    # the tuned model writing as the partner is authorship's control only for a model trained on both sides'
    # turns (the tiny GPT); a LoRA adapter learns the assistant turns alone, so as the user it writes from an
    # untrained role, and its replies differ in more than the person (on the persona-free control one 20-step
    # adapter scored +20 %, -19 % and -3 % in three runs): there it is not generated at all
    symmetric = "tuned" in models and getattr(models["tuned"], "symmetric_roles", True)
    gen_jobs = [(name, "assistant") for name in models] + [("tuned", "user")] * symmetric
    # the base model's replies are only a "before" picture, so it writes them for the side-by-side examples alone:
    # all 100 cost a LoRA evaluation on 2 cores a fifth of its time (125 of the sample's 622 s)
    k_ex = min(settings.n_examples, len(samples))
    picks = sorted({round(j * (len(samples) - 1) / max(1, k_ex - 1)) for j in range(k_ex)}) if k_ex else []
    replied = {name: range(len(samples)) if name == "tuned" else picks for name in models}
    total = (len(own_items) + len(reply_items)) * len(models) + len(fit_items) * len(fitted) \
        + len(fit_texts) * len(fitted) + len(speak_items) * len(cond) + len(own_swapped) * ("tuned" in models) \
        + sum(len(replied[name]) for name, _ in gen_jobs)
    prompting = prompted is not None and "base" in cond and "tuned" in models
    total += (len(own_items) + len(speak_items)) * prompting
    bar = tqdm(total=total, desc="evaluating", unit="seq", file=sys.stderr, disable=not progress)
    score = Scorer(models, bar.update)

    # --- scoring (batched) ---------------------------------------------------------------------------
    # one call per model: the persona items, the tuned model's role-swapped twins and the context-fit candidates
    # all hang off the held-out conversations (original and role-swapped), so an HF model reads each about once
    own, fit, whole, own_partner_voice = {}, {}, {}, {}
    n_own = len(own_items)
    for name in models:
        twins = own_swapped if name == "tuned" else []
        fits = fit_items if name in fitted else []
        res = score(own_items + twins + fits + reply_items, [name])[name]
        own[name], fit[name] = res[:n_own], res[n_own + len(twins):n_own + len(twins) + len(fits)]
        whole[name] = res[len(res) - len(reply_items):]
        if twins:
            own_partner_voice[name] = res[n_own:n_own + len(twins)]
    fit_alone = score([([], t, "assistant") for t in fit_texts], fitted)
    speak = score(speak_items, cond) if speak_items else {}
    if prompting:
        res = Scorer({"prompted": prompted}, bar.update)(own_items + speak_items, ["prompted"])["prompted"]
        prompted_own, prompted_speak = res[:n_own], res[n_own:]
    t_score = time.time() - t0

    # --- generation ---------------------------------------------------------------------------------
    t1 = time.time()
    limit_before = {name: getattr(m, "hit_limit", 0) for name, m in models.items()}
    seeds = [sample_seed(seed, i) for i in range(len(samples))]
    generated = {}
    for name, role in gen_jobs:
        key = name if role == "assistant" else "tuned_as_partner"
        which = replied[name]
        contexts = [samples[i].context if role == "assistant" else swap_roles(samples[i].context) for i in which]
        texts = generate_all(models[name], contexts, [seeds[i] for i in which], role, bar.update)
        generated[key] = dict(zip(which, texts))
    rows: list[dict] = []
    for i, s in enumerate(samples):
        row = {"conv": s.conv, "turn": s.turn, "context": s.context, "real": s.reply, "parrot": parrot[i],
               "nll": {}, "tokens": {}, **{key: texts[i] for key, texts in generated.items() if i in texts}}
        for name in models:
            row["nll"][name], row["tokens"][name] = float(whole[name][i, 0]), int(whole[name][i, 1])
        rows.append(row)
    bar.close()
    t_gen = time.time() - t1

    results: dict = {"n_contexts": len(samples), "settings": asdict(settings),
                     "n_conversations": {"read": len(pool), "held_out": len(val_convs)},
                     "n_items": {"person": len(person_items), "partners": len(partner_items),
                                 "speaker_person": len(me_speak), "speaker_partners": len(them_speak)}}
    boot = dict(seed=seed, n_boot=settings.n_boot)
    # cluster ids (the conversation) for the bootstrap: conversations are resampled, not messages
    conv_speak = [[c for c, _ in me_speak], [c for c, _ in them_speak]]
    conv_own = [[s.conv for s in person_items], [s.conv for s in partner_items]]
    conv_ctx = [[s.conv for s in samples]]

    # 1. speaker test
    speaker: dict = {}
    n_me = len(me_speak)
    for name in cond:
        speaker[name] = speaker_auc(speak[name], n_me, conv_speak, boot)
    if "tuned" in speaker and "base" in speaker:
        # what training changed: a pretrained base can already find a person's texts likelier as the assistant's
        # (the sample's SmolLM2 base: AUC 0.59), so the tuned AUC alone can clear chance with nothing learned
        t, b = speaker_scores(speak["tuned"]), speaker_scores(speak["base"])
        speaker["tuned_minus_base"] = _ci(stats.bootstrap(
            lambda tp, tq, bp, bq: stats.auc(tp, tq) - stats.auc(bp, bq), [t[:n_me], t[n_me:], b[:n_me], b[n_me:]],
            clusters=conv_speak * 2, **boot))
    results["speaker"] = speaker

    # 2. who wrote it + 3. persona gap (own-context items)
    n_p = len(person_items)
    k = max(1, min(n_cand - 1, len(partner_items)))  # fewer distractors only when the held-out set is tiny
    if "tuned" in models:
        ww: dict = {"n": k + 1, "chance": 1 / (k + 1), "auc": {}}
        # scores per token of the text (the same tokens in every term): summed, a long text's score is
        # larger in both directions, so length alone moved it up or down the ranking (on the control at
        # 600 iterations: 7.8 % summed, 10.6 % per token, chance 10 %; Sam 40.7 % and 40.9 %)
        n_tok = np.maximum(own["tuned"][:, 1], 1)
        variants = {"tuned_only": -own["tuned"][:, 0] / n_tok}
        variants["vs_partner_voice"] = (own_partner_voice["tuned"][:, 0] - own["tuned"][:, 0]) / n_tok
        if "base" in models:
            variants["vs_base"] = (own["base"][:, 0] - own["tuned"][:, 0]) / n_tok
        # the headline PMI reference: a model that reads context and speaker (LoRA's pretrained base), else
        # (tiny GPT: the unigram base is context-blind) the tuned network speaking as the partner
        ww["reference"] = "vs_base" if "base" in cond else "vs_partner_voice"
        # distractors of similar length (token-count quartiles): see stats.hits_at_1_matched for why
        ww["length_bins"] = [int(e) for e in stats.length_bins(n_tok[:n_p], n_tok[n_p:], k)]
        for label, vec in variants.items():
            ww[label] = who_wrote_it_matched(vec, n_tok, n_p, k, conv_own, boot)
            ww["auc"][label] = stats.auc(vec[:n_p], vec[n_p:])
        ww["headline"] = ww[ww["reference"]]
        results["who_wrote_it"] = ww
    if "tuned" in models and ("base" in cond or own_partner_voice):
        # the reference the drop is measured from: the pretrained base (LoRA), else (tiny GPT) the tuned model
        # reading the same text as the other side's turn. A context-blind unigram base is no reference here:
        # it cannot use the context, so the "drop" from it mixes how predictable a text is from its context
        # into the gap, and the persona-free control scored -0.109 [-0.193, -0.020] nats/token against it.
        ref_name = "base" if "base" in cond else "partner_voice"
        ref = own["base"] if ref_name == "base" else own_partner_voice["tuned"]
        results["persona_gap"] = {**persona_gap_stats(ref, own["tuned"], n_p, conv_own, **boot),
                                  "reference": ref_name}

    if prompting:  # the free alternative: the base model shown the person's own messages in its system prompt
        n_tok_p = np.maximum(prompted_own[:, 1], 1)
        results["prompting_baseline"] = {
            "n_examples": getattr(prompted, "n_examples", None),
            "speaker": speaker_auc(prompted_speak, n_me, conv_speak, boot),
            "who_wrote_it": who_wrote_it_matched((own["base"][:, 0] - prompted_own[:, 0]) / n_tok_p, n_tok_p, n_p,
                                                 k, conv_own, boot),
            "persona_gap": persona_gap_stats(own["base"], prompted_own, n_p, conv_own, **boot),
        }

    # 5. context fit: real reply vs the person's replies to other contexts, same context
    fit_res: dict = {"n": n_cand, "chance": float(np.mean([1 / g for g in groups])) if groups else 1 / n_cand}

    def hits_from(score_vec: np.ndarray) -> np.ndarray:
        return stats.row_hits([score_vec[a] for a in starts], [score_vec[a + 1:a + g] for a, g in zip(starts, groups)])

    # score = log P(candidate | context) - log P(candidate | no context): how much this context raises it
    alone = {name: dict(zip(fit_texts, fit_alone[name][:, 0])) for name in fitted}
    cand_list = [c for cands in fit_cands for c in cands]
    for name in fitted:
        vec = np.asarray([alone[name][c] for c in cand_list]) - fit[name][:, 0]
        fit_res[name] = _ci(stats.bootstrap(np.mean, [hits_from(vec)], clusters=conv_ctx, **boot))
    for name in models:
        if name not in fitted:
            fit_res[name] = None  # not measured (see `fitted`), or context-blind: chance by construction
    fit_res["headline"] = fit_res.get("tuned")
    results["context_fit"] = fit_res

    # perplexity of the whole real replies in the evaluated contexts (after the whole conversation so far)
    ppl: dict = {"tokens": {}, "nll_per_token": {}}
    for name in models:
        real_rows = whole[name]
        p, total, n = metrics.pooled_perplexity((float(a), int(b)) for a, b in real_rows)
        ppl[name] = p
        ppl["tokens"][name] = n
        ppl["nll_per_token"][name] = total / n if n else float("nan")
    if "base" in models and "tuned" in models:
        ppl["relative_change"] = metrics.relative_change(ppl["base"], ppl["tuned"])
    results["perplexity"] = ppl

    # 6. style of generated replies vs the real ones (partners' messages and the parrot as references)
    real = [r["real"] for r in rows]
    gen_names = [n for n in ("base", "tuned", "tuned_as_partner") if n in generated
                 and len(generated[n]) == len(samples)]  # replies to every context (the base: examples only)
    others = {name: [r[name] for r in rows] for name in gen_names}
    others["partners"] = [s.partner for s in samples]
    others["parrot"] = parrot
    results["style"] = metrics.compare_styles(real, others, settings.top_k_words)
    results["style"]["ci95"] = {name: style_intervals(texts, conv_ctx[0], seed, settings.n_boot)
                                for name, texts in {"real": real, **others}.items()}
    results["empty_generations"] = {name: sum(1 for r in rows if not r[name].strip()) for name in gen_names}
    results["hit_token_limit"] = {name: getattr(m, "hit_limit", 0) - limit_before[name] for name, m in models.items()}

    # 4. authorship with a junk class, trained on the train split
    t2 = time.time()
    rng = random.Random(seed)
    n_junk = min(max(len(me_train), 1), max(len(them_train), 1), 20000)
    clf = AuthorshipClassifier(seed=seed).fit(me_train, them_train, junk_texts(me_train, them_train, rng, n_junk))
    # can it tell your real held-out messages from your partners' at all? If not (a persona-free history, or
    # too little text), what it says about generated replies is noise with a direction, not a persona number
    sep = [clf.person_vs_partners(me_val), clf.person_vs_partners(them_val)]
    heldout = _ci(stats.bootstrap(stats.auc, sep, clusters=[[c for c, _ in me_held], [c for c, _ in them_held]],
                                  **boot))
    auth: dict = {
        "n_train": clf.n_train,
        "heldout_auc": heldout,
        "person_real": clf.score(me_val).to_dict(),
        "partners_real": clf.score(them_val).to_dict(),
        "scrambled_real": clf.score([scramble(r, rng) for r in real]).to_dict(),
        "word_salad": clf.score(word_salad(me_val + them_val, rng, len(real))).to_dict(),
        "parrot": clf.score(parrot).to_dict(),
    }
    attributed = {}
    for name in gen_names:
        auth[name] = clf.score(others[name]).to_dict()
        attributed[name] = clf.attributed(others[name])
        for r, pi in zip(rows, clf.p_person(others[name])):
            r.setdefault("p_person", {})[name] = float(pi)
    if "tuned" in attributed and "tuned_as_partner" in attributed:
        auth["tuned_minus_partner_voice"] = _ci(stats.bootstrap(
            lambda d: float(np.mean(d)), [attributed["tuned"] - attributed["tuned_as_partner"]], clusters=conv_ctx,
            **boot))
    # the difference is a persona number only with a fair control and a classifier that finds the person
    lo = heldout["ci95"][0]
    why = (["the tuned model was trained on your turns only, so its replies as your partner are no fair control"]
           if "tuned" in models and not symmetric else [])
    if not lo > 0.5:
        why.append(f"the classifier cannot tell your real held-out messages from your partners' (ROC AUC "
                   f"{heldout['value']:.2f}, interval from {lo:.2f})")
    auth["not_a_persona_number"] = "; and ".join(why) or None
    results["authorship"] = auth
    results["seconds"] = {"scoring": round(t_score, 2), "generation": round(t_gen, 2),
                          "authorship": round(time.time() - t2, 2)}

    # side-by-side examples: evenly spread over the evaluated contexts (picks, above)
    results["examples"] = [
        {"context": rows[j]["context"][-3:], "real": rows[j]["real"],
         **{m: rows[j][m] for m in ("base", "tuned", "tuned_as_partner", "parrot") if m in rows[j]}} for j in picks
    ]
    return results, rows


def speaker_auc(scores: np.ndarray, n_person: int, clusters: Sequence[Sequence[int]], boot: dict) -> dict:
    """Speaker test AUC (section 1): `scores` holds (NLL, tokens) of every text scored as the person (first half)
    and as a partner (second half); the person's texts come first within each half."""
    s_all = speaker_scores(scores)
    return _ci(stats.bootstrap(stats.auc, [s_all[:n_person], s_all[n_person:]], clusters=clusters, **boot))


def speaker_scores(scores: np.ndarray) -> np.ndarray:
    """log P(text as the person) - log P(text as a partner), per text (see speaker_auc for the layout)."""
    nll = np.asarray(scores, dtype=float)[:, 0]
    half = len(nll) // 2
    return nll[half:] - nll[:half]


def who_wrote_it_matched(vec: np.ndarray, n_tok: np.ndarray, n_person: int, k: int,
                         clusters: Sequence[Sequence[int]], boot: dict) -> dict:
    """Who wrote it (section 2): hits@1 of k+1 against partner messages of similar length (token-count
    quartiles, see stats.hits_at_1_matched for why), with its interval and the unmatched value beside it."""
    bins = np.digitize(n_tok, stats.length_bins(n_tok[:n_person], n_tok[n_person:], k))

    def matched(a: np.ndarray, b: np.ndarray) -> float:  # columns: score, length bin
        return stats.hits_at_1_matched(a[:, 0], a[:, 1], b[:, 0], b[:, 1], k)

    both = np.column_stack([vec, bins])
    out = _ci(stats.bootstrap(matched, [both[:n_person], both[n_person:]], clusters=clusters, **boot))
    out["unmatched"] = stats.hits_at_1_vs_pool(vec[:n_person], vec[n_person:], k)
    return out


def persona_gap_stats(ref: np.ndarray, tuned: np.ndarray, n_person: int, clusters: Sequence[Sequence[int]], *,
                      seed: int, n_boot: int) -> dict:
    """The persona gap (section 3 of the module docstring) with its conversation-bootstrap interval.

    `ref` and `tuned` hold (summed NLL, tokens) per item, the person's items first (`n_person` of them), then
    the partners'. Also used during LoRA training (graftkit.lora.persona), so the number that selects the
    checkpoint is computed exactly as the report's."""
    ref, tuned = np.asarray(ref, dtype=float), np.asarray(tuned, dtype=float)
    pmi = ref[:, 0] - tuned[:, 0]  # log P_tuned - log P_reference, summed over the text's tokens
    tok = tuned[:, 1]

    def per_tok(idx: np.ndarray) -> float:
        return float(pmi[idx].sum() / max(tok[idx].sum(), 1))

    def gap(p_idx: np.ndarray, q_idx: np.ndarray) -> float:
        return per_tok(p_idx) - per_tok(q_idx)

    idx_p, idx_q = np.arange(n_person), np.arange(n_person, len(pmi))
    return {
        **_ci(stats.bootstrap(gap, [idx_p, idx_q], clusters=clusters, seed=seed, n_boot=n_boot)),
        "drop_person": per_tok(idx_p), "drop_partners": per_tok(idx_q),
        "ref_nll_person": float(ref[:n_person, 0].sum() / max(ref[:n_person, 1].sum(), 1)),
        "ref_nll_partners": float(ref[n_person:, 0].sum() / max(ref[n_person:, 1].sum(), 1)),
    }


def generate_all(model: ReplyModel, contexts: Sequence[Sequence[Turn]], seeds: Sequence[int], role: str,
                 progress: Callable[[int], None] | None = None) -> list[str]:
    """One reply per context: all at once where the model decodes batches (HFChatModel.generate_batch),
    else one at a time."""
    if hasattr(model, "generate_batch"):
        return model.generate_batch(contexts, seeds, role=role, progress=progress)
    out: list[str] = []
    for ctx, s in zip(contexts, seeds):
        out.append(model.generate(ctx, seed=s, role=role))
        if progress:
            progress(1)
    return out


def first_line(text: str) -> str:
    """The first message of a turn. Why: a turn of several messages is several lines, and scored whole, how
    many messages someone sends in a row weighs as much as what they say. The persona numbers (speaker
    test, who wrote it, persona gap) score one message per turn. (It did not change the control's
    who-wrote-it: 29.6% with it, 29.3% without.)"""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


def first_message(s: EvalSample) -> EvalSample:
    return EvalSample(s.conv, s.turn, s.context, first_line(s.reply), s.partner)


def speaker_texts(convs: Sequence[Conversation], pool: Collection[int], n: int,
                  seed: int) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The speaker test's texts: (conversation, first line) of up to `n` of the person's turns and `n` of the
    partners', from the conversations in `pool`. Shared by the report and the LoRA training score, so both read
    the same kind of text."""
    me, them = (subsample([x for x in turns_with_conv(convs, role) if x[0] in pool], n, seed + off)
                for role, off in (("assistant", 3), ("user", 4)))
    return [(c, first_line(t)) for c, t in me], [(c, first_line(t)) for c, t in them]


def speaker_items(me: Sequence[tuple[int, str]], them: Sequence[tuple[int, str]]) -> list[Item]:
    """Every text alone, first as the person's turn, then as a partner's (the layout speaker_auc reads)."""
    return [([], t, role) for role in ("assistant", "user") for _, t in [*me, *them]]


def turns_with_conv(convs: Sequence[Conversation], role: str) -> list[tuple[int, str]]:
    """(conversation index, text) of every non-empty turn of `role`."""
    return [(ci, t["content"]) for ci, c in enumerate(convs) for t in c if t["role"] == role and t["content"].strip()]


def per_reply_features(replies: Sequence[str]) -> dict[str, np.ndarray]:
    """One value per reply for each stat that is a mean over replies (what the bootstrap resamples)."""
    def arr(f: Callable[[str], float]) -> np.ndarray:
        return np.asarray([float(f(r)) for r in replies])

    return {
        "words_mean": arr(lambda r: len(r.split())),
        "emoji_rate": arr(lambda r: metrics.EMOJI_RE.search(r) is not None),
        "lowercase_rate": arr(metrics._lowercase_only),
        "ends_period_rate": arr(metrics._ends_with_period),
        "exclaim_rate": arr(lambda r: "!" in r),
        "question_rate": arr(lambda r: "?" in r),
        "ellipsis_rate": arr(lambda r: "..." in r or "…" in r),
    }


def style_intervals(replies: Sequence[str], convs: Sequence[int], seed: int, n_boot: int) -> dict[str, dict]:
    """{stat: {"value", "ci95"}} for the per-reply style stats (mean over replies, conversations resampled)."""
    feats = per_reply_features(replies)
    return {k: _ci(stats.bootstrap(np.mean, [v], clusters=[convs], seed=seed, n_boot=n_boot)) if len(v) else
            stats.interval(float("nan"), float("nan"), float("nan")) for k, v in feats.items()}


def all_finite(results: dict) -> bool:
    """True when every headline number is finite (used by tests and as a sanity check)."""
    vals = [results["perplexity"][m] for m in MODEL_NAMES if m in results["perplexity"]]
    vals += [results["speaker"]["tuned"]["value"], results["who_wrote_it"]["headline"]["value"],
             results["persona_gap"]["value"], results["context_fit"]["tuned"]["value"]]
    vals += [results["authorship"][m]["attributed_share"] for m in MODEL_NAMES if m in results["authorship"]]
    return all(_finite(v) is not None for v in vals)

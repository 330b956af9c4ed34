"""evaluate_persona: metric definitions on hand-made data, the model adapters, and end-to-end runs."""

from __future__ import annotations

import json
import math
import random

import pytest

from graftkit.evaluate import metrics
from graftkit.evaluate.authorship import AuthorshipClassifier
from graftkit.evaluate.core import build_samples, sample_seed

# ---------------------------------------------------------------------------------------------------
# metrics (pure)
# ---------------------------------------------------------------------------------------------------


def test_report_states_how_much_lower_the_tuned_perplexity_is():
    from graftkit.evaluate.report import perplexity_verdict

    ppl = {"base": 20.0, "tuned": 15.0, "relative_change": -0.25,
           "nll_per_token": {"base": math.log(20.0), "tuned": math.log(15.0)}}
    assert "25.0% lower" in perplexity_verdict(ppl) and "20.00 → 15.00" in perplexity_verdict(ppl)
    worse = dict(ppl, tuned=22.0, relative_change=0.1)
    assert perplexity_verdict(worse).startswith("**Warning: the tuned model is not better")


def test_perplexity_is_exp_of_mean_token_nll():
    assert metrics.perplexity(2.0 * 5, 5) == pytest.approx(math.exp(2.0))
    assert math.isnan(metrics.perplexity(0.0, 0))
    # pooled over replies: total NLL / total tokens, not a mean of per-reply perplexities
    ppl, total, n = metrics.pooled_perplexity([(1.0, 1), (9.0, 3)])
    assert (total, n) == (10.0, 4)
    assert ppl == pytest.approx(math.exp(10.0 / 4))
    assert metrics.relative_change(10.0, 7.5) == pytest.approx(-0.25)
    assert math.isnan(metrics.relative_change(float("nan"), 1.0))


def test_style_stats_on_crafted_replies():
    replies = [
        "hey lol",                    # 2 words, lowercase
        "Sure. See you at 7.",        # 5 words, ends with '.'
        "wait what?? 😂",             # 3 words, emoji, question, lowercase
        "ok...\nomw",                 # 2 words, 2 lines, ellipsis, lowercase, not ending '.'
        "YES!",                       # 1 word, exclamation
    ]
    st = metrics.style_stats(replies)
    assert st["n"] == 5
    assert st["words_median"] == 2.0
    assert st["words_p90"] == pytest.approx(4.2)   # numpy linear interpolation of [1,2,2,3,5]
    assert st["lines_mean"] == pytest.approx(6 / 5)
    assert st["emoji_rate"] == pytest.approx(1 / 5)
    assert st["lowercase_rate"] == pytest.approx(3 / 5)
    assert st["ends_period_rate"] == pytest.approx(1 / 5)
    assert st["exclaim_rate"] == pytest.approx(1 / 5)
    assert st["question_rate"] == pytest.approx(1 / 5)
    assert st["ellipsis_rate"] == pytest.approx(1 / 5)
    empty = metrics.style_stats([])
    assert empty["n"] == 0 and all(v == 0.0 for k, v in empty.items() if k != "n")


def test_distinct_n_and_top_k_jaccard():
    assert metrics.distinct_n(["a a b", "b c"], 1) == pytest.approx(3 / 5)
    assert metrics.distinct_n(["a a b", "b c"], 2) == pytest.approx(3 / 3)  # (a a) (a b) (b c); none across replies
    assert metrics.distinct_n(["a a a a"], 2) == pytest.approx(1 / 3)
    assert metrics.distinct_n([""], 1) == 0.0
    assert metrics.words("Don't STOP, ok?") == ["don't", "stop", "ok"]
    # top-2 of A = {x, y} (x 3, y 2, z 1); top-2 of B = {y, w}: overlap 1 of 3
    assert metrics.top_k_jaccard(["x x x y y z"], ["y y w w w"], k=2) == pytest.approx(1 / 3)
    assert metrics.top_k_jaccard(["same words"], ["words same"], k=50) == 1.0


def test_style_distance_definition():
    real = ["hey lol", "ok"]
    st = metrics.style_stats(real)
    assert metrics.style_distance(st, st, 1.0) == 0.0
    other = dict(st, words_median=st["words_median"] * 2, emoji_rate=st["emoji_rate"] + 0.5)
    # one count stat at relative difference 0.5, one share at 0.5, jaccard term 0: mean over 12 terms
    n_terms = len(metrics.STYLE_KEYS) + 1
    assert metrics.style_distance(st, other, 1.0) == pytest.approx((0.5 + 0.5) / n_terms)
    assert metrics.style_distance(st, st, 0.0) == pytest.approx(1 / n_terms)
    cmp = metrics.compare_styles(real, {"copy": list(real)})
    assert cmp["distance"]["copy"] == 0.0 and cmp["jaccard"]["copy"] == 1.0


# ---------------------------------------------------------------------------------------------------
# authorship classifier
# ---------------------------------------------------------------------------------------------------

def _casual(rng: random.Random) -> str:
    return " ".join(rng.choice(["lol", "ya", "omg", "haha", "k", "nah", "tbh", "idk", "😂", "yep"])
                    for _ in range(rng.randint(2, 5)))


def _formal(rng: random.Random) -> str:
    return " ".join(rng.choice(["Certainly,", "However,", "I believe", "Therefore,", "Regarding",
                                "the meeting.", "We shall", "Indeed."]) for _ in range(rng.randint(3, 6)))


def test_scramble_keeps_letters_and_spaces_but_not_words():
    from graftkit.evaluate.authorship import scramble

    text = "Hey you!\nare we still on for 7?"
    out = scramble(text, random.Random(1))
    assert sorted(out) == sorted(text) and out != text
    assert [i for i, c in enumerate(out) if c.isspace()] == [i for i, c in enumerate(text) if c.isspace()]
    assert out == scramble(text, random.Random(1))


def test_authorship_classifier_separates_two_styles():
    rng = random.Random(0)
    clf = AuthorshipClassifier(seed=0).fit([_casual(rng) for _ in range(150)], [_formal(rng) for _ in range(150)])
    ceiling = clf.score([_casual(rng) for _ in range(40)])
    floor = clf.score([_formal(rng) for _ in range(40)])
    assert ceiling.attributed_share >= 0.95 and floor.attributed_share <= 0.05
    assert ceiling.mean_p_person > 0.8 > 0.2 > floor.mean_p_person
    assert clf.auc([_casual(rng) for _ in range(20)], [_formal(rng) for _ in range(20)]) > 0.99
    assert clf.score([]).n == 0


# ---------------------------------------------------------------------------------------------------
# contexts
# ---------------------------------------------------------------------------------------------------

def test_build_samples_contexts_and_seeded_cap():
    conv = [{"role": "system", "content": "S"}, {"role": "assistant", "content": "opener"}]
    for i in range(6):
        conv += [{"role": "user", "content": f"u{i}"}, {"role": "assistant", "content": f"a{i}"}]
    samples = build_samples([conv], max_samples=None, seed=0, max_context_turns=3)
    assert [s.reply for s in samples] == [f"a{i}" for i in range(6)]  # the opener has no partner turn before it
    s = samples[-1]
    assert [t["content"] for t in s.context] == ["S", "u4", "a4", "u5"]  # system kept + last 3 turns
    assert s.partner == "u5" and s.turn == len(conv) - 1
    capped = build_samples([conv] * 10, max_samples=7, seed=3, max_context_turns=3)
    again = build_samples([conv] * 10, max_samples=7, seed=3, max_context_turns=3)
    assert len(capped) == 7 and [(s.conv, s.turn) for s in capped] == [(s.conv, s.turn) for s in again]
    assert [(s.conv, s.turn) for s in capped] == sorted((s.conv, s.turn) for s in capped)
    assert sample_seed(1, 0) != sample_seed(1, 1) != sample_seed(2, 1)


# ---------------------------------------------------------------------------------------------------
# model adapters: scoring is exactly exp(mean NLL of the reply tokens); generation is seeded
# ---------------------------------------------------------------------------------------------------

CTX = [{"role": "user", "content": "hey there"}, {"role": "assistant", "content": "yo"},
       {"role": "user", "content": "coming tonight?"}]


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory):
    from tiny_llama import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("evtiny"))


@pytest.fixture(scope="module")
def hf(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    return model, tok


def test_hf_reply_nll_is_the_reply_tokens_nll(hf):
    import torch

    from graftkit.evaluate.models import HFChatModel

    model, tok = hf
    m = HFChatModel(model, tok, name="t")
    reply = "yes! at 7"
    assert m.eot == "<|im_end|>" and m.reply_text(CTX, reply) == reply + "<|im_end|>"
    nll, n = m.reply_nll(CTX, reply)
    # independently: token by token, log_softmax of the logits at the last position of each prefix
    prompt = tok(tok.apply_chat_template(CTX, tokenize=False, add_generation_prompt=True),
                 add_special_tokens=False)["input_ids"]
    target = tok(reply + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert target[-1] == tok.convert_tokens_to_ids("<|im_end|>") and n == len(target)
    want = 0.0
    with torch.no_grad():
        for j, t in enumerate(target):
            logits = model(input_ids=torch.tensor([prompt + target[:j]])).logits[0, -1]
            want -= float(torch.log_softmax(logits, -1)[t])
    assert nll == pytest.approx(want, rel=1e-4)
    assert metrics.perplexity(nll, n) == pytest.approx(math.exp(want / len(target)), rel=1e-4)


def test_hf_generation_is_seeded_and_greedy_matches_transformers(hf):
    import torch

    from graftkit.evaluate.models import HFChatModel

    model, tok = hf
    m = HFChatModel(model, tok, name="t", max_new_tokens=8, temperature=1.0)
    assert m.generate(CTX, seed=5) == m.generate(CTX, seed=5)
    assert len({m.generate(CTX, seed=s) for s in range(4)}) > 1
    m.temperature = 0.0
    ids = tok(tok.apply_chat_template(CTX, tokenize=False, add_generation_prompt=True), add_special_tokens=False,
              return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    assert m.generate(CTX) == tok.decode(ref[0, ids.shape[1]:], skip_special_tokens=True).strip()


def _packed_equals_unpacked(model, m, items) -> tuple[int, int]:
    """Scores `items` packed and then each alone through the unpacked path (batched_nll); asserts equal
    results and returns the input tokens each way put through the model."""
    seen: list[int] = []
    hook = model.register_forward_pre_hook(lambda mod, a, kw: seen.append(kw["input_ids"].numel()), with_kwargs=True)
    try:
        packed = m.score(items)
        fed_packed = sum(seen)
        m._packing_ok = False
        alone = [m.score([it])[0] for it in items]
    finally:
        hook.remove()
        m._packing_ok = True
    for (nll_p, n_p), (nll_a, n_a) in zip(packed, alone):
        assert n_p == n_a and nll_p == pytest.approx(nll_a, rel=1e-4, abs=1e-4)
    return fed_packed, sum(seen) - fed_packed


def test_hf_packed_scoring_equals_scoring_each_alone_and_reads_a_shared_context_once(hf):
    from graftkit.evaluate.models import HFChatModel

    model, tok = hf
    m = HFChatModel(model, tok, name="t", batch_tokens=64)  # small batches: several chunks per context
    long_ctx = CTX + [{"role": "assistant", "content": "maybe, who else is coming and when"},
                      {"role": "user", "content": "everyone from work, around 9 or so"}]
    cands = ["yes! at 7", "nah", "who's driving tho, i can't this time", "ok", "k", "😂😂 sure thing see u"]
    items = [(ctx, c, "assistant") for ctx in (CTX, long_ctx) for c in cands]
    items += [(CTX[:1], "alone here", "assistant"), (long_ctx, "as a partner", "user")]  # prompts seen once
    fed_packed, fed_alone = _packed_equals_unpacked(model, m, items)
    # the 6 candidates of each context share one pass over it: far fewer tokens than 6 full sequences
    assert fed_packed < 0.5 * fed_alone


def test_hf_scores_the_turns_of_one_conversation_reading_it_about_once(hf):
    from graftkit.evaluate.models import HFChatModel

    model, tok = hf
    words = "sure maybe later tonight lol who else is coming around nine or ten ok".split()
    conv = [{"role": ("user", "assistant")[i % 2], "content": " ".join(words[i % 7: i % 7 + 4])} for i in range(16)]
    items = [(conv[:t], conv[t]["content"], conv[t]["role"]) for t in range(1, 16)]
    full = len(tok(tok.apply_chat_template(conv, tokenize=False), add_special_tokens=False)["input_ids"])
    for max_length in (1024, full // 2):  # the second cuts the long prompts (at multiples of max_length / 2)
        m = HFChatModel(model, tok, name="t", max_length=max_length)
        fed_packed, fed_alone = _packed_equals_unpacked(model, m, items)
        assert fed_packed <= 2.5 * full < 0.5 * fed_alone  # alone, every turn re-reads all the turns before it
        if max_length == 1024:  # every turn but the last is read inside the conversation itself (packing.py)
            assert fed_packed < full + len(tok(conv[-1]["content"], add_special_tokens=False)["input_ids"]) + 8


def test_pack_units_hangs_nested_prompts_off_one_trunk_and_splits_full_rows():
    from graftkit.evaluate.packing import pack_units

    seqs = [([1, 2], [7, 8]), ([1, 2, 3, 4], [9]), ([1, 2, 3], [5, 5, 5]), ([1, 6], [4, 4]), ([1, 2], [3, 3]),
            ([1, 2], [3, 4, 0])]
    units = pack_units(seqs, row_tokens=100)
    # [1,2] and [1,2,3] are prefixes of [1,2,3,4]: one trunk; [1,6] branches off and is its own trunk
    assert sorted((u.trunk, sorted(i for i, _, _ in u.texts + u.inside)) for u in units) == [
        ([1, 2, 3, 4], [0, 1, 2, 4, 5]), ([1, 6], [3])]
    trunk = next(u for u in units if u.trunk == [1, 2, 3, 4])
    assert {i: plen for i, plen, _ in trunk.texts + trunk.inside} == {0: 2, 1: 4, 2: 3, 4: 2, 5: 2}
    # the trunk continues with [3] and [3, 4] after [1, 2]: items 4 and 5 (and item 1, a lone end token) are
    # read at the trunk's own positions, whatever token the trunk has where their last token is predicted
    assert sorted(i for i, _, _ in trunk.inside) == [1, 4, 5]
    assert len(trunk) == 4 + 1 + 2  # each other text adds all its tokens but the last
    small = pack_units(seqs, row_tokens=2)  # too many text tokens for one row: the trunk repeats
    assert sum(u.trunk == [1, 2, 3, 4] for u in small) > 1
    assert sorted(i for u in small for i, _, _ in u.texts + u.inside) == [0, 1, 2, 3, 4, 5]


def test_hf_model_with_a_short_sliding_window_is_scored_unpacked_with_the_same_numbers(hf):
    from graftkit.evaluate.models import HFChatModel

    model, tok = hf
    m = HFChatModel(model, tok, name="t")
    items = [(CTX, c, "assistant") for c in ("yes! at 7", "nah", "ok")] + [(CTX[:1], "hey", "user")]
    packed = m.score(items)
    model.config.sliding_window = 8  # shorter than max_length: a custom 4-D mask would bypass the window
    try:
        assert not m._can_pack()
        unpacked = m.score(items)
    finally:
        model.config.sliding_window = None
    assert [n for _, n in packed] == [n for _, n in unpacked]
    assert [x for x, _ in packed] == pytest.approx([x for x, _ in unpacked], rel=1e-4, abs=1e-4)


def test_hf_batched_generation_equals_one_context_at_a_time(hf):
    from graftkit.evaluate.models import HFChatModel

    model, tok = hf
    contexts = [CTX, CTX[:1], CTX + [{"role": "assistant", "content": "maybe"},
                                     {"role": "user", "content": "come on, everyone is going to be there"}]]
    m = HFChatModel(model, tok, name="t", max_new_tokens=6, temperature=0.0)
    alone = [m.generate(c) for c in contexts]
    limit_alone, m.hit_limit = m.hit_limit, 0
    assert m.generate_batch(contexts, [0, 1, 2]) == alone  # left padding changes nothing
    assert m.hit_limit == limit_alone  # replies cut at max_new_tokens are counted per context
    assert m.generate_batch(contexts[::-1], [0, 1, 2], role="user") == [m.generate(c, role="user")
                                                                          for c in contexts[::-1]]
    m.temperature = 1.0  # sampled: each context draws from its own seeded generator, wherever it sits in the batch
    batch = m.generate_batch(contexts, [7, 8, 9])
    assert batch == m.generate_batch(contexts, [7, 8, 9])
    assert batch[1] == m.generate(contexts[1], seed=8)


def test_batched_decoding_drops_finished_rows_and_equals_each_prompt_alone(hf, monkeypatch):
    """graftkit.evaluate.decoding: prompts prefilled in several groups, one preallocated cache, finished rows
    dropped from the batch; every reply equals that prompt decoded alone by transformers' own cache."""
    from graftkit.evaluate.models import HFChatModel

    model, tok = hf
    m = HFChatModel(model, tok, name="t", max_new_tokens=12, temperature=1.0, batch_tokens=64)
    m.stop_ids = set(range(0, len(tok), 3))  # a third of the vocabulary ends a reply: rows finish at different steps
    contexts = [CTX, CTX[:1], CTX + [{"role": "assistant", "content": "maybe"}],
                [{"role": "user", "content": "ok"}], CTX + [{"role": "assistant", "content": "no"},
                                                          {"role": "user", "content": "why not?? it'll be fun"}]]
    seeds = [3, 1, 4, 1, 5]
    shapes: list[tuple[int, int]] = []
    hook = model.register_forward_pre_hook(lambda mod, a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                           with_kwargs=True)
    try:
        batch = m.generate_batch(contexts, seeds)
    finally:
        hook.remove()
    hit_batch, m.hit_limit = m.hit_limit, 0
    alone = [m._decode([m._prompt_ids(c, "assistant")], [s])[0] for c, s in zip(contexts, seeds)]
    assert batch == alone and m.hit_limit == hit_batch
    prefill = [b for b, t in shapes if t > 1]
    steps = [b for b, t in shapes if t == 1]
    assert len(prefill) > 1 and sum(prefill) == 5  # several prefill groups of <= 64 tokens, each prompt once
    assert steps and steps == sorted(steps, reverse=True) and steps[-1] < 5  # rows leave as their replies end
    # where the preallocated cache is unavailable (older transformers, sliding windows), the plain path gives the same
    import graftkit.evaluate.decoding as decoding

    monkeypatch.setattr(decoding, "preallocated_cache_supported", lambda: False)
    assert m.generate_batch(contexts, seeds) == batch


def _char_tiny_gpt(text: str, block_size: int = 16):
    import torch

    from graftkit.tiny_gpt.model import ModelArgs, TinyGPT
    from graftkit.tiny_gpt.tokenizer import build_char_tokenizer, tokenizer_from_json

    tok = tokenizer_from_json(build_char_tokenizer(text).to_str(), "test")
    torch.manual_seed(0)
    model = TinyGPT(ModelArgs(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=2, n_embd=16))
    return model.eval(), tok


def test_tiny_gpt_scores_every_reply_token_and_unigram_by_hand():
    import torch

    from graftkit.corpus import END, ME, THEM, render_corpus
    from graftkit.evaluate.tiny import TinyGPTModel, UnigramModel, render_context

    corpus = f"{THEM}hey you\n{ME}yo lol\n{END}\n"
    model, tok = _char_tiny_gpt(corpus + "abcdefghijklmnopqrstuvwxyz ?!.", block_size=16)
    # exactly as a session reads in the training transcript (render_corpus), which follows an END line
    assert render_context(CTX) == f"{END}\n{THEM}hey there\n{ME}yo\n{THEM}coming tonight?\n{ME}"
    session = [(t["role"] == "assistant", t["content"]) for t in CTX] + [(True, "sure")]
    assert render_context(CTX) + "sure\n" in render_corpus([[(False, "x")], session])
    m = TinyGPTModel(model, tok, max_new_tokens=5, temperature=1.0)
    # a short reply with a short context fits one block: compare with token-by-token log_softmax
    ctx = [{"role": "user", "content": "hi"}]
    prompt, target = tok.encode(render_context(ctx)), tok.encode("yo\n")
    want = 0.0
    with torch.no_grad():
        for j, t in enumerate(target):
            logits, _ = model(torch.tensor([prompt + target[:j]]))
            want -= float(torch.log_softmax(logits[0, -1], -1)[t])
    nll, n = m.reply_nll(ctx, "yo")
    assert n == 3 and nll == pytest.approx(want, rel=1e-5)
    # a reply longer than block_size is still scored completely (same token count as the unigram)
    long_reply = "hey you yo lol " * 3
    nll, n = m.reply_nll(CTX, long_reply)
    u = UnigramModel(tok, corpus, tok.vocab_size)
    assert n == len(tok.encode(long_reply + "\n")) == u.reply_nll(CTX, long_reply)[1] and math.isfinite(nll)
    # unigram: add-one smoothed corpus frequencies, context-blind
    ids = tok.encode(corpus)
    p_y = (ids.count(tok.encode("y")[0]) + 1) / (len(ids) + tok.vocab_size)
    p_nl = (ids.count(tok.encode("\n")[0]) + 1) / (len(ids) + tok.vocab_size)
    assert u.reply_nll(CTX, "y") == (pytest.approx(-math.log(p_y) - math.log(p_nl)), 2)
    assert u.generate(CTX, seed=3) == u.generate(CTX, seed=3)
    assert m.generate(CTX, seed=3) == m.generate(CTX, seed=3)


def test_tiny_gpt_generation_leaves_room_for_the_reply_so_the_prompt_runs_once():
    from graftkit.evaluate.tiny import TinyGPTModel, render_context

    model, tok = _char_tiny_gpt("heyou?ltsrcmingf\n abdjkpqvwxz" + "".join(render_context(CTX)), block_size=16)
    calls = []
    model.register_forward_pre_hook(lambda mod, args, kwargs: calls.append(args[0].shape[1]), with_kwargs=True)
    m = TinyGPTModel(model, tok, max_new_tokens=6, temperature=1.0)
    assert len(tok.encode(render_context(CTX))) > 16  # the context alone overflows the block
    m.generate(CTX, seed=1)
    # one prefill of block_size - max_new_tokens tokens, then one token per step: no window re-runs
    assert calls[0] == 16 - 6 and all(t == 1 for t in calls[1:])


# ---------------------------------------------------------------------------------------------------
# end to end: evaluate_persona.py on a tiny Llama + LoRA adapter and on a tiny GPT checkpoint
# ---------------------------------------------------------------------------------------------------

ME_WORDS = "lol ya omg haha k nah tbh idk yep sure 😂".split()
THEM_WORDS = "Hello there. How are you doing today? I think we should meet tomorrow.".split()


def _write_convs(path, n: int, seed: int) -> list:
    rng = random.Random(seed)
    convs = []
    for _ in range(n):
        conv = []
        for _ in range(rng.randint(1, 3)):
            conv.append({"from": "human", "value": " ".join(rng.choices(THEM_WORDS, k=5))})
            conv.append({"from": "gpt", "value": " ".join(rng.choices(ME_WORDS, k=3))})
        convs.append(conv)
    path.write_text("".join(json.dumps({"conversations": c}, ensure_ascii=False) + "\n" for c in convs),
                    encoding="utf-8")
    return convs


def _check_outputs(out, kind: str) -> dict:
    from graftkit.evaluate.core import all_finite

    data = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert data["meta"]["kind"] == kind and data["n_contexts"] == 3
    assert all_finite(data)
    ppl = data["perplexity"]
    assert ppl["tokens"]["base"] == ppl["tokens"]["tuned"] > 0
    assert ppl["relative_change"] == pytest.approx((ppl["tuned"] - ppl["base"]) / ppl["base"])
    auth = data["authorship"]
    assert auth["person_real"]["attributed_share"] > auth["partners_real"]["attributed_share"]
    assert auth["scrambled_real"]["n"] == auth["base"]["n"] == auth["tuned"]["n"] == auth["parrot"]["n"] == 3
    for key in ("speaker", "who_wrote_it", "persona_gap", "context_fit"):
        assert key in data
    lo, hi = data["who_wrote_it"]["headline"]["ci95"]
    assert lo <= data["who_wrote_it"]["headline"]["value"] <= hi
    md = (out / "report.md").read_text(encoding="utf-8")
    for section in ("## Does it sound like you?", "## Not about you specifically", "## Style", "## Authorship test",
                    "## Examples", "distributions.png"):
        assert section in md
    assert (out / "distributions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3 and all({"real", "base", "tuned"} <= set(r) for r in rows)
    return data


def test_lora_held_out_conversations_are_the_ones_training_held_out(tmp_path):
    from graftkit.config import load_config
    from graftkit.errors import UserError
    from graftkit.evaluate.loading import _lora_data
    from graftkit.lora.config import LoraTrainConfig
    from graftkit.lora.data import load_splits
    from graftkit.samples import read_conversations

    _write_convs(tmp_path / "all.jsonl", 10, 0)
    cfg = load_config(LoraTrainConfig, "lora_config.yaml", [f"data_file={tmp_path / 'all.jsonl'}", "val_fraction=0.2"])
    train, val, train_desc, val_desc = _lora_data(cfg, None, None)
    assert val == [s.messages for s in load_splits(cfg)[1]] and len(val) == 2 and len(train) == 8
    assert sorted(map(json.dumps, train + val)) == sorted(map(json.dumps, read_conversations(tmp_path / "all.jsonl")))
    assert "val_fraction 0.2" in val_desc and train_desc.endswith("all.jsonl")
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")  # prepare_training_data.py --val-fraction 0
    cfg = load_config(LoraTrainConfig, "lora_config.yaml", [f"train_file={tmp_path / 'all.jsonl'}",
                                                            f"val_file={tmp_path / 'empty.jsonl'}"])
    with pytest.raises(UserError, match="no held-out conversations|no conversations"):
        _lora_data(cfg, None, None)


def test_end_to_end_lora_on_tiny_llama(tiny_llama_dir, tmp_path, capsys):
    import torch

    import evaluate_persona
    from graftkit.config import load_config
    from train_lora import load_peft
    from graftkit.lora.config import LoraTrainConfig
    from graftkit.lora.export import save_adapter

    _write_convs(tmp_path / "train.jsonl", 30, 0)
    _write_convs(tmp_path / "val.jsonl", 4, 1)
    overrides = [f"base_model={tiny_llama_dir}", f"train_file={tmp_path / 'train.jsonl'}",
                 f"val_file={tmp_path / 'val.jsonl'}", f"output_dir={tmp_path / 'run'}", "max_seq_length=128"]
    cfg = load_config(LoraTrainConfig, "lora_config.yaml", overrides)
    loaded = load_peft(cfg)
    torch.manual_seed(0)
    with torch.no_grad():  # an untrained adapter is a no-op (B = 0): perturb it so tuned != base
        for name, p in loaded.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    save_adapter(cfg, loaded, loaded.model, tmp_path / "run" / "adapter")

    argv = ["--config", "lora_config.yaml", *overrides, "--max-samples", "3", "--max-new-tokens", "6", "--quiet",
            "--bootstrap", "50"]
    assert evaluate_persona.main(argv) == 0
    out = capsys.readouterr().out
    assert "speaker test AUC" in out and "who wrote it" in out and "reply perplexity (not about you): base" in out
    data = _check_outputs(tmp_path / "run" / "eval", "lora")
    assert data["perplexity"]["base"] != data["perplexity"]["tuned"]
    assert "without the adapter" in data["meta"]["base"]
    sp = data["speaker"]  # what training changed in the speaker test, paired over the same texts
    assert sp["tuned_minus_base"]["value"] == pytest.approx(sp["tuned"]["value"] - sp["base"]["value"])
    assert sp["tuned_minus_base"]["ci95"][0] <= sp["tuned_minus_base"]["value"] <= sp["tuned_minus_base"]["ci95"][1]
    # the prompting baseline: the base model shown 20 of the person's training messages, same three numbers
    pb = data["prompting_baseline"]
    assert pb["n_examples"] == 20
    for key in ("speaker", "who_wrote_it", "persona_gap"):
        lo, hi = pb[key]["ci95"]
        assert lo <= pb[key]["value"] <= hi
    assert pb["persona_gap"]["value"] != data["persona_gap"]["value"]  # a different model, not a copy
    assert "prompting baseline (base model + 20 of your messages" in out
    assert "## Fine-tuning vs just prompting" in (tmp_path / "run" / "eval" / "report.md").read_text(encoding="utf-8")

    # a missing adapter is one clean error line
    assert evaluate_persona.main(["--config", "lora_config.yaml", *overrides[:-2], f"output_dir={tmp_path / 'x'}",
                                  "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no trained LoRA model" in err[0]


def test_prompting_baseline_shows_the_base_model_training_messages_only():
    """The prompted base's system prompt holds N distinct training messages of the person (seeded), never a
    held-out one or a partner's, and its adapter is off."""
    from types import SimpleNamespace

    from graftkit.evaluate.loading import STYLE_PROMPT, prompting_baseline

    train = [[{"role": "user", "content": f"partner {i}"}, {"role": "assistant", "content": f"mine {i}\nsecond line"}]
             for i in range(40)]
    seen: list[str] = []

    def with_prompt(prompt: str):
        seen.append(prompt)
        return SimpleNamespace()

    target = SimpleNamespace(with_system_prompt=with_prompt)
    model = prompting_baseline(target, train, 12, seed=5)
    assert model.n_examples == 12 and seen[0].startswith(STYLE_PROMPT)
    shown = [line[2:] for line in seen[0].splitlines()[1:]]
    assert len(set(shown)) == 12 and all(t.startswith("mine ") for t in shown)  # first lines, the person's only
    prompting_baseline(target, train, 12, seed=5)
    assert seen[1] == seen[0]  # seeded
    assert prompting_baseline(target, train, 0, seed=5) is None
    assert prompting_baseline(SimpleNamespace(with_system_prompt=None), train, 12, seed=5) is None  # tiny GPT


def test_end_to_end_tiny_gpt_is_deterministic(tmp_path, capsys):
    import evaluate_persona
    from graftkit.checkpoint import atomic_torch_save
    from graftkit.corpus import render_corpus
    from graftkit.tiny_gpt.checkpoints import CKPT_FORMAT
    from test_fidelity import train_char_gpt

    data = tmp_path / "data"
    data.mkdir()
    for split, n, seed in (("train", 30, 0), ("val", 4, 1)):
        convs = _write_convs(data / f"sharegpt_{split}.jsonl", n, seed)
        (data / f"corpus_{split}.txt").write_text(render_corpus([(t["from"] == "gpt", t["value"]) for t in c]
                                                                for c in convs), encoding="utf-8")
        if split == "train":  # a checkpoint as train_tiny_gpt.py writes it, trained here in a few steps
            model, tok, _ = train_char_gpt([[{"role": "assistant" if t["from"] == "gpt" else "user",
                                              "content": t["value"]} for t in c] for c in convs], steps=5)
            (tmp_path / "out").mkdir()
            atomic_torch_save({"format": CKPT_FORMAT, "model_args": model.args.to_dict(), "model": model.state_dict(),
                               "tokenizer_json": tok.json_text,
                               "iter": 5}, tmp_path / "out" / "best.pt")
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(
        f"train_file: {data / 'corpus_train.txt'}\nval_file: {data / 'corpus_val.txt'}\n"
        f"tokenizer_path: {data / 'tok.json'}\ntokenizer_type: char\nout_dir: {tmp_path / 'out'}\n"
        "n_layer: 1\nn_head: 2\nn_embd: 32\nblock_size: 64\nmax_iters: 2\neval_interval: 2\neval_iters: 1\n"
        "batch_size: 4\nnum_samples: 0\nprogress: false\ndevice: cpu\n", encoding="utf-8")

    outs = []
    for name in ("a", "b"):
        argv = ["--config", str(cfg_file), "--max-samples", "3", "--max-new-tokens", "8", "--out",
                str(tmp_path / name), "--quiet", "--bootstrap", "50"]
        assert evaluate_persona.main(argv) == 0
        outs.append(_check_outputs(tmp_path / name, "tiny_gpt"))
    capsys.readouterr()
    # same seed and threads: byte for byte the same files
    for name in ("metrics.json", "generations.jsonl", "report.md", "distributions.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert "unigram" in outs[0]["meta"]["base"] and outs[0]["meta"]["threads"] == 1
    md = (tmp_path / "a" / "report.md").read_text(encoding="utf-8")
    assert "unigram model of its training transcript" in md and "Runtime" not in md

    # bad input: one `error:` line naming the file, exit 2, no traceback
    cases = {
        "missing val file": (["--val-file", str(tmp_path / "nope.jsonl")], "nope.jsonl"),
        "missing checkpoint": ([f"out_dir={tmp_path / 'empty'}"], "empty"),
        "bad config key": (["n_layers=3"], "n_layers"),
    }
    for what, (extra, needle) in cases.items():
        assert evaluate_persona.main(["--config", str(cfg_file), "--quiet", *extra]) == 2, what  # key=value last
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], (what, err)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("just: [unclosed\n", encoding="utf-8")
    assert evaluate_persona.main(["--config", str(bad_yaml), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "bad.yaml" in err[0]


class _RecordingModel:
    """A ReplyModel that records what it is asked to score (the scores are a hash of the text)."""

    has_speaker = True

    def __init__(self, name: str, symmetric_roles: bool = True):
        self.name, self.calls, self.roles = name, [], set()
        self.symmetric_roles = symmetric_roles

    def score(self, items, progress=None):
        self.calls.append(list(items))
        return [(float(sum(map(ord, text)) % 97) / 10 + 1, max(1, len(text.split()))) for _, text, _ in items]

    def generate(self, context, seed: int = 0, role: str = "assistant") -> str:
        self.roles.add(role)
        self.replies = getattr(self, "replies", 0) + 1
        return f"reply {seed % 7}"


def _recorded_convs() -> list:
    """8 conversations with a system turn, whose assistant turns are two messages (two lines)."""
    rng = random.Random(0)
    convs = []
    for _ in range(8):
        conv = [{"role": "system", "content": "be nice"}]
        for _ in range(rng.randint(2, 5)):
            conv.append({"role": "user", "content": " ".join(rng.choices(THEM_WORDS, k=4))})
            conv.append({"role": "assistant", "content": " ".join(rng.choices(ME_WORDS, k=3)) + "\nsecond line"})
        convs.append(conv)
    return convs


def _recorded_run(symmetric: bool) -> tuple[dict, dict]:
    from graftkit.evaluate.core import EvalSettings, run_evaluation

    convs = _recorded_convs()
    models = {"base": _RecordingModel("base"), "tuned": _RecordingModel("tuned", symmetric_roles=symmetric)}
    samples = build_samples(convs, max_samples=6, seed=1, max_context_turns=2)
    results, _ = run_evaluation(samples, models, EvalSettings(max_samples=6, max_context_turns=2, pool_size=0,
                                                              n_boot=20),
                                train_convs=convs, val_convs=convs, progress=False)
    return results, models


def test_authorship_has_no_as_partner_control_for_a_model_trained_on_one_side():
    """A LoRA adapter learns the person's (assistant) turns only, so the tuned model writing as the partner
    is no fair control for authorship: it is not generated, and the report says why instead of a number."""
    one_side, models = _recorded_run(symmetric=False)
    assert models["tuned"].roles == {"assistant"}
    auth = one_side["authorship"]
    assert "tuned_as_partner" not in auth and "tuned_minus_partner_voice" not in auth
    assert "trained on your turns only" in auth["not_a_persona_number"]
    both, models = _recorded_run(symmetric=True)
    assert models["tuned"].roles == {"assistant", "user"} and "tuned_minus_partner_voice" in both["authorship"]
    # the base model writes only the side-by-side examples' replies (a before picture), the tuned model all
    assert models["base"].replies == len(both["examples"]) == 5 < both["n_contexts"] == 6
    assert models["tuned"].replies == 2 * 6 and all("base" in ex for ex in both["examples"])
    assert "base" not in both["style"]["stats"] and "base" not in both["authorship"]
    from graftkit.evaluate.report import headline

    line = [x for x in headline(one_side, {}) if "Authorship" in x][0]
    assert "not a persona number here" in line and "trained on your turns only" in line


def test_context_fit_hangs_off_the_persona_trees_and_scores_first_messages():
    """Context fit and reply perplexity are scored in the same call as the persona items, after the whole
    conversation so far, so each fit context is a persona item's context (HFChatModel.score then reads it
    once): the LoRA evaluation's cost is the held-out conversations, not the 100 contexts again."""
    from graftkit.evaluate.core import EvalSettings, context_before, run_evaluation

    convs = _recorded_convs()
    models = {"base": _RecordingModel("base"), "tuned": _RecordingModel("tuned")}
    samples = build_samples(convs, max_samples=6, seed=1, max_context_turns=2)
    run_evaluation(samples, models, EvalSettings(max_samples=6, max_context_turns=2, pool_size=0, n_boot=20),
                   train_convs=convs, val_convs=convs, progress=False)
    for name, model in models.items():
        tree_call = model.calls[0]  # persona items (+ the tuned model's swapped twins), fit candidates, whole replies
        n_fit = 10 if name == "tuned" else 0  # context fit is the tuned model's alone (not about the person)
        tail = len(samples) * (n_fit + 1)  # 10 candidates per context (enough replies here), then the whole reply
        persona_ctx = {json.dumps(ctx) for ctx, _, _ in tree_call[:-tail]}
        for i, s in enumerate(samples):
            full = context_before(convs[s.conv], s.turn)
            assert json.dumps(full) in persona_ctx  # the fit context is a persona item's context: same tree
            fit = tree_call[len(tree_call) - tail + n_fit * i:len(tree_call) - tail + n_fit * (i + 1)]
            assert all(ctx == full and "\n" not in text for ctx, text, _ in fit)  # first messages only
            assert not fit or fit[0][1] == s.reply.splitlines()[0]  # the real reply's first message comes first
            assert tree_call[len(tree_call) - len(samples) + i] == (full, s.reply, "assistant")  # perplexity
        assert len(samples[0].context) <= 3  # generation keeps its short window (system + 2 turns)
    assert len(models["tuned"].calls[1]) > 0 and len(models["base"].calls) == 2  # candidates alone: tuned only

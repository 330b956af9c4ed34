"""Fidelity evaluation: the persona numbers are about the person, near chance without one, not fooled by
gibberish, with intervals. Synthetic chats and tiny models trained here in a few seconds; the full
train-and-evaluate check on the sample vs the persona-free control is the `slow` test at the end (and
bench/bench_fidelity.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from graftkit.evaluate import stats

CASUAL = "lol ya omg haha k nah tbh idk yep sure gonna wanna".split()
FORMAL = "Hello there. How are you doing today? I think we should meet tomorrow. Certainly, regards.".split()


def make_chats(n: int, seed: int, persona: bool) -> list[list[dict]]:
    """Two-person chats, one casual and one formal writer. persona=True: the person ("assistant") is always
    the casual one; persona=False: the person is the casual side in every other chat, the formal side in the
    rest (the control: "me" is no one in particular, exactly balanced so the test is not at the mercy of
    how a small random split happens to fall)."""
    rng = random.Random(seed)
    convs = []
    for i in range(n):
        me_casual = persona or i % 2 == 0
        conv = []
        for _ in range(rng.randint(2, 4)):
            them = " ".join(rng.choices(FORMAL if me_casual else CASUAL, k=rng.randint(2, 5)))
            me = " ".join(rng.choices(CASUAL if me_casual else FORMAL, k=rng.randint(2, 5)))
            conv += [{"role": "user", "content": them}, {"role": "assistant", "content": me}]
        convs.append(conv)
    return convs


def train_char_gpt(convs: list[list[dict]], steps: int = 120, seed: int = 0):
    """A 1-layer char-level tiny GPT fitted on the chats' transcript (both sides, as train_tiny_gpt.py
    trains), with a plain AdamW loop: the test depends on the public model API only."""
    import torch

    from graftkit.corpus import render_corpus
    from graftkit.tiny_gpt.model import ModelArgs, TinyGPT
    from graftkit.tiny_gpt.tokenizer import build_char_tokenizer, tokenizer_from_json

    text = render_corpus([(t["role"] == "assistant", t["content"]) for t in c] for c in convs)
    tok = tokenizer_from_json(build_char_tokenizer(text + "".join(CASUAL + FORMAL)).to_str(), "test")
    data = torch.tensor(tok.encode_corpus(text), dtype=torch.long)
    torch.manual_seed(seed)
    model = TinyGPT(ModelArgs(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=32))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ix = torch.randint(len(data) - 65, (16,), generator=g)
        x = torch.stack([data[i:i + 64] for i in ix])
        y = torch.stack([data[i + 1:i + 65] for i in ix])
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok, text


def evaluate(persona: bool) -> dict:
    from graftkit.evaluate.core import EvalSettings, build_samples, run_evaluation
    from graftkit.evaluate.tiny import TinyGPTModel, UnigramModel

    train = make_chats(150, 1, persona)
    val = make_chats(50, 2, persona)
    model, tok, text = train_char_gpt(train)
    gen = dict(max_new_tokens=8, temperature=0.8)
    models = {"base": UnigramModel(tok, text, tok.vocab_size, **gen), "tuned": TinyGPTModel(model, tok, **gen)}
    # pool_size=0: every conversation (a random half would unbalance the control's exact casual/formal split)
    settings = EvalSettings(max_samples=20, seed=3, pool_size=0, n_boot=100)
    samples = build_samples(val, max_samples=20, seed=3, max_context_turns=4)
    results, _ = run_evaluation(samples, models, settings, train_convs=train, val_convs=val, progress=False)
    return results


@pytest.fixture(scope="module")
def person_and_control():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return evaluate(persona=True), evaluate(persona=False)
    finally:
        torch.set_num_threads(threads)


def test_persona_numbers_find_the_person_and_stay_at_chance_without_one(person_and_control):
    person, control = person_and_control
    # with a person: every persona number is above chance, interval and all
    assert person["speaker"]["tuned"]["ci95"][0] > 0.7
    assert person["who_wrote_it"]["headline"]["ci95"][0] > 0.3
    assert person["persona_gap"]["ci95"][0] > 0
    assert person["authorship"]["tuned_minus_partner_voice"]["ci95"][0] > 0.05
    # without one ("me" a random side of each chat): the same numbers cannot tell from chance
    # (the speaker AUC of 50 tiny synthetic chats scatters by +-0.1 around 0.5 with the split; the bench checks
    # the 0.45-0.60 band on the real control)
    assert 0.3 < control["speaker"]["tuned"]["value"] < 0.7
    lo, hi = control["who_wrote_it"]["headline"]["ci95"]
    assert lo < 0.1 < hi
    lo, hi = control["persona_gap"]["ci95"]
    assert lo < 0 < hi
    lo, hi = control["authorship"]["tuned_minus_partner_voice"]["ci95"]
    assert lo <= 0 <= hi
    # ...and authorship is not even reported as a persona number there: its classifier cannot find a person
    assert person["authorship"]["not_a_persona_number"] is None
    assert person["authorship"]["heldout_auc"]["ci95"][0] > 0.5
    assert "cannot tell" in control["authorship"]["not_a_persona_number"]
    # ...while perplexity falls as much in the control as with the person: it measures chat, not the person
    assert control["perplexity"]["relative_change"] < -0.3 and person["perplexity"]["relative_change"] < -0.3
    # context fit is reported beside them, with its chance level (these synthetic replies ignore their context)
    assert control["context_fit"]["chance"] == pytest.approx(0.1)


def test_the_pool_is_whole_conversations_until_each_side_has_enough():
    from graftkit.evaluate.core import build_samples, pick_conversations
    from graftkit.samples import swap_roles

    convs = make_chats(60, 5, persona=True)  # 2-4 exchanges each
    pool = pick_conversations(convs, 40, seed=9)
    assert pool == pick_conversations(convs, 40, seed=9) and pool != pick_conversations(convs, 40, seed=10)
    replies = build_samples(convs, max_samples=None, seed=0, max_context_turns=0, only=pool)
    partners = build_samples([swap_roles(c) for c in convs], max_samples=None, seed=0, max_context_turns=0, only=pool)
    assert {s.conv for s in replies} == pool  # every reply of every conversation drawn, none of the others
    assert len(replies) >= 40 and 40 <= len(partners) < 40 + 4  # stops once the scarcer side reaches 40
    assert pick_conversations(convs, 0, seed=9) == set(range(60)) == pick_conversations(convs, 10**6, seed=9)


def test_gibberish_and_parrots_do_not_pass_as_the_person(person_and_control):
    person, _ = person_and_control
    auth = person["authorship"]
    assert auth["person_real"]["attributed_share"] > 0.9 and auth["partners_real"]["attributed_share"] < 0.1
    # shuffled letters and word salad go to the junk class, not to the person
    assert auth["scrambled_real"]["attributed_share"] < 0.2 and auth["scrambled_real"]["junk_share"] > 0.5
    assert auth["word_salad"]["attributed_share"] < 0.5
    # a parrot of the person's training messages fools the classifier (shown as a baseline)...
    assert auth["parrot"]["attributed_share"] > 0.9
    # ...and the report says in plain words what each number is and whether it beats chance
    from graftkit.evaluate.report import render_markdown

    md = render_markdown(person, {"kind": "tiny_gpt"})
    assert md.index("## Does it sound like you?") < md.index("## Not about you specifically")
    assert "Speaker test" in md and "chance 0.50" in md and "Above chance" in md
    assert "95% CI" in md


def test_auc_and_hits_against_brute_force():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40), rng.normal(0, 1, 30)
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert stats.auc(pos, neg) == pytest.approx(brute)
    assert stats.auc([1, 1], [1, 1]) == 0.5
    # hits@1 of 10 vs a pool is exact over all draws of 9 distractors: compare with sampling
    real, pool = rng.normal(0.5, 1, 30), rng.normal(0, 1, 25)
    draws = rng.permuted(np.tile(np.arange(25), (40000, 1)), axis=1)[:, :9]  # 9 distinct distractors per row
    sims = real[rng.integers(0, 30, 40000)] > pool[draws].max(axis=1)
    assert stats.hits_at_1_vs_pool(real, pool, 9) == pytest.approx(sims.mean(), abs=0.01)
    assert stats.hits_at_1_vs_pool(rng.normal(size=2000), rng.normal(size=2000), 9) == pytest.approx(0.1, abs=0.015)
    # explicit rows: ties share the point
    assert stats.hits_at_1([3.0, 1.0, 2.0], [[1, 2], [5, 0], [2, 0]]) == pytest.approx((1 + 0 + 0.5) / 3)


def test_length_matched_hits_are_at_chance_when_one_side_only_has_more_short_messages():
    """Per-token scores of short messages are noisier. With no signal, a side with more short messages
    wins hits@1 (a tail statistic) too often; matching distractors by length brings it back to chance,
    and a real shift still shows."""
    rng = np.random.default_rng(0)

    def side(n_short: int, n_long: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        lengths = np.concatenate([rng.integers(2, 5, n_short), rng.integers(15, 30, n_long)])
        return rng.normal(shift, 1.0, len(lengths)) / np.sqrt(lengths), lengths

    me, me_len = side(1500, 500)      # "me" writes short messages more often
    them, them_len = side(500, 1500)
    edges = stats.length_bins(me_len, them_len, 9)
    assert len(edges) >= 1
    unmatched = stats.hits_at_1_vs_pool(me, them, 9)
    matched = stats.hits_at_1_matched(me, np.digitize(me_len, edges), them, np.digitize(them_len, edges), 9)
    assert unmatched > 0.14 and matched == pytest.approx(0.1, abs=0.015)
    real, real_len = side(1500, 500, shift=0.5)  # a real difference in every length still shows
    assert stats.hits_at_1_matched(real, np.digitize(real_len, edges), them, np.digitize(them_len, edges), 9) > 0.15
    # too few distractors for a length bin: fewer bins, down to none
    assert len(stats.length_bins([3, 4, 20], [3, 20, 21], 9)) == 0
    assert np.isnan(stats.hits_at_1_matched([1.0], [0], [0.5, 0.2], [0, 0], 9))


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(1).normal(2.0, 1.0, 200)
    v, lo, hi = stats.bootstrap(np.mean, [x], seed=5)
    assert v == pytest.approx(x.mean()) and lo < v < hi and hi - lo == pytest.approx(2 * 1.96 / np.sqrt(200), rel=0.25)
    assert stats.bootstrap(np.mean, [x], seed=5) == (v, lo, hi)


def test_batched_scoring_equals_one_sequence_at_a_time():
    """One forward per padded batch gives the same NLL as scoring each sequence alone."""
    import torch

    from graftkit.evaluate.models import continuation_nll
    from graftkit.samples import swap_roles
    from graftkit.evaluate.tiny import TinyGPTModel, render_context

    convs = make_chats(5, 0, True)
    model, tok, _ = train_char_gpt(convs, steps=5)
    m = TinyGPTModel(model, tok)
    m.batch_tokens = 200  # several batches
    items = [(c[:i], c[i]["content"], role) for c in convs for i in range(1, len(c), 2)
             for role in ("assistant", "user")]
    items.append(([], "x" * 80, "assistant"))  # longer than block_size: scored in chunks
    got = m.score(items)
    for (ctx, text, role), (nll, n) in zip(items[:-1], got[:-1]):
        prompt, target = tok.encode(render_context(ctx, role)), tok.encode(text + "\n")
        prompt = prompt[-(64 - len(target)):]
        with torch.no_grad():
            logits, _ = model(torch.tensor([prompt + target]))
        assert n == len(target) and nll == pytest.approx(continuation_nll(logits[0], len(prompt), target), rel=1e-4)
    assert got[-1][1] == 81 and np.isfinite(got[-1][0])
    assert render_context(convs[0][:1], "user").endswith("<|them|>")
    assert [t["role"] for t in swap_roles(convs[0][:2])] == ["assistant", "user"]


def test_bench_fidelity_tag_keeps_two_lora_recipes_apart(monkeypatch, tmp_path):
    """--tag: a second LoRA recipe trains, evaluates and reports into its own folders, not over the first's."""
    import argparse
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_fidelity
    import sample_model

    monkeypatch.setattr(sample_model, "smollm2_dir", lambda: tmp_path)
    cmds = {}
    for tag in ("", "both"):
        args = argparse.Namespace(kind="lora", tag=tag, seed=1, lora_threads=1, threads=1, max_samples=5,
                                  pool_size=10, sample_model=None)
        cmd = bench_fidelity.eval_command("sample", tmp_path, args)
        cmds[tag] = (cmd[cmd.index("--out") + 1], next(c for c in cmd if c.startswith("output_dir=")),
                     bench_fidelity.eval_log("sample", args).name)
    assert cmds[""][0].endswith("/sample/eval_lora") and cmds[""][1].endswith("/sample/lora")
    assert cmds["both"] == (cmds[""][0] + "-both", cmds[""][1] + "-both", "eval-both.log")

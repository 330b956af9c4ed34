"""The contrast stage's pairs (graftkit.lora.contrast): the person's real turn against a partner's turn after the
same context. Fast (the tiny tokenizer only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graftkit.lora.config import LoraTrainConfig
from graftkit.lora.contrast import MAX_CONTEXT_TURNS, contrast_pairs
from graftkit.lora.data import setup_tokenizer
from tiny_llama import make_tiny_llama

STRICT_TEMPLATE = (  # like Mistral's official template: user first, then strict alternation
    "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}"
)

# turn text says who wrote it and where: "p<conv>.<turn>" for the person, "q<conv>.<turn>" for a partner
CONVS = [
    [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{'q' if i % 2 == 0 else 'p'}{c}.{i} lol"}
     for i in range(n)]
    for c, n in enumerate([6, 5, 2, 20])
] + [[{"role": "assistant", "content": "p4.0 hey"}, {"role": "user", "content": "q4.1 yes"},
      {"role": "assistant", "content": "p4.2 pizza?"}, {"role": "user", "content": "  "},
      {"role": "user", "content": "q4.4 sure"}]]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny"))


def _tok(tiny_dir, **cfg_kw):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    return tok, setup_tokenizer(tok, LoraTrainConfig(base_model=str(tiny_dir), **cfg_kw))


def test_each_pair_is_the_persons_turn_against_the_next_partner_turn_after_the_same_context(tiny_dir):
    tok, info = _tok(tiny_dir)
    pairs = contrast_pairs(tok, CONVS, info, system_prompt="You are Sam.", max_prompt=10_000, limit=1000, seed=0,
                           rejected_context="same_context")
    # every reply with a non-empty partner turn after it, once: conv 0 has replies 1, 3 (5 has none after),
    # conv 1 has 1, 3 (4 is a partner's), conv 2 has 1 (no partner after), conv 3 has 1..17, conv 4 has 2
    want = {("p0.1", "q0.2"), ("p0.3", "q0.4"), ("p1.1", "q1.2"), ("p1.3", "q1.4"), ("p4.2", "q4.4")}
    want |= {(f"p3.{i}", f"q3.{i + 1}") for i in range(1, 19, 2)}
    got = {(p["chosen"].split()[0], p["rejected"].split()[0]) for p in pairs}
    assert got == want and len(pairs) == len(want)
    for p in pairs:
        conv, turn = map(int, p["chosen"].split()[0][1:].split("."))
        assert p["prompt"].endswith("<|im_start|>assistant\n")  # the opening of the person's turn
        assert p["prompt"].startswith("<|im_start|>system\nYou are Sam.")
        # the context before the reply, up to MAX_CONTEXT_TURNS turns of it; nothing after it
        before = [t["content"] for t in CONVS[conv][:turn]]
        assert all(t in p["prompt"] for t in before[-MAX_CONTEXT_TURNS:])
        assert not any(t in p["prompt"] for t in before[:-MAX_CONTEXT_TURNS])
        assert p["chosen"] not in p["prompt"] and p["rejected"] not in p["prompt"]


def test_limit_is_a_seeded_draw_and_prompts_fit_max_prompt(tiny_dir):
    tok, info = _tok(tiny_dir)
    kw = dict(system_prompt="", max_prompt=10_000, seed=1, rejected_context="same_context")
    all_pairs = contrast_pairs(tok, CONVS, info, limit=1000, **kw)
    some = contrast_pairs(tok, CONVS, info, limit=4, **kw)
    assert len(some) == 4 and all(p in all_pairs for p in some)
    assert some == contrast_pairs(tok, CONVS, info, limit=4, **kw)
    assert some != contrast_pairs(tok, CONVS, info, limit=4, **{**kw, "seed": 2})
    # a tight max_prompt drops the earliest turns of context until it fits
    short = contrast_pairs(tok, CONVS, info, limit=1000, **{**kw, "max_prompt": 30})
    lens = [len(tok(p["prompt"], add_special_tokens=False)["input_ids"]) for p in short]
    assert len(short) == len(all_pairs) and max(lens) <= 30
    assert sum(map(len, (p["prompt"] for p in short))) < sum(map(len, (p["prompt"] for p in all_pairs)))
    assert contrast_pairs(tok, CONVS, info, limit=0, **kw) == []
    # not even the last turn of context fits: no pair (never a prompt over the limit)
    assert contrast_pairs(tok, CONVS, info, limit=1000, **{**kw, "max_prompt": 3}) == []


def test_strict_template_prompt_opens_with_a_user_turn(tiny_dir, tmp_path):
    (tmp_path / "strict.jinja").write_text(STRICT_TEMPLATE, encoding="utf-8")
    tok, info = _tok(tiny_dir, chat_template=str(tmp_path / "strict.jinja"))
    pairs = contrast_pairs(tok, CONVS, info, system_prompt="", max_prompt=10_000, limit=1000, seed=0,
                           rejected_context="same_context")
    p42 = next(p for p in pairs if p["chosen"].startswith("p4.2"))  # conv 4 is opened by the person
    assert p42["prompt"].lstrip().startswith("[INST] q4.1") and "p4.0" not in p42["prompt"]
    assert all(p["prompt"].lstrip().startswith("[INST]") for p in pairs)
    # own_context: the swapped conversation must open with a user turn too (here: a turn of the person's)
    own = contrast_pairs(tok, CONVS, info, system_prompt="", max_prompt=10_000, limit=1000, seed=0,
                         rejected_context="own_context")
    assert len(own) == len(pairs)
    for p in own:
        if p["rejected"].startswith("q4."):  # conv 4's blank turn (no real file has one: read_conversations refuses it)
            continue
        ctx = tok.decode(p["rejected_prompt_ids"]).lstrip()
        assert ctx.startswith("[INST] p") and ctx.rstrip().endswith("[/INST]") and p["rejected"] not in ctx, ctx


def test_own_context_reads_the_rejected_turn_after_its_own_conversation_with_the_roles_swapped(tiny_dir):
    tok, info = _tok(tiny_dir)
    kw = dict(system_prompt="You are Sam.", max_prompt=10_000, limit=1000, seed=0)
    same = contrast_pairs(tok, CONVS, info, rejected_context="same_context", **kw)
    own = contrast_pairs(tok, CONVS, info, rejected_context="own_context", **kw)
    # the same pairs (prompt, chosen, rejected); only the rejected turn's context is added
    assert [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in own] == same
    for p in own:
        conv, j = map(int, p["rejected"].split()[0][1:].split("."))
        ctx = tok.decode(p["rejected_prompt_ids"])
        assert ctx.startswith("<|im_start|>system\nYou are Sam.") and ctx.endswith("<|im_start|>assistant\n")
        before = [t for t in CONVS[conv][:j] if t["content"].strip()][-MAX_CONTEXT_TURNS:]
        for t in before:  # every turn up to the partner's, the person's now as the user and the partners' as you
            swapped = "user" if t["role"] == "assistant" else "assistant"
            assert f"<|im_start|>{swapped}\n{t['content']}<|im_end|>" in ctx
        assert p["rejected"] not in ctx and p["chosen"] in ctx  # the reply it answers, not itself
    # a context that cannot fit max_prompt on the rejected side drops the pair, never an over-long prompt
    tight = contrast_pairs(tok, CONVS, info, rejected_context="own_context", **{**kw, "max_prompt": 30})
    assert tight and all(len(p["rejected_prompt_ids"]) <= 30 for p in tight)


def test_own_context_collator_builds_the_rejected_rows_from_their_own_prompt():
    from graftkit.lora.contrast import own_context_trainer

    _, Collator = own_context_trainer()
    examples = [{"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5], "rejected_ids": [6], "rejected_prompt_ids": [7, 8, 9, 10, 11],
                 "ref_chosen_logps": -1.0, "ref_rejected_logps": -2.0},
                {"prompt_ids": [12], "chosen_ids": [13], "rejected_ids": [14, 15], "rejected_prompt_ids": [16],
                 "ref_chosen_logps": -3.0, "ref_rejected_logps": -4.0}]
    out = Collator(pad_token_id=0)(examples)
    rows = [[int(x) for x, m in zip(ids, att) if m] for ids, att in zip(out["input_ids"], out["attention_mask"])]
    assert rows == [[1, 2, 3, 4, 5], [12, 13], [7, 8, 9, 10, 11, 6], [16, 14, 15]]  # chosen rows, then rejected
    scored = [[int(x) for x, m in zip(ids, c) if m] for ids, c in zip(out["input_ids"], out["completion_mask"])]
    assert scored == [[4, 5], [13], [6], [14, 15]]  # only the turns are scored, never a prompt
    assert out["ref_rejected_logps"].tolist() == [-2.0, -4.0]
    # padding to a multiple (TRL's pad_to_multiple_of): both halves share one width
    assert Collator(pad_token_id=0, pad_to_multiple_of=8)(examples)["input_ids"].shape == (4, 8)
    # truncation (keep_start) is TRL's, per row
    cut = Collator(pad_token_id=0, max_length=4)(examples)
    assert [int(x) for x, m in zip(cut["input_ids"][2], cut["attention_mask"][2]) if m] == [7, 8, 9, 10]
    # pairs without their own context: exactly TRL's collator
    plain = [{k: v for k, v in e.items() if k != "rejected_prompt_ids"} for e in examples]
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    a, b = Collator(pad_token_id=0)(plain), DataCollatorForPreference(pad_token_id=0)(plain)
    assert all((a[k] == b[k]).all() for k in b)


# ------------------------------------------------------------------------------------------ the stage, end to end

def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_dir):
    from test_lora import write_data

    base = tmp_path_factory.mktemp("contrast")
    return {"tiny": tiny_dir, "data": write_data(base / "data.jsonl", n=40), "base": base}


def test_contrast_stage_runs_after_training_and_is_kept_only_if_the_persona_gap_holds(env, capsys):
    import json

    from test_lora import tiny_cfg
    from train_lora import run

    out = env["base"] / "run"
    # a whole epoch (6 steps), not max_steps: transformers resumes a run stopped by max_steps mid-epoch one step past it
    args = ("max_steps=0", "epochs=1", "eval_steps=2", "save_steps=2", "save_total_limit=0", "persona_holdout=0.25",
            "persona_messages=50", "early_stopping_patience=0", "eval_on_start=false")
    first = run(tiny_cfg(env["tiny"], env["data"], out, *args))
    assert "contrast" not in first["selection"]  # contrast_pairs=0 (tiny_cfg)
    # the same command with contrast_pairs on a finished run: nothing more is trained, the stage runs on adapter/
    capsys.readouterr()
    summary = run(tiny_cfg(env["tiny"], env["data"], out, *args, "contrast_pairs=10", "contrast_learning_rate=5e-3"))
    said = "".join(capsys.readouterr())
    assert "nothing new was trained; the contrast stage runs on its kept adapter" in said
    assert "contrast stage: 10 pairs" in said and "persona gap on the held-out slice" in said
    assert summary["global_step"] == first["global_step"] and summary["selection"]["kept_step"] == first["selection"]["kept_step"]
    c = summary["selection"]["contrast"]
    assert c["pairs"] == 10 and c["steps"] == 3  # 4 pairs per step
    logged = {r["step"]: r["eval_persona_gap"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
              if "eval_persona_gap" in r}
    assert c["persona_gap_before"] == logged[summary["selection"]["kept_step"]]
    assert c["kept"] == (c["persona_gap_after"] >= c["persona_gap_before"])
    rows = [json.loads(line) for line in (out / "contrast" / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in r for r in rows)
    kept, ckpt = _tensors(out / "adapter"), _tensors(out / f"checkpoint-{summary['selection']['kept_step']}")
    assert kept.keys() == ckpt.keys() and not any(".ref." in k for k in kept)  # TRL's reference copy is not saved
    same = all((kept[k] == ckpt[k]).all() for k in kept)
    assert same != c["kept"]  # the contrast stage's weights if kept, else exactly the supervised checkpoint's
    meta = json.loads((out / "adapter" / "graftkit_lora.json").read_text())
    assert meta["selection"]["contrast"] == c
    from graftkit.evaluate.loading import selection_note

    note = selection_note(meta["selection"])  # what evaluate_persona.py's report says about the kept adapter
    assert "contrast stage on 10 pairs" in note and ("not kept" in note) != c["kept"]
    assert c["rejected"] == "own_context" and "a partner's turn in its own context" in note  # the default


@pytest.mark.parametrize("gap_before,rejected", [(float("inf"), "same_context"), (float("-inf"), "same_context"),
                                                 (float("-inf"), "own_context")])
def test_contrast_stage_puts_the_supervised_weights_back_when_the_gap_falls(env, gap_before, rejected):
    from peft import get_peft_model_state_dict

    from graftkit.lora.contrast import run_contrast
    from graftkit.lora.data import read_samples
    from graftkit.lora.persona import PersonaScorer
    from test_lora import tiny_cfg
    from train_lora import load_for_training

    cfg = tiny_cfg(env["tiny"], env["data"], env["base"] / "direct", "contrast_pairs=8", "contrast_learning_rate=5e-2",
                   f"contrast_rejected={rejected}")
    loaded = load_for_training(cfg, "peft")
    convs = [s.messages for s in read_samples(env["data"])]
    persona = PersonaScorer(loaded.model, loaded.tokenizer, loaded.info, convs[:8], system_prompt="",
                            max_length=128, messages=20, seed=0)
    before = {k: v.clone() for k, v in get_peft_model_state_dict(loaded.model).items()}
    res = run_contrast(cfg, loaded, convs[8:], env["base"] / "direct", persona, gap_before)
    after = get_peft_model_state_dict(loaded.model)
    unchanged = all((before[k] == after[k]).all() for k in before)
    assert res["kept"] == (gap_before == float("-inf")) and unchanged == (not res["kept"])
    assert res["rejected"] == rejected and res["steps"] == 2 and res["last_margin"] is not None
    assert list(loaded.model.peft_config) == ["default"]


@pytest.mark.slow  # two whole runs in subprocesses (~30 s alone)
def test_sigterm_during_the_contrast_stage_keeps_the_supervised_run_and_the_next_run_redoes_the_stage(env, tmp_path):
    import re
    import signal
    import sys

    from test_preemption import signal_after_first

    out = tmp_path / "out"
    cmd = [sys.executable, "train_lora.py", "--config", "lora_config.yaml", f"base_model={env['tiny']}",
           f"data_file={env['data']}", f"output_dir={out}", "val_fraction=0.2", "max_seq_length=128", "batch_size=4",
           "gradient_checkpointing=false", "eval_steps=2", "save_steps=2", "eval_on_start=false",
           "persona_holdout=0.25", "persona_messages=50", "early_stopping_patience=0", "learning_rate=1e-2",
           "contrast_pairs=10", "save_formats=[lora]"]
    rc, stdout, stderr = signal_after_first(cmd, re.compile(r"contrast stage: 10 pairs"), signal.SIGTERM)
    assert rc == 143, (rc, stderr[-2000:])
    assert "SIGTERM: stopped during the contrast stage" in stderr and "Traceback" not in stderr
    assert not (out / "adapter").exists()  # nothing half-done is published
    ckpts = sorted(out.glob("checkpoint-*"))
    assert ckpts and not list((out / "contrast").glob("checkpoint-*"))  # the supervised run is all there
    import subprocess

    from test_preemption import ENV, ROOT

    p = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "nothing new was trained; the contrast stage runs on its kept adapter" in p.stderr + p.stdout
    import json

    meta = json.loads((out / "adapter" / "graftkit_lora.json").read_text())
    assert meta["selection"]["contrast"]["pairs"] == 10

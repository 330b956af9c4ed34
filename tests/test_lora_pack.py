"""LoRA packing and reproducibility on the tiny random Llama (CPU, seconds).

Packed rows must give every token exactly the logits it has alone (no token of one conversation
sees another) with the labels unchanged; the same seed must give the same adapter, and a resumed
run the same adapter as an uninterrupted one. Also the one-line errors of issue 14 (target_modules,
output_dir that is a file, a hub that never answers)."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from graftkit.errors import ConfigError, UserError
from graftkit.lora.data import IGNORE, PackedCollator, Sample, encode_samples, pack_rows, trim_tail
from test_lora import env, tiny_cfg, write_data  # noqa: F401  (env: the shared tiny Llama + data fixture)

CONVS = [
    [{"role": "user", "content": "movie tonight?"}, {"role": "assistant", "content": "sure, 8pm"},
     {"role": "user", "content": "cool"}],  # ends with the other person: a tail to trim
    [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "hey! pizza later?"}],
    [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "ok"},
     {"role": "assistant", "content": "ok lol"}, {"role": "user", "content": "tomorrow?"},
     {"role": "assistant", "content": "maybe tomorrow"}],
]


@pytest.fixture(scope="module")
def loaded(env):
    from train_lora import load_peft

    return load_peft(tiny_cfg(env["tiny"], env["data"], env["base"] / "unused"))


def test_trim_tail_keeps_every_label(loaded):
    rows, _ = encode_samples(loaded.tokenizer, [Sample("f", 1, c) for c in CONVS], loaded.info, 512, "truncate")
    before = [(r["input_ids"][:], r["labels"][:]) for r in rows]
    cut = trim_tail(rows)
    assert cut > 0 and len(rows[0]["input_ids"]) < len(before[0][0])  # "cool" and its turn are gone
    for (ids, labels), r in zip(before, rows):
        assert r["labels"][-1] != IGNORE
        assert r["input_ids"] == ids[:len(r["input_ids"])] and r["labels"] == labels[:len(r["labels"])]
        assert all(y == IGNORE for y in labels[len(r["labels"]):])


def test_packed_rows_see_only_their_own_conversation(loaded):
    import torch

    tok, info = loaded.tokenizer, loaded.info
    rows, _ = encode_samples(tok, [Sample("f", 1, c) for c in CONVS], info, 512, "truncate")
    trim_tail(rows)
    longest = max(len(r["input_ids"]) for r in rows)
    packed, st = pack_rows([dict(r) for r in rows], max_len=2 * longest)
    assert st.bins < len(rows) and sum(len(p["seq_lengths"]) for p in packed) == len(rows)
    batch = PackedCollator(tok.pad_token_id)(packed)
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == len(packed)

    model = loaded.model
    model.train()  # the training path: LoRA layers, no KV cache
    with torch.no_grad():  # LoRA B starts at zero: make the adapter part of the function under test
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
        packed_logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
        alone = {tuple(r["input_ids"]): model(input_ids=torch.tensor([r["input_ids"]]), use_cache=False).logits[0]
                 for r in rows}
    labels_by_ids = {tuple(r["input_ids"]): r["labels"] for r in rows}
    seen = 0
    for b, p in enumerate(packed):
        start = 0
        for n in p["seq_lengths"]:
            ids = tuple(batch["input_ids"][b, start:start + n].tolist())
            assert torch.allclose(packed_logits[b, start:start + n], alone[ids], atol=1e-5)
            # labels unchanged (the first token of a conversation is never a reply)
            assert batch["labels"][b, start:start + n].tolist() == labels_by_ids[ids]
            start += n
            seen += 1
        assert (batch["labels"][b, start:] == IGNORE).all()  # padding at the end of the row trains nothing
    assert seen == len(rows)

    # and changing conversation A leaves conversation B (packed after it) untouched
    b = next(i for i, p in enumerate(packed) if len(p["seq_lengths"]) > 1)
    n_a = packed[b]["seq_lengths"][0]
    other = {k: v.clone() for k, v in batch.items() if k != "labels"}
    other["input_ids"][b, :n_a] = (other["input_ids"][b, :n_a] + 7) % 300 + 5
    with torch.no_grad():
        changed = model(**other, use_cache=False).logits
    assert not torch.allclose(changed[b, :n_a], packed_logits[b, :n_a])
    assert torch.allclose(changed[b, n_a:], packed_logits[b, n_a:], atol=1e-6)


def test_flatten_joins_the_batch_into_one_row():
    batch = PackedCollator(0, flatten=True)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "seq_lengths": [2, 1]},
                                             {"input_ids": [8, 9], "labels": [-100, 9], "seq_lengths": [2]}])
    assert batch["position_ids"].tolist() == [[0, 1, 0, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 6, -100, -100, 9]]  # a row's first token has no predecessor
    padded = PackedCollator(0)([{"input_ids": [5, 6], "labels": [-100, 6]}, {"input_ids": [7], "labels": [7]}])
    assert padded["attention_mask"].tolist() == [[1, 1], [1, 0]]  # unpacked (validation) rows are padded


def adapter_state(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "adapter" / "adapter_model.safetensors")


def same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_adapter_and_resume_matches(env, monkeypatch):
    import train_lora as train_mod
    from train_lora import run

    common = ["val_fraction=0", "eval_on_start=false", "save_formats=[lora]", "learning_rate=5e-3", "max_steps=4",
              "contrast_pairs=0"]
    base = env["base"]
    s1 = run(tiny_cfg(env["tiny"], env["data"], base / "r1", *common))
    run(tiny_cfg(env["tiny"], env["data"], base / "r2", *common))
    assert s1["packing"] is True and s1["global_step"] == 4
    assert same(adapter_state(base / "r1"), adapter_state(base / "r2"))

    # Ctrl-C during step 2 (a real SIGINT): checkpoint-2 is saved, and the resumed run ends with the same
    # adapter as the uninterrupted one (optimizer, schedule, data order and RNG all restored)
    class CtrlCAtStep2(train_mod.StopOnInterrupt):
        def __init__(self):
            super().__init__()
            check = self.callback.on_step_end

            def on_step_end(args, state, control, **kw):
                if state.global_step == 2:
                    os.kill(os.getpid(), signal.SIGINT)
                return check(args, state, control, **kw)

            self.callback.on_step_end = on_step_end

    monkeypatch.setattr(train_mod, "StopOnInterrupt", CtrlCAtStep2)
    with pytest.raises(KeyboardInterrupt):
        run(tiny_cfg(env["tiny"], env["data"], base / "r4", *common, "save_steps=100"))
    monkeypatch.undo()
    assert sorted(p.name for p in (base / "r4").glob("checkpoint-*")) == ["checkpoint-2"]
    s4 = run(tiny_cfg(env["tiny"], env["data"], base / "r4", *common))
    assert s4["steps_this_run"] == 2 and s4["global_step"] == 4
    assert same(adapter_state(base / "r1"), adapter_state(base / "r4"))


def test_unknown_target_module_is_one_line(env):
    from train_lora import load_peft

    with pytest.raises(ConfigError, match=r"target_modules: 'nope' not in this model; its linear layers are .*q_proj"):
        load_peft(tiny_cfg(env["tiny"], env["data"], env["base"] / "x", "target_modules=[q_proj,nope]"))


def test_output_dir_that_is_a_file(env, tmp_path):
    from train_lora import run

    f = tmp_path / "out.txt"
    f.write_text("keep me")
    for out in (f, f / "sub"):
        with pytest.raises(ConfigError, match="is a file, not a folder"):
            run(tiny_cfg(env["tiny"], env["data"], out))
    assert f.read_text() == "keep me"


def test_hub_that_never_answers_times_out(monkeypatch, capsys, tmp_path):
    from huggingface_hub import constants

    from graftkit.lora.backend import check_hub

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)  # accepts connections, never answers
    try:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
        monkeypatch.setenv("GRAFTKIT_HUB_TIMEOUT", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        with pytest.raises(UserError, match=r"no answer in 1 s.*HF_HUB_OFFLINE=1.*local model folder"):
            check_hub("someorg/never-answers")
    finally:
        server.close()
    assert "fetching someorg/never-answers from http://127.0.0.1" in capsys.readouterr().out


def test_unsloth_with_several_processes_and_packing_rules(monkeypatch):
    from types import SimpleNamespace

    from graftkit.lora.backend import select_backend
    from graftkit.lora.train import resolve_packing

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="one GPU only.*backend: peft"):
        select_backend("unsloth")
    assert select_backend("auto") == "peft"
    assert resolve_packing(SimpleNamespace(packing="auto"), "unsloth") is False
    assert resolve_packing(SimpleNamespace(packing="auto"), "peft") is True
    assert resolve_packing(SimpleNamespace(packing=False), "peft") is False
    with pytest.raises(ConfigError, match="packing: true is not supported with backend unsloth"):
        resolve_packing(SimpleNamespace(packing=True), "unsloth")

"""The reply-only LM head (graftkit.lora.train.reply_only_loss) on the tiny random Llama (CPU, seconds).

On CPU train_lora.py projects only the labelled positions through the LM head. That must be the
same loss, with the same gradients, as the full-vocabulary computation transformers does over every
position, on packed rows (several conversations per row, position ids restarting) and on padded
validation rows, with and without the Trainer's `num_items_in_batch`."""

from __future__ import annotations

import pytest

from graftkit.lora.data import IGNORE, PackedCollator, Sample, encode_samples, pack_rows, trim_tail
from graftkit.lora.train import reply_only_loss
from test_lora import tiny_cfg, write_data
from test_lora_pack import CONVS
from tiny_llama import make_tiny_llama


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, one_torch_thread):
    from train_lora import load_peft

    base = tmp_path_factory.mktemp("lora_head")
    cfg = tiny_cfg(make_tiny_llama(base / "tiny"), write_data(base / "data.jsonl"), base / "unused")
    loaded = load_peft(cfg)
    import torch

    with torch.no_grad():  # LoRA B starts at zero: give the adapter a real part in the function under test
        for name, p in loaded.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    loaded.model.train()
    return loaded


def batches(loaded):
    tok, info = loaded.tokenizer, loaded.info
    rows, _ = encode_samples(tok, [Sample("f", 1, c) for c in CONVS * 2], info, 512, "truncate")
    trim_tail(rows)
    longest = max(len(r["input_ids"]) for r in rows)
    packed, _ = pack_rows([dict(r) for r in rows], max_len=2 * longest)
    collate = PackedCollator(tok.pad_token_id)
    return {"packed": collate(packed), "padded": collate([{k: r[k] for k in ("input_ids", "labels")} for r in rows])}


def grads_of(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("kind", ["packed", "padded"])
@pytest.mark.parametrize("num_items", [None, 37])
def test_reply_only_loss_equals_the_full_computation(loaded, kind, num_items):
    import torch

    model, batch = loaded.model, batches(loaded)[kind]
    assert (batch["labels"] != IGNORE).sum() > 10 and (batch["labels"] == IGNORE).sum() > 10  # a real mask
    fwd = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**fwd, use_cache=False).logits  # every position, the whole vocabulary
    y = batch["labels"][:, 1:]
    full = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), y.flatten(), ignore_index=IGNORE,
                                             reduction="sum")
    full = full / (num_items if num_items is not None else int((y != IGNORE).sum()))
    g_full = grads_of(model, full)
    ours = reply_only_loss(model, dict(batch), torch.tensor(num_items) if num_items is not None else None)
    g_ours = grads_of(model, ours)
    assert abs(ours.item() - full.item()) < 1e-5
    assert g_full.keys() == g_ours.keys() and len(g_full) > 0
    for n in g_full:
        assert torch.allclose(g_ours[n], g_full[n], atol=1e-5, rtol=1e-4), n
    assert any(float(g.abs().max()) > 1e-4 for g in g_full.values())  # the gradients are not all zero


def test_only_reply_tokens_move_the_loss(loaded):
    """Changing a token that no label follows (another person's turn) changes the loss only through context."""
    import torch

    batch = batches(loaded)["padded"]
    with torch.no_grad():
        base = float(reply_only_loss(loaded.model, dict(batch)))
        other = dict(batch, labels=batch["labels"].clone())
        first = int((batch["labels"][0] != IGNORE).nonzero()[0])
        other["labels"][0, first] = IGNORE  # one reply token fewer
        assert float(reply_only_loss(loaded.model, other)) != base


def test_checkpointing_auto_follows_the_memory_a_step_needs(monkeypatch):
    """auto: off on CPU when a step's estimated activations fit in a quarter of free memory, else on; CUDA: on."""
    from types import SimpleNamespace

    from graftkit.config import load_config
    from graftkit.lora import train
    from graftkit.lora.config import LoraTrainConfig
    from test_lora import ROOT

    smol = SimpleNamespace(num_hidden_layers=30, hidden_size=576, intermediate_size=1536)
    model = SimpleNamespace(config=SimpleNamespace(get_text_config=lambda: smol))
    cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", ["max_seq_length=1024"])
    assert cfg.gradient_checkpointing == "auto"  # the shipped default
    need = 2 * 1024 * 4 * 30 * (12 * 576 + 4 * 1536)  # two rows of 1024 tokens: ~3.2 GB
    monkeypatch.setattr(train, "available_memory", lambda: 16 << 30)
    assert train.resolve_checkpointing(cfg, model, cuda=False, rows_per_step=2) is False
    assert train.resolve_checkpointing(cfg, model, cuda=True, rows_per_step=2) is True
    monkeypatch.setattr(train, "available_memory", lambda: 4 * need - 1)
    assert train.resolve_checkpointing(cfg, model, cuda=False, rows_per_step=2) is True
    assert train.resolve_checkpointing(cfg, model, cuda=False, rows_per_step=1) is False
    cfg.gradient_checkpointing = False  # an explicit choice wins
    monkeypatch.setattr(train, "available_memory", lambda: 0)
    assert train.resolve_checkpointing(cfg, model, cuda=False, rows_per_step=2) is False

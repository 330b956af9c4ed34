"""KV-cache sampling: the cached path gives exactly the tokens (and allclose logits) of re-running the
cropped context every step, for prompts shorter and longer than block_size, greedy and sampled."""

from __future__ import annotations

import pytest
import torch

from graftkit.tiny_gpt.generate import generate
from graftkit.tiny_gpt.model import KVCache, ModelArgs, TinyGPT

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BLOCKS = ["gpt2", "modern"]


def random_model(block: str, seed: int = 0) -> TinyGPT:
    torch.manual_seed(seed)
    extra = {} if block == "gpt2" else {"block": block}
    model = TinyGPT(ModelArgs(vocab_size=61, block_size=24, n_layer=2, n_head=2, n_embd=32, **extra)).eval()
    with torch.no_grad():  # zero-init projections/head would make every logit equal: randomise everything
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def no_cache_generate(model: TinyGPT, ids: list[int], n: int, temperature: float, top_k: int,
                      generator: torch.Generator | None) -> tuple[list[int], list[torch.Tensor]]:
    """The sampler before the cache: the whole cropped context through the model for every token."""
    from graftkit.tiny_gpt.generate import sample_next

    ctx, out, logits_seen = list(ids), [], []
    with torch.no_grad():
        for _ in range(n):
            logits, _ = model(torch.tensor([ctx[-model.args.block_size:]]))
            logits_seen.append(logits[0, -1])
            nxt = sample_next(logits[0, -1], temperature, top_k, generator)
            out.append(nxt)
            ctx.append(nxt)
    return out, logits_seen


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("prompt_len", [1, 23, 40])  # 40 > block_size 24: re-prefills every step
@pytest.mark.parametrize("temperature,top_k", [(0.0, 0), (0.9, 5)])
def test_cached_tokens_equal_uncached(block, prompt_len, temperature, top_k):
    model = random_model(block)
    prompt = torch.randint(0, 61, (prompt_len,), generator=torch.Generator().manual_seed(prompt_len)).tolist()
    want, _ = no_cache_generate(model, prompt, 30, temperature, top_k, torch.Generator().manual_seed(3))
    got = generate(model, prompt, 30, temperature, top_k, generator=torch.Generator().manual_seed(3))
    assert got == want


@pytest.mark.parametrize("block", BLOCKS)
def test_cached_logits_match_full_forward_every_step(block):
    model = random_model(block, seed=1)
    ids = torch.randint(0, 61, (1, 24), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        full, _ = model(ids)
        cache = KVCache(model.args.n_layer)
        first, _ = model(ids[:, :9], cache=cache)  # prefill 9 tokens, then one at a time
        steps = [first] + [model(ids[:, t:t + 1], cache=cache)[0] for t in range(9, 24)]
        # and a multi-token chunk after a cached prefix (the offset causal mask)
        cache2 = KVCache(model.args.n_layer)
        model(ids[:, :5], cache=cache2)
        chunk, _ = model(ids[:, 5:12], cache=cache2)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunk, full[:, 5:12], rtol=1e-5, atol=1e-5)
    assert cache.pos == 24
    with pytest.raises(ValueError, match="block_size"):
        model(ids[:, :1], cache=cache)  # a 25th position does not exist


@pytest.mark.parametrize("block", BLOCKS)
def test_generate_stops_and_restores_training_mode(block):
    model = random_model(block).train()
    want, _ = no_cache_generate(model.eval(), [1, 2, 3], 20, 0.0, 0, None)
    model.train()
    stop = want[5]
    got = generate(model, [1, 2, 3], 20, temperature=0.0, stop_ids=(stop,))
    assert got == want[:want.index(stop)]
    assert model.training


def test_sampler_draws_each_row_from_its_own_distribution_and_generator():
    """sample_rows (the kit's one sampler, inverse CDF): a batch of rows gets exactly the tokens each row
    gets alone with the same generator, the draws follow softmax(logits / T), top-k never leaves the k most
    likely tokens, and temperature 0 is argmax."""
    from graftkit.tiny_gpt.generate import sample_next, sample_rows

    torch.manual_seed(0)
    logits = torch.randn(6, 300) * 3
    batch = sample_rows(logits, 0.8, 0, [torch.Generator().manual_seed(s) for s in range(6)])
    assert batch == [sample_next(logits[r], 0.8, 0, torch.Generator().manual_seed(r)) for r in range(6)]
    assert sample_rows(logits, 0.0, 0, [None] * 6) == logits.argmax(-1).tolist()

    row = torch.tensor([2.0, 1.0, 0.0, -1.0, -30.0])
    gen = torch.Generator().manual_seed(1)
    draws = torch.tensor([sample_next(row, 1.0, 0, gen) for _ in range(20000)])
    freq = torch.bincount(draws, minlength=5).double() / len(draws)
    want = torch.softmax(row.double(), 0)
    assert torch.allclose(freq, want, atol=0.012) and freq[4] == 0  # binomial sd at 20 k draws <= 0.0035
    top2 = {sample_next(row, 5.0, 2, gen) for _ in range(2000)}  # a high temperature spreads the mass
    assert top2 == {0, 1}

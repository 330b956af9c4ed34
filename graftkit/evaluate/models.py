"""What the evaluation needs from a model, and adapters for the kit's two model families.

`ReplyModel` is the whole contract:
- `score(items)`: for each (context, text, role) the summed NLL (nats) of `text` spoken by `role`
  after the context, and the number of scored tokens. role "assistant" = the person, "user" = a
  partner. All items go through the model in padded batches (one forward per batch, no per-token
  Python loop), which is what makes the 3,000-odd sequences of one evaluation fast.
- `generate(context, seed, role)`: a reply of its own, as the person (or, role="user", as a partner).
Contexts are lists of `{"role", "content"}` turns as in graftkit.samples (assistant = the person).

Adapters:
- `HFChatModel`: a transformers causal LM + tokenizer with a chat template, optionally a PEFT model
  whose adapter can be switched off (base = same weights, adapter disabled). The prompt is the
  context rendered up to where `role`'s turn starts; the scored tokens are the text as the template
  renders it plus the end-of-turn token, i.e. exactly the tokens the model would have to generate.
- `TinyGPTModel` / `UnigramModel`: see graftkit/evaluate/tiny.py.

Sampling is graftkit.tiny_gpt.generate.sample_next (the kit's one top-k sampler) with a
`torch.Generator` seeded per context, so a run is reproducible and base and tuned models draw from
the same random stream for the same context; temperature 0 means greedy.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Protocol, Sequence

import torch

from ..tiny_gpt.generate import sample_next

Turn = dict[str, str]
Item = tuple[Sequence[Turn], str, str]  # (context, text, role speaking the text)


class ReplyModel(Protocol):
    name: str
    # trained on both sides' turns, so its replies as the partner are as trained as its replies as the person
    # (authorship's control, core.run_evaluation); an adapter without it counts as trained on both
    symmetric_roles: bool

    def score(self, items: Sequence[Item]) -> list[tuple[float, int]]:
        """[(sum of the NLL, in nats, of each text's tokens given its context and speaker; token count)]."""
        ...

    def generate(self, context: Sequence[Turn], seed: int = 0, role: str = "assistant") -> str:
        """A reply to the context spoken by `role`, as plain text (no markers, no end-of-turn token).
        Adapters count the replies cut at max_new_tokens in `hit_limit`."""
        ...


def sample_token(logits: torch.Tensor, temperature: float, generator: torch.Generator | None,
                 top_k: int = 0) -> int:
    """graftkit.tiny_gpt.generate.sample_next, argument order kept for the adapters."""
    return sample_next(logits, temperature, top_k, generator)


def make_generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(seed) % (2**63))


def continuation_nll(logits: torch.Tensor, prefix_len: int, target: Sequence[int]) -> float:
    """Sum NLL of `target` given logits of the sequence prefix + target ([T, V], T = prefix + target).

    Position t's logits predict token t + 1, so target token j is scored by row prefix_len - 1 + j.
    """
    rows = logits[prefix_len - 1: prefix_len - 1 + len(target)].float()
    logp = torch.log_softmax(rows, dim=-1)
    idx = torch.tensor(list(target), dtype=torch.long, device=rows.device).unsqueeze(1)
    return float(-logp.gather(1, idx).sum())


@torch.no_grad()
def batched_nll(forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                seqs: Sequence[tuple[list[int], list[int]]], *, max_tokens: int, pad_id: int = 0,
                device: torch.device | str = "cpu", progress: Callable[[int], None] | None = None,
                ) -> list[tuple[float, int]]:
    """Summed NLL of each target given its prompt, for many (prompt ids, target ids) pairs at once.

    Sequences are sorted by length (less padding) and packed into right-padded batches of at most
    `max_tokens` tokens; `forward(ids [B, T], mask [B, T], keep [B, T]) -> logits [keep.sum(), V]` runs once
    per batch and returns the logits of the kept (scored) positions only, in row-major order: the LM head
    and the softmax over the vocabulary then run on the text's tokens, not on the whole context.
    Right padding never changes a causal model's logits at the real positions, so each result equals
    scoring the sequence alone. Results come back in input order.
    """
    order = sorted(range(len(seqs)), key=lambda i: (len(seqs[i][0]) + len(seqs[i][1]), i))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(seqs)
    start = 0
    while start < len(order):
        longest = len(seqs[order[start]][0]) + len(seqs[order[start]][1])
        end = start + 1
        while end < len(order):  # grow the batch while (size x longest sequence) fits the budget
            longest_next = len(seqs[order[end]][0]) + len(seqs[order[end]][1])
            if (end - start + 1) * longest_next > max_tokens:
                break
            longest, end = longest_next, end + 1
        batch = [seqs[i] for i in order[start:end]]
        ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        target = torch.full((len(batch), longest), -1, dtype=torch.long)  # target[t] = token t + 1, -1 = unscored
        for b, (p, t) in enumerate(batch):
            ids[b, :len(p) + len(t)] = torch.tensor(p + t, dtype=torch.long)
            target[b, len(p) - 1: len(p) - 1 + len(t)] = torch.tensor(t, dtype=torch.long)
        mask = (torch.arange(longest).unsqueeze(0) < torch.tensor([len(p) + len(t) for p, t in batch]).unsqueeze(1))
        scored = target >= 0
        logits = forward(ids.to(device), mask.to(device), scored.to(device)).float().cpu()
        logp = torch.log_softmax(logits, dim=-1).gather(1, target[scored].unsqueeze(1)).squeeze(1)
        per_seq = torch.zeros(len(batch), dtype=torch.float64).index_add_(
            0, scored.nonzero()[:, 0], -logp.double())
        for b, i in enumerate(order[start:end]):
            out[i] = (float(per_seq[b]), len(batch[b][1]))
        if progress:
            progress(end - start)
        start = end
    return out


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def _cache_kwarg(model: Any) -> str:
    """transformers >= 5.2x calls the KV-cache argument `cache`; earlier 5.x `past_key_values`."""
    import inspect

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        params = inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def _output_cache(res: Any) -> Any:
    cache = getattr(res, "cache", None)
    return cache if cache is not None else getattr(res, "past_key_values", None)


SENTINEL = "\u2063graftkit-turn\u2063"  # an invisible separator no real message contains


class HFChatModel:
    """A transformers chat model as a ReplyModel.

    use_adapter=False on a PEFT model runs it with the adapter disabled (the base model), so base and
    tuned share one copy of the weights. template_kwargs go to apply_chat_template (e.g. a fixed
    date_string for Llama 3.x templates); `render(tokenizer, turns, add_generation_prompt=...)`
    replaces apply_chat_template entirely (the LoRA pipeline passes its own, so evaluation renders
    exactly as training did), and `eot` names the end-of-turn token (found by rendering a probe
    conversation when not given). max_length caps prompt + reply tokens: for scoring the prompt is cut
    from the left; for generation the oldest non-system turns are dropped until the prompt fits.
    """

    symmetric_roles = False  # graftkit's LoRA learns the assistant (person) turns only

    def __init__(self, model: Any, tokenizer: Any, *, name: str, use_adapter: bool = True,
                 max_new_tokens: int = 64, temperature: float = 0.8, top_k: int = 0, max_length: int = 1024,
                 template_kwargs: dict[str, Any] | None = None,
                 render: Callable[..., str] | None = None, eot: str | None = None, batch_tokens: int = 2048):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.use_adapter = use_adapter
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.max_length = max_length
        self.batch_tokens = batch_tokens  # tokens per scoring batch (logits are batch x vocab floats each)
        self.template_kwargs = dict(template_kwargs or {})
        self._render_fn = render
        self.device = _model_device(model)
        self._cache_kw = _cache_kwarg(model)
        if not eot:  # the token a rendered assistant reply ends with, as the LoRA pipeline finds it
            from ..lora.data import probe_eot

            eot = probe_eot(tokenizer, self.template_kwargs, tokenizer.eos_token)
        self.eot = eot
        self.stop_ids = self._stop_ids()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # padding and finished rows
        self.hit_limit = 0  # generated replies cut at max_new_tokens
        self._keep_mask_ok = True  # the model's forward takes a boolean logits_to_keep (transformers >= 5)
        self._packing_ok = True  # the model's forward takes a 4-D attention mask (graftkit.evaluate.packing)
        self._fast_decode_ok = True  # its cache is a list of plain layers (graftkit.evaluate.decoding)

    # ---- rendering -------------------------------------------------------------------------------
    def render(self, turns: Sequence[Turn], add_generation_prompt: bool) -> str:
        if self._render_fn is not None:
            return self._render_fn(self.tokenizer, list(turns), add_generation_prompt=add_generation_prompt)
        return self.tokenizer.apply_chat_template(list(turns), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt,
                                                  **self.template_kwargs)

    def _stop_ids(self) -> set[int]:
        ids = set()
        for tok in {self.eot, self.tokenizer.eos_token}:
            if tok:
                tid = self.tokenizer.convert_tokens_to_ids(tok)
                if isinstance(tid, int) and tid >= 0 and tid != getattr(self.tokenizer, "unk_token_id", None):
                    ids.add(tid)
        return ids

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def reply_text(self, context: Sequence[Turn], reply: str) -> str:
        """The reply as the template renders it after the generation prompt, ending with the end-of-turn token."""
        prompt = self.render(context, add_generation_prompt=True)
        full = self.render(list(context) + [{"role": "assistant", "content": reply}], add_generation_prompt=False)
        if full.startswith(prompt):
            tail = full[len(prompt):]
            body = tail.find(reply.strip())
            start = body + len(reply.strip()) if body >= 0 else 0
            cut = tail.find(self.eot, start) if self.eot else -1
            if cut >= 0:
                return tail[:cut + len(self.eot)]
        return reply + (self.eot or "")

    def _fit(self, context: Sequence[Turn], reserve: int) -> tuple[list[Turn], list[int]]:
        """Drop the oldest non-system turns until the prompt + `reserve` tokens fit in max_length."""
        ctx = list(context)
        while True:
            ids = self._encode(self.render(ctx, add_generation_prompt=True))
            non_system = [i for i, t in enumerate(ctx) if t["role"] != "system"]
            if len(ids) + reserve <= self.max_length or len(non_system) <= 1:
                return ctx, ids
            del ctx[non_system[0]]

    def _adapter_ctx(self):
        if not self.use_adapter and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    def _split(self, context: Sequence[Turn], text: str, role: str) -> tuple[list[int], list[int]]:
        """(prompt ids, scored ids) for `text` spoken by `role` after `context`."""
        if role == "assistant" and context:
            prompt = self.render(context, add_generation_prompt=True)
            return self._encode(prompt), self._encode(self.reply_text(context, text))
        full = self.render(list(context) + [{"role": role, "content": SENTINEL}], add_generation_prompt=False)
        cut = full.find(SENTINEL)
        if cut < 0:
            raise ValueError("the chat template dropped the turn's content")
        tail = full[cut + len(SENTINEL):]
        end = tail.find(self.eot) if self.eot else -1
        suffix = tail[:end + len(self.eot)] if end >= 0 else (self.eot or "")
        return self._encode(full[:cut]), self._encode(text + suffix)

    def _fit_ids(self, prompt: list[int], target: list[int]) -> tuple[list[int], list[int]]:
        """Cut the prompt from the left (and a huge text from the right) to fit max_length.

        The cut is rounded up to a multiple of half of max_length: the prompts of one long conversation
        are then cut at the same few points and stay nested between them (each keeps at least
        max_length / 2 - len(text) tokens of context), so `score` still packs them under one trunk."""
        target = target[: max(1, self.max_length - 1)]
        over = len(prompt) + len(target) - self.max_length
        if over > 0:
            hop = max(1, self.max_length // 2)
            cut = -(-over // hop) * hop
            prompt = prompt[cut:] if cut < len(prompt) else (prompt[-(self.max_length - len(target)):] or prompt[-1:])
        return prompt, target

    def _logits(self, keep: torch.Tensor, **inputs: Any) -> torch.Tensor:
        """The logits of the `keep` [B, T] positions only, [keep.sum(), V]: transformers' boolean `logits_to_keep`
        runs the LM head (a fifth of SmolLM2-135M's weights) on those rows alone. A model whose forward does
        not take it gets the full logits, indexed here."""
        if self._keep_mask_ok:
            try:
                logits = self.model(**inputs, logits_to_keep=keep).logits
                return logits if logits.dim() == 2 else logits[keep]
            except (TypeError, IndexError, RuntimeError):
                self._keep_mask_ok = False
        return self.model(**inputs).logits[keep]

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        with self._adapter_ctx():
            return self._logits(keep, input_ids=ids, attention_mask=mask.long(), use_cache=False)

    def _can_pack(self) -> bool:
        """Packed scoring passes its own 4-D attention mask, which transformers uses as given: a model whose
        attention is limited to a sliding window shorter than max_length would lose that limit, so it is
        scored unpacked (batched_nll)."""
        cfg = getattr(self.model, "config", None)
        window = getattr(cfg, "sliding_window", None)
        return not (window and getattr(cfg, "use_sliding_window", True) and window < self.max_length)

    @torch.no_grad()
    def score(self, items: Sequence[Item], progress: Callable[[int], None] | None = None) -> list[tuple[float, int]]:
        """Summed NLL of every item, scored as trees packed into rows (graftkit.evaluate.packing): each text
        attends to its own prompt, and the prompts of one conversation (nested), or the 10 candidates of
        one context (shared), run once. On 2 CPU cores SmolLM2-135M computes ~400 tokens/s and each forward
        costs ~0.1 s on top, so what matters is reading each context once, in few large forwards. Equal
        to scoring each item alone up to float rounding."""
        from .packing import pack_units, score_packed

        seqs = [self._fit_ids(*self._split(ctx, text, role)) for ctx, text, role in items]
        pad = self.pad_id
        with self._adapter_ctx():
            if self._packing_ok and self._can_pack():
                units = pack_units(seqs, row_tokens=max(self.max_length, self.batch_tokens // 2))
                dtype = getattr(self.model, "dtype", None)  # the compute dtype (a 4-bit model's weights are uint8)
                try:
                    return score_packed(self._logits, units, len(seqs), batch_tokens=self.batch_tokens, pad_id=pad,
                                        device=self.device, progress=progress,
                                        dtype=dtype if dtype is not None and dtype.is_floating_point else torch.float32)
                except (TypeError, ValueError, RuntimeError, IndexError) as e:  # a model that rejects a 4-D mask
                    self._packing_ok = False
                    from ..errors import notice

                    notice(f"packed scoring is not supported by this model ({str(e).splitlines()[0][:120]}); "
                           "scoring each text with its full prompt (slower)")
            return batched_nll(self._forward, seqs, max_tokens=self.batch_tokens, pad_id=pad, device=self.device,
                               progress=progress)

    def reply_nll(self, context: Sequence[Turn], reply: str) -> tuple[float, int]:
        return self.score([(context, reply, "assistant")])[0]

    def _prompt_ids(self, context: Sequence[Turn], role: str) -> list[int]:
        if role == "assistant":
            _, prompt_ids = self._fit(context, self.max_new_tokens)
        else:
            prompt_ids = self._split(context, "", role)[0]
        return prompt_ids[-max(1, self.max_length - self.max_new_tokens):]

    @torch.no_grad()
    def generate(self, context: Sequence[Turn], seed: int = 0, role: str = "assistant") -> str:
        return self.generate_batch([context], [seed], role)[0]

    @torch.no_grad()
    def generate_batch(self, contexts: Sequence[Sequence[Turn]], seeds: Sequence[int], role: str = "assistant",
                       progress: Callable[[int], None] | None = None) -> list[str]:
        """One reply per context. Contexts are sorted by prompt length and decoded together in batches (see
        graftkit.evaluate.decoding): up to 128 contexts whose prompt + reply tokens fit 16 x batch_tokens, their
        prompts prefilled in groups of batch_tokens. A decoding step has a fixed cost (~0.1 s for SmolLM2-135M on
        2 CPU cores) plus reading the cache, so few large batches win once the cache stops copying itself every
        step (transformers' default cache did, which is why batches of 4 x batch_tokens were the best before):
        100 of the sample's contexts took 204 s before and 139 s now, the same replies
        (`bench/bench_eval_scoring.py --generation`). Each context samples from its own generator seeded with its seed, so its reply does not depend on the
        batch it lands in (up to float rounding of the padded matmuls); the batches depend only on the
        contexts, so reruns are identical."""
        from .decoding import decode, preallocated_cache_supported

        fast = self._fast_decode_ok and preallocated_cache_supported() and self._can_pack()
        budget, max_rows = (16 * self.batch_tokens, 128) if fast else (4 * self.batch_tokens, 64)
        prompts = [self._prompt_ids(c, role) for c in contexts]
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
        out: list[str] = [""] * len(prompts)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and end - start < max_rows and \
                    (end - start + 1) * (len(prompts[order[end]]) + self.max_new_tokens) <= budget:
                end += 1
            idx = order[start:end]
            texts = None
            if fast:
                try:
                    with self._adapter_ctx():
                        ids, hit = decode(self._step, [prompts[i] for i in idx], [make_generator(seeds[i]) for i in idx],
                                          max_new_tokens=self.max_new_tokens, stop_ids=self.stop_ids,
                                          pad_id=self.pad_id, temperature=self.temperature, top_k=self.top_k,
                                          prefill_tokens=self.batch_tokens, device=self.device, progress=progress)
                    self.hit_limit += hit
                    texts = [self.tokenizer.decode(o, skip_special_tokens=True).strip() for o in ids]
                except (AttributeError, TypeError, ValueError, RuntimeError, IndexError) as e:  # a cache of its own
                    fast = self._fast_decode_ok = False
                    from ..errors import notice

                    notice(f"batched sampling with a preallocated cache failed for this model "
                           f"({str(e).splitlines()[0][:120]}); using transformers' cache (slower)")
            if texts is None:
                texts = self._decode([prompts[i] for i in idx], [seeds[i] for i in idx])
                if progress:
                    progress(len(idx))
            for i, text in zip(idx, texts):
                out[i] = text
            start = end
        return out

    def _step(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """One forward for graftkit.evaluate.decoding: the last position's logits and the cache."""
        res = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                         **{self._cache_kw: cache})
        return res.logits[:, -1], _output_cache(res)

    def _decode(self, prompts: list[list[int]], seeds: Sequence[int]) -> list[str]:
        """Left-padded batch decoding with transformers' own cache (models graftkit.evaluate.decoding does not
        handle: sliding-window attention, older transformers); stops when every context has ended its turn."""
        gens = [make_generator(s) for s in seeds]
        from .decoding import left_padded, next_tokens

        n, width = len(prompts), max(len(p) for p in prompts)
        pad = self.pad_id
        ids, mask = left_padded(prompts, width, pad)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        out: list[list[int]] = [[] for _ in prompts]
        done = [False] * n
        past = None
        with self._adapter_ctx():
            for _ in range(self.max_new_tokens):
                res = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                 position_ids=pos.to(self.device), use_cache=True, logits_to_keep=1,
                                 **{self._cache_kw: past})
                past = _output_cache(res)
                logits = res.logits[:, -1].float().cpu()
                step, _, _ = next_tokens(logits, range(n), done, out, gens, temperature=self.temperature,
                                         top_k=self.top_k, stop_ids=self.stop_ids, pad_id=pad)
                if all(done):
                    break
                ids = torch.tensor(step, dtype=torch.long).unsqueeze(1)
                mask = torch.cat([mask, torch.ones((n, 1), dtype=torch.long)], dim=1)
                pos = pos[:, -1:] + 1
        self.hit_limit += done.count(False)
        return [self.tokenizer.decode(o, skip_special_tokens=True).strip() for o in out]

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
SWAP = {"user": "assistant", "assistant": "user"}


class ReplyModel(Protocol):
    name: str

    def score(self, items: Sequence[Item]) -> list[tuple[float, int]]:
        """[(sum of the NLL, in nats, of each text's tokens given its context and speaker; token count)]."""
        ...

    def generate(self, context: Sequence[Turn], seed: int = 0, role: str = "assistant") -> str:
        """A reply to the context spoken by `role`, as plain text (no markers, no end-of-turn token).
        Adapters count the replies cut at max_new_tokens in `hit_limit`."""
        ...


def swap_roles(turns: Sequence[Turn]) -> list[Turn]:
    """The conversation with the person and the partner swapped (system turns kept): a partner's
    message, scored as the person's reply in the swapped conversation, is a real reply in a real
    context exactly as the person's own replies are."""
    return [{"role": SWAP.get(t["role"], t["role"]), "content": t["content"]} for t in turns]


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
def batched_nll(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                seqs: Sequence[tuple[list[int], list[int]]], *, max_tokens: int, pad_id: int = 0,
                device: torch.device | str = "cpu", progress: Callable[[int], None] | None = None,
                ) -> list[tuple[float, int]]:
    """Summed NLL of each target given its prompt, for many (prompt ids, target ids) pairs at once.

    Sequences are sorted by length (less padding) and packed into right-padded batches of at most
    `max_tokens` tokens; `forward(ids [B, T], mask [B, T]) -> logits [B, T, V]` runs once per batch.
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
        logits = forward(ids.to(device), mask.to(device)).float().cpu()
        scored = target >= 0
        logp = torch.log_softmax(logits[scored], dim=-1).gather(1, target[scored].unsqueeze(1)).squeeze(1)
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
        self.hit_limit = 0  # generated replies cut at max_new_tokens

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
        """Cut the prompt from the left (and a huge text from the right) to fit max_length."""
        target = target[: max(1, self.max_length - 1)]
        prompt = prompt[-(self.max_length - len(target)):] or prompt[-1:]
        return prompt, target

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with self._adapter_ctx():
            return self.model(input_ids=ids, attention_mask=mask.long()).logits

    # ---- ReplyModel ------------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, items: Sequence[Item], progress: Callable[[int], None] | None = None) -> list[tuple[float, int]]:
        seqs = [self._fit_ids(*self._split(ctx, text, role)) for ctx, text, role in items]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        return batched_nll(self._forward, seqs, max_tokens=self.batch_tokens, pad_id=pad, device=self.device,
                           progress=progress)

    def reply_nll(self, context: Sequence[Turn], reply: str) -> tuple[float, int]:
        return self.score([(context, reply, "assistant")])[0]

    @torch.no_grad()
    def generate(self, context: Sequence[Turn], seed: int = 0, role: str = "assistant") -> str:
        gen = make_generator(seed)
        if role == "assistant":
            _, prompt_ids = self._fit(context, self.max_new_tokens)
        else:
            prompt_ids = self._split(context, "", role)[0]
        prompt_ids = prompt_ids[-max(1, self.max_length - self.max_new_tokens):]
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        out: list[int] = []
        past = None
        with self._adapter_ctx():
            for _ in range(self.max_new_tokens):
                res = self.model(input_ids=ids, use_cache=True, **{self._cache_kw: past})
                past = _output_cache(res)
                tok = sample_next(res.logits[0, -1].cpu(), self.temperature, self.top_k, gen)
                if tok in self.stop_ids:
                    break
                out.append(tok)
                ids = torch.tensor([[tok]], dtype=torch.long, device=self.device)
            else:
                self.hit_limit += 1
        return self.tokenizer.decode(out, skip_special_tokens=True).strip()

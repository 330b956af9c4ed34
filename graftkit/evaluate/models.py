"""What the evaluation needs from a model, and adapters for the kit's two model families.

`ReplyModel` is the whole contract: score the person's real reply given the preceding turns
(`reply_nll` -> summed NLL in nats and the number of scored tokens) and write a reply of its own
(`generate`). Contexts are lists of `{"role", "content"}` turns as in graftkit.samples (assistant =
the person).

Adapters:
- `HFChatModel`: a transformers causal LM + tokenizer with a chat template, optionally a PEFT model
  whose adapter can be switched off (base = same weights, adapter disabled). The prompt is the
  context rendered with `add_generation_prompt=True`; the scored tokens are the reply as the template
  renders it plus the end-of-turn token, i.e. exactly the tokens the model would have to generate.
- `TinyGPTModel` / `UnigramModel`: see graftkit/evaluate/tiny.py.

Sampling uses a `torch.Generator` seeded per context, so a run is reproducible and base and tuned
models draw from the same random stream for the same context; temperature 0 means greedy.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Protocol, Sequence

import torch

Turn = dict[str, str]


class ReplyModel(Protocol):
    name: str

    def reply_nll(self, context: Sequence[Turn], reply: str) -> tuple[float, int]:
        """(sum of the NLL, in nats, of the reply's tokens given the context; number of reply tokens)."""
        ...

    def generate(self, context: Sequence[Turn], seed: int = 0) -> str:
        """A reply to the context, as plain text (no markers, no end-of-turn token). Adapters count the
        replies cut at max_new_tokens in `hit_limit`."""
        ...


def sample_token(logits: torch.Tensor, temperature: float, generator: torch.Generator | None,
                 top_k: int = 0) -> int:
    """Greedy when temperature <= 0, otherwise a draw from softmax(logits / temperature), restricted
    to the top_k most likely tokens when top_k > 0."""
    logits = logits.float()
    if temperature <= 0:
        return int(torch.argmax(logits))
    if 0 < top_k < logits.numel():
        logits = logits.masked_fill(logits < torch.topk(logits, top_k).values[-1], float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


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


class HFChatModel:
    """A transformers chat model as a ReplyModel.

    use_adapter=False on a PEFT model runs it with the adapter disabled (the base model), so base and
    tuned share one copy of the weights. template_kwargs go to apply_chat_template (e.g. a fixed
    date_string for Llama 3.x templates); `render(tokenizer, turns, add_generation_prompt=...)`
    replaces apply_chat_template entirely (the LoRA pipeline passes its own, so evaluation renders
    exactly as training did), and `eot` names the end-of-turn token (found by rendering a probe
    conversation when not given). max_length caps prompt + reply tokens: the oldest non-system turns
    are dropped until the sequence fits.
    """

    def __init__(self, model: Any, tokenizer: Any, *, name: str, use_adapter: bool = True,
                 max_new_tokens: int = 64, temperature: float = 0.8, top_k: int = 0, max_length: int = 1024,
                 template_kwargs: dict[str, Any] | None = None,
                 render: Callable[..., str] | None = None, eot: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.use_adapter = use_adapter
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_k = top_k
        self.max_length = max_length
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

    # ---- ReplyModel ------------------------------------------------------------------------------
    @torch.no_grad()
    def reply_nll(self, context: Sequence[Turn], reply: str) -> tuple[float, int]:
        reply_ids = self._encode(self.reply_text(context, reply))
        reply_ids = reply_ids[: max(1, self.max_length - 1)]
        ctx, prompt_ids = self._fit(context, len(reply_ids))
        if len(prompt_ids) + len(reply_ids) > self.max_length:  # one huge turn: keep its end
            prompt_ids = prompt_ids[-(self.max_length - len(reply_ids)):]
        ids = torch.tensor([prompt_ids + reply_ids], dtype=torch.long, device=self.device)
        with self._adapter_ctx():
            logits = self.model(input_ids=ids).logits[0]
        return continuation_nll(logits, len(prompt_ids), reply_ids), len(reply_ids)

    @torch.no_grad()
    def generate(self, context: Sequence[Turn], seed: int = 0) -> str:
        gen = make_generator(seed)
        _, prompt_ids = self._fit(context, self.max_new_tokens)
        prompt_ids = prompt_ids[-max(1, self.max_length - self.max_new_tokens):]
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        out: list[int] = []
        past = None
        with self._adapter_ctx():
            for _ in range(self.max_new_tokens):
                res = self.model(input_ids=ids, use_cache=True, **{self._cache_kw: past})
                past = _output_cache(res)
                tok = sample_token(res.logits[0, -1].cpu(), self.temperature, gen, self.top_k)
                if tok in self.stop_ids:
                    break
                out.append(tok)
                ids = torch.tensor([[tok]], dtype=torch.long, device=self.device)
            else:
                self.hit_limit += 1
        return self.tokenizer.decode(out, skip_special_tokens=True).strip()

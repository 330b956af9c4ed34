"""The tiny GPT as a ReplyModel, and the unigram model that stands in for its "base".

Contexts are rendered as the training transcripts are (graftkit.corpus): `<|endoftext|>\\n` (how
every session after the first one starts in corpus_train.txt: the previous session's END line),
then `<|them|>text\\n` / `<|me|>text\\n` per turn (system turns dropped), then `<|me|>`.
The scored reply is the reply text plus its closing "\\n" (the tokens after `<|me|>` in the
transcript); whether the next marker is `<|them|>` or `<|endoftext|>` is not scored. The model
sees at most block_size tokens, so long contexts are cut from the start (see reply_nll).
Generation is graftkit.tiny_gpt.generate (the one `train_tiny_gpt.py --chat` uses): until the
model hands the turn back (`<|them|>`) or ends the session; a `<|me|>` inside the reply (several
messages in a row) becomes a line break.

Why a unigram "base": the tiny GPT is trained from scratch, so there is no pretrained model to
compare with, and a randomly initialised network (perplexity ≈ vocabulary size) is a straw man.
The unigram model knows exactly the token frequencies of the training corpus (add-one smoothed)
and nothing about order or context, so "tuned beats base" means the model learned more than which
tokens are common.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

from ..corpus import END, ME, THEM
from .models import Item, Turn, batched_nll, continuation_nll, make_generator, sample_token
from .target import Target
from ..tiny_gpt.config import TinyGPTConfig

ROLE_MARKER = {"user": THEM, "assistant": ME}


def render_context(context: Sequence[Turn], role: str = "assistant") -> str:
    """The transcript of the context up to and including the marker that opens `role`'s turn
    (`<|me|>` for the person, `<|them|>` for a partner)."""
    return END + "\n" + "".join(ROLE_MARKER[t["role"]] + t["content"] + "\n" for t in context
                         if t["role"] in ROLE_MARKER) + ROLE_MARKER[role]


def _clean(text: str) -> str:
    return text.replace(ME, "\n").replace(THEM, "").replace(END, "").strip("\n").strip()


class TinyGPTModel:
    """A trained graftkit tiny GPT (model + the tokenizer stored in its checkpoint)."""

    symmetric_roles = True  # trained on both sides' turns (<|me|> and <|them|>)

    def __init__(self, model: Any, tok: Any, *, name: str = "tuned", max_new_tokens: int = 64,
                 temperature: float = 0.8, top_k: int = 0, device: str | torch.device = "cpu"):
        self.model, self.tok, self.name = model, tok, name
        self.max_new_tokens, self.temperature, self.top_k = max_new_tokens, temperature, top_k
        self.device = device
        self.block_size = model.args.block_size
        self.batch_tokens = 16384  # tokens per scoring batch
        self.hit_limit = 0

    def _ids(self, context: Sequence[Turn], reply: str, role: str = "assistant") -> tuple[list[int], list[int]]:
        return self.tok.encode(render_context(context, role)), self.tok.encode(reply + "\n")

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.model(ids)[0][keep]  # causal: right padding cannot reach the real positions

    @torch.no_grad()
    def score(self, items: Sequence[Item], progress: Any = None) -> list[tuple[float, int]]:
        """Batched: the prompt is cut from the left so prompt + text fit block_size. A text longer than
        block_size - 1 tokens is scored alone, in chunks (see reply_nll)."""
        pairs = [self._ids(ctx, text, role) for ctx, text, role in items]
        fits = [i for i, (_, t) in enumerate(pairs) if len(t) < self.block_size]
        seqs = [(pairs[i][0][-(self.block_size - len(pairs[i][1])):], pairs[i][1]) for i in fits]
        out: list[tuple[float, int]] = [(0.0, 0)] * len(items)
        for i, res in zip(fits, batched_nll(self._forward, seqs, max_tokens=self.batch_tokens, device=self.device,
                                            progress=progress)):
            out[i] = res
        for i in sorted(set(range(len(items))) - set(fits)):
            out[i] = self._chunked_nll(*pairs[i])
            if progress:
                progress(1)
        return out

    def _chunked_nll(self, prompt: list[int], target: list[int]) -> tuple[float, int]:
        """Every token scored, in chunks of at most block_size // 2 tokens, each seen with the block_size
        tokens before its end (so at least block_size // 2 tokens of context)."""
        ids = prompt + target
        chunk = max(1, self.block_size // 2)
        total, pos = 0.0, len(prompt)
        while pos < len(ids):
            end = min(len(ids), pos + chunk)
            start = max(0, end - self.block_size)
            window = torch.tensor([ids[start:end]], dtype=torch.long, device=self.device)
            logits, _ = self.model(window)
            total += continuation_nll(logits[0].cpu(), pos - start, ids[pos:end])
            pos = end
        return total, len(target)

    def reply_nll(self, context: Sequence[Turn], reply: str) -> tuple[float, int]:
        return self.score([(context, reply, "assistant")])[0]

    def generate(self, context: Sequence[Turn], seed: int = 0, role: str = "assistant") -> str:
        from ..tiny_gpt.generate import generate

        # keep room for the reply, as --chat does: the prompt and up to max_new_tokens then fit the model's
        # context, so the KV cache never has to re-run a full window per new token (contexts near
        # block_size made generation 4x slower)
        prompt = self.tok.encode(render_context(context, role))[-max(1, self.block_size - self.max_new_tokens):]
        stop = (self.tok.them_id if role == "assistant" else self.tok.me_id, self.tok.end_id)
        new = generate(self.model, prompt, self.max_new_tokens, self.temperature, self.top_k,
                       stop_ids=stop, generator=make_generator(seed), device=self.device)
        self.hit_limit += int(len(new) >= self.max_new_tokens)
        return _clean(self.tok.decode(new))


class UnigramModel:
    """Token frequencies of the training transcript, add-one smoothed over the whole vocabulary.

    P(token) depends on neither the context nor the speaker. Generation draws tokens independently until a
    `<|them|>` / `<|endoftext|>` token (or max_new_tokens), like the tiny GPT's own stopping rule.
    """

    has_speaker = False  # the same probability as the person and as a partner: no speaker test

    def __init__(self, tok: Any, train_text: str, vocab_size: int, *, name: str = "base",
                 max_new_tokens: int = 64, temperature: float = 0.8, top_k: int = 0):
        self.tok, self.name = tok, name
        self.max_new_tokens, self.temperature, self.top_k = max_new_tokens, temperature, top_k
        counts = Counter(tok.encode_corpus(train_text))
        total = sum(counts.values()) + vocab_size
        self.logp = torch.tensor([math.log((counts.get(i, 0) + 1) / total) for i in range(vocab_size)])
        self.n_train_tokens = total - vocab_size
        self.hit_limit = 0

    def score(self, items: Sequence[Item], progress: Any = None) -> list[tuple[float, int]]:
        out = []
        for _, text, _ in items:
            ids = self.tok.encode(text + "\n")
            out.append((float(-self.logp[ids].double().sum()), len(ids)))
        if progress:
            progress(len(items))
        return out

    def reply_nll(self, context: Sequence[Turn], reply: str) -> tuple[float, int]:
        return self.score([(context, reply, "assistant")])[0]

    def generate(self, context: Sequence[Turn], seed: int = 0, role: str = "assistant") -> str:
        gen = make_generator(seed)
        stop = {self.tok.them_id, self.tok.end_id}
        out: list[int] = []
        for _ in range(self.max_new_tokens):
            t = sample_token(self.logp, self.temperature, gen, self.top_k)
            if t in stop:
                break
            out.append(t)
        else:
            self.hit_limit += 1
        return _clean(self.tok.decode(out))


def tiny_data_files(cfg: TinyGPTConfig) -> tuple[str, str]:
    """The held-out conversations of a tiny GPT config: the ShareGPT files prepare_training_data.py writes
    beside its corpus (training_data/sharegpt_train.jsonl, sharegpt_val.jsonl)."""
    data_dir = Path(cfg.train_file).parent
    return str(data_dir / "sharegpt_train.jsonl"), str(data_dir / "sharegpt_val.jsonl")


def load_tiny_gpt(cfg: TinyGPTConfig, checkpoint: str | None, *, max_new_tokens: int, temperature: float,
                  top_k: int = 0) -> Target:
    """Target for a tiny GPT config: tuned = the checkpoint (best.pt, else last.pt), base = unigram."""
    from ..tiny_gpt.checkpoints import load_for_inference
    from ..tiny_gpt.tokenizer import read_text

    model, tok, path, ckpt = load_for_inference(cfg, checkpoint)
    device = next(model.parameters()).device
    gen = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k)
    tuned = TinyGPTModel(model, tok, device=device, **gen)
    base = UnigramModel(tok, read_text(cfg.train_file, "train_file"), model.args.vocab_size, **gen)
    it = ckpt.get("iter")
    meta = {
        "tuned": f"tiny GPT {path} (iteration {it}, {model.num_params():,} parameters, {tok.kind} tokenizer with "
                 f"{tok.vocab_size} tokens)",
        "base": f"unigram model: the token frequencies of {cfg.train_file} ({base.n_train_tokens:,} tokens, add-one "
                "smoothed), context-blind. The tiny GPT has no pretrained base; this is what knowing only which "
                "tokens are common gets you",
        "scoring": "the reply text and its closing newline after the <|me|> marker, in the tiny GPT's tokens "
                   "(the same tokens for base and tuned)",
        "model_dir": str(path),
        "perplexity_note": (
            "*Base* for the tiny GPT is not a pretrained model (there is none: it is trained from scratch) but a "
            "unigram model of its training transcript: the frequency of every token, with no context. Beating it "
            "means the model learned more than which tokens are common. For scale, guessing uniformly over the "
            f"{model.args.vocab_size}-token vocabulary, which is what the untrained network does before its first "
            f"step, gives perplexity {model.args.vocab_size}."),
    }
    return Target("tiny_gpt", {"base": base, "tuned": tuned}, *tiny_data_files(cfg), Path(cfg.out_dir), meta)

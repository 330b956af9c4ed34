"""Training data for LoRA: reading and splitting conversations, chat templating and the label mask.

The loss covers only the person's replies. Rather than relying on a trainer option that works for
some templates and not others (TRL's `assistant_only_loss` needs `{% generation %}` markers,
Unsloth's `train_on_responses_only` needs exact marker strings), graftkit tokenizes itself, the same
way on both backends and for every template:

1. render the whole conversation with the tokenizer's chat template;
2. locate each assistant reply in that text: render `messages[:i]` with `add_generation_prompt=True`,
   which is a prefix of the full text, and the reply follows it;
3. tokenize the full text once with offsets, label the tokens overlapping a reply plus the
   end-of-turn token right after it (`<|im_end|>`, `<|eot_id|>`, `</s>`), -100 everywhere else.

Nothing here imports torch or transformers: the tokenizer comes in as an object.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, first_line, notice
from ..fileio import check_prepared, read_jsonl
from ..samples import Conversation, parse_record
from .presets import FAMILIES, NAMED_TEMPLATES, Family, detect_family, get_preset
from .config import LoraTrainConfig

IGNORE = -100
# the turns whose tokens carry the loss, per `train_on`: the person's replies, or both sides. both makes the model
# learn the partners' voice too (and so gives evaluate_persona.py's authorship its control, the model writing as the
# partner); on the sample the persona gap came out larger with the person's turns alone (bench/NOTES_lora.md)
TRAINED_ROLES = {"person": ("assistant",), "both": ("assistant", "user")}
PAD_CANDIDATES = ("<pad>", "<|pad|>", "<|finetune_right_pad_id|>", "[PAD]", "<|endoftext|>", "<unk>")


@dataclass
class Sample:
    path: str
    line: int
    messages: Conversation


# ---------------------------------------------------------------------------------------------- reading

def read_samples(path: str | Path, hint: str = "") -> list[Sample]:
    """Read a ShareGPT or OpenAI JSONL file; every error names file:line (see graftkit.samples)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found" + (f" ({hint})" if hint else ""), path)
    samples = []
    for lineno, obj in read_jsonl(path):
        _, turns = parse_record(obj, path, lineno)
        if not any(t["role"] == "assistant" for t in turns):
            raise InputError("conversation has no assistant ('gpt') turn to learn from", path, lineno)
        samples.append(Sample(str(path), lineno, turns))
    if not samples:
        raise InputError("no conversations in file", path)
    return samples


def split_samples(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split by conversation, reproducibly for a given seed."""
    if val_fraction <= 0:
        return list(samples), []
    if len(samples) < 2:
        raise ConfigError(f"only {len(samples)} conversation(s): too few to split off a validation set "
                          "(set val_fraction: 0 or give a val_file)")
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    n_val = min(len(samples) - 1, max(1, round(len(samples) * val_fraction)))
    val_idx = set(order[:n_val])
    return ([s for i, s in enumerate(samples) if i not in val_idx], [s for i, s in enumerate(samples) if i in val_idx])


COMBINED_NAME = "sharegpt_format.jsonl"  # prepare_training_data.py's file with every sample


def _is_blank(path: Path) -> bool:
    with open(path, "rb") as f:
        return not any(line.strip() for line in f)


def load_splits(cfg: LoraTrainConfig) -> tuple[list[Sample], list[Sample]]:
    """Train and validation samples per the config.

    `data_file` is split by conversation (val_fraction, seed). Otherwise train_file + val_file; when
    train_file is missing but a `sharegpt_format.jsonl` sits beside it, that file is split instead,
    and an empty val_file (prepare_training_data.py --val-fraction 0) means no validation.
    """
    # never a set half-published by a killed prepare run (one run's train split beside another's val split)
    check_prepared(*([cfg.data_file] if cfg.data_file else [cfg.train_file, cfg.val_file]))
    if cfg.data_file:
        return split_samples(read_samples(cfg.data_file), cfg.val_fraction, cfg.seed)
    train_path = Path(cfg.train_file)
    combined = train_path.with_name(COMBINED_NAME)
    if not train_path.exists() and combined.is_file():
        notice(f"{train_path} not found: splitting {combined} into train/val by conversation "
                f"(val_fraction {cfg.val_fraction}, seed {cfg.seed})")
        return split_samples(read_samples(combined), cfg.val_fraction, cfg.seed)
    train = read_samples(train_path, "run prepare_training_data.py first, or set train_file / data_file")
    if cfg.val_file:
        val_path = Path(cfg.val_file)
        if val_path.is_file() and _is_blank(val_path):
            notice(f"{val_path} is empty: training without validation (set val_file: '' to hold out "
                    "val_fraction of train_file instead)")
            return train, []
        return train, read_samples(val_path, "set val_file: '' to split val_fraction off train_file")
    return split_samples(train, cfg.val_fraction, cfg.seed)


def with_system_prompt(messages: Conversation, system_prompt: str) -> Conversation:
    if system_prompt and not any(m["role"] == "system" for m in messages):
        return [{"role": "system", "content": system_prompt}, *messages]
    return messages


# ---------------------------------------------------------------------------------------------- tokenizer

@dataclass
class TemplateInfo:
    """What training and --chat must agree on; saved next to the adapter as graftkit_lora.json."""
    family: str
    eot_token: str
    eot_id: int
    template_kwargs: dict = field(default_factory=dict)
    instruction_part: str = ""
    response_part: str = ""
    added_tokens: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in ("family", "eot_token", "template_kwargs", "instruction_part",
                                              "response_part", "added_tokens")}


def _choose_template(tok: Any, cfg: LoraTrainConfig) -> tuple[str, Family]:
    name = (cfg.chat_template or "auto").strip()
    if name == "auto":
        if getattr(tok, "chat_template", None):
            return tok.chat_template, detect_family(tok.chat_template, cfg.base_model)
        preset = get_preset(cfg.base_model)
        family = FAMILIES[preset.family] if preset else FAMILIES["chatml"]
        return family.template, family
    if name in NAMED_TEMPLATES:
        return NAMED_TEMPLATES[name], FAMILIES[name]
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"chat_template: {name!r} is not auto, {', '.join(NAMED_TEMPLATES)} or an existing "
                          ".jinja file")
    text = path.read_text(encoding="utf-8")
    return text, detect_family(text)


def probe_eot(tok: Any, kwargs: dict, fallback: str) -> str:
    """The token a rendered assistant reply ends with, found by rendering a probe conversation."""
    reply = "probe reply 42"
    try:
        text = tok.apply_chat_template([{"role": "user", "content": "probe question"},
                                        {"role": "assistant", "content": reply}], tokenize=False, **kwargs)
    except Exception:  # noqa: BLE001 - a template that rejects the probe: fall back to the family's token
        return fallback
    end = text.find(reply)
    if end < 0:
        return fallback
    rest = text[end + len(reply):].lstrip(" ")
    specials = set(tok.all_special_tokens) | set(getattr(tok, "added_tokens_encoder", {}) or {})
    for t in sorted(specials, key=len, reverse=True):
        if t and rest.startswith(t):
            return t
    return fallback




def ensure_pad_token(tok: Any, eot_token: str) -> str | None:
    """Give the tokenizer a pad token different from eos and end-of-turn; return it if it was added."""
    bad = {None, tok.eos_token, eot_token}
    if tok.pad_token not in bad:
        return None
    vocab = tok.get_vocab()
    reserved = sorted((t for t in vocab if re.fullmatch(r"<\|reserved_special_token_\d+\|>", t)),
                      key=lambda t: int(re.findall(r"\d+", t)[0]))
    for cand in (*PAD_CANDIDATES, *reserved[-1:]):
        if cand in vocab and cand not in bad and cand != tok.bos_token:
            tok.pad_token = cand
            return None
    tok.add_special_tokens({"pad_token": "<pad>"})
    return "<pad>"


def setup_tokenizer(tok: Any, cfg: LoraTrainConfig) -> TemplateInfo:
    """Fix the chat template, end-of-turn token and pad token on `tok` (in place) for training and chat."""
    template, family = _choose_template(tok, cfg)
    tok.chat_template = template
    added: list[str] = []
    if family.name in ("chatml", "qwen-2.5"):  # the ChatML fallback on a tokenizer that lacks its tokens
        missing = [t for t in ("<|im_start|>", "<|im_end|>") if t in template and t not in tok.get_vocab()]
        if missing:
            tok.add_special_tokens({"additional_special_tokens": missing})
            added += missing
    kwargs = dict(family.template_kwargs)
    fallback = family.eot_token if family.eot_token in tok.get_vocab() else tok.eos_token
    eot = probe_eot(tok, kwargs, fallback)
    if eot is None or eot not in tok.get_vocab():
        raise ConfigError(f"cannot find the end-of-turn token of the chat template (tried {family.eot_token!r}); "
                          "set chat_template to chatml, llama-3 or mistral")
    if tok.eos_token != eot:
        tok.eos_token = eot  # generation stops at the end of the person's turn
    pad_added = ensure_pad_token(tok, eot)
    if pad_added:
        added.append(pad_added)
    return TemplateInfo(family=family.name, eot_token=eot, eot_id=tok.convert_tokens_to_ids(eot),
                        template_kwargs=kwargs,
                        instruction_part=cfg.instruction_part or family.instruction_part,
                        response_part=cfg.response_part or family.response_part, added_tokens=added)


# ---------------------------------------------------------------------------------------------- encoding

def renderer(info: "TemplateInfo", system_prompt: str) -> Any:
    """`render_fn(tokenizer, turns, add_generation_prompt)` for HFChatModel: the training template, with
    `system_prompt` added to conversations that have none, so scoring renders exactly as training did."""
    def render_fn(tok: Any, turns: list, add_generation_prompt: bool) -> str:
        return render(tok, with_system_prompt(turns, system_prompt), info, add_generation_prompt)
    return render_fn


class EncodeError(ValueError):
    """A conversation the chat template cannot render, or whose replies it rewrites beyond recognition."""


def render(tok: Any, messages: Conversation, info: TemplateInfo, add_generation_prompt: bool = False) -> str:
    try:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                       **info.template_kwargs)
    except Exception as e:  # jinja raise_exception(), e.g. roles that must alternate
        raise EncodeError(f"chat template error: {first_line(e)}") from None


def assistant_spans(tok: Any, messages: Conversation, info: TemplateInfo,
                    roles: tuple[str, ...] = ("assistant",), first: int = 0) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the (start, end) character span of every turn whose role is in `roles`
    (the person's replies by default; `train_on: both` adds the partners' turns), from turn `first` on (the
    turns before it are context only: see split_windows).

    Two renderings find every span (_spans_by_markers), so a conversation of thousands of turns costs about
    twice its rendering; a template that rewrites the turns' text falls back to one rendering per turn
    (_spans_by_prefixes), which grows with the square of the turns."""
    full = render(tok, messages, info)
    every = _spans_by_markers(tok, messages, info, full)
    if every is None:
        return full, _spans_by_prefixes(tok, messages, info, full, roles, first)
    spans = []
    for i, (m, (s, e)) in enumerate(zip(messages, every)):
        if m["role"] in roles and i >= first:
            if s == e:
                raise EncodeError(f"{m['role']} turn {i + 1} is not in the rendered chat template text")
            spans.append((s, e))
    return full, spans


_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"  # private-use code points: no chat text or template holds them


def _spans_by_markers(tok: Any, messages: Conversation, info: TemplateInfo,
                      full: str) -> list[tuple[int, int]] | None:
    """The span in `full` of every turn's text (as given, or stripped as templates often do), or None.

    The conversation is rendered once more with each turn's text replaced by a numbered marker; the template text
    between the markers, with the real texts put back in their places, must rebuild `full` exactly. That check
    makes every span exact, and a template whose output depends on the text (one that rewrites or drops a turn)
    fails it and returns None."""
    if any(_MARK_OPEN in m["content"] or _MARK_CLOSE in m["content"] for m in messages):
        return None
    marks = [f"{_MARK_OPEN}{i}{_MARK_CLOSE}" for i in range(len(messages))]
    try:
        skeleton = render(tok, [{**m, "content": mark} for m, mark in zip(messages, marks)], info)
    except EncodeError:
        return None
    if skeleton.count(_MARK_OPEN) != len(messages):  # a turn dropped or written twice
        return None
    spans: list[tuple[int, int]] = []
    at_full = at_skel = 0
    for m, mark in zip(messages, marks):
        found = skeleton.find(mark, at_skel)
        if found < 0:
            return None
        between = skeleton[at_skel:found]
        if not full.startswith(between, at_full):
            return None
        at_full += len(between)
        at_skel = found + len(mark)
        text = next((t for t in (m["content"], m["content"].strip()) if full.startswith(t, at_full)), None)
        if text is None:
            return None
        spans.append((at_full, at_full + len(text)))
        at_full += len(text)
    return spans if full[at_full:] == skeleton[at_skel:] else None


def _spans_by_prefixes(tok: Any, messages: Conversation, info: TemplateInfo, full: str,
                       roles: tuple[str, ...], first: int) -> list[tuple[int, int]]:
    """assistant_spans for a template that rewrites the turns' text: each turn is searched for after the rendering
    of the turns before it (one rendering per turn)."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, m in enumerate(messages):
        if m["role"] not in roles or i < first:
            continue
        start_at = cursor
        if i > 0:  # the text before the turn (and its header) is a prefix of the whole rendering
            prefix = render(tok, messages[:i], info, add_generation_prompt=m["role"] == "assistant")
            if full.startswith(prefix):
                start_at = max(cursor, len(prefix))
        found = -1
        for text in (m["content"], m["content"].strip()):
            found = full.find(text, start_at)
            if found >= 0:
                break
        if found < 0 or not text:
            raise EncodeError(f"{m['role']} turn {i + 1} is not in the rendered chat template text")
        spans.append((found, found + len(text)))
        cursor = found + len(text)
    return spans


def _tokenize_with_offsets(tok: Any, full: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[tuple[int, int]]]:
    try:
        enc = tok(full, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, ValueError, TypeError):  # slow tokenizer: tokenize span by span
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        cuts = sorted({0, len(full), *[p for s in spans for p in s]})
        for a, b in zip(cuts, cuts[1:]):
            piece = tok(full[a:b], add_special_tokens=False)["input_ids"]
            ids += piece
            offsets += [(a, b)] * len(piece)
        return ids, offsets


def encode_conversation(tok: Any, messages: Conversation, info: TemplateInfo,
                        train_on: str = "person", first: int = 0) -> tuple[list[int], list[int]]:
    """`input_ids` and `labels` (-100 except on the trained turns and their end-of-turn token).

    train_on "person": the assistant replies only. "both": the partners' (user) turns too, so the model learns
    both voices and what sets the person's apart from the partners' (see TRAINED_ROLES). Turns before `first`
    are context, never labelled."""
    full, spans = assistant_spans(tok, messages, info, TRAINED_ROLES[train_on], first)
    ids, offsets = _tokenize_with_offsets(tok, full, spans)
    labels = [IGNORE] * len(ids)
    j = 0
    for s, e in spans:
        while j < len(ids) and offsets[j][1] <= s:
            j += 1
        while j < len(ids) and offsets[j][0] < e:
            if offsets[j][1] > offsets[j][0]:
                labels[j] = ids[j]
            j += 1
        # the end-of-turn token, possibly after whitespace the template inserts
        k = j
        while k < len(ids) and ids[k] != info.eot_id and not full[offsets[k][0]:offsets[k][1]].strip():
            k += 1
        if k < len(ids) and ids[k] == info.eot_id:
            labels[k] = ids[k]
            j = k + 1
    return ids, labels


@dataclass
class DataStats:
    conversations: int = 0
    kept: int = 0
    overlong: int = 0
    truncated: int = 0
    dropped_overlong: int = 0
    split: int = 0
    windows: int = 0
    cut_label_tokens: int = 0
    dropped_no_labels: int = 0
    template_errors: int = 0
    opening_dropped: int = 0
    tokens: int = 0
    label_tokens: int = 0
    first_error: str = ""

    def summary(self, name: str) -> str:
        s = (f"{name}: {self.kept}/{self.conversations} conversations, {self.tokens} tokens "
             f"({self.label_tokens} trained)")
        if self.overlong:
            how = [f"{self.truncated} truncated", f"{self.dropped_overlong} dropped"]
            if self.split:
                how.append(f"{self.split} split into {self.windows} windows")
            s += f"; {self.overlong} over max_seq_length ({', '.join(how)})"
        if self.cut_label_tokens:
            share = self.cut_label_tokens / (self.cut_label_tokens + self.label_tokens)
            s += f"; truncation cut {self.cut_label_tokens} trained tokens ({share:.0%}; overlong: split keeps them)"
        if self.dropped_no_labels:
            s += f"; {self.dropped_no_labels} dropped with no reply tokens left"
        if self.opening_dropped:
            s += (f"; {self.opening_dropped} opened by the person, which the chat template refuses: trained without "
                  "that opening message")
        if self.template_errors:
            s += f"; {self.template_errors} skipped ({self.first_error})"
        return s

    def add(self, rows: list[dict[str, list[int]]], ids: list[int], labels: list[int]) -> None:
        rows.append({"input_ids": ids, "labels": labels})
        self.tokens += len(ids)
        self.label_tokens += sum(x != IGNORE for x in labels)


def encode_samples(tok: Any, samples: list[Sample], info: TemplateInfo, max_len: int, overlong: str,
                   system_prompt: str = "", train_on: str = "person") -> tuple[list[dict[str, list[int]]], DataStats]:
    """Encode, then truncate, split or drop samples over `max_len`; never keep a sample with no labelled token."""
    rows: list[dict[str, list[int]]] = []
    st = DataStats(conversations=len(samples))
    for smp in samples:
        messages = with_system_prompt(smp.messages, system_prompt)
        try:
            ids, labels = encode_conversation(tok, messages, info, train_on)
        except EncodeError as e:
            # Templates such as Mistral's require user/assistant alternation starting with the user; a chat the
            # person opened is kept without its opening message(s) rather than lost.
            trimmed = _without_assistant_opening(messages)
            try:
                if trimmed is None:
                    raise e
                ids, labels = encode_conversation(tok, trimmed, info, train_on)
                messages = trimmed
                st.opening_dropped += 1
            except EncodeError as e2:
                st.template_errors += 1
                st.first_error = st.first_error or f"{smp.path}:{smp.line}: {e2}"
                continue
        if len(ids) > max_len:
            st.overlong += 1
            if overlong == "drop":
                st.dropped_overlong += 1
                continue
            if overlong == "split":
                try:
                    pieces = [p for p in split_windows(tok, messages, info, train_on, max_len)
                              if any(x != IGNORE for x in p[1])]
                except EncodeError:  # a template that refuses a window: truncate, as before
                    pieces = []
                if pieces:
                    st.split += 1
                    st.windows += len(pieces)
                    st.kept += 1
                    for p_ids, p_labels in pieces:
                        st.add(rows, p_ids, p_labels)
                    continue
            st.cut_label_tokens += sum(x != IGNORE for x in labels[max_len:])
            ids, labels = ids[:max_len], labels[:max_len]
            if all(x == IGNORE for x in labels):
                st.dropped_no_labels += 1
                continue
            st.truncated += 1
        if all(x == IGNORE for x in labels):
            st.dropped_no_labels += 1
            continue
        st.kept += 1
        st.add(rows, ids, labels)
    return rows, st


CONTEXT_TURNS = 2  # a window after the first opens with this many turns before it (the last exchange), unlabelled


def split_windows(tok: Any, messages: Conversation, info: TemplateInfo, train_on: str,
                  max_len: int) -> list[tuple[list[int], list[int]]]:
    """A conversation over `max_len` tokens as windows of whole turns that each fit, so none of it is lost.

    Why: chat sessions run long, and `truncate` keeps the start and throws the rest away (11 % of the sample's
    trained tokens at 1024). Each window after the first opens at a partner (user) turn, as templates such as
    Mistral's require, with the exchange before it as unlabelled context (a reply still reads what it answers);
    every trained turn is labelled in exactly one window. A single exchange longer than `max_len` is truncated,
    as `truncate` would. Windows are found by galloping then bisection over the cut points (_largest_fit)."""
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(system):]
    n = len(turns)
    cuts = [i for i in range(1, n) if turns[i]["role"] == "user"] + [n]  # where a window may end (and the next open)

    def encode(ctx: int, start: int, end: int) -> tuple[list[int], list[int]]:
        return encode_conversation(tok, system + turns[ctx:end], info, train_on, len(system) + start - ctx)

    windows = []
    start = 0
    while start < n:
        ends = [e for e in cuts if e > start]
        ctx = next((i for i in range(max(0, start - CONTEXT_TURNS), start) if turns[i]["role"] == "user"), start)
        best = _largest_fit(ends, lambda e: encode(ctx, start, e), max_len)
        if best is None and ctx < start:  # the context and one exchange do not fit: the exchange alone
            best = _largest_fit(ends, lambda e: encode(start, start, e), max_len)
        if best is None:  # one exchange over max_len: its start, as truncate keeps
            end = ends[0]
            ids, labels = encode(start, start, end)
            ids, labels = ids[:max_len], labels[:max_len]
        else:
            end, (ids, labels) = best
        windows.append((ids, labels))
        start = end
    return windows


def _largest_fit(ends: list[int], encode: Any, max_len: int) -> tuple[int, tuple[list[int], list[int]]] | None:
    """The largest `end` whose encoding fits `max_len` (lengths grow with `end`), with that encoding; None if none.

    Galloping (1, 2, 4, ... cut points), then bisection: each probe costs about the window it encodes, never the
    rest of a conversation of thousands of turns."""
    best, lo, step = None, 0, 1
    hi = len(ends) - 1
    while lo <= hi:  # gallop: find the first probe that does not fit
        probe = min(lo + step - 1, hi)
        enc = encode(ends[probe])
        if len(enc[0]) > max_len:
            hi = probe - 1
            break
        best, lo, step = (ends[probe], enc), probe + 1, step * 2
    while lo <= hi:  # bisect between the last probe that fit and the first that did not
        mid = (lo + hi) // 2
        enc = encode(ends[mid])
        if len(enc[0]) <= max_len:
            best, lo = (ends[mid], enc), mid + 1
        else:
            hi = mid - 1
    return best


def _without_assistant_opening(messages: Conversation) -> Conversation | None:
    """`messages` minus the assistant turns before the first user turn; None if there are none or nothing is left."""
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    if first_user is None:
        return None
    lead = [i for i in range(first_user) if messages[i]["role"] == "assistant"]
    if not lead:
        return None
    rest = [m for i, m in enumerate(messages) if i not in lead]
    return rest if any(m["role"] == "assistant" for m in rest) else None


def check_response_part(tok: Any, samples: list[Sample], info: TemplateInfo, system_prompt: str = "") -> str | None:
    """A notice when `response_part` does not open the assistant replies (a wrong family or marker)."""
    if not info.response_part or not samples:
        return None
    try:
        full, spans = assistant_spans(tok, with_system_prompt(samples[0].messages, system_prompt), info)
    except EncodeError:
        return None
    marker = info.response_part.rstrip(" ")
    if all(full[:s].rstrip(" ").endswith(marker) for s, _ in spans):
        return None
    return (f"notice: response_part {info.response_part!r} does not open the assistant replies in the rendered "
            "template; the label mask does not depend on it, but check base_model / chat_template")


class PadCollator:
    """Right-pads `input_ids` with the pad token, `labels` with -100, and builds the attention mask."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None):
        self.pad_id = pad_id
        self.multiple = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        n = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            n = -(-n // self.multiple) * self.multiple
        ids = torch.full((len(features), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), n), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.as_tensor(f["input_ids"], dtype=torch.long)
            labels[i, :k] = torch.as_tensor(f["labels"], dtype=torch.long)
            mask[i, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


# ---------------------------------------------------------------------------------------------- packing

def trim_tail(rows: list[dict[str, list[int]]]) -> int:
    """Cut the tokens after each sample's last labelled token (in place); return how many were cut.

    A conversation that ends with the other person's message carries tokens no label follows; under
    causal attention they change nothing before them, so dropping them leaves the loss and the
    gradients exactly as they were and only saves compute.
    """
    cut = 0
    for r in rows:
        last = max(i for i, y in enumerate(r["labels"]) if y != IGNORE)
        cut += len(r["labels"]) - last - 1
        r["input_ids"], r["labels"] = r["input_ids"][:last + 1], r["labels"][:last + 1]
    return cut


@dataclass
class PackStats:
    samples: int
    bins: int
    tokens: int
    slots: int  # bins * max_len: the tokens a step would compute if every bin were full length

    def summary(self) -> str:
        return (f"packing: {self.samples} conversations into {self.bins} rows of <= {self.slots // max(self.bins, 1)} "
                f"tokens ({self.tokens / max(self.slots, 1):.0%} full); no sample attends to another")


def pack_rows(rows: list[dict[str, list[int]]], max_len: int) -> tuple[list[dict[str, list[int]]], PackStats]:
    """Best-fit-decreasing bins of whole samples, at most `max_len` tokens each (TRL's `pack_dataset`, "bfd").

    Each packed row keeps `seq_lengths`, from which `PackedCollator` restarts the position ids at
    every sample; transformers then builds a block-diagonal causal mask (SDPA / eager) or variable-
    length flash attention from them, so tokens never see the sample packed before them. Samples are
    already cut to `max_len` by `encode_samples`, so BFD drops nothing.
    """
    from datasets import Dataset, disable_progress_bars, enable_progress_bars
    from trl import pack_dataset

    disable_progress_bars()
    try:
        packed = pack_dataset(Dataset.from_list(rows), max_len, strategy="bfd").to_list()
    finally:
        enable_progress_bars()
    tokens = sum(len(r["input_ids"]) for r in rows)
    assert sum(len(r["input_ids"]) for r in packed) == tokens, "packing lost tokens"
    return packed, PackStats(samples=len(rows), bins=len(packed), tokens=tokens, slots=len(packed) * max_len)


def position_ids_for(seq_lengths: list[int]) -> list[int]:
    """0, 1, ... restarting at every packed sample: [3, 2] -> [0, 1, 2, 0, 1]."""
    return [i for n in seq_lengths for i in range(n)]


class PackedCollator:
    """Batches packed rows: `input_ids`, `labels`, `position_ids`, and deliberately no attention mask.

    Without an attention mask, transformers reads sample boundaries from where `position_ids`
    restart and masks across them (the first token of every sample is also unlabelled, as it has no
    predecessor inside its sample). Padding at the end of a row gets its own positions 0.. so it forms
    a separate block with -100 labels. `flatten=True` joins the whole batch into one row, which is what
    variable-length flash attention wants (no padding at all); SDPA / eager on CPU keep one row per bin,
    since a dense mask over a joined row would cost attention over every pair of bins. Rows without
    `seq_lengths` (the validation set, which stays unpacked) are padded as by `PadCollator`.
    """

    def __init__(self, pad_id: int, flatten: bool = False, pad_to_multiple_of: int | None = None):
        self.pad_id = pad_id
        self.flatten = flatten
        self.padded = PadCollator(pad_id, pad_to_multiple_of)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if "seq_lengths" not in features[0]:
            return self.padded(features)
        rows = [(list(f["input_ids"]), list(f["labels"]), position_ids_for(f.get("seq_lengths") or [len(f["input_ids"])]))
                for f in features]
        if self.flatten:
            rows = [(sum((r[0] for r in rows), []), sum((r[1] for r in rows), []), sum((r[2] for r in rows), []))]
        n = max(len(r[0]) for r in rows)
        ids = torch.full((len(rows), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), n), IGNORE, dtype=torch.long)
        pos = torch.arange(n, dtype=torch.long).repeat(len(rows), 1)
        for i, (x, y, p) in enumerate(rows):
            k = len(x)
            ids[i, :k] = torch.as_tensor(x, dtype=torch.long)
            labels[i, :k] = torch.as_tensor(y, dtype=torch.long)
            pos[i, :k] = torch.as_tensor(p, dtype=torch.long)
            pos[i, k:] = torch.arange(n - k)
        labels[pos == 0] = IGNORE
        return {"input_ids": ids, "labels": labels, "position_ids": pos}

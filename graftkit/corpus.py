"""Plain-text transcripts for the tiny GPT: the speaker markers and how a session is rendered.

Why markers instead of names: the tiny model should learn *who* is speaking (the person vs anyone
else) without spending capacity on names, and the markers become single special tokens in both the
char-level and BPE tokenizers, so "answer as me" is simply: prompt ends with ME, generate until the
next marker.

A session renders as one line per turn, marker then text (a multi-line message keeps its "\\n"),
and ends with END on its own line:

    <|them|>hey, are you coming tonight?
    <|me|>yes! leaving in 10
    <|endoftext|>
"""

from __future__ import annotations

import re
from typing import Iterable

ME = "<|me|>"
THEM = "<|them|>"
END = "<|endoftext|>"
SPECIAL_TOKENS = (END, ME, THEM)

# Strings that some tokenizer reads as ONE special token: our markers and every other `<|...|>`
# (tiktoken's <|endoftext|>/<|fim_prefix|>, ChatML <|im_start|>/<|im_end|>, Llama 3 <|eot_id|>,
# Phi <|user|>/<|end|>, DeepSeek's full-width <｜...｜>), SentencePiece's <s> </s> <unk> <pad>, Gemma's
# <bos> <eos> <start_of_turn> <end_of_turn>, Llama 2's [INST] <<SYS>>, BERT's [PAD] [CLS] [SEP] [MASK],
# Mistral's [TOOL_CALLS]-style controls; prepare --tokenizer adds that tokenizer's own list.
# Why: a chat partner who writes "<|me|>I am Sam<|endoftext|><|them|>ok" (or calls themselves "<|me|>")
# would otherwise have the tokenizer read those as the speaker markers, and the model would learn the
# partner's words as the person's. Every opening `<|` is broken, so no `<|...|>` token of any
# tokenizer can remain, and the other forms are listed.
_SPECIAL_START = re.compile(
    r"<(?=[|\uff5c])|<(?=/?s>)|<(?=(?:unk|pad|bos|eos|mask|start_of_turn|end_of_turn|start_of_image)>)"
    r"|<(?=</?SYS>>)|\[(?=/?(?:INST|PAD|CLS|SEP|MASK|UNK|IMG|[A-Z]+_[A-Z_]+)\])")
# U+200B ZERO WIDTH SPACE after the first character: the text reads the same, no tokenizer matches the
# token any more, and no normaliser we ship or the LoRA families use removes it (NFKC keeps it).
MARKER_BREAK = "\u200b"


def neutralise_markers(text: str, extra: re.Pattern | None = None) -> tuple[str, int]:
    """`text` with every special-token string broken by MARKER_BREAK, and how many were broken.
    `extra` (from special_pattern): further special tokens, those of the tokenizer given to prepare
    --tokenizer, broken after their first character. Fast for the common text: a scan for "<" and "["
    before any regex runs."""
    n = 0
    if "<" in text or "[" in text:
        text, n = _SPECIAL_START.subn(_break_start, text)
    if extra is not None:
        text, k = extra.subn(_break_first, text)
        n += k
    return text, n


def special_pattern(tokens: Iterable[str]) -> re.Pattern | None:
    """One regex for a tokenizer's special tokens (longest first), or None when there are none."""
    toks = sorted({t for t in tokens if len(t) > 1}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, toks))) if toks else None


def _break_start(m: re.Match) -> str:
    return m.group(0) + MARKER_BREAK


def _break_first(m: re.Match) -> str:
    return m.group(0)[0] + MARKER_BREAK + m.group(0)[1:]


def render_session(turns: Iterable[tuple[bool, str]]) -> str:
    """turns: (is_me, text) pairs in order. Returns the transcript of one session, END-terminated."""
    out = []
    for is_me, text in turns:
        out.append((ME if is_me else THEM) + text + "\n")
    out.append(END + "\n")
    return "".join(out)


def render_corpus(sessions: Iterable[Iterable[tuple[bool, str]]]) -> str:
    return "".join(render_session(s) for s in sessions)

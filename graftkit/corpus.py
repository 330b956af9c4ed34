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

from typing import Iterable

ME = "<|me|>"
THEM = "<|them|>"
END = "<|endoftext|>"
SPECIAL_TOKENS = (END, ME, THEM)


def render_session(turns: Iterable[tuple[bool, str]]) -> str:
    """turns: (is_me, text) pairs in order. Returns the transcript of one session, END-terminated."""
    out = []
    for is_me, text in turns:
        out.append((ME if is_me else THEM) + text + "\n")
    out.append(END + "\n")
    return "".join(out)


def render_corpus(sessions: Iterable[Iterable[tuple[bool, str]]]) -> str:
    return "".join(render_session(s) for s in sessions)

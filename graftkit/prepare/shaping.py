"""From parsed messages to training samples: clean, de-duplicate, merge, sessionise, window.

The stages, each one linear pass:

1. `dedupe_messages`: a chat exported twice (or a folder holding two exports of it) must not double
   the data. Messages with a timestamp are keyed by sender+timestamp+text regardless of the
   conversation id; keys repeated from another conversation that overlaps this one substantially
   are dropped. Repeats inside one conversation ("ok" twice in the same minute) are real and kept.
2. `clean_text`: placeholders (media, deleted, calls, locations, view-once, polls: see
   graftkit/parsers/placeholders.py) and empty texts are dropped (they teach the model to say
   "<Media omitted>"), counted by kind; WhatsApp's " <This message was edited>" suffix is cut.
3. `build_sessions`: per conversation, consecutive messages of one sender within `merge_gap` become
   one turn (joined with "\\n"), and a silence longer than `session_gap` starts a new session.
   Conversations without timestamps are one session, or chunks of `window_turns` turns.
4. `session_samples`: a session (or each window of at most `window_turns` turns, `window_overlap`
   turns shared between neighbours) that contains a turn of the person becomes a sample. Trailing
   turns of others are trimmed (nothing to learn from them), consecutive turns of one role are
   joined, so ShareGPT samples alternate human/gpt (a sample may start with the person's turn).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

from ..messages import Message
from ..parsers.placeholders import index as _placeholder_index
from ..parsers.placeholders import placeholder_kind

_EXACT = _placeholder_index().exact

EDITED_SUFFIXES = ("<This message was edited>", "<Diese Nachricht wurde bearbeitet>",
                   "<Se editó este mensaje.>", "<Ce message a été modifié>")
_LRM = "\u200e"

_EPOCH = datetime(1970, 1, 1)


# Fast path: a text that does not start or end with one of these needs no cleaning (almost every
# chat message); placeholders were marked before (graftkit.parsers.placeholders.mark).
_EDGE = frozenset("<>[]\u200e \t\r\n\f\v")


def needs_cleaning(t: str) -> bool:
    """False for the common text that clean_text would return unchanged (cheap: no lower-casing)."""
    return not t or t[0] in _EDGE or t[-1] in _EDGE


def clean_text(text: str, media: bool, placeholder: str | None = None) -> tuple[str | None, str | None]:
    """Return (clean text, None) or (None, drop reason): a placeholder kind (media, deleted, call,
    location, view_once, poll) or "empty". Placeholders are recognised here too when not yet marked."""
    if placeholder is not None:
        return None, placeholder
    if media:
        return None, "media"
    if not needs_cleaning(text) and text not in _EXACT:
        kind = None
    else:
        kind = placeholder_kind(text)
    if kind is not None:
        return None, kind
    if not needs_cleaning(text):
        return text, None
    t = text.strip()
    if _LRM in t or t.endswith(">"):
        t = t.replace(_LRM, "").strip()
        for suffix in EDITED_SUFFIXES:
            if t.endswith(suffix):
                t = t[: -len(suffix)].rstrip()
                break
    if not t:
        return None, "empty"
    return t, None


def to_seconds(ts: str | None) -> float | None:
    """ISO timestamp -> seconds since 1970 (naive wall times read as if UTC); None if unreadable."""
    if ts is None:
        return None
    try:
        dt = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return (dt - _EPOCH).total_seconds() if dt.tzinfo is None else dt.timestamp()


def dedupe_messages(messages: Sequence[Message], min_overlap: float = 0.5) -> tuple[list[Message], int]:
    """Drop the messages of a conversation that is a (partial) re-export of an earlier one.

    A timestamped message is keyed by sender+timestamp+text, whatever its conversation id. When a
    conversation shares keys with an earlier conversation for at least `min_overlap` of the smaller
    one's timestamped messages, the shared messages are dropped from the later one. Why the ratio: the
    same person sending "lol" to two chats in the same minute is a real coincidence and is kept; a chat
    exported twice shares (nearly) everything. Keys are hashed to keep memory small.
    Returns (kept messages, number dropped).
    """
    if len({m.conversation for m in messages}) < 2:
        return list(messages), 0
    conv_ids: dict[str, int] = {}
    sizes: Counter = Counter()
    seen: dict[int, int | list[int]] = {}  # key hash -> conversation(s) holding it
    dups: list[tuple[int, int, tuple[int, ...]]] = []  # (message index, its conv, earlier convs)
    for i, m in enumerate(messages):
        if m.timestamp is None:
            continue
        c = conv_ids.setdefault(m.conversation, len(conv_ids))
        sizes[c] += 1
        h = hash((m.sender, m.timestamp, m.text))
        prev = seen.setdefault(h, c)
        if prev == c:
            continue
        convs = prev if isinstance(prev, list) else [prev]
        others = tuple(a for a in convs if a != c)
        if others:
            dups.append((i, c, others))
        if c not in convs:
            seen[h] = convs + [c]
    if not dups:
        return list(messages), 0
    overlap = Counter((c, a) for _, c, earlier in dups for a in earlier)
    pairs = {p for p, n in overlap.items() if n >= min_overlap * min(sizes[p[0]], sizes[p[1]])}
    drop = {i for i, c, earlier in dups if any((c, a) in pairs for a in earlier)}
    return [m for i, m in enumerate(messages) if i not in drop], len(drop)


@dataclass(slots=True)
class Turn:
    """One speaker's consecutive messages. `end` is the time of the last one (seconds) or None."""

    sender: str
    is_me: bool
    text: str
    end: float | None


@dataclass(slots=True)
class Session:
    """A run of turns in one conversation without a long silence; the unit of the train/val split."""

    conversation: str
    index: int  # session number within the conversation
    order: int  # global order of creation (input order), the tie-breaker for "recent"
    source: str
    turns: list[Turn] = field(default_factory=list)
    start: float | None = None
    end: float | None = None

    @property
    def key(self) -> str:
        return f"{self.conversation}\x1f{self.index}"

    def others(self) -> set[str]:
        return {t.sender for t in self.turns if not t.is_me}

    def has_me(self) -> bool:
        return any(t.is_me for t in self.turns)


@dataclass
class ShapeStats:
    dropped: Counter = field(default_factory=Counter)  # placeholder kind (media, deleted, call, ...) / empty
    merged: int = 0  # messages folded into the previous turn of the same sender


def group_by_conversation(messages: Iterable[Message]) -> dict[str, list[Message]]:
    """Conversation id -> its messages, in first-appearance order (parsers emit conversation order)."""
    groups: dict[str, list[Message]] = {}
    for m in messages:
        lst = groups.get(m.conversation)
        if lst is None:
            lst = groups[m.conversation] = []
        lst.append(m)
    return groups


def build_sessions(
    conversations: dict[str, list[Message]],
    is_me: dict[str | None, bool],
    *,
    merge_gap: float | None = 600.0,
    session_gap: float | None = 6 * 3600.0,
    untimed: str = "window",
    window_turns: int = 32,
    sender_names: dict[str | None, str] | None = None,
    stats: ShapeStats | None = None,
    progress: Iterable | None = None,
    consume: bool = False,
) -> list[Session]:
    """Merge and split every conversation into sessions.

    merge_gap: seconds within which consecutive messages of one sender are one turn (None: never
        merge; messages without timestamps always merge with the previous one of the same sender
        when merging is on).
    session_gap: a silence longer than this (seconds) starts a new session (None: never).
    untimed: for conversations with no timestamps at all, "conversation" (one session each) or
        "window" (chunks of `window_turns` turns, so a single long transcript can still be split).
    is_me: sender -> whether it is the person (every sender in the messages must be a key).
    sender_names: sender -> display name (e.g. scrubbed); defaults to the sender itself.
    consume: empty each conversation's list while reading it (its messages are freed as they become
        turns; the pipeline has written messages.jsonl already and needs them no more).
    """
    stats = stats if stats is not None else ShapeStats()
    parse_time = to_seconds
    edge = _EDGE
    sessions: list[Session] = []
    dropped = stats.dropped
    merged = 0
    items = progress if progress is not None else conversations.items()
    for conv, msgs in items:
        index = 0
        cur = Session(conv, index, len(sessions), msgs[0].source if msgs else "")
        any_time = False
        last: Turn | None = None
        last_sender: str | None = None
        prev_t: float | None = None
        prev_ts: str | None = None
        prev_ts_t: float | None = None
        for i, m in enumerate(msgs):
            if consume:
                msgs[i] = None
            text = m.text
            if m.placeholder is not None or m.media or not text or text[0] in edge or text[-1] in edge:
                text, reason = clean_text(text, m.media, m.placeholder)
                if text is None:
                    dropped[reason] += 1
                    continue
            ts = m.timestamp
            if ts is None:
                t = None
            elif ts == prev_ts:  # bursts share a minute: skip the parse
                t = prev_ts_t
            else:
                t = prev_ts_t = parse_time(ts)
                prev_ts = ts
            if t is not None:
                any_time = True
                if prev_t is not None and session_gap is not None and abs(t - prev_t) > session_gap and cur.turns:
                    sessions.append(cur)
                    index += 1
                    cur = Session(conv, index, len(sessions), m.source)
                    last = None
                prev_t = t
                if cur.start is None:
                    cur.start = t
                cur.end = t
            sender = m.sender
            if (last is not None and merge_gap is not None and last_sender == sender
                    and (t is None or last.end is None or t - last.end <= merge_gap)):
                last.text += "\n" + text
                if t is not None:
                    last.end = t
                merged += 1
                continue
            name = sender_names.get(sender, sender) if sender_names is not None else sender
            last = Turn(name if name is not None else "Unknown", is_me[sender], text, t)
            last_sender = sender
            cur.turns.append(last)
        if not cur.turns:
            continue
        if not any_time and untimed == "window" and len(cur.turns) > window_turns:
            for k, start in enumerate(range(0, len(cur.turns), window_turns)):
                sessions.append(Session(conv, k, len(sessions), cur.source, cur.turns[start:start + window_turns]))
        else:
            sessions.append(cur)
    stats.merged += merged
    return sessions


Sample = list[tuple[str, str]]  # (role, text) with role system/user/assistant


def session_samples(
    session: Session,
    *,
    window_turns: int = 32,
    window_overlap: int = 0,
    min_turns: int = 2,
    group_names: str = "auto",
    system_prompt: str | None = None,
    counts: Counter | None = None,
) -> list[Sample]:
    """The samples of one session: windows holding at least one turn of the person.

    group_names: "auto" prefixes other speakers' turns with "Name: " when the session has more than
        one other participant, "always" always, "never" never.
    counts: receives drop reasons ("no_me_turn", "too_short").
    """
    turns = session.turns
    if group_names == "always":
        prefix = True
    elif group_names == "never":
        prefix = False
    else:
        prefix = len(session.others()) > 1
    stride = max(1, window_turns - window_overlap)
    out: list[Sample] = []
    n = len(turns)
    start = 0
    while True:
        window = turns[start:start + window_turns]
        end = len(window)
        while end and not window[end - 1].is_me:  # trailing turns of others teach nothing
            end -= 1
        if end == 0:
            if counts is not None:
                counts["no_me_turn"] += 1
        else:
            sample: Sample = [("system", system_prompt)] if system_prompt else []
            n_turns = 0
            prev_role = None
            for t in window[:end]:
                role = "assistant" if t.is_me else "user"
                text = t.text if (t.is_me or not prefix) else f"{t.sender}: {t.text}"
                if role == prev_role:
                    sample[-1] = (role, sample[-1][1] + "\n" + text)
                else:
                    sample.append((role, text))
                    n_turns += 1
                prev_role = role
            if n_turns >= min_turns:
                out.append(sample)
            elif counts is not None:
                counts["too_short"] += 1
        if start + window_turns >= n:
            break
        start += stride
    return out


def render_turns(session: Session, group_names: str = "auto") -> list[tuple[bool, str]]:
    """(is_me, text) pairs for graftkit.corpus.render_session, with the same name prefixes as samples."""
    prefix = group_names == "always" or (group_names == "auto" and len(session.others()) > 1)
    return [(t.is_me, t.text if (t.is_me or not prefix) else f"{t.sender}: {t.text}") for t in session.turns]

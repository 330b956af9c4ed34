"""Who is "me": forgiving `--me` matching, and the sender list when it is missing.

Why forgiving: the same person shows up as "Sam", "sam" and "Sam Smith" across exports from different
phones and apps. Matching is case- and whitespace-insensitive but exact, several `--me` names may be
given, and a name that matches nobody is an error that lists the closest senders, never a silent
empty dataset. A name matches a sender's display names too (Discord nickname/global name), and
messages an export marks as the device owner's (SMS, iMessage: "Me") take the first `--me` name.
"""

from __future__ import annotations

import difflib
import sys
from collections import Counter
from typing import Callable, Iterable, Sequence

from ..config import brief
from ..errors import UserError
from ..messages import Message


def apply_owner(messages: Iterable[Message], me: Sequence[str] | None) -> int:
    """Messages the export marks as the device owner's (SMS, iMessage) become `me[0]`'s.

    Why: those exports have no name for the owner ("Me"), so one `--me "Alex Kim"` must cover them
    next to a WhatsApp export where the person is "Alex Kim". Returns how many were renamed.
    """
    if not me:
        return 0
    name, n = me[0], 0
    for m in messages:
        if m.owner:
            m.sender = name
            n += 1
    return n


def sender_aliases(messages: Iterable[Message]) -> dict[str, set[str]]:
    """sender -> the other names the export shows for them (from Message.aliases)."""
    out: dict[str, set[str]] = {}
    seen: set[tuple] = set()
    for m in messages:
        a = m.aliases
        if a and m.sender is not None and (m.sender, a) not in seen:
            seen.add((m.sender, a))
            out.setdefault(m.sender, set()).update(a)
    return out


def norm_name(name: str | None) -> str:
    """The matching key of a sender name: case-folded, U+200E removed, whitespace collapsed."""
    if name is None:
        return ""
    return " ".join(name.replace("\u200e", "").casefold().split())


def sender_table(counts: Counter, limit: int = 30) -> str:
    """Numbered 'count  name' lines, most active first (numbers are what the prompt accepts)."""
    rows = [(s, n) for s, n in counts.most_common() if s is not None]
    width = len(str(rows[0][1])) if rows else 1
    lines = [f"  {i:>2}. {n:>{width}}  {s}" for i, (s, n) in enumerate(rows[:limit], 1)]
    if len(rows) > limit:
        lines.append(f"      ... and {len(rows) - limit} more")
    if counts.get(None):
        lines.append(f"      {counts[None]} messages without a sender")
    return "\n".join(lines)


def match_me(counts: Counter, names: Sequence[str], aliases: dict[str, set[str]] | None = None) -> set[str]:
    """The senders that `names` refer to; UserError naming close matches when one matches nobody.

    aliases: sender -> other names the export shows for them (Discord display name and nickname);
    `--me` may use any of them.
    """
    by_norm: dict[str, list[str]] = {}
    for s in counts:
        if s is not None:
            by_norm.setdefault(norm_name(s), []).append(s)
    for s, other in (aliases or {}).items():
        for a in other:
            hits = by_norm.setdefault(norm_name(a), [])
            if s not in hits:
                hits.append(s)
    me: set[str] = set()
    for name in names:
        key = norm_name(name)
        hits = by_norm.get(key)
        if hits:
            me.update(hits)
            continue
        close = difflib.get_close_matches(key, list(by_norm), n=3, cutoff=0.6)
        close += [k for k in by_norm if key and key in k and k not in close][:3]
        suggestions = [by_norm[k][0] for k in close]
        hint = (f"did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else
                "most active senders: " + ", ".join(f"{brief(s)} ({n})" for s, n in counts.most_common(5)
                                                   if s is not None))
        raise UserError(f"--me {brief(name)} matches no sender; {hint}")
    return me


def ask_me(counts: Counter, interactive: bool, ask: Callable[[str], str] = input,
           aliases: dict[str, set[str]] | None = None) -> list[str]:
    """No --me given: show the senders; on a terminal ask for one, otherwise fail with the hint."""
    print("Senders in the input (messages):")
    print(sender_table(counts))
    ranked = [s for s, _ in counts.most_common() if s is not None]
    if not interactive:
        sys.stdout.flush()
        top = ", ".join(f"{s} ({counts[s]})" for s in ranked[:5])
        raise UserError(f"which sender are you? pass --me NAME (most active: {top})")
    while True:
        try:
            answer = ask("Which sender is you? (number or name, several separated by ','): ").strip()
        except EOFError:
            raise UserError("no sender chosen; pass --me NAME") from None
        picks = [a.strip() for a in answer.split(",") if a.strip()]
        names = []
        for p in picks:
            names.append(ranked[int(p) - 1] if p.isdigit() and 1 <= int(p) <= len(ranked) else p)
        if not names:
            continue
        try:
            match_me(counts, names, aliases)
            return names
        except UserError as e:
            print(e.message)

"""prepare_training_data.py's engine: inputs -> messages -> sessions -> samples -> split -> files.

`prepare(opts)` does everything in memory first and only then publishes every output through one
OutputSet, so any error (bad input, unknown --me, a tokenizer that cannot load) leaves the files of
a previous run untouched. Every stage is one linear pass; texts are shared between stages, not
copied, and the JSON lines are built with the C string encoder (1M messages is the design size).
"""

from __future__ import annotations

import gc
import json
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from json.encoder import encode_basestring as _js  # C-accelerated, ensure_ascii=False quoting
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tqdm import tqdm

from ..corpus import END, ME, THEM, neutralise_markers, render_session, special_pattern
from ..errors import UserError
from ..fileio import OutputSet
from ..messages import Message
from ..parsers import parse_input, whatsapp
from ..parsers.placeholders import KINDS as PLACEHOLDER_KINDS
from ..parsers.placeholders import coarse, mark
from ..samples import ROLE_TO_SHAREGPT
from .pii import KINDS, Scrubber
from .senders import apply_owner, ask_me, match_me, sender_aliases
from .shaping import (Sample, Session, ShapeStats, build_sessions, dedupe_messages, group_by_conversation,
                      render_turns, session_samples)
from .split import assign_split
from .stats import format_summary
from .tokenizer_report import load_token_counter, token_report

TRAINING_FORMATS = {"sharegpt_jsonl", "openai_messages_jsonl"}
ROLE_OF = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}
AUTO_SYSTEM_PROMPT = "You are {me}. Reply the way {me} would in a chat."
OUTPUT_FILES = ("messages.jsonl", "sharegpt_format.jsonl", "sharegpt_train.jsonl", "sharegpt_val.jsonl",
                "corpus_train.txt", "corpus_val.txt", "stats.json")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float | None:
    """'90s', '10m', '6h', '1d' or a bare number of minutes -> seconds; 'off'/'none'/'never' -> None."""
    if text.strip().lower() in ("off", "none", "never", "no"):
        return None
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 6h, 1d or off)")
    unit = m.group(2).lower() or "m"
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@dataclass
class PrepareOptions:
    """Every knob of prepare_training_data.py (the script's --help documents each)."""

    inputs: list[str]
    out: str = "training_data"
    me: list[str] | None = None
    fmt: str | None = None
    merge_gap: float | None = 600.0
    session_gap: float | None = 6 * 3600.0
    untimed_sessions: str = "window"
    window_turns: int = 32
    window_overlap: int = 0
    min_turns: int = 2
    group_names: str = "auto"
    system_prompt: str | None = None
    scrub: bool = True
    dedupe: bool = True
    val_fraction: float = 0.1
    split: str = "random"
    split_by: str = "session"
    seed: int = 1337
    tokenizer: str | None = None
    max_seq_length: int = 2048
    date_order: str | None = None  # WhatsApp day/month order: None = inferred per file, or dmy/mdy/ymd
    interactive: bool = False
    progress: bool | None = None  # tqdm's `disable`: None = only on a terminal

    def validate(self) -> None:
        if not self.inputs:
            raise UserError("no INPUT given")
        if self.window_turns < 1:
            raise UserError("--window-turns must be at least 1")
        if not 0 <= self.window_overlap < self.window_turns:
            raise UserError("--window-overlap must be >= 0 and smaller than --window-turns")
        if not 0 <= self.val_fraction < 1:
            raise UserError("--val-fraction must be in [0, 1)")
        if self.max_seq_length < 1:
            raise UserError("--max-seq-length must be positive")
        if self.date_order not in (None, "dmy", "mdy", "ymd"):
            raise UserError(f"--date-order must be dmy, mdy or ymd (got {self.date_order!r})")
        for what, value in (("--out", self.out), ("--tokenizer", self.tokenizer), *(("INPUT", i) for i in self.inputs)):
            if value is not None and "\x00" in str(value):  # only from Python (a shell cannot pass one)
                raise UserError(f"{what} contains a NUL character (\\x00), which no path can hold")


@dataclass
class Unit:
    """What the split assigns: a chat session, or one record of a ShareGPT/OpenAI input."""

    key: str
    conversation: str
    end: float | None
    session: Session | None = None
    record: Sample | None = None
    samples: list[Sample] = field(default_factory=list)
    is_val: bool = False

    def transcript_turns(self, group_names: str) -> list[tuple[bool, str]]:
        if self.session is not None:
            return render_turns(self.session, group_names)
        return [(role == "assistant", text) for role, text in self.record or [] if role != "system"]


@dataclass
class Loaded:
    chat: list[Message] = field(default_factory=list)
    training: list[Message] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)


def load_inputs(paths: list[str], fmt: str | None, bar: Callable = lambda x, **k: x) -> Loaded:
    """Parse every INPUT; chat messages and ShareGPT/OpenAI records are kept apart.

    Conversation ids stay unique across inputs (the same file given twice becomes two
    conversations, which the message de-duplication then folds into one).
    """
    loaded = Loaded()
    owner: dict[str, int] = {}
    # Names pass like texts: a lone surrogate (half an emoji) in a sender name crashed stats.json and the
    # printed summary. Names are made printable once here (shown as \udXXX; --me can match that form).
    fixed: dict[str, str] = {}
    fixed_aliases: dict[tuple, tuple] = {}
    for i, path in enumerate(bar(paths, desc="parsing", unit="input")):
        res = parse_input(path, fmt)
        loaded.inputs.append({"path": printable(str(path)), "files": [{"file": printable(f), "format": k,
                                                                       "messages": n} for f, k, n in res.files],
                              "skipped": [printable(s) for s in res.skipped]})
        pos = 0
        for label, kind, n in res.files:
            target = loaded.training if kind in TRAINING_FORMATS else loaded.chat
            renamed: dict[str, str] = {}
            for j in range(pos, pos + n):
                m = res.messages[j]
                conv = renamed.get(m.conversation)
                if conv is None:
                    conv = renamed[m.conversation] = printable(
                        _conversation_id(m.conversation, label, kind, str(path), i, owner))
                m.conversation = conv
                sender = m.sender
                if sender is not None and not sender.isascii():
                    name = fixed.get(sender)
                    m.sender = name if name is not None else fixed.setdefault(sender, printable(sender))
                if m.aliases:
                    names = fixed_aliases.get(m.aliases)
                    m.aliases = names if names is not None else fixed_aliases.setdefault(
                        m.aliases, tuple(map(printable, m.aliases)))
                target.append(m)
            pos += n
    return loaded


def _conversation_id(conv: str, label: str, kind: str, root: str, i: int, owner: dict[str, int]) -> str:
    """Short, unique conversation id: relative to the INPUT it came from, unique across inputs.

    Why short: it is repeated on every line of messages.jsonl. Why unique: the same export given as
    two inputs must stay two conversations for the de-duplication to recognise it.
    """
    if kind in TRAINING_FORMATS:  # the parser's id is the record index in the file
        conv = f"{label}#{conv}"
    root = root.rstrip("/")
    if conv == root or conv.startswith(root + "#"):  # a file INPUT: its name
        conv = (Path(root).name or root) + conv[len(root):]
    elif conv.startswith(root + "/"):  # a file in a folder or zip INPUT: its path inside
        conv = conv[len(root) + 1:]
    if owner.setdefault(conv, i) != i:
        conv = f"{conv} [input {i + 1}]"
        owner.setdefault(conv, i)
    return conv


def _scrub_conversations(chat: list[Message], loaded: Loaded, scrubber: Scrubber) -> None:
    """Conversation ids and input file names hold phone numbers and e-mails too ("WhatsApp Chat with
    +44 7700 900123.txt", an iMessage handle): they get the same pseudonyms as the senders."""
    ids: dict[str, str] = {}
    for m in chat:
        new = ids.get(m.conversation)
        if new is None:
            new = ids[m.conversation] = scrubber.scrub_name(m.conversation)
        m.conversation = new
    for entry in loaded.inputs:
        entry["path"] = scrubber.scrub_name(entry["path"])
        for f in entry["files"]:
            f["file"] = scrubber.scrub_name(f["file"])
        entry["skipped"] = [scrubber.scrub_name(x) for x in entry["skipped"]]


def _records(training: list[Message]) -> list[tuple[str, Sample]]:
    """Group ShareGPT/OpenAI messages back into (conversation id, [(role, text)]) records."""
    out: list[tuple[str, Sample]] = []
    for conv, msgs in group_by_conversation(training).items():
        out.append((conv, [(ROLE_OF.get(m.sender or "", "user"), m.text) for m in msgs]))
    return out


def _message_lines(messages: Iterable[Message], names_out: dict, is_me: Callable[[str | None], bool],
                   batch: int = 8192) -> Iterator[str]:
    """messages.jsonl, `batch` lines per chunk. Placeholders are kept, marked "kind": "media" or
    "system" with their "placeholder" kind; every other line has "kind": "text".

    Why so low-level: it runs once per message, so the JSON fragments that repeat (conversation,
    sender, is_me + source + kind) are encoded once and cached, and only the text and the timestamp
    are encoded per line."""
    head: dict[str, str] = {}
    mid: dict[str | None, str] = {}
    tail: dict[tuple[str | None, str, str | None], str] = {}
    prev_ts: str | None = None
    ts_js = "null"
    buf: list[str] = []
    for m in messages:
        h = head.get(m.conversation)
        if h is None:
            h = head[m.conversation] = f'{{"conversation": {_js(m.conversation)}, "timestamp": '
        if m.timestamp != prev_ts:
            prev_ts = m.timestamp
            ts_js = "null" if prev_ts is None else _js(prev_ts)
        sender = m.sender
        md = mid.get(sender)
        if md is None:
            name = names_out.get(sender, sender)
            md = mid[sender] = f', "sender": {"null" if name is None else _js(name)}, "text": '
        key = (sender, m.source, m.placeholder)
        tl = tail.get(key)
        if tl is None:
            ph = m.placeholder
            mark_js = (', "kind": "text"' if ph is None else
                       f', "kind": "{coarse(ph)}", "placeholder": {_js(ph)}')
            tl = tail[key] = (f', "is_me": {"true" if is_me(sender) else "false"}, '
                              f'"source": {_js(m.source)}{mark_js}}}\n')
        buf.append(h + ts_js + md + _js(m.text) + tl)
        if len(buf) >= batch:
            yield "".join(buf)
            buf.clear()
    if buf:
        yield "".join(buf)


def _sharegpt_line(sample: Sample) -> str:
    return ('{"conversations": ['
            + ", ".join(f'{{"from": "{ROLE_TO_SHAREGPT[r]}", "value": {_js(t)}}}' for r, t in sample)
            + "]}\n")


def prepare(opts: PrepareOptions, ask: Callable[[str], str] = input) -> dict[str, Any]:
    """Run the whole pipeline and write the outputs into opts.out; returns the stats.

    The cyclic garbage collector is paused meanwhile: the pipeline makes millions of small objects
    and no cycles, and with 1M messages alive every full collection rescans them all (~10% of the
    run time for nothing).
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _prepare(opts, ask)
    finally:
        if gc_was_enabled:
            gc.enable()


def _prepare(opts: PrepareOptions, ask: Callable[[str], str]) -> dict[str, Any]:
    opts.validate()
    disable = (not opts.progress) if opts.progress is not None else None

    def bar(it, **kw):
        return tqdm(it, disable=disable, leave=False, file=sys.stderr, **kw)

    counter = load_token_counter(opts.tokenizer) if opts.tokenizer else None  # fail before the slow part
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        timings[stage] = round(now - clock[0], 3)
        clock[0] = now

    whatsapp.DATE_ORDER = opts.date_order
    whatsapp.DATE_DECISIONS.clear()
    try:
        loaded = load_inputs(opts.inputs, opts.fmt, bar)
    finally:
        whatsapp.DATE_ORDER = None
    date_orders = [{"file": f, "order": o, "why": w} for f, o, w in whatsapp.DATE_DECISIONS]
    lap("parse")
    parsed = len(loaded.chat) + len(loaded.training)
    dup_msgs = 0
    chat = loaded.chat
    if opts.dedupe and chat:
        chat, dup_msgs = dedupe_messages(chat)

    lap("dedupe")

    # --- who is me
    apply_owner(chat, opts.me)
    counts: Counter = Counter(map(attrgetter("sender"), chat))
    aliases = sender_aliases(chat)
    me: set[str] = set()
    if chat:
        names = opts.me or ask_me(counts, opts.interactive, ask, aliases)
        me = match_me(counts, names, aliases)
    is_me = {s: s in me for s in counts}

    mark(chat)  # placeholders (media, deleted, calls, ...) before scrubbing changes their text

    # --- PII
    scrubber = Scrubber()
    names_out: dict[str | None, str | None] = {s: s for s in counts}
    if opts.scrub:
        for s in counts:
            if s is not None:
                names_out[s] = scrubber.scrub_name(s)
        _scrub_conversations(chat, loaded, scrubber)
        sc = scrubber.scrub
        for m in bar(chat, desc="scrubbing PII", unit="msg", mininterval=0.5):
            m.text = sc(m.text)
        for m in loaded.training:
            m.text = sc(m.text)
    escaped = _neutralise(chat, loaded.training, names_out, _extra_specials(counter))

    me_name = max(me, key=counts.__getitem__) if me else (opts.me[0] if opts.me else None)
    system_prompt = _system_prompt(opts.system_prompt, names_out.get(me_name, me_name))  # scrubbed name
    lap("scrub")

    # --- from here on every output is staged and published together when the block ends without an
    # error (OutputSet). messages.jsonl goes first so that the messages can be freed while the
    # sessions are built: a 1M-message chat is then never held as messages, turns and samples at once.
    out_dir = Path(opts.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError("--out exists and is not a folder", out_dir)
    with OutputSet(out_dir) as out:
        _write_messages(out, chat, loaded.training, is_me, names_out, bar)
        lap("messages.jsonl")
        n_chat = len(chat)
        by_source = Counter(map(attrgetter("source"), chat))
        shape = ShapeStats()
        convs = group_by_conversation(chat)
        chat.clear()
        loaded.chat.clear()
        sessions = build_sessions(
            convs, is_me, merge_gap=opts.merge_gap, session_gap=opts.session_gap, untimed=opts.untimed_sessions,
            window_turns=opts.window_turns, sender_names=names_out, stats=shape, consume=True,
            progress=bar(convs.items(), total=len(convs), desc="sessions", unit="chat"))
        del convs
        lap("sessions")
        sample_drops: Counter = Counter()
        units = _make_units(sessions, _records(loaded.training), opts, system_prompt, sample_drops)
        lap("samples")
        _dedupe_samples(units, sample_drops)
        n_samples = sum(len(u.samples) for u in units)
        if n_samples == 0:
            who = ", ".join(sorted(names_out.get(s) or "" for s in me)) or "the assistant"
            raise UserError(f"no training samples: a sample needs a text message by {who} and at least "
                            f"{opts.min_turns} turns in one session ({len(sessions)} sessions, dropped "
                            f"{dict(sample_drops)}); check --me, --session-gap, --min-turns", opts.inputs[0])
        _split(units, opts)
        lap("split")

        tok = None
        if counter is not None:
            tok = token_report(counter, [smp for u in units for smp in u.samples], opts.max_seq_length)
            lap("tokenizer")

        # --- stats
        by_sender: Counter = Counter()
        for s, n in counts.items():
            by_sender[names_out[s]] += n
        by_sender.update(map(attrgetter("sender"), loaded.training))
        by_source.update(map(attrgetter("source"), loaded.training))
        live = [u for u in units if u.samples]
        val_units = [u for u in live if u.is_val]
        stats: dict[str, Any] = {
            "inputs": loaded.inputs,
            "me": sorted(names_out.get(s) or "" for s in me),
            "messages": {
                "parsed": parsed,
                "written": n_chat + len(loaded.training),
                "me": sum(counts[s] for s in me),
                "by_sender": dict(by_sender.most_common()),
                "by_source": dict(by_source.most_common()),
            },
            "dropped": {"duplicate_message": dup_msgs, **{k: shape.dropped[k] for k in PLACEHOLDER_KINDS},
                        "empty": shape.dropped["empty"]},
            "merged_messages": shape.merged,
            "sessions": {"total": len(sessions), "with_samples": sum(1 for u in live if u.session is not None)},
            "records": len(units) - len(sessions),
            "samples": {
                "total": n_samples,
                "train": sum(len(u.samples) for u in live if not u.is_val),
                "val": sum(len(u.samples) for u in val_units),
                "dropped": {k: sample_drops[k] for k in ("no_me_turn", "too_short", "duplicate_sample")},
            },
            "pii": {"enabled": opts.scrub, "replacements": {k: scrubber.counts[k] for k in KINDS}},
            "special_tokens_escaped": escaped,
            "split": {"mode": opts.split, "by": opts.split_by, "val_fraction": opts.val_fraction, "seed": opts.seed,
                      "train_units": len(live) - len(val_units), "val_units": len(val_units)},
            "tokenizer": tok,
            "settings": {k: v for k, v in asdict(opts).items() if k not in ("interactive", "progress")},
        }
        if opts.scrub:  # input paths hold numbers too ("WhatsApp Chat with +44 ...")
            stats["settings"]["inputs"] = [scrubber.scrub_name(p) for p in opts.inputs]
            for d in date_orders:
                d["file"] = scrubber.scrub_name(d["file"])
        stats["date_order"] = date_orders
        if stats["settings"]["system_prompt"] is not None:
            stats["settings"]["system_prompt"] = system_prompt

        warnings = []
        if not val_units and opts.val_fraction > 0:
            warnings.append(f"validation set is empty ({len(live)} session(s) with samples; the split never cuts "
                            f"a session): give more data, or --val-fraction 0 and let the trainer split")
        if tok and tok["over_max_seq_length"]:
            warnings.append(f"{tok['over_max_seq_length']} samples exceed --max-seq-length {opts.max_seq_length} "
                            f"tokens (they will not fit the model as they are): lower --window-turns")
        stats["warnings"] = warnings
        stats["timings_s"] = timings
        _write_samples(out, units)
        stats["corpus"] = _write_corpus(out, units, opts.group_names)
        lap("write")
        out.write_text("stats.json", printable(json.dumps(stats, ensure_ascii=False, indent=2)) + "\n")
    print(printable(format_summary(stats)))
    return stats


def printable(text: str) -> str:
    """`text` with lone surrogates (half an emoji from a broken export, a file name that is not UTF-8) as
    `\\udXXX` escapes, so that writing it as UTF-8 cannot fail. Inside a JSON string literal the
    escape is the JSON for that same character, so stats.json stays exact."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _extra_specials(counter: Any) -> re.Pattern | None:
    """The --tokenizer's special tokens that neutralise_markers' built-in patterns do not already break."""
    if counter is None:
        return None
    return special_pattern(t for t in counter.specials if neutralise_markers(t)[1] == 0)


def _neutralise(chat: list[Message], training: list[Message], names_out: dict,
                extra: re.Pattern | None = None) -> dict[str, int]:
    """Break every special-token string (graftkit.corpus.neutralise_markers) in the texts and the
    sender names that reach the outputs; returns how many texts and names had one (stats.json)."""
    texts = 0
    for msgs in (chat, training):
        for m in msgs:
            t = m.text
            if extra is not None or "<" in t or "[" in t:
                new, n = neutralise_markers(t, extra)
                if n:
                    m.text = new
                    texts += 1
    names = 0
    for s, name in names_out.items():
        if name:
            new, n = neutralise_markers(name, extra)
            if n:
                names_out[s] = new
                names += 1
    return {"texts": texts, "names": names}


def _system_prompt(spec: str | None, me_name: str | None) -> str | None:
    """--system-prompt: None, 'auto', or a text where {me} is replaced by the person's name."""
    if spec is not None and spec.strip().lower() == "auto":
        spec = AUTO_SYSTEM_PROMPT
    if spec and "{me}" in spec:
        if me_name is None:
            raise UserError("--system-prompt uses {me} but there is no --me name to put in")
        spec = spec.replace("{me}", me_name)
    return spec or None


def _make_units(sessions: list[Session], records: list[tuple[str, Sample]], opts: PrepareOptions,
                system_prompt: str | None, drops: Counter) -> list[Unit]:
    """One unit per chat session (its windows as samples) and per ShareGPT/OpenAI record (as is)."""
    units: list[Unit] = []
    for s in sessions:
        u = Unit(s.key, s.conversation, s.end, session=s)
        u.samples = session_samples(s, window_turns=opts.window_turns, window_overlap=opts.window_overlap,
                                    min_turns=opts.min_turns, group_names=opts.group_names,
                                    system_prompt=system_prompt, counts=drops)
        units.append(u)
    for conv, record in records:
        u = Unit(conv, conv, None, record=record)
        if not any(r == "assistant" for r, _ in record):
            drops["no_me_turn"] += 1
        else:
            has_system = record[0][0] == "system"
            u.samples = [record if has_system or not system_prompt else [("system", system_prompt)] + record]
        units.append(u)
    return units


def _dedupe_samples(units: list[Unit], drops: Counter) -> None:
    """Drop samples identical to an earlier one (before the split, so no copy can sit on both sides)."""
    seen: set[int] = set()
    for u in units:
        kept = []
        for smp in u.samples:
            h = hash(tuple(smp))
            if h in seen:
                drops["duplicate_sample"] += 1
            else:
                seen.add(h)
                kept.append(smp)
        u.samples = kept


def _split(units: list[Unit], opts: PrepareOptions) -> None:
    """Assign each unit (or each whole conversation with --split-by conversation) to train or val."""
    if opts.split_by == "conversation":
        groups: dict[str, list[Unit]] = {}
        for u in units:
            groups.setdefault(u.conversation, []).append(u)
        keys = list(groups)
        weights = [sum(len(u.samples) for u in g) for g in groups.values()]
        times = [max((u.end for u in g if u.end is not None), default=None) for g in groups.values()]
        flags = assign_split(keys, weights, times, val_fraction=opts.val_fraction, mode=opts.split, seed=opts.seed)
        for g, f in zip(groups.values(), flags):
            for u in g:
                u.is_val = f
    else:
        flags = assign_split([u.key for u in units], [len(u.samples) for u in units], [u.end for u in units],
                             val_fraction=opts.val_fraction, mode=opts.split, seed=opts.seed)
        for u, f in zip(units, flags):
            u.is_val = f


def _open(out: OutputSet, name: str):
    # backslashreplace: a lone surrogate from a broken export must not abort the whole run
    return open(out.path(name), "w", encoding="utf-8", errors="backslashreplace", newline="\n")


def _write_messages(out: OutputSet, chat: list[Message], training: list[Message], is_me: dict, names_out: dict,
                    bar: Callable) -> None:
    with _open(out, "messages.jsonl") as f:
        for chunk in _message_lines(bar(chat, desc="messages.jsonl", unit="msg", mininterval=0.5),
                                    names_out, is_me.__getitem__):
            f.write(chunk)
        for chunk in _message_lines(training, {}, lambda s: ROLE_OF.get(s or "") == "assistant"):
            f.write(chunk)


def _write_samples(out: OutputSet, units: list[Unit]) -> None:
    with _open(out, "sharegpt_format.jsonl") as f_all, _open(out, "sharegpt_train.jsonl") as f_tr, \
            _open(out, "sharegpt_val.jsonl") as f_va:
        for u in units:
            for smp in u.samples:
                line = _sharegpt_line(smp)
                f_all.write(line)
                (f_va if u.is_val else f_tr).write(line)


def _write_corpus(out: OutputSet, units: list[Unit], group_names: str, batch: int = 4096) -> dict[str, int]:
    """corpus_train.txt / corpus_val.txt: one transcript per unit (graftkit.corpus.render_session's
    format), written `batch` turns at a time: one busy group chat can be a single session of a
    million turns, and rendering it as one string would double its size in memory."""
    chars = {"train": 0, "val": 0}
    n_sess = {"train": 0, "val": 0}
    with _open(out, "corpus_train.txt") as f_tr, _open(out, "corpus_val.txt") as f_va:
        for u in units:
            if not u.samples:
                continue
            side, f = ("val", f_va) if u.is_val else ("train", f_tr)
            if u.session is not None:
                s = u.session
                prefix = group_names == "always" or (group_names == "auto" and len(s.others()) > 1)
                turns = s.turns
                for start in range(0, len(turns), batch):
                    text = "".join(
                        f"{ME}{t.text}\n" if t.is_me else (f"{THEM}{t.sender}: {t.text}\n" if prefix else
                                                            f"{THEM}{t.text}\n")
                        for t in turns[start:start + batch])
                    f.write(text)
                    chars[side] += len(text)
                f.write(END + "\n")
                chars[side] += len(END) + 1
            else:
                text = render_session(u.transcript_turns(group_names))
                f.write(text)
                chars[side] += len(text)
            n_sess[side] += 1
    return {"train_sessions": n_sess["train"], "val_sessions": n_sess["val"],
            "train_chars": chars["train"], "val_chars": chars["val"]}

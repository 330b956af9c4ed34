"""The printed summary of a prepare run (stats.json holds the same numbers, machine-readable)."""

from __future__ import annotations

from typing import Any


def _counts(d: dict[str, int], limit: int = 8) -> str:
    items = [(k, v) for k, v in d.items() if v]
    shown = ", ".join(f"{k} {v}" for k, v in items[:limit])
    if len(items) > limit:
        shown += f", ... ({len(items) - limit} more)"
    return shown or "none"


def format_summary(stats: dict[str, Any]) -> str:
    """A dozen lines a person can read after the run: what went in, what was dropped, what came out."""
    msg, smp, split = stats["messages"], stats["samples"], stats["split"]
    files = sum(len(i["files"]) for i in stats["inputs"])
    skipped = sum(len(i["skipped"]) for i in stats["inputs"])
    lines = [
        f"inputs: {len(stats['inputs'])} ({files} chat files" + (f", {skipped} skipped" if skipped else "") + ")",
        f"me: {', '.join(stats['me']) or '(assistant turns)'}",
        f"messages: {msg['written']} ({msg['me']} by me); by sender: {_counts(msg['by_sender'])}",
        f"by source: {_counts(msg['by_source'])}",
        f"dropped messages: {_counts(stats['dropped'])}; merged into previous turn: {stats['merged_messages']}",
        f"sessions: {stats['sessions']['total']} ({stats['sessions']['with_samples']} with samples)"
        + (f"; training records: {stats['records']}" if stats.get("records") else ""),
        f"samples: {smp['total']} (train {smp['train']}, val {smp['val']}); dropped: {_counts(smp['dropped'])}",
        f"split: {split['mode']} by {split['by']}, val fraction {split['val_fraction']}, seed {split['seed']}: "
        f"{split['train_units']} train / {split['val_units']} val units",
    ]
    orders = stats.get("date_order") or []
    if orders:
        kinds = sorted({(d["order"], d["why"]) for d in orders})
        lines.append("WhatsApp dates read as " + "; ".join(f"{o.upper()} ({why})" for o, why in kinds)
                     + (" in " + str(len(orders)) + " files" if len(orders) > 1 else "")
                     + "; override with --date-order dmy|mdy|ymd")
    pii = stats["pii"]
    lines.append("PII replaced: " + (_counts(pii["replacements"]) if pii["enabled"] else "off (--no-scrub)"))
    esc = stats.get("special_tokens_escaped") or {}
    if any(esc.values()):
        lines.append(f"special-token strings (<|me|>, <|endoftext|>, </s>, ...) broken with U+200B so no tokenizer "
                     f"reads them as markers: in {esc.get('texts', 0)} texts, {esc.get('names', 0)} names")
    corpus = stats.get("corpus")
    if corpus:
        lines.append(f"corpus: train {corpus['train_sessions']} sessions / {corpus['train_chars']} chars, "
                     f"val {corpus['val_sessions']} sessions / {corpus['val_chars']} chars")
    tok = stats.get("tokenizer")
    if tok:
        lines.append(f"tokens ({tok['tokenizer']}, {tok['kind']}): p50 {tok['p50']}, p90 {tok['p90']}, "
                     f"p99 {tok['p99']}, max {tok['max']}; {tok['over_max_seq_length']} of {tok['samples']} "
                     f"samples exceed --max-seq-length {tok['max_seq_length']}")
    lines += [f"warning: {w}" for w in stats.get("warnings", [])]
    t = stats.get("timings_s")
    if t:
        lines.append("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()) + f" (total {sum(t.values()):.1f}s)")
    lines.append(f"wrote {stats['settings']['out']}/: messages.jsonl, sharegpt_format.jsonl, sharegpt_train.jsonl, "
                 f"sharegpt_val.jsonl, corpus_train.txt, corpus_val.txt, stats.json")
    return "\n".join(lines)

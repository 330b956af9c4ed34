"""Write the evaluation outputs together (atomically, via OutputSet):

- report.md: the human-readable report (tables, examples, definitions, the figure);
- metrics.json: every number, plus what was evaluated and how (NaN/inf written as null); no
  timings, so a rerun with the same seed and settings writes the same file;
- distributions.png: reply-length histograms, style bars, authorship and perplexity bars;
- generations.jsonl: one row per evaluated context (context, real reply, each model's reply, NLLs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ..fileio import OutputSet
from . import metrics

REPORT_MD = "report.md"
METRICS_JSON = "metrics.json"
FIGURE_PNG = "distributions.png"
GENERATIONS_JSONL = "generations.jsonl"

SHARE_STATS = ["emoji_rate", "lowercase_rate", "ends_period_rate", "exclaim_rate", "question_rate",
               "ellipsis_rate"]
COLORS = {"real": "#333333", "base": "#1f77b4", "tuned": "#d62728", "partners": "#aaaaaa"}


def json_safe(obj: Any) -> Any:
    """Replace NaN/inf by None recursively (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{digits}f}"


def _pct(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{100 * x:.1f}%"


def _inline(text: str, limit: int = 300) -> str:
    """One line of Markdown-safe text: newlines shown as ' ⏎ ', table pipes escaped, long text cut."""
    t = "".join(c if c == "\n" or c.isprintable() else "\ufffd" for c in text).strip()
    if len(t) > limit:
        t = t[:limit] + "…"
    t = t.replace("|", "\\|").replace("\n", " ⏎ ")
    return t if t else "*(empty)*"


def perplexity_verdict(ppl: dict) -> str:
    """One sentence: is the tuned model better at predicting the real replies than the base, by how much."""
    base, tuned, change = ppl.get("base"), ppl.get("tuned"), ppl.get("relative_change")
    if not all(isinstance(x, float) and math.isfinite(x) for x in (base, tuned, change)):
        return "Perplexity could not be compared (no reply tokens were scored)."
    nll = ppl.get("nll_per_token", {})
    d_nll = nll.get("tuned", math.nan) - nll.get("base", math.nan)
    if tuned < base:
        return (f"**The tuned model's perplexity is {100 * -change:.1f}% lower than the base's** ({base:.2f} → "
                f"{tuned:.2f}; {-d_nll:.3f} nats per token less): it finds your real replies more predictable.")
    return (f"**Warning: the tuned model is not better than the base** ({base:.2f} → {tuned:.2f}, "
            f"{100 * change:+.1f}%). Likely causes: too little training (few steps, a high final validation "
            "loss), a different chat template or system prompt than in training, or held-out conversations "
            "unlike the training ones.")


def authorship_reading(auth: dict) -> str:
    """How to read the authorship shares, given where the ceiling, floor and nonsense control landed."""
    ceiling, floor = auth["person_real"]["attributed_share"], auth["partners_real"]["attributed_share"]
    control = auth.get("scrambled_real", {}).get("attributed_share")
    text = (f"Read a model's share between the floor ({_pct(floor)}) and the ceiling ({_pct(ceiling)}): the "
            "closer to the ceiling, the more its replies read like yours.")
    if control is not None and control > floor + 0.5 * (ceiling - floor):
        text += (f" **Caution:** the classifier attributes shuffled-letter nonsense to you too ({_pct(control)}), "
                 "so a high share can also mean unreadable text; it counts only for replies that read as "
                 "language (see the examples).")
    return text


def render_markdown(results: dict, meta: dict) -> str:
    ppl, style, auth = results["perplexity"], results["style"], results["authorship"]
    st = style["stats"]
    cols = ["real", "base", "tuned", "partners"]
    lines = [
        "# Persona evaluation: does it sound like you?",
        "",
        f"- **kind:** {meta.get('kind')}",
        f"- **tuned model:** {meta.get('tuned')}",
        f"- **base model:** {meta.get('base')}",
        f"- **held-out contexts:** {results['n_contexts']} (of {meta.get('n_candidates', '?')} person replies "
        f"with a partner message before them) from `{meta.get('val_file')}`",
        f"- **authorship classifier trained on:** `{meta.get('train_file')}`",
        f"- **generation:** {meta.get('generation')}",
        "",
        "## Reply perplexity",
        "",
        "How predictable the person's real held-out replies are to each model, given the preceding turns "
        "(only reply tokens are scored). Lower is better.",
        "",
        "| | base | tuned | relative change |",
        "|---|---:|---:|---:|",
        f"| perplexity | {_num(ppl.get('base'), 2)} | {_num(ppl.get('tuned'), 2)} | "
        f"{_pct(ppl.get('relative_change'))} |",
        f"| mean NLL per token (nats) | {_num(ppl['nll_per_token'].get('base'))} | "
        f"{_num(ppl['nll_per_token'].get('tuned'))} | |",
        f"| scored tokens | {ppl['tokens'].get('base')} | {ppl['tokens'].get('tuned')} | |",
        "",
    ]
    lines += [perplexity_verdict(ppl), ""]
    if meta.get("perplexity_note"):
        lines += [meta["perplexity_note"], ""]
    lines += [
        "## Style: generated replies vs the person's real replies",
        "",
        "Same contexts for every column. *partners* = the partner's last message before each reply, a "
        "reference for how different someone else's style looks.",
        "",
        "| stat | real (you) | base | tuned | partners |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in metrics.STYLE_KEYS:
        fmt = _pct if metrics.STYLE_KEYS[key][0] == "share" and key.endswith("_rate") else _num
        lines.append(f"| {key} | " + " | ".join(fmt(st[c][key]) for c in cols) + " |")
    lines.append(f"| top-{style['top_k']} word Jaccard vs real | 1.000 | "
                 + " | ".join(_num(style["jaccard"][c]) for c in cols[1:]) + " |")
    lines.append("| **style distance to real** (lower = closer) | 0.000 | "
                 + " | ".join(f"**{_num(style['distance'][c])}**" for c in cols[1:]) + " |")
    empty, cut = results.get("empty_generations", {}), results.get("hit_token_limit", {})
    lines += ["", f"Generated replies cut at {meta.get('max_new_tokens')} tokens (their length stats are a lower "
              f"bound): base {cut.get('base', 0)}, tuned {cut.get('tuned', 0)}. Empty generated replies: base "
              f"{empty.get('base', 0)}, tuned {empty.get('tuned', 0)}.", ""]

    lines += [
        "## Authorship test",
        "",
        "A logistic regression on character 2-4-grams (TF-IDF, `char_wb`), trained on the train split to "
        "tell the person's messages from their partners'. *Attributed* = P(person) > 0.5. The person's "
        "real held-out replies are the ceiling, the partners' held-out messages the floor. The nonsense "
        "control is the evaluated real replies with their letters shuffled (no words left): what the "
        "classifier does with text it cannot place.",
        "",
        "| replies | attributed to the person | mean P(person) | n |",
        "|---|---:|---:|---:|",
    ]
    for key, label in [("person_real", "person's real held-out replies (ceiling)"),
                       ("contexts_real", "… of which the real replies to the evaluated contexts"),
                       ("partners_real", "partners' real held-out messages (floor)"),
                       ("scrambled_real", "nonsense control: real replies, letters shuffled"),
                       ("base", "base model's replies"), ("tuned", "tuned model's replies")]:
        r = auth.get(key)
        if r is not None:
            lines.append(f"| {label} | {_pct(r['attributed_share'])} | {_num(r['mean_p_person'])} | {r['n']} |")
    lines += ["", authorship_reading(auth)]
    lines += ["", f"Classifier held-out ROC AUC (person vs partners): {_num(auth.get('heldout_auc'))}; trained "
              f"on {auth['n_train'].get('person')} person and {auth['n_train'].get('partners')} partner messages.",
              ""]

    lines += ["## Examples", ""]
    for i, ex in enumerate(results.get("examples", []), 1):
        lines.append(f"**Example {i}**")
        lines.append("")
        for t in ex["context"]:
            who = {"user": "them", "assistant": "you", "system": "system"}[t["role"]]
            lines.append(f"> **{who}:** {_inline(t['content'])}  ")
        lines.append("")
        lines.append(f"- **real reply:** {_inline(ex['real'])}")
        lines.append(f"- **base:** {_inline(ex.get('base', ''))}")
        lines.append(f"- **tuned:** {_inline(ex.get('tuned', ''))}")
        lines.append("")

    lines += [
        "## Distributions",
        "",
        f"![distributions]({FIGURE_PNG})",
        "",
        "## Definitions",
        "",
        "- **perplexity** = exp(total NLL / total scored tokens), pooled over all evaluated replies (natural "
        "log). Scored tokens: " + meta.get("scoring", "the reply's tokens after the context") + ". "
        "Relative change = (tuned - base) / base.",
    ]
    for key, (_, doc) in metrics.STYLE_KEYS.items():
        lines.append(f"- **{key}**: {doc}")
    lines += [
        f"- **top-k word Jaccard**: |A ∩ B| / |A ∪ B| of the {style['top_k']} most frequent lower-cased words.",
        f"- **style distance** = {metrics.DISTANCE_DOC}",
        "",
        f"Settings: seed {results['settings']['seed']}, up to {results['settings']['max_context_turns']} "
        f"context turns. All numbers are in `{METRICS_JSON}`, every reply in `{GENERATIONS_JSONL}` (both "
        "identical when rerun with the same seed and settings).",
        "",
    ]
    secs = results.get("seconds")
    if secs:
        lines += ["Runtime: " + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items()) + ".", ""]
    return "\n".join(lines)


def render_figure(path: Path, results: dict, rows: Sequence[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in ("real", "base", "tuned") if rows and n in rows[0]]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))

    ax = axes[0, 0]
    lengths = {n: [len(r[n].split()) for r in rows] for n in names}
    allv = [v for vs in lengths.values() for v in vs] or [0]
    top = max(1, int(np.percentile(allv, 99)))
    bins = np.arange(0, top + 2) - 0.5 if top <= 40 else np.linspace(0, top, 40)
    for n in names:
        ax.hist(np.clip(lengths[n], 0, top), bins=bins, histtype="step", linewidth=1.8, color=COLORS[n],
                label=f"{n} (median {np.median(lengths[n]) if lengths[n] else 0:g})")
    ax.set_title("reply length (words)")
    ax.set_xlabel("words per reply (clipped at p99)")
    ax.set_ylabel("replies")
    ax.legend()

    ax = axes[0, 1]
    st = results["style"]["stats"]
    cols = [c for c in ("real", "base", "tuned", "partners") if c in st]
    x = np.arange(len(SHARE_STATS))
    w = 0.8 / len(cols)
    for j, c in enumerate(cols):
        ax.bar(x + (j - (len(cols) - 1) / 2) * w, [st[c][k] for k in SHARE_STATS], w, label=c, color=COLORS[c])
    ax.set_xticks(x, [k.replace("_rate", "") for k in SHARE_STATS], rotation=20)
    ax.set_ylim(0, 1)
    ax.set_title("style: share of replies")
    ax.legend()

    ax = axes[1, 0]
    auth = results["authorship"]
    bars = [("partners\n(floor)", "partners_real", COLORS["partners"]),
            ("shuffled\n(control)", "scrambled_real", "#dddddd"), ("base", "base", COLORS["base"]),
            ("tuned", "tuned", COLORS["tuned"]), ("person\n(ceiling)", "person_real", COLORS["real"])]
    bars = [b for b in bars if b[1] in auth]
    vals = [auth[k]["attributed_share"] for _, k, _ in bars]
    ax.bar([b[0] for b in bars], vals, color=[b[2] for b in bars])
    for i, v in enumerate(vals):
        ax.text(i, v + 0.02, f"{100 * v:.0f}%", ha="center")
    ax.set_ylim(0, 1.1)
    ax.set_title("authorship: share attributed to the person")

    ax = axes[1, 1]
    ppl = results["perplexity"]
    pv = [ppl.get("base"), ppl.get("tuned")]
    pv = [v if isinstance(v, float) and math.isfinite(v) else 0.0 for v in pv]
    ax.bar(["base", "tuned"], pv, color=[COLORS["base"], COLORS["tuned"]])
    for i, v in enumerate(pv):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom")
    ax.set_title("perplexity of the real replies (lower = better)")
    if max(pv) > 0 and max(pv) / max(min(pv), 1e-9) > 50:
        ax.set_yscale("log")

    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def write_outputs(out_dir: str | Path, results: dict, rows: Sequence[dict], meta: dict) -> dict[str, Path]:
    """Write the four outputs together; returns their final paths.

    Timings (`results["seconds"]`) go to the report only, so metrics.json is the same for the same seed.
    """
    out_dir = Path(out_dir)
    numbers = {k: v for k, v in results.items() if k != "seconds"}
    with OutputSet(out_dir) as out:
        out.write_json(METRICS_JSON, json_safe({"meta": meta, **numbers}))
        out.write_text(REPORT_MD, render_markdown(results, meta))
        render_figure(out.path(FIGURE_PNG), results, rows)
        out.write_jsonl(GENERATIONS_JSONL, (json_safe(r) for r in rows))
    return {n: out_dir / n for n in (REPORT_MD, METRICS_JSON, FIGURE_PNG, GENERATIONS_JSONL)}

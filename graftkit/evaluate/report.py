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
COLORS = {"real": "#333333", "base": "#1f77b4", "tuned": "#d62728", "partners": "#aaaaaa",
          "tuned_as_partner": "#ff9896", "parrot": "#999999"}


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


def _ci_text(d: dict | None, fmt=None) -> str:
    fmt = fmt or _pct
    if not d:
        return "n/a"
    lo, hi = d["ci95"]
    return f"{fmt(d['value'])} (95% CI {fmt(lo)} to {fmt(hi)})"


def chance_verdict(d: dict | None, chance: float) -> str:
    """Plain words for where a 95% interval sits against chance."""
    if not d or not all(isinstance(x, float) and math.isfinite(x) for x in d["ci95"]):
        return "not measured"
    lo, hi = d["ci95"]
    if lo > chance:
        return "above chance"
    if hi < chance:
        return "below chance"
    return "**not distinguishable from chance** (uninformative here: the interval includes chance)"


def perplexity_verdict(ppl: dict) -> str:
    """One sentence: is the tuned model better at predicting the real replies than the base, by how much.
    Never called "sounds like you": a model trained on anyone's chats gets a similar drop."""
    base, tuned, change = ppl.get("base"), ppl.get("tuned"), ppl.get("relative_change")
    if not all(isinstance(x, float) and math.isfinite(x) for x in (base, tuned, change)):
        return "Perplexity could not be compared (no reply tokens were scored)."
    nll = ppl.get("nll_per_token", {})
    d_nll = nll.get("tuned", math.nan) - nll.get("base", math.nan)
    if tuned < base:
        return (f"The tuned model's perplexity is {100 * -change:.1f}% lower than the base's ({base:.2f} → "
                f"{tuned:.2f}; {-d_nll:.3f} nats per token less). This shows it learned chat, not that it learned "
                "you: a model trained on anyone's chats gets a similar drop (the persona gap above is the part "
                "that is about you).")
    return (f"**Warning: the tuned model is not better than the base** ({base:.2f} → {tuned:.2f}, "
            f"{100 * change:+.1f}%). Likely causes: too little training (few steps, a high final validation "
            "loss), a different chat template or system prompt than in training, or held-out conversations "
            "unlike the training ones.")


REF_LABEL = {"vs_base": "tuned minus base", "vs_partner_voice": "you vs your partner's voice",
             "tuned_only": "tuned log-probability alone"}


def headline(results: dict, meta: dict) -> list[str]:
    """The persona numbers in plain words, each with its interval, chance level and verdict."""
    out: list[str] = []
    sp = results.get("speaker", {})
    tuned_sp = sp.get("tuned")
    base_sp = sp.get("base")
    base_txt = (f"base {_num(base_sp['value'], 2)}" if base_sp else
                "base: n/a, the unigram base does not know who is speaking")
    if tuned_sp:
        change = sp.get("tuned_minus_base")
        change_txt = (f" Training changed it by {_ci_text(change, lambda x: f'{x:+.2f}')} (0 = nothing learned: the "
                      f"base alone can favour your kind of text; {chance_verdict(change, 0.0)})." if change else "")
        out.append(f"- **Speaker test:** shown one of your held-out messages and one of a partner's (no context), the "
                   f"model says which is yours with AUC {_ci_text(tuned_sp, lambda x: _num(x, 2))}; chance 0.50, "
                   f"{base_txt}. {chance_verdict(tuned_sp, 0.5).capitalize()}.{change_txt}")
    ww = results.get("who_wrote_it")
    if ww:
        ref = ("the tuned model's score minus the base model's" if ww["reference"] == "vs_base" else
               "the tuned model's score as you minus its score for the same text as your partner")
        other = [f"{REF_LABEL[k]} {_pct(ww[k]['value'])}" for k in ("vs_base", "vs_partner_voice", "tuned_only")
                 if k in ww and k != ww["reference"]]
        out.append(f"- **Who wrote it:** among {ww['n']} real replies of similar length, each in its own "
                   f"conversation, 1 yours and {ww['n'] - 1} your partners', the model ({ref}) picks yours in "
                   f"{_ci_text(ww['headline'])} of cases; chance {_pct(ww['chance'])} ({', '.join(other)}). "
                   f"{chance_verdict(ww['headline'], ww['chance']).capitalize()}.")
    gap = results.get("persona_gap")
    if gap:
        how = ("training lowered the loss" if gap.get("reference", "base") == "base" else
               "reading a text as yours rather than as your partner's lowers its loss")
        out.append(f"- **Persona gap:** {how} on your replies by {_num(gap['drop_person'])} "
                   f"nats per token and on your partners' messages by {_num(gap['drop_partners'])}; the gap is "
                   f"{_ci_text(gap, lambda x: _num(x))} nats per token (0 = it learned chat in general, not you). "
                   f"{chance_verdict(gap, 0.0).capitalize()}.")
    auth = results.get("authorship", {})
    diff = auth.get("tuned_minus_partner_voice")
    scale = (f"For scale: your real held-out messages {_pct(auth['person_real']['attributed_share'])}, partners' "
             f"{_pct(auth['partners_real']['attributed_share'])}, a parrot repeating your training messages "
             f"{_pct(auth['parrot']['attributed_share'])} (the classifier cannot tell a parrot; context fit below can), "
             f"shuffled letters {_pct(auth['scrambled_real']['attributed_share'])}, word salad "
             f"{_pct(auth['word_salad']['attributed_share'])}.") if "person_real" in auth else ""
    why_not = auth.get("not_a_persona_number")
    if "tuned" in auth and why_not:
        out.append(f"- **Authorship of its own replies:** not a persona number here: {why_not}. A style classifier "
                   f"(you / partners / junk) calls {_pct(auth['tuned']['attributed_share'])} of the model's replies "
                   f"yours; read it only beside the numbers above. {scale}")
    elif diff and "tuned" in auth:
        out.append(
            f"- **Authorship of its own replies:** a style classifier (you / partners / junk) calls "
            f"{_pct(auth['tuned']['attributed_share'])} of the model's replies yours, and "
            f"{_pct(auth['tuned_as_partner']['attributed_share'])} of the replies the same model writes as your "
            f"partner in the same conversations: a difference of {_ci_text(diff)} "
            f"({chance_verdict(diff, 0.0)}). {scale}")
    return out


def prompting_section(results: dict) -> list[str]:
    """Fine-tuning against the free alternative: the same persona numbers for the base model prompted with your
    own messages. A user should see whether training beat writing a good prompt."""
    pb = results.get("prompting_baseline")
    if not pb:
        return []
    ww = results["who_wrote_it"]

    def better(key: str) -> str:
        tuned = {"speaker": results["speaker"]["tuned"], "who_wrote_it": ww["headline"],
                 "persona_gap": results["persona_gap"]}[key]
        if tuned["ci95"][0] > pb[key]["ci95"][1]:
            return "fine-tuned better"
        if pb[key]["ci95"][0] > tuned["ci95"][1]:
            return "prompting better"
        return "intervals overlap"

    return [
        "## Fine-tuning vs just prompting",
        "",
        f"The base model with {pb['n_examples']} of your own training messages as style examples in its system "
        "prompt, scored with the same numbers on the same messages (its reference is the base model without "
        "them, as for the fine-tuned model):",
        "",
        "| | fine-tuned | prompted base | |",
        "|---|---:|---:|---|",
        f"| speaker test AUC (chance 0.5) | {_ci_text(results['speaker']['tuned'], _num)} | "
        f"{_ci_text(pb['speaker'], _num)} | {better('speaker')} |",
        f"| who wrote it, hits@1 of {ww['n']} (chance {_pct(ww['chance'])}) | {_ci_text(ww['headline'])} | "
        f"{_ci_text(pb['who_wrote_it'])} | {better('who_wrote_it')} |",
        f"| persona gap, nats/token (none = 0) | {_ci_text(results['persona_gap'], _num)} | "
        f"{_ci_text(pb['persona_gap'], _num)} | {better('persona_gap')} |",
        "",
    ]


def render_markdown(results: dict, meta: dict) -> str:
    ppl, style, auth = results["perplexity"], results["style"], results["authorship"]
    st, ci = style["stats"], style.get("ci95", {})
    cols = [c for c in ("real", "base", "tuned", "tuned_as_partner", "partners", "parrot") if c in st]
    fit = results["context_fit"]
    convs = results.get("n_conversations", {})
    pool = results.get("settings", {}).get("pool_size", 0)
    lines = [
        "# Persona evaluation: does it sound like you?",
        "",
        f"- **kind:** {meta.get('kind')}",
        f"- **tuned model:** {meta.get('tuned')}",
        f"- **base model:** {meta.get('base')}",
        f"- **held-out conversations read:** {convs.get('read', '?')} of {convs.get('held_out', '?')} in "
        f"`{meta.get('val_file')}`, " + (f"whole ones drawn at random until each side had at least {pool} "
                                         "messages or none were left (`--pool-size`); " if pool else
                                         "all of them (`--pool-size 0`); ") +
        f"{results['n_items']['person']} of your replies and {results['n_items']['partners']} partner messages for "
        f"who-wrote-it and the persona gap, {results['n_items']['speaker_person']} and "
        f"{results['n_items']['speaker_partners']} for the speaker test",
        f"- **held-out contexts:** {results['n_contexts']} from those conversations (of "
        f"{meta.get('n_candidates', '?')} person replies with a partner message before them in the file)",
        *([f"- **checkpoint chosen by:** {meta['selection_note']}"] if meta.get("selection_note") else []),
        f"- **authorship classifier trained on:** `{meta.get('train_file')}`",
        f"- **generation:** {meta.get('generation')}",
        "",
        "## Does it sound like you?",
        "",
        "Each number compares you with your partners, so a model that only learned to chat (or one trained on "
        "someone else's chats) stays at chance. Intervals are 95% bootstrap intervals.",
        "",
        *headline(results, meta),
        "",
    ]
    if meta.get("base_note"):
        lines += [meta["base_note"], ""]
    lines += prompting_section(results)
    lines += [
        "## Not about you specifically",
        "",
        f"- **Context fit:** among {fit['n']} of your own replies (their first message; 1 written to "
        f"this conversation, {fit['n'] - 1} to others), the tuned model picks the right one in "
        f"{_ci_text(fit.get('tuned'))} of cases; chance {_pct(fit['chance'])}, base "
        + (_ci_text(fit['base']) if fit.get('base') else "not measured") + ". Any chat model learns to fit "
        "replies to the conversation, so this is about chat in general; a parrot that repeats your messages "
        "would be at chance.",
        f"- **Reply perplexity:** {perplexity_verdict(ppl)}",
        "",
    ]
    if meta.get("perplexity_note"):
        lines += [meta["perplexity_note"], ""]
    lines += [
        "| | base | tuned | relative change |",
        "|---|---:|---:|---:|",
        f"| perplexity of your real replies | {_num(ppl.get('base'), 2)} | {_num(ppl.get('tuned'), 2)} | "
        f"{_pct(ppl.get('relative_change'))} |",
        f"| mean NLL per token (nats) | {_num(ppl['nll_per_token'].get('base'))} | "
        f"{_num(ppl['nll_per_token'].get('tuned'))} | |",
        f"| scored tokens | {ppl['tokens'].get('base')} | {ppl['tokens'].get('tuned')} | |",
        "",
        "## Authorship test",
        "",
        "A logistic regression on character 2-4-grams (TF-IDF, `char_wb`) trained on the train split with three "
        "classes: your messages, your partners' messages, and junk (letter-shuffled messages and word salad). "
        "*Attributed* = you are the most likely class. Gibberish goes to junk, so it cannot score as you.",
        "",
        "| replies | attributed to you | junk | mean P(you) | n |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in [("person_real", "your real held-out messages (ceiling)"),
                       ("partners_real", "partners' real held-out messages (floor)"),
                       ("parrot", "parrot: your training messages at random"),
                       ("scrambled_real", "check: your real replies, letters shuffled"),
                       ("word_salad", "check: word salad of held-out words"),
                       ("base", "base model's replies"), ("tuned", "tuned model's replies"),
                       ("tuned_as_partner", "tuned model writing as your partner (control)")]:
        r = auth.get(key)
        if r is not None:
            lines.append(f"| {label} | {_pct(r['attributed_share'])} | {_pct(r.get('junk_share'))} | "
                         f"{_num(r['mean_p_person'])} | {r['n']} |")
    held = auth.get("heldout_auc")
    held_txt = _ci_text(held, lambda x: _num(x, 2)) if isinstance(held, dict) else _num(held)
    lines += ["", f"Classifier held-out ROC AUC (you vs partners, 0.5 = cannot tell): {held_txt}; trained on "
              f"{auth['n_train'].get('person')} of your messages, {auth['n_train'].get('partners')} partner messages "
              f"and {auth['n_train'].get('junk', 0)} junk texts.", ""]
    lines += [
        "## Style: generated replies vs your real replies",
        "",
        "Same contexts for every column. *partners* = the partner's last message before each reply, *parrot* = "
        "random training messages of yours" + (", *tuned_as_partner* = the tuned model writing as your partner"
                                               if "tuned_as_partner" in cols else "") + ". Rates "
        "and mean length show a 95% bootstrap interval over replies.",
        "",
        "| stat | " + " | ".join(cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    from .core import PER_REPLY_STYLE

    for key in PER_REPLY_STYLE:
        fmt = _pct if key.endswith("_rate") else (lambda x: _num(x, 1))
        cells = []
        for c in cols:
            d = ci.get(c, {}).get(key)
            cells.append(f"{fmt(d['value'])} [{fmt(d['ci95'][0])}, {fmt(d['ci95'][1])}]" if d else "n/a")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    for key in ("words_median", "lines_mean", "distinct_1", "distinct_2"):
        lines.append(f"| {key} | " + " | ".join(_num(st[c][key], 2) for c in cols) + " |")
    lines.append(f"| top-{style['top_k']} word Jaccard vs real | " + " | ".join(
        "1.000" if c == "real" else _num(style["jaccard"][c]) for c in cols) + " |")
    lines.append("| style distance to real (lower = closer) | " + " | ".join(
        "0.000" if c == "real" else _num(style["distance"][c]) for c in cols) + " |")
    empty, cut = results.get("empty_generations", {}), results.get("hit_token_limit", {})
    lines += ["", "Style statistics describe the surface only (junk can match them); read them beside the "
              "authorship and persona numbers. Generated replies cut at "
              f"{meta.get('max_new_tokens')} tokens: " + ", ".join(
                  f"{'tuned (as you and as your partner)' if k == 'tuned' else k} {v}" for k, v in cut.items())
              + "; empty generated replies: " + ", ".join(f"{k} {v}" for k, v in empty.items()) + ".", ""]

    lines += ["## Examples", ""]
    for i, ex in enumerate(results.get("examples", []), 1):
        lines.append(f"**Example {i}**")
        lines.append("")
        for t in ex["context"]:
            who = {"user": "them", "assistant": "you", "system": "system"}[t["role"]]
            lines.append(f"> **{who}:** {_inline(t['content'])}  ")
        lines.append("")
        lines.append(f"- **real reply:** {_inline(ex['real'])}")
        for key in ("base", "tuned", "tuned_as_partner", "parrot"):
            if key in ex:
                lines.append(f"- **{key}:** {_inline(ex[key])}")
        lines.append("")

    lines += [
        "## Distributions",
        "",
        f"![distributions]({FIGURE_PNG})",
        "",
        "## Definitions",
        "",
        "- **speaker test**: score = log P(text as your turn) - log P(text as a partner's turn), no context, tuned "
        "model; AUC = P(a random message of yours scores above a random partner message), ties half.",
        "- **who wrote it**: score = (log P_tuned(text as your reply in its own conversation) - log P_reference) per "
        "token of the text; "
        "the reference is the base model (LoRA) or, for the tiny GPT whose unigram base reads no context, the "
        "tuned model scoring the same text as your partner's turn (roles swapped). A partner message is scored "
        "the same way in its own conversation with the roles swapped. hits@1 of N = the chance that your reply "
        "outscores N-1 partner messages drawn at random from those of similar length (the same quartile of token "
        "counts: a per-token score of a very short message is noisy, so unmatched, the side with more short "
        "messages would win more often), computed exactly over all draws.",
        "- **persona gap** = (NLL per token, reference - tuned, on your replies) - (the same on partners' "
        "messages), the items and reference of *who wrote it*.",
        "- **context fit**: score = log P(candidate | context) - log P(candidate alone), per model; hits@1 = "
        "share of contexts where the real reply scores highest (ties share the point).",
        "- **authorship difference** = share of the tuned replies attributed to you minus the share of the tuned "
        "model's replies written as your partner (same contexts, roles swapped), paired over contexts.",
        "- **perplexity** = exp(total NLL / total scored tokens) over the evaluated replies (natural log). Scored "
        "tokens: " + meta.get("scoring", "the reply's tokens after the context") + ".",
        "- **95% CI**: percentile bootstrap, 1000 resamples of contexts / messages (each group resampled on its "
        "own), seeded.",
    ]
    for key, (_, doc) in metrics.STYLE_KEYS.items():
        lines.append(f"- **{key}**: {doc}")
    lines += [
        f"- **style distance** = {metrics.DISTANCE_DOC}",
        "",
        f"Settings: seed {results['settings']['seed']}, up to {results['settings']['max_context_turns']} "
        f"context turns for generation (who wrote it, the persona gap, context fit and perplexity read the "
        f"whole conversation so far, cut to the model's context). All numbers are in `{METRICS_JSON}`, every "
        f"reply in `{GENERATIONS_JSONL}`. With the same "
        "seed, settings and thread count every output file is byte-identical when rerun.",
        "",
    ]
    return "\n".join(lines)


def render_figure(path: Path, results: dict, rows: Sequence[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [n for n in ("real", "base", "tuned") if rows and all(n in r for r in rows)]  # base: examples only
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
    cols = [c for c in ("real", "base", "tuned", "tuned_as_partner", "partners", "parrot") if c in st]
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
            ("shuffled", "scrambled_real", "#dddddd"), ("salad", "word_salad", "#dddddd"),
            ("parrot", "parrot", "#999999"), ("base", "base", COLORS["base"]),
            ("tuned as\npartner", "tuned_as_partner", "#ff9896"), ("tuned", "tuned", COLORS["tuned"]),
            ("you\n(ceiling)", "person_real", COLORS["real"])]
    bars = [b for b in bars if b[1] in auth]
    vals = [auth[k]["attributed_share"] for _, k, _ in bars]
    ax.bar([b[0] for b in bars], vals, color=[b[2] for b in bars])
    for i, v in enumerate(vals):
        ax.text(i, v + 0.02, f"{100 * v:.0f}%", ha="center")
    ax.set_ylim(0, 1.1)
    ax.set_title("authorship: share attributed to the person")

    ax = axes[1, 1]  # the persona numbers against chance, with their intervals
    items = [("speaker\nAUC", results.get("speaker", {}).get("tuned"), 0.5),
             ("who wrote it\nhits@1", (results.get("who_wrote_it") or {}).get("headline"),
              (results.get("who_wrote_it") or {}).get("chance")),
             ("context fit\nhits@1", results["context_fit"].get("tuned"), results["context_fit"]["chance"])]
    items = [it for it in items if it[1]]
    for i, (label, d, chance) in enumerate(items):
        lo, hi = d["ci95"]
        ax.bar(i, d["value"], color=COLORS["tuned"])
        if all(isinstance(v, float) and math.isfinite(v) for v in (lo, hi)):
            ax.errorbar(i, d["value"], yerr=[[d["value"] - lo], [hi - d["value"]]], color="black", capsize=6)
        ax.hlines(chance, i - 0.4, i + 0.4, colors="black", linestyles="dashed")
    ax.set_xticks(range(len(items)), [it[0] for it in items])
    ax.set_ylim(0, 1.05)
    ax.set_title("tuned model vs chance (dashed), 95% intervals")

    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def write_outputs(out_dir: str | Path, results: dict, rows: Sequence[dict], meta: dict) -> dict[str, Path]:
    """Write the four outputs together; returns their final paths.

    Timings (`results["seconds"]`) are left out of every file (the caller prints them), so a rerun with
    the same seed, settings and thread count writes byte-identical files.
    """
    out_dir = Path(out_dir)
    numbers = {k: v for k, v in results.items() if k != "seconds"}
    with OutputSet(out_dir) as out:
        out.write_json(METRICS_JSON, json_safe({"meta": meta, **numbers}))
        out.write_text(REPORT_MD, render_markdown(results, meta))
        render_figure(out.path(FIGURE_PNG), results, rows)
        out.write_jsonl(GENERATIONS_JSONL, (json_safe(r) for r in rows))
    return {n: out_dir / n for n in (REPORT_MD, METRICS_JSON, FIGURE_PNG, GENERATIONS_JSONL)}

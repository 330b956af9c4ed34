"""Pure metric definitions for "does it sound like me?" (no torch, no model).

Every number in the evaluation report is defined here, so the definitions can be read and tested in
one place:

- `perplexity(total_nll, n_tokens)`: exp(total NLL / number of scored tokens), i.e. exp of the mean
  negative log-likelihood (natural log) over *all* scored reply tokens pooled together; not a mean of
  per-reply perplexities (which would overweight short replies).
- `style_stats(replies)`: a profile of how a list of replies looks (see STYLE_KEYS for each stat).
- `distinct_n(replies, n)`: unique word n-grams / all word n-grams, pooled over the list
  (Li et al. 2016); 0.0 when there are no n-grams.
- `top_k_jaccard(a, b, k)`: |A ∩ B| / |A ∪ B| of the k most frequent words of each list.
- `style_distance(real, other, jaccard)`: one number in [0, 1] for "how far is this profile from the
  person's", the mean of the per-stat differences described in DISTANCE_DOC.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

# Unicode emoji blocks (pictographs, emoticons, transport, supplemental symbols, dingbats, misc symbols,
# regional-indicator flags). Text emoticons such as ":)" are not counted.
EMOJI_RE = re.compile(
    "[\U0001F300-\U0001F5FF\U0001F600-\U0001F64F\U0001F680-\U0001F6FF\U0001F900-\U0001F9FF"
    "\U0001FA70-\U0001FAFF\U00002600-\U000027BF\U0001F1E6-\U0001F1FF\U00002B50\U00002B55]"
)
WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")  # letters/digits, with inner apostrophes ("don't")

# Stats and what they mean; `kind` decides how the distance normalises a difference:
# "share" stats are fractions in [0, 1] (absolute difference), "count" stats are unbounded
# (difference relative to the larger of the two values).
STYLE_KEYS: dict[str, tuple[str, str]] = {
    "words_median": ("count", "median reply length in words (whitespace-separated)"),
    "words_p90": ("count", "90th percentile of reply length in words"),
    "lines_mean": ("count", "mean messages per turn (non-empty lines per reply)"),
    "emoji_rate": ("share", "share of replies with at least one Unicode emoji"),
    "lowercase_rate": ("share", "share of replies with letters but no capital letter"),
    "ends_period_rate": ("share", "share of replies ending with a single '.' (not '...')"),
    "exclaim_rate": ("share", "share of replies containing '!'"),
    "question_rate": ("share", "share of replies containing '?'"),
    "ellipsis_rate": ("share", "share of replies containing '...' or '…'"),
    "distinct_1": ("share", "unique words / all words (pooled over replies)"),
    "distinct_2": ("share", "unique word bigrams / all word bigrams (pooled over replies)"),
}

DISTANCE_DOC = (
    "the mean over the style stats of a per-stat difference in [0, 1]: for shares "
    "(rates, distinct-n) the absolute difference |x - y|; for counts (words median/p90, lines per "
    "reply) the relative difference |x - y| / max(x, y) (0 when both are 0); plus one term "
    "1 - Jaccard of the top-k words. 0 = same profile as the person's real replies, 1 = as far as it "
    "gets."
)


def words(text: str) -> list[str]:
    """Lower-cased word tokens used for vocabulary, Jaccard and distinct-n."""
    return WORD_RE.findall(text.lower())


def perplexity(total_nll: float, n_tokens: int) -> float:
    """exp(mean NLL) over all scored tokens; NaN when nothing was scored."""
    if n_tokens <= 0:
        return float("nan")
    return math.exp(total_nll / n_tokens)


def pooled_perplexity(scores: Iterable[tuple[float, int]]) -> tuple[float, float, int]:
    """(perplexity, total NLL, total tokens) from per-reply (sum NLL, n tokens) pairs."""
    total, n = 0.0, 0
    for nll, k in scores:
        total += nll
        n += k
    return perplexity(total, n), total, n


def relative_change(base: float, tuned: float) -> float:
    """(tuned - base) / base; e.g. -0.25 = tuned is 25% lower. NaN if base is 0 or not finite."""
    if not math.isfinite(base) or not math.isfinite(tuned) or base == 0:
        return float("nan")
    return (tuned - base) / base


def distinct_n(replies: Sequence[str], n: int) -> float:
    """Unique word n-grams / total word n-grams, pooled over all replies (n-grams do not cross replies)."""
    grams: list[tuple[str, ...]] = []
    for r in replies:
        w = words(r)
        grams.extend(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def top_words(replies: Sequence[str], k: int) -> set[str]:
    """The k most frequent words; ties broken alphabetically so the set is deterministic."""
    counts = Counter(w for r in replies for w in words(r))
    return {w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]}


def top_k_jaccard(a: Sequence[str], b: Sequence[str], k: int = 50) -> float:
    """Jaccard overlap of the k most frequent words of two reply lists; 1.0 when both have no words."""
    ta, tb = top_words(a, k), top_words(b, k)
    if not ta and not tb:
        return 1.0
    return len(ta & tb) / len(ta | tb)


def _share(flags: Iterable[bool], n: int) -> float:
    return sum(1 for f in flags if f) / n if n else 0.0


def _ends_with_period(text: str) -> bool:
    t = text.rstrip()
    return t.endswith(".") and not t.endswith("..")


def _lowercase_only(text: str) -> bool:
    return any(c.isalpha() for c in text) and not any(c.isupper() for c in text)


def style_stats(replies: Sequence[str]) -> dict[str, float]:
    """The style profile of a list of replies: every key of STYLE_KEYS plus `n` (number of replies).

    An empty list gives n = 0 and 0.0 everywhere, so reports never contain NaN.
    """
    n = len(replies)
    lengths = np.array([len(r.split()) for r in replies], dtype=float)
    lines = [sum(1 for line in r.splitlines() if line.strip()) for r in replies]
    return {
        "n": n,
        "words_median": float(np.median(lengths)) if n else 0.0,
        "words_p90": float(np.percentile(lengths, 90)) if n else 0.0,
        "lines_mean": float(np.mean(lines)) if n else 0.0,
        "emoji_rate": _share((EMOJI_RE.search(r) is not None for r in replies), n),
        "lowercase_rate": _share((_lowercase_only(r) for r in replies), n),
        "ends_period_rate": _share((_ends_with_period(r) for r in replies), n),
        "exclaim_rate": _share(("!" in r for r in replies), n),
        "question_rate": _share(("?" in r for r in replies), n),
        "ellipsis_rate": _share(("..." in r or "…" in r for r in replies), n),
        "distinct_1": distinct_n(replies, 1),
        "distinct_2": distinct_n(replies, 2),
    }


def stat_difference(key: str, x: float, y: float) -> float:
    """The normalised difference of one style stat, in [0, 1] (see DISTANCE_DOC)."""
    kind = STYLE_KEYS[key][0]
    if kind == "share":
        return abs(x - y)
    hi = max(abs(x), abs(y))
    return abs(x - y) / hi if hi > 0 else 0.0


def style_distance(real: dict[str, float], other: dict[str, float], jaccard: float) -> float:
    """Mean of the normalised per-stat differences and (1 - top-k Jaccard); see DISTANCE_DOC."""
    terms = [stat_difference(k, real[k], other[k]) for k in STYLE_KEYS]
    terms.append(1.0 - jaccard)
    return float(sum(terms) / len(terms))


def compare_styles(real: Sequence[str], others: dict[str, Sequence[str]], k: int = 50) -> dict:
    """Style stats of the real replies and of each other list, with Jaccard and distance to the real ones."""
    real_stats = style_stats(real)
    out: dict = {"stats": {"real": real_stats}, "jaccard": {}, "distance": {}}
    for name, replies in others.items():
        st = style_stats(replies)
        jac = top_k_jaccard(real, replies, k)
        out["stats"][name] = st
        out["jaccard"][name] = jac
        out["distance"][name] = style_distance(real_stats, st, jac)
    out["top_k"] = k
    return out

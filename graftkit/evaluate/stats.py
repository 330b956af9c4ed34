"""Statistics for the fidelity numbers: AUC, hits@1 of N, and percentile bootstrap intervals.

Pure numpy (no torch, no model), so each definition can be read and tested on its own:

- `auc(pos, neg)`: P(a random positive scores above a random negative), ties count half
  (the Mann-Whitney U statistic divided by n_pos * n_neg). 0.5 = chance.
- `hits_at_1(real, distractors)`: per row, 1 when the real candidate scores above every
  distractor of its row (a tie shares the point), averaged over rows. Chance = 1 / row size.
- `hits_at_1_vs_pool(real, pool, k)`: the expected hits@1 of k + 1 when the k distractors of each
  real item are drawn at random (without replacement) from `pool`: the mean over real items of
  prod_{j<k} (below - j) / (M - j), below = pool items scoring lower (ties count half), M = pool size.
  Exact over all possible draws, so it has no distractor-sampling noise.
- `length_bins(lengths, pool_lengths, k)` and `hits_at_1_matched(real, real_bin, pool, pool_bin, k)`:
  hits@1 with length-matched distractors: each real item is compared with pool items of its own
  length bin (quartiles of the token counts), and the bins are weighted by their real items. Why: a
  per-token score of a 2-token message is far noisier than one of a 20-token message, and hits@1 is
  a tail statistic, so the side with more very short messages wins more often with no signal at all.
  On the persona-free control (LoRA, SmolLM2-135M), "me" had more 2-6 token messages than the
  partners: unmatched hits@1 14.7 % (chance 10 %) at AUC 0.53, matched 10.7 %.
- `bootstrap(stat, groups, clusters)`: a 95% percentile interval over 1000 resamples from a seeded
  generator (the same seed gives the same interval). Messages of one conversation are not
  independent (one topic, and in the control one random "me"), so with `clusters` (the conversation
  of each item) whole conversations are resampled, the same draw for every group; resampling single
  messages would make the intervals too narrow.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

N_BOOT = 1000


def auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def hits_at_1(real: Sequence[float], distractors: Sequence[Sequence[float]]) -> float:
    """Mean over rows of 1[real > every distractor], a tie with t distractors giving 1 / (t + 1)."""
    return float(np.mean(row_hits(real, distractors))) if len(real) else float("nan")


def row_hits(real: Sequence[float], distractors: Sequence[Sequence[float]]) -> np.ndarray:
    out = []
    for r, ds in zip(real, distractors):
        ds = np.asarray(ds, dtype=float)
        out.append(0.0 if (ds > r).any() else 1.0 / (1 + int((ds == r).sum())))
    return np.asarray(out)


def hits_at_1_vs_pool(real: Sequence[float], pool: Sequence[float], k: int) -> float:
    real, pool = np.asarray(real, dtype=float), np.sort(np.asarray(pool, dtype=float))
    m = len(pool)
    if len(real) == 0 or m < k:
        return float("nan")
    below = np.searchsorted(pool, real, side="left") + 0.5 * (
        np.searchsorted(pool, real, side="right") - np.searchsorted(pool, real, side="left"))
    p = np.ones(len(real))
    for j in range(k):
        p *= np.clip((below - j) / (m - j), 0.0, 1.0)
    return float(p.mean())


def length_bins(lengths: Sequence[int], pool_lengths: Sequence[int], k: int, max_bins: int = 4) -> np.ndarray:
    """Bin edges (upper bounds, exclusive) splitting all token counts into up to `max_bins` quantile bins,
    as many as leave every bin at least 2k pool items (fewer bins, down to one, on small data)."""
    every = np.concatenate([np.asarray(lengths, dtype=float), np.asarray(pool_lengths, dtype=float)])
    pool = np.asarray(pool_lengths, dtype=float)
    for q in range(max_bins, 1, -1):
        edges = np.unique(np.percentile(every, np.linspace(0, 100, q + 1)[1:-1]))
        if len(edges) and np.bincount(np.digitize(pool, edges), minlength=len(edges) + 1).min() >= 2 * k:
            return edges
    return np.zeros(0)


def hits_at_1_matched(real: Sequence[float], real_bin: Sequence[int], pool: Sequence[float],
                      pool_bin: Sequence[int], k: int) -> float:
    """hits_at_1_vs_pool with each real item's k distractors drawn from the pool items of its own bin."""
    real, real_bin = np.asarray(real, dtype=float), np.asarray(real_bin)
    pool, pool_bin = np.asarray(pool, dtype=float), np.asarray(pool_bin)
    total, n = 0.0, 0
    for b in np.unique(real_bin):
        r, q = real[real_bin == b], pool[pool_bin == b]
        if len(q) < k:  # a resample left this bin too few distractors: not measurable
            return float("nan")
        total += hits_at_1_vs_pool(r, q, k) * len(r)
        n += len(r)
    return total / n if n else float("nan")


def bootstrap(stat: Callable[..., float], groups: Sequence[Sequence], *, clusters: Sequence[Sequence] | None = None,
              seed: int = 0, n_boot: int = N_BOOT) -> tuple[float, float, float]:
    """(value on the data, 2.5th percentile, 97.5th percentile) of `stat(*groups)` over resamples.

    Without `clusters` each group is resampled item by item; with them (one cluster id per item, per
    group) the union of cluster ids is resampled and every group keeps the items of the drawn clusters."""
    arrays = [np.asarray(g) for g in groups]
    value = float(stat(*arrays))
    if any(len(a) == 0 for a in arrays):
        return value, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = []
    if clusters is None:
        for _ in range(n_boot):
            draws.append(stat(*[a[rng.integers(0, len(a), len(a))] for a in arrays]))
    else:
        ids = sorted({c for cl in clusters for c in cl})
        members = [{c: np.flatnonzero(np.asarray(cl) == c) for c in ids} for cl in clusters]
        empty = np.zeros(0, dtype=int)
        for _ in range(n_boot):
            pick = [ids[i] for i in rng.integers(0, len(ids), len(ids))]
            idx = [np.concatenate([m.get(c, empty) for c in pick]) for m in members]
            if any(len(i) == 0 for i in idx):
                continue
            draws.append(stat(*[a[i] for a, i in zip(arrays, idx)]))
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return value, float("nan"), float("nan")
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return value, float(lo), float(hi)


def interval(value: float, lo: float, hi: float) -> dict:
    return {"value": value, "ci95": [lo, hi]}

"""Train/validation split by session (or by whole conversation), never by message.

Why by unit: consecutive windows of one chat share most of their text; splitting them across train
and val would make the validation loss measure memorisation. Every sample of a unit goes to the
same side.

"random" ranks units by a seeded hash of their id (not by shuffling a list) and fills validation
from the top until it holds `val_fraction` of the samples: a unit's rank does not depend on the
others, so when you add exports later only units near the cut change sides, and a validation set
mostly stays a validation set across re-runs.
"recent" puts the newest units (by their last timestamp, then input order) in validation, the
honest test of "does it talk like me *now*".
"""

from __future__ import annotations

import hashlib
from typing import Sequence


def _unit_hash(seed: int, key: str) -> float:
    h = hashlib.blake2b(f"{seed}\x1f{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0 ** 64


def assign_split(
    keys: Sequence[str],
    weights: Sequence[int],
    times: Sequence[float | None],
    *,
    val_fraction: float = 0.1,
    mode: str = "random",
    seed: int = 1337,
) -> list[bool]:
    """For each unit, True when it goes to validation.

    keys: stable unit ids; weights: samples per unit (units with 0 samples are never in val);
    times: the unit's last timestamp (seconds) or None; position in the list is the input order.
    Whenever there are at least two units with samples and val_fraction > 0, both sides get one.
    """
    n = len(keys)
    is_val = [False] * n
    live = [i for i in range(n) if weights[i] > 0]
    if val_fraction <= 0 or len(live) < 2:
        return is_val
    total = sum(weights[i] for i in live)
    if mode == "recent":
        # Newest first; units without a time sort as oldest, later input position = newer.
        order = sorted(live, key=lambda i: (times[i] is not None, times[i] or 0.0, i), reverse=True)
    elif mode == "random":
        # Lowest seeded hashes first: a unit's rank does not depend on the other units, so adding
        # exports later only moves units near the cut, and the fraction is met in samples.
        order = sorted(live, key=lambda i: _unit_hash(seed, keys[i]))
    else:
        raise ValueError(f"unknown split mode {mode!r}")
    target = val_fraction * total
    got = 0
    for i in order[:-1]:  # never the last one: train keeps at least one unit
        if got >= target:
            break
        is_val[i] = True
        got += weights[i]
    return is_val


"""Real-shaped exports (issue 25): every file in tests/real_exports parses to exactly its expected messages.

The files copy the shapes phones really write (invisible marks, named attachments, era calendars,
Arabic, LINE mobile/PC, several header styles in one file); tests/real_exports/README.md says where
each shape was seen. "Exact" means the same messages in the same order with the same timestamp,
sender and placeholder kind, and the same text for every real message. `python -m tests.test_real_exports`
prints the count per class.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graftkit.errors import InputError  # noqa: E402
from graftkit.parsers import parse_input  # noqa: E402
from graftkit.parsers.placeholders import mark  # noqa: E402

HERE = Path(__file__).resolve().parent / "real_exports"
NAMES = sorted(p.name[: -len(".expected.jsonl")] for p in HERE.glob("*.expected.jsonl"))


def expected(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / f"{name}.expected.jsonl").read_text(encoding="utf-8").splitlines()]


def got(name: str) -> list[dict]:
    msgs = parse_input(HERE / f"{name}.txt").messages
    mark(msgs)
    return [{"timestamp": m.timestamp, "sender": m.sender, "text": m.text if m.placeholder is None else None,
             "kind": m.placeholder} for m in msgs]


def compare(name: str) -> tuple[bool, str]:
    want = [{k: w[k] for k in ("timestamp", "sender", "text", "kind")} for w in expected(name)]
    try:
        have = got(name)
    except InputError as e:
        return False, e.format()
    if have == want:
        return True, ""
    for i, (h, w) in enumerate(zip(have, want)):
        if h != w:
            return False, f"message {i}: got {h}, want {w}"
    return False, f"{len(have)} messages, want {len(want)}"


@pytest.mark.parametrize("name", NAMES)
def test_real_export_parses_exactly(name: str) -> None:
    ok, why = compare(name)
    assert ok, why


def score() -> dict[str, tuple[int, int]]:
    per: dict[str, list[int]] = {}
    for name in NAMES:
        cls = expected(name)[0]["class"]
        ok, _ = compare(name)
        per.setdefault(cls, [0, 0])
        per[cls][0] += ok
        per[cls][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(per.items())}


if __name__ == "__main__":
    verbose = "-v" in sys.argv
    total = Counter()
    for cls, (ok, n) in score().items():
        print(f"{cls:16s} {ok:3d} / {n}")
        total["ok"] += ok
        total["n"] += n
    print(f"{'all':16s} {total['ok']:3d} / {total['n']}")
    if verbose:
        for name in NAMES:
            ok, why = compare(name)
            if not ok:
                print(f"  {name}: {why[:300]}")

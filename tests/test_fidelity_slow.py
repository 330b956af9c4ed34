"""The full validity check (slow): the bundled sample (Sam) vs the persona-free control, each prepared,
trained with tiny_gpt_config.yaml and evaluated, as bench/bench_fidelity.py does. Needs PyPI for the
chitchat wheel (pip download) and about an hour of CPU on 2 cores at the default epochs; shortened here
to 400 iterations per model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_persona_numbers_are_valid_on_sample_vs_persona_free_control():
    sys.path.insert(0, str(ROOT / "bench"))
    import bench_fidelity

    bench_fidelity.main(["--max-iters", "400"])  # exit status 1 while a check below the line fails
    results = json.loads(bench_fidelity.RESULTS.read_text(encoding="utf-8"))
    checks = results["checks"]
    for desc in ("control speaker AUC within 0.45-0.60", "sample speaker AUC above chance (interval)",
                 "control authorship difference interval contains 0", "sample who-wrote-it above chance (interval)",
                 "control persona gap interval contains 0"):
        assert checks[desc], desc
    # not validated yet (README section 4): the control's who-wrote-it is ~30% (chance 10%), and the persona gap
    # is not above 0 for Sam at 400 iterations; both are reported, not asserted
    sample, control = results["metrics"]["sample"], results["metrics"]["control"]
    # the counter-example: perplexity falls for the control too, so it cannot be a persona number
    assert control["perplexity"]["relative_change"] < -0.3
    assert sample["speaker"]["tuned"]["value"] > control["speaker"]["tuned"]["value"]

"""Shared test fixtures. Chat-export fixtures live outside the repo, in ../shared/fixtures."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures not found")
    return FIXTURES


@pytest.fixture(scope="session")
def expected(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and a shared machine punishes OpenMP barriers."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@contextlib.contextmanager
def fail_if_hung(seconds: int) -> Iterator[None]:
    """Raise TimeoutError (a test failure) instead of hanging forever when an attack is not bounded."""
    def boom(signum, frame):
        raise TimeoutError("hung: the attack was not bounded")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)

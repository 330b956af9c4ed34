"""Every fixture in ../shared/fixtures/expected.json parses to exactly what it should.

Non-broken fixtures: exact message count, senders, first and last message; synthetic fixtures
also match their .expected.jsonl message by message. Broken fixtures raise one clean InputError
that names the file.
"""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES
from graftkit.errors import InputError
from graftkit.parsers import parse_input


def _entries(broken: bool) -> list[str]:
    if not (FIXTURES / "expected.json").exists():
        return []
    data = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    return sorted(k for k, v in data.items() if bool(v.get("broken")) == broken)


@pytest.mark.parametrize("rel", _entries(broken=False))
def test_fixture_parses_as_expected(rel, fixtures_dir, expected):
    exp = expected[rel]
    msgs = parse_input(fixtures_dir / rel).messages
    assert len(msgs) == exp["messages"]
    assert sorted({m.sender for m in msgs if m.sender is not None}) == exp["senders"]
    assert (msgs[0].sender, msgs[0].text) == (exp["first"]["sender"], exp["first"]["text"])
    assert (msgs[-1].sender, msgs[-1].text) == (exp["last"]["sender"], exp["last"]["text"])
    if "expected_jsonl" in exp:
        want = [json.loads(line) for line in (fixtures_dir / exp["expected_jsonl"]).read_text(
            encoding="utf-8").splitlines() if line.strip()]
        got = [{"timestamp": m.timestamp, "sender": m.sender, "text": m.text} for m in msgs]
        assert got == [{k: w[k] for k in ("timestamp", "sender", "text")} for w in want]
        for m, w in zip(msgs, want):
            if w.get("media"):  # attachment-only messages must be flagged (placeholders may be too)
                assert m.media, (m, w)


@pytest.mark.parametrize("rel", _entries(broken=True))
def test_broken_fixture_fails_cleanly(rel, fixtures_dir):
    with pytest.raises(InputError) as err:
        parse_input(fixtures_dir / rel)
    assert rel.split("/")[-1] in err.value.format()

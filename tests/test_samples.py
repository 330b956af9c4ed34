"""ShareGPT / OpenAI training files: both read into one shape, every defect reported by line."""

from __future__ import annotations

import json

import pytest

from graftkit.errors import InputError
from graftkit.samples import read_conversations, to_sharegpt


def _write(tmp_path, rows):
    p = tmp_path / "data.jsonl"
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return p


def test_sharegpt_and_openai_read_to_the_same_shape(tmp_path):
    share = _write(tmp_path, [{"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "hi"},
                                                 {"from": "gpt", "value": "yo"}]}])
    convs = read_conversations(share)
    assert convs == [[{"role": "system", "content": "s"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "yo"}]]
    assert to_sharegpt(convs[0]) == json.loads(share.read_text())
    oa = _write(tmp_path, [{"messages": [{"role": "user", "content": [{"type": "text", "text": "a "},
                                                                      {"type": "text", "text": "b"}]},
                                         {"role": "assistant", "content": "c"}]}])
    assert read_conversations(oa) == [[{"role": "user", "content": "a b"}, {"role": "assistant", "content": "c"}]]


@pytest.mark.parametrize("bad,needle", [
    ('{"conversations": [{"from": "narrator", "value": "x"}]}', "unknown role"),
    ('{"conversations": [{"from": "human", "value": "  "}, {"from": "gpt", "value": "x"}]}', "empty user turn"),
    ('{"conversations": [{"from": "human", "value": "only a question"}]}', "no assistant"),
    ('{"messages": [{"role": "bot", "content": "x"}]}', "unknown role"),
    ('{"text": "plain"}', "expected a 'conversations'"),
    ('{"conversations": [}', "invalid JSON"),
    ('[1, 2]', "expected a JSON object"),
])
def test_defects_name_file_and_line(tmp_path, bad, needle):
    good = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    p = _write(tmp_path, [good, bad])
    with pytest.raises(InputError) as e:
        read_conversations(p)
    assert e.value.line == 2 and e.value.path == str(p) and needle in e.value.message


def test_shared_broken_fixtures_report_line_2(fixtures_dir):
    for name in ("sharegpt_unknown_role.jsonl", "openai_bad_line.jsonl"):
        with pytest.raises(InputError) as e:
            read_conversations(fixtures_dir / "broken" / name)
        assert e.value.line == 2


def test_empty_file_is_an_error(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    with pytest.raises(InputError, match="no conversations"):
        read_conversations(p)

"""scripts/make_sample_data.py --control: the persona-free control must hold no recurring person.

Built on a synthetic chitchat-style wheel: a prolific person X who would otherwise appear in many control
chats (once as "me", once as the partner, ...) is a persona of their own and made the control's
who-wrote-it score 30 % (chance 10 %)."""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fake_wheel(path: Path) -> Path:
    convs = {}
    people = [f"p{i:02d}" for i in range(40)]
    pairs = [("sam", p) for p in people[:10]] + [("x", p) for p in people[10:30]] + \
        [(a, b) for a, b in zip(people[30:35], people[35:40])]
    for c, (a, b) in enumerate(pairs):
        msgs = [[{"sender": s, "text": f"{s} says {k} in chat {c}", "timestamp": f"2018-01-{1 + c % 28:02d}T10:{k:02d}:00Z"}]
                for k, s in enumerate([a, b] * 5)]
        convs[str(c)] = {"messages": msgs}
    # sam is the most prolific sender overall, x the most prolific without sam
    for c in range(10):
        convs[f"s{c}"] = {"messages": [[{"sender": "sam", "text": f"sam extra {c}", "timestamp": "2018-02-01T10:00:00Z"},
                                         {"sender": people[0], "text": f"{people[0]} extra {c}",
                                          "timestamp": "2018-02-01T10:01:00Z"}]]}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("chitchat_dataset/dataset.json", json.dumps(convs))
        zf.writestr("chitchat_dataset-0.9.0.dist-info/LICENSE", "MIT (synthetic test data)")
    return path


def test_control_has_no_recurring_person_and_me_is_either_side(tmp_path):
    wheel = fake_wheel(tmp_path / "chitchat_dataset-0.9.0-py3-none-any.whl")
    out = tmp_path / "control"
    res = subprocess.run([sys.executable, "scripts/make_sample_data.py", str(wheel), "--control", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    chats_of = collections.defaultdict(set)
    me_people = set()
    for f in out.glob("WhatsApp Chat with *.txt"):
        for line in f.read_text(encoding="utf-8").splitlines()[1:]:
            m = re.match(r".* - (\w+): (\w+) says \d+ in chat (\d+)$", line)
            assert m, line
            label, sender, chat = m.groups()
            chats_of[sender].add(chat)
            if label == "Sam":
                me_people.add(sender)
    assert "sam" not in chats_of  # the sample's person is not in the control
    assert chats_of["x"], "x's chats are eligible"
    assert max(len(c) for c in chats_of.values()) <= 2  # x had 20 chats without the cap
    assert len(me_people) >= 5  # "me" is many people

"""Atomic writes: a failure half-way leaves what was there before untouched."""

from __future__ import annotations

import pytest

from graftkit.errors import InputError
from graftkit.fileio import OutputSet, atomic_path, atomic_write_jsonl, atomic_write_text, read_jsonl


def test_atomic_write_replaces_only_on_success(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("crash")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]  # no temp litter
    atomic_write_text(p, "new")
    assert p.read_text() == "new"


def test_output_set_publishes_all_or_nothing(tmp_path):
    (tmp_path / "one.txt").write_text("previous")
    with pytest.raises(ValueError):
        with OutputSet(tmp_path) as out:
            out.write_text("one.txt", "replaced")
            out.write_jsonl("two.jsonl", [{"a": 1}])
            raise ValueError("bad input found late")
    assert (tmp_path / "one.txt").read_text() == "previous"
    assert not (tmp_path / "two.jsonl").exists()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["one.txt"]
    with OutputSet(tmp_path) as out:
        out.write_text("one.txt", "replaced")
        assert out.write_jsonl("two.jsonl", [{"a": 1}, {"b": "é"}]) == 2
    assert (tmp_path / "one.txt").read_text() == "replaced"
    assert [obj for _, obj in read_jsonl(tmp_path / "two.jsonl")] == [{"a": 1}, {"b": "é"}]


def test_read_jsonl_names_the_bad_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n\n{"a": \n')
    rows = read_jsonl(p)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(InputError) as e:
        next(rows)
    assert e.value.line == 3 and e.value.path == str(p)


def test_atomic_write_jsonl_roundtrip(tmp_path):
    p = tmp_path / "sub" / "rows.jsonl"
    assert atomic_write_jsonl(p, ({"i": i} for i in range(3))) == 3
    assert [o for _, o in read_jsonl(p)] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_outputs_are_private_files(tmp_path):
    """Outputs hold personal data: 0600 files, 0700 new folders, whatever the umask allows."""
    import os
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with OutputSet(tmp_path / "new") as out:
            out.write_text("b.txt", "y")
            with open(out.path("c.jsonl"), "w") as f:  # a path the caller opens itself
                f.write("z")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "new" / "b.txt").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "new" / "c.jsonl").stat().st_mode & 0o777 == 0o600

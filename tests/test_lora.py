"""LoRA training on a tiny random Llama (CPU, seconds): the loss drops, resume continues, the adapter
reloads and merges to the same logits, --chat answers piped stdin."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from graftkit.config import load_config
from graftkit.lora.config import LoraTrainConfig
from tiny_llama import make_tiny_llama

ROOT = Path(__file__).resolve().parents[1]
WORDS = "hey ok sure lol yeah nope maybe tomorrow tonight pizza movie later cool thanks".split()


def write_data(path: Path, n: int = 24, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            conv = []
            for _ in range(rng.randint(1, 3)):
                conv.append({"from": "human", "value": " ".join(rng.choices(WORDS, k=4)) + "?"})
                conv.append({"from": "gpt", "value": "Sam says " + " ".join(rng.choices(WORDS, k=3))})
            f.write(json.dumps({"conversations": conv}) + "\n")
    return path


def tiny_cfg(tiny: Path, data: Path, out: Path, *overrides: str) -> LoraTrainConfig:
    return load_config(LoraTrainConfig, ROOT / "lora_config.yaml", [
        f"base_model={tiny}", f"data_file={data}", f"output_dir={out}", "val_fraction=0.2", "max_steps=6",
        "eval_steps=3", "save_steps=3", "logging_steps=1", "batch_size=4", "gradient_accumulation_steps=1",
        "learning_rate=1e-2", "warmup_steps=0", "gradient_checkpointing=false", "max_seq_length=128",
        "contrast_pairs=0", *overrides])  # the contrast stage has its own tests (test_lora_contrast.py)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("lora")
    return {"tiny": make_tiny_llama(base / "tiny"), "data": write_data(base / "data.jsonl"), "base": base}


@pytest.fixture(scope="module")
def trained(env):
    from train_lora import run

    out = env["base"] / "out"
    cfg = tiny_cfg(env["tiny"], env["data"], out, "save_formats=[lora,merged_16bit,gguf_q4_k_m]",
                   "merged_dtype=float32")
    return run(cfg), out


def test_training_lowers_loss_and_writes_outputs(trained):
    summary, out = trained
    assert summary["backend"] == "peft" and summary["global_step"] == 6
    assert summary["last_eval_loss"] < summary["first_eval_loss"]
    assert summary["last_train_loss"] < summary["first_train_loss"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals] == [0, 3, 6]
    assert all(math.isclose(r["eval_perplexity"], math.exp(r["eval_loss"]), rel_tol=1e-9) for r in evals)
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert {p.name for p in out.glob("checkpoint-*")} == {"checkpoint-3", "checkpoint-6"}
    adapter = out / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "generation_config.json",
                 "graftkit_lora.json"):
        assert (adapter / name).is_file(), name
    assert "<|im_start|>" in (adapter / "chat_template.jinja").read_text()
    assert json.loads((adapter / "generation_config.json").read_text())["eos_token_id"] == 2  # <|im_end|>
    assert (out / "merged_16bit" / "model.safetensors").is_file()
    # GGUF asked for on CPU: skipped with a notice, nothing else lost
    assert summary["exports"]["gguf_skipped"] and not (out / "gguf").exists()
    assert summary["stopped_early"] is False


def test_gguf_without_unsloth_is_one_clear_line():
    from graftkit.lora.export import GGUF_NEEDS  # GGUF itself: tests/test_export.py

    assert "\n" not in GGUF_NEEDS and "convert_hf_to_gguf" in GGUF_NEEDS and "adapter and merged model" in GGUF_NEEDS


def test_merged_folder_is_a_plain_transformers_model(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, out = trained
    model = AutoModelForCausalLM.from_pretrained(out / "merged_16bit")
    tok = AutoTokenizer.from_pretrained(out / "merged_16bit")
    assert not hasattr(model, "peft_config") and tok.eos_token == "<|im_end|>"
    assert "{% generation %}" in tok.chat_template and model.generation_config.eos_token_id == tok.eos_token_id


def test_adapter_reload_and_merge_give_the_same_logits(env, tmp_path):
    import torch

    from train_lora import load_peft
    from graftkit.lora.chat import load_chat_model
    from graftkit.lora.export import merge_adapter, save_adapter

    cfg = tiny_cfg(env["tiny"], env["data"], tmp_path)
    loaded = load_peft(cfg)
    torch.manual_seed(0)
    with torch.no_grad():  # LoRA B starts at zero: make the adapter do something
        for name, p in loaded.model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.2)
    model = loaded.model.eval()
    x = torch.tensor([loaded.tokenizer("<|im_start|>user\nhey ok<|im_end|>\n")["input_ids"]])
    with torch.no_grad():
        ref = model(x).logits
        save_adapter(cfg, loaded, model, tmp_path / "adapter")
        reloaded, _, info, _ = load_chat_model(cfg, tmp_path / "adapter")
        assert torch.equal(reloaded(x).logits, ref)
        merged = merge_adapter(reloaded)
        assert not hasattr(merged, "peft_config")
        assert torch.allclose(merged(x).logits, ref, atol=1e-5)
    assert info.eot_token == "<|im_end|>"


def test_merged_folder_matches_the_adapter(trained):
    import torch

    from graftkit.lora.chat import load_chat_model

    _, out = trained
    cfg = load_config(LoraTrainConfig, None, [])
    a, tok, _, _ = load_chat_model(cfg, out / "adapter")
    m, _, _, meta = load_chat_model(cfg, out / "merged_16bit")
    x = torch.tensor([tok("<|im_start|>user\nmovie tonight?<|im_end|>\n")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(a(x).logits, m(x).logits, atol=1e-5)
    assert meta["merged"] is True


def test_resume_continues_from_the_saved_step(env, trained):
    from graftkit.lora.train import resolve_resume
    from train_lora import run

    _, out = trained
    cfg = tiny_cfg(env["tiny"], env["data"], out, "max_steps=8")
    assert resolve_resume(cfg, out).endswith("checkpoint-6")
    summary = run(cfg)
    assert summary["global_step"] == 8 and summary["steps_this_run"] == 2
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[:2] == [0, 1] and 8 in steps  # the history before the resume is kept
    assert resolve_resume(tiny_cfg(env["tiny"], env["data"], out, "resume=false"), out) is None


def test_resume_from_a_given_checkpoint_path(env, trained, tmp_path):
    from train_lora import run

    _, out = trained
    summary = run(tiny_cfg(env["tiny"], env["data"], tmp_path / "other", f"resume={out / 'checkpoint-3'}",
                           "max_steps=4", "eval_on_start=false"))
    assert summary["global_step"] == 4 and summary["steps_this_run"] == 1
    assert (tmp_path / "other" / "adapter" / "adapter_model.safetensors").is_file()


def test_early_stopping_stops_and_keeps_the_best(env, tmp_path):
    from train_lora import run

    # a threshold no step can beat: every evaluation after the first counts as "no improvement"
    summary = run(tiny_cfg(env["tiny"], env["data"], tmp_path / "es", "max_steps=40", "eval_steps=1", "save_steps=1",
                           "early_stopping_patience=2", "early_stopping_threshold=10", "save_total_limit=2"))
    assert summary["stopped_early"] and summary["global_step"] < 10
    assert summary["best_checkpoint"] and Path(summary["best_checkpoint"]).is_dir()
    assert (tmp_path / "es" / "adapter" / "adapter_model.safetensors").is_file()


def test_chat_with_piped_stdin(trained):
    _, out = trained
    p = subprocess.run([sys.executable, "train_lora.py", "--chat", "--config", "lora_config.yaml",
                        f"output_dir={out}", "chat_max_new_tokens=8", "chat_temperature=0"],
                       cwd=ROOT, input="hey there\n\nmovie tonight?\n", capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.splitlines()) == 2 and p.stdout.strip()
    assert "Traceback" not in p.stderr

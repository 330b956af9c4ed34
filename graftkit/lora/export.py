"""Saving a trained LoRA: the adapter (always), a merged 16-bit model, GGUF through Unsloth.

Every saved folder carries the tokenizer with the training chat template, a generation_config
whose eos is the end-of-turn token (so generation stops at the end of the person's turn), and
`graftkit_lora.json` with what `--chat` needs to rebuild the same prompt format.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fileio import atomic_write_json

META_FILE = "graftkit_lora.json"
GGUF_NEEDS = ("GGUF export (save_formats gguf_*) runs through Unsloth, which needs an NVIDIA GPU with unsloth "
              "installed (pip install -r requirements-gpu.txt) and llama.cpp; it is skipped here, the LoRA adapter "
              "is saved as usual. Alternative: add merged_16bit and run llama.cpp's convert_hf_to_gguf.py yourself")


def run_meta(cfg: Any, loaded: Any, merged: bool = False) -> dict[str, Any]:
    return {
        "base_model": cfg.base_model, "model_id": loaded.model_id, "gguf_file": cfg.gguf_file,
        "backend": loaded.backend, "merged": merged, "system_prompt": cfg.system_prompt,
        "max_seq_length": cfg.max_seq_length, **loaded.info.to_json(),
    }


def read_meta(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no trained model here ({META_FILE} missing); train first with train_lora.py", folder) from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {META_FILE}: {e}", folder) from None


def save_adapter(cfg: Any, loaded: Any, model: Any, out_dir: Path) -> Path:
    """The PEFT adapter folder: adapter_config.json + adapter_model.safetensors, tokenizer, generation config."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # a GGUF or hub base has no local config.json to compare vocab sizes with
        warnings.filterwarnings("ignore", message="Could not find a config file")
        model.save_pretrained(str(out_dir))
    loaded.tokenizer.save_pretrained(str(out_dir))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.generation_config.save_pretrained(str(out_dir))
    atomic_write_json(out_dir / META_FILE, run_meta(cfg, loaded))
    return out_dir


def merge_adapter(peft_model: Any) -> Any:
    """The plain transformers model with the LoRA weights folded in (`merge_and_unload`)."""
    return peft_model.merge_and_unload()


def save_merged(cfg: Any, loaded: Any, model: Any, adapter_dir: Path, out_dir: Path) -> Path:
    """A full HF model folder in `merged_dtype`; a 4-bit base is reloaded in 16 bit before merging."""
    import torch

    dtype = getattr(torch, cfg.merged_dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    if loaded.backend == "unsloth":
        model.save_pretrained_merged(str(out_dir), loaded.tokenizer, save_method="merged_16bit")
    else:
        if getattr(model, "is_loaded_in_4bit", False) or getattr(model.get_base_model(), "is_loaded_in_4bit", False):
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            base = AutoModelForCausalLM.from_pretrained(loaded.model_id, dtype=dtype)
            if len(loaded.tokenizer) > base.get_input_embeddings().weight.shape[0]:
                base.resize_token_embeddings(len(loaded.tokenizer))
            model = PeftModel.from_pretrained(base, str(adapter_dir))
        merged = merge_adapter(model).to(dtype)
        merged.save_pretrained(str(out_dir))
        loaded.tokenizer.save_pretrained(str(out_dir))
    atomic_write_json(out_dir / META_FILE, run_meta(cfg, loaded, merged=True))
    print(f"merged {cfg.merged_dtype} model saved to {out_dir}", flush=True)
    return out_dir


def save_gguf(cfg: Any, loaded: Any, model: Any, out_dir: Path) -> Path | None:
    """GGUF files (q4_k_m, q8_0, f16) via Unsloth's exporter; on the PEFT backend a notice and None."""
    if loaded.backend != "unsloth":
        print(f"notice: GGUF ({', '.join(cfg.gguf_methods)}) not written: needs Unsloth on an NVIDIA GPU (see the "
              "notice before training)", flush=True)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        model.save_pretrained_gguf(str(out_dir), loaded.tokenizer, quantization_method=cfg.gguf_methods)
    except Exception as e:  # llama.cpp fetch/build failures: the adapter is already saved, say what is needed
        raise UserError(f"GGUF export failed ({str(e).splitlines()[0] if str(e) else type(e).__name__}); the adapter "
                        "is saved. GGUF needs llama.cpp: network access to GitHub, or build it and set "
                        "UNSLOTH_LLAMA_CPP_PATH") from None
    print(f"GGUF ({', '.join(cfg.gguf_methods)}) saved to {out_dir}", flush=True)
    return out_dir

"""Saving a trained LoRA: the adapter (always), a merged 16-bit model, GGUF, and Ollama Modelfiles.

Every saved folder carries the tokenizer with the training chat template, a generation_config
whose eos is the end-of-turn token (so generation stops at the end of the person's turn), and
`graftkit_lora.json` with what `--chat` needs to rebuild the same prompt format. The merged and
GGUF folders also get an Ollama `Modelfile` (same prompt format, see ollama.py) and the exact
`ollama create` command is printed. GGUF comes from llama.cpp's own converter when it is
available (any backend, CPU included), else from Unsloth's exporter on the Unsloth backend, else
the commands to run later are printed.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from ..errors import UserError, first_line
from ..fileio import atomic_write_json
from . import ollama
from .config import LoraTrainConfig

META_FILE = "graftkit_lora.json"
GGUF_NEEDS = ("GGUF export (save_formats gguf_*) on this backend runs llama.cpp's own convert_hf_to_gguf.py on the "
              "merged model after training (llama_cpp_dir or LLAMA_CPP; get it with: "
              + ollama.GET_CONVERTER + "); without it the adapter and merged model are saved and the commands to "
              "run later are printed")


def run_meta(cfg: LoraTrainConfig, loaded: Any, merged: bool = False, selection: dict | None = None) -> dict[str, Any]:
    """What evaluation and chat need to use the model as it was trained (template, roles, how it was chosen)."""
    return {
        "base_model": cfg.base_model, "model_id": loaded.model_id, "gguf_file": cfg.gguf_file,
        "backend": loaded.backend, "merged": merged, "system_prompt": cfg.system_prompt,
        "max_seq_length": cfg.max_seq_length, "train_on": cfg.train_on, **loaded.info.to_json(),
        **({"selection": selection} if selection else {}),
    }


def read_meta(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no trained model here ({META_FILE} missing); train first with train_lora.py", folder) from None
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {META_FILE}: {e}", folder) from None


def save_adapter(cfg: LoraTrainConfig, loaded: Any, model: Any, out_dir: Path, selection: dict | None = None) -> Path:
    """The PEFT adapter folder: adapter_config.json + adapter_model.safetensors, tokenizer, generation config."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # a GGUF or hub base has no local config.json to compare vocab sizes with
        warnings.filterwarnings("ignore", message="Could not find a config file")
        model.save_pretrained(str(out_dir))
    loaded.tokenizer.save_pretrained(str(out_dir))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.generation_config.save_pretrained(str(out_dir))
    atomic_write_json(out_dir / META_FILE, run_meta(cfg, loaded, selection=selection))
    write_adapter_modelfile(cfg, loaded, out_dir)
    return out_dir


def merge_adapter(peft_model: Any) -> Any:
    """The plain transformers model with the LoRA weights folded in (`merge_and_unload`)."""
    return peft_model.merge_and_unload()


def save_merged(cfg: LoraTrainConfig, loaded: Any, model: Any, adapter_dir: Path, out_dir: Path) -> Path:
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

            base = AutoModelForCausalLM.from_pretrained(loaded.model_id, dtype=dtype,
                                                        trust_remote_code=cfg.trust_remote_code)
            if len(loaded.tokenizer) > base.get_input_embeddings().weight.shape[0]:
                base.resize_token_embeddings(len(loaded.tokenizer))
            model = PeftModel.from_pretrained(base, str(adapter_dir))
        merged = merge_adapter(model).to(dtype)
        merged.save_pretrained(str(out_dir))
        loaded.tokenizer.save_pretrained(str(out_dir))
    atomic_write_json(out_dir / META_FILE, run_meta(cfg, loaded, merged=True))
    print(f"merged {cfg.merged_dtype} model saved to {out_dir}", flush=True)
    write_ollama_files(cfg, loaded, out_dir, ".", _safetensors_note(out_dir))
    return out_dir


def _safetensors_note(merged_dir: Path) -> str:
    try:
        archs = json.loads((merged_dir / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError):
        archs = []
    if archs and not set(archs) & set(ollama.OLLAMA_SAFETENSORS_ARCHS):
        return (f"Ollama may not import {archs[0]} from safetensors; use the GGUF Modelfile instead "
                "(save_formats: gguf_q8_0, see README_TRAINING.md)")
    return "Ollama imports this safetensors folder itself (FROM .); a GGUF file is smaller and loads faster."


def write_ollama_files(cfg: LoraTrainConfig, loaded: Any, folder: Path, source: str, note: str = "") -> Path | None:
    """An Ollama Modelfile in `folder` (FROM `source`) with the training prompt format; prints `ollama create`."""
    info = loaded.info
    matched = ollama.match_format(loaded.tokenizer, info.family, info.template_kwargs, cfg.system_prompt,
                                  info.eot_token)
    if not matched.exact:
        print(f"notice: the Modelfile's TEMPLATE ({matched.fmt.name}) could not be checked against the training chat "
              f"template; check it before use ({folder / 'Modelfile'})", flush=True)
    text = ollama.modelfile_text(source, matched, info.eot_token, cfg.chat_temperature, note=note)
    path, cmd = ollama.write_modelfile(folder, text, ollama.ollama_name(cfg.output_dir))
    print(f"Ollama: {cmd}", flush=True)
    return path


def write_adapter_modelfile(cfg: LoraTrainConfig, loaded: Any, adapter_dir: Path) -> Path | None:
    """Modelfile.ollama in the adapter folder (FROM <Ollama base> + ADAPTER .) where Ollama takes PEFT adapters:
    Llama / Mistral presets with no tokens added to the vocabulary."""
    base = ollama.OLLAMA_BASES.get(str(cfg.base_model).strip().lower())
    if base is None or loaded.info.added_tokens:
        return None
    info = loaded.info
    matched = ollama.match_format(loaded.tokenizer, info.family, info.template_kwargs, cfg.system_prompt,
                                  info.eot_token)
    note = (f"FROM must be the base this adapter was trained on ({loaded.model_id}); prefer its fp16 tag "
            "(`ollama pull`), a QLoRA adapter on a 4-bit base drifts. The merged model's Modelfile is the safer path.")
    text = ollama.modelfile_text(base, matched, info.eot_token, cfg.chat_temperature, adapter=".", note=note)
    path = adapter_dir / "Modelfile"
    path.write_text(text, encoding="utf-8")
    print(f"Ollama (adapter on {base}): {ollama.create_command(path, ollama.ollama_name(cfg.output_dir) + '-adapter')}",
          flush=True)
    return path


def save_gguf(cfg: LoraTrainConfig, loaded: Any, model: Any, out_dir: Path) -> Path | None:
    """GGUF files (gguf_q8_0, gguf_f16, gguf_q4_k_m) plus a Modelfile; None when nothing could be written here.

    llama.cpp's converter (llama_cpp_dir / LLAMA_CPP / pip package) on any backend, from the merged
    model (written to output_dir/merged_16bit first if it is not there); without it Unsloth's exporter
    on the Unsloth backend; else one line on how to get the converter and the commands to run later.
    """
    methods = cfg.gguf_methods
    converter = ollama.find_converter(getattr(cfg, "llama_cpp_dir", ""))  # a bad llama_cpp_dir fails here, early
    if converter is None and loaded.backend == "unsloth":
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            model.save_pretrained_gguf(str(out_dir), loaded.tokenizer, quantization_method=methods)
        except Exception as e:  # llama.cpp fetch/build failures: the adapter is already saved, say what is needed
            raise UserError(f"GGUF export failed ({first_line(e)}); the "
                            "adapter is saved. GGUF needs llama.cpp: network access to GitHub, or set llama_cpp_dir "
                            f"(get it with: {ollama.GET_CONVERTER})") from None
        ggufs = sorted(out_dir.glob("*.gguf"))
        if ggufs:
            write_ollama_files(cfg, loaded, out_dir, f"./{ggufs[0].name}")
        print(f"GGUF ({', '.join(methods)}) saved to {out_dir}", flush=True)
        return out_dir
    merged_dir = out_dir.parent / "merged_16bit"
    if not (merged_dir / META_FILE).is_file():
        save_merged(cfg, loaded, model, out_dir.parent / "adapter", merged_dir)
    written, later = ollama.write_gguf(merged_dir, out_dir, methods, getattr(cfg, "llama_cpp_dir", ""))
    wanted = [out_dir / ollama.gguf_name(m) for m in methods]
    first = next((p for p in wanted if p in written), None)
    if first is not None:
        write_ollama_files(cfg, loaded, out_dir, f"./{first.name}")
        print(f"GGUF saved: {', '.join(str(p) for p in wanted if p in written)}", flush=True)
    if later:
        how = "" if converter else f"llama.cpp's converter not found; get it with: {ollama.GET_CONVERTER}. "
        print(f"notice: GGUF ({', '.join(m for m in methods if out_dir / ollama.gguf_name(m) not in written)}) not "
              f"written here: {how}Then run: {' && '.join(later)}", file=sys.stderr, flush=True)
    return out_dir if first is not None else None

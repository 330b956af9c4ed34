"""The tiny GPT's checkpoint files (last.pt, best.pt): which one to load, whether a run may resume
from it, and loading one for sampling, chat, export and evaluation.

What a checkpoint holds is written out in train_tiny_gpt.py (`checkpoint = {...}`), where a reader of
the loop sees it; it is saved with graftkit.checkpoint.atomic_torch_save (temp file + rename) and
loaded weights-only. Every checkpoint carries its tokenizer.json, so a model always samples with the
exact tokenizer it was trained with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..checkpoint import load_checkpoint
from ..errors import UserError
from .config import MODEL_KEY_DEFAULTS, MODEL_KEYS, TinyGPTConfig
from .model import ModelArgs, TinyGPT
from .tokenizer import TinyTokenizer, tokenizer_from_json

CKPT_FORMAT = "graftkit-tiny-gpt/1"


def is_finite(model: torch.nn.Module) -> bool:
    """False when any weight is NaN or infinite: such a model must never overwrite a good checkpoint."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def check_resumable(ckpt: dict[str, Any], cfg: TinyGPTConfig, tok: TinyTokenizer, path: Path) -> None:
    """Refuse to resume a checkpoint made by something else, with another tokenizer or model shape."""
    if ckpt.get("format") != CKPT_FORMAT:
        raise UserError(f"not a tiny GPT checkpoint (format {ckpt.get('format')!r}); "
                        f"use another out_dir or init_from=scratch", path)
    saved_tok = ckpt.get("tokenizer", {})
    if saved_tok.get("sha256") != tok.sha256 or saved_tok.get("vocab_size") != tok.vocab_size:
        raise UserError(
            f"tokenizer {tok.path} (vocab {tok.vocab_size}, sha256 {tok.sha256[:12]}) differs "
            f"from the one this checkpoint was trained with (vocab {saved_tok.get('vocab_size')}, sha256 "
            f"{str(saved_tok.get('sha256'))[:12]}); restore that tokenizer, use another out_dir, or "
            f"init_from=scratch", path)
    saved_args = {**MODEL_KEY_DEFAULTS, **ckpt["model_args"]}
    keys = [k for k in MODEL_KEYS if k != "mlp_act" or cfg.block == "modern"]  # gpt2 has no mlp_act
    diffs = [f"{k}={saved_args[k]!r} (config says {getattr(cfg, k)!r})" for k in keys
             if saved_args.get(k) != getattr(cfg, k)]
    if diffs:
        raise UserError(f"checkpoint was trained with {', '.join(diffs)}; use another out_dir or "
                        f"init_from=scratch to start over", path)
    saved_opt = ckpt.get("config", {}).get("optimizer", "adamw")  # checkpoints before Muon were AdamW
    if saved_opt != cfg.optimizer:
        raise UserError(f"checkpoint was trained with optimizer={saved_opt} (config says {cfg.optimizer}); "
                        f"set optimizer={saved_opt}, use another out_dir, or init_from=scratch", path)


def find_checkpoint(cfg: TinyGPTConfig, explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    out = Path(cfg.out_dir)
    for name in ("best.pt", "last.pt"):
        if (out / name).is_file():
            return out / name
    raise UserError(f"no checkpoint in {out} (best.pt or last.pt): train first with "
                    f"`python train_tiny_gpt.py --config ...` or set out_dir=...")


def load_for_inference(cfg: TinyGPTConfig, checkpoint: str | None = None,
                       device: str | None = None) -> tuple[TinyGPT, TinyTokenizer, Path, dict]:
    """Model (eval mode, no dropout) and the exact tokenizer it was trained with (stored in the checkpoint)."""
    from .runtime import resolve_device

    path = find_checkpoint(cfg, checkpoint)
    dev = device or resolve_device(cfg.device)
    ckpt = load_checkpoint(path, map_location="cpu")
    if ckpt.get("format") != CKPT_FORMAT:
        raise UserError("not a tiny GPT checkpoint", path)
    args = ModelArgs(**ckpt["model_args"])
    args.dropout = 0.0
    model = TinyGPT(args)
    model.load_state_dict(ckpt["model"])
    model.to(dev).eval()
    tok = tokenizer_from_json(ckpt["tokenizer_json"], f"{path} (embedded tokenizer)")
    return model, tok, path, ckpt

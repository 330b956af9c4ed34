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
from ..config import brief
from ..errors import UserError
from .config import MODEL_KEY_DEFAULTS, MODEL_KEYS, TinyGPTConfig
from .model import ModelArgs, TinyGPT
from .tokenizer import TinyTokenizer, tokenizer_from_json

CKPT_FORMAT = "graftkit-tiny-gpt/1"


def is_finite(model: torch.nn.Module) -> bool:
    """False when any weight is NaN or infinite: such a model must never overwrite a good checkpoint."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def check_resumable(ckpt: dict[str, Any], cfg: TinyGPTConfig, tok: TinyTokenizer, path: Path) -> None:
    """Refuse to resume a checkpoint made by something else, with another tokenizer or model shape.

    Every value read from the file is checked for type before it is compared or shown: a 1.5 KB
    last.pt of shared nested lists passes weights_only, and printing it took 108 s and 8 GB."""
    check_format(ckpt, path, "use another out_dir or init_from=scratch")
    saved_tok = ckpt.get("tokenizer")
    saved_tok = saved_tok if isinstance(saved_tok, dict) else {}
    if saved_tok.get("sha256") != tok.sha256 or saved_tok.get("vocab_size") != tok.vocab_size:
        raise UserError(
            f"tokenizer {tok.path} (vocab {tok.vocab_size}, sha256 {tok.sha256[:12]}) differs "
            f"from the one this checkpoint was trained with (vocab {brief(saved_tok.get('vocab_size'))}, sha256 "
            f"{brief(saved_tok.get('sha256'), 12)}); restore that tokenizer, use another out_dir, or "
            f"init_from=scratch", path)
    model_args = ckpt.get("model_args")
    if not isinstance(model_args, dict):
        raise UserError(f"damaged checkpoint: model_args is {brief(model_args)}, not a mapping; use another "
                        f"out_dir or init_from=scratch", path)
    saved_args = {**MODEL_KEY_DEFAULTS, **model_args}
    keys = [k for k in MODEL_KEYS if k != "mlp_act" or cfg.block == "modern"]  # gpt2 has no mlp_act
    diffs = [f"{k}={brief(saved_args.get(k))} (config says {getattr(cfg, k)!r})" for k in keys
             if saved_args.get(k) != getattr(cfg, k)]
    if diffs:
        raise UserError(f"checkpoint was trained with {', '.join(diffs)}; use another out_dir or "
                        f"init_from=scratch to start over", path)
    saved_cfg = ckpt.get("config")
    saved_opt = saved_cfg.get("optimizer", "adamw") if isinstance(saved_cfg, dict) else "adamw"  # pre-Muon: AdamW
    if saved_opt != cfg.optimizer:
        shown = saved_opt if isinstance(saved_opt, str) and len(saved_opt) <= 40 else brief(saved_opt)
        raise UserError(f"checkpoint was trained with optimizer={shown} (config says {cfg.optimizer}); "
                        f"set optimizer={shown}, use another out_dir, or init_from=scratch", path)


def check_format(ckpt: Any, path: Path | str, hint: str) -> None:
    """A UserError unless `ckpt` is a dict whose `format` is this kit's tiny GPT format string. The
    found value is shown through config.brief (type and size checked before anything is formatted)."""
    fmt = ckpt.get("format") if isinstance(ckpt, dict) else None
    if not isinstance(fmt, str) or fmt != CKPT_FORMAT:
        raise UserError(f"not a tiny GPT checkpoint (format {brief(fmt)}); {hint}", path)


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
    check_format(ckpt, path, "give the best.pt or last.pt that train_tiny_gpt.py wrote")
    args = ModelArgs(**ckpt["model_args"])
    args.dropout = 0.0
    model = TinyGPT(args)
    model.load_state_dict(ckpt["model"])
    model.to(dev).eval()
    tok = tokenizer_from_json(ckpt["tokenizer_json"], f"{path} (embedded tokenizer)")
    return model, tok, path, ckpt

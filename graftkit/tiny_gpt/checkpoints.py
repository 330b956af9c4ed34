"""The tiny GPT's checkpoint files (last.pt, best.pt): which one to load, whether a run may resume
from it, and loading one for sampling, chat, export and evaluation.

What a checkpoint holds is written out in train_tiny_gpt.py (`checkpoint = {...}`), where a reader of
the loop sees it; it is saved with graftkit.checkpoint.atomic_torch_save (temp file + rename) and
loaded weights-only. Every checkpoint carries its tokenizer.json, so a model always samples with the
exact tokenizer it was trained with.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Iterator

import torch

from ..checkpoint import load_checkpoint
from ..config import brief
from ..errors import UserError, first_line
from .config import MODEL_KEY_DEFAULTS, MODEL_KEYS, TinyGPTConfig
from .model import ModelArgs, TinyGPT
from .tokenizer import TinyTokenizer, tokenizer_from_json

CKPT_FORMAT = "graftkit-tiny-gpt/1"
# what a resumable last.pt holds (train_tiny_gpt.py writes all of them)
RESUME_KEYS = ("model", "model_args", "optimizer", "scaler", "iter", "best_val_loss", "best_iter", "evals_since_best",
               "last_eval_iter", "tokens_seen", "rng", "sampler", "tokenizer")


def _plain(value: Any) -> str:
    """Like config.brief, but a short printable string as it is (optimizer=adamw, as the user would type it)."""
    return value if isinstance(value, str) and len(value) <= 60 and value.isprintable() else brief(value)


@contextlib.contextmanager
def damaged_checkpoint(path: Path) -> Iterator[None]:
    """Loading a checkpoint's pieces: a missing key or a value of the wrong type or shape is one line naming it."""
    try:
        yield
    except KeyError as e:
        raise UserError(f"checkpoint is incomplete (no {brief(e.args[0] if e.args else '?')}); use another out_dir "
                        "or init_from=scratch", path) from None
    except (TypeError, ValueError, RuntimeError, AttributeError, IndexError, OverflowError) as e:
        raise UserError(f"checkpoint is damaged ({first_line(e, 160)}); use another out_dir or init_from=scratch",
                        path) from None


def model_args_from(ckpt: dict[str, Any], path: Path) -> ModelArgs:
    """The checkpoint's ModelArgs, checked before a model is built from them (n_head=0 must not divide by zero)."""
    raw = ckpt.get("model_args")
    if not isinstance(raw, dict):
        raise UserError("checkpoint has no model_args; not a tiny GPT checkpoint written by this kit", path)
    fields = {f.name: f for f in dataclasses.fields(ModelArgs)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise UserError(f"checkpoint model_args has unknown key {brief(unknown[0])}", path)
    ints = {"vocab_size": 1, "block_size": 2, "n_layer": 1, "n_head": 1, "n_embd": 1}
    for k, low in ints.items():
        if k not in raw and fields[k].default is dataclasses.MISSING:
            raise UserError(f"checkpoint model_args has no {k}; not a tiny GPT checkpoint written by this kit", path)
        v = raw.get(k, fields[k].default)
        if type(v) is not int or not low <= v <= 1 << 20:
            raise UserError(f"checkpoint model_args: {k}={brief(v)} is not a whole number in [{low}, {1 << 20}]",
                            path)
    if raw.get("n_embd", fields["n_embd"].default) % raw.get("n_head", fields["n_head"].default):
        raise UserError(f"checkpoint model_args: n_embd={raw.get('n_embd')} is not divisible by "
                        f"n_head={raw.get('n_head')}", path)
    for k in ("dropout", "rope_theta", "norm_eps"):
        if k in raw and (type(raw[k]) not in (int, float) or not 0 <= raw[k] < 1e12):
            raise UserError(f"checkpoint model_args: {k}={brief(raw[k])} is not a number in range", path)
    if raw.get("block", "gpt2") not in ("gpt2", "modern") or raw.get("mlp_act", "silu") not in ("silu", "relu2"):
        raise UserError(f"checkpoint model_args: unknown block {brief(raw.get('block'))} or mlp_act "
                        f"{brief(raw.get('mlp_act'))}", path)
    return ModelArgs(**raw)


def is_finite(model: torch.nn.Module) -> bool:
    """False when any weight is NaN or infinite: such a model must never overwrite a good checkpoint."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def check_resumable(ckpt: dict[str, Any], cfg: TinyGPTConfig, tok: TinyTokenizer, path: Path) -> None:
    """Refuse to resume a checkpoint made by something else, with another tokenizer or model shape.

    Every value read from the file is checked for type before it is compared or shown: a 1.5 KB
    last.pt of shared nested lists passes weights_only, and printing it took 108 s and 8 GB."""
    check_format(ckpt, path, "use another out_dir or init_from=scratch")
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise UserError(f"checkpoint is incomplete (no {', '.join(missing)}): it cannot resume training; use another "
                        f"out_dir or init_from=scratch", path)
    model_args_from(ckpt, path)
    saved_tok = ckpt.get("tokenizer")
    if not isinstance(saved_tok, dict):
        raise UserError("checkpoint is damaged (tokenizer is not a mapping); use another out_dir or init_from=scratch",
                        path)
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
    saved_cfg = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    saved_opt = saved_cfg.get("optimizer", "adamw")  # checkpoints before Muon were AdamW
    if saved_opt != cfg.optimizer:
        raise UserError(f"checkpoint was trained with optimizer={_plain(saved_opt)} (config says {cfg.optimizer}); "
                        f"set optimizer={_plain(saved_opt)}, use another out_dir, or init_from=scratch", path)


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
    args = model_args_from(ckpt, path)
    args.dropout = 0.0
    with damaged_checkpoint(path):
        model = TinyGPT(args)
        model.load_state_dict(ckpt["model"])
        if not isinstance(ckpt["tokenizer_json"], str):
            raise TypeError("tokenizer_json is not text")
    model.to(dev).eval()
    tok = tokenizer_from_json(ckpt["tokenizer_json"], f"{path} (embedded tokenizer)")
    return model, tok, path, ckpt

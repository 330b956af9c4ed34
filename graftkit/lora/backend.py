"""Backend selection and the model-loading details behind train_lora.py's load_unsloth / load_peft.

`auto` picks Unsloth only when torch sees a CUDA GPU *and* unsloth is installed. On the Unsloth
branch `import unsloth` runs before transformers / trl / peft are imported (it patches them), so
nothing above this module imports them at module level. The PEFT branch uses bitsandbytes 4-bit on
CUDA (QLoRA) and plain fp32 on CPU.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError, first_line, notice
from .data import TemplateInfo
from .config import LoraTrainConfig

INSTALL_HINT = ("Unsloth runs on an NVIDIA GPU; install it there with: pip install -r requirements-gpu.txt "
                "(Colab/RunPod: see README_TRAINING.md)")


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def select_backend(requested: str, gguf_file: str = "") -> str:
    """'unsloth' or 'peft' for `backend: auto | unsloth | peft`.

    A `gguf_file` base is read (dequantized) by transformers, which Unsloth's loader does not do:
    `auto` then uses PEFT and `unsloth` is an error.
    """
    if requested == "peft":
        return "peft"
    if requested not in ("auto", "unsloth"):
        raise ConfigError(f"backend: must be auto, unsloth or peft, got {requested!r}")
    cuda, has_unsloth = cuda_available(), unsloth_installed()
    if world_size() > 1:
        if requested == "unsloth":
            raise ConfigError(f"backend: unsloth with {world_size()} processes: graftkit runs Unsloth on one GPU only "
                              "(its multi-GPU training is not verified here); use backend: peft (or auto) for DDP")
        if cuda and has_unsloth:
            notice(f"{world_size()} processes: using transformers + PEFT with DDP (Unsloth runs on one GPU here)")
        return "peft"
    if requested == "unsloth":
        if not cuda:
            raise ConfigError("backend: unsloth needs an NVIDIA GPU with CUDA and torch sees none here; "
                              f"{INSTALL_HINT}. On this machine use backend: peft (or auto)")
        if not has_unsloth:
            raise ConfigError(f"backend: unsloth, but the unsloth package is not installed; {INSTALL_HINT}")
        if gguf_file:
            raise ConfigError("backend: unsloth cannot load a gguf_file base model; use a Hugging Face id, a preset "
                              "or a local HF folder, or backend: peft")
        return "unsloth"
    if cuda and has_unsloth and gguf_file:
        notice("gguf_file: Unsloth cannot load GGUF weights; using transformers + PEFT")
        return "peft"
    return "unsloth" if cuda and has_unsloth else "peft"


def tune_cpu_allocator() -> bool:
    """On glibc, keep activation-sized buffers in the heap between training steps (CPU training only).

    glibc serves each allocation above M_MMAP_THRESHOLD (128 KiB until it adapts) with a fresh mmap and
    returns it on free, so every step's activations page-fault again. The threshold adapts upward only
    after large mmapped blocks are freed, which depends on what the process did before training: two
    runs of the same training could differ by ~10 % per step on a small model (measured with
    bench/bench_lora.py, page faults 600k vs 330k). Fixing the thresholds at glibc's own dynamic
    ceiling (32 MiB mmap, 64 MiB trim) makes it deterministic. Skipped when the user set
    MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_, preloads another allocator, or sets
    GRAFTKIT_NO_MALLOPT=1 (to measure the difference).
    """
    if not sys.platform.startswith("linux") or os.environ.get("GRAFTKIT_NO_MALLOPT"):
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if any(a in os.environ.get("LD_PRELOAD", "") for a in ("jemalloc", "tcmalloc", "mimalloc")):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another libc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return mallopt(m_mmap_threshold, 32 << 20) == 1 and mallopt(m_trim_threshold, 64 << 20) == 1


def rank() -> int:
    """This process's rank under torchrun / accelerate launch (0 when run alone)."""
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def say(*args: Any, **kwargs: Any) -> None:
    """print(), on the first process only: N processes would print everything N times."""
    if rank() == 0:
        print(*args, **{**kwargs, "flush": True})


def trainer_device_args(device: str, wandb: bool) -> dict[str, Any]:
    """The TrainingArguments both trainers (SFT and the contrast stage's DPO) take from the device: bf16 where
    the GPU has it (else fp16 on CUDA; fp32 on a CPU, whose bf16 is emulated and slow), pinned memory on CUDA
    only, and wandb only when asked."""
    cuda = device == "cuda"
    import torch

    bf16 = cuda and torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": cuda and not bf16, "use_cpu": not cuda, "dataloader_pin_memory": cuda,
            "report_to": "wandb" if wandb else "none"}


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    info: TemplateInfo
    backend: str
    model_id: str
    device: str


def remote_code_allowed(cfg: Any) -> bool:
    """`trust_remote_code` of a config (False for the small config-like objects --chat and evaluation pass).

    Always passed explicitly: left unset, transformers asks "run the custom code? [y/N]" on stdin, and a
    piped "y" (`printf 'y\nhello\n' | train_lora.py --chat`) would run a downloaded folder's Python."""
    return getattr(cfg, "trust_remote_code", False) is True


def remote_code_error(where: str, e: Exception) -> UserError | None:
    """One line for transformers' refusal of a model that needs its own code (trust_remote_code=False)."""
    text = str(e)
    if "trust_remote_code" not in text and "custom code" not in text:
        return None
    return UserError("this model ships its own Python code (auto_map in its config), which graftkit does not run; "
                     "use a model transformers supports natively, or, only if you have read that code, set "
                     "trust_remote_code: true in the LoRA config", where)


def hub_error(model_id: str, e: Exception) -> UserError:
    return UserError(f"cannot load base model {model_id!r}: {first_line(e)} (is it a preset name, a Hugging Face id you can "
                     "access, or a local folder? gated models need `huggingface-cli login`)")


HUB_TIMEOUT_S = 20.0  # GRAFTKIT_HUB_TIMEOUT overrides; huggingface_hub's first metadata request has no timeout


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() not in ("", "0", "false", "no")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_hub(model_id: str) -> None:
    """Say what is fetched, and fail in bounded time when the Hub does not answer.

    transformers' first request for a hub id (the revision lookup) waits forever on a network that
    accepts connections but never answers (a captive portal, a dead proxy), so the id is probed here
    with a timeout first. Local folders and offline mode skip this. When the Hub is unreachable but
    the model is in the local cache, the run goes on offline from the cache.
    """
    if Path(model_id).expanduser().exists() or _offline() or "/" not in model_id:
        return
    import huggingface_hub
    from huggingface_hub import constants

    timeout = float(os.environ.get("GRAFTKIT_HUB_TIMEOUT", HUB_TIMEOUT_S))
    say(f"fetching {model_id} from {constants.ENDPOINT} (cached in {constants.HF_HUB_CACHE}; "
          "HF_HUB_OFFLINE=1 uses the cache only)", flush=True)
    try:
        huggingface_hub.HfApi().model_info(model_id, timeout=timeout)
        return
    except Exception as e:  # noqa: BLE001 - only "no answer" is handled here; the load reports the rest
        chain, cur = [], e
        while cur is not None and len(chain) < 8:
            chain.append(type(cur).__name__)
            cur = cur.__cause__ or cur.__context__
        if not any("Timeout" in n or "Connect" in n or "Network" in n for n in chain):
            return
        why = "no answer in {:.0f} s".format(timeout) if any("Timeout" in n for n in chain) else "cannot connect"
    if huggingface_hub.try_to_load_from_cache(model_id, "config.json") not in (None, huggingface_hub._CACHED_NO_EXIST):
        notice(f"the Hugging Face Hub is unreachable ({why}); using the cached copy of {model_id} offline")
        os.environ["HF_HUB_OFFLINE"] = "1"
        constants.HF_HUB_OFFLINE = True
        return
    raise UserError(f"cannot fetch base model {model_id!r} from {constants.ENDPOINT} ({why}): check the network or "
                    "proxy, or download it once where the Hub is reachable and set HF_HUB_OFFLINE=1, or set base_model "
                    "to a local model folder")


def resize_for_tokenizer(model: Any, tok: Any) -> None:
    """Room in the embeddings for tokens the chat template added (a pad token, <|im_start|>...)."""
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok))


def set_generation_ids(model: Any, tok: Any, info: TemplateInfo) -> None:
    """generate() stops at the template's end-of-turn token (and the tokenizer's EOS), pads with the pad token."""
    gc = model.generation_config
    eos = [info.eot_id] + [i for i in ([tok.eos_token_id] if tok.eos_token_id is not None else []) if i != info.eot_id]
    gc.eos_token_id = eos[0] if len(eos) == 1 else eos
    gc.pad_token_id = tok.pad_token_id
    model.config.pad_token_id = tok.pad_token_id


def lora_kwargs(cfg: LoraTrainConfig) -> dict:
    """The LoRA settings both get_peft_model()s take (Unsloth's and PEFT's) from the config."""
    return dict(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                target_modules=list(cfg.target_modules), use_rslora=bool(cfg.use_rslora), bias="none")


def check_target_modules(model: Any, wanted: list[str]) -> None:
    """One line naming the layers that exist when a `target_modules` name matches none (PEFT raises a long error)."""
    full = [n for n, m in model.named_modules() if type(m).__name__ in ("Linear", "Linear4bit", "Linear8bitLt")]
    names = {n.rsplit(".", 1)[-1] for n in full} - {"lm_head"}
    missing = [t for t in wanted if t != "all-linear" and not any(n == t or n.endswith("." + t) for n in full)]
    if missing:
        raise ConfigError(f"target_modules: {', '.join(map(repr, missing))} not in this model; its linear layers are "
                          f"{', '.join(sorted(names))}")


def gguf_model_kwargs(gguf_file: str) -> dict[str, Any]:
    """`from_pretrained` arguments that load a .gguf checkpoint as a plain dense (trainable) model."""
    if not gguf_file:
        return {}
    kw: dict[str, Any] = {"gguf_file": gguf_file}
    try:  # transformers >= 5.2x keeps GGUF weights packed unless asked to dequantize
        from transformers import GgufConfig

        kw["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    return kw


def drop_gguf_quantizer(model: Any) -> None:
    """A dequantized GGUF model is dense; without this the Trainer refuses it as 'quantized with GGUF'."""
    q = getattr(model, "hf_quantizer", None)
    if q is not None and type(q).__name__.lower().startswith("gguf"):
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config


def load_base(cfg: LoraTrainConfig, model_id: str, cuda: bool, tokenizer_from: str | None = None,
              quantize: bool = False) -> tuple[Any, Any]:
    """Base model and tokenizer through transformers (`gguf_file` dequantizes a GGUF checkpoint)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_hub(model_id)
    trust = remote_code_allowed(cfg)
    kw: dict[str, Any] = {"gguf_file": cfg.gguf_file} if cfg.gguf_file else {}
    kw["trust_remote_code"] = trust
    mkw: dict[str, Any] = {**gguf_model_kwargs(cfg.gguf_file), "trust_remote_code": trust}
    if cuda:
        mkw["device_map"] = {"": 0}
        mkw["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if quantize:
            if importlib.util.find_spec("bitsandbytes") is None:
                raise ConfigError("load_in_4bit: true needs bitsandbytes (pip install -r requirements-gpu.txt), "
                                  "or set load_in_4bit: false")
            from transformers import BitsAndBytesConfig

            mkw["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=mkw["dtype"])
    else:
        mkw["dtype"] = torch.float32
    try:
        tok = (AutoTokenizer.from_pretrained(tokenizer_from, trust_remote_code=trust) if tokenizer_from
               else AutoTokenizer.from_pretrained(model_id, **kw))
        model = AutoModelForCausalLM.from_pretrained(model_id, **mkw)
    except (OSError, ValueError) as e:
        raise remote_code_error(tokenizer_from or model_id, e) or hub_error(model_id, e) from None
    drop_gguf_quantizer(model)
    return model, tok

"""`train_lora.py --chat`: talk to the fine-tuned model as the person, one stdin line per message.

Loads base + adapter (or a merged_16bit folder), renders the conversation with the exact chat
template and template arguments used in training, and stops each reply at the end-of-turn token.
Works interactively and with piped stdin (`echo hi | python train_lora.py --chat`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from ..errors import notice
from .backend import cuda_available, load_base
from .presets import get_preset
from .data import TemplateInfo, render, with_system_prompt
from .export import read_meta
from .config import LoraTrainConfig


def info_from_meta(meta: dict[str, Any], tok: Any) -> TemplateInfo:
    return TemplateInfo(family=meta.get("family", ""), eot_token=meta["eot_token"],
                        eot_id=tok.convert_tokens_to_ids(meta["eot_token"]),
                        template_kwargs=meta.get("template_kwargs") or {})


def chat_base_id(meta: dict[str, Any], cuda: bool) -> str:
    """The base to put the adapter on: an Unsloth pre-quantized (bitsandbytes 4-bit) base needs CUDA, so
    without a GPU the same model's 16-bit weights are used (the adapter fits both)."""
    model_id = meta["model_id"]
    if cuda or not model_id.endswith("bnb-4bit"):
        return model_id
    preset = get_preset(meta.get("base_model", ""))
    base = preset.unsloth_16bit_id if preset else model_id.removesuffix("-bnb-4bit").removesuffix("-unsloth")
    notice(f"no CUDA GPU: loading {base} (16-bit) under the adapter instead of the 4-bit {model_id}")
    return base


def load_chat_model(cfg: LoraTrainConfig, model_dir: str | Path) -> tuple[Any, Any, TemplateInfo, dict]:
    """(model, tokenizer, template info, meta) from an adapter folder or a merged model folder."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    cuda = cuda_available()
    cfg_like = type("C", (), {"gguf_file": meta.get("gguf_file", ""),
                              "trust_remote_code": getattr(cfg, "trust_remote_code", False)})()
    if (model_dir / "adapter_config.json").is_file():
        model, tok = load_base(cfg_like, chat_base_id(meta, cuda), cuda, tokenizer_from=str(model_dir))
        if len(tok) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tok))
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(model_dir))
    else:
        cfg_like.gguf_file = ""
        model, tok = load_base(cfg_like, str(model_dir), cuda)
    model.eval()
    return model, tok, info_from_meta(meta, tok), meta


def eos_ids(model: Any, info: TemplateInfo) -> list[int]:
    gen = model.generation_config.eos_token_id
    ids = gen if isinstance(gen, list) else ([gen] if gen is not None else [])
    return [info.eot_id] + [i for i in ids if i != info.eot_id]


def generate_reply(model: Any, tok: Any, info: TemplateInfo, messages: list[dict], max_new_tokens: int,
                   temperature: float, max_prompt_tokens: int) -> tuple[str, bool]:
    """The reply text and whether generation ended on the end-of-turn token (not on the length limit)."""
    import torch

    msgs = list(messages)
    while True:  # drop the oldest exchanges until the prompt fits
        prompt = render(tok, msgs, info, add_generation_prompt=True)
        ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        non_system = [i for i, m in enumerate(msgs) if m["role"] != "system"]
        if ids.shape[1] <= max_prompt_tokens or len(non_system) <= 1:
            break
        del msgs[non_system[0]]
    stop = eos_ids(model, info)
    kw: dict[str, Any] = {"do_sample": temperature > 0}
    if temperature > 0:
        kw.update(temperature=temperature, top_p=0.95)
    with torch.no_grad():
        out = model.generate(input_ids=ids.to(model.device), attention_mask=torch.ones_like(ids).to(model.device),
                             max_new_tokens=max_new_tokens, eos_token_id=stop, pad_token_id=tok.pad_token_id, **kw)
    new = out[0, ids.shape[1]:].tolist()
    ended = bool(new) and new[-1] in stop
    return tok.decode(new, skip_special_tokens=True).strip(), ended


def chat_loop(cfg: LoraTrainConfig, model_dir: str | Path, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    import torch

    model, tok, info, meta = load_chat_model(cfg, model_dir)
    torch.manual_seed(cfg.seed)
    system_prompt = cfg.system_prompt or meta.get("system_prompt", "")
    max_prompt = max(16, int(meta.get("max_seq_length", cfg.max_seq_length)) - cfg.chat_max_new_tokens)
    interactive = stdin.isatty()
    if interactive:
        print("chatting as the person; empty line or Ctrl-D quits, /reset starts over", file=sys.stderr)
    history: list[dict[str, str]] = []
    n = 0
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        if not line:
            break
        text = line.rstrip("\r\n")
        if not text.strip():
            if interactive:
                break
            continue
        if text.strip() == "/reset":
            history = []
            continue
        history.append({"role": "user", "content": text})
        reply, _ = generate_reply(model, tok, info, with_system_prompt(history, system_prompt),
                                  cfg.chat_max_new_tokens, cfg.chat_temperature, max_prompt)
        history.append({"role": "assistant", "content": reply or "…"})
        print(reply, file=stdout, flush=True)
        n += 1
    return 0

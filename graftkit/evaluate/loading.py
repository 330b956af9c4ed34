"""From a training config to the two models to compare: which pipeline, where its outputs are, and
what "base" means for it.

- lora: tuned = base model + the trained adapter (`output_dir/adapter`, or `--model PATH`), base =
  the same PeftModel with the adapter disabled. The tokenizer, chat template, template arguments,
  end-of-turn token and system prompt are the ones training saved next to the adapter
  (graftkit_lora.json), so evaluation renders prompts exactly as training did.
- tiny_gpt: see graftkit/evaluate/tiny.py (no pretrained base exists, so base is a unigram model).

Import order runs one way: loading -> tiny -> target/models (no cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import ConfigError, InputError, UserError
from ..fileio import check_prepared
from ..samples import Conversation, read_conversations
from .target import Target
from ..lora.config import LoraTrainConfig
from ..tiny_gpt.config import TinyGPTConfig

KINDS = ("lora", "tiny_gpt")


def load_target(kind: str, cfg: LoraTrainConfig | TinyGPTConfig, model_path: str | None, *, max_new_tokens: int, temperature: float,
                top_k: int = 0, train_file: str | None = None, val_file: str | None = None) -> Target:
    """The models to compare and the data to compare them on; --train-file / --val-file override the config's.

    The conversations are read before any model is loaded, so a missing or broken data file fails fast.
    """
    # never a set half-published by a killed prepare run (load_splits checks the LoRA config's own files)
    check_prepared(train_file, val_file)
    if kind == "lora":
        train, val, train_desc, val_desc = _lora_data(cfg, train_file, val_file)
        target = load_lora(cfg, model_path, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k)
    else:
        from .tiny import load_tiny_gpt, tiny_data_files  # lazy: a LoRA run never imports the tiny GPT

        default_train, default_val = tiny_data_files(cfg)
        train_desc, val_desc = train_file or default_train, val_file or default_val
        check_prepared(train_desc, val_desc)
        hint = "written by prepare_training_data.py next to the config's train_file; or pass --{} FILE"
        train = read_conversations(_existing(train_desc, hint.format("train-file")))
        val = read_conversations(_existing(val_desc, hint.format("val-file")))
        target = load_tiny_gpt(cfg, model_path, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k)
    target.train_file, target.val_file = train_desc, val_desc
    target.splits = lambda: (train, val)
    return target


def _existing(path: str, hint: str) -> str:
    if not Path(path).exists():
        raise InputError(f"file not found ({hint})", path)
    return path


def _lora_data(cfg: LoraTrainConfig, train_file: str | None,
               val_file: str | None) -> tuple[list[Conversation], list[Conversation], str, str]:
    """(train, held-out, train description, held-out description) for a LoRA config, as training splits them."""
    if train_file and val_file:
        return read_conversations(train_file), read_conversations(val_file), train_file, val_file
    from ..lora.data import load_splits

    tr, va = load_splits(cfg)
    train = read_conversations(train_file) if train_file else [s.messages for s in tr]
    val = read_conversations(val_file) if val_file else [s.messages for s in va]
    if not val:
        raise ConfigError("no held-out conversations: set val_file or val_fraction > 0, or pass --val-file")
    # describe what load_splits read: data_file split, train_file + val_file, or (train_file missing) the
    # combined sharegpt_format.jsonl beside it split by val_fraction
    split_from = cfg.data_file
    if not split_from and not Path(cfg.train_file).exists():
        split_from = str(Path(cfg.train_file).with_name("sharegpt_format.jsonl"))
    train_desc = train_file or split_from or cfg.train_file
    if val_file:
        val_desc = val_file
    elif split_from or not cfg.val_file:
        val_desc = f"{split_from or cfg.train_file} (val_fraction {cfg.val_fraction}, seed {cfg.seed})"
    else:
        val_desc = cfg.val_file
    return train, val, train_desc, val_desc


def _config_class(kind: str) -> type:
    if kind == "lora":
        from ..lora.config import LoraTrainConfig

        return LoraTrainConfig
    from ..tiny_gpt.config import TinyGPTConfig

    return TinyGPTConfig


def detect_kind(config_path: str | Path, overrides: list[str], kind: str = "auto") -> tuple[str, Any]:
    """(kind, config) for a training config file; auto = the config class that accepts every key."""
    if not Path(config_path).is_file():
        raise ConfigError("config file not found" if not Path(config_path).exists() else "not a file", config_path)
    if kind != "auto":
        return kind, load_config(_config_class(kind), config_path, overrides)
    loaded: dict[str, Any] = {}
    errors: dict[str, ConfigError] = {}
    for k in KINDS:
        try:
            loaded[k] = load_config(_config_class(k), config_path, overrides)
        except ConfigError as e:
            errors[k] = e
    if len(loaded) == 1:
        return next(iter(loaded.items()))
    name = Path(config_path).name.lower()
    guesses = [k for k in KINDS if k.split("_")[0] in name]
    if len(guesses) == 1:
        k = guesses[0]
        if k in loaded:
            return k, loaded[k]
        raise errors[k]
    if not loaded:
        raise ConfigError("not a LoRA config (" + errors["lora"].message + ") nor a tiny GPT config ("
                          + errors["tiny_gpt"].message + "); pass --kind lora or --kind tiny_gpt", config_path)
    raise ConfigError("cannot tell whether this is a LoRA or a tiny GPT config; pass --kind lora or --kind tiny_gpt",
                      config_path)


def selection_note(sel: dict | None) -> str:
    """How train_lora.py chose the kept checkpoint, and on which conversations (never the ones scored here)."""
    if not sel:
        return ""
    hold = sel.get("persona_holdout")
    where = (f"on {hold['conversations']} conversations held out of `{hold['file']}` (never trained on; "
             f"{hold['scored_per_evaluation']} scored per evaluation), not on the conversations scored in this report"
             if hold and sel.get("select_on") == "persona gap" else "on the validation file's loss")
    note = f"the best {sel.get('select_on', 'val loss')} (step {sel.get('kept_step')}) {where}"
    c = sel.get("contrast")
    if c and c.get("pairs"):
        vs = "a partner's turn in its own context" if c.get("rejected") == "own_context" else "a partner's"
        note += (f"; then a contrast stage on {c['pairs']} pairs of training conversations (your turn vs {vs}), "
                 + ("kept" if c.get("kept") else "not kept: it lowered the persona gap on that slice"))
    return note


def load_lora(cfg: LoraTrainConfig, model_dir: str | Path | None, *, max_new_tokens: int, temperature: float,
              top_k: int = 0) -> Target:
    from ..lora.backend import load_base
    from ..lora.chat import chat_base_id, load_chat_model
    from ..lora.data import renderer
    from ..lora.export import read_meta
    from .models import HFChatModel

    model_dir = Path(model_dir) if model_dir else Path(cfg.output_dir) / "adapter"
    if not model_dir.is_dir():
        raise UserError(f"no trained LoRA model at {model_dir}; train first (python train_lora.py --config ...) or "
                        "pass --model PATH")
    read_meta(model_dir)  # a clear error when it is not a graftkit output folder
    model, tok, info, meta = load_chat_model(cfg, model_dir)
    system_prompt = cfg.system_prompt or meta.get("system_prompt", "")
    max_length = int(meta.get("max_seq_length", cfg.max_seq_length))

    common = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, max_length=max_length,
                  render=renderer(info, system_prompt), eot=info.eot_token)
    base_label = meta.get("model_id") or cfg.base_model
    if meta.get("gguf_file"):
        base_label += f" ({meta['gguf_file']})"
    if hasattr(model, "disable_adapter"):
        tuned = HFChatModel(model, tok, name="tuned", use_adapter=True, **common)
        base = HFChatModel(model, tok, name="base", use_adapter=False, **common)
        base_desc = f"{base_label} without the adapter (same weights, LoRA disabled), same chat template"
    else:  # a merged model folder: load the base separately
        import torch

        cfg_like = type("C", (), {"gguf_file": meta.get("gguf_file", ""),
                                  "trust_remote_code": getattr(cfg, "trust_remote_code", False)})()
        cuda = torch.cuda.is_available()
        base_model, _ = load_base(cfg_like, chat_base_id(meta, cuda), cuda, tokenizer_from=str(model_dir))
        if len(tok) > base_model.get_input_embeddings().weight.shape[0]:
            base_model.resize_token_embeddings(len(tok))
        base_model.eval()
        tuned = HFChatModel(model, tok, name="tuned", **common)
        base = HFChatModel(base_model, tok, name="base", **common)
        base_desc = f"{base_label} (pretrained, not fine-tuned), same chat template"
    # an adapter trained on both sides' turns speaks as your partner from a trained role: authorship's control
    tuned.symmetric_roles = meta.get("train_on") == "both"
    meta_out = {
        "selection_note": selection_note(meta.get("selection")),
        "tuned": f"{base_label} + LoRA adapter {model_dir}",
        "base": base_desc,
        "scoring": f"the reply as the chat template renders it after the generation prompt, plus the end-of-turn "
                   f"token {info.eot_token!r} (chat template family {info.family!r})",
        "model_dir": str(model_dir),
    }
    def prompted(prompt: str) -> HFChatModel:  # the base model, its system prompt replaced by `prompt`
        return HFChatModel(base.model, tok, name="prompted", use_adapter=False,
                           **{**common, "render": renderer(info, prompt)})

    return Target("lora", {"base": base, "tuned": tuned}, cfg.train_file, cfg.val_file, Path(cfg.output_dir), meta_out,
                  with_system_prompt=prompted)


STYLE_PROMPT = ("You are the person who wrote the messages below, chatting with a friend. Reply as they would: "
                "their length, words, spelling, punctuation, capitals and emoji. Some of their real messages:")


def prompting_baseline(target: Target, train_convs: list[Conversation], n: int, seed: int) -> Any:
    """The free alternative to fine-tuning: the base model with `n` of the person's own training messages as
    style examples in its system prompt (seeded, distinct, their first line, 200 characters at most).
    None for the tiny GPT (no pretrained chat model to prompt) or n = 0."""
    if not n or target.with_system_prompt is None:
        return None
    import random

    from .core import first_line

    texts = sorted({first_line(t["content"]) for c in train_convs for t in c
                    if t["role"] == "assistant" and 0 < len(first_line(t["content"])) <= 200})
    picks = random.Random(seed).sample(texts, min(n, len(texts)))
    model = target.with_system_prompt(STYLE_PROMPT + "\n" + "\n".join(f"- {t}" for t in picks))
    model.n_examples = len(picks)
    return model

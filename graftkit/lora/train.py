"""The LoRA training run: data -> backend -> TRL SFTTrainer -> adapter / merged / GGUF exports.

`run(cfg)` does everything `train_lora.py` does. Order matters: the data is read and validated
first (bad files fail in a second, before any model download), then the backend loads the model
(importing unsloth before transformers/trl/peft on that branch), and only then TRL is imported.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, UserError
from ..fileio import atomic_write_json, atomic_write_jsonl
from ..plots import save_loss_curve
from .backend import Loaded, load_for_training, notice, say, select_backend
from .data import (IGNORE, PackedCollator, check_response_part, encode_samples, load_splits, pack_rows,
                   trim_tail)
from .export import GGUF_NEEDS, save_adapter, save_gguf, save_merged


def resolve_resume(cfg: Any, out: Path) -> str | None:
    """The checkpoint to resume from: newest checkpoint-* for `auto`, None for false, or a given path."""
    if cfg.resume is False or str(cfg.resume).lower() in ("false", "no", "off", ""):
        return None
    if str(cfg.resume) == "auto":  # (no transformers import here: unsloth must be imported first)
        steps = [(int(m.group(1)), p) for p in out.glob("checkpoint-*")
                 if (m := re.fullmatch(r"checkpoint-(\d+)", p.name)) and (p / "trainer_state.json").is_file()]
        return str(max(steps)[1]) if steps else None
    path = Path(str(cfg.resume)).expanduser()
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(f"resume: {path} is not a checkpoint folder (no trainer_state.json)")
    return str(path)


def check_output_dir(out: Path) -> None:
    """One line, before any model is loaded, when output_dir (or a folder above it) is a file."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"output_dir: {p} is a file, not a folder; choose another output_dir")
            if not os.access(p, os.W_OK):
                raise ConfigError(f"output_dir: cannot write in {p} (permission denied); choose another output_dir")
            return


def resolve_packing(cfg: Any, backend: str) -> bool:
    """`packing: auto` packs on the PEFT backend; Unsloth keeps its own batching (not verified packed here)."""
    if cfg.packing == "auto":
        return backend == "peft"
    if cfg.packing and backend == "unsloth":
        raise ConfigError("packing: true is not supported with backend unsloth (its attention kernels were not "
                          "checked with packed position ids); use packing: auto or false, or backend: peft")
    return bool(cfg.packing)


def uses_flash_attention(model: Any) -> bool:
    return "flash" in str(getattr(getattr(model, "config", None), "_attn_implementation", "") or "")


def write_loss_curve(log_history: list[dict], path: Path) -> None:
    train = [(r["step"], r["loss"]) for r in log_history if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in log_history if "eval_loss" in r]
    save_loss_curve(path, [("train loss", *_xy(train), "-", {}), ("val loss", *_xy(evals), "o-", {})],
                    xlabel="step", ylabel="loss", title="LoRA fine-tuning", size=(7, 4))


def _xy(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [x for x, _ in points], [y for _, y in points]


class StopOnInterrupt:
    """Ctrl-C finishes the current step, then the Trainer saves a checkpoint and stops (a second Ctrl-C aborts).

    Done through the Trainer's public controls (should_save / should_training_stop), so the checkpoint
    is the same complete one (adapter, optimizer, scheduler, RNG) a scheduled save writes.
    """

    def __init__(self) -> None:
        from transformers import TrainerCallback

        self.requested = False
        outer = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if outer.requested:
                    control.should_save = True
                    control.should_training_stop = True

        self.callback = _Callback()

    @contextlib.contextmanager
    def catching_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            notice("Ctrl-C: saving a checkpoint after this step (press again to stop at once)")

        old = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)


def _trainer_classes():
    """SFTTrainer subclass (perplexity next to eval loss) and the metrics callback, imported late."""
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class GraftTrainer(SFTTrainer):
        """SFTTrainer that also counts the tokens it trains on (labelled) and computes (not padding)."""

        label_tokens = 0
        input_tokens = 0

        def compute_loss(self, model, inputs, *args: Any, **kwargs: Any):
            if model.training:
                self.label_tokens += int((inputs["labels"][:, 1:] != IGNORE).sum())
                mask = inputs.get("attention_mask")
                self.input_tokens += int(mask.sum()) if mask is not None else int(
                    (inputs["input_ids"] != self.processing_class.pad_token_id).sum())
            return super().compute_loss(model, inputs, *args, **kwargs)

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if "eval_loss" in logs:
                logs["eval_perplexity"] = math.exp(min(logs["eval_loss"], 50.0))
            super().log(logs, *args, **kwargs)

    class MetricsCallback(TrainerCallback):
        """metrics.jsonl (every log, resumed history included) and loss_curve.png in output_dir."""

        def __init__(self, out: Path):
            self.out = out
            self.step_times: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.step_times.append(time.perf_counter() - self._t)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero:
                atomic_write_jsonl(self.out / "metrics.jsonl", state.log_history)

        def on_train_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                atomic_write_jsonl(self.out / "metrics.jsonl", state.log_history)
                write_loss_curve(state.log_history, self.out / "loss_curve.png")

    return GraftTrainer, MetricsCallback


def build_trainer(cfg: Any, loaded: Loaded, train_rows: list[dict], val_rows: list[dict], out: Path,
                  resuming: bool = False, train_batch: int | None = None) -> Any:
    """TRL's SFTTrainer with its SFTConfig; `train_batch` packed rows per step instead of cfg.batch_size samples."""
    import torch
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig

    cuda = loaded.device == "cuda"
    has_val = bool(val_rows)
    early = has_val and cfg.early_stopping_patience > 0
    optim = cfg.optim
    if optim == "auto":
        optim = ("adamw_8bit" if cuda and cfg.load_in_4bit and importlib.util.find_spec("bitsandbytes")
                 else "adamw_torch")
    bf16 = cuda and torch.cuda.is_bf16_supported()
    extra: dict[str, Any] = {}
    if loaded.backend == "peft":
        extra["gradient_checkpointing"] = cfg.gradient_checkpointing
        if cfg.gradient_checkpointing:
            extra["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    else:  # Unsloth's get_peft_model already set its own ("unsloth") checkpointing up; TRL must not redo it
        extra["gradient_checkpointing"] = False
    if cfg.wandb:
        os.environ.setdefault("WANDB_PROJECT", cfg.wandb_project)
    warmup = cfg.warmup_steps if cfg.warmup_steps < 1 else int(cfg.warmup_steps)
    args = SFTConfig(
        output_dir=str(out), max_length=cfg.max_seq_length, packing=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=train_batch or cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=warmup,
        weight_decay=cfg.weight_decay, optim=optim, seed=cfg.seed, data_seed=cfg.seed,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        eval_strategy="steps" if has_val else "no", eval_steps=cfg.eval_steps if has_val else None,
        eval_on_start=has_val and cfg.eval_on_start and not resuming,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit or None,
        load_best_model_at_end=early, metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        bf16=bf16, fp16=cuda and not bf16, use_cpu=not cuda, dataloader_pin_memory=cuda,
        ddp_find_unused_parameters=False,  # torchrun / accelerate launch: every LoRA weight is used in each step
        report_to="wandb" if cfg.wandb else "none", **extra,
    )
    GraftTrainer, MetricsCallback = _trainer_classes()
    callbacks = [MetricsCallback(out)]
    if early:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience,
                                               early_stopping_threshold=cfg.early_stopping_threshold))
    return GraftTrainer(
        model=loaded.model, args=args, processing_class=loaded.tokenizer,
        data_collator=PackedCollator(loaded.tokenizer.pad_token_id, flatten=uses_flash_attention(loaded.model),
                                     pad_to_multiple_of=8 if cuda else None),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if has_val else None, callbacks=callbacks,
    )


def run(cfg: Any) -> dict[str, Any]:
    """Train per `cfg` (a LoraTrainConfig); returns the summary also written to train_summary.json."""
    out = Path(cfg.output_dir)
    train_s, val_s = load_splits(cfg)
    backend = select_backend(cfg.backend, cfg.gguf_file)
    if cfg.gguf_methods and backend != "unsloth":
        notice(GGUF_NEEDS)  # said before training, so nobody waits an hour to learn it
    if cfg.wandb and importlib.util.find_spec("wandb") is None:
        raise ConfigError("wandb: true needs the wandb package (pip install wandb, then wandb login)")
    check_output_dir(out)
    resume = resolve_resume(cfg, out)
    packing = resolve_packing(cfg, backend)
    if not val_s and cfg.early_stopping_patience:
        notice("no validation data: evaluation and early stopping are off")

    t0 = time.perf_counter()
    loaded = load_for_training(cfg, backend)
    load_s = time.perf_counter() - t0
    trainable = sum(p.numel() for p in loaded.model.parameters() if p.requires_grad)
    say(f"base model {loaded.model_id} on {backend} ({loaded.device}), loaded in {load_s:.1f}s; "
          f"{trainable:,} trainable LoRA parameters; end of turn {loaded.info.eot_token!r}", flush=True)

    tok, info = loaded.tokenizer, loaded.info
    train_rows, st_train = encode_samples(tok, train_s, info, cfg.max_seq_length, cfg.overlong, cfg.system_prompt)
    val_rows, st_val = encode_samples(tok, val_s, info, cfg.max_seq_length, cfg.overlong, cfg.system_prompt)
    say(st_train.summary("train"), flush=True)
    if val_s:
        say(st_val.summary("val"), flush=True)
    if not train_rows:
        raise InputError(f"no training samples left after templating and max_seq_length={cfg.max_seq_length} "
                         f"({st_train.first_error or 'all too long or without reply tokens'})", train_s[0].path)
    trim_tail(train_rows)  # tokens after the last reply train nothing
    trim_tail(val_rows)
    train_batch = None
    if packing:  # whole conversations per row, about as many tokens per step as batch_size padded samples
        mean_len = sum(len(r["input_ids"]) for r in train_rows) / len(train_rows)
        train_rows, pst = pack_rows(train_rows, cfg.max_seq_length)
        train_batch = max(1, round(cfg.batch_size * mean_len / cfg.max_seq_length))
        say(f"{pst.summary()}; {train_batch} row(s) per step", flush=True)
    msg = check_response_part(tok, train_s, info, cfg.system_prompt)
    if msg:
        say(msg, flush=True)

    out.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(cfg, loaded, train_rows, val_rows, out, resuming=bool(resume), train_batch=train_batch)
    if resume:
        say(f"resuming from {resume}", flush=True)
    stop = StopOnInterrupt()
    trainer.add_callback(stop.callback)
    try:
        with stop.catching_sigint():
            result = trainer.train(resume_from_checkpoint=resume)
    except (RuntimeError, ValueError, KeyError) as e:
        if not resume or trainer.state.global_step > _step_of(resume):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot resume from {resume} ({first[:300]}); it was probably trained with other "
                          "settings (lora_r, target_modules, base_model): pass resume=false or another "
                          "output_dir") from None
    if stop.requested:  # the Trainer saved a checkpoint at the end of the step it was in
        notice(f"interrupted: saved checkpoint-{trainer.state.global_step} in {out}; run the same command again to "
               "resume")
        raise KeyboardInterrupt
    steps_run = trainer.state.global_step - (_step_of(resume) if resume else 0)
    if resume and steps_run == 0:
        notice(f"{Path(resume).name} had already reached the end of training (step {trainer.state.global_step}): "
               "nothing new was trained; raise max_steps or epochs to continue, or pass resume=false to start over")
    stopped_early = (bool(val_rows) and cfg.early_stopping_patience > 0
                     and trainer.state.global_step < trainer.state.max_steps)
    if stopped_early:
        best = trainer.state.best_model_checkpoint
        say(f"early stopping: val loss did not improve by more than {cfg.early_stopping_threshold} for "
              f"{cfg.early_stopping_patience} evaluations; stopped at step {trainer.state.global_step} of "
              f"{trainer.state.max_steps}" + (f"; restored the best checkpoint {Path(best).name}" if best else ""),
              flush=True)
    runtime = float(result.metrics.get("train_runtime", 0.0))
    step_times = next((c.step_times for c in trainer.callback_handler.callbacks if hasattr(c, "step_times")), [])

    per_rank, computed = [trainer.label_tokens], trainer.input_tokens
    if trainer.args.world_size > 1:  # torchrun / accelerate launch: count every rank's tokens, rank 0 saves
        import torch

        counts = trainer.accelerator.gather(torch.tensor([[trainer.label_tokens, trainer.input_tokens]]))
        per_rank, computed = [int(x) for x in counts[:, 0].tolist()], int(counts[:, 1].sum())
    if not trainer.is_world_process_zero():
        return {"global_step": trainer.state.global_step, "rank": trainer.args.process_index}
    adapter_dir = save_adapter(cfg, loaded, trainer.model, out / "adapter")
    exports = {"adapter": str(adapter_dir)}
    if "merged_16bit" in cfg.save_formats:
        exports["merged_16bit"] = str(save_merged(cfg, loaded, trainer.model, adapter_dir, out / "merged_16bit"))
    export_error: UserError | None = None
    if cfg.gguf_methods:
        try:
            gguf = save_gguf(cfg, loaded, trainer.model, out / "gguf")
        except UserError as e:  # the adapter (and merged model) are saved; the summary is still written below
            export_error, gguf = e, None
            exports["gguf_error"] = e.message
        if gguf:
            exports["gguf"] = str(gguf)
        elif export_error is None:
            exports["gguf_skipped"] = "needs llama.cpp's converter (llama_cpp_dir) or Unsloth on an NVIDIA GPU"

    hist = trainer.state.log_history
    evals = [r["eval_loss"] for r in hist if "eval_loss" in r]
    summary = {
        "backend": backend, "device": loaded.device, "model_id": loaded.model_id, "load_seconds": round(load_s, 2),
        "global_step": trainer.state.global_step, "steps_this_run": steps_run, "stopped_early": stopped_early,
        "train_runtime": runtime,
        "seconds_per_step": (sum(step_times) / len(step_times)) if step_times else None,
        "median_seconds_per_step": sorted(step_times)[len(step_times) // 2] if step_times else None,
        "first_train_loss": next((r["loss"] for r in hist if "loss" in r), None),
        "last_train_loss": next((r["loss"] for r in reversed(hist) if "loss" in r), None),
        "first_eval_loss": evals[0] if evals else None, "last_eval_loss": evals[-1] if evals else None,
        "best_eval_loss": min(evals) if evals else None,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "num_tokens": next((r["num_tokens"] for r in reversed(hist) if "num_tokens" in r), None),
        "processes": trainer.args.world_size, "packing": packing, "label_tokens_this_run": sum(per_rank),
        "label_tokens_per_rank": per_rank, "input_tokens_this_run": computed,
        "label_tokens_per_second": sum(per_rank) / runtime if runtime else None,
        "peak_vram_gb": _peak_vram_gb(loaded.device),
        "data": {"train": vars(st_train), "val": vars(st_val)}, "exports": exports,
    }
    atomic_write_json(out / "train_summary.json", summary)
    if export_error is not None:
        raise export_error
    best = f", best val loss {summary['best_eval_loss']:.4f}" if evals else ""
    say(f"done: step {trainer.state.global_step}{best}; adapter in {adapter_dir}", flush=True)
    return summary


def _step_of(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    try:
        return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError):
        return 0


def _peak_vram_gb(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 3)

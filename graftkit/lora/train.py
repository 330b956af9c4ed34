"""Helpers for the LoRA run in train_lora.py: resume, packing, Ctrl-C, the SFTTrainer subclass, the summary.

The recipe itself (load -> LoRA -> SFTConfig/SFTTrainer -> train -> save) reads top to bottom in
train_lora.py; these are the details it calls. Nothing here imports transformers / trl / torch at
module level: on the Unsloth branch `import unsloth` must come first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, first_line, notice
from ..fileio import atomic_write_jsonl
from ..plots import save_loss_curve
from .data import IGNORE, pack_rows
from .config import LoraTrainConfig


def resolve_resume(cfg: LoraTrainConfig, out: Path) -> str | None:
    """The checkpoint to resume from: newest checkpoint-* for `auto`, None for false, or a given path."""
    if cfg.resume is False or str(cfg.resume).lower() in ("false", "no", "off", ""):
        return None
    from .safety import check_given_checkpoint, newest_good_checkpoint  # a checkpoint cut in half is skipped

    if str(cfg.resume) == "auto":  # (no transformers import here: unsloth must be imported first)
        return newest_good_checkpoint(out)
    path = Path(str(cfg.resume)).expanduser()
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(f"resume: {path} is not a checkpoint folder (no trainer_state.json)")
    check_given_checkpoint(path)
    return str(path)


def check_output_dir(out: Path) -> None:
    """One line, before any model is loaded, when output_dir (or a folder above it) is a file."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"output_dir: {p} is a file, not a folder; choose another output_dir")
            if not os.access(p, os.W_OK):
                ro = hasattr(os, "statvfs") and os.statvfs(p).f_flag & os.ST_RDONLY
                why = "read-only file system" if ro else "permission denied"
                raise ConfigError(f"output_dir: cannot write in {p} ({why}); choose another output_dir")
            return


def resolve_packing(cfg: LoraTrainConfig, backend: str) -> bool:
    """`packing: auto` packs on the PEFT backend; Unsloth keeps its own batching (not verified packed here)."""
    if cfg.packing == "auto":
        return backend == "peft"
    if cfg.packing and backend == "unsloth":
        raise ConfigError("packing: true is not supported with backend unsloth (its attention kernels were not "
                          "checked with packed position ids); use packing: auto or false, or backend: peft")
    return bool(cfg.packing)


def pick_optim(cfg: LoraTrainConfig, cuda: bool) -> str:
    """`optim: auto`: bitsandbytes' 8-bit AdamW next to a 4-bit model on CUDA (less memory), torch's AdamW otherwise."""
    if cfg.optim != "auto":
        return cfg.optim
    return "adamw_8bit" if cuda and cfg.load_in_4bit and importlib.util.find_spec("bitsandbytes") else "adamw_torch"


def resolve_checkpointing(cfg: LoraTrainConfig, model: Any, cuda: bool, rows_per_step: int) -> bool:
    """`gradient_checkpointing: auto`: on with CUDA; on CPU off when one step's activations fit in a quarter of the
    free memory.

    Recomputing every layer's forward in the backward pass costs about a third of a LoRA step on CPU
    (frozen weights: the backward is one matmul per layer, like the forward). Kept activations are estimated
    at 4 bytes x layers x (12 x hidden + 4 x intermediate) per token, an upper bound of what a Llama-style
    layer keeps in fp32 (SmolLM2-135M: ~1.6 MB per token, ~3.2 GB for two 1024-token rows; Qwen2.5-0.5B:
    ~2.9 MB per token). With less memory free, checkpointing stays on.
    """
    if cfg.gradient_checkpointing != "auto":
        return bool(cfg.gradient_checkpointing)
    if cuda:
        return True
    c = model.config.get_text_config()
    per_token = 4 * c.num_hidden_layers * (12 * c.hidden_size + 4 * (c.intermediate_size or 4 * c.hidden_size))
    return rows_per_step * cfg.max_seq_length * per_token > available_memory() / 4


def available_memory() -> int:
    """Bytes the OS can still hand out (MemAvailable on Linux, free pages elsewhere; 0 when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def uses_flash_attention(model: Any) -> bool:
    return "flash" in str(getattr(getattr(model, "config", None), "_attn_implementation", "") or "")


def write_loss_curve(log_history: list[dict], path: Path, kept_step: int | None = None) -> None:
    """Loss curves, and under them the persona gap per evaluation with its interval and the kept checkpoint."""
    train = [(r["step"], r["loss"]) for r in log_history if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in log_history if "eval_loss" in r]
    gaps = [r for r in log_history if "eval_persona_gap" in r]
    persona = None
    if gaps:
        persona = {"steps": [r["step"] for r in gaps], "values": [r["eval_persona_gap"] for r in gaps],
                   "lo": [r.get("eval_persona_gap_lo", r["eval_persona_gap"]) for r in gaps],
                   "hi": [r.get("eval_persona_gap_hi", r["eval_persona_gap"]) for r in gaps], "kept": kept_step}
    save_loss_curve(path, [("train loss", *_xy(train), "-", {}), ("val loss", *_xy(evals), "o-", {})],
                    xlabel="step", ylabel="loss", title="LoRA fine-tuning", size=(7, 6 if persona else 4),
                    persona=persona)


def _xy(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [x for x, _ in points], [y for _, y in points]


class StopOnInterrupt:
    """Ctrl-C, SIGTERM or SIGHUP (preemption, `docker stop`, a closed terminal) finishes the current step, then the
    Trainer saves a checkpoint and stops (a second Ctrl-C aborts).

    Done through the Trainer's public controls (should_save / should_training_stop), so the checkpoint
    is the same complete one (adapter, optimizer, scheduler, RNG) a scheduled save writes.
    """

    def __init__(self) -> None:
        from transformers import TrainerCallback

        self.requested = False
        self.signum = signal.SIGINT
        outer = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if outer.requested:
                    control.should_save = True
                    control.should_training_stop = True

        self.callback = _Callback()

    @contextlib.contextmanager
    def catching_sigint(self):
        from ..runstate import on_stop_signal, signal_name

        def request(signum: int) -> None:
            self.requested, self.signum = True, signum
            notice(f"{signal_name(signum)}: saving a checkpoint after this step"
                   + (" (press again to stop at once)" if signum == signal.SIGINT else ""))

        with on_stop_signal(request):
            yield


def reply_only_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """Next-token cross-entropy over the labelled (reply) positions only, without full-vocabulary logits elsewhere.

    The LM head (hidden x vocabulary, 576 x 49152 on SmolLM2-135M: a fifth of its weights) and the softmax
    over the vocabulary would otherwise run at every position, although only the person's reply tokens
    carry a loss. transformers' `logits_to_keep` takes a boolean (batch, seq) mask and projects only
    those hidden states, so the forward still goes through the top-level model (PEFT, DDP, TRL's
    patched forward). Same value as the full computation: the sum over reply tokens divided by
    `num_items_in_batch` (the Trainer's count over the accumulated micro-batches), else by their count.
    """
    import torch

    labels = inputs["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE  # position t predicts token t+1
    fwd = {k: v for k, v in inputs.items() if k != "labels"}
    logits = model(**fwd, use_cache=False, logits_to_keep=keep).logits  # (number of reply tokens, vocabulary)
    targets = labels[:, 1:][keep[:, :-1]]
    loss = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    denom = num_items_in_batch if num_items_in_batch is not None else targets.numel()
    return loss / torch.as_tensor(denom, device=loss.device).clamp(min=1)


def trainer_classes():
    """SFTTrainer subclass (perplexity next to eval loss) and the metrics callback, imported late."""
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class GraftTrainer(SFTTrainer):
        """SFTTrainer that also counts the tokens it trains on (labelled) and computes (not padding)."""

        label_tokens = 0
        input_tokens = 0
        reply_only_head = False  # build_trainer sets it on CPU: see reply_only_loss
        persona = None  # a graftkit.lora.persona.PersonaScorer: the persona gap at every evaluation
        _persona_metrics: dict[str, float] = {}

        def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
            """Val loss as usual, plus the persona gap on the held-out slice (logged, early stopping, best model)."""
            self._persona_metrics = self.persona.score() if self.persona is not None else {}
            try:
                return super().evaluate(*args, **kwargs)  # log() below adds the persona numbers to its metrics
            finally:
                self._persona_metrics = {}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mask = inputs.get("attention_mask")
            computed = int(mask.sum()) if mask is not None else int(
                (inputs["input_ids"] != self.processing_class.pad_token_id).sum())
            if model.training:
                self.label_tokens += int((inputs["labels"][:, 1:] != IGNORE).sum())
                self.input_tokens += computed
            if not self.reply_only_head or return_outputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # TRL's own head on CPU scores every position (pads too) and adds entropy / top-1 metrics over the
            # full vocabulary each step; this one scores the reply tokens only (no entropy/accuracy metrics)
            loss = reply_only_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as TRL / Trainer: DDP averages the gradients
            mode = "train" if model.training else "eval"
            if mode == "train":  # TRL's num_tokens metric (tokens computed, summed over ranks)
                import torch

                self._total_train_tokens += int(self.accelerator.gather_for_metrics(torch.tensor(computed)).sum())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return loss

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            if "eval_loss" in logs:
                logs["eval_perplexity"] = math.exp(min(logs["eval_loss"], 50.0))
                # in place: this dict is also what evaluate() returns, so best-model and early stopping see them
                logs.update({f"eval_{k}": v for k, v in self._persona_metrics.items()})
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
                write_loss_curve(state.log_history, self.out / "loss_curve.png", kept_step(state))

    return GraftTrainer, MetricsCallback


def pack_for_steps(rows: list[dict], cfg: LoraTrainConfig) -> tuple[list[dict], int, str]:
    """Whole conversations per row, and how many rows per step give about as many tokens as batch_size samples."""
    mean_len = sum(len(r["input_ids"]) for r in rows) / len(rows)
    packed, stats = pack_rows(rows, cfg.max_seq_length)
    per_step = max(1, round(cfg.batch_size * mean_len / cfg.max_seq_length))
    return packed, per_step, f"{stats.summary()}; {per_step} row(s) per step"


def resume_error(e: Exception, resume: str) -> ConfigError:
    """A checkpoint that does not fit this run's model fails inside trainer.train(): say what to do instead."""
    return ConfigError(f"cannot resume from {resume} ({first_line(e, limit=300)}); it was probably trained with other "
                       "settings (lora_r, target_modules, base_model): pass resume=false or another output_dir")


def count_tokens(trainer: Any) -> tuple[list[int], int]:
    """Label tokens per rank and computed tokens over all ranks (torchrun / accelerate launch gathers them)."""
    per_rank, computed = [trainer.label_tokens], trainer.input_tokens
    if trainer.args.world_size > 1:
        import torch

        counts = trainer.accelerator.gather(torch.tensor([[trainer.label_tokens, trainer.input_tokens]]))
        per_rank, computed = [int(x) for x in counts[:, 0].tolist()], int(counts[:, 1].sum())
    return per_rank, computed


def summarize(trainer: Any, result: Any, loaded: Any, load_s: float, steps_run: int, stopped_early: bool,
              packing: bool, tokens: tuple[list[int], int], data: dict, exports: dict) -> dict[str, Any]:
    """train_summary.json: losses, speed and token counts read from the trainer, plus the run's own facts."""
    hist, state = trainer.state.log_history, trainer.state
    evals = [r["eval_loss"] for r in hist if "eval_loss" in r]
    runtime = float(result.metrics.get("train_runtime", 0.0))
    step_times = next((c.step_times for c in trainer.callback_handler.callbacks if hasattr(c, "step_times")), [])
    per_rank, computed = tokens  # count_tokens(): gathered on every rank, before only rank 0 goes on
    return {
        "backend": loaded.backend, "device": loaded.device, "model_id": loaded.model_id,
        "load_seconds": round(load_s, 2), "global_step": state.global_step, "steps_this_run": steps_run,
        "stopped_early": stopped_early, "train_runtime": runtime,
        "seconds_per_step": (sum(step_times) / len(step_times)) if step_times else None,
        "median_seconds_per_step": sorted(step_times)[len(step_times) // 2] if step_times else None,
        "first_train_loss": next((r["loss"] for r in hist if "loss" in r), None),
        "last_train_loss": next((r["loss"] for r in reversed(hist) if "loss" in r), None),
        "first_eval_loss": evals[0] if evals else None, "last_eval_loss": evals[-1] if evals else None,
        "best_eval_loss": min(evals) if evals else None,
        "best_checkpoint": state.best_model_checkpoint,
        "num_tokens": next((r["num_tokens"] for r in reversed(hist) if "num_tokens" in r), None),
        "processes": trainer.args.world_size, "packing": packing, "label_tokens_this_run": sum(per_rank),
        "label_tokens_per_rank": per_rank, "input_tokens_this_run": computed,
        "label_tokens_per_second": sum(per_rank) / runtime if runtime else None,
        "peak_vram_gb": peak_vram_gb(loaded.device),
        "data": data, "exports": exports,
    }


def kept_step(state: Any) -> int | None:
    """The step of the checkpoint the Trainer restores at the end (the best one), or None."""
    best = getattr(state, "best_model_checkpoint", None)
    m = re.search(r"checkpoint-(\d+)$", str(best or ""))
    return int(m.group(1)) if m else None


def step_of(checkpoint: str | None) -> int:
    if not checkpoint:
        return 0
    try:
        return int(json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError):
        return 0


def peak_vram_gb(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 3)

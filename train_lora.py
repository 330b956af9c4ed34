#!/usr/bin/env python
"""Fine-tune a pre-trained chat model with LoRA on your conversations, then chat with it.

    python train_lora.py --config lora_config.yaml
    python train_lora.py --config lora_config.yaml base_model=llama-3.2-1b max_steps=30
    python train_lora.py --config lora_config.yaml --chat          # talk to the result
    torchrun --nproc_per_node=2 train_lora.py --config lora_config.yaml   # DDP on 2 GPUs (PEFT backend)

Reads training_data/sharegpt_train.jsonl / sharegpt_val.jsonl from prepare_training_data.py
(ShareGPT or OpenAI `messages` JSONL; the person is the "gpt"/assistant side), or splits one file
itself (data_file=training_data/sharegpt_format.jsonl; also done when the split files are missing).
It trains on every turn (train_on: both; `person` = your replies only), packing whole conversations
into rows of max_seq_length tokens (no conversation attends to another). Each evaluation scores the
persona gap on a slice of conversations held out of training, and the best one is kept as adapter/
(select_on: persona); then a contrast stage (DPO: your turn against the next partner turn,
contrast_pairs) teaches which voice is yours, kept only if that gap does not fall.
Backend `auto` uses Unsloth (4-bit, fast) on an NVIDIA GPU when it is installed
(pip install -r requirements-gpu.txt), otherwise transformers + PEFT (QLoRA on CUDA, fp32 on CPU).
Writes output_dir/adapter (always), checkpoints, metrics.jsonl, loss_curve.png, train_summary.json,
and merged_16bit / GGUF exports when asked (save_formats). Re-running resumes from the newest
complete checkpoint in output_dir (resume=false starts over). Ctrl-C, SIGTERM and SIGHUP
(preemption, `docker stop`, a closed terminal) save a checkpoint after the current step and exit 130 / 143 / 129.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
import warnings
from pathlib import Path
from typing import Any

from graftkit.config import add_config_args, config_help, load_config
from graftkit.errors import ConfigError, InputError, UserError, cli_main, notice, run_script
from graftkit.fileio import atomic_write_json
from graftkit.runstate import Stopped, run_folder, signal_name
from graftkit.samples import subsample
from graftkit.lora.backend import (Loaded, check_hub, check_target_modules, cuda_available, hub_error, load_base,
                                   lora_kwargs, rank, remote_code_error, resize_for_tokenizer, say, select_backend,
                                   set_generation_ids, trainer_device_args, tune_cpu_allocator)
from graftkit.lora.config import LoraTrainConfig
from graftkit.lora.contrast import run_contrast
from graftkit.lora.data import (PackedCollator, check_response_part, encode_samples, load_splits, setup_tokenizer,
                                trim_tail)
from graftkit.lora.export import GGUF_NEEDS, save_adapter, save_gguf, save_merged
from graftkit.lora.presets import resolve_model_id
from graftkit.lora.persona import PersonaScorer, selection_table, split_persona_holdout
from graftkit.lora.safety import save_failure, warn_remote_code
from graftkit.lora.train import (StopOnInterrupt, check_output_dir, count_tokens, kept_step, pack_for_steps,
                                 pick_optim, resolve_checkpointing, resolve_packing, resolve_resume, resume_error,
                                 step_of, summarize, trainer_classes, uses_flash_attention)

# transformers, trl, peft, datasets and torch are imported inside the functions below, after the backend is
# chosen: on the Unsloth branch `import unsloth` must run first (it patches them), and --help stays instant.

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, epilog=config_help(LoraTrainConfig),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(ap, "lora_config.yaml")
    ap.add_argument("--chat", action="store_true",
                    help="instead of training, chat with the trained model: one message per stdin line (piped "
                         "stdin works); replies stop at the end-of-turn token")
    ap.add_argument("--model-dir", metavar="DIR",
                    help="with --chat: an adapter folder or a merged_16bit folder (default: output_dir/adapter)")
    return ap



# ----------------------------------------------------------------------------------------------------------
# 1. the model + LoRA adapter: Unsloth's FastLanguageModel on an NVIDIA GPU, transformers + PEFT elsewhere


def load_unsloth(cfg: LoraTrainConfig) -> Loaded:
    """FastLanguageModel 4-bit (pre-quantized repo) + Unsloth's LoRA with its gradient checkpointing."""
    import unsloth  # noqa: F401  -- must be imported before transformers, trl and peft
    from unsloth import FastLanguageModel

    model_id = resolve_model_id(cfg.base_model, "unsloth", cfg.load_in_4bit)
    check_hub(model_id)
    try:
        model, tok = FastLanguageModel.from_pretrained(model_name=model_id, max_seq_length=cfg.max_seq_length,
                                                       dtype=None, load_in_4bit=cfg.load_in_4bit,
                                                       random_state=cfg.seed,
                                                       trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise remote_code_error(model_id, e) or hub_error(model_id, e) from None
    info = setup_tokenizer(tok, cfg)  # the chat template, its end-of-turn token and the pad token
    resize_for_tokenizer(model, tok)
    set_generation_ids(model, tok, info)
    check_target_modules(model, cfg.target_modules)
    model = FastLanguageModel.get_peft_model(
        model, **lora_kwargs(cfg), random_state=cfg.seed, max_seq_length=cfg.max_seq_length,
        use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False)
    return Loaded(model, tok, info, "unsloth", model_id, "cuda")


def load_peft(cfg: LoraTrainConfig) -> Loaded:
    """transformers + PEFT: QLoRA (bitsandbytes NF4) on CUDA, full precision fp32 on CPU."""
    cuda = cuda_available()
    model_id = resolve_model_id(cfg.base_model, "peft", cfg.load_in_4bit)
    if not cuda:
        notice("no CUDA GPU: training with transformers + PEFT in full precision (fp32) on CPU"
               + ("; load_in_4bit is ignored" if cfg.load_in_4bit else ""))
        tune_cpu_allocator()
    quantize = cuda and cfg.load_in_4bit and not cfg.gguf_file
    if cuda and cfg.load_in_4bit and cfg.gguf_file:
        notice("gguf_file: the GGUF weights are dequantized to 16 bit; load_in_4bit is ignored")
    # AutoTokenizer + AutoModelForCausalLM.from_pretrained (NF4 on CUDA when quantize, a gguf_file dequantized)
    model, tok = load_base(cfg, model_id, cuda, quantize=quantize)
    info = setup_tokenizer(tok, cfg)  # the chat template, its end-of-turn token and the pad token
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    set_seed(cfg.seed)  # new embedding rows and LoRA A are random: same seed, same adapter (the Trainer seeds later)
    resize_for_tokenizer(model, tok)
    set_generation_ids(model, tok, info)
    if quantize:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    extra: dict[str, Any] = {}
    new_ids = [tok.convert_tokens_to_ids(t) for t in info.added_tokens if t != tok.pad_token]
    if new_ids:  # template tokens added to the vocabulary must be learnable
        extra["trainable_token_indices"] = {"embed_tokens": new_ids}
    peft_cfg = LoraConfig(task_type="CAUSAL_LM", **lora_kwargs(cfg), **extra)
    check_target_modules(model, cfg.target_modules)
    model = get_peft_model(model, peft_cfg)
    return Loaded(model, tok, info, "peft", model_id, "cuda" if cuda else "cpu")


def load_for_training(cfg: LoraTrainConfig, backend: str) -> Loaded:
    return load_unsloth(cfg) if backend == "unsloth" else load_peft(cfg)


# ----------------------------------------------------------------------------------------------------------
# 2. TRL's SFTTrainer and its SFTConfig


def learning_rate(cfg: LoraTrainConfig, loaded: Loaded) -> float:
    """The peak learning rate; `auto` from the base model's parameter count (LoraTrainConfig.peak_learning_rate)."""
    # frozen base weights; bitsandbytes packs two 4-bit weights per stored byte
    n_params = sum(p.numel() * (2 if type(p).__name__ == "Params4bit" else 1)
                   for p in loaded.model.parameters() if not p.requires_grad)
    return cfg.peak_learning_rate(n_params)


def build_trainer(cfg: LoraTrainConfig, loaded: Loaded, train_rows: list[dict], val_rows: list[dict], out: Path,
                  resuming: bool = False, train_batch: int | None = None, persona: PersonaScorer | None = None) -> Any:
    """SFTTrainer on rows already templated, masked and packed; `train_batch` packed rows per step.

    With a `persona` scorer every evaluation also measures the persona gap, and (select_on: persona) the
    checkpoint with the largest one is restored at the end and early stopping watches it instead of val loss."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback
    from trl import SFTConfig

    cuda = loaded.device == "cuda"
    has_val = bool(val_rows)
    early = has_val and cfg.early_stopping_patience > 0
    by_persona = has_val and persona is not None and cfg.select_on == "persona"
    keep_best = early or by_persona  # restore the best checkpoint at the end (what adapter/ then holds)
    extra: dict[str, Any] = {}
    if loaded.backend == "peft":
        checkpointing = resolve_checkpointing(cfg, loaded.model, cuda, train_batch or cfg.batch_size)
        if cfg.gradient_checkpointing == "auto":
            say(f"gradient checkpointing {'on' if checkpointing else 'off'} (auto)")
        extra["gradient_checkpointing"] = checkpointing
        if checkpointing:
            extra["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    else:  # Unsloth's get_peft_model already set its own ("unsloth") checkpointing up; TRL must not redo it
        extra["gradient_checkpointing"] = False
    if cfg.wandb:
        os.environ.setdefault("WANDB_PROJECT", cfg.wandb_project)
    warmup = cfg.warmup_steps if cfg.warmup_steps < 1 else int(cfg.warmup_steps)
    args = SFTConfig(
        output_dir=str(out), max_length=cfg.max_seq_length, packing=False,  # packed (or not) by pack_for_steps
        dataset_kwargs={"skip_prepare_dataset": True},  # rows are tokenized, labels masked to the replies already
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=train_batch or cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=learning_rate(cfg, loaded), lr_scheduler_type=cfg.lr_scheduler, warmup_steps=warmup,
        weight_decay=cfg.weight_decay, optim=pick_optim(cfg, cuda), seed=cfg.seed, data_seed=cfg.seed,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        eval_strategy="steps" if has_val else "no", eval_steps=cfg.eval_steps if has_val else None,
        eval_on_start=has_val and cfg.eval_on_start and not resuming,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit or None,
        load_best_model_at_end=keep_best,
        metric_for_best_model=("eval_persona_gap" if by_persona else "eval_loss") if keep_best else None,
        greater_is_better=by_persona if keep_best else None,
        ddp_find_unused_parameters=False,  # torchrun / accelerate launch: every LoRA weight is used in each step
        **trainer_device_args(loaded.device, cfg.wandb), **extra,
    )
    GraftTrainer, MetricsCallback = trainer_classes()  # SFTTrainer + token counts / perplexity; metrics.jsonl + PNG
    callbacks = [MetricsCallback(out)]
    if early:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience,
                                               early_stopping_threshold=cfg.early_stopping_threshold))
    trainer = GraftTrainer(
        model=loaded.model, args=args, processing_class=loaded.tokenizer,
        data_collator=PackedCollator(loaded.tokenizer.pad_token_id, flatten=uses_flash_attention(loaded.model),
                                     pad_to_multiple_of=8 if cuda else None),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if has_val else None, callbacks=callbacks,
    )
    trainer.reply_only_head = not cuda  # CPU: LM head on the reply tokens only (TRL's fused head is compact on CUDA)
    trainer.persona = persona if has_val else None
    return trainer


# ----------------------------------------------------------------------------------------------------------
# 3. the run: data -> model -> templated rows -> SFTTrainer.train() -> adapter / merged / GGUF


def run(cfg: LoraTrainConfig) -> dict[str, Any]:
    """Train per `cfg`; returns the summary also written to train_summary.json."""
    # the data and the settings first: a bad file or key fails in a second, before any model download
    out = Path(cfg.output_dir)
    train_s, val_s = load_splits(cfg)
    # the persona score's slice: whole conversations held out of the training split, never trained on and never
    # read by evaluate_persona.py (which scores the validation file), so choosing the checkpoint on it is honest
    # (no validation data: no evaluations, so nothing would read the slice: train on everything)
    train_s, persona_s = split_persona_holdout(train_s, cfg.persona_holdout, cfg.seed) if val_s else (train_s, [])
    # the val-loss pass reads every validation conversation at every evaluation (on a CPU more than the persona
    # score costs): at most val_max_conversations of them, the same ones each time so the curve stays comparable
    val_s = subsample(val_s, cfg.val_max_conversations, cfg.seed)
    backend = select_backend(cfg.backend, cfg.gguf_file)
    if cfg.gguf_methods and backend != "unsloth":
        notice(GGUF_NEEDS)  # said before training, so nobody waits an hour to learn it
    if cfg.wandb and importlib.util.find_spec("wandb") is None:
        raise ConfigError("wandb: true needs the wandb package (pip install wandb, then wandb login)")
    check_output_dir(out)
    warn_remote_code(cfg.trust_remote_code)
    # output_dir created 0700, locked against a second run (rank 0 holds it), everything written 0600
    with run_folder(out, "output_dir", lock=rank() == 0):
        return _train(cfg, out, train_s, val_s, persona_s, backend)


def _train(cfg: LoraTrainConfig, out: Path, train_s: list, val_s: list, persona_s: list,
           backend: str) -> dict[str, Any]:
    resume = resolve_resume(cfg, out)
    packing = resolve_packing(cfg, backend)
    if not val_s and cfg.early_stopping_patience:
        notice("no validation data: evaluation and early stopping are off")

    # the base model with its chat template, and the LoRA adapter on it
    t0 = time.perf_counter()
    loaded = load_for_training(cfg, backend)
    load_s = time.perf_counter() - t0
    trainable = sum(p.numel() for p in loaded.model.parameters() if p.requires_grad)
    say(f"base model {loaded.model_id} on {backend} ({loaded.device}), loaded in {load_s:.1f}s; "
        f"{trainable:,} trainable LoRA parameters; end of turn {loaded.info.eot_token!r}")

    # responses only: conversations through the chat template, labels on the person's replies only
    tok, info = loaded.tokenizer, loaded.info
    train_rows, st_train = encode_samples(tok, train_s, info, cfg.max_seq_length, cfg.overlong, cfg.system_prompt,
                                          cfg.train_on)
    val_rows, st_val = encode_samples(tok, val_s, info, cfg.max_seq_length, cfg.overlong, cfg.system_prompt,
                                      cfg.train_on)
    say(st_train.summary("train"))
    if val_s:
        cap = f" (val_max_conversations {cfg.val_max_conversations})" if cfg.val_max_conversations else ""
        say(st_val.summary("val") + cap)
    if not train_rows:
        raise InputError(f"no training samples left after templating and max_seq_length={cfg.max_seq_length} "
                         f"({st_train.first_error or 'all too long or without reply tokens'})", train_s[0].path)
    trim_tail(train_rows)  # tokens after the last reply train nothing
    trim_tail(val_rows)
    train_batch = None
    if packing:  # whole conversations per row, about as many tokens per step as batch_size padded samples
        train_rows, train_batch, msg = pack_for_steps(train_rows, cfg)
        say(msg)
    msg = check_response_part(tok, train_s, info, cfg.system_prompt)
    if msg:
        say(msg)
    persona = None
    if persona_s and val_rows:
        persona = PersonaScorer(loaded.model, tok, info, [smp.messages for smp in persona_s],
                                system_prompt=cfg.system_prompt, max_length=cfg.max_seq_length,
                                messages=cfg.persona_messages, seed=cfg.seed)
        if not persona.usable:
            persona = None
    if persona:
        say(f"persona score: {len(persona_s)} conversations held out of {Path(train_s[0].path).name} by conversation "
            f"(persona_holdout {cfg.persona_holdout}; never trained on, not read by evaluate_persona.py), "
            f"{persona.n_person} + {len(persona.items) - persona.n_person} messages from {persona.n_conversations} of "
            f"them scored at each evaluation; the kept checkpoint is chosen by "
            f"{'the persona gap' if cfg.select_on == 'persona' else 'val loss'}")
    elif cfg.persona_holdout > 0:
        notice("persona score off (too few conversations or no validation data): the checkpoint is chosen by val loss")

    # train (resuming from the newest complete checkpoint); Ctrl-C, SIGTERM and SIGHUP save one after the current step
    trainer = build_trainer(cfg, loaded, train_rows, val_rows, out, resuming=bool(resume), train_batch=train_batch,
                            persona=persona)
    if resume:
        say(f"resuming from {resume}")
    stop = StopOnInterrupt()
    trainer.add_callback(stop.callback)
    try:
        with stop.catching_sigint():
            result = trainer.train(resume_from_checkpoint=resume)
    except Exception as e:  # noqa: BLE001 -- sorted below: a full disk is one line, anything else is re-raised
        if (full := save_failure(e, out)) is not None:  # disk full / ulimit -f while the Trainer saved
            raise full from None
        if not isinstance(e, (RuntimeError, ValueError, KeyError, OSError)):
            raise
        if not resume or trainer.state.global_step > step_of(resume):
            raise
        raise resume_error(e, resume) from None
    if stop.requested:  # the Trainer saved a checkpoint at the end of the step it was in
        notice(f"{signal_name(stop.signum)}: stopped at step {trainer.state.global_step} and saved "
               f"checkpoint-{trainer.state.global_step} in {out}; run the same command again to resume from there")
        raise Stopped(stop.signum)
    steps_run = trainer.state.global_step - step_of(resume)
    if resume and steps_run == 0:
        notice(f"{Path(resume).name} had already reached the end of training (step {trainer.state.global_step}): "
               "nothing new was trained" + ("; the contrast stage runs on its kept adapter" if cfg.contrast_pairs else
                                            "; raise max_steps or epochs to continue, or pass resume=false to start over"))
    stopped_early = (bool(val_rows) and cfg.early_stopping_patience > 0
                     and trainer.state.global_step < trainer.state.max_steps)
    watched = "persona gap" if trainer.args.metric_for_best_model == "eval_persona_gap" else "val loss"
    if stopped_early:
        best = trainer.state.best_model_checkpoint
        say(f"early stopping: {watched} did not improve by more than {cfg.early_stopping_threshold} for "
            f"{cfg.early_stopping_patience} evaluations; stopped at step {trainer.state.global_step} of "
            f"{trainer.state.max_steps}" + (f"; restored the best checkpoint {Path(best).name}" if best else ""))
    # which checkpoint became adapter/ (None: the last step), and the persona gap logged at each evaluation
    kept = kept_step(trainer.state) if trainer.args.load_best_model_at_end else None
    gaps = {r["step"]: r["eval_persona_gap"] for r in trainer.state.log_history if "eval_persona_gap" in r}
    # the contrast stage (contrast_pairs > 0), on the kept adapter: your turn against a partner's, each read after
    # its own context
    contrast = None
    if cfg.contrast_pairs:
        gap_kept = gaps.get(trainer.state.global_step if kept is None else kept)
        with stop.catching_sigint():
            contrast = run_contrast(cfg, loaded, [smp.messages for smp in train_s], out, persona, gap_kept, stop)
        if stop.requested:
            notice(f"{signal_name(stop.signum)}: stopped during the contrast stage (the supervised checkpoints in {out} "
                   "are intact); run the same command again to redo the contrast stage")
            raise Stopped(stop.signum)
    tokens = count_tokens(trainer)  # every rank takes part in the gather
    if not trainer.is_world_process_zero():  # torchrun / accelerate launch: rank 0 saves
        return {"global_step": trainer.state.global_step, "rank": trainer.args.process_index}

    # both curves the kept checkpoint was chosen from
    table = selection_table(trainer.state.log_history, kept)
    if table:
        say(f"evaluations (adapter/ keeps the {'best ' + watched if kept is not None else 'last step'}):\n{table}")
    if trainer.args.load_best_model_at_end and kept is None:
        say(f"no checkpoint improved on the first evaluation's {watched}: adapter/ holds the last step")
    selection = {"select_on": watched, "kept_step": kept if kept is not None else trainer.state.global_step,
                 "train_on": cfg.train_on, "persona_holdout": {
                     "file": str(train_s[0].path), "conversations": len(persona_s),
                     "scored_per_evaluation": persona.n_conversations if persona else 0,
                     "lines": [smp.line for smp in persona_s]} if persona else None,
                 "scored_by_evaluate_persona": "the validation file (val_file), never this slice"}
    if contrast is not None:
        selection["contrast"] = contrast

    # save: the adapter always, a merged 16-bit model and GGUF files when save_formats asks
    adapter_dir = save_adapter(cfg, loaded, trainer.model, out / "adapter", selection)
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
    summary = summarize(trainer, result, loaded, load_s, steps_run, stopped_early, packing, tokens,
                        {"train": vars(st_train), "val": vars(st_val)}, exports)
    summary["selection"] = selection
    atomic_write_json(out / "train_summary.json", summary)
    if export_error is not None:
        raise export_error
    best = f", best val loss {summary['best_eval_loss']:.4f}" if summary["best_eval_loss"] is not None else ""
    if selection["kept_step"] in gaps:
        best += f", persona gap {gaps[selection['kept_step']]:+.4f} at the kept step {selection['kept_step']}"
    say(f"done: step {trainer.state.global_step}{best}; adapter in {adapter_dir}")
    return summary


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_config(LoraTrainConfig, args.config, args.overrides)
    # transformers 5.x deprecation noise (gradient_checkpointing -> activation_checkpointing, see notes)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    if args.chat:
        from graftkit.lora.chat import chat_loop

        return chat_loop(cfg, args.model_dir or Path(cfg.output_dir) / "adapter")
    run(cfg)
    return 0


if __name__ == "__main__":
    run_script(main)  # sys.exit(main()), except inside IPython/Jupyter

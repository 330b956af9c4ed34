#!/usr/bin/env python3
"""Train a tiny GPT (GPT-2 architecture, under 1M parameters by default) from scratch on your chat transcript.

    python train_tiny_gpt.py --config tiny_gpt_config.yaml                  # train (resumes if out_dir/last.pt exists)
    python train_tiny_gpt.py --config tiny_gpt_config.yaml epochs=20 n_embd=192   # any key=value override
    python train_tiny_gpt.py --config tiny_gpt_config.yaml --sample "<|them|>hi!\n<|me|>"
    python train_tiny_gpt.py --config tiny_gpt_config.yaml --chat           # you write as them, it answers as you
    python train_tiny_gpt.py --config tiny_gpt_config.yaml --export-hf out/tiny_gpt_hf
    torchrun --standalone --nproc_per_node=4 train_tiny_gpt.py --config tiny_gpt_config.yaml   # multi-GPU (DDP)

In a notebook: `%run train_tiny_gpt.py --config tiny_gpt_config.yaml epochs=3`, or
`import train_tiny_gpt; train_tiny_gpt.main(["--config", "tiny_gpt_config.yaml"])`.

Reads training_data/corpus_train.txt and corpus_val.txt (from prepare_training_data.py), builds the
tokenizer if it is missing, and writes out_dir/last.pt, best.pt, metrics.jsonl and loss_curve.png.
Ctrl-C, SIGTERM and SIGHUP (preemption, `docker stop`, `timeout`, a closed terminal) finish the current step,
save last.pt and exit with 130 / 143 / 129; run again to resume exactly where it stopped. In --sample prompts
"\\n" means a newline; an empty prompt starts a new conversation.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from graftkit.config import add_config_args, config_help, load_config
from graftkit.errors import ConfigError, UserError, cli_main, run_script
from graftkit.tiny_gpt.config import TinyGPTConfig

# torch and the model are imported inside the functions below, so `--help` and config errors answer at once


class TrainingDiverged(UserError):
    """The loss (or the weights) became NaN or infinite."""


def make_optimizer(model, cfg: TinyGPTConfig):
    """optimizer=muon (default): Muon on the blocks' 2-D weights, AdamW on embeddings and gains; optimizer=adamw:
    AdamW on everything (decay on 2-D tensors only). Each param group carries `base_lr`, its peak rate."""
    from graftkit.tiny_gpt.optim import build_optimizer

    return build_optimizer(model, cfg)


def get_lr_scale(it: int, cfg: TinyGPTConfig, max_iters: int) -> float:
    """The schedule's multiplier of every group's peak rate: linear warmup, then flat and a linear cool-down
    to min_lr (lr_schedule=wsd) or nanoGPT's cosine decay (lr_schedule=cosine)."""
    from graftkit.tiny_gpt.optim import lr_at

    return lr_at(it, max_iters, cfg)


def estimate_loss(model, data, cfg: TinyGPTConfig, rt) -> dict[str, float]:
    """Mean loss on fixed, evenly spread windows of each split (the same text at every evaluation)."""
    import torch

    from graftkit.tiny_gpt.data import eval_batches

    model.eval()
    out = {}
    with torch.no_grad():
        for split, tokens in (("train", data.train), ("val", data.val)):
            total, n = 0.0, 0
            for x, y in eval_batches(tokens, cfg.block_size, cfg.batch_size, cfg.eval_iters):
                x, y = x.to(rt.device), y.to(rt.device)
                with rt.autocast():
                    _, loss = model(x, y)
                total, n = total + float(loss) * x.numel(), n + x.numel()
            out[split] = total / n
    model.train()
    return out


def json_row(row: dict) -> str:
    """One metrics.jsonl line; NaN and infinity become null so the file stays valid JSON."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    return json.dumps(clean, allow_nan=False) + "\n"


def train(cfg: TinyGPTConfig, log: Callable[[str], None] = print, interrupt_at: int | None = None) -> dict[str, Any]:
    """Train to max_iters (or an early stop) and return a summary. `interrupt_at` simulates Ctrl-C (tests)."""
    cfg.check_data_files()  # a missing corpus, a folder as tokenizer_path, a file as out_dir: before any work
    import torch

    from graftkit.checkpoint import atomic_torch_save, capture_rng_state, load_checkpoint, restore_rng_state
    from graftkit.checkpoint import seed_everything
    from graftkit.fileio import atomic_write_text
    from graftkit.notebook import want_progress_bar
    from graftkit.plots import plot_tiny_gpt_losses
    from graftkit.runstate import Stopped, run_folder, signal_name
    from graftkit.tiny_gpt.checkpoints import CKPT_FORMAT, check_resumable, damaged_checkpoint, is_finite
    from graftkit.tiny_gpt.data import EpochSampler, derive_max_iters, load_data
    from graftkit.tiny_gpt.generate import sample_texts
    from graftkit.tiny_gpt.model import ModelArgs, TinyGPT
    from graftkit.tiny_gpt.runtime import StopFlag, all_ranks_agree, check_fits, default_peak_flops
    from graftkit.tiny_gpt.runtime import mean_over_ranks, start_runtime
    from graftkit.tiny_gpt.tokenizer import ensure_tokenizer

    out_dir, bar, wandb = Path(cfg.out_dir), None, None
    # device, dtype (bf16/fp16 autocast or fp32), torchrun's process group; out_dir created 0700 and locked against
    # a second run (rank 0 holds the lock), files written 0600
    with start_runtime(cfg) as rt, run_folder(out_dir, "out_dir", lock=rt.master):

        def say(msg: str) -> None:  # rank 0 only, above the progress bar when there is one
            if rt.master:
                (bar.write if bar is not None else log)(msg)

        # ---------------------------------------------------------------- data
        seed_everything(cfg.seed + rt.rank)
        tok = ensure_tokenizer(cfg, log=say)
        check_fits(cfg, tok.vocab_size, rt.device)  # refuse n_embd=100000 before allocating terabytes
        data = load_data(cfg, tok)
        try:
            sampler = EpochSampler(data.train, cfg.block_size, cfg.batch_size, cfg.seed, rt.rank, rt.world_size)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        max_iters = derive_max_iters(cfg, len(data.train), rt.world_size)
        tokens_per_iter = cfg.batch_size * cfg.block_size * cfg.gradient_accumulation_steps * rt.world_size

        # ---------------------------------------------------------------- model and optimizer
        model_args = ModelArgs(vocab_size=tok.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                               n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout, bias=cfg.bias,
                               zero_init_proj=cfg.zero_init_proj, block=cfg.block, mlp_act=cfg.mlp_act)
        model = TinyGPT(model_args).to(rt.device)
        optimizer = make_optimizer(model, cfg)
        scaler = torch.amp.GradScaler("cuda" if rt.device_type == "cuda" else "cpu", enabled=rt.dtype == torch.float16)

        # ---------------------------------------------------------------- checkpoints: save, or resume
        iter_num, best_val_loss, best_iter, evals_since_best, last_eval_iter, tokens_seen = 0, math.inf, -1, 0, -1, 0
        last_saved = None  # iteration of the newest last.pt on disk

        def save(name: str) -> None:
            nonlocal last_saved
            if not rt.master:
                return
            if not is_finite(model):  # never overwrite a good checkpoint with a broken model
                raise TrainingDiverged(f"the weights became NaN or infinite by iter {iter_num}; nothing saved. "
                                       f"{good_checkpoint()}")
            atomic_torch_save({
                "format": CKPT_FORMAT, "model": model.state_dict(), "model_args": model_args.to_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "iter": iter_num,
                "epoch": sampler.epoch_progress, "max_iters": max_iters, "best_val_loss": best_val_loss,
                "best_iter": best_iter, "evals_since_best": evals_since_best, "last_eval_iter": last_eval_iter,
                "tokens_seen": tokens_seen, "rng": capture_rng_state(), "sampler": sampler.state_dict(),
                "world_size": rt.world_size, "config": dataclasses.asdict(cfg), "tokenizer": tok.identity(),
                "tokenizer_json": tok.json_text,
                "chars_per_token": {"train": data.train_chars_per_token, "val": data.val_chars_per_token},
            }, out_dir / name)
            if name == "last.pt":
                last_saved = iter_num

        def good_checkpoint() -> str:
            if last_saved is None:
                return "No checkpoint was saved."
            return (f"The last good checkpoint is {out_dir / 'last.pt'} (iter {last_saved}). Try a lower "
                    f"learning_rate, grad_clip=1.0, or dtype=float32")

        last = out_dir / "last.pt"
        if cfg.init_from == "resume" and not last.is_file():
            raise ConfigError(f"init_from=resume but {last} does not exist (use init_from=auto or scratch)")
        resumed = cfg.init_from != "scratch" and last.is_file()
        if resumed:
            ckpt = load_checkpoint(last, map_location=rt.device)
            check_resumable(ckpt, cfg, tok, last)
            with damaged_checkpoint(last):  # a key of the wrong type or shape: one line, not a traceback
                model.load_state_dict(ckpt["model"])
                peak_lrs = [g["base_lr"] for g in optimizer.param_groups]
                optimizer.load_state_dict(ckpt["optimizer"])
                for group, peak_lr in zip(optimizer.param_groups, peak_lrs):  # the config's peak rates win on resume
                    group["base_lr"] = peak_lr
                scaler.load_state_dict(ckpt["scaler"])
                sampler.load_state_dict(ckpt["sampler"])
                iter_num, best_iter, last_eval_iter = int(ckpt["iter"]), int(ckpt["best_iter"]), int(ckpt["last_eval_iter"])
                best_val_loss, evals_since_best = float(ckpt["best_val_loss"]), int(ckpt["evals_since_best"])
                tokens_seen, last_saved = int(ckpt["tokens_seen"]), int(ckpt["iter"])
                restore_rng_state(ckpt["rng"])
            if int(ckpt.get("world_size", 1)) != rt.world_size:
                say(f"note: checkpoint was written with world_size {ckpt.get('world_size')}, now "
                    f"{rt.world_size}: training continues with the next unseen batches")
        metrics_path, history = out_dir / "metrics.jsonl", []
        if rt.master:  # a resumed run keeps the metric rows up to its checkpoint, drops the later ones
            if resumed and metrics_path.is_file():
                for line in metrics_path.read_text(encoding="utf-8").splitlines():
                    with contextlib.suppress(json.JSONDecodeError, AttributeError):
                        if (row := json.loads(line)).get("iter", 0) <= iter_num:
                            history.append(row)
            atomic_write_text(metrics_path, "".join(json_row(r) for r in history))

        def metric(row: dict) -> None:
            if rt.master:
                history.append(row)
                with open(metrics_path, "a", encoding="utf-8") as f:
                    f.write(json_row(row))
                if wandb is not None:
                    wandb.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=row["iter"])

        train_model = torch.compile(model) if cfg.compile else model
        if rt.ddp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            train_model = DDP(train_model, device_ids=[rt.local_rank] if rt.device_type == "cuda" else None)
        peak, peak_how = (cfg.peak_flops, "set in config") if cfg.peak_flops else default_peak_flops(rt.device, rt.dtype)
        peak *= rt.world_size  # peak_flops is per device; tok/s counts every rank
        peak_how += f", x {rt.world_size} processes" if rt.world_size > 1 else ""
        flops_per_token = model.flops_per_token()

        # ---------------------------------------------------------------- what is about to happen
        n = model.num_params()
        say(f"device {rt.device} | dtype {str(rt.dtype).replace('torch.', '')} ({rt.dtype_reason}) | threads "
            f"{torch.get_num_threads()} | compile {cfg.compile}" + (f" | DDP rank {rt.rank}/{rt.world_size}" if rt.ddp else ""))
        say(f"tokenizer {tok.kind}, vocab {tok.vocab_size} | train {len(data.train):,} tokens "
            f"({data.train_chars_per_token:.2f} chars/token) | val {len(data.val):,} tokens")
        say(f"model: {n:,} parameters ({n / 1e6:.2f}M; {model.num_params(non_embedding=True):,} without "
            f"lookup tables) | {cfg.block} blocks: {cfg.n_layer} layers, {cfg.n_head} heads, n_embd {cfg.n_embd}, block {cfg.block_size}")
        fused = any(g.get("fused") for g in optimizer.param_groups)
        how = "max_iters" if cfg.max_iters is not None else f"{cfg.epochs:g} epochs"
        say(f"{max_iters} iterations ({how}; {sampler.tokens_per_epoch / tokens_per_iter:.1f} iterations/epoch) x "
            f"{tokens_per_iter:,} tokens | {cfg.optimizer} fused={fused} | MFU vs {peak / 1e9:,.0f} GFLOP/s peak ({peak_how}; "
            f"set peak_flops to change)")
        if resumed:
            say(f"resumed from {last} at iter {iter_num} (epoch {sampler.epoch_progress:.2f})")

        def summary(reason: str, wall: float = 0.0, train_time: float = 0.0, start_iter: int = 0) -> dict[str, Any]:
            evals = [r for r in history if r.get("kind") == "eval"]
            final = evals[-1] if evals else {}
            return {"iters": iter_num, "max_iters": max_iters, "stopped_by": reason, "wall_s": wall,
                    "train_s": train_time, "best_val_loss": best_val_loss, "best_iter": best_iter,
                    "final_train_loss": final.get("train_loss"), "final_val_loss": final.get("val_loss"),
                    "epoch": sampler.epoch_progress, "tokens_seen": tokens_seen, "out_dir": str(out_dir),
                    "tok_s": tokens_per_iter * (iter_num - start_iter) / train_time if train_time else None}

        finished = iter_num >= max_iters or (cfg.patience and evals_since_best >= cfg.patience)
        if last_eval_iter == iter_num and finished:
            why = (f"max_iters {max_iters}" if iter_num >= max_iters else
                   f"early stopping: {evals_since_best} evaluations without a new best")
            say(f"already trained to iter {iter_num} ({why}); raise epochs/max_iters/patience to continue, "
                f"or init_from=scratch to start over")
            rt.stopped_together = True
            return summary("already done")
        if cfg.wandb and rt.master:
            try:
                import wandb
            except ImportError:
                raise UserError("wandb: true needs the wandb package: pip install wandb (or set wandb=false)") from None
            wandb.init(project=cfg.wandb_project, name=cfg.wandb_run_name or None, config=dataclasses.asdict(cfg),
                       resume="allow")

        # ---------------------------------------------------------------- the loop
        from tqdm.auto import tqdm  # a widget in Jupyter/Colab, text on a terminal

        if rt.master and want_progress_bar(cfg.progress):
            bar = tqdm(total=max_iters, initial=iter_num, unit="it", dynamic_ncols=True, leave=False)
        start_iter, reason = iter_num, "max_iters"
        t_start = t_log = time.perf_counter()
        iters_since_log, train_time = 0, 0.0
        try:
            with StopFlag() as flag:  # Ctrl-C, SIGTERM, SIGHUP: finish this step, save last.pt, stop
                while True:
                    # evaluate, sample, checkpoint every eval_interval (and at the end)
                    if (iter_num % cfg.eval_interval == 0 or iter_num >= max_iters) and last_eval_iter != iter_num:
                        t_eval, stop = time.perf_counter(), False
                        if rt.master:
                            losses = estimate_loss(model, data, cfg, rt)
                            train_loss, val_loss = losses["train"], losses["val"]
                            if not (math.isfinite(val_loss) and math.isfinite(train_loss)):
                                raise TrainingDiverged(f"eval loss became {val_loss} at iter {iter_num}; nothing "
                                                       f"saved. {good_checkpoint()}")
                            improved = val_loss < best_val_loss
                            if improved:
                                best_val_loss, best_iter, evals_since_best = val_loss, iter_num, 0
                            else:
                                evals_since_best += 1
                            last_eval_iter = iter_num
                            bpc_val = val_loss / math.log(2) / data.val_chars_per_token
                            ppl = math.exp(val_loss) if val_loss < 700 else math.inf  # exp overflows past ~709
                            say(f"eval iter {iter_num} | train loss {train_loss:.4f} | val loss {val_loss:.4f} | val "
                                f"ppl {ppl:.2f} | val bpc {bpc_val:.3f} | epoch {sampler.epoch_progress:.2f}"
                                + (" | new best" if improved else f" | best {best_val_loss:.4f} @ {best_iter}"))
                            texts = []
                            if cfg.num_samples > 0:
                                with rt.autocast():
                                    texts = sample_texts(model, tok, cfg.prompt, cfg.num_samples, cfg.max_new_tokens,
                                                         cfg.temperature, cfg.top_k, seed=cfg.seed + iter_num,
                                                         device=rt.device)
                            for i, t in enumerate(texts):
                                say(f"--- sample {i + 1} (iter {iter_num}) ---\n{t}")
                            metric({"kind": "eval", "iter": iter_num, "train_loss": train_loss, "val_loss": val_loss,
                                    "val_ppl": ppl, "train_bpc": train_loss / math.log(2) / data.train_chars_per_token,
                                    "val_bpc": bpc_val, "epoch": sampler.epoch_progress, "tokens": tokens_seen, "train_s": train_time,
                                    "samples": texts})
                            if improved:
                                save("best.pt")
                            save("last.pt")
                            stop = bool(cfg.patience) and evals_since_best >= cfg.patience
                            if stop:
                                say(f"early stopping: val loss has not improved for {evals_since_best} evaluations "
                                    f"(best {best_val_loss:.4f} at iter {best_iter})")
                        t_log += time.perf_counter() - t_eval  # eval time does not count as training speed
                        if all_ranks_agree(rt, stop, op="broadcast"):
                            reason = "early stopping"
                            break
                    if iter_num >= max_iters:
                        break
                    if interrupt_at is not None and iter_num == interrupt_at:
                        flag.requested = True
                    if all_ranks_agree(rt, flag.requested):
                        rt.stopped_together = True
                        save("last.pt")
                        say(f"{signal_name(flag.signum)}: stopped at iter {iter_num} and saved {last}; run the same "
                            f"command again to resume from there")
                        raise Stopped(flag.signum)

                    # one optimizer step: forward, backward (accumulated), clip, step, at this step's lr
                    t0 = time.perf_counter()
                    lr_scale = get_lr_scale(iter_num, cfg, max_iters)
                    for group in optimizer.param_groups:
                        group["lr"] = group["base_lr"] * lr_scale
                    lr = optimizer.param_groups[-1]["lr"]  # the AdamW rate, logged (groups: [muon,] adamw...)
                    accum = cfg.gradient_accumulation_steps
                    loss_sum = torch.zeros((), device=rt.device)
                    for micro in range(accum):
                        x, y = sampler.next_batch()
                        x, y = x.to(rt.device, non_blocking=True), y.to(rt.device, non_blocking=True)
                        # under DDP, sync gradients only on the last micro-batch
                        sync = train_model.no_sync() if rt.ddp and micro < accum - 1 else contextlib.nullcontext()
                        with sync:
                            with rt.autocast():
                                _, loss = train_model(x, y)
                                loss = loss / accum
                            scaler.scale(loss).backward()
                        loss_sum += loss.detach()
                    lossf = float(mean_over_ranks(rt, loss_sum))
                    if not math.isfinite(lossf):
                        optimizer.zero_grad(set_to_none=True)
                        raise TrainingDiverged(f"loss became {lossf} at iter {iter_num}; stopped before applying "
                                               f"that step. {good_checkpoint()}")
                    if cfg.grad_clip > 0:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    tokens_seen += tokens_per_iter
                    train_time += time.perf_counter() - t0
                    iter_num += 1
                    iters_since_log += 1

                    # log
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{lossf:.3f}", epoch=f"{sampler.epoch_progress:.2f}")
                    if iter_num % cfg.log_interval == 0 or iter_num == max_iters:
                        now = time.perf_counter()
                        dt = (now - t_log) / max(1, iters_since_log)
                        t_log, iters_since_log = now, 0
                        tok_s = tokens_per_iter / dt
                        mfu = flops_per_token * tok_s / peak
                        # nanoGPT's line; what follows mfu is extra
                        say(f"iter {iter_num} | loss {lossf:.4f} | {dt * 1000:.1f} ms | {tok_s:.0f} tok/s | mfu "
                            f"{100 * mfu:.0f}% | lr {lr:.2e} | epoch {sampler.epoch_progress:.2f}")
                        metric({"kind": "train", "iter": iter_num, "loss": lossf, "lr": lr, "ms": dt * 1000,
                                "tok_s": tok_s, "mfu": mfu, "epoch": sampler.epoch_progress, "tokens": tokens_seen})
        finally:
            if bar is not None:
                bar.close()
                bar = None
            if rt.master:
                with contextlib.suppress(Exception):
                    plot_tiny_gpt_losses(history, out_dir / "loss_curve.png")
            if wandb is not None:
                with contextlib.suppress(Exception):
                    wandb.finish()
        rt.stopped_together = True
        s = summary(reason, time.perf_counter() - t_start, train_time, start_iter)
        if s["final_val_loss"] is not None:
            say(f"done ({reason}) in {s['wall_s']:.0f} s: iter {iter_num}, epoch {sampler.epoch_progress:.2f}, train "
                f"loss {s['final_train_loss']:.4f}, val loss {s['final_val_loss']:.4f}, best val {best_val_loss:.4f} "
                f"at iter {best_iter} -> {out_dir / 'best.pt'}")
        return s


# ----------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, epilog=config_help(TinyGPTConfig),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p, "tiny_gpt_config.yaml")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sample", metavar="PROMPT", nargs="?", const=None, default=argparse.SUPPRESS,
                      help="print num_samples continuations of PROMPT (default: the config's prompt) and exit")
    mode.add_argument("--chat", action="store_true", help="chat with the model on stdin/stdout; it answers as you")
    mode.add_argument("--export-hf", metavar="DIR", help="write a transformers folder and exit (GPT2LMHeadModel; "
                      "Qwen3ForCausalLM for block=modern)")
    p.add_argument("--checkpoint", metavar="FILE", help="checkpoint for --sample/--chat/--export-hf "
                   "(default: out_dir/best.pt, else out_dir/last.pt)")
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sampling = hasattr(args, "sample")
    fields = {f.name for f in dataclasses.fields(TinyGPTConfig)}
    if sampling and args.sample and (m := re.match(r"^([A-Za-z_]\w*)=", args.sample)) and m.group(1) in fields:
        args.overrides.insert(0, args.sample)  # `--sample key=value ...`: no prompt given
        args.sample = None
    cfg = load_config(TinyGPTConfig, args.config, args.overrides)
    if not (sampling or args.chat or args.export_hf):
        train(cfg)
        return 0

    from graftkit.tiny_gpt.checkpoints import load_for_inference

    model, tok, path, _ = load_for_inference(cfg, args.checkpoint)
    if args.export_hf:
        from graftkit.tiny_gpt.export import export_hf

        out = export_hf(model, tok, args.export_hf)
        print(f"exported {path} -> {out} (load with transformers.AutoModelForCausalLM.from_pretrained)")
        return 0
    device = next(model.parameters()).device
    if args.chat:
        from graftkit.tiny_gpt.generate import chat

        chat(model, tok, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.seed, device=device)
        return 0
    from graftkit.tiny_gpt.generate import sample_texts

    prompt = cfg.prompt if args.sample is None else args.sample.replace("\\n", "\n")
    print(f"# {path}", file=sys.stderr)
    texts = sample_texts(model, tok, prompt, max(1, cfg.num_samples), cfg.max_new_tokens, cfg.temperature,
                         cfg.top_k, cfg.seed, device=device)
    for i, t in enumerate(texts):
        print(f"--- sample {i + 1} ---\n{t}")
    return 0


if __name__ == "__main__":
    run_script(main)

"""Where the tiny GPT runs: torchrun/DDP, device, precision, peak FLOP/s, Ctrl-C, and a memory check.

Why a module of its own: none of this is the training recipe, but every line of it decides whether a
run works on a laptop CPU, a Colab T4 and an 8-GPU node alike. train_tiny_gpt.py calls
`start_runtime(cfg)` once and reads `rt.device`, `rt.dtype`, `rt.master`, `rt.autocast()`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from ..errors import ConfigError
from .config import TinyGPTConfig


@dataclass
class Runtime:
    device: str
    device_type: str
    dtype: torch.dtype
    dtype_reason: str
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    ddp: bool = False
    stopped_together: bool = False  # every rank left the loop at the same point (see start_runtime)

    @property
    def master(self) -> bool:
        return self.rank == 0

    def autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)


def resolve_device(name: str) -> str:
    if name != "auto":
        kind = name.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device={name} but CUDA is not available (use device=auto or cpu)")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise ConfigError(f"device={name} but MPS is not available (use device=auto or cpu)")
        return name
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_fast_bf16() -> bool:
    """True where bf16 matmuls are native (AVX512-BF16 or AMX). On plain AVX2 CPUs bf16 is emulated
    and far slower than fp32 (measured ~170x slower on an AVX2 EPYC), so auto must not pick it there."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, c, lambda: False)() for c in checks)


def resolve_dtype(name: str, device: str) -> tuple[torch.dtype, str]:
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    kind = device.split(":")[0]
    if name != "auto":
        if name == "float16" and kind == "cpu":
            raise ConfigError("dtype=float16 is not supported on CPU (use bfloat16 or float32)")
        return table[name], "set in config"
    if kind == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "GPU supports bf16 (Ampere or newer)"
        return torch.float16, "GPU without bf16: fp16 autocast + GradScaler"
    if kind == "cpu":
        if cpu_fast_bf16():
            return torch.bfloat16, "CPU has AVX512-BF16/AMX"
        return torch.float32, "CPU has no native bf16 (AVX512-BF16/AMX): fp32 is fastest"
    return torch.float32, f"{kind}: float32"


_GPU_PEAKS = (  # dense bf16/fp16 tensor-core peak FLOP/s by device name, rough
    ("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40", 181e12), ("L4", 121e12),
    ("A10", 125e12), ("4090", 165e12), ("3090", 71e12), ("V100", 125e12), ("T4", 65e12))


def default_peak_flops(device: str, dtype: torch.dtype) -> tuple[float, str]:
    """Peak FLOP/s of one device that MFU is measured against, and how it was estimated."""
    kind = device.split(":")[0]
    if kind == "cuda":
        name = torch.cuda.get_device_name(torch.device(device))
        peak = next((p for key, p in _GPU_PEAKS if key in name), 100e12)
        if dtype == torch.float32:
            peak /= 2  # TF32 is about half the bf16 rate
        return peak, f"{name}, table value"
    if kind == "mps":
        return 10e12, "Apple GPU, rough"
    threads = torch.get_num_threads()
    cap = torch.backends.cpu.get_cpu_capability()
    per_cycle = 64 if "512" in cap else 32  # fp32 FLOPs/cycle/core: 2 FMA units x (16 or 8) lanes x 2
    if dtype == torch.bfloat16:
        per_cycle *= 2
    ghz = 2.5
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                ghz = float(line.split(":")[1]) / 1000
                break
    return threads * per_cycle * ghz * 1e9, f"cpu: {threads} threads x {per_cycle} FLOP/cycle ({cap}) x {ghz:.2f} GHz"


@contextlib.contextmanager
def start_runtime(cfg: TinyGPTConfig) -> Iterator[Runtime]:
    """Device and precision; under torchrun (RANK set) also the process group, torn down on the way out.

    Teardown waits at a barrier only when every rank left together (`rt.stopped_together`: done, early
    stop, or a Ctrl-C they agreed on): a rank that tears gloo down while rank 0 is still writing its files
    can die with "terminate called without an active exception" (SIGABRT); a rank that failed alone must
    not wait for the others forever."""
    ddp = int(os.environ.get("RANK", -1)) != -1 and int(os.environ.get("WORLD_SIZE", 1)) >= 1
    rank = int(os.environ.get("RANK", 0)) if ddp else 0
    local_rank = int(os.environ.get("LOCAL_RANK", 0)) if ddp else 0
    world = int(os.environ.get("WORLD_SIZE", 1)) if ddp else 1
    device = resolve_device(cfg.device)
    if ddp:
        import torch.distributed as dist

        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(device)
        backend = cfg.backend if cfg.backend != "auto" else ("nccl" if device.startswith("cuda") else "gloo")
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
    dtype, reason = resolve_dtype(cfg.dtype, device)
    rt = Runtime(device, device.split(":")[0], dtype, reason, rank, local_rank, world, ddp)
    try:
        yield rt
    finally:
        if ddp:
            import torch.distributed as dist

            if dist.is_initialized():
                if rt.stopped_together:
                    dist.barrier()
                dist.destroy_process_group()


def all_ranks_agree(rt: Runtime, flag: bool, op: str = "max") -> bool:
    """Rank 0's decision (op="broadcast") or any rank's (op="max"), the same on every rank."""
    if not rt.ddp:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=rt.device)
    if op == "broadcast":
        dist.broadcast(t, 0)
    else:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def mean_over_ranks(rt: Runtime, value: torch.Tensor) -> torch.Tensor:
    if not rt.ddp:
        return value
    import torch.distributed as dist

    dist.all_reduce(value, op=dist.ReduceOp.SUM)  # SUM then divide: gloo (CPU) has no AVG
    return value / rt.world_size


class StopFlag:
    """Ctrl-C, SIGTERM or SIGHUP (preemption, `docker stop`, a closed terminal) sets a flag; the loop
    finishes the current step, saves and then stops. A second Ctrl-C interrupts immediately."""

    def __init__(self):
        self.requested = False
        self.signum = signal.SIGINT
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "StopFlag":
        from ..runstate import on_stop_signal

        self._stack.enter_context(on_stop_signal(self._request))
        return self

    def _request(self, signum: int) -> None:
        self.requested, self.signum = True, signum

    def __exit__(self, *exc) -> bool:
        self._stack.close()
        return False


# ----------------------------------------------------------------------------- will it fit?

def training_bytes(cfg: TinyGPTConfig, vocab_size: int) -> int:
    """A deliberately low estimate of the memory one training step needs: fp32 weights, gradients and
    the two AdamW moments (16 bytes per parameter), plus the activations autograd keeps per layer
    (about 20 floats per token and channel, and the attention matrix where SDPA materialises it).
    Low on purpose: refusing a run that would have fit is worse than letting a borderline one try."""
    C, L, T, B = cfg.n_embd, cfg.n_layer, cfg.block_size, cfg.batch_size
    params = 12 * L * C * C + (vocab_size + T) * C
    acts = B * T * (20 * L * C + 2 * vocab_size) * 4 + B * cfg.n_head * T * T * L * 4
    return 16 * params + acts


def available_bytes(device: str) -> tuple[int | None, str]:
    """Free memory on `device` (None where it cannot be told) and where the figure comes from."""
    kind = device.split(":")[0]
    if kind == "cuda":
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), f"free memory on {device}"
    if kind == "cpu":
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
        with contextlib.suppress(ImportError):
            import psutil

            return int(psutil.virtual_memory().available), "available RAM"
    return None, ""


def check_fits(cfg: TinyGPTConfig, vocab_size: int, device: str) -> None:
    """Refuse, before allocating anything, a model that cannot fit (e.g. n_embd=100000 asks for TBs)."""
    need = training_bytes(cfg, vocab_size)
    have, where = available_bytes(device)
    if have is not None and need > have:
        raise ConfigError(
            f"this model needs at least {need / 2**30:,.1f} GiB to train (n_layer={cfg.n_layer}, n_embd={cfg.n_embd}, "
            f"block_size={cfg.block_size}, batch_size={cfg.batch_size}, vocab {vocab_size}) but only "
            f"{have / 2**30:,.1f} GiB is available ({where}); lower n_embd, n_layer, block_size or batch_size")

"""LoRA checkpoints a kill or a full disk cut in half, and model folders that ship their own Python code.

Why: a Colab disconnect, a full Google Drive or a preempted VM during the Trainer's save leaves a
`checkpoint-N` with half an `adapter_model.safetensors`, `optimizer.pt` or `trainer_state.json`. The
Trainer then fails deep inside resume (a SafetensorError, "failed finding central directory", or a
misleading "trained with other settings"). Each checkpoint is checked before it is resumed from: the
newest good one is used, a broken one is moved aside (renamed `broken-checkpoint-N`, which the
Trainer's `checkpoint-*` globs ignore, so it is neither resumed nor rotated nor overwritten half) and
the run says so.

Nothing here imports transformers at module level (on the Unsloth branch `import unsloth` comes first).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from ..errors import ConfigError, UserError, first_line, notice

INCOMPLETE_SENTINEL = "checkpoint-is-incomplete.txt"  # what transformers' own JIT checkpointing leaves while saving
_TORCH_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "training_args.bin")
_MAX_JSON = 64 << 20  # trainer_state.json of a long run is a few MB


def _json_problem(path: Path) -> str | None:
    try:
        if path.stat().st_size > _MAX_JSON:
            return f"{path.name} is over {_MAX_JSON >> 20} MB"
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError, RecursionError) as e:
        return f"{path.name} does not parse ({first_line(e, 80)})"
    return None if isinstance(data, dict) else f"{path.name} is not a JSON object"


def _zip_problem(path: Path) -> str | None:
    """torch.save files are zip archives: a cut one has no central directory, a damaged one a bad CRC."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as e:
        return f"{path.name} is incomplete or damaged ({first_line(e, 80)})"
    return f"{path.name} is damaged (bad checksum in {bad})" if bad else None


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import safe_open  # small, no transformers import

    try:
        with safe_open(str(path), "pt") as f:
            f.keys()
    except FileNotFoundError:
        return f"{path.name} is missing"
    except Exception as e:  # noqa: BLE001 - SafetensorError and friends: the file is not a whole safetensors file
        return f"{path.name} is incomplete or damaged ({first_line(e, 80)})"
    return None


def checkpoint_problem(ckpt: str | Path) -> str | None:
    """Why the Trainer could not resume from this checkpoint folder, or None when it looks whole.

    Checked: trainer_state.json parses (with its global_step), the adapter's safetensors header covers the
    whole file, and optimizer.pt (plus the scheduler, scaler and RNG states present) are complete zip
    archives with good checksums. Bounded: reads each file once, no unpickling.
    """
    ckpt = Path(ckpt)
    if (ckpt / INCOMPLETE_SENTINEL).exists():
        return f"{INCOMPLETE_SENTINEL} is present: its save never finished"
    problem = _json_problem(ckpt / "trainer_state.json")
    if problem:
        return problem
    try:
        step = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8")).get("global_step")
    except (OSError, ValueError):
        step = None
    if type(step) is not int or step < 0:
        return "trainer_state.json has no global_step"
    weights = [n for n in ("adapter_model.safetensors", "model.safetensors") if (ckpt / n).is_file()]
    if not weights:
        return "adapter_model.safetensors is missing"
    problem = _safetensors_problem(ckpt / weights[0])
    if problem:
        return problem
    if weights[0].startswith("adapter") and (problem := _json_problem(ckpt / "adapter_config.json")):
        return problem
    if not (ckpt / "optimizer.pt").is_file():
        return "optimizer.pt is missing"
    for name in (*_TORCH_FILES, *sorted(p.name for p in ckpt.glob("rng_state*.pth"))):
        if (ckpt / name).exists() and (problem := _zip_problem(ckpt / name)):
            return problem
    return None


def _step(p: Path) -> int | None:
    m = re.fullmatch(r"checkpoint-(\d+)", p.name)
    return int(m.group(1)) if m and p.is_dir() else None


def _move_aside(ckpt: Path) -> Path:
    target = ckpt.with_name(f"broken-{ckpt.name}")
    n = 1
    while target.exists():
        n += 1
        target = ckpt.with_name(f"broken-{ckpt.name}-{n}")
    ckpt.rename(target)
    return target


def newest_good_checkpoint(out: Path, move_broken: bool = True) -> str | None:
    """The newest checkpoint-* in `out` the Trainer can resume from; broken newer ones are moved aside
    (renamed broken-checkpoint-N, kept for inspection) and named in a notice. None when none is good."""
    found = sorted(((s, p) for p in out.glob("checkpoint-*") if (s := _step(p)) is not None), reverse=True)
    broken: list[str] = []
    for _, p in found:
        problem = checkpoint_problem(p)
        if problem is None:
            if broken:
                notice(f"resuming from {p.name}, the newest complete checkpoint; {'; '.join(broken)}")
            return str(p)
        where = p.name
        if move_broken:
            try:
                where = f"{p.name} (moved to {_move_aside(p).name})"
            except OSError:
                pass
        broken.append(f"skipped {where}: {problem}")
    if broken:
        notice(f"no complete checkpoint in {out}, training starts over; {'; '.join(broken)}")
    return None


def check_given_checkpoint(path: Path) -> None:
    """`resume: <path>`: the user chose it, so a broken one is an error (no silent fall-back)."""
    problem = checkpoint_problem(path)
    if problem:
        raise ConfigError(f"resume: {path} cannot be resumed from: {problem}; pass resume: auto (the newest complete "
                          "checkpoint), another checkpoint, or resume: false")


def warn_remote_code(trust_remote_code: bool) -> None:
    """Said once per run when the user opted in to running a model's own Python code."""
    if trust_remote_code:
        notice("trust_remote_code: true - Python files shipped with the base model (auto_map in its config) will "
               "run on this machine with your permissions; use it only for a model whose code you have read")


def save_failure(e: BaseException, out: Path) -> UserError | None:
    """One line for a checkpoint save that ran out of space or hit the file-size limit inside the Trainer
    (an OSError, torch's zip writer's RuntimeError "inline_container.cc ... unexpected pos", or safetensors'
    SafetensorError "File too large"); None for
    anything else. The half-written checkpoint is skipped by the next run (newest_good_checkpoint)."""
    import errno
    import shutil

    text = str(e)
    torch_write = isinstance(e, RuntimeError) and any(m in text for m in ("inline_container", "PytorchStreamWriter",
                                                                         "file write failed"))
    os_write = isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", -1))
    # safetensors' Rust writer (the adapter, written first) raises its own SafetensorError with the OS error's text
    st_write = type(e).__name__ == "SafetensorError" and any(
        m in text for m in ("File too large", "No space left", "Disk quota", "os error 27", "os error 28"))
    if not (torch_write or os_write or st_write):
        return None
    try:
        free = f"{shutil.disk_usage(out).free / 2**20:,.1f} MB free there"
    except OSError:
        free = "free space unknown"
    return UserError(f"cannot save a checkpoint: disk full or file-size limit (ulimit -f) reached ({free}); free "
                     "some space or choose another output_dir, then run the same command again: it resumes from the "
                     "newest complete checkpoint", out)

"""Checkpoint helpers shared by the training scripts: atomic torch.save, safe loading, RNG state.

Why: a checkpoint is only useful if (1) a crash or Ctrl-C while writing it never destroys the
previous good one, (2) it loads with `torch.load(..., weights_only=True)` (no arbitrary pickles:
a checkpoint downloaded from somewhere cannot run code), and (3) it carries every random number
generator's state, so a resumed run continues exactly where the interrupted one stopped.

Everything stored is a tensor or a plain container of str/int/float/bool/None, which is what the
weights-only unpickler accepts. RNG states are converted to tensors and lists for that reason.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UserError, first_line
from .fileio import atomic_path


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temp file beside `path`, then rename: `path` is either the old or the new file.

    A full disk or a file-size limit while writing is one line naming the folder and the space needed
    (torch reports both as a RuntimeError from its zip writer, "inline_container.cc ... unexpected pos");
    the previous file stays as it was.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as e:
            if not any(m in str(e) for m in ("inline_container", "PytorchStreamWriter", "file write failed")):
                raise
            raise save_space_error(path, estimated_bytes(obj)) from None


def estimated_bytes(obj: Any) -> int:
    """About how many bytes torch.save writes for `obj`: its tensors' storages (each counted once) plus 1 %."""
    seen: set[int] = set()
    total, stack = 0, [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, torch.Tensor):
            st = o.untyped_storage()
            if st.data_ptr() not in seen or st.data_ptr() == 0:
                seen.add(st.data_ptr())
                total += st.nbytes()
        elif isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
        elif isinstance(o, (str, bytes)):
            total += len(o)
    return int(total * 1.01) + 4096


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MB"


def save_space_error(path: Path, need: int) -> UserError:
    """Why a checkpoint could not be written, in one line: the file-size limit (ulimit -f) or the free space."""
    import shutil

    folder = path.parent
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        limit = -1 if limit == resource.RLIM_INFINITY else limit
    except (ImportError, AttributeError, OSError, ValueError):  # Windows: no ulimit
        limit = -1
    if 0 <= limit < need:
        return UserError(f"cannot save {path.name}: it needs about {_mb(need)} but the file-size limit of this process "
                         f"(ulimit -f) is {_mb(limit)}; raise the limit, or set out_dir to another folder; the previous "
                         f"checkpoints are kept", folder)
    try:
        free = f"{_mb(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    return UserError(f"cannot save {path.name}: disk full? it needs about {_mb(need)} ({free} here); free some space "
                     f"or set out_dir to another folder; the previous checkpoints are kept", folder)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """torch.load with weights_only=True; a missing or unreadable file is a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError("checkpoint not found", path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated file, foreign pickle, ...
        raise UserError(f"cannot load checkpoint ({first_line(e)})", path) from None
    if not isinstance(ckpt, dict):
        raise UserError("not a checkpoint written by this kit (expected a dict)", path)
    return ckpt


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU, CUDA, MPS) generator states as tensors and plain lists."""
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    if hasattr(torch, "mps") and torch.backends.mps.is_available():
        try:
            state["mps"] = torch.mps.get_rng_state()
        except Exception:  # older torch without mps RNG API
            pass
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of capture_rng_state. CUDA/MPS states are restored only where those devices exist."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"],
                         nps["has_gauss"], nps["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
    if "mps" in state and hasattr(torch, "mps") and torch.backends.mps.is_available():
        try:
            torch.mps.set_rng_state(state["mps"])
        except Exception:
            pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)

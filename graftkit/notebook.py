"""The scripts inside Jupyter/Colab: the kernel's own argv, progress bars, and plots shown inline.

Why: the kit is used by copy-pasting cells into Colab as much as from a shell. A script run there as
`%run train_tiny_gpt.py --config tiny_gpt_config.yaml epochs=3` or as `train_tiny_gpt.main([...])`
must not read the kernel's `-f kernel.json` as its own arguments, must not `sys.exit` (that tears
through the notebook with "SystemExit: 2"), should draw tqdm's notebook bar, and should show the
loss curve it wrote. graftkit.errors.cli_main uses this module, so every script gets all of it.

Nothing here imports IPython: it only looks at whether a running program already did.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# argv[0] of the programs that start a Jupyter kernel (their argv is `-f /path/kernel-XXXX.json`)
KERNEL_LAUNCHERS = ("ipykernel_launcher.py", "colab_kernel_launcher.py")


def ipython_shell() -> Any | None:
    """The running IPython shell (terminal IPython, Jupyter or Colab), else None."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    get = getattr(ipython, "get_ipython", None)
    return get() if get is not None else None


def in_notebook() -> bool:
    """A Jupyter/Colab kernel (where tqdm.auto draws a widget bar), not terminal IPython."""
    shell = ipython_shell()
    return shell is not None and ("IPKernelApp" in getattr(shell, "config", {}) or hasattr(shell, "kernel"))


def script_argv(argv: list[str] | None = None) -> list[str]:
    """The script's arguments: `argv` if given, else sys.argv[1:] without a kernel's own `-f kernel.json`
    (sys.argv holds those when main() is called from a notebook cell; `%run` sets sys.argv properly)."""
    if argv is not None:
        return list(argv)
    args = sys.argv[1:]
    launcher = os.path.basename(sys.argv[0]) if sys.argv else ""
    kernel_file = any(a.endswith(".json") and "kernel" in os.path.basename(a) for a in args)
    if ipython_shell() is not None and (launcher in KERNEL_LAUNCHERS or "ipykernel" in sys.argv[0] or kernel_file):
        return []  # the kernel's arguments, never the script's
    return args


def want_progress_bar(enabled: bool = True) -> bool:
    """Draw a bar only where someone watches it live: a terminal, or a notebook (tqdm.auto's widget).
    Logs redirected to a file (or `!python` in a notebook) get the periodic log lines instead."""
    return enabled and (sys.stderr.isatty() or in_notebook())


# ----------------------------------------------------------------------------- plots shown inline

_figures: dict[str, None] = {}  # PNGs written during the current script run, in order, deduplicated


def remember_figure(path: str | Path) -> None:
    """Called by graftkit.plots for every PNG it writes; cli_main shows the final versions at the end."""
    key = str(Path(path).resolve())
    _figures.pop(key, None)
    _figures[key] = None


def forget_figures() -> None:
    _figures.clear()


def show_figures() -> list[str]:
    """Display the PNGs this run wrote, inline, when running under IPython (not terminal IPython, which
    cannot show images). Returns the paths shown."""
    shell = ipython_shell()
    paths = [p for p in _figures if Path(p).is_file()]
    forget_figures()
    if shell is None or type(shell).__name__ == "TerminalInteractiveShell" or not paths:
        return []
    from IPython.display import Image, display

    for p in paths:
        display(Image(filename=p))
    return paths

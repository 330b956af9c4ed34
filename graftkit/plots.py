"""Loss-curve PNGs for both trainers, written atomically (one place for the matplotlib set-up).

Every PNG written here is also remembered by graftkit.notebook, so a script run in a notebook shows
its final loss curve inline when it ends."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .fileio import atomic_path
from .notebook import remember_figure

# (label, x values, y values, matplotlib format string, extra line keyword arguments)
Series = tuple[str, Sequence[float], Sequence[float], str, dict]


def save_loss_curve(path: Path, series: list[Series], xlabel: str, title: str,
                    ylabel: str = "cross-entropy (nats/token)", size: tuple[float, float] = (8, 4.5)) -> None:
    """Plot the non-empty series and save a PNG; nothing is written when every series is empty.

    Headless on purpose (Agg): training runs on servers and in Colab without a display."""
    series = [s for s in series if len(s[1])]
    if not series:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size)
    for label, xs, ys, fmt, kwargs in series:
        ax.plot(xs, ys, fmt, label=label, **kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    remember_figure(path)


def plot_tiny_gpt_losses(history: list[dict], path: Path) -> None:
    """The tiny GPT's curve from its metrics rows: noisy per-batch train loss, eval train and val loss."""
    train = [r for r in history if r.get("kind") == "train" and r.get("loss") is not None]
    evals = [r for r in history if r.get("kind") == "eval" and r.get("val_loss") is not None]
    iters = [r["iter"] for r in evals]
    save_loss_curve(path, [
        ("train (batch)", [r["iter"] for r in train], [r["loss"] for r in train], "-", {"alpha": 0.4, "lw": 1}),
        ("train (eval)", iters, [r["train_loss"] for r in evals], "o-", {}),
        ("val", iters, [r["val_loss"] for r in evals], "o-", {}),
    ], xlabel="iteration", title="tiny GPT loss")

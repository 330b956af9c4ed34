"""Loss-curve PNGs for both trainers, written atomically (one place for the matplotlib set-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .fileio import atomic_path

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

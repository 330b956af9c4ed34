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
                    ylabel: str = "cross-entropy (nats/token)", size: tuple[float, float] = (8, 4.5),
                    persona: dict | None = None) -> None:
    """Plot the non-empty series and save a PNG; nothing is written when every series is empty.

    `persona` ({"steps", "values", "lo", "hi", "kept"}) adds a second panel under the losses: the persona gap
    per evaluation with its 95 % interval, zero (no persona) and the kept checkpoint marked, because a falling
    loss alone says the model learned chat, not the person. Headless on purpose (Agg): training runs on
    servers and in Colab without a display."""
    series = [s for s in series if len(s[1])]
    if not series:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if persona:
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=size, sharex=True, height_ratios=(3, 2))
    else:
        fig, ax = plt.subplots(figsize=size)
    for label, xs, ys, fmt, kwargs in series:
        ax.plot(xs, ys, fmt, label=label, **kwargs)
    if not persona:  # with the persona panel the step axis is labelled once, under it
        ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    if persona:
        xs, ys = persona["steps"], persona["values"]
        ax2.fill_between(xs, persona["lo"], persona["hi"], alpha=0.2, label="95% interval")
        ax2.plot(xs, ys, "o-", label="persona gap (held-out slice)")
        ax2.axhline(0.0, color="grey", lw=1, ls="--")
        if persona.get("kept") in xs:
            k = xs.index(persona["kept"])
            ax2.plot([xs[k]], [ys[k]], "*", ms=14, color="tab:red", label=f"kept (step {xs[k]})")
        ax2.set_xlabel(xlabel)
        ax2.set_ylabel("persona gap (nats/token)")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
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

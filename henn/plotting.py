"""Training-history plots (matplotlib, Agg back end: files only, no display needed)."""
from __future__ import annotations

from typing import Iterable


def plot_history(history: Iterable[dict], path: str, *, title: str, x: str = "epoch",
                 metrics: tuple[str, ...] = ("loss",), secondary: str | None = None) -> str:
    """Draw ``metrics`` (and a ``secondary`` metric on a right-hand axis) against ``x``.

    Args:
        history: records (dicts) as produced by the training loops.
        path: the PNG file to write.
        title: plot title.
        x: the record key on the horizontal axis.
        metrics: record keys drawn on the left axis.
        secondary: optional record key drawn on a right-hand axis (e.g. accuracy).

    Returns:
        The path written.

    Raises:
        KeyError: a record lacks one of the keys.
    """
    import matplotlib  # here, not at the top: pyplot takes ~0.7 s to import and only drawing needs it

    matplotlib.use("Agg")  # draw to files only, never a display; must precede the pyplot import
    import matplotlib.pyplot as plt

    rows = list(history)
    xs = [r[x] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        for m in metrics:
            ax.plot(xs, [r[m] for r in rows], label=m)
        ax.set_xlabel(x)
        ax.set_ylabel(", ".join(metrics))
        ax.set_title(title)
        ax.legend(loc="upper left")
        if secondary is not None:
            ax2 = ax.twinx()
            ax2.plot(xs, [r[secondary] for r in rows], color="tab:orange", alpha=0.6, label=secondary)
            ax2.set_ylabel(secondary)
            ax2.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path

"""Charts written as PNG (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def accuracy_vs_steps(history: Iterable[dict], path: Path, title: str = "validation accuracy") -> Path:
    """Validation whole-sequence accuracy and training loss against steps, from the run's CSV rows."""
    rows = list(history)
    acc = [(r["step"], r["valid_sequence_accuracy"]) for r in rows if r.get("valid_sequence_accuracy", "") != ""]
    loss = [(r["step"], r["loss"]) for r in rows if r.get("loss", "") != ""]
    fig, ax = plt.subplots(figsize=(7, 4))
    if acc:
        ax.plot(*zip(*acc), marker="o", ms=3, color="tab:blue", label="validation accuracy")
    ax.set_xlabel("training step")
    ax.set_ylabel("whole-sequence accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if loss:
        ax2 = ax.twinx()
        ax2.plot(*zip(*loss), color="tab:gray", lw=1, alpha=0.7, label="training loss")
        ax2.set_ylabel("training loss")
        ax2.set_yscale("log")
    ax.set_title(title)
    fig.legend(loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.02))
    return _save(fig, path)


def histogram(values: Sequence[float], path: Path, title: str, xlabel: str, bins: int = 50) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(values, bins=bins, color="tab:blue", alpha=0.85)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.grid(alpha=0.3)
    return _save(fig, path)

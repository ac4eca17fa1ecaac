"""Charts written as PNG (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from housenum.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    try:
        with atomic_path(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def accuracy_vs_steps(history: Iterable[dict], path: Path, title: str = "validation accuracy") -> Path:
    """Validation whole-sequence accuracy and training loss against steps, from the run's CSV rows."""
    rows = list(history)
    acc = [(r["step"], r["valid_accuracy"]) for r in rows if r.get("valid_accuracy", "") != ""]
    loss = [(r["step"], r["loss"]) for r in rows if r.get("loss", "") != ""]
    fig, ax = plt.subplots(figsize=(7, 4))
    if acc:
        ax.plot(*zip(*acc), marker="o", ms=3, color="tab:blue", label="validation accuracy")
    ax.set_xlabel("training step")
    ax.set_ylabel("accuracy (whole sequence)")
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


def histograms(series: dict[str, Sequence[float]], path: Path, title: str, xlabel: str, bins: int = 60) -> Path:
    """Overlaid histograms, one per named series (e.g. per split), as densities so sizes compare."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    values = [v for v in series.values() if len(v)]
    top = max((float(max(v)) for v in values), default=1.0)
    for name, v in series.items():
        if len(v):
            ax.hist(v, bins=bins, range=(0, top), density=True, histtype="step", lw=1.5, label=f"{name} ({len(v):,})")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of images")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def layer_sweep(rows: Sequence[dict], path: Path) -> Path:
    """The study's chart: test accuracy against steps, dotted FC-only, solid convolutional, one colour
    per depth (shared by both families), a legend entry per configuration."""
    fig, ax = plt.subplots(figsize=(8, 5))
    cmap = plt.get_cmap("tab10")
    for r in rows:
        pts = [(float(h["step"]), float(h["test_accuracy"])) for h in r["history"] if h.get("test_accuracy") not in ("", None)]
        if not pts:
            continue
        ax.plot(*zip(*pts), linestyle=":" if r["family"] == "fc" else "-", lw=2, color=cmap((r["layers"] - 1) % 10),
                marker="o" if len(pts) < 3 else None,
                label=f"{r['layers']} layer{'s' if r['layers'] > 1 else ''}, {'FC only' if r['family'] == 'fc' else 'conv'}")
    ax.set_xlabel("training step")
    ax.set_ylabel("test accuracy (whole sequence)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title("Layer sweep: fully connected only (dotted) vs convolutional (solid)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the curves, not on them
    return _save(fig, path)

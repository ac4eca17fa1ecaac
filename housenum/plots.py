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


ACCURACY_LABEL_SEQUENCE = "validation accuracy (whole number right)"
ACCURACY_LABEL_CLASS = "validation accuracy (letter right)"


def accuracy_vs_steps(history: Iterable[dict], path: Path, title: str = "validation accuracy") -> Path:
    """Validation accuracy and training loss against steps, from the run's CSV rows.

    The accuracy is whole-sequence for SVHN runs (their rows carry a length accuracy) and plain class
    accuracy for the letters run, and the axis says which. The loss axis starts at zero and is linear:
    a log axis fitted to each run made every run's loss look like the same large drop.
    """
    rows = list(history)
    acc = [(float(r["step"]), float(r["valid_accuracy"])) for r in rows if r.get("valid_accuracy", "") not in ("", None)]
    loss = [(float(r["step"]), float(r["loss"])) for r in rows if r.get("loss", "") not in ("", None)]
    sequences = any(r.get("valid_length_accuracy", "") not in ("", None) for r in rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    handles = []
    if acc:
        handles += ax.plot(*zip(*acc), marker="o" if len(acc) < 30 else None, ms=3, color="tab:blue",
                           label="validation accuracy")
    ax.set_xlabel("training step")
    ax.set_ylabel(ACCURACY_LABEL_SEQUENCE if sequences else ACCURACY_LABEL_CLASS, color="tab:blue")
    ax.set_ylim(0, 1)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    if loss:
        ax2 = ax.twinx()
        handles += ax2.plot(*zip(*loss), color="tab:gray", lw=1, alpha=0.7, label="training loss")
        ax2.set_ylabel("training loss (linear, from 0)", color="tab:gray")
        ax2.set_ylim(0, max(v for _, v in loss) * 1.05 or 1.0)
    ax.set_title(title, pad=22)
    if handles:
        # between the title and the plot: never over the curves (which may run anywhere) or the x label
        ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    return _save(fig, path)


def histograms(series: dict[str, Sequence[float]], path: Path, title: str, xlabel: str, bins: int = 60,
               data: str | None = None) -> Path:
    """Overlaid histograms, one per named series (e.g. per split), each bar the share of that series'
    images in the bin (weights 1/n, so series of different sizes compare and the bars of one series add
    up to 100 %). `data` names where the images came from (real or synthetic) in the title."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    values = [v for v in series.values() if len(v)]
    top = max((float(max(v)) for v in values), default=1.0)
    width = top / bins
    for name, v in series.items():
        if len(v):
            ax.hist(v, bins=bins, range=(0, top), weights=[100.0 / len(v)] * len(v), histtype="step", lw=1.5,
                    label=f"{name} ({len(v):,} images)")
    ax.set_title(f"{title}\n{data}" if data else title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"% of images per bin ({width:.3g} {xlabel} wide)")
    ax.grid(alpha=0.3)
    if values:
        ax.legend()
    return _save(fig, path)


def sweep_colour(family: str, layers: int):
    """One colour per configuration of the sweep (FC-only 1..7, conv 5..7: ten, tab10's ten colours):
    FC-only nets take the first seven, conv nets the last three, so an FC net and a conv net of the same
    depth never share a colour."""
    cmap = plt.get_cmap("tab10")
    return cmap((layers - 1) % 10 if family == "fc" else (7 + layers - 5) % 10)


def layer_sweep(rows: Sequence[dict], path: Path, title: str | None = None) -> Path:
    """The study's chart: test accuracy against steps, dotted FC-only, solid convolutional, one colour
    per configuration, a legend entry per configuration."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in rows:
        pts = [(float(h["step"]), float(h["test_accuracy"])) for h in r["history"] if h.get("test_accuracy") not in ("", None)]
        if not pts:
            continue
        ax.plot(*zip(*pts), linestyle=":" if r["family"] == "fc" else "-", lw=2,
                color=sweep_colour(r["family"], int(r["layers"])),
                marker="o" if len(pts) < 3 else None,
                label=f"{r['layers']} layer{'s' if int(r['layers']) > 1 else ''}, {'FC only' if r['family'] == 'fc' else 'conv'}")
    ax.set_xlabel("training step")
    ax.set_ylabel(ACCURACY_LABEL_SEQUENCE.replace("validation", "test"))
    ax.set_ylim(0, 1)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title(title or "Layer sweep: fully connected only (dotted) vs convolutional (solid)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside the curves, not on them
    return _save(fig, path)

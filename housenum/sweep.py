"""Step 4: the study's layer sweep, networks of 1..7 layers, fully connected only against convolutional.

Depth counts weight layers, the output heads included, as the study's chart does:

* `fc-L`: L-1 hidden fully connected ReLU layers on the raw pixels, then the heads. Widths halve from
  512 (512, 256, ..., 16), so the deepest FC-only net ends in the seed network's 16-unit layer; `fc-1`
  is the single-layer network (softmax regression on pixels; the study: ~60 % on SVHN).
* `conv-L` (L = 5..7): L-4 conv + LRN + max-pool blocks (depths 16, 32, 64, the seed's) in front of the
  seed's fully connected stack 128/64/16 and the heads; `conv-7` is the seed network itself.

Every configuration shares the data, steps, batch and schedule. Each trains through `housenum.train`
into `<results>/layer_sweep/<name>/`, so an interrupted sweep resumes inside a configuration too;
finished ones are read back from their metrics.json, not retrained. The sweep's own outputs are
`<results>/layer_sweep.csv` and `<results>/layer_sweep.png`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from housenum.atomic import atomic_path
from housenum.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from housenum.errors import HousenumError

FC_WIDTHS = (512, 256, 128, 64, 32, 16)  # hidden widths of the FC-only family, in order
SEED_CONV = (16, 32, 64)
SEED_FC = (128, 64, 16)
MAX_DEPTH = len(FC_WIDTHS) + 1
CONV_DEPTHS = tuple(range(len(SEED_FC) + 2, len(SEED_FC) + 2 + len(SEED_CONV)))  # 5, 6, 7
CSV_FIELDS = ("config", "family", "layers", "step", "valid_accuracy", "test_accuracy")
RUNS_FOLDER = "layer_sweep"  # <results>/layer_sweep/<name>/: one run per configuration (experiments, never a
# reader for photos: predict.find_model passes them over)


@dataclass(frozen=True)
class SweepEntry:
    name: str  # "fc-3", "conv-6"
    family: str  # "fc" or "conv"
    layers: int
    model: ModelConfig


def sweep_entries(layers: Sequence[int], base: ModelConfig = ModelConfig()) -> list[SweepEntry]:
    """The configurations for the asked depths: FC-only at every depth, convolutional where it exists."""
    entries = []
    for depth in sorted(set(layers)):
        if not 1 <= depth <= MAX_DEPTH:
            raise HousenumError(f"--layers takes depths 1..{MAX_DEPTH}, got {depth}")
        entries.append(SweepEntry(f"fc-{depth}", "fc", depth,
                                  dataclasses.replace(base, conv_depths=(), fc_units=FC_WIDTHS[:depth - 1])))
    for depth in sorted(set(layers)):
        if depth in CONV_DEPTHS:
            n_conv = depth - len(SEED_FC) - 1
            entries.append(SweepEntry(f"conv-{depth}", "conv", depth,
                                      dataclasses.replace(base, conv_depths=SEED_CONV[:n_conv], fc_units=SEED_FC)))
    return entries


def _finished(run_dir: Path, cfg: RunConfig, fingerprint: str) -> dict | None:
    """The stored result of a finished run of exactly these settings on exactly this data, else None."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except ValueError:
        return None
    same = (result.get("steps") == cfg.train.steps and result.get("data_fingerprint") == fingerprint
            and result.get("config") == json.loads(cfg.to_json()))
    return result if same else None


def _history(run_dir: Path) -> list[dict]:
    with (run_dir / "log.csv").open(newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("valid_accuracy")]


def run_sweep(entries: Sequence[SweepEntry], train: TrainConfig, data, results_dir: Path | str, *,
              force: bool = False, progress: bool = False, log: Callable[[str], None] | None = None) -> list[dict]:
    """Train (or read back) every entry; write layer_sweep.csv and the chart; return one row per entry."""
    from housenum import quiet_tf  # noqa: F401  (before TensorFlow: no start-up banner)
    import tensorflow as tf

    from housenum.model import build_model, count_params
    from housenum.train import Trainer, data_fingerprint

    # every configuration traces its own functions; TensorFlow's "retracing" advice is noise here
    tf.get_logger().setLevel("ERROR")

    log = log or (lambda _: None)
    results_dir = Path(results_dir)
    fingerprint = data_fingerprint(data)
    rows = []
    for entry in entries:
        run_dir = results_dir / RUNS_FOLDER / entry.name
        model = dataclasses.replace(entry.model, max_digits=data.config.max_digits)
        cfg = RunConfig(model=model, train=train, data=data.config).validate()
        result = None if force else _finished(run_dir, cfg, fingerprint)
        if result is not None:
            log(f"{entry.name}: finished earlier, read back from {run_dir / 'metrics.json'}")
        else:
            log(f"{entry.name}: training {train.steps:,} steps into {run_dir}")
            result = Trainer(cfg, data, run_dir, progress=progress, test_during=True).fit(fresh=force)
        rows.append({
            "config": entry.name, "family": entry.family, "layers": entry.layers,
            "parameters": result.get("parameters") or count_params(build_model(entry.model)),
            "test_accuracy": _headline(result["test"]), "valid_accuracy": _headline(result["valid"]),
            "train_seconds": result.get("train_seconds", 0.0), "history": _history(run_dir),
        })
    write_outputs(rows, results_dir, data.description)
    return rows


def _headline(m: dict) -> float:
    return float(m.get("sequence_accuracy", m.get("accuracy", 0.0))) if m else 0.0


def write_outputs(rows: list[dict], results_dir: Path, data: str = "") -> tuple[Path, Path]:
    from housenum import plots

    csv_path, png_path = results_dir / "layer_sweep.csv", results_dir / "layer_sweep.png"
    with atomic_path(csv_path) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, CSV_FIELDS)
        w.writeheader()
        for r in rows:
            for h in r["history"]:
                w.writerow({"config": r["config"], "family": r["family"], "layers": r["layers"], "step": h["step"],
                            "valid_accuracy": h["valid_accuracy"], "test_accuracy": h.get("test_accuracy", "")})
    kind = "synthetic data" if "synthetic" in data else ("real SVHN" if "real SVHN" in data else "")
    plots.layer_sweep(rows, png_path, title="Layer sweep: FC only (dotted) vs conv (solid)" + (f", {kind}" if kind else ""))
    return csv_path, png_path


def format_table(rows: list[dict]) -> str:
    head = f"{'config':<8} {'layers':>6} {'parameters':>11} {'test accuracy':>14} {'valid accuracy':>15} {'train time':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['config']:<8} {r['layers']:>6} {r['parameters']:>11,} {r['test_accuracy']:>14.4f} "
                     f"{r['valid_accuracy']:>15.4f} {r['train_seconds']:>10.1f}s")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- baselines
def letters_config(train: TrainConfig) -> RunConfig:
    """The seed network adapted to 28x28 notMNIST letters: same convs, FC stack and schedule, one
    10-class head instead of the length and digit heads."""
    base = RunConfig()
    model = dataclasses.replace(base.model, image_size=28, task="single", num_classes=10)
    return RunConfig(model=model, train=train, data=dataclasses.replace(base.data, image_size=28, margin=0.0,
                                                                         use_extra=False)).validate()


def letters_data(h5_path: Path | str):
    """notMNIST splits as training data (labels as int32 class ids)."""
    import numpy as np

    from housenum.dataset import Data
    from housenum.notmnist import load_notmnist

    parts = load_notmnist(h5_path)
    cast = {k: (x, y.astype(np.int32)) for k, (x, y) in parts.items()}
    n = {k: len(v[0]) for k, v in cast.items()}
    # letters are whole 28x28 images: no crop margin, no extra split; the split itself is notMNIST's own
    config = DataConfig(image_size=int(cast["train"][0].shape[1]), margin=0.0, valid_size=n["valid"], use_extra=False)
    return Data(cast["train"], cast["valid"], cast["test"], config=config,
                description=f"notMNIST from {h5_path} (train {n['train']:,}, valid {n['valid']:,}, test {n['test']:,})")

"""Step 4: the layer sweep's configurations, outputs and resumption; the letters baseline network."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from housenum.config import TrainConfig
from housenum.errors import HousenumError
from housenum.model import build_model
from housenum.sweep import letters_config, run_sweep, sweep_entries
from housenum.train import TrainingError
from tests.helpers import random_data, run_script

REPO = Path(__file__).resolve().parents[1]


def test_entries_follow_the_studys_depths():
    entries = {e.name: e for e in sweep_entries(range(1, 8))}
    assert list(entries) == [f"fc-{d}" for d in range(1, 8)] + ["conv-5", "conv-6", "conv-7"]
    for e in entries.values():
        model = build_model(e.model)
        weight_layers = [l for l in model.layers if l.name.startswith(("conv", "fc"))]
        # hidden weight layers + the output heads (one layer of heads) = the configuration's depth
        assert len(weight_layers) + 1 == e.layers, e.name
    assert entries["fc-1"].model.fc_units == () and entries["fc-1"].model.conv_depths == ()
    assert entries["conv-7"].model.conv_depths == (16, 32, 64) and entries["conv-7"].model.fc_units == (128, 64, 16)
    assert [e.name for e in sweep_entries([2, 6])] == ["fc-2", "fc-6", "conv-6"]
    with pytest.raises(HousenumError, match="1..7"):
        sweep_entries([8])


def test_sweep_writes_csv_chart_and_reads_back_finished_runs(tmp_path):
    data = random_data(n_train=200, n_eval=40)
    train = TrainConfig(steps=8, batch_size=20, eval_every=4, checkpoint_every=4)
    entries = sweep_entries([1, 5])
    messages = []
    rows = run_sweep(entries, train, data, tmp_path, progress=False, log=messages.append)
    assert [r["config"] for r in rows] == ["fc-1", "fc-5", "conv-5"]
    with (tmp_path / "layer_sweep.csv").open() as f:
        table = list(csv.DictReader(f))
    assert {(r["config"], r["step"]) for r in table} == {(c, s) for c in ("fc-1", "fc-5", "conv-5") for s in ("4", "8")}
    # the chart's last point is the test accuracy the run reports (same model, same test set)
    final = {r["config"]: float(r["test_accuracy"]) for r in table if r["step"] == "8"}
    assert final == pytest.approx({r["config"]: r["test_accuracy"] for r in rows})
    assert (tmp_path / "layer_sweep.png").stat().st_size > 5000
    before = {r["config"]: r["test_accuracy"] for r in rows}
    mtime = (tmp_path / "layer_sweep" / "fc-1" / "metrics.json").stat().st_mtime
    again = run_sweep(entries, train, data, tmp_path, progress=False, log=messages.append)
    assert sum("read back" in m for m in messages) == 3
    assert {r["config"]: r["test_accuracy"] for r in again} == before
    assert (tmp_path / "layer_sweep" / "fc-1" / "metrics.json").stat().st_mtime == mtime
    run_sweep(entries[:1], train, data, tmp_path, force=True, progress=False, log=messages.append)
    assert (tmp_path / "layer_sweep" / "fc-1" / "metrics.json").stat().st_mtime > mtime
    # other data: nothing is read back, and the old run is not silently continued either
    with pytest.raises(TrainingError, match="other data"):
        run_sweep(entries[:1], train, random_data(n_train=200, n_eval=40, seed=5), tmp_path, progress=False,
                  log=messages.append)


def test_letters_network_is_the_seed_network_with_one_head():
    model = build_model(letters_config(TrainConfig()).model)
    assert model.input.shape[1:] == (28, 28, 1)
    assert set(model.output) == {"class"} and model.output["class"].shape[-1] == 10
    assert [l.name for l in model.layers if l.name.startswith("conv")] == ["conv1", "conv2", "conv3"]


@pytest.fixture(scope="module")
def notmnist_h5(mirror_data, tmp_path_factory):
    from housenum.notmnist import NotMnistSettings, preprocess_notmnist

    out = tmp_path_factory.mktemp("letters")
    preprocess_notmnist(NotMnistSettings(data_dir=mirror_data / "notmnist", output=out / "notmnist.h5",
                                         results_dir=out, progress=False, workers=1))
    return out / "notmnist.h5"


def test_baselines_on_real_letters(notmnist_h5, tmp_path):
    run = run_script("layer_sweep.py", "--baseline", "logistic", "seed-letters", "--notmnist", notmnist_h5,
                     "--results-dir", tmp_path, "--logistic-train", "2000", "--letters-steps", "150", "--eval-every",
                     "50", "--no-progress")
    assert run.returncode == 0, run.stderr[-2000:]
    stored = json.loads((tmp_path / "baselines.json").read_text())
    assert stored["logistic"]["n_train_used"] == 2000 and stored["logistic"]["accuracy"] > 0.7
    # 150 steps of SGD already read most real letters; a broken head or label mapping stays near 0.1
    assert stored["seed_letters"]["accuracy"] > 0.5 and stored["seed_letters"]["n_test"] == 1000
    assert "logistic" in run.stdout.lower() and "seed network on 28x28 letters" in run.stdout


def test_sweep_script_fails_in_one_line_without_data(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "layer_sweep.py"), "--data", str(tmp_path / "none.h5"),
                          "--steps", "2"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stderr.startswith("error:") and run.stderr.count("\n") == 1


@pytest.mark.xdist_group("small-synthetic")  # the session's small synthetic data is made once
def test_sweep_script_on_synthetic_data_end_to_end(small_synthetic_svhn, tmp_path):
    """Depths 1 and 6, both families, a few steps each, through the script: CSV, PNG and the table. (Every
    depth 1..7 is built in test_entries_follow_the_studys_depths; each trains through the same code.)"""
    run = run_script("layer_sweep.py", "--data", small_synthetic_svhn["h5"], "--results-dir", tmp_path, "--layers",
                     "1", "6", "--steps", "20", "--eval-every", "10", "--no-progress")
    assert run.returncode == 0, run.stderr[-3000:]
    names = ["fc-1", "fc-6", "conv-6"]
    table = [line.split() for line in run.stdout.splitlines() if line.split()[:1] and line.split()[0] in names]
    assert [row[0] for row in table] == names
    with (tmp_path / "layer_sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    # the table's accuracy is each run's final test accuracy, the chart's last point
    final = {r["config"]: float(r["test_accuracy"]) for r in rows if r["step"] == "20"}
    assert all(int(row[2].replace(",", "")) > 0 and float(row[3]) == pytest.approx(final[row[0]], abs=6e-5)
               for row in table)
    assert len(rows) == 2 * len(names) and {r["step"] for r in rows} == {"10", "20"}
    assert (tmp_path / "layer_sweep.png").stat().st_size > 5000
    assert "synthetic SVHN-format data" in run.stdout

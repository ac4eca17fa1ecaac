"""Steps 1-3 and 5 from the shell on synthetic SVHN-format data: generate, unpack, preprocess, train for a
few minutes to a bar that a broken loss, mask or label mapping cannot pass, then read crops of the
test photos back through predict_real_images.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
N_SYNTHETIC = 3000  # train numbers; test and extra follow housenum.synthetic.split_sizes
STEPS = 1200
BAR = 0.5  # measured ~0.70 whole-sequence accuracy at these settings; chance is ~0, a broken mask ~0.05


def run(*args, timeout=900):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data, results = root / "data", root / "results"
    run(REPO / "download_and_extract.py", "--synthetic", N_SYNTHETIC, "--datasets", "svhn", "--data-dir", data,
        "--no-progress")
    pre = run(REPO / "preprocess_svhn.py", "--data-dir", data, "--results-dir", results, "--valid-size", "0.1",
              "--no-progress")
    train = run(REPO / "train_and_test_svhn_data.py", "--preset", "improved", "--data", data / "svhn_32x32.h5",
                "--results-dir", results, "--run-name", "e2e", "--steps", STEPS, "--eval-every", 400,
                "--no-progress")
    return data, results, pre.stdout, train.stdout


def test_preprocessing_reports_synthetic_data(pipeline):
    data, results, pre, _ = pipeline
    assert "synthetic SVHN-format data" in pre
    summary = json.loads((results / "svhn_summary.json").read_text())
    assert summary["splits"]["train"]["rows"] == N_SYNTHETIC and summary["output_rows"]["valid"] == N_SYNTHETIC // 10


def test_training_reaches_the_bar_and_says_what_data_it_used(pipeline):
    _, results, _, out = pipeline
    metrics = json.loads((results / "e2e" / "metrics.json").read_text())
    assert metrics["steps"] == STEPS
    assert metrics["test"]["sequence_accuracy"] > BAR, metrics["test"]
    assert metrics["test"]["length_accuracy"] > 0.85
    assert "synthetic SVHN-format data" in metrics["data"] and "synthetic SVHN-format data" in out
    assert "test whole-sequence accuracy" in out and "coverage at 98% accuracy" in out


def test_prediction_reads_crops_exactly_as_evaluation_does(pipeline, tmp_path):
    """Crops of test photos saved losslessly go through predict_real_images.py; each reading must equal
    the model's reading of the same row of the preprocessed test split (same preprocessing function)."""
    from housenum.digitstruct import read_digitstruct
    from housenum.metrics import labels_to_text
    from housenum.predict import Reader
    from housenum.preprocess import union_box

    data, results, _, _ = pipeline
    ds = read_digitstruct(data / "svhn" / "test" / "digitStruct.mat")
    with h5py.File(data / "svhn_32x32.h5") as f:
        names = [n.decode() for n in f["test/names"][:12]]
        images, labels = f["test/images"][:12], f["test/labels"][:12]
    index = {name: i for i, name in enumerate(ds.names)}
    photos = tmp_path / "photos"
    photos.mkdir()
    for k, name in enumerate(names):
        _, boxes = ds.record(index[name.split("/", 1)[1]])
        with Image.open(data / "svhn" / "test" / name.split("/", 1)[1]) as im:
            im.crop(union_box(boxes, im.width, im.height, 0.3)).save(photos / f"{k:02d}.png")
    (photos / "notes.txt").write_text("not an image")  # skipped: folders are scanned for image files
    out = run(REPO / "predict_real_images.py", photos, "--model", results / "e2e", "--show", tmp_path / "shown")
    lines = [line.split("\t") for line in out.stdout.strip().splitlines()]
    assert len(lines) == 12 and all(len(parts) == 3 for parts in lines)
    expected, _ = Reader(results / "e2e").read_arrays(images)
    assert [parts[1].replace("(no digits)", "") for parts in lines] == expected
    truth = labels_to_text(labels)
    assert sum(e == t for e, t in zip(expected, truth)) >= 6  # most crops are read right
    assert all(0.0 <= float(parts[2]) <= 1.0 for parts in lines)
    assert len(list((tmp_path / "shown").glob("*.png"))) == 12
    assert "ms per photo" in out.stderr


def test_prediction_reports_bad_files_and_still_reads_the_others(pipeline, tmp_path):
    _, results, _, _ = pipeline
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 80, 3), dtype=np.uint8)).save(good)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    proc = subprocess.run([sys.executable, str(REPO / "predict_real_images.py"), str(good), str(tmp_path / "empty.png"),
                           str(tmp_path / "text.png"), str(tmp_path / "missing.jpg"), "--model", str(results / "e2e")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith(str(good))
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert "empty file" in proc.stderr and "not an image" in proc.stderr and "no such file" in proc.stderr


def test_prediction_without_a_model_says_how_to_train_one(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    proc = subprocess.run([sys.executable, str(REPO / "predict_real_images.py"), str(tmp_path / "x.png"),
                           "--results-dir", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "train_and_test_svhn_data.py" in proc.stderr

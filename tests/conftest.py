"""Shared fixtures. Tests never download: real data comes from the read-only local mirror.

The mirror is `../shared/data` beside the repository (override with HOUSENUM_MIRROR). Tests that need it
are skipped, with the reason shown, where it is absent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Quiet TensorFlow's start-up banner in test logs; keep its errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _mirror_root() -> Path:
    return Path(os.environ.get("HOUSENUM_MIRROR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """Root of the real-data mirror (holds svhn/ and notmnist/)."""
    root = _mirror_root()
    if not (root / "svhn").is_dir():
        pytest.skip(f"real-data mirror not found at {root} (set HOUSENUM_MIRROR)")
    return root


@pytest.fixture(scope="session")
def svhn_mirror(mirror_dir: Path) -> Path:
    return mirror_dir / "svhn"


@pytest.fixture(scope="session")
def notmnist_mirror(mirror_dir: Path) -> Path:
    path = mirror_dir / "notmnist"
    if not (path / "notMNIST_small.tar.gz").is_file():
        pytest.skip(f"notMNIST_small.tar.gz not found in {path}")
    return path


@pytest.fixture(scope="session")
def matlab_fixtures(svhn_mirror: Path) -> Path:
    """Genuine MATLAB-written digitStruct.mat excerpts (test/, train/, extra/) with images 1-3."""
    return svhn_mirror / "matlab"


@pytest.fixture(scope="session")
def mirror_data(tmp_path_factory, mirror_dir: Path) -> Path:
    """The real mirror unpacked once per session through step 1 (svhn/{train,test,extra}, notmnist/)."""
    from housenum.download import fetch

    data_dir = tmp_path_factory.mktemp("mirror_data")
    fetch(["svhn", "notmnist-small"], data_dir, mirror=mirror_dir, progress=False)
    return data_dir


N_SYNTHETIC = 1500  # train numbers for the end-to-end training; test and extra follow split_sizes
N_SMALL = 400  # train numbers for tests that need a working data set, not a trainable one


def _make_synthetic(root: Path, n: int) -> dict:
    """`n` synthetic numbers made, unpacked and preprocessed through the step 1-2 scripts under `root`."""
    import subprocess

    data, results = root / "data", root / "results"
    for script, *args in (
        ("download_and_extract.py", "--synthetic", n, "--datasets", "svhn", "--data-dir", data),
        ("preprocess_svhn.py", "--data-dir", data, "--results-dir", results, "--valid-size", "0.1"),
    ):
        proc = subprocess.run([sys.executable, str(REPO / script), *map(str, args), "--no-progress"], cwd=REPO,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{script}: {proc.stderr[-3000:]}"
    return {"data": data, "results": results, "h5": data / "svhn_32x32.h5", "stdout": proc.stdout, "n_train": n}


@pytest.fixture(scope="session")
def synthetic_svhn(tmp_path_factory) -> dict:
    """Synthetic SVHN-format data enough to train on, made once per session (its users share the
    "synthetic" xdist group): {"data": data dir, "results": results dir, "h5": preprocessed file,
    "stdout": step 2's, "n_train": train numbers}."""
    return _make_synthetic(tmp_path_factory.mktemp("synthetic"), N_SYNTHETIC)


@pytest.fixture(scope="session")
def small_synthetic_svhn(tmp_path_factory) -> dict:
    """As `synthetic_svhn`, a few hundred numbers in a few seconds, for tests of the scripts' plumbing
    (resume, the sweep) that need data of the right format but no accuracy; its users share the
    "small-synthetic" xdist group, so it runs beside the end-to-end training, not after it."""
    return _make_synthetic(tmp_path_factory.mktemp("small_synthetic"), N_SMALL)

"""The baselines the study compares against: logistic regression on notMNIST, untuned.

The study quotes 89 % test accuracy for scikit-learn's LogisticRegression trained on 20,000 notMNIST
letters "off the shelf". `logistic_baseline` reproduces it on the file written by preprocess_notmnist.py;
`layer_sweep.py --baseline logistic` calls it.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from housenum.errors import DataError
from housenum.notmnist import load_notmnist

STUDY_LOGISTIC_ACCURACY = 0.89  # the study's figure for 20,000 training letters


@dataclass(frozen=True)
class LogisticSettings:
    """scikit-learn's defaults (lbfgs, L2, C=1.0, multinomial), except the iteration cap."""

    # Default 100 stops lbfgs early on notMNIST (8,000 letters need ~140 iterations) with a
    # ConvergenceWarning; 1,000 lets it converge without changing the model being fitted.
    max_iter: int = 1000
    C: float = 1.0  # sklearn default: no tuning
    solver: str = "lbfgs"  # sklearn default; deterministic, so `seed` does not change its result


def logistic_baseline(h5_path: str | Path, n_train: int = 20000, seed: int = 0) -> dict[str, Any]:
    """Fit LogisticRegression on the first `n_train` training images (flattened); score the test split.

    The training split is already shuffled by preprocess_notmnist.py, so its first rows are a random
    sample. With fewer images than asked, all are used and the result says so (`n_train_used`, `note`).
    Returns accuracy, n_train_requested, n_train_used, n_test, seconds (fit + predict), n_iter,
    converged, settings and note.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits  # ships with scikit-learn

    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or n_train < 1:
        raise DataError(f"n_train must be a whole number of at least 1 training images, got {n_train!r}")
    settings = LogisticSettings()
    train = load_notmnist(h5_path, splits=("train",), limit=int(n_train))["train"]
    test = load_notmnist(h5_path, splits=("test",))["test"]
    x_train, y_train = train[0].reshape(len(train[0]), -1), train[1]
    x_test, y_test = test[0].reshape(len(test[0]), -1), test[1]
    if len(y_test) == 0:
        raise DataError(f"{h5_path}: the test split is empty; rebuild it with preprocess_notmnist.py")
    if len(np.unique(y_train)) < 2:
        raise DataError(f"{h5_path}: the first {len(y_train)} training images hold one class only; ask for more")
    note = ""
    if len(y_train) < n_train:
        note = (f"asked for {n_train:,} training images but {h5_path} holds {len(y_train):,}: "
                f"used all {len(y_train):,}")
    model = LogisticRegression(**asdict(settings), random_state=seed)
    started = time.perf_counter()
    # One BLAS thread: lbfgs's products here (n x 784 by 784 x 10) are too small to gain from threads,
    # and on a busy 2-core machine OpenBLAS threads contend: 2,000 letters took 6 s with 2 threads
    # against 0.4 s with 1.
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_train, y_train)
        accuracy = float(np.mean(model.predict(x_test) == y_test))
    seconds = time.perf_counter() - started
    n_iter = int(np.max(model.n_iter_))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {
        "model": "logistic regression (scikit-learn, untuned)",
        "accuracy": accuracy,
        "n_train_requested": int(n_train),
        "n_train_used": int(len(y_train)),
        "n_test": int(len(y_test)),
        "seconds": round(seconds, 3),
        "n_iter": n_iter,
        "converged": converged,
        "settings": {**asdict(settings), "random_state": seed},
        "note": note,
        "study_accuracy": STUDY_LOGISTIC_ACCURACY,
        "data": str(h5_path),
    }


def format_baseline(result: dict[str, Any]) -> str:
    """One line for the scripts' output."""
    text = (f"logistic regression: test accuracy {result['accuracy']:.2%} on {result['n_test']:,} letters, "
            f"trained on {result['n_train_used']:,} (study: {result['study_accuracy']:.0%} with 20,000), "
            f"{result['n_iter']} lbfgs iterations{'' if result['converged'] else ' (NOT converged)'}, "
            f"{result['seconds']:.1f} s")
    return text + (f"; {result['note']}" if result["note"] else "")

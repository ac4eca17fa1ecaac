"""Small builders shared by the tests."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import subprocess
from pathlib import Path

import numpy as np

from housenum import config as C
from housenum.config import BLANK


def random_labels(rng: np.random.Generator, n: int, max_digits: int = 5) -> np.ndarray:
    y = np.full((n, 1 + max_digits), BLANK, np.int32)
    lengths = rng.integers(1, max_digits + 1, n)
    y[:, 0] = lengths
    for i, k in enumerate(lengths):
        y[i, 1:1 + k] = rng.integers(0, 10, k)
    return y


def random_data(n_train: int = 400, n_eval: int = 50, seed: int = 0, size: int = 32):
    from housenum.dataset import Data

    rng = np.random.default_rng(seed)

    def split(n):
        return rng.normal(size=(n, size, size, 1)).astype(np.float32), random_labels(rng, n)

    return Data(split(n_train), split(n_eval), split(n_eval), "random test data",
                config=dataclasses.replace(C.DataConfig(), image_size=size))


def tiny_config(steps: int = 12, keep_prob: float = 0.8, optimizer: str = "sgd", every: int = 6,
                batch_size: int = 20, **train) -> C.RunConfig:
    base = C.smoke(steps)
    return dataclasses.replace(
        base,
        model=dataclasses.replace(base.model, keep_prob=keep_prob),
        train=dataclasses.replace(base.train, batch_size=batch_size, checkpoint_every=every, eval_every=every,
                                  optimizer=optimizer, **train),
    )


def train_tiny(strategy, run_dir) -> list[np.ndarray]:
    """The distribution tests' run: a tiny network, 12 steps of the same global batches, under `strategy`
    (tests/_train_worker.py in a process of its own, or the default strategy in the test's); its weights."""
    from housenum.train import Trainer

    trainer = Trainer(tiny_config(steps=12, keep_prob=1.0), random_data(), run_dir, strategy=strategy, progress=False)
    trainer.fit()
    return [v.numpy() for v in trainer.model.weights]


def run_script(script: str | Path, *args) -> subprocess.CompletedProcess:
    """A top-level script (predict_real_images.py, layer_sweep.py, ...) run in this process as the shell
    runs it, its main() through cli.run: the exit status, stdout and stderr as subprocess.run gives them.

    For tests that run a script again and again, or only for what it prints: a process of its own imports
    TensorFlow anew, 8-9 s of a 2-core CI machine each time. Each script also runs from the shell in at least
    one test (its `if __name__ == "__main__"` line and the interpreter's start)."""
    from housenum import cli

    module = importlib.import_module(Path(script).stem)
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.run(module.main, argv)
        except SystemExit as done:
            code = 0 if done.code is None else done.code if isinstance(done.code, int) else 1
        else:  # pragma: no cover - cli.run always exits
            code = 0
    return subprocess.CompletedProcess([str(script), *argv], code, out.getvalue(), err.getvalue())

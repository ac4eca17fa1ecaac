"""Small builders shared by the tests."""

from __future__ import annotations

import dataclasses

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

"""Run by test_train.py in subprocesses: train a tiny network under a strategy and dump its weights.

usage: python tests/_train_worker.py STRATEGY RUN_DIR WEIGHTS.npz   (multiworker reads TF_CONFIG)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from housenum.train import make_strategy  # noqa: E402

strategy = make_strategy(sys.argv[1])  # first, before any other TensorFlow work

import numpy as np  # noqa: E402

from tests.helpers import random_data, tiny_config  # noqa: E402
from housenum.train import Trainer  # noqa: E402

trainer = Trainer(tiny_config(steps=12, keep_prob=1.0), random_data(), sys.argv[2], strategy=strategy,
                  progress=False, log=lambda s: None)
trainer.fit()
np.savez(sys.argv[3], *[v.numpy() for v in trainer.model.weights])
print("replicas", strategy.num_replicas_in_sync)

"""Run by test_train.py in subprocesses: train a tiny network under a strategy and dump its weights.

usage: python tests/_train_worker.py STRATEGY RUN_DIR WEIGHTS.npz   (multiworker reads TF_CONFIG)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from housenum.train import make_strategy  # noqa: E402

if sys.argv[1] == "mirrored-2cpu":
    # two logical CPU devices stand in for two GPUs: MirroredStrategy with two local replicas
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
else:
    strategy = make_strategy(sys.argv[1])  # first, before any other TensorFlow work

import numpy as np  # noqa: E402

from tests.helpers import train_tiny  # noqa: E402

np.savez(sys.argv[3], *train_tiny(strategy, sys.argv[2]))
print("replicas", strategy.num_replicas_in_sync)

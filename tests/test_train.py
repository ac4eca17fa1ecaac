"""The training loop: loss masking, dropout modes, exact resume, failures, multi-worker equivalence."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from housenum.config import ModelConfig  # noqa: E402
from housenum.errors import DataError, HousenumError  # noqa: E402
from housenum.model import build_model  # noqa: E402
from housenum.train import BatchOrder, Trainer, TrainingError, per_example_loss  # noqa: E402
from tests.helpers import random_data, run_script, tiny_config, train_tiny  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def quiet(_):
    pass


def test_digit_loss_ignores_positions_past_the_length():
    rng = np.random.default_rng(0)
    labels = tf.constant([[2, 3, 7, 10, 10, 10], [1, 0, 10, 10, 10, 10]], tf.int32)
    length_logits = tf.constant(rng.normal(size=(2, 6)), tf.float32)
    digits = rng.normal(size=(2, 5, 10)).astype(np.float32)
    base = per_example_loss({"length": length_logits, "digits": tf.constant(digits)}, labels).numpy()
    changed = digits.copy()
    changed[0, 2:] += 100.0  # positions 3..5 of a 2-digit number
    changed[1, 1:] -= 50.0  # positions 2..5 of a 1-digit number
    same = per_example_loss({"length": length_logits, "digits": tf.constant(changed)}, labels).numpy()
    np.testing.assert_allclose(base, same, rtol=1e-6)
    changed[0, 1, 7] += 5.0  # a position inside the length does count
    moved = per_example_loss({"length": length_logits, "digits": tf.constant(changed)}, labels).numpy()
    assert moved[0] != pytest.approx(base[0])


def test_loss_is_the_sum_of_head_cross_entropies():
    labels = tf.constant([[2, 3, 7, 10, 10, 10]], tf.int32)
    zeros = {"length": tf.zeros((1, 6)), "digits": tf.zeros((1, 5, 10))}
    # uniform heads: length over 6 classes + 2 digits over 10 classes
    assert per_example_loss(zeros, labels).numpy()[0] == pytest.approx(np.log(6) + 2 * np.log(10), rel=1e-6)


def test_dropout_acts_only_in_training_mode():
    model = build_model(ModelConfig(keep_prob=0.5))
    x = tf.constant(np.random.default_rng(1).normal(size=(8, 32, 32, 1)), tf.float32)
    a = model(x, training=False)["length"].numpy()
    b = model(x, training=False)["length"].numpy()
    c = model(x, training=True)["length"].numpy()
    d = model(x, training=True)["length"].numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(c, d)


def test_heads_follow_max_digits_and_layers_are_named():
    model = build_model(ModelConfig(max_digits=3))
    out = model(tf.zeros((2, 32, 32, 1)), training=False)
    assert out["length"].shape == (2, 4) and out["digits"].shape == (2, 3, 10)
    names = {layer.name for layer in model.layers}
    assert {"conv1", "lrn1", "pool1", "conv3", "fc1", "fc3", "drop1", "length", "digits"} <= names


def test_batch_order_is_a_function_of_seed_and_step():
    a, b = BatchOrder(105, 10, seed=3), BatchOrder(105, 10, seed=3)
    seen = np.concatenate([a.indices(s) for s in range(10)])  # one epoch: 10 full batches
    assert len(np.unique(seen)) == 100  # no row twice within an epoch
    np.testing.assert_array_equal(b.indices(17), a.indices(17))  # any step, any order of asking
    assert not np.array_equal(BatchOrder(105, 10, seed=4).indices(0), a.indices(0))
    with pytest.raises(DataError, match="fewer than one batch"):
        BatchOrder(5, 10, seed=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_continues_exactly(tmp_path, optimizer):
    data = random_data()
    straight = Trainer(tiny_config(30, optimizer=optimizer, every=5), data, tmp_path / "a", log=quiet, progress=False)
    straight.fit()
    # "killed" after 15 steps, then the same command with the full step count
    Trainer(tiny_config(15, optimizer=optimizer, every=5), data, tmp_path / "b", log=quiet, progress=False).fit()
    messages = []
    resumed = Trainer(tiny_config(30, optimizer=optimizer, every=5), data, tmp_path / "b", log=messages.append,
                      progress=False)
    resumed.fit()
    assert any("resumed" in m and "step 15" in m for m in messages)
    for x, y in zip(straight.model.weights, resumed.model.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    steps = [int(r.split(",")[0]) for r in (tmp_path / "b" / "log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 30  # no duplicated or lost log rows


def test_run_writes_everything_the_issue_names(tmp_path):
    result = Trainer(tiny_config(12), random_data(), tmp_path / "run", log=quiet, progress=False).fit()
    run = tmp_path / "run"
    for name in ("metrics.json", "log.csv", "accuracy_vs_steps.png", "model.keras", "model.json", "config.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir()), "TensorBoard event file"
    assert (run / "checkpoints" / "checkpoint").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("sequence_accuracy", "length_accuracy", "digit_accuracy", "coverage_at_98", "per_position_accuracy"):
        assert key in metrics["test"]
    assert result["steps"] == 12


def test_changed_settings_refuse_to_resume(tmp_path):
    Trainer(tiny_config(6), random_data(), tmp_path / "r", log=quiet, progress=False).fit()
    with pytest.raises(TrainingError, match="learning_rate"):
        Trainer(tiny_config(12, learning_rate=0.01), random_data(), tmp_path / "r", log=quiet, progress=False).fit()


def test_other_data_refuses_to_resume(tmp_path):
    Trainer(tiny_config(6), random_data(seed=0), tmp_path / "r", log=quiet, progress=False).fit()
    with pytest.raises(TrainingError, match="trained on other data"):
        Trainer(tiny_config(12), random_data(seed=1), tmp_path / "r", log=quiet, progress=False).fit()


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    with pytest.raises(TrainingError, match="loss became nan|loss became inf"):
        Trainer(tiny_config(30, learning_rate=1e12, every=5), random_data(), tmp_path / "n", log=quiet,
                progress=False).fit()


def test_mismatched_image_size_is_refused(tmp_path):
    with pytest.raises(HousenumError, match="takes 32px inputs but the data holds 16px"):
        Trainer(tiny_config(6), random_data(size=16), tmp_path / "s", log=quiet, progress=False)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _worker_env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}


WORKER = [sys.executable, str(REPO / "tests" / "_train_worker.py")]


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    """The weights of one worker with one replica taking the same global batches: the baseline both
    distribution tests compare to, trained once (they share an xdist group, so one worker holds it). As
    _train_worker.py trains under the default strategy, but in this process: no TensorFlow start-up."""
    from housenum.train import make_strategy

    strategy = make_strategy("default")
    assert strategy.num_replicas_in_sync == 1
    weights = train_tiny(strategy, tmp_path_factory.mktemp("one_worker"))
    return {f"arr_{i}": w for i, w in enumerate(weights)}  # the names np.savez gives the workers' arrays


@pytest.mark.xdist_group("distribution")
def test_two_workers_match_one_worker(tmp_path, one_worker):
    """Two CPU workers on localhost under MultiWorkerMirroredStrategy end with identical weights, equal
    (within float tolerance) to one worker that takes the same global batches."""
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen(WORKER + ["multiworker", str(tmp_path / "mw"), str(tmp_path / f"w{i}.npz")],
                                      env={**_worker_env(), "TF_CONFIG": tf_config}, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
        assert "replicas 2" in out
    w0, w1 = (np.load(tmp_path / f) for f in ("w0.npz", "w1.npz"))
    assert len(w0.files) == len(one_worker) > 10
    for k in w0.files:
        np.testing.assert_array_equal(w0[k], w1[k])
        np.testing.assert_allclose(w0[k], one_worker[k], rtol=1e-4, atol=1e-5)
    assert (tmp_path / "mw" / "model.keras").is_file()  # the chief wrote the model


@pytest.mark.xdist_group("distribution")
def test_two_local_replicas_match_one(tmp_path, one_worker):
    """MirroredStrategy over two logical CPUs (as over two GPUs): each local replica takes its half of
    the global batch, and the result equals one replica's within float tolerance."""
    proc = subprocess.run(WORKER + ["mirrored-2cpu", str(tmp_path / "two"), str(tmp_path / "two.npz")],
                          env=_worker_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "replicas 2" in proc.stdout
    two = np.load(tmp_path / "two.npz")
    assert len(two.files) == len(one_worker) > 10
    for k in one_worker:
        np.testing.assert_allclose(two[k], one_worker[k], rtol=1e-4, atol=1e-5)


def test_resuming_with_fewer_steps_than_done_is_refused_and_files_stay_consistent(tmp_path):
    Trainer(tiny_config(12), random_data(), tmp_path / "r").fit()
    with pytest.raises(TrainingError, match="already trained 12 steps, more than the 6 asked"):
        Trainer(tiny_config(6), random_data(), tmp_path / "r").fit()
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert config["train"]["steps"] == metrics["steps"] == 12


def test_a_run_records_the_data_settings_of_its_data_not_defaults(tmp_path):
    import dataclasses

    data = random_data()
    data.config = dataclasses.replace(data.config, margin=0.6, use_extra=False, valid_size=0.1)
    result = Trainer(tiny_config(6), data, tmp_path / "r").fit()  # tiny_config holds the default DataConfig
    for recorded in (result["config"]["data"], json.loads((tmp_path / "r" / "config.json").read_text())["data"],
                     json.loads((tmp_path / "r" / "model.json").read_text())["config"]["data"]):
        assert (recorded["margin"], recorded["use_extra"], recorded["valid_size"]) == (0.6, False, 0.1)


def test_a_quiet_run_prints_nothing(tmp_path, capsys):
    Trainer(tiny_config(6), random_data(), tmp_path / "q").fit()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_the_report_says_which_step_was_exported(tmp_path):
    result = Trainer(tiny_config(12), random_data(), tmp_path / "r").fit()
    meta = json.loads((tmp_path / "r" / "model.json").read_text())
    assert result["exported_step"] == meta["metrics"]["exported_step"] == 12
    assert meta["metrics"]["best_valid_step"] in (6, 12) and meta["task"] == "sequence"


def test_fresh_workers_never_restore_the_chiefs_old_checkpoint(tmp_path):
    """Under --fresh only the chief deletes the run folder; another worker that found the chief's old
    checkpoint first would resume from it while the chief starts at 0. Workers must start at 0 too."""
    Trainer(tiny_config(6), random_data(), tmp_path / "r").fit()
    messages = []
    worker = Trainer(tiny_config(12), random_data(), tmp_path / "r", log=messages.append)
    worker.chief = False  # as a second worker of a multi-worker run
    worker.fit(fresh=True)
    assert not any("resumed" in m for m in messages)
    assert (tmp_path / "r" / "checkpoints").is_dir()  # a worker deletes nothing of the chief's


def test_training_script_fails_in_one_line_on_bad_data(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"not an HDF5 file")
    for args in (["--data", str(tmp_path / "missing.h5")], ["--data", str(tmp_path / "junk.h5")]):
        proc = subprocess.run([sys.executable, str(REPO / "train_and_test_svhn_data.py"), *args, "--results-dir",
                               str(tmp_path), "--steps", "2"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.xdist_group("small-synthetic")
def test_killed_training_resumes_with_the_same_command(small_synthetic_svhn, tmp_path):
    """SIGKILL the training script after its first checkpoint; the same command resumes from it and
    finishes, losing at most --checkpoint-every steps."""
    import signal
    import time

    cmd = [sys.executable, str(REPO / "train_and_test_svhn_data.py"), "--data", str(small_synthetic_svhn["h5"]),
           "--results-dir", str(tmp_path), "--run-name", "killed", "--steps", "60", "--checkpoint-every", "20",
           "--eval-every", "20", "--whole-photos", "0", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it was killed"
    assert ckpt.exists(), "no checkpoint was written before the kill"
    again = run_script(*cmd[1:])  # the same command, in this process: no second TensorFlow start-up
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stdout + again.stderr
    metrics = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert metrics["steps"] == 60
    steps = [int(r.split(",")[0]) for r in (tmp_path / "killed" / "log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 60

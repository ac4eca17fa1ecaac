"""The training loop: a hand-written `tf.function` step that runs unchanged under any `tf.distribute` strategy.

Why not `model.fit`: Keras 3's fit fails under MultiWorkerMirroredStrategy (keras-team/keras#20585); a
custom loop also lets us control the data order exactly, which is what makes resuming and
multi-worker runs reproducible:

* The order of training examples is a pure function of (seed, step): epoch `e` visits the rows in the
  permutation drawn from `numpy.random.default_rng([seed, e])`, in consecutive global batches. A resumed
  run therefore sees exactly the batches it would have seen, and several workers each take their slice
  of the same global batch, so N workers compute the same gradient as one worker with the same global
  batch.
* A checkpoint holds weights, optimiser state (and so the step: `optimizer.iterations`), the best
  validation accuracy and the resolved configuration; killed at any point, the same command resumes
  from the last checkpoint and loses at most `checkpoint_every` steps.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from housenum import quiet_tf  # noqa: F401,E402  (first: imports TensorFlow without its banner)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from housenum import metrics as M  # noqa: E402
from housenum.config import RunConfig  # noqa: E402
from housenum.errors import DataError, HousenumError  # noqa: E402
from housenum.model import build_model, count_params, kernel_weights  # noqa: E402
from housenum.preprocess import Data  # noqa: E402,F401  (the arrays a Trainer takes)

STRATEGIES = ("default", "mirrored", "multiworker")
# Train settings a resumed run may change: more steps, other eval/checkpoint intervals.
RESUMABLE_CHANGES = ("steps", "eval_every", "checkpoint_every", "eval_batch")
# valid_accuracy / test_accuracy: whole-sequence accuracy for SVHN, class accuracy for letters.
LOG_FIELDS = (
    "step", "loss", "learning_rate", "valid_accuracy", "valid_length_accuracy", "valid_digit_accuracy",
    "test_accuracy", "elapsed_s", "images_per_s",
)


class TrainingError(HousenumError):
    """Training cannot go on (NaN loss, mismatched checkpoint)."""


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The distribution strategy by name. Create it before any other TensorFlow work: multi-worker
    collectives must be set up before the runtime starts."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise HousenumError(
                "--strategy multiworker needs TF_CONFIG (cluster addresses and this worker's task), "
                "e.g. TF_CONFIG='{\"cluster\":{\"worker\":[\"host1:12345\",\"host2:12345\"]},"
                "\"task\":{\"type\":\"worker\",\"index\":0}}'"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise HousenumError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief writes logs, plots and the model; other workers write checkpoints to a scratch dir."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


# --------------------------------------------------------------------------------------------- data order
def steps_per_epoch(n_rows: int, batch: int) -> int:
    return n_rows // batch


class BatchOrder:
    """Global batch indices for any step: epoch e uses permutation default_rng([seed, e])."""

    def __init__(self, n_rows: int, batch: int, seed: int):
        if n_rows < batch:
            raise DataError(f"training set has {n_rows} rows, fewer than one batch of {batch}; lower --batch-size")
        self.n, self.batch, self.seed = n_rows, batch, seed
        self.per_epoch = steps_per_epoch(n_rows, batch)
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> np.ndarray:
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perm[pos * self.batch:(pos + 1) * self.batch]


def make_distributed_dataset(strategy, images: np.ndarray, labels: np.ndarray, batch: int, seed: int,
                             start_step: int, end_step: int):
    """Per-replica batches for steps [start_step, end_step), each replica taking its slice of the global batch.

    Python runs once per epoch (it draws the epoch's permutation and cuts this worker's index rows);
    the per-step work, the gathers of image rows, is TensorFlow ops, so the input pipeline does not
    compete with the training threads for the GIL on a small CPU: fed this way a step costs the same CPU
    as one fed a fixed in-memory batch. The images are copied once into a tensor for the gathers.

    The epochs are a `Dataset.range` mapped through `tf.numpy_function`, not `Dataset.from_generator`:
    creating a from_generator dataset makes TensorFlow set glibc's M_TRIM_THRESHOLD for the whole process
    ("Memory patch applied"), which turns off malloc's adaptive mmap threshold, so the step's large
    buffers are mapped and unmapped every step (about 5x the page faults, ~20 % of the step's time).
    """
    replicas = strategy.num_replicas_in_sync
    if batch % replicas:
        raise HousenumError(f"global batch {batch} must divide evenly among {replicas} replicas")
    per_replica = batch // replicas

    def dataset_fn(ctx: tf.distribute.InputContext):
        workers, worker = ctx.num_input_pipelines, ctx.input_pipeline_id
        local = replicas // workers
        per_epoch = BatchOrder(len(images), batch, seed).per_epoch
        mine = slice(worker * local * per_replica, (worker + 1) * local * per_replica)

        def epoch_rows(epoch):
            # this worker's index rows for the steps of `epoch` that lie in [start_step, end_step); its own
            # BatchOrder, as tf.data may run a stateless map's calls in parallel
            order = BatchOrder(len(images), batch, seed)
            first = max(start_step, int(epoch) * order.per_epoch)
            last = min(end_step, (int(epoch) + 1) * order.per_epoch)
            rows = np.stack([order.indices(s)[mine] for s in range(first, last)])
            # one row per local replica and step, in the order the strategy hands them out;
            # sorted so gathers read memory in order (a batch's gradient ignores row order)
            return np.sort(rows.reshape((last - first) * local, per_replica), axis=1).astype(np.int32)

        x = tf.constant(images)
        y = tf.constant(labels)
        if start_step >= end_step:
            index_rows = tf.data.Dataset.from_tensor_slices(np.zeros((0, per_replica), np.int32))
        else:
            epochs = tf.data.Dataset.range(start_step // per_epoch, (end_step - 1) // per_epoch + 1)
            index_rows = epochs.map(
                lambda e: tf.ensure_shape(tf.numpy_function(epoch_rows, [e], tf.int32, stateful=False),
                                          (None, per_replica))).unbatch()
        return index_rows.map(lambda idx: (tf.gather(x, idx), tf.gather(y, idx))).prefetch(4)

    return strategy.distribute_datasets_from_function(dataset_fn)


# ------------------------------------------------------------------------------------------------ losses
def per_example_loss(outputs: dict, labels: tf.Tensor) -> tf.Tensor:
    """Sum over heads of sparse softmax cross-entropy.

    Digit heads are MASKED past the true length rather than trained on a blank class: the length head
    alone decides how many digits are read, so training the digit heads on blanks would spend most of
    their capacity (3 of 5 positions are blank on average) on a question already answered, and would
    let a blank-predicting head contradict the length head.
    """
    if "class" in outputs:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=outputs["class"])
    length = labels[:, 0]
    digits = labels[:, 1:]
    n_pos = tf.shape(digits)[1]
    mask = tf.cast(tf.range(n_pos)[None, :] < length[:, None], outputs["digits"].dtype)
    safe_digits = tf.where(mask > 0, digits, tf.zeros_like(digits))
    ce_len = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=length, logits=outputs["length"])
    ce_dig = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_digits, logits=outputs["digits"])
    return ce_len + tf.reduce_sum(ce_dig * mask, axis=1)


def make_optimizer(cfg) -> keras.optimizers.Optimizer:
    schedule = keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate, cfg.decay_steps, cfg.decay_rate, staircase=cfg.staircase
    )
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(schedule)
    return keras.optimizers.SGD(schedule, momentum=0.9 if cfg.optimizer == "momentum" else 0.0)


# -------------------------------------------------------------------------------------------- evaluation
def predict_logits(model: keras.Model, images: np.ndarray, batch: int = 1000) -> dict[str, np.ndarray]:
    """Logits for every image, inference mode (dropout off, batch-norm moving averages)."""
    fn = _inference_fn(model)
    parts: dict[str, list] = {}
    for start in range(0, len(images), batch):
        out = fn(tf.constant(images[start:start + batch], tf.float32))
        for k, v in out.items():
            parts.setdefault(k, []).append(v.numpy())
    if not parts:
        return {k: np.zeros((0,) + tuple(o.shape[1:]), np.float32) for k, o in model.output.items()}
    return {k: np.concatenate(v) for k, v in parts.items()}


def _inference_fn(model):
    """One traced inference function per model, for any batch size."""
    fn = getattr(model, "_housenum_infer", None)
    if fn is None:
        spec = tf.TensorSpec((None,) + tuple(model.input.shape[1:]), tf.float32)
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        model._housenum_infer = fn
    return fn


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> dict:
    out = predict_logits(model, images, batch)
    if "class" in out:
        return M.class_metrics(out["class"], labels)
    return M.sequence_metrics(out["length"], out["digits"], labels)


def headline(m: dict) -> float:
    """The one number a run is judged by: whole-sequence accuracy (or class accuracy for letters)."""
    return m["sequence_accuracy"] if "sequence_accuracy" in m else m["accuracy"]


# -------------------------------------------------------------------------------------------------- loop
class Trainer:
    """Trains one configuration into `run_dir` (CSV log, TensorBoard scalars, checkpoints, model, metrics)."""

    def __init__(self, cfg: RunConfig, data: Data, run_dir: Path | str, strategy=None,
                 log: Callable[[str], None] = print, progress: bool = True, test_during: bool = False,
                 restart_hint: str = "use another --run-name or --fresh to start over"):
        self.cfg = cfg.validate()
        self.data = data
        self.run_dir = Path(run_dir)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.log = log
        self.progress = progress
        self.test_during = test_during  # also score the test set at every evaluation (the layer sweep's chart)
        self.restart_hint = restart_hint  # what the user can do when the run folder holds another run
        self.chief = is_chief(self.strategy)
        self._check_data()
        self.fingerprint = data_fingerprint(data)  # stored in checkpoints and metrics; checked on resume

    def _check_data(self):
        x, y = self.data.train
        m = self.cfg.model
        want = (m.image_size, m.image_size, m.channels)
        for split, (xs, ys) in (("train", self.data.train), ("valid", self.data.valid), ("test", self.data.test)):
            if tuple(xs.shape[1:]) != want:
                raise DataError(
                    f"{split} images are {'x'.join(map(str, xs.shape[1:]))} but the model expects "
                    f"{'x'.join(map(str, want))}: preprocess with --image-size {m.image_size} or train with "
                    f"--image-size {xs.shape[1]}"
                )
            if len(xs) != len(ys):
                raise DataError(f"{split} has {len(xs)} images but {len(ys)} labels")
            if not np.isfinite(xs[: min(len(xs), 1000)]).all():
                raise DataError(f"{split} images contain NaN or infinite values: preprocess again")
        if len(x) == 0:
            raise DataError("the training split is empty")

    # ------------------------------------------------------------------------------------- build/restore
    def _build(self):
        tcfg = self.cfg.train
        keras.utils.set_random_seed(tcfg.seed)  # same initial weights on every worker
        with self.strategy.scope():
            self.model = build_model(self.cfg.model)
            self.optimizer = make_optimizer(tcfg)
            self.optimizer.build(self.model.trainable_variables)  # slots exist before a restore
            self.best = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_valid")
        # outside the scope: collectives cannot broadcast strings, and every worker holds the same value
        self.config_var = tf.Variable(self.cfg.to_json(), trainable=False, name="config")
        self.data_var = tf.Variable(json.dumps({"fingerprint": self.fingerprint,
                                                "description": self.data.description}), trainable=False, name="data")
        # Keras 3 objects are only partly visible to tf.train.Checkpoint (non-trainable state such as
        # batch-norm statistics and dropout seed generators would be lost), so every variable is listed
        # explicitly, in the model's own order (resume requires the same settings, hence the same order).
        self.ckpt = tf.train.Checkpoint(
            model_variables=[v.value for v in self.model.variables],
            optimizer_variables=[v.value for v in self.optimizer.variables],
            best=self.best, config=self.config_var, data=self.data_var,
        )
        ckpt_dir = self.run_dir / "checkpoints"
        self._scratch = None
        if not self.chief:  # other workers must save too (collectives), but to a scratch folder
            ckpt_dir = self._scratch = Path(tempfile.mkdtemp(prefix="housenum-worker-ckpt-"))
        self.manager = tf.train.CheckpointManager(self.ckpt, str(ckpt_dir), max_to_keep=2)

    def _restore(self) -> int:
        latest = self.manager.latest_checkpoint
        if latest is None and not self.chief:  # workers resume from the chief's checkpoint
            latest = tf.train.latest_checkpoint(str(self.run_dir / "checkpoints"))
        if latest is None:
            return 0
        reader = tf.train.load_checkpoint(latest)
        stored = json.loads(reader.get_tensor("config/.ATTRIBUTES/VARIABLE_VALUE").decode())
        mine = json.loads(self.cfg.to_json())
        for key in RESUMABLE_CHANGES:  # these change how long or how often, not what is learned
            stored["train"].pop(key, None)
            mine["train"].pop(key, None)
        if stored != mine:
            diff = _dict_diff(stored, mine)
            raise TrainingError(
                f"{self.run_dir} holds a checkpoint of different settings ({diff}); {self.restart_hint}"
            )
        if reader.has_tensor("data/.ATTRIBUTES/VARIABLE_VALUE"):
            was = json.loads(reader.get_tensor("data/.ATTRIBUTES/VARIABLE_VALUE").decode())
            if was["fingerprint"] != self.fingerprint:
                raise TrainingError(
                    f"{self.run_dir} holds a checkpoint trained on other data ({was['description'] or 'unnamed'}); "
                    f"{self.restart_hint}"
                )
        self.ckpt.restore(latest).assert_existing_objects_matched()
        step = int(self.optimizer.iterations.numpy())
        self.log(f"resumed from {latest} at step {step}")
        return step

    # ---------------------------------------------------------------------------------------------- fit
    def fit(self, fresh: bool = False) -> dict:
        tcfg = self.cfg.train
        if fresh and self.chief and self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._build()
        start = self._restore()
        if self.chief:
            (self.run_dir / "config.json").write_text(self.cfg.to_json() + "\n")
            if start == 0:
                self.log(_summary(self.model))
        x_train, y_train = self.data.train
        log = _CsvLog(self.run_dir / "log.csv", start) if self.chief else None
        tb = tf.summary.create_file_writer(str(self.run_dir / "tensorboard")) if self.chief else None
        train_chunk = self._make_train_fn()
        history = log.rows_so_far() if log else []

        if start < tcfg.steps:
            dist = make_distributed_dataset(self.strategy, x_train, y_train, tcfg.batch_size, tcfg.seed,
                                            start, tcfg.steps)
            iterator = iter(dist)
            bar = _progress(start, tcfg.steps, self.progress and self.chief)
            step, t0, seen_t0 = start, time.perf_counter(), start
            done_before = float(history[-1]["elapsed_s"]) if history and history[-1].get("elapsed_s") != "" else 0.0
            log_every = min(100, tcfg.eval_every)
            while step < tcfg.steps:
                # run until the next log / eval / checkpoint boundary inside one tf.function call
                nxt = min(tcfg.steps, _next_multiple(step, log_every), _next_multiple(step, tcfg.eval_every),
                          _next_multiple(step, tcfg.checkpoint_every))
                loss = float(train_chunk(iterator, tf.constant(nxt - step)))
                step = nxt
                bar.update(nxt - bar.n)
                if not math.isfinite(loss):
                    saved = self.manager.latest_checkpoint or "none"
                    raise TrainingError(
                        f"loss became {loss} by step {step} (learning rate {self._lr():.3g}); the last "
                        f"checkpoint ({saved}) is intact; lower --learning-rate or check the data"
                    )
                row = {"step": step, "loss": loss, "learning_rate": self._lr()}
                elapsed = time.perf_counter() - t0
                row["elapsed_s"] = round(done_before + elapsed, 3)  # training time over all sessions
                row["images_per_s"] = round((step - seen_t0) * tcfg.batch_size / max(elapsed, 1e-9), 1)
                if step % tcfg.eval_every == 0 or step == tcfg.steps:
                    vm = evaluate(self.model, *self.data.valid, batch=tcfg.eval_batch) if len(self.data.valid[0]) else None
                    if vm is not None:
                        acc = headline(vm)
                        row["valid_accuracy"] = acc
                        row["valid_length_accuracy"] = vm.get("length_accuracy", "")
                        row["valid_digit_accuracy"] = vm.get("digit_accuracy", "")
                        if acc > self.best.numpy():
                            self.best.assign(acc)
                        if self.test_during and len(self.data.test[0]):
                            row["test_accuracy"] = headline(evaluate(self.model, *self.data.test, batch=tcfg.eval_batch))
                        bar.write(f"step {step:>7}  loss {loss:8.4f}  lr {row['learning_rate']:.4g}  "
                                  f"valid accuracy {acc:.4f}  ({row['images_per_s']:.0f} img/s)")
                if log:
                    log.write(row)
                    history.append(row)
                if tb:
                    with tb.as_default(step=step):
                        for key in ("loss", "learning_rate", "valid_accuracy", "valid_length_accuracy",
                                    "valid_digit_accuracy", "test_accuracy", "images_per_s"):
                            if row.get(key, "") != "":
                                tf.summary.scalar(key, row[key])
                    tb.flush()
                if step % tcfg.checkpoint_every == 0 or step == tcfg.steps:
                    self.manager.save(checkpoint_number=step)
            bar.close()
        result = self._finish(history)
        if log:
            log.close()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return result

    def _make_train_fn(self):
        model, opt, strategy = self.model, self.optimizer, self.strategy
        kernels = kernel_weights(model)
        tcfg = self.cfg.train
        replicas = strategy.num_replicas_in_sync

        def step_fn(x, y):
            with tf.GradientTape() as tape:
                out = model(x, training=True)
                loss = tf.nn.compute_average_loss(per_example_loss(out, y), global_batch_size=tcfg.batch_size)
                if tcfg.l2:
                    # the penalty is added once per replica, so divide by the replica count
                    loss += tcfg.l2 * tf.add_n([tf.nn.l2_loss(w) for w in kernels]) / replicas
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        @tf.function
        def train_chunk(iterator, n):
            total = tf.constant(0.0)
            for _ in tf.range(n):
                per_replica = strategy.run(step_fn, args=next(iterator))
                total += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
            return total / tf.cast(n, tf.float32)

        return train_chunk

    def _lr(self) -> float:
        """The learning rate the optimiser's schedule gives at its current step."""
        return float(self.optimizer.learning_rate)

    # ------------------------------------------------------------------------------------------- finish
    def _finish(self, history: list[dict]) -> dict:
        tcfg = self.cfg.train
        x_test, y_test = self.data.test
        test = evaluate(self.model, x_test, y_test, batch=tcfg.eval_batch) if len(x_test) else {}
        valid = evaluate(self.model, *self.data.valid, batch=tcfg.eval_batch) if len(self.data.valid[0]) else {}
        result = {
            "run_dir": str(self.run_dir),
            "data": self.data.description,
            "steps": int(self.optimizer.iterations.numpy()),
            "train_seconds": float(history[-1]["elapsed_s"]) if history and history[-1].get("elapsed_s") != "" else 0.0,
            "parameters": count_params(self.model),
            "best_valid_accuracy": float(self.best.numpy()),
            "data_fingerprint": self.fingerprint,
            "valid": valid,
            "test": test,
            "replicas": self.strategy.num_replicas_in_sync,
            "config": self.cfg.to_dict(),
        }
        if self.chief:
            from housenum import plots  # matplotlib only when a run finishes

            _write_json(self.run_dir / "metrics.json", result)
            plots.accuracy_vs_steps(history, self.run_dir / "accuracy_vs_steps.png",
                                    title=f"{self.run_dir.name}: validation accuracy")
            export_model(self.model, self.cfg, self.run_dir, result)
        return result


def export_model(model: keras.Model, cfg: RunConfig, run_dir: Path, result: dict | None = None) -> Path:
    """Write `model.keras` (architecture + weights) and `model.json` (settings, preprocessing, metrics):
    everything `predict_real_images.py` needs, nothing it has to guess."""
    path = run_dir / "model.keras"
    tmp = run_dir / "model.tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)
    meta = {"config": cfg.to_dict(), "metrics": {k: (result or {}).get(k) for k in ("test", "valid", "steps", "data")}}
    _write_json(run_dir / "model.json", meta)
    return path


# ------------------------------------------------------------------------------------------------ helpers
def data_fingerprint(data: Data) -> str:
    """A cheap identity of the training data: split shapes, every label and the first images. A run
    resumes only on the data it started with."""
    h = hashlib.sha256()
    for x, y in (data.train, data.valid, data.test):
        h.update(repr((x.shape, str(x.dtype), y.shape, str(y.dtype))).encode())
        h.update(np.ascontiguousarray(y).tobytes())
        h.update(np.ascontiguousarray(x[:64]).tobytes())
    return h.hexdigest()[:20]


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def _dict_diff(a: dict, b: dict, prefix: str = "") -> str:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            sub = _dict_diff(va, vb, f"{prefix}{k}.")
            if sub:
                out.append(sub)
        elif va != vb:
            out.append(f"{prefix}{k}: checkpoint {va} vs now {vb}")
    return "; ".join(out)


def _summary(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda s, **_: lines.append(s))
    return "\n".join(lines)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)


class _CsvLog:
    """Append-only CSV log; on resume, rows past the restored step (work that was lost) are dropped."""

    def __init__(self, path: Path, start_step: int):
        self.path = path
        rows = []
        if path.exists() and start_step > 0:
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= start_step]
        self._rows = rows
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, path)
        self._f = path.open("a", newline="")
        self._w = csv.DictWriter(self._f, LOG_FIELDS, extrasaction="ignore")

    def rows_so_far(self) -> list[dict]:
        return [{k: _num(v) for k, v in r.items()} for r in self._rows]

    def write(self, row: dict) -> None:
        self._w.writerow(row)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _num(v: str):
    try:
        return float(v) if v not in ("", None) else ""
    except ValueError:
        return v


class _NullBar:
    n = 0

    def update(self, k):
        self.n += k

    def write(self, s):
        print(s, flush=True)

    def close(self):
        pass


def _progress(start: int, total: int, enabled: bool):
    if not enabled:
        bar = _NullBar()
        bar.n = start
        return bar
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, leave=True)

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
import dataclasses
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

from housenum.atomic import atomic_path, write_json, write_text  # noqa: E402
from housenum.config import RunConfig  # noqa: E402
from housenum.errors import DataError, HousenumError  # noqa: E402
from housenum.model import build_model, count_params, float32_copy, kernel_weights  # noqa: E402
from housenum.dataset import Data  # noqa: E402  (the arrays a Trainer takes)
from housenum.inference import evaluate, headline  # noqa: E402

STRATEGIES = ("default", "mirrored", "multiworker")
# Train settings a resumed run may change: more steps, other eval/checkpoint intervals, and how fast it
# computes (weights and optimiser state are float32 under every precision, so a run started in
# mixed_float16 on a GPU may go on in float32 on a CPU).
RESUMABLE_CHANGES = ("steps", "eval_every", "checkpoint_every", "eval_batch", "precision", "jit_compile")
LOG_EVERY = 100  # steps between log rows (and between returns from the compiled loop)
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
    from housenum import ctc

    if ctc.OUTPUT in outputs:  # the sequence reader: CTC over the label's digits (housenum.ctc)
        return ctc.ctc_loss(outputs[ctc.OUTPUT], labels)
    length = labels[:, 0]
    digits = labels[:, 1:]
    n_pos = tf.shape(digits)[1]
    mask = tf.cast(tf.range(n_pos)[None, :] < length[:, None], outputs["digits"].dtype)
    safe_digits = tf.where(mask > 0, digits, tf.zeros_like(digits))
    ce_len = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=length, logits=outputs["length"])
    ce_dig = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_digits, logits=outputs["digits"])
    return ce_len + tf.reduce_sum(ce_dig * mask, axis=1)


def make_optimizer(cfg) -> keras.optimizers.Optimizer:
    """The optimiser `cfg` (a TrainConfig) names; under mixed_float16 wrapped in dynamic loss scaling."""
    schedule = keras.optimizers.schedules.ExponentialDecay(
        cfg.learning_rate, cfg.decay_steps, cfg.decay_rate, staircase=cfg.staircase
    )
    if cfg.optimizer == "adam":
        opt = keras.optimizers.Adam(schedule)
    else:
        opt = keras.optimizers.SGD(schedule, momentum=0.9 if cfg.optimizer == "momentum" else 0.0)
    return StepCountingLossScaleOptimizer(opt) if cfg.precision == "mixed_float16" else opt


class StepCountingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Keras's dynamic loss scaling (float16 gradients below ~6e-8 would flush to zero: the loss is scaled
    up before the backward pass and the gradients down after; a step whose gradients overflowed is
    skipped and the scale halved), except that a skipped step still counts in `iterations`: the training
    loop reads its step from there, and the data order, resume and the reported step count follow it."""

    def _stateful_handle_non_finite_grads(self):
        super()._stateful_handle_non_finite_grads()
        self.inner_optimizer.iterations.assign_add(1)


def loss_scale_variables(opt) -> list:
    """The loss scale's own state (empty without loss scaling), checkpointed apart from the inner
    optimiser's so that checkpoints of any precision restore into any other."""
    if isinstance(opt, keras.optimizers.LossScaleOptimizer):
        return [opt.step_counter, opt.dynamic_scale]
    return []


def fall_back_without_gpu(cfg: RunConfig, log: Callable[[str], None], gpus: list | None = None) -> RunConfig:
    """`cfg` with mixed_float16 swapped for float32 where no GPU is visible (`gpus`: the visible GPUs,
    found when None), saying so on one line: CPUs have no fast float16 arithmetic (README "Mixed
    precision and XLA"), so the GPU preset also runs, at float32 speed, on a machine without one."""
    if cfg.train.precision != "mixed_float16":
        return cfg
    if gpus is None:
        gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return cfg
    xla = "; XLA stays on as asked (--no-xla trains faster on a CPU)" if cfg.train.jit_compile else ""
    log(f"no GPU visible: training in float32 instead of mixed_float16 (float16 is slower than float32 on a CPU){xla}")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision="float32"))


# -------------------------------------------------------------------------------------------------- loop
class RunFolderError(TrainingError):
    """The run folder holds another run (other settings or data): the caller decides what to suggest."""


class Trainer:
    """Trains one configuration into `run_dir` (CSV log, TensorBoard scalars, checkpoints, model, metrics).

    The data's own settings (`data.config`, read from the preprocessed file) replace whatever
    `cfg.data` held, so a run records the settings its data was really made with. `log` receives the
    lines a person may want to see (None: a quiet run prints nothing); `progress` draws a progress bar.
    """

    def __init__(self, cfg: RunConfig, data: Data, run_dir: Path | str, strategy=None,
                 log: Callable[[str], None] | None = None, progress: bool = False, test_during: bool = False):
        self.log = log or (lambda _: None)
        self.cfg = fall_back_without_gpu(dataclasses.replace(cfg, data=data.config).validate(), self.log)
        self.data = data
        self.run_dir = Path(run_dir)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.progress = progress
        self.test_during = test_during  # also score the test set at every evaluation (the layer sweep's chart)
        self.chief = is_chief(self.strategy)
        self._check_data()
        self.fingerprint = data_fingerprint(data)  # stored in checkpoints and metrics; checked on resume

    def _check_data(self):
        m = self.cfg.model
        want = m.input_shape
        for split, (xs, ys) in (("train", self.data.train), ("valid", self.data.valid), ("test", self.data.test)):
            if tuple(xs.shape[1:]) != want:
                raise DataError(f"{split} images are {'x'.join(map(str, xs.shape[1:]))} but the model expects "
                                f"{'x'.join(map(str, want))}")
            if len(xs) != len(ys):
                raise DataError(f"{split} has {len(xs)} images but {len(ys)} labels")
            if not np.isfinite(xs[: min(len(xs), 1000)]).all():
                raise DataError(f"{split} images contain NaN or infinite values: preprocess again")
        if len(self.data.train[0]) == 0:
            raise DataError("the training split is empty")

    # ---------------------------------------------------------------------------------------------- fit
    def fit(self, fresh: bool = False) -> dict:
        """Train to `cfg.train.steps` (resuming from the run folder's checkpoint unless `fresh`), then
        evaluate, export and return the result (also written to metrics.json)."""
        start = self._prepare(fresh)
        steps = self.cfg.train.steps
        if start < steps:
            clock = _Clock(start, self.cfg.train.batch_size, self.runlog.elapsed_before())
            bar = _progress(start, steps, self.progress and self.chief)
            for step, loss in self._train_chunks(start):
                bar.update(step - bar.n)
                self._stop_if_not_finite(loss, step)
                row = {"step": step, "loss": loss, "learning_rate": self._lr(), **clock.times(step)}
                if _due(step, self.cfg.train.eval_every, steps):
                    row.update(self._evaluation(step))
                    bar.write(_progress_line(row), self.log)
                self.runlog.record(row)
                if _due(step, self.cfg.train.checkpoint_every, steps):
                    self.manager.save(checkpoint_number=step)
            bar.close()
        try:
            return self._finish()
        finally:
            self.runlog.close()
            if self._scratch:
                shutil.rmtree(self._scratch, ignore_errors=True)

    def _prepare(self, fresh: bool) -> int:
        """Folder, model, optimiser and checkpoint; returns the step training continues from."""
        if fresh and self.chief and self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._build()
        # Under --fresh no worker restores: otherwise a worker could read the chief's old checkpoint
        # before the chief has deleted it, and the workers would start from different steps.
        start = 0 if fresh else self._restore()
        if self.chief:
            write_text(self.run_dir / "config.json", self.cfg.to_json() + "\n")
            if start == 0:
                self.log(_summary(self.model))
        self.runlog = _RunLog(self.run_dir, start, enabled=self.chief)
        return start

    def _build(self):
        tcfg = self.cfg.train
        keras.utils.set_random_seed(tcfg.seed)  # same initial weights on every worker
        with self.strategy.scope():
            self.model = build_model(self.cfg.model, precision=tcfg.precision)
            if tcfg.jit_compile:
                _check_xla(self.model)
            self.optimizer = make_optimizer(tcfg)
            self.optimizer.build(self.model.trainable_variables)  # slots exist before a restore
            self.best = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_valid")
            self.best_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_valid_step")
        # outside the scope: collectives cannot broadcast strings, and every worker holds the same value
        self.config_var = tf.Variable(self.cfg.to_json(), trainable=False, name="config")
        self.data_var = tf.Variable(json.dumps({"fingerprint": self.fingerprint,
                                                "description": self.data.description}), trainable=False, name="data")
        # Keras 3 objects are only partly visible to tf.train.Checkpoint (non-trainable state such as
        # batch-norm statistics and dropout seed generators would be lost), so every variable is listed
        # explicitly, in the model's own order (resume requires the same settings, hence the same order).
        # The inner optimiser's variables only (the same list in every precision); the loss scale's,
        # present under mixed_float16 only, go apart, so a run may resume in another precision.
        inner = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        self._ckpt_parts = dict(
            model_variables=[v.value for v in self.model.variables],
            optimizer_variables=[v.value for v in inner.variables],
            best=self.best, best_step=self.best_step, config=self.config_var, data=self.data_var,
        )
        if loss_scale_variables(self.optimizer):
            self._ckpt_parts["loss_scale"] = [v.value for v in loss_scale_variables(self.optimizer)]
        self.ckpt = tf.train.Checkpoint(**self._ckpt_parts)
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
        # through RunConfig, so settings added since (new fields at their defaults) compare equal
        stored_cfg = RunConfig.from_dict(json.loads(reader.get_tensor("config/.ATTRIBUTES/VARIABLE_VALUE").decode()))
        stored = stored_cfg.to_dict()
        stored = json.loads(json.dumps(stored))  # tuples as lists, as `mine` holds them
        mine = json.loads(self.cfg.to_json())
        for key in RESUMABLE_CHANGES:  # these change how long or how often, not what is learned
            stored["train"].pop(key, None)
            mine["train"].pop(key, None)
        if stored != mine:
            raise RunFolderError(f"{self.run_dir} holds a checkpoint of different settings ({_dict_diff(stored, mine)})")
        if reader.has_tensor("data/.ATTRIBUTES/VARIABLE_VALUE"):
            was = json.loads(reader.get_tensor("data/.ATTRIBUTES/VARIABLE_VALUE").decode())
            if was["fingerprint"] != self.fingerprint:
                raise RunFolderError(f"{self.run_dir} holds a checkpoint trained on other data "
                                     f"({was['description'] or 'unnamed'})")
        parts = dict(self._ckpt_parts)
        if not any(k.startswith("loss_scale/") for k in reader.get_variable_to_shape_map()):
            parts.pop("loss_scale", None)  # saved without loss scaling: the scale starts afresh
        tf.train.Checkpoint(**parts).restore(latest).assert_existing_objects_matched()
        step = int(self.optimizer.iterations.numpy())
        if step > self.cfg.train.steps:
            # refused rather than reported as shorter: config.json and metrics.json would disagree
            raise RunFolderError(f"{self.run_dir} has already trained {step:,} steps, more than the "
                                 f"{self.cfg.train.steps:,} asked; ask for {step:,} or more to continue")
        was = stored_cfg.train
        speed = "" if (was.precision, was.jit_compile) == (self.cfg.train.precision, self.cfg.train.jit_compile) else (
            f" (the checkpoint trained in {_speed(was)}, this session in {_speed(self.cfg.train)})")
        self.log(f"resumed from {latest} at step {step}{speed}")
        return step

    # ------------------------------------------------------------------------------------ loop pieces
    def _train_chunks(self, start: int):
        """Yield (step, mean loss) after each compiled call, which runs up to the next boundary where a
        log row, an evaluation or a checkpoint is due (one Python round trip per boundary, not per step)."""
        tcfg = self.cfg.train
        x_train, y_train = self.data.train
        batches = iter(make_distributed_dataset(self.strategy, x_train, y_train, tcfg.batch_size, tcfg.seed,
                                                start, tcfg.steps))
        train_chunk = self._make_train_fn()
        log_every = min(LOG_EVERY, tcfg.eval_every)
        step = start
        while step < tcfg.steps:
            nxt = min(tcfg.steps, _next_multiple(step, log_every), _next_multiple(step, tcfg.eval_every),
                      _next_multiple(step, tcfg.checkpoint_every))
            loss = float(train_chunk(batches, tf.constant(nxt - step)))
            step = nxt
            yield step, loss

    def _stop_if_not_finite(self, loss: float, step: int) -> None:
        if not math.isfinite(loss):
            saved = self.manager.latest_checkpoint or "none"
            raise TrainingError(f"loss became {loss} by step {step} (learning rate {self._lr():.3g}); the last "
                                f"checkpoint ({saved}) is intact; lower the learning rate or check the data")

    def _evaluation(self, step: int) -> dict:
        """Validation scores for the log (and test scores when `test_during`); tracks the best step."""
        if not len(self.data.valid[0]):
            return {}
        vm = evaluate(self.model, *self.data.valid, batch=self.cfg.train.eval_batch)
        acc = headline(vm)
        row = {"valid_accuracy": acc, "valid_length_accuracy": vm.get("length_accuracy", ""),
               "valid_digit_accuracy": vm.get("digit_accuracy", "")}
        if acc > self.best.numpy():
            self.best.assign(acc)
            self.best_step.assign(step)
        if self.test_during and len(self.data.test[0]):
            row["test_accuracy"] = headline(evaluate(self.model, *self.data.test, batch=self.cfg.train.eval_batch))
        return row

    def _make_train_fn(self):
        model, opt, strategy = self.model, self.optimizer, self.strategy
        kernels = kernel_weights(model)
        tcfg = self.cfg.train
        replicas = strategy.num_replicas_in_sync

        scaled = isinstance(opt, keras.optimizers.LossScaleOptimizer)

        # XLA compiles the step alone: the loop around it reads the tf.data iterator, which XLA cannot
        @tf.function(jit_compile=tcfg.jit_compile)
        def step_fn(x, y):
            with tf.GradientTape() as tape:
                out = model(x, training=True)  # float32 logits in every precision (model.OUTPUT_DTYPE)
                loss = tf.nn.compute_average_loss(per_example_loss(out, y), global_batch_size=tcfg.batch_size)
                if tcfg.l2:
                    # the penalty is added once per replica, so divide by the replica count
                    loss += tcfg.l2 * tf.add_n([tf.nn.l2_loss(w) for w in kernels]) / replicas
                # float16: gradients of the scaled loss, which the optimiser divides back before applying
                target = opt.scale_loss(loss) if scaled else loss
            grads = tape.gradient(target, model.trainable_variables)
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
    def _finish(self) -> dict:
        batch = self.cfg.train.eval_batch
        step = int(self.optimizer.iterations.numpy())
        # the model exported and scored computes in float32, whatever the training precision
        model = float32_copy(self.model, self.cfg.model)
        test = evaluate(model, *self.data.test, batch=batch) if len(self.data.test[0]) else {}
        valid = evaluate(model, *self.data.valid, batch=batch) if len(self.data.valid[0]) else {}
        result = {
            "run_dir": str(self.run_dir),
            "data": self.data.description,
            "steps": step,
            "train_seconds": self.runlog.elapsed_before(),
            "parameters": count_params(self.model),
            "best_valid_accuracy": float(self.best.numpy()),
            "best_valid_step": int(self.best_step.numpy()),
            # the model exported (and scored under "test") is the last step's, not the best one's:
            # under a decaying rate they rarely differ much, and the last is what resume continues
            "exported_step": step,
            "data_fingerprint": self.fingerprint,
            "valid": valid,
            "test": test,
            "replicas": self.strategy.num_replicas_in_sync,
            "config": self.cfg.to_dict(),
        }
        if self.chief:
            from housenum import plots  # matplotlib only when a run finishes

            write_json(self.run_dir / "metrics.json", result)
            plots.accuracy_vs_steps(self.runlog.history, self.run_dir / "accuracy_vs_steps.png",
                                    title=f"{self.run_dir.name}: validation accuracy")
            export_model(model, self.cfg, self.run_dir, result)
        return result


def export_model(model: keras.Model, cfg: RunConfig, run_dir: Path, result: dict | None = None,
                 extra: dict | None = None) -> Path:
    """Write `model.keras` (architecture + weights) and `model.json` (settings, preprocessing, metrics,
    and `extra`'s entries): everything `predict_real_images.py` needs, nothing it has to guess."""
    path = run_dir / "model.keras"
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
    result = result or {}
    # readings below this confidence are answered "no number found": chosen on validation data so that
    # the answered ones are 98 % right (Goodfellow et al.'s operating point)
    threshold = (result.get("valid") or {}).get("threshold_at_98")
    meta = {"task": cfg.model.task, "config": cfg.to_dict(), "abstain_threshold": threshold,
            "metrics": {k: result.get(k) for k in ("test", "valid", "steps", "exported_step", "best_valid_step",
                                                   "data")}, **(extra or {})}
    write_json(run_dir / "model.json", meta)
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


def _due(step: int, every: int, last: int) -> bool:
    return step % every == 0 or step == last


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


def _check_xla(model: keras.Model) -> None:
    """A one-line error before training where a layer cannot run under XLA (Keras marks them: the
    random shift, zoom and rotation, whose image transform has no XLA kernel, and a GRU that takes
    cuDNN's path on a GPU)."""
    layers = [layer.name for layer in model._flatten_layers(include_self=False) if not layer.supports_jit]
    if layers:
        raise TrainingError(f"XLA cannot compile layer(s) {', '.join(layers)} of this network; train without "
                            f"--xla (jit_compile), or turn them off (--augment 0 --augment-zoom 0 --augment-rotate 0 for "
                            f"shift, zoom, rotation)")


def _speed(t) -> str:
    """A TrainConfig's precision and XLA setting, in words."""
    return t.precision + (" with XLA" if t.jit_compile else "")


def _summary(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda s, **_: lines.append(s))
    return "\n".join(lines)


def _progress_line(row: dict) -> str:
    text = f"step {row['step']:>7}  loss {row['loss']:8.4f}  lr {row['learning_rate']:.4g}"
    if row.get("valid_accuracy", "") != "":
        text += f"  valid accuracy {row['valid_accuracy']:.4f}"
    return text + f"  ({row['images_per_s']:.0f} img/s)"


class _Clock:
    """Training time over all sessions of a run, and the images/s of this session."""

    def __init__(self, start_step: int, batch: int, done_before: float):
        self.start, self.batch, self.before, self.t0 = start_step, batch, done_before, time.perf_counter()

    def times(self, step: int) -> dict:
        elapsed = time.perf_counter() - self.t0
        return {"elapsed_s": round(self.before + elapsed, 3),
                "images_per_s": round((step - self.start) * self.batch / max(elapsed, 1e-9), 1)}


class _RunLog:
    """The run's log.csv (append-only) and TensorBoard scalars, written together row by row. On resume,
    CSV rows past the restored step (work that was lost) are dropped. Disabled on non-chief workers."""

    def __init__(self, run_dir: Path, start_step: int, enabled: bool = True):
        self.history: list[dict] = []
        self._f = self._tb = None
        if not enabled:
            return
        path = run_dir / "log.csv"
        rows = []
        if path.exists() and start_step > 0:
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= start_step]
        with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)
        self.history = [{k: _num(v) for k, v in r.items()} for r in rows]
        self._f = path.open("a", newline="")
        self._w = csv.DictWriter(self._f, LOG_FIELDS, extrasaction="ignore")
        self._tb = tf.summary.create_file_writer(str(run_dir / "tensorboard"))

    def elapsed_before(self) -> float:
        """Training seconds logged so far (earlier sessions included)."""
        last = self.history[-1].get("elapsed_s", "") if self.history else ""
        return float(last) if last != "" else 0.0

    def record(self, row: dict) -> None:
        if self._f is None:
            return
        self._w.writerow(row)
        self._f.flush()
        self.history.append(row)
        with self._tb.as_default(step=row["step"]):
            for key in LOG_FIELDS[1:]:
                if key != "elapsed_s" and row.get(key, "") != "":
                    tf.summary.scalar(key, row[key])
        self._tb.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._tb.close()
            self._f = None


def _num(v: str):
    try:
        return float(v) if v not in ("", None) else ""
    except ValueError:
        return v


class _NullBar:
    n = 0

    def update(self, k):
        self.n += k

    def write(self, s, log):
        log(s)

    def close(self):
        pass


class _Bar:
    """tqdm, with evaluation lines written above the bar."""

    def __init__(self, start: int, total: int):
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, leave=True)

    @property
    def n(self):
        return self._bar.n

    def update(self, k):
        self._bar.update(k)

    def write(self, s, log):
        self._bar.write(s)

    def close(self):
        self._bar.close()


def _progress(start: int, total: int, enabled: bool):
    if not enabled:
        bar = _NullBar()
        bar.n = start
        return bar
    return _Bar(start, total)

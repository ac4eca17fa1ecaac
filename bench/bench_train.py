"""Benchmark: training throughput (ours vs a TF1-style graph of the study's network) and prediction latency.

1. Training, images/s, same network, batch and random data (--images seeded 32x32 images, valid labels):
   * ours: the project's real training path, `Trainer`'s compiled chunk (the function `_make_train_fn()`
     returns, a tf.function looping over steps under the default tf.distribute strategy) fed by the
     tf.data pipeline `make_distributed_dataset` builds, called in chunks of at most 100 steps with the
     loss read back after each, as `Trainer.fit` does. Tracing and --warmup steps are run first and not
     timed; evaluation, logging and checkpoints (fit's work between chunks) are not timed either.
   * TF1-style: the same seed network written as in the study's era (tf.compat.v1 graph, placeholders +
     feed_dict, one Session.run per step, GradientDescentOptimizer, batches sliced at
     (step * batch) % (N - batch)), in a separate process so that disable_eager_execution cannot leak.
     Both start from the same initial weights; the initial loss of each (dropout off) is printed as a
     check that the two networks are the same. The TF1 process stays up and the two alternate run by run
     (AB BA AB ...), so that load from other jobs on a shared machine falls on both alike.
   With --precision and --xla (comma-separated lists: `--precision float32,mixed_bfloat16 --xla off,on`)
   ours runs once per combination (TrainConfig.precision, TrainConfig.jit_compile), the variants
   alternating run by run as the two implementations do; TF1-style then runs only beside plain float32.
   mixed_float16 is timed as asked, though Trainer itself swaps it for float32 where no GPU is visible.
   Best of --repeat timed runs of --steps steps each; wall-clock images/s plus CPU ms per image (all
   threads of the process), which other jobs distort less than wall-clock time.
   The % fp32 peak column: images/s x the network's training FLOPs per image (conv + dense layers,
   forward + backward: 27.6 M for the seed network) over the CPU's theoretical fp32 peak, cores x GHz x
   FLOPs/cycle from the CPU flags (see `cpu_peak`; --ghz and --flops-per-cycle override).
2. A real run (--part run): `train_and_test_svhn_data.py` as a user runs it, on --run-images synthetic
   SVHN-format photos made and preprocessed by steps 1 and 2 (`download_and_extract.py --synthetic`,
   `preprocess_svhn.py --valid-size 0.1`), --run-steps steps with the preset's evaluation and checkpoint
   intervals: the wall time of the whole command and the training images/s from its log.csv. With
   --compare-repo DIR the same command from another checkout (an older commit) alternates with ours.
3. (--part lrn only) The seed network's three LRN layers alone, forward + backward: TensorFlow's kernel,
   the band-matrix formulation under autodiff, and the layer's band matrix with its hand-written gradient.
4. Reading photos end to end, ms per photo after the models are loaded, as predict_real_images.py reads
   them (decode in JPEG draft mode, finder, crop, reader, abstain rule): the shipped reader and finder
   (or --model / --finder) on --photos JPEGs of random sizes between 100x50 and 1600x1200, one
   4000x3000 JPEG (a 12-megapixel phone photo) and the real SVHN PNGs of the mirror's matlab/ folder:
   batched, one photo at a time (wall and CPU), and the 12-megapixel JPEG alone (target: under 100 ms).

Prints figures only; asserts nothing about speed. The default run takes about 4-5 minutes on 2 cores.

  .venv/bin/python bench/bench_train.py                                # all three parts, seed network
  .venv/bin/python bench/bench_train.py --part train --steps 500 --repeat 5
  .venv/bin/python bench/bench_train.py --part train --preset improved # ours only (TF1 mirrors the seed net)
  .venv/bin/python bench/bench_train.py --part train --precision float32,mixed_bfloat16 --xla off,on
  .venv/bin/python bench/bench_train.py --part predict --photos 128
  .venv/bin/python bench/bench_train.py --part lrn                     # the 3 LRN layers alone, 3 ways
  .venv/bin/python bench/bench_train.py --part run --run-steps 2000 --run-data /tmp/synth3000
  git worktree add /tmp/before HEAD~5 && .venv/bin/python bench/bench_train.py --part run --compare-repo /tmp/before
  .venv/bin/python bench/bench_train.py --threads 1                    # one intra-op thread in both
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum.cli import make_parser, run  # noqa: E402
from housenum.config import BLANK, PRESETS, preset, seed_network  # noqa: E402
from housenum.errors import DataError, HousenumError  # noqa: E402

DEFAULT_MIRROR = REPO.parent / "shared" / "data" / "svhn"
FIT_CHUNK = 100  # Trainer.fit runs at most min(100, eval_every) steps per tf.function call
PHOTO_MIN, PHOTO_MAX = (100, 50), (1600, 1200)  # random photo sizes (width, height), inclusive
BIG_PHOTO_TARGET_MS = 100.0  # issue 9: a 12-megapixel JPEG end to end, after the models are loaded


# --------------------------------------------------------------------------------------------- machine
def machine_lines() -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {cpu}, nproc {os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}",
        f"load average (1, 5, 15 min) at start: {load}",
    ]


def cpu_peak(cores: int | None = None, ghz: float | None = None, per_cycle: int | None = None) -> tuple[float, str]:
    """(fp32 FLOP/s, how it was reckoned): cores x GHz x fp32 FLOPs per cycle per core, the usual
    theoretical peak (every cycle a fused multiply-add on every lane of every FMA unit; no turbo).

    FLOPs per cycle per core from the /proc/cpuinfo flags, 2 FLOPs per FMA lane:
      avx512f, Intel: two 512-bit FMA units -> 2 x 16 lanes x 2 = 64 (Xeon Gold/Platinum; Silver/Bronze
                      have one unit, 32: pass --flops-per-cycle 32 there)
      avx512f, AMD (Zen 4): 512-bit FMAs on two 256-bit FMA pipes -> 2 x 8 x 2 = 32
      avx2 + fma: two 256-bit FMA units -> 32;   avx: 8-lane add + mul -> 16;   otherwise 8 (SSE)
    GHz: the first "cpu MHz" in /proc/cpuinfo (the base clock under a hypervisor; turbo not counted)."""
    info = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    flags, vendor, mhz = set(), "", None
    for line in info.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = set(value.split())
        elif key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "cpu MHz" and mhz is None:
            mhz = float(value)
    notes = []
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if ghz is None:
        ghz = (mhz or 0.0) / 1000
        notes.append("GHz from /proc/cpuinfo")
    if not ghz:
        return 0.0, "unknown clock (pass --ghz)"
    if per_cycle is None:
        if "avx512f" in flags:
            per_cycle, why = (32, "avx512f on AMD: two 256-bit FMA pipes") if "AMD" in vendor else \
                (64, "avx512f on Intel: two 512-bit FMA units")
        elif {"avx2", "fma"} <= flags:
            per_cycle, why = 32, "avx2+fma: two 256-bit FMA units"
        elif "avx" in flags:
            per_cycle, why = 16, "avx, no FMA"
        else:
            per_cycle, why = 8, "SSE"
        notes.append(why)
    peak = cores * ghz * 1e9 * per_cycle
    return peak, (f"{cores} cores x {ghz:.2f} GHz x {per_cycle} fp32 FLOPs/cycle = {peak / 1e9:.0f} GFLOP/s"
                  + (f" ({'; '.join(notes)})" if notes else ""))


def flops_per_image(model) -> float:
    """Training FLOPs per image of the conv and dense layers: the forward pass's (`forward_flops`, 2 per
    multiply-add) times 3 for forward, input gradient and weight gradient (the usual estimate; LRN,
    pooling, activations and the optimiser are left out, and the first layer's unneeded input gradient
    is counted). The seed network: 27.6 M."""
    from housenum.model import forward_flops

    return 3.0 * forward_flops(model)


def minor_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def load_now() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def threads_text(intra: int, inter: int) -> str:
    def one(n):
        return f"{n}" if n else f"0 (TensorFlow default: one per core, {os.cpu_count()})"
    return f"intra-op {one(intra)}, inter-op {one(inter)}"


# ------------------------------------------------------------------------------------------------ data
def make_data(n: int, seed: int, size: int = 32, max_digits: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random standardised images and valid labels [length 1..max_digits, digits, BLANK past it].

    Both implementations call this with the same arguments (the TF1 one in its own process), so they train
    on identical arrays without passing 80 MB between processes."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, size, size, 1), dtype=np.float32)
    lengths = rng.integers(1, max_digits + 1, n)
    digits = rng.integers(0, 10, (n, max_digits))
    past = np.arange(max_digits)[None, :] >= lengths[:, None]
    labels = np.concatenate([lengths[:, None], np.where(past, BLANK, digits)], axis=1).astype(np.int32)
    return images, labels


# -------------------------------------------------------------------------------------------- ours
def speed_variants(precisions: str, xla: str) -> list[tuple[str, bool]]:
    """(precision, jit_compile) pairs from --precision and --xla, each validated as TrainConfig does."""
    from housenum.config import TrainConfig

    switch = {"off": False, "on": True}
    xlas = []
    for word in xla.split(","):
        if word not in switch:
            raise HousenumError(f"--xla takes off, on or off,on; got {word!r}")
        xlas.append(switch[word])
    out = [(p, x) for p in precisions.split(",") for x in xlas]
    for p, x in out:
        dataclasses.replace(TrainConfig(), precision=p, jit_compile=x).validate()
    return out


def set_threads(intra: int, inter: int) -> None:
    """Must run before TensorFlow's runtime starts (the first op)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)


class Ours:
    """The project's training path, ready to time: Trainer's compiled chunk on its own input pipeline.

    Building also writes the initial weights to work/initial_weights.npz and computes the initial loss
    (dropout off, first batch), so that the TF1 graph can start from the same weights and show the same loss."""

    def __init__(self, cfg, images, labels, total_steps: int, work: Path, progress: bool, variant: str = ""):
        import tensorflow as tf

        from housenum.model import count_params, kernel_weights
        from housenum.dataset import Data
        from housenum.train import Trainer, make_distributed_dataset, per_example_loss

        self.tf, self.progress = tf, progress
        self.name = f"ours{variant} (Trainer chunk + tf.data)" if not variant else f"ours{variant}"
        self.short = f"ours{variant}"
        empty = (images[:0], labels[:0])
        trainer = Trainer(cfg, Data((images, labels), empty, empty, "bench random data"),
                          work / f"ours_{cfg.train.precision}_{cfg.train.jit_compile}")
        # timed as asked: Trainer swaps mixed_float16 for float32 without a GPU, the bench shows why
        trainer.cfg = dataclasses.replace(trainer.cfg, train=cfg.train)
        trainer._build()  # model, optimiser and checkpoint objects exactly as fit() makes them
        model = trainer.model
        np.savez(work / "initial_weights.npz", **{v.path: v.numpy() for v in model.trainable_variables})
        batch = cfg.train.batch_size
        out = model(tf.constant(images[:batch]), training=False)
        l2 = cfg.train.l2 * tf.add_n([tf.nn.l2_loss(w) for w in kernel_weights(model)])
        self.initial_loss = float(tf.reduce_mean(per_example_loss(out, tf.constant(labels[:batch]))) + l2)
        self.params = count_params(model)
        self.flops = flops_per_image(model)
        self.trainer = trainer
        self.chunk_fn = trainer._make_train_fn()
        self.chunk = min(FIT_CHUNK, cfg.train.eval_every)
        dist = make_distributed_dataset(trainer.strategy, images, labels, batch, cfg.train.seed, 0, total_steps)
        self.iterator = iter(dist)

    def run(self, steps: int, label: str) -> tuple[float, float, float, int]:
        """(wall s, CPU s, last loss, minor page faults) of `steps` steps, called as fit calls them."""
        from tqdm import tqdm

        loss = float("nan")
        with tqdm(total=steps, desc=label, unit="step", disable=not self.progress, leave=False) as bar:
            t0, c0, f0 = time.perf_counter(), time.process_time(), minor_faults()
            n = steps
            while n > 0:
                k = min(self.chunk, n)
                # reading the loss back waits for the chunk to finish, as fit does after every chunk
                loss = float(self.chunk_fn(self.iterator, self.tf.constant(k)))
                n -= k
                bar.update(k)
            return time.perf_counter() - t0, time.process_time() - c0, loss, minor_faults() - f0

    def close(self) -> None:
        self.iterator = None  # a live tf.data iterator with a Python function inside can stall interpreter exit


# ------------------------------------------------------------------------------------------ TF1-style
_REPLY = "@@bench-tf1 "  # marks the worker's replies on its stdout


class TF1:
    """The study-era implementation in a long-lived subprocess, driven run by run over its stdin/stdout, so
    that its timed runs can alternate with ours."""

    name, short = "TF1-style (Session + feed_dict)", "TF1"

    def __init__(self, args, work: Path, weights: Path | None):
        spec = {
            "images": args.images, "seed": args.seed, "batch": args.batch_size, "intra": args.threads,
            "inter": args.inter_threads, "progress": not args.no_progress,
            "weights": str(weights) if weights else None,
        }
        spec_path = work / "tf1_spec.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--tf1-worker", str(spec_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        ready = self._reply()
        self.params, self.initial_loss = ready["params"], ready.get("initial_loss")

    def _send(self, msg: dict) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def _reply(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(_REPLY):
                return json.loads(line[len(_REPLY):])
            print(line, end="")  # anything else the worker printed
        status = self.proc.wait()
        raise HousenumError(f"the TF1-style subprocess stopped (exit status {status}); its output is above")

    def run(self, steps: int, label: str) -> tuple[float, float, float, int]:
        r = self._send({"steps": steps, "label": label})
        return r["wall"], r["cpu"], r["loss"], r["faults"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # end of input: the worker exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def tf1_worker(spec_path: str) -> int:
    """The study-era implementation, in its own process (`--tf1-worker SPEC.json`): builds the graph, replies
    "ready", then runs the steps each line of stdin asks for and replies with their timing."""
    spec = json.loads(Path(spec_path).read_text())
    from housenum import quiet_tf  # noqa: F401  (TensorFlow without its banner)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # v1 deprecation notices are expected here
    v1 = tf.compat.v1
    v1.disable_eager_execution()
    images, labels = make_data(spec["images"], spec["seed"])
    batch, n = spec["batch"], len(images)
    image_size, depths, patch, fc_units, max_digits = 32, (16, 32, 64), 4, (128, 64, 16), 5

    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(spec["seed"])
        x = v1.placeholder(tf.float32, (None, image_size, image_size, 1), name="x")
        y = v1.placeholder(tf.int32, (None, 1 + max_digits), name="y")
        keep_prob = v1.placeholder_with_default(1.0, (), name="keep_prob")
        xavier = v1.glorot_uniform_initializer(seed=spec["seed"])
        zeros = v1.zeros_initializer()
        kernels = []

        def layer(name, shape):
            w = v1.get_variable(f"{name}/kernel", shape, initializer=xavier)
            b = v1.get_variable(f"{name}/bias", shape[-1:], initializer=zeros)
            kernels.append(w)
            return w, b

        h, depth_in = x, 1
        for i, depth in enumerate(depths, start=1):
            w, b = layer(f"conv{i}", [patch, patch, depth_in, depth])
            h = tf.nn.relu(tf.nn.conv2d(h, w, strides=[1, 1, 1, 1], padding="SAME") + b)
            h = tf.nn.local_response_normalization(h, depth_radius=5, bias=1.0, alpha=0.1, beta=0.75)
            h = v1.nn.max_pool(h, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
            depth_in = depth
        shape = h.get_shape().as_list()
        units_in = shape[1] * shape[2] * shape[3]
        h = tf.reshape(h, [-1, units_in])
        for i, units in enumerate(fc_units, start=1):
            w, b = layer(f"fc{i}", [units_in, units])
            h = v1.nn.dropout(tf.nn.relu(tf.matmul(h, w) + b), rate=1.0 - keep_prob)
            units_in = units
        w, b = layer("length", [units_in, max_digits + 1])
        length_logits = tf.matmul(h, w) + b
        # the era's five hand-written digit heads, as separate weight matrices
        digit_heads = [layer(f"digit{i}", [units_in, 10]) for i in range(1, max_digits + 1)]

        length = y[:, 0]
        per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=length, logits=length_logits)
        for i, (w, b) in enumerate(digit_heads):
            mask = length > i  # no loss past the number's length
            target = tf.where(mask, y[:, 1 + i], tf.zeros_like(length))
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=tf.matmul(h, w) + b)
            per_example += ce * tf.cast(mask, tf.float32)
        loss = tf.reduce_mean(per_example) + 5e-4 * tf.add_n([tf.nn.l2_loss(k) for k in kernels])
        global_step = tf.Variable(0, trainable=False, name="global_step")
        learning_rate = v1.train.exponential_decay(0.05, global_step, 1000, 0.98)
        optimizer = v1.train.GradientDescentOptimizer(learning_rate).minimize(loss, global_step=global_step)
        params = int(sum(np.prod(v.get_shape().as_list()) for v in v1.trainable_variables()))
        init = v1.global_variables_initializer()

    def reply(msg: dict) -> None:
        sys.stdout.write(_REPLY + json.dumps(msg) + "\n")
        sys.stdout.flush()

    config = v1.ConfigProto(intra_op_parallelism_threads=spec["intra"], inter_op_parallelism_threads=spec["inter"])
    ready = {"params": params}
    with v1.Session(graph=graph, config=config) as session:
        session.run(init)
        if spec.get("weights"):
            _load_keras_weights(session, graph, spec["weights"], max_digits)
            ready["initial_loss"] = float(session.run(loss, {x: images[:batch], y: labels[:batch]}))
        reply(ready)
        step = 0
        for line in sys.stdin:
            ask = json.loads(line)
            value = float("nan")
            bar = _bar(ask["steps"], ask["label"], spec["progress"])
            t0, c0, f0 = time.perf_counter(), time.process_time(), minor_faults()
            for i in range(ask["steps"]):
                offset = (step * batch) % (n - batch)  # the study-era batch walk
                feed = {x: images[offset:offset + batch], y: labels[offset:offset + batch], keep_prob: 0.8}
                _, value = session.run([optimizer, loss], feed_dict=feed)
                step += 1
                if i % 10 == 9:
                    bar.update(10)
            wall, cpu, faults = time.perf_counter() - t0, time.process_time() - c0, minor_faults() - f0
            bar.close()
            reply({"wall": wall, "cpu": cpu, "loss": float(value), "step": int(session.run(global_step)),
                   "faults": faults})
    return 0


def _load_keras_weights(session, graph, path: str, max_digits: int) -> None:
    """Start from the Keras model's initial weights; its one (16, 50) digit layer becomes five (16, 10) heads."""
    stored = dict(np.load(path))
    by_name = {v.op.name: v for v in graph.get_collection("variables")}
    for name, value in stored.items():
        if name.startswith("digits/"):
            kind = name.split("/")[1]
            for i in range(max_digits):
                by_name[f"digit{i + 1}/{kind}"].load(value[..., i * 10:(i + 1) * 10], session)
        elif name in by_name:
            by_name[name].load(value, session)
        else:
            raise HousenumError(f"TF1 graph has no variable for Keras weight {name!r}; has {sorted(by_name)}")


# -------------------------------------------------------------------------------------------- training
def train_part(args) -> None:
    cfg = preset(args.preset)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=args.batch_size))
    cfg.validate()
    # the TF1 graph is the study's network and optimiser, nothing else
    study = seed_network()
    same_train = all(getattr(cfg.train, k) == getattr(study.train, k)
                     for k in ("optimizer", "learning_rate", "decay_rate", "decay_steps", "staircase", "l2"))
    variants = speed_variants(args.precision, args.xla)
    with_tf1 = cfg.model == study.model and same_train and variants == [("float32", False)]
    if args.images < args.batch_size + 1:
        raise DataError(f"--images must exceed --batch-size ({args.batch_size}), got {args.images}")
    print(f"\n== training throughput: preset {args.preset}, batch {args.batch_size}, {args.images:,} random "
          f"32x32 images (seed {args.seed}), {args.steps} timed steps x best of {args.repeat}, {args.warmup} "
          f"warm-up steps; threads {threads_text(args.threads, args.inter_threads)}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    impls: list = []
    try:
        images, labels = make_data(args.images, args.seed)
        for precision, xla in variants:
            vcfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision, jit_compile=xla))
            label = "" if len(variants) == 1 and not xla and precision == "float32" else (
                f" {precision}" + (" + XLA" if xla else ""))
            impls.append(Ours(vcfg, images, labels, args.warmup + args.repeat * args.steps, work,
                              not args.no_progress, label))
        ours = impls[0]
        if with_tf1:
            impls.append(TF1(args, work, work / "initial_weights.npz"))
        elif variants != [("float32", False)]:
            print("TF1-style: skipped (it runs beside plain float32 only)")
        else:
            print(f"TF1-style: skipped (it mirrors the seed network and SGD schedule; preset {args.preset} differs)")
        warmup_s = {}
        for impl in impls:  # tracing, first-use allocations, the input pipeline's prefetch
            warmup_s[impl.name] = impl.run(args.warmup, f"{impl.short} warm-up")[0]
        runs: dict[str, list] = {impl.name: [] for impl in impls}
        loads: dict[str, list] = {impl.name: [] for impl in impls}
        for r in range(args.repeat):
            # alternate the order (AB BA AB ...) so that other jobs' load falls on both alike
            for impl in (impls if r % 2 == 0 else impls[::-1]):
                runs[impl.name].append(impl.run(args.steps, f"{impl.short} run {r + 1}/{args.repeat}"))
                loads[impl.name].append(os.getloadavg()[0])
        images_timed = args.steps * args.batch_size
        peak, peak_text = cpu_peak(ghz=args.ghz, per_cycle=args.flops_per_cycle)
        width = max(32, *(len(impl.name) + 1 for impl in impls))
        print(f"\n{'implementation':<{width}} {'images/s':>9} {'ms/step':>8} {'CPU ms/img':>11} {'% fp32 peak':>11} "
              f"{'faults/step':>11} {'all runs img/s':>22} {'warm-up s':>9} {'load':>5}")
        best_ips, best_cpu = {}, {}
        for impl in impls:
            ips = [images_timed / wall for wall, _, _, _ in runs[impl.name]]
            best_ips[impl.name] = max(ips)
            best_cpu[impl.name] = min(cpu for _, cpu, _, _ in runs[impl.name]) / images_timed
            faults = np.median([f for _, _, _, f in runs[impl.name]]) / args.steps
            share = f"{100 * max(ips) * ours.flops / peak:.1f}" if peak else "?"
            print(f"{impl.name:<{width}} {max(ips):>9.0f} {1000 * images_timed / max(ips) / args.steps:>8.2f} "
                  f"{1000 * best_cpu[impl.name]:>11.3f} {share:>11} {faults:>11.0f} "
                  f"{' '.join(f'{v:.0f}' for v in ips):>22} "
                  f"{warmup_s[impl.name]:>9.1f} {np.mean(loads[impl.name]):>5.2f}")
        if with_tf1:
            a, b = (impl.name for impl in impls)
            print(f"ratio ours / TF1: {best_ips[a] / best_ips[b]:.2f}x images/s (best runs); CPU time per image "
                  f"ours / TF1: {best_cpu[a] / best_cpu[b]:.2f}x (below 1: ours is cheaper)")
            print(f"same network check: {ours.params:,} vs {impls[1].params:,} trainable parameters; initial loss "
                  f"from the same weights, dropout off, first batch: ours {ours.initial_loss:.5f}, TF1 "
                  f"{impls[1].initial_loss:.5f}")
        else:
            print(f"ours: {ours.params:,} trainable parameters")
            for impl in impls[1:]:
                print(f"{impl.name} / {ours.name}: {best_ips[impl.name] / best_ips[ours.name]:.2f}x images/s, "
                      f"{best_cpu[impl.name] / best_cpu[ours.name]:.2f}x CPU time per image")
        note = (f"timed: ours = steady-state steps of the tf.function from Trainer._make_train_fn() fed by "
                f"make_distributed_dataset, {min(ours.chunk, args.steps)} steps per call with the loss read back "
                f"after each (as fit does); tracing, warm-up, evaluation, logging and checkpoints not timed.")
        if with_tf1:
            note += (" TF1 = one Session.run per step (train op + loss) with feed_dict slices, in a subprocess; "
                     "graph building and warm-up not timed. The two alternate run by run.")
        print(note + " CPU ms/img counts all threads of the process; load = 1-minute load average after each "
              "implementation's runs, averaged (2 = both cores busy).")
        print("faults/step: minor page faults of the process per step (median run); thousands per step mean the "
              "allocator maps and unmaps the step's large buffers every step.")
        print(f"% fp32 peak: images/s x {ours.flops / 1e6:.1f} MFLOP per image (conv + dense, forward + backward) "
              f"over the CPU's fp32 peak, {peak_text}.")
    finally:
        for impl in impls:
            impl.close()
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- LRN
def lrn_part(args) -> None:
    """The seed network's three LRN layers alone, forward + backward at --batch-size: TensorFlow's kernel
    against the band-matrix formulation with autodiff and with its hand-written gradient (the layer's)."""
    import tensorflow as tf

    from housenum.model import _neg_power, local_response_norm, lrn_band

    def tf_kernel(x, r, bias, alpha, beta):
        return tf.nn.local_response_normalization(x, r, bias, alpha, beta)

    def band_autodiff(x, r, bias, alpha, beta):
        channels = x.shape[-1]
        flat = tf.reshape(x, (-1, channels))
        n = bias + alpha * tf.matmul(tf.square(flat), lrn_band(channels, r))
        return tf.reshape(flat * _neg_power(n, beta), tf.shape(x))

    m = seed_network().model
    rng = np.random.default_rng(args.seed)
    shapes, side = [], m.image_size
    for depth in m.conv_depths:
        shapes.append((args.batch_size, side, side, depth))
        side = (side + 1) // 2
    xs = [tf.constant(np.maximum(rng.standard_normal(s, dtype=np.float32), 0)) for s in shapes]  # after ReLU
    gs = [tf.constant(rng.standard_normal(s, dtype=np.float32)) for s in shapes]
    print(f"\n== LRN alone: the seed network's 3 LRN layers {', '.join('x'.join(map(str, s)) for s in shapes)}, "
          f"forward + backward, best of {args.repeat} x 20 calls; load before {load_now()}")
    for fn, what in ((tf_kernel, "tf.nn.local_response_normalization"), (band_autodiff, "band matrix, autodiff"),
                     (local_response_norm, "band matrix, hand-written gradient (ours)")):
        @tf.function
        def step():
            total = tf.constant(0.0)
            for x, g in zip(xs, gs):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = fn(x, m.lrn_radius, m.lrn_bias, m.lrn_alpha, m.lrn_beta)
                total += tf.reduce_sum(tape.gradient(y, x, output_gradients=g)) + tf.reduce_sum(y)
            return total

        step()
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for _ in range(20):
                step().numpy()
            best = min(best, (time.perf_counter() - t0) / 20)
        print(f"{what:<44} {1000 * best:>8.2f} ms per step")


# ------------------------------------------------------------------------------------------- real run
def synthetic_h5(folder: Path, count: int, seed: int, progress: bool) -> Path:
    """Synthetic SVHN-format photos, preprocessed as a user would (steps 1 and 2); reused when present."""
    h5 = folder / "svhn_32x32.h5"
    if h5.exists():
        return h5
    quiet = [] if progress else ["--no-progress"]
    for cmd in (["download_and_extract.py", "--synthetic", str(count), "--datasets", "svhn", "--data-dir",
                 str(folder), "--seed", str(seed)],
                ["preprocess_svhn.py", "--data-dir", str(folder), "--results-dir", str(folder / "r"),
                 "--valid-size", "0.1"]):
        done = subprocess.run([sys.executable, str(REPO / cmd[0]), *cmd[1:], *quiet], capture_output=True, text=True)
        if done.returncode:
            raise HousenumError(f"{cmd[0]} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return h5


def real_run_part(args) -> None:
    """`train_and_test_svhn_data.py` as a user runs it, on synthetic data, evaluation and checkpoints
    included; with --compare-repo, the same command from another checkout, alternating run by run."""
    cfg = preset(args.preset)
    batch = cfg.train.batch_size
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    data_dir = Path(args.run_data) if args.run_data else work / "data"
    repos = [("this checkout", REPO)]
    if args.compare_repo:
        other = Path(args.compare_repo).resolve()
        if not (other / "train_and_test_svhn_data.py").exists():
            raise DataError(f"--compare-repo {other}: no train_and_test_svhn_data.py there")
        repos.append((f"--compare-repo {other.name}", other))
    try:
        t0 = time.perf_counter()
        h5 = synthetic_h5(data_dir, args.run_images, args.seed, not args.no_progress)
        made = time.perf_counter() - t0
        print(f"\n== real run: train_and_test_svhn_data.py --preset {args.preset} --steps {args.run_steps} on "
              f"{args.run_images:,} synthetic photos ({h5}, {'reused' if made < 1 else f'made in {made:.0f} s'}; "
              f"--valid-size 0.1), eval every {cfg.train.eval_every} and checkpoint every "
              f"{cfg.train.checkpoint_every} steps (the defaults), x {args.run_repeat}; load before {load_now()}",
              flush=True)
        runs: dict[str, list] = {name: [] for name, _ in repos}
        for r in range(args.run_repeat):
            for name, repo in (repos if r % 2 == 0 else repos[::-1]):
                run_dir = work / "runs" / f"{len(runs[name])}_{repo.name}"
                cmd = [sys.executable, str(repo / "train_and_test_svhn_data.py"), "--preset", args.preset,
                       "--data", str(h5), "--results-dir", str(run_dir.parent), "--run-name", run_dir.name,
                       "--steps", str(args.run_steps), "--seed", str(args.seed), "--no-progress", "--fresh"]
                t0 = time.perf_counter()
                done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
                wall = time.perf_counter() - t0
                if done.returncode:
                    raise HousenumError(f"{' '.join(cmd)} failed (exit {done.returncode}): "
                                        f"{done.stderr.strip()[-500:]}")
                with (run_dir / "log.csv").open() as f:
                    last = list(csv.DictReader(f))[-1]
                runs[name].append((wall, float(last["elapsed_s"]), int(last["step"]), os.getloadavg()[0]))
        peak, peak_text = cpu_peak(ghz=args.ghz, per_cycle=args.flops_per_cycle)
        from housenum.model import build_model

        flops = flops_per_image(build_model(cfg.model))
        print(f"{'command from':<34} {'wall s':>7} {'end-to-end img/s':>16} {'training img/s':>14} "
              f"{'% fp32 peak':>11} {'load':>5}")
        for name, _ in repos:
            for wall, elapsed, steps, load in runs[name]:
                train_ips = steps * batch / elapsed
                print(f"{name:<34} {wall:>7.1f} {steps * batch / wall:>16.0f} {train_ips:>14.0f} "
                      f"{100 * train_ips * flops / peak if peak else float('nan'):>11.1f} {load:>5.2f}")
        print("wall s = the whole command (Python and TensorFlow start-up, loading the data, tracing, training, "
              "evaluation, checkpoints, the final test evaluation, plots and export); end-to-end img/s = training "
              "images / wall s; training img/s = from log.csv (steps x batch / elapsed_s of the last row: the "
              f"training loop with its evaluations and checkpoints). % fp32 peak: training img/s x "
              f"{flops / 1e6:.1f} MFLOP per image over {peak_text}.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------- prediction
def write_photos(folder: Path, count: int, seed: int) -> list[Path]:
    """JPEGs of random sizes with photo-like content (smooth shapes plus sensor-like noise), which decode
    at a realistic cost: pure noise would be unusually expensive, flat colour unusually cheap."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        w = int(rng.integers(PHOTO_MIN[0], PHOTO_MAX[0] + 1))
        h = int(rng.integers(PHOTO_MIN[1], PHOTO_MAX[1] + 1))
        coarse = rng.integers(0, 256, (max(2, h // 40), max(2, w // 40), 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.int16)
        noisy = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:03d}_{w}x{h}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(path)
    return paths


def predict_part(args) -> None:
    """Reading photos end to end, as predict_real_images.py does: decode (JPEG draft mode), find, crop,
    read, abstain. With the shipped reader and finder (or --model / --finder); the speed does not depend
    on how well they were trained, only on their size."""
    from housenum import quiet_tf  # noqa: F401
    from PIL import Image
    from tqdm import tqdm

    from housenum.finder import Finder
    from housenum.predict import PhotoReader, Reader, find_finder, find_model, load_photo, read_photos

    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    try:
        t0 = time.perf_counter()
        finder_path = args.finder or find_finder(work / "none")
        photo_reader = PhotoReader(Reader(args.model or find_model(work / "none")),
                                   Finder(finder_path) if finder_path else None)
        load_model_s = time.perf_counter() - t0
        photo_dir = work / "photos"
        photo_dir.mkdir()
        photos = write_photos(photo_dir, args.photos, args.seed)
        big = photo_dir / "phone_4000x3000.jpg"  # a 12-megapixel phone photo
        big_image = Image.open(photos[0]).resize((4000, 3000), Image.BICUBIC)
        big_image.save(big, quality=92)
        # the same photo as PNG and as HEIC (iPhones' format): no draft decoding, all 12 megapixels decoded
        from housenum.finder import heif_opener

        formats = {"PNG": work / "phone_4000x3000.png"}
        big_image.save(formats["PNG"])
        if heif_opener():
            formats["HEIC"] = work / "phone_4000x3000.heic"
            big_image.save(formats["HEIC"], quality=90)
        # the slowest path: nothing found at the first look, so the finder also looks at its tiles
        blank = work / "wall_4000x3000.jpg"
        wall = np.random.default_rng(args.seed).normal(128, 30, (300, 400)).clip(0, 255).astype(np.uint8)
        Image.fromarray(wall).resize((4000, 3000), Image.BICUBIC).save(blank, quality=92)
        real = sorted(Path(args.mirror).glob("matlab/*/[1-3].png")) if args.mirror else []
        paths = photos + [big] + real
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"\n== reading photos end to end: {photo_reader.describe()}; loaded in {load_model_s:.2f} s; "
              f"{len(photos)} JPEGs {PHOTO_MIN[0]}x{PHOTO_MIN[1]}..{PHOTO_MAX[0]}x{PHOTO_MAX[1]} + one 4000x3000 "
              f"JPEG + {len(real)} real SVHN PNGs ({mb:.1f} MB); threads "
              f"{threads_text(args.threads, args.inter_threads)}; load before {load_now()}")
        read_photos(photo_reader, paths[:2], batch=args.predict_batch)  # traces the networks (any batch size)
        read_photos(photo_reader, paths[:1], batch=1)
        n = len(paths)
        batched, loading = [], []
        for _ in tqdm(range(args.repeat), desc="batched reads", disable=args.no_progress, leave=False):
            t0 = time.perf_counter()
            readings = read_photos(photo_reader, paths, batch=args.predict_batch)
            batched.append(time.perf_counter() - t0)
            failed = [r for r in readings if r.error]
            if failed:
                raise HousenumError(f"{failed[0].path}: {failed[0].error} ({len(failed)} photos failed)")
            t0 = time.perf_counter()
            for p in paths:
                load_photo(p)
            loading.append(time.perf_counter() - t0)
        single, single_cpu = [], []
        for p in tqdm(paths, desc="one photo at a time", disable=args.no_progress, leave=False):
            c0, t0 = time.process_time(), time.perf_counter()
            read_photos(photo_reader, [p], batch=1)
            single.append(time.perf_counter() - t0)
            single_cpu.append(time.process_time() - c0)
        single_ms = 1000 * np.array(single)
        big_runs, blank_runs = [], []
        for _ in range(max(5, args.repeat)):
            t0 = time.perf_counter()
            read_photos(photo_reader, [big], batch=1)
            big_runs.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            blank_read = read_photos(photo_reader, [blank], batch=1)[0]
            blank_runs.append(1000 * (time.perf_counter() - t0))

        format_runs = {}
        for name, path in formats.items():
            format_runs[name] = []
            for _ in range(max(5, args.repeat)):
                t0 = time.perf_counter()
                read = read_photos(photo_reader, [path], batch=1)[0]
                format_runs[name].append(1000 * (time.perf_counter() - t0))
            if read.error:
                raise HousenumError(f"{path}: {read.error}")

        def ms(seconds):
            return 1000 * seconds / n

        print(f"{'what':<52} {'ms/photo':>9}")
        print(f"{f'read_photos, {n} photos in batches of {args.predict_batch} (best of {args.repeat})':<52} "
              f"{ms(min(batched)):>9.2f}")
        print(f"{'  of which decoding (load_photo, JPEG draft mode)':<52} {ms(min(loading)):>9.2f}")
        print(f"{'one photo at a time (batch of 1): median':<52} {np.median(single_ms):>9.2f}")
        print(f"{'  90th percentile / max':<52} {np.percentile(single_ms, 90):>9.2f} / {single_ms.max():.2f}")
        print(f"{'  CPU ms per photo (all threads), median':<52} {1000 * np.median(single_cpu):>9.2f}")
        print(f"{'the 12-megapixel JPEG, file to reading: median':<52} {np.median(big_runs):>9.2f} "
              f"(min {min(big_runs):.2f}, {len(big_runs)} runs)")
        print(f"{'  one without a number (second look at tiles): median':<52} {np.median(blank_runs):>9.2f} "
              f"(min {min(blank_runs):.2f}; read: {blank_read.answer()})")
        for name, runs in format_runs.items():
            print(f"{f'  the same photo as {name}: median':<52} {np.median(runs):>9.2f} (min {min(runs):.2f})")
        verdict = "met" if max(np.median(big_runs), np.median(blank_runs)) < BIG_PHOTO_TARGET_MS else "NOT met"
        print(f"target < {BIG_PHOTO_TARGET_MS:.0f} ms for a 12-megapixel JPEG on 2 CPU cores: {verdict} here "
              f"(nproc {os.cpu_count()}, load after {load_now()})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pixels(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:  # reads the header only
        return im.width * im.height


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, leave=False)


# ------------------------------------------------------------------------------------------------ main
def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--part", choices=("all", "train", "run", "lrn", "predict"), default="all",
                        help="what to measure: train = ours vs TF1 step loop, run = train_and_test_svhn_data.py as a "
                             "user runs it, lrn = the LRN layers alone, predict = latency")
    parser.add_argument("--steps", type=int, default=300, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=50, help="untimed steps first (tracing, caches, prefetch)")
    parser.add_argument("--batch-size", type=int, default=100, help="training batch (both implementations)")
    parser.add_argument("--preset", default="seed", choices=sorted(k for k in PRESETS if preset(k).model.input_shape == (32, 32, 1)),
                        help="network preset for ours (TF1-style runs only for the seed network)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported")
    parser.add_argument("--precision", default="float32",
                        help="ours computes in each of these (comma-separated: float32, mixed_bfloat16, mixed_float16)")
    parser.add_argument("--xla", default="off", help="XLA-compile ours' step: off, on, or off,on for both")
    parser.add_argument("--images", type=int, default=20000, help="random training images (seeded)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, weights and photos")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads in both (0: TF default)")
    parser.add_argument("--inter-threads", type=int, default=0, help="TensorFlow inter-op threads (0: TF default)")
    parser.add_argument("--photos", type=int, default=64, help="random-size JPEGs to read")
    parser.add_argument("--predict-batch", type=int, default=64, help="batch for batched prediction")
    parser.add_argument("--model", default=None, help="reader for --part predict (default: as predict_real_images.py)")
    parser.add_argument("--finder", default=None, help="finder for --part predict (default: as predict_real_images.py)")
    parser.add_argument("--mirror", default=str(DEFAULT_MIRROR),
                        help="SVHN mirror folder; its matlab/*/[1-3].png are read too ('' for none)")
    parser.add_argument("--run-steps", type=int, default=1000, help="steps of each real run (--part run)")
    parser.add_argument("--run-images", type=int, default=3000, help="synthetic photos for the real run")
    parser.add_argument("--run-repeat", type=int, default=2, help="real runs (of each checkout)")
    parser.add_argument("--run-data", default="",
                        help="folder for the real run's synthetic data, kept and reused ('': a temporary one)")
    parser.add_argument("--compare-repo", default="",
                        help="another checkout whose train_and_test_svhn_data.py runs alternately with ours, "
                             "e.g. an older commit from `git worktree add /tmp/old <rev>` (--part run)")
    parser.add_argument("--ghz", type=float, default=None, help="clock for the fp32 peak (none: /proc/cpuinfo)")
    parser.add_argument("--flops-per-cycle", type=int, default=None,
                        help="fp32 FLOPs per cycle per core for the peak (none: from the CPU flags)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--tf1-worker", metavar="SPEC", help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.tf1_worker:
        return tf1_worker(args.tf1_worker)
    for name in ("steps", "warmup", "batch_size", "repeat", "images", "predict_batch", "run_steps", "run_images",
                 "run_repeat"):
        if getattr(args, name) < 1:
            raise DataError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    for name in ("threads", "inter_threads", "photos"):
        if getattr(args, name) < 0:
            raise DataError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name)}")

    started = time.perf_counter()
    print("\n".join(machine_lines()))
    from housenum import quiet_tf  # noqa: F401
    import tensorflow as tf

    set_threads(args.threads, args.inter_threads)
    print(f"TensorFlow {tf.__version__}, default tf.distribute strategy, CPU only")
    if args.part in ("all", "train"):
        train_part(args)
    if args.part in ("all", "run"):
        real_run_part(args)
    if args.part == "lrn":
        lrn_part(args)
    if args.part in ("all", "predict"):
        predict_part(args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average now "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    run(main)

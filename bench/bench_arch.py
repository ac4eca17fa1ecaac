#!/usr/bin/env python3
"""Benchmark: the architectures (seed, improved, deep, goodfellow, ctc) on the same data for the same wall-clock budget.

Each preset trains through `Trainer` (the loop every run uses) on a preprocessed file of the input size it
needs, for about --budget-s seconds of training: a short calibration run measures its training images/s,
and the real run gets the steps that rate fills the budget with (evaluation and checkpoints only at the
end, so the budget goes to training), resumed with more steps while it has used less than 95 % of it.
Reported: whole-sequence accuracy on the file's test split and coverage at 98 %; the same split's whole
photos (<data-dir>/svhn/test, read through --finder with every photo answered, as the crops are scored);
the mirror's ten real photos read right (crops and whole, as bench/compare_readers.py); training images/s
of the real run, parameters, forward-pass FLOPs per image (inference at the
preset's input size: `housenum.model.forward_flops`, 2 per multiply-add of the conv, dense and GRU layers),
steps and seconds; written to --out as JSON. `--sizes-only` prints parameters and FLOPs without training.

  .venv/bin/python download_and_extract.py --synthetic 5000 --datasets svhn --data-dir /tmp/arch_syn --seed 0
  .venv/bin/python preprocess_svhn.py --data-dir /tmp/arch_syn --valid-size 0.1 --results-dir /tmp/arch_syn/r32
  .venv/bin/python preprocess_svhn.py --data-dir /tmp/arch_syn --valid-size 0.1 --image-size 64 --results-dir /tmp/arch_syn/r64
  .venv/bin/python preprocess_svhn.py --data-dir /tmp/arch_syn --valid-size 0.1 --image-width 96 --results-dir /tmp/arch_syn/r96
  .venv/bin/python bench/bench_arch.py --data-dir /tmp/arch_syn --budget-s 300
  .venv/bin/python bench/bench_arch.py --sizes-only                      # parameters and FLOPs, no data

Prints figures only; asserts nothing. The data file of each preset is <data-dir>/svhn_<W>x<H>.h5 at the
preset's input size. Timings depend on the machine's load: note it beside the figures.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from housenum import cli  # noqa: E402
from housenum.config import preset  # noqa: E402
from housenum.errors import DataError  # noqa: E402

ARCH_PRESETS = ("seed", "improved", "deep", "goodfellow", "ctc")


def data_file(data_dir: Path, name: str) -> Path:
    h, w, _ = preset(name).model.input_shape
    return data_dir / f"svhn_{w}x{h}.h5"


def sizes(name: str) -> dict:
    """Parameters and forward FLOPs per image of a preset's network at its own input size."""
    from housenum.model import build_model, count_params, forward_flops

    m = preset(name).model
    model = build_model(m)
    return {"preset": name, "input": "x".join(map(str, m.input_shape[:2])), "parameters": count_params(model),
            "forward_flops": forward_flops(model)}


def run_one(name: str, data_dir: Path, work: Path, budget_s: float, calibrate_steps: int,
            finder: Path | None = None, real: list = (), whole_photos: int = 300) -> dict:
    from housenum.dataset import Data, load_svhn
    from housenum.train import Trainer

    path = data_file(data_dir, name)
    if not path.is_file():
        raise DataError(f"no {path}: preprocess at the input size --preset {name} needs (see --help)")
    data = load_svhn(path)
    base = preset(name)
    cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, image_size=data.config.image_size,
                                                              image_width=data.config.image_width,
                                                              max_digits=data.config.max_digits),
                              data=data.config)

    def train(steps: int, folder: str, every: int, data: Data, fresh: bool = True) -> Trainer:
        c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps, eval_every=every,
                                                              checkpoint_every=steps))
        t = Trainer(c, data, work / folder)
        t.result = t.fit(fresh=fresh)
        return t

    # two log rows: the rate between them leaves out the first chunk's tracing
    # (and a few evaluation rows only: the goodfellow network takes a minute to score the full splits)
    few = Data(data.train, tuple(a[:50] for a in data.valid), tuple(a[:50] for a in data.test), data.description,
               data.config, data.source)
    first, second = train(2 * calibrate_steps, f"{name}_calibrate", calibrate_steps, few).runlog.history[-2:]
    rate = calibrate_steps * cfg.train.batch_size / (second["elapsed_s"] - first["elapsed_s"])
    steps = max(calibrate_steps, int(budget_s * rate / cfg.train.batch_size))
    t0 = time.perf_counter()
    run = train(steps, name, steps, data)
    # a short calibration misjudges the steady rate (warm-up, load): resume the run with the steps its own
    # rate says are left, until at least 95 % of the budget is spent
    while run.result["train_seconds"] < 0.95 * budget_s:
        done, seconds = run.result["steps"], run.result["train_seconds"]
        steps = done + max(1, int((budget_s - seconds) * done / seconds))
        run = train(steps, name, steps, data, fresh=False)
    r, test = run.result, run.result["test"]
    from housenum.model import forward_flops

    return {"preset": name, "input": "x".join(map(str, cfg.model.input_shape[:2])), "parameters": r["parameters"],
            "forward_flops": forward_flops(run.model), "steps": steps, "train_seconds": r["train_seconds"], "wall_seconds": round(time.perf_counter() - t0, 1),
            "train_images_per_s": round(steps * cfg.train.batch_size / r["train_seconds"], 1),
            "calibrated_images_per_s": round(rate, 1), "test_sequence_accuracy": test["sequence_accuracy"],
            "test_length_accuracy": test["length_accuracy"], "coverage_at_98": test["coverage_at_98"],
            "test_rows": test["n"], "data": data.description, **read_photos(work / name, data_dir, finder, real, whole_photos)}


def read_photos(run_dir: Path, data_dir: Path, finder: Path | None, real: list, whole_photos: int) -> dict:
    """The trained reader as users use it: the test split's whole photos (finder, framings, abstain rule;
    --whole-photos of them) and the mirror's real photos, crops and whole (as bench/compare_readers.py)."""
    if finder is None:
        return {}
    from bench.compare_readers import read_real_ours
    from housenum.finder import Finder
    from housenum.photo_eval import whole_photo_metrics
    from housenum.predict import PhotoReader, Reader

    out = {}
    test_dir = data_dir / "svhn" / "test"
    if whole_photos and test_dir.is_dir():
        m = whole_photo_metrics(PhotoReader(Reader(run_dir), Finder(finder)), test_dir, whole_photos, negatives=0)
        out["whole_sequence_accuracy"] = m["sequence_accuracy_all_answered"]
        out["whole_photos"] = m["n"]
    if real:
        out.update(read_real_ours(run_dir / "model.keras", real, finder))
        out["real_photos"] = len(real)
    return out


def main(argv=None) -> int:
    p = cli.make_parser(__doc__)
    p.add_argument("--data-dir", default="/tmp/arch_syn", help="folder holding svhn_<W>x<H>.h5 per input size")
    p.add_argument("--presets", default=",".join(ARCH_PRESETS), help="comma-separated presets to compare")
    p.add_argument("--budget-s", type=float, default=300, help="training seconds per preset")
    p.add_argument("--calibrate-steps", type=cli.positive_int, default=5,
                   help="the calibration runs 2x this many steps and times the second half")
    p.add_argument("--work-dir", default="/tmp/bench_arch", help="run folders go here")
    p.add_argument("--out", default="/tmp/bench_arch/results.json", help="the figures as JSON")
    p.add_argument("--finder", default=str(Path(__file__).resolve().parents[1] / "models" / "finder"),
                   help="finder for the whole-photo columns ('' : no whole or real photos)")
    p.add_argument("--whole-photos", type=int, default=300,
                   help="whole test photos (<data-dir>/svhn/test, every photo answered) read per preset")
    p.add_argument("--mirror", default=os.environ.get("HOUSENUM_MIRROR", str(Path(__file__).resolve().parents[2] / "shared" / "data")),
                   help="the mirror whose ten real SVHN photos each preset reads ('' : none)")
    p.add_argument("--sizes-only", action="store_true",
                   help="print each preset's parameters and forward FLOPs per image; train nothing, need no data")
    args = p.parse_args(argv)
    from housenum.atomic import write_json

    names = args.presets.split(",")
    for name in names:
        preset(name)  # an unknown name fails here, before any training
    if args.sizes_only:
        print(f"{'preset':<11} {'input':>6} {'parameters':>11} {'forward MFLOP/image':>20}")
        for name in names:
            row = sizes(name)
            print(f"{name:<11} {row['input']:>6} {row['parameters']:>11,} {row['forward_flops'] / 1e6:>20,.1f}")
        return 0
    finder = Path(args.finder) if args.finder else None
    real = []
    if finder is not None and args.mirror:
        from bench.compare_readers import real_photos, unpack_mirror

        real = real_photos(unpack_mirror(args.mirror, Path(args.work_dir) / "mirror"))
    rows = []
    print(f"budget {args.budget_s:.0f} s per preset; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name in names:
        row = run_one(name, Path(args.data_dir), Path(args.work_dir), args.budget_s, args.calibrate_steps,
                      finder, real, args.whole_photos)
        row["load_average_after"] = round(os.getloadavg()[0], 1)
        rows.append(row)
        print(f"{name:<11} {row['input']:>6} {row['parameters']:>11,} params "
              f"{row['forward_flops'] / 1e6:>8,.1f} MFLOP/img {row['steps']:>6} steps "
              f"{row['train_seconds']:>6.0f} s {row['train_images_per_s']:>7.1f} img/s  test seq acc "
              f"{row['test_sequence_accuracy']:.4f}  cov@98 {row['coverage_at_98']:.4f}  "
              f"whole {row.get('whole_sequence_accuracy', float('nan')):.4f}  real crops "
              f"{row.get('real_crop_hits', '-')}/{row.get('real_photos', '-')} whole {row.get('real_whole_hits', '-')}  "
              f"(load {row['load_average_after']})", flush=True)
        write_json(Path(args.out), {"budget_s": args.budget_s, "cores": os.cpu_count(), "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    cli.run(main, sys.argv[1:])

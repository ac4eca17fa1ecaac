#!/usr/bin/env python3
"""Benchmark: what each change to the synthetic data does to reading real photos.

For each variant of `SyntheticConfig` (below), the same recipe: write --numbers synthetic train numbers
(a quarter as many test, a tenth extra) with --seed, preprocess them, train the `improved` preset for
--steps, then read the mirror's ten real SVHN photos (cropped around their digit boxes, and whole) with
that reader and the finder given by --finder (default: the shipped one), as bench/compare_readers.py
does. Printed per variant: its own synthetic test accuracy (each variant's test split is its own, so
these are not comparable across rows), real crops and whole photos read right, and the readings.

Ten photos are far too few for an accuracy figure: a row's real-photo hits say whether a change helped
at all, not by how much. The variants are measured, not tuned on the photos one by one.

  .venv/bin/python bench/bench_data_realism.py --numbers 20000 --steps 4000          # all variants
  .venv/bin/python bench/bench_data_realism.py --variants fonts,all --numbers 2000 --steps 200

Prints figures only; asserts nothing. Work folders go under --work-dir (kept, to reuse generated data).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum import cli, synthetic  # noqa: E402

STYLES_OFF = dict(mounted_prob=0.0, tile_prob=0.0, stencil_prob=0.0, emboss_prob=0.0, metal_prob=0.0,
                  glare_prob=0.0, defocus_prob=0.0)


def variants() -> dict[str, synthetic.SyntheticConfig]:
    """The data variants, from the previous generator's look to today's default."""
    return {
        "matplotlib": synthetic.SyntheticConfig(fonts=synthetic.MPL_FONTS, **STYLES_OFF),  # before: fonts of matplotlib
        "fonts": synthetic.SyntheticConfig(**STYLES_OFF),  # + the 35 pinned font families
        "styles": synthetic.SyntheticConfig(fonts=synthetic.MPL_FONTS),  # + mounted digits, tiles, ... alone
        "all": synthetic.SyntheticConfig(),  # today's default: both
        "thin": synthetic.SyntheticConfig(thin_prob=0.15),  # + light weights (Thin..ExtraLight) for 15 % of numbers
        "hand": synthetic.SyntheticConfig(hand_prob=0.15),  # + 15 % of numbers written by hand (housenum.handwriting)
    }


def make_data(work: Path, config: synthetic.SyntheticConfig, numbers: int, seed: int) -> Path:
    from housenum.config import DataConfig
    from housenum.preprocess import preprocess_svhn

    out = work / "svhn_32x32.h5"
    if out.is_file():
        return out
    sizes = synthetic.split_sizes(numbers)
    for split, n in sizes.items():
        synthetic.write_svhn_split(work / "svhn", split, n, seed, config, workers=os.cpu_count() or 1, progress=False)
    preprocess_svhn(work / "svhn", out, DataConfig(valid_size=0.1, seed=seed), progress=False, log=lambda *a: None)
    return out


def train_reader(data_path: Path, run_dir: Path, steps: int, seed: int) -> dict:
    from housenum.config import preset
    from housenum.dataset import load_svhn
    from housenum.train import Trainer

    base = preset("improved")
    cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, steps=steps, seed=seed,
                                                              eval_every=max(1, steps // 4),
                                                              checkpoint_every=max(1, steps // 4)))
    return Trainer(cfg, load_svhn(data_path), run_dir).fit()


def main(argv=None) -> int:
    p = cli.make_parser(__doc__)
    p.add_argument("--variants", default=",".join(variants()), help="comma-separated variants to run")
    p.add_argument("--numbers", type=cli.positive_int, default=20000, help="synthetic train numbers per variant")
    p.add_argument("--steps", type=cli.positive_int, default=4000, help="training steps per variant")
    p.add_argument("--seed", type=int, default=0, help="data, weights and order")
    p.add_argument("--finder", default=str(REPO / "models" / "finder"), help="finder folder for whole photos")
    p.add_argument("--mirror", default=os.environ.get("HOUSENUM_MIRROR", str(REPO.parent / "shared" / "data")))
    p.add_argument("--work-dir", default="/tmp/bench_data_realism", help="data and runs go here (kept)")
    args = p.parse_args(argv)
    from bench.compare_readers import read_real_ours, real_photos, unpack_mirror
    from housenum.atomic import write_json
    from housenum.errors import DataError

    known = variants()
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataError(f"--variants: unknown {', '.join(unknown)}; expected some of {', '.join(known)}")
    work = Path(args.work_dir)
    photos = real_photos(unpack_mirror(args.mirror, work / "mirror"))
    print(f"{len(photos)} real photos; {args.numbers:,} numbers and {args.steps:,} steps per variant; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    rows = []
    for name in names:
        t0 = time.perf_counter()
        folder = work / f"{name}_{args.numbers}_s{args.seed}"
        data = make_data(folder, known[name], args.numbers, args.seed)
        t1 = time.perf_counter()
        result = train_reader(data, folder / f"run_{args.steps}", args.steps, args.seed)
        model = folder / f"run_{args.steps}" / "model.keras"
        real = read_real_ours(model, photos, args.finder)
        crops, whole = real["crop_readings"], real["whole_readings"]
        row = {"variant": name, "numbers": args.numbers, "steps": args.steps, "seed": args.seed,
               "synthetic_test_accuracy": result["test"]["sequence_accuracy"], **real,
               "data_seconds": round(t1 - t0, 1), "train_seconds": round(time.perf_counter() - t1, 1),
               "load_average_after": round(os.getloadavg()[0], 1)}
        rows.append(row)
        print(f"{name:<11} synthetic test {row['synthetic_test_accuracy']:.4f}  real crops {row['real_crop_hits']}/"
              f"{len(photos)}  whole {row['real_whole_hits']}/{len(photos)}  crops {crops}  whole {whole}  "
              f"({row['data_seconds']:.0f} s data, {row['train_seconds']:.0f} s training, load "
              f"{row['load_average_after']})", flush=True)
        write_json(work / "results.json", {"truths": [ph.truth for ph in photos], "rows": rows})
    print(f"truths: {[ph.truth for ph in photos]}; wrote {work / 'results.json'}")
    return 0


if __name__ == "__main__":
    cli.run(main, sys.argv[1:])

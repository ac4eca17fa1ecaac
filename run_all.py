#!/usr/bin/env python3
"""The whole job, steps 1-5 in order, each one the numbered script you could run yourself.

Online, on real SVHN and notMNIST (downloads about 2.9 GB, then trains the study's network):
  python run_all.py
Offline, with the local mirror (real labels, 10 real SVHN photos, real notMNIST letters) and synthetic
SVHN-format photos to train on:
  python run_all.py --mirror ../shared/data --synthetic 5000 --steps 2000 --sweep-steps 500

Steps: 1 download_and_extract.py  2 preprocess_svhn.py + preprocess_notmnist.py
       3 train_and_test_svhn_data.py  4 layer_sweep.py (+ --baseline logistic seed-letters)
       5 predict_real_images.py on --photos (default: the real SVHN photos that were fetched).
Every step skips or resumes work already done, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from housenum import cli
from housenum.config import TrainConfig
from housenum.errors import HousenumError

HERE = Path(__file__).resolve().parent
MIN_TRAIN_ROWS = 1000  # fewer real training photos than this cannot train the network meaningfully


def parse_args(argv=None):
    p = cli.make_parser(__doc__)
    p.add_argument("--data-dir", default="data", help="where archives are fetched, unpacked and preprocessed")
    p.add_argument("--results-dir", default="results", help="where summaries, runs, charts and readings go")
    p.add_argument("--mirror", metavar="DIR", default=None, help="take the archives from this local folder")
    p.add_argument("--synthetic", metavar="N", type=int, default=None,
                   help="train on N synthetic SVHN-format numbers (written to <data-dir>/synthetic)")
    p.add_argument("--preset", default="seed", help="network preset for step 3 (seed, improved)")
    p.add_argument("--steps", type=int, default=TrainConfig().steps, help="training steps of step 3")
    p.add_argument("--sweep-steps", type=int, default=10000, help="training steps per layer-sweep configuration")
    p.add_argument("--letters-steps", type=int, default=3000, help="training steps of the seed network on letters")
    p.add_argument("--photos", nargs="*", default=None, help="photos for step 5 (default: the fetched real SVHN photos)")
    p.add_argument("--seed", type=int, default=0, help="seed of every step")
    p.add_argument("--fresh", action="store_true",
                   help="retrain step 3 and the sweep from scratch instead of resuming or reading back earlier runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def step(title: str, script: str, *args) -> None:
    cmd = [sys.executable, str(HERE / script), *map(str, args)]
    shown = " ".join(["python", script, *map(str, args)])
    print(f"\n==> {title}: {shown}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise HousenumError(f"{title} failed (exit {proc.returncode}): {shown}")
    print(f"<== {title} done in {time.perf_counter() - t0:.0f} s", flush=True)


def real_photos(svhn_dir: Path, limit: int = 10) -> list[Path]:
    """The real SVHN photos that exist on disk (the mirror holds ten), test split first."""
    found: list[Path] = []
    for split in ("test", "train", "extra"):
        folder = svhn_dir / split
        if folder.is_dir():
            found += sorted(folder.glob("*.png"), key=lambda p: (len(p.stem), p.stem))[:limit]
    return found[:limit]


def main(argv=None) -> int:
    args = parse_args(argv)
    from housenum.download import check_online

    if args.mirror is None and args.synthetic is None:
        reason = check_online()
        if reason:
            raise HousenumError(f"{reason}; offline? use --mirror DIR (a folder with the archives) "
                                f"or --synthetic N (generate N synthetic numbers)")
    data, results = Path(args.data_dir), Path(args.results_dir)
    quiet = ["--no-progress"] if args.no_progress else []
    seed = ["--seed", args.seed]

    # 1. real archives (online or from the mirror), synthetic ones when asked
    if args.mirror is not None:
        step("step 1 (mirror)", "download_and_extract.py", "--mirror", args.mirror, "--data-dir", data, *quiet)
    elif args.synthetic is None:
        step("step 1", "download_and_extract.py", "--data-dir", data, *quiet)
    train_dir, train_results = data, results
    if args.synthetic is not None:
        train_dir, train_results = data / "synthetic", results / "synthetic"
        datasets = ["svhn"] if args.mirror is not None else ["svhn", "notmnist-small"]
        step("step 1 (synthetic)", "download_and_extract.py", "--synthetic", args.synthetic, "--datasets",
             *datasets, "--data-dir", train_dir, *seed, *quiet)

    # 2. preprocessing: real labels always (the study's table); synthetic photos when they train
    real_svhn = (data / "svhn" / "test" / "digitStruct.mat").is_file()
    if real_svhn:
        few = args.mirror is not None  # the mirror has a handful of photos: hold out a share, not 5,684
        step("step 2 (SVHN, real)", "preprocess_svhn.py", "--data-dir", data, "--results-dir", results,
             *(["--valid-size", "0.1"] if few else []), *seed, *quiet)
    if args.synthetic is not None:
        step("step 2 (SVHN, synthetic)", "preprocess_svhn.py", "--data-dir", train_dir, "--results-dir",
             train_results, "--valid-size", "0.1", *seed, *quiet)
    letters_dir = data if args.mirror is not None or args.synthetic is None else train_dir
    step("step 2b (notMNIST)", "preprocess_notmnist.py", "--data-dir", letters_dir / "notmnist", "--output",
         letters_dir / "notmnist.h5", "--results-dir", results, *seed, *quiet)

    svhn_h5 = train_dir / "svhn_32x32.h5"
    if args.synthetic is None:
        import h5py

        with h5py.File(svhn_h5) as f:
            rows = f["train/labels"].shape[0]
        if rows < MIN_TRAIN_ROWS:
            raise HousenumError(f"only {rows} real SVHN training photos in {svhn_h5}; add --synthetic N to train "
                                f"on synthetic SVHN-format photos")

    # 3. train and test
    run_name = f"{args.preset}{'_synthetic' if args.synthetic is not None else ''}"
    fresh = ["--fresh"] if args.fresh else []
    step("step 3", "train_and_test_svhn_data.py", "--preset", args.preset, "--data", svhn_h5, "--results-dir",
         results, "--run-name", run_name, "--steps", args.steps, *seed, *quiet, *fresh)

    # 4. the layer sweep and the baselines
    force = ["--force"] if args.fresh else []
    step("step 4", "layer_sweep.py", "--data", svhn_h5, "--results-dir", train_results, "--steps",
         args.sweep_steps, *seed, *quiet, *force)
    step("step 4 (baselines)", "layer_sweep.py", "--baseline", "logistic", "seed-letters", "--notmnist",
         letters_dir / "notmnist.h5", "--results-dir", results, "--letters-steps", args.letters_steps, *seed,
         *quiet, *force)

    # 5. read photos
    photos = args.photos if args.photos else [str(p) for p in real_photos(data / "svhn")]
    if photos:
        step("step 5", "predict_real_images.py", *photos, "--model", results / run_name, "--show",
             results / "readings")
    else:
        print("\nstep 5 skipped: no photos given (--photos) and no real SVHN photos on disk")
    print(f"\nall steps done; results in {results}/")
    return 0


if __name__ == "__main__":
    cli.run(main, sys.argv[1:])

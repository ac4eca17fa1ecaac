#!/usr/bin/env python3
"""Step 4: the layer sweep (1..7 layers, FC-only vs convolutional) and the baselines the study compares.

Each configuration trains with the same data, steps, batch and schedule; re-running continues where
the sweep stopped (finished configurations are read back, --force retrains). Writes
results/layer_sweep.csv, results/layer_sweep.png and prints config, parameters, test accuracy, time.
With --baseline, runs the baselines instead: scikit-learn LogisticRegression on notMNIST letters
(20,000 training images asked, as the study; as many as the data holds) and the seed network adapted
to 28x28 letters; results/baselines.json.

Not the study's budget: --steps defaults to 10,000 per configuration where the study trained 100,000,
so that the whole sweep takes about an hour on a 2-core CPU; pass --steps 100000 for the study's.

  python layer_sweep.py                                   # 1..7 layers, data/svhn_32x32.h5
  python layer_sweep.py --layers 1 2 5 7 --steps 2000 --data data/synthetic/svhn_32x32.h5
  python layer_sweep.py --baseline logistic seed-letters --notmnist data/notmnist.h5
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from housenum import cli
from housenum.atomic import write_json
from housenum.config import TrainConfig
from housenum.errors import DataError, HousenumError
from housenum.sweep import MAX_DEPTH

# NOT the study's 100,000 steps per configuration: ten configurations at 100,000 steps would take most of
# a day on a 2-core CPU; 10,000 keeps the sweep to about an hour (the seed network alone reaches 72.9 %
# on our synthetic data by then, README)
SWEEP_STEPS = 10000


def depth_list(text: str) -> list[int]:
    """'1-7', '1,2,5' or '3'."""
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part.strip():
            out.append(int(part))
    return out


def parse_args(argv=None):
    t = TrainConfig()
    p = cli.make_parser(__doc__)
    p.add_argument("--data", default="data/svhn_32x32.h5", help="preprocessed SVHN (preprocess_svhn.py)")
    p.add_argument("--results-dir", default="results", help="outputs go here; runs in <results-dir>/layer_sweep/")
    p.add_argument("--layers", nargs="+", type=depth_list, default=[list(range(1, MAX_DEPTH + 1))],
                   help=f"depths to train, e.g. 1-7 or 1,2,5 (1..{MAX_DEPTH}; conv nets exist at 5..7)")
    cli.add_schedule_flags(p, t, SWEEP_STEPS)
    p.add_argument("--force", action="store_true", help="retrain configurations that already finished")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    b = p.add_argument_group("baselines (run instead of the sweep)")
    b.add_argument("--baseline", nargs="+", choices=("logistic", "seed-letters"), default=None,
                   help="logistic: sklearn LogisticRegression on notMNIST; seed-letters: the seed network on 28x28 letters")
    b.add_argument("--notmnist", default="data/notmnist.h5", help="preprocessed notMNIST (preprocess_notmnist.py)")
    b.add_argument("--logistic-train", type=int, default=20000, help="training letters asked for the logistic baseline")
    b.add_argument("--letters-steps", type=int, default=3000, help="training steps of the seed network on letters")
    return p.parse_args(argv)


def train_config(args) -> TrainConfig:
    cfg = cli.schedule_from_args(args, TrainConfig())
    every = min(cfg.eval_every, cfg.steps)
    cfg = dataclasses.replace(cfg, eval_every=every, checkpoint_every=max(every, min(1000, cfg.steps)))
    cfg.validate()
    return cfg


def run_baselines(args) -> int:
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "baselines.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    if "logistic" in args.baseline:
        from housenum.baselines import format_baseline, logistic_baseline

        res = logistic_baseline(args.notmnist, n_train=args.logistic_train, seed=args.seed)
        res.pop("model", None)
        stored["logistic"] = res
        print(format_baseline(res))
    if "seed-letters" in args.baseline:
        from housenum.sweep import letters_config, letters_data
        from housenum.train import RunFolderError, Trainer

        train = dataclasses.replace(train_config(args), steps=args.letters_steps,
                                    eval_every=min(args.eval_every, args.letters_steps),
                                    checkpoint_every=min(1000, args.letters_steps))
        data = letters_data(args.notmnist)
        run_dir = results_dir / "baselines" / "seed_letters"
        try:
            res = Trainer(letters_config(train), data, run_dir, progress=not args.no_progress).fit(fresh=args.force)
        except RunFolderError as exc:
            raise HousenumError(f"{exc}; rerun with --force to retrain it") from None
        stored["seed_letters"] = {"accuracy": res["test"]["accuracy"], "n_test": res["test"]["n"],
                                  "n_train": len(data.train[0]), "steps": res["steps"], "data": data.description,
                                  "train_seconds": res["train_seconds"], "run_dir": str(run_dir)}
        print(f"seed network on 28x28 letters: test accuracy {res['test']['accuracy']:.4f} "
              f"({res['test']['n']:,} letters, {len(data.train[0]):,} training letters, {res['steps']:,} steps)")
    write_json(path, stored, sort_keys=False)
    print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.baseline:
        return run_baselines(args)
    if not Path(args.data).is_file():  # before TensorFlow's start-up, which takes seconds
        raise DataError(f"no preprocessed data at {args.data}: run preprocess_svhn.py first (or pass --data)")
    from housenum.dataset import load_svhn
    from housenum.sweep import format_table, run_sweep, sweep_entries
    from housenum.train import RunFolderError

    layers = [d for group in args.layers for d in group]
    entries = sweep_entries(layers)
    train = train_config(args)
    data = load_svhn(args.data).limit_train(args.max_train)
    print(f"layer sweep on {data.description}: {', '.join(e.name for e in entries)}; {train.steps:,} steps each")
    try:
        rows = run_sweep(entries, train, data, args.results_dir, force=args.force, progress=not args.no_progress,
                         log=print)
    except RunFolderError as exc:
        raise HousenumError(f"{exc}; rerun with --force to retrain it") from None
    print(format_table(rows))
    print(f"wrote {Path(args.results_dir) / 'layer_sweep.csv'}, {Path(args.results_dir) / 'layer_sweep.png'}")
    return 0


if __name__ == "__main__":
    cli.run(main, sys.argv[1:])

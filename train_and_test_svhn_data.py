#!/usr/bin/env python3
"""Step 3: train the network on preprocessed SVHN and report whole-sequence accuracy on the test set.

Defaults are the study's seed network and schedule (3 conv + LRN + max-pool, FC 128/64/16 with dropout,
length + 5 digit heads, SGD 0.05 decaying by 0.98, batch 100, L2 5e-4). Killed at any point, the same
command resumes from the last checkpoint in results/<run-name>/.

  python train_and_test_svhn_data.py                                  # seed network, data/svhn_32x32.h5
  python train_and_test_svhn_data.py --data data/synthetic/svhn_32x32.h5 --steps 3000 --run-name synth
  python train_and_test_svhn_data.py --preset improved --run-name improved
  python train_and_test_svhn_data.py --preset deep          # improved with two convolutions a block
  python train_and_test_svhn_data.py --preset goodfellow    # data/svhn_64x64.h5: preprocess --image-size 64
  python train_and_test_svhn_data.py --preset gpu           # the same network on one GPU: mixed_float16 + XLA
  python train_and_test_svhn_data.py --precision mixed_bfloat16      # bfloat16 layers (CPUs with AVX512-BF16)
  python train_and_test_svhn_data.py --preset ctc           # data/svhn_96x32.h5: --image-size 32 --image-width 96
  TF_CONFIG='{"cluster":{"worker":["h1:2222","h2:2222"]},"task":{"type":"worker","index":0}}' \\
      python train_and_test_svhn_data.py --strategy multiworker       # run the same on every worker

Writes results/<run-name>/: metrics.json, log.csv, tensorboard/, accuracy_vs_steps.png, checkpoints/,
model.keras + model.json (what predict_real_images.py loads). The input size and the data's settings
(crop margin, validation rows, extra used) come from the preprocessed file itself.

Not the study's budget: --steps defaults to 60,000 where the study trained 100,000-200,000 steps, to
keep a default run of the seed network under an hour on a 2-core CPU; pass --steps 200000 for the
study's length.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from housenum import cli
from housenum.config import PRECISIONS, PRESETS, DataConfig, RunConfig, preset
from housenum.errors import DataError, HousenumError

REFERENCES = (("the study (real SVHN test set)", 0.953), ("Goodfellow et al. 2014 (real SVHN)", 0.9603),
              ("human operators", 0.98))


def int_list(text: str) -> tuple[int, ...]:
    text = text.strip()
    if text in ("", "none"):
        return ()
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 16,32,64, got {text!r}")


def build_parser(base: RunConfig) -> argparse.ArgumentParser:
    m, t = base.model, base.train
    p = cli.make_parser(__doc__)
    p.add_argument("--preset", choices=sorted(PRESETS), default="seed", help="starting settings; flags override")
    g = p.add_argument_group("data and output")
    g.add_argument("--data", default="data/svhn_{1}x{0}.h5".format(*m.input_shape), help="preprocessed HDF5 file (preprocess_svhn.py)")
    g.add_argument("--results-dir", default="results", help="runs go to <results-dir>/<run-name>/")
    g.add_argument("--run-name", default=None, help="run folder name (default: the preset's name)")
    g.add_argument("--fresh", action="store_true", help="delete the run folder and start over instead of resuming")
    g.add_argument("--whole-photos", type=int, default=1000,
                   help="also score this many uncropped test photos through the finder (0: off)")
    g.add_argument("--finder", default=None,
                   help="finder for --whole-photos (default: as predict_real_images.py chooses: the newest under "
                        "--results-dir trained on real SVHN, else the shipped one, else the newest there)")
    g = p.add_argument_group("network")
    g.add_argument("--conv-depths", type=int_list, default=m.conv_depths, help="conv layer depths, e.g. 16,32,64")
    g.add_argument("--patch", type=int, default=m.patch, help="conv kernel size")
    g.add_argument("--lrn-alpha", type=float, default=m.lrn_alpha, help="local response normalisation alpha")
    g.add_argument("--lrn-beta", type=float, default=m.lrn_beta, help="local response normalisation beta")
    g.add_argument("--fc-units", type=int_list, default=m.fc_units, help="hidden fully connected layer sizes")
    g.add_argument("--keep-prob", type=float, default=m.keep_prob, help="dropout keep probability (1: none)")
    g.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=m.batch_norm,
                   help="batch normalisation instead of LRN after each conv")
    g.add_argument("--convs-per-block", type=int, default=m.convs_per_block, help="conv layers before each pool")
    g.add_argument("--augment", type=float, default=m.augment,
                   help="training-only random shift, fraction of the side (0: off)")
    g.add_argument("--augment-zoom", type=float, default=m.augment_zoom,
                   help="training-only random zoom in or out, fraction of the side (0: off)")
    g.add_argument("--augment-rotate", type=float, default=m.augment_rotate,
                   help="training-only random rotation, up to this many degrees either way (0: off)")
    g.add_argument("--augment-lighting", type=float, default=m.augment_lighting,
                   help="training-only random uneven light, gamma and shadow of this strength, 0 to 1 (0: off)")
    g = p.add_argument_group("training")
    cli.add_schedule_flags(g, t, t.steps)
    g.add_argument("--staircase", action=argparse.BooleanOptionalAction, default=t.staircase,
                   help="decay in whole steps of --decay-steps")
    g.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default=t.optimizer, help="optimiser")
    g.add_argument("--checkpoint-every", type=cli.positive_int, default=t.checkpoint_every,
                   help="checkpoint every N steps (an interrupted run loses at most this many)")
    g.add_argument("--precision", choices=PRECISIONS, default=t.precision,
                   help="what the layers compute in; weights, logits and loss stay float32. mixed_float16 is for "
                        "GPUs (without one it falls back to float32: a CPU emulates float16, 0.18x the speed); "
                        "mixed_bfloat16 trained 1.3x faster on our CPU (AVX512-BF16), but its effect on accuracy is "
                        "unmeasured, so presets other than gpu keep float32")
    g.add_argument("--xla", action=argparse.BooleanOptionalAction, default=t.jit_compile,
                   help="XLA-compile the training step (for GPUs: fused kernels; on our CPU it trained the seed "
                        "network at 0.4x the speed, so only --preset gpu turns it on); not with --augment, "
                        "--augment-zoom or --augment-rotate, whose layers XLA cannot compile")
    g.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default",
                   help="tf.distribute strategy: one device, several GPUs, or several machines via TF_CONFIG")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args, data_config: DataConfig) -> RunConfig:
    """The preset with the flags applied; the data's settings (and so the input size) from the data."""
    base = preset(args.preset)
    model = dataclasses.replace(
        base.model, image_size=data_config.image_size, image_width=data_config.image_width,
        max_digits=data_config.max_digits, conv_depths=args.conv_depths, patch=args.patch,
        lrn_alpha=args.lrn_alpha, lrn_beta=args.lrn_beta, fc_units=args.fc_units, keep_prob=args.keep_prob,
        batch_norm=args.batch_norm, convs_per_block=args.convs_per_block, augment=args.augment,
        augment_zoom=args.augment_zoom, augment_rotate=args.augment_rotate, augment_lighting=args.augment_lighting,
    )
    train = dataclasses.replace(cli.schedule_from_args(args, base.train), staircase=args.staircase,
                                optimizer=args.optimizer, checkpoint_every=args.checkpoint_every,
                                precision=args.precision, jit_compile=args.xla)
    return RunConfig(model=model, train=train, data=data_config).validate()


def parse_args(argv=None):
    # The preset decides the defaults the other flags show and fall back to: read it first.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", choices=sorted(PRESETS), default="seed")
    known, _ = pre.parse_known_args(argv)
    parser = build_parser(preset(known.preset))
    return parser.parse_args(argv)


def format_report(result: dict) -> str:
    test = result["test"]
    lines = [f"data: {result['data']}", f"steps: {result['steps']:,}   parameters: {result['parameters']:,}"]
    if not test:
        return "\n".join(lines + ["no test rows: nothing to report"])
    lines += [
        f"test whole-sequence accuracy: {test['sequence_accuracy']:.4f}  ({test['n']:,} images)",
        f"test length accuracy:         {test['length_accuracy']:.4f}",
        f"test per-digit accuracy:      {test['digit_accuracy']:.4f}   "
        + "  ".join(f"{k} {v:.3f}" for k, v in test["per_position_accuracy"].items()),
        "test accuracy by true length: "
        + "  ".join(f"{n}: {v['sequence_accuracy']:.3f} ({v['n']:,})" for n, v in test.get("by_length", {}).items()),
        f"coverage at 98% accuracy:     {test['coverage_at_98']:.4f}",
        f"best validation accuracy:     {result['best_valid_accuracy']:.4f}",
        "reference figures (measured on the real SVHN test set, not on this data unless it is real SVHN): "
        + "; ".join(f"{name} {acc:.2%}" for name, acc in REFERENCES),
    ]
    return "\n".join(lines)


def score_whole_photos(args, data, run_dir: Path, result: dict) -> None:
    """The test split's uncropped photos read as a user's photos are (finder, reader, abstain rule),
    printed and added to metrics.json under "whole_photos"."""
    from housenum.atomic import write_json
    from housenum.finder import Finder
    from housenum.photo_eval import format_whole, whole_photo_metrics
    from housenum.predict import PhotoReader, Reader, find_finder

    test_dir = Path(data.source) / "test"
    finder_path = Path(args.finder) if args.finder else find_finder(args.results_dir)
    if finder_path is None or not (test_dir / "digitStruct.mat").is_file():
        print(f"whole photos not scored: {'no finder (python -m housenum.finder)' if finder_path is None else f'no test photos in {test_dir}'}")
        return
    photo_reader = PhotoReader(Reader(run_dir), Finder(finder_path))
    result["whole_photos"] = {**whole_photo_metrics(photo_reader, test_dir, args.whole_photos, seed=args.seed),
                              "finder": str(finder_path)}
    print("\n".join(format_whole(result["whole_photos"])))
    write_json(run_dir / "metrics.json", result)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not Path(args.data).is_file():  # before TensorFlow's start-up, which takes seconds
        raise DataError(f"no preprocessed data at {args.data}: run preprocess_svhn.py first (or pass --data)")
    from housenum.dataset import load_svhn

    data = load_svhn(args.data).limit_train(args.max_train)
    cfg = config_from_args(args, data.config)
    from housenum.train import make_strategy

    strategy = make_strategy(args.strategy)  # before any other TensorFlow work (multi-worker needs it first)
    from housenum.train import RunFolderError, Trainer

    run_dir = Path(args.results_dir) / (args.run_name or args.preset)
    print(f"training on {data.description}\nrun folder: {run_dir}  strategy: {args.strategy} "
          f"({strategy.num_replicas_in_sync} replica(s))", flush=True)
    trainer = Trainer(cfg, data, run_dir, strategy=strategy, log=print, progress=not args.no_progress)
    try:
        result = trainer.fit(fresh=args.fresh)
    except RunFolderError as exc:
        raise HousenumError(f"{exc}; use another --run-name, or --fresh to start over") from None
    print(format_report(result))
    if args.whole_photos > 0 and result["test"]:
        score_whole_photos(args, data, run_dir, result)
    print(f"wrote {run_dir / 'metrics.json'}, {run_dir / 'model.keras'} (the model of step "
          f"{result['exported_step']:,}; best validation accuracy was at step {result['best_valid_step']:,})")
    return 0


if __name__ == "__main__":
    cli.run(main, sys.argv[1:])

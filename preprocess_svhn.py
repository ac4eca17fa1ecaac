#!/usr/bin/env python3
"""Step 2: parse SVHN's digit boxes, crop around the digits, grayscale, resize, normalise, store.

Reads <data-dir>/svhn/{train,test,extra}/ (as download_and_extract.py leaves them), writes one HDF5 file
of train/valid/test arrays, results/svhn_summary.json, two box-size histograms, and prints the study's
summary table. Records whose image is missing, numbers of more than 5 digits, odd labels and corrupt
images are skipped and counted, never silently lost.

  python preprocess_svhn.py                               # data/svhn -> data/svhn_32x32.h5
  python preprocess_svhn.py --data-dir data/synthetic --results-dir results/synthetic
  python preprocess_svhn.py --image-size 64 --margin 0.3 --valid-size 0.1   # --preset goodfellow's input
  python preprocess_svhn.py --image-size 32 --image-width 96              # --preset ctc's: data/svhn_96x32.h5
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from housenum import cli
from housenum.atomic import write_json
from housenum.config import LONGEST, DataConfig
from housenum.errors import HousenumError


def valid_size(text: str) -> float:
    v = float(text)
    if v < 0:
        raise ValueError(text)
    return v


def parse_args(argv=None):
    d = DataConfig()
    p = cli.make_parser(__doc__)
    p.add_argument("--data-dir", default="data", help="folder holding svhn/{train,test,extra}/")
    p.add_argument("--out", default=None,
                   help="output HDF5 file (default: <data-dir>/svhn_<S>x<S>.h5, or svhn_<W>x<S>.h5 with --image-width)")
    p.add_argument("--results-dir", default="results", help="where the summary JSON and histograms go")
    p.add_argument("--image-size", type=int, default=d.image_size, help="side of the square crops (their height with --image-width), pixels")
    p.add_argument("--image-width", type=int, default=d.image_width,
                   help="width of wider-than-tall crops in pixels, e.g. 96 for --preset ctc (default: square)")
    p.add_argument("--margin", type=float, default=d.margin, help="union box growth, fraction of its size in total")
    p.add_argument("--max-digits", type=int, default=d.max_digits,
                   help="longest number kept (longer ones are dropped and counted); the study reads 5, the ctc "
                        "reader any length: e.g. 8 with download_and_extract.py --long-numbers")
    p.add_argument("--valid-size", type=valid_size, default=d.valid_size,
                   help="validation rows held out of train: a count, or a fraction if below 1")
    p.add_argument("--no-extra", action="store_true", help="leave the extra split out of training")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the validation split")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes for the image work")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from housenum import plots
    from housenum.preprocess import format_table, preprocess_svhn

    if args.image_width is not None and args.image_width < 8:
        raise HousenumError(f"--image-width must be >= 8 (or left out for square crops), got {args.image_width}")
    if not 1 <= args.max_digits <= LONGEST:
        raise HousenumError(f"--max-digits must be 1..{LONGEST}, got {args.max_digits}")
    if args.image_size < 8 or not 0 <= args.margin <= 3:
        raise HousenumError(f"--image-size must be >= 8 and --margin in [0, 3]; got {args.image_size}, {args.margin}")
    cfg = replace(DataConfig(), image_size=args.image_size, image_width=args.image_width, margin=args.margin, valid_size=args.valid_size,
                  max_digits=args.max_digits, use_extra=not args.no_extra, seed=args.seed)
    data_dir = Path(args.data_dir)
    out = Path(args.out) if args.out else data_dir / f"svhn_{cfg.image_width or cfg.image_size}x{cfg.image_size}.h5"
    summary = preprocess_svhn(data_dir / "svhn", out, cfg, workers=args.workers, progress=not args.no_progress)
    hist = summary.pop("histograms")
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    summary["output"] = str(out)
    write_json(results / "svhn_summary.json", summary, sort_keys=False)
    plots.histograms(hist["widest"], results / "svhn_widest_box.png", "Widest digit box per image", "pixels",
                    data=summary["data"])
    plots.histograms(hist["tallest"], results / "svhn_tallest_box.png", "Tallest digit box per image", "pixels",
                    data=summary["data"])
    print(f"data: {summary['data']} ({summary['source']})")
    print(format_table(summary, cfg.max_digits))
    print(f"\nwrote {out}, {results / 'svhn_summary.json'}, {results / 'svhn_widest_box.png'}, "
          f"{results / 'svhn_tallest_box.png'} in {summary['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    cli.run(main)

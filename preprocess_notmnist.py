"""Step 2b: notMNIST letters A-J -> one HDF5 file (train / valid / test), plus a summary table.

Reads <data-dir>/notMNIST_large/A..J/*.png and <data-dir>/notMNIST_small/A..J/*.png (28x28 grayscale),
skipping and counting empty, unreadable or wrongly-sized PNGs. Splits are class-balanced and drawn
with --seed. The study's sizes: train 200,000 and valid 10,000 from notMNIST_large, test 10,000 from
notMNIST_small. With notMNIST_small only (the 10,000-letter mirror), all three come from it:
valid 1,000, test 1,000 and every remaining image (8,000) for training, and the output says so.
Pixels are normalised as the study: (pixel - 255/2) / 255.

Examples:
  python preprocess_notmnist.py
  python preprocess_notmnist.py --data-dir data/notmnist --output data/notmnist.h5 --dedupe
  python preprocess_notmnist.py --train-size 5000 --valid-size 500 --test-size 500 --seed 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from housenum.cli import make_parser, positive_int, run
from housenum.notmnist import NotMnistSettings, format_summary, preprocess_notmnist

DEFAULTS = NotMnistSettings()


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULTS.data_dir,
                        help="folder holding notMNIST_large/ and/or notMNIST_small/")
    parser.add_argument("--output", type=Path, default=DEFAULTS.output, help="the HDF5 file to write")
    parser.add_argument("--results-dir", type=Path, default=DEFAULTS.results_dir,
                        help="where notmnist_summary.json goes")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed for every shuffle")
    parser.add_argument("--train-size", type=positive_int, default=None,
                        help="training images (default: %(default)s = the study's 200,000 from notMNIST_large; "
                             "with notMNIST_small only, every image left after valid and test: 8,000 on the mirror)")
    parser.add_argument("--valid-size", type=positive_int, default=None,
                        help="validation images (default: %(default)s = the study's 10,000 from notMNIST_large; "
                             "with notMNIST_small only, 1,000)")
    parser.add_argument("--test-size", type=positive_int, default=None,
                        help="test images (default: %(default)s = the study's 10,000 from notMNIST_small; "
                             "with notMNIST_small only, 1,000)")
    parser.add_argument("--dedupe", action="store_true",
                        help="drop valid/test images whose pixels also occur in an earlier split")
    parser.add_argument("--workers", type=positive_int, default=DEFAULTS.workers, help="processes reading the PNGs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    settings = NotMnistSettings(
        data_dir=args.data_dir, output=args.output, results_dir=args.results_dir, seed=args.seed,
        train_size=args.train_size, valid_size=args.valid_size, test_size=args.test_size,
        dedupe=args.dedupe, workers=args.workers, progress=not args.no_progress,
    )
    print(format_summary(preprocess_notmnist(settings)))
    return 0


if __name__ == "__main__":
    run(main)

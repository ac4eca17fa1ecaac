#!/usr/bin/env python3
"""What a trained model reads on the real SVHN photos we have (the mirror holds ten of them).

Each photo is read twice: cropped around its digit boxes exactly as training crops (union box + 30 %),
and whole, as predict_real_images.py reads a user's photo. Prints the true number, both readings and
their confidence, and the counts right. Figures only; asserts nothing.

  .venv/bin/python bench/read_real_svhn.py --model results/improved_synthetic
  .venv/bin/python bench/read_real_svhn.py --mirror ../shared/data/svhn --model results/seed_synthetic
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum.cli import make_parser, run  # noqa: E402
from housenum.config import DataConfig  # noqa: E402


def parse_args(argv=None):
    p = make_parser(__doc__)
    p.add_argument("--mirror", default=str(REPO.parent / "shared" / "data" / "svhn"),
                   help="folder with the SVHN archives (train/test/extra.tar.gz)")
    p.add_argument("--model", default=None, help="run folder or model.keras (default: newest under results/)")
    p.add_argument("--results-dir", default="results", help="where to look for the newest model")
    return p.parse_args(argv)


def real_photos(mirror: Path, work: Path):
    """(split, name, PIL image, boxes) for every PNG present in the mirror's archives."""
    from housenum.digitstruct import read_digitstruct

    for split in ("test", "train", "extra"):
        archive = mirror / f"{split}.tar.gz"
        if not archive.is_file():
            continue
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith((".png", "digitStruct.mat"))]
            tar.extractall(work, members=members, filter="data")
        ds = read_digitstruct(work / split / "digitStruct.mat")
        index = {n: i for i, n in enumerate(ds.names)}
        for png in sorted((work / split).glob("*.png"), key=lambda p: int(p.stem)):
            _, boxes = ds.record(index[png.name])
            with Image.open(png) as im:
                yield split, png.name, im.copy(), boxes


def main(argv=None) -> int:
    args = parse_args(argv)
    from housenum.predict import Reader, find_model
    from housenum.preprocess import image_to_input, label_row, union_box
    from housenum.metrics import labels_to_text

    reader = Reader(args.model or find_model(args.results_dir))
    size, margin = reader.image_size, DataConfig().margin
    rows, crops, wholes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for split, name, im, boxes in real_photos(Path(args.mirror), Path(tmp)):
            truth = labels_to_text(label_row(boxes[:, 0], 5)[None])[0]
            crops.append(image_to_input(im, union_box(boxes, im.width, im.height, margin), size))
            wholes.append(image_to_input(im, None, size))
            rows.append((f"{split}/{name}", f"{im.width}x{im.height}", truth))
    if not rows:
        print(f"no real SVHN photos found in {args.mirror}")
        return 1
    crop_text, crop_conf = reader.read_arrays(np.stack(crops))
    whole_text, whole_conf = reader.read_arrays(np.stack(wholes))
    print(f"model: {reader.path}  (trained on: {reader.meta['metrics'].get('data')})")
    print(f"{'photo':<14} {'size':>9} {'true':>6} {'cropped':>9} {'conf':>6} {'whole':>9} {'conf':>6}")
    for (photo, dims, truth), ct, cc, wt, wc in zip(rows, crop_text, crop_conf, whole_text, whole_conf):
        print(f"{photo:<14} {dims:>9} {truth:>6} {ct or '-':>9} {cc:>6.2f} {wt or '-':>9} {wc:>6.2f}")
    right_crop = sum(t == c for (_, _, t), c in zip(rows, crop_text))
    right_whole = sum(t == w for (_, _, t), w in zip(rows, whole_text))
    print(f"read right: cropped {right_crop}/{len(rows)}, whole photo {right_whole}/{len(rows)} "
          f"(real SVHN photos; {len(rows)} is far too few for an accuracy figure)")
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])

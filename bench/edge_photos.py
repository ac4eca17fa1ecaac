#!/usr/bin/env python3
"""Numbers in large photos: synthetic test photos (their own seed) pasted 20 px from the right edge of a
2400x1800 wall, a quarter of its width, at a random height, saved as JPEG (as tests/test_shipped.py's ten,
there at mid height). Prints how often the finder finds the number with its first look alone and with the
second look at tiles (where the finder has a tile threshold), by the pasted photo's height (a wide photo's
number is a small part of the wall) and by where it sits; how often the photo reader then reads it right,
wrong, or answers "no number found"; and, with --scenes-dir, the same for generated no-number photos.
Figures only; asserts nothing.

  .venv/bin/python bench/edge_photos.py --n 300 --scenes-dir data/syn200k/svhn/test
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum.cli import make_parser, positive_int, run  # noqa: E402

WALL = (2400, 1800)


def edge_photos(n: int, seed: int, work: Path) -> tuple[list[Image.Image], list[str], np.ndarray, np.ndarray]:
    """Photos as predict_real_images.py opens them, true numbers, pasted heights (px) and centre heights (0..1)."""
    from housenum.digitstruct import read_digitstruct
    from housenum.finder import open_photo
    from housenum.metrics import reading_to_text
    from housenum.preprocess import label_row
    from housenum.synthetic import write_svhn_split

    folder = write_svhn_split(work / "svhn", "test", n, seed=seed, progress=False)
    ds = read_digitstruct(folder / "digitStruct.mat")
    rng = np.random.default_rng(seed)
    photos, truths, heights, centres = [], [], [], []
    for i in range(len(ds)):
        name, boxes = ds.record(i)
        with Image.open(folder / name) as im:
            number = im.convert("L")
        k = WALL[0] * 0.25 / number.width
        number = number.resize((round(number.width * k), round(number.height * k)), Image.BILINEAR)
        wall = Image.new("L", WALL, int(np.asarray(number).mean()))
        top = int(rng.integers(0, max(1, WALL[1] - number.height)))
        wall.paste(number, (WALL[0] - number.width - 20, top))
        wall.save(work / f"{i}.jpg", quality=90)
        photos.append(open_photo(work / f"{i}.jpg")[0])
        label = label_row(boxes[:, 0], 5)
        truths.append(reading_to_text(label[0], label[1:]))
        heights.append(number.height)
        centres.append((top + number.height / 2) / WALL[1])
    return photos, truths, np.array(heights), np.array(centres)


def outcomes(readings, truths) -> str:
    right = sum(r.text == t for r, t in zip(readings, truths))
    none = sum(r.text is None for r in readings)
    return f"right {right}, wrong {len(readings) - right - none}, no number found {none}"


def main(argv=None) -> int:
    p = make_parser(__doc__)
    p.add_argument("--model", default=str(REPO / "models" / "reader"), help="reader: run folder or model.keras")
    p.add_argument("--finder", default=str(REPO / "models" / "finder"), help="finder folder")
    p.add_argument("--n", type=positive_int, default=300, help="edge photos")
    p.add_argument("--seed", type=int, default=12345, help="the synthetic photos' seed (test_shipped's)")
    p.add_argument("--scenes-dir", help="SVHN-format folder for as many generated no-number photos")
    args = p.parse_args(argv)

    from housenum.finder import Finder
    from housenum.predict import PhotoReader, Reader

    reader = PhotoReader(Reader(args.model), Finder(args.finder))
    finder = reader.finder
    with tempfile.TemporaryDirectory() as tmp:
        photos, truths, heights, centres = edge_photos(args.n, args.seed, Path(tmp))
    print(f"{args.n} edge photos ({WALL[0]}x{WALL[1]}, seed {args.seed}); {args.model}; finder {args.finder} "
          f"(threshold {finder.threshold:.3f}, tile threshold {finder.tile_threshold})")
    looks = [("first look alone", None)]
    if finder.tile_threshold is not None:
        looks.append(("with the second look at tiles", finder.tile_threshold))
    blank = []
    if args.scenes_dir:
        from housenum.finder import load_sources
        from housenum.scenes import SceneConfig, make_scene

        sources = load_sources([Path(args.scenes_dir)])
        cfg = SceneConfig().no_number()
        blank = [make_scene(sources, 0, i, cfg, stream="no-number").image.convert("L") for i in range(args.n)]
    for name, tile in looks:
        finder.tile_threshold = tile
        found = np.array([f.box is not None for f in finder.find(photos)])
        print(f"{name}: the finder finds the number in {found.sum()} ({found.mean():.1%})")
        for lo, hi in ((0, 300), (300, 600), (600, 900), (900, 10**6)):
            sel = (heights >= lo) & (heights < hi)
            if sel.any():
                print(f"  pasted photo {lo}-{hi if hi < 10**6 else ''} px tall: {sel.sum():4d} photos, found {found[sel].mean():.1%}")
        for lo in (0.0, 0.2, 0.4, 0.6, 0.8):
            sel = (centres >= lo) & (centres < lo + 0.2)
            if sel.any():
                print(f"  centre at {lo:.1f}-{lo + 0.2:.1f} of the height: {sel.sum():4d} photos, found {found[sel].mean():.1%}")
        print(f"  read (abstain rule on): {outcomes(reader.read_images(photos), truths)}")
        if blank:
            taken = np.mean([f.box is not None for f in finder.find(blank)])
            read = np.mean([r.text is not None for r in reader.read_images(blank)])
            print(f"  {len(blank)} generated no-number photos: finder takes {taken:.1%}, read as a number {read:.1%}")
    return 0


if __name__ == "__main__":
    run(main)

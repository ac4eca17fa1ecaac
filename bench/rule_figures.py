#!/usr/bin/env python3
"""The figures the README's shipping rules compare, for one reader and finder, in one run: what each rule
("ship it if ...", written before a candidate is measured) reads off, measured the same way every time.

  held-out     synthetic test photos --start.. (default 1,000-2,999: training scores the first 1,000),
               cropped around the true digit box and read whole as users' photos are (finder, framings),
               every photo answered (the like-for-like figure beside the crops; a photo the finder finds
               nothing in counts as wrong)
  handwritten  the same for photos all written by hand (`--hand-dir`; made there when missing: 2,000
               photos, seed 7, `SyntheticConfig(hand_prob=1.0)`)
  crisp        bench/crisp_numbers.py's photos (digits drawn flat in unseen typefaces; 400, seed 1), read
               with the abstain rule, as predict_real_images.py answers
  no-number    generated photos with no number (`SceneConfig().no_number()`, the test photos' sources),
               how many are read as a number
  real         the mirror's ten real SVHN photos, cropped and whole (as bench/compare_readers.py reads them)

Timing (the 12-megapixel JPEG) is left to `bench/bench_train.py --part predict`, on an otherwise idle machine.
Figures only; asserts nothing.

  .venv/bin/python bench/rule_figures.py --model models/reader --finder models/finder
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from housenum.cli import make_parser, positive_int, run  # noqa: E402

HAND_SEED = 7  # the handwritten photos every rule since 2026-12-01 has used: 2,000 of this seed


def hand_photos(folder: Path, n: int) -> Path:
    """The all-handwritten test photos in `folder` (an SVHN-format split folder), `n` made there if missing."""
    from housenum.synthetic import SyntheticConfig, write_svhn_split

    if not (folder / "digitStruct.mat").is_file():
        print(f"making {n:,} handwritten photos in {folder} (seed {HAND_SEED})", flush=True)
        write_svhn_split(folder.parent, folder.name, n, HAND_SEED, SyntheticConfig(hand_prob=1.0), progress=False)
    return folder


def crops_and_whole(photo_reader, test_dir: Path, start: int, n: int) -> tuple[float, float, int]:
    """Share read right cropped around the true box and whole (every photo answered), and the photos read."""
    from housenum.photo_eval import test_photos, true_box_inputs
    from housenum.predict import read_photos

    paths, truths, boxes = test_photos(test_dir, start + n, photo_reader.reader.config.data.max_digits)
    paths, truths, boxes = paths[start:], truths[start:], boxes[start:]
    images = [Image.open(path).convert("L") for path in paths]
    texts, _ = photo_reader.reader.read_arrays(true_box_inputs(photo_reader.reader, images, boxes))
    crops = np.mean([t == truth for t, truth in zip(texts, truths)])
    whole = np.mean([r.guess == truth for r, truth in zip(read_photos(photo_reader, paths), truths)])
    return float(crops), float(whole), len(paths)


def main(argv=None) -> int:
    p = make_parser(__doc__)
    p.add_argument("--model", default=str(REPO / "models" / "reader"), help="reader: run folder or model.keras")
    p.add_argument("--finder", default=str(REPO / "models" / "finder"), help="finder folder")
    p.add_argument("--test-dir", default="data/syn200k/svhn/test", help="synthetic SVHN-format test photos")
    p.add_argument("--start", type=int, default=1000, help="first held-out photo (in the folder's label order)")
    p.add_argument("--n", type=positive_int, default=2000, help="held-out photos read")
    p.add_argument("--hand-dir", default="data/hand2000/svhn/test", help="handwritten photos (made if missing)")
    p.add_argument("--hand-n", type=positive_int, default=2000, help="handwritten photos read (and made)")
    p.add_argument("--crisp", type=int, default=400, help="crisp photos (0: none)")
    p.add_argument("--crisp-seed", type=int, default=1, help="the crisp photos' seed")
    p.add_argument("--no-number", type=int, default=1000, help="no-number photos (0: none)")
    p.add_argument("--mirror", default=os.environ.get("HOUSENUM_MIRROR", str(REPO.parent / "shared" / "data")),
                   help="folder with the SVHN archives of the real photos ('' to skip them)")
    args = p.parse_args(argv)

    from housenum.finder import Finder
    from housenum.predict import PhotoReader, Reader
    from housenum.scenes import SceneConfig, load_sources, make_scene

    reader = PhotoReader(Reader(args.model), Finder(args.finder))
    print(f"{args.model}; finder {args.finder}")
    row = {}
    c, w, n = crops_and_whole(reader, Path(args.test_dir), args.start, args.n)
    print(f"held-out photos {args.start:,}-{args.start + n - 1:,} of {args.test_dir}: crops {c:.2%}, whole {w:.2%}")
    row["held-out crops / whole"] = f"{c:.2%} / {w:.2%}"
    c, w, n = crops_and_whole(reader, hand_photos(Path(args.hand_dir), args.hand_n), 0, args.hand_n)
    print(f"{n:,} handwritten photos of {args.hand_dir}: crops {c:.2%}, whole {w:.2%}")
    row["handwritten crops / whole"] = f"{c:.2%} / {w:.2%}"
    if args.crisp:
        import crisp_numbers

        with tempfile.TemporaryDirectory() as tmp:
            photos, truths, _ = crisp_numbers.crisp_photos(args.crisp, args.crisp_seed, Path(tmp),
                                                           crisp_numbers.system_fonts())
        right = np.mean([r.text == t for r, t in zip(reader.read_images(photos), truths)])
        print(f"{args.crisp} crisp photos (seed {args.crisp_seed}) read right: {right:.2%}")
        row["crisp read"] = f"{right:.2%}"
    if args.no_number:
        sources = load_sources([Path(args.test_dir)])
        blank = [make_scene(sources, 0, i, SceneConfig().no_number(), stream="no-number").image
                 for i in range(args.no_number)]
        taken = np.mean([r.text is not None for r in reader.read_images(blank)])
        print(f"{args.no_number:,} no-number photos read as a number: {taken:.2%}")
        row["no-number read"] = f"{taken:.2%}"
    if args.mirror:
        from compare_readers import read_real_ours, real_photos, unpack_mirror

        with tempfile.TemporaryDirectory() as tmp:
            photos = real_photos(unpack_mirror(args.mirror, tmp))
        real = read_real_ours(args.model, photos, args.finder)
        for kind in ("crop", "whole"):
            misses = [f"{ph.name} {r or 'none'}" for r, ph in zip(real[f"{kind}_readings"], photos) if r != ph.truth]
            print(f"real photos, {kind}: {real[f'real_{kind}_hits']} of {len(photos)}; missed: {', '.join(misses) or '-'}")
        row["real crops / whole"] = f"{real['real_crop_hits']} / {real['real_whole_hits']}"
    print("| " + " | ".join(row) + " |")
    print("| " + " | ".join(row.values()) + " |")
    return 0


if __name__ == "__main__":
    run(main)

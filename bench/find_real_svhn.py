#!/usr/bin/env python3
"""What a trained finder finds on the real SVHN photos we have (the mirror holds ten), and how long one
12-megapixel JPEG takes from file to box after loading. Figures only; asserts nothing.

For each real photo: the true union box of its digits (digitStruct.mat), the box found, their IoU and the
has-number score, one pass and refined. Then a synthetic test scene upscaled to 4000x3000 and saved as
JPEG is decoded in draft mode (`finder.open_photo`) and searched, `--repeat` times; the median is printed.

  .venv/bin/python bench/find_real_svhn.py --finder /tmp/finder_model
  .venv/bin/python bench/find_real_svhn.py --finder results/finder --mirror ../shared/data --data-dir data/synthetic
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum.cli import make_parser, positive_int, run  # noqa: E402


def main(argv=None) -> int:
    p = make_parser(__doc__)
    p.add_argument("--finder", required=True, help="folder holding finder.keras + finder.json")
    p.add_argument("--mirror", default=str(REPO.parent / "shared" / "data"), help="the real-data mirror")
    p.add_argument("--data-dir", default="/tmp/finder_syn", help="synthetic SVHN data for the 12 MP scene")
    p.add_argument("--repeat", type=positive_int, default=20, help="timed runs of the 12 MP photo")
    args = p.parse_args(argv)

    from housenum.digitstruct import read_digitstruct
    from housenum.download import fetch
    from housenum.finder import Finder, iou, locate, open_photo, svhn_folders
    from housenum.scenes import SceneConfig, load_sources, make_scene

    finder = Finder(args.finder)
    print(f"finder {finder.path}: input {finder.cfg.input_size}, threshold {finder.threshold:.3f}, "
          f"refine {finder.refine}")
    with tempfile.TemporaryDirectory() as tmp:
        fetch(["svhn"], tmp, mirror=Path(args.mirror), progress=False)
        rows = []
        for split in ("train", "test", "extra"):
            folder = Path(tmp) / "svhn" / split
            ds = read_digitstruct(folder / "digitStruct.mat")
            for i in range(len(ds)):
                name, b = ds.record(i)
                if not (folder / name).is_file():
                    continue
                with Image.open(folder / name) as im:
                    photo = im.convert("RGB")
                truth = (b[:, 1].min(), b[:, 2].min(), (b[:, 1] + b[:, 3]).max(), (b[:, 2] + b[:, 4]).max())
                one = finder.find([photo], refine=False)[0]
                _, raw1, _ = locate(finder, [photo.convert("L")], False)
                _, raw2, _ = locate(finder, [photo.convert("L")], True)
                digits = "".join(str(int(x) % 10) for x in b[:, 0])
                rows.append((f"{split}/{name}", digits, photo.size, one.score, iou(raw1[0], truth), iou(raw2[0], truth),
                             one.box is not None))
    print(f"{'photo':14} {'number':>6} {'size':>9} {'score':>6} {'found':>5} {'IoU 1 pass':>10} {'IoU refined':>11}")
    for name, digits, size, score, i1, i2, found in rows:
        print(f"{name:14} {digits:>6} {size[0]:>4}x{size[1]:<4} {score:6.3f} {'yes' if found else 'no':>5} {i1:10.3f} {i2:11.3f}")
    i1 = np.array([r[4] for r in rows])
    i2 = np.array([r[5] for r in rows])
    print(f"{len(rows)} real photos: found {sum(r[6] for r in rows)}; mean IoU {i1.mean():.3f} one pass, "
          f"{i2.mean():.3f} refined; IoU >= 0.5: {(i1 >= 0.5).sum()} / {(i2 >= 0.5).sum()}")

    # A 12-megapixel JPEG: a synthetic test scene upscaled to 4000x3000.
    _, test_folder = svhn_folders(args.data_dir)
    sources = load_sources([test_folder])
    cfg = SceneConfig(negative_share=0.0, original_share=0.0, framed_share=0.0)
    for i in range(50):
        scene = make_scene(sources, 0, i, cfg, stream="test")
        if scene.image.width > scene.image.height:
            break
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "photo12mp.jpg"
        big = scene.image.convert("RGB").resize((4000, 3000), Image.BICUBIC)
        big.save(path, quality=90)
        kx, ky = 4000 / scene.image.width, 3000 / scene.image.height
        truth = (scene.box[0] * kx, scene.box[1] * ky, scene.box[2] * kx, scene.box[3] * ky)
        times, dec = [], []
        for _ in range(args.repeat + 2):
            t0 = time.perf_counter()
            img, scale = open_photo(path)
            t1 = time.perf_counter()
            f = finder.find([img])[0]
            t2 = time.perf_counter()
            times.append(t2 - t0)
            dec.append(t1 - t0)
        times, dec = np.array(times[2:]) * 1000, np.array(dec[2:]) * 1000
        box = None if f.box is None else tuple(round(v * scale) for v in f.box)
        got = iou(box, truth) if box else 0.0
        print(f"12 MP JPEG ({path.stat().st_size / 1e6:.1f} MB, decoded at {img.size[0]}x{img.size[1]} in draft mode): "
              f"median {np.median(times):.1f} ms from file to box (decode {np.median(dec):.1f} ms), "
              f"min {times.min():.1f}, max {times.max():.1f}; score {f.score:.3f}, IoU {got:.3f}")
    return 0


if __name__ == "__main__":
    run(main)

#!/usr/bin/env python3
"""Crisp numbers on plain walls, as a phone photographs a clean house-number plate: 1-5 digits drawn flat in
typefaces the synthetic generator never uses (Pillow's bundled Aileron, and the DejaVu family where the
system has it), 8-35 % of the photo's height, anywhere in an 800x600 or 600x800 photo, saved as JPEG and
opened as predict_real_images.py opens photos. Prints how many the photo reader reads right, how many it
reads wrong (answered above its abstain threshold) or answers "no number found"; the finder's boxes
(found, IoU with the true box); and the reader alone on crops around the true box. `--soften` blurs, adds
noise and a light gradient to the same photos (as SVHN's street photos are soft): the gap between the two
is what sharpness alone costs. Figures only; asserts nothing.

  .venv/bin/python bench/crisp_numbers.py --n 400 --seed 1
  .venv/bin/python bench/crisp_numbers.py --n 400 --seed 1 --read-blur 0   # the finder's input not blurred
"""

from __future__ import annotations

import glob
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum.cli import make_parser, positive_int, run  # noqa: E402

SIZES = ((800, 600), (600, 800))


def system_fonts() -> list[str]:
    """The DejaVu faces installed here (none of them is a typeface of the synthetic generator)."""
    return sorted(f for f in glob.glob("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf") if "Math" not in f)


def crisp_photo(rng: np.random.Generator, fonts: list[str]) -> tuple[Image.Image, str, tuple[int, int, int, int]]:
    """One photo, its number and the number's ink box (l, t, r, b). `fonts`: TrueType files beside Pillow's
    bundled font (empty: that font alone, the same on every machine with the pinned Pillow)."""
    while True:
        w, h = SIZES[int(rng.integers(len(SIZES)))]
        digits = rng.integers(0, 10, int(rng.integers(1, 6)))
        if len(digits) > 1 and digits[0] == 0:
            digits[0] = rng.integers(1, 10)
        text = "".join(map(str, digits))
        wall = rng.integers(60, 256, 3)
        ink = rng.integers(0, 256, 3)
        while abs(int(wall.mean()) - int(ink.mean())) < 80:
            ink = rng.integers(0, 256, 3)
        size = int(h * rng.uniform(0.08, 0.35))
        k = int(rng.integers(len(fonts) + 1))
        font = ImageFont.truetype(fonts[k], size) if k < len(fonts) else ImageFont.load_default(size=size)
        im = Image.new("RGB", (w, h), tuple(int(v) for v in wall))
        draw = ImageDraw.Draw(im)
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        if r - l > 0.9 * w:
            continue
        x, y = int(rng.integers(0, w - (r - l))) - l, int(rng.integers(0, h - (b - t))) - t
        draw.text((x, y), text, fill=tuple(int(v) for v in ink), font=font)
        return im, text, (x + l, y + t, x + r, y + b)


def soften(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Blur, sensor noise and a light left-to-right gradient: the same photo as soft as a street photo."""
    a = np.asarray(im.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0))), np.float32)
    a = a + rng.normal(0, 6, a.shape[:2] + (1,))
    a = a * np.linspace(rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0), im.width)[None, :, None]
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def crisp_photos(n: int, seed: int, work: Path, fonts: list[str], softened: bool = False):
    """`n` photos as predict_real_images.py opens them (JPEG, quality 90), their numbers and ink boxes in the
    opened photos' pixels."""
    from housenum.finder import open_photo

    rng, soft_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])  # softened: the same photos
    photos, truths, boxes = [], [], []
    for i in range(n):
        im, text, box = crisp_photo(rng, fonts)
        if softened:
            im = soften(im, soft_rng)
        im.save(work / f"{i}.jpg", quality=90)
        photo, scale = open_photo(work / f"{i}.jpg")
        photos.append(photo)
        truths.append(text)
        boxes.append(tuple(v / scale for v in box))
    return photos, truths, boxes


def main(argv=None) -> int:
    p = make_parser(__doc__)
    p.add_argument("--model", default=str(REPO / "models" / "reader"), help="reader: run folder or model.keras")
    p.add_argument("--finder", default=str(REPO / "models" / "finder"), help="finder folder")
    p.add_argument("--n", type=positive_int, default=400, help="photos")
    p.add_argument("--seed", type=int, default=1, help="the photos' seed")
    p.add_argument("--read-blur", type=float, default=None,
                   help="read with this finder input blur instead of the finder's own (its thresholds unchanged)")
    p.add_argument("--soften", action="store_true", help="the same photos blurred, noisy and unevenly lit")
    p.add_argument("--bundled-font-only", action="store_true", help="Pillow's bundled font alone")
    args = p.parse_args(argv)

    from dataclasses import replace

    from housenum.finder import Finder, iou
    from housenum.predict import PhotoReader, Reader

    finder = Finder(args.finder)
    if args.read_blur is not None:
        finder.cfg = replace(finder.cfg, read_blur=args.read_blur)
    reader = PhotoReader(Reader(args.model), finder)
    fonts = [] if args.bundled_font_only else system_fonts()
    with tempfile.TemporaryDirectory() as tmp:
        photos, truths, boxes = crisp_photos(args.n, args.seed, Path(tmp), fonts, args.soften)
    readings = reader.read_images(photos)
    right = sum(r.text == t for r, t in zip(readings, truths))
    none = sum(r.text is None for r in readings)
    wrong = sum(r.text is not None and r.text != t for r, t in zip(readings, truths))
    found = finder.find(photos)
    ious = np.array([iou(f.box, b) if f.box else 0.0 for f, b in zip(found, boxes)])
    plain = PhotoReader(reader.reader, None)
    crops = [ph.crop((max(0, round(l - (r - l) / 2)), max(0, round(t - (b - t) / 2)),
                      min(ph.width, round(r + (r - l) / 2)), min(ph.height, round(b + (b - t) / 2))))
             for ph, (l, t, r, b) in zip(photos, boxes)]
    crop_right = sum(r.guess == t for r, t in zip(plain.read_images(crops), truths))
    kind = "softened" if args.soften else "crisp"
    faces = f"Pillow's bundled Aileron and {len(fonts)} DejaVu faces" if fonts else "Pillow's bundled Aileron"
    print(f"{args.n} {kind} photos (seed {args.seed}; {faces}); {args.model}; finder {args.finder} "
          f"(read blur {finder.cfg.read_blur:g}, threshold {finder.threshold:.3f})")
    print(f"read right {right} ({right / args.n:.1%}); read wrong {wrong} (answered: above the abstain threshold); "
          f"no number found {none} (nothing found, or the reading below the threshold)")
    print(f"finder: found {sum(f.box is not None for f in found)}, box IoU mean {ious.mean():.3f}, "
          f"IoU >= 0.5 {(ious >= 0.5).mean():.1%}")
    print(f"reader alone on crops of twice the true box, every photo answered: {crop_right} ({crop_right / args.n:.1%})")
    return 0


if __name__ == "__main__":
    run(main)

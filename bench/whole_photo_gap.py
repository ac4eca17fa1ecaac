#!/usr/bin/env python3
"""Where whole photos lose against crops: the same SVHN-format test photos read cropped around their true
digit boxes (as training crops them) and whole (finder, framings, no abstain rule), and the whole-photo
reading taken apart (a photo where the finder finds nothing counts as wrong in every reading figure, as
`predict_real_images.py` answers it "no number found"): photos where the finder finds nothing, found boxes
of IoU < 0.5, each framing of the found box read alone, the most confident framing (the answer), the
framings' vote (the reading with the most confidence summed over them), the framings' probabilities averaged
(multi-head readers only), the best framing per photo if one could pick it, and the answer a perfect finder
would give (the same framings and choice around the true digit box), also by the found box's IoU.
Figures only; asserts nothing.

Pick photos the reported figures do not use (training scores the first --whole-photos of the test split):

  .venv/bin/python bench/whole_photo_gap.py --model models/reader --finder models/finder \
      --test-dir data/syn200k/svhn/test --start 1000 --n 2000
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum.cli import make_parser, positive_int, run  # noqa: E402


def main(argv=None) -> int:
    p = make_parser(__doc__)
    p.add_argument("--model", default=str(REPO / "models" / "reader"), help="reader: run folder or model.keras")
    p.add_argument("--finder", default=str(REPO / "models" / "finder"), help="finder folder")
    p.add_argument("--test-dir", required=True, help="SVHN-format folder: PNGs + digitStruct.mat")
    p.add_argument("--start", type=int, default=1000, help="first photo (in the folder's label order)")
    p.add_argument("--n", type=positive_int, default=2000, help="photos read")
    args = p.parse_args(argv)

    from housenum import metrics as M
    from housenum.finder import Finder, iou
    from housenum.inference import decode_readings, predict_logits
    from housenum.photo_eval import test_photos, true_box_inputs
    from housenum.predict import READ_FRAMINGS, PhotoReader, Reader

    reader = Reader(args.model)
    photo_reader = PhotoReader(reader, Finder(args.finder))
    max_digits = reader.config.data.max_digits
    paths, truths, boxes = test_photos(Path(args.test_dir), args.start + args.n, max_digits)
    paths, truths, boxes = paths[args.start:], truths[args.start:], boxes[args.start:]
    ims = [Image.open(path).convert("L") for path in paths]
    texts, _ = reader.read_arrays(true_box_inputs(reader, ims, boxes))
    crop_ok = np.array([t == truth for t, truth in zip(texts, truths)])

    found = photo_reader.finder.find(ims)
    none = np.array([f.box is None for f in found])
    ious = np.array([iou(f.box, b) if f.box else 0.0 for f, b in zip(found, boxes)])
    per_photo = [photo_reader._crops(im, f.box) for im, f in zip(ims, found)]
    out = predict_logits(reader.model, np.stack([c for crops_ in per_photo for c in crops_]), 256)
    length, digits, conf = decode_readings(out, max_digits)
    read = [M.reading_to_text(n, d) for n, d in zip(length, digits)]
    spans = np.cumsum([0] + [len(c) for c in per_photo])

    print(f"{len(paths):,} photos from {args.test_dir} (numbers {args.start:,}..{args.start + len(paths) - 1:,}); "
          f"{reader.path}; finder {photo_reader.finder.path}")
    print(f"crops (true box + training margin):       {crop_ok.mean():.4f}")
    print(f"finder finds nothing:                     {none.mean():.4f}")
    print(f"found boxes: IoU mean {ious[~none].mean():.3f}, share with IoU < 0.5 {(ious[~none] < 0.5).mean():.4f}")
    def rate(ok) -> float:  # where the finder finds nothing the answer is "no number found": wrong
        return float(np.mean(np.asarray(ok, bool) & ~none))

    names = ["the photo as its own crop"] + [f"found box, shift {dx:+.0%}, margin {m:.0%}" for dx, m in READ_FRAMINGS]
    for j, name in enumerate(names):
        ok = [spans[i + 1] - spans[i] > j and read[spans[i] + j] == t for i, t in enumerate(truths)]
        print(f"  alone: {name:36s} {rate(ok):.4f}")
    pick, vote, best, mean = [], [], [], []
    for i, t in enumerate(truths):
        a, b = spans[i], spans[i + 1]
        pick.append(read[a + int(np.argmax(conf[a:b]))] == t)
        summed: dict[str, float] = {}
        for text, c in zip(read[a:b], conf[a:b]):
            summed[text] = summed.get(text, 0.0) + float(c)
        vote.append(max(summed, key=summed.get) == t)
        best.append(t in read[a:b])
        if "length" in out:  # averaged probabilities of the found box's framings (or the photo crop alone)
            k = a + 1 if b - a > 1 else a
            n, d, _ = M.decode(np.log(M.softmax(out["length"][k:b]).mean(0, keepdims=True)),
                               np.log(M.softmax(out["digits"][k:b]).mean(0, keepdims=True)))
            mean.append(M.reading_to_text(n[0], d[0]) == t)
    print(f"most confident framing (the answer):      {rate(pick):.4f}")
    print(f"framings' vote:                           {rate(vote):.4f}")
    if mean:
        print(f"framings' probabilities averaged:         {rate(mean):.4f}")
    print(f"best framing per photo (an oracle):       {rate(best):.4f}")

    # what a perfect finder would give: the same framings and choice around the true digit box
    true_framed = [photo_reader._crops(im, tuple(b)) for im, b in zip(ims, boxes)]
    texts, conf = reader.read_arrays(np.stack([c for crops_ in true_framed for c in crops_]))
    at = np.cumsum([0] + [len(c) for c in true_framed])
    true_ok = np.array([texts[at[i] + int(np.argmax(conf[at[i]:at[i + 1]]))] == t for i, t in enumerate(truths)])
    pick_ok = np.asarray(pick, bool) & ~none
    print(f"the answer from the TRUE box's framings:  {true_ok.mean():.4f}  (a perfect finder)")
    print("by the found box's IoU with the true one:  photos, answer right, from the true box")
    for lo, hi in ((0.0, 0.5), (0.5, 0.7), (0.7, 0.85), (0.85, 1.01)):
        m = (ious >= lo) & (ious < hi)
        if m.any():
            print(f"  IoU {lo:.2f}-{min(hi, 1.0):.2f}  {m.sum():6,d}  {pick_ok[m].mean():.4f}  {true_ok[m].mean():.4f}")
    return 0


if __name__ == "__main__":
    run(main)

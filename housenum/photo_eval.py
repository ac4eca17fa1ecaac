"""Scoring the reader as users use it: whole photos in (no box given), the finder and the abstain rule on.

Beside the test crops' accuracy, training reports on the same test split's uncropped photos:
whole-sequence accuracy (an abstention counts as wrong), the same with every photo answered (the abstain
rule off: the like-for-like figure beside the crops' accuracy, which answers every crop), coverage at
98 % accuracy, how well the found
box matches the digits' true union box (IoU), and, on generated photos with no number at all (blank,
noise, walls, letters-only signs, clutter: `housenum.scenes`), how often a number is wrongly read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from housenum import metrics as M
from housenum.errors import DataError


def test_photos(test_dir: Path, limit: int, max_digits: int) -> tuple[list[Path], list[str], np.ndarray]:
    """The first `limit` photos of an SVHN-format folder that exist and have a usable label: paths,
    true numbers, and the tight union boxes of their digits (N, 4: left, top, right, bottom)."""
    from housenum.digitstruct import read_digitstruct
    from housenum.preprocess import label_row

    mat = Path(test_dir) / "digitStruct.mat"
    if not mat.is_file():
        raise DataError(f"no {mat}: whole photos cannot be scored without the test photos")
    ds = read_digitstruct(mat)
    paths, truths, boxes = [], [], []
    for i in range(len(ds)):
        if len(paths) >= limit:
            break
        name, b = ds.record(i)
        label = label_row(b[:, 0], max_digits) if 0 < len(b) <= max_digits else None
        if label is None or not (Path(test_dir) / name).is_file():
            continue
        paths.append(Path(test_dir) / name)
        truths.append(M.reading_to_text(label[0], label[1:]))
        boxes.append((b[:, 1].min(), b[:, 2].min(), (b[:, 1] + b[:, 3]).max(), (b[:, 2] + b[:, 4]).max()))
    return paths, truths, np.array(boxes, float).reshape(-1, 4)


def true_box_inputs(reader, images, boxes: np.ndarray) -> np.ndarray:
    """Network inputs cut from `images` (PIL) around their true digit boxes (N, 4: left, top, right,
    bottom) as training crops them: the union box grown by the reader's training margin."""
    from housenum.photo import image_to_input, union_box

    size, width, margin = reader.image_size, reader.image_width, reader.config.data.margin
    rows = [np.array([[0, b[0], b[1], b[2] - b[0], b[3] - b[1]]], float) for b in boxes]  # one digit row each
    return np.stack([image_to_input(im, union_box(r, im.width, im.height, margin), size, width)
                     for im, r in zip(images, rows)])


def whole_photo_metrics(photo_reader, test_dir: Path, limit: int = 1000, negatives: int | None = None,
                        seed: int = 0) -> dict:
    """The figures named in the module docstring, for `photo_reader` (a `housenum.predict.PhotoReader`).
    `negatives`: how many no-number photos (default: as many as test photos read, at most 300)."""
    from housenum.finder import iou
    from housenum.predict import read_photos
    from housenum.scenes import SceneConfig, load_sources, make_scene

    max_digits = photo_reader.reader.config.data.max_digits
    paths, truths, true_boxes = test_photos(test_dir, limit, max_digits)
    if not paths:
        raise DataError(f"no readable labelled photos in {test_dir}")
    readings = read_photos(photo_reader, paths)
    correct = np.array([r.text == t for r, t in zip(readings, truths)])
    guessed = np.array([r.guess == t for r, t in zip(readings, truths)])
    conf = np.array([r.confidence if r.text else 0.0 for r in readings])
    ious = np.array([iou(r.box, b) if r.box else 0.0 for r, b in zip(readings, true_boxes)])
    out = {
        "n": len(paths),
        "data": str(test_dir),
        "sequence_accuracy": float(correct.mean()),
        # as the crops are scored: every photo answered (the finder's "no number" still counts as wrong)
        "sequence_accuracy_all_answered": float(guessed.mean()),
        "answered": float(np.mean([r.text is not None for r in readings])),
        "coverage_at_98": M.coverage_at_accuracy(correct, conf, 0.98),
        "box_iou_mean": float(ious.mean()),
        "box_iou_share_0.5": float((ious >= 0.5).mean()),
    }
    negatives = min(300, len(paths)) if negatives is None else negatives
    if negatives:
        # no-number photos: generated, since no photo set of ours is known to hold no number
        sources = load_sources([test_dir])
        cfg = SceneConfig().no_number()
        blank = [make_scene(sources, seed, i, cfg, stream="no-number").image for i in range(negatives)]
        said = photo_reader.read_images(blank)
        out["no_number_n"] = negatives
        out["no_number_read_as_number"] = float(np.mean([r.text is not None for r in said]))
    return out


def format_whole(m: dict) -> list[str]:
    lines = [f"whole photos (no box given, {m['n']:,} test photos, finder + abstain rule):",
             f"  whole-sequence accuracy:    {m['sequence_accuracy']:.4f}  (answered {m['answered']:.1%}; "
             f"no number found counts as wrong)",
             f"  ... every photo answered:   {m.get('sequence_accuracy_all_answered', float('nan')):.4f}  "
             f"(the abstain rule off, as the crops are scored)",
             f"  coverage at 98% accuracy:   {m['coverage_at_98']:.4f}",
             f"  box IoU mean / share >= 0.5: {m['box_iou_mean']:.3f} / {m['box_iou_share_0.5']:.3f}"]
    if "no_number_n" in m:
        lines.append(f"  no-number photos read as a number: {m['no_number_read_as_number']:.1%} "
                     f"of {m['no_number_n']:,} (blank, noise, walls, letters-only signs, clutter)")
    return lines

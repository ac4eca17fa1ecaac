"""bench/crisp_numbers.py: crisp numbers on plain walls, in typefaces the synthetic generator never uses."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import crisp_numbers  # noqa: E402


def test_a_photo_is_its_seed_and_its_box_holds_all_the_ink():
    a = crisp_numbers.crisp_photo(np.random.default_rng(3), [])
    b = crisp_numbers.crisp_photo(np.random.default_rng(3), [])
    assert a[1] == b[1] and a[2] == b[2] and np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
    rng = np.random.default_rng(0)
    for _ in range(20):
        im, text, (l, t, r, b) = crisp_numbers.crisp_photo(rng, [])
        assert im.size in crisp_numbers.SIZES and text.isdigit() and 1 <= len(text) <= 5
        assert len(text) == 1 or text[0] != "0"
        px = np.asarray(im).astype(int)
        ink = np.argwhere(np.abs(px - px[0, 0]).sum(axis=2) > 0)  # the wall is one colour; the corner is wall
        assert len(ink) and 0 <= l < r <= im.width and 0 <= t < b <= im.height
        assert ink[:, 0].min() >= t and ink[:, 0].max() < b and ink[:, 1].min() >= l and ink[:, 1].max() < r


def test_softened_photos_are_the_same_photos_less_sharp(tmp_path):
    crisp, truths, boxes = crisp_numbers.crisp_photos(2, 5, tmp_path, [])
    soft, truths2, boxes2 = crisp_numbers.crisp_photos(2, 5, tmp_path, [], softened=True)
    assert truths == truths2 and boxes == boxes2
    for c, s in zip(crisp, soft):
        edge = lambda im: np.abs(np.diff(np.asarray(im, float), axis=1)).max()  # noqa: E731
        assert c.size == s.size and edge(s) < edge(c)


def test_the_script_prints_the_readings_and_the_finders_boxes(capsys):
    assert crisp_numbers.main(["--n", "3", "--bundled-font-only", "--read-blur", "0"]) == 0
    out = capsys.readouterr().out
    assert "3 crisp photos" in out and "read blur 0" in out and "read right" in out
    assert "box IoU mean" in out and "reader alone on crops" in out

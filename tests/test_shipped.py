"""The reader and finder shipped in models/: a fresh clone reads photos with them, finds a number near
the edge of a large photo, and answers "no number found" for photos without one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorflow")

from housenum.predict import NO_NUMBER, SHIPPED, PhotoReader, Reader, find_finder, find_model  # noqa: E402
from tests.helpers import run_script  # noqa: E402


@pytest.fixture(scope="module")
def shipped():
    from housenum.finder import Finder

    assert (SHIPPED / "reader" / "model.keras").is_file(), "models/reader/model.keras must ship with the project"
    return PhotoReader(Reader(SHIPPED / "reader"), Finder(SHIPPED / "finder"))


def test_shipped_models_are_small_described_and_the_fallback(tmp_path):
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert size <= 10 * 2 ** 20, f"models/ holds {size / 2 ** 20:.1f} MB, over the 10 MB the project allows"
    meta = json.loads((SHIPPED / "reader" / "model.json").read_text())
    assert meta["task"] == "sequence" and 0 < meta["abstain_threshold"] < 1 and meta["metrics"]["data"]
    assert find_model(tmp_path / "no-results") == SHIPPED / "reader" / "model.keras"
    assert find_finder(tmp_path / "no-results") == SHIPPED / "finder"


def test_blank_and_noise_photos_are_no_number(shipped):
    rng = np.random.default_rng(0)
    photos = [Image.new("L", (1600, 1200), 128), Image.new("L", (640, 480), 250),
              Image.fromarray(rng.integers(0, 256, (900, 1200), dtype=np.uint8)),
              Image.fromarray(np.clip(rng.normal(128, 40, (480, 640)), 0, 255).astype(np.uint8))]
    assert [r.answer() for r in shipped.read_images(photos)] == [NO_NUMBER] * 4


def pasted_photos(root: Path, width: float, place) -> list[tuple[Path, str, tuple]]:
    """Ten synthetic SVHN-format photos (the shipped reader's kind of data, but not its training photos:
    another seed), each scaled to `width` of a 2400x1800 wall photo's width and pasted at place(i, w, h)
    (its left and top), saved as JPEG: (path, true number, union box of the digits in the wall's pixels)."""
    from housenum.digitstruct import read_digitstruct
    from housenum.metrics import reading_to_text
    from housenum.preprocess import label_row
    from housenum.synthetic import write_svhn_split

    folder = write_svhn_split(root / "svhn", "test", 10, seed=12345, workers=1, progress=False)
    ds = read_digitstruct(folder / "digitStruct.mat")
    cases = []
    for i in range(len(ds)):
        name, b = ds.record(i)
        with Image.open(folder / name) as im:
            number = im.convert("L")
        k = 2400 * width / number.width
        number = number.resize((round(number.width * k), round(number.height * k)), Image.BILINEAR)
        wall = Image.new("L", (2400, 1800), int(np.asarray(number).mean()))
        left, top = place(i, number.width, number.height)
        wall.paste(number, (left, top))
        union = (left + k * b[:, 1].min(), top + k * b[:, 2].min(), left + k * (b[:, 1] + b[:, 3]).max(),
                 top + k * (b[:, 2] + b[:, 4]).max())
        label = label_row(b[:, 0], 5)
        path = root / f"{i}.jpg"
        wall.save(path, quality=90)
        cases.append((path, reading_to_text(label[0], label[1:]), union))
    return cases


def found_right_wrong(readings, cases) -> tuple[int, int, int]:
    """How many boxes overlap the digits (IoU > 0.5), readings are right, and are wrong (not abstentions)."""
    from housenum.finder import iou, open_photo

    scale = [open_photo(p)[1] for p, _, _ in cases]
    found = [r.box is not None and iou(np.array(r.box) * k, union) > 0.5
             for r, k, (_, _, union) in zip(readings, scale, cases)]
    right = [r.text == truth for r, (_, truth, _) in zip(readings, cases)]
    wrong = [r.text is not None and not ok for r, ok in zip(readings, right)]
    return sum(found), sum(right), sum(wrong)


@pytest.fixture(scope="module")
def edge_photos(tmp_path_factory):
    """A quarter of the wall's width, 20 px from its right edge, at mid heights."""
    return pasted_photos(tmp_path_factory.mktemp("edge"), 0.25, lambda i, w, h: (2400 - w - 20, 500 + 60 * i))


def test_a_number_near_the_edge_of_a_large_photo_is_found_and_read(shipped, edge_photos, tmp_path):
    """Found about as often as the finder finds numbers in synthetic test scenes (95.8 %) and read about as
    often as the reader reads such photos whole (83-87 %, README; these ten: 9 and 9): bars of 7 and 6 of 10,
    and at most 2 wrong answers (the rest are abstentions)."""
    from housenum.finder import open_photo

    readings = shipped.read_images([open_photo(p)[0] for p, _, _ in edge_photos])
    found, right, wrong = found_right_wrong(readings, edge_photos)
    assert found >= 7 and right >= 6 and wrong <= 2, (found, right, wrong, [r.text for r in readings])
    # the same through the script, from the JPEG files, with the shipped models as the fallback
    out = run_script("predict_real_images.py", *(p for p, _, _ in edge_photos), "--results-dir", tmp_path / "none")
    assert out.returncode == 0, out.stderr
    assert "models/reader" in out.stderr and "models/finder" in out.stderr
    answers = [line.split("\t")[1] for line in out.stdout.splitlines()]
    assert answers == [r.answer() for r in readings]


def test_a_small_number_anywhere_in_a_large_photo_is_found_by_the_second_look(shipped, tmp_path):
    """Numbers 6 % of the wall's width (about 45-190 px tall of 1800), anywhere: the shipped finder's first
    look alone finds 5 of these 10 and the reader reads 5; with the second look at tiles 7 and 7, none wrong
    (2026-12-02, the finder reading with its blur; the finder before it: 5 / 4 and 7 / 6). At 8 % of the
    width the first look of the blurred finder already finds 8 and the tiles add none there, so the case
    moved to smaller numbers, where the second look is what finds them. Bars: one more found than the first
    look alone, 7 found, 6 read right, at most 2 wrong."""
    from housenum.finder import open_photo

    rng = np.random.default_rng(1)
    cases = pasted_photos(tmp_path, 0.06, lambda i, w, h: (int(rng.integers(0, 2400 - w)), int(rng.integers(0, 1800 - h))))
    photos = [open_photo(p)[0] for p, _, _ in cases]
    threshold = shipped.finder.tile_threshold
    assert threshold is not None, "the shipped finder has no tile threshold (python -m housenum.finder --add-tiles)"
    shipped.finder.tile_threshold = None
    try:
        first = found_right_wrong(shipped.read_images(photos), cases)
    finally:
        shipped.finder.tile_threshold = threshold
    found, right, wrong = found_right_wrong(shipped.read_images(photos), cases)
    assert found >= max(7, first[0] + 1) and right >= 6 and wrong <= 2, (first, (found, right, wrong))


def test_iphone_heic_photos_are_read_upright_as_the_same_photos_in_jpeg(shipped, edge_photos, tmp_path):
    """iPhones save HEIC by default: a folder of them is read (pillow-heif), each turned upright by its EXIF
    orientation, with the answers and boxes of the same photos as JPEG."""
    from housenum.finder import heif_opener, iou, open_photo

    assert heif_opener(), "pillow-heif (requirements.txt) is not installed"
    cases = edge_photos[:3]
    folder = tmp_path / "phone"
    folder.mkdir()
    for i, (path, _, _) in enumerate(cases):
        with Image.open(path) as im:
            if i == 0:  # stored on its side, as a phone held upright stores it, with the turn in its EXIF
                exif = Image.Exif()
                exif[0x0112] = 6
                im.transpose(Image.Transpose.ROTATE_90).save(folder / f"{i}.heic", quality=90, exif=exif.tobytes())
            else:
                im.save(folder / f"{i}.heic", quality=90)
    jpeg = shipped.read_images([open_photo(p)[0] for p, _, _ in cases])
    out = run_script("predict_real_images.py", folder, "--results-dir", tmp_path / "none")
    assert out.returncode == 0, out.stderr
    lines = [line.split("\t") for line in out.stdout.splitlines()]
    assert [Path(line[0]).name for line in lines] == ["0.heic", "1.heic", "2.heic"]
    assert [line[1] for line in lines] == [r.answer() for r in jpeg]
    for line, r, (path, _, _) in zip(lines, jpeg, cases):
        if r.answer_box():
            heic_box = np.array(line[3].split(","), float)
            assert iou(heic_box, np.array(r.answer_box()) * open_photo(path)[1]) > 0.8, (line, r.answer_box())


def test_crisp_numbers_in_an_unseen_typeface_are_boxed_better_with_the_finders_read_blur(shipped, tmp_path):
    """A phone photo of a clean plate is crisper than any training scene: 40 numbers drawn flat in Pillow's
    bundled typeface (not one of the generator's) on plain walls (bench/crisp_numbers.py, seed 2). The
    shipped finder reads with its blur (measured 2026-12-02: 23 boxed with IoU >= 0.5 and 22 read right,
    against 16 and 16 without it at the same threshold)."""
    import sys
    from dataclasses import replace

    from housenum.finder import iou

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import crisp_numbers

    photos, truths, boxes = crisp_numbers.crisp_photos(40, 2, tmp_path, [])
    finder = shipped.finder
    assert finder.cfg.read_blur > 0 and finder.meta["before_recalibration"]["config"].get("read_blur", 0) == 0

    def boxed(f) -> int:
        return sum(x.box is not None and iou(x.box, b) >= 0.5 for x, b in zip(f.find(photos), boxes))

    with_blur, shipped_cfg = boxed(finder), finder.cfg
    try:
        finder.cfg = replace(shipped_cfg, read_blur=0.0)
        without = boxed(finder)
    finally:
        finder.cfg = shipped_cfg
    assert with_blur >= 20 and with_blur > without, (with_blur, without)
    assert sum(r.text == t for r, t in zip(shipped.read_images(photos), truths)) >= 18

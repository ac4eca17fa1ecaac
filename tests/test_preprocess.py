"""Step 2 for SVHN: crops, labels, skip counts, the study's summary table, storage and its checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from housenum.config import DataConfig
from housenum.digitstruct import write_digitstruct
from housenum.errors import DataError
from housenum.dataset import load_svhn
from housenum.photo import image_to_input, standardize, union_box
from housenum.preprocess import format_table, label_row, preprocess_svhn

REPO = Path(__file__).resolve().parents[1]


def box(label, left, top, width, height):
    return [label, left, top, width, height]


def test_union_box_grows_by_margin_and_clips():
    boxes = np.array([box(1, 10, 20, 10, 20), box(2, 22, 18, 10, 24)], float)  # union x 10..32, y 18..42
    assert union_box(boxes, 100, 100, 0.0) == (10, 18, 32, 42)
    assert union_box(boxes, 100, 100, 0.5) == (4, 12, 38, 48)  # 22x24 grown by 25 % a side
    assert union_box(np.array([box(1, -5, -3, 10, 10)], float), 8, 8, 0.0) == (0, 0, 5, 7)  # starts outside
    assert union_box(np.array([box(1, 50, 50, 5, 5)], float), 20, 20, 0.0) is None  # wholly outside


def test_label_row_maps_ten_to_zero_and_marks_blanks():
    np.testing.assert_array_equal(label_row(np.array([2.0, 10.0, 5.0]), 5), [3, 2, 0, 5, 10, 10])
    for odd in ([0.0], [11.0], [2.5], [np.nan]):
        assert label_row(np.array(odd), 5) is None


def test_image_to_input_is_standardised_grayscale_of_fixed_size():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8))
    x = image_to_input(photo, (10, 5, 70, 45), 32)
    assert x.shape == (32, 32, 1) and x.dtype == np.float32
    assert abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 1e-3
    flat = image_to_input(Image.new("RGB", (40, 40), (90, 90, 90)), None, 32)
    assert np.all(flat == 0)
    assert np.allclose(standardize(np.array([1.0, 3.0])), [-1, 1])


def test_image_to_input_honours_exif_orientation():
    im = Image.new("L", (40, 20), 0)
    im.paste(255, (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    rotated = Image.open(_saved(im, exif))
    x = image_to_input(rotated, None, 8)[:, :, 0]
    assert x[:4].mean() > x[4:].mean()  # after rotation the white half is on top


def test_16_bit_and_float_grayscale_photos_read_as_their_8_bit_selves(tmp_path):
    """Pillow's own conversion clips 16-bit pixels at 255: a 16-bit PNG would be read as a white page."""
    from housenum.finder import open_photo

    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, (24, 40), dtype=np.uint8)
    eight[:, :20] //= 4  # a dark left half, so that clipping would show
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(eight.astype(np.uint16) * 257).save(sixteen)  # saved and read back as Pillow's "I;16"
    as_read, scale = open_photo(sixteen)
    assert Image.open(sixteen).mode.startswith("I;16") and as_read.mode == "L" and scale == 1
    assert np.array_equal(np.asarray(as_read), eight)
    want = image_to_input(Image.fromarray(eight), None, 16)
    for im in (Image.open(sixteen), Image.fromarray(eight.astype(np.float32), "F"),
               Image.fromarray(eight.astype(np.int32) * 257, "I")):
        assert np.allclose(image_to_input(im, None, 16), want, atol=1e-5), im.mode


def test_a_number_on_a_transparent_background_reads_as_on_a_white_page(tmp_path):
    """A house number cut out of its photo and saved with a transparent background: the colour stored under
    the transparent pixels is black, as are the digits; Pillow's conversion alone gives a black page."""
    from housenum.finder import open_photo
    from housenum.photo import grayscale

    rgba = np.zeros((20, 30, 4), np.uint8)  # transparent black everywhere
    rgba[5:15, 10:14, 3] = 255  # an opaque black stroke
    rgba[5:15, 20:24] = (255, 0, 0, 128)  # a half-transparent red one
    cut = Image.fromarray(rgba, "RGBA")
    want = np.full((20, 30), 255, np.uint8)
    want[5:15, 10:14] = 0
    red_on_white = Image.alpha_composite(Image.new("RGBA", (1, 1), "white"), Image.new("RGBA", (1, 1), (255, 0, 0, 128)))
    want[5:15, 20:24] = red_on_white.convert("L").getpixel((0, 0))
    assert np.array_equal(np.asarray(cut.convert("L"))[0], np.zeros(30))  # what Pillow gives: black
    indexed = np.zeros((20, 30), np.uint8)  # a palette image (GIF-like): colour 0 transparent, 1 black
    indexed[5:15, 10:14] = 1
    palette = Image.fromarray(indexed, "P")
    palette.putpalette([0, 0, 0] * 2)
    palette.info["transparency"] = 0
    for im in (cut, cut.convert("LA"), palette):
        assert np.array_equal(np.asarray(grayscale(im))[:, :14], want[:, :14]), im.mode
    cut.save(tmp_path / "cut.png")
    cut.save(tmp_path / "cut.webp", lossless=True)
    for path in (tmp_path / "cut.png", tmp_path / "cut.webp"):
        assert np.array_equal(np.asarray(open_photo(path)[0]), want), path


def test_a_box_is_cut_in_stored_pixels_then_turned_upright():
    """SVHN boxes are measured on the pixels as stored (MATLAB ignores EXIF): the crop must be cut there,
    then turned as the photo's orientation says."""
    im = Image.new("L", (40, 20), 128)
    im.paste(255, (20, 0, 30, 20))  # in the stored box (20..40): left half white, right half black
    im.paste(0, (30, 0, 40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: stored left becomes top
    x = image_to_input(Image.open(_saved(im, exif)), (20, 0, 40, 20), 8)[:, :, 0]
    assert x[:3].mean() > 0.8 and x[5:].mean() < -0.8  # white on top, black below: the box's own pixels


def _saved(im, exif):
    import io

    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes())
    buf.seek(0)
    return buf


# ------------------------------------------------------------------------ the real labels of the mirror
@pytest.fixture(scope="module")
def real_run(mirror_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "svhn.h5"
    summary = preprocess_svhn(mirror_data / "svhn", out, replace(DataConfig(), valid_size=2), progress=False,
                              log=lambda s: None)
    return summary, out


def test_real_test_row_matches_the_study(real_run):
    summary, _ = real_run
    test = summary["splits"]["test"]
    assert test["rows"] == 13068
    assert round(test["average_digits"], 2) == 1.99
    assert [test["length_counts"][str(k)] for k in range(1, 6)] == [2483, 8356, 2081, 146, 2]
    table = format_table(summary)
    assert "13,068" in table and "1.99" in table and "8,356" in table


def test_real_train_counts_the_six_digit_number_and_missing_images(real_run):
    summary, out = real_run
    train = summary["splits"]["train"]
    assert train["rows"] == 33402 and train["digits"] == 73257
    assert train["length_counts"][">5"] == 1 and train["skipped"]["too_many_digits"] == 1
    # only train/1.png..4.png are real pixels: everything else is counted missing, nothing silently lost
    assert train["kept"] == 4 and train["skipped"]["missing_image"] == 33402 - 1 - 4
    assert summary["splits"]["test"]["kept"] == 3 and summary["splits"]["extra"]["kept"] == 3
    rows = summary["output_rows"]
    assert rows == {"train": 4 + 3 - 2, "valid": 2, "test": 3}
    data = load_svhn(out)
    assert data.train[0].shape == (5, 32, 32, 1) and data.test[1].tolist()[0] == [1, 5, 10, 10, 10, 10]
    assert summary["splits"]["test"]["widest_box"]["max"] > summary["splits"]["test"]["widest_box"]["p98"]


# ----------------------------------------------------------------------------------- crafted inputs
def make_split(root: Path, split: str, records, images=True, corrupt=()):
    folder = root / "svhn" / split
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1}.png" for i in range(len(records))]
    write_digitstruct(folder / "digitStruct.mat", names, [np.array(r, float) for r in records])
    rng = np.random.default_rng(len(records))
    for i, name in enumerate(names):
        if not images:
            continue
        if i in corrupt:
            (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n not really")
        else:
            Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / name)
    return folder


def crafted(tmp_path):
    ok = [box(1, 5, 5, 10, 20), box(10, 16, 5, 10, 20)]
    train = [ok] * 8 + [
        [box(3, 5, 5, 10, 20)] * 6,  # six digits: dropped
        [box(11, 5, 5, 10, 20)],  # odd label: dropped
        [box(1, 500, 500, 10, 20)],  # box outside the image: dropped
        ok,  # image will be corrupt
        ok,  # image will be missing
    ]
    make_split(tmp_path, "train", train, corrupt={11})
    os.remove(tmp_path / "svhn" / "train" / "13.png")
    make_split(tmp_path, "test", [ok, [box(4, 1, 1, 8, 8)]])
    return tmp_path


def test_every_bad_record_is_counted_and_nothing_aborts(tmp_path):
    root = crafted(tmp_path)
    summary = preprocess_svhn(root / "svhn", tmp_path / "out.h5", replace(DataConfig(), valid_size=0.25),
                              workers=2, progress=False, log=lambda s: None)
    skipped = summary["splits"]["train"]["skipped"]
    assert skipped == {"too_many_digits": 1, "odd_label": 1, "empty_box": 1, "corrupt_image": 1, "missing_image": 1}
    assert summary["output_rows"] == {"train": 6, "valid": 2, "test": 2}
    data = load_svhn(tmp_path / "out.h5")
    assert data.train[1][0].tolist() == [2, 1, 0, 10, 10, 10]
    assert np.isfinite(data.train[0]).all()


def test_same_seed_same_validation_split(tmp_path):
    root = crafted(tmp_path)
    cfg = replace(DataConfig(), valid_size=3)
    names = []
    for i in range(2):
        preprocess_svhn(root / "svhn", tmp_path / f"o{i}.h5", cfg, workers=1 + i, progress=False, log=lambda s: None)
        with h5py.File(tmp_path / f"o{i}.h5") as f:
            names.append(sorted(f["valid/names"][()].tolist()))
    assert names[0] == names[1] and len(names[0]) == 3
    preprocess_svhn(root / "svhn", tmp_path / "o9.h5", replace(cfg, seed=9), progress=False, log=lambda s: None)
    with h5py.File(tmp_path / "o9.h5") as f:
        assert sorted(f["valid/names"][()].tolist()) != names[0]


def test_validation_larger_than_train_is_refused(tmp_path):
    root = crafted(tmp_path)
    with pytest.raises(DataError, match="--valid-size"):
        preprocess_svhn(root / "svhn", tmp_path / "o.h5", DataConfig(), progress=False, log=lambda s: None)
    assert not (tmp_path / "o.h5").exists() and not list(tmp_path.glob("o.h5*"))


def test_missing_split_and_stale_or_foreign_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="download_and_extract"):
        preprocess_svhn(tmp_path / "svhn", tmp_path / "o.h5", progress=False, log=lambda s: None)
    root = crafted(tmp_path)
    out = tmp_path / "o.h5"
    preprocess_svhn(root / "svhn", out, replace(DataConfig(), valid_size=1), progress=False, log=lambda s: None)
    mat = root / "svhn" / "test" / "digitStruct.mat"
    os.utime(mat, (mat.stat().st_atime, mat.stat().st_mtime + 100))
    with pytest.raises(DataError, match="stale"):
        load_svhn(out)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="not a readable HDF5"):
        load_svhn(tmp_path / "junk.h5")
    with pytest.raises(DataError, match="run preprocess_svhn.py first"):
        load_svhn(tmp_path / "absent.h5")


def test_the_data_carries_the_settings_that_made_it(tmp_path):
    root = crafted(tmp_path)
    made = DataConfig(image_size=24, margin=0.6, valid_size=0.25, use_extra=False, seed=3)
    preprocess_svhn(root / "svhn", tmp_path / "o.h5", made, progress=False, log=lambda s: None)
    data = load_svhn(tmp_path / "o.h5")
    assert data.config == made and data.image_size == 24


def test_script_prints_table_writes_summary_and_fails_in_one_line(tmp_path):
    root = crafted(tmp_path)
    cmd = [sys.executable, str(REPO / "preprocess_svhn.py"), "--data-dir", str(root), "--results-dir",
           str(tmp_path / "results"), "--valid-size", "2", "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "avg digits" in run.stdout and "missing_image" in run.stdout
    summary = json.loads((tmp_path / "results" / "svhn_summary.json").read_text())
    assert summary["output_rows"]["valid"] == 2
    for png in ("svhn_widest_box.png", "svhn_tallest_box.png"):
        assert (tmp_path / "results" / png).stat().st_size > 1000
    shutil.rmtree(root / "svhn" / "test")
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and bad.stderr.startswith("error:")

"""bench/compare_readers.py without the OCR engines (CI has none): the real photos' truths and crops, the
hit rule, the table, skipped engines, and our reader's adapter on a model built and exported here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compare_readers", REPO / "bench" / "compare_readers.py")
cr = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("compare_readers", cr)  # dataclasses look their module up there
_spec.loader.exec_module(cr)


@pytest.fixture(scope="module")
def unpacked(mirror_dir, tmp_path_factory) -> Path:
    return cr.unpack_mirror(mirror_dir, tmp_path_factory.mktemp("readers"))


@pytest.fixture(scope="module")
def photos(unpacked):
    return cr.real_photos(unpacked)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained network of the smoke preset, exported as a training run exports it."""
    pytest.importorskip("tensorflow")
    from housenum.model import build_model
    from housenum.train import export_model
    from tests.helpers import tiny_config

    cfg = tiny_config()
    run_dir = tmp_path_factory.mktemp("tiny_run")
    export_model(build_model(cfg.model), cfg, run_dir)
    return run_dir


def test_the_mirror_photos_carry_their_true_numbers_and_training_crops(photos, unpacked):
    from housenum.digitstruct import read_digitstruct

    assert [p.name for p in photos] == [f"{s}/{i}.png" for s, n in (("test", 3), ("train", 4), ("extra", 3))
                                        for i in range(1, n + 1)]
    # The first SVHN photos are well known: test 1-3 read 5, 210, 6 and train 1-4 read 19, 23, 25, 93.
    assert [p.truth for p in photos[:7]] == ["5", "210", "6", "19", "23", "25", "93"]
    labels = {split: read_digitstruct(unpacked / split / "digitStruct.mat") for split in ("test", "train", "extra")}
    for p in photos:
        split, name = p.name.split("/")
        _, boxes = labels[split].record(labels[split].names.index(name))
        assert p.truth == "".join(str(int(lab) % 10) for lab in boxes[:, 0])
        l, t, r, b = cr.crop_box(boxes, p.whole.width, p.whole.height)
        assert (p.crop.width, p.crop.height) == (r - l, b - t)
        assert np.array_equal(np.asarray(p.crop), np.asarray(p.whole)[t:b, l:r])
        # every digit box lies in the crop, and the crop is 30 % wider than their union unless clipped
        x0, y0 = boxes[:, 1].min(), boxes[:, 2].min()
        x1, y1 = (boxes[:, 1] + boxes[:, 3]).max(), (boxes[:, 2] + boxes[:, 4]).max()
        assert l <= max(0, x0) and r >= min(p.whole.width, x1) and t <= max(0, y0) and b >= min(p.whole.height, y1)
        if l > 0 and r < p.whole.width:
            assert abs((r - l) - 1.3 * (x1 - x0)) <= 2
        assert p.crop.width * p.crop.height < p.whole.width * p.whole.height


def test_a_hit_is_the_exact_digits_and_no_number_is_a_miss():
    assert cr.is_hit("210", "210")
    assert not cr.is_hit("21", "210") and not cr.is_hit("2100", "210") and not cr.is_hit("012", "210")
    assert not cr.is_hit(None, "5") and not cr.is_hit("", "5")
    assert cr.is_hit(None, "") and cr.is_hit("", "")
    assert cr.digits_only(" 2l0\n") == "20" and cr.digits_only("No. 1-9") == "19" and cr.digits_only(None) == ""


def _fake(name, answers):
    """An engine that answers from a table keyed by image size, and counts its calls."""
    calls = []

    def load():
        def read(im):
            calls.append(im.size)
            return answers.get(im.size)
        return read, f"{name} 1.0"
    return cr.Engine(name, load), calls


def _photo(name, truth, w, h):
    whole = Image.new("RGB", (w, h), "white")
    return cr.Photo(name, truth, whole, whole.crop((0, 0, w // 2, h // 2)))


def test_measure_counts_hits_on_crops_and_wholes_after_one_warm_up():
    photos = [_photo("a", "12", 40, 20), _photo("b", "7", 60, 30), _photo("c", "305", 90, 44)]
    answers = {(20, 10): "12", (30, 15): "1", (40, 20): "12", (60, 30): "7", (90, 44): None}
    engine, calls = _fake("fake", answers)
    row = cr.measure(engine, photos)
    assert len(calls) == 1 + 2 * len(photos)  # one warm-up, then every crop and every whole photo
    assert row.skipped is None and row.version == "fake 1.0" and row.photos == 3
    assert row.crop_readings == ["12", "1", None] and row.whole_readings == ["12", "7", None]
    assert (row.crop_hits, row.whole_hits) == (1, 2)
    assert row.cpu_ms >= 0 and row.wall_ms > 0


def test_missing_engines_are_reported_as_skipped(monkeypatch):
    photos = [_photo("a", "1", 40, 20)]
    row = cr.measure(cr.tesseract(7, exe="tesseract-not-installed-here"), photos)
    assert row.skipped == "tesseract-psm7 not installed (see bench/README.md)"
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # import fails as when not installed
    rows = [row, cr.measure(cr.rapidocr(full=False), photos), cr.measure(cr.rapidocr(full=True), photos)]
    assert [r.skipped for r in rows[1:]] == ["rapidocr-rec not installed (see bench/README.md)",
                                            "rapidocr-full not installed (see bench/README.md)"]
    assert cr.format_table(rows).splitlines() == [f"skipped: {r.skipped}" for r in rows]
    with pytest.raises(cr.HousenumError, match="unknown tesseract-psm9"):
        cr.make_engines(["ours", "tesseract-psm9"], None, "results")


def test_table_has_one_row_per_engine_then_the_skipped():
    rows = [cr.Row("ours", "v", photos=10, crop_hits=9, whole_hits=3, cpu_ms=4.25, wall_ms=5.5),
            cr.Row("tesseract-psm8", skipped="tesseract-psm8 not installed (see bench/README.md)"),
            cr.Row("rapidocr-rec", "v", photos=10, crop_hits=10, whole_hits=0, cpu_ms=1234.5, wall_ms=80.04)]
    lines = cr.format_table(rows).splitlines()
    assert lines[0].split() == ["engine", "crops", "whole", "CPU", "ms/photo", "wall", "ms/photo"]
    assert lines[1].split() == ["ours", "9/10", "3/10", "4.2", "5.5"]
    assert lines[2].split() == ["rapidocr-rec", "10/10", "0/10", "1234.5", "80.0"]
    assert lines[3] == "skipped: tesseract-psm8 not installed (see bench/README.md)"
    assert len({len(line) for line in lines[:3]}) == 1  # columns line up


def test_ours_reads_as_the_prediction_script_does(tiny_model, tmp_path):
    """The adapter reads PIL images exactly as predict_real_images.py reads the same photos from files."""
    from housenum.predict import PhotoReader, Reader, read_photos

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
              for w, h in ((40, 20), (99, 47), (300, 120), (32, 32))]
    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        im.save(paths[-1])
    got = cr.read_ours(tiny_model, images)
    assert got == [r.text for r in read_photos(PhotoReader(Reader(tiny_model)), paths)]
    assert all(t is None or t.isdigit() for t in got)
    assert cr._reader(str(tiny_model), None) is cr._reader(str(tiny_model), None)  # loaded once, outside the timing


def test_main_prints_the_table_and_writes_json(tiny_model, unpacked, mirror_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on the PATH, whatever this machine has
    monkeypatch.setitem(sys.modules, "rapidocr", None)
    out_json = tmp_path / "out" / "compare.json"
    assert cr.main(["--mirror", str(mirror_dir), "--data-dir", str(unpacked.parent), "--model", str(tiny_model),
                    "--engines", "ours,tesseract-psm7,rapidocr-full", "--json", str(out_json), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "skipped: tesseract-psm7 not installed (see bench/README.md)" in out
    assert "skipped: rapidocr-full not installed (see bench/README.md)" in out
    figures = json.loads(out_json.read_text())
    assert [p["truth"] for p in figures["photos"]][:3] == ["5", "210", "6"]
    ours = figures["engines"][0]
    assert ours["engine"] == "ours" and ours["skipped"] is None and ours["photos"] == 10
    assert ours["crop_hits"] == sum(cr.is_hit(r, p["truth"]) for r, p in zip(ours["crop_readings"], figures["photos"]))
    assert str(tiny_model) in ours["version"] and figures["date"]
    row = next(line for line in out.splitlines() if line.startswith("ours "))
    assert row.split()[1:3] == [f"{ours['crop_hits']}/10", f"{ours['whole_hits']}/10"]
    assert "test/2.png" in out and "crop / whole" in out  # --verbose: the per-photo readings


def _printed_number(text: str) -> Image.Image:
    """Black digits on white, large and clean: any OCR engine that runs at all reads them."""
    from PIL import ImageDraw

    from housenum.predict import _font

    im = Image.new("RGB", (60 * len(text) + 40, 110), "white")
    ImageDraw.Draw(im).text((20, 10), text, fill="black", font=_font(80))
    return im


@pytest.mark.parametrize("engine", ["tesseract-psm7", "tesseract-psm8", "rapidocr-rec", "rapidocr-full"])
def test_installed_engines_read_a_printed_number(engine):
    """Where an engine is installed (bench machines, not CI), its call really reads digits."""
    row = cr.measure(cr.make_engines([engine], None, "results")[0], [cr.Photo("p", "4067", _printed_number("4067"),
                                                                              _printed_number("4067"))])
    if row.skipped is not None:
        pytest.skip(row.skipped)
    assert (row.crop_readings, row.crop_hits) == (["4067"], 1)

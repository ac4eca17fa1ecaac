"""Step 5's choices before any reading: which model, which inputs, what is drawn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorflow")

from housenum.config import ModelConfig, RunConfig  # noqa: E402
from housenum.errors import HousenumError  # noqa: E402
from housenum.model import build_model  # noqa: E402
from housenum.predict import Reader, answered_paths, collect_paths, draw_reading, find_model, Reading  # noqa: E402
from housenum.sweep import letters_config  # noqa: E402
from housenum.train import export_model  # noqa: E402
from tests.helpers import run_script  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


TINY = RunConfig(model=ModelConfig(fc_units=(16,), conv_depths=(4,)))
SYNTHETIC = "synthetic SVHN-format data from a test"


def _export(run_dir: Path, cfg: RunConfig, accuracy: float, data: str | None = None, age: float = 0.0) -> Path:
    """A model as training exports it, trained on `data` (real SVHN unless said), written `age` seconds ago."""
    run_dir.mkdir(parents=True)
    key = "sequence_accuracy" if cfg.model.task == "sequence" else "accuracy"
    path = export_model(build_model(cfg.model), cfg, run_dir,
                        {"test": {key: accuracy}, "data": data or f"real SVHN of {run_dir.name}", "steps": 1})
    os.utime(path, (time.time() - age, time.time() - age))
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A number model, then a letters model written later (as run_all.py's baselines are)."""
    root = tmp_path_factory.mktemp("results")
    _export(root / "seed", TINY, 0.42, age=100)
    _export(root / "baselines" / "seed_letters", letters_config(RunConfig().train), 0.9)
    return root


def test_the_newest_number_model_is_chosen_over_a_newer_letters_model(results):
    assert find_model(results) == results / "seed" / "model.keras"
    reader = Reader(find_model(results))
    assert "real SVHN of seed" in reader.describe() and "42.0%" in reader.describe()


def test_a_reader_of_real_svhn_is_chosen_the_shipped_one_over_readers_of_synthetic_data(tmp_path, monkeypatch):
    """Offline, run_all.py trains a short demonstration reader on synthetic data, then the layer sweep: neither
    may read the user's photos in place of the shipped reader; a reader trained on real SVHN may, the newest."""
    import housenum.predict as predict
    from housenum.sweep import RUNS_FOLDER

    demo = _export(tmp_path / "synthetic" / "improved_synthetic", TINY, 0.3, SYNTHETIC, age=300)
    _export(tmp_path / "synthetic" / RUNS_FOLDER / "fc-1", TINY, 0.1, SYNTHETIC, age=200)
    assert predict.trained_readers(tmp_path) == [(demo, predict.model_meta(demo))]  # no sweep run
    assert find_model(tmp_path) == predict.SHIPPED / "reader" / "model.keras"
    # pointed at the sweep's own folder, its runs are readers like any
    sweep = tmp_path / "synthetic" / RUNS_FOLDER
    assert [p for p, _ in predict.trained_readers(sweep)] == [sweep / "fc-1" / "model.keras"]
    monkeypatch.setattr(predict, "SHIPPED", tmp_path / "no-models")  # a checkout without models/
    assert find_model(tmp_path) == demo
    monkeypatch.undo()
    old_real = _export(tmp_path / "real_old", TINY, 0.9, age=250)
    new_real = _export(tmp_path / "real", TINY, 0.9, age=100)
    _export(tmp_path / "synthetic_newest", TINY, 0.3, SYNTHETIC)
    assert find_model(tmp_path) == new_real != old_real


def test_the_script_says_which_readers_it_passed_over(tmp_path):
    demo = _export(tmp_path / "results" / "improved_synthetic", TINY, 0.3, SYNTHETIC)
    short = _finder_json(tmp_path / "results" / "finder", "synthetic SVHN-format data")
    photo = tmp_path / "wall.png"
    Image.new("L", (64, 48), 128).save(photo)
    proc = run_script("predict_real_images.py", photo, "--results-dir", tmp_path / "results")
    assert proc.returncode == 0, proc.stderr
    assert f"1 reader(s) trained on synthetic data under {tmp_path / 'results'}/ passed over" in proc.stderr
    assert str(demo) in proc.stderr and "models/reader" in proc.stderr
    assert f"1 finder(s) trained on synthetic data under {tmp_path / 'results'}/ passed over" in proc.stderr
    assert str(short) in proc.stderr and "finder " + str(REPO / "models" / "finder") in proc.stderr


def _finder_json(folder: Path, trained_on: str | None, age: float = 0.0) -> Path:
    """A finder.json as training writes it (without the weights: choosing reads only the json)."""
    folder.mkdir(parents=True)
    data = {"data_dir": str(folder)} if trained_on is None else {"trained_on": trained_on}
    path = folder / "finder.json"
    path.write_text(json.dumps({"kind": "housenum-finder-1", "data": data}))
    os.utime(path, (time.time() - age, time.time() - age))
    return folder


def test_a_finder_of_real_svhn_is_chosen_the_shipped_one_over_finders_of_synthetic_data(tmp_path, monkeypatch):
    import housenum.predict as predict
    from housenum.preprocess import REAL_SVHN, describe_origin

    synthetic = describe_origin({"train": "synthetic"})
    short = _finder_json(tmp_path / "finder", synthetic, age=300)
    older = _finder_json(tmp_path / "old_finder", None, age=400)  # trained before finders said what on
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "finder.json").write_text("{not json")
    assert predict.trained_finders(tmp_path) == [(short, json.loads((short / "finder.json").read_text())),
                                                (older, json.loads((older / "finder.json").read_text()))]
    assert predict.find_finder(tmp_path) == predict.SHIPPED / "finder"
    monkeypatch.setattr(predict, "SHIPPED", tmp_path / "no-models")  # a checkout without models/
    assert predict.find_finder(tmp_path) == short
    monkeypatch.undo()
    _finder_json(tmp_path / "real_old", REAL_SVHN, age=250)
    real = _finder_json(tmp_path / "real", describe_origin({"train": "download", "extra": "mirror"}), age=100)
    _finder_json(tmp_path / "synthetic_newest", synthetic)
    assert predict.find_finder(tmp_path) == real


def test_a_letters_model_named_for_reading_numbers_is_a_one_line_error(results):
    with pytest.raises(HousenumError, match="another task.*letters.*not a house-number reader"):
        Reader(results / "baselines" / "seed_letters")
    proc = run_script("predict_real_images.py", REPO / "README.md", "--model", results / "baselines" / "seed_letters")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "not a house-number reader" in proc.stderr


def test_missing_inputs_are_reported_before_any_model_is_looked_for(tmp_path):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(REPO / "predict_real_images.py"), str(tmp_path / "a.jpg"),
                           str(tmp_path / "b.png"), "--results-dir", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"error: {tmp_path / 'a.jpg'}: no such file",
                                        f"error: {tmp_path / 'b.png'}: no such file"]
    assert time.perf_counter() - start < 20  # no TensorFlow start-up (seconds) before saying so


def test_a_folder_without_images_is_named(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    Image.new("RGB", (10, 10)).save(tmp_path / "p.png")
    paths, warnings = collect_paths([str(tmp_path / "notes"), str(tmp_path / "p.png")])
    assert paths == [tmp_path / "p.png"] and len(warnings) == 1 and "notes holds no image files" in warnings[0]


def test_a_phone_folder_is_read_with_its_subfolders_but_not_hidden_files_or_the_drawings(tmp_path):
    """A phone's photos copied over: DCIM/ holds one folder per batch of photos, Android keeps thumbnails
    in DCIM/.thumbnails, macOS leaves ._ files beside each photo on a shared drive, and --show may write
    into the folder being read; only the photos themselves are read."""
    dcim = tmp_path / "DCIM"
    for name in ("100APPLE/IMG_0001.JPG", "100APPLE/IMG_0002.heic", "101APPLE/IMG_0101.jpg", "Camera/a.png",
                 ".thumbnails/1.jpg", "100APPLE/._IMG_0001.JPG", "readings/0000_IMG_0001_read.png"):
        (dcim / name).parent.mkdir(parents=True, exist_ok=True)
        (dcim / name).write_bytes(b"x")
    for name in ("101APPLE/IMG_0102.MOV", "101APPLE/IMG_0103.mov", "Camera/b.dng"):
        (dcim / name).write_bytes(b"x")
    paths, warnings = collect_paths([str(dcim)], skip=[dcim / "readings"])
    assert paths == [dcim / "100APPLE/IMG_0001.JPG", dcim / "100APPLE/IMG_0002.heic", dcim / "101APPLE/IMG_0101.jpg",
                     dcim / "Camera/a.png"]
    assert warnings == [f"{dcim}: 3 file(s) that are not images left out (.dng 1, .mov 2)"]
    paths, _ = collect_paths([str(dcim / "Camera"), str(dcim / "100APPLE" / "._IMG_0001.JPG")])
    assert paths == [dcim / "Camera/a.png", dcim / "100APPLE" / "._IMG_0001.JPG"]  # a file named is read as named


def test_photos_are_read_a_batch_at_a_time_in_order_with_errors_in_place(tmp_path):
    """A folder of thousands of photos gives its answers batch by batch (an interrupted run keeps them)."""
    from housenum.predict import iter_readings, read_photos

    class Widths:  # a reader that "reads" each photo's width, and remembers its batches
        def __init__(self):
            self.batches = []

        def read_images(self, photos):
            self.batches.append(len(photos))
            return [Reading("?", str(im.width), 0.9, (0, 0, 1, 1)) for im in photos]

    paths = []
    for i in range(7):
        paths.append(tmp_path / f"{i}.png")
        if i == 3:
            paths[-1].write_bytes(b"not a png")
        else:
            Image.new("L", (20 + i, 10)).save(paths[-1])
    reader = Widths()
    batches = list(iter_readings(reader, paths, batch=3))
    assert [len(b) for b in batches] == [3, 3, 1] and reader.batches == [3, 2, 1]
    flat = [r for b in batches for r in b]
    assert [r.path for r in flat] == [str(p) for p in paths]
    assert [r.text for r in flat] == ["20", "21", "22", None, "24", "25", "26"] and "not an image" in flat[3].error
    assert [r.text for r in read_photos(Widths(), paths, batch=2)] == [r.text for r in flat]


def test_an_interrupted_run_with_out_continues_where_it_stopped(tmp_path, results, monkeypatch):
    """A folder read with --out, stopped part way (the last line cut short): the same command again reads
    only the photos without an answer, and the file ends with one whole line per photo, in order. The first
    run is a process of its own, as from the shell; the others run in this process (the same main)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.new("L", (60 + 10 * i, 40), 40 * i).save(photos / f"{i}.png")
    out = tmp_path / "readings.tsv"
    args = [str(photos), "--model", str(results / "seed"), "--no-finder", "--out", str(out), "--batch-size", "2"]
    first = subprocess.run([sys.executable, str(REPO / "predict_real_images.py"), *args], capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    whole = out.read_text().splitlines()
    assert whole == first.stdout.splitlines() and [line.split("\t")[0] for line in whole] == [
        str(photos / f"{i}.png") for i in range(4)]
    out.write_text("\n".join(whole[:2]) + "\n" + whole[2][:7])  # stopped while writing the third line
    again = run_script("predict_real_images.py", *args)
    assert again.returncode == 0, again.stderr
    assert "2 of 4 photo(s) already answered" in again.stderr and again.stdout.splitlines() == whole[2:]
    assert out.read_text().splitlines() == whole
    # the same photos named another way (relative to the working folder) are the same photos
    monkeypatch.chdir(tmp_path)
    again = run_script("predict_real_images.py", "./photos/", *args[1:])
    assert again.returncode == 0 and again.stdout == "" and "4 of 4" in again.stderr, again.stderr
    # a file that is not a readings file is not written to
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n")
    again = run_script("predict_real_images.py", *args[:-4], "--out", notes)
    assert again.returncode == 1 and "holds no readings" in again.stderr and notes.read_text() == "shopping list\n"
    with pytest.raises(HousenumError, match="is not a folder: make it"):
        answered_paths(tmp_path / "no-such-folder" / "readings.tsv")
    with pytest.raises(HousenumError, match="is a folder"):
        answered_paths(tmp_path)


def test_show_draws_on_a_copy_of_bounded_size(tmp_path):
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8)).save(big)
    out = draw_reading(big, Reading(str(big), "12", 0.5), tmp_path / "shown", 0)
    with Image.open(out) as im:
        assert max(im.size) <= 1600 + 160 and im.width == 1600  # the banner adds to the height only


def test_show_draws_a_16_bit_photo_as_it_looks_not_white(tmp_path):
    photo = tmp_path / "sixteen.png"
    Image.fromarray(np.full((120, 160), 100 * 257, np.uint16)).save(photo)  # mid-grey in 16 bits
    with Image.open(draw_reading(photo, Reading(str(photo), None, 0.0), tmp_path / "shown", 0)) as im:
        under_banner = np.asarray(im.convert("L"))[-100:]
    assert abs(float(under_banner.mean()) - 100) < 2


def test_an_abstained_reading_shows_no_box(tmp_path):
    """ "no number found" comes without a box, printed or drawn; a reading keeps its box."""
    photo = tmp_path / "wall.png"
    Image.new("RGB", (400, 300), (90, 90, 90)).save(photo)
    box = (100, 100, 200, 160)
    read, abstained = Reading(str(photo), "12", 0.9, box), Reading(str(photo), None, 0.3, box, guess="12")
    assert read.answer_box() == box and abstained.answer_box() is None and abstained.box == box

    def yellow_below_banner(reading, index):
        with Image.open(draw_reading(photo, reading, tmp_path / "shown", index)) as im:
            a = np.asarray(im.convert("RGB"))[-300:]  # the photo under the banner
        return int(np.sum((a[..., 0] > 200) & (a[..., 1] > 200) & (a[..., 2] < 80)))

    assert yellow_below_banner(read, 0) > 100 and yellow_below_banner(abstained, 1) == 0


def test_a_photo_larger_than_pillow_decodes_safely_is_a_one_line_error_not_corrupt(tmp_path, monkeypatch):
    from housenum.predict import load_photo

    photo = tmp_path / "panorama.png"
    Image.new("L", (100, 100)).save(photo)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels: over twice the limit, Pillow refuses
    with pytest.raises(HousenumError, match=r"too large to decode safely \(0 megapixels; Pillow refuses over 0\)"):
        load_photo(photo)


def test_a_finder_given_as_the_reader_a_reader_as_the_finder_and_a_truncated_reader_say_so(tmp_path):
    from housenum.finder import Finder
    from housenum.predict import SHIPPED

    with pytest.raises(HousenumError, match="it holds a finder: pass that as --finder"):
        Reader(SHIPPED / "finder")
    with pytest.raises(HousenumError, match="it holds a number reader: pass that as --model"):
        Finder(SHIPPED / "reader")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "model.keras").write_bytes((SHIPPED / "reader" / "model.keras").read_bytes()[:100_000])
    (cut / "model.json").write_bytes((SHIPPED / "reader" / "model.json").read_bytes())
    with pytest.raises(HousenumError, match=r"not a whole \.keras file \(truncated, or another format\)"):
        Reader(cut)

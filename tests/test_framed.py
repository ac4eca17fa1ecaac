"""Training crops framed as reading frames them (housenum.framed): which rows change, to what, and what not."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from housenum import framed
from housenum.dataset import load_svhn
from housenum.errors import DataError

FINDER = Path(__file__).resolve().parents[1] / "models" / "finder"
pytestmark = pytest.mark.xdist_group("small-synthetic")  # the session's small synthetic data is made once


def test_rows_and_framings_are_a_function_of_the_seed():
    rows, framings = framed.choose_rows(1000, 0.3, 5)
    again, same = framed.choose_rows(1000, 0.3, 5)
    other, _ = framed.choose_rows(1000, 0.3, 6)
    assert len(rows) == 300 and len(set(rows)) == 300 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, again) and np.array_equal(framings, same) and not np.array_equal(rows, other)
    assert set(framings) == set(range(5))


def test_a_share_of_the_train_crops_is_framed_exactly_as_photos_are_read(small_synthetic_svhn, tmp_path):
    from housenum.finder import Finder
    from housenum.predict import PhotoReader

    src, out = small_synthetic_svhn["h5"], tmp_path / "framed.h5"
    done = framed.frame_file(src, FINDER, out, share=0.5, seed=3, log=lambda *a: None)
    before, after = load_svhn(src), load_svhn(out)
    n = len(before.train[0])
    rows, framings = framed.choose_rows(n, 0.5, 3)
    assert done["rows_chosen"] == len(rows) == round(n / 2) and done["rows_framed"] >= 0.8 * len(rows)
    changed = np.flatnonzero(np.any(before.train[0] != after.train[0], axis=(1, 2, 3)))
    # (a framing can cut exactly the crop preprocessing cut: the finder's box on the true box, the same margin)
    assert set(changed) <= set(rows) and 0.9 * done["rows_framed"] <= len(changed) <= done["rows_framed"]
    # labels, validation and test crops stay as preprocessing made them
    assert np.array_equal(before.train[1], after.train[1])
    for split in ("valid", "test"):
        assert all(np.array_equal(x, y) for x, y in zip(getattr(before, split), getattr(after, split)))
    # a framed row is one of the crops reading cuts from the same photo around the finder's box
    finder, root = Finder(FINDER), Path(before.source)
    with h5py.File(src, "r") as h5:
        names = [x.decode() for x in h5["train"]["names"][()]]
    reader_like = type("R", (), {"image_size": before.image_size, "image_width": None, "meta": {}})()
    for i in changed[:5]:
        photo = Image.open(root / names[i]).convert("L")
        box = finder.find([photo])[0].box
        k = int(framings[np.searchsorted(rows, i)])
        crops = PhotoReader(reader_like, finder)._crops(photo, box)
        assert np.array_equal(after.train[0][i], crops[1 + k])
    # the data's description says so (training copies it into the model's description of its data)
    assert "of the train crops framed as reading frames them" in after.description
    with h5py.File(out, "r") as h5:
        assert json.loads(h5.attrs["summary"])["framed"]["seed"] == 3


def test_bad_settings_and_missing_photos_are_one_line_errors(small_synthetic_svhn, tmp_path):
    src = small_synthetic_svhn["h5"]
    with pytest.raises(DataError, match=r"--share: expected a share of the train crops in \(0, 1\]"):
        framed.frame_file(src, FINDER, tmp_path / "x.h5", share=0)
    with pytest.raises(DataError, match="is the input file"):
        framed.frame_file(src, FINDER, src)
    with pytest.raises(DataError, match="no preprocessed data"):
        framed.frame_file(tmp_path / "none.h5", FINDER, tmp_path / "x.h5")
    # a copy of the file whose photos are gone: said in one line, nothing written
    moved = tmp_path / "moved.h5"
    moved.write_bytes(Path(src).read_bytes())
    with h5py.File(moved, "r+") as h5:
        summary = json.loads(h5.attrs["summary"])
        summary["source"] = str(tmp_path / "gone")
        h5.attrs["summary"] = json.dumps(summary)
    with pytest.raises(DataError, match="the photos the crops were cut from are gone"):
        framed.frame_file(moved, FINDER, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()

"""Readers combined into one (housenum.ensemble): the mean of their probabilities, as a reader like any other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from housenum.config import ModelConfig, RunConfig  # noqa: E402
from housenum.ensemble import build, combine, main  # noqa: E402
from housenum.errors import HousenumError  # noqa: E402
from housenum.inference import predict_logits, read_numbers  # noqa: E402
from housenum.metrics import softmax  # noqa: E402
from housenum.model import build_model  # noqa: E402
from housenum.predict import Reader  # noqa: E402
from housenum.train import export_model  # noqa: E402

pytestmark = pytest.mark.xdist_group("small-synthetic")  # the session's small synthetic data is made once


def _reader(folder: Path, seed: int, size: int = 32, fc: int = 64) -> Path:
    """A small untrained number reader exported as training exports one (weights from `seed`)."""
    import keras

    keras.utils.set_random_seed(seed)
    cfg = RunConfig(model=ModelConfig(fc_units=(fc,), conv_depths=(4, 8), image_size=size))
    folder.mkdir(parents=True)
    export_model(build_model(cfg.model), cfg, folder, {"test": {"sequence_accuracy": 0.1 * seed},
                                                       "data": "data of the test", "steps": 1})
    return folder


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    return [_reader(root / f"r{i}", i + 1) for i in range(3)]


def test_the_combination_gives_the_mean_of_the_members_probabilities(members):
    readers = [Reader(p) for p in members]
    x = np.random.default_rng(0).normal(size=(7, 32, 32, 1)).astype(np.float32)
    combined = predict_logits(combine([r.model for r in readers]), x)
    each = [predict_logits(r.model, x) for r in readers]
    for head in ("length", "digits"):
        mean = np.mean([softmax(o[head]) for o in each], axis=0)
        assert np.allclose(softmax(combined[head]), mean, atol=1e-5)
        assert np.allclose(np.exp(combined[head]).sum(axis=-1), 1.0, atol=1e-5)  # already log-probabilities


def test_an_ensemble_is_written_scored_and_read_as_any_reader(members, small_synthetic_svhn, tmp_path):
    h5 = small_synthetic_svhn["h5"]
    result = build(members, h5, tmp_path / "ens", log=lambda *_: None)
    meta = json.loads((tmp_path / "ens" / "model.json").read_text())
    assert [m["path"] for m in meta["ensemble"]["members"]] == [str(p / "model.keras") for p in members]
    assert [m["test"] for m in meta["ensemble"]["members"]] == pytest.approx([0.1, 0.2, 0.3])
    assert meta["abstain_threshold"] == result["valid"]["threshold_at_98"]
    assert meta["metrics"]["test"]["n"] == result["test"]["n"] > 0 and meta["metrics"]["data"] == "data of the test"
    reader = Reader(tmp_path / "ens")
    assert "an ensemble of 3 readers" in reader.describe()
    x = np.random.default_rng(1).normal(size=(5, 32, 32, 1)).astype(np.float32)
    texts, conf = reader.read_arrays(x)
    want = read_numbers(combine([Reader(p).model for p in members]), x)
    assert texts == want[0] and np.allclose(conf, want[1], atol=1e-5)

    # int8 fully connected weights: a much smaller file reading (nearly) the same
    small = build(members, h5, tmp_path / "ens8", weights="int8", log=lambda *_: None)
    size = {k: (tmp_path / k / "model.keras").stat().st_size for k in ("ens", "ens8")}
    assert size["ens8"] < 0.6 * size["ens"]
    q = predict_logits(Reader(tmp_path / "ens8").model, x)
    f = predict_logits(reader.model, x)
    assert np.abs(softmax(q["digits"]) - softmax(f["digits"])).max() < 0.05
    assert abs(small["test"]["digit_accuracy"] - result["test"]["digit_accuracy"]) < 0.05
    # int4: smaller still
    smaller = build(members, h5, tmp_path / "ens4", weights="int4", log=lambda *_: None)
    assert (tmp_path / "ens4" / "model.keras").stat().st_size < size["ens8"], size
    q4 = predict_logits(Reader(tmp_path / "ens4").model, x)
    assert np.abs(softmax(q4["digits"]) - softmax(f["digits"])).max() < 0.1
    assert abs(smaller["test"]["digit_accuracy"] - result["test"]["digit_accuracy"]) < 0.05
    assert json.loads((tmp_path / "ens4" / "model.json").read_text())["ensemble"]["weights"] == "int4"


def test_readers_that_do_not_combine_are_one_line_errors(members, small_synthetic_svhn, tmp_path):
    h5 = small_synthetic_svhn["h5"]
    wide = _reader(tmp_path / "wide", 9, size=48)
    with pytest.raises(HousenumError, match="inputs of different shapes"):
        build([members[0], wide], h5, tmp_path / "out")
    with pytest.raises(HousenumError, match="at least two"):
        build(members[:1], h5, tmp_path / "out")
    with pytest.raises(HousenumError, match="holds one of the readers"):
        build(members[:2], h5, members[1])
    with pytest.raises(HousenumError, match="48-pixel inputs"):
        build([wide, _reader(tmp_path / "wide2", 10, size=48)], h5, tmp_path / "out")
    with pytest.raises(HousenumError, match="no model at"):
        build([members[0], tmp_path / "missing"], h5, tmp_path / "out")
    with pytest.raises(HousenumError, match="no preprocessed data"):
        main([str(members[0]), str(members[1]), "--data", str(tmp_path / "none.h5"), "--out", str(tmp_path / "o")])
    # nothing was written, and the members are as they were
    assert not (tmp_path / "out").exists()
    assert all((p / "model.keras").is_file() for p in members)


def test_the_data_is_read_without_its_train_rows(small_synthetic_svhn):
    """The ensemble scores on validation and test only: the train split is not read (0.9 GB at 200,000 numbers)."""
    from housenum.dataset import load_svhn

    full, some = load_svhn(small_synthetic_svhn["h5"]), load_svhn(small_synthetic_svhn["h5"], splits=("valid", "test"))
    assert len(full.train[0]) > 0 and some.train[0].shape == (0,) + full.train[0].shape[1:]
    assert some.train[1].shape == (0,) + full.train[1].shape[1:] and some.train[0].dtype == full.train[0].dtype
    for a, b in ((full.valid, some.valid), (full.test, some.test)):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert some.description == full.description and some.config == full.config


def test_smooth_blurs_as_scipy_does_then_standardises():
    from scipy.ndimage import gaussian_filter

    from housenum.model import Smooth
    from housenum.photo import standardize

    x = np.random.default_rng(2).normal(size=(4, 32, 32, 1)).astype(np.float32)
    got = Smooth(0.6)(x).numpy()
    want = np.stack([standardize(gaussian_filter(a[:, :, 0], 0.6, mode="reflect"))[:, :, None] for a in x])
    assert np.abs(got - want).max() < 1e-4
    assert got.std(axis=(1, 2, 3)) == pytest.approx(1.0, abs=1e-4)
    assert np.array_equal(Smooth(0.0)(x).numpy(), x)  # sigma 0 passes the input through
    assert np.all(np.isfinite(Smooth(0.6)(np.zeros((1, 32, 32, 1), np.float32)).numpy()))  # a flat crop stays finite
    with pytest.raises(HousenumError, match="sigma must be in"):
        Smooth(-1)


def test_smoothing_is_chosen_on_validation_and_travels_with_the_ensemble(members, small_synthetic_svhn, tmp_path):
    h5 = small_synthetic_svhn["h5"]
    from housenum.ensemble import SIGMAS

    lines = []
    result = build(members, h5, tmp_path / "auto", smooth="auto", log=lines.append)
    meta = json.loads((tmp_path / "auto" / "model.json").read_text())["ensemble"]
    tried = {float(k): v for k, v in meta["smooth_valid"].items()}
    assert sorted(tried) == sorted(SIGMAS)
    best = max(tried.values())
    assert tried[meta["smooth"]] == best and meta["smooth"] == min(s for s, v in tried.items() if v == best)
    assert result["valid"]["sequence_accuracy"] == pytest.approx(best)
    assert any("smoothing sigma" in line for line in lines)

    # a fixed sigma: the saved model blurs its input before the members read it
    build(members, h5, tmp_path / "s", smooth=0.9, log=lambda *_: None)
    reader = Reader(tmp_path / "s")
    assert json.loads((tmp_path / "s" / "model.json").read_text())["ensemble"]["smooth"] == 0.9
    x = np.random.default_rng(3).normal(size=(5, 32, 32, 1)).astype(np.float32)
    from housenum.model import Smooth

    plain = combine([Reader(p).model for p in members])
    assert np.allclose(predict_logits(reader.model, x)["digits"], predict_logits(plain, Smooth(0.9)(x).numpy())["digits"],
                       atol=1e-4)
    assert not np.allclose(predict_logits(reader.model, x)["digits"], predict_logits(plain, x)["digits"], atol=1e-4)
    with pytest.raises(HousenumError, match="--smooth: expected auto or a sigma"):
        main([str(members[0]), str(members[1]), "--data", str(h5), "--out", str(tmp_path / "o"), "--smooth", "soft"])
    assert not (tmp_path / "o").exists()



@pytest.fixture(scope="module")
def two_int4(members, small_synthetic_svhn, tmp_path_factory) -> Path:
    """An int4 ensemble of the first two members, as the shipped reader is stored."""
    out = tmp_path_factory.mktemp("two_int4") / "ens"
    build(members[:2], small_synthetic_svhn["h5"], out, weights="int4", log=lambda *_: None)
    return out


def test_an_ensemble_adds_its_members_as_stored(members, two_int4, small_synthetic_svhn, tmp_path):
    """A shipped ensemble grows by a new member without its members' run folders: the old members keep their
    (quantized) weights and their records, the new one is quantized as --weights asks."""
    h5 = small_synthetic_svhn["h5"]
    quiet = {"log": lambda *_: None}
    build(members[:2], h5, tmp_path / "two", **quiet)
    build([tmp_path / "two", members[2]], h5, tmp_path / "three", **quiet)
    meta = json.loads((tmp_path / "three" / "model.json").read_text())["ensemble"]
    assert [m["path"] for m in meta["members"]] == [str(p / "model.keras") for p in members]
    assert [m.get("via") for m in meta["members"]] == [str(tmp_path / "two" / "model.keras")] * 2 + [None]
    x = np.random.default_rng(4).normal(size=(6, 32, 32, 1)).astype(np.float32)
    want = predict_logits(combine([Reader(p).model for p in members]), x)  # float32 all through: the same model
    got = predict_logits(Reader(tmp_path / "three").model, x)
    assert np.allclose(softmax(got["digits"]), softmax(want["digits"]), atol=1e-5)

    # int4 members stay exactly as stored; the new member is quantized to int4 too; :1 picks the second
    build([f"{two_int4}:1", members[2]], h5, tmp_path / "pick4", weights="int4", **quiet)
    old, new = Reader(two_int4).model, Reader(tmp_path / "pick4").model
    assert [m["path"] for m in json.loads((tmp_path / "pick4" / "model.json").read_text())["ensemble"]["members"]] \
        == [str(members[1] / "model.keras"), str(members[2] / "model.keras")]
    kept, added = new.get_layer("member0").get_layer("fc1"), new.get_layer("member1").get_layer("fc1")
    stored = old.get_layer("member1").get_layer("fc1")
    assert kept.quantization_mode == added.quantization_mode == "int4"
    assert all(np.array_equal(a, b) for a, b in zip(kept.get_weights(), stored.get_weights()))


def test_members_that_cannot_be_added_are_one_line_errors(members, two_int4, small_synthetic_svhn, tmp_path):
    import shutil

    h5 = small_synthetic_svhn["h5"]
    blurred = tmp_path / "blurred"  # as `--smooth` writes one: its members read a blurred input
    shutil.copytree(two_int4, blurred)
    meta = json.loads((blurred / "model.json").read_text())
    meta["ensemble"]["smooth"] = 0.6
    (blurred / "model.json").write_text(json.dumps(meta))
    cases = [([two_int4, members[2]], {"weights": "int8"}, "holds int4 readers: pass --weights int4"),
             ([f"{members[0]}:0", members[1]], {}, "a single reader, not an ensemble"),
             ([f"{two_int4}:2", members[1]], {"weights": "int4"}, "has members 0-1: no member 2"),
             ([f"{two_int4}:1,1"], {"weights": "int4"}, "picked twice"),
             ([f"{two_int4}:0"], {"weights": "int4"}, "at least two readers"),
             ([blurred, members[2]], {"weights": "int4"}, "blurs its input")]
    for paths, kw, message in cases:
        with pytest.raises(HousenumError, match=message):
            build(paths, h5, tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def _logits(labels, rng, sure: float):
    """Length and digit logits that favour the true reading by `sure` (0: noise alone)."""
    n = len(labels)
    length = rng.normal(size=(n, 6))
    digits = rng.normal(size=(n, 5, 10))
    length[np.arange(n), labels[:, 0]] += sure
    for i in range(5):
        inside = labels[:, 0] > i
        digits[np.flatnonzero(inside), i, labels[inside, i + 1]] += sure
    return {"length": length.astype(np.float32), "digits": digits.astype(np.float32)}


def test_member_weights_favour_the_member_that_makes_the_truth_likelier():
    from housenum.ensemble import fit_member_weights
    from tests.helpers import random_labels

    rng = np.random.default_rng(5)
    labels = random_labels(rng, 400)
    good, bad = _logits(labels, rng, 4.0), _logits(labels, rng, 0.0)
    weights, fit = fit_member_weights([bad, good], labels)
    assert sum(weights) == pytest.approx(1.0) and weights[1] > 0.9, weights
    assert fit["nll_fit"] < fit["nll_equal"]
    same, _ = fit_member_weights([good, good], labels)  # nothing to tell them apart: equal weights
    assert same == pytest.approx([0.5, 0.5], abs=1e-3)


def test_fitted_member_weights_travel_with_the_ensemble(members, small_synthetic_svhn, tmp_path):
    h5 = small_synthetic_svhn["h5"]
    lines = []
    build(members, h5, tmp_path / "fit", member_weights="fit", log=lines.append)
    meta = json.loads((tmp_path / "fit" / "model.json").read_text())["ensemble"]
    w = meta["member_weights"]
    assert len(w) == 3 and sum(w) == pytest.approx(1.0) and all(x >= 0 for x in w)
    assert meta["member_weights_fit"]["nll_fit"] <= meta["member_weights_fit"]["nll_equal"] + 1e-6
    assert any(line.startswith("member weights") for line in lines)
    x = np.random.default_rng(6).normal(size=(5, 32, 32, 1)).astype(np.float32)
    each = [predict_logits(Reader(p).model, x) for p in members]
    got = predict_logits(Reader(tmp_path / "fit").model, x)  # saved and loaded: the weights come back
    for head in ("length", "digits"):
        want = sum(wk * softmax(o[head]) for wk, o in zip(w, each))
        assert np.allclose(softmax(got[head]), want, atol=1e-5)
    with pytest.raises(HousenumError, match="member weights: expected one of equal, fit"):
        build(members, h5, tmp_path / "out", member_weights="best")
    with pytest.raises(HousenumError, match="2 member weights for 3 readers"):
        combine([Reader(p).model for p in members], member_weights=[0.5, 0.5])
    assert not (tmp_path / "out").exists()

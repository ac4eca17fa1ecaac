"""The selectable architectures (seed, goodfellow, ctc): shapes, training, export and reading, CTC decoding
and loss, the in-model crop, and wider-than-tall inputs from the one shared crop function."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

import h5py
import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from housenum import config as C  # noqa: E402
from housenum.config import BLANK, DataConfig, ModelConfig  # noqa: E402
from housenum.ctc import CTC_BLANK, OUTPUT, ctc_loss, greedy_decode  # noqa: E402
from housenum.dataset import Data, load_svhn  # noqa: E402
from housenum.errors import HousenumError  # noqa: E402
from housenum.inference import evaluate, predict_logits, read_numbers  # noqa: E402
from housenum.metrics import labels_to_text, reading_metrics  # noqa: E402
from housenum.model import RandomCentreCrop, RandomLighting, build_model, count_params  # noqa: E402
from housenum.photo import image_to_input, standardize, union_box  # noqa: E402
from housenum.predict import Reader  # noqa: E402
from housenum.preprocess import preprocess_svhn  # noqa: E402
from housenum.train import Trainer, per_example_loss  # noqa: E402
from tests.helpers import random_labels  # noqa: E402
from tests.test_preprocess import crafted  # noqa: E402


def layer(model, name):
    return model.get_layer(name)


# ------------------------------------------------------------------------------------------ shapes
def test_presets_select_their_architecture_and_validate():
    for name, arch in (("seed", "seed"), ("smoke", "seed"), ("improved", "seed"), ("deep", "seed"),
                       ("goodfellow", "goodfellow"), ("gpu", "goodfellow"), ("ctc", "ctc")):
        cfg = C.preset(name).validate()
        assert cfg.model.arch == arch
    # deep is improved with a second convolution in each block, and nothing else
    assert C.deep() == replace(C.improved(), model=replace(C.improved().model, convs_per_block=2))
    assert [layer.name for layer in build_model(C.deep().model).layers if layer.name.startswith("conv")] == [
        f"conv{i}_{j}" for i in (1, 2, 3) for j in (1, 2)]
    assert ModelConfig().arch == "seed" and DataConfig().image_width is None  # the study stays the default
    with pytest.raises(HousenumError, match="arch must be one of"):
        ModelConfig(arch="resnet").validate()
    with pytest.raises(HousenumError, match="crop must be"):
        ModelConfig(crop=40).validate()
    for bad in ({"augment_rotate": 60.0}, {"augment_lighting": 1.5}, {"augment_lighting": -0.1}):
        with pytest.raises(HousenumError, match="augment_rotate must be"):
            ModelConfig(**bad).validate()


def test_goodfellow_is_built_as_published():
    cfg = C.goodfellow().model
    model = build_model(cfg)
    convs = [layer(model, f"conv{i}") for i in range(1, 9)]
    assert [c.filters for c in convs] == [48, 64, 128, 160, 192, 192, 192, 192]
    assert all(c.kernel_size == (5, 5) for c in convs)
    assert [layer(model, f"pool{i}").strides for i in range(1, 9)] == [(2, 2), (1, 1)] * 4
    assert [layer(model, f"fc{i}").units for i in (1, 2)] == [3072, 3072]
    assert model.input.shape[1:] == (64, 64, 1)
    assert layer(model, "crop").output.shape[1:] == (54, 54, 1)
    # 54 -> 27 -> 14 -> 7 -> 4 through the stride-2 pools: 4 x 4 x 192 = 3,072 features
    assert layer(model, "flatten").output.shape[1:] == (3072,)
    out = model(tf.zeros((2, 64, 64, 1)), training=False)
    assert out["length"].shape == (2, 6) and out["digits"].shape == (2, 5, 10)
    conv_w = sum(5 * 5 * a * b + 2 * b for a, b in zip((1, 48, 64, 128, 160, 192, 192, 192),
                                                      cfg.conv_depths))  # kernels + batch-norm gamma, beta
    fc_w = 3072 * 3072 + 3072 + 3072 * 3072 + 3072
    heads = 3072 * 6 + 6 + 3072 * 50 + 50
    assert count_params(model) == conv_w + fc_w + heads


def test_ctc_reads_columns_of_a_wider_than_tall_input():
    cfg = C.ctc().model
    model = build_model(cfg)
    assert model.input.shape[1:] == (32, 96, 1)
    out = model(tf.zeros((3, 32, 96, 1)), training=False)
    assert list(out) == [OUTPUT]
    # 96 px wide, halved by every block but the last: 24 columns of 10 digits + the blank
    assert out[OUTPUT].shape == (3, 24, 11)
    assert type(layer(model, "sequence")).__name__ == "Bidirectional"
    with pytest.raises(HousenumError, match="8 columns in 32 px width"):
        build_model(replace(cfg, image_width=32))  # too narrow for five digits with blanks between


def test_seed_network_is_unchanged():
    model = build_model(ModelConfig())
    # the study's network, as before the architectures existed: 4x4 kernels 16/32/64, FC 128/64/16, heads
    convs = (4 * 4 * 1 * 16 + 16) + (4 * 4 * 16 * 32 + 32) + (4 * 4 * 32 * 64 + 64)
    fcs = (4 * 4 * 64 * 128 + 128) + (128 * 64 + 64) + (64 * 16 + 16)
    assert count_params(model) == convs + fcs + (16 * 6 + 6) + (16 * 50 + 50)
    assert [layer(model, f"pool{i}").strides for i in (1, 2, 3)] == [(2, 2)] * 3


def test_the_crop_is_random_per_image_in_training_and_central_at_inference():
    crop = RandomCentreCrop(4, seed=1)
    x = tf.reshape(tf.range(2 * 8 * 8, dtype=tf.float32), (2, 8, 8, 1))
    x = tf.concat([x[:1]] * 16, axis=0)  # sixteen copies of one image
    centre = crop(x, training=False).numpy()
    np.testing.assert_array_equal(centre[0, :, :, 0], x.numpy()[0, 2:6, 2:6, 0])
    train = crop(x, training=True).numpy()
    assert train.shape == (16, 4, 4, 1)
    assert len({t.tobytes() for t in train}) > 3  # each image drew its own place
    # every training crop is a 4 x 4 window of the image itself
    img = x.numpy()[0, :, :, 0]
    windows = {img[r:r + 4, c:c + 4].tobytes() for r in range(5) for c in range(5)}
    assert all(t[:, :, 0].tobytes() in windows for t in train)


def test_lighting_changes_each_training_crop_and_leaves_inference_alone():
    rng = np.random.default_rng(0)
    one = standardize(rng.normal(size=(16, 16)).cumsum(axis=1))[None, :, :, None].astype(np.float32)
    x = tf.constant(np.concatenate([one] * 16))  # sixteen copies of one standardised crop
    light = RandomLighting(0.5, seed=1)
    np.testing.assert_array_equal(light(x, training=False).numpy(), x.numpy())
    lit = light(x, training=True).numpy()
    assert lit.shape == x.shape and np.isfinite(lit).all()
    # each crop drew its own light and is standardised again, as housenum.photo standardises a photo's crop
    assert len({t.tobytes() for t in lit}) == 16
    np.testing.assert_allclose(lit.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(lit.std(axis=(1, 2, 3)), 1, atol=1e-4)
    assert np.abs(lit - x.numpy()).mean() > 0.05
    # light changes brightness, not the picture: the crops stay close to the one they were lit from
    corr = [np.corrcoef(t.ravel(), one.ravel())[0, 1] for t in lit]
    assert min(corr) > 0.5, corr
    # the same seed draws the same light; a flat crop stays finite (no division by a zero spread)
    np.testing.assert_array_equal(RandomLighting(0.5, seed=1)(x, training=True).numpy(), lit)
    assert np.isfinite(RandomLighting(0.5, seed=1)(tf.zeros((2, 8, 8, 1)), training=True).numpy()).all()


# ------------------------------------------------------------------------------------------- CTC
def path_logits(path: list[int], classes: int = 11, sharp: float = 8.0) -> np.ndarray:
    """Logits that make `path` (one class per column) the best path."""
    out = np.zeros((len(path), classes), np.float32)
    out[np.arange(len(path)), path] = sharp
    return out


def test_greedy_decoding_collapses_repeats_and_drops_blanks():
    b = CTC_BLANK
    paths = [
        [b, 3, 3, b, 3, 7, 7, b, b, b],  # "337": repeats merge, a blank separates the two 3s
        [b] * 10,  # nothing read
        [1, 2, 3, 4, 5, 6, 7, b, b, b],  # seven digits: longer than max_digits, kept whole
    ]
    length, digits, conf = greedy_decode(np.stack([path_logits(p) for p in paths]), max_digits=5)
    assert length.tolist() == [3, 0, 7]
    assert digits.shape == (3, 7)  # widened to the longest reading, never cut at five
    assert digits[0].tolist() == [3, 3, 7] + [BLANK] * 4
    assert digits[1].tolist() == [BLANK] * 7
    assert digits[2].tolist() == [1, 2, 3, 4, 5, 6, 7]
    # the confidence is the best path's probability: the product of each column's top probability
    p_top = np.exp(8.0) / (np.exp(8.0) + 10)
    np.testing.assert_allclose(conf, p_top ** 10, rtol=1e-6)
    # a 7-digit reading is wrong against any label of at most 5 digits, not an error
    labels = np.array([[3, 3, 3, 7, BLANK, BLANK], [1, 4, BLANK, BLANK, BLANK, BLANK],
                       [5, 1, 2, 3, 4, 5]], np.int32)
    m = reading_metrics(length, digits, conf, labels)
    assert m["sequence_accuracy"] == pytest.approx(1 / 3) and m["length_accuracy"] == pytest.approx(1 / 3)


def test_ctc_loss_matches_a_hand_computed_case_and_tf():
    # two columns of uniform logits, label "3": the paths 33, 3-, -3 each have probability (1/11)^2
    logits = tf.zeros((1, 2, 11))
    labels = tf.constant([[1, 3, BLANK, BLANK, BLANK, BLANK]], tf.int32)
    loss = ctc_loss(logits, labels).numpy()
    assert loss[0] == pytest.approx(-np.log(3 / 121), rel=1e-5)
    # per_example_loss dispatches on the output key
    assert per_example_loss({OUTPUT: logits}, labels).numpy()[0] == pytest.approx(loss[0], rel=1e-6)
    rng = np.random.default_rng(0)
    lg = tf.constant(rng.normal(size=(4, 12, 11)), tf.float32)
    lab = tf.constant(random_labels(rng, 4))
    # the reference takes sparse labels (a different code path in TensorFlow) and time-major logits
    y = lab.numpy()
    idx = [[i, j] for i in range(4) for j in range(y[i, 0])]
    sparse = tf.SparseTensor(idx, [int(y[i, 1 + j]) for i, j in idx], (4, 5))
    ref = tf.nn.ctc_loss(sparse, tf.transpose(lg, (1, 0, 2)), None, tf.fill([4], 12), blank_index=CTC_BLANK)
    np.testing.assert_allclose(per_example_loss({OUTPUT: lg}, lab).numpy(), ref.numpy(), rtol=1e-5)


# ---------------------------------------------------------------------------- training and reading
def random_split(rng, n: int, shape: tuple[int, int]):
    return rng.normal(size=(n, *shape, 1)).astype(np.float32), random_labels(rng, n)


def small_run(name: str, shape: tuple[int, int], steps: int = 10, **model):
    """The preset with a short schedule: one repeated batch of 8, so a few steps must lower the loss."""
    base = C.preset(name)
    rng = np.random.default_rng(0)
    train = random_split(rng, 8, shape)
    data = Data(train, (train[0][:4], train[1][:4]), random_split(rng, 8, shape), "random test data",
                config=replace(base.data, image_size=shape[0], image_width=None if shape[0] == shape[1] else shape[1]))
    cfg = replace(
        base,
        model=replace(base.model, keep_prob=1.0, **model),
        train=replace(base.train, steps=steps, batch_size=8, eval_every=2, checkpoint_every=steps, optimizer="adam",
                      learning_rate=1e-3, eval_batch=8),
    )
    return cfg, data


@pytest.mark.parametrize("name,shape,model", [
    ("seed", (32, 32), {}),
    # the published layout at a quarter of the widths: the same code path, a tenth of the CPU time
    ("goodfellow", (64, 64), {"conv_depths": (12, 16, 32, 40, 48, 48, 48, 48), "fc_units": (256, 256)}),
    ("ctc", (32, 96), {}),
    # every training-only augmentation at once: shift and zoom (the preset's), rotation and lighting
    ("improved", (32, 32), {"augment_rotate": 10.0, "augment_lighting": 0.5}),
])
def test_each_architecture_trains_exports_and_reads_through_one_path(tmp_path, name, shape, model):
    cfg, data = small_run(name, shape, **model)
    trainer = Trainer(cfg, data, tmp_path / name)
    result = trainer.fit()
    losses = [row["loss"] for row in trainer.runlog.history]
    assert losses[-1] < losses[0], losses
    assert result["steps"] == 10 and (tmp_path / name / "model.keras").is_file()

    images, labels = data.test
    reader = Reader(tmp_path / name)
    assert reader.config.model == trainer.cfg.model
    reader.warm_up()
    texts, conf = reader.read_arrays(images)
    mine, my_conf = read_numbers(trainer.model, images)
    assert texts == mine
    np.testing.assert_allclose(conf, my_conf, rtol=1e-5)
    assert ((0 <= conf) & (conf <= 1)).all()
    # the metrics score exactly these readings
    accuracy = np.mean([t == want for t, want in zip(texts, labels_to_text(labels))])
    assert result["test"]["sequence_accuracy"] == pytest.approx(accuracy)
    assert evaluate(reader.model, images, labels)["sequence_accuracy"] == pytest.approx(accuracy)
    assert set(predict_logits(reader.model, images)) == set(trainer.model.output)


def test_model_and_data_sizes_must_agree_in_one_place(tmp_path):
    cfg, data = small_run("ctc", (32, 96))
    square = replace(cfg, data=replace(cfg.data, image_width=None))
    with pytest.raises(HousenumError, match=r"32x96px \(height x width\).*--image-width 96"):
        square.validate()
    wrong = Data(*(random_split(np.random.default_rng(1), 8, (32, 32)) for _ in range(3)), "square data",
                 config=replace(cfg.data, image_width=None))
    with pytest.raises(HousenumError, match="32x96px"):
        Trainer(cfg, wrong, tmp_path / "r")


# ------------------------------------------------------------------------------------ preprocessing
def test_image_to_input_width_is_a_resize_to_that_width():
    rng = np.random.default_rng(3)
    im = Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    square = image_to_input(im, (5, 5, 45, 30), 32)
    np.testing.assert_array_equal(square, image_to_input(im, (5, 5, 45, 30), 32, None))
    np.testing.assert_array_equal(square, image_to_input(im, (5, 5, 45, 30), 32, 32))
    wide = image_to_input(im, (5, 5, 45, 30), 32, 96)
    assert wide.shape == (32, 96, 1)
    want = standardize(np.asarray(im.crop((5, 5, 45, 30)).convert("L").resize((96, 32), Image.BILINEAR), np.float32))
    np.testing.assert_array_equal(wide[:, :, 0], want)


def expected_rows(folder, names, cfg: DataConfig) -> np.ndarray:
    """What the crop does, written out: union box, grayscale, bilinear resize, per-image standardisation."""
    from housenum.digitstruct import read_digitstruct

    ds = read_digitstruct(folder / "digitStruct.mat")
    by_name = {ds.record(i)[0]: ds.record(i)[1] for i in range(len(ds))}
    out = []
    for name in names:
        with Image.open(folder / name) as im:
            box = union_box(by_name[name], im.width, im.height, cfg.margin)
            gray = im.crop(box).convert("L").resize((cfg.image_width or cfg.image_size, cfg.image_size),
                                                    Image.BILINEAR)
        out.append(standardize(np.asarray(gray, np.float32))[:, :, None])
    return np.stack(out)


def test_square_default_data_is_todays_arrays_and_a_width_makes_wide_ones(tmp_path):
    root = crafted(tmp_path)
    square = replace(DataConfig(), valid_size=0.25)
    preprocess_svhn(root / "svhn", tmp_path / "square.h5", square, workers=1, progress=False, log=lambda s: None)
    with h5py.File(tmp_path / "square.h5") as f:
        assert f["test"]["images"].shape == (2, 32, 32, 1)
        names = [n.decode().split("/", 1)[1] for n in f["test"]["names"][()]]
        np.testing.assert_array_equal(f["test"]["images"][()], expected_rows(root / "svhn" / "test", names, square))
    assert load_svhn(tmp_path / "square.h5").config == square

    wide = replace(square, image_width=96)
    preprocess_svhn(root / "svhn", tmp_path / "wide.h5", wide, workers=1, progress=False, log=lambda s: None)
    data = load_svhn(tmp_path / "wide.h5")
    assert data.config.image_width == 96 and data.train[0].shape[1:] == (32, 96, 1)
    with h5py.File(tmp_path / "wide.h5") as f:
        names = [n.decode().split("/", 1)[1] for n in f["test"]["names"][()]]
    np.testing.assert_array_equal(data.test[0], expected_rows(root / "svhn" / "test", names, wide))
    assert dataclasses.asdict(data.config)["image_width"] == 96


def test_a_checkpoint_from_before_the_architectures_resumes(tmp_path, monkeypatch):
    """Runs started before arch, image_width, crop and seq_units existed recorded configs without them:
    they resume, since absent settings mean their defaults."""
    new_keys = {"model": ("arch", "image_width", "crop", "seq_units"), "data": ("image_width",)}
    real_to_json = C.RunConfig.to_json

    def old_to_json(self):
        d = json.loads(real_to_json(self))
        for part, keys in new_keys.items():
            for k in keys:
                d[part].pop(k)
        return json.dumps(d, indent=2, sort_keys=True)

    cfg, data = small_run("seed", (32, 32), steps=4)
    monkeypatch.setattr(C.RunConfig, "to_json", old_to_json)
    Trainer(cfg, data, tmp_path / "r").fit()
    monkeypatch.setattr(C.RunConfig, "to_json", real_to_json)
    result = Trainer(replace(cfg, train=replace(cfg.train, steps=6)), data, tmp_path / "r").fit()
    assert result["steps"] == 6
    # a real difference in settings is still refused
    with pytest.raises(HousenumError, match="different settings"):
        Trainer(replace(cfg, model=replace(cfg.model, patch=3), train=replace(cfg.train, steps=8)), data,
                tmp_path / "r").fit()


def test_numbers_longer_than_five_go_from_the_generator_to_the_ctc_reader(tmp_path):
    """Users ask why five digits is the most: generated 6-8 digit numbers, kept by --max-digits 8, train the
    ctc reader, whose readings may be that long; a length-head network is sized from the data too, and a
    model whose heads do not match the data is a one-line error."""
    from housenum.synthetic import SyntheticConfig, write_svhn_split

    style = SyntheticConfig(long_share=0.6, max_image_side=160)
    for split, n in (("train", 30), ("test", 10)):
        write_svhn_split(tmp_path / "svhn", split, n, seed=5, config=style, workers=1, progress=False)
    five = replace(DataConfig(), image_width=96, valid_size=0.2)
    summary = preprocess_svhn(tmp_path / "svhn", tmp_path / "five.h5", five, workers=1, progress=False,
                              log=lambda s: None)
    dropped = summary["splits"]["train"]["skipped"]["too_many_digits"]
    assert dropped > 5  # the study's setting drops them, and counts them
    eight = replace(five, max_digits=8)
    preprocess_svhn(tmp_path / "svhn", tmp_path / "eight.h5", eight, workers=1, progress=False, log=lambda s: None)
    data = load_svhn(tmp_path / "eight.h5")
    lengths = np.concatenate([data.train[1][:, 0], data.valid[1][:, 0]])
    assert data.train[1].shape[1] == 9 and len(lengths) == 30 and (lengths > 5).sum() == dropped
    assert data.config.max_digits == 8

    base = C.ctc()
    cfg = replace(base, model=replace(base.model, max_digits=8, keep_prob=1.0), data=data.config,
                  train=replace(base.train, steps=4, batch_size=8, eval_every=4, checkpoint_every=4, eval_batch=8))
    result = Trainer(cfg, data, tmp_path / "ctc").fit()
    assert np.isfinite(result["test"]["sequence_accuracy"])
    texts, conf = Reader(tmp_path / "ctc").read_arrays(data.test[0])
    assert len(texts) == len(data.test[0]) and ((0 <= conf) & (conf <= 1)).all()
    length, digits, _ = greedy_decode(np.eye(11, dtype=np.float32)[[1, 10, 2, 10, 3, 4, 5, 6, 7, 10, 8, 9]][None] * 9, 5)
    assert labels_to_text(np.c_[length, digits])[0] == "123456789"  # longer than any head count

    seed = C.seed_network()
    sized = replace(seed, model=replace(seed.model, image_width=96, max_digits=8), data=data.config).validate()
    assert build_model(sized.model)(tf.zeros((1, 32, 96, 1)))["digits"].shape == (1, 8, 10)
    with pytest.raises(HousenumError, match=r"reads up to 5 digits but the data's labels hold up to 8 "
                                            r"\(preprocessed with --max-digits 8\)"):
        replace(seed, model=replace(seed.model, image_width=96), data=data.config).validate()

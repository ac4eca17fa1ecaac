"""The finder: scenes, letterbox geometry, grid targets, a short training that learns, save/load."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from housenum.errors import DataError, HousenumError
from housenum.finder import (PASSES, STRIDE, Finder, FinderConfig, Letterbox, add_tiles, choose_threshold,
                             choose_tile_threshold, decode, encode, letterbox, locate, locate_passes, main,
                             make_scene_set, scene_photos, scenes_and_photos, smoke, tiles_of, train_finder)
from housenum.scenes import SceneConfig, load_sources, make_scene

# One worker takes the whole file: spread over two, each would train the `trained` finder (30 s).
pytestmark = pytest.mark.xdist_group("finder")

# Small scenes keep the whole file fast; the geometry is the same at any size.
SMALL = SceneConfig(long_side=(96, 160), negative_share=0.5)
# The short training's scenes: numbers a quarter of the photo wide or more, few distractors, so that a
# few hundred steps on a narrow network learn something measurable.
EASY = dataclasses.replace(SMALL, number_width=(0.25, 0.9), edge_cut_prob=0.0, max_distractors=2)


@pytest.fixture(scope="module")
def svhn_dir(tmp_path_factory):
    """A tiny SVHN-format data set (svhn/train, svhn/test) from the synthetic generator."""
    from housenum.synthetic import write_svhn_split

    root = tmp_path_factory.mktemp("finder_data")
    write_svhn_split(root / "svhn", "train", 40, seed=1, workers=1, progress=False)
    write_svhn_split(root / "svhn", "test", 20, seed=2, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def trained(svhn_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("finder_run")
    # A lenient threshold (15 % false positives) so accuracy reflects what was learnt, not the strictness.
    cfg = dataclasses.replace(smoke(300), train_scenes=400, valid_scenes=60, test_scenes=120, max_fpr=0.15,
                              learning_rate=5e-3, eval_every=300)
    meta = train_finder(svhn_dir, out, cfg, EASY, workers=1, log=lambda *_: None)
    return out, meta


def test_scenes_are_deterministic_and_boxes_lie_inside(svhn_dir):
    sources = load_sources([svhn_dir / "svhn" / "train"])
    kinds = set()
    for i in range(30):
        a, b = make_scene(sources, 7, i, SMALL), make_scene(sources, 7, i, SMALL)
        assert a.box == b.box and a.kind == b.kind
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
        kinds.add(a.kind)
        if a.box is None:
            assert a.kind == "negative"
        else:
            l, t, r, bt = a.box
            assert 0 <= l < r <= a.image.width and 0 <= t < bt <= a.image.height
    assert kinds == {"negative", "pasted", "original", "framed"}
    # Another seed or stream is another scene.
    same = [np.array_equal(np.asarray(make_scene(sources, 7, i, SMALL).image),
                           np.asarray(make_scene(sources, 7, i, SMALL, stream="test").image)) for i in range(5)]
    assert not all(same)


def test_scenes_made_once_with_their_photos_are_the_scene_set_and_photos_made_apart(svhn_dir):
    sources = load_sources([svhn_dir / "svhn" / "test"])
    scenes, photos = scenes_and_photos(sources, "test", 5, 12, 64, SMALL)
    apart = make_scene_set(sources, "test", 5, 12, 64, SMALL, workers=1)
    assert np.array_equal(scenes.pixels, apart.pixels) and np.array_equal(scenes.stats, apart.stats)
    assert np.array_equal(scenes.boxes, apart.boxes, equal_nan=True) and scenes.kinds == apart.kinds
    assert [np.asarray(p).tobytes() for p in photos] == [np.asarray(p).tobytes()
                                                         for p in scene_photos(sources, "test", 5, 12, SMALL)]


def test_framed_scenes_are_the_number_filling_the_frame(svhn_dir):
    """A close-up or a hand-cropped photo: the number spans most of the scene, whatever its pixel size."""
    sources = load_sources([svhn_dir / "svhn" / "train"])
    cfg = dataclasses.replace(SMALL, negative_share=0.0, original_share=0.0, framed_share=1.0)
    scenes = [make_scene(sources, 3, i, cfg) for i in range(20)]
    assert all(s.kind == "framed" for s in scenes)
    for s in scenes:
        l, t, r, b = s.box
        assert 0 <= l < r <= s.image.width and 0 <= t < b <= s.image.height
        assert (r - l) / s.image.width > 0.45 and (b - t) / s.image.height > 0.45
    assert min(max(s.image.size) for s in scenes) < 40  # some as small as a tiny crop
    with pytest.raises(DataError, match="framed_share"):
        SceneConfig(negative_share=0.5, original_share=0.3, framed_share=0.3)


def test_crisp_scenes_are_sharp_digits_inside_their_ink_box(svhn_dir):
    """A clean plate's phone photo: the number drawn at its final size, not degraded, its box the ink's."""
    sources = load_sources([svhn_dir / "svhn" / "train"])
    cfg = dataclasses.replace(SMALL, negative_share=0.0, original_share=0.0, framed_share=0.0, crisp_share=1.0,
                              long_side=(300, 400))
    for i in range(20):
        s = make_scene(sources, 4, i, cfg)
        again = make_scene(sources, 4, i, cfg)
        assert s.kind == "crisp" and s.box == again.box
        assert np.array_equal(np.asarray(s.image), np.asarray(again.image))
        l, t, r, b = s.box
        assert 0 <= l < r <= s.image.width and 0 <= t < b <= s.image.height
        a = np.asarray(s.image, np.float32)
        inside = a[t:b, l:r]
        # ink and what is under it differ by >= 0.3 of the range, and the step between them is sharp: a
        # neighbouring pair of pixels inside the box spans most of it (a blur of 1 px would halve it)
        assert inside.max() - inside.min() >= 0.3 * 255 - 2, i
        assert max(np.abs(np.diff(inside, axis=1)).max(), np.abs(np.diff(inside, axis=0)).max()) >= 0.2 * 255, i
        # tight: each edge of the box touches ink (its anti-aliased rim at least, as the generator's boxes do)
        for edge in (inside[0], inside[-1], inside[:, 0], inside[:, -1]):
            assert np.ptp(edge) > 0, i
    # the share is checked with the others
    with pytest.raises(DataError, match="crisp_share"):
        SceneConfig(negative_share=0.5, crisp_share=0.6)


def test_a_neighbour_sign_stands_beside_the_number_never_over_it():
    from housenum.scenes import _neighbour

    for seed in range(20):
        img = Image.new("L", (400, 300), 128)
        box = (150, 120, 230, 170)  # 50 px tall
        _neighbour(np.random.default_rng(seed), img, box)
        changed = np.argwhere(np.asarray(img) != 128)  # (y, x) of the sign
        assert len(changed), seed
        ys, xs = changed[:, 0], changed[:, 1]
        assert not ((xs >= box[0]) & (xs < box[2])).any(), seed  # beside it, not over it
        left, right = (xs < box[0]).all(), (xs >= box[2]).all()
        assert left != right, seed  # on one side
        gap = box[0] - 1 - xs.max() if left else xs.min() - box[2]
        assert 4 <= gap <= 0.6 * 50 + 1, (seed, gap)  # 0.1-0.6 of the number's height away
        assert ys.min() >= 120 - 25 - 10 and ys.max() <= 170 + 25 + 10, seed  # about level with it
    with pytest.raises(DataError, match="neighbour_prob"):
        SceneConfig(neighbour_prob=1.5)


def test_negative_scenes_have_no_box(svhn_dir):
    sources = load_sources([svhn_dir / "svhn" / "test"])
    # every kind of scene with a number switched on: no_number() must switch each off, the rest kept
    mixed = dataclasses.replace(SMALL, negative_share=0.1, original_share=0.3, framed_share=0.3, crisp_share=0.3,
                                neighbour_prob=0.5)
    cfg = mixed.no_number()
    assert (cfg.negative_share, cfg.original_share, cfg.framed_share, cfg.crisp_share) == (1.0, 0.0, 0.0, 0.0)
    assert (cfg.long_side, cfg.max_distractors, cfg.neighbour_prob) == (mixed.long_side, mixed.max_distractors, 0.5)
    scenes = [make_scene(sources, 0, i, cfg) for i in range(5)]
    assert all(s.box is None and s.kind == "negative" for s in scenes)
    assert len({s.image.size for s in scenes}) > 1  # phone shapes and sizes vary
    # the scenes of the helper are those of the shares set by hand (earlier measurements stay comparable)
    by_hand = dataclasses.replace(SMALL, negative_share=1.0, original_share=0.0, framed_share=0.0)
    for i in range(3):
        assert np.array_equal(np.asarray(make_scene(sources, 0, i, SMALL.no_number()).image),
                              np.asarray(make_scene(sources, 0, i, by_hand).image))


def test_letterbox_maps_boxes_back_exactly():
    rng = np.random.default_rng(0)
    for w, h in [(4000, 3000), (300, 533), (97, 97), (1000, 17)]:
        lb = Letterbox.of(w, h, 128)
        l, t, r, b = lb.content
        assert max(r - l, b - t) == 128 and (r - l == 128 or b - t == 128)
        for _ in range(20):
            x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
            box = np.array([x0, y0, rng.uniform(x0, w), rng.uniform(y0, h)])
            np.testing.assert_allclose(lb.to_photo(lb.to_input(box)), box, rtol=1e-9, atol=1e-9)
        # The photo's corners land on the content rectangle's corners.
        np.testing.assert_allclose(lb.to_input([0, 0, w, h]), [l, t, r, b], atol=1e-9)


def test_letterbox_input_is_standardised_content_and_zero_padding():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 200), dtype=np.uint8), "L")
    x, lb = letterbox(img, 64)
    l, t, r, b = lb.content
    assert (l, r) == (0, 64) and b - t == 16
    inner = x[t:b, l:r]
    assert abs(inner.mean()) < 1e-4 and abs(inner.std() - 1) < 1e-3
    assert not x[:t].any() and not x[b:].any()


def test_the_read_blur_softens_the_input_and_nothing_else():
    """A crisp edge spreads over more pixels; the input stays standardised, padded and placed the same."""
    a = np.full((50, 200), 40, np.uint8)
    a[:, 100:] = 220  # one sharp vertical edge
    img = Image.fromarray(a, "L")
    x0, lb0 = letterbox(img, 64)
    x1, lb1 = letterbox(img, 64, blur=1.0)
    assert lb0 == lb1
    l, t, r, b = lb1.content
    inner = x1[t:b, l:r]
    assert abs(inner.mean()) < 1e-3 and abs(inner.std() - 1) < 1e-3 and not x1[:t].any() and not x1[b:].any()
    row0, row1 = x0[(t + b) // 2], x1[(t + b) // 2]
    between = lambda row: int(((row > row.min() + 0.1) & (row < row.max() - 0.1)).sum())  # noqa: E731
    assert between(row1) > between(row0) >= 0 and np.array_equal(x0, letterbox(img, 64, blur=0.0)[0])
    with pytest.raises(HousenumError, match="read_blur"):
        FinderConfig(read_blur=-1.0)


def test_grid_targets_decode_to_the_same_box():
    cfg = FinderConfig(input_size=64)
    boxes = np.array([[3.0, 40.5, 30.0, 52.0], [np.nan] * 4, [0.0, 0.0, 64.0, 64.0]], np.float32)
    obj, mask, box = encode(boxes, cfg)
    assert obj[1].sum() == 0 and mask[1].all() and not box[1, ..., 4].any()
    assert obj[0].sum() == 1 and obj[2].sum() == 1
    assert mask[0].sum() == cfg.grid ** 2 - 8  # the centre cell's neighbours are ignored
    # An output that puts the targets in its cells, and a high logit where the centre is, decodes back.
    out = np.concatenate([np.where(obj > 0, 9.0, -9.0)[..., None], box[..., :4]], axis=-1)
    scores, decoded = decode(out, cfg)
    np.testing.assert_allclose(decoded[[0, 2]], boxes[[0, 2]], atol=1e-4)
    assert scores[0] > 0.99 and scores[1] < 0.01
    # Each neighbour of the centre cell is taught the same box.
    k, j = int((40.5 + 52) / 2 / STRIDE), int(16.5 / STRIDE)
    assert box[0, k, j + 1, 4] == 1 and box[0, k, j + 1, 0] == pytest.approx(16.5 / STRIDE - j - 1)


def test_threshold_keeps_false_positives_within_the_allowed_rate():
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.05, 0.3])
    positive = np.array([True, True, True, True, False, False, False, False])
    thr = choose_threshold(scores, positive, 0.25)  # one of four negatives may pass
    assert 0.3 < thr <= 0.6 and ((scores >= thr) & ~positive).sum() == 1
    assert choose_threshold(scores, positive, 0.0) > 0.6


def test_each_refining_pass_looks_again_at_a_crop_around_the_box_before_it():
    cfg = FinderConfig(input_size=64)
    obj, _, box = encode(np.array([[24.0, 24.0, 40.0, 40.0]]), cfg)  # the middle quarter of what it sees
    middle = np.concatenate([np.where(obj > 0, 9.0, -9.0)[..., None], box[..., :4]], axis=-1)

    class Counting:
        def __init__(self):
            self.cfg, self.calls = cfg, 0

        def predict(self, x):
            self.calls += 1
            return np.repeat(middle, len(x), axis=0)

    photo = Image.new("L", (1000, 1000), 128)
    widths = []
    for passes in range(len(PASSES)):
        f = Counting()
        scores, boxes, _ = locate(f, [photo], passes)
        assert f.calls == 1 + passes and scores[0] > 0.99
        l, t, r, b = boxes[0]
        assert (l + r) / 2 == pytest.approx(500, abs=1) and (t + b) / 2 == pytest.approx(500, abs=1)
        widths.append(r - l)
    # The first pass boxes the photo's middle quarter; each refining pass looks at a crop 2.5x the box
    # before it and keeps the middle quarter of that, in photo pixels.
    assert widths == pytest.approx([250, 250 * 2.5 / 4, 250 * (2.5 / 4) ** 2], abs=1)
    # Every pass's boxes from one look and one call per pass, the same as locating pass by pass.
    f = Counting()
    _, every, _ = locate_passes(f, [photo, photo], len(PASSES) - 1)
    assert f.calls == len(PASSES) and [b[1, 2] - b[1, 0] for b in every] == pytest.approx(widths, abs=1e-6)


def test_the_tile_threshold_counts_only_what_the_second_look_adds():
    first = np.array([0.9, 0.1, 0.2, 0.3, 0.1])  # the first look takes the first no-number scene already
    tiles = np.array([0.99, 0.95, 0.7, 0.6, 0.98])
    positive = np.array([False, False, False, False, True])
    thr = choose_tile_threshold(first, tiles, positive, 0.5, 0.25)  # one of four no-number scenes may be added
    assert 0.7 < thr <= 0.95
    assert choose_tile_threshold(first, tiles, positive, 0.5, 0.0) > 0.95
    # never below the first look's threshold, however many false alarms are allowed
    assert choose_tile_threshold(first, tiles, positive, 0.5, 1.0) == 0.5


def _cells(cfg: FinderConfig, logits) -> np.ndarray:
    """Network outputs that box the middle quarter of what the finder sees, with these has-number logits."""
    obj, _, box = encode(np.array([[24.0, 24.0, 40.0, 40.0]]), cfg)
    out = np.repeat(np.concatenate([np.where(obj > 0, 9.0, -9.0)[..., None], box[..., :4]], axis=-1), len(logits), 0)
    k, j = np.argwhere(obj[0] > 0)[0]
    out[:, k, j, 0] = logits
    return out


def test_the_second_look_at_tiles_finds_where_the_first_finds_nothing():
    cfg = FinderConfig(input_size=64)

    class Scripted:
        """First look: photo 0 scores low, photo 1 high; tiles: each photo's last (bottom-right) tile best."""

        def __init__(self, tile_threshold):
            self.cfg, self.threshold, self.refine, self.tile_threshold = cfg, 0.5, 0, tile_threshold
            self.sizes = []

        def predict(self, x):
            self.sizes.append(len(x))
            if len(self.sizes) == 1:
                return _cells(cfg, [-3.0, 3.0])
            return _cells(cfg, np.tile(np.linspace(-5, 4, 9), len(x) // 9))

    photos = [Image.new("L", (1000, 800), 128), Image.new("L", (1000, 800), 128)]
    f = Scripted(0.9)
    found = Finder.find(f, photos)
    assert f.sizes == [2, 9]  # the tiles are looked at only for the photo the first look found nothing in
    assert [x.tiled for x in found] == [True, False] and found[1].box is not None
    assert found[0].score == pytest.approx(1 / (1 + np.exp(-4.0)))
    assert tiles_of(1000, 800)[-1] == (500, 400, 1000, 800)
    # the box the scripted output gives in the bottom-right tile's letterbox, in the photo's pixels
    want = Letterbox.of(500, 400, 64).to_photo([24, 24, 40, 40]) + (500, 400, 500, 400)
    assert found[0].box == pytest.approx(want, abs=1)
    assert (want[0] + want[2]) / 2 == pytest.approx(750) and want[2] - want[0] == pytest.approx(125)
    # a best tile below the tile threshold finds nothing; no tile threshold: no second look at all
    assert Finder.find(Scripted(0.99), photos)[0].box is None
    f = Scripted(None)
    assert Finder.find(f, photos)[0].box is None and f.sizes == [2]
    assert Finder.find(Scripted(0.9), photos, tiles=False)[0].box is None
    # a photo under twice the input size (128 px here) would only be enlarged: no second look
    f = Scripted(0.9)
    assert Finder.find(f, [Image.new("L", (127, 90)), photos[1]])[0].box is None and f.sizes == [2]


def test_short_training_learns_and_the_finder_round_trips(trained, svhn_dir):
    out, meta = trained
    test = meta["test"]["one_pass"]
    # Half the scenes have no number: a finder that learnt nothing is right on about half of them, and
    # its boxes (the initial cell sizes, anywhere) overlap the numbers little.
    assert test["has_number_accuracy"] >= 0.7, test
    assert test["iou_mean"] > 0.25, test
    # Validation chose how many refining passes to use, and the test figures of each count are stored.
    assert meta["refine"] in range(len(PASSES)) and meta["test"]["used"] == PASSES[meta["refine"]]
    best = max(meta["validation"][name]["iou_mean"] for name in PASSES)
    assert meta["validation"][PASSES[meta["refine"]]]["iou_mean"] == best
    assert all(name in meta["test"] for name in PASSES)
    assert (out / "finder.keras").is_file() and (out / "log.csv").read_text().startswith("step,")
    assert not list(out.glob(".*.tmp*"))  # no temporary files left behind

    finder = Finder(out)
    assert finder.threshold == pytest.approx(meta["threshold"]) and finder.refine == meta["refine"]
    sources = load_sources([svhn_dir / "svhn" / "test"])
    scenes = [make_scene(sources, 0, i, SMALL, stream="test") for i in range(6)]
    found = finder.find([s.image.convert("RGB") for s in scenes])
    again = Finder(out / "finder.json").find([s.image for s in scenes])
    assert [f.score for f in found] == pytest.approx([f.score for f in again], abs=1e-5)
    for s, f in zip(scenes, found):
        assert 0.0 <= f.score <= 1.0
        if f.box is not None:
            l, t, r, b = f.box
            assert 0 <= l < r <= s.image.width and 0 <= t < b <= s.image.height


def test_training_chooses_a_tile_threshold_and_add_tiles_chooses_it_again(trained, svhn_dir, tmp_path):
    import shutil

    out, meta = trained
    valid = meta["tiles"]["validation"]
    assert meta["tile_threshold"] == valid["tile_threshold"] >= meta["threshold"]
    assert valid["found_with_tiles"] >= valid["found_first_look"]
    # the second look adds at most the allowed share of validation no-number scenes
    allowed = meta["config"]["tile_max_fpr"]
    assert valid["false_positive_rate_with_tiles"] - valid["false_positive_rate_first_look"] <= allowed + 1e-9
    assert meta["tiles"]["test"]["recall"] >= meta["test"][meta["test"]["used"]]["recall"]
    assert Finder(out).tile_threshold == pytest.approx(meta["tile_threshold"])
    # a finder without one (trained before tiles) looks once, and --add-tiles gives it the same one
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    old = {k: v for k, v in meta.items() if k not in ("tile_threshold", "tiles")}
    (copy / "finder.json").write_text(json.dumps(old))
    assert Finder(copy).tile_threshold is None
    assert main(["--data-dir", str(svhn_dir), "--out", str(copy), "--add-tiles"]) == 0
    again = json.loads((copy / "finder.json").read_text())
    assert again["tile_threshold"] == pytest.approx(meta["tile_threshold"])
    assert again["tiles"]["test"] == pytest.approx(meta["tiles"]["test"], nan_ok=True)
    with pytest.raises(HousenumError, match="no finder"):
        add_tiles(tmp_path / "none", svhn_dir)


def test_recalibrating_sets_the_read_blur_and_chooses_how_to_read_again(trained, svhn_dir, tmp_path):
    """--recalibrate: the finder reads with the new blur, its threshold, passes and tile threshold chosen
    again on the same validation scenes read that way (as training chooses them); the old choices kept."""
    import shutil

    out, meta = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert Finder(copy).cfg.read_blur == 0.0
    # recalibrating with the blur it already has chooses what training chose
    same = main(["--data-dir", str(svhn_dir), "--out", str(copy), "--recalibrate", "--read-blur", "0"])
    again = json.loads((copy / "finder.json").read_text())
    assert same == 0 and again["threshold"] == pytest.approx(meta["threshold"]) and again["refine"] == meta["refine"]
    assert again["tile_threshold"] == pytest.approx(meta["tile_threshold"])
    assert main(["--data-dir", str(svhn_dir), "--out", str(copy), "--recalibrate", "--read-blur", "1.5"]) == 0
    blurred = json.loads((copy / "finder.json").read_text())
    assert blurred["config"]["read_blur"] == 1.5 and blurred["before_recalibration"]["config"]["read_blur"] == 0.0
    assert blurred["before_recalibration"]["threshold"] == pytest.approx(meta["threshold"])
    assert blurred["threshold"] != pytest.approx(meta["threshold"])  # other inputs, other scores
    assert blurred["test"]["used"] == PASSES[blurred["refine"]] and blurred["tile_threshold"] >= blurred["threshold"]
    finder = Finder(copy)
    assert finder.cfg.read_blur == 1.5 and finder.threshold == pytest.approx(blurred["threshold"])
    photo = scene_photos(load_sources([svhn_dir / "svhn" / "test"]), "valid", 0, 1, EASY)[0]
    scores = [locate(f, [photo], 0)[0][0] for f in (Finder(out), finder)]
    assert scores[0] != pytest.approx(scores[1])  # the blur reaches the network's input


def test_find_boxes_follow_exif_orientation(trained):
    out, _ = trained
    finder = Finder(out)
    img = Image.new("L", (160, 90), 128)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the upright photo is 90 x 160
    import io

    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    rotated = Image.open(buf)
    f = finder.find([rotated], refine=False)[0]
    if f.box is not None:
        assert f.box[2] <= 90 and f.box[3] <= 160


def test_a_wrong_or_missing_finder_is_a_one_line_error(tmp_path, trained):
    with pytest.raises(HousenumError, match="no finder"):
        Finder(tmp_path)
    (tmp_path / "finder.keras").write_bytes(b"not a model")
    (tmp_path / "finder.json").write_text(json.dumps({"kind": "housenum-reader"}))
    with pytest.raises(HousenumError, match="expected kind") as exc:
        Finder(tmp_path)
    assert "\n" not in str(exc.value)
    out, _ = trained
    (tmp_path / "finder.json").write_text((out / "finder.json").read_text())
    with pytest.raises(HousenumError, match="cannot load finder"):
        Finder(tmp_path)


def test_command_without_data_says_what_it_expected(tmp_path):
    with pytest.raises(DataError, match="svhn/train"):
        main(["--data-dir", str(tmp_path), "--steps", "1"])


def test_the_command_takes_the_scene_mix_and_records_it(svhn_dir, tmp_path):
    out = tmp_path / "mix"
    assert main(["--data-dir", str(svhn_dir), "--out", str(out), "--steps", "2", "--train-scenes", "16",
                 "--valid-scenes", "8", "--test-scenes", "8", "--eval-every", "2", "--workers", "1",
                 "--batch-size", "8", "--original-share", "0.3", "--number-region-prob", "0.25",
                 "--neighbour-prob", "0.2", "--crisp-share", "0.1"]) == 0
    meta = json.loads((out / "finder.json").read_text())
    # folders made by the generator without step 1's extraction record: of unknown origin, so not real SVHN
    # (predict_real_images.py then prefers the shipped finder to this one)
    assert meta["data"]["trained_on"].startswith("SVHN of mixed or unknown origin (train: unknown")
    scene = meta["scene_config"]
    assert scene["original_share"] == 0.3 and scene["number_region_prob"] == 0.25 and scene["neighbour_prob"] == 0.2
    assert scene["crisp_share"] == 0.1
    assert scene["negative_share"] == SceneConfig().negative_share  # the rest as the scene config says
    # a mix that cannot be (shares over 1) is refused before any scene is made
    with pytest.raises(DataError, match="must be <= 1"):
        main(["--data-dir", str(svhn_dir), "--out", str(tmp_path / "bad"), "--original-share", "0.9"])
    assert not (tmp_path / "bad").exists()
    with pytest.raises(HousenumError, match="a batch takes 64 different scenes, got 16"):
        main(["--data-dir", str(svhn_dir), "--out", str(tmp_path / "bad"), "--train-scenes", "16"])


def test_every_format_is_opened_at_the_size_a_jpeg_is_decoded_at(tmp_path):
    """JPEGs decode small in draft mode; a PNG (or HEIC, WebP) of the same photo is shrunk by the same power
    of two, so a batch of phone photos stays small and every format is read the same way."""
    from housenum.finder import open_photo

    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (150, 200), dtype=np.uint8)).resize((2000, 1500), Image.NEAREST)
    photo.save(tmp_path / "p.jpg", quality=95)
    photo.save(tmp_path / "p.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: upright it is 1500 x 2000
    photo.save(tmp_path / "turned.png", exif=exif.tobytes())
    jpeg, jpeg_scale = open_photo(tmp_path / "p.jpg")
    png, png_scale = open_photo(tmp_path / "p.png")
    assert jpeg.size == png.size == (500, 375) and jpeg_scale == png_scale == 4
    assert np.abs(np.asarray(jpeg, np.float32) - np.asarray(png, np.float32)).mean() < 6  # the same picture
    turned, scale = open_photo(tmp_path / "turned.png")
    assert turned.size == (375, 500) and scale == 4
    small, scale = open_photo(tmp_path / "p.png", long_side=1200)  # under twice the side asked for: as it is
    assert small.size == (2000, 1500) and scale == 1

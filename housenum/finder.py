"""The finder: from a downscaled whole photo, whether it shows a house number and the union box of its digits.

The reader reads a 32x32 crop framed as its training crops are; users pass whole photos. The finder is a
second, small network in front of it: the photo letterboxed to S x S grayscale, per-image standardised,
and a grid of G x G cells (stride 16) out, each cell with a has-number logit and the box of a number
whose centre lies near it. The photo's score is its best cell's probability; the box is that cell's.

Where the first look finds nothing in a photo at least 2S on its long side, a second look at 3x3 tiles of
half its sides (`tile_look`) gives a small number twice the pixels; a tile must score at least the tile
threshold, chosen on validation scenes at training (or later with `--add-tiles`).

Why a grid and not one global box regression: a small number anywhere in the photo is found by the same
filters wherever it lies (the network is convolutional up to the cells), so little data teaches
"there is a number here" at every position; a global regression must learn each position separately.

Commands:
    python -m housenum.finder --data-dir data/synthetic --out results/finder --steps 3000 --seed 0
    python -m housenum.finder --data-dir /tmp/finder_syn --out /tmp/finder_model --steps 300 --train-scenes 2000
    python -m housenum.finder --data-dir data/synthetic --out models/finder --add-tiles   # no training
    python -m housenum.finder --data-dir data/synthetic --out models/finder --recalibrate --read-blur 0.5   # no training

`--data-dir` holds svhn/{train,extra,test} (what `download_and_extract.py` writes) or is that svhn folder.
Scenes for training come from train (+ extra) through `housenum.scenes`; validation and test scenes from
the test split's photos, with their own seed streams. Online, real SVHN full photos are simply more
sources: the same command on real data trains on them.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from housenum.atomic import atomic_path, write_json, write_text
from housenum.errors import DataError, HousenumError
from housenum.photo import grayscale, standardize
from housenum.preprocess import describe_folders
from housenum.scenes import SceneConfig, Source, load_sources, make_scene

FORMAT = "housenum-finder-1"  # finder.json's kind: a file of any other kind is refused with one line
STRIDE = 16  # input pixels per grid cell: 4 stride-2 convolutions
# finder.json's names of the box figures after 0, 1 and 2 refining passes; training keeps the count whose
# validation IoU is best. A second pass on the first one's box helped small numbers a little (the finder
# shipped before 2026-12-01 07:30, validation scenes: small-number IoU 0.625 -> 0.647, mean 0.720 -> 0.723).
PASSES = ("one_pass", "refined", "refined_twice")
# Where the first look (the whole photo downscaled to S x S) finds nothing, a second look at TILES x TILES
# overlapping tiles, each half the photo's sides: a number too small for the first look has twice the
# pixels there. The first look alone found only 44 % of numbers pasted under 300 px tall into a 2400x1800
# photo (bench/edge_photos.py, 2026-12-01). Nine tiles are nine chances of a false alarm, so a tile must
# score at least the finder's tile threshold, chosen on validation scenes (`choose_tile_threshold`).
# Only photos at least twice S on their long side get it, so a tile is never enlarged: it adds pixels the
# first look had to drop. Enlarged tiles of small photos (SVHN's own, 40-250 px) showed the finder sizes it
# never learnt and it boxed bits of wall, read confidently wrong (3 of the first 1,000 synthetic test photos).
TILES = 3


@dataclass(frozen=True)
class FinderConfig:
    """The finder's network, training and decision settings."""

    # S: letterbox side (S / STRIDE cells a side). 128 over 96: at equal steps it boxed numbers better
    # (validation IoU 0.46 vs 0.39 after 200 steps), and a small number keeps 1.8x the pixels; a step
    # costs ~2.4x, but inference stays a few ms, far inside the 100 ms a photo may take.
    input_size: int = 128
    widths: tuple[int, ...] = (16, 32, 64, 96)  # channels of the 4 stride-2 stages (two 3x3 convs each)
    steps: int = 3000  # training steps
    batch_size: int = 64
    learning_rate: float = 2e-3  # Adam, cosine-decayed to 0 over `steps`
    box_weight: float = 1.0  # box loss (Huber) against the cells' BCE
    train_scenes: int = 16000  # scenes generated once and drawn from at random
    # Training scenes are drawn smaller than validation/test ones (same layout, a quarter of the pixels:
    # 4x faster to make); the letterbox brings both to S x S. None: as the scene config says.
    train_long_side: tuple[int, int] | None = (192, 384)
    valid_scenes: int = 800  # choose the threshold and whether to refine
    test_scenes: int = 1500  # the reported figures
    max_fpr: float = 0.03  # the threshold is the lowest whose validation false-positive rate is <= this
    refine_factor: float = 2.5  # the second pass looks at the first box grown to this many times its size
    # The second look at tiles may take at most this share of validation no-number scenes beyond those the
    # first look takes (the reader's abstain rule then drops most of what it wrongly takes).
    tile_max_fpr: float = 0.02
    # Reading only: each look's letterboxed input is blurred by a Gaussian of this sigma (input pixels) before
    # the network sees it. The training scenes come from SVHN-like photos, soft at S x S; a sharp phone photo
    # of a clean plate, shrunk to S x S, is crisper than any of them, and the finder shipped 2026-12-01 boxed
    # such numbers badly (bench/crisp_numbers.py, 400 photos: box IoU >= 0.5 for 56 %; 72 % read with 0.5 px,
    # its thresholds chosen again, synthetic test photos read within 0.25 points: README, "Crisp photos").
    # Thresholds and refining passes are chosen on validation scenes read the same way (at training, or
    # later with `--recalibrate`).
    read_blur: float = 0.0
    eval_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.input_size % STRIDE or self.input_size < 2 * STRIDE:
            raise HousenumError(f"FinderConfig.input_size: expected a multiple of {STRIDE} >= {2 * STRIDE}, "
                                f"got {self.input_size}")
        if len(self.widths) != 4:
            raise HousenumError(f"FinderConfig.widths: expected 4 stage widths (stride {STRIDE}), got {self.widths}")
        for name in ("steps", "batch_size", "train_scenes", "valid_scenes", "test_scenes", "eval_every"):
            if getattr(self, name) < 1:
                raise HousenumError(f"FinderConfig.{name}: expected >= 1, got {getattr(self, name)}")
        if self.train_scenes < self.batch_size:
            raise HousenumError(f"FinderConfig.train_scenes: a batch takes {self.batch_size} different scenes, "
                                f"got {self.train_scenes} scenes")
        for name in ("max_fpr", "tile_max_fpr"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise HousenumError(f"FinderConfig.{name}: expected 0..1, got {getattr(self, name)}")
        if self.refine_factor < 1.0:
            raise HousenumError(f"FinderConfig.refine_factor: expected >= 1, got {self.refine_factor}")
        if not 0.0 <= self.read_blur <= 8.0:
            raise HousenumError(f"FinderConfig.read_blur: expected 0..8 input pixels, got {self.read_blur}")

    @property
    def grid(self) -> int:
        return self.input_size // STRIDE


def smoke(steps: int = 200) -> FinderConfig:
    """A CPU preset for tests: few scenes, a narrow network."""
    return FinderConfig(input_size=64, widths=(8, 16, 32, 32), steps=steps, batch_size=32, train_scenes=300,
                        valid_scenes=100, test_scenes=100, eval_every=max(1, steps // 2), learning_rate=3e-3)


@dataclass
class Found:
    score: float  # probability that the photo shows a house number
    box: tuple[int, int, int, int] | None  # union box of the digits (l, t, r, b) in the photo's pixels; None below threshold
    tiled: bool = False  # found by the second look at tiles (score: the best tile's)


# ----------------------------------------------------------------------------------------- letterbox


@dataclass(frozen=True)
class Letterbox:
    """Where a photo of size (w, h) lies in the S x S input: scaled by (sx, sy), offset by (ox, oy)."""

    w: int
    h: int
    size: int
    sx: float
    sy: float
    ox: int
    oy: int

    @classmethod
    def of(cls, w: int, h: int, size: int) -> "Letterbox":
        k = size / max(w, h)
        nw, nh = max(1, round(w * k)), max(1, round(h * k))
        # Separate x and y scales (nw / w, nh / h) make the pixel mapping exact in both directions.
        return cls(w, h, size, nw / w, nh / h, (size - nw) // 2, (size - nh) // 2)

    @property
    def content(self) -> tuple[int, int, int, int]:
        return self.ox, self.oy, self.ox + round(self.w * self.sx), self.oy + round(self.h * self.sy)

    def to_input(self, box: Sequence[float]) -> np.ndarray:
        l, t, r, b = box
        return np.array([l * self.sx + self.ox, t * self.sy + self.oy, r * self.sx + self.ox, b * self.sy + self.oy])

    def to_photo(self, box: Sequence[float]) -> np.ndarray:
        l, t, r, b = box
        return np.array([(l - self.ox) / self.sx, (t - self.oy) / self.sy, (r - self.ox) / self.sx,
                         (b - self.oy) / self.sy])


def letterbox(image: Image.Image, size: int, blur: float = 0.0) -> tuple[np.ndarray, Letterbox]:
    """A grayscale photo as the finder's input (S, S) float32 and where it lies in it.

    The photo keeps its aspect ratio; its pixels are standardised on their own and the padding is 0 (the
    photo's mean), so how much padding there is changes neither the photo's values nor the padding's.
    `blur`: sigma in input pixels of a Gaussian blur of the shrunk photo (FinderConfig.read_blur)."""
    lb = Letterbox.of(image.width, image.height, size)
    l, t, r, b = lb.content
    small = grayscale(image).resize((r - l, b - t), Image.BILINEAR, reducing_gap=3.0)
    if blur > 0:
        small = small.filter(ImageFilter.GaussianBlur(blur))
    out = np.zeros((size, size), np.float32)
    out[t:b, l:r] = standardize(np.asarray(small, np.float32))
    return out, lb


@functools.cache
def heif_opener() -> bool:
    """Teach Pillow HEIC/HEIF, the format iPhones save photos in (pillow-heif, requirements.txt), once; False
    where it is not installed (such a photo is then "not an image Pillow can read"). Unlike JPEG there is no
    draft mode: a 12-megapixel HEIC is decoded whole, ~0.4-0.6 s on 2 cores."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def open_photo(path: Path | str, long_side: int = 480) -> tuple[Image.Image, float]:
    """A photo file decoded small (JPEG draft mode: the decoder scales by 1/2..1/8 on the way, several
    times faster than decoding 12 megapixels) with EXIF orientation applied, in grayscale. Returns it and
    the factor from its pixels to the file's full-size pixels. `long_side`: the least the long side may
    shrink to (480 keeps a number a tenth of the photo wide about 48 px wide, enough for a 32 px crop)."""
    path = Path(path)
    heif_opener()
    with Image.open(path) as im:
        full = im.size
        k = long_side / max(full)
        if k < 1:
            im.draft("L", (math.ceil(full[0] * k), math.ceil(full[1] * k)))
        scale = full[0] / im.size[0]
        img = grayscale(ImageOps.exif_transpose(im))
    # Formats without draft decoding (PNG, HEIC, WebP) arrive whole: shrink them by the power of two the
    # JPEG decoder would have used, so that every format is read at the same size and a folder of
    # 12-megapixel HEICs does not hold 12 MB a photo in each batch.
    factor = max([f for f in (8, 4, 2) if f * long_side <= max(img.size)] or [1]) if scale == 1 else 1
    if factor > 1:
        width = img.width
        img = img.reduce(factor)
        scale = width / img.width
    return img, scale


# ----------------------------------------------------------------------------------------- targets


def encode(boxes: np.ndarray, cfg: FinderConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid targets for boxes in input pixels (N, 4), NaN rows for no number.

    obj (N, G, G): 1 at the cell holding the box centre, 0 elsewhere; obj_mask: 0 on the centre cell's
    8 neighbours (a centre near a cell border makes them nearly as right: no penalty either way), else 1.
    box (N, G, G, 5): per cell (dx, dy, log w/S, log h/S, weight); the box is taught to the centre cell and
    its neighbours, so whichever of them scores best gives a trained box. Offsets are in cells from the
    cell's corner (-1..2 for neighbours)."""
    g, s = cfg.grid, cfg.input_size
    n = len(boxes)
    obj = np.zeros((n, g, g), np.float32)
    mask = np.ones((n, g, g), np.float32)
    box = np.zeros((n, g, g, 5), np.float32)
    for i, bx in enumerate(boxes):
        if np.isnan(bx[0]):
            continue
        cx, cy = (bx[0] + bx[2]) / 2 / STRIDE, (bx[1] + bx[3]) / 2 / STRIDE
        j, k = min(g - 1, max(0, int(cx))), min(g - 1, max(0, int(cy)))
        lw, lh = math.log(max(bx[2] - bx[0], 1.0) / s), math.log(max(bx[3] - bx[1], 1.0) / s)
        for kk in range(max(0, k - 1), min(g, k + 2)):
            for jj in range(max(0, j - 1), min(g, j + 2)):
                mask[i, kk, jj] = 0.0
                box[i, kk, jj] = (cx - jj, cy - kk, lw, lh, 1.0)
        obj[i, k, j] = 1.0
        mask[i, k, j] = 1.0
    return obj, mask, box


def decode(out: np.ndarray, cfg: FinderConfig) -> tuple[np.ndarray, np.ndarray]:
    """Network output (N, G, G, 5) -> scores (N,) and boxes (N, 4) in input pixels (best cell's box)."""
    n, g = out.shape[0], out.shape[1]
    flat = out[..., 0].reshape(n, -1)
    best = flat.argmax(axis=1)
    k, j = best // g, best % g
    cell = out[np.arange(n), k, j]
    scores = 1 / (1 + np.exp(-cell[:, 0].astype(np.float64)))
    cx, cy = (j + cell[:, 1]) * STRIDE, (k + cell[:, 2]) * STRIDE
    w, h = np.exp(np.clip(cell[:, 3], -8, 1)) * cfg.input_size, np.exp(np.clip(cell[:, 4], -8, 1)) * cfg.input_size
    return scores, np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _clip_int(box: Sequence[float], w: int, h: int) -> tuple[int, int, int, int] | None:
    l, t = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    r, b = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    if r - l < 1 or b - t < 1:
        return None
    return l, t, r, b


# ----------------------------------------------------------------------------------------- the network


def build_finder(cfg: FinderConfig):
    """Four stride-2 stages of two 3x3 convolutions (batch norm, ReLU), a dilated 3x3 so each cell sees
    the whole input (a number as large as the photo has its centre cell see all of it), and a 1x1
    convolution to the 5 outputs per cell: has-number logit, dx, dy, log w, log h."""
    from housenum import quiet_tf  # noqa: F401
    import keras

    x = inputs = keras.Input((cfg.input_size, cfg.input_size, 1), name="image")
    for i, width in enumerate(cfg.widths, start=1):
        for j, stride in enumerate((2, 1), start=1):
            x = keras.layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"conv{i}_{j}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}_{j}")(x)
            x = keras.layers.ReLU(name=f"relu{i}_{j}")(x)
    x = keras.layers.Conv2D(cfg.widths[-1], 3, dilation_rate=2, padding="same", use_bias=False, name="context")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn_context")(x)
    x = keras.layers.ReLU(name="relu_context")(x)
    # The has-number bias starts at the prior of one positive cell in ~G*G, so early steps are not spent
    # pushing every cell's probability down from 0.5.
    prior = -math.log(cfg.grid * cfg.grid)
    out = keras.layers.Conv2D(5, 1, name="cells", bias_initializer=keras.initializers.Constant([prior, 0.5, 0.5, -1.5, -2.5]))(x)
    return keras.Model(inputs, out, name="finder")


def _loss_fn(cfg: FinderConfig):
    import tensorflow as tf

    def loss(out, obj, mask, box):
        logits = out[..., 0]
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=obj, logits=logits) * mask
        cls = tf.reduce_mean(tf.reduce_sum(bce, axis=[1, 2]))
        # The box is learnt on cells near a number only: a photo with no number has no box to learn, and
        # any made-up target there would pull real boxes toward it (as the reader's loss masks blank digits).
        weight = box[..., 4]
        d = tf.abs(box[..., :4] - out[..., 1:5])
        err = tf.reduce_sum(tf.where(d < 1.0, 0.5 * d * d, d - 0.5), axis=-1)  # Huber: robust to odd boxes
        reg = tf.reduce_sum(err * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)
        return cls + cfg.box_weight * reg, cls, reg

    return loss


# ----------------------------------------------------------------------------------------- data


@dataclass
class SceneSet:
    """Scenes as network inputs: uint8 letterboxed pixels (N, S, S) plus what is needed to standardise them
    and to map boxes back; boxes in scene pixels (NaN rows: no number)."""

    pixels: np.ndarray
    stats: np.ndarray  # (N, 2) mean, std of each photo's content
    lbs: list[Letterbox]
    boxes: np.ndarray  # (N, 4) scene pixels
    kinds: list[str]

    def inputs(self, idx: np.ndarray | slice) -> np.ndarray:
        x = (self.pixels[idx].astype(np.float32) - self.stats[idx, 0, None, None]) / self.stats[idx, 1, None, None]
        lbs = self.lbs[idx] if isinstance(idx, slice) else [self.lbs[i] for i in idx]
        for a, lb in zip(x, lbs):
            l, t, r, b = lb.content
            a[:t] = 0
            a[b:] = 0
            a[:, :l] = 0
            a[:, r:] = 0
        return x[..., None]

    def input_boxes(self, idx: np.ndarray) -> np.ndarray:
        return np.array([self.lbs[i].to_input(self.boxes[i]) if not np.isnan(self.boxes[i, 0]) else [np.nan] * 4
                         for i in idx], np.float32).reshape(-1, 4)


def _scene_rows(scenes: Sequence, size: int) -> tuple:
    """Scenes letterboxed to the finder's input: the parts of a SceneSet."""
    pix = np.zeros((len(scenes), size, size), np.uint8)
    stats = np.zeros((len(scenes), 2), np.float32)
    lbs, boxes, kinds = [], [], []
    for n, sc in enumerate(scenes):
        lb = Letterbox.of(sc.image.width, sc.image.height, size)
        l, t, r, b = lb.content
        small = np.asarray(sc.image.resize((r - l, b - t), Image.BILINEAR, reducing_gap=3.0), np.float32)
        std = small.std()
        pix[n, t:b, l:r] = small.astype(np.uint8)
        stats[n] = small.mean(), std if std > 1e-6 else 1.0
        lbs.append(lb)
        boxes.append(sc.box if sc.box is not None else (np.nan,) * 4)
        kinds.append(sc.kind)
    return pix, stats, lbs, boxes, kinds


def _scene_chunk(job) -> tuple:
    sources, stream, seed, start, stop, size, scene_cfg = job
    return _scene_rows([make_scene(sources, seed, i, scene_cfg, stream=stream) for i in range(start, stop)], size)


def _scene_set(parts: Sequence[tuple]) -> "SceneSet":
    boxes = np.array([x for p in parts for x in p[3]], np.float64).reshape(-1, 4)
    return SceneSet(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                    [x for p in parts for x in p[2]], boxes, [x for p in parts for x in p[4]])


def make_scene_set(sources: list[Source], stream: str, seed: int, n: int, size: int,
                   scene_cfg: SceneConfig = SceneConfig(), workers: int = 2) -> SceneSet:
    chunk = max(1, min(500, math.ceil(n / (4 * workers))))
    jobs = [(sources, stream, seed, a, min(n, a + chunk), size, scene_cfg) for a in range(0, n, chunk)]
    if workers > 1 and len(jobs) > 1:
        # fork is fast, but not after TensorFlow has started its threads
        ctx = multiprocessing.get_context("spawn" if "tensorflow" in sys.modules else "fork")
        with ctx.Pool(workers) as pool:
            parts = pool.map(_scene_chunk, jobs)
    else:
        parts = [_scene_chunk(j) for j in jobs]
    return _scene_set(parts)


def scenes_and_photos(sources: list[Source], stream: str, seed: int, n: int, size: int,
                      scene_cfg: SceneConfig = SceneConfig()) -> tuple[SceneSet, list[Image.Image]]:
    """The scenes `make_scene_set` makes, with their full-size photos, each scene made once: what the
    evaluation at full resolution (refining passes, the second look) needs beside the network's inputs."""
    scenes = [make_scene(sources, seed, i, scene_cfg, stream=stream) for i in range(n)]
    return _scene_set([_scene_rows(scenes, size)]), [sc.image for sc in scenes]


def svhn_folders(data_dir: Path | str) -> tuple[list[Path], Path]:
    """(train folders, test folder) under data_dir/svhn or data_dir itself."""
    root = Path(data_dir)
    if (root / "svhn").is_dir():
        root = root / "svhn"
    train = [root / s for s in ("train", "extra") if (root / s / "digitStruct.mat").is_file()]
    test = root / "test"
    if not train or not (test / "digitStruct.mat").is_file():
        raise DataError(f"{data_dir}: expected svhn/train and svhn/test folders with digitStruct.mat (make them "
                        f"with `python download_and_extract.py --synthetic 5000 --datasets svhn --data-dir DIR`)")
    return train, test


# ----------------------------------------------------------------------------------------- inference


class Finder:
    """A trained finder loaded from finder.keras + finder.json (a folder holding them, or either file)."""

    def __init__(self, path: Path | str):
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        model_path, meta_path = folder / "finder.keras", folder / "finder.json"
        if not model_path.is_file() or not meta_path.is_file():
            reader = "; it holds a number reader: pass that as --model" if (folder / "model.json").is_file() else ""
            raise HousenumError(f"no finder at {path}: expected finder.keras and finder.json there "
                                f"(train one with `python -m housenum.finder`){reader}")
        try:
            meta = json.loads(meta_path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise HousenumError(f"{meta_path} is not a finder's settings file: {exc}") from None
        if not isinstance(meta, dict) or meta.get("kind") != FORMAT:
            got = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
            raise HousenumError(f"{meta_path}: expected kind {FORMAT!r}, got {got!r} (is this a finder?)")
        from housenum import quiet_tf  # noqa: F401
        import keras

        try:
            model = keras.saving.load_model(model_path, compile=False)
        except Exception as exc:  # a truncated or foreign file: say which and why, on one line
            raise HousenumError(f"cannot load finder {model_path}: {' '.join(str(exc).split())}") from None
        from housenum.config import build_settings

        self.cfg = build_settings(FinderConfig, meta["config"])
        if tuple(model.input_shape[1:]) != (self.cfg.input_size, self.cfg.input_size, 1):
            raise HousenumError(f"{model_path}: input {model.input_shape[1:]} does not match finder.json's "
                                f"input_size {self.cfg.input_size}")
        self.model, self.meta, self.path = model, meta, folder
        self.threshold = float(meta["threshold"])
        self.refine = int(meta.get("refine", 0))  # refining passes; finders before 2026-12-01 stored a bool
        # None: no second look at tiles (finders before 2026-12-01 14:00 have none until calibrated)
        tile = meta.get("tile_threshold")
        self.tile_threshold = None if tile is None else float(tile)

    def predict(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        return predict_cells(self.model, x, batch)

    def find(self, images: Sequence[Image.Image], refine: int | None = None, tiles: bool = True) -> list[Found]:
        """Score and box of each photo, in its own pixels after EXIF orientation; box None where nothing is
        found. `refine`: refining passes (None: as trained; 0 or False: the first pass's box alone);
        `tiles`: a second look at tiles where the first finds nothing, if the finder has a tile threshold."""
        photos = [grayscale(ImageOps.exif_transpose(im)) for im in images]
        scores, boxes, tiled = locate(self, photos, self.refine if refine is None else refine,
                                      self.tile_threshold if tiles else None)
        out = []
        for im, s, b, t in zip(photos, scores, boxes, tiled):
            box = _clip_int(b, im.width, im.height) if s >= self.threshold or t else None
            out.append(Found(float(s), box, bool(t)))
        return out


def predict_cells(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    import tensorflow as tf

    fn = getattr(model, "_housenum_cells", None)
    if fn is None:
        # one trace for any batch size: a retrace per new batch size would cost ~50 ms on a user's first photos
        spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)
        fn = tf.function(lambda t: model(t, training=False), input_signature=[spec])
        model._housenum_cells = fn
    parts = [fn(tf.constant(x[a:a + batch], tf.float32)).numpy() for a in range(0, len(x), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 1, 1, 5), np.float32)


def locate(finder, photos: Sequence[Image.Image], refine: int,
           tile_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (N,) and boxes (N, 4) in photo pixels, for grayscale photos, and which were found by the
    second look (N,) bool. With a tile threshold, the photos `needs_second_look` names get it; where a
    tile scores at least the tile threshold, its score and box replace the first look's. Each of `refine`
    passes then looks again at a crop around the box before it (the score stays the look's)."""
    scores, passes, tiled = locate_passes(finder, photos, refine, tile_threshold)
    return scores, passes[-1], tiled


def locate_passes(finder, photos: Sequence[Image.Image], refine: int,
                  tile_threshold: float | None = None) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """`locate`, keeping the boxes after each pass: [boxes after 0 passes, ..., after `refine`]."""
    size = finder.cfg.input_size
    if not photos:
        return np.zeros(0), [np.zeros((0, 4))] * (int(refine) + 1), np.zeros(0, bool)
    arrays, lbs = zip(*(letterbox(p, size, finder.cfg.read_blur) for p in photos))
    scores, boxes = decode(finder.predict(np.stack(arrays)[..., None]), finder.cfg)
    boxes = np.array([lb.to_photo(b) for lb, b in zip(lbs, boxes)])
    tiled = np.zeros(len(photos), bool)
    if tile_threshold is not None:
        miss = needs_second_look(finder, photos, scores)
        if len(miss):
            t_scores, t_boxes = tile_look(finder, [photos[i] for i in miss])
            keep = t_scores >= tile_threshold
            scores[miss[keep]], boxes[miss[keep]], tiled[miss[keep]] = t_scores[keep], t_boxes[keep], True
    passes = [boxes]
    for _ in range(int(refine)):
        passes.append(_refine(finder, photos, passes[-1]))
    return scores, passes, tiled


def needs_second_look(finder, photos: Sequence[Image.Image], scores: np.ndarray) -> np.ndarray:
    """Indices of the photos the second look is for: the first look's score is below the finder's threshold
    and the photo is at least twice the input size on its long side (its tiles are never enlarged)."""
    big = np.array([max(p.size) >= 2 * finder.cfg.input_size for p in photos], bool)
    return np.flatnonzero((scores < finder.threshold) & big)


def tiles_of(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """TILES x TILES overlapping tiles of a w x h photo, each half its sides, evenly spaced edge to edge."""
    tw, th = max(1, w // 2), max(1, h // 2)
    xs = np.linspace(0, w - tw, TILES).round().astype(int)
    ys = np.linspace(0, h - th, TILES).round().astype(int)
    return [(int(x), int(y), int(x) + tw, int(y) + th) for y in ys for x in xs]


def tile_look(finder, photos: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
    """The second look: each photo's best tile's score (N,) and box (N, 4) in photo pixels."""
    size = finder.cfg.input_size
    if not photos:
        return np.zeros(0), np.zeros((0, 4))
    arrays, where = [], []
    for im in photos:
        for tile in tiles_of(im.width, im.height):
            a, lb = letterbox(im.crop(tile), size, finder.cfg.read_blur)
            arrays.append(a)
            where.append((tile, lb))
    scores, inner = decode(finder.predict(np.stack(arrays)[..., None]), finder.cfg)
    boxes = np.array([lb.to_photo(b) + (t[0], t[1], t[0], t[1]) for (t, lb), b in zip(where, inner)])
    per = TILES * TILES
    best = scores.reshape(-1, per).argmax(axis=1) + np.arange(len(photos)) * per
    return scores[best], boxes[best]


def _refine(finder, photos: Sequence[Image.Image], boxes: np.ndarray) -> np.ndarray:
    size, f = finder.cfg.input_size, finder.cfg.refine_factor
    crops, regions = [], []
    for im, b in zip(photos, boxes):
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        w, h = max(b[2] - b[0], 4.0) * f, max(b[3] - b[1], 4.0) * f
        region = _clip_int((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), im.width, im.height) or (0, 0, im.width, im.height)
        a, lb = letterbox(im.crop(region), size, finder.cfg.read_blur)
        crops.append(a)
        regions.append((region, lb))
    _, inner = decode(finder.predict(np.stack(crops)[..., None]), finder.cfg)
    out = []
    for (region, lb), b in zip(regions, inner):
        p = lb.to_photo(b)
        out.append([p[0] + region[0], p[1] + region[1], p[2] + region[0], p[3] + region[1]])
    return np.array(out)


# ----------------------------------------------------------------------------------------- evaluation


def evaluate(finder, scenes: SceneSet, photos: Sequence[Image.Image] | None = None, refine: int = 0,
             threshold: float | None = None,
             tile_threshold: float | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Box IoU on scenes with a number (mean, share >= 0.5, by the number's width / the photo's),
    has-number accuracy at the threshold, false-positive rate on scenes without one; with a tile
    threshold (and photos), the second look at tiles where the first finds nothing. Returns the figures,
    the scores and the boxes."""
    if photos is not None:
        scores, boxes, tiled = locate(finder, photos, refine, tile_threshold)
    else:
        scores, inner = decode(finder.predict(scenes.inputs(slice(None))), finder.cfg)
        boxes, tiled = np.array([lb.to_photo(b) for lb, b in zip(scenes.lbs, inner)]), np.zeros(len(scores), bool)
    thr = finder.threshold if threshold is None else threshold
    return figures(scenes, scores, boxes, tiled, thr), scores, boxes


def evaluate_passes(finder, scenes: SceneSet, photos: Sequence[Image.Image], passes: int,
                    threshold: float, tile_threshold: float | None = None) -> list[dict]:
    """`evaluate`'s figures after 0, 1, ..., `passes` refining passes, each pass made once."""
    scores, boxes, tiled = locate_passes(finder, photos, passes, tile_threshold)
    return [figures(scenes, scores, b, tiled, threshold) for b in boxes]


def figures(scenes: SceneSet, scores: np.ndarray, boxes: np.ndarray, tiled: np.ndarray, thr: float) -> dict:
    """The figures `evaluate` reports, for given scores and boxes (photo pixels) of the scenes."""
    pos = ~np.isnan(scenes.boxes[:, 0])
    ious = np.array([iou(b, t) for b, t in zip(boxes[pos], scenes.boxes[pos])])
    width = np.array([(t[2] - t[0]) / lb.w for t, lb, p in zip(scenes.boxes, scenes.lbs, pos) if p])
    said = (scores >= thr) | tiled
    out = {
        "scenes": int(len(scores)), "with_number": int(pos.sum()), "without_number": int((~pos).sum()),
        "threshold": float(thr),
        "has_number_accuracy": float((said == pos).mean()),
        "false_positive_rate": float(said[~pos].mean()) if (~pos).any() else float("nan"),
        "recall": float(said[pos].mean()) if pos.any() else float("nan"),
        "iou_mean": float(ious.mean()) if len(ious) else float("nan"),
        "iou_share_0.5": float((ious >= 0.5).mean()) if len(ious) else float("nan"),
    }
    for name, lo, hi in (("small", 0, 0.15), ("medium", 0.15, 0.4), ("large", 0.4, 9)):
        sel = (width >= lo) & (width < hi)
        out[f"iou_mean_{name}"] = float(ious[sel].mean()) if sel.any() else float("nan")
        out[f"recall_{name}"] = float(said[pos][sel].mean()) if sel.any() else float("nan")
        out[f"count_{name}"] = int(sel.sum())
    return out


def choose_threshold(scores: np.ndarray, positive: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold whose false-positive rate on `scores[~positive]` is <= max_fpr (most recall
    within the allowed false alarms); 0.5 when there are no negatives."""
    neg = np.sort(scores[~positive])[::-1]
    if len(neg) == 0:
        return 0.5
    allowed = int(math.floor(max_fpr * len(neg)))
    # Strictly above the (allowed+1)-th highest negative score: at most `allowed` negatives pass.
    return float(np.nextafter(neg[allowed], 1.0)) if allowed < len(neg) else 0.0


def choose_tile_threshold(first: np.ndarray, tiles: np.ndarray, positive: np.ndarray, threshold: float,
                          max_fpr: float) -> float:
    """The lowest tile threshold at which the second look takes at most max_fpr of all no-number scenes
    beyond those the first look takes (first score >= threshold); never below the first look's threshold,
    so a tile needs at least the evidence the whole photo would."""
    neg = ~positive
    extra = np.where(first[neg] >= threshold, -np.inf, tiles[neg])  # already taken: the tiles add nothing
    return max(float(threshold), choose_threshold(extra, np.zeros(len(extra), bool), max_fpr))


def calibrate_tiles(finder, test_src: list[Source], cfg: FinderConfig, scene_cfg: SceneConfig,
                    valid: tuple[list[Image.Image], np.ndarray] | None = None, log=print) -> dict:
    """Choose the finder's tile threshold on validation scenes: the validation stream the threshold was
    chosen on, plus as many no-number scenes of their own stream (a rate of a few percent needs more than
    the validation scenes' ~30 % negatives). `valid`: those validation scenes' photos and has-number flags,
    where the caller has made them already. Returns the threshold and what the second look changes there."""
    if valid is None:
        scenes = [make_scene(test_src, cfg.seed, i, scene_cfg, stream="valid") for i in range(cfg.valid_scenes)]
        valid = [sc.image for sc in scenes], np.array([sc.box is not None for sc in scenes])
    blank_cfg = scene_cfg.no_number()
    blank = [make_scene(test_src, cfg.seed, i, blank_cfg, stream="valid-no-number") for i in range(cfg.valid_scenes)]
    photos = list(valid[0]) + [sc.image for sc in blank]
    positive = np.concatenate([valid[1], [sc.box is not None for sc in blank]]).astype(bool)
    first, _, _ = locate(finder, photos, 0)
    tiles = np.full(len(photos), -np.inf)
    miss = needs_second_look(finder, photos, first)
    tiles[miss] = tile_look(finder, [photos[i] for i in miss])[0]
    thr = choose_tile_threshold(first, tiles, positive, finder.threshold, cfg.tile_max_fpr)
    before = first >= finder.threshold
    after = before | (tiles >= thr)
    out = {"tile_threshold": thr, "tile_max_fpr": cfg.tile_max_fpr, "scenes": len(photos),
           "with_number": int(positive.sum()), "without_number": int((~positive).sum()),
           "found_first_look": float(before[positive].mean()), "found_with_tiles": float(after[positive].mean()),
           "false_positive_rate_first_look": float(before[~positive].mean()),
           "false_positive_rate_with_tiles": float(after[~positive].mean())}
    log(f"tiles: threshold {thr:.4f}; validation scenes with a number found {out['found_first_look']:.1%} -> "
        f"{out['found_with_tiles']:.1%}, no-number scenes taken {out['false_positive_rate_first_look']:.1%} -> "
        f"{out['false_positive_rate_with_tiles']:.1%}")
    return out


# ----------------------------------------------------------------------------------------- training


class _Trained:
    """What `evaluate` and `locate` need while training, before a Finder exists on disk."""

    def __init__(self, model, cfg: FinderConfig, threshold: float = 0.5, refine: int = 0):
        self.model, self.cfg, self.threshold, self.refine = model, cfg, threshold, refine

    def predict(self, x, batch: int = 256):
        return predict_cells(self.model, x, batch)


def scene_photos(sources: list[Source], stream: str, seed: int, n: int, scene_cfg: SceneConfig) -> list[Image.Image]:
    return [make_scene(sources, seed, i, scene_cfg, stream=stream).image for i in range(n)]


def train_finder(data_dir: Path | str, out_dir: Path | str, cfg: FinderConfig = FinderConfig(),
                 scene_cfg: SceneConfig = SceneConfig(), workers: int = 2, log=print) -> dict:
    """Train a finder on scenes from data_dir's SVHN-format folders; write out_dir/finder.keras,
    finder.json, log.csv and tensorboard/; return finder.json's content."""
    out_dir = Path(out_dir)
    train_folders, test_folder = svhn_folders(data_dir)
    t0 = time.time()
    train_src, test_src = load_sources(train_folders), load_sources([test_folder])
    train_cfg = scene_cfg if cfg.train_long_side is None else replace(scene_cfg, long_side=tuple(cfg.train_long_side))
    train = make_scene_set(train_src, "train", cfg.seed, cfg.train_scenes, cfg.input_size, train_cfg, workers)
    valid = make_scene_set(test_src, "valid", cfg.seed, cfg.valid_scenes, cfg.input_size, scene_cfg, workers)
    gen_s = time.time() - t0
    log(f"scenes: {len(train_src)} train photos -> {cfg.train_scenes} scenes, {len(test_src)} test photos -> "
        f"{cfg.valid_scenes} validation scenes ({gen_s:.0f} s)")

    from housenum import quiet_tf  # noqa: F401
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    model = build_finder(cfg)
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, cfg.steps)
    opt = keras.optimizers.Adam(schedule)
    loss_fn = _loss_fn(cfg)

    @tf.function(reduce_retracing=True)
    def train_step(x, obj, mask, box):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            total, cls, reg = loss_fn(out, obj, mask, box)
        opt.apply_gradients(zip(tape.gradient(total, model.trainable_variables), model.trainable_variables))
        return total, cls, reg

    rng = np.random.default_rng(cfg.seed)
    train_boxes_in = train.input_boxes(np.arange(len(train.boxes)))
    tb = tf.summary.create_file_writer(str(out_dir / "tensorboard"))
    rows, t1 = [], time.time()
    trained = _Trained(model, cfg)
    running = []
    for step in range(1, cfg.steps + 1):
        idx = np.sort(rng.choice(len(train.boxes), cfg.batch_size, replace=False))
        obj, mask, box = encode(train_boxes_in[idx], cfg)
        total, cls, reg = train_step(tf.constant(train.inputs(idx)), tf.constant(obj), tf.constant(mask), tf.constant(box))
        running.append((float(total), float(cls), float(reg)))
        if step % cfg.eval_every == 0 or step == cfg.steps:
            m, _, _ = evaluate(trained, valid, threshold=0.5)
            loss, cls_l, reg_l = np.mean(running, axis=0)
            running = []
            row = {"step": step, "seconds": round(time.time() - t1, 1), "loss": float(loss), "cls_loss": float(cls_l),
                   "box_loss": float(reg_l), "valid_iou_mean": m["iou_mean"], "valid_iou_share_0.5": m["iou_share_0.5"],
                   "valid_accuracy_at_0.5": m["has_number_accuracy"]}
            rows.append(row)
            with tb.as_default(step=step):
                for k, v in row.items():
                    if k != "step":
                        tf.summary.scalar(k, v)
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(row))
            w.writeheader()
            w.writerows(rows)
            write_text(out_dir / "log.csv", buf.getvalue())
            log(f"step {step}/{cfg.steps}: loss {loss:.3f} (cells {cls_l:.3f}, box {reg_l:.3f}), validation "
                f"IoU {m['iou_mean']:.3f}, >=0.5 {m['iou_share_0.5']:.1%}, accuracy@0.5 {m['has_number_accuracy']:.1%}")
    tb.flush()
    train_s = time.time() - t1

    # Threshold and refinement are chosen on validation scenes at full resolution, as `find` sees photos
    # (made again here rather than held in memory through training).
    vphotos = scene_photos(test_src, "valid", cfg.seed, cfg.valid_scenes, scene_cfg)
    reading = choose_reading(trained, test_src, cfg, scene_cfg, valid, vphotos, log)

    meta = {
        "kind": FORMAT,
        "config": asdict(cfg),
        "scene_config": asdict(scene_cfg),
        "train_scene_config": asdict(train_cfg),
        "input_size": cfg.input_size,
        "threshold": reading["threshold"],
        "refine": reading["refine"],
        "parameters": int(model.count_params()),
        "data": {"data_dir": str(Path(data_dir).resolve()), "train_folders": [str(f) for f in train_folders],
                 "trained_on": describe_folders(train_folders[0].parent, [f.name for f in train_folders]),
                 "test_folder": str(test_folder), "train_photos": len(train_src), "test_photos": len(test_src),
                 "train_scenes": cfg.train_scenes, "valid_scenes": cfg.valid_scenes, "test_scenes": cfg.test_scenes,
                 "streams": "train scenes from train(+extra) photos, stream 'train'; validation and test scenes "
                            "from the test split's photos, streams 'valid' and 'test'; all with the config's seed"},
        "seconds": {"scenes": round(gen_s, 1), "training": round(train_s, 1)},
        **{k: reading[k] for k in ("validation", "test", "tile_threshold", "tiles")},
    }
    with atomic_path(out_dir / "finder.keras", suffix=".keras") as tmp:
        model.save(tmp)
    write_json(out_dir / "finder.json", meta)
    return meta


def choose_reading(finder, test_src: list[Source], cfg: FinderConfig, scene_cfg: SceneConfig, valid: SceneSet,
                   vphotos: Sequence[Image.Image], log=print) -> dict:
    """How `finder` reads, chosen on the validation scenes (`valid`, their full-size photos `vphotos`) and
    set on it: the threshold (false positives <= cfg.max_fpr of validation negatives), the refining passes
    (best validation IoU) and the tile threshold; with the test scenes' figures. finder.json's entries."""
    vscores, vboxes, _ = locate_passes(finder, vphotos, len(PASSES) - 1)
    pos = ~np.isnan(valid.boxes[:, 0])
    threshold = choose_threshold(vscores, pos, cfg.max_fpr)
    vals = [figures(valid, vscores, b, np.zeros(len(vscores), bool), threshold) for b in vboxes]
    refine = max(range(len(PASSES)), key=lambda n: (vals[n]["iou_mean"], -n))  # a tie keeps fewer passes
    finder.threshold, finder.refine = threshold, refine
    ious = ", ".join(f"{v['iou_mean']:.3f}" for v in vals)
    log(f"validation: IoU {ious} after 0..{len(PASSES) - 1} "
        f"refining passes -> {refine}; threshold {threshold:.3f} (false positives <= {cfg.max_fpr:.0%} of "
        f"validation negatives)")
    test, tphotos = scenes_and_photos(test_src, "test", cfg.seed, cfg.test_scenes, cfg.input_size, scene_cfg)
    tests = evaluate_passes(finder, test, tphotos, len(PASSES) - 1, threshold)
    tiles = tile_figures(finder, test_src, cfg, scene_cfg, test, tphotos, (vphotos, pos), log)
    return {"threshold": threshold, "refine": refine, "validation": dict(zip(PASSES, vals)),
            "test": {**dict(zip(PASSES, tests)), "used": PASSES[refine]},
            "tile_threshold": tiles["validation"]["tile_threshold"], "tiles": tiles}


def _trained_finder(folder: Path | str, data_dir: Path | str) -> tuple["Finder", list[Source], SceneConfig]:
    """A trained finder, the test-split photos of the data it was trained on (its validation and test
    scenes' sources) and its scene settings: what changing how it reads, without retraining, starts from."""
    from housenum.config import build_settings

    finder = Finder(folder)
    _, test_folder = svhn_folders(data_dir)
    return finder, load_sources([test_folder]), build_settings(SceneConfig, finder.meta["scene_config"])


def recalibrate(folder: Path | str, data_dir: Path | str, read_blur: float, log=print) -> dict:
    """Set a trained finder's read blur and choose again how it reads (`choose_reading`) on the validation
    scenes of the data it was trained on (same seed and scene settings), without retraining; rewrite its
    finder.json (the earlier choices kept under "before_recalibration"). Returns the new finder.json content."""
    finder, test_src, scene_cfg = _trained_finder(folder, data_dir)
    finder.cfg = cfg = replace(finder.cfg, read_blur=float(read_blur))
    valid, vphotos = scenes_and_photos(test_src, "valid", cfg.seed, cfg.valid_scenes, cfg.input_size, scene_cfg)
    reading = choose_reading(finder, test_src, cfg, scene_cfg, valid, vphotos, log)
    keys = ("threshold", "refine", "validation", "test", "tile_threshold", "tiles")
    before = {"config": finder.meta["config"], **{k: finder.meta.get(k) for k in keys}}
    meta = {**finder.meta, "config": asdict(cfg), **reading, "before_recalibration": before}
    write_json(finder.path / "finder.json", meta)
    return meta


def tile_figures(finder, test_src: list[Source], cfg: FinderConfig, scene_cfg: SceneConfig, test: SceneSet,
                 test_photos: Sequence[Image.Image], valid: tuple[list[Image.Image], np.ndarray] | None = None,
                 log=print) -> dict:
    """The tile threshold chosen on validation scenes (set on `finder`) and the test scenes' figures with
    the second look, at the finder's refining passes: finder.json's "tiles"."""
    valid = calibrate_tiles(finder, test_src, cfg, scene_cfg, valid, log)
    finder.tile_threshold = valid["tile_threshold"]
    with_tiles = evaluate(finder, test, test_photos, refine=finder.refine, tile_threshold=finder.tile_threshold)[0]
    log(f"test scenes with the second look: found {with_tiles['recall']:.1%} (small numbers "
        f"{with_tiles['recall_small']:.1%}), no-number scenes taken {with_tiles['false_positive_rate']:.1%}, "
        f"IoU {with_tiles['iou_mean']:.3f}")
    return {"validation": valid, "test": with_tiles}


def add_tiles(folder: Path | str, data_dir: Path | str, log=print) -> dict:
    """Give a trained finder the second look at tiles without retraining it: choose its tile threshold on
    the validation scenes of the data it was trained on (same seed and scene settings) and rewrite its
    finder.json with the threshold and the test scenes' figures. Returns the new finder.json content."""
    finder, test_src, scene_cfg = _trained_finder(folder, data_dir)
    cfg = finder.cfg
    test, tphotos = scenes_and_photos(test_src, "test", cfg.seed, cfg.test_scenes, cfg.input_size, scene_cfg)
    tiles = tile_figures(finder, test_src, cfg, scene_cfg, test, tphotos, log=log)
    meta = {**finder.meta, "config": asdict(cfg), "tile_threshold": finder.tile_threshold, "tiles": tiles}
    write_json(finder.path / "finder.json", meta)
    return meta


# ----------------------------------------------------------------------------------------- command


def main(argv: Sequence[str] | None = None) -> int:
    from housenum import cli

    d = FinderConfig()
    p = cli.make_parser(__doc__)
    p.add_argument("--data-dir", required=True, help="folder holding svhn/{train,extra,test} (SVHN format)")
    p.add_argument("--out", default="results/finder", help="where finder.keras, finder.json, log.csv go")
    p.add_argument("--steps", type=cli.positive_int, default=d.steps, help="training steps")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights, scenes and batch order")
    p.add_argument("--input-size", type=cli.positive_int, default=d.input_size, help="S: letterbox side")
    p.add_argument("--batch-size", type=cli.positive_int, default=d.batch_size, help="scenes per step")
    p.add_argument("--learning-rate", type=float, default=d.learning_rate, help="initial Adam learning rate")
    p.add_argument("--train-scenes", type=cli.positive_int, default=d.train_scenes, help="training scenes made")
    p.add_argument("--valid-scenes", type=cli.positive_int, default=d.valid_scenes, help="validation scenes")
    p.add_argument("--test-scenes", type=cli.positive_int, default=d.test_scenes, help="test scenes")
    p.add_argument("--eval-every", type=cli.positive_int, default=d.eval_every, help="validate every N steps")
    p.add_argument("--workers", type=cli.positive_int, default=2, help="processes making scenes")
    sd = SceneConfig()
    p.add_argument("--original-share", type=float, default=sd.original_share,
                   help="share of scenes that are the SVHN photo as it is")
    p.add_argument("--number-region-prob", type=float, default=sd.number_region_prob,
                   help="chance a scene pastes only the number and a little around it, not the whole photo")
    p.add_argument("--neighbour-prob", type=float, default=sd.neighbour_prob,
                   help="chance a letters-only sign is drawn right beside the pasted number")
    p.add_argument("--crisp-share", type=float, default=sd.crisp_share,
                   help="share of scenes whose number is drawn flat and left sharp (a clean plate's phone photo)")
    p.add_argument("--read-blur", type=float, default=d.read_blur,
                   help="sigma (input pixels) of a Gaussian blur on the finder's input when reading (FinderConfig)")
    p.add_argument("--recalibrate", action="store_true",
                   help="do not train: set --read-blur on the finder in --out and choose its threshold, refining "
                        "passes and tile threshold again on validation scenes of --data-dir, the data it was trained on")
    p.add_argument("--add-tiles", action="store_true",
                   help="do not train: give the finder in --out the second look at tiles (choose its tile "
                        "threshold on validation scenes of --data-dir, the data it was trained on)")
    args = p.parse_args(argv)
    if args.recalibrate:
        meta = recalibrate(args.out, args.data_dir, args.read_blur)
        print(f"wrote {Path(args.out) / 'finder.json'}: read blur {args.read_blur}, threshold {meta['threshold']:.3f}, "
              f"{meta['refine']} refining passes, tile threshold {meta['tile_threshold']:.4f}")
        return 0
    if args.add_tiles:
        meta = add_tiles(args.out, args.data_dir)
        print(f"wrote {Path(args.out) / 'finder.json'}: tile threshold {meta['tile_threshold']:.4f}")
        return 0
    cfg = FinderConfig(input_size=args.input_size, steps=args.steps, batch_size=args.batch_size,
                       learning_rate=args.learning_rate, train_scenes=args.train_scenes,
                       valid_scenes=args.valid_scenes, test_scenes=args.test_scenes, eval_every=args.eval_every,
                       read_blur=args.read_blur, seed=args.seed)
    scene_cfg = SceneConfig(original_share=args.original_share, number_region_prob=args.number_region_prob,
                            neighbour_prob=args.neighbour_prob, crisp_share=args.crisp_share)
    meta = train_finder(args.data_dir, args.out, cfg, scene_cfg, workers=args.workers)
    used = meta["test"]["used"]
    m = meta["test"][used]
    print(f"test scenes ({m['scenes']}: {m['with_number']} with a number, {m['without_number']} without), {used}:")
    print(f"  box IoU mean {m['iou_mean']:.3f}, IoU >= 0.5 {m['iou_share_0.5']:.1%} "
          f"(small {m['iou_mean_small']:.3f} / medium {m['iou_mean_medium']:.3f} / large {m['iou_mean_large']:.3f})")
    print(f"  has-number accuracy {m['has_number_accuracy']:.1%}, false positives on no-number scenes "
          f"{m['false_positive_rate']:.1%}, numbers found {m['recall']:.1%} (threshold {meta['threshold']:.3f})")
    t = meta["tiles"]["test"]
    print(f"  with the second look at tiles (threshold {meta['tile_threshold']:.4f}): numbers found {t['recall']:.1%}, "
          f"small ones {m['recall_small']:.1%} -> {t['recall_small']:.1%}; no-number scenes taken {t['false_positive_rate']:.1%}")
    print(f"  training {meta['seconds']['training']:.0f} s, scenes {meta['seconds']['scenes']:.0f} s; "
          f"wrote {Path(args.out) / 'finder.keras'} and finder.json")
    return 0


if __name__ == "__main__":
    from housenum.cli import run

    run(main)

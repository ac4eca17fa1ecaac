"""Whole-photo scenes for the finder: a house number somewhere in a larger photo, or no number at all.

SVHN photos (real or synthetic) are framed around their number: it fills much of a photo only 2-9x
wider than it. Users photograph whole house fronts, so the finder learns on scenes built from those
photos: the photo, or the number region of it, pasted at a random scale and position into a larger
background of a phone's shape (portrait or landscape), beside distractors (letters-only signs, shapes,
lines, window/brick/tile textures, sky gradients); and negative scenes with no number at all (blank,
noise, sky, walls, letters-only signs, clutter). Some scenes keep the SVHN photo as it is, as real SVHN
full photos are.

Every scene is a pure function of (sources, seed, index): its generator is derived from (seed, index), so
training and evaluation draw disjoint streams by seed and workers may split the work any way.

Scenes are grayscale ("L"): the finder and the reader both work on luma, and one channel is a third
of the work. Boxes are (left, top, right, bottom) in the scene's pixels around the union of the digit
boxes (tight, no margin), clipped to the scene; None for a scene with no number.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from housenum.errors import DataError

Box = tuple[int, int, int, int]
# Phone photo shapes (width / height): landscape and portrait, plus square crops.
ASPECTS = (4 / 3, 3 / 4, 16 / 9, 9 / 16, 3 / 2, 2 / 3, 1.0)
SIGN_WORDS = ("STOP", "EXIT", "PARKING", "NO ENTRY", "POST", "OPEN", "CAFE", "BAKERY", "HOTEL", "SALE",
              "KEEP CLEAR", "PRIVATE", "WELCOME", "Main St", "Oak Ave", "BUS", "TAXI", "PHARMACY", "BANK",
              "Pizza", "Library", "Garage", "DANGER", "ONE WAY", "Smith", "MARKET")


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn. Shares are of all scenes; sizes are in scene pixels unless said otherwise."""

    negative_share: float = 0.3  # scenes with no number (the finder must learn to say "none")
    original_share: float = 0.15  # the SVHN photo as it is (real SVHN full photos look like that)
    # the number framed as a training crop is, a random margin each side and often fewer pixels: a
    # close-up, or a photo a user cropped by hand (without these the finder missed a real 23x21 crop)
    framed_share: float = 0.1
    framed_margin: tuple[float, float] = (0.05, 0.5)  # each side's margin, of the number's width or height
    long_side: tuple[int, int] = (400, 720)  # scene's longer side: enough pixels for the reader's crop
    number_width: tuple[float, float] = (0.06, 0.9)  # number width / scene width, log-uniform
    number_region_prob: float = 0.5  # paste only the number and a little of its surroundings, not the photo
    edge_cut_prob: float = 0.1  # the number runs off an edge by up to `max_cut` of its width or height
    max_cut: float = 0.15  # most of a number that may lie outside the scene
    feather_prob: float = 0.5  # soften the pasted photo's edges, so a sharp rectangle is no cue
    max_distractors: int = 5  # letters-only signs, shapes, lines, texture patches (0..max in each scene)
    # a letters-only sign right beside the pasted number, a small gap away: the clutter found boxes take in
    # (README, "Where whole photos lose"); 0 keeps the scenes of earlier finders byte for byte
    neighbour_prob: float = 0.0
    # digits drawn flat on a plain or lightly textured wall, left sharp (no camera blur, noise or lighting):
    # a phone's photo of a clean plate. The SVHN-like photos the other scenes paste are all soft, and the finder
    # trained only on them boxed crisp numbers badly (bench/crisp_numbers.py: IoU >= 0.5 for 56 % of them).
    # 0 keeps the scenes of earlier finders byte for byte.
    crisp_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("negative_share", "original_share", "framed_share", "number_region_prob", "edge_cut_prob",
                     "feather_prob", "neighbour_prob", "crisp_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise DataError(f"SceneConfig.{name}: expected a share 0..1, got {v}")
        if self.negative_share + self.original_share + self.framed_share + self.crisp_share > 1.0:
            raise DataError(f"SceneConfig: negative_share + original_share + framed_share + crisp_share must be "
                            f"<= 1, got {self.negative_share} + {self.original_share} + {self.framed_share} + "
                            f"{self.crisp_share}")
        lo, hi = self.framed_margin
        if not 0.0 <= lo <= hi:
            raise DataError(f"SceneConfig.framed_margin: expected 0 <= low <= high, got {self.framed_margin}")
        lo, hi = self.number_width
        if not 0.0 < lo <= hi <= 1.0:
            raise DataError(f"SceneConfig.number_width: expected 0 < low <= high <= 1, got {self.number_width}")
        if not 32 <= self.long_side[0] <= self.long_side[1]:
            raise DataError(f"SceneConfig.long_side: expected 32 <= low <= high, got {self.long_side}")

    def no_number(self) -> SceneConfig:
        """The same settings drawing only scenes with no number: for rates of no-number scenes taken or read.
        Every share of a kind with a number is set to 0 here, in one place, so a new kind cannot leak in."""
        positive = {f.name: 0.0 for f in fields(self) if f.name.endswith("_share") and f.name != "negative_share"}
        return replace(self, negative_share=1.0, **positive)


@dataclass(frozen=True)
class Source:
    """One SVHN-format photo and the tight union box of its digits (left, top, right, bottom)."""

    path: Path
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Scene:
    image: Image.Image  # mode "L"
    box: Box | None  # union box of the digits in scene pixels; None: no number in the scene
    kind: str  # "original", "framed", "pasted", "crisp" or "negative" (for per-kind evaluation)


def load_sources(folders: Sequence[Path | str]) -> list[Source]:
    """Photos with their union boxes from SVHN-format folders (digitStruct.mat + PNGs). Records whose
    image is absent are skipped (the mirror holds few real photos); an empty result is a DataError."""
    from housenum.digitstruct import read_digitstruct

    out: list[Source] = []
    for folder in folders:
        folder = Path(folder)
        mat = folder / "digitStruct.mat"
        if not mat.is_file():
            raise DataError(f"{folder}: expected an SVHN-format folder holding digitStruct.mat, found none")
        ds = read_digitstruct(mat)
        for i in range(len(ds)):
            name, b = ds.record(i)
            path = folder / name
            if len(b) == 0 or not path.is_file():
                continue
            box = (float(b[:, 1].min()), float(b[:, 2].min()), float((b[:, 1] + b[:, 3]).max()),
                   float((b[:, 2] + b[:, 4]).max()))
            out.append(Source(path, box))
    if not out:
        raise DataError(f"no photos with digit boxes in {', '.join(str(f) for f in folders)}")
    return out


def scene_rng(seed: int, index: int, stream: str = "train") -> np.random.Generator:
    """Scene `index`'s generator. `stream` ("train", "valid", "test") keeps the splits' scenes apart
    under one seed."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(stream.encode()), int(index)]))


def make_scene(sources: Sequence[Source], seed: int, index: int, config: SceneConfig = SceneConfig(),
               stream: str = "train") -> Scene:
    """Scene `index` of (seed, stream): the same sources, seed, index, config and stream give the same pixels."""
    if not sources:
        raise DataError("make_scene: expected at least one source photo, got none")
    rng = scene_rng(seed, index, stream)
    u = rng.random()
    if u < config.negative_share:
        return Scene(_negative(rng, config), None, "negative")
    crisp_from = config.negative_share + config.original_share + config.framed_share
    if crisp_from <= u < crisp_from + config.crisp_share:  # no draw at crisp_share 0: same scenes as before
        image, box = _crisp(rng, config)
        return Scene(image, box, "crisp")
    src = sources[int(rng.integers(len(sources)))]
    with Image.open(src.path) as im:
        photo = im.convert("L")
    if u < config.negative_share + config.original_share:
        return Scene(photo, _clip_box(src.box, photo.size), "original")
    if u < config.negative_share + config.original_share + config.framed_share:
        image, box = _framed(rng, config, photo, src.box)
        return Scene(image, box, "framed")
    image, box = _pasted(rng, config, photo, src.box)
    return Scene(image, box, "pasted" if box is not None else "negative")


# ----------------------------------------------------------------------------------------- backgrounds


def _scene_size(rng: np.random.Generator, config: SceneConfig) -> tuple[int, int]:
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))] * float(rng.lognormal(0, 0.05))
    long = int(rng.integers(config.long_side[0], config.long_side[1] + 1))
    return (long, max(16, round(long / aspect))) if aspect >= 1 else (max(16, round(long * aspect)), long)


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A wall, sky or street backdrop in 0..1: one of the synthetic generator's textures, windows,
    tiles or a sky gradient, with a random base tone, contrast and fine noise."""
    from housenum.synthetic import _texture

    w, h = size
    kind = rng.choice(["texture", "windows", "tiles", "sky"], p=[0.5, 0.2, 0.15, 0.15])
    scale = float(rng.uniform(0.02, 0.12)) * max(w, h)
    if kind == "texture":
        t = _texture(rng, size, scale)
    elif kind == "windows":
        t = _windows(rng, size, scale * 2)
    elif kind == "tiles":
        t = _tiles(rng, size, scale)
    else:
        yy = np.linspace(1.0, -1.0, h, dtype=np.float32)[:, None]
        t = np.broadcast_to(yy, (h, w)) * float(rng.uniform(0.3, 1.0))
    base = rng.uniform(0.15, 0.85)
    amp = rng.uniform(0.05, 0.35)
    a = base + amp * np.asarray(t, np.float32) + rng.normal(0, rng.uniform(0, 0.03), (h, w)).astype(np.float32)
    return np.clip(a, 0, 1).astype(np.float32)


def _windows(rng: np.random.Generator, size: tuple[int, int], cell: float) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cw, ch = cell * rng.uniform(0.8, 1.6), cell * rng.uniform(0.8, 1.6)
    fx, fy = rng.uniform(0.4, 0.8), rng.uniform(0.4, 0.8)
    inside = ((xx / cw) % 1.0 < fx) & ((yy / ch) % 1.0 < fy)
    return np.where(inside, rng.uniform(-1, -0.3), rng.uniform(0.2, 1.0)).astype(np.float32)


def _tiles(rng: np.random.Generator, size: tuple[int, int], cell: float) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    joint = max(1.0, cell * 0.08)
    grout = ((xx % cell) < joint) | ((yy % cell) < joint)
    tone = rng.uniform(-0.4, 0.4, 997).astype(np.float32)
    idx = ((np.floor(xx / cell) * 31 + np.floor(yy / cell) * 17) % 997).astype(np.int64)
    return np.where(grout, 1.0, tone[idx]).astype(np.float32)


def _negative(rng: np.random.Generator, config: SceneConfig) -> Image.Image:
    size = _scene_size(rng, config)
    kind = rng.choice(["blank", "noise", "background", "clutter"], p=[0.1, 0.1, 0.3, 0.5])
    w, h = size
    if kind == "blank":
        a = np.full((h, w), rng.uniform(0.05, 0.95), np.float32)
    elif kind == "noise":
        a = np.clip(rng.uniform(0.3, 0.7) + rng.normal(0, rng.uniform(0.05, 0.3), (h, w)), 0, 1).astype(np.float32)
    else:
        a = _background(rng, size)
    img = _to_image(a)
    if kind == "clutter":
        _distractors(rng, img, None, int(rng.integers(1, config.max_distractors + 2)), allow_patch=True)
    return _degrade(rng, img)


# ------------------------------------------------------------------------------------------- positives


def _framed(rng: np.random.Generator, config: SceneConfig, photo: Image.Image,
            box: tuple[float, float, float, float]) -> tuple[Image.Image, Box]:
    """The photo cut around its number with a random margin each side (within the photo), then shrunk to a
    long side log-uniform between 20 px and its own: the number fills most of the frame."""
    l, t, r, b = _clip_box(box, photo.size)
    nw, nh = r - l, b - t
    m = rng.uniform(*config.framed_margin, 4) * np.array([nw, nh, nw, nh])
    cl, ct = max(0, int(l - m[0])), max(0, int(t - m[1]))
    cr, cb = min(photo.width, math.ceil(r + m[2])), min(photo.height, math.ceil(b + m[3]))
    crop = photo.crop((cl, ct, cr, cb))
    long = max(crop.size)
    k = min(1.0, math.exp(rng.uniform(math.log(20), math.log(max(20, long)))) / long)
    if k < 1:
        crop = crop.resize((max(1, round(crop.width * k)), max(1, round(crop.height * k))), Image.BOX)
    kx, ky = crop.width / (cr - cl), crop.height / (cb - ct)
    out = _clip_box(((l - cl) * kx, (t - ct) * ky, (r - cl) * kx, (b - ct) * ky), crop.size)
    return crop, out


def _crisp(rng: np.random.Generator, config: SceneConfig) -> tuple[Image.Image, Box]:
    """1-5 digits in one of the generator's typefaces drawn at their final size (so the edges are as sharp as
    the font's anti-aliasing), on a plain wall or one of the backgrounds, on a plate half the time, among the
    usual distractors; not degraded. The box is the ink's."""
    from housenum.synthetic import DEFAULT_FONTS, _font, pick_face

    size = _scene_size(rng, config)
    sw, sh = size
    if rng.random() < 0.5:
        wall = np.full((sh, sw), rng.uniform(0.1, 0.95), np.float32)
    else:
        wall = _background(rng, size)
    digits = rng.integers(0, 10, int(rng.integers(1, 6)))
    if len(digits) > 1 and digits[0] == 0:  # house numbers do not start with 0
        digits[0] = rng.integers(1, 10)
    text = "".join(map(str, digits))
    face = pick_face(rng, DEFAULT_FONTS)
    probe = _font(face, 100).getbbox(text)
    lo, hi = config.number_width
    frac = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    k = min(frac * sw / max(1, probe[2] - probe[0]), 0.8 * sh / max(1, probe[3] - probe[1]))
    font = _font(face, max(8, int(100 * k)))
    ink = Image.new("L", (sw, sh), 0)
    draw = ImageDraw.Draw(ink)
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    if r - l > sw or b - t > sh:  # the smallest font size kept is still too large for the scene
        font = _font(face, 8)
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
    x, y = int(rng.integers(0, max(1, sw - (r - l)))), int(rng.integers(0, max(1, sh - (b - t))))
    draw.text((x - l, y - t), text, font=font, fill=255)
    box = ink.getbbox() or (x, y, x + 1, y + 1)
    if rng.random() < 0.5:  # a plate behind the digits, a margin of 0.1-0.5 of their height each side
        pad = (rng.uniform(0.1, 0.5, 4) * (box[3] - box[1])).astype(int)
        pl, pt = max(0, box[0] - pad[0]), max(0, box[1] - pad[1])
        pr, pb = min(sw, box[2] + pad[2]), min(sh, box[3] + pad[3])
        wall[pt:pb, pl:pr] = rng.uniform(0.05, 0.95)
    under = float(wall[box[1]:box[3], box[0]:box[2]].mean())
    tone = rng.uniform(0.0, 1.0)
    while abs(tone - under) < 0.3:  # ink that stands out from what is under it
        tone = rng.uniform(0.0, 1.0)
    m = np.asarray(ink, np.float32) / 255.0
    scene = _to_image(wall * (1 - m) + tone * m)
    number_box = _clip_box(box, size)
    _distractors(rng, scene, number_box, int(rng.integers(0, config.max_distractors + 1)), allow_patch=True)
    return scene, number_box


def _pasted(rng: np.random.Generator, config: SceneConfig, photo: Image.Image,
            box: tuple[float, float, float, float]) -> tuple[Image.Image, Box | None]:
    pw, ph = photo.size
    l, t, r, b = _clip_box(box, photo.size)
    nw, nh = r - l, b - t
    if rng.random() < config.number_region_prob:
        # Only the number and a little of its own surroundings (a plate on a wall).
        m = rng.uniform(0.1, 0.6, 4) * nh
        cl, ct = max(0, int(l - m[0])), max(0, int(t - m[1]))
        cr, cb = min(pw, int(math.ceil(r + m[2]))), min(ph, int(math.ceil(b + m[3])))
        photo = photo.crop((cl, ct, cr, cb))
        l, t, r, b = l - cl, t - ct, r - cl, b - ct
        pw, ph = photo.size
    size = _scene_size(rng, config)
    sw, sh = size
    lo, hi = config.number_width
    frac = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    k = frac * sw / nw
    # The number may not be taller than 90 % of the scene, nor the pasted photo larger than 3x the scene.
    k = min(k, 0.9 * sh / nh, 3 * sw / pw, 3 * sh / ph)
    k = max(k, 6 / nh)  # at least 6 px tall: smaller is no number a reader could read
    tw, th = max(1, round(pw * k)), max(1, round(ph * k))
    patch = photo.resize((tw, th), Image.BILINEAR if k >= 1 else Image.BOX)
    bl, bt, br, bb = l * k, t * k, r * k, b * k  # number box in patch pixels
    # Position: the number anywhere in the scene, or cut by an edge.
    bw, bh = br - bl, bb - bt
    if rng.random() < config.edge_cut_prob:
        cut = rng.uniform(0, config.max_cut)
        side = int(rng.integers(4))
        x = {0: -bl - cut * bw, 1: sw - br + cut * bw}.get(side, rng.uniform(-bl, max(-bl, sw - br)))
        y = {2: -bt - cut * bh, 3: sh - bb + cut * bh}.get(side, rng.uniform(-bt, max(-bt, sh - bb)))
    else:
        x = rng.uniform(-bl, max(-bl, sw - br))
        y = rng.uniform(-bt, max(-bt, sh - bb))
    x, y = int(round(x)), int(round(y))
    scene = _to_image(_background(rng, size))
    number_box = _clip_box((bl + x, bt + y, br + x, bb + y), size)
    _distractors(rng, scene, number_box, int(rng.integers(0, config.max_distractors + 1)), allow_patch=True)
    mask = None
    if rng.random() < config.feather_prob:
        # A soft edge around the pasted photo, clear of the number itself.
        m = Image.new("L", (tw, th), 0)
        f = max(1, int(min(tw, th) * rng.uniform(0.03, 0.15)))
        ImageDraw.Draw(m).rectangle([f, f, tw - 1 - f, th - 1 - f], fill=255)
        mask = m.filter(ImageFilter.GaussianBlur(f / 2))
        ImageDraw.Draw(mask).rectangle([int(bl), int(bt), math.ceil(br), math.ceil(bb)], fill=255)
    scene.paste(patch, (x, y), mask)
    if number_box is None:
        return _degrade(rng, scene), None
    if config.neighbour_prob > 0 and rng.random() < config.neighbour_prob:  # no draw at 0: same scenes as before
        _neighbour(rng, scene, number_box)
    return _degrade(rng, scene), number_box


def _neighbour(rng: np.random.Generator, img: Image.Image, number_box: Box) -> None:
    """A letters-only sign beside the number, left or right, a gap of 0.1-0.6 of its height away, about as
    tall as it: the box must stop at the number's own edge."""
    l, t, r, b = number_box
    h = b - t
    bh = max(4, int(h * rng.uniform(0.6, 1.4)))
    bw = max(4, int(bh * rng.uniform(1.0, 3.0)))
    gap = max(1, int(h * rng.uniform(0.1, 0.6)))
    y0 = int((t + b) / 2 - bh / 2 + rng.uniform(-0.2, 0.2) * h)
    x0 = r + gap if rng.random() < 0.5 else l - gap - bw
    _sign(rng, ImageDraw.Draw(img), (x0, y0, x0 + bw, y0 + bh))


def _clip_box(box: Sequence[float], size: tuple[int, int]) -> Box | None:
    w, h = size
    l, t = max(0, int(math.floor(box[0]))), max(0, int(math.floor(box[1])))
    r, b = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    if r - l < 1 or b - t < 1:
        return None
    return l, t, r, b


# ----------------------------------------------------------------------------------------- distractors


def _distractors(rng: np.random.Generator, img: Image.Image, keep_clear: Box | None, count: int,
                 allow_patch: bool) -> None:
    """Draw `count` things that are not house numbers, never over `keep_clear` (the number's box, grown)."""
    w, h = img.size
    draw = ImageDraw.Draw(img)
    clear = None
    if keep_clear is not None:
        l, t, r, b = keep_clear
        g = 0.3 * (b - t)
        clear = (l - g, t - g, r + g, b + g)
    for _ in range(count):
        kind = rng.choice(["sign", "shape", "line", "patch"], p=[0.4, 0.25, 0.2, 0.15])
        if kind == "patch" and not allow_patch:
            kind = "shape"
        for _attempt in range(6):
            bw = int(w * rng.uniform(0.05, 0.5))
            bh = int(min(h * 0.5, bw * rng.uniform(0.2, 1.2)))
            if bw < 4 or bh < 4:
                break
            x0, y0 = int(rng.integers(-bw // 4, w - bw // 2)), int(rng.integers(-bh // 4, h - bh // 2))
            rect = (x0, y0, x0 + bw, y0 + bh)
            if kind == "line" or clear is None or not _overlaps(rect, clear):
                break
        else:
            continue
        if bw < 4 or bh < 4:
            continue
        ink = int(rng.integers(0, 256))
        if kind == "sign":
            _sign(rng, draw, rect)
        elif kind == "shape":
            if rng.random() < 0.5:
                draw.ellipse(rect, fill=ink if rng.random() < 0.5 else None, outline=ink,
                             width=max(1, int(bh * 0.05)))
            else:
                draw.rectangle(rect, fill=ink if rng.random() < 0.5 else None, outline=ink,
                               width=max(1, int(bh * 0.05)))
        elif kind == "line":
            pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h))) for _ in range(2)]
            width = max(1, int(min(w, h) * rng.uniform(0.003, 0.03)))
            if clear is None or not _segment_near(pts, clear):
                draw.line(pts, fill=ink, width=width)
        else:
            patch = _to_image(_background(rng, (bw, bh)))
            img.paste(patch, (x0, y0))


def _sign(rng: np.random.Generator, draw: ImageDraw.ImageDraw, rect: tuple[int, int, int, int]) -> None:
    """A plate with a word on it (letters only: a street name, a shop's), filling rect."""
    from housenum.synthetic import DEFAULT_FONTS, _font, pick_face

    x0, y0, x1, y1 = rect
    bw, bh = x1 - x0, y1 - y0
    plate = int(rng.integers(0, 256))
    draw.rectangle(rect, fill=plate)
    word = SIGN_WORDS[int(rng.integers(len(SIGN_WORDS)))]
    face = pick_face(rng, DEFAULT_FONTS)
    size = max(6, int(bh * rng.uniform(0.35, 0.7)))
    font = _font(face, size)
    tb = font.getbbox(word)
    if tb[2] - tb[0] > bw * 0.95:  # shrink the word to its plate
        font = _font(face, max(6, int(size * bw * 0.95 / max(1, tb[2] - tb[0]))))
        tb = font.getbbox(word)
    ink = (plate + int(rng.integers(70, 186))) % 256
    draw.text((x0 + (bw - (tb[2] - tb[0])) / 2 - tb[0], y0 + (bh - (tb[3] - tb[1])) / 2 - tb[1]), word,
              font=font, fill=ink)


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _segment_near(pts, box) -> bool:
    """Whether a segment passes through the box (sampled; lines are long and thin)."""
    (xa, ya), (xb, yb) = pts
    for s in np.linspace(0, 1, 64):
        x, y = xa + s * (xb - xa), ya + s * (yb - ya)
        if box[0] <= x <= box[2] and box[1] <= y <= box[3]:
            return True
    return False


# ----------------------------------------------------------------------------------------- finishing


def _to_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8), "L")


def _degrade(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """Whole-photo lighting, blur and noise: the camera's, over number and background alike."""
    if rng.random() < 0.3:
        w, h = img.size
        a = np.asarray(img, np.float32) / 255.0
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx * np.cos(ang) + yy * np.sin(ang)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
        a = a * (1 - rng.uniform(0.2, 0.5) * t)
        img = _to_image(a)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    if rng.random() < 0.3:
        a = np.asarray(img, np.float32) + rng.normal(0, rng.uniform(2, 10), img.size[::-1]).astype(np.float32)
        img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")
    return img

"""SVHN-format synthetic data: house-number photos with digitStruct.mat labels, and notMNIST-style letters.

Real SVHN pixels are not available offline, so the pipeline can run on numbers made here. Each image is
one house number of 1..5 digits (uniform per position), its length, box height, box widths, gaps and
vertical jitter drawn from the real SVHN train+test labels (`resources/svhn_label_stats.json`), rendered
in one of matplotlib's bundled fonts (DejaVu, STIX, Computer Modern: no system fonts, so the output does
not depend on the machine) with varying contrast, plates, textures, clutter beside the number, rotation,
perspective, lighting, blur, noise and JPEG artefacts, inside an image much wider than the number.

Same seed, same bytes: each image has its own generator derived from (seed, split, index), so the
worker count does not matter; PNGs, tar members (fixed order, mtime, owner, mode) and gzip headers
(mtime 0, no file name) are written deterministically.

Commands:
    python -m housenum.synthetic --contact-sheet synthetic_sheet.png --count 40 --seed 0
    python -m housenum.synthetic --fit-stats ../shared/data/svhn      # refit the bundled label statistics

`--fit-stats` takes folders holding train/test `digitStruct.mat` (unpacked, or inside train.tar.gz /
test.tar.gz), or the .mat / .tar.gz files themselves, and rewrites resources/svhn_label_stats.json. A refit
changes the data: its neighbour rank correlations (tied values at their mean rank, the same on every CPU)
differ by up to 0.005 from the bundled ones, fitted before with argsort ranks on an AVX-512 machine and kept,
since the shipped reader's data is drawn from them.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import json
import math
import multiprocessing
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from housenum.atomic import atomic_path, write_text
from housenum.config import LONGEST  # the most digits the generator draws in one number
from housenum.digitstruct import FIELDS, DigitStructWriter
from housenum.errors import DataError, HousenumError
from housenum.handwriting import hand_glyph, pick_hand

SPLITS = ("train", "test", "extra")  # the official archives, in the order they are written
STATS_PATH = Path(__file__).resolve().parent / "resources" / "svhn_label_stats.json"
# Quantile levels stored for every fitted distribution; sampling draws u uniformly between the first
# and the last, so the extreme 0.5 % on each side (mislabelled boxes, 400-px digits) is never reproduced.
QUANTILE_LEVELS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                   0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995)
MIN_NUMBERS_PER_LENGTH = 500  # lengths with fewer real numbers share the statistics of the last length with more
FIXED_MTIME = 1_300_000_000  # tar member mtime (2011-03-13, the SVHN release year): same bytes on every run
MATLAB_CREATED = "Fri Mar 11 12:00:00 2011"  # digitStruct.mat header date, fixed for byte-identical output
LETTERS = "ABCDEFGHIJ"  # notMNIST classes

# Typefaces of the numbers, each entry a family drawn with equal chance: a file in matplotlib's bundled fonts
# (mpl-data/fonts/ttf), an absolute path, or "fontpkg:<slug>", a font family from the pinned pip package
# fontpkg-<slug> (requirements.txt), so that the data are the same on every machine. House numbers are
# painted by hand, cut from plates, cast or printed: handwriting and marker, condensed, stencil-like,
# slab and serif, plate and signage (DIN-like) and rounded faces. Faces with old-style (descending)
# figures are left out: their '3 4 5 7 9' drop below the line, which house numbers seldom do.
MPL_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "cmr10.ttf", "cmss10.ttf",
)
FONTPKG_FAMILIES = (
    # handwriting, brush and marker
    "caveat", "indie-flower", "kalam", "permanent-marker", "shadows-into-light", "delius", "dancing-script",
    # condensed and narrow
    "oswald", "bebas-neue", "anton", "barlow-condensed", "roboto-condensed", "fjalla-one", "teko",
    "pt-sans-narrow", "archivo-narrow", "yanone-kaffeesatz",
    # stencil-like, slab and serif
    "black-ops-one", "roboto-slab", "alfa-slab-one", "arvo", "libre-baskerville", "bitter", "abril-fatface",
    # plate and signage, geometric and rounded
    "overpass", "barlow", "public-sans", "saira", "share-tech", "russo-one", "chakra-petch", "varela-round",
    "fredoka", "comfortaa", "montserrat",
)
DEFAULT_FONTS = MPL_FONTS + tuple(f"fontpkg:{slug}" for slug in FONTPKG_FAMILIES)
# Weights below this (Thin, ExtraLight, some Light) are drawn only for SyntheticConfig.thin_prob's share of
# numbers: thin strokes fade at 32x32, yet real house numbers do come in light, thin lettering.
MIN_WEIGHT = 300

SEE_BBOXES_M = """load digitStruct.mat
for i = 1:length(digitStruct)
    im = imread([digitStruct(i).name]);
    for j = 1:length(digitStruct(i).bbox)
        [height, width] = size(im);
        aa = max(digitStruct(i).bbox(j).top+1,1);
        bb = min(digitStruct(i).bbox(j).top+digitStruct(i).bbox(j).height, height);
        cc = max(digitStruct(i).bbox(j).left+1,1);
        dd = min(digitStruct(i).bbox(j).left+digitStruct(i).bbox(j).width, width);

        imshow(im(aa:bb, cc:dd, :));
        fprintf('%d\\n',digitStruct(i).bbox(j).label );
        pause;
    end
end
"""


@dataclass(frozen=True)
class SyntheticConfig:
    """How synthetic house numbers look. Lengths and box geometry come from the fitted label statistics;
    the rest (margins, colours, degradations) is set here. Pixel figures are in final-image pixels."""

    # --- content
    fonts: tuple[str, ...] = DEFAULT_FONTS  # font families, drawn with equal chance: see DEFAULT_FONTS
    stats_path: str | None = None  # label statistics JSON; None = the bundled resources/svhn_label_stats.json
    max_length: int = 5  # lengths are drawn from the real 1..max_length distribution (the study reads <= 5)
    # share of numbers longer than the study reads (6..long_max digits, each length as likely): for a
    # sequence reader that reads any length (preprocess with --max-digits long_max to keep them); off by
    # default, since the study's network drops them
    long_share: float = 0.0
    long_max: int = 8
    min_height: int = 10  # floor on the drawn box height in px (real 0.5 % quantile: 12)
    ink_fill: tuple[float, float] = (0.78, 0.96)  # glyph ink height / box height: SVHN boxes are a little loose
    ink_width: tuple[float, float] = (0.72, 0.95)  # glyph ink width / box width (loose boxes overlap, digits less)
    max_ink_overlap: float = 0.05  # neighbouring digits' ink may overlap by at most this many box heights
    bold_prob: float = 0.3  # chance of thickening strokes beyond the font's own weight
    # chance of a light weight (below MIN_WEIGHT) from a family that has one, never thickened; 0 keeps the
    # random stream, and so the data of a given --seed, as it was before this setting existed
    thin_prob: float = 0.0
    # chance that the number is written by hand (housenum.handwriting: pen strokes with a writer's slant,
    # wobble and variants of each digit) instead of set in a font; 0 keeps the random stream as before
    hand_prob: float = 0.0
    outline_prob: float = 0.12  # chance of an outline or drop shadow in a third colour (painted numbers)
    emboss_prob: float = 0.08  # chance of raised or cast digits: lit edge on one side, shadow on the other
    mounted_prob: float = 0.25  # chance that the digits are mounted one by one: each its own tilt, height, size
    mounted_tilt_deg: float = 7.0  # standard deviation of a mounted digit's own rotation (clipped at 2 sd)
    stencil_prob: float = 0.04  # chance of stencil lettering: strokes cut by a gap down each digit's middle
    # --- image frame (real full images are 2-9x wider than the number and 1.2-2.3x taller; 10 mirror images)
    margin_x: tuple[float, float] = (1.1, 0.9)  # left/right margin in box heights: lognormal (median, sigma)
    margin_y: tuple[float, float] = (0.3, 0.6)  # top/bottom margin in box heights: lognormal (median, sigma)
    edge_touch_prob: float = 0.08  # chance that one side of the number touches the image edge (margin 0)
    max_image_side: int = 640  # cap on the image's longer side in px (SVHN's largest are ~880 wide)
    # --- colour and surroundings
    contrast: tuple[float, float] = (0.15, 0.8)  # |luminance(digits) - luminance(background)| at severity 1 .. 0
    plate_prob: float = 0.45  # chance of a plate (rectangle of its own colour) behind the number
    tile_prob: float = 0.1  # chance of one tile or plate per digit (tiled and enamel numbers) instead
    metal_prob: float = 0.1  # chance of metal digits (brass, steel): shading that runs across the digits
    glare_prob: float = 0.1  # chance of glare from glass or gloss: a soft bright band over the image
    texture_strength: float = 0.5  # background texture amplitude, as a fraction of the digits' contrast
    clutter_prob: float = 0.75  # chance of clutter: other digits/letters, lines, frames, blobs beside the number
    max_clutter: int = 4  # at most this many clutter items
    light_prob: float = 0.3  # chance of uneven lighting (soft gradient or a shadow edge across the image)
    # --- geometry
    rotation_deg: float = 4.0  # standard deviation of the rotation (clipped at 2.5 sd)
    shear: float = 0.08  # standard deviation of the horizontal shear (slanted lettering, oblique views)
    perspective: float = 0.04  # standard deviation of each corner's displacement, in box heights
    # --- degradations: one severity per image, Beta(a, b), scales contrast loss, blur, noise and JPEG
    # loss together, so that images range from clean to hard without every loss peaking at once
    severity: tuple[float, float] = (2.0, 4.0)  # Beta parameters (mean 1/3)
    blur: tuple[float, float] = (0.0, 0.045)  # Gaussian blur sigma in box heights, at severity 0 .. 1
    defocus_prob: float = 0.06  # chance of a badly focused or moving shot: blur of defocus_blur box heights
    defocus_blur: tuple[float, float] = (0.05, 0.11)
    lowres_prob: float = 0.3  # chance of down- then up-sampling (a small, upscaled crop as many SVHN images are)
    noise: tuple[float, float] = (0.0, 0.06)  # Gaussian pixel noise sigma on a 0..1 scale, at severity 0 .. 1
    jpeg_prob: float = 0.5  # chance of a JPEG round trip (Street View imagery was JPEG-compressed)
    jpeg_quality: tuple[int, int] = (20, 90)  # JPEG quality at severity 1 .. 0
    # --- output
    png_compress_level: int = 1  # zlib level of the written PNGs: the pixels are the same at any level; 1 writes
    # them in half the CPU of 6 for 9 % more bytes (1.3 against 2.7 ms an image; 300 of the train split)

    def __post_init__(self) -> None:
        if not self.fonts:
            raise HousenumError("SyntheticConfig.fonts: expected at least one font file name, got none")
        if not 1 <= self.max_length <= 5:
            raise HousenumError(f"SyntheticConfig.max_length: expected 1..5, got {self.max_length}")
        if not 0.0 <= self.long_share <= 1.0:
            raise HousenumError(f"SyntheticConfig.long_share: expected 0..1, got {self.long_share}")
        if not 6 <= self.long_max <= LONGEST:
            raise HousenumError(f"SyntheticConfig.long_max: expected 6..{LONGEST} digits, got {self.long_max}")
        for name in ("bold_prob", "thin_prob", "hand_prob", "outline_prob", "emboss_prob", "mounted_prob", "stencil_prob", "edge_touch_prob",
                     "plate_prob", "tile_prob", "metal_prob", "glare_prob", "clutter_prob", "light_prob",
                     "defocus_prob", "lowres_prob", "jpeg_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise HousenumError(f"SyntheticConfig.{name}: expected a probability 0..1, got {value}")
        for name in ("ink_fill", "ink_width", "severity", "margin_x", "margin_y", "contrast", "blur", "defocus_blur",
                     "noise", "jpeg_quality"):
            lo, hi = getattr(self, name)
            if name not in ("margin_x", "margin_y", "severity") and lo > hi:
                raise HousenumError(f"SyntheticConfig.{name}: expected (low, high) with low <= high, got {(lo, hi)}")
        if not (0.0 < self.contrast[0] and self.contrast[1] <= 1.0):
            raise HousenumError(f"SyntheticConfig.contrast: expected 0 < low <= high <= 1, got {self.contrast}")
        if min(self.severity) <= 0:
            raise HousenumError(f"SyntheticConfig.severity: expected Beta parameters > 0, got {self.severity}")
        if self.min_height < 4 or self.max_image_side < 32:
            raise HousenumError(f"SyntheticConfig: min_height >= 4 and max_image_side >= 32 expected, "
                             f"got {self.min_height} and {self.max_image_side}")


# ----------------------------------------------------------------------------------------- public API


def split_sizes(n: int) -> dict[str, int]:
    """Split sizes for `--synthetic N`: N train numbers, a quarter as many test, a tenth as many extra."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"--synthetic: expected a positive number of synthetic numbers, got {n!r}")
    n = int(n)
    return {"train": n, "test": max(1, n // 4), "extra": max(1, n // 10)}


def render_number(digits: Sequence[int], rng: np.random.Generator,
                  config: SyntheticConfig = SyntheticConfig()) -> tuple[Image.Image, np.ndarray]:
    """Render one house number; return the RGB image and its boxes.

    boxes: float64 (n, 5) in digitstruct.FIELDS order (label, left, top, width, height), one row per digit
    left to right, label 10 for digit 0, integer pixel values, each box inside the image or touching it.
    """
    digits = _checked_digits(digits)
    return _Renderer(config, rng).render(digits)


def sample_digits(rng: np.random.Generator, config: SyntheticConfig = SyntheticConfig()) -> list[int]:
    """A number's digits: length from the real distribution (1..max_length), or with chance long_share
    6..long_max; each digit uniform 0..9."""
    if config.long_share > 0 and rng.random() < config.long_share:
        length = int(rng.integers(6, config.long_max + 1))
    else:
        probs = _length_probs(_stats(config.stats_path), config.max_length)
        length = int(rng.choice(len(probs), p=probs)) + 1
    return [int(d) for d in rng.integers(0, 10, size=length)]


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of image `index` of `split`: independent of how the work is divided among workers."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(split.encode()), int(index)]))


def write_svhn_split(folder: str | os.PathLike, split: str, n: int, seed: int,
                     config: SyntheticConfig = SyntheticConfig(), workers: int = 2,
                     progress: bool = True, resume: bool = False) -> Path:
    """Write folder/<split>/{1..n}.png, digitStruct.mat and see_bboxes.m; return folder/<split>.

    Built in a hidden temporary folder beside it and renamed when complete; an existing folder/<split>
    is replaced only then. `resume`: that folder (`.<split>.partial`) and a record of the blocks of images
    finished (`.<split>.blocks`) have fixed names and outlive an interruption, so that the same call
    started again draws only what is missing; `folder` must then be this call's own (its settings fixed).
    """
    folder = Path(folder)
    _check_count(f"{split} size", n, minimum=1)
    _check_seed(seed)
    if not split or "/" in split or split.startswith("."):
        raise DataError(f"split name: expected a plain folder name such as 'train', got {split!r}")
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / split
    if resume:
        tmp, done = folder / f".{split}.partial", folder / f".{split}.blocks"
        tmp.mkdir(exist_ok=True)
        for stale in tmp.glob(".digitStruct.mat.*.tmp"):  # the labels of a run killed part-way: made anew
            stale.unlink()
    else:
        tmp, done = Path(tempfile.mkdtemp(dir=folder, prefix=f".{split}.tmp-")), None
    try:
        # The labels are written block by block as the workers finish them, not after: HDF5 makes the
        # file's ~14 objects a number at ~0.1 ms each, 10 minutes of one core for 200,000 numbers.
        with DigitStructWriter(tmp / "digitStruct.mat", created=MATLAB_CREATED) as labels:
            def add(start: int, boxes: list[np.ndarray]) -> None:
                for k, b in enumerate(boxes):
                    labels.add(f"{start + k}.png", b)

            _render_split(tmp, split, n, seed, config, workers, progress, done, on_block=add)
        (tmp / "see_bboxes.m").write_text(SEE_BBOXES_M, encoding="ascii")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the official folders are world-readable
        _replace_dir(tmp, final)
    except BaseException:
        if not resume:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if done is not None:
        shutil.rmtree(done, ignore_errors=True)
    return final


def write_svhn_archives(out_dir: str | os.PathLike, sizes: dict[str, int], seed: int = 0,
                        config: SyntheticConfig = SyntheticConfig(), workers: int = 2,
                        progress: bool = True, resume: bool = False) -> list[Path]:
    """Write out_dir/<split>.tar.gz for each split in `sizes`, in the official layout; return the paths.

    Each archive unpacks to one folder <split>/ with the PNGs, digitStruct.mat and see_bboxes.m.
    `resume`: out_dir is this call's own (its settings fixed, as download's `.partial-synthetic-<key>`): an
    archive already in it is kept, and a split interrupted part-way goes on where it stopped
    (`write_svhn_split`'s resume).
    """
    out_dir = Path(out_dir)
    if not isinstance(sizes, dict) or not sizes:
        raise DataError(f"sizes: expected a dict split -> count such as {{'train': 100}}, got {sizes!r}")
    for split, n in sizes.items():
        _check_count(f"sizes[{split!r}]", n, minimum=1)
    _check_seed(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, n in sizes.items():
        target = out_dir / f"{split}.tar.gz"
        if resume and target.is_file():  # written whole or not at all (_write_tar_gz)
            paths.append(target)
            continue
        work = out_dir / f".{split}.work" if resume else Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{split}.work-"))
        finished = False
        try:
            work.mkdir(exist_ok=True)
            if resume and (work / split).is_dir():  # renamed into place only when complete
                folder = work / split
            else:
                folder = write_svhn_split(work, split, int(n), seed, config, workers, progress, resume)
            members = [folder / "digitStruct.mat"] + [folder / f"{i}.png" for i in range(1, int(n) + 1)]
            members.append(folder / "see_bboxes.m")
            paths.append(_write_tar_gz(target, split, [(split, None)] +
                                       [(f"{split}/{p.name}", p) for p in members], compresslevel=0))
            finished = True
        finally:
            if finished or not resume:
                shutil.rmtree(work, ignore_errors=True)
    return paths


def write_notmnist_folder(out_dir: str | os.PathLike, per_class: int, seed: int = 0,
                          name: str = "notMNIST_small", corrupt: int = 1, empty: int = 1) -> Path:
    """Write out_dir/<name>/A..J/*.png (per_class readable 28x28 grayscale letters per class, white on
    black as notMNIST); plus `corrupt` truncated PNGs and `empty` zero-byte PNGs among the classes (as the
    real notMNIST_large has). Returns out_dir/<name>; built under a temporary name and renamed."""
    out_dir = Path(out_dir)
    _check_count("per_class", per_class, minimum=1)
    _check_count("corrupt", corrupt, minimum=0)
    _check_count("empty", empty, minimum=0)
    _check_seed(seed)
    if not name or "/" in name or name.startswith("."):
        raise DataError(f"notMNIST folder name: expected a plain name such as 'notMNIST_small', got {name!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{name}.tmp-"))
    try:
        os.chmod(tmp, 0o755)
        fonts = SyntheticConfig().fonts
        for entry in fonts:
            font_family(entry)  # a missing font package stops here, before any letter is drawn
        for c, letter in enumerate(LETTERS):
            (tmp / letter).mkdir()
            for i in range(per_class):
                rng = image_rng(seed, f"notmnist/{letter}", i)
                img = _render_letter(letter, rng, fonts)
                img.save(tmp / letter / f"{c * per_class + i:05d}.png", format="PNG", compress_level=6)
        rng = image_rng(seed, "notmnist/bad", 0)
        base = len(LETTERS) * per_class
        for k in range(corrupt + empty):
            letter = LETTERS[int(rng.integers(len(LETTERS)))]
            path = tmp / letter / f"{base + k:05d}.png"
            if k < corrupt:
                # A PNG cut off inside its image data: readers fail on it, as on notMNIST_large's bad files.
                buf = io.BytesIO()
                _render_letter(letter, rng, fonts).save(buf, format="PNG")
                path.write_bytes(buf.getvalue()[: max(40, len(buf.getvalue()) // 3)])
            else:
                path.write_bytes(b"")
        _replace_dir(tmp, out_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / name


def write_notmnist_archive(out_dir: str | os.PathLike, per_class: int, seed: int = 0,
                           name: str = "notMNIST_small", corrupt: int = 1, empty: int = 1) -> Path:
    """Write out_dir/<name>.tar.gz, unpacking to <name>/A..J/*.png like the official archive."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{name}.work-"))
    try:
        folder = write_notmnist_folder(work, per_class, seed, name, corrupt, empty)
        members: list[tuple[str, Path | None]] = [(name, None)]
        for letter in LETTERS:
            members.append((f"{name}/{letter}", None))
            members += [(f"{name}/{letter}/{p.name}", p) for p in sorted((folder / letter).iterdir())]
        return _write_tar_gz(out_dir / f"{name}.tar.gz", name, members)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fit_label_stats(digitstruct_paths: Sequence[str | os.PathLike]) -> dict:
    """Fit the label statistics the generator draws from (what resources/svhn_label_stats.json holds).

    Per length: quantiles of the number's box height (px), box width/height, the horizontal gap between
    neighbouring boxes (in box heights; negative = overlap) and the top offset between neighbours (in
    box heights); per label: quantiles of width/height; rank correlations between neighbours.
    """
    import scipy.stats

    from housenum.digitstruct import read_digitstruct  # only fitting reads labels

    if not digitstruct_paths:
        raise DataError("fit_label_stats: expected at least one digitStruct.mat path, got none")
    records: list[np.ndarray] = []
    sources = []
    for path in digitstruct_paths:
        ds = read_digitstruct(path, method="fast")
        sources.append(f"{Path(path).parent.name}/{Path(path).name}" if Path(path).parent.name else Path(path).name)
        records += [ds.boxes[ds.offsets[i]: ds.offsets[i + 1]] for i in range(len(ds))]
    records = [r for r in records if len(r)]
    if not records:
        raise DataError(f"fit_label_stats: {', '.join(map(str, digitstruct_paths))} hold no boxes")
    lengths = np.array([len(r) for r in records])
    counts = np.bincount(lengths)
    keys = [L for L in range(1, len(counts)) if counts[L] >= MIN_NUMBERS_PER_LENGTH] or [int(lengths.min())]
    levels = np.array(QUANTILE_LEVELS)

    def q(values: Iterable[float]) -> list[float]:
        v = np.asarray(list(values), dtype=np.float64)
        return [_round4(x) for x in np.quantile(v, levels)] if len(v) else []

    per_length: dict[str, Any] = {}
    for k, L in enumerate(keys):
        last = k == len(keys) - 1
        group = [r for r in records if (len(r) >= L if last else len(r) == L)]
        entry: dict[str, Any] = {"numbers": len(group), "lengths": f"{L}+" if last and L < lengths.max() else str(L)}
        boxes = np.concatenate(group)
        entry["height"] = q(r[:, 4].mean() for r in group)
        entry["aspect"] = q(boxes[:, 3] / np.maximum(boxes[:, 4], 1))
        if L >= 2:
            entry["gap"] = q(g for r in group for g in _gaps(r))
            entry["dy"] = q(d for r in group for d in _dys(r))
        per_length[str(L)] = entry
    boxes = np.concatenate(records)
    aspect_by_label = {}
    for label in range(1, 11):
        b = boxes[boxes[:, 0] == label]
        aspect_by_label[str(label)] = q(b[:, 3] / np.maximum(b[:, 4], 1))

    def neighbour_corr(fn) -> float:
        pairs = [(v[0], v[1]) for r in records if len(r) >= 3 for v in [fn(r)]]
        a = np.array(pairs)
        # Spearman's rho gives tied values their mean rank; ranks from argsort would order ties as the CPU's
        # sort does (AVX-512 sorts order them otherwise), and the fit would differ between machines
        return _round4(float(scipy.stats.spearmanr(a[:, 0], a[:, 1]).statistic))

    return {
        "format": 1,
        "source": f"SVHN {' + '.join(sources)}: {len(records)} numbers, {len(boxes)} digits",
        "command": "python -m housenum.synthetic --fit-stats ../shared/data/svhn",
        "quantile_levels": list(QUANTILE_LEVELS),
        "length_counts": {str(L): int(counts[L]) for L in range(1, len(counts)) if counts[L]},
        "per_length": per_length,
        "aspect_by_label": aspect_by_label,
        "neighbour_rank_correlation": {
            "aspect": neighbour_corr(lambda r: r[:2, 3] / np.maximum(r[:2, 4], 1)),
            "gap": neighbour_corr(lambda r: _gaps(r)[:2]),
            "dy": neighbour_corr(lambda r: _dys(r)[:2]),
        },
    }


def contact_sheet(count: int = 40, seed: int = 0, config: SyntheticConfig = SyntheticConfig(),
                  cell: tuple[int, int] = (160, 80), columns: int = 5, boxes: bool = True) -> Image.Image:
    """A grid of `count` samples (split 'sheet'), each scaled to fit a cell, boxes drawn in red."""
    _check_count("count", count, minimum=1)
    rows = -(-count // columns)
    cw, ch = cell
    sheet = Image.new("RGB", (columns * (cw + 4) + 4, rows * (ch + 18) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    label_font = _font(Face(_font_path("DejaVuSans.ttf")), 11)
    for k in range(count):
        rng = image_rng(seed, "sheet", k + 1)
        digits = sample_digits(rng, config)
        img, b = render_number(digits, rng, config)
        scale = min(cw / img.width, ch / img.height)
        shown = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
        if boxes:
            d = ImageDraw.Draw(shown)
            for _, left, top, w, h in b:
                d.rectangle([left * scale, top * scale, (left + w) * scale - 1, (top + h) * scale - 1],
                            outline=(255, 0, 0))
        x, y = 4 + (k % columns) * (cw + 4), 4 + (k // columns) * (ch + 18)
        sheet.paste(shown, (x, y))
        draw.text((x, y + ch + 2), f"{''.join(map(str, digits))}  {img.width}x{img.height}",
                  fill=(0, 0, 0), font=label_font)
    return sheet


# ------------------------------------------------------------------------------------ label statistics


def _gaps(r: np.ndarray) -> list[float]:
    h = (r[:-1, 4] + r[1:, 4]) / 2
    return list((r[1:, 1] - (r[:-1, 1] + r[:-1, 3])) / np.maximum(h, 1))


def _dys(r: np.ndarray) -> list[float]:
    h = (r[:-1, 4] + r[1:, 4]) / 2
    return list((r[1:, 2] - r[:-1, 2]) / np.maximum(h, 1))


def _round4(x: float) -> float:
    return float(f"{float(x):.4g}")


@functools.lru_cache(maxsize=8)
def _stats(path: str | None) -> dict:
    p = Path(path) if path else STATS_PATH
    try:
        stats = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"label statistics {p} not found; regenerate it with "
                        "python -m housenum.synthetic --fit-stats ../shared/data/svhn") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"label statistics {p}: expected the JSON written by --fit-stats, could not read it ({exc})") from None
    missing = {"quantile_levels", "length_counts", "per_length", "aspect_by_label"} - set(stats)
    if missing:
        raise DataError(f"label statistics {p}: expected keys {sorted(missing)} (written by --fit-stats), absent")
    return stats


def _length_probs(stats: dict, max_length: int) -> np.ndarray:
    counts = np.array([stats["length_counts"].get(str(L), 0) for L in range(1, max_length + 1)], dtype=np.float64)
    if counts.sum() <= 0:
        raise DataError(f"label statistics: no numbers of length 1..{max_length} in length_counts")
    return counts / counts.sum()


def _dump_stats(stats: dict) -> str:
    """JSON with one line per list, so the committed file stays small and diffs stay readable."""
    def dump(obj: Any, indent: int) -> str:
        if isinstance(obj, dict):
            pad = " " * (indent + 1)
            items = [f"{pad}{json.dumps(k)}: {dump(v, indent + 1)}" for k, v in obj.items()]
            return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
        return json.dumps(obj)
    return dump(stats, 0) + "\n"


# -------------------------------------------------------------------------------------------- rendering


def _font_dir() -> Path:
    # matplotlib's own data folder, located without importing matplotlib (slow, and not needed here).
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("fonts: matplotlib is not installed; its bundled fonts are needed (pip install matplotlib)")
    return Path(list(spec.submodule_search_locations)[0]) / "mpl-data" / "fonts" / "ttf"


@dataclass(frozen=True)
class Face:
    """One font file at one point of its variation axes (weight, width); axes () = the file's default."""

    path: Path
    axes: tuple[float, ...] = ()


@functools.lru_cache(maxsize=256)
def _font_path(name: str) -> Path:
    path = Path(name) if os.path.isabs(name) else _font_dir() / name
    if not path.is_file():
        raise DataError(f"font {name!r}: expected a TrueType file in {_font_dir()} or an absolute path, "
                        f"{path} does not exist")
    return path


@functools.lru_cache(maxsize=512)
def font_family(entry: str, thin: bool = False) -> tuple[Path, ...]:
    """The font files of one `SyntheticConfig.fonts` entry (see DEFAULT_FONTS): those of weight >= MIN_WEIGHT
    and the variable ones; with `thin`, those that can be drawn lighter than MIN_WEIGHT (maybe none)."""
    if not entry.startswith("fontpkg:"):
        return () if thin else (_font_path(entry),)
    slug = entry.split(":", 1)[1]
    module = "fontpkg_" + slug.replace("-", "_")
    spec = importlib.util.find_spec(module) if slug and "." not in slug else None
    if spec is None or spec.origin is None:
        raise DataError(f"font {entry!r}: the font package fontpkg-{slug} is not installed "
                        f"(pip install -r requirements.txt)")
    root = Path(spec.origin).parent
    try:
        meta = json.loads((root / "metadata.json").read_text())
        if thin:  # static files lighter than MIN_WEIGHT, and variable ones whose weight axis reaches below it
            static = [root / f["path"] for f in meta["files"] if not f.get("variable") and (f.get("weight") or 400) < MIN_WEIGHT]
            variable = [root / f["path"] for f in meta["files"] if f.get("variable")]
            paths = tuple(static) + tuple(p for p in variable if p.is_file() and _axis_ranges(p, thin=True))
        else:
            files = [f for f in meta["files"] if f.get("variable") or (f.get("weight") or 400) >= MIN_WEIGHT]
            paths = tuple(root / f["path"] for f in files)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"font {entry!r}: {root / 'metadata.json'} is unreadable ({exc}); reinstall fontpkg-{slug}")
    if (not paths and not thin) or not all(p.is_file() for p in paths):
        raise DataError(f"font {entry!r}: fontpkg-{slug} lists font files that are missing; reinstall it")
    return paths


@functools.lru_cache(maxsize=512)
def _axis_ranges(path: Path, thin: bool = False) -> tuple[tuple[float, float, float], ...]:
    """(low, high, step) to draw each variation axis from; () for a font without axes. With `thin`, the
    weight axis runs from its minimum to below MIN_WEIGHT; () where the font cannot be drawn that light."""
    try:
        axes = ImageFont.truetype(str(path), 20).get_variation_axes()
    except OSError:  # not a variable font
        return ()
    ranges = []
    for axis in axes:
        name = axis["name"].decode() if isinstance(axis["name"], bytes) else str(axis["name"])
        lo, hi, default = float(axis["minimum"]), float(axis["maximum"]), float(axis["default"])
        if name.lower() == "weight" and thin:
            if lo >= MIN_WEIGHT:
                return ()
            ranges.append((lo, MIN_WEIGHT - 50.0, 50.0))
        elif name.lower() == "weight":
            ranges.append((max(lo, min(hi, MIN_WEIGHT)), hi, 50.0))
        elif name.lower() == "width":
            ranges.append((max(lo, min(hi, 75.0)), hi, 12.5))
        else:
            ranges.append((default, default, 1.0))
    return tuple(ranges)


def pick_face(rng: np.random.Generator, fonts: Sequence[str], thin: bool = False) -> Face:
    """A random family of `fonts`, a random file of it and, for a variable font, a random weight and width
    (on a coarse grid, so that rendered glyphs can be cached). With `thin`, a weight below MIN_WEIGHT from
    one of the families that have one (any weight if none of `fonts` has)."""
    if thin:
        light = [f for f in fonts if font_family(f, thin=True)]
        fonts, thin = (light, True) if light else (fonts, False)
    paths = font_family(fonts[int(rng.integers(len(fonts)))], thin)
    path = paths[int(rng.integers(len(paths)))]
    ranges = _axis_ranges(path, thin)
    if not ranges:
        return Face(path)
    return Face(path, tuple(float(lo + step * rng.integers(0, int((hi - lo) / step) + 1)) for lo, hi, step in ranges))


@functools.lru_cache(maxsize=2048)
def _font(face: Face, size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.truetype(str(face.path), size)
    if face.axes:
        font.set_variation_by_axes(list(face.axes))
    return font


@functools.lru_cache(maxsize=512)
def _digit_ink_height(face: Face) -> float:
    """Ink height of the face's tallest digit per pixel of font size (measured once at size 200)."""
    font = _font(face, 200)
    tops, bottoms = [], []
    for ch in "0123456789":
        box = font.getbbox(ch)
        tops.append(box[1])
        bottoms.append(box[3])
    return (max(bottoms) - min(tops)) / 200


def _glyph(ch: str, face: Face, size: int, stroke: int) -> tuple[np.ndarray, int, int]:
    """Tight ink mask (float32 0..1) of one character, and its left/top offsets from the pen origin."""
    font = _font(face, size)
    x0, y0, x1, y1 = font.getbbox(ch, stroke_width=stroke)
    pad = 2
    img = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), 0)
    ImageDraw.Draw(img).text((pad - x0, pad - y0), ch, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    bbox = img.getbbox()
    if bbox is None:  # a font without the glyph: a filled block keeps the label honest rather than blank
        return np.ones((max(1, size // 2), max(1, size // 3)), np.float32), 0, 0
    mask = np.asarray(img.crop(bbox), dtype=np.float32) / 255.0
    return mask, bbox[0] + x0 - pad, bbox[1] + y0 - pad


def _ncdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def _correlated_u(rng: np.random.Generator, n: int, rho: float) -> np.ndarray:
    """n uniforms sharing rank correlation ~rho (Gaussian copula): neighbours in a number look alike."""
    rho = float(np.clip(rho, 0.0, 0.99))
    z = math.sqrt(rho) * rng.standard_normal() + math.sqrt(1 - rho) * rng.standard_normal(n)
    u = _ncdf(z)
    return QUANTILE_LEVELS[0] + (QUANTILE_LEVELS[-1] - QUANTILE_LEVELS[0]) * u


def _luminance(c: np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _with_luminance(c: np.ndarray, y: float) -> np.ndarray:
    """Colour c moved towards black or white until its luminance is y (hue kept where possible)."""
    y0 = _luminance(c)
    if y0 > y:
        return c * (y / max(y0, 1e-6))
    return 1.0 - (1.0 - c) * ((1.0 - y) / max(1.0 - y0, 1e-6))


def _random_colour(rng: np.random.Generator, y: float) -> np.ndarray:
    """A colour of luminance y: mostly greys and muted tones, sometimes saturated (blue/green plates)."""
    sat = rng.choice([0.0, rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.9)], p=[0.25, 0.5, 0.25])
    hue = rng.uniform(0, 1)
    rgb = np.array([abs(hue * 6 - 3) - 1, 2 - abs(hue * 6 - 2), 2 - abs(hue * 6 - 4)]).clip(0, 1)
    c = (1 - sat) * 0.5 + sat * rgb
    return _with_luminance(c, y).clip(0, 1)


def _colour_pair(rng: np.random.Generator, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(background, foreground) colours whose luminances differ by c."""
    dark_on_light = rng.random() < 0.6
    lo, hi = 0.03, 0.97
    if dark_on_light:
        y_bg = rng.uniform(min(lo + c, hi), hi)
        y_fg = y_bg - c
    else:
        y_bg = rng.uniform(lo, max(hi - c, lo))
        y_fg = y_bg + c
    return _random_colour(rng, y_bg), _random_colour(rng, float(np.clip(y_fg, 0, 1)))


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 projective map taking the 4 points src to dst."""
    a, b = [], []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    h = np.linalg.solve(np.array(a, dtype=np.float64), np.array(b, dtype=np.float64))
    return np.append(h, 1.0).reshape(3, 3)


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:3]


def _warp(layer: np.ndarray, h: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp a float 0..1 mask by h (layer coordinates -> canvas) onto a canvas of size (w, h)."""
    inv = np.linalg.inv(h)
    inv = inv / inv[2, 2]
    img = Image.fromarray(np.round(layer * 255).astype(np.uint8), "L")
    out = img.transform(size, Image.PERSPECTIVE, tuple(inv.ravel()[:8]), Image.BILINEAR)
    return np.asarray(out, dtype=np.float32) / 255.0


def _low_freq_noise(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in -1..1 (a coarse random grid upsampled): stains, weathering, uneven paint."""
    w, h = size
    gw, gh = max(2, cells), max(2, round(cells * h / max(w, 1)) + 1)
    grid = Image.fromarray(((rng.random((gh, gw)) * 255)).astype(np.uint8), "L")
    return np.asarray(grid.resize((w, h), Image.BICUBIC), dtype=np.float32) / 127.5 - 1.0


def _texture(rng: np.random.Generator, size: tuple[int, int], scale: float) -> np.ndarray:
    """A background pattern in about -1..1: flat, gradient, clouds, siding/stripes, bricks or grain."""
    w, h = size
    kind = rng.choice(["flat", "gradient", "clouds", "stripes", "bricks", "grain"],
                      p=[0.15, 0.25, 0.25, 0.15, 0.1, 0.1])
    if kind == "flat":
        return np.zeros((h, w), np.float32)
    if kind in ("gradient", "stripes", "bricks"):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(a) + yy * np.sin(a))
        return (2 * (t - t.min()) / max(float(np.ptp(t)), 1.0) - 1).astype(np.float32)
    if kind == "clouds":
        return _low_freq_noise(rng, size, int(rng.integers(3, 12)))
    if kind == "stripes":
        period = scale * rng.uniform(0.3, 1.5)
        t = yy if rng.random() < 0.7 else xx
        phase = (t / period + rng.uniform(0, 1)) % 1.0
        return np.where(phase < rng.uniform(0.1, 0.5), 1.0, -0.3).astype(np.float32) + 0.3 * _low_freq_noise(rng, size, 6)
    if kind == "bricks":
        bh = scale * rng.uniform(0.3, 0.8)
        bw = bh * rng.uniform(2.0, 3.5)
        row = np.floor(yy / bh)
        xs = xx + (row % 2) * bw / 2
        mortar = ((yy % bh) < max(1.0, bh * 0.12)) | ((xs % bw) < max(1.0, bh * 0.12))
        tone = np.asarray(rng.uniform(-0.5, 0.5, size=1000), np.float32)
        cell = ((row * 37 + np.floor(xs / bw) * 11) % 1000).astype(np.int64)
        return np.where(mortar, 1.0, tone[cell]).astype(np.float32)
    return rng.standard_normal((h, w)).astype(np.float32) * 0.5 + 0.5 * _low_freq_noise(rng, size, 20)


def _ink_rect(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The smallest (rows, columns) slices holding every non-zero pixel of a 2-D mask; None if it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _composite(img: np.ndarray, mask: np.ndarray, colour: np.ndarray,
               rect: tuple[slice, slice] | None = None) -> None:
    """img = img * (1 - mask) + mask * colour, in place; colour one RGB or one per pixel (img's shape).
    Only the mask's bounding rectangle is touched: outside it the mask is 0, where the full formula leaves
    img exactly as it was (x * 1.0 + 0.0 == x), so the pixels are the same bit for bit, at a fraction of the
    work for a small mark on a large canvas. `rect`: the mask's `_ink_rect`, already known, with colour one
    per pixel of that rectangle only."""
    if rect is None:
        rect = _ink_rect(mask)
        if rect is None:
            return
        colour = colour[rect] if colour.ndim == 3 else colour
    m = mask[rect][..., None]
    sub = img[rect]
    sub *= 1 - m
    sub += m * colour


def _stencil(mask: np.ndarray) -> np.ndarray:
    """Stencil lettering: a gap down the glyph's middle, bridged only across its middle band."""
    h, w = mask.shape
    gap = max(1, int(round(0.07 * w)))
    out = mask.copy()
    x0 = (w - gap) // 2
    out[: int(0.42 * h), x0: x0 + gap] = 0
    out[int(0.58 * h):, x0: x0 + gap] = 0
    return out


def _bands(rng: np.random.Generator, size: tuple[int, int], scale: float) -> np.ndarray:
    """Smooth bright and dark bands in a random direction, -1..1 (metal sheen, glare): (h, w) float32."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, np.pi)
    t = (xx * np.cos(a) + yy * np.sin(a)) / max(scale, 1.0)
    return np.sin(t * rng.uniform(0.6, 1.6) + rng.uniform(0, 2 * np.pi)).astype(np.float32)


class _Renderer:
    """One image: layout in a working resolution (>= ~48 px box height), warp, composite, downsample."""

    def __init__(self, config: SyntheticConfig, rng: np.random.Generator) -> None:
        self.cfg = config
        self.rng = rng
        self.stats = _stats(config.stats_path)
        self.severity = float(rng.beta(*config.severity))

    def _level(self, lo: float, hi: float) -> float:
        """lo .. hi in proportion to this image's severity, with some independent spread per effect."""
        return lo + (hi - lo) * float(np.clip(self.severity * self.rng.uniform(0.5, 1.5), 0.0, 1.0))

    def _q(self, values: Sequence[float], u: float | np.ndarray) -> float | np.ndarray:
        return np.interp(u, QUANTILE_LEVELS, values)

    def _length_stats(self, n: int) -> dict:
        keys = sorted(int(k) for k in self.stats["per_length"])
        usable = [k for k in keys if k <= n and (n == 1 or "gap" in self.stats["per_length"][str(k)])] or keys
        return self.stats["per_length"][str(max(usable))]

    def render(self, digits: list[int]) -> tuple[Image.Image, np.ndarray]:
        st = self._length_stats(len(digits))
        lo_u, hi_u = QUANTILE_LEVELS[0], QUANTILE_LEVELS[-1]
        height = max(float(self.cfg.min_height), float(self._q(st["height"], self.rng.uniform(lo_u, hi_u))))
        for _ in range(20):
            out = self._render(digits, height, st)
            if out is not None:
                return out
            # A long, tall number drawn wide may not fit max_image_side: draw it smaller.
            height = max(float(self.cfg.min_height), height * 0.8)
        raise HousenumError(f"digits {digits}: a number of {len(digits)} digits does not fit max_image_side "
                         f"{self.cfg.max_image_side} even at min_height {self.cfg.min_height}")

    def _render(self, digits: list[int], height: float, st: dict) -> tuple[Image.Image, np.ndarray] | None:
        cfg, rng = self.cfg, self.rng
        n = len(digits)
        corr = self.stats.get("neighbour_rank_correlation", {})

        # --- geometry in final pixels, then a working scale so that small digits render cleanly
        s = int(np.clip(math.ceil(48 / height), 1, 4))
        u_aspect = _correlated_u(rng, n, corr.get("aspect", 0.6))
        aspects = np.array([self._q(self.stats["aspect_by_label"][str(d or 10)], u) for d, u in zip(digits, u_aspect)])
        theta = math.radians(float(np.clip(rng.normal(0, cfg.rotation_deg), -2.5 * cfg.rotation_deg, 2.5 * cfg.rotation_deg)))
        shear = float(np.clip(rng.normal(0, cfg.shear), -2.5 * cfg.shear, 2.5 * cfg.shear))
        # The drawn heights and widths are those of the final axis-aligned boxes, which rotation, shear and
        # perspective enlarge; lay the number out smaller by the expected growth so the boxes match SVHN's.
        cos, sin = math.cos(theta), abs(math.sin(theta))
        hb = height * s / (cos + float(aspects.mean()) * sin + 1.2 * cfg.perspective)  # box height, working px
        target_w = aspects * height * s
        growth = (sin + abs(shear) + 1.2 * cfg.perspective) * hb  # how much wider each box gets
        box_w = np.maximum((target_w - growth) / cos, 0.12 * hb)
        aspects = box_w / hb
        thin = cfg.thin_prob > 0 and rng.random() < cfg.thin_prob  # no draw at 0: the default data stay as they were
        face = pick_face(rng, cfg.fonts, thin)
        ink_h = hb * rng.uniform(*cfg.ink_fill)
        size = max(6, int(round(ink_h / _digit_ink_height(face))))
        stroke = int(round(rng.uniform(0.02, 0.045) * size)) if rng.random() < cfg.bold_prob and not thin else 0

        hand = pick_hand(rng) if cfg.hand_prob > 0 and rng.random() < cfg.hand_prob else None
        if hand is None:
            glyphs = [_glyph(str(d), face, size, stroke) for d in digits]
        else:  # written by hand: each digit its own strokes, on a baseline that may rise or fall
            glyphs = [(mask, 0, top + i * hand.rise * ink_h)
                      for i, (mask, top) in enumerate(hand_glyph(d, hand, int(round(ink_h)), rng) for d in digits)]
        natural = np.array([g[0].shape[1] for g in glyphs], dtype=np.float64)
        fill = rng.uniform(*cfg.ink_width)
        # One horizontal scale for the whole number (condensed or wide lettering) so that its digits'
        # boxes follow the real width/height distribution; '1' is excluded: its boxes are looser.
        ref = [i for i, d in enumerate(digits) if d != 1] or list(range(n))
        hscale = float(np.clip(np.median([aspects[i] * hb * fill / natural[i] for i in ref]), 0.55, 1.6))
        mounted = rng.random() < cfg.mounted_prob and hand is None
        stencil = rng.random() < cfg.stencil_prob and hand is None
        masks, tops = [], []
        for i, (mask, _, top) in enumerate(glyphs):
            # A glyph wider than its drawn box (a serif '1' in a narrow box) is squeezed to fit it.
            w = max(1, int(round(min(mask.shape[1] * hscale, box_w[i] * cfg.ink_width[1]))))
            if w != mask.shape[1]:
                mask = np.asarray(Image.fromarray(np.round(mask * 255).astype(np.uint8)).resize(
                    (w, mask.shape[0]), Image.BILINEAR), dtype=np.float32) / 255.0
            if stencil:
                mask = _stencil(mask)
            if mounted:
                mask, top = self._mount(mask, top)
            masks.append(mask)
            tops.append(top)
        box_w = np.maximum(aspects * hb, np.array([m.shape[1] for m in masks]) + 2 * 0.015 * hb)
        gaps = self._q(st["gap"], _correlated_u(rng, n - 1, corr.get("gap", 0.6))) * hb + 0.8 * growth if n > 1 else np.zeros(0)
        # Real boxes overlap mostly because they are loose; keep the ink itself to a slight overlap.
        slack = (box_w - np.array([m.shape[1] for m in masks])) / 2
        gaps = np.maximum(gaps, -(slack[:-1] + slack[1:]) - cfg.max_ink_overlap * hb)
        dys = self._q(st["dy"], _correlated_u(rng, n - 1, corr.get("dy", 0.2))) * hb if n > 1 else np.zeros(0)
        # Rotation tilts the boxes too; shrink the drawn jitter so the combined spread stays realistic.
        ys = np.concatenate([[0.0], np.cumsum(dys * 0.7)])
        if mounted:  # digits screwed on one by one sit a little off the line
            ys = ys + rng.normal(0, 0.05, size=n) * hb
        xs = np.concatenate([[0.0], np.cumsum(box_w[:-1] + gaps)])
        ink_top = min(tops)
        ink_bottom = max(t + m.shape[0] for t, m in zip(tops, masks))
        box_top0 = ink_top - (hb - (ink_bottom - ink_top)) / 2

        # --- the number's layer (local coordinates with room around it for plates and outlines)
        margin = int(math.ceil(0.8 * hb))
        x_min, y_min = float(xs.min()), float(ys.min())
        lw = int(math.ceil(xs[-1] + box_w[-1] - x_min)) + 2 * margin
        lh = int(math.ceil(hb + ys.max() - y_min)) + 2 * margin
        ox, oy = margin - x_min, margin - y_min - box_top0
        text = np.zeros((lh, lw), np.float32)
        boxes_local = []
        for i, mask in enumerate(masks):
            bx, by = xs[i] + ox, ys[i] + oy + box_top0
            ix = int(round(bx + (box_w[i] - mask.shape[1]) / 2))
            iy = int(round(ys[i] + oy + tops[i]))
            sub = text[iy: iy + mask.shape[0], ix: ix + mask.shape[1]]
            np.maximum(sub, mask[: sub.shape[0], : sub.shape[1]], out=sub)
            boxes_local.append((bx, by, bx + box_w[i], by + hb))
        boxes_local = np.array(boxes_local)
        ux0, uy0 = boxes_local[:, 0].min(), boxes_local[:, 1].min()
        ux1, uy1 = boxes_local[:, 2].max(), boxes_local[:, 3].max()

        # --- rotation, shear and perspective as one homography around the number's centre
        cx, cy = (ux0 + ux1) / 2, (uy0 + uy1) / 2
        src = np.array([[ux0, uy0], [ux1, uy0], [ux1, uy1], [ux0, uy1]])
        rel = src - [cx, cy]
        rel = rel + np.c_[-shear * rel[:, 1], np.zeros(4)]
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        dst = rel @ rot.T + [cx, cy] + rng.normal(0, cfg.perspective * hb, size=(4, 2))
        hom = _homography(src, dst)
        corners = np.stack([boxes_local[:, [0, 1]], boxes_local[:, [2, 1]], boxes_local[:, [2, 3]],
                            boxes_local[:, [0, 3]]], axis=1)  # (n, 4, 2)
        warped = _apply(hom, corners.reshape(-1, 2)).reshape(n, 4, 2)
        bx0, by0 = warped[..., 0].min(axis=1), warped[..., 1].min(axis=1)
        bx1, by1 = warped[..., 0].max(axis=1), warped[..., 1].max(axis=1)

        # --- image frame: margins around the union box, in final pixels, then back to working pixels
        U = np.array([bx0.min(), by0.min(), bx1.max(), by1.max()]) / s
        if max(U[2] - U[0], U[3] - U[1]) > 0.9 * cfg.max_image_side:
            return None
        spread = rng.lognormal(0, 0.35, size=2)  # left and right margins vary together, not identically
        mx = np.clip(cfg.margin_x[0] * rng.lognormal(0, cfg.margin_x[1]) * spread, 0, 5) * height
        spread = rng.lognormal(0, 0.35, size=2)
        my = np.clip(cfg.margin_y[0] * rng.lognormal(0, cfg.margin_y[1]) * spread, 0, 0.8) * height
        mx = np.maximum(mx, 0.05 * height)
        my = np.maximum(my, 0.05 * height)
        if rng.random() < cfg.edge_touch_prob:
            side = int(rng.integers(4))
            (mx if side < 2 else my)[side % 2] = 0.0
        uw, uh = U[2] - U[0], U[3] - U[1]
        room = cfg.max_image_side - 2
        if uw + mx.sum() > room and mx.sum() > 0:
            mx *= max(0.0, room - uw) / mx.sum()
        if uh + my.sum() > room and my.sum() > 0:
            my *= max(0.0, room - uh) / my.sum()
        x0 = math.floor(U[0] - mx[0])
        y0 = math.floor(U[1] - my[0])
        W = max(int(math.ceil(U[2] + mx[1])) - x0, 2)
        H = max(int(math.ceil(U[3] + my[1])) - y0, 2)
        shift = np.array([[1, 0, -x0 * s], [0, 1, -y0 * s], [0, 0, 1]], dtype=np.float64)
        hom = shift @ hom
        cw, ch = W * s, H * s
        zone = (np.array([bx0.min(), by0.min(), bx1.max(), by1.max()]) - [x0 * s, y0 * s, x0 * s, y0 * s])

        # --- colours: the digits against their immediate background (a plate or the wall)
        near_bg, fg = _colour_pair(rng, self._level(cfg.contrast[1], cfg.contrast[0]))
        contrast = abs(_luminance(near_bg) - _luminance(fg))
        tiles = rng.random() < cfg.tile_prob
        plate = tiles or rng.random() < cfg.plate_prob
        if plate:
            wall = _random_colour(rng, float(rng.uniform(0.05, 0.95)))
        else:
            wall = near_bg
        canvas = np.empty((ch, cw, 3), np.float32)
        canvas[:] = wall
        tex = _texture(rng, (cw, ch), hb)
        amp = rng.uniform(0, cfg.texture_strength) * max(contrast, 0.15)
        canvas += (amp * tex)[..., None] * rng.uniform(0.7, 1.0, size=3).astype(np.float32)

        if rng.random() < cfg.clutter_prob:
            self._clutter(canvas, zone, hb, face, wall, contrast)

        if plate:
            if tiles:  # one tile per digit, a narrow joint between neighbours
                pad = rng.uniform(0.04, 0.2, size=4) * hb
                rects = [(bx0_ - pad[0], by0_ - pad[1], bx1_ + pad[2], by1_ + pad[3])
                         for bx0_, by0_, bx1_, by1_ in boxes_local]
            else:
                pad = rng.uniform(0.08, 0.6, size=4) * hb
                rects = [(ux0 - pad[0], uy0 - pad[1], ux1 + pad[2], uy1 + pad[3])]
            rects = [(max(0, int(a)), max(0, int(b)), min(lw, int(c)), min(lh, int(d))) for a, b, c, d in rects]
            radius = int(rng.uniform(0, 0.3) * hb)
            img = Image.new("L", (lw, lh), 0)
            for r in rects:
                ImageDraw.Draw(img).rounded_rectangle(r, radius=radius, fill=255)
            pl = np.asarray(img, dtype=np.float32) / 255.0
            if rng.random() < 0.4:  # a border line around the plate, in the digits' colour or darker
                img2 = Image.new("L", (lw, lh), 0)
                inset = int(rng.uniform(0.03, 0.15) * hb)
                width = max(1, int(rng.uniform(0.02, 0.06) * hb))
                for px0, py0, px1, py1 in rects:
                    if px1 - px0 > 2 * inset + 2 and py1 - py0 > 2 * inset + 2:
                        ImageDraw.Draw(img2).rounded_rectangle([px0 + inset, py0 + inset, px1 - inset, py1 - inset],
                                                               radius=radius, outline=255, width=width)
                border = np.asarray(img2, dtype=np.float32) / 255.0
            else:
                border = None
            plate_layer = _warp(pl, hom, (cw, ch))
            rect = _ink_rect(plate_layer) or (slice(0, 0), slice(0, 0))  # the colour is needed there only
            plate_col = near_bg + (amp * 0.3 * _low_freq_noise(rng, (cw, ch), 4)[rect])[..., None]
            _composite(canvas, plate_layer, plate_col, rect)
            if border is not None:
                _composite(canvas, _warp(border, hom, (cw, ch)), fg)

        if rng.random() < cfg.outline_prob:
            third = _random_colour(rng, float(np.clip(_luminance(near_bg) + rng.choice([-1, 1]) * rng.uniform(0.1, 0.4), 0, 1)))
            k = int(max(1, round(rng.uniform(0.03, 0.08) * hb)))
            if rng.random() < 0.5:
                shadow = np.roll(text, (k, k * int(rng.choice([-1, 1]))), axis=(0, 1))
            else:
                shadow = np.asarray(Image.fromarray(np.round(text * 255).astype(np.uint8)).filter(
                    ImageFilter.MaxFilter(2 * k + 1)), dtype=np.float32) / 255.0
            _composite(canvas, _warp(shadow, hom, (cw, ch)), third)
        if rng.random() < cfg.emboss_prob:  # raised digits: a lit edge up one side, a shadow down the other
            k = int(max(1, round(rng.uniform(0.02, 0.06) * hb)))
            dx = int(rng.choice([-1, 1]))
            lift = rng.uniform(0.1, 0.35)
            for sign, colour in ((1, np.clip(fg * (1 - lift), 0, 1)), (-1, np.clip(fg + lift * (1 - fg), 0, 1))):
                edge = np.roll(text, (sign * k, sign * dx * k), axis=(0, 1))
                _composite(canvas, _warp(edge, hom, (cw, ch)), colour)
        fg_layer = _warp(text, hom, (cw, ch))
        rect = _ink_rect(fg_layer) or (slice(0, 0), slice(0, 0))
        fg_col = fg + (amp * 0.2 * _low_freq_noise(rng, (cw, ch), 5)[rect])[..., None]
        if rng.random() < cfg.metal_prob:  # polished metal: bright and dark bands across the digits
            shade = _bands(rng, (cw, ch), hb)[rect]
            fg_col = np.clip(fg_col * (1 + rng.uniform(0.25, 0.6) * shade[..., None]), 0, 1)
        _composite(canvas, fg_layer, fg_col, rect)

        if rng.random() < cfg.light_prob:
            canvas *= self._lighting((cw, ch), hb)[..., None]
        if rng.random() < cfg.glare_prob:  # a reflection on glass or gloss paint washes part of the image out
            glare = np.clip(_bands(rng, (cw, ch), 2 * hb), 0, 1)[..., None] * rng.uniform(0.25, 0.7)
            canvas = canvas * (1 - glare) + glare

        img = Image.fromarray(np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8), "RGB")
        if s > 1:
            img = img.resize((W, H), Image.BOX)
        img = self._degrade(img, height)

        # --- boxes in final pixels: integers, clipped to the image (touching allowed)
        left = np.floor(bx0 / s - x0)
        top = np.floor(by0 / s - y0)
        right = np.ceil(bx1 / s - x0)
        bottom = np.ceil(by1 / s - y0)
        left, top = np.clip(left, 0, W - 1), np.clip(top, 0, H - 1)
        right, bottom = np.clip(right, left + 1, W), np.clip(bottom, top + 1, H)
        labels = np.array([d or 10 for d in digits], dtype=np.float64)
        boxes = np.stack([labels, left, top, right - left, bottom - top], axis=1).astype(np.float64)
        return img, boxes

    def _mount(self, mask: np.ndarray, top: int) -> tuple[np.ndarray, float]:
        """One digit mounted on its own: its own size and tilt, kept centred where it was."""
        rng, cfg = self.rng, self.cfg
        scale = float(np.exp(np.clip(rng.normal(0, 0.06), -0.12, 0.12)))
        angle = float(np.clip(rng.normal(0, cfg.mounted_tilt_deg), -2 * cfg.mounted_tilt_deg, 2 * cfg.mounted_tilt_deg))
        img = Image.fromarray(np.round(mask * 255).astype(np.uint8))
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
        img = img.rotate(angle, resample=Image.BILINEAR, expand=True)
        img = img.crop(img.getbbox() or (0, 0, img.width, img.height))
        out = np.asarray(img, dtype=np.float32) / 255.0
        return out, top + (mask.shape[0] - out.shape[0]) / 2

    def _clutter(self, canvas: np.ndarray, zone: np.ndarray, hb: float, number_face: Face, wall: np.ndarray,
                 contrast: float) -> None:
        """Things beside the number, never over it: other digits or letters, lines, frames, blobs."""
        rng, cfg = self.rng, self.cfg
        ch, cw = canvas.shape[:2]
        guard = 0.12 * hb
        z0, z1 = zone[:2] - guard, zone[2:] + guard
        for _ in range(int(rng.integers(1, cfg.max_clutter + 1))):
            y_wall = _luminance(wall)
            # Clutter about as visible as the number, seldom much more: the number stays the subject.
            delta = min(0.8, contrast * rng.uniform(0.3, 1.5))
            y = float(np.clip(y_wall + rng.choice([-1, 1]) * delta, 0, 1))
            colour = _random_colour(rng, y)
            mask = Image.new("L", (cw, ch), 0)
            draw = ImageDraw.Draw(mask)
            kind = rng.choice(["glyph", "line", "frame", "blob"], p=[0.45, 0.3, 0.1, 0.15])
            if kind == "glyph":
                chars = "0123456789" * 3 + "ABCDEFHKMNRSTW#-/"
                text = "".join(rng.choice(list(chars), size=int(rng.integers(1, 4))))
                face = number_face if rng.random() < 0.5 else pick_face(rng, cfg.fonts)
                font = _font(face, max(6, int(hb * rng.uniform(0.4, 1.2) / _digit_ink_height(face))))
                bb = font.getbbox(text)
                gw, gh = bb[2] - bb[0], bb[3] - bb[1]
                if rng.random() < 0.5:  # left of the number, often cut by the image edge
                    x = z0[0] - gw - rng.uniform(0, 1.5) * hb
                else:
                    x = z1[0] + rng.uniform(0, 1.5) * hb
                yv = rng.uniform(z0[1] - gh, z1[1])
                draw.text((x - bb[0], yv - bb[1]), text, font=font, fill=255)
            elif kind == "line":
                width = max(1, int(rng.uniform(0.02, 0.2) * hb))
                tilt = rng.normal(0, 0.05)
                if rng.random() < 0.6:  # horizontal-ish, above or below the number
                    above = rng.random() < 0.5
                    if above and z0[1] - width <= 0 or not above and z1[1] + width >= ch:
                        above = not above
                    base = rng.uniform(0, max(z0[1] - width, 0)) if above else rng.uniform(min(z1[1] + width, ch), ch)
                    ya, yb = base - tilt * cw / 2, base + tilt * cw / 2
                    if above:
                        ya, yb = min(ya, z0[1] - width), min(yb, z0[1] - width)
                    else:
                        ya, yb = max(ya, z1[1] + width), max(yb, z1[1] + width)
                    draw.line([(0, ya), (cw, yb)], fill=255, width=width)
                else:  # vertical-ish, left or right of it (door frames, plate edges)
                    left = rng.random() < 0.5
                    base = rng.uniform(0, max(z0[0] - width, 0)) if left else rng.uniform(min(z1[0] + width, cw), cw)
                    xa, xb = base - tilt * ch / 2, base + tilt * ch / 2
                    if left:
                        xa, xb = min(xa, z0[0] - width), min(xb, z0[0] - width)
                    else:
                        xa, xb = max(xa, z1[0] + width), max(xb, z1[0] + width)
                    draw.line([(xa, 0), (xb, ch)], fill=255, width=width)
            elif kind == "frame":
                pad = rng.uniform(0.15, 1.2, size=4) * hb
                draw.rectangle([z0[0] - pad[0], z0[1] - pad[1], z1[0] + pad[2], z1[1] + pad[3]], outline=255,
                               width=max(1, int(rng.uniform(0.02, 0.1) * hb)))
            else:
                r = rng.uniform(0.05, 0.6) * hb
                xc = rng.uniform(0, cw)
                yc = rng.uniform(0, ch)
                # keep the blob off the number: push it out of the guarded zone horizontally
                if z0[0] - r < xc < z1[0] + r and z0[1] - r < yc < z1[1] + r:
                    xc = z0[0] - r - 1 if xc < (z0[0] + z1[0]) / 2 else z1[0] + r + 1
                draw.ellipse([xc - r, yc - r * rng.uniform(0.4, 1.0), xc + r, yc + r * rng.uniform(0.4, 1.0)], fill=255)
            bbox = mask.getbbox()  # the mark, often cut by the image's edge or outside it altogether
            if bbox is None:
                continue
            mx0, my0, mx1, my1 = bbox
            m = np.asarray(mask.crop(bbox), dtype=np.float32) / 255.0
            # Belt and braces: whatever the shape, the number's own area stays clear.
            ya, yb = max(0, int(z0[1])), min(ch, int(math.ceil(z1[1])))
            xa, xb = max(0, int(z0[0])), min(cw, int(math.ceil(z1[0])))
            m[max(ya - my0, 0): max(yb - my0, 0), max(xa - mx0, 0): max(xb - mx0, 0)] = 0
            _composite(canvas[my0:my1, mx0:mx1], m, colour)

    def _lighting(self, size: tuple[int, int], hb: float) -> np.ndarray:
        rng = self.rng
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(a) + yy * np.sin(a)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
        dark = rng.uniform(0.45, 0.85)
        if rng.random() < 0.5:  # soft gradient
            return (1 - (1 - dark) * t).astype(np.float32)
        edge = rng.uniform(0.2, 0.8)  # a cast shadow's edge across the image
        soft = rng.uniform(0.01, 0.08)
        return (1 - (1 - dark) / (1 + np.exp(-(t - edge) / soft))).astype(np.float32)

    def _degrade(self, img: Image.Image, height: float) -> Image.Image:
        rng, cfg = self.rng, self.cfg
        w, h = img.size
        if rng.random() < cfg.lowres_prob:
            f = self._level(0.85, 0.5)
            small = img.resize((max(2, round(w * f)), max(2, round(h * f))), Image.BILINEAR)
            img = small.resize((w, h), Image.BILINEAR)
        sigma = self._level(*cfg.blur) * height
        if rng.random() < cfg.defocus_prob:
            sigma = max(sigma, rng.uniform(*cfg.defocus_blur) * height)
        if sigma > 0.3:
            img = img.filter(ImageFilter.GaussianBlur(sigma))
        noise = self._level(*cfg.noise)
        if noise > 0.002:
            a = np.asarray(img, dtype=np.float32)
            grain = rng.standard_normal((h, w, 1)) * 0.8 + rng.standard_normal((h, w, 3)) * 0.35
            a = a + grain.astype(np.float32) * (noise * 255)
            img = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "RGB")
        if rng.random() < cfg.jpeg_prob:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=int(round(self._level(cfg.jpeg_quality[1], cfg.jpeg_quality[0]))))
            buf.seek(0)
            img = Image.open(buf).convert("RGB")
        return img


def _render_letter(letter: str, rng: np.random.Generator, fonts: Sequence[str]) -> Image.Image:
    """A 28x28 grayscale notMNIST-style letter: white on black, glyph stretched to (nearly) fill the box."""
    face = pick_face(rng, fonts)
    stroke = int(rng.integers(0, 4)) if rng.random() < 0.3 else 0
    mask, _, _ = _glyph(letter, face, 96, stroke)
    img = Image.fromarray(np.round(mask * 255).astype(np.uint8), "L")
    if rng.random() < 0.3:
        img = img.rotate(float(rng.normal(0, 6)), resample=Image.BILINEAR, expand=True)
        img = img.crop(img.getbbox() or (0, 0, img.width, img.height))
    if rng.random() < 0.6:  # most notMNIST glyphs are stretched to the full square
        size = (28, 28)
    else:
        k = 28 / max(img.size)
        size = (max(1, round(img.width * k)), max(1, round(img.height * k)))
    glyph = img.resize(size, Image.LANCZOS)
    out = Image.new("L", (28, 28), 0)
    out.paste(glyph, ((28 - size[0]) // 2, (28 - size[1]) // 2))
    if rng.random() < 0.1:  # a few are inverted or boxed, as in the real set
        out = Image.fromarray(255 - np.asarray(out), "L")
    return out


# ------------------------------------------------------------------------------------ writing, in parallel


def _render_one(job: tuple[Path, str, int, int, SyntheticConfig]) -> np.ndarray:
    folder, split, seed, index, config = job
    rng = image_rng(seed, split, index)
    img, boxes = render_number(sample_digits(rng, config), rng, config)
    img.save(folder / f"{index}.png", format="PNG", compress_level=config.png_compress_level)
    return boxes


def _block_size(n: int) -> int:
    """Images per unit of work, and of resuming: a function of n alone, so that a run started again finds the
    blocks an interrupted one finished, whatever its number of workers."""
    return int(np.clip(n // 16, 1, 250))


def _render_block(job: tuple[Path, str, int, int, int, SyntheticConfig]) -> list[np.ndarray]:
    folder, split, seed, start, stop, config = job
    return [_render_one((folder, split, seed, i, config)) for i in range(start, stop)]


def _save_block(done: Path, start: int, boxes: list[np.ndarray]) -> None:
    with atomic_path(done / f"{start}.npz", suffix=".npz") as tmp:
        np.savez(tmp, lengths=np.array([len(b) for b in boxes], np.int64), boxes=np.concatenate(boxes))


def _load_block(done: Path, folder: Path, start: int, stop: int) -> list[np.ndarray] | None:
    """The boxes of images start..stop-1 if a run before finished that block (its record and every PNG are
    there); None otherwise, and the block is drawn again."""
    path = done / f"{start}.npz"
    if not path.is_file() or not all((folder / f"{i}.png").is_file() for i in range(start, stop)):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            lengths, boxes = f["lengths"], f["boxes"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # a record cut short: draw the block again
    if (len(lengths) != stop - start or boxes.ndim != 2 or boxes.shape[1] != len(FIELDS)
            or int(lengths.sum()) != len(boxes) or lengths.min() < 1):
        return None
    return np.split(boxes, np.cumsum(lengths)[:-1])


def _die_with_parent() -> None:
    """Pool initializer: on Linux a worker is sent SIGTERM when the process that forked it ends (the
    forkserver, which ends with the caller), so that a killed run leaves no orphan workers drawing the
    blocks already queued for them into the work folder."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _worker_context():
    """Where the drawing workers come from: forked from a small server process that has imported this module
    and nothing else (multiprocessing's forkserver), not from the caller. A worker forked from the caller
    inherits its heap: after one split's 200,000 numbers and their labels, malloc took half of such a
    worker's time (perf, 2026-12-08) and the next split drew at half the speed; and a caller running
    TensorFlow holds threads that a forked child inherits broken. Without `__main__` among the server's
    modules, a caller's script needs no `if __name__ == "__main__"` guard either. Where there is no
    forkserver (Windows), spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def _render_split(folder: Path, split: str, n: int, seed: int, config: SyntheticConfig, workers: int,
                  progress: bool, done: Path | None = None,
                  on_block: Callable[[int, list[np.ndarray]], None] | None = None) -> list[np.ndarray]:
    """Draw images 1..n of `split` into `folder`; return their boxes in order. `done`: a folder where each
    finished block of images records its boxes, so that a run stopped part-way (a killed or rebooted
    machine) and started again draws only the blocks still missing. An image is a pure function of (seed,
    split, index, config), so the images are the same either way. `on_block(start, boxes)` is called for
    each block in order as soon as it is there, while the workers draw the next ones."""
    from tqdm import tqdm

    _check_count("workers", workers, minimum=1)
    block = _block_size(n)
    starts = range(1, n + 1, block)
    found: dict[int, list[np.ndarray]] = {}
    if done is not None:
        done.mkdir(parents=True, exist_ok=True)
        for start in starts:
            boxes = _load_block(done, folder, start, min(start + block, n + 1))
            if boxes is not None:
                found[start] = boxes
    todo = [(folder, split, seed, s, min(s + block, n + 1), config) for s in starts if s not in found]
    drawn = sum(len(b) for b in found.values())
    if drawn and progress:
        print(f"synthetic {split}: resuming: {drawn:,} of {n:,} images were drawn by a run before", file=sys.stderr)
    bar = tqdm(total=n, initial=drawn, desc=f"synthetic {split}", unit="img", disable=not progress, file=sys.stderr)
    try:
        if workers == 1 or n < 8 or len(todo) < 2:
            results = map(_render_block, todo)
            pool = None
        else:
            pool = _worker_context().Pool(min(workers, len(todo)), initializer=_die_with_parent)
            results = pool.imap(_render_block, todo)
        try:
            results = iter(results)  # in the order of todo, which is that of starts
            for start in starts:
                if start not in found:
                    found[start] = next(results)
                    if done is not None:
                        _save_block(done, start, found[start])
                    bar.update(len(found[start]))
                if on_block is not None:
                    on_block(start, found[start])
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    finally:
        bar.close()
    return [b for s in starts for b in found[s]]


def _write_tar_gz(path: Path, what: str, members: list[tuple[str, Path | None]], compresslevel: int = 6) -> Path:
    """A gzip'd tar of `members` ((archive name, file or None for a folder)), byte-reproducible.
    `compresslevel` 0 stores the members in gzip's uncompressed blocks: for PNGs, which deflate cannot shrink
    (40 MB of the generator's PNGs: 0.999 of their size at level 6, written at 16 MB/s; stored: 345 MB/s, the
    same size), so the 3.4 GB of `--synthetic 200000` archives are written in seconds, not minutes."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as raw:
            # filename="" keeps the temporary name out of the gzip header; mtime=0 keeps the clock out.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel) as gz:
                with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
                    for name, src in members:
                        info = tarfile.TarInfo(name)
                        info.mtime = FIXED_MTIME
                        info.uid = info.gid = 0
                        info.uname = info.gname = "root"
                        if src is None:
                            info.type = tarfile.DIRTYPE
                            info.mode = 0o755
                            tar.addfile(info)
                        else:
                            info.mode = 0o644
                            info.size = src.stat().st_size
                            with open(src, "rb") as fh:
                                tar.addfile(info, fh)
    return path


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an old one is set aside first and removed after."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ checks


def _checked_digits(digits: Sequence[int]) -> list[int]:
    try:
        values = [int(d) for d in digits]
    except (TypeError, ValueError):
        raise DataError(f"digits: expected a sequence of integers 0..9, got {digits!r}") from None
    if not 1 <= len(values) <= LONGEST or any(not 0 <= d <= 9 or d != dd for d, dd in zip(values, digits)):
        raise DataError(f"digits: expected 1..{LONGEST} integers 0..9, got {list(digits)!r}")
    return values


def _check_count(what: str, n: Any, minimum: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise DataError(f"{what}: expected an integer >= {minimum}, got {n!r}")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed: expected a non-negative integer, got {seed!r}")


# ---------------------------------------------------------------------------------------------------- CLI


def _digitstruct_sources(args: Sequence[str], tmp: Path) -> list[Path]:
    """digitStruct.mat files from folders (train/ and test/, unpacked or as .tar.gz) or explicit files."""
    found: list[Path] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            got = []
            for split in ("train", "test"):
                if (p / split / "digitStruct.mat").is_file():
                    got.append(p / split / "digitStruct.mat")
                elif (p / f"{split}.tar.gz").is_file():
                    got.append(_extract_mat(p / f"{split}.tar.gz", tmp))
            if not got:
                raise DataError(f"--fit-stats {p}: expected train/ and test/ digitStruct.mat or train.tar.gz / "
                                "test.tar.gz in it, found neither")
            found += got
        elif p.is_file() and p.name.endswith(".tar.gz"):
            found.append(_extract_mat(p, tmp))
        elif p.is_file():
            found.append(p)
        else:
            raise DataError(f"--fit-stats {p}: no such file or folder")
    return found


def _extract_mat(archive: Path, tmp: Path) -> Path:
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile() and Path(member.name).name == "digitStruct.mat":
                split = Path(member.name).parent.name or archive.name.split(".")[0]
                dest = tmp / split / "digitStruct.mat"
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                with open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                return dest
    raise DataError(f"--fit-stats {archive}: expected a digitStruct.mat member in the archive, found none")


def main(argv: Sequence[str] | None = None) -> int:
    from housenum.cli import make_parser

    parser = make_parser(__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--fit-stats", nargs="+", metavar="PATH",
                        help="refit the label statistics from these folders or digitStruct.mat / .tar.gz files")
    action.add_argument("--contact-sheet", metavar="PNG", help="write a grid of samples with their boxes to PNG")
    parser.add_argument("--out", default=str(STATS_PATH), help="where --fit-stats writes the JSON")
    parser.add_argument("--count", type=int, default=40, help="samples on the contact sheet")
    parser.add_argument("--seed", type=int, default=0, help="seed of the contact sheet's samples")
    args = parser.parse_args(argv)
    if args.fit_stats:
        with tempfile.TemporaryDirectory(prefix="housenum-fit-") as tmp:
            stats = fit_label_stats(_digitstruct_sources(args.fit_stats, Path(tmp)))
        out = Path(args.out)
        write_text(out, _dump_stats(stats))
        print(f"wrote {out} ({out.stat().st_size} bytes): {stats['source']}")
        print("length counts:", stats["length_counts"])
        return 0
    if args.count < 1:
        raise DataError(f"--count: expected a positive number of samples, got {args.count}")
    out = Path(args.contact_sheet)
    sheet = contact_sheet(args.count, args.seed)
    with atomic_path(out, suffix=".png") as part:
        sheet.save(part)
    print(f"wrote {out} ({args.count} samples, seed {args.seed})")
    return 0


if __name__ == "__main__":
    from housenum.cli import run

    run(main)

"""Step 5: read house numbers from a user's own photos, whole: find the number, read it, or say there is none.

For each photo, of any size (a phone JPEG is decoded at a fraction of its size, Pillow's draft mode):
1. the finder (`housenum.finder`) looks at the whole photo and gives the chance that it shows a house
   number and the union box of its digits;
2. no number found: the answer is "no number found". Otherwise the box, grown by the training crops'
   margin, is cut out and prepared by `housenum.photo.image_to_input`, the function training used for
   its crops, and read through `housenum.inference`, the code that scored the model during training;
   the whole photo is read too (a photo already framed like a training crop), and the more confident
   reading is kept;
3. a reading less confident than the model's abstain threshold (chosen on validation data for 98 %
   accuracy, in model.json) is answered "no number found" too: never a guess.

Only models of the number-reading task are taken: a letters model (the notMNIST baseline) has no length
and digit heads. Without a finder, the whole photo is read as a crop (frame the number as training crops).
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from housenum.config import RunConfig
from housenum.errors import HousenumError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".heic", ".heif"}
NUMBER_TASK = "sequence"  # ModelConfig.task of a number reader (length + digit heads)
SHOW_MAX_SIDE = 1600  # --show draws on a copy no larger than this: a 12-megapixel PNG would be ~36 MB
READ_SIDE = 480  # photos are decoded to about this long side: a number a tenth as wide is ~48 px for a 32 px crop
# (shift of the found box as a share of its width, margin grown around it) of each crop read from a photo
READ_FRAMINGS = ((0.0, 0.15), (0.0, 0.3), (0.0, 0.5), (-0.1, 0.3), (0.1, 0.3))
SHIPPED = Path(__file__).resolve().parents[1] / "models"  # the reader and finder that ship with the project


NO_NUMBER = "no number found"


@dataclass
class Reading:
    path: str
    text: str | None = None  # the number read; None: no number found (or an error)
    confidence: float = 0.0  # probability the model gives to the whole reading
    box: tuple[int, int, int, int] | None = None  # where the read crop came from, in the photo's upright pixels
    found: float | None = None  # the finder's chance that the photo shows a number (None: no finder)
    guess: str | None = None  # the most confident reading before the abstain rule (None: nothing was read)
    error: str | None = None  # why this file could not be read

    def answer(self) -> str:
        return self.text if self.text else NO_NUMBER

    def answer_box(self) -> tuple[int, int, int, int] | None:
        """The box shown to a user: where the number read is; none when the answer is "no number found"
        (`box` keeps where the abstained reading came from, for scoring the finder)."""
        return self.box if self.text else None


def model_meta(path: Path) -> dict:
    """model.json beside a model.keras, checked to be a number reader's; one-line errors otherwise."""
    meta_path = path.with_name("model.json")
    if not meta_path.is_file():
        raise HousenumError(f"{meta_path} is missing: the model's settings travel beside model.keras")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = RunConfig.from_dict(meta["config"])
    except (ValueError, KeyError, TypeError, HousenumError) as exc:
        raise HousenumError(f"{meta_path} is not a model description this code can read ({exc})") from None
    if cfg.model.task != NUMBER_TASK:
        raise HousenumError(f"{path} is a model of another task ({cfg.model.task!r}: "
                            f"{'notMNIST letters' if cfg.model.task == 'single' else 'unknown'}), not a "
                            f"house-number reader; pass a model trained by train_and_test_svhn_data.py")
    meta["run_config"] = cfg
    return meta


def find_model(results_dir: Path | str = "results", trained: list[tuple[Path, dict]] | None = None) -> Path:
    """The reader `predict_real_images.py` uses without --model: the newest trained on real SVHN under
    results_dir (any depth), else the reader shipped with the project, else the newest trained on synthetic
    data under results_dir. Readers trained on synthetic data there are passed over for the shipped one:
    offline, `run_all.py` trains a short demonstration reader (2,000 steps on 3,000 numbers) that would read a
    user's photos far worse than the shipped one; `--model` picks any. `trained`: `trained_readers(results_dir)`
    where the caller has it already."""
    trained = trained_readers(results_dir) if trained is None else trained
    shipped = SHIPPED / "reader" / "model.keras"
    chosen = _preferred(trained, trained_on_real_svhn, shipped if shipped.is_file() else None)
    if chosen is not None:
        return chosen
    raise HousenumError(
        f"no trained house-number model in {results_dir}/: train one with `python train_and_test_svhn_data.py` "
        f"(or pass --model PATH)"
    )


def _preferred(trained: list[tuple[Path, dict]], on_real_svhn, shipped: Path | None) -> Path | None:
    """The rule readers and finders are chosen by: the newest of `trained` (newest first) whose json says it
    was trained on real SVHN, else the `shipped` one (None: none ships), else the newest of `trained`."""
    real = [path for path, meta in trained if on_real_svhn(meta)]
    if real:
        return real[0]
    if shipped is not None:
        return shipped
    return trained[0][0] if trained else None


def trained_readers(results_dir: Path | str = "results") -> list[tuple[Path, dict]]:
    """Number readers under results_dir (any depth), newest first, with their model.json. Passed over:
    letters models, and the layer sweep's runs (short experiments of 1 to 7 layers)."""
    from housenum.sweep import RUNS_FOLDER

    results_dir = Path(results_dir)
    out = []
    for path in _newest_first(results_dir, "model.keras"):
        if RUNS_FOLDER in path.relative_to(results_dir).parts[:-2]:
            continue
        try:
            out.append((path, model_meta(path)))
        except HousenumError:
            continue
    return out


def _newest_first(results_dir: Path | str, name: str) -> list[Path]:
    """Files called `name` under results_dir (any depth), the most recently written first."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return []
    return sorted(results_dir.glob(f"**/{name}"), key=lambda p: p.stat().st_mtime)[::-1]


def trained_on_real_svhn(meta: dict) -> bool:
    """Whether a reader's model.json says it was trained on real SVHN (its data's description says so)."""
    from housenum.preprocess import REAL_SVHN

    return str((meta.get("metrics") or {}).get("data") or "").startswith(REAL_SVHN)


class Reader:
    """A loaded number-reading model plus the settings it was trained with, ready to read batches."""

    def __init__(self, model_path: Path | str):
        path = Path(model_path)
        if path.is_dir():
            path = path / "model.keras"
        if not path.is_file():
            finder = "; it holds a finder: pass that as --finder" if (path.parent / "finder.json").is_file() else ""
            raise HousenumError(f"no model at {path}: pass a run folder or a model.keras file{finder}")
        self.meta = model_meta(path)  # before the slow load: a wrong kind of model fails at once
        self.config: RunConfig = self.meta.pop("run_config")
        import housenum.model  # noqa: F401  (quiet TensorFlow import; registers the custom layer)
        import keras

        if not zipfile.is_zipfile(path):  # Keras would say "File not found" of a file that is there
            raise HousenumError(f"cannot load model {path}: not a whole .keras file (truncated, or another format)")
        try:
            self.model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # a foreign file: say which and why, on one line
            raise HousenumError(f"cannot load model {path}: {' '.join(str(exc).split())}") from None
        self.image_size = self.config.model.image_size
        self.image_width = self.config.model.image_width  # None: square inputs
        self.path = path

    def describe(self) -> str:
        """Which model this is: path, the data it was trained on, its test accuracy."""
        m = self.meta.get("metrics") or {}
        test = (m.get("test") or {}).get("sequence_accuracy")
        acc = f"test whole-sequence accuracy {test:.1%}" if test is not None else "no test score recorded"
        members = (self.meta.get("ensemble") or {}).get("members")
        kind = f"an ensemble of {len(members)} readers " if members else ""
        return f"{self.path} ({kind}trained on {m.get('data') or 'unrecorded data'}; {acc})"

    def read_arrays(self, images: np.ndarray, batch: int = 64) -> tuple[list[str], np.ndarray]:
        """Texts and confidences for prepared inputs (N, S, S, 1)."""
        from housenum.inference import read_numbers

        return read_numbers(self.model, images, batch)

    def warm_up(self) -> None:
        """Trace the inference function once, so that timings show reading, not tracing."""
        self.read_arrays(np.zeros((1,) + self.config.model.input_shape, np.float32))


def find_finder(results_dir: Path | str = "results", trained: list[tuple[Path, dict]] | None = None) -> Path | None:
    """The finder `predict_real_images.py` uses without --finder, by the reader's rule (`find_model`): the
    newest trained on real SVHN photos under results_dir (any depth), else the one shipped with the project,
    else the newest trained on synthetic data there, else None. The README's first finder command is a short
    one (3,000 steps on 16,000 scenes) that finds numbers worse than the shipped one (10,000 on 100,000).
    `trained`: `trained_finders(results_dir)` where the caller has it already."""
    trained = trained_finders(results_dir) if trained is None else trained
    shipped = SHIPPED / "finder"
    return _preferred(trained, finder_on_real_svhn, shipped if (shipped / "finder.json").is_file() else None)


def trained_finders(results_dir: Path | str = "results") -> list[tuple[Path, dict]]:
    """Finder folders under results_dir (any depth), newest first, with their finder.json (unreadable ones
    left out)."""
    out = []
    for path in _newest_first(results_dir, "finder.json"):
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            out.append((path.parent, meta))
    return out


def finder_on_real_svhn(meta: dict) -> bool:
    """Whether a finder's finder.json says its scenes were made from real SVHN photos."""
    from housenum.preprocess import REAL_SVHN

    return str((meta.get("data") or {}).get("trained_on") or "").startswith(REAL_SVHN)


class PhotoReader:
    """Whole photos in, readings out: the finder, then the reader on the found box, then the abstain rule."""

    def __init__(self, reader: Reader, finder=None):
        self.reader, self.finder = reader, finder
        self.threshold = float(reader.meta.get("abstain_threshold") or 0.0)

    def describe(self) -> str:
        finder = f"finder {self.finder.path}" if self.finder else "no finder: whole photos are read as crops"
        return f"{self.reader.describe()}; {finder}; abstains below confidence {self.threshold:.3f}"

    def warm_up(self) -> None:
        """Trace both networks once, so that timings show reading, not tracing (a blank photo alone would
        stop at the finder and leave the reader untraced)."""
        self.reader.warm_up()
        if self.finder:
            self.finder.find([Image.new("L", (64, 48))])

    def read_images(self, photos: Sequence[Image.Image]) -> list[Reading]:
        """Readings of upright photos (any mode); boxes in the photos' own pixels."""
        found = self.finder.find(photos) if self.finder else [None] * len(photos)
        arrays, owner, boxes = [], [], []
        for i, (im, f) in enumerate(zip(photos, found)):
            if f is not None and f.box is None:
                continue  # the finder says there is no number: nothing to read
            for crop in self._crops(im, f.box if f is not None else None):
                arrays.append(crop)
                owner.append(i)
                boxes.append(f.box if f is not None else None)
        readings = [Reading("", found=None if f is None else f.score) for f in found]
        if arrays:
            texts, conf = self.reader.read_arrays(np.stack(arrays))
            for i, text, c, box in zip(owner, texts, conf, boxes):
                r = readings[i]
                if c > r.confidence:  # the most confident of the photo's crops
                    r.text, r.confidence, r.box = text, float(c), box
        for r in readings:
            r.guess = r.text or None
            if r.confidence < self.threshold or not r.text:
                r.text = None  # below the threshold the answer is "no number found", never a guess
        return readings

    def _crops(self, im: Image.Image, box: tuple[int, int, int, int] | None) -> list[np.ndarray]:
        """The reader's inputs for one photo: the photo as its own crop (a photo framed like a training
        crop), and, around a found box, crops of several margins and shifts. The finder's box is off by a
        little either way (IoU ~0.75 on synthetic scenes); reading a few framings and keeping the most
        confident reading cost ~1 ms and read 3-4 points more held-out synthetic photos than the
        training margin alone (README, "Reading whole photos")."""
        from housenum.photo import image_to_input

        size, width = self.reader.image_size, self.reader.image_width
        out = [image_to_input(im, None, size, width)]
        if box is None:
            return out
        framed = (framing_input(im, box, k, size, width) for k in range(len(READ_FRAMINGS)))
        return out + [a for a in framed if a is not None]


def framing_input(im: Image.Image, box: tuple[int, int, int, int], framing: int, size: int,
                  width: int | None = None) -> np.ndarray | None:
    """The reader's input for READ_FRAMINGS[framing] of a found box (photo pixels); None if it falls outside
    the photo. The one place a framing is cut: reading, and training on framed crops (housenum.framed)."""
    from housenum.photo import image_to_input, union_box

    l, t, r, b = box
    dx, margin = READ_FRAMINGS[framing]
    crop = union_box(np.array([[0, l + dx * (r - l), t, r - l, b - t]], float), im.width, im.height, margin)
    return None if crop is None else image_to_input(im, crop, size, width)


def collect_paths(inputs: Sequence[str], skip: Sequence[Path | str] = ()) -> tuple[list[Path], list[str]]:
    """Files as given; folders expanded to the image files in them and in their subfolders (a phone's DCIM/
    keeps its photos in subfolders), sorted, leaving out hidden files and folders (names starting with ".":
    Android's .thumbnails, the ._ files macOS leaves on shared drives) and the `skip` folders (where --show
    writes its drawings, so that a second run does not read them); a warning for each folder without images.
    Missing paths are kept so that they are reported, in order."""
    skipped = {Path(s).resolve() for s in skip}
    out: list[Path] = []
    warnings: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            images, others = _images_under(p, skipped)
            if not images:
                warnings.append(f"{p} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}), nor do its "
                                f"subfolders")
            elif others:  # a phone's videos, raw files: say they were not read
                kinds = ", ".join(f"{suffix or 'no suffix'} {n}" for suffix, n in sorted(others.items()))
                warnings.append(f"{p}: {sum(others.values())} file(s) that are not images left out ({kinds})")
            out.extend(sorted(images))
        else:
            out.append(p)
    return out, warnings


def _images_under(folder: Path, skipped: set[Path]) -> tuple[list[Path], dict[str, int]]:
    """Image files under folder, any depth (links to folders not followed, so no loops), and how many other
    files of each suffix there are."""
    found, others = [], {}
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (root_path / d).resolve() not in skipped]
        for f in files:
            if f.startswith(".") or not (root_path / f).is_file():
                continue
            suffix = Path(f).suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                found.append(root_path / f)
            else:
                others[suffix] = others.get(suffix, 0) + 1
    return found, others


def answered_paths(out: Path) -> set[str]:
    """The photos already answered in a readings file (`predict_real_images.py --out`): the first column of
    its path<TAB>number<TAB>confidence<TAB>box lines. A last line cut short by an interruption is removed
    from the file, so that the photo is read again and the next line starts on a line of its own."""
    if out.is_dir():
        raise HousenumError(f"{out} is a folder: --out takes a file to write the readings to")
    if not out.exists():
        if not out.absolute().parent.is_dir():  # said now, not after the first batch is read
            raise HousenumError(f"{out.parent} is not a folder: make it, or pass another --out")
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
        with open(out, "r+b") as f:
            f.truncate(len(data))
    lines = data.decode("utf-8", "replace").splitlines()
    done = {line.split("\t", 1)[0] for line in lines if line.count("\t") == 3}
    if lines and not done:
        raise HousenumError(f"{out} holds no readings (path<TAB>number<TAB>confidence<TAB>box lines): pass "
                            f"another file as --out, so that this one is not written to")
    return done


def check_path(path: Path) -> str | None:
    """Why `path` cannot be a photo (no such file, empty file), or None: cheap, before a model loads."""
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a folder with no images"
    if path.stat().st_size == 0:
        return "empty file"
    return None


def load_photo(path: Path) -> tuple[Image.Image, float]:
    """One photo, upright, decoded no larger than the finder and the reader need (see
    `housenum.finder.open_photo`), and the factor from its pixels to the file's; HousenumError saying why not."""
    from housenum.finder import open_photo

    problem = check_path(path)
    if problem:
        raise HousenumError(problem)
    try:
        return open_photo(path, READ_SIDE)
    except UnidentifiedImageError:
        from housenum.finder import heif_opener

        if path.suffix.lower() in (".heic", ".heif") and not heif_opener():
            raise HousenumError("a HEIC photo, and pillow-heif is not installed (pip install -r requirements.txt)") from None
        raise HousenumError("not an image Pillow can read") from None
    except Image.DecompressionBombError as exc:  # not corrupt: larger than Pillow decodes without being told to
        size = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(size.group(1)) / 1e6:.0f} megapixels; " if size else ""
        raise HousenumError(f"too large to decode safely ({size}Pillow refuses over "
                            f"{(Image.MAX_IMAGE_PIXELS or 0) * 2 / 1e6:.0f}): save a smaller copy") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise HousenumError(f"corrupt image ({' '.join(str(exc).split())})") from None


def read_photos(photo_reader: PhotoReader, paths: Iterable[Path], batch: int = 64) -> list[Reading]:
    """Readings of photo files, `batch` at a time; a file that cannot be read gets its error instead.
    Boxes are in the files' own (upright) pixels."""
    return [r for readings in iter_readings(photo_reader, paths, batch) for r in readings]


def iter_readings(photo_reader: PhotoReader, paths: Iterable[Path], batch: int = 64) -> Iterator[list[Reading]]:
    """`read_photos` a batch at a time, in order: a folder of thousands of photos shows its answers as they
    come, and an interrupted run keeps those already given."""
    paths = list(paths)
    for start in range(0, len(paths), batch):
        part = paths[start:start + batch]
        readings = [Reading(str(p)) for p in part]
        ok, photos, scales = [], [], []
        for i, (path, reading) in enumerate(zip(part, readings)):
            try:
                im, scale = load_photo(path)
            except HousenumError as exc:
                reading.error = str(exc)
                continue
            ok.append(i)
            photos.append(im)
            scales.append(scale)
        for i, r, scale in zip(ok, photo_reader.read_images(photos), scales):
            r.path = readings[i].path
            if r.box is not None:
                r.box = tuple(int(round(v * scale)) for v in r.box)
            readings[i] = r
        yield readings


def draw_reading(path: Path, reading: Reading, out_dir: Path, index: int) -> Path:
    """Save a copy of the photo (at most SHOW_MAX_SIDE px) with its reading in a banner above it."""
    from PIL import ImageOps

    from housenum.atomic import atomic_path
    from housenum.finder import heif_opener
    from housenum.photo import eight_bit, opaque

    heif_opener()
    with Image.open(path) as im:
        full_width = im.height if _turned(im) else im.width  # the width the box's pixels refer to
        im.draft("RGB", (SHOW_MAX_SIDE, SHOW_MAX_SIDE))  # JPEGs decode at a fraction of full size
        im = opaque(eight_bit(ImageOps.exif_transpose(im))).convert("RGB")
    if max(im.size) > SHOW_MAX_SIDE:
        im.thumbnail((SHOW_MAX_SIDE, SHOW_MAX_SIDE), Image.BILINEAR)
    scale = max(1.0, 256 / max(im.size))  # tiny crops are enlarged so the text fits
    if scale > 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.NEAREST)
    if reading.answer_box() is not None:  # the box is in the file's pixels; this copy may be smaller or larger
        k = im.width / full_width
        l, t, r, b = (v * k for v in reading.answer_box())
        ImageDraw.Draw(im).rectangle((l, t, r, b), outline="yellow", width=max(2, im.width // 200))
    band = max(24, im.width // 10)
    canvas = Image.new("RGB", (im.width, im.height + band), "black")
    canvas.paste(im, (0, band))
    font = _font(int(band * 0.75))
    label = f"{reading.answer()}  {reading.confidence:.0%}" if reading.text else NO_NUMBER
    ImageDraw.Draw(canvas).text((4, band * 0.1), label, fill="yellow", font=font)
    out = out_dir / f"{index:04d}_{path.stem}_read.png"
    with atomic_path(out, suffix=".png") as tmp:
        canvas.save(tmp)
    return out


def _turned(im: Image.Image) -> bool:
    """Whether the photo's EXIF orientation swaps its width and height."""
    from housenum.photo import orientation

    return orientation(im) in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90,
                               Image.Transpose.ROTATE_270)


def _font(size: int):
    try:
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
        return ImageFont.truetype(str(ttf), size)
    except (ImportError, OSError):
        return ImageFont.load_default()

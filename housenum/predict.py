"""Step 5: read house numbers from a user's own photos with a trained number-reading model.

A photo is prepared by `housenum.photo.image_to_input`, the function training used for its crops, and
read through `housenum.inference`, the code that scored the model during training. Only models of the
number-reading task are taken: a letters model (the notMNIST baseline) has no length and digit heads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from housenum.config import RunConfig
from housenum.errors import HousenumError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
NUMBER_TASK = "sequence"  # ModelConfig.task of a number reader (length + digit heads)
SHOW_MAX_SIDE = 1600  # --show draws on a copy no larger than this: a 12-megapixel PNG would be ~36 MB


@dataclass
class Reading:
    path: str
    text: str | None = None  # the number read ("" when the model reads no digits)
    confidence: float = 0.0  # probability the model gives to the whole reading
    error: str | None = None  # why this file could not be read


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


def find_model(results_dir: Path | str = "results") -> Path:
    """The newest number-reading model.keras under results_dir (any depth); letters models are passed over."""
    results_dir = Path(results_dir)
    found = sorted(results_dir.glob("**/model.keras"), key=lambda p: p.stat().st_mtime) if results_dir.is_dir() else []
    for path in reversed(found):
        try:
            model_meta(path)
        except HousenumError:
            continue
        return path
    raise HousenumError(
        f"no trained house-number model in {results_dir}/: train one with `python train_and_test_svhn_data.py` "
        f"(or pass --model PATH)"
    )


class Reader:
    """A loaded number-reading model plus the settings it was trained with, ready to read batches."""

    def __init__(self, model_path: Path | str):
        path = Path(model_path)
        if path.is_dir():
            path = path / "model.keras"
        if not path.is_file():
            raise HousenumError(f"no model at {path}: pass a run folder or a model.keras file")
        self.meta = model_meta(path)  # before the slow load: a wrong kind of model fails at once
        self.config: RunConfig = self.meta.pop("run_config")
        import housenum.model  # noqa: F401  (quiet TensorFlow import; registers the custom layer)
        import keras

        try:
            self.model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # a truncated or foreign file: say which and why, on one line
            raise HousenumError(f"cannot load model {path}: {exc}") from exc
        self.image_size = self.config.model.image_size
        self.path = path

    def describe(self) -> str:
        """Which model this is: path, the data it was trained on, its test accuracy."""
        m = self.meta.get("metrics") or {}
        test = (m.get("test") or {}).get("sequence_accuracy")
        acc = f"test whole-sequence accuracy {test:.1%}" if test is not None else "no test score recorded"
        return f"{self.path} (trained on {m.get('data') or 'unrecorded data'}; {acc})"

    def read_arrays(self, images: np.ndarray, batch: int = 64) -> tuple[list[str], np.ndarray]:
        """Texts and confidences for prepared inputs (N, S, S, 1)."""
        from housenum.inference import read_numbers

        return read_numbers(self.model, images, batch)

    def warm_up(self) -> None:
        """Trace the inference function once, so that timings show reading, not tracing."""
        self.read_arrays(np.zeros((1, self.image_size, self.image_size, 1), np.float32))


def collect_paths(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Files as given, folders expanded to their image files (sorted, not recursive), and a warning for
    each folder that holds no images. Missing paths are kept so that they are reported, in order."""
    out: list[Path] = []
    warnings: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            images = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                warnings.append(f"{p} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            out.extend(images)
        else:
            out.append(p)
    return out, warnings


def check_path(path: Path) -> str | None:
    """Why `path` cannot be a photo (no such file, empty file), or None: cheap, before a model loads."""
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a folder with no images"
    if path.stat().st_size == 0:
        return "empty file"
    return None


def load_photo(path: Path, image_size: int) -> np.ndarray:
    """One photo as network input, or HousenumError saying why not."""
    from housenum.photo import image_to_input

    problem = check_path(path)
    if problem:
        raise HousenumError(problem)
    try:
        with Image.open(path) as im:
            im.load()
            return image_to_input(im, None, image_size)
    except UnidentifiedImageError:
        raise HousenumError("not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise HousenumError(f"corrupt image ({' '.join(str(exc).split())})") from None


def read_photos(reader: Reader, paths: Iterable[Path], batch: int = 64) -> list[Reading]:
    paths = list(paths)
    readings = [Reading(str(p)) for p in paths]
    ok, arrays = [], []
    for i, p in enumerate(paths):
        try:
            arrays.append(load_photo(p, reader.image_size))
            ok.append(i)
        except HousenumError as exc:
            readings[i].error = str(exc)
    if ok:
        texts, conf = reader.read_arrays(np.stack(arrays), batch)
        for i, text, c in zip(ok, texts, conf):
            readings[i].text, readings[i].confidence = text, float(c)
    return readings


def draw_reading(path: Path, reading: Reading, out_dir: Path, index: int) -> Path:
    """Save a copy of the photo (at most SHOW_MAX_SIDE px) with its reading in a banner above it."""
    from PIL import ImageOps

    from housenum.atomic import atomic_path

    with Image.open(path) as im:
        im.draft("RGB", (SHOW_MAX_SIDE, SHOW_MAX_SIDE))  # JPEGs decode at a fraction of full size
        im = ImageOps.exif_transpose(im).convert("RGB")
    if max(im.size) > SHOW_MAX_SIDE:
        im.thumbnail((SHOW_MAX_SIDE, SHOW_MAX_SIDE), Image.BILINEAR)
    scale = max(1.0, 256 / max(im.size))  # tiny crops are enlarged so the text fits
    if scale > 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.NEAREST)
    band = max(24, im.width // 10)
    canvas = Image.new("RGB", (im.width, im.height + band), "black")
    canvas.paste(im, (0, band))
    font = _font(int(band * 0.75))
    label = f"{reading.text or '(none)'}  {reading.confidence:.0%}"
    ImageDraw.Draw(canvas).text((4, band * 0.1), label, fill="yellow", font=font)
    out = out_dir / f"{index:04d}_{path.stem}_read.png"
    with atomic_path(out, suffix=".png") as tmp:
        canvas.save(tmp)
    return out


def _font(size: int):
    try:
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
        return ImageFont.truetype(str(ttf), size)
    except (ImportError, OSError):
        return ImageFont.load_default()

"""Step 5: read house numbers from a user's own photos with a trained model.

A photo is prepared by `housenum.preprocess.image_to_input`, the same function training used after its
crop: the whole photo plays the part of the crop, so frame the number roughly (a margin of about a
third of the number's size around it, as in training) for the best reading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from housenum.errors import HousenumError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class Reading:
    path: str
    text: str | None = None  # the number read ("" when the model reads no digits)
    confidence: float = 0.0  # probability the model gives to the whole reading
    error: str | None = None  # why this file could not be read


def find_model(results_dir: Path | str = "results") -> Path:
    """The newest model.keras under results_dir (any depth)."""
    results_dir = Path(results_dir)
    found = sorted(results_dir.glob("**/model.keras"), key=lambda p: p.stat().st_mtime) if results_dir.is_dir() else []
    if not found:
        raise HousenumError(
            f"no trained model in {results_dir}/: train one with `python train_and_test_svhn_data.py` "
            f"(or pass --model PATH)"
        )
    return found[-1]


class Reader:
    """A loaded model plus the settings it was trained with (image size), ready to read batches."""

    def __init__(self, model_path: Path | str):
        path = Path(model_path)
        if path.is_dir():
            path = path / "model.keras"
        if not path.is_file():
            raise HousenumError(f"no model at {path}: pass a run folder or a model.keras file")
        meta_path = path.with_name("model.json")
        if not meta_path.is_file():
            raise HousenumError(f"{meta_path} is missing: the model's settings travel beside model.keras")
        import housenum.model  # noqa: F401  (quiet TensorFlow import; registers the custom layer)
        import keras

        try:
            self.model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # a truncated or foreign file: say which and why, on one line
            raise HousenumError(f"cannot load model {path}: {exc}") from exc
        self.meta = json.loads(meta_path.read_text())
        self.image_size = int(self.meta["config"]["model"]["image_size"])
        self.path = path
        self._fn = None

    def read_arrays(self, images: np.ndarray, batch: int = 64) -> tuple[list[str], np.ndarray]:
        """Texts and confidences for prepared inputs (N, S, S, 1)."""
        from housenum.metrics import decode, reading_to_text
        from housenum.train import predict_logits

        out = predict_logits(self.model, images, batch)
        length, digits, conf = decode(out["length"], out["digits"])
        return [reading_to_text(n, d) for n, d in zip(length, digits)], conf


def collect_paths(inputs: Sequence[str]) -> list[Path]:
    """Files as given, folders expanded to their image files (sorted, not recursive). Missing paths are
    kept so that they are reported, in order, with the others."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out


def load_photo(path: Path, image_size: int) -> np.ndarray:
    """One photo as network input, or HousenumError saying why not."""
    from housenum.preprocess import image_to_input

    if not path.exists():
        raise HousenumError("no such file")
    if path.is_dir():
        raise HousenumError("is a folder with no images")
    if path.stat().st_size == 0:
        raise HousenumError("empty file")
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
    """Save a copy of the photo with its reading written in a banner above it."""
    from PIL import ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    scale = max(1.0, 256 / max(im.size))  # tiny crops are enlarged so the text fits
    if scale > 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.NEAREST)
    band = max(24, im.width // 10)
    canvas = Image.new("RGB", (im.width, im.height + band), "black")
    canvas.paste(im, (0, band))
    font = _font(int(band * 0.75))
    label = f"{reading.text or '(none)'}  {reading.confidence:.0%}"
    ImageDraw.Draw(canvas).text((4, band * 0.1), label, fill="yellow", font=font)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{index:04d}_{path.stem}_read.png"
    canvas.save(out)
    return out


def _font(size: int):
    try:
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
        return ImageFont.truetype(str(ttf), size)
    except (ImportError, OSError):
        return ImageFont.load_default()

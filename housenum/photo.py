"""The one function that turns a photo (or a box of it) into the network's input.

Training, evaluation and `predict_real_images.py` all call `image_to_input`, so they cannot drift
apart. For every photo, in order:

1. crop to `box`, in the photo's STORED pixel coordinates: SVHN's boxes (and any box found by this
   project) are measured on the pixels as stored, before any EXIF orientation;
2. EXIF orientation applied to what is left (phone photos are often stored sideways);
3. grayscale (ITU-R 601-2 luma, Pillow's "L"; 16-bit grayscale scaled to 8 bits, `grayscale`);
4. resize to `image_size` x `image_size` (bilinear), or to `image_size` high and `width` wide for a
   wider-than-tall input (the sequence reader's);
5. per-image standardisation: subtract the image's mean, divide by its standard deviation. Per image
   rather than dataset-wide, so a user's photo needs no statistics from our training set and
   brightness/contrast differences between photos vanish.

The crop box of a labelled photo is the union of its digit boxes grown by `DataConfig.margin` (30 % in
total, 15 % a side, as Goodfellow et al. 2014), clipped to the photo: `union_box`. The input side and
the margin are settings of `housenum.config.DataConfig`, their one owner.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from housenum.config import DataConfig

# EXIF orientation tag value -> the Pillow transpose that makes the stored pixels upright
_EXIF_ORIENTATION = 0x0112
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def union_box(boxes: np.ndarray, width: int, height: int, margin: float = DataConfig.margin) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) around all digit boxes (columns label,left,top,width,height), grown by
    `margin` of its size in total and clipped to the image; None when nothing of it lies inside."""
    left = boxes[:, 1].min()
    top = boxes[:, 2].min()
    right = (boxes[:, 1] + boxes[:, 3]).max()
    bottom = (boxes[:, 2] + boxes[:, 4]).max()
    dx = (right - left) * margin / 2
    dy = (bottom - top) * margin / 2
    l, t = max(0, int(np.floor(left - dx))), max(0, int(np.floor(top - dy)))
    r, b = min(width, int(np.ceil(right + dx))), min(height, int(np.ceil(bottom + dy)))
    if r - l < 1 or b - t < 1:
        return None
    return l, t, r, b


def standardize(a: np.ndarray) -> np.ndarray:
    """Per-image standardisation (zero mean, unit variance); a flat image becomes all zeros."""
    a = a.astype(np.float32)
    std = a.std()
    return (a - a.mean()) / (std if std > 1e-6 else 1.0)


def orientation(image: Image.Image) -> Image.Transpose | None:
    """The transpose that turns the stored pixels upright (EXIF orientation), None when upright."""
    try:
        return _UPRIGHT.get(int(image.getexif().get(_EXIF_ORIENTATION, 1)))
    except (TypeError, ValueError, OSError, SyntaxError):  # unreadable EXIF: take the pixels as stored
        return None


def upright(image: Image.Image, turn: Image.Transpose | None) -> Image.Image:
    return image.transpose(turn) if turn is not None else image


def eight_bit(image: Image.Image) -> Image.Image:
    """A photo whose pixels Pillow converts without loss: 16-bit grayscale (PNGs from scanners and raw
    converters, Pillow's "I;16") and 32-bit integer or float pixels above 255 scaled down to "L" from their
    16-bit range (or their maximum, where it exceeds that), any other photo as it is. Pillow's own conversion
    clips such pixels at 255, which turns most of the photo white and hides its number."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        top = float(image.getextrema()[1] or 0)
        if image.mode.startswith("I;16") or top > 255:
            a = np.asarray(image, dtype=np.float32) / (257.0 if top <= 65535 else top / 255.0)
            return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    return image


def opaque(image: Image.Image) -> Image.Image:
    """A picture with transparent pixels (a PNG or WebP cut out of its background, a sticker) as it shows on
    a white page; any other as it is. Pillow's conversion keeps the colour stored under transparent pixels,
    often black: black digits on a transparent background would vanish into a black page."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image


def grayscale(image: Image.Image) -> Image.Image:
    """Pillow's "L" (ITU-R 601-2 luma) of a photo in any mode, 16-bit ones included (`eight_bit`), transparent
    pixels as on a white page (`opaque`)."""
    return opaque(eight_bit(image)).convert("L")


def image_to_input(image: Image.Image, box: tuple[int, int, int, int] | None = None,
                   image_size: int = DataConfig.image_size, width: int | None = None) -> np.ndarray:
    """A photo, optionally cropped to `box` (stored-pixel coordinates), as network input: float32 (S, S, 1),
    or (S, width, 1) when `width` is given."""
    turn = orientation(image)
    if box is not None:
        image = image.crop(box)
    gray = grayscale(upright(image, turn)).resize((width or image_size, image_size), Image.BILINEAR)
    return standardize(np.asarray(gray, dtype=np.float32))[:, :, None]

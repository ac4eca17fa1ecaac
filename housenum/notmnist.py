"""notMNIST letters A-J: read the PNG folders, split, check duplicates, store one HDF5 file.

The study warms up on notMNIST (the Udacity deep-learning assignment) before SVHN. Steps, in order:
  1. `read_letter_folder`: every `<folder>/A..J/*.png` into uint8 28x28 arrays, in parallel; empty,
     unreadable or wrongly-sized PNGs are skipped and counted per letter (the real large set has a few).
  2. `split_letters`: class-balanced, seeded train / valid / test. The study's sizes are 200,000 / 10,000
     from notMNIST_large and 10,000 test from notMNIST_small; with only notMNIST_small present, all
     three are carved from it (and the summary says so).
  3. `duplicate_report` / `drop_cross_duplicates`: exact pixel duplicates between and within splits.
  4. `write_notmnist_h5`: normalise `(pixel - 255/2) / 255` and write `train`, `valid`, `test` groups.
`preprocess_notmnist` runs them all; `load_notmnist` reads the file back with its checks.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import h5py
import numpy as np
from PIL import Image
from tqdm import tqdm

from housenum import __version__
from housenum.atomic import atomic_path, write_json
from housenum.errors import DataError

LETTERS = "ABCDEFGHIJ"  # label i is LETTERS[i]
NUM_CLASSES = len(LETTERS)
IMAGE_SIZE = 28  # notMNIST PNGs are 28x28 grayscale
PIXEL_DEPTH = 255.0  # the Udacity assignment's constant: x = (pixel - PIXEL_DEPTH / 2) / PIXEL_DEPTH
NORMALISATION = "(pixel - 255/2) / 255"
FORMAT_VERSION = 1  # bump when the HDF5 layout changes; load_notmnist refuses other versions
SPLITS = ("train", "valid", "test")
LARGE = "notMNIST_large"
SMALL = "notMNIST_small"
SIZE_FLAGS = {"train": "--train-size", "valid": "--valid-size", "test": "--test-size"}

# The study's split sizes when notMNIST_large is present (train and valid from large, test from small).
STUDY_SIZES = {"train": 200_000, "valid": 10_000, "test": 10_000}
# With notMNIST_small only (10,000 letters on the mirror): 10 % valid, 10 % test, the rest for training.
SMALL_ONLY_SIZES = {"valid": 1_000, "test": 1_000}

# Below this many files, starting worker processes costs more than it saves (10,000 PNGs read in ~1 s).
PARALLEL_MIN_FILES = 20_000
CHUNK_FILES = 2_000  # files per worker task: large enough to amortise pickling, small enough to keep the bar moving
WRITE_ROWS = 10_000  # rows normalised at a time when writing, so no float copy of a whole split is held

SKIP_REASONS = ("empty", "unreadable", "wrong size")


def _default_workers() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class NotMnistSettings:
    """What `preprocess_notmnist` does. Sizes left at None resolve per source (see `resolve_sizes`)."""

    data_dir: Path = Path("data/notmnist")  # holds notMNIST_large/ and/or notMNIST_small/ (download_and_extract.py)
    output: Path = Path("data/notmnist.h5")  # the one HDF5 file (train/valid/test groups)
    results_dir: Path = Path("results")  # notmnist_summary.json goes here
    seed: int = 0  # drives every shuffle; same seed, same data -> identical splits
    train_size: int | None = None  # None: study's 200,000 from large; small only: every image left after valid+test
    valid_size: int | None = None  # None: study's 10,000 from large; small only: 1,000
    test_size: int | None = None  # None: study's 10,000 from small; small only: 1,000
    dedupe: bool = False  # drop valid/test images whose pixels also occur in an earlier split
    workers: int = field(default_factory=_default_workers)  # processes reading PNGs (all cores)
    progress: bool = True  # tqdm bar while reading (shown only on a terminal)


@dataclass
class LetterFolder:
    """One notMNIST folder read into memory: uint8 pixels (compact: 530k letters fit in ~415 MB)."""

    name: str  # "notMNIST_large" or "notMNIST_small"
    path: Path
    images: np.ndarray  # uint8 (N, 28, 28)
    labels: np.ndarray  # int64 (N,), 0..9 for A..J
    files: int  # PNG files found
    skipped: dict[str, dict[str, int]]  # letter -> reason -> count, letters with skips only
    skipped_examples: list[str]  # the first few skipped files, with their reason

    @property
    def skipped_total(self) -> int:
        return sum(sum(r.values()) for r in self.skipped.values())

    def class_counts(self) -> dict[str, int]:
        return _class_counts(self.labels)


# --------------------------------------------------------------------------------------------- reading


def find_sources(data_dir: Path) -> tuple[Path | None, Path | None]:
    """(notMNIST_large, notMNIST_small) folders under data_dir; None for each one absent."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(
            f"notMNIST data folder {data_dir} does not exist: expected {LARGE}/ and/or {SMALL}/ in it "
            "(run download_and_extract.py first, or pass --data-dir)"
        )
    large, small = data_dir / LARGE, data_dir / SMALL
    found = (large if large.is_dir() else None, small if small.is_dir() else None)
    if found == (None, None):
        present = sorted(p.name for p in data_dir.iterdir())[:8]
        raise DataError(
            f"no {LARGE}/ or {SMALL}/ folder in {data_dir}: found {present or 'nothing'} "
            "(run download_and_extract.py first, or pass --data-dir)"
        )
    return found


def list_letter_files(folder: Path) -> tuple[list[str], np.ndarray]:
    """Sorted PNG paths of folder/A..J and their labels; the sort makes every later step reproducible."""
    folder = Path(folder)
    missing = [c for c in LETTERS if not (folder / c).is_dir()]
    if missing:
        present = sorted(p.name for p in folder.iterdir() if p.is_dir())[:12]
        raise DataError(
            f"{folder} must hold one folder per letter A..J; missing {','.join(missing)} "
            f"(found folders: {present or 'none'})"
        )
    paths: list[str] = []
    labels: list[int] = []
    for label, letter in enumerate(LETTERS):
        # os.scandir: the large set has ~53,000 files per letter, and Path.glob is several times slower.
        with os.scandir(folder / letter) as entries:
            names = sorted(e.name for e in entries if e.name.lower().endswith(".png") and e.is_file())
        paths.extend(os.path.join(folder, letter, n) for n in names)
        labels.extend([label] * len(names))
    return paths, np.asarray(labels, dtype=np.int64)


def _read_png(path: str) -> tuple[np.ndarray | None, str, str]:
    """(pixels, "", "") or (None, reason, detail), reason one of SKIP_REASONS; never raises for a bad file."""
    try:
        if os.path.getsize(path) == 0:
            return None, "empty", "0 bytes"
        with Image.open(path) as im:
            im.load()
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                return None, "wrong size", f"{im.size[0]}x{im.size[1]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}"
            if im.mode != "L":
                im = im.convert("L")
            return np.asarray(im, dtype=np.uint8), "", ""
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError... for damaged PNGs; skip them all
        return None, "unreadable", " ".join(f"{type(exc).__name__}: {exc}".split())[:120]


def _read_chunk(paths: Sequence[str]) -> tuple[np.ndarray, list[int], list[tuple[int, str, str]]]:
    """Worker task: the readable images of `paths`, their positions, and (position, reason, detail) of the rest."""
    images = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    ok: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for i, path in enumerate(paths):
        pixels, reason, detail = _read_png(path)
        if pixels is None:
            bad.append((i, reason, detail))
        else:
            images[len(ok)] = pixels
            ok.append(i)
    return images[: len(ok)], ok, bad


def read_letter_folder(folder: Path, workers: int = 1, progress: bool = False) -> LetterFolder:
    """Read `folder/A..J/*.png` (28x28 grayscale); skip and count bad files per letter, never abort."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"notMNIST folder {folder} does not exist: expected {folder}/A .. {folder}/J with 28x28 PNGs")
    paths, labels = list_letter_files(folder)
    if not paths:
        raise DataError(f"{folder}/A..J hold no .png files: expected 28x28 grayscale letter images")
    chunks = [paths[i : i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    images = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    keep = np.zeros(len(paths), dtype=bool)
    filled = 0  # readable images are packed to the front, so dropping the bad ones needs no second copy
    skipped: dict[str, dict[str, int]] = {}
    examples: list[str] = []
    bar = tqdm(total=len(paths), desc=f"reading {folder.name}", unit="png", disable=None if progress else True)
    pool = None
    try:
        if workers > 1 and len(paths) >= PARALLEL_MIN_FILES:
            # spawn, not fork: the calling process may hold TensorFlow threads, which fork can deadlock.
            pool = multiprocessing.get_context("spawn").Pool(min(workers, len(chunks)))
            results: Iterable = pool.imap(_read_chunk, chunks)
        else:
            results = map(_read_chunk, chunks)
        start = 0
        for chunk, (got, ok, bad) in zip(chunks, results):
            images[filled : filled + len(got)] = got
            filled += len(got)
            keep[start + np.asarray(ok, dtype=np.int64)] = True
            for i, reason, detail in bad:
                per = skipped.setdefault(LETTERS[labels[start + i]], {})
                per[reason] = per.get(reason, 0) + 1
                if len(examples) < 20:
                    examples.append(f"{os.path.relpath(chunk[i], folder)}: {reason} ({detail})")
            start += len(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    out = LetterFolder(
        name=folder.name,
        path=folder,
        images=images[:filled],
        labels=labels[keep],
        files=len(paths),
        skipped=dict(sorted(skipped.items())),
        skipped_examples=examples,
    )
    empty_letters = [c for c, n in out.class_counts().items() if n == 0]
    if empty_letters:
        raise DataError(
            f"{folder}: letters {','.join(empty_letters)} hold no readable 28x28 PNG "
            f"({out.skipped_total} of {len(paths)} files skipped); every letter A..J needs images"
        )
    return out


# -------------------------------------------------------------------------------------------- splitting


def resolve_sizes(
    have_large: bool, have_small: bool, train: int | None, valid: int | None, test: int | None
) -> dict[str, int | None]:
    """Sizes per split; train None afterwards means "every image left" (small-only or large-only)."""
    for name, value in (("train", train), ("valid", valid), ("test", test)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise DataError(f"{SIZE_FLAGS[name]} must be a whole number of at least 1, got {value!r}")
    if have_large:
        return {
            "train": STUDY_SIZES["train"] if train is None else int(train),
            "valid": STUDY_SIZES["valid"] if valid is None else int(valid),
            "test": STUDY_SIZES["test"] if test is None else int(test),
        }
    return {
        "train": None if train is None else int(train),
        "valid": SMALL_ONLY_SIZES["valid"] if valid is None else int(valid),
        "test": SMALL_ONLY_SIZES["test"] if test is None else int(test),
    }


def _per_class(total: int) -> np.ndarray:
    """A class-balanced share of `total`: total // 10 each, the remainder to the first letters."""
    counts = np.full(NUM_CLASSES, total // NUM_CLASSES, dtype=np.int64)
    counts[: total % NUM_CLASSES] += 1
    return counts


def _asked_text(asks: Sequence[tuple[str, int | None]]) -> str:
    return " + ".join(f"{SIZE_FLAGS[name]} {n:,}" for name, n in asks if n is not None)


def check_total(asks: Sequence[tuple[str, int | None]], available: int, source: str) -> None:
    """One-line DataError, naming the flags, when the sizes asked exceed the images `source` holds."""
    asked = sum(n for _, n in asks if n is not None)
    takes_rest = any(n is None for _, n in asks)
    if asked <= available and not (takes_rest and asked >= available):
        return
    flags = _asked_text(asks)
    if takes_rest:
        raise DataError(
            f"{flags} = {asked:,} images asked of {source}, which holds {available:,}: "
            "nothing would be left for training; lower them"
        )
    if sum(1 for _, n in asks if n is not None) == 1:
        raise DataError(f"{flags} asks more than {source} holds: asked {asked:,}, available {available:,}")
    raise DataError(f"{flags} = {asked:,} images asked of {source}, which holds {available:,}")


def carve_splits(
    labels: np.ndarray, asks: Sequence[tuple[str, int | None]], rng: np.random.Generator, source: str
) -> dict[str, np.ndarray]:
    """Class-balanced, shuffled index sets, carved in the order of `asks`; a size of None takes the rest.

    Carving test (then valid) first keeps the test set unchanged when only the training size changes.
    """
    check_total(asks, len(labels), source)
    takes_rest = any(n is None for _, n in asks)
    by_class = [np.flatnonzero(labels == c) for c in range(NUM_CLASSES)]
    shares = {name: (None if n is None else _per_class(n)) for name, n in asks}
    picked: dict[str, list[np.ndarray]] = {name: [] for name, _ in asks}
    for c, members in enumerate(by_class):
        fixed = sum(int(s[c]) for s in shares.values() if s is not None)
        if fixed > len(members) or (takes_rest and fixed >= len(members)):
            raise DataError(
                f"{_asked_text(asks)} need {fixed:,}{'+' if takes_rest else ''} images of letter {LETTERS[c]} "
                f"from {source}, which holds {len(members):,} readable: splits are class-balanced, so each "
                "letter must hold a tenth of the images asked; lower the sizes"
            )
        order = rng.permutation(members)
        at = 0
        for name, _ in asks:
            n = len(order) - at if shares[name] is None else int(shares[name][c])
            picked[name].append(order[at : at + n])
            at += n
    return {name: rng.permutation(np.concatenate(parts)) for name, parts in picked.items()}


@dataclass
class Splits:
    """train/valid/test as uint8 pixels and int64 labels, plus where each came from."""

    data: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (uint8 (N, 28, 28), int64 (N,))
    drawn_from: dict[str, str]  # split -> folder name
    source: str  # "notMNIST_large + notMNIST_small", "notMNIST_small only" or "notMNIST_large only"
    source_note: str  # one sentence for the printout and the summary


def split_letters(
    large: LetterFolder | None,
    small: LetterFolder | None,
    sizes: dict[str, int | None],
    seed: int,
) -> Splits:
    """The study's split when both folders are there; otherwise all three splits from the one present."""
    # One generator per folder, so adding notMNIST_large never changes how notMNIST_small is drawn.
    seeds = np.random.SeedSequence(seed).spawn(2)
    if large is not None and small is not None:
        idx_l = carve_splits(large.labels, [("valid", sizes["valid"]), ("train", sizes["train"])],
                             np.random.default_rng(seeds[0]), LARGE)
        idx_s = carve_splits(small.labels, [("test", sizes["test"])], np.random.default_rng(seeds[1]), SMALL)
        data = {
            "train": (large.images[idx_l["train"]], large.labels[idx_l["train"]]),
            "valid": (large.images[idx_l["valid"]], large.labels[idx_l["valid"]]),
            "test": (small.images[idx_s["test"]], small.labels[idx_s["test"]]),
        }
        return Splits(data, {"train": LARGE, "valid": LARGE, "test": SMALL}, f"{LARGE} + {SMALL}",
                      f"the study's split: train and valid from {LARGE} ({len(large.labels):,} readable), "
                      f"test from {SMALL} ({len(small.labels):,} readable)")
    only = large if large is not None else small
    assert only is not None  # find_sources guarantees one folder; not user input
    other = SMALL if only.name == LARGE else LARGE
    idx = carve_splits(only.labels, [("test", sizes["test"]), ("valid", sizes["valid"]), ("train", sizes["train"])],
                       np.random.default_rng(seeds[1] if only.name == SMALL else seeds[0]), only.name)
    data = {name: (only.images[idx[name]], only.labels[idx[name]]) for name in SPLITS}
    return Splits(data, {name: only.name for name in SPLITS}, f"{only.name} only",
                  f"{other} not found, so train, valid and test are all split from {only.name} "
                  f"({len(only.labels):,} readable images)" + (
                      f", not the study's 200,000 / 10,000 from {LARGE}" if only.name == SMALL else ""))


# ------------------------------------------------------------------------------------------- duplicates


def pixel_hashes(images: np.ndarray) -> list[bytes]:
    """A 16-byte digest of each image's raw pixels: equal digests mean identical images."""
    flat = np.ascontiguousarray(images).reshape(len(images), -1)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def duplicate_report(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Exact duplicates: valid/test images whose pixels occur in an earlier split, and repeats within each.

    `train_valid` counts valid images also in train; `train_test` and `valid_test` count test images also
    in train / valid; `test_in_train_or_valid` is what --dedupe drops from test (an image may be in both).
    """
    h = {name: pixel_hashes(data[name][0]) for name in SPLITS}
    s = {name: set(v) for name, v in h.items()}
    return {
        "train_valid": sum(x in s["train"] for x in h["valid"]),
        "train_test": sum(x in s["train"] for x in h["test"]),
        "valid_test": sum(x in s["valid"] for x in h["test"]),
        "test_in_train_or_valid": sum(x in s["train"] or x in s["valid"] for x in h["test"]),
        "within": {name: len(h[name]) - len(s[name]) for name in SPLITS},
    }


def drop_cross_duplicates(
    data: dict[str, tuple[np.ndarray, np.ndarray]],
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, int]]:
    """Remove from valid the images in train, and from test those in train or valid; (new data, removed)."""
    h = {name: pixel_hashes(data[name][0]) for name in SPLITS}
    train = set(h["train"])
    earlier = train | set(h["valid"])
    keep_valid = np.array([x not in train for x in h["valid"]], dtype=bool)
    keep_test = np.array([x not in earlier for x in h["test"]], dtype=bool)
    out = dict(data)
    out["valid"] = (data["valid"][0][keep_valid], data["valid"][1][keep_valid])
    out["test"] = (data["test"][0][keep_test], data["test"][1][keep_test])
    removed = {"valid": int((~keep_valid).sum()), "test": int((~keep_test).sum())}
    for name in ("valid", "test"):
        if len(out[name][1]) == 0:
            raise DataError(f"--dedupe removed every {name} image ({removed[name]:,}): they all occur in an earlier split")
    return out, removed


# ----------------------------------------------------------------------------------------- HDF5 storage


def normalise(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 (N, 28, 28, 1), as the study: (pixel - 255/2) / 255."""
    x = (pixels.astype(np.float32) - PIXEL_DEPTH / 2) / PIXEL_DEPTH
    return x.reshape(*pixels.shape[:3], 1)


def pixel_stats(pixels: np.ndarray) -> tuple[float, float]:
    """Mean and std of the normalised images, computed from uint8 in float64 (no float copy of the split)."""
    if pixels.size == 0:
        return float("nan"), float("nan")
    total = 0.0
    total_sq = 0.0
    flat = pixels.reshape(len(pixels), -1)
    for i in range(0, len(flat), WRITE_ROWS):
        block = flat[i : i + WRITE_ROWS].astype(np.float64)
        total += block.sum()
        total_sq += np.square(block).sum()
    n = pixels.size
    mean = total / n
    var = max(total_sq / n - mean * mean, 0.0)
    return (mean - PIXEL_DEPTH / 2) / PIXEL_DEPTH, float(np.sqrt(var)) / PIXEL_DEPTH


def write_notmnist_h5(
    path: Path, data: dict[str, tuple[np.ndarray, np.ndarray]], attrs: dict[str, Any]
) -> None:
    """Normalise and write train/valid/test to `path` (temporary name, renamed when complete)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["image_size"] = IMAGE_SIZE
        f.attrs["normalisation"] = NORMALISATION
        f.attrs["classes"] = LETTERS
        for key, value in attrs.items():
            f.attrs[key] = value
        for name in SPLITS:
            pixels, labels = data[name]
            g = f.create_group(name)
            images = g.create_dataset("images", shape=(len(pixels), IMAGE_SIZE, IMAGE_SIZE, 1), dtype="float32")
            for i in range(0, len(pixels), WRITE_ROWS):
                images[i : i + WRITE_ROWS] = normalise(pixels[i : i + WRITE_ROWS])
            g.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))


def load_notmnist(
    path: Path, *, splits: Sequence[str] = SPLITS, limit: int | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (float32 images (N, 28, 28, 1), int64 labels (N,))} from preprocess_notmnist.py's file.

    `limit` reads only the first `limit` images of each split (they are already shuffled).
    Raises DataError for a missing, corrupt, stale (other format_version) or malformed file.
    """
    path = Path(path)
    hint = "run preprocess_notmnist.py to (re)build it"
    if not path.is_file():
        raise DataError(f"notMNIST file {path} not found: expected the HDF5 written by preprocess_notmnist.py; {hint}")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise DataError(f"unknown notMNIST split(s) {unknown}: expected some of {list(SPLITS)}")
    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("format_version")
            if version is None or int(version) != FORMAT_VERSION:
                raise DataError(
                    f"{path} is stale: format_version {version}, this code reads {FORMAT_VERSION}; {hint}"
                )
            out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for name in splits:
                if name not in f or "images" not in f[name] or "labels" not in f[name]:
                    raise DataError(f"{path} has no {name}/images and {name}/labels: the file is incomplete; {hint}")
                images, labels = f[name]["images"], f[name]["labels"]
                if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 1) or labels.shape != images.shape[:1]:
                    raise DataError(
                        f"{path}: {name} holds images {images.shape} and labels {labels.shape}, expected "
                        f"(N, {IMAGE_SIZE}, {IMAGE_SIZE}, 1) and (N,); {hint}"
                    )
                n = images.shape[0] if limit is None else min(int(limit), images.shape[0])
                x = np.asarray(images[:n], dtype=np.float32)
                y = np.asarray(labels[:n], dtype=np.int64)
                if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
                    raise DataError(f"{path}: {name} labels run {y.min()}..{y.max()}, expected 0..{NUM_CLASSES - 1}; {hint}")
                out[name] = (x, y)
            return out
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        # h5py reports a truncated or non-HDF5 file as OSError ("file signature not found", ...).
        raise DataError(f"{path} is not a readable notMNIST HDF5 file ({' '.join(str(exc).split())}); {hint}") from exc


# ------------------------------------------------------------------------------------------- the step


def _class_counts(labels: np.ndarray) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=NUM_CLASSES)
    return {LETTERS[i]: int(counts[i]) for i in range(NUM_CLASSES)}


def _folder_summary(folder: LetterFolder) -> dict[str, Any]:
    return {
        "path": str(folder.path),
        "files": folder.files,
        "readable": int(len(folder.labels)),
        "skipped_total": folder.skipped_total,
        "skipped": folder.skipped,
        "skipped_examples": folder.skipped_examples,
        "class_counts": folder.class_counts(),
    }


def _splits_summary(data: dict[str, tuple[np.ndarray, np.ndarray]], drawn_from: dict[str, str]) -> dict[str, Any]:
    out = {}
    for name in SPLITS:
        pixels, labels = data[name]
        mean, std = pixel_stats(pixels)
        out[name] = {
            "images": int(len(labels)),
            "shape": [IMAGE_SIZE, IMAGE_SIZE, 1],
            "mean": round(mean, 6),
            "std": round(std, 6),
            "class_counts": _class_counts(labels),
            "drawn_from": drawn_from[name],
        }
    return out


def preprocess_notmnist(settings: NotMnistSettings = NotMnistSettings()) -> dict[str, Any]:
    """Read, split, report duplicates (optionally drop them), write the HDF5 file and the summary JSON."""
    started = time.perf_counter()
    large_dir, small_dir = find_sources(settings.data_dir)
    sizes = resolve_sizes(large_dir is not None, small_dir is not None,
                          settings.train_size, settings.valid_size, settings.test_size)
    # Check sizes against the file counts before the (long) read; the readable counts are checked again after.
    for folder_dir, asks in _asks_per_folder(large_dir, small_dir, sizes):
        _, labels = list_letter_files(folder_dir)
        check_total(asks, len(labels), folder_dir.name)
    workers = max(1, int(settings.workers))
    large = read_letter_folder(large_dir, workers, settings.progress) if large_dir else None
    small = read_letter_folder(small_dir, workers, settings.progress) if small_dir else None
    splits = split_letters(large, small, sizes, settings.seed)
    sizes = {name: int(len(splits.data[name][1])) for name in SPLITS}  # "the rest" becomes a number
    duplicates = duplicate_report(splits.data)
    data = splits.data
    removed = {"valid": 0, "test": 0}
    after = None
    if settings.dedupe:
        data, removed = drop_cross_duplicates(data)
        after = duplicate_report(data)
    config = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
        "resolved_sizes": sizes,
    }
    write_notmnist_h5(settings.output, data, {
        "source": splits.source,
        "seed": settings.seed,
        "created_by": f"preprocess_notmnist.py (housenum {__version__})",
        "config": json.dumps(config, sort_keys=True),
    })
    summary: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "source": splits.source,
        "source_note": splits.source_note,
        "output": str(settings.output),
        "seed": settings.seed,
        "normalisation": NORMALISATION,
        "sizes_asked": {"train": settings.train_size, "valid": settings.valid_size, "test": settings.test_size},
        "sizes_drawn": sizes,  # before --dedupe; "splits" holds the final counts
        "splits": _splits_summary(data, splits.drawn_from),
        "folders": {f.name: _folder_summary(f) for f in (large, small) if f is not None},
        "duplicates": duplicates,
        "dedupe": {"enabled": settings.dedupe, "removed": removed, "duplicates_after": after},
        "config": config,
    }
    summary["seconds"] = round(time.perf_counter() - started, 2)
    summary["summary_path"] = str(Path(settings.results_dir) / "notmnist_summary.json")
    write_json(Path(summary["summary_path"]), summary, sort_keys=False)
    return summary


def _asks_per_folder(large_dir: Path | None, small_dir: Path | None, sizes: dict[str, int | None]):
    if large_dir is not None and small_dir is not None:
        return [(large_dir, [("valid", sizes["valid"]), ("train", sizes["train"])]), (small_dir, [("test", sizes["test"])])]
    only = large_dir if large_dir is not None else small_dir
    return [(only, [("test", sizes["test"]), ("valid", sizes["valid"]), ("train", sizes["train"])])]




# ------------------------------------------------------------------------------------------- printing


def format_summary(summary: dict[str, Any]) -> str:
    """The study's summary table: one row per split, then skipped files and duplicates."""
    lines = [f"source: {summary['source']} - {summary['source_note']}"]
    head = f"{'split':<6} {'from':<15} {'images':>8} {'shape':>9} {'mean':>8} {'std':>7}  " + " ".join(
        f"{c:>6}" for c in LETTERS)
    lines.append(head)
    for name in SPLITS:
        s = summary["splits"][name]
        shape = "x".join(str(d) for d in s["shape"])
        lines.append(
            f"{name:<6} {s['drawn_from']:<15} {s['images']:>8,} {shape:>9} {s['mean']:>8.4f} {s['std']:>7.4f}  "
            + " ".join(f"{s['class_counts'][c]:>6,}" for c in LETTERS)
        )
    lines.append(f"normalisation: {summary['normalisation']}, seed {summary['seed']}")
    for name, f in summary["folders"].items():
        if f["skipped_total"] == 0:
            lines.append(f"skipped files in {name}: none ({f['readable']:,} of {f['files']:,} PNGs read)")
        else:
            per = "; ".join(f"{c}: " + ", ".join(f"{n} {r}" for r, n in reasons.items())
                            for c, reasons in f["skipped"].items())
            lines.append(f"skipped files in {name}: {f['skipped_total']:,} of {f['files']:,} ({per})")
    d = summary["duplicates"]
    w = d["within"]
    lines.append(
        f"exact duplicates (same pixels): valid in train {d['train_valid']:,}, test in train {d['train_test']:,}, "
        f"test in valid {d['valid_test']:,}; repeats within train {w['train']:,}, valid {w['valid']:,}, test {w['test']:,}"
    )
    dd = summary["dedupe"]
    if dd["enabled"]:
        lines.append(f"--dedupe removed {dd['removed']['valid']:,} valid and {dd['removed']['test']:,} test images "
                     "found in an earlier split")
    elif d["train_valid"] or d["test_in_train_or_valid"]:
        lines.append(f"not deduplicated: --dedupe would remove {d['train_valid']:,} valid and "
                     f"{d['test_in_train_or_valid']:,} test images")
    lines.append(f"wrote {summary['output']} and {summary['summary_path']} in {summary['seconds']:.1f} s")
    return "\n".join(lines)

#!/usr/bin/env python3
"""This project's reader side by side with what users would pick instead, on the real SVHN photos we have.

The mirror holds ten real SVHN photos (test/1-3, train/1-4, extra/1-3). Each is read twice by every
engine: cropped around its digit boxes exactly as training crops (union box + 30 %), and whole. A hit is
a reading whose digits equal the true number exactly. Engines:

  ours              this project's reader (--model; default: predict_real_images.py's, the shipped one
                    unless a reader of real SVHN is under results/)
  tesseract-psm7    Tesseract CLI, digits only, one text line        (apt-get install tesseract-ocr)
  tesseract-psm8    Tesseract CLI, digits only, one word
  rapidocr-rec      RapidOCR, recogniser only, on the given image     (pip install rapidocr onnxruntime)
  rapidocr-full     RapidOCR, full pipeline (detection + orientation + recognition)

An engine that is not installed is reported as skipped. Every engine reads one photo per call, as a user
with one photo would; CPU and wall time are per photo, averaged over all readings after one warm-up
reading. CPU time is this process's (all threads) plus that of finished child processes (the Tesseract
CLI). Figures only; asserts nothing. Ten photos are far too few for an accuracy figure.

  .venv/bin/python bench/compare_readers.py --model results/improved_synthetic
  .venv/bin/python bench/compare_readers.py --engines ours --verbose           # what our model reads
  .venv-bench/bin/python bench/compare_readers.py --verbose --json results/compare_readers.json
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum.cli import make_parser, run  # noqa: E402
from housenum.errors import DataError, HousenumError  # noqa: E402

SPLITS = ("test", "train", "extra")
INSTALL_HINT = "see bench/README.md"


# ------------------------------------------------------------------------------------------- the photos
@dataclass
class Photo:
    name: str  # "test/1.png"
    truth: str  # the true number's digits, e.g. "1905"
    whole: Image.Image
    crop: Image.Image  # around the digit boxes, grown as training crops

    @property
    def size(self) -> str:
        return f"{self.whole.width}x{self.whole.height}"


def unpack_mirror(mirror: Path | str, data_dir: Path | str) -> Path:
    """Unpack the mirror's SVHN archives through step 1 (as `run_all.py --mirror` does); the svhn/ folder."""
    from housenum.download import fetch, svhn_dir

    fetch(["svhn"], data_dir, mirror=mirror, progress=False)
    return svhn_dir(data_dir)


def truth_of(boxes: np.ndarray) -> str:
    """The true number of a record's boxes (label 10 is digit 0)."""
    from housenum.metrics import labels_to_text
    from housenum.preprocess import label_row

    row = label_row(boxes[:, 0], len(boxes))
    if row is None:
        raise DataError(f"labels {boxes[:, 0].tolist()} are not digits 1..10")
    return labels_to_text(row[None])[0]


def crop_box(boxes: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """The training crop: the union of the digit boxes grown by the training margin (the one place the
    crop is made here)."""
    from housenum.config import DataConfig
    from housenum.photo import union_box

    box = union_box(boxes, width, height, DataConfig().margin)
    if box is None:
        raise DataError(f"the digit boxes lie outside the {width}x{height} photo")
    return box


def real_photos(svhn_root: Path | str) -> list[Photo]:
    """Every photo present in an unpacked SVHN tree (svhn/{test,train,extra}/), with its truth and crop.
    Records whose image is absent (almost all, in the mirror) are passed over."""
    from housenum.digitstruct import read_digitstruct

    photos = []
    for split in SPLITS:
        folder = Path(svhn_root) / split
        pngs = sorted(folder.glob("*.png"), key=lambda p: int(p.stem)) if folder.is_dir() else []
        if not pngs:
            continue
        ds = read_digitstruct(folder / "digitStruct.mat")
        index = {n: i for i, n in enumerate(ds.names)}
        for png in pngs:
            if png.name not in index:
                raise DataError(f"{png} has no record in {folder / 'digitStruct.mat'}")
            _, boxes = ds.record(index[png.name])
            with Image.open(png) as im:
                whole = im.convert("RGB")
            photos.append(Photo(f"{split}/{png.name}", truth_of(boxes), whole,
                                whole.crop(crop_box(boxes, whole.width, whole.height))))
    return photos


# ------------------------------------------------------------------------------------------------ rules
def digits_only(text: str | None) -> str:
    return re.sub(r"[^0-9]", "", text or "")


def is_hit(reading: str | None, truth: str) -> bool:
    """The digits read equal the true number exactly. None ("no number found") is a miss unless there is
    no number."""
    return (reading or "") == truth


# ------------------------------------------------------------------------------------------------ engines
class Skipped(Exception):
    """An engine that cannot run here; the message says why, on one line."""


Read = Callable[[Image.Image], "str | None"]


@dataclass
class Engine:
    name: str
    load: Callable[[], tuple[Read, str]]  # -> (read one photo, version text); raises Skipped


def default_model(results_dir: Path | str) -> Path:
    """The model `ours` reads with when --model is not given: the one `predict_real_images.py` reads with
    (`find_model`: the newest reader of real SVHN under results_dir, else the shipped one)."""
    from housenum.predict import find_model

    return find_model(results_dir)


@functools.lru_cache(maxsize=None)
def _reader(model_path: str, finder_path: str | None):
    from housenum.finder import Finder
    from housenum.predict import PhotoReader, Reader

    return PhotoReader(Reader(model_path), Finder(finder_path) if finder_path else None)


def read_ours(model_path: Path | str, images: list[Image.Image], finder_path: Path | str | None = None) -> list[str | None]:
    """This project's readings of whole PIL images, as predict_real_images.py reads photo files (finder,
    reader, abstain rule): THE adapter between this bench and our reader (models are loaded on the first
    call and kept). None is "no number found", a miss unless there is no number."""
    reader = _reader(str(model_path), None if finder_path is None else str(finder_path))
    return [r.text for r in reader.read_images([im.convert("L") for im in images])]


def read_real_ours(model_path: Path | str, photos: list[Photo], finder_path: Path | str | None) -> dict:
    """Our reader on the real photos, cropped and whole: hits and readings, as the benches record them."""
    out = {}
    for kind in ("crop", "whole"):
        readings = read_ours(model_path, [getattr(ph, kind) for ph in photos], finder_path)
        out[f"real_{kind}_hits"] = sum(is_hit(r, ph.truth) for r, ph in zip(readings, photos))
        out[f"{kind}_readings"] = readings
    return out


def ours(model: Path | str | None, results_dir: Path | str, finder: Path | str | None = None) -> Engine:
    def load():
        from housenum.predict import find_finder

        try:
            path = Path(model) if model is not None else default_model(results_dir)
        except HousenumError as exc:
            raise Skipped(f"ours: {exc}") from None
        finder_path = finder if finder is not None else find_finder(results_dir)
        reader = _reader(str(path), None if finder_path is None else str(finder_path))
        import tensorflow as tf

        version = f"{reader.describe()}; TensorFlow {tf.__version__}"
        return (lambda im: read_ours(path, [im], finder_path)[0]), version

    return Engine("ours", load)


def tesseract(psm: int, exe: str = "tesseract") -> Engine:
    def load():
        path = shutil.which(exe)
        if path is None:
            raise Skipped(f"tesseract-psm{psm} not installed ({INSTALL_HINT})")
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        version = (out.stdout or out.stderr).splitlines()[0].strip()

        def read(im: Image.Image) -> str:
            buf = io.BytesIO()
            im.save(buf, "PNG")
            done = subprocess.run(
                [path, "stdin", "stdout", "--psm", str(psm), "-c", "tessedit_char_whitelist=0123456789"],
                input=buf.getvalue(), capture_output=True, timeout=120)
            if done.returncode != 0:
                raise HousenumError(f"tesseract failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
            return digits_only(done.stdout.decode(errors="replace"))

        return read, f"{version}, --psm {psm}, digits whitelist"

    return Engine(f"tesseract-psm{psm}", load)


@functools.lru_cache(maxsize=None)
def _rapidocr():
    """One RapidOCR engine for both modes. Its recogniser is PP-OCRv6 where the installed version offers
    it, in the size its wheel ships (small), so nothing has to be downloaded; otherwise its default."""
    from importlib.metadata import version

    from rapidocr import ModelType, OCRVersion, RapidOCR

    params = {"Global.log_level": "error"}  # "no text detected" is a reading here, not a warning
    if hasattr(OCRVersion, "PPOCRV6"):
        params.update({"Rec.ocr_version": OCRVersion.PPOCRV6, "Rec.model_type": ModelType.SMALL})
    engine = RapidOCR(params=params)
    models = "; ".join(f"{part.lower()} " + " ".join(str(getattr(v, "value", v)) for v in
                                                    (c.ocr_version, c.model_type, c.lang_type))
                       for part in ("Det", "Cls", "Rec") for c in [engine.cfg[part]])
    return engine, f"rapidocr {version('rapidocr')}, onnxruntime {version('onnxruntime')}; {models}"


def rapidocr(full: bool) -> Engine:
    name = "rapidocr-full" if full else "rapidocr-rec"

    def load():
        try:
            import rapidocr  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            raise Skipped(f"{name} not installed ({INSTALL_HINT})") from None
        try:
            engine, version = _rapidocr()
        except Exception as exc:  # e.g. a model file it would have to download: no internet here
            raise Skipped(f"{name}: cannot load its models ({' '.join(str(exc).split())[:200]})") from None

        def read(im: Image.Image) -> str:
            res = engine(im, use_det=full, use_cls=full, use_rec=True)
            return digits_only("".join(res.txts or ()))

        return read, version

    return Engine(name, load)


ENGINE_NAMES = ("ours", "tesseract-psm7", "tesseract-psm8", "rapidocr-rec", "rapidocr-full")


def make_engines(names: Sequence[str], model, results_dir, finder=None) -> list[Engine]:
    table = {
        "ours": lambda: ours(model, results_dir, finder),
        "tesseract-psm7": lambda: tesseract(7),
        "tesseract-psm8": lambda: tesseract(8),
        "rapidocr-rec": lambda: rapidocr(False),
        "rapidocr-full": lambda: rapidocr(True),
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise HousenumError(f"--engines: unknown {', '.join(unknown)}; expected some of {', '.join(ENGINE_NAMES)}")
    return [table[n]() for n in names]


# ------------------------------------------------------------------------------------------- measuring
def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished, waited-for children."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


@dataclass
class Row:
    engine: str
    version: str = ""
    skipped: str | None = None  # why the engine did not run
    photos: int = 0
    crop_hits: int = 0
    whole_hits: int = 0
    cpu_ms: float = 0.0  # per photo, over crops and whole photos together
    wall_ms: float = 0.0
    cpu_ms_crop: float = 0.0
    cpu_ms_whole: float = 0.0
    crop_readings: list = field(default_factory=list)
    whole_readings: list = field(default_factory=list)


def measure(engine: Engine, photos: list[Photo]) -> Row:
    try:
        read, version = engine.load()  # model loading stays outside the timed part
    except Skipped as exc:
        return Row(engine.name, skipped=str(exc))
    read(photos[0].crop)  # warm-up: lazy initialisation and tracing are not what a photo costs
    row = Row(engine.name, version, photos=len(photos))
    cpu_total = wall_total = 0.0
    for kind in ("crop", "whole"):
        images = [getattr(p, kind) for p in photos]
        c0, w0 = cpu_seconds(), time.perf_counter()
        readings = [read(im) for im in images]
        cpu, wall = cpu_seconds() - c0, time.perf_counter() - w0
        cpu_total, wall_total = cpu_total + cpu, wall_total + wall
        setattr(row, f"{kind}_readings", readings)
        setattr(row, f"{kind}_hits", sum(is_hit(r, p.truth) for r, p in zip(readings, photos)))
        setattr(row, f"cpu_ms_{kind}", 1000 * cpu / len(images))
    row.cpu_ms = 1000 * cpu_total / (2 * len(photos))
    row.wall_ms = 1000 * wall_total / (2 * len(photos))
    return row


# --------------------------------------------------------------------------------------------- reporting
def format_table(rows: list[Row]) -> str:
    """The comparison table, then one line per skipped engine."""
    ran = [r for r in rows if r.skipped is None]
    lines = []
    if ran:
        n = ran[0].photos
        lines.append(f"{'engine':<16} {'crops':>7} {'whole':>7} {'CPU ms/photo':>13} {'wall ms/photo':>14}")
        for r in ran:
            lines.append(f"{r.engine:<16} {f'{r.crop_hits}/{n}':>7} {f'{r.whole_hits}/{n}':>7} "
                         f"{r.cpu_ms:>13.1f} {r.wall_ms:>14.1f}")
    lines += [f"skipped: {r.skipped}" for r in rows if r.skipped is not None]
    return "\n".join(lines)


def format_readings(rows: list[Row], photos: list[Photo]) -> str:
    """Per photo: the truth, then each engine's reading of the crop / the whole photo (* marks a hit)."""
    ran = [r for r in rows if r.skipped is None]

    def cell(reading, truth):
        return f"{reading or '-'}{'*' if is_hit(reading, truth) else ''}"

    head = f"{'photo':<13} {'size':>9} {'true':>6}" + "".join(f" {r.engine:>19}" for r in ran)
    lines = [head, f"{'':<30}" + "".join(f" {'crop / whole':>19}" for _ in ran)]
    for i, p in enumerate(photos):
        cells = "".join(f" {cell(r.crop_readings[i], p.truth) + ' / ' + cell(r.whole_readings[i], p.truth):>19}"
                        for r in ran)
        lines.append(f"{p.name:<13} {p.size:>9} {p.truth:>6}{cells}")
    return "\n".join(lines)


def conditions() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{cpu}, {os.cpu_count()} CPUs, {platform.system()}",
            "load_average": [round(x, 2) for x in load] if load else None,
            "python": platform.python_version()}


def parse_args(argv=None):
    p = make_parser(__doc__)
    p.add_argument("--mirror", default=os.environ.get("HOUSENUM_MIRROR", str(REPO.parent / "shared" / "data")),
                   help="the real-data mirror (a folder holding the SVHN archives, or their svhn/ folder)")
    p.add_argument("--data-dir", default=None,
                   help="where to unpack the mirror's SVHN archives (default: a temporary folder); a folder "
                        "of its own: they replace any SVHN data unpacked there")
    p.add_argument("--model", default=None,
                   help="our reader: run folder or model.keras (default: as predict_real_images.py chooses)")
    p.add_argument("--finder", default=None, help="our finder folder (default: as predict_real_images.py chooses)")
    p.add_argument("--results-dir", default="results", help="where to look for the newest model")
    p.add_argument("--engines", default=",".join(ENGINE_NAMES), help="comma-separated engines to run")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the figures and readings here")
    p.add_argument("--verbose", action="store_true", help="print every photo's readings")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    engines = make_engines([n.strip() for n in args.engines.split(",") if n.strip()], args.model, args.results_dir,
                           args.finder)
    with tempfile.TemporaryDirectory() as tmp:
        photos = real_photos(unpack_mirror(args.mirror, args.data_dir or tmp))
    if not photos:
        raise DataError(f"no real SVHN photos in the archives of {args.mirror}")
    rows = [measure(e, photos) for e in engines]
    info = conditions()
    print(f"{len(photos)} real SVHN photos from {args.mirror}, each cropped and whole; {info['date']}; "
          f"{info['machine']}; load average {info['load_average']}")
    for r in rows:
        if r.skipped is None:
            print(f"  {r.engine}: {r.version}")
    print(format_table(rows))
    if args.verbose:
        print()
        print(format_readings(rows, photos))
    print(f"(hits: digits read == true number; {len(photos)} photos are far too few for an accuracy figure)")
    if args.json:
        from housenum.atomic import write_json

        write_json(args.json, {**info, "photos": [{"name": p.name, "size": p.size, "truth": p.truth} for p in photos],
                               "engines": [asdict(r) for r in rows]})
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])

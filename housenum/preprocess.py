"""Step 2, the SVHN batch pipeline: photos + digitStruct.mat -> the preprocessed HDF5 file, and the
study's summary table.

Every photo goes through `housenum.photo.image_to_input` (crop to the digits' union box, EXIF
orientation, grayscale, resize, per-image standardisation), the one function that training, evaluation
and prediction share. Labels become `[length, d1..d5]` with BLANK past the length (`label_row`).
Records that cannot become rows (missing or corrupt image, too many digits, odd label, empty box) are
skipped and counted. Work is done block by block in a worker pool and written to the HDF5 file of
`housenum.dataset` as it comes, so memory stays bounded whatever the data size.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from housenum.atomic import atomic_path
from housenum.config import BLANK, DataConfig
from housenum.dataset import FORMAT_VERSION
from housenum.errors import DataError
from housenum.photo import image_to_input, union_box

SPLITS = ("train", "test", "extra")
CHUNK_ROWS = 256  # rows per worker task and per HDF5 write: bounds memory, keeps both cores busy
SKIP_REASONS = ("missing_image", "corrupt_image", "too_many_digits", "odd_label", "empty_box")


# ------------------------------------------------------------------------------------------- labels
def label_row(digit_labels: np.ndarray, max_digits: int) -> np.ndarray | None:
    """`[length, d1..d_max]` with BLANK past the length; SVHN's label 10 becomes digit 0. None when a
    label is not a whole number in 1..10 (an "odd label")."""
    labels = np.asarray(digit_labels, dtype=np.float64)
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)) or np.any((labels < 1) | (labels > 10)):
        return None
    row = np.full(1 + max_digits, BLANK, np.int32)
    row[0] = len(labels)
    row[1:1 + len(labels)] = labels.astype(np.int32) % 10
    return row


# ------------------------------------------------------------------------------------- label statistics
@dataclass
class SplitSummary:
    """Label statistics of one split over ALL its records (images present or not), plus what became rows."""

    split: str
    rows: int = 0  # records in digitStruct.mat
    digits: int = 0
    length_counts: dict = field(default_factory=dict)  # "1".."5" and ">5"
    widest_box: dict = field(default_factory=dict)  # per image: widest digit box (px): mean, max, p98
    tallest_box: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # reason -> count
    kept: int = 0  # rows written (train and valid together for train)

    @property
    def average_digits(self) -> float:
        return self.digits / self.rows if self.rows else 0.0


def label_summary(split: str, ds, max_digits: int) -> tuple[SplitSummary, np.ndarray, np.ndarray]:
    lengths = ds.lengths()
    s = SplitSummary(split=split, rows=len(ds), digits=int(lengths.sum()))
    counts = np.bincount(np.minimum(lengths, max_digits + 1), minlength=max_digits + 2)
    s.length_counts = {str(k): int(counts[k]) for k in range(1, max_digits + 1)}
    s.length_counts[f">{max_digits}"] = int(counts[max_digits + 1])
    if len(ds):
        nonempty = lengths > 0
        starts = ds.offsets[:-1][nonempty]
        widest = np.maximum.reduceat(ds.boxes[:, 3], starts)
        tallest = np.maximum.reduceat(ds.boxes[:, 4], starts)
    else:
        widest = tallest = np.zeros(0)
    s.widest_box = _stats(widest)
    s.tallest_box = _stats(tallest)
    return s, widest, tallest


def _stats(v: np.ndarray) -> dict:
    if len(v) == 0:
        return {"mean": 0.0, "max": 0.0, "p98": 0.0}
    return {"mean": round(float(v.mean()), 2), "max": float(v.max()), "p98": float(np.percentile(v, 98))}


# ------------------------------------------------------------------------------------------- the work
def _process_chunk(task):
    """Worker: load, crop and normalise a block of records. Returns arrays plus per-record status."""
    folder, names, box_list, cfg = task
    size, width = cfg["image_size"], cfg["image_width"]
    images = np.zeros((len(names), size, width or size, 1), np.float32)
    status = []
    for i, (name, boxes) in enumerate(zip(names, box_list)):
        path = os.path.join(folder, name)
        try:
            with Image.open(path) as im:
                im.load()
                box = union_box(boxes, im.width, im.height, cfg["margin"])
                if box is None:
                    status.append("empty_box")
                    continue
                images[i] = image_to_input(im, box, size, width)
            status.append("ok")
        except FileNotFoundError:
            status.append("missing_image")
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
            status.append("corrupt_image")
    return images, status


@dataclass
class _Record:
    split: str
    name: str
    boxes: np.ndarray
    label: np.ndarray


class _Writer:
    """Appends rows to one split's resizable HDF5 datasets."""

    def __init__(self, h5, split: str, hw: tuple[int, int], width: int):
        g = h5.create_group(split)
        h, w = hw
        self.images = g.create_dataset("images", (0, h, w, 1), np.float32, maxshape=(None, h, w, 1),
                                       chunks=(min(CHUNK_ROWS, 64), h, w, 1))
        self.labels = g.create_dataset("labels", (0, width), np.int32, maxshape=(None, width), chunks=(1024, width))
        self.names = g.create_dataset("names", (0,), "S32", maxshape=(None,), chunks=(1024,))
        self.n = 0

    def append(self, images: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
        k = len(images)
        if not k:
            return
        for ds in (self.images, self.labels, self.names):
            ds.resize(self.n + k, axis=0)
        self.images[self.n:] = images
        self.labels[self.n:] = labels
        self.names[self.n:] = np.array([n.encode()[:32] for n in names], dtype="S32")
        self.n += k


def preprocess_svhn(svhn_root: Path | str, out_path: Path | str, cfg: DataConfig = DataConfig(),
                    workers: int = 2, progress: bool = True, log=print) -> dict:
    """Preprocess `svhn_root/{train,test,extra}` into `out_path`; returns the summary (also stored in the
    file's attributes). `test` and `train` are required; `extra` joins training when present."""
    svhn_root, out_path = Path(svhn_root), Path(out_path)
    present = {s: svhn_root / s / "digitStruct.mat" for s in SPLITS if (svhn_root / s / "digitStruct.mat").is_file()}
    for needed in ("train", "test"):
        if needed not in present:
            raise DataError(
                f"no {svhn_root / needed / 'digitStruct.mat'}: run download_and_extract.py first "
                f"(or point --data-dir at the folder holding svhn/{needed}/)"
            )
    splits = [s for s in SPLITS if s in present and (s != "extra" or cfg.use_extra)]
    # The worker pool starts first, while this process is small: workers forked after label parsing
    # would each inherit its freed-but-not-returned heap (about 1 GB each for train+extra).
    pool = None
    if workers > 1:
        pool = mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers)
    try:
        return _preprocess(svhn_root, out_path, cfg, present, splits, pool, progress, log)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _preprocess(svhn_root: Path, out_path: Path, cfg: DataConfig, present: dict[str, Path], splits: list[str],
                pool, progress: bool, log) -> dict:
    import h5py

    from housenum.digitstruct import read_digitstruct

    t0 = time.perf_counter()
    summaries: dict[str, SplitSummary] = {}
    widths, heights = {}, {}
    records: dict[str, list[_Record]] = {}
    for split in splits:
        ds = read_digitstruct(present[split])
        summaries[split], widths[split], heights[split] = label_summary(split, ds, cfg.max_digits)
        records[split] = _valid_records(split, ds, cfg, summaries[split])
    log(f"parsed labels of {', '.join(f'{s} ({summaries[s].rows:,})' for s in splits)} "
        f"in {time.perf_counter() - t0:.1f} s")

    valid_names = _choose_valid(records["train"], svhn_root / "train", cfg)
    width = 1 + cfg.max_digits
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        hw = (cfg.image_size, cfg.image_width or cfg.image_size)
        writers = {s: _Writer(h5, s, hw, width) for s in ("train", "valid", "test")}
        for split in splits:
            target = "test" if split == "test" else "train"
            for recs, images, status in _run(records[split], svhn_root / split, cfg, pool, progress, split):
                ok = [i for i, st in enumerate(status) if st == "ok"]
                for i, st in enumerate(status):
                    if st != "ok":
                        summaries[split].skipped[st] = summaries[split].skipped.get(st, 0) + 1
                summaries[split].kept += len(ok)
                if split == "train":
                    is_valid = np.array([recs[i].name in valid_names for i in ok], bool)
                    ok_arr = np.array(ok, int)
                    for dest, sel in (("valid", ok_arr[is_valid]), ("train", ok_arr[~is_valid])):
                        _append(writers[dest], recs, images, sel, split)
                else:
                    _append(writers[target], recs, images, np.array(ok, int), split)
        summary = _summary_dict(summaries, writers, cfg, svhn_root, present, time.perf_counter() - t0)
        h5.attrs["format_version"] = FORMAT_VERSION
        h5.attrs["image_size"] = cfg.image_size
        h5.attrs["config"] = json.dumps(asdict(cfg))
        h5.attrs["sources"] = json.dumps(_source_stamps(present))
        h5.attrs["summary"] = json.dumps(summary)
        h5.attrs["normalisation"] = "per-image standardisation (x - mean) / std"
    summary["histograms"] = {"widest": widths, "tallest": heights}
    return summary


def _valid_records(split: str, ds, cfg: DataConfig, summary: SplitSummary) -> list[_Record]:
    """Records that can become rows: >max_digits numbers and odd labels are counted and dropped here."""
    out = []
    for i in range(len(ds)):
        name, boxes = ds.record(i)
        if len(boxes) > cfg.max_digits:
            summary.skipped["too_many_digits"] = summary.skipped.get("too_many_digits", 0) + 1
            continue
        label = label_row(boxes[:, 0], cfg.max_digits) if len(boxes) else None
        if label is None:
            summary.skipped["odd_label"] = summary.skipped.get("odd_label", 0) + 1
            continue
        out.append(_Record(split, name, boxes, label))
    return out


def _choose_valid(train: list[_Record], folder: Path, cfg: DataConfig) -> set[str]:
    """Validation rows drawn from the train records whose image exists, by a seeded permutation."""
    available = [r.name for r in train if (folder / r.name).is_file()]
    n = int(round(cfg.valid_size * len(available))) if 0 < cfg.valid_size < 1 else int(cfg.valid_size)
    if n < 0 or (available and n >= len(available)):
        raise DataError(
            f"--valid-size {cfg.valid_size} asks for {n} validation rows but only {len(available)} train "
            f"images exist; pass a smaller count or a fraction such as 0.1"
        )
    order = np.random.default_rng(cfg.seed).permutation(len(available))
    return {available[i] for i in order[:n]}


def _run(records: list[_Record], folder: Path, cfg: DataConfig, pool, progress: bool,
         split: str) -> Iterator[tuple[list[_Record], np.ndarray, list[str]]]:
    """Yield (records, images, status) block by block, in order, from `pool` (or in this process)."""
    c = {"image_size": cfg.image_size, "image_width": cfg.image_width, "margin": cfg.margin}
    blocks = [records[i:i + CHUNK_ROWS] for i in range(0, len(records), CHUNK_ROWS)]

    def tasks():
        for blk in blocks:
            yield str(folder), [r.name for r in blk], [r.boxes for r in blk], c

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(records), desc=f"{split} images", unit="img", dynamic_ncols=True)
    try:
        if pool is not None and len(blocks) > 1:
            for blk, (images, status) in zip(blocks, pool.imap(_process_chunk, tasks())):
                if bar:
                    bar.update(len(blk))
                yield blk, images, status
        else:
            for blk, task in zip(blocks, tasks()):
                images, status = _process_chunk(task)
                if bar:
                    bar.update(len(blk))
                yield blk, images, status
    finally:
        if bar:
            bar.close()


def _append(writer: _Writer, recs: list[_Record], images: np.ndarray, sel: np.ndarray, split: str) -> None:
    if len(sel):
        writer.append(images[sel], np.stack([recs[i].label for i in sel]), [f"{split}/{recs[i].name}" for i in sel])


def _origins(root: Path, splits: Sequence[str]) -> dict[str, str]:
    """Where each split came from (download, mirror, synthetic), from step 1's extraction record."""
    out = {}
    for s in splits:
        marker = root / f".{s}.extracted.json"
        try:
            out[s] = json.loads(marker.read_text()).get("origin", "unknown")
        except (OSError, ValueError):
            out[s] = "unknown"
    return out


REAL_SVHN = "real SVHN"  # how the description of real data begins (a model's "trained on" says so)


def describe_origin(origins: dict[str, str]) -> str:
    kinds = set(origins.values())
    if kinds == {"synthetic"}:
        return "synthetic SVHN-format data"
    if kinds <= {"download", "mirror"}:
        return REAL_SVHN
    return "SVHN of mixed or unknown origin (" + ", ".join(f"{k}: {v}" for k, v in origins.items()) + ")"


def describe_folders(root: Path | str, splits: Sequence[str]) -> str:
    """What the SVHN-format folders root/<split> hold ("real SVHN", synthetic, mixed), from step 1's records."""
    return describe_origin(_origins(Path(root), list(splits)))


def _source_stamps(present: dict[str, Path]) -> dict:
    return {s: {"path": str(p.resolve()), "size": p.stat().st_size, "mtime": int(p.stat().st_mtime)}
            for s, p in present.items()}


def _summary_dict(summaries, writers, cfg, root, present, seconds) -> dict:
    origins = _origins(Path(root), list(summaries))
    return {
        "source": str(Path(root).resolve()),
        "origin": origins,
        "data": describe_origin(origins),
        "config": asdict(cfg),
        "splits": {s: {**asdict(v), "average_digits": round(v.average_digits, 4)} for s, v in summaries.items()},
        "output_rows": {s: w.n for s, w in writers.items()},
        "seconds": round(seconds, 2),
    }


# ------------------------------------------------------------------------------------------- the table
def format_table(summary: dict, max_digits: int = DataConfig.max_digits) -> str:
    """The study's table: rows, average digits and numbers of each length per split; box sizes; skips."""
    lens = [str(k) for k in range(1, max_digits + 1)] + [f">{max_digits}"]
    head = f"{'split':<6} {'rows':>8} {'avg digits':>10} " + " ".join(f"{'len ' + k:>7}" for k in lens)
    lines = [head, "-" * len(head)]
    for s, v in summary["splits"].items():
        lines.append(f"{s:<6} {v['rows']:>8,} {v['average_digits']:>10.2f} "
                     + " ".join(f"{v['length_counts'].get(k, 0):>7,}" for k in lens))
    lines.append("")
    lines.append(f"{'split':<6} {'widest box mean/max/p98':>26} {'tallest box mean/max/p98':>26}")
    for s, v in summary["splits"].items():
        w, t = v["widest_box"], v["tallest_box"]
        lines.append(f"{s:<6} {w['mean']:>10.1f} {w['max']:>7.0f} {w['p98']:>7.0f} "
                     f"{t['mean']:>10.1f} {t['max']:>7.0f} {t['p98']:>7.0f}")
    lines.append("")
    lines.append(f"{'split':<6} {'kept':>8} " + " ".join(f"{r:>16}" for r in SKIP_REASONS))
    for s, v in summary["splits"].items():
        lines.append(f"{s:<6} {v['kept']:>8,} " + " ".join(f"{v['skipped'].get(r, 0):>16,}" for r in SKIP_REASONS))
    rows = summary["output_rows"]
    lines.append("")
    lines.append(f"written: train {rows['train']:,}, valid {rows['valid']:,}, test {rows['test']:,} rows")
    return "\n".join(lines)

"""Dataset storage: the preprocessed arrays (`Data`) and the HDF5 file they live in.

Storage: one HDF5 file written through h5py (already a dependency): `train/`, `valid/`, `test/` groups
holding `images` float32 (N, S, S, 1) (or (N, S, W, 1) with `DataConfig.image_width`), `labels` int32
(N, 1 + max_digits) and `names`, plus the settings that made it (`config`: a `DataConfig`), the summary and the source files' sizes and times as
attributes. It loads in a fraction of a second with no pickle (pickles execute code on load and break
across Python versions), it can be written row block by row block (so memory stays bounded whatever
the data size), and `h5py` slices read only what is asked.

The data's settings travel with the data: `load_svhn` returns them from the file's own attributes, and
training records those, never defaults.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from housenum.config import DataConfig
from housenum.errors import DataError

FORMAT_VERSION = 1
SPLIT_NAMES = ("train", "valid", "test")


@dataclass
class Data:
    """In-memory arrays for training: images float32 (N, H, W, C); labels int32 (N, 1 + max_digits) for
    numbers or (N,) for letters. `description` says what the data is (real or synthetic, where from);
    `config` holds the settings that made it (read from the file, never assumed)."""

    train: tuple[np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    description: str = ""
    config: DataConfig = dataclasses.field(default_factory=DataConfig)
    source: str = ""  # the SVHN-format folder the rows were cut from (its test/ holds the whole test photos)

    @property
    def image_size(self) -> int:
        return int(self.train[0].shape[1])

    def limit_train(self, max_train: int) -> "Data":
        """Keep only the first `max_train` training rows (0 keeps all)."""
        if max_train < 0:
            raise DataError(f"--max-train must be >= 0, got {max_train}")
        if max_train:
            self.train = (self.train[0][:max_train], self.train[1][:max_train])
        return self


def data_config_from_attrs(attrs, path: Path) -> DataConfig:
    """The DataConfig stored in a preprocessed file's attributes (unknown keys are an error)."""
    from housenum.config import build_settings

    try:
        stored = json.loads(attrs["config"])
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path} does not record the settings that made it; run preprocess_svhn.py again") from exc
    return build_settings(DataConfig, stored)


def load_svhn(path: Path | str, check_sources: bool = True, splits=SPLIT_NAMES) -> Data:
    """The preprocessed arrays, with the settings that made them, and clear errors for a missing,
    foreign, stale or damaged file. `splits`: the splits read; the others come back with no rows (their
    shapes and the description are the file's)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no preprocessed data at {path}: run preprocess_svhn.py first")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path} is not a readable HDF5 file ({exc}); run preprocess_svhn.py again") from exc
    with h5:
        version = h5.attrs.get("format_version")
        if version != FORMAT_VERSION:
            raise DataError(
                f"{path} has format version {version}, this code reads {FORMAT_VERSION}: run preprocess_svhn.py again"
            )
        if check_sources:
            for split, stamp in json.loads(h5.attrs["sources"]).items():
                p = Path(stamp["path"])
                if p.is_file() and (p.stat().st_size != stamp["size"] or int(p.stat().st_mtime) != stamp["mtime"]):
                    raise DataError(
                        f"{path} is stale: {p} changed after it was made; run preprocess_svhn.py again"
                    )
        cfg = data_config_from_attrs(h5.attrs, path)
        try:
            stored = {s: (h5[s]["images"], h5[s]["labels"]) for s in SPLIT_NAMES}
            rows = {s: len(x) for s, (x, _) in stored.items()}
            shape = stored["train"][0].shape[1:3]
            parts = {s: (x[()], y[()]) if s in splits else (x[:0], y[:0]) for s, (x, y) in stored.items()}
        except KeyError as exc:
            raise DataError(f"{path} lacks {exc}; run preprocess_svhn.py again") from exc
        summary = json.loads(h5.attrs["summary"])
    if shape != (cfg.image_size, cfg.image_width or cfg.image_size):
        raise DataError(f"{path} says {cfg.image_size}px images (width {cfg.image_width or 'square'}) but holds "
                        f"{shape}; run preprocess_svhn.py again")
    desc = (f"{summary.get('data', 'SVHN')} from {summary['source']} "
            f"({', '.join(f'{s} {n:,}' for s, n in rows.items())} rows)")
    return Data(parts["train"], parts["valid"], parts["test"], description=desc, config=cfg,
                source=summary.get("source", ""))

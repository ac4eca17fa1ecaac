"""Read and write SVHN format-1 `digitStruct.mat` (MATLAB v7.3, i.e. HDF5 behind a 512-byte user block).

Layout, as MATLAB saves it (and as `write_digitstruct` writes it):

    /digitStruct/name   (N,1) object references -> (k,1) uint16 char arrays   "1.png"
    /digitStruct/bbox   (N,1) object references -> groups with fields height, label, left, top, width
    a field of a one-digit number is an inline (1,1) float64 dataset; for a longer number it is an
    (n,1) array of references to (1,1) float64 datasets in /#refs#.   Label 10 means digit 0.

Two readers give identical results:
- `method="reference"` is the per-element h5py parser everyone copies (`f[ref]` for every object). It is
  the correctness oracle, the benchmark baseline and the fallback of the fast reader.
- `method="fast"` reads the raw file through `np.memmap` and parses the HDF5 object headers of all
  objects at once with numpy (v1 object headers, compact/contiguous layouts, v1 B-tree groups). Anything
  it does not recognise falls back, per record, to the reference parser: it never guesses.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from housenum.errors import DataError

FIELDS = ("label", "left", "top", "width", "height")  # column order of DigitStruct.boxes
METHODS = ("fast", "reference")

# MATLAB saved the struct fields in this order (its MATLAB_fields attribute); HDF5 lists them sorted.
_MATLAB_FIELD_ORDER = ("height", "left", "top", "width", "label")
_USERBLOCK = 512  # MATLAB v7.3 files put the HDF5 superblock after a 512-byte text header
_HEADER_TEXT_BYTES = 116  # the header text is space-padded to 116 bytes, then subsys offset, version, 'IM'
_REF_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# Tiny datasets are stored inside their object header (compact) as MATLAB does; larger ones contiguous.
_COMPACT_MAX_BYTES = 4096


@dataclass(frozen=True)
class DigitStruct:
    """All records of one digitStruct.mat, flattened: record i owns boxes[offsets[i]:offsets[i+1]]."""

    names: list[str]  # N image file names, e.g. "1.png"
    offsets: np.ndarray  # int64 (N+1,): record i's digits are boxes[offsets[i]:offsets[i+1]]
    boxes: np.ndarray  # float64 (D, 5), columns FIELDS; label exactly as stored (10 means digit 0)

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.offsets.shape != (n + 1,) or self.offsets.dtype != np.int64:
            raise ValueError(f"offsets must be int64 of shape ({n + 1},), got {self.offsets.dtype} {self.offsets.shape}")
        if self.boxes.ndim != 2 or self.boxes.shape[1] != len(FIELDS) or self.boxes.dtype != np.float64:
            raise ValueError(f"boxes must be float64 of shape (D, {len(FIELDS)}), got {self.boxes.dtype} {self.boxes.shape}")
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.boxes) or np.any(np.diff(self.offsets) < 0):
            raise ValueError(f"offsets must rise from 0 to {len(self.boxes)} (the number of boxes)")

    def __len__(self) -> int:
        return len(self.names)

    def lengths(self) -> np.ndarray:
        """int64 (N,): number of digits of each record."""
        return np.diff(self.offsets)

    def record(self, i: int) -> tuple[str, np.ndarray]:
        """(image name, (n, 5) boxes in FIELDS order) of record i; negative i counts from the end."""
        n = len(self.names)
        if not -n <= i < n:
            raise IndexError(f"record {i} out of range for {n} records")
        i %= n
        return self.names[i], self.boxes[self.offsets[i] : self.offsets[i + 1]]


# --------------------------------------------------------------------------------------------- writing


def write_digitstruct(
    path: str | os.PathLike,
    names: Sequence[str],
    boxes: Sequence[np.ndarray],
    *,
    platform: str = "GLNXA64",
    created: str | None = None,
) -> None:
    """Write records in the official MATLAB v7.3 digitStruct.mat layout.

    `boxes[i]` is (n_i, 5) in FIELDS order (label, left, top, width, height), n_i >= 1. Labels are written
    as given, except that 0 is written as 10, SVHN's code for digit 0, so callers may pass either
    convention. `platform` and `created` (e.g. "Fri Aug 11 10:33:06 2017"; default: now) go into the
    MATLAB header text; with `created` fixed, the same input gives byte-identical files. The file is
    written under a temporary name in the same folder and renamed when complete.
    """
    path = Path(path)
    if len(names) != len(boxes):
        raise DataError(f"{path}: got {len(names)} names but {len(boxes)} box arrays; expected one per record")
    header = _matlab_header(path, platform, created)
    records = [_checked_record(path, i, name, b) for i, (name, b) in enumerate(zip(names, boxes))]

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write_hdf5(tmp, records)
        with open(tmp, "r+b") as fh:
            fh.write(header)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _matlab_header(path: Path, platform: str, created: str | None) -> bytes:
    if created is None:
        # English day/month names whatever the locale, as MATLAB writes them.
        t = time.localtime()
        days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
        created = f"{days[t.tm_wday]} {months[t.tm_mon - 1]} {t.tm_mday:02d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {t.tm_year}"
    text = f"MATLAB 7.3 MAT-file, Platform: {platform}, Created on: {created} HDF5 schema 1.00 ."
    if not text.isascii() or not text.isprintable() or len(text) > _HEADER_TEXT_BYTES:
        raise DataError(
            f"{path}: MATLAB header text must be printable ASCII of at most {_HEADER_TEXT_BYTES} bytes, "
            f"got {len(text)} characters from platform={platform!r}, created={created!r}"
        )
    # Bytes 116..123: subsystem data offset (none); 124..125: version 0x0200; 126..127: endian mark 'IM'.
    head = text.encode("ascii").ljust(_HEADER_TEXT_BYTES, b" ") + bytes(8) + b"\x00\x02IM"
    return head.ljust(_USERBLOCK, b"\x00")


def _checked_record(path: Path, i: int, name: str, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(name, str) or not name:
        raise DataError(f"{path}: record {i}: name must be a non-empty string, got {name!r}")
    codes = [ord(c) for c in name]
    if max(codes) > 0xFFFF:
        raise DataError(f"{path}: record {i}: name {name!r} has a character beyond U+FFFF; MATLAB chars are 16-bit")
    try:
        arr = np.array(b, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: record {i} ({name}): boxes must be numeric, got {type(b).__name__} ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != len(FIELDS) or arr.shape[0] < 1:
        raise DataError(
            f"{path}: record {i} ({name}): boxes must have shape (n, {len(FIELDS)}) with n >= 1 "
            f"(columns {', '.join(FIELDS)}), got shape {arr.shape}"
        )
    arr[arr[:, 0] == 0, 0] = 10  # SVHN stores digit 0 as label 10
    return np.array(codes, dtype=np.uint16).reshape(-1, 1), arr


def _ref_name(k: int) -> str:
    """Short unique names for /#refs# members, in MATLAB's style ('b', 'c', ..., '0b', ...)."""
    out = ""
    while True:
        k, r = divmod(k, len(_REF_ALPHABET))
        out += _REF_ALPHABET[r]
        if k == 0:
            return out


def _string_attr(obj: h5py.HLObject, name: str, value: str) -> None:
    """A scalar ASCII, null-terminated fixed-length string attribute, the type MATLAB writes."""
    raw = value.encode("ascii")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(raw))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    aid = h5py.h5a.create(obj.id, name.encode("ascii"), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    aid.write(np.array(raw, dtype=f"S{len(raw)}"), mtype=tid)


def _fields_attr(obj: h5py.HLObject, fields: Sequence[str]) -> None:
    """MATLAB_fields: the struct's field names as variable-length arrays of single characters."""
    dt = h5py.vlen_dtype(np.dtype("S1"))
    value = np.empty(len(fields), dtype=object)
    for j, field in enumerate(fields):
        value[j] = np.frombuffer(field.encode("ascii"), dtype="S1")
    obj.attrs.create("MATLAB_fields", value, dtype=dt)


def _dataset(group: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    if data.nbytes <= _COMPACT_MAX_BYTES:
        dcpl.set_layout(h5py.h5d.COMPACT)
    # No timestamps: the same input must give the same bytes.
    return group.create_dataset(name, data=data, track_times=False, dcpl=dcpl)


def _double(group: h5py.Group, name: str, value: float) -> h5py.Dataset:
    ds = _dataset(group, name, np.array([[value]], dtype=np.float64))
    _string_attr(ds, "MATLAB_class", "double")
    return ds


def _write_hdf5(tmp: Path, records: list[tuple[np.ndarray, np.ndarray]]) -> None:
    counter = iter(range(1, 1 << 62))
    with h5py.File(tmp, "w", libver="earliest", userblock_size=_USERBLOCK, track_order=False) as f:
        refs = f.create_group("#refs#")
        # MATLAB's placeholder for empty values, present in every file it saves with references.
        empty = _dataset(refs, "a", np.zeros(2, dtype=np.uint64))
        _string_attr(empty, "MATLAB_class", "canonical empty")
        empty.attrs.create("MATLAB_empty", np.uint8(1))
        top = f.create_group("digitStruct")
        _string_attr(top, "MATLAB_class", "struct")
        _fields_attr(top, ("name", "bbox"))

        name_refs, bbox_refs = [], []
        for codes, arr in records:
            name_ds = _dataset(refs, _ref_name(next(counter)), codes)
            _string_attr(name_ds, "MATLAB_class", "char")
            name_ds.attrs.create("MATLAB_int_decode", np.int32(2))
            name_refs.append(name_ds.ref)

            bbox = refs.create_group(_ref_name(next(counter)))
            _string_attr(bbox, "MATLAB_class", "struct")
            _fields_attr(bbox, _MATLAB_FIELD_ORDER)
            for field in _MATLAB_FIELD_ORDER:
                column = arr[:, FIELDS.index(field)]
                if len(column) == 1:
                    _double(bbox, field, column[0])
                else:
                    elem_refs = [_double(refs, _ref_name(next(counter)), v).ref for v in column]
                    _dataset(bbox, field, np.array(elem_refs, dtype=h5py.ref_dtype).reshape(-1, 1))
            bbox_refs.append(bbox.ref)

        _dataset(top, "name", np.array(name_refs, dtype=h5py.ref_dtype).reshape(-1, 1))
        _dataset(top, "bbox", np.array(bbox_refs, dtype=h5py.ref_dtype).reshape(-1, 1))

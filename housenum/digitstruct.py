"""Read and write SVHN format-1 `digitStruct.mat` (MATLAB v7.3, i.e. HDF5 behind a 512-byte user block).

Layout, as MATLAB saves it (and as `write_digitstruct` writes it):

    /digitStruct/name   (N,1) object references -> (k,1) uint16 char arrays   "1.png"
    /digitStruct/bbox   (N,1) object references -> groups with fields height, label, left, top, width
    a field of a one-digit number is an inline (1,1) float64 dataset; for a longer number it is an
    (n,1) array of references to (1,1) float64 datasets in /#refs#.   Label 10 means digit 0.

Two readers give identical results:
- `method="reference"` is the per-element h5py parser everyone copies (`f[ref]` for every object). It is
  the correctness oracle, the benchmark baseline and the fallback of the fast reader.
- `method="fast"` reads the raw file through `np.memmap` and parses the HDF5 object headers of a slice
  of records at once with numpy (v1 object headers, compact/contiguous layouts, v1 B-tree groups), slice
  after slice so that memory stays bounded on the largest files. Anything it does not recognise falls
  back, per record, to the reference parser: it never guesses.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from housenum.atomic import temporary_name
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
            raise ValueError(
                f"offsets must be int64 of shape ({n + 1},), got {self.offsets.dtype} {self.offsets.shape}"
            )
        if self.boxes.ndim != 2 or self.boxes.shape[1] != len(FIELDS) or self.boxes.dtype != np.float64:
            raise ValueError(
                f"boxes must be float64 of shape (D, {len(FIELDS)}), got {self.boxes.dtype} {self.boxes.shape}"
            )
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
    _matlab_header(path, platform, created)  # a bad header text is refused before anything is written
    records = [_checked_record(path, i, name, b) for i, (name, b) in enumerate(zip(names, boxes))]
    with DigitStructWriter(path, platform=platform, created=created) as writer:
        for codes, arr in records:
            writer._add_checked(codes, arr)


class DigitStructWriter:
    """`write_digitstruct` one record at a time, for records that are made one block after another: the
    synthetic generator adds each block of images as its workers finish it, so that the file's hundreds of
    thousands of tiny HDF5 objects (~0.1 ms each in HDF5 itself: about 10 minutes for 200,000 records) are
    made while the workers draw, not after them. The same records give the same bytes as
    `write_digitstruct`. Used as a context manager: leaving the block finishes the file and renames it into
    place; an exception removes it."""

    def __init__(self, path: str | os.PathLike, *, platform: str = "GLNXA64", created: str | None = None):
        self.path = Path(path)
        self._header = _matlab_header(self.path, platform, created)
        self._tmp = temporary_name(self.path)
        self._counter = iter(range(1, 1 << 62))
        self._names: list = []
        self._bboxes: list = []
        self._file = h5py.File(self._tmp, "w", libver="earliest", userblock_size=_USERBLOCK, track_order=False)
        try:
            f, w = self._file, _LowLevelWriter(self._file)
            self._w = w
            self._refs = h5py.h5g.create(f.id, b"#refs#")
            # MATLAB's placeholder for empty values, present in every file it saves with references.
            empty = w.dataset(self._refs, "a", np.zeros(2, dtype=np.uint64), h5py.h5t.STD_U64LE)
            w.string_attr(empty, "MATLAB_class", "canonical empty")
            w.number_attr(empty, "MATLAB_empty", np.uint8(1))
            self._top = h5py.h5g.create(f.id, b"digitStruct")
            w.string_attr(self._top, "MATLAB_class", "struct")
            w.fields_attr(self._top, ("name", "bbox"))
        except BaseException:
            self._abort()
            raise

    def add(self, name: str, boxes: np.ndarray) -> None:
        """One record: the image's name and its (n, 5) boxes in FIELDS order (label 0 or 10 for digit 0)."""
        self._add_checked(*_checked_record(self.path, len(self._names), name, boxes))

    def _add_checked(self, codes: np.ndarray, arr: np.ndarray) -> None:
        w, refs, counter = self._w, self._refs, self._counter
        name = w.dataset(refs, _ref_name(next(counter)), codes, h5py.h5t.STD_U16LE)
        w.string_attr(name, "MATLAB_class", "char")
        w.number_attr(name, "MATLAB_int_decode", np.int32(2))
        self._names.append(name)
        bbox = h5py.h5g.create(refs, _ref_name(next(counter)).encode("ascii"))
        w.string_attr(bbox, "MATLAB_class", "struct")
        w.fields_attr(bbox, _MATLAB_FIELD_ORDER)
        for field in _MATLAB_FIELD_ORDER:
            column = arr[:, FIELDS.index(field)]
            if len(column) == 1:
                w.double(bbox, field, column[0])
            else:
                w.refs(bbox, field, [w.double(refs, _ref_name(next(counter)), v) for v in column])
        self._bboxes.append(bbox)

    def close(self) -> Path:
        """Finish the file (its top-level references, the MATLAB header) and rename it into place."""
        try:
            self._w.refs(self._top, "name", self._names)
            self._w.refs(self._top, "bbox", self._bboxes)
            self._names = self._bboxes = []  # the object ids go before the file closes
            self._file.close()
            with open(self._tmp, "r+b") as fh:
                fh.write(self._header)
            os.replace(self._tmp, self.path)
        except BaseException:
            self._abort()
            raise
        return self.path

    def _abort(self) -> None:
        self._names = self._bboxes = []
        try:
            self._file.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "DigitStructWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def _matlab_header(path: Path, platform: str, created: str | None) -> bytes:
    if created is None:
        # English day/month names whatever the locale, as MATLAB writes them.
        t = time.localtime()
        days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
        clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        created = f"{days[t.tm_wday]} {months[t.tm_mon - 1]} {t.tm_mday:02d} {clock} {t.tm_year}"
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


class _LowLevelWriter:
    """Creates the objects through h5py's low-level API: the high-level wrappers cost more per object
    than HDF5 itself, and a digitStruct holds hundreds of thousands of tiny objects."""

    def __init__(self, f: h5py.File) -> None:
        self.scalar = h5py.h5s.create(h5py.h5s.SCALAR)
        self.one_by_one = h5py.h5s.create_simple((1, 1))
        self.compact = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self.contiguous = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self.compact.set_layout(h5py.h5d.COMPACT)
        for dcpl in (self.compact, self.contiguous):
            dcpl.set_obj_track_times(False)  # no timestamps: the same input must give the same bytes
        self.strings: dict[str, tuple[h5py.h5t.TypeID, np.ndarray]] = {}
        self.fields_type = h5py.h5t.py_create(h5py.vlen_dtype(np.dtype("S1")), logical=True)

    def dataset(self, loc: h5py.h5g.GroupID, name: str, data: np.ndarray, ftype: h5py.h5t.TypeID) -> h5py.h5d.DatasetID:
        space = self.one_by_one if data.shape == (1, 1) else h5py.h5s.create_simple(data.shape)
        dcpl = self.compact if data.nbytes <= _COMPACT_MAX_BYTES else self.contiguous
        dsid = h5py.h5d.create(loc, name.encode("ascii"), ftype, space, dcpl=dcpl)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, data)
        return dsid

    def double(self, loc: h5py.h5g.GroupID, name: str, value: float) -> h5py.h5d.DatasetID:
        dsid = self.dataset(loc, name, np.array([[value]], dtype=np.float64), h5py.h5t.IEEE_F64LE)
        self.string_attr(dsid, "MATLAB_class", "double")
        return dsid

    def refs(self, loc: h5py.h5g.GroupID, name: str, targets: Sequence) -> h5py.h5d.DatasetID:
        refs = np.array([h5py.h5r.create(t, b".", h5py.h5r.OBJECT) for t in targets], dtype=h5py.ref_dtype)
        return self.dataset(loc, name, refs.reshape(-1, 1), h5py.h5t.STD_REF_OBJ)

    def string_attr(self, obj, name: str, value: str) -> None:
        """A scalar ASCII, null-terminated fixed-length string attribute, the type MATLAB writes."""
        if value not in self.strings:
            raw = value.encode("ascii")
            tid = h5py.h5t.C_S1.copy()
            tid.set_size(len(raw))
            tid.set_strpad(h5py.h5t.STR_NULLTERM)
            self.strings[value] = (tid, np.array(raw, dtype=f"S{len(raw)}"))
        tid, data = self.strings[value]
        h5py.h5a.create(obj, name.encode("ascii"), tid, self.scalar).write(data, mtype=tid)

    def number_attr(self, obj, name: str, value: np.generic) -> None:
        data = np.array(value)
        tid = h5py.h5t.py_create(data.dtype)
        h5py.h5a.create(obj, name.encode("ascii"), tid, self.scalar).write(data, mtype=tid)

    def fields_attr(self, obj, fields: Sequence[str]) -> None:
        """MATLAB_fields: the struct's field names as variable-length arrays of single characters."""
        value = np.empty(len(fields), dtype=h5py.vlen_dtype(np.dtype("S1")))
        for j, field in enumerate(fields):
            value[j] = np.frombuffer(field.encode("ascii"), dtype="S1")
        space = h5py.h5s.create_simple((len(fields),))
        h5py.h5a.create(obj, b"MATLAB_fields", self.fields_type, space).write(value)


# --------------------------------------------------------------------------------------------- reading


def read_digitstruct(path: str | os.PathLike, method: str = "fast") -> DigitStruct:
    """Read every record of a digitStruct.mat.

    `method="reference"` dereferences each object through h5py (slow, simple, the oracle);
    `method="fast"` (default) gives identical results much faster, falling back to the reference
    parser for any record whose storage it does not recognise. Raises DataError for a missing,
    non-HDF5 or truncated file, a file without /digitStruct/name or /digitStruct/bbox, or a record
    that is malformed (the message names the file and the record index).
    """
    return _read(path, method)[0]


def _read(
    path: str | os.PathLike, method: str, limit: int | None = None, *, slice_records: int | None = None
) -> tuple[DigitStruct, int]:
    """read_digitstruct, optionally of the first `limit` records only (for the benchmark), also returning
    how many records the reference parser read (all of them for method="reference"). `slice_records`
    overrides how many records the fast reader decodes at a time (tests use tiny slices)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    path = Path(path)
    with _open(path) as f:
        name_ds, bbox_ds = _top_datasets(f, path)
        if method == "reference":
            records = _reference_records(f, path, name_ds, bbox_ds, limit)
            return _from_records(records), len(records)
        return _read_fast(f, path, name_ds, bbox_ds, limit, slice_records)


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise DataError(f"{path}: no such file; expected an SVHN digitStruct.mat (MATLAB v7.3)")
    if not path.is_file():
        raise DataError(f"{path}: is not a regular file; expected an SVHN digitStruct.mat (MATLAB v7.3)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        # h5py's reason says which: 'file signature not found' (not HDF5) or 'truncated file: eof = ...'.
        raise DataError(f"{path}: cannot be read as a MATLAB v7.3 (HDF5) digitStruct.mat: {exc}") from None


def _top_datasets(f: h5py.File, path: Path) -> tuple[h5py.Dataset, h5py.Dataset]:
    found = []
    for key in ("name", "bbox"):
        obj = f.get(f"digitStruct/{key}")
        if not isinstance(obj, h5py.Dataset) or h5py.check_ref_dtype(obj.dtype) is not h5py.Reference:
            what = "nothing" if obj is None else "a group" if isinstance(obj, h5py.Group) else f"{obj.dtype} data"
            raise DataError(f"{path}: /digitStruct/{key} must be a dataset of object references, found {what}")
        found.append(obj)
    name_ds, bbox_ds = found
    if name_ds.size != bbox_ds.size:
        raise DataError(
            f"{path}: /digitStruct/name has {name_ds.size} records but /digitStruct/bbox has {bbox_ds.size}; "
            "expected one bbox per name"
        )
    return name_ds, bbox_ds


def _refs(ds: h5py.Dataset, path: Path, key: str) -> np.ndarray:
    try:
        return ds[()].ravel()
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"{path}: /digitStruct/{key} cannot be read: {exc}") from None


def _reference_records(
    f: h5py.File, path: Path, name_ds: h5py.Dataset, bbox_ds: h5py.Dataset, limit: int | None
) -> list[tuple[str, np.ndarray]]:
    name_refs, bbox_refs = _refs(name_ds, path, "name")[:limit], _refs(bbox_ds, path, "bbox")[:limit]
    return [_reference_record(f, path, i, a, b) for i, (a, b) in enumerate(zip(name_refs, bbox_refs))]


def _from_records(records: Sequence[tuple[str, np.ndarray]]) -> DigitStruct:
    names = [name for name, _ in records]
    lengths = np.array([len(b) for _, b in records], dtype=np.int64)
    offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(lengths)])
    boxes = np.concatenate([b for _, b in records]) if records else np.zeros((0, len(FIELDS)))
    return DigitStruct(names=names, offsets=offsets, boxes=boxes.astype(np.float64, copy=False))


# ----------------------------------------------------------------- reference parser (and fast fallback)

_H5_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError)


def _deref(f: h5py.File, path: Path, where: str, ref: h5py.Reference) -> h5py.HLObject:
    try:
        return f[ref]
    except _H5_ERRORS as exc:
        raise DataError(f"{path}: {where}: invalid object reference ({exc})") from None


def _is_matlab_empty(ds: h5py.Dataset) -> bool:
    # MATLAB stores an empty value as a uint64 array of its dimensions flagged MATLAB_empty; checking
    # the dtype first keeps attribute reads off the common path.
    return ds.dtype == np.uint64 and bool(ds.attrs.get("MATLAB_empty", 0))


def _read_values(ds: h5py.Dataset, path: Path, where: str) -> np.ndarray:
    try:
        return np.asarray(ds[()]).ravel()
    except _H5_ERRORS as exc:
        raise DataError(f"{path}: {where}: cannot read {ds.name} ({exc})") from None


def _reference_record(f: h5py.File, path: Path, i: int, name_ref, bbox_ref) -> tuple[str, np.ndarray]:
    """One record the plain h5py way: dereference every object, chr() every character."""
    try:
        return _reference_record_unguarded(f, path, i, name_ref, bbox_ref)
    except _H5_ERRORS as exc:  # HDF5 trouble the checks below did not foresee, e.g. a damaged B-tree
        raise DataError(f"{path}: record {i}: cannot be read ({type(exc).__name__}: {exc})") from None


def _reference_record_unguarded(f: h5py.File, path: Path, i: int, name_ref, bbox_ref) -> tuple[str, np.ndarray]:
    where = f"record {i}"
    name_obj = _deref(f, path, f"{where} name", name_ref)
    if not isinstance(name_obj, h5py.Dataset) or name_obj.dtype.kind not in "ui":
        raise DataError(f"{path}: {where}: name must be a MATLAB char array (uint16 dataset), found {name_obj!r}")
    if _is_matlab_empty(name_obj):
        name = ""
    else:
        codes = _read_values(name_obj, path, f"{where} name")
        try:
            name = "".join(chr(int(c)) for c in codes)
        except (ValueError, OverflowError):
            raise DataError(f"{path}: {where}: name holds values that are not characters: {codes[:8]}") from None
    where = f"record {i} ({name})"

    bbox = _deref(f, path, f"{where} bbox", bbox_ref)
    if not isinstance(bbox, h5py.Group):
        raise DataError(f"{path}: {where}: bbox must be a struct (HDF5 group) with fields {FIELDS}, found {bbox!r}")
    columns = []
    for field in FIELDS:
        ds = bbox.get(field)
        if not isinstance(ds, h5py.Dataset):
            found = "nothing" if ds is None else "a group"
            raise DataError(
                f"{path}: {where}: bbox field {field!r} must be a dataset, found {found}; expected fields {FIELDS}"
            )
        if _is_matlab_empty(ds):
            values = np.zeros(0)
        elif h5py.check_ref_dtype(ds.dtype) is h5py.Reference:
            refs = _read_values(ds, path, f"{where} bbox.{field}")
            values = np.array([_scalar(f, path, f"{where} bbox.{field}[{k}]", r) for k, r in enumerate(refs)])
        elif ds.dtype.kind in "uif":
            values = _read_values(ds, path, f"{where} bbox.{field}")
        else:
            raise DataError(f"{path}: {where}: bbox field {field!r} must hold numbers or references, found {ds.dtype}")
        columns.append(values.astype(np.float64))
    lengths = [len(c) for c in columns]
    if len(set(lengths)) != 1:
        got = ", ".join(f"{field}={n}" for field, n in zip(FIELDS, lengths))
        raise DataError(
            f"{path}: {where}: bbox fields have different lengths ({got}); expected one value per digit in each"
        )
    return name, np.stack(columns, axis=1).reshape(lengths[0], len(FIELDS))


def _scalar(f: h5py.File, path: Path, where: str, ref) -> float:
    obj = _deref(f, path, where, ref)
    if not isinstance(obj, h5py.Dataset) or obj.dtype.kind not in "uif" or obj.size != 1:
        raise DataError(f"{path}: {where}: expected a reference to one number, found {obj!r}")
    return float(_read_values(obj, path, where)[0])


# ------------------------------------------------------------------------------------------ fast reader
#
# Everything below reads the file's bytes directly (HDF5 file format spec, version 0/1 superblock,
# version-1 object headers). All objects of one kind are parsed at once with numpy gathers; every
# check that fails marks the object's record for the reference parser instead of guessing.

_SIG_HDF5 = b"\x89HDF\r\n\x1a\n"
_MSG_NIL, _MSG_DATASPACE, _MSG_DATATYPE, _MSG_LAYOUT = 0x0000, 0x0001, 0x0003, 0x0008
_MSG_CONTINUATION, _MSG_SYMTAB = 0x0010, 0x0011
_MSG_FILL_OLD, _MSG_FILL = 0x0004, 0x0005
# Messages that do not change how a dataset's values or a group's members are read, and that HDF5 does
# not decode when it opens the object: attributes (MATLAB_class etc.), comment, modification times,
# attribute info, reference count.
_MSG_IGNORED = (_MSG_NIL, 0x000C, 0x000D, 0x000E, 0x0012, 0x0015, 0x0016)
# Messages located per object. Fill values do not change stored values either, but HDF5 decodes them
# on opening a dataset and fails on a damaged one: they are checked so both readers agree.
_MSG_USED = (_MSG_DATASPACE, _MSG_DATATYPE, _MSG_LAYOUT, _MSG_SYMTAB, _MSG_FILL_OLD, _MSG_FILL)
_MAX_CONTINUATIONS = 16  # a chain longer than this is not what HDF5 writes for these tiny objects
# Datatype messages the fast path understands, byte for byte (class+version, bit fields, size, properties).
_DT_F64 = bytes.fromhex("11203f00" "08000000" "0000" "4000" "34" "0b" "00" "34" "ff030000")  # IEEE f64 LE
_DT_U16 = bytes.fromhex("10000000" "02000000" "0000" "1000")  # unsigned 16-bit LE (MATLAB char)
_DT_REF = bytes.fromhex("17000000" "08000000")  # object reference
_KIND_BAD, _KIND_F64, _KIND_U16, _KIND_REF = 0, 1, 2, 3
_SIG_TREE, _SIG_SNOD, _SIG_HEAP = b"TREE", b"SNOD", b"HEAP"
_MAX_FREE_BLOCKS = 4  # a small group's local heap has one free block
_SNOD_ENTRY = 40  # symbol table entry: name offset, header address, cache type, reserved, scratch pad
# Records the fast reader decodes at a time. Its intermediate arrays (every message of every object
# header as int64 columns) take about 15 KB per record: in one piece, SVHN extra (202k records) peaked
# at 3 GB. Slices of 2,000 keep them near 30 MB and inside the CPU caches, which made the reader faster,
# not slower (200k-record file: 4.6 s at 2,000, 7.2 s at 20,000, 10.9 s in one piece); below ~500 the
# fixed numpy cost per slice starts to show (5.0 s at 250). Measured with bench/bench_digitstruct.py.
_SLICE_RECORDS = 2_000


@dataclass
class _Headers:
    """Per object: whether the fast path understands it, and where its messages' data start."""

    ok: np.ndarray  # bool
    pos: dict[int, np.ndarray]  # message type -> absolute position of its data (-1: absent)
    size: dict[int, np.ndarray]  # message type -> size of its data

    def part(self, sl: slice) -> _Headers:
        return _Headers(self.ok[sl], {t: p[sl] for t, p in self.pos.items()}, {t: s[sl] for t, s in self.size.items()})


class _RawFile:
    """The file's bytes as a read-only memmap, with vectorised little-endian gathers."""

    def __init__(self, path: Path, superblock: int) -> None:
        self.buf = np.memmap(path, dtype=np.uint8, mode="r")
        self.size = len(self.buf)
        self.base = -1  # -1: this file's superblock is not one the fast path knows
        sb = superblock
        if self.size >= sb + 40 and bytes(self.buf[sb : sb + 8]) == _SIG_HDF5:
            version, offsets, lengths = int(self.buf[sb + 8]), int(self.buf[sb + 13]), int(self.buf[sb + 14])
            if version in (0, 1) and offsets == 8 and lengths == 8:
                # Addresses in the file are relative to the base address (the user block's end here).
                at = sb + (24 if version == 0 else 28)
                self.base = int(np.frombuffer(self.buf[at : at + 8].tobytes(), "<u8")[0])

    def inside(self, pos: np.ndarray, n: int | np.ndarray) -> np.ndarray:
        return (pos >= 0) & (pos <= self.size - n)

    def bytes_at(self, pos: np.ndarray, n: int, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(pos), n) uint8 read at each pos; ok narrowed to positions lying inside the file."""
        ok = ok & self.inside(pos, n)
        safe = np.where(ok, pos, 0)
        return self.buf[safe[:, None] + np.arange(n)], ok

    def uint(self, pos: np.ndarray, n: int, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Little-endian unsigned n-byte integers (n in 1, 2, 4, 8) as int64; 2**63 and above go negative."""
        raw, ok = self.bytes_at(pos, n, ok)
        return np.ascontiguousarray(raw).view(f"<u{n}")[:, 0].astype(np.int64), ok

    def has_signature(self, pos: np.ndarray, sig: bytes, ok: np.ndarray) -> np.ndarray:
        raw, ok = self.bytes_at(pos, len(sig), ok)
        return ok & np.all(raw == np.frombuffer(sig, np.uint8), axis=1)

    # ---- object headers

    def headers(self, addr: np.ndarray, ok: np.ndarray) -> _Headers:
        """Walk the version-1 object headers at file addresses `addr`, following continuation blocks."""
        n = len(addr)
        start = addr + self.base
        head, ok = self.bytes_at(start, 16, ok)
        ok &= head[:, 0] == 1  # version 1; a version-2 header starts 'OHDR'
        nmsgs = head[:, 2].astype(np.int64) | head[:, 3].astype(np.int64) << 8
        hsize = np.ascontiguousarray(head[:, 8:12]).view("<u4")[:, 0].astype(np.int64)
        ok &= self.inside(start + 16, hsize)
        # Blocks of messages still to walk: owner object, first message, end of block.
        owner = np.flatnonzero(ok)
        first, end = start[owner] + 16, start[owner] + 16 + hsize[owner]
        found = []  # arrays (owner, type, data position, data size, flags) per walked step
        for _ in range(_MAX_CONTINUATIONS + 1):
            if owner.size == 0:
                break
            steps = self._walk(owner, first, end, ok)
            found.extend(steps)
            # Continuation messages found in this round name the blocks of the next round.
            c_owner = np.concatenate([s[0][s[1] == _MSG_CONTINUATION] for s in steps] + [np.zeros(0, np.int64)])
            c_data = np.concatenate([s[2][s[1] == _MSG_CONTINUATION] for s in steps] + [np.zeros(0, np.int64)])
            c_ok = np.ones(len(c_owner), bool)
            c_addr, c_ok = self.uint(c_data, 8, c_ok)
            c_len, c_ok = self.uint(c_data + 8, 8, c_ok)
            c_ok &= self.inside(c_addr + self.base, c_len)
            ok[c_owner[~c_ok]] = False
            owner, first, end = c_owner[c_ok], c_addr[c_ok] + self.base, c_addr[c_ok] + self.base + c_len[c_ok]
        else:
            ok[owner] = False  # continuation chain too long

        m_owner, m_type, m_data, m_size, m_flags = (
            np.concatenate([s[k] for s in found]) if found else np.zeros(0, np.int64) for k in range(5)
        )
        ok &= np.bincount(m_owner, minlength=n) == nmsgs  # every message the header announces was seen
        known = np.isin(m_type, _MSG_IGNORED + _MSG_USED + (_MSG_CONTINUATION,))
        ok[m_owner[~known]] = False
        # Only the 'constant' flag is expected; shared (committed) or must-understand flags are not handled.
        ok[m_owner[(m_flags & ~0x01) != 0]] = False
        pos, size = {}, {}
        for t in _MSG_USED:
            sel = m_type == t
            ok &= np.bincount(m_owner[sel], minlength=n) <= 1
            pos[t] = np.full(n, -1, np.int64)
            size[t] = np.zeros(n, np.int64)
            pos[t][m_owner[sel]] = m_data[sel]
            size[t][m_owner[sel]] = m_size[sel]
        return _Headers(ok=ok, pos=pos, size=size)

    def _walk(self, owner: np.ndarray, first: np.ndarray, end: np.ndarray, ok: np.ndarray) -> list[tuple]:
        """Messages of a set of blocks, one message per block per step (8-byte message prefixes)."""
        steps = []
        pos = first.copy()
        live = np.arange(len(owner))
        while live.size:
            live = live[pos[live] + 8 <= end[live]]
            if live.size == 0:
                break
            p = pos[live]
            prefix = self.buf[p[:, None] + np.arange(8)]  # in the file: checked by inside() on the block
            m_type = prefix[:, 0].astype(np.int64) | prefix[:, 1].astype(np.int64) << 8
            m_size = prefix[:, 2].astype(np.int64) | prefix[:, 3].astype(np.int64) << 8
            # Version-1 headers keep every message 8-byte aligned; HDF5 rejects a size that is not.
            overrun = (p + 8 + m_size > end[live]) | (m_size % 8 != 0)
            ok[owner[live[overrun]]] = False
            steps.append((owner[live], m_type, p + 8, m_size, prefix[:, 4].astype(np.int64)))
            pos[live] = p + 8 + m_size
            live = live[~overrun]
        return steps

    # ---- datasets

    def datasets(self, h: _Headers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(kind, number of elements, absolute position of the values) of each object; kind 0: unknown."""
        ok = h.ok & (h.pos[_MSG_DATASPACE] >= 0) & (h.pos[_MSG_DATATYPE] >= 0) & (h.pos[_MSG_LAYOUT] >= 0)
        ok &= h.pos[_MSG_SYMTAB] < 0

        # Dataspace: version 1 (dims at +8) or 2 (dims at +4; type 0 scalar, 1 simple). Rank <= 2 here.
        sp = h.pos[_MSG_DATASPACE]
        head, ok = self.bytes_at(sp, 4, ok)
        version, rank = head[:, 0], head[:, 1].astype(np.int64)
        ok &= ((version == 1) | ((version == 2) & (head[:, 3] <= 1))) & (rank <= 2)
        dims_at = sp + np.where(version == 1, 8, 4)
        ok &= dims_at + 8 * rank <= sp + h.size[_MSG_DATASPACE]
        nelem = np.ones(len(sp), np.int64)
        for d in range(2):
            has = ok & (rank > d)
            dim, has = self.uint(dims_at + 8 * d, 8, has)
            # A dimension larger than the file cannot hold data here; bounding it also keeps the
            # product from overflowing int64.
            ok &= (rank <= d) | (has & (dim >= 0) & (dim <= self.size))
            nelem = np.where(has, nelem * dim, nelem)

        # Datatype: compared byte for byte with the three types the SVHN layout uses.
        tp = h.pos[_MSG_DATATYPE]
        raw, ok = self.bytes_at(tp, len(_DT_F64), ok)
        kind = np.zeros(len(tp), np.int64)
        for k, sig in ((_KIND_F64, _DT_F64), (_KIND_U16, _DT_U16), (_KIND_REF, _DT_REF)):
            match = np.all(raw[:, : len(sig)] == np.frombuffer(sig, np.uint8), axis=1)
            kind[match & (h.size[_MSG_DATATYPE] >= len(sig))] = k
        ok &= kind != _KIND_BAD
        itemsize = np.array([0, 8, 2, 8])[kind]

        # Layout message version 3: class 0 compact (size, then the data inline), 1 contiguous
        # (address, size). Chunked storage and older/newer layout versions go to the fallback.
        lp = h.pos[_MSG_LAYOUT]
        head, ok = self.bytes_at(lp, 2, ok)
        ok &= (head[:, 0] == 3) & (head[:, 1] <= 1)
        compact = head[:, 1] == 0
        c_size, ok_c = self.uint(lp + 2, 2, ok & compact)
        addr, ok_a = self.uint(lp + 2, 8, ok & ~compact)
        a_size, ok_a = self.uint(lp + 10, 8, ok_a)
        ok &= np.where(compact, ok_c & (c_size <= h.size[_MSG_LAYOUT] - 4), ok_a)
        data = np.where(compact, lp + 4, addr + self.base)
        stored = np.where(compact, c_size, a_size)
        # HDF5 rejects a compact dataset whose stored size is not exactly its extent; the same is
        # required of contiguous ones (any other size is not how HDF5 writes them).
        ok &= (stored == nelem * itemsize) & self.inside(data, nelem * itemsize)
        ok &= self._fill_ok(h, ok)
        kind[~ok] = _KIND_BAD
        return kind, nelem, data

    def _fill_ok(self, h: _Headers, ok: np.ndarray) -> np.ndarray:
        """Fill value messages are well formed: version 2 (what HDF5 1.6+ writes) with its value inside
        the message; the old-style message's value inside the message."""
        fp, fsize = h.pos[_MSG_FILL], h.size[_MSG_FILL]
        has = ok & (fp >= 0)
        head, has = self.bytes_at(fp, 4, has & (fsize >= 4))
        good = has & (head[:, 0] == 2) & (head[:, 1] >= 1) & (head[:, 1] <= 3) & (head[:, 2] <= 2) & (head[:, 3] <= 1)
        value_size, sized = self.uint(fp + 4, 4, good & (head[:, 3] == 1) & (fsize >= 8))
        good &= (head[:, 3] == 0) | (sized & (value_size <= fsize - 8))
        old, osize = h.pos[_MSG_FILL_OLD], h.size[_MSG_FILL_OLD]
        old_size, old_ok = self.uint(old, 4, ok & (old >= 0) & (osize >= 4))
        old_good = old_ok & (old_size <= osize - 4)
        return ((fp < 0) | good) & ((old < 0) | old_good)

    def _free_list_ok(self, seg: np.ndarray, seg_size: np.ndarray, free: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """A local heap's free list: blocks (next offset, size) inside the segment, ending in 1 (none)."""
        live = ok & (free != 1)
        for _ in range(_MAX_FREE_BLOCKS):
            if not live.any():
                return ok
            ok &= ~live | ((free >= 0) & (free + 16 <= seg_size))
            live &= ok
            nxt, ok_next = self.uint(seg + free, 8, live)
            size, ok_next = self.uint(seg + free + 8, 8, ok_next)
            ok &= ~live | (ok_next & (nxt != 0) & (size >= 0) & (free + size <= seg_size))
            live &= ok
            free = np.where(live, nxt, free)
            live &= free != 1
        return ok & ~live  # a longer chain than a 5-member group's heap has: left to HDF5

    # ---- groups

    def struct_fields(self, h: _Headers, fields: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Header addresses (G, len(fields)) of the named members of old-style groups, and ok (G,).

        Only a group whose members fit one B-tree leaf (one symbol node) and are exactly `fields`
        is understood; anything else is left to the reference parser.
        """
        g = len(h.ok)
        ok = h.ok & (h.pos[_MSG_SYMTAB] >= 0) & (h.pos[_MSG_DATASPACE] < 0) & (h.size[_MSG_SYMTAB] >= 16)
        tree, ok = self.uint(h.pos[_MSG_SYMTAB], 8, ok)
        heap, ok = self.uint(h.pos[_MSG_SYMTAB] + 8, 8, ok)
        tree += self.base
        heap += self.base

        # v1 B-tree node: 'TREE', type 0 (group), level 0 (leaf), one entry; its child is the symbol node.
        # Keys bracket the child's names (heap offsets): HDF5 looks members up through them.
        ok = self.has_signature(tree, _SIG_TREE, ok)
        head, ok = self.bytes_at(tree + 4, 4, ok)
        ok &= (head[:, 0] == 0) & (head[:, 1] == 0) & (head[:, 2] == 1) & (head[:, 3] == 0)
        key_lo, ok = self.uint(tree + 24, 8, ok)
        snod, ok = self.uint(tree + 32, 8, ok)
        key_hi, ok = self.uint(tree + 40, 8, ok)
        snod += self.base
        ok = self.has_signature(snod, _SIG_SNOD, ok)
        head, ok = self.bytes_at(snod + 4, 4, ok)
        n_fields = len(fields)
        ok &= (head[:, 0] == 1) & (head[:, 2] == n_fields) & (head[:, 3] == 0)

        # Local heap holding the member names (version 0), and its free list, which HDF5 checks on loading.
        ok = self.has_signature(heap, _SIG_HEAP, ok)
        version, ok = self.uint(heap + 4, 4, ok)
        ok &= version == 0
        seg_size, ok = self.uint(heap + 8, 8, ok)
        free, ok = self.uint(heap + 16, 8, ok)
        seg_addr, ok = self.uint(heap + 24, 8, ok)
        ok &= self.inside(seg_addr + self.base, seg_size)
        ok &= self._free_list_ok(seg_addr + self.base, seg_size, free, ok)

        entries = snod[:, None] + 8 + _SNOD_ENTRY * np.arange(n_fields)  # (G, F)
        e_ok = np.repeat(ok, n_fields)
        name_off, e_ok = self.uint(entries.ravel(), 8, e_ok)
        member, e_ok = self.uint(entries.ravel() + 8, 8, e_ok)
        cache_type, e_ok = self.uint(entries.ravel() + 16, 4, e_ok)
        e_ok &= cache_type == 0  # members that are datasets cache nothing; HDF5 rejects unknown types
        width = max(len(f) for f in fields) + 1  # longest name and its terminating NUL
        seg_size = np.repeat(seg_size, n_fields)
        e_ok &= (name_off >= 0) & (name_off < seg_size)
        names, e_ok = self.bytes_at(np.repeat(seg_addr + self.base, n_fields) + name_off, width, e_ok)
        ok &= e_ok.reshape(g, n_fields).all(axis=1)

        # Entry e must name the e-th field in sorted order, as HDF5 keeps them (it binary-searches them);
        # the B-tree's low key must be the empty name and its high key the last entry's name.
        order = sorted(range(n_fields), key=lambda j: fields[j])
        match = np.ones(g * n_fields, bool)
        for e, j in enumerate(order):
            sig = np.frombuffer(fields[j].encode("ascii") + b"\x00", np.uint8)
            rows = slice(e, None, n_fields)
            match[rows] = np.all(names[rows, : len(sig)] == sig, axis=1) & (name_off[rows] + len(sig) <= seg_size[rows])
        ok &= match.reshape(g, n_fields).all(axis=1)
        ok &= key_hi == name_off.reshape(g, n_fields)[:, -1]
        key_lo_ok = ok & (key_lo >= 0) & (key_lo < seg_size[::n_fields])
        empty, ok = self.bytes_at(seg_addr + self.base + key_lo, 1, key_lo_ok)
        ok &= empty[:, 0] == 0
        addr = np.empty((g, n_fields), np.int64)
        addr[:, order] = member.reshape(g, n_fields)
        return addr, ok


def _segments(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for every (s, c) pair."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(total)


def _raw_refs(ds: h5py.Dataset, path: Path, key: str) -> np.ndarray:
    """The stored 8-byte object addresses of a reference dataset, read through HDF5 (any layout)."""
    out = np.zeros(ds.shape, np.uint64)
    try:
        if ds.size:
            ds.id.read(h5py.h5s.ALL, h5py.h5s.ALL, out, mtype=h5py.h5t.STD_REF_OBJ)
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"{path}: /digitStruct/{key} cannot be read: {exc}") from None
    return out.ravel().astype(np.int64)


class _FallbackRefs:
    """The h5py references of /digitStruct/name and /bbox, read only if some record needs the fallback."""

    def __init__(self, path: Path, name_ds: h5py.Dataset, bbox_ds: h5py.Dataset) -> None:
        self.path, self.name_ds, self.bbox_ds = path, name_ds, bbox_ds
        self.name: np.ndarray | None = None
        self.bbox: np.ndarray | None = None

    def record(self, f: h5py.File, i: int) -> tuple[str, np.ndarray]:
        """Record i (its index in the whole file) through the reference parser."""
        if self.name is None:
            self.name, self.bbox = _refs(self.name_ds, self.path, "name"), _refs(self.bbox_ds, self.path, "bbox")
        return _reference_record(f, self.path, i, self.name[i], self.bbox[i])


def _read_fast(
    f: h5py.File,
    path: Path,
    name_ds: h5py.Dataset,
    bbox_ds: h5py.Dataset,
    limit: int | None = None,
    slice_records: int | None = None,
) -> tuple[DigitStruct, int]:
    """The fast reader, `slice_records` records at a time (default _SLICE_RECORDS); also returns how
    many records went to the reference parser."""
    slice_records = _SLICE_RECORDS if slice_records is None else slice_records
    if slice_records < 1:
        raise ValueError(f"slice_records must be at least 1, got {slice_records}")
    name_addr, bbox_addr = _raw_refs(name_ds, path, "name")[:limit], _raw_refs(bbox_ds, path, "bbox")[:limit]
    n = len(name_addr)
    if n == 0 or _RawFile(path, f.userblock_size).base < 0:  # nothing to read, or a superblock it does not know
        records = _reference_records(f, path, name_ds, bbox_ds, limit)
        return _from_records(records), len(records)

    fallback = _FallbackRefs(path, name_ds, bbox_ds)
    names: list[str] = []
    lengths, boxes = [], []
    n_fallback = 0
    for start in range(0, n, slice_records):
        stop = min(start + slice_records, n)
        # A fresh map per slice: unmapping the previous one drops the file pages it touched from this
        # process's resident set. With one map for all slices they piled up to the whole file (1.3 GB of
        # a 1.5 GB peak on a 200k-record file); madvise(MADV_DONTNEED) per slice did as well as this.
        raw = _RawFile(path, f.userblock_size)
        part_names, part_lengths, part_boxes, part_fallback = _decode_slice(
            raw, f, start, name_addr[start:stop], bbox_addr[start:stop], fallback
        )
        del raw
        names.extend(part_names)
        lengths.append(part_lengths)
        boxes.append(part_boxes)
        n_fallback += part_fallback
    offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(np.concatenate(lengths))])
    return DigitStruct(names=names, offsets=offsets, boxes=np.concatenate(boxes)), n_fallback


def _decode_slice(
    raw: _RawFile, f: h5py.File, first: int, name_addr: np.ndarray, bbox_addr: np.ndarray, fallback: _FallbackRefs
) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Records first .. first+len(name_addr)-1: (names, digits per record, (D, 5) boxes, records that went
    to the reference parser). Every intermediate array is local, so it is freed when the slice is done."""
    n = len(name_addr)
    # Names and bbox groups: one header walk for both.
    h = raw.headers(np.concatenate([name_addr, bbox_addr]), np.ones(2 * n, bool))
    kind, nchars, chars_at = raw.datasets(h)
    ok = kind[:n] == _KIND_U16
    field_addr, g_ok = raw.struct_fields(h.part(slice(n, None)), FIELDS)
    ok &= g_ok
    del h

    # The 5 fields of every record: inline float64 (one digit) or (n,1) references (longer numbers).
    nf = len(FIELDS)
    fh = raw.headers(field_addr.ravel(), np.repeat(ok, nf))
    f_kind, f_n, f_data = raw.datasets(fh)
    del fh
    f_inline = f_kind == _KIND_F64
    ok &= np.all(((f_inline & (f_n == 1)) | (f_kind == _KIND_REF)).reshape(n, nf), axis=1)
    digits = f_n.reshape(n, nf)
    ok &= np.all(digits == digits[:, :1], axis=1)
    f_count = np.where(np.repeat(ok, nf), f_n, 0)  # values contributed by each field, 0 if not ok

    # Position of every value, ordered (record, field, digit). References point to (1,1) doubles.
    value_at = np.zeros(int(f_count.sum()), np.int64)
    f_start = np.cumsum(f_count) - f_count
    inline = f_inline & (f_count > 0)
    value_at[f_start[inline]] = f_data[inline]
    by_ref = (f_kind == _KIND_REF) & (f_count > 0)
    slots = _segments(f_start[by_ref], f_count[by_ref])
    owner = np.repeat(np.flatnonzero(by_ref), f_count[by_ref]) // nf
    elem_refs, e_ok = raw.uint(_segments(f_data[by_ref], 8 * f_count[by_ref])[::8], 8, np.ones(len(slots), bool))
    eh = raw.headers(elem_refs, e_ok)
    e_kind, e_n, e_data = raw.datasets(eh)
    del eh
    bad = (e_kind != _KIND_F64) | (e_n != 1)
    ok[owner[bad]] = False
    value_at[slots] = e_data

    # Names: uint16 characters; decoding them as UTF-32 with surrogates passed equals chr() per unit.
    c_count = np.where(ok, nchars[:n], 0)
    chars = raw.uint(_segments(chars_at[:n], 2 * c_count)[::2], 2, np.ones(int(c_count.sum()), bool))[0]
    text = chars.astype("<u4").tobytes().decode("utf-32-le", errors="surrogatepass")
    c_end = np.cumsum(c_count)

    # Values of the records that stayed fast, reordered from (record, field, digit) to (digit, field).
    # A record can have failed on one of its digits after its values were laid out: drop its values.
    value_rec = np.repeat(np.arange(n * nf) // nf, f_count)
    value_at = value_at[ok[value_rec]]
    values = np.frombuffer(raw.bytes_at(value_at, 8, np.ones(len(value_at), bool))[0].tobytes(), "<f8")
    rec_count = np.where(ok, digits[:, 0], 0)
    slow = {int(i): fallback.record(f, first + int(i)) for i in np.flatnonzero(~ok)}
    for i, (_, b) in slow.items():
        rec_count[i] = len(b)
    offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(rec_count)])
    boxes = np.zeros((int(offsets[-1]), nf), np.float64)
    fast_recs = np.flatnonzero(ok)
    per_rec = rec_count[fast_recs]
    rec_of_value = np.repeat(fast_recs, per_rec * nf)
    local = np.arange(len(values)) - np.repeat(np.cumsum(per_rec * nf) - per_rec * nf, per_rec * nf)
    digits_of_value = np.repeat(per_rec, per_rec * nf)
    boxes[offsets[rec_of_value] + local % digits_of_value, local // digits_of_value] = values

    names = []
    for i in range(n):
        if ok[i]:
            names.append(text[c_end[i] - c_count[i] : c_end[i]])
        else:
            name, b = slow[i]
            names.append(name)
            boxes[offsets[i] : offsets[i + 1]] = b
    return names, rec_count, boxes, len(slow)

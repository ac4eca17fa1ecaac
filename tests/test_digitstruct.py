"""digitStruct.mat: the fast reader equals the reference reader; the writer round-trips; bad input fails clearly."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from housenum.digitstruct import (
    FIELDS,
    DigitStruct,
    DigitStructWriter,
    _read,
    _reference_record,
    read_digitstruct,
    write_digitstruct,
)
from housenum.errors import DataError

CREATED = "Fri Aug 11 10:33:06 2017"

# Records 1-3 of each genuine MATLAB excerpt, checked by hand against the images 1.png-3.png beside them
# (test 2.png reads "210", train 2.png "23", extra 1.png "478"). Columns: label, left, top, width, height.
HAND_CHECKED = {
    "test": [
        ("1.png", [[5, 43, 7, 19, 30]]),
        ("2.png", [[2, 99, 5, 14, 23], [1, 114, 8, 8, 23], [10, 121, 6, 12, 23]]),
        ("3.png", [[6, 61, 6, 11, 16]]),
    ],
    "train": [
        ("1.png", [[1, 246, 77, 81, 219], [9, 323, 81, 96, 219]]),
        ("2.png", [[2, 77, 29, 23, 32], [3, 98, 25, 26, 32]]),
        ("3.png", [[2, 17, 5, 8, 15], [5, 25, 5, 9, 15]]),
    ],
    "extra": [
        ("1.png", [[4, 24, 70, 38, 56], [7, 55, 41, 36, 56], [8, 79, 23, 47, 56]]),
        ("2.png", [[7, 32, 13, 94, 203], [1, 143, 33, 38, 203]]),
        ("3.png", [[1, 18, 5, 20, 63], [7, 40, 6, 33, 63], [4, 72, 18, 34, 63]]),
    ],
}
EXCERPT_RECORDS = {"test": 40, "train": 39, "extra": 40}

# Small records covering the cases the layout distinguishes: one digit (inline fields), several digits
# (reference arrays), boxes starting outside the image, digit 0 given as 10 and as 0.
NAMES = ["1.png", "2.png", "3.png", "10.png"]
BOXES = [
    np.array([[5, 43, 7, 19, 30]], float),
    np.array([[2, 99, 5, 14, 23], [1, 114, 8, 8, 23], [10, 121, 6, 12, 23]], float),
    np.array([[0, -3, -2.5, 11, 16]], float),
    np.array([[1, -1, 0, 9, 20], [0, 8, -4, 9, 20]], float),
]


def expected_boxes(boxes: list[np.ndarray]) -> list[np.ndarray]:
    out = [b.copy() for b in boxes]
    for b in out:
        b[b[:, 0] == 0, 0] = 10  # the writer stores digit 0 as label 10
    return out


def assert_same(a: DigitStruct, b: DigitStruct) -> None:
    assert a.names == b.names
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.offsets.dtype == b.offsets.dtype == np.int64
    assert a.boxes.dtype == b.boxes.dtype == np.float64


def read_fast_counting(path: Path) -> tuple[DigitStruct, int]:
    """The fast reader, also returning how many records it handed to the reference parser."""
    return _read(path, "fast")


def write_plain_h5py(path: Path, names, boxes, *, libver="earliest", field_kwargs=None) -> None:
    """The digitStruct layout written by plain h5py code (not our writer), with storage options."""
    field_kwargs = field_kwargs or {}
    with h5py.File(path, "w", libver=libver) as f:
        refs = f.create_group("#refs#")
        name_refs, bbox_refs = [], []
        for i, (name, b) in enumerate(zip(names, boxes)):
            name_refs.append(refs.create_dataset(f"n{i}", data=np.array([[ord(c)] for c in name], np.uint16)).ref)
            g = refs.create_group(f"b{i}")
            for j, field in enumerate(FIELDS):
                if len(b) == 1:
                    g.create_dataset(field, data=b[:, j : j + 1], **field_kwargs)
                else:
                    elems = [refs.create_dataset(f"e{i}_{field}_{k}", data=[[v]]).ref for k, v in enumerate(b[:, j])]
                    g.create_dataset(field, data=np.array(elems, h5py.ref_dtype).reshape(-1, 1), **field_kwargs)
            bbox_refs.append(g.ref)
        f.create_dataset("digitStruct/name", data=np.array(name_refs, h5py.ref_dtype).reshape(-1, 1))
        f.create_dataset("digitStruct/bbox", data=np.array(bbox_refs, h5py.ref_dtype).reshape(-1, 1))


@pytest.fixture()
def written(tmp_path: Path) -> Path:
    path = tmp_path / "digitStruct.mat"
    write_digitstruct(path, NAMES, BOXES, created=CREATED)
    return path


# ------------------------------------------------------------------------------- genuine MATLAB files


@pytest.mark.parametrize("split", ["test", "train", "extra"])
def test_matlab_excerpt_fast_equals_reference_and_hand_checked_values(matlab_fixtures: Path, split: str) -> None:
    path = matlab_fixtures / split / "digitStruct.mat"
    fast, n_fallback = read_fast_counting(path)
    assert n_fallback == 0  # MATLAB's own layout is fully understood by the fast path
    assert_same(fast, read_digitstruct(path, method="reference"))
    assert_same(fast, read_digitstruct(path))
    assert len(fast) == EXCERPT_RECORDS[split]
    for i, (name, boxes) in enumerate(HAND_CHECKED[split]):
        got_name, got_boxes = fast.record(i)
        assert got_name == name
        np.testing.assert_array_equal(got_boxes, np.array(boxes, float))
    assert fast.names == [f"{i + 1}.png" for i in range(len(fast))]


# ---------------------------------------------------------------------------------- full mirror file


@pytest.fixture(scope="session")
def mirror_test_mat(svhn_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = svhn_mirror / "test.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} not in the mirror")
    out = tmp_path_factory.mktemp("svhn_test")
    with tarfile.open(archive) as tar:
        member = tar.getmember("test/digitStruct.mat")
        with tar.extractfile(member) as src, open(out / "digitStruct.mat", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    return out / "digitStruct.mat"


def test_full_mirror_test_file_counts(mirror_test_mat: Path) -> None:
    ds, n_fallback = read_fast_counting(mirror_test_mat)
    assert n_fallback == 0
    assert len(ds) == 13068 and len(ds.boxes) == 26032
    assert np.bincount(ds.lengths()).tolist() == [0, 2483, 8356, 2081, 146, 2]
    assert ds.names[:3] == ["1.png", "2.png", "3.png"] and ds.names[-1] == "13068.png"
    assert set(np.unique(ds.boxes[:, 0])) == set(range(1, 11))  # labels as stored: 10 is digit 0


def test_full_mirror_test_file_fast_equals_reference_on_spread_sample(mirror_test_mat: Path) -> None:
    ds = read_digitstruct(mirror_test_mat)
    # 300 records spread over the file, plus every record with 4 or 5 digits and the last one.
    spread = np.linspace(0, len(ds) - 1, 300).astype(int)
    sample = np.unique(np.concatenate([spread, np.flatnonzero(ds.lengths() >= 4)]))
    with h5py.File(mirror_test_mat, "r") as f:
        names, bboxes = f["digitStruct/name"][()].ravel(), f["digitStruct/bbox"][()].ravel()
        for i in sample:
            name, boxes = _reference_record(f, mirror_test_mat, int(i), names[i], bboxes[i])
            got_name, got_boxes = ds.record(int(i))
            assert got_name == name
            np.testing.assert_array_equal(got_boxes, boxes)


# ----------------------------------------------------------------------------------------- round trip


def test_round_trip_both_methods(written: Path) -> None:
    want = expected_boxes(BOXES)
    for method in ("fast", "reference"):
        ds = read_digitstruct(written, method=method)
        assert ds.names == NAMES
        assert ds.lengths().tolist() == [1, 3, 1, 2]
        for i, name in enumerate(NAMES):
            got_name, got_boxes = ds.record(i)
            assert got_name == name
            np.testing.assert_array_equal(got_boxes, want[i])
    assert read_fast_counting(written)[1] == 0


def test_writer_adding_one_record_at_a_time_writes_the_same_bytes_and_nothing_when_it_fails(
        written: Path, tmp_path: Path) -> None:
    path = tmp_path / "streamed.mat"
    with DigitStructWriter(path, created=CREATED) as writer:
        assert not path.exists()  # written under a temporary name until the block ends
        for name, boxes in zip(NAMES, BOXES):
            writer.add(name, boxes)
    assert path.read_bytes() == written.read_bytes()
    broken = tmp_path / "broken.mat"
    with pytest.raises(DataError, match=r"record 1 \(2.png\): boxes must have shape"):
        with DigitStructWriter(broken, created=CREATED) as writer:
            writer.add("1.png", BOXES[0])
            writer.add("2.png", np.zeros((3, 4)))
    with pytest.raises(KeyboardInterrupt):
        with DigitStructWriter(broken, created=CREATED) as writer:
            writer.add("1.png", BOXES[0])
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digitStruct.mat", "streamed.mat"]


def test_round_trip_unusual_names_and_no_records(tmp_path: Path) -> None:
    names = ["ü-Ω.png", "\ud800.png"]  # non-ASCII, and a lone UTF-16 surrogate that chr() keeps as is
    path = tmp_path / "odd.mat"
    write_digitstruct(path, names, [np.ones((1, 5)), np.ones((2, 5))], created=CREATED)
    fast, n_fallback = read_fast_counting(path)
    assert fast.names == names and n_fallback == 0
    assert_same(fast, read_digitstruct(path, method="reference"))
    empty = tmp_path / "empty.mat"
    write_digitstruct(empty, [], [], created=CREATED)
    for method in ("fast", "reference"):
        ds = read_digitstruct(empty, method=method)
        assert len(ds) == 0 and ds.boxes.shape == (0, 5) and ds.offsets.tolist() == [0]


def test_written_file_has_matlab_header_and_layout(written: Path) -> None:
    raw = written.read_bytes()
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {CREATED} HDF5 schema 1.00 .".encode()
    assert raw[:116] == text.ljust(116, b" ")
    assert raw[124:128] == b"\x00\x02IM"
    assert raw[512:520] == b"\x89HDF\r\n\x1a\n"
    with h5py.File(written, "r") as f:
        assert f.userblock_size == 512
        assert f["digitStruct"].attrs["MATLAB_class"] == b"struct"
        assert f["digitStruct/name"].shape == (4, 1) and f["digitStruct/bbox"].shape == (4, 1)
        name = f[f["digitStruct/name"][0, 0]]
        assert name.dtype == np.uint16 and name.shape == (5, 1)
        assert name.attrs["MATLAB_class"] == b"char" and name.attrs["MATLAB_int_decode"] == 2
        one = f[f["digitStruct/bbox"][0, 0]]
        assert sorted(one) == sorted(FIELDS)
        assert one["label"].shape == (1, 1) and one["label"].dtype == np.float64
        assert one["label"].attrs["MATLAB_class"] == b"double"
        three = f[f["digitStruct/bbox"][1, 0]]
        assert three["label"].shape == (3, 1) and h5py.check_ref_dtype(three["label"].dtype) is h5py.Reference
        assert f[three["label"][2, 0]][()].tolist() == [[10.0]]


def test_same_input_gives_identical_bytes_and_no_leftovers(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "digitStruct.mat", tmp_path / "b" / "digitStruct.mat"
    for path in (a, b):
        path.parent.mkdir()
        write_digitstruct(path, NAMES, BOXES, created=CREATED)
        assert [p.name for p in path.parent.iterdir()] == ["digitStruct.mat"]
    assert a.read_bytes() == b.read_bytes()


def test_writer_rejects_bad_records_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.mat"
    with pytest.raises(DataError, match=r"out\.mat.*2 names but 1 box"):
        write_digitstruct(path, ["1.png", "2.png"], [BOXES[0]])
    with pytest.raises(DataError, match=r"out\.mat: record 1 \(2\.png\).*shape \(n, 5\).*\(3, 4\)"):
        write_digitstruct(path, ["1.png", "2.png"], [BOXES[0], np.zeros((3, 4))])
    with pytest.raises(DataError, match=r"out\.mat: record 0.*non-empty"):
        write_digitstruct(path, [""], [BOXES[0]])
    with pytest.raises(DataError, match=r"out\.mat.*header text"):
        write_digitstruct(path, ["1.png"], [BOXES[0]], created="x" * 100)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------- fallback


@pytest.mark.parametrize(
    "libver, field_kwargs",
    [("latest", {}), ("earliest", {"chunks": (1, 1), "compression": "gzip"})],
    ids=["v2-object-headers", "chunked-gzip-fields"],
)
def test_layouts_the_fast_path_does_not_know_fall_back(tmp_path: Path, libver: str, field_kwargs: dict) -> None:
    path = tmp_path / "plain.mat"
    write_plain_h5py(path, NAMES, BOXES, libver=libver, field_kwargs=field_kwargs)
    fast, n_fallback = read_fast_counting(path)
    assert n_fallback == len(NAMES)
    assert_same(fast, read_digitstruct(path, method="reference"))
    assert fast.names == NAMES
    np.testing.assert_array_equal(fast.boxes, np.concatenate(BOXES))  # plain h5py: labels exactly as given


def test_one_odd_record_falls_back_alone(written: Path) -> None:
    with h5py.File(written, "r+") as f:
        bbox = f[f["digitStruct/bbox"][2, 0]]
        del bbox["height"]
        bbox.create_dataset("height", data=[[16.0]], chunks=(1, 1), compression="gzip")
    fast, n_fallback = read_fast_counting(written)
    assert n_fallback == 1
    assert_same(fast, read_digitstruct(written, method="reference"))
    assert fast.record(2)[1][0, 4] == 16.0


def test_odd_digit_value_falls_back_for_its_record_only(written: Path) -> None:
    # The field array is understood, but one digit it points to is stored chunked and compressed.
    with h5py.File(written, "r+") as f:
        bbox = f[f["digitStruct/bbox"][1, 0]]
        targets = list(bbox["left"][:, 0])
        targets[1] = f["#refs#"].create_dataset("odd", data=[[114.0]], chunks=(1, 1), compression="gzip").ref
        del bbox["left"]
        bbox.create_dataset("left", data=np.array(targets, h5py.ref_dtype).reshape(-1, 1))
    fast, n_fallback = read_fast_counting(written)
    assert n_fallback == 1
    assert_same(fast, read_digitstruct(written, method="reference"))
    for i, want in enumerate(expected_boxes(BOXES)):
        np.testing.assert_array_equal(fast.record(i)[1], want)


def many_records(path: Path, n: int) -> list[np.ndarray]:
    """n records cycling BOXES (1, 3, 1 and 2 digits), distinct values per record; returns their boxes."""
    boxes = [b + [0, i, i, 0, 0] for i, b in ((i, BOXES[i % len(BOXES)]) for i in range(n))]
    write_digitstruct(path, [f"{i + 1}.png" for i in range(n)], boxes, created=CREATED)
    return expected_boxes(boxes)


def test_small_slices_equal_reference_with_fallbacks_in_later_slices(tmp_path: Path) -> None:
    # 30 records in slices of 7 (the last slice holds 2). Record 16 (third slice) has a field the fast path
    # does not know; record 29 (last slice) a digit value it does not know: both must come from the
    # reference parser at their own index in the file, not at their index within the slice.
    path = tmp_path / "digitStruct.mat"
    want = many_records(path, 30)
    with h5py.File(path, "r+") as f:
        bbox = f[f["digitStruct/bbox"][16, 0]]  # 16 % 4 == 0: one digit, fields inline
        value = bbox["height"][()]
        del bbox["height"]
        bbox.create_dataset("height", data=value + 1000, chunks=(1, 1), compression="gzip")
        bbox = f[f["digitStruct/bbox"][29, 0]]  # 29 % 4 == 1: three digits, fields are references
        targets = list(bbox["width"][:, 0])
        targets[2] = f["#refs#"].create_dataset("odd", data=[[2000.0]], chunks=(1, 1), compression="gzip").ref
        del bbox["width"]
        bbox.create_dataset("width", data=np.array(targets, h5py.ref_dtype).reshape(-1, 1))
    want[16][:, 4] += 1000
    want[29][2, 3] = 2000

    reference = read_digitstruct(path, method="reference")
    for slice_records in (7, 1, 29, 30, 1000):
        fast, n_fallback = _read(path, "fast", slice_records=slice_records)
        assert n_fallback == 2, slice_records
        assert_same(fast, reference)
    assert_same(read_digitstruct(path), reference)  # the default slice size
    fast, _ = _read(path, "fast", slice_records=7)
    assert fast.names == [f"{i + 1}.png" for i in range(30)]
    for i, boxes in enumerate(want):
        np.testing.assert_array_equal(fast.record(i)[1], boxes)
    # a limit ending inside a slice, after the fallback record of the third slice
    fast, n_fallback = _read(path, "fast", limit=20, slice_records=7)
    assert n_fallback == 1
    assert_same(fast, _read(path, "reference", limit=20)[0])


def test_bad_record_in_a_later_slice_is_named_by_its_index_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "digitStruct.mat"
    many_records(path, 20)
    with h5py.File(path, "r+") as f:
        del f[f["digitStruct/bbox"][15, 0]]["top"]
    with pytest.raises(DataError, match=r"digitStruct\.mat: record 15 \(16\.png\): bbox field 'top'"):
        _read(path, "fast", slice_records=7)


def test_slice_size_must_be_positive(written: Path) -> None:
    with pytest.raises(ValueError, match="slice_records must be at least 1, got 0"):
        _read(written, "fast", slice_records=0)


def test_damaged_bytes_give_the_same_answer_or_a_data_error_from_both(tmp_path: Path, written: Path) -> None:
    # Single-byte damage anywhere past the user block: the fast reader must never return records
    # the reference reader does not (it checks what HDF5 checks when it opens objects, or falls back).
    good = written.read_bytes()
    rng = np.random.default_rng(7)
    damaged = tmp_path / "damaged.mat"
    outcomes = {"same": 0, "error": 0}
    for _ in range(200):
        raw = bytearray(good)
        raw[int(rng.integers(600, len(raw)))] = int(rng.integers(256))
        damaged.write_bytes(bytes(raw))
        results = []
        for method in ("fast", "reference"):
            try:
                results.append(read_digitstruct(damaged, method=method))
            except DataError as exc:
                assert "damaged.mat" in str(exc)
                results.append(None)
        fast, ref = results
        assert (fast is None) == (ref is None)
        if fast is not None:
            assert fast.names == ref.names
            np.testing.assert_array_equal(fast.offsets, ref.offsets)
            np.testing.assert_array_equal(fast.boxes, ref.boxes)
        outcomes["same" if fast is not None else "error"] += 1
    assert outcomes["same"] > 0 and outcomes["error"] > 0


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_missing_not_hdf5_truncated_files(tmp_path: Path, written: Path, method: str) -> None:
    with pytest.raises(DataError, match=r"nothere\.mat: no such file"):
        read_digitstruct(tmp_path / "nothere.mat", method=method)
    with pytest.raises(DataError, match=r"is not a regular file"):
        read_digitstruct(tmp_path, method=method)
    text = tmp_path / "notes.mat"
    text.write_text("not an HDF5 file\n")
    with pytest.raises(DataError, match=r"notes\.mat: cannot be read as a MATLAB v7\.3.*signature"):
        read_digitstruct(text, method=method)
    cut = tmp_path / "cut.mat"
    cut.write_bytes(written.read_bytes()[: written.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.mat: cannot be read as a MATLAB v7\.3.*truncated"):
        read_digitstruct(cut, method=method)


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_missing_top_level_datasets_and_length_mismatch(tmp_path: Path, written: Path, method: str) -> None:
    no_name = tmp_path / "no_name.mat"
    no_name.write_bytes(written.read_bytes())
    with h5py.File(no_name, "r+") as f:
        del f["digitStruct/name"]
    with pytest.raises(DataError, match=r"no_name\.mat: /digitStruct/name must be a dataset of object refer.*found nothing"):
        read_digitstruct(no_name, method=method)

    no_group = tmp_path / "empty.mat"
    h5py.File(no_group, "w").close()
    with pytest.raises(DataError, match=r"empty\.mat: /digitStruct/name"):
        read_digitstruct(no_group, method=method)

    short = tmp_path / "short.mat"
    short.write_bytes(written.read_bytes())
    with h5py.File(short, "r+") as f:
        refs = f["digitStruct/bbox"][:3]
        del f["digitStruct/bbox"]
        f["digitStruct"].create_dataset("bbox", data=refs)
    with pytest.raises(DataError, match=r"short\.mat: /digitStruct/name has 4 records but /digitStruct/bbox has 3"):
        read_digitstruct(short, method=method)


@pytest.mark.parametrize("method", ["fast", "reference"])
@pytest.mark.parametrize("record", [0, 1], ids=["one-digit", "three-digit"])
def test_bad_bbox_fields_name_file_and_record(written: Path, method: str, record: int) -> None:
    with h5py.File(written, "r+") as f:
        del f[f["digitStruct/bbox"][record, 0]]["top"]
    name = re.escape(NAMES[record])
    with pytest.raises(DataError, match=rf"digitStruct\.mat: record {record} \({name}\): bbox field 'top' .*found nothing"):
        read_digitstruct(written, method=method)
    with h5py.File(written, "r+") as f:
        bbox = f[f["digitStruct/bbox"][record, 0]]
        bbox.create_dataset("top", data=np.zeros((len(BOXES[record]) + 1, 1)))
    top = len(BOXES[record]) + 1
    with pytest.raises(DataError, match=rf"digitStruct\.mat: record {record} \({name}\): .*different lengths.*top={top}"):
        read_digitstruct(written, method=method)


def test_unknown_method_is_rejected(written: Path) -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        read_digitstruct(written, method="quick")


def test_record_access() -> None:
    ds = DigitStruct(names=["a.png", "b.png"], offsets=np.array([0, 1, 3]), boxes=np.arange(15.0).reshape(3, 5))
    assert len(ds) == 2 and ds.lengths().tolist() == [1, 2]
    assert ds.record(-1)[0] == "b.png" and ds.record(1)[1].shape == (2, 5)
    with pytest.raises(IndexError):
        ds.record(2)

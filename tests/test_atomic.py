"""The one atomic-write helper: a failed write leaves the old file and no temporary behind."""

from __future__ import annotations

import json

import pytest

from housenum.atomic import atomic_path, write_json, write_text


def test_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_suffix_is_kept_for_writers_that_choose_the_format_by_it(tmp_path):
    with atomic_path(tmp_path / "sub" / "chart.png", suffix=".png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path / "sub" and tmp.name.startswith(".chart.png.")
        tmp.write_bytes(b"x")
    assert (tmp_path / "sub" / "chart.png").read_bytes() == b"x"
    write_text(tmp_path / "t.txt", "hello")
    assert (tmp_path / "t.txt").read_text() == "hello"

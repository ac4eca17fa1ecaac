"""bench/rule_figures.py: the figures the shipping rules compare, for one reader and finder, in one run."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import rule_figures  # noqa: E402


def test_the_shipped_pair_reads_small_sets_and_prints_the_rules_row(tmp_path, capsys):
    from housenum.synthetic import write_svhn_split

    test_dir = write_svhn_split(tmp_path / "svhn", "test", 14, seed=3, workers=1, progress=False)
    hand = tmp_path / "hand" / "test"
    args = ["--test-dir", str(test_dir), "--start", "2", "--n", "12", "--hand-dir", str(hand), "--hand-n", "6",
            "--crisp", "4", "--no-number", "6", "--mirror", ""]
    assert rule_figures.main(args) == 0
    out = capsys.readouterr().out
    assert "photos 2-13 of" in out  # the held-out range starts where it was asked to
    assert len(list(hand.glob("*.png"))) == 6  # the handwritten photos were made where they were missing
    header, values = out.strip().splitlines()[-2:]
    names = [c.strip() for c in header.strip("|").split("|")]
    assert names == ["held-out crops / whole", "handwritten crops / whole", "crisp read", "no-number read"]
    figures = [float(x) for x in re.findall(r"([\d.]+)%", values)]
    assert len(figures) == 6 and all(0 <= f <= 100 for f in figures)
    # the shipped reader reads most of our own generated crops around the true box (91.7 % of 2,000)
    assert figures[0] >= 50, values
    # and takes few of the no-number photos for a number (0.8 % of 1,000): at most one of these six
    assert figures[5] <= 100 / 6 + 0.01, values
    # the handwritten photos are read again, not made again, on the next run
    stamp = (hand / "digitStruct.mat").stat().st_mtime_ns
    assert rule_figures.main(args) == 0 and (hand / "digitStruct.mat").stat().st_mtime_ns == stamp

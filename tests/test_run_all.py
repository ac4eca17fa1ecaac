"""run_all.py offline: announces it, runs the whole job on synthetic data and ends in the report page."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

import run_all
from housenum import download, report
from housenum.digitstruct import write_digitstruct
from tests.helpers import run_script

OFFLINE = "cannot reach ufldl.stanford.edu (test: no network)"


@pytest.fixture
def offline(monkeypatch):
    """No network, whatever the machine has; and a synthetic fallback tiny enough for a test."""
    monkeypatch.setattr(download, "check_online", lambda timeout=5: OFFLINE)
    monkeypatch.setattr(run_all, "SYNTHETIC", run_all.Sizes(synthetic=150, steps=10, sweep_steps=6, letters_steps=6))


class InProcess:
    """Stands in for run_all's `subprocess`: each step's script runs in this process (tests.helpers.run_script)
    instead of a process of its own that imports TensorFlow anew (four of the steps do, 8-9 s each on a
    2-core CI machine). What run_all does with a step is the same; each script runs from the shell in tests
    of its own."""

    PIPE = subprocess.PIPE

    @staticmethod
    def run(cmd, stdout=None, text=True):
        assert cmd[0] == sys.executable and text
        proc = run_script(cmd[1], *cmd[2:])
        sys.stderr.write(proc.stderr)
        if stdout is None:  # not captured: to the terminal, as the process's own output would go
            sys.stdout.write(proc.stdout)
            proc.stdout = None
        return proc


def test_offline_main_command_runs_to_the_report(tmp_path, offline, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_all, "subprocess", InProcess)
    done = run_script("run_all.py", "--data-dir", "data", "--results-dir", "results", "--sweep-layers", "1",
                      "--synthetic-letters", "20", "--no-progress")
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    first = [line for line in out.splitlines() if line.strip()][0]
    assert first.startswith("offline (" + OFFLINE) and "synthetic" in first
    page_path = tmp_path / "results" / "report.html"
    page = page_path.read_text()
    assert str(page_path.resolve()) in out.splitlines()[-1]
    for key, title in report.SECTIONS:
        assert f'id="{key}"' in page and title in page, title
    # one fixed piece only missing offline with no mirror: there are no real SVHN labels, so there is
    # only the synthetic data's summary; every other table and chart is there
    assert 'class="missing"' not in page, re.findall(r'class="missing">([^<]*)', page)
    for chart in ("synthetic/svhn_widest_box.png", "synthetic/svhn_tallest_box.png", "seed_synthetic/accuracy_vs_steps.png",
                  "synthetic/layer_sweep.png", "synthetic/baselines/seed_letters/accuracy_vs_steps.png"):
        assert f'src="{chart}"' in page and (tmp_path / "results" / chart).stat().st_size > 1000, chart
    assert "offline" in page and "synthetic SVHN-format" in page
    # the readings sit beside the true numbers from the synthetic digitStruct.mat
    readings = re.search(r'id="readings".*', page, re.S).group(0)
    assert readings.count("<tr>") == 11 and "synthetic SVHN-format test photos" in readings
    assert not re.search(r"<td>\?</td>", readings)  # every true number was found
    # the sweep evaluated often enough to draw curves: several steps per configuration
    csv_rows = (tmp_path / "results" / "synthetic" / "layer_sweep.csv").read_text().splitlines()[1:]
    assert len([r for r in csv_rows if r.startswith("fc-1,")]) >= 3


def test_real_only_stops_offline_with_one_line(tmp_path, offline):
    done = run_script("run_all.py", "--data-dir", tmp_path / "d", "--results-dir", tmp_path / "r", "--real-only")
    err = done.stderr.strip()
    assert done.returncode == 1 and "\n" not in err
    assert OFFLINE in err and "--real-only" in err
    assert not (tmp_path / "d").exists()


def test_readings_table_puts_the_truth_beside_each_reading(tmp_path):
    folder = tmp_path / "test"
    folder.mkdir()
    # 1.png shows 19, 2.png shows 210 (digit 0 stored as label 10, as SVHN does)
    write_digitstruct(folder / "digitStruct.mat", ["1.png", "2.png"],
                      [np.array([[1, 1, 1, 5, 9], [9, 7, 1, 5, 9]], float),
                       np.array([[2, 1, 1, 5, 9], [1, 7, 1, 5, 9], [10, 13, 1, 5, 9]], float)])
    photos = [folder / "1.png", folder / "2.png", tmp_path / "mine.png"]
    truth = run_all.true_numbers(photos)
    stdout = "".join(f"{p}\t{n}\t0.9\n" for p, n in zip(photos, ("19", "200", "7"))) + "read 3 of 3 image(s)\n"
    rows = run_all.readings_table(stdout, truth)
    assert [(r["true"], r["right"]) for r in rows] == [("19", True), ("210", False), ("", None)]
    table = run_all.format_readings(rows)
    assert "1 of 2 read right" in table


def test_regenerating_synthetic_data_says_what_it_replaces(tmp_path):
    argv = ["--datasets", "svhn-test", "--data-dir", tmp_path, "--no-progress"]
    first = run_script("download_and_extract.py", "--synthetic", "8", *argv).stdout
    assert "replaced" not in first.replace("0 replaced", "")
    second = run_script("download_and_extract.py", "--synthetic", "16", *argv).stdout
    line = next(line for line in second.splitlines() if line.startswith("replaced:"))
    assert "--synthetic 8, seed 0" in line and "--synthetic 16, seed 0" in line and "svhn/test" in line
    assert "1 replaced" in second


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))

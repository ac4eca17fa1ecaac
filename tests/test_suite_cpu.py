"""bench/suite_cpu.py: the suite's CPU by test and by file, taken by its pytest plugin in a pytest of its own."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import suite_cpu  # noqa: E402


def test_a_run_lists_each_test_with_its_cpu_and_sums_by_file(tmp_path, capsys):
    """A pytest of its own in one process (-n 0): every test listed, the CPU of a test's subprocess in its
    subprocess column and a test's own in its own column; the sums by file count every test."""
    (tmp_path / "test_busy.py").write_text(
        "import subprocess, sys\n"
        "def test_own():\n    sum(i * i for i in range(3_000_000))\n"
        "def test_child():\n    subprocess.run([sys.executable, '-c', 'sum(i * i for i in range(3_000_000))'], check=True)\n"
        "def test_idle():\n    pass\n")
    code = suite_cpu.main(["--top", "100", "--", str(tmp_path / "test_busy.py"), "tests/test_atomic.py", "-n", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("pytest exit 0:") and "passed" in out.splitlines()[0]
    listed = {line.split()[-1].split("::")[-1]: [float(x) for x in line.split()[:4]] for line in out.splitlines()
              if "::" in line}
    assert {"test_own", "test_child", "test_idle"} <= set(listed) and len(listed) >= 5
    own, child, idle = listed["test_own"], listed["test_child"], listed["test_idle"]
    assert own[1] > 0.1 and own[2] == 0 and child[2] > 0.1 and child[2] > 5 * idle[0]
    files = [line.split() for line in out.splitlines() if line.endswith(".py")]
    assert sorted(f[-1].split("/")[-1] for f in files) == ["test_atomic.py", "test_busy.py"]
    assert sum(int(f[2]) for f in files) == len(listed)


def test_report_orders_tests_by_cpu_and_files_by_their_sum():
    rows = [("tests/a.py::x", 5.0, 1.0, 0.0), ("tests/b.py::y", 2.0, 0.5, 3.0), ("tests/a.py::z", 1.0, 2.0, 0.0)]
    text = suite_cpu.report(rows, wall=4.0, cpu=8.0, top=2)
    lines = text.splitlines()
    assert "4 s wall, 8 s CPU" in lines[0] and "2.00 cores" in lines[0] and "3 tests" in lines[0]
    tests = [line.split()[-1] for line in lines if "::" in line]
    assert tests == ["tests/b.py::y", "tests/a.py::z"]  # 3.5 s, then 2.0 s; the third left out by --top
    files = [line.split() for line in lines if line.endswith(".py")]
    assert [(f[-1], float(f[0]), int(f[2])) for f in files] == [("tests/b.py", 3.5, 1), ("tests/a.py", 3.0, 2)]

"""Where the test suite's time goes: each test's wall time and CPU (its own process's and its subprocesses'),
the largest tests and the sums by file. Prints figures only.

On a 2-core machine the suite is CPU-bound (`-n 2`: both workers busy to the end), so its wall time is
about its CPU over two, and the CPU column says what a cut would save; a test's wall time also holds
the time it waited for the other worker's.

  .venv/bin/python bench/suite_cpu.py                            # the suite as .ci/run runs it
  .venv/bin/python bench/suite_cpu.py --top 10 -- tests/test_train.py -n 0

This module is also the pytest plugin that takes the figures (`-p suite_cpu`, with bench/ on the path).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = "SUITE_CPU_DIR"  # where each pytest process writes its rows

_rows: list[tuple[str, float, float, float]] = []


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its finished subprocesses."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Setup, call and teardown of one test: its fixtures' cost goes to the first test that needs them."""
    wall, (own, children) = time.perf_counter(), _cpu()
    yield
    wall2, (own2, children2) = time.perf_counter(), _cpu()
    node = item.nodeid if not item.nodeid.startswith("::") else f"{item.path}{item.nodeid}"  # a file outside the repo
    _rows.append((node, wall2 - wall, own2 - own, children2 - children))


def pytest_sessionfinish(session):
    folder = os.environ.get(OUT_DIR)
    if folder and _rows:
        name = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(Path(folder) / f"{name}.tsv", "w") as f:
            f.writelines(f"{node}\t{w:.2f}\t{o:.2f}\t{c:.2f}\n" for node, w, o, c in _rows)


def read_rows(folder: Path) -> list[tuple[str, float, float, float]]:
    rows = []
    for path in sorted(folder.glob("*.tsv")):
        for line in path.read_text().splitlines():
            node, *numbers = line.split("\t")
            rows.append((node, *map(float, numbers)))
    return rows


def report(rows, wall: float, cpu: float, top: int) -> str:
    lines = [f"suite: {wall:.0f} s wall, {cpu:.0f} s CPU of pytest and everything it started "
             f"({cpu / max(wall, 1e-9):.2f} cores busy on average); {len(rows)} tests, {sum(r[2] + r[3] for r in rows):.0f} s "
             f"of CPU inside them", "", f"{'CPU s':>7} {'own':>6} {'subproc':>7} {'wall s':>7}  test (largest {top})"]
    for node, w, own, children in sorted(rows, key=lambda r: -(r[2] + r[3]))[:top]:
        lines.append(f"{own + children:7.1f} {own:6.1f} {children:7.1f} {w:7.1f}  {node}")
    by_file = defaultdict(lambda: [0, 0.0, 0.0])
    for node, w, own, children in rows:
        entry = by_file[node.split("::")[0]]
        entry[0] += 1
        entry[1] += own + children
        entry[2] += w
    lines += ["", f"{'CPU s':>7} {'wall s':>7} {'tests':>5}  file"]
    for name, (n, c, w) in sorted(by_file.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"{c:7.1f} {w:7.1f} {n:5d}  {name}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--top", type=int, default=25, help="how many of the largest tests to list")
    p.add_argument("pytest_args", nargs="*", help="pytest's arguments (after --); default: the suite as configured")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, OUT_DIR: folder,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "bench"), os.environ.get("PYTHONPATH")]))}
        start, (_, before) = time.perf_counter(), _cpu()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "suite_cpu", "-p", "no:cacheprovider", "-q",
                               *args.pytest_args], cwd=REPO, env=env, capture_output=True, text=True)
        wall, cpu = time.perf_counter() - start, _cpu()[1] - before
        rows = read_rows(Path(folder))
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-1:]
    print(f"pytest exit {proc.returncode}: {tail[0] if tail else proc.stderr.strip()[-300:]}")
    if not rows:
        print("no figures: no test ran", file=sys.stderr)
        return 1
    print(report(rows, wall, cpu, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: synthetic SVHN generation speed (images/s), one worker against several.

Writes a split of --n images into a temporary folder under /tmp (removed afterwards) once per worker
count in --workers, and prints images, seconds and images/s for each; with --archives it also times
write_svhn_archives for `--synthetic N` sizes (train N, test N/4, extra N/10, tar.gz included). Beside
wall-clock images/s it prints CPU ms per image (the whole machine's CPU during the run: the workers are the
forkserver's children, not this process's; on a shared machine other jobs add to it) and the load average
before the run. Prints figures only; asserts nothing.

  .venv/bin/python bench/bench_synthetic.py                          # 2,000 images, 1 and 2 workers
  .venv/bin/python bench/bench_synthetic.py --n 20000 --workers 2    # the 20,000-number target
  .venv/bin/python bench/bench_synthetic.py --n 2000 --workers 2 --archives
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum import synthetic  # noqa: E402
from housenum.cli import make_parser, run  # noqa: E402
from housenum.errors import DataError  # noqa: E402


def cpu_seconds() -> float:
    """User + system CPU time of the whole machine (Linux's /proc/stat), else of this process and its
    finished children. The drawing workers are children of multiprocessing's forkserver, not of this
    process, so rusage does not see them while the server lives: on an idle machine the machine's CPU is
    the generator's; the load average printed first says how idle it was."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return (int(fields[1]) + int(fields[2]) + int(fields[3])) / os.sysconf("SC_CLK_TCK")  # user, nice, system
    except (OSError, ValueError, IndexError):
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--n", type=int, default=2000, help="images per timed split")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    parser.add_argument("--seed", type=int, default=0, help="generation seed")
    parser.add_argument("--archives", action="store_true", help="also time write_svhn_archives(split_sizes(n))")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="folder for the temporary output")
    args = parser.parse_args(argv)
    if args.n < 1 or any(w < 1 for w in args.workers):
        raise DataError(f"--n and --workers: expected positive integers, got {args.n} and {args.workers}")

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {load}")
    print(f"{'what':<34} {'images':>8} {'seconds':>9} {'images/s':>9} {'CPU ms/img':>11} {'MB':>8}")
    for workers in args.workers:
        work = Path(tempfile.mkdtemp(dir=args.tmp, prefix="bench-synthetic-"))
        try:
            t0, c0 = time.perf_counter(), cpu_seconds()
            folder = synthetic.write_svhn_split(work, "train", args.n, args.seed, workers=workers, progress=False)
            dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            print(f"{f'write_svhn_split, {workers} worker(s)':<34} {args.n:>8} {dt:>9.2f} {args.n / dt:>9.1f} "
                  f"{1000 * cpu / args.n:>11.1f} {mb:>8.1f}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.archives:
        sizes = synthetic.split_sizes(args.n)
        total = sum(sizes.values())
        workers = max(args.workers)
        work = Path(tempfile.mkdtemp(dir=args.tmp, prefix="bench-synthetic-"))
        try:
            t0, c0 = time.perf_counter(), cpu_seconds()
            paths = synthetic.write_svhn_archives(work, sizes, seed=args.seed, workers=workers, progress=False)
            dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            mb = sum(p.stat().st_size for p in paths) / 1e6
            print(f"{f'write_svhn_archives, {workers} worker(s)':<34} {total:>8} {dt:>9.2f} {total / dt:>9.1f} "
                  f"{1000 * cpu / total:>11.1f} {mb:>8.1f}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run(main)

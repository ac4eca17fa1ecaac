#!/usr/bin/env python3
"""Benchmark: preprocess_svhn.py at SVHN scale: wall time, images/s and peak memory of the process tree.

Real SVHN pixels are not on this machine, so the benchmark builds an SVHN-format tree of the real scale
cheaply: a pool of --pool synthetic numbers is rendered once (housenum.synthetic.write_svhn_split), then
train/ (--train records), extra/ (--extra) and test/ (--test) whose records cycle through the pool: each
PNG is a hard link to a pool image (no extra disk) and digitStruct.mat (write_digitstruct) holds the
matching boxes. Everything is cached under --work-dir and reused by later runs (writing extra's 200k
records takes minutes); the preprocessed output is deleted after each run unless --keep-output.

Each measurement runs the real `preprocess_svhn.py` in a subprocess and samples, every --interval s,
VmRSS (and RssAnon, and PSS from smaps_rollup, which shares copy-on-write pages fairly between the parent
and its forked workers) of the process and all its descendants; it prints the peak of the tree's sum,
each process's own peak, and ru_maxrss (largest single process) both from wait4() for this run and
from getrusage(RUSAGE_CHILDREN) (cumulative over this benchmark). CPU s per image comes from wait4()
too: unlike images/s it is not distorted by other jobs on a shared machine. Per-sample figures are kept
in <work-dir>/runs/<run>.samples.csv. Prints figures only; asserts nothing.

First the comparison: a --small record tree (train + --test records, no extra) with --workers 1 and 2
(the second core's speed-up), --repeat times; then, unless --skip-full, train + extra + test with
--full-workers, checked against --limit-mb (the issue: train+extra within 4 GB of RAM).

  .venv/bin/python bench/bench_preprocess.py --skip-full                  # 20,000-record comparison only
  .venv/bin/python bench/bench_preprocess.py                  # + full scale: ~5 min to build once, ~1 min a run
  .venv/bin/python bench/bench_preprocess.py --train 8000 --extra 20000 --small 8000 --pool 500
  rm -rf /tmp/housenum-bench-preprocess                                   # free the cached trees
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum.cli import make_parser, run
from housenum.errors import DataError

SCRIPT = REPO / "preprocess_svhn.py"
MB = 1024 * 1024
LINK_MAX = 65_000  # ext4's limit on hard links per inode; other file systems allow as many or more


# ------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class TreeSpec:
    """An SVHN-format tree built from a pool of synthetic images (the defaults: the official full scale)."""

    train: int = 33_402  # records in train/ (official train split)
    extra: int = 202_353  # records in extra/ (official extra split); 0 = no extra/
    test: int = 1_000  # records in test/ (official: 13,068): small, the bound is about train + extra
    pool: int = 3_000  # distinct synthetic images the records cycle through (hard links)
    seed: int = 0  # generation seed of the pool

    @property
    def records(self) -> int:
        return self.train + self.extra + self.test


@dataclass
class RunResult:
    """One measured run of preprocess_svhn.py."""

    label: str
    records: int  # records in the tree's digitStruct.mat files (all have an image)
    workers: int
    seconds: float  # wall clock of the whole script (label parsing, image work, HDF5 writing, plots)
    cpu_seconds: float  # user + system of the script and its workers (wait4)
    peak_rss_mb: float  # max over samples of the sum of VmRSS over the process tree
    peak_anon_mb: float  # max over samples of the sum of RssAnon (VmRSS without file-backed pages)
    peak_pss_mb: float  # max over samples of the sum of PSS (shared pages split between sharers); nan if absent
    per_process_mb: dict[str, float] = field(default_factory=dict)  # "parent"/"worker <pid>" -> own peak VmRSS
    ru_maxrss_mb: float = 0.0  # wait4: largest single process of this run
    ru_children_mb: float = 0.0  # getrusage(RUSAGE_CHILDREN) after the run: largest child of the benchmark so far
    output_mb: float = 0.0  # size of the written HDF5 file
    output_rows: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # records preprocess_svhn skipped (expected 0: every record has an image)
    load_before: float = 0.0  # 1-minute load average when the run started
    load_after: float = 0.0
    peak_at_s: float = 0.0  # time of the tree's RSS peak after the start
    alone_peak_mb: float = 0.0  # peak VmRSS while the script ran without workers (label parsing, writing)
    alone_peak_anon_mb: float = 0.0  # RssAnon at that moment (the rest is file-backed: the memmapped .mat)
    pool_peak_mb: float = 0.0  # peak of the tree's VmRSS sum while workers were alive (image work)
    pool_peak_pss_mb: float = 0.0  # peak of the tree's PSS sum while workers were alive

    @property
    def images_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def worker_peak_mb(self) -> float:
        return max((v for k, v in self.per_process_mb.items() if k != "parent"), default=0.0)


# ---------------------------------------------------------------------------------------- building
@dataclass
class Pool:
    folder: Path
    boxes: list  # (n, 5) float64 per pool image, digitstruct.FIELDS order
    seed: int

    @property
    def size(self) -> int:
        return len(self.boxes)


def build_pool(base: Path, n: int, seed: int) -> Pool:
    """Render (or reuse) `n` synthetic numbers in base/pool/ and read their boxes back."""
    from housenum.digitstruct import read_digitstruct
    from housenum.synthetic import write_svhn_split

    mat = base / "pool" / "digitStruct.mat"
    ds = None
    if mat.is_file():
        try:
            ds = read_digitstruct(mat)
        except DataError:
            ds = None  # a damaged cache is rebuilt, not trusted
    if ds is None or len(ds) != n:
        print(f"rendering a pool of {n:,} synthetic numbers in {base / 'pool'}", flush=True)
        write_svhn_split(base, "pool", n, seed, workers=2, progress=True)  # built aside, renamed when complete
        ds = read_digitstruct(mat)
    if ds.names != [f"{i}.png" for i in range(1, n + 1)]:
        raise DataError(f"{mat}: expected images 1.png..{n}.png, got {ds.names[:3]}...; delete {base} and rerun")
    return Pool(base / "pool", [ds.record(i)[1] for i in range(n)], seed)


def build_split(root: Path, split: str, n: int, pool: Pool) -> Path:
    """root/<split>/ with n records cycling through the pool (hard links + digitStruct.mat); reused when
    its marker says it was built from the same pool with the same count."""
    from tqdm import tqdm

    from housenum.digitstruct import write_digitstruct
    from housenum.synthetic import MATLAB_CREATED

    final = root / split
    marker = root / f".{split}.bench.json"
    want = {"records": n, "pool": str(pool.folder.resolve()), "pool_size": pool.size, "seed": pool.seed}
    try:
        if json.loads(marker.read_text()) == want and (final / "digitStruct.mat").is_file():
            return final
    except (OSError, ValueError):
        pass
    root.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)  # the marker is written last: no marker, no trust
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{split}.tmp-"))
    try:
        names = [f"{i}.png" for i in range(1, n + 1)]
        for i, name in enumerate(tqdm(names, desc=f"linking {split}", unit="img", file=sys.stderr)):
            try:
                os.link(pool.folder / f"{i % pool.size + 1}.png", tmp / name)
            except OSError as exc:
                raise DataError(f"{tmp / name}: cannot hard-link to the pool image in {pool.folder} ({exc}); "
                                f"--work-dir must be on a file system with hard links") from None
        t0 = time.perf_counter()
        print(f"writing {split}/digitStruct.mat ({n:,} records)", flush=True)
        write_digitstruct(tmp / "digitStruct.mat", names, [pool.boxes[i % pool.size] for i in range(n)],
                          created=MATLAB_CREATED)
        print(f"  wrote it in {time.perf_counter() - t0:.0f} s", flush=True)
        os.chmod(tmp, 0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # preprocess_svhn reads the origin from step 1's marker: say these are synthetic
    _write_json(root / f".{split}.extracted.json", {"origin": "synthetic", "by": "bench/bench_preprocess.py"})
    _write_json(marker, want)
    return final


def build_tree(root: Path, spec: TreeSpec, pool: Pool) -> Path:
    """root/svhn/{train,test[,extra]} as preprocess_svhn.py expects under --data-dir root."""
    svhn = root / "svhn"
    for split, n in (("train", spec.train), ("test", spec.test), ("extra", spec.extra)):
        if n:
            build_split(svhn, split, n, pool)
        elif (svhn / split).exists():
            shutil.rmtree(svhn / split)  # a left-over extra/ would silently join training
            (svhn / f".{split}.bench.json").unlink(missing_ok=True)
    return root


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------- measuring
def _descendants(root: int) -> list[int]:
    """root and all its descendants, from a scan of /proc (this kernel has no task/<tid>/children)."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited between the listing and the read
        # the command name may hold spaces or ')': ppid is the 2nd field after the last ')'
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def _memory_kb(pid: int) -> tuple[int, int, int] | None:
    """(VmRSS, RssAnon, Pss or -1) in kB, or None if the process has gone."""
    rss = anon = None
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except OSError:
        return None
    if rss is None:  # a zombie has no memory lines
        return None
    pss = -1
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except OSError:
        pass
    return rss, anon or 0, pss


def measure(label: str, data_dir: Path, runs_dir: Path, workers: int, records: int, interval: float,
            keep_output: bool) -> RunResult:
    """Run preprocess_svhn.py on data_dir/svhn once and measure it (see the module docstring)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    out = runs_dir / f"{label}.h5"
    results = runs_dir / f"{label}-results"
    log_path = runs_dir / f"{label}.log"
    cmd = [sys.executable, str(SCRIPT), "--data-dir", str(data_dir), "--out", str(out),
           "--results-dir", str(results), "--workers", str(workers)]
    print(f"\n[{label}] {' '.join(cmd)}\n  (stdout in {log_path}; progress bars below)", flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    load_before = os.getloadavg()[0]
    per_pid: dict[int, float] = {}
    peak = [0.0, 0.0, 0.0]  # rss, anon, pss (MB)
    peak_at = 0.0
    alone = [0.0, 0.0]  # VmRSS, RssAnon at the peak without workers
    pool = [0.0, 0.0]  # VmRSS, PSS peaks with workers
    pss_seen = True
    with open(log_path, "w") as log, open(runs_dir / f"{label}.samples.csv", "w", newline="") as samples:
        writer = csv.writer(samples)
        writer.writerow(["t_s", "processes", "rss_mb", "rss_anon_mb", "pss_mb", "parent_rss_mb"])
        t0 = time.perf_counter()
        # own session: Ctrl-C here stops the benchmark, which then ends this child's group by its id
        proc = subprocess.Popen(cmd, stdout=log, stderr=None, env=env, cwd=REPO, start_new_session=True)
        try:
            while True:
                t = time.perf_counter() - t0
                tot = [0, 0, 0]
                parent_kb = 0
                pids = _descendants(proc.pid)
                for pid in pids:
                    m = _memory_kb(pid)
                    if m is None:
                        continue
                    tot[0] += m[0]
                    tot[1] += m[1]
                    if m[2] < 0:
                        pss_seen = False
                    tot[2] += max(m[2], 0)
                    per_pid[pid] = max(per_pid.get(pid, 0.0), m[0] / 1024)
                    if pid == proc.pid:
                        parent_kb = m[0]
                if tot[0] / 1024 > peak[0]:
                    peak_at = t
                peak = [max(p, v / 1024) for p, v in zip(peak, tot)]
                if len(pids) == 1 and tot[0] / 1024 > alone[0]:
                    alone = [tot[0] / 1024, tot[1] / 1024]
                elif len(pids) > 1:
                    pool = [max(pool[0], tot[0] / 1024), max(pool[1], tot[2] / 1024)]
                writer.writerow([f"{t:.2f}", len(pids), f"{tot[0] / 1024:.1f}", f"{tot[1] / 1024:.1f}",
                                 f"{tot[2] / 1024:.1f}", f"{parent_kb / 1024:.1f}"])
                done, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if done:
                    break
                time.sleep(interval)
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait()
            raise
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 above: tell Popen
    if proc.returncode != 0:
        tail = log_path.read_text()[-2000:]
        raise DataError(f"[{label}] preprocess_svhn.py exited {proc.returncode}; last output:\n{tail}")
    summary = json.loads((results / "svhn_summary.json").read_text())
    skipped = sum(sum(s["skipped"].values()) for s in summary["splits"].values())
    output_mb = out.stat().st_size / MB
    if not keep_output:
        out.unlink()
    ru_self = usage.ru_maxrss / 1024  # kB on Linux
    ru_kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    names = {proc.pid: "parent"}
    return RunResult(
        label=label, records=records, workers=workers, seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=peak[0], peak_anon_mb=peak[1], peak_pss_mb=peak[2] if pss_seen else math.nan,
        per_process_mb={names.get(p, f"worker {p}"): round(v, 1) for p, v in per_pid.items()},
        ru_maxrss_mb=ru_self, ru_children_mb=ru_kids, output_mb=output_mb, output_rows=summary["output_rows"],
        skipped=skipped, load_before=load_before, load_after=os.getloadavg()[0], peak_at_s=peak_at,
        alone_peak_mb=alone[0], alone_peak_anon_mb=alone[1], pool_peak_mb=pool[0], pool_peak_pss_mb=pool[1],
    )


# -------------------------------------------------------------------------------------------- report
def print_table(results: list[RunResult], limit_mb: float) -> None:
    head = (f"{'run':<16} {'records':>8} {'workers':>7} {'seconds':>8} {'images/s':>9} {'CPU ms/img':>10} "
            f"{'RSS tree MB':>11} {'anon MB':>8} {'PSS MB':>7} {'parent MB':>9} {'worker MB':>9} "
            f"{'maxrss MB':>9} {'output MB':>9} {'load':>9}")
    print("\n" + head)
    print("-" * len(head))
    for r in results:
        print(f"{r.label:<16} {r.records:>8,} {r.workers:>7} {r.seconds:>8.1f} {r.images_per_s:>9.0f} "
              f"{1000 * r.cpu_seconds / r.records:>10.2f} {r.peak_rss_mb:>11.0f} {r.peak_anon_mb:>8.0f} "
              f"{r.peak_pss_mb:>7.0f} {r.per_process_mb.get('parent', 0):>9.0f} {r.worker_peak_mb:>9.0f} "
              f"{r.ru_maxrss_mb:>9.0f} {r.output_mb:>9.0f} {r.load_before:>4.1f}>{r.load_after:<4.1f}")
    print("MB = 2**20 bytes. RSS tree: peak of the sum of VmRSS over the script and its workers (counts "
          "copy-on-write pages shared after fork once per process: an upper bound); anon: the same without file-backed pages; "
          "PSS: shared pages split between sharers (the tree's real footprint); maxrss: wait4 ru_maxrss, the "
          "largest single process; load: 1-minute load average before>after.")
    for r in results:
        rows = ", ".join(f"{k} {v:,}" for k, v in r.output_rows.items())
        procs = ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.per_process_mb.items(), key=lambda kv: kv[0] != "parent"))
        print(f"[{r.label}] rows written: {rows}; skipped {r.skipped}; CPU {r.cpu_seconds:.0f} s "
              f"({r.cpu_seconds / r.seconds:.2f} cores busy); tree peak at {r.peak_at_s:.0f} s; "
              f"per-process peak VmRSS MB: {procs}; RUSAGE_CHILDREN ru_maxrss so far {r.ru_children_mb:.0f} MB")
        pooled = (f"{r.pool_peak_mb:.0f} MB VmRSS sum, {r.pool_peak_pss_mb:.0f} MB PSS" if r.pool_peak_mb
                  else "none (one process)")
        print(f"[{r.label}] script alone (no workers: labels, writing): peak {r.alone_peak_mb:.0f} MB VmRSS "
              f"({r.alone_peak_anon_mb:.0f} MB anon, the rest file-backed); with workers (images): {pooled}")
    by_workers = {}
    for r in results:
        if r.label.startswith("small"):
            by_workers.setdefault(r.workers, []).append(r.seconds)
    if 1 in by_workers and 2 in by_workers:
        one, two = min(by_workers[1]), min(by_workers[2])
        print(f"speed-up of the second worker (best of each, small tree): {one / two:.2f}x "
              f"({one:.1f} s -> {two:.1f} s)")
    for r in results:
        if r.label.startswith("full"):
            verdict = "holds" if r.peak_rss_mb <= limit_mb else "DOES NOT hold"
            print(f"[{r.label}] memory bound {limit_mb:.0f} MB {verdict}: tree peak {r.peak_rss_mb:.0f} MB VmRSS "
                  f"(anon {r.peak_anon_mb:.0f} MB, PSS {r.peak_pss_mb:.0f} MB)")


# ---------------------------------------------------------------------------------------------- main
def _count(text: str) -> int:
    v = int(text)
    if v < 0:
        raise ValueError(text)
    return v


def main(argv: Sequence[str] | None = None) -> int:
    d = TreeSpec()
    p = make_parser(__doc__)
    p.add_argument("--work-dir", default="/tmp/housenum-bench-preprocess",
                   help="cache of the pool and the built trees (and run logs); reused by later runs")
    p.add_argument("--train", type=_count, default=d.train, help="train records of the full tree")
    p.add_argument("--extra", type=_count, default=d.extra, help="extra records of the full tree (0: none)")
    p.add_argument("--test", type=_count, default=d.test, help="test records of both trees")
    p.add_argument("--pool", type=_count, default=d.pool, help="distinct synthetic images the records cycle through")
    p.add_argument("--seed", type=int, default=d.seed, help="generation seed of the pool")
    p.add_argument("--small", type=_count, default=20_000,
                   help="train records of the 1-vs-2 worker comparison tree (0: no comparison)")
    p.add_argument("--repeat", type=_count, default=1, help="times to run the 1-vs-2 worker comparison")
    p.add_argument("--full-workers", type=int, default=2, help="workers of the full-scale run")
    p.add_argument("--skip-full", action="store_true", help="only the small comparison")
    p.add_argument("--limit-mb", type=float, default=4096, help="memory bound checked on the full run (MB)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    p.add_argument("--keep-output", action="store_true", help="keep the preprocessed HDF5 files in <work-dir>/runs")
    args = p.parse_args(argv)

    if args.pool < 1 or args.train < 1 or args.test < 1 or args.full_workers < 1 or args.interval <= 0:
        raise DataError(f"--pool, --train, --test, --full-workers and --interval must be positive; got {args.pool}, "
                        f"{args.train}, {args.test}, {args.full_workers}, {args.interval}")
    if args.small and args.small <= 5684:
        raise DataError(f"--small: expected more train records than the 5,684 validation rows preprocess_svhn.py "
                        f"holds out, got {args.small}")
    full = TreeSpec(train=args.train, extra=args.extra, test=args.test, pool=args.pool, seed=args.seed)
    small = TreeSpec(train=args.small, extra=0, test=args.test, pool=args.pool, seed=args.seed)
    links = math.ceil(((0 if args.skip_full else full.records) + (small.records if args.small else 0)) / args.pool)
    if links + 1 > LINK_MAX:
        need = math.ceil(links * args.pool / LINK_MAX)
        raise DataError(f"--pool {args.pool}: each pool image would need {links:,} hard links, more than a file "
                        f"system allows ({LINK_MAX:,}); expected --pool of at least {need}")

    work = Path(args.work_dir)
    base = work / f"pool{args.pool}-seed{args.seed}"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB RAM, "
          f"Python {platform.python_version()}, load average {load}")
    pool = build_pool(base, args.pool, args.seed)
    runs = work / "runs"
    results: list[RunResult] = []
    if args.small:
        root = build_tree(base / f"small-{small.train}", small, pool)
        for k in range(args.repeat):
            for workers in (1, 2):
                results.append(measure(f"small-w{workers}-{k + 1}", root, runs, workers, small.records,
                                       args.interval, args.keep_output))
    if not args.skip_full:
        root = build_tree(base / "full", full, pool)
        results.append(measure(f"full-w{args.full_workers}", root, runs, args.full_workers, full.records,
                               args.interval, args.keep_output))
    print_table(results, args.limit_mb)
    print(f"\ncached trees in {base} (remove with: rm -rf {work})")
    return 0


if __name__ == "__main__":
    run(main)

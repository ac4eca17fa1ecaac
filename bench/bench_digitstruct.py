"""Benchmark: fast vs reference digitStruct.mat reader on the same file, side by side.

Extracts <split>/digitStruct.mat from the mirror's archive into a temporary folder (not timed), runs the
fast reader (best of --repeat) and the reference h5py reader once, checks that they agree record for
record, and prints records, digits, seconds, records/s and the speed ratio. Asserts nothing about speed.

  .venv/bin/python bench/bench_digitstruct.py                     # full train file (~1-2 min, mostly reference)
  .venv/bin/python bench/bench_digitstruct.py --limit 2000        # first 2,000 records, seconds
  .venv/bin/python bench/bench_digitstruct.py --file /tmp/test/digitStruct.mat
  .venv/bin/python bench/bench_digitstruct.py --memory           # peak RSS of each reader, fresh processes
  .venv/bin/python bench/bench_digitstruct.py --slice-records 20000 --repeat 5   # another fast-reader slice size

--memory parses the file once per method in a fresh Python process (so earlier runs cannot raise the
peak) and prints its peak RSS (getrusage ru_maxrss: anonymous memory plus mapped file pages), its peak
anonymous RSS (RssAnon in /proc/self/status, sampled every 5 ms) and both before the read (interpreter,
numpy, h5py), then checks that the two methods' results are identical (SHA-256 of names, offsets, boxes).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from housenum.cli import make_parser, run  # noqa: E402
# _read also reports the records sent to the fallback and takes the fast reader's slice size.
from housenum.digitstruct import _SLICE_RECORDS, _read  # noqa: E402
from housenum.errors import DataError  # noqa: E402

DEFAULT_MIRROR = REPO.parent / "shared" / "data" / "svhn"


def extract(archive: Path, split: str, out_dir: Path) -> Path:
    """Copy <split>/digitStruct.mat out of the archive, with a byte progress bar."""
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found; expected the mirror's {split}.tar.gz (see --mirror)")
    member_name = f"{split}/digitStruct.mat"
    out = out_dir / "digitStruct.mat"
    try:
        with tarfile.open(archive) as tar:
            member = tar.getmember(member_name)
            with tar.extractfile(member) as src, open(out, "wb") as dst, tqdm(
                total=member.size, unit="B", unit_scale=True, desc=f"extract {member_name}"
            ) as bar:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    bar.update(len(chunk))
    except KeyError:
        raise DataError(f"{archive}: has no member {member_name}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: cannot be read as a .tar.gz archive: {exc}") from None
    return out


def timed(path: Path, method: str, limit: int | None, slice_records: int | None = None):
    start = time.perf_counter()
    ds, n_fallback = _read(path, method, limit, slice_records=slice_records if method == "fast" else None)
    return time.perf_counter() - start, ds, n_fallback


def bench(path: Path, limit: int | None, repeat: int, slice_records: int | None) -> None:
    fast_times = []
    for _ in tqdm(range(repeat), desc="fast", unit="run"):
        seconds, fast, n_fallback = timed(path, "fast", limit, slice_records)
        fast_times.append(seconds)
    print(f"reference run: every object through h5py, {len(fast):,} records ...", flush=True)
    ref_seconds, ref, _ = timed(path, "reference", limit)

    same = (
        fast.names == ref.names
        and np.array_equal(fast.offsets, ref.offsets)
        and np.array_equal(fast.boxes, ref.boxes)
    )
    if not same:
        raise DataError(f"{path}: fast and reference readers disagree; this is a bug in housenum/digitstruct.py")

    best = min(fast_times)
    size_mb = path.stat().st_size / 1e6
    lengths = np.bincount(fast.lengths())
    print()
    print(f"file      {path} ({size_mb:.1f} MB){'' if limit is None else f', first {limit:,} records'}")
    cpu = platform.processor() or platform.machine()
    print(f"machine   {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"records   {len(fast):,}   digits {len(fast.boxes):,}   "
          f"records with 1..{len(lengths) - 1} digits: {lengths[1:].tolist()}")
    print(f"agree     yes (names, offsets and boxes identical); fast path fell back on {n_fallback:,} records")
    print(f"{'method':<10} {'seconds':>9} {'records/s':>12}")
    runs = ", ".join(f"{t:.3f}" for t in fast_times)
    print(f"{'fast':<10} {best:>9.3f} {len(fast) / best:>12,.0f}   best of {repeat}: {runs}; "
          f"{slice_records or _SLICE_RECORDS:,} records per slice")
    print(f"{'reference':<10} {ref_seconds:>9.3f} {len(ref) / ref_seconds:>12,.0f}")
    print(f"ratio     fast is {ref_seconds / best:.1f}x faster than reference")


# Runs in a fresh interpreter: python -c MEMORY_CHILD <file> <method> <limit or ""> <repo> <slice or "">;
# prints one JSON line.
MEMORY_CHILD = """
import hashlib, json, resource, sys, threading, time
sys.path.insert(0, sys.argv[4])
from housenum.digitstruct import _read

def rss_anon_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0

peak = [rss_anon_kib()]
before = {"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "anon_kib": peak[0]}
done = threading.Event()

def sample():
    while not done.wait(0.005):
        peak[0] = max(peak[0], rss_anon_kib())

sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
start = time.perf_counter()
limit, slice_records = (int(a) if a else None for a in (sys.argv[3], sys.argv[5]))
ds, n_fallback = _read(sys.argv[1], sys.argv[2], limit, slice_records=slice_records)
seconds = time.perf_counter() - start
done.set()
sampler.join()
peak[0] = max(peak[0], rss_anon_kib())
peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before the digest's copies below
digest = hashlib.sha256()
digest.update("\\n".join(ds.names).encode("utf-8", "surrogatepass"))
digest.update(ds.offsets.tobytes())
digest.update(ds.boxes.tobytes())
print(json.dumps({
    "records": len(ds), "fallback": n_fallback, "seconds": seconds, "digest": digest.hexdigest(),
    "before_rss_kib": before["rss_kib"], "before_anon_kib": before["anon_kib"],
    "peak_rss_kib": peak_rss, "peak_anon_kib": peak[0],
}))
"""


def measure_memory(path: Path, method: str, limit: int | None, slice_records: int | None) -> dict:
    """Parse the file in a fresh process; its peak RSS and RssAnon (KiB), seconds, result digest."""
    limit_arg = "" if limit is None else str(limit)
    slices = "" if slice_records is None or method != "fast" else str(slice_records)
    cmd = [sys.executable, "-c", MEMORY_CHILD, str(path), method, limit_arg, str(REPO), slices]
    # Not check=True: a failing child's last stderr line (its error) makes a one-line message here.
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"{path}: the {method} reader failed in its measuring process: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(path: Path, limit: int | None, slice_records: int | None) -> None:
    results = {}
    for method in tqdm(("fast", "reference"), desc="fresh process per method", unit="method"):
        results[method] = measure_memory(path, method, limit, slice_records)
    fast, ref = results["fast"], results["reference"]
    if fast["digest"] != ref["digest"] or fast["records"] != ref["records"]:
        raise DataError(f"{path}: fast and reference readers disagree; this is a bug in housenum/digitstruct.py")

    mib = 1024
    size_mb = path.stat().st_size / 1e6
    print()
    print(f"file      {path} ({size_mb:.1f} MB){'' if limit is None else f', first {limit:,} records'}")
    cpu = platform.processor() or platform.machine()
    print(f"machine   {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"records   {fast['records']:,}   agree: yes (SHA-256 of names, offsets, boxes); "
          f"fast path fell back on {fast['fallback']:,} records; {slice_records or _SLICE_RECORDS:,} records per slice")
    print("peak memory of a fresh process parsing the file (MiB; 'before' = after imports, before the read)")
    print(f"{'method':<10} {'seconds':>9} {'peak RSS':>9} {'before':>7} {'peak anon':>10} {'before':>7} "
          f"{'KB/record':>10}")
    for method, r in results.items():
        per_record = (r["peak_rss_kib"] - r["before_rss_kib"]) * 1.024 / max(r["records"], 1)
        print(f"{method:<10} {r['seconds']:>9.2f} {r['peak_rss_kib'] / mib:>9.0f} {r['before_rss_kib'] / mib:>7.0f} "
              f"{r['peak_anon_kib'] / mib:>10.0f} {r['before_anon_kib'] / mib:>7.0f} {per_record:>10.2f}")
    print("(KB/record: peak RSS above 'before', per record read)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="folder holding the SVHN archives")
    parser.add_argument("--split", choices=("train", "test", "extra"), default="train", help="which archive's file")
    parser.add_argument("--file", type=Path, default=None,
                        help="an unpacked digitStruct.mat to use instead of the mirror archive (None: use --mirror)")
    parser.add_argument("--limit", type=int, default=None, help="read only the first N records (None: all)")
    parser.add_argument("--repeat", type=int, default=3, help="fast-reader runs; the best one counts")
    parser.add_argument("--slice-records", type=int, default=None,
                        help=f"records the fast reader decodes at a time (None: its default, {_SLICE_RECORDS:,})")
    parser.add_argument("--memory", action="store_true",
                        help="instead of timing, print each reader's peak RSS in a fresh process")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.slice_records is not None and args.slice_records < 1:
        parser.error(f"--slice-records must be at least 1, got {args.slice_records}")

    def measure(path: Path) -> None:
        if args.memory:
            bench_memory(path, args.limit, args.slice_records)
        else:
            bench(path, args.limit, args.repeat, args.slice_records)

    if args.file is not None:
        if not args.file.is_file():
            raise DataError(f"{args.file}: no such file; expected an unpacked digitStruct.mat (--file)")
        measure(args.file)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_digitstruct_") as tmp:
        measure(extract(args.mirror / f"{args.split}.tar.gz", args.split, Path(tmp)))
    return 0


if __name__ == "__main__":
    run(main)

"""Benchmark: fast vs reference digitStruct.mat reader on the same file, side by side.

Extracts <split>/digitStruct.mat from the mirror's archive into a temporary folder (not timed), runs the
fast reader (best of --repeat) and the reference h5py reader once, checks that they agree record for
record, and prints records, digits, seconds, records/s and the speed ratio. Asserts nothing about speed.

  .venv/bin/python bench/bench_digitstruct.py                     # full train file (~1-2 min, mostly reference)
  .venv/bin/python bench/bench_digitstruct.py --limit 2000        # first 2,000 records, seconds
  .venv/bin/python bench/bench_digitstruct.py --file /tmp/test/digitStruct.mat
"""

from __future__ import annotations

import os
import platform
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
from housenum.digitstruct import _read  # noqa: E402  (also reports the records sent to the fallback)
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


def timed(path: Path, method: str, limit: int | None):
    start = time.perf_counter()
    ds, n_fallback = _read(path, method, limit)
    return time.perf_counter() - start, ds, n_fallback


def bench(path: Path, limit: int | None, repeat: int) -> None:
    fast_times = []
    for _ in tqdm(range(repeat), desc="fast", unit="run"):
        seconds, fast, n_fallback = timed(path, "fast", limit)
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
    print(f"{'fast':<10} {best:>9.3f} {len(fast) / best:>12,.0f}   best of {repeat}: {runs}")
    print(f"{'reference':<10} {ref_seconds:>9.3f} {len(ref) / ref_seconds:>12,.0f}")
    print(f"ratio     fast is {ref_seconds / best:.1f}x faster than reference")


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR, help="folder holding the SVHN archives")
    parser.add_argument("--split", choices=("train", "test", "extra"), default="train", help="which archive's file")
    parser.add_argument("--file", type=Path, default=None,
                        help="an unpacked digitStruct.mat to use instead of the mirror archive (None: use --mirror)")
    parser.add_argument("--limit", type=int, default=None, help="read only the first N records (None: all)")
    parser.add_argument("--repeat", type=int, default=3, help="fast-reader runs; the best one counts")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")

    if args.file is not None:
        bench(args.file, args.limit, args.repeat)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_digitstruct_") as tmp:
        path = extract(args.mirror / f"{args.split}.tar.gz", args.split, Path(tmp))
        bench(path, args.limit, args.repeat)
    return 0


if __name__ == "__main__":
    run(main)

#!/usr/bin/env python3
"""The whole job, steps 1-5 in order, each one the numbered script you could run yourself, ending in one
page of results: <results-dir>/report.html (open it in any browser; its charts lie beside it).

  python run_all.py                         # online: real SVHN + notMNIST (about 2.9 GB), the study's settings
                                            # offline: says so in one line, then the whole job on synthetic
                                            # SVHN-format data at a size that finishes in minutes
  python run_all.py --mirror ../shared/data # local archives (real labels, real photos, real letters); trains
                                            # on synthetic photos when the real ones are too few to train on
  python run_all.py --real-only             # real data or nothing: stop instead of falling back to synthetic
  python run_all.py --synthetic 500 --steps 60 --sweep-steps 20 --sweep-layers 1,5 --letters-steps 20  # a smoke run

Steps: 1 download_and_extract.py  2 preprocess_svhn.py + preprocess_notmnist.py
       3 train_and_test_svhn_data.py  4 layer_sweep.py (+ --baseline logistic seed-letters)
       5 predict_real_images.py on --photos (default: the SVHN photos on disk, their true numbers beside)
       then housenum.report writes report.html.
Every step skips or resumes work already done, so an interrupted run continues where it stopped.
Outputs made from synthetic data go under <results-dir>/synthetic/ and are labelled synthetic.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

from housenum import cli
from housenum.atomic import write_json
from housenum.config import TrainConfig
from housenum.errors import HousenumError

HERE = Path(__file__).resolve().parent
STEP_SECONDS: dict[str, float] = {}  # wall time of each step of this invocation, for the report
MIN_TRAIN_ROWS = 1000  # fewer real training photos than this cannot train the network meaningfully
STUDY_EVAL_EVERY = TrainConfig().eval_every


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much work each step does. The online defaults are the study's; the synthetic ones are sized
    so the whole job takes minutes on a 2-core CPU (measured: see the README)."""

    synthetic: int | None  # synthetic SVHN-format training numbers (test N/4, extra N/10); None: real data
    steps: int  # training steps of step 3
    sweep_steps: int  # training steps per layer-sweep configuration
    letters_steps: int  # training steps of the seed network on notMNIST letters


STUDY = Sizes(synthetic=None, steps=TrainConfig().steps, sweep_steps=10000, letters_steps=3000)
SYNTHETIC = Sizes(synthetic=3000, steps=2000, sweep_steps=500, letters_steps=1500)


def parse_args(argv=None):
    p = cli.make_parser(__doc__)
    p.add_argument("--data-dir", default="data", help="where archives are fetched, unpacked and preprocessed")
    p.add_argument("--results-dir", default="results", help="where summaries, runs, charts, readings and report.html go")
    p.add_argument("--mirror", metavar="DIR", default=None, help="take the archives from this local folder")
    p.add_argument("--synthetic", metavar="N", type=cli.positive_int, default=None,
                   help=f"train on N synthetic SVHN-format numbers (written to <data-dir>/synthetic); "
                        f"offline or with too few real photos this happens anyway with N={SYNTHETIC.synthetic}")
    p.add_argument("--synthetic-letters", metavar="PER_CLASS", type=cli.positive_int, default=1000,
                   help="letters per class A..J when the notMNIST letters are synthetic too (offline, no mirror)")
    p.add_argument("--real-only", action="store_true",
                   help="stop with an error instead of falling back to synthetic data (offline, or too few real photos)")
    p.add_argument("--preset", default="seed", help="network preset for step 3 (seed, improved)")
    p.add_argument("--steps", type=cli.positive_int, default=None,
                   help=f"training steps of step 3 (default: {STUDY.steps} on real data, {SYNTHETIC.steps} on synthetic)")
    p.add_argument("--sweep-steps", type=cli.positive_int, default=None,
                   help=f"training steps per layer-sweep configuration (default: {STUDY.sweep_steps} real, "
                        f"{SYNTHETIC.sweep_steps} synthetic)")
    p.add_argument("--sweep-layers", default="1-7",
                   help="layer-sweep depths, e.g. 1-7 or 1,5 (conv nets exist at 5..7)")
    p.add_argument("--letters-steps", type=cli.positive_int, default=None,
                   help=f"training steps of the seed network on letters (default: {STUDY.letters_steps} real, "
                        f"{SYNTHETIC.letters_steps} synthetic)")
    p.add_argument("--photos", nargs="*", default=None,
                   help="photos for step 5 (default: up to 10 SVHN photos on disk, real ones first)")
    p.add_argument("--seed", type=int, default=0, help="seed of every step")
    p.add_argument("--fresh", action="store_true",
                   help="retrain step 3 and the sweep from scratch instead of resuming or reading back earlier runs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def command(script: str, *args) -> tuple[list[str], str]:
    cmd = [sys.executable, str(HERE / script), *map(str, args)]
    return cmd, " ".join(["python", script, *map(str, args)])


def step(title: str, script: str, *args, capture: bool = False) -> str:
    """Run one numbered script; its output goes to the terminal (and is returned when `capture`)."""
    cmd, shown = command(script, *args)
    print(f"\n==> {title}: {shown}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None, text=True)
    if capture and proc.stdout:
        print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        raise HousenumError(f"{title} failed (exit {proc.returncode}): {shown}")
    STEP_SECONDS[title] = round(time.perf_counter() - t0, 1)
    print(f"<== {title} done in {STEP_SECONDS[title]:.0f} s", flush=True)
    return proc.stdout or ""


def svhn_photos(svhn_dir: Path, limit: int = 10) -> list[Path]:
    """SVHN photos that exist on disk (the mirror holds ten real ones), test split first."""
    found: list[Path] = []
    for split in ("test", "train", "extra"):
        folder = svhn_dir / split
        if folder.is_dir():
            found += sorted(folder.glob("*.png"), key=lambda p: (len(p.stem), p.stem))[:limit]
    return found[:limit]


def true_numbers(photos: list[Path]) -> dict[str, str]:
    """The number each SVHN photo shows, from the digitStruct.mat beside it ("" where unknown)."""
    from housenum.digitstruct import read_digitstruct

    tables: dict[Path, dict[str, str]] = {}
    out: dict[str, str] = {}
    for photo in photos:
        mat = photo.parent / "digitStruct.mat"
        if mat not in tables:
            tables[mat] = {}
            if mat.is_file():
                ds = read_digitstruct(mat)
                for i, name in enumerate(ds.names):
                    _, boxes = ds.record(i)
                    # SVHN stores digit 0 as label 10
                    tables[mat][name] = "".join(str(int(v) % 10) for v in boxes[:, 0])
        # keyed both as given and resolved: predict_real_images.py may print either
        out[str(photo)] = out[str(photo.resolve())] = tables[mat].get(photo.name, "")
    return out


def readings_table(stdout: str, truth: dict[str, str]) -> list[dict]:
    """predict_real_images.py's `path<TAB>number<TAB>confidence` lines, with the true number beside."""
    rows = []
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        path, number, confidence = parts[0], parts[1], parts[2]
        true = truth.get(path, truth.get(str(Path(path).resolve()), ""))
        rows.append({"photo": path, "read": number, "confidence": confidence, "true": true,
                     "right": (number == true) if true else None})
    return rows


def format_readings(rows: list[dict]) -> str:
    width = max([len(r["photo"]) for r in rows] + [5])
    lines = [f"{'photo':<{width}}  {'read':>8}  {'true':>8}  {'confidence':>10}  right"]
    for r in rows:
        mark = "" if r["right"] is None else ("yes" if r["right"] else "no")
        lines.append(f"{r['photo']:<{width}}  {r['read']:>8}  {r['true'] or '?':>8}  {r['confidence']:>10}  {mark}")
    known = [r for r in rows if r["right"] is not None]
    if known:
        lines.append(f"{sum(r['right'] for r in known)} of {len(known)} read right")
    return "\n".join(lines)


def eval_every(steps: int) -> int:
    """Evaluate at least ten times a run, so every chart has curves, never less often than the study."""
    return max(1, min(STUDY_EVAL_EVERY, steps // 10))


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    STEP_SECONDS.clear()
    from housenum.download import check_online

    data, results = Path(args.data_dir), Path(args.results_dir)
    quiet = ["--no-progress"] if args.no_progress else []
    seed = ["--seed", args.seed]
    synthetic = args.synthetic
    fallback = ""  # why the run trains on synthetic data it was not asked for

    if args.mirror is None and synthetic is None:
        reason = check_online()
        if reason:
            if args.real_only:
                raise HousenumError(f"{reason}; --real-only: no fallback to synthetic data (use --mirror DIR for "
                                    "local archives, or drop --real-only)")
            synthetic = SYNTHETIC.synthetic
            fallback = f"offline ({reason})"
            print(f"offline ({reason}): running the whole job on synthetic SVHN-format data "
                  f"({synthetic:,} numbers, every output labelled synthetic); --mirror DIR for local archives, "
                  "--real-only to stop instead", flush=True)

    # 1 + 2. real archives (online or from the mirror) and their preprocessing: the study's label tables
    # need only digitStruct.mat, so they run on the real labels even when the photos are too few
    real_rows = 0
    if args.mirror is not None or synthetic is None:
        where = ["--mirror", args.mirror] if args.mirror is not None else []
        step(f"step 1 ({'mirror' if where else 'download'})", "download_and_extract.py", *where,
             "--data-dir", data, *quiet)
        few = args.mirror is not None  # the mirror has a handful of photos: hold out a share, not 5,684
        step("step 2 (SVHN, real)", "preprocess_svhn.py", "--data-dir", data, "--results-dir", results,
             *(["--valid-size", "0.1"] if few else []), *seed, *quiet)
        import h5py

        with h5py.File(data / "svhn_32x32.h5") as f:
            real_rows = int(f["train/labels"].shape[0])
        if synthetic is None and real_rows < MIN_TRAIN_ROWS:
            if args.real_only:
                raise HousenumError(f"only {real_rows} real SVHN training photos in {data / 'svhn_32x32.h5'}; "
                                    f"--real-only: not falling back to synthetic data (drop it, or add --synthetic N)")
            synthetic = SYNTHETIC.synthetic
            fallback = f"only {real_rows} real SVHN training photos"
            print(f"\nonly {real_rows} real SVHN training photos (fewer than {MIN_TRAIN_ROWS}): training on "
                  f"{synthetic:,} synthetic SVHN-format numbers instead, labelled synthetic; the label tables "
                  "and photo readings stay real; --real-only to stop instead", flush=True)

    sizes = SYNTHETIC if synthetic is not None else STUDY
    steps = args.steps or sizes.steps
    sweep_steps = args.sweep_steps or sizes.sweep_steps
    letters_steps = args.letters_steps or sizes.letters_steps

    train_dir, train_results = data, results
    if synthetic is not None:
        train_dir, train_results = data / "synthetic", results / "synthetic"
        # notMNIST: the real letters when step 1 fetched them (mirror, online), else synthetic ones
        datasets = ["svhn"] if args.mirror is not None or real_rows else ["svhn", "notmnist-small"]
        step("step 1 (synthetic)", "download_and_extract.py", "--synthetic", synthetic, "--datasets",
             *datasets, "--data-dir", train_dir, "--synthetic-letters", args.synthetic_letters, *seed, *quiet)
        step("step 2 (SVHN, synthetic)", "preprocess_svhn.py", "--data-dir", train_dir, "--results-dir",
             train_results, "--valid-size", "0.1", *seed, *quiet)
    real_letters = (data / "notmnist").is_dir() and (args.mirror is not None or synthetic is None or real_rows)
    letters_dir, letters_results = (data, results) if real_letters else (train_dir, train_results)
    # the small-set defaults hold out 1,000 + 1,000 letters: a smaller synthetic set holds out a tenth each
    total = 10 * args.synthetic_letters
    held = [] if real_letters or total >= 4000 else ["--valid-size", total // 10, "--test-size", total // 10]
    step("step 2b (notMNIST)", "preprocess_notmnist.py", "--data-dir", letters_dir / "notmnist", "--output",
         letters_dir / "notmnist.h5", "--results-dir", letters_results, *held, *seed, *quiet)

    # 3. train and test
    svhn_h5 = train_dir / "svhn_32x32.h5"
    run_name = f"{args.preset}{'_synthetic' if synthetic is not None else ''}"
    fresh = ["--fresh"] if args.fresh else []
    step("step 3", "train_and_test_svhn_data.py", "--preset", args.preset, "--data", svhn_h5, "--results-dir",
         results, "--run-name", run_name, "--steps", steps, "--eval-every", eval_every(steps), *seed, *quiet, *fresh)

    # 4. the layer sweep and the baselines
    force = ["--force"] if args.fresh else []
    step("step 4", "layer_sweep.py", "--data", svhn_h5, "--results-dir", train_results, "--steps", sweep_steps,
         "--layers", args.sweep_layers, "--eval-every", eval_every(sweep_steps), *seed, *quiet, *force)
    step("step 4 (baselines)", "layer_sweep.py", "--baseline", "logistic", "seed-letters", "--notmnist",
         letters_dir / "notmnist.h5", "--results-dir", letters_results, "--letters-steps", letters_steps,
         "--eval-every", eval_every(letters_steps), *seed, *quiet, *force)

    # 5. read photos: real SVHN photos where there are any, else synthetic test photos, truth beside
    photos = [Path(p) for p in args.photos] if args.photos else (
        svhn_photos(data / "svhn") or (svhn_photos(train_dir / "svhn") if synthetic is not None else []))
    readings: dict = {"photos": [], "data": ""}
    if photos:
        out = step("step 5", "predict_real_images.py", *photos, "--model", results / run_name, "--show",
                   results / "readings", capture=True)
        rows = readings_table(out, true_numbers(photos))
        synthetic_photos = not args.photos and not svhn_photos(data / "svhn")
        readings = {"photos": rows, "model": str(results / run_name),
                    "data": "synthetic SVHN-format test photos" if synthetic_photos else
                    ("real SVHN photos" if not args.photos else "photos given with --photos"),
                    "show": str(results / "readings")}
        print("\n" + format_readings(rows))
    else:
        print("\nstep 5 skipped: no photos given (--photos) and no SVHN photos on disk")
    write_json(results / "readings.json", readings, sort_keys=False)

    # the study's report, regenerated from this run
    from housenum import report

    run = {
        "command": " ".join(["python", "run_all.py", *(argv if argv is not None else sys.argv[1:])]),
        "fallback": fallback, "synthetic": synthetic, "steps": steps, "sweep_steps": sweep_steps,
        "sweep_layers": args.sweep_layers, "letters_steps": letters_steps, "preset": args.preset,
        "seed": args.seed, "seconds": round(time.perf_counter() - started, 1), "cores": os.cpu_count(),
        "load": report.load_average(), "step_seconds": dict(STEP_SECONDS),
        "svhn_results": str(train_results), "run_dir": str(results / run_name),
        "letters_results": str(letters_results),
        "letters_data": "real notMNIST letters" if real_letters else "synthetic notMNIST-style letters",
    }
    page = report.write_report(results, run)
    print(f"\nall steps done in {run['seconds']:.0f} s; the study's report: {page.resolve()} "
          f"(open it in a browser){'  [synthetic data: ' + fallback + ']' if fallback else ''}")
    return 0


if __name__ == "__main__":
    cli.run(main, sys.argv[1:])

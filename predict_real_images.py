#!/usr/bin/env python3
"""Step 5: read house numbers from your own photos: whole photos of any size, JPEG/PNG/WebP/AVIF/HEIC, EXIF
orientation honoured.

For each photo it finds where the number is (the finder), reads it (the reader), and answers "no number
found" when there is none or when the reading is less sure than the model's threshold (chosen on
validation data for 98 % accuracy): never a guess. Prints one line per photo:
path, number (or "no number found"), confidence, box (left,top,right,bottom in the photo's pixels, or -).
A file that cannot be read gets its own error line; the others are still read; the exit status is then 1.

Models: the newest house-number reader trained on real SVHN under --results-dir, else the one shipped with the
project in models/ (readers trained on synthetic data there are passed over, and a note says so; --model
picks any); the finder by the same rule (--finder picks any). The line "model: ..." on stderr says which
were used.

A folder of thousands of photos: `--out FILE` also appends the answers to FILE batch by batch, and the same
command run again after an interruption skips the photos FILE already answers.

  python predict_real_images.py my_photos/
  python predict_real_images.py DCIM/ --out readings.tsv
  python predict_real_images.py a.jpg b.png --model results/seed --show results/readings
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from housenum import cli
from housenum.errors import HousenumError


def parse_args(argv=None):
    p = cli.make_parser(__doc__)
    p.add_argument("inputs", nargs="+", help="image files and/or folders of images (subfolders included, hidden ones not)")
    p.add_argument("--model", default=None,
                   help="run folder or model.keras (default: the newest reader trained on real SVHN under --results-dir, "
                        "else the shipped one)")
    p.add_argument("--finder", default=None,
                   help="finder folder (default: the newest trained on real SVHN under --results-dir, else "
                        "the shipped one)")
    p.add_argument("--no-finder", action="store_true", help="read each whole photo as a crop (no finding)")
    p.add_argument("--results-dir", default="results", help="where to look for the newest models")
    p.add_argument("--show", default=None, metavar="DIR", help="write each image with its reading drawn on it")
    p.add_argument("--batch-size", type=int, default=64, help="photos per forward pass")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="also append each answer line to FILE as it is read; photos already answered in FILE "
                        "are skipped, so a run stopped part way continues where it stopped")
    return p.parse_args(argv)


def _note_passed_over(kind: str, passed_over: list[Path], chosen: Path | None, results_dir: str, flag: str) -> None:
    """Say on stderr when the shipped model was chosen over ones trained on synthetic data under results_dir."""
    if passed_over and chosen not in passed_over:
        print(f"note: {len(passed_over)} {kind}(s) trained on synthetic data under {results_dir}/ passed over for "
              f"{chosen} (newest: {passed_over[0]}); {flag} picks one", file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    from housenum.predict import (PhotoReader, Reader, answered_paths, check_path, collect_paths, draw_reading,
                                  find_finder, find_model, iter_readings, trained_finders, trained_readers)

    # inputs first: a missing file is reported at once, not after the model's seconds of loading
    paths, warnings = collect_paths(args.inputs, skip=[args.show] if args.show else [])
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not paths:
        raise HousenumError(f"no image files in {' '.join(args.inputs)}")
    indices = list(range(len(paths)))  # each photo's place among all given (names --show's drawings)
    out = Path(args.out) if args.out else None
    if out is not None:
        answered = {os.path.abspath(p) for p in answered_paths(out)}  # "DCIM/a.jpg" and "./DCIM/a.jpg" alike
        indices = [i for i in indices if os.path.abspath(paths[i]) not in answered]
        if len(indices) < len(paths):
            print(f"note: {len(paths) - len(indices)} of {len(paths)} photo(s) already answered in {out}: skipped",
                  file=sys.stderr)
        if not indices:
            return 0
    if all(check_path(paths[i]) for i in indices):
        for i in indices:
            print(f"error: {paths[i]}: {check_path(paths[i])}", file=sys.stderr)
        return 1
    trained = [] if args.model else trained_readers(args.results_dir)
    model_path = Path(args.model) if args.model else find_model(args.results_dir, trained)
    _note_passed_over("reader", [p for p, _ in trained], model_path, args.results_dir, "--model")
    trained = [] if args.finder or args.no_finder else trained_finders(args.results_dir)
    finder_path = None if args.no_finder else (Path(args.finder) if args.finder else find_finder(args.results_dir, trained))
    _note_passed_over("finder", [p for p, _ in trained], finder_path, args.results_dir, "--finder")
    finder = None
    if finder_path is not None:
        from housenum.finder import Finder

        finder = Finder(finder_path)
    photo_reader = PhotoReader(Reader(model_path), finder)
    print(f"model: {photo_reader.describe()}", file=sys.stderr)
    photo_reader.warm_up()
    # answers are printed a batch at a time: a folder of thousands shows them as they come, and an
    # interrupted run keeps those already printed
    failed = done = 0  # photos read, of them failed
    elapsed, t0 = 0.0, time.perf_counter()
    for readings in iter_readings(photo_reader, [paths[i] for i in indices], args.batch_size):
        elapsed += time.perf_counter() - t0  # reading only, not printing or drawing
        lines = []
        for r in readings:
            i = indices[done]
            done += 1
            if r.error:  # not written to --out: read again next time
                failed += 1
                print(f"error: {r.path}: {r.error}", file=sys.stderr)
                continue
            box = ",".join(map(str, r.answer_box())) if r.answer_box() else "-"
            lines.append(f"{r.path}\t{r.answer()}\t{r.confidence:.3f}\t{box}\n")
            if args.show:
                draw_reading(paths[i], r, Path(args.show), i)
        sys.stdout.write("".join(lines))
        sys.stdout.flush()
        if out is not None and lines:
            with open(out, "a", encoding="utf-8") as f:
                f.write("".join(lines))
                f.flush()
                os.fsync(f.fileno())
        t0 = time.perf_counter()
    n_ok = done - failed
    print(f"read {n_ok} of {done} image(s) in {elapsed:.2f} s"
          + (f" ({1000 * elapsed / max(n_ok, 1):.1f} ms per photo, after warm-up)" if n_ok else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    cli.run(main, sys.argv[1:])

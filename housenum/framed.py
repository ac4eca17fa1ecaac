"""Training crops framed the way whole photos are read: the finder's box, then one of the reading framings.

Why: the reader learns on crops around the true digit boxes (with a random shift and zoom), but a whole
photo is read on crops around the finder's box, which is off by a little either way (box IoU ~0.75 on
synthetic scenes) and read in several framings (`predict.READ_FRAMINGS`). Reading those crops is a task
the reader never trained on, and it shows: the same test photos read 4-5 points worse whole than cropped,
though the right reading is among the framings as often as the crop is right. This step copies a
preprocessed file and replaces a share of its *train* crops by crops of the same photos framed as reading
frames them (the finder on the whole photo, one framing drawn at random), labels unchanged. Validation and
test crops stay as preprocessing cut them: validation picks the abstain threshold and the best step, and
the test crops are the figure whole photos are compared with.

  python -m housenum.framed --data data/syn200k/svhn_32x32.h5 --finder results/finder \\
      --out data/syn200k/svhn_32x32_framed.h5 --share 0.5 --seed 0

Measured (README, Results, 2026-12-01): with 46 % of the train crops framed (24,000 steps), each framing
alone read 1-3 points better, but the crops lost 1.35 points and whole photos read no better; with 25 % (48,000
steps, the shipped reader) crops lose 0.35-0.55 points and whole photos gain 0.75 on held-out photos, the gap
between them falling to about 2 points.

Which rows and which framing: a pure function of (seed, row count, share); a photo the finder finds no
number in keeps its crop. The output says so in its summary ("framed"), which training copies into the
model's description of its data.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from housenum.atomic import atomic_path
from housenum.errors import DataError

BATCH = 256  # photos per finder call


def choose_rows(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows to replace, sorted; the framing index of each), from (seed, n, share) alone."""
    rng = np.random.default_rng([seed, 0x6672616D])  # a stream of its own, apart from training's
    from housenum.predict import READ_FRAMINGS

    rows = np.sort(rng.choice(n, int(round(share * n)), replace=False))
    return rows, rng.integers(0, len(READ_FRAMINGS), len(rows))


def frame_file(data: Path | str, finder_path: Path | str, out: Path | str, share: float = 0.5, seed: int = 0,
               log=print) -> dict:
    """Write `out`: a copy of the preprocessed file `data` with `share` of its train crops framed by the finder.
    Returns what was done (also stored in the output's summary under "framed")."""
    import h5py
    from PIL import Image

    from housenum.dataset import load_svhn
    from housenum.finder import Finder
    from housenum.predict import framing_input

    data, out = Path(data), Path(out)
    if not 0.0 < share <= 1.0:
        raise DataError(f"--share: expected a share of the train crops in (0, 1], got {share!r}")
    if data.resolve() == out.resolve():
        raise DataError(f"--out: {out} is the input file; write the framed copy beside it")
    meta = load_svhn(data)  # every check of a preprocessed file (missing, foreign, stale, damaged) in one place
    root = Path(meta.source)
    finder = Finder(finder_path)
    size, width = meta.config.image_size, meta.config.image_width
    with h5py.File(data, "r") as h5:
        names = [n.decode() for n in h5["train"]["names"][()]]
        summary = json.loads(h5.attrs["summary"])
    rows, framings = choose_rows(len(names), share, seed)
    missing = [names[i] for i in rows[:50] if not (root / names[i]).is_file()]
    if missing:
        raise DataError(f"the photos the crops were cut from are gone ({root / missing[0]} and others); "
                        f"framing needs them: run download_and_extract.py again")

    t0 = time.time()
    images = meta.train[0]
    replaced = 0
    for a in range(0, len(rows), BATCH):
        part = rows[a:a + BATCH]
        photos = []
        for i in part:
            try:
                with Image.open(root / names[i]) as im:
                    photos.append(im.convert("L"))
            except OSError as exc:
                raise DataError(f"{root / names[i]}: not a readable image ({exc})") from exc
        for i, k, im, found in zip(part, framings[a:a + BATCH], photos, finder.find(photos)):
            crop = None if found.box is None else framing_input(im, found.box, int(k), size, width)
            if crop is not None:
                images[i] = crop
                replaced += 1
    done = {"finder": str(Path(finder_path).resolve()), "share": share, "seed": seed, "rows_chosen": int(len(rows)),
            "rows_framed": replaced, "train_rows": len(names), "seconds": round(time.time() - t0, 1)}
    summary["framed"] = done
    summary["data"] = (f"{summary.get('data', 'SVHN')}; {replaced / len(names):.0%} of the train crops framed "
                       f"as reading frames them (finder {finder_path}, seed {seed})")
    with atomic_path(out, suffix=".h5") as tmp:
        shutil.copyfile(data, tmp)
        with h5py.File(tmp, "r+") as h5:
            h5["train"]["images"][...] = images
            h5.attrs["summary"] = json.dumps(summary)
    log(f"framed {replaced:,} of {len(names):,} train crops ({len(rows) - replaced:,} chosen photos with no number "
        f"found kept theirs) in {done['seconds']:.0f} s; wrote {out}")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    from housenum.cli import make_parser

    p = make_parser(__doc__)
    p.add_argument("--data", required=True, help="preprocessed HDF5 file (preprocess_svhn.py)")
    p.add_argument("--finder", required=True, help="finder folder (python -m housenum.finder)")
    p.add_argument("--out", required=True, help="the framed copy to write")
    p.add_argument("--share", type=float, default=0.5, help="share of the train crops to frame (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="which rows and framings (default 0)")
    args = p.parse_args(argv)
    frame_file(args.data, args.finder, args.out, args.share, args.seed)
    return 0


if __name__ == "__main__":
    from housenum.cli import run

    run(main)

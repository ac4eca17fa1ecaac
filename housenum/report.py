"""The study's report, regenerated from one run: `<results-dir>/report.html`.

Plain HTML (no script, no stylesheet file, nothing fetched), with the charts linked by relative paths,
so the page opens in any browser from the results folder, or from a copy of that folder. Every table and
chart names the data it came from and sits beside the study's published value where the study gave one.
Everything is read from what the steps wrote (summary JSONs, metrics.json, the sweep's CSV,
baselines.json, readings.json); a missing piece becomes a line saying which step would write it.
"""

from __future__ import annotations

import csv
import html
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from housenum.atomic import write_text

# The study's published figures (real SVHN / notMNIST), shown beside ours.
PUBLISHED_SVHN = (
    ("the study (Udacity capstone)", 0.953, "real SVHN test set"),
    ("Goodfellow et al. 2014", 0.9603, "real SVHN test set"),
    ("human operators", 0.98, "real SVHN"),
)
GOODFELLOW_COVERAGE_AT_98 = 0.9564
STUDY_SINGLE_LAYER = 0.60  # the study's single-layer network on real SVHN, "about 60 %"
STUDY_LOGISTIC = 0.89  # notMNIST, scikit-learn logistic regression on 20,000 training letters
STUDY_NOTMNIST_SIZES = {"train": 200_000, "valid": 10_000, "test": 10_000}
# The official SVHN format-1 sizes (records and digits per split), which the study's table reports.
OFFICIAL_SVHN = {"train": (33_402, 73_257), "test": (13_068, 26_032), "extra": (202_353, 531_131)}

# The sections every report has, in order; tests check each is named on the page.
SECTIONS = (
    ("run", "This run"),
    ("accuracy", "SVHN test accuracy"),
    ("svhn-summary", "SVHN summary"),
    ("digit-counts", "Digit-count table"),
    ("box-statistics", "Box statistics"),
    ("histograms", "Box-size histograms"),
    ("notmnist-summary", "notMNIST summary"),
    ("accuracy-vs-steps", "Accuracy vs steps"),
    ("layer-sweep", "Layer sweep"),
    ("baselines", "Baselines"),
    ("readings", "Readings of photos"),
)

STYLE = """
body{font-family:system-ui,Arial,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.data{color:#555;font-size:.92em}.warn{background:#fff4d6;border:1px solid #e0b94f;padding:.5em .8em}
.missing{color:#a00}img{max-width:100%;border:1px solid #ddd;margin:.3em .3em .3em 0}
.pair img{max-width:49%}table.kv td{text-align:left}code{background:#f4f4f4;padding:0 .2em}
"""


def load_average() -> str:
    """The 1/5/15-minute load, to state with each timing whether the machine was idle or busy."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: Any, digits: int = 1) -> str:
    try:
        return f"{100 * float(value):.{digits}f} %"
    except (TypeError, ValueError):
        return "—"


def _int(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "—"


def _table(head: list[str] | None, rows: list[list[Any]], css: str = "") -> str:
    out = [(f'<table class="{css}">' if css else "<table>") + ("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>" if head else "")]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _e(c)}</td>" for c in row) + "</tr>")
    return "\n".join(out) + "</table>"


class _Raw(str):
    """Table cell text that is already HTML."""


def _data(text: str) -> str:
    return f'<p class="data">Data: {_e(text)}</p>'


def _missing(what: str, how: str) -> str:
    return f'<p class="missing">No {_e(what)} in this run\'s results ({_e(how)}).</p>'


def _img(path: Path, root: Path, alt: str) -> str:
    if not path.is_file():
        return _missing(alt, f"expected {path}")
    rel = Path(os.path.relpath(path, root)).as_posix()
    return f'<img src="{html.escape(rel)}" alt="{_e(alt)}">'


def _summaries(results: Path, run: dict) -> list[tuple[Path, dict]]:
    """SVHN label summaries of this run: the real labels' first, then the synthetic data's."""
    seen, out = set(), []
    for folder in (results, Path(run.get("svhn_results") or results)):
        path = folder / "svhn_summary.json"
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        summary = _read_json(path)
        if summary:
            out.append((folder, summary))
    return out


def _summary_data(summary: dict) -> str:
    origin = ", ".join(f"{k}: {v}" for k, v in (summary.get("origin") or {}).items())
    return f"{summary.get('data', 'unknown')} ({origin}) from {summary.get('source', '?')}"


def _svhn_sections(results: Path, run: dict) -> dict[str, str]:
    summaries = _summaries(results, run)
    if not summaries:
        gone = _missing("SVHN summary", "step 2, preprocess_svhn.py, writes svhn_summary.json")
        return {k: gone for k in ("svhn-summary", "digit-counts", "box-statistics", "histograms")}
    parts: dict[str, list[str]] = {k: [] for k in ("svhn-summary", "digit-counts", "box-statistics", "histograms")}
    for folder, s in summaries:
        data = _summary_data(s)
        real = s.get("data") == "real SVHN"
        label = "real SVHN labels" if real else s.get("data", "SVHN")
        rows = []
        for name, v in s.get("splits", {}).items():
            official = OFFICIAL_SVHN.get(name, (None, None))
            rows.append([name, _int(v.get("rows")), _int(official[0]) if real else "(synthetic)",
                         _int(v.get("digits")), _int(official[1]) if real else "(synthetic)",
                         f"{v.get('average_digits', 0):.2f}", _int(v.get("kept"))])
        out = s.get("output_rows", {})
        parts["svhn-summary"].append(
            f"<h3>{_e(label)}</h3>" + _data(data) + _table(
                ["split", "records", "official SVHN", "digits", "official SVHN", "avg digits", "photos kept"], rows)
            + f"<p>Rows written for training: train {_int(out.get('train'))}, valid {_int(out.get('valid'))}, "
              f"test {_int(out.get('test'))}. Records whose photo is missing are counted, then skipped.</p>")
        lens = sorted({k for v in s.get("splits", {}).values() for k in v.get("length_counts", {})},
                      key=lambda k: (k.startswith(">"), k))
        rows = [[name] + [_int(v["length_counts"].get(k, 0)) for k in lens] for name, v in s.get("splits", {}).items()]
        parts["digit-counts"].append(f"<h3>{_e(label)}: numbers of each length</h3>" + _data(data)
                                     + _table(["split"] + [f"{k} digit(s)" for k in lens], rows))
        rows = []
        for name, v in s.get("splits", {}).items():
            w, t = v.get("widest_box", {}), v.get("tallest_box", {})
            rows.append([name] + [f"{d.get(k, 0):.1f}" if k == "mean" else f"{d.get(k, 0):.0f}"
                                  for d in (w, t) for k in ("mean", "max", "p98")])
        parts["box-statistics"].append(
            f"<h3>{_e(label)}: digit box sizes per image (pixels)</h3>" + _data(data)
            + _table(["split", "widest mean", "widest max", "widest 98th pct", "tallest mean", "tallest max",
                      "tallest 98th pct"], rows))
        parts["histograms"].append(
            f"<h3>{_e(label)}</h3>" + _data(data) + '<div class="pair">'
            + _img(folder / "svhn_widest_box.png", results, f"widest box histogram ({label})")
            + _img(folder / "svhn_tallest_box.png", results, f"tallest box histogram ({label})") + "</div>")
    return {k: "\n".join(v) for k, v in parts.items()}


def _accuracy_section(results: Path, run: dict) -> tuple[str, str]:
    run_dir = Path(run.get("run_dir") or "")
    metrics = _read_json(run_dir / "metrics.json") if run.get("run_dir") else None
    if not metrics:
        gone = _missing("trained network", "step 3, train_and_test_svhn_data.py, writes metrics.json")
        return gone, gone
    test = metrics.get("test", {})
    ours = (f"ours: {run_dir.name}, {_int(metrics.get('parameters'))} parameters, {_int(metrics.get('steps'))} steps",
            test.get("sequence_accuracy"), metrics.get("data", "?"))
    rows = [[ours[0], _Raw(f"<b>{_pct(ours[1])}</b>"), _pct(test.get("length_accuracy")),
             _pct(test.get("digit_accuracy")), _pct(test.get("coverage_at_98")), ours[2]]]
    whole = metrics.get("whole_photos")
    if whole:  # the same test photos uncropped, read through the finder as a user's photos are
        rows.append([f"ours, whole photos (no box given; finder, abstain rule), {_int(whole.get('n'))} photos",
                     _Raw(f"<b>{_pct(whole.get('sequence_accuracy'))}</b>"), "", "", _pct(whole.get("coverage_at_98")),
                     f"{ours[2]}; box IoU {whole.get('box_iou_mean', 0):.2f}; no-number photos read as a number "
                     f"{_pct(whole.get('no_number_read_as_number'))}"])
    for name, value, data in PUBLISHED_SVHN:
        cover = _pct(GOODFELLOW_COVERAGE_AT_98) if name.startswith("Goodfellow") else ""
        rows.append([f"{name} (published)", _pct(value, 2), "", "", cover, data])
    synthetic = "synthetic" in str(metrics.get("data", ""))
    note = ("<p class=\"warn\">Our figure is on synthetic SVHN-format photos; the published ones are on the "
            "real SVHN test set, so they do not compare directly.</p>" if synthetic else "")
    accuracy = note + _table(["network", "whole-sequence accuracy", "length", "per digit", "coverage at 98 %",
                              "data"], rows) + _data(f"{metrics.get('data', '?')}; test rows {_int(test.get('n'))}; "
                                                     f"training {metrics.get('train_seconds', 0):.0f} s")
    curves = [f"<h3>{_e(run_dir.name)} (step 3)</h3>", _data(str(metrics.get("data", "?"))),
              _img(run_dir / "accuracy_vs_steps.png", results, f"accuracy vs steps, {run_dir.name}")]
    letters = Path(run.get("letters_results") or results) / "baselines" / "seed_letters"
    lm = _read_json(letters / "metrics.json")
    if lm:
        curves += ["<h3>seed network on notMNIST letters (step 4 baseline)</h3>", _data(str(lm.get("data", "?"))),
                   _img(letters / "accuracy_vs_steps.png", results, "accuracy vs steps, letters")]
    return accuracy, "\n".join(curves)


def _notmnist_section(results: Path, run: dict) -> str:
    folder = Path(run.get("letters_results") or results)
    s = _read_json(folder / "notmnist_summary.json")
    if not s:
        return _missing("notMNIST summary", "step 2b, preprocess_notmnist.py, writes notmnist_summary.json")
    letters = sorted(next(iter(s["splits"].values()), {}).get("class_counts", {}))
    rows = [[name, _int(v.get("images")), _int(STUDY_NOTMNIST_SIZES.get(name)), v.get("drawn_from", ""),
             f"{v.get('mean', 0):.4f}", f"{v.get('std', 0):.4f}"] + [_int(v["class_counts"].get(c)) for c in letters]
            for name, v in s["splits"].items()]
    d = s.get("duplicates", {})
    return (_data(f"{run.get('letters_data', 'notMNIST letters')}: {s.get('source', '?')} — {s.get('source_note', '')}")
            + _table(["split", "images", "study", "drawn from", "mean", "std"] + letters, rows)
            + f"<p>Normalisation {_e(s.get('normalisation', '?'))}, seed {_e(s.get('seed'))}. Exact duplicates: "
              f"valid in train {_int(d.get('train_valid'))}, test in train or valid "
              f"{_int(d.get('test_in_train_or_valid'))}.</p>")


def _sweep_section(results: Path, run: dict) -> str:
    folder = Path(run.get("svhn_results") or results)
    path = folder / "layer_sweep.csv"
    if not path.is_file():
        return _missing("layer sweep", "step 4, layer_sweep.py, writes layer_sweep.csv")
    with path.open(newline="") as f:
        history = list(csv.DictReader(f))
    last: dict[str, dict] = {}
    for row in history:
        last[row["config"]] = row  # rows run in step order: the last is the end of training
    summary = _read_json(folder / "svhn_summary.json") or {}
    rows = []
    for name, r in last.items():
        study = _pct(STUDY_SINGLE_LAYER, 0) + " (real SVHN)" if name == "fc-1" else ""
        rows.append([name, r["layers"], "FC only" if r["family"] == "fc" else "convolutional", _int(r["step"]),
                     _pct(r.get("test_accuracy")), _pct(r.get("valid_accuracy")), study])
    return (_data(f"{summary.get('data', 'SVHN')} from {summary.get('source', folder)}; "
                  f"{run.get('sweep_steps', '?')} steps per configuration")
            + _img(folder / "layer_sweep.png", results, "layer sweep chart")
            + _table(["config", "layers", "family", "steps", "test accuracy", "valid accuracy", "study"], rows))


def _baselines_section(results: Path, run: dict) -> str:
    folder = Path(run.get("letters_results") or results)
    b = _read_json(folder / "baselines.json")
    if not b:
        return _missing("baselines", "step 4, layer_sweep.py --baseline, writes baselines.json")
    rows = []
    if "logistic" in b:
        lg = b["logistic"]
        rows.append(["scikit-learn logistic regression", _int(lg.get("n_train_used")),
                     _Raw(f"<b>{_pct(lg.get('accuracy'))}</b>"), f"{_pct(STUDY_LOGISTIC, 0)} with 20,000 letters",
                     _int(lg.get("n_test")), lg.get("data", "")])
    if "seed_letters" in b:
        sl = b["seed_letters"]
        rows.append(["the seed network on 28x28 letters", _int(sl.get("n_train")),
                     _Raw(f"<b>{_pct(sl.get('accuracy'))}</b>"), "—", _int(sl.get("n_test")),
                     sl.get("data", str(folder / "baselines"))])
    notes = [f"<p>{_e(lg['note'])}</p>" for lg in [b.get("logistic", {})] if lg.get("note")]
    summary = _read_json(folder / "notmnist_summary.json") or {}
    return (_data(f"{run.get('letters_data', 'notMNIST letters')}: {summary.get('source', '?')}")
            + _table(["model", "training letters", "test accuracy", "study", "test letters", "data file"], rows)
            + "".join(notes))


def _readings_section(results: Path) -> str:
    r = _read_json(results / "readings.json")
    if not r or not r.get("photos"):
        return _missing("photo readings", "step 5 reads the SVHN photos on disk or --photos")
    rows, right = [], 0
    for p in r["photos"]:
        mark = "" if p.get("right") is None else ("yes" if p["right"] else "no")
        right += bool(p.get("right"))
        rows.append([_Raw(_img(Path(p["photo"]), results, Path(p["photo"]).name).replace("<img ", '<img height="48" ')),
                     p["photo"], _Raw(f"<b>{_e(p['read'])}</b>"), p.get("true") or "?", p.get("confidence", ""), mark])
    known = sum(p.get("right") is not None for p in r["photos"])
    tally = f"<p><b>{right} of {known}</b> read right (length and every digit).</p>" if known else ""
    return (_data(f"{r.get('data', '?')}; model {r.get('model', '?')}; true numbers from the digitStruct.mat "
                  "beside each photo")
            + tally + _table(["photo", "path", "read", "true", "confidence", "right"], rows)
            + "<p>Ten photos are no accuracy figure; they show whether what was learnt transfers.</p>")


def _run_section(results: Path, run: dict) -> str:
    rows = [["command", _Raw(f"<code>{_e(run.get('command', '?'))}</code>")],
            ["finished", time.strftime("%Y-%m-%d %H:%M %Z")],
            ["SVHN photos trained on", f"synthetic SVHN-format, {_int(run['synthetic'])} numbers"
             if run.get("synthetic") else "real SVHN"],
            ["steps (training / sweep per config / letters)",
             f"{_int(run.get('steps'))} / {_int(run.get('sweep_steps'))} / {_int(run.get('letters_steps'))}"],
            ["sweep depths", run.get("sweep_layers", "")], ["preset, seed", f"{run.get('preset')}, {run.get('seed')}"],
            ["wall time of this invocation", f"{run.get('seconds', 0):.0f} s (steps finished by an earlier "
                                              "invocation are read back, not redone)"],
            ["per step", "; ".join(f"{k} {v:.0f} s" for k, v in (run.get("step_seconds") or {}).items()) or "—"],
            ["conditions", f"{run.get('cores', '?')} CPU cores ({platform.machine()}), load average at the end "
                           f"(1/5/15 min) {run.get('load', '?')}; timings here drift with load"]]
    warn = ""
    if run.get("fallback"):
        warn = (f'<p class="warn">{_e(run["fallback"])}: this run trained on synthetic SVHN-format data. '
                "Accuracies below are on that data, not on real SVHN photos.</p>")
    return warn + _table(None, rows, css="kv")


def build_report(results: Path | str, run: dict) -> str:
    """The page's HTML for the run whose outputs are under `results` (`run`: run_all.py's settings)."""
    results = Path(results)
    svhn = _svhn_sections(results, run)
    accuracy, curves = _accuracy_section(results, run)
    body = {
        "run": _run_section(results, run), "accuracy": accuracy, **svhn,
        "notmnist-summary": _notmnist_section(results, run), "accuracy-vs-steps": curves,
        "layer-sweep": _sweep_section(results, run), "baselines": _baselines_section(results, run),
        "readings": _readings_section(results),
    }
    toc = " · ".join(f'<a href="#{key}">{_e(title)}</a>' for key, title in SECTIONS)
    sections = "\n".join(f'<h2 id="{key}">{_e(title)}</h2>\n{body[key]}' for key, title in SECTIONS)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>House-number reader: "
            f"the study's report</title><style>{STYLE}</style></head><body>\n<h1>House-number reader: the study's "
            f"report, regenerated from this run</h1>\n<p>{toc}</p>\n{sections}\n</body></html>\n")


def write_report(results: Path | str, run: dict) -> Path:
    """Write `<results>/report.html` (and `report_run.json`, the settings it describes); return its path."""
    results = Path(results)
    from housenum.atomic import write_json

    write_json(results / "report_run.json", run, sort_keys=False)
    return write_text(results / "report.html", build_report(results, run))


def main(argv=None) -> int:
    """`python -m housenum.report [RESULTS_DIR]`: rebuild the page from a finished run's outputs."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("results_dir", nargs="?", default="results")
    args = p.parse_args(argv)
    results = Path(args.results_dir)
    run = _read_json(results / "report_run.json") or {}
    print(write_report(results, run))
    return 0


if __name__ == "__main__":
    from housenum.cli import run as _run

    _run(main)

"""The charts say what they plot, and the report page names every table and chart with its data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from housenum import plots, report
from housenum.sweep import sweep_entries


@pytest.fixture
def figures(monkeypatch):
    """Keep each figure plots.py would save (and closed) open for inspection; still write the file."""
    kept = []

    def keep(fig, path):
        kept.append(fig)
        with plots.atomic_path(Path(path), suffix=Path(path).suffix) as tmp:
            fig.savefig(tmp, dpi=50)
        return Path(path)

    monkeypatch.setattr(plots, "_save", keep)
    yield kept
    for fig in kept:
        plots.plt.close(fig)


def _history(steps: int, sequences: bool, loss_from: float, loss_to: float) -> list[dict]:
    rows = []
    for i, step in enumerate(range(10, steps + 1, 10)):
        frac = i / max(1, steps // 10 - 1)
        rows.append({"step": step, "loss": loss_from + (loss_to - loss_from) * frac, "valid_accuracy": 0.5 * frac,
                     "valid_length_accuracy": 0.9 if sequences else ""})
    return rows


def test_accuracy_chart_names_its_accuracy_and_keeps_loss_axis_honest(tmp_path, figures):
    plots.accuracy_vs_steps(_history(200, True, 6.0, 5.8), tmp_path / "svhn.png", title="svhn")
    plots.accuracy_vs_steps(_history(200, False, 2.3, 0.3), tmp_path / "letters.png", title="letters")
    svhn, letters = figures
    assert (tmp_path / "svhn.png").stat().st_size > 0 and (tmp_path / "letters.png").stat().st_size > 0
    assert "whole number" in svhn.axes[0].get_ylabel()
    assert "whole" not in letters.axes[0].get_ylabel() and "letter" in letters.axes[0].get_ylabel()
    # a loss that barely moved (6.0 -> 5.8) must look flat: linear axis from 0, not a log axis fitted to it
    loss_axis = svhn.axes[1]
    assert loss_axis.get_yscale() == "linear"
    assert loss_axis.get_ylim()[0] == 0 and loss_axis.get_ylim()[1] >= 6.0


def test_accuracy_chart_legend_stays_off_the_x_label(tmp_path, figures):
    plots.accuracy_vs_steps(_history(500, True, 6.0, 2.0), tmp_path / "a.png")
    fig = figures[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend() or (fig.legends[0] if fig.legends else None)
    assert legend is not None
    box = legend.get_window_extent(renderer)
    label = ax.xaxis.label.get_window_extent(renderer)
    assert not box.overlaps(label)
    assert box.y0 >= ax.get_window_extent(renderer).y1 - 1  # above the plot area: off the curves too
    assert not box.overlaps(ax.title.get_window_extent(renderer))


def test_histograms_plot_shares_that_add_up_and_name_their_data(tmp_path, figures):
    rng = np.random.default_rng(0)
    series = {"train": rng.gamma(4, 5, size=3000), "test": rng.gamma(5, 5, size=700)}
    plots.histograms(series, tmp_path / "h.png", "Widest digit box per image", "pixels", data="synthetic SVHN-format data")
    ax = figures[0].axes[0]
    assert "synthetic SVHN-format data" in ax.get_title()
    assert "% of images" in ax.get_ylabel()
    for patch in ax.patches:  # each step outline: the heights of one series add up to 100 %
        heights = patch.get_xy()[1:-1:2, 1]
        assert heights.sum() == pytest.approx(100.0, abs=0.5)
    plots.histograms(series, tmp_path / "r.png", "Widest digit box per image", "pixels", data="real SVHN")
    assert figures[1].axes[0].get_title() != ax.get_title()


def test_layer_sweep_gives_every_configuration_its_own_colour(tmp_path, figures):
    rows = [{"config": e.name, "family": e.family, "layers": e.layers,
             "history": [{"step": s, "test_accuracy": 0.1 * e.layers * s / 500} for s in (50, 250, 500)]}
            for e in sweep_entries(range(1, 8))]
    plots.layer_sweep(rows, tmp_path / "sweep.png")
    ax = figures[0].axes[0]
    lines = ax.get_lines()
    assert len(lines) == len(rows) == 10
    colours = {tuple(np.round(line.get_color(), 4)) if not isinstance(line.get_color(), str) else line.get_color()
               for line in lines}
    assert len(colours) == len(rows)
    assert ax.get_xlim()[0] == 0  # steps from the start, not a narrow window around the last step
    styles = {r["config"]: line.get_linestyle() for r, line in zip(rows, lines)}
    assert styles["fc-5"] == ":" and styles["conv-5"] == "-"


def _fake_results(root: Path) -> dict:
    """The files a run writes, small but shaped as the steps write them."""
    res = root / "results"
    syn = res / "synthetic"
    split = {"rows": 10, "digits": 21, "average_digits": 2.1, "kept": 10, "skipped": {},
             "length_counts": {"1": 2, "2": 5, "3": 3, "4": 0, "5": 0, ">5": 0},
             "widest_box": {"mean": 12.0, "max": 30.0, "p98": 28.0}, "tallest_box": {"mean": 30.0, "max": 60, "p98": 55}}
    for folder, data in ((res, "real SVHN"), (syn, "synthetic SVHN-format data")):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "svhn_summary.json").write_text(json.dumps({
            "source": str(folder), "origin": {"train": "mirror"}, "data": data,
            "splits": {"train": split, "test": split}, "output_rows": {"train": 9, "valid": 1, "test": 10}}))
        for name in ("svhn_widest_box.png", "svhn_tallest_box.png"):
            (folder / name).write_bytes(b"png")
    run_dir = res / "seed_synthetic"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({
        "data": "synthetic SVHN-format data from x", "parameters": 182776, "steps": 20, "train_seconds": 3.0,
        "test": {"n": 10, "sequence_accuracy": 0.7312, "length_accuracy": 0.9, "digit_accuracy": 0.8,
                 "coverage_at_98": 0.2}}))
    (run_dir / "accuracy_vs_steps.png").write_bytes(b"png")
    (syn / "layer_sweep.csv").write_text("config,family,layers,step,valid_accuracy,test_accuracy\n"
                                         "fc-1,fc,1,5,0.1,0.1\nfc-1,fc,1,10,0.2,0.25\nconv-5,conv,5,10,0.3,0.35\n")
    (syn / "layer_sweep.png").write_bytes(b"png")
    (syn / "notmnist_summary.json").write_text(json.dumps({
        "source": "notMNIST_small only", "source_note": "n", "normalisation": "(p - 127.5) / 255", "seed": 0,
        "splits": {"train": {"images": 80, "drawn_from": "notMNIST_small", "mean": 0.0, "std": 0.5,
                             "class_counts": {c: 8 for c in "ABCDEFGHIJ"}}},
        "duplicates": {"train_valid": 0, "test_in_train_or_valid": 0}}))
    (syn / "baselines.json").write_text(json.dumps({
        "logistic": {"accuracy": 0.8642, "n_train_used": 80, "n_test": 10, "data": "x.h5", "note": ""},
        "seed_letters": {"accuracy": 0.5, "n_train": 80, "n_test": 10, "data": "letters"}}))
    photo = root / "data" / "svhn" / "test" / "1.png"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(b"png")
    (res / "readings.json").write_text(json.dumps({"data": "real SVHN photos", "model": str(run_dir), "photos": [
        {"photo": str(photo), "read": "19", "true": "19", "confidence": "0.9", "right": True}]}))
    return {"svhn_results": str(syn), "run_dir": str(run_dir), "letters_results": str(syn), "synthetic": 200,
            "steps": 20, "sweep_steps": 10, "letters_steps": 10, "fallback": "offline (test)", "command": "python run_all.py"}


def test_report_names_every_table_and_chart_with_published_values(tmp_path):
    run = _fake_results(tmp_path)
    page = report.write_report(tmp_path / "results", run).read_text()
    for key, title in report.SECTIONS:
        assert f'id="{key}"' in page and title in page
    assert 'class="missing"' not in page  # every piece was found
    for published in ("95.30 %", "96.03 %", "98.00 %", "89 %", "60 %"):
        assert published in page
    assert "73.1 %" in page and "86.4 %" in page  # ours, from metrics.json and baselines.json
    assert "offline (test)" in page and "synthetic" in page
    assert "real SVHN" in page and "synthetic SVHN-format data" in page  # each table names its data
    # images are linked relative to the page, and each link resolves
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(srcs) >= 7
    for src in srcs:
        assert not src.startswith("/") and (tmp_path / "results" / src).is_file(), src
    assert "<script" not in page


def test_report_says_which_step_writes_what_is_missing(tmp_path):
    (tmp_path / "results").mkdir()
    page = report.build_report(tmp_path / "results", {})
    for key, title in report.SECTIONS:
        assert title in page
    assert "step 2, preprocess_svhn.py" in page and "step 4, layer_sweep.py" in page

"""ppdnn.tables (reading both results layouts, seeds per row), ppdnn.curves and ppdnn.markdown."""
import json
import re

import pandas as pd
import pytest

from ppdnn import curves, tables
from ppdnn.markdown import markdown_table


def old_run(root, run, seed, acc, **extra):
    """A run folder of the old layout: everything in metrics.json, train_loss in epochs.csv."""
    d = root / f"{run}-s{seed}"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({
        "test_acc": acc, "test_loss": 1.0, "train_loss": 1.5, "seed": seed, "run": run, "cipher": "pixel",
        "profile": "quick", "data_source": "archive", "device": "cpu", "wall_time_s": 10.0,
        "images_per_s": 100.0, "per_class_acc": {"cat": 0.5},
        "config": {"label_smoothing": 0.2, "adaptation": "pixel", "augment": "cloud"}, **extra}))
    (d / "epochs.csv").write_text("epoch,train_loss,train_acc,test_loss,test_acc,lr,seconds,images_per_s\n"
                                  f"1,1.9,0.3,,,0.03,5,100\n2,1.5,0.5,1.0,{acc},0.0001,5,100\n")
    return d


def new_run(root, run, seed, acc, epochs=3, cipher="pixel"):
    """A run folder of the new layout: scalars in metrics.json, the rest in run.json."""
    d = root / f"{run}-s{seed}"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({
        "test_acc": acc, "test_loss": 1.1, "val_acc": acc - 0.01, "val_loss": 1.2, "train_loss_smoothed": 1.4,
        "train_acc": 0.6, "images_per_s": 200.0, "wall_time_s": 20.0}))
    (d / "run.json").write_text(json.dumps({
        "run": run, "seed": seed, "cipher": cipher, "adaptation": "none", "augment": "client", "profile": "fast",
        "config": {"label_smoothing": 0.1}, "device": "cuda", "dtype": "bf16", "data_source": "archive",
        "key_fingerprint": "abcd", "per_class_acc": {"cat": 0.4}}))
    lines = ["epoch,train_loss_smoothed,train_acc,val_loss,val_acc,test_loss,test_acc,lr,seconds,images_per_s"]
    for e in range(1, epochs + 1):
        test = f"1.0,{acc}" if e == epochs else ","
        lines.append(f"{e},{2.0 - 0.1 * e},{0.1 * e},{1.5 - 0.1 * e},{acc - 0.01 * (epochs - e)},{test},0.01,2,200")
    (d / "epochs.csv").write_text("\n".join(lines) + "\n")
    return d


def test_collect_metrics_reads_the_old_layout(tmp_path):
    old_run(tmp_path, "plain", 0, 0.61)
    row = tables.collect_metrics(tmp_path).iloc[0]
    assert (row["run"], row["seed"], row["test_acc"]) == ("plain", 0, 0.61)
    assert row["train_loss_smoothed"] == 1.5 and row["label_smoothing"] == 0.2  # old train_loss, renamed
    assert (row["adaptation"], row["augment"], row["cipher"]) == ("pixel", "cloud", "pixel")  # from config
    assert row["seconds"] == 10.0 and row["path"].endswith("plain-s0/metrics.json")
    assert pd.isna(row["val_acc"])  # the old layout had no validation split


def test_collect_metrics_merges_run_json_of_the_new_layout(tmp_path):
    new_run(tmp_path, "step2_client", 3, 0.7)
    row = tables.collect_metrics(tmp_path).iloc[0]
    assert (row["run"], row["seed"], row["test_acc"], row["val_acc"]) == ("step2_client", 3, 0.7, pytest.approx(0.69))
    assert (row["profile"], row["device"], row["key_fingerprint"], row["augment"]) == ("fast", "cuda", "abcd", "client")
    assert row["label_smoothing"] == 0.1 and row["train_loss_smoothed"] == 1.4 and row["seconds"] == 20.0
    assert "per_class_acc" not in row and "config" not in row  # nested data stays in run.json


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), "0.5", 61.0, True])
def test_a_missing_or_non_finite_test_accuracy_names_the_file(tmp_path, bad):
    d = new_run(tmp_path, "plain", 0, 0.6)
    metrics = json.loads((d / "metrics.json").read_text())
    if bad is None:
        del metrics["test_acc"]
    else:
        metrics["test_acc"] = bad
    (d / "metrics.json").write_text(json.dumps(metrics))  # json writes NaN/Infinity for nan/inf
    with pytest.raises(ValueError, match=r"plain-s0/metrics.json: test_acc must be a finite fraction"):
        tables.collect_metrics(tmp_path)


def test_damaged_json_names_the_file(tmp_path):
    d = new_run(tmp_path, "plain", 0, 0.6)
    (d / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="plain-s0/run.json is not valid JSON"):
        tables.collect_metrics(tmp_path)


def test_rows_report_the_seeds_they_use_and_missing_runs(tmp_path):
    for seed, acc in [(0, 0.50), (2, 0.52)]:
        old_run(tmp_path, "plain", seed, acc)
    new_run(tmp_path, "step2_client", 1, 0.45)
    new_run(tmp_path, "step2_cloud", 0, 0.40)
    new_run(tmp_path, "step2_cloud", 1, 0.42)
    metrics = tables.collect_metrics(tmp_path)
    t2, t3 = tables.make_tables(metrics)
    plain = t2.set_index("run").loc["plain"]
    assert (plain["ours_mean"], plain["seeds"], plain["seed_list"]) == (51.0, 2, "0, 2")
    assert t2.set_index("run").loc["etc_cloud", "seed_list"] == ""
    row = t3.iloc[0]
    assert (row["client_seed_list"], row["cloud_seed_list"]) == ("1", "0, 1")
    md2, md3 = tables.tables_markdown(t2, t3, "provenance line")
    plain_line = next(line for line in md2.splitlines() if line.startswith("| Plain image"))
    assert [c.strip() for c in plain_line.strip("|").split("|")] == ["Plain image", "51.00 ± 1.41", "92.98", "-41.98",
                                                                    "0, 2"]
    etc_line = next(line for line in md2.splitlines() if line.startswith("| EtC"))
    assert "not run" in etc_line and "nan" not in etc_line
    assert "| 1 / 0, 1 " in md3.splitlines()[2] + " " and md3.endswith("\nprovenance line\n")


def test_stale_runs_and_seeds_are_left_out(tmp_path):
    for run in ("plain", "old_run"):
        for seed in (0, 1):
            old_run(tmp_path, run, seed, 0.5)
    metrics = tables.collect_metrics(tmp_path, runs=["plain"], seeds=[1])
    assert list(zip(metrics["run"], metrics["seed"])) == [("plain", 1)]
    with pytest.raises(FileNotFoundError, match="no \\*/metrics.json under .* for runs \\['x'\\]"):
        tables.collect_metrics(tmp_path, runs=["x"])


def test_curves_read_both_layouts_and_label_the_smoothed_loss(tmp_path):
    frame = curves.read_curves([old_run(tmp_path, "plain", 0, 0.6), new_run(tmp_path, "step2_client", 1, 0.7)])
    assert set(frame["config"]) == {"plain", "step2_client"} and "train_loss" not in frame
    assert frame.loc[frame["config"] == "plain", "train_loss_smoothed"].tolist() == [1.9, 1.5]
    labels = [label for _, label, _ in curves.panels(frame, 0.2)]
    assert labels == ["training loss, label-smoothed (ε = 0.2)", "validation accuracy (%)", "test accuracy (%)"]
    assert "cross-entropy" in curves.panels(frame, 0.0)[0][1]
    with pytest.raises(ValueError, match="not named <run>-s<seed>"):
        curves.split_run_dir("plain")


def test_curves_figure_integer_epochs_legend_outside_one_colour_per_configuration(tmp_path):
    dirs = [new_run(tmp_path, f"config{c}", s, 0.5 + 0.01 * c, epochs=2) for c in range(11) for s in range(5)]
    frame = curves.read_curves(dirs)
    fig = curves.curves_figure(frame, order=[f"config{c}" for c in range(11)], label_smoothing=0.1)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    axes = fig.axes
    assert len(axes) == 3
    for ax in axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks == [1.0, 2.0]  # integer epochs only, with 2 epochs
        assert ax.get_xlim()[0] < 1 and ax.get_xlim()[1] > 2
    legend = fig.legends[0]
    renderer = canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    for ax in axes:  # the legend covers no panel
        assert not box.overlaps(ax.get_window_extent(renderer))
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[:11] == [f"config{c}" for c in range(11)]
    line_colours = {tuple(h.get_color()) for h in legend.legend_handles[:11]}
    assert len(line_colours) == 11
    assert "11 configurations, 55 runs" in legend.get_title().get_text()
    # every seed a thin line plus one thick mean line per configuration, in each panel
    assert len(axes[0].lines) == 11 * 5 + 11


def test_curves_html_is_self_contained(tmp_path):
    frame = curves.read_curves([new_run(tmp_path, "plain", s, 0.6) for s in range(2)])
    page = curves.curves_html(frame, tmp_path / "curves.html", "Curves <quick>", note="a & b").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "Curves &lt;quick&gt;" in page
    assert "a &amp; b" in page and "<script" not in page
    links = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert links and all(link.startswith("#") for link in links)  # only links inside the page (SVG markers)
    assert "@import" not in page and set(re.findall(r"url\((.)", page)) <= {"#"}
    assert "label-smoothed" not in page or "ε" in page
    assert "Every epoch of every run (6 rows)" in page


def test_markdown_table_is_pandas_to_markdown_with_our_headers_and_alignment():
    rows = [{"name": "a", "value": "+0.50"}, {"name": "b|c", "value": "22"}]
    text = markdown_table(rows, {"name": "Name", "value": "Value (%)"}, align={"value": "right"})
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 4
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["Name", "Value (%)"]
    assert lines[1].replace("-", "") == "|:|:|"  # left, then right (tabulate's pipe format)
    assert "+0.50" in lines[2]  # strings that look like numbers are kept as given
    assert "b\\|c" in lines[3]  # a pipe inside a cell does not split it
    assert pd.DataFrame(rows).to_markdown(index=False, tablefmt="pipe").count("\n") == 3
    with pytest.raises(ValueError, match="align must be one of"):
        markdown_table(rows, align={"value": "up"})
    with pytest.raises(ValueError, match="needs rows or columns"):
        markdown_table([])
    with pytest.raises(KeyError, match="rows lack the columns \\['missing'\\]"):
        markdown_table(rows, ["name", "missing"])

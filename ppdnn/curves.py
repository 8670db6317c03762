"""Learning curves of many runs: one colour per configuration, seeds as thin lines, their
mean as a thick one; as a PNG and as one self-contained HTML page (no network needed).

The training loss of a recipe with label smoothing is the smoothed loss: it is labelled as
such and never drawn in one panel with the (unsmoothed) test loss, which it would exceed.
"""
from __future__ import annotations

import html
import io
import math
from pathlib import Path

import pandas as pd

from .files import atomic_write

# epochs.csv of the old layout named the (label-smoothed) training loss `train_loss`
OLD_COLUMNS = {"train_loss": "train_loss_smoothed"}
MEAN_LINE, SEED_LINE = 2.2, 0.8  # line widths: mean of the seeds, one seed


def split_run_dir(name: str) -> tuple[str, int]:
    """``"step2_cloud-s1"`` -> ``("step2_cloud", 1)``; ValueError for another form."""
    run, sep, seed = name.rpartition("-s")
    if not sep or not run or not seed.isdigit():
        raise ValueError(f"run folder {name!r} is not named <run>-s<seed>")
    return run, int(seed)


def read_curves(run_dirs) -> pd.DataFrame:
    """Every run's ``epochs.csv`` in one frame: columns ``config``, ``seed`` and the file's
    own (old layout's ``train_loss`` renamed ``train_loss_smoothed``)."""
    frames = []
    for folder in map(Path, run_dirs):
        config, seed = split_run_dir(folder.name)
        frame = pd.read_csv(folder / "epochs.csv").rename(columns=OLD_COLUMNS)
        if "epoch" not in frame:
            raise ValueError(f"{folder / 'epochs.csv'} has no 'epoch' column")
        frame.insert(0, "seed", seed)
        frame.insert(0, "config", config)
        frames.append(frame)
    if not frames:
        raise FileNotFoundError("no run folders with an epochs.csv were given")
    return pd.concat(frames, ignore_index=True)


def colours(configs) -> dict[str, tuple]:
    """One colour per configuration: tab20's 10 strong colours, then its 10 light ones."""
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors
    order = list(palette[0::2]) + list(palette[1::2])
    return {config: order[i % len(order)] for i, config in enumerate(configs)}


def panels(curves: pd.DataFrame, label_smoothing: float | None = None) -> list[tuple[str, str, float]]:
    """(column, axis label, scale) of every panel with data: the training loss, then the
    validation and test accuracy where a run evaluated them."""
    if label_smoothing:
        loss = f"training loss, label-smoothed (ε = {label_smoothing:g})"
    elif label_smoothing == 0:
        loss = "training loss (cross-entropy)"
    else:
        loss = "training loss (with the recipe's label smoothing)"
    wanted = [("train_loss_smoothed", loss, 1.0), ("val_acc", "validation accuracy (%)", 100.0),
              ("test_acc", "test accuracy (%)", 100.0)]
    return [p for p in wanted if p[0] in curves and curves[p[0]].notna().any()]


def curves_figure(curves: pd.DataFrame, order=None, label_smoothing: float | None = None, title=None):
    """The figure (a matplotlib ``Figure``, no pyplot state): one panel per metric, the
    legend outside the panels on the right, integer epochs."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    configs = list(order) if order is not None else list(dict.fromkeys(curves["config"]))
    configs = [c for c in configs if (curves["config"] == c).any()]
    colour = colours(configs)
    shown = panels(curves, label_smoothing)
    fig = Figure(figsize=(4.2 * len(shown) + 2.8, 4.2), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    first, last = int(curves["epoch"].min()), int(curves["epoch"].max())
    pad = max(0.5, 0.02 * (last - first))
    for ax, (column, label, scale) in zip(axes, shown):
        for config in configs:
            runs = curves[(curves["config"] == config) & curves[column].notna()]
            for _, seed_run in runs.groupby("seed"):
                ax.plot(seed_run["epoch"], scale * seed_run[column], color=colour[config],
                        lw=SEED_LINE, alpha=0.45, marker=".", ms=3)
            mean = runs.groupby("epoch")[column].mean()
            ax.plot(mean.index, scale * mean.to_numpy(), color=colour[config], lw=MEAN_LINE, marker="o", ms=5)
        ax.set(xlabel="epoch", ylabel="accuracy (%)" if scale == 100.0 else "loss",
               xlim=(first - pad, last + pad))
        ax.set_title(label, fontsize=10)
        if last - first <= 20:  # few epochs: a tick at each, never a fractional one
            ax.set_xticks(range(int(first), int(last) + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour[c], lw=MEAN_LINE, marker="o", ms=5, label=c) for c in configs]
    handles += [Line2D([], [], color="0.3", lw=MEAN_LINE, marker="o", ms=5, label="thick: mean of the seeds"),
                Line2D([], [], color="0.3", lw=SEED_LINE, alpha=0.6, marker=".", ms=3, label="thin: one seed")]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False,
               title=f"{len(configs)} configurations, {curves.groupby(['config', 'seed']).ngroups} runs",
               title_fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def save_png(fig, path, dpi: int = 120) -> Path:
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def summary(curves: pd.DataFrame, order=None, label_smoothing: float | None = None) -> pd.DataFrame:
    """Per configuration, at its last epoch: the seeds, and mean ± std of each metric."""
    rows = []
    configs = list(order) if order is not None else list(dict.fromkeys(curves["config"]))
    for config in configs:
        runs = curves[curves["config"] == config]
        if runs.empty:
            continue
        last = runs[runs["epoch"] == runs["epoch"].max()]
        row = {"configuration": config, "seeds": ", ".join(str(s) for s in sorted(last["seed"])),
               "epochs": int(last["epoch"].iloc[0])}
        for column, label, scale in panels(curves, label_smoothing):
            values = scale * last[column].dropna()
            row[label] = _mean_std(values)
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(values: pd.Series) -> str:
    if values.empty:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.3g}" if abs(values.iloc[0]) < 10 else f"{values.iloc[0]:.2f}"
    mean, std = float(values.mean()), float(values.std(ddof=1))
    digits = 2 if abs(mean) >= 10 else 3
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; padding: 0 1.5em; max-width: 1400px; color: #222; }
svg { width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }
th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr:nth-child(even) td { background: #f6f6f6; }
summary { cursor: pointer; font-weight: bold; margin: 1em 0; }
.note { color: #555; max-width: 60em; }
"""


def curves_html(curves: pd.DataFrame, path, title: str, note: str = "", order=None,
                label_smoothing: float | None = None) -> Path:
    """The curves as one self-contained HTML page: the figure as inline SVG (text kept as
    text), the per-configuration summary, and every epoch's numbers folded away below."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig = curves_figure(curves, order, label_smoothing)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prologue and DOCTYPE inside the HTML page
    epochs = curves.sort_values(["config", "seed", "epoch"]).to_html(
        index=False, na_rep="", float_format=lambda v: "" if math.isnan(v) else f"{v:.4g}")
    table = summary(curves, order, label_smoothing).to_html(index=False)
    page = (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{PAGE_STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n"
            f"<p class='note'>{html.escape(note)}</p>\n{svg}\n"
            f"<h2>Last epoch, per configuration (mean ± std over seeds)</h2>\n{table}\n"
            f"<details><summary>Every epoch of every run ({len(curves)} rows)</summary>\n{epochs}\n</details>\n"
            "</body></html>\n")
    return atomic_write(path, lambda f: f.write(page.encode()))

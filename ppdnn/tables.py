"""Tables 2 and 3 of the paper from the train stages' metrics, beside the paper's numbers."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .files import atomic_write
from .markdown import markdown_table
from .paper import TABLE2_ROWS, TABLE3_ROWS  # noqa: F401  (re-exported)

# The paper's numbers live in ppdnn.paper (one place for tables and claims); re-exported here.


def run_dirs(runs_dir, runs=None, seeds=None) -> list[Path]:
    """The `<run>-s<seed>` folders, restricted to the pipeline's current runs and seeds
    when given: DVC does not delete the uncached results of a run or seed it no longer has."""
    dirs = sorted(p for p in Path(runs_dir).glob("*-s*") if p.is_dir())
    if runs is not None or seeds is not None:
        wanted = {f"{r}-s{s}" for r in (runs or {p.name.rsplit('-s', 1)[0] for p in dirs})
                  for s in (seeds if seeds is not None else {p.name.rsplit('-s', 1)[1] for p in dirs})}
        dirs = [p for p in dirs if p.name in wanted]
    return dirs


_run_dirs = run_dirs  # the old private name

# One row per (run, seed); accuracies are fractions as in the files (the tables show %),
# seconds is the training wall time, path the metrics.json (named in ppdnn.claims' errors).
METRIC_COLUMNS = ("run", "seed", "test_acc", "test_loss", "val_acc", "train_acc", "train_loss_smoothed",
                  "cipher", "adaptation", "augment", "profile", "data_source", "device", "seconds",
                  "images_per_s", "label_smoothing", "key_fingerprint", "path")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(value).__name__}")
    return value


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_run(folder) -> dict:
    """One run's row: its metrics.json (the few scalars; in the old layout also everything
    else) merged with run.json (provenance and configuration) where there is one."""
    folder = Path(folder)
    metrics_path = folder / "metrics.json"
    metrics = _read_json(metrics_path)
    info = _read_json(folder / "run.json") if (folder / "run.json").is_file() else {}
    acc = metrics.get("test_acc")
    if not _finite(acc) or not 0.0 <= acc <= 1.0:
        raise ValueError(f"{metrics_path}: test_acc must be a finite fraction in [0, 1], got {acc!r}")
    merged = {**metrics, **info}
    name, _, folder_seed = folder.name.rpartition("-s")
    config = merged.get("config") if isinstance(merged.get("config"), dict) else {}
    row = {key: merged.get(key) for key in METRIC_COLUMNS}
    row.update(run=merged.get("run") or name,
               seed=int(merged["seed"]) if _finite(merged.get("seed")) else int(folder_seed),
               test_acc=float(acc), seconds=merged.get("wall_time_s"), path=str(metrics_path),
               # the old layout's train_loss is the recipe's (label-smoothed) training loss
               train_loss_smoothed=merged.get("train_loss_smoothed", merged.get("train_loss")),
               label_smoothing=config.get("label_smoothing"),
               adaptation=merged.get("adaptation", config.get("adaptation")),
               augment=merged.get("augment", config.get("augment")))
    return row


def collect_metrics(runs_dir, runs=None, seeds=None) -> pd.DataFrame:
    """One row per (run, seed) from the train stages' files (columns :data:`METRIC_COLUMNS`)."""
    rows = [read_run(d) for d in run_dirs(runs_dir, runs, seeds) if (d / "metrics.json").is_file()]
    if not rows:
        raise FileNotFoundError(f"no */metrics.json under {runs_dir}"
                                + (f" for runs {list(runs)}" if runs is not None else "")
                                + (f" and seeds {list(seeds)}" if seeds is not None else ""))
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


def _summary(df, run: str) -> tuple[float, float, int, str]:
    """Mean, std (ddof=1) and number of the run's seeds, and which seeds they are."""
    rows = df.loc[df["run"] == run]
    acc = 100.0 * rows["test_acc"]  # fractions in the files, % in the tables
    seeds = ", ".join(str(int(s)) for s in sorted(rows["seed"]))
    if acc.empty:
        return float("nan"), float("nan"), 0, ""
    return float(acc.mean()), float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, int(len(acc)), seeds


def _fmt(mean: float, std: float, n: int) -> str:
    if n == 0:
        return "not run"
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def make_tables(df) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 2 and 3: our mean ± std over seeds beside the paper's accuracy and the difference;
    ``seeds`` counts the seeds of each row, ``seed_list`` names them."""
    t2 = []
    for label, run, paper in TABLE2_ROWS:
        mean, std, n, used = _summary(df, run)
        t2.append({"encryption": label, "run": run, "ours_mean": round(mean, 2), "ours_std": round(std, 2),
                   "seeds": n, "paper": paper, "difference": round(mean - paper, 2), "seed_list": used})
    t3 = []
    for label, client, paper_client, cloud, paper_cloud in TABLE3_ROWS:
        cm, cs, cn, client_used = _summary(df, client)
        dm, ds, dn, cloud_used = _summary(df, cloud)
        t3.append({"encryption": label,
                   "client_ours_mean": round(cm, 2), "client_ours_std": round(cs, 2), "client_paper": paper_client,
                   "client_difference": round(cm - paper_client, 2),
                   "cloud_ours_mean": round(dm, 2), "cloud_ours_std": round(ds, 2), "cloud_paper": paper_cloud,
                   "cloud_difference": round(dm - paper_cloud, 2), "client_seeds": cn, "cloud_seeds": dn,
                   "client_seed_list": client_used, "cloud_seed_list": cloud_used})
    return pd.DataFrame(t2), pd.DataFrame(t3)


def _seeds_cell(*lists: str) -> str:
    """The seeds of a row for Markdown: one list if all columns share it, else each."""
    if len(set(lists)) == 1:
        return lists[0] or "—"
    return " / ".join(used or "—" for used in lists)


def tables_markdown(t2, t3, provenance: str) -> tuple[str, str]:
    """Markdown versions of the tables, with the profile/data/device line under each."""
    rows2 = [{"encryption": r.encryption, "ours": _fmt(r.ours_mean, r.ours_std, r.seeds),
              "paper": f"{r.paper:.2f}", "difference": "—" if r.seeds == 0 else f"{r.difference:+.2f}",
              "seeds": _seeds_cell(r.seed_list)} for r in t2.itertuples()]
    rows3 = [{"encryption": r.encryption,
              "client_ours": _fmt(r.client_ours_mean, r.client_ours_std, r.client_seeds),
              "client_paper": f"{r.client_paper:.2f}",
              "cloud_ours": _fmt(r.cloud_ours_mean, r.cloud_ours_std, r.cloud_seeds),
              "cloud_paper": f"{r.cloud_paper:.2f}",
              "seeds": _seeds_cell(r.client_seed_list, r.cloud_seed_list)} for r in t3.itertuples()]
    right = {"ours": "right", "paper": "right", "difference": "right", "client_ours": "right",
             "client_paper": "right", "cloud_ours": "right", "cloud_paper": "right"}
    md2 = markdown_table(rows2, {"encryption": "Encryption", "ours": "Ours (%)", "paper": "Paper (%)",
                                 "difference": "Ours − paper", "seeds": "Seeds"}, right)
    md3 = markdown_table(rows3, {"encryption": "Encryption", "client_ours": "Client: ours",
                                 "client_paper": "Client: paper", "cloud_ours": "Cloud: ours",
                                 "cloud_paper": "Cloud: paper", "seeds": "Seeds (client / cloud)"}, right)
    foot = f"\n{provenance}\n"
    return md2 + foot, md3 + foot


def provenance(df) -> str:
    """One line saying where the numbers come from."""
    def values(column):
        return ", ".join(sorted({str(v) for v in df[column].dropna()})) or "unknown"
    seeds = sorted({int(s) for s in df["seed"].dropna()})
    return (f"Profile: {values('profile')}; data: {values('data_source')}; device: {values('device')}; "
            f"seeds: {seeds}; median {df['seconds'].median():.0f} s of training per run, "
            f"median {df['images_per_s'].median():.0f} training images/s.")


def _bars(ax, labels, ours, err, paper, title: str, fontsize: int) -> None:
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], ours, 0.4, yerr=err, label="ours (mean ± std over seeds)", color="tab:blue")
    ax.bar([i + 0.2 for i in x], paper, 0.4, label="paper", color="tab:gray")
    ax.set_xticks(list(x), labels, rotation=35, ha="right", fontsize=fontsize)
    ax.set(ylim=(0, 100), ylabel="test accuracy (%)", title=title)
    ax.grid(axis="y", alpha=0.3)


def tables_figure(t2: pd.DataFrame, t3: pd.DataFrame):
    """Bar chart, ours vs the paper for both tables (a matplotlib ``Figure``, no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[8, 6])
    short = [r.split(" [")[0].replace("Proposed ", "") for r in t2["encryption"]]
    _bars(left, short, t2["ours_mean"], t2["ours_std"], t2["paper"], "Table 2: augmentation in the cloud", 8)
    labels, ours, paper, err = [], [], [], []
    for r in t3.itertuples():
        name = r.encryption.split(" [")[0].replace("Proposed ", "")
        labels += [f"{name}\nclient", f"{name}\ncloud"]
        ours += [r.client_ours_mean, r.cloud_ours_mean]
        err += [r.client_ours_std, r.cloud_ours_std]
        paper += [r.client_paper, r.cloud_paper]
    _bars(right, labels, ours, err, paper, "Table 3: augmentation in the client or the cloud", 7)
    handles, names = left.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside upper center", ncol=2, frameon=False)
    return fig


def plot_tables(t2: pd.DataFrame, t3: pd.DataFrame, path) -> Path:
    """:func:`tables_figure` as a PNG, written atomically."""
    fig = tables_figure(t2, t3)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def write_tables(out_dir, t2: pd.DataFrame, t3: pd.DataFrame, md2: str, md3: str) -> None:
    """table2.csv|md and table3.csv|md in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    for name, frame, md in (("table2", t2, md2), ("table3", t3, md3)):
        atomic_write(out_dir / f"{name}.csv", lambda f, frame=frame: frame.to_csv(f, index=False))
        atomic_write(out_dir / f"{name}.md", lambda f, md=md: f.write(md.encode()))


def write_run_metrics(folder, metrics: pd.DataFrame) -> Path:
    """``folder``/<run>.json per run: mean test and validation accuracy (%), the standard
    deviation of test accuracy over seeds (pp) and the number of seeds. These are the
    tables stage's DVC metrics: ``dvc metrics show`` prints one short line per run, and
    ``dvc exp show`` a column per run and key. A run no longer in the plan loses its file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def pct(value) -> float | None:
        return None if pd.isna(value) else round(float(value) * 100, 2)

    written = set()
    for run, part in metrics.groupby("run", sort=False):
        payload = {"test_acc": pct(part["test_acc"].mean()), "sd": pct(part["test_acc"].std()),
                   "val_acc": pct(part["val_acc"].mean()) if "val_acc" in part else None,
                   "seeds": int(len(part))}
        atomic_write(folder / f"{run}.json", lambda f, p=payload: f.write((json.dumps(p) + "\n").encode()))
        written.add(f"{run}.json")
    for old in folder.glob("*.json"):
        if old.name not in written:
            old.unlink()
    return folder

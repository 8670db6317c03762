"""Tables 2 and 3 of the paper from the train stages' metrics, beside the paper's numbers."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import matplotlib
import pandas as pd

from .files import atomic_write
from .markdown import markdown_table

# The paper's numbers (Tables 2 and 3, accuracy in %), shown beside ours, never used as ours.
TABLE2_ROWS = [  # (row label, run name, paper accuracy)
    ("Plain image", "plain", 92.98),
    ("Proposed (step 2) without adaptation", "step2_cloud", 85.15),
    ("Proposed (step 2) with adaptation", "step2_adapt_cloud", 86.99),
    ("Proposed (steps 2 and 3) without adaptation", "step23_cloud", 82.51),
    ("Proposed (steps 2 and 3) with adaptation", "step23_adapt_cloud", 86.16),
    ("Tanaka's scheme [6]", "tanaka_cloud", 56.41),
    ("EtC [9, 10]", "etc_cloud", 69.03),
    ("Pixel-based [16] (chaotic/RC4)", "chaotic_rc4_cloud", 58.59),
]
TABLE3_ROWS = [  # (row label, client run, paper client, cloud run, paper cloud)
    ("Proposed (step 2) without adaptation", "step2_client", 92.94, "step2_cloud", 85.15),
    ("Proposed (step 2) with adaptation", "step2_adapt_client", 90.65, "step2_adapt_cloud", 86.99),
    ("Tanaka's scheme [6]", "tanaka_client", 85.84, "tanaka_cloud", 56.41),
]

def _run_dirs(runs_dir, runs=None, seeds=None) -> list[Path]:
    """The `<run>-s<seed>` folders, restricted to the pipeline's current runs and seeds
    when given: DVC does not delete the uncached results of a run or seed it no longer has."""
    dirs = sorted(p for p in Path(runs_dir).glob("*-s*") if p.is_dir())
    if runs is not None or seeds is not None:
        wanted = {f"{r}-s{s}" for r in (runs or {p.name.rsplit('-s', 1)[0] for p in dirs})
                  for s in (seeds if seeds is not None else {p.name.rsplit('-s', 1)[1] for p in dirs})}
        dirs = [p for p in dirs if p.name in wanted]
    return dirs


def collect_metrics(runs_dir, runs=None, seeds=None) -> pd.DataFrame:
    """One row per (run, seed) from the metrics.json files of the train stages."""
    rows = []
    for path in (d / "metrics.json" for d in _run_dirs(runs_dir, runs, seeds)):
        m = json.loads(path.read_text())
        # train.run merges the pipeline's `extra` (run, profile, data_source) into the metrics
        rows.append({"run": m.get("run", path.parent.name.rsplit("-s", 1)[0]),
                     "seed": m.get("seed"), "test_acc": 100.0 * m["test_acc"],
                     "profile": m.get("profile"), "data_source": m.get("data_source"),
                     "device": m.get("device"), "seconds": m.get("wall_time_s"),
                     "images_per_s": m.get("images_per_s")})
    if not rows:
        raise FileNotFoundError(f"no */metrics.json under {runs_dir}")
    return pd.DataFrame(rows)


def _summary(df, run: str) -> tuple[float, float, int]:
    acc = df.loc[df["run"] == run, "test_acc"]
    if acc.empty:
        return float("nan"), float("nan"), 0
    return float(acc.mean()), float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, int(len(acc))


def _fmt(mean: float, std: float, n: int) -> str:
    if n == 0:
        return "not run"
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def make_tables(df) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 2 and 3: our mean ± std over seeds beside the paper's accuracy and the difference."""
    t2 = []
    for label, run, paper in TABLE2_ROWS:
        mean, std, n = _summary(df, run)
        t2.append({"encryption": label, "run": run, "ours_mean": round(mean, 2), "ours_std": round(std, 2),
                   "seeds": n, "paper": paper, "difference": round(mean - paper, 2)})
    t3 = []
    for label, client, paper_client, cloud, paper_cloud in TABLE3_ROWS:
        cm, cs, cn = _summary(df, client)
        dm, ds, dn = _summary(df, cloud)
        t3.append({"encryption": label,
                   "client_ours_mean": round(cm, 2), "client_ours_std": round(cs, 2), "client_paper": paper_client,
                   "client_difference": round(cm - paper_client, 2),
                   "cloud_ours_mean": round(dm, 2), "cloud_ours_std": round(ds, 2), "cloud_paper": paper_cloud,
                   "cloud_difference": round(dm - paper_cloud, 2), "client_seeds": cn, "cloud_seeds": dn})
    return pd.DataFrame(t2), pd.DataFrame(t3)


def tables_markdown(t2, t3, provenance: str) -> tuple[str, str]:
    """Markdown versions of the tables, with the profile/data/device line under each."""
    rows2 = [{"encryption": r.encryption, "ours": _fmt(r.ours_mean, r.ours_std, r.seeds),
              "paper": f"{r.paper:.2f}", "difference": f"{r.difference:+.2f}"} for r in t2.itertuples()]
    rows3 = [{"encryption": r.encryption,
              "client_ours": _fmt(r.client_ours_mean, r.client_ours_std, r.client_seeds),
              "client_paper": f"{r.client_paper:.2f}",
              "cloud_ours": _fmt(r.cloud_ours_mean, r.cloud_ours_std, r.cloud_seeds),
              "cloud_paper": f"{r.cloud_paper:.2f}"} for r in t3.itertuples()]
    right = {"ours": "right", "paper": "right", "difference": "right", "client_ours": "right",
             "client_paper": "right", "cloud_ours": "right", "cloud_paper": "right"}
    md2 = markdown_table(rows2, {"encryption": "Encryption", "ours": "Ours (%)", "paper": "Paper (%)",
                                 "difference": "Ours − paper"}, right)
    md3 = markdown_table(rows3, {"encryption": "Encryption", "client_ours": "Client: ours",
                                 "client_paper": "Client: paper", "cloud_ours": "Cloud: ours",
                                 "cloud_paper": "Cloud: paper"}, right)
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


def plot_tables(t2: pd.DataFrame, t3: pd.DataFrame, path) -> None:
    """Bar chart: ours vs the paper for both tables."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [8, 6]})
    ax = axes[0]
    x = range(len(t2))
    ax.bar([i - 0.2 for i in x], t2["ours_mean"], 0.4, yerr=t2["ours_std"], label="ours", color="tab:blue")
    ax.bar([i + 0.2 for i in x], t2["paper"], 0.4, label="paper", color="tab:gray")
    ax.set_xticks(list(x), [r.split(" [")[0].replace("Proposed ", "") for r in t2["encryption"]],
                  rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Table 2: augmentation in the cloud")
    ax.legend()
    ax = axes[1]
    labels, ours, paper, err = [], [], [], []
    for r in t3.itertuples():
        short = r.encryption.split(" [")[0].replace("Proposed ", "")
        labels += [f"{short}\nclient", f"{short}\ncloud"]
        ours += [r.client_ours_mean, r.cloud_ours_mean]
        err += [r.client_ours_std, r.cloud_ours_std]
        paper += [r.client_paper, r.cloud_paper]
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], ours, 0.4, yerr=err, label="ours", color="tab:blue")
    ax.bar([i + 0.2 for i in x], paper, 0.4, label="paper", color="tab:gray")
    ax.set_xticks(list(x), labels, rotation=35, ha="right", fontsize=7)
    ax.set_title("Table 3: augmentation in the client or the cloud")
    for ax in axes:
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def read_curves(runs_dir, runs=None, seeds=None) -> pd.DataFrame:
    """Every run's per-epoch metrics in one frame (columns of epochs.csv plus `run`)."""
    frames = []
    for path in (d / "epochs.csv" for d in _run_dirs(runs_dir, runs, seeds)):
        frame = pd.read_csv(path)
        frame.insert(0, "run", path.parent.name)
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"no */epochs.csv under {runs_dir}")
    return pd.concat(frames, ignore_index=True)


def curves_html(curves: pd.DataFrame, path, title: str) -> None:
    """Training curves as one self-contained HTML page (inline SVG, nothing loaded from the web).

    `dvc plots show` writes a page that fetches Vega from a CDN; this one works offline.
    """
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for run, frame in curves.groupby("run", sort=True):
        axes[0].plot(frame["epoch"], frame["train_loss"], marker=".", label=run)
        axes[1].plot(frame["epoch"], 100 * frame["test_acc"], marker=".", label=run)
    axes[0].set(xlabel="epoch", ylabel="training loss", title="training loss")
    axes[1].set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    table = curves.to_html(index=False, float_format=lambda v: f"{v:.4f}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
                          f"<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px}}</style></head>"
                          f"<body><h1>{title}</h1>{buf.getvalue()}<h2>Per-epoch metrics</h2>{table}</body></html>\n")
    atomic_write(path, lambda f: f.write(page.encode()))


def write_tables(out_dir, t2: pd.DataFrame, t3: pd.DataFrame, md2: str, md3: str) -> None:
    """table2.csv|md and table3.csv|md in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    for name, frame, md in (("table2", t2, md2), ("table3", t3, md3)):
        atomic_write(out_dir / f"{name}.csv", lambda f, frame=frame: frame.to_csv(f, index=False))
        atomic_write(out_dir / f"{name}.md", lambda f, md=md: f.write(md.encode()))


def plot_learning_curves(epochs_csv, path, title: str | None = None) -> Path:
    """Loss and accuracy per epoch (train, and test where evaluated) from a run's ``epochs.csv``."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.read_csv(epochs_csv)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for split in ("train", "test"):
        ax_loss.plot(frame["epoch"], frame[f"{split}_loss"], marker="o", label=split)
        ax_acc.plot(frame["epoch"], 100 * frame[f"{split}_acc"], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- README
README_BLOCKS = ("table2.md", "table3.md", "claims.md")


def readme_block(text: str, source: str) -> tuple[int, int]:
    """Start and end offsets of the content between ``<!-- include: source -->`` and
    ``<!-- end include -->`` in ``text``; ValueError if the markers are missing."""
    start_marker, end_marker = f"<!-- include: {source} -->\n", "<!-- end include -->"
    start = text.find(start_marker)
    if start < 0:
        raise ValueError(f"README has no '{start_marker.strip()}' marker")
    start += len(start_marker)
    end = text.find(end_marker, start)
    if end < 0:
        raise ValueError(f"README: '{start_marker.strip()}' is not closed by '{end_marker}'")
    return start, end


def update_readme(readme, root=".") -> list[str]:
    """Copy every included results file (``<!-- include: results/quick/claims.md -->``) into
    the README, so that its tables are generated, never typed. Returns the files included."""
    readme, root = Path(readme), Path(root)
    text = readme.read_text()
    included = []
    for source in sorted(set(_included(text))):
        start, end = readme_block(text, source)
        text = text[:start] + (root / source).read_text() + text[end:]
        included.append(source)
    atomic_write(readme, lambda f: f.write(text.encode()))
    return included


def _included(text: str) -> list[str]:
    return re.findall(r"<!-- include: (\S+) -->", text)

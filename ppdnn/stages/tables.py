"""The tables stage: Tables 2-3, the claims, the bar chart and every run's learning curves.

    python -m ppdnn.stages.tables --params params.yaml --runs-dir results/quick/runs --out results/quick

Reads ``<runs-dir>/<run>-s<seed>/`` (metrics.json, run.json where present, epochs.csv) for
the runs and seeds of params.yaml only: DVC leaves the results of a removed run or seed in
place, and they must not count.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ppdnn import claims, curves
from ppdnn import tables as paper_tables
from ppdnn.errors import run_main
from ppdnn.files import check_writable

OUTPUTS = ("table2.csv", "table2.md", "table3.csv", "table3.md", "claims.csv", "claims.md",
           "tables.png", "curves.png", "curves.html", "metrics")  # metrics: a folder, a file per run


def tables(runs_dir, out_dir, runs: list[str], seeds: list[int], profile: str) -> dict[str, Path]:
    """Write :data:`OUTPUTS` to ``out_dir`` from the runs ``runs`` x ``seeds`` of ``profile``
    found in ``runs_dir``; returns {file name: path}. A (run, seed) without results is
    reported as missing (Tables: "not run") and every row names the seeds it used."""
    runs, seeds = _check_runs(runs), _check_seeds(seeds)
    if not isinstance(profile, str) or not profile:
        raise ValueError(f"profile must be a non-empty string, got {profile!r}")
    check_writable(out_dir)
    out = Path(out_dir)
    metrics = paper_tables.collect_metrics(runs_dir, runs, seeds)
    other = sorted({str(p) for p in metrics["profile"].dropna()} - {profile})
    if other:
        raise ValueError(f"{runs_dir} holds runs of profile {other}, not {profile!r}: wrong --runs-dir?")
    found = set(zip(metrics["run"], metrics["seed"]))
    missing = [f"{r}-s{s}" for r in runs for s in seeds if (r, s) not in found]
    if missing:
        print(f"tables: no results yet for {len(missing)} runs: {', '.join(missing)}", file=sys.stderr)

    t2, t3 = paper_tables.make_tables(metrics)
    provenance = paper_tables.provenance(metrics)
    md2, md3 = paper_tables.tables_markdown(t2, t3, provenance)
    paper_tables.write_tables(out, t2, t3, md2, md3)
    paper_tables.write_run_metrics(out / "metrics", metrics)
    claims_table = claims.claims_table(metrics)
    claims.write_claims(out, claims_table, claims.claims_markdown(claims_table, provenance))
    paper_tables.plot_tables(t2, t3, out / "tables.png")
    _write_curves(runs_dir, out, runs, seeds, metrics, f"Learning curves, profile {profile}", provenance)
    print(f"tables: {len(metrics)} runs of profile {profile} -> {', '.join(str(out / n) for n in OUTPUTS)}")
    return {name: out / name for name in OUTPUTS}


def _write_curves(runs_dir, out: Path, runs, seeds, metrics, title: str, note: str) -> None:
    """curves.png and curves.html of every (run, seed) that has an epochs.csv."""
    dirs = [d for d in paper_tables.run_dirs(runs_dir, runs, seeds) if (d / "epochs.csv").is_file()]
    if not dirs:
        raise FileNotFoundError(f"no */epochs.csv under {runs_dir} for runs {runs} and seeds {seeds}")
    frame = curves.read_curves(dirs)
    smoothing = sorted({float(v) for v in metrics["label_smoothing"].dropna()})
    smoothing = smoothing[0] if len(smoothing) == 1 else None  # one label only if all runs share it
    curves.save_png(curves.curves_figure(frame, runs, smoothing, title), out / "curves.png")
    curves.curves_html(frame, out / "curves.html", title, note, runs, smoothing)


def _check_runs(runs) -> list[str]:
    if not isinstance(runs, (list, tuple)) or not runs or not all(isinstance(r, str) and r for r in runs):
        raise ValueError(f"runs must be a non-empty list of run names, got {runs!r}")
    if len(set(runs)) != len(runs):
        raise ValueError(f"runs must be distinct, got {list(runs)}")
    return list(runs)


def _check_seeds(seeds) -> list[int]:
    good = isinstance(seeds, (list, tuple)) and seeds and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    if not good or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct non-negative ints, got {seeds!r}")
    return list(seeds)


def read_plan(params_file) -> tuple[list[str], list[int], str]:
    """(run names, seeds, profile) from params.yaml's ``runs``, ``seeds`` and ``profile``."""
    import yaml

    path = Path(params_file)
    params = yaml.safe_load(path.read_text())
    if not isinstance(params, dict):
        raise ValueError(f"{path} must be a mapping")
    missing = [k for k in ("runs", "seeds", "profile") if k not in params]
    if missing:
        raise KeyError(f"{path} has no {', '.join(missing)}")
    if not isinstance(params["runs"], list):
        raise ValueError(f"{path}: runs must be a list, got {params['runs']!r}")
    names = [r.get("name") if isinstance(r, dict) else r for r in params["runs"]]
    return _check_runs(names), _check_seeds(params["seeds"]), params["profile"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.stages.tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="reads its runs, seeds and profile")
    parser.add_argument("--runs-dir", required=True, help="folder of the <run>-s<seed> result folders")
    parser.add_argument("--out", required=True, help="folder for the tables, claims and curves")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    def body():
        runs, seeds, profile = read_plan(args.params)
        tables(args.runs_dir, args.out, runs, seeds, profile)
    return run_main("ppdnn.stages.tables", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

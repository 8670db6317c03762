"""The budget study: every claim at two training budgets, on the same seeds, side by side.

    python -m ppdnn.budgets import ../ppdnn-long --profile long   # a second checkout's results
    python -m ppdnn.budgets compare --budgets quick long --out results/budgets

A verdict can differ between two profiles because the effect changes with training, by
chance, or because one profile has more seeds (more power). So the verdicts are compared on
the seeds both budgets have, and the change of each effect is tested directly: seeds are
independent replicates, which is all a test needs, and pairing by seed also removes what a
seed's shared initial weights and first batches give both budgets (their learning-rate
schedules differ from the first step, so that share may be small). Paired: d(after) -
d(before) per shared seed, one-sample t test; unpaired beside it: Welch over every seed of
each budget, for comparison only (the budgets share seeds, so its samples are not
independent). Holm over the rows for each. The last budget's test accuracy after every epoch
(profile setting ``eval_every_epoch``) shows how each effect moves within its run.

``compare`` writes ``comparison.csv``, ``epochs.csv``, ``budgets.md`` and ``headline.md`` (one
line for the README's claims section) to ``--out``; it reads
only ``<results>/<budget>/runs/*/`` (metrics.json, run.json, epochs.csv) of the runs of
params.yaml. ``import`` brings a profile's results from a second checkout that ran it (one
``dvc.lock`` holds one profile's train stages, README "The budget study"): only the files that
checkout's ``dvc.lock`` records for the profile, each checked against its recorded hash, with
those lock entries as ``results/<profile>/dvc.lock``.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from . import claims, curves, plan
from . import tables as paper_tables
from .errors import run_main
from .files import atomic_write, check_writable
from .markdown import markdown_table

ALPHA = claims.ALPHA


# ---------------------------------------------------------------- the comparison
def claim_runs(claim_list=claims.CLAIMS) -> set[str]:
    return {run for claim in claim_list for row in claim.rows for run in row.runs}


def complete_seeds(frame: pd.DataFrame, runs) -> set[int]:
    """The seeds of a metrics frame that have every run of ``runs``."""
    return {int(s) for s in frame["seed"].unique() if set(frame.loc[frame["seed"] == s, "run"]) >= set(runs)}


def common_seeds(metrics: dict[str, pd.DataFrame], runs) -> list[int]:
    """The seeds for which every budget has every run; ValueError if fewer than two."""
    each = {budget: complete_seeds(frame, runs) for budget, frame in metrics.items()}
    seeds = sorted(set.intersection(*each.values()))
    if len(seeds) < 2:
        have = "; ".join(f"{b}: {sorted(s) or 'none'}" for b, s in each.items())
        raise ValueError(f"the budgets share {len(seeds)} seed(s) with all {len(set(runs))} runs "
                         f"(seeds with every run: {have}); a paired comparison needs at least 2")
    return seeds


def _contrast(acc: pd.DataFrame, row: claims.Contrast) -> np.ndarray:
    """The row's contrast for each seed (index of ``acc``), in pp."""
    return sum(c * acc[run].to_numpy() for c, run in row.terms)


def _two_sided(delta: np.ndarray) -> float:
    if np.ptp(delta) == 0:  # every seed moved by the same amount: certain, either way
        return 1.0 if delta[0] == 0 else 0.0
    return float(stats.ttest_1samp(delta, 0.0).pvalue)


def effect_changes(before: pd.DataFrame, after: pd.DataFrame, claim_list=claims.CLAIMS) -> pd.DataFrame:
    """Per row, from two accuracy_by_seed frames (seeds x runs, pp; every seed complete):
    the paired change d(after) - d(before) over the seeds both have (mean, unadjusted 95% t
    interval, two-sided p, Holm over the rows, the smallest change detectable at Holm's
    strictest level with 80% power) and Welch's unpaired test over every seed of each."""
    shared = before.index.intersection(after.index)
    if len(shared) < 2:
        raise ValueError(f"effect_changes needs 2 or more shared seeds, got {list(shared)}")
    rows = [row for claim in claim_list for row in claim.rows]
    level = ALPHA / (2 * len(rows))  # Holm's strictest, two-sided
    out = []
    for row in rows:
        delta = _contrast(after.loc[shared], row) - _contrast(before.loc[shared], row)
        d_before, d_after = _contrast(before, row), _contrast(after, row)
        if not (np.isfinite(delta).all() and np.isfinite(d_before).all() and np.isfinite(d_after).all()):
            raise ValueError(f"row {row.id}: an accuracy is missing or not finite for a seed")
        mean, sd, n = float(delta.mean()), float(delta.std(ddof=1)), len(delta)
        low, high = claims.paired_interval(delta, 0.95)
        if np.ptp(d_after) > 0 or np.ptp(d_before) > 0:
            welch = float(stats.ttest_ind(d_after, d_before, equal_var=False).pvalue)
        else:  # no spread at either budget
            welch = 1.0 if d_after[0] == d_before[0] else 0.0
        out.append({"id": row.id, "change_pp": mean, "change_low": low, "change_high": high,
                    "change_sd_pp": sd, "mde_change_pp": claims.detectable_effect(sd, n, level),
                    "p_change": _two_sided(delta), "p_change_welch": welch})
    frame = pd.DataFrame(out)
    for column, flag in (("p_change", "effect_changes"), ("p_change_welch", "effect_changes_welch")):
        frame[f"{column}_holm"] = claims.holm(frame[column].to_numpy())
        frame[flag] = frame[f"{column}_holm"] < ALPHA
    return frame


def effects_by_epoch(epochs: pd.DataFrame, seeds: list[int], claim_list=claims.CLAIMS,
                     where: str = "the epochs") -> pd.DataFrame:
    """Mean contrast (pp) of test accuracy after each epoch, over ``seeds``: one row per claim
    row, one column per epoch at which every run of the claims has a test accuracy for every seed."""
    runs = sorted(claim_runs(claim_list))
    have = epochs.dropna(subset=["test_acc"]) if "test_acc" in epochs else epochs.iloc[0:0]
    have = have[have["seed"].isin(seeds)] if "seed" in have else have
    table = {}
    for epoch, part in have.groupby("epoch"):
        acc = 100.0 * part.pivot(index="seed", columns="config", values="test_acc").reindex(index=seeds, columns=runs)
        if acc.isna().any().any():
            continue
        table[int(epoch)] = {row.id: float(_contrast(acc, row).mean()) for c in claim_list for row in c.rows}
    if not table:
        raise ValueError(f"{where}: no epoch has a test accuracy for every run and seed {seeds}: "
                         f"was the profile trained with eval_every_epoch?")
    return pd.DataFrame(table).rename_axis("id").reset_index()


def budget_study(metrics: dict[str, pd.DataFrame], epochs: pd.DataFrame, runs: list[str],
                 claim_list=claims.CLAIMS, where: str = "the epochs"):
    """(comparison, effects by epoch of the second budget, the shared seeds) of two budgets'
    metrics, ``{before: tables.collect_metrics frame, after: ...}``."""
    if not isinstance(metrics, dict) or len(metrics) != 2:
        raise ValueError("budget_study compares exactly two budgets, {before: metrics, after: metrics}")
    missing = sorted(claim_runs(claim_list) - set(runs))
    if missing:
        raise ValueError(f"the claims need the runs {missing}, which the plan's runs lack")
    seeds = common_seeds(metrics, runs)
    on_seeds = {b: m[m["seed"].isin(seeds) & m["run"].isin(runs)] for b, m in metrics.items()}
    comparison = claims.compare_budgets({b: claims.claims_table(m, claim_list) for b, m in on_seeds.items()})
    complete = {}
    for budget, m in metrics.items():  # each budget's own headline, on all of its complete seeds
        m = m[m["run"].isin(runs) & m["seed"].isin(complete_seeds(m, runs))]
        complete[budget] = claims.accuracy_by_seed(m)
        headline = claims.claims_table(m, claim_list)
        comparison = comparison.join(headline.set_index("id")[["verdict", "seeds"]]
                                     .add_suffix(f"_{budget}_all"), on="id")
    comparison = comparison.merge(effect_changes(*complete.values(), claim_list), on="id")
    return comparison, effects_by_epoch(epochs, seeds, claim_list, where), seeds


# ---------------------------------------------------------------- Markdown
def _claim_order(claim_id: str) -> tuple[int, str]:
    return int("".join(c for c in claim_id if c.isdigit()) or 0), claim_id


def _signed(x: float) -> str:
    return "—" if not np.isfinite(x) else f"{x:+.2f}"


def _p(x: float) -> str:
    return "<0.001" if x < 0.001 else f"{x:.3g}"


def _mde(x: float) -> str:
    """A detectable change beyond 100 pp is beyond any plausible change of an effect: too few seeds."""
    return "—" if not np.isfinite(x) else "> 100" if x > 100 else f"{x:.2f}"


def _ids(comparison: pd.DataFrame, flag: str) -> str:
    ids = list(comparison.loc[comparison[flag], "id"])
    return f" ({', '.join(ids)})" if ids else ""


def _counts(verdicts: pd.Series) -> str:
    order = dict.fromkeys([claims.REPRODUCED, claims.CONTRADICTED, claims.INCONCLUSIVE, *verdicts])
    return ", ".join(f"{int((verdicts == v).sum())} {v}" for v in order)


def headline_markdown(comparison: pd.DataFrame, seeds: list[int], budgets: list[str]) -> str:
    """One line: each budget's family-wise headline on all of its seeds and on the shared ones."""
    per_claim = comparison.drop_duplicates("claim_id")
    shared = ", ".join(map(str, seeds))
    own = "; ".join(f"{b} (seeds {per_claim[f'seeds_{b}_all'].iloc[0]}): {_counts(per_claim[f'verdict_{b}_all'])}"
                    for b in budgets)
    same = "; ".join(f"{b} {_counts(per_claim[f'verdict_{b}'])}" for b in budgets)
    changed = sorted(per_claim.loc[per_claim["verdict_changes"], "claim_id"], key=_claim_order)
    level = ALPHA / (2 * len(per_claim))  # Holm's strictest, one-sided, as in the claims table
    needs = ", ".join(f"t > {stats.t.ppf(1 - level, n - 1):.1f} with {n} seeds ({b})" for b, n in
                      ((b, len(str(per_claim[f"seeds_{b}_all"].iloc[0]).split(","))) for b in budgets))
    return (f"**Both budgets, family-wise headline over {len(per_claim)} claims**: {own}. On the seeds both have "
            f"({shared}): {same}; the claims whose verdict differs: {', '.join(changed) or 'none'} "
            f"(\"The budget study\"). The seed count weighs here: the first claim Holm decides needs its "
            f"weakest row's paired t above the quantile at α/(2 × {len(per_claim)}), {needs}.\n")


def budgets_markdown(comparison: pd.DataFrame, by_epoch: pd.DataFrame, seeds: list[int],
                     budgets: list[str], provenance: str) -> str:
    """The study as Markdown: the change of each effect and the verdicts on the shared seeds,
    then the effects after each epoch of the second budget."""
    a, b = budgets
    shared = ", ".join(map(str, seeds))
    n_rows = len(comparison)
    changed = sorted(comparison.loc[comparison["verdict_changes"], "claim_id"].unique(), key=_claim_order)
    lines = [f"**The effect itself changes from {a} to {b} in {int(comparison['effect_changes'].sum())} of "
             f"{n_rows} rows{_ids(comparison, 'effect_changes')}** (paired by seed, seeds {shared}, Holm over "
             f"the rows at α = {ALPHA}). Welch's unpaired test over every seed of each budget, beside it for "
             f"comparison, decides nothing: its two samples share seeds, so they are not independent, as it "
             f"assumes (it would flag {int(comparison['effect_changes_welch'].sum())}"
             f"{_ids(comparison, 'effect_changes_welch')}). "
             f"On the shared seeds, {len(changed)} of {comparison['claim_id'].nunique()} claims' family-wise "
             f"verdicts differ between the budgets ({', '.join(changed) or 'none'}) and "
             f"{int(comparison['row_verdict_changes'].sum())} rows' own verdicts do: descriptive, since a "
             f"difference in significance is not a significant difference.", ""]
    rows = []
    for r in comparison.to_dict("records"):
        flags = [w for w, f in (("effect", r["effect_changes"]),
                                ("claim verdict", r["verdict_changes"]), ("row verdict", r["row_verdict_changes"])) if f]
        rows.append({"id": r["id"], "comparison": r["comparison"],
                     "a": _signed(r[f"ours_pp_{a}"]), "b": _signed(r[f"ours_pp_{b}"]),
                     "change": f"{_signed(r['change_pp'])} [{_signed(r['change_low'])}, {_signed(r['change_high'])}]",
                     "mde": _mde(r["mde_change_pp"]),
                     "p": _p(r["p_change_holm"]), "pw": _p(r["p_change_welch_holm"]),
                     "va": r[f"verdict_{a}"], "vb": r[f"verdict_{b}"],
                     "all": f"{r[f'verdict_{a}_all']} / {r[f'verdict_{b}_all']}",
                     "flags": f"**{', '.join(flags)}**" if flags else "—"})
    columns = {"id": "#", "comparison": "Effect", "a": f"{a} (pp)", "b": f"{b} (pp)",
               "change": f"{b} − {a} [95% CI]", "mde": "Smallest detectable change (pp)",
               "p": "Holm p, paired", "pw": "Holm p, Welch", "va": f"Claim, {a}", "vb": f"Claim, {b}",
               "all": f"Claim on all seeds, {a} / {b}", "flags": "Differs with the budget"}
    lines.append(markdown_table(rows, columns, {k: "right" for k in ("a", "b", "change", "mde", "p", "pw")}))
    lines += [f"{a} (pp), {b} (pp): each budget's effect, mean over the shared seeds. {b} − {a}: the "
              f"change of the effect, paired by seed, with its 95% t interval (not adjusted for "
              f"multiplicity); smallest detectable change: what the paired test detects with 80% power "
              f"at Holm's strictest level, α/(2 × {n_rows}), given the seeds' spread of the change (rough: that "
              f"spread is estimated from {len(seeds)} seeds; \"> 100\": beyond any plausible change, too few "
              f"seeds). Holm "
              f"p: the two-sided tests of no change, Holm over the {n_rows} rows, paired (shared seeds) and "
              f"Welch (every seed of each budget; not valid here, see above); \"effect\" is flagged where "
              f"the paired one is below α. Claim, {a} / {b}: the "
              f"family-wise verdict of the claims table computed on the shared seeds only, so that the "
              f"number of seeds is the same at both budgets; claim on all seeds: each budget's own "
              f"headline. A \"row verdict\" flag is a change of the row's own 95% interval verdict, "
              f"without multiplicity control.", ""]
    epochs = [c for c in by_epoch.columns if c != "id"]
    lines += [f"Effect (pp, mean over seeds {shared}) on test accuracy after each epoch of the {b} "
              f"budget. Before the last epoch the learning rate has not annealed: an epoch's "
              f"number is a snapshot of an unfinished run, not the result of a shorter budget.", ""]
    epoch_rows = [{"id": r["id"], **{str(e): _signed(r[e]) for e in epochs}} for r in by_epoch.to_dict("records")]
    lines.append(markdown_table(epoch_rows, {"id": "#", **{str(e): f"epoch {e}" for e in epochs}},
                                {str(e): "right" for e in epochs}))
    lines.append(f"{provenance}\n")
    return "\n".join(lines)


def _provenance(metrics: dict[str, pd.DataFrame]) -> str:
    parts = []
    for budget, m in metrics.items():
        source = ", ".join(sorted(m["data_source"].dropna().astype(str).unique())) or "unknown"
        device = ", ".join(sorted(m["device"].dropna().astype(str).unique())) or "unknown"
        parts.append(f"{budget}: data {source}, {device}, seeds {sorted(int(s) for s in m['seed'].unique())}")
    return "Budgets: " + "; ".join(parts) + "."


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Effects to 4 decimals; p-values to 4 significant figures (a small one stays non-zero)."""
    out = frame.copy()
    for column in out.select_dtypes("float").columns:
        out[column] = [float(f"{v:.4g}") for v in out[column]] if str(column).startswith("p_") else out[column].round(4)
    return out


def write_study(results_dir, budgets: list[str], runs: list[str], out_dir) -> dict[str, Path]:
    """Read the budgets' run folders under ``results_dir``, write the study to ``out_dir``."""
    if len(budgets) != 2 or budgets[0] == budgets[1]:
        raise ValueError(f"--budgets takes two different profiles, got {budgets}")
    check_writable(out_dir)
    metrics = {b: paper_tables.collect_metrics(Path(results_dir) / b / "runs", runs) for b in budgets}
    last = Path(results_dir) / budgets[1] / "runs"
    comparison, by_epoch, seeds = budget_study(metrics, curves.read_curves(paper_tables.run_dirs(last, runs)),
                                               runs, where=str(last))
    comparison, by_epoch = _csv_ready(comparison), _csv_ready(by_epoch)  # the Markdown shows the files' numbers
    texts = {"budgets.md": budgets_markdown(comparison, by_epoch, seeds, budgets, _provenance(metrics)),
             "headline.md": headline_markdown(comparison, seeds, budgets)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"comparison.csv": comparison, "epochs.csv": by_epoch}
    for name, frame in written.items():
        atomic_write(out / name, lambda f, frame=frame: frame.to_csv(f, index=False))
    for name, text in texts.items():
        atomic_write(out / name, lambda f, text=text: f.write(text.encode()))
    return {name: out / name for name in (*written, *texts)}


# ---------------------------------------------------------------- import from a second checkout
def profile_stages(lock: dict, profile: str) -> dict:
    """The stages of a parsed dvc.lock that ran for ``profile`` (its train and tables stages)."""
    return {name: stage for name, stage in (lock.get("stages") or {}).items()
            if f"--profile {profile} " in f"{stage.get('cmd', '')} " or f"results/{profile}/" in stage.get("cmd", "")}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _commit(checkout) -> str:
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def import_profile(checkout, profile: str, results_dir="results") -> Path:
    """Replace ``<results_dir>/<profile>`` by the files the checkout's dvc.lock records under
    ``results/<profile>/`` (each checked against its md5; a folder output is copied whole),
    plus those lock entries as its ``dvc.lock``. A failure leaves the previous folder as it was."""
    if not isinstance(profile, str) or not profile.isidentifier():
        raise ValueError(f"--profile must be a profile name, got {profile!r}")
    checkout = Path(checkout)
    lock_path = checkout / "dvc.lock"
    for path in (lock_path, checkout / "params.yaml"):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: is {checkout} a checkout that ran profile {profile!r}?")
    ran = plan.profile_name(plan.read(checkout / "params.yaml"), checkout / "params.yaml")
    if ran != profile:
        raise ValueError(f"{checkout / 'params.yaml'} runs profile {ran!r}, not {profile!r}")
    lock = yaml.safe_load(lock_path.read_text()) or {}
    stages = profile_stages(lock, profile)
    prefix = ("results", profile)
    outs = [out for stage in stages.values() for out in stage.get("outs") or []
            if Path(out["path"]).parts[:2] == prefix and len(Path(out["path"]).parts) > 2]
    if not outs:
        raise ValueError(f"{lock_path} records no output of profile {profile!r} under results/{profile}/")
    target = Path(results_dir) / profile
    if target.resolve() == (checkout / "results" / profile).resolve():
        raise ValueError(f"{target} is the checkout's own folder: nothing to import")
    check_writable(target.parent)
    staging, previous = target.with_name(f".{profile}.importing"), target.with_name(f".{profile}.previous")
    if previous.exists() and not target.exists():  # an import interrupted between its renames
        previous.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for out in outs:
            source, dest = checkout / out["path"], staging / Path(*Path(out["path"]).parts[2:])
            dest.parent.mkdir(parents=True, exist_ok=True)
            if str(out.get("md5", "")).endswith(".dir") and source.is_dir():
                shutil.copytree(source, dest)
            elif not source.is_file():
                raise FileNotFoundError(f"{source} is recorded in {lock_path} but missing")
            elif _md5(source) != out.get("md5"):
                raise ValueError(f"{source} is not what {lock_path} records (its stage re-running?): "
                                 f"import after the stage is committed")
            else:
                shutil.copy2(source, dest)
        shutil.copy2(checkout / "params.yaml", staging / "params.yaml")  # the plan that checkout ran
        header = (f"# The entries of a second checkout's dvc.lock (git commit {_commit(checkout)}) that made\n"
                  f"# the files of this folder, profile {profile}, with the params.yaml it ran beside it:\n"
                  f"# `python -m ppdnn.budgets import`.\n")
        body = yaml.safe_dump({"schema": lock.get("schema", "2.0"), "stages": stages}, sort_keys=False)
        atomic_write(staging / "dvc.lock", lambda f: f.write((header + body).encode()))
        status = progress_markdown(staging, Path(results_dir) / "quick" / "runs"
                                   if profile != "quick" and (Path(results_dir) / "quick" / "runs").is_dir() else None)
        atomic_write(staging / "status.md", lambda f: f.write(status.encode()))
        if target.exists():
            target.rename(previous)  # the old folder stays whole until the new one is in place
        try:
            staging.rename(target)
        except BaseException:
            if previous.exists() and not target.exists():
                previous.rename(target)
            raise
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def progress_markdown(folder, against=None) -> str:
    """How far an imported profile's runs are, from its ``params.yaml`` (the plan its checkout
    ran) and its ``runs/*/metrics.json``; with the median wall time of a run of ``against``
    (another profile's runs folder) for scale."""
    folder = Path(folder)
    ran = plan.read(folder / "params.yaml")
    profile, runs, seeds = plan.profile_name(ran, folder / "params.yaml"), plan.runs(ran), plan.seeds(ran)
    done = {s: [r.name for r in runs if (folder / "runs" / f"{r.name}-s{s}" / "metrics.json").is_file()]
            for s in seeds}
    total, n_done = len(runs) * len(seeds), sum(map(len, done.values()))
    per_seed = ", ".join(f"seed {s}: {len(names)} of {len(runs)} runs" for s, names in done.items())
    found = paper_tables.collect_metrics(folder / "runs") if n_done else pd.DataFrame()
    state = "done" if n_done == total else "in progress"
    lines = [f"**Status: {state}, {n_done} of {total} runs done** (`results/{profile}/runs/`: {per_seed})."]
    median = float(pd.to_numeric(found["seconds"]).median()) if n_done else float("nan")
    if np.isfinite(median):  # runs without a recorded wall time say nothing of it
        device = ", ".join(sorted(found["device"].dropna().astype(str).unique())) or "device not recorded"
        scale = ""
        if against is not None:
            other = paper_tables.collect_metrics(against)
            scale = f", against {float(other['seconds'].median()):.0f} s for a run of {Path(against).parent.name}"
        lines.append(f"A {profile} run takes a median {median:.0f} s here (`wall_time_s`: training and its "
                     f"tests; {device}, two runs at a time){scale}, so the {total} runs need about "
                     f"{total * median / 2 / 3600:.1f} h of this machine.")
        spent = float(pd.to_numeric(found["seconds"]).sum())
        lines.append(f"The {n_done} runs done took {spent / 3600:.1f} h of run time in all (the sum of their "
                     f"`wall_time_s`), {spent / 2 / 3600:.1f} h of wall time two at a time.")
    return " ".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.budgets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="the claims of two budgets side by side")
    compare.add_argument("--params", default=plan.PARAMS, help="the runs to compare (its runs: list)")
    compare.add_argument("--results", default="results", help="holds <budget>/runs/ for each budget")
    compare.add_argument("--budgets", nargs=2, default=["quick", "long"], metavar="PROFILE")
    compare.add_argument("--out", default="results/budgets")
    bring = commands.add_parser("import", help="a profile's results from a second checkout that ran it")
    bring.add_argument("checkout", help="the other checkout's root")
    bring.add_argument("--profile", default="long")
    bring.add_argument("--results", default="results")
    args = parser.parse_args(argv)

    def body():
        if args.command == "import":
            target = import_profile(args.checkout, args.profile, args.results)
            runs = len(list(target.glob("runs/*/metrics.json")))
            print(f"{target}: {runs} runs of profile {args.profile} and their dvc.lock")
            return
        runs = [r.name for r in plan.runs(plan.read(args.params), args.params)]
        for path in write_study(args.results, args.budgets, runs, args.out).values():
            print(path)

    return run_main("ppdnn.budgets", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

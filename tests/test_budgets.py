"""The budget study (ppdnn.budgets) on synthetic runs whose answer is known."""
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ppdnn import budgets, claims, paper

RUNS = sorted(paper.PAPER)


def accs(seeds, spread, rng_seed, shift=None) -> dict[str, dict[int, float]]:
    """Every run at the paper's accuracy plus seed noise, as fractions; shift: {run: pp}."""
    rng = np.random.default_rng(rng_seed)
    shift = shift or {}
    return {run: {s: (acc + shift.get(run, 0.0)) / 100 + spread * rng.standard_normal() for s in seeds}
            for run, acc in paper.PAPER.items()}


def frame(values: dict[str, dict[int, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"run": r, "seed": s, "test_acc": a, "data_source": "archive", "device": "cpu"}
                         for r, by_seed in values.items() for s, a in by_seed.items()])


def epochs_of(values: dict[str, dict[int, float]], n_epochs=3) -> pd.DataFrame:
    """epochs.csv rows: test accuracy rising linearly to the final one (epoch 1 untested)."""
    return pd.DataFrame([{"config": r, "seed": s, "epoch": e,
                          "test_acc": np.nan if e == 1 else a * e / n_epochs}
                         for r, by_seed in values.items() for s, a in by_seed.items()
                         for e in range(1, n_epochs + 1)])


def rows_with(run: str) -> set[str]:
    return {r.id for c in claims.CLAIMS for r in c.rows if run in r.runs}


def test_a_real_change_is_flagged_and_only_where_the_run_is():
    quick = accs(range(5), 0.002, 0)
    long = accs(range(3), 0.002, 1, shift={"step2_client": -20.0})
    comparison, _, seeds = budgets.budget_study({"quick": frame(quick), "long": frame(long)},
                                                epochs_of(long), RUNS)
    assert seeds == [0, 1, 2]
    c = comparison.set_index("id")
    assert set(c.index[c["effect_changes"]]) == rows_with("step2_client")
    # the change is measured where it is, with the sign of each row's coefficient
    assert c.loc["10a", "change_pp"] == pytest.approx(-20.0, abs=1.0)
    assert c.loc["11", "change_pp"] == pytest.approx(-20.0, abs=1.0)
    assert c.loc["10a", "change_low"] < c.loc["10a", "change_pp"] < c.loc["10a", "change_high"]
    assert {"10a", "11"} <= set(c.loc[c["verdict_changes"], "claim_id"])
    assert c.loc["10a", "verdict_long"] == "contradicted" and c.loc["10a", "verdict_quick"] == "reproduced"
    headline = budgets.headline_markdown(comparison, seeds, ["quick", "long"])
    # 10a and 11 contain the shifted run; 2 is inconclusive on quick's three shared seeds alone
    assert "the claims whose verdict differs: 2, 10a, 11 (" in headline
    assert headline.endswith("needs its weakest row's paired t above the quantile at α/(2 × 15), "
                             "t > 6.3 with 5 seeds (quick), t > 17.3 with 3 seeds (long).\n")


def test_seeds_alone_change_nothing():
    """Long identical to quick on the seeds they share: no flag, though quick's five-seed
    headline differs from its three-seed verdict (the naive comparison would call that the budget)."""
    quick = accs(range(5), 0.012, 7)
    long = {run: {s: v[s] for s in range(3)} for run, v in quick.items()}
    comparison, by_epoch, seeds = budgets.budget_study({"quick": frame(quick), "long": frame(long)},
                                                       epochs_of(long), RUNS)
    naive = claims.compare_budgets({"quick": claims.claims_table(frame(quick)),
                                    "long": claims.claims_table(frame(long))})
    assert naive["verdict_changes"].any()  # the trap is real
    assert not comparison[["verdict_changes", "row_verdict_changes", "effect_changes"]].any().any()
    assert (comparison["change_pp"] == 0).all() and (comparison["p_change_holm"] == 1).all()
    changed = comparison["verdict_quick_all"] != comparison["verdict_quick"]
    assert changed.any() and (comparison["seeds_quick_all"] == "0,1,2,3,4").all()
    md = budgets.budgets_markdown(comparison, by_epoch, seeds, ["quick", "long"], "Budgets: x.")
    assert "**The effect itself changes from quick to long in 0 of 29 rows** (paired by seed, seeds 0, 1, 2" in md
    assert "On the shared seeds, 0 of 15 claims' family-wise verdicts differ between the budgets (none) and 0 rows'" in md
    assert "**effect" not in md and "verdict**" not in md
    assert "the claims whose verdict differs: none" in budgets.headline_markdown(comparison, seeds, ["quick", "long"])


def test_effects_by_epoch_are_the_mean_contrasts_of_tested_epochs():
    long = accs(range(3), 0.005, 3)
    table = budgets.effects_by_epoch(epochs_of(long), [0, 1, 2]).set_index("id")
    assert list(table.columns) == [2, 3]  # epoch 1 has no test accuracy
    by_seed = pd.DataFrame(long) * 100
    want = (by_seed["step2_client"] - by_seed["tanaka_client"]).mean()
    assert table.loc["10a", 3] == pytest.approx(want)
    assert table.loc["10a", 2] == pytest.approx(want * 2 / 3)
    missing = epochs_of(long)
    missing.loc[(missing["config"] == "plain") & (missing["seed"] == 2) & (missing["epoch"] == 3), "test_acc"] = np.nan
    assert list(budgets.effects_by_epoch(missing, [0, 1, 2]).columns) == ["id", 2]
    with pytest.raises(ValueError, match="eval_every_epoch"):
        budgets.effects_by_epoch(epochs_of(long).assign(test_acc=np.nan), [0, 1, 2])


def test_too_few_shared_seeds_and_bad_budgets_are_refused():
    quick, long = frame(accs(range(5), 0.002, 0)), frame(accs([1, 7], 0.002, 1))
    with pytest.raises(ValueError, match=r"share 1 seed\(s\) with all 11 runs \(seeds with every run: "
                                         r"quick: \[0, 1, 2, 3, 4\]; long: \[1, 7\]\)"):
        budgets.budget_study({"quick": quick, "long": long}, pd.DataFrame(), RUNS)
    partial = quick[~((quick["run"] == "plain") & (quick["seed"] == 1))]  # seed 1 lacks a run
    assert budgets.common_seeds({"quick": partial, "long": frame(accs(range(3), 0.002, 1))}, RUNS) == [0, 2]
    with pytest.raises(ValueError, match="exactly two"):
        budgets.budget_study({"quick": quick}, pd.DataFrame(), RUNS)
    with pytest.raises(ValueError, match="two different profiles"):
        budgets.write_study("results", ["quick", "quick"], RUNS, "out")


def write_runs(root, values, epochs, profile):
    for run, by_seed in values.items():
        for seed, acc in by_seed.items():
            folder = root / profile / "runs" / f"{run}-s{seed}"
            folder.mkdir(parents=True)
            (folder / "metrics.json").write_text(json.dumps({"test_acc": acc}))
            (folder / "run.json").write_text(json.dumps({"profile": profile, "data_source": "archive",
                                                         "device": "cpu (AVX2, 1 threads)"}))
            epochs[(epochs["config"] == run) & (epochs["seed"] == seed)].drop(columns=["config", "seed"]) \
                .to_csv(folder / "epochs.csv", index=False)


def test_the_command_writes_the_study_and_refuses_a_missing_budget(tmp_path, capsys):
    quick, long = accs(range(4), 0.003, 0), accs(range(3), 0.003, 1)
    write_runs(tmp_path, quick, epochs_of(quick, 2), "quick")
    write_runs(tmp_path, long, epochs_of(long, 6), "long")
    (tmp_path / "params.yaml").write_text("ciphers:\n  plain:\n    scheme: plain\nruns:\n" + "".join(
        f"- {{name: {r}, cipher: plain, adaptation: none, augment: cloud}}\n" for r in RUNS))
    out = tmp_path / "budgets"
    assert budgets.main(["compare", "--params", str(tmp_path / "params.yaml"), "--results", str(tmp_path),
                         "--out", str(out)]) == 0
    comparison = pd.read_csv(out / "comparison.csv")
    assert len(comparison) == 29 and set(pd.read_csv(out / "epochs.csv").columns) == {"id", *map(str, range(2, 7))}
    md = (out / "budgets.md").read_text()
    assert "(paired by seed, seeds 0, 1, 2," in md and "quick: data archive, cpu (AVX2, 1 threads), seeds [0, 1, 2, 3]" in md
    headline = (out / "headline.md").read_text()
    assert headline.startswith("**Both budgets, family-wise headline over 15 claims**: quick (seeds 0,1,2,3): ")
    assert "; long (seeds 0,1,2): " in headline and "On the seeds both have (0, 1, 2): quick " in headline
    counts = re.findall(r"(\d+) reproduced, (\d+) contradicted, (\d+) inconclusive", headline)
    assert len(counts) == 4 and all(sum(map(int, c)) == 15 for c in counts)  # each budget, all and shared seeds
    assert budgets.main(["compare", "--params", str(tmp_path / "params.yaml"), "--results", str(tmp_path),
                         "--budgets", "quick", "paper", "--out", str(tmp_path / "other")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "paper" in err[0] and not (tmp_path / "other").exists()


# ---------------------------------------------------------------- the committed long runs
ROOT = Path(__file__).resolve().parents[1]


def lock_stages(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["stages"]


def test_the_committed_long_runs_are_the_recorded_ones_made_by_the_quick_runs_code():
    """results/long/dvc.lock is the long study's lock (a second checkout ran it, README
    "Claims"): every committed run file is the one it records, made from the same code and
    data sets as the quick profile's run of that name, tested after every epoch."""
    long_lock, quick_lock = lock_stages(ROOT / "results/long/dvc.lock"), lock_stages(ROOT / "dvc.lock")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())  # the long profile as this checkout defines it
    ran = yaml.safe_load((ROOT / "results/long/params.yaml").read_text())  # what the second checkout ran
    assert ran["profile"] == "long" and len(ran["seeds"]) >= 3
    assert {k: ran[k] for k in ("profiles", "runs", "ciphers", "key_seed", "data")} == \
        {k: params[k] for k in ("profiles", "runs", "ciphers", "key_seed", "data")}
    trained = {n: s for n, s in long_lock.items() if n.startswith("train@")}
    assert trained and all("--profile long" in s["cmd"] for s in trained.values())
    folders = {p.name for p in (ROOT / "results/long/runs").glob("*-s*") if (p / "metrics.json").is_file()}
    assert folders == {s["cmd"].split("--metrics results/long/runs/")[1].strip() for s in trained.values()}
    for name, stage in trained.items():
        for out in stage["outs"]:
            if out["path"].startswith("results/"):
                assert hashlib.md5((ROOT / out["path"]).read_bytes()).hexdigest() == out["md5"], out["path"]
        assert stage["params"]["params.yaml"]["profiles.long.train"] == params["profiles"]["long"]["train"], name
        assert {d["path"]: d["md5"] for d in stage["deps"]} == \
            {d["path"]: d["md5"] for d in quick_lock[name]["deps"]}, f"{name}: other code or data than quick's"
        epochs = pd.read_csv(ROOT / "results/long/runs" / stage["cmd"].split("results/long/runs/")[1].strip()
                             / "epochs.csv")
        assert list(epochs["epoch"]) == [1, 2, 3, 4, 5, 6] and epochs["test_acc"].notna().all()


def fake_checkout(root: Path) -> Path:
    run = root / "results/long/runs/plain-s0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"test_acc": 0.5}')
    (root / "results/long/runs/plain-s1").mkdir()  # still training: not in the lock, not imported
    (root / "results/long/runs/plain-s1/epochs.csv").write_text("epoch\n1\n")
    (root / "results/long/table2.md").write_text("| t |\n")
    (root / "results/long/notes.txt").write_text("not an output\n")
    md5 = {p: hashlib.md5((root / p).read_bytes()).hexdigest()
           for p in ("results/long/runs/plain-s0/metrics.json", "results/long/table2.md")}
    stages = {"data": {"cmd": "python -m ppdnn.stages.data --out data/cifar10",
                       "outs": [{"path": "data/cifar10", "md5": "x.dir"}]},
              "train@run0-0": {"cmd": "python -m ppdnn.stages.train --profile long --seed 0 --run plain "
                                      "--metrics results/long/runs/plain-s0",
                               "outs": [{"path": "build/long/runs/plain-s0", "md5": "y.dir"},
                                        {"path": "results/long/runs/plain-s0/metrics.json",
                                         "md5": md5["results/long/runs/plain-s0/metrics.json"]}]},
              "train@run0-3": {"cmd": "python -m ppdnn.stages.train --profile quick --seed 3 --run plain",
                               "outs": [{"path": "results/quick/runs/plain-s3/metrics.json", "md5": "z"}]},
              "tables": {"cmd": "python -m ppdnn.stages.tables --runs-dir results/long/runs --out results/long",
                         "outs": [{"path": "results/long/table2.md", "md5": md5["results/long/table2.md"]}]}}
    (root / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))
    (root / "params.yaml").write_text(FAKE_PARAMS)
    return root


FAKE_PARAMS = """profile: long
seeds: [0, 1]
profiles:
  long: {security_images: 10, train: {recipe: cpu, epochs: 6}}
ciphers:
  plain: {scheme: plain}
runs:
- {name: plain, cipher: plain, adaptation: none, augment: cloud}
"""


def test_import_brings_the_profile_with_its_own_lock_entries_only(tmp_path, capsys):
    checkout, results = fake_checkout(tmp_path / "other"), tmp_path / "here" / "results"
    (results / "long" / "stale").mkdir(parents=True)  # a previous import is replaced whole
    assert budgets.main(["import", str(checkout), "--results", str(results)]) == 0
    assert "1 runs of profile long" in capsys.readouterr().out
    assert (results / "long/runs/plain-s0/metrics.json").read_text() == '{"test_acc": 0.5}'
    assert [p.name for p in (results / "long/runs").iterdir()] == ["plain-s0"]
    assert sorted(p.name for p in (results / "long").iterdir()) == ["dvc.lock", "params.yaml", "runs",
                                                                     "status.md", "table2.md"]
    assert (results / "long/status.md").read_text() == \
        "**Status: in progress, 1 of 2 runs done** (`results/long/runs/`: seed 0: 1 of 1 runs, seed 1: 0 of 1 runs).\n"
    assert not (results / "long/stale").exists() and sorted(p.name for p in results.iterdir()) == ["long"]
    assert set(lock_stages(results / "long/dvc.lock")) == {"train@run0-0", "tables"}


@pytest.mark.parametrize("breaks, says", [
    (lambda c: (c / "dvc.lock").unlink(), "dvc.lock does not exist"),
    (lambda c: (c / "params.yaml").write_text(FAKE_PARAMS.replace("profile: long", "profile: quick")
                                               .replace("  long:", "  quick:")), "runs profile 'quick', not 'long'"),
    (lambda c: (c / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n"), "records no output of profile 'long'"),
    (lambda c: (c / "results/long/runs/plain-s0/metrics.json").write_text('{"test_acc": 0.6}'),
     "metrics.json is not what"),  # a run re-training after it was recorded
    (lambda c: (c / "results/long/table2.md").unlink(), "table2.md is recorded in"),
])
def test_a_bad_import_is_one_line_and_leaves_the_previous_results(tmp_path, capsys, breaks, says):
    checkout, results = fake_checkout(tmp_path / "other"), tmp_path / "here" / "results"
    (results / "long").mkdir(parents=True)
    (results / "long" / "kept").write_text("x")
    breaks(checkout)
    assert budgets.main(["import", str(checkout), "--results", str(results)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert sorted(p.name for p in (results / "long").iterdir()) == ["kept"] and len(list(results.iterdir())) == 1


def test_an_import_that_fails_at_the_swap_keeps_the_previous_results(tmp_path, monkeypatch):
    checkout, results = fake_checkout(tmp_path / "other"), tmp_path / "here" / "results"
    (results / "long").mkdir(parents=True)
    (results / "long" / "kept").write_text("x")
    real_rename = Path.rename

    def failing(self, target):
        if self.name == ".long.importing":
            raise OSError("disk gone")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError, match="disk gone"):
        budgets.import_profile(checkout, "long", results)
    assert sorted(p.name for p in results.iterdir()) == ["long"]
    assert (results / "long" / "kept").read_text() == "x"
    # an import killed between its two renames is repaired by the next one
    monkeypatch.setattr(Path, "rename", real_rename)
    (results / "long").rename(results / ".long.previous")
    budgets.import_profile(checkout, "long", results)
    assert sorted(p.name for p in results.iterdir()) == ["long"] and (results / "long/dvc.lock").is_file()


def by_seed(values: dict[str, list[float]]) -> pd.DataFrame:
    """An accuracy_by_seed frame (pp): every claim run at 50 unless given."""
    n = len(next(iter(values.values())))
    return pd.DataFrame({run: values.get(run, [50.0] * n) for run in RUNS}, index=range(n))


def test_significant_alone_is_not_enough_and_a_constant_shift_is_certain():
    before = by_seed({"plain": [50.0] * 4})
    after = by_seed({"step2_client": [51.0, 52.0, 53.0, 54.0]})  # t = 3.87, df 3: p = 0.03 alone
    changes = budgets.effect_changes(before, after).set_index("id")
    touched = sorted(rows_with("step2_client"))
    assert (changes.loc[touched, "p_change"] < 0.05).all()  # the unadjusted rule would flag them
    assert not changes["effect_changes"].any()  # Holm over 29 rows does not
    assert changes.loc[touched, "mde_change_pp"].gt(2.5).all()  # and says why: too few seeds
    shifted = budgets.effect_changes(before, by_seed({"step2_client": [53.0] * 4})).set_index("id")
    assert set(shifted.index[shifted["effect_changes"]]) == rows_with("step2_client")
    assert (shifted.loc[touched, "p_change"] == 0).all() and shifted.loc["1a", "p_change"] == 1


def test_a_missing_accuracy_is_refused_not_flagged():
    before = by_seed({"plain": [50.0, np.nan, 50.0]})
    with pytest.raises(ValueError, match="row 1a: an accuracy is missing"):
        budgets.effect_changes(before, by_seed({"plain": [50.0] * 3}))


def test_a_run_absent_at_an_epoch_drops_that_epoch_and_the_plan_must_hold_the_claims_runs():
    long = accs(range(3), 0.005, 3)
    epochs = epochs_of(long)
    epochs = epochs[~((epochs["config"] == "plain") & (epochs["epoch"] == 2))]  # no row at all
    assert list(budgets.effects_by_epoch(epochs, [0, 1, 2]).columns) == ["id", 3]
    quick = frame(accs(range(3), 0.002, 0))
    with pytest.raises(ValueError, match=r"the claims need the runs \['plain'\]"):
        budgets.budget_study({"quick": quick, "long": quick}, epochs, [r for r in RUNS if r != "plain"])


def test_the_status_counts_runs_per_seed_and_scales_the_time(tmp_path):
    folder = tmp_path / "long"
    for name, seconds in (("plain-s0", 900.0), ("plain-s1", 1100.0)):
        (folder / "runs" / name).mkdir(parents=True)
        (folder / "runs" / name / "metrics.json").write_text(json.dumps({"test_acc": 0.5, "wall_time_s": seconds}))
    (tmp_path / "quick" / "runs" / "plain-s0").mkdir(parents=True)
    (tmp_path / "quick" / "runs" / "plain-s0" / "metrics.json").write_text('{"test_acc": 0.5, "wall_time_s": 250}')
    (folder / "params.yaml").write_text(FAKE_PARAMS)
    text = budgets.progress_markdown(folder, tmp_path / "quick" / "runs")
    assert text.startswith("**Status: done, 2 of 2 runs done** (`results/long/runs/`: seed 0: 1 of 1 runs, "
                           "seed 1: 1 of 1 runs). A long run takes a median 1000 s here")
    assert "against 250 s for a run of quick, so the 2 runs need about 0.3 h of this machine." in text
    assert text.endswith("The 2 runs done took 0.6 h of run time in all (the sum of their `wall_time_s`), "
                         "0.3 h of wall time two at a time.\n")


def test_a_detectable_change_beyond_what_accuracy_allows_is_not_printed_as_a_number():
    assert [budgets._mde(x) for x in (2.345, 100.0, 343.07, float("nan"))] == ["2.35", "100.00", "> 100", "—"]


def test_the_long_tables_and_claims_are_what_the_tables_stage_makes_of_the_committed_runs(tmp_path):
    """results/long/claims.* and Tables 2-3 (made in the second checkout by its tables stage,
    recorded in results/long/dvc.lock) are what the same stage makes of the committed runs."""
    from ppdnn.stages import tables

    ran = yaml.safe_load((ROOT / "results/long/params.yaml").read_text())
    runs = [r["name"] for r in ran["runs"]]
    tables.tables(ROOT / "results/long/runs", tmp_path, runs, ran["seeds"], "long")
    for name in ("table2.csv", "table2.md", "table3.csv", "table3.md", "claims.csv", "claims.md"):
        assert (tmp_path / name).read_bytes() == (ROOT / "results/long" / name).read_bytes(), name
    table = pd.read_csv(ROOT / "results/long/claims.csv", dtype={"seeds": str})
    assert (table["seeds"] == ",".join(map(str, ran["seeds"]))).all()  # every row on all three seeds
    assert {"verdict", "p_holm", "row_verdict", "mde_pp"} <= set(table.columns)  # family-wise beside per-row

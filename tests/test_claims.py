import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ppdnn import claims
from ppdnn.tables import TABLE2_ROWS, TABLE3_ROWS


def metrics(accs: dict[str, list[float]]) -> pd.DataFrame:
    """A frame shaped like tables.collect_metrics: one row per (run, seed)."""
    return pd.DataFrame([{"run": run, "seed": seed, "test_acc": acc, "profile": "test", "data_source": "synthetic",
                          "device": "cpu", "seconds": 1.0, "images_per_s": 100.0}
                         for run, values in accs.items() for seed, acc in enumerate(values)])


def row(table, claim_id) -> dict:
    return table.set_index("id").loc[claim_id].to_dict()


def paper_like(seeds=3, spread=0.3, seed=0) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    return {run: list(acc + spread * rng.standard_normal(seeds)) for run, acc in claims.PAPER.items()}


def test_paper_effects_are_differences_of_the_paper_numbers():
    t2 = {run: acc for _, run, acc in TABLE2_ROWS}
    t3 = {client: acc for _, client, acc, _, _ in TABLE3_ROWS}
    by_id = {c.id: c for c in claims.CLAIMS}
    assert by_id["11"].paper_pp == pytest.approx(92.94 - 90.65) == pytest.approx(2.29)
    assert by_id["11"].paper_pp == pytest.approx(t3["step2_client"] - t3["step2_adapt_client"])
    assert by_id["2"].paper_pp == pytest.approx(t2["step2_adapt_cloud"] - t2["step2_cloud"])
    assert by_id["9a"].paper_pp == pytest.approx((t3["tanaka_client"] - t2["tanaka_cloud"])
                                                 - (t3["step2_client"] - t2["step2_cloud"]))
    for c in claims.CLAIMS:  # every claim is stated as a positive effect in the paper
        assert c.paper_pp == pytest.approx(sum(k * claims.PAPER[r] for k, r in c.terms), abs=0.005)
        assert c.paper_pp > 0, c.id
    assert len(claims.PAPER) == 11
    assert {c.id for c in claims.CLAIMS} >= {"1a", "2", "3", "4", "5a", "6a", "7a", "8a", "8b", "9a", "9b",
                                             "10a", "10b", "11"}


def test_welch_interval_matches_hand_computation():
    table = claims.claims_table(metrics({"step2_adapt_cloud": [60, 61, 62], "step2_cloud": [50, 52, 54]}))
    r = row(table, "2")
    var = 1 / 3 + 4 / 3  # s² / n: 1/3 and 4/3
    df = var ** 2 / ((1 / 3) ** 2 / 2 + (4 / 3) ** 2 / 2)  # = 50/17
    assert df == pytest.approx(50 / 17)
    half = stats.t.ppf(0.975, df) * math.sqrt(var)
    assert r["ours_pp"] == 9.0
    assert r["ci_low"] == pytest.approx(round(9 - half, 2))
    assert r["ci_high"] == pytest.approx(round(9 + half, 2))
    assert r["seeds"] == 3 and r["comparison"] == "step2_adapt_cloud − step2_cloud"
    assert r["verdict"] == "reproduced"
    assert r["paper_in_ci"] == "no"  # 1.84 pp is below our interval: direction agrees, magnitude does not


def test_contradicted_and_inconclusive():
    table = claims.claims_table(metrics({"step2_adapt_cloud": [50, 51, 52], "step2_cloud": [60, 61, 62],
                                         "step23_adapt_cloud": [60, 62, 64], "step23_cloud": [61, 63, 59]}))
    assert row(table, "2")["verdict"] == "contradicted"
    r = row(table, "3")
    assert r["ci_low"] < 0 < r["ci_high"] and r["verdict"] == "inconclusive"
    assert r["paper_in_ci"] == "yes"  # 3.65 pp lies inside a wide interval around 1


def test_verdict_follows_the_sign_of_the_paper_effect():
    assert claims.verdict(-1.0, -3.0, -2.0) == "reproduced"
    assert claims.verdict(-1.0, 2.0, 3.0) == "contradicted"
    assert claims.verdict(2.0, 0.0, 3.0) == "inconclusive"  # touching 0 does not exclude it
    assert claims.verdict(2.0, math.nan, math.nan) == "inconclusive (1 seed)"


def test_one_seed_gives_no_interval():
    table = claims.claims_table(metrics({"step2_client": [92.0], "step2_adapt_client": [90.0, 91.0, 89.0]}))
    r = row(table, "11")
    assert r["ours_pp"] == 2.0 and r["seeds"] == 1
    assert math.isnan(r["ci_low"]) and math.isnan(r["ci_high"])
    assert r["verdict"] == "inconclusive (1 seed)" and r["paper_in_ci"] == "n/a"


def test_missing_run_is_not_run():
    table = claims.claims_table(metrics({"step2_adapt_cloud": [60, 61, 62], "step2_cloud": [50, 52, 54]}))
    r = row(table, "3")
    assert r["verdict"] == "not run" and r["seeds"] == 0 and math.isnan(r["ours_pp"])
    assert list(table.columns) == claims.COLUMNS and len(table) == len(claims.CLAIMS)


def test_difference_of_differences_and_zero_variance():
    table = claims.claims_table(metrics({"tanaka_client": [85, 85, 85], "tanaka_cloud": [55, 55, 55],
                                         "step2_client": [92, 92, 92], "step2_cloud": [86, 86, 86],
                                         "step2_adapt_client": [90, 90], "step2_adapt_cloud": [84, 84]}))
    r = row(table, "9a")
    assert r["comparison"] == "(tanaka_client − tanaka_cloud) − (step2_client − step2_cloud)"
    assert r["ours_pp"] == (85 - 55) - (92 - 86) == 24
    assert r["ci_low"] == r["ci_high"] == 24 and r["verdict"] == "reproduced"
    assert row(table, "9b")["seeds"] == 2
    # identical accuracies, no difference: an interval [0, 0] does not exclude 0
    flat = claims.claims_table(metrics({"step2_client": [90, 90], "step2_adapt_client": [90, 90]}))
    assert row(flat, "11")["ci_low"] == row(flat, "11")["ci_high"] == 0
    assert row(flat, "11")["verdict"] == "inconclusive"


def test_diff_of_diffs_uses_four_run_welch():
    accs = {"tanaka_client": [84, 86, 85], "tanaka_cloud": [50, 60, 55],
            "step2_client": [92, 93, 91], "step2_cloud": [85, 86, 87]}
    r = row(claims.claims_table(metrics(accs)), "9a")
    parts = [np.var(v, ddof=1) / 3 for v in accs.values()]  # all coefficients are ±1
    var = sum(parts)
    df = var ** 2 / sum(p ** 2 / 2 for p in parts)
    half = stats.t.ppf(0.975, df) * math.sqrt(var)
    assert r["ours_pp"] == 24.0
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((round(24 - half, 2), round(24 + half, 2)))


def test_paper_like_results_reproduce_every_claim(tmp_path):
    table = claims.claims_table(metrics(paper_like()))
    assert (table["verdict"] == "reproduced").all(), table[["id", "verdict"]]
    md = claims.claims_markdown(table, "Profile: test; seeds: [0, 1, 2].")
    assert md.startswith("| # | Claim | Comparison |")
    assert "Welch" in md and "Welch–Satterthwaite" in md and "contradicted if" in md
    assert md.rstrip().endswith("Profile: test; seeds: [0, 1, 2].")
    assert "| +2.29 |" in md  # claim 11's paper effect
    claims.write_claims(tmp_path, table, md)
    back = pd.read_csv(tmp_path / "claims.csv", dtype={"id": str})
    assert list(back["id"]) == list(table["id"]) and list(back.columns) == claims.COLUMNS
    assert (tmp_path / "claims.md").read_text() == md

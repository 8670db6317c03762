"""The claims procedure on synthetic data whose answer is known."""
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ppdnn import claims, paper

PAPER_MD = Path("/work/shared/paper/paper.md")
RUNS = sorted(paper.PAPER)


def metrics(accs: dict[str, list[float]], seeds=None) -> pd.DataFrame:
    """One row per (run, seed), test_acc in [0, 1], as claims_table takes it."""
    return pd.DataFrame([{"run": run, "seed": (seeds or range(len(v)))[i], "test_acc": a}
                         for run, v in accs.items() for i, a in enumerate(v)])


def row(table, row_id) -> dict:
    return table.set_index("id").loc[row_id].to_dict()


def paper_like(seeds=5, spread=0.003, seed=0) -> dict[str, list[float]]:
    """Every run at the paper's accuracy plus seed noise: every claim holds."""
    rng = np.random.default_rng(seed)
    return {run: list(acc / 100 + spread * rng.standard_normal(seeds)) for run, acc in paper.PAPER.items()}


def contrast_matrix() -> tuple[np.ndarray, list[str], list[str]]:
    """Rows of every claim as coefficients over RUNS, with their row and claim ids."""
    rows = [(c.id, r) for c in claims.CLAIMS for r in c.rows]
    matrix = np.zeros((len(rows), len(RUNS)))
    for i, (_, r) in enumerate(rows):
        for coef, run in r.terms:
            matrix[i, RUNS.index(run)] += coef
    return matrix, [r.id for _, r in rows], [cid for cid, _ in rows]


# ---------------------------------------------------------------- the claims themselves
def test_claims_are_the_papers_numbers_and_words():
    by_id = {r.id: r for c in claims.CLAIMS for r in c.rows}
    assert by_id["11"].paper_pp == pytest.approx(92.94 - 90.65)
    assert by_id["9a"].paper_pp == pytest.approx((85.84 - 56.41) - (92.94 - 85.15))
    kinds = {c.id: c.kind for c in claims.CLAIMS}
    assert {i for i, k in kinds.items() if k == "table"} == {"4", "8a", "8b", "11", "12"}
    assert len(paper.PAPER) == 11 and paper.PAPER["step2_cloud"] == 85.15
    for c in claims.CLAIMS:
        for r in c.rows:
            assert r.paper_pp == pytest.approx(sum(k * paper.PAPER[run] for k, run in r.terms), abs=0.005)
        if c.kind == "table":
            assert c.source.startswith("Table") and all(f"{paper.PAPER[r.runs[0]]:.2f}" in c.quote for r in c.rows)
    with pytest.raises(ValueError, match="paper effect"):  # a claim must point the paper's way
        claims.Claim("x", "text", "s", "Sec. 1", "q", (claims.diff("x", "tanaka_cloud", "plain"),))
    with pytest.raises(ValueError, match="kind"):
        claims.Claim("x", "prose", "s", "Sec. 1", "q", (claims.diff("x", "plain", "tanaka_cloud"),))


@pytest.mark.skipif(not PAPER_MD.exists(), reason="the paper's text is not on this machine")
def test_text_claims_quote_the_paper_verbatim_in_the_section_named():
    text = PAPER_MD.read_text()
    sections = {"Sec. 4.2 A": "### A. Data Augmentation in Cloud Server", "Sec. 4.2 B": "### B. Data Augmentation",
                "Sec. 5": "## 5. CONCLUSION"}
    for c in (c for c in claims.CLAIMS if c.kind == "text"):
        start = text.index(sections[c.source])
        assert c.quote in text[start:start + 2500], c.id


# ---------------------------------------------------------------- one row: paired and Welch
def test_paired_row_is_scipy_ttest_rel_and_welch_is_ttest_ind():
    adapt, plain = [0.60, 0.61, 0.63, 0.58, 0.62], [0.50, 0.52, 0.55, 0.49, 0.51]
    r = row(claims.claims_table(metrics({"step2_adapt_cloud": adapt, "step2_cloud": plain})), "2")
    a, b = 100 * np.array(adapt), 100 * np.array(plain)
    rel = stats.ttest_rel(a, b, alternative="greater")
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert r["p_row"] == pytest.approx(rel.pvalue, rel=1e-3)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((round(ci.low, 2), round(ci.high, 2)))
    assert r["ours_pp"] == pytest.approx(round((a - b).mean(), 2))
    assert r["sd_pp"] == pytest.approx(round((a - b).std(ddof=1), 2))
    welch = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert r["p_welch_row"] == pytest.approx(welch.pvalue, rel=1e-3)
    assert r["seeds"] == "0,1,2,3,4" and r["n_seeds"] == 5 and r["kind"] == "text"


def test_four_run_contrast_pairs_by_seed_and_welch_sums_variances():
    accs = {"tanaka_client": [.84, .86, .85, .83], "tanaka_cloud": [.50, .60, .55, .52],
            "step2_client": [.92, .93, .91, .90], "step2_cloud": [.85, .86, .87, .84]}
    r = row(claims.claims_table(metrics(accs)), "9a")
    x = {k: 100 * np.array(v) for k, v in accs.items()}
    d = x["tanaka_client"] - x["tanaka_cloud"] - x["step2_client"] + x["step2_cloud"]
    assert r["p_row"] == pytest.approx(stats.ttest_1samp(d, 0, alternative="greater").pvalue, rel=1e-3)
    parts = [v.var(ddof=1) / 4 for v in x.values()]
    df = sum(parts) ** 2 / sum(p * p / 3 for p in parts)
    welch = stats.t.sf(d.mean() / math.sqrt(sum(parts)), df)
    assert r["p_welch_row"] == pytest.approx(welch, rel=1e-3)


def test_pairing_by_seed_removes_a_shared_seed_effect_that_welch_cannot():
    # the seed moves every run alike (shared batch order and draws): the paired contrast is
    # a steady +1 pp, Welch sees the ±5 pp seed swing as noise
    seed_effect = np.array([-0.05, 0.03, 0.0, 0.05, -0.02])
    noise = np.array([0.001, -0.002, 0.0015, -0.001, 0.0005])
    accs = {"step23_adapt_cloud": list(0.61 + seed_effect + noise), "step23_cloud": list(0.60 + seed_effect)}
    table = claims.claims_table(metrics(accs))
    r = row(table, "3")
    assert r["row_verdict"] == r["verdict"] == "reproduced"
    assert r["row_verdict_welch"] == r["verdict_welch"] == "inconclusive"
    assert r["welch_changes"] == "row and claim"
    assert "3 (row: inconclusive; claim: inconclusive)" in claims.claims_summary_markdown(table)
    assert row(table, "2")["verdict"] == "not run" and row(table, "2")["welch_changes"] == "none"


# ---------------------------------------------------------------- claims of several rows
def test_intersection_union_needs_every_row():
    rng = np.random.default_rng(1)
    plain = 0.90 + 0.002 * rng.standard_normal(5)
    strong = {run: list(0.80 + 0.002 * rng.standard_normal(5)) for run in claims._PROPOSED}
    weak = dict(strong, step2_cloud=list(plain + 0.002 * rng.standard_normal(5)))  # 1a: no effect
    holds = claims.claims_table(metrics({"plain": list(plain), **strong}))
    fails = claims.claims_table(metrics({"plain": list(plain), **weak}))
    assert set(holds.loc[holds["claim_id"] == "1", "verdict"]) == {"reproduced"}
    rows = fails[fails["claim_id"] == "1"]
    assert list(rows["row_verdict"].iloc[1:]) == ["reproduced"] * 3 and rows["row_verdict"].iloc[0] != "reproduced"
    assert set(rows["verdict"]) == {"inconclusive"}  # three rows of four do not make the claim
    assert (rows["p_claim"] == rows["p_row"].max()).all()
    assert "deciding row 1a" in claims.claims_summary_markdown(fails)


def test_a_claim_is_contradicted_when_one_row_goes_the_other_way():
    above, below = np.array([1e-6, 1 - 1e-6, 1e-6]), np.array([1 - 1e-6, 1e-6, 1 - 1e-6])
    ids, holds, fails = claims.claim_pvalues(above, below, ["1", "1", "2"])
    assert ids == ["1", "2"] and holds[0] == 1 - 1e-6 and fails[0] == pytest.approx(2e-6)
    _, _, _, decision = claims.familywise(above, below, ["1", "1", "2"])
    assert list(decision) == [-1, 1]


def test_holm_adjusted_p_values():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.04 -> running max
    assert claims.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    batch = np.stack([p, p[::-1]])
    assert claims.holm(batch)[1] == pytest.approx(claims.holm(p[::-1]))
    assert claims.holm(np.array([0.3, 0.2])) == pytest.approx([0.4, 0.4])  # never below an earlier step
    assert claims.holm(np.array([0.9, 0.8])) == pytest.approx([1.0, 1.0])


# ---------------------------------------------------------------- family-wise error
def test_the_unadjusted_rule_errs_where_the_familywise_rule_does_not():
    # fifteen claims, one of them with p = 0.01 by chance: alone it is "reproduced",
    # among 2 x 15 hypotheses Holm needs p <= 0.05 / 30
    above = np.full(15, 0.5)
    above[3] = 0.01
    ids, holds_adj, _, decision = claims.familywise(above, 1 - above, [str(i) for i in range(15)])
    assert claims.row_decision(above, 1 - above)[3] == 1
    assert decision[3] == 0 and holds_adj[3] == pytest.approx(0.3)


@pytest.mark.parametrize("seed_sd", [0.0, 3.0])  # with and without a seed effect shared by all runs
def test_familywise_error_rate_stays_below_alpha_when_every_claim_is_null(seed_sd):
    # 4000 experiments, 11 runs x 5 seeds, every run with the same mean: every claim is null,
    # so any reproduced or contradicted verdict is an error
    rng = np.random.default_rng(7)
    sims, seeds = 4000, 5
    accuracy = (rng.standard_normal((sims, len(RUNS), seeds))
                + seed_sd * rng.standard_normal((sims, 1, seeds)))
    matrix, _, claim_of_row = contrast_matrix()
    d = np.einsum("rk,skn->srn", matrix, accuracy)
    above, below = claims.paired_pvalues(d)
    _, _, _, decision = claims.familywise(above, below, claim_of_row)
    familywise_rate = (decision != 0).any(axis=-1).mean()
    unadjusted_rate = (claims.row_decision(above, below) != 0).any(axis=-1).mean()
    assert familywise_rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)
    assert unadjusted_rate > 0.4  # 29 rows at 5% each: most experiments have a false verdict


def test_familywise_rule_still_finds_large_effects():
    rng = np.random.default_rng(3)
    sims = 2000
    d = 6.0 + rng.standard_normal((sims, 15, 5))  # every claim true, 6 seed-sd strong
    above, below = claims.paired_pvalues(d)
    _, _, _, decision = claims.familywise(above, below, [str(i) for i in range(15)])
    assert (decision == 1).mean() > 0.95 and (decision == -1).sum() == 0


def test_detectable_effect_has_the_stated_power():
    rng = np.random.default_rng(5)
    sd, n, level = 2.0, 5, 0.05 / 30
    mde = claims.detectable_effect(sd, n, level)
    d = mde + sd * rng.standard_normal((20000, n))
    power = (stats.ttest_1samp(d, 0, axis=-1, alternative="greater").pvalue <= level).mean()
    assert power == pytest.approx(0.8, abs=0.015)
    assert claims.detectable_effect(sd, 10, level) < mde
    assert claims.detectable_effect(0.0, 5, level) == 0 and math.isnan(claims.detectable_effect(sd, 1, level))


# ---------------------------------------------------------------- the table end to end
def test_paper_like_results_reproduce_every_claim(tmp_path):
    table = claims.claims_table(metrics(paper_like()))
    assert list(table.columns) == claims.COLUMNS and len(table) == sum(len(c.rows) for c in claims.CLAIMS)
    assert (table["verdict"] == "reproduced").all(), table[["id", "verdict"]]
    assert set(table["vs_paper"]) == {"not distinguished"}
    assert (table["mde_pp"] > 0).all() and (table["welch_changes"] == "none").all()
    md = claims.claims_markdown(table, "Profile: test; seeds: [0, 1, 2, 3, 4].")
    assert md.startswith("**Headline, family-wise**") and md.rstrip().endswith("seeds: [0, 1, 2, 3, 4].")
    assert "15 reproduced" in md and "| 11 " in md and " +2.29 |" in md
    claims.write_claims(tmp_path, table, md)
    back = pd.read_csv(tmp_path / "claims.csv", dtype={"id": str, "claim_id": str, "seeds": str})
    assert list(back.columns) == claims.COLUMNS and (tmp_path / "claims.md").read_text() == md
    assert claims.claims_summary_markdown(back) == claims.claims_summary_markdown(table)


def test_our_effect_far_from_the_papers_is_flagged_with_its_side():
    accs = paper_like()
    accs["tanaka_cloud"] = [a + 0.15 for a in accs["tanaka_cloud"]]  # 15 pp closer to the proposed
    accs["plain"] = [a + 0.05 for a in accs["plain"]]  # 5 pp further above everything
    table = claims.claims_table(metrics(accs))
    assert row(table, "5a")["vs_paper"] == "below the paper's" and row(table, "5a")["verdict"] == "reproduced"
    assert row(table, "1a")["vs_paper"] == "above the paper's" and row(table, "3")["vs_paper"] == "not distinguished"


def test_summary_states_every_claims_verdict_as_in_the_table():
    accs = paper_like(seed=2)
    accs["tanaka_client"] = [a + 0.10 for a in accs["tanaka_client"]]  # Tanaka wins in the client
    accs["step2_adapt_cloud"] = [0.80, 0.88, 0.70, 0.84, 0.86]  # a wide run: claim 2 undecided
    table = claims.claims_table(metrics(accs))
    summary = claims.claims_summary_markdown(table)
    stated = {cid: verdict for verdict, cid in re.findall(r"^- \*\*([a-z ()0-9]+)\*\*: (\w+)\. ", summary, flags=re.M)}
    expected = table.groupby("claim_id", sort=False)["verdict"].first().to_dict()
    assert stated == expected
    assert expected["10a"] == "contradicted" and expected["2"] == "inconclusive"
    counts = re.search(r"(\d+) reproduced, (\d+) contradicted, (\d+) inconclusive", summary).groups()
    assert tuple(int(n) for n in counts) == tuple(sum(v == w for v in expected.values())
                                                   for w in ("reproduced", "contradicted", "inconclusive"))
    r = row(table, "10a")
    assert f"ours {r['ours_pp']:+.2f} pp [95% CI {r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" in summary
    assert summary.index("Stated in the paper's text") < summary.index("- **contradicted**: 10a.") \
        < summary.index("Orderings read off the paper's tables") < summary.index(": 8a. ")


def test_compare_budgets_flags_every_changed_verdict():
    quick = claims.claims_table(metrics(paper_like()))
    accs = paper_like(seed=4)
    accs["step2_client"] = [a - 0.10 for a in accs["step2_client"]]  # 10a and 11 turn round
    long = claims.claims_table(metrics(accs))
    both = claims.compare_budgets({"quick": quick, "long": long.iloc[:-1]})  # 12c missing in long
    flagged = set(both.loc[both["verdict_changes"], "id"])
    assert flagged == {"10a", "11", "12c"}
    assert both.set_index("id").loc["12c", "verdict_long"] == "absent"
    assert both.set_index("id").loc["10a", "verdict_long"] == "contradicted"
    md = claims.compare_budgets_markdown(both)
    assert md.count("**claim verdict") == len(flagged) and "Claim, quick" in md and "Claim, long" in md
    with pytest.raises(ValueError, match="at least two"):
        claims.compare_budgets({"quick": quick})


# ---------------------------------------------------------------- bad input and seeds
@pytest.mark.parametrize("bad, says", [(math.nan, "missing or not finite"), (math.inf, "not finite"),
                                       (None, "missing"), (62.1, r"fraction in \[0, 1\]")])
def test_bad_accuracy_is_refused_naming_run_seed_and_file(bad, says):
    frame = metrics({"step2_client": [0.5, 0.6, bad], "step2_adapt_client": [0.5, 0.6, 0.7]})
    frame["path"] = [f"runs/{r}-s{s}/metrics.json" for r, s in zip(frame["run"], frame["seed"])]
    with pytest.raises(ValueError, match=says) as error:
        claims.claims_table(frame)
    message = str(error.value)
    assert "\n" not in message and "run step2_client seed 2" in message
    assert "runs/step2_client-s2/metrics.json" in message


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match="lacks the columns"):
        claims.claims_table(pd.DataFrame({"run": ["plain"], "test_acc": [0.5]}))
    with pytest.raises(ValueError, match="appears twice"):
        claims.claims_table(metrics({"plain": [0.5, 0.6]}, seeds=[0, 0]))
    with pytest.raises(ValueError, match="seed must be an integer"):
        claims.claims_table(metrics({"plain": [0.5]}, seeds=[1.5]))
    with pytest.raises(TypeError, match="DataFrame"):
        claims.claims_table([{"run": "plain"}])


def test_rows_use_the_seeds_all_their_runs_have_and_say_which():
    frame = pd.concat([metrics({"step2_client": [0.5, 0.52, 0.51, 0.53]}, seeds=[0, 1, 2, 4]),
                       metrics({"step2_adapt_client": [0.49, 0.50, 0.48]}, seeds=[0, 2, 4]),
                       metrics({"tanaka_client": [0.4]}, seeds=[0])])
    table = claims.claims_table(frame)
    r = row(table, "11")
    assert r["seeds"] == "0,2,4" and r["n_seeds"] == 3
    assert r["ours_pp"] == pytest.approx(round(100 * np.mean([0.5 - 0.49, 0.51 - 0.50, 0.53 - 0.48]), 2))
    one = row(table, "10a")
    assert one["seeds"] == "0" and one["verdict"] == one["row_verdict"] == "inconclusive (1 seed)"
    assert math.isnan(one["ci_low"]) and math.isnan(one["p_holm"])
    assert row(table, "1a")["verdict"] == "not run" and row(table, "1a")["n_seeds"] == 0
    assert "seeds per row in the table" in claims.claims_summary_markdown(table)
    assert table.groupby("claim_id")["p_holm"].first().notna().sum() == 1  # only claim 11 is tested


def test_identical_accuracies_give_an_exact_answer():
    table = claims.claims_table(metrics({"step2_client": [0.9, 0.9, 0.9], "step2_adapt_client": [0.88] * 3,
                                         "tanaka_client": [0.9, 0.9, 0.9]}))
    assert row(table, "11")["p_row"] == 0 and row(table, "11")["verdict"] == "reproduced"
    assert row(table, "11")["ci_low"] == row(table, "11")["ci_high"] == 2.0
    flat = row(table, "10a")  # no difference at all: decides nothing
    assert flat["p_row"] == 1 and flat["verdict"] == "inconclusive" and flat["mde_pp"] == 0

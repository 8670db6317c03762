"""The paper's claims decided by our runs: effects, intervals, family-wise verdicts.

A *claim* is one statement of the paper: a sentence of its text (``kind == "text"``, quoted
with its section) or an ordering of two numbers read off its Tables 2-3 (``"table"``). A claim
has one or more *rows*; each row is a linear contrast of run means, effect = sum_i c_i * mean
(run_i), in percentage points (pp), written so that the paper's effect is positive.

Design, hence the analysis: runs with the same seed share the batch order and the crop/flip
draws, and runs of the same architecture also share their initial weights. The seed is the
experimental unit, so a row is analysed *paired by seed*: d_s = sum_i c_i * acc_i,s for every
seed s that all its runs have, and a one-sample t test on the d_s (``ttest_1samp``; for two
runs it is ``ttest_rel``). That is valid whatever correlation the shared seed induces; Welch's
unpaired test assumes independent runs and is shown beside it, flagging where it would differ.

Verdicts (:data:`RULE`): per row a one-sided test in the paper's direction and one in the
other. A claim holds only if every row holds (intersection-union: p = max of the rows' p); it
is contradicted if any row goes the other way (Bonferroni within the claim). Holm's step-down
over both directions of every tested claim at alpha = 0.05 gives the headline verdict; the row's
own one-sided verdict (no multiplicity control) stands beside it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .files import atomic_write
from .markdown import markdown_table
from .paper import PAPER, WHERE

ALPHA = 0.05
POWER = 0.8
KINDS = ("text", "table")
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
ONE_SEED, NOT_RUN = "inconclusive (1 seed)", "not run"

METHOD = (
    "Effect: a contrast of run means in percentage points (pp), written so that the paper's "
    "effect is positive. Paired by seed: runs with the same seed share the batch order and the "
    "crop/flip draws, and runs of the same architecture share their initial weights, so runs "
    "are not independent; the seed is the experimental unit. For each seed that every run of a "
    "row has, d = the contrast of that seed's accuracies; the row's tests are one-sample t tests "
    "on these d (scipy.stats.ttest_1samp, seeds − 1 degrees of freedom; ttest_rel for two runs), "
    "valid whatever correlation the shared seed induces (they assume d varies normally from seed "
    "to seed). 95% CI: the two-sided paired t interval, not adjusted for multiplicity. The "
    "unpaired Welch test (Welch–Satterthwaite, same seeds) assumes independent runs; the last "
    "column names every verdict it would change. Seeds: those every run of the row has, listed.")
RULE = (
    "Verdict (headline, family-wise): a claim holds only if every row holds (intersection–union "
    "test: p = the largest of its rows' one-sided p in the paper's direction); it is contradicted "
    "if any row goes the other way (p = rows × the smallest one-sided p in the other direction). "
    "Holm's step-down over both directions of every tested claim at α = {alpha} decides: "
    "reproduced or contradicted where that hypothesis is rejected, inconclusive otherwise, so the "
    "chance that any headline verdict is wrong is at most {alpha}, whatever the true effects and "
    "however the claims depend on each other. Row alone: the row's own one-sided tests at α/2 in "
    "each direction, i.e. whether its 95% CI excludes 0, without multiplicity control (of many "
    "such verdicts some are expected to be wrong). Smallest detectable: the effect that a "
    "one-sided paired t test at Holm's strictest level, α/(2 × tested claims), detects with "
    "{power:.0%} power given the row's seed sd and number of seeds (noncentral t); a claim of "
    "several rows needs every row above its own. Ours vs paper: our effect above or below the "
    "paper's by a two-sided paired t test against the paper's number, Holm over the rows at α. "
    "The paper's number is one run after 300 epochs, taken as exact: this compares sizes at our "
    "budget, and \"not distinguished\" is not agreement.").format(alpha=ALPHA, power=POWER)

COLUMNS = ["id", "claim_id", "kind", "claim", "source", "quote", "comparison", "seeds", "n_seeds",
           "paper_pp", "ours_pp", "ci_low", "ci_high", "sd_pp", "p_row", "row_verdict",
           "p_claim", "p_claim_opposite", "p_holm", "p_holm_opposite", "verdict", "mde_pp",
           "vs_paper", "p_welch_row", "row_verdict_welch", "verdict_welch", "welch_changes"]


# ---------------------------------------------------------------- the claims
@dataclass(frozen=True)
class Contrast:
    """One row: ``terms`` are (coefficient, run) pairs, written as differences of pairs."""
    id: str
    terms: tuple[tuple[float, str], ...]

    @property
    def comparison(self) -> str:
        pairs = [(self.terms[i][0], f"{self.terms[i][1]} − {self.terms[i + 1][1]}")
                 for i in range(0, len(self.terms), 2)]
        if len(pairs) == 1:
            return pairs[0][1]
        return f"({pairs[0][1]})" + "".join(f" {'−' if c < 0 else '+'} ({p})" for c, p in pairs[1:])

    @property
    def runs(self) -> list[str]:
        return [run for _, run in self.terms]

    @property
    def paper_pp(self) -> float:
        return round(sum(c * PAPER[run] for c, run in self.terms), 2)


@dataclass(frozen=True)
class Claim:
    """One statement of the paper; ``quote`` and ``source`` say where it makes it."""
    id: str
    kind: str
    claim: str
    source: str
    quote: str
    rows: tuple[Contrast, ...]

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        for row in self.rows:  # the paper's direction is the positive one
            if not row.paper_pp > 0:
                raise ValueError(f"Claim {self.id}: row {row.id} has paper effect {row.paper_pp} <= 0")


def diff(row_id: str, a: str, b: str) -> Contrast:
    return Contrast(row_id, ((1.0, a), (-1.0, b)))


def diff_of_diffs(row_id: str, a: str, b: str, c: str, d: str) -> Contrast:
    """(a − b) − (c − d)."""
    return Contrast(row_id, ((1.0, a), (-1.0, b), (-1.0, c), (1.0, d)))


def ordering(claim_id: str, claim: str, rows: list[Contrast]) -> Claim:
    """A claim read off the paper's tables: its 'quote' is the numbers it compares."""
    quote = "; ".join(f"{WHERE[r.runs[0]][0]} {PAPER[r.runs[0]]:.2f} > "
                      f"{WHERE[r.runs[1]][0]} {PAPER[r.runs[1]]:.2f}" for r in rows)
    tables = sorted({WHERE[run][0].split(",")[0] for r in rows for run in r.runs})
    return Claim(claim_id, "table", claim, " and ".join(tables), quote, tuple(rows))


_PROPOSED = ["step2_cloud", "step2_adapt_cloud", "step23_cloud", "step23_adapt_cloud"]
_BASELINES = {"tanaka_cloud": "Tanaka's scheme [6]", "etc_cloud": "EtC [9, 10]",
              "chaotic_rc4_cloud": "the pixel-based cipher [16]"}
_abc = "abcdefgh"
_Q_TABLE2 = ("Although the proposed scheme had a lower classification accuracy than that for "
             "non-encrypted images, it still maintained a high classification performance compared "
             "with the conventional methods.")
_Q_ADAPT = ("Moreover, the use of the adaptation network was confirmed to improve the classification "
            "accuracy for two types of encryption: (Step 2) and (Step 2 and 3).")
_Q_BEATS = ("The experimental results showed that the proposed scheme performed better in "
            "classification than did the conventional block-based and pixel-based encryption schemes.")
_Q_TANAKA_HIT = ("In addition, the proposed scheme was confirmed to maintain a high classification "
                 "performance, although Tanaka's scheme was heavily affected by the data augmentation.")
_Q_CLIENT = ("Table 3 shows that the accuracy of the proposed scheme was higher than that of Tanaka's "
             "scheme even when the data augmentation was carried out in a client.")

CLAIMS = [
    Claim("1", "text", "The proposed scheme is less accurate than plain images (cloud)", "Sec. 4.2 A",
          _Q_TABLE2, tuple(diff(f"1{_abc[i]}", "plain", run) for i, run in enumerate(_PROPOSED))),
    Claim("2", "text", "Adaptation improves step 2 (cloud)", "Sec. 4.2 A", _Q_ADAPT,
          (diff("2", "step2_adapt_cloud", "step2_cloud"),)),
    Claim("3", "text", "Adaptation improves steps 2+3 (cloud)", "Sec. 4.2 A", _Q_ADAPT,
          (diff("3", "step23_adapt_cloud", "step23_cloud"),)),
    ordering("4", "Step 3 costs accuracy without adaptation (cloud)",
             [diff("4", "step2_cloud", "step23_cloud")]),
    *(Claim(num, "text", f"Each proposed variant beats {_BASELINES[base]} (cloud)", "Sec. 5", _Q_BEATS,
            tuple(diff(f"{num}{_abc[i]}", run, base) for i, run in enumerate(_PROPOSED)))
      for num, base in zip("567", _BASELINES)),
    ordering("8a", "EtC beats the pixel-based cipher [16] (cloud)",
             [diff("8a", "etc_cloud", "chaotic_rc4_cloud")]),
    ordering("8b", "The pixel-based cipher [16] beats Tanaka (cloud)",
             [diff("8b", "chaotic_rc4_cloud", "tanaka_cloud")]),
    Claim("9a", "text", "Cloud augmentation costs Tanaka more than step 2 without adaptation",
          "Sec. 4.2 B", _Q_TANAKA_HIT,
          (diff_of_diffs("9a", "tanaka_client", "tanaka_cloud", "step2_client", "step2_cloud"),)),
    Claim("9b", "text", "Cloud augmentation costs Tanaka more than step 2 with adaptation",
          "Sec. 4.2 B", _Q_TANAKA_HIT,
          (diff_of_diffs("9b", "tanaka_client", "tanaka_cloud", "step2_adapt_client", "step2_adapt_cloud"),)),
    Claim("10a", "text", "In the client, step 2 without adaptation beats Tanaka", "Sec. 4.2 B", _Q_CLIENT,
          (diff("10a", "step2_client", "tanaka_client"),)),
    Claim("10b", "text", "In the client, step 2 with adaptation beats Tanaka", "Sec. 4.2 B", _Q_CLIENT,
          (diff("10b", "step2_adapt_client", "tanaka_client"),)),
    ordering("11", "In the client, adaptation costs a little (step 2)",
             [diff("11", "step2_client", "step2_adapt_client")]),
    ordering("12", "Plain images beat every conventional scheme (cloud)",
             [diff(f"12{_abc[i]}", "plain", base) for i, base in enumerate(_BASELINES)]),
]


# ---------------------------------------------------------------- input
def accuracy_by_seed(metrics: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy in pp, one column per run, one row per seed; ValueError on bad input.

    ``metrics``: one row per (run, seed) with ``test_acc`` a fraction in [0, 1]; an optional
    ``path`` column names the file in the error messages.
    """
    if not isinstance(metrics, pd.DataFrame):
        raise TypeError(f"metrics must be a pandas DataFrame, got {type(metrics).__name__}")
    missing = [c for c in ("run", "seed", "test_acc") if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics lacks the columns {missing}")
    for row in metrics.itertuples(index=False):
        where = f"run {row.run} seed {row.seed}" + (f" ({row.path})" if "path" in metrics.columns else "")
        acc = pd.to_numeric(pd.Series([row.test_acc]), errors="coerce").iloc[0]
        seed = pd.to_numeric(pd.Series([row.seed]), errors="coerce").iloc[0]
        if not np.isfinite(seed) or seed != int(seed):
            raise ValueError(f"metrics: seed must be an integer, got {row.seed!r} for {where}")
        if not np.isfinite(acc):
            raise ValueError(f"metrics: test_acc is missing or not finite ({row.test_acc!r}) for {where}")
        if not 0.0 <= acc <= 1.0:
            raise ValueError(f"metrics: test_acc must be a fraction in [0, 1], got {acc} for {where}")
    frame = metrics.assign(seed=metrics["seed"].astype(float).astype(int),
                           acc=100.0 * pd.to_numeric(metrics["test_acc"]))
    twice = frame[frame.duplicated(["run", "seed"], keep=False)]
    if not twice.empty:
        raise ValueError(f"metrics: run {twice['run'].iloc[0]} seed {twice['seed'].iloc[0]} appears twice")
    return frame.pivot(index="seed", columns="run", values="acc").sort_index()


# ---------------------------------------------------------------- tests of one row
def paired_pvalues(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values (effect > 0, effect < 0) of a t test on ``d`` along its last axis.

    Where every d is equal the test is exact: p = 0 on the side of the common value, else 1.
    """
    d = np.asarray(d, dtype=float)
    with warnings.catch_warnings():  # scipy warns on constant data; handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        above = stats.ttest_1samp(d, 0.0, axis=-1, alternative="greater").pvalue
        below = stats.ttest_1samp(d, 0.0, axis=-1, alternative="less").pvalue
    flat, mean = np.ptp(d, axis=-1) == 0, d.mean(axis=-1)
    above = np.where(flat, np.where(mean > 0, 0.0, 1.0), above)
    below = np.where(flat, np.where(mean < 0, 0.0, 1.0), below)
    return above, below


def paired_interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    """Two-sided paired t interval of mean(d); a point where every d is equal."""
    if np.ptp(d) == 0:
        return float(d[0]), float(d[0])
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def welch_pvalues(samples: list[tuple[float, np.ndarray]]) -> tuple[float, float]:
    """One-sided p-values (> 0, < 0) of sum c_i * mean(x_i), runs independent (Welch–Satterthwaite).

    scipy's ``ttest_ind(equal_var=False)`` covers two runs only; this is its contrast form.
    """
    effect = sum(c * x.mean() for c, x in samples)
    parts = [(c * c * x.var(ddof=1) / len(x), len(x)) for c, x in samples]
    variance = sum(v for v, _ in parts)
    if variance == 0:
        return (0.0 if effect > 0 else 1.0), (0.0 if effect < 0 else 1.0)
    df = variance ** 2 / sum(v * v / (n - 1) for v, n in parts)
    t = effect / math.sqrt(variance)
    return float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))


def detectable_effect(sd: float, n: int, level: float, power: float = POWER) -> float:
    """Smallest effect a one-sided one-sample t test at ``level`` detects with ``power``."""
    if n < 2 or not np.isfinite(sd) or not 0 < level < 1:
        return math.nan
    if sd == 0:
        return 0.0
    df, critical = n - 1, stats.t.ppf(1 - level, n - 1)
    shift = optimize.brentq(lambda nc: stats.nct.sf(critical, df, nc) - power, 0.0, 1e4)
    return shift * sd / math.sqrt(n)


# ---------------------------------------------------------------- family-wise decisions
def holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis (step-down, valid under any dependence)."""
    p = np.asarray(p, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    adjusted = np.minimum(1.0, np.maximum.accumulate(ranked, axis=-1))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def claim_pvalues(above: np.ndarray, below: np.ndarray, claim_of_row: list[str]):
    """Per claim: intersection–union p (every row > 0) and Bonferroni p (some row < 0).

    ``above``/``below``: row p-values along the last axis. Returns (claim ids, p_holds, p_fails).
    """
    ids = list(dict.fromkeys(claim_of_row))
    rows = [np.array([c == i for c in claim_of_row]) for i in ids]
    holds = np.stack([above[..., r].max(axis=-1) for r in rows], axis=-1)
    fails = np.stack([np.minimum(1.0, r.sum() * below[..., r].min(axis=-1)) for r in rows], axis=-1)
    return ids, holds, fails


def familywise(above, below, claim_of_row: list[str], alpha: float = ALPHA):
    """Holm over both directions of every claim: (claim ids, adjusted p_holds, adjusted
    p_fails, decision +1 reproduced / -1 contradicted / 0 inconclusive), last axis = claims."""
    ids, holds, fails = claim_pvalues(above, below, claim_of_row)
    adjusted = holm(np.concatenate([holds, fails], axis=-1))
    holds_adj, fails_adj = adjusted[..., :len(ids)], adjusted[..., len(ids):]
    decision = np.where(holds_adj <= alpha, 1, np.where(fails_adj <= alpha, -1, 0))
    return ids, holds_adj, fails_adj, decision


def row_decision(above, below, alpha: float = ALPHA) -> np.ndarray:
    """Each row alone, no multiplicity control: +1, -1 or 0. Both directions are tested, so
    each gets alpha / 2: the verdict is +1 or -1 exactly where the (1 - alpha) CI excludes 0."""
    half = alpha / 2
    return np.where(np.asarray(above) <= half, 1, np.where(np.asarray(below) <= half, -1, 0))


_WORD = {1: REPRODUCED, -1: CONTRADICTED, 0: INCONCLUSIVE}


# ---------------------------------------------------------------- the table
def _row(claim: Claim, row: Contrast, acc: pd.DataFrame, alpha: float) -> dict:
    """One row's numbers from the seeds all its runs have (statuses: ok, 1 seed, not run)."""
    out = {"id": row.id, "claim_id": claim.id, "kind": claim.kind, "claim": claim.claim,
           "source": claim.source, "quote": claim.quote, "comparison": row.comparison,
           "paper_pp": row.paper_pp, "seeds": "", "n_seeds": 0, "status": NOT_RUN}
    nan = dict.fromkeys(["ours_pp", "ci_low", "ci_high", "sd_pp", "p_row", "p_row_opposite",
                         "p_welch_row", "p_welch_opposite", "p_vs_paper"], math.nan)
    if not set(row.runs) <= set(acc.columns):
        return {**out, **nan}
    values = acc[row.runs].dropna()
    d = values.to_numpy() @ np.array([c for c, _ in row.terms])
    out.update(seeds=",".join(str(s) for s in values.index), n_seeds=len(d))
    if len(d) < 2:
        return {**out, **nan, "ours_pp": d.mean() if len(d) else math.nan,
                "status": ONE_SEED if len(d) else NOT_RUN}
    above, below = paired_pvalues(d)
    welch_above, welch_below = welch_pvalues([(c, values[run].to_numpy()) for c, run in row.terms])
    vs_above, vs_below = paired_pvalues(d - row.paper_pp)
    low, high = paired_interval(d, 1 - alpha)
    return {**out, "status": "ok", "ours_pp": d.mean(), "ci_low": low, "ci_high": high,
            "sd_pp": d.std(ddof=1), "p_row": float(above), "p_row_opposite": float(below),
            "p_welch_row": welch_above, "p_welch_opposite": welch_below,
            "p_vs_paper": min(1.0, 2 * float(min(vs_above, vs_below)))}


def _claim_verdicts(rows: pd.DataFrame, above: str, below: str, alpha: float) -> pd.DataFrame:
    """Per claim id: p_claim, p_claim_opposite, p_holm, p_holm_opposite, verdict."""
    status = rows.groupby("claim_id", sort=False)["status"].agg(
        lambda s: NOT_RUN if (s == NOT_RUN).any() else ONE_SEED if (s == ONE_SEED).any() else "ok")
    out = pd.DataFrame({"verdict": status.where(status != "ok")}, index=status.index)
    for column in ("p_claim", "p_claim_opposite", "p_holm", "p_holm_opposite"):
        out[column] = math.nan
    tested = rows[rows["claim_id"].isin(status.index[status == "ok"])]
    if tested.empty:
        return out
    p_up, p_down = tested[above].to_numpy(), tested[below].to_numpy()
    ids, holds, fails = claim_pvalues(p_up, p_down, list(tested["claim_id"]))
    _, holds_adj, fails_adj, decision = familywise(p_up, p_down, list(tested["claim_id"]), alpha)
    out.loc[ids, ["p_claim", "p_claim_opposite", "p_holm", "p_holm_opposite"]] = np.column_stack(
        [holds, fails, holds_adj, fails_adj])
    out.loc[ids, "verdict"] = [_WORD[int(v)] for v in decision]
    return out


def _row_verdicts(rows: pd.DataFrame, above: str, below: str, alpha: float) -> pd.Series:
    decided = row_decision(rows[above].fillna(1.0), rows[below].fillna(1.0), alpha)
    return pd.Series([_WORD[int(v)] if s == "ok" else s for v, s in zip(decided, rows["status"])],
                     index=rows.index)


def _vs_paper(rows: pd.DataFrame, alpha: float) -> pd.Series:
    """Above / below the paper's effect (Holm over the tested rows, two-sided), or not distinguished."""
    out = pd.Series("n/a", index=rows.index)
    tested = rows["status"] == "ok"
    if tested.any():
        adjusted = holm(rows.loc[tested, "p_vs_paper"].to_numpy())
        above = rows.loc[tested, "ours_pp"] > rows.loc[tested, "paper_pp"]
        out[tested] = np.where(adjusted > alpha, "not distinguished",
                               np.where(above, "above the paper's", "below the paper's"))
    return out


def _welch_changes(table: pd.DataFrame) -> pd.Series:
    row = table["row_verdict"] != table["row_verdict_welch"]
    claim = table["verdict"] != table["verdict_welch"]
    return pd.Series(np.select([row & claim, row, claim], ["row and claim", "row", "claim"], "none"),
                     index=table.index)


def _rounded(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for column in ("ours_pp", "ci_low", "ci_high", "sd_pp", "mde_pp"):
        table[column] = table[column].astype(float).round(2)
    for column in ("p_row", "p_claim", "p_claim_opposite", "p_holm", "p_holm_opposite", "p_welch_row"):
        table[column] = [float(f"{p:.4g}") for p in table[column].astype(float)]
    return table


def claims_table(metrics: pd.DataFrame, claims=CLAIMS) -> pd.DataFrame:
    """One row per contrast of every claim, with the family-wise verdict of its claim.

    ``metrics``: one row per (run, seed), columns ``run``, ``seed``, ``test_acc`` (a fraction
    in [0, 1]; NaN, inf or missing raise ValueError naming the run, seed and ``path`` if given).
    Columns: :data:`COLUMNS`; the method and the rule are :data:`METHOD` and :data:`RULE`.
    """
    alpha = ALPHA  # fixed: METHOD and RULE state it
    acc = accuracy_by_seed(metrics)
    rows = pd.DataFrame([_row(c, r, acc, alpha) for c in claims for r in c.rows])
    paired = _claim_verdicts(rows, "p_row", "p_row_opposite", alpha)
    welch = _claim_verdicts(rows, "p_welch_row", "p_welch_opposite", alpha)
    table = rows.join(paired, on="claim_id").join(welch[["verdict"]].add_suffix("_welch"), on="claim_id")
    table["row_verdict"] = _row_verdicts(rows, "p_row", "p_row_opposite", alpha)
    table["row_verdict_welch"] = _row_verdicts(rows, "p_welch_row", "p_welch_opposite", alpha)
    table["welch_changes"] = _welch_changes(table)
    n_tested = int(paired["p_holm"].notna().sum())
    level = alpha / (2 * n_tested) if n_tested else math.nan
    table["mde_pp"] = [detectable_effect(sd, n, level) for sd, n in zip(table["sd_pp"], table["n_seeds"])]
    table["vs_paper"] = _vs_paper(rows, alpha)
    return _rounded(table)[COLUMNS]


# ---------------------------------------------------------------- Markdown
def _pp(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:+.2f}"


def _p(value: float) -> str:
    return "—" if pd.isna(value) else "<0.001" if value < 0.001 else f"{value:.3g}"


def _seeds(table: pd.DataFrame) -> str:
    used = set(table.loc[table["n_seeds"] > 0, "seeds"].astype(str))
    return f"seeds {used.pop()}" if len(used) == 1 else "seeds per row in the table"


def _decisive(rows: pd.DataFrame) -> pd.Series:
    """The row that decides a claim: the one with the largest p in the paper's direction
    (the weakest for it, hence also the most contrary)."""
    p = rows["p_row"].astype(float)
    return rows.loc[p.idxmax()] if p.notna().any() else rows.iloc[0]


def _claim_line(rows: pd.DataFrame) -> str:
    first, row = rows.iloc[0], _decisive(rows)
    where = first["source"] + ("" if len(rows) == 1 else f"; rows {rows['id'].iloc[0]}–{rows['id'].iloc[-1]}")
    ci = "" if pd.isna(row["ci_low"]) else f" [95% CI {_pp(row['ci_low'])}, {_pp(row['ci_high'])}]"
    ours = f"{_pp(row['ours_pp'])} pp{ci} (paper {_pp(row['paper_pp'])})"
    if len(rows) > 1:
        ours = (f"{_pp(rows['ours_pp'].min())} to {_pp(rows['ours_pp'].max())} pp; "
                f"deciding row {row['id']}: {ours}")
    mde = rows["mde_pp"].max()
    tail = "" if pd.isna(first["p_holm"]) else (
        f"; Holm p {_p(first['p_holm'])} (as the paper) / {_p(first['p_holm_opposite'])} (opposite)"
        f"; smallest detectable {'up to ' if len(rows) > 1 else ''}{mde:.1f} pp")
    return f"- **{first['verdict']}**: {first['claim_id']}. {first['claim']} ({where}): ours {ours}{tail}."


def claims_summary_markdown(table: pd.DataFrame) -> str:
    """The README's summary of the verdicts, written from the claims table (or claims.csv)."""
    claims = list(table.groupby("claim_id", sort=False))
    verdicts = pd.Series([rows["verdict"].iloc[0] for _, rows in claims])
    counts = ", ".join(f"{(verdicts == v).sum()} {v}" for v in dict.fromkeys(
        [REPRODUCED, CONTRADICTED, INCONCLUSIVE, *verdicts]))
    lines = [f"**Headline, family-wise** (paired by seed; Holm over both directions of "
             f"{int(table.groupby('claim_id')['p_holm'].first().notna().sum())} tested claims, "
             f"α = {ALPHA}; {_seeds(table)}): {counts}.", ""]
    for kind, title in (("text", "Stated in the paper's text:"),
                        ("table", "Orderings read off the paper's tables:")):
        lines += [title, "", *(_claim_line(rows) for _, rows in claims if rows["kind"].iloc[0] == kind), ""]
    alone = table[(table["row_verdict"] != table["verdict"])
                  & table["row_verdict"].isin([REPRODUCED, CONTRADICTED])]
    if not alone.empty:
        lines += ["Rows decided alone (their 95% CI excludes 0) but not family-wise: "
                  + ", ".join(f"{r.id} ({r.row_verdict})" for r in alone.itertuples()) + ".", ""]
    welch = table[table["welch_changes"] != "none"]
    lines.append("Where Welch's unpaired test would change a verdict: "
                 + (", ".join(f"{r.id} ({_welch_cell(r._asdict())})" for r in welch.itertuples()) or "nowhere")
                 + ".")
    return "\n".join(lines) + "\n"


def _welch_cell(r: dict) -> str:
    parts = [f"row: {r['row_verdict_welch']}" if r["welch_changes"] in ("row", "row and claim") else "",
             f"claim: {r['verdict_welch']}" if r["welch_changes"] in ("claim", "row and claim") else ""]
    return "; ".join(p for p in parts if p) or "—"


def _statements_markdown(table: pd.DataFrame) -> str:
    rows = [{"id": cid, "kind": g["kind"].iloc[0], "claim": g["claim"].iloc[0], "source": g["source"].iloc[0],
             "quote": (f"“{g['quote'].iloc[0]}”" if g["kind"].iloc[0] == "text" else g["quote"].iloc[0])}
            for cid, g in table.groupby("claim_id", sort=False)]
    return markdown_table(rows, {"id": "Claim", "kind": "Kind", "claim": "Statement", "source": "Where",
                                 "quote": "The paper's words (text) or numbers (table)"})


def claims_markdown(table: pd.DataFrame, provenance: str) -> str:
    """claims.md: the summary, the claims with their quotes, the rows, the method, the rule."""
    rows = [{**r, "paper_pp": _pp(r["paper_pp"]), "ours_pp": _pp(r["ours_pp"]),
             "ci": "—" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
             "p_row": _p(r["p_row"]), "holm": f"{_p(r['p_holm'])} / {_p(r['p_holm_opposite'])}",
             "mde": "—" if pd.isna(r["mde_pp"]) else f"{r['mde_pp']:.2f}", "welch": _welch_cell(r)}
            for r in table.to_dict("records")]
    columns = {"id": "#", "kind": "Kind", "comparison": "Comparison", "seeds": "Seeds",
               "paper_pp": "Paper (pp)", "ours_pp": "Ours (pp)", "ci": "95% CI (pp)",
               "p_row": "p, one-sided", "row_verdict": "Row alone", "verdict": "Claim, family-wise",
               "holm": "Holm p: as paper / opposite", "mde": "Smallest detectable (pp)",
               "vs_paper": "Ours vs paper", "welch": "Unpaired Welch would give"}
    align = {k: "right" for k in ("paper_pp", "ours_pp", "ci", "p_row", "holm", "mde")}
    return (f"{claims_summary_markdown(table)}\n{_statements_markdown(table)}\n"
            f"{markdown_table(rows, columns, align)}\n{METHOD}\n\n{RULE}\n\n{provenance}\n")


def compare_budgets(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Claims tables of several budgets (e.g. {"quick": ..., "long": ...}) side by side, one
    row per claim row; ``verdict_changes`` / ``row_verdict_changes`` flag every change."""
    if not isinstance(tables, dict) or len(tables) < 2:
        raise ValueError("compare_budgets needs a dict of at least two claims tables, {budget: table}")
    keys = ["id", "claim_id", "kind", "claim", "comparison"]
    out = pd.concat([t[keys] for t in tables.values()]).drop_duplicates("id").reset_index(drop=True)
    for budget, table in tables.items():
        missing = [c for c in keys + ["ours_pp", "row_verdict", "verdict"] if c not in table.columns]
        if missing:
            raise ValueError(f"compare_budgets: table {budget!r} lacks the columns {missing}")
        part = table.set_index("id")[["ours_pp", "row_verdict", "verdict"]].add_suffix(f"_{budget}")
        out = out.join(part, on="id")
        out[[f"row_verdict_{budget}", f"verdict_{budget}"]] = out[
            [f"row_verdict_{budget}", f"verdict_{budget}"]].fillna("absent")
    for column in ("row_verdict", "verdict"):
        out[f"{column}_changes"] = out[[f"{column}_{b}" for b in tables]].nunique(axis=1) > 1
    return out


def compare_budgets_markdown(comparison: pd.DataFrame) -> str:
    """The side-by-side comparison as Markdown; a changed verdict is marked **changes**."""
    budgets = [c.removeprefix("verdict_") for c in comparison.columns
               if c.startswith("verdict_") and c != "verdict_changes"]
    columns = {"id": "#", "claim": "Claim"}
    for b in budgets:
        columns |= {f"ours_{b}": f"Ours, {b} (pp)", f"verdict_{b}": f"Claim, {b}", f"row_{b}": f"Row alone, {b}"}
    columns["changes"] = "Changes with the budget"
    rows = []
    for r in comparison.to_dict("records"):
        cells = {"id": r["id"], "claim": r["claim"],
                 "changes": ", ".join(w for w, f in (("claim verdict", r["verdict_changes"]),
                                                     ("row verdict", r["row_verdict_changes"])) if f) or "—"}
        for b in budgets:
            cells |= {f"ours_{b}": _pp(r[f"ours_pp_{b}"]), f"verdict_{b}": r[f"verdict_{b}"],
                      f"row_{b}": r[f"row_verdict_{b}"]}
        if cells["changes"] != "—":
            cells["changes"] = f"**{cells['changes']}**"
        rows.append(cells)
    return markdown_table(rows, columns, {f"ours_{b}": "right" for b in budgets})


def write_claims(out_dir, table: pd.DataFrame, markdown: str) -> None:
    """claims.csv and claims.md in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    atomic_write(out_dir / "claims.csv", lambda f: table.to_csv(f, index=False))
    atomic_write(out_dir / "claims.md", lambda f: f.write(markdown.encode()))

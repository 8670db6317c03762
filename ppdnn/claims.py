"""The paper's claims (Tables 2-3 and its text) as computed results: effect, 95% CI, verdict.

Each claim is a linear contrast of run means, effect = sum_i c_i * mean(run_i), in percentage
points (pp). The paper's effect is that contrast of the paper's numbers (``tables.TABLE2_ROWS``,
``TABLE3_ROWS``); ours is the same contrast of our per-seed mean test accuracies.

Interval: runs are trained independently (seeds are not paired across runs), so the contrast's
variance is V = sum_i c_i^2 s_i^2 / n_i (s_i: the sample std over run i's n_i seeds) and the 95%
interval is effect ± t(0.975, df) * sqrt(V), with Welch–Satterthwaite degrees of freedom
df = V^2 / sum_i (c_i^2 s_i^2 / n_i)^2 / (n_i - 1). With n_i = 1 for a run the interval is
undefined (NaN); with V = 0 (identical accuracies) it has width 0.

Verdict (about the direction only): "reproduced" if the interval excludes 0 on the side of the
paper's effect, "contradicted" if it excludes 0 on the other side, "inconclusive" otherwise;
"inconclusive (1 seed)" and "not run" where no interval can be computed. `paper_in_ci` says
separately whether the paper's effect itself lies in our interval (agreement in magnitude).

Claims the paper makes about several pairs ("plain is the upper bound", "each proposed variant
beats X") are one row per pair (ids 1a, 1b, ...): the claim holds where every row is reproduced.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from .files import atomic_write
from .markdown import markdown_table
from .tables import TABLE2_ROWS, TABLE3_ROWS



def _paper() -> dict[str, float]:
    """The paper's accuracy (%) per run name, from Tables 2 and 3 (which share the cloud runs)."""
    paper = {run: acc for _, run, acc in TABLE2_ROWS}
    for _, client, client_acc, cloud, cloud_acc in TABLE3_ROWS:
        assert paper.get(cloud, cloud_acc) == cloud_acc, f"Tables 2 and 3 disagree on {cloud}"
        paper.update({client: client_acc, cloud: cloud_acc})
    return paper


PAPER = _paper()

METHOD = ("Effect: a contrast of run means in percentage points (pp). 95% CI: Welch t on the "
          "per-seed accuracies (runs independent, seeds not paired): variance sum c_i² s_i²/n_i, "
          "Welch–Satterthwaite degrees of freedom, t quantile from scipy.stats.t; no interval with "
          "1 seed. Seeds: the fewest seeds of the runs involved. Claims about several pairs are "
          "one row per pair (1a-1g, 5a-7d, ...): such a claim holds where all its rows are reproduced.")
RULE = ("Verdict: reproduced if the CI excludes 0 on the side of the paper's effect, contradicted "
        "if it excludes 0 on the other side, inconclusive otherwise. \"Paper in CI\" says whether "
        "the paper's effect itself lies inside our CI (magnitude, not direction).")
COLUMNS = ["id", "claim", "comparison", "paper_pp", "ours_pp", "ci_low", "ci_high", "seeds",
           "verdict", "paper_in_ci"]


@dataclass(frozen=True)
class Claim:
    """One claim: ``terms`` are (coefficient, run) pairs, written as differences of pairs."""
    id: str
    claim: str
    terms: tuple[tuple[float, str], ...]

    @property
    def comparison(self) -> str:
        pairs = [(self.terms[i][0], f"{self.terms[i][1]} − {self.terms[i + 1][1]}")
                 for i in range(0, len(self.terms), 2)]
        if len(pairs) == 1:
            return pairs[0][1]
        return f"({pairs[0][1]})" + "".join(f" {'−' if c < 0 else '+'} ({p})" for c, p in pairs[1:])

    @property
    def paper_pp(self) -> float:
        return round(sum(c * PAPER[run] for c, run in self.terms), 2)


def diff(a: str, b: str) -> tuple:
    return ((1.0, a), (-1.0, b))


def diff_of_diffs(a: str, b: str, c: str, d: str) -> tuple:
    """(a − b) − (c − d)."""
    return diff(a, b) + ((-1.0, c), (1.0, d))


_PROPOSED_CLOUD = [run for _, run, _ in TABLE2_ROWS if run.startswith("step")]
_BASELINES = [("5", "Tanaka's scheme [6]", "tanaka_cloud"), ("6", "EtC [9, 10]", "etc_cloud"),
              ("7", "the pixel-based cipher [16]", "chaotic_rc4_cloud")]
_abc = "abcdefgh"

CLAIMS = [
    *(Claim(f"1{_abc[i]}", "Plain images are the upper bound of Table 2", diff("plain", run))
      for i, (_, run, _) in enumerate(r for r in TABLE2_ROWS if r[1] != "plain")),
    Claim("2", "Adaptation improves step 2 (cloud augmentation)", diff("step2_adapt_cloud", "step2_cloud")),
    Claim("3", "Adaptation improves steps 2+3 (cloud augmentation)", diff("step23_adapt_cloud", "step23_cloud")),
    Claim("4", "Step 3 costs accuracy without adaptation (cloud)", diff("step2_cloud", "step23_cloud")),
    *(Claim(f"{num}{_abc[i]}", f"Each proposed variant beats {name} (cloud)", diff(run, base))
      for num, name, base in _BASELINES for i, run in enumerate(_PROPOSED_CLOUD)),
    Claim("8a", "Baselines' order: EtC > pixel-based [16] (cloud)", diff("etc_cloud", "chaotic_rc4_cloud")),
    Claim("8b", "Baselines' order: pixel-based [16] > Tanaka (cloud)", diff("chaotic_rc4_cloud", "tanaka_cloud")),
    Claim("9a", "Cloud augmentation costs Tanaka more than step 2 without adaptation",
          diff_of_diffs("tanaka_client", "tanaka_cloud", "step2_client", "step2_cloud")),
    Claim("9b", "Cloud augmentation costs Tanaka more than step 2 with adaptation",
          diff_of_diffs("tanaka_client", "tanaka_cloud", "step2_adapt_client", "step2_adapt_cloud")),
    Claim("10a", "In the client, step 2 without adaptation beats Tanaka", diff("step2_client", "tanaka_client")),
    Claim("10b", "In the client, step 2 with adaptation beats Tanaka", diff("step2_adapt_client", "tanaka_client")),
    Claim("11", "In the client, adaptation costs a little (step 2)", diff("step2_client", "step2_adapt_client")),
]


def contrast(terms, samples: dict[str, pd.Series]) -> tuple[float, float, float]:
    """(effect, ci_low, ci_high) of sum c_i * mean(run_i), 95% Welch–Satterthwaite interval."""
    effect = sum(c * samples[run].mean() for c, run in terms)
    if min(len(samples[run]) for _, run in terms) < 2:
        return effect, math.nan, math.nan
    parts = [(c * c * samples[run].var(ddof=1) / len(samples[run]), len(samples[run])) for c, run in terms]
    variance = sum(v for v, _ in parts)
    if variance == 0:
        return effect, effect, effect
    df = variance ** 2 / sum(v * v / (n - 1) for v, n in parts)
    half = stats.t.ppf(0.975, df) * math.sqrt(variance)
    return effect, effect - half, effect + half


def verdict(paper_pp: float, low: float, high: float) -> str:
    if math.isnan(low):
        return "inconclusive (1 seed)"
    if low > 0 or high < 0:
        return "reproduced" if (low > 0) == (paper_pp > 0) else "contradicted"
    return "inconclusive"


def claims_table(metrics: pd.DataFrame, claims=CLAIMS) -> pd.DataFrame:
    """One row per claim from per-seed metrics (columns run, test_acc in %, as collect_metrics).

    ``seeds``: the fewest seeds of the runs involved; 0 (verdict "not run") if one is missing.
    """
    rows = []
    for claim in claims:
        samples = {run: metrics.loc[metrics["run"] == run, "test_acc"].dropna() for _, run in claim.terms}
        seeds = min(len(s) for s in samples.values())
        row = {"id": claim.id, "claim": claim.claim, "comparison": claim.comparison,
               "paper_pp": claim.paper_pp, "seeds": seeds}
        if seeds == 0:
            rows.append({**row, "ours_pp": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                         "verdict": "not run", "paper_in_ci": "n/a"})
            continue
        effect, low, high = contrast(claim.terms, samples)
        inside = "n/a" if math.isnan(low) else ("yes" if low <= claim.paper_pp <= high else "no")
        rows.append({**row, "ours_pp": round(effect, 2), "ci_low": round(low, 2), "ci_high": round(high, 2),
                     "verdict": verdict(claim.paper_pp, low, high), "paper_in_ci": inside})
    return pd.DataFrame(rows, columns=COLUMNS)


def _pp(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:+.2f}"


def claims_markdown(table: pd.DataFrame, provenance: str) -> str:
    """The claims table in GitHub Markdown, with the CI method, the verdict rule and provenance."""
    rows = [{**r, "paper_pp": _pp(r["paper_pp"]), "ours_pp": _pp(r["ours_pp"]),
             "ci": "—" if pd.isna(r["ci_low"]) else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"}
            for r in table.to_dict("records")]
    columns = {"id": "#", "claim": "Claim", "comparison": "Comparison", "paper_pp": "Paper (pp)",
               "ours_pp": "Ours (pp)", "ci": "95% CI (pp)", "seeds": "Seeds", "verdict": "Verdict",
               "paper_in_ci": "Paper in CI"}
    align = {k: "right" for k in ("paper_pp", "ours_pp", "ci", "seeds")}
    return f"{markdown_table(rows, columns, align)}\n{METHOD}\n\n{RULE}\n\n{provenance}\n"


def write_claims(out_dir, table: pd.DataFrame, markdown: str) -> None:
    """claims.csv and claims.md in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    atomic_write(out_dir / "claims.csv", lambda f: table.to_csv(f, index=False))
    atomic_write(out_dir / "claims.md", lambda f: f.write(markdown.encode()))

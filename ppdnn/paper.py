"""The paper's reported numbers (Tables 2 and 3, accuracy in %): data only, never used as ours.

One place for them, so that the tables (``tables``) and the claims (``claims``) cannot
quote different numbers. Run names are the pipeline's.
"""
from __future__ import annotations

TABLE2_ROWS = [  # (row label as printed, run name, paper accuracy): augmentation in the cloud
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


def _where() -> dict[str, tuple[str, float]]:
    """Run name -> (where the paper prints it, accuracy); Tables 2 and 3 share the cloud runs."""
    where = {run: (f"Table 2, {label}", acc) for label, run, acc in TABLE2_ROWS}
    for label, client, client_acc, cloud, cloud_acc in TABLE3_ROWS:
        if where[cloud][1] != cloud_acc:
            raise ValueError(f"paper.TABLE3_ROWS: {cloud} is {cloud_acc}, Table 2 says {where[cloud][1]}")
        where[client] = (f"Table 3, {label}, augmentation in the client", client_acc)
    return where


WHERE = _where()
PAPER = {run: acc for run, (_, acc) in WHERE.items()}  # run -> the paper's accuracy (%)

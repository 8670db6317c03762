"""The security report: every attack of :mod:`ppdnn.attacks` on every cipher configuration
of the registry (``ciphers.configurations()``), scored on plain test images, as a table,
Markdown, an examples figure and files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import attacks, ciphers
from .files import atomic_write
from .markdown import markdown_table

# The columns of the report, in order. "advanced (Chang & Case), true first pixel" is the
# authors' published attack exactly; the others are this project's variants.
ATTACKS = ("none (encrypted)", "fold",
           "advanced (Chang & Case), true first pixel", "advanced (Chang & Case), colour prior",
           "advanced (two neighbours), true first pixel", "advanced (two neighbours), colour prior",
           "chosen plaintext")
ADVANCED_ROWS = {  # report row -> (method, seeded with the true first pixel?)
    "advanced (Chang & Case), true first pixel": ("chang_case", True),
    "advanced (Chang & Case), colour prior": ("chang_case", False),
    "advanced (two neighbours), true first pixel": ("two_neighbours", True),
    "advanced (two neighbours), colour prior": ("two_neighbours", False),
}


def attack_outputs(cipher: ciphers.Cipher, images: np.ndarray,
                   prior: attacks.ColourPrior | None) -> tuple[dict, dict]:
    """Every attack's output on ``cipher.encrypt(images)`` ({attack: images}, in ``ATTACKS``
    order) and the chosen-plaintext facts ({"chosen_images", "key_fraction"})."""
    encrypted = cipher.encrypt(images)
    # The 48 candidates where the scheme moves values; the 8 flip patterns where it only
    # XORs values in place (step 2 of the pixel scheme).
    shuffle = cipher.moves_units
    key, n_chosen, fraction = attacks.chosen_plaintext(cipher)
    outputs = {"none (encrypted)": encrypted, "fold": attacks.fold(encrypted)}
    for name, (method, seeded) in ADVANCED_ROWS.items():
        seed = {"first_pixel": images[:, 0, 0]} if seeded else {"prior": prior}
        outputs[name] = attacks.advanced_attack(encrypted, shuffle, method=method, **seed)
    outputs["chosen plaintext"] = key.decrypt(encrypted)
    return outputs, {"chosen_images": n_chosen, "key_fraction": fraction}


@dataclass
class SecurityReport:
    table: "object"   # pandas DataFrame, one row per (configuration, attack)
    examples: dict    # {cipher label: {"original" / attack: (n_examples, H, W, 3)}}


def attacked_configurations(shape) -> list[ciphers.Configuration]:
    """Every registered configuration that encrypts at all (key space above 1) at ``shape``."""
    return [c for c in ciphers.configurations()
            if ciphers.key_space(c.scheme, shape, **c.options) > 1]


def security_table(images: np.ndarray, prior_images: np.ndarray | None = None,
                   key_seed: int = 0, configurations=None, n_examples: int = 4) -> SecurityReport:
    """Run every attack on every configuration, with the keys of
    ``ciphers.make_for_configuration(name, key_seed, shape)`` (the pipeline's keys).

    ``images``: the plain test images the attacks are scored against. ``prior_images``:
    public plain images to fit the colour prior on (the notebook uses the training split,
    disjoint from the test images); None drops the prior (no global disambiguation).
    ``configurations``: names; default every registered one that encrypts.
    """
    import pandas as pd

    x = attacks.check_images(images)
    shape = x.shape[1:3]
    names = ([c.name for c in attacked_configurations(shape)] if configurations is None
             else list(configurations))
    prior = None if prior_images is None else attacks.colour_prior(prior_images)
    rows, examples = [], {}
    for name in names:
        cipher = ciphers.make_for_configuration(name, key_seed, shape)
        outputs, facts = attack_outputs(cipher, x, prior)
        examples[cipher.label] = {"original": x[:n_examples]} | {
            attack: out[:n_examples] for attack, out in outputs.items()}
        for attack, out in outputs.items():
            chosen = attack == "chosen plaintext"
            rows.append({"configuration": name, "scheme": cipher.label, "attack": attack,
                         "n_images": len(x), **attacks.score(x, out),
                         "key_fraction": facts["key_fraction"] if chosen else float("nan"),
                         "chosen_images": facts["chosen_images"] if chosen else 0,
                         "key_space_log10": round(cipher.key_space_log10, 1)})
    return SecurityReport(pd.DataFrame(rows), examples)


def plot_examples(examples: dict, image_index: int = 0):
    """One row per scheme: original, encrypted and each attack's output for one image."""
    import matplotlib.pyplot as plt

    columns = ["original", *ATTACKS]
    fig, axes = plt.subplots(len(examples), len(columns),
                             figsize=(1.6 * len(columns), 1.7 * len(examples)), squeeze=False)
    for row, (scheme, outputs) in enumerate(examples.items()):
        for col, name in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(outputs[name][image_index], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(name.replace(", ", ",\n"), fontsize=7)
            if col == 0:
                ax.set_ylabel(scheme, fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- files
COLUMNS = {"scheme": "scheme", "attack": "attack", "ssim": "SSIM", "psnr": "PSNR (dB)",
           "exact_images": "images exact", "key_fraction": "key recovered",
           "chosen_images": "chosen images"}


def _cell(column: str, value) -> str:
    """Numbers rounded for reading: PSNR to 0.01 dB, fractions to 0.001; NaN as a dash."""
    if not isinstance(value, float):
        return str(value)
    if np.isnan(value):
        return "–"
    if not np.isfinite(value):
        return "inf"
    return f"{value:.2f}" if column == "psnr" else f"{value:.3f}"


def report_markdown(table) -> str:
    """The table as GitHub Markdown, with a line saying what was scored."""
    rows = [{k: _cell(k, row[k]) for k in COLUMNS} for row in table.to_dict("records")]
    n = sorted(set(table["n_images"]))
    return (f"Attacks scored on {', '.join(map(str, n))} CIFAR-10 test images "
            f"(SSIM/PSNR against the plain images; mean over images). "
            f"\"advanced (Chang & Case), true first pixel\" is the published attack exactly.\n\n"
            + markdown_table(rows, COLUMNS))


def write_report(report: SecurityReport, out_dir) -> tuple[Path, Path, Path]:
    """Write ``security.csv``, ``security.md`` and ``security.png`` into ``out_dir``."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    csv = atomic_write(out_dir / "security.csv", lambda f: report.table.to_csv(f, index=False))
    md = atomic_write(out_dir / "security.md", lambda f: f.write(report_markdown(report.table).encode()))
    fig = plot_examples(report.examples)
    try:
        png = atomic_write(out_dir / "security.png", lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)
    return csv, md, png

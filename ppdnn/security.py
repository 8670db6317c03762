"""The security report: every attack of :mod:`ppdnn.attacks` (one image at a time, or
chosen plaintext) and of :mod:`ppdnn.dataset_attacks` (the whole encrypted training set)
on every cipher configuration, scored on plain test images, as a table, Markdown, an
examples figure, a data-set attack curve and files.

Each row names its attacker (``ATTACKERS``) and what the attack uses, and how many
ciphertexts it saw."""
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


# Who can mount each attack, in the threat model of the paper (an honest-but-curious
# server stores the encrypted training set under one key).
SERVER = "server storing the encrypted training set"
ONE_CIPHERTEXT = "anyone holding one ciphertext"
CHOSEN = "chosen-plaintext attacker"
ATTACKERS = {"none (encrypted)": "–", "fold": ONE_CIPHERTEXT, "chosen plaintext": CHOSEN,
             **{name: ONE_CIPHERTEXT for name in ADVANCED_ROWS}}
USES = {"none (encrypted)": "nothing", "fold": "the ciphertext",
        "chosen plaintext": "images of his choice encrypted under the key",
        **{name: "the ciphertext, the true first pixel" if seeded else
           "the ciphertext, a public colour prior" for name, (_, seeded) in ADVANCED_ROWS.items()}}
DATASET_ATTACK = "data set (ciphertext only)"
DATASET_USES = "encrypted training images, published ImageNet mean/std, the public algorithm"

def evenly_spaced(images, n: int):
    """The first ``n`` of every k-th image (k = len // n), so a subset spans every class of
    a split stored class by class."""
    return images[::max(1, len(images) // n)][:n]


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


def attacked_configurations(shape, configurations=None) -> list[ciphers.Configuration]:
    """The ``configurations`` (default: one per scheme) that encrypt at all (key space
    above 1) at ``shape``: the plain baseline is not attacked."""
    configurations = ciphers.configurations() if configurations is None else configurations
    return [c for c in configurations if ciphers.key_space(c.scheme, shape, **c.options) > 1]


def security_table(images: np.ndarray, prior_images: np.ndarray | None = None,
                   key_seed: int = 0, configurations=None, n_examples: int = 4) -> SecurityReport:
    """Run every attack on every configuration, with the keys of
    ``ciphers.make_for_configuration(configuration, key_seed, shape)`` (the pipeline's keys).

    ``images``: the plain test images the attacks are scored against. ``prior_images``:
    public plain images to fit the colour prior on (the notebook uses the training split,
    disjoint from the test images); None drops the prior (no global disambiguation).
    ``configurations``: :class:`ciphers.Configuration` objects (the pipeline's, from
    params.yaml); default one per scheme. The plain baseline is left out.
    """
    import pandas as pd

    x = attacks.check_images(images)
    shape = x.shape[1:3]
    prior = None if prior_images is None else attacks.colour_prior(prior_images)
    rows, examples = [], {}
    for configuration in attacked_configurations(shape, configurations):
        name = configuration.name
        cipher = ciphers.make_for_configuration(configuration, key_seed, shape)
        outputs, facts = attack_outputs(cipher, x, prior)
        examples[cipher.label] = {"original": x[:n_examples]} | {
            attack: out[:n_examples] for attack, out in outputs.items()}
        for attack, out in outputs.items():
            chosen = attack == "chosen plaintext"
            rows.append({"configuration": name, "scheme": cipher.label, "attack": attack,
                         "attacker": ATTACKERS[attack], "uses": USES[attack],
                         "ciphertexts_used": 0 if chosen or attack == "none (encrypted)" else 1,
                         "n_images": len(x), **attacks.score(x, out),
                         "key_fraction": facts["key_fraction"] if chosen else float("nan"),
                         "chosen_images": facts["chosen_images"] if chosen else 0,
                         "key_space_log10": round(cipher.key_space_log10, 1)})
    return SecurityReport(pd.DataFrame(rows), examples)


def dataset_attack_table(train_images: np.ndarray, test_images: np.ndarray, key_seed: int = 0,
                         configurations=None, counts=None, seed: int = 0):
    """The ciphertext-only data-set attack (:func:`ppdnn.dataset_attacks.attack_curve`) on
    every configuration: the server sees its encrypted ``train_images`` (random subsets of
    ``counts`` images, default ``dataset_attacks.COUNTS``), scored on the encrypted
    ``test_images``. One row per (configuration, count), as a pandas DataFrame."""
    import pandas as pd

    from . import dataset_attacks

    shape = attacks.check_images(test_images).shape[1:3]
    counts = dataset_attacks.COUNTS if counts is None else counts
    rows = []
    for configuration in attacked_configurations(shape, configurations):
        name = configuration.name
        cipher = ciphers.make_for_configuration(configuration, key_seed, shape)
        for row in dataset_attacks.attack_curve(cipher, train_images, test_images, counts, seed):
            rows.append({"configuration": name, "attack": DATASET_ATTACK, "attacker": SERVER,
                         "uses": DATASET_USES, "ciphertexts_used": row.pop("n_ciphertexts"),
                         **row, "chosen_images": 0,
                         "key_space_log10": round(cipher.key_space_log10, 1)})
    return pd.DataFrame(rows)


def plot_dataset_curves(table):
    """Per configuration, key fraction, exact test images and SSIM against the number of
    ciphertexts the server used (log scale): one panel per configuration."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(table["configuration"]))
    fig, axes = plt.subplots(1, len(names), figsize=(2.8 * len(names), 2.6), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        part = table[table["configuration"] == name]
        for column, label in (("key_fraction", "table recovered"), ("exact_images", "test images exact"),
                              ("ssim", "mean SSIM")):
            ax.plot(part["ciphertexts_used"], part[column], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_title(part["scheme"].iloc[0], fontsize=9)
        ax.set_xlabel("ciphertexts used")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_examples(examples: dict, image_index: int = 0, columns=None):
    """One row per scheme: original, encrypted and each attack's output for one image
    (``columns``: which outputs, default the original and ``ATTACKS``)."""
    import matplotlib.pyplot as plt

    columns = ["original", *ATTACKS] if columns is None else list(columns)
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
COLUMNS = {"scheme": "scheme", "attack": "attack", "attacker": "attacker",
           "ciphertexts_used": "ciphertexts used", "ssim": "SSIM", "psnr": "PSNR (dB)",
           "exact_images": "images exact", "key_fraction": "key recovered",
           "chosen_images": "chosen images"}
DATASET_COLUMNS = {"scheme": "scheme", "ciphertexts_used": "ciphertexts used",
                   "key_fraction": "table recovered", "masks": "masks recovered",
                   "positions": "positions recovered", "exact_images": "test images exact",
                   "ssim": "SSIM", "psnr": "PSNR (dB)", "confident": "confident",
                   "seconds": "time (s)"}


def _cell(column: str, value) -> str:
    """Numbers rounded for reading: PSNR to 0.01 dB, fractions to 0.001; NaN as a dash."""
    if not isinstance(value, float):
        return str(value)
    if np.isnan(value):
        return "–"
    if not np.isfinite(value):
        return "inf"
    return f"{value:.2f}" if column in ("psnr", "seconds") else f"{value:.3f}"


def report_markdown(table, dataset_table=None) -> str:
    """The table (and the data-set attack table) as GitHub Markdown, with what was scored."""
    per_image = table[table["attack"] != DATASET_ATTACK] if "attack" in table else table
    rows = [{k: _cell(k, row.get(k, "")) for k in COLUMNS} for row in per_image.to_dict("records")]
    n = sorted(set(per_image["n_images"]))
    text = (f"Attacks scored on {', '.join(map(str, n))} CIFAR-10 test images "
            f"(SSIM/PSNR against the plain images; mean over images). "
            f"\"advanced (Chang & Case), true first pixel\" is the published attack exactly.\n\n"
            + markdown_table(rows, COLUMNS))
    if dataset_table is not None and len(dataset_table):
        rows = [{k: _cell(k, row[k]) for k in DATASET_COLUMNS} for row in dataset_table.to_dict("records")]
        text += (f"\n\n### Ciphertext-only data-set attack (attacker: the {SERVER})\n\n"
                 f"Uses: {DATASET_USES}. Random subsets of the encrypted training split; "
                 f"scored on {', '.join(map(str, sorted(set(dataset_table['n_images']))))} encrypted "
                 f"test images (exact fraction on all, SSIM/PSNR on at most "
                 f"{int(dataset_table['ssim_images'].max())}).\n\n"
                 + markdown_table(rows, DATASET_COLUMNS))
    return text


LEARNED_COLUMNS = {"scheme": "scheme", "attack": "attack", "attacker": "attacker",
                   "ciphertexts_used": "ciphertexts used", "network": "network",
                   "train_images": "training images", "epochs": "epochs",
                   "literature_epochs": "literature epochs", "seconds": "training time (s)",
                   "ssim": "SSIM", "ssim_median": "median SSIM", "psnr": "PSNR (dB)",
                   "exact_images": "images exact"}


def _learned_cell(column: str, row: dict) -> str:
    if column == "epochs":
        return f"{row['epochs']:g}" + (" (under-trained)" if row["under_trained"] else "")
    return _cell(column, row[column])


def learned_markdown(table) -> str:
    """The learned attacks' table as GitHub Markdown, with their budget stated."""
    rows = [{k: _learned_cell(k, row) for k in LEARNED_COLUMNS} for row in table.to_dict("records")]
    return (f"After Ito et al. (`ito-hiroki/learnable_encryption_robustness`; ITN without their "
            f"sigmoid on the tanh output). Scored on {', '.join(map(str, sorted(set(table['n_images']))))} "
            f"CIFAR-10 test images under the data set's key; trained on "
            f"{', '.join(sorted(set(table['device'])))}. The literature trains on all 50,000 training "
            f"images; a row with fewer epochs than the literature's is labelled under-trained.\n\n"
            + markdown_table(rows, LEARNED_COLUMNS))


def write_learned_report(table, examples: dict, out_dir) -> tuple[Path, ...]:
    """Write ``security_learned.csv``, ``.md`` and ``.png`` (examples) into ``out_dir``."""
    out_dir = Path(out_dir)
    columns = ["original", "encrypted", *dict.fromkeys(table["attack"])]
    return (atomic_write(out_dir / "security_learned.csv", lambda f: table.to_csv(f, index=False)),
            atomic_write(out_dir / "security_learned.md", lambda f: f.write(learned_markdown(table).encode())),
            _save_figure(plot_examples(examples, columns=columns), out_dir / "security_learned.png"))


def _save_figure(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt
    try:
        return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    finally:
        plt.close(fig)


def write_report(report: SecurityReport, out_dir, dataset_table=None) -> tuple[Path, ...]:
    """Write ``security.csv`` (every row, data-set attack rows included), ``security.md``
    and ``security.png`` into ``out_dir``; with ``dataset_table`` also
    ``security_dataset.csv`` (the curve) and ``security_dataset.png`` (its plot)."""
    import pandas as pd

    out_dir = Path(out_dir)
    table = report.table if dataset_table is None else pd.concat([report.table, dataset_table],
                                                                 ignore_index=True)
    csv = atomic_write(out_dir / "security.csv", lambda f: table.to_csv(f, index=False))
    md = atomic_write(out_dir / "security.md",
                      lambda f: f.write(report_markdown(report.table, dataset_table).encode()))
    paths = [csv, md, _save_figure(plot_examples(report.examples), out_dir / "security.png")]
    if dataset_table is not None:
        paths.append(atomic_write(out_dir / "security_dataset.csv",
                                  lambda f: dataset_table.to_csv(f, index=False)))
        paths.append(_save_figure(plot_dataset_curves(dataset_table), out_dir / "security_dataset.png"))
    return tuple(paths)

"""The security stage: every attack on every cipher configuration, written to
``<out>/security.{csv,md,png}`` and ``<out>/security_dataset.{csv,png}``.

    python -m ppdnn.stages.security --profile quick --data data/cifar10 --out results/quick

Its main reads its slice of params.yaml: ``key_seed``, ``ciphers`` (every configuration is
attacked) and ``profiles.<profile>.security_images`` (how many test images are scored).

``security()`` is the stage; the notebook ``notebooks/security.ipynb`` calls it and shows
its table and figures. The attackers see: one ciphertext (per-image attacks), chosen
images (chosen plaintext), or the whole encrypted training split (data-set attack,
random subsets of ``counts`` images); everything is scored on the first ``n_images``
test images (every k-th, so all classes are in), encrypted under the same key.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import ciphers, data, plan, security as report
from ..dataset_attacks import COUNTS
from ..errors import run_main

MAX_IMAGES = 10_000  # the CIFAR-10 test split


def check_n_images(n_images) -> int:
    """``n_images`` as an int in 1..MAX_IMAGES; ValueError naming it otherwise."""
    if isinstance(n_images, bool) or not isinstance(n_images, int) or not 1 <= n_images <= MAX_IMAGES:
        raise ValueError(f"n_images must be an int in 1..{MAX_IMAGES}, got {n_images!r}")
    return n_images


def security(data_dir, out_dir, n_images: int, key_seed: int, counts=COUNTS,
             configurations=None) -> dict:
    """Run the stage; returns {"report", "dataset_table", "paths"} (``report.table``: the
    per-image and chosen-plaintext rows; ``dataset_table``: the data-set attack curve).

    ``configurations``: :class:`ciphers.Configuration` objects (params.yaml's ``ciphers``);
    default one per scheme.
    """
    n_images = check_n_images(n_images)
    cifar = data.load(data_dir)
    test_images = report.evenly_spaced(cifar["test_images"], n_images)
    dataset_table = report.dataset_attack_table(cifar["train_images"], test_images, key_seed,
                                                configurations, counts)
    # The colour prior of the per-image attack: the plain training split, disjoint from
    # the scored test images (as before this stage existed).
    per_image = report.security_table(test_images, prior_images=cifar["train_images"],
                                      key_seed=key_seed, configurations=configurations)
    paths = report.write_report(per_image, Path(out_dir), dataset_table)
    return {"report": per_image, "dataset_table": dataset_table, "paths": paths}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ppdnn.stages.security", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=plan.PARAMS)
    parser.add_argument("--profile", required=True, help="whose security_images: how many test images are scored")
    parser.add_argument("--data", required=True, help="ppdnn.data cache folder")
    parser.add_argument("--out", required=True, help="results folder, e.g. results/quick")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    def stage():
        params = plan.read(args.params)
        n_images = plan.profile_settings(params, plan.profile_name(params, args.params, args.profile),
                                         args.params)["security_images"]
        configurations = ciphers.configurations(plan.cipher_entries(params, args.params))
        security(args.data, args.out, n_images, plan.key_seed(params, args.params), configurations=configurations)

    return run_main(parser.prog, stage, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

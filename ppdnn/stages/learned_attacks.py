"""The learned-attacks stage: GAN-Attack and ITN-Attack (:mod:`ppdnn.learned_attacks`) on
every cipher configuration, written to ``<out>/security_learned.{csv,md,png}``.

    python -m ppdnn.stages.learned_attacks --profile quick --data data/cifar10 --out results/quick

Its main reads ``key_seed`` and ``ciphers`` from params.yaml and the profile's budget from
``learned_attacks.yaml`` (one mapping per profile: ``gan_epochs``, ``itn_epochs``,
``train_images``, ``test_images``, ``device``). The budgets live in a file of their own
because they are the attack's, not the classifier's: changing one re-runs this stage only.
The ``fast`` and ``paper`` profiles' budget is the literature's epochs on one GPU (over
half the training split per side); the CPU profiles train for minutes and label their
rows under-trained.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from .. import ciphers, data, learned_attacks, plan, security as report
from ..errors import run_main
from ..files import read_regular

BUDGETS = "learned_attacks.yaml"


def read_budget(path, profile: str) -> learned_attacks.Budget:
    """The ``profile``'s budget in the budgets file at ``path``; ParamsError naming the file
    and the profile for anything wrong."""
    import yaml

    try:
        budgets = yaml.load(read_regular(path, "budgets file"), Loader=plan._UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise plan.ParamsError(f"{path} is not valid YAML ({' '.join(str(exc).split())})") from None
    except FileNotFoundError:
        raise plan.ParamsError(f"{path} not found: run from the repository root or pass --budgets") from None
    if not isinstance(budgets, dict) or profile not in budgets:
        raise plan.ParamsError(f"{path} has no budget for profile {profile!r}")
    entry, known = budgets[profile], [f.name for f in fields(learned_attacks.Budget)]
    if not isinstance(entry, dict) or set(entry) != set(known):
        raise plan.ParamsError(f"{path}: profile {profile!r} needs exactly the keys {known}, got {entry!r}")
    try:
        return learned_attacks.Budget(**entry)
    except ValueError as exc:
        raise plan.ParamsError(f"{path}: profile {profile!r}: {exc}") from None


def run(data_dir, out_dir, budget: learned_attacks.Budget, key_seed: int, configurations=None,
        seed: int = 0) -> dict:
    """Run the stage; returns {"table", "paths"}."""
    cifar = data.load(data_dir)
    test_images = report.evenly_spaced(cifar["test_images"], budget.test_images)
    table, examples = learned_attacks.attack_table(cifar["train_images"], test_images, budget, key_seed,
                                                   configurations, seed)
    return {"table": table, "paths": report.write_learned_report(table, examples, Path(out_dir))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ppdnn.stages.learned_attacks", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=plan.PARAMS)
    parser.add_argument("--budgets", default=BUDGETS, help=f"the budgets file (default {BUDGETS})")
    parser.add_argument("--profile", required=True, help="whose budget")
    parser.add_argument("--data", required=True, help="ppdnn.data cache folder")
    parser.add_argument("--out", required=True, help="results folder, e.g. results/quick")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    def stage():
        params = plan.read(args.params)
        budget = read_budget(args.budgets, plan.profile_name(params, args.params, args.profile))
        if budget.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise plan.ParamsError(f"{args.budgets}: profile {args.profile!r} trains the learned attacks "
                                       "on a CUDA GPU and none is available here")
        configurations = ciphers.configurations(plan.cipher_entries(params, args.params))
        run(args.data, args.out, budget, plan.key_seed(params, args.params), configurations)

    return run_main(parser.prog, stage, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

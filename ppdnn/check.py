"""``python -m ppdnn.check``: check the whole of ``params.yaml`` at once.

Each stage checks only its own slice when it runs (``ppdnn.plan``); this checks every
slice together, including what only training can tell (each profile's settings make a
valid ``TrainConfig`` for every run) and what only the schemes can tell (each cipher
configuration's options are options of its scheme), and that every profile has a valid
budget in the learned attacks' budgets file.
"""
from __future__ import annotations

import argparse
import sys

from . import ciphers, errors, plan
from . import train as training
from .stages import learned_attacks


def check(params: dict, where: str = plan.PARAMS, budgets: str | None = learned_attacks.BUDGETS) -> plan.Plan:
    """Every slice of ``params`` (and each profile's budget in ``budgets``, unless None);
    returns the default profile's plan. ParamsError on a mistake."""
    data = params.get("data")
    if not isinstance(data, dict) or set(data) != {"source", "archive"}:
        raise plan.ParamsError(f"{where}: data needs exactly source and archive, got {data!r}")
    plan.key_seed(params, where)
    try:
        ciphers.configurations(plan.cipher_entries(params, where))
    except ValueError as exc:
        raise plan.ParamsError(f"{where}: ciphers: {errors.one_line(exc)}") from None
    the_plan = plan.Plan.from_params(params, None, where)
    for name in params["profiles"]:
        settings = plan.profile_train(params, name, where)
        for run in the_plan.runs:
            try:
                training.TrainConfig.from_recipe(**plan.train_settings(settings, run, the_plan.seeds[0]))
            except (TypeError, ValueError) as exc:
                raise plan.ParamsError(f"{where}: profiles.{name}.train with run {run.name!r}: "
                                       f"{errors.one_line(exc)}") from None
        if budgets is not None:
            learned_attacks.read_budget(budgets, name)
    return the_plan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=plan.PARAMS)
    parser.add_argument("--budgets", default=learned_attacks.BUDGETS, help="the learned attacks' budgets file")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    def body():
        the_plan = check(plan.read(args.params), args.params, args.budgets)
        print(f"{args.params}: ok ({len(the_plan.runs)} runs x {len(the_plan.seeds)} seeds, "
              f"profile {the_plan.profile})")

    return errors.run_main("ppdnn.check", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

"""Two side studies that train extra runs beside a profile's own (outside the pipeline).

- ``choices``: two choices made earlier on test accuracy, re-derived on the validation
  split only. Deviation 3 (BatchNorm and ReLU after the adaptation network's 1x1
  convolutions) and deviation 11 (the quick profile's peak learning rate and batch size)
  were chosen before the project had a validation split. Each alternative trains with the
  profile's settings otherwise unchanged and is compared with the profile's own runs of
  the same seeds on validation accuracy only; its test accuracy is recorded in its run
  files and never read.
- ``keys``: key-to-key variation. Every seed of a configuration shares one key (deviation
  10), so the tables' intervals are over training seeds only. This trains runs of the same
  seeds under a second key (``key_seed`` + 1: every configuration's key changes) and
  reports, paired by seed, how much test accuracy moves with the key, beside the seed sd.

    python -m ppdnn.studies choices --profile quick --runs-dir results/quick/runs --out results/quick/studies
    python -m ppdnn.studies keys --profile quick --runs-dir results/quick/runs --out results/quick/studies

Each extra run is resumable (its folder under ``--build`` is skipped once finished);
``--jobs`` runs train side by side, one thread each, as ``make reproduce`` does.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from . import ciphers, plan
from .errors import run_main
from .files import atomic_write
from .markdown import markdown_table

# decision -> (the profile's setting, [(run, alternative settings), ...])
DECISIONS = {
    "3: BatchNorm+ReLU in the adaptation network": (
        {"bn_relu": True},
        [("step23_adapt_cloud", {"bn_relu": False}), ("step2_adapt_cloud", {"bn_relu": False})]),
    "11: peak learning rate and batch size": (
        {"batch_size": 64, "lr": 0.05},
        [("plain", {"batch_size": 64, "lr": 0.1}), ("plain", {"batch_size": 64, "lr": 0.025}),
         ("plain", {"batch_size": 128, "lr": 0.1}), ("plain", {"batch_size": 32, "lr": 0.025})]),
}
# one run per scheme (cloud augmentation, no adaptation: where only the key differs)
KEY_RUNS = ("step2_cloud", "step23_cloud", "tanaka_cloud", "etc_cloud", "chaotic_rc4_cloud")
SEEDS = (0, 1)


def setting_name(setting: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items())


def variant_folder(run: str, setting: dict, seed: int, key_offset: int = 0) -> str:
    parts = [f"{k}{v}" for k, v in setting.items()] + ([f"key{key_offset}"] if key_offset else [])
    return f"{run}-{'-'.join(parts)}-s{seed}"


def train_variant(job: dict) -> dict:
    """Train one extra run (a worker process; one thread, as the profile's runs): the
    profile's run ``job["run"]`` with ``job["setting"]`` overriding its settings, and with
    the key of ``key_seed + job["key_offset"]`` (encrypted in memory) if the offset is set."""
    from .stages import train as train_stage

    out, published = Path(job["build"]) / job["folder"], Path(job["out"]) / "runs" / job["folder"]
    if (out / "metrics.json").is_file():  # finished earlier: resume (and publish it again)
        train_stage.publish(out, published)
        return json.loads((out / "metrics.json").read_text())
    params = plan.read(job["params"])
    the_plan = plan.Plan.from_params(params, job["profile"], job["params"])
    run = the_plan.run(job["run"])
    config = dataclasses.replace(train_stage.config_for(the_plan.train, run, job["seed"], job["params"]),
                                 **job["setting"])
    configuration = ciphers.configuration(run.cipher, plan.cipher_entries(params, job["params"], [run.cipher]))
    key_seed = plan.key_seed(params, job["params"]) + job["key_offset"]
    encrypted_dir = None if job["key_offset"] else Path(job["encrypted"]) / run.cipher
    return train_stage.train(config, configuration, job["data"], out, encrypted_dir,
                             metrics_dir=published, key_seed=key_seed,
                             extra={"profile": job["profile"], "run": run.name, "study": job["study"],
                                    "setting": job["setting"]})


def _train_all(jobs_list: list[dict], jobs: int) -> None:
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        list(pool.map(train_variant, jobs_list))


def _job(study, run, setting, seed, key_offset, where) -> dict:
    return {**where, "study": study, "run": run, "setting": setting, "seed": seed, "key_offset": key_offset,
            "folder": variant_folder(run, setting, seed, key_offset)}


def _check_profile_settings(the_plan: plan.Plan, where: str) -> None:
    """The profile's runs must use the setting each decision calls the profile's."""
    from .stages import train as train_stage

    for decision, (chosen, alternatives) in DECISIONS.items():
        for run in dict.fromkeys(r for r, _ in alternatives):
            config = train_stage.config_for(the_plan.train, the_plan.run(run), 0, where)
            actual = {k: getattr(config, k) for k in chosen}
            if actual != chosen:
                raise ValueError(f"decision {decision!r}: profile {the_plan.profile!r} runs {run} with "
                                 f"{actual}, not {chosen}; update ppdnn.studies.DECISIONS")


def read_metric(folder: Path, key: str) -> float:
    metrics = json.loads((Path(folder) / "metrics.json").read_text())
    value = metrics.get(key)
    if value is None:
        raise ValueError(f"{Path(folder) / 'metrics.json'} has no {key} (val_size 0?)")
    return float(value)


def choices(the_plan: plan.Plan, runs_dir, out_dir, where: dict, jobs: int = 2, seeds=SEEDS):
    """Train the alternatives, compare validation accuracy; write ``choices.csv`` and
    ``choices.md`` to ``out_dir``. Returns the table (a DataFrame)."""
    import pandas as pd

    _check_profile_settings(the_plan, where["params"])
    _train_all([_job("choices", run, setting, seed, 0, where) for _, alternatives in DECISIONS.values()
                for run, setting in alternatives for seed in seeds], jobs)
    rows = []
    for decision, (chosen, alternatives) in DECISIONS.items():
        for run in dict.fromkeys(r for r, _ in alternatives):
            rows += [{"decision": decision, "run": run, "setting": setting_name(chosen), "profile_setting": True,
                      "seed": seed, "val_acc": read_metric(Path(runs_dir) / the_plan.run(run).folder(seed), "val_acc")}
                     for seed in seeds]
        for run, setting in alternatives:
            rows += [{"decision": decision, "run": run, "setting": setting_name(setting), "profile_setting": False,
                      "seed": seed, "val_acc": read_metric(Path(out_dir) / "runs" / variant_folder(run, setting, seed),
                                                           "val_acc")}
                     for seed in seeds]
    table = pd.DataFrame(rows)
    _write(out_dir, "choices", table, choices_markdown(table))
    return table


def choices_markdown(table) -> str:
    """Per decision and run: each setting's mean validation accuracy over the seeds, its
    per-seed values, and which setting the validation split picks."""
    rows = []
    for (decision, run), part in table.groupby(["decision", "run"], sort=False):
        means = part.groupby("setting", sort=False)["val_acc"].mean()
        for setting, mean in means.items():
            seeds = part[part["setting"] == setting]
            rows.append({"decision": decision, "run": run,
                         "setting": setting + (" (the profile's)" if seeds["profile_setting"].iloc[0] else ""),
                         "val": f"{100 * mean:.2f}", "per_seed": ", ".join(f"{100 * v:.2f}" for v in seeds["val_acc"]),
                         "picked": "picked" if setting == means.idxmax() else ""})
    seeds = ", ".join(map(str, sorted(set(table["seed"]))))
    return (f"Validation accuracy (%) of each setting, seeds {seeds}, the profile's recipe otherwise "
            f"unchanged; the validation split picks the highest mean. Test accuracy is not used.\n\n"
            + markdown_table(rows, {"decision": "deviation", "run": "run", "setting": "setting",
                                    "val": "validation accuracy", "per_seed": "per seed", "picked": "validation picks"}))


def key_variation(the_plan: plan.Plan, runs_dir, out_dir, where: dict, jobs: int = 2, seeds=SEEDS):
    """Train ``KEY_RUNS`` under the second key; write ``keys.csv`` and ``keys.md``."""
    import pandas as pd

    _train_all([_job("keys", run, {}, seed, 1, where) for run in KEY_RUNS for seed in seeds], jobs)
    rows = []
    for run in KEY_RUNS:
        all_seeds = [read_metric(Path(runs_dir) / the_plan.run(run).folder(s), "test_acc") for s in the_plan.seeds]
        for seed in seeds:
            first = read_metric(Path(runs_dir) / the_plan.run(run).folder(seed), "test_acc")
            second = read_metric(Path(out_dir) / "runs" / variant_folder(run, {}, seed, 1), "test_acc")
            rows.append({"run": run, "seed": seed, "test_acc_key0": first, "test_acc_key1": second,
                         "key_difference": second - first,
                         "seed_sd": float(pd.Series(all_seeds).std()), "profile_seeds": len(all_seeds)})
    table = pd.DataFrame(rows)
    _write(out_dir, "keys", table, keys_markdown(table))
    return table


def keys_markdown(table) -> str:
    """Per run: the key-to-key difference of test accuracy, paired by seed, beside the sd
    of test accuracy over the profile's seeds under the first key."""
    rows = []
    for run, part in table.groupby("run", sort=False):
        diffs = part["key_difference"] * 100
        sd = 100 * part["seed_sd"].iloc[0]
        rows.append({"run": run, "diffs": ", ".join(f"{d:+.2f}" for d in diffs),
                     "mean_abs": f"{diffs.abs().mean():.2f}", "seed_sd": f"{sd:.2f}",
                     "pair_sd": f"{math.sqrt(2) * sd:.2f}"})
    seeds = ", ".join(map(str, sorted(set(table["seed"]))))
    return (f"Test accuracy under a second key (key_seed + 1) minus under the profile's key, in pp, "
            f"same training seed ({seeds}); beside it the sd of test accuracy over the profile's "
            f"{int(table['profile_seeds'].iloc[0])} seeds under its key, and √2 times it: the sd of "
            f"a difference of two runs if the key changed nothing.\n\n"
            + markdown_table(rows, {"run": "run", "diffs": "second key − first key, per seed (pp)",
                                    "mean_abs": "mean |difference| (pp)", "seed_sd": "seed sd (pp)",
                                    "pair_sd": "√2 × seed sd (pp)"}))


def _write(out_dir, name: str, table, markdown: str) -> None:
    atomic_write(Path(out_dir) / f"{name}.csv", lambda f: table.to_csv(f, index=False))
    atomic_write(Path(out_dir) / f"{name}.md", lambda f: f.write(markdown.encode()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.studies", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=("choices", "keys"))
    parser.add_argument("--params", default=plan.PARAMS)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--runs-dir", required=True, help="the profile's run results")
    parser.add_argument("--out", required=True, help="where the study's .csv, .md and runs go")
    parser.add_argument("--build", default=None, help="checkpoints of the extra runs (default build/<profile>/studies)")
    parser.add_argument("--data", default="data/cifar10")
    parser.add_argument("--encrypted", default="build/encrypted")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive int, got {args.jobs}")

    def body():
        the_plan = plan.Plan.from_params(plan.read(args.params), args.profile, args.params)
        where = {"profile": the_plan.profile, "params": args.params, "data": args.data, "encrypted": args.encrypted,
                 "build": args.build or f"build/{the_plan.profile}/studies", "out": args.out}
        study, writer = (choices, choices_markdown) if args.study == "choices" else (key_variation, keys_markdown)
        print(writer(study(the_plan, args.runs_dir, args.out, where, args.jobs)))

    return run_main("ppdnn.studies", body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

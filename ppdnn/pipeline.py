"""Glue between params.yaml, the DVC stages and the notebooks.

Every DVC stage runs ``python -m ppdnn.pipeline <stage> ...`` with its input and output
paths as arguments: paths live in ``dvc.yaml`` only. This is the only module that reads
``params.yaml``. It checks the whole file once (:func:`load_params`), resolves a profile
into one training configuration (:func:`train_config`), checks inputs and outputs, and
only then starts a notebook, handing it one mapping of parameters (papermill ``-f``).
Every failure is one line on stderr (``--debug`` or PPDNN_DEBUG=1 for the traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

from . import augment, ciphers, data, errors, gpus, models, train
from .files import atomic_write, check_writable, replace_dir, scratch_dir

TOP_LEVEL = ("profile", "seeds", "key_seed", "data", "profiles", "ciphers", "runs")
PROFILE_KEYS = ("security_images", "train")   # train: a recipe plus TrainConfig settings
RUN_KEYS = ("name", "cipher", "adaptation", "augment")


class ParamsError(errors.PpdnnError):
    """params.yaml is missing, malformed, or names something that does not exist."""


# ---------------------------------------------------------------- params
def read_params(path: str | os.PathLike = "params.yaml") -> dict:
    """params.yaml, parsed and checked; every problem raises ParamsError naming the key."""
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path} not found: run from the repository root or pass --params") from None
    except IsADirectoryError:
        raise ParamsError(f"{path} is a folder, not a params file") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML ({errors.one_line(exc)})") from None
    return check_params(params, path)


def check_params(params, where="params.yaml") -> dict:
    def need(ok, message):
        if not ok:
            raise ParamsError(f"{where}: {message}")
    need(isinstance(params, dict), "must be a mapping")
    need(not (missing := [k for k in TOP_LEVEL if k not in params]), f"missing keys {missing}")
    need(not (unknown := sorted(set(params) - set(TOP_LEVEL))), f"unknown keys {unknown}; known: {TOP_LEVEL}")
    seeds = params["seeds"]
    need(isinstance(seeds, list) and seeds and all(_is_seed(s) for s in seeds) and len(set(seeds)) == len(seeds),
         f"seeds must be a list of distinct non-negative ints, got {seeds!r}")
    need(_is_seed(params["key_seed"]), f"key_seed must be a non-negative int, got {params['key_seed']!r}")
    need(isinstance(params["profiles"], dict) and params["profiles"], "profiles must be a mapping")
    need(params["profile"] in params["profiles"],
         f"profile {params['profile']!r} is not defined; profiles: {sorted(params['profiles'])}")
    for name in params["profiles"]:
        profile_settings(params, name, where)
    known = [c.name for c in ciphers.configurations()]
    need(isinstance(params["ciphers"], list) and params["ciphers"], "ciphers must be a list of names")
    need(not (bad := [c for c in params["ciphers"] if c not in known]),
         f"unknown cipher configurations {bad}; the registered ones are {known}")
    need(isinstance(params["runs"], list) and params["runs"], "runs must be a list")
    names = []
    for run in params["runs"]:
        need(isinstance(run, dict) and set(run) == set(RUN_KEYS), f"each run needs exactly {RUN_KEYS}, got {run!r}")
        need(run["cipher"] in params["ciphers"], f"run {run['name']!r}: cipher {run['cipher']!r} is not under ciphers")
        need(run["adaptation"] in models.ADAPTATIONS,
             f"run {run['name']!r}: adaptation {run['adaptation']!r} is not one of {models.ADAPTATIONS}")
        need(run["augment"] in augment.SITES, f"run {run['name']!r}: augment {run['augment']!r} is not one of {augment.SITES}")
        names.append(run["name"])
    need(len(set(names)) == len(names), "run names must be distinct")
    return params


def _is_seed(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def profile_settings(params: dict, profile: str, where="params.yaml") -> dict:
    """The profile's settings; its ``train`` mapping must make a valid TrainConfig."""
    profiles = params.get("profiles") or {}
    if profile not in profiles:
        raise ParamsError(f"unknown profile {profile!r}; {where} defines {sorted(profiles)}")
    settings = profiles[profile]
    if not isinstance(settings, dict) or set(settings) != set(PROFILE_KEYS):
        raise ParamsError(f"{where}: profile {profile!r} needs exactly the keys {PROFILE_KEYS}, "
                          f"got {sorted(settings) if isinstance(settings, dict) else settings!r}")
    try:
        train_config(params, profile, adaptation="none", augment="cloud", seed=0)
    except ValueError as exc:
        raise ParamsError(f"{where}: profile {profile!r}: {exc}") from None
    return settings


def train_config(params: dict, profile: str, adaptation: str, augment: str, seed: int) -> train.TrainConfig:
    """The one training configuration of a run: the profile's recipe and settings, the run's
    adaptation and augmentation site, the seed. Unknown settings raise ValueError."""
    settings = dict(params["profiles"][profile]["train"] or {})
    recipe = settings.pop("recipe", "paper")
    return train.TrainConfig.from_recipe(recipe, **settings, adaptation=adaptation, augment=augment, seed=seed)


def require_device(device: str, profile: str) -> None:
    """GPU profiles refuse to start without CUDA rather than train for weeks on a CPU."""
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise ParamsError(f"profile {profile!r} needs a CUDA GPU and none is available here. "
                              "Use `dvc exp run -S profile=quick` (CPU) or `-S profile=smoke`.")


def run_notebook(notebook: str, executed: Path, parameters: dict) -> None:
    """Execute ``notebook`` with ``parameters`` (written beside the executed copy) via papermill.

    A failing cell becomes one line naming the notebook, the cell's error and where the
    executed notebook (with the traceback) was kept.
    """
    import papermill

    executed = Path(executed)
    params_file = executed.with_suffix(".yaml")
    atomic_write(params_file, lambda f: f.write(yaml.safe_dump(parameters, sort_keys=False).encode()))
    try:
        papermill.execute_notebook(notebook, str(executed), parameters=parameters,
                                   progress_bar=False, log_output=True, cwd=None)
    except papermill.PapermillExecutionError as exc:
        raise errors.PpdnnError(f"{notebook} failed in cell {exc.exec_count}: {exc.ename}: "
                                f"{errors.one_line(RuntimeError(exc.evalue))} (executed notebook: {executed})") from None


# ---------------------------------------------------------------- stages
def data_stage(args) -> None:
    check_writable(args.out)
    manifest = data.prepare(source=args.source, archive=args.archive, root=args.root, cache_dir=args.out)
    print(json.dumps({k: v for k, v in manifest.items() if k != "splits"}, indent=2))


def encrypt_stage(args) -> None:
    """Encrypt the cached training and test sets with the configuration's key.

    Everything is written to a scratch folder first and moved into place at the end, so a
    crash never leaves a key without its data; an existing output folder is replaced only
    if ppdnn wrote it (``files.replace_dir``), and never the plain cache itself.
    """
    data_dir, out = Path(args.data).resolve(), Path(args.out).resolve()
    if out == data_dir or data_dir in out.parents or out in data_dir.parents:
        raise ValueError(f"--out {args.out} would overwrite the plain data in --data {args.data}; "
                         "choose a separate folder")
    ciphers.configuration(args.cipher)  # unknown names fail before any work
    check_writable(out.parent)
    arrays = data.load(args.data)
    cipher = ciphers.make_for_configuration(args.cipher, args.key_seed, shape=arrays["train_images"].shape[1:3])
    scratch = scratch_dir(out)
    for split in data.SPLITS:
        np.savez(scratch / f"{split}.npz", images=cipher.encrypt(arrays[f"{split}_images"]),
                 labels=arrays[f"{split}_labels"], key_fingerprint=np.array(cipher.fingerprint))
    cipher.save(scratch / "key.json")
    replace_dir(scratch, out, made_by=f"the encrypt stage ({args.cipher})")
    print(f"encrypted {args.data} with {cipher.label} key {cipher.fingerprint} -> {args.out}")


def train_stage(args) -> None:
    params = read_params(args.params)
    profile_settings(params, args.profile)
    if args.cipher not in params["ciphers"]:
        raise ParamsError(f"unknown cipher configuration {args.cipher!r}; {args.params} lists {params['ciphers']}")
    config = train_config(params, args.profile, args.adaptation, args.augment, args.seed)
    data.read_manifest(args.data)
    if not Path(args.encrypted).is_dir():
        raise FileNotFoundError(f"--encrypted {args.encrypted} does not exist: run `dvc repro encrypt@{args.cipher}`")
    for folder in (args.out, args.metrics):
        check_writable(folder)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    parameters = {
        "config": config.to_dict(), "data_dir": args.data, "encrypted_dir": args.encrypted,
        "cipher": args.cipher, "key_seed": int(params["key_seed"]), "out_dir": args.out,
        "metrics_dir": args.metrics,
        "extra": {"profile": args.profile, "run": args.run, "cipher": args.cipher},
    }
    # PPDNN_GPU_LOCKS=<dir>: on a multi-GPU node each queued job takes one free GPU
    # (CUDA_VISIBLE_DEVICES, inherited by the notebook's kernel); otherwise nothing changes
    with gpus.gpu_for_job():
        require_device(config.device, args.profile)
        run_notebook("notebooks/train.ipynb", Path(args.out) / "train.ipynb", parameters)


def tables_stage(args) -> None:
    """Tables 2-3 and the claims over the current runs and seeds (not stale ones)."""
    params = read_params(args.params)
    profile_settings(params, args.profile)
    check_writable(args.out)
    run_notebook("notebooks/tables.ipynb", Path(args.executed), {
        "profile": args.profile, "runs_dir": args.runs, "out_dir": args.out,
        "runs": [r["name"] for r in params["runs"]], "seeds": [int(s) for s in params["seeds"]]})


def security_stage(args) -> None:
    params = read_params(args.params)
    settings = profile_settings(params, args.profile)
    data.read_manifest(args.data)
    check_writable(args.out)
    run_notebook("notebooks/security.ipynb", Path(args.executed), {
        "data_dir": args.data, "n_images": int(settings["security_images"]),
        "key_seed": int(params["key_seed"]), "out_dir": args.out})


def figures_stage(args) -> None:
    params = read_params(args.params)
    check_writable(args.out)
    run_notebook("notebooks/encryption_figures.ipynb", Path(args.executed), {
        "cache_dir": args.data, "key_seed": int(params["key_seed"]), "out_dir": args.out})


def key_space_stage(args) -> None:
    check_writable(args.out)
    run_notebook("notebooks/key_space.ipynb", Path(args.executed), {"out_dir": args.out})


def readme_stage(args) -> None:
    """Copy the included results files into the README (its tables are never typed by hand)."""
    from . import tables
    for source in tables.update_readme(args.readme):
        print(f"{args.readme}: included {source}")


def store_check_outputs(notebook) -> None:
    """Execute a notebook with its default parameters and keep only the outputs that nbval
    checks (cells marked ``# NBVAL_CHECK_OUTPUT``); everything else is stored clean.

    nbval compares a checked cell with its stored output, so those outputs must be committed;
    the rest (figures, progress bars) would only bloat git.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(notebook)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=1800, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT"):
            cell.outputs = []
            cell.execution_count = None  # nbval refuses outputs of a cell that never ran
        cell.metadata.pop("execution", None)
    nb.metadata.pop("papermill", None)
    nbformat.write(nb, path)


def store_outputs_stage(args) -> None:
    for notebook in args.notebooks:
        store_check_outputs(notebook)


# ---------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="step", required=True)

    def stage(name, func, help, *paths):
        p = sub.add_parser(name, help=help)
        for path in paths:
            p.add_argument(f"--{path}", required=True)
        p.set_defaults(func=func)
        return p

    p = stage("data", data_stage, "CIFAR-10 into a cache folder (the data stage)", "out")
    p.add_argument("--source", default="auto", choices=("auto", "archive", "torchvision"))
    p.add_argument("--archive", default=None)
    p.add_argument("--root", default="data/raw", help="where torchvision keeps its download")
    p = stage("encrypt", encrypt_stage, "encrypt the cache with one configuration's key", "data", "out", "cipher")
    p.add_argument("--key-seed", type=int, required=True)
    p = stage("train", train_stage, "execute notebooks/train.ipynb for one run and seed",
              "profile", "run", "cipher", "adaptation", "augment", "data", "encrypted", "out", "metrics")
    p.add_argument("--seed", type=int, required=True)
    stage("tables", tables_stage, "Tables 2-3 and the claims", "profile", "runs", "out", "executed")
    stage("security", security_stage, "the published attacks", "profile", "data", "out", "executed")
    stage("figures", figures_stage, "the encryption figures", "data", "out", "executed")
    stage("key-space", key_space_stage, "the key-space table", "out", "executed")
    p = sub.add_parser("readme", help="copy the results files the README includes into it")
    p.add_argument("--readme", default="README.md")
    p.set_defaults(func=readme_stage)
    p = sub.add_parser("store-outputs", help="execute notebooks, keep the outputs nbval checks")
    p.add_argument("notebooks", nargs="+")
    p.set_defaults(func=store_outputs_stage)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return errors.run_main(f"ppdnn.pipeline {args.step}", lambda: args.func(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

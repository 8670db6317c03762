"""Glue between params.yaml, the DVC stages and the notebooks.

Every DVC stage calls ``python -m ppdnn.pipeline <step>`` or papermill. This is the only
module that reads ``params.yaml``: it resolves the active profile into the plain
parameters a notebook takes, so notebooks and the rest of the package stay independent
of the pipeline.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from . import ciphers, data

PROFILE_KEYS = ("device", "recipe", "width", "epochs", "batch_size", "train_subset",
                "test_subset", "security_images")


# ---------------------------------------------------------------- params
def read_params(path: str | os.PathLike = "params.yaml") -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def profile_settings(params: dict, profile: str) -> dict:
    profiles = params.get("profiles", {})
    if profile not in profiles:
        raise ValueError(f"unknown profile {profile!r}; params.yaml defines {sorted(profiles)}")
    settings = profiles[profile]
    unknown = set(settings) - set(PROFILE_KEYS)
    if unknown:
        raise ValueError(f"profile {profile!r} has unknown keys {sorted(unknown)}; known: {PROFILE_KEYS}")
    return settings


def require_device(device: str, profile: str) -> None:
    """GPU profiles refuse to start without CUDA rather than train for weeks on a CPU."""
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise SystemExit(f"profile {profile!r} needs a CUDA GPU and none is available here. "
                             "Use `dvc exp run -S profile=quick` (CPU) or `-S profile=smoke`.")


def parse_bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def write_yaml(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def papermill(notebook: str, executed: Path, params_file: Path) -> None:
    executed.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "papermill", "--no-progress-bar", "--log-output",
           notebook, str(executed), "-f", str(params_file)]
    subprocess.run(cmd, check=True)


# ---------------------------------------------------------------- stages
def encrypt_dataset(data_dir, out_dir, scheme: str, shuffle: bool, key_seed: int) -> None:
    """Encrypt the cached training and test sets with one key; write them and the key.

    Everything goes to a temporary folder first that is renamed at the end, so a crash
    never leaves a key without its data or data without its key.
    """
    arrays = data.load(data_dir)
    cipher = ciphers.make(scheme, shape=arrays["train_images"].shape[1:3], shuffle=shuffle, seed=key_seed)
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for split in data.SPLITS:
            np.savez(tmp / f"{split}.npz", images=cipher.encrypt(arrays[f"{split}_images"]),
                     labels=arrays[f"{split}_labels"])
        cipher.save(tmp / "key.json")
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def train_parameters(params: dict, profile: str, run: str, cipher: str, adaptation: str,
                     augment: str, seed: int) -> dict:
    """The papermill parameters of notebooks/train.ipynb for one run of the pipeline."""
    settings = profile_settings(params, profile)
    if cipher not in params["ciphers"]:
        raise ValueError(f"unknown cipher configuration {cipher!r}; params.yaml defines {sorted(params['ciphers'])}")
    scheme = params["ciphers"][cipher]
    name = f"{run}-s{seed}"
    return {
        "data_dir": "data/cifar10",
        "encrypted_dir": f"build/encrypted/{cipher}",
        "scheme": scheme["scheme"],
        "shuffle": bool(scheme["shuffle"]),
        "key_seed": int(params["key_seed"]),
        "adaptation": adaptation,
        "augment": augment,
        "recipe": settings["recipe"],
        "width": int(settings["width"]),
        "train_subset": int(settings["train_subset"]),
        "test_subset": int(settings["test_subset"]),
        "epochs": int(settings["epochs"]),
        "batch_size": int(settings["batch_size"]),
        "seed": int(seed),
        "device": settings["device"],
        "out_dir": f"build/{profile}/runs/{name}",
        "metrics_dir": f"results/{profile}/runs/{name}",
        "extra": {"profile": profile, "run": run, "cipher": cipher},
    }


def train_stage(args) -> None:
    params = read_params(args.params)
    nb = train_parameters(params, args.profile, args.run, args.cipher, args.adaptation,
                          args.augment, args.seed)
    require_device(nb["device"], args.profile)
    out_dir = Path(nb["out_dir"])
    write_yaml(out_dir / "parameters.yaml", nb)
    papermill("notebooks/train.ipynb", out_dir / "train.ipynb", out_dir / "parameters.yaml")


def security_stage(args) -> None:
    params = read_params(args.params)
    settings = profile_settings(params, args.profile)
    nb = {"data_dir": "data/cifar10", "n_images": int(settings["security_images"]),
          "key_seed": int(params["key_seed"]), "out_dir": f"results/{args.profile}"}
    executed = Path(f"build/{args.profile}/notebooks/security.ipynb")
    write_yaml(executed.with_suffix(".yaml"), nb)
    papermill("notebooks/security.ipynb", executed, executed.with_suffix(".yaml"))


def tables_stage(args) -> None:
    """notebooks/tables.ipynb over the current profile's runs and seeds (not stale ones)."""
    params = read_params(args.params)
    nb = {"profile": args.profile, "runs_dir": f"results/{args.profile}/runs",
          "out_dir": f"results/{args.profile}", "runs": [r["name"] for r in params["runs"]],
          "seeds": [int(s) for s in params["seeds"]]}
    executed = Path(f"build/{args.profile}/notebooks/tables.ipynb")
    write_yaml(executed.with_suffix(".yaml"), nb)
    papermill("notebooks/tables.ipynb", executed, executed.with_suffix(".yaml"))


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


# ---------------------------------------------------------------- command line
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.pipeline", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    sub = parser.add_subparsers(dest="step", required=True)

    p = sub.add_parser("data", help="CIFAR-10 into data/cifar10 (the data stage)")
    p.add_argument("--source", default="auto", choices=("auto", "archive", "torchvision"))
    p.add_argument("--archive", default=None)
    p.add_argument("--root", default="data/raw", help="where torchvision keeps its download")
    p.add_argument("--out", default="data/cifar10")

    p = sub.add_parser("encrypt", help="encrypt the cached data set with one key (an encrypt stage)")
    p.add_argument("--data", default="data/cifar10")
    p.add_argument("--out", required=True)
    p.add_argument("--scheme", required=True, choices=ciphers.SCHEMES)
    p.add_argument("--shuffle", type=parse_bool, default=False)
    p.add_argument("--key-seed", type=int, required=True)

    p = sub.add_parser("train", help="execute notebooks/train.ipynb for one run (a train stage)")
    for name in ("profile", "run", "cipher", "adaptation", "augment"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--seed", type=int, required=True)

    p = sub.add_parser("security", help="execute notebooks/security.ipynb for a profile")
    p.add_argument("--profile", required=True)

    p = sub.add_parser("tables", help="execute notebooks/tables.ipynb for a profile")
    p.add_argument("--profile", required=True)

    p = sub.add_parser("store-outputs", help="execute notebooks, keep the outputs nbval checks")
    p.add_argument("notebooks", nargs="+")

    args = parser.parse_args(argv)
    if args.step == "data":
        manifest = data.prepare(source=args.source, archive=args.archive, root=args.root, cache_dir=args.out)
        print(json.dumps({k: v for k, v in manifest.items() if k != "splits"}, indent=2))
    elif args.step == "encrypt":
        encrypt_dataset(args.data, args.out, args.scheme, args.shuffle, args.key_seed)
    elif args.step == "train":
        train_stage(args)
    elif args.step == "security":
        security_stage(args)
    elif args.step == "tables":
        tables_stage(args)
    elif args.step == "store-outputs":
        for notebook in args.notebooks:
            store_check_outputs(notebook)


if __name__ == "__main__":
    main()

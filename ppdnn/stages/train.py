"""The train stage: one run of Tables 2-3 and one seed, on its encrypt stage's data set.

``train`` is the whole stage as a function (what ``dvc.yaml``, ``notebooks/train.ipynb``
and ``onepass`` call); ``main`` reads this run's slice of ``params.yaml`` through the plan.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from pathlib import Path

import torch

from .. import ciphers, data, encrypted, errors, plan
from .. import train as training
from ..augment import Augmentation
from ..files import atomic_write

PUBLISHED = (training.METRICS, training.RUN_INFO, training.EPOCHS_CSV)  # the committed part of a run


def dataset(config: training.TrainConfig, configuration: ciphers.Configuration, data_dir,
            encrypted_dir=None, key_seed: int = 0) -> tuple[training.Dataset, dict]:
    """What a run trains on, and its provenance: the encrypt stage's data set in
    ``encrypted_dir`` (checked against ``configuration``), or without one the cache
    encrypted in memory with ``configuration``'s key for ``key_seed``. The plain training
    images are loaded only where the client augments (``Augmentation``)."""
    client = Augmentation.reads_plain(config.augment)
    plain = data.load(data_dir) if (client or encrypted_dir is None) else None
    if encrypted_dir is not None:
        sets = encrypted.read(encrypted_dir, configuration)
        info = {"encrypted_dir": str(encrypted_dir)}
    else:
        key = ciphers.make_for_configuration(configuration, key_seed, shape=plain["train_images"].shape[1:3])
        sets = {"cipher": key, **{f"{s}_images": key.encrypt(plain[f"{s}_images"]) for s in data.SPLITS},
                **{f"{s}_labels": plain[f"{s}_labels"] for s in data.SPLITS}}
        info = {"key_seed": int(key_seed)}
    images, labels, key = Augmentation.training_images(config.augment, plain, sets)
    manifest = plain["manifest"] if plain is not None else data.read_manifest(data_dir)
    info.update(cipher=configuration.name, scheme=configuration.scheme, data_source=manifest["source"],
                key_fingerprint=sets["cipher"].fingerprint)
    return training.Dataset(images, labels, sets["test_images"], sets["test_labels"], key, data.CLASSES), info


def train(config: training.TrainConfig, configuration: ciphers.Configuration, data_dir, out_dir,
          encrypted_dir=None, metrics_dir=None, key_seed: int = 0, extra: dict | None = None,
          progress: bool = False) -> dict:
    """Train and evaluate one run; its results (``train.run``'s), also copied to ``metrics_dir``."""
    run_data, info = dataset(config, configuration, data_dir, encrypted_dir, key_seed)
    results = training.run(config, run_data, out_dir, extra={**info, **(extra or {})}, progress=progress)
    if metrics_dir is not None:
        publish(out_dir, metrics_dir)
    return results


def publish(out_dir, metrics_dir) -> list[Path]:
    """Copy a run's metrics.json, run.json and epochs.csv to ``metrics_dir``, each atomically."""
    written = []
    for name in PUBLISHED:
        payload = (Path(out_dir) / name).read_bytes()
        written.append(atomic_write(Path(metrics_dir) / name, lambda f, p=payload: f.write(p)))
    return written


def require_device(device: str, profile: str) -> None:
    """GPU profiles refuse to start without CUDA rather than train for weeks on a CPU."""
    if device == "cuda" and not torch.cuda.is_available():
        raise plan.ParamsError(f"profile {profile!r} needs a CUDA GPU and none is available here. "
                               "Use `dvc exp run -S profile=quick` (CPU) or `-S profile=smoke`.")


def config_for(train_settings: dict, run: plan.Run, seed: int, where: str) -> training.TrainConfig:
    """The run's TrainConfig from its profile's ``train`` settings; a bad setting is a
    ParamsError naming where it came from."""
    try:
        return training.TrainConfig.from_recipe(**plan.train_settings(train_settings, run, seed))
    except (TypeError, ValueError) as exc:
        raise plan.ParamsError(f"{where}: {errors.one_line(exc)}") from None


def _gpu_lock():
    # PPDNN_GPU_LOCKS=<dir>: on a multi-GPU node each queued job takes one free GPU. Which
    # GPU runs a job changes no result, so ppdnn.gpus is imported by name and is not a
    # dependency of this stage.
    if os.environ.get("PPDNN_GPU_LOCKS"):
        return importlib.import_module("ppdnn.gpus").gpu_for_job()
    return contextlib.nullcontext()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.stages.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=plan.PARAMS, help="reads profiles.<profile>.train and ciphers.<cipher>")
    for name in ("profile", "run", "cipher", "adaptation", "augment", "data", "encrypted", "out", "metrics"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    def stage():
        # the run's fields come on the command line (DVC tracks the command), so a train
        # stage depends on its own run only, not on the list of runs or seeds
        params = plan.read(args.params)
        run = plan.Run(args.run, args.cipher, args.adaptation, args.augment)
        where = f"{args.params}: profiles.{args.profile}.train"
        config = config_for(plan.profile_train(params, plan.profile_name(params, args.params, args.profile)),
                            run, args.seed, where)
        configuration = ciphers.configuration(run.cipher, plan.cipher_entries(params, args.params, [run.cipher]))
        require_device(config.device, args.profile)
        with _gpu_lock():
            results = train(config, configuration, args.data, args.out, args.encrypted, args.metrics,
                            extra={"profile": args.profile, "run": run.name})
        print(f"{run.name} seed {args.seed}: test accuracy {results['test_acc']:.4f} "
              f"({results['wall_time_s']:.0f} s, {results['device']}, {results['dtype']})")

    return errors.run_main("ppdnn.stages.train", stage, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

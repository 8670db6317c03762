"""One table row end to end: data, key, encryption, then ``train.run`` (used by notebooks/train.ipynb).

The encrypted data set comes either from the pipeline's encrypt stage (``encrypted_dir``
holding ``train.npz`` / ``test.npz`` with arrays ``images``, ``labels`` and ``key.json``)
or is made in memory from the CIFAR-10 cache with a seeded key.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from . import ciphers, data, train
from .files import atomic_write


def load_encrypted(encrypted_dir) -> dict:
    """The encrypt stage's output: encrypted train/test arrays and the key (a cipher)."""
    encrypted_dir = Path(encrypted_dir)
    out = {"cipher": ciphers.load(encrypted_dir / "key.json")}
    for split in data.SPLITS:
        path = encrypted_dir / f"{split}.npz"
        try:
            with np.load(path) as npz:
                out[f"{split}_images"], out[f"{split}_labels"] = npz["images"], npz["labels"]
        except FileNotFoundError:
            raise FileNotFoundError(f"no encrypted {split} set: {path} does not exist") from None
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"{path}: missing or corrupt encrypted data ({type(exc).__name__}: {exc})") from None
    return out


def inputs_for(augment: str, plain: dict | None, encrypted: dict) -> dict:
    """What ``train.run`` takes for an augmentation site.

    client: plain training images + the key (each augmented batch is encrypted on the
    device); cloud/none: the encrypted training images, no key. Test images: encrypted.
    """
    client = augment == "client"
    if client and plain is None:
        raise ValueError("augmentation in the client needs the plain training images")
    source = plain if client else encrypted
    return {"train_images": source["train_images"], "train_labels": source["train_labels"],
            "test_images": encrypted["test_images"], "test_labels": encrypted["test_labels"],
            "cipher": encrypted["cipher"] if client else None}


def train_configuration(*, data_dir="data/cifar10", archive=None, encrypted_dir=None,
                        scheme="pixel", shuffle=False, key_seed=0, adaptation="none",
                        bn_relu=None, augment="cloud", recipe="paper", width=None,
                        train_subset=None, test_subset=None, epochs=None, batch_size=None,
                        seed=0, device="auto", out_dir="build/train", extra=None,
                        progress=True) -> dict:
    """Train and evaluate one configuration; returns ``train.run``'s metrics.

    ``None`` for ``bn_relu``, ``width``, ``epochs`` or ``batch_size`` keeps the recipe's
    (or the model's) default. Without ``encrypted_dir`` the key is
    ``ciphers.make(scheme, shuffle=shuffle, seed=key_seed)`` and encryption happens in memory.
    """
    need_plain = encrypted_dir is None or augment == "client"
    plain = data.load_or_prepare(data_dir, source="auto", archive=archive) if need_plain else None
    if encrypted_dir is not None:
        encrypted = load_encrypted(encrypted_dir)
        data_info = {"encrypted_dir": str(encrypted_dir)}
    else:
        cipher = ciphers.make(scheme, shuffle=shuffle, seed=key_seed)
        encrypted = {"cipher": cipher, "train_labels": plain["train_labels"],
                     "test_images": cipher.encrypt(plain["test_images"]),
                     "test_labels": plain["test_labels"]}
        if augment != "client":
            encrypted["train_images"] = cipher.encrypt(plain["train_images"])
        data_info = {"scheme": scheme, "shuffle": shuffle, "key_seed": key_seed}
    # the data source (canonical or JPEG copy) goes with every result
    data_info["data_source"] = (plain["manifest"] if plain is not None else data.read_manifest(data_dir))["source"]
    overrides = {k: v for k, v in dict(bn_relu=bn_relu, width=width, epochs=epochs,
                                       batch_size=batch_size).items() if v is not None}
    config = train.TrainConfig.from_recipe(recipe, adaptation=adaptation, augment=augment,
                                           train_subset=train_subset, test_subset=test_subset,
                                           seed=seed, device=device, **overrides)
    return train.run(config, **inputs_for(augment, plain, encrypted), out_dir=out_dir,
                     extra={**data_info, **(extra or {})}, class_names=data.CLASSES,
                     progress=progress)


def publish(out_dir, metrics_dir, figure=None) -> list[Path]:
    """Copy a run's ``metrics.json`` and ``epochs.csv`` (and the learning-curve figure) to
    ``metrics_dir``, the small, committed part of the results; each file written atomically."""
    out_dir, metrics_dir = Path(out_dir), Path(metrics_dir)
    written = []
    for name in (train.METRICS, train.EPOCHS_CSV):
        payload = (out_dir / name).read_bytes()
        atomic_write(metrics_dir / name, lambda f: f.write(payload))
        written.append(metrics_dir / name)
    if figure is not None:
        path = metrics_dir / "learning_curves.png"
        atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=120))
        written.append(path)
    return written

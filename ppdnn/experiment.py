"""One table row end to end: the data set as the configuration needs it, then ``train.run``.

What ``notebooks/train.ipynb`` calls. The encrypted data set comes from the pipeline's
encrypt stage (a folder with ``train.npz`` / ``test.npz`` holding ``images`` and
``labels``, and ``key.json``), or, without one, is made in memory from the CIFAR-10 cache
with the key of a named cipher configuration (``ciphers.make_for_configuration``).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from . import ciphers, data, tables, train
from .files import atomic_write

ENCRYPTED_FILES = ("train.npz", "test.npz", "key.json")


def load_encrypted(encrypted_dir) -> dict:
    """The encrypt stage's output: encrypted train/test arrays and the key (a cipher)."""
    encrypted_dir = Path(encrypted_dir)
    if not encrypted_dir.is_dir():
        raise FileNotFoundError(f"no encrypted data set in {encrypted_dir}: run its encrypt stage "
                                "(`dvc repro encrypt@<cipher>`)")
    out = {"cipher": ciphers.load(encrypted_dir / "key.json")}
    for split in data.SPLITS:
        path = encrypted_dir / f"{split}.npz"
        try:
            with np.load(path, allow_pickle=False) as npz:
                out[f"{split}_images"], out[f"{split}_labels"] = npz["images"], npz["labels"]
                fingerprint = str(npz["key_fingerprint"]) if "key_fingerprint" in npz.files else None
        except FileNotFoundError:
            raise FileNotFoundError(f"no encrypted {split} set: {path} does not exist") from None
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"{path}: missing or corrupt encrypted data ({type(exc).__name__}: {exc})") from None
        if fingerprint != out["cipher"].fingerprint:
            raise ValueError(f"{path} was not encrypted with {encrypted_dir / 'key.json'} "
                             f"(key fingerprint {fingerprint} vs {out['cipher'].fingerprint}); rerun its encrypt stage")
    return out


def encrypt_in_memory(plain: dict, cipher) -> dict:
    """Encrypted train/test arrays of the plain cache (what the encrypt stage writes)."""
    return {"cipher": cipher,
            **{f"{split}_images": cipher.encrypt(plain[f"{split}_images"]) for split in data.SPLITS},
            **{f"{split}_labels": plain[f"{split}_labels"] for split in data.SPLITS}}


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


def train_configuration(config: dict | train.TrainConfig, *, data_dir="data/cifar10",
                        encrypted_dir=None, cipher: str = "pixel", key_seed: int = 0,
                        archive=None, out_dir="build/train", extra: dict | None = None,
                        progress: bool = True) -> dict:
    """Train and evaluate one configuration; returns ``train.run``'s metrics.

    ``config``: a ``TrainConfig`` or the mapping the pipeline resolves from a profile
    (``recipe`` plus any ``TrainConfig`` keys). ``encrypted_dir``: the encrypt stage's
    output; without it the key of cipher configuration ``cipher`` (e.g. ``pixel_shuffle``)
    for ``key_seed`` encrypts the cache in memory. ``archive`` builds the cache if missing.
    """
    if not isinstance(config, train.TrainConfig):
        settings = dict(config)
        config = train.TrainConfig.from_recipe(settings.pop("recipe", "paper"), **settings)
    need_plain = encrypted_dir is None or config.augment == "client"
    plain = data.load_or_prepare(data_dir, source="auto", archive=archive) if need_plain else None
    if encrypted_dir is not None:
        encrypted = load_encrypted(encrypted_dir)
        data_info = {"encrypted_dir": str(encrypted_dir)}
    else:
        key = ciphers.make_for_configuration(cipher, key_seed)
        encrypted = encrypt_in_memory(plain, key)
        data_info = {"cipher": cipher, "key_seed": key_seed}
    # the data source (canonical or JPEG copy) and the key go with every result
    manifest = plain["manifest"] if plain is not None else data.read_manifest(data_dir)
    data_info.update(data_source=manifest["source"], key_fingerprint=encrypted["cipher"].fingerprint)
    return train.run(config, **inputs_for(config.augment, plain, encrypted), out_dir=out_dir,
                     extra={**data_info, **(extra or {})}, class_names=data.CLASSES,
                     progress=progress)


def publish(out_dir, metrics_dir, title: str | None = None) -> list[Path]:
    """Copy a run's ``metrics.json`` and ``epochs.csv`` to ``metrics_dir`` (the small,
    committed part of the results) and draw its learning curves there; each file atomic."""
    out_dir, metrics_dir = Path(out_dir), Path(metrics_dir)
    written = []
    for name in (train.METRICS, train.EPOCHS_CSV):
        payload = (out_dir / name).read_bytes()
        written.append(atomic_write(metrics_dir / name, lambda f: f.write(payload)))
    written.append(tables.plot_learning_curves(out_dir / train.EPOCHS_CSV, metrics_dir / "learning_curves.png",
                                               title))
    return written

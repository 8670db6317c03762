"""The encrypted data set on disk: what the encrypt stage writes and the train stage reads.

A folder with ``key.json`` and one ``<split>.npz`` per split holding ``images`` (uint8
(N, H, W, 3), encrypted), ``labels``, the key's fingerprint and an authentication tag
over images and labels (``Cipher.tag``). Reading checks all of it against the key and
against the configuration the reader claims, so plain images (a decrypted copy, a folder
of another configuration) are never trained on as if they were ciphertexts.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from . import ciphers
from .ciphers.auth import FINGERPRINT_FIELD, TAG_FIELD, images_payload
from .data import SPLITS

KEY_FILE = "key.json"


def _payload(images: np.ndarray, labels: np.ndarray) -> bytes:
    return images_payload((images, labels), ("images", "labels"))


def write(folder: Path, cipher: ciphers.Cipher, plain: dict) -> None:
    """Encrypt ``plain`` (``<split>_images`` / ``<split>_labels``) into ``folder`` with its key."""
    folder = Path(folder)
    for split in SPLITS:
        images, labels = cipher.encrypt(plain[f"{split}_images"]), plain[f"{split}_labels"]
        np.savez(folder / f"{split}.npz", images=images, labels=labels,
                 **{FINGERPRINT_FIELD: np.array(cipher.fingerprint),
                    TAG_FIELD: np.array(cipher.tag(_payload(images, labels)))})
    cipher.save(folder / KEY_FILE)


def _read_split(path: Path) -> tuple[np.ndarray, np.ndarray, str | None, str | None]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            fields = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"no encrypted data: {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path}: missing or corrupt encrypted data ({type(exc).__name__}: {exc})") from None
    if "images" not in fields or "labels" not in fields:
        raise ValueError(f"{path}: not an encrypted data set (no images/labels)")
    text = {k: str(fields[k]) if k in fields else None for k in (FINGERPRINT_FIELD, TAG_FIELD)}
    return fields["images"], fields["labels"], text[FINGERPRINT_FIELD], text[TAG_FIELD]


def read(folder, configuration: ciphers.Configuration) -> dict:
    """The encrypted train/test arrays in ``folder`` and their key (``cipher``), checked:
    the key is ``configuration``'s (scheme and options), each split carries its fingerprint
    and a valid tag of its images. Any mismatch is a one-line ValueError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no encrypted data set in {folder}: run its encrypt stage "
                                f"(`dvc repro encrypt@{configuration.name}`)")
    cipher = ciphers.load(folder / KEY_FILE)
    if (cipher.scheme, cipher.options) != (configuration.scheme, configuration.options):
        raise ValueError(f"{folder} holds data encrypted with a {cipher.scheme!r} key {cipher.options or ''}, "
                         f"not configuration {configuration.name!r} ({configuration.scheme!r} "
                         f"{configuration.options or ''}): the run's cipher and its data set disagree")
    out = {"cipher": cipher}
    for split in SPLITS:
        path = folder / f"{split}.npz"
        images, labels, fingerprint, tag = _read_split(path)
        if fingerprint is None or not cipher.fingerprint_matches(fingerprint):
            raise ValueError(f"{path} was not encrypted with {folder / KEY_FILE} (key fingerprint "
                             f"{fingerprint} vs {cipher.fingerprint}); rerun its encrypt stage")
        if tag is None or not cipher.tag_matches(_payload(images, labels), tag):
            raise ValueError(f"{path}: authentication tag missing or wrong: these images were not "
                             f"encrypted with this key, or were changed since")
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out

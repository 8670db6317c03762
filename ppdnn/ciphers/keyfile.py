"""The key file: JSON with the scheme, the image shape, the encoded key material, optional
provenance (how the key was derived) and a SHA-256 checksum over all of it."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np

from ..files import atomic_write, exclusive_write

KEY_FORMAT = "ppdnn-cipher-key"
KEY_FORMAT_VERSION = 1


def encode(value):
    """A JSON-able form of one key-material value (arrays as base64, bytes as hex)."""
    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "shape": list(value.shape),
                "base64": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()}
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    return value


def decode(value):
    """Inverse of :func:`encode`; only integer arrays are accepted."""
    if isinstance(value, dict) and "base64" in value:
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in "iu":
            raise ValueError(f"unexpected dtype {dtype}")
        raw = base64.b64decode(value["base64"], validate=True)
        return np.frombuffer(raw, dtype=dtype).reshape(value["shape"])
    if isinstance(value, dict) and "hex" in value:
        return bytes.fromhex(value["hex"])
    return value


def encode_material(material: dict) -> dict:
    return {k: encode(v) for k, v in material.items()}


def checksum(body: dict) -> str:
    """SHA-256 of the body (every field but ``sha256``) in canonical JSON."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write(path, scheme: str, shape, material: dict, provenance: dict | None,
          overwrite: bool) -> Path:
    """Write a key file, mode 0600: created exclusively unless ``overwrite`` (then atomically)."""
    path = Path(path)
    body = {"format": KEY_FORMAT, "version": KEY_FORMAT_VERSION, "scheme": scheme,
            "shape": list(shape), "key": encode_material(material)}
    if provenance is not None:  # absent, not null, so keys without it keep their old bytes
        body["provenance"] = provenance
    body["sha256"] = checksum(body)
    payload = (json.dumps(body, indent=1) + "\n").encode()
    if overwrite:
        atomic_write(path, lambda f: f.write(payload), mode=0o600)
    else:
        exclusive_write(path, payload, mode=0o600,
                        exists_message=f"{path} exists; pass overwrite=True (--force) to replace this key")
    return path


def read(path) -> dict:
    """The checked body of a key file: format, version and checksum verified, material decoded.

    Returns {"scheme", "shape" (tuple), "material" (dict), "provenance" (dict or None)}.
    """
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"key file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a ppdnn key file (damaged JSON: {err})") from None
    if not isinstance(body, dict) or body.get("format") != KEY_FORMAT:
        raise ValueError(f"{path} is not a ppdnn key file (format field missing or wrong)")
    if body.get("version") != KEY_FORMAT_VERSION:
        raise ValueError(f"{path}: key format version {body.get('version')!r} is not "
                         f"supported (expected {KEY_FORMAT_VERSION})")
    if body.get("sha256") != checksum({k: v for k, v in body.items() if k != "sha256"}):
        raise ValueError(f"{path}: key file is damaged (checksum mismatch)")
    try:
        material = {k: decode(v) for k, v in body["key"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path}: key file is damaged ({err})") from None
    return {"scheme": body.get("scheme"), "shape": tuple(body.get("shape") or ()),
            "material": material, "provenance": body.get("provenance")}

"""The key file: JSON with the scheme, the image shape, the encoded key material, optional
provenance (how the key was derived) and a SHA-256 checksum over all of it.

A key file is read only if it is a regular file (a FIFO would block for ever) of at most
:data:`MAX_KEY_FILE_BYTES`; any damage -- bad JSON, a number of thousands of digits,
nesting thousands deep, NaN -- is one ValueError naming the file."""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np

from ..files import atomic_write, display, exclusive_write, open_regular

KEY_FORMAT = "ppdnn-cipher-key"
KEY_FORMAT_VERSION = 1
# A pixel key for 4096x4096 images is ~90 MB of JSON; anything far larger is not a key.
MAX_KEY_FILE_BYTES = 512 << 20


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


def material_bytes(scheme: str, shape, material: dict) -> bytes:
    """The canonical bytes of a key (scheme, shape, encoded material) that its fingerprint
    and authentication tags are derived from (:mod:`.auth`)."""
    body = {"scheme": scheme, "shape": list(shape), "key": encode_material(material)}
    return b"ppdnn-key-material\0" + json.dumps(body, sort_keys=True).encode()


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
    body = _parse(path)
    if not isinstance(body, dict) or body.get("format") != KEY_FORMAT:
        raise ValueError(f"{display(path)} is not a ppdnn key file (format field missing or wrong)")
    if body.get("version") != KEY_FORMAT_VERSION:
        raise ValueError(f"{display(path)}: key format version {_short(body.get('version'))} is "
                         f"not supported (expected {KEY_FORMAT_VERSION})")
    try:
        intact = body.get("sha256") == checksum({k: v for k, v in body.items() if k != "sha256"})
    except (ValueError, RecursionError):
        intact = False
    if not intact:
        raise ValueError(f"{display(path)}: key file is damaged (checksum mismatch)")
    shape, key = body.get("shape"), body.get("key")
    if not (isinstance(shape, list) and len(shape) == 2
            and all(type(v) is int and 0 < v < 1 << 20 for v in shape)):
        raise ValueError(f"{display(path)}: key file is damaged (shape must be [H, W] of positive "
                         "integers)")
    if not isinstance(key, dict):
        raise ValueError(f"{display(path)}: key file is damaged (no key material)")
    try:
        material = {k: decode(v) for k, v in key.items()}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{display(path)}: key file is damaged ({err})") from None
    return {"scheme": body.get("scheme"), "shape": tuple(shape),
            "material": material, "provenance": body.get("provenance")}


def _parse(path: Path):
    """The JSON of a key file, refusing what is not a regular file or not sane JSON."""
    try:
        with open_regular(path, "key file") as f:  # a FIFO would block for ever
            raw = f.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"key file {display(path)} does not exist") from None
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise ValueError(f"{display(path)} is not a ppdnn key file (over {MAX_KEY_FILE_BYTES >> 20} MiB)")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"{display(path)} is not a ppdnn key file (JSON nested too deeply)") from None
    except ValueError as err:  # bad JSON, not UTF-8, a number of thousands of digits, NaN
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(f"{display(path)} is not a ppdnn key file (damaged JSON: {reason})") from None


def _short(value) -> str:
    """repr of ``value`` cut to 40 characters (a huge int has no repr at all)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return "(a huge number)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a key file holds")

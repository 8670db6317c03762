"""Who encrypted this, and is it intact: a salted, slow key fingerprint and an HMAC tag.

- :func:`fingerprint` identifies a key publicly. It is ``fp1$<salt>$<verifier>`` where the
  verifier is scrypt(material, salt): salted, so nothing can be precomputed over small
  seeds, and slow (about 0.1 s), so that scanning seeds against a ciphertext's
  fingerprint costs that much per guess instead of nanoseconds.
- :func:`tag` authenticates a payload (the ciphertext): HMAC-SHA256 under a key derived in
  the same scrypt call, so the tag is no faster a guessing oracle than the fingerprint.
  The key holder detects a wrong key (the fingerprint does not match), a plaintext
  carrying a copied fingerprint (no valid tag: only the key can make one) and tampering
  (the tag no longer matches the pixels).

``material`` is the canonical bytes of a key (``keyfile.material_bytes``). Derivations are
cached per (material, salt), so checking a thousand images from one call costs one scrypt.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets

FINGERPRINT_FIELD = "key_fingerprint"  # PNG text chunk and .npz field of encrypted outputs
TAG_FIELD = "key_tag"                  # the authentication tag beside it
# Names earlier versions wrote; read (and stripped from decrypted outputs), never written.
LEGACY_FINGERPRINT_FIELDS = ("ppdnn_key_fingerprint", "ppdnn-key-fingerprint")

SCHEME = "fp1"
TAG_SCHEME = "hs1"
# scrypt cost: n=2**15, r=8 takes 32 MiB and about 0.1-0.3 s per derivation
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
SALT_BYTES = 8
_FINGERPRINT = re.compile(rf"^{SCHEME}\$([0-9a-f]{{{2 * SALT_BYTES}}})\$([0-9a-f]{{32}})$")
_TAG = re.compile(rf"^{TAG_SCHEME}\$([0-9a-f]{{64}})$")


@functools.lru_cache(maxsize=32)
def _derive(material: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(verifier, tag key) of ``material`` under ``salt``: one scrypt call, 48 bytes."""
    out = hashlib.scrypt(material, salt=b"ppdnn-key-auth\0" + salt, n=SCRYPT_N, r=SCRYPT_R,
                         p=SCRYPT_P, maxmem=64 << 20, dklen=48)
    return out[:16], out[16:]


def _check_material(material) -> bytes:
    if not isinstance(material, (bytes, bytearray)) or not material:
        raise TypeError(f"material must be non-empty bytes, got {type(material).__name__}")
    return bytes(material)


def fingerprint(material: bytes, salt: bytes | None = None) -> str:
    """A public, salted identifier of the key ``material``; a new random salt unless given.

    A fixed ``salt`` gives a reproducible fingerprint (for outputs that must be
    byte-identical across runs), at the price of precomputation over that salt.
    """
    material = _check_material(material)
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes, got {salt!r}")
    verifier, _ = _derive(material, salt)
    return f"{SCHEME}${salt.hex()}${verifier.hex()}"


def is_fingerprint(value) -> bool:
    """Whether ``value`` is a fingerprint of this module's form (not that of any key)."""
    return isinstance(value, str) and _FINGERPRINT.match(value) is not None


def _salt_of(fp: str) -> bytes | None:
    match = _FINGERPRINT.match(fp) if isinstance(fp, str) else None
    return bytes.fromhex(match.group(1)) if match else None


def fingerprint_matches(fp: str, material: bytes) -> bool:
    """True if ``fp`` was made by :func:`fingerprint` from this ``material`` (constant time)."""
    material = _check_material(material)
    salt = _salt_of(fp)
    if salt is None:
        return False
    verifier, _ = _derive(material, salt)
    return hmac.compare_digest(fp.rsplit("$", 1)[1], verifier.hex())


def tag(material: bytes, payload: bytes, fp: str) -> str:
    """The authentication tag of ``payload`` (e.g. the ciphertext's bytes) under the key
    ``material``, bound to the fingerprint ``fp`` stored beside it (its salt is reused)."""
    material = _check_material(material)
    salt = _salt_of(fp)
    if salt is None:
        raise ValueError(f"not a key fingerprint of form {SCHEME}$<salt>$<verifier>: {fp!r}")
    _, key = _derive(material, salt)
    digest = hmac.new(key, fp.encode() + b"\0" + bytes(payload), hashlib.sha256).hexdigest()
    return f"{TAG_SCHEME}${digest}"


def check_tag(material: bytes, payload: bytes, fp: str, claimed_tag: str) -> bool:
    """True if ``claimed_tag`` is the tag of ``payload`` under ``material`` and ``fp``."""
    if not isinstance(claimed_tag, str) or not _TAG.match(claimed_tag) or _salt_of(fp) is None:
        return False
    return hmac.compare_digest(tag(material, payload, fp), claimed_tag)


def images_payload(images, names: tuple[str, ...] = ()) -> bytes:
    """Canonical bytes of uint8 image arrays for :func:`tag`: shape, then pixels, per array
    (``names``, if given, bind each array to its .npz field name)."""
    import numpy as np

    parts = []
    for i, array in enumerate(images):
        array = np.ascontiguousarray(array)
        name = names[i] if i < len(names) else ""
        header = f"{name}|{array.dtype.str}|{','.join(map(str, array.shape))}\0".encode()
        parts += [header, array.tobytes()]
    return b"".join(parts)

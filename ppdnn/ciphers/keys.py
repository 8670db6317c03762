"""Making keys (from a seed, from OS entropy, per named configuration) and loading key files."""
from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import numpy as np

from . import keyfile
from .base import Cipher, check_shape, configuration, configurations, resolve_options, scheme_class

SEED_DERIVATION = "int.from_bytes(sha256('<configuration>:<key_seed>')[:8], 'big')"


def make(scheme: str, shape=(32, 32), shuffle: bool = False, seed: int | None = None,
         **options) -> Cipher:
    """A new key for ``scheme`` and images of ``shape`` (H, W).

    ``seed``: an int gives a reproducible key (numpy ``default_rng(seed)``); None draws
    256 bits of OS entropy (``secrets``) to seed the generator, for real use.
    ``shuffle`` (step 3) only applies to ``pixel``; other schemes may take other
    ``options`` of their ``generate``.
    """
    cls = scheme_class(scheme)
    options = resolve_options(cls, shuffle, options)
    _check_seed(seed, "seed")
    shape = check_shape(shape, block=cls.block_aligned)
    rng = np.random.default_rng(secrets.randbits(256) if seed is None else int(seed))
    return cls.generate(rng, shape, **options)


def derive_seed(name: str, key_seed: int) -> int:
    """The seed of configuration ``name``'s key: the first 8 bytes of
    sha256(f"{name}:{key_seed}") as a big-endian int. Every configuration gets its own,
    independent key from one ``key_seed`` (one key per data set, as the paper says)."""
    _check_seed(key_seed, "key_seed", allow_none=False)
    digest = hashlib.sha256(f"{name}:{int(key_seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def make_for_configuration(name, key_seed: int, shape=(32, 32), entries: dict | None = None) -> Cipher:
    """The key of configuration ``name`` for ``key_seed``: a :class:`Configuration`, or a
    name resolved in ``entries`` (``params.yaml``'s ``ciphers:``; without them, a scheme's
    own name, e.g. ``pixel``).

    Seeded by :func:`derive_seed` from the configuration's name, so step 2 and steps 2+3 do
    not share a flip mask; the derivation is kept in ``cipher.provenance`` and written into
    its key file.
    """
    config = configuration(name, entries)
    name = config.name
    seed = derive_seed(name, key_seed)
    cipher = make(config.scheme, shape, seed=seed, **config.options)
    cipher.provenance = {"configuration": name, "key_seed": int(key_seed),
                         "derived_seed": seed, "derivation": SEED_DERIVATION}
    return cipher


def make_all(shape=(32, 32), key_seed: int | None = None, entries: dict | None = None) -> list[Cipher]:
    """One key per configuration of ``entries`` (default: one per scheme), in their order
    (figures, benchmarks, comparisons).

    With an int ``key_seed`` each key is :func:`make_for_configuration`'s (independent
    keys, reproducible); with None each is drawn from OS entropy.
    """
    if key_seed is None:
        return [make(c.scheme, shape, **c.options) for c in configurations(entries)]
    return [make_for_configuration(c, key_seed, shape) for c in configurations(entries)]


def load(path, scheme: str | None = None, shape=None) -> Cipher:
    """Read a key file; if ``scheme`` / ``shape`` are given, the key must be for them."""
    path = Path(path)
    body = keyfile.read(path)
    found_scheme, found_shape = body["scheme"], body["shape"]
    try:
        cls = scheme_class(found_scheme)
    except ValueError:
        raise ValueError(f"{path}: unknown scheme {found_scheme!r}") from None
    if scheme is not None and found_scheme != scheme:
        raise ValueError(f"{path} holds a {found_scheme!r} key, not a {scheme!r} key")
    if shape is not None and found_shape != tuple(shape):
        raise ValueError(f"{path} holds a key for {found_shape} images, not {tuple(shape)}")
    try:
        cipher = cls.from_key_material(body["material"], found_shape)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path}: key file is damaged ({err})") from None
    if cipher.shape != found_shape:
        raise ValueError(f"{path}: key file is damaged (key material does not fit {found_shape})")
    cipher.provenance = body["provenance"]
    return cipher


def _check_seed(seed, name: str, allow_none: bool = True) -> None:
    if seed is None and allow_none:
        return
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{name} must be a non-negative int{' or None' if allow_none else ''}, "
                         f"got {seed!r}")

"""Image encryption schemes of the paper, their keys, key files and key spaces.

One scheme per module of ``ppdnn/schemes/``, found by name: ``scheme_class("pixel")``
imports ``ppdnn/schemes/pixel.py`` and nothing else, and a scheme registers itself where
its class is defined (see :mod:`.base`). Adding a scheme is adding one file plus its
configuration under ``ciphers:`` in ``params.yaml``:

- ``plain``        identity (the unencrypted baseline).
- ``pixel``        the proposed pixel-based encryption (Sec. 3.2), step 2 (``pixel``) and
                   steps 2+3 (``pixel_shuffle: {scheme: pixel, shuffle: true}``).
- ``tanaka``       learnable image encryption (ref. [6]) as in the official code.
- ``etc``          encryption-then-compression block scrambling (refs. [9, 10]).
- ``chaotic_rc4``  a documented approximation of ref. [16].

One key per data set, so the same key encrypts every training and test image. Every
scheme is a fixed permutation of positions followed by a fixed XOR, ``y = x[index] ^
mask`` on bytes or 4-bit values (:mod:`.engine`), applied to numpy arrays (H, W, 3) /
(N, H, W, 3) and torch uint8 tensors (N, 3, H, W) on any device.

The scheme classes and their helpers are attributes of this package too
(``ciphers.PixelCipher``), imported on first access only.
"""
from __future__ import annotations

import importlib

from .base import (Cipher, Configuration, check_shape, configuration, configurations, key_array,
                   registered_classes, scheme_class, scheme_modules, schemes, unregister)
from .channels import PERMUTATIONS
from .engine import BLOCK, Table
from .keyfile import KEY_FORMAT, KEY_FORMAT_VERSION
from .keys import derive_seed, load, make, make_all, make_for_configuration

# name -> module (relative to this package) that defines it; imported on first access
_LAZY = {
    "PlainCipher": "ppdnn.schemes.plain", "PixelCipher": "ppdnn.schemes.pixel", "TanakaCipher": "ppdnn.schemes.tanaka",
    "EtcCipher": "ppdnn.schemes.etc", "ChaoticRc4Cipher": "ppdnn.schemes.chaotic_rc4",
    "count_floats": "ppdnn.schemes.chaotic_rc4", "logistic_sequence": "ppdnn.schemes.chaotic_rc4",
    "rc4_keystream": "ppdnn.schemes.chaotic_rc4", "TableCipher": ".table_cipher",
    "key_space": ".keyspace", "key_space_log10": ".keyspace", "key_space_rows": ".keyspace",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Image encryption schemes of the paper, their keys, key files and key spaces.

One scheme per module of this package; every module is imported here, and a scheme
registers itself where its class is defined (see :mod:`.base`), so adding a scheme is
adding one file (plus its configurations under ``ciphers:`` in ``params.yaml``):

- ``plain``        identity (the unencrypted baseline).
- ``pixel``        the proposed pixel-based encryption (Sec. 3.2), step 2 (``pixel``) and
                   steps 2+3 (``pixel_shuffle``).
- ``tanaka``       learnable image encryption (ref. [6]) as in the official code.
- ``etc``          encryption-then-compression block scrambling (refs. [9, 10]).
- ``chaotic_rc4``  a documented approximation of ref. [16].

One key per data set, so the same key encrypts every training and test image. Every
scheme is a fixed permutation of positions followed by a fixed XOR, ``y = x[index] ^
mask`` on bytes or 4-bit values (:mod:`.engine`), applied to numpy arrays (H, W, 3) /
(N, H, W, 3) and torch uint8 tensors (N, 3, H, W) on any device.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import (Cipher, Configuration, check_shape, configuration, configurations, key_array,
                   scheme_class, schemes, unregister)
from .chaotic_rc4 import ChaoticRc4Cipher, count_floats, logistic_sequence, rc4_keystream
from .engine import BLOCK, Table
from .etc import EtcCipher
from .keyfile import KEY_FORMAT, KEY_FORMAT_VERSION
from .keys import derive_seed, load, make, make_all, make_for_configuration
from .keyspace import key_space, key_space_log10, key_space_rows
from .pixel import PERMUTATIONS, PixelCipher
from .plain import PlainCipher
from .table_cipher import TableCipher
from .tanaka import TanakaCipher

# Every other module dropped into this folder: importing it registers its scheme.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def __getattr__(name: str):
    # ``SCHEMES`` was a constant; it is now computed on access so that schemes
    # registered later appear. New code calls ``schemes()``.
    if name == "SCHEMES":
        return schemes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

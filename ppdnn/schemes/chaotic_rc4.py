"""``chaotic_rc4``: a documented approximation of ref. [16] (Gaata & Hantoosh): logistic-map
pixel position scrambling followed by an RC4 keystream XOR; the paper's exact algorithm
could not be found."""
from __future__ import annotations

import struct

import numpy as np

from ..ciphers.base import Cipher
from ..ciphers.engine import Table

RC4_KEY_BYTES = 16
LOGISTIC_TRANSIENT = 1000  # iterations dropped before the scrambling sequence
X0_RANGE = (0.01, 0.99)
R_RANGE = (3.99, 4.0)  # deep in the chaotic regime, clear of the periodic windows


class ChaoticRc4Cipher(Cipher):
    """Approximation of ref. [16] (logistic map + RC4); the paper's exact algorithm is unknown.

    Pixel positions (all three channels together) are scrambled by the argsort of the
    logistic map x <- r x (1 - x) started at ``x0`` (the first 1000 iterations dropped);
    the scrambled image is then XORed with the RC4 keystream of ``rc4_key`` (16 bytes).
    Deviation from a real stream cipher, needed to learn on encrypted images: the same
    keystream (no nonce) encrypts every image of the data set.
    """

    scheme = "chaotic_rc4"
    table_rank = 40

    def __init__(self, x0: float, r: float, rc4_key: bytes, shape=(32, 32)):
        if not isinstance(x0, float) or not X0_RANGE[0] <= x0 < X0_RANGE[1]:
            raise ValueError(f"x0 must be a float in [{X0_RANGE[0]}, {X0_RANGE[1]}), got {x0!r}")
        if not isinstance(r, float) or not R_RANGE[0] <= r < R_RANGE[1]:
            raise ValueError(f"r must be a float in [{R_RANGE[0]}, {R_RANGE[1]}), got {r!r}")
        if not isinstance(rc4_key, bytes) or len(rc4_key) != RC4_KEY_BYTES:
            raise ValueError(f"rc4_key must be {RC4_KEY_BYTES} bytes")
        super().__init__(shape)
        self.x0, self.r, self.rc4_key = x0, r, rc4_key

    @classmethod
    def generate(cls, rng, shape):
        # The order of the draws fixes every committed key.
        return cls(x0=float(rng.uniform(*X0_RANGE)), r=float(rng.uniform(*R_RANGE)),
                   rc4_key=rng.bytes(RC4_KEY_BYTES), shape=shape)

    @classmethod
    def key_space(cls, shape) -> int:
        """2^128 RC4 keys times the float64 values allowed for x0 and r (a count of keys:
        some (x0, r) pairs scramble alike, so it bounds the distinct encryptions from above)."""
        return 2 ** (8 * RC4_KEY_BYTES) * count_floats(*X0_RANGE) * count_floats(*R_RANGE)

    @classmethod
    def key_space_rows(cls, shape) -> list[tuple[str, str, int]]:
        return [("chaotic/RC4 (approximation)", "2^128 * #x0 * #r", cls.key_space(shape))]

    def build_table(self) -> Table:
        n_pixels = self.shape[0] * self.shape[1]
        order = np.argsort(logistic_sequence(self.x0, self.r, n_pixels), kind="stable")
        index = (order[:, None] * 3 + np.arange(3)).ravel()
        keystream = np.frombuffer(rc4_keystream(self.rc4_key, 3 * n_pixels), dtype=np.uint8)
        return Table(index, keystream.copy())

    def key_material(self) -> dict:
        return {"x0": self.x0, "r": self.r, "rc4_key": self.rc4_key}


def rc4_keystream(key: bytes, length: int) -> bytes:
    """RC4 keystream (KSA + PRGA). A Python loop, run once per key at key setup."""
    if not 1 <= len(key) <= 256:
        raise ValueError("RC4 keys have 1 to 256 bytes")
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) & 255
        s[i], s[j] = s[j], s[i]
    out = bytearray(length)
    i = j = 0
    for k in range(length):
        i = (i + 1) & 255
        j = (j + s[i]) & 255
        s[i], s[j] = s[j], s[i]
        out[k] = s[(s[i] + s[j]) & 255]
    return bytes(out)


def logistic_sequence(x0: float, r: float, length: int) -> np.ndarray:
    """``length`` values of the logistic map after a transient (sequential, key setup only)."""
    x = x0
    values = np.empty(length)
    for k in range(LOGISTIC_TRANSIENT + length):
        x = r * x * (1.0 - x)
        if k >= LOGISTIC_TRANSIENT:
            values[k - LOGISTIC_TRANSIENT] = x
    return values


def count_floats(low: float, high: float) -> int:
    """Number of float64 values in [low, high) for 0 < low < high (bit patterns are ordered)."""
    def bits(v: float) -> int:
        return struct.unpack("<q", struct.pack("<d", v))[0]
    return bits(high) - bits(low)

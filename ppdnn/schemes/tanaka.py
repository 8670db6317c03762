"""``tanaka``: learnable image encryption (ref. [6]) as in the official code
(mastnk/ICCE-TW2018, BlockScramble.py): 4x4x3 blocks split into 96 4-bit values,
reversed / permuted / reversed with one key for the data set."""
from __future__ import annotations

import math

import numpy as np

from ..ciphers.base import Cipher, key_array
from ..ciphers.engine import BLOCK, Table, block_units


class TanakaCipher(Cipher):
    """Tanaka's learnable image encryption (ref. [6]), as in the official BlockScramble.py.

    Each 4x4x3 block (48 bytes, in row, column, channel order) becomes 96 4-bit values:
    48 low nibbles then 48 high nibbles. ``key`` is one permutation of 0..95 shared by
    every block of every image: the values at positions q with key[q] > 48 are reversed
    (15 - v), the 96 values are permuted (out[q] = in[key[q]]), and the same positions
    are reversed again. The reversal set is derived from the key, as in the official
    code, so the key is the permutation alone.
    """

    scheme = "tanaka"
    table_rank = 20
    block_aligned = True
    UNITS = 2 * BLOCK * BLOCK * 3

    def __init__(self, key, shape=(32, 32)):
        key = key_array(key, "key", ndim=1, high=self.UNITS - 1, dtype=np.int64)
        if key.shape != (self.UNITS,) or not np.array_equal(np.sort(key), np.arange(self.UNITS)):
            raise ValueError(f"key must be a permutation of 0..{self.UNITS - 1}")
        super().__init__(shape)
        self.key = key

    @classmethod
    def generate(cls, rng, shape):
        return cls(rng.permutation(cls.UNITS), shape)

    @classmethod
    def key_space(cls, shape) -> int:
        """96!: the official code derives the reversals from the permutation (the paper's
        Eq. 5, 96! * 2^96, counts them as independent; both are in ``key_space_rows``)."""
        return math.factorial(cls.UNITS)

    @classmethod
    def key_space_rows(cls, shape) -> list[tuple[str, str, int]]:
        return [("Tanaka, Eq. 5 (paper)", "96! * 2^96", math.factorial(cls.UNITS) * 2 ** cls.UNITS),
                ("Tanaka, official code key", "96!", cls.key_space(shape))]

    @property
    def reversed_positions(self) -> np.ndarray:
        """Boolean (96,): positions reversed before and after the permutation."""
        return self.key > self.UNITS // 2

    def build_table(self) -> Table:
        rev = self.reversed_positions.astype(np.uint8) * np.uint8(15)
        local_mask = rev ^ rev[self.key]  # reverse, permute, reverse == permute, XOR this
        blocks = block_units(self.shape, planes=2)  # (B, 96) unit index of each block
        index = np.empty(blocks.size, dtype=np.intp)
        mask = np.empty(blocks.size, dtype=np.uint8)
        index[blocks] = blocks[:, self.key]
        mask[blocks] = local_mask
        return Table(index, mask, nibbles=True)

    def key_material(self) -> dict:
        return {"key": self.key}

"""``etc``: encryption-then-compression block scrambling (refs. [9, 10]) with 4x4 blocks:
block position scrambling, then per block rotation, inversion, negative-positive and
colour shuffle, one key for the data set."""
from __future__ import annotations

import functools
import math

import numpy as np

from ..ciphers.base import Cipher, key_array
from ..ciphers.engine import BLOCK, Table, block_units
from ..ciphers.channels import PERMUTATIONS

ROTATIONS, INVERSIONS, COLOURS = 4, 3, len(PERMUTATIONS)


class EtcCipher(Cipher):
    """EtC block scrambling (refs. [9, 10]) with 4x4 blocks and one key for all images.

    Key arrays have one entry per output block, shape (H/4, W/4):
    order (flat index of the input block that lands here; a permutation),
    rotation (0..3, multiples of 90 degrees counter-clockwise), inversion (0 none,
    1 horizontal, 2 vertical), negpos (1: every value of the block becomes p XOR 255)
    and colour (Table 1 code). Each block is rotated, then inverted, then colour-shuffled.
    """

    scheme = "etc"
    table_rank = 30
    block_aligned = True
    KEY_ARRAYS = ("order", "rotation", "inversion", "negpos", "colour")

    def __init__(self, order, rotation, inversion, negpos, colour):
        order = key_array(order, "order", ndim=2, high=None, dtype=np.int64)
        grid = order.shape
        if not np.array_equal(np.sort(order.ravel()), np.arange(order.size)):
            raise ValueError(f"order must be a permutation of the {order.size} block indices")
        arrays = {"order": order}
        for name, value, high in (("rotation", rotation, ROTATIONS - 1),
                                  ("inversion", inversion, INVERSIONS - 1),
                                  ("negpos", negpos, 1), ("colour", colour, COLOURS - 1)):
            arrays[name] = key_array(value, name, ndim=2, high=high)
            if arrays[name].shape != grid:
                raise ValueError(f"{name} must have the block grid shape {grid}, "
                                 f"got {arrays[name].shape}")
        super().__init__((grid[0] * BLOCK, grid[1] * BLOCK))
        for name, value in arrays.items():
            setattr(self, name, value)

    @classmethod
    def generate(cls, rng, shape):
        # The order of the draws fixes every committed key.
        grid = (shape[0] // BLOCK, shape[1] // BLOCK)
        return cls(order=rng.permutation(grid[0] * grid[1]).reshape(grid),
                   rotation=rng.integers(0, ROTATIONS, grid, dtype=np.uint8),
                   inversion=rng.integers(0, INVERSIONS, grid, dtype=np.uint8),
                   negpos=rng.integers(0, 2, grid, dtype=np.uint8),
                   colour=rng.integers(0, COLOURS, grid, dtype=np.uint8))

    @classmethod
    def key_space(cls, shape) -> int:
        """B! * 8^B * 2^B * 6^B for B blocks: the key's 4 rotations x 3 inversions give
        12 values per block but only 8 distinct transforms of a square (the dihedral
        group: a rotation by 180 degrees is both inversions at once, and so on), so this
        counts distinct encryptions, not key values."""
        blocks = (shape[0] // BLOCK) * (shape[1] // BLOCK)
        return math.factorial(blocks) * (distinct_geometric_transforms() * 2 * COLOURS) ** blocks

    @classmethod
    def key_space_rows(cls, shape) -> list[tuple[str, str, int]]:
        return [("EtC (4x4 blocks)", "B! * 8^B * 2^B * 6^B", cls.key_space(shape))]

    def build_table(self) -> Table:
        blocks = block_units(self.shape, planes=1)  # (B, 48)
        local = block_patterns()[self.rotation.ravel(), self.inversion.ravel(),
                                 self.colour.ravel()]  # (B, 48)
        index = np.empty(blocks.size, dtype=np.intp)
        index[blocks] = np.take_along_axis(blocks[self.order.ravel()], local, axis=1)
        mask = np.empty(blocks.size, dtype=np.uint8)
        mask[blocks] = (self.negpos.ravel() * np.uint8(255))[:, None]
        return Table(index, mask)

    def key_material(self) -> dict:
        return {name: getattr(self, name) for name in self.KEY_ARRAYS}

    @classmethod
    def from_key_material(cls, material, shape):
        return cls(**material)


@functools.cache
def block_patterns() -> np.ndarray:
    """(4 rotations, 3 inversions, 6 colours, 48): source position in a 4x4x3 block."""
    local = np.arange(BLOCK * BLOCK * 3).reshape(BLOCK, BLOCK, 3)
    patterns = np.empty((ROTATIONS, INVERSIONS, COLOURS, local.size), dtype=np.intp)
    for rot in range(ROTATIONS):
        turned = np.rot90(local, k=rot, axes=(0, 1))
        for inv, inverted in enumerate((turned, turned[:, ::-1], turned[::-1])):
            for code in range(COLOURS):
                patterns[rot, inv, code] = inverted[..., PERMUTATIONS[code]].ravel()
    patterns.flags.writeable = False
    return patterns


@functools.cache
def distinct_geometric_transforms() -> int:
    """How many different block rearrangements the rotation x inversion values make (8)."""
    return len({tuple(p) for p in block_patterns()[:, :, 0].reshape(-1, BLOCK * BLOCK * 3)})

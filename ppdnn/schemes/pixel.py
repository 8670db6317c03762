"""``pixel``: the proposed pixel-based encryption (Sec. 3.2), step 2 and optional step 3.

Step 2 is a negative-positive flip ``p XOR 255`` with one key bit per pixel per channel;
step 3 moves the channels of each pixel by one of Table 1's six permutations.
params.yaml names two configurations: ``pixel`` (step 2) and ``pixel_shuffle``
(``{scheme: pixel, shuffle: true}``, steps 2 and 3).
"""
from __future__ import annotations

import numpy as np

from ..ciphers.base import Cipher, key_array
from ..ciphers.channels import PERMUTATIONS  # noqa: F401  (Table 1, also ciphers.PERMUTATIONS)
from ..ciphers.engine import Table


class PixelCipher(Cipher):
    """The proposed pixel-based encryption: step 2 (flip), then optional step 3 (shuffle).

    flip: (H, W, 3) of 0/1; where 1 the value becomes ``p XOR 255`` (Eq. 1).
    perm: (H, W) of codes 0..5 of Table 1 (``PERMUTATIONS``), or None for step 2 only.
    """

    scheme = "pixel"
    table_rank = 10

    def __init__(self, flip, perm=None):
        flip = key_array(flip, "flip", ndim=3, high=1)
        if flip.shape[2] != 3:
            raise ValueError(f"flip must have shape (H, W, 3), got {flip.shape}")
        super().__init__(flip.shape[:2])
        if perm is not None:
            perm = key_array(perm, "perm", ndim=2, high=5)
            if perm.shape != self.shape:
                raise ValueError(f"perm must have shape {self.shape} to match flip, got {perm.shape}")
        self.flip, self.perm = flip, perm

    @classmethod
    def generate(cls, rng, shape, shuffle: bool = False):
        # The order of the draws fixes every committed key: flip bits first, then codes.
        flip = rng.integers(0, 2, size=(*shape, 3), dtype=np.uint8)
        perm = rng.integers(0, 6, size=shape, dtype=np.uint8) if shuffle else None
        return cls(flip, perm)

    @classmethod
    def key_space(cls, shape, shuffle: bool = False) -> int:
        """2^(3n) for step 2, times 6^n with step 3 (Eqs. 3-4), n = H*W."""
        n = shape[0] * shape[1]
        return 2 ** (3 * n) * (6 ** n if shuffle else 1)

    @classmethod
    def key_space_rows(cls, shape) -> list[tuple[str, str, int]]:
        n = shape[0] * shape[1]
        return [("step 2 (negative-positive), Eq. 3", "2^(3n)", cls.key_space(shape)),
                ("step 3 (colour shuffle), Eq. 3", "6^n", 6 ** n),
                ("steps 2+3 (proposed), Eq. 4", "2^(3n) * 6^n", cls.key_space(shape, shuffle=True))]

    @property
    def shuffle(self) -> bool:
        return self.perm is not None

    @property
    def options(self) -> dict:
        return {"shuffle": True} if self.shuffle else {}

    @property
    def label(self) -> str:
        return "pixel (step 2+3)" if self.shuffle else "pixel (step 2)"

    def build_table(self) -> Table:
        flip_mask = (self.flip * np.uint8(255)).ravel()
        if self.perm is None:
            return Table(None, flip_mask)
        pixels = np.arange(self.shape[0] * self.shape[1])[:, None]
        index = (pixels * 3 + PERMUTATIONS[self.perm.ravel()]).ravel()
        return Table(index, flip_mask[index])  # step 2 then step 3

    def key_material(self) -> dict:
        return {"flip": self.flip, "perm": self.perm}

    @classmethod
    def from_key_material(cls, material, shape):
        return cls(**material)

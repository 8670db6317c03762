"""A cipher given directly by its table: what a chosen-plaintext attack recovers when it
learns an equivalent key rather than the scheme's own parameters. Not a scheme: it is not
registered and its keys are not written to key files."""
from __future__ import annotations

import numpy as np

from .base import Cipher
from .engine import Table


class TableCipher(Cipher, register=False):
    """``y.units = x.units[index] ^ mask`` for (H, W, 3) images (see :class:`~.engine.Table`)."""

    scheme = "table"

    def __init__(self, table: Table, shape):
        super().__init__(shape)
        planes = 2 if table.nibbles else 1
        units = planes * self.shape[0] * self.shape[1] * 3
        for name, array in (("index", table.index), ("mask", table.mask)):
            if array is not None and np.shape(array) != (units,):
                raise ValueError(f"table {name} must have {units} entries for {self.shape} images")
        self.key_table = table  # the key is the table itself

    def build_table(self) -> Table:
        return self.key_table

    def key_material(self) -> dict:
        return {"index": self.key_table.index, "mask": self.key_table.mask,
                "nibbles": self.key_table.nibbles}

    def save(self, path, overwrite: bool = False, provenance=None):
        raise TypeError("an equivalent key recovered by an attack is not written to key files")

"""The one routine every scheme runs: ``y = x[index] ^ mask`` over the units of an image.

Every scheme of the project is a fixed permutation of positions followed by a fixed XOR,
on bytes or (Tanaka's scheme) on 4-bit values. A scheme only builds its :class:`Table`
from its key; :func:`apply_numpy` and :func:`apply_torch` apply any table, vectorised, to
uint8 numpy arrays and torch tensors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 4  # block side of the block-based schemes (4x4 for 32x32 images, Fig. 1)
_CHUNK_BYTES = 1 << 19  # numpy works on chunks this size so the gather stays in cache


@dataclass(frozen=True)
class Table:
    """``y = x[index] ^ mask`` over flattened units of an image.

    Units are bytes laid out (H, W, 3), or with ``nibbles`` 4-bit values laid out
    (2, H, W, 3) (plane 0: low nibbles, plane 1: high nibbles). ``None`` = identity.
    """
    index: np.ndarray | None
    mask: np.ndarray | None
    nibbles: bool = False

    def inverse(self) -> "Table":
        if self.index is None:
            return self
        inv = np.argsort(self.index).astype(np.intp)
        mask = None if self.mask is None else self.mask[inv]
        return Table(inv, mask, self.nibbles)

    def channels_first(self, shape: tuple[int, int]) -> "Table":
        """The same table for units laid out (planes, 3, H, W)."""
        planes = 2 if self.nibbles else 1
        hwc = np.arange(planes * shape[0] * shape[1] * 3).reshape(planes, *shape, 3)
        chw_to_hwc = hwc.transpose(0, 3, 1, 2).ravel()
        hwc_to_chw = np.argsort(chw_to_hwc)
        index = None if self.index is None else hwc_to_chw[self.index[chw_to_hwc]]
        mask = None if self.mask is None else self.mask[chw_to_hwc]
        return Table(index, mask, self.nibbles)


def to_units(flat: np.ndarray, nibbles: bool) -> np.ndarray:
    """(N, bytes) uint8 -> (N, units): the bytes themselves, or low nibbles then high ones."""
    return np.concatenate([flat & 15, flat >> 4], axis=1) if nibbles else flat


def from_units(units: np.ndarray, nibbles: bool) -> np.ndarray:
    """Inverse of :func:`to_units`: (N, units) -> (N, bytes) uint8."""
    if not nibbles:
        return units
    half = units.shape[1] // 2
    return units[:, :half] | (units[:, half:] << 4)


def apply_numpy(table: Table, x: np.ndarray) -> np.ndarray:
    """Apply ``table`` to uint8 ``x`` of shape (N, bytes); chunked so the gather stays in cache."""
    out = np.empty_like(x)
    n_bytes = x.shape[1]
    rows = max(1, _CHUNK_BYTES // max(n_bytes, 1))
    for start in range(0, x.shape[0], rows):
        part, dst = x[start:start + rows], out[start:start + rows]
        if table.nibbles:
            units = to_units(part, nibbles=True)
            if table.index is not None:
                units = np.take(units, table.index, axis=1)
            if table.mask is not None:
                units ^= table.mask
            np.left_shift(units[:, n_bytes:], 4, out=dst)  # from_units, written in place
            dst |= units[:, :n_bytes]
        else:
            if table.index is not None:
                np.take(part, table.index, axis=1, out=dst)
            else:
                dst[...] = part
            if table.mask is not None:
                dst ^= table.mask
    return out


def apply_torch(table: Table, x, cache: dict):
    """Apply a channels-first ``table`` to a uint8 tensor (N, units) with torch ops.

    ``cache`` keeps the table's tensors per device, so they are copied to a GPU once.
    The result never aliases ``x``.
    """
    import torch

    key = (id(table), x.device)
    if key not in cache:
        cache[key] = tuple(None if a is None else torch.as_tensor(a).to(x.device)
                           for a in (table.index, table.mask))
    index, mask = cache[key]
    n_bytes = x.shape[1]
    units = torch.cat([x & 15, x >> 4], dim=1) if table.nibbles else x
    if index is not None:
        units = torch.index_select(units, 1, index)
    if mask is not None:
        units = units ^ mask
    if table.nibbles:
        return (units[:, n_bytes:] << 4) | units[:, :n_bytes]
    return units.clone() if units is x else units


def block_units(shape, planes: int) -> np.ndarray:
    """(blocks, planes*48): flat unit index (layout (planes, H, W, 3)) of each 4x4 block.

    Blocks in raster order; inside a block plane-major, then row, column, channel.
    """
    h, w = shape
    units = np.arange(planes * h * w * 3).reshape(planes, h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3)
    return units.transpose(1, 3, 0, 2, 4, 5).reshape((h // BLOCK) * (w // BLOCK), -1)

"""Key spaces (Eqs. 2-5 of the paper and the baselines), exact integers from the registry."""
from __future__ import annotations

import math

from .base import check_shape, registered_classes, resolve_options, scheme_class


def key_space(scheme: str, shape=(32, 32), shuffle: bool = False, **options) -> int:
    """Exact number of distinct encryptions of ``scheme`` for images of ``shape``.

    ``shuffle`` (and any other ``options``) select the configuration, as in ``make``;
    each scheme's ``key_space`` says what it counts.
    """
    cls = scheme_class(scheme)
    options = resolve_options(cls, shuffle, options)
    return cls.key_space(check_shape(shape, block=cls.block_aligned), **options)


def key_space_log10(scheme: str, shape=(32, 32), shuffle: bool = False, **options) -> float:
    """log10 of :func:`key_space` (exact integer, then one rounding to float)."""
    return math.log10(key_space(scheme, shape, shuffle, **options))


def key_space_rows(sizes=((32, 32),)) -> list[dict]:
    """One row per (image size, encryption) for a table, from every registered scheme's
    ``key_space_rows``; block schemes are left out for sizes that are not block-aligned."""
    rows = []
    for shape in sizes:
        shape = check_shape(shape)
        for cls in registered_classes():
            try:
                check_shape(shape, block=cls.block_aligned)
            except ValueError:
                continue
            for encryption, formula, count in cls.key_space_rows(shape):
                rows.append({"image": f"{shape[0]}x{shape[1]}", "n": shape[0] * shape[1],
                             "encryption": encryption, "formula": formula,
                             "log10_key_space": round(math.log10(count), 2)})
    return rows


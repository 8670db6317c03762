"""The key-space stage: log10 of the number of keys of every registered scheme, Eqs. (2)-(5).

    python -m ppdnn.stages.key_space --out results --size 32x32 --size 64x64 --size 224x224

Counts are exact integers (only the final log10 is a float), so their cost grows with the
image: 2048x2048 takes seconds, 4096x4096 about a minute on a laptop core. Sizes are
bounded before any work starts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ppdnn import ciphers
from ppdnn.errors import run_main
from ppdnn.files import atomic_write, check_writable
from ppdnn.markdown import markdown_table

DEFAULT_SIZES = ((32, 32), (64, 64), (224, 224))
MAX_SIDE = 4096
MAX_PIXELS = 4096 * 4096  # over all sizes together
MAX_SIZES = 16
OUTPUTS = ("key_space.csv", "key_space.md")


def check_sizes(sizes) -> list[tuple[int, int]]:
    """``sizes`` as (H, W) pairs of ints in [1, MAX_SIDE], at most MAX_SIZES of them and
    MAX_PIXELS pixels in all; ValueError naming the bad entry otherwise."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or not 1 <= len(sizes) <= MAX_SIZES:
        raise ValueError(f"sizes must be a list of 1 to {MAX_SIZES} (H, W) pairs, got {sizes!r}")
    pairs = []
    for size in sizes:
        ok = (not isinstance(size, (str, bytes)) and hasattr(size, "__len__") and len(size) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in size))
        if not ok:
            raise ValueError(f"each size must be an (H, W) pair of ints in [1, {MAX_SIDE}], got {size!r}")
        pairs.append((int(size[0]), int(size[1])))
    pixels = sum(h * w for h, w in pairs)
    if pixels > MAX_PIXELS:
        raise ValueError(f"sizes {pairs} have {pixels} pixels in all; at most {MAX_PIXELS} "
                         f"({MAX_SIDE}x{MAX_SIDE}) keep the exact counts within about a minute")
    return pairs


def key_space(out_dir, sizes=DEFAULT_SIZES) -> dict[str, Path]:
    """Write key_space.csv and key_space.md (one row per image size and encryption) to
    ``out_dir``; returns {file name: path}."""
    import pandas as pd

    pairs = check_sizes(sizes)
    check_writable(out_dir)
    rows = ciphers.key_space_rows(pairs)
    out = Path(out_dir)
    csv = atomic_write(out / "key_space.csv", lambda f: pd.DataFrame(rows).to_csv(f, index=False))
    md = atomic_write(out / "key_space.md", lambda f: f.write(markdown_table(
        [{**r, "log10_key_space": f"{r['log10_key_space']:.2f}"} for r in rows],
        align={"n": "right", "log10_key_space": "right"}).encode()))
    print(f"key_space: {len(rows)} rows for {len(pairs)} sizes -> {csv}, {md}")
    return {"key_space.csv": csv, "key_space.md": md}


def parse_size(text: str) -> tuple[int, int]:
    """``"32x32"`` -> (32, 32); ValueError (argparse: a usage error) for anything else."""
    height, sep, width = text.lower().partition("x")
    if not sep or not height.strip().isdigit() or not width.strip().isdigit():
        raise ValueError(f"a size is HxW, e.g. 32x32, got {text!r}")
    return int(height), int(width)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.stages.key_space", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for key_space.csv and key_space.md")
    parser.add_argument("--size", dest="sizes", type=parse_size, action="append", metavar="HxW",
                        help=f"an image size, repeatable (default: {' '.join(f'{h}x{w}' for h, w in DEFAULT_SIZES)})")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    return run_main("ppdnn.stages.key_space", lambda: key_space(args.out, args.sizes or DEFAULT_SIZES),
                    debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

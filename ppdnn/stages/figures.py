"""The figures stage: the paper's Fig. 1 and Fig. 4 on a photograph, and CIFAR-10 test
images under every scheme.

    python -m ppdnn.stages.figures --data data/cifar10 --out results/figures

The photograph is matplotlib's sample ``grace_hopper.jpg`` (ships with a dependency). The
CIFAR-10 grid needs the data stage's cache (``--data``) or the JPEG archive (``--archive``);
without either it is skipped, with a line saying so.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ppdnn import ciphers, plan
from ppdnn import figures as drawing
from ppdnn.errors import run_main
from ppdnn.files import check_writable

# How the paper's figures title the configurations of params.yaml; any other configuration
# (a scheme added as one file) appears in the CIFAR-10 grid under its own name.
TITLES = {"tanaka": "Tanaka [6]", "etc": "EtC [9, 10]", "chaotic_rc4": "chaotic/RC4 [16]",
          "pixel": "proposed, step 2", "pixel_shuffle": "proposed, steps 2+3"}
FIG1 = ("tanaka", "etc", "chaotic_rc4")
FIG4 = ("pixel", "pixel_shuffle")
MAX_PHOTO_SIZE = 2048  # a 2048x2048 photo already takes seconds per scheme
MAX_PER_CLASS = 20


def keys(shape, key_seed: int, configurations) -> dict[str, ciphers.Cipher]:
    """The pipeline's key of each configuration (``ciphers.make_for_configuration``) for
    images of ``shape``, leaving out those that do not encrypt (the plain baseline)."""
    out = {}
    for configuration in configurations:
        if ciphers.key_space(configuration.scheme, shape, **configuration.options) > 1:
            out[configuration.name] = ciphers.make_for_configuration(configuration, key_seed, shape)
    return out


def figures(out_dir, configurations, key_seed: int = 0, cache_dir="data/cifar10", archive=None,
            photo_size: int = 256, per_class: int = 1) -> dict[str, Path]:
    """Write fig1_conventional.png, fig4_proposed.png and (with CIFAR-10 at hand)
    cifar10_encrypted_grid.png to ``out_dir``; returns {file name: path} of those written.
    ``configurations``: :class:`ciphers.Configuration` objects (params.yaml's ``ciphers``)."""
    _check_int("key_seed", key_seed, 0, None)
    _check_int("photo_size", photo_size, 8, MAX_PHOTO_SIZE)
    if photo_size % ciphers.BLOCK:
        raise ValueError(f"photo_size must be a multiple of {ciphers.BLOCK} (the block schemes' block), "
                         f"got {photo_size}")
    _check_int("per_class", per_class, 1, MAX_PER_CLASS)
    check_writable(out_dir)
    out = Path(out_dir)
    photo = drawing.sample_photo(photo_size)
    configurations = list(configurations)
    photo_keys = keys(photo.shape[:2], key_seed, configurations)
    encrypted = {name: key.encrypt(photo) for name, key in photo_keys.items()}
    for name, key in photo_keys.items():  # a figure of a key that does not decrypt would mislead
        if not np.array_equal(key.decrypt(encrypted[name]), photo):
            raise RuntimeError(f"{name}: decrypting the encrypted photo does not give it back")
    written = {}
    for file_name, names in (("fig1_conventional.png", FIG1), ("fig4_proposed.png", FIG4)):
        names = [n for n in names if n in photo_keys]
        titles = ["(a) original"] + [f"({chr(98 + i)}) {TITLES[n]}" for i, n in enumerate(names)]
        fig = drawing.image_row([photo] + [encrypted[n] for n in names], titles)
        written[file_name] = drawing.save_figure(fig, out / file_name)
    samples = drawing.cifar_test_samples(per_class, cache_dir=cache_dir, archive=archive)
    if samples is None:
        print(f"figures: CIFAR-10 not found (no cache in {cache_dir}, no archive at {archive}): grid skipped",
              file=sys.stderr)
    else:
        images = samples[0]
        grid_keys = keys(images.shape[1:3], key_seed, configurations)
        fig = drawing.image_grid([images] + [key.encrypt(images) for key in grid_keys.values()],
                                 ["original"] + [TITLES.get(n, n) for n in grid_keys])
        written["cifar10_encrypted_grid.png"] = drawing.save_figure(fig, out / "cifar10_encrypted_grid.png")
    print(f"figures: {', '.join(str(p) for p in written.values())}")
    return written


def _check_int(name: str, value, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {bound}, got {value!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.stages.figures", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=plan.PARAMS, help="reads key_seed and ciphers")
    parser.add_argument("--out", required=True, help="folder for the PNGs")
    parser.add_argument("--data", default="data/cifar10", help="the data stage's CIFAR-10 cache")
    parser.add_argument("--archive", default=None, help="CIFAR-10 JPEG archive, used if there is no cache")
    parser.add_argument("--photo-size", type=int, default=256, help="side of the square photo (multiple of 4)")
    parser.add_argument("--per-class", type=int, default=1, help="CIFAR-10 test images per class in the grid")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    def stage():
        params = plan.read(args.params)
        configurations = ciphers.configurations(plan.cipher_entries(params, args.params))
        figures(args.out, configurations, plan.key_seed(params, args.params), args.data, args.archive,
                args.photo_size, args.per_class)

    return run_main("ppdnn.stages.figures", stage, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

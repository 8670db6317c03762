"""The ``ppdnn`` command: ``keygen``, ``encrypt`` and ``decrypt`` for a user's own images.

Sub-commands are registered in ``COMMANDS`` (name -> builder that adds a sub-parser and
sets ``func``), so more can be added without touching :func:`main`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ppdnn import ciphers
from ppdnn.files import atomic_write

THREAT_MODEL = (
    "Threat model: an honest but curious server stores your images and trains or runs a model "
    "on them, seeing only encrypted images and never the key, which stays with you (one key per "
    "data set). This is perceptual encryption, which hides what people see, not all "
    "information: published attacks recover images partly from ciphertexts alone and fully "
    "from a few chosen images, so do not use it where standard encryption is required."
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LOSSLESS_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp", ".jp2", ".jpx", ".heic", ".avif")


class CliError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


# ------------------------------------------------------------ keygen
def add_keygen(sub) -> None:
    p = sub.add_parser("keygen", help="create a secret key file",
                       description="Create a key file (JSON, mode 0600). " + THREAT_MODEL)
    p.add_argument("key", type=Path, help="where to write the key (e.g. key.json)")
    p.add_argument("--scheme", choices=ciphers.SCHEMES, default="pixel",
                   help="encryption scheme (default: pixel, the paper's proposal)")
    p.add_argument("--shuffle", action="store_true",
                   help="pixel only: add step 3, the per-pixel colour shuffle of Table 1")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(32, 32),
                   help="image height and width the key is for (default: 32 32)")
    p.add_argument("--seed", type=int, default=None,
                   help="reproducible key for experiments; omit for a key from OS entropy")
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    p.set_defaults(func=run_keygen)


def run_keygen(args) -> None:
    cipher = ciphers.make(args.scheme, shape=tuple(args.size), shuffle=args.shuffle, seed=args.seed)
    cipher.save(args.key, overwrite=args.force)
    print(f"wrote {args.key}: {cipher.label}, {cipher.shape[0]}x{cipher.shape[1]} images, "
          f"log10 key space {cipher.key_space_log10:.1f}"
          + ("" if args.seed is None else f", seed {args.seed} (reproducible, not secret)"))


# ------------------------------------------------------------ encrypt / decrypt
def add_transform(sub, name: str) -> None:
    encrypting = name == "encrypt"
    p = sub.add_parser(
        name, help=f"{name} a folder of PNG/JPEG images, one image or an .npz",
        description=(f"{name.capitalize()} images with a key from `ppdnn keygen`. "
                     "INPUT is a folder of .png/.jpg/.jpeg files, one image file or an .npz "
                     "(every uint8 array of shape (..., H, W, 3) is transformed, the others "
                     "copied). OUTPUT is a folder, an image file or an .npz to match. "
                     + ("Encrypted images are written losslessly: JPEG and other lossy "
                        "formats are refused because they would destroy decryptability. "
                        if encrypting else "") + THREAT_MODEL))
    p.add_argument("input", type=Path, help="folder, image file or .npz")
    p.add_argument("output", type=Path, help="folder, image file or .npz")
    p.add_argument("--key", type=Path, required=True, help="key file from `ppdnn keygen`")
    p.add_argument("--format", choices=("png", "jpeg"), default="png",
                   help="image format of a folder OUTPUT (default png"
                        + ("; jpeg is refused for encrypted images)" if encrypting else ")"))
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=run_transform, direction=name)


def run_transform(args) -> None:
    cipher = ciphers.load(args.key)
    encrypting = args.direction == "encrypt"
    transform = cipher.encrypt if encrypting else cipher.decrypt
    if not args.input.exists():
        raise FileNotFoundError(f"input {args.input} does not exist")
    if args.input.suffix.lower() == ".npz":
        _transform_npz(args, cipher, transform)
        return
    if args.input.is_dir():
        sources = sorted(p for p in args.input.iterdir()
                         if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not sources:
            raise CliError(f"no {'/'.join(IMAGE_SUFFIXES)} files in {args.input}")
        suffix = ".png" if args.format == "png" else ".jpg"
        targets = [args.output / (p.stem + suffix) for p in sources]
        if len(set(targets)) != len(targets):
            raise CliError(f"two input files share a name stem in {args.input}; "
                           "their outputs would overwrite each other")
    elif args.input.suffix.lower() in IMAGE_SUFFIXES:
        sources, targets = [args.input], [args.output]
    else:
        raise CliError(f"input {args.input} is not a folder, a .png/.jpg/.jpeg file or an .npz")
    for target in targets:
        suffix = target.suffix.lower()
        if encrypting and suffix in LOSSY_SUFFIXES:
            raise CliError(f"refusing to write encrypted images as {suffix}: lossy compression "
                           "would destroy decryptability; use .png (or an .npz)")
        if encrypting and suffix not in LOSSLESS_SUFFIXES:
            raise CliError(f"output {target} must end in one of {', '.join(LOSSLESS_SUFFIXES)}")
    if not encrypting and any(p.suffix.lower() in LOSSY_SUFFIXES for p in sources):
        print("warning: decrypting JPEG files; images encrypted and then saved lossily "
              "cannot be recovered exactly", file=sys.stderr)
    _refuse_overwrite(targets, args.force)
    images = np.stack([_read_image(p, cipher.shape) for p in sources])
    for target, image in zip(targets, transform(images)):
        atomic_write(target, lambda f, image=image, fmt=_pil_format(target):
                      Image.fromarray(image).save(f, format=fmt))
    print(f"{args.direction}ed {len(sources)} image(s) with a {cipher.label} key -> {args.output}")


def _transform_npz(args, cipher, transform) -> None:
    if args.output.suffix.lower() != ".npz":
        raise CliError(f"an .npz input needs an .npz output, got {args.output}")
    _refuse_overwrite([args.output], args.force)
    expected = (*cipher.shape, 3)
    done, arrays = [], {}
    try:
        with np.load(args.input, allow_pickle=False) as npz:
            for name in npz.files:
                array = npz[name]
                if array.dtype == np.uint8 and array.ndim in (3, 4) and array.shape[-3:] == expected:
                    array = transform(array)
                    done.append(name)
                arrays[name] = array
    except (OSError, ValueError) as err:
        raise CliError(f"cannot read {args.input} as an .npz ({err})") from None
    if not done:
        raise CliError(f"{args.input} holds no uint8 array of shape (..., {expected[0]}, "
                       f"{expected[1]}, 3) that fits this key")
    atomic_write(args.output, lambda f: np.savez(f, **arrays))
    print(f"{args.direction}ed arrays {', '.join(done)} with a {cipher.label} key -> {args.output}")


def _read_image(path: Path, shape) -> np.ndarray:
    try:
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as err:
        raise CliError(f"cannot read image {path} ({err})") from None
    if image.shape[:2] != tuple(shape):
        raise CliError(f"{path} is {image.shape[1]}x{image.shape[0]} (WxH) but the key is for "
                       f"{shape[1]}x{shape[0]} images")
    return image


def _pil_format(path: Path) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF",
            ".tiff": "TIFF", ".webp": "WEBP"}.get(path.suffix.lower(), "PNG")


def _refuse_overwrite(targets, force: bool) -> None:
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{len(existing)} output file(s) exist, e.g. {existing[0]}; "
                              "pass --force to replace them")


# ------------------------------------------------------------ entry point
COMMANDS: dict[str, Callable] = {
    "keygen": add_keygen,
    "encrypt": lambda sub: add_transform(sub, "encrypt"),
    "decrypt": lambda sub: add_transform(sub, "decrypt"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppdnn", description="Privacy-preserving DNNs with pixel-based image encryption. "
        + THREAT_MODEL)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS.values():
        add(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CliError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"ppdnn {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``ppdnn`` command: ``keygen``, ``encrypt`` and ``decrypt`` for a user's own images.

Sub-commands are registered in ``COMMANDS`` (name -> builder that adds a sub-parser and
sets ``func``), so more can be added without touching :func:`main`.

What the command guarantees:
- every failure is one line on stderr and exit status 1 (``--debug``: the traceback);
- all inputs are read and checked before the first output is written, outputs are
  written all or nothing, and nothing the user had is replaced without ``--force``;
- no image data leaves ``encrypt`` unencrypted, and nothing is converted silently;
- every encrypted output carries the key's public fingerprint, so decrypting with the
  wrong key, decrypting what was never encrypted and encrypting twice are refused.
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, PngImagePlugin

from ppdnn import ciphers
from ppdnn.errors import PpdnnError, run_main
from ppdnn.files import check_writable, write_files

THREAT_MODEL = (
    "Threat model: an honest but curious server stores your images and trains or runs a model "
    "on them, seeing only encrypted images and never the key, which stays with you (one key per "
    "data set). This is perceptual encryption, which hides what people see, not all "
    "information: published attacks recover images partly from ciphertexts alone and fully "
    "from a few chosen images, so do not use it where standard encryption is required."
)
INPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Encrypted images must be lossless and carry the key fingerprint: PNG (a text chunk) only.
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp", ".jp2", ".jpx", ".heic", ".avif")
NO_FINGERPRINT_SUFFIXES = (".bmp", ".tif", ".tiff", ".gif", ".ppm", ".tga")
DECRYPTED_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP",
                     ".tif": "TIFF", ".tiff": "TIFF"}
FINGERPRINT_TEXT = "ppdnn-key-fingerprint"   # PNG text chunk of an encrypted image
FINGERPRINT_FIELD = "ppdnn_key_fingerprint"  # 0-d string array in an encrypted .npz
# 8-bit modes --convert-to-rgb may turn into RGB, and what that loses.
CONVERTIBLE_MODES = {"1": "black and white", "L": "8-bit grey", "LA": "8-bit grey with alpha",
                     "P": "palette", "PA": "palette with alpha", "RGBA": "RGB with alpha",
                     "RGBa": "RGB with premultiplied alpha", "RGBX": "RGB with padding",
                     "CMYK": "CMYK", "YCbCr": "YCbCr"}
CONVERT_HELP = (
    "convert 8-bit images that are not RGB (grey L/LA, black and white 1, palette "
    "P/PA, RGBA, RGBX, CMYK, YCbCr) to RGB first. Alpha and transparency are dropped "
    "(transparent pixels show the colour stored under them), grey is copied into R, G and B, "
    "palettes are expanded, CMYK uses Pillow's simple formula without colour management; "
    "decrypting gives back the converted RGB image, not the original file. 16-bit and "
    "floating-point images are always refused: 8 bits would destroy them.")
KEEP_HELP = (
    ".npz input: pass the array NAME through unencrypted (repeat for several). Only "
    "a 1-d integer array with one entry per image, such as labels, may be kept; every other "
    "array must be an image array this key encrypts, or the input is refused.")


class CliError(PpdnnError):
    """A problem with the user's input, reported as one line without a traceback."""


def warn(message: str) -> None:
    print(f"ppdnn: warning: {message}", file=sys.stderr)


# ------------------------------------------------------------ keygen
def add_keygen(sub) -> None:
    p = sub.add_parser("keygen", help="create a secret key file",
                       description="Create a key file (JSON, mode 0600). " + THREAT_MODEL)
    p.add_argument("key", type=Path, help="where to write the key (e.g. key.json)")
    p.add_argument("--scheme", choices=ciphers.schemes(), default="pixel",
                   help="encryption scheme (default: pixel, the paper's proposal)")
    p.add_argument("--shuffle", action="store_true",
                   help="pixel only: add step 3, the per-pixel colour shuffle of Table 1")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(32, 32),
                   help="image height and width the key is for (default: 32 32)")
    p.add_argument("--seed", type=int, default=None,
                   help="reproducible key for experiments; omit for a key from OS entropy")
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    add_debug(p)
    p.set_defaults(func=run_keygen)


def run_keygen(args) -> None:
    if args.key.is_dir():
        raise CliError(f"key path {args.key} is a folder; give a file name, e.g. {args.key / 'key.json'}")
    check_writable(args.key.parent)
    cipher = ciphers.make(args.scheme, shape=tuple(args.size), shuffle=args.shuffle, seed=args.seed)
    cipher.save(args.key, overwrite=args.force)
    print(f"wrote {args.key}: {cipher.label}, {cipher.shape[0]}x{cipher.shape[1]} images, "
          f"log10 key space {cipher.key_space_log10:.1f}, fingerprint {cipher.fingerprint}"
          + ("" if args.seed is None else f", seed {args.seed} (reproducible, not secret)"))


def load_key(path: Path, encrypting: bool):
    """The key at ``path``, with ssh-like warnings about a key others can read."""
    if path.is_dir():
        raise CliError(f"--key {path} is a folder; pass the key file from `ppdnn keygen` "
                       f"(e.g. {path / 'key.json'})")
    cipher = ciphers.load(path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        warn(f"key file {path} is accessible by group or others (mode {mode:04o}); whoever can "
             f"read it can decrypt your images: run `chmod 600 {path}`")
    if encrypting and cipher.scheme == "plain":
        warn(f"{path} is a 'plain' key: the output is NOT encrypted, only copied")
    return cipher


# ------------------------------------------------------------ encrypt / decrypt
def add_transform(sub, name: str) -> None:
    encrypting = name == "encrypt"
    p = sub.add_parser(
        name, help=f"{name} a folder of images, one image or an .npz",
        description=(
            f"{name.capitalize()} images with a key from `ppdnn keygen`. INPUT is a folder of "
            f"{'/'.join(INPUT_SUFFIXES)} files (not its sub-folders), one such file or an .npz; "
            "OUTPUT is a folder, an image file or an .npz to match. Every input is read and "
            "checked before anything is written, and nothing is replaced without --force. "
            + ("Images must be 8-bit RGB (see --convert-to-rgb). Encrypted images are written "
               "as PNG carrying the key's public fingerprint (a text chunk; a field in an "
               ".npz), so that decrypting with another key is caught: lossy formats would "
               "destroy decryptability and BMP/TIFF cannot carry the fingerprint. In an .npz "
               "every uint8 array of shape (N, H, W, 3) for the key's H, W is encrypted; any "
               "other array is refused unless kept with --keep. "
               if encrypting else
               "Inputs must carry the fingerprint of this key (written by `ppdnn encrypt`); "
               "the output carries none. In an .npz every uint8 array of shape (N, H, W, 3) "
               "is decrypted and the other arrays are copied. ")
            + THREAT_MODEL))
    p.add_argument("input", type=Path, help="folder, image file or .npz")
    p.add_argument("output", type=Path, help="folder, image file or .npz")
    p.add_argument("--key", type=Path, required=True, help="key file from `ppdnn keygen`")
    p.add_argument("--format", choices=("png", "jpeg"), default="png",
                   help="image format of a folder OUTPUT (default png" + (
                       "; jpeg is refused for encrypted images: lossy)" if encrypting else
                       "; jpeg is lossy)"))
    if encrypting:
        p.add_argument("--convert-to-rgb", action="store_true", help=CONVERT_HELP)
        p.add_argument("--keep", action="append", default=[], metavar="NAME", help=KEEP_HELP)
    p.add_argument("--force", action="store_true",
                   help="replace existing output files; " + (
                       "encrypt inputs that already carry a key fingerprint (encrypting twice)"
                       if encrypting else
                       "decrypt inputs without this key's fingerprint (gives noise if the key is wrong)")
                   + "; each override is warned about")
    add_debug(p)
    p.set_defaults(func=run_transform, direction=name)


def run_transform(args) -> None:
    encrypting = args.direction == "encrypt"
    cipher = load_key(args.key, encrypting)
    if not args.input.exists():
        raise FileNotFoundError(f"input {args.input} does not exist")
    if args.input.is_file() and args.input.suffix.lower() == ".npz":
        transform_npz(args, cipher, encrypting)
    else:
        transform_images(args, cipher, encrypting)


# -- image files
def transform_images(args, cipher, encrypting: bool) -> None:
    sources, targets = plan_image_outputs(args, encrypting)
    refuse_replacing_inputs(args, sources, targets)
    refuse_existing(targets, args.force)
    check_writable(targets[0].parent)

    images, fingerprints, problems = [], [], []
    for path in sources:  # read and check everything before writing anything
        try:
            image, fingerprint = read_image(path, cipher.shape,
                                            convert=getattr(args, "convert_to_rgb", False))
        except CliError as err:
            problems.append(str(err))
            continue
        images.append(image)
        fingerprints.append(fingerprint)
    if problems:
        more = f" (and {len(problems) - 1} more file(s) with problems)" if len(problems) > 1 else ""
        raise CliError(problems[0] + more)
    check_fingerprints(list(zip(sources, fingerprints)), cipher, args, encrypting)
    if not encrypting and any(p.suffix.lower() in LOSSY_SUFFIXES for p in sources):
        warn("decrypting JPEG files: images saved lossily after encryption cannot be recovered exactly")

    transform = cipher.encrypt if encrypting else cipher.decrypt
    results = transform(np.stack(images))
    fingerprint = cipher.fingerprint if encrypting else None  # decrypted output carries none
    write_files([(target, image_writer(image, target, fingerprint))
                 for target, image in zip(targets, results)], overwrite=args.force)
    print(f"{args.direction}ed {len(sources)} image(s) with a {cipher.label} key "
          f"(fingerprint {cipher.fingerprint}) -> {args.output}")


def image_writer(image: np.ndarray, target: Path, fingerprint: str | None) -> Callable:
    """write(f) for :func:`write_files`: ``image`` in the format of ``target``'s suffix, the
    key fingerprint (if any) in a PNG text chunk."""
    options = {}
    if fingerprint is not None:
        options["pnginfo"] = PngImagePlugin.PngInfo()
        options["pnginfo"].add_text(FINGERPRINT_TEXT, fingerprint)
    image_format = DECRYPTED_FORMATS[target.suffix.lower()]
    return lambda f: Image.fromarray(image).save(f, format=image_format, **options)


def plan_image_outputs(args, encrypting: bool) -> tuple[list[Path], list[Path]]:
    """(input files, output files) for a folder or one image, with every format check."""
    if encrypting and args.format != "png":
        raise CliError(f"refusing to write encrypted images as {args.format}: lossy compression "
                       "would destroy decryptability; use png (or an .npz)")
    out_suffix = ".png" if args.format == "png" else ".jpg"
    if args.input.is_dir():
        sources = sorted(p for p in args.input.iterdir()
                         if p.suffix.lower() in INPUT_SUFFIXES and p.is_file())
        if not sources:
            raise CliError(f"no {'/'.join(INPUT_SUFFIXES)} files in {args.input}")
        if args.output.exists() and not args.output.is_dir():
            raise CliError(f"input {args.input} is a folder, so OUTPUT must be a folder; "
                           f"{args.output} is a file")
        if not args.output.exists() and args.output.suffix.lower() in (*INPUT_SUFFIXES, ".npz"):
            raise CliError(f"input {args.input} is a folder, so OUTPUT must be a folder, not "
                           f"{args.output}")
        targets = [args.output / (p.stem + out_suffix) for p in sources]
        if len(set(targets)) != len(targets):
            raise CliError(f"two input files share a name stem in {args.input}; "
                           "their outputs would overwrite each other")
        return sources, targets
    if args.input.suffix.lower() not in INPUT_SUFFIXES:
        raise CliError(f"input {args.input} is not a folder, an image "
                       f"({'/'.join(INPUT_SUFFIXES)}) or an .npz")
    target = args.output / (args.input.stem + out_suffix) if args.output.is_dir() else args.output
    suffix = target.suffix.lower()
    if encrypting and suffix in LOSSY_SUFFIXES:
        raise CliError(f"refusing to write encrypted images as {suffix}: lossy compression "
                       "would destroy decryptability; use .png (or an .npz)")
    if encrypting and suffix in NO_FINGERPRINT_SUFFIXES:
        raise CliError(f"refusing to write encrypted images as {suffix}: it cannot carry the "
                       "key fingerprint that catches decrypting with the wrong key; use .png")
    if encrypting and suffix != ".png":
        raise CliError(f"output {target} must end in .png")
    if suffix not in DECRYPTED_FORMATS:
        raise CliError(f"output {target} must end in one of {', '.join(DECRYPTED_FORMATS)}")
    return [args.input], [target]


def read_image(path: Path, shape, convert: bool) -> tuple[np.ndarray, str | None]:
    """An 8-bit RGB image as (H, W, 3) uint8 and the key fingerprint it carries, or None.

    The size, frame count and mode are checked before the pixels are decoded, so a
    decompression bomb or a huge photo costs nothing; Pillow's bomb warning is an error.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.size != (shape[1], shape[0]):
                    raise CliError(f"{path} is {im.width}x{im.height} (WxH) but the key is for "
                                   f"{shape[1]}x{shape[0]} images")
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    raise CliError(f"{path} has {frames} frames (animated or multi-page); ppdnn "
                                   "takes single images: save each frame as its own file")
                check_mode(path, im, convert)
                im.load()
                fingerprint = im.info.get(FINGERPRINT_TEXT)
                image = np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise CliError(f"{path} refused as a possible decompression bomb: {err}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise CliError(f"cannot read image {path} ({reason})") from None
    return image, fingerprint if isinstance(fingerprint, str) else None


def check_mode(path: Path, im: Image.Image, convert: bool) -> None:
    """Refuse what is not 8-bit RGB; with ``convert``, allow the 8-bit modes RGB can hold."""
    bits = sample_bits(im)
    if bits > 8 or im.mode.startswith(("I", "F")):
        raise CliError(f"{path} is a {bits}-bit {im.mode} image, not 8-bit RGB: ppdnn refuses it "
                       "because clipping it to 8 bits would destroy it; convert it to 8-bit RGB "
                       "yourself, scaling as you need")
    if im.mode == "RGB":
        return
    if im.mode not in CONVERTIBLE_MODES:
        raise CliError(f"{path} has mode {im.mode}, not 8-bit RGB, and ppdnn cannot convert it; "
                       "convert it to 8-bit RGB yourself")
    if not convert:
        raise CliError(f"{path} has mode {im.mode} ({CONVERTIBLE_MODES[im.mode]}), not 8-bit RGB; "
                       "pass --convert-to-rgb to convert it (see --help for what that loses) "
                       "or convert it yourself")


def sample_bits(im: Image.Image) -> int:
    """Bits per sample of the file; Pillow opens 16-bit RGB(A) PNGs and TIFFs as 8-bit modes."""
    if im.format == "PNG":
        rawmodes = [t.args if isinstance(t.args, str) else t.args[0] for t in im.tile]
        return 16 if any(";16" in r for r in rawmodes) else 8
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, 8)  # BitsPerSample, one value per channel
        return max(bits) if isinstance(bits, tuple) else int(bits)
    return 8


def check_fingerprints(found: list[tuple[Path, str | None]], cipher, args, encrypting: bool) -> None:
    """Refuse encrypting twice, decrypting what was never encrypted or used another key."""
    if encrypting:
        bad = [(p, fp) for p, fp in found if fp is not None]
        if bad:
            _refuse_unless_forced(args, f"{bad[0][0]} already carries a ppdnn key fingerprint ({bad[0][1]}): "
                                        f"it is encrypted already{_more(bad)}",
                                  "encrypting twice needs both keys to decrypt, pass --force if you mean it")
        return
    missing = [p for p, fp in found if fp is None]
    if missing:
        _refuse_unless_forced(args, f"{missing[0]} carries no ppdnn key fingerprint: not encrypted by ppdnn, "
                                    f"or the fingerprint was stripped{_more(missing)}",
                              "pass --force to decrypt it anyway")
    other = [(p, fp) for p, fp in found if fp is not None and fp != cipher.fingerprint]
    if other:
        _refuse_unless_forced(args, f"{other[0][0]} was encrypted with another key (fingerprint {other[0][1]}, "
                                    f"key {args.key} has {cipher.fingerprint}){_more(other)}",
                              "decrypting would give noise: use the key it was encrypted with, or pass --force")


def _refuse_unless_forced(args, problem: str, remedy: str) -> None:
    if not args.force:
        raise CliError(f"{problem}; {remedy}")
    warn(problem + " (--force was given, going on)")


def _more(items: list) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


# -- .npz
def transform_npz(args, cipher, encrypting: bool) -> None:
    if args.output.suffix.lower() != ".npz":
        raise CliError(f"an .npz input needs an .npz output, got {args.output}")
    refuse_replacing_inputs(args, [args.input], [args.output])
    refuse_existing([args.output], args.force)
    check_writable(args.output.parent)

    arrays = read_npz(args.input)
    fingerprint = pop_fingerprint(arrays, args.input)
    expected = (*cipher.shape, 3)
    images = [n for n, a in arrays.items()
              if a.dtype == np.uint8 and a.ndim in (3, 4) and a.shape[-3:] == expected]
    if not images:
        raise CliError(f"{args.input} holds no uint8 image array of shape (N, {expected[0]}, "
                       f"{expected[1]}, 3) that fits this key; it has {describe(arrays) or 'no arrays'}")
    others = [n for n in arrays if n not in images]
    if encrypting:
        check_kept_arrays(args, arrays, images, others)
    check_fingerprints([(args.input, fingerprint)], cipher, args, encrypting)

    transform = cipher.encrypt if encrypting else cipher.decrypt
    out = {n: transform(a) if n in images else a for n, a in arrays.items()}
    if encrypting:
        out[FINGERPRINT_FIELD] = np.array(cipher.fingerprint)
    write_files([(args.output, lambda f: np.savez(f, **out))], overwrite=args.force)
    print(f"{args.direction}ed array(s) {', '.join(images)} with a {cipher.label} key "
          f"(fingerprint {cipher.fingerprint})"
          + (f", kept {', '.join(others)} unchanged" if others else "") + f" -> {args.output}")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, never unpickling (object arrays are refused, by name)."""
    if not zipfile.is_zipfile(path):
        raise CliError(f"{path} is not a valid .npz (not a zip archive, or truncated)")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for name in npz.files:
                try:
                    arrays[name] = npz[name]
                except ValueError as err:
                    if "allow_pickle" in str(err):
                        raise CliError(f"{path}: array {name!r} holds Python objects, which ppdnn "
                                       "never loads (unpickling can run code); store numbers only") from None
                    raise CliError(f"{path}: cannot read array {name!r} ({err})") from None
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as err:
        raise CliError(f"{path} is a damaged .npz ({type(err).__name__}: {err})") from None
    return arrays


def pop_fingerprint(arrays: dict, path: Path) -> str | None:
    if FINGERPRINT_FIELD not in arrays:
        return None
    field = arrays.pop(FINGERPRINT_FIELD)
    if field.ndim != 0 or field.dtype.kind != "U":
        raise CliError(f"{path}: field {FINGERPRINT_FIELD} is damaged (expected a 0-d string, "
                       f"got {field.dtype} {field.shape})")
    return str(field[()])


def check_kept_arrays(args, arrays: dict, images: list[str], others: list[str]) -> None:
    """Every array that is not encrypted must be named in --keep and be a label array."""
    counts = sorted({len(arrays[n]) if arrays[n].ndim == 4 else 1 for n in images})
    for name in args.keep:
        if name not in arrays:
            raise CliError(f"--keep {name}: {args.input} has no array {name!r} "
                           f"(it has {', '.join(arrays) or 'none'})")
        array = arrays[name]
        if name in images:
            raise CliError(f"--keep {name}: {name!r} is image data ({describe({name: array})}); "
                           "ppdnn never writes image data unencrypted")
        if array.ndim != 1 or array.dtype.kind not in "biu" or len(array) not in counts:
            raise CliError(f"--keep {name}: only a 1-d integer array with one entry per image "
                           f"({' or '.join(map(str, counts))} entries) may be kept, and "
                           f"{describe({name: array})} is not one; remove it from the .npz")
    unkept = {n: arrays[n] for n in others if n not in args.keep}
    if unkept:
        raise CliError(f"{args.input}: {describe(unkept)} would not be encrypted, and ppdnn never "
                       f"writes them in plaintext: it encrypts uint8 arrays of shape (N, "
                       f"{arrays[images[0]].shape[-3]}, {arrays[images[0]].shape[-2]}, 3) only; "
                       "remove the other arrays, or pass --keep NAME for a label array "
                       "(1-d integers, one per image)")


def describe(arrays: dict) -> str:
    return ", ".join(f"{n!r} ({a.dtype} {a.shape})" for n, a in arrays.items())


# -- outputs
def refuse_replacing_inputs(args, sources: list[Path], targets: list[Path]) -> None:
    """An output may never be an input or the key, not even with --force: they may be the
    only copy the user has. Nor may a folder be written into itself."""
    if args.input.is_dir() and args.output.resolve() == args.input.resolve():
        raise CliError(f"output folder {args.output} is the input folder; write to another folder "
                       "(ppdnn never replaces its input, nor writes into its input folder)")
    inputs = {p.resolve(): f"the input {p}" for p in sources}
    inputs[args.key.resolve()] = f"the key {args.key}"
    for target in targets:
        if target.resolve() in inputs:
            raise CliError(f"output {target} is {inputs[target.resolve()]}; write to another path "
                           "(ppdnn never replaces its input or its key)")


def refuse_existing(targets: list[Path], force: bool) -> None:
    existing = [t for t in targets if os.path.lexists(t)]
    if not existing:
        return
    folders = [t for t in existing if t.is_dir()]
    if folders:
        raise CliError(f"output {folders[0]} is a folder; it is never replaced")
    if not force:
        raise FileExistsError(f"{len(existing)} output file(s) exist, e.g. {existing[0]}; "
                              "pass --force to replace them")
    warn(f"--force: will replace {len(existing)} existing file(s), e.g. {existing[0]}")


# ------------------------------------------------------------ entry point
COMMANDS: dict[str, Callable] = {
    "keygen": add_keygen,
    "encrypt": lambda sub: add_transform(sub, "encrypt"),
    "decrypt": lambda sub: add_transform(sub, "decrypt"),
}
DEBUG_HELP = "on an error, print the traceback too (or set PPDNN_DEBUG=1)"


def add_debug(parser) -> None:
    # SUPPRESS: a sub-command's default must not override `ppdnn --debug COMMAND`
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppdnn", description="Privacy-preserving DNNs with pixel-based image encryption. "
        + THREAT_MODEL)
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS.values():
        add(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(f"ppdnn {args.command}", lambda: args.func(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())

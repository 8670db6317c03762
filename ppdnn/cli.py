"""The ``ppdnn`` command: ``keygen``, ``encrypt`` and ``decrypt`` for a user's own images.

Sub-commands are registered in ``COMMANDS`` (name -> builder that adds a sub-parser and
sets ``func``), so more can be added without touching :func:`main`.

What the command guarantees:
- every failure is one line on stderr and exit status 1 (``--debug``: the traceback);
- all inputs are read and checked before the first output is written, outputs are
  written all or nothing, and nothing the user had is replaced without ``--force``;
- no image data leaves ``encrypt`` unencrypted, and nothing is converted silently;
- every encrypted output carries the key's public, salted fingerprint and an
  authentication tag over its pixels (:mod:`ppdnn.ciphers.auth`), so decrypting with the
  wrong key, decrypting what was never encrypted (even if it carries a copied
  fingerprint), decrypting altered pixels and encrypting twice are refused;
- only regular files (and symlinks to them) are read or replaced: a FIFO, device or socket
  is refused, even with ``--force``;
- temporary files are private (0600) until complete, SIGTERM is handled like Ctrl-C, and
  what a killed run left (even after SIGKILL) is removed by the next run on that output.
"""
from __future__ import annotations

import argparse
import hashlib
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

from ppdnn import ciphers, data
from ppdnn.ciphers import auth, keyfile
from ppdnn.errors import PpdnnError, printable, run_main
from ppdnn.files import (check_regular_input, check_replaceable, check_writable, display, kind_of,
                         open_regular, remove_stale_temporaries, write_files)

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
# The PNG text chunks of an encrypted image and the 0-d string fields of an encrypted
# .npz: one name each, the pipeline's (older files' names are still read, never written).
FINGERPRINT_FIELD = auth.FINGERPRINT_FIELD
TAG_FIELD = auth.TAG_FIELD
MARK_FIELDS = (FINGERPRINT_FIELD, TAG_FIELD, *auth.LEGACY_FINGERPRINT_FIELDS)
SEED_WARNING = ("a seeded key is only as secret as its seed: anyone who guesses or scans "
                "--seed values can decrypt; omit --seed for a secret key from OS entropy")
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
    print(printable(f"ppdnn: warning: {message}"), file=sys.stderr)


def say(message: str) -> None:
    """Print a result line; a file name that is not UTF-8 cannot make it fail."""
    print(printable(message))


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
                   help="reproducible key for experiments, NOT a secret: " + SEED_WARNING)
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    add_debug(p)
    p.set_defaults(func=run_keygen)


def run_keygen(args) -> None:
    if args.key.is_dir():
        raise CliError(f"key path {display(args.key)} is a folder; give a file name, e.g. "
                       f"{display(args.key / 'key.json')}")
    check_writable(args.key.parent)
    check_replaceable(args.key)  # a device, FIFO or socket is never replaced, even with --force
    remove_stale_temporaries(args.key.parent)
    cipher = ciphers.make(args.scheme, shape=tuple(args.size), shuffle=args.shuffle, seed=args.seed)
    cipher.save(args.key, overwrite=args.force)
    if args.seed is not None:
        warn(SEED_WARNING)
    say(f"wrote {display(args.key)}: {cipher.label}, {cipher.shape[0]}x{cipher.shape[1]} images, "
        f"log10 key space {cipher.key_space_log10:.1f}, fingerprint {KeyCheck(cipher).fingerprint}"
        + ("" if args.seed is None else f", seed {args.seed} (reproducible, not secret)"))


def load_key(path: Path, encrypting: bool):
    """The key at ``path``, with ssh-like warnings about a key others can read."""
    if path.is_dir():
        raise CliError(f"--key {display(path)} is a folder; pass the key file from `ppdnn keygen` "
                       f"(e.g. {display(path / 'key.json')})")
    cipher = ciphers.load(path)  # the key file reader refuses a FIFO or device by name
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        warn(f"key file {path} is accessible by group or others (mode {mode:04o}); whoever can "
             f"read it can decrypt your images: run `chmod 600 {path}`")
    if encrypting and cipher.scheme == "plain":
        warn(f"{path} is a 'plain' key: the output is NOT encrypted, only copied")
    return cipher


class KeyCheck:
    """This call's salted fingerprint of a key, the tags it makes, and the verdict on what
    an input carries (see :mod:`ppdnn.ciphers.auth`)."""

    def __init__(self, cipher):
        self.material = keyfile.material_bytes(cipher.scheme, cipher.shape, cipher.key_material())
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """One salted fingerprint per call (~0.1 s to make, and to check a guess against)."""
        if self._fingerprint is None:
            self._fingerprint = auth.fingerprint(self.material)
        return self._fingerprint

    def marks(self, payload: bytes) -> dict[str, str]:
        """The fields an encrypted output carries: fingerprint and tag over ``payload``."""
        return {FINGERPRINT_FIELD: self.fingerprint,
                TAG_FIELD: auth.tag(self.material, payload, self.fingerprint)}

    def identifies(self, fingerprint: str) -> bool:
        """Whether ``fingerprint`` is of this key: salted, or the unsalted form older
        versions (and the pipeline's data sets) wrote."""
        if auth.is_fingerprint(fingerprint):
            return auth.fingerprint_matches(fingerprint, self.material)
        return fingerprint == self.legacy_fingerprint

    @property
    def legacy_fingerprint(self) -> str:
        body = self.material[len(b"ppdnn-key-material\0"):]
        return hashlib.sha256(b"ppdnn-key-fingerprint\0" + body).hexdigest()[:16]

    def problem(self, marks: dict, payload: Callable[[], bytes]) -> str | None:
        """None if ``marks`` prove the input was encrypted with this key and is intact, else
        which check failed: "missing", "other key", "untagged" or "forged"."""
        fingerprint = marks.get(FINGERPRINT_FIELD)
        if fingerprint is None:
            return "missing"
        if not self.identifies(fingerprint):
            return "other key"
        if TAG_FIELD not in marks or not auth.is_fingerprint(fingerprint):
            return "untagged"
        ok = auth.check_tag(self.material, payload(), fingerprint, marks[TAG_FIELD])
        return None if ok else "forged"


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
               "as PNG carrying the key's public, salted fingerprint and an authentication "
               "tag over the pixels (text chunks key_fingerprint and key_tag; fields of an "
               ".npz), so that decrypting with another key, or what was not encrypted with "
               "this key, or was altered afterwards, is caught: lossy formats would "
               "destroy decryptability and BMP/TIFF cannot carry the fingerprint. In an .npz "
               "every uint8 array of shape (N, H, W, 3) for the key's H, W is encrypted; any "
               "other array is refused unless kept with --keep. "
               if encrypting else
               "Inputs must carry the fingerprint of this key and a valid authentication tag "
               "(written by `ppdnn encrypt`); the output carries neither. In an .npz every uint8 array of shape (N, H, W, 3) "
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
                       "decrypt inputs without this key's fingerprint or a valid tag (gives noise "
                       "if the key is wrong)")
                   + "; each override is warned about")
    add_debug(p)
    p.set_defaults(func=run_transform, direction=name)


def run_transform(args) -> None:
    encrypting = args.direction == "encrypt"
    cipher = load_key(args.key, encrypting)
    if not args.input.exists():
        raise FileNotFoundError(f"input {display(args.input)} does not exist")
    if not args.input.is_dir():
        check_regular_input(args.input, "input")  # a FIFO would block for ever
    # what a killed run left in the output folder (0600 temporaries, even after SIGKILL)
    remove_stale_temporaries(args.output if args.output.is_dir() else args.output.parent)
    if args.input.suffix.lower() == ".npz":
        transform_npz(args, cipher, encrypting)
    else:
        transform_images(args, cipher, encrypting)


# -- image files
def transform_images(args, cipher, encrypting: bool) -> None:
    sources, targets = plan_image_outputs(args, encrypting)
    refuse_replacing_inputs(args, sources, targets)
    refuse_existing(targets, args.force)
    check_writable(targets[0].parent)

    images, marks, problems = [], [], []
    for path in sources:  # read and check everything before writing anything
        try:
            image, found = read_image(path, cipher.shape, convert=getattr(args, "convert_to_rgb", False))
        except CliError as err:
            problems.append(str(err))
            continue
        images.append(image)
        marks.append(found)
    if problems:
        more = f" (and {len(problems) - 1} more file(s) with problems)" if len(problems) > 1 else ""
        raise CliError(problems[0] + more)
    check = KeyCheck(cipher)
    payloads = [lambda image=image: auth.images_payload([image]) for image in images]
    check_marks(list(zip(sources, marks, payloads)), check, args, encrypting)
    if not encrypting and any(p.suffix.lower() in LOSSY_SUFFIXES for p in sources):
        warn("decrypting JPEG files: images saved lossily after encryption cannot be recovered exactly")

    transform = cipher.encrypt if encrypting else cipher.decrypt
    results = transform(np.stack(images))
    # encrypted outputs carry fingerprint and tag; decrypted ones carry neither
    outputs = [(target, image_writer(image, target, check.marks(auth.images_payload([image]))
                                     if encrypting else None))
               for target, image in zip(targets, results)]
    write_private(outputs, overwrite=args.force)
    say(f"{args.direction}ed {len(sources)} image(s) with a {cipher.label} key "
        f"(fingerprint {check.fingerprint}) -> {display(args.output)}")


def image_writer(image: np.ndarray, target: Path, marks: dict[str, str] | None) -> Callable:
    """write(f) for :func:`write_files`: ``image`` in the format of ``target``'s suffix, the
    key fingerprint and tag (if any) in PNG text chunks."""
    options = {}
    if marks:
        options["pnginfo"] = PngImagePlugin.PngInfo()
        for name, value in marks.items():
            options["pnginfo"].add_text(name, value)
    image_format = DECRYPTED_FORMATS[target.suffix.lower()]
    return lambda f: Image.fromarray(image).save(f, format=image_format, **options)


def plan_image_outputs(args, encrypting: bool) -> tuple[list[Path], list[Path]]:
    """(input files, output files) for a folder or one image, with every format check."""
    if encrypting and args.format != "png":
        raise CliError(f"refusing to write encrypted images as {args.format}: lossy compression "
                       "would destroy decryptability; use png (or an .npz)")
    out_suffix = ".png" if args.format == "png" else ".jpg"
    if args.input.is_dir():
        # not only regular files: a FIFO or socket named like an image is refused by name
        # when it is read, rather than skipped without a word
        sources = sorted(p for p in args.input.iterdir()
                         if p.suffix.lower() in INPUT_SUFFIXES and not p.is_dir())
        if not sources:
            raise CliError(f"no {'/'.join(INPUT_SUFFIXES)} files in {args.input}")
        if os.path.lexists(args.output) and not args.output.is_dir():
            what = kind_of(os.lstat(args.output).st_mode).replace("a regular file", "a file")
            raise CliError(f"input {args.input} is a folder, so OUTPUT must be a folder; "
                           f"{args.output} is {what}")
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


def read_image(path: Path, shape, convert: bool) -> tuple[np.ndarray, dict[str, str]]:
    """An 8-bit RGB image as (H, W, 3) uint8 and the marks (fingerprint, tag) it carries.

    The size, frame count and mode are checked before the pixels are decoded, so a
    decompression bomb or a huge photo costs nothing; Pillow's bomb warning is an error.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_regular(path, "input image") as f, Image.open(f) as im:
                if im.size != (shape[1], shape[0]):
                    raise CliError(f"{path} is {im.width}x{im.height} (WxH) but the key is for "
                                   f"{shape[1]}x{shape[0]} images")
                frames = getattr(im, "n_frames", 1)
                if frames > 1:
                    raise CliError(f"{path} has {frames} frames (animated or multi-page); ppdnn "
                                   "takes single images: save each frame as its own file")
                check_mode(path, im, convert)
                im.load()
                marks = {name: value for name, value in im.info.items()
                         if name in MARK_FIELDS and isinstance(value, str)}
                image = np.asarray(im.convert("RGB") if im.mode != "RGB" else im, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise CliError(f"{path} refused as a possible decompression bomb: {err}") from None
    except CliError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        if isinstance(err, PpdnnError):  # a FIFO or device: its own line says it all
            raise CliError(str(err)) from None
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise CliError(f"cannot read image {display(path)} ({reason})") from None
    return image, normalised_marks(marks)


def normalised_marks(marks: dict[str, str]) -> dict[str, str]:
    """The marks under today's names (older files wrote the fingerprint under others)."""
    out = {k: v for k, v in marks.items() if k in (FINGERPRINT_FIELD, TAG_FIELD)}
    for legacy in auth.LEGACY_FINGERPRINT_FIELDS:
        if legacy in marks:
            out.setdefault(FINGERPRINT_FIELD, marks[legacy])
    return out


def check_mode(path: Path, im: Image.Image, convert: bool) -> None:
    """Refuse what is not 8-bit RGB; with ``convert``, allow the 8-bit modes RGB can hold.

    The bit-depth rule is the data stage's (:func:`ppdnn.data.bit_depth_problem`)."""
    problem = data.bit_depth_problem(im, display(path))
    if problem:
        raise CliError(problem)
    if im.mode == "RGB":
        return
    if im.mode not in CONVERTIBLE_MODES:
        raise CliError(f"{display(path)} has mode {im.mode}, not 8-bit RGB, and ppdnn cannot convert it; "
                       "convert it to 8-bit RGB yourself")
    if not convert:
        raise CliError(f"{display(path)} has mode {im.mode} ({CONVERTIBLE_MODES[im.mode]}), not 8-bit RGB; "
                       "pass --convert-to-rgb to convert it (see --help for what that loses) "
                       "or convert it yourself")


def check_marks(found: list[tuple[Path, dict, Callable[[], bytes]]], check: KeyCheck, args,
                encrypting: bool) -> None:
    """Refuse encrypting twice, and decrypting what was never encrypted, was encrypted with
    another key, carries no tag, or whose tag does not match its pixels (forged or altered).

    ``found``: (input, its marks, a function giving the payload its tag covers)."""
    if encrypting:
        bad = [(p, m) for p, m, _ in found if FINGERPRINT_FIELD in m]
        if bad:
            _refuse_unless_forced(args, f"{bad[0][0]} already carries a ppdnn key fingerprint "
                                        f"({bad[0][1][FINGERPRINT_FIELD][:60]}): it is encrypted already{_more(bad)}",
                                  "encrypting twice needs both keys to decrypt, pass --force if you mean it")
        return
    verdicts: dict[str, list[Path]] = {}
    for path, marks, payload in found:
        problem = check.problem(marks, payload)
        if problem:
            verdicts.setdefault(problem, []).append(path)
    for problem, paths in verdicts.items():
        _refuse_unless_forced(args, f"{paths[0]} {DECRYPT_PROBLEMS[problem][0]}{_more(paths)}",
                              DECRYPT_PROBLEMS[problem][1])


DECRYPT_PROBLEMS = {  # what a failed check means, and the remedy
    "missing": ("carries no ppdnn key fingerprint: not encrypted by ppdnn, or the fingerprint "
                "was stripped", "pass --force to decrypt it anyway"),
    "other key": ("was encrypted with another key (its fingerprint is not that of this --key)",
                  "decrypting would give noise: use the key it was encrypted with, or pass --force"),
    "untagged": ("carries this key's fingerprint but no authentication tag (written by an older "
                 "ppdnn or the pipeline, or a fingerprint copied onto other data), so ppdnn "
                 "cannot tell it was encrypted with this key", "pass --force if you trust it"),
    "forged": ("carries this key's fingerprint but its authentication tag does not match its "
               "pixels: it was not encrypted with this key, or was altered after encryption "
               "(a copied fingerprint, tampering, or lossy re-saving)",
               "decrypting would give noise; pass --force to decrypt it anyway"),
}


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
    marks = pop_marks(arrays, args.input)
    expected = (*cipher.shape, 3)
    images = [n for n, a in arrays.items()
              if a.dtype == np.uint8 and a.ndim in (3, 4) and a.shape[-3:] == expected]
    if not images:
        raise CliError(f"{args.input} holds no uint8 image array of shape (N, {expected[0]}, "
                       f"{expected[1]}, 3) that fits this key; it has {describe(arrays) or 'no arrays'}")
    others = [n for n in arrays if n not in images]
    if encrypting:
        check_kept_arrays(args, arrays, images, others)
    check = KeyCheck(cipher)
    check_marks([(args.input, marks, lambda: npz_payload(arrays, images))], check, args, encrypting)

    transform = cipher.encrypt if encrypting else cipher.decrypt
    out = {n: transform(a) if n in images else a for n, a in arrays.items()}
    if encrypting:  # decrypted outputs carry no marks: pop_marks removed them
        out.update({k: np.array(v) for k, v in check.marks(npz_payload(out, images)).items()})
    write_private([(args.output, lambda f: np.savez(f, **out))], overwrite=args.force)
    say(f"{args.direction}ed array(s) {', '.join(images)} with a {cipher.label} key "
        f"(fingerprint {check.fingerprint})"
        + (f", kept {', '.join(others)} unchanged" if others else "") + f" -> {display(args.output)}")


def npz_payload(arrays: dict, images: list[str]) -> bytes:
    """What an .npz's tag covers: its encrypted image arrays, by name."""
    names = tuple(sorted(images))
    return auth.images_payload([arrays[n] for n in names], names=names)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, never unpickling (object arrays are refused, by name)."""
    check_regular_input(path, "input")  # a FIFO would block for ever
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


def pop_marks(arrays: dict, path: Path) -> dict[str, str]:
    """Remove the fingerprint and tag fields (today's and older names) from ``arrays``;
    return them under today's names."""
    found = {}
    for name in MARK_FIELDS:
        if name not in arrays:
            continue
        field = arrays.pop(name)
        if field.ndim != 0 or field.dtype.kind != "U":
            raise CliError(f"{path}: field {name} is damaged (expected a 0-d string, "
                           f"got {field.dtype} {field.shape})")
        found[name] = str(field[()])
    return normalised_marks(found)


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
def write_private(outputs: list[tuple[Path, Callable]], overwrite: bool) -> list[Path]:
    """:func:`write_files` with every file private (0600) until all are in place: finished
    temporaries wait for the others, and may hold plaintext. Then the outputs get the mode
    the umask gives new files. A kill in between leaves them 0600, never readable by others."""
    mask = os.umask(0o077)
    try:
        paths = write_files(outputs, overwrite=overwrite)
    finally:
        os.umask(mask)
    for path in paths:
        os.chmod(path, 0o666 & ~mask)
    return paths


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
    for target in existing:  # a device, FIFO, socket: never replaced, even with --force
        check_replaceable(target)
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

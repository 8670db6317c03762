"""CIFAR-10 from either source into cached uint8 arrays plus a manifest.

Sources
- ``torchvision``: the canonical ``cifar-10-python.tar.gz`` through torchvision's
  ``CIFAR10(download=True)`` (md5-checked), or an existing ``cifar-10-batches-py`` folder.
- ``archive``: a folder-per-class tar / tar.gz (``train/<class>/*.jpg|png``,
  ``test/<class>/*``), e.g. the public JPEG copy of CIFAR-10.
- ``auto``: the archive if the file exists, else torchvision (saying which archive path
  was not found).

The cache is one uncompressed ``.npz`` per split (``images`` (N, 32, 32, 3) uint8,
``labels`` (N,) int64) and ``manifest.json`` (source kind and checksum, counts per class,
per-channel mean/std). Every file is written under a temporary name and renamed, and
the manifest last, so an interrupted run never leaves a cache that looks complete; the
temporary files are 0600 and the next run removes what a killed one left
(``files.remove_stale_temporaries``).

Images follow the CLI's rules (:func:`bit_depth_problem`): more than 8 bits per sample
(16-bit PNG or TIFF, 32-bit integer or float modes) is refused, never clipped.

The data stage never destroys what a user had: it writes only into a new or empty folder,
or over its own cache (recognised by its manifest, or by the ``.ppdnn-cache-incomplete``
marker an interrupted write leaves). Every error is a DataError, FileNotFoundError or
ValueError with one line that names the file.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import sys
import tarfile
import warnings
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import PpdnnError, one_line
from .files import (TEMP_PREFIX, atomic_write, check_regular_input, display, open_regular,
                    remove_stale_temporaries)

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
CIFAR10_COUNTS = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE = (32, 32, 3)
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# A 32x32 image file is a few kB; a member far larger is damage or a decompression bomb,
# refused before it is read into memory.
MAX_MEMBER_BYTES = 4 << 20
INCOMPLETE_MARKER = ".ppdnn-cache-incomplete"


class DataError(PpdnnError, RuntimeError):
    """The data could not be obtained or is not what CIFAR-10 should be."""


# ---------------------------------------------------------------- small helpers
def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open_regular(path, "file") as f:  # a FIFO would block for ever
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Exact per-channel mean and std of uint8 (..., C) images, on the [0, 1] scale.

    Histograms instead of a float copy: 50,000 images would need 1.2 GB as float64.
    The std is floored at 1e-6 so that a constant channel can still be normalised.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[-1]):
        hist = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        n = hist.sum()
        mean = float((hist * values).sum() / n)
        var = float((hist * (values - mean) ** 2).sum() / n)
        means.append(mean)
        stds.append(max(var ** 0.5, 1e-6))
    return means, stds


# ---------------------------------------------------------------- image rules (shared with the CLI)
def sample_bits(im: Image.Image) -> int:
    """Bits per sample of the file; Pillow opens 16-bit RGB(A) PNGs and TIFFs as 8-bit modes."""
    if im.format == "PNG":
        rawmodes = [t.args if isinstance(t.args, str) else t.args[0] for t in im.tile]
        return 16 if any(";16" in str(r) for r in rawmodes) else 8
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, 8)  # BitsPerSample, one value per channel
        return max(bits) if isinstance(bits, tuple) else int(bits)
    if im.mode.startswith(("I", "F")):
        return 16 if im.mode.startswith("I;16") else 32
    return 8


def bit_depth_problem(im: Image.Image, name: str) -> str | None:
    """Why ``im`` (opened, not yet decoded) may not become 8-bit RGB, or None.

    More than 8 bits per sample is refused everywhere (CLI and data stage alike): clipping
    to 8 bits would destroy the image (a 16-bit PNG would become nearly all 255).
    """
    bits = sample_bits(im)
    if bits > 8 or im.mode.startswith(("I", "F")):
        return (f"{name} is a {bits}-bit {im.mode} image, not 8-bit RGB: ppdnn refuses it "
                "because clipping it to 8 bits would destroy it; convert it to 8-bit RGB "
                "yourself, scaling as you need")
    return None


# ---------------------------------------------------------------- archive source
def _decode_chunk(items: list[tuple[str, int, bytes]], archive: Path) -> np.ndarray:
    with warnings.catch_warnings():
        # Pillow only warns between once and twice its pixel limit; a bomb is an error here
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return np.stack([_decode(name, payload, archive) for name, _, payload in items])


def _decode(name: str, payload: bytes, archive: Path) -> np.ndarray:
    expected = (IMAGE_SHAPE[1], IMAGE_SHAPE[0])
    try:
        with Image.open(io.BytesIO(payload)) as img:
            if img.size != expected:  # checked before decoding: a bomb costs nothing
                raise DataError(f"image {name!r} in {archive} is {img.width}x{img.height} "
                                f"pixels, expected {expected[0]}x{expected[1]}")
            problem = bit_depth_problem(img, f"image {name!r} in {archive}")
            if problem:
                raise DataError(problem)
            return np.asarray(img.convert("RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"image {name!r} in {archive} refused as a possible decompression bomb: "
                        f"{exc}") from None
    except DataError:
        raise
    except Exception as exc:  # Pillow raises many types for a damaged file; the name is what helps
        raise DataError(f"cannot decode image {name!r} in {archive}: {one_line(exc)}") from None


def read_archive(archive: str | os.PathLike, workers: int | None = None
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode a folder-per-class tar(.gz) into {split: (images, labels)}.

    The archive is read once, sequentially (gzip cannot be read in parallel), and the
    images are decoded in chunks by a pool of worker processes.
    """
    archive = Path(archive)
    if archive.is_dir():
        raise DataError(f"CIFAR-10 archive {archive} is a folder; give the tar or tar.gz file "
                        "(params.yaml: data.archive)")
    if not archive.exists():
        raise FileNotFoundError(f"CIFAR-10 archive not found: {archive}")
    check_regular_input(archive, "CIFAR-10 archive")  # a FIFO would block for ever
    members: dict[str, list[tuple[str, int, bytes]]] = {s: [] for s in SPLITS}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = Path(member.name).parts
                if parts and parts[0] in (".", ""):
                    parts = parts[1:]
                if len(parts) != 3 or Path(parts[2]).suffix.lower() not in IMAGE_SUFFIXES:
                    continue  # README files and the like
                split, cls, _ = parts
                if member.size > MAX_MEMBER_BYTES:
                    raise DataError(f"{archive}: member {member.name!r} is {member.size} bytes, "
                                    f"far more than an image of CIFAR-10 (limit {MAX_MEMBER_BYTES}); "
                                    "damaged archive or decompression bomb")
                if split not in members:
                    raise DataError(f"{archive}: unknown split folder {split!r} in {member.name!r}"
                                    f" (expected {'/'.join(SPLITS)})")
                if cls not in CLASSES:
                    raise DataError(f"{archive}: unknown class folder {cls!r} in {member.name!r}"
                                    f" (expected one of {', '.join(CLASSES)})")
                members[split].append((member.name, CLASSES.index(cls),
                                       tar.extractfile(member).read()))
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{archive}: corrupt or truncated archive ({type(exc).__name__}: "
                        f"{one_line(exc)})") from None

    out = {}
    workers = workers or os.cpu_count() or 1
    # Worker processes, not threads: a 32x32 JPEG decodes in ~50 us, mostly Python-level
    # work that holds the GIL. Chunks keep the per-task overhead negligible. "fork" (Linux)
    # starts workers in milliseconds and, unlike "spawn", never re-runs the caller's script.
    for split, items in members.items():
        if not items:
            raise DataError(f"{archive}: split {split!r} is missing (no {split}/<class>/ images)")
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for split, items in members.items():
                items.sort(key=lambda item: (item[1], item[0]))  # label order, then file name
                size = -(-len(items) // (4 * workers))
                chunks = [items[i:i + size] for i in range(0, len(items), size)]
                images = np.concatenate(list(pool.map(_decode_chunk, chunks, [archive] * len(chunks))))
                out[split] = (images, np.array([item[1] for item in items], dtype=np.int64))
    except BrokenProcessPool:
        raise DataError(f"{archive}: a worker decoding its images died (out of memory?); "
                        "retry with fewer workers") from None
    return out


# ---------------------------------------------------------------- torchvision source
def read_torchvision(root: str | os.PathLike, download: bool = True,
                     archive: str | os.PathLike | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The canonical CIFAR-10 python archive via torchvision (md5-checked); ``archive``: the
    folder-per-class archive that was looked for first, named if this fails too."""
    from torchvision.datasets import CIFAR10

    out = {}
    for split in SPLITS:
        try:
            ds = CIFAR10(root=str(root), train=(split == "train"), download=download)
        except Exception as exc:
            raise DataError(no_source_message(root, archive, reason=f"{type(exc).__name__}: {one_line(exc)}")) from None
        if tuple(ds.classes) != CLASSES:
            raise DataError(f"{root}: unexpected class list {ds.classes}")
        out[split] = (np.ascontiguousarray(ds.data, dtype=np.uint8),
                      np.asarray(ds.targets, dtype=np.int64))
    return out


def no_source_message(root, archive, reason: str = "") -> str:
    """One line: the two ways to provide CIFAR-10, and what was looked for."""
    return ("CIFAR-10 is not available; provide it in one of two ways: "
            f"(1) the canonical archive: let torchvision download it into {root} "
            "(needs internet), or put an extracted 'cifar-10-batches-py' folder there; "
            "(2) a folder-per-class archive (train/<class>/*.jpg, test/<class>/*.jpg), "
            f"passed as archive= (params.yaml: data.archive){'' if archive is None else f'; looked for {archive}'}"
            + (f" (last error: {reason})" if reason else ""))


def _torchvision_checksum(root: Path) -> str:
    tarball = root / "cifar-10-python.tar.gz"
    if tarball.is_file():
        return sha256_of(tarball)
    h = hashlib.sha256()  # extracted folder only: hash the batch files in order
    for name in ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]:
        h.update(Path(root, "cifar-10-batches-py", name).read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------- cache
def validate(splits: dict[str, tuple[np.ndarray, np.ndarray]],
             expected_counts: dict[str, int] | None = CIFAR10_COUNTS, where: str = "") -> None:
    for split in SPLITS:
        if split not in splits:
            raise DataError(f"{where}: split {split!r} is missing")
        images, labels = splits[split]
        if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"{where}: {split} images are {images.dtype} {images.shape}, "
                            f"expected uint8 (N, {', '.join(map(str, IMAGE_SHAPE))})")
        if labels.shape != (len(images),):
            raise DataError(f"{where}: {split} has {len(images)} images but labels of shape {labels.shape}")
        present = set(np.unique(labels).tolist())
        if present != set(range(len(CLASSES))):
            missing = [CLASSES[i] for i in range(len(CLASSES)) if i not in present]
            raise DataError(f"{where}: {split} split lacks classes {missing}")
        if expected_counts and len(images) != expected_counts[split]:
            raise DataError(f"{where}: {split} split has {len(images)} images, "
                            f"expected {expected_counts[split]}")


def check_cache_dir(cache_dir: str | os.PathLike) -> None:
    """Refuse a cache folder that holds anything but a previous cache of this module.

    A new or empty folder is fine, and so is our own cache, complete (its manifest) or
    interrupted (the marker :func:`write_cache` leaves until it has finished).
    """
    cache_dir = Path(cache_dir)
    if not cache_dir.exists():
        return
    if not cache_dir.is_dir():
        raise DataError(f"cache folder {cache_dir} is a file; give a folder for the CIFAR-10 cache")
    entries = sorted(p.name for p in cache_dir.iterdir() if not p.name.startswith(TEMP_PREFIX))
    if not entries or (cache_dir / INCOMPLETE_MARKER).is_file() or _is_cache_manifest(cache_dir / MANIFEST):
        return
    raise DataError(f"cache folder {cache_dir} holds files that are not a CIFAR-10 cache of ppdnn "
                    f"({', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}); the data "
                    "stage writes only into a new or empty folder or over its own cache: choose "
                    "another folder, or move those files away")


def _is_cache_manifest(path: Path) -> bool:
    try:
        with open_regular(path, "manifest") as f:
            manifest = json.loads(f.read().decode())
    except (OSError, ValueError, RecursionError):
        return False
    return (isinstance(manifest, dict) and "format_version" in manifest
            and manifest.get("classes") == list(CLASSES))


def write_cache(splits, cache_dir: str | os.PathLike, source: dict) -> dict:
    """Write {split}.npz and the manifest (last) into cache_dir; return the manifest."""
    cache_dir = Path(cache_dir)
    check_cache_dir(cache_dir)
    manifest = {"format_version": FORMAT_VERSION, **source, "classes": list(CLASSES), "splits": {}}
    marker = cache_dir / INCOMPLETE_MARKER
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(cache_dir)  # what a killed run left (even after kill -9)
        marker.touch()  # marks the folder as our cache while the manifest is absent
        (cache_dir / MANIFEST).unlink(missing_ok=True)  # the cache is incomplete until we finish
    except OSError as exc:
        raise DataError(f"cannot write the CIFAR-10 cache in {cache_dir}: {one_line(exc)}") from None
    for split, (images, labels) in splits.items():
        _write(cache_dir / f"{split}.npz", lambda f: np.savez(f, images=images, labels=labels))
        mean, std = (np.round(v, 6).tolist() for v in channel_stats(images))
        manifest["splits"][split] = {
            "count": int(len(images)),
            "per_class": {c: int(n) for c, n in zip(CLASSES, np.bincount(labels, minlength=len(CLASSES)))},
            "mean": mean, "std": std,
        }
    text = json.dumps(manifest, indent=2) + "\n"
    _write(cache_dir / MANIFEST, lambda f: f.write(text.encode()))
    marker.unlink()
    return manifest


def _write(path: Path, write) -> None:
    try:
        atomic_write(path, write)
    except OSError as exc:  # a full disk names no file: say which one
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None


def prepare(source: str = "auto", archive: str | os.PathLike | None = None,
            root: str | os.PathLike = "data/raw", cache_dir: str | os.PathLike = "data/cifar10",
            expected_counts: dict[str, int] | None = CIFAR10_COUNTS,
            archive_sha256: str | None = None, workers: int | None = None) -> dict:
    """Build the cache from the chosen source and return its manifest."""
    if source not in ("auto", "archive", "torchvision"):
        raise ValueError(f"unknown data source {source!r}: use 'auto', 'archive' or 'torchvision'")
    check_cache_dir(cache_dir)  # before minutes of decoding, not after
    if source == "auto":
        source = "archive" if archive and os.path.exists(archive) else "torchvision"
        if archive and source == "torchvision":
            print(f"ppdnn: warning: CIFAR-10 archive {display(archive)} not found (data.archive); "
                  f"falling back to torchvision's copy in {display(root)}", file=sys.stderr)
    if source == "archive":
        if archive is None:
            raise ValueError("source='archive' needs archive=<path to a tar/tar.gz>")
        if Path(archive).is_dir():
            raise DataError(f"CIFAR-10 archive {archive} is a folder; give the tar or tar.gz "
                            "file (params.yaml: data.archive)")
        if not os.path.exists(archive):
            raise DataError(no_source_message(root, archive))
        check_regular_input(archive, "CIFAR-10 archive")
        try:
            digest = sha256_of(archive)
        except OSError as exc:
            raise DataError(f"cannot read the CIFAR-10 archive {archive}: {one_line(exc)}") from None
        if archive_sha256 and digest != archive_sha256.lower():
            raise DataError(f"{archive}: sha256 {digest} does not match the expected {archive_sha256}")
        splits = read_archive(archive, workers=workers)
        info = {"source": "archive", "source_path": Path(archive).name, "source_sha256": digest}
    else:
        splits = read_torchvision(root, archive=archive)
        info = {"source": "torchvision", "source_path": "cifar-10-python.tar.gz",
                "source_sha256": _torchvision_checksum(Path(root))}
    validate(splits, expected_counts, where=info["source_path"])
    return write_cache(splits, cache_dir, info)


def read_manifest(cache_dir: str | os.PathLike = "data/cifar10") -> dict:
    manifest_path = Path(cache_dir) / MANIFEST
    if Path(cache_dir).is_file():
        raise DataError(f"cache folder {cache_dir} is a file, not a CIFAR-10 cache folder")
    if not manifest_path.exists():
        raise FileNotFoundError(f"no CIFAR-10 cache in {cache_dir} (missing {MANIFEST}); "
                                "run the data stage: `dvc repro data`")
    try:
        with open_regular(manifest_path, "manifest") as f:
            manifest = json.loads(f.read().decode())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, not UTF-8, a FIFO
        raise DataError(f"{manifest_path}: damaged manifest, or unreadable ({one_line(exc)})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise DataError(f"{manifest_path}: damaged manifest (not a ppdnn data manifest); "
                        "rebuild the cache: `dvc repro data`")
    return manifest


def load(cache_dir: str | os.PathLike = "data/cifar10") -> dict:
    """Read the cache written by :func:`prepare` (about 0.1 s for all of CIFAR-10)."""
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    out = {"manifest": manifest}
    for split in SPLITS:
        path = cache_dir / f"{split}.npz"
        try:
            check_regular_input(path, "cache file")  # a FIFO would block for ever
            with np.load(path, allow_pickle=False) as npz:
                images, labels = npz["images"], npz["labels"]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: missing or corrupt cache file ({type(exc).__name__}: "
                            f"{one_line(exc)}); rebuild it: `dvc repro data`") from None
        if not _looks_like_cache(images, labels):
            raise DataError(f"{path}: not a CIFAR-10 cache file (images {images.dtype} {images.shape}, "
                            f"labels {labels.dtype} {labels.shape}); rebuild it: `dvc repro data`")
        entry = manifest["splits"].get(split)
        count = entry.get("count") if isinstance(entry, dict) else None
        if count != len(images):
            raise DataError(f"{path}: holds {len(images)} images, manifest says {count}")
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out


def _looks_like_cache(images: np.ndarray, labels: np.ndarray) -> bool:
    """uint8 (N, 32, 32, 3) images and N integer labels in 0..9: what write_cache wrote."""
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        return False
    if labels.dtype.kind not in "iu" or labels.shape != (len(images),):
        return False
    return len(labels) == 0 or (labels.min() >= 0 and labels.max() < len(CLASSES))


def load_or_prepare(cache_dir="data/cifar10", **prepare_kwargs) -> dict:
    """The cache if it exists, else build it first (notebooks run outside the pipeline use this)."""
    if not (Path(cache_dir) / MANIFEST).is_file():
        prepare(cache_dir=cache_dir, **prepare_kwargs)
    return load(cache_dir)

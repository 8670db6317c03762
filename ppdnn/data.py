"""CIFAR-10 from either source into cached uint8 arrays plus a manifest.

Sources
- ``torchvision``: the canonical ``cifar-10-python.tar.gz`` through torchvision's
  ``CIFAR10(download=True)`` (md5-checked), or an existing ``cifar-10-batches-py`` folder.
- ``archive``: a folder-per-class tar / tar.gz (``train/<class>/*.jpg|png``,
  ``test/<class>/*``), e.g. the public JPEG copy of CIFAR-10.
- ``auto``: the archive if the file exists, else torchvision.

The cache is one uncompressed ``.npz`` per split (``images`` (N, 32, 32, 3) uint8,
``labels`` (N,) int64) and ``manifest.json`` (source kind and checksum, counts per class,
per-channel mean/std). Every file is written under a temporary name and renamed, and
the manifest last, so an interrupted run never leaves a cache that looks complete.
"""
from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import tarfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .files import atomic_write

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
CIFAR10_COUNTS = {"train": 50_000, "test": 10_000}
IMAGE_SHAPE = (32, 32, 3)
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DataError(RuntimeError):
    """The data could not be obtained or is not what CIFAR-10 should be."""


# ---------------------------------------------------------------- small helpers
def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Exact per-channel mean and std of uint8 images, on the [0, 1] scale.

    Histograms instead of a float copy: 50,000 images would need 1.2 GB as float64.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[-1]):
        hist = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        n = hist.sum()
        mean = float((hist * values).sum() / n)
        var = float((hist * (values - mean) ** 2).sum() / n)
        means.append(round(mean, 6))
        stds.append(round(var ** 0.5, 6))
    return means, stds


# ---------------------------------------------------------------- archive source
def _decode_chunk(items: list[tuple[str, int, bytes]], archive: Path) -> np.ndarray:
    return np.stack([_decode(name, payload, archive) for name, _, payload in items])


def _decode(name: str, payload: bytes, archive: Path) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(payload)) as img:
            image = np.asarray(img.convert("RGB"))
    except Exception as exc:  # Pillow raises several types; the file name is what helps
        raise DataError(f"cannot decode image {name!r} in {archive}: {exc}") from None
    if image.shape != IMAGE_SHAPE:
        raise DataError(f"image {name!r} in {archive} has shape {image.shape}, expected {IMAGE_SHAPE}")
    return image


def read_archive(archive: str | os.PathLike, workers: int | None = None
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode a folder-per-class tar(.gz) into {split: (images, labels)}.

    The archive is read once, sequentially (gzip cannot be read in parallel), and the
    images are decoded in chunks by a pool of worker processes.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"CIFAR-10 archive not found: {archive}")
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
                if split not in members:
                    raise DataError(f"{archive}: unknown split folder {split!r} in {member.name!r}"
                                    f" (expected {'/'.join(SPLITS)})")
                if cls not in CLASSES:
                    raise DataError(f"{archive}: unknown class folder {cls!r} in {member.name!r}"
                                    f" (expected one of {', '.join(CLASSES)})")
                members[split].append((member.name, CLASSES.index(cls),
                                       tar.extractfile(member).read()))
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{archive}: corrupt or truncated archive ({type(exc).__name__}: {exc})") from None

    out = {}
    workers = workers or os.cpu_count() or 1
    # Worker processes, not threads: a 32x32 JPEG decodes in ~50 us, mostly Python-level
    # work that holds the GIL. Chunks keep the per-task overhead negligible. "fork" (Linux)
    # starts workers in milliseconds and, unlike "spawn", never re-runs the caller's script.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for split, items in members.items():
            if not items:
                raise DataError(f"{archive}: split {split!r} is missing (no {split}/<class>/ images)")
            items.sort(key=lambda item: (item[1], item[0]))  # label order, then file name
            size = -(-len(items) // (4 * workers))
            chunks = [items[i:i + size] for i in range(0, len(items), size)]
            images = np.concatenate(list(pool.map(_decode_chunk, chunks, [archive] * len(chunks))))
            out[split] = (images, np.array([item[1] for item in items], dtype=np.int64))
    return out


# ---------------------------------------------------------------- torchvision source
def read_torchvision(root: str | os.PathLike, download: bool = True
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The canonical CIFAR-10 python archive via torchvision (md5-checked)."""
    from torchvision.datasets import CIFAR10

    out = {}
    for split in SPLITS:
        try:
            ds = CIFAR10(root=str(root), train=(split == "train"), download=download)
        except Exception as exc:
            raise DataError(no_source_message(root, None, reason=f"{type(exc).__name__}: {exc}")) from None
        if tuple(ds.classes) != CLASSES:
            raise DataError(f"{root}: unexpected class list {ds.classes}")
        out[split] = (np.ascontiguousarray(ds.data, dtype=np.uint8),
                      np.asarray(ds.targets, dtype=np.int64))
    return out


def no_source_message(root, archive, reason: str = "") -> str:
    return ("CIFAR-10 is not available. Provide it in one of two ways:\n"
            f"  1. the canonical archive: let torchvision download it into {root} "
            "(needs internet), or put an extracted 'cifar-10-batches-py' folder there;\n"
            "  2. a folder-per-class archive (train/<class>/*.jpg, test/<class>/*.jpg), "
            f"passed as archive= (params.yaml: data.archive){'' if archive is None else f'; looked for {archive}'}."
            + (f"\nLast error: {reason}" if reason else ""))


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


def write_cache(splits, cache_dir: str | os.PathLike, source: dict) -> dict:
    """Write {split}.npz and the manifest (last) into cache_dir; return the manifest."""
    cache_dir = Path(cache_dir)
    manifest = {"format_version": FORMAT_VERSION, **source, "classes": list(CLASSES), "splits": {}}
    (cache_dir / MANIFEST).unlink(missing_ok=True)  # the cache is incomplete until we finish
    for split, (images, labels) in splits.items():
        atomic_write(cache_dir / f"{split}.npz",
                           lambda f: np.savez(f, images=images, labels=labels))
        mean, std = channel_stats(images)
        manifest["splits"][split] = {
            "count": int(len(images)),
            "per_class": {c: int(n) for c, n in zip(CLASSES, np.bincount(labels, minlength=len(CLASSES)))},
            "mean": mean, "std": std,
        }
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(cache_dir / MANIFEST, lambda f: f.write(text.encode()))
    return manifest


def prepare(source: str = "auto", archive: str | os.PathLike | None = None,
            root: str | os.PathLike = "data/raw", cache_dir: str | os.PathLike = "data/cifar10",
            expected_counts: dict[str, int] | None = CIFAR10_COUNTS,
            archive_sha256: str | None = None, workers: int | None = None) -> dict:
    """Build the cache from the chosen source and return its manifest."""
    if source not in ("auto", "archive", "torchvision"):
        raise ValueError(f"unknown data source {source!r}: use 'auto', 'archive' or 'torchvision'")
    if source == "auto":
        source = "archive" if archive and Path(archive).is_file() else "torchvision"
    if source == "archive":
        if archive is None:
            raise ValueError("source='archive' needs archive=<path to a tar/tar.gz>")
        if not Path(archive).is_file():
            raise DataError(no_source_message(root, archive))
        digest = sha256_of(archive)
        if archive_sha256 and digest != archive_sha256.lower():
            raise DataError(f"{archive}: sha256 {digest} does not match the expected {archive_sha256}")
        splits = read_archive(archive, workers=workers)
        info = {"source": "archive", "source_path": Path(archive).name, "source_sha256": digest}
    else:
        splits = read_torchvision(root)
        info = {"source": "torchvision", "source_path": "cifar-10-python.tar.gz",
                "source_sha256": _torchvision_checksum(Path(root))}
    validate(splits, expected_counts, where=info["source_path"])
    return write_cache(splits, cache_dir, info)


def read_manifest(cache_dir: str | os.PathLike = "data/cifar10") -> dict:
    manifest_path = Path(cache_dir) / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"no CIFAR-10 cache in {cache_dir} (missing {MANIFEST}); "
                                "run the data stage: `dvc repro data`")
    try:
        return json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{manifest_path}: damaged manifest ({exc})") from None


def load(cache_dir: str | os.PathLike = "data/cifar10") -> dict:
    """Read the cache written by :func:`prepare` (about 0.1 s for all of CIFAR-10)."""
    cache_dir = Path(cache_dir)
    manifest = read_manifest(cache_dir)
    out = {"manifest": manifest}
    for split in SPLITS:
        path = cache_dir / f"{split}.npz"
        try:
            with np.load(path) as npz:
                out[f"{split}_images"], out[f"{split}_labels"] = npz["images"], npz["labels"]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{path}: missing or corrupt cache file ({type(exc).__name__}: {exc})") from None
        count = manifest.get("splits", {}).get(split, {}).get("count")
        if count != len(out[f"{split}_images"]):
            raise DataError(f"{path}: holds {len(out[f'{split}_images'])} images, manifest says {count}")
    return out


def load_or_prepare(cache_dir="data/cifar10", **prepare_kwargs) -> dict:
    """The cache if it exists, else build it first (notebooks run outside the pipeline use this)."""
    if not (Path(cache_dir) / MANIFEST).is_file():
        prepare(cache_dir=cache_dir, **prepare_kwargs)
    return load(cache_dir)

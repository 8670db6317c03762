"""ppdnn.data: both CIFAR-10 sources, the cache, the manifest and every error."""
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ppdnn import data

SMALL = {"train": 4, "test": 2}  # images per class in the fake archives


def encode(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    return buf.getvalue()


def make_archive(path: Path, fmt="PNG", per_class=SMALL, classes=data.CLASSES, size=32,
                 splits=("train", "test"), extra=None, seed=0, blocky=False):
    """A folder-per-class tar(.gz); returns the images per split in CIFAR label order."""
    rng = np.random.default_rng(seed)
    suffix = ".png" if fmt == "PNG" else ".jpg"
    mode = "w:gz" if path.name.endswith(".gz") else "w"
    expected = {}
    with tarfile.open(path, mode) as tar:
        def add(name, payload):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        # classes are written in reverse order: the loader must not depend on it
        for split in splits:
            images = {}
            for cls in reversed(classes):
                images[cls] = rng.integers(0, 256, (per_class[split], size, size, 3), dtype=np.uint8)
                if blocky:  # flat 8x8 blocks survive JPEG almost exactly
                    images[cls] = np.repeat(np.repeat(images[cls][:, ::8, ::8], 8, 1), 8, 2)
                for i, image in enumerate(images[cls]):
                    add(f"{split}/{cls}/{i:04d}{suffix}", encode(image, fmt))
            expected[split] = images
        for name, payload in (extra or {}).items():
            add(name, payload)
    return expected


@pytest.fixture
def png_archive(tmp_path):
    path = tmp_path / "cifar-png.tar"
    return path, make_archive(path)


def prepare_small(archive, cache, **kw):
    return data.prepare(source="archive", archive=archive, cache_dir=cache,
                        expected_counts={s: n * 10 for s, n in SMALL.items()}, **kw)


def test_archive_round_trip_is_exact_for_png(png_archive, tmp_path):
    archive, expected = png_archive
    manifest = prepare_small(archive, tmp_path / "cache")
    arrays = data.load(tmp_path / "cache")
    for split in ("train", "test"):
        labels = arrays[f"{split}_labels"]
        assert labels.dtype == np.int64
        assert (np.diff(labels) >= 0).all() and set(labels) == set(range(10))
        for label, cls in enumerate(data.CLASSES):
            np.testing.assert_array_equal(arrays[f"{split}_images"][labels == label], expected[split][cls])
        assert manifest["splits"][split]["per_class"] == {c: SMALL[split] for c in data.CLASSES}
        images = arrays[f"{split}_images"].astype(np.float64) / 255
        np.testing.assert_allclose(manifest["splits"][split]["mean"], images.mean(axis=(0, 1, 2)), atol=1e-6)
        np.testing.assert_allclose(manifest["splits"][split]["std"], images.std(axis=(0, 1, 2)), atol=1e-6)
    assert manifest["source"] == "archive"
    assert manifest["source_sha256"] == data.sha256_of(archive)
    assert manifest["classes"] == list(data.CLASSES)
    assert json.loads((tmp_path / "cache" / "manifest.json").read_text()) == manifest


def test_jpeg_tar_gz_decodes_close_to_original(tmp_path):
    archive = tmp_path / "cifar-jpg.tar.gz"
    expected = make_archive(archive, fmt="JPEG", blocky=True)
    prepare_small(archive, tmp_path / "cache")
    arrays = data.load(tmp_path / "cache")
    assert arrays["train_images"].shape == (40, 32, 32, 3)
    for label, cls in enumerate(data.CLASSES):
        decoded = arrays["train_images"][arrays["train_labels"] == label].astype(int)
        # JPEG is lossy (chroma subsampling), but far closer than any other image would be
        assert np.abs(decoded - expected["train"][cls]).mean() < 12


def test_auto_prefers_the_archive_when_present(png_archive, tmp_path):
    archive, _ = png_archive
    manifest = data.prepare(source="auto", archive=archive, cache_dir=tmp_path / "c",
                            expected_counts={s: n * 10 for s, n in SMALL.items()})
    assert manifest["source"] == "archive"


def test_torchvision_source_keeps_cifar_order(monkeypatch, tmp_path):
    class FakeCIFAR10:
        def __init__(self, root, train, download):
            n = 20 if train else 10
            self.data = np.full((n, 32, 32, 3), 7 if train else 9, np.uint8)
            self.targets = [i % 10 for i in range(n)]
            self.classes = list(data.CLASSES)

    import torchvision.datasets
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "cifar-10-python.tar.gz").write_bytes(b"fake")
    manifest = data.prepare(source="torchvision", root=tmp_path / "raw", cache_dir=tmp_path / "c",
                            expected_counts={"train": 20, "test": 10})
    arrays = data.load(tmp_path / "c")
    assert manifest["source"] == "torchvision"
    assert manifest["source_sha256"] == data.sha256_of(tmp_path / "raw" / "cifar-10-python.tar.gz")
    assert (arrays["test_images"] == 9).all() and list(arrays["train_labels"][:10]) == list(range(10))


def test_no_source_names_both_ways(monkeypatch, tmp_path):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(data.DataError) as err:
        data.prepare(source="auto", archive=tmp_path / "missing.tar.gz", root=tmp_path / "raw",
                     cache_dir=tmp_path / "c")
    message = str(err.value)
    assert "torchvision" in message and "cifar-10-batches-py" in message and "archive" in message
    assert not (tmp_path / "c").exists()


def assert_no_cache(cache: Path):
    assert not (cache / "manifest.json").exists()
    assert not list(cache.glob("*.tmp")) if cache.exists() else True


@pytest.mark.parametrize("case, needle", [
    ("truncated", "corrupt or truncated"),
    ("corrupt_image", "cannot decode image 'train/cat/bad.jpg'"),
    ("wrong_size", "has shape (16, 16, 3)"),
    ("missing_split", "split 'test' is missing"),
    ("unknown_class", "unknown class folder 'unicorn'"),
    ("missing_class", "lacks classes ['truck']"),
])
def test_bad_archives_raise_clear_errors(tmp_path, case, needle):
    archive = tmp_path / "bad.tar.gz"
    if case == "truncated":
        make_archive(archive)
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    elif case == "corrupt_image":
        make_archive(archive, extra={"train/cat/bad.jpg": b"\xff\xd8 this is not a jpeg"})
    elif case == "wrong_size":
        make_archive(archive, size=16)
    elif case == "missing_split":
        make_archive(archive, splits=("train",))
    elif case == "unknown_class":
        make_archive(archive, extra={"train/unicorn/0000.png": encode(np.zeros((32, 32, 3), np.uint8), "PNG")})
    elif case == "missing_class":
        make_archive(archive, classes=data.CLASSES[:-1])
    cache = tmp_path / "cache"
    with pytest.raises(data.DataError) as err:
        prepare_small(archive, cache)
    assert needle in str(err.value)
    assert "bad" in str(err.value)  # names the file (archive or member)
    assert_no_cache(cache)


def test_checksum_and_count_mismatch(png_archive, tmp_path):
    archive, _ = png_archive
    with pytest.raises(data.DataError, match="does not match the expected"):
        prepare_small(archive, tmp_path / "c", archive_sha256="0" * 64)
    with pytest.raises(data.DataError, match="train split has 40 images, expected 50000"):
        data.prepare(source="archive", archive=archive, cache_dir=tmp_path / "c")
    assert_no_cache(tmp_path / "c")


def test_unknown_source_and_missing_archive(tmp_path):
    with pytest.raises(ValueError, match="unknown data source 'kaggle'"):
        data.prepare(source="kaggle")
    with pytest.raises(data.DataError, match="missing.tar"):
        data.prepare(source="archive", archive=tmp_path / "missing.tar", cache_dir=tmp_path / "c")


def test_load_rejects_missing_and_corrupt_cache(png_archive, tmp_path):
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 cache"):
        data.load(tmp_path / "nothing")
    archive, _ = png_archive
    cache = tmp_path / "cache"
    prepare_small(archive, cache)
    (cache / "test.npz").write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(data.DataError, match="test.npz"):
        data.load(cache)
    (cache / "manifest.json").write_text("{not json")
    with pytest.raises(data.DataError, match="damaged manifest"):
        data.load(cache)


def test_a_failed_rebuild_keeps_no_stale_manifest_of_a_partial_write(png_archive, tmp_path, monkeypatch):
    archive, _ = png_archive
    cache = tmp_path / "cache"
    prepare_small(archive, cache)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")
    monkeypatch.setattr(data.np, "savez", disk_full)
    with pytest.raises(OSError):
        prepare_small(archive, cache)
    assert_no_cache(cache)  # the old manifest is gone, so the half-old cache cannot be loaded
    with pytest.raises(FileNotFoundError):
        data.load(cache)


def test_real_cifar10_jpeg_archive(real_cifar):
    arrays, manifest = real_cifar, real_cifar["manifest"]
    assert arrays["train_images"].shape == (50000, 32, 32, 3)
    assert arrays["test_images"].shape == (10000, 32, 32, 3)
    assert manifest["splits"]["train"]["per_class"] == {c: 5000 for c in data.CLASSES}
    assert manifest["splits"]["test"]["per_class"] == {c: 1000 for c in data.CLASSES}
    # the data README's statistics of the decoded JPEG copy
    np.testing.assert_allclose(manifest["splits"]["train"]["mean"], [0.4913, 0.4821, 0.4465], atol=2e-4)
    np.testing.assert_allclose(manifest["splits"]["train"]["std"], [0.2452, 0.2428, 0.2606], atol=2e-4)

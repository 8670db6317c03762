"""ppdnn.data: both CIFAR-10 sources, the cache, the manifest and every error."""
import io
import json
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ppdnn import data, errors

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
    ("wrong_size", "is 16x16 pixels, expected 32x32"),
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
        raise OSError(28, "No space left on device")
    with monkeypatch.context() as patch:
        patch.setattr(data.np, "savez", disk_full)
        with pytest.raises(data.DataError, match=r"cannot write .*train.npz: No space left on device"):
            prepare_small(archive, cache)
    assert_no_cache(cache)  # the old manifest is gone, so the half-old cache cannot be loaded
    with pytest.raises(FileNotFoundError):
        data.load(cache)
    prepare_small(archive, cache)  # the interrupted cache is still recognised as ours
    assert data.load(cache)["train_images"].shape == (40, 32, 32, 3)
    assert sorted(p.name for p in cache.iterdir()) == ["manifest.json", "test.npz", "train.npz"]


def header_only_png(width, height, bit_depth=8, colour_type=2) -> bytes:
    """A PNG that declares its size but holds no pixels: what a decompression bomb looks like
    to Image.open, without the memory."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize("member, payload, needle", [
    # above twice Pillow's pixel limit (its error) and between once and twice (only its warning)
    ("train/cat/bomb.png", header_only_png(20000, 20000), "'train/cat/bomb.png' in {archive} refused as a possible decompression bomb"),
    ("train/cat/bomb1.png", header_only_png(10000, 10000, 1, 0), "'train/cat/bomb1.png' in {archive} refused as a possible decompression bomb"),
    ("train/cat/huge.png", b"\0" * (data.MAX_MEMBER_BYTES + 1), "{archive}: member 'train/cat/huge.png' is 4194305 bytes"),
], ids=["pillow-error", "pillow-warning", "huge-member"])
def test_bombs_inside_the_archive_are_refused_by_member(tmp_path, member, payload, needle):
    archive = tmp_path / "bad.tar"
    make_archive(archive, per_class={"train": 1, "test": 1}, extra={member: payload})
    with pytest.raises(data.DataError) as err:
        data.prepare(source="archive", archive=archive, cache_dir=tmp_path / "c",
                     expected_counts=None, workers=1)
    assert needle.format(archive=archive) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "c").exists()


def test_source_errors_are_one_line_and_name_the_path(tmp_path, monkeypatch):
    (tmp_path / "archive.tar").mkdir()
    with pytest.raises(data.DataError, match=r"archive.tar is a folder; give the tar"):
        data.prepare(source="archive", archive=tmp_path / "archive.tar", cache_dir=tmp_path / "c")
    with pytest.raises(data.DataError, match=r"archive.tar is a folder"):
        data.read_archive(tmp_path / "archive.tar")
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Dataset not found\nor corrupted")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(data.DataError) as err:
        data.prepare(source="torchvision", root=tmp_path / "raw", cache_dir=tmp_path / "c")
    assert "\n" not in str(err.value) and "Dataset not found or corrupted" in str(err.value)
    assert "\n" not in data.no_source_message("raw", "missing.tar", reason="x")


def test_data_errors_are_one_line_through_run_main(tmp_path, capsys):
    (tmp_path / "archive.tar").write_bytes(b"just bytes")
    status = errors.run_main("ppdnn.pipeline data", lambda: data.prepare(
        source="archive", archive=tmp_path / "archive.tar", cache_dir=tmp_path / "c"))
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(f"ppdnn.pipeline data: error: {tmp_path / 'archive.tar'}: corrupt or truncated archive")


def test_a_cache_folder_holding_user_files_is_refused_untouched(png_archive, tmp_path):
    archive, _ = png_archive
    user = tmp_path / "mine"
    user.mkdir()
    (user / "train.npz").write_bytes(b"my own data")
    (user / "thesis.tex").write_text("years of work")
    with pytest.raises(data.DataError, match=r"mine holds files that are not a CIFAR-10 cache of ppdnn \(thesis.tex, train.npz\)"):
        prepare_small(archive, user)
    assert (user / "train.npz").read_bytes() == b"my own data"
    assert sorted(p.name for p in user.iterdir()) == ["thesis.tex", "train.npz"]
    (user / "manifest.json").write_text('{"someone": "else"}')  # not our manifest either
    with pytest.raises(data.DataError, match="not a CIFAR-10 cache"):
        data.write_cache({}, user, {})
    (tmp_path / "empty").mkdir()  # an empty folder or our own previous cache is fine
    prepare_small(archive, tmp_path / "empty")
    prepare_small(archive, tmp_path / "empty")


def test_a_cache_path_that_is_a_file_is_named(png_archive, tmp_path):
    archive, _ = png_archive
    (tmp_path / "cache").write_text("a file")
    with pytest.raises(data.DataError, match=r"cache folder .*cache is a file"):
        prepare_small(archive, tmp_path / "cache")
    with pytest.raises(data.DataError, match=r"cache folder .*cache is a file"):
        data.load(tmp_path / "cache")
    assert (tmp_path / "cache").read_text() == "a file"


@pytest.mark.parametrize("damage, needle", ids=["manifest-list", "manifest-not-utf8", "float-images",
                                                 "label-out-of-range"], argvalues=[
    (lambda c: (c / "manifest.json").write_text("[]"), "manifest.json: damaged manifest"),
    (lambda c: (c / "manifest.json").write_bytes(b"\xff\xfe"), "manifest.json: damaged manifest"),
    (lambda c: np.savez(c / "test.npz", images=np.zeros((20, 32, 32, 3), np.float32),
                        labels=np.zeros(20, np.int64)), "test.npz: not a CIFAR-10 cache file"),
    (lambda c: np.savez(c / "test.npz", images=np.zeros((20, 32, 32, 3), np.uint8),
                        labels=np.full(20, 10)), "test.npz: not a CIFAR-10 cache file"),
])
def test_a_damaged_cache_is_one_clear_data_error(png_archive, tmp_path, damage, needle):
    archive, _ = png_archive
    cache = tmp_path / "cache"
    prepare_small(archive, cache)
    damage(cache)
    with pytest.raises(data.DataError) as err:
        data.load(cache)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_real_cifar10_jpeg_archive(real_cifar):
    arrays, manifest = real_cifar, real_cifar["manifest"]
    assert arrays["train_images"].shape == (50000, 32, 32, 3)
    assert arrays["test_images"].shape == (10000, 32, 32, 3)
    assert manifest["splits"]["train"]["per_class"] == {c: 5000 for c in data.CLASSES}
    assert manifest["splits"]["test"]["per_class"] == {c: 1000 for c in data.CLASSES}
    # the data README's statistics of the decoded JPEG copy
    np.testing.assert_allclose(manifest["splits"]["train"]["mean"], [0.4913, 0.4821, 0.4465], atol=2e-4)
    np.testing.assert_allclose(manifest["splits"]["train"]["std"], [0.2452, 0.2428, 0.2606], atol=2e-4)


# ------------------------------------------------------------ reliability, round two
def png16(width=32, height=32) -> bytes:
    """A 16-bit RGB PNG (Pillow cannot write one): mid-grey, which clipping turns into 255."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    rows = b"".join(b"\0" + b"\x80\x00" * 3 * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("payload, needle", [
    (png16(), "is a 16-bit RGB image, not 8-bit RGB"),
    (encode(np.full((32, 32), 40000, dtype=np.uint16), "PNG"), "-bit I;16 image, not 8-bit RGB"),
], ids=["rgb16", "grey16"])
def test_a_16_bit_image_is_refused_as_the_cli_refuses_it(tmp_path, payload, needle):
    archive = tmp_path / "deep.tar"
    make_archive(archive, extra={"train/cat/deep.png": payload})
    with pytest.raises(data.DataError, match=needle) as err:
        prepare_small(archive, tmp_path / "cache")
    assert "train/cat/deep.png" in str(err.value) and "clipping" in str(err.value)
    assert not (tmp_path / "cache" / "manifest.json").exists()


def test_the_cli_and_the_data_stage_share_one_image_rule():
    from ppdnn import cli
    with Image.open(io.BytesIO(png16())) as im:
        assert data.bit_depth_problem(im, "x") is not None
        with pytest.raises(cli.CliError, match="16-bit"):
            cli.check_mode("x", im, convert=True)


def test_auto_names_the_archive_it_did_not_find(monkeypatch, tmp_path, capsys):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Dataset not found or corrupted")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    missing = tmp_path / "typo-cifar.tar.gz"
    with pytest.raises(data.DataError, match=f"looked for {missing}"):
        data.prepare(source="auto", archive=missing, root=tmp_path / "raw", cache_dir=tmp_path / "c")
    assert f"archive {missing} not found" in capsys.readouterr().err


def test_a_fifo_as_archive_or_cache_file_is_refused_without_blocking(png_archive, tmp_path):
    import os
    import signal

    def alarm(signum, frame):
        raise TimeoutError("blocked on a FIFO")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(5)
    try:
        os.mkfifo(tmp_path / "pipe.tar")
        with pytest.raises(ValueError, match="is a FIFO"):
            data.prepare(source="archive", archive=tmp_path / "pipe.tar", cache_dir=tmp_path / "c")
        prepare_small(png_archive[0], tmp_path / "cache")
        (tmp_path / "cache" / "test.npz").unlink()
        os.mkfifo(tmp_path / "cache" / "test.npz")
        with pytest.raises(data.DataError, match="is a FIFO"):
            data.load(tmp_path / "cache")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_the_next_run_removes_what_a_killed_data_stage_left(png_archive, tmp_path):
    import os
    import subprocess
    import sys
    cache = tmp_path / "cache"
    script = ("import sys, time, numpy\nfrom ppdnn import data\n"
              "def stuck(f, **kw):\n    f.write(b'partial'); f.flush(); print('writing', flush=True); time.sleep(60)\n"
              "numpy.savez = stuck\n"
              f"data.prepare(source='archive', archive={str(png_archive[0])!r}, cache_dir={str(cache)!r},"
              " expected_counts={'train': 40, 'test': 20}, workers=1)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    leftovers = [n for n in os.listdir(cache) if n.startswith(".ppdnn-") and n.endswith(".tmp")]
    assert leftovers
    assert all(os.stat(cache / n).st_mode & 0o077 == 0 for n in leftovers)  # private meanwhile
    prepare_small(png_archive[0], cache)
    assert sorted(os.listdir(cache)) == ["manifest.json", "test.npz", "train.npz"]

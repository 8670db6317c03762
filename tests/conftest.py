"""Fixtures shared by the test files."""
from pathlib import Path

import pytest

from ppdnn import data

CIFAR_ARCHIVE = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz").resolve()


@pytest.fixture(scope="session")
def real_cifar(tmp_path_factory) -> dict:
    """Real CIFAR-10 (the shared JPEG copy) through the data stage, decoded once per session."""
    if not CIFAR_ARCHIVE.is_file():
        pytest.skip(f"real CIFAR-10 JPEG archive not present at {CIFAR_ARCHIVE}")
    cache = tmp_path_factory.mktemp("cifar10")
    data.prepare(source="archive", archive=CIFAR_ARCHIVE, cache_dir=cache)
    return data.load(cache)

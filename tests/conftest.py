"""Fixtures shared by the test files."""
import signal
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


@pytest.fixture
def no_hang():
    """Fail instead of blocking for ever (a FIFO opened for reading waits for a writer)."""
    def alarm(signum, frame):
        raise TimeoutError("blocked: the call waited on a FIFO")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)

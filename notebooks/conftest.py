"""nbval runs every notebook with its default parameters; these need real CIFAR-10."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"
NEEDS_CIFAR = {"train.ipynb", "security.ipynb"}


def cifar_available() -> bool:
    return (ROOT / "data" / "cifar10" / "manifest.json").is_file() or ARCHIVE.is_file()


def pytest_collection_modifyitems(config, items):
    if cifar_available():
        return
    skip = pytest.mark.skip(reason=f"needs CIFAR-10: neither the data stage's cache (data/cifar10) "
                                   f"nor the JPEG archive ({ARCHIVE}) is present; run `make reproduce` first")
    for item in items:
        if Path(str(item.fspath)).name in NEEDS_CIFAR:
            item.add_marker(skip)

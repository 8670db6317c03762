"""nbval runs every notebook with its default parameters; these need real CIFAR-10.

A default run writes only under build/ (and the data stage's cache in data/, which a
notebook builds when it is missing; both git-ignored): after each notebook, any other new
entry in the repository root, a new or changed file under results/, or a new ``ppdnn-*``
folder in the system's temporary directory fails the run, naming what was left behind.
"""
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"
NEEDS_CIFAR = {"train.ipynb", "security.ipynb"}
ALLOWED_IN_ROOT = {"build", "data"}  # git-ignored: where default runs write
_before: dict[str, dict] = {}


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


def _snapshot() -> dict:
    results = ROOT / "results"
    return {"root": {p.name for p in ROOT.iterdir()},
            "results": {str(p): p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()},
            "temp": {p.name for p in Path(tempfile.gettempdir()).glob("ppdnn-*")}}


def _left_behind(before: dict, after: dict) -> list[str]:
    changed = [p for p, mtime in after["results"].items() if before["results"].get(p) != mtime]
    return ([f"{ROOT / name} (repository root)" for name in sorted(after["root"] - before["root"] - ALLOWED_IN_ROOT)]
            + sorted(changed)
            + [str(Path(tempfile.gettempdir()) / name) for name in sorted(after["temp"] - before["temp"])])


def pytest_runtest_setup(item):
    notebook = str(item.fspath)
    if notebook.endswith(".ipynb") and notebook not in _before:
        _before[notebook] = _snapshot()


def pytest_runtest_teardown(item, nextitem):
    notebook = str(item.fspath)
    if notebook not in _before or (nextitem is not None and str(nextitem.fspath) == notebook):
        return  # not a notebook, or not its last cell yet
    leftovers = _left_behind(_before.pop(notebook), _snapshot())
    if leftovers:
        pytest.fail(f"{Path(notebook).name} with its default parameters left behind: {', '.join(leftovers)} "
                    "(default outputs belong under build/)", pytrace=False)

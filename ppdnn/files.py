"""Writing files safely: every output of the package goes through :func:`atomic_write`."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], mode: int | None = None) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it into place.

    A crash or an exception leaves the previous file (or none), never a half-written one.
    ``mode``: the file's permission bits; by default those of any new file (0o666 & ~umask).
    Keys pass 0o600, set before the first byte is written, so a key is never readable by others.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode if mode is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

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


def exclusive_write(path: str | os.PathLike, payload: bytes, mode: int = 0o600,
                    exists_message: str | None = None) -> Path:
    """Create ``path`` holding ``payload``; fail with FileExistsError if it exists.

    The content is written to a temporary file first and then hard-linked to ``path``:
    ``link`` fails if the name exists (like O_EXCL, race-free), and readers never see a
    half-written file. Of two concurrent calls exactly one wins.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(exists_message or f"{path} exists") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path

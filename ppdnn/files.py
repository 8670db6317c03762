"""Writing files safely: atomic (:func:`atomic_write`), exclusive (:func:`exclusive_write`),
all or nothing for several files (:func:`write_files`), and checked before the work starts
(:func:`check_writable`)."""
from __future__ import annotations

import errno
import os
import shutil
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


def check_writable(folder: str | os.PathLike) -> None:
    """Fail now, not after the work, if files cannot be created in ``folder``.

    ``folder`` need not exist yet: its nearest existing ancestor is probed instead (nothing
    is created). A throw-away file is the only reliable probe: ``os.access`` ignores
    read-only mounts and says yes to root.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot write to {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        problem = type(err)(f"cannot write to {folder}: {err.strerror or err}")
        problem.errno = err.errno
        raise problem from None


def write_files(outputs: list[tuple[Path, Callable[[BinaryIO], object]]],
                overwrite: bool = False) -> list[Path]:
    """Write several files all or nothing: ``outputs`` is a list of (path, write(f)).

    Every file is written to a temporary file beside its target first, so a full disk or a
    failing encoder stops the call before any target exists. Then each goes into place:
    a new name by ``link`` (which fails, instead of replacing, if the name appeared in the
    meantime), an existing one only with ``overwrite``. On any failure the temporary files,
    the files this call created and the folders it created are removed; files replaced
    under ``overwrite`` keep their new, complete content.
    """
    paths = [Path(p) for p, _ in outputs]
    created_dirs: list[Path] = []
    temps: list[str] = []
    created: list[Path] = []
    try:
        for folder in dict.fromkeys(p.parent for p in paths):
            _make_dirs(folder, created_dirs)
        for path, (_, write) in zip(paths, outputs):
            temps.append(_write_temp(path, write))
        for path, tmp in zip(paths, temps):
            if overwrite and os.path.lexists(path):
                os.replace(tmp, path)
                continue
            _link_new(tmp, path)
            created.append(path)
    except BaseException:
        for path in [*map(Path, temps), *created]:
            path.unlink(missing_ok=True)
        for folder in reversed(created_dirs):
            _remove_if_empty(folder)
        raise
    for tmp in temps:  # the second name of each linked file
        Path(tmp).unlink(missing_ok=True)
    return paths


def _link_new(tmp: str, path: Path) -> None:
    """Give the finished ``tmp`` the new name ``path``; never replace an existing file."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{path} exists (created by something else meanwhile); "
                              "nothing was replaced") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # no hard links on this file system (FAT, some network shares): claim the name
        # exclusively, then move the finished file over the empty claim
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.replace(tmp, path)


def _write_temp(path: Path, write: Callable[[BinaryIO], object]) -> str:
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _naming(err, path) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _naming(err, path) from None
        raise
    return tmp


def _naming(err: OSError, path: Path) -> OSError:
    """``err`` about ``path``: a full disk or a failed write names no file by itself."""
    if err.errno is None:
        return err
    return type(err)(err.errno, err.strerror, str(path))


def _make_dirs(folder: Path, created: list[Path]) -> None:
    """``mkdir -p folder``, appending each folder it creates to ``created``, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        created.append(path)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty: someone else put something there; leave it
        pass


def remove_interrupted_writes(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that a killed :func:`atomic_write` to ``path`` left behind.

    Only names of the form ``.{name}.*.tmp`` beside ``path`` (the pattern ``atomic_write``
    uses) are touched, so nothing a user made can be removed.
    """
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


OUTPUT_MARKER = ".ppdnn-output"


def replace_dir(new: Path, target: Path, made_by: str) -> Path:
    """Move the finished folder ``new`` to ``target``, replacing only what ppdnn made.

    ``target`` may be missing, empty, or a folder an earlier ``replace_dir`` wrote (it holds
    the marker file ``.ppdnn-output``); anything else -- a user's folder, a file -- is
    refused, so a step never deletes what it did not create. ``new`` gets the marker.
    """
    new, target = Path(new), Path(target)
    (new / OUTPUT_MARKER).write_text(f"written by {made_by}; replaced when that step runs again\n")
    if target.exists() or target.is_symlink():
        owned = target.is_dir() and not target.is_symlink() and (
            (target / OUTPUT_MARKER).is_file() or not any(target.iterdir()))
        if not owned:
            raise FileExistsError(f"{target} exists and was not written by ppdnn (no {OUTPUT_MARKER}); "
                                  "move it away or choose another output folder")
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new, target)
    return target


def scratch_dir(target: Path) -> Path:
    """A fresh, empty folder beside ``target`` to build its replacement in (see replace_dir)."""
    target = Path(target)
    scratch = target.with_name(f".{target.name}.tmp")
    if scratch.exists():
        if not (scratch / OUTPUT_MARKER).is_file() and any(scratch.iterdir()):
            raise FileExistsError(f"{scratch} exists and was not written by ppdnn; move it away")
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    (scratch / OUTPUT_MARKER).write_text("incomplete\n")
    return scratch

"""Writing files safely: atomic (:func:`atomic_write`), exclusive (:func:`exclusive_write`),
all or nothing for several files (:func:`write_files`), and checked before the work starts
(:func:`check_writable`).

What every writer here guarantees:
- temporary files and folders are named ``.ppdnn-<token>[-<n>].<kind>`` (short, so a
  250-character target name still fits in 255 bytes), created exclusively, mode 0600 while
  they are written (they may hold plaintext or keys), and owned by a claim: a lock file
  ``.ppdnn-<token>.lock`` held with ``flock`` for as long as the writing call runs;
- :func:`remove_stale_temporaries` deletes what a killed run left (its lock died with it,
  even after SIGKILL) and never touches a live run's files or anything else; every writer
  here calls it on its folder first, so the next write there cleans up;
- only a regular file (or a symlink to one), or a folder carrying :data:`OUTPUT_MARKER`,
  is ever replaced: a device, FIFO, socket or other thing is refused (:func:`check_replaceable`);
- :func:`open_regular` opens an input without blocking on a FIFO and refuses what is not
  a regular file;
- :func:`terminate_as_interrupt` turns SIGTERM into KeyboardInterrupt, so cleanup runs.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from .errors import PpdnnError, Terminated, terminate_as_interrupt  # noqa: F401 (re-exported)

OUTPUT_MARKER = ".ppdnn-output"
TEMP_PREFIX = ".ppdnn-"
# .ppdnn-<16 hex>[-<hex counter>].<kind>: the only names remove_stale_temporaries deletes
_TEMP_NAME = re.compile(r"^\.ppdnn-([0-9a-f]{16})(?:-[0-9a-f]{1,8})?\.(tmp|scratch|old|lock)$")
# A claim without its lock file is a finishing run's leftovers, or older than any run
# that could still be writing: only then is it removed without the lock's say.
_UNLOCKED_GRACE_S = 600
# Scratch folders outlive the call that made them (scratch_dir ... replace_dir): their
# claims stay held by this process until replace_dir, or until it exits.
_HELD_CLAIMS: dict[str, "_Claim"] = {}


class UnsafePathError(PpdnnError, ValueError):
    """A path that is not what a command may read or replace (a FIFO, a device, ...)."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def display(path) -> str:
    """``path`` as printable text: bytes that are not UTF-8 appear as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# ------------------------------------------------------------ kinds of files
def kind_of(mode: int) -> str:
    """What an ``st_mode`` is, in words ("a FIFO (named pipe)", "a folder", ...)."""
    kinds = [(stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
             (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device")]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_replaceable(path: str | os.PathLike, folder_ok: bool = False) -> None:
    """Refuse to replace ``path`` unless it is missing, a regular file, a symlink to one (the
    link is replaced, its target left alone) or, with ``folder_ok``, a folder ppdnn wrote."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISLNK(st.st_mode):
        try:
            if stat.S_ISREG(os.stat(path).st_mode):
                return
            what = f"a symbolic link to {kind_of(os.stat(path).st_mode)}"
        except OSError:
            what = "a symbolic link to nothing"
    elif stat.S_ISDIR(st.st_mode) and folder_ok and _is_marker(path / OUTPUT_MARKER):
        return
    else:
        what = kind_of(st.st_mode)
    raise UnsafePathError(f"{display(path)} is {what}; ppdnn replaces only regular files "
                          f"{'and folders it wrote ' if folder_ok else ''}and refuses to "
                          "replace anything else, even with --force")


def _is_marker(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def open_regular(path: str | os.PathLike, what: str = "input") -> BinaryIO:
    """Open ``path`` for reading if it is a regular file (symlinks to one are followed).

    The kind is checked before opening (opening a device can have effects, a socket cannot
    be opened) and again on the opened file (fstat), so nothing can be swapped in between;
    O_NONBLOCK makes a FIFO swapped in meanwhile return at once instead of blocking.
    """
    path = Path(path)
    try:
        _refuse_non_regular(path, os.stat(path).st_mode, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{what} does not exist", display(path)) from None
    try:
        _refuse_non_regular(path, os.fstat(fd).st_mode, what)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _refuse_non_regular(path: Path, mode: int, what: str) -> None:
    if not stat.S_ISREG(mode):
        raise UnsafePathError(f"{what} {display(path)} is {kind_of(mode)}, not a regular file; "
                              "ppdnn reads only regular files")


def check_regular_input(path: str | os.PathLike, what: str = "input") -> Path:
    """Refuse ``path`` unless it is a regular file (without opening it for long)."""
    open_regular(path, what).close()
    return Path(path)


def read_regular(path: str | os.PathLike, what: str = "input") -> bytes:
    """The bytes of the regular file ``path`` (see :func:`open_regular`)."""
    with open_regular(path, what) as f:
        return f.read()


# ------------------------------------------------------------ claims and temporary names
class _Claim:
    """A lock file ``.ppdnn-<token>.lock`` in ``folder``, flock-ed while this run writes there.

    The kernel releases the lock when the process dies, however it dies, so a later run can
    tell a dead run's temporaries from a live one's (see :func:`remove_stale_temporaries`).
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._count = 0
        while True:
            self.token = secrets.token_hex(8)
            self.lock = folder / f"{TEMP_PREFIX}{self.token}.lock"
            try:
                self._fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                break
            except FileExistsError:
                continue
            except OSError as err:  # a read-only folder: name the folder, not the lock
                raise _naming(err, folder) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a file system without flock: the lock file alone marks the claim
            pass

    def name(self, kind: str) -> Path:
        """A new name of this claim, e.g. ``.ppdnn-<token>-3.tmp``."""
        self._count += 1
        return self.folder / f"{TEMP_PREFIX}{self.token}-{self._count:x}.{kind}"

    def release(self) -> None:
        if self._fd is None:
            return
        Path(self.lock).unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


@contextlib.contextmanager
def _claimed(folder: Path) -> Iterator[_Claim]:
    claim = _Claim(folder)
    try:
        yield claim
    finally:
        claim.release()


def _create_temp(claim: _Claim, target: Path) -> tuple[int, Path]:
    """An exclusive new 0600 file of ``claim`` beside ``target``: (fd, path)."""
    while True:
        tmp = claim.name("tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600), tmp
        except FileExistsError:
            continue
        except OSError as err:
            raise _naming(err, target) from None


def _fill(fd: int, write: Callable[[BinaryIO], object], mode: int) -> None:
    """Write through ``write(f)``, sync, then give the file its final ``mode``."""
    with os.fdopen(fd, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
        os.fchmod(f.fileno(), mode)  # readable by others (if mode says so) only once complete


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries that killed runs left in ``folder``; return what was removed.

    Only names of the form ``.ppdnn-<16 hex>[-<n>].tmp|.scratch|.old|.lock`` are looked at,
    and a claim is removed only if its lock is free (its run is dead) or, with no lock file,
    if it is older than any live run could be. Folders are removed only if they hold
    :data:`OUTPUT_MARKER` (or are empty), so nothing a user made can be deleted.
    """
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    claims: dict[str, list[Path]] = {}
    for name in names:
        match = _TEMP_NAME.match(name)
        if match:
            claims.setdefault(match.group(1), []).append(folder / name)
    removed = []
    for token, paths in claims.items():
        lock = folder / f"{TEMP_PREFIX}{token}.lock"
        if token in _HELD_CLAIMS or not _claim_is_dead(lock, paths):
            continue
        for path in sorted(paths, key=lambda p: p == lock):  # the lock file last
            if _remove_own(path):
                removed.append(path)
    return sorted(removed)


def _claim_is_dead(lock: Path, paths: list[Path]) -> bool:
    if lock not in paths:
        try:
            newest = max(os.lstat(p).st_mtime for p in paths)
        except OSError:
            return False
        return time.time() - newest > _UNLOCKED_GRACE_S
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # held by a live run (or no flock here: never guess)
        return False
    finally:
        os.close(fd)


def _remove_own(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if _is_marker(path / OUTPUT_MARKER):
            shutil.rmtree(path, ignore_errors=True)
            return not os.path.lexists(path)
        return _remove_if_empty(path)
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        path.unlink(missing_ok=True)
        return True
    return False  # a FIFO or device under our name: not ours, leave it


# ------------------------------------------------------------ writers
def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], mode: int | None = None) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it into place.

    A crash or an exception leaves the previous file (or none), never a half-written one.
    ``mode``: the file's permission bits; by default those of any new file (0o666 & ~umask).
    The temporary file is 0600 until it is complete, so a key or plaintext is never readable
    by others midway. ``path`` must be missing or replaceable (:func:`check_replaceable`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable(path)
    remove_stale_temporaries(path.parent)
    with _claimed(path.parent) as claim:
        fd, tmp = _create_temp(claim, path)
        try:
            _fill(fd, write, mode if mode is not None else 0o666 & ~_umask())
            check_replaceable(path)  # again: the write may have taken minutes
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
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
    remove_stale_temporaries(path.parent)
    with _claimed(path.parent) as claim:
        fd, tmp = _create_temp(claim, path)
        try:
            _fill(fd, lambda f: f.write(payload), mode)
            try:
                _link_new(tmp, path)
            except FileExistsError:
                raise FileExistsError(exists_message or f"{display(path)} exists") from None
        finally:
            tmp.unlink(missing_ok=True)
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
        raise NotADirectoryError(f"cannot write to {display(folder)}: {display(existing)} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        problem = type(err)(f"cannot write to {display(folder)}: {err.strerror or err}")
        problem.errno = err.errno
        raise problem from None


def write_files(outputs: list[tuple[Path, Callable[[BinaryIO], object]]],
                overwrite: bool = False) -> list[Path]:
    """Write several files all or nothing: ``outputs`` is a list of (path, write(f)).

    Every file is written to a temporary file beside its target first, so a full disk or a
    failing encoder stops the call before any target exists. Then each goes into place:
    a new name by ``link`` (which fails, instead of replacing, if the name appeared in the
    meantime), an existing one only with ``overwrite`` and only if it is a regular file.
    On any failure the temporary files, the files this call created and the folders it
    created are removed; files replaced under ``overwrite`` keep their new, complete content.
    """
    paths = [Path(p) for p, _ in outputs]
    for path in paths:
        check_replaceable(path)
    created_dirs: list[Path] = []
    with contextlib.ExitStack() as stack:
        temps: list[Path] = []
        created: list[Path] = []
        try:
            claims = {}
            for folder in dict.fromkeys(p.parent for p in paths):
                _make_dirs(folder, created_dirs)
                remove_stale_temporaries(folder)
                claims[folder] = stack.enter_context(_claimed(folder))
            for path, (_, write) in zip(paths, outputs):
                temps.append(_write_temp(claims[path.parent], path, write))
            for path, tmp in zip(paths, temps):
                if overwrite and os.path.lexists(path):
                    check_replaceable(path)
                    os.replace(tmp, path)
                    continue
                _link_new(tmp, path)
                created.append(path)
        except BaseException:
            for path in [*temps, *created]:
                path.unlink(missing_ok=True)
            stack.close()  # release the claims (their lock files) before removing folders
            for folder in reversed(created_dirs):
                _remove_if_empty(folder)
            raise
        for tmp in temps:  # the second name of each linked file
            tmp.unlink(missing_ok=True)
    return paths


def _link_new(tmp: Path, path: Path) -> None:
    """Give the finished ``tmp`` the new name ``path``; never replace an existing file."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f"{display(path)} exists (created by something else meanwhile); "
                              "nothing was replaced") from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # no hard links on this file system (FAT, some network shares): claim the name
        # exclusively, then move the finished file over the empty claim
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.replace(tmp, path)


def _write_temp(claim: _Claim, path: Path, write: Callable[[BinaryIO], object]) -> Path:
    fd, tmp = _create_temp(claim, path)
    try:
        _fill(fd, write, 0o666 & ~_umask())
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _naming(err, path) from None
        raise
    return tmp


def _naming(err: OSError, path: Path) -> OSError:
    """``err`` about ``path``: a full disk or a failed write names no file by itself."""
    if err.errno is None:
        return err
    return type(err)(err.errno, err.strerror, display(path))


def _make_dirs(folder: Path, created: list[Path]) -> None:
    """``mkdir -p folder``, appending each folder it creates to ``created``, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        created.append(path)


def _remove_if_empty(folder: Path) -> bool:
    try:
        folder.rmdir()
        return True
    except OSError:  # not empty: someone else put something there; leave it
        return False


def remove_interrupted_writes(path: str | os.PathLike) -> list[Path]:
    """Delete what killed writes left beside ``path``: the stale ``.ppdnn-*`` temporaries of
    dead runs in its folder (:func:`remove_stale_temporaries`) and files of the older
    pattern ``.{name}.*.tmp`` that earlier versions used. Nothing a user made is touched."""
    path = Path(path)
    removed = remove_stale_temporaries(path.parent)
    legacy = sorted(path.parent.glob(f".{glob_escape(path.name)}.*.tmp")) if path.parent.is_dir() else []
    for tmp in legacy:
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters quoted, so a ``[`` in a file name is literal."""
    return re.sub(r"([*?\[])", r"[\1]", name)


# ------------------------------------------------------------ folders
def replace_dir(new: Path, target: Path, made_by: str) -> Path:
    """Move the finished folder ``new`` to ``target``, replacing only what ppdnn made.

    ``target`` may be missing, empty, or a folder an earlier ``replace_dir`` wrote (it holds
    the marker file ``.ppdnn-output``); anything else -- a user's folder, a file, a FIFO --
    is refused, so a step never deletes what it did not create. ``new`` gets the marker. The
    old folder is moved aside to a name created in this call, and deleted from there.
    """
    new, target = Path(new), Path(target)
    (new / OUTPUT_MARKER).write_text(f"written by {made_by}; replaced when that step runs again\n")
    if os.path.lexists(target):
        owned = target.is_dir() and not target.is_symlink() and (
            _is_marker(target / OUTPUT_MARKER) or not any(target.iterdir()))
        if not owned:
            raise FileExistsError(f"{display(target)} exists and was not written by ppdnn (no "
                                  f"{OUTPUT_MARKER}); move it away or choose another output folder")
        with _claimed(target.parent) as claim:
            aside = claim.name("old")
            aside.mkdir(mode=0o700)  # claimed exclusively; rename replaces this empty folder
            os.replace(target, aside)
            os.replace(new, target)
            _remove_own(aside)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new, target)
    _release_scratch(new)
    return target


def scratch_dir(target: Path) -> Path:
    """A fresh, empty folder beside ``target`` to build its replacement in (see replace_dir).

    Its name is new (``.ppdnn-<token>-1.scratch``), mode 0700, and claimed by this process
    until :func:`replace_dir` moves it or the process ends; a killed run's scratch folders
    are removed by the next call here (:func:`remove_stale_temporaries`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    claim = _Claim(target.parent)
    scratch = claim.name("scratch")
    try:
        scratch.mkdir(mode=0o700)
        (scratch / OUTPUT_MARKER).write_text("incomplete\n")
    except BaseException:
        claim.release()
        raise
    _HELD_CLAIMS[claim.token] = claim
    return scratch


def _release_scratch(scratch: Path) -> None:
    match = _TEMP_NAME.match(scratch.name)
    if match and match.group(1) in _HELD_CLAIMS:
        _HELD_CLAIMS.pop(match.group(1)).release()

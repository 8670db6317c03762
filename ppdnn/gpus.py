"""One GPU per job on a multi-GPU node, chosen by lock files.

DVC's experiment queue (``dvc exp run --queue``, then ``dvc queue start --jobs N``) runs
N experiments at once, each in its own temporary copy of the repository, and knows
nothing about GPUs. Each train stage therefore takes a GPU itself: the first index
``i`` in ``0..n-1`` whose lock file ``<lock_dir>/gpu<i>.lock`` it can lock exclusively
(``filelock.FileLock``, a native ``flock`` on Linux, no soft fallback), and sets
``CUDA_VISIBLE_DEVICES`` to that GPU for the rest of the stage (papermill's kernel
inherits it) before anything initialises CUDA.

- The lock is held for the stage's whole duration and released when the ``with`` block
  ends, and by the kernel when the process dies in any way (kill -9 included): a lock
  belongs to an open file, never to a file's existence, so no stale lock survives a
  crash. The files stay in ``lock_dir``; they are never deleted (deleting a lock file
  that another process is waiting on would let two processes "hold" the same GPU).
- All GPUs busy: :func:`choose_gpu` polls every ``poll`` seconds and waits, by default
  for ever (a queue with more jobs than GPUs simply waits for the next free one); with
  ``timeout`` it raises :class:`NoFreeGPU` (a ``TimeoutError``) after that many seconds.
- ``lock_dir`` must be one folder that every job sees: an absolute path, because queued
  experiments run in temporary copies of the repository.
- Within one process, two ``choose_gpu`` calls (e.g. threads) also exclude each other:
  each makes its own ``FileLock`` (its own open file), and locks of separate opens conflict.

Switched on by the environment, so that a single-GPU or CPU user sees no change:
``PPDNN_GPU_LOCKS=<dir>`` (required), ``PPDNN_GPU_COUNT=<n>`` (default: the entries of
an existing ``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``), ``PPDNN_GPU_TIMEOUT=<s>``
(default: wait for ever). :func:`gpu_for_job` reads them; the command line
``python -m ppdnn.gpus run -- CMD...`` runs any command on a free GPU, and
``python -m ppdnn.gpus status`` shows which GPUs are held and by whom.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import filelock

ENV_LOCKS = "PPDNN_GPU_LOCKS"
ENV_COUNT = "PPDNN_GPU_COUNT"
ENV_TIMEOUT = "PPDNN_GPU_TIMEOUT"
ENV_VISIBLE = "CUDA_VISIBLE_DEVICES"
ENV_SLOT = "PPDNN_GPU_SLOT"  # set while a job holds a GPU; children inherit it


class NoFreeGPU(TimeoutError):
    """Every GPU stayed locked by other jobs for the whole timeout."""


def lock_path(lock_dir, index: int) -> Path:
    return Path(lock_dir) / f"gpu{index}.lock"


def _holder_note(fd: int) -> None:
    """Write who holds the lock into the file (for people: the lock is the flock, not the text)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
              .encode(), 0)


def _try_lock(path: Path, note: bool = True) -> filelock.FileLock | None:
    """A held exclusive lock on ``path``, or None if another open file holds it.

    No soft fallback: a soft lock (a marker file) would outlive a killed holder.
    """
    lock = filelock.FileLock(path, timeout=0, fallback_to_soft=False,
                             on_acquired=_holder_note if note else None)
    try:
        lock.acquire()
    except filelock.Timeout:
        return None
    return lock


def _check_count(n_gpus) -> int:
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int) or n_gpus < 1:
        raise ValueError(f"n_gpus must be a positive int, got {n_gpus!r}")
    return n_gpus


@contextlib.contextmanager
def choose_gpu(n_gpus: int, lock_dir, timeout: float | None = None, poll: float = 0.5,
               on_wait=None):
    """Hold the first free GPU index of ``0..n_gpus-1`` for the ``with`` block; yields the index.

    Waits while all are held (``timeout=None``: for ever; else :class:`NoFreeGPU` after
    ``timeout`` seconds). ``on_wait(n_gpus)`` is called once when it starts waiting.
    The lock file holds the holder's host, pid and start time (for people; the lock is
    the flock, not the content).
    """
    n_gpus = _check_count(n_gpus)
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout is None else time.monotonic() + float(timeout)
    waited = False
    while True:
        for index in range(n_gpus):
            lock = _try_lock(lock_path(lock_dir, index))
            if lock is not None:
                break
        else:
            if deadline is not None and time.monotonic() >= deadline:
                raise NoFreeGPU(f"all {n_gpus} GPUs stayed locked for {timeout} s (lock files in {lock_dir})")
            if not waited and on_wait is not None:
                on_wait(n_gpus)
            waited = True
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))
            continue
        break
    try:
        yield index
    finally:
        lock.release()


def visible_devices(index: int, parent: str | None = None) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value for slot ``index``.

    With ``parent`` (the value already set, e.g. ``"2,3"`` or GPU UUIDs given by a cluster
    scheduler) the slot is an index into it; otherwise the index is the device number.
    """
    if index < 0:
        raise ValueError(f"GPU index must be >= 0, got {index}")
    entries = [e.strip() for e in (parent or "").split(",") if e.strip()]
    if not entries:
        return str(index)
    if index >= len(entries):
        raise ValueError(f"GPU slot {index} but CUDA_VISIBLE_DEVICES={parent!r} names only {len(entries)}")
    return entries[index]


def gpu_count(environ=None) -> int:
    """GPUs to share out, without initialising CUDA in this process.

    ``PPDNN_GPU_COUNT`` if set; else the entries of a set ``CUDA_VISIBLE_DEVICES``;
    else the lines of ``nvidia-smi -L``; else 0.
    """
    environ = os.environ if environ is None else environ
    if environ.get(ENV_COUNT, "").strip():
        count = _env_number(environ, ENV_COUNT, int)
        if count < 0:
            raise ValueError(f"{ENV_COUNT} must be a whole number >= 0, got {environ[ENV_COUNT]!r}")
        return count
    if ENV_VISIBLE in environ:
        return len([e for e in environ[ENV_VISIBLE].split(",") if e.strip()])
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))



def _env_number(environ, name: str, kind: type):
    """``environ[name]`` as ``kind`` (int or float); ValueError naming the variable if it is not one."""
    text = environ[name].strip()
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number of seconds"
        raise ValueError(f"{name} must be {what}, got {environ[name]!r}") from None


@contextlib.contextmanager
def gpu_for_job(lock_dir=None, n_gpus: int | None = None, timeout: float | None = None,
                environ=None, log=None):
    """Hold a free GPU and point ``CUDA_VISIBLE_DEVICES`` at it for the ``with`` block.

    Off (yields None, changes nothing) unless ``lock_dir`` or ``$PPDNN_GPU_LOCKS`` is
    set, or when there are no GPUs. ``n_gpus``/``timeout`` default to
    ``$PPDNN_GPU_COUNT``/``$PPDNN_GPU_TIMEOUT`` (see :func:`gpu_count`). Also sets
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` unless set, so that index i is nvidia-smi's GPU i.
    The environment is restored afterwards. Enter it before torch initialises CUDA.
    Nested calls (in the job's children, which inherit ``$PPDNN_GPU_SLOT``) take no
    second lock and keep the GPU their parent holds.
    """
    environ = os.environ if environ is None else environ
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    lock_dir = lock_dir or environ.get(ENV_LOCKS, "").strip() or None
    if lock_dir is None:
        yield None
        return
    if environ.get(ENV_SLOT, "").strip():
        yield int(environ[ENV_SLOT])  # a parent holds the lock and set CUDA_VISIBLE_DEVICES
        return
    if not Path(lock_dir).is_absolute():
        log(f"ppdnn.gpus: warning: {ENV_LOCKS}={lock_dir} is relative; queued DVC experiments run in "
            "temporary copies of the repository and would not share it: use an absolute path")
    n = n_gpus if n_gpus is not None else gpu_count(environ)
    if n < 1:
        log("ppdnn.gpus: no GPU found; running without a GPU lock")
        yield None
        return
    if timeout is None and environ.get(ENV_TIMEOUT, "").strip():
        timeout = _env_number(environ, ENV_TIMEOUT, float)
    saved = {k: environ.get(k) for k in (ENV_VISIBLE, "CUDA_DEVICE_ORDER", ENV_SLOT)}
    on_wait = lambda count: log(f"ppdnn.gpus: all {count} GPUs are busy; waiting for one (locks in {lock_dir})")
    with choose_gpu(n, lock_dir, timeout=timeout, on_wait=on_wait) as index:
        environ[ENV_VISIBLE] = visible_devices(index, saved[ENV_VISIBLE])
        environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        environ[ENV_SLOT] = str(index)
        log(f"ppdnn.gpus: GPU slot {index} of {n}, {ENV_VISIBLE}={environ[ENV_VISIBLE]} (lock {lock_path(lock_dir, index)})")
        try:
            yield index
        finally:
            for key, value in saved.items():
                if value is None:
                    environ.pop(key, None)
                else:
                    environ[key] = value


def status(n_gpus: int, lock_dir) -> list[dict]:
    """Which GPU slots are held now, and the holder's note; takes no lock it does not release."""
    out = []
    for index in range(_check_count(n_gpus)):
        path = lock_path(lock_dir, index)
        probe = _try_lock(path, note=False) if path.exists() else None
        held = probe is None and path.exists()
        if probe is not None:
            probe.release()
        note = path.read_text().strip() if held else ""
        out.append({"gpu": index, "held": held, "holder": note})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.gpus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--locks", default=None, help=f"lock folder (default ${ENV_LOCKS})")
    parser.add_argument("--gpus", type=int, default=None, help=f"GPU count (default ${ENV_COUNT} or nvidia-smi)")
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("run", help="run a command on a free GPU: python -m ppdnn.gpus run -- CMD ...")
    p.add_argument("--timeout", type=float, default=None, help=f"seconds to wait (default ${ENV_TIMEOUT} or for ever)")
    p.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("status", help="which GPUs are held")
    args = parser.parse_args(argv)
    lock_dir = args.locks or os.environ.get(ENV_LOCKS)
    if not lock_dir:
        parser.error(f"give --locks DIR or set {ENV_LOCKS}")
    command = args.command[1:] if args.verb == "run" and args.command[:1] == ["--"] else getattr(args, "command", [])
    if args.verb == "run" and not command:
        parser.error("run needs a command after --")
    from .errors import run_main

    exit_status = []  # the command's own status; run_main's is 1 for a one-line error
    status_code = run_main("ppdnn.gpus", lambda: exit_status.append(_verb(args, lock_dir, command)))
    return exit_status[0] if status_code == 0 else status_code


def _verb(args, lock_dir, command) -> int:
    if args.verb == "status":
        n = args.gpus if args.gpus is not None else gpu_count()
        for row in status(n, lock_dir):
            print(f"gpu {row['gpu']}: {'held by ' + row['holder'] if row['held'] else 'free'}")
        return 0
    try:
        with gpu_for_job(lock_dir, n_gpus=args.gpus, timeout=args.timeout):
            return subprocess.run(command).returncode
    except NoFreeGPU as exc:
        print(f"ppdnn.gpus: {exc}", file=sys.stderr)
        return 75  # EX_TEMPFAIL

if __name__ == "__main__":
    sys.exit(main())

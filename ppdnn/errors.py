"""Ending a command well: an expected failure is one line on stderr, never a traceback.

``run_main(prog, func)`` runs a command's body and maps what it raises to an exit status,
for the ``ppdnn`` command and for ``python -m ppdnn.pipeline`` alike. It knows nothing
about either: expected errors are the standard ones a bad argument, a missing or damaged
file or a full disk raise, plus :class:`PpdnnError`, the base class of the package's own.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tarfile
import threading
import traceback
import zipfile
import zlib
from typing import Callable, Iterator

from PIL import Image

DEBUG_ENV = "PPDNN_DEBUG"


class PpdnnError(Exception):
    """Base class of the package's own expected errors (bad input, damaged or foreign files)."""


# What bad input, a damaged file or the machine (disk, memory) raise; anything else is a bug.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    PpdnnError, OSError, ValueError, TypeError, KeyError, EOFError, MemoryError,
    zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, zlib.error,
    Image.DecompressionBombError, Image.DecompressionBombWarning,
)
try:  # params.yaml errors of the pipeline; PyYAML is a dependency, but keep this module standalone
    import yaml
    EXPECTED_ERRORS += (yaml.YAMLError,)
except ImportError:  # pragma: no cover
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived (``kill``, ``timeout``); raised like Ctrl-C so cleanup runs."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = int(signum)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within this block SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    Only signals left at their default action are taken over (``nohup`` keeps SIGHUP
    ignored). A second signal while the first is handled is ignored, so that the cleanup
    the first started can finish. Outside the main thread (no handlers there) a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised: list[int] = []

    def handler(signum, frame):
        if not raised:
            raised.append(signum)
            raise Terminated(signum)
    wanted = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {s: signal.getsignal(s) for s in wanted}
    for s, old in previous.items():
        if old is signal.SIG_DFL:
            signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            if old is signal.SIG_DFL:
                signal.signal(s, old)


def printable(text: str) -> str:
    """``text`` safe to print: undecodable bytes of a file name (surrogates) as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def debug_requested(flag: bool = False) -> bool:
    """True if ``flag`` is set or the environment variable PPDNN_DEBUG is (anything but 0/empty)."""
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line, with the file name an OSError carries."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{os.fsdecode(exc.filename)}: {exc.strerror}"
        if exc.filename2 is not None:
            text += f" -> {os.fsdecode(exc.filename2)}"
    elif isinstance(exc, RecursionError):
        text = "structure nested too deeply" + (f" ({exc})" if str(exc) else "")
    elif isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        # str(KeyError) is the repr of its key; a bare key name alone says nothing
        text = exc.args[0] if " " in exc.args[0] else f"missing key {exc.args[0]!r}"
    elif isinstance(exc, MemoryError):
        text = "out of memory" + (f" ({exc})" if str(exc) else "")
    else:
        text = str(exc)
    text = re.sub(r"\s*\n\s*", " ", printable(text)).strip()
    return text or type(exc).__name__


def run_main(prog: str, func: Callable[[], object], debug: bool = False) -> int:
    """Call ``func()``; return the exit status: 0, 1 on any error, 130 on Ctrl-C, 143 on
    SIGTERM (128 + the signal's number; SIGTERM and SIGHUP are handled like Ctrl-C, so the
    cleanup of the interrupted step runs).

    Errors are reported as ``"{prog}: error: {message}"``, one line on stderr. An error of a
    kind this module does not expect is a bug: its line says so and how to see the
    traceback, which ``debug=True`` or PPDNN_DEBUG=1 prints before the line.
    SystemExit (argparse's usage errors, exit 2) passes through unchanged.
    """
    debug = debug_requested(debug)
    try:
        with terminate_as_interrupt():
            func()
    except Terminated as exc:
        _traceback_if(debug)
        print(f"{prog}: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        _traceback_if(debug)
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as exc:
        _traceback_if(debug)
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        _traceback_if(debug)
        print(f"{prog}: error: unexpected {type(exc).__name__}: {one_line(exc)} (probably a bug; "
              f"rerun with --debug or {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 1
    return 0


def _traceback_if(debug: bool) -> None:
    if debug:
        traceback.print_exc()

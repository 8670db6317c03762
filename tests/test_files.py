"""Tests of ppdnn.files: temporary names and modes, what may be replaced, non-regular
inputs, cleanup after a killed run, SIGTERM handled like Ctrl-C."""
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ppdnn import errors, files

LONG_NAME = "n" * 246 + ".png"  # 250 characters: legal, but ".{name}.XXXXXXXX.tmp" is not




def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ------------------------------------------------------------ temporary names and modes
def test_a_250_character_name_is_written_by_every_writer(tmp_path):
    files.atomic_write(tmp_path / LONG_NAME, lambda f: f.write(b"a"))
    files.write_files([(tmp_path / "w" / LONG_NAME, lambda f: f.write(b"b"))])
    files.exclusive_write(tmp_path / "e" / LONG_NAME, b"c")
    assert (tmp_path / LONG_NAME).read_bytes() == b"a"
    assert (tmp_path / "w" / LONG_NAME).read_bytes() == b"b"
    assert (tmp_path / "e" / LONG_NAME).read_bytes() == b"c"
    assert listing(tmp_path / "w") == [LONG_NAME] and listing(tmp_path / "e") == [LONG_NAME]


@pytest.mark.parametrize("writer", ["atomic", "write_files", "exclusive"])
def test_temporary_files_are_private_and_named_by_the_project(tmp_path, writer):
    seen = {}

    def spy(f):
        for name in os.listdir(tmp_path):
            if name.endswith(".tmp"):
                seen[name] = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        f.write(b"secret")
    target = tmp_path / "plain.png"
    os.umask(0o022)
    if writer == "atomic":
        files.atomic_write(target, spy)
    elif writer == "write_files":
        files.write_files([(target, spy)])
    else:
        payload = b"secret"
        real_fill = files._fill
        files._fill = lambda fd, write, mode: real_fill(fd, lambda f: (spy(f), None)[1], mode)
        try:
            files.exclusive_write(target, payload)
        finally:
            files._fill = real_fill
    assert seen and all(mode == 0o600 for mode in seen.values()), seen
    assert all(name.startswith(".ppdnn-") and len(name) < 40 for name in seen)
    assert listing(tmp_path) == ["plain.png"]  # temporaries and lock files gone
    if writer != "exclusive":
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o644  # the umask's, once complete


# ------------------------------------------------------------ what may be replaced
def non_regular(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"target-{kind}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    elif kind == "link_to_fifo":
        os.mkfifo(tmp_path / "pipe")
        path.symlink_to(tmp_path / "pipe")
    elif kind == "dangling_link":
        path.symlink_to(tmp_path / "nothing")
    elif kind == "folder":
        path.mkdir()
        (path / "mine.txt").write_text("the user's")
    elif kind == "device":
        path = fake_device(path)
    return path


def fake_device(path: Path) -> Path:
    """A twin of /dev/null (character device 1, 3) at ``path``: tests never touch the real
    one, which a failing (pre-fix) version would replace. Needs root (mknod), else skip."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    return path


@pytest.mark.parametrize("kind", ["fifo", "socket", "link_to_fifo", "dangling_link", "folder", "device"])
def test_only_regular_files_are_ever_replaced(tmp_path, kind):
    path = non_regular(tmp_path, kind)
    before = os.lstat(path)
    for write in (lambda: files.atomic_write(path, lambda f: f.write(b"x")),
                  lambda: files.write_files([(path, lambda f: f.write(b"x"))], overwrite=True)):
        with pytest.raises(files.UnsafePathError, match="ppdnn replaces only regular files") as err:
            write()
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert not [n for n in listing(tmp_path) if n.startswith(".ppdnn-")]


def test_a_symlink_to_a_regular_file_is_replaced_without_touching_its_target(tmp_path):
    (tmp_path / "real").write_bytes(b"original")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    files.atomic_write(tmp_path / "link", lambda f: f.write(b"new"))
    assert (tmp_path / "real").read_bytes() == b"original"
    assert (tmp_path / "link").read_bytes() == b"new" and not (tmp_path / "link").is_symlink()


# ------------------------------------------------------------ inputs
@pytest.mark.parametrize("kind", ["fifo", "socket", "link_to_fifo", "folder", "device"])
def test_non_regular_inputs_are_refused_without_blocking(tmp_path, kind, no_hang):
    path = non_regular(tmp_path, kind)
    with pytest.raises(files.UnsafePathError, match="not a regular file") as err:
        files.read_regular(path, "--key")
    assert str(err.value).startswith(f"--key {path} is ")


def test_a_missing_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        files.open_regular(tmp_path / "gone.json", "key file")
    assert errors.one_line(err.value) == f"{tmp_path / 'gone.json'}: key file does not exist"


# ------------------------------------------------------------ folders
def test_replace_dir_never_deletes_a_sibling_it_did_not_create(tmp_path):
    out = tmp_path / "out"
    for name in (".out.old", ".out.tmp"):  # the fixed names earlier versions deleted
        (tmp_path / name).mkdir()
        (tmp_path / name / "precious.txt").write_text("the user's")
    for run in range(2):
        scratch = files.scratch_dir(out)
        (scratch / "data.npz").write_bytes(b"run %d" % run)
        files.replace_dir(scratch, out, made_by="a test")
    assert (out / "data.npz").read_bytes() == b"run 1"
    for name in (".out.old", ".out.tmp"):
        assert (tmp_path / name / "precious.txt").read_text() == "the user's"
    assert listing(tmp_path) == [".out.old", ".out.tmp", "out"]


def test_scratch_folders_are_new_private_and_distinct(tmp_path):
    first, second = files.scratch_dir(tmp_path / "out"), files.scratch_dir(tmp_path / "out")
    assert first != second and first.parent == second.parent == tmp_path
    assert stat.S_IMODE(os.stat(first).st_mode) == 0o700
    assert files.remove_stale_temporaries(tmp_path) == []  # held by this live process


# ------------------------------------------------------------ cleanup after a killed run
KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from ppdnn import files
    def slow(f):
        f.write(b"plaintext")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
    mode = sys.argv[2]
    if mode == "atomic":
        files.atomic_write(sys.argv[1] + "/out.png", slow)
    elif mode == "many":
        files.write_files([(sys.argv[1] + "/a.png", lambda f: f.write(b"done")),
                           (sys.argv[1] + "/b.png", slow)])
    else:
        scratch = files.scratch_dir(files.Path(sys.argv[1]) / "enc")
        (scratch / "train.npz").write_bytes(b"x")
        print("writing", flush=True)
        time.sleep(60)
""")


def start_writer(folder: Path, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder), mode],
                            stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.readline().strip() == "writing"
    return proc


@pytest.mark.parametrize("mode", ["atomic", "many", "scratch"])
def test_what_a_killed_run_left_is_removed_and_a_live_run_is_left_alone(tmp_path, mode):
    (tmp_path / ".ppdnn-notes.txt").write_text("the user's")  # our prefix, not our pattern
    (tmp_path / ".out.png.abcd1234.tmp").write_text("the user's")
    live = start_writer(tmp_path, mode)
    try:
        leftovers = [n for n in listing(tmp_path) if n.startswith(".ppdnn-") and n != ".ppdnn-notes.txt"]
        assert leftovers
        assert files.remove_stale_temporaries(tmp_path) == []  # its run is alive
        assert all((tmp_path / n).exists() for n in leftovers)
    finally:
        live.kill()
        live.wait()
    removed = files.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(leftovers)
    assert listing(tmp_path) == sorted([".ppdnn-notes.txt", ".out.png.abcd1234.tmp"])


def test_stale_cleanup_spares_foreign_things_under_our_pattern(tmp_path):
    (tmp_path / ".ppdnn-0123456789abcdef-1.scratch").mkdir()  # no marker: not ours
    (tmp_path / ".ppdnn-0123456789abcdef-1.scratch" / "precious.txt").write_text("x")
    os.mkfifo(tmp_path / ".ppdnn-0123456789abcdef-2.tmp")
    (tmp_path / ".ppdnn-0123456789abcdef.lock").write_text("")
    files.remove_stale_temporaries(tmp_path)
    assert (tmp_path / ".ppdnn-0123456789abcdef-1.scratch" / "precious.txt").exists()
    assert stat.S_ISFIFO(os.lstat(tmp_path / ".ppdnn-0123456789abcdef-2.tmp").st_mode)


# ------------------------------------------------------------ SIGTERM
SIGTERMED = textwrap.dedent("""
    import sys, time
    from ppdnn import errors, files
    def slow(f):
        f.write(b"plaintext")
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
    sys.exit(errors.run_main("probe", lambda: files.atomic_write(sys.argv[1] + "/out.png", slow)))
""")


def test_sigterm_is_handled_like_ctrl_c_and_cleans_up(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SIGTERMED, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip() == "probe: terminated by SIGTERM"
    assert listing(tmp_path) == []  # no temporary file, no lock file


def test_terminate_as_interrupt_restores_the_previous_handler():
    before = signal.getsignal(signal.SIGTERM)
    with files.terminate_as_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not before
        with pytest.raises(errors.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_non_utf8_name_is_printable(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")
    assert files.display(tmp_path / name).endswith("caf\\xe9.png")
    err = OSError(28, "No space left on device", str(tmp_path / name))
    errors.one_line(err).encode("utf-8")  # no surrogate left: printing it cannot fail

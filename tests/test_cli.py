"""Tests of the `ppdnn keygen|encrypt|decrypt` command line and of ppdnn.errors.run_main."""
import errno
import io
import os
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from ppdnn import ciphers, cli, errors, files
from ppdnn.ciphers import auth
from ppdnn.cli import main


def write_images(folder, n=3, size=(8, 8), suffix=".png", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"img{i}{suffix}")
    return images


def read_images(folder, suffix=".png"):
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob(f"*{suffix}"))])


def png_bytes(width, height, bit_depth=8, colour_type=2, rows=None) -> bytes:
    """A PNG written by hand: 16-bit RGB (Pillow cannot write it) or a header-only bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(rows)) if rows is not None else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def encrypt(key, *args):
    return main(["encrypt", "--key", str(key), *map(str, args)])


def decrypt(key, *args):
    return main(["decrypt", "--key", str(key), *map(str, args)])


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "key.json"
    assert main(["keygen", str(path), "--scheme", "pixel", "--shuffle", "--size", "8", "8",
                 "--seed", "3"]) == 0
    return path


@pytest.fixture
def other_key(tmp_path):
    path = tmp_path / "other.json"
    assert main(["keygen", str(path), "--size", "8", "8", "--seed", "4"]) == 0
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("ppdnn: warning:")]
    assert len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------ errors.run_main
def test_run_main_reports_expected_errors_on_one_line(capsys, monkeypatch):
    monkeypatch.delenv("PPDNN_DEBUG", raising=False)

    def fail(exc):
        def func():
            raise exc
        return func
    cases = [
        (ValueError("bad value\n  on two lines"), "prog: error: bad value on two lines"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.png"),
         "prog: error: x.png: No such file or directory"),
        (KeyError("images"), "prog: error: missing key 'images'"),
        (KeyError("images is not a file in the archive"), "prog: error: images is not a file in the archive"),
        (Image.DecompressionBombError("Image size too big"), "prog: error: Image size too big"),
        (errors.PpdnnError(""), "prog: error: PpdnnError"),
        (MemoryError(), "prog: error: out of memory"),
    ]
    for exc, line in cases:
        assert errors.run_main("prog", fail(exc)) == 1
        assert capsys.readouterr().err == line + "\n"
    assert errors.run_main("prog", lambda: None) == 0
    assert errors.run_main("prog", fail(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "prog: interrupted\n"


def test_run_main_names_unexpected_errors_and_shows_tracebacks_on_request(capsys, monkeypatch):
    monkeypatch.delenv("PPDNN_DEBUG", raising=False)

    def bug():
        raise ZeroDivisionError("division by zero")
    assert errors.run_main("prog", bug) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected ZeroDivisionError" in err
    assert "--debug" in err and "PPDNN_DEBUG=1" in err
    assert errors.run_main("prog", bug, debug=True) == 1
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("PPDNN_DEBUG", "1")
    assert errors.run_main("prog", bug) == 1
    assert "Traceback" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse's usage errors keep their exit status 2
        errors.run_main("prog", lambda: sys.exit(2))


def test_debug_flag_prints_the_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PPDNN_DEBUG", raising=False)
    write_images(tmp_path / "plain")
    args = ["--key", str(tmp_path / "missing.json"), str(tmp_path / "plain"), str(tmp_path / "o")]
    assert main(["encrypt", *args]) == 1
    assert "Traceback" not in capsys.readouterr().err
    for argv in (["encrypt", *args, "--debug"], ["--debug", "encrypt", *args]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback" in err and err.rstrip().endswith("missing.json does not exist")


def test_a_bug_is_one_line_that_says_how_to_see_more(tmp_path, key, capsys, monkeypatch):
    monkeypatch.delenv("PPDNN_DEBUG", raising=False)
    write_images(tmp_path / "plain")

    def broken(*args, **kwargs):
        raise RuntimeError("internal")
    monkeypatch.setattr(cli.ciphers, "load", broken)
    assert encrypt(key, tmp_path / "plain", tmp_path / "o") == 1
    line = one_error_line(capsys)
    assert "unexpected RuntimeError: internal" in line and "--debug" in line


# ------------------------------------------------------------ keygen
def test_help_explains_the_threat_model():
    result = subprocess.run([sys.executable, "-m", "ppdnn.cli", "--help"],
                            capture_output=True, text=True, check=True)
    text = " ".join(result.stdout.split())
    assert "Threat model" in text and "honest but curious" in text and "never the key" in text
    for command in ("keygen", "encrypt", "decrypt"):
        assert command in text


def test_keygen_writes_a_private_reproducible_key(tmp_path, capsys):
    key = tmp_path / "key.json"
    assert main(["keygen", str(key), "--shuffle", "--size", "8", "8", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "log10 key space 107.6" in out
    fingerprint = out.split("fingerprint ")[1].split(",")[0]
    assert auth.fingerprint_matches(fingerprint, cli.KeyCheck(ciphers.load(key)).material)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    cipher = ciphers.load(key, scheme="pixel", shape=(8, 8))
    assert (cipher.flip == ciphers.make("pixel", (8, 8), shuffle=True, seed=3).flip).all()
    assert (cipher.perm == ciphers.make("pixel", (8, 8), shuffle=True, seed=3).perm).all()
    assert main(["keygen", str(key)]) == 1  # no silent replacement of a key
    assert "overwrite" in capsys.readouterr().err
    assert main(["keygen", str(key), "--force", "--scheme", "tanaka", "--size", "8", "8"]) == 0
    assert ciphers.load(key).scheme == "tanaka"


def test_keygen_rejects_bad_parameters(tmp_path, capsys):
    assert main(["keygen", str(tmp_path / "k.json"), "--scheme", "etc", "--size", "30", "30"]) == 1
    assert "divisible by 4" in capsys.readouterr().err
    assert main(["keygen", str(tmp_path / "k.json"), "--scheme", "etc", "--shuffle"]) == 1
    assert not (tmp_path / "k.json").exists()
    with pytest.raises(SystemExit):
        main(["keygen", str(tmp_path / "k.json"), "--scheme", "aes"])


def test_keygen_refuses_a_folder_or_an_unwritable_place(tmp_path, capsys):
    (tmp_path / "keys").mkdir()
    assert main(["keygen", str(tmp_path / "keys")]) == 1
    assert "is a folder; give a file name" in one_error_line(capsys)
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["keygen", str(tmp_path / "notes.txt" / "k.json")]) == 1
    assert "notes.txt is a file, not a folder" in one_error_line(capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_scheme_choices_come_from_the_registry(monkeypatch):
    monkeypatch.setattr(cli.ciphers, "schemes", lambda: ("plain", "pixel", "later_scheme"))
    args = cli.build_parser().parse_args(["keygen", "k.json", "--scheme", "later_scheme"])
    assert args.scheme == "later_scheme"


# ------------------------------------------------------------ keys
def test_a_folder_or_an_unreadable_key_is_one_line(tmp_path, capsys, monkeypatch):
    write_images(tmp_path / "plain")
    (tmp_path / "keys").mkdir()
    assert encrypt(tmp_path / "keys", tmp_path / "plain", tmp_path / "o") == 1
    assert "--key" in (line := one_error_line(capsys)) and "is a folder" in line

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(cli.ciphers, "load", denied)
    assert encrypt(tmp_path / "k.json", tmp_path / "plain", tmp_path / "o") == 1
    assert one_error_line(capsys).endswith("k.json: Permission denied")
    assert not (tmp_path / "o").exists()


def test_wrong_or_damaged_key(tmp_path, capsys):
    write_images(tmp_path / "plain")
    (tmp_path / "k.json").write_text("{broken")
    assert encrypt(tmp_path / "k.json", tmp_path / "plain", tmp_path / "o") == 1
    assert "damaged JSON" in capsys.readouterr().err
    assert encrypt(tmp_path / "none.json", tmp_path / "plain", tmp_path / "o") == 1
    assert "does not exist" in capsys.readouterr().err


def test_key_readable_by_others_and_plain_keys_are_warned_about(tmp_path, key, capsys):
    write_images(tmp_path / "plain")
    os.chmod(key, 0o644)
    assert encrypt(key, tmp_path / "plain", tmp_path / "e1") == 0
    err = capsys.readouterr().err
    assert f"key file {key} is accessible by group or others (mode 0644)" in err
    assert f"chmod 600 {key}" in err
    plain_key = tmp_path / "plain.json"
    assert main(["keygen", str(plain_key), "--scheme", "plain", "--size", "8", "8"]) == 0
    assert encrypt(plain_key, tmp_path / "plain", tmp_path / "e2") == 0
    err = capsys.readouterr().err
    assert "the output is NOT encrypted" in err and "accessible by group" not in err


# ------------------------------------------------------------ round trips
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_folder_round_trip(tmp_path, key, suffix):
    write_images(tmp_path / "plain", suffix=suffix)
    originals = np.stack([np.asarray(Image.open(p).convert("RGB"))
                          for p in sorted((tmp_path / "plain").iterdir())])
    assert encrypt(key, tmp_path / "plain", tmp_path / "enc") == 0
    encrypted = read_images(tmp_path / "enc")
    assert (encrypted == ciphers.load(key).encrypt(originals)).all()
    assert decrypt(key, tmp_path / "enc", tmp_path / "dec") == 0
    assert (read_images(tmp_path / "dec") == originals).all()


def test_single_image_round_trip(tmp_path, key):
    image = write_images(tmp_path, n=1)[0]
    assert encrypt(key, tmp_path / "img0.png", tmp_path / "e.png") == 0
    assert decrypt(key, tmp_path / "e.png", tmp_path / "d.png") == 0
    assert (np.asarray(Image.open(tmp_path / "d.png")) == image).all()
    (tmp_path / "out").mkdir()  # a single image into an existing folder keeps its name
    assert encrypt(key, tmp_path / "img0.png", tmp_path / "out") == 0
    assert (tmp_path / "out" / "img0.png").is_file()


def test_decrypt_may_write_jpeg(tmp_path, key):
    write_images(tmp_path / "plain")
    encrypt(key, tmp_path / "plain", tmp_path / "enc")
    assert decrypt(key, "--format", "jpeg", tmp_path / "enc", tmp_path / "dec") == 0
    assert len(list((tmp_path / "dec").glob("*.jpg"))) == 3


# ------------------------------------------------------------ .npz: no plaintext leaks
def test_npz_round_trip_keeps_only_listed_label_arrays(tmp_path, key, capsys):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(5)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    assert encrypt(key, tmp_path / "d.npz", tmp_path / "e.npz", "--keep", "labels") == 0
    with np.load(tmp_path / "e.npz") as enc:
        assert sorted(enc.files) == ["images", "key_fingerprint", "key_tag", "labels"]
        assert (enc["images"] == ciphers.load(key).encrypt(images)).all()
        assert (enc["labels"] == labels).all()
        assert cli.KeyCheck(ciphers.load(key)).identifies(str(enc["key_fingerprint"]))
    assert decrypt(key, tmp_path / "e.npz", tmp_path / "r.npz") == 0
    with np.load(tmp_path / "r.npz") as restored:
        assert sorted(restored.files) == ["images", "labels"]  # no fingerprint on plaintext
        assert (restored["images"] == images).all() and (restored["labels"] == labels).all()


def test_npz_arrays_that_would_not_be_encrypted_are_refused(tmp_path, key, capsys):
    images = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "leak.npz", images=images, nchw=images.transpose(0, 3, 1, 2).copy(),
             labels=np.arange(3))
    assert encrypt(key, tmp_path / "leak.npz", tmp_path / "e.npz") == 1
    line = one_error_line(capsys)
    assert "'nchw' (uint8 (3, 3, 8, 8))" in line and "'labels'" in line and "--keep" in line
    assert encrypt(key, tmp_path / "leak.npz", tmp_path / "e.npz", "--keep", "labels") == 1
    assert "'nchw'" in (line := one_error_line(capsys)) and "'labels'" not in line
    assert not (tmp_path / "e.npz").exists()


@pytest.mark.parametrize("extra, keep, message", [
    ({"labels": np.arange(3)}, "images", "is image data"),
    ({"flat": None}, "flat", "only a 1-d integer array with one entry per image"),
    ({"labels": np.arange(3.0)}, "labels", "'labels' (float64 (3,)) is not one"),
    ({"labels": np.arange(4)}, "labels", "(3 entries)"),
    ({"labels": np.arange(3)}, "nope", "has no array 'nope'"),
])
def test_keep_accepts_only_label_arrays(tmp_path, key, capsys, extra, keep, message):
    images = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    extra = {n: images.reshape(-1) if a is None else a for n, a in extra.items()}  # flattened images
    np.savez(tmp_path / "d.npz", images=images, **extra)
    assert encrypt(key, tmp_path / "d.npz", tmp_path / "e.npz", "--keep", keep) == 1
    assert message in one_error_line(capsys)
    assert not (tmp_path / "e.npz").exists()


def test_damaged_or_unsafe_npz_inputs(tmp_path, key, capsys):
    images = np.zeros((2, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "objects.npz", images=images, meta=np.array([{"a": 1}], dtype=object))
    buffer = io.BytesIO()
    np.savez(buffer, images=images)
    (tmp_path / "truncated.npz").write_bytes(buffer.getvalue()[:200])
    (tmp_path / "text.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "badfield.npz", images=images, ppdnn_key_fingerprint=np.arange(2))
    cases = [("objects.npz", "array 'meta' holds Python objects"),
             ("truncated.npz", "truncated.npz is not a valid .npz"),
             ("text.npz", "text.npz is not a valid .npz"),
             ("badfield.npz", "field ppdnn_key_fingerprint is damaged")]
    for name, message in cases:
        assert encrypt(key, tmp_path / name, tmp_path / "e.npz") == 1, name
        assert message in one_error_line(capsys), name
    assert not (tmp_path / "e.npz").exists()


# ------------------------------------------------------------ image modes
def mode_image(path, mode):
    rng = np.random.default_rng(0)
    if mode == "RGB;16":
        rows = b"".join(b"\0" + np.full(8 * 3, 60000, ">u2").tobytes() for _ in range(8))
        path.write_bytes(png_bytes(8, 8, 16, 2, rows))
    elif mode == "I;16":
        Image.fromarray(np.full((8, 8), 60000, np.uint16)).save(path)
    elif mode == "F":
        Image.new("F", (8, 8), 0.5).save(path)
    elif mode == "RGBA":
        Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "RGBA").save(path)
    elif mode == "P":
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert("P").save(path)
    else:
        Image.new(mode, (8, 8)).save(path)


@pytest.mark.parametrize("mode, name", [("RGBA", "a.png"), ("L", "a.png"), ("LA", "a.png"),
                                        ("P", "a.png"), ("1", "a.png"), ("CMYK", "a.jpg")])
def test_8_bit_non_rgb_images_need_an_explicit_conversion(tmp_path, key, capsys, mode, name):
    path = tmp_path / name
    mode_image(path, mode)
    assert encrypt(key, path, tmp_path / "e.png") == 1
    line = one_error_line(capsys)
    assert f"{path} has mode {mode}" in line and "--convert-to-rgb" in line
    assert not (tmp_path / "e.png").exists()
    assert encrypt(key, path, tmp_path / "e.png", "--convert-to-rgb") == 0
    assert decrypt(key, tmp_path / "e.png", tmp_path / "d.png") == 0
    with Image.open(path) as original:
        expected = np.asarray(original.convert("RGB"))
    assert (np.asarray(Image.open(tmp_path / "d.png")) == expected).all()


@pytest.mark.parametrize("mode, name, bits", [("RGB;16", "a.png", 16), ("I;16", "a.png", 16),
                                              ("F", "a.tif", 32)])
def test_16_bit_and_float_images_are_always_refused(tmp_path, key, capsys, mode, name, bits):
    path = tmp_path / name
    mode_image(path, mode)
    for extra in ([], ["--convert-to-rgb"]):
        assert encrypt(key, path, tmp_path / "e.png", *extra) == 1
        line = one_error_line(capsys)
        assert f"{path} is a {bits}-bit" in line and "would destroy it" in line
    assert not (tmp_path / "e.png").exists()


@pytest.mark.parametrize("limit", [40, 20])  # 8x8 = 64 pixels: Pillow's warning, then its error
def test_decompression_bombs_are_refused_by_name(tmp_path, key, capsys, monkeypatch, limit):
    write_images(tmp_path / "plain", n=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    assert encrypt(key, tmp_path / "plain", tmp_path / "enc") == 1
    line = one_error_line(capsys)
    assert f"{tmp_path / 'plain' / 'img0.png'} refused as a possible decompression bomb" in line


def test_a_huge_image_is_refused_before_decoding(tmp_path, key, capsys):
    (tmp_path / "huge.png").write_bytes(png_bytes(9000, 9000))  # header only: decoding would fail
    assert encrypt(key, tmp_path / "huge.png", tmp_path / "e.png") == 1
    assert "huge.png is 9000x9000 (WxH) but the key is for 8x8 images" in one_error_line(capsys)


def test_multi_frame_images_are_refused(tmp_path, key, capsys):
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("black", "white")]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    assert encrypt(key, tmp_path / "anim.png", tmp_path / "e.png") == 1
    assert "anim.png has 2 frames" in one_error_line(capsys)


# ------------------------------------------------------------ fingerprints
def test_encrypted_images_carry_the_key_fingerprint_and_decrypted_ones_none(tmp_path, key):
    write_images(tmp_path / "plain", n=1)
    assert encrypt(key, tmp_path / "plain", tmp_path / "enc") == 0
    with Image.open(tmp_path / "enc" / "img0.png") as im:
        assert cli.KeyCheck(ciphers.load(key)).identifies(im.info["key_fingerprint"])
        assert im.info["key_tag"].startswith("hs1$")
    assert decrypt(key, tmp_path / "enc", tmp_path / "dec") == 0
    with Image.open(tmp_path / "dec" / "img0.png") as im:
        assert not set(im.info) & set(cli.MARK_FIELDS)


def test_wrong_key_missing_fingerprint_and_double_encryption_are_refused(tmp_path, key, other_key, capsys):
    write_images(tmp_path / "plain")
    assert encrypt(key, tmp_path / "plain", tmp_path / "enc") == 0
    capsys.readouterr()
    assert decrypt(other_key, tmp_path / "enc", tmp_path / "d1") == 1
    line = one_error_line(capsys)
    assert "img0.png was encrypted with another key" in line and "(and 2 more)" in line
    assert decrypt(key, tmp_path / "plain", tmp_path / "d2") == 1
    assert "not encrypted by ppdnn, or the fingerprint was stripped" in one_error_line(capsys)
    assert encrypt(key, tmp_path / "enc", tmp_path / "e2") == 1
    assert "already carries a ppdnn key fingerprint" in one_error_line(capsys)
    assert not any((tmp_path / d).exists() for d in ("d1", "d2", "e2"))
    # an encrypted .npz too
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    assert encrypt(key, tmp_path / "d.npz", tmp_path / "e.npz") == 0
    assert decrypt(other_key, tmp_path / "e.npz", tmp_path / "r.npz") == 1
    assert "e.npz was encrypted with another key" in one_error_line(capsys)
    assert decrypt(key, tmp_path / "d.npz", tmp_path / "r.npz") == 1
    assert "d.npz carries no ppdnn key fingerprint" in one_error_line(capsys)
    assert encrypt(key, tmp_path / "e.npz", tmp_path / "e2.npz") == 1
    assert "already carries" in one_error_line(capsys)
    assert not (tmp_path / "r.npz").exists() and not (tmp_path / "e2.npz").exists()


def test_force_overrides_a_fingerprint_check_with_a_warning(tmp_path, key, other_key, capsys):
    write_images(tmp_path / "plain", n=1)
    encrypt(key, tmp_path / "plain", tmp_path / "enc")
    capsys.readouterr()
    assert decrypt(other_key, tmp_path / "enc", tmp_path / "dec", "--force") == 0
    assert "warning: " in (err := capsys.readouterr().err) and "encrypted with another key" in err


@pytest.mark.parametrize("args, message", [
    (["--format", "jpeg", "{plain}", "{out}"], "lossy"),
    (["{plain}/img0.png", "{tmp}/e.jpg"], "lossy"),
    (["{plain}/img0.png", "{tmp}/e.webp"], "lossy"),
    (["{plain}/img0.png", "{tmp}/e.bmp"], "cannot carry the key fingerprint"),
    (["{plain}/img0.png", "{tmp}/e.tiff"], "cannot carry the key fingerprint"),
    (["{plain}/img0.png", "{tmp}/e.txt"], "must end in .png"),
])
def test_encrypted_output_is_png_or_npz_only(tmp_path, key, capsys, args, message):
    write_images(tmp_path / "plain")
    paths = {"plain": tmp_path / "plain", "out": tmp_path / "out", "tmp": tmp_path}
    assert encrypt(key, *[a.format(**paths) for a in args]) == 1
    assert message in one_error_line(capsys)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("e.*"))


# ------------------------------------------------------------ inputs and outputs
def test_transform_errors(tmp_path, key, capsys):
    write_images(tmp_path / "small", size=(4, 4))
    cases = [
        (["{tmp}/missing", "{tmp}/o"], "does not exist"),
        (["{tmp}/small", "{tmp}/o"], "key is for 8x8"),
        (["{tmp}/empty", "{tmp}/o"], "no .png"),
        (["{tmp}/notes.txt", "{tmp}/o.png"], "not a folder"),
        (["{tmp}/bad.npz", "{tmp}/o.npz"], "not a valid .npz"),
        (["{tmp}/other.npz", "{tmp}/o.npz"], "no uint8 image array"),
        (["{tmp}/other.npz", "{tmp}/o.png"], "needs an .npz output"),
        (["{tmp}/corrupt.png", "{tmp}/o.png"], "cannot read image"),
        (["{tmp}/small", "{tmp}/o.png"], "OUTPUT must be a folder"),
    ]
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    np.savez(tmp_path / "other.npz", x=np.zeros((2, 4, 4, 3), np.uint8))
    for args, message in cases:
        assert encrypt(key, *[a.format(tmp=tmp_path) for a in args]) == 1, args
        assert message in one_error_line(capsys), args
    assert not list(tmp_path.glob("o")) + list(tmp_path.glob("o.*"))


def test_every_input_is_checked_before_anything_is_written(tmp_path, key, capsys):
    write_images(tmp_path / "plain", n=3)
    Image.new("RGBA", (8, 8)).save(tmp_path / "plain" / "z_alpha.png")
    Image.new("L", (8, 8)).save(tmp_path / "plain" / "z_grey.png")
    assert encrypt(key, tmp_path / "plain", tmp_path / "enc") == 1
    line = one_error_line(capsys)
    assert "z_alpha.png has mode RGBA" in line and "(and 1 more file(s) with problems)" in line
    assert not (tmp_path / "enc").exists()


def test_output_equal_to_input_or_key_is_refused_even_with_force(tmp_path, key, capsys):
    originals = write_images(tmp_path / "plain")
    np.savez(tmp_path / "d.npz", images=originals)
    cases = [(tmp_path / "plain" / "img0.png", tmp_path / "plain" / "img0.png"),
             (tmp_path / "plain", tmp_path / "plain"),
             (tmp_path / "plain", tmp_path / "." / "plain"),
             (tmp_path / "d.npz", tmp_path / "d.npz")]
    for source, target in cases:
        assert encrypt(key, source, target, "--force") == 1
        assert "never replaces its input" in one_error_line(capsys)
    assert (read_images(tmp_path / "plain") == originals).all()
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    key_npz = tmp_path / "key.npz"
    key_npz.write_bytes(key.read_bytes())
    assert encrypt(key_npz, tmp_path / "d.npz", key_npz, "--force") == 1
    assert "is the key" in one_error_line(capsys)
    assert key_npz.read_bytes() == key.read_bytes()


def test_outputs_are_not_overwritten_without_force(tmp_path, key, capsys):
    write_images(tmp_path / "plain")
    args = [tmp_path / "plain", tmp_path / "enc"]
    assert encrypt(key, *args) == 0
    assert encrypt(key, *args) == 1 and "--force" in capsys.readouterr().err
    assert encrypt(key, *args, "--force") == 0
    assert "--force: will replace 3 existing file(s)" in capsys.readouterr().err
    (tmp_path / "enc" / "img0.png").unlink()
    (tmp_path / "enc" / "img0.png").mkdir()  # never replaced, not even with --force
    assert encrypt(key, *args, "--force") == 1
    assert "is a folder; it is never replaced" in one_error_line(capsys)


def test_stem_clash_is_refused(tmp_path, key, capsys):
    write_images(tmp_path / "plain", n=1, suffix=".png")
    write_images(tmp_path / "plain", n=1, suffix=".jpg")
    assert encrypt(key, tmp_path / "plain", tmp_path / "enc") == 1
    assert "share a name stem" in capsys.readouterr().err


def test_an_unwritable_output_is_found_before_any_input_is_read(tmp_path, key, capsys, monkeypatch):
    write_images(tmp_path / "plain")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(files.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(cli, "read_image", lambda *a, **k: pytest.fail("input read first"))
    assert encrypt(key, tmp_path / "plain", tmp_path / "ro" / "enc") == 1
    assert f"cannot write to {tmp_path / 'ro' / 'enc'}: Read-only file system" in one_error_line(capsys)
    assert not (tmp_path / "ro").exists()


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, key, capsys, monkeypatch):
    write_images(tmp_path / "plain", n=4)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("the user's")
    saved = []
    real_save = Image.Image.save

    def disk_full_on_third(self, fp, *args, **kwargs):
        if len(saved) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        saved.append(fp)
        return real_save(self, fp, *args, **kwargs)
    monkeypatch.setattr(Image.Image, "save", disk_full_on_third)
    assert encrypt(key, tmp_path / "plain", tmp_path / "out" / "enc") == 1
    assert one_error_line(capsys).endswith("img2.png: No space left on device")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mine.txt"]  # no enc/, no temp files


def test_write_files_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    (tmp_path / "b").write_bytes(b"someone else's")
    with pytest.raises(FileExistsError, match="nothing was replaced"):
        files.write_files([(tmp_path / "new" / "a", lambda f: f.write(b"1")),
                           (tmp_path / "b", lambda f: f.write(b"2"))])
    assert (tmp_path / "b").read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # a and new/ removed again
    files.write_files([(tmp_path / "b", lambda f: f.write(b"2"))], overwrite=True)
    assert (tmp_path / "b").read_bytes() == b"2"


# ------------------------------------------------------------ reliability, round two
def test_force_never_replaces_a_device_fifo_or_socket(tmp_path, key, capsys):
    import socket
    try:  # a twin of /dev/null: a pre-fix version must not be given the real one to replace
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    write_images(tmp_path / "plain", n=1)
    os.mkfifo(tmp_path / "pipe.json")
    os.mkfifo(tmp_path / "pipe.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.png"))
    sock.close()
    for argv, what in [(["keygen", str(tmp_path / "null"), "--force"], "null is a character device"),
                       (["keygen", str(tmp_path / "pipe.json"), "--force"], "pipe.json is a FIFO"),
                       (["encrypt", "--key", str(key), str(tmp_path / "plain" / "img0.png"),
                         str(tmp_path / "pipe.png"), "--force"], "pipe.png is a FIFO"),
                       (["encrypt", "--key", str(key), str(tmp_path / "plain" / "img0.png"),
                         str(tmp_path / "sock.png"), "--force"], "sock.png is a socket")]:
        assert main(argv) == 1
        assert what in one_error_line(capsys)
    assert stat.S_ISCHR(os.lstat(tmp_path / "null").st_mode)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe.png").st_mode)
    assert stat.S_ISSOCK(os.lstat(tmp_path / "sock.png").st_mode)


def test_fifo_inputs_are_refused_without_blocking(tmp_path, key, capsys):
    import signal

    def alarm(signum, frame):
        raise TimeoutError("blocked on a FIFO")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(10)
    try:
        write_images(tmp_path / "plain", n=2)
        os.mkfifo(tmp_path / "plain" / "img9.png")  # in a folder: refused by name, not skipped
        os.mkfifo(tmp_path / "k.json")
        os.mkfifo(tmp_path / "in.npz")
        os.mkfifo(tmp_path / "in.png")
        cases = [(lambda: encrypt(tmp_path / "k.json", tmp_path / "plain", tmp_path / "o1"), "k.json is a FIFO"),
                 (lambda: encrypt(key, tmp_path / "plain", tmp_path / "o2"), "img9.png is a FIFO"),
                 (lambda: encrypt(key, tmp_path / "in.npz", tmp_path / "o3.npz"), "in.npz is a FIFO"),
                 (lambda: decrypt(key, tmp_path / "in.png", tmp_path / "o4.png"), "in.png is a FIFO")]
        for run, needle in cases:
            assert run() == 1 and needle in one_error_line(capsys)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3.npz", "o4.png"))


def test_a_seeded_key_warns_that_it_is_only_as_secret_as_its_seed(tmp_path, capsys):
    assert main(["keygen", str(tmp_path / "k.json"), "--seed", "4242"]) == 0
    assert "only as secret as its seed" in capsys.readouterr().err
    assert main(["keygen", str(tmp_path / "k2.json")]) == 0
    assert "seed" not in capsys.readouterr().err
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["keygen"].format_help()
    assert "only as secret as its seed" in " ".join(help_text.split())


def test_the_fingerprint_is_salted_so_a_seed_scan_is_slow(tmp_path, capsys):
    key = tmp_path / "k.json"
    assert main(["keygen", str(key), "--size", "8", "8", "--seed", "4242"]) == 0
    write_images(tmp_path / "plain", n=1)
    assert encrypt(key, tmp_path / "plain", tmp_path / "enc") == 0
    with Image.open(tmp_path / "enc" / "img0.png") as im:
        fp = im.info["key_fingerprint"]
    assert fp != ciphers.load(key).fingerprint  # not the unsalted hash a scan can test in nanoseconds
    start = time.perf_counter()
    guesses = [cli.KeyCheck(ciphers.make("pixel", (8, 8), seed=s)).identifies(fp) for s in (4240, 4241, 4242)]
    assert guesses == [False, False, True]
    assert (time.perf_counter() - start) / 3 > 0.03


def forge(source: Path, target: Path, image: np.ndarray) -> None:
    """``image`` saved as PNG with the text chunks (fingerprint, tag) of ``source``."""
    info = PngImagePlugin.PngInfo()
    with Image.open(source) as im:
        for name in cli.MARK_FIELDS:
            if name in im.info:
                info.add_text(name, im.info[name])
    Image.fromarray(image).save(target, pnginfo=info)


def test_plaintext_with_a_copied_fingerprint_or_tampered_pixels_is_not_decrypted(tmp_path, key, capsys):
    plain = write_images(tmp_path / "plain", n=1)
    assert encrypt(key, tmp_path / "plain", tmp_path / "enc") == 0
    enc = tmp_path / "enc" / "img0.png"
    forge(enc, tmp_path / "forged.png", plain[0])  # plaintext labelled as ciphertext
    tampered = np.asarray(Image.open(enc)).copy()
    tampered[0, 0, 0] ^= 1
    forge(enc, tmp_path / "tampered.png", tampered)
    capsys.readouterr()
    for name in ("forged.png", "tampered.png"):
        assert decrypt(key, tmp_path / name, tmp_path / f"out-{name}") == 1
        assert "authentication tag does not match" in one_error_line(capsys)
        assert not (tmp_path / f"out-{name}").exists()
    info = PngImagePlugin.PngInfo()  # a fingerprint without a tag (as older versions wrote)
    info.add_text("key_fingerprint", Image.open(enc).info["key_fingerprint"])
    Image.fromarray(plain[0]).save(tmp_path / "untagged.png", pnginfo=info)
    assert decrypt(key, tmp_path / "untagged.png", tmp_path / "out.png") == 1
    assert "no authentication tag" in one_error_line(capsys)
    assert decrypt(key, enc, tmp_path / "good.png") == 0
    assert (np.asarray(Image.open(tmp_path / "good.png")) == plain[0]).all()


def test_a_pipeline_style_npz_decrypts_only_with_force_and_loses_its_marks(tmp_path, key, capsys):
    cipher = ciphers.load(key)
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "train.npz", images=cipher.encrypt(images), labels=np.arange(3),
             key_fingerprint=np.array(cli.KeyCheck(cipher).legacy_fingerprint))
    assert decrypt(key, tmp_path / "train.npz", tmp_path / "plain.npz") == 1
    assert "no authentication tag" in one_error_line(capsys)
    assert decrypt(key, tmp_path / "train.npz", tmp_path / "plain.npz", "--force") == 0
    with np.load(tmp_path / "plain.npz") as out:
        assert sorted(out.files) == ["images", "labels"]  # plaintext never labelled as ciphertext
        assert (out["images"] == images).all()
    # and a CLI-encrypted .npz whose pixels were altered is caught
    np.savez(tmp_path / "d.npz", images=images)
    assert encrypt(key, tmp_path / "d.npz", tmp_path / "e.npz") == 0
    with np.load(tmp_path / "e.npz") as enc:
        altered = dict(enc)
    altered["images"] = altered["images"].copy()
    altered["images"][0, 0, 0, 0] ^= 1
    np.savez(tmp_path / "altered.npz", **altered)
    capsys.readouterr()
    assert decrypt(key, tmp_path / "altered.npz", tmp_path / "r.npz") == 1
    assert "authentication tag does not match" in one_error_line(capsys)


KILLED_DECRYPT = """
import sys, time
from PIL import Image
from ppdnn import cli
real_save = Image.Image.save
count = []
def slow_save(self, fp, *args, **kwargs):
    real_save(self, fp, *args, **kwargs)
    count.append(1)
    if len(count) == 2:
        print("writing", flush=True)
        time.sleep(60)
Image.Image.save = slow_save
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_an_interrupted_decrypt_leaves_no_readable_plaintext(tmp_path, key, how):
    write_images(tmp_path / "plain", n=4)
    assert encrypt(key, tmp_path / "plain", tmp_path / "enc") == 0
    out = tmp_path / "dec"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DECRYPT, "decrypt", "--key", str(key),
                             str(tmp_path / "enc"), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    leftovers = [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert leftovers and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in leftovers)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=30)
    if how == signal.SIGTERM:
        assert proc.returncode == 143 and "terminated by SIGTERM" in err
        assert list(out.iterdir()) == []  # cleaned up at once
    else:
        assert proc.returncode == -signal.SIGKILL and list(out.iterdir())  # nothing could run
    assert decrypt(key, tmp_path / "enc", out) == 0  # the next run on that output cleans up
    assert sorted(p.name for p in out.iterdir()) == [f"img{i}.png" for i in range(4)]


def test_long_and_non_utf8_output_names(tmp_path, key, capsys):
    write_images(tmp_path / "plain", n=1)
    long_name = "e" * 246 + ".png"  # 250 characters
    assert encrypt(key, tmp_path / "plain" / "img0.png", tmp_path / long_name) == 0
    odd = os.fsdecode(b"caf\xe9.png")
    capsys.readouterr()
    assert encrypt(key, tmp_path / "plain" / "img0.png", tmp_path / odd) == 0
    out = capsys.readouterr().out
    assert "caf\\xe9.png" in out and os.path.exists(os.fsencode(tmp_path) + b"/caf\xe9.png")
    assert decrypt(key, tmp_path / odd, tmp_path / "back.png") == 0

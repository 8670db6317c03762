"""Tests of the `ppdnn keygen|encrypt|decrypt` command line."""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ppdnn import ciphers
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


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "key.json"
    assert main(["keygen", str(path), "--scheme", "pixel", "--shuffle", "--size", "8", "8",
                 "--seed", "3"]) == 0
    return path


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
    assert "log10 key space 107.6" in capsys.readouterr().out
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


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_folder_round_trip(tmp_path, key, suffix):
    write_images(tmp_path / "plain", suffix=suffix)
    originals = np.stack([np.asarray(Image.open(p).convert("RGB"))
                          for p in sorted((tmp_path / "plain").iterdir())])
    assert main(["encrypt", "--key", str(key), str(tmp_path / "plain"), str(tmp_path / "enc")]) == 0
    encrypted = read_images(tmp_path / "enc")
    assert (encrypted == ciphers.load(key).encrypt(originals)).all()
    assert main(["decrypt", "--key", str(key), str(tmp_path / "enc"), str(tmp_path / "dec")]) == 0
    assert (read_images(tmp_path / "dec") == originals).all()


def test_single_image_round_trip(tmp_path, key):
    image = write_images(tmp_path, n=1)[0]
    assert main(["encrypt", "--key", str(key), str(tmp_path / "img0.png"), str(tmp_path / "e.png")]) == 0
    assert main(["decrypt", "--key", str(key), str(tmp_path / "e.png"), str(tmp_path / "d.png")]) == 0
    assert (np.asarray(Image.open(tmp_path / "d.png")) == image).all()


def test_npz_round_trip_keeps_other_arrays(tmp_path, key):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(5)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    assert main(["encrypt", "--key", str(key), str(tmp_path / "d.npz"), str(tmp_path / "e.npz")]) == 0
    with np.load(tmp_path / "e.npz") as enc:
        assert (enc["images"] == ciphers.load(key).encrypt(images)).all()
        assert (enc["labels"] == labels).all()
    assert main(["decrypt", "--key", str(key), str(tmp_path / "e.npz"), str(tmp_path / "r.npz")]) == 0
    with np.load(tmp_path / "r.npz") as restored:
        assert (restored["images"] == images).all()


@pytest.mark.parametrize("args,message", [
    (["--format", "jpeg", "{plain}", "{out}"], "lossy"),
    (["{plain}/img0.png", "{tmp}/e.jpg"], "lossy"),
    (["{plain}/img0.png", "{tmp}/e.webp"], "lossy"),
    (["{plain}/img0.png", "{tmp}/e.gif"], "must end in"),
])
def test_encrypt_refuses_lossy_outputs(tmp_path, key, capsys, args, message):
    write_images(tmp_path / "plain")
    paths = {"plain": tmp_path / "plain", "out": tmp_path / "out", "tmp": tmp_path}
    assert main(["encrypt", "--key", str(key)] + [a.format(**paths) for a in args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("e.*"))


def test_decrypt_may_write_jpeg(tmp_path, key):
    write_images(tmp_path / "plain")
    main(["encrypt", "--key", str(key), str(tmp_path / "plain"), str(tmp_path / "enc")])
    assert main(["decrypt", "--key", str(key), "--format", "jpeg", str(tmp_path / "enc"),
                 str(tmp_path / "dec")]) == 0
    assert len(list((tmp_path / "dec").glob("*.jpg"))) == 3


def test_transform_errors(tmp_path, key, capsys):
    write_images(tmp_path / "small", size=(4, 4))
    cases = [
        (["{tmp}/missing", "{tmp}/o"], "does not exist"),
        (["{tmp}/small", "{tmp}/o"], "key is for 8x8"),
        (["{tmp}/empty", "{tmp}/o"], "no .png"),
        (["{tmp}/notes.txt", "{tmp}/o.png"], "not a folder"),
        (["{tmp}/bad.npz", "{tmp}/o.npz"], "cannot read"),
        (["{tmp}/other.npz", "{tmp}/o.npz"], "no uint8 array"),
        (["{tmp}/other.npz", "{tmp}/o.png"], "needs an .npz output"),
    ]
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "other.npz", x=np.zeros((2, 4, 4, 3), np.uint8))
    for args, message in cases:
        assert main(["encrypt", "--key", str(key)] + [a.format(tmp=tmp_path) for a in args]) == 1, args
        assert message in capsys.readouterr().err, args
    assert not list(tmp_path.glob("o")) + list(tmp_path.glob("o.*"))


def test_wrong_or_damaged_key(tmp_path, capsys):
    write_images(tmp_path / "plain")
    (tmp_path / "k.json").write_text("{broken")
    assert main(["encrypt", "--key", str(tmp_path / "k.json"), str(tmp_path / "plain"),
                 str(tmp_path / "o")]) == 1
    assert "damaged JSON" in capsys.readouterr().err
    assert main(["encrypt", "--key", str(tmp_path / "none.json"), str(tmp_path / "plain"),
                 str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_outputs_are_not_overwritten_without_force(tmp_path, key, capsys):
    write_images(tmp_path / "plain")
    args = ["encrypt", "--key", str(key), str(tmp_path / "plain"), str(tmp_path / "enc")]
    assert main(args) == 0
    assert main(args) == 1 and "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_stem_clash_is_refused(tmp_path, key, capsys):
    write_images(tmp_path / "plain", n=1, suffix=".png")
    write_images(tmp_path / "plain", n=1, suffix=".jpg")
    assert main(["encrypt", "--key", str(key), str(tmp_path / "plain"), str(tmp_path / "enc")]) == 1
    assert "share a name stem" in capsys.readouterr().err

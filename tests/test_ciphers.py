"""Tests of ppdnn.ciphers: one shared property checker run on every registered configuration
and on a toy scheme defined in this file; then each scheme's exactness, keys, key files,
errors, key spaces and the augmentation property."""
import base64
import functools
import hashlib
import json
import math
import os
import pkgutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ppdnn import ciphers, cli, files
from shipped import ENTRIES
from toy_scheme import define_toy_scheme
from ppdnn.ciphers import PERMUTATIONS, EtcCipher, PixelCipher, TanakaCipher, engine, keyfile

REPO = Path(__file__).resolve().parents[1]


def random_images(shape=(32, 32), n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape, 3), dtype=np.uint8)


def shift(a, dy, dx):
    """Shift the first two axes by (dy, dx), filling with zeros (a padded random crop)."""
    out = np.zeros_like(a)
    h, w = a.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        a[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def untouched(shape, dy, dx):
    """Pixels of a shifted image that come from the image, not from the padding."""
    return shift(np.ones(shape, dtype=bool), dy, dx)


@pytest.fixture(scope="module")
def photo():
    from ppdnn.figures import sample_photo
    return sample_photo(64)


# ---------------------------------------------------------------- a toy scheme, in one file
@pytest.fixture
def toy_scheme():
    """The toy scheme, registered for one test and removed afterwards."""
    assert "toy" not in ciphers.schemes()
    toy = define_toy_scheme()
    yield toy
    ciphers.unregister("toy")
    assert "toy" not in ciphers.schemes()


@pytest.fixture(params=list(ENTRIES) + ["toy"])
def configuration(request) -> ciphers.Configuration:
    """Every registered configuration, then the toy scheme's."""
    if request.param == "toy":
        request.getfixturevalue("toy_scheme")
    return ciphers.configuration(request.param, None if request.param == "toy" else ENTRIES)


# ---------------------------------------------------------------- the shared property checker
def check_configuration(config: ciphers.Configuration, tmp_path, photo) -> None:
    """Every property a scheme's configuration must have: round trips (numpy, torch, single
    images, other sizes, a real photograph), the torch-only path used on GPUs, determinism,
    the key file round trip and clear errors for images of the wrong size."""
    cls = config.cipher_class

    def make(shape=(32, 32), seed=0):
        return ciphers.make(config.scheme, shape, seed=seed, **config.options)

    cipher = make()
    assert cipher.options == config.options and cipher.scheme == config.scheme

    # round trips, numpy and torch (a non-contiguous view, as in training)
    x = random_images(n=7)
    y = cipher.encrypt(x)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert (cipher.decrypt(y) == x).all()
    assert (cipher.encrypt(x[0]) == y[0]).all()
    if cipher.key_space_log10 > 0:
        assert (y != x).mean() > 0.45
    t = torch.from_numpy(x).permute(0, 3, 1, 2)
    ty = cipher.encrypt(t)
    assert ty.dtype == torch.uint8 and ty.shape == t.shape
    assert (ty.permute(0, 2, 3, 1).numpy() == y).all()
    assert torch.equal(cipher.decrypt(ty), t)
    assert cipher.encrypt(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 32, 32, 3)
    for shape in ((8, 12), (12, 8)) if cls.block_aligned else ((5, 7), (8, 12)):
        other = make(shape, seed=4)
        xs = random_images(shape, n=3)
        assert (other.decrypt(other.encrypt(xs)) == xs).all()
    big = make(photo.shape[:2], seed=5)
    assert (big.decrypt(big.encrypt(photo)) == photo).all()

    # the torch-only path (taken for CUDA tensors), checked on CPU tensors
    flat = t.contiguous().reshape(len(x), -1)
    for direction, expected in (("encrypt", y), ("decrypt", cipher.decrypt(x))):
        out = engine.apply_torch(cipher.table(direction, channels_first=True), flat, {})
        assert (out.reshape(t.shape).permute(0, 2, 3, 1).numpy() == expected).all()
        assert out.data_ptr() != flat.data_ptr()  # never aliases the input

    # determinism: the same seed gives the same key, another seed (or OS entropy) another
    again = make()
    assert again.fingerprint == cipher.fingerprint and (again.encrypt(x) == y).all()
    if cipher.key_space_log10 > 0:
        assert (make(seed=1).encrypt(x) != y).any()
        assert make(seed=None).fingerprint != make(seed=None).fingerprint

    # the key file round trip
    path = cipher.save(tmp_path / config.name / "key.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(path.parent) == ["key.json"]
    body = json.loads(path.read_text())
    assert body["scheme"] == config.scheme and body["shape"] == [32, 32] and "provenance" not in body
    loaded = ciphers.load(path, scheme=config.scheme, shape=(32, 32))
    assert type(loaded) is cls and loaded.options == config.options
    assert loaded.fingerprint == cipher.fingerprint and (loaded.encrypt(x) == y).all()
    assert loaded.key_space_log10 == cipher.key_space_log10

    # wrong shapes: clear one-line errors
    with pytest.raises(ValueError, match="for this key"):
        cipher.encrypt(random_images((16, 16), n=1))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        cipher.encrypt(torch.from_numpy(x))  # channels last given as a tensor
    with pytest.raises(ValueError, match=r"\(32, 32\) images, not \(64, 64\)"):
        ciphers.load(path, shape=(64, 64))
    if cls.block_aligned:
        with pytest.raises(ValueError, match="divisible by 4"):
            make((30, 30))


def test_every_configuration_and_a_toy_scheme_have_every_property(configuration, tmp_path, photo):
    check_configuration(configuration, tmp_path, photo)


# ---------------------------------------------------------------- the registry
def test_configurations_are_data_in_params_yaml_in_table_order():
    found = {c.name: (c.scheme, c.shuffle) for c in ciphers.configurations(ENTRIES)}
    assert list(found) == ["plain", "pixel", "pixel_shuffle", "tanaka", "etc", "chaotic_rc4"]
    assert found["pixel_shuffle"] == ("pixel", True) and found["pixel"] == ("pixel", False)
    assert ciphers.schemes() == ("plain", "pixel", "tanaka", "etc", "chaotic_rc4")
    assert [c.label for c in ciphers.make_all(key_seed=0, entries=ENTRIES)] == [
        "plain", "pixel (step 2)", "pixel (step 2+3)", "tanaka", "etc", "chaotic_rc4"]
    with pytest.raises(ValueError, match="needs its params.yaml entry"):
        ciphers.configuration("pixel_shuffle")  # a configuration with options is data, not code
    with pytest.raises(ValueError, match="only applies to 'pixel'"):
        ciphers.configuration("x", {"x": {"scheme": "tanaka", "shuffle": True}})


FIND_ONE_SCHEME = """
import sys
from ppdnn import ciphers
cls = ciphers.scheme_class(sys.argv[1])
print(cls.__module__, sorted(m for m in sys.modules if m.startswith("ppdnn.schemes.")))
"""


@pytest.mark.parametrize("scheme", ["pixel", "tanaka", "etc"])
def test_finding_a_scheme_imports_its_module_only(scheme):
    import subprocess
    out = subprocess.run([sys.executable, "-c", FIND_ONE_SCHEME, scheme], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split(" ", 1)
    assert out[0] == f"ppdnn.schemes.{scheme}"
    assert out[1].strip() == repr([f"ppdnn.schemes.{scheme}"])


def test_every_scheme_lives_in_a_file_named_after_it():
    for scheme in ciphers.schemes():
        assert ciphers.scheme_class(scheme).__module__ == f"ppdnn.schemes.{scheme}"
    assert set(ciphers.scheme_modules()) == set(ciphers.schemes())


# sha256 of today's key files (key_seed 0), written by the code before configurations
# became data and schemes moved to ppdnn/schemes/: keys must never change silently
KEY_FILE_SHA256 = {
    "plain": "15eacb97019fa7bb12cc204c2b12e3185208956b1dd88cc3278703ca3972c0f2",
    "pixel": "69eb857b4c613a499cf5add6f927d327c7d35df271c5c6812e5ab56f7eef88da",
    "pixel_shuffle": "eb0544f1802dc872f1333847cf2e8c50a241e4fd67d64652a16cd41ba5f1ed9a",
    "tanaka": "c278a717d6f9b2a7db31ade16f33ae92a8e108448fdd61c8cab126810a2a5287",
    "etc": "5205a1ae0e9c474ed77d3e08471c87d72042568065dd3f8c1bb279e0bb9fb514",
    "chaotic_rc4": "349ae82fbd68bbe82e9837fa40ba8d086c020edffa3967bf9b9fc9c166790f12",
}


def test_key_files_are_byte_identical_to_those_before_the_refactor(tmp_path):
    for name, digest in KEY_FILE_SHA256.items():
        path = ciphers.make_for_configuration(name, 0, entries=ENTRIES).save(tmp_path / f"{name}.json")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name


def test_a_new_scheme_appears_everywhere_and_leaves_no_trace(toy_scheme):
    assert ciphers.schemes()[-1] == "toy"
    assert ciphers.configurations()[-1] == ciphers.Configuration("toy", "toy", {})
    assert ciphers.make_all(key_seed=0)[-1].scheme == "toy"
    rows = [r for r in ciphers.key_space_rows([(32, 32), (5, 5)]) if r["encryption"] == "toy"]
    assert [r["log10_key_space"] for r in rows] == [
        round(1024 * (math.log10(3) + 3 * math.log10(256)), 2),
        round(25 * (math.log10(3) + 3 * math.log10(256)), 2)]
    assert rows[0]["formula"] == "3^n * 256^(3n)"
    with pytest.raises(ValueError, match="already registered"):
        type("OtherToy", (ciphers.Cipher,), {"scheme": "toy", "__module__": "elsewhere"})


def test_cli_round_trip_with_a_scheme_defined_in_a_test(toy_scheme, tmp_path, capsys):
    key, src, enc, dec = (tmp_path / n for n in ("key.json", "in.npz", "enc.npz", "dec.npz"))
    images = random_images(n=4)
    np.savez(src, images=images)
    assert cli.main(["keygen", str(key), "--scheme", "toy"]) == 0, capsys.readouterr().err
    assert ciphers.load(key).scheme == "toy"
    assert cli.main(["encrypt", "--key", str(key), str(src), str(enc)]) == 0, capsys.readouterr().err
    assert cli.main(["decrypt", "--key", str(key), str(enc), str(dec)]) == 0, capsys.readouterr().err
    with np.load(enc) as encrypted, np.load(dec) as decrypted:
        assert (encrypted["images"] == ciphers.load(key).encrypt(images)).all()
        assert (decrypted["images"] == images).all()


def test_unregister_unknown_scheme():
    with pytest.raises(ValueError, match="not registered"):
        ciphers.unregister("nope")


# ---------------------------------------------------------------- independent keys per configuration
def test_each_configuration_gets_its_own_key_from_one_key_seed(tmp_path):
    step2 = ciphers.make_for_configuration("pixel", key_seed=0)
    step23 = ciphers.make_for_configuration("pixel_shuffle", key_seed=0, entries=ENTRIES)
    # with one seed for both (the old way), steps 2 and 2+3 shared their flip mask
    assert (ciphers.make("pixel", seed=0).flip == ciphers.make("pixel", shuffle=True, seed=0).flip).all()
    assert 0.4 < (step2.flip == step23.flip).mean() < 0.6  # independent bits agree half the time
    assert step23.configuration == "pixel_shuffle"
    # deterministic, and documented: the first 8 bytes of sha256("<name>:<key_seed>")
    assert ciphers.make_for_configuration("pixel", 0).fingerprint == step2.fingerprint
    assert ciphers.make_for_configuration("pixel", 1).fingerprint != step2.fingerprint
    expected = int.from_bytes(hashlib.sha256(b"pixel_shuffle:0").digest()[:8], "big")
    assert ciphers.derive_seed("pixel_shuffle", 0) == expected
    assert step23.fingerprint == ciphers.make("pixel", shuffle=True, seed=expected).fingerprint
    # the derivation is written into the key file, under its checksum
    path = step23.save(tmp_path / "k.json")
    provenance = ciphers.load(path).provenance
    assert provenance["configuration"] == "pixel_shuffle" and provenance["key_seed"] == 0
    assert provenance["derived_seed"] == expected
    _edit(path, lambda b: b["provenance"].update(key_seed=1))
    with pytest.raises(ValueError, match="checksum"):
        ciphers.load(path)
    with pytest.raises(ValueError, match="unknown cipher configuration"):
        ciphers.make_for_configuration("pixel_step3", 0, entries=ENTRIES)
    with pytest.raises(ValueError, match="key_seed"):
        ciphers.derive_seed("pixel", None)


def test_keys_without_provenance_keep_their_bytes_and_load(tmp_path):
    """Key files written before provenance existed: no field, no change in bytes."""
    cipher = ciphers.make("tanaka", seed=3)
    path = cipher.save(tmp_path / "k.json")
    body = json.loads(path.read_text())
    assert list(body) == ["format", "version", "scheme", "shape", "key", "sha256"]
    assert ciphers.load(path).provenance is None
    explicit = cipher.save(tmp_path / "p.json", provenance={"note": "test"})
    assert ciphers.load(explicit).provenance == {"note": "test"}
    assert ciphers.load(explicit).fingerprint == cipher.fingerprint  # not part of the key


# ---------------------------------------------------------------- Table 1
def test_table1_exact_mapping_and_true_permutations():
    letters = {0: "RGB", 1: "RBG", 2: "GRB", 3: "GBR", 4: "BRG", 5: "BGR"}
    assert PERMUTATIONS.shape == (6, 3)
    for code, word in letters.items():
        assert ["RGB"[c] for c in PERMUTATIONS[code]] == list(word)
        assert sorted(PERMUTATIONS[code]) == [0, 1, 2]
    assert len({tuple(p) for p in PERMUTATIONS}) == 6


@pytest.mark.parametrize("code", range(6))
def test_step3_moves_channels_as_table1_says(code):
    pixel = np.array([10, 20, 30], dtype=np.uint8)
    image = np.tile(pixel, (2, 3, 1))
    cipher = PixelCipher(np.zeros((2, 3, 3), np.uint8), np.full((2, 3), code, np.uint8))
    out = cipher.encrypt(image)
    assert (out == pixel[PERMUTATIONS[code]]).all()
    assert sorted(out[0, 0]) == [10, 20, 30]  # a permutation, never a duplicated channel


# ---------------------------------------------------------------- step 2 statistics
def test_flip_bits_are_fair_and_independent():
    cipher = ciphers.make("pixel", shape=(256, 256), shuffle=True, seed=3)
    bits = cipher.flip.astype(float)
    tolerance = 6 * math.sqrt(0.25 / bits.size)  # six standard deviations
    assert abs(bits.mean() - 0.5) < tolerance
    for c in range(3):
        assert abs(bits[..., c].mean() - 0.5) < 3 * tolerance
    assert abs((cipher.flip[..., 0] == cipher.flip[..., 1]).mean() - 0.5) < 3 * tolerance
    counts = np.bincount(cipher.perm.ravel(), minlength=6) / cipher.perm.size
    assert np.abs(counts - 1 / 6).max() < 6 * math.sqrt((1 / 6) * (5 / 6) / cipher.perm.size)


def test_step2_is_xor_255_exactly_where_the_bit_is_set():
    cipher = ciphers.make("pixel", seed=1)
    x = random_images()
    y = cipher.encrypt(x)
    flipped = cipher.flip.astype(bool)
    assert (y[:, flipped] == 255 - x[:, flipped]).all()
    assert (y[:, ~flipped] == x[:, ~flipped]).all()


def test_step2_then_step3():
    cipher = ciphers.make("pixel", shape=(4, 5), shuffle=True, seed=2)
    x = random_images((4, 5), n=1)[0]
    after_step2 = np.where(cipher.flip.astype(bool), x ^ 255, x)
    expected = np.take_along_axis(after_step2, PERMUTATIONS[cipher.perm], axis=2)
    assert (cipher.encrypt(x) == expected).all()


# ---------------------------------------------------------------- round trips on real data and GPUs
def test_round_trip_real_cifar_images(real_cifar):
    images = real_cifar["test_images"][::500]
    assert images.shape == (20, 32, 32, 3)
    for cipher in ciphers.make_all(key_seed=9, entries=ENTRIES):
        assert (cipher.decrypt(cipher.encrypt(images)) == images).all(), cipher


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", list(ENTRIES))
def test_torch_on_gpu_matches_numpy(name):
    cipher = ciphers.make_for_configuration(name, key_seed=0, entries=ENTRIES)
    x = random_images(n=5)
    t = torch.from_numpy(x).permute(0, 3, 1, 2).cuda()
    ty = cipher.encrypt(t)
    assert ty.device == t.device
    assert (ty.permute(0, 2, 3, 1).cpu().numpy() == cipher.encrypt(x)).all()
    assert torch.equal(cipher.decrypt(ty), t)


# ---------------------------------------------------------------- Tanaka, EtC, chaotic/RC4 exactness
def official_tanaka(x, key):
    """The steps of mastnk/ICCE-TW2018 BlockScramble.doScramble, written out plainly."""
    n, h, w, _ = x.shape
    blocks = x.reshape(n, h // 4, 4, w // 4, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 4, w // 4, 48)
    v = np.concatenate([blocks & 0xF, blocks >> 4], axis=3)
    rev = key > 48
    v[..., rev] = 15 - v[..., rev]
    v = v[..., key]
    v[..., rev] = 15 - v[..., rev]
    out = (v[..., 48:] << 4) + v[..., :48]
    return out.reshape(n, h // 4, w // 4, 4, 4, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, h, w, 3)


def test_tanaka_matches_the_official_algorithm():
    cipher = ciphers.make("tanaka", shape=(16, 8), seed=11)
    x = random_images((16, 8), n=4)
    assert (cipher.encrypt(x) == official_tanaka(x, cipher.key)).all()
    assert cipher.reversed_positions.sum() == 47  # key > 48, as in the official code


def test_etc_block_operations():
    block = random_images((4, 4), n=1)[0]
    one = dict(order=[[0]], rotation=[[0]], inversion=[[0]], negpos=[[0]], colour=[[0]])
    assert (EtcCipher(**one).encrypt(block) == block).all()
    assert (EtcCipher(**{**one, "rotation": [[1]]}).encrypt(block) == np.rot90(block)).all()
    assert (EtcCipher(**{**one, "inversion": [[1]]}).encrypt(block) == block[:, ::-1]).all()
    assert (EtcCipher(**{**one, "inversion": [[2]]}).encrypt(block) == block[::-1]).all()
    assert (EtcCipher(**{**one, "negpos": [[1]]}).encrypt(block) == 255 - block).all()
    assert (EtcCipher(**{**one, "colour": [[4]]}).encrypt(block) == block[..., [2, 0, 1]]).all()
    # block positions: output block 0 (top-left) takes input block 3 (bottom-right)
    x = random_images((8, 8), n=1)[0]
    moved = EtcCipher(order=[[3, 1], [2, 0]], rotation=np.zeros((2, 2), int),
                      inversion=np.zeros((2, 2), int), negpos=np.zeros((2, 2), int),
                      colour=np.zeros((2, 2), int)).encrypt(x)
    assert (moved[:4, :4] == x[4:, 4:]).all() and (moved[4:, 4:] == x[:4, :4]).all()
    assert (moved[:4, 4:] == x[:4, 4:]).all()


def test_rc4_test_vectors():
    assert ciphers.rc4_keystream(b"Key", 10).hex() == "eb9f7781b734ca72a719"
    assert ciphers.rc4_keystream(b"Wiki", 6).hex() == "6044db6d41b7"
    assert ciphers.rc4_keystream(b"Secret", 8).hex() == "04d46b053ca87b59"


def test_chaotic_rc4_scrambles_whole_pixels_then_xors_the_keystream():
    cipher = ciphers.make("chaotic_rc4", shape=(8, 8), seed=2)
    x = random_images((8, 8), n=1)[0]
    keystream = cipher.encrypt(np.zeros_like(x))
    expected = np.frombuffer(ciphers.rc4_keystream(cipher.rc4_key, x.size), np.uint8)
    assert (keystream.ravel() == expected).all()
    scrambled = (cipher.encrypt(x) ^ keystream).reshape(-1, 3)
    assert not (scrambled == x.reshape(-1, 3)).all()
    assert sorted(map(tuple, scrambled)) == sorted(map(tuple, x.reshape(-1, 3)))


# ---------------------------------------------------------------- key files
def test_save_refuses_to_replace_a_key_unless_asked(tmp_path):
    path = ciphers.make("pixel", seed=1).save(tmp_path / "k.json")
    with pytest.raises(FileExistsError, match="overwrite"):
        ciphers.make("pixel", seed=2).save(path)
    ciphers.make("pixel", seed=2).save(path, overwrite=True)
    assert (ciphers.load(path).flip == ciphers.make("pixel", seed=2).flip).all()


@pytest.mark.parametrize("overwrite,last_step", [(False, "link"), (True, "replace")])
def test_failed_save_leaves_no_file(tmp_path, monkeypatch, overwrite, last_step):
    """A save that fails at its last step (putting the finished file in place) leaves
    nothing behind: no key, no temporary file."""
    def broken(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(files.os, last_step, broken)
    with pytest.raises(OSError, match="disk full"):
        ciphers.make("tanaka", seed=1).save(tmp_path / "k.json", overwrite=overwrite)
    assert os.listdir(tmp_path) == []


def test_load_wrong_scheme_or_size(tmp_path):
    path = ciphers.make("pixel", seed=1).save(tmp_path / "k.json")
    with pytest.raises(ValueError, match="'pixel' key, not a 'tanaka' key"):
        ciphers.load(path, scheme="tanaka")
    with pytest.raises(ValueError, match=r"\(32, 32\) images, not \(64, 64\)"):
        ciphers.load(path, shape=(64, 64))


def _flip_one_bit(text):
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _edit(path, change):
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body))


@pytest.mark.parametrize("damage,message", [
    (lambda p: p.write_text(p.read_text()[:100]), "damaged JSON"),
    (lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "damaged JSON"),
    (lambda p: p.write_text("[1, 2]"), "format"),
    (lambda p: _edit(p, lambda b: b.update(version=99)), "version 99"),
    (lambda p: _edit(p, lambda b: b["key"]["flip"].update(base64=_flip_one_bit(b["key"]["flip"]["base64"]))),
     "checksum"),
    (lambda p: _edit(p, lambda b: b.update(shape=[16, 16])), "checksum"),
])
def test_load_damaged_files(tmp_path, damage, message):
    path = ciphers.make("pixel", shuffle=True, seed=1).save(tmp_path / "k.json")
    damage(path)
    with pytest.raises(ValueError, match=message):
        ciphers.load(path)


def test_load_damaged_key_material_with_valid_checksum(tmp_path):
    path = ciphers.make("tanaka", seed=1).save(tmp_path / "k.json")
    body = json.loads(path.read_text())
    key = np.zeros(96, np.int64)  # not a permutation
    body["key"]["key"]["base64"] = base64.b64encode(key.tobytes()).decode()
    del body["sha256"]
    body["sha256"] = keyfile.checksum(body)
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match="damaged.*permutation"):
        ciphers.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ciphers.load(tmp_path / "nope.json")


# ---------------------------------------------------------------- input errors
def test_image_errors():
    cipher = ciphers.make("pixel", seed=0)
    with pytest.raises(TypeError, match="uint8"):
        cipher.encrypt(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(32, 32, 3\)"):
        cipher.encrypt(np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        cipher.decrypt(np.zeros((2, 3, 32, 32), np.uint8))  # channels first in numpy
    with pytest.raises(TypeError, match="torch.uint8"):
        cipher.encrypt(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        cipher.encrypt(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        cipher.encrypt([[1, 2, 3]])


@pytest.mark.parametrize("call,error,message", [
    (lambda: ciphers.make("aes"), ValueError, "unknown scheme"),
    (lambda: ciphers.make("tanaka", shuffle=True), ValueError, "only applies to 'pixel'"),
    (lambda: ciphers.make("etc", shape=(30, 30)), ValueError, "divisible by 4"),
    (lambda: ciphers.make("pixel", shape=(32,)), ValueError, "shape"),
    (lambda: ciphers.make("pixel", seed=-1), ValueError, "seed"),
    (lambda: ciphers.make("pixel", seed=1.5), ValueError, "seed"),
    (lambda: PixelCipher(np.full((4, 4, 3), 2)), ValueError, "0..1"),
    (lambda: PixelCipher(np.zeros((4, 4, 3)) + 0.5), TypeError, "integers"),
    (lambda: PixelCipher(np.zeros((4, 4, 3), int), np.full((4, 4), 6)), ValueError, "0..5"),
    (lambda: PixelCipher(np.zeros((4, 4, 3), int), np.zeros((4, 5), int)), ValueError, "match"),
    (lambda: PixelCipher(np.zeros((4, 4, 2), int)), ValueError, r"\(H, W, 3\)"),
    (lambda: TanakaCipher(np.zeros(96, int)), ValueError, "permutation"),
    (lambda: TanakaCipher(np.arange(48)), ValueError, "permutation"),
    (lambda: EtcCipher([[0, 0]], [[0, 0]], [[0, 0]], [[0, 0]], [[0, 0]]), ValueError, "permutation"),
    (lambda: EtcCipher([[0, 1]], [[4, 0]], [[0, 0]], [[0, 0]], [[0, 0]]), ValueError, "rotation"),
    (lambda: ciphers.ChaoticRc4Cipher(0.5, 3.0, bytes(16)), ValueError, "r must be"),
    (lambda: ciphers.ChaoticRc4Cipher(0.5, 3.995, bytes(3)), ValueError, "rc4_key"),
])
def test_key_and_parameter_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_repr_hides_the_key():
    cipher = ciphers.make("chaotic_rc4", seed=0)
    assert cipher.rc4_key.hex() not in repr(cipher) and str(cipher.x0) not in repr(cipher)


# ---------------------------------------------------------------- key spaces, Eqs. (2)-(5)
def test_key_space_formulas():
    n = 32 * 32
    assert ciphers.key_space("pixel") == 2 ** (3 * n)
    assert ciphers.key_space("pixel", shuffle=True) == 2 ** (3 * n) * 6 ** n
    assert ciphers.key_space_log10("pixel", shuffle=True) == pytest.approx(
        3 * n * math.log10(2) + n * math.log10(6), rel=1e-12)
    assert ciphers.key_space_log10("tanaka") == pytest.approx(math.lgamma(97) / math.log(10), rel=1e-12)
    assert ciphers.key_space("plain") == 1
    rows = {r["encryption"]: r["log10_key_space"] for r in ciphers.key_space_rows([(32, 32)])}
    assert rows["Tanaka, Eq. 5 (paper)"] == pytest.approx(
        (math.lgamma(97) + 96 * math.log(2)) / math.log(10), abs=0.005)
    assert rows["steps 2+3 (proposed), Eq. 4"] > rows["Tanaka, Eq. 5 (paper)"]  # N(n) >> N_tanaka


def test_etc_key_space_counts_distinct_encryptions_not_key_values():
    """4 rotations x 3 inversions are 12 key values per block but only 8 distinct transforms
    of a square; with negative-positive and the colour shuffle, 96 distinct block encryptions."""
    block = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)  # distinct values, none 255 - another
    distinct = {t.encrypt(block).tobytes() for t in etc_block_transforms()}
    assert len(etc_block_transforms()) == 144 and len(distinct) == 96
    assert ciphers.key_space("etc") == math.factorial(64) * len(distinct) ** 64
    assert ciphers.key_space_log10("etc") == pytest.approx(215.97, abs=0.005)
    assert ciphers.key_space("etc", (8, 12)) == math.factorial(6) * 96 ** 6
    rows = {r["encryption"]: r for r in ciphers.key_space_rows([(32, 32)])}
    assert rows["EtC (4x4 blocks)"]["log10_key_space"] == 215.97


def test_key_space_rows_leave_out_block_schemes_for_unaligned_sizes():
    rows = ciphers.key_space_rows([(30, 30)])
    assert [r["encryption"] for r in rows] == [
        "step 2 (negative-positive), Eq. 3", "step 3 (colour shuffle), Eq. 3",
        "steps 2+3 (proposed), Eq. 4", "chaotic/RC4 (approximation)"]


def test_chaotic_key_space_counts_float64_values():
    assert ciphers.count_floats(1.0, 2.0) == 2 ** 52
    assert ciphers.key_space("chaotic_rc4") > 2 ** 128


# ---------------------------------------------------------------- the paper's central property
SHIFTS = [(0, 1), (1, 0), (-2, 3), (3, -1), (4, 4), (-4, 0), (0, -8), (4, -4)]


@pytest.mark.parametrize("shuffle", [False, True])
def test_pixel_flip_of_ciphertext_is_ciphertext_of_flip_with_flipped_key(shuffle):
    cipher = ciphers.make("pixel", shuffle=shuffle, seed=8)
    x = random_images(n=1)[0]
    y = cipher.encrypt(x)
    perm = None if cipher.perm is None else cipher.perm
    for flip in (lambda a: a[:, ::-1], lambda a: a[::-1]):
        flipped_key = PixelCipher(flip(cipher.flip), None if perm is None else flip(perm))
        assert (flip(y) == flipped_key.encrypt(np.ascontiguousarray(flip(x)))).all()


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dy,dx", SHIFTS)
def test_pixel_shift_of_ciphertext_is_ciphertext_of_shift_with_shifted_key(shuffle, dy, dx):
    cipher = ciphers.make("pixel", shuffle=shuffle, seed=8)
    x = random_images(n=1)[0]
    shifted_key = PixelCipher(shift(cipher.flip, dy, dx),
                              None if cipher.perm is None else shift(cipher.perm, dy, dx))
    region = untouched(cipher.shape, dy, dx)
    expected = shifted_key.encrypt(shift(x, dy, dx))
    assert (shift(cipher.encrypt(x), dy, dx)[region] == expected[region]).all()
    # ... and augmenting with the original key instead breaks it (the key must move along)
    assert (shift(cipher.encrypt(x), dy, dx)[region] != cipher.encrypt(shift(x, dy, dx))[region]).any()


@pytest.mark.parametrize("dy,dx", SHIFTS)
def test_tanaka_shift_holds_only_for_multiples_of_4(dy, dx):
    cipher = ciphers.make("tanaka", seed=8)  # one key for every block: the shifted key is itself
    x = random_images(n=1)[0]
    region = untouched(cipher.shape, dy, dx)
    same = (shift(cipher.encrypt(x), dy, dx)[region] == cipher.encrypt(shift(x, dy, dx))[region])
    assert same.all() == (dy % 4 == 0 and dx % 4 == 0)
    if not same.all():
        assert same.mean() < 0.5


def shifted_etc_key(cipher, by, bx):
    """The EtC key that moves along with a shift of (by, bx) whole blocks.

    Output block b of the shifted ciphertext is old output block b - d, which read input
    block order[b - d]; in the shifted plaintext that input sits at order[b - d] + d.
    Blocks whose source falls off the image get any leftover input block.
    """
    gh, gw = cipher.order.shape
    order = np.full((gh, gw), -1)
    valid = np.zeros((gh, gw), dtype=bool)
    for a in range(gh):
        for b in range(gw):
            oa, ob = a - by, b - bx
            if 0 <= oa < gh and 0 <= ob < gw:
                sa, sb = divmod(int(cipher.order[oa, ob]), gw)
                if 0 <= sa + by < gh and 0 <= sb + bx < gw:
                    order[a, b] = (sa + by) * gw + sb + bx
                    valid[a, b] = True
    order[order < 0] = sorted(set(range(gh * gw)) - set(order.ravel()))
    per_block = {name: shift(getattr(cipher, name), by, bx)
                 for name in ("rotation", "inversion", "negpos", "colour")}
    return EtcCipher(order, **per_block), valid


@pytest.mark.parametrize("dy,dx", [(4, 0), (0, -4), (4, 8), (-8, 4)])
def test_etc_shift_by_whole_blocks_is_ciphertext_of_shift_with_shifted_key(dy, dx):
    cipher = ciphers.make("etc", seed=8)
    x = random_images(n=1)[0]
    key, valid_blocks = shifted_etc_key(cipher, dy // 4, dx // 4)
    region = np.kron(valid_blocks, np.ones((4, 4), dtype=bool))
    assert region.sum() >= 8 * 16  # the check covers a real part of the image
    expected = key.encrypt(shift(x, dy, dx))
    assert (shift(cipher.encrypt(x), dy, dx)[region] == expected[region]).all()


@functools.cache
def etc_block_transforms():
    """Every per-block transform an EtC key can apply, as 4x4 ciphers."""
    return [EtcCipher([[0]], [[r]], [[i]], [[n]], [[c]])
            for r in range(4) for i in range(3) for n in range(2) for c in range(6)]


@pytest.mark.parametrize("scheme", ["tanaka", "etc"])
@pytest.mark.parametrize("dy,dx", SHIFTS)
def test_block_schemes_survive_shifts_by_multiples_of_4_only(scheme, dy, dx):
    """Whatever the key: is every inner 4x4 block of the shifted ciphertext an encryption
    of some 4x4 block of the shifted plaintext? Only for multiples of 4. (The plaintext is
    rolled rather than padded here so that no source block is lost off the edge.)"""
    cipher = ciphers.make(scheme, seed=8)
    x = random_images(n=1)[0]
    plain_blocks = np.roll(x, (dy, dx), axis=(0, 1)).reshape(8, 4, 8, 4, 3).transpose(0, 2, 1, 3, 4).reshape(64, 4, 4, 3)
    cipher_blocks = shift(cipher.encrypt(x), dy, dx).reshape(8, 4, 8, 4, 3).transpose(0, 2, 1, 3, 4)
    if scheme == "tanaka":
        candidates = [TanakaCipher(cipher.key, shape=(4, 4)).encrypt(plain_blocks)]
    else:
        candidates = [t.encrypt(plain_blocks) for t in etc_block_transforms()]
    known = {block.tobytes() for c in candidates for block in c}
    inner = [cipher_blocks[a, b] for a in range(2, 6) for b in range(2, 6)]  # never touch padding
    hits = np.mean([block.tobytes() in known for block in inner])
    assert hits == (1.0 if dy % 4 == 0 and dx % 4 == 0 else 0.0)

"""Tests of ppdnn.ciphers: exactness, round trips, keys, errors and the augmentation property."""
import base64
import functools
import json
import math
import os
import stat

import numpy as np
import pytest
import torch

from ppdnn import ciphers, files
from ppdnn.ciphers import PERMUTATIONS, EtcCipher, PixelCipher, TanakaCipher

CONFIGS = [pytest.param(s, sh, id=f"{s}{'+shuffle' if sh else ''}")
           for s, sh in ciphers.CONFIGURATIONS]


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


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("scheme,shuffle", CONFIGS)
def test_round_trip_random_images_numpy_and_torch(scheme, shuffle):
    cipher = ciphers.make(scheme, shuffle=shuffle, seed=0)
    x = random_images(n=7)
    y = cipher.encrypt(x)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert (cipher.decrypt(y) == x).all()
    assert (cipher.encrypt(x[0]) == y[0]).all()  # a single (H, W, 3) image
    if scheme != "plain":
        assert (y != x).mean() > 0.45
    t = torch.from_numpy(x).permute(0, 3, 1, 2)  # a non-contiguous view, as in training
    ty = cipher.encrypt(t)
    assert ty.dtype == torch.uint8 and ty.shape == t.shape
    assert (ty.permute(0, 2, 3, 1).numpy() == y).all()
    assert torch.equal(cipher.decrypt(ty), t)


def test_empty_batches():
    cipher = ciphers.make("tanaka", seed=0)
    assert cipher.encrypt(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 32, 32, 3)
    assert cipher.decrypt(torch.zeros(0, 3, 32, 32, dtype=torch.uint8)).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("scheme,shuffle", CONFIGS)
def test_round_trip_real_photo(scheme, shuffle, photo):
    cipher = ciphers.make(scheme, shape=photo.shape[:2], shuffle=shuffle, seed=5)
    assert (cipher.decrypt(cipher.encrypt(photo)) == photo).all()


@pytest.mark.parametrize("scheme,shuffle", CONFIGS)
def test_round_trip_non_square_sizes(scheme, shuffle):
    shape = (8, 12) if scheme in ("tanaka", "etc") else (5, 7)
    cipher = ciphers.make(scheme, shape=shape, shuffle=shuffle, seed=4)
    x = random_images(shape, n=3)
    assert (cipher.decrypt(cipher.encrypt(x)) == x).all()


def test_round_trip_real_cifar_images(real_cifar):
    images = real_cifar["test_images"][::500]
    assert images.shape == (20, 32, 32, 3)
    for cipher in ciphers.make_all(seed=9):
        assert (cipher.decrypt(cipher.encrypt(images)) == images).all(), cipher


@pytest.mark.parametrize("scheme,shuffle", CONFIGS)
def test_torch_ops_path_used_on_gpus_matches_numpy(scheme, shuffle):
    """The torch-only code path (taken for CUDA tensors) checked on CPU tensors."""
    cipher = ciphers.make(scheme, shuffle=shuffle, seed=0)
    x = random_images(n=5)
    flat = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().reshape(5, -1)
    for direction, expected in (("encrypt", cipher.encrypt(x)), ("decrypt", cipher.decrypt(x))):
        table = cipher._tables[direction][1]
        out = ciphers._apply_torch(table, flat, {}).reshape(5, 3, 32, 32)
        assert (out.permute(0, 2, 3, 1).numpy() == expected).all()
        assert out.data_ptr() != flat.data_ptr()  # never aliases the input


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("scheme,shuffle", CONFIGS)
def test_torch_on_gpu_matches_numpy(scheme, shuffle):
    cipher = ciphers.make(scheme, shuffle=shuffle, seed=0)
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


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("scheme,shuffle", CONFIGS)
def test_same_seed_same_key_and_output_different_seed_different(scheme, shuffle):
    x = random_images()
    a, b = (ciphers.make(scheme, shuffle=shuffle, seed=42) for _ in range(2))
    assert (a.encrypt(x) == b.encrypt(x)).all()
    assert a._key_material().keys() == b._key_material().keys()
    if scheme != "plain":
        assert (ciphers.make(scheme, shuffle=shuffle, seed=43).encrypt(x) != a.encrypt(x)).any()
        assert (ciphers.make(scheme, shuffle=shuffle).encrypt(x)
                != ciphers.make(scheme, shuffle=shuffle).encrypt(x)).any()  # OS entropy


# ---------------------------------------------------------------- key files
@pytest.mark.parametrize("scheme,shuffle", CONFIGS)
def test_key_file_round_trip_private_and_atomic(scheme, shuffle, tmp_path):
    cipher = ciphers.make(scheme, shuffle=shuffle, seed=7)
    path = cipher.save(tmp_path / "keys" / "key.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(path.parent) == ["key.json"]
    body = json.loads(path.read_text())
    assert body["scheme"] == scheme and body["shape"] == [32, 32] and body["version"] == 1
    loaded = ciphers.load(path, scheme=scheme, shape=(32, 32))
    assert type(loaded) is type(cipher) and loaded.shape == cipher.shape
    x = random_images()
    assert (loaded.encrypt(x) == cipher.encrypt(x)).all()
    assert loaded.key_space_log10 == cipher.key_space_log10


def test_save_refuses_to_replace_a_key_unless_asked(tmp_path):
    path = ciphers.make("pixel", seed=1).save(tmp_path / "k.json")
    with pytest.raises(FileExistsError, match="overwrite"):
        ciphers.make("pixel", seed=2).save(path)
    ciphers.make("pixel", seed=2).save(path, overwrite=True)
    assert (ciphers.load(path).flip == ciphers.make("pixel", seed=2).flip).all()


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        ciphers.make("tanaka", seed=1).save(tmp_path / "k.json")
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
    body["sha256"] = ciphers._checksum(body)
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
    blocks = 64
    assert ciphers.key_space("etc") == math.factorial(blocks) * 144 ** blocks
    assert ciphers.key_space("plain") == 1
    rows = {r["encryption"]: r["log10_key_space"] for r in ciphers.key_space_rows([(32, 32)])}
    assert rows["Tanaka, Eq. 5 (paper)"] == pytest.approx(
        (math.lgamma(97) + 96 * math.log(2)) / math.log(10), abs=0.005)
    assert rows["steps 2+3 (proposed), Eq. 4"] > rows["Tanaka, Eq. 5 (paper)"]  # N(n) >> N_tanaka


def test_chaotic_key_space_counts_float64_values():
    assert ciphers._count_floats(1.0, 2.0) == 2 ** 52
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

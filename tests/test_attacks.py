"""The published attacks: exact chosen-plaintext recovery, ciphertext-only attacks that
raise SSIM on real photographs, and clear errors on bad input."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from ppdnn import attacks, ciphers

@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """Real photographs at CIFAR size: Grace Hopper resized to 32x32 and 16 32x32 tiles
    of her portrait resized to 128x128 (matplotlib's sample image)."""
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        portrait = Image.open(f).convert("RGB")
        portrait.load()
    small = np.asarray(portrait.resize((32, 32), Image.BILINEAR))
    medium = np.asarray(portrait.resize((128, 128), Image.BILINEAR))
    tiles = medium.reshape(4, 32, 4, 32, 3).transpose(0, 2, 1, 3, 4).reshape(16, 32, 32, 3)
    return np.concatenate([small[None], tiles])


@pytest.fixture(scope="module")
def cifar(real_cifar) -> np.ndarray:
    """100 real CIFAR-10 test images (the first 10 of each class)."""
    labels = real_cifar["test_labels"]
    picks = np.concatenate([np.flatnonzero(labels == k)[:10] for k in range(10)])
    return real_cifar["test_images"][picks]


def random_images(n=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def mean_ssim(x, y):
    return attacks.score(x, y)["ssim"]


# ---------------------------------------------------------------- chosen plaintext
@pytest.mark.parametrize("shuffle", [False, True])
def test_pixel_key_from_one_chosen_image_is_exact(shuffle):
    cipher = ciphers.make("pixel", shuffle=shuffle, seed=7)
    queries = []

    def oracle(x):
        queries.append(x)
        return cipher.encrypt(x)

    key = attacks.recover_pixel_key(oracle)
    assert len(queries) == 1
    assert isinstance(key, ciphers.PixelCipher)
    np.testing.assert_array_equal(key.flip, cipher.flip)
    if shuffle:
        np.testing.assert_array_equal(key.perm, cipher.perm)
    else:
        assert key.perm is None
    assert attacks.key_fraction(cipher, key) == 1.0
    plain = random_images(20)
    np.testing.assert_array_equal(key.decrypt(cipher.encrypt(plain)), plain)


def test_tanaka_key_from_one_chosen_image_is_exact():
    cipher = ciphers.make("tanaka", seed=3)
    key = attacks.recover_tanaka_key(cipher.encrypt)
    np.testing.assert_array_equal(key.key, cipher.key)
    assert attacks.key_fraction(cipher, key) == 1.0
    plain = random_images(20)
    np.testing.assert_array_equal(key.decrypt(cipher.encrypt(plain)), plain)


@pytest.mark.parametrize("scheme,shuffle,nibbles", [
    ("pixel", True, False), ("tanaka", False, True), ("etc", False, False),
    ("chaotic_rc4", False, False)])
def test_equivalent_key_decrypts_every_image_exactly(scheme, shuffle, nibbles):
    cipher = ciphers.make(scheme, shuffle=shuffle, seed=11)
    key = attacks.recover_xor_permutation(cipher.encrypt, nibbles=nibbles)
    plain = random_images(30, seed=1)
    encrypted = cipher.encrypt(plain)
    np.testing.assert_array_equal(key.decrypt(encrypted), plain)
    np.testing.assert_array_equal(key.encrypt(plain), encrypted)
    assert len(attacks.xor_permutation_queries(nibbles=nibbles)) == (5 if nibbles else 3)


def test_byte_level_attack_refuses_tanaka_nibble_moves():
    with pytest.raises(ValueError, match="does not apply"):
        attacks.recover_xor_permutation(ciphers.make("tanaka", seed=0).encrypt)


def test_attacks_refuse_oracles_of_another_kind():
    def chaining(x):  # each byte depends on the previous one: not a move-and-XOR cipher
        flat = x.reshape(len(x), -1).astype(np.uint64)
        return (np.cumsum(flat, axis=1) % 256).astype(np.uint8).reshape(x.shape)

    with pytest.raises(ValueError, match="does not apply"):
        attacks.recover_xor_permutation(chaining)
    with pytest.raises(ValueError, match="not the pixel scheme"):
        attacks.recover_pixel_key(ciphers.make("tanaka", seed=0).encrypt)
    with pytest.raises(ValueError, match="not Tanaka"):
        attacks.recover_tanaka_key(ciphers.make("etc", seed=0).encrypt)
    with pytest.raises(ValueError, match="uint8 images"):
        attacks.recover_pixel_key(lambda x: x.astype(np.float32))


# ---------------------------------------------------------------- ciphertext-only
def test_fold_undoes_every_flip_of_dark_images():
    dark = random_images(4) // 2  # values 0..127: the fold is exact
    cipher = ciphers.make("pixel", seed=1)
    np.testing.assert_array_equal(attacks.fold(cipher.encrypt(dark)), dark)
    np.testing.assert_array_equal(attacks.fold(cipher.encrypt(dark[0])), dark[0])


def test_advanced_attack_recovers_a_smooth_image_exactly_from_its_first_pixel():
    # Channels far apart and far from 127.5, changing slowly: only the true candidate
    # is close to its decoded neighbours.
    ramp = np.add.outer(np.arange(32), np.arange(32)) // 4            # 0..15
    smooth = np.stack([20 + ramp, 90 + ramp, 180 + ramp], -1).astype(np.uint8)[None]
    cipher = ciphers.make("pixel", shuffle=True, seed=5)
    decoded = attacks.advanced_attack(cipher.encrypt(smooth), first_pixel=smooth[:, 0, 0])
    np.testing.assert_array_equal(decoded, smooth)
    # Without the first pixel it is right up to one global transform, which is then
    # applied to every pixel alike.
    free = attacks.advanced_attack(cipher.encrypt(smooth))
    assert any(np.array_equal(attacks.apply_transforms(free, np.array([t])), smooth)
               for t in range(48))


@pytest.mark.parametrize("shuffle", [False, True])
def test_ciphertext_only_attacks_raise_ssim_on_photographs(photos, shuffle):
    encrypted = ciphers.make("pixel", shuffle=shuffle, seed=2).encrypt(photos)
    base = mean_ssim(photos, encrypted)
    prior = attacks.colour_prior(photos[:1])  # the whole portrait, shrunk
    assert base < 0.1
    assert mean_ssim(photos, attacks.fold(encrypted)) > base + 0.1
    assert mean_ssim(photos, attacks.advanced_attack(
        encrypted, shuffle, first_pixel=photos[:, 0, 0])) > base + 0.1
    assert mean_ssim(photos, attacks.advanced_attack(encrypted, shuffle, prior=prior)) > base + 0.1


@pytest.mark.parametrize("shuffle", [False, True])
def test_ciphertext_only_attacks_raise_ssim_on_real_cifar(cifar, photos, shuffle):
    encrypted = ciphers.make("pixel", shuffle=shuffle, seed=4).encrypt(cifar)
    base = mean_ssim(cifar, encrypted)
    prior = attacks.colour_prior(photos)  # fitted on other photographs
    assert base < 0.1
    assert mean_ssim(cifar, attacks.fold(encrypted)) > base + 0.1
    assert mean_ssim(cifar, attacks.advanced_attack(encrypted, shuffle, prior=prior)) > base + 0.1
    assert mean_ssim(cifar, attacks.advanced_attack(
        encrypted, shuffle, first_pixel=cifar[:, 0, 0])) > base + 0.1


# ---------------------------------------------------------------- the table
def test_security_table_has_every_scheme_and_attack(photos):
    report = attacks.security_table(photos[:6], prior_images=photos, key_seed=0, n_examples=2)
    table = report.table
    assert len(table) == len(attacks.CONFIGURATIONS) * len(attacks.ATTACKS)
    assert set(table["attack"]) == set(attacks.ATTACKS)
    assert (table["n_images"] == 6).all()
    chosen = table[table["attack"] == "chosen plaintext"]
    assert (chosen["exact_images"] == 1.0).all() and (chosen["ssim"] == 1.0).all()
    assert (chosen["chosen_images"] >= 1).all()
    pixel_keys = chosen[chosen["scheme"].str.startswith(("pixel", "tanaka"))]["key_fraction"]
    assert (pixel_keys == 1.0).all()
    assert set(report.examples) == set(table["scheme"])
    assert report.examples["pixel (step 2)"]["fold"].shape == (2, 32, 32, 3)
    fig = attacks.plot_examples(report.examples)
    assert len(fig.axes) == len(report.examples) * (len(attacks.ATTACKS) + 1)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call", [attacks.fold, attacks.advanced_attack,
                                  lambda x: attacks.score(x, x), attacks.colour_prior])
def test_bad_images_raise_clear_errors(call):
    with pytest.raises(TypeError, match="uint8"):
        call(np.zeros((2, 32, 32, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="numpy"):
        call([[[0, 0, 0]]])
    with pytest.raises(ValueError, match="shape"):
        call(np.zeros((2, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        call(np.zeros((2, 32, 32, 4), dtype=np.uint8))


def test_bad_arguments_raise_clear_errors():
    images = random_images(2)
    with pytest.raises(ValueError, match="differ in shape"):
        attacks.score(images, images[:1])
    with pytest.raises(ValueError, match="first_pixel"):
        attacks.advanced_attack(images, first_pixel=images[:1, 0, 0])
    with pytest.raises(ValueError, match="bins"):
        attacks.colour_prior(images, bins=10)
    with pytest.raises(ValueError, match="shape"):
        attacks.recover_pixel_key(ciphers.make("pixel", seed=0).encrypt, shape=(32,))
    key = attacks.recover_xor_permutation(ciphers.make("etc", seed=0).encrypt)
    with pytest.raises(ValueError, match="for this key"):
        key.decrypt(np.zeros((1, 16, 16, 3), np.uint8))


def test_score_averages_psnr_over_inexact_images():
    images = random_images(4)
    recovered = images.copy()
    recovered[0] ^= 1  # one image off by one everywhere: MSE 1, PSNR 20 log10(255)
    result = attacks.score(images, recovered)
    assert result["exact_images"] == 0.75
    assert result["psnr"] == pytest.approx(20 * np.log10(255))
    assert result["ssim"] < 1.0
    assert attacks.score(images, images)["psnr"] == float("inf")

"""The published attacks: exact chosen-plaintext recovery, Chang & Case's advanced attack
bit for bit as their code, ciphertext-only attacks that raise SSIM on real photographs, the
security report over the registry, and clear errors on bad input."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_ciphers import toy_scheme  # noqa: F401  (a fixture: a scheme defined in a test)

from ppdnn import attacks, ciphers, security
from shipped import ENTRIES

REFERENCE = Path(__file__).with_name("chang_case_reference.json")


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


def test_chang_case_is_bit_identical_to_the_authors_code():
    """Outputs of their decrypt_diffkey_adv.m run on GNU Octave (see the fixture's "how")."""
    reference = json.loads(REFERENCE.read_text())
    assert len(reference["cases"]) >= 5
    for case in reference["cases"]:
        encrypted = np.array(case["encrypted"], dtype=np.uint8)[None]
        first = np.array(case["first_pixel"], dtype=np.uint8)[None]
        theirs = np.array(case["decoded"], dtype=np.uint8)
        ours = attacks.advanced_attack(encrypted, first_pixel=first, method="chang_case")[0]
        np.testing.assert_array_equal(ours, theirs, err_msg=case["name"])
        variant = attacks.advanced_attack(encrypted, first_pixel=first, method="two_neighbours")[0]
        assert not np.array_equal(variant, theirs), case["name"]  # the cases tell them apart


def test_chang_case_breaks_ties_by_the_last_channel_order():
    # Every channel order is equally far from the neighbour (10, 10, 10); no flip helps.
    # Their loops keep the last order of Table 1 that reaches the minimum: BGR.
    encrypted = np.array([[[[0, 0, 0], [15, 100, 100]]]], dtype=np.uint8)
    first = np.array([[10, 10, 10]], dtype=np.uint8)
    authors = attacks.advanced_attack(encrypted, first_pixel=first, method="chang_case")
    np.testing.assert_array_equal(authors[0, 0], [[10, 10, 10], [100, 100, 15]])
    variant = attacks.advanced_attack(encrypted, first_pixel=first, method="two_neighbours")
    np.testing.assert_array_equal(variant[0, 0, 1], [15, 100, 100])  # the first order: RGB


def test_chang_case_takes_the_first_pixel_verbatim():
    encrypted = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    first = np.array([[141, 195, 241]], dtype=np.uint8)  # not a candidate of (0, 0, 0)
    out = attacks.advanced_attack(encrypted, first_pixel=first, method="chang_case")
    np.testing.assert_array_equal(out[0, 0, 0], [141, 195, 241])
    # the variant starts from the candidate closest to it instead: 0 or 255 per channel
    variant = attacks.advanced_attack(encrypted, first_pixel=first, method="two_neighbours")
    np.testing.assert_array_equal(variant[0, 0, 0], [255, 255, 255])


def test_chang_case_compares_with_the_left_pixel_in_row_0_and_the_upper_one_below():
    """Below the first row each pixel is compared with the pixel above only, so every
    column is decoded on its own: changing one column's ciphertext (below row 0) changes
    nothing else. In row 0 a pixel depends only on the pixels to its left. The
    two-neighbour variant also looks left, so a change spreads to the right."""
    rng = np.random.default_rng(0)
    encrypted = rng.integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    first = encrypted[:, 0, 0]
    changed = encrypted.copy()
    changed[:, 1:, 3] = rng.integers(0, 256, (1, 7, 3), dtype=np.uint8)
    before, after = (attacks.advanced_attack(e, first_pixel=first, method="chang_case")
                     for e in (encrypted, changed))
    others = [j for j in range(8) if j != 3]
    np.testing.assert_array_equal(after[:, :, others], before[:, :, others])
    assert (after[:, 1:, 3] != before[:, 1:, 3]).any()
    row0 = encrypted.copy()
    row0[:, 0, 5] = 255 - row0[:, 0, 5]
    moved = attacks.advanced_attack(row0, first_pixel=first, method="chang_case")
    np.testing.assert_array_equal(moved[:, 0, :5], before[:, 0, :5])
    before2, after2 = (attacks.advanced_attack(e, first_pixel=first, method="two_neighbours")
                       for e in (encrypted, changed))
    assert (after2[:, 1:, 4:] != before2[:, 1:, 4:]).any()


@pytest.mark.parametrize("method", attacks.ADVANCED_METHODS)
def test_advanced_attack_recovers_a_smooth_image_exactly_from_its_first_pixel(method):
    # Channels far apart and far from 127.5, changing slowly: only the true candidate
    # is close to its decoded neighbours.
    ramp = np.add.outer(np.arange(32), np.arange(32)) // 4            # 0..15
    smooth = np.stack([20 + ramp, 90 + ramp, 180 + ramp], -1).astype(np.uint8)[None]
    cipher = ciphers.make("pixel", shuffle=True, seed=5)
    decoded = attacks.advanced_attack(cipher.encrypt(smooth), first_pixel=smooth[:, 0, 0],
                                      method=method)
    np.testing.assert_array_equal(decoded, smooth)
    # Without the first pixel it is right up to one global transform, which is then
    # applied to every pixel alike.
    free = attacks.advanced_attack(cipher.encrypt(smooth), method=method)
    assert any(np.array_equal(attacks.apply_transforms(free, np.array([t])), smooth)
               for t in range(48))


@pytest.mark.parametrize("method", attacks.ADVANCED_METHODS)
@pytest.mark.parametrize("shuffle", [False, True])
def test_ciphertext_only_attacks_raise_ssim_on_photographs(photos, shuffle, method):
    encrypted = ciphers.make("pixel", shuffle=shuffle, seed=2).encrypt(photos)
    base = mean_ssim(photos, encrypted)
    prior = attacks.colour_prior(photos[:1])  # the whole portrait, shrunk
    assert base < 0.1
    assert mean_ssim(photos, attacks.fold(encrypted)) > base + 0.1
    assert mean_ssim(photos, attacks.advanced_attack(
        encrypted, shuffle, first_pixel=photos[:, 0, 0], method=method)) > base + 0.1
    assert mean_ssim(photos, attacks.advanced_attack(
        encrypted, shuffle, prior=prior, method=method)) > base + 0.1


@pytest.mark.parametrize("method", attacks.ADVANCED_METHODS)
@pytest.mark.parametrize("shuffle", [False, True])
def test_ciphertext_only_attacks_raise_ssim_on_real_cifar(cifar, photos, shuffle, method):
    encrypted = ciphers.make("pixel", shuffle=shuffle, seed=4).encrypt(cifar)
    base = mean_ssim(cifar, encrypted)
    prior = attacks.colour_prior(photos)  # fitted on other photographs
    assert base < 0.1
    assert mean_ssim(cifar, attacks.fold(encrypted)) > base + 0.1
    assert mean_ssim(cifar, attacks.advanced_attack(
        encrypted, shuffle, prior=prior, method=method)) > base + 0.1
    assert mean_ssim(cifar, attacks.advanced_attack(
        encrypted, shuffle, first_pixel=cifar[:, 0, 0], method=method)) > base + 0.1


# ---------------------------------------------------------------- the report
def test_security_table_covers_every_encrypting_configuration_and_attack(photos):
    report = security.security_table(photos[:6], prior_images=photos, key_seed=0, n_examples=2,
                                     configurations=ciphers.configurations(ENTRIES))
    table = report.table
    names = [name for name in ENTRIES if name != "plain"]  # the plain baseline is not attacked
    assert list(dict.fromkeys(table["configuration"])) == names
    assert len(table) == len(names) * len(security.ATTACKS)
    assert list(table["attack"][:len(security.ATTACKS)]) == list(security.ATTACKS)
    assert (table["n_images"] == 6).all()
    chosen = table[table["attack"] == "chosen plaintext"]
    assert (chosen["exact_images"] == 1.0).all() and (chosen["ssim"] == 1.0).all()
    assert (chosen["chosen_images"] >= 1).all()
    pixel_keys = chosen[chosen["scheme"].str.startswith(("pixel", "tanaka"))]["key_fraction"]
    assert (pixel_keys == 1.0).all()
    etc = table[table["configuration"] == "etc"]
    assert (etc["key_space_log10"] == 216.0).all()  # distinct encryptions, 10^215.97
    # the keys are the pipeline's: one independent key per configuration
    assert set(report.examples) == set(table["scheme"])
    expected = ciphers.make("pixel", shuffle=True,
                            seed=ciphers.derive_seed("pixel_shuffle", 0)).encrypt(photos[:2])
    np.testing.assert_array_equal(report.examples["pixel (step 2+3)"]["none (encrypted)"], expected)
    assert report.examples["pixel (step 2)"]["fold"].shape == (2, 32, 32, 3)
    fig = security.plot_examples(report.examples)
    assert len(fig.axes) == len(report.examples) * (len(security.ATTACKS) + 1)
    markdown = security.report_markdown(table)
    # (cells may be padded to the column's width)
    assert len(re.findall(r"\n\| pixel \(step 2\) +\|", markdown)) == len(security.ATTACKS)
    assert re.search(r"\| advanced \(Chang & Case\), true first pixel +\|", markdown)


def test_security_table_picks_up_a_new_scheme(toy_scheme, photos):
    report = security.security_table(photos[:2], key_seed=0, n_examples=1,
                                     configurations=[ciphers.configuration("pixel"), ciphers.configuration("toy")])
    assert set(report.table["configuration"]) == {"pixel", "toy"}
    assert "toy" in [c.name for c in security.attacked_configurations((32, 32))]
    toy = report.table[report.table["configuration"] == "toy"].set_index("attack")
    assert toy.loc["chosen plaintext", "exact_images"] == 1.0


def test_security_files(photos, tmp_path):
    report = security.security_table(photos[:2], key_seed=0, n_examples=1,
                                     configurations=[ciphers.configuration("pixel")])
    csv, md, png = security.write_report(report, tmp_path / "out")
    assert csv.read_text().splitlines()[0].startswith(
        "configuration,scheme,attack,attacker,uses,ciphertexts_used,n_images,ssim")
    assert md.read_text().startswith("Attacks scored on 2 CIFAR-10 test images")
    assert png.stat().st_size > 1000


def test_the_one_markdown_table_writer():
    from ppdnn.markdown import markdown_table

    rows = [{"name": "a", "value": 1}, {"name": "b", "value": 22}]
    def cells(text):
        return [[c.strip() for c in line.strip("|").split("|")] for line in text.strip().splitlines()]

    plain = cells(markdown_table(rows))
    assert [row for i, row in enumerate(plain) if i != 1] == [["name", "value"], ["a", "1"], ["b", "22"]]
    assert all(c.startswith(":") and set(c) <= {":", "-"} for c in plain[1])  # left-aligned separator row
    right = markdown_table(rows, {"value": "Value (%)"}, align={"value": "right"})
    assert [row for i, row in enumerate(cells(right)) if i != 1] == [["Value (%)"], ["1"], ["22"]]
    assert cells(right)[1][0].endswith(":")
    with pytest.raises(ValueError, match="align"):
        markdown_table(rows, align={"value": "up"})


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
    with pytest.raises(ValueError, match="method must be one of"):
        attacks.advanced_attack(images, method="left_only")
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

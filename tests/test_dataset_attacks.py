"""The ciphertext-only data-set attacks: exact keys of the pixel scheme from natural
images (crops of scikit-image's photographs), flip masks of the block schemes, low
confidence on noise and on a data set under several keys, clear errors on bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ppdnn import ciphers, dataset_attacks as da


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """256 natural 32x32 images: crops of four scikit-image sample photographs."""
    return da.public_images()


def noise(n=256, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("shuffle", [False, True])
def test_pixel_key_recovered_exactly(photos, shuffle):
    cipher = ciphers.make("pixel", shuffle=shuffle, seed=3)
    result = da.attack_dataset(cipher.encrypt(photos), "pixel", cipher.options)
    assert da.table_agreement(cipher.table(), result.table)["table"] == 1.0
    fresh = da.public_images(per_photo=4, seed=1)  # images the attacker never saw
    np.testing.assert_array_equal(result.decrypt(cipher.encrypt(fresh)), fresh)
    assert result.confident and result.plausible == 1.0 and result.n_ciphertexts == len(photos)


@pytest.mark.parametrize("scheme", ["etc", "tanaka"])
def test_flip_masks_of_block_schemes(photos, scheme):
    cipher = ciphers.make(scheme, seed=1)
    result = da.attack_dataset(cipher.encrypt(photos), scheme)
    agreement = da.table_agreement(cipher.table(), result.table)
    # EtC flips whole blocks: every mask; Tanaka: the high nibbles' reversals (half the
    # units) and a coin toss on the low ones. Positions are not recovered.
    assert agreement["masks"] >= (0.99 if scheme == "etc" else 0.7)
    assert agreement["positions"] < 0.1 and not result.confident


def test_generic_attack_runs_on_any_table_scheme(photos):
    cipher = ciphers.make("chaotic_rc4", seed=0)
    result = da.attack_dataset(cipher.encrypt(photos), "chaotic_rc4")
    assert result.method.startswith("unit marginals") and not result.confident
    assert result.decrypt(cipher.encrypt(photos[:2])).shape == (2, 32, 32, 3)


@pytest.mark.parametrize("shuffle", [False, True])
def test_noise_gives_low_confidence(shuffle):
    cipher = ciphers.make("pixel", shuffle=shuffle, seed=0)
    result = da.attack_dataset(cipher.encrypt(noise()), "pixel", cipher.options)
    assert not result.confident and result.plausible < 0.1


def test_several_keys_give_low_confidence(photos):
    one, two = ciphers.make("pixel", seed=1), ciphers.make("pixel", seed=2)
    mixed = np.concatenate([one.encrypt(photos[::2]), two.encrypt(photos[1::2])])
    result = da.attack_dataset(mixed, "pixel")
    assert not result.confident


def test_few_ciphertexts_are_flagged(photos):
    cipher = ciphers.make("pixel", seed=3)
    few = da.attack_dataset(cipher.encrypt(photos[:10]), "pixel")
    assert not few.confident and few.margin < da.CONFIDENT_MARGIN


def test_attack_curve_rows(photos):
    cipher = ciphers.make("pixel", shuffle=True, seed=5)
    rows = da.attack_curve(cipher, photos, photos[:8], counts=(10, 100, 10_000))
    assert [r["n_ciphertexts"] for r in rows] == [10, 100, len(photos)]  # capped
    assert rows[-1]["key_fraction"] == 1.0 and rows[-1]["exact_images"] == 1.0
    assert rows[-1]["ssim"] == 1.0 and rows[-1]["psnr"] == float("inf")


def test_bad_input_raises_clear_errors(photos):
    cipher = ciphers.make("pixel", seed=0)
    with pytest.raises(ValueError, match="at least 2 ciphertexts"):
        da.attack_dataset(cipher.encrypt(photos[:1]), "pixel")
    with pytest.raises(TypeError, match="uint8"):
        da.attack_dataset(photos.astype(np.float32), "pixel")
    with pytest.raises(ValueError, match="shape"):
        da.attack_dataset(photos[..., 0], "pixel")
    result = da.attack_dataset(cipher.encrypt(photos[:20]), "pixel")
    with pytest.raises(ValueError, match="attacked data set was"):
        result.decrypt(np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown scheme"):
        da.attack_dataset(photos, "no_such_scheme")
    with pytest.raises(ValueError, match="shape"):
        da.attack_curve(cipher, photos, photos[:2, :16, :16])


def test_security_stage_bounds_n_images(tmp_path, capsys):
    from ppdnn.stages import security as stage

    for bad in (0, 10_001, 2.5, True):
        with pytest.raises(ValueError, match="n_images must be an int in 1..10000"):
            stage.check_n_images(bad)
    params = tmp_path / "params.yaml"
    params.write_text((Path(__file__).resolve().parents[1] / "params.yaml").read_text()
                      .replace("security_images: 200", "security_images: 0"))
    status = stage.main(["--params", str(params), "--profile", "smoke", "--data", str(tmp_path / "none"),
                         "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 1 and "security_images must be an int in 1..10000" in err and len(err.strip().splitlines()) == 1

"""GAN-Attack and ITN-Attack (ppdnn.learned_attacks) and their stage, on small images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ppdnn import attacks, check, ciphers, learned_attacks as la, plan
from ppdnn.dataset_attacks import public_images
from ppdnn.stages import learned_attacks as stage

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """256 crops (8x8) of public photographs: natural-image statistics, small and fast."""
    return public_images(size=8, per_photo=64)


@pytest.fixture(scope="module")
def photos16() -> np.ndarray:
    """The same at 16x16, the smallest side the GAN's discriminator takes."""
    return public_images(size=16, per_photo=64)


@pytest.mark.parametrize("block", [1, 4])
def test_the_networks_map_images_to_images_in_range(block):
    x = torch.rand(5, 3, 8, 8) * 2 - 1
    y = la.generator(block)(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert la.discriminator()(torch.rand(5, 3, 32, 32)).shape == (5,)  # one logit per image


def test_the_generator_is_chosen_by_the_schemes_layout():
    assert la.block_size(ciphers.configuration("pixel")) == 1
    assert la.block_size(ciphers.configuration("chaotic_rc4")) == 1
    assert la.block_size(ciphers.configuration("tanaka")) == la.BLOCK == 4
    assert la.block_size(ciphers.configuration("etc")) == 4


def test_the_itn_learns_a_mapping_with_its_fixed_loss(photos):
    """On the identity 'cipher' the inverse network is an autoencoder of 1x1 convolutions:
    training must bring its images closer to the originals. (Their sigmoid on the tanh
    output could not fit a dark pixel at all: every target below 0 is out of reach.)"""
    identity = ciphers.configuration("plain")
    before, _ = la.train_itn(photos, identity, epochs=1 / 256)  # one image: an untrained net
    after, facts = la.train_itn(photos, identity, epochs=12)
    score_before = attacks.score(photos, la.reconstruct(before, photos))
    score_after = attacks.score(photos, la.reconstruct(after, photos))
    assert score_after["psnr"] > score_before["psnr"] + 1.0
    assert facts["images_seen"] == 12 * len(photos) and facts["epochs"] == 12


def test_the_budget_is_respected_and_the_same_seed_gives_the_same_images(photos16):
    photos = photos16
    cipher = ciphers.make("pixel", (16, 16), seed=1)
    encrypted = cipher.encrypt(photos[:128])
    net1, facts = la.train_gan(encrypted, photos[128:], 1, epochs=0.5, seed=3)
    net2, _ = la.train_gan(encrypted, photos[128:], 1, epochs=0.5, seed=3)
    assert facts["images_seen"] == 64 and facts["steps"] == 1 and facts["epochs"] == 0.5
    out1, out2 = la.reconstruct(net1, encrypted), la.reconstruct(net2, encrypted)
    assert out1.dtype == np.uint8 and out1.shape == encrypted.shape
    assert np.array_equal(out1, out2)


def test_on_noise_images_the_attacks_finish_and_recover_nothing():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (128, 16, 16, 3), dtype=np.uint8)
    cipher = ciphers.make("tanaka", (16, 16), seed=0)
    net, _ = la.train_gan(cipher.encrypt(noise[:64]), noise[64:], 4, epochs=2)
    recovered = la.reconstruct(net, cipher.encrypt(noise[:64]))
    score = attacks.score(noise[:64], recovered)
    assert np.isfinite(score["psnr"]) and score["ssim"] < 0.2 and score["exact_images"] == 0


def test_the_itn_trains_under_keys_of_its_own(photos):
    configuration = ciphers.configuration("pixel")
    twice = np.repeat(photos[:1], 2, axis=0)
    own = la.encrypt_under_own_keys(twice, configuration, np.random.default_rng(0))
    assert not np.array_equal(own[0], own[1])  # a fresh key per image
    # ...each a key of the scheme: XOR with 0 or 255 per value (step 2)
    assert set(np.unique(own ^ twice).tolist()) <= {0, 255}


def test_the_table_has_both_attacks_for_every_configuration_with_their_budget(photos16):
    photos = photos16
    configurations = ciphers.configurations({"pixel": None, "pixel_shuffle": {"scheme": "pixel", "shuffle": True},
                                             "tanaka": None, "plain": None})
    budget = la.Budget(gan_epochs=1, itn_epochs=0.5, train_images=32, test_images=8)
    table, examples = la.attack_table(photos, photos[:8], budget, key_seed=0, configurations=configurations)
    assert list(table["configuration"]) == ["pixel", "pixel", "pixel_shuffle", "pixel_shuffle", "tanaka", "tanaka"]
    assert set(table["attack"]) == {la.GAN, la.ITN} and table["under_trained"].all()
    gan = table[table["attack"] == la.GAN]
    assert (gan["ciphertexts_used"] == 32).all() and (gan["epochs"] == 1).all()
    assert (table[table["attack"] == la.ITN]["ciphertexts_used"] == 1).all()
    assert set(examples) == {"pixel (step 2)", "pixel (step 2+3)", "tanaka"}
    markdown = __import__("ppdnn.security", fromlist=["x"]).learned_markdown(table)
    assert markdown.count("(under-trained)") == 6 and "0.5 (under-trained)" in markdown


def test_the_stored_and_the_public_images_never_overlap(photos):
    stored, public = la.split_public(photos, None)
    assert len(stored) == len(public) == 128
    assert not (stored[:, None] == public[None]).reshape(128, 128, -1).all(-1).any()
    assert len(la.split_public(photos, 10)[0]) == 10


@pytest.mark.parametrize("call,message", [
    (lambda p: la.train_gan(p[:1], p, 1, 1), "at least 2 images"),
    (lambda p: la.train_gan(p, public_images(size=16, per_photo=4), 1, 1), "differ in shape"),
    (lambda p: la.train_gan(p, p, 1, 1), "at least 16x16, got 8x8"),
    (lambda p: la.train_itn(p[:1], ciphers.configuration("pixel"), 1), "at least 2 images"),
    (lambda p: la.split_public(p[:3], None), "at least 4 images"),
    (lambda p: la.attack_table(p, public_images(size=16, per_photo=1), la.Budget(1, 1, 8, 4)), "differ in shape"),
    (lambda p: la.attack_table(p.astype(np.float32), p, la.Budget(1, 1, 8, 4)), "uint8"),
    (lambda p: la.Budget(gan_epochs=0), "gan_epochs must be a number in"),
    (lambda p: la.Budget(itn_epochs="50"), "itn_epochs must be a number in"),
    (lambda p: la.Budget(train_images=1), "train_images must be an int of at least 2"),
    (lambda p: la.Budget(test_images=True), "test_images must be an int"),
    (lambda p: la.Budget(device="tpu"), "device must be"),
])
def test_bad_input_is_refused_with_a_clear_error(photos, call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(photos)


GOOD = "gan_epochs: 1\n  itn_epochs: 1\n  train_images: 8\n  test_images: 4\n  device: cpu\n"


@pytest.mark.parametrize("text,message", [
    ("quick:\n  " + GOOD, "no budget for profile 'smoke'"),
    ("smoke: [1]\n", "needs exactly the keys"),
    ("smoke:\n  " + GOOD.replace("gan_epochs", "gan_epoch"), "needs exactly the keys"),
    ("smoke:\n  " + GOOD.replace("test_images: 4", "test_images: -4"), "test_images must be an int"),
    ("smoke: {\n", "not valid YAML"),
    ("smoke:\n  " + GOOD + "smoke:\n  " + GOOD, "duplicate key 'smoke'"),
])
def test_a_bad_budgets_file_is_named_in_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    with pytest.raises(plan.ParamsError, match=message):
        stage.read_budget(path, "smoke")
    out = tmp_path / "out"
    assert stage.main(["--budgets", str(path), "--profile", "smoke", "--data", str(tmp_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and not out.exists()


def test_the_check_reads_every_profiles_budget(tmp_path):
    path = tmp_path / "budgets.yaml"
    path.write_text("smoke:\n  " + GOOD)
    with pytest.raises(plan.ParamsError, match="no budget for profile 'quick'"):
        check.check(plan.read("params.yaml"), budgets=str(path))
    check.check(plan.read("params.yaml"))  # the repository's file has every profile


def test_a_limited_split_spans_every_class_of_a_split_stored_class_by_class():
    by_class = np.repeat(np.arange(10, dtype=np.uint8), 40)[:, None, None, None] * np.ones((1, 16, 16, 3), np.uint8)
    stored, public = la.split_public(by_class, 10)  # 10 of 400 images per side
    assert len(set(stored[:, 0, 0, 0])) >= 5 and len(set(public[:, 0, 0, 0])) >= 5


def test_every_fake_batch_meets_a_real_batch_of_its_size(photos16):
    cipher = ciphers.make("tanaka", (16, 16), seed=0)
    _, facts = la.train_gan(cipher.encrypt(photos16[:65]), photos16[65:], 4, epochs=3)
    assert facts["images_seen"] == 195
    fakes = la._epoch_batches(65, la.GAN_BATCH, 3, torch.Generator().manual_seed(0))
    reals = la._matching_batches(fakes, 191, torch.Generator().manual_seed(0))
    assert [len(r) for r in reals] == [len(f) for f in fakes] and all(r.max() < 191 for r in reals)

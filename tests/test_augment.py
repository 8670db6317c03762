import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from ppdnn import augment


def random_images(n=16, seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def offsets_of(top, left, flip):
    return augment.Offsets(torch.tensor(top), torch.tensor(left), torch.tensor(flip))


def torchvision_shift_flip(x, offsets, padding=4):
    """RandomCrop(H, padding) + RandomHorizontalFlip with the given draws, image by image."""
    out = []
    for image, top, left, flip in zip(x, *offsets):
        image = TF.crop(TF.pad(image, [padding], fill=0), int(top), int(left), x.shape[-2], x.shape[-1])
        out.append(TF.horizontal_flip(image) if flip else image)
    return torch.stack(out)


def test_shift_flip_equals_torchvision_on_the_same_offsets():
    x = random_images(64)
    offsets = augment.draw_offsets(len(x), torch.Generator().manual_seed(1))
    got = augment.shift_flip(x, offsets)
    assert got.dtype == torch.uint8 and got.shape == x.shape
    assert torch.equal(got, torchvision_shift_flip(x, offsets))


@pytest.mark.parametrize("padding", [0, 2, 4])
def test_extreme_offsets_and_other_paddings_match_torchvision(padding):
    x = random_images(4, size=8)
    m = 2 * padding
    offsets = offsets_of([0, m, 0, m], [0, m, m, 0], [False, True, True, False])
    assert torch.equal(augment.shift_flip(x, offsets, padding), torchvision_shift_flip(x, offsets, padding))


def test_random_shift_flip_draws_like_randomcrop_and_is_seeded():
    x = random_images(8)
    a = augment.random_shift_flip(x, torch.Generator().manual_seed(3))
    b = augment.random_shift_flip(x, torch.Generator().manual_seed(3))
    expected = augment.shift_flip(x, augment.draw_offsets(8, torch.Generator().manual_seed(3)))
    assert torch.equal(a, b) and torch.equal(a, expected)
    offsets = augment.draw_offsets(4000, torch.Generator().manual_seed(0))
    # RandomCrop(32, padding=4) draws each corner uniformly from 0..8; the flip is a fair coin
    assert set(offsets.top.tolist()) == set(range(9)) == set(offsets.left.tolist())
    assert 0.45 < offsets.flip.double().mean() < 0.55


def test_centre_offsets_without_flip_are_the_identity():
    x = random_images(3)
    assert torch.equal(augment.shift_flip(x, offsets_of([4] * 3, [4] * 3, [False] * 3)), x)


def test_bad_input_raises():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="uint8"):
        augment.random_shift_flip(torch.zeros(2, 3, 32, 32), g)
    with pytest.raises(ValueError, match="shape"):
        augment.random_shift_flip(torch.zeros(3, 32, 32, dtype=torch.uint8), g)
    with pytest.raises(TypeError, match="Tensor"):
        augment.random_shift_flip(np.zeros((2, 3, 32, 32), np.uint8), g)
    with pytest.raises(ValueError, match="offsets"):
        augment.shift_flip(random_images(2), offsets_of([0], [0], [False]))


# ----------------------------------------------------------- client vs cloud
def interior(offsets, shape):
    """True where the augmented image shows an original pixel (not the zero padding)."""
    return augment.shift_flip(torch.ones(shape, dtype=torch.uint8), offsets).bool()


def test_cloud_augmentation_of_a_pixel_cipher_equals_encryption_with_a_moved_key():
    """The paper's point for pixel-wise encryption.

    client = encrypt(augment(x)) with the fixed key; cloud = augment(encrypt(x)). They
    differ, but the cloud image is still the pixel-wise encryption of the augmented image,
    with the key shifted/flipped along with it (and 0 in the padded border, where the
    client's image holds the encryption of 0). So each pixel still carries one of the 48
    per-pixel transforms that the 1x1 adaptation network learns.
    """
    ciphers = pytest.importorskip("ppdnn.ciphers")
    cipher = ciphers.make("pixel", shuffle=True, seed=0)
    x = random_images(8)
    offsets = offsets_of([0, 8, 3, 4, 1, 7, 4, 5], [8, 0, 6, 4, 2, 5, 1, 4], [1, 0, 1, 0, 0, 1, 1, 0])
    offsets = offsets._replace(flip=offsets.flip.bool())
    client = augment.augment_in_client(x, cipher, offsets=offsets)
    cloud = augment.augment_in_cloud(cipher.encrypt(x), offsets=offsets)
    plain_augmented = augment.shift_flip(x, offsets)
    inside = interior(offsets, x.shape)

    assert torch.equal(client, cipher.encrypt(plain_augmented))
    assert not torch.equal(client, cloud)
    assert torch.all(cloud[~inside] == 0)
    flip_key = torch.from_numpy(np.array(cipher.flip)).permute(2, 0, 1)[None]
    perm_key = torch.from_numpy(np.array(cipher.perm))[None, None]
    moved_flip = augment.shift_flip(flip_key.expand(8, -1, -1, -1).contiguous(), offsets)
    moved_perm = augment.shift_flip(perm_key.expand(8, -1, -1, -1).contiguous(), offsets)
    for i in range(len(x)):
        moved = ciphers.PixelCipher(moved_flip[i].permute(1, 2, 0).numpy(), moved_perm[i, 0].numpy())
        expected = moved.encrypt(plain_augmented[i].permute(1, 2, 0).numpy())
        expected = torch.from_numpy(expected).permute(2, 0, 1)
        assert torch.equal(cloud[i][inside[i]], expected[inside[i]])


def test_cloud_augmentation_breaks_a_block_cipher_unless_the_shift_is_a_multiple_of_4():
    """Tanaka's key is shared by every 4x4 block: the data owner's key still decrypts a
    cloud-augmented image after a block-aligned shift, but not after a 1-pixel shift or a flip."""
    ciphers = pytest.importorskip("ppdnn.ciphers")
    cipher = ciphers.make("tanaka", seed=0)
    x = random_images(3)
    offsets = offsets_of([0, 5, 4], [8, 4, 4], [False, False, True])  # shift (-4,+4) | 1 px | flip only
    cloud = augment.augment_in_cloud(cipher.encrypt(x), offsets=offsets)
    recovered = cipher.decrypt(cloud)
    plain_augmented = augment.shift_flip(x, offsets)
    inside = interior(offsets, x.shape)
    same = (recovered == plain_augmented) | ~inside
    assert same[0].all()                    # aligned shift: exactly the augmented plain image
    assert same[1].float().mean() < 0.5     # misaligned: most pixels wrong
    assert same[2].float().mean() < 0.5     # flip reverses the pixel order inside each block

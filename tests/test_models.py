import pytest
import torch

from ppdnn import models


@pytest.fixture
def images():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_resnet18_full_width_has_the_cifar_resnet18_parameter_count():
    # kuangliu/pytorch-cifar ResNet18: 11,173,962 parameters
    assert models.count_parameters(models.resnet18()) == 11_173_962


@pytest.mark.parametrize("in_channels", [3, 32])
def test_resnet18_output_shape(in_channels):
    net = models.resnet18(width=4, in_channels=in_channels, num_classes=7)
    assert net(torch.randn(2, in_channels, 32, 32)).shape == (2, 7)
    assert net.stem[0].in_channels == in_channels and net.linear.in_features == 32


@pytest.mark.parametrize("adaptation", models.ADAPTATIONS)
@pytest.mark.parametrize("bn_relu", [False, True])
def test_build_output_shape(images, adaptation, bn_relu):
    net = models.build(adaptation, width=4, bn_relu=bn_relu)
    assert net(images).shape == (2, 10)
    expected_in = 3 if adaptation == "none" else 32
    assert net.classifier.stem[0].in_channels == expected_in


def test_adaptation_networks_give_32_maps_at_full_resolution(images):
    assert models.PixelAdaptation(bn_relu=True)(images).shape == (2, 32, 32, 32)
    assert models.PixelAdaptation(bn_relu=False)(images).shape == (2, 32, 32, 32)
    assert models.BlockAdaptation()(images).shape == (2, 32, 32, 32)


def test_pixel_adaptation_layers_follow_the_switch():
    plain = models.PixelAdaptation(bn_relu=False)
    assert [type(m) for m in plain] == [torch.nn.Conv2d, torch.nn.Conv2d]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in plain] == [(3, 8, (1, 1)), (8, 32, (1, 1))]
    with_bn = models.PixelAdaptation(bn_relu=True)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in with_bn) == 2
    assert sum(isinstance(m, torch.nn.ReLU) for m in with_bn) == 2


@pytest.mark.parametrize("bn_relu", [False, True])
def test_pixel_adaptation_is_per_pixel_so_it_commutes_with_shift_and_flip(images, bn_relu):
    net = models.PixelAdaptation(bn_relu=bn_relu).eval()
    moved = images.roll(3, dims=-1).flip(-1)
    torch.testing.assert_close(net(moved), net(images).roll(3, dims=-1).flip(-1))


def test_block_adaptation_mixes_only_within_4x4_blocks(images):
    net = models.BlockAdaptation().eval()
    changed = images.clone()
    changed[:, :, 5, 6] += 1.0  # inside block (1, 1): rows/cols 4..7
    diff = (net(changed) - net(images)).abs().sum(1)[0]
    assert diff[4:8, 4:8].max() > 0
    diff[4:8, 4:8] = 0
    assert diff.max() == 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="adaptation"):
        models.build("blocky")
    with pytest.raises(ValueError, match="width"):
        models.resnet18(width=0)
    with pytest.raises(TypeError, match="bn_relu"):
        models.build("pixel", width=4, bn_relu="yes")

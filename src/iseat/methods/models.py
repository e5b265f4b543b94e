"""Classifiers used by the paper (PreActResNet18, WideResNet) and a small CNN for CPU runs.

Inputs are images in [0, 1]; as in the reference there is no normalisation layer.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


def make_activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"model.activation: unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


class SmallCNN(nn.Module):
    """All-convolutional CPU network: four 3x3 conv-BN-ReLU blocks of width w, 2w, 4w, 4w (w = 16),
    max-pools after the first and second (so most work runs at 8x8), global average pooling and a
    linear head: ~61 k parameters. It trains under the paper's budget (eps 8/255, PGD-10, lr 0.1,
    gamma 0.007)."""

    def __init__(self, num_classes: int = 10, activation: str = "relu", width: int = 16):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), make_activation(activation)]

        self.features = nn.Sequential(
            *block(3, width),
            nn.MaxPool2d(2),
            *block(width, 2 * width),
            nn.MaxPool2d(2),
            *block(2 * width, 4 * width),
            *block(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def global_average(features: torch.Tensor) -> torch.Tensor:
    """Global average pooling to one vector per sample. A mean rather than adaptive_avg_pool2d, whose
    CUDA backward has no deterministic implementation (runtime.deterministic would refuse it)."""
    return features.mean((2, 3))


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.act1 = make_activation(activation)
        self.act2 = make_activation(activation)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = self.act1(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, num_classes: int = 10, activation: str = "relu"):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [PreActBlock(cin, cout, stride, activation), PreActBlock(cout, cout, 1, activation)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.act = make_activation(activation)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.act(self.bn(self.layers(self.conv1(x))))
        return self.linear(global_average(out))


class WideBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, activation: str):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = make_activation(activation)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = make_activation(activation)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = self.act1(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(self.act2(self.bn2(self.conv1(out))))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-depth-width (Zagoruyko & Komodakis), the variant used by AT/AWP/ISEAT code."""

    def __init__(self, depth: int = 34, width: int = 10, num_classes: int = 10, activation: str = "relu"):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"model.depth: WideResNet depth must be 6n+4 (e.g. 28, 34), got {depth}")
        n = (depth - 4) // 6
        channels = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, channels[0], 3, 1, 1, bias=False)
        blocks, cin = [], channels[0]
        for cout, stride in zip(channels[1:], [1, 2, 2]):
            for i in range(n):
                blocks.append(WideBasicBlock(cin, cout, stride if i == 0 else 1, activation))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.act = make_activation(activation)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        out = self.act(self.bn(self.blocks(self.conv1(x))))
        return self.fc(global_average(out))


ARCHITECTURES = ("small_cnn", "preact_resnet18", "wide_resnet")


def build_model(arch: str, num_classes: int, activation: str = "relu", depth: int = 34, width: int = 10) -> nn.Module:
    """Build a model by its config name (`model.arch`)."""
    if arch == "small_cnn":
        return SmallCNN(num_classes, activation)
    if arch == "preact_resnet18":
        return PreActResNet18(num_classes, activation)
    if arch == "wide_resnet":
        return WideResNet(depth, width, num_classes, activation)
    raise ValueError(f"model.arch: unknown architecture {arch!r}; choose one of {list(ARCHITECTURES)}")

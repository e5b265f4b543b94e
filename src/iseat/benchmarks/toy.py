"""A small trained CNN on an easy synthetic 10-class image task, for tests and benchmarks of attacks.

Attack code must be exercised on a model that is partly robust: an untrained model is broken by
the first attack, so the later attacks never run. Each class is a smooth random colour pattern and
a sample is its pattern plus noise; a tiny CNN trained for a hundred SGD steps classifies them
well, and about half of the samples resist eps = 8/255. Images are 3x8x8 so that a full standard
AutoAttack (5000 Square queries per robust point) takes seconds on one CPU core.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10
IMAGE_SIZE = 8


class TinyCNN(nn.Module):
    """Two conv layers and a linear layer; works on any image size."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.classifier = nn.Linear(8 * width, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def prototypes(generator: torch.Generator, contrast: float, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """One smooth 3xSxS pattern per class, values in 0.5 +- contrast / 2."""
    coarse = torch.rand(num_classes, 3, 4, 4, generator=generator) - 0.5
    return 0.5 + contrast * F.interpolate(coarse, size=IMAGE_SIZE, mode="bilinear", align_corners=False)


def synthetic_images(n: int, protos: torch.Tensor, noise: float, generator: torch.Generator):
    """`n` labelled images: the class pattern plus Gaussian noise, clipped to [0, 1]."""
    y = torch.randint(len(protos), (n,), generator=generator)
    x = protos[y] + noise * torch.randn(n, *protos.shape[1:], generator=generator)
    return x.clamp(0, 1), y


def train_toy_model(
    steps: int = 100,
    width: int = 8,
    batch_size: int = 64,
    noise: float = 0.25,
    contrast: float = 0.8,
    seed: int = 0,
    n_test: int = 32,
):
    """Return (model in eval mode, x_test, y_test) for a `TinyCNN` trained with plain SGD."""
    generator = torch.Generator().manual_seed(seed)
    protos = prototypes(generator, contrast)
    torch.manual_seed(seed)
    model = TinyCNN(NUM_CLASSES, width)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        x, y = synthetic_images(batch_size, protos, noise, generator)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    x_test, y_test = synthetic_images(n_test, protos, noise, generator)
    return model.eval(), x_test, y_test

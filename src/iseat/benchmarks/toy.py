"""A small adversarially trained CNN on an easy synthetic 10-class image task, for tests and benchmarks.

Attack code must be exercised on a model that is partly robust (an untrained model is broken by the
first attack, so the later attacks never run). Each class is a smooth random colour pattern;
samples are the pattern plus noise. A few hundred PGD-AT steps of a narrow `SmallCNN` give a model
with high clean accuracy and part of it robust at eps = 8/255, in seconds on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attack import PGD
from ..method import Method, training_step
from ..models import SmallCNN

NUM_CLASSES = 10


def prototypes(generator: torch.Generator, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """One smooth 3x32x32 pattern per class, values in [0.2, 0.8]."""
    coarse = torch.rand(num_classes, 3, 4, 4, generator=generator)
    return 0.2 + 0.6 * F.interpolate(coarse, size=32, mode="bilinear", align_corners=False)


def synthetic_images(n: int, protos: torch.Tensor, noise: float, generator: torch.Generator):
    """`n` labelled images: the class pattern plus Gaussian noise, clipped to [0, 1]."""
    y = torch.randint(len(protos), (n,), generator=generator)
    x = protos[y] + noise * torch.randn(n, *protos.shape[1:], generator=generator)
    return x.clamp(0, 1), y


def train_toy_model(steps: int = 300, width: int = 8, batch_size: int = 64, noise: float = 0.25, seed: int = 0,
                    n_test: int = 32):
    """Return (model in eval mode, x_test, y_test): a `SmallCNN` trained with PGD-AT (3 steps) at 8/255."""
    generator = torch.Generator().manual_seed(seed)
    protos = prototypes(generator)
    torch.manual_seed(seed)
    model = SmallCNN(NUM_CLASSES, width=width)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    method = Method(attack=PGD(eps=8 / 255, step_size=3 / 255, steps=3))
    for _ in range(steps):
        x, y = synthetic_images(batch_size, protos, noise, generator)
        training_step(model, optimizer, x, y, method)
    x_test, y_test = synthetic_images(n_test, protos, noise, generator)
    return model.eval(), x_test, y_test

"""Training-time augmentation: random crop + flip (CIFAR), none (SVHN, digits), and IDBH (Li & Spratling, ICLR 2023).

Every augmentation maps one uint8 H x W x 3 image to a uint8 3 x H x W tensor and draws its randomness from
torch's global CPU generator, which the loaders seed per batch so that a batch is a pure function of
(seed, epoch, batch). Operations are torchvision's (`transforms.v2`); IDBH's colour/shape operations run on
PIL images as in the authors' code, so the pixel arithmetic is PIL's.

IDBH, weak variant (used for the `cifar10_idbh` setting), applied in this order:
1. horizontal flip, p = 0.5;
2. Cropshift, strength s uniform on the integers 0..10: s splits at random into a horizontal part cx (0..s)
   and a vertical part cy = s - cx; a random (W-cx) x (H-cy) window is cut out, zero-padded by cx on left
   and right and cy on top and bottom, and a random W x H window of that is kept (content shifts, black
   fills the rest);
3. one operation of the colour-biased space, each with probability 1/8: saturation x U(0.1, 1.9),
   brightness x U(0.5, 1.9), contrast x U(0.5, 1.9), sharpness x U(0.1, 1.9), autocontrast, equalize,
   shear by U(0.05, 0.15) radians (random sign, along x or y, nearest, fill 0), rotation by an integer
   1..10 degrees (random sign, nearest, fill 0);
4. random erasing, p = 0.5, area 0.02..0.33 of the image, aspect ratio 0.3..3.3, value 0.
The strong variant erases with p = 1; the SVHN variant uses Cropshift 0..8, the shape-biased space and
erasing p = 1 with area 0.02..0.5 (`IDBH_VARIANTS`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from iseat.data.registry import DATASETS

AUGMENTATIONS = ("none", "crop_flip", "idbh")

# (probability, operation, low, high): magnitudes uniform in [low, high], rotation integers low..high
COLOUR_BIASED = (
    (0.125, "saturation", 0.1, 1.9),
    (0.125, "brightness", 0.5, 1.9),
    (0.125, "contrast", 0.5, 1.9),
    (0.125, "sharpness", 0.1, 1.9),
    (0.125, "autocontrast", None, None),
    (0.125, "equalize", None, None),
    (0.125, "shear", 0.05, 0.15),
    (0.125, "rotate", 1, 10),
)
SHAPE_BIASED = (
    (0.08, "saturation", 0.1, 1.9),
    (0.08, "brightness", 0.5, 1.9),
    (0.04, "contrast", 0.5, 1.9),
    (0.08, "sharpness", 0.1, 1.9),
    (0.04, "autocontrast", None, None),
    (0.08, "equalize", None, None),
    (0.3, "shear", 0.05, 0.35),
    (0.3, "rotate", 1, 30),
)
IDBH_VARIANTS = {
    "weak": dict(cropshift=(0, 10), space=COLOUR_BIASED, erasing_p=0.5, erasing_scale=(0.02, 0.33)),
    "strong": dict(cropshift=(0, 10), space=COLOUR_BIASED, erasing_p=1.0, erasing_scale=(0.02, 0.33)),
    "svhn": dict(cropshift=(0, 8), space=SHAPE_BIASED, erasing_p=1.0, erasing_scale=(0.02, 0.5)),
}


def resolve_augmentation(augmentation: str, dataset: str) -> str:
    """`auto` is the data set's own (registry: crop_flip for CIFAR and npz sets, none for SVHN and digits)."""
    if augmentation == "auto":
        return DATASETS[dataset].augmentation if dataset in DATASETS else "crop_flip"
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"data.augmentation: {augmentation!r} is not one of {['auto', *AUGMENTATIONS]}")
    return augmentation


def randint(low: int, high: int) -> int:
    """An integer uniform on low..high inclusive, from torch's generator."""
    return int(torch.randint(low, high + 1, (1,)).item())


def uniform(low: float, high: float) -> float:
    return float(torch.empty(1).uniform_(low, high).item())


def random_sign() -> int:
    return -1 if randint(0, 1) else 1


class CropShift:
    """Cropshift (IDBH step 2): crop a random window smaller by s pixels, zero-pad it back, shift at random."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high

    def __call__(self, img):
        height, width = F.get_size(img)
        strength = randint(self.low, self.high)
        crop_x = randint(0, strength)
        crop_y = strength - crop_x
        img = F.crop(img, randint(0, crop_y), randint(0, crop_x), height - crop_y, width - crop_x)
        img = F.pad(img, [crop_x, crop_y], fill=0)
        return F.crop(img, randint(0, crop_y), randint(0, crop_x), height, width)


class ColourShapeOp:
    """IDBH step 3: one operation drawn from a (probability, operation, magnitude range) space."""

    def __init__(self, space):
        self.space = space
        self.cumulative = np.cumsum([p for p, *_ in space])

    def __call__(self, img):
        roll = float(torch.rand(1).item()) * self.cumulative[-1]
        choice = min(int(np.searchsorted(self.cumulative, roll, side="right")), len(self.space) - 1)
        _, name, low, high = self.space[choice]
        return self.apply(img, name, low, high)

    @staticmethod
    def apply(img, name: str, low, high):
        nearest = v2.InterpolationMode.NEAREST
        if name == "rotate":
            return F.rotate(img, random_sign() * randint(low, high), interpolation=nearest, fill=0)
        if name == "shear":
            degrees = math.degrees(random_sign() * uniform(low, high))
            shear = [degrees, 0.0] if randint(0, 1) else [0.0, degrees]
            return F.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, interpolation=nearest, fill=0)
        if name == "autocontrast":
            return F.autocontrast(img)
        if name == "equalize":
            return F.equalize(img)
        adjust = {
            "saturation": F.adjust_saturation,
            "brightness": F.adjust_brightness,
            "contrast": F.adjust_contrast,
            "sharpness": F.adjust_sharpness,
        }[name]
        return adjust(img, uniform(low, high))


def idbh(variant: str = "weak"):
    """The IDBH pipeline of `variant` (weak, strong, svhn): uint8 HWC array -> uint8 CHW tensor."""
    spec = IDBH_VARIANTS[variant]
    return v2.Compose(
        [
            Image.fromarray,
            v2.RandomHorizontalFlip(p=0.5),
            CropShift(*spec["cropshift"]),
            ColourShapeOp(spec["space"]),
            v2.PILToTensor(),
            v2.RandomErasing(p=spec["erasing_p"], scale=spec["erasing_scale"], ratio=(0.3, 3.3), value=0),
        ]
    )


class CropFlip:
    """Random crop of the image size after zero-padding by `padding`, then horizontal flip (p = 0.5).

    The same distribution as v2.RandomCrop(size, padding) + v2.RandomHorizontalFlip(), through torchvision's
    functional ops: twice as fast per image, which matters on fast GPUs.
    """

    def __init__(self, padding: int = 4):
        self.padding = padding

    def __call__(self, img: np.ndarray) -> torch.Tensor:
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
        height, width = image.shape[1:]
        padded = F.pad(image, [self.padding], fill=0)
        top, left = randint(0, 2 * self.padding), randint(0, 2 * self.padding)
        image = F.crop(padded, top, left, height, width)
        return F.horizontal_flip(image) if randint(0, 1) else image


def build_augmentation(name: str, dataset: str = "cifar10"):
    """The per-image augmentation for a resolved name, or None for `none`. IDBH on SVHN uses its SVHN variant."""
    if name == "none":
        return None
    if name == "crop_flip":
        return CropFlip()
    if name == "idbh":
        return idbh(DATASETS[dataset].idbh_variant if dataset in DATASETS else "weak")
    raise ValueError(f"data.augmentation: {name!r} is not one of {list(AUGMENTATIONS)}")


def to_float_batch(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float32 N x 3 x H x W in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)


def augment_batch(images: np.ndarray, augmentation) -> torch.Tensor:
    """Apply `augmentation` to each image; float32 N x 3 x H x W in [0, 1]."""
    if augmentation is None:
        return to_float_batch(images)
    return torch.stack([augmentation(img) for img in images]).float().div_(255)

"""Augmentation: crop + flip, IDBH (weak) and its parts keep shape, dtype and range; seeded, they repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from iseat.data.augmentation import (
    COLOUR_BIASED,
    IDBH_VARIANTS,
    ColourShapeOp,
    CropShift,
    augment_batch,
    build_augmentation,
    resolve_augmentation,
)


def batch(n=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["crop_flip", "idbh"])
def test_output_keeps_shape_dtype_and_range(name):
    images = batch()
    torch.manual_seed(0)
    out = augment_batch(images, build_augmentation(name))
    assert out.shape == (64, 3, 32, 32) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    plain = augment_batch(images, None)
    assert not torch.equal(out, plain)
    torch.manual_seed(0)
    assert torch.equal(out, augment_batch(images, build_augmentation(name)))


def test_every_colour_shape_operation_keeps_a_uint8_image():
    img = Image.fromarray(batch(1)[0])
    for _, name, low, high in COLOUR_BIASED:
        out = np.asarray(ColourShapeOp.apply(img, name, low, high))
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8, name


def test_cropshift_shifts_content_and_fills_black():
    image = np.full((32, 32, 3), 200, dtype=np.uint8)
    torch.manual_seed(1)
    shifted = [np.asarray(CropShift(10, 10)(Image.fromarray(image))) for _ in range(20)]
    for out in shifted:
        assert out.shape == (32, 32, 3)
        black = (out == 0).all(axis=2)
        assert black.any() and set(np.unique(out)) <= {0, 200}
    assert np.array_equal(np.asarray(CropShift(0, 0)(Image.fromarray(image))), image)


def test_idbh_weak_parameters_are_the_papers():
    weak = IDBH_VARIANTS["weak"]
    assert weak["cropshift"] == (0, 10) and weak["erasing_p"] == 0.5 and weak["erasing_scale"] == (0.02, 0.33)
    assert [p for p, *_ in weak["space"]] == [0.125] * 8
    assert IDBH_VARIANTS["strong"]["erasing_p"] == 1.0
    assert sum(p for p, *_ in IDBH_VARIANTS["svhn"]["space"]) == pytest.approx(1.0)


def test_auto_augmentation_per_dataset():
    assert [resolve_augmentation("auto", d) for d in ("cifar10", "cifar100", "npz", "svhn", "digits")] == [
        "crop_flip",
        "crop_flip",
        "crop_flip",
        "none",
        "none",
    ]
    assert resolve_augmentation("idbh", "cifar10") == "idbh" and build_augmentation("none") is None


def test_crop_flip_is_a_shifted_possibly_mirrored_window_of_the_padded_image():
    image = batch(1, seed=3)[0]
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    torch.manual_seed(2)
    crop_flip = build_augmentation("crop_flip")
    seen = set()
    for _ in range(40):
        out = crop_flip(image).permute(1, 2, 0).numpy()
        matches = [
            (top, left, f)
            for top in range(9)
            for left in range(9)
            for f in (0, 1)
            if np.array_equal(
                out,
                (
                    padded[top : top + 32, left : left + 32, :][:, ::-1]
                    if f
                    else padded[top : top + 32, left : left + 32, :]
                ),
            )
        ]
        assert matches, "not a window of the padded image"
        seen.update(matches)
    assert {f for *_, f in seen} == {0, 1} and len({(top, left) for top, left, _ in seen}) > 10

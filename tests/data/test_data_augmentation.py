"""Flips and re-scaling: known points move where the formula says, image and label stay aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from npcseg.data.augmentation import AugmentationConfig, SliceTransform, apply_transform, augment, draw_transform

SIZE = 64


def gaussian(centre_y: float, centre_x: float, sigma: float = 2.0, size: int = SIZE) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    blob = np.exp(-((yy - centre_y) ** 2 + (xx - centre_x) ** 2) / (2 * sigma**2))
    return torch.from_numpy(blob.astype(np.float32))[None]


def disc(centre_y: float, centre_x: float, radius: float, size: int = SIZE) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size]
    return torch.from_numpy(((yy - centre_y) ** 2 + (xx - centre_x) ** 2 <= radius**2).astype(np.float32))[None]


def centroid(array: torch.Tensor) -> np.ndarray:
    values = array[0].double().numpy()
    yy, xx = np.mgrid[: values.shape[0], : values.shape[1]]
    return np.array([(yy * values).sum(), (xx * values).sum()]) / values.sum()


def test_left_right_flip_mirrors_x_and_up_down_mirrors_y() -> None:
    image = torch.zeros(2, SIZE, SIZE)
    image[:, 10, 3] = 1.0
    label = image[:1].clone()
    flipped, flipped_label = apply_transform(image, label, SliceTransform(flip_left_right=True))
    assert flipped[:, 10, SIZE - 1 - 3].eq(1).all() and flipped.sum() == 2
    assert flipped_label[0, 10, SIZE - 1 - 3] == 1
    flipped, flipped_label = apply_transform(image, label, SliceTransform(flip_up_down=True))
    assert flipped[:, SIZE - 1 - 10, 3].eq(1).all() and flipped_label[0, SIZE - 1 - 10, 3] == 1


@pytest.mark.parametrize("scale", [0.8, 0.93, 1.1, 1.25])
def test_rescale_moves_a_point_away_from_the_centre_by_the_factor(scale: float) -> None:
    point = np.array([20.0, 41.0])
    centre = (SIZE - 1) / 2
    image = gaussian(*point)
    label = disc(*point, radius=4)
    zoomed, zoomed_label = apply_transform(image, label, SliceTransform(scale=scale))
    expected = centre + scale * (point - centre)
    np.testing.assert_allclose(centroid(zoomed), expected, atol=0.05)
    np.testing.assert_allclose(centroid(zoomed_label), expected, atol=0.5)
    # the blob's spread scales too: its mass grows by scale^2 (bilinear keeps a smooth blob's integral)
    assert float(zoomed.sum()) == pytest.approx(float(image.sum()) * scale**2, rel=0.02)


@pytest.mark.parametrize("interpolation", ["nearest", "linear_threshold"])
def test_label_stays_binary_and_keeps_its_area_scaled(interpolation: str) -> None:
    label = disc(30, 36, radius=9)
    image = label.repeat(2, 1, 1)
    _, zoomed_label = apply_transform(image, label, SliceTransform(scale=1.2), interpolation)  # type: ignore[arg-type]
    assert set(torch.unique(zoomed_label).tolist()) <= {0.0, 1.0}
    assert float(zoomed_label.sum()) == pytest.approx(float(label.sum()) * 1.44, rel=0.05)


def test_random_transforms_keep_image_and_label_aligned() -> None:
    config = AugmentationConfig(flip_up_down_probability=0.5, scale_range=(0.8, 1.2))
    generator = torch.Generator().manual_seed(3)
    label = disc(22, 40, radius=6)
    image = torch.cat([label * 0.7 + 0.1, label * 0.4]) * (label > 0)  # the image blob is exactly the disc
    seen_flips = set()
    for _ in range(12):
        transform = draw_transform(config, generator)
        seen_flips.add((transform.flip_left_right, transform.flip_up_down))
        new_image, new_label = apply_transform(image, label, transform)
        np.testing.assert_allclose(centroid(new_image[:1]), centroid(new_label), atol=0.35)
    assert len(seen_flips) >= 3  # the draws covered several flip combinations


def test_augment_is_deterministic_in_the_generator_and_draws_a_fixed_count() -> None:
    config = AugmentationConfig()
    image, label = gaussian(30, 20).repeat(2, 1, 1), disc(30, 20, 5)
    first = augment(image, label, config, torch.Generator().manual_seed(7))
    second = augment(image, label, config, torch.Generator().manual_seed(7))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    generator = torch.Generator().manual_seed(7)
    augment(image, label, config, generator)
    reference = torch.Generator().manual_seed(7)
    torch.rand(4, generator=reference, dtype=torch.float64)
    assert torch.equal(generator.get_state(), reference.get_state())


def test_disabled_augmentation_is_the_identity_and_draws_nothing() -> None:
    image, label = gaussian(30, 20), disc(30, 20, 5)
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    out_image, out_label = augment(image, label, AugmentationConfig(enabled=False), generator)
    assert out_image is image and out_label is label
    assert torch.equal(generator.get_state(), state)


def test_draws_follow_the_probabilities_and_range() -> None:
    config = AugmentationConfig(flip_left_right_probability=0.5, scale_range=(0.9, 1.1))
    generator = torch.Generator().manual_seed(0)
    transforms = [draw_transform(config, generator) for _ in range(2000)]
    flips = np.mean([transform.flip_left_right for transform in transforms])
    scales = np.array([transform.scale for transform in transforms])
    assert 0.46 < flips < 0.54
    assert not any(transform.flip_up_down for transform in transforms)
    assert scales.min() >= 0.9 and scales.max() <= 1.1 and abs(scales.mean() - 1.0) < 0.01


@pytest.mark.parametrize(
    "options",
    [
        {"flip_left_right_probability": 1.5},
        {"scale_range": (1.2, 0.8)},
        {"scale_range": (0.0, 1.1)},
        {"label_interpolation": "cubic"},
    ],
)
def test_bad_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="augmentation"):
        AugmentationConfig(**options)  # type: ignore[arg-type]

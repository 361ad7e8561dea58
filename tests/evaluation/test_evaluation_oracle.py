"""Agreement with SimpleITK's overlap and Hausdorff filters (an independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from npcseg.evaluation import compute_metrics


def _ellipsoid(shape: tuple[int, int, int], centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
    grids = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return np.asarray(
        sum(((grid - c) / r) ** 2 for grid, c, r in zip(grids, centre, radii, strict=True)) <= 1.0, dtype=bool
    )


def _image(mask: np.ndarray, spacing_zyx: tuple[float, float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(spacing_zyx[::-1])  # ITK order (x, y, z)
    return image


CASES = [
    ((20, 48, 40), (10, 24, 20), (6, 12, 10), (11, 22, 23), (5, 14, 9), (4.0, 0.93, 0.93)),
    ((16, 40, 40), (8, 20, 20), (5, 10, 12), (8, 20, 20), (3, 6, 7), (3.0, 0.5, 0.7)),  # nested
    ((12, 30, 50), (6, 15, 15), (4, 8, 8), (6, 15, 33), (4, 8, 8), (1.0, 1.0, 1.0)),  # apart
]


@pytest.mark.parametrize(("shape", "centre_a", "radii_a", "centre_b", "radii_b", "spacing"), CASES)
def test_against_simpleitk(
    shape: tuple[int, int, int],
    centre_a: tuple[float, ...],
    radii_a: tuple[float, ...],
    centre_b: tuple[float, ...],
    radii_b: tuple[float, ...],
    spacing: tuple[float, float, float],
) -> None:
    prediction = _ellipsoid(shape, centre_a, radii_a)
    reference = _ellipsoid(shape, centre_b, radii_b)
    metrics = compute_metrics(prediction, reference, spacing)

    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(_image(prediction, spacing), _image(reference, spacing))  # source, target
    assert metrics.dice == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)
    assert metrics.sensitivity == pytest.approx(1.0 - overlap.GetFalseNegativeError(), abs=1e-12)
    # ITK's "false positive error" is FP / background of the target (a rate); the false discovery rate is
    # FP / (TP + FP) = 1 - precision
    assert metrics.precision == pytest.approx(1.0 - overlap.GetFalseDiscoveryRate(), abs=1e-12)
    jaccard = overlap.GetJaccardCoefficient()
    assert metrics.dice == pytest.approx(2 * jaccard / (1 + jaccard), abs=1e-12)

    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_image(prediction, spacing), _image(reference, spacing))
    assert metrics.hausdorff_mm == pytest.approx(hausdorff.GetHausdorffDistance(), rel=1e-6)

    statistics = sitk.StatisticsImageFilter()
    statistics.Execute(_image(reference, spacing))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    assert metrics.volume_reference_ml == pytest.approx(statistics.GetSum() * voxel_ml)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hausdorff_of_random_blobs_against_simpleitk(seed: int) -> None:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    prediction = ndimage.gaussian_filter(rng.random((12, 40, 40)), 3) > 0.52
    reference = ndimage.gaussian_filter(rng.random((12, 40, 40)), 3) > 0.52
    spacing = (4.0, 0.93, 0.93)
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(_image(prediction, spacing), _image(reference, spacing))
    metrics = compute_metrics(prediction, reference, spacing)
    assert metrics.hausdorff_mm == pytest.approx(hausdorff.GetHausdorffDistance(), rel=1e-9)

"""Speed of the per-patient metrics on a clinical-sized volume (512 x 512 x 45, a tumour-sized blob).

Prints JSON: seconds for :func:`npcseg.evaluation.hausdorff_distance_95` and
:func:`npcseg.evaluation.compute_metrics` (surface distances on the masks' bounding box), for the baseline the
bounding box replaces (HD95 from distance transforms over the whole volume) and for one whole-volume Euclidean
distance transform alone, all measured in the same run, and the ratios of HD95's time to both baselines.
Exits with status 1 if HD95 or ``compute_metrics`` takes 1 s or more (best of three runs).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from scipy import ndimage

from npcseg.evaluation import compute_metrics, hausdorff_distance_95

SHAPE = (45, 512, 512)
SPACING_MM = (4.0, 0.48, 0.48)
LIMIT_S = 1.0
T = TypeVar("T")


def _blob(seed: int) -> np.ndarray:
    """A lumpy tumour-like blob of about 30 ml around the volume's centre."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in (24, 200, 200)), indexing="ij")
    radius = np.sqrt(
        ((z - 12) * SPACING_MM[0]) ** 2 + ((y - 100) * SPACING_MM[1]) ** 2 + ((x - 100) * SPACING_MM[2]) ** 2
    )
    noise = ndimage.gaussian_filter(rng.standard_normal((24, 200, 200)).astype(np.float32), (1, 8, 8))
    mask = np.zeros(SHAPE, dtype=bool)
    mask[10:34, 150:350, 160:360] = radius + 60.0 * noise < 20.0
    return mask


def _whole_volume_hd95(prediction: np.ndarray, reference: np.ndarray) -> float:
    structure = ndimage.generate_binary_structure(3, 1)
    surfaces = [mask & ~ndimage.binary_erosion(mask, structure=structure) for mask in (prediction, reference)]
    forward = ndimage.distance_transform_edt(~surfaces[1], sampling=SPACING_MM)[surfaces[0]]
    backward = ndimage.distance_transform_edt(~surfaces[0], sampling=SPACING_MM)[surfaces[1]]
    return float(max(np.percentile(forward, 95), np.percentile(backward, 95)))


def _whole_volume_transform(mask: np.ndarray) -> np.ndarray:
    """One Euclidean distance transform over the whole volume (HD95 on the whole volume needs two)."""
    return np.asarray(ndimage.distance_transform_edt(~mask, sampling=SPACING_MM))


def _best_of(repeats: int, function: Callable[..., T], *args: object) -> tuple[float, T]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result  # repeats >= 1


def main() -> int:
    reference = _blob(0)
    prediction = np.roll(ndimage.binary_dilation(reference, iterations=2), (1, 5, -4), axis=(0, 1, 2))
    hd95_seconds, hd95 = _best_of(3, hausdorff_distance_95, prediction, reference, SPACING_MM)
    seconds, metrics = _best_of(3, compute_metrics, prediction, reference, SPACING_MM)
    baseline_seconds, baseline_hd95 = _best_of(1, _whole_volume_hd95, prediction, reference)
    transform_seconds, _ = _best_of(1, _whole_volume_transform, reference)
    assert abs(metrics.hd95_mm - baseline_hd95) < 1e-9 and hd95 == metrics.hd95_mm
    passed = seconds < LIMIT_S and hd95_seconds < LIMIT_S
    report = {
        "shape_zyx": SHAPE,
        "reference_ml": round(metrics.volume_reference_ml, 2),
        "hd95_mm": round(metrics.hd95_mm, 3),
        "hd95_s": round(hd95_seconds, 4),
        "compute_metrics_s": round(seconds, 4),
        "whole_volume_hd95_s": round(baseline_seconds, 4),
        "whole_volume_edt_s": round(transform_seconds, 4),
        "hd95_over_whole_volume_hd95": round(hd95_seconds / baseline_seconds, 4),
        "hd95_over_one_whole_volume_edt": round(hd95_seconds / transform_seconds, 4),
        "speedup": round(baseline_seconds / seconds, 1),
        "limit_s": LIMIT_S,
        "passed": passed,
    }
    print(json.dumps(report, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

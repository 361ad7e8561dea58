"""Per-volume normalisation: min-max and percentile clipping against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from npcseg.preprocessing.normalization import IntensityScaling, fit_normalization, normalize


def test_minmax_spans_exactly_zero_to_one_and_is_affine():
    rng = np.random.default_rng(0)
    volume = rng.normal(400.0, 120.0, size=(4, 16, 16)).astype(np.float32)
    values, scaling = normalize(volume, "minmax")
    assert values.dtype == np.float32
    assert values.min() == 0.0 and values.max() == 1.0
    assert scaling.low == pytest.approx(float(volume.min())) and scaling.high == pytest.approx(float(volume.max()))
    expected = (volume.astype(np.float64) - volume.min()) / (volume.max() - volume.min())
    np.testing.assert_allclose(values, expected, atol=1e-6)


def test_percentile_clip_closed_form():
    volume = np.arange(101, dtype=np.float32).reshape(1, 1, 101)  # the p-th percentile of 0..100 is p
    values, scaling = normalize(volume, "percentile", percentile_low=10.0, percentile_high=90.0)
    assert (scaling.low, scaling.high) == (10.0, 90.0)
    expected = (np.clip(np.arange(101.0), 10.0, 90.0) - 10.0) / 80.0
    np.testing.assert_allclose(values.ravel(), expected, atol=1e-7)
    assert np.all(values.ravel()[:11] == 0.0) and np.all(values.ravel()[90:] == 1.0)


def test_percentile_interpolates_between_samples():
    volume = np.array([0.0, 10.0, 20.0, 1000.0])  # 95th percentile: linear between 20 and 1000 at 0.85
    scaling = fit_normalization(volume, "percentile", percentile_low=0.0, percentile_high=95.0)
    assert scaling.low == 0.0 and scaling.high == pytest.approx(20.0 + 0.85 * 980.0)


def test_constant_volume_maps_to_zero_and_none_is_the_identity():
    values, scaling = normalize(np.full((2, 3, 3), 7.0), "minmax")
    assert np.all(values == 0.0) and scaling.low == scaling.high == 7.0
    volume = np.array([[[-3.0, 5.5]]])
    values, scaling = normalize(volume, "none")
    np.testing.assert_array_equal(values, volume.astype(np.float32))
    assert scaling.method == "none"


def test_scaling_round_trips_through_dict():
    scaling = IntensityScaling(method="percentile", low=1.5, high=99.25)
    assert IntensityScaling.from_dict(scaling.to_dict()) == scaling


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="unknown normalisation"):
        fit_normalization(np.ones(3), "zscore")
    with pytest.raises(ValueError, match="percentiles"):
        fit_normalization(np.ones(3), "percentile", percentile_low=50.0, percentile_high=40.0)
    with pytest.raises(ValueError, match="NaN"):
        fit_normalization(np.array([1.0, np.nan]), "minmax")

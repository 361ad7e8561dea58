"""``dataset_max`` normalisation (SeqSeg): every case divided by the sequence's maximum over the cohort."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from npcseg.io.cohort import load_case
from npcseg.preprocessing.cache import load_cache_config, load_preprocessed, preprocess_cohort
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.preprocessing.normalization import dataset_maxima, fit_normalization
from npcseg.preprocessing.pipeline import preprocess_case

CONFIG = PreprocessingConfig(registration_source="identity", slice_size=40, normalization="dataset_max")


def _image_max(path) -> float:
    # a copy, not a view: a view of the temporary image would read freed memory once the image is collected
    return float(sitk.GetArrayFromImage(sitk.ReadImage(str(path), sitk.sitkFloat32)).max())


def test_scaling_is_division_by_the_dataset_maximum_clipped_to_unit_range():
    scaling = fit_normalization(np.array([0.0, 50.0]), "dataset_max", dataset_maximum=200.0)
    np.testing.assert_allclose(scaling.apply(np.array([-10.0, 0.0, 50.0, 200.0, 400.0])), [0, 0, 0.25, 1, 1])


@pytest.mark.parametrize("maximum", [None, 0.0, -1.0, float("nan")])
def test_a_missing_or_non_positive_maximum_is_refused(maximum):
    with pytest.raises(ValueError, match="dataset maximum"):
        fit_normalization(np.ones(3), "dataset_max", dataset_maximum=maximum)


def test_config_needs_a_positive_maximum_for_every_sequence():
    with pytest.raises(ValueError, match="missing"):
        PreprocessingConfig(normalization="dataset_max", dataset_max={"t2": 1.0})
    with pytest.raises(ValueError, match="bad"):
        PreprocessingConfig(normalization="dataset_max", dataset_max={"t1": 1.0, "t2": 0.0})


def test_seqseg_preset_uses_the_dataset_maximum():
    assert PreprocessingConfig.seqseg().normalization == "dataset_max"


def test_cohort_maxima_are_measured_recorded_and_shared_by_every_case(make_case, tmp_path):
    make_case("case001")
    make_case("case002", size_xyz=(60, 70, 5))
    cohort = tmp_path / "cohort"
    # make the two cases differ in brightness, so a per-volume scaling and the dataset one disagree
    t2 = cohort / "cases" / "case002" / "t2.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(t2), sitk.sitkFloat32) * 3.0, str(t2))
    cases = [load_case(cohort / "cases" / case_id) for case_id in ("case001", "case002")]
    expected = {sequence: max(_image_max(case.image(sequence)) for case in cases) for sequence in CONFIG.sequences}
    assert dataset_maxima((s, case.image(s)) for case in cases for s in CONFIG.sequences) == pytest.approx(expected)

    out = tmp_path / "out"
    preprocess_cohort(cohort, out, CONFIG, progress=False)
    saved = load_cache_config(out)
    assert saved.dataset_max == pytest.approx(expected)
    for case in cases:
        cached = load_preprocessed(out, case.case_id)
        for sequence in CONFIG.sequences:
            assert cached.record["normalization"][sequence] == {
                "method": "dataset_max",
                "low": 0.0,
                "high": pytest.approx(expected[sequence]),
            }
    # the brighter case reaches 1 on T2, the darker one only about a third of it
    darker = load_preprocessed(out, "case001").image[CONFIG.sequences.index("t2")].max()
    brighter = load_preprocessed(out, "case002").image[CONFIG.sequences.index("t2")].max()
    assert brighter == pytest.approx(1.0, abs=1e-6)
    assert darker < 0.5
    # a new patient pre-processed with the recorded config is scaled by the training maxima
    fresh = preprocess_case(cases[0], saved)
    np.testing.assert_array_equal(fresh.image, load_preprocessed(out, "case001").image)
    # a rerun measures the same maxima and is accepted
    preprocess_cohort(cohort, out, CONFIG, progress=False)


def test_a_case_without_maxima_is_refused(make_case, tmp_path):
    built = make_case("case001")
    del built
    case = load_case(tmp_path / "cohort" / "cases" / "case001")
    with pytest.raises(ValueError, match="dataset maximum"):
        preprocess_case(case, CONFIG)

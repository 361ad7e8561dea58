"""Prediction speed options: worker processes (same masks, resumable, no partial files), the channels_last layout
and batch size (same probabilities), the fast registration choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from inference_builders import build_case, make_run, oblique_lps_direction
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.config import config_differences, config_to_dict
from npcseg.inference.cohort import predict_cohort, remove_temporary_files
from npcseg.inference.predictor import load_predictor, prediction_registration
from npcseg.io.cohort import cases_of
from npcseg.preprocessing.pipeline import preprocess_case
from npcseg.registration.config import RegistrationConfig

CASES = ("case001", "case002", "case003")


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    root = tmp_path / "cohort"
    build_case(root / "cases" / "case001", size_xyz=(64, 48, 4))
    build_case(root / "cases" / "case002", direction=oblique_lps_direction(), size_xyz=(48, 64, 5))
    build_case(root / "cases" / "case003", size_xyz=(64, 64, 3), spacing_xyz=(0.6, 0.6, 3.0))
    return root


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_two_workers_write_the_masks_of_one_worker_and_a_rerun_skips_them(tmp_path: Path, cohort: Path) -> None:
    make_run(tmp_path / "run", seed=3)
    single = predict_cohort([tmp_path / "run"], cohort, tmp_path / "one", write_probability=True, num_threads=1)
    options = ["predict", "-m", str(tmp_path / "run"), "-i", str(cohort), "-o", str(tmp_path / "two"), "--probability"]
    result = CliRunner().invoke(app, [*options, "--workers", "2", "--threads", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "predicted 3 case(s) (0 already done)" in result.output
    parallel = json.loads((tmp_path / "two" / "predict.json").read_text())
    assert parallel["status"] == "complete" and parallel["settings"]["num_workers"] == 2
    assert list(parallel["cases"]) == list(single["cases"]) == list(CASES)
    for case_id in CASES:
        one, two = _array(tmp_path / "one" / f"{case_id}.nii.gz"), _array(tmp_path / "two" / f"{case_id}.nii.gz")
        assert np.array_equal(one, two) and 0 < one.sum() < one.size  # some foreground, not all
        np.testing.assert_array_equal(
            _array(tmp_path / "one" / f"{case_id}_probability.nii.gz"),
            _array(tmp_path / "two" / f"{case_id}_probability.nii.gz"),
        )
        assert parallel["cases"][case_id]["foreground_voxels"] == single["cases"][case_id]["foreground_voxels"]

    # A killed run: one mask missing and a temporary file left; the rerun predicts only that case and cleans up.
    (tmp_path / "two" / "case002.nii.gz").unlink()
    leftover = tmp_path / "two" / ".case002.nii.gz.tmp-abc123.nii.gz"
    leftover.write_bytes(b"half a file")
    before = {
        case_id: (tmp_path / "two" / f"{case_id}.nii.gz").stat().st_mtime_ns for case_id in ("case001", "case003")
    }
    again = predict_cohort(
        [tmp_path / "run"], cohort, tmp_path / "two", write_probability=True, num_threads=1, num_workers=2
    )
    assert again["num_skipped"] == 2 and again["cases"]["case002"]["status"] == "predicted"
    assert not leftover.exists()
    assert np.array_equal(_array(tmp_path / "two" / "case002.nii.gz"), _array(tmp_path / "one" / "case002.nii.gz"))
    for case_id, mtime in before.items():
        assert (tmp_path / "two" / f"{case_id}.nii.gz").stat().st_mtime_ns == mtime  # skipped, not rewritten


def test_temporary_files_are_found_and_outputs_kept(tmp_path: Path) -> None:
    (tmp_path / "case001.nii.gz").write_bytes(b"done")
    (tmp_path / ".case001.nii.gz.tmp-x1.nii.gz").write_bytes(b"partial")
    (tmp_path / ".predict.json.tmp-y2.json").write_text("{")
    removed = remove_temporary_files(tmp_path)
    assert sorted(path.name for path in removed) == [".case001.nii.gz.tmp-x1.nii.gz", ".predict.json.tmp-y2.json"]
    assert [path.name for path in tmp_path.iterdir()] == ["case001.nii.gz"]


def test_a_bad_worker_count_is_refused(tmp_path: Path, cohort: Path) -> None:
    make_run(tmp_path / "run")
    with pytest.raises(ValueError, match="num_workers"):
        predict_cohort([tmp_path / "run"], cohort, tmp_path / "out", num_workers=0)


def test_fast_registration_only_cheapens_the_refinement_and_is_part_of_the_fingerprint(
    tmp_path: Path, cohort: Path
) -> None:
    trained = RegistrationConfig()
    fast = prediction_registration(trained, "fast")
    assert (fast.refine_sampling_fraction, fast.refine_max_iterations, fast.name) == (0.1, 1, "default+fast")
    assert (
        config_differences(config_to_dict(trained), config_to_dict(fast))
        and prediction_registration(trained, "trained") is trained
    )
    with pytest.raises(ValueError, match="unknown registration choice"):
        prediction_registration(trained, "quick")
    make_run(tmp_path / "run")  # identity registration: the tiny cases are too small to register
    predictor = load_predictor([tmp_path / "run"], registration="fast")
    assert predictor.prediction_preprocessing.registration == fast
    assert predictor.describe()["registration"] == "fast"
    predict_cohort([tmp_path / "run"], cohort, tmp_path / "out", num_threads=1)
    with pytest.raises(ValueError, match="registration"):  # no mixing of two registrations in one folder
        predict_cohort([tmp_path / "run"], cohort, tmp_path / "out", num_threads=1, registration="fast")


def test_channels_last_and_batch_size_do_not_change_the_probabilities(tmp_path: Path, cohort: Path) -> None:
    make_run(tmp_path / "run", seed=5)
    case = cases_of(cohort)[1]
    reference = load_predictor([tmp_path / "run"], channels_last=False, batch_size=8)
    preprocessed = preprocess_case(case, reference.prediction_preprocessing)
    expected = reference.predict_preprocessed(preprocessed)
    for batch_size in (1, 2, 3):
        fast = load_predictor([tmp_path / "run"], channels_last=True, batch_size=batch_size)
        # other convolution kernels sum in another order: measured differences up to 3e-5 in probability
        np.testing.assert_allclose(fast.predict_preprocessed(preprocessed), expected, rtol=0, atol=1e-4)

"""Predicting a cohort or a case folder into an output folder, through the library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from inference_builders import build_case, make_run, oblique_lps_direction
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.inference.cohort import predict_cohort


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    """Two cases: an axial one and an oblique LPS one."""
    root = tmp_path / "cohort"
    build_case(root / "cases" / "case001", size_xyz=(64, 48, 4))
    build_case(root / "cases" / "case002", direction=oblique_lps_direction(), size_xyz=(48, 64, 5))
    return root


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def test_writes_masks_on_t2_grids_and_a_record(tmp_path: Path, cohort: Path) -> None:
    make_run(tmp_path / "run")
    before = _snapshot(cohort)
    summary = predict_cohort([tmp_path / "run"], cohort, tmp_path / "out")
    assert _snapshot(cohort) == before  # the input is never written to
    for case_id in ("case001", "case002"):
        mask = sitk.ReadImage(str(tmp_path / "out" / f"{case_id}.nii.gz"))
        t2 = sitk.ReadImage(str(cohort / "cases" / case_id / "t2.nii.gz"))
        assert mask.GetPixelID() == sitk.sitkUInt8
        # exact in memory (test_inference_predictor); through a NIfTI file the direction moves by ~1e-9
        assert mask.GetSize() == t2.GetSize()
        np.testing.assert_allclose(mask.GetSpacing(), t2.GetSpacing(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(mask.GetOrigin(), t2.GetOrigin(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(mask.GetDirection(), t2.GetDirection(), rtol=0, atol=1e-6)
    assert not (tmp_path / "out" / "case001_probability.nii.gz").exists()
    written = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert written == summary
    assert written["status"] == "complete" and written["num_cases"] == 2 and written["num_skipped"] == 0
    assert {"npcseg", "torch", "numpy", "SimpleITK", "python"} <= set(written["versions"])
    assert written["settings"]["runs"][0]["run_dir"] == str((tmp_path / "run").resolve())
    assert written["settings"]["postprocessing"]["mode"] == "drop_single_slice"
    entry = written["cases"]["case002"]
    assert entry["status"] == "predicted" and entry["num_slices"] == 5
    assert {"register", "preprocess", "network", "to_original", "postprocess", "write", "total"} <= set(
        entry["seconds"]
    )
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "case002.nii.gz")))
    assert entry["foreground_voxels"] == int(values.sum())


def test_a_rerun_skips_complete_cases_and_adds_missing_probability_maps(tmp_path: Path, cohort: Path) -> None:
    make_run(tmp_path / "run")
    out = tmp_path / "out"
    predict_cohort([tmp_path / "run"], cohort, out)
    masks = {name: time for name, time in _snapshot(out).items() if name != "predict.json"}
    done: list[tuple[str, str]] = []
    summary = predict_cohort(
        [tmp_path / "run"], cohort, out, on_case_done=lambda case_id, e: done.append((case_id, e["status"]))
    )
    assert summary["num_skipped"] == 2 and done == [("case001", "skipped"), ("case002", "skipped")]
    assert {name: time for name, time in _snapshot(out).items() if name != "predict.json"} == masks
    assert "seconds" in summary["cases"]["case001"]  # the earlier timings are kept

    (out / "case002.nii.gz").unlink()  # an incomplete case is predicted again
    summary = predict_cohort([tmp_path / "run"], cohort, out, write_probability=True)
    assert summary["num_skipped"] == 0  # nobody had a probability map yet
    for case_id in ("case001", "case002"):
        probability = sitk.ReadImage(str(out / f"{case_id}_probability.nii.gz"))
        mask = sitk.ReadImage(str(out / f"{case_id}.nii.gz"))
        assert probability.GetPixelID() == sitk.sitkFloat32
        assert probability.GetOrigin() == mask.GetOrigin() and probability.GetDirection() == mask.GetDirection()
        values = sitk.GetArrayFromImage(probability)
        assert values.min() >= 0.0 and values.max() <= 1.0
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mask) == 1, values >= 0.5)  # 26-conn. drops nothing here
    assert not list(out.glob(".*tmp*"))  # no temporary files left


def test_a_rerun_with_other_models_or_settings_is_refused(tmp_path: Path, cohort: Path) -> None:
    make_run(tmp_path / "run")
    make_run(tmp_path / "other", seed=1)
    predict_cohort([tmp_path / "run"], cohort, tmp_path / "out")
    with pytest.raises(ValueError, match="checkpoints"):
        predict_cohort([tmp_path / "other"], cohort, tmp_path / "out")
    with pytest.raises(ValueError, match="tta_flip"):
        predict_cohort([tmp_path / "run"], cohort, tmp_path / "out", tta_flip=True)


def test_a_single_case_folder_and_a_cross_validation_folder(tmp_path: Path, cohort: Path) -> None:
    for fold in (0, 1):
        make_run(tmp_path / "cv" / f"fold_{fold}", seed=fold)
    summary = predict_cohort([tmp_path / "cv"], cohort / "cases" / "case002", tmp_path / "out", tta_flip=True)
    assert list(summary["cases"]) == ["case002"]
    assert len(summary["settings"]["runs"]) == 2 and summary["settings"]["tta_flip"] is True
    assert (tmp_path / "out" / "case002.nii.gz").is_file()


def test_the_output_must_lie_outside_the_input(tmp_path: Path, cohort: Path) -> None:
    make_run(tmp_path / "run")
    with pytest.raises(ValueError, match="outside the input"):
        predict_cohort([tmp_path / "run"], cohort, cohort / "predictions")


def test_cli_predicts_and_prints_a_table(tmp_path: Path, cohort: Path) -> None:
    make_run(tmp_path / "run", threshold=0.55)
    arguments = ["predict", "--model", str(tmp_path / "run"), "--input", str(cohort), "--output", str(tmp_path / "out")]
    options = ["--probability", "--tta", "--postprocess", "largest_component", "--batch-size", "3", "--no-progress"]
    result = CliRunner().invoke(app, [*arguments, *options])
    assert result.exit_code == 0, result.output
    assert "case001" in result.output and "case002" in result.output
    assert "predicted 2 case(s) (0 already done) with 1 network(s)" in result.output
    settings = json.loads((tmp_path / "out" / "predict.json").read_text())["settings"]
    assert settings["tta_flip"] and settings["batch_size"] == 3 and settings["threshold"] == 0.55
    assert settings["postprocessing"]["mode"] == "largest_component"
    assert (tmp_path / "out" / "case002_probability.nii.gz").is_file()


def test_cli_missing_sequence_exits_2_and_writes_nothing(tmp_path: Path, cohort: Path) -> None:
    (cohort / "cases" / "case002" / "t1.nii.gz").unlink()
    make_run(tmp_path / "run")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", "-m", str(tmp_path / "run"), "-i", str(cohort), "-o", str(out)])
    assert result.exit_code == 2
    assert "error:" in result.output and "case002" in result.output and "['t1']" in result.output
    assert not out.exists()  # not even case001 was written: every case is checked first


def test_cli_refuses_an_unknown_post_processing_mode(tmp_path: Path, cohort: Path) -> None:
    make_run(tmp_path / "run")
    arguments = ["predict", "-m", str(tmp_path / "run"), "-i", str(cohort), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*arguments, "--postprocess", "erode"])
    assert result.exit_code == 2 and "unknown post-processing mode 'erode'" in result.output

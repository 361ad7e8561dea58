"""`npcseg evaluate`: matching, geometry checks, hand-computed metrics and DSCagg, outputs, the CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.evaluation.evaluate import (
    OverlapCounts,
    aggregated_dice,
    evaluate_predictions,
    find_predictions,
)
from npcseg.evaluation.metrics import SegmentationMetrics
from npcseg.evaluation.scoring import metrics_csv

SHAPE_ZYX = (6, 10, 12)
SPACING_XYZ = (0.5, 0.8, 3.0)
ORIGIN_XYZ = (-10.0, 20.0, 5.0)


def _image(mask: np.ndarray, spacing=SPACING_XYZ, origin=ORIGIN_XYZ, direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def _box(start: tuple[int, int, int], size: tuple[int, int, int], shape=SHAPE_ZYX) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, a + n) for a, n in zip(start, size, strict=True))] = True
    return mask


def _cohort(root: Path, labels: dict[str, np.ndarray]) -> Path:
    cohort = root / "cohort"
    for case_id, mask in labels.items():
        folder = cohort / "cases" / case_id
        folder.mkdir(parents=True)
        sitk.WriteImage(_image(mask), str(folder / "label.nii.gz"))
    return cohort


def _predictions(root: Path, masks: dict[str, np.ndarray | sitk.Image]) -> Path:
    folder = root / "predictions"
    folder.mkdir(exist_ok=True)
    for case_id, mask in masks.items():
        image = mask if isinstance(mask, sitk.Image) else _image(mask)
        sitk.WriteImage(image, str(folder / f"{case_id}.nii.gz"))
    return folder


@pytest.fixture()
def two_cases(tmp_path: Path) -> tuple[Path, Path]:
    """Case a: reference 2x2x2 = 8 voxels, prediction 4 of them. Case b: reference 2 voxels, prediction 6 others."""
    reference_a = _box((1, 2, 2), (2, 2, 2))
    prediction_a = _box((1, 2, 2), (1, 2, 2))
    reference_b = _box((3, 5, 5), (1, 1, 2))
    prediction_b = _box((0, 0, 0), (1, 2, 3))
    cohort = _cohort(tmp_path, {"a": reference_a, "b": reference_b})
    predictions = _predictions(tmp_path, {"a": prediction_a, "b": prediction_b})
    return cohort, predictions


def test_dsc_agg_and_per_case_dice_are_hand_computed(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    result = evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False)
    # DSCagg = 2 (4 + 0) / ((4 + 6) + (8 + 2)) = 0.4; per case Dice 2*4/12 and 0.
    assert result.dsc_agg == pytest.approx(0.4, abs=1e-15)
    assert [row["dice"] for row in result.metrics] == pytest.approx([8 / 12, 0.0], abs=1e-15)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["dsc_agg"] == pytest.approx(0.4, abs=1e-15)
    assert summary["dice_mean"] == pytest.approx(1 / 3, abs=1e-15)
    assert summary["metrics"]["dice"]["mean"] == pytest.approx(1 / 3, abs=1e-15)
    assert summary["aggregate_counts"] == {"true_positive_voxels": 4, "prediction_voxels": 10, "reference_voxels": 10}
    assert summary["num_cases"] == 2 and summary["num_missing"] == 0
    assert summary["inputs"]["tolerance_mm"] == 2.0 and "scipy" in summary["versions"]
    # case b: no overlap, so the distances are finite and the conformity is -inf (excluded and counted)
    assert summary["metrics"]["conformity"]["num_excluded"] == 1


def test_metrics_csv_columns_and_volumes(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False)
    with (tmp_path / "out" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    fields = [field.name for field in dataclasses.fields(SegmentationMetrics)]
    # the cross-validation metrics.csv is case_id, fold, <fields>; evaluate's shares every column but fold
    expected = ["case_id", *fields, "volume_difference_ml", "relative_volume_difference_percent"]
    assert list(rows[0]) == expected
    voxel_ml = np.prod(SPACING_XYZ) / 1000.0
    assert [row["case_id"] for row in rows] == ["a", "b"]
    assert float(rows[0]["volume_reference_ml"]) == pytest.approx(8 * voxel_ml)
    assert float(rows[0]["volume_prediction_ml"]) == pytest.approx(4 * voxel_ml)
    assert float(rows[0]["volume_difference_ml"]) == pytest.approx(-4 * voxel_ml)
    assert float(rows[0]["relative_volume_difference_percent"]) == pytest.approx(-50.0)
    assert float(rows[1]["relative_volume_difference_percent"]) == pytest.approx(200.0)


def test_shifted_cubes_closed_form_with_anisotropic_spacing(tmp_path: Path) -> None:
    shape = (8, 12, 16)
    reference = _box((1, 1, 2), (5, 5, 10), shape)
    prediction = _box((1, 1, 5), (5, 5, 10), shape)  # shifted 3 voxels along x: overlap 7 of 10
    cohort = _cohort(tmp_path, {"p1": reference})
    predictions = _predictions(tmp_path, {"p1": prediction})
    row = evaluate_predictions(predictions, cohort, tmp_path / "out", tolerance_mm=0.0, progress=False).metrics[0]
    assert row["dice"] == pytest.approx(0.7) and row["sensitivity"] == pytest.approx(0.7)
    assert row["conformity"] == pytest.approx((3 * 0.7 - 2) / 0.7)
    assert row["hausdorff_mm"] == pytest.approx(3 * SPACING_XYZ[0])  # 3 voxels of 0.5 mm along x
    assert row["tolerance_mm"] == 0.0
    assert row["volume_difference_ml"] == pytest.approx(0.0) and row["relative_volume_difference_percent"] == 0.0


def test_aggregated_dice_of_empty_masks_is_the_empty_value() -> None:
    assert aggregated_dice([OverlapCounts(0, 0, 0)] * 2) == 1.0
    assert aggregated_dice([OverlapCounts(3, 3, 3), OverlapCounts(0, 0, 0)]) == 1.0
    assert aggregated_dice([OverlapCounts(0, 5, 0), OverlapCounts(0, 0, 0)]) == 0.0


def test_probability_maps_and_hidden_files_are_ignored(two_cases: tuple[Path, Path]) -> None:
    _, predictions = two_cases
    sitk.WriteImage(_image(np.zeros(SHAPE_ZYX)), str(predictions / "a_probability.nii.gz"))
    (predictions / ".a.nii.gz.tmp-x.nii.gz").write_bytes(b"")
    (predictions / "notes.txt").write_text("x")
    assert list(find_predictions(predictions)) == ["a", "b"]


def test_two_files_for_one_case_are_refused(two_cases: tuple[Path, Path]) -> None:
    _, predictions = two_cases
    sitk.WriteImage(_image(np.zeros(SHAPE_ZYX)), str(predictions / "a.nrrd"))
    with pytest.raises(ValueError, match="case 'a' has two prediction files"):
        find_predictions(predictions)


def test_unmatched_prediction_is_an_error_and_writes_nothing(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    _predictions(tmp_path, {"stranger": np.zeros(SHAPE_ZYX, dtype=bool)})
    with pytest.raises(ValueError, match=r"1 prediction\(s\) without a labelled case .*stranger.nii.gz"):
        evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_missing_prediction_is_an_error_unless_allowed(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    (predictions / "b.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"no prediction for 1 labelled case\(s\).*: b \(use --allow-missing"):
        evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    result = evaluate_predictions(predictions, cohort, tmp_path / "out", allow_missing=True, progress=False)
    assert result.missing_predictions == ("b",)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["missing_predictions"] == ["b"] and summary["num_cases"] == 1
    assert result.dsc_agg == pytest.approx(8 / 12)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"origin": (-10.0, 20.0, 5.01)}, "origin"),
        ({"spacing": (0.5, 0.8, 3.1)}, "spacing"),
        ({"direction": (1, 0, 0, 0, 0, 1, 0, 1, 0)}, "direction"),
        ({"shape": (6, 10, 13)}, "size"),
    ],
)
def test_geometry_mismatch_names_case_and_field(
    two_cases: tuple[Path, Path], tmp_path: Path, change: dict, field: str
) -> None:
    cohort, predictions = two_cases
    mask = np.zeros(change.get("shape", SHAPE_ZYX), dtype=bool)
    image = _image(
        mask,
        spacing=change.get("spacing", SPACING_XYZ),
        origin=change.get("origin", ORIGIN_XYZ),
        direction=change.get("direction"),
    )
    _predictions(tmp_path, {"b": image})
    with pytest.raises(ValueError, match=rf"geometry mismatch: case 'b': prediction .*b.nii.gz vs .*: {field} "):
        evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_tiny_origin_difference_within_tolerance_is_accepted(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    _predictions(tmp_path, {"b": _image(np.zeros(SHAPE_ZYX), origin=(-10.0, 20.0, 5.0 + 1e-5))})
    assert evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False).metrics[1]["dice"] == 0.0


def test_probability_map_as_prediction_is_refused(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    probability = sitk.GetImageFromArray(np.full(SHAPE_ZYX, 0.3, dtype=np.float32))
    probability.CopyInformation(_image(np.zeros(SHAPE_ZYX)))
    _predictions(tmp_path, {"a": probability})
    with pytest.raises(ValueError, match=r"case 'a': .* non-integer values"):
        evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_summary_reads_back_like_a_crossvalidation_summary(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    result = evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "metrics.csv").read_text() == metrics_csv(result.metrics)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["metrics"]) >= {"dice", "hd95_mm", "volume_difference_ml", "relative_volume_difference_percent"}
    assert "tolerance_mm" not in summary["metrics"] and summary["per_fold_mean"] == {}
    stats = summary["metrics"]["hd95_mm"]
    assert set(stats) == {"mean", "sd", "median", "min", "max", "num_values", "num_excluded"}


def test_cli_evaluate_writes_outputs_and_prints(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    out = tmp_path / "out"
    arguments = ["evaluate", "--predictions", str(predictions), "--reference", str(cohort), "--out", str(out)]
    result = CliRunner().invoke(app, [*arguments, "--no-progress", "--tolerance-mm", "1.5"])
    assert result.exit_code == 0, result.output
    assert "DSCagg" in result.output and "0.4000" in result.output and "hd95_mm" in result.output
    assert json.loads((out / "summary.json").read_text())["inputs"]["tolerance_mm"] == 1.5


def test_cli_evaluate_geometry_mismatch_exits_2_without_outputs(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    _predictions(tmp_path, {"a": _image(np.zeros(SHAPE_ZYX), spacing=(0.5, 0.9, 3.0))})
    out = tmp_path / "out"
    arguments = ["evaluate", "--predictions", str(predictions), "--reference", str(cohort), "--out", str(out)]
    result = CliRunner().invoke(app, [*arguments, "--no-progress"])
    assert result.exit_code == 2
    assert "error:" in result.output and "case 'a'" in result.output and "spacing" in result.output
    assert not out.exists()


def test_cli_evaluate_missing_folder_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    arguments = ["evaluate", "--predictions", str(tmp_path / "none"), "--reference", str(tmp_path), "--out", str(out)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2 and "predictions folder not found" in result.output
    assert not out.exists()


def test_every_mismatched_case_is_listed_at_once(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    shifted = {case_id: _image(np.zeros(SHAPE_ZYX), origin=(0.0, 0.0, 0.0)) for case_id in ("a", "b")}
    _predictions(tmp_path, shifted)
    with pytest.raises(ValueError, match=r"geometry mismatch in 2 cases:\n  case 'a': .*origin.*\n  case 'b': "):
        evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False)


def test_unreadable_prediction_names_the_file(two_cases: tuple[Path, Path], tmp_path: Path) -> None:
    cohort, predictions = two_cases
    (predictions / "a.nii.gz").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"a\.nii\.gz: unreadable image header"):
        evaluate_predictions(predictions, cohort, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()

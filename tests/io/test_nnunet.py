"""nnU-Net v2 raw datasets: export -> import round trip, resampling through registrations, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from io_cohort_builders import T2_ORIGIN_XYZ, T2_SIZE_XYZ, T2_SPACING_XYZ, CohortBuilder, label_array, make_image
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.io.images import read_image, write_image
from npcseg.io.nnunet import export_nnunet, import_nnunet, sequence_of_channel
from npcseg.io.volume import Grid
from npcseg.registration.resample import resample_onto


def _same_grid_cohort(root: Path) -> Path:
    """Two labelled cases and one without a label; T1 and T2 on one grid."""
    cohort = root / "cohort"
    for number, case_id in enumerate(("NPC_001", "NPC_002", "NPC_003")):
        folder = cohort / "cases" / case_id
        write_image(make_image(T2_SIZE_XYZ, T2_SPACING_XYZ, T2_ORIGIN_XYZ, seed=10 * number), folder / "t2.nii.gz")
        write_image(make_image(T2_SIZE_XYZ, T2_SPACING_XYZ, T2_ORIGIN_XYZ, seed=10 * number + 1), folder / "t1.nii.gz")
        if case_id != "NPC_003":
            label = make_image(T2_SIZE_XYZ, T2_SPACING_XYZ, T2_ORIGIN_XYZ, array=label_array())
            write_image(label, folder / "label.nii.gz")
    return cohort


def test_export_import_round_trip_is_identical(tmp_path: Path) -> None:
    cohort = _same_grid_cohort(tmp_path)
    dataset = tmp_path / "Dataset501_NPC"
    result = export_nnunet(cohort, dataset, sequences=("t2", "t1"), dataset_name="NPC")
    assert result.training == ("NPC_001", "NPC_002") and result.test == ("NPC_003",)
    description = json.loads((dataset / "dataset.json").read_text())
    assert description["channel_names"] == {"0": "T2", "1": "T1"}
    assert description["labels"] == {"background": 0, "tumor": 1}
    assert description["numTraining"] == 2 and description["file_ending"] == ".nii.gz" and description["name"] == "NPC"
    assert sorted(p.name for p in (dataset / "imagesTr").iterdir())[:2] == [
        "NPC_001_0000.nii.gz",
        "NPC_001_0001.nii.gz",
    ]
    assert sorted(p.name for p in (dataset / "imagesTs").iterdir()) == ["NPC_003_0000.nii.gz", "NPC_003_0001.nii.gz"]

    back = tmp_path / "back"
    assert import_nnunet(dataset, back) == ["NPC_001", "NPC_002", "NPC_003"]
    max_geometry_difference = 0.0
    for case_id in ("NPC_001", "NPC_002", "NPC_003"):
        for name in ("t2", "t1", "label"):
            original = cohort / "cases" / case_id / f"{name}.nii.gz"
            if not original.is_file():
                assert not (back / "cases" / case_id / f"{name}.nii.gz").exists()
                continue
            before, after = read_image(original), read_image(back / "cases" / case_id / f"{name}.nii.gz")
            np.testing.assert_array_equal(sitk.GetArrayFromImage(after), sitk.GetArrayFromImage(before))
            assert after.GetPixelID() == before.GetPixelID()
            for getter in ("GetOrigin", "GetSpacing", "GetDirection"):
                difference = np.abs(np.subtract(getattr(after, getter)(), getattr(before, getter)())).max()
                max_geometry_difference = max(max_geometry_difference, float(difference))
    assert max_geometry_difference == 0.0


def test_other_grids_need_registrations(tmp_path: Path) -> None:
    builder = CohortBuilder(tmp_path / "cohort")
    builder.case("NPC001")  # T1 on a coarser grid than T2
    with pytest.raises(ValueError, match=r"t1 is not on the T2 grid \(size .*--registrations"):
        export_nnunet(builder.root, tmp_path / "dataset", sequences=("t2", "t1"))
    assert not (tmp_path / "dataset" / "dataset.json").exists()

    registrations = tmp_path / "registrations"
    transform = sitk.Euler3DTransform()
    transform.SetTranslation((0.3, -0.2, 0.5))
    (registrations / "NPC001").mkdir(parents=True)
    sitk.WriteTransform(transform, str(registrations / "NPC001" / "t1.tfm"))
    result = export_nnunet(builder.root, tmp_path / "dataset", sequences=("t1", "t2"), registrations=registrations)
    assert result.resampled == (("NPC001", "t1"),)
    channel0 = read_image(tmp_path / "dataset" / "imagesTr" / "NPC001_0000.nii.gz")
    t2 = read_image(builder.root / "cases" / "NPC001" / "t2.nii.gz")
    expected = resample_onto(
        read_image(builder.root / "cases" / "NPC001" / "t1.nii.gz"),
        Grid.from_image(t2),
        transform,
        pixel_id=sitk.sitkFloat32,
    )
    np.testing.assert_allclose(sitk.GetArrayFromImage(channel0), sitk.GetArrayFromImage(expected), rtol=0, atol=1e-5)
    assert Grid.from_image(channel0).matches(Grid.from_image(t2))


def test_missing_transform_is_named(tmp_path: Path) -> None:
    builder = CohortBuilder(tmp_path / "cohort")
    builder.case("NPC001")
    with pytest.raises(FileNotFoundError, match=r"NPC001/t1\.tfm"):
        export_nnunet(builder.root, tmp_path / "dataset", registrations=tmp_path / "none")


def test_channel_names() -> None:
    assert sequence_of_channel("T2") == "t2"
    assert sequence_of_channel("t2w") == "t2"
    assert sequence_of_channel("CE-T1") == "t1c"
    assert sequence_of_channel("T1_Gd") == "t1c"
    assert sequence_of_channel("FLAIR") is None


def test_import_errors_and_overrides(tmp_path: Path) -> None:
    cohort = _same_grid_cohort(tmp_path)
    dataset = tmp_path / "dataset"
    export_nnunet(cohort, dataset, sequences=("t2", "t1"))
    description = json.loads((dataset / "dataset.json").read_text())
    description["channel_names"] = {"0": "T2", "1": "mystery"}
    (dataset / "dataset.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match=r"channel 1 \('mystery'\) names none"):
        import_nnunet(dataset, tmp_path / "a")
    assert import_nnunet(dataset, tmp_path / "a", channels={1: "t1c"})[0] == "NPC_001"
    assert (tmp_path / "a" / "cases" / "NPC_001" / "t1c.nii.gz").is_file()
    with pytest.raises(ValueError, match="already has case 'NPC_001'"):
        import_nnunet(dataset, tmp_path / "a", channels={1: "t1c"})
    with pytest.raises(FileNotFoundError, match=r"dataset\.json"):
        import_nnunet(tmp_path / "nothing", tmp_path / "b")


def test_cli_round_trip(tmp_path: Path) -> None:
    cohort = _same_grid_cohort(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["export", "nnunet", str(cohort), str(tmp_path / "ds"), "--sequences", "t2,t1"])
    assert result.exit_code == 0, result.output
    assert "2 training and 1 test" in result.output
    result = runner.invoke(app, ["export", "nnunet", str(cohort), str(tmp_path / "ds")])
    assert result.exit_code == 2 and "already holds an nnU-Net dataset" in result.output
    result = runner.invoke(app, ["import", "nnunet", str(tmp_path / "ds"), str(tmp_path / "back")])
    assert result.exit_code == 0, result.output
    assert "imported 3 case(s)" in result.output

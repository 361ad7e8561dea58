"""The Li et al. 2024 NPC MRI layout: <root>/<patient>/{T1WI,T2WI,CE-T1WI}/*.dcm + ROI-T2.nii, built here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.dicom.write import SeriesAttributes, write_series
from npcseg.io.images import read_image
from npcseg.io.li2024 import import_li2024


def _image(shape_zyx: tuple[int, int, int], spacing_xyz: tuple[float, float, float], seed: int) -> sitk.Image:
    array = np.random.default_rng(seed).integers(0, 1500, size=shape_zyx).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin((-60.0, -40.0, -20.0))
    return image


def _roi(t2: sitk.Image) -> sitk.Image:
    array = np.zeros(sitk.GetArrayViewFromImage(t2).shape, np.uint8)
    array[1:3, 4:8, 3:6] = 255  # ITK-SNAP style non-unit foreground
    roi = sitk.GetImageFromArray(array)
    roi.CopyInformation(t2)
    return roi


def _patient(root: Path, name: str, seed: int, *, roi_name: str = "ROI-T2.nii") -> dict[str, sitk.Image]:
    study, frame = generate_uid(), generate_uid()
    images = {
        "t1": _image((4, 10, 9), (1.0, 1.0, 5.0), seed),
        "t2": _image((5, 12, 11), (0.7, 0.7, 4.0), seed + 1),
        "t1c": _image((4, 10, 9), (1.0, 1.0, 5.0), seed + 2),
    }
    folders = {"t1": "T1WI", "t2": "T2WI", "t1c": "CE-T1WI"}
    for number, (sequence, image) in enumerate(images.items(), start=1):
        attributes = SeriesAttributes(
            patient_id=name,
            study_instance_uid=study,
            frame_of_reference_uid=frame,
            series_description=folders[sequence],
            series_number=number,
        )
        write_series(image, root / name / folders[sequence], attributes)
    images["label"] = _roi(images["t2"])
    sitk.WriteImage(images["label"], str(root / name / roi_name))
    sitk.WriteImage(_roi(images["t1"]), str(root / name / "ROI-T1.nii"))
    return images


def test_import_writes_sequences_and_the_t2_roi(tmp_path: Path) -> None:
    root = tmp_path / "NPC"
    patients = {name: _patient(root, name, seed) for seed, name in enumerate(("P003", "P010"))}
    result = import_li2024(root, tmp_path / "cohort")
    assert [case.case_id for case in result.cases] == ["case-000", "case-001"]
    for case_id, name in (("case-000", "P003"), ("case-001", "P010")):
        folder = tmp_path / "cohort" / "cases" / case_id
        for sequence in ("t1", "t2", "t1c"):
            image = read_image(folder / f"{sequence}.nii.gz")
            np.testing.assert_array_equal(
                sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(patients[name][sequence])
            )
        label = sitk.GetArrayFromImage(read_image(folder / "label.nii.gz"))
        np.testing.assert_array_equal(label, (sitk.GetArrayFromImage(patients[name]["label"]) > 0).astype(np.uint8))
        sources = json.loads((folder / "dicom_sources.json").read_text())
        assert Path(sources["t2"]["files"][0]).parent == (root / name / "T2WI").resolve()


def test_roi_off_the_t2_grid_is_named_and_other_patients_are_imported(tmp_path: Path) -> None:
    root = tmp_path / "NPC"
    _patient(root, "P001", 0)
    images = _patient(root, "P002", 5)
    shifted = sitk.Image(images["label"])
    shifted.SetOrigin((-59.0, -40.0, -20.0))
    sitk.WriteImage(shifted, str(root / "P002" / "ROI-T2.nii"))
    with pytest.raises(ValueError, match=r"P002/ROI-T2\.nii: the ROI is not on the grid of the T2WI series: origin"):
        import_li2024(root, tmp_path / "cohort")
    assert (tmp_path / "cohort" / "cases" / "case-000" / "label.nii.gz").is_file()
    assert not (tmp_path / "cohort" / "cases" / "case-001").exists()


def test_roi_inside_the_t2_folder_and_cli(tmp_path: Path) -> None:
    root = tmp_path / "NPC"
    _patient(root, "P001", 0, roi_name="T2WI/ROI.nii.gz")
    result = CliRunner().invoke(app, ["import", "li2024", str(root), str(tmp_path / "cohort"), "--keep-identifiers"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cohort" / "cases" / "P001" / "label.nii.gz").is_file()
    result = CliRunner().invoke(app, ["import", "li2024", str(tmp_path / "nothing"), str(tmp_path / "c")])
    assert result.exit_code == 2 and "not found" in result.output

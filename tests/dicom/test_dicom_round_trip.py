"""The clinical round trip in one test: a synthetic patient exported to DICOM (its GTV as an RTSTRUCT), imported
back, segmented, and written as RTSTRUCT + DICOM SEG that read back to the predicted mask."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.dicom.rtstruct import read_rtstruct
from npcseg.dicom.seg import read_seg
from npcseg.evaluation.metrics import dice

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from inference_builders import make_run, tiny_preprocessing


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_synthetic_patient_through_dicom_and_back(tmp_path: Path) -> None:
    runner = CliRunner()

    def run(*arguments: str) -> None:
        result = runner.invoke(app, list(arguments))
        assert result.exit_code == 0, result.output

    run("synth", str(tmp_path / "synthetic"), "--cases", "1", "--seed", "4", "--size", "small")
    run("export", "dicom", str(tmp_path / "synthetic"), str(tmp_path / "dicom"))
    run("import", "dicom", str(tmp_path / "dicom"), str(tmp_path / "imported"), "--roi-names", "GTV")
    (case,) = sorted((tmp_path / "imported" / "cases").iterdir())
    original = tmp_path / "synthetic" / "cases" / "synth-000"

    # the images come back exactly; the label (exported as RTSTRUCT contours) within the rasterisation
    for sequence in ("t1", "t2", "t1c"):
        np.testing.assert_array_equal(_array(case / f"{sequence}.nii.gz"), _array(original / f"{sequence}.nii.gz"))
    assert dice(_array(case / "label.nii.gz"), _array(original / "label.nii.gz")) >= 0.98

    make_run(tmp_path / "run", preprocessing=tiny_preprocessing())
    out = tmp_path / "contours"
    run(
        "predict", "--model", str(tmp_path / "run"), "--input", str(tmp_path / "imported"), "--output", str(out),
        "--rtstruct", "--seg", "--postprocess", "none", "--no-progress",
    )  # fmt: skip
    mask = _array(out / f"{case.name}.nii.gz")
    assert mask.any() and not mask.all()

    sources = json.loads((case / "dicom_sources.json").read_text())["t2"]
    t2_files = [Path(file) for file in sources["files"]]
    from_rtstruct = read_rtstruct(out / f"{case.name}_rtstruct.dcm", t2_files, ["GTV"])
    assert dice(sitk.GetArrayFromImage(from_rtstruct), mask) >= 0.98
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_seg(out / f"{case.name}_seg.dcm", t2_files)), mask)

    structure_set = pydicom.dcmread(out / f"{case.name}_rtstruct.dcm")
    t2 = pydicom.dcmread(t2_files[0], stop_before_pixels=True)
    assert structure_set.StudyInstanceUID == sources["study_instance_uid"] == t2.StudyInstanceUID
    assert structure_set.PatientID == t2.PatientID
    assert structure_set.SeriesInstanceUID != t2.SeriesInstanceUID
    referenced = structure_set.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    assert referenced.RTReferencedSeriesSequence[0].SeriesInstanceUID == sources["series_instance_uid"]

"""`import_dicom`: studies -> cases, provenance, RTSTRUCT labels, privacy, reruns, and the CLI round trips."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_import_builders import (
    PATIENT_ID,
    PATIENT_NAME,
    STUDY_DATE,
    StudyWriter,
    assert_same_geometry,
    integer_image,
    oblique_direction,
    tree_digest,
)
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.dicom.importer import SOURCES_FILENAME, SUMMARY_FILENAME, import_dicom
from npcseg.dicom.rtstruct import write_rtstruct
from npcseg.io.cohort import discover_cases
from npcseg.io.images import read_image


def _tumour(image: sitk.Image) -> sitk.Image:
    array = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
    array[2:4, 3:8, 2:7] = 1
    array[3, 5, 4] = 0  # a hole
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(image)
    return mask


@pytest.fixture
def study(tmp_path: Path) -> dict[str, object]:
    """One study: oblique T2 (+ RTSTRUCT GTVnx), T1 on another grid, T1 with contrast agent, a localiser, a CT."""
    source = tmp_path / "source"
    writer = StudyWriter(source)
    t2 = integer_image(direction=oblique_direction(), seed=1)
    t1 = integer_image(shape_zyx=(5, 8, 7), spacing_xyz=(1.2, 1.2, 4.0), seed=2)
    t1c = integer_image(shape_zyx=(5, 8, 7), spacing_xyz=(1.2, 1.2, 4.0), seed=3)
    t2_files = writer.series(t2, "T2 TSE", 3)
    writer.series(t1, "T1 SE", 4)
    writer.series(t1c, "T1 SE", 5, ContrastBolusAgent="Gadoterate")
    writer.series(integer_image(shape_zyx=(1, 6, 6), seed=4), "localizer", 1)
    writer.series(integer_image(shape_zyx=(3, 6, 6), seed=5), "Head", 6, folder="ct", Modality="CT")
    label = _tumour(t2)
    write_rtstruct(label, t2_files, source / "RS.dcm", roi_name="GTVnx")
    return {"source": source, "t2": t2, "t1": t1, "t1c": t1c, "label": label, "t2_files": t2_files}


def test_study_becomes_a_case_with_exact_volumes_and_label(tmp_path: Path, study: dict, caplog) -> None:
    source: Path = study["source"]
    before = tree_digest(source)
    with caplog.at_level(logging.DEBUG, logger="npcseg"):
        result = import_dicom(source, tmp_path / "cohort")
    assert tree_digest(source) == before  # the source is never modified

    assert [case.case_id for case in result.cases] == ["case-000"]
    assert result.cases[0].has_label
    folder = tmp_path / "cohort" / "cases" / "case-000"
    for sequence in ("t1", "t2", "t1c"):
        image = read_image(folder / f"{sequence}.nii.gz")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(study[sequence]))
        assert_same_geometry(image, study[sequence], tolerance=1e-4)
    label = read_image(folder / "label.nii.gz")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(study["label"]))
    assert_same_geometry(label, study["t2"])

    sources = json.loads((folder / SOURCES_FILENAME).read_text())
    assert sorted(sources) == ["t1", "t1c", "t2"]
    assert set(sources["t2"]) == {"series_instance_uid", "study_instance_uid", "frame_of_reference_uid", "files"}
    assert sources["t2"]["files"] == [str(path.resolve()) for path in study["t2_files"]]  # slice order

    reasons = {entry.series: entry.reason for entry in result.skipped}
    assert any("localizer" in series and "ignored" in reason for series, reason in reasons.items())
    assert any("CT" in series and "modality CT" in reason for series, reason in reasons.items())

    # privacy: no identifier in the summary, the file names or the log
    written = [str(path.relative_to(tmp_path)) for path in (tmp_path / "cohort").rglob("*")]
    summary = (tmp_path / "cohort" / SUMMARY_FILENAME).read_text()
    for identifier in (PATIENT_ID, PATIENT_NAME, "Zorglub", STUDY_DATE):
        assert identifier not in summary
        assert not any(identifier in name for name in written)
        assert identifier not in caplog.text


def test_rerun_keeps_case_ids_and_a_new_study_gets_the_next(tmp_path: Path, study: dict) -> None:
    cohort = tmp_path / "cohort"
    import_dicom(study["source"], cohort)
    again = import_dicom(study["source"], cohort)
    assert [case.case_id for case in again.cases] == ["case-000"]
    other = tmp_path / "other"
    StudyWriter(other, patient_id="P2").series(integer_image(seed=9), "T2 AX", 1)
    result = import_dicom(other, cohort)
    assert [case.case_id for case in result.cases] == ["case-001"]
    assert [case.case_id for case in discover_cases(cohort)] == ["case-000", "case-001"]


def test_keep_identifiers_names_cases_after_the_patient(tmp_path: Path, study: dict) -> None:
    result = import_dicom(study["source"], tmp_path / "cohort", keep_identifiers=True)
    assert [case.case_id for case in result.cases] == [f"{PATIENT_ID}_{STUDY_DATE}"]
    assert PATIENT_ID in (tmp_path / "cohort" / SUMMARY_FILENAME).read_text()


def test_a_broken_preferred_series_falls_back_and_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "source"
    writer = StudyWriter(source)
    broken = writer.series(integer_image(shape_zyx=(8, 6, 6), seed=1), "T2 AX", 2)
    broken[3].unlink()  # the axial T2 misses a slice
    coronal = integer_image(shape_zyx=(4, 6, 6), seed=2)
    writer.series(coronal, "T2 COR", 3)
    result = import_dicom(source, tmp_path / "cohort")
    assert result.cases[0].sequences == {"t2": "series 3 'T2 COR' (MR, 4 files)"}
    (reason,) = [entry.reason for entry in result.skipped if "T2 AX" in entry.series]
    assert "cannot be read" in reason and "missing slice" in reason
    assert PATIENT_ID not in reason


def test_roi_names_are_regular_expressions_and_no_match_is_a_note(tmp_path: Path, study: dict) -> None:
    result = import_dicom(study["source"], tmp_path / "a", roi_names=["gtv.*"])
    assert result.cases[0].has_label
    result = import_dicom(study["source"], tmp_path / "b", roi_names=["CTV"])
    assert not result.cases[0].has_label
    assert any("no ROI matches ['CTV']" in note and "GTVnx" in note for note in result.notes)


def test_errors_name_the_problem(tmp_path: Path, study: dict) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        import_dicom(tmp_path / "missing", tmp_path / "cohort")
    with pytest.raises(ValueError, match="must not be inside the DICOM source"):
        import_dicom(study["source"], study["source"] / "cohort")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing")
    with pytest.raises(ValueError, match="no series could be imported"):
        import_dicom(empty, tmp_path / "cohort")


def test_cli_export_then_import_round_trip_is_exact(tmp_path: Path, study: dict) -> None:
    runner = CliRunner()
    first = tmp_path / "first"
    result = runner.invoke(app, ["import", "dicom", str(study["source"]), str(first)])
    assert result.exit_code == 0, result.output
    assert PATIENT_ID not in result.output and PATIENT_NAME not in result.output
    exported = tmp_path / "exported"
    result = runner.invoke(app, ["export", "dicom", str(first), str(exported)])
    assert result.exit_code == 0, result.output
    assert (exported / "case-000" / "RTSTRUCT.dcm").is_file()
    second = tmp_path / "second"
    result = runner.invoke(app, ["import", "dicom", str(exported), str(second), "--roi-names", "GTV"])
    assert result.exit_code == 0, result.output
    for name in ("t1", "t2", "t1c", "label"):
        before = read_image(first / "cases" / "case-000" / f"{name}.nii.gz")
        after = read_image(second / "cases" / "case-000" / f"{name}.nii.gz")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(after), sitk.GetArrayFromImage(before))
        assert_same_geometry(after, before, tolerance=1e-6)


def test_cli_reports_bad_input_with_exit_code_2(tmp_path: Path, study: dict) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("order: [t5]\n")
    result = CliRunner().invoke(
        app, ["import", "dicom", str(study["source"]), str(tmp_path / "c"), "--mapping", str(bad)]
    )
    assert result.exit_code == 2
    assert "error:" in result.output and "t5" in result.output


def test_single_case_folder_export(tmp_path: Path, study: dict) -> None:
    import_dicom(study["source"], tmp_path / "cohort")
    case = tmp_path / "cohort" / "cases" / "case-000"
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", "dicom", str(case), str(out), "--no-label"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "case-000").iterdir()) == ["t1", "t1c", "t2"]
    result = CliRunner().invoke(app, ["export", "dicom", str(case), str(out)])
    assert result.exit_code == 2 and "already holds" in result.output
    shutil.rmtree(out)

"""Cohort validation: one test per kind of bad input, and every problem of a cohort reported in one run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from io_cohort_builders import (
    NUM_TUMOUR_VOXELS,
    T1_SIZE_XYZ,
    T1_SPACING_XYZ,
    T2_SIZE_XYZ,
    T2_SPACING_XYZ,
    CohortBuilder,
    label_array,
    label_image,
    make_image,
    t1_image,
    t2_image,
)

import npcseg.io.validation as validation
from npcseg.io.validation import Problem, ValidationReport, validate_cohort


def only(report: ValidationReport, severity: str = "error") -> Problem:
    """The single problem of ``severity`` in ``report`` (fails listing all problems otherwise)."""
    found = [problem for problem in report.problems if problem.severity == severity]
    assert len(found) == 1, [str(problem) for problem in report.problems]
    return found[0]


def test_good_cohort_has_no_problems_and_a_summary(good_cohort: CohortBuilder) -> None:
    report = validate_cohort(good_cohort.root)

    assert report.problems == (), [str(problem) for problem in report.problems]
    assert report.is_valid
    assert [case.case_id for case in report.cases] == ["NPC001", "NPC002"]
    for case in report.cases:
        assert set(case.images) == {"t1", "t2"}
        assert case.images["t2"].size_xyz == T2_SIZE_XYZ
        assert case.images["t2"].spacing_xyz == T2_SPACING_XYZ
        assert case.images["t1"].size_xyz == T1_SIZE_XYZ
        assert case.images["t1"].spacing_xyz == T1_SPACING_XYZ
        assert case.label is not None and case.label.size_xyz == T2_SIZE_XYZ
        assert case.num_tumour_voxels == NUM_TUMOUR_VOXELS
        assert case.tumour_volume_ml == pytest.approx(NUM_TUMOUR_VOXELS * 0.5 * 0.5 * 4.0 / 1000.0)
        assert (case.num_errors, case.num_warnings) == (0, 0)
    json.dumps(report.to_dict())  # plain data


def test_each_image_is_read_exactly_once(good_cohort: CohortBuilder, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    original = validation.read_image

    def counting(path: Path, **kwargs: bool) -> sitk.Image:
        calls.append(Path(path))
        return original(path, **kwargs)

    monkeypatch.setattr(validation, "read_image", counting)
    validate_cohort(good_cohort.root)
    assert len(calls) == 6
    assert len(set(calls)) == 6


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_truncated_file(cohort_builder: CohortBuilder, truncate: Callable[[Path, float], Path], suffix: str) -> None:
    folder = cohort_builder.case("NPC001", suffix=suffix)
    truncate(folder / f"t2{suffix}", 0.7)

    report = validate_cohort(cohort_builder.root)

    problem = only(report)
    assert problem.path == folder / f"t2{suffix}"
    assert problem.case_id == "NPC001"
    assert "truncated" in problem.message
    assert "t2" not in report.cases[0].images  # not summarised as if it were fine


def test_file_that_is_not_an_image(cohort_builder: CohortBuilder) -> None:
    folder = cohort_builder.case("NPC001")
    (folder / "t1.nii.gz").write_text("not an image\n")

    problem = only(validate_cohort(cohort_builder.root))
    assert problem.path == folder / "t1.nii.gz"
    assert "unreadable" in problem.message


@pytest.mark.parametrize(
    ("image", "dimension"),
    [
        (sitk.Image([8, 10], sitk.sitkFloat32), 2),
        (sitk.JoinSeries([sitk.Image([8, 10, 3], sitk.sitkFloat32)] * 2), 4),
    ],
    ids=["2D", "4D"],
)
def test_image_that_is_not_3d(cohort_builder: CohortBuilder, image: sitk.Image, dimension: int) -> None:
    cohort_builder.case("NPC001", label=False)
    path = cohort_builder.write("NPC001", "t2.nii.gz", image)

    problem = only(validate_cohort(cohort_builder.root))
    assert problem.path == path
    assert f"expected a 3D image, got {dimension}D" in problem.message


def test_vector_image(cohort_builder: CohortBuilder) -> None:
    cohort_builder.case("NPC001", label=False)
    path = cohort_builder.write("NPC001", "t1.nrrd", sitk.Image([4, 5, 3], sitk.sitkVectorFloat32, 3))
    (path.parent / "t1.nii.gz").unlink()

    problem = only(validate_cohort(cohort_builder.root))
    assert problem.path == path
    assert "scalar" in problem.message


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_nan_and_infinite_voxels(cohort_builder: CohortBuilder, suffix: str) -> None:
    folder = cohort_builder.case("NPC001", label=False)
    (folder / "t2.nii.gz").unlink()
    array = sitk.GetArrayFromImage(t2_image())
    array[0, 0, 0] = np.nan
    array[2, 9, 7] = np.inf
    array[1, 3, 3] = -np.inf
    path = cohort_builder.write("NPC001", f"t2{suffix}", make_image(T2_SIZE_XYZ, T2_SPACING_XYZ, array=array))

    report = validate_cohort(cohort_builder.root)
    problem = only(report)
    assert problem.path == path
    assert problem.message == f"3 of {np.prod(T2_SIZE_XYZ)} voxels are NaN or infinite"
    assert report.cases[0].images["t2"].size_xyz == T2_SIZE_XYZ  # still summarised


@pytest.mark.parametrize("bad_value", [2, 255])
def test_label_value_other_than_0_and_1(cohort_builder: CohortBuilder, bad_value: int) -> None:
    cohort_builder.case("NPC001")
    array = label_array()
    array[0, 0, :3] = bad_value
    path = cohort_builder.write("NPC001", "label.nii.gz", label_image(array))

    report = validate_cohort(cohort_builder.root)
    problem = only(report)
    assert problem.path == path
    assert f"3 voxels have values other than 0 and 1 ({bad_value})" in problem.message
    assert report.cases[0].num_tumour_voxels == NUM_TUMOUR_VOXELS


def test_float_label_with_fractions_and_nan(cohort_builder: CohortBuilder) -> None:
    cohort_builder.case("NPC001")
    array = label_array().astype(np.float32)
    array[0, 0, 0] = 0.5
    array[0, 0, 1] = np.nan
    path = cohort_builder.write("NPC001", "label.nii.gz", label_image(array))

    messages = sorted(problem.message for problem in validate_cohort(cohort_builder.root).errors)
    assert messages == [
        f"1 of {np.prod(T2_SIZE_XYZ)} voxels are NaN or infinite",
        "1 voxels have values other than 0 and 1 (0.5); labels are binary",
    ]
    assert all(problem.path == path for problem in validate_cohort(cohort_builder.root).errors)


def test_empty_label_is_a_warning(cohort_builder: CohortBuilder) -> None:
    cohort_builder.case("NPC001")
    path = cohort_builder.write("NPC001", "label.nii.gz", label_image(np.zeros_like(label_array())))

    report = validate_cohort(cohort_builder.root)
    assert report.is_valid
    problem = only(report, "warning")
    assert problem.path == path
    assert "no tumour voxels" in problem.message
    assert report.cases[0].num_tumour_voxels == 0


OBLIQUE = (1.0, 0.0, 0.0, 0.0, 0.8, -0.6, 0.0, 0.6, 0.8)


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        ({"spacing_xyz": (0.5, 0.6, 4.0)}, ["spacing"]),
        ({"origin_xyz": (-2.0, -2.5, 5.0)}, ["origin"]),
        ({"direction": OBLIQUE}, ["direction"]),
        (
            {"spacing_xyz": (1.0, 1.0, 4.0), "origin_xyz": (0.0, 0.0, 0.0), "direction": OBLIQUE},
            ["spacing", "origin", "direction"],
        ),
    ],
    ids=["spacing", "origin", "direction", "all-three"],
)
def test_label_on_a_wrong_grid(
    cohort_builder: CohortBuilder, geometry: dict[str, tuple[float, ...]], expected: list[str]
) -> None:
    cohort_builder.case("NPC001")
    path = cohort_builder.write("NPC001", "label.nii.gz", label_image(**geometry))

    problem = only(validate_cohort(cohort_builder.root))
    assert problem.path == path
    assert "does not match t2.nii.gz" in problem.message
    named = [aspect for aspect in ("size", "spacing", "origin", "direction") if f"{aspect} (" in problem.message]
    assert named == expected


def test_label_of_a_wrong_size(cohort_builder: CohortBuilder) -> None:
    cohort_builder.case("NPC001")
    small = label_array()[:, :, :6]
    path = cohort_builder.write("NPC001", "label.nii.gz", label_image(small))

    problem = only(validate_cohort(cohort_builder.root))
    assert problem.path == path
    assert "size (6, 10, 3) != (8, 10, 3)" in problem.message


def test_grid_differences_below_tolerance_are_accepted(cohort_builder: CohortBuilder) -> None:
    cohort_builder.case("NPC001")
    cohort_builder.write("NPC001", "label.nii.gz", label_image(origin_xyz=(-2.0 + 1e-5, -2.5, 1.0)))

    assert validate_cohort(cohort_builder.root).problems == ()


def test_label_on_another_reference(cohort_builder: CohortBuilder) -> None:
    folder = cohort_builder.case("NPC001", label=False)
    t1_label = make_image(T1_SIZE_XYZ, T1_SPACING_XYZ, t1_image().GetOrigin(), array=np.ones((3, 5, 4), np.uint8))
    cohort_builder.write("NPC001", "label.nii.gz", t1_label)

    assert validate_cohort(cohort_builder.root, reference="t1").problems == ()
    problem = only(validate_cohort(cohort_builder.root, reference="t2"))
    assert problem.path == folder / "label.nii.gz"
    assert "does not match t2.nii.gz" in problem.message


def test_label_whose_reference_is_missing(cohort_builder: CohortBuilder) -> None:
    folder = cohort_builder.case("NPC001", t2=False)

    problem = only(validate_cohort(cohort_builder.root, required=("t1",)))
    assert problem.path == folder / "label.nii.gz"
    assert "reference 't2' is missing" in problem.message


@pytest.mark.parametrize("missing", ["t1", "t2"])
def test_missing_required_sequence(cohort_builder: CohortBuilder, missing: str) -> None:
    folder = cohort_builder.case("NPC001", **{missing: False})  # type: ignore[arg-type]

    problem = only(validate_cohort(cohort_builder.root))
    assert problem.path == folder
    assert f"missing required sequence '{missing}'" in problem.message
    assert f"{missing}.nii.gz" in problem.message


def test_optional_sequences_need_not_be_there(cohort_builder: CohortBuilder) -> None:
    cohort_builder.case("NPC001", t1=False)
    assert validate_cohort(cohort_builder.root, required=("t2",)).problems == ()

    problem = only(validate_cohort(cohort_builder.root, required=("t2", "t1c")))
    assert "'t1c'" in problem.message


def test_label_missing_when_required(cohort_builder: CohortBuilder) -> None:
    folder = cohort_builder.case("NPC001", label=False)

    assert validate_cohort(cohort_builder.root).problems == ()
    problem = only(validate_cohort(cohort_builder.root, require_label=True))
    assert problem.path == folder
    assert "missing label" in problem.message
    assert validate_cohort(cohort_builder.root).cases[0].num_tumour_voxels is None


@pytest.mark.parametrize("stem", ["t2", "label"])
def test_two_files_for_one_sequence(cohort_builder: CohortBuilder, stem: str) -> None:
    folder = cohort_builder.case("NPC001")
    second = cohort_builder.write("NPC001", f"{stem}.nii", sitk.ReadImage(str(folder / f"{stem}.nii.gz")))

    problem = only(validate_cohort(cohort_builder.root))
    assert problem.path == second
    assert f"2 files for '{stem}' ({stem}.nii.gz and {stem}.nii)" in problem.message


def test_unrecognised_files_are_warnings(cohort_builder: CohortBuilder) -> None:
    folder = cohort_builder.case("NPC001")
    (folder / "notes.txt").write_text("scanned twice\n")
    (folder / "flair.nii.gz").write_bytes(b"")
    (folder / "old").mkdir()

    report = validate_cohort(cohort_builder.root)
    assert report.is_valid
    warnings = {problem.path.name: problem.message for problem in report.warnings}
    assert set(warnings) == {"notes.txt", "flair.nii.gz", "old"}
    assert warnings["old"].startswith("folder not recognised")
    assert "images must be named t1, t2, t1c or label" in warnings["flair.nii.gz"]
    assert report.cases[0].num_warnings == 3


def test_wrongly_capitalised_sequence(cohort_builder: CohortBuilder) -> None:
    folder = cohort_builder.case("NPC001", t2=False)
    sitk.WriteImage(t2_image(), str(folder / "T2.nii.gz"))

    report = validate_cohort(cohort_builder.root)
    assert "missing required sequence 't2'" in only(report, "error").message
    warning = only(report, "warning")
    assert warning.path == folder / "T2.nii.gz"
    assert "rename it to t2.nii.gz" in warning.message


def test_duplicate_case_ids_ignoring_case(cohort_builder: CohortBuilder) -> None:
    cohort_builder.case("NPC001")
    second = cohort_builder.case("npc001")

    problem = only(validate_cohort(cohort_builder.root))
    assert problem.path == second
    assert "duplicate case id" in problem.message
    assert "'NPC001'" in problem.message


@pytest.mark.parametrize("case_id", ["bad id", "-starts-with-dash", "x" * 65, ".hidden", "NPC001\n"])
def test_ill_formed_case_id(cohort_builder: CohortBuilder, case_id: str) -> None:
    folder = cohort_builder.case(case_id)

    problem = only(validate_cohort(cohort_builder.root))
    assert problem.path == folder
    assert f"ill-formed case id {case_id!r}" in problem.message


def test_clinical_row_without_a_case(good_cohort: CohortBuilder) -> None:
    path = good_cohort.clinical("case_id,sex,age\nNPC001,M,54\nNPC002,F,61\nNPC003,F,47\nnpc001x,M,50\n")

    report = validate_cohort(good_cohort.root)
    messages = [problem.message for problem in report.errors]
    assert messages == [
        "line 4: row 'NPC003' has no case folder",
        "line 5: row 'npc001x' has no case folder",
    ]
    assert all(problem.path == path and problem.case_id is None for problem in report.errors)


def test_clinical_id_differing_in_case_gets_a_hint(good_cohort: CohortBuilder) -> None:
    good_cohort.clinical("case_id,sex\nNPC001,M\nnpc002,F\n")

    report = validate_cohort(good_cohort.root)
    assert "line 3: row 'npc002' has no case folder (a case 'NPC002' exists" in only(report).message
    assert only(report, "warning").path == good_cohort.cases / "NPC002"


def test_case_without_clinical_row_is_a_warning(good_cohort: CohortBuilder) -> None:
    good_cohort.clinical("case_id,sex,age\nNPC001,M,54\n")

    report = validate_cohort(good_cohort.root)
    assert report.is_valid
    problem = only(report, "warning")
    assert problem.path == good_cohort.cases / "NPC002"
    assert problem.case_id == "NPC002"
    assert "no row in clinical.csv" in problem.message


def test_ill_formed_clinical_table_is_reported_not_raised(good_cohort: CohortBuilder) -> None:
    path = good_cohort.clinical("patient,sex\nNPC001,M\n")

    report = validate_cohort(good_cohort.root)
    errors = report.errors
    assert len(errors) == 1 and errors[0].path == path
    assert "line 1: no 'case_id' column" in errors[0].message
    assert len(report.warnings) == 2  # no case has a row now


def test_cohort_without_cases(cohort_builder: CohortBuilder) -> None:
    (cohort_builder.cases / "README.txt").write_text("cases go here\n")

    report = validate_cohort(cohort_builder.root)
    problem = only(report)
    assert problem.path == cohort_builder.cases
    assert "no cases" in problem.message
    assert only(report, "warning").path == cohort_builder.cases / "README.txt"


def test_missing_cohort_or_cases_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cohort folder not found"):
        validate_cohort(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no 'cases/' folder"):
        validate_cohort(tmp_path)


def test_unknown_sequence_names_are_refused(good_cohort: CohortBuilder) -> None:
    with pytest.raises(ValueError, match="unknown sequence 'flair'"):
        validate_cohort(good_cohort.root, required=("t2", "flair"))
    with pytest.raises(ValueError, match="unknown sequence 'T2'"):
        validate_cohort(good_cohort.root, reference="T2")


def test_all_problems_of_all_cases_are_reported_in_one_run(
    cohort_builder: CohortBuilder, truncate: Callable[[Path, float], Path]
) -> None:
    cohort_builder.case("NPC001")  # good
    truncate(cohort_builder.case("NPC002") / "t1.nii.gz", 0.5)
    cohort_builder.case("NPC003", t2=False, label=False)
    cohort_builder.write("NPC003", "t1.nii.gz", sitk.Image([4, 5], sitk.sitkFloat32))
    cohort_builder.case("NPC004")
    bad_label = label_array()
    bad_label[0, 0, 0] = 2
    cohort_builder.write("NPC004", "label.nii.gz", label_image(bad_label, origin_xyz=(0.0, 0.0, 0.0)))
    cohort_builder.write("NPC004", "t2.mha", t2_image())
    (cohort_builder.cases / "NPC004" / "notes.txt").write_text("")
    cohort_builder.case("npc004")
    cohort_builder.clinical("case_id,age\nNPC001,50\nNPC002,51\nNPC002,52\nNPC009,53\n")

    report = validate_cohort(cohort_builder.root, require_label=True)

    found = {
        (
            problem.severity,
            problem.path.relative_to(cohort_builder.root).as_posix(),
            problem.message.split(" (")[0],
        )
        for problem in report.problems
    }
    expected = {
        ("error", "cases/NPC002/t1.nii.gz", "unreadable or truncated image"),
        ("error", "cases/NPC003/t1.nii.gz", "expected a 3D image, got 2D of size"),
        ("error", "cases/NPC003", "missing required sequence 't2'"),
        ("error", "cases/NPC003", "missing label"),
        ("error", "cases/NPC004/label.nii.gz", "1 voxels have values other than 0 and 1"),
        ("error", "cases/NPC004/label.nii.gz", "label grid does not match t2.nii.gz"),
        ("error", "cases/NPC004/t2.mha", "2 files for 't2'"),
        ("warning", "cases/NPC004/notes.txt", "file not recognised, ignored"),
        ("error", "cases/npc004", "duplicate case id: 'npc004' equals 'NPC004' ignoring case"),
        ("error", "clinical.csv", "line 4: duplicate case_id 'NPC002', already on line 3"),
        ("error", "clinical.csv", "line 5: row 'NPC009' has no case folder"),
        ("warning", "cases/NPC003", "no row in clinical.csv"),
        ("warning", "cases/NPC004", "no row in clinical.csv"),
        ("warning", "cases/npc004", "no row in clinical.csv"),
    }
    assert found == expected
    counts = {case.case_id: (case.num_errors, case.num_warnings) for case in report.cases}
    assert counts == {
        "NPC001": (0, 0),
        "NPC002": (1, 0),
        "NPC003": (3, 1),
        "NPC004": (3, 2),
        "npc004": (1, 1),
    }
    assert not report.is_valid
    assert [problem.case_id for problem in report.problems_of("NPC002")] == ["NPC002"]
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["num_errors"] == 10 and as_json["num_warnings"] == 4 and as_json["num_cases"] == 5

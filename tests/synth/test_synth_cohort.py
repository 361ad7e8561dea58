"""Writing a synthetic cohort: layout, clinical table, record, reruns, independence of the number of cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import npcseg
from npcseg.io.cohort import discover_cases
from npcseg.io.volume import Grid
from npcseg.synth.case import CLINICAL_COLUMNS, synthesize_case
from npcseg.synth.cohort import synthesize_cohort
from npcseg.synth.config import small_config

CONFIG = small_config(num_previews=1, preview_slices=2)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    synthesize_cohort(out, 2, 4, CONFIG)
    return out


def test_layout_is_a_valid_cohort(cohort: Path) -> None:
    cases = discover_cases(cohort)
    assert [case.case_id for case in cases] == ["synth-000", "synth-001"]
    for case in cases:
        assert set(case.images) == {"t1", "t2", "t1c"}
        assert case.label is not None
        label = sitk.ReadImage(str(case.label))
        assert Grid.from_image(label).matches(Grid.from_image(sitk.ReadImage(str(case.image("t2")))))
        assert set(np.unique(sitk.GetArrayFromImage(label))) <= {0, 1}
        for sequence in ("t1", "t1c"):
            assert (cohort / "truth" / case.case_id / f"{sequence}.tfm").is_file()
    assert (cohort / "previews" / "synth-000.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (cohort / "previews" / "synth-001.png").exists()


def test_written_files_hold_the_synthesised_case(cohort: Path) -> None:
    case = synthesize_case(1, 4, CONFIG)
    folder = cohort / "cases" / "synth-001"
    for sequence in ("t1", "t2", "t1c"):
        written = sitk.ReadImage(str(folder / f"{sequence}.nii.gz"))
        assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(case.images[sequence]))
        assert Grid.from_image(written).matches(Grid.from_image(case.images[sequence]))
    for sequence in ("t1", "t1c"):
        transform = sitk.ReadTransform(str(cohort / "truth" / "synth-001" / f"{sequence}.tfm"))
        point = (12.0, -30.0, 7.0)
        assert np.allclose(transform.TransformPoint(point), case.transforms[sequence].TransformPoint(point), atol=1e-6)


def test_clinical_table(cohort: Path) -> None:
    with (cohort / "clinical.csv").open() as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert tuple(reader.fieldnames or ()) == CLINICAL_COLUMNS
    assert [row["case_id"] for row in rows] == ["synth-000", "synth-001"]
    for row in rows:
        assert row["sex"] in {"M", "F"}
        assert 18 <= int(row["age"]) <= 85
        assert row["t_category"] in {"T1", "T2", "T3", "T4"}
        assert row["n_category"] in {"N0", "N1", "N2", "N3"}
        assert row["chemotherapy"] in {"naive", "induction"}
        label = sitk.ReadImage(str(cohort / "cases" / row["case_id"] / "label.nii.gz"))
        volume = sitk.GetArrayFromImage(label).sum() * np.prod(label.GetSpacing()) / 1000
        assert float(row["tumour_volume_ml"]) == pytest.approx(volume, abs=1e-3)


def test_record(cohort: Path) -> None:
    record = json.loads((cohort / "synth.json").read_text())
    assert record["seed"] == 4
    assert record["num_cases"] == 2
    assert record["npcseg_version"] == npcseg.__version__
    assert record["config"]["t2_matrix"] == 128


def test_rerun_skips_complete_cases_and_refuses_other_settings(cohort: Path) -> None:
    files = sorted(path for path in (cohort / "cases").rglob("*") if path.is_file())
    stamps = [path.stat().st_mtime_ns for path in files]
    assert synthesize_cohort(cohort, 2, 4, CONFIG) == ["synth-000", "synth-001"]
    assert [path.stat().st_mtime_ns for path in files] == stamps
    with pytest.raises(ValueError, match="seed"):
        synthesize_cohort(cohort, 2, 5, CONFIG)


def test_case_does_not_depend_on_the_number_of_cases(tmp_path: Path, cohort: Path) -> None:
    synthesize_cohort(tmp_path, 1, 4, CONFIG)
    for name in ("t2.nii.gz", "t1.nii.gz", "label.nii.gz"):
        first = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "cases" / "synth-000" / name)))
        second = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "cases" / "synth-000" / name)))
        assert np.array_equal(first, second)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="number of cases"):
        synthesize_cohort(tmp_path, 0, 1, CONFIG)
    with pytest.raises(ValueError, match="seed"):
        synthesize_cohort(tmp_path, 1, -1, CONFIG)
    with pytest.raises(ValueError, match="t2_matrix"):
        small_config(t2_matrix=4)

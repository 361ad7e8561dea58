"""The cohort layout: case discovery, sequence lookup and the case-id pattern."""

from __future__ import annotations

from pathlib import Path

import pytest
from io_cohort_builders import CohortBuilder

from npcseg.io.cohort import CASE_ID_PATTERN, cases_dir, cases_of, discover_cases, is_cohort, load_case


def test_load_case_finds_sequences_and_label(cohort_builder: CohortBuilder) -> None:
    folder = cohort_builder.case("NPC001", suffix=".mha")
    (folder / "notes.txt").write_text("")

    case = load_case(folder)

    assert case.case_id == "NPC001" and case.folder == folder
    assert case.images == {"t1": folder / "t1.mha", "t2": folder / "t2.mha"}
    assert case.label == folder / "label.mha"
    assert case.image("t2") == folder / "t2.mha"


def test_first_ending_wins_when_a_sequence_has_two_files(cohort_builder: CohortBuilder) -> None:
    folder = cohort_builder.case("NPC001", suffix=".nii")
    (folder / "t2.nii.gz").write_bytes(b"")
    assert load_case(folder).images["t2"] == folder / "t2.nii.gz"


def test_missing_sequences_are_named(cohort_builder: CohortBuilder) -> None:
    folder = cohort_builder.case("NPC001", t1=False, label=False)
    case = load_case(folder)
    assert case.label is None
    with pytest.raises(FileNotFoundError, match=r"NPC001: sequence 't1' is missing .*present: \['t2'\]"):
        case.image("t1")
    with pytest.raises(FileNotFoundError, match=r"missing sequence\(s\) \['t1', 't1c'\]"):
        case.require(("t1", "t2", "t1c"))
    case.require(["t2"])


def test_discover_cases_sorted_and_folders_only(cohort_builder: CohortBuilder) -> None:
    for case_id in ("NPC010", "NPC002", "A001"):
        cohort_builder.case(case_id)
    (cohort_builder.cases / "README.txt").write_text("")

    cases = discover_cases(cohort_builder.root)

    assert [case.case_id for case in cases] == ["A001", "NPC002", "NPC010"]
    assert is_cohort(cohort_builder.root) and not is_cohort(cohort_builder.cases / "A001")
    assert [case.case_id for case in cases_of(cohort_builder.root)] == ["A001", "NPC002", "NPC010"]
    assert [case.case_id for case in cases_of(cohort_builder.cases / "NPC002")] == ["NPC002"]


def test_missing_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere: cohort folder not found"):
        cases_dir(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="not a cohort"):
        cases_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="case folder not found"):
        load_case(tmp_path / "NPC001")


@pytest.mark.parametrize("case_id", ["NPC001", "a", "9-x_y.z", "P" * 64, "Hospital.A-0001"])
def test_well_formed_case_ids(case_id: str) -> None:
    assert CASE_ID_PATTERN.match(case_id)


@pytest.mark.parametrize("case_id", ["", "_x", "-x", ".x", "a b", "a/b", "P" * 65, "NPC001\n", "é1"])
def test_ill_formed_case_ids(case_id: str) -> None:
    assert not CASE_ID_PATTERN.match(case_id)

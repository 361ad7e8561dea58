"""Series -> sequence rules: descriptions, protocol names, contrast agent, timing fallback, overrides, ranking."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from npcseg.dicom.mapping import load_mapping, map_series, rank_candidates
from npcseg.dicom.series import DicomSeries, SliceHeader


def _series(description: str = "", **fields: object) -> DicomSeries:
    header = SliceHeader(Path("/x"), "1.2", 1, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0), (1.0, 1.0), 4, 4, 1.0, None, 1)
    base = DicomSeries(
        study_instance_uid="1",
        series_instance_uid="1.1",
        frame_of_reference_uid="1.9",
        modality="MR",
        series_number=1,
        series_description=description,
        protocol_name="",
        contrast_bolus_agent="",
        scanning_sequence="SE",
        echo_time_ms=None,
        repetition_time_ms=None,
        patient_id="P",
        study_date="",
        slices=(header,),
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("T2 TSE AX", "t2"),
        ("t2_tse_tra_fs", "t2"),
        ("T2W FS post", "t2"),  # a T2 stays a T2 after contrast
        ("T1 SE AX", "t1"),
        ("t1_tse_tra", "t1"),
        ("T1 +C AX", "t1c"),
        ("CE-T1WI", "t1c"),
        ("T1WI+C", "t1c"),
        ("AX T1 POST GD", "t1c"),
        ("t1_vibe_fs_gd", "t1c"),
        ("Localizer", None),
        ("ep2d_diff_b1000", None),
        ("T2 FLAIR", None),
        ("T2* GRE", None),
    ],
)
def test_descriptions(description: str, expected: str | None) -> None:
    assert map_series(_series(description), load_mapping()).sequence == expected


def test_protocol_name_contrast_agent_and_modality() -> None:
    mapping = load_mapping()
    assert map_series(_series("", protocol_name="t2_tse_tra"), mapping).sequence == "t2"
    decision = map_series(_series("T1 AX", contrast_bolus_agent="Gadovist"), mapping)
    assert decision.sequence == "t1c" and "ContrastBolusAgent" in decision.reason
    assert map_series(_series("T2 AX", modality="CT"), mapping).sequence is None


def test_timing_fallback() -> None:
    mapping = load_mapping()
    t2 = _series("AX 5mm", echo_time_ms=100.0, repetition_time_ms=4000.0)
    t1 = _series("AX 5mm", echo_time_ms=12.0, repetition_time_ms=500.0)
    unknown = _series("AX 5mm", echo_time_ms=40.0, repetition_time_ms=1200.0)
    assert map_series(t2, mapping).sequence == "t2"
    assert map_series(t1, mapping).sequence == "t1"
    assert map_series(dataclasses.replace(t1, contrast_bolus_agent="Gd"), mapping).sequence == "t1c"
    decision = map_series(unknown, mapping)
    assert decision.sequence is None and "TE 40.0 ms, TR 1200.0 ms" in decision.reason
    assert map_series(dataclasses.replace(t2, scanning_sequence="IR"), mapping).sequence is None


def test_user_file_overrides_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("text:\n  t2: ['(?i)weird_t2_name']\nignore: []\n")
    mapping = load_mapping(path)
    assert map_series(_series("weird_T2_name"), mapping).sequence == "t2"
    assert map_series(_series("T2 TSE"), mapping).sequence is None  # t2 patterns replaced
    assert map_series(_series("T1 +C"), mapping).sequence == "t1c"  # t1c patterns kept
    assert map_series(_series("Localizer T1"), mapping).sequence == "t1"  # ignore emptied


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("text:\n  t3: ['x']\n", r"unknown sequence\(s\) \['t3'\]"),
        ("ignore: ['(unclosed']\n", "invalid regular expression '\\(unclosed'"),
        ("colour: red\n", r"unknown key\(s\) \['colour'\]"),
    ],
)
def test_bad_mapping_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        load_mapping(path)
    assert str(path) in str(error.value)


def test_ranking_prefers_axial_then_more_slices() -> None:
    mapping = load_mapping()
    header = _series().slices[0]
    coronal = _series("T2 COR", series_number=2, slices=(header,) * 30)
    axial = _series("T2 AX", series_number=5, slices=(header,) * 20)
    axial_more = _series("T2 TRA", series_number=9, slices=(header,) * 24)
    ranked = rank_candidates([coronal, axial, axial_more], mapping)
    assert [s.series_number for s in ranked] == [9, 5, 2]

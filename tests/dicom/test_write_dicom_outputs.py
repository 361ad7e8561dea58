"""write_dicom_outputs: the RTSTRUCT and SEG of a prediction, referencing the case's imported T2 series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_output_builders import header, lesion_mask, mask_image, rotation, write_mr_series

from npcseg.dicom.outputs import write_dicom_outputs
from npcseg.dicom.rtstruct import read_rtstruct
from npcseg.dicom.seg import read_seg
from npcseg.io.volume import Grid


def imported_case(tmp_path: Path) -> tuple[Path, list[Path], Grid]:
    """A case folder with a dicom_sources.json as `npcseg import dicom` records it."""
    files, grid = write_mr_series(tmp_path / "dicom" / "t2", direction=rotation((10.0, 5.0, 0.0)))
    first = header(files[0])
    case_dir = tmp_path / "cohort" / "cases" / "npc_001"
    case_dir.mkdir(parents=True)
    sources = {
        "t2": {
            "series_instance_uid": str(first.SeriesInstanceUID),
            "study_instance_uid": str(first.StudyInstanceUID),
            "frame_of_reference_uid": str(first.FrameOfReferenceUID),
            "files": [str(file.resolve()) for file in files],
        }
    }
    (case_dir / "dicom_sources.json").write_text(json.dumps(sources))
    return case_dir, files, grid


def test_writes_both_files_that_read_back_to_the_mask(tmp_path: Path) -> None:
    case_dir, files, grid = imported_case(tmp_path)
    mask = lesion_mask()
    written = write_dicom_outputs(mask_image(mask, grid), case_dir, tmp_path / "predictions", "npc_001")
    assert written == [tmp_path / "predictions" / "npc_001_rtstruct.dcm", tmp_path / "predictions" / "npc_001_seg.dcm"]
    assert np.array_equal(sitk.GetArrayFromImage(read_rtstruct(written[0], files, ["GTV"])), mask)
    assert np.array_equal(sitk.GetArrayFromImage(read_seg(written[1], files)), mask)
    only_seg = write_dicom_outputs(mask_image(mask, grid), case_dir, tmp_path / "seg_only", "npc_001", rtstruct=False)
    assert only_seg == [tmp_path / "seg_only" / "npc_001_seg.dcm"]
    assert sorted(path.name for path in (tmp_path / "seg_only").iterdir()) == ["npc_001_seg.dcm"]  # no temporaries


def test_clear_errors_name_the_case(tmp_path: Path) -> None:
    case_dir, files, grid = imported_case(tmp_path)
    shifted = mask_image(lesion_mask(), grid)
    shifted.SetOrigin(tuple(value + 1.0 for value in grid.origin_xyz))
    with pytest.raises(ValueError, match=r"case npc_001: the mask is not on the grid of its DICOM t2 series .* origin"):
        write_dicom_outputs(shifted, case_dir, tmp_path / "out", "npc_001")
    assert not (tmp_path / "out").exists()

    plain_case = tmp_path / "cohort" / "cases" / "npc_002"
    plain_case.mkdir()
    with pytest.raises(FileNotFoundError, match=r"case npc_002: .* import it with npcseg import dicom"):
        write_dicom_outputs(mask_image(lesion_mask(), grid), plain_case, tmp_path / "out", "npc_002")

    (plain_case / "dicom_sources.json").write_text(json.dumps({"t1": {"files": [str(files[0])]}}))
    with pytest.raises(ValueError, match=r"case npc_002: .* no 't2' series .*sequences recorded: \['t1'\]"):
        write_dicom_outputs(mask_image(lesion_mask(), grid), plain_case, tmp_path / "out", "npc_002")

    files[2].unlink()
    with pytest.raises(FileNotFoundError, match=r"case npc_001: 1 of 6 DICOM files .* are gone"):
        write_dicom_outputs(mask_image(lesion_mask(), grid), case_dir, tmp_path / "out", "npc_001")

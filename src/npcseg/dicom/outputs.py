"""DICOM outputs of a prediction for planning systems: an RT Structure Set and a Segmentation per case.

Both reference the T2 series the case was imported from, found in the case's ``dicom_sources.json`` (written by
``npcseg import dicom``): ``{"<sequence>": {"series_instance_uid", "study_instance_uid", "frame_of_reference_uid",
"files": [absolute paths in slice order]}}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk

from npcseg.dicom.contours import ReferenceSeries, grid_mismatch
from npcseg.dicom.rtstruct import write_rtstruct
from npcseg.dicom.seg import write_seg
from npcseg.io.volume import Grid

DICOM_SOURCES_FILE = "dicom_sources.json"
"""Name of the file in a case folder that records the DICOM series the case was imported from."""

REFERENCE_SEQUENCE = "t2"
"""The sequence whose series the outputs reference (the grid predictions are made on)."""


def reference_series(case_dir: Path, case_id: str, sequence: str = REFERENCE_SEQUENCE) -> ReferenceSeries:
    """The DICOM series a case's ``sequence`` was imported from, read from its ``dicom_sources.json``.

    Raises:
        FileNotFoundError: the case was not imported from DICOM, or a recorded file is gone.
        ValueError: the record is malformed, lacks ``sequence``, or its files are now another series.
    """
    sources_path = Path(case_dir) / DICOM_SOURCES_FILE
    if not sources_path.is_file():
        raise FileNotFoundError(
            f"case {case_id}: {sources_path} not found; DICOM outputs need the DICOM series the case came from: "
            "import it with npcseg import dicom"
        )
    try:
        sources = json.loads(sources_path.read_text())
        entry = sources[sequence]
        files = [Path(file) for file in entry["files"]]
    except json.JSONDecodeError as error:
        raise ValueError(f"case {case_id}: {sources_path} is not valid JSON ({error})") from error
    except (KeyError, TypeError) as error:
        available = sorted(sources) if isinstance(sources, dict) else []
        raise ValueError(
            f"case {case_id}: {sources_path} has no {sequence!r} series with a 'files' list "
            f"(sequences recorded: {available})"
        ) from error
    missing = [file for file in files if not file.is_file()]
    if missing:
        raise FileNotFoundError(
            f"case {case_id}: {len(missing)} of {len(files)} DICOM files of its {sequence} series are gone "
            f"(first: {missing[0]}); re-import it with npcseg import dicom"
        )
    series = ReferenceSeries.read(files)
    recorded_uid = entry.get("series_instance_uid")
    if recorded_uid and str(series.first.SeriesInstanceUID) != recorded_uid:
        raise ValueError(
            f"case {case_id}: {files[0]} is now series {series.first.SeriesInstanceUID}, "
            f"not the {recorded_uid} recorded in {sources_path}; re-import it with npcseg import dicom"
        )
    return series


def write_dicom_outputs(
    mask: sitk.Image,
    case_dir: Path,
    output: Path,
    case_id: str,
    *,
    rtstruct: bool = True,
    seg: bool = True,
    roi_name: str = "GTV",
) -> list[Path]:
    """Write ``OUTPUT/<case_id>_rtstruct.dcm`` and/or ``OUTPUT/<case_id>_seg.dcm`` for a predicted mask.

    Args:
        mask: the predicted mask on the case's T2 grid (nonzero is tumour).
        case_dir: the case folder holding ``dicom_sources.json``.
        output: the folder to write into (created when missing).
        case_id: the case identifier, for file names and messages.
        rtstruct: write the RT Structure Set.
        seg: write the DICOM Segmentation.
        roi_name: ROIName / SegmentLabel of the structure.

    Returns:
        The files written, RTSTRUCT first.

    Raises:
        FileNotFoundError: the case has no ``dicom_sources.json`` or its DICOM files are gone.
        ValueError: the mask is not on the grid of the referenced series.
    """
    if not (rtstruct or seg):
        return []
    series = reference_series(case_dir, case_id)
    mismatch = grid_mismatch(Grid.from_image(mask), series.grid)
    if mismatch is not None:
        raise ValueError(
            f"case {case_id}: the mask is not on the grid of its DICOM {REFERENCE_SEQUENCE} series "
            f"({series.files[0].parent}): {mismatch}"
        )
    output = Path(output)
    written = []
    if rtstruct:
        rtstruct_path = output / f"{case_id}_rtstruct.dcm"
        write_rtstruct(mask, series, rtstruct_path, roi_name=roi_name)
        written.append(rtstruct_path)
    if seg:
        seg_path = output / f"{case_id}_seg.dcm"
        write_seg(mask, series, seg_path, segment_label=roi_name)
        written.append(seg_path)
    return written

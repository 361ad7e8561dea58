"""nnU-Net v2 raw datasets in and out of a cohort.

```text
DATASET_DIR/dataset.json                  {"channel_names": {"0": "T2", "1": "T1"}, "labels": {"background": 0,
                                          "tumor": 1}, "numTraining": N, "file_ending": ".nii.gz", "name": ...}
DATASET_DIR/imagesTr/<case>_0000.nii.gz   channel 0 of a case with a label (then _0001, ... in channel order)
DATASET_DIR/labelsTr/<case>.nii.gz        its label (0 background, 1 tumour)
DATASET_DIR/imagesTs/<case>_0000.nii.gz   channels of a case without a label
```

nnU-Net needs every channel of a case on one grid. :func:`export_nnunet` uses the T2 grid (the label's): T2 is
written as it is; another sequence is resampled onto T2 through the case's rigid transform when a registration
folder of ``npcseg register`` is given, and must otherwise already lie on the T2 grid (within 1e-3 mm and 1e-5
in direction; it is then written with T2's exact geometry). :func:`import_nnunet` reads the channels back as
sequences by their names (``T2``, ``T2W``, ``t1``, ``T1C``, ``CE-T1``, ...; :func:`sequence_of_channel`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from npcseg.io.atomic import atomic_write_text
from npcseg.io.cohort import CASE_ID_PATTERN, CASES_DIRNAME, SEQUENCES, Case, discover_cases
from npcseg.io.images import image_stem, read_image, write_image
from npcseg.io.volume import Grid

logger = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"
LABELS = {"background": 0, "tumor": 1}
REFERENCE_SEQUENCE = "t2"
CHANNEL_NAMES = {"t1": "T1", "t2": "T2", "t1c": "T1C"}
"""The channel name written for each sequence."""
_CHANNEL_ALIASES = {
    "t1": {"t1", "t1w", "t1wi", "t1weighted"},
    "t2": {"t2", "t2w", "t2wi", "t2weighted"},
    "t1c": {"t1c", "t1ce", "cet1", "cet1w", "cet1wi", "t1gd", "t1post", "t1contrast", "t1wic", "t1wice", "t1cwi"},
}


@dataclass(frozen=True)
class NnunetExport:
    """What :func:`export_nnunet` wrote.

    Attributes:
        dataset_dir: the dataset folder.
        channel_names: channel index (as a string) -> name, as in ``dataset.json``.
        training: case ids written to ``imagesTr`` / ``labelsTr``.
        test: case ids written to ``imagesTs`` (no label).
        resampled: ``(case_id, sequence)`` pairs resampled onto T2 through a registration.
    """

    dataset_dir: Path
    channel_names: dict[str, str]
    training: tuple[str, ...]
    test: tuple[str, ...]
    resampled: tuple[tuple[str, str], ...]


def sequence_of_channel(name: str) -> str | None:
    """The cohort sequence an nnU-Net channel name stands for (letter case, ``-``, ``_`` and spaces ignored)."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return next((sequence for sequence, aliases in _CHANNEL_ALIASES.items() if key in aliases), None)


def export_nnunet(
    cohort: Path,
    dataset_dir: Path,
    *,
    sequences: Sequence[str] = ("t2", "t1"),
    registrations: Path | None = None,
    dataset_name: str | None = None,
    on_case: Callable[[str], None] | None = None,
) -> NnunetExport:
    """Write a cohort as an nnU-Net v2 raw dataset (see the module docstring).

    Args:
        cohort: the cohort folder.
        dataset_dir: the dataset folder to create (e.g. ``nnUNet_raw/Dataset501_NPC``); must not hold a
            ``dataset.json`` already.
        sequences: the channels, in order.
        registrations: the output folder of ``npcseg register`` (``<case_id>/<sequence>.tfm``, T2 -> sequence);
            ``None`` requires every channel on the T2 grid.
        dataset_name: ``name`` in ``dataset.json`` (default: the folder name).
        on_case: called with each case id once written.

    Raises:
        FileNotFoundError: a missing cohort, sequence file or transform (named).
        ValueError: unknown or repeated sequences, an existing dataset, a channel off the T2 grid without
            registrations, or a label off the T2 grid (naming the case and the difference).
    """
    sequences = tuple(sequences)
    unknown = [sequence for sequence in sequences if sequence not in SEQUENCES]
    if not sequences or unknown or len(set(sequences)) != len(sequences):
        raise ValueError(f"sequences {list(sequences)}: give distinct sequences from {list(SEQUENCES)}")
    dataset_dir = Path(dataset_dir)
    if (dataset_dir / "dataset.json").exists():
        raise ValueError(f"{dataset_dir}: already holds an nnU-Net dataset (dataset.json); choose a new folder")
    cases = discover_cases(Path(cohort))
    if not cases:
        raise FileNotFoundError(f"{cohort}: the cohort has no cases")
    for case in cases:  # fail before writing anything
        case.require(sorted({*sequences, REFERENCE_SEQUENCE}))
    training, test, resampled = [], [], []
    for case in cases:
        reference = read_image(case.image(REFERENCE_SEQUENCE))
        grid = Grid.from_image(reference)
        has_label = case.label is not None
        images_dir = dataset_dir / ("imagesTr" if has_label else "imagesTs")
        for channel, sequence in enumerate(sequences):
            image = reference if sequence == REFERENCE_SEQUENCE else read_image(case.image(sequence))
            image, was_resampled = _on_reference_grid(case, sequence, image, grid, registrations)
            if was_resampled:
                resampled.append((case.case_id, sequence))
            write_image(image, images_dir / f"{case.case_id}_{channel:04d}{FILE_ENDING}")
        if case.label is not None:
            label = read_image(case.label)
            mismatch = Grid.from_image(label).mismatch(grid)
            if mismatch is not None:
                raise ValueError(f"{case.label}: the label is not on the T2 grid of case {case.case_id}: {mismatch}")
            binary = sitk.Cast(sitk.NotEqual(label, 0), sitk.sitkUInt8)
            write_image(grid.apply_to(binary), dataset_dir / "labelsTr" / f"{case.case_id}{FILE_ENDING}")
            training.append(case.case_id)
        else:
            test.append(case.case_id)
        if on_case is not None:
            on_case(case.case_id)
    channel_names = {str(channel): CHANNEL_NAMES[sequence] for channel, sequence in enumerate(sequences)}
    description = {
        "channel_names": channel_names,
        "labels": dict(LABELS),
        "numTraining": len(training),
        "file_ending": FILE_ENDING,
        "name": dataset_name or dataset_dir.name,
        "description": f"exported by npcseg from cohort {Path(cohort).name}",
    }
    atomic_write_text(dataset_dir / "dataset.json", json.dumps(description, indent=1) + "\n")
    return NnunetExport(dataset_dir, channel_names, tuple(training), tuple(test), tuple(resampled))


def _on_reference_grid(
    case: Case, sequence: str, image: sitk.Image, grid: Grid, registrations: Path | None
) -> tuple[sitk.Image, bool]:
    """``image`` on the T2 grid: as it is, with T2's exact geometry, or resampled through the registration."""
    if sequence == REFERENCE_SEQUENCE:
        return image, False
    if registrations is not None:
        from npcseg.registration.cohort import load_transform
        from npcseg.registration.resample import resample_onto

        transform = load_transform(Path(registrations), case.case_id, sequence)
        return resample_onto(image, grid, transform, interpolator="linear", pixel_id=sitk.sitkFloat32), True
    mismatch = Grid.from_image(image).mismatch(grid)
    if mismatch is not None:
        raise ValueError(
            f"{case.image(sequence)}: case {case.case_id}: {sequence} is not on the T2 grid ({mismatch}); nnU-Net "
            f"needs every channel on one grid: pass --registrations DIR (from `npcseg register`) to resample "
            f"{sequence} onto T2, or export only sequences on the T2 grid"
        )
    return grid.apply_to(image), False


def import_nnunet(
    dataset_dir: Path,
    cohort: Path,
    *,
    channels: dict[int, str] | None = None,
    on_case: Callable[[str], None] | None = None,
) -> list[str]:
    """Read an nnU-Net v2 raw dataset into a cohort: channels become sequences, ``labelsTr`` labels.

    Args:
        dataset_dir: the dataset folder (with ``dataset.json``, ``imagesTr``, optionally ``labelsTr``,
            ``imagesTs``).
        cohort: the cohort folder (created); its ``cases/`` must not already hold these case ids.
        channels: channel index -> sequence, overriding the names in ``dataset.json``.
        on_case: called with each case id once written.

    Returns:
        The case ids written, sorted.

    Raises:
        FileNotFoundError: a missing ``dataset.json`` or channel file (named).
        ValueError: channels that name no sequence (or two the same), no T2 channel, case ids the cohort cannot
            use or already has, a label off its case's grid, or channels on different grids.
    """
    dataset_dir = Path(dataset_dir)
    description = _read_dataset_json(dataset_dir)
    sequence_of = _channel_sequences(dataset_dir, description["channel_names"], channels)
    ending = str(description.get("file_ending", FILE_ENDING))
    foreground = [int(v) for k, v in _label_values(description).items() if k != "background"]
    if len(foreground) > 1:
        logger.info("%s: labels %s are merged into one tumour label", dataset_dir, foreground)
    cases = {case: "imagesTr" for case in _case_ids(dataset_dir / "imagesTr", ending)}
    for case in _case_ids(dataset_dir / "imagesTs", ending):
        if case in cases:
            raise ValueError(f"{dataset_dir}: case {case!r} is in both imagesTr and imagesTs")
        cases[case] = "imagesTs"
    if not cases:
        raise FileNotFoundError(f"{dataset_dir}: no images in imagesTr/ or imagesTs/ ending in {ending}")
    cases_folder = Path(cohort) / CASES_DIRNAME
    for case_id in cases:
        if not CASE_ID_PATTERN.fullmatch(case_id):
            raise ValueError(f"{dataset_dir}: case id {case_id!r} is not usable as a case folder name")
        if (cases_folder / case_id).exists():
            raise ValueError(f"{cases_folder / case_id}: the cohort already has case {case_id!r}")
    for case_id in sorted(cases):
        folder = dataset_dir / cases[case_id]
        grid: Grid | None = None
        for channel, sequence in sorted(sequence_of.items()):
            path = folder / f"{case_id}_{channel:04d}{ending}"
            image = read_image(path)
            if grid is None:
                grid = Grid.from_image(image)
            elif (mismatch := Grid.from_image(image).mismatch(grid)) is not None:
                raise ValueError(f"{path}: channel {channel} is not on the grid of channel 0 ({mismatch})")
            write_image(image, cases_folder / case_id / f"{sequence}.nii.gz")
        label_path = dataset_dir / "labelsTr" / f"{case_id}{ending}"
        if cases[case_id] == "imagesTr" and label_path.is_file():
            assert grid is not None
            label = read_image(label_path)
            mismatch = Grid.from_image(label).mismatch(grid)
            if mismatch is not None:
                raise ValueError(f"{label_path}: the label is not on the grid of its images ({mismatch})")
            array = np.isin(sitk.GetArrayViewFromImage(label), foreground).astype(np.uint8)
            binary = grid.apply_to(sitk.GetImageFromArray(array))
            write_image(binary, cases_folder / case_id / "label.nii.gz")
        if on_case is not None:
            on_case(case_id)
    return sorted(cases)


def _read_dataset_json(dataset_dir: Path) -> dict[str, Any]:
    path = dataset_dir / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; {dataset_dir} is not an nnU-Net v2 raw dataset")
    try:
        description = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(description, dict) or not isinstance(description.get("channel_names"), dict):
        raise ValueError(f"{path}: has no 'channel_names' mapping")
    return description


def _label_values(description: dict[str, Any]) -> dict[str, int]:
    labels = description.get("labels") or dict(LABELS)
    values = {}
    for name, value in labels.items():
        if isinstance(value, list):  # region-based labels: take the region's first label
            value = value[0]
        values[str(name)] = int(value)
    return values


def _channel_sequences(
    dataset_dir: Path, channel_names: dict[str, Any], override: dict[int, str] | None
) -> dict[int, str]:
    sequence_of = {}
    for key, name in channel_names.items():
        channel = int(key)
        sequence = (override or {}).get(channel) or sequence_of_channel(str(name))
        if sequence is None or sequence not in SEQUENCES:
            raise ValueError(
                f"{dataset_dir / 'dataset.json'}: channel {channel} ({name!r}) names none of the sequences "
                f"{list(SEQUENCES)}; give the channels explicitly (e.g. --channels 0=t2,1=t1)"
            )
        sequence_of[channel] = sequence
    if len(set(sequence_of.values())) != len(sequence_of):
        raise ValueError(f"{dataset_dir / 'dataset.json'}: two channels map to one sequence: {sequence_of}")
    if REFERENCE_SEQUENCE not in sequence_of.values():
        raise ValueError(
            f"{dataset_dir / 'dataset.json'}: no T2 channel among {channel_names}; the cohort's labels lie on T2"
        )
    return sequence_of


def _case_ids(folder: Path, ending: str) -> list[str]:
    """Case identifiers of the ``<case>_<dddd><ending>`` files in ``folder``."""
    if not folder.is_dir():
        return []
    cases = set()
    for path in folder.iterdir():
        if path.name.endswith(ending) and image_stem(path) is not None:
            match = re.fullmatch(r"(.+)_(\d{4})", path.name[: -len(ending)])
            if match:
                cases.add(match.group(1))
    return sorted(cases)

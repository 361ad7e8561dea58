"""Predicting every case of a cohort (or one case folder) into an output folder.

Layout of ``OUTPUT``::

    <case_id>.nii.gz               uint8 0 / 1 mask on the case's original T2 grid
    <case_id>_probability.nii.gz   float32 foreground probability on the same grid (when asked)
    predict.json                   runs, settings, versions, per-case seconds and volumes (rewritten after each case)

Every file is written atomically. A case counts as done when its mask (and, when asked, its probability map)
exists; a rerun skips it. A rerun with other models or settings into the same folder is refused rather than
mixing two predictions. The input is never written to.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

import npcseg
from npcseg.inference.postprocessing import PostprocessingConfig
from npcseg.inference.predictor import CasePrediction, Predictor, load_predictor
from npcseg.io.atomic import atomic_write_text
from npcseg.io.cohort import CASE_ID_PATTERN, Case, cases_of
from npcseg.io.images import write_image

logger = logging.getLogger(__name__)

SUMMARY_FILENAME = "predict.json"
MASK_SUFFIX = ".nii.gz"
PROBABILITY_SUFFIX = "_probability.nii.gz"


def output_files(output: Path, case_id: str) -> tuple[Path, Path]:
    """The mask file and the probability file of ``case_id`` in ``output``."""
    return Path(output) / f"{case_id}{MASK_SUFFIX}", Path(output) / f"{case_id}{PROBABILITY_SUFFIX}"


def is_complete(output: Path, case_id: str, write_probability: bool) -> bool:
    """True when the case's outputs exist (the probability map only counts when it is asked for)."""
    mask, probability = output_files(output, case_id)
    return mask.is_file() and (probability.is_file() or not write_probability)


def versions() -> dict[str, str]:
    """Versions of the packages a prediction depends on."""
    return {
        "npcseg": npcseg.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "SimpleITK": sitk.Version_VersionString(),
        "python": platform.python_version(),
    }


def _check_folders(input_path: Path, output: Path) -> None:
    source, target = input_path.resolve(), output.resolve()
    if target == source or source in target.parents:
        raise ValueError(f"{output}: the output folder must lie outside the input {input_path}")
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: exists and is not a folder")


def _fingerprint(predictor: Predictor, write_probability: bool) -> dict[str, Any]:
    """What must match between runs into one output folder (models and everything that changes a mask)."""
    settings = predictor.describe()
    return {
        "checkpoints": [run["checkpoint"] for run in settings["runs"]],
        "threshold": settings["threshold"],
        "tta_flip": settings["tta_flip"],
        "postprocessing": settings["postprocessing"],
        "preprocessing": settings["preprocessing"],
        "write_probability": write_probability,
    }


def _previous_summary(output: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The existing ``predict.json`` (empty when none); ``ValueError`` when it was written with other settings."""
    path = output / SUMMARY_FILENAME
    if not path.is_file():
        return {}
    try:
        previous: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: unreadable ({error}); delete it or use another output folder") from error
    old = previous.get("fingerprint", {})
    changed = sorted(
        key
        for key in set(old) | set(fingerprint)
        if key != "write_probability" and old.get(key) != fingerprint.get(key)
    )
    if changed:
        raise ValueError(
            f"{output}: holds predictions made with other {', '.join(changed)}; use a new output folder, or "
            "delete this one"
        )
    return previous


def _case_entry(prediction: CasePrediction, write_seconds: float) -> dict[str, Any]:
    seconds = {stage: value for stage, value in prediction.seconds.items() if stage != "total"}
    seconds["write"] = write_seconds
    seconds["total"] = prediction.seconds["total"] + write_seconds
    return {
        "status": "predicted",
        "seconds": {key: round(value, 4) for key, value in seconds.items()},
        "foreground_voxels": prediction.foreground_voxels,
        "volume_ml": round(prediction.volume_ml, 4),
        "num_slices": int(prediction.mask.GetSize()[2]),
    }


def predict_cohort(
    run_dirs: Iterable[Path],
    input_path: Path,
    output: Path,
    *,
    write_probability: bool = False,
    tta_flip: bool = False,
    postprocessing: PostprocessingConfig | None = None,
    batch_size: int = 8,
    num_threads: int = 0,
    threshold: float | None = None,
    progress: bool = False,
    on_case_done: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Predict every case of a cohort folder (or one case folder) with an ensemble of trained runs.

    Args:
        run_dirs: training run folders and / or cross-validation folders (an ensemble of all folds).
        input_path: a cohort folder (``COHORT/cases/<case_id>/``) or a single case folder; never modified.
        output: the output folder (created); see the module docstring for its layout.
        write_probability: also write ``<case_id>_probability.nii.gz``.
        tta_flip: left-right flip test-time augmentation.
        postprocessing: the 3D clean-up (default: the paper's rule).
        batch_size: slices per forward pass.
        num_threads: torch CPU threads; 0 keeps torch's default.
        threshold: foreground probability threshold; ``None`` takes the runs'.
        progress: show a rich progress bar.
        on_case_done: called with each case id and its ``predict.json`` entry (predicted or skipped).

    Returns:
        The content of ``predict.json``.

    Raises:
        FileNotFoundError: a model or input folder, or a needed sequence of any case, is missing (checked before
            any case is predicted).
        ValueError: bad input (an image that is not 3D, output inside the input, runs that disagree, an output
            folder holding predictions made with other settings).
    """
    input_path, output = Path(input_path), Path(output)
    _check_folders(input_path, output)
    cases = cases_of(input_path)
    if not cases:
        raise ValueError(f"{input_path}: no cases found")
    for case in cases:
        if not CASE_ID_PATTERN.match(case.case_id):
            raise ValueError(f"{case.folder}: case id {case.case_id!r} is not a valid case id")

    start = time.perf_counter()
    predictor = load_predictor(
        run_dirs,
        tta_flip=tta_flip,
        postprocessing=postprocessing,
        batch_size=batch_size,
        num_threads=num_threads,
        threshold=threshold,
    )
    load_seconds = time.perf_counter() - start
    todo = [case for case in cases if not is_complete(output, case.case_id, write_probability)]
    for case in todo:  # every input problem surfaces before any output is written
        predictor.check_case(case)

    fingerprint = _fingerprint(predictor, write_probability)
    previous = _previous_summary(output, fingerprint)
    output.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, Any]] = {}
    todo_ids = {case.case_id for case in todo}
    for case in cases:
        if case.case_id not in todo_ids:
            entry = dict(previous.get("cases", {}).get(case.case_id, {}))
            entry["status"] = "skipped"
            entries[case.case_id] = entry
    summary: dict[str, Any] = {
        "input": str(input_path.resolve()),
        "output": str(output.resolve()),
        "versions": versions(),
        "settings": {**predictor.describe(), "write_probability": write_probability, "num_threads": num_threads},
        "fingerprint": fingerprint,
        "load_seconds": round(load_seconds, 4),
        "num_cases": len(cases),
        "num_skipped": len(cases) - len(todo),
        "status": "running",
        "cases": entries,
    }
    if summary["num_skipped"]:
        logger.info("%s: %d case(s) already predicted, skipped", output, summary["num_skipped"])
    for case_id, entry in entries.items():
        if on_case_done is not None:
            on_case_done(case_id, entry)

    _predict_all(predictor, todo, output, write_probability, progress, summary, on_case_done)
    summary["status"] = "complete"
    summary["cases"] = {case.case_id: summary["cases"][case.case_id] for case in cases}
    _write_summary(output, summary)
    return summary


def _write_summary(output: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(output / SUMMARY_FILENAME, json.dumps(summary, indent=1) + "\n")


def _predict_all(
    predictor: Predictor,
    todo: list[Case],
    output: Path,
    write_probability: bool,
    progress: bool,
    summary: dict[str, Any],
    on_case_done: Callable[[str, dict[str, Any]], None] | None,
) -> None:
    """Predict and write ``todo`` one case at a time, recording each in ``summary`` (and ``predict.json``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("cases", total=len(todo))
        for case in todo:
            prediction = predictor.predict_case(case)
            start = time.perf_counter()
            mask_path, probability_path = output_files(output, case.case_id)
            if write_probability:
                write_image(prediction.probability, probability_path)
            write_image(prediction.mask, mask_path)
            entry = _case_entry(prediction, time.perf_counter() - start)
            summary["cases"][case.case_id] = entry
            _write_summary(output, summary)
            logger.debug("%s: %s", case.case_id, entry["seconds"])
            if on_case_done is not None:
                on_case_done(case.case_id, entry)
            bar.advance(task)

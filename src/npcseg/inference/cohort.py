"""Predicting every case of a cohort (or one case folder) into an output folder, with trained networks or any other
:class:`CasePredictor` (the SeqSeg cascade, ``npcseg predict --method seqseg``).

Layout of ``OUTPUT``::

    <case_id>.nii.gz               uint8 0 / 1 mask on the case's original T2 grid
    <case_id>_probability.nii.gz   float32 foreground probability on the same grid (when asked)
    <case_id>_rtstruct.dcm         RT Structure Set of the mask, referencing the case's T2 DICOM series (when asked;
                                   the case must come from ``npcseg import dicom``, see npcseg.dicom.outputs)
    <case_id>_seg.dcm              DICOM SEG of the mask on the same series (when asked)
    predict.json                   runs, settings, versions, per-case seconds and volumes (rewritten after each case)

Every file is written atomically (a temporary file beside it, then a rename), the probability map and DICOM
files before the mask, so a killed run leaves no partial output: a case counts as done when its mask (and every
other file asked for) exists, and a rerun skips it and removes the temporary files a killed run left. A rerun with
other models or settings into the same folder is refused rather than mixing two predictions. The input is never
written to. One run at a time per output folder.

With ``num_workers`` > 1 the cases are shared among that many worker processes (spawned, each with its own copy
of the networks and ``cores // num_workers`` torch and SimpleITK threads unless ``num_threads`` says otherwise);
each worker writes its cases' files, the parent ``predict.json``. The masks are those of one worker (every case
is predicted by the same code with the same weights; with the same thread count, bit for bit).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import SimpleITK as sitk
import torch

import npcseg
from npcseg.inference.postprocessing import PostprocessingConfig
from npcseg.inference.predictor import DEFAULT_BATCH_SIZE, CasePrediction, Predictor, load_predictor
from npcseg.io.atomic import atomic_write_text
from npcseg.io.cohort import CASE_ID_PATTERN, Case, cases_of
from npcseg.io.images import write_image

logger = logging.getLogger(__name__)

SUMMARY_FILENAME = "predict.json"
MASK_SUFFIX = ".nii.gz"
PROBABILITY_SUFFIX = "_probability.nii.gz"


class CasePredictor(Protocol):
    """What :func:`predict_cohort` needs of a predictor: :class:`~npcseg.inference.predictor.Predictor` (networks)
    or :class:`~npcseg.cascade.predictor.CascadePredictor` (the SeqSeg cascade)."""

    registration: str

    def describe(self) -> dict[str, Any]:
        """Plain data for ``predict.json``: ``runs`` (each with a ``checkpoint``), ``threshold``, ``tta_flip``,
        ``postprocessing``, ``preprocessing`` and any other settings."""
        ...

    def check_case(self, case: Case) -> None:
        """Raise ``FileNotFoundError`` when the case lacks a needed sequence."""
        ...

    def predict_case(self, case: Case, transforms: dict[str, sitk.Transform] | None = None) -> CasePrediction:
        """The case's mask and probability on its original T2 grid."""
        ...


def output_files(output: Path, case_id: str) -> tuple[Path, Path]:
    """The mask file and the probability file of ``case_id`` in ``output``."""
    return Path(output) / f"{case_id}{MASK_SUFFIX}", Path(output) / f"{case_id}{PROBABILITY_SUFFIX}"


DICOM_OUTPUTS: tuple[str, ...] = ("rtstruct", "seg")
"""The DICOM files ``predict`` can write beside each mask."""


@dataclass(frozen=True)
class CaseOutputs:
    """Which files each case gets besides its mask.

    Attributes:
        probability: ``<case_id>_probability.nii.gz``.
        dicom: any of ``rtstruct`` and ``seg`` (``<case_id>_rtstruct.dcm``, ``<case_id>_seg.dcm``).
        roi_name: the ROI / segment label of the DICOM outputs.
    """

    probability: bool = False
    dicom: tuple[str, ...] = ()
    roi_name: str = "GTV"

    def __post_init__(self) -> None:
        unknown = [name for name in self.dicom if name not in DICOM_OUTPUTS]
        if unknown:
            raise ValueError(f"unknown DICOM output(s) {unknown}; use {list(DICOM_OUTPUTS)}")

    def extra_files(self, output: Path, case_id: str) -> list[Path]:
        """The files asked for besides the mask."""
        files = [output_files(output, case_id)[1]] if self.probability else []
        return files + [Path(output) / f"{case_id}_{name}.dcm" for name in self.dicom]


def is_complete(output: Path, case_id: str, outputs: CaseOutputs) -> bool:
    """True when the case's mask and every other file asked for exist."""
    mask = output_files(output, case_id)[0]
    return mask.is_file() and all(path.is_file() for path in outputs.extra_files(output, case_id))


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


def _fingerprint(predictor: CasePredictor, write_probability: bool) -> dict[str, Any]:
    """What must match between runs into one output folder (models and everything that changes a mask)."""
    settings = predictor.describe()
    fingerprint = {
        "checkpoints": [run["checkpoint"] for run in settings["runs"]],
        "threshold": settings["threshold"],
        "tta_flip": settings["tta_flip"],
        "postprocessing": settings["postprocessing"],
        "preprocessing": settings["preprocessing"],
        "write_probability": write_probability,
    }
    if predictor.registration != "trained":  # absent otherwise, as in folders written before the choice existed
        fingerprint["registration"] = predictor.registration
    if "cascade" in settings:  # the SeqSeg cascade's box and presence settings (absent for networks)
        fingerprint["cascade"] = settings["cascade"]
    return fingerprint


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
    dicom_outputs: Sequence[str] = (),
    roi_name: str = "GTV",
    tta_flip: bool = False,
    postprocessing: PostprocessingConfig | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_threads: int = 0,
    threshold: float | None = None,
    progress: bool = False,
    on_case_done: Callable[[str, dict[str, Any]], None] | None = None,
    num_workers: int = 1,
    registration: str = "trained",
    predictor: CasePredictor | None = None,
) -> dict[str, Any]:
    """Predict every case of a cohort folder (or one case folder) with an ensemble of trained runs, or with a
    given predictor (e.g. the SeqSeg cascade, :func:`npcseg.cascade.training.load_trained_cascade`).

    Args:
        run_dirs: training run folders and / or cross-validation folders (an ensemble of all folds); empty when
            ``predictor`` is given.
        input_path: a cohort folder (``COHORT/cases/<case_id>/``) or a single case folder; never modified.
        output: the output folder (created); see the module docstring for its layout.
        write_probability: also write ``<case_id>_probability.nii.gz``.
        dicom_outputs: also write any of ``rtstruct`` / ``seg`` for each case (every case must have been imported
            from DICOM; checked before any case is predicted).
        roi_name: the ROI / segment label of the DICOM outputs.
        tta_flip: left-right flip test-time augmentation.
        postprocessing: the 3D clean-up (default: the paper's rule).
        batch_size: slices per forward pass.
        num_threads: torch CPU threads (per worker); 0 keeps torch's default with one worker and gives each of
            several workers ``cores // num_workers``.
        threshold: foreground probability threshold; ``None`` takes the runs'.
        progress: show a rich progress bar.
        on_case_done: called with each case id and its ``predict.json`` entry (predicted or skipped).
        num_workers: worker processes predicting cases in parallel (1: in this process).
        registration: ``trained`` (the runs' registration settings) or ``fast`` (cheaper refinement, see
            :data:`npcseg.inference.predictor.REGISTRATION_CHOICES`).
        predictor: a loaded predictor to use instead of loading ``run_dirs``; its own settings then stand for
            ``tta_flip``, ``postprocessing``, ``batch_size``, ``threshold`` and ``registration`` (left at their
            defaults here); it runs in this process (``num_workers`` 1).

    Returns:
        The content of ``predict.json``.

    Raises:
        FileNotFoundError: a model or input folder, or a needed sequence of any case, is missing (checked before
            any case is predicted).
        ValueError: bad input (an image that is not 3D, output inside the input, runs that disagree, an output
            folder holding predictions made with other settings).
    """
    input_path, output = Path(input_path), Path(output)
    outputs = CaseOutputs(probability=write_probability, dicom=tuple(dicom_outputs), roi_name=roi_name)
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    _check_folders(input_path, output)
    cases = cases_of(input_path)
    if not cases:
        raise ValueError(f"{input_path}: no cases found")
    for case in cases:
        if not CASE_ID_PATTERN.match(case.case_id):
            raise ValueError(f"{case.folder}: case id {case.case_id!r} is not a valid case id")

    run_dirs_list = [Path(run_dir) for run_dir in run_dirs]
    start = time.perf_counter()
    if predictor is None:
        predictor = load_predictor(
            run_dirs_list,
            tta_flip=tta_flip,
            postprocessing=postprocessing,
            batch_size=batch_size,
            num_threads=num_threads,
            threshold=threshold,
            registration=registration,
        )
    else:
        _check_given_predictor(run_dirs_list, num_workers, num_threads)
    load_seconds = time.perf_counter() - start
    todo = [case for case in cases if not is_complete(output, case.case_id, outputs)]
    for case in todo:  # every input problem surfaces before any output is written
        predictor.check_case(case)
        if outputs.dicom:
            from npcseg.dicom.outputs import reference_series

            reference_series(case.folder, case.case_id)

    fingerprint = _fingerprint(predictor, write_probability)
    previous = _previous_summary(output, fingerprint)
    output.mkdir(parents=True, exist_ok=True)
    remove_temporary_files(output)
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
        "settings": {
            **predictor.describe(),
            "write_probability": write_probability,
            "num_threads": num_threads,
            "num_workers": num_workers,
        },
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

    start = time.perf_counter()
    if num_workers > 1 and len(todo) > 1:
        options = {
            "tta_flip": tta_flip,
            "postprocessing": postprocessing,
            "batch_size": batch_size,
            "threshold": threshold,
            "registration": registration,
            "num_threads": num_threads or max(1, (os.cpu_count() or 1) // num_workers),
        }
        results = _parallel_results(run_dirs_list, options, min(num_workers, len(todo)), todo, output, outputs)
    else:
        results = ((case, write_case(predictor.predict_case(case), case, output, outputs)) for case in todo)
    _record_all(results, len(todo), output, progress, summary, on_case_done)
    summary["predict_seconds"] = round(time.perf_counter() - start, 4)
    summary["status"] = "complete"
    summary["cases"] = {case.case_id: summary["cases"][case.case_id] for case in cases}
    _write_summary(output, summary)
    return summary


def _check_given_predictor(run_dirs: list[Path], num_workers: int, num_threads: int) -> None:
    """A given predictor excludes run folders and worker processes; ``num_threads`` still sets torch's threads."""
    if run_dirs:
        raise ValueError(
            f"give either run folders or a predictor, not both (run folders: {[str(d) for d in run_dirs]})"
        )
    if num_workers > 1:
        raise ValueError(f"a given predictor runs in this process; num_workers must be 1, got {num_workers}")
    if num_threads < 0:
        raise ValueError(f"num_threads must be 0 (torch default) or positive, got {num_threads}")
    if num_threads > 0:
        torch.set_num_threads(num_threads)


def _write_summary(output: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(output / SUMMARY_FILENAME, json.dumps(summary, indent=1) + "\n")


def remove_temporary_files(output: Path) -> list[Path]:
    """Delete the temporary files (``.<name>.tmp-*``) a killed run left in ``output``; returns them."""
    leftovers = [path for path in Path(output).glob(".*.tmp-*") if path.is_file()]
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        logger.info("%s: removed %d temporary file(s) of an interrupted run", output, len(leftovers))
    return leftovers


def write_case(
    prediction: CasePrediction, case: Case, output: Path, outputs: CaseOutputs | None = None
) -> dict[str, Any]:
    """Write one case's files atomically (probability map and DICOM files first, then the mask, which marks the
    case done); returns its ``predict.json`` entry."""
    outputs = outputs or CaseOutputs()
    start = time.perf_counter()
    mask_path, probability_path = output_files(output, prediction.case_id)
    if outputs.probability:
        write_image(prediction.probability, probability_path)
    if outputs.dicom:
        from npcseg.dicom.outputs import write_dicom_outputs

        write_dicom_outputs(
            prediction.mask,
            case.folder,
            output,
            case.case_id,
            rtstruct="rtstruct" in outputs.dicom,
            seg="seg" in outputs.dicom,
            roi_name=outputs.roi_name,
        )
    write_image(prediction.mask, mask_path)
    return _case_entry(prediction, time.perf_counter() - start)


_WORKER_PREDICTOR: Predictor | None = None
"""The networks of a worker process (loaded once by :func:`_start_worker`)."""


def _start_worker(run_dirs: list[Path], options: dict[str, Any]) -> None:
    """Worker initialiser: set the thread counts and load the networks."""
    global _WORKER_PREDICTOR
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(options["num_threads"]))
    _WORKER_PREDICTOR = load_predictor(run_dirs, **options)


def _worker_case(case: Case, output: Path, outputs: CaseOutputs) -> dict[str, Any]:
    """Worker job: predict and write one case; returns its entry."""
    assert _WORKER_PREDICTOR is not None, "worker used before _start_worker"
    return write_case(_WORKER_PREDICTOR.predict_case(case), case, output, outputs)


def _parallel_results(
    run_dirs: list[Path],
    options: dict[str, Any],
    num_workers: int,
    todo: list[Case],
    output: Path,
    outputs: CaseOutputs,
) -> Iterator[tuple[Case, dict[str, Any]]]:
    """``(case, entry)`` as a pool of spawned workers finishes the cases; on an error the queued cases are
    cancelled (the running ones finish and are written) and the error is raised."""
    context = multiprocessing.get_context("spawn")  # no fork of a process holding torch's and ITK's threads
    pool = ProcessPoolExecutor(
        max_workers=num_workers, mp_context=context, initializer=_start_worker, initargs=(run_dirs, options)
    )
    try:
        futures = {pool.submit(_worker_case, case, output, outputs): case for case in todo}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _record_all(
    results: Iterable[tuple[Case, dict[str, Any]]],
    total: int,
    output: Path,
    progress: bool,
    summary: dict[str, Any],
    on_case_done: Callable[[str, dict[str, Any]], None] | None,
) -> None:
    """Record each finished case in ``summary`` (and ``predict.json``) as it comes, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("predicting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("cases", total=total)
        for case, entry in results:
            summary["cases"][case.case_id] = entry
            _write_summary(output, summary)
            logger.debug("%s: %s", case.case_id, entry["seconds"])
            if on_case_done is not None:
                on_case_done(case.case_id, entry)
            bar.advance(task)

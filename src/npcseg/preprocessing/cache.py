"""The preprocessed cache: one compressed array file and one JSON record per case, plus a description of the
run.

Layout of ``OUT``::

    preprocessing.yaml        the resolved PreprocessingConfig (written first; a rerun must match it)
    preprocessing.json        config, package version, reference-grid rule, per-case summary (written last)
    cases/<case_id>.npz       image float32 (C, Z, S, S), label uint8 (Z, S, S) when the case has one
    cases/<case_id>.json      the case record (grids, offsets, normalisation, registration QA)

Every file is written atomically; a case counts as done when both of its files exist, so an interrupted run
resumes where it stopped. A rerun with a different config into the same folder is refused rather than mixing.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

import npcseg
from npcseg.config import config_differences, config_to_dict, load_config, save_config
from npcseg.io.atomic import atomic_path, atomic_write_text
from npcseg.io.cohort import CASE_ID_PATTERN, Case, cases_of
from npcseg.preprocessing.config import FIT, PreprocessingConfig
from npcseg.preprocessing.normalization import dataset_maxima
from npcseg.preprocessing.pipeline import PreprocessedCase, preprocess_case

logger = logging.getLogger(__name__)

CASES_DIRNAME = "cases"
SUMMARY_FILENAME = "preprocessing.json"
CONFIG_FILENAME = "preprocessing.yaml"


def case_files(out: Path, case_id: str) -> tuple[Path, Path]:
    """The array file and the record file of ``case_id`` in the cache ``out``."""
    folder = Path(out) / CASES_DIRNAME
    return folder / f"{case_id}.npz", folder / f"{case_id}.json"


def list_preprocessed(out: Path) -> list[str]:
    """Sorted ids of the cases whose array and record files both exist in the cache ``out``."""
    folder = Path(out) / CASES_DIRNAME
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.json") if path.with_suffix(".npz").is_file())


def load_preprocessed(out: Path, case_id: str) -> PreprocessedCase:
    """Read one case back from the cache ``out``."""
    arrays_path, record_path = case_files(out, case_id)
    for path in (arrays_path, record_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: case {case_id!r} is not in the preprocessed cache {out}")
    with np.load(arrays_path) as arrays:
        image = arrays["image"]
        label = arrays["label"] if "label" in arrays.files else None
    return PreprocessedCase(case_id=case_id, image=image, label=label, record=load_record(out, case_id))


def load_record(out: Path, case_id: str) -> dict[str, Any]:
    """The JSON record of one cached case (without reading its arrays)."""
    _, record_path = case_files(out, case_id)
    if not record_path.is_file():
        raise FileNotFoundError(f"{record_path}: case {case_id!r} is not in the preprocessed cache {out}")
    record: dict[str, Any] = json.loads(record_path.read_text())
    return record


def load_cache_config(out: Path) -> PreprocessingConfig:
    """The config a cache was built with (its ``preprocessing.yaml``)."""
    path = Path(out) / CONFIG_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a preprocessed cache (no {CONFIG_FILENAME})")
    return load_config(PreprocessingConfig, path)


def _write_case(out: Path, result: PreprocessedCase) -> None:
    arrays_path, record_path = case_files(out, result.case_id)
    arrays = {"image": result.image} if result.label is None else {"image": result.image, "label": result.label}
    with atomic_path(arrays_path) as temporary:
        np.savez_compressed(temporary, **arrays)  # type: ignore[arg-type]
    atomic_write_text(record_path, json.dumps(result.record, indent=1) + "\n")


def case_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The few numbers per case that ``preprocessing.json`` lists."""
    grid = record["resampled_grid"]
    registration = {
        sequence: {key: value for key, value in quality.items() if key in ("source", "final_metric", "seconds")}
        for sequence, quality in record["registration"].items()
    }
    return {
        "num_slices": record["image_shape_czyx"][1],
        "resampled_spacing_yx_mm": [grid["spacing_xyz"][1], grid["spacing_xyz"][0]],
        "resampled_shape_yx": record["crop_pad"]["shape_yx"],
        "offset_yx": record["crop_pad"]["offset_yx"],
        "label_foreground_voxels": record["label"].get("foreground_voxels_output"),
        "registration": registration,
    }


def _process_case(case: Case, config: PreprocessingConfig, registrations: Path | None, out: Path) -> dict[str, Any]:
    """Pre-process one case and write it (runs in a worker process when ``num_workers > 1``)."""
    transforms = None
    if registrations is not None:
        from npcseg.registration.cohort import load_transform

        transforms = {
            sequence: load_transform(registrations, case.case_id, sequence) for sequence in config.moving_sequences
        }
    result = preprocess_case(case, config, transforms)
    if registrations is not None:
        result.record["registration_folder"] = str(registrations)
    _write_case(out, result)
    return case_summary(result.record)


def _init_worker(num_threads: int) -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(num_threads)


def resolve_config(config: PreprocessingConfig, registrations: Path | None) -> PreprocessingConfig:
    """The config actually used: a registrations folder means ``registration_source='precomputed'``."""
    if registrations is None:
        if config.registration_source == "precomputed":
            raise ValueError(
                "registration_source is 'precomputed' but no registrations folder was given "
                "(the output of `npcseg register`)"
            )
        return config
    if config.registration_source == "identity":
        raise ValueError(f"a registrations folder ({registrations}) was given but registration_source is 'identity'")
    if not Path(registrations).is_dir():
        raise FileNotFoundError(f"{registrations}: registrations folder not found")
    return config.with_changes(registration_source="precomputed")


def _claim(out: Path, config: PreprocessingConfig) -> None:
    """Write ``preprocessing.yaml``, or check that an existing cache was built with the same config."""
    config_path = out / CONFIG_FILENAME
    if config_path.is_file():
        saved = load_cache_config(out)
        if saved != config:
            changes = config_differences(config_to_dict(saved), config_to_dict(config))
            raise ValueError(
                f"{out}: this cache was built with a different preprocessing config ({'; '.join(changes)}); "
                "use a new output folder, or delete this one to rebuild it"
            )
        return
    folder = out / CASES_DIRNAME
    if folder.is_dir() and any(folder.iterdir()):
        raise ValueError(f"{out}: holds cases but no {CONFIG_FILENAME}; refusing to mix with an unknown config")
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, config_path)


def _describe_reference_grid(config: PreprocessingConfig, summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if config.target_spacing_yx_mm is not None:
        spacing_rule = f"explicit {list(config.target_spacing_yx_mm)} mm"
    elif config.spacing_from == FIT:
        spacing_rule = f"reference field of view resized so its larger side spans {config.slice_size} voxels"
    else:
        spacing_rule = f"the in-plane spacing of each case's {config.spacing_from}"
    spacings = np.asarray([summary["resampled_spacing_yx_mm"] for summary in summaries.values()], dtype=float)
    description: dict[str, Any] = {
        "rule": (
            f"{config.reference_sequence}'s slices, direction and field of view (covered exactly), in-plane "
            f"spacing from {spacing_rule}; slices padded / cropped to "
            f"{config.slice_size} x {config.slice_size}"
        ),
        "reference_sequence": config.reference_sequence,
        "slice_size": config.slice_size,
    }
    if len(spacings):
        description["spacing_yx_mm"] = {
            "min": spacings.min(axis=0).tolist(),
            "median": np.median(spacings, axis=0).tolist(),
            "max": spacings.max(axis=0).tolist(),
        }
    return description


def preprocess_cohort(
    cohort: Path,
    out: Path,
    config: PreprocessingConfig,
    registrations: Path | None = None,
    num_workers: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Pre-process every case of a cohort into the cache ``out`` (resumable).

    Args:
        cohort: a cohort folder (``COHORT/cases/<case_id>/``) or a single case folder; never modified.
        out: the cache folder (created).
        config: the settings; with ``registrations`` its ``registration_source`` becomes ``precomputed``; with
            ``dataset_max`` normalisation and no maxima given, the maxima are measured over this cohort.
        registrations: the folder written by ``npcseg register`` (``<case_id>/<sequence>.tfm``), or ``None``.
        num_workers: cases processed in parallel (separate processes) when above 1.
        progress: show a rich progress bar.

    Returns:
        The content of ``preprocessing.json``.

    Raises:
        FileNotFoundError: the cohort, a needed sequence (naming the case folder) or a transform is missing.
        ValueError: ``out`` holds a cache built with another config, or other bad input.
    """
    cohort, out = Path(cohort), Path(out)
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    config = resolve_config(config, Path(registrations) if registrations is not None else None)
    cases = cases_of(cohort)
    if not cases:
        raise ValueError(f"{cohort}: no cases found")
    if out.resolve() == cohort.resolve() or cohort.resolve() in out.resolve().parents:
        raise ValueError(f"{out}: the output folder must lie outside the input {cohort}")
    for case in cases:
        if not CASE_ID_PATTERN.match(case.case_id):
            raise ValueError(f"{case.folder}: case id {case.case_id!r} is not a valid case id")
        case.require(config.required_sequences)
    if config.normalization == "dataset_max" and config.dataset_max is None:
        image_paths = [(sequence, case.image(sequence)) for case in cases for sequence in config.sequences]
        config = config.with_changes(dataset_max=dataset_maxima(image_paths))
        logger.info("dataset maxima over %d case(s): %s", len(cases), config.dataset_max)
    _claim(out, config)

    done = set(list_preprocessed(out))
    todo = [case for case in cases if case.case_id not in done]
    if registrations is not None:  # every transform readable before any work starts
        from npcseg.registration.cohort import load_transform

        for case in todo:
            for sequence in config.moving_sequences:
                load_transform(Path(registrations), case.case_id, sequence)
    summaries: dict[str, dict[str, Any]] = {
        case.case_id: case_summary(load_record(out, case.case_id)) for case in cases if case.case_id in done
    }
    if done & {case.case_id for case in cases}:
        logger.info("%s: %d case(s) already preprocessed, skipped", out, len(summaries))
    _run(todo, config, registrations, out, num_workers, progress, summaries.__setitem__)

    summary = {
        "package_version": npcseg.__version__,
        "cohort": str(cohort),
        "registrations": str(registrations) if registrations is not None else None,
        "config": config_to_dict(config),
        "reference_grid": _describe_reference_grid(config, summaries),
        "num_cases": len(cases),
        "num_skipped": len(cases) - len(todo),
        "cases": {case.case_id: summaries[case.case_id] for case in cases},
    }
    atomic_write_text(out / SUMMARY_FILENAME, json.dumps(summary, indent=1) + "\n")
    return summary


def _run(
    todo: list[Case],
    config: PreprocessingConfig,
    registrations: Path | None,
    out: Path,
    num_workers: int,
    progress: bool,
    collect: Callable[[str, dict[str, Any]], None],
) -> None:
    """Process ``todo`` serially or in worker processes, handing each case's summary to ``collect``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("preprocessing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("cases", total=len(todo))
        if num_workers == 1 or len(todo) <= 1:
            for case in todo:
                collect(case.case_id, _process_case(case, config, registrations, out))
                bar.advance(task)
            return
        num_threads = max(1, (os.cpu_count() or 1) // num_workers)
        executor = ProcessPoolExecutor(
            max_workers=min(num_workers, len(todo)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(num_threads,),
        )
        try:
            futures: dict[Future[dict[str, Any]], str] = {
                executor.submit(_process_case, case, config, registrations, out): case.case_id for case in todo
            }
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    collect(futures[future], future.result())  # re-raises a worker's error
                    bar.advance(task)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)

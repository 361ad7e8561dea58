"""Registering every case of a cohort (T1, T1c onto T2), resumably, and measuring TRE against known truth.

```text
OUT/<case_id>/<sequence>.tfm    the rigid transform, T2 physical -> sequence physical (sitk.WriteTransform)
OUT/<case_id>/<sequence>.json   QA record: metric, iterations, seconds, stop condition, config name, transform
OUT/registration.yaml           the resolved RegistrationConfig
OUT/registration.json           summary: config, cases, failures, package versions
```

Every file is written atomically and the ``.json`` after the ``.tfm``, so a (case, sequence) whose ``.json``
exists is complete and a rerun skips it. A rerun with other settings into the same folder is refused (it would mix
two configurations).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

import npcseg
from npcseg.config import config_to_dict, save_config
from npcseg.io.atomic import atomic_path, atomic_write_text
from npcseg.io.cohort import Case, discover_cases
from npcseg.io.images import read_image
from npcseg.registration.config import RegistrationConfig, load_registration_config
from npcseg.registration.rigid import register_rigid
from npcseg.registration.tre import Region, evaluation_points, target_registration_error

logger = logging.getLogger(__name__)

FIXED_SEQUENCE = "t2"
"""The reference sequence every other one is registered to (the label lies on its grid)."""
MOVING_SEQUENCES: tuple[str, ...] = ("t1", "t1c")
"""Sequences that can be registered to T2."""
CONFIG_FILENAME = "registration.yaml"
SUMMARY_FILENAME = "registration.json"
TRUTH_DIRNAME = "truth"
"""``COHORT/truth/<case_id>/<sequence>.tfm``: true transforms of a synthetic cohort, same convention."""

Progress = bool | Callable[[dict[str, Any]], None]


def transform_path(registrations: Path, case_id: str, sequence: str) -> Path:
    """``registrations/<case_id>/<sequence>.tfm``."""
    return Path(registrations) / case_id / f"{sequence}.tfm"


def record_path(registrations: Path, case_id: str, sequence: str) -> Path:
    """``registrations/<case_id>/<sequence>.json`` (the QA record; its presence marks the pair complete)."""
    return Path(registrations) / case_id / f"{sequence}.json"


def load_transform(registrations: Path, case_id: str, sequence: str) -> sitk.Transform:
    """The saved transform of one case and sequence (T2 physical -> sequence physical points).

    Raises:
        FileNotFoundError: naming the missing ``.tfm`` file.
    """
    path = transform_path(registrations, case_id, sequence)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no registration of case '{case_id}' sequence '{sequence}' (run `npcseg register` first)"
        )
    try:
        return sitk.ReadTransform(str(path)).Downcast()
    except RuntimeError as error:
        raise ValueError(f"{path}: unreadable transform file") from error


def _check_sequences(sequences: Sequence[str]) -> tuple[str, ...]:
    sequences = tuple(sequences)
    if not sequences:
        raise ValueError(f"no sequences to register; choose from {list(MOVING_SEQUENCES)}")
    unknown = [sequence for sequence in sequences if sequence not in MOVING_SEQUENCES]
    if unknown:
        raise ValueError(f"cannot register sequence(s) {unknown} to T2; choose from {list(MOVING_SEQUENCES)}")
    return tuple(dict.fromkeys(sequences))


def _check_output_config(out: Path, config: RegistrationConfig) -> None:
    existing = out / CONFIG_FILENAME
    if not existing.is_file():
        return
    previous = load_registration_config(existing, base=config)
    if config_to_dict(previous) != config_to_dict(config):
        raise ValueError(
            f"{out}: holds registrations made with other settings ({existing}); use a new output folder or "
            f"the same config (preset '{previous.name}')"
        )


def register_case(case: Case, sequence: str, out: Path, config: RegistrationConfig) -> dict[str, Any]:
    """Register one sequence of one case to its T2 and write the ``.tfm`` and ``.json``; returns the record."""
    fixed = read_image(case.image(FIXED_SEQUENCE))
    moving = read_image(case.image(sequence))
    result = register_rigid(fixed, moving, config)
    tfm = transform_path(out, case.case_id, sequence)
    with atomic_path(tfm) as temporary:
        sitk.WriteTransform(result.transform, str(temporary))
    record = {
        "case_id": case.case_id,
        "sequence": sequence,
        "fixed": str(case.image(FIXED_SEQUENCE)),
        "moving": str(case.image(sequence)),
        "config": config.name,
        **result.to_dict(),
    }
    atomic_write_text(record_path(out, case.case_id, sequence), json.dumps(record, indent=1) + "\n")
    return record


def _register_job(case: Case, sequence: str, out: Path, config: RegistrationConfig) -> dict[str, Any]:
    """Worker entry: a record, or a record with ``error`` for a user error (the run continues)."""
    try:
        return register_case(case, sequence, out, config)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        return {"case_id": case.case_id, "sequence": sequence, "error": str(error).strip()}


def register_cohort(
    cohort: Path,
    out: Path,
    config: RegistrationConfig,
    sequences: Sequence[str] = MOVING_SEQUENCES,
    num_workers: int = 1,
    progress: Progress = True,
) -> list[dict[str, Any]]:
    """Register T1 / T1c of every case of ``cohort`` to its T2 (see the module docstring for the outputs).

    Args:
        cohort: a cohort folder (``COHORT/cases/<case_id>/...``).
        out: the output folder (created); complete (case, sequence) pairs already there are skipped.
        config: registration settings (saved as ``registration.yaml``).
        sequences: moving sequences to register; a case without one of them is registered for the others.
        num_workers: parallel processes (each registration uses ``config.num_threads`` threads).
        progress: ``True`` for a progress bar on stderr, ``False`` for none, or a callback given each record.

    Returns:
        One record per (case, sequence), sorted; skipped pairs are read back from their ``.json`` with
        ``"skipped": true``.

    Raises:
        FileNotFoundError: a missing cohort, or a case without T2 (named) -- checked before any work.
        ValueError: bad sequences, an output folder made with other settings, or failed registrations (listed,
            after every other pair is done and saved).
    """
    sequences = _check_sequences(sequences)
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    cases = discover_cases(Path(cohort))
    if not cases:
        raise FileNotFoundError(f"{cohort}: the cohort has no case folders in cases/")
    for case in cases:
        case.image(FIXED_SEQUENCE)
    out = Path(out)
    _check_output_config(out, config)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / CONFIG_FILENAME)
    start = time.perf_counter()

    records: list[dict[str, Any]] = []
    jobs: list[tuple[Case, str]] = []
    for case in cases:
        for sequence in sequences:
            if sequence not in case.images:
                logger.info("%s: no %s image; skipped", case.case_id, sequence)
                continue
            done = record_path(out, case.case_id, sequence)
            if done.is_file() and transform_path(out, case.case_id, sequence).is_file():
                records.append({**json.loads(done.read_text()), "skipped": True})
            else:
                jobs.append((case, sequence))
    logger.info("registering %d pair(s) (%d already done) into %s", len(jobs), len(records), out)
    records.extend(_run_jobs(jobs, out, config, num_workers, progress))
    records.sort(key=lambda record: (record["case_id"], record["sequence"]))
    failures = [record for record in records if "error" in record]
    _write_summary(out, config, cases, records, time.perf_counter() - start)
    if failures:
        listing = "; ".join(f"{r['case_id']}/{r['sequence']}: {r['error']}" for r in failures)
        raise ValueError(f"registration failed for {len(failures)} pair(s): {listing}")
    return records


def _run_jobs(
    jobs: list[tuple[Case, str]], out: Path, config: RegistrationConfig, num_workers: int, progress: Progress
) -> list[dict[str, Any]]:
    callback, finish = _progress_callback(progress, len(jobs))
    records = []
    try:
        if num_workers == 1 or len(jobs) <= 1:
            for case, sequence in jobs:
                records.append(_register_job(case, sequence, out, config))
                callback(records[-1])
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a process holding ITK's threads
            with ProcessPoolExecutor(max_workers=min(num_workers, len(jobs)), mp_context=context) as pool:
                futures: list[Future[dict[str, Any]]] = [
                    pool.submit(_register_job, case, sequence, out, config) for case, sequence in jobs
                ]
                for future in as_completed(futures):
                    records.append(future.result())
                    callback(records[-1])
    finally:
        finish()
    return records


def _progress_callback(progress: Progress, total: int) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    if callable(progress):
        return progress, lambda: None
    if not progress or total == 0:
        return (lambda record: None), lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("register"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
    )
    task = bar.add_task("", total=total)
    bar.start()

    def advance(record: dict[str, Any]) -> None:
        bar.update(task, advance=1, description=f"{record['case_id']}/{record['sequence']}")

    return advance, bar.stop


def _write_summary(
    out: Path, config: RegistrationConfig, cases: list[Case], records: list[dict[str, Any]], seconds: float
) -> None:
    done = [record for record in records if "error" not in record]
    summary = {
        "config": config_to_dict(config),
        "num_cases": len(cases),
        "num_registered": len(done),
        "num_skipped": sum(1 for record in done if record.get("skipped")),
        "failures": [record for record in records if "error" in record],
        "seconds_this_run": round(seconds, 3),
        "mean_seconds_per_registration": float(np.mean([r["seconds"] for r in done])) if done else None,
        "pairs": [
            {key: record.get(key) for key in ("case_id", "sequence", "final_metric", "num_iterations", "seconds")}
            for record in done
        ],
        "versions": {
            "npcseg": npcseg.__version__ if hasattr(npcseg, "__version__") else "unknown",
            "SimpleITK": sitk.Version.VersionString(),
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    atomic_write_text(out / SUMMARY_FILENAME, json.dumps(summary, indent=1) + "\n")


def evaluate_tre(
    cohort: Path,
    registrations: Path,
    region: Region = "head",
    sequences: Sequence[str] = MOVING_SEQUENCES,
    max_points: int = 20_000,
) -> list[dict[str, Any]]:
    """Target registration error of saved registrations against ``COHORT/truth/<case_id>/<sequence>.tfm``.

    Args:
        cohort: a cohort with a ``truth/`` folder (a synthetic cohort).
        registrations: the output folder of :func:`register_cohort`.
        region: where on the T2 to measure: ``head`` (Otsu foreground of T2) or ``label`` (the label's
            bounding box).
        sequences: sequences to evaluate; pairs without a truth file or registration are left out.
        max_points: points per case (random subsample of the region, seeded).

    Returns:
        One row per (case, sequence): ``case_id``, ``sequence``, ``region``, ``num_points``, ``mean_mm``,
        ``max_mm`` (TRE of the registration) and ``initial_mean_mm`` (TRE of no registration, the identity).
    """
    truth_root = Path(cohort) / TRUTH_DIRNAME
    if not truth_root.is_dir():
        raise FileNotFoundError(f"{cohort}: no '{TRUTH_DIRNAME}/' folder of true transforms (not a synthetic cohort?)")
    sequences = _check_sequences(sequences)
    rows = []
    for case in discover_cases(Path(cohort)):
        pairs = [
            s
            for s in sequences
            if (truth_root / case.case_id / f"{s}.tfm").is_file()
            and transform_path(registrations, case.case_id, s).is_file()
        ]
        if not pairs:
            continue
        fixed = read_image(case.image(FIXED_SEQUENCE))
        label = None
        if region == "label":
            if case.label is None:
                raise FileNotFoundError(f"{case.folder}: no label file; cannot measure TRE in the label region")
            label = read_image(case.label)
        points = evaluation_points(fixed, region, label=label, max_points=max_points)
        for sequence in pairs:
            truth = sitk.ReadTransform(str(truth_root / case.case_id / f"{sequence}.tfm")).Downcast()
            estimated = load_transform(registrations, case.case_id, sequence)
            errors = target_registration_error(estimated, truth, points)
            initial = target_registration_error(sitk.Euler3DTransform(), truth, points)
            rows.append(
                {
                    "case_id": case.case_id,
                    "sequence": sequence,
                    "region": region,
                    "num_points": len(points),
                    "mean_mm": float(errors.mean()),
                    "max_mm": float(errors.max()),
                    "initial_mean_mm": float(initial.mean()),
                }
            )
    return rows


def summarize_tre(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per sequence (and ``all``): mean of the per-case mean TREs, the worst case mean and the largest max."""
    summary = {}
    for sequence in [*sorted({row["sequence"] for row in rows}), "all"]:
        selected = [row for row in rows if sequence in ("all", row["sequence"])]
        if selected:
            summary[sequence] = {
                "num_pairs": len(selected),
                "mean_mm": float(np.mean([row["mean_mm"] for row in selected])),
                "worst_mean_mm": float(np.max([row["mean_mm"] for row in selected])),
                "max_mm": float(np.max([row["max_mm"] for row in selected])),
            }
    return summary

"""The run folder's bookkeeping files: claiming a folder for a run, ``run.json`` and ``log.csv``.

``config.yaml`` is the folder's identity: it is written first, and a later call with another config, other case
ids or a cache of another preprocessing config is refused with the differences listed.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import npcseg
from npcseg.config import config_differences, config_to_dict, load_config, save_config
from npcseg.io.atomic import atomic_write_bytes, atomic_write_text
from npcseg.preprocessing.cache import CONFIG_FILENAME as CACHE_CONFIG_FILENAME
from npcseg.preprocessing.cache import load_cache_config
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.training.config import TrainingConfig

CONFIG_FILENAME = "config.yaml"
PREPROCESSING_FILENAME = "preprocessing.yaml"
RUN_FILENAME = "run.json"
LOG_FILENAME = "log.csv"
LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "val_dice", "val_slice_dice", "seconds", "learning_rate")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """Versions of npcseg, torch, numpy and Python."""
    return {
        "npcseg": npcseg.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def read_run_record(run_dir: Path) -> dict[str, Any]:
    """The content of ``RUN/run.json``."""
    path = Path(run_dir) / RUN_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a training run folder (no {RUN_FILENAME})")
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def update_run_record(run_dir: Path, **updates: Any) -> dict[str, Any]:
    """Merge ``updates`` into ``run.json`` (dict values merge key by key) and write it atomically."""
    record = read_run_record(run_dir)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(record.get(key), dict):
            record[key] = {**record[key], **value}
        else:
            record[key] = value
    atomic_write_text(Path(run_dir) / RUN_FILENAME, json.dumps(record, indent=1) + "\n")
    return record


def claim_run(
    run_dir: Path, cache: Path, config: TrainingConfig, train_ids: list[str], val_ids: list[str]
) -> dict[str, Any]:
    """Set up ``run_dir`` for this training run, or check that it holds this very run; returns its ``run.json``.

    Raises:
        ValueError: the folder holds other files, or a run with another config, other case ids, or trained on a
            cache of another preprocessing config.
    """
    return claim_run_folder(
        run_dir, cache, config, train_ids, val_ids, what="training run", record={"model": config.model}
    )


def claim_run_folder(
    run_dir: Path,
    cache: Path,
    config: Any,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    *,
    what: str,
    record: dict[str, Any],
    may_change: Sequence[str] = (),
) -> dict[str, Any]:
    """Claim ``run_dir`` for a run of ``config`` (a frozen config dataclass) trained on ``cache``'s cases.

    A new folder gets ``config.yaml``, ``preprocessing.yaml`` (the cache's) and ``run.json`` (``record`` + status,
    versions, seed, sequences, cache, case ids, timings); an existing one must hold this very run.

    Args:
        what: the kind of run, in messages ("training run", "detector run").
        record: extra ``run.json`` fields of a new run (they win over the common ones, e.g. ``versions``).
        may_change: config fields a rerun may change (the saved config is updated), e.g. ``epochs`` when the
            schedules do not depend on the total, so a longer run continues the shorter one.

    Returns:
        ``run.json``'s content.

    Raises:
        ValueError: the folder holds other files, or a run with other settings (the differing fields named), other
            case ids, or one trained on a cache of another preprocessing config.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILENAME
    cache_config = load_cache_config(cache)
    if config_path.is_file():
        changes = config_differences(config_to_dict(load_config(type(config), config_path)), config_to_dict(config))
        blocking = [change for change in changes if change.split(":", 1)[0] not in may_change]
        if blocking:
            raise ValueError(
                f"{run_dir}: holds a {what} with other settings ({'; '.join(blocking)}); "
                "use a new run folder, or delete this one to start over"
            )
        if changes:
            save_config(config, config_path)
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise ValueError(f"{run_dir}: not empty and not a {what} folder (no {CONFIG_FILENAME}); refusing")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, config_path)

    preprocessing_path = run_dir / PREPROCESSING_FILENAME
    if preprocessing_path.is_file():
        saved_preprocessing = load_config(PreprocessingConfig, preprocessing_path)
        changes = config_differences(config_to_dict(saved_preprocessing), config_to_dict(cache_config))
        if changes:
            raise ValueError(
                f"{run_dir}: was trained on a cache with another preprocessing config than {cache} "
                f"({'; '.join(changes)})"
            )
    else:
        atomic_write_bytes(preprocessing_path, (Path(cache) / CACHE_CONFIG_FILENAME).read_bytes())

    run_path = run_dir / RUN_FILENAME
    if not run_path.is_file():
        created: dict[str, Any] = {
            "status": "created",
            "versions": versions(),
            "seed": config.seed,
            "sequences": list(config.sequences),
            "cache": str(cache),
            "train_ids": list(train_ids),
            "val_ids": list(val_ids),
            "timings": {"created": _now()},
            "sessions": 0,
            **record,
        }
        atomic_write_text(run_path, json.dumps(created, indent=1) + "\n")
        return created
    saved = read_run_record(run_dir)
    for name, wanted in (("train_ids", train_ids), ("val_ids", val_ids)):
        if list(saved.get(name, [])) != list(wanted):
            raise ValueError(
                f"{run_dir}: holds a {what} with other {name} ({saved.get(name)}, now {list(wanted)}); "
                "use a new run folder"
            )
    return saved


def start_session(run_dir: Path, **facts: Any) -> None:
    """Mark the run as running and count one more training session (facts: slice counts, parameters)."""
    record = read_run_record(run_dir)
    facts = {"versions": versions(), **facts}  # a caller may record more versions (the detector: gymnasium's)
    update_run_record(
        run_dir,
        status="running",
        sessions=int(record.get("sessions", 0)) + 1,
        timings={"last_session_started": _now()},
        **facts,
    )


def finish_run(run_dir: Path, *, timings: dict[str, Any], **facts: Any) -> None:
    """Mark the run complete with its timings (plus the finishing time) and other facts (``result=...``)."""
    update_run_record(run_dir, status="complete", timings={**timings, "finished": _now()}, **facts)


def write_log(run_dir: Path, rows: Sequence[dict[str, float]], columns: Sequence[str] = LOG_COLUMNS) -> None:
    """Rewrite ``log.csv`` (one row per finished epoch; ``columns``, by default :data:`LOG_COLUMNS`) atomically;
    a value missing from a row is written as nan."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {key: (int(row[key]) if key == "epoch" else repr(float(row.get(key, math.nan)))) for key in columns}
        )
    atomic_write_text(Path(run_dir) / LOG_FILENAME, buffer.getvalue())


def read_log(run_dir: Path) -> list[dict[str, float]]:
    """The rows of ``log.csv`` as floats (``epoch`` as a whole number).

    Raises:
        FileNotFoundError: the run folder has no log.
    """
    path = Path(run_dir) / LOG_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training log")
    with path.open(newline="") as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]

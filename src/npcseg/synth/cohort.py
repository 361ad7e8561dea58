"""Writing a synthetic cohort to disk in the layout of :mod:`npcseg.io.cohort`.

```text
OUT/cases/<case_id>/{t1,t2,t1c,label}.nii.gz   images; the label (uint8 0/1) lies on the T2 grid
OUT/truth/<case_id>/{t1,t1c}.tfm               true rigid transforms T2 physical -> series physical
OUT/truth/<case_id>/clinical.json              the case's clinical row (written last: marks the case complete)
OUT/previews/<case_id>.png                     previews of the first few cases
OUT/clinical.csv                               one row per case
OUT/synth.json                                 seed, number of cases, resolved config, npcseg version
```

Every file is written atomically; a rerun into the same folder skips complete cases, so an interrupted run
resumes. A rerun with another seed or config is refused (it would mix two cohorts).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import SimpleITK as sitk

import npcseg
from npcseg.config import config_from_dict, config_to_dict
from npcseg.io.atomic import atomic_path, atomic_write_text
from npcseg.io.cohort import CASES_DIRNAME, CLINICAL_FILENAME
from npcseg.io.images import write_image
from npcseg.synth.case import CLINICAL_COLUMNS, SyntheticCase, case_id, synthesize_case
from npcseg.synth.config import SynthConfig
from npcseg.synth.physics import SEQUENCE_NAMES

logger = logging.getLogger(__name__)

TRUTH_DIRNAME = "truth"
PREVIEWS_DIRNAME = "previews"
RECORD_FILENAME = "synth.json"
CLINICAL_JSON = "clinical.json"


def _suffix(config: SynthConfig) -> str:
    return ".nii.gz" if config.compress else ".nii"


def case_is_complete(out: Path, identifier: str, config: SynthConfig) -> bool:
    """True when every file of case ``identifier`` exists (its clinical row is written last)."""
    suffix = _suffix(config)
    case_folder = Path(out) / CASES_DIRNAME / identifier
    truth = Path(out) / TRUTH_DIRNAME / identifier
    files = [case_folder / f"{stem}{suffix}" for stem in (*SEQUENCE_NAMES, "label")]
    files += [truth / "t1.tfm", truth / "t1c.tfm", truth / CLINICAL_JSON]
    return all(path.is_file() for path in files)


def write_case(case: SyntheticCase, out: Path, config: SynthConfig, *, preview: bool) -> None:
    """Write one case's images, label, true transforms, clinical row and (optionally) preview."""
    suffix = _suffix(config)
    case_folder = Path(out) / CASES_DIRNAME / case.case_id
    for sequence, image in case.images.items():
        write_image(image, case_folder / f"{sequence}{suffix}", compress=config.compress)
    write_image(case.label, case_folder / f"label{suffix}", compress=config.compress)
    truth = Path(out) / TRUTH_DIRNAME / case.case_id
    for sequence, transform in case.transforms.items():
        with atomic_path(truth / f"{sequence}.tfm") as temporary:
            sitk.WriteTransform(transform, str(temporary))
    if preview:
        from npcseg.synth.previews import write_preview

        write_preview(case, Path(out) / PREVIEWS_DIRNAME / f"{case.case_id}.png", num_slices=config.preview_slices)
    atomic_write_text(truth / CLINICAL_JSON, json.dumps(case.clinical, indent=1) + "\n")


def _generate(case_index: int, seed: int, config: SynthConfig, out: Path) -> str:
    """Generate and write case ``case_index`` (runs in a worker process when ``num_workers > 1``)."""
    case = synthesize_case(case_index, seed, config)
    write_case(case, out, config, preview=case_index < config.num_previews)
    return case.case_id


def _check_record(out: Path, seed: int, config: SynthConfig) -> None:
    """Refuse to add cases to a cohort made with another seed or config."""
    path = Path(out) / RECORD_FILENAME
    if not path.is_file():
        return
    try:
        record = json.loads(path.read_text())
        previous = config_from_dict(SynthConfig, record["config"], where=str(path))
        previous_seed = int(record["seed"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: unreadable synthetic cohort record ({error}); use a new output folder") from error
    if previous_seed != seed or previous != config:
        raise ValueError(
            f"{path}: this folder holds a synthetic cohort made with seed {previous_seed} and another config "
            f"(or seed); use a new output folder or the same settings (seed {seed} requested)"
        )


def _write_clinical(out: Path) -> list[str]:
    """Collect every complete case's clinical row into ``clinical.csv``; returns the case ids in order."""
    truth = Path(out) / TRUTH_DIRNAME
    rows: list[dict[str, Any]] = []
    for path in sorted(truth.glob(f"*/{CLINICAL_JSON}")):
        if (Path(out) / CASES_DIRNAME / path.parent.name).is_dir():
            rows.append(json.loads(path.read_text()))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CLINICAL_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(Path(out) / CLINICAL_FILENAME, buffer.getvalue())
    return [str(row["case_id"]) for row in rows]


def synthesize_cohort(
    out: Path,
    num_cases: int,
    seed: int,
    config: SynthConfig | None = None,
    num_workers: int = 1,
    on_case_done: Callable[[str], None] | None = None,
) -> list[str]:
    """Generate cases ``0 .. num_cases - 1`` into ``out`` (skipping complete ones) and write the cohort files.

    Args:
        out: output folder (created if needed).
        num_cases: number of cases.
        seed: cohort seed; case ``i`` is the same for every ``num_cases``.
        config: generator settings (defaults: :class:`SynthConfig`).
        num_workers: worker processes (1: generate in this process).
        on_case_done: called with each case id when it is written or found complete.

    Returns:
        The ids of the cases ``0 .. num_cases - 1``.
    """
    config = config if config is not None else SynthConfig()
    if num_cases < 1:
        raise ValueError(f"number of cases must be at least 1, got {num_cases}")
    if seed < 0:
        raise ValueError(f"seed must not be negative, got {seed}")
    if num_workers < 1:
        raise ValueError(f"number of workers must be at least 1, got {num_workers}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    _check_record(out, seed, config)
    out.mkdir(parents=True, exist_ok=True)
    identifiers = [case_id(index) for index in range(num_cases)]
    todo = [index for index, identifier in enumerate(identifiers) if not case_is_complete(out, identifier, config)]
    for identifier in identifiers:
        if on_case_done is not None and case_is_complete(out, identifier, config):
            on_case_done(identifier)
    logger.info("synthesising %d of %d cases into %s (%d complete)", len(todo), num_cases, out, num_cases - len(todo))
    if num_workers == 1 or len(todo) <= 1:
        for index in todo:
            done = _generate(index, seed, config, out)
            if on_case_done is not None:
                on_case_done(done)
    else:
        with ProcessPoolExecutor(max_workers=min(num_workers, len(todo), os.cpu_count() or 1)) as pool:
            futures = [pool.submit(_generate, index, seed, config, out) for index in todo]
            for future in futures:
                done = future.result()
                if on_case_done is not None:
                    on_case_done(done)
    all_cases = _write_clinical(out)
    record = {
        "generator": "npcseg.synth",
        "npcseg_version": npcseg.__version__,
        "seed": seed,
        "num_cases": len(all_cases),
        "case_ids": all_cases,
        "config": config_to_dict(config),
    }
    atomic_write_text(out / RECORD_FILENAME, json.dumps(record, indent=1) + "\n")
    return identifiers

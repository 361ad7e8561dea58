"""Cohort throughput and peak memory of ``predict`` and ``train`` on a synthetic cohort; prints one JSON object.

1. ``synthesise``: ``--cases`` synthetic patients (``--size small`` by default, ``full`` for the paper's
   acquisition).
2. ``predict``: :func:`npcseg.inference.cohort.predict_cohort` of the whole cohort with an untrained DEU
   (``--model`` widths, ``deu`` pre-processing, registration ``--registration``) on ``--workers`` processes:
   seconds, patients per hour, and the peak resident memory (``resource.getrusage`` ``ru_maxrss``) of the process
   that runs it and of its largest worker. With ``--baseline-workers B`` the cohort is first predicted with B
   workers in the same run and ``predict_speedup_vs_baseline`` is the ratio of the two times.
3. ``train``: pre-processing of the cohort into a cache (``registration_source: identity``: training speed does
   not depend on the registration) and :func:`npcseg.training.trainer.train` for one epoch of at most
   ``--train-slices`` slices (batch ``--batch-size``): slices per second and peak resident memory (the trainer
   holds the whole training set in memory).

Every stage runs in a fresh process, so each peak is that stage's own. ``extrapolated_500`` scales the measured
rates to 500 patients (stated as an extrapolation: linear in the number of patients and, for training, in the
number of slices; memory for training grows with the cohort, see ``train_dataset_mb``).

Usage::

    .venv/bin/python benchmarks/throughput.py [--cases 4] [--size small] [--workers 1] [--threads 1]
    .venv/bin/python benchmarks/throughput.py --cases 500 --size full --workers 16      # the full measurement
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from npcseg.preprocessing.config import preset
from npcseg.training.config import TrainingConfig
from untrained_runs import WIDTHS, make_run

BYTES_PER_SLICE = 256 * 256 * (2 * 4 + 1)
"""A training slice in memory: two float32 channels and a uint8 label of 256 x 256."""
SLICES_PER_FULL_PATIENT = 32.5
"""Mean slices of a full-size synthetic patient (20-45 slices), for the training extrapolation."""


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory (MB) of this process and of its largest finished child process."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"process_mb": round(own, 1), "largest_child_mb": round(children, 1)}


def predict_stage(run_dir: Path, cohort: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Child process: predict the cohort; seconds, per-case stage means and peak memory."""
    from npcseg.inference.cohort import predict_cohort

    start = time.perf_counter()
    summary = predict_cohort([run_dir], cohort, out, **options)
    seconds = time.perf_counter() - start
    entries = list(summary["cases"].values())
    stages = sorted({stage for entry in entries for stage in entry["seconds"]})
    return {
        "seconds": round(seconds, 2),
        "num_cases": len(entries),
        "mean_stage_seconds": {
            stage: round(sum(entry["seconds"].get(stage, 0.0) for entry in entries) / len(entries), 3)
            for stage in stages
        },
        "num_slices": sum(entry["num_slices"] for entry in entries),
        "peak_rss": peak_rss_mb(),
    }


def train_stage(cohort: Path, root: Path, options: dict[str, Any], threads: int) -> dict[str, Any]:
    """Child process: cache the cohort, train one short epoch; slices per second and peak memory."""
    from npcseg.data.dataset import labelled_cases
    from npcseg.preprocessing.cache import preprocess_cohort
    from npcseg.training.trainer import train

    torch.set_num_threads(threads)
    start = time.perf_counter()
    preprocess_cohort(
        cohort, root / "cache", preset("deu").with_changes(registration_source="identity"), progress=False
    )
    preprocess_seconds = time.perf_counter() - start
    config = TrainingConfig(num_threads=threads, epochs=1, checkpoint_every_steps=0, **options)
    case_ids = labelled_cases(root / "cache")
    result = train(root / "cache", root / "trained", config, case_ids, [], progress=False)
    record = json.loads((root / "trained" / "run.json").read_text())
    return {
        "preprocess_seconds_identity_registration": round(preprocess_seconds, 2),
        "train_seconds": round(result.seconds, 2),
        "num_train_slices": record["num_train_slices"],
        "train_dataset_mb": round(record["num_train_slices"] * BYTES_PER_SLICE / 2**20, 1),
        "slices_per_second": round(record["timings"]["train_slices_per_second"], 3),
        "peak_rss": peak_rss_mb(),
    }


def in_child(function: Any, *arguments: Any) -> Any:
    """Run ``function(*arguments)`` in a fresh spawned process (its own peak memory) and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *arguments).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4, help="synthetic patients")
    parser.add_argument("--size", choices=("small", "full"), default="small", help="synthetic acquisition preset")
    parser.add_argument("--workers", type=int, default=1, help="predict worker processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--model", choices=sorted(WIDTHS), default="narrow", help="DEU widths (untrained)")
    parser.add_argument("--registration", choices=("trained", "fast"), default="trained", help="predict registration")
    parser.add_argument("--batch-size", type=int, default=4, help="training slices per step")
    parser.add_argument("--train-slices", type=int, default=16, help="training slices in the timed epoch")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed")
    parser.add_argument("--skip-train", action="store_true", help="measure predict only")
    parser.add_argument(
        "--baseline-workers", type=int, default=0, help="also predict with this many workers first; report the ratio"
    )
    arguments = parser.parse_args()
    from npcseg.synth.cohort import synthesize_cohort
    from npcseg.synth.config import preset_config

    report: dict[str, Any] = {"arguments": vars(arguments), "cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="throughput_") as folder:
        root = Path(folder)
        start = time.perf_counter()
        config = dataclasses.replace(preset_config(arguments.size), num_previews=0)
        synthesize_cohort(root / "cohort", arguments.cases, arguments.seed, config)
        report["synthesise_seconds"] = round(time.perf_counter() - start, 2)
        make_run(root / "run", arguments.model)
        options = {
            "num_workers": arguments.workers,
            "num_threads": arguments.threads,
            "registration": arguments.registration,
        }
        if arguments.baseline_workers > 0:
            baseline_options = {**options, "num_workers": arguments.baseline_workers}
            baseline = in_child(predict_stage, root / "run", root / "cohort", root / "baseline", baseline_options)
            baseline["patients_per_hour"] = round(3600 * baseline["num_cases"] / baseline["seconds"], 1)
            report["predict_baseline"] = baseline
        predict = in_child(predict_stage, root / "run", root / "cohort", root / "out", options)
        predict["patients_per_hour"] = round(3600 * predict["num_cases"] / predict["seconds"], 1)
        report["predict"] = predict
        if arguments.baseline_workers > 0:
            report["predict_speedup_vs_baseline"] = round(report["predict_baseline"]["seconds"] / predict["seconds"], 3)
        if not arguments.skip_train:
            train_options = {
                "model_options": WIDTHS[arguments.model],
                "batch_size": arguments.batch_size,
                "max_slices_per_epoch": arguments.train_slices,
            }
            report["train"] = in_child(train_stage, root / "cohort", root, train_options, arguments.threads)
    seconds_per_patient = predict["seconds"] / predict["num_cases"]
    report["extrapolated_500"] = {
        "note": f"linear extrapolation from {arguments.cases} {arguments.size} patient(s), not a measurement",
        "predict_hours": round(500 * seconds_per_patient / 3600, 2),
    }
    if "train" in report:
        slices = 500 * SLICES_PER_FULL_PATIENT
        report["extrapolated_500"]["train_hours_per_epoch_full_size"] = round(
            slices / report["train"]["slices_per_second"] / 3600, 2
        )
        report["extrapolated_500"]["train_dataset_mb_full_size"] = round(slices * BYTES_PER_SLICE / 2**20)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""Where ``npcseg predict`` spends its time on one full-size synthetic patient; prints a table and one JSON object.

1. ``stages``: one patient (``npcseg.synth`` preset ``full``: T2 512 x 512 at 0.48 mm, T1 256 x 256 at 0.93 mm)
   through :meth:`npcseg.inference.Predictor.predict_case` with an untrained DEU (``--model narrow`` or
   ``default`` widths) and the ``deu`` pre-processing, broken into ``load`` (reading T1 and T2, timed on its own:
   ``predict_case`` reads them again inside ``preprocess``), ``register``, ``preprocess`` (without the load),
   ``network``, ``to_original``, ``postprocess`` and ``write`` (the mask NIfTI, atomically). Wall seconds and
   fractions of the total.
2. ``network_variants``: the same network on ``--slices`` of the patient's preprocessed slices, seconds per slice
   under ``no_grad`` at batch 1, and ``inference_mode`` at batch 1 / 2 / 4 / 8, in the default (contiguous) and
   the ``channels_last`` memory format; interleaved rounds (medians), wall and CPU (``process_time``: with one torch
   thread, robust to other jobs) seconds, ratios against the first.
3. ``registration_variants`` (``--registration``): the default rigid registration against cheaper refinements
   (Powell on 10 % / 5 % of the voxels instead of 20 %; one Powell pass on 10 %, the predictor's ``fast``), CPU
   seconds (``time.process_time``, robust to other jobs on the machine, since registration runs on one thread)
   and the target registration error against the synthetic truth (mean over the T2 head, mm).

Keep it short on a loaded machine: absolute times are noisy, the ratios within one run are what to compare.

Usage::

    .venv/bin/python benchmarks/profile_predict.py [--model narrow] [--threads 1] [--slices 8] [--registration]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import SimpleITK as sitk
import torch

from npcseg.inference import load_predictor
from npcseg.inference.cohort import write_case
from npcseg.io.cohort import cases_of
from npcseg.io.images import read_image
from npcseg.preprocessing.pipeline import preprocess_case
from npcseg.registration.config import RegistrationConfig
from npcseg.registration.rigid import register_rigid
from npcseg.registration.tre import evaluation_points, target_registration_error
from npcseg.synth.cohort import synthesize_cohort
from npcseg.synth.config import preset_config
from untrained_runs import WIDTHS, make_run

BATCH_SIZES = (1, 2, 4, 8)
REGISTRATION_VARIANTS = {
    "default": {},
    "refine_sampling_0.10": {"refine_sampling_fraction": 0.1},
    "refine_sampling_0.05": {"refine_sampling_fraction": 0.05},
    "fast (one pass, 0.10)": {"refine_sampling_fraction": 0.1, "refine_max_iterations": 1},
}


def stage_seconds(run_dir: Path, case: Any, out: Path, batch_size: int) -> tuple[dict[str, float], int]:
    """Wall seconds per stage of one patient (see the module docstring) and its number of network slices."""
    predictor = load_predictor([run_dir], batch_size=batch_size)
    start = time.perf_counter()
    for sequence in predictor.required_sequences:
        read_image(case.image(sequence))
    load = time.perf_counter() - start
    prediction = predictor.predict_case(case)
    entry = write_case(prediction, case, out)
    seconds = {"load": load, **{key: value for key, value in prediction.seconds.items() if key != "total"}}
    seconds["preprocess"] = max(seconds["preprocess"] - load, 0.0)
    seconds["write"] = entry["seconds"]["write"]
    seconds["total"] = sum(seconds.values())
    return seconds, int(prediction.record["image_shape_czyx"][1])


def network_variants(run_dir: Path, case: Any, num_slices: int, repeats: int) -> dict[str, Any]:
    """Seconds per slice of the network under several execution settings, interleaved (medians), with ratios."""
    predictor = load_predictor([run_dir])
    network = predictor.networks[0]
    config = predictor.prediction_preprocessing.with_changes(registration_source="identity")
    image = preprocess_case(dataclasses.replace(case, label=None), config).image
    middle = image.shape[1] // 2
    chosen = image[:, max(0, middle - num_slices // 2) : max(0, middle - num_slices // 2) + num_slices]
    slices = torch.from_numpy(chosen.transpose(1, 0, 2, 3).copy())
    channels_last = slices.contiguous(memory_format=torch.channels_last)

    def run(batch: int, mode: Callable[[], Any], inputs: torch.Tensor) -> Callable[[], None]:
        def forward() -> None:
            with mode():
                for start in range(0, inputs.shape[0], batch):
                    torch.sigmoid(network(inputs[start : start + batch]))

        return forward

    variants = {"no_grad_batch1": run(1, torch.no_grad, slices)}
    for batch in BATCH_SIZES:
        variants[f"inference_mode_batch{batch}"] = run(batch, torch.inference_mode, slices)
    for batch in BATCH_SIZES:
        variants[f"inference_mode_batch{batch}_channels_last"] = run(batch, torch.inference_mode, channels_last)
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(repeats + 1):
        for name, forward in variants.items():
            if name.endswith("channels_last"):
                network.to(memory_format=torch.channels_last)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            forward()
            elapsed_wall, elapsed_cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
            network.to(memory_format=torch.contiguous_format)
            if round_index:
                wall[name].append(elapsed_wall / slices.shape[0])
                cpu[name].append(elapsed_cpu / slices.shape[0])
    wall_median = {name: statistics.median(values) for name, values in wall.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "num_slices": int(slices.shape[0]),
        "wall_s_per_slice": {name: round(value, 4) for name, value in wall_median.items()},
        "cpu_s_per_slice": {name: round(value, 4) for name, value in cpu_median.items()},
        "wall_ratio_to_no_grad_batch1": _ratios(wall_median, "no_grad_batch1"),
        "cpu_ratio_to_no_grad_batch1": _ratios(cpu_median, "no_grad_batch1"),
        "wall_repeats": {name: [round(value, 4) for value in values] for name, values in wall.items()},
    }


def _ratios(values: dict[str, float], baseline: str) -> dict[str, float]:
    return {name: round(value / values[baseline], 3) for name, value in values.items()}


def registration_variants(cohort: Path, case: Any) -> dict[str, Any]:
    """CPU seconds and TRE (mean / max over the T2 head, mm) of each registration variant on T1 -> T2."""
    fixed, moving = read_image(case.image("t2")), read_image(case.image("t1"))
    truth = sitk.ReadTransform(str(cohort / "truth" / case.case_id / "t1.tfm")).Downcast()
    points = evaluation_points(fixed, "head")
    results: dict[str, Any] = {}
    for name, changes in REGISTRATION_VARIANTS.items():
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        result = register_rigid(fixed, moving, RegistrationConfig().with_changes(**changes))
        cpu = time.process_time() - start_cpu
        errors = target_registration_error(result.transform, truth, points)
        results[name] = {
            "cpu_s": round(cpu, 2),
            "wall_s": round(time.perf_counter() - start_wall, 2),
            "tre_mean_mm": round(float(errors.mean()), 3),
            "tre_max_mm": round(float(errors.max()), 3),
            "stages": [(stage["stage"], stage["iterations"], stage["seconds"]) for stage in result.stages],
        }
    baseline = results["default"]["cpu_s"]
    for record in results.values():
        record["cpu_ratio_to_default"] = round(record["cpu_s"] / baseline, 3)
    return results


def print_table(seconds: dict[str, float], num_slices: int) -> None:
    total = seconds["total"]
    print(f"{'stage':<14}{'seconds':>10}{'share':>8}")
    for stage, value in seconds.items():
        print(f"{stage:<14}{value:>10.2f}{value / total:>8.1%}")
    print(f"{num_slices} network slices: {seconds['network'] / num_slices:.3f} s per slice")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(WIDTHS), default="narrow", help="DEU widths (untrained weights)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (SimpleITK: the same)")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass in the stage profile")
    parser.add_argument("--slices", type=int, default=8, help="slices timed in the network variants (0: skip)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds of the network variants")
    parser.add_argument("--registration", action="store_true", help="also time registration variants with TRE")
    parser.add_argument("--no-stages", action="store_true", help="skip the stage profile (variants only)")
    parser.add_argument("--seed", type=int, default=1, help="synthetic patient seed")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(arguments.threads)
    report: dict[str, Any] = {"model": arguments.model, "threads": arguments.threads}
    with tempfile.TemporaryDirectory(prefix="profile_predict_") as folder:
        root = Path(folder)
        config = dataclasses.replace(preset_config("full"), num_previews=0)
        synthesize_cohort(root / "cohort", 1, arguments.seed, config)
        case = cases_of(root / "cohort")[0]
        make_run(root / "run", arguments.model)
        if not arguments.no_stages:
            seconds, num_slices = stage_seconds(root / "run", case, root / "out", arguments.batch_size)
            report["stages"] = {stage: round(value, 3) for stage, value in seconds.items()}
            report["shares"] = {stage: round(value / seconds["total"], 3) for stage, value in seconds.items()}
            report["num_slices"] = num_slices
            print_table(seconds, num_slices)
        if arguments.slices > 0:
            report["network_variants"] = network_variants(root / "run", case, arguments.slices, arguments.repeats)
        if arguments.registration:
            report["registration_variants"] = registration_variants(root / "cohort", case)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""Where a training step spends its time: data loading, forward, backward, optimiser step; prints a table and JSON.

Mirrors :mod:`npcseg.training.trainer`'s loop on a cache of ``--cases`` synthetic cases (bright discs on noise,
``--slices`` slices of 2 x ``--size`` x ``--size``, written in the preprocessed-cache layout):

* ``cache_load``: building the :class:`npcseg.data.dataset.SliceDataset` (it decompresses every ``.npz`` once and
  keeps the slices in memory), seconds per case and the resident size of the arrays;
* per optimiser step (median over ``--steps`` after one warm-up step, batch ``--batch-size``): ``data`` (the
  sampler's indices, slice copies and augmentation, as :func:`npcseg.training.data_parallel.batch_share`),
  ``forward`` (network and Dice loss), ``backward``, ``optimizer`` (Adam); wall and CPU (``process_time``)
  seconds, and each stage's share of the step;
* ``channels_last``: the forward + backward + step in the ``channels_last`` memory layout as a ratio to the
  default layout, measured in interleaved steps of the same run.

Usage::

    .venv/bin/python benchmarks/profile_train.py [--model narrow] [--batch-size 4] [--steps 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from npcseg.config import save_config
from npcseg.data.augmentation import AugmentationConfig
from npcseg.data.dataset import SliceDataset, SliceSampler
from npcseg.losses import build_loss
from npcseg.models import build_model
from npcseg.preprocessing.cache import case_files
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.training.data_parallel import batch_share
from untrained_runs import WIDTHS

STAGES = ("data", "forward", "backward", "optimizer")


def write_blob_cache(out: Path, num_cases: int, num_slices: int, size: int, seed: int = 0) -> list[str]:
    """A preprocessed cache of discs on noise (label = disc on every other slice); returns the case ids."""
    rng = np.random.default_rng(seed)
    save_config(PreprocessingConfig(slice_size=size), out / "preprocessing.yaml")
    yy, xx = np.mgrid[:size, :size]
    case_ids = []
    for index in range(num_cases):
        label = np.zeros((num_slices, size, size), dtype=np.uint8)
        for z in range(0, num_slices, 2):
            centre, radius = rng.uniform(0.3 * size, 0.7 * size, 2), rng.uniform(0.05 * size, 0.12 * size)
            label[z] = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
        noise = rng.normal(0.0, 0.05, (2, num_slices, size, size))
        image = np.clip(0.2 + 0.5 * label[None] + noise, 0, 1).astype(np.float32)
        case_id = f"case{index:03d}"
        arrays_path, record_path = case_files(out, case_id)
        arrays_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(arrays_path, image=image, label=label)
        record_path.write_text(json.dumps({"case_id": case_id, "image_shape_czyx": list(image.shape)}))
        case_ids.append(case_id)
    return case_ids


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


def profile_steps(
    model: torch.nn.Module, dataset: SliceDataset, batch_size: int, steps: int, seed: int = 0
) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each stage of ``steps`` training steps (after one warm-up step)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_function = build_loss("dice")
    sampler = SliceSampler(dataset.has_tumour, tumour_fraction=0.5, seed=seed)
    sampler.set_epoch(0)
    generator = torch.Generator().manual_seed(seed)
    augmentation = AugmentationConfig()
    timings: dict[str, dict[str, list[float]]] = {stage: {"wall": [], "cpu": []} for stage in STAGES}
    for step in range(steps + 1):
        if sampler.is_epoch_done:
            sampler.set_epoch(sampler.epoch + 1)
        measured: dict[str, tuple[float, float]] = {}
        start = clocks()
        indices = sampler.next_indices(batch_size)
        images, labels = batch_share(dataset, indices, list(range(len(indices))), augmentation, generator)
        measured["data"] = since(start)
        start = clocks()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(images), labels)
        measured["forward"] = since(start)
        start = clocks()
        loss.backward()
        measured["backward"] = since(start)
        start = clocks()
        optimizer.step()
        measured["optimizer"] = since(start)
        if step:
            for stage, (wall, cpu) in measured.items():
                timings[stage]["wall"].append(wall)
                timings[stage]["cpu"].append(cpu)
    return timings


def layout_ratio(model: torch.nn.Module, batch_size: int, size: int, repeats: int) -> dict[str, Any]:
    """CPU seconds of a forward + backward + step in the default and the channels_last layout, interleaved."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_function = build_loss("dice")
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, 2, size, size, generator=generator)
    labels = (torch.rand(batch_size, 1, size, size, generator=generator) > 0.9).float()

    def step(memory_format: torch.memory_format) -> Callable[[], float]:
        def run() -> float:
            model.to(memory_format=memory_format)  # type: ignore[call-overload]
            inputs = images.contiguous(memory_format=memory_format)
            start = time.process_time()
            optimizer.zero_grad(set_to_none=True)
            loss_function(model(inputs), labels).backward()
            optimizer.step()
            return time.process_time() - start

        return run

    runs = {"contiguous": step(torch.contiguous_format), "channels_last": step(torch.channels_last)}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(repeats + 1):
        for name, run in runs.items():
            elapsed = run()
            if round_index:
                cpu[name].append(elapsed)
    model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    medians = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "cpu_s_per_step": {name: round(value, 3) for name, value in medians.items()},
        "ratio_channels_last_to_contiguous": round(medians["channels_last"] / medians["contiguous"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(WIDTHS), default="narrow", help="DEU widths")
    parser.add_argument("--batch-size", type=int, default=4, help="slices per optimiser step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--size", type=int, default=256, help="slice side (multiple of 32)")
    parser.add_argument("--cases", type=int, default=4, help="cases in the synthetic cache")
    parser.add_argument("--slices", type=int, default=24, help="slices per case")
    parser.add_argument(
        "--layout-repeats", type=int, default=2, help="rounds of the channels_last comparison (0: skip)"
    )
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    torch.manual_seed(0)
    model = build_model("deu", {**WIDTHS[arguments.model], "sequences": ["t1", "t2"]})
    report: dict[str, Any] = {"model": arguments.model, "batch_size": arguments.batch_size, "size": arguments.size}
    with tempfile.TemporaryDirectory(prefix="profile_train_") as folder:
        cache = Path(folder) / "cache"
        case_ids = write_blob_cache(cache, arguments.cases, arguments.slices, arguments.size)
        start = clocks()
        dataset = SliceDataset(cache, case_ids, ("t1", "t2"))
        wall, cpu = since(start)
        resident = sum(image.nbytes for image in dataset.images) + sum(label.nbytes for label in dataset.labels)
        report["cache_load"] = {
            "wall_s_per_case": round(wall / len(case_ids), 3),
            "cpu_s_per_case": round(cpu / len(case_ids), 3),
            "resident_mb": round(resident / 2**20, 1),
            "num_slices": len(dataset),
        }
        timings = profile_steps(model, dataset, arguments.batch_size, arguments.steps)
    medians = {stage: {clock: statistics.median(values) for clock, values in t.items()} for stage, t in timings.items()}
    step_wall = sum(value["wall"] for value in medians.values())
    step_cpu = sum(value["cpu"] for value in medians.values())
    report["step"] = {
        stage: {
            "wall_s": round(value["wall"], 4),
            "cpu_s": round(value["cpu"], 4),
            "cpu_share": round(value["cpu"] / step_cpu, 3),
        }
        for stage, value in medians.items()
    }
    report["step_wall_s"], report["step_cpu_s"] = round(step_wall, 3), round(step_cpu, 3)
    report["slices_per_cpu_s"] = round(arguments.batch_size / step_cpu, 3)
    if arguments.layout_repeats > 0:
        report["channels_last"] = layout_ratio(model, arguments.batch_size, arguments.size, arguments.layout_repeats)
    print(f"{'stage':<12}{'wall s':>9}{'cpu s':>9}{'cpu share':>11}")
    for stage, value in report["step"].items():
        print(f"{stage:<12}{value['wall_s']:>9.3f}{value['cpu_s']:>9.3f}{value['cpu_share']:>11.1%}")
    print(f"cache load: {report['cache_load']['cpu_s_per_case']:.3f} CPU s per case")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

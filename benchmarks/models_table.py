"""Size, cost and CPU speed of every registered network in one table (markdown, then one JSON object, on stdout).

For each network in ``npcseg.models.model_names()`` at its DEFAULT config (so its default sequences: two for
``deu``, one for ``deu-single``, three for the SeqSeg networks): trainable parameters, GFLOPs per slice
(:func:`npcseg.models.flops.count_flops`, 2 x multiply-adds of Conv2d / ConvTranspose2d / Linear layers; LSTM cells
are not counted, they are well under 0.01 GFLOPs here) at each ``--sizes`` value, and inference milliseconds per
slice on the CPU (float32, ``eval()``, ``torch.inference_mode``, ``--threads`` torch threads, 1 by default) for each
size and each ``--batches`` value. Timings are medians over ``--repeats`` rounds after one untimed warm-up pass per
network and size (at the smallest batch); every round times each setting for all networks in turn, so a change of
machine load hits all networks alike. The default run (11 networks, 2 sizes, 2 batches, 2 repeats) takes about 8
minutes on the project's 2-core machine, most of it in ``ddnn`` and ``fc-densenet``; ``--models`` times a subset
(``deu`` is always added, for the ratios). ``x DEU`` figures divide a network's figure by ``deu``'s from the same
run (below 1 = faster / smaller than DEU).

Usage::

    .venv/bin/python benchmarks/models_table.py [--sizes 256 384] [--batches 1 4] [--repeats 2] [--threads 1]
        [--models deu ranet ...] [--json table.json] [--markdown table.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from npcseg.models import build_model, make_config, model_names
from npcseg.models.flops import count_flops, count_parameters

REFERENCE = "deu"


def time_forward(model: nn.Module, images: torch.Tensor) -> float:
    """Wall seconds of one inference-mode forward pass."""
    with torch.inference_mode():
        start = time.perf_counter()
        model(images)
        return time.perf_counter() - start


def measure(
    names: list[str], sizes: list[int], batches: list[int], repeats: int
) -> tuple[dict[str, dict[str, Any]], float]:
    """Per network: parameters, GFLOPs and ms per slice (see the module docstring); returns (records, wall seconds)."""
    started = time.perf_counter()
    torch.manual_seed(0)
    models = {name: build_model(name).eval() for name in names}
    channels = {name: len(make_config(name).sequences) for name in names}
    generator = torch.Generator().manual_seed(1)
    inputs = {
        (name, size, batch): torch.rand(batch, channels[name], size, size, generator=generator)
        for name in names
        for size in sizes
        for batch in batches
    }
    timings: dict[tuple[str, int, int], list[float]] = {key: [] for key in inputs}
    for size in sizes:  # warm-up: one untimed pass per network and size, at the smallest batch
        for name in names:
            time_forward(models[name], inputs[name, size, min(batches)])
    for _ in range(repeats):
        for size in sizes:
            for batch in batches:
                for name in names:
                    timings[name, size, batch].append(time_forward(models[name], inputs[name, size, batch]) / batch)
    records: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        records[name] = {
            "sequences": channels[name],
            "parameters": count_parameters(model),
            "gflops_per_slice": {
                str(size): round(count_flops(model, (1, channels[name], size, size)) / 1e9, 3) for size in sizes
            },
            "ms_per_slice": {
                f"{size}_b{batch}": round(1000 * statistics.median(timings[name, size, batch]), 1)
                for size in sizes
                for batch in batches
            },
            "ms_per_slice_repeats": {
                f"{size}_b{batch}": [round(1000 * value, 1) for value in timings[name, size, batch]]
                for size in sizes
                for batch in batches
            },
        }
    return records, time.perf_counter() - started


def add_ratios(records: dict[str, dict[str, Any]]) -> None:
    """Add ``ratio_to_deu`` (parameters, GFLOPs and ms per slice divided by DEU's) to every record, in place."""
    if REFERENCE not in records:
        return
    reference = records[REFERENCE]
    for record in records.values():
        record["ratio_to_deu"] = {
            "parameters": round(record["parameters"] / reference["parameters"], 3),
            "gflops_per_slice": {
                key: round(value / reference["gflops_per_slice"][key], 3)
                for key, value in record["gflops_per_slice"].items()
            },
            "ms_per_slice": {
                key: round(value / reference["ms_per_slice"][key], 3) for key, value in record["ms_per_slice"].items()
            },
        }


def markdown_table(records: dict[str, dict[str, Any]], sizes: list[int], batches: list[int]) -> str:
    """One row per network; timing and GFLOP cells carry ``(ratio x DEU)`` when DEU was measured."""

    def cell(value: float, ratio: float | None) -> str:
        return f"{value:g}" if ratio is None else f"{value:g} ({ratio:.2f}x)"

    header = ["model", "C", "parameters (M)"]
    header += [f"GFLOPs/slice {size}" for size in sizes]
    header += [f"ms/slice {size} b{batch}" for size in sizes for batch in batches]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, record in records.items():
        ratios = record.get("ratio_to_deu")
        row = [f"`{name}`", str(record["sequences"])]
        row.append(cell(round(record["parameters"] / 1e6, 2), ratios["parameters"] if ratios else None))
        for size in sizes:
            key = str(size)
            row.append(cell(record["gflops_per_slice"][key], ratios["gflops_per_slice"][key] if ratios else None))
        for size in sizes:
            for batch in batches:
                key = f"{size}_b{batch}"
                row.append(cell(record["ms_per_slice"][key], ratios["ms_per_slice"][key] if ratios else None))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384], help="slice sides in pixels")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="batch sizes timed")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds after the warm-up round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--models", nargs="+", default=None, help="registered names (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON object to this file")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the markdown table to this file")
    arguments = parser.parse_args()
    names = arguments.models or model_names()
    unknown = sorted(set(names) - set(model_names()))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {model_names()}")
    if REFERENCE not in names:
        names = [REFERENCE, *names]  # the ratio column needs DEU measured in the same run
    if arguments.repeats < 1 or arguments.threads < 1 or min(arguments.sizes + arguments.batches) < 1:
        parser.error("--repeats, --threads, --sizes and --batches must be at least 1")
    torch.set_num_threads(arguments.threads)
    load_before = os.getloadavg()
    records, wall_s = measure(names, arguments.sizes, arguments.batches, arguments.repeats)
    add_ratios(records)
    table = markdown_table(records, arguments.sizes, arguments.batches)
    report = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average_start": [round(value, 2) for value in load_before],
            "load_average_end": [round(value, 2) for value in os.getloadavg()],
        },
        "settings": {"sizes": arguments.sizes, "batches": arguments.batches, "repeats": arguments.repeats},
        "networks": records,
        "wall_s": round(wall_s, 1),
    }
    if arguments.markdown is not None:
        arguments.markdown.write_text(table + "\n")
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(report, indent=1) + "\n")
    print(table)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""DEU speed against a FLOP-matched MONAI U-Net on the CPU or a GPU, 256 x 256 slices; prints one JSON object.

Measured in the same run, so every figure sees the same machine load:

1. ``networks``: the default ``deu``, the narrow DEU (widths 8 ... 128, growth rate 8) and a MONAI
   ``UNet(spatial_dims=2, in_channels=2, out_channels=1, strides=(2, 2, 2, 2), num_res_units=2)`` whose channels
   ``(c, 2c, 4c, 8c, 16c)`` are chosen so its FLOPs per slice are closest to the default DEU's. For each:
   parameters, GFLOPs per slice (:func:`npcseg.models.flops.count_flops`: 2 x multiply-adds of the convolutions),
   inference ms per slice at ``npcseg predict``'s batch (2, ``channels_last`` on the CPU) under
   ``torch.inference_mode``, training slices per second (Adam, Dice loss,
   batch 4, forward + backward + step), and the achieved inference GFLOP/s as a fraction of the machine's float32
   matmul GFLOP/s (2048 x 2048 ``torch.matmul``). Timings are medians over ``--repeats`` rounds after one warm-up
   round; each round runs two matmuls and then every network's inference batch and training step in turn, so a
   change of load (other jobs) hits all networks alike. ``ratios_to_monai`` divides each DEU figure by the MONAI
   U-Net's (for training slices per second, above 1 means DEU is faster; for ms per slice, below 1).
   ``batch{N}_slices_per_s`` / ``batch{N}_gflops_per_s`` / ``batch{N}_fraction_of_matmul``: inference at batch
   ``--large-batch`` (default 64), timed once per network after the rounds (on a CPU a batch of 64 default-DEU
   slices takes tens of seconds).
2. ``pipeline``: one patient at a time through the library, for each of ``--cases`` full-size synthetic cases:
   ``load`` (read T1, T2), ``register`` (rigid T1 -> T2, default settings), ``preprocess`` (the ``deu`` preset with
   that transform; it reads the files again itself), ``network`` (all slices, the predictor's batch and layout,
   sigmoid),
   ``to_original`` (probabilities back onto the T2 grid), ``postprocess`` (threshold 0.5, drop single-slice
   components) and ``write`` (mask NIfTI). Load, register and preprocess are shared; the last four stages run once
   per network (DEU default and MONAI U-Net, untrained weights: the masks are not meaningful, only the timings).

Devices: ``--device auto`` (CUDA when present, else the CPU), ``cpu`` or ``cuda``; on CUDA every timing
synchronises the device, the matmul runs there too, and ``--bf16`` runs the networks under bfloat16 autocast
(refused on the CPU, where bfloat16 autocast was about 30x slower than float32 on this machine). The pipeline's
other stages (registration, resampling, post-processing) always run on the CPU. No GPU is needed.

Usage::

    .venv/bin/python benchmarks/deu_speed.py [--cases 1] [--threads 2] [--repeats 5] [--seed 0] [--device auto]
        [--bf16] [--large-batch 64]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from monai.networks.nets import UNet
from torch import nn

from npcseg.inference.postprocessing import postprocess
from npcseg.inference.predictor import DEFAULT_BATCH_SIZE
from npcseg.io.cohort import cases_of
from npcseg.io.images import read_image, write_image
from npcseg.losses import build_loss
from npcseg.models import build_model
from npcseg.models.flops import count_flops, count_parameters
from npcseg.preprocessing.config import preset
from npcseg.preprocessing.pipeline import preprocess_case, to_original_grid
from npcseg.registration.config import RegistrationConfig
from npcseg.registration.rigid import register_rigid
from npcseg.synth.cohort import synthesize_cohort
from npcseg.synth.config import preset_config

SIZE = 256
CHANNELS = 2
INFERENCE_BATCH = DEFAULT_BATCH_SIZE  # what `npcseg predict` uses (2)
TRAINING_BATCH = 4
MATMUL_SIZE = 2048
THRESHOLD = 0.5
NARROW = {"widths": [8, 16, 32, 64, 128, 128], "growth_rate": 8}
SEQUENCES = {"sequences": ["t1", "t2"]}
DEVICE = torch.device("cpu")
"""Where the networks and the matmul run (``--device``)."""
MEMORY_FORMAT = torch.channels_last
"""Inference layout: ``channels_last`` on the CPU as in ``npcseg predict`` (set in ``main``); training: default."""
BF16 = False
"""Run the networks under bfloat16 autocast (``--bf16``, CUDA only)."""


def synchronize() -> None:
    """Wait for queued GPU work (timings on CUDA are asynchronous otherwise)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def autocast() -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA with ``--bf16``; otherwise nothing."""
    if BF16:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def timed(function: Callable[[], object]) -> float:
    """Wall seconds of one call of ``function`` (device work included)."""
    synchronize()
    start = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - start


def matmul_step() -> Callable[[], object]:
    """One ``MATMUL_SIZE`` square float32 ``torch.matmul`` (2 n^3 FLOPs)."""
    generator = torch.Generator().manual_seed(0)
    first = torch.rand(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(DEVICE)
    second = torch.rand(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(DEVICE)
    return lambda: torch.matmul(first, second)


def monai_unet(base: int) -> nn.Module:
    """The MONAI U-Net with channels ``(base, 2 base, 4 base, 8 base, 16 base)``."""
    return UNet(
        spatial_dims=2,
        in_channels=CHANNELS,
        out_channels=1,
        channels=tuple(base * 2**level for level in range(5)),
        strides=(2, 2, 2, 2),
        num_res_units=2,
    )


def slice_flops(model: nn.Module) -> int:
    """FLOPs of one ``SIZE`` x ``SIZE`` dual-sequence slice."""
    return count_flops(model, (1, CHANNELS, SIZE, SIZE))


def matched_monai_base(target_flops: int) -> tuple[int, int]:
    """The base width whose MONAI U-Net FLOPs per slice are closest to ``target_flops``; returns (base, FLOPs).

    Convolution FLOPs grow about as base^2, so the estimate from base 32 is refined by counting its neighbours.
    """
    reference = slice_flops(monai_unet(32))
    estimate = max(1, round(32 * math.sqrt(target_flops / reference)))
    counted = {base: slice_flops(monai_unet(base)) for base in (estimate - 1, estimate, estimate + 1) if base >= 1}
    best = min(counted, key=lambda base: abs(counted[base] - target_flops))
    return best, counted[best]


def inference_step(model: nn.Module, batch_size: int = INFERENCE_BATCH) -> Callable[[], object]:
    """One forward pass of ``batch_size`` slices with sigmoid under inference mode (a copy of the model in eval
    mode and ``MEMORY_FORMAT``, as the predictor runs it)."""
    model = copy.deepcopy(model).to(memory_format=MEMORY_FORMAT)  # type: ignore[call-overload]
    batch = torch.rand(batch_size, CHANNELS, SIZE, SIZE, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    batch = batch.contiguous(memory_format=MEMORY_FORMAT)

    def forward() -> None:
        model.eval()
        with torch.inference_mode(), autocast():
            torch.sigmoid(model(batch))

    return forward


def training_step(model: nn.Module) -> Callable[[], object]:
    """One Adam step (Dice loss, batch ``TRAINING_BATCH``, forward + backward + step; model in train mode)."""
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(TRAINING_BATCH, CHANNELS, SIZE, SIZE, generator=generator).to(DEVICE)
    labels = torch.zeros(TRAINING_BATCH, 1, SIZE, SIZE)
    labels[:, :, 100:140, 110:150] = 1.0  # a tumour-sized square
    labels = labels.to(DEVICE)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_function = build_loss("dice")

    def step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = model(images)
        loss = loss_function(logits.float(), labels)
        loss.backward()
        optimizer.step()

    return step


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def benchmark_networks(
    models: dict[str, nn.Module], repeats: int, large_batch: int, flops: dict[str, int]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Matmul GFLOP/s and size, cost and speed of every network (see the module docstring).

    Every timed round runs the matmul and then each network once, in turn, after one untimed warm-up round, so a
    change of machine load during the run affects every network alike. Returns (matmul record, per-network records).
    """
    matmul = matmul_step()
    inference = {name: inference_step(model) for name, model in models.items()}
    training = {name: training_step(model) for name, model in models.items()}
    matmul_s: list[float] = []
    inference_s: dict[str, list[float]] = {name: [] for name in models}
    training_s: dict[str, list[float]] = {name: [] for name in models}
    for round_index in range(repeats + 1):
        times = [timed(matmul) for _ in range(2)]
        timings = {name: (timed(inference[name]), timed(training[name])) for name in models}
        if round_index == 0:
            continue  # warm-up
        matmul_s.extend(times)
        for name, (forward, step) in timings.items():
            inference_s[name].append(forward / INFERENCE_BATCH)
            training_s[name].append(step)
    matmul_median = statistics.median(matmul_s)
    matmul_gflops = 2 * MATMUL_SIZE**3 / matmul_median / 1e9
    matmul_record = {
        "size": MATMUL_SIZE,
        "seconds": round(matmul_median, 4),
        "gflops_per_s": round(matmul_gflops, 2),
        "timings_s": [round(value, 4) for value in matmul_s],
    }
    results: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        seconds_per_slice = statistics.median(inference_s[name])
        achieved = flops[name] / seconds_per_slice / 1e9
        results[name] = {
            "parameters": count_parameters(model),
            "gflops_per_slice": round(flops[name] / 1e9, 3),
            "inference_ms_per_slice": round(1000 * seconds_per_slice, 1),
            "inference_ms_per_slice_repeats": [round(1000 * value, 1) for value in inference_s[name]],
            "training_slices_per_s": round(TRAINING_BATCH / statistics.median(training_s[name]), 3),
            "training_step_s_repeats": [round(value, 3) for value in training_s[name]],
            "inference_gflops_per_s": round(achieved, 2),
            "inference_fraction_of_matmul": round(achieved / matmul_gflops, 3),
        }
        if large_batch > 0:
            seconds = timed(inference_step(model, large_batch))
            large_achieved = flops[name] * large_batch / seconds / 1e9
            results[name][f"batch{large_batch}_slices_per_s"] = round(large_batch / seconds, 3)
            results[name][f"batch{large_batch}_gflops_per_s"] = round(large_achieved, 2)
            results[name][f"batch{large_batch}_fraction_of_matmul"] = round(large_achieved / matmul_gflops, 3)
    return matmul_record, results


def network_probabilities(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """Sigmoid probabilities ``(Z, S, S)`` of a preprocessed image ``(C, Z, S, S)``, in batches of
    ``INFERENCE_BATCH`` slices in ``MEMORY_FORMAT`` (as the predictor does)."""
    model = copy.deepcopy(model).to(memory_format=MEMORY_FORMAT).eval()  # type: ignore[call-overload]
    slices = torch.from_numpy(np.ascontiguousarray(image.transpose(1, 0, 2, 3)))
    outputs = []
    with torch.inference_mode(), autocast():
        for start in range(0, slices.shape[0], INFERENCE_BATCH):
            logits = model(slices[start : start + INFERENCE_BATCH].to(DEVICE).contiguous(memory_format=MEMORY_FORMAT))
            outputs.append(torch.sigmoid(logits.float())[:, 0].cpu().numpy())
    return np.concatenate(outputs)


def pipeline_case(case: Any, models: dict[str, nn.Module], out: Path) -> dict[str, Any]:
    """Stage seconds of one patient: shared load / register / preprocess, then per network the rest."""
    shared: dict[str, float] = {}
    start = time.perf_counter()
    t1 = read_image(case.image("t1"))
    t2 = read_image(case.image("t2"))
    shared["load"] = time.perf_counter() - start

    start = time.perf_counter()
    registration = register_rigid(t2, t1, RegistrationConfig())
    shared["register"] = time.perf_counter() - start

    start = time.perf_counter()
    preprocessed = preprocess_case(
        dataclasses.replace(case, label=None), preset("deu"), transforms={"t1": registration.transform}
    )
    shared["preprocess"] = time.perf_counter() - start
    num_slices = preprocessed.num_slices

    per_network: dict[str, Any] = {}
    for name, model in models.items():
        seconds = dict(shared)
        start = time.perf_counter()
        probabilities = network_probabilities(model, preprocessed.image)
        seconds["network"] = time.perf_counter() - start

        start = time.perf_counter()
        probability = to_original_grid(probabilities, preprocessed.record, is_mask=False)
        seconds["to_original"] = time.perf_counter() - start

        start = time.perf_counter()
        foreground = (sitk.GetArrayViewFromImage(probability) >= THRESHOLD).astype(np.uint8)
        mask_array = postprocess(foreground)
        seconds["postprocess"] = time.perf_counter() - start

        start = time.perf_counter()
        mask = sitk.GetImageFromArray(mask_array)
        mask.CopyInformation(probability)
        write_image(mask, out / f"{case.case_id}_{name}.nii.gz")
        seconds["write"] = time.perf_counter() - start

        total = sum(seconds.values())
        per_network[name] = {
            "seconds": {stage: round(value, 3) for stage, value in seconds.items()},
            "s_per_patient": round(total, 2),
            "ms_per_slice": round(1000 * total / num_slices, 1),
            "network_ms_per_slice": round(1000 * seconds["network"] / num_slices, 1),
            "foreground_voxels": int(np.count_nonzero(mask_array)),
        }
    return {
        "case_id": case.case_id,
        "t2_size_xyz": list(t2.GetSize()),
        "t1_size_xyz": list(t1.GetSize()),
        "network_slices": num_slices,
        "networks": per_network,
    }


def summarise_pipeline(cases: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Mean stage seconds, s per patient and ms per slice over the cases, per network, and DEU / MONAI ratios."""
    summary: dict[str, Any] = {}
    total_slices = sum(case["network_slices"] for case in cases)
    for name in names:
        stages = cases[0]["networks"][name]["seconds"]
        totals = [case["networks"][name]["s_per_patient"] for case in cases]
        summary[name] = {
            "mean_seconds": {
                stage: round(statistics.fmean(case["networks"][name]["seconds"][stage] for case in cases), 3)
                for stage in stages
            },
            "mean_s_per_patient": round(statistics.fmean(totals), 2),
            "ms_per_slice": round(1000 * sum(totals) / total_slices, 1),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1, help="full-size synthetic patients timed through predict")
    parser.add_argument("--threads", type=int, default=2, help="torch (and SimpleITK) threads")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of the network figures (after a warm-up)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic cohort seed")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the networks run")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the networks (CUDA only)")
    parser.add_argument("--large-batch", type=int, default=64, help="inference batch timed once per network (0: skip)")
    arguments = parser.parse_args()
    if arguments.cases < 1 or arguments.threads < 1 or arguments.repeats < 1 or arguments.large_batch < 0:
        parser.error("--cases, --threads and --repeats must be at least 1, --large-batch at least 0")
    global DEVICE, BF16, MEMORY_FORMAT
    if arguments.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU")
    DEVICE = torch.device("cuda" if arguments.device != "cpu" and torch.cuda.is_available() else "cpu")
    if arguments.bf16 and DEVICE.type != "cuda":
        parser.error("--bf16 is for CUDA only (bfloat16 autocast was about 30x slower than float32 on this CPU)")
    BF16 = arguments.bf16
    MEMORY_FORMAT = torch.channels_last if DEVICE.type == "cpu" else torch.contiguous_format
    torch.set_num_threads(arguments.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(arguments.threads)
    started = time.perf_counter()
    load_before = os.getloadavg()

    torch.manual_seed(0)
    deu = build_model("deu", SEQUENCES)
    narrow = build_model("deu", {**NARROW, **SEQUENCES})
    base, _ = matched_monai_base(slice_flops(deu))
    monai = monai_unet(base)
    models = {"deu": deu, "deu-narrow": narrow, "monai-unet": monai}
    flops = {name: slice_flops(model) for name, model in models.items()}  # counted on the CPU
    for model in models.values():
        model.to(DEVICE)

    matmul, networks = benchmark_networks(models, arguments.repeats, arguments.large_batch, flops)
    ratios: dict[str, dict[str, float | None]] = {}
    for name in ("deu", "deu-narrow"):
        ratios[name] = {
            key: ratio(networks[name][key], networks["monai-unet"][key])
            for key in ("parameters", "gflops_per_slice", "inference_ms_per_slice", "training_slices_per_s")
        }

    pipeline_models = {"deu": deu, "monai-unet": monai}
    with tempfile.TemporaryDirectory(prefix="deu_speed_") as folder:
        cohort, out = Path(folder) / "cohort", Path(folder) / "predictions"
        out.mkdir()
        start = time.perf_counter()
        config = dataclasses.replace(preset_config("full"), num_previews=0)
        synthesize_cohort(cohort, arguments.cases, arguments.seed, config)
        synthesis_s = time.perf_counter() - start
        cases = [pipeline_case(case, pipeline_models, out) for case in cases_of(cohort)]
    summary = summarise_pipeline(cases, list(pipeline_models))
    summary["ratio_deu_to_monai"] = {
        "s_per_patient": ratio(summary["deu"]["mean_s_per_patient"], summary["monai-unet"]["mean_s_per_patient"]),
        "network_stage": ratio(
            summary["deu"]["mean_seconds"]["network"], summary["monai-unet"]["mean_seconds"]["network"]
        ),
    }

    report = {
        "machine": {
            "device": str(DEVICE),
            "gpu": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else None,
            "bf16_autocast": BF16,
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "sitk_threads": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
            "load_average_start": [round(value, 2) for value in load_before],
            "load_average_end": [round(value, 2) for value in os.getloadavg()],
        },
        "matmul_float32": matmul,
        "monai_unet": {
            "channels": [base * 2**level for level in range(5)],
            "strides": [2, 2, 2, 2],
            "num_res_units": 2,
        },
        "networks": networks,
        "ratios_to_monai": ratios,
        "pipeline": {"cases": cases, "summary": summary, "synthesis_s": round(synthesis_s, 1)},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

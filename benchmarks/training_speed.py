"""Training throughput on this CPU: slices per second of one training step (augmentation, forward, Dice loss,
backward, Adam), float32, 256 x 256 slices, for the default ``deu`` and the narrow option, batch 1 and 8.

Mirrors the trainer's inner loop (``npcseg.training.trainer``). Prints JSON, one record per setting, with the
median seconds per step over ``--steps`` timed steps after one warm-up step. Usage::

    python benchmarks/training_speed.py [--steps 3] [--threads 0] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from npcseg.data.augmentation import AugmentationConfig, augment
from npcseg.losses import build_loss
from npcseg.models import build_model, count_parameters

NARROW = {"widths": [8, 16, 32, 64, 128, 128], "growth_rate": 8}
SETTINGS = {"deu": {}, "deu-narrow": NARROW}


def seconds_per_step(options: dict[str, object], batch_size: int, size: int, steps: int) -> list[float]:
    torch.manual_seed(0)
    model = build_model("deu", {**options, "sequences": ["t1", "t2"]})
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_function = build_loss("dice")
    augmentation, generator = AugmentationConfig(), torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, 2, size, size)
    labels = (torch.rand(batch_size, 1, size, size) > 0.95).float()
    timings = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        pairs = [augment(images[index], labels[index], augmentation, generator) for index in range(batch_size)]
        batch = torch.stack([image for image, _ in pairs])
        reference = torch.stack([label for _, label in pairs])
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(batch), reference)
        loss.backward()
        optimizer.step()
        timings.append(time.perf_counter() - started)
    return timings[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--size", type=int, default=256, help="slice side in voxels (multiple of 32)")
    arguments = parser.parse_args()
    if arguments.threads > 0:
        torch.set_num_threads(arguments.threads)
    for name, options in SETTINGS.items():
        parameters = count_parameters(build_model("deu", {**options, "sequences": ["t1", "t2"]}))
        for batch_size in (1, 8):
            timings = seconds_per_step(options, batch_size, arguments.size, arguments.steps)
            median = statistics.median(timings)
            record = {
                "model": name,
                "parameters": parameters,
                "batch_size": batch_size,
                "size": arguments.size,
                "threads": torch.get_num_threads(),
                "seconds_per_step": round(median, 3),
                "slices_per_second": round(batch_size / median, 3),
                "step_timings": [round(value, 3) for value in timings],
            }
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()

"""DBW loss: cost of building a border-weight map on the fly against one training step, in the same run.

Usage: .venv/bin/python benchmarks/dbw_speed.py [--size 384] [--model attention-unet] [--repeats 5]

Prints the median milliseconds of `border_weight_map` for a tumour-sized ellipse (about 1 % of the slice, the
paper's average), a large disc (25 %) and an empty slice, the median seconds of one training step (forward +
DBW loss + backward + Adam) of the chosen network on three sequences, and the ratio map / step. A ratio well
below 1 % means the maps need no cache (npcseg.losses.dbw builds them on the fly).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from npcseg.losses.dbw import DBWLoss, border_weight_map
from npcseg.models import build_model


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384, help="slice side in voxels")
    parser.add_argument("--model", default="attention-unet", help="registered network for the training step")
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps (after one warm-up)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = args.size
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2
    masks = {
        "ellipse_1pct": ((yy - centre) ** 2 / (0.078 * size) ** 2 + (xx - centre) ** 2 / (0.047 * size) ** 2) <= 1,
        "disc_25pct": ((yy - centre) ** 2 + (xx - centre) ** 2) <= (0.28 * size) ** 2,
        "empty": np.zeros((size, size), dtype=bool),
    }
    map_ms = {
        name: 1e3 * _median_seconds(lambda mask=mask: border_weight_map(mask.astype(np.float32)), 40)
        for name, mask in masks.items()
    }
    model = build_model(args.model, {"sequences": ["t1", "t1c", "t2"]})
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    loss_function = DBWLoss()
    images = torch.randn(1, 3, size, size)
    labels = torch.from_numpy(masks["ellipse_1pct"].astype(np.float32))[None, None]

    def step() -> None:
        optimizer.zero_grad()
        loss_function(model(images), labels).backward()
        optimizer.step()

    step()  # warm-up
    step_seconds = _median_seconds(step, args.repeats)
    result = {
        "size": size,
        "model": args.model,
        "map_ms": map_ms,
        "step_s": step_seconds,
        "map_over_step": map_ms["ellipse_1pct"] / 1e3 / step_seconds,
    }
    for name, value in map_ms.items():
        print(f"border_weight_map {name:>13}: {value:7.2f} ms")
    print(f"training step ({args.model}, DBW, 1 x 3 x {size} x {size}): {step_seconds:.2f} s")
    print(f"ratio map / step (tumour slice): {result['map_over_step']:.4f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

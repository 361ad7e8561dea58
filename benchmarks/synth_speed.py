"""Seconds per synthetic case at full size (T2 512 x 512, T1 256 x 256) on one core; prints JSON.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/synth_speed.py --cases 5``. Reports wall and process CPU
time of :func:`npcseg.synth.synthesize_case` (in memory) and of writing the case (compressed NIfTI, no
preview).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from npcseg.synth.case import synthesize_case
from npcseg.synth.cohort import write_case
from npcseg.synth.config import preset_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=5, help="number of cases to time")
    parser.add_argument("--size", default="full", choices=["full", "small"], help="size preset")
    arguments = parser.parse_args()
    config = preset_config(arguments.size)
    synthesize_case(0, 0, config)  # warm-up (imports, allocator)
    wall, cpu, write_wall, slices = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(arguments.cases):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            case = synthesize_case(index, 1, config)
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
            slices.append(case.images["t2"].GetSize()[2])
            start_write = time.perf_counter()
            write_case(case, Path(folder), config, preview=False)
            write_wall.append(time.perf_counter() - start_write)
    print(
        json.dumps(
            {
                "size": arguments.size,
                "cases": arguments.cases,
                "mean_slices": float(np.mean(slices)),
                "synth_wall_s_per_case": round(float(np.mean(wall)), 3),
                "synth_cpu_s_per_case": round(float(np.mean(cpu)), 3),
                "synth_cpu_s_per_slice": round(float(np.sum(cpu) / np.sum(slices)), 4),
                "write_wall_s_per_case": round(float(np.mean(write_wall)), 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

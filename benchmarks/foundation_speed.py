"""Seconds per case for the foundation stages (synth, register, preprocess) on full-size synthetic cases.

Run: ``.venv/bin/python benchmarks/foundation_speed.py --cases 3``. Prints JSON. Absolute times on shared machines
are noisy, so every stage is also given as a ratio to a baseline measured in the same run: reading the case's
images (T1, T2, T1c, label) with SimpleITK, the floor any stage that touches the files pays.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from npcseg.io.cohort import discover_cases
from npcseg.preprocessing.cache import preprocess_cohort
from npcseg.preprocessing.config import preset as preprocessing_preset
from npcseg.registration.cohort import evaluate_tre, register_cohort
from npcseg.registration.config import RegistrationConfig
from npcseg.synth.cohort import synthesize_cohort
from npcseg.synth.config import preset_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=3, help="number of full-size synthetic cases")
    parser.add_argument("--seed", type=int, default=11, help="cohort seed")
    arguments = parser.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        cohort = root / "cohort"
        start = time.perf_counter()
        synthesize_cohort(cohort, arguments.cases, arguments.seed, preset_config("full"))
        synth = (time.perf_counter() - start) / arguments.cases

        start = time.perf_counter()
        for case in discover_cases(cohort):
            for path in [*case.images.values(), case.label]:
                sitk.ReadImage(str(path))
        read = (time.perf_counter() - start) / arguments.cases

        start = time.perf_counter()
        register_cohort(cohort, root / "registrations", RegistrationConfig(), progress=False)
        register = (time.perf_counter() - start) / arguments.cases
        tre = evaluate_tre(cohort, root / "registrations")

        start = time.perf_counter()
        preprocess_cohort(
            cohort, root / "cache", preprocessing_preset("deu"), registrations=root / "registrations", progress=False
        )
        preprocess = (time.perf_counter() - start) / arguments.cases

    stages = {"synth": synth, "register (t1 + t1c)": register, "preprocess (deu)": preprocess}
    print(
        json.dumps(
            {
                "cases": arguments.cases,
                "baseline_read_case_s": round(read, 3),
                "seconds_per_case": {name: round(value, 3) for name, value in stages.items()},
                "ratio_to_read_baseline": {name: round(value / read, 1) for name, value in stages.items()},
                "tre_mean_mm": round(float(np.mean([row["mean_mm"] for row in tre])), 3),
                "tre_worst_case_mean_mm": round(float(np.max([row["mean_mm"] for row in tre])), 3),
                "tre_max_mm": round(float(np.max([row["max_mm"] for row in tre])), 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

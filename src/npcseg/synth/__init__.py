"""The synthetic NPC MRI cohort generator: T1, T2 and T1c head-and-neck phantoms with a known GTV, known
inter-series motion and clinical covariates; the embedded default data for the demo and the tests."""

from __future__ import annotations

from npcseg.synth.case import SyntheticCase, synthesize_case
from npcseg.synth.cohort import synthesize_cohort
from npcseg.synth.config import SynthConfig, preset_config, small_config

__all__ = [
    "SynthConfig",
    "SyntheticCase",
    "preset_config",
    "small_config",
    "synthesize_case",
    "synthesize_cohort",
]

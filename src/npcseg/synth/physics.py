"""Tissue signal per sequence: which tissue is bright or dark on T1, T2 and contrast-enhanced T1.

Values are relative to the T1 signal of fat (1.0) and follow the usual spin-echo appearance of the head and
neck. They are chosen so that each sequence carries only part of the truth about the tumour:

* T1: tumour iso- to mildly hypointense to muscle (where its heterogeneity field is high it equals muscle),
mucosa
  and adenoid intermediate-bright and clearly distinct from tumour, fat and marrow bright, cortex and air
  dark.
* T2: tumour moderately hyperintense, but normal mucosa, adenoid and normal nodes in the same range; muscle
dark,
  fat bright-ish, fluid (CSF, necrosis) very bright.
* T1c: tumour, mucosa and veins enhance; necrosis does not.

Each case draws its own values around these (a few per cent) so no two cases share the exact contrast.
"""

from __future__ import annotations

import numpy as np

SEQUENCE_NAMES: tuple[str, ...] = ("t1", "t2", "t1c")
"""The rendered sequences."""

TISSUES: tuple[str, ...] = (
    "air",
    "skin",
    "fat",
    "muscle",
    "mucosa",
    "adenoid",
    "cortex",
    "marrow",
    "disc",
    "csf",
    "cord",
    "brain",
    "artery",
    "vein",
    "gland",
    "node",
    "tumour",
    "node_metastatic",
    "necrosis",
)
"""Tissue names; a tissue map stores the index into this tuple (0, air, is the background)."""

GTV_TISSUES: tuple[str, ...] = ("tumour", "node_metastatic", "necrosis")
"""Tissues that form the gross tumour volume (label 1)."""

# tissue: (T1, T2, T1c) low values; see the module docstring.
_BASE_SIGNAL: dict[str, tuple[float, float, float]] = {
    "air": (0.0, 0.0, 0.0),
    "skin": (0.55, 0.45, 0.62),
    "fat": (1.0, 0.78, 0.95),
    "muscle": (0.42, 0.24, 0.47),
    "mucosa": (0.62, 0.72, 0.95),
    "adenoid": (0.58, 0.68, 0.85),
    "cortex": (0.04, 0.04, 0.04),
    "marrow": (0.85, 0.45, 0.85),
    "disc": (0.40, 0.75, 0.45),
    "csf": (0.15, 1.35, 0.15),
    "cord": (0.50, 0.45, 0.50),
    "brain": (0.52, 0.55, 0.55),
    "artery": (0.04, 0.04, 0.08),
    "vein": (0.12, 0.10, 0.90),
    "gland": (0.78, 0.58, 0.68),
    "node": (0.45, 0.64, 0.62),
    "tumour": (0.0, 0.0, 0.0),  # set relative to muscle and mucosa in sample_signal
    "node_metastatic": (0.38, 0.66, 0.78),
    "necrosis": (0.22, 1.05, 0.22),
}


def sample_signal(rng: np.random.Generator) -> dict[str, dict[str, tuple[float, float]]]:
    """One case's tissue signal: ``sequence -> tissue -> (low, high)``.

    ``high`` differs from ``low`` only for the tumour, whose heterogeneity field (0..1) moves it between the
    two: on T1 from 0.80-0.88 times muscle up to muscle itself; on T2 between 0.82 and 1.02 times mucosa; on
    T1c between 0.82 and 1.0 times mucosa.
    """
    signal: dict[str, dict[str, tuple[float, float]]] = {}
    for sequence_index, sequence in enumerate(SEQUENCE_NAMES):
        values: dict[str, tuple[float, float]] = {}
        for tissue, base in _BASE_SIGNAL.items():
            value = base[sequence_index] * float(rng.uniform(0.95, 1.05))
            values[tissue] = (value, value)
        muscle = values["muscle"][0]
        mucosa = values["mucosa"][0]
        if sequence == "t1":
            values["tumour"] = (muscle * float(rng.uniform(0.80, 0.88)), muscle)
        elif sequence == "t2":
            values["tumour"] = (mucosa * 0.82, mucosa * float(rng.uniform(0.96, 1.02)))
        else:
            values["tumour"] = (mucosa * 0.82, mucosa * float(rng.uniform(0.95, 1.0)))
        signal[sequence] = values
    return signal

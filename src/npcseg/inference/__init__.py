"""Inference: trained networks (one run, several, or a cross-validation ensemble) -> masks on the original T2 grids.

* :mod:`npcseg.inference.runs`: reading run folders (settings, checkpoints) and cross-validation folders;
* :mod:`npcseg.inference.predictor`: :func:`load_predictor`, :class:`Predictor` (ensembling, flip TTA);
* :mod:`npcseg.inference.postprocessing`: the 3D connected-component clean-up (DEU's single-slice rule);
* :mod:`npcseg.inference.cohort`: :func:`predict_cohort`, a cohort or case folder into an output folder.
"""

from __future__ import annotations

from npcseg.inference.cohort import predict_cohort
from npcseg.inference.postprocessing import PostprocessingConfig, postprocess
from npcseg.inference.predictor import CasePrediction, Predictor, load_predictor

__all__ = [
    "CasePrediction",
    "PostprocessingConfig",
    "Predictor",
    "load_predictor",
    "postprocess",
    "predict_cohort",
]

"""2D segmentation networks and their registry.

Adding a network: one module that decorates its class with :func:`register_model`, plus one import below.
"""

from __future__ import annotations

from npcseg.models import attention_unet as attention_unet
from npcseg.models import ddnn as ddnn
from npcseg.models import deu as deu
from npcseg.models import ranet as ranet
from npcseg.models import tiramisu as tiramisu
from npcseg.models import unet as unet
from npcseg.models.flops import count_flops, count_parameters
from npcseg.models.registry import (
    ModelEntry,
    build_model,
    make_config,
    model_config_class,
    model_names,
    register_model,
    tiny_config,
)

__all__ = [
    "ModelEntry",
    "build_model",
    "count_flops",
    "count_parameters",
    "make_config",
    "model_config_class",
    "model_names",
    "register_model",
    "tiny_config",
]

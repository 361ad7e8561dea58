"""Checkpoints: atomic writes, safe loads, and random-number-generator states as plain data.

Every checkpoint holds only tensors, numbers, strings, ``None`` and lists / dicts / tuples of them, so it loads
with ``torch.load(path, weights_only=True)`` (no pickled objects, no code run on load). Random states are stored
the same way: Python's ``random`` state as a version, an int64 tensor of its 625 words and the cached Gaussian;
NumPy's legacy global state as an int64 tensor of its 624 keys plus its position and cached Gaussian; torch's as
its byte tensor.

Files (see the DEU notes for the run folder):

* ``checkpoint_last.pt`` -- everything needed to resume (model, optimiser, epoch, step, best score, sampler
  position, random states, the epoch's partial loss sum, the log so far);
* ``checkpoint_best.pt`` -- ``{"model", "epoch", "val_dice", "model_name", "model_config"}``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from npcseg.io.atomic import atomic_path

LAST_FILENAME = "checkpoint_last.pt"
BEST_FILENAME = "checkpoint_best.pt"


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` with ``torch.save`` atomically (a crash leaves the previous file intact)."""
    with atomic_path(Path(path)) as temporary:
        torch.save(payload, temporary)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with ``weights_only=True``.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when it is not a readable checkpoint (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises various types for truncated or foreign files
        raise ValueError(f"{path}: not a readable npcseg checkpoint: {error}") from error
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: not an npcseg checkpoint (expected a dict, got {type(payload).__name__})")
    return payload


def capture_rng_state() -> dict[str, Any]:
    """The global states of Python's ``random``, NumPy's legacy generator and torch, as plain data."""
    version, words, gauss_next = random.getstate()
    _, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "python": {"version": int(version), "state": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the global random states captured by :func:`capture_rng_state`."""
    python = state["python"]
    words = tuple(int(word) for word in python["state"].tolist())
    random.setstate((int(python["version"]), words, python["gauss_next"]))
    numpy = state["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, numpy["position"], numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])

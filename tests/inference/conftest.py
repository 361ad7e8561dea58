"""Fixtures of the inference tests (builders live in inference_builders.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_threaded_torch() -> Iterator[None]:
    """Tiny networks gain nothing from threads on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

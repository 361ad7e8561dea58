"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_threaded_torch() -> Iterator[None]:
    """Run torch on one thread in tests: the tiny test networks gain nothing from threads, and on a shared 2-core
    machine thread contention made first calls take seconds (measured: 52 s with 2 threads vs 3 s with 1)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

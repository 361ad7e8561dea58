"""2D slices of a preprocessed cache, and the seeded, resumable order in which training visits them.

:class:`SliceDataset` reads each case's arrays once (``cases/<case_id>.npz``; a preprocessed cohort is small: 44
patients of 25-45 slices of 2 x 256 x 256 float32 is about 1 GB) and serves ``(case, slice)`` pairs. Channels are
picked BY NAME: the cache's ``preprocessing.yaml`` lists its sequences in channel order, and the dataset reorders
them to the order the model wants, so a T1 + T2 + T1c cache serves a T2-only model.

:class:`SliceSampler` decides which slices an epoch visits, in which order, as a pure function of
``(seed, epoch)``; its position inside the epoch is two integers, saved in checkpoints for mid-epoch resume.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from npcseg.preprocessing.cache import list_preprocessed, load_cache_config, load_preprocessed

logger = logging.getLogger(__name__)


def channel_indices(cache_sequences: Sequence[str], wanted: Sequence[str], cache: Path | str = "cache") -> list[int]:
    """Indices into the cache's channel axis that give the ``wanted`` sequences in order.

    Raises:
        ValueError: naming each wanted sequence the cache lacks, and the cache's sequences.
    """
    missing = [sequence for sequence in wanted if sequence not in cache_sequences]
    if missing:
        raise ValueError(
            f"{cache}: sequence(s) {missing} needed by the model are not in the preprocessed cache "
            f"(it holds {list(cache_sequences)}); preprocess with them, or train on {list(cache_sequences)}"
        )
    return [list(cache_sequences).index(sequence) for sequence in wanted]


class SliceDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Every slice of some cached cases, held in memory.

    Item ``i`` is ``(image, label)``: image float32 ``(C, H, W)`` with channels in ``sequences`` order, label
    float32 ``(1, H, W)`` with values 0 / 1.

    Args:
        cache: the preprocessed cache folder (``npcseg preprocess`` output).
        case_ids: cases to include (each must be in the cache and labelled).
        sequences: channel order wanted (names from the cache's ``sequences``).

    Raises:
        FileNotFoundError: the cache or a case is missing.
        ValueError: a sequence is not in the cache, a case has no label, or ``case_ids`` is empty / repeats.
    """

    def __init__(self, cache: Path, case_ids: Sequence[str], sequences: Sequence[str]) -> None:
        self.cache = Path(cache)
        if not case_ids:
            raise ValueError(f"{self.cache}: no case ids given")
        if len(set(case_ids)) != len(case_ids):
            raise ValueError(f"case ids repeat: {list(case_ids)}")
        self.sequences = tuple(sequences)
        indices = channel_indices(load_cache_config(self.cache).sequences, self.sequences, self.cache)
        self.case_ids: list[str] = list(case_ids)
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        for case_id in self.case_ids:
            case = load_preprocessed(self.cache, case_id)
            if case.label is None:
                raise ValueError(f"{self.cache}: case {case_id!r} has no label; it cannot be used for training")
            self.images.append(np.ascontiguousarray(case.image[indices], dtype=np.float32))
            self.labels.append(np.ascontiguousarray(case.label != 0, dtype=np.uint8))
        pairs = [(case_index, z) for case_index, label in enumerate(self.labels) for z in range(label.shape[0])]
        self.slice_case = np.asarray([case_index for case_index, _ in pairs], dtype=np.int64)
        self.slice_z = np.asarray([z for _, z in pairs], dtype=np.int64)
        self.has_tumour = np.concatenate([label.reshape(label.shape[0], -1).any(axis=1) for label in self.labels])
        logger.debug("%s: %d slices of %d case(s) loaded", self.cache, len(self), len(self.case_ids))

    def __len__(self) -> int:
        return int(self.slice_case.shape[0])

    @property
    def num_tumour_slices(self) -> int:
        """Number of slices whose label holds tumour."""
        return int(self.has_tumour.sum())

    def slice_of(self, index: int) -> tuple[str, int]:
        """``(case_id, z)`` of item ``index``."""
        return self.case_ids[int(self.slice_case[index])], int(self.slice_z[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        case_index, z = int(self.slice_case[index]), int(self.slice_z[index])
        image = torch.from_numpy(self.images[case_index][:, z].copy())
        label = torch.from_numpy(self.labels[case_index][z][None].astype(np.float32))
        return image, label

    def volume(self, case_id: str) -> tuple[np.ndarray, np.ndarray]:
        """A whole case: image float32 ``(C, Z, H, W)`` and label uint8 ``(Z, H, W)`` (no copies)."""
        case_index = self.case_ids.index(case_id)
        return self.images[case_index], self.labels[case_index]


def labelled_cases(cache: Path) -> list[str]:
    """Sorted ids of the cached cases that have a label (reads only the npz directory, not the arrays)."""
    labelled = []
    for case_id in list_preprocessed(cache):
        with np.load(Path(cache) / "cases" / f"{case_id}.npz") as arrays:
            if "label" in arrays.files:
                labelled.append(case_id)
    return labelled


class SliceSampler(Sampler[int]):
    """The slices each epoch visits, in order, deterministic from ``(seed, epoch)``, with a resumable position.

    An epoch draws ``num_draws = min(max_slices_per_epoch, N)`` of the ``N`` slices (all of them by default).
    Tumour oversampling (our choice of scheme, as in nnU-Net's foreground oversampling): ``round(tumour_fraction *
    num_draws)`` draws are taken from the tumour slices and the rest uniformly from all slices (so a fraction of
    0 is plain shuffling, and at least that fraction of an epoch shows tumour); the two are shuffled together.
    Draws within each part are without replacement, cycling through fresh permutations when a part needs more
    slices than it has.

    The trainer takes ``next_indices(batch_size)`` until ``is_epoch_done``; :meth:`state_dict` (epoch and
    position, plain ints) and :meth:`load_state_dict` continue an epoch exactly where it stopped.

    Args:
        has_tumour: ``(N,)`` bools, one per slice.
        tumour_fraction: fraction in [0, 1] of each epoch's draws forced from tumour slices.
        max_slices_per_epoch: cap on draws per epoch, or ``None`` for all ``N``.
        seed: the run's seed.
    """

    def __init__(
        self,
        has_tumour: np.ndarray,
        *,
        tumour_fraction: float = 0.0,
        max_slices_per_epoch: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.has_tumour = np.asarray(has_tumour, dtype=bool)
        if self.has_tumour.ndim != 1 or self.has_tumour.size == 0:
            raise ValueError(f"has_tumour must be a non-empty 1D array, got shape {self.has_tumour.shape}")
        if not 0.0 <= tumour_fraction <= 1.0:
            raise ValueError(f"tumour_fraction must be in [0, 1], got {tumour_fraction}")
        if max_slices_per_epoch is not None and max_slices_per_epoch < 1:
            raise ValueError(f"max_slices_per_epoch must be at least 1 or None, got {max_slices_per_epoch}")
        self.tumour_indices = np.flatnonzero(self.has_tumour)
        if tumour_fraction > 0 and self.tumour_indices.size == 0:
            logger.warning("tumour oversampling requested but no slice holds tumour; sampling uniformly")
            tumour_fraction = 0.0
        self.tumour_fraction = float(tumour_fraction)
        self.seed = int(seed)
        size = self.has_tumour.size
        self.num_draws = size if max_slices_per_epoch is None else min(int(max_slices_per_epoch), size)
        self.epoch = 0
        self.position = 0
        self._order: np.ndarray | None = None

    def __len__(self) -> int:
        return self.num_draws

    def order(self, epoch: int) -> np.ndarray:
        """The slice indices epoch ``epoch`` visits, in order (``(num_draws,)`` int64); pure in (seed, epoch)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        num_tumour = round(self.tumour_fraction * self.num_draws)
        parts = [
            _draw(rng, self.tumour_indices, num_tumour),
            _draw(rng, np.arange(self.has_tumour.size), self.num_draws - num_tumour),
        ]
        combined = np.concatenate(parts).astype(np.int64)
        return combined[rng.permutation(combined.size)] if num_tumour else combined

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` at its first draw."""
        self.epoch, self.position, self._order = int(epoch), 0, None

    @property
    def is_epoch_done(self) -> bool:
        """Whether every draw of the current epoch has been handed out."""
        return self.position >= self.num_draws

    def next_indices(self, batch_size: int) -> list[int]:
        """The next up to ``batch_size`` slice indices of the current epoch (fewer at its end), advancing."""
        if self._order is None:
            self._order = self.order(self.epoch)
        indices = self._order[self.position : self.position + batch_size]
        self.position += int(indices.size)
        return [int(index) for index in indices]

    def __iter__(self) -> Iterator[int]:
        """The remaining draws of the current epoch, advancing the position (a torch ``Sampler`` protocol)."""
        while not self.is_epoch_done:
            yield from self.next_indices(1)

    def state_dict(self) -> dict[str, Any]:
        """Plain ints: ``seed``, ``epoch``, ``position``, ``num_draws``."""
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position, "num_draws": self.num_draws}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at a saved position; refuses a state from a sampler with another seed or epoch length."""
        if int(state["seed"]) != self.seed or int(state["num_draws"]) != self.num_draws:
            raise ValueError(
                f"sampler state (seed {state['seed']}, {state['num_draws']} draws per epoch) does not match this "
                f"sampler (seed {self.seed}, {self.num_draws} draws per epoch)"
            )
        self.set_epoch(int(state["epoch"]))
        self.position = int(state["position"])


def _draw(rng: np.random.Generator, pool: np.ndarray, count: int) -> np.ndarray:
    """``count`` items of ``pool``: concatenated fresh permutations, cut to length."""
    if count <= 0 or pool.size == 0:
        return np.zeros(0, dtype=np.int64)
    repeats = -(-count // pool.size)
    return np.concatenate([pool[rng.permutation(pool.size)] for _ in range(repeats)])[:count]

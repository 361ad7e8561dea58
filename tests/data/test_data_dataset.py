"""The slice dataset (channels by name, (case, slice) indexing) and the seeded, resumable slice sampler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from npcseg.config import save_config
from npcseg.data.dataset import SliceDataset, SliceSampler, labelled_cases
from npcseg.preprocessing.cache import case_files
from npcseg.preprocessing.config import PreprocessingConfig

SEQUENCES = ("t1", "t2", "t1c")


def write_case(cache: Path, case_id: str, num_slices: int, tumour_slices: list[int], labelled: bool = True) -> None:
    """Channel ``c`` of slice ``z`` is filled with ``100 c + z``; the label is a square on ``tumour_slices``."""
    size = 32
    channels = np.arange(len(SEQUENCES), dtype=np.float32)[:, None, None, None] * 100
    image = channels + np.arange(num_slices, dtype=np.float32)[None, :, None, None] + np.zeros((1, 1, size, size))
    label = np.zeros((num_slices, size, size), dtype=np.uint8)
    for z in tumour_slices:
        label[z, 10:14, 12:20] = 1
    arrays_path, record_path = case_files(cache, case_id)
    arrays_path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"image": image.astype(np.float32), **({"label": label} if labelled else {})}
    np.savez_compressed(arrays_path, **arrays)  # type: ignore[arg-type]
    record_path.write_text(json.dumps({"case_id": case_id}))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    folder = tmp_path / "cache"
    folder.mkdir()
    save_config(PreprocessingConfig(sequences=SEQUENCES, slice_size=32), folder / "preprocessing.yaml")
    write_case(folder, "p01", 4, [1, 2])
    write_case(folder, "p02", 3, [0])
    write_case(folder, "p03", 2, [], labelled=False)
    return folder


def test_channels_are_picked_by_name_in_the_requested_order(cache: Path) -> None:
    dataset = SliceDataset(cache, ["p01"], ("t1c", "t1"))
    image, label = dataset[3]
    assert image.dtype == torch.float32 and image.shape == (2, 32, 32)
    assert image[0].eq(200 + 3).all() and image[1].eq(0 + 3).all()  # t1c is cache channel 2, t1 channel 0
    assert label.dtype == torch.float32 and label.shape == (1, 32, 32) and float(label.sum()) == 0
    single = SliceDataset(cache, ["p01"], ("t2",))
    assert single[0][0].shape == (1, 32, 32) and single[0][0].eq(100).all()


def test_slices_are_indexed_case_by_case(cache: Path) -> None:
    dataset = SliceDataset(cache, ["p02", "p01"], ("t1", "t2"))
    assert len(dataset) == 7
    assert [dataset.slice_of(index) for index in range(len(dataset))] == [
        ("p02", 0),
        ("p02", 1),
        ("p02", 2),
        ("p01", 0),
        ("p01", 1),
        ("p01", 2),
        ("p01", 3),
    ]
    assert dataset.has_tumour.tolist() == [True, False, False, False, True, True, False]
    assert dataset.num_tumour_slices == 3
    image, label = dataset[4]
    assert image[1].eq(100 + 1).all() and float(label.sum()) == 32
    volume, volume_label = dataset.volume("p01")
    assert volume.shape == (2, 4, 32, 32) and volume_label.shape == (4, 32, 32)


def test_a_sequence_missing_from_the_cache_is_named(tmp_path: Path, cache: Path) -> None:
    other = tmp_path / "t2only"
    other.mkdir()
    save_config(PreprocessingConfig(sequences=("t2",), slice_size=32), other / "preprocessing.yaml")
    with pytest.raises(ValueError, match=r"\['t1c'\].*not in the preprocessed cache"):
        SliceDataset(other, ["p01"], ("t2", "t1c"))


def test_unlabelled_and_missing_cases_are_refused(cache: Path) -> None:
    assert labelled_cases(cache) == ["p01", "p02"]
    with pytest.raises(ValueError, match=r"p03.*no label"):
        SliceDataset(cache, ["p01", "p03"], ("t1",))
    with pytest.raises(FileNotFoundError, match="p99"):
        SliceDataset(cache, ["p99"], ("t1",))
    with pytest.raises(ValueError, match="no case ids"):
        SliceDataset(cache, [], ("t1",))


def test_sampler_order_is_a_seeded_permutation_per_epoch() -> None:
    has_tumour = np.zeros(50, dtype=bool)
    sampler = SliceSampler(has_tumour, seed=4)
    first, again = sampler.order(0), SliceSampler(has_tumour, seed=4).order(0)
    assert np.array_equal(first, again)
    assert sorted(first.tolist()) == list(range(50))
    assert not np.array_equal(first, sampler.order(1))
    assert not np.array_equal(first, SliceSampler(has_tumour, seed=5).order(0))


def test_sampler_caps_the_epoch_and_oversamples_tumour() -> None:
    has_tumour = np.zeros(200, dtype=bool)
    has_tumour[:10] = True
    capped = SliceSampler(has_tumour, max_slices_per_epoch=40, seed=0)
    order = capped.order(0)
    assert len(capped) == 40 and order.size == 40 and np.unique(order).size == 40
    oversampled = SliceSampler(has_tumour, tumour_fraction=0.5, max_slices_per_epoch=40, seed=0)
    for epoch in range(3):
        tumour_draws = has_tumour[oversampled.order(epoch)].sum()
        assert tumour_draws >= 20  # 20 forced plus whatever the uniform half hits
    # 20 forced draws from 10 tumour slices cycle through two permutations: each tumour slice at least twice
    counts = np.bincount(oversampled.order(0), minlength=200)[:10]
    assert counts.min() >= 2
    plain = SliceSampler(has_tumour, seed=0).order(0)
    assert has_tumour[plain].sum() == 10


def test_sampler_position_resumes_mid_epoch() -> None:
    has_tumour = np.arange(23) % 4 == 0
    sampler = SliceSampler(has_tumour, tumour_fraction=0.3, seed=9)
    sampler.set_epoch(2)
    head = sampler.next_indices(5) + sampler.next_indices(5)
    state = sampler.state_dict()
    assert all(isinstance(value, int) for value in state.values())
    rest = list(sampler)
    assert sampler.is_epoch_done
    resumed = SliceSampler(has_tumour, tumour_fraction=0.3, seed=9)
    resumed.load_state_dict(state)
    assert list(resumed) == rest
    assert head + rest == sampler.order(2).tolist()
    with pytest.raises(ValueError, match="does not match"):
        SliceSampler(has_tumour, seed=1).load_state_dict(state)


def test_sampler_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="tumour_fraction"):
        SliceSampler(np.ones(3, dtype=bool), tumour_fraction=1.5)
    with pytest.raises(ValueError, match="max_slices_per_epoch"):
        SliceSampler(np.ones(3, dtype=bool), max_slices_per_epoch=0)

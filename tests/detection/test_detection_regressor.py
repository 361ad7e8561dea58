"""The supervised box-regressor baseline: GIoU, box encoding, flips and shifts, a tiny training, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from detection_tiny_cache import write_tiny_detection_cache

from npcseg.detection import regressor
from npcseg.detection.boxes import Box, box_of_mask, iou
from npcseg.detection.regressor import (
    RegressorConfig,
    decode_boxes,
    encode_boxes,
    fit_box_regressor,
    flip_columns,
    flip_rows,
    generalized_iou,
    load_box_regressor,
    run_regressor_baseline,
    shift,
    slice_tensors,
)


def _giou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(generalized_iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))[0])


def test_generalized_iou_hand_values() -> None:
    assert _giou((1, 2, 5, 7), (1, 2, 5, 7)) == pytest.approx(1.0)
    # disjoint unit squares two apart: IoU 0, enclosing box 1 x 3, union 2 -> -(3 - 2) / 3
    assert _giou((0, 0, 1, 1), (0, 2, 1, 3)) == pytest.approx(-1 / 3)
    # 2 x 2 squares overlapping in one pixel: IoU 1/7, enclosing 3 x 3 = 9, union 7 -> 1/7 - 2/9
    assert _giou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7 - 2 / 9)
    # nested: the enclosing box is the union, so GIoU = IoU = 4 / 16
    assert _giou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(0.25)
    assert _giou((0, 0, 1, 1), (10, 10, 11, 11)) < _giou((0, 0, 1, 1), (0, 2, 1, 3)) < 0  # farther apart is worse


def test_box_encoding_hand_value_and_round_trip() -> None:
    encoded = encode_boxes(torch.tensor([[0.25, 0.5, 0.75, 1.0]]))
    assert encoded[0].tolist() == pytest.approx([0.5, 0.75, math.log(0.5), math.log(0.5)])
    corners = torch.rand(50, 2, dtype=torch.float64) * 0.5
    corners = torch.cat([corners, corners + 0.01 + torch.rand(50, 2, dtype=torch.float64) * 0.5], 1)
    torch.testing.assert_close(decode_boxes(encode_boxes(corners)), corners)
    images = [np.zeros((1, 40, 80), np.float32)]
    _, from_slice = slice_tensors(images, [Box(10, 20, 30, 60)], 32)  # normalised by the slice's own height / width
    torch.testing.assert_close(decode_boxes(from_slice), torch.tensor([[0.25, 0.25, 0.75, 0.75]]))


def _square_image(top: int, left: int, side: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.zeros(1, 1, size, size)
    image[..., top : top + side, left : left + side + 3] = 1.0  # a rectangle, so a transposition would show
    mask = image[0, 0].numpy() > 0
    box = box_of_mask(mask)
    assert box is not None
    return image, encode_boxes(torch.tensor([box.as_tuple()]) / size)


@pytest.mark.parametrize("flip", [flip_columns, flip_rows])
def test_flip_moves_the_box_with_the_image(flip) -> None:  # type: ignore[no-untyped-def]
    image, encoded = _square_image(3, 5, 6)
    flipped_image, flipped_box = flip(image, encoded)
    box = box_of_mask(flipped_image[0, 0].numpy() > 0)
    assert box is not None
    torch.testing.assert_close(decode_boxes(flipped_box)[0] * 32, torch.tensor(box.as_tuple()))
    if flip is flip_columns:  # by hand: columns [5, 14) of 32 become [18, 27)
        assert box.as_tuple() == (3, 18, 9, 27)


@pytest.mark.parametrize(("rows", "columns"), [(4, -3), (-2, 5), (0, 0)])
def test_shift_moves_the_box_with_the_image(rows: int, columns: int) -> None:
    image, encoded = _square_image(10, 12, 7)
    moved_image, moved_box = shift(image, encoded, rows, columns)
    assert moved_image.sum() == image.sum()  # nothing pushed out here
    assert box_of_mask(moved_image[0, 0].numpy() > 0) == Box(10 + rows, 12 + columns, 17 + rows, 22 + columns)
    torch.testing.assert_close(
        decode_boxes(moved_box)[0] * 32,
        torch.tensor([10 + rows, 12 + columns, 17 + rows, 22 + columns], dtype=torch.float32),
    )


def _squares(count: int, seed: int) -> tuple[torch.Tensor, list[Box]]:
    """Noisy 32 x 32 slices with one bright square of side 5-9 anywhere."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.1, 0.05, (count, 1, 32, 32)).astype(np.float32)
    boxes = []
    for image in images:
        side = int(rng.integers(5, 10))
        top, left = (int(value) for value in rng.integers(0, 32 - side, 2))
        image[0, top : top + side, left : left + side] += 1.0
        boxes.append(Box(top, left, top + side, left + side))
    return torch.from_numpy(images), boxes


TINY = RegressorConfig(
    sequences=("t1",), base_width=8, input_size=32, pooled_size=1, hidden_size=64, epochs=12, batch_size=32,
    learning_rate=3e-3, max_shift=0.0, seed=3, num_threads=1,
)  # fmt: skip


def test_tiny_training_beats_the_mean_box(tmp_path: Path) -> None:
    train_images, train_boxes = _squares(192, seed=0)
    test_images, test_boxes = _squares(48, seed=1)
    _, encoded = slice_tensors(list(train_images.numpy()), train_boxes, 32)
    run_dir = fit_box_regressor(train_images, encoded, tmp_path / "run", TINY, record={"data": "squares"})
    assert len((run_dir / "log.csv").read_text().splitlines()) == TINY.epochs + 1
    assert json.loads((run_dir / "run.json").read_text())["complete"]
    torch.load(run_dir / "checkpoint.pt", weights_only=True)
    predicted = load_box_regressor(run_dir).predict(test_images)
    mean_box = Box(*(decode_boxes(encoded.mean(0, keepdim=True))[0] * 32).tolist())
    model_iou = np.mean([iou(box, target) for box, target in zip(predicted, test_boxes, strict=True)])
    mean_box_iou = np.mean([iou(mean_box, target) for target in test_boxes])
    assert model_iou > 0.4 and model_iou > mean_box_iou + 0.25, (
        model_iou,
        mean_box_iou,
    )  # seeds 0-3: 0.58-0.68 vs 0.09


def test_resume_after_an_interruption_gives_the_same_weights_and_other_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, boxes = _squares(40, seed=2)
    _, encoded = slice_tensors(list(images.numpy()), boxes, 32)
    config = RegressorConfig(**{**TINY.__dict__, "epochs": 3, "batch_size": 16, "max_shift": 0.1})
    fit_box_regressor(images, encoded, tmp_path / "whole", config)
    augmented, calls = regressor._augmented, []

    def interrupt_in_epoch_two(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 5:  # 3 batches an epoch: the second batch of epoch 2
            raise KeyboardInterrupt
        return augmented(*args)

    monkeypatch.setattr(regressor, "_augmented", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        fit_box_regressor(images, encoded, tmp_path / "resumed", config)
    assert len((tmp_path / "resumed" / "log.csv").read_text().splitlines()) == 2  # header + epoch 1
    monkeypatch.setattr(regressor, "_augmented", augmented)
    fit_box_regressor(images, encoded, tmp_path / "resumed", config)
    whole, resumed = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=True) for name in ("whole", "resumed"))
    for name, tensor in whole["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=0, atol=0)
    with pytest.raises(ValueError, match="epochs"):
        fit_box_regressor(images, encoded, tmp_path / "whole", RegressorConfig(**{**config.__dict__, "epochs": 4}))


def test_baseline_on_a_tiny_cache_writes_the_scores_and_does_not_retrain(tmp_path: Path) -> None:
    case_ids = write_tiny_detection_cache(tmp_path / "cache", 3)
    config = RegressorConfig(**{**TINY.__dict__, "sequences": ("t1c", "t2"), "epochs": 2})
    summary = run_regressor_baseline(tmp_path / "cache", case_ids[:2], case_ids[2:], tmp_path / "out", config)
    assert summary.num_slices == 2  # the two tumour slices of the held-out case
    assert 0 <= summary.recall_min <= summary.recall_mean <= summary.recall_max <= 1
    assert len((tmp_path / "out" / "detection_slices.csv").read_text().splitlines()) == 3
    record = json.loads((tmp_path / "out" / "model" / "run.json").read_text())["record"]
    assert record["train_ids"] == case_ids[:2] and record["num_slices"] == 4
    checkpoint = (tmp_path / "out" / "model" / "checkpoint.pt").stat().st_mtime_ns
    (tmp_path / "link").symlink_to(tmp_path / "cache")  # the same cache by another path is the same run
    again = run_regressor_baseline(tmp_path / "link", case_ids[:2], case_ids[2:], tmp_path / "out", config)
    assert again == summary and (tmp_path / "out" / "model" / "checkpoint.pt").stat().st_mtime_ns == checkpoint
    with pytest.raises(ValueError, match="train_ids"):
        run_regressor_baseline(tmp_path / "cache", case_ids[1:], case_ids[:1], tmp_path / "out", config)

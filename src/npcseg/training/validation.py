"""Validation of a network during training: whole validation cases, slice by slice, thresholded.

Per case, the network's probabilities ``sigmoid(logits)`` of every slice are stacked into a ``(Z, H, W)`` volume and
thresholded (``probability >= threshold``, as inference does). Reported:

* ``dice``: the mean over cases of the per-case 3D Dice ``2 TP / (2 TP + FP + FN)`` (paper eq. 2; a case where
  both masks are empty scores 1);
* ``slice_dice``: the mean of the 2D Dice over slices where the reference or the prediction holds tumour (slices
  empty in both are left out, as :func:`npcseg.evaluation.metrics.slice_dice` does; nan if there are none);
* ``loss``: the training loss on the validation slices, averaged over batches weighted by their size (for a
  per-sample loss such as the default Dice loss, the mean per-slice loss).

No post-processing is applied here; that belongs to inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from npcseg.data.dataset import SliceDataset
from npcseg.evaluation.metrics import dice, slice_dice


@dataclass(frozen=True)
class ValidationResult:
    """Validation scores of one evaluation (see the module docstring).

    Attributes:
        loss: mean validation loss per slice.
        dice: mean per-case 3D Dice of the thresholded prediction.
        slice_dice: mean 2D Dice over slices with tumour in the reference or the prediction (nan if none).
        case_dice: per-case 3D Dice, by case id.
    """

    loss: float
    dice: float
    slice_dice: float
    case_dice: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def predict_volume(model: nn.Module, image: np.ndarray, batch_size: int) -> tuple[np.ndarray, list[torch.Tensor]]:
    """Probabilities ``(Z, H, W)`` float32 of a case ``image`` ``(C, Z, H, W)``, and the logits per batch."""
    probabilities, logits_list = [], []
    for start in range(0, image.shape[1], batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(image[:, start : start + batch_size].transpose(1, 0, 2, 3)))
        logits = model(batch)
        logits_list.append(logits)
        probabilities.append(torch.sigmoid(logits)[:, 0].numpy())
    return np.concatenate(probabilities).astype(np.float32, copy=False), logits_list


@torch.no_grad()
def validate(
    model: nn.Module, dataset: SliceDataset, loss_function: nn.Module, *, threshold: float, batch_size: int
) -> ValidationResult:
    """Evaluate ``model`` on every case of ``dataset`` (in eval mode; the previous mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        loss_sum, num_slices = 0.0, 0
        case_dice: dict[str, float] = {}
        slice_values: list[np.ndarray] = []
        for case_id in dataset.case_ids:
            image, label = dataset.volume(case_id)
            probabilities, logits_list = predict_volume(model, image, batch_size)
            start = 0
            for logits in logits_list:
                size = logits.shape[0]
                reference = torch.from_numpy(label[start : start + size, None].astype(np.float32))
                loss_sum += float(loss_function(logits, reference)) * size
                num_slices += size
                start += size
            prediction = probabilities >= threshold
            case_dice[case_id] = dice(prediction, label)
            slice_values.append(slice_dice(prediction, label))
        values = np.concatenate(slice_values)
        values = values[np.isfinite(values)]
        return ValidationResult(
            loss=loss_sum / max(num_slices, 1),
            dice=float(np.mean(list(case_dice.values()))),
            slice_dice=float(values.mean()) if values.size else math.nan,
            case_dice=case_dice,
        )
    finally:
        model.train(was_training)

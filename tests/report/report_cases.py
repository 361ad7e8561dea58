"""Hand-made results folders for the report tests (tiny images, no training).

Cohort: ``NUM_CASES`` cases, T2 on a 32 x 32 x 6 grid of 1 x 1 x 3 mm, T1 on the same field of view at 2 mm
in-plane, a bright box (the tumour, the label) inside a dimmer square. Case ``i``'s prediction is the label
shifted by ``i`` voxels along x, so the Dice falls with ``i`` (case 0 is perfect). A cross-validation folder
holds two folds (``log.csv``, ``predictions/``), ``metrics.csv`` from the real scorer and ``summary.json``
recording the cohort.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from npcseg.evaluation.scoring import metrics_csv, score_prediction

NUM_CASES = 6
T2_SHAPE_ZYX = (6, 32, 32)
T2_SPACING_XYZ = (1.0, 1.0, 3.0)
ORIGIN_XYZ = (-16.0, -16.0, -9.0)
LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "val_dice", "val_slice_dice", "seconds", "learning_rate")


def case_id(index: int) -> str:
    """``case-00``, ``case-01``, ..."""
    return f"case-{index:02d}"


def label_array() -> np.ndarray:
    """The tumour box on the T2 grid (uint8, (Z, Y, X)); slice 3 has the largest area."""
    label = np.zeros(T2_SHAPE_ZYX, np.uint8)
    label[1:5, 12:20, 10:18] = 1
    label[3, 10:22, 9:19] = 1
    return label


def _image(array: np.ndarray, spacing_xyz: tuple[float, float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    image.SetOrigin(ORIGIN_XYZ)
    return image


def build_cohort(root: Path) -> Path:
    """Write the cohort (``root/cohort/cases/<id>/{t1,t2,label}.nii.gz``); returns the cohort folder."""
    cohort = root / "cohort"
    rng = np.random.default_rng(0)
    label = label_array()
    for index in range(NUM_CASES):
        folder = cohort / "cases" / case_id(index)
        folder.mkdir(parents=True)
        t2 = np.full(T2_SHAPE_ZYX, 100.0, np.float32)
        t2[:, 4:28, 4:28] = 300.0
        t2[label > 0] = 800.0
        t2 += rng.normal(0, 10, size=t2.shape).astype(np.float32)
        t1 = t2[:, ::2, ::2] * 0.5  # same field of view at 2 mm
        sitk.WriteImage(_image(t2, T2_SPACING_XYZ), str(folder / "t2.nii.gz"))
        sitk.WriteImage(_image(np.ascontiguousarray(t1), (2.0, 2.0, 3.0)), str(folder / "t1.nii.gz"))
        sitk.WriteImage(_image(label, T2_SPACING_XYZ), str(folder / "label.nii.gz"))
    return cohort


def write_log(path: Path, num_epochs: int, offset: float) -> None:
    """A plausible ``log.csv`` of ``num_epochs`` epochs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOG_COLUMNS)
        for epoch in range(1, num_epochs + 1):
            loss = 0.9 / epoch + offset
            writer.writerow([epoch, loss, loss + 0.05, 1 - loss, 0.8 - loss, 1.5, 1e-3])


def build_crossvalidation(root: Path, cohort: Path, *, record_cohort: bool = True) -> Path:
    """Write a two-fold cross-validation folder over the cohort (see the module docstring)."""
    out = root / "cv"
    label = label_array()
    rows = []
    for index in range(NUM_CASES):
        fold = index % 2
        prediction = np.roll(label, index, axis=2)
        path = out / f"fold_{fold}" / "predictions" / f"{case_id(index)}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(_image(prediction, T2_SPACING_XYZ), str(path))
        label_path = cohort / "cases" / case_id(index) / "label.nii.gz"
        rows.append({"case_id": case_id(index), "fold": fold, **score_prediction(path, label_path)})
    for fold in range(2):
        write_log(out / f"fold_{fold}" / "log.csv", 6, 0.05 * fold)
    (out / "metrics.csv").write_text(metrics_csv(rows))
    summary: dict[str, object] = {"num_folds": 2, "num_cases": NUM_CASES}
    if record_cohort:
        summary["inputs"] = {"cohort": str(cohort.resolve())}
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def build_experiment(root: Path, crossvalidation: Path) -> Path:
    """An input experiment whose T1+T2 arm is ``crossvalidation``, T1 arm unfinished (logs only), no T2 arm."""
    out = root / "experiment"
    shutil.copytree(crossvalidation, out / "t1_t2")
    write_log(out / "t1" / "fold_0" / "log.csv", 3, 0.1)
    (out / "table.md").write_text("| Input | n | DSC |\n|---|---|---|\n| T1+T2 | 6 | 0.5 ± 0.3 |\n")
    return out


def build_evaluation(root: Path, crossvalidation: Path) -> Path:
    """An evaluation folder: ``metrics.csv`` without folds + ``summary.json`` recording predictions and cohort."""
    out = root / "evaluation"
    out.mkdir()
    predictions = root / "evaluation-predictions"
    predictions.mkdir()
    for path in crossvalidation.glob("fold_*/predictions/*.nii.gz"):
        shutil.copy(path, predictions / path.name)
    with (crossvalidation / "metrics.csv").open(newline="") as handle:
        rows = [{key: value for key, value in row.items() if key != "fold"} for row in csv.DictReader(handle)]
    (out / "metrics.csv").write_text(metrics_csv(rows))
    cohort = json.loads((crossvalidation / "summary.json").read_text())["inputs"]["cohort"]
    inputs = {"predictions": str(predictions), "reference": cohort, "tolerance_mm": 2.0}  # as npcseg evaluate
    (out / "summary.json").write_text(json.dumps({"num_cases": len(rows), "inputs": inputs}))
    return out

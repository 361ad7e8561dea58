"""PNG previews of synthetic cases: a few axial slices of T1, T2 and T1c with the label contour."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from npcseg.io.atomic import atomic_write_bytes
from npcseg.registration.resample import resample_onto
from npcseg.synth.case import SyntheticCase
from npcseg.synth.physics import SEQUENCE_NAMES


def preview_slices(label: np.ndarray, count: int) -> list[int]:
    """``count`` slice indices spread over the labelled slices (over the whole stack when there is no
    label)."""
    labelled = np.flatnonzero(label.reshape(label.shape[0], -1).any(axis=1))
    if labelled.size == 0:
        labelled = np.arange(label.shape[0])
    positions = np.linspace(0, labelled.size - 1, num=min(count, labelled.size) + 2)[1:-1]
    return sorted({int(labelled[round(float(p))]) for p in positions})


def write_preview(case: SyntheticCase, path: Path, num_slices: int = 4) -> Path:
    """Write a PNG with ``num_slices`` axial rows (T1, T2, T1c columns); T1 and T1c are shown as acquired, on
    their own grids at the T2 slice position, and the T2 label contour is drawn on every panel (it fits T1 and
    T1c only up to the patient motion, which is the point of registration)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label_array = sitk.GetArrayFromImage(case.label)
    slices = preview_slices(label_array, num_slices)
    t2_grid = case.acquisition.grids["t2"]
    # Same-size views of every series on the T2 grid without the true transform: what a viewer shows before
    # registration.
    views = {
        sequence: sitk.GetArrayFromImage(resample_onto(case.images[sequence], t2_grid, interpolator="linear"))
        for sequence in SEQUENCE_NAMES
    }
    figure, axes = plt.subplots(len(slices), 3, figsize=(9, 3 * len(slices)), squeeze=False)
    for row, slice_index in enumerate(slices):
        for column, sequence in enumerate(("t1", "t2", "t1c")):
            axis = axes[row][column]
            image = views[sequence][slice_index]
            high = float(np.percentile(views[sequence], 99.5)) or 1.0
            axis.imshow(image, cmap="gray", vmin=0, vmax=high, interpolation="nearest")
            if label_array[slice_index].any():
                axis.contour(label_array[slice_index], levels=[0.5], colors=["#ff3030"], linewidths=0.7)
            axis.set_axis_off()
            if row == 0:
                axis.set_title(sequence.upper(), fontsize=10)
        axes[row][0].text(2, 12, f"slice {slice_index}", color="yellow", fontsize=8, verticalalignment="top")
    figure.suptitle(f"{case.case_id}  {case.clinical['t_category']}{case.clinical['n_category']}", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)

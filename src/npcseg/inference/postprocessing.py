"""Post-processing of a patient's stacked 2D predictions in 3D (METHODS.md method 1, "Post-processing").

DEU (Ye et al. 2020): "3D connected components over the patient's stacked 2D predictions; remove every component
that appears in only one slice". A 2D network sees one slice at a time, so a false positive it produces on a
single slice has no support in the neighbouring slices, while a real tumour spans several 4 mm slices.

Connected components are labelled in index space of the mask ``(z, y, x)`` (voxel adjacency, whatever the
spacing): 6-connectivity joins voxels sharing a face, 18 also an edge, 26 also a corner. With 26 (the default,
our choice; the paper does not say), a blob on slice k touches one on slice k+1 even when they only meet
diagonally. SimpleITK's ``ConnectedComponent`` does 6 (``fullyConnected=False``) and 26 (``fullyConnected=True``);
it has no 18-neighbourhood, which :func:`scipy.ndimage.label` with the matching structuring element provides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

PostprocessingMode = Literal["drop_single_slice", "largest_component", "none"]
POSTPROCESSING_MODES: tuple[str, ...] = ("drop_single_slice", "largest_component", "none")
CONNECTIVITIES: tuple[int, ...] = (6, 18, 26)


@dataclass(frozen=True)
class PostprocessingConfig:
    """How a predicted 3D mask is cleaned.

    Attributes:
        enabled: apply post-processing at all (``False`` returns the mask unchanged, like ``mode='none'``).
        mode: ``drop_single_slice`` (the paper: remove every 3D connected component present in only one slice),
            ``largest_component`` (keep only the component with the most voxels) or ``none``.
        connectivity: voxel neighbourhood of the 3D components: 6 (faces), 18 (faces, edges) or 26 (faces, edges,
            corners; default).
    """

    enabled: bool = True
    mode: PostprocessingMode = "drop_single_slice"
    connectivity: int = 26

    def __post_init__(self) -> None:
        if self.mode not in POSTPROCESSING_MODES:
            raise ValueError(f"unknown post-processing mode {self.mode!r}; use one of {list(POSTPROCESSING_MODES)}")
        if self.connectivity not in CONNECTIVITIES:
            raise ValueError(f"connectivity must be one of {list(CONNECTIVITIES)}, got {self.connectivity}")

    @property
    def is_active(self) -> bool:
        """True when :func:`postprocess` changes anything at all."""
        return self.enabled and self.mode != "none"


def label_components(mask: np.ndarray, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Label the 3D connected components of a mask.

    Args:
        mask: ``(Z, Y, X)`` array; non-zero voxels are foreground.
        connectivity: 6, 18 or 26 (see the module docstring).

    Returns:
        The labels (int32 ``(Z, Y, X)``, 0 background, components 1 ... N) and N.
    """
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {list(CONNECTIVITIES)}, got {connectivity}")
    foreground = np.asarray(mask) != 0
    if connectivity == 18:
        labels, count = ndimage.label(foreground, structure=ndimage.generate_binary_structure(3, 2))
        return labels.astype(np.int32, copy=False), int(count)
    image = sitk.GetImageFromArray(foreground.astype(np.uint8))
    labelled = sitk.ConnectedComponent(image, connectivity == 26)
    labels = sitk.GetArrayFromImage(labelled).astype(np.int32, copy=False)
    return labels, int(labels.max(initial=0))


def postprocess(mask: np.ndarray, config: PostprocessingConfig | None = None) -> np.ndarray:
    """Clean a predicted mask in 3D.

    Args:
        mask: ``(Z, Y, X)`` boolean or 0/1 mask (the stacked 2D predictions of one patient, slices along z).
        config: the settings (default: :class:`PostprocessingConfig`, the paper's rule with 26-connectivity).

    Returns:
        A mask of the same shape and dtype with the removed components set to 0; an empty mask stays empty.

    Raises:
        ValueError: when ``mask`` is not 3D.
    """
    config = config if config is not None else PostprocessingConfig()
    array = np.asarray(mask)
    if array.ndim != 3:
        raise ValueError(f"post-processing expects a 3D mask (z, y, x), got shape {array.shape}")
    if not config.is_active or not np.any(array):
        return array.copy()
    labels, count = label_components(array, config.connectivity)
    if config.mode == "largest_component":
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        sizes[0] = 0
        keep = labels == int(np.argmax(sizes))  # ties: the lowest label (first in scan order)
    else:
        slices = ndimage.find_objects(labels, max_label=count)
        single_slice = [label for label, box in enumerate(slices, start=1) if box is not None and _num_z(box) == 1]
        keep = (labels != 0) & ~np.isin(labels, single_slice)
    result = np.zeros_like(array)
    result[keep] = array[keep]
    return result


def _num_z(box: tuple[slice, ...]) -> int:
    """Number of slices a component's bounding box spans (the components are connected, so no gaps)."""
    return int(box[0].stop - box[0].start)

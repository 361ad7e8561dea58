"""Dilated border weighted (DBW) binary cross-entropy (Tao et al., SeqSeg, Med. Image Anal. 2022, section 3.2.4).

The weight map of one 2D reference slice (:func:`border_weight_map`):

1. **Border**: Canny edges of the binary reference (``skimage.feature.canny``, Gaussian ``sigma`` = 1 pixel by
   default, skimage's default and ours: the paper gives none; hysteresis thresholds 0.1 / 0.2 on the gradient of
   the 0/1 mask, which a mask step always exceeds). Image borders are replicated (``mode="nearest"``), so a tumour
   cut by the edge of the slice gets no border along the slice's edge. skimage never marks the outermost pixel ring
   of its input as an edge, so we pad the slice by one replicated pixel first (which changes nothing else, the
   padding being what ``"nearest"`` assumes): a border that meets the slice's edge runs all the way to it.

   Tie-break (ours): on a 0/1 step the gradient magnitude is *exactly* equal on the two pixels that straddle the
   boundary, so Canny's non-maximum suppression picks either side by floating-point rounding (measured: on a
   20 x 20 square, 10-pixel runs in the middle of each side came out one pixel outside, the rest inside). To make
   the map deterministic and machine-independent we lower the mask's inner boundary pixels (mask pixels with a
   4-neighbour outside) by ``1e-3`` before Canny, which makes the inside pixel the strict maximum: a square then
   gives exactly its inner boundary ring, while rounded and oblique contours keep Canny's own choice.
2. **Dilation** with a cruciform (plus-shaped) structuring element of size ``(2k + 1) x (2k + 1)``: the centre row
   and the centre column of that square, i.e. a cross of arm length ``k`` along each axis (``4k + 1`` pixels). A pixel
   is on the dilated border if an edge pixel lies at most ``k`` pixels from it straight up, down, left or right.
   Implemented as the union of a ``1 x (2k+1)`` and a ``(2k+1) x 1`` maximum filter (dilation distributes over the
   union of structuring elements), identical to ``scipy.ndimage.binary_dilation`` with the cross, and faster.
3. **Weights**: ``w_b`` on the dilated border, 1 elsewhere. A slice with no tumour (or tumour everywhere) has no
   border: all weights are 1, and the loss is plain BCE there.

The loss of one slice, SeqSeg eq. (4), with ``bce_ij = -[y_ij log p_ij + (1 - y_ij) log(1 - p_ij)]`` computed from
the logits (:func:`npcseg.losses.cross_entropy.pixel_bce`)::

    L = sum_ij w_ij bce_ij / sum_ij w_ij

and the batch loss is the mean of the slices' ``L`` (each slice normalised by its own weights, as eq. 4 is written
per image; with batch size 1, the paper's and our trainer's default, there is no difference). Defaults ``k = 10``,
``w_b = 20`` (the paper's best, Table 4). With ``w_b = 1`` the loss is exactly the mean BCE.

Cost (``benchmarks/dbw_speed.py``), measured on this project's 2-core CPU (AVX2, shared with a background run,
one torch thread; medians of 50-100 calls, minimum in brackets). One 384 x 384 map for an ellipse covering
1.1 % of the slice (the paper's average tumour area): 6.1 ms (2.0 ms) with Canny on the mask's bounding box plus
a margin of ``ceil(4 sigma) + 4``
pixels (exactly the whole-slice result: Gaussian, Sobel and non-maximum suppression look no further and the
thresholds are absolute; a test checks it), against 24 ms for Canny on the whole slice; a disc covering 25 %:
15.9 ms (5.7 ms); a slice without tumour: 0.05 ms. One training step (forward, backward, Adam) on one 3-sequence
384 x 384 slice: 3.5 s for the default ``attention-unet`` (16 GFLOPs), 4.8 s for the default ``deu``. Building the
map on the fly therefore costs about 0.2 % of a step (0.5 % for a 25 % tumour), which is negligible, so maps are not
cached; a cache keyed by the label's bytes would also rarely hit, because the trainer's random re-scaling makes
almost every augmented label new. (On a GPU, where a step may take tens of milliseconds, the maps would matter:
build them in the data loader's workers then.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage
from skimage.feature import canny
from torch import nn

from npcseg.losses.cross_entropy import pixel_bce

#: Amount by which the mask's inner boundary is lowered before Canny, to break the symmetric tie (module docstring).
TIE_BREAK = 1e-3
#: Canny hysteresis thresholds on the gradient magnitude of the 0/1 mask (skimage's float defaults, made explicit).
LOW_THRESHOLD, HIGH_THRESHOLD = 0.1, 0.2


def cross_footprint(k: int) -> np.ndarray:
    """The ``(2k+1) x (2k+1)`` boolean cruciform structuring element: centre row and centre column set."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    footprint = np.zeros((2 * k + 1, 2 * k + 1), dtype=bool)
    footprint[k, :] = True
    footprint[:, k] = True
    return footprint


def _as_mask(label2d: np.ndarray) -> np.ndarray:
    label = np.asarray(label2d)
    if label.ndim != 2:
        raise ValueError(f"expected a 2D label slice, got shape {label.shape}")
    return label > 0.5


def border_edges(label2d: np.ndarray, *, sigma: float = 1.0) -> np.ndarray:
    """Canny edges of a binary label slice (step 1 of the module docstring), as a boolean ``(H, W)`` array.

    Args:
        label2d: ``(H, W)`` label; pixels above 0.5 are tumour.
        sigma: standard deviation of Canny's Gaussian, in pixels.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    mask = _as_mask(label2d)
    edges = np.zeros(mask.shape, dtype=bool)
    if not mask.any() or mask.all():
        return edges
    # Canny only looks ceil(4 sigma) (Gaussian) + 1 (Sobel) + 1 (suppression) pixels away: crop to save time.
    margin = math.ceil(4.0 * sigma) + 4
    rows, columns = np.nonzero(mask)
    top, bottom = max(rows.min() - margin, 0), min(rows.max() + margin + 1, mask.shape[0])
    left, right = max(columns.min() - margin, 0), min(columns.max() + margin + 1, mask.shape[1])
    crop = mask[top:bottom, left:right]
    inner_boundary = crop & ~ndimage.binary_erosion(crop, border_value=1)
    image = np.pad(crop.astype(np.float64) - TIE_BREAK * inner_boundary, 1, mode="edge")
    found = canny(image, sigma=sigma, low_threshold=LOW_THRESHOLD, high_threshold=HIGH_THRESHOLD, mode="nearest")
    edges[top:bottom, left:right] = found[1:-1, 1:-1]
    return edges


def border_weight_map(label2d: np.ndarray, k: int = 10, w_b: float = 20.0, *, sigma: float = 1.0) -> np.ndarray:
    """DBW weight map of one slice: ``w_b`` on the Canny border dilated by a cross of arm ``k``, 1 elsewhere.

    Args:
        label2d: ``(H, W)`` reference slice; pixels above 0.5 are tumour.
        k: arm length of the cruciform structuring element, in pixels (its size is ``(2k+1) x (2k+1)``).
        w_b: weight of the dilated border (> 0).
        sigma: Canny's Gaussian standard deviation, in pixels.

    Returns:
        ``(H, W)`` float32 weights in ``{1, w_b}``; all ones for a slice without tumour.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if not w_b > 0:
        raise ValueError(f"w_b must be > 0, got {w_b}")
    edges = border_edges(label2d, sigma=sigma).view(np.uint8)
    if not edges.any():
        return np.ones(edges.shape, dtype=np.float32)
    size = 2 * k + 1
    band = ndimage.maximum_filter1d(edges, size, axis=0, mode="constant") | ndimage.maximum_filter1d(
        edges, size, axis=1, mode="constant"
    )
    return np.where(band.astype(bool), np.float32(w_b), np.float32(1.0))


class DBWLoss(nn.Module):
    """Dilated border weighted BCE (``dbw``): SeqSeg eq. (4) per slice, averaged over the batch.

    Args:
        k: arm length of the cruciform dilation, pixels (paper's best: 10).
        w_b: weight of the dilated border (paper's best: 20).
        sigma: Canny's Gaussian standard deviation, pixels (paper-silent; 1).
    """

    def __init__(self, k: int = 10, w_b: float = 20.0, sigma: float = 1.0) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be an integer >= 0, got {k!r}")
        if not w_b > 0:
            raise ValueError(f"w_b must be > 0, got {w_b}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.k, self.w_b, self.sigma = k, float(w_b), float(sigma)

    def weight_maps(self, reference: torch.Tensor) -> torch.Tensor:
        """Weights of every 2D slice of ``reference`` ``(B, ..., H, W)``, same shape, on its device, float32."""
        if reference.ndim < 3:
            raise ValueError(f"expected (batch, ..., height, width) references, got {tuple(reference.shape)}")
        slices = reference.detach().float().cpu().numpy().reshape(-1, *reference.shape[-2:])
        maps = np.stack([border_weight_map(item, self.k, self.w_b, sigma=self.sigma) for item in slices])
        return torch.from_numpy(maps).reshape(reference.shape).to(reference.device)

    def forward(self, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Scalar loss: mean over the batch of ``sum w bce / sum w`` per sample, for ``(B, ..., H, W)`` inputs."""
        losses = pixel_bce(logits, reference)
        weights = self.weight_maps(reference).to(losses.dtype)
        dims = tuple(range(1, logits.ndim))
        return ((weights * losses).sum(dim=dims) / weights.sum(dim=dims)).mean()

    def extra_repr(self) -> str:
        return f"k={self.k}, w_b={self.w_b}, sigma={self.sigma}"

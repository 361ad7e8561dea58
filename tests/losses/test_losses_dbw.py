"""Dilated border weighted loss: weight maps built by hand, hand-computed loss, BCE limit, gradients, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.feature import canny

from npcseg.losses import BCELoss, DBWLoss, border_weight_map, build_loss, loss_names
from npcseg.losses.dbw import TIE_BREAK, border_edges, cross_footprint

LN2 = math.log(2.0)


def _square(size: int, top: int, side: int) -> np.ndarray:
    label = np.zeros((size, size), dtype=np.float32)
    label[top : top + side, top : top + side] = 1.0
    return label


def _blob(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (ndimage.gaussian_filter(rng.random((size, size)), 3.0) > 0.53).astype(np.float32)


def test_cross_footprint_is_the_centre_row_and_column() -> None:
    expected = np.array(
        [
            [0, 0, 1, 0, 0],
            [0, 0, 1, 0, 0],
            [1, 1, 1, 1, 1],
            [0, 0, 1, 0, 0],
            [0, 0, 1, 0, 0],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(cross_footprint(2), expected)
    assert cross_footprint(10).shape == (21, 21)
    assert cross_footprint(10).sum() == 4 * 10 + 1


def test_weight_map_of_a_square_equals_one_built_by_hand() -> None:
    # A 20 x 20 square (rows and columns 22..41) in a 64 x 64 slice, k = 2, w_b = 20.
    top, side, k, w_b = 22, 20, 2, 20.0
    label = _square(64, top, side)
    # Border by hand: the square's inner boundary ring, i.e. its pixels in the first or last row or column. (On a
    # 0/1 step Canny's two candidate pixels tie; dbw breaks the tie towards the inside, see its docstring.)
    last = top + side - 1
    ring = [(r, c) for r in range(top, last + 1) for c in range(top, last + 1) if r in (top, last) or c in (top, last)]
    assert len(ring) == 4 * side - 4
    # Dilation by hand: every ring pixel marks itself and the pixels up to k away straight up, down, left, right.
    expected = np.ones((64, 64), dtype=np.float32)
    for r, c in ring:
        for offset in range(-k, k + 1):
            expected[r + offset, c] = w_b
            expected[r, c + offset] = w_b
    weights = border_weight_map(label, k=k, w_b=w_b)
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights, expected)
    # Closed form: the ring (76) + 2 inner layers (18^2 - 14^2 = 128) + 2 outer layers along the 4 sides (4 * 2 * 20);
    # the outer corners stay 1 because a cross does not reach diagonally.
    assert int((weights == w_b).sum()) == 76 + 128 + 160
    assert weights[top - 1, top - 1] == 1.0
    np.testing.assert_array_equal(border_edges(label), _ring_mask(ring))


def _ring_mask(ring: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros((64, 64), dtype=bool)
    for r, c in ring:
        mask[r, c] = True
    return mask


def test_cropped_canny_and_fast_dilation_equal_the_plain_definitions() -> None:
    # dbw runs Canny on the mask's bounding box plus a margin and dilates with two 1D maximum filters; both must give
    # exactly Canny on the whole slice and scipy's binary dilation with the cross.
    for seed in range(8):
        label = _blob(seed)
        mask = label > 0.5
        inner = mask & ~ndimage.binary_erosion(mask, border_value=1)
        padded = np.pad(mask - TIE_BREAK * inner, 1, mode="edge")
        whole = canny(padded, sigma=1.0, low_threshold=0.1, high_threshold=0.2, mode="nearest")[1:-1, 1:-1]
        np.testing.assert_array_equal(border_edges(label), whole)
        dilated = ndimage.binary_dilation(whole, structure=cross_footprint(3))
        np.testing.assert_array_equal(border_weight_map(label, 3, 7.0), np.where(dilated, 7.0, 1.0))


def test_empty_and_full_slices_have_unit_weights() -> None:
    np.testing.assert_array_equal(border_weight_map(np.zeros((32, 48))), np.ones((32, 48), dtype=np.float32))
    np.testing.assert_array_equal(border_weight_map(np.ones((32, 48))), np.ones((32, 48), dtype=np.float32))
    logits = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    empty = torch.zeros(2, 1, 32, 32)
    torch.testing.assert_close(DBWLoss()(logits, empty), BCELoss()(logits, empty))


def test_tumour_cut_by_the_slice_edge_has_no_border_along_the_edge() -> None:
    label = np.zeros((32, 32), dtype=np.float32)
    label[:10, :] = 1.0
    edges = border_edges(label)
    # Only the tumour's lower side is a border, and it runs to both ends of the row.
    assert edges[9].all()
    assert edges.sum() == 32
    weights = border_weight_map(label, k=2, w_b=3.0)
    np.testing.assert_array_equal(weights[7:12], 3.0)
    assert (np.delete(weights, range(7, 12), axis=0) == 1.0).all()


def test_hand_computed_loss_on_a_tiny_mask() -> None:
    # 8 x 8 slice, tumour = the 4 x 4 square rows/columns 2..5; its border ring has 12 pixels.
    label = _square(8, 2, 4)
    ring = np.zeros((8, 8), dtype=bool)
    ring[2:6, 2:6] = True
    ring[3:5, 3:5] = False
    np.testing.assert_array_equal(border_edges(label), ring)
    # k = 1: the band is the ring (12) + the 2 x 2 inside (4) + one pixel outward along each side (16) = 32 pixels.
    weights = border_weight_map(label, k=1, w_b=5.0)
    assert int((weights == 5.0).sum()) == 32
    # logits ln 3 (p = 3/4) on the ring, 0 (p = 1/2) elsewhere: BCE ln(4/3) on the ring, ln 2 everywhere else.
    logits = torch.from_numpy(np.where(ring, math.log(3.0), 0.0).astype(np.float32))[None, None]
    loss = DBWLoss(k=1, w_b=5.0)(logits, torch.from_numpy(label)[None, None])
    # (5 * (12 ln(4/3) + 20 ln 2) + 32 ln 2) / (5 * 32 + 32)
    expected = (60 * math.log(4.0 / 3.0) + 132 * LN2) / 192
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_unit_border_weight_is_plain_bce() -> None:
    label = torch.from_numpy(np.stack([_blob(1), _blob(2)]))[:, None]
    logits = torch.randn(label.shape, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(DBWLoss(k=10, w_b=1.0)(logits, label), F.binary_cross_entropy_with_logits(logits, label))


def test_batch_loss_is_the_mean_of_per_slice_losses() -> None:
    label = torch.from_numpy(np.stack([_blob(3), _square(64, 10, 30)]))[:, None]
    logits = torch.randn(label.shape, generator=torch.Generator().manual_seed(5))
    loss = DBWLoss(k=4)
    single = [loss(logits[i : i + 1], label[i : i + 1]) for i in range(2)]
    torch.testing.assert_close(loss(logits, label), (single[0] + single[1]) / 2)
    assert loss.weight_maps(label).shape == label.shape


def test_gradcheck_and_gradient_sign() -> None:
    label = torch.from_numpy(_square(10, 3, 4)).double()[None, None]
    generator = torch.Generator().manual_seed(6)
    logits = torch.randn(1, 1, 10, 10, dtype=torch.float64, generator=generator, requires_grad=True)
    loss = DBWLoss(k=1, w_b=4.0)
    assert torch.autograd.gradcheck(lambda x: loss(x, label), (logits,))
    loss(logits, label).backward()
    assert logits.grad is not None
    # d L / d x_i = w_i (sigmoid(x_i) - y_i) / sum w: negative on tumour (raise its probability), positive elsewhere
    weights = loss.weight_maps(label).double()
    expected = weights * (torch.sigmoid(logits.detach()) - label) / weights.sum()
    torch.testing.assert_close(logits.grad, expected)
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[label > 0.5] < 0).all()
    assert (logits.grad[label < 0.5] > 0).all()


def test_a_tiny_network_fits_one_mask() -> None:
    torch.manual_seed(0)
    label = torch.from_numpy(_square(20, 5, 9))[None, None]
    image = label + 0.3 * torch.randn_like(label)
    network = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1)
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=0.03)
    loss_function = DBWLoss(k=2)
    for _ in range(120):
        optimizer.zero_grad()
        loss = loss_function(network(image), label)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1
    assert torch.equal((network(image) > 0).float(), label)


def test_bad_inputs_and_registry() -> None:
    assert "dbw" in loss_names()
    built = build_loss("dbw", k=3, w_b=5)
    assert isinstance(built, DBWLoss)
    assert (built.k, built.w_b, built.sigma) == (3, 5.0, 1.0)
    for kwargs in ({"k": -1}, {"k": 2.5}, {"w_b": 0.0}, {"sigma": 0.0}):
        with pytest.raises(ValueError):
            DBWLoss(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        DBWLoss()(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="2D"):
        border_weight_map(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="height, width"):
        DBWLoss()(torch.zeros(4, 8), torch.zeros(4, 8))

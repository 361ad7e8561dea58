"""Acquisition: series grids, patient motion between series, bias field, texture and Rician noise.

The anatomy frame is the T2 series' physical space (the T2 is the reference, as in the DEU paper). The patient
moves between series: the true rigid transform ``T`` of a series maps a physical point of the T2 image to the
physical point of that series showing the same anatomy, so the series' voxel at physical point ``p`` shows the
anatomy at ``T^-1(p)``. ``T`` is what a perfect registration with T2 fixed and the series moving returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from npcseg.io.volume import Grid
from npcseg.synth.config import SynthConfig
from npcseg.synth.lesions import rotation_matrix


@dataclass(frozen=True, eq=False)
class Acquisition:
    """The geometry of one case's series.

    Attributes:
        grids: sequence name -> grid in that series' physical space.
        transforms: sequence name -> 4 x 4 affine of the true rigid transform T2 physical -> series physical
            (the identity for ``t2``).
        center: (x, y, z) in mm, the centre of rotation of the transforms (the middle of the T2 field of
        view).
    """

    grids: dict[str, Grid]
    transforms: dict[str, np.ndarray]
    center: np.ndarray

    def physical_to_anatomy(self, sequence: str) -> np.ndarray:
        """4 x 4 affine from ``sequence``'s physical space to the anatomy (T2 physical) frame."""
        return np.linalg.inv(self.transforms[sequence])

    def euler_transform(self, sequence: str) -> sitk.Euler3DTransform:
        """The true transform of ``sequence`` as a SimpleITK rigid transform centred at :attr:`center`."""
        return euler_from_affine(self.transforms[sequence], self.center)


def random_rigid(rng: np.random.Generator, max_mm: float, max_deg: float, center: np.ndarray) -> np.ndarray:
    """A 4 x 4 rigid motion about ``center``: rotation angle uniform in [0, max_deg] about a uniformly random
    axis, translation of uniformly random direction and length uniform in [0, max_mm]."""
    axis = rng.standard_normal(3)
    rotation = rotation_matrix(axis, np.radians(rng.uniform(0.0, max_deg)))
    direction = rng.standard_normal(3)
    translation = direction / np.linalg.norm(direction) * rng.uniform(0.0, max_mm)
    affine = np.eye(4)
    affine[:3, :3] = rotation
    affine[:3, 3] = center - rotation @ center + translation
    return affine


def euler_from_affine(affine: np.ndarray, center: np.ndarray) -> sitk.Euler3DTransform:
    """The SimpleITK ``Euler3DTransform`` (centre ``center``) equal to the rigid 4 x 4 ``affine``."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(v) for v in center])
    transform.SetMatrix([float(v) for v in affine[:3, :3].ravel()], 1e-6)
    moved_center = affine[:3, :3] @ center + affine[:3, 3]
    transform.SetTranslation([float(v) for v in moved_center - center])
    return transform


def rotation_angle_deg(affine: np.ndarray) -> float:
    """The rotation angle of a rigid 4 x 4 affine, in degrees."""
    cosine = (np.trace(affine[:3, :3]) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def _grid(
    matrix: int, spacing: float, num_slices: int, thickness: float, center: np.ndarray, direction: np.ndarray
) -> Grid:
    spacing_xyz = np.array([spacing, spacing, thickness])
    half_extent = spacing_xyz * (np.array([matrix, matrix, num_slices]) - 1) / 2.0
    origin = center - direction @ half_extent
    return Grid(
        size_xyz=(matrix, matrix, num_slices),
        spacing_xyz=(spacing, spacing, thickness),
        origin_xyz=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in direction.ravel()),
    )


def plan_acquisition(
    rng: np.random.Generator,
    config: SynthConfig,
    head_center: tuple[float, float],
    z_range: tuple[float, float],
) -> Acquisition:
    """Draw the series grids and the patient motion of one case.

    Args:
        rng: the random source.
        config: generator settings.
        head_center: (x, y) of the head centre in the anatomy frame.
        z_range: the z interval the stack should cover (the tumour), centred when the stack is shorter.
    """
    num_slices = int(rng.integers(config.num_slices_range[0], config.num_slices_range[1] + 1))
    coverage = num_slices * config.slice_thickness_mm
    z_low, z_high = z_range
    slack = coverage - (z_high - z_low) - 8.0
    if slack > 0:
        top = z_high + 4.0 + float(rng.uniform(0.0, min(slack, 30.0)))
    else:
        top = (z_high + z_low) / 2.0 + coverage / 2.0
    stack_center_z = top - coverage / 2.0
    direction = np.eye(3)
    if config.oblique_max_deg > 0:
        direction = rotation_matrix(rng.standard_normal(3), np.radians(rng.uniform(0.0, config.oblique_max_deg)))
    fov_center = np.array([head_center[0], head_center[1], stack_center_z])
    t2_center = fov_center + np.append(rng.uniform(-config.fov_offset_mm, config.fov_offset_mm, size=2), 0.0)
    grids = {
        "t2": _grid(
            config.t2_matrix,
            config.t2_spacing_mm,
            num_slices,
            config.slice_thickness_mm,
            t2_center,
            direction,
        )
    }
    t1_motion = random_rigid(rng, config.misalignment_mm, config.misalignment_deg, t2_center)
    extra = random_rigid(rng, config.t1c_extra_misalignment_mm, config.t1c_extra_misalignment_deg, t2_center)
    transforms = {"t2": np.eye(4), "t1": t1_motion, "t1c": extra @ t1_motion}
    for sequence in ("t1", "t1c"):
        offset = np.array(
            [
                *rng.uniform(-config.fov_offset_mm, config.fov_offset_mm, size=2),
                rng.uniform(-config.slice_offset_mm, config.slice_offset_mm),
            ]
        )
        grids[sequence] = _grid(
            config.t1_matrix,
            config.t1_spacing_mm,
            num_slices,
            config.slice_thickness_mm,
            fov_center + direction @ offset,
            direction,
        )
    return Acquisition(grids=grids, transforms=transforms, center=t2_center)


def _upsample_linear(values: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Linear interpolation of ``values`` along ``axis`` from its knots (spread evenly) to ``size`` points."""
    count = values.shape[axis]
    position = np.linspace(0.0, count - 1.0, size)
    lower = np.clip(np.floor(position).astype(int), 0, count - 2)
    shape = [1] * values.ndim
    shape[axis] = size
    fraction = (position - lower).astype(np.float32).reshape(shape)
    below = np.take(values, lower, axis=axis)
    above = np.take(values, lower + 1, axis=axis)
    above -= below
    above *= fraction
    below += above
    return below


def acquire(
    rng: np.random.Generator,
    signal: np.ndarray,
    spacing_mm: float,
    *,
    texture_fraction: float,
    bias_strength: float,
    noise_sigma: float,
    scale: float,
    correlation_mm: float = 2.5,
    slab_voxels: int = 1 << 19,
) -> np.ndarray:
    """Turn a noiseless signal into stored MRI values: texture, bias field, Rician noise, intensity scale.

    Texture: per-slice white noise on a coarse in-plane lattice (spacing ``correlation_mm``) interpolated
    linearly, standard deviation about ``texture_fraction``; slices are independent (4 mm apart). Bias:
    ``exp`` of a random combination of separable low-frequency cosines (up to one period across the field of
    view in plane, half a period through the stack) whose largest log-deviation is ``log(1 + bias_strength)``,
    evaluated on the same coarse lattice (it is smooth enough that linear interpolation is exact to well below
    the noise). Noise: the magnitude of the signal plus complex Gaussian noise of standard deviation
    ``noise_sigma`` per channel (Rician).

    Args:
        rng: the random source.
        signal: noiseless signal ``(z, y, x)``, float32; overwritten.
        spacing_mm: in-plane voxel size.
        texture_fraction: texture standard deviation (relative).
        bias_strength: largest relative deviation of the bias field.
        noise_sigma: noise standard deviation per channel (same units as ``signal``).
        scale: the factor from signal units to stored values.
        correlation_mm: texture lattice spacing.
        slab_voxels: voxels processed at once (small temporaries keep this fast).

    Returns:
        int16 array of ``signal``'s shape.
    """
    num_z, num_y, num_x = signal.shape
    coarse_y = max(2, int(np.ceil(num_y * spacing_mm / correlation_mm)) + 1)
    coarse_x = max(2, int(np.ceil(num_x * spacing_mm / correlation_mm)) + 1)
    coarse = rng.standard_normal((num_z, coarse_y, coarse_x), dtype=np.float32)
    # Bilinear interpolation lowers the variance between knots (to 4/9 on average); 1.5 restores about 1.
    coarse *= np.float32(1.5 * texture_fraction)
    coarse += 1
    coarse *= bias_field(rng, (num_z, coarse_y, coarse_x), bias_strength)
    coarse *= np.float32(scale)
    output = np.empty(signal.shape, dtype=np.int16)
    slab = max(1, slab_voxels // (num_y * num_x))
    limit = np.float32(np.iinfo(np.int16).max)
    for start in range(0, num_z, slab):
        part = signal[start : start + slab]
        if noise_sigma > 0:
            add_rician_noise(rng, part, noise_sigma)
        part *= _upsample_linear(_upsample_linear(coarse[start : start + slab], num_x, axis=2), num_y, axis=1)
        np.clip(part, 0, limit, out=part)
        np.rint(part, out=part)
        output[start : start + slab] = part
    return output


def bias_field(rng: np.random.Generator, shape_zyx: tuple[int, int, int], strength: float) -> np.ndarray:
    """A smooth multiplicative field between about ``1 - strength`` and ``1 + strength`` (float32).

    ``exp`` of a random combination of separable low-frequency cosines (up to one period across the array in
    plane, half a period through the stack), scaled so that its largest log-deviation is ``log(1 +
    strength)``.
    """
    num_z, num_y, num_x = shape_zyx
    coefficients = rng.standard_normal((2, 3, 3)).astype(np.float32)
    if strength <= 0:
        return np.ones(shape_zyx, dtype=np.float32)

    def basis(count: int, num_functions: int) -> np.ndarray:
        position = np.linspace(0.0, 1.0, count)
        return np.stack([np.cos(np.pi * order * position) for order in range(num_functions)], axis=1).astype(np.float32)

    coefficients[0, 0, 0] = 0.0
    per_x = np.einsum("abc,ic->abi", coefficients, basis(num_x, 3))
    per_yx = np.einsum("jb,abi->aji", basis(num_y, 3), per_x)
    along_z = basis(num_z, 2)
    log_field = along_z[:, 0, None, None] * per_yx[0] + along_z[:, 1, None, None] * per_yx[1]
    largest = float(np.abs(log_field).max())
    if largest > 0:
        log_field *= np.float32(np.log1p(strength) / largest)
    return np.exp(log_field, out=log_field)


def add_rician_noise(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise of standard deviation ``sigma`` per channel (in
    place)."""
    if sigma <= 0:
        return signal
    real = rng.standard_normal(signal.shape, dtype=np.float32)
    real *= np.float32(sigma)
    signal += real
    np.square(signal, out=signal)
    imaginary = rng.standard_normal(signal.shape, dtype=np.float32, out=real)
    imaginary *= np.float32(sigma)
    np.square(imaginary, out=imaginary)
    signal += imaginary
    return np.sqrt(signal, out=signal)

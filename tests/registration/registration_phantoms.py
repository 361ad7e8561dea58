"""Small multimodal head phantoms for registration tests.

The anatomy is defined in continuous physical space (LPS mm) as soft-edged ellipsoids; a "T2" and a "T1" assign
each tissue a different intensity (permuted order, so no monotone mapping links them). The moving image is sampled
through a KNOWN rigid transform ``truth`` that maps fixed points to moving points: the anatomy at fixed point p
appears at moving point truth(p). Partial volume is modelled by averaging sub-samples inside each voxel (more along
the thick slice axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

HEAD_CENTRE = np.array([12.0, -20.0, 30.0])

# (centre offset from HEAD_CENTRE, semi-axes, rotation about z in degrees, t2 intensity, t1 intensity)
TISSUES: tuple[tuple[tuple[float, float, float], tuple[float, float, float], float, float, float], ...] = (
    ((0, 0, 0), (45, 55, 38), 0, 0.85, 1.00),  # scalp / fat
    ((0, 0, 0), (40, 50, 34), 0, 0.45, 0.55),  # muscle / brain
    ((18, -30, 10), (8, 8, 7), 0, 1.00, 0.15),  # fluid (eye): bright T2, dark T1
    ((-14, 10, -8), (12, 20, 10), 25, 0.30, 0.80),  # gland: dark T2, bright T1
    ((0, -12, -14), (7, 11, 8), -10, 0.02, 0.02),  # air (nasopharynx)
    ((9, 6, -10), (7, 6, 6), 40, 0.70, 0.40),  # tumour
    ((-20, -25, 12), (5, 12, 6), 60, 0.60, 0.30),
    ((22, 20, -4), (9, 6, 12), -30, 0.15, 0.65),
)


def intensity(points: np.ndarray, contrast: str, edge_mm: float = 1.0) -> np.ndarray:
    """Phantom intensity at physical points (N, 3) for ``contrast`` ``t1`` or ``t2``.

    Tissue edges ramp linearly over ``edge_mm`` (partial volume); a smooth bias field differs per contrast.
    """
    column = 3 if contrast == "t2" else 4
    relative = (points - HEAD_CENTRE).astype(np.float32)
    x, y, z = relative[:, 0], relative[:, 1], relative[:, 2]
    values = np.zeros(len(points), dtype=np.float32)
    for tissue in TISSUES:
        offset, axes, angle_deg, *_ = tissue
        cosine, sine = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
        dx, dy, dz = x - offset[0], y - offset[1], z - offset[2]
        u = (dx * cosine + dy * sine) / axes[0]
        v = (-dx * sine + dy * cosine) / axes[1]
        w = dz / axes[2]
        distance_mm = (np.sqrt(u * u + v * v + w * w) - 1.0) * min(axes)
        weight = np.clip(0.5 - distance_mm / edge_mm, 0.0, 1.0)
        values += weight * (tissue[column] - values)
    bias_axis = np.array([1.0, 0.5, 0.2]) if contrast == "t2" else np.array([-0.3, 1.0, 0.4])
    values *= 1.0 + 0.15 * np.tanh((relative @ bias_axis.astype(np.float32)) / 60.0)
    return values


@dataclass(frozen=True)
class GridSpec:
    """A grid: size (x, y, z), spacing (mm), direction (row-major 3 x 3), centred at ``centre``."""

    size_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    centre: tuple[float, float, float] = tuple(HEAD_CENTRE)  # type: ignore[assignment]

    def empty_image(self) -> sitk.Image:
        image = sitk.Image(list(self.size_xyz), sitk.sitkFloat32)
        image.SetSpacing(self.spacing_xyz)
        image.SetDirection(self.direction)
        direction = np.asarray(self.direction).reshape(3, 3)
        half_extent = (np.asarray(self.size_xyz) - 1) * np.asarray(self.spacing_xyz) / 2.0
        image.SetOrigin(tuple(np.asarray(self.centre) - direction @ half_extent))
        return image


def oblique_direction(angle_x_deg: float, angle_z_deg: float, flip_lr: bool = False) -> tuple[float, ...]:
    """A direction matrix rotated about x then z; ``flip_lr`` negates the first two axes (RAS-stored data)."""
    ax, az = math.radians(angle_x_deg), math.radians(angle_z_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    matrix = rz @ rx
    if flip_lr:
        matrix = matrix @ np.diag([-1.0, -1.0, 1.0])
    return tuple(float(v) for v in matrix.ravel())


def physical_points(image: sitk.Image, offsets: np.ndarray | None = None) -> np.ndarray:
    """Physical points (N, 3) of every voxel centre (+ optional index offsets), in array order (z, y, x)."""
    size = image.GetSize()
    k, j, i = np.meshgrid(np.arange(size[2]), np.arange(size[1]), np.arange(size[0]), indexing="ij")
    index = np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1).astype(float)
    if offsets is not None:
        index = index + offsets
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    return (index * np.asarray(image.GetSpacing())) @ direction.T + np.asarray(image.GetOrigin())


def render(
    spec: GridSpec,
    contrast: str,
    truth: sitk.Transform | None = None,
    noise: float = 0.02,
    seed: int = 0,
    thin_sections: bool = False,
) -> sitk.Image:
    """Sample the phantom on ``spec``; with ``truth`` (fixed -> moving) sample the moved anatomy.

    Each voxel averages sub-samples about 1 mm apart (the slice profile of a thick slice); ``thin_sections``
    samples only the slice centre along the third axis (no slice profile).
    """
    image = spec.empty_image()
    spacing = np.asarray(spec.spacing_xyz)
    counts = [max(1, math.ceil(s / 1.0)) for s in spacing]
    if thin_sections:
        counts[2] = 1
    offsets = [(np.arange(n) + 0.5) / n - 0.5 for n in counts]
    inverse = truth.GetInverse() if truth is not None else None
    total = np.zeros(int(np.prod(spec.size_xyz)))
    num = 0
    for dz in offsets[2]:
        for dy in offsets[1]:
            for dx in offsets[0]:
                points = physical_points(image, np.array([dx, dy, dz]))
                if inverse is not None:
                    points = apply(inverse, points)
                total += intensity(points, contrast)
                num += 1
    values = total / num
    rng = np.random.default_rng(seed)
    values = np.abs(values + rng.normal(0, noise, values.shape))
    result = sitk.GetImageFromArray((values * 1000).reshape(spec.size_xyz[::-1]).astype(np.float32))
    result.CopyInformation(image)
    return result


def apply(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """Map points (N, 3) through an affine-family SimpleITK transform, vectorised."""
    matrix = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre = np.asarray(transform.GetCenter())
    translation = np.asarray(transform.GetTranslation())
    return (points - centre) @ matrix.T + centre + translation


def rigid(
    angles_deg: tuple[float, float, float],
    translation_mm: tuple[float, float, float],
    centre: tuple[float, float, float] = tuple(HEAD_CENTRE),
) -> sitk.Euler3DTransform:  # type: ignore[assignment]
    """An Euler 3D transform from angles (degrees, about x, y, z) and a translation (mm)."""
    transform = sitk.Euler3DTransform()
    transform.SetCenter(centre)
    transform.SetRotation(*(math.radians(a) for a in angles_deg))
    transform.SetTranslation(translation_mm)
    return transform


FIXED_SPEC = GridSpec(size_xyz=(96, 116, 21), spacing_xyz=(1.0, 1.0, 4.0))
"""Fixed "T2": fine in-plane, 4 mm slices."""
MOVING_SPEC = GridSpec(size_xyz=(48, 58, 21), spacing_xyz=(2.0, 2.0, 4.0), centre=(14.0, -17.0, 32.0))
"""Moving "T1": coarser in-plane, 4 mm slices, a slightly different field of view."""


def phantom_pair(
    truth: sitk.Transform,
    fixed_spec: GridSpec = FIXED_SPEC,
    moving_spec: GridSpec = MOVING_SPEC,
    seed: int = 0,
    thin_sections: bool = False,
) -> tuple[sitk.Image, sitk.Image]:
    """(fixed T2, moving T1) with the moving anatomy displaced by ``truth`` (fixed -> moving)."""
    fixed = render(fixed_spec, "t2", seed=seed, thin_sections=thin_sections)
    moving = render(moving_spec, "t1", truth=truth, seed=seed + 1, thin_sections=thin_sections)
    return fixed, moving


TINY_FIXED_SPEC = GridSpec(size_xyz=(60, 72, 12), spacing_xyz=(1.6, 1.6, 4.0))
"""A coarse fixed grid for cohort and CLI tests (fast to render and register)."""
TINY_MOVING_SPEC = GridSpec(size_xyz=(32, 38, 12), spacing_xyz=(3.0, 3.0, 4.0), centre=(14.0, -17.0, 32.0))


def write_cohort(root: Path, motions: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]]) -> Path:
    """A cohort folder ``root/cases/<case_id>/{t2,<seq>}.nii.gz`` plus ``root/truth/<case_id>/<seq>.tfm``.

    Args:
        root: the cohort folder to create.
        motions: case id -> moving sequence (``t1``, ``t1c``) -> (angles in degrees, translation in mm).
    """
    for index, (case_id, sequences) in enumerate(motions.items()):
        folder = root / "cases" / case_id
        folder.mkdir(parents=True)
        truth_folder = root / "truth" / case_id
        truth_folder.mkdir(parents=True)
        sitk.WriteImage(render(TINY_FIXED_SPEC, "t2", seed=index), str(folder / "t2.nii.gz"))
        for sequence, (angles, translation) in sequences.items():
            truth = rigid(angles, translation)  # type: ignore[arg-type]
            moving = render(TINY_MOVING_SPEC, "t1", truth=truth, seed=index + 10)
            sitk.WriteImage(moving, str(folder / f"{sequence}.nii.gz"))
            sitk.WriteTransform(truth, str(truth_folder / f"{sequence}.tfm"))
    return root

"""The gross tumour volume: an infiltrative primary nasopharyngeal tumour and metastatic lymph nodes.

The primary tumour arises at one lateral recess (fossa of Rosenmüller) and grows towards the lumen, the
parapharyngeal space and the prevertebral muscles: an :class:`~npcseg.synth.shapes.IrregularBlob` whose
ellipsoidal envelope is centred a random mix of those directions away from the recess and whose margin is a
thresholded smooth random field (lobulated, irregular). Its in-plane size is calibrated so that its largest
cross-section covers a drawn fraction of the T2 slice (:func:`calibrate_tumour`). Metastatic nodes are larger
and rounder than normal nodes; some have a necrotic centre. The T and N categories follow from the drawn
extent (:func:`t_category`, :func:`n_category`), in the spirit of the AJCC 8th edition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from npcseg.synth.anatomy import Landmarks, _rotation_z
from npcseg.synth.physics import TISSUES
from npcseg.synth.render import Layer
from npcseg.synth.shapes import FIELD_LIMIT, Bounds, Ellipsoid, IrregularBlob, LatticeField

MAX_CALIBRATION_SCALE = 1.6
"""Largest factor by which :func:`calibrate_tumour` grows or shrinks the drawn in-plane envelope."""


@dataclass(frozen=True)
class MetastaticNode:
    """One metastatic node: station, side (-1 right, +1 left), and geometry."""

    station: str
    side: float
    shape: Ellipsoid
    necrotic_core: Ellipsoid | None


@dataclass(frozen=True, eq=False)
class Lesions:
    """The GTV of one case.

    Attributes:
        tumour: the primary tumour.
        heterogeneity: field in [0, 1] that moves the tumour's signal between its low and high value.
        side: the side of the recess the tumour arises from (-1 right, +1 left).
        nodes: metastatic lymph nodes.
        target_area_fraction: the drawn largest cross-section of the primary as a fraction of the T2 slice
        area.
    """

    tumour: IrregularBlob
    heterogeneity: LatticeField
    side: float
    nodes: tuple[MetastaticNode, ...]
    target_area_fraction: float

    def z_extent(self) -> tuple[float, float]:
        """z range (mm) of the primary tumour's reach."""
        (_, _, z_low), (_, _, z_high) = self.tumour.bounds()
        return z_low, z_high

    def layers(self) -> list[Layer]:
        """GTV layers in paint order: nodes, then the primary tumour on top."""
        layers: list[Layer] = []
        for node in self.nodes:
            layers.append(Layer(shape=node.shape, tissues=("node_metastatic",)))
            if node.necrotic_core is not None:
                layers.append(Layer(shape=node.necrotic_core, tissues=("necrosis",)))
        layers.append(Layer(shape=self.tumour, tissues=("tumour",), modulation=self.heterogeneity))
        return layers


def sample_lesions(
    rng: np.random.Generator,
    landmarks: Landmarks,
    *,
    area_fraction_range: tuple[float, float],
    height_mm_range: tuple[float, float],
    num_nodes_range: tuple[int, int],
    necrosis_probability: float,
    slice_area_mm2: float,
) -> Lesions:
    """Draw the primary tumour and the metastatic nodes of one case.

    Args:
        rng: the random source.
        landmarks: the patient's anatomy landmarks.
        area_fraction_range: range of the primary's largest cross-section over the slice area.
        height_mm_range: range of the primary's cranio-caudal extent in mm.
        num_nodes_range: inclusive range of the number of metastatic nodes.
        necrosis_probability: chance of a necrotic centre per node.
        slice_area_mm2: area of a T2 slice (field of view squared).
    """
    side = 1.0 if rng.random() < 0.5 else -1.0
    recess = np.asarray(landmarks.recesses[1 if side > 0 else 0])
    # Growth directions from the recess: into the lumen, into the parapharyngeal space, towards the
    # prevertebral muscles and the skull base.
    directions = np.array([[-side * 6.0, -4.0, 0.0], [side * 8.0, 0.0, 0.0], [0.0, 6.0, 0.0], [0.0, 0.0, 6.0]])
    weights = rng.dirichlet(np.ones(len(directions)))
    offset = (weights[:, None] * directions).sum(axis=0) * float(rng.uniform(0.6, 1.6))
    target = float(rng.uniform(*area_fraction_range))
    aspect = float(rng.uniform(0.7, 1.4))
    radius = np.sqrt(target * slice_area_mm2 / np.pi)
    height = float(rng.uniform(*height_mm_range))
    # Centred at or below the recess; the top reaches at most a little past the skull base.
    center = recess + offset + np.array([0.0, 0.0, float(rng.uniform(-8.0, 2.0))])
    center[2] = min(center[2], landmarks.skull_base_z + float(rng.uniform(-6.0, 8.0)) - height / 2.0)
    semi_axes = (radius * np.sqrt(aspect), radius / np.sqrt(aspect), height / 2.0)
    rotation = _tilted_rotation(rng, max_tilt_deg=15.0)
    envelope = Ellipsoid(center=tuple(float(v) for v in center), semi_axes=semi_axes, rotation=rotation)  # type: ignore[arg-type]
    roughness = float(rng.uniform(0.2, 0.3))
    # The fields must cover the tumour's reach after calibration (which rescales the in-plane axes by at most
    # MAX_CALIBRATION_SCALE) and the envelope's tilt (at most 15 degrees).
    grow = 1.0 / np.sqrt(1.0 - FIELD_LIMIT * roughness)
    in_plane = MAX_CALIBRATION_SCALE * max(semi_axes[:2]) * grow
    reach = np.array([in_plane, in_plane, (semi_axes[2] + 0.27 * in_plane) * grow])
    low, high = center - reach, center + reach
    box: Bounds = ((low[0], low[1], low[2]), (high[0], high[1], high[2]))
    field = LatticeField.random_multiscale(
        rng,
        box,
        correlations_mm=((5.0, 5.0, 6.0), (2.0, 2.0, 3.0)),
        weights=(0.8, 0.6),
        spacing_mm=1.5,
    )
    hetero = LatticeField.random(rng, box, correlation_mm=(4.0, 4.0, 5.0), spacing_mm=2.0)
    hetero = dataclasses.replace(hetero, values=(1.0 / (1.0 + np.exp(-1.8 * hetero.values))).astype(np.float32))
    tumour = IrregularBlob(envelope=envelope, field=field, roughness=roughness)
    nodes = tuple(
        _sample_node(rng, landmarks, side, necrosis_probability)
        for _ in range(int(rng.integers(num_nodes_range[0], num_nodes_range[1] + 1)))
    )
    return Lesions(tumour=tumour, heterogeneity=hetero, side=side, nodes=nodes, target_area_fraction=target)


def _sample_node(
    rng: np.random.Generator, landmarks: Landmarks, tumour_side: float, necrosis_probability: float
) -> MetastaticNode:
    station = "retropharyngeal" if rng.random() < 0.45 else ("level_ii" if rng.random() < 0.75 else "level_iii")
    side = tumour_side if rng.random() < 0.75 else -tumour_side
    x, y, z_low, z_high = landmarks.node_stations[station]
    short = float(rng.uniform(5.0, 9.0)) if station == "retropharyngeal" else float(rng.uniform(6.0, 13.0))
    if station == "retropharyngeal":
        x, y = x + 3.0, y + 2.0
    center = (
        side * (x + short * 0.3) + float(rng.normal(0, 2)),
        y + float(rng.normal(0, 2)),
        float(rng.uniform(z_low, z_high)),
    )
    semi_axes = (short, short * float(rng.uniform(1.0, 1.3)), short * float(rng.uniform(1.0, 1.3)))
    shape = Ellipsoid(center=center, semi_axes=semi_axes, rotation=_rotation_z(float(rng.uniform(0, 180))))
    core = None
    if rng.random() < necrosis_probability:
        fraction = float(rng.uniform(0.35, 0.6))
        core_axes = (semi_axes[0] * fraction, semi_axes[1] * fraction, semi_axes[2] * fraction)
        core = Ellipsoid(center=center, semi_axes=core_axes, rotation=shape.rotation)
    return MetastaticNode(station=station, side=side, shape=shape, necrotic_core=core)


def _tilted_rotation(rng: np.random.Generator, max_tilt_deg: float) -> tuple[float, ...]:
    """A random in-plane rotation followed by a tilt of at most ``max_tilt_deg`` about a random in-plane
    axis."""
    spin = np.asarray(_rotation_z(float(rng.uniform(0, 180)))).reshape(3, 3)
    axis_angle = rng.uniform(0, 2 * np.pi)
    axis = np.array([np.cos(axis_angle), np.sin(axis_angle), 0.0])
    tilt = rotation_matrix(axis, np.radians(rng.uniform(0, max_tilt_deg)))
    return tuple(float(v) for v in (tilt @ spin).ravel())


def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rodrigues' rotation matrix about the unit vector ``axis``."""
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * cross + (1 - np.cos(angle_rad)) * cross @ cross


def calibrate_tumour(
    lesions: Lesions,
    largest_area: Callable[[IrregularBlob], float],
    slice_area_mm2: float,
    iterations: int = 3,
) -> Lesions:
    """Rescale the primary's in-plane envelope until its largest cross-section matches the target fraction.

    Args:
        lesions: the drawn lesions.
        largest_area: the largest per-slice area (mm^2) of a candidate tumour on the T2 grid.
        slice_area_mm2: area of a T2 slice.
        iterations: number of rescaling steps (each a fixed-point update on sqrt(area)).
    """
    tumour = lesions.tumour
    target = lesions.target_area_fraction * slice_area_mm2
    total = 1.0
    semi = tumour.envelope.semi_axes
    for _ in range(iterations):
        area = largest_area(tumour)
        factor = np.sqrt(target / area) if area > 0 else MAX_CALIBRATION_SCALE
        total = float(np.clip(total * factor, 1.0 / MAX_CALIBRATION_SCALE, MAX_CALIBRATION_SCALE))
        if abs(factor - 1) < 0.02:
            break
        envelope = dataclasses.replace(tumour.envelope, semi_axes=(semi[0] * total, semi[1] * total, semi[2]))
        tumour = dataclasses.replace(tumour, envelope=envelope)
    return dataclasses.replace(lesions, tumour=tumour)


T_CATEGORY_FRACTIONS: dict[str, float] = {"T4": 0.03, "T3": 0.04, "T2": 0.55}
"""Share of the primary tumour that must lie over the tissues of a T category for it to count as involved."""


def t_category(tumour_voxels_under: np.ndarray, voxel_volume_ml: float, reaches_above_skull_base_mm: float) -> str:
    """T category from what the primary tumour grew into (a simplified AJCC 8th edition reading).

    Args:
        tumour_voxels_under: tissue index (into :data:`TISSUES`) of the normal anatomy under each tumour
        voxel. voxel_volume_ml: volume of one voxel.
        reaches_above_skull_base_mm: how far the tumour reaches above the skull base (negative: below it).

    Returns:
        ``T4`` for intracranial extension (at least 3 % of the tumour over brain or CSF, or more than 8 mm
        above the skull base); ``T3`` for bone involvement (skull base, clivus, pterygoid plates, vertebra: at
        least 4 % over cortex or marrow); ``T2`` for parapharyngeal and masticator / prevertebral involvement
        (at least 55 % over fat, muscle or gland: the pharyngeal wall alone is thinner); ``T1`` otherwise. A
        share counts only from 0.05 ml.
    """
    count = max(int(tumour_voxels_under.size), 1)
    minimum = 0.05 / voxel_volume_ml

    def share(*names: str) -> float:
        involved = int(np.isin(tumour_voxels_under, [TISSUES.index(name) for name in names]).sum())
        return involved / count if involved >= minimum else 0.0

    if share("brain", "csf") >= T_CATEGORY_FRACTIONS["T4"] or reaches_above_skull_base_mm > 8.0:
        return "T4"
    if share("cortex", "marrow") >= T_CATEGORY_FRACTIONS["T3"]:
        return "T3"
    if share("fat", "muscle", "gland") >= T_CATEGORY_FRACTIONS["T2"]:
        return "T2"
    return "T1"


def n_category(nodes: tuple[MetastaticNode, ...]) -> str:
    """N category: N0 without nodes; N3 for a node larger than 6 cm; N2 for bilateral cervical nodes or a node
    in level III; N1 otherwise (unilateral cervical and/or retropharyngeal nodes of either side)."""
    if not nodes:
        return "N0"
    if any(2 * max(node.shape.semi_axes) > 60.0 for node in nodes):
        return "N3"
    cervical_sides = {node.side for node in nodes if node.station != "retropharyngeal"}
    if len(cervical_sides) == 2:
        return "N2"
    if any(node.station == "level_iii" for node in nodes):
        return "N2"
    return "N1"

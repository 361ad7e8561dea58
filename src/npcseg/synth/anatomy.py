"""A patient's normal head-and-neck anatomy from the skull base down to the oropharynx and neck.

Every structure is an analytic shape whose cross-section changes smoothly with the slice position z (see
:mod:`npcseg.synth.shapes`), with per-patient variation: overall head size, fat thickness, and a small
independent offset and size change for every structure on each side. The anatomy frame is LPS mm with its
origin at the centre of the nasopharynx (+x patient left, +y posterior, +z superior).

Paint order matters: later layers cover earlier ones. Fat planes are painted before the muscles they outline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npcseg.synth.render import Layer
from npcseg.synth.shapes import Difference, Ellipsoid, HalfSpace, Shape, Tube, Union

Z_BOTTOM, Z_TOP = -200.0, 200.0
"""z extent of the long structures (beyond any stack)."""


@dataclass(frozen=True)
class Landmarks:
    """Positions the lesion generator builds on (anatomy frame, mm).

    Attributes:
        recesses: (x, y, z) of the left and right lateral recess (fossa of Rosenmüller), side -1 first.
        skull_base_z: z of the skull base (floor of the middle cranial fossa).
        nasopharynx_z: z range of the nasopharynx.
        head_center: (x, y) of the head at the nasopharynx.
        node_stations: name -> (x, y, z_low, z_high) of lymph node stations, per side (``x`` for side +1).
    """

    recesses: tuple[tuple[float, float, float], tuple[float, float, float]]
    skull_base_z: float
    nasopharynx_z: tuple[float, float]
    head_center: tuple[float, float]
    node_stations: dict[str, tuple[float, float, float, float]]


@dataclass(frozen=True, eq=False)
class Anatomy:
    """A patient's normal anatomy: layers in paint order plus landmarks."""

    layers: tuple[Layer, ...]
    landmarks: Landmarks


class _Builder:
    """Helpers that apply the patient's scale and per-structure jitter."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.scale_x = float(rng.uniform(0.9, 1.1))
        self.scale_y = float(rng.uniform(0.9, 1.1))
        self.scale_z = float(rng.uniform(0.92, 1.08))
        self.layers: list[Layer] = []

    def z(self, value: float) -> float:
        return value * self.scale_z

    def tube(
        self,
        z_knots: tuple[float, ...],
        center_x: tuple[float, ...] | float,
        center_y: tuple[float, ...] | float,
        semi_x: tuple[float, ...] | float,
        semi_y: tuple[float, ...] | float,
        *,
        angle_deg: float = 0.0,
        z_range: tuple[float, float] | None = None,
        jitter_mm: float = 1.5,
        size_jitter: float = 0.1,
    ) -> Tube:
        count = len(z_knots)

        def profile(value: tuple[float, ...] | float) -> np.ndarray:
            return np.full(count, value, dtype=float) if np.isscalar(value) else np.asarray(value, dtype=float)

        shift_x, shift_y = self.rng.normal(0.0, jitter_mm, size=2)
        size = float(self.rng.uniform(1 - size_jitter, 1 + size_jitter))
        return Tube(
            z_knots=tuple(float(self.z(v)) for v in z_knots),
            center_x=tuple(float(v) for v in profile(center_x) * self.scale_x + shift_x),
            center_y=tuple(float(v) for v in profile(center_y) * self.scale_y + shift_y),
            semi_x=tuple(float(v) for v in profile(semi_x) * self.scale_x * size),
            semi_y=tuple(float(v) for v in profile(semi_y) * self.scale_y * size),
            angle_deg=angle_deg,
            z_range=None if z_range is None else (self.z(z_range[0]), self.z(z_range[1])),
        )

    def add(self, shape: Shape, *tissues: str, depths: tuple[float, ...] = (0.0,)) -> None:
        self.layers.append(Layer(shape=shape, tissues=tissues, depths_mm=depths))


def build_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's normal anatomy."""
    b = _Builder(rng)
    sides = (-1.0, 1.0)
    fat_depth = 2.0 + float(rng.uniform(4.0, 11.0))
    # Head and neck outline: skin, subcutaneous fat, deep soft tissue.
    b.add(
        b.tube(
            (-150, -100, -70, -30, 0, 30, 70),
            (0, 0, 0, 0, 0, 0, 0),
            (30, 30, 18, 6, 5, 10, 12),
            (58, 60, 66, 72, 74, 72, 68),
            (70, 72, 86, 96, 100, 98, 92),
            jitter_mm=0.0,
            size_jitter=0.03,
        ),
        "skin",
        "fat",
        "muscle",
        depths=(0.0, 2.0, fat_depth),
    )
    skull_base = b.z(16.0)
    # Above the skull base: skull, CSF and brain (temporal lobes, cerebellum), a dome from the skull base up;
    # the clivus and the sphenoid sinus cover its middle later.
    b.add(
        b.tube(
            (8, 14, 24, 40, 80),
            0,
            (30, 28, 22, 14, 10),
            (1, 40, 58, 62, 64),
            (1, 30, 55, 70, 80),
            z_range=(8, 200),
        ),
        "cortex",
        "csf",
        "brain",
        depths=(0.0, 3.0, 4.0),
    )
    # Posterior neck: intermuscular fat and paraspinal muscles.
    b.add(b.tube((-150, 0, 12), 0, 64, (46, 46, 20), (30, 30, 10), z_range=(Z_BOTTOM, 12)), "fat")
    for side in sides:
        b.add(
            b.tube(
                (-150, 0, 12),
                20 * side,
                64,
                (16, 16, 6),
                (24, 24, 8),
                angle_deg=20 * side,
                z_range=(Z_BOTTOM, 12),
            ),
            "muscle",
        )
    # Lateral structures per side.
    for side in sides:
        b.add(b.tube((-45, 5), 48 * side, 20, 12, 20, z_range=(-45, 5)), "gland")
        b.add(b.tube((-55, 12), 38 * side, -4, 18, 26, z_range=(-55, 12)), "fat")
        b.add(b.tube((-40, 15), 22 * side, 2, 5, 11, angle_deg=15 * side, z_range=(-40, 15)), "fat")
        b.add(b.tube((-60, -2), 56 * side, -10, 7, 20, angle_deg=-10 * side, z_range=(-60, -2)), "muscle")
        b.add(b.tube((-45, -5), 31 * side, -7, 6, 15, angle_deg=-25 * side, z_range=(-45, -5)), "muscle")
        b.add(b.tube((-8, 14), 35 * side, -2, 7, 14, angle_deg=-60 * side, z_range=(-8, 14)), "muscle")
        b.add(b.tube((-8, 18), 24 * side, -18, 2.5, 10, angle_deg=10 * side, z_range=(-8, 18)), "cortex")
        b.add(
            b.tube((-58, 0), 44 * side, -5, 4, 15, angle_deg=10 * side, z_range=(-58, 0)),
            "cortex",
            "marrow",
            depths=(0.0, 1.8),
        )
        # Carotid artery and jugular vein (flow voids; the vein enhances on T1c).
        b.add(
            b.tube((-150, 20), (25 * side, 22 * side), (16, 14), 3, 3, z_range=(Z_BOTTOM, 20), jitter_mm=1.0),
            "artery",
        )
        b.add(b.tube((-150, 10), 33 * side, 24, 5, 4, z_range=(Z_BOTTOM, 10), jitter_mm=1.0), "vein")
    # Mandible body: a U-shaped arch (anterior half of an elliptic ring).
    outer = b.tube((-95, -58), 0, -30, 44, 52, z_range=(-95, -58), jitter_mm=0.5, size_jitter=0.03)
    inner = Tube(
        outer.z_knots,
        outer.center_x,
        outer.center_y,
        tuple(v - 8 for v in outer.semi_x),
        tuple(v - 8 for v in outer.semi_y),
    )
    arch = HalfSpace(Difference(outer, inner), normal=(0.0, 1.0, 0.0), offset=outer.center_y[0] + 2)
    b.add(arch, "cortex", "marrow", depths=(0.0, 1.8))
    # Hard palate.
    b.add(
        b.tube((-20, -15), 0, -45, 28, 25, z_range=(-20, -15), size_jitter=0.05),
        "cortex",
        "marrow",
        depths=(0.0, 1.5),
    )
    # Vertebral column with discs, clivus, spinal canal.
    b.add(
        b.tube((-150, -4), 0, 30, 15, 13, z_range=(Z_BOTTOM, -4), jitter_mm=0.8),
        "cortex",
        "marrow",
        depths=(0.0, 1.5),
    )
    for disc_z in (-22.0, -40.0, -58.0, -76.0, -94.0, -112.0, -130.0):
        b.add(b.tube((disc_z, disc_z), 0, 30, 14, 12, z_range=(disc_z - 2, disc_z + 2), jitter_mm=0.3), "disc")
    b.add(
        b.tube((2, 16, 45), 0, (24, 16, 6), (12, 14, 10), (8, 9, 8), z_range=(2, 45), jitter_mm=0.8),
        "cortex",
        "marrow",
        depths=(0.0, 1.5),
    )
    b.add(b.tube((-150, 12), 0, 52, 14, 12, z_range=(Z_BOTTOM, 12), jitter_mm=0.5), "cortex")
    b.add(
        b.tube((-150, 12), 0, 52, 11, 9, z_range=(Z_BOTTOM, 12), jitter_mm=0.3),
        "csf",
        "cord",
        depths=(0.0, 2.5),
    )
    # Retropharyngeal fat and prevertebral (longus colli / capitis) muscles.
    b.add(b.tube((-120, 10), 0, 9, 20, 7, z_range=(-120, 10), jitter_mm=0.5), "fat")
    for side in sides:
        b.add(b.tube((-120, 12), 9 * side, 12, 7, 4.5, z_range=(-120, 12), jitter_mm=0.7), "muscle")
    # Adenoid lymphoid tissue on the posterior-superior nasopharyngeal wall.
    adenoid_size = float(rng.uniform(0.6, 1.1))
    b.add(
        Ellipsoid(center=(0.0, 7.0 * b.scale_y, b.z(9.0)), semi_axes=(14 * adenoid_size, 5 * adenoid_size, 8.0)),
        "adenoid",
    )
    # Airway: nasopharynx, lateral recesses, oropharynx, with a mucosal lining.
    mucosa = float(rng.uniform(2.0, 3.5))
    recess_y = 4.0 * b.scale_y
    airway = b.tube(
        (-150, -90, -60, -20, 0, 12, 18),
        0,
        (-18, -14, -8, -3, -2, -2, -2),
        (8, 9, 12, 14, 15, 12, 4),
        (6, 6, 7, 9, 9, 8, 3),
        z_range=(Z_BOTTOM, 19),
        jitter_mm=0.8,
    )
    recess_tubes = tuple(
        Tube(
            (b.z(-6), b.z(12)),
            (13.0 * side * b.scale_x,) * 2,
            (recess_y,) * 2,
            (6.0, 6.0),
            (3.5, 3.5),
            angle_deg=35 * side,
            z_range=(b.z(-6), b.z(12)),
        )
        for side in sides
    )
    choana = b.tube((-5, 15), 0, -14, 12, 6, z_range=(-5, 15), jitter_mm=0.5)
    b.add(Union((airway, *recess_tubes, choana)), "mucosa", "air", depths=(0.0, mucosa))
    # Nasal cavity and paranasal sinuses.
    for side in sides:
        b.add(
            b.tube((-16, 28), 9 * side, -42, 7, 28, z_range=(-16, 28), jitter_mm=0.6),
            "mucosa",
            "air",
            depths=(0.0, 2.0),
        )
        b.add(
            b.tube((-14, 26), 30 * side, -38, 13, 15, z_range=(-14, 26)),
            "cortex",
            "mucosa",
            "air",
            depths=(0.0, 1.5, 3.0),
        )
    b.add(b.tube((20, 40), 0, -8, 14, 10, z_range=(20, 40)), "cortex", "mucosa", "air", depths=(0.0, 1.5, 3.0))
    # Normal lymph nodes: small ovals in the retropharyngeal and cervical stations.
    stations = {
        "retropharyngeal": (14.0 * b.scale_x, 14.0 * b.scale_y, b.z(-15.0), b.z(5.0)),
        "level_ii": (38.0 * b.scale_x, 26.0 * b.scale_y, b.z(-70.0), b.z(-25.0)),
        "level_iii": (36.0 * b.scale_x, 12.0 * b.scale_y, b.z(-110.0), b.z(-70.0)),
    }
    landmarks = Landmarks(
        recesses=tuple((13.0 * side * b.scale_x, recess_y, b.z(3.0)) for side in sides),  # type: ignore[arg-type]
        skull_base_z=skull_base,
        nasopharynx_z=(b.z(-12.0), b.z(16.0)),
        head_center=(0.0, 5.0 * b.scale_y),
        node_stations=stations,
    )
    return Anatomy(layers=tuple(b.layers), landmarks=landmarks)


def normal_node_layers(rng: np.random.Generator, landmarks: Landmarks, count: int) -> list[Layer]:
    """``count`` small oval normal lymph nodes (3-5 mm short axis) at random stations and sides."""
    names = sorted(landmarks.node_stations)
    layers = []
    for _ in range(count):
        x, y, z_low, z_high = landmarks.node_stations[names[int(rng.integers(len(names)))]]
        side = 1.0 if rng.random() < 0.5 else -1.0
        center = (
            side * x + float(rng.normal(0, 3)),
            y + float(rng.normal(0, 3)),
            float(rng.uniform(z_low, z_high)),
        )
        short = float(rng.uniform(2.5, 4.5))
        semi_axes = (short, short * float(rng.uniform(1.2, 1.8)), short * float(rng.uniform(1.2, 2.0)))
        layers.append(
            Layer(
                shape=Ellipsoid(center=center, semi_axes=semi_axes, rotation=_rotation_z(rng.uniform(0, 180))),
                tissues=("node",),
            )
        )
    return layers


def _rotation_z(angle_deg: float) -> tuple[float, ...]:
    angle = np.radians(angle_deg)
    cosine, sine = float(np.cos(angle)), float(np.sin(angle))
    return (cosine, -sine, 0.0, sine, cosine, 0.0, 0.0, 0.0, 1.0)

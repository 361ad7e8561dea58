"""Analytic shapes in continuous physical coordinates, evaluated as approximate signed distances.

Every shape answers ``distance(x, y, z)``: an approximate signed distance in mm to its surface (negative
inside), for coordinate arrays that broadcast against each other (the renderer passes ``(nz, 1, 1)``, ``(1,
ny, 1)``, ``(1, 1, nx)`` shaped arrays when the grid is axis-aligned with the anatomy, full arrays otherwise).
The distance only has to be accurate near the surface: the renderer turns it into a partial-volume fraction
over about one voxel. Shapes also give an axis-aligned bounding box so that a renderer evaluates them only
where they can be.

Coordinates are the anatomy frame (LPS mm: +x patient left, +y posterior, +z superior), whose origin is the
centre of the nasopharynx.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy import ndimage

FIELD_LIMIT = 2.0
"""Random lattice fields are clipped to [-2, 2] standard deviations (bounds the reach of irregular
lobules)."""

Bounds = tuple[tuple[float, float, float], tuple[float, float, float]]
"""Axis-aligned box ``((x_min, y_min, z_min), (x_max, y_max, z_max))`` in mm."""


class Shape(Protocol):
    """A solid with an approximate signed distance function."""

    def bounds(self) -> Bounds:
        """A box that contains every point with negative distance."""
        ...

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Approximate signed distance in mm (negative inside), broadcast over ``x``, ``y``, ``z``."""
        ...


PROFILE_STEP_MM = 0.1
"""z step of the tables that define z-varying profiles (the anatomy is this table, identical for every
grid)."""


def _profile_table(knots: tuple[float, ...], values: tuple[float, ...]) -> np.ndarray | float:
    """A z profile: the constant itself, or its piecewise-linear interpolation tabulated every
    :data:`PROFILE_STEP_MM` from the first knot to the last (constant beyond the end knots)."""
    if len(set(values)) == 1:
        return float(values[0])
    positions = knots[0] + PROFILE_STEP_MM * np.arange(int(np.ceil((knots[-1] - knots[0]) / PROFILE_STEP_MM)) + 1)
    return np.interp(positions, knots, values).astype(np.float32)


@dataclass(frozen=True)
class Tube:
    """An elliptic cross-section whose centre and semi-axes change piecewise-linearly with z.

    Attributes:
        z_knots: increasing z positions (mm) of the profile knots.
        center_x: centre x (mm) at each knot.
        center_y: centre y (mm) at each knot.
        semi_x: semi-axis (mm) along the ellipse's first axis at each knot (0 closes the tube).
        semi_y: semi-axis (mm) along the second axis at each knot.
        angle_deg: in-plane rotation of the ellipse's first axis from +x towards +y.
        z_range: the tube exists only for z inside this interval (a flat cap; ``None``: the end knots' profile
            continues beyond them).
    """

    z_knots: tuple[float, ...]
    center_x: tuple[float, ...]
    center_y: tuple[float, ...]
    semi_x: tuple[float, ...]
    semi_y: tuple[float, ...]
    angle_deg: float = 0.0
    z_range: tuple[float, float] | None = None

    def bounds(self) -> Bounds:
        reach = max(max(self.semi_x), max(self.semi_y))
        z_low, z_high = self.z_range if self.z_range is not None else (-1e4, 1e4)
        return (
            (min(self.center_x) - reach, min(self.center_y) - reach, z_low),
            (max(self.center_x) + reach, max(self.center_y) + reach, z_high),
        )

    @functools.cached_property
    def _tables(self) -> tuple[np.ndarray | float, ...]:
        return tuple(
            _profile_table(self.z_knots, values) for values in (self.center_x, self.center_y, self.semi_x, self.semi_y)
        )

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        tables = self._tables
        index: np.ndarray | None = None
        if any(isinstance(table, np.ndarray) for table in tables):
            last = max(len(table) for table in tables if isinstance(table, np.ndarray)) - 1
            position = (z - np.float32(self.z_knots[0])) * np.float32(1.0 / PROFILE_STEP_MM) + np.float32(0.5)
            index = np.clip(position, 0, last).astype(np.intp)

        def profile(table: np.ndarray | float) -> np.ndarray | np.float32:
            return np.float32(table) if not isinstance(table, np.ndarray) else table[index]

        center_x, center_y, semi_x, semi_y = (profile(table) for table in tables)
        semi_x = np.maximum(semi_x, np.float32(0.05))
        semi_y = np.maximum(semi_y, np.float32(0.05))
        dx = x - center_x
        dy = y - center_y
        if self.angle_deg:
            cosine, sine = (
                np.float32(np.cos(np.radians(self.angle_deg))),
                np.float32(np.sin(np.radians(self.angle_deg))),
            )
            dx, dy = dx * cosine + dy * sine, dy * cosine - dx * sine
        u = dx / semi_x
        v = dy / semi_y
        u *= u
        v *= v
        radius = np.sqrt(u + v)
        radius -= 1
        radius *= np.minimum(semi_x, semi_y)
        if self.z_range is not None:
            radius = np.maximum(radius, np.maximum(np.float32(self.z_range[0]) - z, z - np.float32(self.z_range[1])))
        return radius


@dataclass(frozen=True)
class Ellipsoid:
    """A rotated ellipsoid.

    Attributes:
        center: (x, y, z) in mm.
        semi_axes: semi-axes in mm along the rotated axes.
        rotation: row-major 3 x 3 rotation whose columns are the ellipsoid's axes in the anatomy frame.
    """

    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    rotation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def bounds(self) -> Bounds:
        reach = max(self.semi_axes)
        return (
            (self.center[0] - reach, self.center[1] - reach, self.center[2] - reach),
            (self.center[0] + reach, self.center[1] + reach, self.center[2] + reach),
        )

    def normalised_radius_squared(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``sum((local_i / semi_i)^2)``: 1 on the surface."""
        rotation = np.asarray(self.rotation, dtype=np.float32).reshape(3, 3)
        dx, dy, dz = (
            x - np.float32(self.center[0]),
            y - np.float32(self.center[1]),
            z - np.float32(self.center[2]),
        )
        total: np.ndarray | None = None
        for axis in range(3):
            local = dx * rotation[0, axis] + dy * rotation[1, axis] + dz * rotation[2, axis]
            local = local / np.float32(self.semi_axes[axis])
            total = local * local if total is None else total + local * local
        assert total is not None
        return total

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        radius = np.sqrt(self.normalised_radius_squared(x, y, z))
        return (radius - 1) * np.float32(min(self.semi_axes))


@dataclass(frozen=True)
class Union:
    """Points inside any of ``parts``."""

    parts: tuple[Shape, ...]

    def bounds(self) -> Bounds:
        boxes = [part.bounds() for part in self.parts]
        return (
            tuple(min(box[0][axis] for box in boxes) for axis in range(3)),  # type: ignore[return-value]
            tuple(max(box[1][axis] for box in boxes) for axis in range(3)),
        )

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        result = self.parts[0].distance(x, y, z)
        for part in self.parts[1:]:
            result = np.minimum(result, part.distance(x, y, z))
        return result


@dataclass(frozen=True)
class Difference:
    """Points inside ``shape`` and outside ``removed``."""

    shape: Shape
    removed: Shape

    def bounds(self) -> Bounds:
        return self.shape.bounds()

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return np.maximum(self.shape.distance(x, y, z), -self.removed.distance(x, y, z))


@dataclass(frozen=True)
class HalfSpace:
    """Points with ``normal . p < offset`` intersected with ``shape`` (``normal`` a unit vector)."""

    shape: Shape
    normal: tuple[float, float, float]
    offset: float

    def bounds(self) -> Bounds:
        return self.shape.bounds()

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        plane = x * np.float32(self.normal[0]) + y * np.float32(self.normal[1]) + z * np.float32(self.normal[2])
        return np.maximum(self.shape.distance(x, y, z), plane - np.float32(self.offset))


@dataclass(frozen=True, eq=False)
class LatticeField:
    """A smooth random scalar field on a regular lattice in the anatomy frame, trilinearly interpolated.

    Attributes:
        origin: (x, y, z) in mm of lattice point (0, 0, 0).
        spacing_mm: lattice spacing along x, y, z.
        values: lattice values in array order ``(z, y, x)``.
    """

    origin: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    values: np.ndarray = field(repr=False)

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        bounds: Bounds,
        correlation_mm: tuple[float, float, float],
        spacing_mm: float = 1.5,
        margin_mm: tuple[float, float, float] | None = None,
    ) -> LatticeField:
        """Gaussian-smoothed white noise over ``bounds`` with zero mean and unit standard deviation.

        Args:
            rng: the random source.
            bounds: the box to cover (a margin of one correlation length is added).
            correlation_mm: Gaussian smoothing sigma along x, y, z.
            spacing_mm: lattice spacing (the same along every axis).
            margin_mm: margin added to ``bounds`` (default: ``correlation_mm``).
        """
        margin = np.asarray(correlation_mm if margin_mm is None else margin_mm)
        low = np.asarray(bounds[0]) - margin
        high = np.asarray(bounds[1]) + margin
        size_xyz = np.maximum(np.ceil((high - low) / spacing_mm).astype(int) + 1, 2)
        noise = rng.standard_normal(tuple(size_xyz[::-1]), dtype=np.float32)
        sigma_zyx = np.asarray(correlation_mm)[::-1] / spacing_mm
        smooth = ndimage.gaussian_filter(noise, sigma_zyx, mode="reflect")
        smooth = (smooth - smooth.mean()) / max(float(smooth.std()), 1e-12)
        smooth = np.clip(smooth, -FIELD_LIMIT, FIELD_LIMIT)
        return cls(
            origin=(float(low[0]), float(low[1]), float(low[2])),
            spacing_mm=(spacing_mm, spacing_mm, spacing_mm),
            values=smooth.astype(np.float32),
        )

    @classmethod
    def random_multiscale(
        cls,
        rng: np.random.Generator,
        bounds: Bounds,
        correlations_mm: tuple[tuple[float, float, float], ...],
        weights: tuple[float, ...],
        spacing_mm: float = 1.0,
    ) -> LatticeField:
        """A weighted sum of :meth:`random` fields with different correlation lengths, renormalised to unit
        standard deviation and clipped to +-:data:`FIELD_LIMIT` (coarse lobules with a fine irregular
        margin)."""
        largest = (
            max(c[0] for c in correlations_mm),
            max(c[1] for c in correlations_mm),
            max(c[2] for c in correlations_mm),
        )
        fields = [
            cls.random(rng, bounds, correlation, spacing_mm, margin_mm=largest) for correlation in correlations_mm
        ]
        total = np.zeros_like(fields[0].values)
        for weight, part in zip(weights, fields, strict=True):
            total += np.float32(weight) * part.values
        total = (total - total.mean()) / max(float(total.std()), 1e-12)
        return cls(
            origin=fields[0].origin,
            spacing_mm=fields[0].spacing_mm,
            values=np.clip(total, -FIELD_LIMIT, FIELD_LIMIT).astype(np.float32),
        )

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Field values at the (broadcast) points; the nearest lattice value outside the lattice."""
        x, y, z = np.broadcast_arrays(x, y, z)
        coordinates = np.stack(
            [
                (z - self.origin[2]) / self.spacing_mm[2],
                (y - self.origin[1]) / self.spacing_mm[1],
                (x - self.origin[0]) / self.spacing_mm[0],
            ]
        )
        return ndimage.map_coordinates(self.values, coordinates, order=1, mode="nearest").astype(np.float32)


@dataclass(frozen=True, eq=False)
class IrregularBlob:
    """A lobulated, infiltrative solid: an ellipsoidal growth envelope perturbed by a smooth random field.

    The level ``r^2 - 1 + roughness * n(p) * r^2`` (``r`` the envelope's normalised radius, ``n`` a
    unit-variance smooth field) is negative inside. The centre (``r = 0``) is always inside, and the margin
    becomes more irregular with ``roughness``; lobules can reach past the envelope where ``n < 0``.

    Attributes:
        envelope: the growth envelope.
        field: the smooth random field ``n``.
        roughness: the weight of the field.
    """

    envelope: Ellipsoid
    field: LatticeField
    roughness: float

    def bounds(self) -> Bounds:
        # With n >= -FIELD_LIMIT the level is negative only where r^2 < 1 / (1 - FIELD_LIMIT * roughness).
        grow = 1.0 / np.sqrt(max(1.0 - FIELD_LIMIT * self.roughness, 0.1))
        (x0, y0, z0), (x1, y1, z1) = self.envelope.bounds()
        center = self.envelope.center
        return (
            (
                center[0] + (x0 - center[0]) * grow,
                center[1] + (y0 - center[1]) * grow,
                center[2] + (z0 - center[2]) * grow,
            ),
            (
                center[0] + (x1 - center[0]) * grow,
                center[1] + (y1 - center[1]) * grow,
                center[2] + (z1 - center[2]) * grow,
            ),
        )

    def distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        radius_squared = self.envelope.normalised_radius_squared(x, y, z)
        # Where r^2 (1 - roughness * FIELD_LIMIT) > 1.2 the level is positive whatever the field: use that
        # lower bound there and sample the field only where the surface can be.
        lower_bound = radius_squared * np.float32(1.0 - self.roughness * FIELD_LIMIT) - 1
        level = lower_bound
        possible = lower_bound < 0.2
        if possible.any():
            x, y, z = (np.broadcast_to(axis, radius_squared.shape)[possible] for axis in (x, y, z))
            near = radius_squared[possible]
            level[possible] = near - 1 + np.float32(self.roughness) * self.field(x, y, z) * near
        # Near the surface r ~ 1, so the level is about 2 dr / r_min: scale to mm.
        return level * np.float32(min(self.envelope.semi_axes) / 2.0)

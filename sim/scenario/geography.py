"""Town positions on the grid and the distances between towns."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.scenario.schema import Scenario

KM_PER_DEG_LAT = 111.32


@dataclass(frozen=True)
class Geography:
    """Grid size, each town's cell, and town-to-town distances in km."""

    width: int
    height: int
    cells: list[tuple[int, int]]
    distance_km: np.ndarray
    cell_km: float
    has_coordinates: bool


class GeographyError(ValueError):
    """Towns that do not fit the grid; ``loc`` is the key path."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


def build_geography(scenario: Scenario) -> Geography:
    """Place towns on grid cells (from lat/lon, or their x/y) and measure distances."""
    towns = scenario.towns
    cell_km = scenario.grid.cell_km
    geo = towns[0].lat is not None
    if geo:
        lat0 = min(t.lat for t in towns)  # type: ignore[type-var]
        lon0 = min(t.lon for t in towns)  # type: ignore[type-var]
        mean_lat = sum(t.lat for t in towns) / len(towns)  # type: ignore[misc]
        km_lon = KM_PER_DEG_LAT * math.cos(math.radians(mean_lat))
        xy_km = np.array([((t.lon - lon0) * km_lon, (t.lat - lat0) * KM_PER_DEG_LAT) for t in towns])  # type: ignore[operator]
        cells = [(round(x / cell_km) + 1, round(y / cell_km) + 1) for x, y in xy_km]
        width = scenario.grid.width or max(c[0] for c in cells) + 2
        height = scenario.grid.height or max(c[1] for c in cells) + 2
    else:
        cells = [(int(t.x), int(t.y)) for t in towns]  # type: ignore[arg-type]
        width = scenario.grid.width or max(c[0] for c in cells) + 1
        height = scenario.grid.height or max(c[1] for c in cells) + 1
        xy_km = np.array(cells, dtype=float) * cell_km
    seen: dict[tuple[int, int], int] = {}
    for i, c in enumerate(cells):
        if not (0 <= c[0] < width and 0 <= c[1] < height):
            raise GeographyError(("towns", i), f"{towns[i].name!r} at cell {c} is outside the {width}x{height} grid")
        if c in seen:
            j = seen[c]
            raise GeographyError(
                ("towns", i),
                f"{towns[i].name!r} and {towns[j].name!r} fall on the same cell {c}; "
                "use a smaller grid.cell_km or move one of them",
            )
        seen[c] = i
    diff = xy_km[:, None, :] - xy_km[None, :, :]
    dist = np.sqrt((diff**2).sum(axis=2))
    return Geography(width, height, cells, dist, cell_km, geo)

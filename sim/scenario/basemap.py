"""The bundled outline of the Idlib area drawn under the towns: border, governorate, main roads.

The shapes live in ``sim/scenario/data/idlib_geography.geojson`` (shipped in the package and
read with :mod:`importlib.resources`): a few dozen hand-digitised vertices each, with their
source in the file. They orient the reader on the maps; the model never uses them.

:func:`load_basemap` reads and checks the file once; :func:`basemap_for` returns it only for
scenarios whose towns lie inside its extent (a synthetic grid gets no outline).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from sim.scenario.schema import Scenario

DATA_PACKAGE = "sim.scenario"
GEOGRAPHY_FILE = "data/idlib_geography.geojson"
#: Plausible bounds of the file's coordinates (longitude, latitude): north-west Syria.
LON_RANGE = (35.0, 38.5)
LAT_RANGE = (34.5, 37.0)
KINDS = ("border", "governorate", "road", "place", "country_label")


class BasemapError(ValueError):
    """A geography file that is not a valid outline; the message names the file and the key."""


@dataclass(frozen=True)
class Basemap:
    """Outline shapes as ``(n, 2)`` arrays of longitude, latitude (degrees).

    Attributes:
        border: the international border (a line).
        governorate: the governorate outline (a closed ring, first vertex repeated last).
        roads: main roads by name (``M5``, ``M4``).
        places: reference places outside the towns (name -> longitude, latitude).
        labels: country labels (name -> longitude, latitude).
        source: where the shapes come from, as written in the file.
    """

    border: np.ndarray
    governorate: np.ndarray
    roads: dict[str, np.ndarray]
    places: dict[str, tuple[float, float]] = field(default_factory=dict)
    labels: dict[str, tuple[float, float]] = field(default_factory=dict)
    source: str = ""

    def contains(self, lon: float, lat: float, margin_deg: float = 0.15) -> bool:
        """Whether a point lies within the outline's bounding box, widened by ``margin_deg``."""
        lo = self.governorate.min(axis=0) - margin_deg
        hi = self.governorate.max(axis=0) + margin_deg
        return bool(lo[0] <= lon <= hi[0] and lo[1] <= lat <= hi[1])


def _coords(value: object, where: str, *, min_len: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < min_len:
        raise BasemapError(f"{where}: expected at least {min_len} [longitude, latitude] pairs")
    lon, lat = arr[:, 0], arr[:, 1]
    if not (
        np.all((lon >= LON_RANGE[0]) & (lon <= LON_RANGE[1])) and np.all((lat >= LAT_RANGE[0]) & (lat <= LAT_RANGE[1]))
    ):
        raise BasemapError(f"{where}: coordinates outside {LON_RANGE} E, {LAT_RANGE} N (is the order [lon, lat]?)")
    return arr


def parse_basemap(data: dict, name: str = GEOGRAPHY_FILE) -> Basemap:
    """Check a GeoJSON FeatureCollection and turn it into a :class:`Basemap`.

    Raises:
        BasemapError: naming the file and the key of the first problem.
    """
    if data.get("type") != "FeatureCollection" or not isinstance(data.get("features"), list):
        raise BasemapError(f"{name}: type: must be a GeoJSON FeatureCollection with features")
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        raise BasemapError(f"{name}: source: say where the shapes come from")
    border = governorate = None
    roads: dict[str, np.ndarray] = {}
    places: dict[str, tuple[float, float]] = {}
    labels: dict[str, tuple[float, float]] = {}
    for i, feat in enumerate(data["features"]):
        where = f"{name}: features[{i}]"
        props = feat.get("properties") or {}
        kind, title = props.get("kind"), props.get("name")
        if kind not in KINDS:
            raise BasemapError(f"{where}.properties.kind: {kind!r} is not one of {', '.join(KINDS)}")
        if not title:
            raise BasemapError(f"{where}.properties.name: missing")
        geom = feat.get("geometry") or {}
        gtype, coords = geom.get("type"), geom.get("coordinates")
        expected = {"border": "LineString", "road": "LineString", "governorate": "Polygon"}.get(kind, "Point")
        if gtype != expected:
            raise BasemapError(f"{where}.geometry.type: a {kind} must be a {expected}, not {gtype!r}")
        if kind == "governorate":
            ring = _coords((coords or [None])[0], f"{where}.geometry.coordinates[0]", min_len=4)
            if not np.allclose(ring[0], ring[-1]):
                raise BasemapError(f"{where}.geometry.coordinates[0]: the ring must end where it starts")
            governorate = ring
        elif kind in ("border", "road"):
            line = _coords(coords, f"{where}.geometry.coordinates", min_len=2)
            if kind == "border":
                border = line
            else:
                roads[title] = line
        else:
            lon, lat = _coords([coords], f"{where}.geometry.coordinates", min_len=1)[0]
            (places if kind == "place" else labels)[title] = (float(lon), float(lat))
    if border is None:
        raise BasemapError(f"{name}: features: no border")
    if governorate is None:
        raise BasemapError(f"{name}: features: no governorate")
    return Basemap(border, governorate, roads, places, labels, source.strip())


def load_basemap_file(path: str | Path) -> Basemap:
    """Read and check a geography file from a path (for other outlines and for tests)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BasemapError(f"{path}: {exc}") from exc
    return parse_basemap(data, str(path))


@functools.cache
def load_basemap() -> Basemap:
    """The bundled Idlib outline (read from the installed package once)."""
    text = resources.files(DATA_PACKAGE).joinpath(GEOGRAPHY_FILE).read_text(encoding="utf-8")
    return parse_basemap(json.loads(text))


def basemap_covering(lon: np.ndarray, lat: np.ndarray) -> Basemap | None:
    """The bundled outline when every point (town) lies within it, else None."""
    base = load_basemap()
    if len(lon) and all(base.contains(float(a), float(b)) for a, b in zip(lon, lat, strict=True)):
        return base
    return None


def basemap_for(scenario: Scenario) -> Basemap | None:
    """The outline when every town of the scenario lies within it, else None (grids, other places)."""
    towns = scenario.towns
    if not towns or towns[0].lat is None:
        return None
    return basemap_covering(np.array([t.lon for t in towns], float), np.array([t.lat for t in towns], float))

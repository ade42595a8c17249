"""Vega-Lite views of the app: the town map and the four charts, updated in place each day.

The app draws in the browser: each view's Vega-Lite specification is sent once per
model (and colouring), and every day only its named datasets change (``towns``,
``front``, ``strikes``, ``header`` for the map; ``series`` and ``now`` for the charts).
The page's Vega view applies those as changesets, so a day costs a few kilobytes of
JSON and a redraw of marks, not a new picture. The specifications are written for the
Vega-Lite 5 that solara serves offline (``solara-assets``), not through Altair (which
targets a newer Vega-Lite).

The encoding follows the figures of :mod:`sim.viz.maps`: the same colour map per quantity
(:func:`sim.viz.style.colour_map`), the same strike colour
(:data:`sim.viz.style.STRIKE_COLOUR`), the bundled outline under the towns
(:mod:`sim.scenario.basemap`), the regime-held and contested areas from the front status
(:func:`sim.viz.maps.front_areas`), marker shapes by who holds a town
(:data:`sim.viz.maps.CONTROLLER_MARKERS`; the X is "taken by the regime" only, strikes are
a burst, :data:`BURST_PATH`, with its own legend) and labels placed by adjustText.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.colors import Colormap, to_hex

from sim.model.actors import FRONT_STATUS
from sim.scenario.basemap import Basemap
from sim.viz.maps import CONTROLLER_LABELS, GEO_COLOURS, LABEL_ITERATIONS, front_areas, road_label_point
from sim.viz.style import PALETTE, STRIKE_COLOUR

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
#: Width of the map drawing in pixels before the page scales it to its column.
MAP_WIDTH = 1000
#: Marker area (px²) of the town with the most persons at the start.
MAX_MARKER_AREA = 1800.0
MIN_MARKER_AREA = 40.0
LABEL_FONT_PX = 12
#: Text about strikes (labels of towns struck today, the strikes axis): the strike colour, darker.
STRIKE_TEXT_COLOUR = "#8f3f73"
#: Vega symbol paths in the unit square for the controller kinds (an X for the regime).
X_PATH = "M-0.75,-1L0,-0.25L0.75,-1L1,-0.75L0.25,0L1,0.75L0.75,1L0,0.25L-0.75,1L-1,0.75L-0.25,0L-1,-0.75Z"
SHAPES = {"hts": "circle", "rival": "square", "local": "triangle-up", "contested": "diamond", "regime": X_PATH}
#: The strike glyph: an eight-pointed burst in the strike colour, never a controller's shape
#: (the X means "taken by the regime" and nothing else).
BURST_PATH = (
    "M0,-1L-0.16,-0.39L-0.71,-0.71L-0.39,-0.16L-1,0L-0.39,0.16L-0.71,0.71L-0.16,0.39"
    "L0,1L0.16,0.39L0.71,0.71L0.39,0.16L1,0L0.39,-0.16L0.71,-0.71L0.16,-0.39Z"
)
STRIKE_TRAIL_DAYS = 7
#: Legend entry of the strike glyph.
STRIKE_LABEL = f"struck today (fading over {STRIKE_TRAIL_DAYS} days)"


def cmap_scale(cmap: Colormap | str, stops: int = 9) -> dict[str, list]:
    """A Vega colour scale (domain 0..1, piecewise) sampled from a matplotlib colour map."""
    import matplotlib

    cm = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    xs = np.linspace(0.0, 1.0, stops)
    return {"domain": [round(float(v), 4) for v in xs], "range": [to_hex(cm(float(v))) for v in xs]}


# --------------------------------------------------------------------------- the map's frame


@dataclass(frozen=True)
class MapFrame:
    """Where the map's coordinates land on the page.

    Points are projected to ``u`` (degrees of longitude times the cosine of the mean
    latitude, so that a km is as long east-west as north-south) and ``v`` (latitude); grids
    use their cell coordinates. Vega's identity projection then scales them to pixels.
    """

    lon0: float
    lat0: float
    kx: float
    width: int
    height: int
    scale: float
    geo: bool

    def project(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates (u, v) of longitudes and latitudes (or grid x, y)."""
        return (np.asarray(lon, float) - self.lon0) * self.kx, np.asarray(lat, float) - self.lat0

    def projection(self) -> dict[str, Any]:
        """The Vega-Lite projection that puts (u, v) on the page (v grows upward)."""
        return {"type": "identity", "reflectY": True, "scale": self.scale, "translate": [0, self.height]}


def map_frame(x: np.ndarray, y: np.ndarray, geo: bool, *, width: int = MAP_WIDTH) -> MapFrame:
    """The frame around the towns (for the Idlib area: up to the border just north of them)."""
    if geo:
        kx = math.cos(math.radians(float(np.mean(y))))
        pad_x, pad_y = 0.06 * (np.ptp(x) + 1e-9), 0.05 * (np.ptp(y) + 1e-9)
        lo_x, hi_x = x.min() - pad_x, x.max() + pad_x
        lo_y, hi_y = y.min() - pad_y, y.max() + max(pad_y, 0.06)
    else:
        kx = 1.0
        lo_x, hi_x, lo_y, hi_y = x.min() - 0.7, x.max() + 0.7, y.min() - 0.7, y.max() + 0.7
    span_u, span_v = (hi_x - lo_x) * kx, hi_y - lo_y
    scale = width / span_u
    return MapFrame(float(lo_x), float(lo_y), kx, width, round(span_v * scale), float(scale), geo)


# --------------------------------------------------------------------------- labels


@functools.lru_cache(maxsize=8)
def label_positions(
    names: tuple[str, ...], u: tuple[float, ...], v: tuple[float, ...], width: int, height: int, scale: float
) -> tuple[tuple[float, float], ...]:
    """Label centres (u, v) that overprint neither each other nor the markers (adjustText, once per scenario).

    The labels are placed in an off-screen matplotlib figure of the map's size in pixels,
    with the font size the page uses.
    """
    import matplotlib.pyplot as plt
    from adjustText import adjust_text
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width / scale)
    ax.set_ylim(0, height / scale)
    fu, fv = np.array(u), np.array(v)
    offset = 14 / scale  # start each label just above its town
    texts = [
        ax.text(a, b + offset, n, fontsize=LABEL_FONT_PX * 72 / 100, ha="center", va="center")
        for n, a, b in zip(names, fu, fv, strict=True)
    ]
    adjust_text(
        texts,
        x=fu,
        y=fv,
        ax=ax,
        expand=(1.15, 1.5),
        force_static=(0.3, 0.5),
        ensure_inside_axes=True,
        iter_lim=LABEL_ITERATIONS,  # a fixed count, not adjustText's default second of wall time
        time_lim=None,
    )
    out = tuple((float(t.get_position()[0]), float(t.get_position()[1])) for t in texts)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------- map specification


def _feature(kind: str, geometry: dict[str, Any], name: str = "") -> dict[str, Any]:
    return {"type": "Feature", "properties": {"kind": kind, "name": name}, "geometry": geometry}


def _line(frame: MapFrame, lonlat: np.ndarray) -> list[list[float]]:
    u, v = frame.project(lonlat[:, 0], lonlat[:, 1])
    return [[round(float(a), 5), round(float(b), 5)] for a, b in zip(u, v, strict=True)]


def outline_features(frame: MapFrame, base: Basemap | None) -> dict[str, list[dict[str, Any]]]:
    """GeoJSON features (in map coordinates) of the governorate, the roads and the border."""
    if base is None:
        return {"governorate": [], "roads": [], "border": []}
    return {
        "governorate": [_feature("governorate", {"type": "Polygon", "coordinates": [_line(frame, base.governorate)]})],
        "roads": [
            _feature("road", {"type": "LineString", "coordinates": _line(frame, r)}, name)
            for name, r in base.roads.items()
        ],
        "border": [_feature("border", {"type": "LineString", "coordinates": _line(frame, base.border)})],
    }


def front_features(frame: MapFrame, lon: np.ndarray, lat: np.ndarray, front: tuple[str, ...]) -> list[dict[str, Any]]:
    """The regime-held and contested areas of one day as GeoJSON features in map coordinates."""
    return list(_front_features(frame, tuple(np.asarray(lon, float)), tuple(np.asarray(lat, float)), front))


@functools.lru_cache(maxsize=64)
def _front_features(
    frame: MapFrame, lon: tuple[float, ...], lat: tuple[float, ...], front: tuple[str, ...]
) -> tuple[dict[str, Any], ...]:
    areas = front_areas(np.array(lon), np.array(lat), np.array(front))
    out = []
    for kind, polys in areas.items():
        for rings in polys:
            coords = [_line(frame, ring) for ring in rings]
            out.append(_feature(kind, {"type": "Polygon", "coordinates": coords}))
    return tuple(out)


def map_spec(
    frame: MapFrame,
    base: Basemap | None,
    town_u: np.ndarray,
    town_v: np.ndarray,
    *,
    colour_title: str,
    colour_scale: dict[str, list],
) -> dict[str, Any]:
    """The map: outline, front areas, displaced rings, towns, strikes and labels (one view).

    The datasets ``towns``, ``front``, ``strikes`` and ``header`` start empty; the page fills
    them every day (:func:`map_data`).
    """
    outline = outline_features(frame, base)
    proj = frame.projection()
    kinds = list(SHAPES)
    tooltip = [
        {"field": "town", "title": "town"},
        {"field": "date", "title": "date"},
        {"field": "holder", "title": "held by"},
        {"field": "persons", "title": "persons present", "format": ",.0f"},
        {"field": "hosted", "title": "displaced hosted", "format": ",.0f"},
        {"field": "coop", "title": "share cooperating with HTS", "format": ".1%"},
        {"field": "resist", "title": "share resisting HTS", "format": ".1%"},
        {"field": "protest", "title": "share protesting", "format": ".2%"},
        {"field": "strikes_cum", "title": "strikes so far", "format": ",.0f"},
        {"field": "killed_cum", "title": "killed so far", "format": ",.0f"},
    ]
    layers: list[dict[str, Any]] = [
        {
            "name": "governorate",
            "data": {"values": outline["governorate"]},
            "mark": {
                "type": "geoshape",
                "fill": GEO_COLOURS["governorate_fill"],
                "stroke": GEO_COLOURS["governorate_edge"],
                "strokeDash": [6, 3],
                "strokeWidth": 1,
            },
        },
        *[
            {
                "name": f"front_{kind}",
                "data": {"name": "front"},
                "transform": [{"filter": f"datum.properties.kind === '{kind}'"}],
                "mark": {
                    "type": "geoshape",
                    "opacity": 0.5,
                    **({"stroke": GEO_COLOURS["front"], "strokeWidth": 1.6} if kind == "regime" else {}),
                },
                "encoding": {
                    "fill": {
                        "field": "properties.kind",
                        "type": "nominal",
                        "scale": {
                            "domain": ["regime", "contested"],
                            "range": [GEO_COLOURS["regime"], GEO_COLOURS["contested"]],
                        },
                        "legend": (
                            {"title": "front (from the front events)", "labelExpr": _expr_map(FRONT_LABELS)}
                            if kind == "regime"
                            else None
                        ),
                    },
                },
            }
            for kind in ("contested", "regime")
        ],
        {
            "name": "roads",
            "data": {"values": outline["roads"]},
            "mark": {"type": "geoshape", "filled": False, "stroke": GEO_COLOURS["road"], "strokeWidth": 3},
        },
        {
            "name": "border",
            "data": {"values": outline["border"]},
            "mark": {
                "type": "geoshape",
                "filled": False,
                "stroke": GEO_COLOURS["border"],
                "strokeWidth": 2,
                "strokeDash": [8, 3, 2, 3],
            },
        },
        {
            "name": "leaders",
            "data": {"name": "towns"},
            "transform": [{"filter": "datum.leader"}],
            "mark": {"type": "rule", "color": "#888888", "strokeWidth": 0.7},
            "encoding": {
                "longitude": {"field": "u", "type": "quantitative"},
                "latitude": {"field": "v", "type": "quantitative"},
                "longitude2": {"field": "lu"},
                "latitude2": {"field": "lv"},
            },
        },
        {
            "name": "hosted_rings",
            "data": {"name": "towns"},
            "transform": [{"filter": "datum.hosted >= 1"}],
            "mark": {"type": "point", "filled": True, "fill": "#dbe9f6", "stroke": PALETTE["blue"], "strokeWidth": 1.5},
            "encoding": {
                "longitude": {"field": "u", "type": "quantitative"},
                "latitude": {"field": "v", "type": "quantitative"},
                "size": {"field": "ring", "type": "quantitative", "scale": None},
                "tooltip": tooltip,
            },
        },
        {
            "name": "town_markers",
            "data": {"name": "towns"},
            "mark": {"type": "point", "filled": True, "opacity": 1},
            "encoding": {
                "longitude": {"field": "u", "type": "quantitative"},
                "latitude": {"field": "v", "type": "quantitative"},
                "size": {"field": "size", "type": "quantitative", "scale": None},
                "shape": {
                    "field": "kind",
                    "type": "nominal",
                    "scale": {"domain": kinds, "range": [SHAPES[k] for k in kinds]},
                    "legend": {"title": "who holds the town", "labelExpr": _expr_map(CONTROLLER_LABELS)},
                },
                "color": {
                    "condition": {"test": "datum.kind === 'regime'", "value": PALETTE["black"]},
                    "field": "value",
                    "type": "quantitative",
                    "scale": colour_scale,
                    "legend": {"title": colour_title, "format": ".0%", "gradientLength": 160},
                },
                "stroke": {
                    "condition": {"test": "datum.kind === 'rival'", "value": PALETTE["green"]},
                    "value": "#333333",
                },
                "strokeWidth": {"condition": {"test": "datum.resisting", "value": 2.5}, "value": 0.8},
                "tooltip": tooltip,
            },
        },
        {
            "name": "strike_marks",
            "data": {"name": "strikes"},
            "mark": {"type": "point", "filled": True, "stroke": "white", "strokeWidth": 0.8},
            "encoding": {
                "longitude": {"field": "u", "type": "quantitative"},
                "latitude": {"field": "v", "type": "quantitative"},
                "size": {"field": "size", "type": "quantitative", "scale": None},
                "shape": {
                    "datum": STRIKE_LABEL,
                    "type": "nominal",
                    "scale": {"domain": [STRIKE_LABEL], "range": [BURST_PATH]},
                    "legend": {
                        "title": "air strikes",
                        "symbolFillColor": STRIKE_COLOUR,
                        "symbolStrokeColor": STRIKE_TEXT_COLOUR,
                        "symbolStrokeWidth": 0.8,
                        "symbolSize": 260,
                    },
                },
                "color": {"value": STRIKE_COLOUR},
                "opacity": {"field": "alpha", "type": "quantitative", "scale": None},
                "tooltip": [{"field": "text", "title": "strike"}],
            },
        },
        *[
            {
                "name": f"town_labels_{style}",
                "data": {"name": "towns"},
                "transform": [{"filter": test}],
                "mark": {
                    "type": "text",
                    "fontSize": LABEL_FONT_PX,
                    "align": "center",
                    "baseline": "middle",
                    "fontStyle": "italic" if style == "aggregate" else "normal",
                    "fontWeight": "bold" if style == "struck" else "normal",
                    "color": {"aggregate": "#555555", "struck": STRIKE_TEXT_COLOUR}.get(style, "#111111"),
                },
                "encoding": {
                    "longitude": {"field": "lu", "type": "quantitative"},
                    "latitude": {"field": "lv", "type": "quantitative"},
                    "text": {"field": "label"},
                },
            }
            for style, test in (
                ("plain", "!datum.aggregate && !datum.struck_today"),
                ("aggregate", "datum.aggregate && !datum.struck_today"),
                ("struck", "datum.struck_today"),
            )
        ],
        {
            "name": "map_header",
            "data": {"name": "header"},
            "mark": {"type": "text", "align": "left", "baseline": "top", "fontSize": 17, "fontWeight": "bold"},
            "encoding": {"x": {"value": 10}, "y": {"value": 8}, "text": {"field": "title"}},
        },
    ]
    if base is not None:
        road_labels = [
            {"u": float(p[0]), "v": float(p[1]), "name": name}
            for name, p in _road_label_points(frame, base, town_u, town_v).items()
        ]
        layers.insert(
            4,
            {
                "name": "road_labels",
                "data": {"values": road_labels},
                "mark": {"type": "text", "fontSize": 11, "fontWeight": "bold", "color": "#7a6f58", "dy": -9},
                "encoding": {
                    "longitude": {"field": "u", "type": "quantitative"},
                    "latitude": {"field": "v", "type": "quantitative"},
                    "text": {"field": "name"},
                },
            },
        )
        for name, (lon, lat) in base.labels.items():
            u, v = frame.project(np.array([lon]), np.array([lat]))
            layers.insert(
                4,
                {
                    "name": "country_label",
                    "data": {"values": [{"u": float(u[0]), "v": float(v[0]), "name": name}]},
                    "mark": {"type": "text", "fontSize": 13, "fontStyle": "italic", "color": "#555555"},
                    "encoding": {
                        "longitude": {"field": "u", "type": "quantitative"},
                        "latitude": {"field": "v", "type": "quantitative"},
                        "text": {"field": "name"},
                    },
                },
            )
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "autosize": {"type": "pad", "resize": True},
        "width": frame.width,
        "height": frame.height,
        "projection": proj,
        "datasets": {"towns": [], "front": [], "strikes": [], "header": []},
        "layer": layers,
        "resolve": {"scale": {"color": "independent", "shape": "independent"}},
        "config": {
            "view": {"stroke": "#bbbbbb"},
            "legend": {
                "orient": "right",
                "labelFontSize": 12,
                "titleFontSize": 12,
                "labelLimit": 280,
                "titleLimit": 280,
            },
        },
    }


FRONT_LABELS = {"regime": "regime-held area (edge: the front)", "contested": "contested area"}


def _expr_map(labels: dict[str, str]) -> str:
    """A Vega expression mapping a legend's domain value to a readable label."""
    items = ", ".join(f"'{k}': '{v}'" for k, v in labels.items())
    return f"{{{items}}}[datum.label] || datum.label"


def _road_label_points(frame: MapFrame, base: Basemap, town_u: np.ndarray, town_v: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for name, road in base.roads.items():
        u, v = frame.project(road[:, 0], road[:, 1])
        out[name] = road_label_point(np.column_stack([u, v]), town_u, town_v)
    return out


# --------------------------------------------------------------------------- chart specification

#: The four panels: title, axis title, [(series key, legend label, colour)], strikes bars under it.
CHART_PANELS: list[tuple[str, str, list[tuple[str, str, str]], bool]] = [
    (
        "Cooperation with HTS",
        "share of persons present",
        [
            ("coop_share_resisting", "resisting towns", PALETTE["red"]),
            ("coop_share_other", "elsewhere", PALETTE["blue"]),
        ],
        False,
    ),
    (
        "Protest participation",
        "share of persons present",
        [
            ("protest_share_resisting", "resisting towns", PALETTE["red"]),
            ("protest_share", "all towns", PALETTE["green"]),
        ],
        False,
    ),
    (
        "Displaced",
        "persons",
        [
            ("displaced_persons", "away from home now", PALETTE["blue"]),
            ("displacement_moves_cum", "displacements so far", PALETTE["sky"]),
        ],
        False,
    ),
    ("Casualties", "persons killed (cumulative)", [("killed_cum", "killed", PALETTE["red"])], True),
]
CHART_SERIES = sorted({k for _, _, lines, _ in CHART_PANELS for k, _, _ in lines} | {"strikes"})


def chart_spec(
    *, calendar: bool, first: str | int, last: str | int, width: int = 390, height: int = 180
) -> dict[str, Any]:
    """Four panels over time (dates for a calendar scenario, else days), x fixed to the scenario's length."""
    if calendar:
        x = {
            "field": "date",
            "type": "temporal",
            "scale": {"type": "utc", "domain": [first, last]},
            "axis": {"title": "date", "format": "%-d %b %Y", "tickCount": 4, "labelAngle": 0, "labelFlush": True},
        }
    else:
        x = {
            "field": "day",
            "type": "quantitative",
            "scale": {"domain": [first, last]},
            "axis": {"title": "day", "tickCount": 6},
        }
    x_now = {**x, "field": x["field"]}
    panels = []
    for title, unit, lines, strikes in CHART_PANELS:
        share = unit.startswith("share")
        layer: list[dict[str, Any]] = []
        if strikes:
            layer.append(
                {
                    "data": {"name": "series"},
                    "mark": {"type": "bar", "color": STRIKE_COLOUR, "opacity": 0.45},
                    "encoding": {
                        "x": x,
                        "y": {
                            "field": "strikes",
                            "type": "quantitative",
                            "axis": {"title": "strikes per day", "orient": "right", "titleColor": STRIKE_TEXT_COLOUR},
                        },
                    },
                }
            )
        layer.append(
            {
                "data": {"name": "series"},
                "transform": [
                    {"fold": [k for k, _, _ in lines], "as": ["key", "value"]},
                    {
                        "calculate": _expr_map({k: label for k, label, _ in lines}).replace("datum.label", "datum.key"),
                        "as": "series",
                    },
                ],
                "mark": {"type": "line", "strokeWidth": 2},
                "encoding": {
                    "x": x,
                    "y": {
                        "field": "value",
                        "type": "quantitative",
                        "axis": {"title": unit, "format": ".0%" if share else "~s"},
                        "scale": {"zero": True},
                    },
                    "color": {
                        "field": "series",
                        "type": "nominal",
                        "scale": {"domain": [label for _, label, _ in lines], "range": [c for _, _, c in lines]},
                        "legend": {"orient": "top-left", "title": None, "fillColor": "rgba(255,255,255,0.7)"},
                    },
                },
            }
        )
        layer.append(
            {
                "data": {"name": "now"},
                "mark": {"type": "rule", "color": "#999999", "strokeDash": [3, 3]},
                "encoding": {"x": x_now},
            }
        )
        panel: dict[str, Any] = {"title": title, "width": width, "height": height, "layer": layer}
        if strikes:
            panel["resolve"] = {"scale": {"y": "independent"}}
        panels.append(panel)
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "autosize": {"type": "pad", "resize": True},  # re-measure axes as the data grow
        "datasets": {"series": [], "now": []},
        "vconcat": [
            {"hconcat": panels[:2], "resolve": {"scale": {"color": "independent"}}},
            {"hconcat": panels[2:], "resolve": {"scale": {"color": "independent"}}},
        ],
        "resolve": {"scale": {"color": "independent"}, "legend": {"color": "independent"}},
        "config": {"axis": {"labelFontSize": 11, "titleFontSize": 11}, "title": {"fontSize": 14}},
    }


# --------------------------------------------------------------------------- the data of one day


def town_controllers(model: Any) -> np.ndarray | None:
    """Who holds each town now ('hts', a rival group's name, 'contested', 'regime'), if the model says."""
    names = getattr(model, "controller_names", None)
    codes = getattr(model.town_state, "controller", None)
    if names is None or codes is None:
        return None
    return np.asarray(list(names), dtype=object)[np.asarray(codes, dtype=int)]


def holder_text(kind: str, controller: str | None) -> str:
    """Tooltip text for who holds a town."""
    if kind == "rival" and controller:
        return str(controller)
    return {"hts": "HTS", "contested": "contested", "regime": "the regime"}.get(kind, kind)


@dataclass
class MapLayout:
    """What stays fixed for one model: frame, town map coordinates and label positions."""

    frame: MapFrame
    u: np.ndarray
    v: np.ndarray
    lu: np.ndarray
    lv: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    size_scale: float


def map_layout(model: Any, x: np.ndarray, y: np.ndarray, geo: bool, *, width: int = MAP_WIDTH) -> MapLayout:
    """Frame, projected towns and label positions (cached across models of the same scenario)."""
    frame = map_frame(x, y, geo, width=width)
    u, v = frame.project(x, y)
    names = tuple(model.town_state.names)
    labels = label_positions(
        names,
        tuple(np.round(u, 6)),
        tuple(np.round(v, 6)),
        frame.width,
        frame.height,
        round(frame.scale, 6),
    )
    lu, lv = np.array([p[0] for p in labels]), np.array([p[1] for p in labels])
    scale = MAX_MARKER_AREA / max(float((model.town_state.persons0 * model.weight).max()), 1.0)
    return MapLayout(frame, u, v, lu, lv, np.asarray(x, float), np.asarray(y, float), scale)


def map_data(model: Any, layout: MapLayout, value_key: str, header: str) -> dict[str, list[dict[str, Any]]]:
    """The map's datasets on the model's current day."""
    from sim.viz.maps import controller_kinds

    ts = model.town_state
    w = model.weight
    present = ts.present * w
    hosted = ts.hosted * w
    front = np.asarray(FRONT_STATUS, dtype=object)[np.asarray(ts.front, dtype=int)]
    controllers = town_controllers(model)
    kinds = controller_kinds(front, controllers)
    size = np.maximum(MIN_MARKER_AREA, present * layout.size_scale)
    ring = (np.sqrt(size) + 4 + 40 * np.sqrt(np.minimum(hosted * layout.size_scale / MAX_MARKER_AREA, 1.5))) ** 2
    col = model.collector
    done = col.days_done
    town_cols = col.town
    strikes_cum = town_cols["strikes"][:done].sum(axis=0) if done else np.zeros(ts.n)
    killed_cum = town_cols["killed_cum"][done - 1] if done else np.zeros(ts.n)
    today = town_cols["strikes"][done - 1] if done else np.zeros(ts.n)
    date = model.scenario.date_of(done - 1) if done else model.scenario.date_of(0)
    date_text = f"{date:%Y-%m-%d}" if date is not None else f"day {done}"
    value = getattr(ts, value_key)
    resisting = np.asarray(model.resisting, dtype=bool)
    towns = []
    for i, name in enumerate(ts.names):
        moved = math.hypot(layout.lu[i] - layout.u[i], layout.lv[i] - layout.v[i]) * layout.frame.scale
        towns.append(
            {
                "town": name,
                "date": date_text,
                "u": round(float(layout.u[i]), 5),
                "v": round(float(layout.v[i]), 5),
                "lu": round(float(layout.lu[i]), 5),
                "lv": round(float(layout.lv[i]), 5),
                "leader": bool(moved > 22),
                "label": name if today[i] <= 1 else f"{name} ({int(today[i])} strikes)",
                "aggregate": any(k in name for k in ("villages", "camps")),
                "struck_today": bool(today[i] > 0),
                "kind": str(kinds[i]),
                "holder": holder_text(str(kinds[i]), None if controllers is None else str(controllers[i])),
                "resisting": bool(resisting[i]),
                "persons": round(float(present[i])),
                "hosted": round(float(hosted[i])),
                "coop": round(float(ts.coop_share[i]), 4),
                "resist": round(float(ts.resist_share[i]), 4),
                "protest": round(float(ts.protest_share[i]), 5),
                "value": round(float(value[i]), 4),
                "size": round(float(size[i]), 1),
                "ring": round(float(ring[i]), 1),
                "hosted_any": bool(hosted[i] >= 1),
                "strikes_cum": int(strikes_cum[i]),
                "killed_cum": round(float(killed_cum[i])),
            }
        )
    strikes = []
    recent = town_cols["strikes"][max(0, done - STRIKE_TRAIL_DAYS) : done]
    for age, row in enumerate(recent[::-1]):  # age 0: the last simulated day
        for i in np.flatnonzero(row > 0):
            strikes.append(
                {
                    "u": round(float(layout.u[i]), 5),
                    "v": round(float(layout.v[i]), 5),
                    "size": 420 if age == 0 else 260,
                    "alpha": 1.0 if age == 0 else round(0.45 * (1 - age / STRIKE_TRAIL_DAYS), 3),
                    "text": f"{ts.names[i]}: {int(row[i])} strike(s) {age} day(s) ago"
                    if age
                    else f"{ts.names[i]}: {int(row[i])} strike(s) today",
                }
            )
    front_feats = (
        front_features(layout.frame, layout.lon, layout.lat, tuple(str(f) for f in front)) if layout.frame.geo else []
    )
    return {"towns": towns, "front": front_feats, "strikes": strikes, "header": [{"title": header}]}


def chart_data(model: Any) -> dict[str, list[dict[str, Any]]]:
    """The charts' datasets: one row per simulated day (collector row d is the end of day d + 1)."""
    col = model.collector
    done = col.days_done
    gov = col.gov
    sc = model.scenario
    rows = []
    cols = {k: np.round(gov[k][:done].astype(float), 6).tolist() for k in CHART_SERIES}
    for d in range(done):
        row: dict[str, Any] = {"day": d + 1}
        if sc.start_date is not None:
            row["date"] = f"{sc.date_of(d):%Y-%m-%d}"
        for k in CHART_SERIES:
            row[k] = cols[k][d]
        rows.append(row)
    now = []
    if done:
        now = [{"day": done, "date": f"{sc.date_of(done - 1):%Y-%m-%d}" if sc.start_date is not None else None}]
    return {"series": rows, "now": now}

"""Town maps: towns at their coordinates, coloured by a town variable (cooperation by default).

:func:`plot_map` is the one town map: one run, one date, one axis. Each town is a marker
at its longitude and latitude (or grid cell), its area proportional to the persons
present, its colour the variable on that day in the variable's one colour map
(:func:`sim.viz.style.colour_map`: cooperation with HTS blue - grey - vermillion,
readable with colour-blind vision). The marker's shape says who holds the town
(:data:`CONTROLLER_MARKERS`: HTS a disc, a rival group a square, a local town a triangle,
contested a diamond, the regime a cross); without a controller column the front status alone marks contested
and regime-held towns. Strikes in the window are purple rings, and the largest
displacement flows are orange arrows whose width grows with persons.

Under the towns, for scenarios in the Idlib area, lie the bundled outline
(:mod:`sim.scenario.basemap`: Turkish border, governorate, M5 and M4) and the areas the
regime holds or contests on that day (:func:`front_areas`, from the front events).
Labels are placed by adjustText so that they do not overprint each other.
:func:`plot_run_map` puts two cooperation maps (the first day and a chosen day) side by
side with one legend; it is the ``map.png`` of a run folder. :func:`town_positions` is
where every map, static or in the app, puts the towns.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Patch, PathPatch
from matplotlib.path import Path as MplPath

from sim.scenario.basemap import Basemap, basemap_covering
from sim.scenario.geography import KM_PER_DEG_LAT
from sim.scenario.schema import Scenario
from sim.viz.style import FLOW_COLOUR, PALETTE, SHARE_VARS, STRIKE_COLOUR, colour_map, finish, label_of, style

if TYPE_CHECKING:
    from sim.analysis.results import RunFolder
    from sim.run.simulate import SimulationResult


def town_positions(scenario: Scenario) -> tuple[np.ndarray, np.ndarray, bool]:
    """x and y of every town (longitude and latitude when the scenario has coordinates)."""
    towns = scenario.towns
    if towns[0].lat is not None:
        x = np.array([t.lon for t in towns], dtype=float)
        y = np.array([t.lat for t in towns], dtype=float)
        return x, y, True
    x = np.array([t.x for t in towns], dtype=float)
    y = np.array([t.y for t in towns], dtype=float)
    return x, y, False


def flows_until(events: pd.DataFrame, day: int, *, first_day: int = 0) -> pd.DataFrame:
    """Displacement flows (town -> to_town, persons) from ``first_day`` to ``day``, largest first."""
    ev = events[(events["event"] == "displacement") & (events["day"] >= first_day) & (events["day"] <= day)]
    if ev.empty:
        return pd.DataFrame(columns=["town", "to_town", "persons"])
    flows = ev.assign(town=ev["town"].astype(str), to_town=ev["to_town"].astype(str))
    flows = flows.groupby(["town", "to_town"], as_index=False)["persons"].sum()
    return flows.sort_values("persons", ascending=False, ignore_index=True)


# --------------------------------------------------------------------------- geography under the towns

#: Marker shape per controller kind (matplotlib marker codes; the app maps them to Vega shapes).
CONTROLLER_MARKERS = {"hts": "o", "rival": "s", "local": "^", "contested": "D", "regime": "X"}
CONTROLLER_LABELS = {
    "hts": "held by HTS",
    "rival": "held by a rival group",
    "local": "armed groups sent away (local)",
    "contested": "contested",
    "regime": "taken by the regime",
}
#: Colours of the outline and of the front areas.
GEO_COLOURS = {
    "governorate_fill": "#f7f5ef",
    "governorate_edge": "#8c8c8c",
    "border": "#3b3b3b",
    "road": "#b0a590",
    "regime": "#8a8a8a",
    "contested": "#c8c8c8",
    "front": "#4d4d4d",
}
#: A town's area reaches at most this far (km) when shading what the regime holds or contests.
FRONT_RADIUS_KM = 9.0
#: Raster step (km) of the nearest-town grid the front areas are traced on.
FRONT_STEP_KM = 0.75


def controller_kinds(front: np.ndarray, controller: np.ndarray | None = None) -> np.ndarray:
    """Per town: 'hts', 'rival', 'local', 'contested' or 'regime'.

    Args:
        front: front status per town ('opposition', 'contested', 'regime').
        controller: who holds each town ('hts', a rival group's name, 'local', 'contested',
            'regime'), when the run records it; otherwise the front status alone decides
            and every opposition town counts as held by HTS.
    """
    front = np.asarray(front).astype(str)
    if controller is None:
        return np.where(front == "regime", "regime", np.where(front == "contested", "contested", "hts"))
    ctl = np.asarray(controller).astype(str)
    kind = np.where(np.isin(ctl, ["hts", "local", "contested", "regime"]), ctl, "rival")
    return np.where(front == "regime", "regime", kind)  # the front event overrides a stale holder


@functools.lru_cache(maxsize=16)
def _nearest_town_grid(
    points: tuple[tuple[float, float], ...], radius_km: float, step_km: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Longitude and latitude axes of a raster around the towns and each cell's nearest town (-1: none)."""
    xy = np.array(points, dtype=float)
    lat0 = float(xy[:, 1].mean())
    km_lon = KM_PER_DEG_LAT * math.cos(math.radians(lat0))
    pad_lon, pad_lat = 1.5 * radius_km / km_lon, 1.5 * radius_km / KM_PER_DEG_LAT
    lon = np.arange(xy[:, 0].min() - pad_lon, xy[:, 0].max() + pad_lon, step_km / km_lon)
    lat = np.arange(xy[:, 1].min() - pad_lat, xy[:, 1].max() + pad_lat, step_km / KM_PER_DEG_LAT)
    gx, gy = np.meshgrid(lon, lat)
    dx = (gx[..., None] - xy[:, 0]) * km_lon
    dy = (gy[..., None] - xy[:, 1]) * KM_PER_DEG_LAT
    dist = np.hypot(dx, dy)
    nearest = dist.argmin(axis=2)
    nearest[dist.min(axis=2) > radius_km] = -1
    return lon, lat, nearest


def front_areas(
    lon: np.ndarray,
    lat: np.ndarray,
    front: np.ndarray,
    *,
    radius_km: float = FRONT_RADIUS_KM,
    step_km: float = FRONT_STEP_KM,
) -> dict[str, list[list[np.ndarray]]]:
    """The areas the regime holds and contests, from the towns' front status on one day.

    An approximation, not a surveyed front line: each point within ``radius_km`` of a town
    belongs to its nearest town, and takes that town's front status. The edge of the
    regime-held area is the front.

    Returns:
        ``{'regime': polygons, 'contested': polygons}``; a polygon is a list of rings
        (outer ring first, then holes), each an ``(n, 2)`` array of longitude, latitude.
    """
    from contourpy import FillType, contour_generator

    front = np.asarray(front).astype(str)
    out: dict[str, list[list[np.ndarray]]] = {"regime": [], "contested": []}
    if not np.isin(front, list(out)).any():
        return out
    points = tuple(zip(np.asarray(lon, float).tolist(), np.asarray(lat, float).tolist(), strict=True))
    glon, glat, nearest = _nearest_town_grid(points, float(radius_km), float(step_km))
    status = np.where(nearest >= 0, front[np.maximum(nearest, 0)], "")
    for kind in out:
        mask = np.pad((status == kind).astype(float), 1)  # padded so that areas close at the edge
        if not mask.any():
            continue
        dlon, dlat = glon[1] - glon[0], glat[1] - glat[0]
        px = np.concatenate([[glon[0] - dlon], glon, [glon[-1] + dlon]])
        py = np.concatenate([[glat[0] - dlat], glat, [glat[-1] + dlat]])
        gen = contour_generator(px, py, mask, fill_type=FillType.OuterOffset)
        polys, offsets = gen.filled(0.5, 1.5)
        for pts, off in zip(polys, offsets, strict=True):
            out[kind].append([pts[a:b] for a, b in itertools.pairwise(off)])
    return out


def _polygon_path(polygons: list[list[np.ndarray]]) -> MplPath | None:
    rings = [ring for poly in polygons for ring in poly]
    if not rings:
        return None
    return MplPath.make_compound_path(*[MplPath(ring, closed=True) for ring in rings])


def draw_front(ax: plt.Axes, lon: np.ndarray, lat: np.ndarray, front: np.ndarray) -> None:
    """Shade the areas the regime holds (grey, outlined: the front) and contests (hatched)."""
    areas = front_areas(lon, lat, front)
    regime = _polygon_path(areas["regime"])
    contested = _polygon_path(areas["contested"])
    if contested is not None:
        ax.add_patch(
            PathPatch(
                contested,
                facecolor=GEO_COLOURS["contested"],
                edgecolor=GEO_COLOURS["front"],
                hatch="///",
                lw=0.0,
                alpha=0.45,
                zorder=0.6,
            )
        )
    if regime is not None:
        ax.add_patch(PathPatch(regime, facecolor=GEO_COLOURS["regime"], edgecolor="none", alpha=0.45, zorder=0.7))
        ax.add_patch(PathPatch(regime, facecolor="none", edgecolor=GEO_COLOURS["front"], lw=1.4, zorder=0.8))


def road_label_point(road: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Where to write a road's name: the vertex among the towns' extent farthest from every town."""
    inside = (road[:, 0] >= x.min()) & (road[:, 0] <= x.max()) & (road[:, 1] >= y.min()) & (road[:, 1] <= y.max())
    inner = road[inside] if inside.any() else road
    dist = np.hypot(inner[:, None, 0] - x[None, :], inner[:, None, 1] - y[None, :]).min(axis=1)
    return inner[int(dist.argmax())]


def draw_basemap(ax: plt.Axes, base: Basemap, x: np.ndarray, y: np.ndarray) -> None:
    """Governorate, roads, the Turkish border and a few reference places, under everything else."""
    gov = base.governorate
    ax.fill(gov[:, 0], gov[:, 1], facecolor=GEO_COLOURS["governorate_fill"], edgecolor="none", zorder=0.1)
    ax.plot(gov[:, 0], gov[:, 1], color=GEO_COLOURS["governorate_edge"], lw=0.8, ls=(0, (4, 2)), zorder=0.2)
    for name, road in base.roads.items():
        ax.plot(road[:, 0], road[:, 1], color=GEO_COLOURS["road"], lw=2.2, solid_capstyle="round", zorder=0.3)
        mid = road_label_point(road, x, y)
        ax.text(
            mid[0],
            mid[1],
            name,
            fontsize=6.5,
            fontweight="bold",
            color="#7a6f58",
            ha="center",
            va="center",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": GEO_COLOURS["road"], "lw": 0.6},
            zorder=0.9,
            clip_on=True,
        )
    b = base.border
    ax.plot(b[:, 0], b[:, 1], color=GEO_COLOURS["border"], lw=1.6, ls=(0, (6, 2, 1, 2)), zorder=0.4, label="_border")
    for name, (px, py) in base.labels.items():
        ax.text(px, py, name, fontsize=8, color="#555555", style="italic", ha="center", va="center", clip_on=True)


def draw_towns(
    ax: plt.Axes,
    x: np.ndarray,
    y: np.ndarray,
    sizes: np.ndarray,
    values: np.ndarray,
    kinds: np.ndarray,
    *,
    cmap: Any,
    norm: Normalize,
) -> Any:
    """Town markers: shape by controller kind, colour by ``values``; regime-held towns as black crosses.

    Returns the first colour-mapped collection (for a colour bar), or a ScalarMappable.
    """
    mappable = None
    for kind, marker in CONTROLLER_MARKERS.items():
        sel = kinds == kind
        if not sel.any():
            continue
        if kind == "regime":
            ax.scatter(x[sel], y[sel], s=50, marker=marker, c=PALETTE["black"], zorder=4)
            continue
        coll = ax.scatter(
            x[sel],
            y[sel],
            s=sizes[sel] * (0.8 if marker != "o" else 1.0),
            c=values[sel],
            marker=marker,
            cmap=cmap,
            norm=norm,
            edgecolors=PALETTE["green"] if kind == "rival" else "#333333",
            linewidths=1.4 if kind == "rival" else 0.5,
            zorder=3,
        )
        mappable = mappable or coll
    if kinds.size and (kinds == "contested").any():
        sel = kinds == "contested"
        ax.scatter(
            x[sel],
            y[sel],
            s=sizes[sel] * 1.6 + 60,
            facecolors="none",
            edgecolors=PALETTE["black"],
            linestyles="--",
            linewidths=0.9,
            zorder=2,
        )
    return mappable or plt.cm.ScalarMappable(cmap=cmap, norm=norm)


def controller_handles() -> list[Line2D]:
    """Legend keys for the controller shapes and the front areas."""
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker=CONTROLLER_MARKERS[k],
            markersize=7,
            markerfacecolor="white" if k != "regime" else "black",
            markeredgecolor=PALETTE["green"] if k == "rival" else "black",
            markeredgewidth=1.4 if k == "rival" else 0.8,
            label=CONTROLLER_LABELS[k],
        )
        for k in CONTROLLER_MARKERS
    ]
    handles.append(
        Patch(
            facecolor=GEO_COLOURS["regime"],
            edgecolor=GEO_COLOURS["front"],
            alpha=0.6,
            label="regime-held area (edge: front)",
        )
    )
    return handles


def basemap_handles() -> list[Line2D]:
    """Legend keys for the outline."""
    return [
        Line2D([], [], color=GEO_COLOURS["border"], lw=1.6, ls=(0, (6, 2, 1, 2)), label="Turkish border"),
        Line2D([], [], color=GEO_COLOURS["governorate_edge"], lw=0.8, ls=(0, (4, 2)), label="Idlib governorate"),
        Line2D([], [], color=GEO_COLOURS["road"], lw=2.2, label="main roads (M5, M4)"),
    ]


def draw_geography(ax: plt.Axes, x: np.ndarray, y: np.ndarray, geo: bool, front: np.ndarray) -> Basemap | None:
    """The outline (for towns in the Idlib area) and the regime-held and contested areas."""
    if not geo:
        return None
    base = basemap_covering(x, y)
    if base is not None:
        draw_basemap(ax, base, x, y)
    draw_front(ax, x, y, front)
    return base


def draw_flows(
    ax: plt.Axes,
    events: pd.DataFrame,
    names: list[str],
    x: np.ndarray,
    y: np.ndarray,
    *,
    first_day: int,
    last_day: int,
    max_flows: int,
) -> None:
    """The largest displacement flows between two days as curved arrows (width: persons)."""
    fl = flows_until(events, last_day, first_day=first_day).head(max_flows)
    if not len(fl):
        return
    index = {n: i for i, n in enumerate(names)}
    top = float(fl["persons"].iloc[0])
    for row in fl.itertuples(index=False):
        i, j = index.get(row.town), index.get(row.to_town)
        if i is None or j is None or i == j:
            continue
        width = 0.6 + 5.0 * math.sqrt(row.persons / top)
        ax.add_patch(
            FancyArrowPatch(
                (x[i], y[i]),
                (x[j], y[j]),
                connectionstyle="arc3,rad=0.18",
                arrowstyle="-|>",
                mutation_scale=6 + 2 * width,
                lw=width,
                color=FLOW_COLOUR,
                alpha=0.55,
                zorder=1,
                shrinkA=4,
                shrinkB=6,
            )
        )


def draw_strike_rings(
    ax: plt.Axes,
    events: pd.DataFrame,
    names: list[str],
    x: np.ndarray,
    y: np.ndarray,
    sizes: np.ndarray,
    *,
    first_day: int,
    last_day: int,
) -> None:
    """A ring around every town struck between two days; wider rings for more strikes."""
    ev = events[(events["event"] == "strike") & (events["day"] >= first_day) & (events["day"] <= last_day)]
    hits = ev.assign(town=ev["town"].astype(str)).groupby("town")["count"].sum()
    n_hits = np.array([float(hits.get(n, 0.0)) for n in names])
    hit = n_hits > 0
    ring = (np.sqrt(sizes[hit]) + 3.0 + 1.5 * np.sqrt(n_hits[hit])) ** 2
    ax.scatter(x[hit], y[hit], s=ring, facecolors="none", edgecolors=STRIKE_COLOUR, linewidths=1.1, zorder=2)


def label_towns(
    ax: plt.Axes,
    names: list[str],
    x: np.ndarray,
    y: np.ndarray,
    sizes: np.ndarray,
    *,
    also: Sequence[plt.Axes] = (),
) -> list[Any]:
    """Town names beside their markers, moved apart by adjustText; aggregates in grey italics.

    Call last, once the axes limits, colour bar and legend are in place (adjustText works in
    display space); labels do not take part in the layout. The axes in ``also`` (panels of the
    same towns with the same limits and size, as the two maps of :func:`plot_run_map`) get the
    same labels and leader lines at the same places, without running adjustText again: with a
    fixed iteration count (:data:`LABEL_ITERATIONS`) its result depends only on the names, their
    positions and the axes' size and limits.
    """
    from adjustText import adjust_text

    fig = ax.figure
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()  # settle the layout first: adjustText works in display space
        # and keep it: the labels take no part in it, so every later draw (adjustText's own, the save)
        # would lay the figure out again to the same places (a third of the run map's drawing time).
        fig.set_layout_engine("none")

    def place(target: plt.Axes) -> list[Any]:
        texts = []
        for i, n in enumerate(names):
            aggregate = any(w in n for w in ("villages", "camps"))
            texts.append(
                target.text(
                    x[i],
                    y[i],
                    n,
                    fontsize=6.5,
                    color="#555555" if aggregate else "#111111",
                    style="italic" if aggregate else "normal",
                    ha="left",
                    va="bottom",
                    zorder=5,
                    in_layout=False,
                )
            )
        return texts

    texts = place(ax)
    arrows: list[Any] = []
    if len(texts) > 1:
        _, arrows = adjust_text(
            texts,
            x=x,
            y=y,
            ax=ax,
            expand=(1.1, 1.35),
            arrowprops=dict(LEADER_LINE),
            min_arrow_len=8,
            iter_lim=LABEL_ITERATIONS,
            time_lim=None,
        )
    led = {id(getattr(a, "patchA", None)) for a in arrows}  # the labels adjustText gave a leader line
    for other in also:
        for i, (src, dst) in enumerate(zip(texts, place(other), strict=True)):
            dst.set_position(src.get_position())
            dst.set_horizontalalignment(src.get_horizontalalignment())
            dst.set_verticalalignment(src.get_verticalalignment())
            if id(src) in led:
                line = FancyArrowPatch(
                    posA=src.get_position(), posB=(x[i], y[i]), patchA=dst, transform=other.transData, **LEADER_LINE
                )
                other.add_patch(line)
    return texts


#: adjustText's iterations per map. Its default stops after one second of wall time instead, so
#: the labels' places depended on the machine's speed and load, and every map took that second
#: when the labels did not settle (the two panels of a run's map at the Idlib towns' density).
LABEL_ITERATIONS = 150

#: Leader lines from a moved label to its town.
LEADER_LINE: dict[str, Any] = {"arrowstyle": "-", "color": "#777777", "lw": 0.5}


def frame_map(
    ax: plt.Axes, x: np.ndarray, y: np.ndarray, geo: bool, grid_unit: str = "", *, base: Basemap | None = None
) -> None:
    """Aspect, axis labels, scale bar (with coordinates) and padding of a town map.

    With an outline (``base``) the frame also shows the border just north of the towns.
    """
    if geo:
        ax.set_aspect(1.0 / math.cos(math.radians(float(np.mean(y)))))
        ax.set(xlabel="longitude (°E)", ylabel="latitude (°N)")
        _scale_bar(ax, x, y)
    else:
        ax.set_aspect("equal")
        ax.set(xlabel=f"grid column{grid_unit}", ylabel=f"grid row{grid_unit}")
    pad_x = 0.06 * (x.max() - x.min() + 1e-9)
    pad_y = 0.05 * (y.max() - y.min() + 1e-9)
    top = y.max() + pad_y
    if base is not None:
        top = max(top, y.max() + 0.06)  # the border runs a few km north of the northernmost towns
    ax.set_xlim(x.min() - pad_x, x.max() + 2.5 * pad_x)
    ax.set_ylim(y.min() - pad_y, top)


def _scale_bar(ax: plt.Axes, x: np.ndarray, y: np.ndarray, km: float = 10.0) -> None:
    lat = float(np.mean(y))
    deg = km / (KM_PER_DEG_LAT * math.cos(math.radians(lat)))
    x0 = x.min()
    y0 = y.min() - 0.02 * (y.max() - y.min())
    ax.plot([x0, x0 + deg], [y0, y0], color="#333333", lw=2, solid_capstyle="butt", zorder=5)
    ax.text(x0 + deg / 2, y0, f"{km:g} km", ha="center", va="bottom", fontsize=7, zorder=5)


def size_and_strike_handles(size_scale: float, persons_ref: float, struck_label: str) -> tuple[Line2D, Line2D]:
    """Legend keys for marker size (a reference population) and the strike ring."""
    size_key = Line2D(
        [],
        [],
        ls="",
        marker="o",
        markersize=math.sqrt(persons_ref * size_scale),
        markerfacecolor="#d9d9d9",
        markeredgecolor="#333333",
        label=f"{persons_ref:,.0f} persons",
    )
    struck_key = Line2D(
        [],
        [],
        ls="",
        marker="o",
        markersize=9,
        markerfacecolor="none",
        markeredgecolor=STRIKE_COLOUR,
        label=struck_label,
    )
    return size_key, struck_key


def _legend(fig: plt.Figure, size_scale: float, persons_ref: float, geo: bool = False) -> None:
    size_key, struck_key = size_and_strike_handles(size_scale, persons_ref, "struck so far (wider ring: more strikes)")
    handles = [
        size_key,
        struck_key,
        Line2D([], [], color=FLOW_COLOUR, lw=3, alpha=0.6, label="displacement flows so far (width: persons)"),
        *controller_handles(),
        *(basemap_handles() if geo else []),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=6,
        fontsize=8,
        frameon=False,
        handletextpad=0.4,
        columnspacing=1.6,
    )
    sm = plt.cm.ScalarMappable(cmap=colour_map("coop_share"), norm=Normalize(0, 1))
    cbar = fig.colorbar(sm, ax=list(fig.axes), shrink=0.7, pad=0.02, fraction=0.03)
    cbar.set_label("share of persons present cooperating with HTS")


def as_run(run: RunFolder | SimulationResult) -> RunFolder:
    """A loaded run as it is, an in-memory result wrapped like one."""
    from sim.analysis.results import RunFolder, from_result

    return run if isinstance(run, RunFolder) else from_result(run)


def _day(run: RunFolder, when: int | str | dt.date | None) -> int:
    return run.day_of(pd.Timestamp(when) if isinstance(when, dt.date) else when)


def plot_map(
    run: RunFolder | SimulationResult,
    variable: str = "coop_share",
    when: int | str | dt.date | None = None,
    *,
    ax: plt.Axes | None = None,
    strikes: bool = True,
    flows: bool = True,
    since: int | str | dt.date | None = None,
    max_flows: int = 25,
    labels: bool = True,
    legend: bool = True,
    cmap: Any = None,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> plt.Figure:
    """Town map coloured by a town variable on one day, with strikes and displacement flows.

    Towns are markers at their coordinates (longitude/latitude, or grid cell), area
    proportional to the persons present; the shape says who holds the town
    (:data:`CONTROLLER_MARKERS`; towns taken by the regime are black crosses). Purple rings
    mark towns struck between ``since`` and ``when`` (wider ring: more strikes); orange
    arrows are the largest displacement flows in that window (wider: more persons).

    Args:
        run: a loaded run (:func:`sim.analysis.results.load_run_folder`) or an in-memory
            result of :func:`sim.run.simulate.simulate`.
        variable: town variable that sets the colour (a column of the town table; default:
            the share cooperating with HTS).
        when: day index or date (ISO string or date) to show (default: the last day).
        ax: axis to draw on (default: a new figure).
        strikes: ring the towns struck in the window.
        flows: draw the largest displacement flows in the window.
        since: first day of the strike and flow window (default: day 0).
        max_flows: the most flows to draw.
        labels: write town names.
        legend: draw the colour bar and the legend (off when a caller draws one for several maps).
        cmap: colour map (default: the variable's, :func:`sim.viz.style.colour_map`).
        vmin: lower colour limit (default: 0 for shares, else the data's minimum).
        vmax: upper colour limit (default: 1 for shares, else the data's maximum).
        title: axis title (default: the variable, the day and the window).
        save: file to save the figure to.
    """
    run = as_run(run)
    towns, events = run.towns, run.events
    if variable not in towns.columns:
        raise KeyError(f"{variable!r} is not a town variable")
    day = _day(run, when)
    first = 0 if since is None else _day(run, since)
    scenario = run.scenario
    names = scenario.town_names
    x, y, geo = town_positions(scenario)
    today = towns[towns["day"] == day]
    today = today.set_index(today["town"].astype(str)).reindex(names)
    values = today[variable].to_numpy(dtype=float)
    persons = today["persons_present"].to_numpy(dtype=float)
    front = today["front"].astype(str).to_numpy()
    held = front == "regime"
    share = variable in SHARE_VARS
    cmap = colour_map(variable) if cmap is None else cmap
    lo = vmin if vmin is not None else (0.0 if share else float(np.nanmin(values[~held])) if (~held).any() else 0.0)
    hi = vmax if vmax is not None else (1.0 if share else float(np.nanmax(values[~held])) if (~held).any() else 1.0)
    norm = Normalize(lo, hi if hi > lo else lo + 1.0)
    size_scale = 900.0 / max(float(towns["persons_present"].max()), 1.0)
    sizes = np.maximum(persons * size_scale, 6.0)
    with style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(7.2, 7.0), layout="constrained")
        else:
            fig = ax.figure
        ax.grid(False)
        base = draw_geography(ax, x, y, geo, front)
        if flows:
            draw_flows(ax, events, names, x, y, first_day=first, last_day=day, max_flows=max_flows)
        kinds = controller_kinds(front, today["controller"].to_numpy() if "controller" in today else None)
        sc = draw_towns(ax, x, y, sizes, values, kinds, cmap=cmap, norm=norm)
        if strikes:
            draw_strike_rings(ax, events, names, x, y, sizes, first_day=first, last_day=day)
        cell = scenario.grid.cell_km
        frame_map(ax, x, y, geo, f" ({cell:g} km cells)" if cell and not geo else "", base=base)
        name, unit = label_of(variable)
        date = run.date_of(day)
        when_text = f"{date:%-d %b %Y}" if date is not None else f"day {day}"
        window = ""
        if strikes or flows:
            start = run.date_of(first)
            window = f"; strikes and flows since {start:%-d %b %Y}" if start is not None else f"; since day {first}"
        ax.set_title(title if title is not None else f"{name[0].upper()}{name[1:]}, {when_text}{window}")
        if legend:
            cbar = fig.colorbar(sc, ax=ax, shrink=0.6, pad=0.02, fraction=0.04)
            cbar.set_label(f"{name} ({unit})" if unit else name)
            ref = 100_000 if towns["persons_present"].max() > 2e5 else 10_000
            handles = [
                *size_and_strike_handles(size_scale, ref, "struck (wider ring: more strikes)"),
                Line2D([], [], color=FLOW_COLOUR, lw=3, alpha=0.6, label="displacement (width: persons)"),
                *controller_handles(),
                *(basemap_handles() if base is not None else []),
            ]
            ax.legend(
                handles=handles,
                loc="upper left",
                fontsize=7,
                borderpad=0.3,
                labelspacing=0.8,
                bbox_to_anchor=(0.0, -0.09),
                ncols=3,
            )
        if labels:
            label_towns(ax, names, x, y, sizes)
        return finish(fig, save)


def plot_run_map(
    run: RunFolder | SimulationResult, when: int | str | dt.date | None = None, save: str | Path | None = None
) -> plt.Figure:
    """Two cooperation maps side by side: the first day, and ``when`` (default: the last day)
    with the strikes and flows so far; one legend and colour bar. The ``map.png`` of a run."""
    run = as_run(run)
    scenario = run.scenario
    towns = run.towns
    size_scale = 900.0 / max(float(towns["persons_present"].max()), 1.0)
    day = _day(run, when)
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(14.0, 7.2), sharex=True, sharey=True, layout="constrained")
        for ax, d, flows in ((axes[0], 0, False), (axes[1], day, True)):
            date = run.date_of(d)
            label = f"{date:%-d %b %Y}" if date is not None else f"day {d}"
            plot_map(run, "coop_share", d, ax=ax, flows=flows, labels=False, legend=False, title=label)
        axes[1].set_ylabel("")
        ref = 100_000 if towns["persons_present"].max() > 2e5 else 10_000
        x, y, geo = town_positions(scenario)
        _legend(fig, size_scale, ref, geo=geo and basemap_covering(x, y) is not None)
        policy = scenario.air_campaign.policy
        fig.suptitle(
            f"{scenario.name}: towns sized by persons present, coloured by cooperation "
            f"with HTS (background targeting: {policy})",
            fontsize=11,
        )
        on_day = towns[towns["day"] == day]
        persons = on_day.set_index(on_day["town"].astype(str)).reindex(scenario.town_names)["persons_present"]
        sizes = np.maximum(persons.to_numpy(float) * size_scale, 6.0)
        # Both panels share their limits and size: the labels are placed once, on the last day's map.
        label_towns(axes[1], scenario.town_names, x, y, sizes, also=[axes[0]])
        return finish(fig, save)

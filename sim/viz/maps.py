"""Town maps: towns at their coordinates, coloured by cooperation with HTS.

:func:`plot_town_map` draws one date on one axis: each town is a disc at its
longitude and latitude (or grid cell), its area proportional to the persons
present, its colour the share cooperating with HTS on a blue (resisting) -
grey - vermillion (cooperating) scale that stays readable with colour-blind
vision (Okabe & Ito colours). Regime-held towns are crosses, contested towns
have a dashed ring, strikes so far are purple rings, and the largest
displacement flows so far are orange arrows whose width grows with persons.
:func:`plot_run_map` puts the first day and a chosen day side by side; it is the
``map.png`` of a run folder.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from sim.scenario.geography import KM_PER_DEG_LAT
from sim.scenario.schema import Scenario
from sim.viz.style import COOPERATION_CMAP, PALETTE, finish, style


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


def _resolve_day(towns: pd.DataFrame, scenario: Scenario, when: int | str | dt.date | None) -> int:
    """Day index for ``when`` (a day index, an ISO date, a date, or None for the last day)."""
    last = int(towns["day"].max())
    if when is None:
        return last
    if isinstance(when, (int, np.integer)):
        day = int(when)
    else:
        date = dt.date.fromisoformat(when) if isinstance(when, str) else when
        if scenario.start_date is None:
            raise ValueError("a date needs a scenario with start_date")
        day = (date - scenario.start_date).days
    if not 0 <= day <= last:
        raise ValueError(f"day {day} is outside the run (0..{last})")
    return day


def _label(scenario: Scenario, day: int) -> str:
    date = scenario.date_of(day)
    return f"{date:%-d %b %Y}" if date is not None else f"day {day}"


def flows_until(events: pd.DataFrame, day: int, *, first_day: int = 0) -> pd.DataFrame:
    """Displacement flows (town -> to_town, persons) from ``first_day`` to ``day``, largest first."""
    ev = events[(events["event"] == "displacement") & (events["day"] >= first_day) & (events["day"] <= day)]
    if ev.empty:
        return pd.DataFrame(columns=["town", "to_town", "persons"])
    flows = ev.assign(town=ev["town"].astype(str), to_town=ev["to_town"].astype(str))
    flows = flows.groupby(["town", "to_town"], as_index=False)["persons"].sum()
    return flows.sort_values("persons", ascending=False, ignore_index=True)


def plot_town_map(
    towns: pd.DataFrame,
    events: pd.DataFrame,
    scenario: Scenario,
    when: int | str | dt.date | None = None,
    *,
    ax: plt.Axes | None = None,
    flows: bool = True,
    max_flows: int = 25,
    strikes: bool = True,
    labels: bool = True,
    size_scale: float | None = None,
    save: str | Path | None = None,
) -> plt.Figure:
    """Map of the towns on one day.

    Args:
        towns: the run's town table (one row per town per day).
        events: the run's events table (strikes and displacement flows).
        scenario: the scenario of the run (town coordinates and names).
        when: day index, ISO date or date to show (default: the last day).
        ax: axis to draw on (default: a new figure).
        flows: draw the largest displacement flows up to that day.
        max_flows: how many flows to draw at most.
        strikes: ring towns by the strikes they received up to that day.
        labels: write town names.
        size_scale: marker area (points^2) per person; default scales the largest town to
            about 900 points^2. Pass the same value to compare panels.
        save: file to save the figure to.
    """
    day = _resolve_day(towns, scenario, when)
    x, y, geo = town_positions(scenario)
    names = scenario.town_names
    today = towns[towns["day"] == day].set_index(towns.loc[towns["day"] == day, "town"].astype(str))
    today = today.reindex(names)
    persons = today["persons_present"].to_numpy(dtype=float)
    coop = today["coop_share"].to_numpy(dtype=float)
    front = today["front"].astype(str).to_numpy()
    if size_scale is None:
        size_scale = 900.0 / max(float(towns["persons_present"].max()), 1.0)
    with style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(7.0, 7.4))
        else:
            fig = ax.figure
        ax.grid(False)
        if flows:
            draw_flows(ax, events, names, x, y, first_day=0, last_day=day, max_flows=max_flows)
        held = front == "regime"
        alive = ~held
        sizes = np.maximum(persons * size_scale, 6.0)
        ax.scatter(
            x[alive],
            y[alive],
            s=sizes[alive],
            c=coop[alive],
            cmap=COOPERATION_CMAP,
            norm=Normalize(0, 1),
            edgecolors="#333333",
            linewidths=0.5,
            zorder=3,
        )
        ax.scatter(x[held], y[held], s=50, marker="X", c=PALETTE["black"], zorder=4)
        contested = front == "contested"
        if contested.any():
            ax.scatter(
                x[contested],
                y[contested],
                s=sizes[contested] * 1.6 + 60,
                facecolors="none",
                edgecolors=PALETTE["black"],
                linestyles="--",
                linewidths=0.9,
                zorder=2,
            )
        if strikes:
            draw_strike_rings(ax, events, names, x, y, sizes, first_day=0, last_day=day)
        if labels:
            label_towns(ax, names, x, y, sizes)
        frame_map(ax, x, y, geo)
        ax.set_title(f"{_label(scenario, day)}: cooperation with HTS")
        return finish(fig, save)


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
                color=PALETTE["orange"],
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
    ax.scatter(x[hit], y[hit], s=ring, facecolors="none", edgecolors=PALETTE["purple"], linewidths=1.1, zorder=2)


def label_towns(ax: plt.Axes, names: list[str], x: np.ndarray, y: np.ndarray, sizes: np.ndarray) -> None:
    """Town names beside their markers; aggregate districts and camps in grey italics."""
    for i, n in enumerate(names):
        aggregate = any(w in n for w in ("villages", "camps"))
        r = math.sqrt(max(sizes[i], 6.0) / math.pi) + 1.5
        ax.annotate(
            n,
            (x[i], y[i]),
            xytext=(r * 0.7, r * 0.7),
            textcoords="offset points",
            fontsize=6.5,
            color="#555555" if aggregate else "#111111",
            style="italic" if aggregate else "normal",
            zorder=5,
        )


def frame_map(ax: plt.Axes, x: np.ndarray, y: np.ndarray, geo: bool, grid_unit: str = "") -> None:
    """Aspect, axis labels, scale bar (with coordinates) and padding of a town map."""
    if geo:
        ax.set_aspect(1.0 / math.cos(math.radians(float(np.mean(y)))))
        ax.set(xlabel="longitude (°E)", ylabel="latitude (°N)")
        _scale_bar(ax, x, y)
    else:
        ax.set_aspect("equal")
        ax.set(xlabel=f"grid column{grid_unit}", ylabel=f"grid row{grid_unit}")
    pad_x = 0.06 * (x.max() - x.min() + 1e-9)
    pad_y = 0.05 * (y.max() - y.min() + 1e-9)
    ax.set_xlim(x.min() - pad_x, x.max() + 2.5 * pad_x)
    ax.set_ylim(y.min() - pad_y, y.max() + pad_y)


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
        markeredgecolor=PALETTE["purple"],
        label=struck_label,
    )
    return size_key, struck_key


def _legend(fig: plt.Figure, ax: plt.Axes, size_scale: float, persons_ref: float) -> None:
    size_key, struck_key = size_and_strike_handles(size_scale, persons_ref, "struck so far (wider ring: more strikes)")
    handles = [
        size_key,
        struck_key,
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            markersize=9,
            markerfacecolor="none",
            markeredgecolor="black",
            label="contested front (dashed ring)",
        ),
        Line2D([], [], ls="", marker="X", markersize=7, color="black", label="taken by the regime"),
        Line2D([], [], color=PALETTE["orange"], lw=3, alpha=0.6, label="displacement flows so far (width: persons)"),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=len(handles),
        fontsize=8,
        frameon=False,
        handletextpad=0.4,
        columnspacing=1.6,
    )
    sm = plt.cm.ScalarMappable(cmap=COOPERATION_CMAP, norm=Normalize(0, 1))
    cbar = fig.colorbar(sm, ax=list(fig.axes), shrink=0.7, pad=0.02, fraction=0.03)
    cbar.set_label("share of persons present cooperating with HTS")


def plot_run_map(
    towns: pd.DataFrame,
    events: pd.DataFrame,
    scenario: Scenario,
    when: int | str | dt.date | None = None,
    save: str | Path | None = None,
) -> plt.Figure:
    """Two maps side by side: the first day, and ``when`` (default: the last day) with flows."""
    size_scale = 900.0 / max(float(towns["persons_present"].max()), 1.0)
    with style():
        fig, axes = plt.subplots(1, 2, figsize=(14.0, 7.2), sharex=True, sharey=True, layout="constrained")
        plot_town_map(towns, events, scenario, 0, ax=axes[0], flows=False, size_scale=size_scale)
        plot_town_map(towns, events, scenario, when, ax=axes[1], size_scale=size_scale)
        axes[1].set_ylabel("")
        _legend(fig, axes[1], size_scale, 100_000 if towns["persons_present"].max() > 2e5 else 10_000)
        policy = scenario.air_campaign.policy
        fig.suptitle(
            f"{scenario.name}: towns sized by persons present, coloured by cooperation "
            f"with HTS (background targeting: {policy})",
            fontsize=11,
        )
        return finish(fig, save)

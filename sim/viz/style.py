"""The one look of every figure and of the app: palette, colour maps, labels, rc style.

Colours are the Okabe & Ito (2008) colour-blind-safe palette. Cooperation with HTS
has one colour map everywhere (:data:`COOPERATION_CMAP`, blue = low, grey, vermillion
= high): in run maps, small multiples, plots and the app; resisting HTS has
:data:`RESISTANCE_CMAP` (grey to blue). Other continuous variables
use ``cividis``; signed effects use the diverging :data:`DIVERGING_CMAP`.
:func:`colour_map` picks the one colour map of a quantity; nothing else in
:mod:`sim.viz` names a colour map.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap

from sim.model.collect import GOV_COLUMNS, TOWN_STATE_COLUMNS

# Okabe & Ito (2008) colour-blind-safe palette.
PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "red": "#D55E00",
    "purple": "#CC79A7",
    "sky": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
STANCE_COLOURS = {"resist": PALETTE["blue"], "neutral": "#999999", "cooperate": PALETTE["red"]}
INITIAL_STANCE_COLOURS = {
    "resisting": PALETTE["blue"],
    "hts": PALETTE["red"],
    "rival": PALETTE["green"],
    "mixed": PALETTE["orange"],
    "unknown": "#777777",
}
SERIES_COLOURS = [PALETTE[k] for k in ("blue", "red", "green", "orange", "purple", "sky", "black")]
DIVERGING_CMAP = LinearSegmentedColormap.from_list("blue_vermillion", [PALETTE["blue"], "#f2f2f2", PALETTE["red"]])
COOPERATION_CMAP = LinearSegmentedColormap.from_list("cooperation", [PALETTE["blue"], "#d9d9d9", PALETTE["red"]])
#: Resisting HTS: grey (none) to the palette's blue, the colour of resistance in every figure.
RESISTANCE_CMAP = LinearSegmentedColormap.from_list("resistance", ["#e6e6e6", PALETTE["blue"]])
SEQUENTIAL_CMAP = "cividis"
#: Strikes, in every figure and the app (rings on the static maps, bursts and bars in the app).
STRIKE_COLOUR = PALETTE["purple"]
#: Displacement flows (arrows on the maps).
FLOW_COLOUR = PALETTE["orange"]


def colour_map(variable: str) -> Any:
    """The one colour map of a quantity, for every figure and the app.

    Cooperation with HTS (``coop_share``, ``coop_share_resisting``, ...) is
    :data:`COOPERATION_CMAP`; resisting HTS (``resist_share...``) is :data:`RESISTANCE_CMAP`;
    any other level is the sequential ``cividis``. Signed effects use :data:`DIVERGING_CMAP`.
    """
    if variable.startswith(("coop_share", "coop_")):
        return COOPERATION_CMAP
    if variable.startswith(("resist_share", "resist_")):
        return RESISTANCE_CMAP
    return SEQUENTIAL_CMAP


# variable -> (title, unit label); used for axis labels everywhere. Derived from the
# collector's column definitions (the one source of titles, units and meanings).
LABELS: dict[str, tuple[str, str]] = {
    name: (col.title, col.unit) for table in (TOWN_STATE_COLUMNS, GOV_COLUMNS) for name, col in table.items()
}
SHARE_VARS = {k for k, (_, unit) in LABELS.items() if unit.startswith("share") or unit.startswith("level, 0 to 1")}
PERSON_SHARE_VARS = {k for k, (_, unit) in LABELS.items() if unit.startswith("share of persons")}


def label_of(variable: str) -> tuple[str, str]:
    """(title, unit) of a variable or outcome name, with a readable fallback."""
    if variable in LABELS:
        return LABELS[variable]
    from sim.run.outcomes import STANDARD_OUTCOMES

    spec = STANDARD_OUTCOMES.get(variable, variable)
    series, _, reducer = spec.partition(":")
    if series in LABELS:
        title, unit = LABELS[series]
        how = {
            "final": "last day",
            "mean": "window mean",
            "total": "sum",
            "max": "maximum",
            "min": "minimum",
            "change": "change",
        }.get(reducer, reducer)
        return (f"{title} ({how})" if reducer else title), unit
    return variable.replace("_", " "), ""


STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 130,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE.values())),
}


@contextmanager
def style() -> Iterator[None]:
    """The project's plotting style, applied for the duration of a figure."""
    with plt.rc_context(STYLE):
        yield


def time_axis(df: pd.DataFrame) -> tuple[pd.Series, str]:
    """Dates where the scenario has a calendar, else the day index."""
    if "date" in df.columns:
        return pd.to_datetime(df["date"]), "date"
    return df["day"], "day"


def _format_time(ax: plt.Axes, kind: str) -> None:
    if kind == "date":
        loc = mdates.AutoDateLocator(minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    else:
        ax.set_xlabel("day")


def finish(fig: plt.Figure, save: str | Path | None) -> plt.Figure:
    """Save the figure when asked; return it."""
    if save is not None:
        fig.savefig(save)
    return fig


def format_time_axis(ax: plt.Axes, kind: str) -> None:
    """Concise date ticks for a calendar, else label the axis in days."""
    _format_time(ax, kind)

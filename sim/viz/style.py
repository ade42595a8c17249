"""The one look of every figure and of the app: palette, colour maps, labels, rc style.

Colours are the Okabe & Ito (2008) colour-blind-safe palette. Cooperation with HTS
has one colour map everywhere (:data:`COOPERATION_CMAP`, blue = low, grey, vermillion
= high): in run maps, small multiples, plots and the app. Other continuous variables
use ``cividis``; signed effects use the diverging :data:`DIVERGING_CMAP`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap

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
SEQUENTIAL_CMAP = "cividis"

# variable -> (title, unit label); used for axis labels everywhere.
LABELS: dict[str, tuple[str, str]] = {
    "coop_share": ("cooperation with HTS", "share of persons"),
    "coop_share_home": ("cooperation with HTS (by home town)", "share of persons"),
    "coop_share_resisting": ("cooperation with HTS, resisting towns", "share of persons"),
    "coop_share_resisting_home": ("cooperation with HTS, resisting towns (by home)", "share of persons"),
    "coop_share_other": ("cooperation with HTS, other towns", "share of persons"),
    "resist_share": ("resisting HTS", "share of persons"),
    "resist_share_home": ("resisting HTS (by home town)", "share of persons"),
    "resist_share_resisting": ("resisting HTS, resisting towns", "share of persons"),
    "resist_share_resisting_home": ("resisting HTS, resisting towns (by home)", "share of persons"),
    "neutral_share": ("neutral", "share of persons"),
    "protest_share": ("protest participation", "share of persons"),
    "protest_share_resisting": ("protest participation, resisting towns", "share of persons"),
    "persons_present": ("persons present", "persons"),
    "persons_at_home": ("residents at home", "persons"),
    "displaced_out": ("residents displaced elsewhere", "persons"),
    "hosted_displaced": ("displaced persons hosted", "persons"),
    "displaced_persons": ("displaced persons", "persons"),
    "displacement_moves": ("displacements per day", "persons per day"),
    "displacement_moves_cum": ("displacements (cumulative)", "persons"),
    "returns": ("returns", "households per day"),
    "killed": ("civilians killed", "persons per day"),
    "killed_cum": ("civilians killed (cumulative)", "persons"),
    "strikes": ("air strikes", "strikes per day"),
    "strikes_cum": ("air strikes (cumulative)", "strikes"),
    "council": ("council legitimacy", "level, 0 to 1"),
    "council_mean": ("council legitimacy (person-weighted)", "level, 0 to 1"),
    "councils_independent": ("independent councils", "towns"),
    "hts_control": ("HTS control", "level, 0 to 1"),
    "hts_control_mean": ("HTS control (person-weighted)", "level, 0 to 1"),
    "hts_services": ("HTS services", "level, 0 to 1"),
    "hts_services_mean": ("HTS services (person-weighted)", "level, 0 to 1"),
    "damage": ("damage", "level, 0 to 1"),
    "exposure": ("exposure to recent harm", "killed per 1,000 residents (decaying)"),
    "threat": ("regime threat", "level"),
    "protection": ("protection value of HTS", "level"),
    "fear_mean": ("fear (mean)", "level, 0 to 1"),
    "grievance_regime_mean": ("grievance against the regime (mean)", "level, 0 to 1"),
    "grievance_hts_mean": ("grievance against HTS (mean)", "level, 0 to 1"),
    "reputation": ("resisting reputation", "level, 0 to 1"),
    "arrests": ("arrests", "persons per day"),
    "hts_fighters": ("HTS fighters", "fighters"),
    "hts_resources": ("HTS resources", "units"),
    "hts_legitimacy": ("HTS legitimacy", "level, 0 to 1"),
    "hts_retaliation": ("HTS retaliation", "level"),
    "hts_recruits_cum": ("recruits to HTS (cumulative)", "persons"),
    "rival_recruits_cum": ("recruits to rival groups (cumulative)", "persons"),
    "rival_alignment_mean": ("rival alignment with HTS", "alignment (-1..1)"),
    "rival_fighters": ("rival fighters", "fighters"),
    "council_takeovers_cum": ("council takeovers by HTS (cumulative)", "towns"),
    "towns_regime_held": ("towns taken by the regime", "towns"),
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

"""Standard figures, in one consistent, colour-blind-safe style.

Each function takes plain DataFrames (as loaded by :mod:`sim.results` or
returned by :func:`sim.runner.simulate`), returns the matplotlib Figure, and
saves it when ``save`` is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd

from sim.config import Scenario

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


def plot_summary(ts: pd.DataFrame, scenario: Scenario | None = None, save: str | Path | None = None) -> plt.Figure:
    """The main time series of one run, on six panels."""
    with style():
        fig, axes = plt.subplots(2, 3, figsize=(12, 6.2), sharex=True)
        x, kind = time_axis(ts)
        ax = axes[0, 0]
        ax.plot(x, ts["coop_share"], label="all towns", color=PALETTE["black"])
        ax.plot(x, ts["coop_share_resisting"], label="resisting towns (present)", color=PALETTE["red"])
        ax.plot(x, ts["coop_share_resisting_home"], label="resisting towns (by home)", color=PALETTE["red"], ls="--")
        ax.set(title="Cooperation with HTS", ylabel="share of persons", ylim=(0, 1))
        ax.legend()
        ax = axes[0, 1]
        ax.plot(x, ts["resist_share_resisting"], label="resisting HTS, resisting towns", color=PALETTE["blue"])
        ax.plot(x, ts["protest_share_resisting"], label="protesting, resisting towns", color=PALETTE["sky"])
        ax.plot(x, ts["protest_share"], label="protesting, all towns", color=PALETTE["sky"], ls="--")
        ax.set(title="Resistance and protest", ylabel="share of persons", ylim=(0, 1))
        ax.legend()
        ax = axes[0, 2]
        ax.plot(x, ts["displaced_persons"] / 1000, label="displaced now", color=PALETTE["orange"])
        ax.plot(
            x, ts["displacement_moves_cum"] / 1000, label="displacements (cumulative)", color=PALETTE["orange"], ls="--"
        )
        ax.set(title="Displacement", ylabel="thousand persons")
        ax.legend()
        ax = axes[1, 0]
        ax.bar(x, ts["strikes"], color=PALETTE["purple"], width=1.0, label="strikes per day")
        ax.set(title="Air strikes and civilians killed", ylabel="strikes per day")
        ax2 = ax.twinx()
        ax2.plot(x, ts["killed_cum"], color=PALETTE["black"], label="killed (cumulative)")
        ax2.set_ylabel("persons killed (cumulative)")
        ax2.grid(False)
        ax = axes[1, 1]
        ax.plot(x, ts["hts_fighters"] / 1000, color=PALETTE["red"], label="HTS fighters")
        ax.plot(x, ts["rival_fighters"] / 1000, color=PALETTE["green"], label="rival fighters")
        ax.set(title="Armed groups", ylabel="thousand fighters")
        ax.legend()
        ax = axes[1, 2]
        ax.plot(x, ts["rival_alignment_mean"], color=PALETTE["green"], label="rival alignment with HTS (-1..1)")
        ax.plot(x, ts["hts_control_mean"], color=PALETTE["red"], label="HTS control (person-weighted)")
        ax.plot(x, ts["council_mean"], color=PALETTE["blue"], label="council legitimacy (person-weighted)")
        ax.set(title="Control, councils, rivals", ylabel="level", ylim=(-1, 1))
        ax.legend()
        for a in axes.ravel():
            _format_time(a, kind)
        if scenario is not None:
            policy = scenario.air_campaign.policy
            fig.suptitle(f"{scenario.name} — targeting policy: {policy}", fontsize=11)
        fig.tight_layout()
        return finish(fig, save)

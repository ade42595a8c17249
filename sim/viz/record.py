"""The record figure: each town's dated record entries against the run's simulated series.

One row per town that has record entries (a scenario town, or a named place standing for exactly
one town), four panels per row: persons protesting, council independence, controller, and
displaced persons hosted. Each entry is drawn in the panel of its kind at its date (a window as a
horizontal bar, a tolerance as an error bar), coloured by its agreement when a comparison table
(:func:`sim.run.record.compare`) is given; entries of other kinds (deaths, strikes, ...) and council
events that are not a status (a decree, an office closed) are dotted vertical lines across the row.
Context entries (outside the record window) are not drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from sim.run.record import (
    AGREE,
    DISAGREE,
    HOSTED_COLUMNS,
    NO_MODEL,
    NOT_REACHED,
    protest_threshold,
    protesters,
    tolerance,
)
from sim.scenario.record import GOVERNORATE, Entry, Record
from sim.viz.style import PALETTE, finish, style

#: The panels of a row: (key, title).
PANELS = (
    ("protest", "persons protesting"),
    ("council", "council independent (1 yes)"),
    ("controller", "controller"),
    ("hosted", "displaced persons hosted"),
)
#: The panel each kind is drawn in; kinds not listed are drawn as dotted lines across the row.
PANEL_OF_KIND = {"protest": "protest", "council": "council", "control": "controller", "hosted": "hosted"}
AGREEMENT_COLOURS = {
    AGREE: PALETTE["green"],
    DISAGREE: PALETTE["red"],
    NO_MODEL: "#999999",
    NOT_REACHED: PALETTE["orange"],
    None: PALETTE["black"],
}
SIMULATED_COLOUR = PALETTE["blue"]


def town_of(record: Record, entry: Entry) -> str | None:
    """The one scenario town an entry is about, or None (the governorate, several towns, part of one)."""
    if entry.place == GOVERNORATE:
        return None
    towns, coverage = record.towns_of(entry.place)
    return towns[0] if len(towns) == 1 and coverage == "exact" else None


def towns_with_entries(record: Record) -> list[str]:
    """Towns with at least one (non-context) entry, in the record's order."""
    out: list[str] = []
    for e in record.entries:
        town = town_of(record, e)
        if town is not None and not e.context and town not in out:
            out.append(town)
    return out


def _town_rows(tables: Mapping[str, pd.DataFrame], town: str) -> pd.DataFrame:
    tw = tables["towns"]
    rows = tw[tw["town"].astype(str) == town].copy()
    rows["_date"] = pd.to_datetime(rows["date"])
    return rows.sort_values("_date")


def _controller_codes(tables: Mapping[str, pd.DataFrame], record: Record) -> list[str]:
    tw = tables["towns"]
    names = [str(c) for c in pd.unique(tw["controller"].astype(str))] if "controller" in tw.columns else []
    extra = [str(e.value) for e in record.entries if e.kind == "control" and str(e.value) not in names]
    return list(dict.fromkeys([*names, *extra]))


def _y_of(entry: Entry, panel: str, codes: list[str]) -> float:
    if panel == "protest":
        return protest_threshold(entry) if entry.target in ("hts", "hts_and_regime", "factions") else 0.0
    if panel == "council":
        return 1.0 if entry.value == "independent" else 0.0
    if panel == "controller":
        return float(codes.index(str(entry.value)))
    low, high = entry.bounds
    return (low + high) / 2


def _time_range(record: Record, tables: Mapping[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The record's window, widened to the run's days where they reach further."""
    lo, hi = pd.Timestamp(record.window.start), pd.Timestamp(record.window.end)
    tw = tables.get("towns")
    if tw is not None and "date" in tw.columns and len(tw):
        dates = pd.to_datetime(tw["date"])
        lo, hi = min(lo, dates.min()), max(hi, dates.max())
    pad = pd.Timedelta(days=3)
    return lo - pad, hi + pad


def _month_axis(ax: plt.Axes, lo: pd.Timestamp, hi: pd.Timestamp, *, labels: bool) -> None:
    """Month ticks over ``lo``-``hi``, labelled on the bottom row only. The other rows get their month
    grid as plain lines, without tick objects: laying out and drawing 60 date axes' ticks was most
    of the figure's cost."""
    ax.set_xlim(lo, hi)
    if labels:
        loc = mdates.MonthLocator()
        ax.xaxis.set_major_locator(loc)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
        return
    ax.xaxis.set_major_locator(NullLocator())
    months = pd.date_range(lo.normalize() + pd.offsets.MonthBegin(0), hi, freq="MS")
    grid = plt.rcParams
    ax.vlines(
        months,
        0,
        1,
        transform=ax.get_xaxis_transform(),
        colors=grid["grid.color"],
        linewidth=grid["grid.linewidth"],
        alpha=grid["grid.alpha"],
        zorder=0.5,
    )


def _draw_entry(ax: plt.Axes, entry: Entry, panel: str, codes: list[str], agreement: str | None) -> None:
    colour = AGREEMENT_COLOURS.get(agreement, PALETTE["black"])
    y = _y_of(entry, panel, codes)
    start, end = pd.Timestamp(entry.start), pd.Timestamp(entry.end)
    _, days = tolerance(entry)
    if entry.window is not None and end > start:
        ax.hlines(y, start, end, colors=colour, linewidth=3, alpha=0.8)
    yerr = None
    if panel == "hosted" and entry.numeric:
        low, high = entry.bounds
        yerr = [[y - low], [high - y]]
    xerr = pd.Timedelta(days=days) if days else None
    mid = start + (end - start) / 2
    ax.errorbar([mid], [y], xerr=xerr, yerr=yerr, fmt="D", color=colour, markersize=6, capsize=3)


def plot_record(
    record: Record,
    tables: Mapping[str, pd.DataFrame],
    *,
    comparison: pd.DataFrame | None = None,
    save: str | Path | None = None,
) -> plt.Figure:
    """Draw every town with record entries: its dated entries against the simulated series.

    Args:
        record: a loaded record.
        tables: a run's ``towns`` table (``timeseries`` and ``events`` are not needed).
        comparison: the table of :func:`sim.run.record.compare` to colour entries by agreement.
        save: a path to save the figure to.
    """
    towns = towns_with_entries(record)
    agreement = dict(zip(comparison["id"], comparison["agreement"], strict=True)) if comparison is not None else {}
    codes = _controller_codes(tables, record)
    n = max(len(towns), 1)
    with style():
        # One time range for every panel, set once per axes: sharing the x axis across 60 axes made
        # every limit change walk all the siblings (half the figure's drawing time).
        lo, hi = _time_range(record, tables)
        width, height = 4.0 * len(PANELS), 1.9 * n + 1.2
        fig, axes = plt.subplots(n, len(PANELS), figsize=(width, height), squeeze=False)
        for r, town in enumerate(towns):
            rows = _town_rows(tables, town)
            x = rows["_date"]
            series = {
                "protest": None,
                "council": rows["council_independent"].astype(float) if "council_independent" in rows else None,
                "controller": rows["controller"].astype(str).map(codes.index) if "controller" in rows else None,
                "hosted": rows[list(HOSTED_COLUMNS)].sum(axis=1) if all(c in rows for c in HOSTED_COLUMNS) else None,
            }
            if len(rows):
                daily = protesters(tables, [town], x.min(), x.max())
                series["protest"] = daily.reindex(x.dt.normalize().to_numpy()) if daily is not None else None
            for c, (key, title) in enumerate(PANELS):
                ax = axes[r, c]
                s = series[key]
                if s is not None and len(rows):
                    step = key in ("council", "controller")
                    draw = ax.step if step else ax.plot
                    kw = {"where": "post"} if step else {}
                    draw(x.to_numpy(), np.asarray(s, dtype=float), color=SIMULATED_COLOUR, linewidth=1.4, **kw)
                if r == 0:
                    ax.set_title(title)
                if key == "council":
                    ax.set_ylim(-0.2, 1.2)
                    ax.set_yticks([0, 1])
                if key == "controller" and codes:
                    ax.set_yticks(range(len(codes)))
                    ax.set_yticklabels(codes, fontsize="small")
                    ax.set_ylim(-0.5, len(codes) - 0.5)
                _month_axis(ax, lo, hi, labels=r == n - 1)
            axes[r, 0].set_ylabel(town, fontweight="bold")
            for e in record.entries:
                if e.context or town_of(record, e) != town:
                    continue
                panel = PANEL_OF_KIND.get(e.kind)
                if panel == "council" and e.value not in ("independent", "ssg", "none"):
                    panel = None  # a council event (a decree, an office closed), not a status
                if panel is None:
                    for c in range(len(PANELS)):
                        axes[r, c].axvline(pd.Timestamp(e.start), color="#777777", linestyle=":", linewidth=1)
                    continue
                if panel == "hosted" and not e.numeric:
                    continue
                _draw_entry(axes[r, [k for k, _ in PANELS].index(panel)], e, panel, codes, agreement.get(e.id))
        handles = [
            Line2D([], [], color=SIMULATED_COLOUR, linewidth=1.4, label="simulated"),
            Line2D([], [], color="#777777", linestyle=":", label="other record entry (deaths, strikes, ...)"),
        ]
        shown = [None] if comparison is None else [AGREE, DISAGREE, NO_MODEL, NOT_REACHED]
        for a in shown:
            label = "recorded" if a is None else f"recorded: {a}"
            handles.append(Line2D([], [], marker="D", linestyle="", color=AGREEMENT_COLOURS[a], label=label))
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
        fig.suptitle(f"Record {record.record}: dated entries against the simulated series", y=1 - 0.15 / height)
        # Margins in inches, set once: a tight layout of this many axes measured every tick label
        # twice and took half the figure's drawing time. The left margin holds the town's name and
        # the protest ticks; the bottom the month labels and the legend; the top the title and the
        # panels' titles.
        fig.subplots_adjust(
            left=0.95 / width,
            right=1 - 0.2 / width,
            bottom=0.85 / height,
            top=1 - 0.75 / height,
            wspace=0.45,
            hspace=0.18,
        )
    return finish(fig, save)

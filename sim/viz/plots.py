"""Standard figures, in one consistent, colour-blind-safe style.

Each function takes plain DataFrames (as loaded by :mod:`sim.analysis.results` or
returned by :func:`sim.run.simulate.simulate`), returns the matplotlib Figure, and
saves it when ``save`` is given.

=============================  ====================================================
figure                         function
=============================  ====================================================
one run, six panels            :func:`plot_summary`
replicate bands (median, 5-95%)  :func:`plot_bands`
per-town small multiples       :func:`plot_towns`
town map at a date             :func:`sim.viz.maps.plot_map` (any variable);
                               two dates side by side: :func:`sim.viz.maps.plot_run_map`
observed against simulated     :func:`plot_observed`, :func:`plot_displacement_check`
policy comparison              :func:`plot_policies`
thesis effects with CIs        :func:`plot_effects`
thesis heatmap, zero contour   :func:`plot_heatmap`
sensitivity indices            :func:`plot_sensitivity`
=============================  ====================================================

Colours are the Okabe & Ito (2008) palette; every colour map comes from
:mod:`sim.viz.style` (one per quantity, :func:`sim.viz.style.colour_map`; signed
effects on the blue-grey-vermillion diverging scale), all readable with colour-blind
vision. Time axes show dates when the scenario has a calendar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from sim.analysis.statistics import mean_interval
from sim.analysis.thesis import paired_differences
from sim.scenario.schema import Scenario

if TYPE_CHECKING:
    from sim.analysis.results import RunFolder, SweepFolder

from sim.viz.style import (
    DIVERGING_CMAP,
    INITIAL_STANCE_COLOURS,
    PALETTE,
    PERSON_SHARE_VARS,
    SERIES_COLOURS,
    SHARE_VARS,
    _format_time,
    finish,
    label_of,
    style,
    time_axis,
)


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


# --------------------------------------------------------------------------- helpers


def _time_column(df: pd.DataFrame) -> tuple[str, str]:
    """Name of the time column and its kind ('date' or 'day')."""
    return ("date", "date") if "date" in df.columns else ("day", "day")


def _axis_label(variable: str, ylabel: str | None = None) -> str:
    if ylabel is not None:
        return ylabel
    return label_of(variable)[1] or variable


def _new_axes(nplots: int, ncols: int, panel: tuple[float, float], **kw: Any) -> tuple[plt.Figure, np.ndarray]:
    ncols = max(1, min(ncols, nplots))
    nrows = math.ceil(nplots / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False, **kw)
    for a in axes.ravel()[nplots:]:
        a.set_visible(False)
    return fig, axes


def _pick(df: pd.DataFrame, candidates: Sequence[str], what: str, required: bool = True) -> str | None:
    """The first column of ``df`` among ``candidates`` (case-insensitive)."""
    lower = {c.lower(): c for c in df.columns}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    if required:
        raise KeyError(f"no {what} column (looked for {', '.join(candidates)}; have {', '.join(map(str, df.columns))})")
    return None


def quantile_bands(
    data: pd.DataFrame, variable: str, keys: Sequence[str], quantiles: tuple[float, float] = (0.05, 0.95)
) -> pd.DataFrame:
    """Median and lower/upper quantiles of ``variable`` over replicates, per ``keys``.

    Returns a DataFrame with the keys and columns ``low``, ``median``, ``high``, ``n``.
    """
    g = data.groupby(list(keys), observed=True, sort=True)[variable]
    out = pd.DataFrame(
        {
            "low": g.quantile(quantiles[0]),
            "median": g.median(),
            "high": g.quantile(quantiles[1]),
            "n": g.size(),
        }
    )
    return out.reset_index()


# --------------------------------------------------------------------------- time series with bands


def plot_bands(
    data: pd.DataFrame,
    variables: str | Sequence[str],
    *,
    by: str | None = None,
    order: Sequence[Any] | None = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    ncols: int = 3,
    titles: Sequence[str] | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    colours: dict[Any, str] | None = None,
    save: str | Path | None = None,
) -> plt.Figure:
    """Time series over replicates: the median line and a 5-95% band, one panel per variable.

    Args:
        data: long table with a ``day`` (and, for calendar scenarios, ``date``) column, one
            column per variable and one row per replicate and day (e.g. :func:`sim.analysis.results.stack`
            or :meth:`sim.analysis.results.SweepFolder.series`, whose variable is ``value``).
        variables: column(s) to plot.
        by: column that splits the runs into groups (e.g. ``policy``), one colour each.
        order: order of the groups.
        quantiles: lower and upper quantile of the band.
        ncols: panels per row.
        titles: panel titles (default: the variable names in words).
        ylabel: y-axis label (default: the variable's unit).
        title: figure title.
        colours: colour per group.
        save: file to save the figure to.
    """
    variables = [variables] if isinstance(variables, str) else list(variables)
    tcol, kind = _time_column(data)
    groups: list[Any] = [None]
    if by is not None:
        groups = list(order) if order is not None else list(pd.unique(data[by]))
    n_rep = 1
    if "replicate" in data.columns:
        n_rep = int(data.groupby(by)["replicate"].nunique().max()) if by else int(data["replicate"].nunique())
    with style():
        fig, axes = _new_axes(len(variables), ncols, (4.2, 3.0), sharex=True)
        for k, var in enumerate(variables):
            ax = axes.ravel()[k]
            for gi, group in enumerate(groups):
                sub = data if group is None else data[data[by] == group]
                if sub.empty:
                    continue
                colour = (colours or {}).get(group) or SERIES_COLOURS[gi % len(SERIES_COLOURS)]
                if group is None and len(variables) == 1:
                    colour = PALETTE["blue"]
                b = quantile_bands(sub, var, [tcol], quantiles)
                x = pd.to_datetime(b[tcol]) if kind == "date" else b[tcol]
                ax.fill_between(x, b["low"], b["high"], color=colour, alpha=0.22, lw=0)
                ax.plot(x, b["median"], color=colour, lw=1.6, label=None if group is None else str(group))
            name = label_of(var)[0]
            ax.set_title(titles[k] if titles is not None else name)
            ax.set_ylabel(_axis_label(var, ylabel))
            if var in SHARE_VARS:
                ax.set_ylim(bottom=0)
            _format_time(ax, kind)
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        band = (
            f"median and {quantiles[0] * 100:g}-{quantiles[1] * 100:g}% band of {n_rep} replicate"
            + ("s" if n_rep != 1 else "")
            + (f" per {by}" if by else "")
        )
        if by is not None:
            fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), title=by)
        fig.suptitle((title + "\n" if title else "") + band, fontsize=10)
        fig.set_layout_engine("constrained")
        return finish(fig, save)


def plot_towns(
    towns: pd.DataFrame,
    variable: str = "coop_share",
    *,
    names: Sequence[str] | None = None,
    ncols: int = 6,
    quantiles: tuple[float, float] = (0.05, 0.95),
    ylim: tuple[float, float] | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> plt.Figure:
    """Per-town small multiples of one variable, coloured by the town's initial stance.

    With a ``replicate`` column (several runs stacked by :func:`sim.analysis.results.stack`) each
    panel shows the median and the 5-95% band over replicates.

    Args:
        towns: a run's town table (one row per town and day), or several stacked.
        variable: the town variable to plot (a column of the town table).
        names: towns to show, in this order (default: all, in scenario order).
        ncols: panels per row.
        quantiles: band quantiles when there are replicates.
        ylim: y limits (default: 0-1 for shares, else shared automatic limits).
        title: figure title (default: the variable in words).
        save: file to save the figure to.
    """
    if variable not in towns.columns:
        raise KeyError(f"{variable!r} is not a town variable")
    tcol, kind = _time_column(towns)
    town_str = towns["town"].astype(str)
    if names is None:
        cats = towns["town"].cat.categories if hasattr(towns["town"], "cat") else pd.unique(town_str)
        names = [str(n) for n in cats if n]
    if variable in PERSON_SHARE_VARS and "persons_present" in towns.columns:
        # a share of nobody is undefined: blank it once a town is emptied (e.g. taken by the regime)
        towns = towns.assign(**{variable: towns[variable].where(towns["persons_present"] > 0)})
        town_str = towns["town"].astype(str)
    stance = towns.drop_duplicates("town").set_index(town_str.drop_duplicates())["initial_stance"].astype(str)
    replicates = "replicate" in towns.columns and towns["replicate"].nunique() > 1
    if ylim is None and variable in SHARE_VARS:
        ylim = (0.0, 1.0)
    with style():
        # Shared limits are set by hand: matplotlib's sharex/sharey is quadratic in the panels.
        fig, axes = _new_axes(len(names), ncols, (2.05, 1.55))
        t_all = pd.to_datetime(towns[tcol]) if kind == "date" else towns[tcol]
        if ylim is None:
            v = towns[variable].to_numpy(float)
            pad = 0.05 * (np.nanmax(v) - np.nanmin(v) or 1.0)
            ylim = (min(0.0, float(np.nanmin(v))), float(np.nanmax(v)) + pad)
        ncols_ = axes.shape[1]
        for k, name in enumerate(names):
            ax = axes.ravel()[k]
            sub = towns[town_str == name]
            colour = INITIAL_STANCE_COLOURS.get(stance.get(name, "unknown"), "#777777")
            if replicates:
                b = quantile_bands(sub, variable, [tcol], quantiles)
                x = pd.to_datetime(b[tcol]) if kind == "date" else b[tcol]
                ax.fill_between(x, b["low"], b["high"], color=colour, alpha=0.25, lw=0)
                ax.plot(x, b["median"], color=colour, lw=1.3)
            else:
                x = pd.to_datetime(sub[tcol]) if kind == "date" else sub[tcol]
                ax.plot(x, sub[variable], color=colour, lw=1.3)
            ax.set_title(name, fontsize=8, pad=2)
            ax.tick_params(labelsize=7)
            ax.set_ylim(*ylim)
            ax.set_xlim(t_all.min(), t_all.max())
            _format_time(ax, kind)
            ax.set_xlabel("")
            col = k % ncols_
            if col > 0:
                ax.tick_params(labelleft=False)
            if k + ncols_ < len(names):
                ax.tick_params(labelbottom=False)
        name_, unit = label_of(variable)
        fig.supylabel(unit or variable, fontsize=9)
        fig.supxlabel("date" if kind == "date" else "day", fontsize=9)
        present = [s for s in INITIAL_STANCE_COLOURS if s in set(stance.values)]
        handles = [Line2D([], [], color=INITIAL_STANCE_COLOURS[s], lw=2, label=s) for s in present]
        fig.legend(
            handles=handles,
            loc="outside upper right",
            ncols=len(handles),
            title="initial stance",
            fontsize=7,
            title_fontsize=7,
        )
        extra = " (median and 5-95% band over replicates)" if replicates else ""
        fig.suptitle((title or f"{name_[0].upper()}{name_[1:]} by town") + extra, fontsize=10, x=0.02, ha="left")
        # Fixed margins: a layout engine measures every tick of every panel (slow for 30 panels).
        h = fig.get_figheight()
        fig.subplots_adjust(
            left=0.6 / fig.get_figwidth() + 0.02,
            right=0.99,
            bottom=0.55 / h + 0.02,
            top=1 - 0.75 / h,
            wspace=0.12,
            hspace=0.38,
        )
        return finish(fig, save)


# --------------------------------------------------------------------------- observed against simulated


def plot_observed(observed: pd.DataFrame, *, title: str | None = None, save: str | Path | None = None) -> plt.Figure:
    """Simulated against recorded figures, as the ratio simulated / recorded on a log axis.

    One row per recorded figure (the ``observed.csv`` of a run, :mod:`sim.analysis.observed`): the
    dot is the mean over replicates, the bar their range, the grey band a factor of two
    around the record. Figures used to calibrate free parameters are hollow (they are not
    independent checks). Figures whose ratio is undefined (a zero record) are listed as text.
    """
    from matplotlib.ticker import FixedLocator, NullLocator

    df = observed.reset_index(drop=True)
    with style():
        fig, (ax, tx) = plt.subplots(
            1, 2, figsize=(10.0, 0.6 * len(df) + 1.5), width_ratios=[1.15, 1], layout="constrained"
        )
        ax.axvspan(0.5, 2.0, color="#e8e8e8", lw=0, zorder=0)
        ax.axvline(1.0, color=PALETTE["black"], lw=1)
        ys = np.arange(len(df))[::-1]
        ratios = [0.25, 4.0]
        for y, row in zip(ys, df.itertuples(index=False), strict=True):
            obs, sim_ = float(row.observed), float(row.simulated)
            lo = float(getattr(row, "sim_min", sim_))
            hi = float(getattr(row, "sim_max", sim_))
            calibrated = str(getattr(row, "calibrated", False)).strip().lower() in ("true", "1", "yes")
            if obs > 0 and sim_ > 0:
                r, rlo, rhi = sim_ / obs, max(lo, 1e-12) / obs, max(hi, 1e-12) / obs
                ratios += [r, rlo, rhi]
                ax.plot([rlo, rhi], [y, y], color=PALETTE["blue"], lw=2.5, solid_capstyle="round", zorder=2)
                ax.plot(
                    [r],
                    [y],
                    "o",
                    ms=7,
                    mec=PALETTE["blue"],
                    mfc="white" if calibrated else PALETTE["blue"],
                    mew=1.5,
                    zorder=3,
                )
            check = str(getattr(row, "check", "") or "")
            text = f"model {_num(sim_)} (range {_num(lo)}-{_num(hi)}) vs record {_num(obs)}"
            if np.isnan(sim_):  # e.g. a window the run did not reach: the check says why
                text = f"no model value vs record {_num(obs)}"
            tx.text(
                0.0,
                y,
                text + (f"\n{check}" if check and check != "nan" else ""),
                va="center",
                fontsize=7.5,
                color="#222222",
            )
        ax.set_xscale("log")
        ax.set_xlim(min(ratios) / 1.3, max(ratios) * 1.3)
        ticks = [t for t in (0.1, 0.25, 0.5, 1, 2, 4, 10) if min(ratios) / 1.3 <= t <= max(ratios) * 1.3]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_yticks(ys, [_wrap(str(f), 40) for f in df["figure"]])
        for a in (ax, tx):
            a.set_ylim(-0.7, len(df) - 0.3)
        tx.axis("off")
        ax.set_xlabel("simulated / recorded (log scale)")
        ax.grid(axis="y", visible=False)
        handles = [
            Line2D([], [], ls="", marker="o", mfc=PALETTE["blue"], mec=PALETTE["blue"], label="independent check"),
            Line2D([], [], ls="", marker="o", mfc="white", mec=PALETTE["blue"], label="used in calibration"),
            Line2D([], [], color=PALETTE["blue"], lw=2.5, label="range over replicates"),
            plt.Rectangle((0, 0), 1, 1, color="#e8e8e8", label="within a factor of two"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=4)
        fig.suptitle(title or "Observed against simulated (1 = agreement)", fontsize=10)
        return finish(fig, save)


def _num(v: float) -> str:
    """A number for a label: thousands separators for counts, three digits for shares."""
    if not np.isfinite(v):
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def plot_displacement_check(
    runs: RunFolder | Sequence[RunFolder], *, title: str | None = None, save: str | Path | None = None
) -> plt.Figure:
    """Simulated displacements accumulated over each recorded window, against the record.

    For every ``displacements`` figure of the scenario's ``observed`` block, the simulated
    cumulative displacements from the window's first day are drawn (median and range over
    the runs given) and the recorded total is a diamond at the window's last day.
    """
    runs = [runs] if not isinstance(runs, Sequence) else list(runs)
    run0 = runs[0]
    sc = run0.scenario
    figs = [f for f in sc.observed.figures if f.kind == "displacements"]
    if not figs:
        raise ValueError(f"scenario {sc.name!r} records no displacement figures")
    ts0 = run0.timeseries
    tcol, kind = _time_column(ts0)
    last_day = int(ts0["day"].max())
    with style():
        fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
        ax.plot(pd.to_datetime(ts0[tcol]) if kind == "date" else ts0[tcol], np.zeros(len(ts0)), alpha=0)

        def length(f: Any) -> int:
            return (sc.day_of(f.end) if f.end is not None else last_day) - (
                sc.day_of(f.start) if f.start is not None else 0
            )

        # longest window first, so that shorter windows that start together stay visible on top
        figs = sorted(figs, key=length, reverse=True)
        for i, f in enumerate(figs):
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            first = sc.day_of(f.start) if f.start is not None else 0
            last = min(sc.day_of(f.end) if f.end is not None else last_day, last_day)
            curves = []
            for r in runs:
                ts = r.timeseries
                inside = ts[(ts["day"] >= first) & (ts["day"] <= last)]
                curves.append(inside["displacement_moves"].cumsum().to_numpy())
            arr = np.vstack(curves)
            t = ts0[(ts0["day"] >= first) & (ts0["day"] <= last)][tcol]
            t = pd.to_datetime(t) if kind == "date" else t
            med = np.median(arr, axis=0) / 1000
            if len(runs) > 1:
                ax.fill_between(t, arr.min(axis=0) / 1000, arr.max(axis=0) / 1000, color=colour, alpha=0.2, lw=0)
            ax.plot(
                t, med, color=colour, lw=3.2 - 1.2 * min(i, 1), ls="-" if i == 0 else "--", label=f"model: {f.name}"
            )
            end_t = t.iloc[-1]
            ax.plot(
                [end_t],
                [f.value / 1000],
                marker="D",
                ms=8,
                color=colour,
                mec="black",
                ls="",
                label=f"record: {f.value:,.0f}" + (" (calibrated)" if f.calibrated else " (check)"),
            )
        ax.set_ylabel("displacements since window start (thousand persons)")
        ax.set_ylim(bottom=0)
        _format_time(ax, kind)
        extra = f" (range over {len(runs)} runs)" if len(runs) > 1 else ""
        ax.set_title(title or f"Displacement: model against the record{extra}")
        ax.legend(loc="upper left", fontsize=7)
        return finish(fig, save)


# --------------------------------------------------------------------------- policies


def plot_policies(
    data: pd.DataFrame,
    outcomes: str | Sequence[str],
    *,
    by: str = "policy",
    order: Sequence[Any] | None = None,
    quantiles: tuple[float, float] = (0.05, 0.95),
    ncols: int = 3,
    title: str | None = None,
    save: str | Path | None = None,
) -> plt.Figure:
    """Scalar outcomes per policy: every run as a dot, the median and the 5-95% interval.

    Args:
        data: one row per run with a ``by`` column and the outcome columns (e.g. a sweep's
            results, or :func:`sim.run.outcomes.compute_outcomes` of several runs).
        outcomes: outcome column(s), one panel each.
        by: the column naming the policy (or any treatment).
        order: order of the policies (default: ``none`` first, then as they appear).
        quantiles: interval quantiles.
        ncols: panels per row.
        title: figure title.
        save: file to save the figure to.
    """
    outcomes = [outcomes] if isinstance(outcomes, str) else list(outcomes)
    if order is None:
        seen = [str(v) for v in pd.unique(data[by].astype(str))]
        order = sorted(seen, key=lambda v: (v != "none", seen.index(v)))
    order = [str(o) for o in order]
    values = data[by].astype(str)
    with style():
        fig, axes = _new_axes(len(outcomes), ncols, (0.75 * len(order) + 1.6, 3.4))
        for k, out in enumerate(outcomes):
            ax = axes.ravel()[k]
            for i, pol in enumerate(order):
                v = data.loc[values == pol, out].dropna().to_numpy(float)
                if not len(v):
                    continue
                colour = "#777777" if pol == "none" else SERIES_COLOURS[i % len(SERIES_COLOURS)]
                offsets = np.linspace(-0.18, 0.18, len(v)) if len(v) > 1 else np.zeros(1)
                ax.scatter(i + offsets, np.sort(v), s=9, color=colour, alpha=0.55, lw=0, zorder=2)
                lo, med, hi = np.quantile(v, [quantiles[0], 0.5, quantiles[1]])
                ax.plot([i, i], [lo, hi], color="black", lw=1.4, zorder=3)
                ax.plot([i - 0.28, i + 0.28], [med, med], color="black", lw=2.2, zorder=3)
            name, unit = label_of(out)
            ax.set_title(_wrap(name, 38))
            ax.set_ylabel(unit or out)
            ax.set_xticks(range(len(order)), [o.replace("_", "\n") for o in order], fontsize=7.5)
            ax.set_xlim(-0.6, len(order) - 0.4)
            ax.grid(axis="x", visible=False)
        n = int(data.groupby(values).size().max())
        sub = (
            f"every run a dot; bar: median; line: {quantiles[0] * 100:g}-{quantiles[1] * 100:g}% "
            f"of up to {n} runs per {by}"
        )
        fig.suptitle((title + "\n" if title else "") + sub, fontsize=10)
        fig.set_layout_engine("constrained")
        return finish(fig, save)


# --------------------------------------------------------------------------- thesis


EFFECT_COLUMNS = {
    "estimate": ("mean_diff", "mean_difference", "effect", "diff_mean", "mean", "estimate", "difference"),
    "low": ("ci_low", "ci_lo", "ci95_low", "lower", "low", "ci_lower"),
    "high": ("ci_high", "ci_hi", "ci95_high", "upper", "high", "ci_upper"),
    "outcome": ("outcome", "measure", "variable"),
    "group": ("comparison", "contrast", "variant", "policy", "treatment", "ablation", "mechanism", "switched_off"),
    "verdict": ("verdict",),
}
VERDICT_COLOURS = {"supported": PALETTE["red"], "contradicted": PALETTE["blue"], "inconclusive": "#888888"}
ROLE_COLOURS = {"carries": PALETTE["red"], "opposes": PALETTE["blue"], "no clear role": "#888888"}


def plot_effects(
    effects: pd.DataFrame,
    *,
    estimate: str | None = None,
    low: str | None = None,
    high: str | None = None,
    outcome: str | None = None,
    group: str | None = None,
    verdict: str | None = None,
    outcomes: Sequence[str] | None = None,
    title: str | None = None,
    legend_title: str = "verdict (95% interval)",
    xlabel: str = "difference",
    save: str | Path | None = None,
) -> plt.Figure:
    """Effects with confidence intervals (a forest plot), one panel per outcome.

    Each row of ``effects`` is one effect: a comparison (or a mechanism switched off) on one
    outcome, with its estimate and interval. Points are coloured by verdict (supported:
    vermillion, contradicted: blue, inconclusive: grey) when a verdict column exists. Column
    names are found among the usual ones (``mean_diff``/``ci_low``/``ci_high``/``outcome``/
    ``comparison``/``verdict``...) unless given.

    Args:
        effects: the effects table (e.g. the thesis ``effects.csv``).
        estimate: column of the point estimate.
        low: column of the interval's lower end.
        high: column of the interval's upper end.
        outcome: column naming the outcome (one panel each).
        group: column naming the comparison within a panel (one row each).
        verdict: column with the verdict (or a role: carries / opposes / no clear role).
        outcomes: outcomes to show, in order (default: all).
        title: figure title.
        legend_title: title of the colour legend.
        xlabel: x-axis label (the outcome's unit is added).
        save: file to save the figure to.
    """
    df = effects.copy()
    if group is None and {"treatment", "control"} <= set(df.columns) and "comparison" not in df.columns:
        df["comparison"] = df["treatment"].astype(str) + " - " + df["control"].astype(str)
    est = estimate or _pick(df, EFFECT_COLUMNS["estimate"], "estimate")
    lo_c = low or _pick(df, EFFECT_COLUMNS["low"], "interval low")
    hi_c = high or _pick(df, EFFECT_COLUMNS["high"], "interval high")
    out_c = outcome or _pick(df, EFFECT_COLUMNS["outcome"], "outcome", required=False)
    grp_c = group or _pick(df, EFFECT_COLUMNS["group"], "comparison", required=False)
    ver_c = verdict or _pick(df, EFFECT_COLUMNS["verdict"], "verdict", required=False)
    if out_c is None:
        df["_outcome"] = est
        out_c = "_outcome"
    if grp_c is None:
        df["_group"] = ""
        grp_c = "_group"
    panels = list(outcomes) if outcomes is not None else list(pd.unique(df[out_c]))
    groups = list(pd.unique(df[grp_c].astype(str)))
    groups.sort(key=lambda g: (not g.startswith("resisting_towns - none"), g == "all"))
    ncols = 1 if len(panels) <= 4 else 2
    nrows = math.ceil(len(panels) / ncols)
    row_h = max(len(groups), 1) * 0.26 + 0.75
    with style():
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(7.6 if ncols == 1 else 12.5, nrows * row_h + 1.0),
            squeeze=False,
            layout="constrained",
        )
        for a in axes.ravel()[len(panels) :]:
            a.set_visible(False)
        for k, name in enumerate(panels):
            ax = axes.ravel()[k]
            sub = df[df[out_c] == name].set_index(df.loc[df[out_c] == name, grp_c].astype(str)).reindex(groups)
            ys = np.arange(len(groups))[::-1]
            for y, (_, row) in zip(ys, sub.iterrows(), strict=True):
                if pd.isna(row[est]):
                    continue
                v = str(row[ver_c]).lower() if ver_c is not None else ""
                colour = next((c for key, c in {**VERDICT_COLOURS, **ROLE_COLOURS}.items() if key in v), "black")
                ax.plot([row[lo_c], row[hi_c]], [y, y], color=colour, lw=2, solid_capstyle="round")
                ax.plot([row[est]], [y], "o", color=colour, ms=5.5, mec="white", mew=0.6)
            ax.axvline(0, color="black", lw=0.9)
            labels = [_wrap(str(g).replace("_", " "), 34) for g in groups]
            ax.set_yticks(ys, labels if k % ncols == 0 else [""] * len(groups), fontsize=7.5)
            ax.set_ylim(-0.6, len(groups) - 0.4)
            ax.grid(axis="y", visible=False)
            title_, unit = label_of(str(name))
            ax.set_title(f"{title_}", fontsize=8.5, loc="left")
            ax.set_xlabel(f"{xlabel} ({unit})" if unit else xlabel, fontsize=8)
            span = np.nanmax(np.abs(sub[[lo_c, hi_c]].to_numpy(float))) if sub[[lo_c, hi_c]].notna().any().any() else 1
            if not span > 0:  # every interval is exactly zero (e.g. a policy against itself)
                span = 1e-3
            ax.set_xlim(-1.08 * span, 1.08 * span)
        if ver_c is not None:
            present = {str(v).lower() for v in df[ver_c].dropna()}
            handles = [
                Line2D([], [], color=c, marker="o", lw=2, label=key)
                for key, c in {**VERDICT_COLOURS, **ROLE_COLOURS}.items()
                if any(key in p for p in present)
            ]
            if any(not any(key in p for key in {**VERDICT_COLOURS, **ROLE_COLOURS}) for p in present):
                handles.append(Line2D([], [], color="black", marker="o", lw=2, label="no prediction"))
            fig.legend(handles=handles, loc="outside lower center", ncols=3, title=legend_title)
        fig.suptitle(title or "Effects with 95% confidence intervals (0: no effect)", fontsize=10)
        return finish(fig, save)


def plot_heatmap(
    data: pd.DataFrame,
    x: str,
    y: str,
    value: str,
    *,
    inconclusive: str | None = None,
    low: str | None = None,
    high: str | None = None,
    annotate: bool | None = None,
    cmap: Any = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
    colorbar_label: str | None = None,
    save: str | Path | None = None,
) -> plt.Figure:
    """Effect over a two-parameter grid, on a diverging scale centred at zero, with the zero contour.

    Cells where the effect is inconclusive (its interval includes zero) are hatched.

    Args:
        data: one row per grid point (repeated rows are averaged) with columns ``x``, ``y``, ``value``.
        x: parameter on the horizontal axis.
        y: parameter on the vertical axis.
        value: the effect.
        inconclusive: boolean column (True: the interval includes zero).
        low: interval low column (used when ``inconclusive`` is not given).
        high: interval high column.
        annotate: write the value in each cell (default: when the grid has at most 12 x 12 cells).
        cmap: colour map (default: blue-grey-vermillion).
        ax: axis to draw on.
        title: axis title.
        colorbar_label: label of the colour bar (default: the value's name and unit).
        save: file to save the figure to.
    """
    df = data.copy()
    if inconclusive is None and low is not None and high is not None:
        df["_inconclusive"] = (df[low] <= 0) & (df[high] >= 0)
        inconclusive = "_inconclusive"
    grid = df.pivot_table(index=y, columns=x, values=value, aggfunc="mean").sort_index().sort_index(axis=1)
    xs, ys = grid.columns.to_numpy(), grid.index.to_numpy()
    z = grid.to_numpy(float)
    xi, yi = np.arange(len(xs)), np.arange(len(ys))
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    bound = bound or 1.0
    with style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(6.0, 4.6), layout="constrained")
        else:
            fig = ax.figure
        ax.grid(False)
        mesh = ax.pcolormesh(xi, yi, z, cmap=cmap or DIVERGING_CMAP, norm=Normalize(-bound, bound), shading="nearest")
        if len(xs) > 1 and len(ys) > 1 and np.nanmin(z) < 0 < np.nanmax(z):
            cs = ax.contour(xi, yi, z, levels=[0.0], colors="black", linewidths=1.6)
            ax.clabel(cs, fmt={0.0: "0"}, fontsize=8)
        if inconclusive is not None:
            inc = df.pivot_table(index=y, columns=x, values=inconclusive, aggfunc="max").reindex(
                index=grid.index, columns=grid.columns
            )
            for (r, c), flag in np.ndenumerate(inc.to_numpy()):
                if bool(flag) and not pd.isna(flag):
                    ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///", ec="#555555", lw=0))
        if annotate is None:
            annotate = len(xs) <= 12 and len(ys) <= 12
        if annotate:
            for (r, c), v in np.ndenumerate(z):
                if np.isfinite(v):
                    ax.text(
                        c,
                        r,
                        f"{v:+.3f}" if bound < 10 else f"{v:+,.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if abs(v) > 0.6 * bound else "black",
                    )
        ax.set_xticks(xi, [_tick(v) for v in xs])
        ax.set_yticks(yi, [_tick(v) for v in ys])
        ax.set_xlabel(_param_label(x))
        ax.set_ylabel(_param_label(y))
        name, unit = label_of(value)
        cbar = fig.colorbar(mesh, ax=ax, shrink=0.85)
        cbar.set_label(_wrap(colorbar_label or (f"{name} ({unit})" if unit else name), 45))
        sub = "black line: zero effect" + ("; hatched: 95% interval includes zero" if inconclusive else "")
        ax.set_title((title + "\n" if title else "") + sub, fontsize=9)
        return finish(fig, save)


def _tick(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:g}"
    return str(v)


def _param_label(name: str) -> str:
    """A parameter key path in words: ``mechanisms.rally`` -> ``rally [mechanisms.rally]``."""
    head, _, leaf = name.rpartition(".")
    return f"{leaf.replace('_', ' ')} [{name}]" if head else name.replace("_", " ")


# --------------------------------------------------------------------------- sensitivity


def plot_sensitivity(
    indices: pd.DataFrame,
    *,
    parameter: str | None = None,
    outcome: str | None = None,
    ncols: int = 2,
    title: str | None = None,
    save: str | Path | None = None,
) -> plt.Figure:
    """Sensitivity indices as horizontal bars with confidence intervals, one panel per outcome.

    Sobol tables (``S1``, ``ST`` and their ``_conf``) show first-order and total indices;
    Morris tables (``mu_star``, ``sigma``, ``mu_star_conf``) show mu* and sigma. Parameters
    are sorted by the total index (or mu*) of the first outcome.
    """
    df = indices.copy()
    par = parameter or _pick(df, ("parameter", "name", "param", "factor", "names"), "parameter")
    out = outcome or _pick(df, ("outcome", "output", "target"), "outcome", required=False)
    if out is None:
        df["_outcome"] = ""
        out = "_outcome"
    sobol = _pick(df, ("ST",), "ST", required=False) is not None
    if sobol:
        bars = [
            (_pick(df, ("S1",), "S1"), _pick(df, ("S1_conf",), "S1_conf", required=False), "first order S1"),
            (_pick(df, ("ST",), "ST"), _pick(df, ("ST_conf",), "ST_conf", required=False), "total ST"),
        ]
        xlabel = "Sobol index (share of output variance)"
    else:
        mu = _pick(df, ("mu_star", "mu*", "mustar"), "mu_star")
        bars = [
            (mu, _pick(df, ("mu_star_conf",), "mu_star_conf", required=False), "mu* (mean |effect|)"),
            (_pick(df, ("sigma",), "sigma"), None, "sigma (interactions, non-linearity)"),
        ]
        xlabel = "elementary effect (outcome units per parameter range)"
    panels = list(pd.unique(df[out]))
    key = bars[1][0] if sobol else bars[0][0]
    first = df[df[out] == panels[0]].set_index(par)[key].sort_values()
    params = list(first.index)
    with style():
        fig, axes = _new_axes(len(panels), ncols, (4.4, 0.32 * len(params) + 1.3))
        for k, name in enumerate(panels):
            ax = axes.ravel()[k]
            sub = df[df[out] == name].set_index(par).reindex(params)
            yy = np.arange(len(params))
            h = 0.38
            for j, (col, conf, lab) in enumerate(bars):
                colour = [PALETTE["sky"], PALETTE["blue"]][j]
                err = sub[conf].to_numpy(float) if conf is not None else None
                ax.barh(
                    yy + (j - 0.5) * h,
                    sub[col].to_numpy(float),
                    height=h,
                    color=colour,
                    label=lab,
                    xerr=err,
                    error_kw={"lw": 0.8, "capsize": 1.5, "ecolor": "#333333"},
                )
            ax.set_yticks(yy, [_param_label(str(p)) for p in params], fontsize=7.5)
            ax.axvline(0, color="black", lw=0.7)
            ax.grid(axis="y", visible=False)
            ax.set_title(_wrap(label_of(str(name))[0], 44) if name else "", fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2)
        fig.suptitle(
            title
            or (
                "Sobol sensitivity indices (bars: 95% confidence)"
                if sobol
                else "Morris screening (bars: 95% confidence of mu*)"
            ),
            fontsize=10,
        )
        fig.set_layout_engine("constrained")
        return finish(fig, save)


# --------------------------------------------------------------------------- standard sets


def _stem(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


def plot_parameter_effects(
    sweep: SweepFolder, outcomes: Sequence[str] | None = None, *, save: str | Path | None = None
) -> plt.Figure:
    """Each outcome against each varied parameter: runs as dots, the mean per level as a line.

    Rows are outcomes, columns parameters; the line joins the means of the runs at each
    parameter value (binned into 8 quantile bins for a continuous design).
    """
    ok = sweep.ok
    outcomes = list(outcomes or sweep.outcomes)
    params = sweep.parameters
    with style():
        fig, axes = plt.subplots(
            len(outcomes),
            len(params),
            figsize=(2.5 * len(params) + 0.6, 2.1 * len(outcomes) + 0.6),
            squeeze=False,
            sharey="row",
        )
        for i, out in enumerate(outcomes):
            for j, par in enumerate(params):
                ax = axes[i, j]
                v = ok[par]
                if pd.api.types.is_numeric_dtype(v):
                    xv = v.to_numpy(float)
                    ax.scatter(xv, ok[out], s=6, color=PALETTE["blue"], alpha=0.35, lw=0)
                    levels = np.unique(xv)
                    if len(levels) <= 12:
                        m = ok.groupby(par)[out].mean()
                        ax.plot(
                            m.index.to_numpy(float), m.to_numpy(float), color=PALETTE["red"], lw=1.6, marker="o", ms=3
                        )
                    else:
                        bins = pd.qcut(v, 8, duplicates="drop")
                        m = ok.groupby(bins, observed=True).agg(xm=(par, "mean"), ym=(out, "mean"))
                        ax.plot(m["xm"], m["ym"], color=PALETTE["red"], lw=1.6, marker="o", ms=3)
                else:
                    cats = list(pd.unique(v.astype(str)))
                    xv = v.astype(str).map({c: k for k, c in enumerate(cats)}).to_numpy(float)
                    ax.scatter(xv, ok[out], s=6, color=PALETTE["blue"], alpha=0.35, lw=0)
                    m = ok.groupby(v.astype(str))[out].mean().reindex(cats)
                    ax.plot(range(len(cats)), m.to_numpy(float), color=PALETTE["red"], lw=0, marker="_", ms=18, mew=2)
                    ax.set_xticks(range(len(cats)), [c.replace("_", "\n") for c in cats], fontsize=7)
                if i == len(outcomes) - 1:
                    ax.set_xlabel(_param_label(par), fontsize=8)
                if j == 0:
                    title, unit = label_of(out)
                    ax.set_ylabel(_wrap(f"{title} ({unit})" if unit else title, 30), fontsize=7.5)
                ax.tick_params(labelsize=7)
        handles = [
            Line2D([], [], ls="", marker="o", color=PALETTE["blue"], alpha=0.5, label="one run"),
            Line2D([], [], color=PALETTE["red"], marker="o", ms=3, label="mean per level"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=2)
        fig.suptitle(f"Sweep {sweep.name}: outcomes against each parameter ({len(ok)} runs)", fontsize=10)
        fig.set_layout_engine("constrained")
        return finish(fig, save)


def sweep_effect_grid(sweep: SweepFolder, outcome: str) -> tuple[pd.DataFrame, str, str, str]:
    """Per grid point of the first two numeric parameters: the outcome, or the paired policy effect.

    When a text parameter (the policy) has the value ``none``, the effect is the mean over
    replicates of (outcome under the other value - outcome under ``none``), paired by
    replicate and seed (common random numbers) by :func:`sim.analysis.thesis.paired_differences`
    (which refuses pairs that do not share a seed), with the BCa bootstrap 95% interval of
    :func:`sim.analysis.statistics.mean_interval`. Returns the table and
    the names of the x, y and value columns.
    """
    ok = sweep.ok
    numeric = [c for c in sweep.parameters if pd.api.types.is_numeric_dtype(ok[c]) and ok[c].nunique() > 1]
    x, y = numeric[0], numeric[1]
    factor = [c for c in sweep.parameters if c not in (x, y) and ok[c].nunique() > 1]
    policy = next((c for c in factor if "none" in set(ok[c].astype(str))), None)
    others = [c for c in factor if c != policy]
    if policy is None:
        values = ok[[x, y, *others, outcome]].rename(columns={outcome: "d"})
    else:
        treated = next(v for v in pd.unique(ok[policy].astype(str)) if v != "none")
        pairs = paired_differences(
            ok.assign(**{policy: ok[policy].astype(str)}), treated, "none", [outcome], by=[x, y, *others], factor=policy
        )
        values = pairs.rename(columns={outcome: "d"}).dropna(subset=["d"])
        outcome = f"{outcome}: {treated} - none"
    rows = []
    for key, g in values.groupby([x, y, *others], sort=True):
        d = g["d"].to_numpy(dtype=float)
        # the project's one interval method for paired effects (BCa bootstrap of the mean)
        lo, hi = mean_interval(d) if len(d) > 1 else (-np.inf, np.inf)
        rows.append(
            {**dict(zip([x, y, *others], key, strict=True)), "value": d.mean(), "n": len(d), "low": lo, "high": hi}
        )
    table = pd.DataFrame(rows)
    table["inconclusive"] = (table["low"] <= 0) & (table["high"] >= 0)
    return table, x, y, outcome


def plot_sweep_heatmap(sweep: SweepFolder, outcome: str, *, save: str | Path | None = None) -> plt.Figure:
    """Heatmap of an outcome (or its paired policy effect) over the first two numeric parameters."""
    table, x, y, label = sweep_effect_grid(sweep, outcome)
    name, unit = label_of(outcome)
    effect = ":" in label and label.endswith("- none")
    cb = f"{'effect on ' if effect else ''}{name} ({unit})" if unit else name
    title = f"{label.split(': ', 1)[1]}" if effect else name
    return plot_heatmap(
        table,
        x,
        y,
        "value",
        inconclusive="inconclusive",
        title=f"Sweep {sweep.name}: {title}",
        colorbar_label=cb,
        save=save,
    )


def plot_thesis_heatmap(grid: pd.DataFrame, *, save: str | Path | None = None) -> plt.Figure:
    """The thesis heatmap from its CSV table, one panel per outcome.

    The two parameters are the numeric columns that are not the estimate, its interval,
    counts or signs; cells whose interval includes zero are hatched.
    """
    est = _pick(grid, EFFECT_COLUMNS["estimate"], "estimate")
    lo = _pick(grid, EFFECT_COLUMNS["low"], "interval low", required=False)
    hi = _pick(grid, EFFECT_COLUMNS["high"], "interval high", required=False)
    skip = {est, lo, hi, "n", "pairs", "share_positive", "p_positive", "replicates", "sd", "se", "predicted_sign"}
    params = [
        c for c in grid.columns if c not in skip and pd.api.types.is_numeric_dtype(grid[c]) and grid[c].nunique() > 1
    ]
    if len(params) < 2:
        raise ValueError(f"the heatmap table needs two parameter columns (have {list(grid.columns)})")
    out_c = _pick(grid, EFFECT_COLUMNS["outcome"], "outcome", required=False)
    outcomes = list(pd.unique(grid[out_c])) if out_c else [None]
    with style():
        fig, axes = plt.subplots(
            1, len(outcomes), figsize=(5.6 * len(outcomes), 4.6), squeeze=False, layout="constrained"
        )
        for ax, name in zip(axes.ravel(), outcomes, strict=True):
            sub = grid if name is None else grid[grid[out_c] == name]
            title, unit = label_of(str(name or est))
            plot_heatmap(
                sub,
                params[0],
                params[1],
                est,
                low=lo,
                high=hi,
                ax=ax,
                title=_wrap(title, 50),
                colorbar_label=f"effect ({unit})" if unit else "effect",
            )
        fig.suptitle("Where the thesis holds: effect of strikes on resisting towns against none", fontsize=10)
        return finish(fig, save)


def plot_ablation(ablation: pd.DataFrame, *, save: str | Path | None = None) -> plt.Figure:
    """Mechanism breakdown: how much of the headline effect each mechanism carries.

    For each mechanism switched off in turn, the change in the headline effect
    (effect with every mechanism minus effect without this one, paired by replicate) with
    its 95% interval: positive (vermillion) means the mechanism carries the effect,
    negative (blue) that it opposes it. Reads the thesis ``ablation.csv``.
    """
    df = ablation
    if "change_when_off" in df.columns:
        df = df[df["change_when_off"].notna()]
        return plot_effects(
            df,
            estimate="change_when_off",
            low="change_ci_low",
            high="change_ci_high",
            group="mechanism_off" if "mechanism_off" in df.columns else None,
            verdict="role" if "role" in df.columns else None,
            title="Mechanism breakdown: change in the headline effect when each mechanism is switched off",
            legend_title="role of the mechanism (95% interval)",
            xlabel="effect with it - effect without it",
            save=save,
        )
    return plot_effects(df, title="Headline effect with each mechanism switched off", save=save)

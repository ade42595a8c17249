"""Observed versus simulated: the run's figures beside the recorded ones.

Every simulated value is computed from the data a run collected (its time
series, town table and events), never typed in. A scenario's ``observed`` block
lists the recorded figures (see :class:`sim.scenario.schema.ObservedFigure`); each is
evaluated on ``observed.replicates`` runs: the run itself plus runs with seeds
derived from its seed by the package's one seed derivation
(``derive_seed(seed, "observed", "replicate", i)``, :mod:`sim.scenario.seeds`), so the
table is reproducible from the run's seed alone. The table reports the mean, minimum and
maximum over replicates, the recorded value, their ratio and the source, and
says whether the figure was used to calibrate free parameters.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

# The simulated value of one figure in one run (figure_value and its helpers) is computed in
# sim.run.record, below the experiments layer, so calibration and this table read the same rule.
from sim.run.record import (
    council_independent,
    figure_value,
    hosted_displaced,
    killed,
    protest_level,
    protest_present,
    town_mean,
    window_days,
)
from sim.run.record import figure_arrival_share as arrival_share
from sim.run.record import figure_displacements as displacements
from sim.scenario.loader import with_values
from sim.scenario.schema import ObservedFigure, Scenario
from sim.scenario.seeds import derive_seed

if TYPE_CHECKING:
    from sim.run.simulate import RunResult

COLUMNS = (
    "figure",
    "kind",
    "simulated",
    "sim_min",
    "sim_max",
    "replicates",
    "observed",
    "comparison",
    "ratio",
    "check",
    "calibrated",
    "role",
    "window",
    "towns",
    "source",
    "note",
)

NOT_REACHED = "window not reached"
"""The ``check`` of a figure whose window ends after the run's last day (no value, no ratio)."""

Frames = dict[str, pd.DataFrame]
Runner = Callable[[Scenario, int], Frames]


__all__ = [
    "arrival_share",
    "council_independent",
    "displacements",
    "figure_value",
    "hosted_displaced",
    "killed",
    "protest_level",
    "protest_present",
    "town_mean",
    "window_days",
]


# --------------------------------------------------------------------------- replicates


def replicate_seeds(seed: int, replicates: int) -> list[int]:
    """The run's own seed, then ``derive_seed(seed, "observed", "replicate", i)`` for i = 1 .. replicates - 1."""
    return [int(seed)] + [derive_seed(seed, "observed", "replicate", i) for i in range(1, replicates)]


def simulate_frames(scenario: Scenario, seed: int) -> Frames:
    """Run one replicate without Mesa household agents (not needed for the comparison)."""
    from sim.run.simulate import simulate

    return simulate(scenario, seed, household_agents=False).frames


def replicate_scenario(scenario: Scenario) -> Scenario:
    """The scenario the extra replicates run: the same, at ``observed.sample_fraction`` if set."""
    frac = scenario.observed.sample_fraction
    if frac is None or frac == scenario.households.sample_fraction:
        return scenario
    return with_values(scenario, {"households.sample_fraction": frac}, source="observed.sample_fraction")


def replicate_frames(
    result: RunResult, replicates: int | None = None, runner: Runner = simulate_frames
) -> tuple[list[Frames], list[int]]:
    """Frames of every replicate: the run itself first, then the spawned-seed runs."""
    n = result.scenario.observed.replicates if replicates is None else int(replicates)
    seeds = replicate_seeds(result.seed, n)
    extra_scenario = replicate_scenario(result.scenario)
    frames = [result.frames] + [runner(extra_scenario, s) for s in seeds[1:]]
    return frames, seeds


# --------------------------------------------------------------------------- the table


def _check(fig: ObservedFigure, mean: float, lo: float, hi: float) -> str:
    if math.isnan(mean):
        return "no data"
    if fig.range is not None and fig.comparison == "equal":
        inside = fig.range[0] <= mean <= fig.range[1]
        return "mean within recorded range" if inside else "mean outside recorded range"
    if fig.comparison == "at_least":
        return "met" if mean >= fig.value else "not met"
    if fig.comparison == "at_most":
        return "met" if mean <= fig.value else "not met"
    return "record within model range" if lo <= fig.value <= hi else "record outside model range"


def _day_text(scenario: Scenario, day: int) -> str:
    d = scenario.date_of(day)
    return str(d) if d is not None else f"day {day}"


def _window_text(fig: ObservedFigure, scenario: Scenario, days_run: int) -> str:
    if fig.kind == "council_independent":
        return f"end ({_day_text(scenario, days_run - 1)})"
    first = scenario.day_of(fig.start) if fig.start is not None else 0
    last = scenario.day_of(fig.end) if fig.end is not None else days_run - 1
    a, b = scenario.date_of(first), scenario.date_of(last)
    return f"{a} .. {b}" if a is not None else f"day {first} .. {last}"


def observed_table(scenario: Scenario, replicate_data: Sequence[Frames]) -> pd.DataFrame:
    """One row per recorded figure: model mean / min / max over replicates against the record."""
    rows: list[dict[str, Any]] = []
    days_run = int(replicate_data[0]["timeseries"]["day"].max()) + 1
    for fig in scenario.observed.figures:
        _, _, clipped = window_days(fig, scenario, days_run)
        if clipped:  # a run shorter than the window: a partial sum is no comparison
            values = np.array([], dtype=float)
            check, note = NOT_REACHED, f"the run ends on {_day_text(scenario, days_run - 1)}, before the window ends"
        else:
            values = np.array([figure_value(fig, scenario, f) for f in replicate_data], dtype=float)
            check, note = "", ""
        ok = values[~np.isnan(values)]
        mean = float(ok.mean()) if len(ok) else math.nan
        lo = float(ok.min()) if len(ok) else math.nan
        hi = float(ok.max()) if len(ok) else math.nan
        rows.append(
            {
                "figure": fig.name,
                "kind": fig.kind,
                "simulated": mean,
                "sim_min": lo,
                "sim_max": hi,
                "replicates": len(replicate_data),
                "observed": fig.value,
                "comparison": fig.comparison,
                "ratio": mean / fig.value if fig.value else math.nan,
                "check": check or _check(fig, mean, lo, hi),
                "calibrated": "yes" if fig.calibrated else "no",
                "role": fig.role,
                "window": _window_text(fig, scenario, days_run),
                "towns": ", ".join(fig.towns),
                "source": fig.source,
                "note": "; ".join(t for t in (fig.note, note) if t),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def compare(
    result: RunResult, replicates: int | None = None, runner: Runner = simulate_frames
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Run the replicates of ``result`` and build its observed-versus-simulated table.

    Returns the table and manifest entries (replicate seeds, their scale and wall time).
    """
    t0 = time.perf_counter()
    data, seeds = replicate_frames(result, replicates, runner)
    table = observed_table(result.scenario, data)
    info = {
        "observed": {
            "replicate_seeds": seeds,
            "replicate_sample_fraction": replicate_scenario(result.scenario).households.sample_fraction,
            "wall_time_s": round(time.perf_counter() - t0, 3),
        }
    }
    return table, info


def write_observed(result: RunResult, folder: Path) -> dict[str, Any]:
    """Write ``observed.csv`` into a run folder when the scenario has recorded figures."""
    if not result.scenario.observed.figures:
        return {}
    table, info = compare(result)
    table.to_csv(Path(folder) / "observed.csv", index=False)
    return info

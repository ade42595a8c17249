"""Scalar outcomes of a run: the named summaries that sweeps and the thesis test keep.

An outcome is ``<series>:<reducer>``: a column of the governorate time series
(``sim.model.collect.GOV_VARS``) reduced to one number by ``final`` (last day),
``mean`` (mean over the last ``window`` days), ``max``, ``min``, ``total``
(sum over the run) or ``change`` (last day minus first day); the per-group and
per-controller columns (``alignment:<group>``, ``fighters:<group>``,
``persons_under:<controller>``) reduce the same way. Shorthand names for the
outcomes the project reports are in :data:`STANDARD_OUTCOMES`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from sim.model.collect import GOV_VARS

REDUCERS = ("final", "mean", "max", "min", "total", "change")
#: Prefixes of the per-group and per-controller columns of the time series.
SERIES_PREFIXES = ("alignment:", "fighters:", "persons_under:")

STANDARD_OUTCOMES: dict[str, str] = {
    "coop_resisting_final": "coop_share_resisting:final",
    "coop_resisting_mean": "coop_share_resisting:mean",
    "coop_resisting_home_final": "coop_share_resisting_home:final",
    "coop_resisting_home_mean": "coop_share_resisting_home:mean",
    "coop_all_final": "coop_share:final",
    "coop_all_mean": "coop_share:mean",
    "resist_resisting_final": "resist_share_resisting:final",
    "protest_resisting_mean": "protest_share_resisting:mean",
    "protest_all_mean": "protest_share:mean",
    "hts_fighters_final": "hts_fighters:final",
    "hts_recruits_final": "hts_recruits_cum:final",
    "rival_alignment_final": "rival_alignment_mean:final",
    "rival_alignment_window": "rival_alignment_mean:mean",
    "under_hts_final": "persons_under_hts_share:final",
    "under_hts_mean": "persons_under_hts_share:mean",
    "towns_rival_held_final": "towns_rival_held:final",
    "control_changes_total": "control_changes_cum:final",
    "rival_fighters_final": "rival_fighters:final",
    "displaced_final": "displaced_persons:final",
    "displacements_total": "displacement_moves_cum:final",
    "killed_total": "killed_cum:final",
    "councils_independent_final": "councils_independent:final",
}


class OutcomeError(ValueError):
    """An outcome name that does not exist."""


def resolve(name: str) -> tuple[str, str]:
    """``(series, reducer)`` of an outcome name (standard shorthand or ``series:reducer``)."""
    spec = STANDARD_OUTCOMES.get(name, name)
    series, _, reducer = spec.partition(":")
    reducer = reducer or "final"
    valid_series = set(GOV_VARS)
    if series not in valid_series and not series.startswith(SERIES_PREFIXES):
        import difflib

        hint = difflib.get_close_matches(series, [*STANDARD_OUTCOMES, *GOV_VARS], n=1)
        tip = f"; did you mean {hint[0]!r}?" if hint else ""
        raise OutcomeError(f"unknown outcome {name!r}{tip}")
    if reducer not in REDUCERS:
        raise OutcomeError(f"unknown reducer {reducer!r} in {name!r} (use one of {', '.join(REDUCERS)})")
    return series, reducer


def reduce_series(values: np.ndarray, reducer: str, window: int) -> float:
    """Reduce a daily series to one number."""
    if len(values) == 0:
        return float("nan")
    if reducer == "final":
        return float(values[-1])
    if reducer == "mean":
        return float(np.mean(values[-window:]))
    if reducer == "max":
        return float(np.max(values))
    if reducer == "min":
        return float(np.min(values))
    if reducer == "total":
        return float(np.sum(values))
    return float(values[-1] - values[0])


def compute_outcomes(timeseries: pd.DataFrame, names: Iterable[str], window: int = 30) -> dict[str, float]:
    """Named scalar outcomes of one run's governorate time series."""
    out: dict[str, float] = {}
    for name in names:
        series, reducer = resolve(name)
        out[name] = reduce_series(timeseries[series].to_numpy(dtype=float), reducer, window)
    return out

"""The posterior thesis experiment: the paired policy comparisons on parameter sets drawn from a
stored posterior (and from the prior).

Each draw is a variant of parameter overrides in one sweep over (draw, policy); every policy of
a draw runs with one seed of its own (common random numbers within the draw, a seed per draw),
so every draw gives one paired difference per comparison (:mod:`sim.experiments.comparisons`).
The sweeps are resumable (``<out>/runs/posterior``, ``<out>/runs/prior``); the probability tables
and the report are :mod:`sim.analysis.calibration`'s.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.experiments.comparisons import OUTCOMES, POLICY, policies
from sim.experiments.engine import make_engine
from sim.experiments.inference.folder import StoredCalibration, load_calibration_folder
from sim.experiments.inference.posterior import draw_posterior
from sim.experiments.inference.priors import draw_prior
from sim.scenario.seeds import derive_seed

#: Where the draws come from, in report order.
SOURCES = ("posterior", "prior")


def draw_task(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Engine model function of the posterior thesis: one draw under one policy.

    The run's seed is derived from the replicate seed and the draw's name, so every draw has seeds
    of its own while the policies of one draw share them (common random numbers within the draw).
    """
    from sim.experiments.tasks import simulation

    label = str(task["params"].get("draw", ""))
    return simulation({**task, "seed": derive_seed(int(task["seed"]), "posterior thesis", "draw", label)}, context)


def draws_spec(
    name: str,
    scenario: Path,
    draws: pd.DataFrame,
    *,
    sample_fraction: float,
    days: int | None,
    root_seed: int,
    policies: list[str],
    window: int,
    overrides: list[str] | None = None,
):
    """A sweep over (draw, policy): each draw a variant of parameter overrides; seeds per draw.
    ``overrides`` (``--set``) apply to every run, under the draws' own values."""
    from sim.experiments.spec import spec_from_dict

    variants = {f"d{i:04d}": {k: float(v) for k, v in r.items()} for i, r in enumerate(draws.to_dict("records"))}
    spec: dict[str, Any] = {
        "name": name,
        "scenario": str(Path(scenario).resolve()),
        "set": [*(overrides or []), f"households.sample_fraction={sample_fraction}"],
        "root_seed": root_seed,
        "replicates": 1,
        "seeds": "common",
        "parameters": {"draw": {"variants": variants}, POLICY: {"values": policies}},
        "outcomes": list(OUTCOMES),
        "window": window,
        "batch_size": 20,
    }
    if days is not None:
        spec["days"] = days
    # built as a 'sim' sweep (the base scenario is loaded and the overrides checked), then run by
    # draw_task, which gives every draw seeds of its own
    return dataclasses.replace(spec_from_dict(spec), model=f"{__name__}:draw_task")


@dataclass
class PosteriorRuns:
    """The runs of a posterior thesis: one sweep folder per source of draws."""

    folder: Path
    stored: StoredCalibration
    sweeps: dict[str, Path]
    policies: list[str]
    sample_fraction: float
    days: int | None
    seconds: float
    overrides: list[str] = dataclasses.field(default_factory=list)


def run_posterior_draws(
    scenario: str | Path,
    calibration: str | Path,
    *,
    draws: int = 200,
    out: str | Path | None = None,
    root_seed: int = 20171113,
    sample_fraction: float | None = None,
    days: int | None = None,
    with_prior: bool = True,
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
    overrides: list[str] | None = None,
) -> PosteriorRuns:
    """Run every policy on ``draws`` posterior (and prior) draws of a stored calibration; ``overrides``
    (``--set``, e.g. a structural assumption the calibration held fixed) apply to every run.

    Raises:
        CalibrationFolderError: the calibration folder cannot be read (before anything runs).
    """
    from sim.experiments.sweep import run_sweep
    from sim.scenario.loader import load_scenario

    stored = load_calibration_folder(calibration)
    sc = load_scenario(scenario, overrides).scenario
    folder = Path(out) if out is not None else Path(calibration) / "thesis"
    frac = sample_fraction if sample_fraction is not None else float(stored.manifest["sample_fraction"])
    run_days = days if days is not None else stored.manifest.get("days")
    pols = policies(bool(sc.air_campaign.calendar))
    t0 = time.perf_counter()
    independent = stored.manifest.get("method") == "npe"  # independent samples: draw distinct ones
    sets = {
        "posterior": draw_posterior(
            stored.posterior, stored.priors, draws, root_seed, "posterior thesis", replace=not independent
        )
    }
    if with_prior:
        sets["prior"] = draw_prior(stored.priors, draws, root_seed, "posterior thesis")
    engine = make_engine(workers, scheduler)
    sweeps = {}
    try:
        for source, d in sets.items():
            spec = draws_spec(
                source,
                Path(scenario),
                d,
                sample_fraction=frac,
                days=run_days,
                root_seed=root_seed,
                policies=pols,
                window=sc.output.summary_window_days,
                overrides=overrides,
            )
            summary = run_sweep(spec, folder=folder / "runs" / source, engine=engine, progress=progress)
            sweeps[source] = summary.folder
    finally:
        engine.close()
    return PosteriorRuns(folder, stored, sweeps, pols, frac, run_days, time.perf_counter() - t0, list(overrides or []))

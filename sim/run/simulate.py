"""Simulate one scenario and store the run.

Data flows one way: scenario -> :func:`simulate` -> :class:`SimulationResult` (plain
DataFrames and a manifest) -> :func:`save_run` (a run folder, atomically). Nothing
here reaches back into the model after the run, and nothing here draws: figures
are added by :func:`sim.viz.figures.write_run_folder`. Workers of a sweep call
:func:`simulate` with parameters and a seed and return plain data.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.model.model import AllegianceModel
from sim.run.outcomes import STANDARD_OUTCOMES, OutcomeError, compute_outcomes
from sim.run.outcomes import resolve as resolve_outcome
from sim.run.provenance import stamp
from sim.run.store import new_run_id, run_folder, write_run
from sim.scenario.loader import LoadedScenario, ScenarioError, config_hash, load_scenario, with_values
from sim.scenario.schema import Scenario


@dataclass
class SimulationResult:
    """Everything a run produced, as plain data."""

    scenario: Scenario
    seed: int
    frames: dict[str, pd.DataFrame]
    manifest: dict[str, Any]
    snapshots: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    #: The scenario's record (sim.scenario.record.Record) when it was loaded from its files; see
    #: :func:`sim.scenario.record.scenario_record` for a scenario built in memory.
    record: Any = None

    @property
    def timeseries(self) -> pd.DataFrame:
        """Governorate-level table, one row per day."""
        return self.frames["timeseries"]

    @property
    def towns(self) -> pd.DataFrame:
        """Town-level table, one row per town per day."""
        return self.frames["towns"]

    @property
    def events(self) -> pd.DataFrame:
        """Events: strikes, takeovers, arrests, displacement and return flows, front changes."""
        return self.frames["events"]


def simulate(
    scenario: Scenario | LoadedScenario,
    seed: int | None = None,
    *,
    days: int | None = None,
    progress: bool = False,
    household_agents: bool = False,
    collect: str = "full",
) -> SimulationResult:
    """Run one scenario with one seed and return its data and manifest.

    Args:
        scenario: a validated scenario, or a :class:`LoadedScenario` (which adds file hashes).
        seed: root seed (default: the scenario's).
        days: days to run (default: the scenario's).
        progress: show a progress bar when the run takes more than two seconds.
        household_agents: also create the Mesa ``Household`` view agents. Off by default: the result
            holds the run's tables, not its model, so nothing can read them after the run, and registering
            one Mesa agent per household was nearly half the construction time of the shipped scenario
            (0.4 of 0.8 s for 83,630 households). Build :class:`~sim.model.model.AllegianceModel`
            directly to inspect household agents.
        collect: ``"full"`` (every table and column, the default) or ``"targets"`` (only the columns
            calibration statistics read, :data:`sim.model.collect.COLLECT_LEVELS`; for samplers).
    """
    loaded = scenario if isinstance(scenario, LoadedScenario) else None
    sc = loaded.scenario if loaded else scenario
    if days is not None and days != sc.days:
        sc = with_values(sc, {"days": days}, source="simulate")
    seed = sc.seed if seed is None else int(seed)
    t0 = time.perf_counter()
    model = AllegianceModel(sc, seed, household_agents=household_agents, collect=collect)
    t_build = time.perf_counter() - t0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sc.days, desc=sc.name, unit="day", delay=2.0, file=sys.stderr, leave=False)
    try:
        model.run(progress=bar)
    except BaseException:
        model.release()  # a failed run must not stay in Mesa's registry either
        raise
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    frames = model.collector.frames()
    manifest = {
        "scenario": sc.name,
        "seed": seed,
        "days": sc.days,
        "start_date": sc.start_date.isoformat() if sc.start_date else None,
        "agents": len(model.hh),
        "agent_unit": sc.households.unit,
        "collect": collect,
        "sample_fraction": sc.households.sample_fraction,
        "config_hash": config_hash(sc),
        "scenario_file": str(loaded.path) if loaded else None,
        "scenario_files": {str(k): v for k, v in loaded.file_hashes.items()} if loaded else {},
        "scenario_hash": loaded.scenario_hash if loaded else config_hash(sc),
        "overrides": loaded.overrides if loaded else [],
        **stamp(),
        "wall_time_s": round(wall, 3),
        "build_time_s": round(t_build, 3),
        "config": sc.model_dump(mode="json"),
    }
    snapshots = model.snapshots
    model.release()
    return SimulationResult(sc, seed, frames, manifest, snapshots, loaded.record if loaded is not None else None)


def run_model(
    scenario: Scenario | LoadedScenario | str | Path,
    params: Mapping[str, Any] | None = None,
    seed: int | None = None,
    days: int | None = None,
    outcomes: Iterable[str] | None = None,
) -> dict[str, float]:
    """Run one scenario once and return its named scalar outcomes: the model as a plain function.

    This is the entry for outside tools (the EMA workbench, optimisers, notebooks):
    parameters in, numbers out, nothing written.

    Args:
        scenario: a validated scenario, or a scenario file or shipped scenario name.
        params: ``{key.path: value}`` changes (``{"mechanisms.rally": 2.0}``), validated
            exactly as ``--set`` validates them.
        seed: root seed (default: the scenario's).
        days: days to run (default: the scenario's).
        outcomes: outcome names, standard (:data:`~sim.run.outcomes.STANDARD_OUTCOMES`) or
            ``series:reducer`` (default: every standard outcome).

    Returns:
        ``{outcome: value}``; window means use ``output.summary_window_days``.

    Raises:
        ScenarioError: a bad scenario, parameter, ``days`` or outcome name, naming the key and the problem.
    """
    if isinstance(scenario, LoadedScenario):
        scenario = scenario.scenario
    elif not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario).scenario
    if params:
        scenario = with_values(scenario, params, source="params")
    names = list(STANDARD_OUTCOMES if outcomes is None else outcomes)
    for name in names:
        try:
            resolve_outcome(name)
        except OutcomeError as e:
            raise ScenarioError("outcomes", str(e), key=str(name)) from None
    result = simulate(scenario, seed, days=days, household_agents=False)
    return compute_outcomes(result.timeseries, names, result.scenario.output.summary_window_days)


def save_run(
    result: SimulationResult,
    out_root: str | Path = "results",
    run_id: str | None = None,
    *,
    extras: Callable[[Path], dict[str, Any]] | None = None,
) -> Path:
    """Store a run's tables and manifest in ``<out_root>/<scenario>/<run-id>/``, atomically.

    ``run_id`` defaults to :func:`~sim.run.store.new_run_id` (unique under concurrency).
    ``extras`` adds files (figures, comparison tables) before the folder is renamed into place;
    see :func:`sim.viz.figures.write_run_folder` for the folder ``sim run`` writes.
    """
    final = run_folder(out_root, result.scenario.name, run_id or new_run_id(result.seed))
    return write_run(result.frames, result.manifest, final, snapshots=result.snapshots, extras=extras)

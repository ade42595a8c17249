"""The target statistics of one seeded simulation, and the task that computes them in workers.

Workers receive parameter values (by key path) and a seed and return plain floats; no model
object crosses a process boundary. :func:`target_task` is the engine's model function (passed
as the function itself, not by name); :class:`TargetModel` is the same computation as a
picklable callable for pyabc's samplers.

A target is a record entry (a scenario naming a record) or an observed figure (one without); its
value in a run's tables is :func:`sim.run.record.target_value`, the record's observation models, the
same rules ``record.csv`` applies to every run. The ``measure`` argument the samplers pass along
is that function (any replacement takes ``(item, scenario, tables, record)``); it travels to
workers by reference, as a module-level function. With that function and targets it measures
exactly at the collector's ``"targets"`` level (:func:`sim.run.record.targets_level_reads`) the runs
collect only that level; otherwise every column.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from sim.experiments.engine import Engine
from sim.run.record import target_value, targets_level_reads
from sim.scenario.calibration import Calibration, Target
from sim.scenario.record import Record
from sim.scenario.schema import ObservedFigure
from sim.scenario.seeds import derive_seed

FAR = 10.0  # residual of a run that could not be simulated (invalid parameter values)

#: ``measure(item, scenario, frames, record) -> float``: a target's value in one run's tables.
Measure = Callable[..., float]  # the same as sim.experiments.inference.base.Measure

#: ``statistics(values by key path, seed) -> plain floats``: what a sampler judges one simulation by.
StatisticsModel = Callable[[dict[str, float], int], dict[str, float]]


def target_values(
    base: dict[str, Any],
    values: dict[str, float],
    seed: int,
    figures: list[Any],
    measure: Measure = target_value,
    record: Record | None = None,
) -> dict[str, float]:
    """Simulate ``base`` with parameter ``values`` (by key path) and ``seed``; the value of each target
    item (a record entry of ``record``, or an observed figure), by its id or name."""
    from pydantic import ValidationError

    from sim.run.simulate import simulate
    from sim.scenario.loader import set_path
    from sim.scenario.schema import Scenario

    data = copy.deepcopy(base)
    for path, v in values.items():
        set_path(data, path.split("."), float(v))
    try:
        sc = Scenario.model_validate(data)
    except ValidationError:
        return {_name(f): math.nan for f in figures}
    # the "targets" collection level when it keeps every column the targets read (same values, less work)
    light = measure is target_value and all(targets_level_reads(f) for f in figures)
    result = simulate(sc, int(seed), household_agents=False, collect="targets" if light else "full")
    return {_name(f): float(measure(f, sc, result.frames, record)) for f in figures}


def _name(item: Any) -> str:
    """A target item's key: a record entry's id, an observed figure's name."""
    return str(getattr(item, "id", None) or item.name)


class TargetModel:
    """Statistics of one seeded simulation for ABC: ``r:<target>`` residuals and ``v:<target>`` values.

    Holds only plain data (the scenario dict at calibration scale and the targets) and the
    measure function, so it can be forked or pickled to workers.
    """

    def __init__(
        self, base: dict[str, Any], targets: tuple[Target, ...], measure: Measure, record: Record | None = None
    ):
        self.base = base
        self.targets = targets
        self.measure = measure
        self.record = record

    def __call__(self, values: dict[str, float], seed: int) -> dict[str, float]:
        """Residuals of the calibration targets (0 inside the record's tolerance) and every target's value."""
        raw = target_values(self.base, values, seed, [t.item for t in self.targets], self.measure, self.record)
        out: dict[str, float] = {}
        for t in self.targets:
            v = raw[t.name]
            if t.role == "calibration":
                out[f"r:{t.name}"] = t.residual(v) if math.isfinite(v) else FAR
            out[f"v:{t.name}"] = float(v)
        return out


def target_task(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Engine model function: one simulation's target values (``params``: values by key path, and
    optionally ``sample_fraction``, the scale of this run; ``context``: ``base``, ``measure``, and ``record``
    with the target entries' ``ids``, or the observed ``figures``)."""
    record = context.get("record")
    if record is not None:
        figures: list[Any] = [record.entry(i) for i in context["ids"]]
    else:
        figures = [ObservedFigure.model_validate(f) for f in context["figures"]]
    base = context["base"]
    if "sample_fraction" in task["params"]:
        base = copy.deepcopy(base)
        base["households"]["sample_fraction"] = float(task["params"]["sample_fraction"])
    values = {k: v for k, v in task["params"].items() if k != "sample_fraction"}
    return target_values(base, values, task["seed"], figures, context["measure"], record)


def run_seeds(root: int, stream: str, start: int, stop: int) -> list[int]:
    """The run seeds ``start..stop-1`` of a named stream (``derive_seed(root, stream, "run", i)``)."""
    return [derive_seed(root, stream, "run", i) for i in range(start, stop)]


def run_targets(
    engine: Engine, cal: Calibration, measure: Measure, params: list[dict[str, Any]], seeds: list[int]
) -> pd.DataFrame:
    """Every target's value for each (parameter set, seed), in order; NaN for a run that failed."""
    context = {
        "model": target_task,
        "measure": measure,
        "base": cal.base_config(),
        "record": cal.record,
        "ids": [t.name for t in cal.targets],
        "figures": [t.figure.model_dump(mode="json") for t in cal.targets if t.figure is not None],
    }
    tasks = (
        ({"run": i, "point": i, "replicate": 0, "seed": int(s), "params": p, "overrides": {}}, context)
        for i, (p, s) in enumerate(zip(params, seeds, strict=True))
    )
    rows = {}
    for row in engine.imap(tasks):
        rows[row["run"]] = row["values"] if row["status"] == "ok" else {t.name: math.nan for t in cal.targets}
    return pd.DataFrame([rows[i] for i in range(len(params))], columns=[t.name for t in cal.targets])

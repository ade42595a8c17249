"""The target statistics of one seeded simulation, and the task that computes them in workers.

Workers receive parameter values (by key path) and a seed and return plain floats; no model
object crosses a process boundary. :func:`target_task` is the engine's model function (passed
as the function itself, not by name); :class:`TargetModel` is the same computation as a
picklable callable for pyabc's samplers.

How a run's tables give a recorded figure's simulated value is the ``measure`` function the
caller passes (:func:`sim.analysis.observed.figure_value`: it lives above this layer, and
travels to workers by reference, as a module-level function).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from sim.experiments.engine import Engine
from sim.scenario.calibration import Calibration, Target
from sim.scenario.schema import ObservedFigure
from sim.scenario.seeds import derive_seed

FAR = 10.0  # residual of a run that could not be simulated (invalid parameter values)

#: ``measure(figure, scenario, frames) -> float``: a recorded figure's value in one run's tables.
Measure = Callable[..., float]  # the same as sim.experiments.inference.base.Measure

#: ``statistics(values by key path, seed) -> plain floats``: what a sampler judges one simulation by.
StatisticsModel = Callable[[dict[str, float], int], dict[str, float]]


def target_values(
    base: dict[str, Any], values: dict[str, float], seed: int, figures: list[ObservedFigure], measure: Measure
) -> dict[str, float]:
    """Simulate ``base`` with parameter ``values`` (by key path) and ``seed``; the value of each figure."""
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
        return {f.name: math.nan for f in figures}
    result = simulate(sc, int(seed), household_agents=False, collect="targets")  # the columns measures read
    return {f.name: float(measure(f, sc, result.frames)) for f in figures}


class TargetModel:
    """Statistics of one seeded simulation for ABC: ``r:<target>`` residuals and ``v:<target>`` values.

    Holds only plain data (the scenario dict at calibration scale and the targets) and the
    measure function, so it can be forked or pickled to workers.
    """

    def __init__(self, base: dict[str, Any], targets: tuple[Target, ...], measure: Measure):
        self.base = base
        self.targets = targets
        self.measure = measure

    def __call__(self, values: dict[str, float], seed: int) -> dict[str, float]:
        """Residuals of the calibration targets (0 inside the record's tolerance) and every target's value."""
        raw = target_values(self.base, values, seed, [t.figure for t in self.targets], self.measure)
        out: dict[str, float] = {}
        for t in self.targets:
            v = raw[t.name]
            if t.role == "calibration":
                out[f"r:{t.name}"] = t.residual(v) if math.isfinite(v) else FAR
            out[f"v:{t.name}"] = float(v)
        return out


def target_task(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Engine model function: one simulation's target values (``params``: values by key path, and
    optionally ``sample_fraction``, the scale of this run; ``context``: ``base``, ``figures``, ``measure``)."""
    figures = [ObservedFigure.model_validate(f) for f in context["figures"]]
    base = context["base"]
    if "sample_fraction" in task["params"]:
        base = copy.deepcopy(base)
        base["households"]["sample_fraction"] = float(task["params"]["sample_fraction"])
    values = {k: v for k, v in task["params"].items() if k != "sample_fraction"}
    return target_values(base, values, task["seed"], figures, context["measure"])


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
        "figures": [t.figure.model_dump(mode="json") for t in cal.targets],
    }
    tasks = (
        ({"run": i, "point": i, "replicate": 0, "seed": int(s), "params": p, "overrides": {}}, context)
        for i, (p, s) in enumerate(zip(params, seeds, strict=True))
    )
    rows = {}
    for row in engine.imap(tasks):
        rows[row["run"]] = row["values"] if row["status"] == "ok" else {t.name: math.nan for t in cal.targets}
    return pd.DataFrame([rows[i] for i in range(len(params))], columns=[t.name for t in cal.targets])

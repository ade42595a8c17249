"""Model functions a sweep can run: the simulation, and reference functions for tests.

A model function takes one task (plain dict: ``run``, ``seed``, ``params``,
``overrides``) and the sweep context (plain dict: ``base`` scenario dict,
``days``, ``outcomes``, ``window``, ``series``, ``options``) and returns a dict of
outcome values (floats) and, optionally, daily series (lists of floats). Workers
receive parameters and a seed, never a model object, and return plain data.

Reference functions (:func:`ishigami`, :func:`fails_above`) run through exactly
the same engine, store and analysis code as the simulation, which is how the
sensitivity pipeline is tested against known answers.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

ModelFunction = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def simulation(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Run the allegiance model with the task's overrides and seed; reduce to outcomes."""
    from sim.run.outcomes import compute_outcomes
    from sim.run.simulate import simulate
    from sim.scenario.loader import ScenarioError, apply_values

    values = dict(task["overrides"])
    if context.get("days") is not None:
        values["days"] = context["days"]
    try:  # the base passed its checks when the sweep was loaded: only what the task changes is new
        scenario = apply_values(context["base"], values, source="task", geography=False)
    except ScenarioError as e:  # a plain ValueError: it crosses process boundaries as the run's error
        raise ValueError(f"invalid scenario: {e.key + ': ' if e.key else ''}{e.message}") from None
    result = simulate(scenario, task["seed"], household_agents=False)
    ts = result.timeseries
    out: dict[str, Any] = compute_outcomes(ts, context["outcomes"], context["window"])
    for name in context.get("series", ()):
        out[f"series:{name}"] = ts[name].to_numpy(dtype=float).tolist()
    return out


def ishigami(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Ishigami function of parameters x1, x2, x3 (a = 7, b = 0.1), optionally with noise.

    Known Sobol indices on [-pi, pi]^3: S1 = (0.3139, 0.4424, 0), ST = (0.5576, 0.4424, 0.2437).
    ``options.noise`` adds seeded Gaussian noise (to exercise replicate averaging).
    """
    p = task["params"]
    x1, x2, x3 = float(p["x1"]), float(p["x2"]), float(p["x3"])
    a, b = 7.0, 0.1
    y = math.sin(x1) + a * math.sin(x2) ** 2 + b * x3**4 * math.sin(x1)
    noise = float(context.get("options", {}).get("noise", 0.0))
    if noise:
        y += noise * float(np.random.default_rng(task["seed"]).standard_normal())
    return {name: y for name in context["outcomes"]}


def fails_above(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """``y = x`` for parameter x, raising for x above ``options.threshold`` (tests failures)."""
    x = float(task["params"]["x"])
    if x > float(context.get("options", {}).get("threshold", 0.5)):
        raise RuntimeError(f"deliberate failure at x={x}")
    return {name: x for name in context["outcomes"]}


def resolve_model(name: str) -> ModelFunction:
    """The model function named ``'sim'`` or ``'package.module:function'``."""
    if name == "sim":
        return simulation
    module, _, func = name.partition(":")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"model {name!r} not found: {e}") from None
    if not callable(fn):
        raise ValueError(f"model {name!r} is not a function")
    return fn

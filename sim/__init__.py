"""Agent-based simulation of civilian allegiance under air strikes in Idlib, 2017-2018.

The public API (documented with examples in ``docs/API.md``)::

    import sim

    scenario = sim.load_scenario("idlib_2017_2018")           # a shipped scenario, or a path
    outcomes = sim.run_model(scenario, {"mechanisms.rally": 2.0}, seed=1)   # {name: float}
    result = sim.simulate(scenario, seed=1)                   # the tables: result.timeseries, ...

Names are imported on first use (module ``__getattr__``), so ``import sim`` stays
light: it does not import Mesa, pandas or matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sim._version import __version__

if TYPE_CHECKING:
    from sim.run.simulate import SimulationResult, run_model, simulate
    from sim.scenario.loader import ScenarioError, with_values
    from sim.scenario.schema import Scenario
    from sim.scenario.shipped import shipped_names

__all__ = [
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "__version__",
    "load_scenario",
    "run_model",
    "shipped_names",
    "simulate",
    "with_values",
]

# public name -> module that defines it (the one place of each name)
_LAZY = {
    "Scenario": "sim.scenario.schema",
    "ScenarioError": "sim.scenario.loader",
    "with_values": "sim.scenario.loader",
    "shipped_names": "sim.scenario.shipped",
    "SimulationResult": "sim.run.simulate",
    "simulate": "sim.run.simulate",
    "run_model": "sim.run.simulate",
}


def load_scenario(name_or_path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """A validated scenario from a file or a shipped scenario's name.

    Args:
        name_or_path: a scenario file, or the name of a shipped scenario (``"idlib_2017_2018"``,
            ``"synthetic_grid"``, ``"policies/none"``; see :func:`shipped_names`).
        overrides: ``key.path=value`` strings, exactly as ``--set`` takes them.

    Raises:
        ScenarioError: one message naming the file, line, key and problem.
    """
    from sim.scenario.loader import load_scenario as load

    return load(name_or_path, overrides).scenario


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'sim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

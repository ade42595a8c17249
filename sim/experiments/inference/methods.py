"""The registry of inference methods: name -> module with ``TITLE`` and ``run`` (see :mod:`.base`).

A new method is a module beside these with::

    TITLE = "..."
    def run(cal, folder, engine, measure, *, progress=None) -> SamplerResult

and one entry here. The calibration file's ``budget.method`` (or ``sim calibrate --method``)
names the entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sim.experiments.inference import mcmc, npe_method, rejection, smc
from sim.experiments.inference.base import Method

if TYPE_CHECKING:
    from sim.experiments.inference.base import Progress, SamplerResult
    from sim.experiments.inference.targets import Measure
    from sim.scenario.calibration import Calibration

METHODS: dict[str, Method] = {
    "smc": smc,
    "rejection": rejection,
    "mcmc": mcmc,
    "npe": npe_method,
}  # type: ignore[dict-item]


def method(name: str) -> Method:
    """The method registered as ``name``.

    Raises:
        KeyError: no such method (the message lists the registered ones).
    """
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown inference method {name!r}; use one of {', '.join(METHODS)}") from None


def run_method(
    name: str,
    cal: Calibration,
    folder: str | Path,
    measure: Measure,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    fresh: bool = False,
    progress: Progress | None = print,
) -> SamplerResult:
    """Prepare ``folder``, open an engine for the options and run the method ``name`` (closing the engine after).

    The sampler alone, without the report :func:`sim.experiments.inference.driver.calibrate` adds.
    """
    from sim.experiments.engine import make_engine
    from sim.experiments.inference.folder import prepare_folder

    run = method(name).run
    folder = prepare_folder(cal, folder, fresh)
    engine = make_engine(workers, scheduler)
    try:
        return run(cal, folder, engine, measure, progress=progress)
    finally:
        engine.close()

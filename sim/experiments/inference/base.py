"""The sampler interface: what a method module provides and what it returns.

A method is a module with a title and a function::

    TITLE: str
    run(cal: Calibration, folder: Path, engine: Engine, measure: Measure, *,
        progress: Progress | None = None) -> SamplerResult

registered by name in :data:`sim.experiments.inference.methods.METHODS`. ``folder`` has been
prepared (:func:`sim.experiments.inference.folder.prepare_folder`) and is the method's to write
its own resumable state in (a history database, Parquet parts: :mod:`.parts`); ``engine`` runs
the simulations (:mod:`sim.experiments.engine`: serial, a local pool, or dask) and is opened and
closed by the caller, so one engine serves the sampler and the checks after it; ``measure`` is
how a run's tables give a recorded figure's value (:data:`sim.experiments.inference.targets.Measure`).
Simulations go through the target statistics task (:func:`sim.experiments.inference.targets.run_targets`,
or :class:`~sim.experiments.inference.targets.TargetModel` for a sampler that calls them itself), and every random
stream is derived from ``cal.seed`` and labels naming the stream (:mod:`sim.scenario.seeds`), so a
resumed, serial or parallel run draws what an uninterrupted serial one draws.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from sim.experiments.engine import Engine
from sim.scenario.calibration import Calibration

Measure = Callable[..., float]
Progress = Callable[[str], None]


class CalibrationConflict(Exception):
    """The output folder holds a calibration with a different configuration."""


class CalibrationFailed(Exception):
    """The sampler ended without a posterior (for instance, rejection accepted no draw)."""


@dataclass
class SamplerResult:
    """A finished (or stopped) sampler's output in plain tables.

    ``posterior`` has the columns ``generation``, ``particle``, ``weight`` and one per parameter
    (value units); the last generation is the posterior. ``generations`` has one row per
    generation or phase (``t``, ``epsilon``, ``particles``, ``samples``, ``acceptance``, ``ess``,
    ``wall_time``).
    """

    folder: Path
    posterior: pd.DataFrame
    generations: pd.DataFrame
    runs: int
    seconds: float
    resumed_from: int
    stop_reason: str
    sampler: str


#: The former name of :class:`SamplerResult`.
AbcResult = SamplerResult


class Method(Protocol):
    """What :data:`~sim.experiments.inference.methods.METHODS` holds: a module with ``run`` and ``TITLE``."""

    TITLE: str

    def run(
        self, cal: Calibration, folder: Path, engine: Engine, measure: Measure, *, progress: Progress | None = None
    ) -> SamplerResult:
        """Run (or resume) the method in ``folder`` on ``engine``."""
        ...

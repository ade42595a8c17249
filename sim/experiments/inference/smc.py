"""ABC-SMC with pyabc, resumable from its history database.

Every generation is run by a fresh :class:`pyabc.ABCSMC` loaded from the history database
(``abc.load``) with numpy's and Python's global generators seeded from the stream
``(cal.seed, "smc", "generation", t + 1)`` (pyabc draws from them), so a run interrupted at any
point (even by SIGKILL) and re-run continues from its last stored generation along exactly the
code path an uninterrupted run takes. On a serial engine (``SingleCoreSampler``) the resumed
posterior is identical to the uninterrupted one; on several workers, pyabc's workers re-seed
themselves and collect particles in completion order, so only the number of generations and
the posterior within Monte Carlo error are reproducible.

The engine decides pyabc's sampler: serial -> ``SingleCoreSampler``; a local pool of n ->
``MulticoreEvalParallelSampler(n)``, which forks its workers explicitly (unaffected by ``import
mesa`` making ``spawn`` the default; forked workers inherit the imported model and start in
milliseconds); dask -> ``DaskDistributedSampler`` on the engine's own client. pyabc stores its
particles in ``history.db`` itself; the posterior table is read from it.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.experiments.engine import DaskEngine, Engine, SerialEngine
from sim.experiments.inference.base import Progress, SamplerResult
from sim.experiments.inference.folder import prepare_folder
from sim.experiments.inference.targets import Measure, StatisticsModel, TargetModel
from sim.scenario.calibration import Calibration, Prior
from sim.scenario.seeds import seed_sequence

TITLE = "ABC-SMC"
HISTORY = "history.db"


# --------------------------------------------------------------------------- priors and model


def pyabc_prior(priors: tuple[Prior, ...]):
    """The joint prior as a :class:`pyabc.Distribution` over the sampler's coordinates.

    Log families are sampled in log space (loguniform: log10 uniform; lognormal: normal of the
    natural log) so that perturbation kernels act on the scale the prior is flat or normal in.
    """
    import pyabc

    rvs = {}
    for p in priors:
        if p.family == "uniform":
            rvs[p.path] = pyabc.RV("uniform", p.low, p.high - p.low)
        elif p.family == "loguniform":
            lo, hi = math.log10(p.low), math.log10(p.high)
            rvs[p.path] = pyabc.RV("uniform", lo, hi - lo)
        elif p.family == "normal":
            rvs[p.path] = pyabc.RV("norm", p.mean, p.sd)
        else:
            rvs[p.path] = pyabc.RV("norm", math.log(p.mean), p.sd)
    return pyabc.Distribution(**rvs)


class _PyabcModel:
    """Adapter: pyabc parameters (sampler coordinates) -> statistics of one seeded simulation."""

    def __init__(self, priors: tuple[Prior, ...], statistics: StatisticsModel):
        self.priors = priors
        self.statistics = statistics

    def __call__(self, pars: Any) -> dict[str, float]:
        values = {p.path: p.to_value(float(pars[p.path])) for p in self.priors}
        # the simulation's seed comes from the sampler's generator: pyabc samples parameters with
        # numpy's global one, which _seed_generation seeds per generation
        seed = int(np.random.randint(0, 2**31 - 1))  # noqa: NPY002
        return self.statistics(values, seed)


# --------------------------------------------------------------------------- the run


@dataclass
class GenerationLine:
    """What one generation did (the progress line)."""

    t: int
    epsilon: float
    particles: int
    samples: int
    acceptance: float
    ess: float
    runs: int
    elapsed: float

    def text(self) -> str:
        """One progress line."""
        return (
            f"generation {self.t}: epsilon {self.epsilon:.4g}, acceptance {self.acceptance:.1%} "
            f"({self.particles}/{self.samples}), ESS {self.ess:.0f}, runs so far {self.runs}, "
            f"elapsed {self.elapsed:.0f} s"
        )


def history_url(folder: Path) -> str:
    """SQLAlchemy URL of the history database in ``folder``."""
    return "sqlite:///" + str((Path(folder) / HISTORY).resolve())


def pyabc_sampler(engine: Engine):
    """pyabc's sampler on ``engine``'s workers, and a description of it."""
    from pyabc.sampler import DaskDistributedSampler, MulticoreEvalParallelSampler, SingleCoreSampler

    if isinstance(engine, DaskEngine):
        client = engine._client  # the engine's own client: the engine opens and closes it
        return DaskDistributedSampler(client, batch_size=1), f"pyabc DaskDistributedSampler on {engine.description}"
    if isinstance(engine, SerialEngine) or engine.workers <= 1:
        return SingleCoreSampler(), "one process (SingleCoreSampler)"
    n = engine.workers
    return MulticoreEvalParallelSampler(n_procs=n), f"{n} forked worker processes (MulticoreEvalParallelSampler)"


def _population_strategy(cal: Calibration):
    from pyabc import AdaptivePopulationSize, ConstantPopulationSize

    class RobustAdaptivePopulationSize(AdaptivePopulationSize):
        """pyabc's adaptive size (Klinger & Hasenauer 2017), keeping the current size when its
        bootstrap fit fails (few particles in many dimensions give singular kernels)."""

        def update(self, *args: Any, **kwargs: Any) -> None:
            try:
                super().update(*args, **kwargs)
            except (ValueError, RuntimeError, np.linalg.LinAlgError) as e:
                logging.getLogger("sim.calibration").info("population size kept: %s", e)

    b = cal.budget
    if not b.adaptive_population:
        return ConstantPopulationSize(b.population)
    return RobustAdaptivePopulationSize(
        b.population,
        mean_cv=0.05,
        min_population_size=b.min_population or max(2, b.population // 2),
        max_population_size=b.max_population or 2 * b.population,
    )


def _seed_generation(seed: int, t: int) -> None:
    """Seed pyabc's global generators for generation ``t`` (resume takes the same path)."""
    state = seed_sequence(seed, "smc", "generation", int(t) + 1).generate_state(2)
    np.random.seed(int(state[0]))  # noqa: NPY002 (pyabc draws from numpy's global generator)
    random.seed(int(state[1]))


def generations_table(history) -> pd.DataFrame:
    """Per-generation diagnostics from a pyabc history (t >= 0)."""
    from pyabc.weighted_statistics import effective_sample_size

    pops = history.get_all_populations()
    pops = pops[pops["t"] >= 0].sort_values("t").reset_index(drop=True)
    ess = []
    for t in pops["t"]:
        _, w = history.get_distribution(m=0, t=int(t))
        ess.append(float(effective_sample_size(np.asarray(w))))
    pops["ess"] = ess
    pops["acceptance"] = pops["particles"] / pops["samples"]
    return pops[["t", "epsilon", "particles", "samples", "acceptance", "ess", "wall_time"]]


def posterior_table(history, priors: tuple[Prior, ...]) -> pd.DataFrame:
    """Every generation's particles in value units: generation, particle, weight, parameters."""
    frames = []
    for t in range(history.max_t + 1):
        df, w = history.get_distribution(m=0, t=t)
        out = pd.DataFrame({"generation": t, "particle": np.arange(len(df)), "weight": np.asarray(w, dtype=float)})
        for p in priors:
            out[p.path] = [p.to_value(float(v)) for v in df[p.path].to_numpy()]
        frames.append(out)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def prior_calibration_runs(history) -> int:
    """Simulations of the prior sample pyabc draws to initialise the adaptive distance (t = -1)."""
    pops = history.get_all_populations()
    pre = pops[pops["t"] < 0]
    return int(pre["samples"].sum()) if len(pre) else 0


def run(
    cal: Calibration,
    folder: Path,
    engine: Engine,
    measure: Measure | None = None,
    *,
    progress: Progress | None = None,
    statistics: StatisticsModel | None = None,
) -> SamplerResult:
    """Run (or resume) ABC-SMC in the prepared ``folder`` on ``engine``.

    The statistics model (default: :class:`TargetModel` of ``cal`` with ``measure``) returns, for
    one simulation, the residual of every calibration target under the key ``"r:<target name>"``
    (0 inside the record's tolerance) and any other plain values (ignored by the distance,
    stored with the particle).
    """
    import pyabc

    if statistics is None:
        if measure is None:
            raise TypeError("smc.run needs a measure or a statistics model")
        statistics = TargetModel(cal.base_config(), cal.targets, measure, cal.record)
    folder = Path(folder)
    logging.getLogger("ABC").setLevel(logging.WARNING)  # our own progress line replaces pyabc's log
    sampler, sampler_text = pyabc_sampler(engine)
    sampler.show_progress = False
    prior = pyabc_prior(cal.priors)
    model = _PyabcModel(cal.priors, statistics)
    x0 = {f"r:{t.name}": 0.0 for t in cal.calibration_targets}
    url = history_url(folder)
    t_start = time.perf_counter()
    resumed_from = -1
    stop = "generations"
    b = cal.budget
    extra_runs = 0

    def make_abc():
        from pyabc.distance.scale import mean_absolute_deviation

        # Adaptive p-norm distance: each residual is scaled by its spread among the last
        # generation's particles (mean absolute deviation: non-zero also for 0/1 figures).
        distance = pyabc.AdaptivePNormDistance(p=2, scale_function=mean_absolute_deviation, max_scale_weight_ratio=100)
        return pyabc.ABCSMC(
            model,
            prior,
            distance,
            population_size=_population_strategy(cal),
            sampler=sampler,
            eps=pyabc.MedianEpsilon(),
        )

    while True:
        abc = make_abc()
        have = (folder / HISTORY).exists()
        if have:
            history = abc.load(url, 1)
            if history.n_populations == 0:
                have = False
        if not have:
            if (folder / HISTORY).exists():
                (folder / HISTORY).unlink()
            abc = make_abc()
            _seed_generation(cal.seed, -1)
            abc.new(url, x0)
            history = abc.history
        t = history.max_t + 1
        if resumed_from < 0:
            resumed_from = t
        runs = int(history.total_nr_simulations) + prior_calibration_runs(history)
        if t >= b.generations:
            stop = f"generations ({b.generations})"
            break
        if runs >= b.max_runs:
            stop = f"max_runs ({b.max_runs})"
            break
        if t > 0:
            last_eps = float(history.get_all_populations().set_index("t").loc[t - 1, "epsilon"])
            if last_eps <= b.min_epsilon:
                stop = f"min_epsilon ({b.min_epsilon:g})"
                break
        if b.max_minutes is not None and (time.perf_counter() - t_start) / 60 >= b.max_minutes:
            stop = f"max_minutes ({b.max_minutes:g})"
            break
        # A generation may not overrun the run budget: pyabc's sampler gives up after
        # population / min_acceptance_rate evaluations, and the generation is then not stored.
        largest = (b.max_population or 2 * b.population) if b.adaptive_population else b.population
        remaining = b.max_runs - runs
        _seed_generation(cal.seed, t)
        try:
            abc.run(
                max_nr_populations=1,
                max_total_nr_simulations=b.max_runs,
                min_acceptance_rate=min(1.0, largest / max(remaining, 1)),
            )
        except (AssertionError, ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
            # pyabc refuses a generation whose importance weights degenerate (all zero or
            # nan: the perturbation kernel's density underflows in many dimensions); the
            # stored generations stand and the run stops, saying so.
            extra_runs += int(getattr(sampler, "nr_evaluations_", 0) or 0)
            stop = f"numerical failure in generation {t} (not stored): {type(e).__name__}: {str(e)[:120]}"
            break
        gens = generations_table(abc.history)
        if len(gens) == 0 or int(gens["t"].max()) < t:
            extra_runs += int(getattr(sampler, "nr_evaluations_", 0) or 0)
            stop = f"max_runs ({b.max_runs}) reached during generation {t} (not stored)"
            break
        row = gens[gens["t"] == t].iloc[0]
        runs = int(abc.history.total_nr_simulations) + prior_calibration_runs(abc.history)
        if progress is not None:
            line = GenerationLine(
                t,
                float(row["epsilon"]),
                int(row["particles"]),
                int(row["samples"]),
                float(row["acceptance"]),
                float(row["ess"]),
                runs,
                time.perf_counter() - t_start,
            )
            progress(line.text())
    history = pyabc.History(url)
    history.id = 1
    return SamplerResult(
        folder=folder,
        posterior=posterior_table(history, cal.priors),
        generations=generations_table(history),
        runs=int(history.total_nr_simulations) + prior_calibration_runs(history) + extra_runs,
        seconds=time.perf_counter() - t_start,
        resumed_from=max(resumed_from, 0),
        stop_reason=stop,
        sampler=sampler_text,
    )


def run_abc(
    cal: Calibration,
    statistics: StatisticsModel,
    folder: str | Path,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    fresh: bool = False,
    progress: Progress | None = print,
) -> SamplerResult:
    """Prepare ``folder``, open an engine for the options, and :func:`run` with ``statistics``.

    Raises:
        CalibrationConflict: ``folder`` holds a calibration with another configuration.
    """
    from sim.experiments.engine import make_engine

    folder = prepare_folder(cal, folder, fresh)
    engine = make_engine(workers, scheduler)
    try:
        return run(cal, folder, engine, progress=progress, statistics=statistics)
    finally:
        engine.close()

"""Designs: the design points of a sweep and the runs (point x replicate, with seeds).

Samplers work on the unit hypercube (SALib for Sobol and Morris, SciPy's QMC for
Latin hypercubes); each :class:`~sim.experiments.spec.Parameter` maps its unit
coordinate to a value (inverse CDF, or equal bins for discrete choices). The
unit coordinates are kept in the design table (columns ``u:<name>``) so that
sensitivity analysis sees exactly the matrix the sampler produced.

Seeds come from the package's one seed derivation, :mod:`sim.scenario.seeds`, under the
sweep's ``root_seed``:

* the sampler: ``derive_seed(root_seed, "sweep", "sampler")`` (reduced to 32 bits, which
  SALib and SciPy accept);
* ``seeds: common``: replicate ``r`` runs with ``derive_seed(root_seed, "sweep", "replicate", r)``
  at every design point (common random numbers);
* ``seeds: independent``: run ``k`` runs with ``derive_seed(root_seed, "sweep", "run", k)``.

Every run's seed is therefore a pure function of the root seed and the run's replicate index
(or run number), whatever the order in which runs are planned, resumed or executed: serial,
process-pool and dask sweeps give identical results.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from sim.experiments.spec import SweepSpec
from sim.scenario.seeds import derive_seed

U_PREFIX = "u:"


def sampler_seed(root_seed: int) -> int:
    """The seed of a sweep's sampler: ``derive_seed(root_seed, "sweep", "sampler")`` reduced to 32 bits."""
    return derive_seed(root_seed, "sweep", "sampler") % 2**32


def replicate_seed(root_seed: int, replicate: int) -> int:
    """The seed of ``replicate`` under common random numbers: ``derive_seed(root, "sweep", "replicate", r)``."""
    return derive_seed(root_seed, "sweep", "replicate", int(replicate))


def run_seed(root_seed: int, run: int) -> int:
    """The seed of run ``run`` under independent seeds: ``derive_seed(root, "sweep", "run", k)``."""
    return derive_seed(root_seed, "sweep", "run", int(run))


def unit_problem(spec: SweepSpec) -> dict:
    """The SALib problem on the unit hypercube, one dimension per parameter."""
    names = spec.parameter_names
    return {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}


def unit_samples(spec: SweepSpec) -> np.ndarray | None:
    """The sampler's unit-hypercube matrix (None for a factorial design)."""
    d = spec.design
    seed = sampler_seed(spec.root_seed)
    problem = unit_problem(spec)
    if d.method == "factorial":
        return None
    if d.method == "lhs":
        from scipy.stats import qmc

        return qmc.LatinHypercube(d=problem["num_vars"], rng=np.random.default_rng(seed)).random(d.samples)
    if d.method == "sobol":
        from SALib.sample import sobol

        return sobol.sample(problem, d.samples, calc_second_order=d.second_order, scramble=True, seed=seed)
    from SALib.sample import morris

    return morris.sample(problem, d.trajectories, num_levels=d.levels, seed=seed)


def build_design(spec: SweepSpec) -> pd.DataFrame:
    """One row per design point: ``point``, unit coordinates ``u:<name>`` and values ``<name>``."""
    params = spec.parameters
    if spec.design.method == "factorial":
        grids = [p.grid() for p in params]
        rows = list(itertools.product(*grids))
        df = pd.DataFrame({"point": np.arange(len(rows), dtype=np.int64)})
        for j, p in enumerate(params):
            df[p.name] = _column([r[j] for r in rows], p.dtype)
        return df
    u = unit_samples(spec)
    assert u is not None
    df = pd.DataFrame({"point": np.arange(len(u), dtype=np.int64)})
    for j, p in enumerate(params):
        df[U_PREFIX + p.name] = u[:, j]
    for j, p in enumerate(params):
        df[p.name] = _column(p.from_unit(u[:, j]), p.dtype)
    return df


def _column(values: list, dtype: str) -> pd.Series:
    kind = {"float": "float64", "int": "int64", "bool": "bool", "string": "object"}[dtype]
    return pd.Series(values, dtype=kind)


def replicate_seeds(root_seed: int, n: int) -> list[int]:
    """Seeds of replicates 0..n-1 under common random numbers (shared by all points)."""
    return [replicate_seed(root_seed, r) for r in range(n)]


def plan_runs(spec: SweepSpec, design: pd.DataFrame) -> pd.DataFrame:
    """One row per run: ``run`` (= point * replicates + replicate), ``point``, ``replicate``, ``seed``.

    With ``seeds: common`` replicate r has the same seed at every design point, so
    two points differ only by their parameters (paired comparisons, common random
    numbers). With ``seeds: independent`` every run gets its own seed. Seeds are derived by
    :func:`sim.scenario.seeds.derive_seed` (see the module docstring).
    """
    n_points, reps = len(design), spec.replicates
    point = np.repeat(design["point"].to_numpy(dtype=np.int64), reps)
    replicate = np.tile(np.arange(reps, dtype=np.int64), n_points)
    run = point * reps + replicate
    if spec.seeds == "common":
        rep_seeds = replicate_seeds(spec.root_seed, reps)
        seeds = np.array([rep_seeds[r] for r in replicate], dtype=np.int64)
    else:
        seeds = np.array([run_seed(spec.root_seed, k) for k in run], dtype=np.int64)
    return pd.DataFrame({"run": run, "point": point, "replicate": replicate, "seed": seeds})


def run_tasks(spec: SweepSpec, design: pd.DataFrame, runs: pd.DataFrame, skip: set[int] | None = None):
    """Yield the task dicts (plain data) of the runs not in ``skip``, in run order."""
    skip = skip or set()
    params = spec.parameters
    values = {p.name: design[p.name].tolist() for p in params}
    for run, point, rep, seed in runs[["run", "point", "replicate", "seed"]].itertuples(index=False):
        if int(run) in skip:
            continue
        pv = {p.name: values[p.name][int(point)] for p in params}
        overrides: dict = {}
        for p in params:
            overrides.update(p.overrides(pv[p.name]))
        yield {
            "run": int(run),
            "point": int(point),
            "replicate": int(rep),
            "seed": int(seed),
            "params": pv,
            "overrides": overrides,
        }

"""Designs: the design points of a sweep and the runs (point x replicate, with seeds).

Samplers work on the unit hypercube (SALib for Sobol and Morris, SciPy's QMC for
Latin hypercubes); each :class:`~sim.experiments.spec.Parameter` maps its unit
coordinate to a value (inverse CDF, or equal bins for discrete choices). The
unit coordinates are kept in the design table (columns ``u:<name>``) so that
sensitivity analysis sees exactly the matrix the sampler produced.

Seeds come from ``numpy.random.SeedSequence(root_seed)``: one child seeds the
sampler, the other spawns the run seeds, so every run's seed is a pure function
of the root seed, its design point and its replicate index.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from sim.experiments.spec import SweepSpec

U_PREFIX = "u:"


def _children(root_seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    design_ss, runs_ss = np.random.SeedSequence(root_seed).spawn(2)
    return design_ss, runs_ss


def seed_int(ss: np.random.SeedSequence) -> int:
    """A 63-bit integer seed drawn from a SeedSequence (what the model accepts)."""
    hi, lo = ss.generate_state(2, dtype=np.uint32)
    return int(((int(hi) << 32) | int(lo)) >> 1)


def unit_problem(spec: SweepSpec) -> dict:
    """The SALib problem on the unit hypercube, one dimension per parameter."""
    names = spec.parameter_names
    return {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}


def unit_samples(spec: SweepSpec) -> np.ndarray | None:
    """The sampler's unit-hypercube matrix (None for a factorial design)."""
    d = spec.design
    design_ss, _ = _children(spec.root_seed)
    sampler_seed = int(design_ss.generate_state(1, dtype=np.uint32)[0])
    problem = unit_problem(spec)
    if d.method == "factorial":
        return None
    if d.method == "lhs":
        from scipy.stats import qmc

        return qmc.LatinHypercube(d=problem["num_vars"], rng=np.random.default_rng(sampler_seed)).random(d.samples)
    if d.method == "sobol":
        from SALib.sample import sobol

        return sobol.sample(problem, d.samples, calc_second_order=d.second_order, scramble=True, seed=sampler_seed)
    from SALib.sample import morris

    return morris.sample(problem, d.trajectories, num_levels=d.levels, seed=sampler_seed)


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
    _, runs_ss = _children(root_seed)
    return [seed_int(c) for c in runs_ss.spawn(n)]


def plan_runs(spec: SweepSpec, design: pd.DataFrame) -> pd.DataFrame:
    """One row per run: ``run`` (= point * replicates + replicate), ``point``, ``replicate``, ``seed``.

    With ``seeds: common`` replicate r has the same seed at every design point, so
    two points differ only by their parameters (paired comparisons, common random
    numbers). With ``seeds: independent`` every run gets its own spawned seed.
    """
    n_points, reps = len(design), spec.replicates
    _, runs_ss = _children(spec.root_seed)
    if spec.seeds == "common":
        rep_seeds = [seed_int(c) for c in runs_ss.spawn(reps)]
        seeds = np.array([rep_seeds[r] for _ in range(n_points) for r in range(reps)], dtype=np.int64)
    else:
        seeds = np.array([seed_int(c) for c in runs_ss.spawn(n_points * reps)], dtype=np.int64)
    point = np.repeat(design["point"].to_numpy(dtype=np.int64), reps)
    replicate = np.tile(np.arange(reps, dtype=np.int64), n_points)
    return pd.DataFrame({"run": point * reps + replicate, "point": point, "replicate": replicate, "seed": seeds})


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

"""Experiments: sweeps, sensitivity analysis and the thesis test.

Three separate pieces, as in the EMA workbench: *what to vary*
(:mod:`~sim.experiments.spec`, :mod:`~sim.experiments.design`), *how to run it*
(:mod:`~sim.experiments.engine`: serial, a local process pool, dask) and *where
results go* (:mod:`~sim.experiments.store`: atomic, resumable Parquet parts).
The Python API mirrors the CLI::

    from sim.experiments import load_sweep, run_sweep, load_results, sensitivity
    summary = run_sweep("scenarios/sweeps/blame_vs_protection.yaml", workers=2)
    df = load_results(summary.folder)
"""

from sim.experiments.design import build_design, plan_runs, replicate_seeds
from sim.experiments.engine import DaskEngine, ProcessEngine, SerialEngine, make_engine
from sim.experiments.spec import SweepSpec, load_sweep, spec_from_dict
from sim.experiments.store import SweepStore, load_results
from sim.experiments.sweep import SweepSummary, run_sweep

__all__ = [
    "DaskEngine",
    "ProcessEngine",
    "SerialEngine",
    "SweepSpec",
    "SweepStore",
    "SweepSummary",
    "build_design",
    "load_results",
    "load_sweep",
    "make_engine",
    "plan_runs",
    "replicate_seeds",
    "run_sweep",
    "spec_from_dict",
]

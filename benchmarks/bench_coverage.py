"""Coverage study of the calibration method: do its 90% credible intervals hold the truth 90% of the time?

Usage::

    .venv/bin/python benchmarks/bench_coverage.py [--sets 8] [--seed 15] [--workers 1]
                                                  [--population 24] [--generations 4] [--max-runs N]
                                                  [--method smc|mcmc|npe|npe,mcmc] [--simulations 400]
                                                  [--members 2] [--max-epochs 60] [--quick] [--out FILE]

``--method npe`` is neural posterior estimation, amortised: one reference table of
``--simulations`` prior draws of the recovery calibration (its own seed, independent of the
truths) and one ensemble fit, whose posterior (1,000 draws) is then read at every record.
``--method npe,mcmc`` runs both on the same truths and records and prints the coverage of the
central 50/80/90% intervals side by side (pooled over parameters, exact 95% intervals).

What it measures. The recovery test (``tests/test_calibration.py``) checks
one known parameter set; this study checks the method over many. On the small recovery scenario
(``tests/data/calibration/recovery.yaml`` with its calibration file
``tests/data/calibration/recovery_calibration.yaml``: four towns, 25 days, two parameters) it

1. draws ``--sets`` true parameter sets from the calibration file's priors (seeded by ``--seed``);
2. for each, simulates the record from the truth at a fresh seed (every target's recorded value
   replaced by its simulated value, as the recovery test does) and calibrates against it with
   ABC-SMC (:func:`sim.experiments.inference.smc.run_abc`, the statistics of
   :class:`sim.experiments.inference.targets.TargetModel`) at the budget ``--population`` /
   ``--generations`` / ``--max-runs``;
3. records, for every parameter, whether the truth lies inside the posterior 90% credible
   interval that :func:`sim.experiments.inference.posterior.marginals` reports (weighted 5% and 95%
   quantiles of the final population), and the truth's posterior quantile (the weighted share
   of final particles below it, ties counted half).

It reports the coverage rate per parameter and pooled over all parameters, each with an exact
(Clopper-Pearson) binomial 95% interval (``scipy.stats.binomtest(...).proportion_ci``), the
nominal 0.90, the runs used and the wall time, prints a short table and writes
``benchmarks/out/bench_coverage.json``.

How to read it. Because the truths are drawn from the prior, a posterior that is calibrated
covers each truth with probability 0.90 and the truth's posterior quantiles are uniform on
[0, 1]. *Under-coverage* (rate below 0.90, the interval entirely below it) means the posterior
is over-confident: its intervals are too narrow, or shifted (quantiles piling up near 0 or 1).
*Over-coverage* means intervals wider than the record justifies (ABC's tolerance, a small
budget or a short run leaves the posterior nearer the prior; quantiles pile up near 0.5). With
a few sets the binomial interval is wide: 8 sets of 2 parameters can only flag a gross failure.
The pooled rate counts every (set, parameter) flag; flags of one set are not independent, so
its interval is optimistic.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sim.analysis.calibration import run_abc_mcmc, target_model, target_values
from sim.experiments.inference.base import CalibrationFailed
from sim.experiments.inference.posterior import LEVEL, final_population, marginals, weighted_quantiles
from sim.experiments.inference.priors import draw_prior
from sim.experiments.inference.smc import run_abc
from sim.scenario.calibration import Calibration, load_calibration
from sim.scenario.loader import load_scenario
from sim.scenario.seeds import derive_seed

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "calibration"
SCENARIO = DATA / "recovery.yaml"
CONFIG = DATA / "recovery_calibration.yaml"
OUT = ROOT / "benchmarks" / "out" / "bench_coverage.json"
CI_LEVEL = 0.95
LEVELS = (0.5, 0.8, 0.9)  # the central intervals whose coverage is reported side by side
NPE_DRAWS = 1000  # npe: posterior draws per record


def with_record(cal: Calibration, truth: dict[str, float], seed: int) -> Calibration:
    """``cal`` with every target's recorded value simulated from ``truth`` at ``seed``.

    Raises:
        ValueError: a simulated value cannot serve as a record (not finite, or zero under a
            relative uncertainty, which would give the target no tolerance).
    """
    values = target_values(cal.base_config(), truth, seed, [t.figure for t in cal.targets])
    targets = []
    for t in cal.targets:
        v = float(values[t.name])
        if not math.isfinite(v) or (t.relative is not None and v == 0):
            raise ValueError(f"target {t.name!r} simulated from {truth} at seed {seed} is {v}: not usable as a record")
        targets.append(dataclasses.replace(t, figure=t.figure.model_copy(update={"value": v})))
    return dataclasses.replace(cal, targets=tuple(targets))


def posterior_quantile(x: np.ndarray, w: np.ndarray, truth: float) -> float:
    """Weighted share of particles below ``truth`` (ties count half): the truth's posterior quantile."""
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float) / np.sum(w)
    return float(w[x < truth].sum() + 0.5 * w[x == truth].sum())


def calibrate_one(
    cal: Calibration, truth: dict[str, float], record_seed: int, abc_seed: int, folder: Path, workers: int
) -> dict[str, Any]:
    """Simulate the record from ``truth``, calibrate against it, and judge every parameter's interval."""
    t0 = time.perf_counter()
    case = dataclasses.replace(with_record(cal, truth, record_seed), seed=abc_seed)
    if case.budget.method == "mcmc":
        abc = run_abc_mcmc(case, folder, workers=workers, fresh=True, progress=None)
    else:
        abc = run_abc(case, target_model(case), folder, workers=workers, fresh=True, progress=None)
    marg = marginals(abc.posterior, case.priors).set_index("parameter")
    last = final_population(abc.posterior)
    params = {}
    for p in case.priors:
        lo, hi = float(marg.loc[p.path, "posterior_low"]), float(marg.loc[p.path, "posterior_high"])
        x, w = last[p.path].to_numpy(), last["weight"].to_numpy()
        params[p.path] = {
            "truth": truth[p.path],
            "posterior_low": lo,
            "posterior_median": float(marg.loc[p.path, "posterior_median"]),
            "posterior_high": hi,
            "width_ratio": float(marg.loc[p.path, "width_ratio"]),
            "inside": bool(lo <= truth[p.path] <= hi),
            "inside_levels": inside_levels(x, w, truth[p.path]),
            "posterior_quantile": posterior_quantile(x, w, truth[p.path]),
        }
    return {
        "record_seed": record_seed,
        "abc_seed": abc_seed,
        "record": {t.name: t.figure.value for t in case.targets},
        "parameters": params,
        "generations": len(abc.generations),
        "final_particles": len(last),
        "runs": abc.runs + 1,  # the ABC runs and the one that simulated the record
        "stop_reason": abc.stop_reason,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def inside_levels(x: np.ndarray, w: np.ndarray, truth: float) -> dict[str, bool]:
    """Whether ``truth`` lies in the central (equal-tailed, weighted) interval at each of :data:`LEVELS`."""
    out = {}
    for lev in LEVELS:
        lo, hi = weighted_quantiles(x, w, ((1 - lev) / 2, (1 + lev) / 2))
        out[f"{lev:g}"] = bool(lo <= truth <= hi)
    return out


def rate(flags: list[bool], nominal: float = LEVEL) -> dict[str, Any]:
    """Coverage rate of ``flags`` with its exact binomial 95% interval and the test against ``nominal``."""
    from scipy.stats import binomtest

    k, n = int(sum(flags)), len(flags)
    test = binomtest(k, n, nominal)
    ci = test.proportion_ci(confidence_level=CI_LEVEL, method="exact")
    return {
        "inside": k,
        "n": n,
        "coverage": k / n,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p_value_vs_nominal": float(test.pvalue),
    }


def summarise(sets: list[dict[str, Any]], nominal: float = LEVEL) -> dict[str, Any]:
    """Coverage per parameter and pooled, from the sets' recorded inside/outside flags."""
    names = list(sets[0]["parameters"])
    per = {}
    for name in names:
        flags = [s["parameters"][name]["inside"] for s in sets]
        qs = [s["parameters"][name]["posterior_quantile"] for s in sets]
        per[name] = {**rate(flags, nominal), "posterior_quantiles": qs, "mean_quantile": float(np.mean(qs))}
    pooled = rate([s["parameters"][n]["inside"] for s in sets for n in names], nominal)
    levels: dict[str, Any] = {}
    if all("inside_levels" in s["parameters"][n] for s in sets for n in names):
        for lev in LEVELS:
            key = f"{lev:g}"
            levels[key] = {
                "per_parameter": {
                    n: rate([s["parameters"][n]["inside_levels"][key] for s in sets], lev) for n in names
                },
                "overall": rate([s["parameters"][n]["inside_levels"][key] for s in sets for n in names], lev),
            }
    return {"per_parameter": per, "overall": pooled, "levels": levels}


def coverage_study(
    *,
    sets: int = 8,
    seed: int = 15,
    workers: int = 1,
    population: int = 24,
    generations: int = 4,
    max_runs: int | None = None,
    method: str = "smc",
    mcmc_steps: int = 60,
    simulations: int = 400,
    members: int = 2,
    max_epochs: int = 60,
    tolerance: float | None = None,
    work: str | Path | None = None,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run the coverage study (see the module docstring) and return its result as plain data.

    ``max_runs`` defaults to 10 x population x generations (about 0.2 s a run here). The pyabc
    histories go to ``work`` (a temporary folder when ``None``).
    """
    if sets < 1 or population < 2 or generations < 1 or workers < 1:
        raise ValueError("sets, generations and workers must be >= 1 and population >= 2")
    cal = load_calibration(CONFIG, load_scenario(SCENARIO))
    if method not in ("smc", "mcmc", "npe"):
        raise ValueError(f"method must be smc, mcmc or npe, not {method!r}")
    budget: dict[str, Any] = {
        "population": population,
        "generations": generations,
        "max_runs": max_runs or 10 * population * generations,
    }
    if method == "mcmc":  # population: chains (accepted prior draws); max_runs: prior draws of phase 1
        budget.update(method="mcmc", mcmc_steps=mcmc_steps, max_runs=max_runs or 600)
    if method == "npe":  # one reference table and one fit serve every set (amortised)
        budget = {
            "method": "npe",
            "simulations": simulations,
            "max_runs": simulations,
            "members": members,
            "max_epochs": max_epochs,
            "posterior_samples": NPE_DRAWS,
        }
    cal = dataclasses.replace(cal, budget=cal.budget.model_copy(update=budget))
    if tolerance is not None:  # wider ABC tolerances (relative), so a tiny rejection budget accepts some draws
        cal = dataclasses.replace(
            cal,
            targets=tuple(
                dataclasses.replace(t, relative=max(t.relative, tolerance)) if t.relative is not None else t
                for t in cal.targets
            ),
        )
    truths = draw_prior(cal.priors, sets, seed).to_dict("records")
    seeds = [
        (derive_seed(seed, "coverage", "set", i, "record"), derive_seed(seed, "coverage", "set", i, "abc"))
        for i in range(sets)
    ]
    t0 = time.perf_counter()
    done: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_coverage-") as tmp:
        base = Path(work) if work is not None else Path(tmp)
        ens = fit_reference(cal, base / "npe", workers, progress) if method == "npe" else None
        for i, (truth, (s_record, s_abc)) in enumerate(zip(truths, seeds, strict=True)):
            truth = {k: float(v) for k, v in truth.items()}
            try:
                if ens is not None:
                    one = npe_one(cal, ens, truth, int(s_record), int(s_abc))
                else:
                    one = calibrate_one(cal, truth, int(s_record), int(s_abc), base / f"set{i:03d}", workers)
            except CalibrationFailed as e:  # no posterior (rejection accepted nothing): reported, not counted
                failed.append({"set": i, "truth": truth, "error": str(e)})
                if progress is not None:
                    progress(f"set {i + 1}/{sets}: no posterior ({e})")
                continue
            done.append({"set": i, **one})
            if progress is not None:
                flags = ", ".join(
                    f"{k} {v['truth']:.4g} in [{v['posterior_low']:.4g}, {v['posterior_high']:.4g}]: "
                    f"{'yes' if v['inside'] else 'NO'}"
                    for k, v in one["parameters"].items()
                )
                progress(f"set {i + 1}/{sets} ({one['runs']} runs, {one['seconds']:.0f} s): {flags}")
    seconds = time.perf_counter() - t0
    if not done:
        raise ValueError(f"none of the {sets} sets produced a posterior: raise --max-runs")
    runs_fit = int(ens.n_total) if ens is not None else 0
    return {
        "method": method,
        "reference_simulations": runs_fit,
        "scenario": str(SCENARIO.relative_to(ROOT)),
        "calibration": str(CONFIG.relative_to(ROOT)),
        "parameters": [p.path for p in cal.priors],
        "priors": {p.path: p.describe() for p in cal.priors},
        "nominal": LEVEL,
        "ci_level": CI_LEVEL,
        "sets": sets,
        "seed": seed,
        "workers": workers,
        "budget": budget,
        "tolerance": tolerance,
        **summarise(done, LEVEL),
        "runs_used": sum(s["runs"] for s in done) + runs_fit,
        "sets_without_posterior": failed,
        "wall_time_s": round(seconds, 1),
        "results": done,
    }


def fit_reference(cal: Calibration, folder: Path, workers: int, progress: Callable[[str], None] | None):
    """npe: the reference table of the recovery calibration (its own prior draws and seeds) and one ensemble fit."""
    import torch

    from sim.experiments.engine import make_engine
    from sim.experiments.inference import npe_method
    from sim.run.record import target_value as figure_value

    torch.set_num_threads(1)
    folder.mkdir(parents=True, exist_ok=True)
    engine = make_engine(workers, None)
    try:
        table, _, _ = npe_method.grow_reference(cal, folder, engine, figure_value, int(cal.budget.simulations))
    finally:
        engine.close()
    stats = [s["column"] for s in npe_method.statistics_spec(cal)]
    ens, _ = npe_method.fit_or_load(cal, folder, table, stats, None)  # every row trains (truths are new draws)
    if progress is not None:
        progress(f"npe: {len(table)} simulations, {len(ens.estimators)} flows fitted")
    return ens


def npe_one(cal: Calibration, ens, truth: dict[str, float], record_seed: int, seed: int) -> dict[str, Any]:
    """Simulate the record from ``truth`` and judge the fitted ensemble's posterior at it (no new fit)."""
    from sim.experiments.inference import npe_method

    t0 = time.perf_counter()
    case = with_record(cal, truth, record_seed)
    x_obs = {s["column"]: s["statistic"] for s in npe_method.statistics_spec(case)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nflows' deprecation notes from torch
        draws = ens.sample(x_obs, NPE_DRAWS, seed=seed)
    w = np.ones(len(draws))
    params = {}
    for p in case.priors:
        x = draws[p.path].to_numpy()
        lo, med, hi = weighted_quantiles(x, w, (0.05, 0.5, 0.95))
        params[p.path] = {
            "truth": truth[p.path],
            "posterior_low": lo,
            "posterior_median": med,
            "posterior_high": hi,
            "inside": bool(lo <= truth[p.path] <= hi),
            "inside_levels": inside_levels(x, w, truth[p.path]),
            "posterior_quantile": posterior_quantile(x, w, truth[p.path]),
        }
    return {
        "record_seed": record_seed,
        "abc_seed": seed,
        "record": {t.name: t.figure.value for t in case.targets},
        "parameters": params,
        "final_particles": len(draws),
        "runs": 1,  # the run that simulated the record (the reference table is counted once)
        "stop_reason": "amortised posterior",
        "seconds": round(time.perf_counter() - t0, 2),
    }


def side_by_side(results: dict[str, dict[str, Any]]) -> str:
    """Coverage at 50/80/90% of each method on the same truths, pooled over parameters, with 95% intervals."""
    methods = list(results)
    rows = [("level", *methods)]
    for lev in LEVELS:
        key = f"{lev:g}"
        cells = []
        for m in methods:
            o = results[m]["levels"][key]["overall"]
            cells.append(f"{o['coverage']:.2f} [{o['ci_low']:.2f}, {o['ci_high']:.2f}] ({o['inside']}/{o['n']})")
        rows.append((f"{lev:.0%}", *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(
        "same truths and records for every method; "
        + "; ".join(f"{m}: {results[m]['runs_used']} runs, {results[m]['wall_time_s']:.0f} s" for m in methods)
    )
    return "\n".join(lines)


def table(result: dict[str, Any]) -> str:
    """A short text table of the coverage rates."""
    rows = [("parameter", "inside", "coverage", "95% interval", "mean quantile")]
    for name, r in result["per_parameter"].items():
        rows.append(
            (
                name,
                f"{r['inside']}/{r['n']}",
                f"{r['coverage']:.2f}",
                f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
                f"{r['mean_quantile']:.2f}",
            )
        )
    o = result["overall"]
    rows.append(
        ("overall", f"{o['inside']}/{o['n']}", f"{o['coverage']:.2f}", f"[{o['ci_low']:.2f}, {o['ci_high']:.2f}]", "")
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(
        f"nominal {result['nominal']:.2f}; {result['sets']} sets "
        f"({len(result.get('sets_without_posterior', []))} without a posterior), {result['runs_used']} runs, "
        f"{result['wall_time_s']:.0f} s on {result['workers']} worker(s); budget {result['budget']}"
    )
    return "\n".join(lines)


#: ``--quick``: two sets, small budgets (checks the machinery in a test, not the coverage).
QUICK = {
    "sets": 2,
    "population": 6,
    "generations": 2,
    "max_runs": 60,
    "mcmc_steps": 5,
    "simulations": 80,
    "members": 1,
    "max_epochs": 10,
    "tolerance": 0.4,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=8, help="true parameter sets drawn from the priors (K)")
    ap.add_argument("--seed", type=int, default=15, help="root seed of the truths, the records and the samplers")
    ap.add_argument("--workers", type=int, default=1, help="pyabc worker processes per calibration")
    ap.add_argument("--population", type=int, default=24, help="ABC-SMC particles per generation")
    ap.add_argument("--generations", type=int, default=4, help="ABC-SMC generations")
    ap.add_argument("--max-runs", type=int, default=None, help="runs per calibration (default 10 x pop x gens)")
    ap.add_argument(
        "--method",
        default="smc",
        help="smc: ABC-SMC; mcmc: rejection for --population chain starts (at most --max-runs, "
        "default 600, prior draws), then --mcmc-steps ABC-MCMC steps per chain; npe: one reference table of "
        "--simulations prior draws and one ensemble fit, its posterior at every record; several separated by "
        "commas (npe,mcmc) run on the same truths and print coverage at 50/80/90%% side by side",
    )
    ap.add_argument("--mcmc-steps", type=int, default=60, help="mcmc: steps per chain")
    ap.add_argument("--simulations", type=int, default=400, help="npe: reference-table simulations")
    ap.add_argument("--members", type=int, default=2, help="npe: flows in the ensemble")
    ap.add_argument("--max-epochs", type=int, default=60, help="npe: most epochs per flow")
    ap.add_argument("--out", type=Path, default=OUT, help="where the JSON result goes")
    ap.add_argument("--quick", action="store_true", help="2 sets, small budgets (smc: 6 particles, 2 generations)")
    a = ap.parse_args()
    methods = [m.strip() for m in a.method.split(",") if m.strip()]
    bad = [m for m in methods if m not in ("smc", "mcmc", "npe")]
    if bad or not methods:
        ap.exit(2, f"bench_coverage: --method {a.method!r}: use smc, mcmc, npe or a comma-separated list\n")
    kw = {
        "sets": a.sets,
        "seed": a.seed,
        "workers": a.workers,
        "population": a.population,
        "generations": a.generations,
        "max_runs": a.max_runs,
        "mcmc_steps": a.mcmc_steps,
        "simulations": a.simulations,
        "members": a.members,
        "max_epochs": a.max_epochs,
    }
    if a.quick:
        kw.update(QUICK)
    results = {}
    try:
        for m in methods:
            results[m] = coverage_study(method=m, **kw)
    except ValueError as e:
        ap.exit(2, f"bench_coverage: {e}\n")
    env = {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()}
    result = {**results[methods[0]], **env} if len(methods) == 1 else {"methods": results, **env}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    for m in methods:
        print(f"{m}:")
        print(table(results[m]))
    print(side_by_side(results))
    print(f"written {a.out}")


if __name__ == "__main__":
    main()

"""Coverage study of the calibration method: do its 90% credible intervals hold the truth 90% of the time?

Usage::

    .venv/bin/python benchmarks/bench_coverage.py [--sets 8] [--seed 15] [--workers 1]
                                                  [--population 24] [--generations 4] [--max-runs N]

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sim.analysis.calibration import run_abc_mcmc, target_model, target_values
from sim.experiments.inference.base import CalibrationFailed
from sim.experiments.inference.posterior import LEVEL, final_population, marginals
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
        params[p.path] = {
            "truth": truth[p.path],
            "posterior_low": lo,
            "posterior_median": float(marg.loc[p.path, "posterior_median"]),
            "posterior_high": hi,
            "width_ratio": float(marg.loc[p.path, "width_ratio"]),
            "inside": bool(lo <= truth[p.path] <= hi),
            "posterior_quantile": posterior_quantile(last[p.path].to_numpy(), last["weight"].to_numpy(), truth[p.path]),
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
    return {"per_parameter": per, "overall": pooled}


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
    if method not in ("smc", "mcmc"):
        raise ValueError(f"method must be smc or mcmc, not {method!r}")
    budget: dict[str, Any] = {
        "population": population,
        "generations": generations,
        "max_runs": max_runs or 10 * population * generations,
    }
    if method == "mcmc":  # population: chains (accepted prior draws); max_runs: prior draws of phase 1
        budget.update(method="mcmc", mcmc_steps=mcmc_steps, max_runs=max_runs or 600)
    cal = dataclasses.replace(cal, budget=cal.budget.model_copy(update=budget))
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
        for i, (truth, (s_record, s_abc)) in enumerate(zip(truths, seeds, strict=True)):
            truth = {k: float(v) for k, v in truth.items()}
            try:
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
    return {
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
        **summarise(done, LEVEL),
        "runs_used": sum(s["runs"] for s in done),
        "sets_without_posterior": failed,
        "wall_time_s": round(seconds, 1),
        "results": done,
    }


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
        choices=["smc", "mcmc"],
        default="smc",
        help="smc: ABC-SMC; mcmc: rejection for --population chain starts (at most --max-runs, "
        "default 600, prior draws), then --mcmc-steps ABC-MCMC steps per chain",
    )
    ap.add_argument("--mcmc-steps", type=int, default=60, help="mcmc: steps per chain")
    ap.add_argument("--quick", action="store_true", help="2 sets, 6 particles, 2 generations: a smoke check")
    ap.add_argument("--out", type=Path, default=OUT, help="JSON file to write")
    a = ap.parse_args()
    if a.quick:
        a.sets, a.population, a.generations = 2, 6, 2
    try:
        result = coverage_study(
            sets=a.sets,
            seed=a.seed,
            workers=a.workers,
            population=a.population,
            generations=a.generations,
            max_runs=a.max_runs,
            method=a.method,
            mcmc_steps=a.mcmc_steps,
        )
    except ValueError as e:
        ap.exit(2, f"bench_coverage: {e}\n")
    result.update({"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": platform.python_version()})
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written {a.out}")


if __name__ == "__main__":
    main()

"""Calibration throughput: simulations per second on 2 cores at the calibration scale, and the cost of one run.

Usage::

    .venv/bin/python benchmarks/bench_calibrate.py [--runs 40] [--workers 2] [--sample-fraction 0.02]

Runs the shipped Idlib scenario (120 days) as calibration runs do: the calibration file's
scale, parameters drawn from its priors, the target statistics computed from each run
(:class:`sim.experiments.inference.targets.TargetModel`), in worker processes forked the way pyabc's
``MulticoreEvalParallelSampler`` forks them. Reports

* runs per second with 1 and with ``--workers`` forked workers (after a warm-up run each), and
* the cost breakdown of one run: build (model construction), daily step (the schedule without
  collection), collection (the daily collector and the final tables), statistics (the targets).

Target: at least 6 runs/s on a 2-core machine at the calibration scale. Results
are printed and written to ``benchmarks/out/bench_calibrate.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

from sim.experiments.inference.priors import draw_prior
from sim.experiments.inference.targets import TargetModel
from sim.model.model import AllegianceModel
from sim.run.record import target_value
from sim.scenario.calibration import load_calibration
from sim.scenario.loader import load_scenario, set_path
from sim.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "idlib_2017_2018.yaml"
CONFIG = ROOT / "scenarios" / "calibration" / "idlib_2017_2018.yaml"

_MODEL: TargetModel | None = None


def _one(args: tuple[dict[str, float], int]) -> dict[str, float]:
    assert _MODEL is not None
    values, seed = args
    return _MODEL(values, seed)


def throughput(model: TargetModel, params: list[dict[str, float]], workers: int) -> float:
    """Runs per second of ``model`` over ``params`` with ``workers`` forked processes (1: this process)."""
    global _MODEL
    _MODEL = model
    jobs = [(p, 1000 + i) for i, p in enumerate(params)]
    if workers <= 1:
        _one(jobs[0])  # warm-up
        t0 = time.perf_counter()
        for j in jobs:
            _one(j)
        return len(jobs) / (time.perf_counter() - t0)
    with mp.get_context("fork").Pool(workers) as pool:
        pool.map(_one, jobs[:workers])  # warm-up: every worker runs once
        t0 = time.perf_counter()
        pool.map(_one, jobs, chunksize=1)
        return len(jobs) / (time.perf_counter() - t0)


def breakdown(base: dict, params: list[dict[str, float]], figures, record=None) -> dict[str, float]:
    """Mean seconds per run of build, daily step, collection and target statistics."""
    t = {"build": 0.0, "daily_step": 0.0, "collection": 0.0, "statistics": 0.0}
    for i, p in enumerate(params):
        data = json.loads(json.dumps(base))
        for k, v in p.items():
            set_path(data, k.split("."), v)
        sc = Scenario.model_validate(data)
        t0 = time.perf_counter()
        m = AllegianceModel(sc, 500 + i, household_agents=False)
        t1 = time.perf_counter()
        collect = m.collector.collect
        spent = [0.0]

        def timed(day: int, _c=collect, _s=spent) -> None:
            a = time.perf_counter()
            _c(day)
            _s[0] += time.perf_counter() - a

        m.collector.collect = timed
        m.run()
        t2 = time.perf_counter()
        frames = m.collector.frames()
        t3 = time.perf_counter()
        for f in figures:
            target_value(f, sc, frames, record)
        t4 = time.perf_counter()
        m.release()
        t["build"] += t1 - t0
        t["daily_step"] += (t2 - t1) - spent[0]
        t["collection"] += spent[0] + (t3 - t2)
        t["statistics"] += t4 - t3
    return {k: v / len(params) for k, v in t.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample-fraction", type=float, default=None, help="default: the calibration file's")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="4 runs at 2%% of the households: a smoke check")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_calibrate.json")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.sample_fraction = 4, 0.02
    cal = load_calibration(CONFIG, load_scenario(SCENARIO))
    base = cal.base_config()
    if a.sample_fraction is not None:
        base["households"]["sample_fraction"] = a.sample_fraction
    frac = base["households"]["sample_fraction"]
    draws = draw_prior(cal.priors, a.runs, a.seed)
    params = [{k: float(v) for k, v in r.items()} for r in draws.to_dict("records")]
    model = TargetModel(base, cal.targets, target_value, cal.record)
    cost = breakdown(base, params[: min(8, len(params))], [t.item for t in cal.targets], cal.record)
    one = throughput(model, params, 1)
    many = throughput(model, params, a.workers)
    total = sum(cost.values())
    result = {
        "scenario": str(SCENARIO.relative_to(ROOT)),
        "sample_fraction": frac,
        "days": base["days"],
        "runs": a.runs,
        "runs_per_s_1_worker": round(one, 2),
        f"runs_per_s_{a.workers}_workers": round(many, 2),
        "target_runs_per_s": 6.0,
        "cost_per_run_s": {k: round(v, 4) for k, v in cost.items()},
        "cost_shares": {k: round(v / total, 3) for k, v in cost.items()},
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{many:.2f} runs/s on {a.workers} workers at sample_fraction {frac:g} "
        f"(target 6; {one:.2f} runs/s on one); one run: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in cost.items())
    )


if __name__ == "__main__":
    main()

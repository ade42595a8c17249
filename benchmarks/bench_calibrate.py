"""Calibration throughput: simulations per second at the calibration scale, and the cost of one run.

Usage::

    .venv/bin/python benchmarks/bench_calibrate.py [--runs 40] [--workers 2] [--sample-fraction 0.02]
    .venv/bin/python benchmarks/bench_calibrate.py --quick        # 4 runs at 2% of the households, 120 days only

Runs the shipped Idlib scenario as calibration runs do: the calibration file's scale,
parameters drawn from its priors, the target statistics computed from each run
(:class:`sim.experiments.inference.targets.TargetModel`, which collects only the columns the
targets read), in worker processes forked the way pyabc's ``MulticoreEvalParallelSampler``
forks them, each running many simulations. For a 120-day window (``--short-days``; the first
four months) and the full window (``--days``, default the calibration file's, the shipped 181
days), it reports

* runs per second with 1 and with ``--workers`` forked workers (after a warm-up run each);
* the cost split of one run in CPU seconds (``time.process_time``, the minimum over
  ``--repeats`` passes, so other load on the machine counts little): build (model
  construction), daily step (the schedule without collection), collection (the daily
  collector at the level the calibration runs use, and the final tables), statistics (the
  target values from the tables).

For the last window it also reports how a run's CPU scales with the households (``scaling``):
its split and the same at a quarter of the sample fraction, fitted as a line in the households per run.
Its intercept, the CPU a run costs with no households at all, bounds what any speed-up of the
household step alone can reach.

Runs per second are wall-clock figures and depend on the machine's load, which is recorded.
Target: at least 15 runs/s on 2 workers at the calibration scale. Results are printed and
written to ``benchmarks/out/bench_calibrate.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

from sim.experiments.inference.priors import draw_prior
from sim.experiments.inference.targets import TargetModel
from sim.model.model import AllegianceModel
from sim.run.record import target_value, targets_level_reads
from sim.scenario.calibration import load_calibration
from sim.scenario.loader import load_scenario, set_path
from sim.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "idlib_2017_2018.yaml"
CONFIG = ROOT / "scenarios" / "calibration" / "idlib_2017_2018.yaml"
TARGET_RUNS_PER_S = 15.0
#: Parameter draws behind each cost split (the minimum over ``--repeats`` passes is reported).
COST_DRAWS = 8

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


def breakdown(
    base: dict, params: list[dict[str, float]], figures, record=None, repeats: int = 3, counts: list[int] | None = None
) -> dict[str, float]:
    """CPU seconds per run of build, daily step, collection and target statistics (minimum over ``repeats``);
    each run's number of households is appended to ``counts`` when given."""
    clock = time.process_time
    best: dict[str, float] = {}
    # the collection level TargetModel's runs use (sim.experiments.inference.targets.target_values)
    collect_level = "targets" if all(targets_level_reads(f) for f in figures) else "full"
    for _ in range(repeats):
        t = {"build": 0.0, "daily_step": 0.0, "collection": 0.0, "statistics": 0.0}
        for i, p in enumerate(params):
            data = copy.deepcopy(base)
            for k, v in p.items():
                set_path(data, k.split("."), v)
            sc = Scenario.model_validate(data)
            t0 = clock()
            m = AllegianceModel(sc, 500 + i, household_agents=False, collect=collect_level)
            t1 = clock()
            if counts is not None:
                counts.append(len(m.hh))
            collect = m.collector.collect
            spent = [0.0]

            def timed(day: int, _c=collect, _s=spent) -> None:
                a = clock()
                _c(day)
                _s[0] += clock() - a

            m.collector.collect = timed
            m.run()
            t2 = clock()
            frames = m.collector.frames()
            t3 = clock()
            for f in figures:
                target_value(f, sc, frames, record)
            t4 = clock()
            m.release()
            t["build"] += t1 - t0
            t["daily_step"] += (t2 - t1) - spent[0]
            t["collection"] += spent[0] + (t3 - t2)
            t["statistics"] += t4 - t3
        for k, v in t.items():
            best[k] = min(best.get(k, float("inf")), v / len(params))
    return best


def scaling(base: dict, cal, params, days: int, workers: int, repeats: int, full: tuple[float, float]) -> dict:
    """How one run's CPU grows with the households: ``full`` (households and CPU seconds per run at the
    calibration scale, from :func:`window`) and the cost split of the same draws and seeds at a quarter
    of that scale, fitted as a line in the households per run. Its intercept is what a run costs with
    no households at all (the towns, actors, collection and statistics: Python and numpy call overhead,
    the same at any scale), so ``workers`` over it bounds the runs per second that any speed-up of the
    household step alone could reach."""
    frac = base["households"]["sample_fraction"]
    quarter = copy.deepcopy(base)
    quarter["days"], quarter["households"]["sample_fraction"] = days, frac / 4
    counts: list[int] = []
    cost = breakdown(quarter, params[:COST_DRAWS], [t.item for t in cal.targets], cal.record, repeats, counts)
    (n0, c0), (n1, c1) = (sum(counts) / len(counts), sum(cost.values())), full
    per_household = (c1 - c0) / (n1 - n0)
    fixed = c1 - per_household * n1
    return {
        "days": days,
        "sample_fractions": [frac / 4, frac],
        "households_per_run": [round(n0), round(n1)],
        "cpu_s_per_run": [round(c0, 4), round(c1, 4)],
        "fixed_cpu_s_per_run": round(fixed, 4),
        "cpu_ms_per_1000_households": round(per_household * 1e6, 3),
        "fixed_share_at_calibration_scale": round(fixed / c1, 3),
        f"runs_per_s_{workers}_workers_if_households_cost_nothing": round(workers / fixed, 2) if fixed > 0 else None,
    }


def window(base: dict, cal, params, days: int, workers: int, repeats: int) -> tuple[dict, tuple[float, float]]:
    """Throughput and cost split for one window of ``days`` days; and its point for :func:`scaling`
    (households and CPU seconds per run)."""
    base = copy.deepcopy(base)
    base["days"] = days
    model = TargetModel(base, cal.targets, target_value, cal.record)
    counts: list[int] = []
    cost = breakdown(base, params[:COST_DRAWS], [t.item for t in cal.targets], cal.record, repeats, counts)
    total = sum(cost.values())
    one = throughput(model, params, 1)
    many = throughput(model, params, workers) if workers > 1 else one
    return {
        "days": days,
        "runs_per_s_1_worker": round(one, 2),
        f"runs_per_s_{workers}_workers": round(many, 2),
        "cpu_s_per_run": {k: round(v, 4) for k, v in cost.items()},
        "cpu_ms_per_day": round(cost["daily_step"] / days * 1000, 3),
        # What the CPU cost allows on an otherwise idle machine (the wall-clock rates above fall with load).
        f"cpu_bound_runs_per_s_{workers}_workers": round(workers / total, 2),
        "cost_shares": {k: round(v / total, 3) for k, v in cost.items()},
    }, (sum(counts) / len(counts), total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample-fraction", type=float, default=None, help="default: the calibration file's")
    ap.add_argument("--days", type=int, default=None, help="the long window (default: the calibration file's)")
    ap.add_argument("--short-days", type=int, default=120, help="the short window (the only one with --quick)")
    ap.add_argument("--repeats", type=int, default=3, help="passes of the cost split (its minimum is reported)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="4 runs at 2%% of the households, one repeat, 120 days only")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_calibrate.json")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.sample_fraction, a.repeats = 4, 0.02, 1
    scenario = load_scenario(SCENARIO)
    cal = load_calibration(CONFIG, scenario)
    base = cal.base_config()
    if a.sample_fraction is not None:
        base["households"]["sample_fraction"] = a.sample_fraction
    frac = base["households"]["sample_fraction"]
    draws = draw_prior(cal.priors, a.runs, a.seed)
    params = [{k: float(v) for k, v in r.items()} for r in draws.to_dict("records")]
    windows = [a.short_days]
    long_days = int(a.days if a.days is not None else base["days"])
    if not a.quick and long_days not in windows:
        windows.append(long_days)
    measured = [window(base, cal, params, d, a.workers, a.repeats) for d in windows]
    results = [r for r, _ in measured]
    # the last window's cost split is the calibration-scale point of the scaling fit
    scale = scaling(base, cal, params, windows[-1], a.workers, a.repeats, measured[-1][1])
    result = {
        "scenario": str(SCENARIO.relative_to(ROOT)),
        "sample_fraction": frac,
        "runs": a.runs,
        "workers": a.workers,
        "target_runs_per_s": TARGET_RUNS_PER_S,
        # the short window's figures at the top level, as before; every window in "windows"
        "days": results[0]["days"],
        "runs_per_s_1_worker": results[0]["runs_per_s_1_worker"],
        f"runs_per_s_{a.workers}_workers": results[0][f"runs_per_s_{a.workers}_workers"],
        "cost_per_run_s": results[0]["cpu_s_per_run"],
        "windows": results,
        "scaling": scale,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in results:
        print(
            f"{r['days']} days: {r[f'runs_per_s_{a.workers}_workers']:.2f} runs/s on {a.workers} workers at "
            f"sample_fraction {frac:g} (target {TARGET_RUNS_PER_S:g}; {r['runs_per_s_1_worker']:.2f} on one; "
            f"{r[f'cpu_bound_runs_per_s_{a.workers}_workers']:.2f} CPU-bound); "
            "one run, CPU: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in r["cpu_s_per_run"].items())
        )
    free = scale[f"runs_per_s_{a.workers}_workers_if_households_cost_nothing"]
    print(
        f"{scale['days']} days, scaling: {scale['fixed_cpu_s_per_run'] * 1000:.0f} ms of a run's CPU does not "
        f"depend on the households ({scale['fixed_share_at_calibration_scale']:.0%} at "
        f"{scale['households_per_run'][1]:,} households), plus {scale['cpu_ms_per_1000_households']:.1f} ms per "
        f"1,000 households; with households free, {free} runs/s on {a.workers} workers"
    )


if __name__ == "__main__":
    main()

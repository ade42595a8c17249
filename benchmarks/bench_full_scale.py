"""CPU time of one full-scale run of the shipped Idlib scenario: construction and the daily steps.

Usage::

    .venv/bin/python benchmarks/bench_full_scale.py [--repeats 3] [--sample-fraction 1.0]
    .venv/bin/python benchmarks/bench_full_scale.py --quick      # 5% of the households, 30 days, one pass

Builds ``scenarios/idlib_2017_2018.yaml`` with every household (``households.sample_fraction`` 1:
418,119 household agents) and runs its whole window with the full collection, as ``sim run`` does,
without Mesa household agents. Reports CPU seconds (``time.process_time``, the minimum over
``--repeats`` passes, so other load on the machine counts little) of construction (which includes
solving the stationary protest state, :func:`sim.model.households.calibrate_protest`), of the daily
steps with their collection, and of both. Target: the whole run under 8 s of CPU. Results are printed
and written to ``benchmarks/out/bench_full_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from sim.model.model import AllegianceModel
from sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "idlib_2017_2018.yaml"
TARGET_CPU_S = 8.0


def one_run(sample_fraction: float, days: int | None, seed: int) -> dict[str, float]:
    """CPU seconds of construction and of the run of one model."""
    overrides = [f"households.sample_fraction={sample_fraction}"]
    if days is not None:
        overrides.append(f"days={days}")
    sc = load_scenario(SCENARIO, overrides).scenario
    clock = time.process_time
    t0 = clock()
    model = AllegianceModel(sc, seed, household_agents=False)
    t1 = clock()
    model.run()
    t2 = clock()
    out = {"build": t1 - t0, "run": t2 - t1, "total": t2 - t0, "households": len(model.state.hh), "days": sc.days}
    model.release()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample-fraction", type=float, default=1.0)
    ap.add_argument("--days", type=int, default=None, help="default: the scenario's window")
    ap.add_argument("--repeats", type=int, default=3, help="passes (the minimum of each cost is reported)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="5%% of the households, 30 days, one pass")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_full_scale.json")
    a = ap.parse_args()
    if a.quick:
        a.sample_fraction, a.days, a.repeats = 0.05, 30, 1
    passes = [one_run(a.sample_fraction, a.days, a.seed) for _ in range(a.repeats)]
    cpu = {k: round(min(p[k] for p in passes), 3) for k in ("build", "run", "total")}
    result = {
        "scenario": str(SCENARIO.relative_to(ROOT)),
        "quick": a.quick,
        "sample_fraction": a.sample_fraction,
        "households": passes[0]["households"],
        "days": passes[0]["days"],
        "repeats": a.repeats,
        "cpu_s": cpu,
        "target_cpu_s": TARGET_CPU_S,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{result['households']:,} households, {result['days']} days: CPU build {cpu['build']:.2f} s, "
        f"run {cpu['run']:.2f} s, total {cpu['total']:.2f} s (target {TARGET_CPU_S:g} s)"
    )


if __name__ == "__main__":
    main()

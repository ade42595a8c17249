"""`sim run` end to end against its own simulation: the ratio the README's main command is held to.

Usage::

    .venv/bin/python benchmarks/bench_run.py [--repeats 3]
    .venv/bin/python benchmarks/bench_run.py --quick      # 30 days, one pass

Runs ``python -m sim run scenarios/idlib_2017_2018.yaml`` (the README's main job, without the
install) in a fresh process, ``--repeats`` times, into a temporary folder, and reads from each
run's manifest the simulation's own wall time (``wall_time_s``: construction of the model and its
days) and, of it, the construction (``build_time_s``). Reports, per pass and as the median, the
command's wall time, its ratio to the simulation (target: at most 2), and the rest (imports,
loading, tables, figures, the record) in seconds. All figures come from one run of
this script. Results are printed and written to ``benchmarks/out/bench_run.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "idlib_2017_2018.yaml"
TARGET_RATIO = 2.0


def one_pass(out: Path, run_id: str, days: int | None) -> dict[str, float]:
    """One ``sim run`` in a new process: its wall time and the manifest's simulation and build times."""
    cmd = [sys.executable, "-m", "sim", "run", str(SCENARIO), "--out", str(out), "--run-id", run_id]
    if days is not None:
        cmd += ["--days", str(days)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_run: sim run failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    manifest = json.loads(next(out.glob(f"*/{run_id}/manifest.json")).read_text(encoding="utf-8"))
    sim_s, build_s = float(manifest["wall_time_s"]), float(manifest["build_time_s"])
    return {
        "command_s": round(wall, 3),
        "simulation_s": sim_s,
        "build_s": build_s,
        "rest_s": round(wall - sim_s, 3),  # wall_time_s includes the construction
        "ratio_to_simulation": round(wall / sim_s, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--days", type=int, default=None, help="default: the scenario's window")
    ap.add_argument("--quick", action="store_true", help="30 days, one pass")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_run.json")
    a = ap.parse_args()
    if a.quick:
        a.repeats, a.days = 1, 30
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        passes = [one_pass(Path(tmp), f"pass{i}", a.days) for i in range(a.repeats)]
    keys = passes[0].keys()
    median = {k: round(statistics.median(p[k] for p in passes), 3) for k in keys}
    result = {
        "scenario": str(SCENARIO.relative_to(ROOT)),
        "days": a.days,
        "quick": a.quick,
        "repeats": a.repeats,
        "target_ratio_to_simulation": TARGET_RATIO,
        "median": median,
        "passes": passes,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"sim run: {median['command_s']:.1f} s end to end, {median['ratio_to_simulation']:.1f} times its simulation "
        f"({median['simulation_s']:.1f} s, construction {median['build_s']:.1f} s of it; target {TARGET_RATIO:g}); "
        f"the rest {median['rest_s']:.1f} s (median of {a.repeats})"
    )


if __name__ == "__main__":
    main()

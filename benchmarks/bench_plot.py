"""`sim plot` of a run folder: figures shared out among processes against the same command on one CPU.

Usage::

    .venv/bin/python benchmarks/bench_plot.py [--repeats 3]
    .venv/bin/python benchmarks/bench_plot.py --quick      # the synthetic grid, 30 days, one pass

Writes one run folder of the shipped Idlib scenario (``--quick``: the synthetic grid; ``sim run``, into a temporary folder), then
times ``python -m sim plot FOLDER --out DIR`` in a fresh process, ``--repeats`` times each way:

* shared: as a user runs it, forked processes drawing the figures alongside the command's own
  (one per further CPU);
* one CPU: the same command pinned to one CPU (``sched_setaffinity``), so everything is drawn in
  one process, as before the figures were shared out.

Reports each pass, the medians, their ratio (the speed-up, one CPU over shared) and whether the two
ways wrote the same files byte for byte. All figures come from one run of this script. Results are
printed and written to ``benchmarks/out/bench_plot.json``. Linux only (CPU affinity).
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
#: The quick mode's scenario: its figure set is smaller and cheaper (no maps, no record).
QUICK_SCENARIO = ROOT / "scenarios" / "synthetic_grid.yaml"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _sim(args: list[str], one_cpu: bool = False) -> float:
    """Run ``python -m sim ARGS`` in a new process (pinned to one CPU if asked); its wall time."""
    pin = None
    if one_cpu:
        cpu = min(os.sched_getaffinity(0))

        def pin() -> None:
            os.sched_setaffinity(0, {cpu})

    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, env=_env(), cwd=ROOT, preexec_fn=pin
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_plot: sim {args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wall


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="the synthetic grid, 30 days, one pass")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "bench_plot.json")
    a = ap.parse_args()
    if not hasattr(os, "sched_setaffinity"):
        sys.exit("bench_plot: needs CPU affinity (Linux)")
    repeats = 1 if a.quick else a.repeats
    scenario = QUICK_SCENARIO if a.quick else SCENARIO
    with tempfile.TemporaryDirectory(prefix="bench-plot-") as tmp:
        tmp_path = Path(tmp)
        run = ["run", str(scenario), "--out", str(tmp_path / "runs"), "--run-id", "r"]
        if a.quick:
            run += ["--days", "30"]
        _sim(run)
        folder = next((tmp_path / "runs").glob("*/r"))
        passes: dict[str, list[float]] = {"shared_s": [], "one_cpu_s": []}
        written: dict[str, dict[str, bytes]] = {}
        for i in range(repeats):  # alternately, so that a change in the machine's load falls on both ways
            for key, one_cpu in (("shared_s", False), ("one_cpu_s", True)):
                out = tmp_path / f"{key}-{i}"
                passes[key].append(round(_sim(["plot", str(folder), "--out", str(out)], one_cpu), 3))
                written[key] = _files(out)
        median = {k: round(statistics.median(v), 3) for k, v in passes.items()}
        result = {
            "scenario": str(scenario.relative_to(ROOT)),
            "quick": a.quick,
            "figures": sorted(written["shared_s"]),
            "passes": passes,
            "median": median,
            "speedup_one_cpu_over_shared": round(median["one_cpu_s"] / median["shared_s"], 3),
            "same_files": written["shared_s"] == written["one_cpu_s"],
            "cpus": len(os.sched_getaffinity(0)),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
        }
    print(json.dumps(result, indent=2))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"sim plot, {len(result['figures'])} figures: {median['shared_s']:.1f} s shared out on {result['cpus']} CPUs, "
        f"{median['one_cpu_s']:.1f} s on one ({result['speedup_one_cpu_over_shared']:.2f} times); "
        f"same files: {result['same_files']}"
    )


if __name__ == "__main__":
    main()

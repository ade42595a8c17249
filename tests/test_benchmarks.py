"""Every benchmark in ``benchmarks/`` still runs: its ``--quick`` mode, in a subprocess.

The numbers of a quick mode mean nothing (tiny sizes, a loaded machine); the test only
checks that each benchmark runs to the end with the current model and writes its JSON
report with the expected keys and finite, positive rates. Targets are never asserted.
The report goes to ``tmp_path`` (``--out``), never over ``benchmarks/out``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def run_quick(name: str, tmp_path: Path, timeout: float = 600) -> dict[str, Any]:
    """Run ``benchmarks/NAME.py --quick --out tmp_path/NAME.json``; its report."""
    out = tmp_path / f"{name}.json"
    # This checkout's package first, whichever checkout the environment was installed from.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--quick", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{name} --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text(encoding="utf-8"))


def positive(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values)


def test_bench_model_quick(tmp_path: Path) -> None:
    """The full step, Mesa's Epstein example, the numpy floor kernel (the current rules), memory, person level."""
    r = run_quick("bench_model", tmp_path)
    assert r["quick"] is True
    assert {"speed", "ratios", "memory", "person_level", "targets"} <= r.keys()
    assert {"epstein", "floor"} <= r["speed"].keys() and any(k.startswith("full_") for k in r["speed"])
    for key, v in r["speed"].items():
        assert positive(v["agents"], v["s_per_step"], v["agent_steps_per_s"]), key
    assert positive(r["ratios"]["full_vs_epstein"], r["ratios"]["floor_vs_full"])
    assert positive(r["memory"]["build_s"], r["memory"]["peak_rss_mb"], r["memory"]["agents"])
    assert positive(r["person_level"]["wall_s"], r["person_level"]["agents"])


def test_bench_sweep_quick(tmp_path: Path) -> None:
    r = run_quick("bench_sweep", tmp_path)
    assert r["quick"] is True
    for pool in ("one_worker", "two_workers"):
        assert r[pool]["failed"] == 0 and r[pool]["runs"] == 4
        assert positive(r[pool]["runs_per_minute"], r[pool]["seconds"]), pool
    assert positive(r["ratio_2_vs_1"])


def test_bench_calibrate_quick(tmp_path: Path) -> None:
    r = run_quick("bench_calibrate", tmp_path)
    assert r["runs"] == 4 and r["sample_fraction"] == 0.02
    assert positive(r["runs_per_s_1_worker"], r["runs_per_s_2_workers"])
    assert r["cost_per_run_s"] and positive(*r["cost_per_run_s"].values())
    sc = r["scaling"]
    small, full = sc["households_per_run"]
    assert sc["sample_fractions"] == [0.005, 0.02] and 0 < small < full
    # the fit goes through both measured points
    fixed, slope = sc["fixed_cpu_s_per_run"], sc["cpu_ms_per_1000_households"] / 1e6
    assert sc["cpu_s_per_run"] == pytest.approx([fixed + slope * small, fixed + slope * full], abs=2e-3)


def test_bench_full_scale_quick(tmp_path: Path) -> None:
    r = run_quick("bench_full_scale", tmp_path)
    assert r["quick"] is True and r["days"] == 30 and r["households"] > 0
    assert positive(*r["cpu_s"].values())


def test_bench_run_quick(tmp_path: Path) -> None:
    r = run_quick("bench_run", tmp_path)
    assert r["quick"] is True and r["days"] == 30 and len(r["passes"]) == 1
    m = r["median"]
    assert positive(m["command_s"], m["simulation_s"], m["build_s"], m["ratio_to_simulation"])
    # the command includes its own simulation, which includes the model's construction
    assert m["build_s"] < m["simulation_s"] < m["command_s"] and m["ratio_to_simulation"] > 1
    assert m["rest_s"] == pytest.approx(m["command_s"] - m["simulation_s"], abs=2e-3)


# bench_coverage's quick mode (mcmc and npe side by side, one run) is tested in test_benchmarks_coverage.py:
# test_quick_command_line_runs_npe_beside_mcmc.


@pytest.mark.browser
def test_bench_app_quick(tmp_path: Path) -> None:
    """Step, play and reset of ``sim app`` in headless chromium."""
    if not CHROMIUM.exists():
        pytest.skip(f"bench_app needs Debian's chromium at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")
    r = run_quick("bench_app", tmp_path)
    assert r["quick"] is True
    assert positive(r["page_load_s"], r["step_s_median"], r["step_s_max"], r["reset_s"], r["play_days_per_s"])
    assert len(r["step_s_all"]) == 2 and "Day 2 of" in r["map_title_after_steps"]

"""The coverage study of the calibration method (benchmarks/bench_coverage.py) at a tiny size."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from sim.analysis.calibration import target_values
from sim.experiments.inference.priors import draw_prior
from sim.scenario.calibration import load_calibration
from sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_coverage", ROOT / "benchmarks" / "bench_coverage.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_coverage_study_reports_rates_computed_from_the_recorded_flags(tmp_path: Path) -> None:
    r = bench.coverage_study(sets=2, seed=3, population=6, generations=2, work=tmp_path, progress=None)
    cal = load_calibration(bench.CONFIG, load_scenario(bench.SCENARIO))
    names = [p.path for p in cal.priors]
    assert r["parameters"] == names and r["nominal"] == 0.9 and r["sets"] == 2
    assert len(r["results"]) == 2 and r["wall_time_s"] > 0
    assert r["runs_used"] == sum(s["runs"] for s in r["results"]) > 2
    # the truths are the seeded prior draws, different from set to set
    truths = draw_prior(cal.priors, 2, 3).to_dict("records")
    for s, truth in zip(r["results"], truths, strict=True):
        assert {k: v["truth"] for k, v in s["parameters"].items()} == pytest.approx(truth)
    assert r["results"][0]["record_seed"] != r["results"][1]["record_seed"]
    # each record is simulated from its truth at its own seed
    s0 = r["results"][0]
    again = target_values(cal.base_config(), truths[0], s0["record_seed"], [t.figure for t in cal.targets])
    assert s0["record"] == again
    all_flags = []
    for name in names:
        flags = []
        for s in r["results"]:
            p = s["parameters"][name]
            assert p["inside"] == (p["posterior_low"] <= p["truth"] <= p["posterior_high"])
            assert p["posterior_low"] <= p["posterior_median"] <= p["posterior_high"]
            assert 0.0 <= p["posterior_quantile"] <= 1.0
            flags.append(p["inside"])
        all_flags += flags
        c = r["per_parameter"][name]
        assert 0.0 <= c["coverage"] <= 1.0
        assert c["n"] == 2 and c["inside"] == sum(flags) and c["coverage"] == pytest.approx(np.mean(flags))
        assert c["ci_low"] <= c["coverage"] <= c["ci_high"]
        assert c["posterior_quantiles"] == [s["parameters"][name]["posterior_quantile"] for s in r["results"]]
    o = r["overall"]
    assert o["n"] == 4 and o["coverage"] == pytest.approx(np.mean(all_flags)) and 0.0 <= o["coverage"] <= 1.0
    assert "overall" in bench.table(r)


def test_summary_counts_flags_with_an_exact_binomial_interval() -> None:
    def one(a: bool, b: bool) -> dict:
        return {
            "parameters": {"a": {"inside": a, "posterior_quantile": 0.2}, "b": {"inside": b, "posterior_quantile": 0.9}}
        }

    s = bench.summarise([one(True, False), one(True, True), one(False, False), one(True, False)])
    assert s["per_parameter"]["a"]["coverage"] == 0.75 and s["per_parameter"]["b"]["coverage"] == 0.25
    assert s["overall"]["inside"] == 4 and s["overall"]["n"] == 8 and s["overall"]["coverage"] == 0.5
    ci = binomtest(3, 4, 0.9).proportion_ci(confidence_level=0.95, method="exact")
    assert s["per_parameter"]["a"]["ci_low"] == pytest.approx(ci.low)
    assert s["per_parameter"]["a"]["ci_high"] == pytest.approx(ci.high)
    assert s["per_parameter"]["b"]["mean_quantile"] == pytest.approx(0.9)
    # the truth's posterior quantile: weighted share of particles below it, ties half
    x, w = np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.1, 0.2, 0.3, 0.4])
    assert bench.posterior_quantile(x, w, 2.0) == pytest.approx(0.1 + 0.1)
    assert bench.posterior_quantile(x, w, 0.5) == 0.0 and bench.posterior_quantile(x, w, 9.0) == pytest.approx(1.0)
    assert math.isclose(bench.posterior_quantile(x, 10 * w, 3.5), 0.6)


def test_bad_budget_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="population"):
        bench.coverage_study(sets=2, population=1, progress=None)


def test_npe_coverage_at_50_80_90_is_reported_from_one_fit_on_the_same_truths(tmp_path: Path) -> None:
    pytest.importorskip("sbi")
    import torch

    torch.set_num_threads(1)
    r = bench.coverage_study(
        method="npe", sets=3, seed=3, simulations=80, members=1, max_epochs=5, work=tmp_path, progress=None
    )
    cal = load_calibration(bench.CONFIG, load_scenario(bench.SCENARIO))
    truths = draw_prior(cal.priors, 3, 3).to_dict("records")
    for s, truth in zip(r["results"], truths, strict=True):  # the same truths as every other method
        assert {k: v["truth"] for k, v in s["parameters"].items()} == pytest.approx(truth)
    assert r["method"] == "npe" and r["reference_simulations"] == 80
    assert r["runs_used"] == 80 + 3
    for lev in ("0.5", "0.8", "0.9"):
        flags = [s["parameters"][n]["inside_levels"][lev] for s in r["results"] for n in r["parameters"]]
        o = r["levels"][lev]["overall"]
        assert o["n"] == 6 and o["coverage"] == pytest.approx(np.mean(flags))
    # nested intervals: inside at 50% implies inside at 80% and 90%
    for s in r["results"]:
        for p in s["parameters"].values():
            lv = p["inside_levels"]
            assert lv["0.5"] <= lv["0.8"] <= lv["0.9"] and lv["0.9"] == p["inside"]
    text = bench.side_by_side({"npe": r, "again": r})
    assert "50%" in text and "90%" in text and "npe" in text


@pytest.mark.slow
def test_quick_command_line_runs_npe_beside_mcmc(tmp_path: Path) -> None:
    pytest.importorskip("sbi")
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    out = tmp_path / "coverage.json"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_coverage.py"),
            "--quick",
            "--method",
            "npe,mcmc",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    import json

    doc = json.loads(out.read_text())
    assert set(doc["methods"]) == {"npe", "mcmc"}
    a, b = (doc["methods"][m]["results"] for m in ("npe", "mcmc"))
    assert [s["record"] for s in a] == [s["record"] for s in b]  # same truths, same records
    assert "level" in r.stdout and "npe" in r.stdout and "mcmc" in r.stdout
    # each method's report (the single-method quick run's, tested here once for both)
    for method in ("npe", "mcmc"):
        m = doc["methods"][method]
        assert m["sets"] == 2 and len(m["results"]) == 2, method
        assert m["wall_time_s"] > 0 and m["runs_used"] > 0, method
        assert 0.0 <= m["overall"]["coverage"] <= 1.0, method
        assert set(m["per_parameter"]) == set(m["parameters"]), method

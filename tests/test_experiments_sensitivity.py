"""Sensitivity analysis: the Sobol and Morris pipelines on known functions and on a model sweep."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from sim.analysis.sensitivity import analyze, write_sensitivity
from sim.experiments import run_sweep, spec_from_dict
from sim.scenario.loader import ScenarioError
from sim.viz.figures import draw_sensitivity

ISHIGAMI = {
    "name": "ishigami",
    "model": "sim.experiments.tasks:ishigami",
    "root_seed": 3,
    "parameters": {f"x{i}": {"range": [-math.pi, math.pi]} for i in (1, 2, 3)},
    "outcomes": ["y"],
    "batch_size": 5000,
}

#: Analytical indices of the Ishigami function (a = 7, b = 0.1) on [-pi, pi]^3.
S1_TRUE = {"x1": 0.3139, "x2": 0.4424, "x3": 0.0}
ST_TRUE = {"x1": 0.5576, "x2": 0.4424, "x3": 0.2437}


def test_sobol_recovers_ishigami_indices_through_the_sweep_pipeline(tmp_path: Path) -> None:
    # two noisy replicates per point exercise the averaging of replicates before analysis
    spec = spec_from_dict(
        {**ISHIGAMI, "replicates": 2, "options": {"noise": 0.05}, "design": {"method": "sobol", "samples": 1024}}
    )
    summary = run_sweep(spec, tmp_path, progress=False)
    assert summary.planned == 2 * 1024 * 5
    table = analyze(summary.folder).set_index("parameter")
    for name in ("x1", "x2", "x3"):
        s1, st = table.loc[name, "S1"], table.loc[name, "ST"]
        # within SALib's tolerance: the true value inside the 95% interval, or within 0.05
        assert abs(s1 - S1_TRUE[name]) <= max(table.loc[name, "S1_conf"], 0.05), (name, s1)
        assert abs(st - ST_TRUE[name]) <= max(table.loc[name, "ST_conf"], 0.05), (name, st)
    assert table.loc["x3", "S1"] < 0.06 < table.loc["x3", "ST"]
    paths = write_sensitivity(summary.folder, draw=draw_sensitivity)
    assert paths["png"].stat().st_size > 10_000
    csv = pd.read_csv(paths["csv"])
    assert list(csv.columns) == ["outcome", "parameter", "S1", "S1_conf", "ST", "ST_conf"] and len(csv) == 3


def test_morris_ranks_ishigami_inputs(tmp_path: Path) -> None:
    # root seed 4: the sign balance of x2's 40 elementary effects is binomial, and about one sampler seed in
    # ten gives |mu| >= mu*/4; 3 was fine under the sampler seed before sim.scenario.seeds, and is one of them now
    spec = spec_from_dict({**ISHIGAMI, "root_seed": 4, "design": {"method": "morris", "trajectories": 40, "levels": 4}})
    summary = run_sweep(spec, tmp_path, progress=False)
    table = analyze(summary.folder).set_index("parameter")
    # x2 enters only through sin(x2)^2: zero mean effect, large mu*; x3 acts only with x1 (sigma > 0)
    assert abs(table.loc["x2", "mu"]) < 0.25 * table.loc["x2", "mu_star"]
    assert (table["mu_star"] > 1.0).all() and (table["sigma"] > 1.0).all()
    paths = write_sensitivity(summary.folder, draw=draw_sensitivity)
    assert set(pd.read_csv(paths["csv"]).columns) >= {"mu_star", "mu_star_conf", "sigma"}


def test_sensitivity_of_a_model_sweep(tmp_path: Path) -> None:
    grid = Path(__file__).resolve().parents[1] / "scenarios" / "synthetic_grid.yaml"
    spec = spec_from_dict(
        {
            "name": "model_morris",
            "scenario": str(grid),
            "root_seed": 4,
            "days": 20,
            "set": ["households.sample_fraction=0.02", "air_campaign.policy=resisting_towns"],
            "design": {"method": "morris", "trajectories": 3, "levels": 4},
            "parameters": {
                "air_campaign.sorties_per_day": {"range": [0.0, 10.0]},
                "mechanisms.control": {"range": [0.0, 2.0]},
            },
            "outcomes": ["killed_total", "coop_resisting_mean"],
        }
    )
    summary = run_sweep(spec, tmp_path, progress=False)
    table = analyze(summary.folder)
    killed = table[table["outcome"] == "killed_total"].set_index("parameter")
    # casualties come from strikes, not from how much control drives collaboration
    assert killed.loc["air_campaign.sorties_per_day", "mu"] > 0
    assert killed.loc["mechanisms.control", "mu_star"] < 0.2 * killed.loc["air_campaign.sorties_per_day", "mu_star"]


def test_sensitivity_needs_every_point(tmp_path: Path) -> None:
    spec = spec_from_dict(
        {
            **ISHIGAMI,
            "name": "fails",
            "model": "sim.experiments.tasks:fails_above",
            "options": {"threshold": 0.0},
            "design": {"method": "sobol", "samples": 4},
            "parameters": {"x": {"range": [-1, 1]}, "z": {"range": [0, 1]}},
        }
    )
    summary = run_sweep(spec, tmp_path, progress=False)
    assert 0 < summary.failed_total < summary.planned
    with pytest.raises(ScenarioError, match="design points have no successful run"):
        analyze(summary.folder)

"""The public API at the package top level: load_scenario, run_model, simulate, validated copies."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.run.outcomes import STANDARD_OUTCOMES, compute_outcomes
from sim.scenario import shipped
from sim.scenario.loader import ScenarioError, with_values

ROOT = Path(__file__).resolve().parents[1]
FAST = ["households.sample_fraction=0.05"]


@pytest.fixture(scope="module")
def grid() -> sim.Scenario:
    return sim.load_scenario("synthetic_grid", FAST)


def test_public_names():
    assert set(sim.__all__) >= {"load_scenario", "run_model", "simulate", "Scenario", "ScenarioError"}
    assert sim.simulate is __import__("sim.run.simulate", fromlist=["simulate"]).simulate
    assert sim.ScenarioError is ScenarioError
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = sim.nonexistent


def test_load_scenario_by_name_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    by_name = sim.load_scenario("idlib_2017_2018")
    by_path = sim.load_scenario(ROOT / "scenarios" / "idlib_2017_2018.yaml")
    assert by_name == by_path and by_name.name == "idlib_2017_2018"
    # A shipped file that extends another shipped file.
    none = sim.load_scenario("policies/none", ["days=7"])
    assert none.air_campaign.policy == "none" and none.days == 7
    assert sim.load_scenario("synthetic_grid.yaml") == sim.load_scenario("synthetic_grid")


def test_unknown_name_lists_the_shipped_scenarios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ScenarioError) as err:
        sim.load_scenario("idlib_2071")
    msg = str(err.value)
    assert msg.startswith("idlib_2071: file not found")
    assert "idlib_2017_2018" in msg and "policies/none" in msg and "mechanisms_morris" not in msg


def test_shipped_names_and_sweeps():
    names = sim.shipped_names()
    assert {"idlib_2017_2018", "synthetic_grid", "policies/none", "policies/resisting_towns"} <= set(names)
    assert not any(n.startswith("sweeps/") for n in names)
    sweeps = shipped.shipped_names("sweep")
    assert {"mechanisms_morris", "mechanisms_sobol", "blame_vs_protection"} <= set(sweeps)
    from sim.experiments.spec import load_sweep

    spec = load_sweep("mechanisms_morris")
    assert spec.file == shipped.shipped_path("mechanisms_morris", "sweep")
    assert spec.base is not None and spec.base["name"] == "synthetic_grid"


def test_run_model_matches_sim_run(tmp_path: Path, grid: sim.Scenario, sim_command: list[str]):
    """The same --set values and seed through the command line and through run_model give the same outcomes."""
    days, seed = 12, 5
    proc = subprocess.run(
        [
            *sim_command,
            "run",
            "synthetic_grid",
            "--days",
            str(days),
            "--seed",
            str(seed),
            "--out",
            str(tmp_path),
            "--run-id",
            "api",
            "--set",
            FAST[0],
            "--set",
            "mechanisms.rally=2.0",
            "--set",
            "mechanisms.exit=0.5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    ts = pd.read_parquet(tmp_path / "synthetic_grid" / "api" / "timeseries.parquet")
    expected = compute_outcomes(ts, STANDARD_OUTCOMES, grid.output.summary_window_days)
    got = sim.run_model(grid, {"mechanisms.rally": 2.0, "mechanisms.exit": 0.5}, seed=seed, days=days)
    assert set(got) == set(STANDARD_OUTCOMES)
    assert got == expected
    assert all(isinstance(v, float) and math.isfinite(v) for v in got.values())
    # A different strength gives different outcomes (the parameter reached the model).
    other = sim.run_model(grid, {"mechanisms.rally": 0.0, "mechanisms.exit": 0.5}, seed=seed, days=days)
    assert other != got


def test_run_model_by_name_with_chosen_outcomes():
    got = sim.run_model(
        "policies/none",
        {"households.sample_fraction": 0.05},
        seed=1,
        days=5,
        outcomes=["coop_resisting_final", "strikes_cum:final"],
    )
    assert list(got) == ["coop_resisting_final", "strikes_cum:final"]
    assert got["strikes_cum:final"] == 0.0  # the 'none' policy never strikes


@pytest.mark.parametrize(
    ("params", "key", "problem"),
    [
        ({"mechanisms.rally": -5}, "mechanisms.rally", "greater than or equal to 0"),
        ({"mechanisms.rally": 11.0}, "mechanisms.rally", "less than or equal to 10"),
        ({"mechanisms.rallye": 1.0}, "mechanisms.rallye", "unknown key 'rallye'; did you mean 'rally'?"),
        ({"mechanisms.rally": "strong"}, "mechanisms.rally", "valid number"),
        ({"households.sample_fraction": [0.1]}, "households.sample_fraction", "valid number"),
        ({"towns.Nowhere.persons": 5}, "towns.Nowhere", "no list item named 'Nowhere'"),
        ({"days": 0}, "days", "greater than or equal to 1"),
    ],
)
def test_run_model_refuses_bad_params(grid: sim.Scenario, params: dict, key: str, problem: str):
    with pytest.raises(ScenarioError) as err:
        sim.run_model(grid, params, seed=1, days=3)
    assert err.value.key == key
    assert problem in err.value.message
    assert str(err.value) == f"params: {key}: {err.value.message}"


def test_run_model_refuses_bad_days_and_outcomes(grid: sim.Scenario):
    with pytest.raises(ScenarioError, match=r"days: Input should be greater than or equal to 1 \(got -1\)"):
        sim.run_model(grid, days=-1)
    with pytest.raises(ScenarioError, match="unknown outcome 'coop_resisting_avg'; did you mean"):
        sim.run_model(grid, days=2, outcomes=["coop_resisting_avg"])


def test_with_values_validates_where_model_copy_does_not(grid: sim.Scenario):
    unchecked = grid.model_copy(update={"days": -5})  # pydantic's copy skips validation...
    assert unchecked.days == -5
    with pytest.raises(ScenarioError, match="days: Input should be greater than or equal to 1"):
        with_values(grid, {"days": -5})  # ...the project's does not
    changed = with_values(grid, {"mechanisms.rally": 2.5, "towns.0.council": 0.1})
    assert changed.mechanisms.rally == 2.5 and changed.towns[0].council == 0.1
    assert grid.mechanisms.rally != 2.5 or grid.towns[0].council != 0.1  # the original is untouched
    assert with_values(grid, {}) == grid


def test_simulate_validates_days(grid: sim.Scenario):
    with pytest.raises(ScenarioError, match="simulate: days: Input should be greater than or equal to 1"):
        sim.simulate(grid, days=0)
    result = sim.simulate(grid, seed=3, days=4, household_agents=False)
    assert len(result.timeseries) == 4 and result.scenario.days == 4


def test_ema_workbench_example_runs(tmp_path: Path):
    pytest.importorskip("ema_workbench")
    example = ROOT / "docs" / "examples" / "ema_workbench.py"
    out = tmp_path / "ema.csv"
    proc = subprocess.run(
        [
            sys.executable,
            str(example),
            "--points",
            "6",
            "--replications",
            "2",
            "--days",
            "6",
            "--sample-fraction",
            "0.02",
            "--save",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "feature scores" in proc.stdout and "PRIM box" in proc.stdout
    table = pd.read_csv(out)
    assert len(table) == 6
    assert {"rally", "regime_blame", "pretext_blame", "exit", "coop_resisting_mean"} <= set(table.columns)
    assert table["rally"].between(0, 3).all() and table["coop_resisting_mean"].between(0, 1).all()
    assert table["rally"].nunique() == 6  # a Latin hypercube: one point per stratum


def test_api_md_documents_every_public_name():
    text = (ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    missing = [name for name in sim.__all__ if f"sim.{name}" not in text]
    assert not missing, f"docs/API.md does not document {missing}"
    assert "examples/ema_workbench.py" in text and (ROOT / "docs" / "examples" / "ema_workbench.py").is_file()

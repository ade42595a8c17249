"""Sweeps: sweep-file validation, designs and seeds, engines, the store, resume, failures."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from sim.experiments import (
    DaskEngine,
    ProcessEngine,
    SerialEngine,
    build_design,
    load_results,
    load_sweep,
    plan_runs,
    run_sweep,
    spec_from_dict,
)
from sim.experiments.store import SweepStore
from sim.scenario.loader import ScenarioError

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "scenarios" / "synthetic_grid.yaml"
SWEEPS = ROOT / "scenarios" / "sweeps"

#: A small, fast sweep on the synthetic grid: 2 x 2 points x 2 replicates = 8 runs.
SMALL = {
    "name": "small",
    "scenario": str(GRID),
    "set": ["households.sample_fraction=0.02"],
    "days": 15,
    # Both replicates of this root seed see strikes kill within 15 days (at 2 % of households about one
    # seed in five kills nobody, and test_small_sweep_end_to_end asserts kills); 99 was that seed under
    # the derivation before sim.scenario.seeds (SeedSequence(root).spawn).
    "root_seed": 100,
    "replicates": 2,
    "design": {"method": "factorial"},
    "parameters": {
        "mechanisms.rally": {"values": [0.0, 2.0]},
        "air_campaign.policy": {"values": ["none", "resisting_towns"]},
    },
    "outcomes": ["coop_resisting_mean", "coop_resisting_home_final", "killed_total", "displaced_final"],
    "window": 5,
    "series": ["coop_share_resisting"],
    "batch_size": 3,
}


def write_sweep(tmp_path: Path, data: dict, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------- sweep files


def test_shipped_sweeps_validate() -> None:
    for path in sorted(SWEEPS.glob("*.yaml")):
        spec = load_sweep(path)
        assert len(plan_runs(spec, build_design(spec))) > 0, path
    spec = load_sweep(SWEEPS / "blame_vs_protection.yaml")
    assert len(build_design(spec)) == 4 * 3 * 2
    assert build_design(spec)["mechanisms.rally"].unique().tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("change", "key", "needle"),
    [
        (
            {"parameters": {"mechanisms.rallly": {"values": [0, 1]}}},
            "parameters.mechanisms.rallly",
            "did you mean 'rally'",
        ),
        (
            {"parameters": {"mechanisms.rally": {"values": [0, 99]}}},
            "parameters.mechanisms.rally",
            "less than or equal to 10",
        ),
        (
            {"parameters": {"mechanisms.rally": {"range": [0, 2]}}},
            "parameters.mechanisms.rally",
            "needs 'values' or 'levels'",
        ),
        (
            {"parameters": {"mechanisms.rally": {"range": [2, 1], "levels": 2}}},
            "parameters.mechanisms.rally",
            "low < high",
        ),
        (
            {"parameters": {"mechanisms.rally": {"values": [0, 1], "range": [0, 1]}}},
            "parameters.mechanisms.rally",
            "exactly one",
        ),
        ({"outcomes": ["coop_resisting_meen"]}, "outcomes.0", "did you mean 'coop_resisting_mean'"),
        ({"design": {"method": "sobol", "samples": 10}}, "design", "power of 2"),
        ({"replicates": 0}, "replicates", "greater than or equal to 1"),
        ({"seeds": "shared"}, "seeds", "'common' or 'independent'"),
        ({"scenario": "nowhere.yaml"}, "scenario", "not found"),
        ({"replcates": 2}, "replcates", "did you mean 'replicates'"),
    ],
)
def test_bad_sweep_files_give_one_clear_error(tmp_path: Path, change: dict, key: str, needle: str) -> None:
    data = {**SMALL, **change}
    path = write_sweep(tmp_path, data)
    with pytest.raises(ScenarioError) as info:
        load_sweep(path)
    err = info.value
    assert err.key == key
    assert needle in err.message
    assert str(path) in str(err)
    if key not in ("scenario",):
        assert err.line is not None and err.line > 1
        # the line of the key, or the first line of its value
        lines = path.read_text().splitlines()
        near = lines[err.line - 2] + lines[err.line - 1]
        parts = [part for part in key.split(".") if not part.isdigit()]
        assert any(part in near for part in parts), near


def test_malformed_yaml_and_cli_error_line(tmp_path: Path) -> None:
    import typer

    from sim.cli.experiments import register

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nparameters: {a: [1, 2}\n")
    with pytest.raises(ScenarioError, match=r"malformed YAML") as info:
        load_sweep(bad)
    assert info.value.line == 2
    app = typer.Typer()
    register(app)
    path = write_sweep(tmp_path, {**SMALL, "parameters": {"mechanisms.rally": {"values": [0, 99]}}})
    res = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:")
    assert "parameters.mechanisms.rally" in lines[0] and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- designs and seeds


def test_seeds_common_and_independent() -> None:
    spec = spec_from_dict(SMALL)
    runs = plan_runs(spec, build_design(spec))
    assert runs["run"].tolist() == list(range(8))
    by_rep = runs.groupby("replicate")["seed"].nunique()
    assert (by_rep == 1).all() and runs["seed"].nunique() == 2  # common random numbers
    # one seed derivation (sim.scenario.seeds): replicate r has derive_seed(root, "sweep", "replicate", r)
    from sim.scenario.seeds import derive_seed

    assert runs.loc[runs["replicate"] == 1, "seed"].iloc[0] == derive_seed(100, "sweep", "replicate", 1)
    indep = spec_from_dict({**SMALL, "seeds": "independent"})
    assert plan_runs(indep, build_design(indep))["seed"].nunique() == 8
    other = spec_from_dict({**SMALL, "root_seed": 101})
    assert set(plan_runs(other, build_design(other))["seed"]).isdisjoint(set(runs["seed"]))


def test_sampled_designs_respect_ranges_and_sizes() -> None:
    params = {
        "a": {"range": [1.0, 100.0], "distribution": "loguniform"},
        "b": {"values": ["x", "y", "z"]},
        "c": {"range": [0, 10], "integer": True},
    }
    base = {
        "name": "d",
        "model": "sim.experiments.tasks:fails_above",
        "root_seed": 5,
        "outcomes": ["y"],
        "parameters": params,
    }
    lhs = build_design(spec_from_dict({**base, "design": {"method": "lhs", "samples": 30}}))
    assert len(lhs) == 30 and lhs["a"].between(1, 100).all() and set(lhs["b"]) == {"x", "y", "z"}
    assert lhs["c"].dtype == np.int64 and lhs["c"].between(0, 10).all()
    # Latin hypercube: one sample in each of the 30 strata of every dimension
    assert sorted((lhs["u:a"] * 30).astype(int)) == list(range(30))
    sob = build_design(spec_from_dict({**base, "design": {"method": "sobol", "samples": 8}}))
    assert len(sob) == 8 * (3 + 2)
    mor = build_design(spec_from_dict({**base, "design": {"method": "morris", "trajectories": 4}}))
    assert len(mor) == 4 * (3 + 1)
    again = build_design(spec_from_dict({**base, "design": {"method": "sobol", "samples": 8}}))
    pd.testing.assert_frame_equal(sob, again)


# --------------------------------------------------------------------------- engines and store


@pytest.fixture(scope="module")
def serial_result(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("serial")
    summary = run_sweep(spec_from_dict(SMALL), out, progress=False)
    assert summary.ran == 8 and summary.failed == 0
    return load_results(summary.folder, series=True)


def test_small_sweep_end_to_end(serial_result: pd.DataFrame, tmp_path: Path) -> None:
    df = serial_result
    assert df["run"].tolist() == list(range(8)) and (df["status"] == "ok").all()
    strikes = df[df["air_campaign.policy"] == "resisting_towns"]
    assert (strikes["killed_total"] > 0).all()
    assert (df.loc[df["air_campaign.policy"] == "none", "killed_total"] == 0).all()
    assert df["series:coop_share_resisting"].map(len).eq(15).all()
    # outcomes equal those of a direct simulate() call with the same seed and parameters
    from sim.run.outcomes import compute_outcomes
    from sim.run.simulate import simulate
    from sim.scenario.loader import load_scenario

    row = df.iloc[7]
    sc = load_scenario(
        GRID,
        ["households.sample_fraction=0.02", "days=15", "mechanisms.rally=2.0", "air_campaign.policy=resisting_towns"],
    ).scenario
    direct = compute_outcomes(simulate(sc, int(row["seed"]), household_agents=False).timeseries, SMALL["outcomes"], 5)
    for k, v in direct.items():
        assert row[k] == pytest.approx(v, abs=0, rel=0), k


def test_serial_two_workers_and_dask_identical(serial_result: pd.DataFrame, tmp_path: Path) -> None:
    spec = spec_from_dict(SMALL)
    with ProcessEngine(2) as pool:
        s2 = run_sweep(spec, tmp_path / "pool", engine=pool, progress=False)
    with DaskEngine(n_workers=2) as dask:
        s3 = run_sweep(spec, tmp_path / "dask", engine=dask, progress=False)
    for summary in (s2, s3):
        df = load_results(summary.folder, series=True)
        pd.testing.assert_frame_equal(df, serial_result)
    # The runs ran in the pool's processes, not in this one. (Which of the two took how many is
    # timing: with eight short runs one worker can take them all while the other starts.)
    workers = set(load_results(s2.folder, timing=True)["worker"])
    assert 1 <= len(workers) <= 2
    assert f"{socket.gethostname()}:{os.getpid()}" not in workers


def test_failed_runs_are_recorded_and_sweep_completes(tmp_path: Path) -> None:
    spec = spec_from_dict(
        {
            "name": "fails",
            "model": "sim.experiments.tasks:fails_above",
            "root_seed": 1,
            "replicates": 2,
            "options": {"threshold": 0.5},
            "design": {"method": "factorial"},
            "batch_size": 3,
            "parameters": {"x": {"values": [0.1, 0.4, 0.7, 0.9]}},
            "outcomes": ["y"],
        }
    )
    summary = run_sweep(spec, tmp_path, progress=False)
    assert (summary.planned, summary.ran, summary.failed, summary.failed_total) == (8, 8, 4, 4)
    assert "failures: 4" in summary.text()
    df = load_results(summary.folder)
    bad = df[df["status"] == "failed"]
    assert sorted(bad["x"].unique()) == [0.7, 0.9]
    assert bad["error"].str.startswith("RuntimeError: deliberate failure at x=").all()
    assert bad["y"].isna().all()
    assert df.loc[df["status"] == "ok", "y"].tolist() == [0.1, 0.1, 0.4, 0.4]
    again = run_sweep(spec, tmp_path, progress=False)  # resume: nothing left to run
    assert again.ran == 0 and again.failed_total == 4
    assert len(load_results(summary.folder)) == 8


def test_changed_plan_is_refused_and_fresh_restarts(tmp_path: Path) -> None:
    base = {
        "name": "plan",
        "model": "sim.experiments.tasks:fails_above",
        "root_seed": 1,
        "parameters": {"x": {"values": [0.1, 0.2]}},
        "outcomes": ["y"],
    }
    run_sweep(spec_from_dict(base), tmp_path, progress=False)
    changed = spec_from_dict({**base, "root_seed": 2})
    with pytest.raises(ScenarioError, match="different plan"):
        run_sweep(changed, tmp_path, progress=False)
    s = run_sweep(changed, tmp_path, progress=False, fresh=True)
    assert s.ran == 2 and len(load_results(s.folder)) == 2


RESUME_SWEEP = {
    **SMALL,
    "name": "resume",
    "replicates": 3,
    "parameters": {
        "mechanisms.rally": {"values": [0.0, 1.0, 2.0]},
        "air_campaign.policy": {"values": ["none", "resisting_towns"]},
    },
    "batch_size": 2,
}


def test_resume_after_sigkill_equals_uninterrupted(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, RESUME_SWEEP)
    spec = load_sweep(path)
    full = run_sweep(spec, tmp_path / "full", progress=False)
    expected = load_results(full.folder, series=True)
    assert len(expected) == 18

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "sweep", str(path), "--workers", "1", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    parts = out / "resume" / "parts"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if parts.exists() and len(list(parts.glob("part-*.parquet"))) >= 3:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stored = SweepStore(out / "resume").completed()
    assert 0 < len(stored) < 18, "the sweep must be killed mid-way"
    resumed = run_sweep(spec, out, progress=False)
    assert resumed.skipped == len(stored) and resumed.ran == 18 - len(stored)
    got = load_results(out / "resume", series=True)
    assert not got["run"].duplicated().any()
    pd.testing.assert_frame_equal(got, expected)


def test_python_api_mirrors_cli(tmp_path: Path) -> None:
    import typer

    from sim.cli.experiments import register

    path = write_sweep(tmp_path, {**SMALL, "replicates": 1})
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert "4 runs planned" in res.output and "failures: 0" in res.output
    api = run_sweep(load_sweep(path), tmp_path / "api", progress=False)
    pd.testing.assert_frame_equal(load_results(tmp_path / "cli" / "small"), load_results(api.folder))
    res = CliRunner().invoke(app, ["sensitivity", str(tmp_path / "cli" / "small")])
    assert res.exit_code == 2 and "needs a sobol or morris design" in res.output


def test_serial_engine_matches_direct_execute() -> None:
    from sim.experiments.engine import execute

    ctx = {"model": "sim.experiments.tasks:ishigami", "outcomes": ["y"], "options": {}}
    task = {"run": 0, "point": 0, "replicate": 0, "seed": 1, "params": {"x1": 1.0, "x2": 2.0, "x3": 3.0}}
    row = next(SerialEngine().imap([(task, ctx)]))
    expected = math.sin(1.0) + 7 * math.sin(2.0) ** 2 + 0.1 * 3.0**4 * math.sin(1.0)
    assert row["status"] == "ok" and row["values"]["y"] == pytest.approx(expected)
    assert execute((task, {**ctx, "model": "nowhere:fn"}))["status"] == "failed"

"""Calibration: recovery of known parameters, resume after SIGKILL, the posterior verdict,
the scale check, bad input through the CLI, and a dask cluster that loses a worker."""

from __future__ import annotations

import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import calibration_data as cd
import numpy as np
import pandas as pd
import pytest
import yaml
from calibration_data import CONFIG, ROOT, SCENARIO, SIM, TRUTH

from sim.analysis.calibration import (
    calibrate,
    load_calibration_folder,
    posterior_thesis,
    run_abc_mcmc,
    run_rejection,
    scale_check,
)
from sim.experiments.engine import SerialEngine
from sim.experiments.inference.mcmc import MCMC
from sim.experiments.inference.rejection import REJECTION
from sim.scenario.calibration import load_calibration
from sim.scenario.loader import ScenarioError, load_scenario, read_yaml


def _write_case(folder: Path, scenario: dict[str, Any], config: dict[str, Any]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    s, c = folder / "scenario.yaml", folder / "calibration.yaml"
    s.write_text(yaml.safe_dump(scenario, sort_keys=False))
    c.write_text(yaml.safe_dump(config, sort_keys=False))
    return s, c


def _config(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(read_yaml(CONFIG).data)
    data.update(changes)
    return data


# --------------------------------------------------------------------------- recovery


@pytest.mark.slow
def test_recovery_true_values_lie_inside_the_90_percent_intervals(tmp_path: Path) -> None:
    s, c = _write_case(tmp_path / "case", cd.record(TRUTH, seed=101), _config())
    result = calibrate(cd.load_case(s, c), tmp_path / "out", workers=1, progress=None)
    m = result.marginals.set_index("parameter")
    for path, true in TRUTH.items():
        lo, hi = m.loc[path, "posterior_low"], m.loc[path, "posterior_high"]
        assert lo <= true <= hi, (path, true, lo, hi)
    # the record informs: killed pins the casualties per strike well inside its 33-fold prior range
    cps = m.loc["air_campaign.casualties_per_strike"]
    assert cps["width_ratio"] < 0.8
    assert 1.0 <= cps["posterior_median"] <= 4.0
    # every output of the folder, the history included
    for name in ("posterior.parquet", "report.md", "manifest.json", "predictive.csv", "history.db", "scale_check.csv"):
        assert (result.folder / name).exists(), name
    post = pd.read_parquet(result.folder / "posterior.parquet")
    assert {"generation", "weight", *TRUTH} <= set(post.columns)
    assert post.groupby("generation")["weight"].sum().round(6).eq(1).all()
    assert len(result.abc.generations) == 3
    ppc = result.predictive
    assert set(ppc["role"]) == {"calibration", "validation"}
    report = (result.folder / "report.md").read_text()
    assert "Validation targets (held out of fitting)" in report and "hosted in Beta" in report


# --------------------------------------------------------------------------- rejection


def _wide_case(tmp_path: Path, budget: dict[str, Any]):
    """The recovery case with tolerances of 40%, wide enough for some prior draws to be accepted."""
    wide = {
        name: {"relative": 0.4, "reason": "test uncertainty, wide enough to accept some prior draws"}
        for name in ("killed", "displacements", "hosted in Beta")
    }
    s, c = _write_case(tmp_path / "case", cd.record(TRUTH, seed=303), _config(budget=budget, targets=wide))
    return cd.load_case(s, c)


@pytest.mark.slow
def test_rejection_keeps_exactly_the_draws_inside_every_tolerance_and_resumes_to_the_same_table(
    tmp_path: Path,
) -> None:
    budget = {"method": "rejection", "population": 1000, "generations": 1, "max_runs": 120, "predictive_draws": 4}
    cal = _wide_case(tmp_path, budget)
    first = run_rejection(cal, tmp_path / "a", workers=1, progress=None)
    table = pd.read_parquet(tmp_path / "a" / REJECTION)
    assert len(table) == 120 and first.runs == 120 and first.stop_reason == "max_runs (120)"
    # accepted means every calibration target inside its tolerance interval, and nothing else
    inside = np.ones(len(table), bool)
    for t in cal.calibration_targets:
        lo, hi = t.tolerance_interval()
        inside &= table[f"v:{t.name}"].between(lo, hi).to_numpy()
    assert 0 < inside.sum() < len(table)  # the test is informative: some draws in, some out
    assert (table["accepted"].to_numpy() == inside).all()
    post = first.posterior
    assert len(post) == inside.sum() and (post["weight"] == 1.0).all()
    np.testing.assert_array_equal(
        post["flight.exposure_rate"].to_numpy(), table.loc[inside, "flight.exposure_rate"].to_numpy()
    )
    # the record constrains: the accepted exposure rates are narrower than the prior's 100-fold range
    rates = post["flight.exposure_rate"].to_numpy()
    assert rates.max() / rates.min() < 30
    # interrupted after 60 draws (the table as a kill leaves it), resumed in parallel: the same table
    (tmp_path / "b").mkdir()
    for name in (REJECTION, "calibration.json"):
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    pd.read_parquet(tmp_path / "b" / REJECTION).iloc[:60].to_parquet(tmp_path / "b" / REJECTION)
    resumed = run_rejection(cal, tmp_path / "b", workers=2, progress=None)
    assert resumed.resumed_from == 60
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b" / REJECTION), table)
    pd.testing.assert_frame_equal(resumed.posterior, post)


def test_abc_mcmc_chains_start_at_accepted_draws_move_only_inside_the_tolerances_and_resume(tmp_path: Path) -> None:
    budget = {
        "method": "mcmc",
        "population": 2,
        "generations": 1,
        "max_runs": 60,
        "mcmc_steps": 4,
        "mcmc_step": 0.05,
        "predictive_draws": 4,
    }
    cal = _wide_case(tmp_path, budget)
    first = run_abc_mcmc(cal, tmp_path / "a", workers=1, progress=None)
    rejected = pd.read_parquet(tmp_path / "a" / REJECTION)
    chains = pd.read_parquet(tmp_path / "a" / MCMC)
    starts = rejected[rejected["accepted"]].reset_index(drop=True)
    k = len(starts)  # every draw accepted in phase 1 starts a chain (it stops between batches of 100)
    assert k >= 2
    assert len(chains) == k * 4 and sorted(chains["step"].unique()) == [1, 2, 3, 4]
    cols = list(TRUTH)
    for ch in range(k):
        path = [starts.loc[ch, cols].to_numpy(dtype=float)]
        for _, row in chains[chains["chain"] == ch].sort_values("step").iterrows():
            here = row[cols].to_numpy(dtype=float)
            if row["moved"]:  # a move lands only where every calibration target is inside its tolerance
                for t in cal.calibration_targets:
                    lo, hi = t.tolerance_interval()
                    assert lo <= row[f"v:{t.name}"] <= hi, (t.name, row[f"v:{t.name}"])
                assert not np.allclose(here, path[-1])
            else:  # otherwise the chain stays where it was
                np.testing.assert_array_equal(here, path[-1])
            path.append(here)
    assert chains["moved"].any()  # the test is informative: some steps move
    assert not (chains["moved"] & ~chains["simulated"]).any()  # a proposal outside the prior is never taken
    assert first.runs == len(rejected) + int(chains["simulated"].sum())
    assert len(first.posterior) == k * (4 + 1) and (first.posterior["weight"] == 1.0).all()
    # resumed after step 2 with two workers: the same chains
    (tmp_path / "b").mkdir()
    for name in (REJECTION, MCMC, "calibration.json"):
        (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    # (a table written before `simulated` was recorded: the resume replays the proposals to restore it)
    pd.read_parquet(tmp_path / "b" / MCMC).query("step <= 2").drop(columns="simulated").to_parquet(
        tmp_path / "b" / MCMC
    )
    resumed = run_abc_mcmc(cal, tmp_path / "b", workers=2, progress=None)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b" / MCMC), chains)
    pd.testing.assert_frame_equal(resumed.posterior, first.posterior)


def test_rejection_that_accepts_nothing_is_one_line_exit_2(tmp_path: Path) -> None:
    # a record far outside what the model can produce: killed a thousand times the simulated count
    data = cd.record(TRUTH, seed=304)
    for fig in data["observed"]["figures"]:
        if fig["name"] == "killed":
            fig["value"] = fig["value"] * 1000 + 1000
    budget = {"method": "rejection", "population": 10, "generations": 1, "max_runs": 20, "predictive_draws": 4}
    s, c = _write_case(tmp_path / "case", data, _config(budget=budget))
    out = tmp_path / "out"
    r = subprocess.run(
        [*SIM, "calibrate", str(s), "--config", str(c), "--out", str(out), "--workers", "1"],
        capture_output=True,
        text=True,
        env=cd.env(),
        timeout=600,
    )
    assert r.returncode == 2, r.stderr
    assert "none of 20 prior draws" in r.stderr and "Traceback" not in r.stderr
    assert not (out / "posterior.parquet").exists() and not (out / "report.md").exists()


# --------------------------------------------------------------------------- resume


def _populations(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return int(con.execute("select count(*) from populations where t >= 0").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_resume_after_sigkill_ends_at_the_uninterrupted_posterior(tmp_path: Path) -> None:
    config = _config(quick={"population": 8, "generations": 2, "max_runs": 200, "predictive_draws": 2})
    s, c = _write_case(tmp_path / "case", cd.record(TRUTH, seed=202), config)
    args = [*SIM, "calibrate", str(s), "--config", str(c), "--quick", "--workers", "1"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed)], env=cd.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _populations(killed / "history.db") < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the calibration finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = _populations(killed / "history.db")
    assert stored == 1
    resumed = subprocess.run([*args, "--out", str(killed)], env=cd.env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    straight = tmp_path / "straight"
    whole = subprocess.run([*args, "--out", str(straight)], env=cd.env(), capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr
    a = pd.read_parquet(killed / "posterior.parquet")
    b = pd.read_parquet(straight / "posterior.parquet")
    pd.testing.assert_frame_equal(a, b)  # one process: the same posterior exactly
    import json

    assert json.loads((killed / "manifest.json").read_text())["resumed_from_generation"] == stored
    assert "generation 1:" in resumed.stdout and "generation 0:" not in resumed.stdout


# --------------------------------------------------------------------------- the verdict moves with the record


def _coop_case(tmp_path: Path, name: str, truth: dict[str, float]) -> tuple[Path, Path]:
    figures = [
        {
            "name": "cooperation in resisting towns",
            "kind": "cooperation_share",
            "towns": ["Alpha", "Gamma"],
            "start": {"day": 15},
            "value": 0.0,
            "role": "calibration",
            "source": "synthetic survey",
        },
        {"name": "killed", "kind": "killed", "value": 0.0, "role": "validation", "source": "simulated"},
    ]
    config = {
        "name": name,
        "seed": 3,
        "scale": {"sample_fraction": 0.25},
        "priors": {
            "mechanisms.rally": {"family": "uniform", "low": 0, "high": 3, "reason": "test"},
            "mechanisms.suppression": {"family": "uniform", "low": 0, "high": 6, "reason": "test"},
        },
        "targets": {
            "cooperation in resisting towns": {"absolute": 0.03, "reason": "survey error"},
            "killed": {"relative": 0.3, "reason": "test"},
        },
        "budget": {
            "population": 12,
            "generations": 3,
            "max_runs": 200,
            "predictive_draws": 2,
            "scale_check_seeds": 2,
            "scale_check_fraction": 0.25,
        },
    }
    return _write_case(tmp_path / name, cd.record(truth, seed=404, figures=figures), config)


def _headline_row(p: pd.DataFrame) -> pd.Series:
    """Posterior draws, strikes on resisting towns vs none, cooperation by home town."""
    return p[
        (p["draws_from"] == "posterior")
        & (p["treatment"] == "resisting_towns")
        & (p["control"] == "none")
        & (p["outcome"] == "coop_resisting_home_mean")
    ].iloc[0]


@pytest.mark.slow
def test_posterior_thesis_probabilities_sum_to_one_and_follow_the_record(tmp_path: Path) -> None:
    # Since blame goes first to the perpetrator (ODD 7.8.1), strike harm blamed on HTS no longer
    # outweighs harm blamed on the regime: what pulls the other way is fear's withdrawal (suppression).
    favour = {"mechanisms.rally": 3.0, "mechanisms.suppression": 0.0}
    against = {"mechanisms.rally": 0.0, "mechanisms.suppression": 6.0}
    answers, cases = {}, {}
    for name, truth in (("favours", favour), ("contradicts", against)):
        s, c = _coop_case(tmp_path, name, truth)
        result = calibrate(cd.load_case(s, c), tmp_path / name / "cal", workers=1, progress=None)
        cases[name] = (s, result.folder)
        # root seed 10: with six draws the verdict is noisy; 9 passed under the sweep seeds before
        # sim.scenario.seeds (SeedSequence(root).spawn), 10, 11 and 12 pass under the new derivation, 9 does not
        verdict = posterior_thesis(
            s, result.folder, draws=6, workers=1, progress=False, out=tmp_path / name / "thesis", root_seed=10
        )
        p = verdict.probabilities
        total = p["p_above"] + p["p_within"] + p["p_below"]
        assert np.allclose(total.dropna(), 1.0)
        assert set(p["draws_from"]) == {"posterior", "prior"}
        row = _headline_row(p)
        answers[name] = row
        assert (verdict.folder / "report.md").exists() and (verdict.folder / "probabilities.csv").exists()
    # opposite answers: the record that favours the thesis moves mass above +ROPE, the other below -ROPE
    fav, con = answers["favours"], answers["contradicts"]
    assert fav["p_above"] >= 0.5 and fav["p_above"] > con["p_above"] + 0.3, (fav, con)
    assert con["p_below"] >= 0.5 and con["p_below"] > fav["p_below"] + 0.3, (fav, con)
    assert fav["mean_effect"] > 0 > con["mean_effect"]
    # an assumption the calibration held at its default, changed on every run of the same draws (--set):
    # without rally and with none of the regime's harm favouring HTS, the favouring record's effect shrinks
    s, folder = cases["favours"]
    sets = ["mechanisms.rally=0", "choice.regime_grievance_to_hts=0"]
    changed = posterior_thesis(
        s, folder, draws=6, workers=1, progress=False, out=tmp_path / "changed", root_seed=10, overrides=sets
    )
    p = changed.probabilities
    row = _headline_row(p)
    assert row["mean_effect"] < fav["mean_effect"] - 0.02, (row["mean_effect"], fav["mean_effect"])
    assert json.loads((changed.folder / "manifest.json").read_text())["overrides"] == sets
    assert "--set mechanisms.rally=0 choice.regime_grievance_to_hts=0" in (changed.folder / "report.md").read_text()


# --------------------------------------------------------------------------- scale


def test_target_statistics_at_the_calibration_scale_agree_with_full_scale() -> None:
    cal = cd.load_case(SCENARIO, CONFIG)
    cal = type(cal)(**{**cal.__dict__, "sample_fraction": 0.25})
    cal = type(cal)(**{**cal.__dict__, "budget": cal.budget.model_copy(update={"scale_check_seeds": 4})})
    table = scale_check(SerialEngine(), cal, TRUTH, seed=5)
    assert table["agree"].all(), table
    # counts are scaled back up: the two scales report the same order of persons
    killed = table.set_index("target").loc["killed"]
    assert 0.7 < killed["mean_calibration_scale"] / killed["mean_reference_scale"] < 1.4


# --------------------------------------------------------------------------- bad input


def _bad(tmp_path: Path, text_changes: dict[str, str] | None = None, scenario_changes: dict[str, str] | None = None):
    case = tmp_path / "bad"
    case.mkdir(exist_ok=True)
    s = case / "scenario.yaml"
    c = case / "calibration.yaml"
    st = SCENARIO.read_text()
    for a, b in (scenario_changes or {}).items():
        assert a in st
        st = st.replace(a, b)
    s.write_text(st)
    ct = CONFIG.read_text()
    for a, b in (text_changes or {}).items():
        assert a in ct
        ct = ct.replace(a, b)
    c.write_text(ct)
    out = tmp_path / "out"
    proc = subprocess.run(
        [*SIM, "calibrate", str(s), "--config", str(c), "--workers", "1", "--out", str(out)],
        env=cd.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, out, c, s


BAD_CASES = {
    "unknown parameter path": (
        {"flight.exposure_rate:": "flight.exposure_rte:"},
        None,
        "unknown parameter path 'flight.exposure_rte'",
        "priors.flight.exposure_rte",
    ),
    "unknown prior family": (
        {"family: loguniform, low: 0.3": "family: beta, low: 0.3"},
        None,
        "family",
        "priors.air_campaign.casualties_per_strike.family",
    ),
    "prior outside the schema range": (
        {"low: 0.0003, high: 0.03": "low: 0.0003, high: 30"},
        None,
        "prior bound 30",
        "priors.flight.exposure_rate",
    ),
    "target without a figure": (
        {"  killed: {relative": "  kiled: {relative"},
        None,
        "no observed figure named 'kiled'",
        "targets.kiled",
    ),
    "target window outside the scenario": (
        {"seed: 7": "seed: 7\ndays: 10"},
        {"kind: killed, value: 100": "kind: killed, start: {day: 12}, value: 100"},
        "lies outside the scenario window",
        "targets.killed",
    ),
    "negative budget": ({"max_runs: 200": "max_runs: -5"}, None, "greater than or equal to 1", "budget.max_runs"),
    "empty budget": (
        {
            "budget: {population: 16, generations: 3, max_runs: 200, predictive_draws: 6, scale_check_seeds: 2, "
            "scale_check_fraction: 1.0}": "budget: {}"
        },
        None,
        "Field required",
        "budget.population",
    ),
    "duplicate key": ({"seed: 7": "seed: 7\nseed: 8"}, None, "seed", ""),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_calibration_input_is_one_line_exit_2_nothing_written(tmp_path: Path, case: str) -> None:
    changes, scenario_changes, message, key = BAD_CASES[case]
    proc, out, c, _ = _bad(tmp_path, changes, scenario_changes)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"{c.name}:" in err and message in err, err
    assert key in err, err
    line = int(err.split(f"{c.name}:")[1].split(":")[0])
    lines = c.read_text().splitlines()
    assert 1 <= line <= len(lines)
    if key:  # the line named is the one holding the key (or its block)
        assert any(part in lines[line - 1] for part in key.split(".")[:2]), (line, lines[line - 1])
    assert not out.exists()


def _with_prior(tmp_path: Path, line: str) -> Path:
    c = tmp_path / "calibration.yaml"
    text = CONFIG.read_text()
    assert "priors:\n" in text
    c.write_text(text.replace("priors:\n", f"priors:\n  {line}\n", 1))
    return c


def test_a_prior_on_an_optional_parameter_left_off_is_drawn_and_its_bounds_checked(tmp_path: Path) -> None:
    """hts.control_half_life_days is null (off) in the scenario: a prior turns it on in every draw, and a
    bound outside its range (7-3650 days) is refused like any other; a non-numeric optional field is refused."""
    sc = load_scenario(SCENARIO)
    assert sc.scenario.hts.control_half_life_days is None
    line = "hts.control_half_life_days: {family: loguniform, low: 30, high: 730, reason: t}"
    cal = load_calibration(_with_prior(tmp_path, line), sc)
    prior = next(p for p in cal.priors if p.path == "hts.control_half_life_days")
    assert (prior.low, prior.high, prior.family) == (30, 730, "loguniform")
    with pytest.raises(ScenarioError, match=r"priors\.hts\.control_half_life_days: prior bound 3 is not a valid value"):
        load_calibration(_with_prior(tmp_path, line.replace("low: 30", "low: 3")), sc)
    with pytest.raises(ScenarioError, match=r"priors\.air_campaign\.start: prior bound 1 is not a valid value"):
        load_calibration(_with_prior(tmp_path, "air_campaign.start: {family: uniform, low: 1, high: 5, reason: t}"), sc)


def test_a_target_town_that_does_not_exist_is_a_clean_error(tmp_path: Path) -> None:
    proc, out, _, s = _bad(tmp_path, None, {"towns: [Beta]": "towns: [Betta]"})
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{s.name}:" in err and "unknown town 'Betta'" in err and "observed.figures" in err
    assert not out.exists()


def test_shipped_calibration_file_loads_against_the_shipped_scenario() -> None:
    sc = load_scenario(ROOT / "scenarios" / "idlib_2017_2018.yaml")
    cal = load_calibration(ROOT / "scenarios" / "calibration" / "idlib_2017_2018.yaml", sc)
    assert {f"mechanisms.{m}" for m in ("rally", "regime_blame", "institutions", "suppression")} <= {
        p.path for p in cal.priors
    }
    assert len(cal.validation_targets) >= 2 and len(cal.calibration_targets) >= 2
    roles = {t.name: t.role for t in cal.targets}
    acaps, ocha = "acaps-displacements-2018-01-22", "ocha-displacements-2018-02-03"
    assert roles[acaps] == roles[ocha]  # OCHA's window contains ACAPS's: never split across roles
    # the targets are the record's entries: every calibration entry, its tolerance the record's unless
    # the file overrides it with a reason
    record = sc.record
    assert {e.id for e in record.entries if e.role == "calibration"} == {t.name for t in cal.calibration_targets}
    by_id = {t.name: t for t in cal.targets}
    assert by_id[acaps].relative == record.entry(acaps).uncertainty.relative
    assert by_id["ocha-mainly-toward-2018-02-03"].absolute == 0.1
    assert all(record.entry(t.name).role in ("calibration", "validation") for t in cal.targets)
    assert "flight.return_rate" in {p.path for p in cal.priors}
    quick = load_calibration(ROOT / "scenarios" / "calibration" / "idlib_2017_2018.yaml", sc, quick=True)
    assert quick.budget.max_runs < cal.budget.max_runs
    with pytest.raises(ScenarioError):
        load_calibration(ROOT / "scenarios" / "calibration" / "missing.yaml", sc)


# --------------------------------------------------------------------------- apply


def test_apply_writes_posterior_medians_and_a_changed_config_refuses_to_resume(tmp_path: Path) -> None:
    config = _config(quick={"population": 6, "generations": 1, "max_runs": 60, "predictive_draws": 2})
    s, c = _write_case(tmp_path / "case", cd.record(TRUTH, seed=505), config)
    out = tmp_path / "out"
    assert calibrate(cd.load_case(s, c, quick=True), out, workers=1, progress=None).folder == out
    shipped = tmp_path / "case" / "calibrated.yaml"
    shipped.write_text("extends: scenario.yaml\n")
    proc = subprocess.run(
        [*SIM, "calibrate", str(shipped), "--config", str(c), "--quick", "--out", str(out), "--apply"],
        env=cd.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    stored = load_calibration_folder(out)
    text = shipped.read_text()
    assert "extends: scenario.yaml" in text and stored.calibration_id in text
    sc = load_scenario(shipped).scenario
    med = stored.marginals.set_index("parameter")["posterior_median"]
    assert sc.air_campaign.casualties_per_strike == pytest.approx(med["air_campaign.casualties_per_strike"], rel=1e-5)
    assert sc.flight.exposure_rate == pytest.approx(med["flight.exposure_rate"], rel=1e-5)
    # a scenario without `extends` is refused, unchanged
    plain = tmp_path / "case" / "scenario.yaml"
    before = plain.read_text()
    bad = subprocess.run(
        [*SIM, "calibrate", str(plain), "--config", str(c), "--quick", "--out", str(out), "--apply"],
        env=cd.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "extends" in bad.stderr and plain.read_text() == before
    # a changed calibration file refuses to resume the stored one, points to --fresh, writes nothing
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    c.write_text(c.read_text().replace("seed: 7", "seed: 8"))
    again = subprocess.run(
        [*SIM, "calibrate", str(s), "--config", str(c), "--quick", "--workers", "1", "--out", str(out)],
        env=cd.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2
    assert "--fresh" in again.stderr and "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


# --------------------------------------------------------------------------- dask


@pytest.fixture
def dask_cluster(tmp_path: Path):
    """A real dask scheduler and two `dask worker` processes (one thread each), torn down after."""
    dask = str(Path(sys.executable).with_name("dask"))
    info = tmp_path / "scheduler.json"
    env = cd.env()
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--scheduler-file", str(info), "--port", "0", "--no-dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    deadline = time.time() + 60
    while not info.exists() and time.time() < deadline:
        time.sleep(0.1)
    import json

    time.sleep(0.2)
    address = json.loads(info.read_text())["address"]
    workers = [
        subprocess.Popen(
            [dask, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--no-nanny"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    procs += workers
    from distributed import Client

    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=90)
    try:
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_calibration_on_a_dask_cluster_survives_losing_a_worker(tmp_path: Path, dask_cluster) -> None:
    address, workers = dask_cluster
    config = _config(quick={"population": 8, "generations": 2, "max_runs": 200, "predictive_draws": 2})
    s, c = _write_case(tmp_path / "case", cd.record(TRUTH, seed=606), config)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*SIM, "calibrate", str(s), "--config", str(c), "--quick", "--scheduler", address, "--out", str(out)],
        env=cd.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while _populations(out / "history.db") < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before a worker could be killed"
    os.kill(workers[0].pid, signal.SIGKILL)  # mid-run: the second generation is being sampled
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "generation 1:" in stdout
    post = pd.read_parquet(out / "posterior.parquet")
    assert sorted(post["generation"].unique()) == [0, 1]
    import json

    assert "dask scheduler" in json.loads((out / "manifest.json").read_text())["sampler"]


# --------------------------------------------------------------------------- a corrupt calibration folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


CORRUPTIONS = {
    "truncated manifest": ("manifest.json", _truncate),
    "empty manifest": ("manifest.json", lambda p: p.write_text("")),
    "manifest without priors": ("manifest.json", lambda p: p.write_text('{"calibration_id": "x"}')),
    "truncated posterior": ("posterior.parquet", _truncate),
    "empty posterior": ("posterior.parquet", lambda p: p.write_bytes(b"")),
    "missing marginals": ("marginals.csv", lambda p: p.unlink()),
    "empty marginals": ("marginals.csv", lambda p: p.write_text("")),
    "marginals without medians": ("marginals.csv", lambda p: p.write_text("parameter\nflight.exposure_rate\n")),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_calibration_folder_is_one_line_naming_the_file_exit_2_nothing_written(
    tmp_path: Path, run_cli, case: str
) -> None:
    name, corrupt = CORRUPTIONS[case]
    folder = cd.stored_folder(tmp_path / "cal")
    corrupt(folder / name)
    before = sorted(p.name for p in folder.iterdir())
    # sim thesis --posterior FOLDER
    r = run_cli("thesis", SCENARIO, "--posterior", folder, "--draws", "2", "--workers", "1")
    err = r.stderr.strip()
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert name in err, err
    assert sorted(p.name for p in folder.iterdir()) == before  # no thesis folder
    # sim calibrate SCENARIO --apply
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    (case_dir / "scenario.yaml").write_text(SCENARIO.read_text())
    calibrated = case_dir / "calibrated.yaml"
    calibrated.write_text("extends: scenario.yaml\n")
    r = run_cli("calibrate", calibrated, "--config", CONFIG, "--out", folder, "--apply")
    err = r.stderr.strip()
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert name in err, err
    assert calibrated.read_text() == "extends: scenario.yaml\n"
    assert sorted(p.name for p in case_dir.iterdir()) == ["calibrated.yaml", "scenario.yaml"]


def test_the_hand_written_folder_is_readable_and_applies(tmp_path: Path, run_cli) -> None:
    """The corruption cases above start from a folder that --apply accepts (so each fails for its one fault)."""
    folder = cd.stored_folder(tmp_path / "cal")
    assert load_calibration_folder(folder).calibration_id == "recovery-0123456789"
    (tmp_path / "scenario.yaml").write_text(SCENARIO.read_text())
    calibrated = tmp_path / "calibrated.yaml"
    calibrated.write_text("extends: scenario.yaml\n")
    r = run_cli("calibrate", calibrated, "--config", CONFIG, "--out", folder, "--apply")
    assert r.returncode == 0, r.stderr
    assert load_scenario(calibrated).scenario.flight.exposure_rate == pytest.approx(TRUTH["flight.exposure_rate"])


@pytest.mark.slow
def test_method_option_overrides_the_file_and_is_recorded(tmp_path: Path, run_cli) -> None:
    budget = {"method": "smc", "population": 1000, "generations": 1, "max_runs": 120, "predictive_draws": 4}
    cal = _wide_case(tmp_path, budget)
    out = tmp_path / "out"
    r = run_cli(
        "calibrate",
        cal.scenario.path,
        "--config",
        cal.path,
        "--out",
        out,
        "--workers",
        "1",
        "--method",
        "rejection",
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    import json

    assert json.loads((out / "manifest.json").read_text())["method"] == "rejection"
    assert json.loads((out / "calibration.json").read_text())["method"] == "rejection"
    assert (out / REJECTION).exists() and not (out / "history.db").exists()
    assert "method `rejection`" in (out / "report.md").read_text()
    # another method in the same folder is refused (one line, --fresh), nothing written
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    r = run_cli("calibrate", cal.scenario.path, "--config", cal.path, "--out", out, "--workers", "1")
    assert r.returncode == 2 and "--fresh" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    r = run_cli("calibrate", cal.scenario.path, "--config", cal.path, "--out", out, "--method", "npx")
    assert r.returncode == 2 and "--method 'npx'" in r.stderr, r.stderr


def test_sampler_tables_append_parts_and_a_kill_between_compaction_steps_stores_nothing_twice(tmp_path: Path) -> None:
    from sim.experiments.inference.parts import PartTable

    whole = pd.DataFrame({"draw": np.arange(10), "x": np.linspace(0, 1, 10), "accepted": [True, False] * 5})
    store = PartTable(tmp_path, "rejection", key=("draw",))
    assert store.load().empty
    store.append(whole.iloc[:4])
    store.append(whole.iloc[4:7])
    assert [p.name for p in store.part_files()] == ["part-000001.parquet", "part-000002.parquet"]
    assert not (tmp_path / "rejection.parquet").exists()  # nothing rewritten while appending
    pd.testing.assert_frame_equal(store.load(), whole.iloc[:7].reset_index(drop=True))
    # a kill after the compacted table was written but before its parts were removed
    (tmp_path / "rejection.parquet").write_bytes(b"")
    whole.iloc[:7].to_parquet(tmp_path / "rejection.parquet", index=False)
    store.append(whole.iloc[7:])
    (store.parts_dir / ".part-000004.tmp-1-abc.parquet").write_bytes(b"half a part")  # a killed writer's temp
    pd.testing.assert_frame_equal(store.load(), whole)
    pd.testing.assert_frame_equal(store.compact(), whole)
    assert not store.parts_dir.exists()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "rejection.parquet"), whole)


def test_apply_keeps_the_values_the_calibration_ran_with():
    """A value the scenario file sets over its base that is not calibrated is held by --apply (the
    simulations ran with it); calibrated parameters, lists holding one, and the record are not."""
    from sim.analysis.calibration import held_values

    base = {"a": {"x": 1.0, "y": 2.0}, "s": [{"name": "p", "v": 1.0}], "observed": {"z": 1}, "b": 3}
    current = {"a": {"x": 1.5, "y": 2.5}, "s": [{"name": "p", "v": 9.0}], "observed": {"z": 2}, "b": 3}
    assert held_values(current, base, ["a.y", "s.p.v"]) == {"a.x": 1.5}
    assert held_values(current, base, ["a.x", "a.y", "s.p.v"]) == {}
    assert held_values(base, base, []) == {}


def test_a_parameter_at_its_neutral_default_leaves_the_fingerprints_and_other_values_change_them(tmp_path):
    """choice.regime_grievance_to_hts = 1 reproduces the simulations from before it existed, so a stored
    reference table of a calibration that holds it fixed stays valid (sim.scenario.calibration.NEUTRAL_DEFAULTS);
    any other value does not; so does hts.control_half_life_days = null. The shipped calibration has a prior on
    rho, so the test uses a copy without one (and without any on control's half-life)."""
    from sim.scenario.calibration import NEUTRAL_DEFAULTS

    assert NEUTRAL_DEFAULTS == {"choice.regime_grievance_to_hts": 1.0, "hts.control_half_life_days": None}
    shipped = ROOT / "scenarios" / "calibration" / "idlib_2017_2018.yaml"
    # The base scenario leaves rho at its default (the shipped one holds a calibrated draw of it).
    base = ROOT / "scenarios" / "idlib_2017_2018_base.yaml"
    lines = shipped.read_text(encoding="utf-8").splitlines(keepends=True)
    neutral = ("  choice.regime_grievance_to_hts:", "  hts.control_half_life_days:")
    held = [line for line in lines if not line.startswith(neutral)]
    assert sum(line.startswith(neutral[0]) for line in lines) == 1  # the shipped file's prior on rho, removed
    assert len(held) < len(lines)  # (with any prior on control's half-life)
    config = tmp_path / "idlib_2017_2018.yaml"
    config.write_text("".join(held), encoding="utf-8")
    loaded = load_scenario(base)
    cal = load_calibration(config, loaded)
    assert "choice.regime_grievance_to_hts" not in {p.path for p in cal.priors}
    assert loaded.scenario.choice.regime_grievance_to_hts == 1.0
    dump = loaded.scenario.model_dump(mode="json")
    assert dump["choice"]["regime_grievance_to_hts"] == 1.0  # the scenario has it; the fingerprints leave it out
    other = load_calibration(config, load_scenario(base, ["choice.regime_grievance_to_hts=0.5"]))
    assert other.fingerprint() != cal.fingerprint()
    assert other.reference_fingerprint() != cal.reference_fingerprint()
    explicit = load_calibration(config, load_scenario(base, ["choice.regime_grievance_to_hts=1"]))
    assert explicit.reference_fingerprint() == cal.reference_fingerprint()
    # Control's return to its standing level (decision 34): off (null) leaves both fingerprints, a half-life
    # changes them.
    assert loaded.scenario.hts.control_half_life_days is None
    relaxing = load_calibration(config, load_scenario(base, ["hts.control_half_life_days=90"]))
    assert relaxing.reference_fingerprint() != cal.reference_fingerprint()
    explicit = load_calibration(config, load_scenario(base, ["hts.control_half_life_days=null"]))
    assert explicit.reference_fingerprint() == cal.reference_fingerprint()
    # The shipped file draws rho from its prior instead.
    with_prior = load_calibration(shipped, loaded)
    assert "choice.regime_grievance_to_hts" in {p.path for p in with_prior.priors}

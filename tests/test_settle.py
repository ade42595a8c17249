"""``sim settle`` (which observation would settle the thesis) and ``sim run --posterior-draws``.

The ranking, the emulator and the reliability check on toys with a known answer (no model runs);
``sim settle --quick`` end to end on the quick npe calibration of the recovery scenario the npe
tests fit (:func:`calibration_data.fitted_npe`, in their xdist group so it is fitted once); the
reliability in the posterior thesis report; the posterior draws on the small recovery scenario
with a hand-written posterior sample beside it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import calibration_data as cd
import numpy as np
import pandas as pd
import pytest

from sim.scenario.calibration import Prior
from sim.scenario.seeds import generator

RECOVERY = cd.SCENARIO
SIM = cd.SIM
PRIORS = (
    Prior("a", "uniform", -2.0, 2.0, None, None, "toy"),
    Prior("b", "uniform", -2.0, 2.0, None, None, "toy"),
)


# --------------------------------------------------------------------------- the emulator and the ranking


def test_the_effect_emulator_recovers_a_quadratic_effect_and_its_noise() -> None:
    from sim.experiments.inference.npe import ParameterMap
    from sim.experiments.inference.npe_settle import EffectEmulator

    # quadratic on the unbounded scale the emulator works on (logit of the position in the box)
    pmap = ParameterMap(PRIORS)

    def truth(th: np.ndarray) -> np.ndarray:
        u = pmap.forward(th)
        return 0.05 * u[:, 0] + 0.02 * u[:, 0] * u[:, 1]

    rng = generator(1, "test", "emulator")
    theta = rng.uniform(-2, 2, size=(400, 2))
    emu = EffectEmulator.fit(PRIORS, theta, truth(theta) + rng.normal(0, 0.01, 400), seed=1)
    assert emu.residual_sd == pytest.approx(0.01, rel=0.3)
    grid = rng.uniform(-1.5, 1.5, size=(200, 2))
    assert np.sqrt(np.mean((emu(grid) - truth(grid)) ** 2)) < 0.005
    assert emu.cv_r2 > 0.8


def test_an_observable_that_determines_the_effect_ranks_above_pure_noise() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("sbi")
    torch.set_num_threads(1)
    from sim.experiments.inference.npe import NPESettings
    from sim.experiments.inference.npe_settle import BASELINE_NOISE, rank_candidates

    # the record measures a only; the effect is b; candidate "b seen" measures b, "noise" nothing
    def table(n: int, label: str) -> pd.DataFrame:
        rng = generator(7, "test", label)
        a, b = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n)
        return pd.DataFrame(
            {
                "a": a,
                "b": b,
                "s:a": a + rng.normal(0, 0.3, n),
                "c:b seen": b + rng.normal(0, 0.3, n),
                "c:noise": rng.normal(0, 1, n),
                f"{BASELINE_NOISE}:0": rng.normal(0, 1, n),
            }
        )

    train, evaluate = table(600, "train"), table(30, "evaluate")
    settings = NPESettings(model="maf", members=1, hidden_features=32, num_transforms=3, max_num_epochs=60)
    ranking = rank_candidates(
        PRIORS,
        train,
        evaluate,
        ["s:a"],
        {"b seen": ["c:b seen"], "noise": ["c:noise"]},
        lambda th: th[:, 1],
        settings=settings,
        seed=3,
        draws=200,
    )
    assert list(ranking["candidate"]) == ["b seen", "noise"]
    best, noise = ranking.iloc[0], ranking.iloc[1]
    # the prior sd of b is 4 / sqrt(12) ~ 1.15; seeing b with sd 0.3 leaves about 0.29
    assert best["relative_reduction"] > 0.5
    assert best["reduction"] - noise["reduction"] > 4 * np.hypot(best["mcse"], noise["mcse"])
    assert abs(noise["relative_reduction"]) < 0.15


def test_candidates_are_one_series_per_town_quantity_and_governorate_quantity() -> None:
    from sim.experiments.inference.npe_settle import candidate_groups, candidate_towns, candidate_values, periods
    from sim.run.simulate import simulate
    from sim.scenario.loader import load_scenario

    sc = load_scenario(RECOVERY).scenario
    towns = candidate_towns(sc, 8)
    assert towns == ["Alpha", "Gamma"]  # the resisting towns
    spans = periods(sc, sc.days)
    assert spans == [("d0-24", 0, 24)]
    groups = candidate_groups(towns, [s[0] for s in spans])
    values = candidate_values(simulate(sc, 3, household_agents=False).frames, towns, spans)
    assert set(values) == {c for cols in groups.values() for c in cols}
    assert all(np.isfinite(v) for v in values.values())


# --------------------------------------------------------------------------- sim settle end to end


def _smallest_simulations(folder: Path) -> int:
    """The fewest reference rows with the 20 training rows ``sim settle`` needs and 5 held-out rows to check."""
    from sim.experiments.inference.npe_method import NPE_FOLDER, load_reference

    held_out = float(json.loads((folder / NPE_FOLDER / "used.json").read_text())["held_out"])
    ref, _ = load_reference(folder)
    held = ref.sort_values("draw")["split"].to_numpy(float) < held_out
    return next(n for n in range(20, len(held) + 1) if held[:n].sum() >= 5 and (~held[:n]).sum() >= 20)


@pytest.fixture
def fitted() -> Path:
    """The npe calibration folder of the recovery case the npe tests fit (built once per worker)."""
    pytest.importorskip("torch")
    pytest.importorskip("sbi")
    return cd.fitted_npe()[2]


@pytest.mark.xdist_group(cd.NPE_GROUP)  # with the npe tests: the fitted calibration is built once
def test_settle_quick_ranks_every_candidate_writes_its_outputs_and_resumes(fitted: Path, tmp_path: Path) -> None:
    from sim.experiments.inference.npe_settle import NOISE, SECTION, candidate_groups

    folder = tmp_path / "cal"
    shutil.copytree(fitted, folder)
    n = _smallest_simulations(folder)
    # --max-epochs 30: the quick budget's 200 epochs spend most of this test's time training on a few dozen rows
    args = [*SIM, "settle", str(folder), "--quick", "--simulations", str(n), "--evaluations", "2", "--draws", "20"]
    args += ["--max-epochs", "30"]
    r = subprocess.run([*args, "--workers", "1"], env=cd.env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((folder / "settle" / "summary.json").read_text())
    assert summary["budget"]["max_epochs"] == 30
    # the reduction's mean is over the records ranked on (those meeting the record's interval entries), and says so
    assert f"mean over the {summary['posterior_records']} of 2 records simulated from the posterior" in r.stdout
    assert f"settle table: {n + 2} rows, {n + 2} simulated by this run" in r.stdout, r.stdout
    assert f"re-simulated reference rows with their stored statistics: {n} of {n}" in r.stdout, r.stdout
    # the ranking: every candidate and the noise reference, a reduction and its Monte Carlo error
    ranking = pd.read_csv(folder / "settle.csv")
    doc = json.loads((folder / "settle" / "settle.json").read_text())
    candidates = set(candidate_groups(doc["towns"], [p[0] for p in doc["periods"]])) | {NOISE}
    assert sorted(ranking["candidate"]) == sorted(candidates) and len(doc["towns"]) >= 1
    assert list(ranking["rank"]) == list(range(1, len(ranking) + 1))
    ranked = ranking[np.isfinite(ranking["reduction"])]
    assert NOISE in set(ranked["candidate"]) and len(ranked) >= 2
    assert np.isfinite(ranked["mcse"]).all() and (ranked["mcse"] >= 0).all()
    assert list(ranked.index) == list(range(len(ranked)))  # the ranked ones first, best first
    assert ranked["reduction"].is_monotonic_decreasing
    unranked = ranking[~np.isfinite(ranking["reduction"])]
    assert (unranked["note"] == "constant in every simulation").all()
    assert (folder / "settle.png").stat().st_size > 0
    report = (folder / "report.md").read_text()
    assert report.count(SECTION) == 1 and "![settle](settle.png)" in report
    assert "## Checks before belief" in report  # the calibration's report kept, the section added
    # the reliability of the thesis probabilities on the held-out rows, with its bins
    rel = json.loads((folder / "thesis_reliability.json").read_text())
    assert rel["rows"] >= 5 and isinstance(rel["passed"], bool)
    assert rel["bins"] and {b["side"] for b in rel["bins"]} == {"above", "below"}
    for b in rel["bins"]:
        assert 0 <= b["mean_predicted"] <= 1 and 0 <= b["observed"] <= 1 and b["n"] >= 1
    assert sum(b["n"] for b in rel["bins"] if b["side"] == "above") == rel["rows"]
    assert len(pd.read_csv(folder / "thesis_reliability.csv")) == len(rel["bins"])
    table = pd.read_parquet(folder / "settle" / "table.parquet")
    assert len(table) == n + 2
    # again: everything resumed from the settle table, nothing simulated
    again = subprocess.run([*args, "--workers", "1"], env=cd.env(), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"settle table: {n + 2} rows, 0 simulated by this run" in again.stdout, again.stdout
    assert json.loads((folder / "settle" / "summary.json").read_text())["simulated"] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "settle" / "table.parquet"), table)
    # ... and nothing trained: the ranking's inputs are unchanged, so it is read back, identical
    assert "no flows trained" in again.stdout, again.stdout
    pd.testing.assert_frame_equal(pd.read_csv(folder / "settle.csv"), ranking)
    assert (folder / "report.md").read_text().count(SECTION) == 1


@pytest.mark.parametrize("kind", ["rejection calibration", "empty folder"])
def test_settle_on_a_folder_that_is_not_an_npe_calibration_is_one_line_exit_2_nothing_written(
    tmp_path: Path, kind: str
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sbi")
    folder = tmp_path / "cal"
    if kind == "empty folder":
        folder.mkdir()
    else:
        cd.stored_folder(folder, method="rejection")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    line = _one_line_error([*SIM, "settle", str(folder), "--quick", "--workers", "1"])
    assert ("'rejection'" if kind != "empty folder" else "manifest.json") in line, line
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def _one_line_error(args: list[str]) -> str:
    """Run ``args``; assert exit 2 with one line on stderr and no traceback; return that line."""
    r = subprocess.run(args, env=cd.env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.xdist_group(cd.NPE_GROUP)  # with the npe tests: the fitted calibration is built once
def test_settle_without_the_inference_extra_is_one_line_exit_2_nothing_written(fitted: Path, tmp_path: Path) -> None:
    """A good npe folder, but sbi cannot be imported: the folder's checks pass, then one line names the
    missing extra; nothing is written into the folder."""
    folder = tmp_path / "cal"
    shutil.copytree(fitted, folder)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    line = _one_line_error([*cd.SIM_WITHOUT_SBI, "settle", str(folder), "--quick", "--workers", "1"])
    assert "inference" in line, line
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before


# --------------------------------------------------------------------------- reliability of the probabilities


def test_binned_reliability_passes_honest_probabilities_and_fails_over_confident_ones() -> None:
    from sim.analysis.posterior_checks import reliability_check

    passed, failed = 0, 0
    for k in range(20):
        rng = generator(11, "test", "reliability", k)
        p = rng.uniform(0, 1, 2000)
        y = (rng.uniform(0, 1, 2000) < p).astype(int)
        passed += reliability_check(p, y, bins=5).passed
        over = reliability_check(np.clip(0.5 + 1.8 * (p - 0.5), 0, 1), y, bins=5)  # pushed toward 0 and 1
        failed += not over.passed
        assert {"n", "mean_predicted", "observed", "interval_low", "interval_high", "inside"} <= set(over.data.columns)
    assert passed >= 18  # a 95% check (Bonferroni over the bins) passes honest probabilities
    assert failed == 20


class _Posterior:
    """The exact posterior of theta ~ N(0, 1) given x = theta + N(0, 0.5^2), its sd times ``shrink``."""

    def __init__(self, shrink: float) -> None:
        self.statistics = ["s:x"]
        self.shrink = shrink

    def sample_many(self, x: pd.DataFrame, draws: int, seed: int) -> np.ndarray:
        xv = x["s:x"].to_numpy(float)
        z = generator(seed, "test", "posterior").standard_normal((draws, len(xv), 1))
        return (xv / 1.25)[None, :, None] + np.sqrt(0.2) * self.shrink * z


class _Effect:
    """The emulated effect: theta itself, with one run's noise of sd ``residual_sd`` (normal quantiles as
    its residuals)."""

    def __init__(self, residual_sd: float) -> None:
        from scipy import stats

        from sim.experiments.inference.npe_settle import EffectEmulator

        self.residual_sd = residual_sd
        self.residuals = residual_sd * stats.norm.ppf((np.arange(2000) + 0.5) / 2000)
        self.exceed = EffectEmulator.exceed.__get__(self)

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        return theta[:, 0]


def _held(rows: int) -> pd.DataFrame:
    rng = generator(12, "test", "held")
    theta = rng.standard_normal(rows)
    return pd.DataFrame({"s:x": theta + rng.normal(0, 0.5, rows), "effect": theta + rng.normal(0, 0.3, rows)})


def _reliability(over_confident: bool) -> dict:
    from sim.analysis.settle import thesis_reliability

    held = _held(3000)
    if over_confident:  # the posterior and the run noise both 10 times too narrow
        return thesis_reliability(_Posterior(0.1), held, _Effect(0.03), 0.1, draws=200, seed=13)
    return thesis_reliability(_Posterior(1.0), held, _Effect(0.3), 0.1, draws=200, seed=13)


def test_the_emulator_gives_exceedance_from_its_skewed_residuals() -> None:
    """A skewed run noise (exponential): the emulator's chance that one run exceeds a threshold follows the
    empirical residuals (a normal with the same sd would put about 11% below the mean minus 1.2 sd; the
    exponential puts none there)."""
    from sim.experiments.inference.npe_settle import EffectEmulator

    def truth(th: np.ndarray) -> np.ndarray:
        return 0.1 * th[:, 0]

    rng = np.random.default_rng(4)
    theta = rng.uniform(-1.5, 1.5, size=(3000, 2))
    noise = rng.exponential(0.2, 3000) - 0.2
    emu = EffectEmulator.fit(PRIORS, theta, truth(theta) + noise, seed=1)
    probe = np.column_stack([np.linspace(-0.5, 0.5, 5), np.zeros(5)])
    mu = truth(probe)
    for t in (-0.25, 0.0, 0.2):
        expect = np.exp(-(t - mu + 0.2).clip(0) / 0.2)  # P(noise > t - mu)
        assert emu.exceed(emu(probe), t, above=True) == pytest.approx(expect, abs=0.04)
    assert (emu.exceed(emu(probe), float(mu.min()) - 0.25, above=False) < 0.01).all()


def test_thesis_reliability_passes_a_correct_posterior_and_fails_an_over_confident_one() -> None:
    good = _reliability(over_confident=False)
    assert good["passed"] and good["above"]["passed"] and good["below"]["passed"], good["table"]
    assert good["rows"] == 3000
    table = good["table"]
    assert set(table["side"]) == {"above", "below"} and table.groupby("side").size().min() >= 4  # spread out
    assert table["inside"].all()
    assert good["above"]["mean_predicted"] == pytest.approx(good["above"]["observed"], abs=0.03)
    over = _reliability(over_confident=True)
    assert not over["passed"] and not over["above"]["passed"] and not over["below"]["passed"]
    assert (~over["table"]["inside"]).sum() >= 2
    extreme = over["table"][over["table"]["bin_high"] == 1.0]
    assert (extreme["observed"] < extreme["mean_predicted"]).all()  # what it calls near certain happens less often


def _thesis_report(tmp_path: Path, calibration: Path, method: str) -> str:
    from sim.analysis.calibration import write_thesis_report
    from sim.experiments.inference.folder import StoredCalibration

    stored = StoredCalibration(
        calibration, {"calibration_id": "recovery-0123", "method": method}, (), pd.DataFrame(), pd.DataFrame()
    )
    probs = pd.DataFrame(
        [
            {
                "draws_from": "posterior",
                "treatment": "strikes_resisting",
                "control": "no_strikes",
                "outcome": "coop_resisting_home_mean",
                "rope": 0.02,
                "draws": 2,
                "mean_effect": 0.01,
                "p_above": 0.5,
                "mcse_above": 0.35,
                "p_within": 0.5,
                "mcse_within": 0.35,
                "p_below": 0.0,
                "mcse_below": 0.0,
            }
        ]
    )
    out = tmp_path / "thesis"
    out.mkdir(exist_ok=True)
    return write_thesis_report(out, stored, probs, 2, 1.0, 0.02, 1.0).read_text()


def test_the_thesis_report_states_the_reliability_check_or_that_it_was_not_run(tmp_path: Path) -> None:
    from sim.analysis.settle import RELIABILITY_SECTION, write_reliability

    cal = tmp_path / "cal"
    cal.mkdir()
    report = _thesis_report(tmp_path, cal, "npe")
    assert RELIABILITY_SECTION in report
    assert f"reliability of the thesis probabilities: not checked yet: run sim settle {cal}" in report
    for over_confident, verdict in ((False, "PASS"), (True, "FAIL")):
        rel = _reliability(over_confident)
        write_reliability(rel, cal)
        report = _thesis_report(tmp_path, cal, "npe")
        line = next(x for x in report.splitlines() if x.startswith("reliability of the thesis probabilities"))
        assert f"on 3000 held-out simulations (ROPE 0.1): {verdict};" in line, line
        rows = [x for x in report.splitlines() if x.startswith(("| above |", "| below |"))]
        assert len(rows) == len(rel["table"])  # every bin, with its predicted and observed frequency
        assert "| side | bin_low | bin_high | n | mean_predicted | observed |" in report
    # a calibration by another method has no such check
    assert RELIABILITY_SECTION not in _thesis_report(tmp_path, cal, "smc")


# --------------------------------------------------------------------------- sim run --posterior-draws


def _scenario_with_sample(folder: Path, rows: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    s = folder / "calibrated.yaml"
    s.write_text(RECOVERY.read_text())
    rng = generator(5, "test", "sample")
    pd.DataFrame(
        {
            "draw": np.arange(rows, dtype=np.int64),
            "air_campaign.casualties_per_strike": rng.uniform(0.5, 5, rows),
            "flight.exposure_rate": rng.uniform(0.001, 0.01, rows),
        }
    ).to_parquet(folder / "calibrated.posterior.parquet")
    return s


def test_posterior_draws_are_reproducible_with_the_same_seed(tmp_path: Path) -> None:
    s = _scenario_with_sample(tmp_path / "case")
    out = tmp_path / "out"
    for name in ("one", "two"):
        r = subprocess.run(
            [*SIM, "run", str(s), "--posterior-draws", "3", "--seed", "11", "--out", str(out), "--run-id", name],
            env=cd.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        assert "posterior draws: 3 runs" in r.stdout
    a = pd.read_csv(out / "recovery" / "one" / "posterior_draws.csv")
    b = pd.read_csv(out / "recovery" / "two" / "posterior_draws.csv")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 3 and a["draw"].nunique() == 3
    spread = pd.read_csv(out / "recovery" / "one" / "posterior_spread.csv")
    assert {"coop_resisting_home_mean", "observed:killed"} <= set(spread["output"])
    # the parameters of each run are the sample's row, and draws differ in their outputs
    sample = pd.read_parquet(s.with_name("calibrated.posterior.parquet")).set_index("draw")
    np.testing.assert_allclose(
        a["flight.exposure_rate"], sample.loc[a["draw"], "flight.exposure_rate"].to_numpy(), rtol=1e-7
    )
    assert a["observed:killed"].nunique() > 1

    man = json.loads((out / "recovery" / "one" / "manifest.json").read_text())
    assert man["seeds"] == a["seed"].tolist() and man["root_seed"] == 11


@pytest.mark.parametrize("problem", ["missing", "corrupt", "no draw column", "unknown key"])
def test_a_bad_posterior_sample_is_one_line_exit_2_nothing_written(tmp_path: Path, problem: str) -> None:
    s = _scenario_with_sample(tmp_path / "case")
    sample = s.with_name("calibrated.posterior.parquet")
    if problem == "missing":
        sample.unlink()
    elif problem == "corrupt":
        sample.write_bytes(sample.read_bytes()[:100])
    elif problem == "no draw column":
        pd.read_parquet(sample).drop(columns=["draw"]).to_parquet(sample)
    else:
        pd.read_parquet(sample).rename(columns={"flight.exposure_rate": "flight.no_such_rate"}).to_parquet(sample)
    out = tmp_path / "out"
    r = subprocess.run(
        [*SIM, "run", str(s), "--posterior-draws", "2", "--out", str(out)],
        env=cd.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "calibrated.posterior.parquet" in lines[0]
    assert not list(out.rglob("*.csv")) and not list(out.rglob("manifest.json"))


def test_the_stored_ranking_is_read_back_only_for_the_same_inputs(tmp_path: Path) -> None:
    from sim.analysis.settle import RANKING, RANKING_KEY, _ranking_key, _stored_ranking
    from sim.experiments.inference.npe import NPESettings
    from sim.experiments.inference.npe_settle import SETTLE, SettleBudget

    train = pd.DataFrame({"a": [0.1, 0.2, 0.3], "s:x": [1.0, 2.0, 3.0]})
    evaluate = pd.DataFrame({"a": [0.5], "s:x": [2.5]})
    args = (["s:x"], {"c": ["c:x"]}, NPESettings(), 7, SettleBudget.quick())
    key = _ranking_key(train, evaluate, *args)
    assert key == _ranking_key(train.copy(), evaluate.copy(), *args)
    moved = train.assign(**{"s:x": [1.0, 2.0, 3.5]})
    assert _ranking_key(moved, evaluate, *args) != key
    assert _ranking_key(train, evaluate, *args[:3], 8, args[4]) != key  # another seed
    ranking = pd.DataFrame({"candidate": ["c", "noise"], "rank": [1, 2], "reduction": [0.2, 0.01]})
    assert _stored_ranking(tmp_path, key) is None  # nothing stored
    (tmp_path / SETTLE).mkdir()
    ranking.to_parquet(tmp_path / SETTLE / RANKING)
    (tmp_path / SETTLE / RANKING_KEY).write_text(json.dumps({"key": key}))
    pd.testing.assert_frame_equal(_stored_ranking(tmp_path, key), ranking)
    assert _stored_ranking(tmp_path, _ranking_key(moved, evaluate, *args)) is None
    (tmp_path / SETTLE / RANKING_KEY).write_text("{not json")
    assert _stored_ranking(tmp_path, key) is None  # an unreadable key: recomputed, never trusted

"""``sim settle`` (which observation would settle the thesis) and ``sim run --posterior-draws``.

The ranking and the emulator on a toy simulator with a known answer (no model runs); the posterior
draws on the small recovery scenario with a hand-written posterior sample beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.scenario.calibration import Prior
from sim.scenario.seeds import generator

ROOT = Path(__file__).resolve().parents[1]
RECOVERY = ROOT / "tests" / "data" / "calibration" / "recovery.yaml"
SIM = [sys.executable, "-m", "sim"]
PRIORS = (
    Prior("a", "uniform", -2.0, 2.0, None, None, "toy"),
    Prior("b", "uniform", -2.0, 2.0, None, None, "toy"),
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    env["OMP_NUM_THREADS"] = "1"
    return env


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
            env=_env(),
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
    import json

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
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "calibrated.posterior.parquet" in lines[0]
    assert not list(out.rglob("*.csv")) and not list(out.rglob("manifest.json"))

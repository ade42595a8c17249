"""The Idlib 2017-2018 scenario: validation, calendar time, dated strikes, the front, observed table.

Runs use a small ``households.sample_fraction`` and only the days a test needs,
so the module stays fast (a few seconds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from sim.analysis.observed import (
    NOT_REACHED,
    Frames,
    arrival_share,
    compare,
    displacements,
    figure_value,
    killed,
    observed_table,
    replicate_seeds,
    window_days,
)
from sim.run.simulate import SimulationResult, simulate
from sim.scenario.geography import build_geography
from sim.scenario.loader import load_scenario
from sim.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]
IDLIB = ROOT / "scenarios" / "idlib_2017_2018.yaml"
IDLIB_BASE = ROOT / "scenarios" / "idlib_2017_2018_base.yaml"
SMALL = ("households.sample_fraction=0.01",)

MODEL_MD_TOWNS = (
    "Idlib city", "Maarat al-Numan", "Kafranbel", "Atarib", "Saraqib", "Jisr al-Shughur", "Ariha",
    "Khan Shaykhun", "Sarmada", "Dana", "Harem", "Salqin", "Kafr Takharim", "Binnish", "Taftanaz",
    "Sarmin", "Darkush", "Abu al-Duhur",
)  # fmt: skip


def idlib(*overrides: str) -> Scenario:
    """The shipped scenario, small, with ``--set``-style overrides."""
    return load_scenario(IDLIB, [*SMALL, *overrides]).scenario


@pytest.fixture(scope="module")
def run_95() -> SimulationResult:
    """One small run to 3 Feb 2018 (day 94): past the calendar strikes and the main front events."""
    return simulate(idlib("days=95"), household_agents=False)


# --------------------------------------------------------------------------- scenario


def test_scenario_validates_with_the_model_md_towns_and_sources() -> None:
    sc = load_scenario(IDLIB).scenario
    names = set(sc.town_names)
    assert set(MODEL_MD_TOWNS) <= names
    assert "Sinjar" in names
    assert all(t.lat is not None and t.lon is not None for t in sc.towns)
    assert all(t.source.strip() for t in sc.towns)
    # early-2018 population: 2.3-2.5 million in the governorate, plus three units outside it
    assert 2.3e6 <= sum(t.persons for t in sc.towns) <= 2.65e6
    geo = build_geography(sc)
    assert len(set(geo.cells)) == len(sc.towns)
    assert sc.observed.figures and any(not f.calibrated for f in sc.observed.figures)


def test_dates_map_to_days() -> None:
    sc = load_scenario(IDLIB).scenario
    assert sc.start_date == dt.date(2017, 11, 1)
    assert sc.date_of(sc.days - 1) == dt.date(2018, 2, 28)
    days = {(s.town, s.date): sc.day_of(s) for s in sc.air_campaign.calendar}
    assert days[("Atarib", dt.date(2017, 11, 13))] == 12
    assert days[("Maarat al-Numan", dt.date(2018, 1, 2))] == 62
    assert days[("Kafranbel", dt.date(2018, 1, 6))] == 66
    assert days[("Kafranbel", dt.date(2018, 1, 16))] == 76
    falls = {e.town: sc.day_of(e) for e in sc.front.events if e.status == "regime"}
    assert falls["Sinjar"] == 67 and falls["Abu al-Duhur"] == 80
    assert sc.day_of(sc.hts.governance_body) == 1


def test_outputs_carry_dates_next_to_days(run_95: SimulationResult) -> None:
    for name in ("timeseries", "towns", "events"):
        df = run_95.frames[name]
        expected = pd.Timestamp("2017-11-01") + pd.to_timedelta(df["day"], unit="D")
        assert (pd.to_datetime(df["date"]) == expected).all(), name


# --------------------------------------------------------------------------- events


def test_calendar_strikes_happen_on_their_dates_in_the_named_towns() -> None:
    res = simulate(idlib("days=80", "air_campaign.policy=calendar"), household_agents=False)
    ev = res.events
    cal = ev[(ev["event"] == "strike") & (ev["note"] == "calendar")]
    got = cal.groupby([cal["date"].dt.date, cal["town"].astype(str)])["count"].sum().to_dict()
    want = {(s.date, s.town): s.strikes for s in res.scenario.air_campaign.calendar}
    assert got == want
    # with the background campaign off, these are the only strikes
    assert (ev["event"] == "strike").sum() == sum(want.values())


def test_towns_taken_by_the_regime_are_emptied(run_95: SimulationResult) -> None:
    sc = run_95.scenario
    tw = run_95.towns.assign(town=run_95.towns["town"].astype(str))
    taken = [(e.town, sc.day_of(e)) for e in sc.front.events if e.status == "regime" and sc.day_of(e) < 95]
    assert {"Sinjar", "Abu al-Duhur", "NE Hama villages"} <= {t for t, _ in taken}
    for town, day in taken:
        rows = tw[tw["town"] == town].set_index("day")
        assert rows.loc[day - 1, "persons_present"] > 0, town
        assert (rows.loc[day:, "persons_present"] == 0).all(), town
        assert (rows.loc[day:, "front"].astype(str) == "regime").all(), town
        out = run_95.events[(run_95.events["event"] == "displacement") & (run_95.events["note"] == "front")]
        assert (out["town"].astype(str) == town).any(), town


# --------------------------------------------------------------------------- observed vs simulated


def _window_sum_from_events(frames: Frames, first: int, last: int) -> float:
    ev = frames["events"]
    moves = ev[(ev["event"] == "displacement") & (ev["day"] >= first) & (ev["day"] <= last)]
    return float(moves["persons"].sum())


def test_observed_values_are_recomputed_from_the_run(run_95: SimulationResult) -> None:
    sc = run_95.scenario
    table = observed_table(sc, [run_95.frames])
    assert list(table["figure"]) == [f.name for f in sc.observed.figures]
    for fig, row in zip(sc.observed.figures, table.itertuples(index=False), strict=True):
        first, last, _ = window_days(fig, sc, 95)
        if row.check == NOT_REACHED:  # the window ends after day 94: no model value
            assert last < sc.day_of(fig.end) and row.simulated != row.simulated
            continue
        if fig.kind == "displacements":
            assert row.simulated == pytest.approx(_window_sum_from_events(run_95.frames, first, last))
            assert row.simulated == pytest.approx(displacements(run_95.frames, first, last))
        elif fig.kind == "arrival_share":
            ev = run_95.events
            moves = ev[(ev["event"] == "displacement") & ev["day"].between(first, last)]
            share = moves[moves["to_town"].astype(str).isin(fig.towns)]["persons"].sum() / moves["persons"].sum()
            assert row.simulated == pytest.approx(share)
            assert row.simulated == pytest.approx(arrival_share(run_95.frames, fig.towns, first, last))
        elif fig.kind == "council_independent":
            tw = run_95.towns
            last_row = tw[(tw["day"] == 94) & (tw["town"].astype(str) == fig.towns[0])]
            assert row.simulated == float(last_row["council_independent"].iloc[0])
        elif fig.kind == "killed":
            tw = run_95.towns
            inside = tw["day"].between(first, last) & tw["town"].astype(str).isin(fig.towns)
            assert row.simulated == pytest.approx(tw.loc[inside, "killed"].sum())
            assert 0 < row.simulated < tw.loc[tw["day"].between(first, last), "killed"].sum() + 1
            assert row.simulated == pytest.approx(killed(run_95.frames, fig.towns, first, last))
        elif fig.kind == "hosted_displaced":
            tw = run_95.towns
            rows = tw[(tw["day"] == last) & tw["town"].astype(str).isin(fig.towns)]
            assert row.simulated == pytest.approx(rows["hosted_displaced"].sum())
        else:
            assert fig.kind == "protest_present"
            tw = run_95.towns
            rows = tw[tw["day"].between(first, last) & tw["town"].astype(str).isin(fig.towns)]
            level = (rows["protest_share"] * rows["persons_present"]).sum() / rows["persons_present"].sum()
            assert row.simulated == float(level > fig.threshold)
        assert row.observed == fig.value
        assert row.ratio == pytest.approx(row.simulated / fig.value)
        assert row.calibrated == ("yes" if fig.calibrated else "no")


def test_observed_table_changes_when_the_run_changes(run_95: SimulationResult) -> None:
    fig = next(f for f in run_95.scenario.observed.figures if f.kind == "displacements")
    base = figure_value(fig, run_95.scenario, run_95.frames)
    calm = simulate(idlib("days=95", "flight.front_rate=0", "flight.exposure_rate=0"), household_agents=False)
    assert figure_value(fig, calm.scenario, calm.frames) < base
    other_seed = simulate(idlib("days=95"), seed=7, household_agents=False)
    assert figure_value(fig, other_seed.scenario, other_seed.frames) != base


def test_replicates_use_seeds_spawned_from_the_run_seed(run_95: SimulationResult) -> None:
    seeds = replicate_seeds(run_95.seed, 3)
    assert seeds[0] == run_95.seed and len(set(seeds)) == 3
    assert seeds == replicate_seeds(run_95.seed, 3)
    called: list[int] = []

    def fake_runner(scenario: Scenario, seed: int) -> Frames:
        called.append(seed)
        return run_95.frames

    table, info = compare(run_95, replicates=3, runner=fake_runner)
    assert called == seeds[1:]
    assert info["observed"]["replicate_seeds"] == seeds
    assert (table["replicates"] == 3).all()
    reached = table[table["check"] != NOT_REACHED]  # windows ending after day 94 have no value
    assert len(reached) >= 4
    assert (reached["sim_min"] <= reached["simulated"]).all() and (reached["simulated"] <= reached["sim_max"]).all()


# --------------------------------------------------------------------------- command line


def _with_calendar_town(tmp_path: Path, town: str) -> tuple[Path, int]:
    text = IDLIB_BASE.read_text()  # the strike calendar lives in the base file the shipped one extends
    needle = "town: Atarib, strikes: 3"
    assert needle in text
    bad = tmp_path / "bad_idlib.yaml"
    bad.write_text(text.replace(needle, f"town: {town}, strikes: 3", 1))
    line = next(i for i, s in enumerate(bad.read_text().splitlines(), 1) if f"town: {town}, strikes: 3" in s)
    return bad, line


def test_unknown_calendar_town_is_a_clean_cli_error(tmp_path: Path, run_cli: Callable[..., object]) -> None:
    bad, line = _with_calendar_town(tmp_path, "Atareb")
    proc = run_cli("validate", bad)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip()
    assert f"{bad.name}:{line}" in message
    assert "air_campaign.calendar.0.town" in message
    assert "unknown town 'Atareb'" in message and "did you mean 'Atarib'" in message


@pytest.mark.slow
def test_cli_run_writes_map_and_observed_table(tmp_path: Path, run_cli: Callable[..., object]) -> None:
    proc = run_cli(
        "run", IDLIB, "--days", "40", "--run-id", "t", "--set", "households.sample_fraction=0.01",
        "--set", "observed.replicates=2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "results" / "idlib_2017_2018" / "t"
    for name in ("timeseries.parquet", "towns.parquet", "events.parquet", "summary.png", "map.png", "observed.csv"):
        assert (folder / name).exists(), name
    obs = pd.read_csv(folder / "observed.csv")
    assert {"figure", "simulated", "sim_min", "sim_max", "observed", "ratio", "source", "calibrated"} <= set(obs)
    assert (obs["replicates"] == 2).all()
    assert "observed vs simulated" in proc.stdout

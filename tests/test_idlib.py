"""The Idlib 2017-2018 scenario: validation, calendar time, dated strikes, the front, the record table.

Runs use a small ``households.sample_fraction`` and only the days a test needs,
so the module stays fast (a few seconds).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from sim.analysis.observed import Frames, replicate_seeds
from sim.run import record as R
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
    assert not sc.observed.figures and sc.record == "record/idlib_2017_2018.yaml"
    rec = load_scenario(IDLIB).record
    assert rec is not None and rec.window.start == sc.start_date == dt.date(2017, 11, 1)
    assert sc.date_of(sc.days - 1) == rec.window.end == dt.date(2018, 4, 30)
    roles = {e.role for e in rec.entries}
    assert {"calibration", "validation"} <= roles


def test_dates_map_to_days() -> None:
    sc = load_scenario(IDLIB).scenario
    assert sc.start_date == dt.date(2017, 11, 1)
    assert sc.date_of(sc.days - 1) == dt.date(2018, 4, 30)
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


def test_towns_taken_by_the_regime_empty_over_days(run_95: SimulationResult) -> None:
    sc = run_95.scenario
    tw = run_95.towns.assign(town=run_95.towns["town"].astype(str))
    taken = [(e.town, sc.day_of(e)) for e in sc.front.events if e.status == "regime" and sc.day_of(e) < 95]
    assert {"Sinjar", "Abu al-Duhur", "NE Hama villages"} <= {t for t, _ in taken}
    sinjar = next(e for e in sc.front.events if e.town == "Sinjar" and e.status == "regime")
    assert sc.day_of(sinjar) == (dt.date(2018, 1, 7) - sc.start_date).days
    rate = sc.flight.capture_rate
    assert 0 < rate < 1
    for town, day in taken:
        rows = tw[tw["town"] == town].set_index("day")
        before = rows.loc[day - 1, "persons_present"]
        assert before > 0, town
        present = rows.loc[day:, "persons_present"].to_numpy()
        assert (present[1:] <= present[:-1]).all(), town  # nobody arrives in or returns to a taken town
        assert present[0] > 0 or before < 200, town  # not emptied on the day it falls
        later = min(day + 20, 94)
        # but at the capture rate: each day a share ``rate`` of those present leaves, so after k days about
        # (1 - rate)^k remain (within twice that: household draws are binomial)
        remain = (1 - rate) ** (later - day)
        assert rows.loc[later, "persons_present"] <= before * min(1.0, 2 * remain) + 1, town
        assert (rows.loc[day:, "front"].astype(str) == "regime").all(), town
        out = run_95.events[(run_95.events["event"] == "displacement") & (run_95.events["note"] == "front")]
        front_days = set(out.loc[out["town"].astype(str) == town, "day"])
        assert len(front_days) > 1, town  # leaving over several days


def test_capture_rate_one_empties_a_taken_town_on_the_day() -> None:
    res = simulate(idlib("days=70", "flight.capture_rate=1"), household_agents=False)
    tw = res.towns.assign(town=res.towns["town"].astype(str))
    day = (dt.date(2018, 1, 7) - res.scenario.start_date).days
    sinjar = tw[tw["town"] == "Sinjar"].set_index("day")
    assert sinjar.loc[day - 1, "persons_present"] > 0
    assert (sinjar.loc[day:, "persons_present"] == 0).all()


# --------------------------------------------------------------------------- the record vs simulated


def test_record_values_are_recomputed_from_the_run(run_95: SimulationResult) -> None:
    sc = run_95.scenario
    rec = load_scenario(IDLIB).record
    table = R.compare_run(rec, sc, run_95.frames).set_index("id")
    assert list(table.index) == [e.id for e in rec.entries if not e.context]
    ev, tw = run_95.events, run_95.towns
    gov = set(rec.governorate.towns)
    moves = ev[(ev["event"] == "displacement") & ev["date"].between("2017-12-15", "2018-01-22")]
    touching = moves["town"].astype(str).isin(gov) | moves["to_town"].astype(str).isin(gov)
    row = table.loc["acaps-displacements-2018-01-22"]
    assert row["simulated"] == pytest.approx(moves.loc[touching, "persons"].sum())
    assert (
        row["agreement"] == (R.AGREE if 212000 * 0.75 <= row["simulated"] <= 212000 * 1.25 else R.DISAGREE)
        and row["role"] == "calibration"
    )
    moves = ev[(ev["event"] == "displacement") & ev["date"].between("2017-12-15", "2018-02-03")]
    moves = moves[moves["town"].astype(str).isin(gov) | moves["to_town"].astype(str).isin(gov)]
    dest = set(rec.towns_of("OCHA main destinations")[0])
    share = moves[moves["to_town"].astype(str).isin(dest)]["persons"].sum() / moves["persons"].sum()
    assert table.loc["ocha-mainly-toward-2018-02-03", "simulated"] == pytest.approx(share)
    strikes = ev[(ev["event"] == "strike") & ev["date"].between("2018-01-01", "2018-01-31")]
    killed = strikes[strikes["town"].astype(str).isin(gov)]["persons"].sum()
    assert table.loc["snhr-killed-2018-01", "simulated"] == pytest.approx(killed)
    atarib = tw[tw["town"].astype(str) == "Atarib"]
    want = R.AGREE if atarib["council_independent"].astype(bool).all() else R.DISAGREE
    assert table.loc["atarib-council-independent-2017-11-2018-04", "agreement"] == want
    # hosted: every displaced person present in Dana, whenever displaced (the scenario's pre-window stock too)
    dana = tw[(tw["town"].astype(str) == "Dana") & tw["date"].between("2017-12-01", "2017-12-31")]
    stock = dana["hosted_displaced"] + dana["hosted_before_start"]
    assert table.loc["reach-hosted-dana-2017-12", "simulated"] == pytest.approx(stock.mean())
    assert dana["hosted_before_start"].min() > 0.5 * sc.towns[sc.town_names.index("Dana")].displaced
    # the run ends on 3 Feb: later entries are not reached, a state over the window is checked partially
    assert table.loc["ismi-returns-2018-02-03", "agreement"] == R.NOT_REACHED
    assert "partial" in table.loc["atarib-council-independent-2017-11-2018-04", "note"]


def test_fighters_killed_per_side_get_a_model_value() -> None:
    """Over the whole window each governorate toll of the HTS - rival war gets a number: the side's
    ``fighters_lost:<side>`` summed over the entry's window (HTS, or JTS's groups)."""
    run = simulate(idlib(), household_agents=False)
    rec = load_scenario(IDLIB).record
    table = R.compare_run(rec, run.scenario, run.frames).set_index("id")
    ts = run.timeseries
    killed = [e for e in rec.entries if e.kind == "fighters_killed"]
    assert len(killed) >= 8
    for e in killed:
        row = table.loc[e.id]
        if e.place != "governorate":
            assert row["agreement"] == R.NO_MODEL and "whole area" in row["note"]
            continue
        assert row["agreement"] in (R.AGREE, R.DISAGREE), e.id
        cols = [f"fighters_lost:{g}" for g in rec.groups_of(e.actor)]
        inside = ts["date"].between(pd.Timestamp(e.start), pd.Timestamp(e.end))
        assert row["simulated"] == pytest.approx(ts.loc[inside, cols].to_numpy().sum()), e.id
    assert "timeseries.fighters_lost:<side>" not in R.missing_columns(run.frames)


def test_record_table_changes_when_the_run_changes(run_95: SimulationResult) -> None:
    rec = load_scenario(IDLIB).record
    entry = rec.entry("acaps-displacements-2018-01-22")
    base = R.target_value(entry, run_95.scenario, run_95.frames, rec)
    calm = simulate(idlib("days=95", "flight.front_rate=0", "flight.exposure_rate=0"), household_agents=False)
    assert R.target_value(entry, calm.scenario, calm.frames, rec) < base
    other_seed = simulate(idlib("days=95"), seed=7, household_agents=False)
    assert R.target_value(entry, other_seed.scenario, other_seed.frames, rec) != base


def test_replicates_use_seeds_spawned_from_the_run_seed(run_95: SimulationResult) -> None:
    seeds = replicate_seeds(run_95.seed, 3)
    assert seeds[0] == run_95.seed and len(set(seeds)) == 3
    assert seeds == replicate_seeds(run_95.seed, 3)
    assert isinstance(run_95.frames, dict)
    _: Frames = run_95.frames


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


def test_cli_run_writes_the_record_table_and_figure_and_prints_agreement_counts(
    tmp_path: Path, run_cli: Callable[..., object]
) -> None:
    """`python3 dev.py run`'s command (sim run scenarios/idlib_2017_2018.yaml) at a small sample fraction."""
    import matplotlib.pyplot as plt

    from sim.viz.record import PANELS, plot_record, towns_with_entries

    proc = run_cli("run", IDLIB, "--run-id", "t", "--set", "households.sample_fraction=0.01", timeout=300)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "results" / "idlib_2017_2018" / "t"
    for name in ("timeseries.parquet", "towns.parquet", "events.parquet", "summary.png", "map.png"):
        assert (folder / name).exists(), name
    assert not (folder / "observed.csv").exists()
    assert (folder / "record.png").stat().st_size > 0
    table = pd.read_csv(folder / "record.csv", keep_default_na=False, na_values=[""])
    assert list(table.columns) == list(R.COLUMNS)
    rec = load_scenario(IDLIB).record
    assert list(table["id"]) == [e.id for e in rec.entries if not e.context]
    assert set(table["agreement"]) <= set(R.AGREEMENTS) and R.NOT_REACHED not in set(table["agreement"])
    out = proc.stdout
    assert "record, calibration entries" in out and "record, validation entries" in out
    counts = R.agreement_counts(table)
    for role in ("calibration", "validation"):
        sub = counts[counts["role"] == role]
        # every count the table gives, zero counts left out (at the shipped draw none of the four calibration
        # entries need agree at this small sample fraction)
        total = {a: int(sub[a].sum()) for a in R.AGREEMENTS}
        expected = ", ".join(f"{n} {a}" for a, n in total.items() if n)
        assert f"{int(sub['entries'].sum())} entries: {expected}" in out
        for kind in sub["kind"]:
            assert f"    {kind}:" in out
    # the record figure of the real run folder draws every town that has an entry
    frames = {"towns": pd.read_parquet(folder / "towns.parquet")}
    fig = plot_record(rec, frames, comparison=table)
    try:
        towns = towns_with_entries(rec)
        assert len(fig.axes) == len(towns) * len(PANELS)
        assert [ax.get_ylabel() for ax in fig.axes if ax.get_subplotspec().colspan.start == 0] == towns
    finally:
        plt.close(fig)

"""The record of resistance: its strict loader, its observation models on hand-built tables, its figure."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.run import record as R
from sim.scenario.loader import ScenarioError, load_scenario
from sim.scenario.record import KINDS, Record, check_against, load_record, parse_record

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_RECORD = ROOT / "scenarios" / "record" / "idlib_2017_2018.yaml"
START = pd.Timestamp("2017-11-01")
TOWNS = ("Kafranbel", "Binnish", "Dana", "Sarmada", "Atarib", "Maarrat Misrin")
RUN_END = dt.date(2018, 2, 28)


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(ROOT / "scenarios" / "idlib_2017_2018.yaml").scenario


# --------------------------------------------------------------------------- building records and tables

_ids = itertools.count()


def entry(**kw: Any) -> dict[str, Any]:
    base = {
        "id": f"e-{next(_ids)}",
        "source": {"publisher": "P", "title": "T", "date": "2018"},
        "reading": "r",
        "uncertainty": {"reason": "u"},
        "role": "validation",
    }
    unc = kw.pop("unc", None)
    if unc:
        base["uncertainty"] = {"reason": "u", **unc}
    return {**base, **kw}


def record(*entries: dict[str, Any]) -> Record:
    return parse_record(
        {
            "record": "test",
            "scenario": "idlib_2017_2018",
            "window": {"start": "2017-11-01", "end": "2018-04-30"},
            "governorate": {"towns": list(TOWNS), "reading": "r"},
            "places": [
                {"name": "Dana sub-district", "towns": ["Dana", "Sarmada"], "coverage": "exact", "reading": "r"},
                {"name": "Maarat Tamsrin", "towns": ["Maarrat Misrin"], "coverage": "part", "reading": "r"},
                {"name": "al-Jina", "towns": ["Atarib"], "coverage": "larger", "reading": "r"},
            ],
            "actors": {"JTS": ["Ahrar al-Sham", "Nour al-Din al-Zenki"]},
            "entries": list(entries),
        }
    )


def one(**kw: Any) -> tuple[Record, Any]:
    rec = record(entry(**kw))
    return rec, rec.entries[0]


def frames(days: int = 120) -> dict[str, pd.DataFrame]:
    n = len(TOWNS)
    d = np.repeat(np.arange(days), n)
    towns = pd.DataFrame(
        {
            "day": d,
            "date": START + pd.to_timedelta(d, unit="D"),
            "town": np.tile(TOWNS, days),
            "persons_present": 10_000.0,
            "protest_share": 0.0,
            "hosted_displaced": 0.0,
            "hosted_before_start": 0.0,
            "council_independent": True,
            "controller": "hts",
            "front": "opposition",
            "killed": 0.0,
            "strikes": 0,
            "displaced_out": 0.0,
            "persons_at_home": 10_000.0,
        }
    )
    ts = pd.DataFrame(
        {"day": np.arange(days), "date": START + pd.to_timedelta(np.arange(days), unit="D"), "hts_fighters": 12_000.0}
    )
    ev = pd.DataFrame(
        {c: pd.Series(dtype=t) for c, t in [("day", int), ("date", "datetime64[ns]"), ("event", str), ("town", str)]}
        | {c: pd.Series(dtype=t) for c, t in [("to_town", str), ("count", int), ("persons", float), ("note", str)]}
    )
    return {"timeseries": ts, "towns": towns, "events": ev}


def set_town(fr, town: str, column: str, value: Any, first: str, last: str | None = None) -> None:
    tw = fr["towns"]
    d = pd.to_datetime(tw["date"])
    mask = (tw["town"] == town) & (d >= pd.Timestamp(first)) & (d <= pd.Timestamp(last or first))
    tw.loc[mask, column] = value


def add_event(fr, date: str, event: str, town: str = "", to_town: str = "", persons: float = 0.0, note: str = ""):
    day = (pd.Timestamp(date) - START).days
    row = {"day": day, "date": pd.Timestamp(date), "event": event, "town": town, "to_town": to_town}
    row |= {"count": 1, "persons": persons, "note": note}
    fr["events"] = pd.concat([fr["events"], pd.DataFrame([row])], ignore_index=True)


def verdict(rec: Record, e, fr) -> str:
    return R.observe(e, rec, fr).agreement


# --------------------------------------------------------------------------- protest


def test_a_town_with_200_protesters_matches_a_dozens_event_and_zero_does_not():
    rec, e = one(kind="protest", place="Kafranbel", date="2018-02-02", value="dozens", target="factions")
    fr = frames()
    assert verdict(rec, e, fr) == R.DISAGREE  # nobody protests
    set_town(fr, "Kafranbel", "protest_share", 0.02, "2018-02-02")  # 200 of 10,000
    obs = R.observe(e, rec, fr)
    assert obs.agreement == R.AGREE and obs.simulated == pytest.approx(200)


def test_protest_detection_window_is_three_days_and_threshold_twelve_persons():
    rec, e = one(kind="protest", place="Kafranbel", date="2018-02-02", value="dozens", target="hts")
    fr = frames()
    set_town(fr, "Kafranbel", "protest_share", 0.02, "2018-02-05")  # +3 days: detected
    assert verdict(rec, e, fr) == R.AGREE
    fr = frames()
    set_town(fr, "Kafranbel", "protest_share", 0.02, "2018-02-06")  # +4 days: not
    assert verdict(rec, e, fr) == R.DISAGREE
    fr = frames()
    set_town(fr, "Kafranbel", "protest_share", 0.0011, "2018-02-02")  # 11 persons: below a dozen
    assert verdict(rec, e, fr) == R.DISAGREE
    fr["towns"]["protesters"] = 0.0  # a protesters column wins over the share
    set_town(fr, "Kafranbel", "protesters", 12.0, "2018-02-02")
    assert verdict(rec, e, fr) == R.AGREE


def test_protest_of_a_stated_size_and_targets_the_model_cannot_see():
    rec, e = one(kind="protest", place="Atarib", date="2018-01-10", value=1000, target="hts")
    fr = frames()
    set_town(fr, "Atarib", "protest_share", 0.04, "2018-01-10")  # 400 < 500
    assert verdict(rec, e, fr) == R.DISAGREE
    set_town(fr, "Atarib", "protest_share", 0.06, "2018-01-10")
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(kind="protest", place="Kafranbel", date="2018-02-02", value="reported", target="for_hts")
    assert verdict(rec, e, fr) == R.NO_MODEL
    rec, e = one(kind="protest", place="al-Jina", date="2018-02-02", value="reported", target="hts")
    assert verdict(rec, e, fr) == R.NO_MODEL  # a village the scenario does not hold
    rec, e = one(kind="protest", place="Maarat Tamsrin", date="2018-02-02", value="dozens", target="hts")
    assert verdict(rec, e, fr) == R.DISAGREE
    set_town(fr, "Maarrat Misrin", "protest_share", 0.01, "2018-02-01")
    assert verdict(rec, e, fr) == R.AGREE  # detected in the aggregate that holds the village


# --------------------------------------------------------------------------- stocks and flows


def test_a_hosted_stock_compares_with_the_simulated_stock_not_a_flow():
    rec, e = one(
        kind="hosted",
        place="Dana",
        window={"start": "2017-12-01", "end": "2017-12-31"},
        value=50000,
        unc={"relative": 0.2},
    )
    fr = frames()
    # arrivals of 60,000 over December would pass a flow test; the stock on each day is what counts
    for day in pd.date_range("2017-12-01", "2017-12-31"):
        add_event(fr, str(day.date()), "displacement", "Binnish", "Dana", persons=2000)
    assert verdict(rec, e, fr) == R.DISAGREE  # hosted_displaced stays 0
    set_town(fr, "Dana", "hosted_displaced", 30000.0, "2017-12-01", "2017-12-20")
    set_town(fr, "Dana", "hosted_displaced", 45000.0, "2017-12-21", "2017-12-31")
    obs = R.observe(e, rec, fr)
    assert obs.agreement == R.AGREE and 30000 < obs.simulated < 45000
    set_town(fr, "Dana", "hosted_displaced", 90000.0, "2017-12-01", "2017-12-31")
    assert verdict(rec, e, fr) == R.DISAGREE


def test_the_hosted_stock_counts_those_displaced_before_the_start():
    """REACH counts every IDP present, whenever they arrived: the stock displaced before 1 Nov 2017 makes
    a run match that the arrivals alone would not, and without the column there is no like-with-like value."""
    rec, e = one(
        kind="hosted", place="Dana", window={"start": "2017-12-01", "end": "2017-12-31"}, value=50000
    )  # tolerance 25%: 37,500 .. 62,500
    fr = frames()
    set_town(fr, "Dana", "hosted_displaced", 20000.0, "2017-12-01", "2017-12-31")  # arrivals in the run
    assert verdict(rec, e, fr) == R.DISAGREE
    set_town(fr, "Dana", "hosted_before_start", 25000.0, "2017-12-01", "2017-12-31")  # present before 1 Nov
    obs = R.observe(e, rec, fr)
    assert obs.agreement == R.AGREE and obs.simulated == pytest.approx(45000)
    set_town(fr, "Sarmada", "hosted_before_start", 90000.0, "2017-12-01", "2017-12-31")  # another town: not counted
    assert R.observe(e, rec, fr).simulated == pytest.approx(45000)
    fr["towns"] = fr["towns"].drop(columns="hosted_before_start")
    obs = R.observe(e, rec, fr)
    assert obs.agreement == R.NO_MODEL and "hosted_before_start" in obs.note


def test_a_stock_in_a_place_only_part_of_an_aggregate_is_a_lower_bound():
    rec, e = one(
        kind="hosted", place="Maarat Tamsrin", window={"start": "2017-12-01", "end": "2017-12-31"}, value=35500
    )
    fr = frames()
    set_town(fr, "Maarrat Misrin", "hosted_displaced", 200000.0, "2017-12-01", "2017-12-31")
    assert verdict(rec, e, fr) == R.AGREE
    set_town(fr, "Maarrat Misrin", "hosted_displaced", 10000.0, "2017-12-01", "2017-12-31")
    assert verdict(rec, e, fr) == R.DISAGREE


def test_displacements_are_flows_over_the_window_and_area():
    rec, e = one(
        kind="displacements",
        place="governorate",
        window={"start": "2017-12-15", "end": "2018-01-22"},
        value=212000,
        unc={"relative": 0.25},
    )
    fr = frames()
    add_event(fr, "2017-12-20", "displacement", "Kafranbel", "Dana", persons=200000)
    add_event(fr, "2018-01-30", "displacement", "Kafranbel", "Dana", persons=500000)  # outside the window
    add_event(fr, "2017-12-20", "displacement", "Atmeh camps", "Tell al-Daman", persons=500000)  # outside the area
    obs = R.observe(e, rec, fr)
    assert obs.agreement == R.AGREE and obs.simulated == 200000
    fr = frames()
    add_event(fr, "2017-12-20", "displacement", "Kafranbel", "Dana", persons=100000)
    assert verdict(rec, e, fr) == R.DISAGREE
    rec, e = one(
        kind="displacements",
        place="Kafranbel",
        to_place="Dana sub-district",
        window={"start": "2017-12-15", "end": "2018-01-22"},
        value=100000,
    )
    assert verdict(rec, e, fr) == R.AGREE
    add_event(fr, "2017-12-21", "displacement", "Kafranbel", "Sarmada", persons=100000)
    assert verdict(rec, e, fr) == R.DISAGREE


def test_departures_per_month_and_the_share_of_residents_away():
    rec, e = one(
        kind="departures", place="governorate", window={"start": "2017-12-01", "end": "2017-12-31"}, value=124200
    )
    fr = frames()
    add_event(fr, "2017-12-10", "displacement", "Kafranbel", "Dana", persons=120000)
    assert verdict(rec, e, fr) == R.AGREE
    add_event(fr, "2017-12-11", "displacement", "Tell al-Daman", "Dana", persons=900000)  # origin outside
    assert verdict(rec, e, fr) == R.AGREE
    add_event(fr, "2017-12-12", "displacement", "Binnish", "Dana", persons=300000)
    assert verdict(rec, e, fr) == R.DISAGREE
    rec, e = one(
        kind="departures",
        place="Kafranbel",
        unit="share",
        window={"start": "2017-11-01", "end": "2018-01-31"},
        value=[0.95, 1.0],
        unc={"relative": 0.0},
    )
    fr = frames()
    assert verdict(rec, e, fr) == R.DISAGREE
    set_town(fr, "Kafranbel", "displaced_out", 10000.0, "2018-01-31")
    set_town(fr, "Kafranbel", "persons_at_home", 0.0, "2018-01-31")
    assert verdict(rec, e, fr) == R.AGREE


def test_arrival_share_and_returns():
    rec, e = one(
        kind="arrival_share",
        place="governorate",
        to_place="Dana sub-district",
        window={"start": "2017-12-15", "end": "2018-02-03"},
        value=[0.5, 1.0],
        unc={"relative": 0.0},
    )
    fr = frames()
    assert verdict(rec, e, fr) == R.NO_MODEL  # nobody moved
    add_event(fr, "2017-12-20", "displacement", "Kafranbel", "Dana", persons=100)
    add_event(fr, "2017-12-20", "displacement", "Kafranbel", "Binnish", persons=300)
    assert verdict(rec, e, fr) == R.DISAGREE  # a quarter
    add_event(fr, "2017-12-21", "displacement", "Kafranbel", "Sarmada", persons=400)
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(kind="returns", place="governorate", window={"start": "2018-02-01", "end": "2018-02-28"}, value=220554)
    assert verdict(rec, e, fr) == R.DISAGREE
    add_event(fr, "2018-02-10", "return", "Dana", "Kafranbel", persons=200000)
    assert verdict(rec, e, fr) == R.AGREE


# --------------------------------------------------------------------------- harm


def test_deaths_over_a_window_and_on_a_date():
    rec, e = one(
        kind="deaths",
        place="governorate",
        cause="all",
        window={"start": "2018-01-01", "end": "2018-01-31"},
        value=223,
        unc={"relative": 0.2},
    )
    fr = frames()
    set_town(fr, "Kafranbel", "killed", 10.0, "2018-01-01", "2018-01-20")  # 200
    assert verdict(rec, e, fr) == R.AGREE
    set_town(fr, "Binnish", "killed", 10.0, "2018-01-01", "2018-01-31")  # +310
    assert verdict(rec, e, fr) == R.DISAGREE
    rec, e = one(kind="deaths", place="Binnish", cause="strikes", date="2018-01-07", value=18, unc={"days": 1})
    fr = frames()
    assert verdict(rec, e, fr) == R.DISAGREE
    add_event(fr, "2018-01-08", "strike", "Binnish", persons=17)
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(kind="deaths", place="Binnish", cause="hts", date="2018-01-07", value=2)
    assert verdict(rec, e, fr) == R.NO_MODEL
    fr["towns"]["killed_by_hts"] = 0.0
    assert verdict(rec, e, fr) == R.DISAGREE
    rec, e = one(kind="deaths", place="Binnish", cause="strikes", measure="wounded", date="2018-01-07", value=7)
    assert verdict(rec, e, fr) == R.NO_MODEL


def test_strikes_on_a_town():
    rec, e = one(kind="strikes", place="Kafranbel", window={"start": "2018-02-04", "end": "2018-02-05"}, value="hit")
    fr = frames()
    assert verdict(rec, e, fr) == R.DISAGREE
    set_town(fr, "Kafranbel", "strikes", 1, "2018-02-05")
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(kind="strikes", place="Kafranbel", date="2018-02-05", value=3)
    assert verdict(rec, e, fr) == R.DISAGREE


# --------------------------------------------------------------------------- councils, control, the rival war


def test_council_status_on_a_date_and_over_a_window():
    rec, e = one(kind="council", place="Binnish", date="2017-12-07", value="independent")
    fr = frames()
    assert verdict(rec, e, fr) == R.AGREE
    set_town(fr, "Binnish", "council_independent", False, "2017-12-01", "2018-02-28")
    assert verdict(rec, e, fr) == R.DISAGREE
    rec, e = one(kind="council", place="Binnish", date="2017-12-07", value="ssg")
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(
        kind="council", place="Atarib", window={"start": "2017-11-01", "end": "2018-02-28"}, value="independent"
    )
    fr = frames()
    assert verdict(rec, e, fr) == R.AGREE
    set_town(fr, "Atarib", "council_independent", False, "2018-02-27")  # one day taken over is enough to fail
    assert verdict(rec, e, fr) == R.DISAGREE
    rec, e = one(kind="council", place="Ariha", date="2017-12-03", value="dissolution_decreed")
    assert verdict(rec, e, fr) == R.NO_MODEL
    rec, e = one(kind="council", place="Dana sub-district", date="2017-12-03", value="independent")
    assert verdict(rec, e, fr) == R.NO_MODEL  # two towns: not one council


def test_control_of_a_town():
    fr = frames()
    rec, e = one(kind="control", place="Atarib", date="2018-01-20", value="regime", unc={"days": 1})
    assert verdict(rec, e, fr) == R.DISAGREE
    set_town(fr, "Atarib", "controller", "regime", "2018-01-21", "2018-02-28")
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(kind="control", place="Kafranbel", date="2018-01-20", value="rival")
    assert verdict(rec, e, fr) == R.DISAGREE
    set_town(fr, "Kafranbel", "controller", "FSA factions", "2018-01-20")
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(kind="control", place="Binnish", date="2018-01-20", value="not_hts")
    assert verdict(rec, e, fr) == R.DISAGREE
    rec, e = one(
        kind="control", place="Binnish", window={"start": "2018-02-02", "end": "2018-02-04"}, value="front_line"
    )
    assert verdict(rec, e, fr) == R.DISAGREE
    set_town(fr, "Binnish", "front", "contested", "2018-02-02", "2018-02-04")
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(kind="control", place="Binnish", date="2018-01-20", value="local")
    assert verdict(rec, e, fr) == R.NO_MODEL


def test_clashes_truces_and_mergers():
    fr = frames()
    rec, e = one(
        kind="clashes",
        place="governorate",
        actor="JTS",
        window={"start": "2018-02-19", "end": "2018-02-20"},
        value="clashes",
    )
    assert verdict(rec, e, fr) == R.DISAGREE
    add_event(fr, "2018-02-19", "fighting", "Atarib", note="Nour al-Din al-Zenki vs HTS")
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(
        kind="clashes",
        place="governorate",
        actor="JTS",
        window={"start": "2018-02-15", "end": "2018-02-22"},
        value="truce",
    )
    assert verdict(rec, e, fr) == R.DISAGREE
    rec, e = one(
        kind="clashes", place="governorate", actor="Ahrar al-Sham", date="2018-02-19", value="clashes", unc={"days": 1}
    )
    assert verdict(rec, e, fr) == R.DISAGREE  # the fight was Zenki's
    rec, e = one(kind="clashes", place="governorate", actor="JTS", date="2018-02-18", value="merger", unc={"days": 3})
    assert verdict(rec, e, fr) == R.DISAGREE
    add_event(fr, "2018-02-20", "coalition", "Atarib", note="Ahrar al-Sham + Nour al-Din al-Zenki")
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(kind="clashes", place="governorate", actor="hts", date="2018-02-27", value="split")
    assert verdict(rec, e, fr) == R.NO_MODEL


def test_fighters_killed_need_losses_per_side_and_strength_is_a_stock():
    rec, e = one(
        kind="fighters_killed",
        place="governorate",
        actor="hts",
        window={"start": "2018-02-19", "end": "2018-02-26"},
        value=94,
    )
    fr = frames()
    obs = R.observe(e, rec, fr)
    assert obs.agreement == R.NO_MODEL and "fighters_lost:hts" in obs.note
    fr["timeseries"]["fighters_lost:hts"] = 0.0
    assert verdict(rec, e, fr) == R.DISAGREE
    fr["timeseries"].loc[pd.to_datetime(fr["timeseries"]["date"]) == "2018-02-20", "fighters_lost:hts"] = 100.0
    assert verdict(rec, e, fr) == R.AGREE
    rec, e = one(
        kind="strength",
        place="governorate",
        actor="hts",
        window={"start": "2018-01-01", "end": "2018-02-28"},
        value=[7000, 11000],
        unc={"relative": 0.0},
    )
    assert verdict(rec, e, fr) == R.DISAGREE  # 12,000 throughout
    fr["timeseries"]["hts_fighters"] = 10000.0
    assert verdict(rec, e, fr) == R.AGREE


#: For every kind: an entry and a hand-built output it disagrees with (no rule is true for every output).
FAILING = {
    "displacements": (dict(place="governorate", window={"start": "2017-12-15", "end": "2018-01-22"}, value=1000), None),
    "departures": (dict(place="governorate", window={"start": "2017-12-01", "end": "2017-12-31"}, value=1000), None),
    "arrival_share": (
        dict(place="governorate", to_place="Dana", window={"start": "2017-12-01", "end": "2017-12-31"}, value=[0.5, 1]),
        lambda fr: add_event(fr, "2017-12-05", "displacement", "Kafranbel", "Binnish", persons=10),
    ),
    "hosted": (dict(place="Dana", date="2017-12-15", value=50000), None),
    "returns": (dict(place="governorate", window={"start": "2018-02-01", "end": "2018-02-20"}, value=1000), None),
    "deaths": (
        dict(place="governorate", cause="all", window={"start": "2018-01-01", "end": "2018-01-31"}, value=50),
        None,
    ),
    "strikes": (dict(place="Kafranbel", date="2018-01-06", value="hit"), None),
    "protest": (dict(place="Kafranbel", date="2018-02-02", value="dozens", target="hts"), None),
    "council": (
        dict(place="Binnish", date="2017-12-07", value="independent"),
        lambda fr: set_town(fr, "Binnish", "council_independent", False, "2017-12-01", "2018-02-28"),
    ),
    "control": (dict(place="Kafranbel", date="2018-01-07", value="regime"), None),
    "clashes": (dict(place="governorate", actor="JTS", date="2018-02-19", value="clashes"), None),
    "fighters_killed": (
        dict(place="governorate", actor="hts", window={"start": "2018-02-19", "end": "2018-02-26"}, value=94),
        lambda fr: fr["timeseries"].__setitem__("fighters_lost:hts", 0.0),
    ),
    "strength": (dict(place="governorate", actor="hts", date="2018-01-15", value=30000), None),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_rule_can_fail(kind: str):
    assert set(FAILING) == set(KINDS) == set(R.MODELS)
    kw, prepare = FAILING[kind]
    rec, e = one(kind=kind, **kw)
    fr = frames()
    if prepare is not None:
        prepare(fr)
    assert verdict(rec, e, fr) == R.DISAGREE


# --------------------------------------------------------------------------- the comparison table


def test_compare_marks_entries_after_the_run_not_reached_and_leaves_out_context():
    rec = record(
        entry(id="in-run", kind="protest", place="Kafranbel", date="2018-02-02", value="dozens", target="hts"),
        entry(id="after", kind="protest", place="Kafranbel", date="2018-03-02", value="dozens", target="hts"),
        entry(
            id="state",
            kind="council",
            place="Atarib",
            window={"start": "2017-11-01", "end": "2018-04-30"},
            value="independent",
        ),
        entry(
            id="ctx",
            kind="protest",
            place="Atarib",
            date="2017-07-23",
            value=1000,
            target="hts",
            context=True,
            role="check",
        ),
    )
    fr = frames()
    table = R.compare(rec, fr, RUN_END)
    assert list(table.columns) == list(R.COLUMNS)
    assert list(table["id"]) == ["in-run", "after", "state"]
    got = dict(zip(table["id"], table["agreement"], strict=True))
    assert got == {"in-run": R.DISAGREE, "after": R.NOT_REACHED, "state": R.AGREE}
    assert "partial" in table.set_index("id").loc["state", "note"]
    assert set(table["agreement"]) <= set(R.AGREEMENTS)


def test_shipped_record_loads_checks_against_the_scenario_and_compares(scenario):
    rec = load_record(SHIPPED_RECORD, scenario)
    check_against(rec, scenario)
    kinds = Counter(e.kind for e in rec.entries)
    assert set(kinds) == set(KINDS)
    assert {e.role for e in rec.entries} == {"calibration", "validation", "check"}
    assert all(e.role == "check" for e in rec.entries if e.context)
    # the scenario's observed figures are in the record (with their sources' own words)
    ids = {e.id for e in rec.entries}
    for needed in (
        "acaps-displacements-2018-01-22",
        "ocha-displacements-2018-02-03",
        "ocha-mainly-toward-2018-02-03",
        "snhr-killed-2018-01",
        "reach-hosted-dana-2018-01",
        "atarib-council-independent-2017-11-2018-04",
        "syria-direct-southern-protest-2018-02-late",
    ):
        assert needed in ids
    table = R.compare(rec, frames(), RUN_END)
    assert len(table) == sum(not e.context for e in rec.entries)
    assert set(table["agreement"]) <= set(R.AGREEMENTS)
    text = SHIPPED_RECORD.read_text(encoding="utf-8")
    assert "MODEL.md" not in text and "RECORD.md" not in text


# --------------------------------------------------------------------------- bad record files

GOOD = """\
record: test
scenario: idlib_2017_2018
window: {start: 2017-11-01, end: 2018-04-30}
governorate:
  towns: [Kafranbel, Binnish]
  reading: test towns
places:
  - {name: Dana sub-district, towns: [Dana, Sarmada], coverage: exact, reading: test}
entries:
  - id: first
    kind: protest
    place: Kafranbel
    date: 2018-02-02
    value: dozens
    target: hts
    source: {publisher: SMART News Agency, title: "[report]", date: 2018-02-02}
    reading: dozens protested
    uncertainty: {days: 3, reason: "'dozens'"}
    role: validation
  - id: second
    kind: hosted
    place: Dana sub-district
    window: {start: 2017-12-01, end: 2017-12-31}
    value: 50000
    source: {publisher: REACH, title: "Situation overview", date: 2018-01}
    reading: a stock
    uncertainty: {relative: 0.25, reason: estimate}
    role: validation
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "record.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_good_test_record_loads(tmp_path: Path, scenario):
    rec = load_record(_write(tmp_path, GOOD), scenario)
    assert [e.id for e in rec.entries] == ["first", "second"]


BAD = {
    "unknown town": (
        "    place: Kafranbel\n",
        "    place: Kafrnabel\n",
        12,
        "entries.0.place",
        "unknown town or place",
    ),
    "unknown kind": ("    kind: hosted\n", "    kind: refugees\n", 21, "entries.1.kind", "unknown kind 'refugees'"),
    "date outside the window": ("    date: 2018-02-02\n", "    date: 2018-06-02\n", 13, "entries.0.date", "outside"),
    "value the kind cannot take": (
        "    value: 50000\n",
        "    value: dozens\n",
        24,
        "entries.1.value",
        "not a category",
    ),
    "duplicated id": ("  - id: second\n", "  - id: first\n", 20, "entries.1.id", "duplicate entry id"),
    "missing source": (
        '    source: {publisher: REACH, title: "Situation overview", date: 2018-01}\n',
        "",
        20,
        "entries.1.source",
        "missing key 'source'",
    ),
    "source address not an address": (
        '    source: {publisher: REACH, title: "Situation overview", date: 2018-01}\n',
        '    source: {publisher: REACH, title: "Situation overview", date: 2018-01, url: "reach.org/x"}\n',
        25,
        "entries.1.source.url",
        "should match pattern",
    ),
    "unknown key": (
        "    reading: a stock\n",
        "    reading: a stock\n    colour: red\n",
        27,
        "entries.1.colour",
        "unknown key",
    ),
    "value out of a share's range": (
        "    value: 50000\n",
        "    value: [0.9, 0.5]\n",
        24,
        "entries.1.value",
        "above high",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_record_file_gives_one_line_naming_file_line_and_key(tmp_path: Path, scenario, case: str):
    old, new, line, key, words = BAD[case]
    assert GOOD.count(old) == 1
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ScenarioError) as err:
        load_record(path, scenario)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line}: {key}: "), msg
    assert words in msg
    assert err.value.line == line and err.value.key == key


def test_an_unknown_town_in_a_place_and_a_record_for_another_scenario(tmp_path: Path, scenario):
    path = _write(tmp_path, GOOD.replace("towns: [Dana, Sarmada]", "towns: [Dana, Sarmda]"))
    rec = load_record(path)  # without a scenario, towns are not checked
    with pytest.raises(ScenarioError, match=r":8: places\.0\.towns\.1: unknown town 'Sarmda'.*did you mean 'Sarmada'"):
        check_against(rec, scenario)
    path = _write(tmp_path, GOOD.replace("scenario: idlib_2017_2018", "scenario: synthetic_grid"))
    with pytest.raises(ScenarioError, match=r":2: scenario: the record is for scenario 'synthetic_grid'"):
        load_record(path, scenario)


def test_context_entries_may_lie_outside_the_window_only_as_checks(tmp_path: Path, scenario):
    text = GOOD.replace("    date: 2018-02-02\n", "    date: 2017-07-23\n    context: true\n")
    with pytest.raises(ScenarioError, match=r"entries\.0\.role: a context entry .* has role 'check'"):
        load_record(_write(tmp_path, text), scenario)
    text = text.replace("    role: validation\n", "    role: check\n", 1)
    assert load_record(_write(tmp_path, text), scenario).entries[0].context


# --------------------------------------------------------------------------- the record figure


def test_the_record_figure_draws_one_row_per_town_with_entries():
    import matplotlib.pyplot as plt

    from sim.viz.record import PANELS, plot_record, towns_with_entries

    rec = record(
        entry(kind="protest", place="Kafranbel", date="2018-02-02", value="dozens", target="hts"),
        entry(kind="council", place="Atarib", window={"start": "2017-11-01", "end": "2018-04-30"}, value="independent"),
        entry(kind="hosted", place="Dana", window={"start": "2017-12-01", "end": "2017-12-31"}, value=50000),
        entry(kind="control", place="Kafranbel", date="2018-01-07", value="regime"),
        entry(kind="deaths", place="Kafranbel", cause="strikes", date="2018-02-04", value=6),
        entry(
            kind="deaths",
            place="governorate",
            cause="all",
            window={"start": "2018-01-01", "end": "2018-01-31"},
            value=1,
        ),
        entry(kind="protest", place="Maarat Tamsrin", date="2018-03-02", value="reported", target="hts"),
        entry(kind="protest", place="Binnish", date="2017-07-23", value=10, target="hts", context=True, role="check"),
    )
    assert towns_with_entries(rec) == ["Kafranbel", "Atarib", "Dana"]
    fr = frames()
    set_town(fr, "Kafranbel", "protest_share", 0.02, "2018-02-02")
    fig = plot_record(rec, fr, comparison=R.compare(rec, fr, RUN_END))
    try:
        assert len(fig.axes) == 3 * len(PANELS)
        first = [ax for ax in fig.axes if ax.get_subplotspec().colspan.start == 0]
        assert [ax.get_ylabel() for ax in first] == ["Kafranbel", "Atarib", "Dana"]
        assert [ax.get_title() for ax in fig.axes[: len(PANELS)]] == [t for _, t in PANELS]
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "simulated" in labels and "recorded: agree" in labels and "recorded: disagree" in labels
    finally:
        plt.close(fig)


def test_the_record_figure_of_the_shipped_record_draws_every_town_with_an_entry(scenario, tmp_path: Path):
    import matplotlib.pyplot as plt

    from sim.viz.record import PANELS, plot_record, town_of, towns_with_entries

    rec = load_record(SHIPPED_RECORD, scenario)
    towns = towns_with_entries(rec)
    expected = {town_of(rec, e) for e in rec.entries if not e.context} - {None}
    assert set(towns) == expected and len(towns) >= 10
    fr = frames()
    for t in set(towns) - set(TOWNS):  # give every drawn town its rows
        extra = fr["towns"][fr["towns"]["town"] == "Kafranbel"].copy()
        extra["town"] = t
        fr["towns"] = pd.concat([fr["towns"], extra], ignore_index=True)
    fig = plot_record(rec, fr, save=tmp_path / "record.png")
    try:
        assert len(fig.axes) == len(towns) * len(PANELS)
        first = [ax for ax in fig.axes if ax.get_subplotspec().colspan.start == 0]
        assert [ax.get_ylabel() for ax in first] == towns
        assert (tmp_path / "record.png").stat().st_size > 0
    finally:
        plt.close(fig)


def test_a_change_of_the_campaign_compares_strikes_before_and_after_its_date():
    rec, e = one(kind="strikes", place="governorate", date="2018-02-11", value="decreased")
    fr = frames()
    assert verdict(rec, e, fr) == R.DISAGREE  # no strikes before or after: no decrease
    set_town(fr, "Kafranbel", "strikes", 2, "2018-01-28", "2018-02-10")
    assert verdict(rec, e, fr) == R.AGREE
    set_town(fr, "Binnish", "strikes", 3, "2018-02-11", "2018-02-24")
    assert verdict(rec, e, fr) == R.DISAGREE
    rec, e = one(kind="strikes", place="governorate", date="2017-11-01", value="escalated")
    assert verdict(rec, e, fr) == R.NO_MODEL  # the run starts that day


def test_no_strikes_either_side_is_no_escalation():
    rec, e = one(kind="strikes", place="governorate", date="2018-01-15", value="escalated")
    fr = frames()
    assert verdict(rec, e, fr) == R.DISAGREE
    set_town(fr, "Kafranbel", "strikes", 1, "2018-01-15", "2018-01-28")
    assert verdict(rec, e, fr) == R.AGREE


# --------------------------------------------------------------------------- bad records through the command line

#: Bad records the command line meets through a scenario naming them (the cases of BAD the brief lists).
CLI_BAD = ("unknown town", "unknown kind", "date outside the window", "value the kind cannot take", "duplicated id",
           "missing source")  # fmt: skip


def _scenario_naming(tmp_path: Path, record_text: str) -> tuple[Path, Path]:
    record_file = tmp_path / "record" / "bad.yaml"
    record_file.parent.mkdir(exist_ok=True)
    record_file.write_text(record_text, encoding="utf-8")
    scenario_file = tmp_path / "with_record.yaml"
    shipped = ROOT / "scenarios" / "idlib_2017_2018.yaml"
    scenario_file.write_text(f"extends: {shipped}\nrecord: record/bad.yaml\n", encoding="utf-8")
    return scenario_file, record_file


@pytest.mark.parametrize("case", CLI_BAD)
def test_a_bad_record_through_validate_and_run_is_one_line_exit_2_nothing_written(
    tmp_path: Path, run_cli, case: str
) -> None:
    old, new, line, key, words = BAD[case]
    scenario_file, record_file = _scenario_naming(tmp_path, GOOD.replace(old, new))
    commands = [("validate", scenario_file)]
    if case in ("unknown town", "duplicated id"):  # `sim run` goes through the same loader: two cases suffice
        commands.append(("run", scenario_file, "--out", tmp_path / "results"))
    for args in commands:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        message = proc.stderr.strip()
        assert "\n" not in message, message
        assert f"{record_file}:{line}: {key}: " in message, message
        assert words in message
        assert not (tmp_path / "results").exists()


def test_a_scenario_naming_a_missing_record_file_is_one_line_exit_2(tmp_path: Path, run_cli) -> None:
    scenario_file, record_file = _scenario_naming(tmp_path, GOOD)
    record_file.unlink()
    proc = run_cli("validate", scenario_file)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "record: record file 'record/bad.yaml' not found" in proc.stderr


# --------------------------------------------------------------------------- calibration targets from the record

CALIBRATION = ROOT / "scenarios" / "calibration" / "idlib_2017_2018.yaml"


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("  snhr-killed-2018-01: {}\n", "  snhr-killed-2018-1: {}\n", "no entry 'snhr-killed-2018-1' in record"),
        ("  snhr-killed-2018-01: {}\n", "", "calibration entry 'snhr-killed-2018-01' is not a target"),
        (
            "  snhr-killed-2018-01: {}\n",
            "  snhr-killed-2018-01: {}\n  sputnik-sinjar-regime-2018-01-07: {}\n",
            "has role 'check': a check is never a target",
        ),
        ("  snhr-killed-2018-01: {}\n", "  snhr-killed-2018-01: {relative: 0.3}\n", "needs its 'reason'"),
        (
            "  ocha-mainly-toward-2018-02-03: {absolute: 0.1,",
            "  ocha-mainly-toward-2018-02-03: {",
            "gives no tolerance (relative 0)",
        ),
    ],
)
def test_calibration_targets_name_record_entries(tmp_path: Path, old: str, new: str, words: str) -> None:
    from sim.scenario.calibration import load_calibration
    from sim.scenario.loader import load_scenario

    loaded = load_scenario(ROOT / "scenarios" / "idlib_2017_2018.yaml")
    good = load_calibration(CALIBRATION, loaded)
    assert {t.name for t in good.calibration_targets} == {
        e.id for e in loaded.record.entries if e.role == "calibration"
    }
    text = CALIBRATION.read_text(encoding="utf-8")
    assert text.count(old) == 1
    bad = tmp_path / "calibration.yaml"
    bad.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_calibration(bad, loaded)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"{bad}:")


def test_every_source_address_of_the_shipped_record_is_a_web_address_and_unattributed_ones_say_why(scenario):
    rec = load_record(SHIPPED_RECORD, scenario)
    sources = [src for e in rec.entries for src in (e.source if isinstance(e.source, list) else [e.source])]
    with_url = [src for src in sources if src.url is not None]
    assert len(with_url) >= 15 and all(src.url.startswith(("http://", "https://")) for src in with_url)
    # an unattributed figure is flagged in its publisher with what is known of its origin
    unattributed = [src for src in sources if src.publisher.startswith("unattributed")]
    assert all(src.publisher.startswith("unattributed (") and src.url is None for src in unattributed)

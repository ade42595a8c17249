"""Each submodel in a tiny controlled scenario: strikes, HTS, councils, flight, front, rivals, recruitment.

The tiny scenario (conftest ``TINY_TOWNS``) has three towns: A (resisting) and B
4 km apart, C 60 km away; no background strikes and no front unless a test adds
them, so every effect below has one cause.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from sim.model.model import AllegianceModel


def town_frame(model: AllegianceModel) -> pd.DataFrame:
    return model.collector.frames()["towns"]


def last(towns: pd.DataFrame, col: str) -> pd.Series:
    """Value of ``col`` per town on the last day."""
    day = towns["day"].max()
    return towns[towns["day"] == day].set_index("town")[col]


def series(towns: pd.DataFrame, town: str, col: str) -> np.ndarray:
    return towns[towns["town"] == town].sort_values("day")[col].to_numpy()


def calendar(town: str, days, strikes: int = 2, killed: int | None = 6) -> list[dict]:
    return [{"day": d, "town": town, "strikes": strikes, "killed": killed} for d in days]


def by_town(model: AllegianceModel, values: np.ndarray) -> np.ndarray:
    """Mean of a household array over the households whose home is each town."""
    hh = model.hh
    return np.bincount(hh.home, weights=values, minlength=model.town_state.n) / np.bincount(
        hh.home, minlength=model.town_state.n
    )


# --------------------------------------------------------------------------- air strikes


@pytest.fixture(scope="module")
def struck(tiny, run_model):
    """Town A struck every other day for ten days; nobody flees."""
    sc = tiny(
        days=12,
        air_campaign={"policy": "calendar", "calendar": calendar("A", range(0, 10, 2))},
        flight={"exposure_rate": 0.0, "front_rate": 0.0},
    )
    return run_model(sc)


def test_a_strike_raises_fear_most_in_the_hit_town_less_next_door_and_barely_far_away(struck):
    fear = by_town(struck, struck.hh.fear)
    a, b, c = fear
    assert a > 0.2
    assert a > b > c >= 0
    assert b > 0.05 * a  # a neighbour 4 km away feels it
    assert c < 0.05 * a  # a town 60 km away hardly does


def test_a_strike_raises_regime_grievance_most_in_the_hit_town(struck):
    hh = struck.hh
    rise = by_town(struck, hh.g_regime - hh.g_regime0)
    a, b, c = rise
    assert a > 0.05
    assert a > b > c
    assert c < 0.01 * a


def test_strike_events_casualties_and_exposure_are_where_the_calendar_says(struck):
    ev = struck.collector.frames()["events"]
    strikes = ev[ev["event"] == "strike"]
    assert len(strikes) == 10
    assert set(strikes["town"]) == {"A"}
    assert sorted(set(strikes["day"])) == [0, 2, 4, 6, 8]
    assert strikes["persons"].sum() == pytest.approx(30)  # 6 killed on each of five days
    towns = town_frame(struck)
    assert last(towns, "killed_cum")["A"] == pytest.approx(30)
    assert last(towns, "killed_cum")[["B", "C"]].sum() == 0
    exp = last(towns, "exposure")
    assert exp["A"] > exp["B"] > exp["C"] > 0
    assert last(towns, "damage")["A"] > 0 and last(towns, "damage")[["B", "C"]].sum() == 0
    assert last(towns, "strikes_cum")["A"] == 10


def test_strikes_hollow_out_the_hit_towns_council(tiny, run_model):
    base = dict(civil_society={"council_rate": 0.0, "council_decay": 0.0}, hts={"takeover_rate": 0.0})
    quiet = town_frame(run_model(tiny(**base)))
    hit = town_frame(run_model(tiny(air_campaign={"policy": "calendar", "calendar": calendar("A", [0, 1, 2])}, **base)))
    assert last(quiet, "council")["A"] == pytest.approx(0.6)
    assert last(hit, "council")["A"] == pytest.approx(0.6 * (1 - 0.03) ** 6)  # council_damage per strike
    assert last(hit, "council")["B"] == pytest.approx(0.5)


def test_misses_land_on_the_nearest_town(tiny, run_model):
    sc = tiny(days=5, air_campaign={"policy": "random", "accuracy": 0.0, "miss_neighbour_share": 1.0})
    ev = run_model(sc).collector.frames()["events"]
    strikes = ev[ev["event"] == "strike"]
    assert len(strikes) > 0
    assert set(strikes["note"]) == {"random:miss"}
    # A and B are each other's nearest towns; C's nearest is B. Nothing can land on C.
    assert "C" not in set(strikes["town"])


# --------------------------------------------------------------------------- HTS


def _services_scenario(tiny, services_weight: float):
    towns = [
        {"name": "A", "x": 1, "y": 1, "persons": 3000, "stance": "mixed", "hts_control": 0.1, "hts_services": 0.0},
        {"name": "C", "x": 31, "y": 1, "persons": 3000, "stance": "mixed", "hts_control": 0.9, "hts_services": 0.0},
    ]
    return tiny(
        towns=towns,
        days=40,
        hts={"service_rate": 0.1, "consolidation_rate": 0.0, "takeover_rate": 0.0, "resources": 1e6},
        choice={"services_weight": services_weight, "revision_rate": 0.5},
        baseline={"stationary": False},  # the raw process rule, not balanced at the start
    )


def test_hts_services_grow_where_hts_control_is_high(tiny, run_model):
    towns = town_frame(run_model(_services_scenario(tiny, 1.5)))
    services = last(towns, "hts_services")
    assert services["C"] > 0.5
    assert services["C"] > 2.5 * services["A"]


def test_hts_services_raise_cooperation_where_control_is_high(tiny, run_model):
    without = town_frame(run_model(_services_scenario(tiny, 0.0)))
    with_ = town_frame(run_model(_services_scenario(tiny, 4.0)))
    gain = last(with_, "coop_share") - last(without, "coop_share")
    assert gain["C"] > 0.1
    assert gain["C"] > 2 * gain["A"]


def _repression_scenario(tiny, repression: float):
    return tiny(
        days=40,
        hts={"repression": repression, "takeover_rate": 0.0},
        mechanisms={"pretext_blame": 0.0},  # strikes then add nothing to G_H: arrests are the only cause
        grievance={"repression_weight": 1.0, "home_team_discount": 0.0},
        protest={"jail_days": 5},
        air_campaign={"policy": "calendar", "calendar": calendar("A", range(0, 30, 3))},
        baseline={"stationary": False},  # all coercion counts, not only what exceeds its standing level
    )


def test_repression_raises_grievance_against_hts(tiny, run_model):
    lenient = run_model(_repression_scenario(tiny, 0.0))
    harsh = run_model(_repression_scenario(tiny, 1.0))
    lt, ht = town_frame(lenient), town_frame(harsh)
    assert series(lt, "A", "arrests").sum() == 0
    assert series(ht, "A", "arrests").sum() > 0
    assert last(ht, "grievance_hts_mean")["A"] > last(lt, "grievance_hts_mean")["A"] + 0.03
    assert np.all(harsh.hh.g_hts[harsh.hh.jailed_until > 0] > harsh.hh.g_hts0[harsh.hh.jailed_until > 0])


def test_hts_coercion_never_moves_grievance_against_the_regime(tiny, run_model):
    """Asymmetric blame (Lyall, Blair & Imai 2013): G_R is identical with and without arrests."""
    lenient = run_model(_repression_scenario(tiny, 0.0))
    harsh = run_model(_repression_scenario(tiny, 1.0))
    assert np.any(harsh.hh.g_regime != harsh.hh.g_regime0)  # strikes did move it
    np.testing.assert_array_equal(lenient.hh.g_regime, harsh.hh.g_regime)


def test_recruitment_adds_hts_fighters(tiny, run_model):
    sc = tiny(days=30, recruitment={"hts_rate": 0.05, "rival_rate": 0.0})
    model = run_model(sc)
    ts = model.collector.frames()["timeseries"]
    recruits = ts["hts_recruits_cum"].to_numpy()
    assert recruits[-1] > 0
    assert np.all(np.diff(recruits) >= 0)
    # Each day's recruits, less the standing attrition of a stationary baseline (5.7): the recruits expected on day 0.
    attrition = model.state.balance["hts_fighters"]
    assert attrition > 0
    days = np.arange(1, len(recruits) + 1)
    np.testing.assert_allclose(ts["hts_fighters"], sc.hts.fighters + recruits - attrition * days)
    none = run_model(tiny(days=30, recruitment={"hts_rate": 0.0, "rival_rate": 0.0}))
    ts0 = none.collector.frames()["timeseries"]
    assert ts0["hts_recruits_cum"].iloc[-1] == 0 and ts0["hts_fighters"].iloc[-1] == sc.hts.fighters
    # Without a stationary baseline there is no attrition: fighters are the initial ones plus every recruit.
    free = tiny(days=30, recruitment={"hts_rate": 0.05, "rival_rate": 0.0}, baseline={"stationary": False})
    ts1 = run_model(free).collector.frames()["timeseries"]
    np.testing.assert_allclose(ts1["hts_fighters"], free.hts.fighters + ts1["hts_recruits_cum"].to_numpy())


def test_resisting_households_join_a_rival_group_present_in_their_town(tiny, run_model):
    groups = [{"name": "G", "fighters": 100, "towns": {"A": 1.0}}]
    sc = tiny(days=30, rivals={"groups": groups}, recruitment={"hts_rate": 0.0, "rival_rate": 0.05})
    model = run_model(sc)
    ts = model.collector.frames()["timeseries"]
    assert ts["rival_recruits_cum"].iloc[-1] > 0
    attrition = float(np.asarray(model.state.balance["rival_fighters"])[0])  # standing attrition (5.7)
    assert attrition > 0
    assert ts["rival_fighters"].iloc[-1] == pytest.approx(100 + ts["rival_recruits_cum"].iloc[-1] - 30 * attrition)
    joined = model.hh.rival_group >= 0
    assert np.all(model.hh.home[joined] == 0)  # only town A has the group


def test_rival_alignment_rises_under_regime_pressure(tiny, run_model):
    groups = [{"name": "G", "alignment": -0.5, "towns": {"A": 1.0, "B": 0.5}}]

    def alignment(sorties: float, pressure_rate: float = 0.05) -> np.ndarray:
        sc = tiny(
            days=30,
            # Only the common threat moves alignment here (the other drivers: tests/test_rivals.py).
            rivals={
                "groups": groups,
                "pressure_rate": pressure_rate,
                "pretext_rate": 0.0,
                "relief_rate": 0.0,
                "predation_rate": 0.0,
                "resistance_rate": 0.0,
            },
            air_campaign={"policy": "random", "sorties_per_day": sorties},
        )
        return run_model(sc).collector.frames()["timeseries"]["alignment:G"].to_numpy()

    calm, bombed = alignment(0.0), alignment(4.0)
    assert calm[-1] == pytest.approx(-0.5)  # no threat without strikes or front
    assert bombed[-1] > -0.45
    assert np.all(np.diff(bombed) >= 0)
    assert alignment(4.0, pressure_rate=0.0)[-1] == pytest.approx(-0.5)


# --------------------------------------------------------------------------- councils


def _council_scenario(tiny, takeover_rate: float, **extra):
    towns = [
        {"name": "A", "x": 1, "y": 1, "persons": 3000, "council": 0.3, "hts_control": 0.9, "civil_society": 0.5},
        {"name": "C", "x": 31, "y": 1, "persons": 3000, "council": 0.3, "hts_control": 0.0, "civil_society": 0.5},
    ]
    # The raw takeover rule: without a stationary baseline only shocks would raise the pressure.
    extra.setdefault("baseline", {"stationary": False})
    return tiny(towns=towns, days=20, hts={"takeover_rate": takeover_rate, "protest_shield": 0.0}, **extra)


def test_a_council_takeover_lowers_council_legitimacy(tiny, run_model):
    model = run_model(_council_scenario(tiny, 1.0))
    frames = model.collector.frames()
    takeovers = frames["events"][frames["events"]["event"] == "council_takeover"]
    assert list(takeovers["town"]) == ["A"]  # C has no HTS control: never taken
    day = int(takeovers["day"].iloc[0])
    council = series(frames["towns"], "A", "council")
    before = 0.3 if day == 0 else council[day - 1]
    # takeover_council_loss 0.6, then a day of council decay without civil society gains
    assert council[day] == pytest.approx(before * 0.4 * (1 - 0.002))
    independent = series(frames["towns"], "A", "council_independent")
    assert independent[:day].all() and not independent[day:].any()
    assert series(frames["towns"], "A", "hts_control")[day] > 0.9
    assert frames["timeseries"]["council_takeovers_cum"].iloc[-1] == 1


def test_no_takeovers_when_the_rate_is_zero(tiny, run_model):
    frames = run_model(_council_scenario(tiny, 0.0)).collector.frames()
    assert (frames["events"]["event"] == "council_takeover").sum() == 0
    assert frames["towns"]["council_independent"].all()


def test_a_takeover_needs_the_pressure_above_the_threshold(tiny, run_model):
    # Town A's pressure starts at 0.9 * (1 - 0.3) = 0.63 (no shield, no rivals, no stationary baseline: g0 = 0)
    # and falls to about 0.53 by day 20 as civil society raises its council. At a daily rate of 1 a threshold
    # above it leaves no takeover; one at 0.5 leaves p of 0.13 falling to 0.03 a day (a takeover within 20
    # days with probability about 0.8 per seed); none leaves p = 0.63 a day, so every seed's council falls.
    def takeovers(threshold: float) -> int:
        count = 0
        sc = _council_scenario(tiny, 1.0)
        sc = type(sc).model_validate(
            {**sc.model_dump(), "hts": {**sc.hts.model_dump(), "takeover_threshold": threshold}}
        )
        for seed in range(10):
            ev = run_model(sc, seed).collector.frames()["events"]
            count += int(((ev["event"] == "council_takeover") & (ev["town"] == "A")).sum())
        return count

    assert takeovers(0.64) == 0
    assert takeovers(0.50) >= 5
    assert takeovers(0.0) == 10  # p = 0.63 a day: every seed's council falls (once: it is no longer independent)


def _pushed_control(tiny, half_life: float | None, days: int, push: float = 0.2):
    """Town A's control pushed by ``push`` after construction; control's own drivers off (consolidation 0, no
    takeovers), so only the return to the standing level (ODD 7.4 item 3) can move it."""
    sc = tiny(
        days=days,
        mechanisms={"consolidation": 0.0},
        hts={"takeover_rate": 0.0, "control_half_life_days": half_life},
    )
    model = AllegianceModel(sc, household_agents=False)
    ts = model.state.town_state
    standing = ts.control_standing.copy()
    assert np.array_equal(standing, ts.control)  # the standing level is the level after construction
    ts.control[0] += push
    return model, ts, standing


def test_control_returns_to_its_standing_level_with_its_half_life(tiny):
    model, ts, standing = _pushed_control(tiny, 20.0, 20)
    model.run()
    assert ts.control[0] - standing[0] == pytest.approx(0.1, rel=1e-9)  # half the push gone in one half-life
    assert np.array_equal(ts.control[1:], standing[1:])  # towns at their standing level stay there
    model, ts, standing = _pushed_control(tiny, None, 20)  # no half-life: the push stays whole
    model.run()
    assert ts.control[0] - standing[0] == pytest.approx(0.2, rel=1e-12)


def test_a_change_of_hands_resets_the_standing_level(tiny):
    from sim.model import towns
    from sim.model.control import CONTESTED

    model, ts, standing = _pushed_control(tiny, 7.0, 30, push=-0.25)
    towns.change_controller(model.state, 0, CONTESTED, "test")  # control 0.05 when the town changes hands
    assert ts.control_standing[0] == pytest.approx(standing[0] - 0.25)
    model.run()
    assert ts.control[0] == pytest.approx(standing[0] - 0.25, abs=1e-12)  # it does not return to the old hold


def test_civil_society_raises_council_legitimacy(tiny, run_model):
    towns = [
        {"name": "A", "x": 1, "y": 1, "persons": 3000, "council": 0.3, "civil_society": 0.9},
        {"name": "C", "x": 31, "y": 1, "persons": 3000, "council": 0.3, "civil_society": 0.0},
    ]
    sc = tiny(towns=towns, days=30, hts={"takeover_rate": 0.0}, baseline={"stationary": False})
    frames = run_model(sc).collector.frames()
    a = series(frames["towns"], "A", "council")
    c = series(frames["towns"], "C", "council")
    assert a[-1] > 0.45 and np.all(np.diff(a) > 0)
    np.testing.assert_allclose(c, 0.3 * (1 - 0.002) ** np.arange(1, 31))  # decay only


# --------------------------------------------------------------------------- flight and the front


def _flight_towns(capacity_near: float):
    # Capacities far above the flows, so that distance and safety decide (except capacity 0).
    return [
        {"name": "O", "x": 10, "y": 1, "persons": 6000, "stance": "resisting"},
        {"name": "Near", "x": 12, "y": 1, "persons": 3000, "host_capacity": capacity_near},
        {"name": "Far", "x": 20, "y": 1, "persons": 3000, "host_capacity": 10.0},
        {"name": "Held", "x": 10, "y": 3, "persons": 3000, "front": "regime"},
    ]


def _flight_scenario(tiny, capacity_near: float):
    return tiny(
        towns=_flight_towns(capacity_near),
        days=25,
        air_campaign={"policy": "calendar", "calendar": calendar("O", range(0, 20), strikes=3, killed=15)},
        flight={"exposure_rate": 0.5, "front_rate": 0.0, "return_rate": 0.0},
        front={"enabled": True, "range_km": 0.5},
        exposure={"neighbour_weight": 0.0},
    )


def _arrivals(model: AllegianceModel) -> pd.Series:
    ev = model.collector.frames()["events"]
    moves = ev[(ev["event"] == "displacement") & (ev["town"] == "O")]
    return moves.groupby("to_town", observed=False)["persons"].sum()


def test_flight_goes_to_open_towns_weighted_by_distance(tiny, run_model):
    model = run_model(_flight_scenario(tiny, 10.0))
    arrivals = _arrivals(model)
    assert arrivals.sum() > 300
    assert arrivals["Held"] == 0  # never into a regime-held town
    assert arrivals["Near"] > 3 * arrivals["Far"]  # 4 km vs 20 km, gamma 1.5
    hh = model.hh
    np.testing.assert_array_equal(hh.displaced, hh.town != hh.home)
    # displaced keep their home town: O (flight from strikes) or Held, which its residents leave at
    # flight.capture_rate since the regime holds it (nobody arrives there: above)
    assert set(np.unique(hh.home[hh.displaced])) == {0, 3}
    assert not np.any(hh.displaced & (hh.town == 3))


def test_flight_avoids_towns_without_free_capacity(tiny, run_model):
    arrivals = _arrivals(run_model(_flight_scenario(tiny, 0.0)))
    assert arrivals["Far"] > 300
    assert arrivals["Near"] == 0 and arrivals["Held"] == 0


def test_flight_prefers_safe_border_towns(tiny, run_model):
    def arrivals(border_safety: float) -> pd.Series:
        towns = _flight_towns(10.0)
        towns[2] = {**towns[2], "border": True, "x": 12, "y": 3}  # Far moved next to Near, on the border
        sc = _flight_scenario(tiny, 10.0).model_dump()
        sc["towns"] = towns
        sc["flight"]["border_safety"] = border_safety
        return _arrivals(run_model(type(_flight_scenario(tiny, 10.0)).model_validate(sc)))

    plain, safe = arrivals(1.0), arrivals(5.0)
    assert safe["Far"] / safe.sum() > plain["Far"] / plain.sum() + 0.2


def _taken_town(tiny, run_model, days: int, **flight: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    sc = tiny(
        days=days,
        front={"enabled": True, "events": [{"day": 3, "town": "A", "status": "regime"}]},
        air_campaign={"policy": "random", "sorties_per_day": 3},
        flight={"return_rate": 0.5, **flight},
    )
    frames = run_model(sc).collector.frames()
    return frames["towns"], frames["events"]


def _assert_taken_town_closed(towns: pd.DataFrame, ev: pd.DataFrame) -> None:
    """A taken town (A, day 3): closed, nobody arrives or returns, never struck again, never refills."""
    present = series(towns, "A", "persons_present")
    assert np.all(present[:3] > 0)
    assert np.all(np.diff(present[3:]) <= 0)  # never increases after the fall
    assert np.all(np.diff(series(towns, "A", "persons_at_home")[3:]) <= 0)
    assert list(series(towns, "A", "front")[2:5]) == ["opposition", "regime", "regime"]
    for col in ("hts_control", "council", "hts_services"):
        assert np.all(series(towns, "A", col)[3:] == 0)
    assert not ((ev["event"] == "strike") & (ev["town"] == "A") & (ev["day"] > 3)).any()
    arrivals = ev["event"].isin(["displacement", "return"]) & (ev["to_town"] == "A") & (ev["day"] >= 3)
    assert not arrivals.any()
    assert np.all(np.diff(series(towns, "A", "hosted_displaced")[3:]) <= 0)  # guests there leave too


def test_a_town_taken_by_the_regime_empties_over_days_and_stays_empty(tiny, run_model):
    """Default ``flight.capture_rate`` 0.25: a quarter of those still there leave each day, from the day
    of the fall; the town is empty within 40 days of it (0.75^40 ~ 1e-5 per household)."""
    towns, ev = _taken_town(tiny, run_model, days=60)
    _assert_taken_town_closed(towns, ev)
    present = series(towns, "A", "persons_present")
    before = present[2]
    assert 0 < present[3] < before  # not emptied on the day it falls, but the first share leaves then
    # leaving at about the documented rate: no strikes in a taken town, so only leaving lowers it
    kept = present[3:13] / np.concatenate([[before], present[3:12]])
    assert 0.75 - 0.06 <= kept.mean() <= 0.75 + 0.06, kept
    assert present[12] == pytest.approx(before * 0.75**10, rel=0.35)
    assert np.all(present[3 + 40 :] == 0)
    assert np.all(series(towns, "A", "persons_at_home")[3 + 40 :] == 0)


def test_a_town_taken_by_the_regime_is_emptied_on_the_day_at_capture_rate_one(tiny, run_model):
    """``flight.capture_rate`` 1 (the schema's upper bound): everyone present leaves on the day it falls."""
    towns, ev = _taken_town(tiny, run_model, days=20, capture_rate=1.0)
    _assert_taken_town_closed(towns, ev)
    present = series(towns, "A", "persons_present")
    assert np.all(present[3:] == 0)
    assert np.all(series(towns, "A", "persons_at_home")[3:] == 0)
    assert np.all(series(towns, "A", "hosted_displaced")[3:] == 0)
    # every household of A is now displaced or dead (3,000 persons at the start)
    assert series(towns, "A", "displaced_out")[3] + series(towns, "A", "killed_cum")[3] == pytest.approx(3000)
    assert not ((ev["event"] == "return") & (ev["to_town"] == "A") & (ev["day"] >= 3)).any()


def test_the_displaced_before_the_start_are_hosted_and_leave_with_the_residents(tiny, run_model):
    """A town's ``displaced`` (part of its persons) count as hosted there from day 0
    (``hosted_before_start``, times ``households.displaced_before_scale``) and leave as its residents do;
    the column is a reading only: the run's dynamics do not change with it."""
    plain = [t.model_dump() for t in tiny().towns]
    towns = [{**t, "displaced": 1200} if t["name"] == "A" else t for t in plain]
    blocks = {
        "days": 12,
        "front": {"enabled": True, "events": [{"day": 6, "town": "A", "status": "regime"}]},
        "flight": {"capture_rate": 1.0},
    }
    full = run_model(tiny(towns, **blocks)).collector.frames()["towns"]
    before = series(full, "A", "hosted_before_start")
    at_home = series(full, "A", "persons_at_home")
    np.testing.assert_allclose(before, 1200 / 3000 * at_home)  # the residents' share at home
    assert before[0] == pytest.approx(1200, rel=0.02)
    assert np.all(before[6:] == 0)  # the town falls on day 6: they leave with everyone else
    assert np.all(series(full, "B", "hosted_before_start") == 0)  # none set apart in B
    half = run_model(tiny(towns, **{**blocks, "households": {"displaced_before_scale": 0.5}})).collector.frames()
    np.testing.assert_allclose(series(half["towns"], "A", "hosted_before_start"), before / 2)
    np.testing.assert_array_equal(series(half["towns"], "A", "hosted_displaced"), series(full, "A", "hosted_displaced"))
    with pytest.raises(ValidationError, match="cannot exceed"):
        tiny([{**plain[0], "displaced": 3001}, *plain[1:]])


def test_the_regime_held_count_counts_a_taken_town(tiny, run_model):
    sc = tiny(days=20, front={"enabled": True, "events": [{"day": 3, "town": "A", "status": "regime"}]})
    assert run_model(sc).collector.frames()["timeseries"]["towns_regime_held"].iloc[-1] == 1


def test_front_proximity_makes_households_flee(tiny, run_model):
    def moves(front_rate: float) -> float:
        sc = tiny(
            days=20,
            front={"enabled": True, "events": [{"day": 0, "town": "C", "status": "contested"}]},
            flight={"front_rate": front_rate, "exposure_rate": 0.0},
        )
        return run_model(sc).collector.frames()["timeseries"]["displacement_moves_cum"].iloc[-1]

    assert moves(0.0) == 0
    assert moves(0.02) > 100


# --------------------------------------------------------------------------- targeting policies


def _strikes(model: AllegianceModel) -> pd.DataFrame:
    ev = model.collector.frames()["events"]
    return ev[ev["event"] == "strike"]


@pytest.fixture(scope="module")
def targeted(grid, run_model):
    """Struck towns under each policy on the synthetic grid (every sortie lands on its target)."""
    out = {}
    for policy in ("random", "resisting_towns", "hts_strongholds", "frontline", "none"):
        model = run_model(grid("air_campaign.accuracy=1", "days=20", f"air_campaign.policy={policy}"))
        out[policy] = (model, _strikes(model))
    return out


def test_policy_none_strikes_nothing(targeted):
    model, strikes = targeted["none"]
    assert len(strikes) == 0
    assert model.collector.frames()["timeseries"]["killed_cum"].iloc[-1] == 0


def test_resisting_towns_policy_hits_towns_with_a_resisting_reputation(targeted, grid):
    resisting = set(grid().resisting_towns)
    share = {p: targeted[p][1]["town"].isin(resisting).mean() for p in ("random", "resisting_towns")}
    assert share["resisting_towns"] > 0.9
    assert share["random"] < 0.4


def test_hts_strongholds_policy_hits_high_control_towns(targeted, grid):
    control = {t.name: t.hts_control for t in grid().towns}

    def mean_control(policy: str) -> float:
        return targeted[policy][1]["town"].astype(str).map(control).mean()

    assert mean_control("hts_strongholds") > mean_control("random") + 0.1
    assert mean_control("hts_strongholds") > 0.55


def test_frontline_policy_hits_towns_near_the_front(targeted):
    model, _ = targeted["frontline"]
    front = model.town_index("Village-B")  # the contested town
    dist = dict(zip(model.town_state.names, model.geo.distance_km[front], strict=True))

    def mean_distance(policy: str) -> float:
        return targeted[policy][1]["town"].astype(str).map(dist).mean()

    assert mean_distance("frontline") < 0.5 * mean_distance("random")


def test_all_background_policies_draw_the_same_sorties(grid, run_model):
    """Same seed, same sortie budget: with every sortie landing, the daily strike counts match.

    Casualties are on (the default), so the test also checks that resolving a strike
    does not shift the draws of later sorties.
    """
    counts = {}
    for policy in ("random", "resisting_towns", "hts_strongholds", "frontline"):
        model = run_model(grid("air_campaign.accuracy=1", "days=40", f"air_campaign.policy={policy}"))
        counts[policy] = model.collector.frames()["timeseries"]["strikes"].to_numpy()
    assert counts["random"].sum() > 60
    for policy, c in counts.items():
        np.testing.assert_array_equal(c, counts["random"], err_msg=policy)


def test_all_background_policies_draw_the_same_sorties_without_casualties(grid, run_model):
    counts = {}
    for policy in ("random", "resisting_towns", "hts_strongholds", "frontline"):
        sc = grid("air_campaign.accuracy=1", "air_campaign.casualties_per_strike=0", f"air_campaign.policy={policy}")
        counts[policy] = run_model(sc).collector.frames()["timeseries"]["strikes"].to_numpy()
    for policy, c in counts.items():
        np.testing.assert_array_equal(c, counts["random"], err_msg=policy)


def test_calendar_policy_strikes_only_the_dated_towns(tiny, run_model):
    sc = tiny(
        start_date="2018-01-01",
        days=15,
        households={"sample_fraction": 1.0},
        air_campaign={
            "policy": "calendar",
            "sorties_per_day": 20,  # drawn but never flown under this policy
            "calendar": [
                {"date": "2018-01-03", "town": "B", "strikes": 3, "killed": 12},
                {"day": 9, "town": "C", "strikes": 1},
            ],
        },
    )
    strikes = _strikes(run_model(sc))
    assert list(strikes.groupby(["day", "town"], observed=True).size().items()) == [((2, "B"), 3), ((9, "C"), 1)]
    assert set(strikes["note"]) == {"calendar"}
    assert strikes[strikes["town"] == "B"]["persons"].sum() == 12  # the recorded toll, at full resolution
    assert list(strikes[strikes["town"] == "B"]["date"].dt.strftime("%Y-%m-%d").unique()) == ["2018-01-03"]


def test_background_campaign_respects_its_start_and_end(tiny, run_model):
    sc = tiny(days=20, air_campaign={"policy": "random", "sorties_per_day": 5, "start": {"day": 5}, "end": {"day": 9}})
    days = set(_strikes(run_model(sc))["day"])
    assert days and days <= set(range(5, 10))


def test_no_sorties_no_strikes(grid, run_model):
    assert len(_strikes(run_model(grid("air_campaign.sorties_per_day=0", "air_campaign.policy=random")))) == 0


# --------------------------------------------------------------------------- more HTS and household dynamics


def test_displaced_households_return_home_once_it_is_safe(tiny, run_model):
    sc = tiny(
        days=60,
        air_campaign={"policy": "calendar", "calendar": calendar("A", range(0, 6), strikes=3, killed=15)},
        flight={"exposure_rate": 0.5, "return_rate": 0.2},
        exposure={"half_life_days": 3},
    )
    frames = run_model(sc).collector.frames()
    ts, ev = frames["timeseries"], frames["events"]
    displaced = ts["displaced_persons"].to_numpy()
    peak = int(displaced.argmax())
    assert displaced[peak] > 100
    assert displaced[-1] < 0.2 * displaced[peak]
    returns = ev[ev["event"] == "return"]
    assert returns["persons"].sum() == pytest.approx(ts["returns"].sum())
    assert (returns["town"] != returns["to_town"]).all()
    by_home = returns.groupby("to_town", observed=True)["persons"].sum()
    assert by_home.idxmax() == "A"  # the struck town's households fled most and come home most


def test_the_governance_body_multiplies_takeovers_from_its_founding(tiny, run_model):
    sc = _council_scenario(tiny, 0.01)
    sc = type(sc).model_validate(
        {
            **sc.model_dump(),
            "days": 30,
            "hts": {"takeover_rate": 0.01, "governance_body": {"day": 2, "takeover_multiplier": 100}},
        }
    )
    ev = run_model(sc).collector.frames()["events"]
    takeovers = ev[ev["event"] == "council_takeover"]
    assert len(takeovers) == 1
    assert 2 <= int(takeovers["day"].iloc[0]) < 8  # p = 0.0063/day before day 2, 0.63/day after


def test_hts_attacks_push_rivals_away(tiny, run_model):
    groups = [{"name": "G", "fighters": 1000, "alignment": 0.2, "towns": {"A": 1.0}}]
    sc = tiny(
        days=10,
        rivals={
            "groups": groups,
            "attack_penalty": 0.3,
            "pressure_rate": 0.0,
            "pretext_rate": 0.0,
            "predation_rate": 0.0,
            "resistance_rate": 0.0,
        },
        hts={"attack_rivals_rate": 1.0},
    )
    frames = run_model(sc).collector.frames()
    ts = frames["timeseries"]
    np.testing.assert_allclose(ts["alignment:G"], np.maximum(0.2 - 0.3 * np.arange(1, 11), -1.0))
    assert ts["rival_fighters"].iloc[-1] < 1000
    assert (frames["events"]["event"] == "hts_attack_rival").sum() == 10


def test_hts_retaliates_after_strikes_and_loses_fighters(tiny, run_model):
    def run(sorties: float):
        sc = tiny(
            days=15,
            air_campaign={"policy": "hts_strongholds", "sorties_per_day": sorties},
            hts={"fighters_lost_per_strike": 10.0},
            recruitment={"hts_rate": 0.0, "rival_rate": 0.0},
        )
        return run_model(sc).collector.frames()

    calm, bombed = run(0.0), run(4.0)
    assert (calm["timeseries"]["hts_retaliation"] == 0).all()
    assert bombed["timeseries"]["hts_retaliation"].iloc[-1] > 0
    assert calm["timeseries"]["hts_fighters"].iloc[-1] == 10000
    assert bombed["timeseries"]["hts_fighters"].iloc[-1] < 10000 - 10 * 0.3 * 10
    # retaliation feeds HTS's protection value where the threat is
    struck = bombed["towns"].groupby("town", observed=True)["strikes_cum"].max().idxmax()
    assert last(bombed["towns"], "protection")[struck] > last(calm["towns"], "protection")[struck]


# --------------------------------------------------------------------------- calibrated constants

FROZEN = (
    "households.sample_fraction=0.2",
    "days=10",
    "air_campaign.policy=none",
    "front.enabled=false",
    "choice.revision_rate=1",
    "hts.service_rate=0",
    "hts.service_decay=0",
    "hts.consolidation_rate=0",
    "hts.protest_erosion=0",
    "hts.takeover_rate=0",
    "grievance.tax_weight=0",
    "hts.repression=0",
    "civil_society.council_rate=0",
    "civil_society.council_decay=0",
    "protest.peer_weight=0",
)


def _shares_by_label(model: AllegianceModel) -> dict[str, np.ndarray]:
    """Persons-weighted shares by town label over all days (everyone revises daily: independent draws)."""
    towns = model.collector.frames()["towns"]
    out = {}
    for label, rows in towns.groupby("initial_stance", observed=True):
        w = rows["persons_present"]
        out[label] = np.array([(rows[c] * w).sum() / w.sum() for c in ("resist_share", "neutral_share", "coop_share")])
    return out


def test_calibrated_constants_make_the_initial_shares_the_no_shock_equilibrium(grid, run_model):
    """Everyone reconsiders every day; with nothing happening, the shares stay at the scenario's."""
    model = run_model(grid(*FROZEN))
    initial = model.scenario.households.initial.stance
    for label, shares in _shares_by_label(model).items():
        target = initial[label]
        np.testing.assert_allclose(shares, [target.resist, target.neutral, target.cooperate], atol=0.03, err_msg=label)


def test_without_calibration_the_shares_drift(grid, run_model):
    model = run_model(grid(*FROZEN, "choice.calibrate_constants=false"))
    initial = model.scenario.households.initial.stance
    gaps = [
        np.abs(shares - [initial[k].resist, initial[k].neutral, initial[k].cooperate]).max()
        for k, shares in _shares_by_label(model).items()
    ]
    assert max(gaps) > 0.1


def test_a_smaller_hts_is_never_the_more_protective_one(grid, frames):
    """HTS military presence feeds protection and security: starting with fewer fighters
    (all else equal) must not make HTS stronger. Strength measured relative to the initial
    force lets a handful of recruits multiply a tiny force many times over."""

    def outcome(fighters: int) -> tuple[float, float]:
        f = frames(grid(f"hts.fighters={fighters}"))
        return float(f["towns"]["protection"].mean()), float(f["timeseries"]["arrests"].sum())

    small, large = outcome(10), outcome(10000)
    assert small[0] <= large[0], (small, large)  # protection value
    assert small[1] <= large[1], (small, large)  # arrests need security forces

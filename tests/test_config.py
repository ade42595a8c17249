"""The scenario schema (sim/config.py): ranges, cross-references, helpers, parameter table."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from sim.scenario.schema import (
    MECHANISM_NAMES,
    POLICIES,
    Mechanisms,
    Scenario,
    StanceShares,
    parameter_table,
)

TOWN = {"name": "A", "x": 0, "y": 0, "persons": 1000}


def scenario(**kw) -> Scenario:
    data = {"name": "s", "towns": [dict(TOWN), {**TOWN, "name": "B", "x": 2}]}
    data.update(kw)
    return Scenario.model_validate(data)


def test_minimal_scenario_takes_the_documented_defaults():
    sc = scenario()
    assert sc.days == 120 and sc.seed == 12345
    assert sc.mechanisms.rally == 1.0 and sc.mechanisms.pretext_blame == pytest.approx(0.2)
    assert sc.air_campaign.policy == "resisting_towns"
    assert sc.town_names == ["A", "B"]
    assert sc.resisting_towns == []


def test_the_mechanisms_of_model_md_each_have_a_strength():
    assert set(MECHANISM_NAMES) == {
        "rally",
        "regime_blame",
        "institutions",
        "suppression",
        "pretext_blame",
        "exit",
        "control",
        "consolidation",
    }
    for name in MECHANISM_NAMES:
        Mechanisms(**{name: 0.0})  # zero (off) is always allowed
        with pytest.raises(ValidationError):
            Mechanisms(**{name: -0.1})


def test_all_six_targeting_policies_are_accepted():
    assert set(POLICIES) == {"none", "random", "hts_strongholds", "resisting_towns", "frontline", "calendar"}
    for p in POLICIES:
        assert scenario(air_campaign={"policy": p}).air_campaign.policy == p
    with pytest.raises(ValidationError):
        scenario(air_campaign={"policy": "carpet"})


@pytest.mark.parametrize(
    "block",
    [
        {"mechanisms": {"pretext_blame": 1.01}},
        {"households": {"sample_fraction": 0.0}},
        {"households": {"size": 0}},
        {"air_campaign": {"accuracy": 1.5}},
        {"days": 0},
        {"fear": {"decay": -0.1}},
    ],
)
def test_values_out_of_range_are_rejected(block):
    with pytest.raises(ValidationError):
        scenario(**block)


def test_unknown_keys_are_rejected_at_every_level():
    with pytest.raises(ValidationError, match="extra"):
        scenario(flight={"exposure_rat": 1.0})
    with pytest.raises(ValidationError, match="extra"):
        scenario(towns=[{**TOWN, "popluation": 3}])
    with pytest.raises(ValidationError, match="extra"):
        scenario(colour="red")


def test_assignment_is_validated_too():
    sc = scenario()
    with pytest.raises(ValidationError):
        sc.mechanisms.rally = -1


def test_stance_shares_must_sum_to_one():
    StanceShares(resist=0.2, neutral=0.5, cooperate=0.3)
    with pytest.raises(ValidationError, match="sum to 1"):
        StanceShares(resist=0.2, neutral=0.5, cooperate=0.4)


def test_a_town_needs_a_location():
    with pytest.raises(ValidationError, match="x and y"):
        scenario(towns=[{"name": "A", "persons": 5}])


def test_duplicate_town_names_are_rejected():
    with pytest.raises(ValidationError, match="duplicate town name 'A'"):
        scenario(towns=[dict(TOWN), {**TOWN, "x": 3}])


def test_mixing_grid_and_geographic_towns_is_rejected():
    with pytest.raises(ValidationError, match="lat/lon"):
        scenario(towns=[{**TOWN, "lat": 35.0, "lon": 36.0}, {**TOWN, "name": "B", "x": 2}])


@pytest.mark.parametrize(
    ("block", "needle"),
    [
        ({"air_campaign": {"calendar": [{"day": 1, "town": "Z"}]}}, "unknown town 'Z'"),
        ({"front": {"events": [{"day": 1, "town": "Z", "status": "regime"}]}}, "unknown town 'Z'"),
        ({"rivals": {"groups": [{"name": "G", "towns": {"Z": 0.5}}]}}, "unknown town 'Z'"),
    ],
)
def test_references_to_unknown_towns_are_rejected(block, needle):
    with pytest.raises(ValidationError, match=needle):
        scenario(**block)


def test_a_misspelled_town_reference_gets_a_suggestion():
    towns = [{**TOWN, "name": "Kafranbel"}, {**TOWN, "name": "Atarib", "x": 2}]
    with pytest.raises(ValidationError, match="did you mean 'Kafranbel'"):
        scenario(towns=towns, air_campaign={"calendar": [{"day": 1, "town": "Kafrnabel"}]})


def test_duplicate_rival_groups_are_rejected():
    groups = [{"name": "G", "towns": {"A": 0.5}}, {"name": "G"}]
    with pytest.raises(ValidationError, match="duplicate rival group"):
        scenario(rivals={"groups": groups})


def test_rival_presence_must_be_a_share():
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        scenario(rivals={"groups": [{"name": "G", "towns": {"A": 1.5}}]})


def test_dated_items_need_exactly_one_of_date_or_day():
    with pytest.raises(ValidationError, match="exactly one"):
        scenario(air_campaign={"calendar": [{"town": "A"}]})
    with pytest.raises(ValidationError, match="exactly one"):
        scenario(start_date="2018-01-01", air_campaign={"calendar": [{"town": "A", "day": 1, "date": "2018-01-02"}]})


def test_dates_need_a_start_date_and_may_not_precede_it():
    with pytest.raises(ValidationError, match="start_date"):
        scenario(air_campaign={"calendar": [{"town": "A", "date": "2018-01-02"}]})
    with pytest.raises(ValidationError, match="before start_date"):
        scenario(start_date="2018-01-05", front={"events": [{"town": "A", "date": "2018-01-02", "status": "regime"}]})


def test_day_of_and_date_of_round_trip():
    sc = scenario(start_date="2017-11-01", air_campaign={"calendar": [{"town": "A", "date": "2017-11-13"}]})
    strike = sc.air_campaign.calendar[0]
    assert sc.day_of(strike) == 12
    assert sc.date_of(12) == dt.date(2017, 11, 13)
    assert scenario().date_of(3) is None


def test_snapshot_days_must_fall_inside_the_run():
    scenario(days=10, output={"household_snapshot_days": [0, 9]})
    with pytest.raises(ValidationError, match="outside"):
        scenario(days=10, output={"household_snapshot_days": [10]})


def test_every_town_stance_needs_initial_shares():
    stance = {"resisting": {"resist": 0.5, "neutral": 0.5, "cooperate": 0.0}}
    with pytest.raises(ValidationError, match="no initial stance shares for town stance 'unknown'"):
        scenario(households={"initial": {"stance": stance}})


# --------------------------------------------------------------------------- parameter table


def test_parameter_table_lists_every_mechanism_with_range_unit_and_source():
    rows = {r["key"]: r for r in parameter_table()}
    for name in MECHANISM_NAMES:
        row = rows[f"mechanisms.{name}"]
        assert row["min"] == 0
        assert row["max"] is not None
        assert row["source"] and row["source"] != "assumed"  # each mechanism cites its literature
        assert row["meaning"]
    assert rows["mechanisms.pretext_blame"]["max"] == 1
    assert rows["exposure.half_life_days"]["unit"] == "days"
    assert rows["exposure.half_life_days"]["default"] == 30.0


def test_parameter_table_matches_the_schema_defaults():
    defaults = Scenario.model_validate({"name": "s", "towns": [TOWN]}).model_dump()
    for row in parameter_table():
        if isinstance(row["default"], (int, float)) and not isinstance(row["default"], bool):
            cur = defaults
            for part in row["key"].split("."):
                cur = cur[part]
            assert cur == row["default"], row["key"]


def test_every_ranged_parameter_has_a_meaning_and_a_source():
    """docs/ODD.md is written from this table: no parameter may appear without its meaning."""
    missing = [
        r["key"]
        for r in parameter_table()
        if (r["min"] is not None or r["max"] is not None) and not (r["meaning"] and r["source"])
    ]
    assert missing == []

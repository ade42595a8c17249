"""Each mechanism's strength: at zero it is off and leaves no trace; on, it moves outcomes its way.

For every mechanism of the ODD's table (section 4), the parameters that only feed that
mechanism are changed with the strength at zero: all three tables must stay
identical to the last bit. The same change with the strength on must show, so
the no-trace comparison can fail. Then each mechanism, switched on under
heavy strikes, moves its outcome in the direction the literature says.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.scenario.schema import MECHANISM_NAMES

#: Parameters that feed only one mechanism, set far from their defaults.
ONLY_FEEDS = {
    "rally": ["choice.protection_weight=7", "hts.rally_protection_boost=9"],
    "regime_blame": ["grievance.regime_rate=3"],
    "institutions": [
        "air_campaign.council_damage=0.5",
        "choice.service_gap_weight=20",
        "civil_society.strike_loss=0.9",
    ],
    "suppression": ["protest.fear_risk_weight=9", "choice.fear_withdrawal=9"],
    "exit": ["flight.exposure_rate=2", "choice.displaced_disengagement=9"],
    "control": ["choice.control_weight=9"],
}

#: Diagnostic columns that report a mechanism's input, not its effect. The town
#: table's ``protection`` is HTS's protection value (threat x strength x retaliation
#: boost); with rally off it no longer enters any choice, so it is left out.
DIAGNOSTIC = {"rally": ["protection"]}

HEAVY = ("air_campaign.sorties_per_day=10",)


@pytest.mark.parametrize("mechanism", sorted(ONLY_FEEDS))
def test_switched_off_mechanism_leaves_no_trace(mechanism, grid, frames, identical):
    off = f"mechanisms.{mechanism}=0"
    base = frames(grid(*HEAVY, off))
    changed = frames(grid(*HEAVY, off, *ONLY_FEEDS[mechanism]))
    identical(base, changed, ignore=DIAGNOSTIC.get(mechanism, ()))


@pytest.mark.parametrize("mechanism", sorted(ONLY_FEEDS))
def test_the_same_parameters_matter_when_the_mechanism_is_on(mechanism, grid, frames, differ):
    base = frames(grid(*HEAVY))
    changed = frames(grid(*HEAVY, *ONLY_FEEDS[mechanism]))
    assert differ(base, changed)


@pytest.mark.parametrize("mechanism", MECHANISM_NAMES)
def test_switching_a_mechanism_on_changes_outcomes(mechanism, grid, frames):
    off = frames(grid(*HEAVY, f"mechanisms.{mechanism}=0"))["timeseries"]
    on = frames(grid(*HEAVY, f"mechanisms.{mechanism}=1"))["timeseries"]
    changed = [c for c in off.columns if not np.array_equal(off[c].to_numpy(), on[c].to_numpy())]
    assert changed, f"{mechanism} at 1 and at 0 give identical time series"


@pytest.mark.parametrize(
    ("mechanism", "strength", "column", "reducer", "direction"),
    [
        ("rally", 3, "coop_share_resisting", "last", +1),  # Haid 2018: strikes push towns to HTS
        ("regime_blame", 1, "grievance_regime_mean", "last", +1),  # Lyall, Blair & Imai 2013
        ("institutions", 1, "council_mean", "last", -1),  # councils hollowed out
        ("suppression", 2, "protest_share_resisting", "mean", -1),  # Lyall 2009: less protest
        ("pretext_blame", 0.8, "grievance_hts_mean", "last", +1),  # Condra & Shapiro 2012
        ("exit", 1, "displacement_moves_cum", "last", +1),  # Fabbe et al.: flight
    ],
)
def test_each_mechanism_moves_its_outcome_its_way(mechanism, strength, column, reducer, direction, grid, frames):
    def outcome(s: float) -> float:
        col = frames(grid(*HEAVY, f"mechanisms.{mechanism}={s}"))["timeseries"][column]
        return float(col.iloc[-1] if reducer == "last" else col.mean())

    off, on = outcome(0), outcome(strength)
    assert direction * (on - off) > 0.1 * abs(off) + 1e-3, (off, on)


# --------------------------------------------------------------------------- blame, household by household


def _blame_scenario(tiny, **mechanisms):
    """Heavy strikes on A; every HTS-caused grievance channel other than the pretext shut."""
    strikes = [{"day": d, "town": "A", "strikes": 3, "killed": 9} for d in range(0, 20, 2)]
    return tiny(
        days=25,
        air_campaign={"policy": "calendar", "calendar": strikes},
        grievance={"repression_weight": 0.0, "takeover_weight": 0.0, "tax_weight": 0.0},
        protest={"arrest_grievance": 0.0},
        mechanisms=mechanisms,
    )


def test_pretext_blame_zero_means_strikes_add_nothing_to_grievance_against_hts(tiny, run_model):
    hh = run_model(_blame_scenario(tiny, pretext_blame=0.0)).hh
    np.testing.assert_array_equal(hh.g_hts, hh.g_hts0)
    assert np.all(hh.g_regime[hh.home == 0] > hh.g_regime0[hh.home == 0])  # the strikes did land


def test_pretext_blame_turns_part_of_strike_harm_against_hts(tiny, run_model):
    hh = run_model(_blame_scenario(tiny, pretext_blame=0.5)).hh
    hit = hh.home == 0
    assert np.mean(hh.g_hts[hit] - hh.g_hts0[hit]) > 0.05


def test_blame_independence_more_hts_blame_leaves_regime_grievance_unchanged(tiny, run_model):
    """Blaming HTS for drawing the strikes does not absolve the regime (Condra & Shapiro 2012)."""
    low = run_model(_blame_scenario(tiny, pretext_blame=0.0)).hh
    high = run_model(_blame_scenario(tiny, pretext_blame=1.0)).hh
    hit = low.home == 0
    assert np.all(low.g_regime[hit] > low.g_regime0[hit])  # the strikes raised G_R
    np.testing.assert_array_equal(high.g_regime, low.g_regime)  # and the pretext took none of it away
    assert np.mean(high.g_hts[hit] - low.g_hts[hit]) > 0.05  # while G_H rose


def test_regime_blame_zero_means_strikes_add_nothing_to_grievance_against_the_regime(tiny, run_model):
    hh = run_model(_blame_scenario(tiny, regime_blame=0.0)).hh
    np.testing.assert_array_equal(hh.g_regime, hh.g_regime0)


def test_suppression_zero_removes_fear_from_the_protest_decision(tiny, run_model):
    """With suppression (and exit, fear's other channel) off, fear does not change who protests."""

    def protesters(fear_rate: float) -> np.ndarray:
        sc = _blame_scenario(tiny, suppression=0.0, exit=0.0)
        sc = type(sc).model_validate({**sc.model_dump(), "fear": {"rate": fear_rate}})
        model = run_model(sc)
        return model.collector.frames()["timeseries"]["protest_share"].to_numpy()

    np.testing.assert_array_equal(protesters(0.0), protesters(5.0))


def test_with_suppression_on_fear_deters_protest(tiny, run_model):
    def protest(fear_rate: float) -> float:
        sc = _blame_scenario(tiny, suppression=1.0, exit=0.0)
        sc = type(sc).model_validate({**sc.model_dump(), "fear": {"rate": fear_rate}})
        return run_model(sc).collector.frames()["timeseries"]["protest_share_resisting"].mean()

    assert protest(5.0) < 0.8 * protest(0.0)


# --------------------------------------------------------------------------- paired runs (common random numbers)

#: Every channel through which a strike reaches households, towns or HTS, shut.
STRIKES_HARMLESS = (
    "air_campaign.casualties_per_strike=0",
    "air_campaign.damage_per_strike=0",
    "air_campaign.council_damage=0",
    "civil_society.strike_loss=0",
    "exposure.strike_weight=0",
    "hts.fighters_lost_per_strike=0",
    "hts.retaliation_rate=0",
)
STRIKE_COLUMNS = ("strikes", "strikes_cum")
POLICIES = ("none", "random", "hts_strongholds", "resisting_towns", "frontline")


def _without_strikes(frames: dict) -> dict:
    out = {k: v.drop(columns=[c for c in STRIKE_COLUMNS if c in v]) for k, v in frames.items()}
    ev = out["events"]
    out["events"] = ev[ev["event"] != "strike"].reset_index(drop=True)
    return out


def test_paired_policies_share_household_random_numbers(grid, frames, identical):
    """With harmless strikes, the targeting policy cannot change anything households do."""
    runs = {p: frames(grid(*HEAVY, *STRIKES_HARMLESS, f"air_campaign.policy={p}")) for p in POLICIES}
    assert runs["random"]["timeseries"]["strikes_cum"].iloc[-1] > 100  # the strikes did fly
    assert runs["none"]["timeseries"]["strikes_cum"].iloc[-1] == 0
    for policy in POLICIES[1:]:
        identical(_without_strikes(runs["none"]), _without_strikes(runs[policy]))


def test_paired_policies_differ_when_strikes_do_harm(grid, frames):
    coop = {
        p: frames(grid(*HEAVY, f"air_campaign.policy={p}"))["timeseries"]["coop_share_resisting"].to_numpy()
        for p in ("none", "resisting_towns")
    }
    assert not np.array_equal(coop["none"], coop["resisting_towns"])


def _strike_effect(grid, frames, *overrides: str) -> float:
    """Strikes on resisting towns minus none: cooperation in resisting towns on the last day, 3 paired seeds."""
    out = []
    for seed in range(3):
        arms = {
            p: frames(grid(*HEAVY, *overrides, f"air_campaign.policy={p}"), seed)["timeseries"]["coop_share_resisting"]
            for p in ("resisting_towns", "none")
        }
        out.append(float(arms["resisting_towns"].iloc[-1] - arms["none"].iloc[-1]))
    return float(np.mean(out))


def test_with_every_strength_off_the_strike_effect_is_the_regime_grievance_share_rho(grid, frames):
    """What is left of the thesis effect with the seven strengths off is grievance against the regime
    favouring HTS over resisting it (ODD 7.8.2; docs/DECISIONS.md 31): it lifts cooperation in the struck
    towns at rho = 1 and vanishes at rho = 0, where the regime's harm moves no one between the sides."""
    from sim.analysis.statistics import DEFAULT_ROPE

    off = [f"mechanisms.{m}=0" for m in MECHANISM_NAMES if m != "regime_blame"]
    full = _strike_effect(grid, frames, *off)
    none = _strike_effect(grid, frames, *off, "choice.regime_grievance_to_hts=0")
    half = _strike_effect(grid, frames, *off, "choice.regime_grievance_to_hts=0.5")
    assert full > DEFAULT_ROPE, full
    assert abs(none) < DEFAULT_ROPE / 2, none
    assert none < half < full, (none, half, full)


# --------------------------------------------------------------------------- attribution (ODD 7.8.1)

IDLIB = Path(__file__).resolve().parents[1] / "scenarios" / "idlib_2017_2018.yaml"


def _idlib(*overrides: str):
    from sim.scenario.loader import load_scenario

    return load_scenario(IDLIB, ["households.sample_fraction=0.01", *overrides]).scenario


def _one_strike_day(town: str | None):
    """One day of the Idlib scenario with only a dated strike (69 killed) on ``town`` (none if None)."""
    from sim.model.model import AllegianceModel

    cal = "[]" if town is None else f"[{{date: 2017-11-01, town: {town}, strikes: 3, killed: 69, source: test}}]"
    sc = _idlib(
        "air_campaign.policy=calendar",
        f"air_campaign.calendar={cal}",
        "front.enabled=false",
        "mechanisms.pretext_blame=1",
        "grievance.home_team_discount=0",
        "days=1",
    )
    model = AllegianceModel(sc, household_agents=False)
    model.run()
    return model.hh


def test_strike_harm_where_hts_is_absent_raises_no_grievance_against_hts():
    """Atarib is held by Nour al-Din al-Zenki: with every bit of strike harm blamed on HTS where it
    is present, a massacre there moves grievance against the regime but not against HTS, anywhere.
    The same strike on Dana (HTS-held, control 0.8) raises grievance against HTS: the test can fail."""
    calm = _one_strike_day(None)
    atarib = _one_strike_day("Atarib")
    dana = _one_strike_day("Dana")
    assert not np.array_equal(atarib.g_regime, calm.g_regime)
    np.testing.assert_array_equal(atarib.g_hts, calm.g_hts)
    assert dana.g_hts.sum() > calm.g_hts.sum() + 1e-3


# --------------------------------------------------------------------------- the mirror (ODD 7.7)

STOP_DAY = 40
MIRROR = ("days=61", "air_campaign.sorties_per_day=10", "air_campaign.policy=resisting_towns")


def _mirror_effect(grid, frames, rally: float) -> float:
    """Strikes stopped after day 40 minus strikes continued: cooperation in resisting towns on day 61
    (21 days on), mean over three paired seeds."""
    out = []
    for seed in range(3):
        kw = (*MIRROR, f"mechanisms.rally={rally}")
        stopped = frames(grid(*kw, f"air_campaign.end.day={STOP_DAY}"), seed)["timeseries"]
        going = frames(grid(*kw), seed)["timeseries"]
        out.append(stopped["coop_share_resisting"].iloc[-1] - going["coop_share_resisting"].iloc[-1])
    return float(np.mean(out))


def test_the_mirror_cooperation_loosens_when_strikes_stop_and_only_through_rally(grid, frames):
    """Rally on (3, the prior's top): stopping the strikes lowers cooperation in the struck towns within
    21 days by more than the ROPE (protection follows the current threat). Rally off: protection is zero
    throughout and the stop leaves cooperation within the ROPE (what is left, slower grievance and fear)."""
    from sim.analysis.statistics import DEFAULT_ROPE

    on = _mirror_effect(grid, frames, 3.0)
    off = _mirror_effect(grid, frames, 0.0)
    assert on < -DEFAULT_ROPE, on
    assert abs(off) < DEFAULT_ROPE and on < off, (on, off)
    towns = frames(grid(*MIRROR, "mechanisms.rally=0"))["towns"]
    assert (towns["protection"] == 0).all()


# --------------------------------------------------------------------------- clean counterfactuals


def test_frontline_targeting_without_the_ground_advance_is_not_random(grid, frames):
    """With front.enabled=false the line stays where it started: frontline strikes go to the towns
    nearest it, not where random strikes go."""

    def struck(policy: str) -> pd.Series:
        towns = frames(grid("front.enabled=false", "air_campaign.sorties_per_day=10", f"air_campaign.policy={policy}"))[
            "towns"
        ]
        return towns.groupby("town")["strikes"].sum()

    front, rand = struck("frontline"), struck("random")
    assert not front.equals(rand)
    moving = frames(grid("air_campaign.sorties_per_day=10", "air_campaign.policy=frontline"))
    near = moving["towns"].groupby("town")["strikes"].sum()
    # the same towns lead whether or not the line moves (it moves little in 30 days)
    assert front.idxmax() == near.idxmax()


@functools.cache
def _morris_spec():
    """The Idlib Morris sweep, read once per test process (reading it reads the scenario and its record)."""
    from sim.experiments.spec import load_sweep

    return load_sweep(Path(__file__).resolve().parents[1] / "scenarios" / "sweeps" / "idlib_morris.yaml")


@functools.cache
def _morris_reference():
    """The screening's reference scenario (validated and immutable: every parameter's two runs start from it).

    The scenario the sweep screens (the uncalibrated base, not the shipped calibrated file: a calibrated
    draw may sit where a mechanism is dormant, and the screening's claim is about its own scenario)."""
    from sim.scenario.loader import load_scenario

    base = IDLIB.with_name("idlib_2017_2018_base.yaml")
    assert base.exists()
    sets = ["households.sample_fraction=0.01", "rivals.contest_threshold=1", "rivals.local_rate=0.02"]
    return load_scenario(base, sets).scenario


def _morris_parameters() -> list[tuple[str, float, float]]:
    return [(p.name, *p.spec.range) for p in _morris_spec().parameters]


@pytest.mark.parametrize(("key", "low", "high"), _morris_parameters(), ids=lambda v: str(v))
def test_each_screened_parameter_of_the_idlib_morris_changes_some_output(key, low, high):
    """Two runs at a screened parameter's low and high value differ in the screening's outcomes: no
    parameter the scenario overrides (as the schedule overrode air_campaign.sorties_per_day) is screened.
    Reference point: the shipped scenario with the rivals' contest threshold at its screened low, so
    that the fights the fight parameters govern happen, and the local-town hazard at its screened high, so that
    towns sending their armed groups away happen (a parameter counts if it matters somewhere)."""
    from sim.run.simulate import run_model as outcomes_of

    spec = _morris_spec()
    sc = _morris_reference()
    lo = outcomes_of(sc, {key: low}, seed=3, outcomes=spec.outcomes)
    hi = outcomes_of(sc, {key: high}, seed=3, outcomes=spec.outcomes)
    assert lo != hi, (key, lo)

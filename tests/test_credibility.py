"""Model credibility: a baseline that stands still, protest of the recorded size, local rally,
independent blame, the home-team discount, dispositions that travel, and a null thesis with every
mechanism off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.analysis.thesis import HEADLINE, ThesisSettings, composition_lines, composition_table, run_thesis
from sim.experiments import SerialEngine, load_results
from sim.model.households import stance_utilities_now
from sim.model.model import AllegianceModel
from sim.run.simulate import simulate
from sim.scenario.loader import load_scenario
from sim.scenario.schema import MECHANISM_NAMES

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
NO_SHOCKS = ["air_campaign.policy=none", "front.enabled=false"]
# Rival conflict is a mechanism of its own, not part of the regime's treatment: the stationary civilian
# baseline needs it off explicitly (ODD 7.6, "Baseline"). In the Idlib scenario Ahrar al-Sham is strong
# enough in Ariha to attack HTS from day 0; its fights move the resisting towns' shares by about 0.13.
NO_RIVAL_CONFLICT = (
    "rivals.attack_rate=0",
    "rivals.hts_retake_rate=0",
    "rivals.rival_attack_rate=0",
    "rivals.coalition_rate=0",
    "rivals.local_rate=0",
)
SHARES = ("coop_share", "resist_share", "neutral_share")
RESISTING = ("coop_share_resisting", "resist_share_resisting")
TOLERANCE = 0.02
SEEDS = range(1, 6)


def _baseline_runs(name: str, fraction: float, extra: tuple[str, ...] = ()) -> list[pd.DataFrame]:
    runs = []
    for seed in SEEDS:
        loaded = load_scenario(
            SCENARIOS / f"{name}.yaml",
            [*NO_SHOCKS, f"households.sample_fraction={fraction}", f"seed={seed}", *extra],
        )
        runs.append(simulate(loaded, household_agents=False).timeseries)
    return runs


def _drift(runs: list[pd.DataFrame], columns: tuple[str, ...]) -> dict[str, float]:
    """Largest departure of the seeds' mean trajectory from its day-0 value, per column."""
    out = {}
    for c in columns:
        mean = np.mean([ts[c].to_numpy() for ts in runs], axis=0)
        out[c] = float(np.abs(mean - mean[0]).max())
    return out


# Idlib's resisting towns hold about 120,000 persons: a tenth of the households still gives a few
# thousand agents there. The synthetic grid is smaller, so it runs at a larger fraction.
# Idlib is checked over its first 120 days (1 Nov - 28 Feb, the window before it reached 30 Apr): over
# the full 181 days the resisting towns' mean shares drift by about 0.05 without any shock, more than
# the tolerance; that drift is a finding for the household mechanisms, not hidden by a wider tolerance.
BASELINE_DAYS = {"idlib_2017_2018": 120, "idlib_2017_2018_base": 120}


# The takeover threshold (hts.takeover_threshold, DECISIONS 33) keeps sampling noise in the takeover pressure
# from making councils fall without a shock; before it, one such takeover (Maarat al-Numan, seed 4, day 101)
# moved the shipped scenario's 5-seed mean by 0.02 and this test was a strict expected failure (DECISIONS 30).
@pytest.mark.parametrize(
    ("name", "fraction"),
    [
        ("synthetic_grid", 0.3),
        ("idlib_2017_2018_base", 0.1),
        ("idlib_2017_2018", 0.1),
    ],
)
def test_baseline_without_strikes_or_front_stands_still(name: str, fraction: float) -> None:
    days = BASELINE_DAYS.get(name)
    runs = _baseline_runs(name, fraction, (*NO_RIVAL_CONFLICT, *((f"days={days}",) if days else ())))
    assert len(runs[0]) == (days or load_scenario(SCENARIOS / f"{name}.yaml").scenario.days)
    # Each seed's governorate shares stay within the tolerance of where they start ...
    for ts in runs:
        for c in SHARES:
            assert np.abs(ts[c] - ts[c].iloc[0]).max() <= TOLERANCE, (name, c)
    # ... and the resisting towns' shares do not drift (mean of the 5 seeds: sampling noise averages out).
    drift = _drift(runs, SHARES + RESISTING)
    assert max(drift.values()) <= TOLERANCE, drift
    # No protest spike: the first days look like the rest of the run.
    protest = np.mean([ts["protest_share_resisting"].to_numpy() for ts in runs], axis=0)
    later = protest[10:].mean()
    assert protest[:10].max() <= 1.5 * later, (protest[:10], later)
    assert 0.005 <= later <= 0.05


NO_RETURN = pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="without hts.control_half_life_days (null), HTS control relaxes at about 0.0006 a day in a resisting "
    "town at the shipped draw (a time constant of some four years), so a push to it persists and grows through "
    "cooperation (DECISIONS 30, 34)",
)


@pytest.mark.parametrize("half_life", [pytest.param(None, marks=NO_RETURN), 60.0])
def test_a_push_to_control_in_the_baseline_decays(half_life: float | None) -> None:
    """Paired runs of the shocks-free baseline (same seed: common random numbers; no takeovers, which are the
    ratchet's own effect): one with HTS control in every resisting town raised by 0.05 after the balance is
    fixed. A stationary baseline that is also stable brings the push back: at least half of it gone in 120
    days. At the shipped draw it grows instead (0.05 to about 0.053), and the cooperating share follows; with
    control's return to its standing level at a 60-day half-life it falls to about a third."""
    push, days = 0.05, 120
    quiet = ["households.sample_fraction=0.05", "seed=2", f"days={days}", "hts.takeover_rate=0"]
    # with control's return to its standing level (ODD 7.4 item 3), or without it (null, the model before decision 34)
    quiet.append(f"hts.control_half_life_days={'null' if half_life is None else half_life}")
    means = []
    for extra in (0.0, push):
        loaded = load_scenario(SCENARIOS / "idlib_2017_2018.yaml", [*NO_SHOCKS, *NO_RIVAL_CONFLICT, *quiet])
        model = AllegianceModel(loaded.scenario, household_agents=False)
        ts = model.state.town_state
        resisting = np.array([t.stance == "resisting" for t in loaded.scenario.towns])
        assert resisting.sum() >= 3
        ts.control[resisting] = np.minimum(ts.control[resisting] + extra, 1.0)
        model.run()
        weight = ts.present * resisting
        means.append(float((ts.control * weight).sum() / weight.sum()))
    assert means[1] - means[0] <= 0.5 * push, means


def test_standing_attrition_balances_recruitment_in_the_baseline() -> None:
    """HTS and the rival groups keep recruiting without shocks, and lose as many fighters as they expected to gain
    on day 0 (5.7). Without the balance every recruit stays (HTS grew by about 12% in 120 days of the Idlib
    baseline, which raised arrests, cut protest in resisting towns by a third and raised HTS control there);
    with it the change is sampling noise, well under half the recruits (at this scale the noise is a few
    standard deviations below that bound)."""
    loaded = load_scenario(
        SCENARIOS / "idlib_2017_2018.yaml",
        [*NO_SHOCKS, *NO_RIVAL_CONFLICT, "households.sample_fraction=0.3", "seed=1", "days=120"],
    )
    ts = simulate(loaded, household_agents=False).timeseries
    for fighters, recruits in (("hts_fighters", "hts_recruits_cum"), ("rival_fighters", "rival_recruits_cum")):
        f, r = ts[fighters].to_numpy(), ts[recruits].iloc[-1]
        assert r > 0.01 * f[0], (recruits, r)  # recruitment goes on ...
        assert abs(f[-1] - f[0]) < 0.4 * r, (fighters, f[0], f[-1], r)  # ... and is balanced
    assert ts["hts_recruits_cum"].iloc[-1] > 0.05 * ts["hts_fighters"].iloc[0]


def test_without_the_stationary_balance_the_baseline_drifts() -> None:
    """The test above can fail: the unbalanced processes (services, control, councils) move the shares."""
    runs = _baseline_runs("synthetic_grid", 0.3, ("baseline.stationary=false",))[:2]
    drift = _drift(runs, SHARES + RESISTING)
    assert max(drift.values()) > 2 * TOLERANCE, drift


def test_ordinary_day_protest_in_a_resisting_town_is_of_the_recorded_size(grid) -> None:
    """Hundreds to a few thousand people in towns of 10,000-80,000: about 0.5-5% on a protest day."""
    model = AllegianceModel(grid(*NO_SHOCKS, "households.sample_fraction=0.3", "days=40"), household_agents=False)
    model.run()
    towns = model.collector.frames()["towns"]
    resisting = towns[towns["initial_stance"] == "resisting"]
    by_town = resisting[resisting["day"] >= 5].groupby("town", observed=True)["protest_share"].mean()
    assert len(by_town) == 3
    assert ((by_town >= 0.005) & (by_town <= 0.05)).all(), by_town
    # the first version's rule (crowd scale 20, no threshold calibration) gave tens of percent
    old = AllegianceModel(
        grid(*NO_SHOCKS, "days=10", "protest.calibrate_threshold=false", "protest.crowd_scale=20"),
        household_agents=False,
    )
    old.run()
    assert old.collector.frames()["timeseries"]["protest_share_resisting"].max() > 0.1


# --------------------------------------------------------------------------- local rally


def _protection(grid, policy: str) -> pd.DataFrame:
    strikes = "[" + ",".join(f"{{day: {d}, town: Resistance-C, strikes: 3}}" for d in range(10)) + "]"
    sc = grid(f"air_campaign.policy={policy}", f"air_campaign.calendar={strikes}", "front.fall_rate=0", "days=15")
    model = AllegianceModel(sc, household_agents=False)
    model.run()
    towns = model.collector.frames()["towns"]
    return towns.pivot(index="day", columns="town", values="protection")


def test_rally_is_local_a_strike_leaves_protection_in_a_distant_town_unchanged(grid) -> None:
    """Village-B (contested, 45 km from Resistance-C) has a threat of its own from the front; strikes
    on Resistance-C must not multiply its protection (a governorate-wide retaliation stock did)."""
    struck = _protection(grid, "calendar")
    calm = _protection(grid, "none")
    assert (struck["Resistance-C"] - calm["Resistance-C"]).max() > 0.05  # the rally happened there
    assert calm["Village-B"].min() > 0.1  # the distant town has its own threat (the front)
    change = (struck["Village-B"] - calm["Village-B"]).abs().max()
    # Only the neighbour-harm weight at 45 km (0.3 * exp(-4.5), about 0.3%) reaches it, through the
    # recent-threat memory that builds faster than the exposure memory: a percent or two at most.
    assert change <= 0.02 * calm["Village-B"].max(), change


# --------------------------------------------------------------------------- home-team discount


def _discount_run(tiny, discount: float, coercion: bool, pretext: float = 0.3):
    strikes = [{"day": d, "town": "A", "strikes": 3, "killed": 9} for d in range(0, 20, 2)]
    grievance = {"home_team_discount": discount}
    if coercion:
        grievance |= {"tax_weight": 0.05}  # visible in 25 days
    else:
        grievance |= {"repression_weight": 0.0, "takeover_weight": 0.0, "tax_weight": 0.0}
    sc = tiny(
        days=25,
        air_campaign={"policy": "calendar", "calendar": strikes},
        grievance=grievance,
        protest={"arrest_grievance": 0.0 if not coercion else 0.1},
        mechanisms={"exit": 0.0, "pretext_blame": pretext},
        baseline={"stationary": False},  # every bit of HTS coercion counts, not only its excess
    )
    model = AllegianceModel(sc, household_agents=False)
    model.run()
    return model.hh


def test_home_team_discount_changes_only_hts_caused_grievance(tiny) -> None:
    # Without HTS coercion the discount still acts on strike harm blamed on HTS for drawing the strikes
    # (all harm attributed to HTS is discounted, 7.8.1), and never on grievance against the regime.
    off, on = _discount_run(tiny, 0.0, coercion=False), _discount_run(tiny, 0.9, coercion=False)
    assert on.g_hts.mean() < off.g_hts.mean()
    np.testing.assert_array_equal(off.g_regime, on.g_regime)
    # No pretext blame and no coercion: nothing attributed to HTS, nothing to discount.
    none_off, none_on = (
        _discount_run(tiny, 0.0, coercion=False, pretext=0.0),
        _discount_run(tiny, 0.9, coercion=False, pretext=0.0),
    )
    np.testing.assert_array_equal(none_off.g_hts, none_on.g_hts)
    # With coercion, the discount lowers grievance against HTS and leaves grievance against the regime alone.
    off, on = _discount_run(tiny, 0.0, coercion=True), _discount_run(tiny, 0.9, coercion=True)
    np.testing.assert_array_equal(off.g_regime, on.g_regime)
    assert (off.g_hts - on.g_hts).mean() > 0.005


# --------------------------------------------------------------------------- dispositions travel


def test_a_displaced_household_keeps_its_constants(grid) -> None:
    model = AllegianceModel(grid("days=5"), household_agents=False)
    hh = model.hh
    names = model.town_state.names
    home, host = names.index("Resistance-A"), names.index("Border-A")
    natives_home = np.flatnonzero(hh.home == home)
    natives_host = np.flatnonzero(hh.home == host)
    assert hh.intercept_resist[natives_home[0]] != hh.intercept_resist[natives_host[0]]
    movers = natives_home[:20]
    kept = {f: getattr(hh, f)[movers].copy() for f in ("intercept_resist", "intercept_coop", "threshold", "g_hts0")}
    before = stance_utilities_now(model)
    model.move_households(movers, np.full(len(movers), host), reason="test")
    assert hh.displaced[movers].all() and (hh.town[movers] == host).all()
    for f, v in kept.items():
        np.testing.assert_array_equal(getattr(hh, f)[movers], v, err_msg=f)
    after = stance_utilities_now(model)
    ts = model.town_state
    # The utilities change by the town terms only (the host's services, control, council, peers)
    # plus the displaced's neutrality bonus; the household's own intercepts came along.
    w_d = np.float32(model.scenario.choice.displaced_disengagement * model.scenario.mechanisms.exit)
    np.testing.assert_allclose(after[1][movers] - before[1][movers], w_d, rtol=1e-5)
    b_p = model.scenario.choice.protection_weight
    town_terms = (
        ts.coop_base[host]
        - ts.coop_base[home]
        + 0.5 * b_p * (ts.protection[host] - ts.protection[home])  # half the allegiance index (7.8.2)
    )
    np.testing.assert_allclose(after[2][movers] - before[2][movers], town_terms, atol=1e-5)
    model.step()  # and the daily step runs with them in place
    np.testing.assert_array_equal(hh.intercept_coop[movers], kept["intercept_coop"])


# --------------------------------------------------------------------------- every mechanism off


def test_all_mechanisms_off_gives_a_negligible_home_town_effect(tmp_path: Path) -> None:
    overrides = [f"mechanisms.{m}=0" for m in MECHANISM_NAMES]
    settings = ThesisSettings(
        scenario=SCENARIOS / "synthetic_grid.yaml",
        overrides=overrides,
        replicates=6,
        policies=["resisting_towns"],
        experiments=("headline",),
        sample_fraction=0.03,
        days=45,
    )
    result = run_thesis(settings, tmp_path, engine=SerialEngine(), progress=False, report=False)
    h = result.headline().set_index("outcome")
    assert h.loc[HEADLINE[1], "verdict"] == "negligible", h
    # The report explains what is left by current town through composition (who fled, arrived or died).
    comp = composition_table(load_results(result.summaries["headline"].folder))
    c = comp.set_index("quantity")
    assert c.loc["killed_resisting_home_cum:final", "difference"] > 0  # the strikes did kill
    line = composition_lines(comp)[0]
    assert "composition" in line and f"{h.loc[HEADLINE[0], 'mean_diff']:+.3f}" in line
    own = c.loc["coop_share_resisting_stayers:mean", "difference"]
    assert abs(own) <= 0.02


# --------------------------------------------------------------------------- the campaign's dated intensity


def test_idlib_campaign_intensity_is_a_dated_sourced_schedule_addressable_by_key_path() -> None:
    path = SCENARIOS / "idlib_2017_2018.yaml"
    sc = load_scenario(path).scenario
    periods = {p.name: p for p in sc.air_campaign.schedule}
    assert str(periods["escalation"].date) == "2017-11-01" and str(periods["decrease"].date) == "2018-02-11"
    for p in periods.values():
        assert "REACH/ISMI" in p.source and "assumed" in p.source
    model = AllegianceModel(sc, household_agents=False)
    feb11 = sc.day_of(periods["decrease"])
    assert (model.air.sorties[:feb11] == periods["escalation"].sorties_per_day).all()
    assert (model.air.sorties[feb11:] == periods["decrease"].sorties_per_day).all()
    # Each level is a parameter with a key path (what calibration puts priors on).
    by_name = load_scenario(path, ["air_campaign.schedule.decrease.sorties_per_day=0"]).scenario
    by_index = load_scenario(path, ["air_campaign.schedule.1.sorties_per_day=0"]).scenario
    for s in (by_name, by_index):
        m = AllegianceModel(s, household_agents=False)
        assert (m.air.sorties[feb11:] == 0).all() and (m.air.sorties[:feb11] == model.air.sorties[:feb11]).all()
    # January's killed count is compared with SNHR's 223; it is a calibration target of the ABC
    # calibration (casualties per strike and the schedule levels are fitted jointly there), never hand-tuned.
    record = load_scenario(path).record
    jan = [e for e in record.entries if e.kind == "deaths" and e.cause == "strikes" and e.id.startswith("snhr-killed")]
    assert len(jan) == 1 and jan[0].value == 223 and "SNHR" in jan[0].source[0].publisher
    assert jan[0].role == "calibration"


def test_schedule_periods_must_be_in_date_order(tiny) -> None:
    with pytest.raises(ValueError, match="date order"):
        tiny(air_campaign={"schedule": [{"name": "b", "day": 5}, {"name": "a", "day": 2}]})
    sc = tiny(days=10, air_campaign={"schedule": [{"name": "a", "day": 2, "sorties_per_day": 7.0}]})
    sorties = AllegianceModel(sc, household_agents=False).air.sorties
    assert list(sorties) == [3.0, 3.0] + [7.0] * 8

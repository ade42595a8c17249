"""The pure vectorized household rules (sim/rules.py), checked against their formulas."""

from __future__ import annotations

import numpy as np
import pytest

from sim.model import rules
from sim.model.rules import COOPERATE, F32, NEUTRAL, RESIST


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=F32)


# --------------------------------------------------------------------------- saturating update


def test_saturating_update_moves_toward_one_by_exponential_gain():
    level = f32(0.0, 0.5, 0.9)
    rate = f32(0.1, 0.1, 0.1)
    out = rules.saturating_update(level, rules.saturating_gain(rate), decay=0.0)
    expected = np.array([0.0, 0.5, 0.9]) + (1 - np.array([0.0, 0.5, 0.9])) * (1 - np.exp(-0.1))
    assert out is level  # in place
    np.testing.assert_allclose(level, expected, rtol=1e-6)


def test_saturating_update_stays_in_unit_interval_for_huge_rates():
    level = f32(0.0, 0.3, 1.0)
    gain = rules.saturating_gain(f32(1e6, 1e3, 50.0))
    rules.saturating_update(level, gain, decay=0.5, baseline=f32(0.0, 0.2, 1.0))
    assert np.all(level >= 0) and np.all(level <= 1)


def test_saturating_update_zero_rate_relaxes_to_baseline_only():
    level = f32(0.8, 0.2)
    base = f32(0.5, 0.5)
    rules.saturating_update(level, rules.saturating_gain(f32(0.0, 0.0)), decay=0.1, baseline=base)
    np.testing.assert_allclose(level, [0.8 - 0.03, 0.2 + 0.03], rtol=1e-6)
    at_base = base.copy()
    rules.saturating_update(at_base, rules.saturating_gain(f32(0.0, 0.0)), decay=0.1, baseline=base)
    np.testing.assert_array_equal(at_base, base)  # exactly unchanged at the baseline


def test_saturating_update_without_baseline_decays_to_zero():
    level = f32(0.5)
    rules.saturating_update(level, rules.saturating_gain(f32(0.0)), decay=0.2)
    np.testing.assert_allclose(level, [0.4], rtol=1e-6)


# --------------------------------------------------------------------------- grievances


def test_regime_grievance_rate_is_a_R_times_blame_share_times_exposure():
    e = f32(0.0, 1.0, 2.0)
    np.testing.assert_allclose(
        rules.regime_grievance_rate(e, regime_rate=0.5, regime_blame=0.8),
        0.5 * 0.8 * np.array([0.0, 1.0, 2.0]),
        rtol=1e-6,
    )


def test_regime_grievance_rate_is_zero_when_no_harm_is_blamed_on_the_regime():
    np.testing.assert_array_equal(rules.regime_grievance_rate(f32(5.0, 50.0), 0.3, 0.0), [0.0, 0.0])


def test_hts_grievance_rate_is_discounted_pretext_share_of_hts_exposure_plus_coercion():
    rate = rules.hts_grievance_rate(
        f32(2.0, 0.0), f32(0.1, 0.3), hts_rate=0.5, pretext_blame=0.25, home_team_discount=0.4
    )
    np.testing.assert_allclose(rate, [0.5 * 0.6 * (0.25 * 2 + 0.1), 0.5 * 0.6 * 0.3], rtol=1e-6)


def test_pretext_zero_means_strikes_add_nothing_to_hts_grievance():
    rate = rules.hts_grievance_rate(f32(100.0), f32(0.0), hts_rate=5.0, pretext_blame=0.0, home_team_discount=0.0)
    np.testing.assert_array_equal(rate, [0.0])


def test_home_team_discount_scales_all_harm_attributed_to_hts():
    """Off (0) vs on: strike harm blamed on HTS and its coercion both shrink by the discount; 1 removes both."""
    e, coercion = f32(3.0, 0.0, 3.0), f32(0.0, 0.2, 0.2)
    off = rules.hts_grievance_rate(e, coercion, hts_rate=0.5, pretext_blame=0.3, home_team_discount=0.0)
    on = rules.hts_grievance_rate(e, coercion, hts_rate=0.5, pretext_blame=0.3, home_team_discount=0.75)
    np.testing.assert_allclose(on, 0.25 * off, rtol=1e-6)
    full = rules.hts_grievance_rate(e, coercion, hts_rate=0.5, pretext_blame=0.3, home_team_discount=1.0)
    np.testing.assert_array_equal(full, [0.0, 0.0, 0.0])


# --------------------------------------------------------------------------- stance choice


def _utilities(**kw):
    n = 4
    args = {
        "g_regime": f32(*[0.5] * n),
        "g_hts": f32(*[0.2] * n),
        "fear": f32(*[0.0] * n),
        "displaced": np.zeros(n, bool),
        "coop_base": f32(*[0.0] * n),
        "resist_base": f32(*[0.0] * n),
        "protection": f32(*[0.0] * n),
    }
    weights = {
        "protection_weight": 1.0,
        "grievance_weight": 1.0,
        "fear_withdrawal": 1.0,
        "disengagement": 1.0,
    }
    for k, v in kw.items():
        (args if k in args else weights)[k] = v
    return rules.stance_utilities(**args, **weights)


def test_stance_utilities_follow_the_documented_formula():
    u_r, u_n, u_c = _utilities(
        g_regime=f32(0.4),
        g_hts=f32(0.3),
        fear=f32(0.2),
        displaced=np.array([True]),
        coop_base=f32(0.1),
        resist_base=f32(-0.2),
        protection=f32(0.5),
        protection_weight=2.0,
        grievance_weight=3.0,
        fear_withdrawal=0.7,
        disengagement=1.25,
    )
    a = 3.0 * (0.4 - 0.3) + 2.0 * 0.5  # the allegiance index
    assert u_c[0] == pytest.approx(0.1 + a / 2 - 0.7 * 0.2, rel=1e-5)
    assert u_r[0] == pytest.approx(-0.2 - a / 2 - 0.7 * 0.2, rel=1e-5)
    assert u_n[0] == pytest.approx(1.25, rel=1e-6)
    assert u_c[0] - u_r[0] == pytest.approx(0.1 + 0.2 + a, rel=1e-5)


@pytest.mark.parametrize("rho", [0.0, 0.25, 0.5, 1.0])
def test_only_the_share_rho_of_grievance_against_the_regime_favours_hts(rho):
    """A = b_G (rho G_R - G_H) + b_P protection: rho = 1 is the two-sided formula, bit for bit."""
    g_r = f32(0.4, 0.9, 0.4, 0.9)
    kw = {"g_regime": g_r, "g_hts": f32(0.3, 0.3, 0.3, 0.3), "grievance_weight": 3.0, "protection": f32(*[0.5] * 4)}
    u_r, _, u_c = _utilities(**kw, regime_to_hts=rho)
    a = 3.0 * (rho * g_r.astype(float) - 0.3) + 1.0 * 0.5
    assert np.allclose(u_c - u_r, a, rtol=1e-5)
    # the regime's grievance moves the choice by rho times what it moves it at rho = 1
    moved = (u_c - u_r)[1] - (u_c - u_r)[0]
    assert moved == pytest.approx(rho * 3.0 * 0.5, abs=1e-5)
    if rho == 1.0:
        default = _utilities(**kw)
        assert all(np.array_equal(x, y) for x, y in zip(default, (u_r, _, u_c), strict=True))


def _p_cooperate(u_r: np.ndarray, u_n: np.ndarray, u_c: np.ndarray) -> np.ndarray:
    e = np.exp(np.stack([u_r, u_n, u_c]).astype(float))
    return e[2] / e.sum(axis=0)


def _shift_from_harm(attributed_to: str, home_team_discount: float) -> tuple[float, float]:
    """Change in P(cooperate) and in the cooperate/resist log-odds after one day of harm E blamed wholly on one side."""
    e, rate = f32(2.0), 0.2
    g0 = f32(0.3)
    if attributed_to == "regime":
        gain = rules.saturating_gain(rules.regime_grievance_rate(e, rate, 1.0))
        g_r, g_h = g0 + (1 - g0) * gain, g0
    else:
        gain = rules.saturating_gain(rules.hts_grievance_rate(e, f32(0.0), rate, 1.0, home_team_discount))
        g_r, g_h = g0, g0 + (1 - g0) * gain
    weights = {"grievance_weight": 3.0, "protection_weight": 1.5, "fear_withdrawal": 1.0, "disengagement": 1.0}
    before = _utilities(g_regime=g0, g_hts=g0, protection=f32(0.4), **weights)
    after = _utilities(g_regime=g_r, g_hts=g_h, protection=f32(0.4), **weights)
    dp = float(_p_cooperate(*after)[0] - _p_cooperate(*before)[0])
    dlogodds = float((after[2] - after[0])[0] - (before[2] - before[0])[0])
    return dp, dlogodds


def test_equal_harm_blamed_on_the_regime_or_on_hts_shifts_the_choice_equally_and_oppositely():
    """Home-team discount 0: the same harm blamed wholly on the regime or wholly on HTS moves the
    cooperate/resist log-odds by the same amount in opposite directions, and P(cooperate) by
    amounts of the same size to first order (the logit is not linear), in opposite directions."""
    dp_r, dl_r = _shift_from_harm("regime", 0.0)
    dp_h, dl_h = _shift_from_harm("hts", 0.0)
    assert dl_r > 0.1 and dl_h < -0.1
    assert dl_r == pytest.approx(-dl_h, rel=1e-5)
    assert dp_r > 0 > dp_h
    assert abs(dp_r) == pytest.approx(abs(dp_h), rel=0.15)


def test_home_team_discount_makes_the_hts_attributed_shift_smaller():
    _, dl_r = _shift_from_harm("regime", 0.0)
    _, dl_h0 = _shift_from_harm("hts", 0.0)
    _, dl_h = _shift_from_harm("hts", 0.5)
    assert abs(dl_h) < abs(dl_h0) - 0.05
    assert abs(dl_h) < abs(dl_r)


def test_each_grievance_enters_the_choice_once_with_the_same_weight():
    """Raising G_R by x raises U_coop - U_resist by b_G x; raising G_H by x lowers it by b_G x; neutral unmoved."""
    base = _utilities(grievance_weight=2.0)
    up_r = _utilities(grievance_weight=2.0, g_regime=f32(*[0.8] * 4))
    up_h = _utilities(grievance_weight=2.0, g_hts=f32(*[0.5] * 4))
    gap = lambda u: u[2] - u[0]  # noqa: E731
    np.testing.assert_allclose(gap(up_r) - gap(base), 2.0 * 0.3, rtol=1e-5)
    np.testing.assert_allclose(gap(up_h) - gap(base), -2.0 * 0.3, rtol=1e-5)
    np.testing.assert_array_equal(up_r[1], base[1])


def test_protection_raises_cooperation_over_resistance_by_at_most_its_weight():
    low = _utilities(protection=f32(*[0.0] * 4), protection_weight=1.5)
    high = _utilities(protection=f32(*[1.0] * 4), protection_weight=1.5)
    assert np.all(high[2] > low[2]) and np.all(high[0] < low[0])
    np.testing.assert_allclose((high[2] - high[0]) - (low[2] - low[0]), 1.5, rtol=1e-5)


def test_choose_stance_frequencies_match_the_multinomial_logit():
    rng = np.random.default_rng(1)
    n = 200_000
    u_r = np.full(n, 0.5, F32)
    u_n = np.zeros(n, F32)
    u_c = np.full(n, -0.3, F32)
    choice = rules.choose_stance(u_r, u_n, u_c, rng.random(n, dtype=F32))
    p = np.exp([0.5, 0.0, -0.3])
    p /= p.sum()
    freq = np.bincount(choice, minlength=3) / n
    np.testing.assert_allclose(freq, p, atol=0.005)
    assert choice.dtype == np.int8


def test_choose_stance_maps_the_uniform_onto_resist_neutral_cooperate_in_order():
    u = np.zeros(3, F32)  # equal utilities: thirds
    choice = rules.choose_stance(u, u, u, f32(0.1, 0.5, 0.9))
    assert choice.tolist() == [RESIST, NEUTRAL, COOPERATE]


def test_choose_stance_is_stable_for_large_utilities():
    big = f32(500.0)
    choice = rules.choose_stance(f32(0.0), f32(0.0), big, f32(0.999))
    assert choice.tolist() == [COOPERATE]


# --------------------------------------------------------------------------- protest


def test_arrest_probability_rises_with_security_and_falls_with_crowds():
    sec = np.array([0.0, 0.5, 1.0])
    p = rules.arrest_probability(sec, np.zeros(3), arrest_constant=2.3, crowd_scale=20.0)
    assert p[0] == 0.0 and p[1] < p[2]
    assert p[2] == pytest.approx(1 - np.exp(-2.3))
    crowded = rules.arrest_probability(np.ones(2), np.array([0.0, 0.5]), arrest_constant=2.3, crowd_scale=20.0)
    assert crowded[1] < crowded[0]
    assert crowded[1] == pytest.approx(1 - np.exp(-2.3 / 11))


def _protest(**kw):
    args = {
        "g_hts": f32(0.6),
        "legitimacy": 0.2,
        "risk_aversion": f32(0.5),
        "p_arrest": f32(0.2),
        "fear": f32(0.0),
        "threshold": f32(0.2),
        "peer_push": f32(0.0),
        "eligible": np.array([True]),
        "fear_risk_weight": 1.0,
    }
    args.update(kw)
    return bool(rules.protest_decision(**args)[0])


def test_protest_decision_is_epsteins_threshold_rule():
    # drive 0.6 * 0.8 = 0.48, risk 0.5 * 0.2 = 0.1, net 0.38 > 0.2
    assert _protest()
    assert not _protest(threshold=f32(0.39))
    assert not _protest(eligible=np.array([False]))
    assert not _protest(legitimacy=0.9)  # legitimate HTS: little drive
    assert _protest(g_hts=f32(0.2), peer_push=f32(0.3))  # peers carry a weak grievance over


def test_fear_makes_gathering_dangerous_only_with_kappa():
    afraid = f32(0.6)
    assert not _protest(fear=afraid, fear_risk_weight=1.0)  # risk 0.5 * (0.2 + 0.6) = 0.4
    assert _protest(fear=afraid, fear_risk_weight=0.0)


# --------------------------------------------------------------------------- flight


def test_saturating_gain_is_one_minus_exp_of_minus_rate():
    np.testing.assert_allclose(rules.saturating_gain(f32(0.0, 0.5, 40.0)), [0.0, 1 - np.exp(-0.5), 1.0], rtol=1e-6)


def test_flee_probability_formula_and_zero_without_exposure_or_front():
    hazard = rules.flight_hazard(f32(0.5, 0.5, 0.0), f32(2.0, 0.0, 2.0), f32(0.0, 0.1, 0.0), exposure_rate=0.3)
    np.testing.assert_allclose(hazard, [0.3, 0.1, 0.0], rtol=1e-6)
    p = rules.flee_probability(hazard)
    np.testing.assert_allclose(p, [1 - np.exp(-0.3), 1 - np.exp(-0.1), 0.0], rtol=1e-6)
    assert np.all(p <= hazard)  # the model only evaluates households whose draw is below the hazard


def _dist(n: int) -> np.ndarray:
    x = np.arange(n, dtype=float) * 10.0
    return np.abs(x[:, None] - x[None, :])


def test_destination_weights_are_capacity_times_safety_over_distance_power():
    d = _dist(4)
    safety = np.array([1.0, 0.5, 1.0, 2.0])
    free = np.array([1.0, 1.0, 0.5, 1.0])
    p = rules.destination_weights(d, np.ones(4, bool), safety, free, distance_exponent=1.5, min_distance_km=2.0)
    w = np.array([0.0, 0.5 * 1 / 10**1.5, 1.0 * 0.5 / 20**1.5, 2.0 * 1 / 30**1.5])
    np.testing.assert_allclose(p[0], w / w.sum())
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.all(np.diag(p) == 0)


def test_destination_weights_never_send_anyone_to_a_closed_town():
    d = _dist(3)
    open_town = np.array([True, False, True])
    p = rules.destination_weights(d, open_town, np.ones(3), np.ones(3), distance_exponent=1.0, min_distance_km=1.0)
    assert np.all(p[:, 1] == 0)
    assert p[0, 2] == 1.0 and p[2, 0] == 1.0


def test_destination_weights_ignore_capacity_when_every_open_town_is_full():
    d = _dist(3)
    p = rules.destination_weights(
        d, np.ones(3, bool), np.ones(3), np.zeros(3), distance_exponent=1.0, min_distance_km=1.0
    )
    np.testing.assert_allclose(p[0], [0, 2 / 3, 1 / 3])


def test_destination_weights_rows_are_zero_with_no_open_destination():
    d = _dist(2)
    p = rules.destination_weights(
        d, np.array([True, False]), np.ones(2), np.ones(2), distance_exponent=1.0, min_distance_km=1.0
    )
    assert p[0].sum() == 0


def test_choose_destination_follows_the_row_and_skips_zero_weights():
    probs = np.array([[0.0, 0.0, 0.25, 0.75, 0.0], [0.0] * 5])
    u = np.array([0.0, 0.2, 0.25, 0.5, 0.9999999])
    dest = rules.choose_destination(np.zeros(5, np.int16), u, probs)
    assert dest.tolist() == [2, 2, 3, 3, 3]
    assert rules.choose_destination(np.array([1]), np.array([0.5]), probs).tolist() == [-1]


def test_choose_destination_frequencies_match_probabilities():
    rng = np.random.default_rng(3)
    probs = np.array([[0.0, 0.2, 0.3, 0.5]])
    dest = rules.choose_destination(np.zeros(100_000, np.int16), rng.random(100_000), probs)
    np.testing.assert_allclose(np.bincount(dest, minlength=4) / 100_000, probs[0], atol=0.006)


def test_recruit_probability_is_rate_times_regime_grievance():
    np.testing.assert_allclose(rules.recruit_probability(f32(0.0, 0.5, 1.0), 0.02), [0.0, 0.01, 0.02])

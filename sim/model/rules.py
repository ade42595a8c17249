"""Household decision rules as vectorized functions over numpy arrays.

Each rule is a pure function of arrays and parameters, named after what it
decides, so that "when does a household flee" is found here and nowhere else.
The model (:mod:`sim.model.households`) calls them once per day over all households
(structure of arrays); the benchmarks call the same functions for the numpy
floor. Symbols follow ``docs/ODD.md``.
"""

from __future__ import annotations

import numpy as np

from sim.scenario.schema import STANCES

F32 = np.float32
# Stance codes index STANCES (derived from the schema).
RESIST, NEUTRAL, COOPERATE = (STANCES.index(s) for s in ("resist", "neutral", "cooperate"))


def half_life_decay(half_life_days: float) -> float:
    """Daily retention factor of a memory with the given half-life: ``0.5 ** (1 / half_life)``."""
    return 0.5 ** (1.0 / half_life_days)


def saturating_gain(rate: np.ndarray) -> np.ndarray:
    """Share of the remaining distance to 1 covered in a day at ``rate``: ``1 - exp(-rate)``."""
    return -np.expm1(-rate)


def saturating_update(
    level: np.ndarray, gain: np.ndarray, decay: float, baseline: np.ndarray | None = None
) -> np.ndarray:
    """Move a 0-1 level toward 1 by ``gain`` and back toward ``baseline`` at ``decay`` (in place).

    ``level += (1 - level) * gain - decay * (level - baseline)`` with
    ``gain = 1 - exp(-rate)`` (:func:`saturating_gain`). The exponential form
    keeps the level in [0, 1] however large a day's harm is; the baseline (0 if
    None) is the household's standing grievance, so memories of harm fade but
    the regime stays the number-one enemy.
    """
    tmp = 1 - level
    tmp *= gain
    level += tmp
    if decay:
        if baseline is None:
            level *= F32(1 - decay)
        else:
            np.subtract(level, baseline, out=tmp)
            tmp *= F32(decay)
            level -= tmp
    return level


def regime_grievance_rate(exposure: np.ndarray, regime_rate: float, regime_blame: float) -> np.ndarray:
    """Daily growth rate of grievance against the regime, G_R: ``a_R * beta_R * E``.

    ``beta_R`` (``mechanisms.regime_blame``) is the share of strike harm blamed on the
    perpetrator, the regime (Condra & Shapiro 2012; Lyall, Blair & Imai 2013), independent of
    the share blamed on HTS for drawing the strikes: the pretext never absolves the perpetrator.
    Nothing HTS does enters here, so HTS coercion never pushes anyone toward the regime.
    """
    return exposure * F32(regime_rate * regime_blame)


def hts_grievance_rate(
    exposure: np.ndarray, hts_harm: np.ndarray, hts_rate: float, pretext_blame: float, home_team_discount: float
) -> np.ndarray:
    """Daily growth rate of grievance against HTS, G_H: ``a_H * (1 - delta_H) * (lambda * E^H + coercion)``.

    ``exposure`` is E^H, the strike harm that can be blamed on HTS: each struck town's harm
    weighted by HTS's presence there (its control where it holds the town, 0 in a town held by
    a rival group or by no armed group: no pretext without HTS; ODD 7.2). ``lambda``
    (``mechanisms.pretext_blame``) is the share of it blamed on HTS for drawing the strikes;
    ``coercion`` (``hts_harm``) is HTS's own repression, takeovers and taxes, already weighted.
    ``delta_H`` is the home-team discount (Lyall, Blair & Imai 2013): harm attributed to the
    side seen as one's own (HTS, the armed opposition) costs it less than the same harm
    attributed to the out-group (the regime).
    """
    blamed = exposure * F32(pretext_blame) + hts_harm
    return blamed * F32(hts_rate * (1.0 - home_team_discount))


def allegiance_index(
    g_regime: np.ndarray,
    g_hts: np.ndarray,
    protection: np.ndarray,
    *,
    grievance_weight: float,
    protection_weight: float,
    regime_to_hts: float = 1.0,
) -> np.ndarray:
    """The allegiance index: the log-odds of cooperating with HTS over resisting it, household part.

    ``A = b_G * (rho * G_R - G_H) + b_P * protection``. Each grievance enters once and with the
    same weight ``b_G``; at ``rho`` = 1 (``choice.regime_grievance_to_hts``, the two-sided setting
    of Lyall, Blair & Imai 2013) equal grievances against the regime and against HTS move the
    choice by equal and opposite amounts (any asymmetry is in how harm becomes grievance: blame
    shares and the home-team discount, 7.8.1). ``rho`` < 1: only that share of the grievance
    against the regime favours HTS over its local opponents, who oppose the regime too.
    ``protection`` (0-1, rally already in it, 7.7) is the value of HTS as armed protector against
    the current threat.
    """
    a = g_regime - g_hts if regime_to_hts == 1.0 else g_regime * F32(regime_to_hts) - g_hts
    a *= F32(grievance_weight)
    a += protection * F32(protection_weight)
    return a


def stance_utilities(
    g_regime: np.ndarray,
    g_hts: np.ndarray,
    fear: np.ndarray,
    displaced: np.ndarray,
    coop_base: np.ndarray,
    resist_base: np.ndarray,
    protection: np.ndarray,
    *,
    protection_weight: float,
    grievance_weight: float,
    fear_withdrawal: float,
    disengagement: float,
    regime_to_hts: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Utilities of resisting, staying neutral and cooperating with HTS.

    ``coop_base`` and ``resist_base`` are the household's own intercepts (from its home
    town: dispositions travel) plus the terms of the town it lives in now (services,
    control, council legitimacy, peer shares), gathered to households. The allegiance
    index ``A`` (:func:`allegiance_index`) is split between the two sides, so that
    ``U_coop - U_resist = coop_base - resist_base + A``:

    U_coop    = coop_base + A / 2 - w_F * F
    U_resist  = resist_base - A / 2 - w_F * F
    U_neutral = w_D * displaced
    """
    half = allegiance_index(
        g_regime,
        g_hts,
        protection,
        grievance_weight=grievance_weight,
        protection_weight=protection_weight,
        regime_to_hts=regime_to_hts,
    )
    half *= F32(0.5)
    fear_term = fear * F32(fear_withdrawal)
    u_coop = coop_base + half - fear_term
    u_resist = resist_base - half - fear_term
    u_neutral = displaced.astype(F32) * F32(disengagement)
    return u_resist, u_neutral, u_coop


def choose_stance(u_resist: np.ndarray, u_neutral: np.ndarray, u_coop: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Draw a stance from the multinomial logit of the three utilities."""
    m = np.maximum(np.maximum(u_resist, u_neutral), u_coop)
    e_r = np.exp(u_resist - m)
    e_n = np.exp(u_neutral - m)
    e_c = np.exp(u_coop - m)
    total = e_r + e_n + e_c
    u = uniform * total
    out = np.full(u.shape, COOPERATE, dtype=np.int8)
    out[u < e_r + e_n] = NEUTRAL
    out[u < e_r] = RESIST
    return out


def arrest_probability(
    security: np.ndarray, protest_share: np.ndarray, *, arrest_constant: float, crowd_scale: float
) -> np.ndarray:
    """Epstein's estimated arrest probability, per town.

    ``P_arrest = 1 - exp(-k * security / (1 + crowd_scale * protest_share))``:
    more HTS security raises it, larger crowds lower it (safety in numbers).
    """
    return -np.expm1(-arrest_constant * security / (1.0 + crowd_scale * protest_share))


def protest_decision(
    g_hts: np.ndarray,
    legitimacy: float,
    risk_aversion: np.ndarray,
    p_arrest: np.ndarray,
    fear: np.ndarray,
    threshold: np.ndarray,
    peer_push: np.ndarray,
    eligible: np.ndarray,
    *,
    fear_risk_weight: float,
) -> np.ndarray:
    """Protest against HTS (Epstein 2002 Model I, HTS as the police).

    Protest if ``G_H * (1 - L) + peer - R_i * (P_arrest + kappa * F) > T_i``.
    ``kappa`` (suppression) makes gatherings under air strikes dangerous.
    """
    drive = g_hts * F32(1.0 - legitimacy) + peer_push
    risk = risk_aversion * (p_arrest + fear * F32(fear_risk_weight))
    return eligible & (drive - risk > threshold)


def flight_hazard(
    fear: np.ndarray, exposure: np.ndarray, front_term: np.ndarray, *, exposure_rate: float
) -> np.ndarray:
    """Daily flight hazard ``h = f_E * s_exit * F * E + f_front * front_proximity``.

    ``front_term`` is the second term, per household; ``exposure_rate`` is f_E
    already multiplied by the exit strength.
    """
    hazard = fear * exposure
    hazard *= F32(exposure_rate)
    hazard += front_term
    return hazard


def flee_probability(hazard: np.ndarray) -> np.ndarray:
    """Daily probability that a household flees its current town: ``1 - exp(-h)``.

    Since ``1 - exp(-h) <= h``, only households whose uniform draw is below the
    hazard itself can flee; the model evaluates this exactly for those only.
    """
    return -np.expm1(-hazard)


def town_safety(exposure_eff: np.ndarray, front_proximity: np.ndarray, harm_scale: float) -> np.ndarray:
    """Safety of a town as households judge it: ``exp(-E_eff / harm_scale) * (1 - front_proximity)``.

    Shared by the two decisions that weigh where it is safe: the choice of a
    flight destination and the return home.
    """
    return np.exp(-exposure_eff / harm_scale) * (1 - front_proximity)


def distance_decay(distance_km: np.ndarray, distance_exponent: float, min_distance_km: float) -> np.ndarray:
    """``max(distance, min_distance) ** gamma``: the gravity model's distance term."""
    return np.maximum(distance_km, min_distance_km) ** distance_exponent


def destination_weights(
    distance_km: np.ndarray,
    open_town: np.ndarray,
    attraction: np.ndarray,
    free_capacity: np.ndarray,
    *,
    distance_exponent: float,
    min_distance_km: float,
    decay: np.ndarray | None = None,
) -> np.ndarray:
    """Row-stochastic matrix: P(destination j | origin i) for fleeing households.

    weight_ij = free_capacity_j * attraction_j / distance_ij ** gamma, over open
    towns j != i; attraction is safety times the pull of displaced people
    already there (chain migration). Where every open town is full, capacity is ignored. Rows
    with no open destination are all zero (those households cannot leave). ``decay``, if given,
    is :func:`distance_decay` of the same distances, computed once by the caller.
    """
    if decay is None:
        decay = distance_decay(distance_km, distance_exponent, min_distance_km)
    base = (attraction * open_town)[None, :] / decay
    np.fill_diagonal(base, 0.0)
    w = base * free_capacity[None, :]
    full = w.sum(axis=1) <= 0
    w[full] = base[full]
    totals = w.sum(axis=1, keepdims=True)
    return np.divide(w, totals, out=np.zeros_like(w), where=totals > 0)


def choose_destination(origin: np.ndarray, uniform: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Draw destinations for households leaving ``origin`` (inverse CDF per row).

    Returns -1 where the origin has no open destination.
    """
    cdf = np.cumsum(probs, axis=1)
    rows = cdf[origin]
    last = rows[:, -1]
    # First column whose cumulative weight exceeds u * total: never a zero-weight town.
    dest = (rows <= (uniform * last)[:, None]).sum(axis=1)
    dest[last <= 0] = -1
    return dest


def recruit_probability(g_regime: np.ndarray, rate: float | np.ndarray) -> np.ndarray:
    """Daily probability that an eligible household sends a fighter: rate * G_R."""
    return g_regime * rate

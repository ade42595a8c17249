"""Households: creation, the vectorized daily household step, moves, deaths, recruits, aggregates.

The household state is :class:`~sim.model.state.HouseholdArrays` (structure of arrays) in
the shared :class:`~sim.model.state.ModelState`; every function here takes that state.
Every household is also a Mesa agent (:class:`sim.model.actors.Household`), a thin
view onto one row of these arrays, so Mesa tools and the app can inspect any
household; but the daily rules run once over whole arrays, never in a Python
loop over agents.
"""

from __future__ import annotations

import numpy as np

from sim.model import rules, towns
from sim.model.control import CONTESTED as HELD_CONTESTED
from sim.model.rules import COOPERATE, F32, NEUTRAL, RESIST
from sim.model.state import HouseholdArrays, ModelState
from sim.scenario.schema import Scenario

__all__ = [
    "NOT_RECRUITED",
    "RECRUITED_HTS",
    "RECRUITED_RIVAL",
    "HouseholdArrays",
    "aggregate",
    "calibrate_constants",
    "calibrate_protest",
    "create_households",
    "destination_matrix",
    "draw_stances_from_choice",
    "enlist",
    "expected_recruits",
    "flight",
    "kill_persons",
    "move_households",
    "recruitment_rates",
    "return_households",
    "stance_utilities_now",
    "standing_attrition",
    "stationary_protest",
    "step_households",
]

NOT_RECRUITED, RECRUITED_HTS, RECRUITED_RIVAL = 0, 1, 2


def create_households(scenario: Scenario, rng: np.random.Generator) -> HouseholdArrays:
    """Draw the initial households of every town from the scenario."""
    sc = scenario
    hcfg = sc.households
    size = 1 if hcfg.unit == "person" else hcfg.size
    counts = []
    for t in sc.towns:
        n = t.persons * hcfg.sample_fraction / size
        counts.append(max(1, int(n) + int(rng.random() < n - int(n))))
    counts_arr = np.array(counts)
    n_total = int(counts_arr.sum())
    home = np.repeat(np.arange(len(sc.towns), dtype=np.int16), counts_arr)
    init = hcfg.initial
    stance = np.empty(n_total, dtype=np.int8)
    g_hts = np.empty(n_total, dtype=F32)
    c = init.concentration
    start = 0
    for t, n in zip(sc.towns, counts, strict=True):
        shares = init.stance[t.stance]
        p = [shares.resist, shares.neutral, shares.cooperate]
        stance[start : start + n] = rng.choice(np.array([RESIST, NEUTRAL, COOPERATE], dtype=np.int8), size=n, p=p)
        m = init.grievance_hts_resisting if t.stance == "resisting" else init.grievance_hts_other
        g_hts[start : start + n] = _beta(rng, m, c, n)
        start += n
    g_regime = _beta(rng, init.grievance_regime, c, n_total)
    return HouseholdArrays(
        home=home,
        town=home.copy(),
        persons=np.full(n_total, size, dtype=F32),
        stance=stance,
        g_regime=g_regime,
        g_hts=g_hts,
        g_regime0=g_regime.copy(),
        g_hts0=g_hts.copy(),
        fear=np.zeros(n_total, dtype=F32),
        harm=np.zeros(n_total, dtype=F32),
        harm_hts=np.zeros(n_total, dtype=F32),
        risk_aversion=rng.random(n_total, dtype=F32),
        threshold=np.maximum(0, rng.normal(sc.protest.threshold_mean, sc.protest.threshold_sd, n_total)).astype(F32),
        intercept_resist=np.full(n_total, sc.choice.resist_intercept, dtype=F32),
        intercept_coop=np.full(n_total, sc.choice.cooperate_intercept, dtype=F32),
        displaced=np.zeros(n_total, dtype=bool),
        protesting=np.zeros(n_total, dtype=bool),
        recruited=np.zeros(n_total, dtype=np.int8),
        rival_group=np.full(n_total, -1, dtype=np.int8),
        jailed_until=np.zeros(n_total, dtype=np.int32),
    )


def _beta(rng: np.random.Generator, mean: float, concentration: float, n: int) -> np.ndarray:
    """Beta draws with a given mean; degenerate means give constants."""
    if mean <= 0 or mean >= 1:
        return np.full(n, min(max(mean, 0.0), 1.0), dtype=F32)
    return rng.beta(mean * concentration, (1 - mean) * concentration, n).astype(F32)


# ---------------------------------------------------------------------- aggregates by town


def aggregate(state: ModelState) -> None:
    """Step 6: town aggregates of the households (persons-weighted).

    Households are stored sorted by home town and most are at home, so sums by
    current town are contiguous-segment sums over the home order, corrected
    by the (few) displaced households: one sequential pass instead of a
    scattered one.
    """
    ts = state.town_state
    hh = state.hh
    n = ts.n
    state.displaced_idx = hh.displaced.nonzero()[0]
    by = np.bincount(hh.town.astype(np.intp) * 3 + hh.stance, weights=hh.persons, minlength=3 * n).reshape(n, 3)
    present = by.sum(axis=1)
    ts.present = present
    safe = np.maximum(present, 1e-12)
    ts.coop_share = by[:, COOPERATE] / safe
    ts.resist_share = by[:, RESIST] / safe
    state.by_stance = by
    protesting = hh.protesting.nonzero()[0]
    protest = np.bincount(hh.town[protesting], weights=hh.persons[protesting], minlength=n)
    state.protest_persons = protest
    ts.protest_share = protest / safe
    d = state.displaced_idx
    ts.hosted = np.bincount(hh.town[d], weights=hh.persons[d], minlength=n)
    state.dest_probs = None


# ---------------------------------------------------------------------- moves, deaths, recruits


def move_households(state: ModelState, idx: np.ndarray, dest: np.ndarray, *, reason: str) -> None:
    """Move households ``idx`` to towns ``dest`` (-1: no open destination, stay); record the flows."""
    hh = state.hh
    origin = hh.town[idx]
    ok = dest >= 0
    idx, origin, dest = idx[ok], origin[ok], dest[ok]
    if not len(idx):
        return
    hh.town[idx] = dest
    hh.displaced[idx] = dest != hh.home[idx]
    n = state.town_state.n
    flows = np.bincount(origin.astype(np.intp) * n + dest, weights=hh.persons[idx], minlength=n * n)
    moved = float(flows.sum()) * state.weight
    state.moves_today += moved
    state.moves_cum += moved
    _record_flows(state, "displacement", flows, n, count=0, note=reason)
    state.dest_probs = None


def _record_flows(state: ModelState, kind: str, flows: np.ndarray, n: int, *, count: int, note: str = "") -> None:
    """One event row per origin-destination pair with a flow (``flows``: origin * n + destination).

    The rows :meth:`ModelState.record_event` appends one at a time, appended at once.
    """
    k = flows.nonzero()[0]
    if not len(k):
        return
    day = state.day
    persons = (flows[k] * state.weight).tolist()  # float64 products, as float(flows[k]) * weight
    state.events.extend(
        [
            (day, kind, o, d, count, p, note, "", "")
            for o, d, p in zip((k // n).tolist(), (k % n).tolist(), persons, strict=True)
        ]
    )


def return_households(state: ModelState, idx: np.ndarray) -> None:
    """Displaced households ``idx`` go back to their home towns."""
    hh = state.hh
    n = state.town_state.n
    flows = np.bincount(hh.town[idx].astype(np.intp) * n + hh.home[idx], weights=hh.persons[idx], minlength=n * n)
    hh.town[idx] = hh.home[idx]
    hh.displaced[idx] = False
    state.returns_today += float(flows.sum()) * state.weight
    _record_flows(state, "return", flows, n, count=1)


def kill_persons(state: ModelState, town: int, k: int, rng: np.random.Generator, *, harm: bool = True) -> float:
    """Kill up to ``k`` persons among those present in ``town`` (chosen by household size).

    ``harm`` adds the deaths to the victims' households' personal harm memory (which
    feeds their grievances like strike harm); fighting between rebels passes False.
    """
    if k <= 0:
        return 0.0
    hh = state.hh
    idx = ((hh.town == town) & (hh.persons > 0)).nonzero()[0]
    if not len(idx):
        return 0.0
    p = hh.persons[idx].astype(float)
    victims = rng.choice(idx, size=k, p=p / p.sum())
    hit, counts = np.unique(victims, return_counts=True)
    dead = np.minimum(counts.astype(np.float32), hh.persons[hit])
    hh.persons[hit] -= dead
    if harm:
        hh.harm[hit] += dead * np.float32(state.scenario.exposure.personal_weight)
        # what can be blamed on HTS for drawing the strike: weighted by its presence in this town
        presence = np.float32(towns.hts_presence(state.town_state)[town])
        hh.harm_hts[hit] += dead * np.float32(state.scenario.exposure.personal_weight) * presence
    ts = state.town_state
    ts.killed_home_cum += np.bincount(hh.home[hit], weights=dead, minlength=ts.n)
    gone = hit[hh.persons[hit] <= 0]
    hh.protesting[gone] = False
    return float(dead.sum())


def _rival_group_of(state: ModelState, idx: np.ndarray) -> np.ndarray:
    """The rival group a resisting household ``idx`` would join: the one most present in its current town (7.8.7)."""
    return np.argmax(state.town_state.rival_presence[state.hh.town[idx]], axis=1)


def enlist(state: ModelState, idx: np.ndarray) -> None:
    """Households ``idx`` send a fighter: cooperating ones to HTS, resisting ones to a rival group present."""
    if not len(idx):
        return
    hh = state.hh
    hts = state.hts
    groups = state.rival_groups
    coop = idx[hh.stance[idx] == COOPERATE]
    hh.recruited[coop] = RECRUITED_HTS
    hts.fighters += len(coop) * state.weight
    hts.recruits += len(coop) * state.weight
    res = idx[hh.stance[idx] == RESIST]
    if len(res) and groups:
        group = _rival_group_of(state, res)
        hh.recruited[res] = RECRUITED_RIVAL
        hh.rival_group[res] = group
        for g, c in enumerate(np.bincount(group, minlength=len(groups))):
            groups[g].fighters += c * state.weight
            groups[g].recruits += c * state.weight


def recruitment_rates(state: ModelState) -> np.ndarray:
    """Daily recruitment rate at G_R = 1 per town (rows) and stance (columns): 7.8.7."""
    ts = state.town_state
    rc = state.scenario.recruitment
    rate_table = np.zeros((len(ts.names), 3), dtype=F32)
    rate_table[:, COOPERATE] = rc.hts_rate * ts.open
    rate_table[:, RESIST] = rc.rival_rate * ts.rival_presence_total * ts.open
    return rate_table


def expected_recruits(state: ModelState) -> tuple[float, np.ndarray]:
    """Fighters HTS and each rival group expect to gain per day in the current state (7.8.7).

    The mean of :func:`step_households`' recruitment draw: every living household that has
    not sent a fighter, with probability ``G_R * rate``, to HTS if cooperating, to the group
    with the highest presence in its town if resisting. The stationary baseline (5.7) takes
    the day-0 value as the standing attrition that balances standing recruitment.
    """
    hh = state.hh
    groups = state.rival_groups
    rates = recruitment_rates(state)
    eligible = (hh.persons > 0) & (hh.recruited == NOT_RECRUITED)
    p = np.where(eligible, rules.recruit_probability(hh.g_regime, rates[hh.town, hh.stance]), 0).astype(np.float64)
    hts = float(p[hh.stance == COOPERATE].sum()) * state.weight
    rivals = np.zeros(len(groups))
    res = (hh.stance == RESIST).nonzero()[0]
    if len(res) and groups:
        group = _rival_group_of(state, res)
        rivals = np.bincount(group, weights=p[res], minlength=len(groups)) * state.weight
    return hts, rivals


def standing_attrition(state: ModelState) -> None:
    """Each armed actor loses its standing attrition (5.7: day-0 expected recruits; 0 without a stationary baseline)."""
    bal = state.balance
    hts = state.hts
    hts.fighters = max(0.0, hts.fighters - bal["hts_fighters"])
    groups = state.rival_groups
    for group, loss in zip(groups, np.broadcast_to(bal["rival_fighters"], len(groups)), strict=True):
        group.fighters = max(0.0, group.fighters - float(loss))


# ---------------------------------------------------------------------- the daily step


def choice_weights(sc: Scenario) -> dict[str, float]:
    """The weights of :func:`rules.stance_utilities` in scenario ``sc`` (mechanism strengths applied)."""
    ch, mech = sc.choice, sc.mechanisms
    return {
        "protection_weight": ch.protection_weight,
        "grievance_weight": ch.grievance_weight,
        "fear_withdrawal": ch.fear_withdrawal * mech.suppression,
        "disengagement": ch.displaced_disengagement * mech.exit,
        "regime_to_hts": ch.regime_grievance_to_hts,
    }


def step_households(state: ModelState) -> None:
    """Step 5 of the schedule: grievances, fear, then stance, protest, flight, return, recruitment.

    All households at once. The four uniform draws per household per day have a
    fixed shape whatever the state, so paired runs under different targeting
    policies share their household random numbers (common random numbers).
    """
    sc = state.scenario
    hh = state.hh
    ts = state.town_state
    mech = sc.mechanisms
    rng = state.streams.households
    day = state.day
    n = len(hh)
    alive = hh.persons > 0
    town = hh.town

    # --- grievances and fear ------------------------------------------------------
    # Exposure is the town's harm plus the household's own; most households have
    # no personal harm, so their daily gains are computed once per town.
    e_town = ts.exposure_eff.astype(F32)
    personal = (hh.harm > 0).nonzero()[0]
    exposure = e_town[town]
    exposure[personal] += hh.harm[personal]
    e_personal = exposure[personal]
    t_personal = town[personal]
    g = sc.grievance
    # HTS's coercion above its standing level (which G_H0 already reflects; zero without a stationary baseline).
    hts_harm = np.maximum(towns.hts_harm(state) - state.balance["hts_harm"], 0.0).astype(F32)
    # Strike harm that can be blamed on HTS for drawing it: each struck town's harm weighted by
    # HTS's presence there (E^H, 7.2); a household's own losses by HTS's presence where they died.
    eh_town = ts.exposure_hts_eff.astype(F32)
    eh_personal = eh_town[t_personal] + hh.harm_hts[personal]

    def gains(rate_of, town_exposure: np.ndarray = e_town, personal_exposure: np.ndarray = e_personal) -> np.ndarray:
        out = rules.saturating_gain(rate_of(town_exposure, hts_harm))[town]
        if len(personal):
            out[personal] = rules.saturating_gain(rate_of(personal_exposure, hts_harm[t_personal]))
        return out

    rules.saturating_update(
        hh.g_regime,
        gains(lambda e, _: rules.regime_grievance_rate(e, g.regime_rate, mech.regime_blame)),
        g.regime_decay,
        hh.g_regime0,
    )
    rules.saturating_update(
        hh.g_hts,
        gains(
            lambda e, h: rules.hts_grievance_rate(e, h, g.hts_rate, mech.pretext_blame, g.home_team_discount),
            eh_town,
            eh_personal,
        ),
        g.hts_decay,
        hh.g_hts0,
    )
    rules.saturating_update(hh.fear, gains(lambda e, _: e * F32(sc.fear.rate)), sc.fear.decay)

    # --- stance: a share of households reconsider each day --------------------------
    ch = sc.choice
    u_rev = rng.random(n, dtype=F32)
    revising = ((u_rev < ch.revision_rate) & alive).nonzero()[0]
    if len(revising):
        t_rev = town[revising]
        u_r, u_n, u_c = rules.stance_utilities(
            hh.g_regime[revising],
            hh.g_hts[revising],
            hh.fear[revising],
            hh.displaced[revising],
            ts.coop_base.astype(F32)[t_rev] + hh.intercept_coop[revising],
            ts.resist_base.astype(F32)[t_rev] + hh.intercept_resist[revising],
            ts.protection.astype(F32)[t_rev],
            **choice_weights(sc),
        )
        hh.stance[revising] = rules.choose_stance(u_r, u_n, u_c, u_rev[revising] / F32(ch.revision_rate))

    # --- protest against HTS ---------------------------------------------------------
    pr = sc.protest
    # Protest against HTS is protest against its rule: only where HTS holds the town (ODD 7.8.3).
    eligible = alive & (hh.stance == RESIST) & (hh.jailed_until <= day) & (ts.open & ts.hts_holds)[town]
    # The rule is elementwise: evaluated for the eligible households only, the others stay home.
    who = eligible.nonzero()[0]
    t_who = town[who]
    protesting = np.zeros(n, bool)
    protesting[who] = rules.protest_decision(
        hh.g_hts[who],
        state.hts.legitimacy,
        hh.risk_aversion[who],
        ts.p_arrest.astype(F32)[t_who],
        hh.fear[who],
        hh.threshold[who],
        (pr.peer_weight * ts.protest_share).astype(F32)[t_who],
        True,
        fear_risk_weight=pr.fear_risk_weight * mech.suppression,
    )
    hh.protesting = protesting

    # --- flight and return home -------------------------------------------------------
    flight(state, rng.random(n, dtype=F32), exposure)
    fl = sc.flight
    u_ret = rng.random(n, dtype=F32)
    p_ret_home = (
        fl.return_rate * rules.town_safety(ts.exposure_eff, ts.front_proximity, fl.safety_harm_scale) * ts.open
    ).astype(F32)
    away = hh.displaced.nonzero()[0]  # the rule for the displaced only (few): the same households, in order
    home = hh.home[away]
    returning = away[alive[away] & (u_ret[away] < p_ret_home[home]) & (hh.town[away] != home)]
    if len(returning):
        return_households(state, returning)

    # --- recruitment ---------------------------------------------------------------------
    rate_table = recruitment_rates(state)
    u_rec = rng.random(n, dtype=F32)
    # p_rec = G_R * rate is at most max|G_R| * max|rate| (float32 rounding is monotone), so only
    # households drawing below that bound can be recruited: the rule is evaluated for those only.
    g = hh.g_regime
    bound = F32(max(g.max(), -g.min(), 0)) * np.abs(rate_table).max() if n else F32(0)
    low = (u_rec < bound).nonzero()[0]
    p_rec = rules.recruit_probability(g[low], rate_table.ravel()[town[low].astype(np.int32) * 3 + hh.stance[low]])
    recruits = low[(u_rec[low] < p_rec) & (hh.recruited[low] == NOT_RECRUITED) & alive[low]]
    enlist(state, recruits)
    standing_attrition(state)


def flight(
    state: ModelState,
    u_flee: np.ndarray | None = None,
    exposure: np.ndarray | None = None,
    *,
    fallen_town: int = -1,
    contested_town: int = -1,
) -> None:
    """Flight: who leaves their current town today, and where they go.

    Three callers, one rule. The daily household step passes ``u_flee`` (one uniform
    per household) and each household's exposure ``E_i``; the front passes
    ``fallen_town`` each day for a town the regime holds, which those present leave over days;
    a fight for a town passes ``contested_town`` (ODD 7.6).

    1. Who flees. Forced: each living household in ``fallen_town`` with probability
       ``flight.capture_rate`` a day (uniforms from the front stream, one per household present;
       rate 1 empties the town on the day it falls). From a fight: each living
       household in ``contested_town`` with probability ``rivals.fight_flight`` (uniforms
       from the fight stream, one per household present). Otherwise the daily hazard
       ``h_i = f_E * s_exit * F_i * E_i + f_front * front_proximity_t * open_t``;
       since ``P(flee) = 1 - exp(-h) <= h``, only households with ``u_flee < h`` are
       candidates, and a candidate flees if ``u_flee < P(flee)``.
    2. Where to. ``P(j | i)`` proportional to free capacity * safety * chain-migration
       pull / distance^gamma over open towns j != i (:func:`destination_matrix`),
       drawn by inverse CDF with the flight's uniform rescaled (``u / P(flee)``),
       so no extra draw depends on the state (common random numbers).
    3. Move: the household keeps its home town and is displaced while away from it.
    """
    hh = state.hh
    ts = state.town_state
    if fallen_town >= 0:
        here = ((hh.town == fallen_town) & (hh.persons > 0)).nonzero()[0]
        if not len(here):
            return
        rate = state.scenario.flight.capture_rate
        u = state.streams.front.random(len(here))
        go = u < rate
        fleeing = here[go]
        if not len(fleeing):
            return
        u_dest = u[go] / rate
        reason = "front"
    elif contested_town >= 0:
        here = ((hh.town == contested_town) & (hh.persons > 0)).nonzero()[0]
        p = state.scenario.rivals.fight_flight
        if not len(here) or p <= 0:
            return
        u = state.streams.fight.random(len(here))
        go = u < p
        fleeing = here[go]
        if not len(fleeing):
            return
        u_dest = u[go] / p
        reason = "fighting"
    else:
        fl = state.scenario.flight
        hazard = rules.flight_hazard(
            hh.fear,
            exposure,
            (fl.front_rate * ts.front_proximity * ts.open).astype(F32)[hh.town],
            exposure_rate=fl.exposure_rate * state.scenario.mechanisms.exit,
        )
        candidates = (u_flee < hazard).nonzero()[0]  # P(flee) <= hazard
        p_flee = rules.flee_probability(hazard[candidates])
        fleeing_mask = (u_flee[candidates] < p_flee) & (hh.persons[candidates] > 0)
        fleeing = candidates[fleeing_mask]
        if not len(fleeing):
            return
        u_dest = u_flee[fleeing] / p_flee[fleeing_mask]
        reason = "flight"
    dest = rules.choose_destination(hh.town[fleeing], u_dest, destination_matrix(state))
    move_households(state, fleeing, dest, reason=reason)


def destination_matrix(state: ModelState) -> np.ndarray:
    """P(destination | origin) for fleeing households (cached in the state until towns change).

    Weight of town j: free capacity * safety * pull / max(distance, cell)^gamma, with
    safety from :func:`rules.town_safety` times the border bonus, and the pull of the
    displaced already there (chain migration through kin and networks).
    """
    if state.dest_probs is None:
        ts = state.town_state
        fl = state.scenario.flight
        safety = rules.town_safety(ts.exposure_eff, ts.front_proximity, fl.safety_harm_scale)
        safety = safety * np.where(ts.border, fl.border_safety, 1.0)
        safety = safety * (ts.controller != HELD_CONTESTED)  # nobody flees into a town being fought over
        pull = 1 + fl.network_weight * ts.hosted / np.maximum(ts.persons0, 1e-12)
        free = np.clip(ts.capacity - ts.hosted, 0, None) / np.maximum(ts.capacity, 1e-12)
        if state.distance_decay is None:  # distances and gamma are fixed for the run
            state.distance_decay = rules.distance_decay(state.geo.distance_km, fl.distance_exponent, state.geo.cell_km)
        state.dest_probs = rules.destination_weights(
            state.geo.distance_km,
            ts.open,
            safety * pull,
            free,
            distance_exponent=fl.distance_exponent,
            min_distance_km=state.geo.cell_km,
            decay=state.distance_decay,
        )
    return state.dest_probs


def calibrate_constants(state: ModelState, iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Alternative-specific constants per town so that the initial shares are the no-shock equilibrium.

    Discrete-choice practice: the town's constants for resisting and cooperating
    (relative to neutral) are set so that the mean choice probabilities of its
    households, in the initial state, equal the town's initial stance shares.
    Whatever then moves allegiance is a change in grievances, fear, services,
    control, councils, protection or peers: a mechanism, not a drifting baseline.
    """
    sc = state.scenario
    ts = state.town_state
    hh = state.hh
    n_towns = ts.n
    target = np.array(
        [
            [getattr(sc.households.initial.stance[t.stance], k) for k in ("resist", "neutral", "cooperate")]
            for t in sc.towns
        ]
    )
    target = np.clip(target, 1e-3, None)
    target /= target.sum(axis=1, keepdims=True)
    town = hh.home
    u_r, u_n, u_c = rules.stance_utilities(
        hh.g_regime,
        hh.g_hts,
        hh.fear,
        hh.displaced,
        ts.coop_base.astype(F32)[town],
        ts.resist_base.astype(F32)[town],
        ts.protection.astype(F32)[town],
        **choice_weights(sc),
    )
    alpha_r = np.zeros(n_towns)
    alpha_c = np.zeros(n_towns)
    weights = hh.persons.astype(float)
    total = np.maximum(np.bincount(town, weights=weights, minlength=n_towns), 1e-12)
    for _ in range(iterations):
        e_r = np.exp(u_r + alpha_r.astype(F32)[town] - u_n)
        e_c = np.exp(u_c + alpha_c.astype(F32)[town] - u_n)
        denom = 1 + e_r + e_c
        p_r = np.bincount(town, weights=weights * e_r / denom, minlength=n_towns) / total
        p_c = np.bincount(town, weights=weights * e_c / denom, minlength=n_towns) / total
        p_n = np.maximum(1 - p_r - p_c, 1e-9)
        alpha_r += np.log(target[:, 0] / target[:, 1]) - np.log(np.maximum(p_r, 1e-9) / p_n)
        alpha_c += np.log(target[:, 2] / target[:, 1]) - np.log(np.maximum(p_c, 1e-9) / p_n)
    return alpha_r, alpha_c


def stance_utilities_now(state: ModelState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every household's utilities of resisting, neutrality and cooperating in today's state."""
    sc = state.scenario
    hh = state.hh
    ts = state.town_state
    town = hh.town
    return rules.stance_utilities(
        hh.g_regime,
        hh.g_hts,
        hh.fear,
        hh.displaced,
        ts.coop_base.astype(F32)[town] + hh.intercept_coop,
        ts.resist_base.astype(F32)[town] + hh.intercept_resist,
        ts.protection.astype(F32)[town],
        **choice_weights(sc),
    )


def draw_stances_from_choice(state: ModelState, rng: np.random.Generator) -> None:
    """Initial stances drawn from each household's own calibrated choice probabilities.

    The stance process (a share revising each day by the logit) has, for a fixed state,
    each household's logit probabilities as its stationary distribution. Drawing the
    initial stances from them (rather than independently of grievances) starts the
    households already sorted, so no sorting transient moves protest or peers in the
    first weeks.
    """
    u_r, u_n, u_c = stance_utilities_now(state)
    state.hh.stance[:] = rules.choose_stance(u_r, u_n, u_c, rng.random(len(state.hh), dtype=F32))


def _resist_probability(state: ModelState) -> np.ndarray:
    u_r, u_n, u_c = stance_utilities_now(state)
    m = np.maximum(np.maximum(u_r, u_n), u_c)
    e_r = np.exp(u_r - m)
    return (e_r / (e_r + np.exp(u_n - m) + np.exp(u_c - m))).astype(float)


def stationary_protest(
    state: ModelState, threshold_shift: float, p_res: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The protest rule's stationary state for a given threshold shift.

    A household "would protest" if the Epstein rule holds for it were it resisting. Its
    stance is resist with probability p_i (its logit probability), revised at rate r
    (``choice.revision_rate``); while resisting and free it protests and is arrested
    with daily probability ``a_t = hts.repression * P_arrest_t``, then jailed J days
    (``protest.jail_days``), whatever its stance. The stationary share of its time
    spent protesting (a four-state chain: resist or not, free or jailed) is

        x_i = p_i / (1 + a_t J (1 + J r p_i) / (1 + J r)),

    and it is jailed while resisting a share ``y_i = a_t x_i J (1 + J r p_i) / (1 + J r)``,
    while not resisting ``w_i = a_t x_i J - y_i``. The town's protest share
    ``ps_t = sum_i persons_i x_i / P_t`` enters the rule through the peer push and the
    crowd in ``P_arrest``: solved by fixed-point iteration.

    ``p_res`` (each household's resist probability) may be passed when the state has not
    changed, to save recomputing the utilities. Returns ``(ps_t, would mask, x_i, y_i, w_i)``.
    """
    return _ProtestState(state, p_res).solve(threshold_shift)


class _ProtestState:
    """What :func:`stationary_protest` needs that does not depend on the threshold shift.

    The bisection of :func:`calibrate_protest` solves the stationary state two dozen times
    for one model state; this keeps the household arrays it reads, already in the float64
    the arithmetic promotes them to, so each solve repeats only the fixed-point iteration
    (with the same operations in the same order: the same numbers to the last bit).
    """

    def __init__(self, state: ModelState, p_res: np.ndarray | None = None):
        sc = state.scenario
        hh = state.hh
        ts = state.town_state
        pr = self.pr = sc.protest
        self.n = n = ts.n
        self.size = len(hh)
        self.p_res_all = _resist_probability(state) if p_res is None else p_res
        self.security = sc.hts.security_per_control * ts.control * state.hts.strength * ts.open
        self.present = np.maximum(np.bincount(hh.town, weights=hh.persons, minlength=n), 1e-12)
        self.drive_all = hh.g_hts * F32(1.0 - state.hts.legitimacy) - hh.risk_aversion * hh.fear * F32(
            pr.fear_risk_weight * sc.mechanisms.suppression
        )
        self.threshold = hh.threshold
        self.able = (hh.persons > 0) & ts.open[hh.town]
        self.town_all, self.persons_all, self.risk_all = hh.town, hh.persons.astype(float), hh.risk_aversion
        self.repression = sc.hts.repression
        self.jail, self.r = float(pr.jail_days), sc.choice.revision_rate
        # float64 copies once for all solves: the mixed-precision expressions promote to exactly these values
        self.drive64, self.risk64 = self.drive_all.astype(float), self.risk_all.astype(float)
        self.spread_all = 1 + self.jail * self.r * self.p_res_all  # the (1 + J r p_i) of the jailed share

    def solve(
        self, threshold_shift: float, full: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The stationary state at ``threshold_shift`` (see :func:`stationary_protest`).

        With ``full`` False only the town shares ``ps_t`` are returned (the household arrays are None).
        """
        pr, n, jail = self.pr, self.n, self.jail
        threshold_all = np.maximum(self.threshold + F32(threshold_shift), 0)
        # Only households that would protest with the largest peer push and no risk can ever qualify.
        mask = self.able & (self.drive_all + F32(pr.peer_weight) > threshold_all)
        town, persons = self.town_all[mask], self.persons_all[mask]
        p_res = self.p_res_all[mask]
        counts = np.bincount(town, minlength=n)
        by_town = bool(np.all(town[1:] >= town[:-1]))
        drive, risk, spread = self.drive64[mask], self.risk64[mask], self.spread_all[mask]
        threshold = threshold_all[mask].astype(float)
        ps = np.zeros(n)
        # The map ps -> new is monotone (more protest: more peer push, a lower arrest risk, so more
        # protest), so the iteration from no protest rises to its least fixed point, the quiet
        # ordinary day, without overshooting.
        if by_town and len(town) >= _SEGMENT_MIN * n:
            iterate = _SegmentIteration(self, drive, threshold, risk, spread, p_res, persons, counts)
        else:
            iterate = _VectorIteration(self, drive, threshold, risk, spread, p_res, persons, town, counts, by_town)
        for _ in range(60):
            p_arrest = rules.arrest_probability(
                self.security, ps, arrest_constant=pr.arrest_constant, crowd_scale=pr.crowd_scale
            )
            new = iterate(ps, p_arrest)
            done = np.max(np.abs(new - ps)) < 1e-7  # in share units: 0.00001% of a town
            ps = new
            if done:
                break
        if not full:
            return ps, None, None, None, None
        cand = mask.nonzero()[0]
        would = iterate.would
        x, k = iterate.outputs()
        a = (self.repression * p_arrest)[town]
        out_would = np.zeros(self.size, bool)
        out_would[cand] = would
        out = [np.zeros(self.size) for _ in range(3)]
        y = x * k
        for arr, v in zip(out, (x, y, np.maximum(np.where(would, a * x * jail - y, 0.0), 0.0)), strict=True):
            arr[cand] = v
        return ps, out_would, out[0], out[1], out[2]


# Towns hold on average at least this many candidate households when the stationary iteration runs
# town by town (each town's slice stays in cache); below it, one pass over all households is cheaper.
_SEGMENT_MIN = 2000


class _VectorIteration:
    """One step ps -> new of the stationary iteration over all candidate households at once.

    ``x`` and ``k`` are computed only for the households that would protest: elsewhere ``x`` is 0
    (and so is ``y = x k``, whatever ``k``), and adding their zeros to a town's sum changes nothing.
    """

    def __init__(self, ps_state, drive, threshold, risk, spread, p_res, persons, town, counts, by_town):
        self.s = ps_state
        self.drive, self.threshold, self.risk, self.spread = drive, threshold, risk, spread
        self.p_res, self.persons, self.town, self.counts, self.by_town = p_res, persons, town, counts, by_town

    def spread_out(self, per_town: np.ndarray) -> np.ndarray:
        # Per-town values reach the households by np.repeat when they are stored by town (as at
        # the start of a run, before anyone moved): the same values, without an indexed gather.
        return np.repeat(per_town, self.counts) if self.by_town else per_town[self.town]

    def __call__(self, ps: np.ndarray, p_arrest: np.ndarray) -> np.ndarray:
        s, jail, r = self.s, self.s.jail, self.s.r
        self.would = would = (
            self.drive + self.spread_out(s.pr.peer_weight * ps) - self.risk * self.spread_out(p_arrest) > self.threshold
        )
        idx = would.nonzero()[0]
        town = self.town[idx]
        k = (s.repression * p_arrest * jail)[town] * self.spread[idx] / (1 + jail * r)
        x = self.p_res[idx] / (1 + k)
        self.k = self.x = None
        self._sub = (idx, k, x)
        return np.bincount(town, weights=self.persons[idx] * x, minlength=s.n) / s.present

    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """``x`` and ``k`` of the last step, over all candidates (0 where it would not protest)."""
        idx, k_sub, x_sub = self._sub
        x, k = np.zeros(len(self.drive)), np.zeros(len(self.drive))
        x[idx], k[idx] = x_sub, k_sub
        return x, k


class _SegmentIteration:
    """The same step town by town over households stored by town, the same operations in the same order.

    Each town's iteration depends on its own share only, so a town whose share came back unchanged
    (to the last bit) is at its fixed point and is not computed again: its households keep their
    values, which a new computation would repeat. Sums run in household order within each town, as
    ``np.bincount`` sums them: the same numbers to the last bit. As in :class:`_VectorIteration`,
    ``x`` and ``k`` are computed only where the household would protest.
    """

    def __init__(self, ps_state, drive, threshold, risk, spread, p_res, persons, counts):
        self.s = ps_state
        self.drive, self.threshold, self.risk, self.spread = drive, threshold, risk, spread
        self.p_res, self.persons = p_res, persons
        ends = np.cumsum(counts)
        self.segments = [(t, slice(int(e - c), int(e))) for t, (c, e) in enumerate(zip(counts, ends, strict=True)) if c]
        size = len(drive)
        self.would = np.zeros(size, bool)
        self.buf, self.buf2 = np.empty(size), np.empty(size)
        self.sub: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.last_ps: np.ndarray | None = None
        self.last_new: np.ndarray | None = None

    def __call__(self, ps: np.ndarray, p_arrest: np.ndarray) -> np.ndarray:
        s, jail, r = self.s, self.s.jail, self.s.r
        peer = s.pr.peer_weight * ps
        kt = s.repression * p_arrest * jail
        jr = 1 + jail * r
        new = np.zeros(s.n) / s.present  # 0 / present, as for a town without candidates
        fixed = None if self.last_ps is None else self.last_new == self.last_ps
        for t, seg in self.segments:
            if fixed is not None and fixed[t] and ps[t] == self.last_new[t]:
                new[t] = self.last_new[t]
                continue
            b, b2, w = self.buf[seg], self.buf2[seg], self.would[seg]
            np.add(self.drive[seg], peer[t], out=b)
            np.multiply(self.risk[seg], p_arrest[t], out=b2)
            np.subtract(b, b2, out=b)
            np.greater(b, self.threshold[seg], out=w)
            idx = w.nonzero()[0]
            k = kt[t] * self.spread[seg][idx] / jr
            x = self.p_res[seg][idx] / (1 + k)
            self.sub[t] = (seg.start + idx, k, x)
            new[t] = np.bincount(np.zeros(len(idx), np.intp), weights=self.persons[seg][idx] * x, minlength=1)[0]
            new[t] /= s.present[t]
        self.last_ps, self.last_new = ps, new
        return new

    def outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """``x`` and ``k`` of the last step, over all candidates (0 where it would not protest)."""
        x, k = np.zeros(len(self.drive)), np.zeros(len(self.drive))
        for idx, k_sub, x_sub in self.sub.values():
            x[idx], k[idx] = x_sub, k_sub
        return x, k


def calibrate_protest(state: ModelState, rng: np.random.Generator) -> None:
    """Solve the threshold shift for the ordinary-day protest share and start protest stationary.

    The shift c (added to every T_i) is found by bisection so that the persons-weighted
    stationary protest share of the resisting towns (all towns if none is labelled
    resisting) is ``protest.ordinary_share``: the rule is matched to the recorded order
    of magnitude of ordinary protest (hundreds to a few thousand people in towns of
    10,000-80,000), not to any outcome. Households that would protest then start in
    their stationary proportions: in jail with probability ``a_t J / (1 + a_t J)`` (days
    left uniform over 1..J), protesting otherwise, so day 0 has no spike.
    """
    sc = state.scenario
    hh = state.hh
    ts = state.town_state
    pr = sc.protest
    res = state.resisting if state.resisting.any() else np.ones(ts.n, bool)
    present = np.bincount(hh.town, weights=hh.persons, minlength=ts.n)

    p_res = _resist_probability(state)
    protest = _ProtestState(state, p_res)

    def share(c: float) -> float:
        ps = protest.solve(c, full=False)[0]
        return float((ps * present)[res].sum() / max(present[res].sum(), 1e-12))

    lo, hi = -1.5, 1.5  # the share falls as the shift rises (net drives lie within [-1, 1])
    for _ in range(24):  # to 2e-7 in threshold units
        mid = 0.5 * (lo + hi)
        if share(mid) > pr.ordinary_share:
            lo = mid
        else:
            hi = mid
    shift = 0.5 * (lo + hi)
    hh.threshold[:] = np.maximum(hh.threshold + F32(shift), 0)
    _, would, _, y, w = stationary_protest(state, 0.0, p_res)
    # Start each would-be protester in its stationary state given its drawn stance.
    resisting = hh.stance == RESIST
    p = p_res
    p_jail = np.where(resisting, y / np.maximum(p, 1e-12), w / np.maximum(1 - p, 1e-12))
    u = rng.random((2, len(hh)))
    jailed = would & (u[0] < p_jail)
    hh.jailed_until[jailed] = 1 + (u[1, jailed] * max(pr.jail_days, 1)).astype(np.int32)
    hh.protesting[:] = would & resisting & ~jailed
    state.threshold_shift = shift

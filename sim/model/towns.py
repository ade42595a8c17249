"""Town-level state and its daily updates, as functions of the shared :class:`~sim.model.state.ModelState`.

The initial town arrays (:func:`init_town_state`), the harm memories and the regime
threat after the strikes (:func:`after_strikes`), front proximity, HTS's own coercion
(:func:`hts_harm`, what households feel and rivals see as predation), a change of
controller (:func:`change_controller`) and the town parts of the household utilities
(:func:`prepare_household_terms`). The actors and the household step call them; the
schedule is :meth:`sim.model.model.AllegianceModel.step`.
"""

from __future__ import annotations

import numpy as np

from sim.model import control, rules
from sim.model.control import CONTESTED as HELD_CONTESTED
from sim.model.control import GROUP0, HTS_HOLDS, LOCAL, NO_SIDE, REGIME_HOLDS
from sim.model.state import ModelState, TownState
from sim.scenario.geography import Geography
from sim.scenario.schema import FRONT_STATUS, Scenario

# Front status codes index FRONT_STATUS (derived from the schema).
OPPOSITION, CONTESTED, REGIME = (FRONT_STATUS.index(s) for s in ("opposition", "contested", "regime"))


def init_town_state(scenario: Scenario) -> TownState:
    """The towns' arrays at the start, from the scenario (``persons0`` and ``capacity`` are set
    once the households are drawn)."""
    sc = scenario
    towns = sc.towns
    n = len(towns)
    g = len(sc.rivals.groups)
    presence = np.zeros((n, g))
    names = [t.name for t in towns]
    for j, grp in enumerate(sc.rivals.groups):
        for town, p in grp.towns.items():
            presence[names.index(town), j] = p
    arr = lambda attr: np.array([float(getattr(t, attr)) for t in towns])  # noqa: E731
    front = np.array([FRONT_STATUS.index(t.front) for t in towns], dtype=np.int8)
    rep = np.array([t.reputation if t.reputation is not None else float(t.stance == "resisting") for t in towns])
    groups = [grp.name for grp in sc.rivals.groups]
    controller = np.array(
        [HTS_HOLDS if t.controller == "hts" else GROUP0 + groups.index(t.controller) for t in towns], dtype=np.int16
    )
    controller[front == REGIME] = REGIME_HOLDS
    z = lambda: np.zeros(n)  # noqa: E731
    return TownState(
        names=names,
        persons0=z(),
        council=arr("council"),
        independent=np.array([t.council_independent for t in towns]) & (front != REGIME),
        control=arr("hts_control"),
        control_standing=arr("hts_control"),
        services=arr("hts_services"),
        damage=z(),
        civil_society=arr("civil_society"),
        reputation=rep,
        exposure=z(),
        exposure_eff=z(),
        exposure_hts=z(),
        exposure_hts_eff=z(),
        threat_rate=z(),
        repression=z(),
        takeover_memory=z(),
        retaliation=z(),
        front=front,
        front_proximity=z(),
        capacity=z(),
        border=np.array([t.border for t in towns]),
        rival_presence=presence,
        controller=controller,
        attacker=np.full(n, NO_SIDE, dtype=np.int16),
        defender=np.full(n, NO_SIDE, dtype=np.int16),
        advance=z(),
        protest_memory=z(),
        holder_services=z(),
        open=front != REGIME,
        present=z(),
        hosted=z(),
        coop_share=z(),
        resist_share=z(),
        protest_share=z(),
        security=z(),
        p_arrest=z(),
        threat=z(),
        protection=z(),
        coop_base=z(),
        resist_base=z(),
        rival_presence_total=np.clip(presence.sum(axis=1), 0, 1),
        rival_guard=z(),
        hts_holds=controller == HTS_HOLDS,
        common_threat=z(),
        predation=z(),
        strikes_today=z(),
        killed_today=z(),
        strikes_cum=z(),
        killed_home_cum=z(),
        arrests_today=z(),
    )


def neighbour_weights(scenario: Scenario, geo: Geography) -> np.ndarray:
    """How much of each other town's harm a town feels: ``w * exp(-distance / range)``, 0 on the diagonal."""
    ex = scenario.exposure
    w = ex.neighbour_weight * np.exp(-geo.distance_km / ex.neighbour_range_km)
    np.fill_diagonal(w, 0.0)
    return w


def nearest_matrix(geo: Geography) -> np.ndarray:
    """Each town's other towns, nearest first (each row ends with the town itself)."""
    d = geo.distance_km.copy()
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)


def zero_balance(n: int) -> dict[str, float | np.ndarray]:
    """Baseline balances that change nothing (``baseline.stationary: false``), for ``n`` towns."""
    return {
        "resources": 0.0,
        "legitimacy": 0.0,
        "services": np.zeros(n),
        "control": np.zeros(n),
        "council": np.zeros(n),
        "takeover_pressure": np.zeros(n),
        "hts_harm": np.zeros(n),
        "hts_fighters": 0.0,
        "rival_fighters": 0.0,
    }


def hts_harm(state: ModelState) -> np.ndarray:
    """HTS's own coercion felt in each town today (before the home-team discount and standing level).

    ``repression_weight * repression_t + takeover_weight * takeover_memory_t + tax_weight * C_t``
    (taxes only where HTS holds the open town). Households feel it (7.8.1) and rival groups
    see it as predation (7.6).
    """
    ts = state.town_state
    g = state.scenario.grievance
    return (
        g.repression_weight * ts.repression
        + g.takeover_weight * ts.takeover_memory
        + g.tax_weight * ts.control * (ts.open & ts.hts_holds)  # HTS taxes only where it holds the town
    )


def hts_presence(ts: TownState) -> np.ndarray:
    """HTS's presence in each town, 0-1: its control where it holds the town, else 0.

    What a strike can be blamed on HTS for drawing (7.8.1): nothing in a town held by a
    rival group or by no armed group.
    """
    return ts.control * ts.hts_holds


def front_line_proximity(state: ModelState) -> np.ndarray:
    """Closeness to the front line, 0-1: ``exp(-distance to the nearest contested or regime-held town / range)``.

    Computed whether or not the ground advance is enabled (frontline targeting needs the
    line's position even when it does not move).
    """
    ts = state.town_state
    front = ts.front != OPPOSITION
    if not front.any():
        return np.zeros(ts.n)
    d = state.geo.distance_km[:, front].min(axis=1)
    return np.exp(-d / state.scenario.front.range_km)


def update_front_proximity(state: ModelState) -> None:
    """Front proximity: 1 in contested or regime-held towns, decaying with distance."""
    ts = state.town_state
    ts.open = ts.front != REGIME
    if not state.scenario.front.enabled:
        ts.front_proximity[:] = 0.0
        return
    ts.front_proximity = front_line_proximity(state)


def after_strikes(state: ModelState) -> None:
    """Update harm memories and the regime threat after the day's strikes."""
    ts = state.town_state
    ex = state.scenario.exposure
    present = np.maximum(ts.present, 1e-9)
    harm = ex.casualty_weight * ts.killed_today / present * 1000.0 + ex.strike_weight * ts.strikes_today
    ts.exposure = ts.exposure * state.exp_decay + harm
    ts.exposure_eff = ts.exposure + state.neighbour @ ts.exposure
    # The same memory, each struck town's harm weighted by HTS's presence there (7.2, 7.8.1).
    ts.exposure_hts = ts.exposure_hts * state.exp_decay + harm * hts_presence(ts)
    ts.exposure_hts_eff = ts.exposure_hts + state.neighbour @ ts.exposure_hts
    # Protection's own, shorter memory of the threat: the mean daily harm in and near the town (7.7).
    keep = rules.half_life_decay(state.scenario.choice.protection_half_life_days)
    ts.threat_rate = ts.threat_rate * keep + (1 - keep) * (harm + state.neighbour @ harm)
    state.hh.harm *= np.float32(state.exp_decay)
    state.hh.harm_hts *= np.float32(state.exp_decay)
    ts.advance *= state.exp_decay
    update_threat(state)
    ts.repression *= state.memory_decay
    ts.takeover_memory *= state.memory_decay


def update_threat(state: ModelState) -> None:
    """Regime threat per town: recent harm (in units of the safety scale) and front proximity."""
    ts = state.town_state
    sc = state.scenario
    ts.threat = -np.expm1(-(ts.exposure_eff / sc.flight.safety_harm_scale + ts.front_proximity))
    ts.common_threat = control.common_threat(
        ts.exposure_eff, ts.advance, sc.flight.safety_harm_scale, sc.rivals.advance_weight
    )


def update_predation(state: ModelState) -> None:
    """HTS predation per town as rival groups see it: the HTS-attributed harm of arrests,
    council takeovers and taxes, weighted as households weigh it (ODD 7.6)."""
    state.town_state.predation = hts_harm(state)


def change_controller(state: ModelState, town: int, code: int, cause: str) -> None:
    """Hand ``town`` to the controller with code ``code``; record a ``control_change`` event."""
    ts = state.town_state
    old = int(ts.controller[town])
    if old == code:
        return
    ts.controller[town] = code
    ts.hts_holds[town] = code == HTS_HOLDS
    if code != old and old >= GROUP0:  # a rival holder's services go with it
        ts.holder_services[town] = 0.0
    if code == LOCAL:  # the armed groups leave: HTS's hold loosens and its services stop
        ts.control[town] *= 1 - state.scenario.rivals.capture_control_loss
        ts.services[town] = 0.0
    if code != HELD_CONTESTED:
        ts.attacker[town] = ts.defender[town] = NO_SIDE
    ts.control_standing[town] = ts.control[town]  # HTS control returns to its level after the change (7.4)
    # A change of hands moves the town out of its standing state: its baseline balances end.
    for key in ("services", "control", "council", "takeover_pressure"):
        state.balance[key][town] = 0.0
    state.control_changes += 1
    state.dest_probs = None
    state.record_event(
        "control_change",
        town,
        note=cause,
        controller_from=state.controller_names[old],
        controller_to=state.controller_names[code],
    )


def holder_governance(
    state: ModelState,
    hold: np.ndarray,
    rule: np.ndarray,
    services: np.ndarray,
    resources: float,
    *,
    income_per_hold: float,
    service_rate: float,
    service_decay: float,
    service_cost: float,
    funding_half: float,
) -> tuple[float, np.ndarray]:
    """A holder's taxes and services (HTS's, or a rival group's where it holds a town).

    ``income = i * sum_t h_t * N_t/1000 * rule_t``, ``cost = c * sum_t S_t * N_t/1000 * rule_t``,
    ``dS_t = r * h_t * R/(R + R_half) * (1 - S_t) * rule_t - delta * S_t``, with ``h_t`` the
    holder's hold on the town (HTS control, a rival's presence), ``rule_t`` whether it holds the
    open town and ``N_t`` the persons present. Returns ``(income - cost, dS)``.
    """
    ts = state.town_state
    per_k = ts.present * state.weight / 1000.0
    income = income_per_hold * float((hold * per_k * rule).sum())
    cost = service_cost * float((services * per_k * rule).sum())
    funding = resources / (resources + funding_half)
    return income - cost, service_rate * hold * funding * (1 - services) * rule - service_decay * services


def nearest_open_town(state: ModelState, town: int) -> int:
    """Nearest town not held by the regime (-1 if none)."""
    open_ = state.town_state.open
    for j in state.nearest[town]:
        if open_[j]:
            return int(j)
    return -1


def prepare_household_terms(state: ModelState) -> None:
    """Town-level parts of the household utilities, computed once per town per day."""
    ts = state.town_state
    sc = state.scenario
    ch = sc.choice
    mech = sc.mechanisms
    hts = state.hts
    groups = state.rival_groups
    align = np.array([g.alignment for g in groups])
    rel = np.array([g.fighters for g in groups]) / hts.reference_fighters
    rival_support = ts.rival_presence @ (np.maximum(align, 0) * rel) if len(align) else 0.0
    # HTS protects, serves and controls where it holds the town; a rival holder backs resistance.
    holds = ts.hts_holds
    rival_held = ts.controller >= GROUP0
    strength = np.minimum(ts.control * holds * hts.strength + rival_support, sc.hts.strength_cap)
    # Protection as households value it, local and current: the recent threat in and near the
    # town (its own memory, half-life choice.protection_half_life_days), HTS's presence there
    # and its retaliation for strikes on it or its neighbours; saturating, so at most 1 however
    # strong the rally (7.7). Zero when the rally mechanism is off.
    recent = ts.threat_rate / (1 - state.exp_decay)  # the exposure a steady campaign at this rate builds
    threat_now = -np.expm1(-(recent / sc.flight.safety_harm_scale + ts.front_proximity))
    pull = mech.rally * threat_now * strength * (1 + sc.hts.rally_protection_boost * ts.retaliation) * ts.open
    ts.protection = -np.expm1(-pull)
    # Town terms only: the intercepts are the household's own (HouseholdArrays.intercept_*).
    ts.coop_base = (
        ch.services_weight * ts.services
        + mech.institutions * ch.service_gap_weight * ts.services * ts.damage
        + mech.control * ch.control_weight * ts.control * holds
        + ch.peer_weight * ts.coop_share
    )
    ts.resist_base = (
        ch.council_weight * ts.council * ts.independent
        + ch.peer_weight * ts.resist_share
        + mech.control * sc.rivals.rule_weight * rival_held
    )
    guard = ts.rival_presence @ (1 - np.maximum(align, 0)) if len(align) else np.zeros(ts.n)
    ts.rival_guard = sc.rivals.council_shield * np.clip(guard, 0, 1)

"""Mesa agents: towns, households, HTS, rival groups, the air campaign, the front, civil society.

Towns and households are views onto the model's arrays (town state in
:class:`TownState`, household state in :class:`sim.model.households.HouseholdArrays`),
so their rules run vectorized; the collective actors keep their own state and
act on the town arrays once a day in the order of ``AllegianceModel.step``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import mesa
import numpy as np
from mesa.discrete_space import FixedAgent

from sim.model import rules
from sim.model.rules import STANCES
from sim.scenario.schema import FRONT_STATUS

if TYPE_CHECKING:
    from sim.model.model import AllegianceModel
    from sim.scenario.schema import RivalGroupConfig

# Front status codes index FRONT_STATUS (derived from the schema).
OPPOSITION, CONTESTED, REGIME = (FRONT_STATUS.index(s) for s in ("opposition", "contested", "regime"))


@dataclass
class TownState:
    """Per-town state, one entry per town (structure of arrays, float64)."""

    names: list[str]
    persons0: np.ndarray  # model persons living there at the start
    council: np.ndarray  # independent council legitimacy 0-1
    independent: np.ndarray  # bool: council still independent of HTS
    control: np.ndarray  # HTS control 0-1
    services: np.ndarray  # HTS services 0-1
    damage: np.ndarray  # physical damage to market and council 0-1
    civil_society: np.ndarray  # civil society investment 0-1
    reputation: np.ndarray  # resisting reputation visible to the regime (decaying memory of protest)
    exposure: np.ndarray  # E_t: own harm memory
    exposure_eff: np.ndarray  # E_t plus distance-weighted neighbours' harm
    repression: np.ndarray  # decaying memory of arrests per household
    takeover_memory: np.ndarray  # decaying memory of council takeovers
    retaliation: np.ndarray  # decaying memory of HTS retaliation for strikes on the town and its neighbours
    front: np.ndarray  # int8 OPPOSITION / CONTESTED / REGIME
    front_proximity: np.ndarray  # 0-1
    capacity: np.ndarray  # model persons it can host as displaced
    border: np.ndarray  # bool
    rival_presence: np.ndarray  # (towns, groups) presence 0-1
    # derived each day
    open: np.ndarray  # bool: not regime-held
    present: np.ndarray  # model persons present
    hosted: np.ndarray  # displaced model persons present
    coop_share: np.ndarray
    resist_share: np.ndarray
    protest_share: np.ndarray
    security: np.ndarray
    p_arrest: np.ndarray
    threat: np.ndarray
    protection: np.ndarray
    coop_base: np.ndarray  # town part of U_coop
    resist_base: np.ndarray  # town part of U_resist
    rival_presence_total: np.ndarray
    rival_guard: np.ndarray  # how much distanced rivals shield the council
    # today's and cumulative tallies
    strikes_today: np.ndarray
    killed_today: np.ndarray  # model persons killed in the town today
    strikes_cum: np.ndarray
    killed_home_cum: np.ndarray  # model persons killed whose home is the town
    arrests_today: np.ndarray

    @property
    def n(self) -> int:
        """Number of towns."""
        return len(self.names)


class Town(FixedAgent):
    """A town on a grid cell: a view onto row ``index`` of the model's :class:`TownState`."""

    def __init__(self, model: AllegianceModel, index: int, cell: mesa.discrete_space.Cell, stance: str):
        super().__init__(model)
        self.index = index
        self.name = model.town_state.names[index]
        self.initial_stance = stance
        self.cell = cell

    def _get(self, attr: str) -> float:
        return float(getattr(self.model.town_state, attr)[self.index])

    @property
    def council(self) -> float:
        """Independent council legitimacy (0-1)."""
        return self._get("council")

    @property
    def hts_control(self) -> float:
        """HTS control (0-1)."""
        return self._get("control")

    @property
    def cooperation(self) -> float:
        """Share of persons present cooperating with HTS."""
        return self._get("coop_share")

    @property
    def front_status(self) -> str:
        """'opposition', 'contested' or 'regime'."""
        return FRONT_STATUS[int(self.model.town_state.front[self.index])]


class Household(mesa.Agent):
    """A civilian household: a view onto row ``index`` of the household arrays."""

    def __init__(self, model: AllegianceModel, index: int):
        super().__init__(model)
        self.index = index

    @property
    def stance(self) -> str:
        """'resist', 'neutral' or 'cooperate'."""
        return STANCES[int(self.model.hh.stance[self.index])]

    @property
    def home_town(self) -> str:
        """Name of the town it lived in at the start."""
        return self.model.town_state.names[int(self.model.hh.home[self.index])]

    @property
    def current_town(self) -> str:
        """Name of the town it is in now."""
        return self.model.town_state.names[int(self.model.hh.town[self.index])]

    def __getattr__(self, name: str):
        # Any other state variable (g_regime, fear, displaced, ...) read from the arrays.
        hh = self.__dict__.get("model") and self.model.hh
        if hh is not None and name in hh.__dataclass_fields__:
            return getattr(hh, name)[self.index].item()
        raise AttributeError(name)


class AirCampaign(mesa.Agent):
    """Regime and Russian air campaign: background sorties by policy plus dated strikes."""

    def __init__(self, model: AllegianceModel):
        super().__init__(model)
        cfg = model.scenario.air_campaign
        sc = model.scenario
        self.policy = cfg.policy
        self.start_day = sc.day_of(cfg.start) if cfg.start else 0
        self.end_day = sc.day_of(cfg.end) if cfg.end else sc.days
        # Mean background sorties per day: the flat level, then each dated period until the next.
        self.sorties = np.full(sc.days, cfg.sorties_per_day)
        for period in cfg.schedule:
            self.sorties[min(sc.day_of(period), sc.days) :] = period.sorties_per_day
        self.calendar: dict[int, list[tuple[int, int, int | None]]] = {}
        for s in cfg.calendar:
            self.calendar.setdefault(sc.day_of(s), []).append((sc.town_names.index(s.town), s.strikes, s.killed))
        self.stream = model.rng_air
        self.casualty_stream = model.rng_casualties
        self.rep_decay = rules.half_life_decay(cfg.reputation_half_life_days)

    def target_weights(self) -> np.ndarray:
        """Weights over towns under this policy (before sharpness); open, inhabited towns only."""
        ts = self.model.town_state
        eligible = ts.open & (ts.present > 0)
        if self.policy == "random":
            w = np.ones(ts.n)
        elif self.policy == "hts_strongholds":
            w = ts.control.copy()
        elif self.policy == "resisting_towns":
            w = ts.reputation.copy()
        elif self.policy == "frontline":
            w = ts.front_proximity.copy()
        else:
            return np.zeros(ts.n)
        w = np.where(eligible, w**self.model.scenario.air_campaign.targeting_sharpness, 0.0)
        if w.sum() <= 0:  # nothing matches the policy: spread over eligible towns
            w = eligible.astype(float)
        return w / w.sum() if w.sum() > 0 else w

    def step(self) -> None:
        """Step 1: pick targets, resolve strikes (casualties, damage, fighter losses)."""
        m = self.model
        ts = m.town_state
        cfg = m.scenario.air_campaign
        day = m.day
        ts.strikes_today[:] = 0
        ts.killed_today[:] = 0
        ts.damage *= 1 - cfg.damage_repair_rate
        # Same draws for every policy: the sortie count and the per-sortie uniforms come from
        # this stream only; casualties and victims come from another, so they cannot shift them.
        n_sorties = int(self.stream.poisson(self.sorties[day]))
        u = self.stream.random((n_sorties, 3))
        if self.policy == "none":  # the counterfactual: no air campaign at all, dated strikes included
            m.after_strikes()
            return
        active = self.start_day <= day <= self.end_day and self.policy != "calendar"
        strikes: list[tuple[int, int | None, str]] = []
        if active and n_sorties:
            w = self.target_weights()
            if w.sum() > 0:
                cdf = np.cumsum(w)
                targets = np.minimum(np.searchsorted(cdf, u[:, 0] * cdf[-1], side="right"), ts.n - 1)
                for tgt, u_hit, u_near in zip(targets, u[:, 1], u[:, 2], strict=True):
                    if u_hit < cfg.accuracy:
                        strikes.append((int(tgt), None, self.policy))
                    elif u_near < cfg.miss_neighbour_share:
                        near = m.nearest_open_town(int(tgt))
                        if near >= 0:
                            strikes.append((near, None, self.policy + ":miss"))
        for town, n, killed in self.calendar.get(day, []):
            for k in range(n):
                # A recorded death toll is spread over the day's recorded strikes.
                share = None if killed is None else killed // n + (1 if k < killed % n else 0)
                strikes.append((town, share, "calendar"))
        for town, killed, source in strikes:
            self._resolve(town, killed, source)
        m.after_strikes()

    def _resolve(self, town: int, killed_real: int | None, source: str) -> None:
        m = self.model
        ts = m.town_state
        cfg = m.scenario.air_campaign
        if not ts.open[town]:
            return
        f = m.scenario.households.sample_fraction
        if killed_real is None:
            density = ts.present[town] / max(ts.persons0[town], 1e-9)
            expected = cfg.casualties_per_strike * min(density, cfg.density_cap) * f
            k = int(self.casualty_stream.poisson(expected))
        else:
            x = killed_real * f
            k = int(x) + int(self.casualty_stream.random() < x - int(x))
        killed = m.kill_persons(town, k, self.casualty_stream)
        ts.strikes_today[town] += 1
        ts.strikes_cum[town] += 1
        ts.killed_today[town] += killed
        ts.damage[town] += (1 - ts.damage[town]) * cfg.damage_per_strike
        inst = m.scenario.mechanisms.institutions
        ts.council[town] *= 1 - min(1.0, inst * cfg.council_damage)
        ts.civil_society[town] *= 1 - min(1.0, inst * m.scenario.civil_society.strike_loss)
        m.hts.fighters = max(0.0, m.hts.fighters - m.scenario.hts.fighters_lost_per_strike * ts.control[town])
        m.record_event("strike", town, count=1, persons=killed / f, note=source)


class RegimeFront(mesa.Agent):
    """Regime ground front: dated status changes and an optional generic advance."""

    def __init__(self, model: AllegianceModel):
        super().__init__(model)
        sc = model.scenario
        self.events: dict[int, list[tuple[int, int]]] = {}
        for e in sc.front.events:
            code = CONTESTED if e.status == "contested" else REGIME
            self.events.setdefault(sc.day_of(e), []).append((sc.town_names.index(e.town), code))
        self.stream = model.rng_front

    def step(self) -> None:
        """Step 2: apply today's front changes; towns taken by the regime are emptied."""
        m = self.model
        ts = m.town_state
        cfg = m.scenario.front
        if not cfg.enabled:
            return
        changes = list(self.events.get(m.day, []))
        contested = np.flatnonzero(ts.front == CONTESTED)
        u = self.stream.random(ts.n)
        if cfg.fall_rate > 0:
            for t in contested:
                if u[t] < cfg.fall_rate:
                    changes.append((int(t), REGIME))
                    near = (ts.front == OPPOSITION) & (m.geo.distance_km[t] <= cfg.range_km)
                    changes += [(int(j), CONTESTED) for j in np.flatnonzero(near)]
        for town, code in changes:
            if ts.front[town] >= code:
                continue
            ts.front[town] = code
            m.record_event("front", town, note=FRONT_STATUS[code])
            if code == REGIME:
                m.regime_takes(town)
        m.update_front_proximity()


class HTS(mesa.Agent):
    """Hay'at Tahrir al-Sham: resources, services, council takeovers, repression, retaliation."""

    def __init__(self, model: AllegianceModel):
        super().__init__(model)
        cfg = model.scenario.hts
        self.fighters = float(cfg.fighters)
        self.reference_fighters = float(cfg.reference_fighters)
        self.resources = float(cfg.resources)
        self.legitimacy = float(cfg.legitimacy)
        self.recruits = 0.0
        self.takeovers = 0
        self.ret_decay = rules.half_life_decay(cfg.retaliation_half_life_days)
        gb = cfg.governance_body
        self.governance_day = model.scenario.day_of(gb) if gb else None
        self.stream = model.rng_hts
        self.rng_arrest = model.rng_repression

    @property
    def retaliation(self) -> float:
        """Retaliation memory averaged over persons present (the towns' own memories drive protection)."""
        ts = self.model.town_state
        return float((ts.retaliation * ts.present).sum() / max(ts.present.sum(), 1e-9))

    @property
    def strength(self) -> float:
        """Fighters relative to ``hts.reference_fighters``, capped at ``hts.strength_cap``."""
        return min(self.fighters / self.reference_fighters, self.model.scenario.hts.strength_cap)

    def drifts(self) -> dict[str, float | np.ndarray]:
        """Daily changes implied by today's state, before any baseline balance.

        ``resources`` (income - cost), ``services`` and ``control`` per town (before
        ``open`` and the consolidation strength), ``legitimacy``, and the council
        ``takeover_pressure`` per town (the takeover probability without its rate).
        The same expressions give the balances of a stationary start
        (:meth:`AllegianceModel.balance_baseline`), so the two cannot drift apart.
        """
        m = self.model
        ts = m.town_state
        cfg = m.scenario.hts
        per_k = ts.present * m.weight / 1000.0
        income = cfg.income_per_control * float((ts.control * per_k * ts.open).sum())
        cost = cfg.service_cost * float((ts.services * per_k * ts.open).sum())
        funding = self.resources / (self.resources + cfg.funding_half)
        gov_coop = float((ts.coop_share * ts.present).sum() / max(ts.present.sum(), 1e-9))
        return {
            "resources": income - cost,
            "services": cfg.service_rate * ts.control * funding * (1 - ts.services) - cfg.service_decay * ts.services,
            "control": cfg.consolidation_rate * ts.coop_share * (1 - ts.control)
            - cfg.protest_erosion * ts.protest_share * ts.control,
            "legitimacy": cfg.legitimacy_adjust * (gov_coop - self.legitimacy),
            "takeover_pressure": ts.control
            * (1 - ts.council)
            * np.exp(-cfg.protest_shield * ts.protest_share)
            * (1 - ts.rival_guard),
        }

    def step(self) -> None:
        """Step 3: finance, services, control, council takeovers, repression, retaliation, legitimacy.

        Each process moves by its drift minus its baseline balance (zero unless
        ``baseline.stationary``), so the initial state is a fixed point without shocks.
        """
        m = self.model
        ts = m.town_state
        cfg = m.scenario.hts
        bal = m.balance
        d = self.drifts()
        self.resources = max(0.0, self.resources + d["resources"] - bal["resources"])
        ts.services += (d["services"] - bal["services"]) * ts.open
        np.clip(ts.services, 0, 1, out=ts.services)
        ts.control += m.scenario.mechanisms.consolidation * (d["control"] - bal["control"]) * ts.open
        np.clip(ts.control, 0, 1, out=ts.control)
        self._takeovers(cfg, d["takeover_pressure"] - bal["takeover_pressure"])
        self._repress(cfg)
        # Retaliation is local: for strikes on the town and (distance-weighted) on its neighbours.
        struck = ts.strikes_today + m.neighbour @ ts.strikes_today
        ts.retaliation = ts.retaliation * self.ret_decay + cfg.retaliation_rate * struck
        self._attack_rivals(cfg)
        self.legitimacy += d["legitimacy"] - bal["legitimacy"]

    def _takeovers(self, cfg, pressure: np.ndarray) -> None:
        """Council takeovers with probability ``rate * m_gov * pressure`` (pressure above its standing level)."""
        m = self.model
        ts = m.town_state
        mult = 1.0
        if self.governance_day is not None and m.day >= self.governance_day:
            mult = cfg.governance_body.takeover_multiplier
        p = cfg.takeover_rate * mult * np.maximum(pressure, 0.0)
        u = self.stream.random(ts.n)
        taken = np.flatnonzero((u < p) & ts.independent & ts.open)
        for t in taken:
            ts.independent[t] = False
            ts.council[t] *= 1 - cfg.takeover_council_loss
            ts.control[t] += cfg.takeover_control_gain * (1 - ts.control[t])
            ts.takeover_memory[t] += 1.0
            ts.civil_society[t] *= 1 - m.scenario.civil_society.takeover_loss
            m.balance["council"][t] = 0.0  # the council leaves its standing balance
            self.takeovers += 1
            m.record_event("council_takeover", int(t))

    def _repress(self, cfg) -> None:
        """Arrest protesters: each with the town's arrest probability times the repression policy."""
        m = self.model
        ts = m.town_state
        hh = m.hh
        ts.arrests_today[:] = 0
        ts.security = cfg.security_per_control * ts.control * self.strength * ts.open
        ts.p_arrest = rules.arrest_probability(
            ts.security,
            ts.protest_share,
            arrest_constant=m.scenario.protest.arrest_constant,
            crowd_scale=m.scenario.protest.crowd_scale,
        )
        protesters = np.flatnonzero(hh.protesting)
        if len(protesters) and cfg.repression > 0:
            p = ts.p_arrest[hh.town[protesters]] * cfg.repression
            arrested = protesters[self.rng_arrest.random(len(protesters)) < p]
            if len(arrested):
                pr = m.scenario.protest
                hh.jailed_until[arrested] = m.day + pr.jail_days
                hh.protesting[arrested] = False
                jump = pr.arrest_grievance * (1 - m.scenario.grievance.home_team_discount)
                hh.g_hts[arrested] += (1 - hh.g_hts[arrested]) * np.float32(jump)
                ts.arrests_today[:] = np.bincount(hh.town[arrested], minlength=ts.n)
                arrested_persons = np.bincount(hh.town[arrested], weights=hh.persons[arrested], minlength=ts.n)
                households = np.maximum(ts.present / m.unit_size, 1.0)
                ts.repression += ts.arrests_today / households
                for t in np.flatnonzero(ts.arrests_today):
                    m.record_event(
                        "arrests", int(t), count=int(ts.arrests_today[t]), persons=float(arrested_persons[t]) * m.weight
                    )

    def _attack_rivals(self, cfg) -> None:
        m = self.model
        groups = m.rival_groups
        if not groups or cfg.attack_rivals_rate <= 0:
            return
        if self.stream.random() < cfg.attack_rivals_rate:
            fighters = np.array([g.fighters for g in groups])
            if fighters.sum() <= 0:
                return
            g = groups[int(self.stream.choice(len(groups), p=fighters / fighters.sum()))]
            g.attacked()


class RivalGroup(mesa.Agent):
    """A rival rebel group whose alignment with HTS moves under regime pressure."""

    def __init__(self, model: AllegianceModel, index: int, cfg: RivalGroupConfig):
        super().__init__(model)
        self.index = index
        self.name = cfg.name
        self.fighters = float(cfg.fighters)
        self.alignment = float(cfg.alignment)
        self.recruits = 0.0

    def step(self) -> None:
        """Step 4: regime pressure (threat where present) pulls alignment toward HTS."""
        m = self.model
        ts = m.town_state
        presence = ts.rival_presence[:, self.index]
        if presence.sum() > 0:
            pressure = float((presence * ts.threat).sum() / presence.sum())
            self.alignment += m.scenario.rivals.pressure_rate * pressure * (1 - self.alignment)

    def attacked(self) -> None:
        """HTS attacks the group: fighters lost, alignment drops, grievance where present."""
        m = self.model
        cfg = m.scenario.rivals
        self.fighters *= 1 - cfg.attack_fighter_loss
        self.alignment = max(-1.0, self.alignment - cfg.attack_penalty)
        m.town_state.takeover_memory += cfg.attack_grievance * m.town_state.rival_presence[:, self.index]
        m.record_event("hts_attack_rival", -1, note=self.name)


class CivilSociety(mesa.Agent):
    """Civil society: investment raises the legitimacy of independent councils."""

    def drift(self) -> np.ndarray:
        """Daily change of council legitimacy implied by today's state, before any baseline balance."""
        m = self.model
        ts = m.town_state
        cfg = m.scenario.civil_society
        gain = cfg.council_rate * ts.civil_society * (ts.independent & ts.open)
        return gain * (1 - ts.council) - cfg.council_decay * ts.council

    def step(self) -> None:
        """Step 3b: councils gain legitimacy where civil society works; all decay slowly."""
        m = self.model
        ts = m.town_state
        cfg = m.scenario.civil_society
        working = ts.independent & ts.open
        ts.civil_society += cfg.recovery_rate * (m.civil_society0 - ts.civil_society) * working
        ts.council += self.drift() - m.balance["council"]
        np.clip(ts.council, 0, 1, out=ts.council)

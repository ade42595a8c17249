"""Mesa agents: towns, households, HTS, rival groups, the air campaign, the front, civil society.

Every agent receives the shared :class:`~sim.model.state.ModelState` (``self.state``) besides
its Mesa model. Towns and households are views onto its arrays (town state in
:class:`~sim.model.state.TownState`, household state in
:class:`~sim.model.state.HouseholdArrays`), so their rules run vectorized; the collective
actors keep their own state and act on the town arrays once a day in the order of
``AllegianceModel.step``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np
from mesa.discrete_space import FixedAgent

from sim.model import control, rules, towns
from sim.model.control import CONTESTED as HELD_CONTESTED
from sim.model.control import GROUP0, HTS_HOLDS, LOCAL, REGIME_HOLDS
from sim.model.households import flight, kill_persons
from sim.model.rules import STANCES
from sim.model.state import ModelState, TownState
from sim.model.towns import CONTESTED, OPPOSITION, REGIME
from sim.scenario.schema import FRONT_STATUS

if TYPE_CHECKING:
    from sim.scenario.schema import RivalGroupConfig

__all__ = [
    "CONTESTED",
    "FRONT_STATUS",
    "HTS",
    "OPPOSITION",
    "REGIME",
    "AirCampaign",
    "CivilSociety",
    "Conflict",
    "Household",
    "RegimeFront",
    "RivalGroup",
    "Town",
    "TownState",
]


class Town(FixedAgent):
    """A town on a grid cell: a view onto row ``index`` of the state's :class:`TownState`.

    Its cell is on the model's :attr:`~sim.model.model.AllegianceModel.grid`, which is built
    (and the towns placed on it) the first time either is asked for.
    """

    def __init__(self, model: mesa.Model, state: ModelState, index: int, stance: str):
        super().__init__(model)
        self.state = state
        self.index = index
        self.name = state.town_state.names[index]
        self.initial_stance = stance

    @property
    def cell(self) -> mesa.discrete_space.Cell | None:
        """The town's grid cell."""
        if self._mesa_cell is None:
            self.model.grid  # noqa: B018 - builds the grid and places every town
        return self._mesa_cell

    def place(self, cell: mesa.discrete_space.Cell) -> None:
        """Put the town on ``cell`` (once: towns do not move)."""
        if self._mesa_cell is not None:
            raise ValueError("Cannot move agent in FixedCell")
        self._mesa_cell = cell
        cell.add_agent(self)

    def _get(self, attr: str) -> float:
        return float(getattr(self.state.town_state, attr)[self.index])

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
        return FRONT_STATUS[int(self.state.town_state.front[self.index])]

    @property
    def controller(self) -> str:
        """Who holds the town: 'hts', a rival group's name, 'contested' or 'regime'."""
        return self.state.controller_names[int(self.state.town_state.controller[self.index])]


class Household(mesa.Agent):
    """A civilian household: a view onto row ``index`` of the household arrays."""

    def __init__(self, model: mesa.Model, state: ModelState, index: int):
        super().__init__(model)
        self.state = state
        self.index = index

    @property
    def stance(self) -> str:
        """'resist', 'neutral' or 'cooperate'."""
        return STANCES[int(self.state.hh.stance[self.index])]

    @property
    def home_town(self) -> str:
        """Name of the town it lived in at the start."""
        return self.state.town_state.names[int(self.state.hh.home[self.index])]

    @property
    def current_town(self) -> str:
        """Name of the town it is in now."""
        return self.state.town_state.names[int(self.state.hh.town[self.index])]

    def __getattr__(self, name: str):
        # Any other state variable (g_regime, fear, displaced, ...) read from the arrays.
        state = self.__dict__.get("state")
        hh = state.hh if state is not None else None
        if hh is not None and name in hh.__dataclass_fields__:
            return getattr(hh, name)[self.index].item()
        raise AttributeError(name)


class AirCampaign(mesa.Agent):
    """Regime and Russian air campaign: background sorties by policy plus dated strikes."""

    def __init__(self, model: mesa.Model, state: ModelState):
        super().__init__(model)
        self.state = state
        cfg = state.scenario.air_campaign
        sc = state.scenario
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
        self.stream = state.streams.air
        self.casualty_stream = state.streams.casualties
        self.rep_decay = rules.half_life_decay(cfg.reputation_half_life_days)

    def target_weights(self) -> np.ndarray:
        """Weights over towns under this policy (before sharpness); open, inhabited towns only."""
        ts = self.state.town_state
        eligible = ts.open & (ts.present > 0)
        if self.policy == "random":
            w = np.ones(ts.n)
        elif self.policy == "hts_strongholds":
            w = ts.control.copy()
        elif self.policy == "resisting_towns":
            w = ts.reputation.copy()
        elif self.policy == "frontline":  # the line's position, also when the ground advance is off
            w = towns.front_line_proximity(self.state)
        else:
            return np.zeros(ts.n)
        w = np.where(eligible, w**self.state.scenario.air_campaign.targeting_sharpness, 0.0)
        if w.sum() <= 0:  # nothing matches the policy: spread over eligible towns
            w = eligible.astype(float)
        return w / w.sum() if w.sum() > 0 else w

    def step(self) -> None:
        """Step 1: pick targets, resolve strikes (casualties, damage, fighter losses)."""
        s = self.state
        ts = s.town_state
        cfg = s.scenario.air_campaign
        day = s.day
        ts.strikes_today[:] = 0
        ts.killed_today[:] = 0
        ts.damage *= 1 - cfg.damage_repair_rate
        # Same draws for every policy: the sortie count and the per-sortie uniforms come from
        # this stream only; casualties and victims come from another, so they cannot shift them.
        n_sorties = int(self.stream.poisson(self.sorties[day]))
        u = self.stream.random((n_sorties, 3))
        if self.policy == "none":  # the counterfactual: no air campaign at all, dated strikes included
            towns.after_strikes(s)
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
                        near = towns.nearest_open_town(s, int(tgt))
                        if near >= 0:
                            strikes.append((near, None, self.policy + ":miss"))
        for town, n, killed in self.calendar.get(day, []):
            for k in range(n):
                # A recorded death toll is spread over the day's recorded strikes.
                share = None if killed is None else killed // n + (1 if k < killed % n else 0)
                strikes.append((town, share, "calendar"))
        for town, killed, source in strikes:
            self._resolve(town, killed, source)
        towns.after_strikes(s)

    def _resolve(self, town: int, killed_real: int | None, source: str) -> None:
        s = self.state
        ts = s.town_state
        cfg = s.scenario.air_campaign
        if not ts.open[town]:
            return
        f = s.scenario.households.sample_fraction
        if killed_real is None:
            density = ts.present[town] / max(ts.persons0[town], 1e-9)
            expected = cfg.casualties_per_strike * min(density, cfg.density_cap) * f
            k = int(self.casualty_stream.poisson(expected))
        else:
            x = killed_real * f
            k = int(x) + int(self.casualty_stream.random() < x - int(x))
        killed = kill_persons(s, town, k, self.casualty_stream)
        ts.strikes_today[town] += 1
        ts.strikes_cum[town] += 1
        ts.killed_today[town] += killed
        ts.damage[town] += (1 - ts.damage[town]) * cfg.damage_per_strike
        inst = s.scenario.mechanisms.institutions
        ts.council[town] *= 1 - min(1.0, inst * cfg.council_damage)
        ts.civil_society[town] *= 1 - min(1.0, inst * s.scenario.civil_society.strike_loss)
        s.hts.fighters = max(0.0, s.hts.fighters - s.scenario.hts.fighters_lost_per_strike * ts.control[town])
        s.record_event("strike", town, count=1, persons=killed / f, note=source)

    def update_reputation(self) -> None:
        """Step 6: the towns' resisting reputation, a decaying memory of protest as the regime sees it."""
        s = self.state
        ts = s.town_state
        decay = self.rep_decay
        signal = np.minimum(1.0, ts.protest_share / s.scenario.air_campaign.reputation_protest_share)
        ts.reputation = np.where(ts.open, ts.reputation * decay + (1 - decay) * signal, 0.0)


class RegimeFront(mesa.Agent):
    """Regime ground front: dated status changes and an optional generic advance."""

    def __init__(self, model: mesa.Model, state: ModelState):
        super().__init__(model)
        self.state = state
        sc = state.scenario
        self.events: dict[int, list[tuple[int, int]]] = {}
        for e in sc.front.events:
            code = CONTESTED if e.status == "contested" else REGIME
            self.events.setdefault(sc.day_of(e), []).append((sc.town_names.index(e.town), code))
        self.stream = state.streams.front

    def step(self) -> None:
        """Step 2: towns the regime holds empty a little more; then today's front changes."""
        s = self.state
        ts = s.town_state
        cfg = s.scenario.front
        if not cfg.enabled:
            return
        for town in (ts.front == REGIME).nonzero()[0]:
            flight(s, fallen_town=int(town))  # those still in a taken town leave at flight.capture_rate
        changes = list(self.events.get(s.day, []))
        contested = (ts.front == CONTESTED).nonzero()[0]
        u = self.stream.random(ts.n)
        if cfg.fall_rate > 0:
            for t in contested:
                if u[t] < cfg.fall_rate:
                    changes.append((int(t), REGIME))
                    near = (ts.front == OPPOSITION) & (s.geo.distance_km[t] <= cfg.range_km)
                    changes += [(int(j), CONTESTED) for j in near.nonzero()[0]]
        for town, code in changes:
            if ts.front[town] >= code:
                continue
            ts.front[town] = code
            # A front change is news to every town near it: the rivals' common threat (7.6).
            ts.advance += np.exp(-s.geo.distance_km[:, town] / cfg.range_km)
            s.record_event("front", town, note=FRONT_STATUS[code])
            if code == REGIME:
                self.regime_takes(town)
        towns.update_front_proximity(s)

    def regime_takes(self, town: int) -> None:
        """The regime takes ``town``: HTS and councils gone, the town closed to arrivals and returns; those
        present leave over the following days (each day a share ``flight.capture_rate``, the first on the day)."""
        s = self.state
        ts = s.town_state
        ts.open[town] = False
        for arr in (ts.control, ts.services, ts.council, ts.reputation, ts.civil_society):
            arr[town] = 0.0
        ts.independent[town] = False
        s.balance["council"][town] = 0.0
        towns.change_controller(s, town, REGIME_HOLDS, "regime advance")
        s.dest_probs = None
        towns.update_front_proximity(s)
        flight(s, fallen_town=town)


class HTS(mesa.Agent):
    """Hay'at Tahrir al-Sham: resources, services, council takeovers, repression, retaliation."""

    def __init__(self, model: mesa.Model, state: ModelState):
        super().__init__(model)
        self.state = state
        cfg = state.scenario.hts
        self.fighters = float(cfg.fighters)
        self.reference_fighters = float(cfg.reference_fighters)
        self.resources = float(cfg.resources)
        self.legitimacy = float(cfg.legitimacy)
        self.recruits = 0.0
        self.takeovers = 0
        self.fight_losses = 0.0  # fighters lost in fights for towns
        self.ret_decay = rules.half_life_decay(cfg.retaliation_half_life_days)
        h = cfg.control_half_life_days
        self.control_return = 0.0 if h is None else 1.0 - rules.half_life_decay(h)  # share of the gap closed a day
        gb = cfg.governance_body
        self.governance_day = state.scenario.day_of(gb) if gb else None
        self.stream = state.streams.hts
        self.rng_arrest = state.streams.repression

    @property
    def retaliation(self) -> float:
        """Retaliation memory averaged over persons present (the towns' own memories drive protection)."""
        ts = self.state.town_state
        return float((ts.retaliation * ts.present).sum() / max(ts.present.sum(), 1e-9))

    @property
    def strength(self) -> float:
        """Fighters relative to ``hts.reference_fighters``, capped at ``hts.strength_cap``."""
        return min(self.fighters / self.reference_fighters, self.state.scenario.hts.strength_cap)

    def drifts(self) -> dict[str, float | np.ndarray]:
        """Daily changes implied by today's state, before any baseline balance.

        ``resources`` (income - cost), ``services`` and ``control`` per town (before
        ``open`` and the consolidation strength), ``legitimacy``, and the council
        ``takeover_pressure`` per town (the takeover probability without its rate).
        The same expressions give the balances of a stationary start
        (:meth:`AllegianceModel.balance_baseline`), so the two cannot drift apart.
        """
        s = self.state
        ts = s.town_state
        cfg = s.scenario.hts
        # HTS taxes, serves and consolidates only where it holds the town (7.4; a rival-held or
        # contested town has none of it); protest erodes its control wherever the town is open.
        rule = ts.hts_holds & ts.open
        net, d_services = towns.holder_governance(
            s,
            ts.control,
            rule,
            ts.services,
            self.resources,
            income_per_hold=cfg.income_per_control,
            service_rate=cfg.service_rate,
            service_decay=cfg.service_decay,
            service_cost=cfg.service_cost,
            funding_half=cfg.funding_half,
        )
        gov_coop = float((ts.coop_share * ts.present).sum() / max(ts.present.sum(), 1e-9))
        return {
            "resources": net,
            "services": d_services,
            "control": cfg.consolidation_rate * ts.coop_share * (1 - ts.control) * rule
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
        s = self.state
        ts = s.town_state
        cfg = s.scenario.hts
        bal = s.balance
        d = self.drifts()
        self.resources = max(0.0, self.resources + d["resources"] - bal["resources"])
        ts.services += (d["services"] - bal["services"]) * ts.open
        np.clip(ts.services, 0, 1, out=ts.services)
        ts.control += s.scenario.mechanisms.consolidation * (d["control"] - bal["control"]) * ts.open
        if self.control_return:  # the return to the standing level (7.4 item 3; DECISIONS 34)
            ts.control -= self.control_return * (ts.control - ts.control_standing) * ts.open
        np.clip(ts.control, 0, 1, out=ts.control)
        self._takeovers(cfg, d["takeover_pressure"] - bal["takeover_pressure"])
        self._repress(cfg)
        # Retaliation is local: for strikes on the town and (distance-weighted) on its neighbours.
        struck = ts.strikes_today + s.neighbour @ ts.strikes_today
        ts.retaliation = ts.retaliation * self.ret_decay + cfg.retaliation_rate * struck
        self._attack_rivals(cfg)
        self.legitimacy += d["legitimacy"] - bal["legitimacy"]

    def _takeovers(self, cfg, pressure: np.ndarray) -> None:
        """Council takeovers with probability ``rate * m_gov * max(0, pressure - threshold)``.

        ``pressure`` is the excess over the standing level; the threshold keeps the sampling noise of the
        town's shares from making councils fall without a shock (DECISIONS 30 and 33)."""
        s = self.state
        ts = s.town_state
        mult = 1.0
        if self.governance_day is not None and s.day >= self.governance_day:
            mult = cfg.governance_body.takeover_multiplier
        p = cfg.takeover_rate * mult * np.maximum(pressure - cfg.takeover_threshold, 0.0)
        u = self.stream.random(ts.n)
        taken = ((u < p) & ts.independent & ts.open & ts.hts_holds).nonzero()[0]
        for t in taken:
            ts.independent[t] = False
            ts.council[t] *= 1 - cfg.takeover_council_loss
            ts.control[t] += cfg.takeover_control_gain * (1 - ts.control[t])
            ts.control_standing[t] = ts.control[t]  # a new standing level under HTS's administration
            ts.takeover_memory[t] += 1.0
            ts.civil_society[t] *= 1 - s.scenario.civil_society.takeover_loss
            s.balance["council"][t] = 0.0  # the council leaves its standing balance
            self.takeovers += 1
            s.record_event("council_takeover", int(t))

    def _repress(self, cfg) -> None:
        """Arrest protesters: each with the town's arrest probability times the repression policy."""
        s = self.state
        ts = s.town_state
        hh = s.hh
        ts.arrests_today[:] = 0
        ts.security = cfg.security_per_control * ts.control * self.strength * (ts.open & ts.hts_holds)
        ts.p_arrest = rules.arrest_probability(
            ts.security,
            ts.protest_share,
            arrest_constant=s.scenario.protest.arrest_constant,
            crowd_scale=s.scenario.protest.crowd_scale,
        )
        protesters = hh.protesting.nonzero()[0]
        if len(protesters) and cfg.repression > 0:
            p = ts.p_arrest[hh.town[protesters]] * cfg.repression
            arrested = protesters[self.rng_arrest.random(len(protesters)) < p]
            if len(arrested):
                pr = s.scenario.protest
                hh.jailed_until[arrested] = s.day + pr.jail_days
                hh.protesting[arrested] = False
                jump = pr.arrest_grievance * (1 - s.scenario.grievance.home_team_discount)
                hh.g_hts[arrested] += (1 - hh.g_hts[arrested]) * np.float32(jump)
                ts.arrests_today[:] = np.bincount(hh.town[arrested], minlength=ts.n)
                arrested_persons = np.bincount(hh.town[arrested], weights=hh.persons[arrested], minlength=ts.n)
                households = np.maximum(ts.present / s.unit_size, 1.0)
                ts.repression += ts.arrests_today / households
                for t in ts.arrests_today.nonzero()[0]:
                    s.record_event(
                        "arrests", int(t), count=int(ts.arrests_today[t]), persons=float(arrested_persons[t]) * s.weight
                    )

    def _attack_rivals(self, cfg) -> None:
        s = self.state
        groups = s.rival_groups
        if not groups or cfg.attack_rivals_rate <= 0:
            return
        if self.stream.random() < cfg.attack_rivals_rate:
            fighters = np.array([g.fighters for g in groups])
            if fighters.sum() <= 0:
                return
            g = groups[int(self.stream.choice(len(groups), p=fighters / fighters.sum()))]
            g.attacked()


class RivalGroup(mesa.Agent):
    """A rival rebel group: fighters, presence, cohesion and an alignment with HTS that moves both ways.

    Public state: ``name``, ``fighters``, ``alignment`` (-1 hostile .. +1 cooperating),
    ``cohesion``, ``recruits``, and the fighters lost to HTS attacks (``attack_losses``) and
    in fights for towns (``fight_losses``). Its coalition, if any, is
    ``model.conflict.side[index]`` (the index of the coalition's first member).
    """

    def __init__(self, model: mesa.Model, state: ModelState, index: int, cfg: RivalGroupConfig):
        super().__init__(model)
        self.state = state
        self.index = index
        self.name = cfg.name
        self.fighters = float(cfg.fighters)
        self.alignment = float(cfg.alignment)
        self.cohesion = float(cfg.cohesion)
        self.outside_backing = float(cfg.outside_backing)
        self.resources = float(cfg.resources)
        self.threat_memory = 0.0  # decaying memory of the common threat in its towns
        self._threat_today = 0.0
        self.relief = 0.0  # today's relief: threat memory minus today's threat, at least 0
        self.threat_retention = rules.half_life_decay(state.scenario.rivals.threat_half_life_days)
        self.recruits = 0.0
        self.attack_losses = 0.0
        self.fight_losses = 0.0

    def drivers(self) -> tuple[float, float]:
        """Today's pull toward HTS (common threat) and away from it (pretext, relief, predation, resistance, backing).

        Each is a rate times a presence-weighted mean over the open towns where the group is
        present (ODD 7.6); a rate of zero removes its driver exactly. Relief is how far
        today's common threat is below the group's memory of it (:attr:`threat_memory`, updated
        in :meth:`step`): the common enemy pushes the group toward HTS while it strikes, and its
        receding lets the old grievances return.
        """
        s = self.state
        ts = s.town_state
        r = s.scenario.rivals
        presence = ts.rival_presence[:, [self.index]] * ts.open[:, None]
        strike_harm = -np.expm1(-ts.exposure_eff / s.scenario.flight.safety_harm_scale)
        # control.presence_weighted of each quantity, its total presence summed once
        total = presence.sum(axis=0)[0]
        threat, harm, predation, resistance = (
            float((v @ presence)[0] / total) if total > 0 else 0.0
            for v in (ts.common_threat, strike_harm, ts.predation, ts.resist_share)
        )
        self.relief = float(control.relief(self.threat_memory, threat))
        self._threat_today = threat
        up = r.pressure_rate * threat
        down = r.pretext_rate * harm + r.relief_rate * self.relief
        down += r.predation_rate * predation + r.resistance_rate * resistance
        down += self.outside_backing
        return up, down

    def step(self) -> None:
        """Step 4: alignment (threat, relief, predation, resistance, backing); taxes and services where it holds."""
        up, down = self.drivers()
        self.alignment = float(control.alignment_update(self.alignment, up, down))
        self.threat_memory = float(
            control.threat_memory_update(self.threat_memory, self._threat_today, self.threat_retention)
        )
        self._govern()

    def _govern(self) -> None:
        """Taxes and services in the towns it holds: HTS's rules with the holder's parameters (ODD 7.6)."""
        s = self.state
        ts = s.town_state
        r = s.scenario.rivals
        rule = (ts.controller == GROUP0 + self.index) & ts.open
        if not rule.any():
            return
        net, d_services = towns.holder_governance(
            s,
            ts.rival_presence[:, self.index],
            rule,
            ts.holder_services,
            self.resources,
            income_per_hold=r.holder_income_per_presence,
            service_rate=r.holder_service_rate,
            service_decay=r.holder_service_decay,
            service_cost=r.holder_service_cost,
            funding_half=r.holder_funding_half,
        )
        self.resources = max(0.0, self.resources + net)
        ts.holder_services[rule] = np.clip(ts.holder_services[rule] + d_services[rule], 0, 1)

    def attacked(self) -> None:
        """HTS attacks the group: fighters lost, alignment drops, grievance where present."""
        s = self.state
        cfg = s.scenario.rivals
        lost = self.fighters * cfg.attack_fighter_loss
        self.fighters -= lost
        self.attack_losses += lost
        self.alignment = max(-1.0, self.alignment - cfg.attack_penalty)
        s.town_state.takeover_memory += cfg.attack_grievance * s.town_state.rival_presence[:, self.index]
        s.record_event("hts_attack_rival", -1, note=self.name)


class Conflict(mesa.Agent):
    """Coalitions of rival groups, fights for towns, and towns that send the armed groups away (step 4b).

    A *side* is a group alone or a coalition; ``side[g]`` is the index of the first member
    of group g's side, and a side's alignment with HTS is its members' fighter-weighted mean
    (:meth:`side_alignments`). Hostile sides (alignment at most ``-rivals.hostility_threshold``)
    attack HTS-held towns where their local strength is at least ``rivals.contest_threshold``
    times HTS's; HTS attacks rival-held towns where it is that much stronger and the holder's
    alignment is below ``rivals.hts_tolerance``; rival sides whose alignments differ by more
    than ``rivals.split_gap`` attack each other's towns the same way, and a coalition member
    that drifts that far from the rest leaves. An attacked town is contested until the fight
    is decided; each fight day costs both sides fighters and the town's civilians lives, fear
    and homes. A town whose sustained protest and council outweigh its holder's local strength
    may send the armed groups away (``local``); the strongest armed side may retake it once
    the protest falls. The rules are the pure functions of :mod:`sim.model.control`.
    """

    def __init__(self, model: mesa.Model, state: ModelState):
        super().__init__(model)
        self.state = state
        self.side = np.arange(len(state.rival_groups))
        self.coalitions: list[list[str]] = []  # members of each coalition formed, by name, in order
        self.splits = 0  # members that left a coalition
        self.stream = state.streams.control
        self.fight_stream = state.streams.fight
        self.killed_cum = 0.0  # model persons killed in fighting
        self.fighters_lost_cum = 0.0  # fighters of all sides lost in fighting
        sc = state.scenario
        self.protest_retention = rules.half_life_decay(sc.rivals.local_window_days)
        groups = [g.name for g in sc.rivals.groups]
        self.scheduled: dict[int, list[tuple[int, int, str]]] = {}
        for e in sc.rivals.events:
            code = HTS_HOLDS if e.controller == "hts" else GROUP0 + groups.index(e.controller)
            self.scheduled.setdefault(sc.day_of(e), []).append((sc.town_names.index(e.town), code, e.source))

    # ------------------------------------------------------------------ sides

    def _alone(self) -> bool:
        """Whether every group is a side of its own (no coalition)."""
        return bool((self.side == np.arange(len(self.side))).all())

    def members(self, root: int) -> np.ndarray:
        """Group indices of the side whose first member is ``root``."""
        return (self.side == root).nonzero()[0]

    def side_name(self, code: int) -> str:
        """Name of the side with controller code ``code``: 'HTS', a group, or 'A + B' for a coalition."""
        if code == HTS_HOLDS:
            return "HTS"
        groups = self.state.rival_groups
        return " + ".join(groups[g].name for g in self.members(int(self.side[code - GROUP0])))

    def side_alignments(self) -> np.ndarray:
        """Per group, the fighter-weighted mean alignment of its side (its own for a group alone)."""
        groups = self.state.rival_groups
        w = np.array([g.fighters for g in groups], dtype=float)
        a = np.array([g.alignment for g in groups], dtype=float)
        out = a.copy()
        if self._alone():  # every group its own side
            return out
        for root in np.unique(self.side):
            idx = self.members(int(root))
            if len(idx) > 1:
                out[idx] = float((w[idx] * a[idx]).sum() / w[idx].sum()) if w[idx].sum() > 0 else float(a[idx].mean())
        return out

    def _merge(self, town: int, roots: list[int]) -> None:
        new_root = min(roots)
        self.side[np.isin(self.side, roots)] = new_root
        names = [self.state.rival_groups[g].name for g in self.members(new_root)]
        self.coalitions.append(names)
        self.state.record_event("coalition", town, count=len(names), note=" + ".join(names))

    def _split(self) -> None:
        """A member whose alignment is more than ``split_gap`` from the rest's fighter-weighted mean leaves.

        One member a day per coalition: the farthest from the rest (on a tie, the one nearest HTS).
        """
        groups = self.state.rival_groups
        gap = self.state.scenario.rivals.split_gap
        if self._alone():  # no coalition to leave
            return
        for root in np.unique(self.side):
            idx = self.members(int(root))
            if len(idx) < 2:
                continue
            w = np.array([groups[g].fighters for g in idx], dtype=float)
            a = np.array([groups[g].alignment for g in idx], dtype=float)
            rest = [(w.sum() - w[k]) for k in range(len(idx))]
            dev = [abs(a[k] - ((w * a).sum() - w[k] * a[k]) / rest[k]) if rest[k] > 0 else 0.0 for k in range(len(idx))]
            k = int(np.lexsort((a, np.round(dev, 12)))[-1])  # the farthest; on a tie, the one nearest HTS
            if dev[k] <= gap:
                continue
            leaver = int(idx[k])
            names = " + ".join(groups[g].name for g in idx)
            self.side[leaver] = leaver
            remaining = idx[idx != leaver]
            self.side[remaining] = remaining.min()
            self.splits += 1
            self.state.record_event("coalition_split", -1, count=1, note=f"{groups[leaver].name} leaves {names}")

    # ------------------------------------------------------------------ the day

    def _strengths(self, *, withdrawn: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Local strengths (groups, HTS, sides) and which sides are hostile to HTS.

        Each armed actor's fighters are spread over the open towns where it is present (HTS by
        its control, a group by its presence); with ``withdrawn`` (the default) the local towns,
        where no armed group stays, take none of them, so the others get their share.
        """
        s = self.state
        ts = s.town_state
        r = s.scenario.rivals
        groups = s.rival_groups
        ref = s.hts.reference_fighters
        fighters = np.array([g.fighters for g in groups])
        cohesion = np.array([g.cohesion for g in groups])
        where = ts.open & (ts.controller != LOCAL) if withdrawn else ts.open
        presence = ts.rival_presence * where[:, None]
        local = control.rival_local_strength(presence, fighters, cohesion, ref, ts.resist_share, r.support_weight)
        hts = control.hts_local_strength(
            ts.control * where, s.hts.fighters, s.scenario.hts.cohesion, ref, ts.coop_share, r.support_weight
        )
        sides, sizes = control.side_strength(local, self.side, r.coalition_cohesion)
        hostile = (self.side_alignments() <= -r.hostility_threshold) & (sizes > 0)
        return local, hts, sides, hostile

    def step(self) -> None:
        """Step 4b: coalitions form and split, new attacks, a day of fighting, towns going local or retaken."""
        s = self.state
        ts = s.town_state
        r = s.scenario.rivals
        # Fixed-shape draws whatever happens, so paired runs keep common random numbers.
        u = self.stream.random((ts.n, 5))
        u_coalition = self.stream.random()
        for town, code, source in self.scheduled.get(s.day, []):  # dated inputs, if the scenario has any
            if not ts.open[town]:
                continue
            old = int(ts.controller[town])
            if code >= GROUP0 and old == HTS_HOLDS:  # the same consequences as a capture in a fight
                ts.control[town] *= 1 - r.capture_control_loss
                ts.services[town] = 0.0
            elif code == HTS_HOLDS and old >= GROUP0:
                ts.control[town] += r.retake_control_gain * (1 - ts.control[town])
            towns.change_controller(s, town, code, f"scheduled ({source})")
        ts.protest_memory = np.where(
            ts.open, control.ema(ts.protest_memory, ts.protest_share, self.protest_retention), 0.0
        )
        if s.rival_groups:
            self._split()
            local, hts, sides, hostile = self._strengths()
            held_by_hts = ts.hts_holds & ts.open
            if r.coalition_rate > 0 and u_coalition < r.coalition_rate:
                found = control.coalition_candidate(
                    sides, hts, hostile, held_by_hts, r.contest_threshold, r.coalition_match
                )
                if found is not None:
                    self._merge(*found)
                    local, hts, sides, hostile = self._strengths()
            self._start_fights(u[:, 0], hts, sides, hostile)
            for t in (ts.controller == HELD_CONTESTED).nonzero()[0]:
                self._fight(int(t), u[t, 1], u[t, 2], local, hts, sides)
        else:
            hts = control.hts_local_strength(
                ts.control * ts.open * (ts.controller != LOCAL),
                s.hts.fighters,
                s.scenario.hts.cohesion,
                s.hts.reference_fighters,
                ts.coop_share,
                r.support_weight,
            )
            sides = np.zeros((ts.n, 0))
        self._local(u[:, 3], u[:, 4], hts, sides)

    def _start_fights(self, u: np.ndarray, hts: np.ndarray, sides: np.ndarray, hostile: np.ndarray) -> None:
        s = self.state
        ts = s.town_state
        r = s.scenario.rivals
        groups = s.rival_groups
        # Rival sides attack HTS-held towns where they are strong enough.
        if r.attack_rate > 0:
            ratio = np.where(hostile[None, :], control.attack_ratio(sides, hts[:, None]), 0.0)
            best = np.argmax(ratio, axis=1)
            best_ratio = ratio[np.arange(ts.n), best]
            strong = (best_ratio >= r.contest_threshold) & (best_ratio > 0)
            start = ts.hts_holds & ts.open & strong & (u < r.attack_rate)
            for t in start.nonzero()[0]:
                self._contest(int(t), GROUP0 + int(best[t]), HTS_HOLDS)
        rival_held = ((ts.controller >= GROUP0) & ts.open).nonzero()[0]
        if not len(rival_held):
            return
        # Each held town's holder side, and its strength there (fights started below change no strengths).
        roots_held = self.side[ts.controller[rival_held] - GROUP0]
        strength_held = sides[rival_held, roots_held]
        # HTS attacks rival-held towns where it is strong enough and the holder not aligned enough.
        if r.hts_retake_rate > 0:
            ratios = control.attack_ratio(hts[rival_held], strength_held)
            for t in rival_held[(u[rival_held] < r.hts_retake_rate) & (ratios >= r.contest_threshold)]:
                holder = int(ts.controller[t]) - GROUP0
                root = int(self.side[holder])
                # read here: an attack on another town of the same side has just lowered it
                tolerated = groups[holder].alignment >= r.hts_tolerance
                if not tolerated:
                    for g in self.members(root):  # an attack on a group's town is predation against it
                        groups[g].alignment = max(-1.0, groups[g].alignment - r.attack_penalty)
                    self._contest(int(t), HTS_HOLDS, int(ts.controller[t]))
        # Rival sides attack towns held by an enemy rival side (alignments more than split_gap apart).
        if r.rival_attack_rate > 0 and len(groups) > 1:
            align = self.side_alignments()
            roots = np.arange(len(groups)) == self.side
            # Per held town (rows): which sides are its holder's enemies, and their strength ratios there.
            enemy = (np.abs(align[None, :] - align[roots_held][:, None]) > r.split_gap) & roots[None, :]
            ratio = np.where(
                enemy, control.attack_ratio(sides[rival_held], np.repeat(strength_held[:, None], len(groups), 1)), 0.0
            )
            best = np.argmax(ratio, axis=1)
            best_ratio = ratio[np.arange(len(rival_held)), best]
            attack = (best_ratio >= r.contest_threshold) & (best_ratio > 0) & (u[rival_held] < r.rival_attack_rate)
            for i in attack.nonzero()[0]:
                t = rival_held[i]
                if ts.controller[t] == HELD_CONTESTED:  # HTS attacked it today
                    continue
                self._contest(int(t), GROUP0 + int(best[i]), int(ts.controller[t]))

    def _contest(self, town: int, attacker: int, defender: int) -> None:
        s = self.state
        ts = s.town_state
        ts.attacker[town] = attacker
        ts.defender[town] = defender
        towns.change_controller(s, town, HELD_CONTESTED, f"attack by {self.side_name(attacker)}")

    def _local(self, u_local: np.ndarray, u_retake: np.ndarray, hts: np.ndarray, sides: np.ndarray) -> None:
        """Towns send their armed groups away (``local``) or an armed side retakes a local town (ODD 7.6)."""
        s = self.state
        ts = s.town_state
        r = s.scenario.rivals
        defence = ts.protest_memory * ts.council * ts.independent * ts.open
        roots = (self.side == np.arange(len(self.side))).nonzero()[0]
        # The holder's local strength: HTS where it holds the town, the holding group's side where a group does.
        armed = np.where(ts.hts_holds, hts, 0.0)
        for t in (ts.controller >= GROUP0).nonzero()[0]:
            armed[t] = sides[t, int(self.side[int(ts.controller[t]) - GROUP0])]
        if r.local_rate > 0:
            p = control.local_hazard(defence, armed, r.local_rate, r.local_armed_weight)
            held = ts.open & ((ts.controller == HTS_HOLDS) | (ts.controller >= GROUP0))
            for t in (held & (u_local < p)).nonzero()[0]:
                towns.change_controller(s, int(t), LOCAL, "armed groups sent away by the council and protest")
        if r.local_retake_rate <= 0 or not (ts.controller == LOCAL).any():
            return
        # What each armed side could bring to bear in the local towns if it came back.
        if s.rival_groups:
            _, hts_back, sides_back, _ = self._strengths(withdrawn=False)
        else:
            hts_back = control.hts_local_strength(
                ts.control * ts.open,
                s.hts.fighters,
                s.scenario.hts.cohesion,
                s.hts.reference_fighters,
                ts.coop_share,
                r.support_weight,
            )
            sides_back = sides
        for t in ((ts.controller == LOCAL) & ts.open).nonzero()[0]:
            rival = sides_back[t, roots] if len(roots) else np.zeros(0)
            best = int(roots[int(np.argmax(rival))]) if len(roots) else -1
            a_rival = float(rival.max()) if len(roots) else 0.0
            code, strength = (HTS_HOLDS, float(hts_back[t])) if hts_back[t] >= a_rival else (GROUP0 + best, a_rival)
            ratio = float(control.attack_ratio(np.array(r.local_armed_weight * strength), np.array(defence[t])))
            if ratio >= r.contest_threshold and ratio > 0 and u_retake[t] < r.local_retake_rate:
                if code == HTS_HOLDS:
                    ts.control[t] += r.retake_control_gain * (1 - ts.control[t])
                    towns.change_controller(s, int(t), HTS_HOLDS, "local town retaken by HTS")
                else:
                    idx = self.members(best)
                    holder = int(idx[np.argmax(ts.rival_presence[t, idx])])
                    towns.change_controller(
                        s, int(t), GROUP0 + holder, f"local town retaken by {self.side_name(GROUP0 + best)}"
                    )

    def _side_forces(self, code: int, town: int, local: np.ndarray, hts: np.ndarray, sides: np.ndarray):
        """(strength, fighters present per member, member indices) of the side with code ``code`` in ``town``."""
        s = self.state
        ts = s.town_state
        if code == HTS_HOLDS:
            share = control.spread(ts.control * ts.open * (ts.controller != LOCAL))[town]
            return float(hts[town]), np.array([share * s.hts.fighters]), None
        root = int(self.side[code - GROUP0])
        idx = self.members(root)
        where = ts.open & (ts.controller != LOCAL)
        shares = control.spread(ts.rival_presence * where[:, None])[town, idx]
        present = shares * np.array([s.rival_groups[g].fighters for g in idx])
        return float(sides[town, root]), present, idx

    def _lose(self, code: int, loss: np.ndarray, idx: np.ndarray | None) -> None:
        s = self.state
        if code == HTS_HOLDS:
            s.hts.fighters = max(0.0, s.hts.fighters - float(loss[0]))
            s.hts.fight_losses += float(loss[0])
        else:
            for g, lost in zip(idx, loss, strict=True):
                s.rival_groups[g].fighters = max(0.0, s.rival_groups[g].fighters - float(lost))
                s.rival_groups[g].fight_losses += float(lost)
        self.fighters_lost_cum += float(loss.sum())

    def _fight(self, town: int, u_decide: float, u_winner: float, local, hts, sides) -> None:
        """One fight day in a contested town: losses, civilian harm, flight, and perhaps a decision."""
        s = self.state
        ts = s.town_state
        r = s.scenario.rivals
        att, dfd = int(ts.attacker[town]), int(ts.defender[town])
        s_att, f_att, idx_att = self._side_forces(att, town, local, hts, sides)
        s_dfd, f_dfd, idx_dfd = self._side_forces(dfd, town, local, hts, sides)
        lost_att, lost_dfd = control.fight_losses(
            float(f_att.sum()), float(f_dfd.sum()), s_att, s_dfd, r.fight_attrition, s.hts.reference_fighters
        )
        self._lose(att, control.split_losses(lost_att, f_att), idx_att)
        self._lose(dfd, control.split_losses(lost_dfd, f_dfd), idx_dfd)
        killed = self._civilian_harm(town)
        s.record_event(
            "fighting",
            town,
            count=round(lost_att + lost_dfd),
            persons=killed * s.weight,
            note=f"{self.side_name(att)} vs {self.side_name(dfd)}",
        )
        if u_decide >= r.resolution_rate:
            return
        p_att = float(control.contest_success(control.attack_ratio(np.array(s_att), np.array(s_dfd)), r.decisiveness))
        if u_winner < p_att:
            self._settle(town, winner=att, loser=dfd, local=local)
        else:
            self._settle(town, winner=dfd, loser=att, local=local)

    def _civilian_harm(self, town: int) -> float:
        """Casualties, fear and flight of the civilians present in a contested town; returns model persons killed."""
        s = self.state
        ts = s.town_state
        r = s.scenario.rivals
        hh = s.hh
        killed = 0.0
        if r.fight_casualties > 0:
            density = ts.present[town] / max(ts.persons0[town], 1e-9)
            expected = r.fight_casualties * min(density, s.scenario.air_campaign.density_cap)
            expected *= s.scenario.households.sample_fraction
            killed = kill_persons(s, town, int(self.fight_stream.poisson(expected)), self.fight_stream, harm=False)
            ts.killed_today[town] += killed
            self.killed_cum += killed
        here = ((hh.town == town) & (hh.persons > 0)).nonzero()[0]
        if r.fight_harm > 0 and len(here):
            gain = np.float32(rules.saturating_gain(s.scenario.fear.rate * r.fight_harm))
            hh.fear[here] += (1 - hh.fear[here]) * gain
        flight(s, contested_town=town)
        return killed

    def _settle(self, town: int, *, winner: int, loser: int, local: np.ndarray) -> None:
        s = self.state
        ts = s.town_state
        r = s.scenario.rivals
        attacker = int(ts.attacker[town])
        if loser != HTS_HOLDS:  # a beaten rival side loses its footing in the town
            for g in self.members(int(self.side[loser - GROUP0])):
                ts.rival_presence[town, g] *= 1 - r.defeat_presence_loss
        if winner == HTS_HOLDS:
            if attacker == HTS_HOLDS:
                ts.control[town] += r.retake_control_gain * (1 - ts.control[town])
                cause = f"retaken by HTS from {self.side_name(loser)}"
            else:
                cause = f"held by HTS against {self.side_name(loser)}"
            towns.change_controller(s, town, HTS_HOLDS, cause)
            return
        root = int(self.side[winner - GROUP0])
        idx = self.members(root)
        holder = int(idx[np.argmax(local[town, idx])]) if winner == attacker else winner - GROUP0
        if winner == attacker and loser == HTS_HOLDS:  # HTS driven out: its hold and its services go
            ts.control[town] *= 1 - r.capture_control_loss
            ts.services[town] = 0.0
        if winner == attacker:
            cause = f"taken by {self.side_name(winner)} from {self.side_name(loser)}"
        else:
            cause = f"held by {self.side_name(winner)} against {self.side_name(loser)}"
        towns.change_controller(s, town, GROUP0 + holder, cause)


class CivilSociety(mesa.Agent):
    """Civil society: investment raises the legitimacy of independent councils."""

    def __init__(self, model: mesa.Model, state: ModelState):
        super().__init__(model)
        self.state = state

    def drift(self) -> np.ndarray:
        """Daily change of council legitimacy implied by today's state, before any baseline balance."""
        s = self.state
        ts = s.town_state
        cfg = s.scenario.civil_society
        gain = cfg.council_rate * ts.civil_society * (ts.independent & ts.open)
        return gain * (1 - ts.council) - cfg.council_decay * ts.council

    def step(self) -> None:
        """Step 3b: councils gain legitimacy where civil society works; all decay slowly."""
        s = self.state
        ts = s.town_state
        cfg = s.scenario.civil_society
        working = ts.independent & ts.open
        ts.civil_society += cfg.recovery_rate * (s.civil_society0 - ts.civil_society) * working
        ts.council += self.drift() - s.balance["council"]
        np.clip(ts.council, 0, 1, out=ts.council)

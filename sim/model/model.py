"""The allegiance model: one step is one day, in the order of MODEL.md.

``AllegianceModel.step`` reads as the schedule:

1. the air campaign picks targets and resolves strikes;
2. the front line moves; towns taken by the regime are emptied;
3. HTS acts (finance, services, control, council takeovers, repression,
   retaliation), then civil society invests in councils;
4. rival groups update their alignment with HTS; hostile groups may form a coalition and
   sides fight for towns (:class:`~sim.model.actors.Conflict`, rules in :mod:`sim.model.control`);
5. households update grievances and fear, then choose stance, protest,
   flight, return and recruitment (vectorized, :mod:`sim.model.households`);
6. towns aggregate their households and the day is collected.
"""

from __future__ import annotations

import numpy as np
from mesa import Model
from mesa.discrete_space import OrthogonalMooreGrid

from sim.model import control, rules
from sim.model.actors import (
    FRONT_STATUS,
    HTS,
    OPPOSITION,
    REGIME,
    AirCampaign,
    CivilSociety,
    Conflict,
    Household,
    RegimeFront,
    RivalGroup,
    Town,
    TownState,
)
from sim.model.collect import Collector
from sim.model.control import CONTESTED as HELD_CONTESTED
from sim.model.control import GROUP0, HTS_HOLDS, NO_SIDE, REGIME_HOLDS
from sim.model.households import (
    RECRUITED_HTS,
    RECRUITED_RIVAL,
    HouseholdArrays,
    calibrate_constants,
    calibrate_protest,
    create_households,
    draw_stances_from_choice,
    flight,
    stationary_protest,
    step_households,
)
from sim.model.rules import COOPERATE, RESIST
from sim.scenario.geography import Geography, build_geography
from sim.scenario.schema import Scenario

# New streams go at the end: SeedSequence children do not depend on how many are spawned.
STREAMS = ("init", "households", "air", "front", "hts", "repression", "casualties", "control", "fight")


class AllegianceModel(Model):
    """Civilian allegiance under air strikes.

    Public state read by the collector and the app: ``town_state`` (per-town arrays,
    :class:`~sim.model.actors.TownState`; ``town_state.controller`` holds each town's
    controller code, whose names are ``controller_names``: ``"hts"``, ``"contested"``,
    ``"regime"``, then the rival groups in scenario order; ``Town.controller`` gives one
    town's as a name), ``hh`` (household arrays), ``hts``, ``rival_groups``, ``conflict``
    (coalitions and fights), ``events``.

    Args:
        scenario: a validated :class:`~sim.scenario.schema.Scenario` (every parameter is there,
            with its unit, range and source).
        seed: root seed; defaults to ``scenario.seed``. Independent random streams for
            initialisation, households, the air campaign, the front, HTS and
            repression are spawned from it with ``numpy.random.SeedSequence``, so a
            change in one actor's draws never shifts another's (common random numbers
            across paired runs).
        household_agents: create a Mesa ``Household`` agent (a view onto the arrays)
            for every household. Turn off only for benchmarks of the bare arrays.
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        *,
        household_agents: bool = True,
        geography: Geography | None = None,
    ):
        seed = scenario.seed if seed is None else int(seed)
        super().__init__(rng=seed)
        self.seed = seed
        self.scenario = scenario
        self.day = 0
        streams = np.random.SeedSequence(seed).spawn(len(STREAMS))
        gens = {name: np.random.Generator(np.random.PCG64(s)) for name, s in zip(STREAMS, streams, strict=True)}
        self.rng_households = gens["households"]
        self.rng_air = gens["air"]
        self.rng_front = gens["front"]
        self.rng_hts = gens["hts"]
        self.rng_repression = gens["repression"]
        self.rng_casualties = gens["casualties"]
        self.rng_control = gens["control"]
        self.rng_fight = gens["fight"]
        self.controller_names = control.controller_names([g.name for g in scenario.rivals.groups])

        hc = scenario.households
        self.unit_size = 1 if hc.unit == "person" else hc.size
        self.weight = 1.0 / hc.sample_fraction  # real households (or persons) per agent
        self.geo = geography or build_geography(scenario)
        self._grid: OrthogonalMooreGrid | None = None  # built on first use: see ``grid``
        self.town_state = self._init_towns()
        self.civil_society0 = self.town_state.civil_society.copy()
        self.hh: HouseholdArrays = create_households(self, gens["init"])
        self.town_state.persons0 = np.bincount(self.hh.home, weights=self.hh.persons, minlength=self.town_state.n)
        counts = np.bincount(self.hh.home, minlength=self.town_state.n)
        if np.any(np.diff(self.hh.home) < 0):
            raise AssertionError("households must be stored sorted by home town")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._home_empty = counts == 0
        self._home_starts = np.minimum(starts, len(self.hh) - 1)
        self.town_state.capacity = self.town_state.persons0 * np.array([t.host_capacity for t in scenario.towns])
        self.towns = [Town(self, i, t.stance) for i, t in enumerate(scenario.towns)]
        if household_agents:
            for i in range(len(self.hh)):
                Household(self, i)
        self.hts = HTS(self)
        self.rival_groups = [RivalGroup(self, i, g) for i, g in enumerate(scenario.rivals.groups)]
        self.conflict = Conflict(self)
        self.control_changes = 0
        self.air = AirCampaign(self)
        self.front = RegimeFront(self)
        self.civil_society = CivilSociety(self)
        self._near = self._nearest_matrix()
        # Public day state read by the collector and the household step (set by aggregate()):
        # by_stance (persons by current town and stance), protest_persons, displaced_idx, and
        # dest_probs (flight destination matrix, None until needed after towns change).
        self.dest_probs: np.ndarray | None = None
        self.distance_decay: np.ndarray | None = None  # the gravity model's distance term, once needed
        self.events: list[tuple] = []
        self.moves_today = 0.0
        self.moves_cum = 0.0
        self.returns_today = 0.0
        self.resisting = np.array([t.stance == "resisting" for t in scenario.towns])
        self.update_front_proximity()
        self.after_strikes()
        self.aggregate()
        self.prepare_household_terms()
        self.threshold_shift = 0.0
        self.balance = self.zero_balance()
        if scenario.choice.calibrate_constants:
            # Each household carries its origin town's constants wherever it goes (dispositions travel).
            alpha_resist, alpha_coop = calibrate_constants(self)
            self.hh.intercept_resist[:] = alpha_resist[self.hh.home]
            self.hh.intercept_coop[:] = alpha_coop[self.hh.home]
            draw_stances_from_choice(self, gens["init"])
            self.aggregate()
            self.prepare_household_terms()
        if scenario.protest.calibrate_threshold:
            calibrate_protest(self, gens["init"])
            self.aggregate()
        if scenario.baseline.stationary:
            self.balance_baseline()
        self.collector = Collector(self)
        self.snapshots: dict[int, dict[str, np.ndarray]] = {}

    # ------------------------------------------------------------------ schedule

    def step(self) -> None:
        """One day."""
        self.moves_today = 0.0
        self.returns_today = 0.0
        self.air.step()  # 1
        self.front.step()  # 2
        self.update_threat()
        self.hts.step()  # 3
        self.civil_society.step()  # 3b
        self.update_predation()
        for group in self.rival_groups:  # 4
            group.step()
        self.conflict.step()  # 4b: coalitions and fights for towns
        self.prepare_household_terms()
        step_households(self)  # 5
        self.aggregate()  # 6
        self.update_reputation()
        self.collector.collect(self.day)
        if self.day in self.scenario.output.household_snapshot_days:
            self.snapshots[self.day] = self.hh.snapshot()
        self.day += 1
        if self.day >= self.scenario.days:
            self.running = False

    def run(self, days: int | None = None, progress=None) -> None:
        """Run ``days`` steps (default: the scenario's ``days``)."""
        for _ in range(self.scenario.days if days is None else days):
            self.step()
            if progress is not None:
                progress.update(1)

    # ------------------------------------------------------------------ setup

    def _init_towns(self) -> TownState:
        sc = self.scenario
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
        ts = TownState(
            names=names,
            persons0=z(),
            council=arr("council"),
            independent=np.array([t.council_independent for t in towns]) & (front != REGIME),
            control=arr("hts_control"),
            services=arr("hts_services"),
            damage=z(),
            civil_society=arr("civil_society"),
            reputation=rep,
            exposure=z(),
            exposure_eff=z(),
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
        ex = sc.exposure
        w = ex.neighbour_weight * np.exp(-self.geo.distance_km / ex.neighbour_range_km)
        np.fill_diagonal(w, 0.0)
        self.neighbour = w
        self._exp_decay = rules.half_life_decay(ex.half_life_days)
        self._memory_decay = rules.half_life_decay(sc.grievance.memory_half_life_days)
        return ts

    def _nearest_matrix(self) -> np.ndarray:
        d = self.geo.distance_km.copy()
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1)

    # ------------------------------------------------------------------ stationary baseline

    def zero_balance(self) -> dict[str, float | np.ndarray]:
        """Baseline balances that change nothing (``baseline.stationary: false``)."""
        n = self.town_state.n
        return {
            "resources": 0.0,
            "legitimacy": 0.0,
            "services": np.zeros(n),
            "control": np.zeros(n),
            "council": np.zeros(n),
            "takeover_pressure": np.zeros(n),
            "hts_harm": np.zeros(n),
        }

    def balance_baseline(self) -> None:
        """Make the initial state a fixed point of the whole system without shocks (ODD 5.7).

        Every town-level process gets a constant balance equal to its drift in the
        initial state (with protest at its stationary level), so it moves only when
        its inputs depart from that state: HTS resources, services, control and
        legitimacy, council legitimacy, and the pressure behind council takeovers.
        The repression memory starts at its stationary level, and HTS's standing
        coercion (that memory and taxes) is the standing level that G_H0 already
        reflects: only coercion above it raises G_H.
        """
        ts = self.town_state
        sc = self.scenario
        ps = stationary_protest(self, 0.0)[0]
        ts.protest_share = ps
        p_arrest = rules.arrest_probability(
            sc.hts.security_per_control * ts.control * self.hts.strength * ts.open,
            ps,
            arrest_constant=sc.protest.arrest_constant,
            crowd_scale=sc.protest.crowd_scale,
        )
        # Arrests per household agent per day at the stationary protest, remembered at q per day.
        ts.repression = sc.hts.repression * p_arrest * ps / (1 - self._memory_decay) * ts.open
        drifts = self.hts.drifts()
        self.balance.update({k: drifts[k] for k in ("resources", "services", "control", "legitimacy")})
        self.balance["takeover_pressure"] = np.asarray(drifts["takeover_pressure"]).copy()
        self.balance["council"] = self.civil_society.drift()
        self.balance["hts_harm"] = self.hts_harm()
        self.aggregate()  # back to the realised protest of day -1

    def hts_harm(self) -> np.ndarray:
        """HTS's own coercion felt in each town today (before the home-team discount and standing level).

        ``repression_weight * repression_t + takeover_weight * takeover_memory_t + tax_weight * C_t``
        (taxes only where HTS holds the open town). Households feel it (7.8.1) and rival groups
        see it as predation (7.6).
        """
        ts = self.town_state
        g = self.scenario.grievance
        return (
            g.repression_weight * ts.repression
            + g.takeover_weight * ts.takeover_memory
            + g.tax_weight * ts.control * (ts.open & ts.hts_holds)  # HTS taxes only where it holds the town
        )

    # ------------------------------------------------------------------ town-level updates

    def update_front_proximity(self) -> None:
        """Front proximity: 1 in contested or regime-held towns, decaying with distance."""
        ts = self.town_state
        ts.open = ts.front != REGIME
        front = ts.front != OPPOSITION
        if not front.any() or not self.scenario.front.enabled:
            ts.front_proximity[:] = 0.0
            return
        d = self.geo.distance_km[:, front].min(axis=1)
        ts.front_proximity = np.exp(-d / self.scenario.front.range_km)

    def after_strikes(self) -> None:
        """Update harm memories and the regime threat after the day's strikes."""
        ts = self.town_state
        ex = self.scenario.exposure
        present = np.maximum(ts.present, 1e-9)
        harm = ex.casualty_weight * ts.killed_today / present * 1000.0 + ex.strike_weight * ts.strikes_today
        ts.exposure = ts.exposure * self._exp_decay + harm
        ts.exposure_eff = ts.exposure + self.neighbour @ ts.exposure
        self.hh.harm *= np.float32(self._exp_decay)
        ts.advance *= self._exp_decay
        self.update_threat()
        ts.repression *= self._memory_decay
        ts.takeover_memory *= self._memory_decay

    def update_threat(self) -> None:
        """Regime threat per town: recent harm (in units of the safety scale) and front proximity."""
        ts = self.town_state
        ts.threat = -np.expm1(-(ts.exposure_eff / self.scenario.flight.safety_harm_scale + ts.front_proximity))
        ts.common_threat = control.common_threat(
            ts.exposure_eff, ts.advance, self.scenario.flight.safety_harm_scale, self.scenario.rivals.advance_weight
        )

    def update_predation(self) -> None:
        """HTS predation per town as rival groups see it: the HTS-attributed harm of arrests,
        council takeovers and taxes, weighted as households weigh it (ODD 7.6)."""
        self.town_state.predation = self.hts_harm()

    def change_controller(self, town: int, code: int, cause: str) -> None:
        """Hand ``town`` to the controller with code ``code``; record a ``control_change`` event."""
        ts = self.town_state
        old = int(ts.controller[town])
        if old == code:
            return
        ts.controller[town] = code
        ts.hts_holds[town] = code == HTS_HOLDS
        if code != HELD_CONTESTED:
            ts.attacker[town] = ts.defender[town] = NO_SIDE
        # A change of hands moves the town out of its standing state: its baseline balances end.
        for key in ("services", "control", "council", "takeover_pressure"):
            self.balance[key][town] = 0.0
        self.control_changes += 1
        self.dest_probs = None
        self.record_event(
            "control_change",
            town,
            note=cause,
            controller_from=self.controller_names[old],
            controller_to=self.controller_names[code],
        )

    def prepare_household_terms(self) -> None:
        """Town-level parts of the household utilities, computed once per town per day."""
        ts = self.town_state
        sc = self.scenario
        ch = sc.choice
        mech = sc.mechanisms
        align = np.array([g.alignment for g in self.rival_groups])
        rel = np.array([g.fighters for g in self.rival_groups]) / self.hts.reference_fighters
        rival_support = ts.rival_presence @ (np.maximum(align, 0) * rel) if len(align) else 0.0
        # HTS protects, serves and controls where it holds the town; a rival holder backs resistance.
        holds = ts.hts_holds
        rival_held = ts.controller >= GROUP0
        strength = np.minimum(ts.control * holds * self.hts.strength + rival_support, sc.hts.strength_cap)
        # Protection as households value it, local: the threat in and near the town, HTS's
        # presence there and its retaliation for strikes on it or its neighbours. Zero when
        # the rally mechanism is off.
        ts.protection = (
            mech.rally * ts.threat * strength * (1 + sc.hts.rally_protection_boost * ts.retaliation) * ts.open
        )
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

    def aggregate(self) -> None:
        """Step 6: town aggregates of the households (persons-weighted).

        Households are stored sorted by home town and most are at home, so sums by
        current town are contiguous-segment sums over the home order, corrected
        by the (few) displaced households: one sequential pass instead of a
        scattered one.
        """
        ts = self.town_state
        hh = self.hh
        n = ts.n
        self.displaced_idx = np.flatnonzero(hh.displaced)
        by = np.bincount(hh.town.astype(np.intp) * 3 + hh.stance, weights=hh.persons, minlength=3 * n).reshape(n, 3)
        present = by.sum(axis=1)
        ts.present = present
        safe = np.maximum(present, 1e-12)
        ts.coop_share = by[:, COOPERATE] / safe
        ts.resist_share = by[:, RESIST] / safe
        self.by_stance = by
        protesting = np.flatnonzero(hh.protesting)
        protest = np.bincount(hh.town[protesting], weights=hh.persons[protesting], minlength=n)
        self.protest_persons = protest
        ts.protest_share = protest / safe
        d = self.displaced_idx
        ts.hosted = np.bincount(hh.town[d], weights=hh.persons[d], minlength=n)
        self.dest_probs = None

    def update_reputation(self) -> None:
        """Resisting reputation: a decaying memory of protest, as the regime sees it."""
        ts = self.town_state
        decay = self.air.rep_decay
        signal = np.minimum(1.0, ts.protest_share / self.scenario.air_campaign.reputation_protest_share)
        ts.reputation = np.where(ts.open, ts.reputation * decay + (1 - decay) * signal, 0.0)

    def town_sums(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``persons * values`` by current town (after :meth:`aggregate` this day)."""
        hh = self.hh
        weighted = hh.persons * values
        sums = np.add.reduceat(weighted, self._home_starts, dtype=np.float64)
        sums[self._home_empty] = 0.0
        d = self.displaced_idx
        if len(d):
            n = self.town_state.n
            sums -= np.bincount(hh.home[d], weights=weighted[d], minlength=n)
            sums += np.bincount(hh.town[d], weights=weighted[d], minlength=n)
        return sums

    def home_by_stance(self) -> np.ndarray:
        """Persons by home town and stance, (towns, 3): the current-town table moved by the displaced."""
        hh = self.hh
        n = self.town_state.n
        d = self.displaced_idx
        by = self.by_stance.copy()
        if len(d):
            w = hh.persons[d]
            by -= np.bincount(hh.town[d].astype(np.intp) * 3 + hh.stance[d], weights=w, minlength=3 * n).reshape(n, 3)
            by += np.bincount(hh.home[d].astype(np.intp) * 3 + hh.stance[d], weights=w, minlength=3 * n).reshape(n, 3)
        return by

    # ------------------------------------------------------------------ household moves

    def move_households(self, idx: np.ndarray, dest: np.ndarray, *, reason: str) -> None:
        """Move households ``idx`` to towns ``dest`` (-1: no open destination, stay); record the flows."""
        hh = self.hh
        origin = hh.town[idx]
        ok = dest >= 0
        idx, origin, dest = idx[ok], origin[ok], dest[ok]
        if not len(idx):
            return
        hh.town[idx] = dest
        hh.displaced[idx] = dest != hh.home[idx]
        n = self.town_state.n
        flows = np.bincount(origin.astype(np.intp) * n + dest, weights=hh.persons[idx], minlength=n * n)
        moved = float(flows.sum()) * self.weight
        self.moves_today += moved
        self.moves_cum += moved
        for k in np.flatnonzero(flows):
            self.record_event(
                "displacement",
                int(k // n),
                to_town=int(k % n),
                count=0,
                persons=float(flows[k]) * self.weight,
                note=reason,
            )
        self.dest_probs = None

    def return_households(self, idx: np.ndarray) -> None:
        """Displaced households ``idx`` go back to their home towns."""
        hh = self.hh
        n = self.town_state.n
        flows = np.bincount(hh.town[idx].astype(np.intp) * n + hh.home[idx], weights=hh.persons[idx], minlength=n * n)
        hh.town[idx] = hh.home[idx]
        hh.displaced[idx] = False
        self.returns_today += float(flows.sum()) * self.weight
        for k in np.flatnonzero(flows):
            self.record_event("return", int(k // n), to_town=int(k % n), persons=float(flows[k]) * self.weight)

    def regime_takes(self, town: int) -> None:
        """The regime takes ``town``: HTS and councils gone, everyone present flees."""
        ts = self.town_state
        ts.open[town] = False
        for arr in (ts.control, ts.services, ts.council, ts.reputation, ts.civil_society):
            arr[town] = 0.0
        ts.independent[town] = False
        self.balance["council"][town] = 0.0
        self.change_controller(town, REGIME_HOLDS, "regime advance")
        self.dest_probs = None
        self.update_front_proximity()
        flight(self, fallen_town=town)

    def nearest_open_town(self, town: int) -> int:
        """Nearest town not held by the regime (-1 if none)."""
        for j in self._near[town]:
            if self.town_state.open[j]:
                return int(j)
        return -1

    def kill_persons(self, town: int, k: int, rng: np.random.Generator, *, harm: bool = True) -> float:
        """Kill up to ``k`` persons among those present in ``town`` (chosen by household size).

        ``harm`` adds the deaths to the victims' households' personal harm memory (which
        feeds their grievances like strike harm); fighting between rebels passes False.
        """
        if k <= 0:
            return 0.0
        hh = self.hh
        idx = np.flatnonzero((hh.town == town) & (hh.persons > 0))
        if not len(idx):
            return 0.0
        p = hh.persons[idx].astype(float)
        victims = rng.choice(idx, size=k, p=p / p.sum())
        hit, counts = np.unique(victims, return_counts=True)
        dead = np.minimum(counts.astype(np.float32), hh.persons[hit])
        hh.persons[hit] -= dead
        if harm:
            hh.harm[hit] += dead * np.float32(self.scenario.exposure.personal_weight)
        self.town_state.killed_home_cum += np.bincount(hh.home[hit], weights=dead, minlength=self.town_state.n)
        gone = hit[hh.persons[hit] <= 0]
        hh.protesting[gone] = False
        return float(dead.sum())

    def enlist(self, idx: np.ndarray) -> None:
        """Households ``idx`` send a fighter: cooperating ones to HTS, resisting ones to a rival group present."""
        if not len(idx):
            return
        hh = self.hh
        coop = idx[hh.stance[idx] == COOPERATE]
        hh.recruited[coop] = RECRUITED_HTS
        self.hts.fighters += len(coop) * self.weight
        self.hts.recruits += len(coop) * self.weight
        res = idx[hh.stance[idx] == RESIST]
        if len(res) and self.rival_groups:
            group = np.argmax(self.town_state.rival_presence[hh.town[res]], axis=1)
            hh.recruited[res] = RECRUITED_RIVAL
            hh.rival_group[res] = group
            for g, c in enumerate(np.bincount(group, minlength=len(self.rival_groups))):
                self.rival_groups[g].fighters += c * self.weight
                self.rival_groups[g].recruits += c * self.weight

    def record_event(
        self,
        kind: str,
        town: int,
        *,
        to_town: int = -1,
        count: int = 1,
        persons: float = 0.0,
        note: str = "",
        controller_from: str = "",
        controller_to: str = "",
    ) -> None:
        """Append an event row (strike, council takeover, arrests, displacement, control change, ...)."""
        self.events.append((self.day, kind, town, to_town, count, persons, note, controller_from, controller_to))

    # ------------------------------------------------------------------ convenience

    def town_index(self, name: str) -> int:
        """Index of a town by name."""
        return self.town_state.names.index(name)

    @property
    def grid(self) -> OrthogonalMooreGrid:
        """Mesa's grid of the geography, each town on its cell (``geo.cells``).

        Built on first use: the rules work on the town arrays and never walk the grid, and
        connecting its ~2,000 cells costs about a tenth of a short calibration run. Building it
        draws no random numbers, so a run is the same whether or not anything looks at it.
        """
        if self._grid is None:
            self._grid = OrthogonalMooreGrid((self.geo.width, self.geo.height), torus=False, random=self.random)
            for town in self.towns:
                town.place(self._grid[self.geo.cells[town.index]])
        return self._grid

    @property
    def households_alive(self) -> int:
        """Household agents with living members."""
        return int((self.hh.persons > 0).sum())

    def release(self) -> None:
        """Drop Mesa's global references to this model (3.3 leaks finished models)."""
        from mesa.agent import Agent

        Agent._ids.pop(self, None)
        if self._grid is None:
            return
        for cell in self._grid.all_cells:
            if hasattr(cell, "_clear_cache"):
                cell._clear_cache()

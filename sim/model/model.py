"""The allegiance model: one step is one day, in the schedule of ``docs/ODD.md`` section 3.

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

The state every part shares is one :class:`~sim.model.state.ModelState` (``model.state``);
the rules that change it live with the concepts they belong to: the actors
(:mod:`sim.model.actors`), the towns (:mod:`sim.model.towns`), the households
(:mod:`sim.model.households`) and the collector (:mod:`sim.model.collect`). This module
builds them and runs the day.
"""

from __future__ import annotations

import numpy as np
from mesa import Model
from mesa.discrete_space import OrthogonalMooreGrid

from sim.model import control, households, rules, towns
from sim.model.actors import HTS, AirCampaign, CivilSociety, Conflict, Household, RegimeFront, RivalGroup, Town
from sim.model.collect import Collector
from sim.model.state import STREAMS, HouseholdArrays, ModelState, TownState
from sim.scenario.geography import Geography, build_geography
from sim.scenario.schema import Scenario

__all__ = ["STREAMS", "AllegianceModel", "geography_for"]

# ---------------------------------------------------------------------- construction reused across runs
# A calibration draws thousands of parameter sets of one scenario in each worker process; the
# geography (cells and distances) and the matrices fixed by it do not change with the drawn
# parameters. They are kept for the last geography built in this process, keyed by what
# determines them, and are read-only for the model (the rules never write them).
_GEO_CACHE: dict[str, object] = {"key": None, "geo": None, "derived": {}}


def _geo_key(scenario: Scenario) -> tuple:
    """What :func:`~sim.scenario.geography.build_geography` reads: the towns' places and the grid."""
    return (
        scenario.grid.cell_km,
        scenario.grid.width,
        scenario.grid.height,
        tuple((t.name, t.lat, t.lon, t.x, t.y) for t in scenario.towns),
    )


def geography_for(scenario: Scenario) -> Geography:
    """The scenario's geography, built once per process for the same towns and grid (read-only)."""
    key = _geo_key(scenario)
    if _GEO_CACHE["key"] != key:
        geo = build_geography(scenario)
        geo.distance_km.flags.writeable = False
        _GEO_CACHE.update(key=key, geo=geo, derived={})
    return _GEO_CACHE["geo"]  # type: ignore[return-value]


def _cached(key: tuple, geo: Geography, build, scenario: Scenario) -> np.ndarray:
    """``build(scenario, geo)``, kept while ``geo`` is the cached geography and ``key`` (the
    parameters it reads) is the same; a fresh array for any other geography."""
    if geo is not _GEO_CACHE["geo"]:
        return build(scenario, geo)
    derived: dict = _GEO_CACHE["derived"]  # type: ignore[assignment]
    if key not in derived:
        value = build(scenario, geo)
        value.flags.writeable = False
        derived[key] = value
    return derived[key]


class AllegianceModel(Model):
    """Civilian allegiance under air strikes.

    The shared state is ``state`` (:class:`~sim.model.state.ModelState`); the model
    exposes its public parts read-only, as read by the collector, the runner and the app:
    ``town_state`` (per-town arrays, :class:`~sim.model.state.TownState`;
    ``town_state.controller`` holds each town's controller code, whose names are
    ``controller_names``: ``"hts"``, ``"contested"``, ``"regime"``, then the rival groups in
    scenario order; ``Town.controller`` gives one town's as a name), ``hh`` (household
    arrays), ``hts``, ``rival_groups``, ``conflict`` (coalitions and fights), ``events``,
    ``scenario``, ``seed``, ``day``, ``weight``, ``unit_size``, ``geo``, ``resisting``.
    The actors ``air``, ``front`` and ``civil_society``, the town agents ``towns``, the
    ``collector`` and the household ``snapshots`` are the model's own.

    Args:
        scenario: a validated :class:`~sim.scenario.schema.Scenario` (every parameter is there,
            with its unit, range and source).
        seed: root seed; defaults to ``scenario.seed``. Independent random streams for
            initialisation, households, the air campaign, the front, HTS and
            repression are spawned from it with ``numpy.random.SeedSequence``
            (:class:`~sim.model.state.Streams`), so a change in one actor's draws never
            shifts another's (common random numbers across paired runs).
        household_agents: create a Mesa ``Household`` agent (a view onto the arrays)
            for every household. Turn off only for benchmarks of the bare arrays.
        geography: the scenario's geography, if already built (default: built here, or reused
            from this process's last run of the same towns and grid: :func:`geography_for`).
        collect: what the collector records, ``"full"`` (every table, the default) or
            ``"targets"`` (the columns calibration statistics read; see
            :data:`sim.model.collect.COLLECT_LEVELS`).
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int | None = None,
        *,
        household_agents: bool = True,
        geography: Geography | None = None,
        collect: str = "full",
    ):
        seed = scenario.seed if seed is None else int(seed)
        super().__init__(rng=seed)
        self.state = st = ModelState(scenario, seed, geography or geography_for(scenario))
        st.controller_names = control.controller_names([g.name for g in scenario.rivals.groups])
        self._grid: OrthogonalMooreGrid | None = None  # built on first use: see ``grid``

        # Towns, then the households drawn into them (stored sorted by home town).
        ts = st.town_state = towns.init_town_state(scenario)
        st.neighbour = _cached(
            ("neighbour", scenario.exposure.neighbour_weight, scenario.exposure.neighbour_range_km),
            st.geo,
            towns.neighbour_weights,
            scenario,
        )
        st.exp_decay = rules.half_life_decay(scenario.exposure.half_life_days)
        st.memory_decay = rules.half_life_decay(scenario.grievance.memory_half_life_days)
        st.civil_society0 = ts.civil_society.copy()
        init = st.streams.init
        hh = st.hh = households.create_households(scenario, init)
        ts.persons0 = np.bincount(hh.home, weights=hh.persons, minlength=ts.n)
        counts = np.bincount(hh.home, minlength=ts.n)
        if np.any(np.diff(hh.home) < 0):
            raise AssertionError("households must be stored sorted by home town")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        st.home_empty = counts == 0
        st.home_starts = np.minimum(starts, len(hh) - 1)
        ts.capacity = ts.persons0 * np.array([t.host_capacity for t in scenario.towns])

        # The Mesa agents: town and household views, then the collective actors.
        self.towns = [Town(self, st, i, t.stance) for i, t in enumerate(scenario.towns)]
        if household_agents:
            for i in range(len(hh)):
                Household(self, st, i)
        st.hts = HTS(self, st)
        st.rival_groups = [RivalGroup(self, st, i, g) for i, g in enumerate(scenario.rivals.groups)]
        st.conflict = Conflict(self, st)
        self.air = AirCampaign(self, st)
        self.front = RegimeFront(self, st)
        self.civil_society = CivilSociety(self, st)
        st.nearest = _cached(("nearest",), st.geo, lambda _sc, geo: towns.nearest_matrix(geo), scenario)

        # The initial derived state (ODD 5.5), calibrated where the scenario asks for it.
        towns.update_front_proximity(st)
        towns.after_strikes(st)
        households.aggregate(st)
        towns.prepare_household_terms(st)
        st.balance = towns.zero_balance(ts.n)
        if scenario.choice.calibrate_constants:
            # Each household carries its origin town's constants wherever it goes (dispositions travel).
            alpha_resist, alpha_coop = households.calibrate_constants(st)
            hh.intercept_resist[:] = alpha_resist[hh.home]
            hh.intercept_coop[:] = alpha_coop[hh.home]
            households.draw_stances_from_choice(st, init)
            households.aggregate(st)
            towns.prepare_household_terms(st)
        if scenario.protest.calibrate_threshold:
            households.calibrate_protest(st, init)
            households.aggregate(st)
        if scenario.baseline.stationary:
            self.balance_baseline()
        st.town_state.control_standing[:] = st.town_state.control  # where control returns to (7.4 item 3)
        self.collector = Collector(st, collect)
        self.snapshots: dict[int, dict[str, np.ndarray]] = {}

    # ------------------------------------------------------------------ schedule

    def step(self) -> None:
        """One day."""
        st = self.state
        st.start_day()
        self.air.step()  # 1
        self.front.step()  # 2
        towns.update_threat(st)
        self.hts.step()  # 3
        self.civil_society.step()  # 3b
        towns.update_predation(st)
        for group in st.rival_groups:  # 4
            group.step()
        self.conflict.step()  # 4b: coalitions and fights for towns
        towns.prepare_household_terms(st)
        households.step_households(st)  # 5
        households.aggregate(st)  # 6
        self.air.update_reputation()
        self.collector.collect(st.day)
        if st.day in st.scenario.output.household_snapshot_days:
            self.snapshots[st.day] = st.hh.snapshot()
        st.day += 1
        if st.day >= st.scenario.days:
            self.running = False

    def run(self, days: int | None = None, progress=None) -> None:
        """Run ``days`` steps (default: the scenario's ``days``)."""
        for _ in range(self.scenario.days if days is None else days):
            self.step()
            if progress is not None:
                progress.update(1)

    # ------------------------------------------------------------------ stationary baseline

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
        st = self.state
        ts = st.town_state
        sc = st.scenario
        ps = households.stationary_protest(st, 0.0)[0]
        ts.protest_share = ps
        p_arrest = rules.arrest_probability(
            sc.hts.security_per_control * ts.control * st.hts.strength * (ts.open & ts.hts_holds),  # as HTS._repress
            ps,
            arrest_constant=sc.protest.arrest_constant,
            crowd_scale=sc.protest.crowd_scale,
        )
        # Arrests per household agent per day at the stationary protest, remembered at q per day.
        ts.repression = sc.hts.repression * p_arrest * ps / (1 - st.memory_decay) * ts.open
        drifts = self.hts.drifts()
        st.balance.update({k: drifts[k] for k in ("resources", "services", "control", "legitimacy")})
        st.balance["takeover_pressure"] = np.asarray(drifts["takeover_pressure"]).copy()
        st.balance["council"] = self.civil_society.drift()
        st.balance["hts_harm"] = towns.hts_harm(st)
        # Standing attrition: each armed actor loses what it expects to recruit per day at day 0.
        st.balance["hts_fighters"], st.balance["rival_fighters"] = households.expected_recruits(st)
        households.aggregate(st)  # back to the realised protest of day -1

    # ------------------------------------------------------------------ the shared state, read-only

    @property
    def scenario(self) -> Scenario:
        """The scenario of the run."""
        return self.state.scenario

    @property
    def seed(self) -> int:
        """The root seed."""
        return self.state.seed

    @property
    def day(self) -> int:
        """Days done (the index of the next day to run)."""
        return self.state.day

    @property
    def geo(self) -> Geography:
        """Distances between towns and their grid cells."""
        return self.state.geo

    @property
    def town_state(self) -> TownState:
        """Per-town arrays."""
        return self.state.town_state

    @property
    def hh(self) -> HouseholdArrays:
        """Per-household arrays."""
        return self.state.hh

    @property
    def hts(self) -> HTS:
        """The HTS actor."""
        return self.state.hts

    @property
    def rival_groups(self) -> list[RivalGroup]:
        """The rival group actors, in scenario order."""
        return self.state.rival_groups

    @property
    def conflict(self) -> Conflict:
        """Coalitions and fights for towns."""
        return self.state.conflict

    @property
    def controller_names(self) -> list[str]:
        """Names indexed by the controller codes of ``town_state.controller``."""
        return self.state.controller_names

    @property
    def weight(self) -> float:
        """Real households (or persons) per agent: ``1 / households.sample_fraction``."""
        return self.state.weight

    @property
    def unit_size(self) -> int:
        """Persons per agent at the start (1 when the unit is a person)."""
        return self.state.unit_size

    @property
    def resisting(self) -> np.ndarray:
        """Towns whose initial stance is resisting."""
        return self.state.resisting

    @property
    def events(self) -> list[tuple]:
        """Event rows recorded so far (see :data:`sim.model.collect.EVENT_COLUMNS`)."""
        return self.state.events

    @property
    def threshold_shift(self) -> float:
        """The calibrated shift of every protest threshold (0 when not calibrated)."""
        return self.state.threshold_shift

    def move_households(self, idx: np.ndarray, dest: np.ndarray, *, reason: str) -> None:
        """Move households ``idx`` to towns ``dest`` (:func:`sim.model.households.move_households`)."""
        households.move_households(self.state, idx, dest, reason=reason)

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

"""The model's shared state: one :class:`ModelState` that every part of a day reads and changes.

The Mesa agents (:mod:`sim.model.actors`), the town updates (:mod:`sim.model.towns`), the
household rules (:mod:`sim.model.households`) and the collector (:mod:`sim.model.collect`)
all receive the same :class:`ModelState`; :class:`~sim.model.model.AllegianceModel` builds
it and runs the schedule. This module imports no sibling that imports it back: it holds the
data (towns and households as structure-of-arrays dataclasses, the random streams, the day,
the event log, the day's flows and caches), and the other modules hold the rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

import numpy as np

from sim.scenario.geography import Geography
from sim.scenario.schema import Scenario

# New streams go at the end: SeedSequence children do not depend on how many are spawned.
STREAMS = ("init", "households", "air", "front", "hts", "repression", "casualties", "control", "fight")


@dataclass
class TownState:
    """Per-town state, one entry per town (structure of arrays, float64)."""

    names: list[str]
    persons0: np.ndarray  # model persons living there at the start
    council: np.ndarray  # independent council legitimacy 0-1
    independent: np.ndarray  # bool: council still independent of HTS
    control: np.ndarray  # HTS control 0-1
    control_standing: np.ndarray  # the level control returns to (hts.control_half_life_days): day 0, last change
    services: np.ndarray  # HTS services 0-1
    damage: np.ndarray  # physical damage to market and council 0-1
    civil_society: np.ndarray  # civil society investment 0-1
    reputation: np.ndarray  # resisting reputation visible to the regime (decaying memory of protest)
    exposure: np.ndarray  # E_t: own harm memory
    exposure_eff: np.ndarray  # E_t plus distance-weighted neighbours' harm
    exposure_hts: np.ndarray  # E^H_t: harm memory weighted by HTS's presence in the struck town
    exposure_hts_eff: np.ndarray  # E^H_t plus distance-weighted neighbours' E^H
    threat_rate: np.ndarray  # mean daily harm in and near the town over the protection memory (7.7)
    repression: np.ndarray  # decaying memory of arrests per household
    takeover_memory: np.ndarray  # decaying memory of council takeovers
    retaliation: np.ndarray  # decaying memory of HTS retaliation for strikes on the town and its neighbours
    front: np.ndarray  # int8 OPPOSITION / CONTESTED / REGIME
    front_proximity: np.ndarray  # 0-1
    capacity: np.ndarray  # model persons it can host as displaced
    border: np.ndarray  # bool
    rival_presence: np.ndarray  # (towns, groups) presence 0-1
    controller: np.ndarray  # int16 controller code (sim.model.control): HTS, contested, regime, local, GROUP0 + group
    attacker: np.ndarray  # int16 controller code of the side attacking a contested town (NO_SIDE if none)
    defender: np.ndarray  # int16 controller code of the side defending it (NO_SIDE if none)
    advance: np.ndarray  # decaying memory of front changes, distance-weighted
    protest_memory: np.ndarray  # decaying memory of the protest share (sustained protest, rivals.local_window_days)
    holder_services: np.ndarray  # services of the rival group holding the town 0-1 (0 unless rival-held)
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
    hts_holds: np.ndarray  # bool: controller is HTS (HTS services, taxes, security, takeovers apply)
    common_threat: np.ndarray  # regime harm and front advance, 0-1 (the rivals' common threat)
    predation: np.ndarray  # HTS-attributed harm of arrests, takeovers and taxes (what rivals see of HTS)
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


@dataclass
class HouseholdArrays:
    """Per-household state, one entry per agent (structure of arrays)."""

    home: np.ndarray  # int16 town index where the household lived at the start
    town: np.ndarray  # int16 town index where it is now
    persons: np.ndarray  # float32 living members (float for fast weighting)
    stance: np.ndarray  # int8 RESIST / NEUTRAL / COOPERATE
    g_regime: np.ndarray  # float32 grievance against the regime, 0-1
    g_hts: np.ndarray  # float32 grievance against HTS, 0-1
    g_regime0: np.ndarray  # float32 standing (baseline) grievance against the regime
    g_hts0: np.ndarray  # float32 standing grievance against HTS
    fear: np.ndarray  # float32 0-1
    harm: np.ndarray  # float32 personal harm memory (members killed, weighted, decaying)
    harm_hts: np.ndarray  # float32 the same, weighted by HTS's presence where the members were killed
    risk_aversion: np.ndarray  # float32 R_i, U(0, 1)
    threshold: np.ndarray  # float32 T_i
    intercept_resist: np.ndarray  # float32 alpha_R of the household's origin (travels with it)
    intercept_coop: np.ndarray  # float32 alpha_C of the household's origin (travels with it)
    displaced: np.ndarray  # bool: away from home
    protesting: np.ndarray  # bool
    recruited: np.ndarray  # int8 NOT_RECRUITED / RECRUITED_HTS / RECRUITED_RIVAL
    rival_group: np.ndarray  # int8 group joined (-1 none)
    jailed_until: np.ndarray  # int32 day until which the household cannot protest

    def __len__(self) -> int:
        return len(self.home)

    def snapshot(self) -> dict[str, np.ndarray]:
        """A copy of every array (for sparse household snapshots)."""
        return {f.name: getattr(self, f.name).copy() for f in fields(self)}


@dataclass(frozen=True)
class Streams:
    """Independent random streams, one per process, spawned from the root seed.

    ``numpy.random.SeedSequence(seed).spawn`` gives each name in :data:`STREAMS` its own
    generator, so a change in one actor's draws never shifts another's (common random
    numbers across paired runs).
    """

    init: np.random.Generator
    households: np.random.Generator
    air: np.random.Generator
    front: np.random.Generator
    hts: np.random.Generator
    repression: np.random.Generator
    casualties: np.random.Generator
    control: np.random.Generator
    fight: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> Streams:
        """The streams of root seed ``seed``."""
        children = np.random.SeedSequence(seed).spawn(len(STREAMS))
        return cls(*(np.random.Generator(np.random.PCG64(s)) for s in children))


# ---------------------------------------------------------------------- the collective actors, as read here
# The actors are defined in sim.model.actors, which imports this module; what the households,
# towns and collector read of them is described structurally.


class HTSView(Protocol):
    """What the other modules read and change of HTS (:class:`sim.model.actors.HTS`)."""

    fighters: float
    reference_fighters: float
    resources: float
    legitimacy: float
    recruits: float
    takeovers: int
    fight_losses: float

    @property
    def strength(self) -> float: ...

    @property
    def retaliation(self) -> float: ...


class RivalGroupView(Protocol):
    """What the other modules read and change of a rival group (:class:`sim.model.actors.RivalGroup`)."""

    index: int
    name: str
    fighters: float
    alignment: float
    cohesion: float
    recruits: float
    fight_losses: float
    attack_losses: float
    resources: float
    threat_memory: float


class ConflictView(Protocol):
    """What the collector reads of the conflict (:class:`sim.model.actors.Conflict`)."""

    coalitions: list[list[str]]
    splits: int
    killed_cum: float
    fighters_lost_cum: float


# ---------------------------------------------------------------------- the state


class ModelState:
    """Everything the parts of a day share, in one object.

    Built by :class:`~sim.model.model.AllegianceModel` (the arrays first, then the actors);
    read and changed by the actors, the town updates, the household rules and the collector.

    Inputs: ``scenario``, ``seed``, ``geo`` (distances and cells), ``streams``
    (:class:`Streams`), ``weight`` (real households or persons per agent), ``unit_size``,
    ``controller_names`` (names indexed by the controller codes of :mod:`sim.model.control`),
    ``resisting`` (towns whose initial stance is resisting), ``civil_society0``.

    State: ``day``, ``town_state`` (:class:`TownState`), ``hh`` (:class:`HouseholdArrays`),
    ``hts``, ``rival_groups``, ``conflict`` (the collective actors others read),
    ``balance`` (the stationary baseline's balances, 5.7 of the ODD), ``events`` (rows
    of :meth:`record_event`), ``threshold_shift`` (protest calibration).

    The day's flows and aggregates: ``moves_today``, ``moves_cum``, ``returns_today``,
    ``control_changes``; ``by_stance`` (persons by current town and stance),
    ``protest_persons``, ``displaced_idx`` (set by :func:`sim.model.households.aggregate`).

    Fixed for the run: ``neighbour`` (distance weights of neighbours' harm), ``exp_decay``
    and ``memory_decay`` (daily retention of harm and of repression and takeovers),
    ``nearest`` (towns by distance from each town), ``home_starts`` and ``home_empty``
    (segments of the households, stored sorted by home town).

    Caches: ``dest_probs`` (the flight destination matrix; None when towns changed) and
    ``distance_decay`` (the gravity model's distance term, once needed).
    """

    # Set while the model is built (AllegianceModel.__init__), in this order:
    controller_names: list[str]
    town_state: TownState
    neighbour: np.ndarray
    exp_decay: float
    memory_decay: float
    civil_society0: np.ndarray
    hh: HouseholdArrays
    home_starts: np.ndarray
    home_empty: np.ndarray
    hts: HTSView
    rival_groups: Sequence[RivalGroupView]
    conflict: ConflictView
    nearest: np.ndarray
    balance: dict[str, float | np.ndarray]
    # Set by sim.model.households.aggregate, first while the model is built:
    by_stance: np.ndarray
    protest_persons: np.ndarray
    displaced_idx: np.ndarray

    def __init__(self, scenario: Scenario, seed: int, geo: Geography):
        self.scenario = scenario
        self.seed = seed
        self.geo = geo
        self.streams = Streams.from_seed(seed)
        self.day = 0
        hc = scenario.households
        self.unit_size = 1 if hc.unit == "person" else hc.size
        self.weight = 1.0 / hc.sample_fraction  # real households (or persons) per agent
        self.resisting = np.array([t.stance == "resisting" for t in scenario.towns])
        self.events: list[tuple] = []
        self.moves_today = 0.0
        self.moves_cum = 0.0
        self.returns_today = 0.0
        self.control_changes = 0
        self.threshold_shift = 0.0
        self.dest_probs: np.ndarray | None = None
        self.distance_decay: np.ndarray | None = None

    def start_day(self) -> None:
        """Reset the day's flow tallies."""
        self.moves_today = 0.0
        self.returns_today = 0.0

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

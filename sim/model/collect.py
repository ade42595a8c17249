"""Daily data collection into preallocated arrays (town level and governorate level).

No DataFrame is built during a run: each day writes one row per table into
numpy arrays, and :meth:`Collector.frames` turns them into tidy DataFrames once.
Counts of persons are reported in real persons (scaled by 1 / sample_fraction).

Who holds each town: ``towns`` has a categorical ``controller`` column (``hts``,
``contested``, ``regime`` or a rival group's name); ``events`` has a
``control_change`` row per change with ``controller_from``, ``controller_to`` and the
cause in ``note``, and a ``coalition`` row (members in ``note``) per coalition formed;
``timeseries`` has ``fighters:<group>``, ``fighters_lost:<side>`` (``hts`` and each group) and
``persons_under:<controller>`` per day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.model.control import CONTESTED as HELD_CONTESTED
from sim.model.control import GROUP0, HTS_HOLDS, LOCAL
from sim.model.rules import COOPERATE, NEUTRAL, RESIST
from sim.model.state import ModelState
from sim.scenario.schema import FRONT_STATUS


@dataclass(frozen=True)
class Column:
    """One output column: a short title for axes, its unit, and what it means.

    These definitions are the one source of the output data dictionary
    (``docs/OUTPUTS.md``, written by ``python -m sim.model.datadict``) and of the
    axis labels of every figure (:data:`sim.viz.style.LABELS`). A column the
    collector records must be defined here first: the arrays are allocated from
    these keys.
    """

    title: str
    unit: str
    meaning: str


PERSONS = "persons"
PERSONS_PER_DAY = "persons per day"
SHARE = "share of persons"
LEVEL01 = "level, 0 to 1"

# Key columns of the timeseries table (not collected state).
TIMESERIES_KEYS: dict[str, Column] = {
    "day": Column("day", "day index", "Day of the run; 0 is the first simulated day (`start_date`)."),
    "date": Column(
        "date", "calendar date", "`start_date` plus `day`; present only when the scenario has a `start_date`."
    ),
}

# Governorate-level state collected once a day (one row per day in ``timeseries``).
GOV_COLUMNS: dict[str, Column] = {
    "persons_present": Column(
        "persons present", PERSONS, "Living persons in the governorate's open towns at the end of the day."
    ),
    "killed_cum": Column(
        "civilians killed (cumulative)",
        PERSONS,
        "Civilians killed by air strikes and in fighting between HTS and rival groups since day 0.",
    ),
    "killed": Column(
        "civilians killed", PERSONS_PER_DAY, "Civilians killed by air strikes and in fighting on this day."
    ),
    "displaced_persons": Column(
        "displaced persons", PERSONS, "Living persons who are away from their home town at the end of the day."
    ),
    "displacement_moves": Column(
        "displacements per day",
        PERSONS_PER_DAY,
        "Persons who moved to another town on this day (one person may move more than once).",
    ),
    "displacement_moves_cum": Column(
        "displacements (cumulative)",
        PERSONS,
        "Displacement moves since day 0, counted per move (as OCHA counts displacements).",
    ),
    "returns": Column("returns", PERSONS_PER_DAY, "Displaced persons who went back to their home town on this day."),
    "strikes": Column("air strikes", "strikes per day", "Air strikes landing on this day."),
    "strikes_cum": Column("air strikes (cumulative)", "strikes", "Air strikes since day 0."),
    "coop_share": Column("cooperation with HTS", SHARE, "Share of persons present who cooperate with HTS."),
    "resist_share": Column("resisting HTS", SHARE, "Share of persons present who resist HTS."),
    "neutral_share": Column("neutral", SHARE, "Share of persons present who neither cooperate with nor resist HTS."),
    "protest_share": Column("protest participation", SHARE, "Share of persons present who protested on this day."),
    "coop_share_resisting": Column(
        "cooperation with HTS, resisting towns",
        SHARE,
        "Share cooperating among persons present in towns whose initial stance is resisting (by current town).",
    ),
    "coop_share_resisting_home": Column(
        "cooperation with HTS, resisting towns (by home)",
        SHARE,
        "Share cooperating among living persons whose home town's initial stance is resisting, wherever they are.",
    ),
    "resist_share_resisting": Column(
        "resisting HTS, resisting towns",
        SHARE,
        "Share resisting among persons present in towns whose initial stance is resisting (by current town).",
    ),
    "resist_share_resisting_home": Column(
        "resisting HTS, resisting towns (by home)",
        SHARE,
        "Share resisting among living persons whose home town's initial stance is resisting, wherever they are.",
    ),
    "protest_share_resisting": Column(
        "protest participation, resisting towns",
        SHARE,
        "Share protesting among persons present in towns whose initial stance is resisting.",
    ),
    "persons_resisting_stayers": Column(
        "residents at home, resisting towns",
        PERSONS,
        "Living persons whose home town's initial stance is resisting and who are in their home town "
        "(in both resisting-town measures).",
    ),
    "persons_resisting_left": Column(
        "residents away, resisting towns",
        PERSONS,
        "Living persons whose home town's initial stance is resisting and who are elsewhere "
        "(in the by-home measure only).",
    ),
    "persons_resisting_guests": Column(
        "guests in resisting towns",
        PERSONS,
        "Displaced persons present in towns whose initial stance is resisting (in the by-current-town measure only).",
    ),
    "coop_share_resisting_stayers": Column(
        "cooperation, residents at home (resisting towns)",
        SHARE,
        "Share cooperating among `persons_resisting_stayers`.",
    ),
    "coop_share_resisting_left": Column(
        "cooperation, residents away (resisting towns)", SHARE, "Share cooperating among `persons_resisting_left`."
    ),
    "coop_share_resisting_guests": Column(
        "cooperation, guests in resisting towns", SHARE, "Share cooperating among `persons_resisting_guests`."
    ),
    "killed_resisting_home_cum": Column(
        "residents of resisting towns killed (cumulative)",
        PERSONS,
        "Civilians killed since day 0 whose home town's initial stance is resisting (in neither measure).",
    ),
    "coop_share_other": Column(
        "cooperation with HTS, other towns",
        SHARE,
        "Share cooperating among persons present in towns whose initial stance is not resisting.",
    ),
    "hts_control_mean": Column(
        "HTS control (person-weighted)", LEVEL01, "HTS control of the towns, weighted by the persons present in each."
    ),
    "hts_services_mean": Column(
        "HTS services (person-weighted)", LEVEL01, "HTS services in the towns, weighted by the persons present in each."
    ),
    "council_mean": Column(
        "council legitimacy (person-weighted)",
        LEVEL01,
        "Legitimacy of the local councils, weighted by the persons present in each town.",
    ),
    "councils_independent": Column("independent councils", "towns", "Towns whose council is still independent of HTS."),
    "hts_fighters": Column(
        "HTS fighters", "fighters", "HTS fighters (recruits added, losses to strikes and fights removed)."
    ),
    "hts_resources": Column(
        "HTS resources", "resource units", "HTS resources: income from controlled towns minus the cost of services."
    ),
    "hts_legitimacy": Column(
        "HTS legitimacy", LEVEL01, "HTS legitimacy, adjusting toward the governorate's cooperating share."
    ),
    "hts_retaliation": Column(
        "HTS retaliation",
        "level",
        "HTS retaliation against the regime, persons-weighted mean of the towns' own memories of strikes on "
        "them and their neighbours (0 = none).",
    ),
    "hts_recruits_cum": Column(
        "recruits to HTS (cumulative)", "fighters", "Fighters recruited by HTS from cooperating households since day 0."
    ),
    "rival_recruits_cum": Column(
        "recruits to rival groups (cumulative)",
        "fighters",
        "Fighters recruited by rival groups from resisting households since day 0.",
    ),
    "rival_alignment_mean": Column(
        "rival alignment with HTS",
        "alignment (-1..1)",
        "Alignment of the rival groups with HTS, weighted by their fighters (-1 hostile, 0 distanced, 1 allied).",
    ),
    "rival_fighters": Column("rival fighters", "fighters", "Fighters of all rival groups together."),
    "fear_mean": Column("fear (mean)", LEVEL01, "Mean fear of the persons present."),
    "grievance_regime_mean": Column(
        "grievance against the regime (mean)", LEVEL01, "Mean grievance against the regime of the persons present."
    ),
    "grievance_hts_mean": Column(
        "grievance against HTS (mean)", LEVEL01, "Mean grievance against HTS of the persons present."
    ),
    "arrests": Column("arrests", PERSONS_PER_DAY, "Protesters arrested by HTS on this day."),
    "council_takeovers_cum": Column(
        "council takeovers by HTS (cumulative)", "towns", "Independent councils taken over by HTS since day 0."
    ),
    "towns_regime_held": Column(
        "towns taken by the regime", "towns", "Towns held by the regime at the end of the day."
    ),
    "persons_under_hts_share": Column(
        "persons under HTS control", SHARE, "Share of persons present who live in towns HTS holds (`controller` hts)."
    ),
    "towns_rival_held": Column(
        "towns held by rival groups", "towns", "Towns a rival group holds at the end of the day."
    ),
    "towns_contested": Column(
        "towns contested", "towns", "Towns two armed sides are fighting for at the end of the day."
    ),
    "towns_local": Column(
        "towns kept local",
        "towns",
        "Towns whose council and protest sent the armed groups away (`controller` local) at the end of the day.",
    ),
    "coalition_splits_cum": Column(
        "coalition splits (cumulative)", "splits", "Rival groups that left a coalition since day 0."
    ),
    "control_changes_cum": Column(
        "control changes (cumulative)",
        "changes",
        "Changes of a town's controller since day 0 (`control_change` events).",
    ),
    "coalitions_cum": Column(
        "coalitions formed (cumulative)", "coalitions", "Coalitions of rival groups formed since day 0."
    ),
    "fight_killed_cum": Column(
        "civilians killed in fighting (cumulative)",
        PERSONS,
        "Civilians killed in fighting between HTS and rival sides since day 0 (included in `killed_cum`).",
    ),
    "fight_fighters_lost_cum": Column(
        "fighters lost in fighting (cumulative)",
        "fighters",
        "Fighters of HTS and the rival groups lost in fights for towns since day 0.",
    ),
}

# One column per rival group of the scenario, named after the group.
RIVAL_GROUP_COLUMNS: dict[str, Column] = {
    "alignment:<group>": Column(
        "alignment with HTS",
        "alignment (-1..1)",
        "Alignment of the rival group `<group>` with HTS (one column per group in `rivals.groups`).",
    ),
    "fighters:<group>": Column(
        "fighters", "fighters", "Fighters of the rival group `<group>` (one column per group in `rivals.groups`)."
    ),
    "fighters_lost:<side>": Column(
        "fighters lost to armed rivals",
        "fighters per day",
        "Fighters of `<side>` (`hts`, or a rival group in `rivals.groups`) lost on this day in fights for towns, "
        "and for a rival group also to HTS attacks on it; not losses to air strikes. The sides' fight losses "
        "sum to the day's rise of `fight_fighters_lost_cum`.",
    ),
    "persons_under:<controller>": Column(
        "persons under a controller",
        PERSONS,
        "Persons present in towns held by `<controller>`: `hts`, `contested`, `regime` or a rival group "
        "(one column each).",
    ),
}

TIMESERIES_COLUMNS: dict[str, Column] = {**TIMESERIES_KEYS, **GOV_COLUMNS, **RIVAL_GROUP_COLUMNS}

# Key columns of the towns table.
TOWN_KEYS: dict[str, Column] = {
    "day": TIMESERIES_KEYS["day"],
    "date": TIMESERIES_KEYS["date"],
    "town": Column("town", "name", "Town name, as in the scenario's `towns`."),
    "initial_stance": Column(
        "initial stance", "category", "The town's stance toward HTS at the start (`towns[].stance` of the scenario)."
    ),
}

# Town-level state collected once a day (one row per town per day in ``towns``).
TOWN_STATE_COLUMNS: dict[str, Column] = {
    "persons_present": Column(
        "persons present", PERSONS, "Living persons in the town (residents at home plus displaced guests)."
    ),
    "persons_at_home": Column("residents at home", PERSONS, "Living residents of the town who are in it."),
    "displaced_out": Column(
        "residents displaced elsewhere", PERSONS, "Living residents of the town who are in another town."
    ),
    "hosted_displaced": Column(
        "displaced persons hosted",
        PERSONS,
        "Persons displaced during the run from other towns staying in the town (not those displaced before "
        "day 0: `hosted_before_start`).",
    ),
    "hosted_before_start": Column(
        "displaced before the start, still present",
        PERSONS,
        "Persons displaced to the town before day 0 still in it: the town's `displaced` times "
        "`households.displaced_before_scale` (at most its `persons`), times the share of its residents at home "
        "(they flee, die and come back as its residents do). Part of `persons_at_home`; the displaced hosted "
        "are this plus `hosted_displaced`.",
    ),
    "killed_cum": Column(
        "civilians killed (cumulative)",
        PERSONS,
        "Residents of the town (by home town) killed by air strikes and in fighting since day 0.",
    ),
    "strikes": Column("air strikes", "strikes per day", "Air strikes landing on the town on this day."),
    "strikes_cum": Column("air strikes (cumulative)", "strikes", "Air strikes on the town since day 0."),
    "killed": Column(
        "civilians killed", PERSONS_PER_DAY, "Persons killed by air strikes and in fighting in the town on this day."
    ),
    "coop_share": Column("cooperation with HTS", SHARE, "Share of persons present in the town who cooperate with HTS."),
    "resist_share": Column("resisting HTS", SHARE, "Share of persons present in the town who resist HTS."),
    "neutral_share": Column("neutral", SHARE, "Share of persons present in the town who neither cooperate nor resist."),
    "protest_share": Column(
        "protest participation", SHARE, "Share of persons present in the town who protested on this day."
    ),
    "coop_share_home": Column(
        "cooperation with HTS (by home town)",
        SHARE,
        "Share cooperating among the town's living residents, wherever they are.",
    ),
    "resist_share_home": Column(
        "resisting HTS (by home town)", SHARE, "Share resisting among the town's living residents, wherever they are."
    ),
    "council": Column("council legitimacy", LEVEL01, "Legitimacy of the town's local council."),
    "council_independent": Column(
        "independent council", "true/false", "Whether the town's council is still independent of HTS (not taken over)."
    ),
    "hts_control": Column("HTS control", LEVEL01, "HTS control of the town."),
    "hts_services": Column("HTS services", LEVEL01, "Services HTS provides in the town."),
    "holder_services": Column(
        "rival holder's services", LEVEL01, "Services the rival group holding the town provides (0 unless rival-held)."
    ),
    "protest_memory": Column(
        "sustained protest",
        SHARE,
        "Decaying memory of the town's protest share (half-life `rivals.local_window_days`): the sustained protest "
        "that, with council legitimacy, can send the armed groups away.",
    ),
    "damage": Column("damage", LEVEL01, "Physical damage to the town's market and council from air strikes."),
    "exposure": Column(
        "exposure to recent harm",
        "killed per 1,000 residents (decaying)",
        "Decaying memory of harm (killed per 1,000 present and strikes, weighted by `exposure`), "
        "plus neighbouring towns' harm weighted by distance.",
    ),
    "threat": Column(
        "regime threat", "level", "Regime threat felt in the town, from 0 to 1: recent harm and closeness to the front."
    ),
    "protection": Column(
        "protection value of HTS",
        "level",
        "Protection households expect from HTS: rally strength times threat times HTS strength in the town "
        "times its retaliation for strikes on the town and its neighbours (0 when regime-held).",
    ),
    "fear_mean": Column("fear (mean)", LEVEL01, "Mean fear of the persons present in the town."),
    "grievance_regime_mean": Column(
        "grievance against the regime (mean)", LEVEL01, "Mean grievance against the regime of the persons present."
    ),
    "grievance_hts_mean": Column(
        "grievance against HTS (mean)", LEVEL01, "Mean grievance against HTS of the persons present."
    ),
    "reputation": Column(
        "resisting reputation",
        LEVEL01,
        "The town's resisting reputation as the regime sees it: a decaying memory of protest.",
    ),
    "front": Column(
        "front status", "category", "Front status of the town: `opposition`, `contested` or `regime` (held)."
    ),
    "arrests": Column("arrests", PERSONS_PER_DAY, "Protesters arrested by HTS in the town on this day."),
    "controller": Column(
        "controller",
        "category",
        "Who holds the town at the end of the day: `hts`, a rival group's name, `contested` (two armed "
        "sides fighting for it), `regime`, or `local` (its council and civil committees sent the armed groups "
        "away: no armed group's services, taxes or arrests).",
    ),
}

TOWN_COLUMNS: dict[str, Column] = {**TOWN_KEYS, **TOWN_STATE_COLUMNS}

# Columns of the events table, one row per event.
EVENT_COLUMNS: dict[str, Column] = {
    "day": TIMESERIES_KEYS["day"],
    "date": TIMESERIES_KEYS["date"],
    "event": Column("event", "category", "Kind of event (see the event kinds below)."),
    "town": Column("town", "name", "Town where the event happened, or the origin of a flow; empty when no town."),
    "to_town": Column("destination", "name", "Destination town of a displacement or return flow; empty otherwise."),
    "count": Column(
        "count",
        "occurrences",
        "1 for a strike, front change, takeover, attack or return flow; the number of arrests; "
        "0 for a displacement flow.",
    ),
    "persons": Column("persons", PERSONS, "Persons concerned: killed by a strike, arrested, or moving in a flow."),
    "note": Column(
        "note",
        "text",
        "Detail by kind: the targeting source of a strike, the reason of a flight, the new front status, "
        "the group attacked, the cause of a control change, the members of a coalition, the sides of a fight.",
    ),
    "controller_from": Column(
        "controller before", "category", "For a `control_change`: who held the town before; empty otherwise."
    ),
    "controller_to": Column(
        "controller after", "category", "For a `control_change`: who holds the town after; empty otherwise."
    ),
}
EVENT_KINDS: dict[str, str] = {
    "strike": (
        "An air strike on `town`; `persons` killed; `note` the targeting policy or `calendar` "
        "(`:miss` for a miss landing on the nearest town)."
    ),
    "displacement": (
        "Persons fleeing from `town` to `to_town` on this day; `note` is `flight` (own decision) "
        "or `front` (leaving a town the regime has taken, over days at "
        "`flight.capture_rate`) or `fighting` (flight from a contested town)."
    ),
    "return": "Displaced persons going back from `town` to their home town `to_town`.",
    "arrests": "HTS arrests protesters in `town`; `count` arrests, `persons` arrested persons.",
    "council_takeover": "HTS takes over the independent council of `town`.",
    "front": "The front status of `town` changes; `note` the new status.",
    "hts_attack_rival": "HTS attacks a rival group; `note` the group.",
    "control_change": (
        "Who holds `town` changes from `controller_from` to `controller_to`; `note` the cause (an attack, a "
        "capture, a defence, a retake, a town sending its armed groups away, `regime advance`, or "
        "`scheduled (...)` for a dated input)."
    ),
    "coalition_split": "A rival group leaves its coalition (alignments too far apart); `note` who leaves which.",
    "coalition": "Rival groups join forces where together they match HTS in `town`; `count` members, `note` names.",
    "fighting": (
        "A fight day in contested `town`; `count` fighters lost on both sides, `persons` civilians killed, "
        "`note` the two sides."
    ),
}

# Arrays the collector fills each day, derived from the definitions above.
TOWN_VARS = tuple(TOWN_STATE_COLUMNS)
GOV_VARS = tuple(GOV_COLUMNS)

#: How much a run collects: ``"full"`` (every table and column above, the default) or
#: ``"targets"`` (only the columns the recorded figures' measures read, for samplers that run
#: the model thousands of times and judge each run by its target statistics; the events table is
#: kept whole). A column kept at ``"targets"`` has exactly the values it has at ``"full"``.
COLLECT_LEVELS = ("full", "targets")
#: The town columns ``"targets"`` keeps: what :func:`sim.analysis.observed.figure_value` reads.
TARGET_TOWN_VARS = (
    "persons_present",
    "hosted_displaced",
    "hosted_before_start",
    "killed",
    "coop_share",
    "protest_share",
    "council_independent",
)
#: The timeseries columns ``"targets"`` keeps (besides ``day`` and ``date``).
TARGET_GOV_VARS = ("displacement_moves",)
_EVENT_FIELDS = tuple(k for k in EVENT_COLUMNS if k != "date")  # the order of a recorded event tuple


def town_sums(state: ModelState, values: np.ndarray) -> np.ndarray:
    """Sum of ``persons * values`` by current town (after :func:`sim.model.households.aggregate` this day)."""
    hh = state.hh
    weighted = hh.persons * values
    sums = np.add.reduceat(weighted, state.home_starts, dtype=np.float64)
    sums[state.home_empty] = 0.0
    d = state.displaced_idx
    if len(d):
        n = state.town_state.n
        sums -= np.bincount(hh.home[d], weights=weighted[d], minlength=n)
        sums += np.bincount(hh.town[d], weights=weighted[d], minlength=n)
    return sums


def home_by_stance(state: ModelState) -> np.ndarray:
    """Persons by home town and stance, (towns, 3): the current-town table moved by the displaced."""
    hh = state.hh
    n = state.town_state.n
    d = state.displaced_idx
    by = state.by_stance.copy()
    if len(d):
        w = hh.persons[d]
        by -= np.bincount(hh.town[d].astype(np.intp) * 3 + hh.stance[d], weights=w, minlength=3 * n).reshape(n, 3)
        by += np.bincount(hh.home[d].astype(np.intp) * 3 + hh.stance[d], weights=w, minlength=3 * n).reshape(n, 3)
    return by


def _share(num: np.ndarray | float, den: np.ndarray | float):
    if np.ndim(num) == 0 and np.ndim(den) == 0:  # the same IEEE division, without the array machinery
        return float(num) / float(den) if den > 0 else 0.0
    return np.divide(num, den, out=np.zeros_like(np.asarray(num, dtype=float)), where=np.asarray(den) > 0)


class Collector:
    """Preallocated daily tables for one run, read from the shared :class:`~sim.model.state.ModelState`.

    ``level`` is one of :data:`COLLECT_LEVELS`: ``"full"`` fills every column, ``"targets"``
    only :data:`TARGET_TOWN_VARS` and :data:`TARGET_GOV_VARS` (same values, far less work a day).
    """

    def __init__(self, state: ModelState, level: str = "full"):
        if level not in COLLECT_LEVELS:
            raise ValueError(f"collect level {level!r}: expected one of {', '.join(COLLECT_LEVELS)}")
        self.state = state
        self.level = level
        days = state.scenario.days
        n = state.town_state.n
        full = level == "full"
        self.town = {v: np.zeros((days, n)) for v in (TOWN_VARS if full else TARGET_TOWN_VARS)}
        self.gov = {v: np.zeros(days) for v in (GOV_VARS if full else TARGET_GOV_VARS)}
        self.groups = [g.name for g in state.rival_groups] if full else []
        self.align = np.zeros((days, len(self.groups)))
        self.fighters = np.zeros((days, len(self.groups)))
        self.sides = ["hts", *self.groups]  # fighters_lost:<side>
        self.lost_cum = np.zeros((days, len(self.sides) if full else 0))
        self.controllers = list(state.controller_names)
        self.under = np.zeros((days, len(self.controllers) if full else 0))
        self.days_done = 0
        self._home_resisting = state.resisting[state.hh.home]  # homes never change
        self._res = state.resisting.nonzero()[0]  # towns fixed for the run: index arrays once
        self._other = (~state.resisting).nonzero()[0]
        # Of each town's persons, the share displaced there before day 0 (hosted_before_start).
        scale = state.scenario.households.displaced_before_scale
        towns = state.scenario.towns
        self._before_share = np.array([min(1.0, scale * t.displaced / t.persons) for t in towns])
        self.collect = self._collect_full if full else self._collect_targets

    def collect(self, day: int) -> None:  # replaced per instance by the level's method (see __init__)
        """Record the end-of-day state of ``day``."""
        raise NotImplementedError  # pragma: no cover

    def _collect_targets(self, day: int) -> None:
        """The ``"targets"`` level: the columns the recorded figures read, as :meth:`_collect_full` fills them."""
        m = self.state
        ts = m.town_state
        w = m.weight
        T = self.town
        by = m.by_stance
        present = by.sum(axis=1)
        T["persons_present"][day] = present * w
        T["hosted_displaced"][day] = ts.hosted * w
        T["hosted_before_start"][day] = self._before_share * (present - ts.hosted) * w
        T["killed"][day] = ts.killed_today * w
        T["coop_share"][day] = _share(by[:, COOPERATE], present)
        T["protest_share"][day] = ts.protest_share
        T["council_independent"][day] = ts.independent
        self.gov["displacement_moves"][day] = m.moves_today
        self.days_done = day + 1

    def _collect_full(self, day: int) -> None:
        """Record the end-of-day state of ``day`` (every column)."""
        m = self.state
        ts = m.town_state
        hh = m.hh
        w = m.weight
        T, G = self.town, self.gov
        by = m.by_stance
        present = by.sum(axis=1)
        home_by = home_by_stance(m)
        home_alive = home_by.sum(axis=1)
        at_home = present - ts.hosted
        displaced_out = home_alive - at_home
        fear = town_sums(m, hh.fear)
        g_regime = town_sums(m, hh.g_regime)
        g_hts = town_sums(m, hh.g_hts)
        # Town shares in one division: rows coop, resist, neutral, fear, grievances over present;
        # coop and resist by home over home_alive.
        num = np.stack([by[:, COOPERATE], by[:, RESIST], by[:, NEUTRAL], fear, g_regime, g_hts])
        shares = _share(num, present)
        home_shares = _share(np.stack([home_by[:, COOPERATE], home_by[:, RESIST]]), home_alive)
        T["persons_present"][day] = present * w
        T["persons_at_home"][day] = at_home * w
        T["displaced_out"][day] = displaced_out * w
        T["hosted_displaced"][day] = ts.hosted * w
        T["hosted_before_start"][day] = self._before_share * at_home * w
        T["killed_cum"][day] = ts.killed_home_cum * w
        T["strikes"][day] = ts.strikes_today
        T["strikes_cum"][day] = ts.strikes_cum
        T["killed"][day] = ts.killed_today * w
        T["coop_share"][day] = shares[0]
        T["resist_share"][day] = shares[1]
        T["neutral_share"][day] = shares[2]
        T["protest_share"][day] = ts.protest_share
        T["coop_share_home"][day] = home_shares[0]
        T["resist_share_home"][day] = home_shares[1]
        T["council"][day] = ts.council
        T["council_independent"][day] = ts.independent
        T["hts_control"][day] = ts.control
        T["hts_services"][day] = ts.services
        T["damage"][day] = ts.damage
        T["exposure"][day] = ts.exposure_eff
        T["threat"][day] = ts.threat
        T["protection"][day] = ts.protection
        T["fear_mean"][day] = shares[3]
        T["grievance_regime_mean"][day] = shares[4]
        T["grievance_hts_mean"][day] = shares[5]
        T["reputation"][day] = ts.reputation
        T["front"][day] = ts.front
        T["arrests"][day] = ts.arrests_today * w
        T["controller"][day] = ts.controller
        T["holder_services"][day] = ts.holder_services
        T["protest_memory"][day] = ts.protest_memory

        # The governorate block: every town sum in one reduction over the rows of a (k, towns)
        # table, and the sums over the resisting and the other towns from its columns. A row
        # sums the same values in the same order as a 1-D sum of that column, so each total is
        # bit for bit the one a separate ``.sum()`` gives.
        rows = np.stack(
            [
                by[:, COOPERATE],  # 0
                by[:, RESIST],  # 1
                by[:, NEUTRAL],  # 2
                present,  # 3
                home_by[:, COOPERATE],  # 4
                home_by[:, RESIST],  # 5
                home_alive,  # 6
                m.protest_persons,  # 7
                ts.killed_home_cum,  # 8
                ts.killed_today,  # 9
                displaced_out,  # 10
                ts.strikes_today,  # 11
                ts.strikes_cum,  # 12
                ts.control * present,  # 13
                ts.services * present,  # 14
                ts.council * present,  # 15
                fear,  # 16
                g_regime,  # 17
                g_hts,  # 18
                ts.arrests_today,  # 19
            ]
        )
        s = rows.sum(axis=1)
        r = rows[:, self._res].sum(axis=1)
        o = rows[:, self._other].sum(axis=1)
        tot = present.sum()
        G["persons_present"][day] = tot * w
        G["killed_cum"][day] = s[8] * w
        G["killed"][day] = s[9] * w
        G["displaced_persons"][day] = s[10] * w
        G["displacement_moves"][day] = m.moves_today
        G["displacement_moves_cum"][day] = m.moves_cum
        G["returns"][day] = m.returns_today
        G["strikes"][day] = s[11]
        G["strikes_cum"][day] = s[12]
        G["killed_resisting_home_cum"][day] = r[8] * w
        G["councils_independent"][day] = ts.independent.sum()
        G["arrests"][day] = s[19] * w
        # Every governorate share in one division (0 where the denominator is not positive).
        gov_shares = (
            ("coop_share", s[0], tot),
            ("resist_share", s[1], tot),
            ("neutral_share", s[2], tot),
            ("protest_share", s[7], tot),
            ("coop_share_resisting", r[0], r[3]),
            ("coop_share_resisting_home", r[4], r[6]),
            ("resist_share_resisting", r[1], r[3]),
            ("resist_share_resisting_home", r[5], r[6]),
            ("protest_share_resisting", r[7], r[3]),
            ("coop_share_other", o[0], o[3]),
            ("hts_control_mean", s[13], tot),
            ("hts_services_mean", s[14], tot),
            ("council_mean", s[15], tot),
            ("fear_mean", s[16], tot),
            ("grievance_regime_mean", s[17], tot),
            ("grievance_hts_mean", s[18], tot),
        )
        values = _share(np.array([x[1] for x in gov_shares]), np.array([x[2] for x in gov_shares]))
        for (key, _, _), v in zip(gov_shares, values, strict=True):
            G[key][day] = v
        # Composition of the two resisting-town measures (current town = stayers + guests,
        # home town = stayers + those who left; the dead are in neither).
        home_res = self._home_resisting
        away = hh.town != hh.home
        coop = hh.stance == COOPERATE
        for key, mask in (
            ("stayers", home_res & ~away),
            ("left", home_res & away),
            ("guests", m.resisting[hh.town] & away),
        ):
            persons = float(hh.persons[mask].sum())
            G[f"persons_resisting_{key}"][day] = persons * w
            G[f"coop_share_resisting_{key}"][day] = _share(float(hh.persons[mask & coop].sum()), persons)
        hts = m.hts
        G["hts_fighters"][day] = hts.fighters
        G["hts_resources"][day] = hts.resources
        G["hts_legitimacy"][day] = hts.legitimacy
        G["hts_retaliation"][day] = hts.retaliation
        G["hts_recruits_cum"][day] = hts.recruits
        G["rival_recruits_cum"][day] = sum(g.recruits for g in m.rival_groups)
        align = np.array([g.alignment for g in m.rival_groups])
        fighters = np.array([g.fighters for g in m.rival_groups])
        G["rival_alignment_mean"][day] = _share((align * fighters).sum(), fighters.sum()) if len(align) else 0.0
        G["rival_fighters"][day] = fighters.sum() if len(fighters) else 0.0
        G["council_takeovers_cum"][day] = hts.takeovers
        G["towns_regime_held"][day] = (~ts.open).sum()
        under = np.bincount(ts.controller, weights=present, minlength=len(self.controllers))
        self.under[day] = under * w
        G["persons_under_hts_share"][day] = _share(under[HTS_HOLDS], tot)
        G["towns_rival_held"][day] = (ts.controller >= GROUP0).sum()
        G["towns_contested"][day] = (ts.controller == HELD_CONTESTED).sum()
        G["towns_local"][day] = (ts.controller == LOCAL).sum()
        G["coalition_splits_cum"][day] = m.conflict.splits
        G["control_changes_cum"][day] = m.control_changes
        G["coalitions_cum"][day] = len(m.conflict.coalitions)
        G["fight_killed_cum"][day] = m.conflict.killed_cum * w
        G["fight_fighters_lost_cum"][day] = m.conflict.fighters_lost_cum
        self.lost_cum[day, 0] = hts.fight_losses
        if len(self.groups):
            self.align[day] = align
            self.fighters[day] = fighters
            self.lost_cum[day, 1:] = [g.fight_losses + g.attack_losses for g in m.rival_groups]
        self.days_done = day + 1

    # ------------------------------------------------------------------ frames

    def _dates(self, days: np.ndarray) -> pd.Series | None:
        start = self.state.scenario.start_date
        if start is None:
            return None
        return pd.Series(pd.to_datetime(start) + pd.to_timedelta(days, unit="D"), dtype="datetime64[ms]")

    def frames(self) -> dict[str, pd.DataFrame]:
        """Tidy DataFrames: ``timeseries`` (per day), ``towns`` (per town per day), ``events``."""
        nd = self.days_done
        day = np.arange(nd)
        dates = self._dates(day)
        cols: dict[str, object] = {"day": day}  # built as one dict: a DataFrame grown column by column copies
        if dates is not None:
            cols["date"] = dates
        for k, v in self.gov.items():
            cols[k] = v[:nd]
        # Losses per day from the cumulative counts (day 0 from zero).
        lost = np.diff(self.lost_cum[:nd], axis=0, prepend=np.zeros((1, self.lost_cum.shape[1])))
        for prefix, table, names in (
            ("alignment", self.align, self.groups),
            ("fighters", self.fighters, self.groups),
            ("fighters_lost", lost, self.sides[: lost.shape[1]]),  # none at "targets"
            ("persons_under", self.under, self.controllers[: self.under.shape[1]]),  # none at "targets"
        ):
            for j, name in enumerate(names):
                cols[f"{prefix}:{name}"] = table[:nd, j]
        ts = pd.DataFrame(cols)

        names = self.state.town_state.names
        n = len(names)
        cols = {"day": np.repeat(day, n)}
        if dates is not None:
            cols["date"] = np.repeat(dates.to_numpy(), n)
        # Categoricals from their codes: the same columns as from the names, without hashing a string a row.
        cols["town"] = pd.Categorical.from_codes(np.tile(np.arange(n), nd), categories=names)
        stances = ["resisting", "hts", "rival", "mixed", "unknown"]
        stance_codes = np.array([stances.index(t.stance) for t in self.state.scenario.towns], dtype=np.int8)
        cols["initial_stance"] = pd.Categorical.from_codes(np.tile(stance_codes, nd), categories=stances)
        for k, v in self.town.items():
            if k == "front":
                cols["front"] = pd.Categorical.from_codes(v[:nd].astype(int).ravel(), categories=list(FRONT_STATUS))
            elif k == "controller":
                cols[k] = pd.Categorical.from_codes(v[:nd].astype(int).ravel(), categories=self.controllers)
            elif k == "council_independent":
                cols[k] = v[:nd].ravel().astype(bool)
            else:
                cols[k] = v[:nd].ravel()
        towns = pd.DataFrame(cols)

        ev = pd.DataFrame(self.state.events, columns=list(_EVENT_FIELDS))
        ev["day"] = ev["day"].astype(np.int64)
        if dates is not None:
            ev.insert(
                1,
                "date",
                pd.Series(
                    pd.to_datetime(self.state.scenario.start_date) + pd.to_timedelta(ev["day"], unit="D"),
                    dtype="datetime64[ms]",
                ),
            )
        # Town -1 (no town) is the empty name, the last category; the codes index the categories.
        for col in ("town", "to_town"):
            codes = ev[col].to_numpy(dtype=int)
            ev[col] = pd.Categorical.from_codes(np.where(codes < 0, n, codes), categories=[*names, ""])
        ev["count"] = ev["count"].astype(np.int64)
        ev["persons"] = ev["persons"].astype(float)
        ev["event"] = ev["event"].astype(str)
        ev["note"] = ev["note"].astype(str)
        for col in ("controller_from", "controller_to"):
            ev[col] = pd.Categorical(ev[col].astype(str), categories=["", *self.controllers])
        return {"timeseries": ts, "towns": towns, "events": ev}

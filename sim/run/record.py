"""Observation models: from a run's tables to each recorded quantity of a record, and whether they agree.

One function per kind of :mod:`sim.scenario.record` entry (:data:`MODELS`). Each takes the entry,
its record (for places and actors) and a run's tables (``timeseries``, ``towns``, ``events`` as
the collector writes them, see ``docs/OUTPUTS.md``) and returns an :class:`Observation`: the
simulated counterpart of the recorded value and the agreement, one of :data:`AGREE`,
:data:`DISAGREE` or :data:`NO_MODEL` (the model does not output what the rule needs; the
missing column is named in the note). Like with like: flows with flows over the same window and
area, stocks with stocks, a dated event with the model's state near its date.

Tolerances come from the entry's ``uncertainty``: ``relative`` (a share of the value; default
:data:`DEFAULT_RELATIVE`) and ``days`` (either side of a date; default :data:`DEFAULT_DAYS`).
A numeric value ``[low, high]`` agrees with a simulated ``s`` when (:func:`numeric_agreement`)

* coverage ``exact``: ``low * (1 - relative) <= s <= high * (1 + relative)``;
* coverage ``part`` (the source's area is part of the scenario towns compared, so the model counts
  more): ``s >= low * (1 - relative)``;
* coverage ``larger`` (the source's area holds more than those towns): ``s <= high * (1 + relative)``.

Every rule can fail: each has a simulated output that disagrees (``tests/test_record.py`` builds
one per kind). :func:`compare` applies the rules to a whole record, reporting entries whose dates
the run does not cover as :data:`NOT_REACHED` and leaving out context entries (outside the
record window, never compared).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.scenario.record import GOVERNORATE, HTS, Entry, Record
from sim.scenario.schema import ObservedFigure, Scenario

AGREE = "agree"
DISAGREE = "disagree"
NO_MODEL = "no model value"
NOT_REACHED = "not reached"
AGREEMENTS = (AGREE, DISAGREE, NO_MODEL, NOT_REACHED)

COLUMNS = ("id", "kind", "place", "date", "recorded", "simulated", "agreement", "role", "note")

#: Kinds whose windowed entries are states held on every day (checked on the days a run covers).
STATE_KINDS = ("council", "control")

#: Tolerance on numeric values when an entry's uncertainty gives no ``relative``.
DEFAULT_RELATIVE = 0.25
#: Tolerance on dates (days either side) when an entry's uncertainty gives no ``days``, by kind.
DEFAULT_DAYS = {"protest": 3}

#: Detection thresholds of protest events, in persons protesting on one day in the place: a protest
#: "of dozens" (or merely reported, size unknown) is detected when at least a dozen persons protest
#: on some day within the tolerance of its date; "hundreds" needs 100, "thousands" 1,000. A protest
#: of a stated size N (or range [N, M]) needs at least max(12, N / 2).
PROTEST_THRESHOLDS = {"reported": 12.0, "dozens": 12.0, "hundreds": 100.0, "thousands": 1000.0}
MIN_PROTEST = 12.0
#: Protest targets the model's protest (against HTS) stands for; the others have no model value.
PROTEST_AGAINST_HTS = ("hts", "hts_and_regime", "factions")

#: Columns the observation models need that a run's tables may lack, and what they are for. A rule
#: meeting a missing column returns :data:`NO_MODEL` and names it.
NEEDED_COLUMNS = {
    "towns.protesters": "persons protesting per town and day (else protest_share x persons_present)",
    "towns.council_independent": "council status per town and day",
    "towns.controller": "who holds each town per day",
    "towns.killed_by_hts": "civilians killed by HTS (not in fighting) per town and day",
    "towns.wounded": "civilians wounded or affected per town and day",
    "timeseries.fighters_lost:<side>": "fighters lost per day by HTS (side 'hts') and by each rival group",
    "towns.controller = local": "a town held by no armed group (its council or a civil committee)",
    "events.council_takeover_attempt": "a failed takeover of a council (a decree, an ultimatum)",
    "events.split": "a group splitting (Hurras al-Din from HTS)",
    "events.neutrality": "a town's agreement with both sides to keep the fighting out",
}

Tables = Mapping[str, pd.DataFrame]
FigureFrames = Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class Observation:
    """The simulated counterpart of one entry and the agreement."""

    simulated: float | str | None
    agreement: str
    note: str = ""


def no_model(what: str) -> Observation:
    """No model value: the model does not output ``what``."""
    return Observation(None, NO_MODEL, f"the model lacks {what}")


# --------------------------------------------------------------------------- shared helpers


def tolerance(entry: Entry) -> tuple[float, int]:
    """``(relative, days)`` of an entry: its uncertainty's, else the defaults."""
    u = entry.uncertainty
    rel = u.relative if u.relative is not None else DEFAULT_RELATIVE
    days = u.days if u.days is not None else DEFAULT_DAYS.get(entry.kind, 0)
    return rel, days


def numeric_agreement(simulated: float, low: float, high: float, relative: float, coverage: str) -> str:
    """Agreement of a simulated number with a recorded ``[low, high]`` (see the module docstring)."""
    if simulated is None or (isinstance(simulated, float) and math.isnan(simulated)):
        return NO_MODEL
    lo, hi = low * (1 - relative), high * (1 + relative)
    if coverage == "part":
        ok = simulated >= lo
    elif coverage == "larger":
        ok = simulated <= hi
    else:
        ok = lo <= simulated <= hi
    return AGREE if ok else DISAGREE


def _numeric(simulated: float, entry: Entry, coverage: str, note: str = "") -> Observation:
    rel, _ = tolerance(entry)
    low, high = entry.bounds
    return Observation(simulated, numeric_agreement(simulated, low, high, rel, coverage), note)


def _combine(a: str, b: str) -> str | None:
    """Coverage of a flow between two places; None when one side over- and the other under-counts."""
    kinds = {a, b} - {"exact"}
    if not kinds:
        return "exact"
    return kinds.pop() if len(kinds) == 1 else None


def _day(value: Any) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


def _dates(df: pd.DataFrame) -> pd.Series:
    if "date" not in df.columns:
        raise ValueError("the run's tables have no 'date' column: a record needs a scenario with a start_date")
    return pd.to_datetime(df["date"]).dt.normalize()


def _span(entry: Entry, days: int = 0) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The entry's first and last day, widened by ``days`` either side."""
    pad = pd.Timedelta(days=days)
    return _day(entry.start) - pad, _day(entry.end) + pad


def _between(df: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    d = _dates(df)
    return df[(d >= first) & (d <= last)]


def _has(df: pd.DataFrame | None, *columns: str) -> bool:
    return df is not None and all(c in df.columns for c in columns)


def _events(tables: Tables, kind: str, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame | None:
    ev = tables.get("events")
    if not _has(ev, "event", "town", "persons"):
        return None
    ev = _between(ev, first, last)
    return ev[ev["event"].astype(str) == kind]


def _town_daily(tables: Tables, towns: list[str], column: str, first: pd.Timestamp, last: pd.Timestamp) -> pd.Series:
    """Daily sum of a towns-table ``column`` over ``towns`` from ``first`` to ``last`` (index: date)."""
    tw = _between(tables["towns"], first, last)
    rows = tw[tw["town"].astype(str).isin(towns)]
    return rows.groupby(_dates(rows))[column].sum().astype(float)


def _controllers(tables: Tables) -> set[str]:
    """Controller names the run can output (the categories of ``towns.controller``)."""
    tw = tables.get("towns")
    if not _has(tw, "controller"):
        return set()
    col = tw["controller"]
    if isinstance(col.dtype, pd.CategoricalDtype):
        return {str(c) for c in col.cat.categories}
    return set(col.astype(str))


def _single_town(record: Record, entry: Entry) -> str | None:
    towns, coverage = record.towns_of(entry.place)
    return towns[0] if len(towns) == 1 and coverage == "exact" and entry.place != GOVERNORATE else None


# --------------------------------------------------------------------------- flows


def displacements(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Persons displaced over the entry's window, from the run's ``displacement`` events (flows, not stocks).

    Without ``to_place`` a move counts when its origin or its destination is in ``place`` (the
    displacements of an area, a move inside it counted once); with ``to_place`` when it goes from
    ``place`` to ``to_place``. Each move counts, as agencies count displacements. Agreement:
    :func:`numeric_agreement` with the places' coverage.
    """
    ev = _events(tables, "displacement", *_span(entry))
    if ev is None or "to_town" not in ev.columns:
        return no_model("displacement events (events.event == 'displacement' with town, to_town, persons)")
    src, coverage = record.towns_of(entry.place)
    town, to_town = ev["town"].astype(str), ev["to_town"].astype(str)
    if entry.to_place is not None:
        dst, cov_to = record.towns_of(entry.to_place)
        combined = _combine(coverage, cov_to)
        if combined is None:
            return Observation(None, NO_MODEL, "origin and destination areas bound the flow in opposite directions")
        coverage = combined
        mask = town.isin(src) & to_town.isin(dst)
    else:
        mask = town.isin(src) | to_town.isin(src)
    return _numeric(float(ev.loc[mask, "persons"].sum()), entry, coverage)


def departures(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Departures from ``place`` over the window (persons), or the share of its residents away (``unit: share``).

    Persons: the ``displacement`` events whose origin is in ``place``, summed over the window (a
    flow, compared with the source's flow). Share: on the window's last day, the place's living
    residents away from home over all its living residents (``displaced_out / (displaced_out +
    persons_at_home)`` of the towns table), only for places the scenario holds exactly (a share of
    an aggregate says nothing of a village in it).
    """
    towns, coverage = record.towns_of(entry.place)
    if entry.unit == "share":
        if coverage != "exact":
            return Observation(
                None, NO_MODEL, f"{entry.place!r} is not a unit of the scenario: its share is not resolved"
            )
        tw = tables.get("towns")
        if not _has(tw, "displaced_out", "persons_at_home"):
            return no_model("towns.displaced_out and towns.persons_at_home")
        last = _day(entry.end)
        away = _town_daily(tables, towns, "displaced_out", last, last)
        home = _town_daily(tables, towns, "persons_at_home", last, last)
        total = float(away.sum() + home.sum())
        share = float(away.sum()) / total if total > 0 else math.nan
        return _numeric(share, entry, "exact")
    ev = _events(tables, "displacement", *_span(entry))
    if ev is None:
        return no_model("displacement events")
    return _numeric(float(ev.loc[ev["town"].astype(str).isin(towns), "persons"].sum()), entry, coverage)


def arrival_share(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Share of the window's displacements touching ``place`` that arrive in ``to_place``.

    The denominator is the moves whose origin or destination is in ``place``; the numerator those of
    them whose destination is in ``to_place``. No moves at all: no model value. Agreement:
    :func:`numeric_agreement` with ``to_place``'s coverage (a destination the scenario holds only in
    part bounds the share from below).
    """
    ev = _events(tables, "displacement", *_span(entry))
    if ev is None or "to_town" not in ev.columns:
        return no_model("displacement events with to_town")
    src, _ = record.towns_of(entry.place)
    dst, coverage = record.towns_of(entry.to_place or "")
    town, to_town = ev["town"].astype(str), ev["to_town"].astype(str)
    moves = ev[town.isin(src) | to_town.isin(src)]
    total = float(moves["persons"].sum())
    if total <= 0:
        return Observation(None, NO_MODEL, "no displacement in the window")
    into = float(moves.loc[moves["to_town"].astype(str).isin(dst), "persons"].sum())
    return _numeric(into / total, entry, coverage)


def returns(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Returns to ``place`` over the window: the ``return`` events whose destination (home) is in ``place``."""
    ev = _events(tables, "return", *_span(entry))
    if ev is None or "to_town" not in ev.columns:
        return no_model("return events (events.event == 'return' with to_town)")
    towns, coverage = record.towns_of(entry.place)
    return _numeric(float(ev.loc[ev["to_town"].astype(str).isin(towns), "persons"].sum()), entry, coverage)


# --------------------------------------------------------------------------- stocks


def _stock(series: pd.Series, entry: Entry, coverage: str) -> Observation:
    """A simulated stock over the entry's days against a recorded stock: some day within tolerance."""
    if series.empty:
        return Observation(None, NO_MODEL, "no simulated day in the entry's window")
    rel, _ = tolerance(entry)
    low, high = entry.bounds
    lo, hi = low * (1 - rel), high * (1 + rel)
    smin, smax = float(series.min()), float(series.max())
    if coverage == "part":
        ok = smax >= lo
    elif coverage == "larger":
        ok = smin <= hi
    else:
        ok = smax >= lo and smin <= hi
    note = f"simulated {smin:,.0f}..{smax:,.0f} over the window (mean shown)"
    return Observation(float(series.mean()), AGREE if ok else DISAGREE, note)


#: The towns columns whose sum is the displaced persons hosted: those displaced during the run and
#: those displaced to the town before the start and still in it.
HOSTED_COLUMNS = ("hosted_displaced", "hosted_before_start")


def hosted(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Displaced persons hosted in ``place`` (a stock): ``towns.hosted_displaced`` plus
    ``towns.hosted_before_start`` summed over its towns.

    Compared day by day over the entry's window (widened by its ``days``): agreement when the
    simulated stock is within tolerance of the recorded one on some day (coverage ``part``: reaches
    its low end; ``larger``: stays under its high end on some day). Stocks with stocks: the source
    counts every IDP present, whenever they arrived, and so does the model: those displaced during
    the run and those displaced there before the start (the towns' ``displaced``) who are still in it.
    """
    if not _has(tables.get("towns"), *HOSTED_COLUMNS):
        return no_model(", ".join(f"towns.{c}" for c in HOSTED_COLUMNS))
    towns, coverage = record.towns_of(entry.place)
    _, days = tolerance(entry)
    span = _span(entry, days)
    stock = sum(_town_daily(tables, towns, c, *span) for c in HOSTED_COLUMNS)
    return _stock(stock, entry, coverage)


def strength(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Fighters of ``actor`` (a stock): ``timeseries.hts_fighters`` for HTS, else ``fighters:<group>`` summed.

    Compared like :func:`hosted`: some day of the window within tolerance.
    """
    ts = tables.get("timeseries")
    groups = record.groups_of(entry.actor or HTS)
    cols = ["hts_fighters"] if groups == [HTS] else [f"fighters:{g}" for g in groups]
    if not _has(ts, *cols):
        return no_model(", ".join(f"timeseries.{c}" for c in cols))
    if entry.place != GOVERNORATE:
        return Observation(None, NO_MODEL, "fighters are counted for the whole area only")
    _, days = tolerance(entry)
    rows = _between(ts, *_span(entry, days))
    return _stock(rows[cols].sum(axis=1).astype(float), entry, "exact")


# --------------------------------------------------------------------------- harm


def deaths(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Civilians killed in ``place``: over a window, the sum; on a date, the deadliest day within its ``days``.

    ``cause``: ``strikes`` sums the ``strike`` events' persons, ``fighting`` the ``fighting`` events'
    persons, ``all`` the towns table's ``killed``; ``hts`` needs ``towns.killed_by_hts``. Wounded or
    affected persons need ``towns.wounded``. Agreement: :func:`numeric_agreement` with the place's
    coverage (a village inside an aggregate: the aggregate must count at least as many).
    """
    if entry.measure not in (None, "killed"):
        if not _has(tables.get("towns"), "wounded"):
            return no_model("towns.wounded (injuries)")
    towns, coverage = record.towns_of(entry.place)
    _, days = tolerance(entry)
    first, last = _span(entry, days if entry.date is not None else 0)
    column = "wounded" if entry.measure not in (None, "killed") else "killed"
    if entry.cause == "hts":
        column = "killed_by_hts"
    if entry.cause in ("strikes", "fighting") and column == "killed":
        ev = _events(tables, "strike" if entry.cause == "strikes" else "fighting", first, last)
        if ev is None:
            return no_model(f"{entry.cause} events with persons")
        ev = ev[ev["town"].astype(str).isin(towns)]
        daily = ev.groupby(_dates(ev))["persons"].sum().astype(float)
    else:
        if not _has(tables.get("towns"), column):
            return no_model(f"towns.{column}")
        daily = _town_daily(tables, towns, column, first, last)
    if entry.date is not None:
        sim = float(daily.max()) if len(daily) else 0.0
        note = "the deadliest simulated day within the date's tolerance"
    else:
        sim, note = float(daily.sum()), ""
    return _numeric(sim, entry, coverage, note)


#: Days compared before and after a recorded change of the campaign (``escalated``, ``decreased``).
CHANGE_DAYS = 14


def strikes(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Air strikes on ``place`` within the entry's days (widened by ``days``): ``towns.strikes`` summed.

    ``hit`` agrees with at least one strike, a count ``n`` with at least ``n``. A place larger than
    the towns compared has no model value (its strike may have fallen elsewhere). A change of the
    campaign on a date D (``decreased``, ``escalated``) compares the mean daily strikes on the
    place's towns over the :data:`CHANGE_DAYS` days from D with the same number of days before D:
    lower (higher) agrees; a run that does not cover the days before D has no model value.
    """
    if not _has(tables.get("towns"), "strikes"):
        return no_model("towns.strikes")
    towns, coverage = record.towns_of(entry.place)
    if entry.value in ("decreased", "escalated"):
        d = _day(entry.start)
        span = pd.Timedelta(days=CHANGE_DAYS)
        before = _town_daily(tables, towns, "strikes", d - span, d - pd.Timedelta(days=1))
        after = _town_daily(tables, towns, "strikes", d, d + span - pd.Timedelta(days=1))
        if len(before) < CHANGE_DAYS or len(after) < CHANGE_DAYS:
            return Observation(None, NO_MODEL, f"the run does not cover {CHANGE_DAYS} days either side of {d.date()}")
        b, a = float(before.mean()), float(after.mean())
        ratio = a / b if b > 0 else (math.inf if a > 0 else 1.0)  # no strikes either side: no change
        ok = ratio < 1 if entry.value == "decreased" else ratio > 1
        return Observation(ratio, AGREE if ok else DISAGREE, "mean daily strikes after / before the date")
    if coverage == "larger":
        return Observation(None, NO_MODEL, f"{entry.place!r} is larger than the towns the scenario holds there")
    _, days = tolerance(entry)
    sim = float(_town_daily(tables, towns, "strikes", *_span(entry, days)).sum())
    need = 1.0 if entry.value == "hit" else float(entry.bounds[0])
    return Observation(sim, AGREE if sim >= need else DISAGREE, f"at least {need:g} strike(s) needed")


# --------------------------------------------------------------------------- resistance


def protesters(tables: Tables, towns: list[str], first: pd.Timestamp, last: pd.Timestamp) -> pd.Series | None:
    """Persons protesting per day in ``towns``: ``towns.protesters`` if the run has it, else
    ``protest_share x persons_present`` (the same persons: shares are of persons present)."""
    tw = tables.get("towns")
    if _has(tw, "protesters"):
        return _town_daily(tables, towns, "protesters", first, last)
    if not _has(tw, "protest_share", "persons_present"):
        return None
    rows = _between(tw, first, last)
    rows = rows[rows["town"].astype(str).isin(towns)]
    persons = rows["protest_share"].astype(float) * rows["persons_present"].astype(float)
    return persons.groupby(_dates(rows)).sum()


def protest_threshold(entry: Entry) -> float:
    """Persons protesting on one day that detect the recorded event (see :data:`PROTEST_THRESHOLDS`)."""
    if isinstance(entry.value, str):
        return PROTEST_THRESHOLDS[entry.value]
    return max(MIN_PROTEST, entry.bounds[0] / 2)


def protest(entry: Entry, record: Record, tables: Tables) -> Observation:
    """A recorded protest against HTS detected in the run: on some day within ``days`` (default 3) of the
    event, at least :func:`protest_threshold` persons protest in ``place``.

    The model's protest is against HTS: protests for HTS, against the regime only or against the
    infighting have no model value. A place the scenario holds inside an aggregate (coverage
    ``part``) is detected in the aggregate (a protest in the village is a protest in it); a place
    larger than the towns compared has no model value.
    """
    if entry.target not in PROTEST_AGAINST_HTS:
        return Observation(None, NO_MODEL, f"the model has no protest {entry.target!r} (only against HTS)")
    towns, coverage = record.towns_of(entry.place)
    if coverage == "larger":
        return Observation(None, NO_MODEL, f"{entry.place!r} is not in the scenario")
    _, days = tolerance(entry)
    series = protesters(tables, towns, *_span(entry, days))
    if series is None:
        return no_model("towns.protesters (or protest_share and persons_present)")
    peak = float(series.max()) if len(series) else 0.0
    need = protest_threshold(entry)
    return Observation(peak, AGREE if peak >= need else DISAGREE, f"peak protesters; detection at {need:g} persons")


def _status(entry: Entry, record: Record, tables: Tables, column: str, matches: Callable[[pd.Series], pd.Series]):
    """Town status on the entry's days: a date agrees when some day within ``days`` matches; a window
    when every day of it (as far as the run goes) matches."""
    town = _single_town(record, entry)
    if town is None:
        return Observation(None, NO_MODEL, f"{entry.place!r} is not one town of the scenario")
    tw = tables.get("towns")
    if not _has(tw, column):
        return no_model(f"towns.{column}")
    _, days = tolerance(entry)
    first, last = _span(entry, days if entry.date is not None else 0)
    rows = _between(tw, first, last)
    rows = rows[rows["town"].astype(str) == town]
    if rows.empty:
        return Observation(None, NO_MODEL, "no simulated day in the entry's window")
    ok = matches(rows[column])
    if entry.date is not None:
        near = rows.iloc[int(np.argmin(np.abs((_dates(rows) - _day(entry.date)).dt.days.to_numpy())))]
        return Observation(str(near[column]), AGREE if ok.any() else DISAGREE, f"{column} on the nearest day")
    share = f"{int(ok.sum())} of {len(ok)} days"
    return Observation(str(rows[column].iloc[-1]), AGREE if ok.all() else DISAGREE, f"matches on {share}")


def council(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Council status of one town: ``independent`` agrees with ``towns.council_independent`` true,
    ``ssg`` and ``none`` with false (the model does not tell a council taken over from no council).

    Council events (``ssg_formed``, ``dissolution_decreed``, ``ultimatum``, ``office_closed``,
    ``neutral_agreements``, ``sided_with_controller``) and counts of councils have no model value.
    """
    if entry.value not in ("independent", "ssg", "none"):
        return no_model(f"council events of kind {entry.value!r}")
    want = entry.value == "independent"
    obs = _status(entry, record, tables, "council_independent", lambda s: s.astype(bool) == want)
    if obs.simulated in ("True", "False"):
        text = "independent" if obs.simulated == "True" else "not independent"
        obs = Observation(text, obs.agreement, obs.note)
    return obs


def control(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Who holds one town: ``towns.controller`` (``hts``, ``regime``, ``contested``; ``rival`` = any rival
    group; ``not_hts`` = anyone but HTS; ``local`` needs a controller ``local``, which the model lacks).
    ``front_line`` (the front at the town) compares with ``towns.front == 'contested'``.
    """
    value = entry.value
    if value == "front_line":
        return _status(entry, record, tables, "front", lambda s: s.astype(str) == "contested")
    if value == "local" and "local" not in _controllers(tables):
        return no_model("a controller 'local' (a town held by no armed group)")
    named = {"hts", "regime", "contested", "local"}

    def matches(s: pd.Series) -> pd.Series:
        s = s.astype(str)
        if value == "rival":
            return ~s.isin(named)
        if value == "not_hts":
            return s != "hts"
        return s == value

    return _status(entry, record, tables, "controller", matches)


def _involves(ev: pd.DataFrame, groups: list[str]) -> pd.Series:
    """Events between HTS and any of ``groups`` (all rivals when ``groups`` is ``['hts']``)."""
    note = ev["note"].astype(str)
    kind = ev["event"].astype(str)
    anyone = groups == [HTS]
    named = pd.Series(anyone, index=ev.index)
    for g in [] if anyone else groups:
        named |= note.str.contains(g, regex=False)
    fight = (kind == "fighting") & note.str.contains("HTS", case=False, regex=False) & named
    attack = (kind == "hts_attack_rival") & named
    return fight | attack


def clashes(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Fighting between HTS and ``actor`` anywhere in the run (``fighting`` and ``hts_attack_rival`` events).

    ``clashes``: at least one such event within the window widened by ``days``; ``truce``: none within
    the window itself; ``truce_collapsed``: at least one from the window's start to its end plus
    ``days``; ``merger``: a ``coalition`` event naming every group of ``actor`` within ``days``.
    ``split`` and ``accusation`` have no model value. The place is not resolved: the war spans the area.
    """
    ev_all = tables.get("events")
    if not _has(ev_all, "event", "note"):
        return no_model("events with a note naming the sides")
    if entry.value in ("split", "accusation"):
        return no_model(f"{entry.value} events")
    groups = record.groups_of(entry.actor or HTS)
    _, days = tolerance(entry)
    first, last = _span(entry)
    pad = pd.Timedelta(days=days)
    if entry.value == "merger":
        ev = _between(ev_all, first - pad, last + pad)
        ev = ev[ev["event"].astype(str) == "coalition"]
        note = ev["note"].astype(str)
        hit = pd.Series(True, index=ev.index)
        for g in groups:
            hit &= note.str.contains(g, regex=False)
        n = int(hit.sum())
        return Observation(float(n), AGREE if n > 0 else DISAGREE, "coalition events naming every member")
    if entry.value == "truce":
        lo, hi = first, last
    elif entry.value == "truce_collapsed":
        lo, hi = first, last + pad
    else:
        lo, hi = first - pad, last + pad
    ev = _between(ev_all, lo, hi)
    n = int(_involves(ev, groups).sum())
    ok = n == 0 if entry.value == "truce" else n > 0
    return Observation(float(n), AGREE if ok else DISAGREE, "fight and attack events between the sides")


def fighters_killed(entry: Entry, record: Record, tables: Tables) -> Observation:
    """Fighters of ``actor`` lost over the window: ``timeseries.fighters_lost:<side>`` (per day) summed over
    the actor's groups (``hts`` for HTS). Only for the whole area. The column counts losses to the
    other armed sides (fights for towns, and HTS's attacks on a group), not to air strikes: the
    recorded tolls are of the war between HTS and the rival groups.
    """
    ts = tables.get("timeseries")
    cols = [f"fighters_lost:{g}" for g in record.groups_of(entry.actor or HTS)]
    if not _has(ts, *cols):
        return no_model(", ".join(f"timeseries.{c}" for c in cols))
    if entry.place != GOVERNORATE:
        return Observation(None, NO_MODEL, "fighters lost are counted for the whole area only")
    rows = _between(ts, *_span(entry))
    return _numeric(float(rows[cols].to_numpy(dtype=float).sum()), entry, "exact")


#: The observation model of each kind.
MODELS: dict[str, Callable[[Entry, Record, Tables], Observation]] = {
    "displacements": displacements,
    "departures": departures,
    "arrival_share": arrival_share,
    "hosted": hosted,
    "returns": returns,
    "deaths": deaths,
    "strikes": strikes,
    "protest": protest,
    "council": council,
    "control": control,
    "clashes": clashes,
    "fighters_killed": fighters_killed,
    "strength": strength,
}


# --------------------------------------------------------------------------- the table


def observe(entry: Entry, record: Record, tables: Tables) -> Observation:
    """The observation model of ``entry``'s kind applied to a run's tables."""
    return MODELS[entry.kind](entry, record, tables)


def _first_date(tables: Tables) -> dt.date:
    for name in ("towns", "timeseries"):
        df = tables.get(name)
        if df is not None and "date" in df.columns and len(df):
            return _dates(df).min().date()
    raise ValueError("the run's tables have no dates: a record needs a scenario with a start_date")


def compare(record: Record, result_tables: Tables, run_end_date: Any) -> pd.DataFrame:
    """One row per entry of ``record`` compared with one run: columns :data:`COLUMNS`.

    Entries whose days end after ``run_end_date`` (or begin before the run's first day) are
    :data:`NOT_REACHED`, except a state held over a window (:data:`STATE_KINDS`: a council
    independent, a town not held by HTS), which is checked on the days the run covers and noted as
    partial (a state that fails inside the run has failed); context entries (outside the record
    window) are left out: they justify the initial state and are never compared.

    Args:
        record: a loaded record (:func:`sim.scenario.record.load_record`).
        result_tables: the run's ``timeseries``, ``towns`` and ``events`` DataFrames.
        run_end_date: the calendar date of the run's last day.
    """
    end = _day(run_end_date).date()
    start = _first_date(result_tables)
    rows: list[dict[str, Any]] = []
    for e in record.entries:
        if e.context:
            continue
        if e.start > end or e.start < start:
            obs = Observation(None, NOT_REACHED, f"the run covers {start}..{end}")
        elif e.end > end and not (e.kind in STATE_KINDS and e.window is not None):
            obs = Observation(None, NOT_REACHED, f"the run ends on {end}, before the entry's last day")
        else:
            obs = observe(e, record, result_tables)
            if e.end > end:
                obs = Observation(obs.simulated, obs.agreement, f"{obs.note}; partial: the run ends on {end}")
        rows.append(
            {
                "id": e.id,
                "kind": e.kind,
                "place": e.place,
                "date": e.when_text(),
                "recorded": e.value_text(),
                "simulated": obs.simulated,
                "agreement": obs.agreement,
                "role": e.role,
                "note": obs.note,
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def missing_columns(tables: Tables) -> list[str]:
    """The columns of :data:`NEEDED_COLUMNS` that ``tables`` lack (what the model does not output yet)."""
    tw, ts, ev = tables.get("towns"), tables.get("timeseries"), tables.get("events")
    out = []
    for key in ("protesters", "council_independent", "controller", "killed_by_hts", "wounded"):
        if not _has(tw, key):
            out.append(f"towns.{key}")
    if ts is None or not any(c.startswith("fighters_lost:") for c in ts.columns):
        out.append("timeseries.fighters_lost:<side>")
    if "local" not in _controllers(tables):
        out.append("towns.controller = local")
    kinds = set(ev["event"].astype(str)) if _has(ev, "event") else set()
    for k in ("council_takeover_attempt", "split", "neutrality"):
        if k not in kinds:
            out.append(f"events.{k}")
    return out


# --------------------------------------------------------------------------- a run's record


def run_end_date(scenario: Any, days: int | None = None) -> dt.date:
    """The calendar date of a run's last day (the scenario's ``start_date`` plus ``days - 1``)."""
    if scenario.start_date is None:
        raise ValueError(f"scenario {scenario.name!r} has no start_date: a record needs a calendar")
    n = scenario.days if days is None else int(days)
    return scenario.start_date + dt.timedelta(days=n - 1)


def compare_run(record: Record, scenario: Any, tables: Tables) -> pd.DataFrame:
    """:func:`compare` for one run of ``scenario`` (its last day from the run's own tables)."""
    ts = tables.get("timeseries")
    days = int(ts["day"].max()) + 1 if ts is not None and "day" in ts.columns and len(ts) else None
    return compare(record, tables, run_end_date(scenario, days))


def agreement_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Entries of a :func:`compare` table counted by role, kind and agreement.

    One row per (role, kind), columns ``role``, ``kind``, ``entries`` and one per
    :data:`AGREEMENTS`; roles in the order calibration, validation, check.
    """
    rows = []
    for role in ("calibration", "validation", "check"):
        sub = table[table["role"] == role]
        for kind in dict.fromkeys(sub["kind"]):
            agreements = sub.loc[sub["kind"] == kind, "agreement"]
            counted = {a: int((agreements == a).sum()) for a in AGREEMENTS}
            rows.append({"role": role, "kind": kind, "entries": len(agreements), **counted})
    return pd.DataFrame(rows, columns=["role", "kind", "entries", *AGREEMENTS])


def counts_text(table: pd.DataFrame, indent: str = "  ") -> list[str]:
    """Lines of the run summary: agreement counts per kind, calibration and validation apart."""
    counts = agreement_counts(table)
    headings = {
        "calibration": "record, calibration entries (targets of sim calibrate)",
        "validation": "record, validation entries (held out of fitting)",
        "check": "record, checks (inputs the scenario holds, or context)",
    }
    lines: list[str] = []
    for role, heading in headings.items():
        sub = counts[counts["role"] == role]
        if not len(sub):
            continue
        total = {a: int(sub[a].sum()) for a in AGREEMENTS}
        parts = ", ".join(f"{total[a]} {a}" for a in AGREEMENTS if total[a])
        lines.append(f"{indent}{heading}: {int(sub['entries'].sum())} entries: {parts}")
        for _, r in sub.iterrows():
            kinds = ", ".join(f"{int(r[a])} {a}" for a in AGREEMENTS if r[a])
            lines.append(f"{indent}  {r['kind'] + ':':<17} {kinds}")
    return lines


# --------------------------------------------------------------------------- observed figures (no record)


def window_days(fig: ObservedFigure, scenario: Scenario, days_run: int) -> tuple[int, int, bool]:
    """First and last day index of a figure's window, clipped to the run; and whether clipped."""
    first = scenario.day_of(fig.start) if fig.start is not None else 0
    last = scenario.day_of(fig.end) if fig.end is not None else days_run - 1
    clipped = last > days_run - 1
    return first, min(last, days_run - 1), clipped


def figure_displacements(frames: FigureFrames, first: int, last: int) -> float:
    """Persons displaced (flight and front moves) from day ``first`` to ``last``, both included."""
    ts = frames["timeseries"]
    inside = (ts["day"] >= first) & (ts["day"] <= last)
    return float(ts.loc[inside, "displacement_moves"].sum())


def figure_arrival_share(frames: FigureFrames, towns: Sequence[str], first: int, last: int) -> float:
    """Share of the persons displaced in the window who arrived in ``towns`` (NaN if none moved)."""
    ev = frames["events"]
    moves = ev[(ev["event"] == "displacement") & (ev["day"] >= first) & (ev["day"] <= last)]
    total = float(moves["persons"].sum())
    if total <= 0:
        return math.nan
    into = moves["to_town"].isin(list(towns))
    return float(moves.loc[into, "persons"].sum()) / total


def council_independent(frames: FigureFrames, town: str) -> float:
    """1 if ``town``'s council is still independent of HTS on the run's last day, else 0."""
    tw = frames["towns"]
    last = tw[(tw["day"] == tw["day"].max()) & (tw["town"] == town)]
    return float(bool(last["council_independent"].iloc[0]))


def killed(frames: FigureFrames, towns: Sequence[str], first: int, last: int) -> float:
    """Civilians killed from day ``first`` to ``last`` in ``towns`` (every town if empty)."""
    tw = frames["towns"]
    inside = (tw["day"] >= first) & (tw["day"] <= last)
    if towns:
        inside &= tw["town"].isin(list(towns))
    return float(tw.loc[inside, "killed"].sum())


def hosted_displaced(frames: FigureFrames, towns: Sequence[str], day: int) -> float:
    """Displaced persons hosted in ``towns`` (together) at the end of ``day``: those displaced during the
    run and those displaced there before the start (:data:`HOSTED_COLUMNS`)."""
    tw = frames["towns"]
    rows = tw[(tw["day"] == day) & tw["town"].isin(list(towns))]
    return float(rows[list(HOSTED_COLUMNS)].to_numpy(dtype=float).sum())


def town_mean(frames: FigureFrames, column: str, towns: Sequence[str], first: int, last: int) -> float:
    """Persons-weighted mean of a town-table share ``column`` in ``towns`` from day ``first`` to ``last``
    (0 where nobody is present)."""
    tw = frames["towns"]
    rows = tw[(tw["day"] >= first) & (tw["day"] <= last) & tw["town"].isin(list(towns))]
    weight = float(rows["persons_present"].sum())
    if weight <= 0:
        return 0.0
    return float((rows[column] * rows["persons_present"]).sum()) / weight


def protest_level(frames: FigureFrames, towns: Sequence[str], first: int, last: int) -> float:
    """Persons-weighted mean protest share in ``towns`` from day ``first`` to ``last``."""
    return town_mean(frames, "protest_share", towns, first, last)


def protest_present(frames: FigureFrames, towns: Sequence[str], first: int, last: int, threshold: float) -> float:
    """1 if protest against HTS is still present in ``towns`` over the window (mean share above
    ``threshold``), else 0."""
    return float(protest_level(frames, towns, first, last) > threshold)


def figure_value(fig: ObservedFigure, scenario: Scenario, frames: FigureFrames) -> float:
    """The simulated counterpart of one recorded figure, from one run's data."""
    days_run = int(frames["timeseries"]["day"].max()) + 1
    first, last, _ = window_days(fig, scenario, days_run)
    if fig.kind == "displacements":
        return figure_displacements(frames, first, last)
    if fig.kind == "arrival_share":
        return figure_arrival_share(frames, fig.towns, first, last)
    if fig.kind == "council_independent":
        return council_independent(frames, fig.towns[0])
    if fig.kind == "killed":
        return killed(frames, fig.towns, first, last)
    if fig.kind == "hosted_displaced":
        return hosted_displaced(frames, fig.towns, last)
    if fig.kind == "protest_present":
        return protest_present(frames, fig.towns, first, last, fig.threshold)
    if fig.kind == "cooperation_share":
        return town_mean(frames, "coop_share", fig.towns, first, last)
    raise ValueError(f"unknown observed kind {fig.kind!r}")


# --------------------------------------------------------------------------- calibration targets


def entry_value(entry: Entry, record: Record, tables: Tables) -> float:
    """The value calibration judges a record entry by in one run: the simulated number of a numeric
    entry (:func:`observe`'s ``simulated``), 1 or 0 for the agreement of a categorical one, NaN when the
    model has no value for it."""
    obs = observe(entry, record, tables)
    if obs.agreement not in (AGREE, DISAGREE):
        return math.nan
    if entry.numeric and isinstance(obs.simulated, (int, float)):
        return float(obs.simulated)
    return 1.0 if obs.agreement == AGREE else 0.0


#: Record kinds whose observation models read only the ``events`` table or towns columns of the
#: collector's ``"targets"`` level (:data:`sim.model.collect.TARGET_TOWN_VARS`), whatever the entry.
TARGETS_LEVEL_KINDS = ("displacements", "arrival_share", "returns", "hosted")


def targets_level_reads(item: Any) -> bool:
    """Whether :func:`target_value` of ``item`` reads only what a run collected at the ``"targets"``
    level keeps (so that level gives it exactly the value of a full run): an observed figure (the level
    was built for them), or a record entry of :data:`TARGETS_LEVEL_KINDS`, departures in persons (the
    displacement events; a share reads ``displaced_out`` and ``persons_at_home``), or deaths counted as
    killed from events or ``towns.killed`` (not ``killed_by_hts`` nor ``wounded``)."""
    if not isinstance(item, Entry):
        return True
    if item.kind in TARGETS_LEVEL_KINDS:
        return True
    if item.kind == "departures":
        return item.unit != "share"
    if item.kind == "deaths":
        return item.measure in (None, "killed") and item.cause != "hts"
    return False


def target_value(item: Any, scenario: Any, tables: Tables, record: Record | None = None) -> float:
    """A calibration target's value in one run: a record entry (:func:`entry_value`, with its ``record``)
    or an observed figure of a scenario without a record (:func:`figure_value`)."""
    if isinstance(item, Entry):
        if record is None:
            raise ValueError(f"record entry {item.id!r} needs its record")
        return entry_value(item, record, tables)
    return figure_value(item, scenario, tables)

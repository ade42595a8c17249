"""The record of a historical scenario: dated, sourced observations as data (schema and strict loader).

A record file (``scenarios/record/<name>.yaml``) holds one entry per observation: what was
observed (``kind``), where (``place``), when (``date`` or ``window``), the recorded ``value``, its
``source`` (publisher, title, date, and the address where it was read), how the source's words
became the value (``reading``), why it may be wrong (``uncertainty``) and how calibration uses it
(``role``). The observation models that turn a run's tables into the recorded quantity live in
:mod:`sim.run.record`.

Kinds and the values they take:

====================  ==================================================================
``displacements``     persons moving over a window (number or ``[low, high]``); optional
                      ``to_place`` for a flow from ``place`` to ``to_place``
``departures``        persons leaving ``place`` over a window; with ``unit: share`` the
                      share of its residents away at the window's end (0-1)
``arrival_share``     share (0-1) of the window's displacements from ``place`` that arrive
                      in ``to_place``
``hosted``            stock of displaced persons present in ``place``
``returns``           persons returning to ``place`` over a window
``deaths``            persons killed (``measure``: killed, wounded, affected) by ``cause``
                      (strikes, fighting, hts, all)
``strikes``           air strikes on ``place``: a count or ``hit``; or a change of the
                      campaign on ``date`` (``escalated``, ``decreased``)
``protest``           a protest event: ``reported``, ``dozens``, ``hundreds``, ``thousands``
                      or a number of persons; ``target`` says against whom
``council``           council status (``independent``, ``ssg``, ``none``), a council event
                      (``ssg_formed``, ``dissolution_decreed``, ...) or, for the
                      governorate, a count of councils
``control``           who holds ``place``: ``hts``, ``rival``, ``local``, ``regime``,
                      ``contested``, ``not_hts``, or ``front_line`` (the front at the town)
``clashes``           HTS and ``actor`` (a rival group or coalition): ``clashes``,
                      ``truce``, ``truce_collapsed``, ``merger``, ``split``, ``accusation``
``fighters_killed``   fighters of ``actor`` killed over a window
``strength``          fighters of ``actor``
====================  ==================================================================

Places are a scenario town, ``governorate`` (the record's ``governorate.towns``) or a named place
of the record's ``places`` (a set of scenario towns with its ``coverage``: ``exact`` when the
source's area is those towns, ``part`` when it is only part of them, ``larger`` when it holds more).
Dates must lie inside the record's ``window`` unless the entry is ``context: true`` (then its role is
``check``: context is never compared with a run).

Every problem raises :class:`~sim.scenario.loader.ScenarioError` naming the file, the line and the
key (``entries.12.value``). :func:`load_record` reads a file through the project's YAML reader
(:func:`sim.scenario.loader.read_yaml`); :func:`check_against` checks its towns, places and actors
against a scenario.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
from pathlib import Path
from typing import Any, Literal, NoReturn, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from sim.scenario import loader
from sim.scenario.loader import Located, ScenarioError, read_yaml
from sim.scenario.schema import RESERVED_CONTROLLERS, Scenario, ScenarioRefError

RecordKind = Literal[
    "displacements",
    "departures",
    "arrival_share",
    "hosted",
    "returns",
    "deaths",
    "strikes",
    "protest",
    "council",
    "control",
    "clashes",
    "fighters_killed",
    "strength",
]
KINDS: tuple[str, ...] = get_args(RecordKind)
RecordRole = Literal["calibration", "validation", "check"]
ROLES: tuple[str, ...] = get_args(RecordRole)
Coverage = Literal["exact", "part", "larger"]

#: Kinds whose value is a count of persons (or fighters): a number or a ``[low, high]`` range.
COUNT_KINDS = ("displacements", "departures", "hosted", "returns", "deaths", "fighters_killed", "strength")
#: Kinds that need a window (a flow or a share over a period), not a single date.
WINDOW_KINDS = ("displacements", "departures", "arrival_share", "returns", "fighters_killed")
#: Protest sizes in words (the observation model gives each a detection threshold in persons).
PROTEST_SIZES = ("reported", "dozens", "hundreds", "thousands")
PROTEST_TARGETS = ("hts", "hts_and_regime", "factions", "regime", "infighting", "for_hts")
COUNCIL_VALUES = (
    "independent",
    "ssg",
    "none",
    "ssg_formed",
    "dissolution_decreed",
    "ultimatum",
    "office_closed",
    "neutral_agreements",
    "sided_with_controller",
)
CONTROL_VALUES = ("hts", "rival", "local", "regime", "contested", "not_hts", "front_line")
STRIKE_VALUES = ("hit", "escalated", "decreased")
CLASH_VALUES = ("clashes", "truce", "truce_collapsed", "merger", "split", "accusation")
DEATH_CAUSES = ("strikes", "fighting", "hts", "all")
DEATH_MEASURES = ("killed", "wounded", "affected")
GOVERNORATE = "governorate"
#: The actor name of HTS in a record (also a controller name of the model).
HTS = "hts"

_ID = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")

# Fields only some kinds take: kind -> allowed optional fields.
_ONLY_FOR = {
    "to_place": ("displacements", "arrival_share"),
    "unit": ("departures",),
    "cause": ("deaths",),
    "measure": ("deaths",),
    "target": ("protest",),
    "actor": ("clashes", "fighters_killed", "strength"),
}
_REQUIRED_FOR = {
    "to_place": ("arrival_share",),
    "cause": ("deaths",),
    "target": ("protest",),
    "actor": ("clashes", "fighters_killed", "strength"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(_Strict):
    """First and last day of a period, both included."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end < self.start:
            raise ScenarioRefError(("end",), f"end {self.end} is before start {self.start}")
        return self


class Source(_Strict):
    """Where a value comes from. A title in [square brackets] describes the item (its headline not recorded)."""

    publisher: str = Field(min_length=1)
    title: str = Field(min_length=1)
    date: str = Field(min_length=1, description="publication date as the source gives it (ISO date, month or year)")
    url: str | None = Field(None, pattern=r"^https?://\S+$", description="where the source was read (an address)")

    @field_validator("date", mode="before")
    @classmethod
    def _date_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (dt.date, int)) else v


class Uncertainty(_Strict):
    """Why the value may be wrong, and the tolerances the observation models use."""

    reason: str = Field(min_length=1)
    relative: float | None = Field(None, ge=0, le=10, description="tolerance as a share of the value")
    days: int | None = Field(None, ge=0, le=366, description="tolerance on dates, in days either side")


class Place(_Strict):
    """A named set of scenario towns standing for a source's area (a sub-district, a village, a region)."""

    name: str = Field(min_length=1)
    towns: list[str] = Field(min_length=1)
    coverage: Coverage = "exact"
    reading: str = Field(min_length=1)


class Governorate(_Strict):
    """The towns the record means by ``governorate``."""

    towns: list[str] = Field(min_length=1)
    reading: str = Field(min_length=1)


Value = float | tuple[float, float] | str


class Entry(_Strict):
    """One observation."""

    id: str = Field(min_length=1)
    kind: RecordKind
    place: str = Field(min_length=1)
    date: dt.date | None = None
    window: Window | None = None
    value: Any
    source: list[Source] = Field(min_length=1)
    reading: str = Field(min_length=1)
    uncertainty: Uncertainty
    role: RecordRole
    context: bool = False
    to_place: str | None = None
    unit: Literal["persons", "share"] | None = None
    cause: str | None = None
    measure: str | None = None
    target: str | None = None
    actor: str | None = None
    note: str = ""

    @field_validator("source", mode="before")
    @classmethod
    def _one_source(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _consistent(self) -> Entry:
        if not _ID.match(self.id):
            raise ScenarioRefError(("id",), f"id {self.id!r} is not a slug (lower-case letters, digits, '-')")
        if (self.date is None) == (self.window is None):
            raise ScenarioRefError(("date",), "give exactly one of 'date' or 'window'")
        if self.kind in WINDOW_KINDS and self.window is None:
            raise ScenarioRefError(("date",), f"a {self.kind} entry needs a 'window' (start, end), not a date")
        for key, kinds in _ONLY_FOR.items():
            if getattr(self, key) is not None and self.kind not in kinds:
                raise ScenarioRefError((key,), f"a {self.kind} entry takes no {key!r} (only {', '.join(kinds)})")
        for key, kinds in _REQUIRED_FOR.items():
            if getattr(self, key) is None and self.kind in kinds:
                raise ScenarioRefError((key,), f"a {self.kind} entry needs its {key!r}")
        _choice(self.cause, DEATH_CAUSES, "cause")
        _choice(self.measure, DEATH_MEASURES, "measure")
        _choice(self.target, PROTEST_TARGETS, "target")
        if self.context and self.role != "check":
            raise ScenarioRefError(("role",), "a context entry (outside the record window) has role 'check'")
        object.__setattr__(self, "value", _check_value(self))
        return self

    # ------------------------------------------------------------------ helpers

    @property
    def start(self) -> dt.date:
        """First day the entry refers to."""
        return self.window.start if self.window is not None else self.date  # type: ignore[return-value]

    @property
    def end(self) -> dt.date:
        """Last day the entry refers to."""
        return self.window.end if self.window is not None else self.date  # type: ignore[return-value]

    @property
    def numeric(self) -> bool:
        """Whether the value is a number or a range (not a category)."""
        return not isinstance(self.value, str)

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)`` of a numeric value (a number is its own range)."""
        if isinstance(self.value, tuple):
            return self.value
        if isinstance(self.value, str):
            raise TypeError(f"entry {self.id!r} has a category, not a number")
        return float(self.value), float(self.value)

    def value_text(self) -> str:
        """The recorded value as text: ``212000``, ``[50000, 70000]``, ``dozens``."""
        if isinstance(self.value, tuple):
            return f"[{_num(self.value[0])}, {_num(self.value[1])}]"
        if isinstance(self.value, str):
            return self.value
        return _num(self.value)

    def when_text(self) -> str:
        """``2018-02-02`` or ``2017-12-15..2018-01-22``."""
        return str(self.date) if self.date is not None else f"{self.start}..{self.end}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _choice(value: str | None, allowed: tuple[str, ...], key: str) -> None:
    if value is not None and value not in allowed:
        raise ScenarioRefError((key,), f"unknown {key} {value!r} (allowed: {', '.join(allowed)})")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _check_value(e: Entry) -> Value:
    """The entry's value in its normal form, or a ScenarioRefError saying why the kind cannot take it."""
    v = e.value
    loc = ("value",)
    num = _number(v)
    rng: tuple[float, float] | None = None
    if isinstance(v, list):
        if len(v) != 2 or any(_number(x) is None for x in v):
            raise ScenarioRefError(loc, f"a range is [low, high] of two numbers (got {v!r})")
        rng = (float(v[0]), float(v[1]))
        if rng[0] > rng[1]:
            raise ScenarioRefError(loc, f"range low {_num(rng[0])} is above high {_num(rng[1])}")
    label = v if isinstance(v, str) else None
    if num is None and rng is None and label is None:
        raise ScenarioRefError(loc, f"a value is a number, a [low, high] range or a category (got {v!r})")
    numeric = (num, num) if num is not None else rng
    share = e.kind == "arrival_share" or (e.kind == "departures" and e.unit == "share")

    def categories(allowed: tuple[str, ...], numbers: str | None = None) -> None:
        if label is None and numbers is None:
            raise ScenarioRefError(loc, f"a {e.kind} value is one of {', '.join(allowed)} (got {v!r})")
        if label is not None and label not in allowed:
            extra = f" or {numbers}" if numbers else ""
            raise ScenarioRefError(loc, f"a {e.kind} value is one of {', '.join(allowed)}{extra} (got {v!r})")

    if e.kind in COUNT_KINDS or e.kind == "arrival_share":
        if numeric is None:
            what = "a share (0-1) or a [low, high] range of shares" if share else "a number or a [low, high] range"
            raise ScenarioRefError(loc, f"a {e.kind} value is {what}, not a category (got {v!r})")
        if numeric[0] < 0:
            raise ScenarioRefError(loc, f"a {e.kind} value cannot be negative (got {v!r})")
        if share and numeric[1] > 1:
            raise ScenarioRefError(loc, f"a share lies in [0, 1] (got {v!r})")
    elif e.kind == "strikes":
        categories(STRIKE_VALUES, "a count of strikes")
        if numeric is not None and (rng is not None or numeric[0] < 1 or not numeric[0].is_integer()):
            raise ScenarioRefError(
                loc, f"a strikes value is a category or a whole number of strikes, 1 or more (got {v!r})"
            )
    elif e.kind == "protest":
        categories(PROTEST_SIZES, "a number of persons")
        if numeric is not None and numeric[0] < 1:
            raise ScenarioRefError(loc, f"a protest of {v!r} persons is no protest")
    elif e.kind == "council":
        categories(COUNCIL_VALUES, "a count of councils (governorate only)")
        if numeric is not None and (e.place != GOVERNORATE or numeric[0] < 0):
            raise ScenarioRefError(loc, f"a count of councils ({v!r}) needs place 'governorate'")
    elif e.kind == "control":
        categories(CONTROL_VALUES)
    elif e.kind == "clashes":
        categories(CLASH_VALUES)
    if rng is not None:
        return rng
    return num if num is not None else label  # type: ignore[return-value]


class Record(_Strict):
    """A record file: its window, the governorate's towns, named places, actors and entries."""

    record: str = Field(min_length=1, description="name of the record")
    scenario: str = Field(min_length=1, description="name of the scenario it is checked against")
    window: Window
    governorate: Governorate
    places: list[Place] = Field(default_factory=list)
    actors: dict[str, list[str]] = Field(default_factory=dict, description="coalitions: name -> rival groups")
    entries: list[Entry] = Field(min_length=1)

    _path: Path | None = PrivateAttr(None)
    _located: Located | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _cross(self) -> Record:
        names: dict[str, int] = {}
        for i, p in enumerate(self.places):
            if p.name in names or p.name == GOVERNORATE:
                raise ScenarioRefError(("places", i, "name"), f"duplicate place name {p.name!r}")
            names[p.name] = i
        for a in self.actors:
            if a == HTS or a in RESERVED_CONTROLLERS:
                raise ScenarioRefError(("actors", a), f"{a!r} is a reserved name, not a coalition")
        seen: dict[str, int] = {}
        for i, e in enumerate(self.entries):
            if e.id in seen:
                raise ScenarioRefError(
                    ("entries", i, "id"), f"duplicate entry id {e.id!r} (first in entry {seen[e.id]})"
                )
            seen[e.id] = i
            lo, hi = self.window.start, self.window.end
            inside = lo <= e.start and e.end <= hi
            key = "date" if e.date is not None else "window"
            if not e.context and not inside:
                raise ScenarioRefError(
                    ("entries", i, key),
                    f"{e.when_text()} lies outside the record window {lo}..{hi} "
                    "(mark a pre- or post-window entry 'context: true', role 'check')",
                )
            if e.context and inside:
                raise ScenarioRefError(("entries", i, "context"), "a context entry lies outside the record window")
        return self

    # ------------------------------------------------------------------ lookups

    @property
    def file(self) -> Path | None:
        """The file the record was read from (None when built in memory)."""
        return self._path

    def place(self, name: str) -> Place | None:
        """The named place ``name`` (None for a town or the governorate)."""
        return next((p for p in self.places if p.name == name), None)

    def towns_of(self, name: str) -> tuple[list[str], Coverage]:
        """Scenario towns that stand for place ``name``, and how the source's area relates to them."""
        if name == GOVERNORATE:
            return list(self.governorate.towns), "exact"
        p = self.place(name)
        if p is not None:
            return list(p.towns), p.coverage
        return [name], "exact"

    def groups_of(self, actor: str) -> list[str]:
        """Model controller names of ``actor``: ``['hts']``, a coalition's groups, or the group itself."""
        return list(self.actors.get(actor, [actor]))

    def entry(self, entry_id: str) -> Entry:
        """The entry with id ``entry_id``."""
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise KeyError(entry_id)

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """Line of key path ``loc`` in the record file (None when built in memory)."""
        return self._located.line_of(loc) if self._located is not None else None


# --------------------------------------------------------------------------- loading


def _explain(err: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    """A pydantic error as (key path, one-line message)."""
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, ScenarioRefError):
        return loc + tuple(cause.loc), cause.message
    etype = err["type"]
    if etype == "extra_forbidden":
        return loc, f"unknown key {loc[-1]!r}"
    if etype == "missing":
        return loc, f"missing key {loc[-1]!r}"
    if etype == "literal_error" and loc and loc[-1] == "kind":
        return loc, f"unknown kind {err.get('input')!r} (allowed: {', '.join(KINDS)})"
    msg = err["msg"].removeprefix("Value error, ")
    if "input" in err and not isinstance(err["input"], (dict, list)):
        msg += f" (got {err['input']!r})"
    return loc, msg


def _as_written(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """``loc`` as the file writes it: an index the schema added (one ``source`` mapping read as a list of
    one) is dropped where the file has a mapping, so the key and line are the ones the user wrote."""
    out: list[Any] = []
    node = data
    for step in loc:
        if isinstance(step, int) and isinstance(node, dict):
            continue
        out.append(step)
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            node = node[step]
        else:
            node = None
    return tuple(out)


def _fail(path: Path | None, located: Located | None, loc: tuple[Any, ...], msg: str, data: Any = None) -> NoReturn:
    if data is not None:
        loc = _as_written(loc, data)
    key = ".".join(str(p) for p in loc)
    if len(loc) >= 2 and loc[0] == "entries" and isinstance(loc[1], int) and isinstance(data, dict):
        entries = data.get("entries")
        if isinstance(entries, list) and loc[1] < len(entries) and isinstance(entries[loc[1]], dict):
            ident = entries[loc[1]].get("id")
            if ident is not None:
                msg += f" (entry {ident!r})"
    line = located.line_of(loc) if located is not None else None
    raise ScenarioError(path, msg, key=key, line=line)


def parse_record(data: dict[str, Any], path: Path | None = None, located: Located | None = None) -> Record:
    """Validate parsed record data; any problem is one ScenarioError naming the file, line and key."""
    try:
        record = Record.model_validate(data)
    except ValidationError as exc:
        loc, msg = _explain(exc.errors()[0])
        _fail(path, located, loc, msg, data)
    record._path = path
    record._located = located
    return record


def load_record(path: str | Path, scenario: Scenario | None = None) -> Record:
    """Read and validate a record file; with ``scenario``, also :func:`check_against` it.

    Raises:
        ScenarioError: one message naming the file, the line and the key.
    """
    path = Path(path)
    data, located, _ = read_yaml(path, "record")
    record = parse_record(data, path, located)
    if scenario is not None:
        check_against(record, scenario)
    return record


def check_against(record: Record, scenario: Scenario) -> None:
    """Check that every town, place and actor of ``record`` exists in ``scenario``.

    Raises:
        ScenarioError: one message naming the record file, the line and the key.
    """
    towns = scenario.town_names
    groups = [g.name for g in scenario.rivals.groups]

    def fail(loc: tuple[Any, ...], msg: str) -> NoReturn:
        _fail(record.file, record._located, loc, msg, record.model_dump(include={"entries"}))

    def town(name: str, loc: tuple[Any, ...], what: str = "town") -> None:
        if name not in towns:
            hint = difflib.get_close_matches(name, towns, n=1)
            tip = f"; did you mean {hint[0]!r}?" if hint else ""
            fail(loc, f"unknown {what} {name!r} in scenario {scenario.name!r}{tip}")

    if record.scenario != scenario.name:
        fail(("scenario",), f"the record is for scenario {record.scenario!r}, not {scenario.name!r}")
    for j, t in enumerate(record.governorate.towns):
        town(t, ("governorate", "towns", j))
    for i, p in enumerate(record.places):
        for j, t in enumerate(p.towns):
            town(t, ("places", i, "towns", j))
        if p.name in towns:
            fail(("places", i, "name"), f"place {p.name!r} has the name of a scenario town")
    for name, members in record.actors.items():
        for j, g in enumerate(members):
            if g not in groups:
                fail(("actors", name, j), f"unknown rival group {g!r} (scenario groups: {', '.join(groups)})")
    known_places = [GOVERNORATE, *(p.name for p in record.places)]
    for i, e in enumerate(record.entries):
        for key in ("place", "to_place"):
            name = getattr(e, key)
            if name is None or name in known_places:
                continue
            if name not in towns:
                hint = difflib.get_close_matches(name, [*towns, *known_places], n=1)
                tip = f"; did you mean {hint[0]!r}?" if hint else ""
                fail(("entries", i, key), f"unknown town or place {name!r}{tip}")
        if e.actor is not None and e.actor != HTS and e.actor not in record.actors and e.actor not in groups:
            options = ", ".join([HTS, *record.actors, *groups])
            fail(("entries", i, "actor"), f"unknown actor {e.actor!r} (use one of {options})")


def _read_for_loader(path: Path, scenario: Scenario) -> Record:
    return load_record(path, scenario)


loader.RECORD_READER = _read_for_loader  # load_scenario reads a scenario's record through this


def coverage_of(record: Record, entry: Entry) -> str:
    """How the entry's area relates to the scenario towns it is compared with: the destination's
    coverage for an arrival share, both ends' for a flow (``exact`` when they bound it in opposite
    directions, which the observation model reports as no model value), else the place's."""
    _, cov = record.towns_of(entry.place)
    if entry.to_place is None:
        return cov
    _, cov_to = record.towns_of(entry.to_place)
    if entry.kind == "arrival_share":
        return cov_to
    kinds = {cov, cov_to} - {"exact"}
    return kinds.pop() if len(kinds) == 1 else "exact"


def scenario_record(scenario: Scenario) -> Record | None:
    """The record a scenario names (``record:``) when the scenario came without its file (built in
    memory, sent to a worker): looked up in the shipped scenarios folder. None when it names none.

    Raises:
        ScenarioError: the file is not there, or is not a valid record for ``scenario``.
    """
    from sim.scenario import shipped

    if scenario.record is None:
        return None
    root = shipped.scenarios_dir()
    path = (root / scenario.record) if root is not None else Path(scenario.record)
    if not path.is_file():
        raise ScenarioError(None, f"record file {scenario.record!r} not found (looked at {path})", key="record")
    record = _cached_record(str(path.resolve()), path.stat().st_mtime_ns)
    check_against(record, scenario)
    return record


@functools.lru_cache(maxsize=8)
def _cached_record(path: str, mtime_ns: int) -> Record:
    """A record file read once per process (and again when it changes)."""
    return load_record(path)

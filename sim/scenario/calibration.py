"""Calibration files: priors, targets, scale and budget of ``sim calibrate``, validated like scenarios.

A calibration file names the priors of the parameters to fit (by their key path in the
scenario, each with a family and the reason for it), the targets, the simulation scale
(``households.sample_fraction``) and the budget. For a scenario that names a record
(:mod:`sim.scenario.record`), targets are record entries named by id: every ``calibration``
entry of the record, and the ``validation`` entries to report beside them; the tolerance is the
entry's own ``uncertainty.relative`` unless the file overrides it (``relative`` or
``absolute``) with a reason. A scenario without a record names the figures of its ``observed``
block (each with its uncertainty and reason). It is
read by :func:`sim.scenario.loader.read_yaml` (duplicate keys and alias bombs refused) and
every problem is one :class:`~sim.scenario.loader.ScenarioError` naming the file, the line
and the key. Example::

    name: idlib_2017_2018
    seed: 2018
    scale: {sample_fraction: 0.02}
    priors:
      mechanisms.rally: {family: uniform, low: 0, high: 3, reason: "..."}
      flight.front_rate: {family: loguniform, low: 0.001, high: 0.03, reason: "..."}
    targets:
      ocha-displacements-2018-02-03: {}                          # the record's tolerance
      ocha-mainly-toward-2018-02-03: {absolute: 0.1, reason: "..."}  # overridden
    budget: {population: 200, generations: 6, max_runs: 5000, min_epsilon: 0}
    quick: {population: 40, generations: 2, max_runs: 300}
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.scenario.loader import (
    LoadedScenario,
    Located,
    ScenarioError,
    apply_values,
    explain_validation_error,
    read_yaml,
    value_at,
)
from sim.scenario.record import Entry, Record, coverage_of
from sim.scenario.schema import ObservedFigure, Scenario

FAMILIES = ("uniform", "loguniform", "normal", "lognormal")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriorSpec(_Strict):
    """The prior of one parameter: a family, its parameters, and why."""

    family: Literal["uniform", "loguniform", "normal", "lognormal"]
    low: float | None = Field(None, description="uniform / loguniform: lower bound")
    high: float | None = Field(None, description="uniform / loguniform: upper bound")
    mean: float | None = Field(None, description="normal: mean; lognormal: median (exp of the log-mean)")
    sd: float | None = Field(None, gt=0, description="normal: sd; lognormal: sd of the natural log")
    reason: str = Field(min_length=1, description="why this family and these bounds")

    @model_validator(mode="after")
    def _parameters(self) -> PriorSpec:
        if self.family in ("uniform", "loguniform"):
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.family} prior needs 'low' and 'high'")
            if not self.low < self.high:
                raise ValueError(f"'low' must be below 'high' (got {self.low}, {self.high})")
            if self.family == "loguniform" and self.low <= 0:
                raise ValueError("a loguniform prior needs 'low' > 0")
        else:
            if self.mean is None or self.sd is None:
                raise ValueError(f"a {self.family} prior needs 'mean' and 'sd'")
            if self.family == "lognormal" and self.mean <= 0:
                raise ValueError("a lognormal prior needs 'mean' (its median) > 0")
        return self


class TargetSpec(_Strict):
    """A target: a record entry (by id) or an observed figure (by name), and its uncertainty.

    For a record entry the tolerance is the entry's own (``uncertainty.relative``); giving
    ``relative`` or ``absolute`` here overrides it and then needs the ``reason``. An observed
    figure (a scenario without a record) needs exactly one of them and the reason.
    """

    relative: float | None = Field(None, gt=0, le=10, description="half-width as a share of the recorded value")
    absolute: float | None = Field(None, gt=0, description="half-width in the figure's units")
    reason: str | None = Field(None, min_length=1, description="why the record is this uncertain (or why overridden)")

    @model_validator(mode="after")
    def _one(self) -> TargetSpec:
        if self.relative is not None and self.absolute is not None:
            raise ValueError("give at most one of 'relative' or 'absolute'")
        if (self.relative is not None or self.absolute is not None) and self.reason is None:
            raise ValueError("an uncertainty given here needs its 'reason'")
        return self


class BudgetSpec(_Strict):
    """How much the sampler may spend."""

    method: Literal["smc", "rejection", "mcmc", "npe"] = Field(
        "smc",
        description="smc: pyabc ABC-SMC (adaptive distance, MedianEpsilon); rejection: max_runs prior draws, "
        "accepting those with every calibration target inside its tolerance (equal weights, no kernel); "
        "mcmc: rejection until `population` draws are accepted, then ABC-MCMC chains from each of them; "
        "npe: neural posterior estimation (an ensemble of normalising flows) on a reference table of "
        "`simulations` prior draws",
    )
    simulations: int | None = Field(
        None, ge=20, le=10_000_000, description="npe: simulations in the reference table (default max_runs)"
    )
    held_out: float = Field(
        0.15, gt=0, lt=0.5, description="npe: share of the reference table held out of training, for the checks"
    )
    members: int = Field(3, ge=1, le=20, description="npe: flows in the ensemble")
    max_epochs: int = Field(300, ge=1, le=100_000, description="npe: most training epochs per member")
    posterior_samples: int = Field(
        4000, ge=100, le=1_000_000, description="npe: posterior draws at the record (the posterior table)"
    )
    mcmc_steps: int = Field(0, ge=0, le=1_000_000, description="mcmc: steps per chain")
    mcmc_step: float = Field(
        0.1, gt=0, le=1, description="mcmc: proposal sd, as a share of each prior's width in sampler coordinates"
    )
    population: int = Field(
        ge=2,
        le=100_000,
        description="particles per generation (start of the adaptive size); rejection: stop at so many accepted",
    )
    adaptive_population: bool = Field(True, description="adapt the population size (pyabc AdaptivePopulationSize)")
    min_population: int | None = Field(None, ge=2, description="smallest adaptive population (default population/2)")
    max_population: int | None = Field(None, ge=2, description="largest adaptive population (default 2*population)")
    generations: int = Field(ge=1, le=1000, description="maximum ABC-SMC generations")
    max_runs: int = Field(ge=1, description="maximum simulations in all")
    min_epsilon: float = Field(0.0, ge=0, description="stop once the acceptance threshold falls below this")
    max_minutes: float | None = Field(None, gt=0, description="start no new generation after this many minutes")
    predictive_draws: int = Field(50, ge=2, le=100_000, description="posterior draws of the predictive check")
    scale_check_seeds: int = Field(3, ge=2, le=100, description="seeds per scale in the scale check")
    scale_check_fraction: float = Field(1.0, gt=0, le=1, description="reference sample_fraction of the scale check")


class QuickSpec(_Strict):
    """The ``--quick`` budget (fields left out keep the full budget's)."""

    method: Literal["smc", "rejection", "mcmc", "npe"] | None = None
    mcmc_steps: int | None = Field(None, ge=0)
    simulations: int | None = Field(None, ge=20)
    held_out: float | None = Field(None, gt=0, lt=0.5)
    members: int | None = Field(None, ge=1, le=20)
    max_epochs: int | None = Field(None, ge=1)
    posterior_samples: int | None = Field(None, ge=100)
    population: int | None = Field(None, ge=2)
    generations: int | None = Field(None, ge=1)
    max_runs: int | None = Field(None, ge=1)
    max_minutes: float | None = Field(None, gt=0)
    predictive_draws: int | None = Field(None, ge=2)
    scale_check_seeds: int | None = Field(None, ge=2)
    scale_check_fraction: float | None = Field(None, gt=0, le=1)
    sample_fraction: float | None = Field(None, gt=0, le=1)


class ScaleSpec(_Strict):
    """The simulation scale of calibration runs."""

    sample_fraction: float = Field(gt=0, le=1, description="households.sample_fraction of every calibration run")


class CalibrationFile(_Strict):
    """The schema of a calibration YAML file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    seed: int = Field(ge=0, le=2**63 - 1, description="root seed of the sampler")
    days: int | None = Field(None, ge=1, le=3650, description="days per run (default: the scenario's)")
    scale: ScaleSpec
    priors: dict[str, PriorSpec] = Field(min_length=1)
    targets: dict[str, TargetSpec] = Field(min_length=1)
    budget: BudgetSpec
    quick: QuickSpec = Field(default_factory=QuickSpec)


# --------------------------------------------------------------------------- resolved


@dataclass(frozen=True)
class Prior:
    """One parameter's prior, resolved against the scenario."""

    path: str
    family: str
    low: float | None
    high: float | None
    mean: float | None
    sd: float | None
    reason: str

    @property
    def log(self) -> bool:
        """Sampled in log space (loguniform: log10; lognormal: natural log)."""
        return self.family in ("loguniform", "lognormal")

    def to_value(self, internal: float) -> float:
        """The parameter's value from the sampler's coordinate."""
        if self.family == "loguniform":
            return float(10.0**internal)
        if self.family == "lognormal":
            return float(math.exp(internal))
        return float(internal)

    def to_internal(self, value: float) -> float:
        """The sampler's coordinate of a parameter value."""
        if self.family == "loguniform":
            return math.log10(value)
        if self.family == "lognormal":
            return math.log(value)
        return float(value)

    def bounds(self) -> tuple[float, float]:
        """Support of the prior in value units (normal families: mean +- 4 sd, clipped later)."""
        if self.family in ("uniform", "loguniform"):
            assert self.low is not None and self.high is not None
            return self.low, self.high
        assert self.mean is not None and self.sd is not None
        if self.family == "normal":
            return self.mean - 4 * self.sd, self.mean + 4 * self.sd
        return self.mean * math.exp(-4 * self.sd), self.mean * math.exp(4 * self.sd)

    def describe(self) -> str:
        """The family in words, for reports."""
        if self.family in ("uniform", "loguniform"):
            return f"{self.family}({self.low:g}, {self.high:g})"
        return f"{self.family}(mean {self.mean:g}, sd {self.sd:g})"


@dataclass(frozen=True)
class Target:
    """One calibration or validation target with its uncertainty interval: a record entry
    (``entry``, with the ``coverage`` of its place) or, for a scenario without a record, an
    observed figure (``figure``)."""

    figure: ObservedFigure | None
    relative: float | None
    absolute: float | None
    reason: str
    entry: Entry | None = None
    coverage: str = "exact"

    @property
    def name(self) -> str:
        """The entry's id, or the figure's name."""
        return self.entry.id if self.entry is not None else self._figure.name

    @property
    def item(self) -> Entry | ObservedFigure:
        """What the target's value is computed for (the entry, else the figure)."""
        return self.entry if self.entry is not None else self._figure

    @property
    def _figure(self) -> ObservedFigure:
        assert self.figure is not None
        return self.figure

    @property
    def role(self) -> str:
        """``calibration`` or ``validation``."""
        return self.entry.role if self.entry is not None else self._figure.role

    @property
    def kind(self) -> str:
        """The entry's or figure's kind."""
        return self.entry.kind if self.entry is not None else self._figure.kind

    @property
    def numeric(self) -> bool:
        """Whether the recorded value is a number or range (else the target's value is its agreement, 1 or 0)."""
        return self.entry.numeric if self.entry is not None else True

    @property
    def recorded(self) -> float:
        """The recorded value as one number (a range's middle; 1 = the recorded category)."""
        if self.entry is None:
            return float(self._figure.value)
        if not self.entry.numeric:
            return 1.0
        low, high = self.entry.bounds
        return (low + high) / 2

    @property
    def source(self) -> str:
        """The source(s) in words."""
        if self.entry is None:
            return self._figure.source
        return "; ".join(f"{s.publisher}, {s.title}, {s.date}" for s in self.entry.source)

    @property
    def half_width(self) -> float:
        """The stated uncertainty as a half-width in the target's units (a category: 0.5)."""
        if self.absolute is not None:
            return float(self.absolute)
        if self.entry is not None and not self.entry.numeric:
            return 0.5
        assert self.relative is not None
        return abs(self.recorded) * float(self.relative)

    def record_interval(self) -> tuple[float, float]:
        """What the record says, as an interval (a range, a bound, or the point)."""
        if self.entry is not None:
            if not self.entry.numeric:
                return 1.0, 1.0
            low, high = self.entry.bounds
            if self.coverage == "part":
                return low, math.inf
            if self.coverage == "larger":
                return -math.inf, high
            return low, high
        f = self._figure
        if f.comparison == "at_least":
            return f.value, math.inf
        if f.comparison == "at_most":
            return -math.inf, f.value
        if f.range is not None:
            return float(f.range[0]), float(f.range[1])
        return f.value, f.value

    def tolerance_interval(self) -> tuple[float, float]:
        """The record widened by its uncertainty: values inside fit the record.

        A record entry with a relative tolerance widens each end by its own share (``low * (1 -
        relative)``, ``high * (1 + relative)``), as :func:`sim.run.record.numeric_agreement` does.
        """
        lo, hi = self.record_interval()
        if self.entry is not None and self.entry.numeric and self.absolute is None:
            assert self.relative is not None
            return lo - abs(lo) * self.relative, hi + abs(hi) * self.relative
        w = self.half_width
        return lo - w, hi + w

    def residual(self, simulated: float) -> float:
        """Distance of a simulated value outside the tolerance interval, in half-widths (0 inside).

        NaN (no data, e.g. no displacements) counts as far outside.
        """
        if not math.isfinite(simulated):
            return 10.0
        lo, hi = self.tolerance_interval()
        w = self.half_width or 1.0
        if simulated < lo:
            return (simulated - lo) / w
        if simulated > hi:
            return (simulated - hi) / w
        return 0.0


@dataclass(frozen=True)
class Calibration:
    """A validated calibration file against its scenario, with the budget in force."""

    path: Path
    name: str
    description: str
    seed: int
    days: int
    sample_fraction: float
    priors: tuple[Prior, ...]
    targets: tuple[Target, ...]
    budget: BudgetSpec
    quick: bool
    scenario: LoadedScenario
    file_sha256: str
    record: Record | None = None

    @property
    def calibration_targets(self) -> tuple[Target, ...]:
        """Targets fitted by ABC."""
        return tuple(t for t in self.targets if t.role == "calibration")

    @property
    def validation_targets(self) -> tuple[Target, ...]:
        """Held-out targets, reported apart."""
        return tuple(t for t in self.targets if t.role == "validation")

    def base_config(self) -> dict[str, Any]:
        """The scenario at calibration scale, as plain data (what every worker receives)."""
        data = self.scenario.scenario.model_dump(mode="json")
        data["households"]["sample_fraction"] = self.sample_fraction
        data["days"] = self.days
        return data

    def fingerprint(self) -> str:
        """sha256 of everything that defines the calibration (refuse to resume when it changes): the
        calibration file, the scenario as simulated and its record (:meth:`_simulated_scenario_hash`),
        the targets' recorded values, scale and length."""
        blob = {
            "file": self.file_sha256,
            "scenario": self._simulated_scenario_hash(keep_record=True),
            "targets": [[t.name, _without_sources(t.item.model_dump(mode="json"))] for t in self.targets],
            "quick": self.quick,
            "days": self.days,
            "sample_fraction": self.sample_fraction,
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

    def _simulated_scenario_hash(self, keep_record: bool = False) -> str:
        """sha256 of the scenario as a simulation of a prior draw sees it: without the calibrated
        parameters' own values (every draw replaces them, so ``--apply`` changes neither fingerprint nor
        id), without ``source`` and ``note`` strings, and without the record (compared with, never
        simulated) unless ``keep_record``."""
        from sim.scenario.loader import set_path

        simulated = self.scenario.scenario.model_dump(mode="json")
        if not keep_record:
            simulated.pop("observed", None)
        for path, neutral in NEUTRAL_DEFAULTS.items():
            *parents, leaf = path.split(".")
            node = simulated
            for key in parents:
                node = node.get(key, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict) and node.get(leaf) == neutral:
                node.pop(leaf)
        for p in self.priors:
            set_path(simulated, p.path.split("."), None)
        simulated = _without_sources(simulated)
        return hashlib.sha256(json.dumps(simulated, sort_keys=True).encode()).hexdigest()

    def reference_fingerprint(self) -> str:
        """sha256 of what a simulation of a prior draw depends on, leaving out the budget.

        A neural posterior's reference table stays valid while this holds (a larger budget grows
        it): scenario, run length, scale, root seed, priors and what the targets measure (kind,
        window, towns, threshold, role), not the recorded values or their uncertainties, which no
        simulation depends on, not the scenario's own values of the calibrated parameters, which every
        draw replaces (so ``--apply`` keeps the table valid), and not its ``source`` and ``note`` strings.
        """
        recorded = ("value", "range", "comparison", "source", "note", "calibrated", "reason", "tolerance")
        blob = {
            "scenario": self._simulated_scenario_hash(),
            "days": self.days,
            "sample_fraction": self.sample_fraction,
            "seed": self.seed,
            "priors": [[p.path, p.family, p.low, p.high, p.mean, p.sd] for p in self.priors],
            "targets": [
                [t.name, {k: v for k, v in t.item.model_dump(mode="json").items() if k not in recorded}]
                for t in self.targets
            ],
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


#: Parameters added after calibrations were stored, at the value that reproduces the simulations from
#: before they existed (bit for bit: the golden run and ``tests/test_calibration.py`` check it). At that
#: value they are left out of the fingerprints, so a stored reference table and its calibration id stay
#: valid; any other value, or a prior on them, changes both.
NEUTRAL_DEFAULTS: dict[str, Any] = {"choice.regime_grievance_to_hts": 1.0, "hts.control_half_life_days": None}


def _without_sources(data: Any) -> Any:
    """``data`` without its ``source`` and ``note`` strings (documentation: no simulation reads them)."""
    if isinstance(data, dict):
        return {k: _without_sources(v) for k, v in data.items() if k not in ("source", "note")}
    if isinstance(data, list):
        return [_without_sources(v) for v in data]
    return data


def _fail(path: Path, located: Located, loc: tuple[Any, ...], message: str) -> ScenarioError:
    return ScenarioError(path, message, key=".".join(map(str, loc)), line=located.line_of(loc))


def load_calibration(
    path: str | Path, scenario: LoadedScenario, *, quick: bool = False, days: int | None = None
) -> Calibration:
    """Read and validate a calibration file against ``scenario``.

    Raises:
        ScenarioError: one message naming the file, the line, the key and the problem.
    """
    path = Path(path)
    doc = read_yaml(path, "calibration")
    try:
        spec = CalibrationFile.model_validate(doc.data)
    except ValidationError as exc:
        loc, msg = explain_validation_error(exc.errors()[0], CalibrationFile)
        raise _fail(path, doc.located, loc, msg) from None
    sc = scenario.scenario
    base = sc.model_dump(mode="json")
    priors = []
    for key, p in spec.priors.items():
        loc = ("priors", key)
        try:
            current = value_at(base, key)
        except KeyError:
            raise _fail(path, doc.located, loc, f"unknown parameter path {key!r} in scenario {sc.name!r}") from None
        # None is an optional parameter left off (hts.control_half_life_days): the bounds' check below decides
        # whether it takes numbers
        if isinstance(current, bool) or not isinstance(current, (int, float, type(None))):
            raise _fail(path, doc.located, loc, f"{key!r} is not a numeric parameter (it is {current!r})")
        prior = Prior(key, p.family, p.low, p.high, p.mean, p.sd, p.reason)
        if p.family in ("uniform", "loguniform"):
            for bound in prior.bounds():
                try:
                    apply_values(base, {key: bound}, source=path, geography=False)
                except ScenarioError as e:
                    msg = e.message
                    raise _fail(path, doc.located, loc, f"prior bound {bound:g} is not a valid value: {msg}") from None
        priors.append(prior)
    run_days = days or spec.days or sc.days
    record: Record | None = scenario.record
    if record is not None:
        targets = _record_targets(spec, record, sc, run_days, path, doc.located)
    else:
        targets = _figure_targets(spec, sc, run_days, path, doc.located)
    if not any(t.role == "calibration" for t in targets):
        raise _fail(path, doc.located, ("targets",), "no target has role calibration")
    budget = spec.budget
    fraction = spec.scale.sample_fraction
    if quick:
        q = spec.quick.model_dump(exclude_none=True)
        fraction = q.pop("sample_fraction", fraction)
        budget = budget.model_copy(update=q)
    return Calibration(
        path=path,
        name=spec.name,
        description=spec.description,
        seed=spec.seed,
        days=run_days,
        sample_fraction=fraction,
        priors=tuple(priors),
        targets=tuple(targets),
        budget=budget,
        quick=quick,
        scenario=scenario,
        file_sha256=doc.sha256,
        record=record,
    )


def _record_targets(
    spec: CalibrationFile, record: Record, sc: Scenario, run_days: int, path: Path, located: Located
) -> list[Target]:
    """Targets named by record entry id: every calibration entry of the record must be named (its
    tolerance the entry's own unless the file overrides it with a reason); validation entries may be."""
    import datetime as dt
    import difflib

    ids = [e.id for e in record.entries]
    assert sc.start_date is not None  # a record needs a calendar (checked by the loader)
    last_day = sc.start_date + dt.timedelta(days=run_days - 1)
    targets = []
    for name, t in spec.targets.items():
        loc = ("targets", name)
        if name not in ids:
            hint = difflib.get_close_matches(name, ids, n=1)
            tip = f"; did you mean {hint[0]!r}?" if hint else ""
            raise _fail(path, located, loc, f"no entry {name!r} in record {record.record!r}{tip}")
        entry = record.entry(name)
        if entry.role not in ("calibration", "validation"):
            raise _fail(path, located, loc, f"record entry {name!r} has role {entry.role!r}: a check is never a target")
        if entry.end > last_day or entry.start < sc.start_date:
            raise _fail(
                path,
                located,
                loc,
                f"target window {entry.when_text()} lies outside the run ({sc.start_date} .. {last_day})",
            )
        relative, absolute, reason = t.relative, t.absolute, t.reason
        if relative is None and absolute is None:
            relative = entry.uncertainty.relative if entry.uncertainty.relative is not None else 0.25
            reason = f"the record's: {entry.uncertainty.reason}"
            if entry.numeric and relative <= 0:
                raise _fail(
                    path,
                    located,
                    loc,
                    f"record entry {name!r} gives no tolerance (relative 0): give 'relative' or 'absolute' "
                    "here, with the reason",
                )
        targets.append(Target(None, relative, absolute, str(reason), entry=entry, coverage=coverage_of(record, entry)))
    for e in record.entries:
        if e.role == "calibration" and not e.context and e.id not in spec.targets:
            raise _fail(path, located, ("targets",), f"the record's calibration entry {e.id!r} is not a target")
    return targets


def _figure_targets(spec: CalibrationFile, sc: Scenario, run_days: int, path: Path, located: Located) -> list[Target]:
    """Targets named by the scenario's observed figures (a scenario without a record)."""
    figures = {f.name: f for f in sc.observed.figures}
    targets = []
    for name, t in spec.targets.items():
        loc = ("targets", name)
        fig = figures.get(name)
        if fig is None:
            import difflib

            hint = difflib.get_close_matches(name, list(figures), n=1)
            tip = f"; did you mean {hint[0]!r}?" if hint else ""
            raise _fail(path, located, loc, f"no observed figure named {name!r} in scenario {sc.name!r}{tip}")
        if fig.role not in ("calibration", "validation"):
            raise _fail(
                path,
                located,
                loc,
                f"observed figure {name!r} has role {fig.role!r}: give it role calibration or validation",
            )
        if t.relative is None and t.absolute is None:
            raise _fail(path, located, loc, "give exactly one of 'relative' or 'absolute'")
        for town in fig.towns:
            if town not in sc.town_names:
                raise _fail(path, located, loc, f"target town {town!r} does not exist in scenario {sc.name!r}")
        first = sc.day_of(fig.start) if fig.start is not None else 0
        last = sc.day_of(fig.end) if fig.end is not None else run_days - 1
        if not (0 <= first <= last <= run_days - 1):
            when = f"{sc.date_of(first)} .. {sc.date_of(last)}" if sc.start_date else f"day {first} .. {last}"
            raise _fail(
                path,
                located,
                loc,
                f"target window {when} lies outside the scenario window (days 0 .. {run_days - 1})",
            )
        targets.append(Target(fig, t.relative, t.absolute, str(t.reason)))
    named = set(spec.targets)
    for fig in sc.observed.figures:
        if fig.role in ("calibration", "validation") and fig.name not in named:
            raise _fail(path, located, ("targets",), f"no uncertainty given for the {fig.role} figure {fig.name!r}")
    return targets

"""Calibration files: priors, targets, scale and budget of ``sim calibrate``, validated like scenarios.

A calibration file names the priors of the parameters to fit (by their key path in the
scenario, each with a family and the reason for it), the uncertainty of every recorded
figure the scenario's ``observed`` block marks ``role: calibration`` or ``role: validation``
(with its reason), the simulation scale (``households.sample_fraction``) and the budget. It is
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
      displacements 15 Dec 2017 - 22 Jan 2018: {relative: 0.15, reason: "..."}
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
from sim.scenario.schema import ObservedFigure

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
    """The uncertainty of one recorded figure: relative (share of the value) or absolute, and why."""

    relative: float | None = Field(None, gt=0, le=10, description="half-width as a share of the recorded value")
    absolute: float | None = Field(None, gt=0, description="half-width in the figure's units")
    reason: str = Field(min_length=1, description="why the record is this uncertain")

    @model_validator(mode="after")
    def _one(self) -> TargetSpec:
        if (self.relative is None) == (self.absolute is None):
            raise ValueError("give exactly one of 'relative' or 'absolute'")
        return self


class BudgetSpec(_Strict):
    """How much the sampler may spend."""

    method: Literal["smc", "rejection", "mcmc"] = Field(
        "smc",
        description="smc: pyabc ABC-SMC (adaptive distance, MedianEpsilon); rejection: max_runs prior draws, "
        "accepting those with every calibration target inside its tolerance (equal weights, no kernel); "
        "mcmc: rejection until `population` draws are accepted, then ABC-MCMC chains from each of them",
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

    method: Literal["smc", "rejection", "mcmc"] | None = None
    mcmc_steps: int | None = Field(None, ge=0)
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
    """One recorded figure with its role and its uncertainty interval."""

    figure: ObservedFigure
    relative: float | None
    absolute: float | None
    reason: str

    @property
    def name(self) -> str:
        """The figure's name."""
        return self.figure.name

    @property
    def role(self) -> str:
        """``calibration`` or ``validation``."""
        return self.figure.role

    @property
    def half_width(self) -> float:
        """The stated uncertainty as a half-width in the figure's units."""
        if self.absolute is not None:
            return float(self.absolute)
        assert self.relative is not None
        return abs(self.figure.value) * float(self.relative)

    def record_interval(self) -> tuple[float, float]:
        """What the record says, as an interval (a range, a bound, or the point)."""
        f = self.figure
        if f.comparison == "at_least":
            return f.value, math.inf
        if f.comparison == "at_most":
            return -math.inf, f.value
        if f.range is not None:
            return float(f.range[0]), float(f.range[1])
        return f.value, f.value

    def tolerance_interval(self) -> tuple[float, float]:
        """The record widened by its uncertainty: values inside fit the record."""
        lo, hi = self.record_interval()
        w = self.half_width
        return lo - w, hi + w

    def residual(self, simulated: float) -> float:
        """Distance of a simulated value outside the tolerance interval, in half-widths (0 inside).

        NaN (no data, e.g. no displacements) counts as far outside.
        """
        if not math.isfinite(simulated):
            return 10.0
        lo, hi = self.tolerance_interval()
        if simulated < lo:
            return (simulated - lo) / self.half_width
        if simulated > hi:
            return (simulated - hi) / self.half_width
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
        """sha256 of everything that defines the calibration (refuse to resume when it changes)."""
        blob = {
            "file": self.file_sha256,
            "scenario": self.scenario.config_hash,
            "quick": self.quick,
            "days": self.days,
            "sample_fraction": self.sample_fraction,
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def _fail(path: Path, located: Located, loc: tuple[Any, ...], message: str) -> ScenarioError:
    return ScenarioError(path, message, key=".".join(map(str, loc)), line=located.line_of(loc))


_numeric_at = value_at  # the former name (sim.cli.calibrate_cmd reads key paths with it)


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
        if isinstance(current, bool) or not isinstance(current, (int, float)):
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
    figures = {f.name: f for f in sc.observed.figures}
    run_days = days or spec.days or sc.days
    targets = []
    for name, t in spec.targets.items():
        loc = ("targets", name)
        fig = figures.get(name)
        if fig is None:
            import difflib

            hint = difflib.get_close_matches(name, list(figures), n=1)
            tip = f"; did you mean {hint[0]!r}?" if hint else ""
            raise _fail(path, doc.located, loc, f"no observed figure named {name!r} in scenario {sc.name!r}{tip}")
        if fig.role not in ("calibration", "validation"):
            raise _fail(
                path,
                doc.located,
                loc,
                f"observed figure {name!r} has role {fig.role!r}: give it role calibration or validation",
            )
        for town in fig.towns:
            if town not in sc.town_names:
                raise _fail(path, doc.located, loc, f"target town {town!r} does not exist in scenario {sc.name!r}")
        first = sc.day_of(fig.start) if fig.start is not None else 0
        last = sc.day_of(fig.end) if fig.end is not None else run_days - 1
        if not (0 <= first <= last <= run_days - 1):
            when = f"{sc.date_of(first)} .. {sc.date_of(last)}" if sc.start_date else f"day {first} .. {last}"
            raise _fail(
                path,
                doc.located,
                loc,
                f"target window {when} lies outside the scenario window (days 0 .. {run_days - 1})",
            )
        targets.append(Target(fig, t.relative, t.absolute, t.reason))
    named = set(spec.targets)
    for fig in sc.observed.figures:
        if fig.role in ("calibration", "validation") and fig.name not in named:
            raise _fail(path, doc.located, ("targets",), f"no uncertainty given for the {fig.role} figure {fig.name!r}")
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
    )

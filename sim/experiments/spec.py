"""Sweep files: *what to vary*, validated like scenarios (file:line: key: problem).

A sweep file names a base scenario, the parameters to vary (by their key path in
the scenario, e.g. ``mechanisms.rally``), the design that samples them, the
replicates per design point, a root seed, the outcomes to keep and the days to
run. :func:`load_sweep` turns it into a frozen :class:`SweepSpec`; every problem
is raised as one :class:`~sim.scenario.loader.ScenarioError` (the file is read by
:func:`sim.scenario.loader.read_yaml`, pydantic errors are explained by
:func:`sim.scenario.loader.explain_validation_error`, and every value a parameter can
take is checked by :func:`sim.scenario.loader.apply_values`).

Seeds: every seed of a sweep (its sampler, and each replicate or run) is derived from
``root_seed`` by :func:`sim.scenario.seeds.derive_seed` with the labels ``"sweep", "sampler"``,
``"sweep", "replicate", r`` (``seeds: common``) or ``"sweep", "run", k`` (``seeds: independent``);
see :mod:`sim.experiments.design`.

Example::

    name: blame_vs_protection
    scenario: ../synthetic_grid.yaml
    set: [households.sample_fraction=0.25]
    days: 120
    root_seed: 2018
    replicates: 4
    design: {method: factorial}
    parameters:
      mechanisms.rally: {range: [0, 3], levels: 4}
      mechanisms.pretext_blame: {values: [0.0, 0.5, 1.0]}
      air_campaign.policy: {values: [none, resisting_towns]}
    outcomes: [coop_resisting_mean, coop_resisting_home_mean, protest_resisting_mean]
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.scenario.loader import (
    Located,
    ScenarioError,
    apply_set_overrides,
    apply_values,
    explain_validation_error,
    load_scenario,
    read_yaml,
    resolve_input,
)

SIM_MODEL = "sim"
"""Name of the built-in model function: run the simulation and reduce outcomes."""

DISTRIBUTIONS = ("uniform", "loguniform", "normal", "triangular")
METHODS = ("factorial", "lhs", "sobol", "morris")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParameterSpec(_Strict):
    """How one parameter varies: exactly one of ``values``, ``range`` or ``variants``."""

    values: list[Any] | None = Field(None, min_length=1, description="discrete values (numbers or names)")
    range: tuple[float, float] | None = Field(None, description="[low, high] of a continuous parameter")
    levels: int | None = Field(None, ge=1, le=1000, description="grid levels of a range (factorial)")
    distribution: Literal["uniform", "loguniform", "normal", "triangular"] = "uniform"
    mean: float | None = None
    sd: float | None = Field(None, gt=0)
    mode: float | None = None
    integer: bool = Field(False, description="round sampled values to integers")
    variants: dict[str, dict[str, Any]] | None = Field(
        None, description="named sets of overrides {variant: {key.path: value}}"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ParameterSpec:
        kinds = [k for k in ("values", "range", "variants") if getattr(self, k) is not None]
        if self.distribution == "normal" and self.range is None and self.mean is not None:
            kinds.append("normal")
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of 'values', 'range' or 'variants' "
                "(or 'distribution: normal' with 'mean' and 'sd')" + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        if self.range is not None:
            lo, hi = self.range
            if not lo < hi:
                raise ValueError(f"range must be [low, high] with low < high (got {list(self.range)})")
            if self.distribution == "loguniform" and lo <= 0:
                raise ValueError("a loguniform range must be positive")
            if self.distribution == "triangular" and (self.mode is None or not lo <= self.mode <= hi):
                raise ValueError("a triangular distribution needs 'mode' inside the range")
        if self.distribution == "normal" and (self.mean is None or self.sd is None):
            raise ValueError("a normal distribution needs 'mean' and 'sd'")
        if self.values is not None:
            types = {_value_type(v) for v in self.values}
            if len(types) > 1:
                raise ValueError(f"values must all be numbers, all names or all booleans (got {self.values})")
            if len({json.dumps(v) for v in self.values}) != len(self.values):
                raise ValueError(f"values repeat (got {self.values})")
        if self.variants is not None and not self.variants:
            raise ValueError("variants must name at least one variant")
        return self


def _value_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "other"


class DesignSpec(_Strict):
    """The sampler: full factorial, Latin hypercube, Sobol (Saltelli) or Morris."""

    method: Literal["factorial", "lhs", "sobol", "morris"] = "factorial"
    samples: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="lhs: number of design points; sobol: base sample N (power of 2)",
    )
    second_order: bool = Field(False, description="sobol: also second-order indices")
    trajectories: int | None = Field(None, ge=2, le=100_000, description="morris: trajectories")
    levels: int = Field(4, ge=2, le=100, description="morris: grid levels (even)")

    @model_validator(mode="after")
    def _method_options(self) -> DesignSpec:
        if self.method in ("lhs", "sobol") and self.samples is None:
            raise ValueError(f"the {self.method} design needs 'samples'")
        if self.method == "sobol" and self.samples is not None and self.samples & (self.samples - 1):
            raise ValueError(f"sobol 'samples' must be a power of 2 (got {self.samples})")
        if self.method == "morris" and self.trajectories is None:
            raise ValueError("the morris design needs 'trajectories'")
        if self.method == "morris" and self.levels % 2:
            raise ValueError(f"morris 'levels' must be even (got {self.levels})")
        return self


class SweepFile(_Strict):
    """The schema of a sweep YAML file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    scenario: str | None = Field(None, description="base scenario file, relative to the sweep file")
    set: list[str] = Field(default_factory=list, description="key.path=value overrides of the base")
    model: str = Field(SIM_MODEL, description="'sim' or 'package.module:function'")
    days: int | None = Field(None, ge=1, le=3650)
    root_seed: int = Field(ge=0, le=2**63 - 1)
    replicates: int = Field(1, ge=1, le=100_000)
    seeds: Literal["common", "independent"] = Field(
        "common",
        description="common: replicate r has the same seed at every design point (common random "
        "numbers, so differences between points are due to the parameters); independent: "
        "every run its own seed",
    )
    design: DesignSpec = Field(default_factory=DesignSpec)
    parameters: dict[str, ParameterSpec] = Field(min_length=1)
    outcomes: list[str] = Field(min_length=1)
    window: int = Field(30, ge=1, le=3650, description="days of window-averaged outcomes")
    series: list[str] = Field(default_factory=list, description="daily series to keep per run")
    options: dict[str, Any] = Field(default_factory=dict, description="passed to a custom model")
    batch_size: int = Field(20, ge=1, le=100_000, description="runs per Parquet part")

    @field_validator("model")
    @classmethod
    def _model_name(cls, v: str) -> str:
        if v != SIM_MODEL and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v):
            raise ValueError(f"model must be 'sim' or 'package.module:function' (got {v!r})")
        return v

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, v: dict[str, ParameterSpec]) -> dict[str, ParameterSpec]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", name):
                raise ValueError(f"parameter {name!r} is not a key path like 'mechanisms.rally'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SweepFile:
        if self.model == SIM_MODEL and self.scenario is None:
            raise ValueError("the 'sim' model needs a base 'scenario' file")
        if self.design.method in ("sobol", "morris") and len(self.parameters) < 2:
            raise ValueError(
                f"parameters: a {self.design.method} design needs at least two parameters (got "
                f"{len(self.parameters)}): with one, every index is 1 by construction; use a factorial or lhs design"
            )
        if self.design.method == "factorial":
            for name, p in self.parameters.items():
                if p.values is None and p.variants is None and p.levels is None:
                    raise ValueError(f"parameters.{name}: a factorial design needs 'values' or 'levels' for each range")
        return self


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Parameter:
    """One varied parameter, able to map unit-interval samples to values."""

    name: str
    spec: ParameterSpec

    @property
    def discrete(self) -> list[Any] | None:
        """The discrete choices (values or variant names), or None for a continuous one."""
        if self.spec.values is not None:
            return list(self.spec.values)
        if self.spec.variants is not None:
            return list(self.spec.variants)
        return None

    @property
    def dtype(self) -> str:
        """Column type in the results: 'float', 'int', 'bool' or 'string'."""
        choices = self.discrete
        if choices is None:
            return "int" if self.spec.integer else "float"
        kinds = {_value_type(v) for v in choices}
        if kinds == {"number"}:
            return "int" if all(isinstance(v, int) for v in choices) else "float"
        if kinds == {"bool"}:
            return "bool"
        return "string"

    def from_unit(self, u: np.ndarray) -> list[Any]:
        """Values at unit-interval coordinates ``u`` (inverse CDF; discrete: equal bins)."""
        from scipy import stats

        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        choices = self.discrete
        if choices is not None:
            idx = np.minimum((u * len(choices)).astype(int), len(choices) - 1)
            return [self._cast(choices[i]) for i in idx]
        s = self.spec
        if s.distribution == "normal":
            x = stats.norm.ppf(np.clip(u, 1e-12, 1 - 1e-12), loc=s.mean, scale=s.sd)
            if s.range is not None:
                x = np.clip(x, *s.range)
        else:
            lo, hi = s.range  # type: ignore[misc]
            if s.distribution == "uniform":
                x = lo + u * (hi - lo)
            elif s.distribution == "loguniform":
                x = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
            else:
                c = (s.mode - lo) / (hi - lo)  # type: ignore[operator]
                x = stats.triang.ppf(u, c, loc=lo, scale=hi - lo)
        return [self._cast(v) for v in x]

    def grid(self) -> list[Any]:
        """Factorial levels: the values, variants, or ``levels`` quantiles of the range."""
        choices = self.discrete
        if choices is not None:
            return [self._cast(v) for v in choices]
        n = self.spec.levels or 1
        if n == 1:
            return self.from_unit(np.array([0.5]))
        if self.spec.distribution in ("uniform", "loguniform"):
            return self.from_unit(np.linspace(0.0, 1.0, n))
        return self.from_unit((np.arange(n) + 0.5) / n)

    def overrides(self, value: Any) -> dict[str, Any]:
        """Scenario key paths set by this parameter at ``value``."""
        if self.spec.variants is not None:
            return dict(self.spec.variants[value])
        return {self.name: value}

    def _cast(self, v: Any) -> Any:
        t = self.dtype
        if t == "float":
            return float(v)
        if t == "int":
            return round(float(v))
        if t == "bool":
            return bool(v)
        return str(v)


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: everything needed to plan and run it, and nothing else."""

    name: str
    file: Path | None
    file_sha256: str | None
    model: str
    base: dict[str, Any] | None
    base_overrides: tuple[str, ...]
    days: int | None
    root_seed: int
    replicates: int
    seeds: str
    design: DesignSpec
    parameters: tuple[Parameter, ...]
    outcomes: tuple[str, ...]
    window: int
    series: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 20
    description: str = ""

    @property
    def parameter_names(self) -> list[str]:
        """Names of the varied parameters, in file order."""
        return [p.name for p in self.parameters]

    def plan_dict(self) -> dict[str, Any]:
        """Everything that determines the runs and their results (hashed for resume)."""
        return {
            "name": self.name,
            "model": self.model,
            "base": self.base,
            "days": self.days,
            "root_seed": self.root_seed,
            "replicates": self.replicates,
            "seeds": self.seeds,
            "design": self.design.model_dump(mode="json"),
            "parameters": {p.name: p.spec.model_dump(mode="json") for p in self.parameters},
            "outcomes": list(self.outcomes),
            "window": self.window,
            "series": list(self.series),
            "options": self.options,
        }

    @property
    def plan_hash(self) -> str:
        """sha256 of :meth:`plan_dict` (canonical JSON)."""
        blob = json.dumps(self.plan_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def replace(self, **changes: Any) -> SweepSpec:
        """A copy with some fields changed (e.g. fewer replicates)."""
        import dataclasses

        return dataclasses.replace(self, **changes)


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> SweepSpec:
    """Read and validate a sweep file (and its base scenario).

    Args:
        path: the sweep YAML file, or the name of a shipped sweep (``"mechanisms_morris"``).
        overrides: ``key=value`` overrides of top-level sweep keys (e.g. ``replicates=2``).

    Raises:
        ScenarioError: one message naming the file, line, key path and problem.
    """
    path = resolve_input(path, "sweep")
    data, located, sha = read_yaml(path, "sweep")
    apply_set_overrides(data, list(overrides or []), path)
    try:
        sf = SweepFile.model_validate(data)
    except ValidationError as exc:
        loc, msg = explain_validation_error(exc.errors()[0], SweepFile)
        if loc and loc[-1] in ("values", "range", "variants") and "exactly one" in msg:
            loc = loc[:-1]
        m = re.match(r"parameters\.([^:]+): (.*)", msg)
        if m:  # a message from the whole-file validator naming one parameter
            loc, msg = ("parameters", m.group(1)), m.group(2)
        elif msg.startswith("parameters: "):  # ... or the parameters as a whole
            loc, msg = ("parameters",), msg.removeprefix("parameters: ")
        raise ScenarioError(path, msg, key=".".join(map(str, loc)), line=located.line_of(loc)) from None
    return _build(sf, path, sha, located)


def spec_from_dict(data: dict[str, Any], *, base_dir: str | Path = ".") -> SweepSpec:
    """Build a :class:`SweepSpec` from a dict shaped like a sweep file (Python API)."""
    try:
        sf = SweepFile.model_validate(data)
    except ValidationError as exc:
        loc, msg = explain_validation_error(exc.errors()[0], SweepFile)
        raise ScenarioError(None, msg, key=".".join(map(str, loc))) from None
    return _build(sf, Path(base_dir) / "<dict>", None, Located(None))


def _build(sf: SweepFile, path: Path, sha: str | None, located: Located) -> SweepSpec:
    base: dict[str, Any] | None = None
    days = sf.days
    if sf.model == SIM_MODEL:
        scen_path = (path.parent / sf.scenario).resolve()  # type: ignore[operator]
        try:
            loaded = load_scenario(scen_path, list(sf.set))
        except ScenarioError as e:
            if e.file and Path(e.file) == scen_path and not e.key and "not found" in e.message:
                raise ScenarioError(
                    path,
                    f"scenario file {sf.scenario!r} not found (looked at {scen_path})",
                    key="scenario",
                    line=located.line_of(("scenario",)),
                ) from None
            raise
        base = loaded.scenario.model_dump(mode="json")
        if days is not None:
            base["days"] = days
        days = base["days"]
        _check_parameters(sf, base, path, located)
    _check_outcomes(sf, path, located)
    return SweepSpec(
        name=sf.name,
        file=path if sha else None,
        file_sha256=sha,
        model=sf.model,
        base=base,
        base_overrides=tuple(sf.set),
        days=days,
        root_seed=sf.root_seed,
        replicates=sf.replicates,
        seeds=sf.seeds,
        design=sf.design,
        parameters=tuple(Parameter(n, p) for n, p in sf.parameters.items()),
        outcomes=tuple(sf.outcomes),
        window=sf.window,
        series=tuple(sf.series),
        options=dict(sf.options),
        batch_size=sf.batch_size,
        description=sf.description,
    )


def _check_parameters(sf: SweepFile, base: dict[str, Any], path: Path, located: Located) -> None:
    """Every value a parameter can take must give a valid scenario (checked at its extremes)."""
    for name, spec in sf.parameters.items():
        p = Parameter(name, spec)
        line = located.line_of(("parameters", name))
        probes = p.grid() if p.discrete is not None else p.from_unit(np.array([0.0, 1.0]))
        if spec.distribution == "normal" and spec.range is None:
            probes = [p._cast(spec.mean)]
        for value in probes:
            try:
                apply_values(base, p.overrides(value), source=path)
            except ScenarioError as e:
                where = f"{e.key}: " if e.key else ""
                raise ScenarioError(
                    path,
                    f"value {value!r} is invalid for the scenario: {where}{e.message}",
                    key=f"parameters.{name}",
                    line=line,
                ) from None


def _check_outcomes(sf: SweepFile, path: Path, located: Located) -> None:
    if sf.model != SIM_MODEL:
        return
    from sim.model.collect import GOV_VARS
    from sim.run.outcomes import OutcomeError, resolve

    for i, name in enumerate(sf.outcomes):
        try:
            resolve(name)
        except OutcomeError as e:
            raise ScenarioError(path, str(e), key=f"outcomes.{i}", line=located.line_of(("outcomes", i))) from None
    for i, name in enumerate(sf.series):
        if name not in GOV_VARS:
            raise ScenarioError(
                path, f"unknown daily series {name!r}", key=f"series.{i}", line=located.line_of(("series", i))
            )


def is_finite_number(v: Any) -> bool:
    """True for a finite int/float (not bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

"""Calibration against the record, read from stored calibration folders: report, verdict, ``--apply``.

The sampling and the checks run in the experiments layer (:mod:`sim.experiments.inference`);
this module writes what a calibration folder's tables say:

* :func:`write_calibration_report` - ``report.md`` of a calibration folder;
* :func:`calibrated_yaml`, :func:`apply_calibration` - the posterior medians of a stored
  calibration written into a scenario file that ``extends`` its base (``sim calibrate --apply``);
* :func:`probability_table`, :func:`verdict_text`, :func:`write_thesis_report` - the posterior
  thesis's P(effect > +ROPE), P(|effect| <= ROPE), P(effect < -ROPE) from its stored runs.

How a run's tables give a target's value (:func:`sim.run.record.target_value`: the record's observation models)
lives in this layer, so the entry points that simulate (:func:`calibrate`, :func:`posterior_thesis`,
:func:`run_rejection`, :func:`run_abc_mcmc`, :func:`scale_check`, :func:`target_values`) are
bound to it here and delegate everything else to :mod:`sim.experiments.inference`.

Nothing here draws: figures come through the ``draw`` hook the CLI passes
(:mod:`sim.viz.calibration`).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.npe_checks import BLOCKING, write_npe_checks
from sim.analysis.settle import reliability_section
from sim.analysis.statistics import DEFAULT_ROPE, posterior_probabilities
from sim.analysis.thesis import markdown_table, paired_differences, rope_for
from sim.experiments.comparisons import COMPARISONS, OUTCOMES, POLICY, POSTERIOR_OUTCOMES
from sim.experiments.engine import Engine
from sim.experiments.inference import checks, driver, methods, targets
from sim.experiments.inference.base import SamplerResult
from sim.experiments.inference.driver import CalibrationResult
from sim.experiments.inference.folder import StoredCalibration, load_calibration_folder
from sim.experiments.inference.thesis import SOURCES, run_posterior_draws
from sim.run.provenance import stamp
from sim.run.record import target_value
from sim.run.store import write_csv_atomic, write_json_atomic, write_parquet, write_text_atomic
from sim.scenario.calibration import Calibration
from sim.scenario.loader import ScenarioError, value_at

__all__ = [
    "CalibrationResult",
    "PosteriorThesis",
    "StoredCalibration",
    "apply_calibration",
    "calibrate",
    "calibrated_yaml",
    "load_calibration_folder",
    "posterior_thesis",
    "probability_table",
    "run_abc_mcmc",
    "run_rejection",
    "scale_check",
    "target_values",
    "value_at",
    "verdict_text",
    "write_calibration_report",
    "write_thesis_report",
]


# --------------------------------------------------------------------------- bound to the record's measure


def target_values(
    base: dict[str, Any], values: dict[str, float], seed: int, figures: list[Any], record: Any = None
) -> dict[str, float]:
    """Simulate ``base`` with parameter ``values`` (by key path) and ``seed``; the value of each target
    item (record entries of ``record``, or observed figures)."""
    return targets.target_values(base, values, seed, figures, target_value, record)


def target_model(cal: Calibration) -> targets.TargetModel:
    """The statistics pyabc judges a simulation of ``cal`` by (residuals and values of its targets)."""
    return targets.TargetModel(cal.base_config(), cal.targets, target_value, cal.record)


def run_rejection(cal: Calibration, folder: str | Path, **options: Any) -> SamplerResult:
    """Rejection ABC (:mod:`sim.experiments.inference.rejection`) on the record, sampler alone."""
    return methods.run_method("rejection", cal, folder, target_value, **options)


def run_abc_mcmc(cal: Calibration, folder: str | Path, **options: Any) -> SamplerResult:
    """Rejection ABC, then ABC-MCMC (:mod:`sim.experiments.inference.mcmc`) on the record, sampler alone."""
    return methods.run_method("mcmc", cal, folder, target_value, **options)


def scale_check(engine: Engine, cal: Calibration, median: dict[str, float], seed: int) -> pd.DataFrame:
    """The scale check (:func:`sim.experiments.inference.checks.scale_check`) on the record."""
    return checks.scale_check(engine, cal, median, seed, target_value)


def calibrate(
    cal: Calibration,
    out: str | Path | None = None,
    *,
    method: str | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    fresh: bool = False,
    progress: Callable[[str], None] | None = print,
    draw: Callable[[Path], list[Path]] | None = None,
) -> CalibrationResult:
    """Run (or resume) the calibration (:func:`sim.experiments.inference.driver.calibrate`), then its report.

    Raises:
        CalibrationConflict: the folder holds another calibration.
        CalibrationFailed: the sampler ended without a posterior.
    """
    result = driver.calibrate(
        cal, out, target_value, method=method, workers=workers, scheduler=scheduler, fresh=fresh, progress=progress
    )
    sampled = result.calibration or cal
    result.report = write_calibration_report(
        result.folder,
        sampled,
        result.abc,
        result.marginals,
        result.predictive,
        result.scale,
        result.calibration_id,
        result.seconds,
        draw,
    )
    return result


# --------------------------------------------------------------------------- the report


def coverage_line(ppc: pd.DataFrame, role: str) -> str:
    """``k of n`` targets of a role whose 90% predictive band meets the record."""
    sub = ppc[ppc["role"] == role]
    return f"{int(sub['covered'].sum())} of {len(sub)}"


def write_calibration_report(
    folder: Path,
    cal: Calibration,
    abc: SamplerResult,
    marg: pd.DataFrame,
    ppc: pd.DataFrame,
    scale: pd.DataFrame,
    cid: str,
    seconds: float,
    draw: Callable[[Path], list[Path]] | None = None,
) -> Path:
    """``report.md`` of a calibration folder (figures through ``draw``)."""
    pinned = marg[marg["record"] == "pinned down"]["parameter"].tolist()
    free = marg[marg["record"] == "left free"]["parameter"].tolist()
    pcols = [
        "target",
        "recorded",
        "record_low",
        "record_high",
        "uncertainty",
        "band_low",
        "median",
        "band_high",
        "covered",
    ]
    mcols = [
        "parameter",
        "prior",
        "prior_low",
        "prior_high",
        "posterior_median",
        "posterior_low",
        "posterior_high",
        "width_ratio",
        "record",
    ]
    rejection = cal.budget.method in ("rejection", "mcmc")
    npe_doc = write_npe_checks(folder, cal.priors, cal.seed) if cal.budget.method == "npe" else None
    if npe_doc is not None:
        method_name, sampled, method, files, population = _npe_text(cal, abc)
    elif cal.budget.method == "mcmc":
        g = abc.generations
        first, chain = g.iloc[0], g.iloc[-1]
        method_name = "rejection ABC, then ABC-MCMC"
        sampled = (
            f"{int(first['samples'])} prior draws simulated, {int(first['particles'])} accepted as chain starts; "
            f"{chain['phase']}: {int(chain['samples'])} proposals simulated, {chain['acceptance']:.1%} of steps "
            f"moved; {abc.runs} runs in all; stopped by {abc.stop_reason}"
        )
        method = (
            "Rejection ABC for starting points (prior draws, seeded, in a fixed order, one seeded run each; a draw "
            "is accepted when every calibration target's simulated value lies inside its tolerance: recorded "
            "value, range or bound widened by the stated uncertainty), then an ABC-MCMC chain (Marjoram et al. "
            "2003) from each accepted draw: a Gaussian random walk in the sampler coordinates (sd "
            f"{cal.budget.mcmc_step:g} of each prior's width), one seeded run per proposal, and the move taken "
            "when every calibration target is inside its tolerance and a uniform falls below the prior ratio. "
            "The chains start in the tolerance posterior (rejection draws are exact samples of it) and keep it "
            "as their stationary distribution, so no burn-in is dropped; their states are correlated, and a "
            "low move rate means few distinct states: read the intervals as rough. Validation targets never "
            "enter the acceptance."
        )
        files = "`rejection.parquet` (every prior draw simulated), `mcmc.parquet` (every chain state)"
        population = "the chain states"
    elif rejection:
        method_name = "rejection ABC"
        sampled = (
            f"{abc.runs} prior draws simulated, {len(abc.posterior)} accepted "
            f"({len(abc.posterior) / max(abc.runs, 1):.2%}), stopped by {abc.stop_reason}"
        )
        method = (
            "Rejection ABC: prior draws (seeded, in a fixed order), one seeded run each; a draw is accepted "
            "when every calibration target's simulated value lies inside its tolerance (recorded value, range "
            "or bound widened by the stated uncertainty): a uniform ABC kernel of the record's own width, the "
            "epsilon = 0 limit of ABC-SMC with these residuals. Accepted draws are independent samples of that "
            "posterior with equal weights (effective sample size = number accepted), so no importance weight "
            "can degenerate. Log-family priors are sampled in log space. Validation targets never enter the "
            "acceptance."
        )
        files = "`rejection.parquet` (every simulated draw: parameters, seed, target values, accepted)"
        population = "the accepted draws"
    else:
        method_name = "ABC-SMC"
        sampled = f"{len(abc.generations)} generations, {abc.runs} runs, stopped by {abc.stop_reason}"
        method = (
            "ABC-SMC (pyabc): adaptive p-norm distance (p = 2, scales = mean absolute deviation of each "
            "statistic in the previous generation), median epsilon, adaptive population size, multivariate "
            "normal perturbation kernels. Each statistic is a target's residual outside the record's "
            "tolerance (recorded value, range or bound widened by the stated uncertainty), in half-widths; "
            "0 inside. Log-family priors are sampled in log space. Validation targets never enter the distance."
        )
        files = "`history.db` (pyabc)"
        population = "the final population"
    parts = [
        f"# Calibration {cid}: {cal.scenario.scenario.name} against the record ({method_name})",
        "",
        *(_npe_banner(npe_doc) if npe_doc is not None else []),
        f"- scenario `{cal.scenario.path}`, calibration file `{cal.path}`{' (--quick budget)' if cal.quick else ''}",
        f"- {len(cal.priors)} parameters, {len(cal.calibration_targets)} calibration targets, "
        f"{len(cal.validation_targets)} validation targets (held out)",
        f"- scale: households.sample_fraction = {cal.sample_fraction:g}; {cal.days} days per run",
        f"- method `{cal.budget.method}` ({method_name}); {sampled}; sampling {abc.seconds:.0f} s (this session), "
        f"total wall time {seconds:.0f} s; sampler: {abc.sampler}",
        f"- pinned down by the record (posterior 90% width < half the prior's): {', '.join(pinned) or 'none'}",
        f"- left free (posterior 90% width >= 0.8 of the prior's): {', '.join(free) or 'none'}",
        f"- predictive coverage (90% band meets the record): calibration {coverage_line(ppc, 'calibration')}, "
        f"validation {coverage_line(ppc, 'validation')}",
        "",
        "## Posterior marginals against the priors (90% intervals)",
        "",
        "![marginals](marginals.png)",
        "",
        markdown_table(marg[mcols]),
        "",
        f"Pairs plot of {population}: ![pairs](pairs.png)",
        "",
        "## Posterior predictive check",
        "",
        f"{cal.budget.predictive_draws} draws from {population}, one seeded run each. `covered`: the 90% band "
        "meets the recorded value (or recorded range / bound).",
        "",
        "![predictive](predictive.png)",
        "",
        "### Calibration targets (fitted)",
        "",
        markdown_table(ppc[ppc["role"] == "calibration"][pcols]),
        "",
        "### Validation targets (held out of fitting)",
        "",
        markdown_table(ppc[ppc["role"] == "validation"][pcols]),
        "",
        "Target uncertainties and their reasons:",
        "",
        *[f"- {t.name} ({t.role}): +-{t.half_width:.4g} ({t.reason}); source: {t.source}" for t in cal.targets],
        "",
        "## Scale check",
        "",
        f"Target statistics at the posterior median, {cal.budget.scale_check_seeds} seeds at the calibration scale "
        f"({cal.sample_fraction:g}) and the same seeds at {cal.budget.scale_check_fraction:g}; "
        "|z| <= 3: within seed noise. "
        f"Agree: {int(scale['agree'].sum())} of {len(scale)}.",
        "",
        markdown_table(
            scale[["target", "mean_calibration_scale", "mean_reference_scale", "difference", "se", "z", "agree"]]
        ),
        "",
        *(_npe_section(npe_doc, cal) if npe_doc is not None else []),
        "## Sampler diagnostics" if rejection or npe_doc is not None else "## Generations",
        "",
        markdown_table(abc.generations),
        "",
        "## Method",
        "",
        method,
        "",
        "Priors and their reasons:",
        "",
        *[f"- `{p.path}` ~ {p.describe()}: {p.reason}" for p in cal.priors],
        "",
        f"Files: `posterior.parquet` (particles and weights), `marginals.csv`, "
        f"`predictive.csv`, `predictive_draws.parquet`, `scale_check.csv`, `generations.csv`, {files}, "
        f"`manifest.json`. Written {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}.",
    ]
    path = folder / "report.md"
    write_text_atomic("\n".join(parts) + "\n", path)
    if draw is not None:
        draw(folder)
    return path


def _npe_text(cal: Calibration, abc: SamplerResult) -> tuple[str, str, str, str, str]:
    """(method name, what was sampled, the method in words, its files, what the posterior is) of npe."""
    from sim.experiments.inference.npe_method import TRANSFORM_TEXT, condition_text, conditions, statistics_spec

    g = abc.generations.iloc[-1]
    b = cal.budget
    sampled = (
        f"reference table of {int(g['samples'])} prior draws simulated ({int(g['failed'])} failed, recorded and "
        f"left out), {int(g['held_out'])} held out for the checks, {int(g['trained_on'])} trained on; "
        f"{int(g['members'])} flows (epochs {g['epochs']}{', stored fit reused' if bool(g['reused_fit']) else ''}); "
        f"{int(g['particles'])} posterior draws at the record; stopped by {abc.stop_reason}"
    )
    spec = statistics_spec(cal)
    stats = "; ".join(
        f"{s['target']}: {TRANSFORM_TEXT[s['transform']]}" for s in spec if s.get("role", "statistic") == "statistic"
    )
    meeting = float(g.get("meeting_conditions", math.nan))
    met = f"{int(meeting)} of {int(g['samples'])}; " if math.isfinite(meeting) else ""
    cond = (
        (
            " Interval entries of the record are conditions, not statistics (their midpoint is not a value the "
            f"record gives): {condition_text(spec)} (the record's tolerance interval, the rule record.csv judges "
            "agreement by); only the simulations meeting them are trained on and checked "
            f"({met}the posterior is "
            "that given the statistics and these entries met)."
        )
        if conditions(spec)
        else ""
    )
    method = (
        "Neural posterior estimation (sbi NPE, single round): an ensemble of "
        f"{b.members} neural spline flows, each trained from its own seed on the reference table (row i: the prior "
        "draw and run seed derived from the root seed and i alone, so the table is the same serial, parallel or "
        "resumed, and grows when the budget grows). Parameters are mapped to an unbounded space (logit of the "
        "position in a uniform prior's range, on the log scale for log-uniform priors), so the posterior stays "
        "inside the prior. The statistics are the calibration targets' simulated values on unbounded scales, "
        f"the transform chosen from each figure's kind: {stats}. The record is conditioned on at each statistic's "
        f"recorded value.{cond} A row is held out when its split uniform is below {b.held_out:g}; the "
        "checks below use only those rows. The posterior table holds "
        f"{b.posterior_samples} independent ensemble draws with equal weights. Validation targets never enter "
        "the statistics."
    )
    files = (
        "`reference/table.parquet` (every simulation: draw, seed, split, failed, error, parameters, target values "
        "`v:`, statistics `s:`), `reference/statistics.json`, `npe/` (the ensemble), `npe_point.json` (the "
        "draw of highest density relative to the prior), `checks.json`, `checks.csv`, `sbc_ranks.csv`, "
        "`coverage.csv`, `tarp.csv`, "
        "`contraction.csv`, `misspecification.csv`, `disagreement.csv`"
    )
    return "neural posterior estimation", sampled, method, files, "the posterior draws"


def _npe_banner(doc: dict[str, Any]) -> list[str]:
    """The first lines of an npe report: do the checks allow belief?"""
    if doc["passed"]:
        return ["**Checks before belief: all pass** (" + ", ".join(BLOCKING) + ").", ""]
    return [
        "**CHECKS FAILED: " + ", ".join(doc["failing_names"]) + ".** The posterior below is not to be believed "
        "until they pass (raise budget.simulations or budget.members); `sim thesis --posterior` on this folder "
        "withholds its verdict unless --force is given.",
        "",
    ]


def _npe_section(doc: dict[str, Any], cal: Calibration) -> list[str]:
    """The checks-before-belief section of an npe report."""
    res = doc["results"]
    table = pd.DataFrame(
        [
            {"check": r.name, "result": "pass" if r.passed else "FAIL", "withholds the verdict": k in BLOCKING}
            for k, r in res.items()
        ]
    )
    cov = res["coverage"].data
    contr = res["contraction"].data.reset_index()
    constrained = doc["constrained"]
    free = [p.path for p in cal.priors if p.path not in constrained]
    lines = [
        "## Checks before belief",
        "",
        markdown_table(table),
        "",
        *[f"- {r.line()}" for r in res.values()],
        "",
        "### Simulation-based calibration",
        "",
        "Rank of each held-out truth among its posterior draws: uniform if the posterior is calibrated.",
        "",
        "![SBC ranks](sbc_ranks.png)",
        "",
    ]
    if len(res["sbc"].data):
        lines += [markdown_table(res["sbc"].data.reset_index()), ""]
    if len(cov):
        lines += [
            "### Expected coverage",
            "",
            "Share of held-out truths inside the central interval of their posterior, against the binomial band.",
            "",
            markdown_table(cov),
            "",
        ]
    lines += [
        "### Contraction: what the record constrains",
        "",
        f"Constrained by the record (contraction >= 0.5 at the record): {', '.join(constrained) or 'none'}. "
        f"Not constrained: {', '.join(free) or 'none'}.",
        "",
        markdown_table(contr),
        "",
        "### Misspecification",
        "",
        markdown_table(res["rank"].data.join(res["mmd"].data.add_prefix("mmd_"), how="outer").reset_index()),
        "",
        "### Ensemble disagreement",
        "",
        markdown_table(res["disagreement"].data.reset_index()),
        "",
    ]
    return lines


# --------------------------------------------------------------------------- --apply


def list_anchor(data: dict, path: str) -> str | None:
    """The key path of the first list that ``path`` goes through in ``data`` (None: mappings only)."""
    cur: object = data
    parts = path.split(".")
    for n, part in enumerate(parts):
        if isinstance(cur, list):
            return ".".join(parts[:n])
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return None


class _WholeList:
    """Marks a list written whole (``extends`` replaces lists)."""

    def __init__(self, anchor: str):
        self.anchor = anchor


@dataclass
class _Held:
    """A value the scenario file set (not a calibrated parameter), kept: the calibration ran with it."""

    value: Any


def held_values(current: dict, base: dict, calibrated: list[str], prefix: str = "") -> dict[str, Any]:
    """Values the scenario sets over its base that are not calibrated parameters (``{path: value}``):
    the calibration's simulations ran with them, so ``--apply`` keeps them. Lists are compared whole;
    a list holding a calibrated parameter is the calibration's to write."""
    out: dict[str, Any] = {}
    for key, value in current.items():
        path = f"{prefix}{key}"
        if key == "observed" and not prefix:
            continue
        other = base.get(key) if isinstance(base, dict) else None
        if isinstance(value, dict) and isinstance(other, dict):
            out.update(held_values(value, other, calibrated, path + "."))
        elif value != other and not any(c == path or c.startswith(path + ".") for c in calibrated):
            out[path] = value
    return out


def calibrated_yaml(
    base_name: str,
    stored: StoredCalibration,
    resolved: dict,
    header: str = "",
    point: dict[str, float] | None = None,
    rule: str = "",
    sample_file: str = "",
    held: dict[str, Any] | None = None,
) -> str:
    """The text of a calibrated scenario file: ``extends`` the base, posterior medians with their source.

    ``resolved`` is the scenario the base file resolves to (plain data): a parameter inside a list
    (a schedule period, a rival group) is written as the whole list with its value replaced, since
    ``extends`` replaces lists whole. With ``point`` (an npe calibration), the values are that one
    posterior draw, chosen by ``rule``, instead of the medians of the marginals, and the header
    names the posterior sample shipped beside the file (``sample_file``).
    """
    import yaml

    from sim.scenario.loader import set_path

    cid = stored.calibration_id
    marg = stored.marginals.copy()
    what = "posterior median"
    if point is not None:
        marg["posterior_median"] = [float(point[p]) for p in marg["parameter"]]
        what = "posterior draw of highest density relative to the prior"
    intro = (
        [
            "# fitted to the record: ONE POSTERIOR DRAW, chosen by the rule: " + rule + ",",
            "# not the medians of the marginals (a set of medians need not be a plausible draw). The whole",
            f"# posterior sample is shipped beside this file: {sample_file}.",
            "# Written by `sim calibrate SCENARIO --apply`",
        ]
        if point is not None
        else ["# fitted to the record (posterior medians). Written by `sim calibrate SCENARIO --apply` from"]
    )
    if not header:  # the window the scenario runs, read from it (not written by hand)
        start, days = resolved.get("start_date"), resolved.get("days")
        span = ""
        if start is not None and days:
            first = dt.date.fromisoformat(str(start))
            last = first + dt.timedelta(days=int(days) - 1)
            span = f", {first.day} {first:%B %Y} - {last.day} {last:%B %Y}"
        header = f"# {resolved.get('name', 'scenario')}{span}: the scenario, CALIBRATED."
    lines = [
        header,
        "#",
        f"# Every input comes from {base_name}; this file holds only the values calibration {cid}",
        *intro,
        f"# {'from ' if point is not None else ''}{stored.folder}; each value's comment gives its source: the "
        "calibration id and the 90% interval.",
        f"extends: {base_name}",
        "",
    ]

    def source(r) -> str:
        return (
            f"source: calibration {cid}, {what} (90% [{float(r.posterior_low):.4g}, "
            f"{float(r.posterior_high):.4g}]; {r.record})"
        )

    tree: dict = {}
    lists: dict[str, list] = {}
    data = copy.deepcopy(resolved)
    for r in marg.itertuples(index=False):
        anchor = list_anchor(resolved, r.parameter)
        if anchor is not None:
            set_path(data, r.parameter.split("."), float(f"{float(r.posterior_median):.6g}"))
            lists.setdefault(anchor, []).append(r)
            continue
        set_path(tree, r.parameter.split("."), r)
    for anchor in lists:
        set_path(tree, anchor.split("."), _WholeList(anchor))
    for path, value in (held or {}).items():
        set_path(tree, path.split("."), _Held(value))

    def emit(node: dict, indent: int) -> None:
        pad = " " * indent
        for key, val in node.items():
            k = key if re.fullmatch(r"[A-Za-z0-9_]+", key) else f'"{key}"'
            if isinstance(val, dict):
                lines.append(f"{pad}{k}:")
                emit(val, indent + 2)
            elif isinstance(val, _WholeList):
                anchor = val.anchor
                for r in lists[anchor]:
                    lines.append(f"{pad}# {r.parameter} = {float(r.posterior_median):.6g}: {source(r)}")
                block = yaml.safe_dump(
                    {key: value_at(data, anchor)}, sort_keys=False, default_flow_style=None, width=200
                )
                lines.extend(pad + line for line in block.rstrip("\n").splitlines())
            elif isinstance(val, _Held):
                dumped = yaml.safe_dump(val.value, default_flow_style=True, width=10_000).strip()
                dumped = dumped.removesuffix("\n...").strip()
                lines.append(
                    f"{pad}{k}: {dumped}   # not calibrated: held at the value calibration {cid} ran with "
                    "(set by this file before --apply)"
                )
            else:
                lines.append(f"{pad}{k}: {float(val.posterior_median):.6g}   # {source(val)}")

    emit(tree, 0)
    return "\n".join(lines) + "\n"


def posterior_sample_path(scenario: Path) -> Path:
    """Where ``--apply`` ships an npe posterior sample: ``<scenario stem>.posterior.parquet`` beside it."""
    return scenario.with_name(f"{scenario.stem}.posterior.parquet")


@dataclass
class Applied:
    """What :func:`apply_calibration` wrote."""

    scenario: Path
    calibration_id: str
    values: int


def apply_calibration(scenario: str | Path, folder: str | Path) -> Applied:
    """Write the posterior medians of the calibration ``folder`` into ``scenario`` (which ``extends`` its base).

    The new text must load, and every value must reach the loaded scenario, before it replaces
    the file (atomically).

    Raises:
        ScenarioError: the folder cannot be read (the message names the file), the scenario has no
            ``extends``, or the rewritten scenario does not load or lacks a value; nothing is written.
    """
    from sim.scenario.loader import load_scenario, read_yaml

    scenario, folder = Path(scenario), Path(folder)
    stored = load_calibration_folder(folder)
    doc = read_yaml(scenario, "scenario")
    base = doc.data.get("extends")
    if not isinstance(base, str):
        raise ScenarioError(
            scenario, f"--apply rewrites a scenario that 'extends' its base file; {scenario} has no 'extends'"
        )
    resolved = load_scenario(scenario.parent / base).scenario.model_dump(mode="json")
    current = load_scenario(scenario).scenario.model_dump(mode="json")
    held = held_values(current, resolved, [p.path for p in stored.priors])
    point, sample = None, None
    if stored.manifest.get("method") == "npe":
        from sim.experiments.inference.folder import read_json

        doc = read_json(folder / "npe_point.json")
        try:
            point = {p.path: float(doc["values"][p.path]) for p in stored.priors}
            rule = str(doc["rule"])
        except (KeyError, TypeError, ValueError):
            raise ScenarioError(
                folder / "npe_point.json", "lacks a value of every parameter; re-run the calibration"
            ) from None
        sample = posterior_sample_path(scenario)
        text = calibrated_yaml(base, stored, resolved, point=point, rule=rule, sample_file=sample.name, held=held)
    else:
        text = calibrated_yaml(base, stored, resolved, held=held)
    tmp = scenario.with_name(f".{scenario.name}.apply-check.yaml")
    tmp.write_text(text)
    try:
        check = load_scenario(tmp).scenario.model_dump(
            mode="json"
        )  # the new file must load before it replaces the old one
    finally:
        tmp.unlink()
    for r in stored.marginals.itertuples(index=False):
        want = point[r.parameter] if point is not None else r.posterior_median
        try:
            reached = float(value_at(check, r.parameter))
        except (KeyError, TypeError, ValueError):
            reached = math.nan
        if not abs(reached - float(f"{want:.6g}")) <= 1e-12:
            raise ScenarioError(folder, f"parameter {r.parameter!r} did not reach the rewritten scenario")
    lost = held_values(current, check, [p.path for p in stored.priors])
    if lost:  # a value the calibration ran with would change
        raise ScenarioError(scenario, f"--apply would change {next(iter(lost))!r}, which the calibration held fixed")
    if sample is not None:
        from sim.experiments.inference.posterior import final_population

        last = final_population(stored.posterior)
        table = last[[p.path for p in stored.priors]].copy()
        table.insert(0, "draw", np.arange(len(table), dtype=np.int64))
        table.attrs = {}
        write_parquet(table, sample)
    write_text_atomic(text, scenario)
    return Applied(scenario, stored.calibration_id, len(stored.marginals))


# --------------------------------------------------------------------------- the verdict


def probability_table(df: pd.DataFrame, rope: float, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """P(effect > +ROPE), P(|effect| <= ROPE), P(effect < -ROPE) over draws, per comparison and outcome."""
    rows, effects = [], []
    outcomes = list(POSTERIOR_OUTCOMES)
    for c in COMPARISONS:
        if not {c.treatment, c.control} <= set(df[POLICY]):
            continue
        d = paired_differences(df, c.treatment, c.control, outcomes, by=["draw"])
        d.insert(0, "comparison", c.label)
        d.insert(0, "draws_from", source)
        effects.append(d)
        for o in outcomes:
            r = rope_for(o, rope)
            p = posterior_probabilities(d[o].to_numpy(), r)
            label, sign = OUTCOMES.get(o, (o, 0))
            rows.append(
                {
                    "draws_from": source,
                    "treatment": c.treatment,
                    "control": c.control,
                    "outcome": o,
                    "label": label,
                    "predicted_sign": sign,
                    "rope": r,
                    "draws": int(np.isfinite(d[o].to_numpy(dtype=float)).sum()),
                    "mean_effect": float(np.nanmean(d[o])) if d[o].notna().any() else math.nan,
                    **p,
                    **mcse(p, int(np.isfinite(d[o].to_numpy(dtype=float)).sum())),
                }
            )
    return pd.DataFrame(rows), (pd.concat(effects, ignore_index=True) if effects else pd.DataFrame())


def mcse(p: dict[str, float], n: int) -> dict[str, float]:
    """Monte Carlo standard errors of the three probabilities over ``n`` independent draws:
    binomial, sqrt(p (1 - p) / n)."""
    out = {}
    for k in ("p_above", "p_within", "p_below"):
        v = p[k]
        out[f"mcse_{k[2:]}"] = math.sqrt(v * (1 - v) / n) if n > 0 and math.isfinite(v) else math.nan
    return out


@dataclass
class PosteriorThesis:
    """The verdict the record supports."""

    folder: Path
    probabilities: pd.DataFrame
    effects: pd.DataFrame
    seconds: float
    report: Path


def posterior_thesis(
    scenario: str | Path,
    calibration: str | Path,
    *,
    draws: int = 200,
    out: str | Path | None = None,
    root_seed: int = 20171113,
    rope: float = DEFAULT_ROPE,
    sample_fraction: float | None = None,
    days: int | None = None,
    with_prior: bool = True,
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
    draw: Callable[[Path], list[Path]] | None = None,
    overrides: list[str] | None = None,
) -> PosteriorThesis:
    """Run the paired thesis comparisons on ``draws`` posterior (and prior) draws
    (:func:`sim.experiments.inference.thesis.run_posterior_draws`) and report probabilities.

    Raises:
        CalibrationFolderError: the calibration folder cannot be read (before anything runs).
    """
    runs = run_posterior_draws(
        scenario,
        calibration,
        draws=draws,
        out=out,
        root_seed=root_seed,
        sample_fraction=sample_fraction,
        days=days,
        with_prior=with_prior,
        workers=workers,
        scheduler=scheduler,
        progress=progress,
        overrides=overrides,
    )
    return write_posterior_thesis(runs, scenario, calibration, draws, root_seed, rope, draw)


def write_posterior_thesis(
    runs, scenario: str | Path, calibration: str | Path, draws: int, root_seed: int, rope: float, draw=None
) -> PosteriorThesis:
    """Probability tables, manifest and report of stored posterior-thesis runs."""
    from sim.experiments.store import load_results

    tables, effects = [], []
    for source in SOURCES:
        if source in runs.sweeps:
            t, e = probability_table(load_results(runs.sweeps[source]), rope, source)
            tables.append(t)
            effects.append(e)
    probs = pd.concat(tables, ignore_index=True)
    eff = pd.concat(effects, ignore_index=True)
    folder = runs.folder
    write_csv_atomic(probs, folder / "probabilities.csv", float_format="%.6g")
    write_parquet(eff, folder / "effects.parquet")
    manifest = {
        "kind": "posterior_thesis",
        "calibration_id": runs.stored.calibration_id,
        "calibration_folder": str(calibration),
        "scenario": str(scenario),
        "overrides": runs.overrides,
        "draws": draws,
        "sample_fraction": runs.sample_fraction,
        "days": runs.days,
        "root_seed": root_seed,
        "rope": rope,
        "policies": runs.policies,
        "comparisons": [c.label for c in COMPARISONS],
        "seconds": round(runs.seconds, 1),
        **stamp(),
    }
    write_json_atomic(manifest, folder / "manifest.json")
    report = write_thesis_report(
        folder, runs.stored, probs, draws, runs.sample_fraction, rope, runs.seconds, runs.overrides
    )
    if draw is not None:
        draw(folder)
    return PosteriorThesis(folder, probs, eff, runs.seconds, report)


def verdict_text(probs: pd.DataFrame, source: str = "posterior") -> list[str]:
    """One line per comparison on the two headline measures (home town, current town)."""
    lines = []
    for c in COMPARISONS:
        treatment, control = c.treatment, c.control
        for o, how in (("coop_resisting_home_mean", "by home town"), ("coop_resisting_mean", "by current town")):
            r = probs[
                (probs["draws_from"] == source)
                & (probs["treatment"] == treatment)
                & (probs["control"] == control)
                & (probs["outcome"] == o)
            ]
            if len(r):
                r = r.iloc[0]
                if "mcse_above" in r:
                    pm = {k: f" ± {r[f'mcse_{k}']:.2f}" for k in ("above", "within", "below")}
                else:
                    pm = {"above": "", "within": "", "below": ""}
                lines.append(
                    f"- {treatment} vs {control}, cooperation with HTS in resisting towns {how}: "
                    f"P(effect > +{r['rope']:g}) = {r['p_above']:.2f}{pm['above']}, P(|effect| <= {r['rope']:g}) = "
                    f"{r['p_within']:.2f}{pm['within']}, P(effect < -{r['rope']:g}) = {r['p_below']:.2f}{pm['below']} "
                    f"(mean {r['mean_effect']:+.3f}, {r['draws']} {source} draws)"
                )
    return lines


def write_thesis_report(
    folder: Path,
    stored: StoredCalibration,
    probs: pd.DataFrame,
    draws: int,
    frac: float,
    rope: float,
    seconds: float,
    overrides: list[str] | None = None,
) -> Path:
    """``report.md`` of a posterior thesis folder."""
    cols = [
        "draws_from",
        "treatment",
        "control",
        "outcome",
        "rope",
        "draws",
        "mean_effect",
        "p_above",
        "mcse_above",
        "p_within",
        "mcse_within",
        "p_below",
        "mcse_below",
    ]
    parts = [
        f"# The verdict the record supports (calibration {stored.calibration_id})",
        "",
        *(
            [
                f"Every run with `--set {' '.join(overrides)}`: an assumption the calibration held at its default, "
                "changed here on the posterior draws of the other parameters.",
                "",
            ]
            if overrides
            else []
        ),
        "## Given the record (posterior draws)",
        "",
        *verdict_text(probs, "posterior"),
        "",
        "## Before the record (prior draws)",
        "",
        *verdict_text(probs, "prior"),
        "",
        "![posterior effects](posterior_effects.png)",
        "",
        # the reliability check judges the calibration's own model: not a model changed by --set
        *(reliability_section(stored.folder) if stored.manifest.get("method") == "npe" and not overrides else []),
        "## All comparisons and outcomes",
        "",
        markdown_table(probs[[c for c in cols if c in probs.columns]]),
        "",
        f"Each of {draws} draws (from the final ABC population by weight, and from the prior) runs every policy "
        f"with one seed of its own (common random numbers within a draw); the effect of a draw is the paired "
        f"difference treatment - control. ± is the Monte Carlo standard error of each probability, "
        f"sqrt(p (1 - p) / n) over the n draws (binomial: the draws are independent; an npe posterior's draws are "
        f"taken without replacement from its independent samples, while a resampled ABC population can repeat a "
        f"particle, which makes the error optimistic). "
        f"ROPE {rope:g} for share outcomes, 0 for others (rival alignment). "
        f"Scale: sample_fraction {frac:g}. Wall time {seconds:.0f} s. Tables: `probabilities.csv`, `effects.parquet`.",
    ]
    path = folder / "report.md"
    write_text_atomic("\n".join(parts) + "\n", path)
    return path

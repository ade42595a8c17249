"""Calibration against the record: target statistics, predictive checks, report, verdict.

* :class:`TargetModel` - what ABC-SMC judges a simulation by: the residual of every
  calibration target outside its stated uncertainty (:meth:`Target.residual`), computed
  from the run's own tables by :func:`sim.analysis.observed.figure_value`.
* :func:`calibrate` - run (or resume) ABC-SMC (:func:`sim.experiments.calibration.run_abc`),
  then the posterior predictive check of every target (calibration and validation apart),
  the scale check (calibration scale against a reference scale at the posterior median) and
  the report, written atomically into ``results/calibration/<name>/``.
* :func:`posterior_thesis` - the paired thesis experiment on posterior (and prior) draws,
  reported as P(effect > +ROPE), P(|effect| <= ROPE), P(effect < -ROPE).

Nothing here draws: figures come through the ``draw`` hook the CLI passes
(:mod:`sim.viz.calibration`).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.observed import figure_value
from sim.analysis.statistics import DEFAULT_ROPE, posterior_probabilities
from sim.analysis.thesis import OUTCOMES, markdown_table, paired_differences, rope_for
from sim.experiments.calibration import (
    AbcResult,
    CalibrationFailed,
    draw_posterior,
    draw_prior,
    final_population,
    prepare_folder,
    run_abc,
    weighted_quantiles,
)
from sim.experiments.engine import Engine, make_engine
from sim.run.provenance import stamp
from sim.run.store import write_csv_atomic, write_json_atomic, write_parquet, write_text_atomic
from sim.scenario.calibration import Calibration, Prior, Target
from sim.scenario.schema import ObservedFigure

DEFAULT_OUT = Path("results/calibration")
LEVEL = 0.90
QS = (0.05, 0.5, 0.95)
FAR = 10.0  # residual of a run that could not be simulated (invalid parameter values)


# --------------------------------------------------------------------------- one simulation


def target_values(
    base: dict[str, Any], values: dict[str, float], seed: int, figures: list[ObservedFigure]
) -> dict[str, float]:
    """Simulate ``base`` with parameter ``values`` (by key path) and ``seed``; the value of each figure."""
    from pydantic import ValidationError

    from sim.run.simulate import simulate
    from sim.scenario.loader import set_path
    from sim.scenario.schema import Scenario

    data = copy.deepcopy(base)
    for path, v in values.items():
        set_path(data, path.split("."), float(v))
    try:
        sc = Scenario.model_validate(data)
    except ValidationError:
        return {f.name: math.nan for f in figures}
    result = simulate(sc, int(seed), household_agents=False)
    return {f.name: figure_value(f, sc, result.frames) for f in figures}


class TargetModel:
    """Statistics of one seeded simulation for ABC: ``r:<target>`` residuals and ``v:<target>`` values.

    Holds only plain data (the scenario dict at calibration scale and the targets), so it
    can be forked or pickled to workers.
    """

    def __init__(self, base: dict[str, Any], targets: tuple[Target, ...]):
        self.base = base
        self.targets = targets

    def __call__(self, values: dict[str, float], seed: int) -> dict[str, float]:
        """Residuals of the calibration targets (0 inside the record's tolerance) and every target's value."""
        raw = target_values(self.base, values, seed, [t.figure for t in self.targets])
        out: dict[str, float] = {}
        for t in self.targets:
            v = raw[t.name]
            if t.role == "calibration":
                out[f"r:{t.name}"] = t.residual(v) if math.isfinite(v) else FAR
            out[f"v:{t.name}"] = float(v)
        return out


def target_task(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Engine model function: one simulation's target values (predictive and scale checks)."""
    figures = [ObservedFigure.model_validate(f) for f in context["figures"]]
    base = context["base"]
    if "sample_fraction" in task["params"]:
        base = copy.deepcopy(base)
        base["households"]["sample_fraction"] = float(task["params"]["sample_fraction"])
    values = {k: v for k, v in task["params"].items() if k != "sample_fraction"}
    return target_values(base, values, task["seed"], figures)


# --------------------------------------------------------------------------- rejection ABC

REJECTION = "rejection.parquet"  # every prior draw simulated so far: parameters, seed, values, accepted
BATCH = 100  # draws between two writes of the rejection table (what a kill can lose)


def _rejection_table(cal: Calibration, draws: pd.DataFrame, seeds: list[int], start: int, values: pd.DataFrame):
    rows = draws.iloc[start : start + len(values)].reset_index(drop=True)
    out = pd.DataFrame({"draw": np.arange(start, start + len(values)), "seed": seeds[start : start + len(values)]})
    inside = np.ones(len(values), bool)
    for t in cal.calibration_targets:
        v = values[t.name].to_numpy(dtype=float)
        r = np.array([t.residual(x) for x in v])
        inside &= r == 0
    out = pd.concat([out, rows, values.add_prefix("v:")], axis=1)
    out["accepted"] = inside
    return out


def run_rejection(
    cal: Calibration,
    folder: str | Path,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    fresh: bool = False,
    progress: Callable[[str], None] | None = print,
) -> AbcResult:
    """Rejection ABC with the record's tolerances as the (uniform) kernel; resumable.

    Draws ``budget.max_runs`` parameter sets from the prior (seeded, in a fixed order) and
    simulates each with a seed of its own; a draw is accepted when every calibration target's
    simulated value lies inside its tolerance interval (all residuals zero, the ``min_epsilon = 0``
    limit of ABC-SMC). Accepted draws are independent samples of that posterior with equal
    weights, so no importance weight can degenerate, whatever the number of parameters. Stops
    after ``budget.population`` acceptances, ``max_runs`` draws or ``max_minutes``. Every
    simulated draw is kept in ``rejection.parquet`` (written every 100 draws), and a re-run
    continues after the last stored draw: serial, parallel, interrupted or not, the same draws
    give the same table.
    """
    folder = Path(folder)
    prepare_folder(cal, folder, fresh)
    b = cal.budget
    n = b.max_runs
    draws = draw_prior(cal.priors, n, cal.seed)
    seeds = _seeds(cal.seed, 3, n)
    path = folder / REJECTION
    table = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    resumed_from = len(table)
    t0 = time.perf_counter()
    engine = make_engine(1 if scheduler is None and workers <= 1 else workers, scheduler)
    stop = f"max_runs ({n})"
    try:
        while len(table) < n:
            accepted = int(table["accepted"].sum()) if len(table) else 0
            if accepted >= b.population:
                stop = f"population ({b.population} accepted)"
                break
            if b.max_minutes is not None and (time.perf_counter() - t0) / 60 >= b.max_minutes:
                stop = f"max_minutes ({b.max_minutes:g})"
                break
            start = len(table)
            stop_at = min(n, start + BATCH)
            params = [{k: float(v) for k, v in r.items()} for r in draws.iloc[start:stop_at].to_dict("records")]
            values = _run_targets(engine, cal, params, seeds[start:stop_at])
            part = _rejection_table(cal, draws, seeds, start, values)
            table = part if not len(table) else pd.concat([table, part], ignore_index=True)
            write_parquet(table, path)
            if progress is not None:
                acc = int(table["accepted"].sum())
                progress(
                    f"rejection: {len(table)} of {n} draws, {acc} accepted ({acc / len(table):.1%}), "
                    f"elapsed {time.perf_counter() - t0:.0f} s"
                )
    finally:
        engine.close()
    if not len(table) or not table["accepted"].any():
        raise CalibrationFailed(
            f"{folder}: none of {len(table)} prior draws put every calibration target inside its tolerance; "
            "raise budget.max_runs, or use method smc"
        )
    acc = table[table["accepted"]].reset_index(drop=True)
    posterior = pd.DataFrame({"generation": 0, "particle": np.arange(len(acc)), "weight": 1.0})
    for p in cal.priors:
        posterior[p.path] = acc[p.path].to_numpy(dtype=float)
    generations = pd.DataFrame(
        [
            {
                "t": 0,
                "epsilon": 0.0,
                "particles": len(acc),
                "samples": len(table),
                "acceptance": len(acc) / len(table),
                "ess": float(len(acc)),
                "wall_time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        ]
    )
    sampler = f"rejection on {'dask scheduler ' + scheduler if scheduler else f'{workers} worker processes'}"
    return AbcResult(
        folder=folder,
        posterior=posterior,
        generations=generations,
        runs=len(table),
        seconds=time.perf_counter() - t0,
        resumed_from=resumed_from,
        stop_reason=stop,
        sampler=sampler,
    )


# --------------------------------------------------------------------------- ABC-MCMC

MCMC = "mcmc.parquet"  # every chain's state after every step: chain, step, moved, parameters, seed, values


def _width(p: Prior) -> float:
    """A prior's width in sampler coordinates (the scale of the ABC-MCMC proposal)."""
    if p.family in ("uniform", "loguniform"):
        return p.to_internal(p.high) - p.to_internal(p.low)
    return 4 * p.sd


def _log_prior(p: Prior, z: float) -> float:
    """Log density of the prior in sampler coordinates, up to a constant (-inf outside the support)."""
    if p.family in ("uniform", "loguniform"):
        return 0.0 if p.to_internal(p.low) <= z <= p.to_internal(p.high) else -math.inf
    centre = p.mean if p.family == "normal" else math.log(p.mean)
    return -0.5 * ((z - centre) / p.sd) ** 2


def _proposal(cal: Calibration, coords: np.ndarray, width: np.ndarray, chain: int, step: int):
    """Chain ``chain``'s proposal at ``step`` from sampler coordinates ``coords``: (z, uniform, run seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([cal.seed, 5, chain, step]))
    z = coords + cal.budget.mcmc_step * width * rng.standard_normal(len(cal.priors))
    return z, float(rng.random()), int(rng.integers(0, 2**31 - 1))


def _mark_simulated(cal: Calibration, table: pd.DataFrame, starts: pd.DataFrame, width: np.ndarray) -> pd.DataFrame:
    """Add ``simulated`` (the proposal lay inside the prior's support, so it was run) to a chain table
    written without it, by replaying each chain's proposals."""
    cols = [p.path for p in cal.priors]
    out = []
    for c, rows in table.sort_values(["chain", "step"]).groupby("chain", sort=True):
        before = np.vstack([starts.iloc[[int(c)]][cols].to_numpy(dtype=float), rows[cols].to_numpy(dtype=float)[:-1]])
        flags = []
        for prev, step in zip(before, rows["step"], strict=True):
            coords = np.array([p.to_internal(v) for p, v in zip(cal.priors, prev, strict=True)])
            z = _proposal(cal, coords, width, int(c), int(step))[0]
            flags.append(all(math.isfinite(_log_prior(p, x)) for p, x in zip(cal.priors, z, strict=True)))
        out.append(rows.assign(simulated=flags))
    merged = pd.concat(out).sort_values(["step", "chain"]).reset_index(drop=True)
    return merged[[*table.columns[:3], "simulated", *table.columns[3:]]]


def run_abc_mcmc(
    cal: Calibration,
    folder: str | Path,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    fresh: bool = False,
    progress: Callable[[str], None] | None = print,
) -> AbcResult:
    """Rejection ABC for starting points, then ABC-MCMC (Marjoram et al. 2003) from each of them.

    Phase 1 is :func:`run_rejection` until ``budget.population`` draws are accepted; each
    accepted draw starts a chain. Phase 2 runs ``budget.mcmc_steps`` steps per chain, all chains
    a step at a time (in parallel): a Gaussian random-walk proposal in the sampler coordinates
    (sd ``budget.mcmc_step`` times each prior's width), one seeded run, and the move is taken
    when every calibration target's value lies inside its tolerance and a uniform falls below
    the prior ratio. The chains keep the tolerance posterior of phase 1 as their stationary
    distribution and start in it (phase 1's draws are exact samples of it), so no burn-in is
    dropped; their states are correlated, and the report gives the move rate. Each (chain,
    step) has its own random numbers, so serial, parallel and resumed runs give the same
    chains (``mcmc.parquet``, written every step). Stops after the steps or ``max_minutes``
    (counted over both phases of a session).
    """
    t0 = time.perf_counter()
    start = run_rejection(cal, folder, workers=workers, scheduler=scheduler, fresh=fresh, progress=progress)
    folder = Path(folder)
    b = cal.budget
    priors = cal.priors
    starts = start.posterior
    k = len(starts)
    width = np.array([_width(p) for p in priors])
    path = folder / MCMC
    table = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    if len(table) and "simulated" not in table.columns:
        table = _mark_simulated(cal, table, starts, width)
    done = int(table["step"].max()) if len(table) else 0
    if len(table):
        last = table[table["step"] == done].sort_values("chain")
        state = last[[p.path for p in priors]].to_numpy(dtype=float).copy()
    else:
        state = starts[[p.path for p in priors]].to_numpy(dtype=float).copy()
    # value units are the record (what was simulated); sampler coordinates are where the walk moves
    coords = np.array([[p.to_internal(v) for p, v in zip(priors, row, strict=True)] for row in state])
    log_prior = np.array([sum(_log_prior(p, z) for p, z in zip(priors, row, strict=True)) for row in coords])
    stop = f"mcmc_steps ({b.mcmc_steps})"
    engine = make_engine(1 if scheduler is None and workers <= 1 else workers, scheduler)
    try:
        for step in range(done + 1, b.mcmc_steps + 1):
            if b.max_minutes is not None and (time.perf_counter() - t0) / 60 >= b.max_minutes:
                stop = f"max_minutes ({b.max_minutes:g}) after {step - 1} steps"
                break
            proposals, seeds, uniforms, lp_new = [], [], [], []
            for c in range(k):
                z, u, seed = _proposal(cal, coords[c], width, c, step)
                proposals.append(z)
                uniforms.append(u)
                seeds.append(seed)
                lp_new.append(sum(_log_prior(p, x) for p, x in zip(priors, z, strict=True)))
            live = [c for c in range(k) if math.isfinite(lp_new[c])]
            proposed = [np.array([p.to_value(x) for p, x in zip(priors, z, strict=True)]) for z in proposals]
            params = [dict(zip([p.path for p in priors], map(float, proposed[c]), strict=True)) for c in live]
            values = _run_targets(engine, cal, params, [seeds[c] for c in live]) if live else pd.DataFrame()
            rows = []
            for c in range(k):
                moved = False
                vals: dict[str, float] = {}
                if c in live:
                    vals = values.iloc[live.index(c)].to_dict()
                    inside = all(t.residual(float(vals[t.name])) == 0 for t in cal.calibration_targets)
                    moved = inside and math.log(max(uniforms[c], 1e-300)) < lp_new[c] - log_prior[c]
                if moved:
                    coords[c], log_prior[c], state[c] = proposals[c], lp_new[c], proposed[c]
                row = {"chain": c, "step": step, "moved": moved, "simulated": c in live, "seed": seeds[c]}
                row.update({p.path: float(v) for p, v in zip(priors, state[c], strict=True)})
                row.update(
                    {f"v:{t.name}": float(vals.get(t.name, math.nan)) if moved else math.nan for t in cal.targets}
                )
                rows.append(row)
            part = pd.DataFrame(rows)
            table = part if not len(table) else pd.concat([table, part], ignore_index=True)
            write_parquet(table, path)
            if progress is not None and (step % 10 == 0 or step == b.mcmc_steps):
                progress(
                    f"mcmc: step {step} of {b.mcmc_steps}, {k} chains, moves {table['moved'].mean():.1%}, "
                    f"elapsed {time.perf_counter() - t0:.0f} s"
                )
    finally:
        engine.close()
    states = pd.concat(
        [
            starts.assign(chain=np.arange(k), step=0)[["chain", "step", *[p.path for p in priors]]],
            table[["chain", "step", *[p.path for p in priors]]] if len(table) else None,
        ],
        ignore_index=True,
    )
    posterior = pd.DataFrame({"generation": 0, "particle": np.arange(len(states)), "weight": 1.0})
    for p in priors:
        posterior[p.path] = states[p.path].to_numpy(dtype=float)
    posterior["chain"] = states["chain"].to_numpy()
    posterior["step"] = states["step"].to_numpy()
    steps = int(table["step"].max()) if len(table) else 0
    simulated = int(table["simulated"].sum()) if len(table) else 0
    moves = float(table["moved"].mean()) if len(table) else math.nan
    generations = pd.concat(
        [
            start.generations.assign(phase="rejection"),
            pd.DataFrame(
                [
                    {
                        "t": 1,
                        "epsilon": 0.0,
                        "particles": len(states),
                        "samples": simulated,
                        "acceptance": moves,
                        "ess": math.nan,
                        "wall_time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        "phase": f"mcmc ({k} chains x {steps} steps, {k * steps - simulated} outside the prior)",
                    }
                ]
            ),
        ],
        ignore_index=True,
    )
    return AbcResult(
        folder=folder,
        posterior=posterior,
        generations=generations,
        runs=start.runs + simulated,  # proposals outside the prior's support are not simulated
        seconds=time.perf_counter() - t0,
        resumed_from=start.resumed_from,
        stop_reason=f"rejection: {start.stop_reason}; mcmc: {stop}",
        sampler=f"{start.sampler}, then {k} ABC-MCMC chains",
    )


# --------------------------------------------------------------------------- checks


def _task(run: int, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    return {"run": run, "point": run, "replicate": 0, "seed": int(seed), "params": params, "overrides": {}}


def _run_targets(engine: Engine, cal: Calibration, params: list[dict[str, Any]], seeds: list[int]) -> pd.DataFrame:
    context = {
        "model": "sim.analysis.calibration:target_task",
        "base": cal.base_config(),
        "figures": [t.figure.model_dump(mode="json") for t in cal.targets],
    }
    rows = {}
    for row in engine.imap((_task(i, s, p), context) for i, (p, s) in enumerate(zip(params, seeds, strict=True))):
        rows[row["run"]] = row["values"] if row["status"] == "ok" else {t.name: math.nan for t in cal.targets}
    return pd.DataFrame([rows[i] for i in range(len(params))])


def _seeds(root: int, label: int, n: int) -> list[int]:
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence([root, label]).spawn(n)]


def predictive_check(
    engine: Engine, cal: Calibration, draws: pd.DataFrame, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate every target on posterior draws: per-draw values, and the 90% band against the record."""
    params = [{k: float(v) for k, v in r.items()} for r in draws.to_dict("records")]
    values = _run_targets(engine, cal, params, _seeds(seed, 1, len(params)))
    rows = []
    for t in cal.targets:
        x = values[t.name].to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        lo, med, hi = (float(np.quantile(x, q)) for q in QS) if len(x) else (math.nan,) * 3
        rlo, rhi = t.record_interval()
        tlo, thi = t.tolerance_interval()
        rows.append(
            {
                "target": t.name,
                "role": t.role,
                "kind": t.figure.kind,
                "recorded": t.figure.value,
                "record_low": rlo,
                "record_high": rhi,
                "uncertainty": t.half_width,
                "band_low": lo,
                "median": med,
                "band_high": hi,
                "draws": len(x),
                "covered": bool(len(x) and lo <= rhi and hi >= rlo),
                "within_tolerance": float(np.mean((x >= tlo) & (x <= thi))) if len(x) else math.nan,
                "source": t.figure.source,
            }
        )
    return pd.DataFrame(rows), values


def scale_check(engine: Engine, cal: Calibration, median: dict[str, float], seed: int) -> pd.DataFrame:
    """Target statistics at the calibration scale and at the reference scale, same seeds, posterior median.

    ``z`` = difference of the means over its standard error: |z| <= 3 means the two scales agree
    within seed noise.
    """
    b = cal.budget
    n = b.scale_check_seeds
    seeds = _seeds(seed, 2, n)
    fractions = [cal.sample_fraction, b.scale_check_fraction]
    params, all_seeds = [], []
    for f in fractions:
        for s in seeds:
            params.append({**median, "sample_fraction": f})
            all_seeds.append(s)
    values = _run_targets(engine, cal, params, all_seeds)
    values["sample_fraction"] = [p["sample_fraction"] for p in params]
    rows = []
    for t in cal.targets:
        x = values[t.name].to_numpy(dtype=float)
        a, r = x[:n], x[n:]
        se = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(r, ddof=1) / len(r))
        diff = float(np.mean(a) - np.mean(r))
        z = diff / se if se > 0 else (0.0 if diff == 0 else math.inf)
        rows.append(
            {
                "target": t.name,
                "role": t.role,
                "calibration_scale": fractions[0],
                "reference_scale": fractions[1],
                "mean_calibration_scale": float(np.mean(a)),
                "mean_reference_scale": float(np.mean(r)),
                "difference": diff,
                "se": se,
                "z": z,
                "agree": bool(abs(z) <= 3),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- marginals


def prior_quantiles(p: Prior, qs: tuple[float, ...] = QS) -> list[float]:
    """Quantiles of a prior in value units."""
    from scipy import stats

    if p.family == "uniform":
        return [p.low + q * (p.high - p.low) for q in qs]
    if p.family == "loguniform":
        lo, hi = math.log10(p.low), math.log10(p.high)
        return [10 ** (lo + q * (hi - lo)) for q in qs]
    if p.family == "normal":
        return [float(stats.norm.ppf(q, p.mean, p.sd)) for q in qs]
    return [float(math.exp(stats.norm.ppf(q, math.log(p.mean), p.sd))) for q in qs]


def marginals(posterior: pd.DataFrame, priors: tuple[Prior, ...]) -> pd.DataFrame:
    """Posterior median and 90% credible interval of every parameter against its prior.

    ``width_ratio`` = posterior 90% width / prior 90% width (in log space for log families):
    below 0.5 the record *pins it down*, below 0.8 it *constrains* it, otherwise it is *left free*.
    """
    last = final_population(posterior)
    w = last["weight"].to_numpy()
    rows = []
    for p in priors:
        x = last[p.path].to_numpy(dtype=float)
        lo, med, hi = weighted_quantiles(x, w, QS)
        plo, pmed, phi = prior_quantiles(p)
        f = (lambda v: math.log(v)) if p.log else (lambda v: v)
        ratio = (f(hi) - f(lo)) / (f(phi) - f(plo)) if f(phi) > f(plo) else math.nan
        verdict = "pinned down" if ratio < 0.5 else "constrained" if ratio < 0.8 else "left free"
        rows.append(
            {
                "parameter": p.path,
                "prior": p.describe(),
                "prior_median": pmed,
                "prior_low": plo,
                "prior_high": phi,
                "posterior_median": med,
                "posterior_low": lo,
                "posterior_high": hi,
                "width_ratio": ratio,
                "record": verdict,
                "reason": p.reason,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- the calibration


@dataclass
class CalibrationResult:
    """Files and tables of a calibration."""

    folder: Path
    abc: AbcResult
    marginals: pd.DataFrame
    predictive: pd.DataFrame
    scale: pd.DataFrame
    calibration_id: str
    report: Path
    seconds: float


def calibration_id(cal: Calibration, abc: AbcResult) -> str:
    """A short id of a calibration: its name and a hash of the configuration and the final population."""
    import hashlib

    last = final_population(abc.posterior)
    h = hashlib.sha256(cal.fingerprint().encode())
    h.update(pd.util.hash_pandas_object(last, index=False).to_numpy().tobytes())
    return f"{cal.name}-{h.hexdigest()[:10]}"


def calibrate(
    cal: Calibration,
    out: str | Path | None = None,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    fresh: bool = False,
    progress: Callable[[str], None] | None = print,
    draw: Callable[[Path], list[Path]] | None = None,
) -> CalibrationResult:
    """Run (or resume) the calibration, check it, and write its folder.

    Raises:
        sim.experiments.calibration.CalibrationConflict: the folder holds another calibration.
    """
    folder = Path(out) if out is not None else DEFAULT_OUT / cal.name
    t0 = time.perf_counter()
    if cal.budget.method == "rejection":
        abc = run_rejection(cal, folder, workers=workers, scheduler=scheduler, fresh=fresh, progress=progress)
        method = "rejection ABC"
    elif cal.budget.method == "mcmc":
        abc = run_abc_mcmc(cal, folder, workers=workers, scheduler=scheduler, fresh=fresh, progress=progress)
        method = "rejection ABC, then ABC-MCMC"
    else:
        model = TargetModel(cal.base_config(), cal.targets)
        abc = run_abc(cal, model, folder, workers=workers, scheduler=scheduler, fresh=fresh, progress=progress)
        method = "ABC-SMC"
    if progress is not None:
        progress(f"{method} stopped: {abc.stop_reason}; {abc.runs} runs in {abc.seconds:.0f} s; checking the posterior")
    marg = marginals(abc.posterior, cal.priors)
    draws = draw_posterior(abc.posterior, cal.priors, cal.budget.predictive_draws, cal.seed)
    median = {r["parameter"]: float(r["posterior_median"]) for r in marg.to_dict("records")}
    engine = make_engine(1 if scheduler is None and workers <= 1 else workers, scheduler)
    try:
        ppc, ppc_values = predictive_check(engine, cal, draws, cal.seed)
        scale = scale_check(engine, cal, median, cal.seed)
    finally:
        engine.close()
    cid = calibration_id(cal, abc)
    seconds = time.perf_counter() - t0
    write_parquet(abc.posterior, folder / "posterior.parquet")
    write_csv_atomic(abc.generations, folder / "generations.csv", float_format="%.6g")
    write_csv_atomic(marg, folder / "marginals.csv", float_format="%.6g")
    write_csv_atomic(ppc, folder / "predictive.csv", float_format="%.6g")
    write_parquet(pd.concat([draws, ppc_values.add_prefix("sim:")], axis=1), folder / "predictive_draws.parquet")
    write_csv_atomic(scale, folder / "scale_check.csv", float_format="%.6g")
    manifest = {
        "kind": "calibration",
        "calibration_id": cid,
        "name": cal.name,
        "calibration_file": str(cal.path),
        "calibration_file_sha256": cal.file_sha256,
        "scenario": cal.scenario.scenario.name,
        "scenario_file": str(cal.scenario.path),
        "scenario_config_hash": cal.scenario.config_hash,
        "fingerprint": cal.fingerprint(),
        "quick": cal.quick,
        "seed": cal.seed,
        "days": cal.days,
        "sample_fraction": cal.sample_fraction,
        "budget": cal.budget.model_dump(),
        "priors": [
            {
                "path": p.path,
                "family": p.family,
                "low": p.low,
                "high": p.high,
                "mean": p.mean,
                "sd": p.sd,
                "reason": p.reason,
            }
            for p in cal.priors
        ],
        "targets": [
            {"name": t.name, "role": t.role, "relative": t.relative, "absolute": t.absolute, "reason": t.reason}
            for t in cal.targets
        ],
        "sampler": abc.sampler,
        "runs": abc.runs,
        "generations": len(abc.generations),
        "stop_reason": abc.stop_reason,
        "resumed_from_generation": abc.resumed_from,
        "abc_seconds": round(abc.seconds, 1),
        "wall_time_s": round(seconds, 1),
        "posterior_median": median,
        **stamp(),
    }
    write_json_atomic(manifest, folder / "manifest.json")
    report = write_calibration_report(folder, cal, abc, marg, ppc, scale, cid, seconds, draw)
    return CalibrationResult(folder, abc, marg, ppc, scale, cid, report, seconds)


def coverage_line(ppc: pd.DataFrame, role: str) -> str:
    """``k of n`` targets of a role whose 90% predictive band meets the record."""
    sub = ppc[ppc["role"] == role]
    return f"{int(sub['covered'].sum())} of {len(sub)}"


def write_calibration_report(
    folder: Path,
    cal: Calibration,
    abc: AbcResult,
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
    if cal.budget.method == "mcmc":
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
        f"- scenario `{cal.scenario.path}`, calibration file `{cal.path}`{' (--quick budget)' if cal.quick else ''}",
        f"- {len(cal.priors)} parameters, {len(cal.calibration_targets)} calibration targets, "
        f"{len(cal.validation_targets)} validation targets (held out)",
        f"- scale: households.sample_fraction = {cal.sample_fraction:g}; {cal.days} days per run",
        f"- {sampled}; sampling {abc.seconds:.0f} s (this session), total wall time {seconds:.0f} s; "
        f"sampler: {abc.sampler}",
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
        *[f"- {t.name} ({t.role}): +-{t.half_width:.4g} ({t.reason}); source: {t.figure.source}" for t in cal.targets],
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
        "## Sampler diagnostics" if rejection else "## Generations",
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


# --------------------------------------------------------------------------- stored calibrations


@dataclass
class StoredCalibration:
    """A calibration folder read back: its manifest, priors, posterior and marginals."""

    folder: Path
    manifest: dict[str, Any]
    priors: tuple[Prior, ...]
    posterior: pd.DataFrame
    marginals: pd.DataFrame

    @property
    def calibration_id(self) -> str:
        """The calibration's id."""
        return str(self.manifest["calibration_id"])


def load_calibration_folder(folder: str | Path) -> StoredCalibration:
    """Read a calibration folder written by :func:`calibrate`.

    Raises:
        FileNotFoundError: the folder has no finished calibration.
    """
    folder = Path(folder)
    mf = folder / "manifest.json"
    if not mf.exists() or not (folder / "posterior.parquet").exists():
        raise FileNotFoundError(f"{folder}: not a finished calibration folder (no manifest.json / posterior.parquet)")
    manifest = json.loads(mf.read_text())
    priors = tuple(
        Prior(p["path"], p["family"], p["low"], p["high"], p["mean"], p["sd"], p["reason"]) for p in manifest["priors"]
    )
    return StoredCalibration(
        folder, manifest, priors, pd.read_parquet(folder / "posterior.parquet"), pd.read_csv(folder / "marginals.csv")
    )


# --------------------------------------------------------------------------- the verdict


THESIS_COMPARISONS: tuple[tuple[str, str], ...] = (
    ("resisting_towns", "none"),
    ("resisting_towns", "hts_strongholds"),
    ("calendar", "none"),
)
THESIS_OUTCOMES: tuple[str, ...] = (
    "coop_resisting_home_mean",
    "coop_resisting_mean",
    "protest_resisting_mean",
    "rival_alignment_final",
)


def draws_spec(
    name: str,
    scenario: Path,
    draws: pd.DataFrame,
    *,
    sample_fraction: float,
    days: int | None,
    root_seed: int,
    policies: list[str],
    window: int,
):
    """A sweep over (draw, policy): each draw a variant of parameter overrides; seeds per draw."""
    from sim.experiments.spec import spec_from_dict

    variants = {f"d{i:04d}": {k: float(v) for k, v in r.items()} for i, r in enumerate(draws.to_dict("records"))}
    spec: dict[str, Any] = {
        "name": name,
        "scenario": str(Path(scenario).resolve()),
        "set": [f"households.sample_fraction={sample_fraction}"],
        "root_seed": root_seed,
        "replicates": 1,
        "seeds": "common",
        "parameters": {"draw": {"variants": variants}, "air_campaign.policy": {"values": policies}},
        "outcomes": list(OUTCOMES),
        "window": window,
        "batch_size": 20,
    }
    if days is not None:
        spec["days"] = days
    # built as a 'sim' sweep (the base scenario is loaded and the overrides checked), then run by
    # draw_task, which gives every draw seeds of its own
    return dataclasses.replace(spec_from_dict(spec), model="sim.experiments.calibration:draw_task")


def probability_table(df: pd.DataFrame, rope: float, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """P(effect > +ROPE), P(|effect| <= ROPE), P(effect < -ROPE) over draws, per comparison and outcome."""
    rows, effects = [], []
    for treatment, control in THESIS_COMPARISONS:
        if not {treatment, control} <= set(df["air_campaign.policy"]):
            continue
        d = paired_differences(df, treatment, control, list(THESIS_OUTCOMES), by=["draw"])
        d.insert(0, "comparison", f"{treatment} - {control}")
        d.insert(0, "draws_from", source)
        effects.append(d)
        for o in THESIS_OUTCOMES:
            r = rope_for(o, rope)
            p = posterior_probabilities(d[o].to_numpy(), r)
            label, sign = OUTCOMES.get(o, (o, 0))
            rows.append(
                {
                    "draws_from": source,
                    "treatment": treatment,
                    "control": control,
                    "outcome": o,
                    "label": label,
                    "predicted_sign": sign,
                    "rope": r,
                    "draws": int(np.isfinite(d[o].to_numpy(dtype=float)).sum()),
                    "mean_effect": float(np.nanmean(d[o])) if d[o].notna().any() else math.nan,
                    **p,
                }
            )
    return pd.DataFrame(rows), (pd.concat(effects, ignore_index=True) if effects else pd.DataFrame())


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
) -> PosteriorThesis:
    """Run the paired thesis comparisons on ``draws`` posterior (and prior) draws and report probabilities.

    Each draw runs every policy with one seed of its own (common random numbers within the draw).
    """
    from sim.experiments.store import load_results
    from sim.experiments.sweep import run_sweep
    from sim.scenario.loader import load_scenario

    stored = load_calibration_folder(calibration)
    sc = load_scenario(scenario).scenario
    folder = Path(out) if out is not None else Path(calibration) / "thesis"
    frac = sample_fraction if sample_fraction is not None else float(stored.manifest["sample_fraction"])
    run_days = days if days is not None else stored.manifest.get("days")
    policies = ["none", "resisting_towns", "hts_strongholds"]
    if sc.air_campaign.calendar:
        policies.append("calendar")
    t0 = time.perf_counter()
    sets = {"posterior": draw_posterior(stored.posterior, stored.priors, draws, root_seed)}
    if with_prior:
        sets["prior"] = draw_prior(stored.priors, draws, root_seed + 1)
    engine = make_engine(workers, scheduler)
    tables, effects = [], []
    try:
        for source, d in sets.items():
            spec = draws_spec(
                source,
                Path(scenario),
                d,
                sample_fraction=frac,
                days=run_days,
                root_seed=root_seed,
                policies=policies,
                window=sc.output.summary_window_days,
            )
            summary = run_sweep(spec, folder=folder / "runs" / source, engine=engine, progress=progress)
            t, e = probability_table(load_results(summary.folder), rope, source)
            tables.append(t)
            effects.append(e)
    finally:
        engine.close()
    probs = pd.concat(tables, ignore_index=True)
    eff = pd.concat(effects, ignore_index=True)
    seconds = time.perf_counter() - t0
    write_csv_atomic(probs, folder / "probabilities.csv", float_format="%.6g")
    write_parquet(eff, folder / "effects.parquet")
    manifest = {
        "kind": "posterior_thesis",
        "calibration_id": stored.calibration_id,
        "calibration_folder": str(calibration),
        "scenario": str(scenario),
        "draws": draws,
        "sample_fraction": frac,
        "days": run_days,
        "root_seed": root_seed,
        "rope": rope,
        "policies": policies,
        "seconds": round(seconds, 1),
        **stamp(),
    }
    write_json_atomic(manifest, folder / "manifest.json")
    report = _write_thesis_report(folder, stored, probs, draws, frac, rope, seconds)
    if draw is not None:
        draw(folder)
    return PosteriorThesis(folder, probs, eff, seconds, report)


def verdict_text(probs: pd.DataFrame, source: str = "posterior") -> list[str]:
    """One line per comparison on the two headline measures (home town, current town)."""
    lines = []
    for treatment, control in THESIS_COMPARISONS:
        for o, how in (("coop_resisting_home_mean", "by home town"), ("coop_resisting_mean", "by current town")):
            r = probs[
                (probs["draws_from"] == source)
                & (probs["treatment"] == treatment)
                & (probs["control"] == control)
                & (probs["outcome"] == o)
            ]
            if len(r):
                r = r.iloc[0]
                lines.append(
                    f"- {treatment} vs {control}, cooperation with HTS in resisting towns {how}: "
                    f"P(effect > +{r['rope']:g}) = {r['p_above']:.2f}, P(|effect| <= {r['rope']:g}) = "
                    f"{r['p_within']:.2f}, P(effect < -{r['rope']:g}) = {r['p_below']:.2f} "
                    f"(mean {r['mean_effect']:+.3f}, {r['draws']} {source} draws)"
                )
    return lines


def _write_thesis_report(
    folder: Path, stored: StoredCalibration, probs: pd.DataFrame, draws: int, frac: float, rope: float, seconds: float
) -> Path:
    cols = [
        "draws_from",
        "treatment",
        "control",
        "outcome",
        "rope",
        "draws",
        "mean_effect",
        "p_above",
        "p_within",
        "p_below",
    ]
    parts = [
        f"# The verdict the record supports (calibration {stored.calibration_id})",
        "",
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
        "## All comparisons and outcomes",
        "",
        markdown_table(probs[[c for c in cols if c in probs.columns]]),
        "",
        f"Each of {draws} draws (from the final ABC population by weight, and from the prior) runs every policy "
        f"with one seed of its own (common random numbers within a draw); the effect of a draw is the paired "
        f"difference treatment - control. ROPE {rope:g} for share outcomes, 0 for others (rival alignment). "
        f"Scale: sample_fraction {frac:g}. Wall time {seconds:.0f} s. Tables: `probabilities.csv`, `effects.parquet`.",
    ]
    path = folder / "report.md"
    write_text_atomic("\n".join(parts) + "\n", path)
    return path

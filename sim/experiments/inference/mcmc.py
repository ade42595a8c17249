"""Rejection ABC for starting points, then ABC-MCMC (Marjoram et al. 2003) from each of them.

Phase 1 is :func:`sim.experiments.inference.rejection.run` until ``budget.population`` draws are
accepted; each accepted draw starts a chain. Phase 2 runs ``budget.mcmc_steps`` steps per chain,
all chains a step at a time (in parallel): a Gaussian random-walk proposal in the sampler
coordinates (sd ``budget.mcmc_step`` times each prior's width), one seeded run, and the move is
taken when every calibration target's value lies inside its tolerance and a uniform falls below
the prior ratio. The chains keep the tolerance posterior of phase 1 as their stationary
distribution and start in it (phase 1's draws are exact samples of it), so no burn-in is
dropped; their states are correlated, and the report gives the move rate. Each (chain, step)
has its own random stream (``generator(cal.seed, "mcmc", "chain", c, "step", s)``), so serial,
parallel and resumed runs give the same chains (the table ``mcmc``: a part per step, compacted
into ``mcmc.parquet`` at the end). Stops after the steps or ``max_minutes`` (counted over both
phases of a session).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sim.experiments.engine import Engine
from sim.experiments.inference import rejection
from sim.experiments.inference.base import Progress, SamplerResult
from sim.experiments.inference.parts import PartTable
from sim.experiments.inference.priors import log_prior, prior_width
from sim.experiments.inference.targets import Measure, run_targets
from sim.scenario.calibration import Calibration
from sim.scenario.seeds import derive_seed, generator

TITLE = "rejection ABC, then ABC-MCMC"
NAME = "mcmc"
MCMC = f"{NAME}.parquet"  # every chain's state after every step: chain, step, moved, parameters, seed, values


def table(folder: str | Path) -> PartTable:
    """The folder's table of chain states."""
    return PartTable(folder, NAME, key=("chain", "step"), order=("step", "chain"))


def proposal(cal: Calibration, coords: np.ndarray, width: np.ndarray, chain: int, step: int):
    """Chain ``chain``'s proposal at ``step`` from sampler coordinates ``coords``: (z, uniform, run seed)."""
    rng = generator(cal.seed, NAME, "chain", chain, "step", step)
    z = coords + cal.budget.mcmc_step * width * rng.standard_normal(len(cal.priors))
    return z, float(rng.random()), derive_seed(cal.seed, NAME, "chain", chain, "step", step, "run")


def mark_simulated(cal: Calibration, chains: pd.DataFrame, starts: pd.DataFrame, width: np.ndarray) -> pd.DataFrame:
    """Add ``simulated`` (the proposal lay inside the prior's support, so it was run) to a chain table
    written without it, by replaying each chain's proposals."""
    chains = chains.drop(columns="simulated", errors="ignore")
    cols = [p.path for p in cal.priors]
    out = []
    for c, rows in chains.sort_values(["chain", "step"]).groupby("chain", sort=True):
        before = np.vstack([starts.iloc[[int(c)]][cols].to_numpy(dtype=float), rows[cols].to_numpy(dtype=float)[:-1]])
        flags = []
        for prev, step in zip(before, rows["step"], strict=True):
            coords = np.array([p.to_internal(v) for p, v in zip(cal.priors, prev, strict=True)])
            z = proposal(cal, coords, width, int(c), int(step))[0]
            flags.append(all(math.isfinite(log_prior(p, x)) for p, x in zip(cal.priors, z, strict=True)))
        out.append(rows.assign(simulated=flags))
    merged = pd.concat(out).sort_values(["step", "chain"]).reset_index(drop=True)
    return merged[[*chains.columns[:3], "simulated", *chains.columns[3:]]]


def run(
    cal: Calibration, folder: Path, engine: Engine, measure: Measure, *, progress: Progress | None = None
) -> SamplerResult:
    """Run (or resume) both phases in the prepared ``folder`` on ``engine``.

    Raises:
        CalibrationFailed: phase 1 accepted no draw.
    """
    t0 = time.perf_counter()
    folder = Path(folder)
    start = rejection.run(cal, folder, engine, measure, progress=progress)
    b = cal.budget
    priors = cal.priors
    cols = [p.path for p in priors]
    starts = start.posterior
    k = len(starts)
    width = np.array([prior_width(p) for p in priors])
    store = table(folder)
    chains = store.load()
    if len(chains) and ("simulated" not in chains.columns or chains["simulated"].isna().any()):
        chains = mark_simulated(cal, chains, starts, width)  # a table written before `simulated` was recorded
        store.rewrite(chains)
    done = int(chains["step"].max()) if len(chains) else 0
    if len(chains):
        state = chains[chains["step"] == done].sort_values("chain")[cols].to_numpy(dtype=float).copy()
    else:
        state = starts[cols].to_numpy(dtype=float).copy()
    # value units are the record (what was simulated); sampler coordinates are where the walk moves
    coords = np.array([[p.to_internal(v) for p, v in zip(priors, row, strict=True)] for row in state])
    lp = np.array([sum(log_prior(p, z) for p, z in zip(priors, row, strict=True)) for row in coords])
    stop = f"mcmc_steps ({b.mcmc_steps})"
    moved_total = int(chains["moved"].sum()) if len(chains) else 0
    rows_total = len(chains)
    for step in range(done + 1, b.mcmc_steps + 1):
        if b.max_minutes is not None and (time.perf_counter() - t0) / 60 >= b.max_minutes:
            stop = f"max_minutes ({b.max_minutes:g}) after {step - 1} steps"
            break
        proposals, seeds, uniforms, lp_new = [], [], [], []
        for c in range(k):
            z, u, seed = proposal(cal, coords[c], width, c, step)
            proposals.append(z)
            uniforms.append(u)
            seeds.append(seed)
            lp_new.append(sum(log_prior(p, x) for p, x in zip(priors, z, strict=True)))
        live = [c for c in range(k) if math.isfinite(lp_new[c])]
        proposed = [np.array([p.to_value(x) for p, x in zip(priors, z, strict=True)]) for z in proposals]
        params = [dict(zip(cols, map(float, proposed[c]), strict=True)) for c in live]
        values = run_targets(engine, cal, measure, params, [seeds[c] for c in live]) if live else pd.DataFrame()
        rows = []
        for c in range(k):
            moved = False
            vals: dict[str, float] = {}
            if c in live:
                vals = values.iloc[live.index(c)].to_dict()
                inside = all(t.residual(float(vals[t.name])) == 0 for t in cal.calibration_targets)
                moved = inside and math.log(max(uniforms[c], 1e-300)) < lp_new[c] - lp[c]
            if moved:
                coords[c], lp[c], state[c] = proposals[c], lp_new[c], proposed[c]
            row = {"chain": c, "step": step, "moved": moved, "simulated": c in live, "seed": seeds[c]}
            row.update({p.path: float(v) for p, v in zip(priors, state[c], strict=True)})
            row.update({f"v:{t.name}": float(vals.get(t.name, math.nan)) if moved else math.nan for t in cal.targets})
            rows.append(row)
        part = pd.DataFrame(rows)
        store.append(part)
        moved_total += int(part["moved"].sum())
        rows_total += len(part)
        if progress is not None and (step % 10 == 0 or step == b.mcmc_steps):
            progress(
                f"mcmc: step {step} of {b.mcmc_steps}, {k} chains, moves {moved_total / rows_total:.1%}, "
                f"elapsed {time.perf_counter() - t0:.0f} s"
            )
    chains = store.compact()
    states = pd.concat(
        [
            starts.assign(chain=np.arange(k), step=0)[["chain", "step", *cols]],
            chains[["chain", "step", *cols]] if len(chains) else None,
        ],
        ignore_index=True,
    )
    posterior = pd.DataFrame({"generation": 0, "particle": np.arange(len(states)), "weight": 1.0})
    for p in priors:
        posterior[p.path] = states[p.path].to_numpy(dtype=float)
    posterior["chain"] = states["chain"].to_numpy()
    posterior["step"] = states["step"].to_numpy()
    steps = int(chains["step"].max()) if len(chains) else 0
    simulated = int(chains["simulated"].sum()) if len(chains) else 0
    moves = float(chains["moved"].mean()) if len(chains) else math.nan
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
    return SamplerResult(
        folder=folder,
        posterior=posterior,
        generations=generations,
        runs=start.runs + simulated,  # proposals outside the prior's support are not simulated
        seconds=time.perf_counter() - t0,
        resumed_from=start.resumed_from,
        stop_reason=f"rejection: {start.stop_reason}; mcmc: {stop}",
        sampler=f"{start.sampler}, then {k} ABC-MCMC chains",
    )

"""Rejection ABC with the record's tolerances as the (uniform) kernel; resumable.

Draws ``budget.max_runs`` parameter sets from the prior (seeded, in a fixed order) and
simulates each with a seed of its own; a draw is accepted when every calibration target's
simulated value lies inside its tolerance interval (all residuals zero, the ``min_epsilon = 0``
limit of ABC-SMC). Accepted draws are independent samples of that posterior with equal
weights, so no importance weight can degenerate, whatever the number of parameters. Stops
after ``budget.population`` acceptances, ``max_runs`` draws or ``max_minutes``.

Every simulated draw is kept in the table ``rejection`` (:class:`~sim.experiments.inference.parts.PartTable`:
a part per batch of :data:`BATCH` draws, compacted into ``rejection.parquet`` at the end), and
a re-run continues after the last stored draw: serial, parallel, interrupted or not, the same
draws give the same table (draw ``i`` and its run seed depend only on ``cal.seed`` and ``i``).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sim.experiments.engine import Engine
from sim.experiments.inference.base import CalibrationFailed, Progress, SamplerResult
from sim.experiments.inference.parts import PartTable
from sim.experiments.inference.priors import draw_prior
from sim.experiments.inference.targets import Measure, run_seeds, run_targets
from sim.scenario.calibration import Calibration

TITLE = "rejection ABC"
NAME = "rejection"
REJECTION = f"{NAME}.parquet"  # every prior draw simulated so far: parameters, seed, values, accepted
BATCH = 100  # draws per part (what a kill can lose)
STREAM = "rejection"


def table(folder: str | Path) -> PartTable:
    """The folder's table of simulated prior draws."""
    return PartTable(folder, NAME, key=("draw",))


def _rows(cal: Calibration, draws: pd.DataFrame, seeds: list[int], start: int, values: pd.DataFrame) -> pd.DataFrame:
    rows = draws.iloc[start : start + len(values)].reset_index(drop=True)
    out = pd.DataFrame({"draw": np.arange(start, start + len(values)), "seed": seeds[: len(values)]})
    inside = np.ones(len(values), bool)
    for t in cal.calibration_targets:
        v = values[t.name].to_numpy(dtype=float)
        r = np.array([t.residual(x) for x in v])
        inside &= r == 0
    out = pd.concat([out, rows, values.add_prefix("v:")], axis=1)
    out["accepted"] = inside
    return out


def run(
    cal: Calibration, folder: Path, engine: Engine, measure: Measure, *, progress: Progress | None = None
) -> SamplerResult:
    """Run (or resume) rejection ABC in the prepared ``folder`` on ``engine``.

    Raises:
        CalibrationFailed: no draw was accepted.
    """
    folder = Path(folder)
    b = cal.budget
    n = b.max_runs
    draws = draw_prior(cal.priors, n, cal.seed, STREAM)
    store = table(folder)
    done = store.load()
    resumed_from = len(done)
    accepted = int(done["accepted"].sum()) if len(done) else 0
    t0 = time.perf_counter()
    stop = f"max_runs ({n})"
    size = len(done)
    while size < n:
        if accepted >= b.population:
            stop = f"population ({b.population} accepted)"
            break
        if b.max_minutes is not None and (time.perf_counter() - t0) / 60 >= b.max_minutes:
            stop = f"max_minutes ({b.max_minutes:g})"
            break
        start, stop_at = size, min(n, size + BATCH)
        seeds = run_seeds(cal.seed, STREAM, start, stop_at)
        params = [{k: float(v) for k, v in r.items()} for r in draws.iloc[start:stop_at].to_dict("records")]
        part = _rows(cal, draws, seeds, start, run_targets(engine, cal, measure, params, seeds))
        store.append(part)
        size += len(part)
        accepted += int(part["accepted"].sum())
        if progress is not None:
            progress(
                f"rejection: {size} of {n} draws, {accepted} accepted ({accepted / size:.1%}), "
                f"elapsed {time.perf_counter() - t0:.0f} s"
            )
    done = store.compact()
    if not len(done) or not done["accepted"].any():
        raise CalibrationFailed(
            f"{folder}: none of {len(done)} prior draws put every calibration target inside its tolerance; "
            "raise budget.max_runs, or use method smc"
        )
    acc = done[done["accepted"]].reset_index(drop=True)
    posterior = pd.DataFrame({"generation": 0, "particle": np.arange(len(acc)), "weight": 1.0})
    for p in cal.priors:
        posterior[p.path] = acc[p.path].to_numpy(dtype=float)
    generations = pd.DataFrame(
        [
            {
                "t": 0,
                "epsilon": 0.0,
                "particles": len(acc),
                "samples": len(done),
                "acceptance": len(acc) / len(done),
                "ess": float(len(acc)),
                "wall_time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        ]
    )
    return SamplerResult(
        folder=folder,
        posterior=posterior,
        generations=generations,
        runs=len(done),
        seconds=time.perf_counter() - t0,
        resumed_from=resumed_from,
        stop_reason=stop,
        sampler=f"rejection on {engine.description}",
    )

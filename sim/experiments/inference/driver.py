"""The calibration driver: sampler, posterior checks, and the folder's tables.

:func:`calibrate` prepares the folder, runs (or resumes) the method the calibration names (or
``method``) on one engine that also runs the checks after it, then the posterior predictive
check of every target (calibration and validation apart) and the scale check (calibration
scale against a reference scale at the posterior median), and writes the folder's tables and
``manifest.json`` atomically. The report and figures are written from them by
:mod:`sim.analysis.calibration` and :mod:`sim.viz.calibration`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.experiments.engine import Engine, make_engine
from sim.experiments.inference.base import Progress, SamplerResult
from sim.experiments.inference.checks import predictive_check, scale_check
from sim.experiments.inference.folder import MANIFEST, MARGINALS, POSTERIOR, prepare_folder
from sim.experiments.inference.methods import method as registered
from sim.experiments.inference.posterior import calibration_id, draw_posterior, marginals
from sim.experiments.inference.targets import Measure
from sim.run.provenance import stamp
from sim.run.store import write_csv_atomic, write_json_atomic, write_parquet
from sim.scenario.calibration import Calibration

DEFAULT_OUT = Path("results/calibration")


@dataclass
class CalibrationResult:
    """Files and tables of a calibration."""

    folder: Path
    abc: SamplerResult
    marginals: pd.DataFrame
    predictive: pd.DataFrame
    scale: pd.DataFrame
    calibration_id: str
    report: Path | None
    seconds: float
    calibration: Calibration | None = None  # as sampled (``budget.method`` the method used)


def with_method(cal: Calibration, method: str | None) -> Calibration:
    """``cal`` sampled by ``method`` (None: the calibration file's ``budget.method``)."""
    if method is None or method == cal.budget.method:
        return cal
    registered(method)  # an unknown name fails here
    return dataclasses.replace(cal, budget=cal.budget.model_copy(update={"method": method}))


def calibrate(
    cal: Calibration,
    folder: str | Path | None,
    measure: Measure,
    *,
    method: str | None = None,
    engine: Engine | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    fresh: bool = False,
    progress: Progress | None = print,
) -> CalibrationResult:
    """Run (or resume) the calibration and its checks; write the folder's tables and manifest.

    ``engine`` runs every simulation (opened from ``workers`` / ``scheduler`` and closed here
    when not given). ``measure`` is how a run's tables give a recorded figure's value.

    Raises:
        CalibrationConflict: the folder holds another calibration (or one of another method).
        CalibrationFailed: the sampler ended without a posterior.
    """
    cal = with_method(cal, method)
    m = registered(cal.budget.method)
    folder = prepare_folder(cal, Path(folder) if folder is not None else DEFAULT_OUT / cal.name, fresh)
    t0 = time.perf_counter()
    own = engine is None
    engine = engine if engine is not None else make_engine(workers, scheduler)
    try:
        sampled = m.run(cal, folder, engine, measure, progress=progress)
        if progress is not None:
            progress(
                f"{m.TITLE} stopped: {sampled.stop_reason}; {sampled.runs} runs in {sampled.seconds:.0f} s; "
                "checking the posterior"
            )
        marg = marginals(sampled.posterior, cal.priors)
        draws = draw_posterior(sampled.posterior, cal.priors, cal.budget.predictive_draws, cal.seed, "predictive check")
        median = {r["parameter"]: float(r["posterior_median"]) for r in marg.to_dict("records")}
        ppc, ppc_values = predictive_check(engine, cal, draws, cal.seed, measure)
        scale = scale_check(engine, cal, median, cal.seed, measure)
    finally:
        if own:
            engine.close()
    cid = calibration_id(cal, sampled)
    seconds = time.perf_counter() - t0
    write_parquet(sampled.posterior, folder / POSTERIOR)
    write_csv_atomic(sampled.generations, folder / "generations.csv", float_format="%.6g")
    write_csv_atomic(marg, folder / MARGINALS, float_format="%.6g")
    write_csv_atomic(ppc, folder / "predictive.csv", float_format="%.6g")
    write_parquet(pd.concat([draws, ppc_values.add_prefix("sim:")], axis=1), folder / "predictive_draws.parquet")
    write_csv_atomic(scale, folder / "scale_check.csv", float_format="%.6g")
    manifest = {
        "kind": "calibration",
        "calibration_id": cid,
        "name": cal.name,
        "method": cal.budget.method,
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
        "sampler": sampled.sampler,
        "runs": sampled.runs,
        "generations": len(sampled.generations),
        "stop_reason": sampled.stop_reason,
        "resumed_from_generation": sampled.resumed_from,
        "abc_seconds": round(sampled.seconds, 1),
        "wall_time_s": round(seconds, 1),
        "posterior_median": median,
        **stamp(),
    }
    write_json_atomic(manifest, folder / MANIFEST)
    return CalibrationResult(folder, sampled, marg, ppc, scale, cid, None, seconds, cal)

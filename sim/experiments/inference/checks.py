"""Checks of a posterior that run simulations: the posterior predictive check and the scale check."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.experiments.engine import Engine
from sim.experiments.inference.posterior import QS
from sim.experiments.inference.targets import Measure, run_seeds, run_targets
from sim.scenario.calibration import Calibration


def predictive_check(
    engine: Engine, cal: Calibration, draws: pd.DataFrame, seed: int, measure: Measure
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate every target on posterior draws: per-draw values, and the 90% band against the record."""
    params = [{k: float(v) for k, v in r.items()} for r in draws.to_dict("records")]
    values = run_targets(engine, cal, measure, params, run_seeds(seed, "predictive check", 0, len(params)))
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
                "kind": t.kind,
                "recorded": t.recorded,
                "record_low": rlo,
                "record_high": rhi,
                "uncertainty": t.half_width,
                "band_low": lo,
                "median": med,
                "band_high": hi,
                "draws": len(x),
                "covered": bool(len(x) and lo <= rhi and hi >= rlo),
                "within_tolerance": float(np.mean((x >= tlo) & (x <= thi))) if len(x) else math.nan,
                "source": t.source,
            }
        )
    return pd.DataFrame(rows), values


def scale_check(
    engine: Engine, cal: Calibration, median: dict[str, float], seed: int, measure: Measure
) -> pd.DataFrame:
    """Target statistics at the calibration scale and at the reference scale, same seeds, posterior median.

    ``z`` = difference of the means over its standard error: |z| <= 3 means the two scales agree
    within seed noise.
    """
    b = cal.budget
    n = b.scale_check_seeds
    seeds = run_seeds(seed, "scale check", 0, n)
    fractions = [cal.sample_fraction, b.scale_check_fraction]
    params, all_seeds = [], []
    for f in fractions:
        for s in seeds:
            params.append({**median, "sample_fraction": f})
            all_seeds.append(s)
    values = run_targets(engine, cal, measure, params, all_seeds)
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

"""The posterior table: the final population, draws from it, weighted quantiles, marginals, the id.

A posterior table has the columns ``generation``, ``particle``, ``weight`` and one per parameter
(value units); the last generation is the posterior (ABC-SMC's final population; rejection's
accepted draws; ABC-MCMC's chain states, with equal weights).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd

from sim.experiments.inference.base import SamplerResult
from sim.scenario.calibration import Calibration, Prior
from sim.scenario.seeds import generator

LEVEL = 0.90
QS = (0.05, 0.5, 0.95)


def final_population(posterior: pd.DataFrame) -> pd.DataFrame:
    """The last generation's particles with normalised weights."""
    last = posterior[posterior["generation"] == posterior["generation"].max()].copy()
    last["weight"] = last["weight"] / last["weight"].sum()
    return last.reset_index(drop=True)


def draw_posterior(
    posterior: pd.DataFrame,
    priors: tuple[Prior, ...],
    n: int,
    seed: int,
    *labels: str | int,
    replace: bool = True,
) -> pd.DataFrame:
    """``n`` parameter sets resampled from the final population by weight, from the stream
    ``(seed, "posterior draws", *labels)``; with ``replace=False`` (equal weights, for independent
    samples such as npe's) distinct rows while the population has ``n`` of them."""
    last = final_population(posterior)
    rng = generator(seed, "posterior draws", *labels)
    if not replace and n <= len(last):
        idx = rng.choice(len(last), size=n, replace=False)
        return last.iloc[idx][[p.path for p in priors]].reset_index(drop=True)
    idx = rng.choice(len(last), size=n, replace=True, p=last["weight"].to_numpy())
    return last.iloc[idx][[p.path for p in priors]].reset_index(drop=True)


def weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Quantiles of a weighted sample (inverse of the weighted empirical CDF, midpoint rule)."""
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    order = np.argsort(x)
    x, w = x[order], w[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return [float(np.interp(q, cdf, x)) for q in qs]


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


def calibration_id(cal: Calibration, sampled: SamplerResult) -> str:
    """A short id of a calibration: its name and a hash of the configuration and the final population."""
    last = final_population(sampled.posterior)
    h = hashlib.sha256(cal.fingerprint().encode())
    h.update(pd.util.hash_pandas_object(last, index=False).to_numpy().tobytes())
    return f"{cal.name}-{h.hexdigest()[:10]}"

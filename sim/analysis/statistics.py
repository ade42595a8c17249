"""Effect statistics: the one interval method and the verdict rules of the project.

Every paired difference in the project (thesis effects, ablation, heatmaps, sweep
effect grids, posterior effects) gets its interval from :func:`mean_interval`:
:func:`scipy.stats.bootstrap` of the mean, bias-corrected and accelerated (BCa)
where BCa is defined, the percentile interval where it is not (BCa needs a
non-degenerate jackknife). Verdicts use a region of practical equivalence
(ROPE, Kruschke 2018): an effect whose whole interval lies within ``[-rope, +rope]``
is *negligible*, however significant. The ROPE is absolute for shares with a sizeable
baseline (:data:`DEFAULT_ROPE`) and relative to the control arm's mean where the baseline
is small (protest: :data:`RELATIVE_ROPE`), so that halving a 2% protest share is not
"negligible". Each summary states the Monte Carlo error of the mean and whether the
interval is narrow enough for the ROPE (:func:`has_power`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

DEFAULT_ROPE = 0.02
"""Default minimum effect size, in share units (two percentage points), for shares whose
control-arm level is not small (cooperation, resistance, persons under HTS control)."""

RELATIVE_ROPE = 0.25
"""Minimum effect size of outcomes with a small baseline (protest), as a share of the
control arm's mean: a change of a quarter of the ordinary level matters, whatever that level."""

RELATIVE_OUTCOMES = ("protest",)
"""Outcomes (by name prefix or part) judged on the relative scale."""

VERDICTS = ("supported", "contradicted", "negligible", "inconclusive")
DISAGREE = "measures disagree"


def mean_interval(x: np.ndarray, *, level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the mean of ``x`` (BCa where defined, else percentile), seeded.

    Non-finite values are dropped. Returns ``(nan, nan)`` for an empty sample and
    ``(x, x)`` for a constant one (including a single value).
    """
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    from scipy import stats  # here, not at import: scipy.stats takes half a second to load

    kw: dict[str, Any] = {
        "confidence_level": level,
        "n_resamples": n_resamples,
        "vectorized": True,
        "axis": -1,
    }
    with warnings.catch_warnings():
        # BCa warns (and returns nan) when the jackknife is degenerate; we fall back below.
        warnings.simplefilter("ignore")
        res = stats.bootstrap((x,), np.mean, method="BCa", rng=np.random.default_rng(seed), **kw)
        lo, hi = res.confidence_interval
        if not (np.isfinite(lo) and np.isfinite(hi)):
            res = stats.bootstrap((x,), np.mean, method="percentile", rng=np.random.default_rng(seed), **kw)
            lo, hi = res.confidence_interval
    return float(lo), float(hi)


def verdict(lo: float, hi: float, expected_sign: int, rope: float = 0.0) -> str:
    """The verdict on an effect interval ``[lo, hi]`` against the predicted sign and a ROPE.

    * *supported*: the whole interval lies beyond ``+rope`` on the predicted side;
    * *contradicted*: the whole interval lies beyond ``rope`` on the other side;
    * *negligible*: the whole interval lies within ``[-rope, +rope]`` (only when ``rope > 0``);
    * *inconclusive*: anything else (including an interval that is not finite).

    For outcomes without a prediction (``expected_sign == 0``) the first two read
    *higher* and *lower*.
    """
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if lo > rope or hi < -rope:
        up = lo > rope
        if expected_sign == 0:
            return "higher" if up else "lower"
        return "supported" if up == (expected_sign > 0) else "contradicted"
    if rope > 0 and -rope <= lo and hi <= rope:
        return "negligible"
    return "inconclusive"


def relative_rope(control_mean: float, fraction: float = RELATIVE_ROPE) -> float:
    """The ROPE of an outcome with a small baseline: ``fraction * |control mean|`` (0 if undefined)."""
    if not np.isfinite(control_mean):
        return 0.0
    return float(fraction * abs(control_mean))


def monte_carlo_error(x: np.ndarray) -> float:
    """Monte Carlo standard error of the mean of ``x``: ``sd / sqrt(n)`` (nan below two values)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan")
    return float(x.std(ddof=1) / np.sqrt(len(x)))


def has_power(lo: float, hi: float, rope: float) -> bool:
    """Whether an interval is narrow enough for every verdict: its half-width is below the ROPE.

    An interval wider than that can never lie wholly within [-ROPE, +ROPE] (so *negligible* is
    out of reach) and needs an effect beyond twice the ROPE to be *supported*; the report then
    says "the test lacks power" for that measure. Without a ROPE there is nothing to compare.
    """
    if rope <= 0 or not (np.isfinite(lo) and np.isfinite(hi)):
        return rope <= 0
    return (hi - lo) / 2 < rope


def combined_verdict(home: str, current: str) -> str:
    """The headline verdict: the common verdict of the home-town and current-town measures, else
    ``"measures disagree"``."""
    return home if home == current else DISAGREE


def summarize(
    diffs: np.ndarray,
    expected_sign: int,
    *,
    rope: float = 0.0,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean paired difference, its interval, the share of positive pairs and the verdict."""
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    lo, hi = mean_interval(d, level=level, n_resamples=n_resamples, seed=seed)
    return {
        "pairs": len(d),
        "mean_diff": float(d.mean()) if len(d) else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
        "share_positive": float((d > 0).mean()) if len(d) else float("nan"),
        "verdict": verdict(lo, hi, expected_sign, rope),
        "rope": rope,
        "mc_error": monte_carlo_error(d),
        "powered": has_power(lo, hi, rope),
    }


def posterior_probabilities(effects: np.ndarray, rope: float) -> dict[str, float]:
    """Shares of draws with effect above ``+rope``, within ``[-rope, rope]`` and below ``-rope``.

    The three sum to 1 over the finite draws; all are nan when there are none.
    """
    e = np.asarray(effects, dtype=float)
    e = e[np.isfinite(e)]
    if len(e) == 0:
        return {"p_above": float("nan"), "p_within": float("nan"), "p_below": float("nan")}
    above = float(np.mean(e > rope))
    below = float(np.mean(e < -rope))
    return {"p_above": above, "p_within": 1.0 - above - below, "p_below": below}

"""Prior draws: parameter sets from a calibration's priors, seeded by a named stream."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sim.scenario.calibration import Prior
from sim.scenario.seeds import generator


def draw_prior(priors: tuple[Prior, ...], n: int, seed: int, *labels: str | int) -> pd.DataFrame:
    """``n`` parameter sets from the prior (value units), from the stream ``(seed, "prior draws", *labels)``."""
    rng = generator(seed, "prior draws", *labels)
    cols = {}
    for p in priors:
        if p.family == "uniform":
            x = rng.uniform(p.low, p.high, n)
        elif p.family == "loguniform":
            x = 10 ** rng.uniform(math.log10(p.low), math.log10(p.high), n)
        elif p.family == "normal":
            x = rng.normal(p.mean, p.sd, n)
        else:
            x = np.exp(rng.normal(math.log(p.mean), p.sd, n))
        cols[p.path] = x
    return pd.DataFrame(cols)


def prior_width(p: Prior) -> float:
    """A prior's width in sampler coordinates (uniform families: the support; normal ones: 4 sd)."""
    if p.family in ("uniform", "loguniform"):
        return p.to_internal(p.high) - p.to_internal(p.low)
    return 4 * p.sd


def log_prior(p: Prior, z: float) -> float:
    """Log density of the prior in sampler coordinates, up to a constant (-inf outside the support)."""
    if p.family in ("uniform", "loguniform"):
        return 0.0 if p.to_internal(p.low) <= z <= p.to_internal(p.high) else -math.inf
    centre = p.mean if p.family == "normal" else math.log(p.mean)
    return -0.5 * ((z - centre) / p.sd) ** 2

"""Checks before belief: is an amortised posterior calibrated, informative, and is the record typical?

Each check returns a :class:`CheckResult`: the data it computed, whether it passed, and the
rule it applied, stated in words so a report can print it as it is.

*Calibration* is judged on held-out simulations (parameter draws from the prior and the
statistics of one simulation each, none used in training):

* :func:`sbc_check`: simulation-based calibration, the rank of each true parameter among
  posterior draws (sbi's ``run_sbc``/``check_sbc``: KS p-values of the ranks against
  uniform, a classifier two-sample test (c2st) of the ranks against uniform and of the
  data-averaged posterior against the prior), on randomised ranks (rank + U(0, 1)) so that the
  classifier cannot tell the ranks from the uniform by their being integers;
* :func:`coverage_check`: how often the central 50/80/90/95% intervals hold the truth,
  against binomial bands;
* :func:`tarp_check`: TARP expected coverage (sbi's ``run_tarp``/``check_tarp``), a joint test.

*Information*: :func:`contraction_check`, 1 - posterior variance / prior variance per
parameter, over the held-out set and at the record, so a report can say which parameters the
record constrains.

*Misspecification*: :func:`rank_check`, where each recorded statistic falls among the
reference table's, and :func:`mmd_check`, sbi's MMD test (``calc_misspecification_mmd``,
with a permutation null) jointly and per statistic.

:func:`reliability_check` bins predicted probabilities against 0/1 outcomes.

The posterior is anything with ``parameters`` (names) and ``sample_many(xs, n, seed)``
returning ``(n, m, d)`` draws in value units, such as
:class:`sim.experiments.inference.npe.NPEEnsemble`; :func:`posterior_draws` takes the draws
once so several checks can share them.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from sim.experiments.inference.npe import reference_table, require_inference
from sim.scenario.calibration import Prior
from sim.scenario.seeds import derive_seed, generator

__all__ = [
    "LEVELS",
    "CheckResult",
    "HeldOut",
    "PosteriorSampler",
    "binomial_band",
    "calibration_checks",
    "contraction_check",
    "coverage_check",
    "held_out",
    "mmd_check",
    "posterior_draws",
    "prior_variance",
    "rank_check",
    "reliability_check",
    "sbc_check",
    "tarp_check",
]

LEVELS = (0.5, 0.8, 0.9, 0.95)


class PosteriorSampler(Protocol):
    """What the checks need of a posterior."""

    @property
    def parameters(self) -> list[str]: ...

    def sample_many(self, xs: Any, n: int, seed: int) -> np.ndarray: ...


@dataclass(frozen=True)
class CheckResult:
    """One check: its data, whether it passed, and the rule applied."""

    name: str
    passed: bool
    rule: str
    data: pd.DataFrame
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One line for a report."""
        return f"{self.name}: {'pass' if self.passed else 'FAIL'} ({self.rule})"


@dataclass(frozen=True)
class HeldOut:
    """Held-out simulations (failed ones excluded and counted) and posterior draws for each."""

    theta: pd.DataFrame  # (m, d) true parameter values
    x: pd.DataFrame  # (m, s) statistics
    draws: np.ndarray  # (n, m, d) posterior draws, value units
    n_failed: int

    @property
    def parameters(self) -> list[str]:
        """Parameter names, in column order."""
        return list(self.theta.columns)


@contextlib.contextmanager
def _seeded_torch(seed: int) -> Iterator[Any]:
    torch, _ = require_inference()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield torch


class _FixedDraws:
    """Duck-typed stand-in for an sbi posterior: ``sample_batched`` returns draws taken beforehand."""

    def __init__(self, draws: np.ndarray):
        torch, _ = require_inference()
        self.draws = torch.as_tensor(draws, dtype=torch.float32)

    def sample_batched(self, sample_shape: Any, x: Any, show_progress_bars: bool = False, **_: Any) -> Any:
        if tuple(sample_shape) != (self.draws.shape[0],) or x.shape[0] != self.draws.shape[1]:
            raise ValueError("the draws were taken for another sample shape or another set of x")
        return self.draws


def posterior_draws(posterior: PosteriorSampler, xs: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """``n`` posterior draws for each row of ``xs``: (n, m, d), value units."""
    return np.asarray(posterior.sample_many(xs, n, derive_seed(seed, "checks", "draws")), dtype=float)


def held_out(
    posterior: PosteriorSampler,
    priors: Sequence[Prior],
    theta: pd.DataFrame,
    x: pd.DataFrame,
    *,
    seed: int,
    n_posterior: int = 500,
    failed: Any = "failed",
) -> HeldOut:
    """Held-out simulations with their posterior draws; failed rows excluded and counted."""
    table = reference_table(priors, theta, x, failed)
    draws = posterior_draws(posterior, table.x, n_posterior, seed)
    return HeldOut(theta=table.theta, x=table.x, draws=draws, n_failed=table.n_failed)


# --------------------------------------------------------------------------- calibration


def sbc_check(ho: HeldOut, *, seed: int, ks_alpha: float = 0.05, c2st_max: float = 0.6) -> CheckResult:
    """Simulation-based calibration with sbi's ``run_sbc`` and ``check_sbc``.

    Passes when every parameter's KS p-value of the ranks against uniform is at least
    ``ks_alpha`` divided by the number of parameters (Bonferroni), and every c2st accuracy
    (ranks against uniform, data-averaged posterior against the prior draws) is at most
    ``c2st_max`` (0.5 is indistinguishable).
    """
    torch, _ = require_inference()
    from sbi.diagnostics import check_sbc, run_sbc

    n_post = ho.draws.shape[0]
    thetas = torch.as_tensor(np.array(ho.theta.to_numpy(), dtype=np.float32))
    xs = torch.as_tensor(np.array(ho.x.to_numpy(), dtype=np.float32))
    d = thetas.shape[1]
    with _seeded_torch(derive_seed(seed, "checks", "sbc")), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ranks, dap = run_sbc(thetas, xs, _FixedDraws(ho.draws), num_posterior_samples=n_post, show_progress_bar=False)  # type: ignore[arg-type]
        # ranks are integers 0..n_post; sbi compares them with a continuous uniform on [0, n_post], and its
        # random-forest c2st tells integers from reals (about 0.78 for exactly uniform ranks). Randomised
        # ranks (rank + U(0, 1), uniform on [0, n_post + 1] exactly when the ranks are) remove that artefact.
        jitter = torch.as_tensor(generator(seed, "checks", "sbc jitter").random(tuple(ranks.shape)), dtype=ranks.dtype)
        result = check_sbc(ranks + jitter, thetas, dap, num_posterior_samples=n_post + 1)
    ks = result["ks_pvals"].numpy().astype(float)
    c2_ranks = result["c2st_ranks"].numpy().astype(float)
    c2_dap = np.atleast_1d(result["c2st_dap"].numpy()).astype(float)
    data = pd.DataFrame(
        {"ks_pvalue": ks, "c2st_ranks": c2_ranks, "c2st_dap": c2_dap if c2_dap.size == d else np.nan},
        index=pd.Index(ho.parameters, name="parameter"),
    )
    threshold = ks_alpha / d
    data["passed"] = (
        (data["ks_pvalue"] >= threshold) & (data["c2st_ranks"] <= c2st_max) & (data["c2st_dap"] <= c2st_max)
    )
    return CheckResult(
        name="simulation-based calibration",
        passed=bool(data["passed"].all()),
        rule=(
            f"ranks of {len(ho.theta)} held-out truths among {n_post} posterior draws: every KS p-value "
            f">= {threshold:.3g} ({ks_alpha:g} / {d} parameters) and every c2st accuracy (ranks vs uniform, "
            f"data-averaged posterior vs prior) <= {c2st_max:g}"
        ),
        data=data,
        details={"ranks": ranks.numpy(), "n_posterior": n_post, "n_held_out": len(ho.theta), "n_failed": ho.n_failed},
    )


def binomial_band(n: int, p: float, level: float) -> tuple[float, float]:
    """The central ``level`` band of Binomial(n, p) / n."""
    tail = (1 - level) / 2
    return float(stats.binom.ppf(tail, n, p) / n), float(stats.binom.ppf(1 - tail, n, p) / n)


def coverage_check(
    ho: HeldOut, *, levels: Sequence[float] = LEVELS, band: float = 0.95, bonferroni: bool = True
) -> CheckResult:
    """Expected coverage of the central posterior intervals, per parameter and level.

    For each parameter and level L, the share of held-out truths inside the equal-tailed
    L interval of their posterior draws is compared with the central ``band`` of
    Binomial(m, L) / m (m held-out simulations); with ``bonferroni`` the band is widened to
    1 - (1 - band) / cells over the parameter x level cells. Passes when every cell is inside.
    """
    m = len(ho.theta)
    truth = ho.theta.to_numpy()
    cells = len(ho.parameters) * len(levels)
    level_band = 1 - (1 - band) / cells if bonferroni else band
    rows = []
    for j, name in enumerate(ho.parameters):
        for lev in levels:
            lo = np.quantile(ho.draws[:, :, j], (1 - lev) / 2, axis=0)
            hi = np.quantile(ho.draws[:, :, j], (1 + lev) / 2, axis=0)
            cov = float(np.mean((truth[:, j] >= lo) & (truth[:, j] <= hi)))
            b_lo, b_hi = binomial_band(m, lev, level_band)
            rows.append(
                {
                    "parameter": name,
                    "level": lev,
                    "coverage": cov,
                    "band_low": b_lo,
                    "band_high": b_hi,
                    "inside": b_lo <= cov <= b_hi,
                }
            )
    data = pd.DataFrame(rows)
    return CheckResult(
        name="expected coverage",
        passed=bool(data["inside"].all()),
        rule=(
            f"share of {m} held-out truths inside the central {', '.join(f'{lv:.0%}' for lv in levels)} intervals "
            f"lies within the {level_band:.4g} binomial band for every parameter and level"
            + (f" ({band:g} Bonferroni-adjusted over {cells} cells)" if bonferroni else "")
        ),
        data=data,
        details={"n_held_out": m, "n_failed": ho.n_failed, "band": level_band},
    )


def tarp_check(ho: HeldOut, *, seed: int, ks_alpha: float = 0.05, atc_max: float = 0.05) -> CheckResult:
    """TARP expected coverage with sbi's ``run_tarp`` and ``check_tarp`` (parameters z-scored).

    Passes when ``|ATC|`` (area between the expected-coverage curve and the diagonal above
    credibility 0.5: negative means too narrow, positive too wide) is at most ``atc_max`` and
    the KS p-value of sbi's ``check_tarp`` is at least ``ks_alpha``.
    """
    torch, _ = require_inference()
    from sbi.diagnostics import check_tarp, run_tarp

    n_post = ho.draws.shape[0]
    thetas = torch.as_tensor(np.array(ho.theta.to_numpy(), dtype=np.float32))
    xs = torch.as_tensor(np.array(ho.x.to_numpy(), dtype=np.float32))
    with _seeded_torch(derive_seed(seed, "checks", "tarp")), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ecp, alpha = run_tarp(thetas, xs, _FixedDraws(ho.draws), num_posterior_samples=n_post, show_progress_bar=False)  # type: ignore[arg-type]
        atc, ks = check_tarp(ecp, alpha)
    data = pd.DataFrame({"credibility": alpha.numpy().astype(float), "expected_coverage": ecp.numpy().astype(float)})
    passed = abs(atc) <= atc_max and ks >= ks_alpha
    return CheckResult(
        name="TARP",
        passed=bool(passed),
        rule=(
            f"|ATC| <= {atc_max:g} (got {atc:+.3f}; negative: too narrow) and KS p-value >= {ks_alpha:g} (got {ks:.3g})"
        ),
        data=data,
        details={"atc": float(atc), "ks_pvalue": float(ks), "n_held_out": len(ho.theta)},
    )


# --------------------------------------------------------------------------- information


def _internal(priors: Sequence[Prior], values: np.ndarray) -> np.ndarray:
    """Values in each prior's sampler coordinate (log10 for loguniform, ln for lognormal)."""
    out = np.array(values, dtype=float, copy=True)
    for j, p in enumerate(priors):
        if p.family == "loguniform":
            out[..., j] = np.log10(out[..., j])
        elif p.family == "lognormal":
            out[..., j] = np.log(out[..., j])
    return out


def prior_variance(p: Prior) -> float:
    """Variance of the prior in its sampler coordinate (log10 for loguniform, ln for lognormal)."""
    if p.family in ("uniform", "loguniform"):
        lo, hi = (p.low, p.high) if p.family == "uniform" else (math.log10(p.low), math.log10(p.high))  # type: ignore[arg-type]
        return (hi - lo) ** 2 / 12
    assert p.sd is not None
    return float(p.sd) ** 2


def contraction_check(
    priors: Sequence[Prior],
    ho: HeldOut | None = None,
    obs_draws: pd.DataFrame | np.ndarray | None = None,
    *,
    min_contraction: float = 0.5,
) -> CheckResult:
    """Posterior contraction 1 - var(posterior) / var(prior) per parameter.

    Variances are taken in each prior's sampler coordinate (log10 for loguniform, natural log
    for lognormal). Reported over the held-out simulations (mean and 10/50/90% quantiles) and
    at the record (``obs_draws``: posterior draws at the observed statistics). A parameter
    is *constrained* when its contraction (at the record if given, else the held-out mean)
    reaches ``min_contraction``; the check passes when every parameter is.
    """
    if ho is None and obs_draws is None:
        raise ValueError("give held-out draws, draws at the record, or both")
    priors = list(priors)
    pv = np.array([prior_variance(p) for p in priors])
    data = pd.DataFrame({"prior_variance": pv}, index=pd.Index([p.path for p in priors], name="parameter"))
    if ho is not None:
        var = _internal(priors, ho.draws).var(axis=0)  # (m, d)
        c = 1 - var / pv
        data["held_out_mean"] = c.mean(axis=0)
        for q in (0.1, 0.5, 0.9):
            data[f"held_out_q{int(q * 100)}"] = np.quantile(c, q, axis=0)
    if obs_draws is not None:
        od = obs_draws[[p.path for p in priors]].to_numpy() if isinstance(obs_draws, pd.DataFrame) else obs_draws
        data["at_record"] = 1 - _internal(priors, np.asarray(od, dtype=float)).var(axis=0) / pv
    basis = "at_record" if obs_draws is not None else "held_out_mean"
    data["constrained"] = data[basis] >= min_contraction
    return CheckResult(
        name="posterior contraction",
        passed=bool(data["constrained"].all()),
        rule=(
            f"every parameter's contraction 1 - var(posterior)/var(prior) ({basis.replace('_', ' ')}, "
            f"in the prior's sampling coordinate) >= {min_contraction:g}"
        ),
        data=data,
        details={"constrained": data.index[data["constrained"]].tolist()},
    )


# --------------------------------------------------------------------------- misspecification


def _simulated(table_x: pd.DataFrame, failed: str | None) -> pd.DataFrame:
    """The table's statistics without its failed rows (and without the failure column)."""
    if failed is not None and failed in table_x.columns:
        table_x = table_x.loc[~table_x[failed].to_numpy(dtype=bool)].drop(columns=[failed])
    if not np.all(np.isfinite(table_x.to_numpy(dtype=float))):
        raise ValueError("the reference table has non-finite statistics in rows not marked failed")
    return table_x


def _obs_vector(x_obs: Any, columns: Sequence[str]) -> np.ndarray:
    if isinstance(x_obs, pd.DataFrame):
        return x_obs[list(columns)].to_numpy(dtype=float)[0]
    if isinstance(x_obs, pd.Series | Mapping):
        return np.array([float(x_obs[c]) for c in columns])
    return np.asarray(x_obs, dtype=float).reshape(-1)


def rank_check(
    table_x: pd.DataFrame, x_obs: Any, *, low: float = 0.005, high: float = 0.995, failed: str | None = "failed"
) -> CheckResult:
    """Where each observed statistic falls among the reference table's simulations.

    The rank is the share of simulations below the observed value (ties count half); rows
    marked in the ``failed`` column are left out. Passes when every rank is within
    ``[low, high]``; the statistics outside are named.
    """
    table_x = _simulated(table_x, failed)
    cols = list(table_x.columns)
    obs = _obs_vector(x_obs, cols)
    sims = table_x.to_numpy(dtype=float)
    below = (sims < obs).mean(axis=0)
    ties = (sims == obs).mean(axis=0)
    rank = below + ties / 2
    data = pd.DataFrame(
        {"observed": obs, "rank": rank, "outside": (rank < low) | (rank > high)},
        index=pd.Index(cols, name="statistic"),
    )
    outside = data.index[data["outside"]].tolist()
    return CheckResult(
        name="observed statistics among the simulations",
        passed=not outside,
        rule=f"every observed statistic ranks within [{low:g}, {high:g}] of the {len(sims)} simulations",
        data=data,
        details={"outside": outside},
    )


def mmd_check(
    table_x: pd.DataFrame,
    x_obs: Any,
    *,
    seed: int,
    alpha: float = 0.05,
    n_shuffle: int = 300,
    max_samples: int = 500,
    failed: str | None = "failed",
) -> CheckResult:
    """MMD misspecification test (sbi's ``calc_misspecification_mmd``, RBF kernel, median bandwidth).

    Rows marked in the ``failed`` column are left out and the statistics are z-scored with
    the table's means and sds. The observed vector is compared
    with the simulations jointly and one statistic at a time; each p-value comes from a
    permutation null of ``n_shuffle`` single simulations against the rest. Passes when the
    joint p-value is at least ``alpha``; statistics whose own p-value is below ``alpha`` are named.
    """
    torch, _ = require_inference()
    from sbi.diagnostics import calc_misspecification_mmd

    table_x = _simulated(table_x, failed)
    cols = list(table_x.columns)
    sims = table_x.to_numpy(dtype=float)
    mean, sd = sims.mean(axis=0), sims.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = torch.as_tensor((sims - mean) / sd, dtype=torch.float32)
    zo = torch.as_tensor(((_obs_vector(x_obs, cols) - mean) / sd)[None, :], dtype=torch.float32)

    def test(cols_idx: list[int], label: str) -> tuple[float, float]:
        with _seeded_torch(derive_seed(seed, "checks", "mmd", label)), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, (_, mmd) = calc_misspecification_mmd(
                zo[:, cols_idx], z[:, cols_idx], mode="x_space", n_shuffle=n_shuffle, max_samples=max_samples
            )
        return float(p), float(mmd)

    joint_p, joint_mmd = test(list(range(len(cols))), "joint")
    rows = [test([j], f"statistic {c}") for j, c in enumerate(cols)]
    data = pd.DataFrame(rows, columns=["pvalue", "mmd"], index=pd.Index(cols, name="statistic"))
    data["outside"] = data["pvalue"] < alpha
    outside = data.index[data["outside"]].tolist()
    return CheckResult(
        name="MMD misspecification",
        passed=joint_p >= alpha,
        rule=(
            f"joint MMD p-value >= {alpha:g} (got {joint_p:.3g}; permutation null of {n_shuffle}); "
            f"statistics with their own p-value < {alpha:g}: {', '.join(outside) or 'none'}"
        ),
        data=data,
        details={"joint_pvalue": joint_p, "joint_mmd": joint_mmd, "outside": outside},
    )


# --------------------------------------------------------------------------- probabilities


def reliability_check(
    predicted: Sequence[float] | np.ndarray,
    outcomes: Sequence[int] | np.ndarray,
    *,
    bins: int = 10,
    level: float = 0.95,
    bonferroni: bool = True,
) -> CheckResult:
    """Reliability of predicted probabilities against 0/1 outcomes, in equal-width bins.

    Each non-empty bin gets the mean prediction, the observed frequency and its exact
    (Clopper-Pearson) interval at ``level`` (with ``bonferroni``, at 1 - (1 - level) / k over
    the k non-empty bins). Passes when every bin's mean prediction lies inside its interval.
    """
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError("predicted and outcomes must be 1-D and of equal length")
    if np.any((p < 0) | (p > 1)) or not np.all(np.isin(y, (0, 1))):
        raise ValueError("predictions must be in [0, 1] and outcomes 0 or 1")
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    filled = len(np.unique(which))
    interval = 1 - (1 - level) / filled if bonferroni else level
    tail = (1 - interval) / 2
    rows = []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        if n == 0:
            continue
        k = int(y[sel].sum())
        lo = 0.0 if k == 0 else float(stats.beta.ppf(tail, k, n - k + 1))
        hi = 1.0 if k == n else float(stats.beta.ppf(1 - tail, k + 1, n - k))
        mp = float(p[sel].mean())
        rows.append(
            {
                "bin_low": edges[b],
                "bin_high": edges[b + 1],
                "n": n,
                "mean_predicted": mp,
                "observed": k / n,
                "interval_low": lo,
                "interval_high": hi,
                "inside": lo <= mp <= hi,
            }
        )
    data = pd.DataFrame(rows)
    return CheckResult(
        name="reliability",
        passed=bool(data["inside"].all()) if len(data) else True,
        rule=(
            f"in each non-empty bin of {bins} equal-width bins, the mean prediction lies in the {interval:.4g} "
            "Clopper-Pearson interval of the observed frequency"
            + (f" ({level:g} Bonferroni-adjusted over {filled} bins)" if bonferroni else "")
        ),
        data=data,
        details={"interval": interval},
    )


# --------------------------------------------------------------------------- together


def calibration_checks(
    ho: HeldOut, priors: Sequence[Prior], *, seed: int, obs_draws: pd.DataFrame | None = None
) -> dict[str, CheckResult]:
    """SBC, coverage, TARP and contraction on one set of held-out simulations (see :func:`held_out`)."""
    return {
        "sbc": sbc_check(ho, seed=seed),
        "coverage": coverage_check(ho),
        "tarp": tarp_check(ho, seed=seed),
        "contraction": contraction_check(priors, ho, obs_draws),
    }

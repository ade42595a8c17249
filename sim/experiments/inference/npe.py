"""Neural posterior estimation (NPE) on a reference table: an ensemble of normalising flows.

The simulator is not called here. The caller hands over a *reference table*: parameter draws
from the prior (one column per :class:`~sim.scenario.calibration.Prior`, by key path), the
summary statistics of one seeded simulation per draw (already on unbounded scales: log
counts, logit shares) and which simulations failed. Failed rows are excluded from training
explicitly and counted in the result; a non-failed row with a non-finite statistic is an
error, not something silently dropped.

Parameters are mapped to an unbounded space before training, so the fitted posterior cannot
put mass outside the prior's support:

* ``uniform(low, high)``: ``logit((v - low) / (high - low))``;
* ``loguniform(low, high)``: the same on ``log10 v`` between ``log10 low`` and ``log10 high``;
* ``lognormal``: ``log v``; ``normal``: unchanged (its support is the real line).

Both the mapped parameters and the statistics are z-scored with the table's means and
standard deviations (stored with the fit). Each member of the ensemble is an sbi ``NPE``
(NPE-C; single round, so a plain maximum-likelihood fit) with a normalising-flow density
estimator (``posterior_nn(model="nsf")`` by default), trained on CPU from its own seed; the
ensemble's posterior is the equal mixture of its members. Densities are reported in the
original parameter space (the flow's density times the Jacobian of the map), so
:meth:`NPEEnsemble.log_prob` and the highest-posterior-density point refer to parameter values.

Every seed is derived with :func:`sim.scenario.seeds.derive_seed` from the root seed the
caller gives. torch and sbi are imported only when needed; without them the functions raise
:class:`InferenceUnavailable` with one line naming the extra to install.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sim.scenario.calibration import Prior
from sim.scenario.seeds import derive_seed, generator

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "FORMAT",
    "INSTALL_HINT",
    "InferenceUnavailable",
    "NPEEnsemble",
    "NPESettings",
    "ParameterMap",
    "ReferenceTable",
    "fit_npe",
    "load_npe",
    "posterior_nn_for",
    "reference_table",
    "require_inference",
    "table_fingerprint",
]

#: The one line shown when torch or sbi is missing (the CLI maps the exception to exit 2).
INSTALL_HINT = "neural posterior estimation needs the 'inference' extra: pip install 'idlib-allegiance-sim[inference]'"

#: Version of the folder layout written by :meth:`NPEEnsemble.save`.
FORMAT = 1

_EPS = 1e-9  # shares are clipped to [eps, 1 - eps] before the logit


class InferenceUnavailable(ImportError):
    """torch or sbi cannot be imported: the 'inference' extra is not installed."""

    def __init__(self, message: str = INSTALL_HINT):
        super().__init__(message)


def require_inference() -> tuple[Any, Any]:
    """``(torch, sbi)``, or :class:`InferenceUnavailable` with one clear line."""
    try:
        torch = importlib.import_module("torch")
        sbi = importlib.import_module("sbi")
        importlib.import_module("sbi.inference")
        importlib.import_module("sbi.neural_nets")
    except ImportError:
        raise InferenceUnavailable() from None
    return torch, sbi


@contextlib.contextmanager
def _seeded_torch(seed: int) -> Iterator[Any]:
    """torch's global generator seeded with ``seed`` inside the block, restored after it."""
    torch, _ = require_inference()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield torch


class _QuietTracker:
    """An sbi ``Tracker`` that keeps nothing: sbi's default writes TensorBoard logs under ``./sbi-logs``."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Drop the metric (the trainer's own summary keeps the losses)."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Drop the metrics."""

    def log_params(self, params: dict[str, Any]) -> None:
        """Drop the parameters."""

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        """Drop the figure."""

    def flush(self) -> None:
        """Nothing to flush."""


# --------------------------------------------------------------------------- parameter map


@dataclass(frozen=True)
class ParameterMap:
    """The map of each prior's support onto the real line, with its log-Jacobian."""

    priors: tuple[Prior, ...]

    @property
    def names(self) -> list[str]:
        """Parameter key paths, in the order of the priors."""
        return [p.path for p in self.priors]

    def _range(self, p: Prior) -> tuple[float, float]:
        assert p.low is not None and p.high is not None
        if p.family == "loguniform":
            return math.log10(p.low), math.log10(p.high)
        return float(p.low), float(p.high)

    def inside(self, values: np.ndarray) -> np.ndarray:
        """Whether each row (n, d) of parameter values lies in the prior's support."""
        values = np.atleast_2d(np.asarray(values, dtype=float))
        ok = np.all(np.isfinite(values), axis=1)
        for j, p in enumerate(self.priors):
            v = values[:, j]
            if p.family in ("uniform", "loguniform"):
                ok &= (v >= p.low) & (v <= p.high)
            elif p.family == "lognormal":
                ok &= v > 0
        return ok

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Unbounded coordinates ``u`` of parameter values ``v`` (n, d)."""
        values = np.atleast_2d(np.asarray(values, dtype=float))
        out = np.empty_like(values)
        for j, p in enumerate(self.priors):
            v = values[:, j]
            if p.family in ("uniform", "loguniform"):
                lo, hi = self._range(p)
                w = np.log10(v) if p.family == "loguniform" else v
                s = np.clip((w - lo) / (hi - lo), _EPS, 1 - _EPS)
                out[:, j] = np.log(s) - np.log1p(-s)
            elif p.family == "lognormal":
                out[:, j] = np.log(v)
            else:
                out[:, j] = v
        return out

    def inverse(self, u: np.ndarray) -> np.ndarray:
        """Parameter values ``v`` of unbounded coordinates ``u`` (n, d); always inside the support."""
        u = np.atleast_2d(np.asarray(u, dtype=float))
        out = np.empty_like(u)
        for j, p in enumerate(self.priors):
            uj = u[:, j]
            if p.family in ("uniform", "loguniform"):
                lo, hi = self._range(p)
                w = lo + (hi - lo) / (1.0 + np.exp(-uj))
                w = np.clip(w, lo, hi)
                out[:, j] = np.clip(10.0**w, p.low, p.high) if p.family == "loguniform" else w
            elif p.family == "lognormal":
                out[:, j] = np.exp(uj)
            else:
                out[:, j] = uj
        return out

    def log_abs_det_forward(self, values: np.ndarray) -> np.ndarray:
        """``log |du/dv|`` summed over parameters, per row (n,); ``-inf`` rows are outside."""
        values = np.atleast_2d(np.asarray(values, dtype=float))
        total = np.zeros(values.shape[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            for j, p in enumerate(self.priors):
                v = values[:, j]
                if p.family in ("uniform", "loguniform"):
                    lo, hi = self._range(p)
                    w = np.log10(v) if p.family == "loguniform" else v
                    s = (w - lo) / (hi - lo)
                    # du/dw = 1 / (s (1 - s) (hi - lo)); dw/dv = 1 / (v ln 10) for loguniform
                    term = -np.log(s) - np.log1p(-s) - math.log(hi - lo)
                    if p.family == "loguniform":
                        term = term - np.log(v) - math.log(math.log(10.0))
                    total += term
                elif p.family == "lognormal":
                    total += -np.log(v)
        return np.where(np.isfinite(total), total, -np.inf)

    def prior_log_pdf(self, values: np.ndarray) -> np.ndarray:
        """The prior's log density in value units, summed over parameters, per row (n,); ``-inf`` outside.

        uniform: ``-log(high - low)``; loguniform: ``-log(v ln 10 (log10 high - log10 low))``;
        lognormal: ``ln v ~ Normal(ln mean, sd)``, so ``log N(ln v) - ln v``; normal: ``N(mean, sd)``.
        """
        values = np.atleast_2d(np.asarray(values, dtype=float))
        total = np.zeros(values.shape[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            for j, p in enumerate(self.priors):
                v = values[:, j]
                if p.family == "uniform":
                    total += -math.log(p.high - p.low)
                elif p.family == "loguniform":
                    lo, hi = self._range(p)
                    total += -np.log(v) - math.log(math.log(10.0)) - math.log(hi - lo)
                elif p.family == "lognormal":
                    z = (np.log(v) - math.log(p.mean)) / p.sd
                    total += -0.5 * z**2 - math.log(p.sd * math.sqrt(2 * math.pi)) - np.log(v)
                else:
                    z = (v - p.mean) / p.sd
                    total += -0.5 * z**2 - math.log(p.sd * math.sqrt(2 * math.pi))
        total = np.where(self.inside(values), total, -np.inf)
        return np.where(np.isfinite(total), total, -np.inf)


def _mixture_log_prob(lp: np.ndarray) -> np.ndarray:
    """The equal-weight mixture's log density from its members' (K, n) log densities."""
    top = np.max(lp, axis=0)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.mean(np.exp(lp - safe), axis=0))


# --------------------------------------------------------------------------- reference table


@dataclass(frozen=True)
class ReferenceTable:
    """The simulations kept for training and how many failed."""

    theta: pd.DataFrame  # parameter values of the kept (non-failed) rows, one column per prior
    x: pd.DataFrame  # their statistics, one column per statistic
    n_total: int
    n_failed: int

    @property
    def n_used(self) -> int:
        """Rows kept for training."""
        return len(self.theta)


def reference_table(
    priors: Sequence[Prior],
    theta: pd.DataFrame,
    x: pd.DataFrame,
    failed: str | Sequence[bool] | np.ndarray | pd.Series | None = "failed",
) -> ReferenceTable:
    """The training rows of a reference table: failed simulations excluded and counted.

    ``failed`` is a boolean column name (looked up in ``x``, then ``theta``; absent means no
    failure was recorded), a boolean sequence aligned with the rows, or ``None``. Statistics of
    failed rows may be anything (NaN usually); a kept row must have finite statistics and a
    parameter set inside the prior's support, or :class:`ValueError` says which rows do not.
    """
    names = [p.path for p in priors]
    if len(theta) != len(x):
        raise ValueError(f"theta has {len(theta)} rows but x has {len(x)}")
    missing = [n for n in names if n not in theta.columns]
    if missing:
        raise ValueError(f"theta has no column for the prior(s) {missing}")
    x = x.reset_index(drop=True)
    theta = theta.reset_index(drop=True)
    if isinstance(failed, str):
        if failed in x.columns:
            mask = x[failed].to_numpy(dtype=bool)
            x = x.drop(columns=[failed])
        elif failed in theta.columns:
            mask = theta[failed].to_numpy(dtype=bool)
        else:
            mask = np.zeros(len(x), dtype=bool)
    elif failed is None:
        mask = np.zeros(len(x), dtype=bool)
    else:
        mask = np.asarray(failed, dtype=bool)
        if mask.shape != (len(x),):
            raise ValueError(f"failed has shape {mask.shape}, the table has {len(x)} rows")
    keep = ~mask
    th = theta.loc[keep, names].astype(float).reset_index(drop=True)
    xs = x.loc[keep].astype(float).reset_index(drop=True)
    bad = ~np.all(np.isfinite(xs.to_numpy()), axis=1)
    if bad.any():
        rows = np.flatnonzero(keep)[bad][:5].tolist()
        raise ValueError(
            f"{int(bad.sum())} simulation(s) not marked failed have non-finite statistics (rows {rows}...): "
            "mark them failed or fix the statistics"
        )
    outside = ~ParameterMap(tuple(priors)).inside(th.to_numpy())
    if outside.any():
        rows = np.flatnonzero(keep)[outside][:5].tolist()
        raise ValueError(f"{int(outside.sum())} parameter set(s) lie outside the prior's support (rows {rows}...)")
    if len(th) < 10:
        raise ValueError(f"only {len(th)} successful simulations: too few to train on")
    return ReferenceTable(theta=th, x=xs, n_total=len(mask), n_failed=int(mask.sum()))


# --------------------------------------------------------------------------- the ensemble


@dataclass(frozen=True)
class NPESettings:
    """How each member of the ensemble is built and trained."""

    model: str = "nsf"  # sbi posterior_nn model: "nsf" or "maf"
    members: int = 3
    hidden_features: int = 50
    num_transforms: int = 5
    num_bins: int = 10
    training_batch_size: int = 200
    learning_rate: float = 5e-4
    validation_fraction: float = 0.1
    stop_after_epochs: int = 20
    max_num_epochs: int = 500

    def __post_init__(self) -> None:
        if self.model not in ("nsf", "maf"):
            raise ValueError(f"model must be 'nsf' or 'maf', not {self.model!r}")
        if self.members < 1:
            raise ValueError("an ensemble needs at least one member")


def _build_estimator(settings: NPESettings, n_params: int, n_stats: int) -> Any:
    """A fresh (untrained) density estimator of the settings' architecture (shapes only)."""
    torch, _ = require_inference()
    return posterior_nn_for(settings)(torch.zeros(2, n_params), torch.zeros(2, n_stats))


@dataclass
class NPEEnsemble:
    """A fitted NPE ensemble: the equal mixture of ``len(estimators)`` conditional flows."""

    priors: tuple[Prior, ...]
    statistics: list[str]
    settings: NPESettings
    seed: int
    x_mean: np.ndarray
    x_sd: np.ndarray
    u_mean: np.ndarray
    u_sd: np.ndarray
    estimators: list[Any]
    n_total: int
    n_failed: int
    n_used: int
    training: list[dict[str, Any]] = field(default_factory=list)  # per member: seed, epochs, validation loss
    fingerprint: str = ""  # of the priors, the settings, the seed and the training rows (table_fingerprint)

    # ---------------------------------------------------------------- coordinates

    @property
    def parameters(self) -> list[str]:
        """Parameter key paths, in the order of the priors."""
        return [p.path for p in self.priors]

    @property
    def map(self) -> ParameterMap:
        """The parameter map onto the real line."""
        return ParameterMap(self.priors)

    def _stats_matrix(self, x: Any) -> np.ndarray:
        """Statistics as an (m, s) array in the fit's column order."""
        if isinstance(x, pd.DataFrame):
            arr = x[self.statistics].to_numpy(dtype=float)
        elif isinstance(x, pd.Series | Mapping):
            arr = np.array([[float(x[s]) for s in self.statistics]])
        else:
            arr = np.atleast_2d(np.asarray(x, dtype=float))
        if arr.shape[1] != len(self.statistics):
            raise ValueError(f"expected {len(self.statistics)} statistics, got {arr.shape[1]}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("the statistics to condition on must be finite")
        return arr

    def _params_matrix(self, theta: Any) -> np.ndarray:
        if isinstance(theta, pd.DataFrame):
            return theta[self.parameters].to_numpy(dtype=float)
        if isinstance(theta, pd.Series | Mapping):
            return np.array([[float(theta[p]) for p in self.parameters]])
        return np.atleast_2d(np.asarray(theta, dtype=float))

    def _condition(self, x: Any) -> torch.Tensor:
        torch, _ = require_inference()
        z = (self._stats_matrix(x) - self.x_mean) / self.x_sd
        return torch.as_tensor(z, dtype=torch.float32)

    # ---------------------------------------------------------------- sampling

    def sample_many(self, xs: Any, n: int, seed: int) -> np.ndarray:
        """``n`` ensemble posterior draws for each of ``m`` statistic vectors: (n, m, d), value units.

        Each draw picks a member uniformly at random (the equal mixture); the members' flows
        are sampled under a torch generator seeded from ``seed``, so the result is a function
        of ``(xs, n, seed)`` alone.
        """
        cond = self._condition(xs)
        m, k = cond.shape[0], len(self.estimators)
        pick = generator(seed, "npe", "sample", "mixture").integers(0, k, size=(n, m))
        z = np.empty((n, m, len(self.priors)))
        for i, est in enumerate(self.estimators):
            mine = pick == i
            if not mine.any():
                continue
            with _seeded_torch(derive_seed(seed, "npe", "sample", "member", i)) as torch, torch.no_grad():
                draws = est.sample(torch.Size((n,)), condition=cond).double().numpy()
            z[mine] = draws[mine]
        u = z * self.u_sd + self.u_mean
        return self.map.inverse(u.reshape(-1, u.shape[-1])).reshape(u.shape)

    def sample(self, x_obs: Any, n: int, seed: int = 0) -> pd.DataFrame:
        """``n`` draws from the ensemble posterior at ``x_obs``, in value units (one column per prior)."""
        x = self._stats_matrix(x_obs)
        if x.shape[0] != 1:
            raise ValueError("sample() conditions on one statistic vector; use sample_many() for several")
        return pd.DataFrame(self.sample_many(x, n, seed)[:, 0, :], columns=self.parameters)

    def member_samples(self, x_obs: Any, n: int, seed: int = 0) -> list[pd.DataFrame]:
        """``n`` draws from each member's posterior at ``x_obs`` (value units)."""
        cond = self._condition(x_obs)
        out = []
        for i, est in enumerate(self.estimators):
            with _seeded_torch(derive_seed(seed, "npe", "member-sample", i)) as torch, torch.no_grad():
                z = est.sample(torch.Size((n,)), condition=cond[:1]).double().numpy()[:, 0, :]
            out.append(pd.DataFrame(self.map.inverse(z * self.u_sd + self.u_mean), columns=self.parameters))
        return out

    # ---------------------------------------------------------------- densities

    def member_log_probs(self, theta: Any, x_obs: Any) -> np.ndarray:
        """Each member's log density (value units) at the rows of ``theta``: (K, n); ``-inf`` outside."""
        torch, _ = require_inference()
        v = self._params_matrix(theta)
        inside = self.map.inside(v)
        u = self.map.forward(np.where(inside[:, None], v, self._safe_point()))
        z = (u - self.u_mean) / self.u_sd
        jac = self.map.log_abs_det_forward(np.where(inside[:, None], v, self._safe_point())) - np.log(self.u_sd).sum()
        cond = self._condition(x_obs)[:1]
        zt = torch.as_tensor(z, dtype=torch.float32)[:, None, :]
        out = np.empty((len(self.estimators), v.shape[0]))
        with torch.no_grad():
            for i, est in enumerate(self.estimators):
                out[i] = est.log_prob(zt, condition=cond).double().numpy()[:, 0] + jac
        out[:, ~inside] = -np.inf
        return out

    def _safe_point(self) -> np.ndarray:
        return self.map.inverse(np.zeros((1, len(self.priors))))[0]

    def log_prob(self, theta: Any, x_obs: Any) -> np.ndarray:
        """The ensemble's log posterior density (value units) at the rows of ``theta`` given ``x_obs``."""
        return _mixture_log_prob(self.member_log_probs(theta, x_obs))

    # ---------------------------------------------------------------- summaries

    def quantiles(
        self, x_obs: Any, q: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95), n: int = 4000, seed: int = 0
    ) -> pd.DataFrame:
        """Marginal posterior quantiles from ``n`` draws: one row per parameter, one column per level."""
        draws = self.sample(x_obs, n, seed)
        return draws.quantile(list(q)).T.rename_axis("parameter")

    def hpd_point(self, x_obs: Any, n: int = 4000, seed: int = 0) -> pd.Series:
        """The point estimate: of ``n`` posterior draws, the one of highest posterior density relative
        to the prior, by the least favourable member (the largest ``min_k log p_k(theta | x) - log p(theta)``).

        The ratio to the prior is the posterior's density in the prior's own probability coordinates
        (each parameter through its prior CDF, where the prior is flat), so the choice does not depend
        on how a parameter is written. The density in value units would not do: where the record leaves
        a parameter at its prior, a log-uniform prior's density ``1 / v`` alone sends the highest-density
        draw to the bottom of its range, and the log-Jacobian of the flow's bounded map does the same
        at both ends of every range. The least favourable member, not the ensemble mean: the largest
        ratio of a mean is where one member overshoots (on the Idlib calibration the members' log
        ratios at the mean's maximum ranged from 0.4 to 8.2). Where the record leaves parameters at
        their prior the chosen draw is, on them, an ordinary posterior draw. The draw's ensemble log
        density (value units) is attached as ``attrs["log_prob"]``, its log ratio as ``attrs["log_ratio"]``.
        """
        draws = self.sample(x_obs, n, seed)
        members = self.member_log_probs(draws, x_obs)
        lp = _mixture_log_prob(members)
        ratio = members.min(axis=0) - self.map.prior_log_pdf(self._params_matrix(draws))
        best = int(np.argmax(np.where(np.isfinite(ratio), ratio, -np.inf)))
        point = draws.iloc[best].rename("hpd")
        point.attrs["log_prob"] = float(lp[best])
        point.attrs["log_ratio"] = float(ratio[best])
        return point

    def disagreement(self, x_obs: Any, n: int = 2000, seed: int = 0) -> pd.DataFrame:
        """How much the members disagree at ``x_obs``, per parameter.

        Columns: each member's median, ``spread`` (largest minus smallest member median), the
        ensemble posterior's sd and ``relative_spread`` = spread / sd. A relative spread well
        below 1 means the members agree within the posterior's own uncertainty.
        """
        members = self.member_samples(x_obs, n, seed)
        ens = self.sample(x_obs, n, derive_seed(seed, "npe", "disagreement"))
        med = pd.DataFrame({f"member_{i}_median": m.median() for i, m in enumerate(members)})
        spread = med.max(axis=1) - med.min(axis=1)
        sd = ens.std()
        out = med.assign(spread=spread, posterior_sd=sd, relative_spread=spread / sd)
        return out.rename_axis("parameter")

    # ---------------------------------------------------------------- persistence

    def metadata(self) -> dict[str, Any]:
        """What :meth:`save` writes to ``npe.json`` (besides the state dicts)."""
        return {
            "format": FORMAT,
            "kind": "npe-ensemble",
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
                for p in self.priors
            ],
            "statistics": list(self.statistics),
            "settings": self.settings.__dict__,
            "seed": int(self.seed),
            "x_mean": self.x_mean.tolist(),
            "x_sd": self.x_sd.tolist(),
            "u_mean": self.u_mean.tolist(),
            "u_sd": self.u_sd.tolist(),
            "n_total": self.n_total,
            "n_failed": self.n_failed,
            "n_used": self.n_used,
            "training": self.training,
            "fingerprint": self.fingerprint,
            "members": [f"member_{i}.pt" for i in range(len(self.estimators))],
        }

    def save(self, folder: str | Path) -> Path:
        """Write the ensemble to ``folder``: ``npe.json`` and one torch state dict per member."""
        torch, _ = require_inference()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = self.metadata()
        for name, est in zip(meta["members"], self.estimators, strict=True):
            torch.save(est.state_dict(), folder / name)
        tmp = folder / "npe.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        tmp.replace(folder / "npe.json")
        return folder


def load_npe(folder: str | Path) -> NPEEnsemble:
    """An ensemble written by :meth:`NPEEnsemble.save`."""
    torch, _ = require_inference()
    folder = Path(folder)
    path = folder / "npe.json"
    if not path.is_file():
        raise FileNotFoundError(f"no fitted NPE ensemble in {folder} (npe.json missing)")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("kind") != "npe-ensemble" or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an NPE ensemble of format {FORMAT}")
    priors = tuple(Prior(**p) for p in meta["priors"])
    settings = NPESettings(**meta["settings"])
    estimators = []
    for name in meta["members"]:
        est = _build_estimator(settings, len(priors), len(meta["statistics"]))
        est.load_state_dict(torch.load(folder / name, map_location="cpu", weights_only=True))
        est.eval()
        estimators.append(est)
    return NPEEnsemble(
        priors=priors,
        statistics=list(meta["statistics"]),
        settings=settings,
        seed=int(meta["seed"]),
        x_mean=np.asarray(meta["x_mean"], dtype=float),
        x_sd=np.asarray(meta["x_sd"], dtype=float),
        u_mean=np.asarray(meta["u_mean"], dtype=float),
        u_sd=np.asarray(meta["u_sd"], dtype=float),
        estimators=estimators,
        n_total=int(meta["n_total"]),
        n_failed=int(meta["n_failed"]),
        n_used=int(meta["n_used"]),
        training=list(meta["training"]),
        fingerprint=str(meta.get("fingerprint", "")),
    )


# --------------------------------------------------------------------------- fitting


def table_fingerprint(priors: Sequence[Prior], table: ReferenceTable, settings: NPESettings, seed: int) -> str:
    """SHA-256 of what a fit depends on: priors, settings, seed, and the training rows with their columns.

    A saved ensemble whose :attr:`NPEEnsemble.fingerprint` equals the fingerprint of the current
    table, settings and seed can be reused instead of refitted.
    """
    h = hashlib.sha256()
    head = {
        "priors": [[p.path, p.family, p.low, p.high, p.mean, p.sd] for p in priors],
        "settings": settings.__dict__,
        "seed": int(seed),
        "theta": list(table.theta.columns),
        "x": list(table.x.columns),
        "rows": [table.n_total, table.n_failed],
    }
    h.update(json.dumps(head, sort_keys=True).encode("utf-8"))
    h.update(np.ascontiguousarray(table.theta.to_numpy(dtype=np.float64)).tobytes())
    h.update(np.ascontiguousarray(table.x.to_numpy(dtype=np.float64)).tobytes())
    return h.hexdigest()


def _sd(a: np.ndarray, what: str, names: Sequence[str]) -> np.ndarray:
    sd = a.std(axis=0)
    flat = [n for n, s in zip(names, sd, strict=True) if not s > 0]
    if flat:
        raise ValueError(f"{what} constant across the reference table: {flat}")
    return sd


def fit_npe(
    priors: Sequence[Prior],
    theta: pd.DataFrame,
    x: pd.DataFrame,
    *,
    seed: int,
    failed: str | Sequence[bool] | np.ndarray | pd.Series | None = "failed",
    settings: NPESettings | None = None,
) -> NPEEnsemble:
    """Fit an NPE ensemble to a reference table (see :func:`reference_table` for ``failed``).

    Member ``i`` is trained from ``derive_seed(seed, "npe", "member", i)`` (weights,
    validation split and batches all come from torch's generator seeded with it).
    """
    torch, _ = require_inference()
    from sbi.inference import NPE

    settings = settings or NPESettings()
    priors = tuple(priors)
    table = reference_table(priors, theta, x, failed)
    pmap = ParameterMap(priors)
    stats = list(table.x.columns)
    xv = table.x.to_numpy(dtype=float)
    u = pmap.forward(table.theta.to_numpy(dtype=float))
    x_mean, x_sd = xv.mean(axis=0), _sd(xv, "statistic(s)", stats)
    u_mean, u_sd = u.mean(axis=0), _sd(u, "parameter(s)", pmap.names)
    xz = torch.as_tensor((xv - x_mean) / x_sd, dtype=torch.float32)
    uz = torch.as_tensor((u - u_mean) / u_sd, dtype=torch.float32)

    estimators, training = [], []
    for i in range(settings.members):
        member_seed = derive_seed(seed, "npe", "member", i)
        with _seeded_torch(member_seed), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # no prior given (the table's draws are the prior); progress notes
            build = posterior_nn_for(settings)
            inference = NPE(
                prior=None, density_estimator=build, device="cpu", tracker=_QuietTracker(), show_progress_bars=False
            )
            inference.append_simulations(uz, xz)
            est = inference.train(
                training_batch_size=settings.training_batch_size,
                learning_rate=settings.learning_rate,
                validation_fraction=settings.validation_fraction,
                stop_after_epochs=settings.stop_after_epochs,
                max_num_epochs=settings.max_num_epochs,
            )
        est.eval()
        summary = inference._summary
        training.append(
            {
                "member": i,
                "seed": member_seed,
                "epochs": int(summary["epochs_trained"][-1]),
                "best_validation_loss": float(summary["best_validation_loss"][-1]),
            }
        )
        estimators.append(est)
    return NPEEnsemble(
        priors=priors,
        statistics=stats,
        settings=settings,
        seed=int(seed),
        x_mean=x_mean,
        x_sd=x_sd,
        u_mean=u_mean,
        u_sd=u_sd,
        estimators=estimators,
        n_total=table.n_total,
        n_failed=table.n_failed,
        n_used=table.n_used,
        training=training,
        fingerprint=table_fingerprint(priors, table, settings, seed),
    )


def posterior_nn_for(settings: NPESettings) -> Any:
    """The sbi ``posterior_nn`` builder of the settings (z-scoring off: it is done here)."""
    require_inference()
    from sbi.neural_nets import posterior_nn

    return posterior_nn(
        model=settings.model,
        z_score_theta="none",
        z_score_x="none",
        hidden_features=settings.hidden_features,
        num_transforms=settings.num_transforms,
        num_bins=settings.num_bins,
    )

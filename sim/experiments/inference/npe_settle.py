"""Which observation would settle it: the expected reduction in the posterior spread of the thesis
effect if an observable the record does not hold were recorded; and how reliable the thesis's
probabilities are on held-out simulations.

Steps (``sim settle <npe calibration folder>``), each resumable:

1. **Settle table** (``settle/table.parquet``, appended in parts of :data:`BATCH` rows): every row
   of the folder's reference table up to ``simulations`` is simulated again with its own parameters
   and run seed (so its statistics are the stored ones, which is checked and reported), keeping the
   *candidate observables* (:func:`candidate_values`) besides the targets; plus ``evaluations``
   draws of the folder's posterior (set ``posterior``), each simulated with a seed of its own. Every
   row also runs the thesis comparison (:data:`COMPARISON` on :data:`EFFECT`) under common random
   numbers (one seed for both policies, derived from the row's seed), so its **thesis effect** is
   one paired difference, the quantity ``sim thesis --posterior`` counts per draw.
2. **Effect emulator** (:class:`EffectEmulator`): a quadratic ridge regression of the paired effect
   on the parameters (on the unbounded scales of the NPE), fitted on the training rows; its
   cross-validated R^2 and residual sd are reported. The posterior spread of the thesis effect is
   the sd of the emulated effect over posterior draws: the part parameter uncertainty makes (the
   seed noise of one run no record can remove).
3. **Ranking** (:func:`rank_candidates`): one NPE on the record's statistics plus as many columns of
   pure noise as a candidate has (the baseline: a flow given more inputs fits differently, narrower
   when it overfits, which is not information) and one per candidate on the statistics plus the
   candidate's values (all periods), each trained on the same
   training rows with the same settings; at each posterior-set row, the spread of the effect with
   and without the candidate. The expected reduction is the mean over those rows, its Monte Carlo
   error the sd over rows / sqrt(rows). Other columns of pure noise are ranked with the candidates as the
   reference: a candidate not above it is not shown to help.
4. **Reliability of the thesis probabilities** (:func:`sim.analysis.settle.thesis_reliability`): at each held-out row of
   the reference table, the calibration's own ensemble gives P(effect > +ROPE) and P(effect < -ROPE)
   (the emulated effect over posterior draws, with the emulator's residual as the one-run noise);
   the row's own paired effect says whether it happened. Binned (:func:`reliability_check`): of the
   cases given P about 0.7, about 70% should have the effect.

Candidates are groups of columns ``c:<quantity>|<place>|<period>``: per resisting town (the thesis's
towns, the most populous first, at most ``max_towns``) the period means of cooperation with HTS and
protest participation, the share of days its council is independent and the share of days HTS holds
it; for the governorate, the period means of cooperation and protest, the share of councils
independent, returns in the period and HTS recruits by the period's end. Periods are calendar months
when the scenario has a ``start_date``, else blocks of 30 days. A group's values over all periods
are one candidate (a series one source could record).
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.experiments.comparisons import CONTROL, TREATMENT, Comparison
from sim.experiments.engine import Engine
from sim.experiments.inference.base import CalibrationConflict, Progress
from sim.experiments.inference.npe import NPESettings, ParameterMap
from sim.experiments.inference.npe_method import (
    condition_mask,
    load_reference,
    statistics_spec,
    transform_values,
)
from sim.experiments.inference.parts import PartTable
from sim.scenario.calibration import Calibration, Prior
from sim.scenario.seeds import derive_seed, generator

SETTLE = "settle"  # sub-folder of the settle table
BATCH = 40
EFFECT = "coop_resisting_home_mean"  # the headline outcome of the thesis
COMPARISON = Comparison(TREATMENT, CONTROL)
NOISE = "noise (reference)"
BASELINE_NOISE = "baseline noise"  # columns of the baseline fits (noise_columns)
REFERENCE_NOISE = "reference noise"  # columns of the noise reference candidate
CSV = "settle.csv"
FIGURE = "settle.png"
RELIABILITY = "thesis_reliability.json"
RELIABILITY_CSV = "thesis_reliability.csv"
SECTION = "## Which observation would settle it"

#: Town quantities: (label, towns-table column, how the period is reduced, transform).
TOWN_QUANTITIES = (
    ("cooperation", "coop_share", "mean", "logit"),
    ("protest", "protest_share", "mean", "logit"),
    ("council independent", "council_independent", "mean", "identity"),
    ("held by HTS", "controller", "hts", "identity"),
)
#: Governorate quantities: (label, timeseries column, reduction, transform).
GOVERNORATE_QUANTITIES = (
    ("cooperation", "coop_share", "mean", "logit"),
    ("protest", "protest_share", "mean", "logit"),
    ("councils independent", "councils_independent", "mean", "identity"),
    ("returns", "returns", "sum", "log1p"),
    ("HTS recruits", "hts_recruits_cum", "last", "log1p"),
)
GOVERNORATE = "governorate"


@dataclass(frozen=True)
class SettleBudget:
    """How much ``sim settle`` simulates and trains."""

    simulations: int = 400  # reference rows simulated again (training and held-out)
    evaluations: int = 60  # posterior draws simulated as records of the ranking
    draws: int = 400  # posterior draws per record
    members: int = 2
    max_epochs: int = 300
    max_towns: int = 8

    @classmethod
    def quick(cls) -> SettleBudget:
        """The quick budget (a few minutes on the small scenarios)."""
        return cls(simulations=300, evaluations=30, draws=200, members=1, max_epochs=200, max_towns=4)


# --------------------------------------------------------------------------- candidates


def periods(scenario: Any, days: int) -> list[tuple[str, int, int]]:
    """(label, first day, last day) of each period: calendar months with a start_date, else 30-day blocks."""
    if getattr(scenario, "start_date", None) is not None:
        dates = pd.date_range(scenario.start_date, periods=days, freq="D")
        months = dates.to_period("M")
        out = []
        for m in months.unique():
            idx = np.flatnonzero(months == m)
            out.append((str(m), int(idx[0]), int(idx[-1])))
        return out
    return [(f"d{a}-{min(a + 29, days - 1)}", a, min(a + 29, days - 1)) for a in range(0, days, 30)]


def candidate_towns(scenario: Any, max_towns: int) -> list[str]:
    """The thesis's towns (initial stance resisting), the most populous first, at most ``max_towns``."""
    towns = [t for t in scenario.towns if str(getattr(t, "stance", "")) == "resisting"]
    towns.sort(key=lambda t: (-int(t.persons), t.name))
    return [t.name for t in towns[:max_towns]]


def candidate_groups(towns: Sequence[str], labels: Sequence[str]) -> dict[str, list[str]]:
    """Candidate name -> its columns (one per period)."""
    out: dict[str, list[str]] = {}
    for town in towns:
        for q, *_ in TOWN_QUANTITIES:
            out[f"{q}, {town}"] = [f"c:{q}|{town}|{p}" for p in labels]
    for q, *_ in GOVERNORATE_QUANTITIES:
        out[f"{q}, {GOVERNORATE}"] = [f"c:{q}|{GOVERNORATE}|{p}" for p in labels]
    return out


def _reduce(values: np.ndarray, how: str) -> float:
    if not len(values):
        return math.nan
    if how == "sum":
        return float(np.sum(values))
    if how == "last":
        return float(values[-1])
    return float(np.mean(values))


def candidate_values(
    frames: dict[str, pd.DataFrame], towns: Sequence[str], spans: Sequence[tuple[str, int, int]]
) -> dict[str, float]:
    """The candidate observables of one run (on their statistic scales), by column."""
    out: dict[str, float] = {}
    tw, ts = frames["towns"], frames["timeseries"]
    for town in towns:
        sub = tw[tw["town"] == town]
        for q, col, how, tr in TOWN_QUANTITIES:
            for label, a, b in spans:
                w = sub[(sub["day"] >= a) & (sub["day"] <= b)]
                v = (w[col].astype(str) == "hts").to_numpy(float) if how == "hts" else w[col].to_numpy(float)
                out[f"c:{q}|{town}|{label}"] = float(transform_values(tr, _reduce(v, "mean")))
    for q, col, how, tr in GOVERNORATE_QUANTITIES:
        for label, a, b in spans:
            w = ts[(ts["day"] >= a) & (ts["day"] <= b)]
            out[f"c:{q}|{GOVERNORATE}|{label}"] = float(transform_values(tr, _reduce(w[col].to_numpy(float), how)))
    return out


# --------------------------------------------------------------------------- the simulations


def settle_task(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Engine model function: one row of the settle table.

    The scenario with the row's parameters runs with the row's seed (targets and candidates), then
    the control and treatment policies run with one seed derived from it (the paired effect).
    """
    from pydantic import ValidationError

    from sim.run.outcomes import compute_outcomes
    from sim.run.simulate import simulate
    from sim.scenario.loader import set_path
    from sim.scenario.schema import ObservedFigure, Scenario

    record = context.get("record")
    if record is not None:
        figures: list[Any] = [record.entry(i) for i in context["ids"]]
    else:
        figures = [ObservedFigure.model_validate(f) for f in context["figures"]]
    data = copy.deepcopy(context["base"])
    for path, v in task["params"].items():
        set_path(data, path.split("."), float(v))
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"invalid parameters: {e.errors()[0].get('msg', 'invalid')}") from None
    seed = int(task["seed"])
    result = simulate(sc, seed, household_agents=False)
    measure = context["measure"]
    out: dict[str, Any] = {
        f"t:{getattr(f, 'id', None) or f.name}": float(measure(f, sc, result.frames, record)) for f in figures
    }
    out.update(candidate_values(result.frames, context["towns"], context["periods"]))
    paired = derive_seed(seed, "settle", "thesis")
    effect = {}
    for policy in (COMPARISON.treatment, COMPARISON.control):
        d = copy.deepcopy(data)
        d["air_campaign"]["policy"] = policy
        r = simulate(Scenario.model_validate(d), paired, household_agents=False)
        effect[policy] = compute_outcomes(r.timeseries, [EFFECT], context["window"])[EFFECT]
    out["effect"] = float(effect[COMPARISON.treatment] - effect[COMPARISON.control])
    return out


def settle_store(folder: str | Path) -> PartTable:
    """The folder's settle table."""
    return PartTable(Path(folder) / SETTLE, "table", key=("set", "draw"))


def _context(cal: Calibration, measure: Any, towns: list[str], spans: list[tuple[str, int, int]]) -> dict[str, Any]:
    sc = cal.scenario.scenario
    return {
        "model": settle_task,
        "measure": measure,
        "base": cal.base_config(),
        "record": cal.record,
        "ids": [t.name for t in cal.targets],
        "figures": [t.figure.model_dump(mode="json") for t in cal.targets if t.figure is not None],
        "towns": towns,
        "periods": spans,
        "window": sc.output.summary_window_days,
    }


def _simulate(engine: Engine, context: dict[str, Any], rows: pd.DataFrame, paths: list[str], cal: Calibration):
    tasks = (
        (
            {
                "run": i,
                "point": i,
                "replicate": 0,
                "seed": int(r["seed"]),
                "params": {p: float(r[p]) for p in paths},
                "overrides": {},
            },
            context,
        )
        for i, r in enumerate(rows.to_dict("records"))
    )
    results: dict[int, dict[str, Any]] = {}
    for row in engine.imap(tasks):
        ok = row["status"] == "ok"
        results[int(row["run"])] = {
            "values": row["values"] if ok else {},
            "error": None if ok else str(row.get("error")),
        }
    spec = statistics_spec(cal)
    out = []
    for i in range(len(rows)):
        vals, error = results[i]["values"], results[i]["error"]
        rec: dict[str, Any] = {}
        if error is None:
            for s in spec:
                rec[s["column"]] = float(transform_values(s["transform"], vals.get(f"t:{s['target']}", math.nan)))
            rec.update({k: float(v) for k, v in vals.items() if k.startswith("c:") or k == "effect"})
            bad = [k for k, v in rec.items() if not math.isfinite(v)]
            if bad:
                error = f"no finite value of {bad[0]!r}"
        out.append({"failed": error is not None, "error": error or "", **rec})
    return pd.DataFrame(out)


def grow_settle(
    cal: Calibration,
    folder: Path,
    engine: Engine,
    measure: Any,
    budget: SettleBudget,
    *,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Simulate the settle table's missing rows; (the table, its description with ``simulated``: the
    rows this call simulated, the others being resumed from ``settle/table.parquet``)."""
    from sim.experiments.inference.folder import load_calibration_folder
    from sim.run.store import write_json_atomic

    stored = load_calibration_folder(folder)
    reference, rdoc = load_reference(folder)
    # rows that meet the record's interval entries, as the fit's own (npe_method.condition_mask)
    reference = reference[~reference["failed"].to_numpy(bool) & condition_mask(reference, rdoc["statistics"])]
    paths = [p.path for p in cal.priors]
    sc = cal.scenario.scenario
    spans = periods(sc, int(cal.days or sc.days))
    towns = candidate_towns(sc, budget.max_towns)
    doc = {
        "reference_fingerprint": cal.reference_fingerprint(),
        "calibration_id": stored.calibration_id,
        "towns": towns,
        "periods": [list(s) for s in spans],
        "effect": EFFECT,
        "comparison": COMPARISON.label,
        "row_rule": "set 'reference': the reference table's row (parameters, run seed); set 'posterior': "
        "posterior draw j with run seed derive_seed(seed, 'settle posterior', 'run', j); the paired comparison "
        "of a row runs both policies with derive_seed(run seed, 'settle', 'thesis')",
    }
    marker = folder / SETTLE / "settle.json"
    if marker.exists():
        old = json.loads(marker.read_text(encoding="utf-8"))
        if any(old.get(k) != doc[k] for k in ("reference_fingerprint", "calibration_id", "towns", "periods")):
            raise CalibrationConflict(
                f"{marker}: the settle table was simulated for another calibration, towns or periods; "
                "re-run with --fresh to discard it"
            )
    else:
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(doc, marker)
    context = _context(cal, measure, towns, spans)
    ref = reference.sort_values("draw").head(budget.simulations)
    ref = ref.assign(set="reference")[["set", "draw", "seed", "split", *paths]]
    post = stored.posterior
    post = post[post["generation"] == post["generation"].max()].head(budget.evaluations).reset_index(drop=True)
    post = pd.DataFrame(
        {
            "set": "posterior",
            "draw": np.arange(len(post), dtype=np.int64),
            "seed": [derive_seed(cal.seed, "settle posterior", "run", j) for j in range(len(post))],
            "split": math.nan,
            **{p: post[p].to_numpy(float) for p in paths},
        }
    )
    wanted = pd.concat([ref, post], ignore_index=True)
    store = settle_store(folder)
    done = store.load()
    have = set(zip(done["set"], done["draw"], strict=True)) if len(done) else set()
    todo = wanted[[(s, d) not in have for s, d in zip(wanted["set"], wanted["draw"], strict=True)]]
    t0 = time.perf_counter()
    for start in range(0, len(todo), BATCH):
        rows = todo.iloc[start : start + BATCH].reset_index(drop=True)
        part = pd.concat([rows, _simulate(engine, context, rows, paths, cal)], axis=1)
        store.append(part)
        if progress is not None:
            progress(
                f"settle table: {len(have) + start + len(rows)} of {len(wanted)} rows "
                f"(elapsed {time.perf_counter() - t0:.0f} s)"
            )
    table = store.compact()
    keys = set(zip(wanted["set"], wanted["draw"], strict=True))
    table = table[[(s, d) in keys for s, d in zip(table["set"], table["draw"], strict=True)]].reset_index(drop=True)
    return table, {**doc, "simulated": len(todo)}


# --------------------------------------------------------------------------- the effect emulator


@dataclass
class EffectEmulator:
    """Quadratic ridge regression of the paired thesis effect on the parameters (unbounded, z-scored)."""

    pmap: ParameterMap
    mean: np.ndarray
    sd: np.ndarray
    coef: np.ndarray
    penalty: float
    cv_r2: float
    residual_sd: float
    n: int
    residuals: np.ndarray  # the cross-validated residuals, sorted (the effect's spread around the emulator)

    def exceed(self, theta_mu: np.ndarray, threshold: float, above: bool) -> np.ndarray:
        """P(effect > threshold) (``above``) or P(effect < threshold) of one seeded run at emulated means
        ``theta_mu``: the share of cross-validated residuals that carry the mean across the threshold.
        Empirical, not Gaussian: the paired effect's spread is skewed (a long tail toward large rises)."""
        r = self.residuals
        if above:  # mu + r > threshold  <=>  r > threshold - mu
            return 1.0 - np.searchsorted(r, threshold - theta_mu, side="right") / len(r)
        return np.searchsorted(r, threshold - theta_mu, side="left") / len(r)

    @staticmethod
    def _features(z: np.ndarray) -> np.ndarray:
        d = z.shape[1]
        cols = [np.ones(len(z)), *[z[:, i] for i in range(d)]]
        cols += [z[:, i] * z[:, j] for i in range(d) for j in range(i, d)]
        return np.column_stack(cols)

    @classmethod
    def fit(cls, priors: Sequence[Prior], theta: np.ndarray, effect: np.ndarray, seed: int) -> EffectEmulator:
        """Fit with the ridge penalty of least 5-fold cross-validated error (grid 1e-4..1e2)."""
        pmap = ParameterMap(tuple(priors))
        u = pmap.forward(theta)
        mean, sd = u.mean(axis=0), u.std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        f = cls._features((u - mean) / sd)
        y = np.asarray(effect, dtype=float)
        folds = generator(seed, "settle emulator folds").permutation(len(y)) % 5
        best = (math.inf, 1.0, None)
        for lam in 10.0 ** np.arange(-4, 3):
            pred = np.empty_like(y)
            for k in range(5):
                tr, te = folds != k, folds == k
                pred[te] = f[te] @ _ridge(f[tr], y[tr], lam)
            err = float(np.mean((pred - y) ** 2))
            if err < best[0]:
                best = (err, float(lam), pred)
        err, lam, pred = best
        var = float(np.var(y))
        return cls(
            pmap=pmap,
            mean=mean,
            sd=sd,
            coef=_ridge(f, y, lam),
            penalty=lam,
            cv_r2=1 - err / var if var > 0 else math.nan,
            residual_sd=math.sqrt(err),
            n=len(y),
            residuals=np.sort(y - pred),
        )

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        """Emulated effect at parameter values (n, d)."""
        z = (self.pmap.forward(theta) - self.mean) / self.sd
        return self._features(z) @ self.coef


def _ridge(f: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    pen = lam * np.eye(f.shape[1])
    pen[0, 0] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(f.T @ f + pen, f.T @ y)


# --------------------------------------------------------------------------- the ranking


def noise_columns(table: pd.DataFrame, seed: int, label: str, k: int) -> pd.DataFrame:
    """``k`` columns ``<label>:<j>`` of standard normal noise, each row's from ``(seed, label, set, draw, j)``."""
    keys = list(zip(table["set"], table["draw"].astype(int), strict=True))
    return pd.DataFrame(
        {
            f"{label}:{j}": [float(generator(seed, "settle noise", label, s, d, j).standard_normal()) for s, d in keys]
            for j in range(k)
        },
        index=table.index,
    )


def _fit(priors, theta: pd.DataFrame, x: pd.DataFrame, settings: NPESettings, seed: int):
    from sim.experiments.inference.npe import fit_npe

    return fit_npe(priors, theta, x, seed=seed, failed=None, settings=settings)


def effect_spread(ens: Any, x: pd.DataFrame, effect: Callable[[np.ndarray], np.ndarray], draws: int, seed: int):
    """The sd of the emulated effect over ``draws`` posterior draws at each row of ``x``: (m,)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        th = ens.sample_many(x[ens.statistics], draws, seed)  # (n, m, d)
    n, m, d = th.shape
    e = effect(th.reshape(-1, d)).reshape(n, m)
    return e.std(axis=0, ddof=1)


def rank_candidates(
    priors: Sequence[Prior],
    train: pd.DataFrame,
    evaluate: pd.DataFrame,
    statistics: list[str],
    groups: dict[str, list[str]],
    effect: Callable[[np.ndarray], np.ndarray],
    *,
    settings: NPESettings,
    seed: int,
    draws: int,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Expected reduction in the posterior sd of the effect per candidate group, best first.

    ``train`` holds the parameters (one column per prior), ``statistics`` and every group's columns
    for the training simulations; ``evaluate`` the statistics and columns of the records the
    reduction is averaged over. A group whose columns are constant over ``train`` is reported as
    such (it cannot inform) and not fitted.
    """
    paths = [p.path for p in priors]
    fit_seed = derive_seed(seed, "settle fit")
    sample_seed = derive_seed(seed, "settle sample")
    baselines: dict[int, np.ndarray] = {}

    def baseline(k: int) -> np.ndarray:
        # the record's statistics plus k columns of pure noise: the same inputs' count as a candidate of k
        # columns, so a flow's fit to more inputs (narrower when overfitted) is not counted as information
        if k not in baselines:
            cols = [f"{BASELINE_NOISE}:{j}" for j in range(k)]
            ens = _fit(priors, train[paths], train[[*statistics, *cols]], settings, fit_seed)
            baselines[k] = effect_spread(ens, evaluate, effect, draws, sample_seed)
        return baselines[k]

    rows = []
    for i, (name, cols) in enumerate(groups.items()):
        vary = [c for c in cols if float(train[c].std()) > 0]
        if not vary:
            rows.append({"candidate": name, "columns": len(cols), "note": "constant in every simulation"})
            continue
        sd0 = baseline(len(vary))
        ens = _fit(priors, train[paths], train[[*statistics, *vary]], settings, fit_seed)
        sd1 = effect_spread(ens, evaluate, effect, draws, sample_seed)
        red = sd0 - sd1
        rows.append(
            {
                "candidate": name,
                "columns": len(vary),
                "sd_without": float(sd0.mean()),
                "sd_with": float(sd1.mean()),
                "reduction": float(red.mean()),
                "mcse": float(red.std(ddof=1) / math.sqrt(len(red))) if len(red) > 1 else math.nan,
                "relative_reduction": float(red.mean() / sd0.mean()) if sd0.mean() > 0 else math.nan,
                "note": "",
            }
        )
        if progress is not None:
            progress(f"settle: candidate {i + 1} of {len(groups)} ({name}): reduction {red.mean():+.4f}")
    out = pd.DataFrame(rows)
    for c in ("sd_without", "sd_with", "reduction", "mcse", "relative_reduction"):
        if c not in out:
            out[c] = math.nan
    out = out.sort_values("reduction", ascending=False, na_position="last").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[
        ["rank", "candidate", "columns", "reduction", "mcse", "relative_reduction", "sd_without", "sd_with", "note"]
    ]

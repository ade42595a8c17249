"""``budget.method: npe``: neural posterior estimation on a stored, resumable reference table.

Steps, each resumable and each reusing what the folder already holds:

1. **Reference table** (``reference/table.parquet``, appended in atomically written parts of
   :data:`BATCH` rows, :class:`~sim.experiments.inference.parts.PartTable`): row ``i`` is the
   prior draw ``draw_prior(priors, 1, seed, "npe reference", i)`` simulated once with the run seed
   ``derive_seed(seed, "npe reference", "run", i)`` (recorded in the row), so a row depends only on
   the root seed and ``i``: serial, parallel, interrupted and resumed runs give the same table,
   and a larger ``budget.simulations`` appends rows to it. A simulation that fails (an exception, or
   a target with no finite value) is kept with ``failed = True`` and its ``error``; it is left out
   of training and counted, never dropped. ``split`` (a uniform from ``(seed, "npe split", i)``)
   holds a row out of training when it is below ``budget.held_out``.
2. **Statistics**: each calibration target's simulated value on an unbounded scale, the transform
   chosen from the figure's kind (:func:`statistic_transform`): counts (displacements, killed,
   hosted displaced) ``log1p``; shares (arrival, cooperation) ``logit`` of the share clipped to
   ``[0.001, 0.999]``; yes/no figures (council independent, protest present) kept as 0/1. Raw
   values of every target (``v:<name>``) and the statistics (``s:<name>``) are both stored.
   Validation targets never enter the statistics.
   A calibration target whose record is an **interval** (a range or a bound, such as "mainly
   toward": at least half) is a **condition**, not a statistic: its midpoint is not an
   observation the record makes, and conditioning a density estimator on it asks the simulator
   for a value it may never produce. The fit and every check use only the rows whose simulated
   value lies in the record's tolerance interval (:meth:`~sim.scenario.calibration.Target.tolerance_interval`,
   the rule ``record.csv`` judges agreement by), so the posterior is ``p(theta | statistics,
   every interval entry met)``: NPE trained on draws from the joint restricted to that event
   (:func:`condition_mask`). Rows outside stay in the table, counted, for a later record.
3. **Fit** (:func:`sim.experiments.inference.npe.fit_npe`) on the training rows, saved in ``npe/``
   and reused while the training rows, the settings and the seed are unchanged (their fingerprint).
4. **Posterior**: ``budget.posterior_samples`` ensemble draws at the record, written as the
   folder's posterior table (generation 0, equal weights), and the draw of highest density relative to the prior
   (:meth:`~sim.experiments.inference.npe.NPEEnsemble.hpd_point`) in ``npe_point.json`` (what
   ``--apply`` writes into the scenario).

The checks before belief (SBC, coverage, TARP, contraction, misspecification, ensemble
disagreement) run on the held-out rows in :mod:`sim.analysis.npe_checks`, which writes them into
the report.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.experiments.engine import Engine
from sim.experiments.inference.base import CalibrationConflict, CalibrationFailed, Progress, SamplerResult
from sim.experiments.inference.parts import PartTable
from sim.experiments.inference.priors import draw_prior
from sim.experiments.inference.targets import Measure, run_seeds, target_task
from sim.run.store import write_json_atomic
from sim.scenario.calibration import Calibration, Target
from sim.scenario.seeds import derive_seed, generator

TITLE = "neural posterior estimation"
STREAM = "npe reference"
REFERENCE = "reference"  # sub-folder of the reference table
NPE_FOLDER = "npe"  # sub-folder of the fitted ensemble
POINT = "npe_point.json"
STATISTICS = "statistics.json"  # in reference/: the transforms and the record's statistics
BATCH = 40  # rows per part (what a kill can lose)
SHARE_CLIP = 1e-3
COUNT_KINDS = ("displacements", "killed", "hosted_displaced")
SHARE_KINDS = ("arrival_share", "cooperation_share")
BINARY_KINDS = ("council_independent", "protest_present")


# --------------------------------------------------------------------------- statistics


def statistic_transform(t: Target) -> str:
    """The transform of a target's simulated value onto an unbounded scale, from its kind (and unit)."""
    kind = t.kind
    if not t.numeric:
        return "binary"  # a category: the value is its agreement, 1 or 0
    if t.entry is not None and (kind == "arrival_share" or getattr(t.entry, "unit", None) == "share"):
        return "logit"
    if t.entry is not None:
        return "log1p"  # record counts: persons, deaths, strikes, returns, fighters killed, clashes
    if kind in COUNT_KINDS:
        return "log1p"
    if kind in SHARE_KINDS:
        return "logit"
    if kind in BINARY_KINDS:
        return "binary"
    return "identity"


TRANSFORM_TEXT = {
    "log1p": "log(1 + count)",
    "logit": f"logit(share clipped to [{SHARE_CLIP:g}, {1 - SHARE_CLIP:g}])",
    "binary": "kept as 0/1 (yes/no figure)",
    "identity": "unchanged",
}


def transform_values(kind: str, values: np.ndarray | float) -> np.ndarray:
    """``values`` on the statistic's scale (NaN stays NaN)."""
    v = np.asarray(values, dtype=float)
    if kind == "log1p":
        with np.errstate(invalid="ignore"):
            return np.log1p(np.maximum(v, 0.0))
    if kind == "logit":
        c = np.clip(v, SHARE_CLIP, 1 - SHARE_CLIP)
        return np.log(c) - np.log1p(-c)
    return v


def observed_value(t: Target, kind: str) -> float:
    """The record as one value: a range's midpoint; a bound (at least / at most), the bound itself (the
    value the record allows that lies nearest the other side); otherwise the recorded value."""
    if t.entry is not None:
        return float(t.recorded)  # a range's middle; 1 for a recorded category
    f = t.figure
    assert f is not None
    if f.range is not None:
        return float(f.range[0] + f.range[1]) / 2
    return float(f.value)


def is_condition(t: Target) -> bool:
    """Whether a calibration target enters the fit as a condition (its record is an interval: a range
    or a bound) rather than as a statistic (a recorded value with its uncertainty, or a category)."""
    if not t.numeric:
        return False
    lo, hi = t.record_interval()
    return not (lo == hi)


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def statistics_spec(cal: Calibration) -> list[dict[str, Any]]:
    """Per calibration target: statistic column, transform, recorded value and its statistic; ``role``
    ``statistic`` (an input of the flows, conditioned on at ``statistic``) or ``condition`` (rows
    are kept when the simulated value lies in ``[low, high]``, the record's tolerance interval;
    ``None``: unbounded)."""
    out = []
    for t in cal.calibration_targets:
        kind = statistic_transform(t)
        rec = observed_value(t, kind)
        item: dict[str, Any] = {
            "target": t.name,
            "column": f"s:{t.name}",
            "kind": t.kind,
            "transform": kind,
            "transform_text": TRANSFORM_TEXT[kind],
            "comparison": t.figure.comparison if t.figure is not None else t.coverage,
            "recorded": rec,
            "statistic": float(transform_values(kind, rec)),
            "role": "statistic",
        }
        if is_condition(t):
            lo, hi = t.tolerance_interval()
            item.update(role="condition", low=_finite_or_none(lo), high=_finite_or_none(hi))
        out.append(item)
    return out


def statistic_columns(spec: list[dict[str, Any]]) -> list[str]:
    """The statistics' columns (the flows' inputs), conditions left out."""
    return [s["column"] for s in spec if s.get("role", "statistic") == "statistic"]


def conditions(spec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The interval entries the rows are restricted to."""
    return [s for s in spec if s.get("role") == "condition"]


def condition_mask(rows: pd.DataFrame, spec: list[dict[str, Any]]) -> np.ndarray:
    """Rows whose simulated value of every condition lies in its tolerance interval (the test runs on
    the statistic column: each transform is monotone, so the interval maps onto its own scale)."""
    keep = np.ones(len(rows), dtype=bool)
    for c in conditions(spec):
        s = rows[c["column"]].to_numpy(dtype=float)
        lo = -math.inf if c["low"] is None else float(transform_values(c["transform"], c["low"]))
        hi = math.inf if c["high"] is None else float(transform_values(c["transform"], c["high"]))
        with np.errstate(invalid="ignore"):
            keep &= (s >= lo) & (s <= hi)
    return keep


def condition_text(spec: list[dict[str, Any]]) -> str:
    """The conditions in words (empty when there are none)."""
    parts = []
    for c in conditions(spec):
        lo = "-inf" if c["low"] is None else f"{c['low']:.4g}"
        hi = "inf" if c["high"] is None else f"{c['high']:.4g}"
        parts.append(f"{c['target']} in [{lo}, {hi}]")
    return "; ".join(parts)


# --------------------------------------------------------------------------- the reference table


def reference_table(folder: str | Path) -> PartTable:
    """The folder's reference table (``reference/table.parquet`` and its parts)."""
    return PartTable(Path(folder) / REFERENCE, "table", key=("draw",))


def reference_rows(cal: Calibration, start: int, stop: int) -> pd.DataFrame:
    """Rows ``start..stop-1`` before simulation: draw, run seed, split and the prior draw."""
    seeds = run_seeds(cal.seed, STREAM, start, stop)
    thetas = [draw_prior(cal.priors, 1, cal.seed, STREAM, i) for i in range(start, stop)]
    split = [float(generator(cal.seed, "npe split", i).random()) for i in range(start, stop)]
    head = pd.DataFrame({"draw": np.arange(start, stop, dtype=np.int64), "seed": seeds, "split": split})
    return pd.concat([head, pd.concat(thetas, ignore_index=True)], axis=1)


def _simulate(engine: Engine, cal: Calibration, measure: Measure, rows: pd.DataFrame) -> pd.DataFrame:
    """Simulate ``rows``; every target's value, failed and error per row (in row order)."""
    context = {
        "model": target_task,
        "measure": measure,
        "base": cal.base_config(),
        "record": cal.record,
        "ids": [t.name for t in cal.targets],
        "figures": [t.figure.model_dump(mode="json") for t in cal.targets if t.figure is not None],
    }
    paths = [p.path for p in cal.priors]
    tasks = (
        (
            {
                "run": int(r["draw"]),
                "point": int(r["draw"]),
                "replicate": 0,
                "seed": int(r["seed"]),
                "params": {p: float(r[p]) for p in paths},
                "overrides": {},
            },
            context,
        )
        for r in rows.to_dict("records")
    )
    results: dict[int, dict[str, Any]] = {}
    for row in engine.imap(tasks):
        ok = row["status"] == "ok"
        values = row["values"] if ok else {}
        results[int(row["run"])] = {
            "values": {t.name: float(values.get(t.name, math.nan)) for t in cal.targets},
            "error": None if ok else str(row.get("error") or "failed"),
        }
    spec = statistics_spec(cal)
    out = []
    for d in rows["draw"].astype(int):
        r = results[d]
        vals, error = r["values"], r["error"]
        if error is None:
            bad = [t.name for t in cal.calibration_targets if not math.isfinite(vals[t.name])]
            if bad:
                error = f"no finite value of the target {bad[0]!r} (invalid parameters or nothing to measure)"
        rec: dict[str, Any] = {"failed": error is not None, "error": error or ""}
        rec.update({f"v:{k}": v for k, v in vals.items()})
        for s in spec:
            rec[s["column"]] = float(transform_values(s["transform"], vals[s["target"]]))
        out.append(rec)
    return pd.DataFrame(out)


def grow_reference(
    cal: Calibration,
    folder: Path,
    engine: Engine,
    measure: Measure,
    n: int,
    *,
    progress: Progress | None = None,
    max_minutes: float | None = None,
) -> tuple[pd.DataFrame, int, str]:
    """Simulate rows until the table holds ``n`` (or ``max_minutes`` pass); the table's first ``n``
    rows, how many rows were stored before, and why it stopped."""
    store = reference_table(folder)
    marker = Path(folder) / REFERENCE / "reference.json"
    fp = cal.reference_fingerprint()
    if marker.exists():
        stored = json.loads(marker.read_text(encoding="utf-8"))
        if stored.get("reference_fingerprint") != fp:
            raise CalibrationConflict(
                f"{marker}: the reference table was simulated for other priors, targets, scenario, scale or seed; "
                "re-run with --fresh to discard it"
            )
    else:
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            {
                "reference_fingerprint": fp,
                "seed": cal.seed,
                "stream": STREAM,
                "row_rule": f"row i: draw_prior(priors, 1, seed, {STREAM!r}, i), run seed "
                f"derive_seed(seed, {STREAM!r}, 'run', i), split uniform from (seed, 'npe split', i)",
            },
            marker,
        )
    done = store.load()
    size = int(done["draw"].max()) + 1 if len(done) else 0
    resumed_from = len(done)
    t0 = time.perf_counter()
    stop = f"simulations ({n})"
    while size < n:
        if max_minutes is not None and (time.perf_counter() - t0) / 60 >= max_minutes:
            stop = f"max_minutes ({max_minutes:g}): {size} of {n} simulations"
            break
        rows = reference_rows(cal, size, min(n, size + BATCH))
        part = pd.concat([rows, _simulate(engine, cal, measure, rows)], axis=1)
        store.append(part)
        size += len(part)
        if progress is not None:
            progress(
                f"npe reference table: {size} of {n} simulations ({int(part['failed'].sum())} failed in this part), "
                f"elapsed {time.perf_counter() - t0:.0f} s"
            )
    table = store.compact()
    table = table[table["draw"] < n].reset_index(drop=True)
    write_json_atomic(statistics_spec_doc(cal), Path(folder) / REFERENCE / STATISTICS)
    return table, resumed_from, stop


def statistics_spec_doc(cal: Calibration) -> dict[str, Any]:
    """``reference/statistics.json``: the statistics, their transforms and the record's values."""
    return {"statistics": statistics_spec(cal), "parameters": [p.path for p in cal.priors]}


def load_reference(folder: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A folder's reference table (as used by the last fit) and its statistics document."""
    folder = Path(folder)
    table = reference_table(folder).load()
    doc = json.loads((folder / REFERENCE / STATISTICS).read_text(encoding="utf-8"))
    used = folder / NPE_FOLDER / "used.json"
    if used.exists():
        n = int(json.loads(used.read_text(encoding="utf-8"))["rows"])
        table = table[table["draw"] < n].reset_index(drop=True)
    return table, doc


def split_rows(
    table: pd.DataFrame, held_out: float, spec: list[dict[str, Any]] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, held-out rows) of a reference table; with ``spec``, only the rows that meet its
    conditions (:func:`condition_mask`; a failed row has no values and stays, to be counted)."""
    if spec is not None and conditions(spec):
        failed = table["failed"].to_numpy(dtype=bool)
        table = table[failed | condition_mask(table, spec)]
    ho = table["split"].to_numpy(dtype=float) < held_out
    return table[~ho].reset_index(drop=True), table[ho].reset_index(drop=True)


# --------------------------------------------------------------------------- fitting and sampling


def settings_for(cal: Calibration, n_train: int):
    """The ensemble settings of a budget (:class:`~sim.experiments.inference.npe.NPESettings`)."""
    from sim.experiments.inference.npe import NPESettings

    b = cal.budget
    return NPESettings(
        members=b.members,
        max_num_epochs=b.max_epochs,
        stop_after_epochs=max(5, min(20, b.max_epochs // 5)),
        training_batch_size=int(min(200, max(20, n_train // 10))),
    )


def usable_statistics(train: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[str]]:
    """(statistics that vary over the successful training rows, those that do not)."""
    ok = train[~train["failed"].to_numpy(dtype=bool)]
    vary = [c for c in columns if len(ok) and float(ok[c].std()) > 0]
    return vary, [c for c in columns if c not in vary]


def fit_or_load(cal: Calibration, folder: Path, train: pd.DataFrame, stats: list[str], progress: Progress | None):
    """The ensemble for these training rows: the stored one if its fingerprint matches, else a new fit."""
    from sim.experiments.inference import npe

    paths = [p.path for p in cal.priors]
    settings = settings_for(cal, len(train))
    seed = derive_seed(cal.seed, "npe fit")
    x = train[[*stats, "failed"]]
    table = npe.reference_table(cal.priors, train[paths], x, "failed")
    fp = npe.table_fingerprint(cal.priors, table, settings, seed)
    where = folder / NPE_FOLDER
    if (where / "npe.json").exists():
        try:
            stored = npe.load_npe(where)
        except (ValueError, OSError, KeyError, RuntimeError):
            stored = None
        if stored is not None and stored.fingerprint == fp:
            if progress is not None:
                progress(f"npe: reusing the stored ensemble ({len(stored.estimators)} members; table unchanged)")
            return stored, True
    if progress is not None:
        progress(f"npe: training {settings.members} flows on {table.n_used} simulations ({table.n_failed} failed)")
    ens = npe.fit_npe(cal.priors, train[paths], x, seed=seed, failed="failed", settings=settings)
    ens.save(where)
    return ens, False


def run(
    cal: Calibration, folder: Path, engine: Engine, measure: Measure, *, progress: Progress | None = None
) -> SamplerResult:
    """Run (or resume) NPE in the prepared ``folder`` on ``engine`` (see the module docstring).

    Raises:
        InferenceUnavailable: torch or sbi is missing (before anything is simulated).
        CalibrationFailed: too few successful simulations, or no statistic varies.
    """
    from sim.experiments.inference import npe

    npe.require_inference()
    folder = Path(folder)
    b = cal.budget
    n = int(b.simulations or b.max_runs)
    t0 = time.perf_counter()
    table, resumed_from, stop = grow_reference(
        cal, folder, engine, measure, n, progress=progress, max_minutes=b.max_minutes
    )
    spec = statistics_spec(cal)
    train, held = split_rows(table, b.held_out, spec)
    stats, constant = usable_statistics(train, statistic_columns(spec))
    n_ok = int((~train["failed"].to_numpy(dtype=bool)).sum()) if len(train) else 0
    meeting = int(condition_mask(table[~table["failed"].to_numpy(dtype=bool)], spec).sum())
    if progress is not None and conditions(spec):
        progress(
            f"npe: {meeting} of {len(table)} simulations meet the record's interval entries ({condition_text(spec)})"
        )
    if not stats or n_ok < 10:
        raise CalibrationFailed(
            f"{folder}: {n_ok} successful training simulations (meeting the record's interval entries) and "
            f"{len(stats)} varying statistics: raise budget.simulations"
        )
    try:
        ens, reused = fit_or_load(cal, folder, train, stats, progress)
    except ValueError as e:
        raise CalibrationFailed(f"{folder}: {e}") from None
    write_json_atomic(
        {
            "rows": len(table),
            "statistics": stats,
            "constant": constant,
            "held_out": b.held_out,
            "conditions": [c["target"] for c in conditions(spec)],
            "meeting_conditions": meeting,
        },
        folder / NPE_FOLDER / "used.json",
    )
    x_obs = {c: s["statistic"] for s in spec if (c := s["column"]) in stats}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nflows' deprecation notes from torch
        draws = ens.sample(x_obs, b.posterior_samples, seed=derive_seed(cal.seed, "npe posterior"))
        point = ens.hpd_point(x_obs, n=min(4000, b.posterior_samples), seed=derive_seed(cal.seed, "npe hpd"))
    write_json_atomic(
        {
            "rule": "highest ensemble posterior density relative to the prior among "
            f"{min(4000, b.posterior_samples)} posterior draws at the record (NPEEnsemble.hpd_point)",
            "values": {k: float(v) for k, v in point.items()},
            "log_prob": float(point.attrs["log_prob"]),
            "log_ratio": float(point.attrs["log_ratio"]),
        },
        folder / POINT,
    )
    posterior = pd.DataFrame({"generation": 0, "particle": np.arange(len(draws)), "weight": 1.0 / len(draws)}).astype(
        {"generation": np.int64, "particle": np.int64}
    )
    for p in cal.priors:
        posterior[p.path] = draws[p.path].to_numpy(dtype=float)
    n_failed = int(table["failed"].sum())
    generations = pd.DataFrame(
        [
            {
                "t": 0,
                "phase": "npe",
                "epsilon": math.nan,
                "particles": len(draws),
                "samples": len(table),
                "failed": n_failed,
                "trained_on": int(ens.n_used),
                "held_out": len(held),
                "meeting_conditions": meeting,
                "members": len(ens.estimators),
                "epochs": ",".join(str(m["epochs"]) for m in ens.training),
                "reused_fit": reused,
                "acceptance": math.nan,
                "ess": float(len(draws)),
                "wall_time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
        ]
    )
    return SamplerResult(
        folder=folder,
        posterior=posterior,
        generations=generations,
        runs=len(table),
        seconds=time.perf_counter() - t0,
        resumed_from=resumed_from,
        stop_reason=stop,
        sampler=f"npe ({len(ens.estimators)} {ens.settings.model} flows) on {engine.description}",
    )

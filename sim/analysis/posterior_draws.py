"""``sim run SCENARIO --posterior-draws K``: the scenario run at K draws of the posterior shipped beside it.

``sim calibrate --apply`` (npe) writes ``<stem>.posterior.parquet`` beside the scenario: a ``draw``
column and one column per calibrated parameter (key paths). Here K distinct rows are chosen from it
with a generator seeded from the root seed (the scenario's seed or ``--seed``), each run once with
``derive_seed(root, "posterior draw", draw)``; the main outputs and the record's agreement counts
of every run are tabulated (``posterior_draws.csv``), their spread summarised
(``posterior_spread.csv``), and the sample file's SHA-256, the draws and the seeds recorded in
``manifest.json``. The same scenario, sample, K and seed give the same folder contents.

The sample is read and checked before anything runs; a missing, unreadable or malformed file is a
:class:`~sim.scenario.loader.ScenarioError` naming it. The folder is written under a temporary name
and renamed when complete, so a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.experiments.comparisons import OUTCOMES
from sim.run.outcomes import compute_outcomes
from sim.run.record import AGREEMENTS, compare_run, target_value
from sim.run.simulate import simulate
from sim.run.store import new_run_id, write_csv_atomic, write_json_atomic
from sim.scenario.loader import ScenarioError, apply_values, value_at
from sim.scenario.record import scenario_record
from sim.scenario.seeds import derive_seed, generator

#: The main outputs tabulated per draw (names of :data:`sim.experiments.comparisons.OUTCOMES`).
MAIN_OUTPUTS = (
    "coop_resisting_home_mean",
    "coop_resisting_mean",
    "coop_all_mean",
    "protest_resisting_mean",
    "under_hts_final",
    "hts_recruits_final",
    "displaced_final",
)


def posterior_sample_path(scenario: Path) -> Path:
    """``<stem>.posterior.parquet`` beside the scenario (where ``sim calibrate --apply`` ships it)."""
    return scenario.with_name(f"{scenario.stem}.posterior.parquet")


def read_sample(path: Path, scenario: dict[str, Any]) -> pd.DataFrame:
    """The posterior sample at ``path``, checked: readable, a ``draw`` column, parameter columns that are key
    paths of ``scenario`` with finite values, at least one row.

    Raises:
        ScenarioError: naming the file, and the column or problem.
    """
    if not path.is_file():
        raise ScenarioError(
            path, "no posterior sample beside the scenario (sim calibrate --method npe --apply writes it)"
        )
    try:
        sample = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several kinds for a truncated or foreign file
        raise ScenarioError(path, f"not a readable Parquet table ({type(e).__name__})") from None
    if "draw" not in sample.columns:
        raise ScenarioError(path, "no 'draw' column: not a posterior sample written by sim calibrate --apply")
    params = [c for c in sample.columns if c != "draw"]
    if not params or not len(sample):
        raise ScenarioError(path, "holds no parameter columns or no rows")
    for c in params:
        try:
            value_at(scenario, c)
        except (KeyError, TypeError, ValueError):
            raise ScenarioError(path, f"column {c!r} is not a key path of the scenario") from None
        v = pd.to_numeric(sample[c], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(v)):
            raise ScenarioError(path, f"column {c!r} has missing or non-numeric values")
    return sample.reset_index(drop=True)


def choose_draws(n_rows: int, k: int, root_seed: int) -> np.ndarray:
    """Row positions of ``k`` distinct draws out of ``n_rows`` (seeded from ``root_seed``)."""
    return generator(root_seed, "posterior draws", "choice").permutation(n_rows)[:k]


@dataclass
class PosteriorDraws:
    """What :func:`run_posterior_draws` wrote."""

    folder: Path
    runs: pd.DataFrame
    spread: pd.DataFrame
    seconds: float


def _record_counts(sc: Any, frames: dict[str, pd.DataFrame]) -> dict[str, float]:
    record = scenario_record(sc)
    if record is None:
        out = {}
        for f in sc.observed.figures:
            out[f"observed:{f.name}"] = float(target_value(f, sc, frames, None))
        return out
    table = compare_run(record, sc, frames)
    out = {}
    for role in ("calibration", "validation"):
        sub = table[table["role"] == role]
        for a in AGREEMENTS:
            out[f"record_{role}:{a}"] = float((sub["agreement"] == a).sum())
    return out


def run_posterior_draws(
    scenario_path: Path,
    scenario: Any,
    k: int,
    root_seed: int,
    out_root: Path,
    run_id: str | None = None,
    progress: bool = True,
) -> PosteriorDraws:
    """Run ``scenario`` (validated) at ``k`` draws of its shipped posterior sample (see the module docstring).

    Raises:
        ScenarioError: the sample is missing or malformed, or asks for more draws than it holds (before any run).
    """
    base = scenario.model_dump(mode="json")
    path = posterior_sample_path(Path(scenario_path))
    sample = read_sample(path, base)
    if k > len(sample):
        raise ScenarioError(path, f"holds {len(sample)} draws; --posterior-draws {k} asks for more")
    params = [c for c in sample.columns if c != "draw"]
    rows = choose_draws(len(sample), k, root_seed)
    final = Path(out_root) / scenario.name / (run_id or f"posterior-{new_run_id(root_seed)}")
    tmp = final.with_name(f".{final.name}.tmp")
    t0 = time.perf_counter()
    records = []
    for i, r in enumerate(rows):
        values = {c: float(sample[c].iloc[r]) for c in params}
        draw = int(sample["draw"].iloc[r])
        seed = derive_seed(root_seed, "posterior draw", draw)
        sc = apply_values(base, values, source=path, geography=False)
        result = simulate(sc, seed, household_agents=False)
        rec: dict[str, Any] = {"run": i, "row": int(r), "draw": draw, "seed": seed, **values}
        rec.update(compute_outcomes(result.timeseries, MAIN_OUTPUTS, sc.output.summary_window_days))
        rec.update(_record_counts(sc, result.frames))
        records.append(rec)
        if progress:
            print(f"posterior draw {i + 1} of {k} (draw {draw}, seed {seed})", flush=True)
    runs = pd.DataFrame(records)
    measured = [c for c in runs.columns if c in MAIN_OUTPUTS or c.startswith(("record_", "observed:"))]
    spread = pd.DataFrame(
        [
            {
                "output": c,
                "label": OUTCOMES.get(c, (c, 0))[0],
                "mean": float(runs[c].mean()),
                "sd": float(runs[c].std(ddof=1)) if k > 1 else math.nan,
                "q05": float(runs[c].quantile(0.05)),
                "median": float(runs[c].median()),
                "q95": float(runs[c].quantile(0.95)),
                "min": float(runs[c].min()),
                "max": float(runs[c].max()),
            }
            for c in measured
        ]
    )
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        write_csv_atomic(runs, tmp / "posterior_draws.csv", float_format="%.8g")
        write_csv_atomic(spread, tmp / "posterior_spread.csv", float_format="%.6g")
        write_json_atomic(
            {
                "kind": "posterior_draws",
                "scenario": scenario.name,
                "scenario_file": str(scenario_path),
                "posterior_sample": str(path),
                "posterior_sample_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "draws": k,
                "root_seed": root_seed,
                "rule": "rows: generator(root_seed, 'posterior draws', 'choice').permutation(rows)[:draws]; "
                "run seed: derive_seed(root_seed, 'posterior draw', draw)",
                "rows": [int(r) for r in rows],
                "draw_ids": runs["draw"].astype(int).tolist(),
                "seeds": runs["seed"].astype(int).tolist(),
                "seconds": round(time.perf_counter() - t0, 1),
            },
            tmp / "manifest.json",
        )
        if final.exists():
            raise ScenarioError(final, "already exists")
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PosteriorDraws(final, runs, spread, time.perf_counter() - t0)


def summary_lines(result: PosteriorDraws) -> list[str]:
    """What ``sim run --posterior-draws`` prints: the spread of each output across the draws."""
    k = len(result.runs)
    lines = [f"posterior draws: {k} runs in {result.seconds:.1f} s (median [5%, 95%], sd across draws)"]
    for r in result.spread.itertuples(index=False):
        name = r.label if r.output in OUTCOMES else r.output
        lines.append(f"  {name}: {r.median:.4g} [{r.q05:.4g}, {r.q95:.4g}], sd {r.sd:.3g}")
    lines.append(f"results: {result.folder} (posterior_draws.csv, posterior_spread.csv, manifest.json)")
    return lines


def manifest(folder: Path) -> dict[str, Any]:
    """A posterior-draws folder's manifest."""
    return json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))

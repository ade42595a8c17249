"""Run a sweep: design -> engine -> store, with progress, resume and a failure count."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim.experiments.design import build_design, plan_runs, run_tasks
from sim.experiments.engine import Engine, SerialEngine, make_engine
from sim.experiments.spec import SweepSpec, load_sweep
from sim.experiments.store import SweepStore
from sim.run.provenance import now_utc, stamp
from sim.run.store import OutputError

DEFAULT_OUT = Path("results/sweeps")


@dataclass
class SweepSummary:
    """What a sweep invocation did."""

    name: str
    folder: Path
    planned: int
    skipped: int
    ran: int
    failed: int
    failed_total: int
    seconds: float
    engine: str
    errors: list[str] = field(default_factory=list)

    @property
    def runs_per_minute(self) -> float:
        """Throughput of this invocation."""
        return 60.0 * self.ran / self.seconds if self.seconds > 0 else float("nan")

    def text(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"sweep {self.name}: {self.planned} runs planned, {self.skipped} already stored, "
            f"{self.ran} run now in {self.seconds:.1f} s ({self.runs_per_minute:.1f} runs/min, "
            f"{self.engine})",
            f"  failures: {self.failed} in this session, {self.failed_total} stored in total",
        ]
        lines += [f"  e.g. {e}" for e in self.errors[:3]]
        lines.append(f"results: {self.folder}")
        return "\n".join(lines)


def context_of(spec: SweepSpec) -> dict[str, Any]:
    """The plain-data context every task of the sweep is run with."""
    return {
        "model": spec.model,
        "base": spec.base,
        "days": spec.days,
        "outcomes": list(spec.outcomes),
        "window": spec.window,
        "series": list(spec.series),
        "options": spec.options,
    }


def manifest_of(spec: SweepSpec, design: pd.DataFrame, runs: pd.DataFrame) -> dict[str, Any]:
    """The manifest describing a sweep's plan and provenance."""
    return {
        "kind": "sweep",
        "name": spec.name,
        "description": spec.description,
        "sweep_file": str(spec.file) if spec.file else None,
        "sweep_file_sha256": spec.file_sha256,
        "plan_hash": spec.plan_hash,
        "model": spec.model,
        "design": spec.design.model_dump(mode="json"),
        "root_seed": spec.root_seed,
        "seeds": spec.seeds,
        "replicates": spec.replicates,
        "points": len(design),
        "runs": len(runs),
        "parameter_columns": spec.parameter_names,
        "parameters": {p.name: p.spec.model_dump(mode="json", exclude_none=True) for p in spec.parameters},
        "outcomes": list(spec.outcomes),
        "window": spec.window,
        "series": list(spec.series),
        "days": spec.days,
        "base_overrides": list(spec.base_overrides),
        "base_scenario": spec.base,
        **stamp(),
    }


def run_sweep(
    sweep: SweepSpec | str | Path,
    out: str | Path = DEFAULT_OUT,
    *,
    engine: Engine | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    dask_local: int | None = None,
    fresh: bool = False,
    progress: bool = True,
    flush_seconds: float = 30.0,
    folder: str | Path | None = None,
) -> SweepSummary:
    """Run (or resume) a sweep and stream its results to ``<out>/<name>/``.

    Args:
        sweep: a :class:`SweepSpec` or the path of a sweep file.
        out: results root; the sweep goes to ``out/<name>/`` unless ``folder`` is given.
        engine: an open engine to use (kept open); otherwise one is made from
            ``workers`` / ``scheduler`` / ``dask_local`` and closed at the end.
        workers: local worker processes (1: run serially in this process).
        scheduler: address of a dask scheduler.
        dask_local: run on a dask ``LocalCluster`` with this many workers.
        fresh: discard stored results of this sweep first.
        progress: show a progress bar (ETA, runs per minute, failures).
        flush_seconds: write a part at least this often, even if the batch is not full.
        folder: exact results folder (overrides ``out``).

    Returns:
        A :class:`SweepSummary`; the data is read with :func:`load_results`.
    """
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep)
    design = build_design(spec)
    runs = plan_runs(spec, design)
    store = SweepStore(Path(folder) if folder else Path(out) / spec.name, spec)
    done = store.prepare(manifest_of(spec, design, runs), design, runs, fresh=fresh)
    skip = set(done)
    pending = len(runs) - len(skip & set(runs["run"].tolist()))
    own_engine = engine is None
    started = now_utc()  # before the first run (and before workers start)
    t0 = time.perf_counter()
    ran = failed = 0
    errors: list[str] = []
    param_values = {p.name: design[p.name].tolist() for p in spec.parameters}
    context = context_of(spec)
    eng: Engine = engine or (SerialEngine() if pending == 0 else make_engine(workers, scheduler, dask_local))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(runs),
            initial=len(runs) - pending,
            unit="run",
            desc=spec.name,
            file=sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
        )
    batch: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    finished = False
    try:
        tasks = ((task, context) for task in run_tasks(spec, design, runs, skip))
        for row in eng.imap(tasks):
            batch.append(_record(row, spec, param_values))
            ran += 1
            if row["status"] != "ok":
                failed += 1
                if len(errors) < 10:
                    errors.append(f"run {row['run']}: {row['error']}")
            if len(batch) >= spec.batch_size or time.monotonic() - last_flush > flush_seconds:
                store.write_part(batch)
                batch = []
                last_flush = time.monotonic()
            if bar is not None:
                minutes = (time.perf_counter() - t0) / 60
                bar.set_postfix_str(f"{ran / minutes:.1f} runs/min, {failed} failed", refresh=False)
                bar.update(1)
        store.write_part(batch)
        batch = []
        finished = True
    finally:
        # Book-keeping that must happen however the loop ended; a write failure here is raised
        # only if nothing else went wrong first (the first failure is the one to report).
        late: OutputError | None = None
        if batch and not finished:  # interrupted (e.g. Ctrl-C): keep what finished
            try:
                store.write_part(batch)
            except OutputError as e:
                late = e
        if bar is not None:
            bar.close()
        if own_engine:
            eng.close()
        seconds = time.perf_counter() - t0
        try:
            store.add_session(
                {
                    "started": started,
                    "finished": now_utc(),
                    "engine": eng.description,
                    "ran": ran,
                    "failed": failed,
                    "seconds": round(seconds, 3),
                }
            )
        except OutputError as e:
            late = late or e
        store.unlock()
        if finished and late is not None:
            raise late
    failed_total = sum(1 for s in store.completed().values() if s != "ok")
    return SweepSummary(
        spec.name,
        store.root,
        len(runs),
        len(runs) - pending,
        ran,
        failed,
        failed_total,
        seconds,
        eng.description,
        errors,
    )


def _record(row: dict[str, Any], spec: SweepSpec, param_values: dict[str, list[Any]]) -> dict[str, Any]:
    """Flatten a worker's row into the store's columns (parameters looked up from the design)."""
    rec = {k: row.get(k) for k in ("run", "point", "replicate", "seed", "status", "error", "traceback")}
    point = int(row["point"])
    for name, values in param_values.items():
        rec[name] = values[point]
    values = row.get("values") or {}
    for o in spec.outcomes:
        v = values.get(o)
        rec[o] = float(v) if v is not None else float("nan")
    for s in spec.series:
        rec["series:" + s] = values.get("series:" + s)
    rec["wall_time_s"] = row.get("wall_time_s")
    rec["worker"] = row.get("worker")
    return rec

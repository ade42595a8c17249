"""Figure sets: the standard figures of a run, sweep or thesis folder, and the run folder ``sim run`` writes.

Analysis and storage never draw; this module adds the figures to what they wrote:

* :func:`write_run_folder` stores a run with its summary, map and, for a scenario naming a
  record, the record table and figure (``record.csv``, ``record.png``; the folder ``sim run`` writes);
* :func:`standard_figures` draws the figure set of any results folder (``sim plot``);
* :func:`draw_thesis_figures` and :func:`draw_sensitivity` are the drawing hooks that
  :func:`sim.analysis.thesis.run_thesis` and :func:`sim.analysis.sensitivity.write_sensitivity`
  take.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from sim.analysis.observed import compare, replicate_scenario, replicate_seeds
from sim.analysis.results import RunFolder, SweepFolder, ThesisFolder, load
from sim.run.record import AGREEMENTS, agreement_counts, compare_run
from sim.run.simulate import SimulationResult, save_run
from sim.run.store import write_atomic
from sim.scenario.record import scenario_record
from sim.scenario.schema import Scenario
from sim.viz.maps import plot_map, plot_run_map
from sim.viz.plots import (
    _stem,
    label_of,
    plot_ablation,
    plot_bands,
    plot_displacement_check,
    plot_effects,
    plot_observed,
    plot_parameter_effects,
    plot_policies,
    plot_sensitivity,
    plot_summary,
    plot_sweep_heatmap,
    plot_thesis_heatmap,
    plot_towns,
)
from sim.viz.record import plot_record

FigureJob = tuple[str, Callable[[Path | None], plt.Figure]]


def run_figures(run: RunFolder) -> list[FigureJob]:
    """The standard figures of a run folder: (file stem, function of the save path)."""
    jobs: list[FigureJob] = [
        ("summary", lambda p: plot_summary(run.timeseries, run.scenario, save=p)),
        ("towns_cooperation", lambda p: plot_towns(run.towns, "coop_share", save=p)),
        ("towns_protest", lambda p: plot_towns(run.towns, "protest_share", save=p)),
        ("towns_persons", lambda p: plot_towns(run.towns, "persons_present", save=p)),
        ("map", lambda p: plot_run_map(run, save=p)),
        ("map_hts_control", lambda p: plot_map(run, "hts_control", save=p)),
    ]
    if run.observed is not None and len(run.observed):
        jobs.append(("observed", lambda p: plot_observed(run.observed, save=p)))
    if any(f.kind == "displacements" for f in run.scenario.observed.figures):
        jobs.append(("displacement_check", lambda p: plot_displacement_check(run, save=p)))
    if run.record is not None and run.scenario.record is not None:
        record = scenario_record(run.scenario)
        if record is not None:
            frames = {"towns": run.towns}
            jobs.append(("record", lambda p: plot_record(record, frames, comparison=run.record, save=p)))
    return jobs


def sweep_figures(sweep: SweepFolder) -> list[FigureJob]:
    """The standard figures of a sweep folder: outcomes against each parameter, a heatmap of
    the first outcome over the first two numeric parameters (the policy difference when a
    policy parameter includes ``none``), kept daily series and sensitivity indices."""
    jobs: list[FigureJob] = []
    ok = sweep.ok
    if ok.empty:
        return jobs
    outs = sweep.outcomes[:6]
    jobs.append(("outcomes", lambda p: plot_parameter_effects(sweep, outs, save=p)))
    numeric = [c for c in sweep.parameters if pd.api.types.is_numeric_dtype(ok[c]) and ok[c].nunique() > 1]
    factor = [c for c in sweep.parameters if not pd.api.types.is_numeric_dtype(ok[c]) and ok[c].nunique() > 1]
    factorial = sweep.manifest.get("design", {}).get("method") == "factorial"
    if factorial and len(numeric) >= 2:
        for out in outs[:2]:
            jobs.append((f"heatmap_{_stem(out)}", lambda p, out=out: plot_sweep_heatmap(sweep, out, save=p)))
    if factor:
        by = factor[0]
        jobs.append((f"by_{_stem(by)}", lambda p: plot_policies(ok, outs, by=by, save=p)))
    series_by = factor[0] if factor else None
    for name in sweep.series_names:
        title, unit = label_of(name)

        def series_plot(p: Path | None, name: str = name, title: str = title, unit: str = unit) -> plt.Figure:
            return plot_bands(
                sweep.series(name),
                "value",
                by=series_by,
                titles=[title],
                ylabel=unit,
                title=f"sweep {sweep.name}",
                save=p,
            )

        jobs.append((f"series_{_stem(name)}", series_plot))
    for stem, table in sweep.sensitivity.items():
        jobs.append((stem, lambda p, table=table: plot_sensitivity(table, save=p)))
    return jobs


def thesis_figures(thesis: ThesisFolder) -> list[FigureJob]:
    """The standard figures of a thesis folder, from whichever of its tables are present."""
    jobs: list[FigureJob] = []
    effects = thesis.table("effects", "headline")
    if effects is not None:
        jobs.append(
            (
                "effects",
                lambda p: plot_effects(
                    effects, title="Effect of the targeting policy (paired replicates, 95% bootstrap interval)", save=p
                ),
            )
        )
    ablation = thesis.table("ablation", "mechanisms", "breakdown")
    if ablation is not None:
        jobs.append(("ablation", lambda p: plot_ablation(ablation, save=p)))
    grid = thesis.table("heatmap", "where", "grid")
    if grid is not None:
        jobs.append(("heatmap", lambda p: plot_thesis_heatmap(grid, save=p)))
    return jobs


#: Figures that take seconds each (60 record panels, 30 towns' small multiples): drawn first when
#: figures are shared out among processes, so that none of them is left for the end.
HEAVY_FIRST = ("record", "towns_")


def _save_jobs(jobs: list[FigureJob], out: Path) -> list[Path]:
    """Write each job's PNG to ``out``; the list of files, in the jobs' order.

    With several figures to draw, forked processes (one per further CPU) draw them alongside this
    one, each taking the next figure not yet taken (:func:`_share_out`). A figure a child could not
    draw is drawn again here, so its error surfaces as it would have. Every PNG is written atomically.
    """
    paths = [out / f"{name}.png" for name, _ in jobs]

    def draw(i: int) -> None:
        write_atomic(paths[i], lambda tmp: plt.close(jobs[i][1](tmp)))  # never a half-written PNG

    order = sorted(range(len(jobs)), key=lambda i: not jobs[i][0].startswith(HEAVY_FIRST))
    for i in _share_out(order, draw):
        draw(i)
    return paths


def _share_out(order: list[int], draw: Callable[[int], None]) -> list[int]:
    """Draw the items of ``order`` with forked children alongside this process; return those left to draw
    here (a child failed on them or was lost), in ``order``.

    Each process takes the next item from a counter in shared memory. Where forking is not safe or
    useful (:func:`_may_fork`), or with fewer than two items, nothing is drawn here and every
    item is returned. An error in this process stops the children from taking more items and waits for
    them (no child writes after this function returns), then propagates.
    """
    import multiprocessing as mp

    if len(order) < 2 or not _may_fork():
        return list(order)
    ctx = mp.get_context("fork")
    taken = ctx.Value("i", 0)  # the next position in ``order``; its lock guards it
    stop = ctx.Value("b", 0, lock=False)
    drawn = ctx.Array("b", len(order), lock=False)  # 1: drawn and written

    def take() -> int | None:
        with taken.get_lock():
            k = taken.value
            if k >= len(order) or stop.value:
                return None
            taken.value = k + 1
            return k

    def child() -> None:
        try:
            while (k := take()) is not None:
                try:
                    draw(order[k])
                    drawn[k] = 1
                except Exception:  # the parent draws it again and reports
                    pass
        finally:
            os._exit(0)

    procs = [ctx.Process(target=child, daemon=True) for _ in range(min(_cpus(), len(order)) - 1)]
    for proc in procs:
        proc.start()
    try:
        while (k := take()) is not None:
            draw(order[k])
            drawn[k] = 1
    finally:
        stop.value = 1
        for proc in procs:
            proc.join()
    return [order[k] for k in range(len(order)) if not drawn[k]]


def standard_figures(path: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write the standard figure set of a run, sweep or thesis folder; return the files.

    Args:
        path: the results folder.
        out: where to write the PNGs (default: ``<folder>/figures/``).
    """
    res = load(path)
    out = Path(out) if out is not None else Path(path) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(res, RunFolder):
        jobs = run_figures(res)
    elif isinstance(res, SweepFolder):
        jobs = sweep_figures(res)
    else:
        jobs = thesis_figures(res)
    return _save_jobs(jobs, out)


def draw_thesis_figures(folder: Path) -> list[Path]:
    """The thesis report's figures (``effects.png``, ``ablation.png``, ``heatmap.png``) from its tables."""
    return _save_jobs(thesis_figures(load(folder)), Path(folder))


def draw_sensitivity(table: pd.DataFrame, png: Path, title: str) -> Path:
    """The sensitivity bar chart of an index table."""
    plt.close(plot_sensitivity(table, title=title, save=png))
    return png


def _replicate_frames(job: tuple[Scenario, int]) -> dict[str, pd.DataFrame]:
    """One observed-band replicate in a worker: only the columns the recorded figures read."""
    from sim.run.simulate import simulate

    scenario, seed = job
    return simulate(scenario, seed, household_agents=False, collect="targets").frames


def _replicate_pool(workers: int):
    """A process pool for the replicates: forked where the platform allows it (no re-import of
    the model, a few milliseconds a worker), spawned elsewhere."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(workers, mp_context=mp.get_context(method))


def replicate_workers(extra: int) -> int:
    """Worker processes for ``extra`` replicates: one each, at most one per CPU (0: run in this process)."""
    cpus = _cpus()
    return 0 if extra <= 0 or cpus <= 1 else min(extra, cpus)


def run_extras(result: SimulationResult, folder: Path, replicates: int | None = None) -> dict[str, Any]:
    """Figures and comparison tables written beside a run's data (summary, map, observed, record).

    The record figure, the heaviest, is drawn in a forked process while this one draws the
    summary and the map (:func:`_in_background`). The observed-versus-simulated table's extra
    replicates (``replicates``, default the scenario's ``observed.replicates``) run in worker
    processes meanwhile; each collects only the columns the recorded figures read, so the
    table is the same as from full runs. Returns entries to add to the manifest.
    """
    entries: dict[str, Any] = {}
    sc = result.scenario
    n = sc.observed.replicates if replicates is None else int(replicates)
    seeds = replicate_seeds(result.seed, n) if sc.observed.figures else [result.seed]
    extra = replicate_scenario(sc)
    record_entry, draw_record = record_table(result, folder)
    wait_record = _in_background(draw_record) if draw_record is not None else None
    workers = replicate_workers(len(seeds) - 1)
    t0 = time.perf_counter()
    pool = _replicate_pool(workers) if workers else None
    try:
        futures = {s: pool.submit(_replicate_frames, (extra, s)) for s in seeds[1:]} if pool else {}
        plt.close(plot_summary(result.timeseries, sc, save=folder / "summary.png"))
        if sc.towns[0].lat is not None:
            plt.close(plot_run_map(result, save=folder / "map.png"))
        if sc.observed.figures:

            def runner(scenario: Scenario, seed: int) -> dict[str, pd.DataFrame]:
                return futures[seed].result() if seed in futures else _replicate_frames((scenario, seed))

            table, info = compare(result, n, runner)
            info["observed"].update(
                replicates=n,
                replicates_from="--replicates" if replicates is not None else "scenario observed.replicates",
                replicate_workers=workers,
                wall_time_s=round(time.perf_counter() - t0, 3),
            )
            table.to_csv(Path(folder) / "observed.csv", index=False)
            entries.update(info)
        if wait_record is not None:
            wait_record()
            wait_record = None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if wait_record is not None:
            wait_record(abandon=True)
    entries.update(record_entry)
    return entries


#: Longest wait for a figure drawn in the background before it is drawn again here (seconds).
BACKGROUND_TIMEOUT_S = 300.0


def _in_background(draw: Callable[[], Any]) -> Callable[..., None]:
    """Start ``draw`` in a forked process while this one goes on; return the function that waits for it.

    Where forking is not safe or useful (:func:`_may_fork`: not Linux, one CPU, or other Python
    threads in this process), ``draw`` runs here at once. A child that fails, or has
    not finished after ``BACKGROUND_TIMEOUT_S``, is not trusted: ``wait()`` stops it and draws
    again here, so an error surfaces as any other would (the child prints nothing).
    ``wait(abandon=True)`` stops the child without drawing (this process is already failing).
    """
    import multiprocessing as mp

    if not _may_fork():
        draw()
        return lambda abandon=False: None

    def child() -> None:
        try:
            draw()
        except BaseException:  # the parent draws again and reports
            os._exit(1)

    proc = mp.get_context("fork").Process(target=child, daemon=True)
    proc.start()

    def wait(abandon: bool = False) -> None:
        if not abandon:
            proc.join(BACKGROUND_TIMEOUT_S)
        if proc.is_alive():
            proc.terminate()
            proc.join()
        if not abandon and proc.exitcode != 0:
            draw()

    return wait


def fork_available() -> bool:
    """Whether drawing in forked processes can help here: Linux (where ``fork`` is the safe default) and
    more than one CPU."""
    import sys

    return sys.platform.startswith("linux") and _cpus() > 1


def _may_fork() -> bool:
    """:func:`fork_available`, and no other Python thread runs in this process (a Jupyter kernel, the
    app's server: a fork could copy a lock another thread holds)."""
    return fork_available() and not _other_threads()


def _other_threads() -> list[Any]:
    """Python threads besides this one; tqdm's monitor thread (a progress bar's) only sleeps and touches
    tqdm's own lock, which a forked child never uses."""
    import threading

    me = threading.current_thread()
    return [t for t in threading.enumerate() if t is not me and t.name != "tqdm_monitor"]


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def record_table(result: SimulationResult, folder: Path) -> tuple[dict[str, Any], Callable[[], None] | None]:
    """Write ``record.csv`` (:func:`sim.run.record.compare_run`) of a run whose scenario names a record;
    return its manifest entry (file and agreement counts) and the function that draws ``record.png``
    (:func:`sim.viz.record.plot_record`; ``None`` without a record)."""
    record = result.record if result.record is not None else scenario_record(result.scenario)
    if record is None:
        return {}, None
    table = compare_run(record, result.scenario, result.frames)
    table.to_csv(Path(folder) / "record.csv", index=False)
    counts = agreement_counts(table)
    entry = {
        "record": {
            "name": record.record,
            "file": str(record.file) if record.file is not None else None,
            "entries": len(table),
            "agreement": {
                role: {a: int(counts.loc[counts["role"] == role, a].sum()) for a in AGREEMENTS}
                for role in dict.fromkeys(counts["role"])
            },
        }
    }

    def draw() -> None:
        plt.close(plot_record(record, result.frames, comparison=table, save=Path(folder) / "record.png"))

    return entry, draw


def write_run_folder(
    result: SimulationResult,
    out_root: str | Path = "results",
    run_id: str | None = None,
    *,
    figures: bool = True,
    extras: Callable[[SimulationResult, Path], dict[str, Any]] | None = None,
    replicates: int | None = None,
) -> Path:
    """The run folder ``sim run`` writes: tables, manifest and (with ``figures``) summary, map, record.

    ``extras`` replaces :func:`run_extras` (the figures and tables added beside the data);
    ``replicates`` is the runs behind the observed table (default: the scenario's ``observed.replicates``).
    """
    add = extras or (lambda res, folder: run_extras(res, folder, replicates))
    hook = (lambda tmp: add(result, tmp)) if figures else None
    return save_run(result, out_root, run_id, extras=hook)

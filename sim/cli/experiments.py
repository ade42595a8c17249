"""CLI commands ``sim sweep``, ``sim sensitivity`` and ``sim thesis`` (registered by ``sim.cli.main``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sim.cli.common import fail, load, output_ok
from sim.scenario.loader import ScenarioError

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Override a top-level sweep key: key=value (e.g. replicates=2)."),
]

# The engine options every experiment command takes (sweep, thesis).
WorkersOption = Annotated[int, typer.Option(metavar="N", help="Local worker processes (1: serial).")]
SchedulerOption = Annotated[
    str | None, typer.Option(metavar="ADDRESS", help="Run on the dask scheduler at this address.")
]
DaskLocalOption = Annotated[int | None, typer.Option(metavar="N", help="Run on a dask LocalCluster of N workers.")]


def _engine_options_ok(workers: int, scheduler: str | None, dask_local: int | None) -> None:

    if workers < 1:
        fail(f"--workers {workers}: must be at least 1")
    if dask_local is not None and dask_local < 1:
        fail(f"--dask-local {dask_local}: must be at least 1")
    if scheduler and dask_local:
        fail("give either --scheduler or --dask-local, not both")


def sweep(
    file: Annotated[
        Path,
        typer.Argument(
            help="Sweep file, or the name of a shipped sweep (mechanisms_morris, mechanisms_sobol, ...).",
            metavar="SWEEP",
        ),
    ],
    workers: WorkersOption = 2,
    scheduler: SchedulerOption = None,
    dask_local: DaskLocalOption = None,
    out: Annotated[Path, typer.Option(metavar="DIR", help="Results root; the sweep goes to DIR/<name>/.")] = Path(
        "results/sweeps"
    ),
    fresh: Annotated[bool, typer.Option(help="Discard stored results of this sweep first.")] = False,
    sensitivity: Annotated[bool, typer.Option(help="Run `sim sensitivity` on the result afterwards.")] = False,
    set_: SetOption = None,
) -> None:
    """Run (or resume) a parameter sweep; results stream to resumable Parquet parts."""
    from sim.experiments.spec import load_sweep
    from sim.experiments.sweep import run_sweep

    _engine_options_ok(workers, scheduler, dask_local)
    try:
        spec = load_sweep(file, set_)
    except ScenarioError as e:
        fail(str(e))
    output_ok("--out", out)
    output_ok("--out", out / spec.name)
    summary = run_sweep(spec, out, workers=workers, scheduler=scheduler, dask_local=dask_local, fresh=fresh)
    typer.echo(summary.text())
    if sensitivity and spec.design.method in ("sobol", "morris"):
        _sensitivity(summary.folder, None)
    if summary.failed_total == summary.planned and summary.planned:
        raise typer.Exit(1)


def _sensitivity(folder: Path, outcomes: list[str] | None) -> None:
    from sim.analysis.sensitivity import write_sensitivity
    from sim.viz.figures import draw_sensitivity

    paths = write_sensitivity(folder, outcomes, draw=draw_sensitivity)
    typer.echo(f"sensitivity: {paths['csv']}\nfigure: {paths['png']}")


def sensitivity(
    sweep_dir: Annotated[Path, typer.Argument(help="Results folder of a sobol or morris sweep.")],
    outcome: Annotated[list[str] | None, typer.Option(help="Outcome to analyse (repeatable; default all).")] = None,
) -> None:
    """Sobol (S1, ST with CIs) or Morris (mu*, sigma) indices of a stored sweep: CSV and bar chart."""

    if not (sweep_dir / "manifest.json").exists():
        fail(f"{sweep_dir}: not a sweep results folder (no manifest.json)")
    try:
        _sensitivity(sweep_dir, outcome)
    except ScenarioError as e:
        fail(str(e))


def thesis(
    scenario: Annotated[
        Path | None,
        typer.Argument(help="Scenario file or shipped scenario name (default: synthetic_grid).", metavar="SCENARIO"),
    ] = None,
    replicates: Annotated[
        int | None, typer.Option(help="Paired replicates per policy (default 30; 10 with --quick).")
    ] = None,
    workers: WorkersOption = 2,
    scheduler: SchedulerOption = None,
    dask_local: DaskLocalOption = None,
    quick: Annotated[
        bool, typer.Option(help="Fewer replicates and a 3 x 3 heatmap (about a third of the runs).")
    ] = False,
    sample_fraction: Annotated[float, typer.Option(help="Share of households as agents in thesis runs.")] = 0.1,
    days: Annotated[int | None, typer.Option(help="Days per run (default: the scenario's).")] = None,
    seed: Annotated[int, typer.Option(help="Root seed of all runs and bootstraps.")] = 20171113,
    rope: Annotated[
        float, typer.Option(help="Minimum effect size (share units) for a verdict other than negligible.")
    ] = 0.02,
    out: Annotated[Path | None, typer.Option(help="Output folder (default results/thesis/<scenario>).")] = None,
    skip: Annotated[
        list[str] | None, typer.Option(help="Skip an experiment: ablation or heatmap (repeatable).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Scenario override key.path=value (repeatable)."),
    ] = None,
    posterior: Annotated[
        Path | None,
        typer.Option(help="Calibration folder: run the thesis on its posterior (and prior) draws instead."),
    ] = None,
    draws: Annotated[
        int | None,
        typer.Option(
            help="With --posterior: posterior and prior draws (default 200, 1000 for an npe folder; 20 with --quick)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(help="With --posterior: give the verdict even when the npe posterior failed its checks."),
    ] = False,
) -> None:
    """Test the thesis with paired counterfactuals: effects, CIs, verdicts, ablation, heatmap, report."""
    _engine_options_ok(workers, scheduler, dask_local)
    if scenario is None:
        from sim.analysis.thesis import default_scenario

        scenario = default_scenario()
    # One clean error for a bad scenario or override (before the model's import cost); a shipped name becomes its file.
    loaded = load(scenario, set_)
    scenario = loaded.path
    if posterior is not None:
        from sim.cli.calibrate_cmd import posterior_thesis_cmd

        posterior_thesis_cmd(
            scenario, posterior, draws, quick, workers, scheduler, seed, rope, out, days, force, list(set_ or [])
        )
        return
    if not 0 < sample_fraction <= 1:
        fail(f"--sample-fraction {sample_fraction}: must be in (0, 1]")
    if not 0 <= rope < 1:
        fail(f"--rope {rope}: must be in [0, 1)")
    if replicates is not None and replicates < 2:
        fail(f"--replicates {replicates}: need at least 2 paired replicates")
    bad = [s for s in skip or [] if s not in ("ablation", "heatmap")]
    if bad:
        fail(f"--skip {bad[0]!r}: use 'ablation' or 'heatmap'")
    experiments = tuple(e for e in ("headline", "ablation", "heatmap") if e not in (skip or []))
    out = out or Path("results/thesis") / loaded.scenario.name  # the default of run_thesis
    output_ok("--out", out)
    kw = {
        "scenario": scenario,
        "overrides": list(set_ or []),
        "sample_fraction": sample_fraction,
        "days": days,
        "root_seed": seed,
        "rope": rope,
        "experiments": experiments,
    }
    if replicates is not None:
        kw["replicates"] = replicates
    from sim.analysis.thesis import ThesisSettings, run_thesis
    from sim.viz.figures import draw_thesis_figures

    settings = ThesisSettings.quick(**kw) if quick else ThesisSettings(**kw)
    try:
        result = run_thesis(
            settings, out, workers=workers, scheduler=scheduler, dask_local=dask_local, draw=draw_thesis_figures
        )
    except ScenarioError as e:
        fail(str(e))
    from sim.analysis.thesis import verdict_lines

    typer.echo("\n".join(verdict_lines(result)))
    typer.echo(f"report: {result.report} ({result.seconds:.0f} s)")


def register(app: typer.Typer) -> None:
    """Add the experiment commands to the ``sim`` app."""
    app.command("sweep")(sweep)
    app.command("sensitivity")(sensitivity)
    app.command("thesis")(thesis)

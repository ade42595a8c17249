"""CLI command ``sim settle``: which observation would settle the thesis (registered by ``sim.cli.main``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from sim.cli.common import fail
from sim.scenario.loader import ScenarioError


def settle(
    folder: Annotated[Path, typer.Argument(help="An npe calibration folder (written by sim calibrate --method npe).")],
    quick: Annotated[
        bool, typer.Option(help="The quick budget: 300 simulations, 30 posterior records, one flow per candidate.")
    ] = False,
    simulations: Annotated[
        int | None,
        typer.Option(min=20, metavar="N", help="Reference rows simulated again with the candidates (default 400)."),
    ] = None,
    evaluations: Annotated[
        int | None,
        typer.Option(min=2, metavar="J", help="Records simulated from posterior draws to average over (default 60)."),
    ] = None,
    draws: Annotated[
        int | None, typer.Option(min=20, metavar="D", help="Posterior draws per record (default 400).")
    ] = None,
    max_epochs: Annotated[
        int | None,
        typer.Option(
            min=10,
            metavar="E",
            help="Most training epochs per flow (default 300; 200 with --quick); early stopping ends most sooner.",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes (1: one process).")] = 2,
    scheduler: Annotated[str | None, typer.Option(help="Run on the dask scheduler at this address.")] = None,
    rope: Annotated[float, typer.Option(help="Minimum effect size of the reliability check (share units).")] = 0.02,
    fresh: Annotated[bool, typer.Option(help="Discard the folder's settle table first.")] = False,
) -> None:
    """Rank observables the record does not hold by how much recording them would narrow the thesis effect's
    posterior, and check the thesis probabilities' reliability on held-out simulations (needs the 'inference'
    extra); resumable."""
    from sim.experiments.inference.folder import load_calibration_folder
    from sim.experiments.inference.npe import InferenceUnavailable, require_inference
    from sim.experiments.inference.npe_settle import SETTLE, SettleBudget
    from sim.scenario.calibration import load_calibration
    from sim.scenario.loader import load_scenario

    if not 0 <= rope < 1:
        fail(f"--rope {rope}: must be in [0, 1)")
    try:
        stored = load_calibration_folder(folder)
    except ScenarioError as e:
        fail(str(e))
    m = stored.manifest
    if m.get("method") != "npe":
        fail(f"{folder}: a calibration by {m.get('method')!r}; sim settle needs an npe calibration folder")
    for key in ("calibration_file", "scenario_file"):
        if not Path(str(m.get(key, ""))).is_file():
            fail(f"{folder / 'manifest.json'}: {key} {m.get(key)!r} is not a file")
    try:
        cal = load_calibration(
            Path(m["calibration_file"]), load_scenario(Path(m["scenario_file"])), quick=bool(m["quick"])
        )
    except ScenarioError as e:
        fail(str(e))
    if cal.fingerprint() != m.get("fingerprint"):
        fail(f"{folder}: the scenario or calibration file changed since this calibration; re-run sim calibrate first")
    try:  # after the folder's checks: importing torch and sbi takes seconds, a bad folder's error does not wait
        require_inference()
    except InferenceUnavailable as e:
        fail(str(e))
    b = SettleBudget.quick() if quick else SettleBudget()
    budget = SettleBudget(
        simulations=simulations or b.simulations,
        evaluations=evaluations or b.evaluations,
        draws=draws or b.draws,
        members=b.members,
        max_epochs=max_epochs or b.max_epochs,
        max_towns=b.max_towns,
    )
    if fresh and (folder / SETTLE).exists():
        shutil.rmtree(folder / SETTLE)
    from sim.analysis.settle import settle as run_settle
    from sim.analysis.settle import summary_lines
    from sim.experiments.inference.base import CalibrationConflict, CalibrationFailed
    from sim.viz.settle import draw_settle_figures

    try:
        result = run_settle(
            cal,
            folder,
            budget,
            workers=workers,
            scheduler=scheduler,
            rope=rope,
            progress=typer.echo,
            draw=draw_settle_figures,
        )
    except (CalibrationConflict, CalibrationFailed) as e:
        fail(str(e))
    typer.echo("\n".join(summary_lines(result)))
    typer.echo(f"report: {folder / 'report.md'}")


def register(app: typer.Typer) -> None:
    """Add ``sim settle`` to the ``sim`` app."""
    app.command("settle")(settle)

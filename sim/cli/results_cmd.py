"""``sim plot`` and ``sim results``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from sim.cli.common import fail, output_ok


def plot_command(
    results_dir: Annotated[Path, typer.Argument(help="A run, sweep or thesis results folder.", metavar="RESULTS_DIR")],
    out: Annotated[
        Path | None, typer.Option(help="Folder for the PNGs (default: RESULTS_DIR/figures).", metavar="DIR")
    ] = None,
) -> None:
    """Write the standard figures of a run, sweep or thesis folder."""
    import shutil

    from sim.analysis.results import ResultsError
    from sim.run.store import OutputError
    from sim.scenario.loader import ScenarioError

    if not results_dir.exists():  # before the figures' import cost
        fail(f"{results_dir}: no such folder")
    target = out if out is not None else results_dir / "figures"
    if out is not None or results_dir.is_dir():
        output_ok("--out", target)  # before the figures' import cost too
    from sim.viz.figures import standard_figures

    created = [p for p in (target, *target.parents) if not p.exists()]
    try:
        files = standard_figures(results_dir, out)
    except (ResultsError, ScenarioError, OutputError) as e:
        # a stored file that cannot be read (StoredFileError is a ScenarioError) or a failed write: one line
        if created:  # a figures folder made by this command: remove it whole (nothing half-written left)
            shutil.rmtree(target, ignore_errors=True)
            for folder in created[1:]:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        fail(e.message if isinstance(e, OutputError) else str(e))
    if not files:
        fail(f"{results_dir}: nothing to plot")
    typer.echo(f"{len(files)} figures in {files[0].parent}:")
    for f in files:
        typer.echo(f"  {f.name}")


def results_command(
    root: Annotated[Path, typer.Argument(help="Results root.", metavar="ROOT")] = Path("results"),
) -> None:
    """List the runs, sweeps and thesis reports under a results root."""
    from sim.analysis.results import list_results

    if not root.is_dir():
        fail(f"{root}: no such folder")
    df = list_results(root)
    if df.empty:
        typer.echo(f"no results under {root}")
        return
    for row in df.itertuples():
        typer.echo(f"{row.kind:6}  {row.created[:19]:19}  {row.name:28} {row.detail:34} {row.path}")


def register(app: typer.Typer) -> None:
    """Add ``sim plot`` and ``sim results``."""
    app.command("plot")(plot_command)
    app.command("results")(results_command)

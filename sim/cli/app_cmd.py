"""``sim app``: serve the interactive browser app."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sim.cli.common import fail, load


def app_command(
    scenario: Annotated[
        Path | None,
        typer.Argument(help="Scenario file or shipped scenario name (default: synthetic_grid).", metavar="SCENARIO"),
    ] = None,
    port: Annotated[int, typer.Option(help="Port (0: any free port).", metavar="PORT")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on.", metavar="HOST")] = "127.0.0.1",
) -> None:
    """Open the interactive app: watch a scenario unfold on the town map in the browser."""
    from sim.viz.app import DEFAULT_SCENARIO, serve

    scenario = scenario or DEFAULT_SCENARIO
    loaded = load(scenario)
    if not 0 <= port <= 65535:
        fail(f"--port {port}: must be 0..65535")
    if port == 0:
        from solara.server.threaded import get_free_port

        port = get_free_port()
    sc = loaded.scenario
    address = f"[{host}]" if ":" in host else host
    typer.echo(
        f"sim app: {sc.name!r} ({len(sc.towns)} towns, {sc.days} days) at http://{address}:{port}/  (Ctrl-C to stop)"
    )
    sys.stdout.flush()
    serve(loaded.path, host, port)


def register(app: typer.Typer) -> None:
    """Add ``sim app``."""
    app.command("app")(app_command)

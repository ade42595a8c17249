"""What every command shares: one error line and exit status 2, scenario loading, output checks, ``--set``.

Commands import these from here (never from :mod:`sim.cli.main`, which imports the commands to register
them), so the command modules form no import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sim.scenario.loader import ScenarioError

EXIT_BAD_INPUT = 2


def fail(message: str) -> None:
    """Print one error line and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def load(path: Path, overrides: list[str] | None = None):
    """Load and validate a scenario (geography included), or fail with one message."""
    from sim.scenario.loader import load_scenario

    try:
        return load_scenario(path, overrides)
    except ScenarioError as e:
        fail(str(e))


def output_ok(option: str, path: Path) -> None:
    """Check before any compute that ``path`` is, or can become, a writable folder; else fail with one line."""
    from sim.run.store import OutputError, check_output_dir

    try:
        check_output_dir(path)
    except OutputError as e:
        fail(f"{option} {e.message}")


SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a parameter: key.path=value (repeatable); list items by index or name.",
    ),
]

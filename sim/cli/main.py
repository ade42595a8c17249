"""Command line: the ``sim`` app; every command is registered in :func:`_register_commands`.

Bad input never shows a traceback: it prints one message naming the file,
the line, the key path and the problem, and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer.core import TyperCommand

from sim._version import __version__
from sim.cli.common import EXIT_BAD_INPUT
from sim.cli.conventions import ReadableCommand, ReadableGroup
from sim.scenario.loader import ScenarioError

app = typer.Typer(
    cls=ReadableGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(
        "Agent-based simulation of civilian allegiance under air strikes (Idlib, 2017-2018).\n\n"
        "SCENARIO arguments take a file or the name of a scenario shipped with the package "
        "(idlib_2017_2018, synthetic_grid, policies/none, ...), from any working directory."
    ),
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sim {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """Options of ``sim`` itself (the help text is the app's)."""


def _register_commands() -> None:
    """Every command of ``sim``, registered here in one place (once: a second call does nothing)."""
    if app.registered_commands:
        return
    from sim.cli import app_cmd, calibrate_cmd, experiments, mechanisms_cmd, results_cmd, run_cmd, settle_cmd

    run_cmd.register(app)
    experiments.register(app)
    calibrate_cmd.register(app)
    settle_cmd.register(app)
    mechanisms_cmd.register(app)
    results_cmd.register(app)
    app_cmd.register(app)
    for info in app.registered_commands:  # one help convention for every command
        if info.cls in (None, TyperCommand):
            info.cls = ReadableCommand


_register_commands()


def main() -> None:
    """Entry point: run the app, turning input errors into one line and exit status 2."""
    # Commands write figures to files: no GUI backend (set here, not in the library, so notebooks keep theirs).
    os.environ.setdefault("MPLBACKEND", "Agg")
    _register_commands()
    try:
        app()
    except ScenarioError as e:  # bad input, a stored file that cannot be read back (sim.run.files) included
        typer.echo(f"error: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as e:
        from sim.analysis.results import ResultsError
        from sim.run.store import OutputError

        if isinstance(e, OutputError):
            # A write that failed (disk full, permissions): the writers cleaned up; one line, no traceback.
            typer.echo(f"error: {e.message}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        if isinstance(e, ResultsError):  # a folder that is not a (complete) results folder
            typer.echo(f"error: {e}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()

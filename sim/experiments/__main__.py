"""``python -m sim.experiments sweep|sensitivity|thesis ...``: the experiment commands alone.

The same commands as ``sim sweep`` etc., without loading the rest of the CLI
(useful on cluster nodes and in tests that start a sweep as a subprocess).
"""

from __future__ import annotations

import sys

import typer

from sim.experiments.cli import register
from sim.loader import ScenarioError


def main() -> None:
    """Run the experiment commands with the CLI's error convention (one line, exit 2)."""
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
    register(app)
    try:
        app()
    except ScenarioError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

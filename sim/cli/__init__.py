"""The ``sim`` command line: the only layer that knows typer.

Commands: ``validate`` and ``run`` (:mod:`sim.cli.main`), ``sweep``, ``sensitivity``,
``thesis`` (:mod:`sim.cli.experiments`), ``plot`` and ``results`` (:mod:`sim.cli.results_cmd`),
``app`` (:mod:`sim.cli.app_cmd`), all registered in :func:`sim.cli.main._register_commands`.
"""

from sim.cli.main import main

__all__ = ["main"]

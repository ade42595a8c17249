"""Command line: ``sim validate``, ``sim run``; the other commands are registered in :func:`_register_commands`.

Bad input never shows a traceback: it prints one message naming the file,
the line, the key path and the problem, and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from sim._version import __version__
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


@app.command()
def validate(
    file: Annotated[
        Path,
        typer.Argument(
            help="Scenario file, or the name of a shipped scenario (idlib_2017_2018, policies/none, ...).",
            metavar="SCENARIO",
        ),
    ],
    set_: SetOption = None,
) -> None:
    """Check a scenario file and print what it resolves to."""
    loaded = load(file, set_)
    sc = loaded.scenario
    persons = sum(t.persons for t in sc.towns)
    typer.echo(
        f"ok: {file} -> scenario {sc.name!r}: {len(sc.towns)} towns, {persons:,} persons, "
        f"{sc.days} days, policy {sc.air_campaign.policy!r}, seed {sc.seed}, "
        f"config {loaded.config_hash[:12]}"
    )


@app.command()
def run(
    file: Annotated[
        Path,
        typer.Argument(
            help="Scenario file, or the name of a shipped scenario (idlib_2017_2018, policies/none, ...).",
            metavar="SCENARIO",
        ),
    ],
    seed: Annotated[int | None, typer.Option(metavar="SEED", help="Root seed (default: the scenario's).")] = None,
    days: Annotated[
        int | None, typer.Option(metavar="DAYS", help="Days to simulate (default: the scenario's).")
    ] = None,
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Results root; the run goes to DIR/<scenario>/<run-id>/.")
    ] = Path("results"),
    run_id: Annotated[
        str | None, typer.Option(metavar="NAME", help="Name of the run folder (default: time and seed).")
    ] = None,
    set_: SetOption = None,
) -> None:
    """Run a scenario and write its run folder (Parquet tables, manifest, figures)."""
    from sim.run.simulate import simulate
    from sim.viz.figures import write_run_folder

    overrides = list(set_ or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    if days is not None:
        overrides.append(f"days={days}")
    loaded = load(file, overrides)
    if run_id is not None and (not run_id or "/" in run_id or run_id.startswith(".")):
        fail(f"--run-id {run_id!r}: must be a plain folder name")
    target = out / loaded.scenario.name / (run_id or "")
    if run_id is not None and target.exists():
        fail(f"--run-id {run_id!r}: {target} already exists")
    output_ok("--out", out)
    output_ok("--out", out / loaded.scenario.name)
    result = simulate(loaded, progress=True)
    folder = write_run_folder(result, out, run_id)
    typer.echo(summary_text(result, folder))


def _num(x: float) -> str:
    """Counts with thousands separators, shares with three decimals."""
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:.3f}"


def summary_text(result, folder: Path) -> str:
    """A few lines on what the run found, for the terminal."""
    ts = result.timeseries
    first, last = ts.iloc[0], ts.iloc[-1]
    when = f"{ts['date'].iloc[-1]:%Y-%m-%d}" if "date" in ts.columns else f"day {int(last['day'])}"
    lines = [
        f"run: {result.scenario.name} seed {result.seed}, {result.manifest['agents']:,} agents, "
        f"{result.scenario.days} days in {result.manifest['wall_time_s']:.1f} s",
        f"  cooperation with HTS, resisting towns: {first['coop_share_resisting']:.3f} -> "
        f"{last['coop_share_resisting']:.3f} (by home town {last['coop_share_resisting_home']:.3f}) at {when}",
        f"  cooperation with HTS, all towns:       {first['coop_share']:.3f} -> {last['coop_share']:.3f}",
        f"  protest participation, resisting towns: {first['protest_share_resisting']:.3f} -> "
        f"{last['protest_share_resisting']:.3f}",
        f"  strikes {int(last['strikes_cum'])}, killed {last['killed_cum']:,.0f}, displaced now "
        f"{last['displaced_persons']:,.0f}, displacements {last['displacement_moves_cum']:,.0f}",
    ]
    observed = folder / "observed.csv"
    if observed.exists():
        import pandas as pd

        from sim.analysis.observed import NOT_REACHED

        obs = pd.read_csv(observed, keep_default_na=False, na_values=[""])
        headings = {
            "calibration": "  observed vs simulated, calibration targets (fitted by sim calibrate):",
            "validation": "  observed vs simulated, validation targets (held out of fitting):",
            "check": "  observed vs simulated, other checks:",
        }
        roles = obs["role"] if "role" in obs.columns else pd.Series(["check"] * len(obs))
        for role, heading in headings.items():
            rows = obs[roles.to_numpy() == role]
            if not len(rows):
                continue
            lines.append(heading)
            for _, row in rows.iterrows():
                if row["check"] == NOT_REACHED:
                    lines.append(f"    {row['figure']}: {NOT_REACHED} (window {row['window']}; the run ends {when})")
                elif pd.isna(row["simulated"]):
                    lines.append(f"    {row['figure']}: no model value ({row['check']}; {row['source']})")
                else:
                    ratio = f"ratio {row['ratio']:.2f}; " if pd.notna(row["ratio"]) else ""
                    lines.append(
                        f"    {row['figure']}: model {_num(row['simulated'])} vs recorded {_num(row['observed'])} "
                        f"({ratio}{row['source']})"
                    )
    lines.append(f"results: {folder}")
    return "\n".join(lines)


def _register_commands() -> None:
    """Every command of ``sim``, registered here in one place."""
    from sim.cli import app_cmd, calibrate_cmd, experiments, results_cmd

    experiments.register(app)
    calibrate_cmd.register(app)
    results_cmd.register(app)
    app_cmd.register(app)
    for info in app.registered_commands:  # one help convention for every command
        if info.cls in (None, TyperCommand):
            info.cls = ReadableCommand


def main() -> None:
    """Entry point: run the app, turning input errors into one line and exit status 2."""
    # Commands write figures to files: no GUI backend (set here, not in the library, so notebooks keep theirs).
    os.environ.setdefault("MPLBACKEND", "Agg")
    _register_commands()
    try:
        app()
    except ScenarioError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as e:
        from sim.run.store import OutputError

        if not isinstance(e, OutputError):
            raise
        # A write that failed (disk full, permissions): the writers cleaned up; one line, no traceback.
        typer.echo(f"error: {e.message}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()

"""``sim validate`` and ``sim run``: check a scenario, run it and summarise the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sim.cli.common import SetOption, fail, load, output_ok
from sim.scenario.loader import ScenarioError


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
    replicates: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Runs behind the observed-vs-simulated table: this run plus N-1 with spawned seeds, run in "
            "parallel (default: the scenario's observed.replicates, so the table does not depend on the "
            "machine; 1 skips the extra runs). Recorded in the manifest.",
        ),
    ] = None,
    posterior_draws: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="K",
            help="Instead of one run, run K draws of the posterior sample shipped beside the scenario "
            "(<stem>.posterior.parquet, written by sim calibrate --apply); writes the spread of the main outputs "
            "and the record's agreement across draws (posterior_draws.csv, posterior_spread.csv) and the draws' "
            "seeds (manifest.json).",
        ),
    ] = None,
) -> None:
    """Run a scenario and write its run folder (Parquet tables, manifest, figures)."""
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
    if posterior_draws is not None:
        if replicates is not None:
            fail("--replicates and --posterior-draws: give one of them")
        from sim.analysis.posterior_draws import run_posterior_draws, summary_lines

        try:
            drawn = run_posterior_draws(
                loaded.path, loaded.scenario, posterior_draws, loaded.scenario.seed, out, run_id
            )
        except ScenarioError as e:
            fail(str(e))
        typer.echo("\n".join(summary_lines(drawn)))
        return
    # The model and the figures are imported only now: bad input is refused before their import cost.
    from sim.run.simulate import simulate
    from sim.viz.figures import write_run_folder

    result = simulate(loaded, progress=True)
    folder = write_run_folder(result, out, run_id, replicates=replicates)
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
    record = folder / "record.csv"
    if record.exists():
        import pandas as pd

        from sim.run.record import counts_text

        table = pd.read_csv(record, keep_default_na=False, na_values=[""])
        lines += counts_text(table)
        lines.append(
            f"  per entry: {record.name}; figure: record.png (agreement: within the entry's stated uncertainty)"
        )
    lines.append(f"results: {folder}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``validate`` and ``run`` to the ``sim`` app."""
    app.command()(validate)
    app.command()(run)

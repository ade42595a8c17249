"""CLI command ``sim mechanisms``: the mechanism audit of a scenario (registered by ``sim.cli.main``)."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from sim.cli.common import SetOption, fail, load, output_ok
from sim.scenario.loader import ScenarioError


def mechanisms(
    scenario: Annotated[Path, typer.Argument(help="Scenario file, or the name of a shipped scenario.")],
    posterior: Annotated[
        Path | None,
        typer.Option(help="A calibration folder: audit its posterior draws instead of the scenario's own values."),
    ] = None,
    quick: Annotated[bool, typer.Option(help="4 draws, 1 seed, 8 points of the prior box (a few minutes).")] = False,
    draws: Annotated[int | None, typer.Option(min=1, help="Posterior draws (default 20).")] = None,
    seeds: Annotated[int | None, typer.Option(min=1, help="Seeds per draw (default 2).")] = None,
    conversion_draws: Annotated[
        int | None, typer.Option(min=0, help="Points of the largest-conversion search (default 40; 0: skip).")
    ] = None,
    stop: Annotated[str, typer.Option(help="Mirror: the last day of strikes in the stopped arm (ISO date).")] = (
        "2018-02-10"
    ),
    window: Annotated[tuple[str, str], typer.Option(help="Mirror: first and last date of the compared window.")] = (
        "2018-02-20",
        "2018-02-28",
    ),
    seed: Annotated[int, typer.Option(help="Root seed of the audit.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Local worker processes (1: one process).")] = 2,
    scheduler: Annotated[str | None, typer.Option(help="Run on the dask scheduler at this address.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default results/mechanisms/<name>[-posterior]).")] = (
        None
    ),
    set_: SetOption = None,
) -> None:
    """What drives the result: the change in cooperation decomposed by mechanism, the thesis under favouring and
    disfavouring settings, the mirror when strikes stop, rival offensives, and the largest conversion inside the
    prior box; each with its Monte Carlo error."""
    from dataclasses import replace

    loaded = load(scenario, set_)  # bad input is refused before the model's import cost
    sc = loaded.scenario
    if sc.start_date is None:
        fail(f"{loaded.path}: the audit's mirror needs a calendar scenario (start_date)")
    first, last = sc.start_date, sc.start_date + dt.timedelta(days=sc.days - 1)
    for option, text in (("--stop", stop), ("--window", window[0]), ("--window", window[1])):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            fail(f"{option} {text!r}: not an ISO date (YYYY-MM-DD)")
        if not first <= day <= last:
            fail(f"{option} {text}: outside the scenario's window {first} - {last}")
    if window[0] > window[1] or window[0] <= stop:
        fail(f"--window {window[0]} {window[1]}: must be in order and after --stop {stop}")
    from sim.analysis.mechanisms import AuditSettings, run_audit, write_audit
    from sim.experiments.inference.folder import load_calibration_folder
    from sim.run.store import OutputError

    if posterior is not None:
        try:
            load_calibration_folder(posterior)
        except ScenarioError as e:
            fail(str(e))
    target = out or Path("results/mechanisms") / (sc.name + ("-posterior" if posterior is not None else ""))
    output_ok("--out", target)
    if target.exists():
        fail(f"--out {target}: already exists (choose another folder or remove it)")
    base = AuditSettings.quick() if quick else AuditSettings()
    st = replace(
        base,
        draws=draws or base.draws,
        seeds=seeds or base.seeds,
        conversion_draws=base.conversion_draws if conversion_draws is None else conversion_draws,
        stop=stop,
        window=(window[0], window[1]),
        seed=seed,
    )
    try:
        audit = run_audit(
            loaded.path,
            posterior=posterior,
            settings=st,
            workers=workers,
            scheduler=scheduler,
            overrides=set_,
            progress=lambda m: typer.echo(m, err=True),
        )
        command = "sim " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        folder = write_audit(audit, target, command, loaded.scenario_hash)
    except (ScenarioError, ValueError) as e:
        fail(str(e))
    except OutputError as e:
        fail(e.message)
    d = audit.decomposition
    typer.echo(f"change in cooperation, resisting towns (home): {d.iloc[0]['change']:+.3f}")
    for _, r in d.iloc[1:].iterrows():
        typer.echo(
            f"  off {r['switched off']:<14} accounts for {r['accounts_for']:+.3f} (se {r['accounts_for_se']:.3f})"
        )
    e = audit.effect_decomposition
    e = e[e["outcome"].str.contains("by home town")]
    typer.echo(f"what carries the thesis effect (home town, as calibrated, {e.iloc[0]['effect']:+.3f}):")
    for _, r in e.iloc[1:].iterrows():
        typer.echo(
            f"  off {r['switched off']:<14} accounts for {r['accounts_for']:+.3f} (se {r['accounts_for_se']:.3f}), "
            f"positive in {r['p_accounts_for_positive']:.0%} of pairs"
        )
    for _, r in audit.verdicts[audit.verdicts["outcome"].str.contains("by home town")].iterrows():
        typer.echo(
            f"thesis ({r['setting']}): home-town effect {r['effect']:+.3f} (se {r['mcse']:.3f}): {r['verdict_of_mean']}"
        )
    m = audit.mirror.iloc[0]
    typer.echo(f"mirror ({stop} stop): {m['measure']} {m['stopped_minus_continued']:+.3f} (se {m['mcse']:.3f})")
    rv = audit.rivals.iloc[0]
    typer.echo(f"rival attacks on HTS-held towns: {int(rv['runs_with_rival_attack_on_hts'])} of {int(rv['runs'])} runs")
    typer.echo(f"report: {folder / 'report.md'}")


def register(app: typer.Typer) -> None:
    """Add ``sim mechanisms`` to the ``sim`` app."""
    app.command("mechanisms")(mechanisms)

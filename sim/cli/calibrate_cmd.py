"""CLI command ``sim calibrate`` (registered by ``sim.cli.main``), and the ``--apply`` step."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sim.cli.common import fail, load
from sim.scenario.loader import ScenarioError


def default_config(scenario: Path, name: str) -> Path:
    """``calibration/<scenario name>.yaml`` beside the scenario file, else the shipped one of that name."""
    from sim.scenario import shipped

    beside = scenario.resolve().parent / "calibration" / f"{name}.yaml"
    if beside.exists():
        return beside
    return shipped.shipped_path(name, "calibration") or beside


def calibrate(
    scenario: Annotated[
        Path, typer.Argument(help="Scenario file, or the name of a shipped scenario (idlib_2017_2018).")
    ],
    config: Annotated[
        Path | None, typer.Option(help="Calibration file (default: calibration/<scenario name>.yaml beside it).")
    ] = None,
    quick: Annotated[bool, typer.Option(help="The calibration file's quick budget (a few minutes).")] = False,
    workers: Annotated[int, typer.Option(help="Local worker processes (1: one process, reproducible).")] = 2,
    scheduler: Annotated[str | None, typer.Option(help="Run on the dask scheduler at this address.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default results/calibration/<name>).")] = None,
    fresh: Annotated[bool, typer.Option(help="Discard a stored calibration in the output folder first.")] = False,
    apply: Annotated[
        bool,
        typer.Option(help="Write the posterior medians of the calibration folder into SCENARIO (no new runs)."),
    ] = False,
    method: Annotated[
        str | None,
        typer.Option(
            metavar="{smc,rejection,mcmc,npe}",
            help="Inference method (a name registered in sim.experiments.inference.methods), "
            "overriding the calibration file's budget.method.",
        ),
    ] = None,
) -> None:
    """Fit the scenario's uncertain parameters to the record: ABC-SMC (pyabc), rejection ABC, ABC-MCMC or neural
    posterior estimation (npe, needs the 'inference' extra); resumable."""
    from sim.scenario.calibration import load_calibration

    if workers < 1:
        fail(f"--workers {workers}: must be at least 1")
    if method is not None:
        from sim.experiments.inference.methods import METHODS

        if method not in METHODS:
            fail(f"--method {method!r}: use one of {', '.join(METHODS)}")
    from sim.scenario import shipped

    loaded = load(scenario)
    scenario = loaded.path  # a shipped name becomes its file
    cfg = (
        shipped.resolve(config, "calibration") if config is not None else default_config(scenario, loaded.scenario.name)
    )
    try:
        cal = load_calibration(cfg, loaded, quick=quick)
    except ScenarioError as e:
        fail(str(e))
    folder = out or Path("results/calibration") / (cal.name + ("_quick" if quick else ""))
    if apply:
        _apply(scenario, folder)
        return
    if (method or cal.budget.method) == "npe":  # before anything is written
        from sim.experiments.inference.npe import InferenceUnavailable, require_inference

        try:
            require_inference()
        except InferenceUnavailable as e:
            fail(str(e))
    from sim.analysis.calibration import calibrate as run_calibration
    from sim.experiments.inference.base import CalibrationConflict, CalibrationFailed
    from sim.viz.calibration import draw_calibration_figures

    try:
        result = run_calibration(
            cal,
            folder,
            method=method,
            workers=workers,
            scheduler=scheduler,
            fresh=fresh,
            progress=typer.echo,
            draw=draw_calibration_figures,
        )
    except (CalibrationConflict, CalibrationFailed) as e:
        fail(str(e))
    typer.echo(summary_lines(result))


def summary_lines(result) -> str:
    """What the calibration found, for the terminal."""
    m, p = result.marginals, result.predictive
    lines = [f"calibration {result.calibration_id}: {result.abc.runs} runs, {result.seconds:.0f} s"]
    for r in m.itertuples(index=False):
        lines.append(
            f"  {r.parameter}: {r.posterior_median:.4g} (90% [{r.posterior_low:.4g}, {r.posterior_high:.4g}]; "
            f"prior [{r.prior_low:.4g}, {r.prior_high:.4g}]) {r.record}"
        )
    for role in ("calibration", "validation"):
        sub = p[p["role"] == role]
        lines.append(f"  {role} targets: {int(sub['covered'].sum())} of {len(sub)} covered by the 90% predictive band")
        for r in sub.itertuples(index=False):
            lines.append(
                f"    {r.target}: 90% band [{r.band_low:,.4g}, {r.band_high:,.4g}] vs recorded {r.recorded:,.4g}"
                f" {'(covered)' if r.covered else '(missed)'}"
            )
    lines.append(f"report: {result.report}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- --apply


def _apply(scenario: Path, folder: Path) -> None:
    from sim.experiments.inference.folder import load_calibration_folder

    try:
        load_calibration_folder(folder)  # a bad folder: one line, before the analysis' import cost
    except ScenarioError as e:
        fail(str(e))
    from sim.analysis.calibration import apply_calibration

    try:
        applied = apply_calibration(scenario, folder)
    except ScenarioError as e:
        fail(str(e))
    typer.echo(f"applied calibration {applied.calibration_id} to {applied.scenario} ({applied.values} values)")


def posterior_thesis_cmd(
    scenario: Path,
    posterior: Path,
    draws: int | None,
    quick: bool,
    workers: int,
    scheduler: str | None,
    seed: int,
    rope: float,
    out: Path | None,
    days: int | None,
    force: bool = False,
    overrides: list[str] | None = None,
) -> None:
    """``sim thesis SCENARIO --posterior FOLDER``: the verdict the record supports; ``overrides``
    (``--set``) apply to every run (recorded in the manifest and the report).

    An npe folder whose checks before belief failed (or were not run) gets no verdict: the failing
    checks are printed under ``verdict: WITHHELD`` and the command exits 1, unless ``force``.
    """
    from sim.experiments.inference.folder import load_calibration_folder

    if not 0 <= rope < 1:
        fail(f"--rope {rope}: must be in [0, 1)")
    try:
        stored = load_calibration_folder(posterior)  # a missing, empty or truncated file: one line naming it
    except ScenarioError as e:
        fail(str(e))
    is_npe = stored.manifest.get("method") == "npe"
    n = draws if draws is not None else (20 if quick else (1000 if is_npe else 200))
    if n < 2:
        fail(f"--draws {n}: need at least 2 draws")
    if is_npe:
        from sim.analysis.npe_checks import read_verdict

        passed, failing = read_verdict(posterior)
        if not passed:
            typer.echo(f"checks before belief failed on {posterior}:")
            typer.echo("\n".join(f"  - {line}" for line in failing))
            if not force:
                typer.echo("verdict: WITHHELD (the posterior failed its checks; --force runs the thesis anyway)")
                raise typer.Exit(1)
            typer.echo("--force: running the thesis on a posterior that failed its checks")
    # the thesis machinery and the figures only now: a bad folder is refused before their import cost
    from sim.analysis.calibration import posterior_thesis, verdict_text
    from sim.viz.calibration import draw_posterior_thesis_figures

    result = posterior_thesis(
        scenario,
        posterior,
        draws=n,
        out=out,
        root_seed=seed,
        rope=rope,
        days=days,
        workers=workers,
        scheduler=scheduler,
        draw=draw_posterior_thesis_figures,
        overrides=overrides,
    )
    if overrides:
        typer.echo(f"with --set {' '.join(overrides)} on every run (the calibration held the default)")
    typer.echo("given the record (posterior draws):")
    typer.echo("\n".join(verdict_text(result.probabilities, "posterior")))
    typer.echo("before the record (prior draws):")
    typer.echo("\n".join(verdict_text(result.probabilities, "prior")))
    if is_npe and overrides:
        typer.echo("reliability check: not shown (it judges the calibration's own model, without --set)")
    elif is_npe:
        from sim.analysis.settle import reliability_text

        typer.echo(reliability_text(posterior))
    typer.echo(f"report: {result.report} ({result.seconds:.0f} s)")


def register(app: typer.Typer) -> None:
    """Add ``sim calibrate`` to the ``sim`` app."""
    app.command("calibrate")(calibrate)

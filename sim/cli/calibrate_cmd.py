"""CLI command ``sim calibrate`` (registered by ``sim.cli.main``), and the ``--apply`` step."""

from __future__ import annotations

import re
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
) -> None:
    """Fit the scenario's uncertain parameters to the record: ABC-SMC (pyabc) or rejection ABC; resumable."""
    from sim.scenario.calibration import load_calibration

    if workers < 1:
        fail(f"--workers {workers}: must be at least 1")
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
    from sim.analysis.calibration import calibrate as run_calibration
    from sim.experiments.calibration import CalibrationConflict, CalibrationFailed
    from sim.viz.calibration import draw_calibration_figures

    try:
        result = run_calibration(
            cal,
            folder,
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


def _list_anchor(data: dict, path: str) -> str | None:
    """The key path of the first list that ``path`` goes through in ``data`` (None: mappings only)."""
    cur: object = data
    parts = path.split(".")
    for n, part in enumerate(parts):
        if isinstance(cur, list):
            return ".".join(parts[:n])
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return None


class _WholeList:
    """Marks a list written whole (``extends`` replaces lists)."""

    def __init__(self, anchor: str):
        self.anchor = anchor


def calibrated_yaml(base_name: str, stored, resolved: dict, header: str = "") -> str:
    """The text of a calibrated scenario file: ``extends`` the base, posterior medians with their source.

    ``resolved`` is the scenario the base file resolves to (plain data): a parameter inside a list
    (a schedule period, a rival group) is written as the whole list with its value replaced, since
    ``extends`` replaces lists whole.
    """
    import copy

    import yaml

    from sim.scenario.calibration import _numeric_at
    from sim.scenario.loader import set_path

    cid = stored.calibration_id
    lines = [
        header or "# Idlib, 1 November 2017 - 28 February 2018: the shipped historical scenario, CALIBRATED.",
        "#",
        f"# Every input comes from {base_name}; this file holds only the values calibration {cid}",
        "# fitted to the record (posterior medians). Written by `sim calibrate SCENARIO --apply` from",
        f"# {stored.folder}; each value's comment gives its source: the calibration id and the 90% interval.",
        f"extends: {base_name}",
        "",
    ]

    def source(r) -> str:
        return (
            f"source: calibration {cid}, posterior median (90% [{float(r.posterior_low):.4g}, "
            f"{float(r.posterior_high):.4g}]; {r.record})"
        )

    tree: dict = {}
    lists: dict[str, list] = {}
    data = copy.deepcopy(resolved)
    for r in stored.marginals.itertuples(index=False):
        anchor = _list_anchor(resolved, r.parameter)
        if anchor is not None:
            set_path(data, r.parameter.split("."), float(f"{float(r.posterior_median):.6g}"))
            lists.setdefault(anchor, []).append(r)
            continue
        parts = r.parameter.split(".")
        cur = tree
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = r
    for anchor in lists:
        parts = anchor.split(".")
        cur = tree
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = _WholeList(anchor)

    def emit(node: dict, indent: int) -> None:
        pad = " " * indent
        for key, val in node.items():
            k = key if re.fullmatch(r"[A-Za-z0-9_]+", key) else f'"{key}"'
            if isinstance(val, dict):
                lines.append(f"{pad}{k}:")
                emit(val, indent + 2)
            elif isinstance(val, _WholeList):
                anchor = val.anchor
                for r in lists[anchor]:
                    lines.append(f"{pad}# {r.parameter} = {float(r.posterior_median):.6g}: {source(r)}")
                block = yaml.safe_dump(
                    {key: _numeric_at(data, anchor)}, sort_keys=False, default_flow_style=None, width=200
                )
                lines.extend(pad + line for line in block.rstrip("\n").splitlines())
            else:
                lines.append(f"{pad}{k}: {float(val.posterior_median):.6g}   # {source(val)}")

    emit(tree, 0)
    return "\n".join(lines) + "\n"


def _apply(scenario: Path, folder: Path) -> None:
    from sim.analysis.calibration import load_calibration_folder
    from sim.run.store import write_text_atomic
    from sim.scenario.loader import read_yaml

    try:
        stored = load_calibration_folder(folder)
    except FileNotFoundError as e:
        fail(str(e))
    try:
        doc = read_yaml(scenario, "scenario")
    except ScenarioError as e:
        fail(str(e))
    base = doc.data.get("extends")
    if not isinstance(base, str):
        fail(f"{scenario}: --apply rewrites a scenario that 'extends' its base file; {scenario} has no 'extends'")
    resolved = load(scenario.parent / base).scenario.model_dump(mode="json")
    text = calibrated_yaml(base, stored, resolved)
    tmp = scenario.with_name(f".{scenario.name}.apply-check.yaml")
    tmp.write_text(text)
    try:
        check = load(tmp).scenario.model_dump(mode="json")  # the new file must load before it replaces the old one
    finally:
        tmp.unlink()
    from sim.scenario.calibration import _numeric_at

    for r in stored.marginals.itertuples(index=False):
        if abs(float(_numeric_at(check, r.parameter)) - float(f"{r.posterior_median:.6g}")) > 1e-12:
            fail(f"{folder}: parameter {r.parameter!r} did not reach the rewritten scenario")
    write_text_atomic(text, scenario)
    typer.echo(f"applied calibration {stored.calibration_id} to {scenario} ({len(stored.marginals)} values)")


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
) -> None:
    """``sim thesis SCENARIO --posterior FOLDER``: the verdict the record supports."""
    from sim.analysis.calibration import load_calibration_folder, posterior_thesis, verdict_text
    from sim.viz.calibration import draw_posterior_thesis_figures

    n = draws if draws is not None else (20 if quick else 200)
    if n < 2:
        fail(f"--draws {n}: need at least 2 draws")
    if not 0 <= rope < 1:
        fail(f"--rope {rope}: must be in [0, 1)")
    try:
        load_calibration_folder(posterior)
    except FileNotFoundError as e:
        fail(str(e))
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
    )
    typer.echo("given the record (posterior draws):")
    typer.echo("\n".join(verdict_text(result.probabilities, "posterior")))
    typer.echo("before the record (prior draws):")
    typer.echo("\n".join(verdict_text(result.probabilities, "prior")))
    typer.echo(f"report: {result.report} ({result.seconds:.0f} s)")


def register(app: typer.Typer) -> None:
    """Add ``sim calibrate`` to the ``sim`` app."""
    app.command("calibrate")(calibrate)

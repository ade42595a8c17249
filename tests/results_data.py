"""Small real results (a run, a calendar run, a sweep and a thesis folder) shared by the
results and plots tests. Built once per test session in a temporary folder; no mocks."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = ROOT / "scenarios" / "synthetic_grid.yaml"
IDLIB = ROOT / "scenarios" / "idlib_2017_2018.yaml"


@cache
def workdir() -> Path:
    """A temporary results root, removed when the session ends."""
    path = Path(tempfile.mkdtemp(prefix="sim-results-test-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@cache
def grid_run() -> Path:
    """The synthetic grid, a tenth of the households, 25 days: a run folder."""
    from sim.run.simulate import simulate
    from sim.scenario.loader import load_scenario
    from sim.viz.figures import write_run_folder

    loaded = load_scenario(GRID, ["households.sample_fraction=0.1", "days=25"])
    return write_run_folder(simulate(loaded), workdir() / "results", "grid")


@cache
def grid_replicates() -> tuple[Path, ...]:
    """Three seeds of each of two policies (common seeds), as run folders."""
    from sim.run.simulate import simulate
    from sim.scenario.loader import load_scenario
    from sim.viz.figures import write_run_folder

    out = []
    for policy in ("none", "resisting_towns"):
        loaded = load_scenario(GRID, ["households.sample_fraction=0.05", "days=20", f"air_campaign.policy={policy}"])
        for seed in (1, 2, 3):
            out.append(
                write_run_folder(simulate(loaded, seed), workdir() / "replicates", f"{policy}_{seed}", figures=False)
            )
    return tuple(out)


@cache
def idlib_run() -> Path:
    """The Idlib calendar scenario at 2% of households: dates, coordinates, record.csv; and an
    ``observed`` block of two displacement figures (observed.csv, the figures of a scenario without a
    record) beside its record."""
    from sim.run.simulate import simulate
    from sim.scenario.loader import load_scenario
    from sim.viz.figures import write_run_folder

    path = workdir() / "idlib_observed.yaml"
    path.write_text(
        f"extends: {IDLIB}\nrecord: {IDLIB.parent / 'record' / 'idlib_2017_2018.yaml'}\n"
        "observed:\n  figures:\n"
        "    - {name: displacements 15 Dec - 22 Jan, kind: displacements, start: {date: 2017-12-15},"
        " end: {date: 2018-01-22}, value: 212000, source: ACAPS 22 Jan 2018}\n"
        "    - {name: displacements 15 Dec - 3 Feb, kind: displacements, start: {date: 2017-12-15},"
        " end: {date: 2018-02-03}, value: 325443, source: OCHA 13 Feb 2018}\n",
        encoding="utf-8",
    )
    loaded = load_scenario(path, ["households.sample_fraction=0.02", "observed.replicates=2"])
    return write_run_folder(simulate(loaded), workdir() / "results", "idlib")


@cache
def sweep_folder() -> Path:
    """A 2 x 2 factorial over two mechanisms x two policies, two common-seed replicates."""
    from sim.experiments.spec import spec_from_dict
    from sim.experiments.sweep import run_sweep

    spec = spec_from_dict(
        {
            "name": "tiny",
            "scenario": str(GRID),
            "set": ["households.sample_fraction=0.05"],
            "days": 15,
            "root_seed": 3,
            "replicates": 2,
            "design": {"method": "factorial"},
            "parameters": {
                "mechanisms.rally": {"values": [0.0, 2.0]},
                "mechanisms.pretext_blame": {"values": [0.0, 0.8]},
                "air_campaign.policy": {"values": ["none", "resisting_towns"]},
            },
            "outcomes": ["coop_resisting_mean", "protest_resisting_mean", "displaced_final"],
            "window": 10,
            "series": ["coop_share_resisting"],
        }
    )
    return run_sweep(spec, workdir() / "sweeps", progress=False).folder


@cache
def morris_folder() -> Path:
    """A small Morris sweep with its sensitivity table written by ``sim sensitivity``'s function."""
    from sim.analysis.sensitivity import write_sensitivity
    from sim.experiments.spec import spec_from_dict
    from sim.experiments.sweep import run_sweep

    spec = spec_from_dict(
        {
            "name": "tiny_morris",
            "scenario": str(GRID),
            "set": ["households.sample_fraction=0.05", "air_campaign.policy=resisting_towns"],
            "days": 12,
            "root_seed": 5,
            "replicates": 1,
            "design": {"method": "morris", "trajectories": 3, "levels": 4},
            "parameters": {
                "mechanisms.rally": {"range": [0, 3]},
                "mechanisms.suppression": {"range": [0, 3]},
                "mechanisms.pretext_blame": {"range": [0, 1]},
            },
            "outcomes": ["coop_resisting_mean", "protest_resisting_mean"],
            "window": 10,
        }
    )
    folder = run_sweep(spec, workdir() / "sweeps", progress=False).folder
    from sim.viz.figures import draw_sensitivity

    write_sensitivity(folder, draw=draw_sensitivity)
    return folder


@cache
def thesis_folder() -> Path:
    """``sim thesis`` at its smallest: 2 replicates, 2 x 2 heatmap, 12 days, serial."""
    from sim.analysis.thesis import ThesisSettings, run_thesis

    settings = ThesisSettings(
        scenario=GRID,
        replicates=2,
        ablation_replicates=2,
        heatmap_replicates=2,
        heatmap_levels=2,
        sample_fraction=0.05,
        days=12,
        n_boot=200,
    )
    return run_thesis(settings, workdir() / "thesis" / "synthetic_grid", workers=1, progress=False).folder

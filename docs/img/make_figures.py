"""Regenerate the README figures in docs/img/ (about two minutes on two cores).

    .venv/bin/python docs/img/make_figures.py
    .venv/bin/python docs/img/make_figures.py --only idlib_map   # just the map

Runs go to a temporary folder; only the PNGs are kept (each well under 150 KB).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from sim.analysis import results
from sim.experiments.spec import load_sweep
from sim.experiments.sweep import run_sweep
from sim.run.simulate import simulate
from sim.scenario.loader import load_scenario
from sim.viz import maps, plots

ROOT = Path(__file__).resolve().parents[2]
IMG = Path(__file__).resolve().parent
DPI = 80


def save(fig: plt.Figure, name: str) -> None:
    path = IMG / name
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1024:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate the README figures.")
    parser.add_argument("--only", choices=["idlib_map", "policy_bands", "thesis_heatmap"], action="append")
    only = set(parser.parse_args().only or ["idlib_map", "policy_bands", "thesis_heatmap"])
    if "idlib_map" in only:
        idlib = load_scenario(ROOT / "scenarios" / "idlib_2017_2018.yaml")
        run = results.from_result(simulate(idlib, household_agents=False))
        save(maps.plot_map(run, "coop_share", "2018-01-22", since="2017-12-15", max_flows=15), "idlib_map.png")
    if "policy_bands" in only:
        grid = ROOT / "scenarios" / "synthetic_grid.yaml"
        runs = []
        for policy in ("none", "hts_strongholds", "resisting_towns"):
            loaded = load_scenario(grid, [f"air_campaign.policy={policy}"])
            runs += [simulate(loaded, seed, household_agents=False) for seed in range(10)]
        ts = results.stack(runs, label="policy")
        fig = plots.plot_bands(
            ts,
            ["coop_share_resisting_home", "protest_share_resisting"],
            by="policy",
            ncols=2,
            title="Synthetic grid: targeting policies with the same sorties and seeds",
        )
        save(fig, "policy_bands.png")

    if "thesis_heatmap" not in only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        spec = load_sweep(ROOT / "scenarios" / "sweeps" / "blame_vs_protection.yaml")
        summary = run_sweep(spec, Path(tmp), workers=2, progress=False)
        sweep = results.load(summary.folder)
        save(plots.plot_sweep_heatmap(sweep, "coop_resisting_home_mean"), "thesis_heatmap.png")


if __name__ == "__main__":
    main()

"""Drive the allegiance model from the EMA workbench: scenario discovery over mechanism strengths.

The model enters the workbench as a plain Python function around :func:`sim.run_model`:
uncertainties are mechanism strengths (key paths of the scenario schema), a
``ReplicatorModel`` runs every sampled point with several seeds, and the analysis
(extra-trees feature scoring and PRIM) runs on the replicate means. Nothing is
written unless ``--save`` is given.

    python docs/examples/ema_workbench.py                          # 48 points x 3 seeds, ~10 minutes
    python docs/examples/ema_workbench.py --points 8 --replications 2 --days 10 --sample-fraction 0.02

Requires the test extras (``pip install idlib-allegiance-sim[test]``: ema-workbench).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

# This file is named like the package it drives: run as a script, its own folder must not
# shadow the installed ema_workbench on the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
warnings.filterwarnings("ignore", message="ipyparallel not installed")  # the workbench's optional MPI/ipp evaluators

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ema_workbench import ArrayOutcome, RealParameter, ReplicatorModel, perform_experiments  # noqa: E402
from ema_workbench import Scenario as Point  # noqa: E402
from ema_workbench.analysis import feature_scoring, prim  # noqa: E402
from ema_workbench.util import process_replications  # noqa: E402
from scipy.stats import qmc  # noqa: E402

import sim  # noqa: E402

#: Uncertain mechanism strengths: workbench name -> (scenario key path, low, high). Ranges
#: are the ones the thesis heatmap and the Morris sweep explore, inside the schema's ranges.
UNCERTAINTIES: dict[str, tuple[str, float, float]] = {
    "rally": ("mechanisms.rally", 0.0, 3.0),
    "regime_blame": ("mechanisms.regime_blame", 0.0, 1.0),  # a share (docs/DECISIONS.md: independent blame shares)
    "pretext_blame": ("mechanisms.pretext_blame", 0.0, 1.0),
    "exit": ("mechanisms.exit", 0.0, 3.0),
}
#: Outcomes kept from each run (standard names of sim/run/outcomes.py).
OUTCOMES = ("coop_resisting_mean", "coop_resisting_home_mean", "protest_resisting_mean", "displaced_final")


def make_model(
    scenario: sim.Scenario, *, replications: int, days: int | None, root_seed: int = 20171113
) -> ReplicatorModel:
    """The workbench model: the scenario's mechanisms as uncertainties, seeds as replications."""

    def allegiance(seed: int, **strengths: float) -> dict[str, float]:
        # Unknown or out-of-range values raise sim.ScenarioError naming the key: nothing runs unvalidated.
        params = {UNCERTAINTIES[name][0]: value for name, value in strengths.items()}
        return sim.run_model(scenario, params, seed=seed, days=days, outcomes=OUTCOMES)

    model = ReplicatorModel("allegiance", function=allegiance)
    model.uncertainties = [RealParameter(name, low, high) for name, (_, low, high) in UNCERTAINTIES.items()]
    model.outcomes = [ArrayOutcome(name) for name in OUTCOMES]  # one value per replication
    # Common random numbers: every point runs with the same seeds, spawned from one root.
    seeds = np.random.SeedSequence(root_seed).generate_state(replications, dtype=np.uint32)
    model.replications = [{"seed": int(s)} for s in seeds]
    return model


def discover(
    scenario: sim.Scenario,
    *,
    points: int = 48,
    replications: int = 3,
    days: int | None = None,
    sampler_seed: int = 1,
) -> dict[str, Any]:
    """Sample, run, and analyse; returns the experiments, replicate means, feature scores and the PRIM box."""
    model = make_model(scenario, replications=replications, days=days)
    # A seeded Latin hypercube (the workbench's own sampler draws from numpy's global generator).
    lows, highs = zip(*((low, high) for _, low, high in UNCERTAINTIES.values()), strict=True)
    unit = qmc.LatinHypercube(d=len(UNCERTAINTIES), seed=np.random.default_rng(sampler_seed)).random(points)
    design = qmc.scale(unit, lows, highs)
    sampled = [
        Point(f"point_{i}", **dict(zip(UNCERTAINTIES, map(float, row), strict=True))) for i, row in enumerate(design)
    ]
    experiments, outcomes = perform_experiments(model, scenarios=sampled)
    means = process_replications(outcomes)  # mean over seeds: {outcome: array of points}
    x = experiments[list(UNCERTAINTIES)]
    scores = feature_scoring.get_feature_scores_all(x, means, random_state=sampler_seed)
    # Scenario discovery: where does cooperation in resisting towns end above its median?
    y = means["coop_resisting_mean"]
    of_interest = y > np.median(y)
    finder = prim.Prim(x, of_interest, threshold=0.6, peel_alpha=0.1)
    box = finder.find_box()
    limits = box.box_lim if box is not None else None
    return {
        "experiments": experiments,
        "outcomes": pd.DataFrame(means),
        "feature_scores": scores,
        "prim_limits": limits,
        "prim_coverage": float(box.coverage) if box is not None else float("nan"),
        "prim_density": float(box.density) if box is not None else float("nan"),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line of the example; prints the feature scores and the PRIM box."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="synthetic_grid", help="scenario file or shipped name")
    parser.add_argument("--points", type=int, default=48, help="LHS points over the uncertainties")
    parser.add_argument("--replications", type=int, default=3, help="seeds per point")
    parser.add_argument("--days", type=int, default=None, help="days per run (default: the scenario's)")
    parser.add_argument("--sample-fraction", type=float, default=0.1, help="share of households as agents")
    parser.add_argument("--save", default=None, help="write experiments and outcomes to this CSV")
    args = parser.parse_args(argv)
    scenario = sim.load_scenario(args.scenario, [f"households.sample_fraction={args.sample_fraction}"])
    found = discover(scenario, points=args.points, replications=args.replications, days=args.days)
    print("feature scores (extra trees; share of the explained variation):")
    print(found["feature_scores"].round(3).to_string())
    print(
        f"\nPRIM box where cooperation in resisting towns is above its median "
        f"(coverage {found['prim_coverage']:.2f}, density {found['prim_density']:.2f}):"
    )
    print(found["prim_limits"])
    if args.save:
        table = pd.concat([found["experiments"][list(UNCERTAINTIES)], found["outcomes"]], axis=1)
        table.to_csv(args.save, index=False)
    return found


if __name__ == "__main__":
    main()

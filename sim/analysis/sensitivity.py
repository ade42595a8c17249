"""Sensitivity analysis of a stored sweep: Sobol indices or Morris elementary effects.

Works on any sweep folder whose design is ``sobol`` or ``morris``, whatever model
produced it (the simulation or a reference function such as Ishigami), so the
test against known indices exercises the same code as real analyses.
Replicates are averaged per design point first; the analysis then sees the
sampler's unit-hypercube matrix (``design.parquet``) in its original order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sim.experiments.design import U_PREFIX
from sim.experiments.store import SweepStore
from sim.run.store import write_csv_atomic
from sim.scenario.loader import ScenarioError


def point_means(store: SweepStore, outcomes: list[str]) -> pd.DataFrame:
    """Outcome means over the successful replicates of each design point, in point order."""
    df = store.load()
    ok = df[df["status"] == "ok"]
    design = store.design()
    means = ok.groupby("point")[outcomes].mean().reindex(design["point"])
    missing = means.index[means.isna().all(axis=1)]
    if len(missing):
        raise ScenarioError(
            store.root,
            f"{len(missing)} of {len(design)} design points have no successful run "
            f"(e.g. point {int(missing[0])}); finish or resume the sweep first",
        )
    return means.reset_index()


def analyze(
    folder: str | Path,
    outcomes: list[str] | None = None,
    *,
    conf_level: float = 0.95,
    num_resamples: int = 1000,
    seed: int | None = None,
) -> pd.DataFrame:
    """Sensitivity indices per outcome and parameter.

    Returns:
        Sobol: columns ``outcome, parameter, S1, S1_conf, ST, ST_conf``;
        Morris: columns ``outcome, parameter, mu, mu_star, mu_star_conf, sigma``.
        Confidence half-widths are at ``conf_level`` (SALib bootstrap).

    Raises:
        ScenarioError: if the sweep's design is not Sobol or Morris, or runs are missing.
    """
    from SALib.analyze import morris, sobol

    store = SweepStore(folder)
    m = store.manifest()
    method = m["design"]["method"]
    if method not in ("sobol", "morris"):
        raise ScenarioError(
            store.root,
            f"sensitivity needs a sobol or morris design (this sweep is {method})",
            key="design.method",
        )
    outcomes = list(outcomes or m["outcomes"])
    unknown = [o for o in outcomes if o not in m["outcomes"]]
    if unknown:
        raise ScenarioError(
            store.root,
            f"outcome {unknown[0]!r} is not in this sweep (it has {', '.join(m['outcomes'])})",
            key="outcomes",
        )
    names = list(m["parameter_columns"])
    problem = {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}
    design = store.design()
    X = design[[U_PREFIX + n for n in names]].to_numpy(dtype=float)
    means = point_means(store, outcomes)
    seed = int(m["root_seed"]) % (2**32) if seed is None else seed
    rows = []
    for outcome in outcomes:
        Y = means[outcome].to_numpy(dtype=float)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if method == "sobol":
                si = sobol.analyze(
                    problem,
                    Y,
                    calc_second_order=m["design"]["second_order"],
                    num_resamples=num_resamples,
                    conf_level=conf_level,
                    seed=seed,
                )
                for j, name in enumerate(names):
                    rows.append(
                        {
                            "outcome": outcome,
                            "parameter": name,
                            "S1": si["S1"][j],
                            "S1_conf": si["S1_conf"][j],
                            "ST": si["ST"][j],
                            "ST_conf": si["ST_conf"][j],
                        }
                    )
            else:
                si = morris.analyze(
                    problem,
                    X,
                    Y,
                    num_resamples=num_resamples,
                    conf_level=conf_level,
                    num_levels=m["design"]["levels"],
                    seed=seed,
                )
                for j, name in enumerate(names):
                    rows.append(
                        {
                            "outcome": outcome,
                            "parameter": name,
                            "mu": si["mu"][j],
                            "mu_star": si["mu_star"][j],
                            "mu_star_conf": si["mu_star_conf"][j],
                            "sigma": si["sigma"][j],
                        }
                    )
    return pd.DataFrame(rows)


def write_sensitivity(
    folder: str | Path,
    outcomes: list[str] | None = None,
    *,
    out: str | Path | None = None,
    conf_level: float = 0.95,
    num_resamples: int = 1000,
    draw: Callable[[pd.DataFrame, Path, str], Path] | None = None,
) -> dict[str, Path]:
    """Compute the indices and write ``sensitivity.csv`` (and, through ``draw``, ``sensitivity.png``).

    Args:
        draw: called with the table, the PNG path and a title to draw the bar chart
            (``sim sensitivity`` passes :func:`sim.viz.figures.draw_sensitivity`).

    Returns:
        The paths written, by kind (``csv`` and, when drawn, ``png``).
    """
    folder = Path(folder)
    table = analyze(folder, outcomes, conf_level=conf_level, num_resamples=num_resamples)
    out_dir = Path(out) if out else folder
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, png = out_dir / "sensitivity.csv", out_dir / "sensitivity.png"
    write_csv_atomic(table, csv, float_format="%.6g")
    paths = {"csv": csv}
    if draw is not None:
        method = SweepStore(folder).manifest()["design"]["method"]
        paths["png"] = draw(table, png, f"{folder.name}: {method} sensitivity")
    return paths

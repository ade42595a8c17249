"""Checks before belief of an NPE calibration folder, written beside it and read by the thesis.

:func:`write_npe_checks` runs, on the folder's held-out simulations and the record:

* *calibration* (held-out simulations, never trained on): simulation-based calibration ranks,
  expected coverage of the 50/80/90/95% intervals against binomial bands, TARP;
* *misspecification* (the record against the reference table): the rank of each recorded
  statistic among the simulated ones, and the MMD test;
* *ensemble disagreement*: the spread of the members' posterior medians at the record, relative
  to the posterior sd; it passes when every spread is at most :data:`MAX_SPREAD`;
* *information* (reported, never blocking): contraction per parameter, naming the parameters the
  record constrains.

The verdict (``checks.json``: ``passed``, ``failing``) is what ``sim thesis --posterior`` reads:
any failing check of :data:`BLOCKING` withholds the thesis verdict unless ``--force`` is given.
Tables: ``checks.csv`` (one line per check), ``sbc_ranks.csv`` (figure: ``sbc_ranks.png``),
``coverage.csv``, ``tarp.csv``, ``contraction.csv``, ``misspecification.csv``, ``disagreement.csv``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.posterior_checks import (
    CheckResult,
    contraction_check,
    coverage_check,
    held_out,
    mmd_check,
    rank_check,
    sbc_check,
    tarp_check,
)
from sim.experiments.inference.npe import load_npe
from sim.experiments.inference.npe_method import NPE_FOLDER, load_reference, split_rows
from sim.run.store import write_csv_atomic, write_json_atomic
from sim.scenario.calibration import Prior
from sim.scenario.seeds import derive_seed

CHECKS = "checks.json"
#: Checks whose failure withholds the thesis verdict (contraction is information, not a failure).
BLOCKING = ("sbc", "coverage", "tarp", "rank", "mmd", "disagreement")
MAX_SPREAD = 0.5
N_POSTERIOR = 300  # posterior draws per held-out simulation


def _disagreement(ens: Any, x_obs: dict[str, float], seed: int) -> CheckResult:
    """Members' medians at the record against the posterior sd; one member has nothing to compare: fails."""
    data = ens.disagreement(x_obs, n=1000, seed=derive_seed(seed, "checks", "disagreement"))
    worst = float(data["relative_spread"].max())
    if len(ens.estimators) < 2:
        return CheckResult(
            name="ensemble disagreement",
            passed=False,
            rule="needs at least 2 members (budget.members); one flow cannot show its own training noise",
            data=data,
            details={"largest_relative_spread": worst},
        )
    return CheckResult(
        name="ensemble disagreement",
        passed=bool(worst <= MAX_SPREAD),
        rule=(
            f"at the record, every parameter's spread of the {len(ens.estimators)} members' medians is at most "
            f"{MAX_SPREAD:g} posterior sd (largest {worst:.3g})"
        ),
        data=data,
        details={"largest_relative_spread": worst},
    )


def run_npe_checks(folder: str | Path, priors: tuple[Prior, ...], seed: int) -> dict[str, CheckResult]:
    """Every check of an NPE folder (see the module docstring); a check that cannot run fails."""
    folder = Path(folder)
    ens = load_npe(folder / NPE_FOLDER)
    table, doc = load_reference(folder)
    used = json.loads((folder / NPE_FOLDER / "used.json").read_text(encoding="utf-8"))
    stats = list(used["statistics"])
    x_obs = {s["column"]: float(s["statistic"]) for s in doc["statistics"] if s["column"] in stats}
    train, held = split_rows(table, float(used["held_out"]), doc["statistics"])
    paths = [p.path for p in priors]
    posterior = pd.read_parquet(folder / "posterior.parquet")
    out: dict[str, CheckResult] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ho = held_out(ens, priors, held[paths], held[[*stats, "failed"]], seed=seed, n_posterior=N_POSTERIOR)
        except ValueError as e:
            ho = None
            reason = f"not run: {e}"
            for key, name in (
                ("sbc", "simulation-based calibration"),
                ("coverage", "expected coverage"),
                ("tarp", "TARP"),
            ):
                out[key] = CheckResult(name, False, reason, pd.DataFrame())
        if ho is not None:
            out["sbc"] = sbc_check(ho, seed=seed)
            out["coverage"] = coverage_check(ho)
            out["tarp"] = tarp_check(ho, seed=seed)
        out["contraction"] = contraction_check(priors, ho, posterior[paths])
        out["rank"] = rank_check(train[[*stats, "failed"]], x_obs)
        out["mmd"] = mmd_check(train[[*stats, "failed"]], x_obs, seed=seed)
        out["disagreement"] = _disagreement(ens, x_obs, seed)
    return out


def write_npe_checks(folder: str | Path, priors: tuple[Prior, ...], seed: int) -> dict[str, Any]:
    """Run the checks and write their tables and ``checks.json``; the verdict document."""
    folder = Path(folder)
    results = run_npe_checks(folder, priors, seed)
    rows = [
        {
            "check": k,
            "name": r.name,
            "passed": r.passed,
            "blocking": k in BLOCKING,
            "rule": r.rule,
            "outside": ", ".join(map(str, r.details.get("outside", []))),
        }
        for k, r in results.items()
    ]
    write_csv_atomic(pd.DataFrame(rows), folder / "checks.csv")
    sbc = results["sbc"]
    if "ranks" in sbc.details:
        ranks = np.asarray(sbc.details["ranks"])
        frame = pd.DataFrame(ranks, columns=[p.path for p in priors])
        frame.attrs["n_posterior"] = sbc.details["n_posterior"]
        write_csv_atomic(frame, folder / "sbc_ranks.csv")
    for key, name in (
        ("sbc", "sbc.csv"),
        ("coverage", "coverage.csv"),
        ("tarp", "tarp.csv"),
        ("contraction", "contraction.csv"),
        ("disagreement", "disagreement.csv"),
    ):
        if len(results[key].data):
            write_csv_atomic(results[key].data.reset_index(), folder / name, float_format="%.6g")
    mis = results["rank"].data.join(results["mmd"].data.add_prefix("mmd_"), how="outer")
    write_csv_atomic(mis.reset_index(), folder / "misspecification.csv", float_format="%.6g")
    failing = [k for k, r in results.items() if k in BLOCKING and not r.passed]
    doc = {
        "passed": not failing,
        "failing": failing,
        "failing_names": [results[k].name for k in failing],
        "blocking": list(BLOCKING),
        "checks": rows,
        "constrained": results["contraction"].details.get("constrained", []),
        "n_posterior": N_POSTERIOR,
        "sbc_n_posterior": int(sbc.details.get("n_posterior", N_POSTERIOR)),
    }
    write_json_atomic(doc, folder / CHECKS)
    doc["results"] = results
    return doc


def read_verdict(folder: str | Path) -> tuple[bool, list[str]]:
    """(the checks passed, the failing checks' lines) of a folder; no ``checks.json`` fails."""
    path = Path(folder) / CHECKS
    if not path.exists():
        return False, [f"no checks were run ({path} missing): re-run sim calibrate on the folder"]
    doc = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        f"{c['name']}: {c['rule']}" + (f" (outside: {c['outside']})" if c.get("outside") else "")
        for c in doc["checks"]
        if c["check"] in doc["failing"]
    ]
    return bool(doc["passed"]), lines

"""The small recovery calibration case shared by the calibration, npe and settle tests.

The recovery scenario (``tests/data/calibration/recovery*.yaml``) with its observed values
simulated from :data:`TRUTH`, the subprocess environment of the ``sim`` command line, and one
fitted npe calibration of it built once per test process (:func:`fitted_npe`; the tests that
use it share the ``npe_method`` xdist group, so one worker builds it once).
"""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "calibration"
SCENARIO = DATA / "recovery.yaml"
CONFIG = DATA / "recovery_calibration.yaml"
SIM = [sys.executable, "-m", "sim"]
#: ``sim`` as if the inference extra were not installed (sbi cannot be imported).
SIM_WITHOUT_SBI = [
    sys.executable,
    "-c",
    "import sys; sys.modules['sbi'] = None; sys.argv = ['sim'] + sys.argv[1:]; from sim.cli.main import main; main()",
]
TRUTH = {"air_campaign.casualties_per_strike": 2.0, "flight.exposure_rate": 0.003}
#: The xdist group of the tests that use :func:`fitted_npe`.
NPE_GROUP = "npe_method"


def env() -> dict[str, str]:
    """The environment of a ``sim`` subprocess: this checkout first, no display, torch at one thread."""
    out = dict(os.environ)
    out["PYTHONPATH"] = str(ROOT) + os.pathsep + out.get("PYTHONPATH", "")
    out["MPLBACKEND"] = "Agg"
    out["OMP_NUM_THREADS"] = "1"
    return out


def record(truth: dict[str, float], seed: int, figures: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The recovery scenario's data (with ``figures`` as its observed figures if given) with its
    observed values simulated from ``truth``."""
    from sim.analysis.calibration import target_values
    from sim.scenario.loader import load_scenario, read_yaml

    data = copy.deepcopy(read_yaml(SCENARIO).data)
    if figures is not None:
        data["observed"]["figures"] = figures
    sc = load_scenario(SCENARIO).scenario
    probe = sc.model_copy(update={"observed": sc.observed.model_validate(data["observed"])})
    values = target_values(probe.model_dump(mode="json"), truth, seed, probe.observed.figures)
    for fig in data["observed"]["figures"]:
        fig["value"] = float(values[fig["name"]])
    return data


def npe_case(folder: Path, **budget: Any) -> tuple[Path, Path]:
    """A scenario (the record simulated from :data:`TRUTH`) and an npe calibration file in ``folder``."""
    from sim.scenario.loader import read_yaml

    config = copy.deepcopy(read_yaml(CONFIG).data)
    config["budget"] = {
        "method": "npe",
        "population": 8,
        "generations": 1,
        "max_runs": 100,
        "simulations": 100,
        "members": 1,
        "max_epochs": 5,
        "posterior_samples": 200,
        "predictive_draws": 2,
        "scale_check_seeds": 2,
        "scale_check_fraction": 1.0,
        **budget,
    }
    config.pop("quick", None)
    folder.mkdir(parents=True, exist_ok=True)
    s, c = folder / "scenario.yaml", folder / "calibration.yaml"
    s.write_text(yaml.safe_dump(record(TRUTH, seed=202), sort_keys=False))
    c.write_text(yaml.safe_dump(config, sort_keys=False))
    return s, c


def load_case(scenario: Path, config: Path, quick: bool = False):
    """The :class:`~sim.scenario.calibration.Calibration` of a case."""
    from sim.scenario.calibration import load_calibration
    from sim.scenario.loader import load_scenario

    return load_calibration(config, load_scenario(scenario), quick=quick)


def stored_folder(folder: Path, method: str = "rejection") -> Path:
    """A finished calibration folder of the recovery case by ``method``, written by hand (no runs)."""
    import json

    import pandas as pd

    folder.mkdir(parents=True)
    cal = load_case(SCENARIO, CONFIG)
    priors = [
        {"path": p.path, "family": p.family, "low": p.low, "high": p.high, "mean": p.mean, "sd": p.sd, "reason": "t"}
        for p in cal.priors
    ]
    manifest = {"kind": "calibration", "calibration_id": "recovery-0123456789", "method": method, "priors": priors}
    manifest.update(sample_fraction=cal.sample_fraction, days=cal.days)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    post = pd.DataFrame(
        {"generation": 0, "particle": range(4), "weight": 0.25, **{p: [v] * 4 for p, v in TRUTH.items()}}
    )
    post.to_parquet(folder / "posterior.parquet")
    marg = pd.DataFrame(
        {
            "parameter": list(TRUTH),
            "posterior_median": list(TRUTH.values()),
            "posterior_low": [v / 2 for v in TRUTH.values()],
            "posterior_high": [v * 2 for v in TRUTH.values()],
            "record": "constrained",
        }
    )
    marg.to_csv(folder / "marginals.csv", index=False)
    return folder


@cache
def fitted_npe() -> tuple[Path, Path, Path]:
    """(scenario, calibration file, folder) of an npe calibration of the recovery case with 400
    simulations and two flows (about a minute on 2 cores), built once per process in a temporary
    folder removed at exit. Tests that change the folder work on a copy."""
    import torch

    from sim.analysis.calibration import calibrate
    from sim.viz.calibration import draw_calibration_figures

    torch.set_num_threads(1)
    base = Path(tempfile.mkdtemp(prefix="sim-npe-test-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    s, c = npe_case(base / "case", simulations=400, max_runs=400, members=2, max_epochs=60, posterior_samples=1000)
    calibrate(load_case(s, c), base / "out", workers=2, progress=None, draw=draw_calibration_figures)
    return s, c, base / "out"

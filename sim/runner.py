"""Run a scenario and store its results atomically.

Data flows one way: scenario -> :func:`simulate` -> :class:`RunResult` (plain
DataFrames and a manifest) -> :func:`write_run` (a run folder). Nothing here
reaches back into the model after the run; workers of a sweep call
:func:`simulate` with parameters and a seed and return plain data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import sim
from sim.config import Scenario
from sim.loader import LoadedScenario, config_hash
from sim.model import AllegianceModel

PACKAGES = ("mesa", "numpy", "pandas", "pyarrow", "pydantic", "matplotlib", "SALib", "dask")


@dataclass
class RunResult:
    """Everything a run produced, as plain data."""

    scenario: Scenario
    seed: int
    frames: dict[str, pd.DataFrame]
    manifest: dict[str, Any]
    snapshots: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def timeseries(self) -> pd.DataFrame:
        """Governorate-level table, one row per day."""
        return self.frames["timeseries"]

    @property
    def towns(self) -> pd.DataFrame:
        """Town-level table, one row per town per day."""
        return self.frames["towns"]

    @property
    def events(self) -> pd.DataFrame:
        """Events: strikes, takeovers, arrests, displacement and return flows, front changes."""
        return self.frames["events"]


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """Package version and, in a git checkout, the commit and whether the tree is dirty."""
    info: dict[str, Any] = {"package": sim.__version__, "git_commit": None, "git_dirty": None}
    root = Path(sim.__file__).resolve().parent.parent
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no", "--", "sim"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=5,
            )
            info["git_dirty"] = bool(status.stdout.strip())
    return info


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def simulate(
    scenario: Scenario | LoadedScenario,
    seed: int | None = None,
    *,
    days: int | None = None,
    progress: bool = False,
    household_agents: bool = True,
) -> RunResult:
    """Run one scenario with one seed and return its data and manifest.

    Args:
        scenario: a validated scenario, or a :class:`LoadedScenario` (which adds file hashes).
        seed: root seed (default: the scenario's).
        days: days to run (default: the scenario's).
        progress: show a progress bar when the run takes more than two seconds.
        household_agents: create the Mesa ``Household`` view agents (needed by the app).
    """
    loaded = scenario if isinstance(scenario, LoadedScenario) else None
    sc = loaded.scenario if loaded else scenario
    if days is not None and days != sc.days:
        sc = sc.model_copy(update={"days": int(days)})
    seed = sc.seed if seed is None else int(seed)
    t0 = time.perf_counter()
    model = AllegianceModel(sc, seed, household_agents=household_agents)
    t_build = time.perf_counter() - t0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sc.days, desc=sc.name, unit="day", delay=2.0, file=sys.stderr, leave=False)
    try:
        model.run(progress=bar)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    frames = model.collector.frames()
    manifest = {
        "scenario": sc.name,
        "seed": seed,
        "days": sc.days,
        "start_date": sc.start_date.isoformat() if sc.start_date else None,
        "agents": len(model.hh),
        "agent_unit": sc.households.unit,
        "sample_fraction": sc.households.sample_fraction,
        "config_hash": config_hash(sc),
        "scenario_file": str(loaded.path) if loaded else None,
        "scenario_files": {str(k): v for k, v in loaded.file_hashes.items()} if loaded else {},
        "scenario_hash": loaded.scenario_hash if loaded else config_hash(sc),
        "overrides": loaded.overrides if loaded else [],
        "code_version": code_version(),
        "packages": package_versions(),
        "wall_time_s": round(wall, 3),
        "build_time_s": round(t_build, 3),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": sc.model_dump(mode="json"),
    }
    snapshots = model.snapshots
    model.release()
    return RunResult(sc, seed, frames, manifest, snapshots)


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as Parquet, byte-identical for identical data."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd", write_statistics=True)


def default_run_id(result: RunResult) -> str:
    """``<UTC timestamp>_seed<seed>`` (unique enough and sortable)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}_seed{result.seed}"


def write_run(
    result: RunResult, out_root: str | Path = "results", run_id: str | None = None, *, figures: bool = True
) -> Path:
    """Write a run folder ``<out_root>/<scenario>/<run-id>/`` atomically.

    Files go to a hidden temporary folder that is renamed into place only when
    everything is written; on any error the temporary folder is removed.
    """
    base = Path(out_root) / result.scenario.name
    run_id = run_id or default_run_id(result)
    final = base / run_id
    if final.exists():
        raise FileExistsError(f"run folder {final} already exists")
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{run_id}.tmp-{os.getpid()}"
    try:
        tmp.mkdir()
        for name, df in result.frames.items():
            write_parquet(df, tmp / f"{name}.parquet")
        for day, snap in result.snapshots.items():
            write_parquet(pd.DataFrame(snap), tmp / f"households_day{day:04d}.parquet")
        manifest = dict(result.manifest, run_id=run_id)
        extras = run_extras(result, tmp) if figures else {}
        manifest["files"] = sorted(p.name for p in tmp.iterdir())
        manifest.update(extras)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def run_extras(result: RunResult, folder: Path) -> dict[str, Any]:
    """Figures and comparison tables written beside the data (summary, map, observed).

    Returns entries to add to the manifest.
    """
    import matplotlib.pyplot as plt

    from sim import plots

    entries: dict[str, Any] = {}
    plt.close(plots.plot_summary(result.timeseries, result.scenario, save=folder / "summary.png"))
    if result.scenario.towns[0].lat is not None:
        from sim.maps import plot_run_map

        plt.close(plot_run_map(result.towns, result.events, result.scenario, save=folder / "map.png"))
    if result.scenario.observed.figures:
        from sim.observed import write_observed

        entries.update(write_observed(result, folder))
    return entries

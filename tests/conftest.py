"""Shared fixtures: fast scenarios, a tiny controlled scenario builder, a CLI runner.

Every fixture that builds a scenario returns a validated :class:`sim.scenario.schema.Scenario`
so tests exercise the same validation as users. The fast scenarios are the shipped
``scenarios/synthetic_grid.yaml`` at a small ``households.sample_fraction`` and a
few days, so the whole suite stays well under a few minutes on two cores.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sim.model.model import AllegianceModel
from sim.scenario.loader import deep_merge, load_scenario
from sim.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parents[1]
GRID_YAML = ROOT / "scenarios" / "synthetic_grid.yaml"
DATA = Path(__file__).resolve().parent / "data"

#: Overrides that make the synthetic grid fast (about 2,300 agents, 30 days).
FAST = ("households.sample_fraction=0.05", "days=30")


def _grid(*overrides: str, fast: bool = True) -> Scenario:
    return load_scenario(GRID_YAML, [*(FAST if fast else ()), *overrides]).scenario


@pytest.fixture(scope="session")
def grid() -> Callable[..., Scenario]:
    """Factory: the synthetic grid made fast, plus ``--set``-style overrides."""
    return _grid


#: Three towns on a line: A and B are 4 km apart, C is 60 km from both.
TINY_TOWNS: list[dict[str, Any]] = [
    {
        "name": "A",
        "x": 1,
        "y": 1,
        "persons": 3000,
        "stance": "resisting",
        "council": 0.6,
        "hts_control": 0.3,
        "hts_services": 0.1,
        "civil_society": 0.5,
    },
    {
        "name": "B",
        "x": 3,
        "y": 1,
        "persons": 3000,
        "stance": "mixed",
        "council": 0.5,
        "hts_control": 0.5,
        "hts_services": 0.2,
        "civil_society": 0.3,
    },
    {
        "name": "C",
        "x": 31,
        "y": 1,
        "persons": 3000,
        "stance": "hts",
        "council": 0.3,
        "hts_control": 0.8,
        "hts_services": 0.4,
        "civil_society": 0.1,
    },
]


def _tiny(towns: list[dict[str, Any]] | None = None, **blocks: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "tiny",
        "seed": 7,
        "days": 30,
        "grid": {"cell_km": 2.0},
        "towns": towns if towns is not None else TINY_TOWNS,
        "air_campaign": {"policy": "none"},
        "front": {"enabled": False},
    }
    return Scenario.model_validate(deep_merge(data, blocks))


@pytest.fixture(scope="session")
def tiny() -> Callable[..., Scenario]:
    """Factory: a tiny controlled scenario (three towns, no strikes, no front) plus blocks."""
    return _tiny


def _run_model(scenario: Scenario, seed: int | None = None, days: int | None = None) -> AllegianceModel:
    model = AllegianceModel(scenario, seed, household_agents=False)
    model.run(days)
    return model


@pytest.fixture(scope="session")
def run_model() -> Callable[..., AllegianceModel]:
    """Factory: build and run an :class:`AllegianceModel` (keeps the model for inspection)."""
    return _run_model


def _frames(scenario: Scenario, seed: int | None = None) -> dict[str, pd.DataFrame]:
    model = _run_model(scenario, seed)
    frames = model.collector.frames()
    model.release()
    return frames


@pytest.fixture(scope="session")
def frames() -> Callable[..., dict[str, pd.DataFrame]]:
    """Factory: run a scenario and return its three tables."""
    return _frames


def assert_frames_identical(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame], ignore: Iterable[str] = ()) -> None:
    """Every table equal to the last bit (columns in ``ignore`` left out)."""
    assert a.keys() == b.keys()
    for name in a:
        x = a[name].drop(columns=[c for c in ignore if c in a[name]])
        y = b[name].drop(columns=[c for c in ignore if c in b[name]])
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=name)


def frames_differ(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> bool:
    """True if any table differs in any value."""
    try:
        assert_frames_identical(a, b)
    except AssertionError:
        return True
    return False


@pytest.fixture(scope="session")
def identical() -> Callable[..., None]:
    """The assertion :func:`assert_frames_identical`."""
    return assert_frames_identical


@pytest.fixture(scope="session")
def differ() -> Callable[..., bool]:
    """The predicate :func:`frames_differ`."""
    return frames_differ


def _sim_command() -> list[str]:
    script = Path(sys.executable).parent / "sim"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sim"]


@pytest.fixture(scope="session")
def sim_command() -> list[str]:
    """The ``sim`` console script of this environment (or ``python -m sim``)."""
    return _sim_command()


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the ``sim`` command line in a subprocess with ``tmp_path`` as working folder."""

    def run(*args: str | Path, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_sim_command(), *map(str, args)],
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterable[Callable[..., Any]]:
    """Factory: start a real dask scheduler and ``n_workers`` worker processes on 127.0.0.1 (tests/cluster.py).

    Returns the started :class:`cluster.DaskCluster` (``.address``, ``.kill_worker(i)``); every
    process is stopped when the test ends, whatever happened.
    """
    from cluster import DaskCluster

    clusters: list[DaskCluster] = []

    def start(n_workers: int = 2, timeout: float = 120.0) -> DaskCluster:
        cluster = DaskCluster(tmp_path / f"dask{len(clusters)}", n_workers, timeout)
        clusters.append(cluster)
        return cluster.start()

    yield start
    for cluster in clusters:
        cluster.stop()


# --------------------------------------------------------------------------- running in parallel (pytest-xdist)

#: Groups of tests that must not run at the same time as each other under pytest-xdist
#: (``python3 dev.py test`` runs ``pytest -n auto --dist loadgroup``, which sends the tests
#: of one ``xdist_group`` to one worker, one after another). Everything else is isolated
#: by construction: each test writes under its own ``tmp_path``, servers listen on free
#: ports chosen at run time, and session data (tests/results_data.py) is built per worker.
#:
#: * ``browser``: each drives headless chromium against its own ``sim app`` server with
#:   step deadlines; two at once on two cores starve each other's page.
#: * ``dask``: each starts a scheduler and worker processes and kills a worker mid-run.
#: * ``cli``, ``npe_toy``, ``installed`` (and ``npe_method``, marked in its modules): the tests share an
#:   expensive module or process fixture (the matrix of bad ``sim run`` invocations, a
#:   fitted ensemble, the wheel built and installed in a fresh environment) that is then built once,
#:   not once per worker.
XDIST_GROUPS: dict[str, Callable[[pytest.Item], bool]] = {
    "browser": lambda item: item.get_closest_marker("browser") is not None,
    "dask": lambda item: "dask_cluster" in getattr(item, "fixturenames", ()),
    "cli": lambda item: item.path.name == "test_cli.py",
    "npe_toy": lambda item: item.path.name == "test_npe.py",
    "installed": lambda item: "installed" in getattr(item, "fixturenames", ()),
}


def pytest_configure(config: pytest.Config) -> None:
    _loadgroup_groups(config)
    # xdist registers the mark itself; this keeps `-p no:xdist` runs free of unknown-mark warnings
    config.addinivalue_line("markers", "xdist_group(name): run on one xdist worker with the group's other tests")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for group, member in XDIST_GROUPS.items():
            if member(item) and item.get_closest_marker("xdist_group") is None:
                item.add_marker(pytest.mark.xdist_group(group))
    # The longest first: a worker takes the groups and tests in collection order, and a long one taken
    # last keeps one worker busy while the other waits (about 80 s of the suite's 9.5 minutes when the
    # fitted calibration's group came last). So: the groups of minutes, the other groups (each runs as
    # one unit), the tests marked slow (each 10 s or more on an idle machine), then the rest, each class
    # in collection order.
    items.sort(key=_start_order)


def _start_order(item: pytest.Item) -> int:
    group = _group_of(item)
    if group in FIRST_GROUPS:
        return 0
    if group is not None:
        return 1
    return 2 if item.get_closest_marker("slow") is not None else 3


#: Groups that run for minutes on one worker (a fitted calibration and what uses it; a toy NPE).
FIRST_GROUPS = ("npe_method", "npe_toy")


def _group_of(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    return None if mark is None else str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


def _loadgroup_groups(config: pytest.Config) -> None:
    """Refuse ``--dist loadgroup`` where it silently does not group: pytest 9.2 stores node ids where
    pytest-xdist 3.8 no longer writes its group suffix (pytest-dev/pytest-xdist#1386), so the groups
    above would run at the same time on different workers and their shared fixtures be built per worker."""
    from importlib.metadata import version

    if config.getoption("dist", None) != "loadgroup" or hasattr(config, "workerinput"):
        return

    def major_minor(package: str) -> tuple[int, int]:
        parts = version(package).split(".")
        return int(parts[0]), int(parts[1])

    if major_minor("pytest") >= (9, 2) and major_minor("pytest-xdist") <= (3, 8):
        raise pytest.UsageError(
            f"--dist loadgroup does not group with pytest {version('pytest')} and pytest-xdist "
            f"{version('pytest-xdist')} (pytest-dev/pytest-xdist#1386): install the pytest range pyproject.toml pins"
        )

"""The one provenance stamp of every results folder: code version, packages, time.

Runs, sweeps, thesis reports and calibrations all record :func:`stamp`.
A git commit is recorded only when the package sits in its own checkout (the
repository's top level is the folder holding this package's ``pyproject.toml``);
an installed copy inside some unrelated repository records the package version
alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from sim._version import __version__
from sim.scenario.shipped import project_root

PACKAGES = ("mesa", "numpy", "pandas", "pyarrow", "pydantic", "scipy", "matplotlib", "SALib", "dask", "pyabc")


def now_utc() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5)


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """Package version and, in the project's own git checkout, the commit and whether ``sim/`` is dirty."""
    info: dict[str, Any] = {"package": __version__, "git_commit": None, "git_dirty": None}
    root = project_root()
    if root is None:
        return info
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        top = _git(root, "rev-parse", "--show-toplevel")
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root:
            return info
        commit = _git(root, "rev-parse", "HEAD")
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", "sim")
            info["git_dirty"] = bool(status.stdout.strip())
    return info


@lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str], ...]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return tuple(out.items())


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results (read once a process: about 10 ms each)."""
    return dict(_package_versions())


def stamp() -> dict[str, Any]:
    """``code_version``, ``packages`` and ``created``: the fields every manifest carries."""
    return {"code_version": code_version(), "packages": package_versions(), "created": now_utc()}

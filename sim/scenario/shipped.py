"""Scenarios shipped with the package, found by name from any working directory.

The top-level ``scenarios/`` folder of the project is the one source of truth. A
wheel carries it as the package data ``sim/scenarios`` (mapped at build time in
``pyproject.toml``), found here through :mod:`importlib.resources`; a source
checkout (``PYTHONPATH``, editable install) uses the folder itself. Folder structure
is kept, so ``extends: ../synthetic_grid.yaml`` and a sweep's ``scenario:`` resolve
the same way in both.

Names are paths inside that folder without ``.yaml``: ``idlib_2017_2018``,
``synthetic_grid``, ``policies/none``; sweep files are named inside ``sweeps/``
(``mechanisms_morris``).
"""

from __future__ import annotations

import contextlib
from functools import cache
from importlib import resources
from pathlib import Path

PROJECT_NAME = "idlib-allegiance-sim"
PACKAGE = "sim"
SHIPPED_FOLDER = "scenarios"  # sim/scenarios in a wheel (pyproject.toml maps it)
SUFFIXES = (".yaml", ".yml")
#: Kinds of shipped file -> their folder inside the shipped scenarios.
KINDS = {"scenario": "", "sweep": "sweeps", "calibration": "calibration", "record": "record"}


def project_root() -> Path | None:
    """The source checkout holding this package (its ``pyproject.toml`` names the project), else None."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None
    with contextlib.suppress(OSError):
        if f'name = "{PROJECT_NAME}"' in pyproject.read_text(encoding="utf-8"):
            return root
    return None


@cache
def scenarios_dir() -> Path | None:
    """The folder of shipped scenarios: the checkout's ``scenarios/``, else the installed package data."""
    root = project_root()
    if root is not None and (root / "scenarios").is_dir():
        # A checkout wins even if some other install of the project provides ``sim.scenarios``.
        return root / "scenarios"
    # The package data folder has no __init__.py: look it up inside the (regular) package ``sim``.
    data = resources.files(PACKAGE).joinpath(SHIPPED_FOLDER)
    # Installed wheels unpack to real folders; a zipped install has no paths to hand to the loader.
    return data if isinstance(data, Path) and data.is_dir() else None


def _base(kind: str) -> Path | None:
    root = scenarios_dir()
    if root is None:
        return None
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return root / KINDS[kind] if KINDS[kind] else root


def shipped_names(kind: str = "scenario") -> list[str]:
    """Names of the shipped scenarios (``kind="scenario"``) or sweep files (``kind="sweep"``)."""
    base = _base(kind)
    if base is None:
        return []
    files = [p for p in base.rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    names = (p.relative_to(base).with_suffix("").as_posix() for p in files)
    others = tuple(f"{folder}/" for k, folder in KINDS.items() if folder and k != kind)
    return sorted(n for n in names if kind != "scenario" or not n.startswith(others))


def shipped_path(name: str, kind: str = "scenario") -> Path | None:
    """The shipped file called ``name`` (with or without ``.yaml``), or None."""
    base = _base(kind)
    if base is None or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        return None
    stem = name[: -len(suffix)] if (suffix := Path(name).suffix) in SUFFIXES else name
    if kind != "scenario":
        stem = stem.removeprefix(f"{KINDS[kind]}/")
    for suffix in SUFFIXES:
        candidate = base / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def resolve(name_or_path: str | Path, kind: str = "scenario") -> Path:
    """An existing file as given; else the shipped file of that name; else the path unchanged.

    The unchanged path lets the caller report "file not found" for it, with
    :func:`shipped_names` as the hint.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    return shipped_path(str(name_or_path), kind) or path

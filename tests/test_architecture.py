"""The layered package: import-linter's contracts hold, and they would catch a violation."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("scenario", "model", "run", "experiments", "analysis", "viz", "cli")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the package under ``root`` with the contracts of ``root/pyproject.toml``."""
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = (
        [str(exe)]
        if exe.exists()
        else [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [*cmd, "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_layer_contracts_are_kept():
    proc = _lint_imports(ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Layers: scenario -> model -> run -> experiments -> analysis -> viz -> cli KEPT" in out
    assert "Only the command line knows typer KEPT" in out
    assert "No import cycles between the modules of a layer KEPT" in out
    assert "3 kept, 0 broken" in out


def test_contracts_catch_an_upward_import_inside_a_function(tmp_path: Path):
    """A copy of the package where the scenario layer imports the CLI (lazily) must break the contract."""
    shutil.copytree(ROOT / "sim", tmp_path / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shipped = tmp_path / "sim" / "scenario" / "shipped.py"
    shipped.write_text(
        shipped.read_text(encoding="utf-8")
        + "\n\ndef _upward():\n    import typer\n\n    from sim.cli.main import app\n\n    return app, typer\n",
        encoding="utf-8",
    )
    proc = _lint_imports(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "BROKEN" in out and "sim.scenario.shipped -> sim.cli.main" in out
    assert "0 kept, 3 broken" in out


def test_contracts_catch_a_cycle_inside_a_layer(tmp_path: Path):
    """A copy where two sibling modules of the CLI import each other must break the acyclic contract only."""
    shutil.copytree(ROOT / "sim", tmp_path / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    common = tmp_path / "sim" / "cli" / "common.py"
    common.write_text(
        common.read_text(encoding="utf-8")
        + "\n\ndef _back():\n    from sim.cli.run_cmd import run\n\n    return run\n",
        encoding="utf-8",
    )
    proc = _lint_imports(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "No import cycles between the modules of a layer BROKEN" in out
    assert "2 kept, 1 broken" in out


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at any depth of the file (functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_cli_imports_typer():
    modules = sorted((ROOT / "sim").rglob("*.py"))
    assert len(modules) > 30
    users = {p.relative_to(ROOT).as_posix() for p in modules if "typer" in _imported_modules(p)}
    assert users, "the CLI must import typer (or this test scans the wrong files)"
    outside = sorted(u for u in users if not u.startswith("sim/cli/"))
    assert not outside, f"modules outside sim/cli import typer: {outside}"


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_is_a_package_in_the_contract(layer: str):
    import tomllib

    contract = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    layers = contract["contracts"][0]["layers"]
    assert (ROOT / "sim" / layer / "__init__.py").is_file()
    assert f"sim.{layer}" in layers
    # The contract lists the layers top (cli) to bottom (scenario): the order of the data flow, reversed.
    assert layers == [f"sim.{name}" for name in reversed(LAYERS)]


def test_top_level_import_is_light():
    """``import sim`` (the public API) does not pull in the model, pandas, Mesa or matplotlib."""
    code = (
        "import sys, sim; heavy = [m for m in ('mesa', 'pandas', 'matplotlib', 'sim.model', 'sim.run', 'typer') "
        "if m in sys.modules]; print(','.join(heavy)); assert callable(sim.run_model)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"import sim loaded {proc.stdout.strip()}"

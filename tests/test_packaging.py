"""Packaging: a non-editable install works from any folder, ships the scenarios, declares what it imports.

The install test builds the wheel from a copy of the project, installs it with ``--no-deps``
into a fresh virtual environment that sees the test environment's dependencies (a path
entry, not its site hooks, so the editable checkout stays invisible), and runs the
commands from a folder outside the checkout that is itself an unrelated git repository.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from sim._version import __version__

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: Declared but not imported by sim/: who needs them at run time.
RUNTIME_ONLY = {
    "altair": "mesa.visualization imports it (the app)",
    "networkx": "mesa.visualization imports it (the app)",
    "solara-server": "serves the app (solara's server half)",
    "solara-assets": "the app's JavaScript and CSS, offline",
    "ipyvuetify": "bounded below 2 for Mesa 3.3's SolaraViz (Vuetify 2)",
    "ipyvue": "bounded below 3 for Mesa 3.3's SolaraViz (Vuetify 2)",
}


#: Declared for code other work adds (calibration): must be imported once it lands.
def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.match(r"[A-Za-z0-9_.\-]+", req).group(0))


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    names: set[str] = set()
    for path in (ROOT / "sim").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in stdlib and n != "sim"}


#: Optional extras whose packages sim/ imports lazily, behind a one-line "install the extra" error.
OPTIONAL_EXTRAS = ("inference",)


def test_declared_dependencies_match_the_imports():
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared |= {_requirement_name(r) for extra in OPTIONAL_EXTRAS for r in extras[extra]}
    # dask[distributed] declares distributed.
    declared |= (
        {"distributed"}
        if any(r.startswith("dask[distributed]") for r in PYPROJECT["project"]["dependencies"])
        else set()
    )
    dists = packages_distributions()
    imported = {_norm(dists[m][0]) if m in dists else _norm(m) for m in _third_party_imports()}
    imported = {"solara" if n == "solara-ui" else n for n in imported}  # `import solara` comes from solara-ui
    assert {"scipy", "numpy", "mesa", "typer"} <= imported
    undeclared = imported - declared - {"solara-ui"}
    assert not undeclared, f"imported but not declared in pyproject.toml: {sorted(undeclared)}"
    unused = declared - imported - set(RUNTIME_ONLY) - {"solara-ui", "dask"}
    assert not unused, f"declared but nothing imports them (say why in RUNTIME_ONLY): {sorted(unused)}"


def test_pins_are_ranges_except_the_offline_app_assets():
    for req in PYPROJECT["project"]["dependencies"]:
        if "==" in req:
            assert _requirement_name(req).startswith("solara"), f"exact pin: {req}"
        else:
            assert any(op in req for op in (">=", "<")), f"no version range: {req}"


def test_torch_is_pinned_exactly_in_an_extra_the_test_extra_includes():
    """torch==2.13.0 is the CPU build the project's machines install; any other version pulls CUDA (GBs)."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "torch==2.13.0" in extras["inference"]
    assert not any(_requirement_name(r) == "torch" for r in PYPROJECT["project"]["dependencies"])
    assert "idlib-allegiance-sim[inference]" in extras["test"]
    for req in extras["inference"]:
        if _requirement_name(req) != "torch":
            assert any(op in req for op in (">=", "<")), f"no version range: {req}"


def test_metadata_files_and_version():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert "version" in project["dynamic"] and "version" not in project
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sim._version.__version__"}
    cff = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert "cff-version: 1.2.0" in cff and f"version: {__version__}" in cff
    assert (ROOT / "sim" / "py.typed").is_file()
    assert {"import-linter", "ema-workbench"} <= {
        _requirement_name(r) for r in project["optional-dependencies"]["test"]
    }


def test_every_subpackage_is_packaged():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sim").rglob("__init__.py")}
    assert found - listed == set(), f"sub-packages missing from [tool.setuptools] packages: {found - listed}"
    # besides the code: the shipped scenarios (mapped from scenarios/) and the data-only folders, each
    # listed so that setuptools packages it (an unlisted data folder is a namespace package it warns of)
    data = {f"sim.scenarios.{d.name}" for d in (ROOT / "scenarios").iterdir() if d.is_dir()}
    data |= {".".join(d.relative_to(ROOT).parts) for d in (ROOT / "sim").rglob("data") if d.is_dir()}
    assert listed - found == {"sim.scenarios", *data}
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    assert all(name in package_data for name in data), sorted(data - set(package_data))
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"sim.scenarios": "scenarios"}


# --------------------------------------------------------------------------- the installed wheel


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A wheel of the project installed into a fresh venv inside an unrelated git repository."""
    if shutil.which("git") is None:
        pytest.skip("git is needed to build the unrelated repository")
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("sim", "scenarios"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = base / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("*.whl")

    user = base / "user-repo"  # someone's own repository, where they install and run the tool
    user.mkdir()
    _git(user, "init", "-q")
    (user / "notes.txt").write_text("not this project\n", encoding="utf-8")
    _git(user, "add", "notes.txt")
    _git(user, "commit", "-q", "-m", "unrelated")
    venv = user / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # The test environment's packages as a plain path entry: its .pth hooks (the editable
    # install of the checkout) do not run, so only the wheel provides `sim`.
    (purelib / "test-env-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    work = user / "work"
    work.mkdir()
    return {"wheel": wheel, "venv": venv, "bin": venv / "bin", "work": work, "repo": user}


def _run(installed: dict[str, Path], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(
        [str(installed["bin"] / args[0]), *args[1:]],
        cwd=installed["work"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_wheel_carries_the_scenarios_and_metadata(installed: dict[str, Path]):
    with zipfile.ZipFile(installed["wheel"]) as whl:
        names = set(whl.namelist())
    scenarios = [p.relative_to(ROOT).as_posix() for p in (ROOT / "scenarios").rglob("*.yaml")]
    assert len(scenarios) >= 8
    missing = [f for f in scenarios if f"sim/{f}" not in names]
    assert not missing, f"scenario files missing from the wheel: {missing}"
    # Data files inside the package (e.g. the bundled geography) travel with it too.
    data = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "sim").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    ]
    missing = [f for f in data if f not in names]
    assert not missing, f"package data missing from the wheel (add it to [tool.setuptools.package-data]): {missing}"
    assert "sim/py.typed" in names
    dist_info = f"idlib_allegiance_sim-{__version__}.dist-info"
    assert f"{dist_info}/licenses/LICENSE" in names
    with zipfile.ZipFile(installed["wheel"]) as whl:
        meta = whl.read(f"{dist_info}/METADATA").decode()
    assert f"Version: {__version__}" in meta and "License-Expression: MIT" in meta


def test_installed_package_is_the_wheel(installed: dict[str, Path]):
    proc = _run(
        installed,
        "python",
        "-c",
        "import sim, sim.scenario.shipped as s; print(sim.__file__); print(s.scenarios_dir())",
    )
    assert proc.returncode == 0, proc.stderr
    module, scenarios = proc.stdout.split()
    assert Path(module).is_relative_to(installed["venv"]), module
    assert Path(scenarios).is_relative_to(installed["venv"]) and Path(scenarios).name == "scenarios"
    version = _run(installed, "sim", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"sim {__version__}"


def test_installed_run_by_name_records_no_foreign_commit(installed: dict[str, Path]):
    proc = _run(
        installed,
        "sim",
        "run",
        "synthetic_grid",
        "--days",
        "5",
        "--run-id",
        "r",
        "--set",
        "households.sample_fraction=0.05",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = installed["work"] / "results" / "synthetic_grid" / "r"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["days"] == 5
    assert Path(manifest["scenario_file"]).is_relative_to(installed["venv"])
    # The run sits inside the user's own git repository: its commit is not this package's version.
    assert manifest["code_version"] == {"package": __version__, "git_commit": None, "git_dirty": None}


def test_installed_validate_app_help_and_sweep_by_name(installed: dict[str, Path]):
    validate = _run(installed, "sim", "validate", "idlib_2017_2018")
    assert validate.returncode == 0, validate.stderr
    assert validate.stdout.startswith("ok: idlib_2017_2018 -> scenario 'idlib_2017_2018'")
    extends = _run(installed, "sim", "validate", "policies/resisting_towns")
    assert extends.returncode == 0 and "policy 'resisting_towns'" in extends.stdout, extends.stderr
    app = _run(installed, "sim", "app", "--help")
    assert app.returncode == 0 and "SCENARIO" in app.stdout, app.stderr
    missing = _run(installed, "sim", "validate", "no_such_scenario")
    assert missing.returncode == 2 and "shipped scenarios: idlib_2017_2018" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_installed_thesis_quick(installed: dict[str, Path]):
    proc = _run(
        installed,
        "sim",
        "thesis",
        "--quick",
        "--replicates",
        "2",
        "--days",
        "4",
        "--sample-fraction",
        "0.02",
        "--workers",
        "1",
        "--skip",
        "heatmap",
        "--out",
        "thesis",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "report:" in proc.stdout
    assert (installed["work"] / "thesis" / "report.md").is_file()


# --------------------------------------------------------------------------- command-line conventions


@pytest.fixture(scope="module")
def cli_app():
    import importlib

    main = importlib.import_module("sim.cli.main")  # sim.cli.main is also the name of the entry function
    if not any(info.name == "sweep" for info in main.app.registered_commands):
        main._register_commands()
    return main.app


def _help(app, *args: str) -> str:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*args, "-h"], terminal_width=160, env={"COLUMNS": "160", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_help_has_readable_metavars(cli_app):
    top = _help(cli_app)
    assert "--version" in top and "-h" in top
    commands = [info.name or info.callback.__name__ for info in cli_app.registered_commands]
    assert {"validate", "run", "sweep", "sensitivity", "thesis", "plot", "results", "app"} <= set(commands)
    for name in commands:
        text = _help(cli_app, name)
        usage = next(line for line in text.splitlines() if "Usage:" in line)
        assert "{" not in usage, f"sim {name}: braces in the usage line: {usage.strip()}"
        typed = re.findall(r"<(?:bool|int|float|str|path|list\[[^\]]*\])>", text)
        assert not typed, f"sim {name} --help shows Python types {typed}"
        assert "-h" in text, f"sim {name}: no -h"
    assert "SCENARIO" in _help(cli_app, "run") and "KEY=VALUE" in _help(cli_app, "run")
    assert "SWEEP" in _help(cli_app, "sweep")


def test_version_flag_and_module_entry(sim_command: list[str]):
    for cmd in (sim_command, [sys.executable, "-m", "sim"]):
        proc = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.strip() == f"sim {__version__}", proc.stderr

"""The one provenance stamp: a git commit only from the project's own checkout; sweep sessions timed from the start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sim._version import __version__
from sim.run.provenance import code_version

ROOT = Path(__file__).resolve().parents[1]
CODE_VERSION = "import json; from sim.run.provenance import code_version; print(json.dumps(code_version()))"


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout.strip()


def _unrelated_repo(path: Path) -> str:
    path.mkdir(parents=True)
    _git(path, "init", "-q")
    (path / "notes.txt").write_text("someone else's project\n", encoding="utf-8")
    _git(path, "add", "notes.txt")
    _git(path, "commit", "-q", "-m", "unrelated")
    return _git(path, "rev-parse", "HEAD")


def _code_version_of_copy(where: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    proc = subprocess.run([sys.executable, "-c", CODE_VERSION], cwd=where, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def needs_git():
    if shutil.which("git") is None:
        pytest.skip("git not installed")


def test_checkout_records_its_commit(needs_git):
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    info = code_version()
    assert info["package"] == __version__
    assert info["git_commit"] == _git(ROOT, "rev-parse", "HEAD")


@pytest.mark.parametrize("layout", ["package-only", "project-in-subfolder"])
def test_copy_inside_an_unrelated_repository_records_no_commit(tmp_path: Path, needs_git, layout: str):
    """A copy of the package in someone else's repository (as site-packages, or the project nested in it)."""
    repo = tmp_path / "user-repo"
    foreign = _unrelated_repo(repo)
    where = repo / ("lib" if layout == "package-only" else "vendor/idlib")
    where.mkdir(parents=True)
    shutil.copytree(ROOT / "sim", where / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    if layout == "project-in-subfolder":  # the project's own pyproject.toml, but the repository's top is elsewhere
        shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    info = _code_version_of_copy(where)
    assert info == {"package": __version__, "git_commit": None, "git_dirty": None}
    assert foreign not in json.dumps(info)


def test_own_repository_at_the_project_root_records_its_commit(tmp_path: Path, needs_git):
    """The positive case of the same rule: the project at a repository's top level is recorded."""
    project = tmp_path / "clone"
    project.mkdir()
    shutil.copytree(ROOT / "sim", project / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    _git(project, "init", "-q")
    _git(project, "add", "sim", "pyproject.toml")
    _git(project, "commit", "-q", "-m", "clone")
    info = _code_version_of_copy(project)
    assert info["git_commit"] == _git(project, "rev-parse", "HEAD") and info["git_dirty"] is False


def slow_model(task: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A sweep model function that takes a while (resolved by name as ``test_provenance:slow_model``)."""
    time.sleep(1.2)
    return {name: float(task["params"]["x"]) for name in context["outcomes"]}


def test_sweep_session_is_stamped_before_its_first_run(tmp_path: Path):
    from datetime import datetime

    from sim.experiments.spec import spec_from_dict
    from sim.experiments.sweep import run_sweep

    spec = spec_from_dict(
        {
            "name": "timed",
            "model": "test_provenance:slow_model",
            "root_seed": 1,
            "replicates": 1,
            "outcomes": ["y"],
            "design": {"method": "factorial"},
            "parameters": {"x": {"values": [0.1, 0.2]}},
        }
    )
    before = datetime.now().astimezone().replace(microsecond=0)
    summary = run_sweep(spec, tmp_path, workers=1, progress=False)
    assert summary.ran == 2 and summary.failed == 0
    (session,) = json.loads((summary.folder / "manifest.json").read_text(encoding="utf-8"))["sessions"]
    started, finished = datetime.fromisoformat(session["started"]), datetime.fromisoformat(session["finished"])
    # Stamped when the sweep began (to the second), not when it ended: two runs of 1.2 s lie between the stamps.
    assert 0 <= (started - before).total_seconds() <= 1
    assert (finished - started).total_seconds() >= 2

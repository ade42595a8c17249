#!/usr/bin/env python3
"""Bootstrap and task runner that needs nothing but python3.

    python3 dev.py run     # the historical Idlib scenario and its summary
    python3 dev.py test    # the whole test suite, in parallel (pytest -n auto --dist loadgroup)

Each command creates ``.venv`` (once, and again when pyproject.toml changes),
installs the project with its test dependencies into it, then runs.
Any further arguments are passed on (``python3 dev.py test -k config``).

``test`` runs one pytest-xdist worker per CPU core (``-n auto``; set
PYTEST_XDIST_AUTO_NUM_WORKERS to use fewer, e.g. on a shared machine) and keeps the
tests of one ``xdist_group`` on one worker (``--dist loadgroup``; see tests/conftest.py).
Give ``-n``/``--numprocesses`` (``-n 0``: no workers) or ``-p no:xdist`` to choose
otherwise.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-pyproject-sha256"


def _ensure_env() -> None:
    """Create the virtual environment and install the project when needed."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", "--upgrade", "pip"], check=True)
    print("installing the project and its dependencies into .venv ...", flush=True)
    subprocess.run([*pip, "install", "-q", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(digest)


def _parallel(args: list[str]) -> list[str]:
    """pytest-xdist options, unless the arguments already choose (``-n``, ``--numprocesses``, ``-p no:xdist``)."""
    chosen = any(a.startswith(("-n", "--numprocesses", "--dist")) or a in ("no:xdist", "-pno:xdist") for a in args)
    return [] if chosen else ["-n", "auto", "--dist", "loadgroup"]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test"}:
        print(__doc__)
        return 2
    _ensure_env()
    task, rest = argv[0], argv[1:]
    if task == "run":
        cmd = [str(BIN / "sim"), "run", str(ROOT / "scenarios" / "idlib_2017_2018.yaml"), *rest]
    else:
        cmd = [str(BIN / "python"), "-m", "pytest", "-q", *_parallel(rest), *rest]
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Every notebook executes top to bottom in its small-size mode (outputs to a temporary folder)."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_found():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_idlib_2017_2018.ipynb",
        "03_thesis.ipynb",
        "04_sweeps_and_sensitivity.ipynb",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_small(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    stored = nbformat.read(path, as_version=4)
    assert all(
        not c.get("outputs") and c.get("execution_count") is None for c in stored.cells if c.cell_type == "code"
    ), f"{path.name} is committed with outputs; clear them"
    monkeypatch.setenv("SIM_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("SIM_NOTEBOOK_OUT", str(tmp_path / "results"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    t0 = time.perf_counter()
    client = NotebookClient(stored, timeout=300, kernel_name="python3", resources={"metadata": {"path": path.parent}})
    client.execute()
    seconds = time.perf_counter() - t0
    images = sum(1 for c in stored.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert images >= 3, f"{path.name} drew {images} figures"
    assert (tmp_path / "results").is_dir(), "the notebook writes its results under SIM_NOTEBOOK_OUT"
    print(f"{path.name}: {seconds:.1f} s, {images} figures")

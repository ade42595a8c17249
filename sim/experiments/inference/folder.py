"""A calibration folder: preparing it for a sampler (fingerprint, --fresh), and reading a finished one.

``calibration.json`` marks the folder as one calibration's: the fingerprint of its configuration
(calibration file, scenario, scale, ``--quick``) and the method. A folder holding another
calibration is refused before anything is written. A finished folder (``manifest.json``,
``posterior.parquet``, ``marginals.csv``) is read back by :func:`load_calibration_folder`, which
names the file at fault when one is missing, empty, truncated or not what it should be.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.experiments.inference.base import CalibrationConflict
from sim.run.store import write_json_atomic
from sim.scenario.calibration import Calibration, Prior
from sim.scenario.loader import ScenarioError

FINGERPRINT = "calibration.json"
MANIFEST = "manifest.json"
POSTERIOR = "posterior.parquet"
MARGINALS = "marginals.csv"


class CalibrationFolderError(ScenarioError):
    """A stored calibration folder that cannot be read: names the file and the problem."""


def check_folder(cal: Calibration, folder: Path, fresh: bool) -> None:
    """Refuse a folder of a different calibration or of another method (before anything is written)."""
    marker = Path(folder) / FINGERPRINT
    if fresh or not marker.exists():
        return
    try:
        stored = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        stored = None
    if not isinstance(stored, dict):
        raise CalibrationConflict(f"{marker}: not a calibration fingerprint (unreadable); re-run with --fresh")
    grows = (  # npe: a changed budget over the same simulations grows the stored reference table
        cal.budget.method == "npe"
        and stored.get("method") == "npe"
        and stored.get("reference_fingerprint") == cal.reference_fingerprint()
    )
    if stored.get("fingerprint") != cal.fingerprint() and not grows:
        raise CalibrationConflict(
            f"{folder} holds a calibration with a different configuration "
            f"(file, scenario, scale or --quick changed); re-run with --fresh to discard it"
        )
    method = stored.get("method", cal.budget.method)
    if method != cal.budget.method:
        raise CalibrationConflict(
            f"{folder} holds a calibration sampled by method {method!r}, not {cal.budget.method!r}; "
            "re-run with --fresh to discard it, or give --method " + str(method)
        )


def prepare_folder(cal: Calibration, folder: str | Path, fresh: bool) -> Path:
    """Refuse a folder of another calibration, empty it with ``fresh``, and mark it as this one's."""
    folder = Path(folder)
    check_folder(cal, folder, fresh)
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        {
            "fingerprint": cal.fingerprint(),
            "method": cal.budget.method,
            "reference_fingerprint": cal.reference_fingerprint(),
            "calibration": str(cal.path),
            "name": cal.name,
        },
        folder / FINGERPRINT,
    )
    return folder


# --------------------------------------------------------------------------- reading a finished folder


@dataclass
class StoredCalibration:
    """A calibration folder read back: its manifest, priors, posterior and marginals."""

    folder: Path
    manifest: dict[str, Any]
    priors: tuple[Prior, ...]
    posterior: pd.DataFrame
    marginals: pd.DataFrame

    @property
    def calibration_id(self) -> str:
        """The calibration's id."""
        return str(self.manifest["calibration_id"])


def _bad(path: Path, problem: str) -> CalibrationFolderError:
    return CalibrationFolderError(path, problem)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a calibration folder, or :class:`CalibrationFolderError` naming the file."""
    if not path.exists():
        raise _bad(path, "missing (not a finished calibration folder)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _bad(path, f"cannot be read ({type(e).__name__})") from None
    if not text.strip():
        raise _bad(path, "empty; re-run the calibration")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad(
            path,
            f"not valid JSON (truncated or corrupt: {e.msg}, line {e.lineno} column {e.colno}); re-run the calibration",
        ) from None
    if not isinstance(data, dict):
        raise _bad(path, "not a JSON object; re-run the calibration")
    return data


def read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A Parquet or CSV table of a calibration folder with ``columns``, or :class:`CalibrationFolderError`."""
    if not path.exists():
        raise _bad(path, "missing (not a finished calibration folder)")
    if path.stat().st_size == 0:
        raise _bad(path, "empty; re-run the calibration")
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:  # pyarrow, pandas and the OS each raise their own kind for a corrupt file
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise _bad(path, f"cannot be read (truncated or corrupt: {reason}); re-run the calibration") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise _bad(path, f"lacks the column {missing[0]!r}; re-run the calibration")
    if not len(df):
        raise _bad(path, "has no rows; re-run the calibration")
    return df


def load_calibration_folder(folder: str | Path) -> StoredCalibration:
    """Read a calibration folder written by :func:`sim.experiments.inference.driver.calibrate`.

    Raises:
        CalibrationFolderError: a file is missing, empty, truncated or lacks what it should hold
            (the message names the file).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise _bad(folder, "not a calibration folder (no such folder)")
    mf = folder / MANIFEST
    manifest = read_json(mf)
    try:
        str(manifest["calibration_id"])
        priors = tuple(
            Prior(p["path"], p["family"], p["low"], p["high"], p["mean"], p["sd"], p["reason"])
            for p in manifest["priors"]
        )
    except (KeyError, TypeError) as e:
        raise _bad(mf, f"not a calibration manifest (no {e} entry); re-run the calibration") from None
    paths = [p.path for p in priors]
    posterior = read_table(folder / POSTERIOR, ["generation", "weight", *paths])
    marginals = read_table(
        folder / MARGINALS, ["parameter", "posterior_median", "posterior_low", "posterior_high", "record"]
    )
    return StoredCalibration(folder, manifest, priors, posterior, marginals)

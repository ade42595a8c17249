"""Where results go: the one atomic writer, Parquet tables, and run folders.

Every file the project writes into a results folder goes through
:func:`write_atomic` (temporary file in the same folder, fsync, rename), and a
run folder appears whole or not at all (:func:`write_run` writes into a hidden
temporary folder and renames it into place). Runs, sweeps, thesis reports and
calibrations all use these functions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class OutputError(OSError):
    """A results location that cannot be written: one line naming the path and the reason.

    Every write failure of the writers below (disk full included) is raised as this, after
    cleaning up, so the command line prints it as one line without a traceback. It is an
    ``OSError``, so code that handled the operating system's errors still does.
    """

    def __init__(self, path: str | Path, message: str, reason: str = ""):
        self.path = Path(path)
        self.message = message
        self.reason = reason or message
        super().__init__(message)


class OutputExistsError(OutputError, FileExistsError):
    """The folder to create exists already (never overwritten)."""


def os_reason(e: OSError) -> str:
    """The operating system's reason for an error (e.g. 'No space left on device'), in one line."""
    if e.errno:
        return os.strerror(e.errno)
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def check_output_dir(path: str | Path) -> None:
    """Check, before any compute, that ``path`` is (or can become) a writable folder.

    The path must be a folder or not exist yet; nothing on the way to it may be a file; and
    the nearest existing folder must accept a new entry (probed by creating and removing a
    hidden folder, which also catches read-only and pseudo file systems). Nothing is left behind.

    Raises:
        OutputError: ``"<path>: <problem>"``.
    """
    path = Path(path)
    existing = path
    while not (existing.exists() or existing.is_symlink()):
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        if existing == path:
            raise OutputError(path, f"{path}: exists and is not a folder")
        raise OutputError(path, f"{path}: cannot be created: {existing} is a file, not a folder")
    try:
        Path(tempfile.mkdtemp(prefix=".sim-write-check-", dir=existing)).rmdir()
    except OSError as e:
        where = "" if existing == path else f" (nearest existing folder {existing})"
        raise OutputError(path, f"{path}: cannot write here{where}: {os_reason(e)}") from None


def _temporary_sibling(path: Path) -> Path:
    """A hidden temporary name beside ``path`` that keeps its suffix (plotting infers the format from it)."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}-{secrets.token_hex(3)}{path.suffix}")


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, fsync it, then rename it to ``path``.

    Raises:
        OutputError: if anything fails at the operating-system level (the temporary file is removed).
    """
    path = Path(path)
    tmp = _temporary_sibling(path)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise OutputError(path, f"cannot write {path}: {os_reason(e)}", os_reason(e)) from None
        raise


def write_text_atomic(text: str, path: Path) -> None:
    """Write a text file atomically."""
    write_atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json_atomic(data: Any, path: Path) -> None:
    """Write a JSON file atomically."""
    write_text_atomic(json.dumps(data, indent=2, default=str) + "\n", path)


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet table atomically, byte-identical for identical data."""
    write_atomic(path, lambda p: pq.write_table(table, p, compression="zstd", write_statistics=True))


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as Parquet atomically, byte-identical for identical data."""
    write_table_atomic(pa.Table.from_pandas(df, preserve_index=False), path)


def write_csv_atomic(df: pd.DataFrame, path: Path, **kw: Any) -> None:
    """Write a DataFrame as CSV atomically."""
    write_atomic(path, lambda p: df.to_csv(p, index=False, **kw))


def new_run_id(seed: int) -> str:
    """``<UTC time to the microsecond>_seed<seed>_<random suffix>``: sortable, unique under concurrency."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")
    return f"{stamp}_seed{seed}_{secrets.token_hex(2)}"


def run_folder(out_root: str | Path, scenario_name: str, run_id: str) -> Path:
    """``<out_root>/<scenario>/<run-id>``."""
    return Path(out_root) / scenario_name / run_id


def write_folder(final: Path, write_contents: Callable[[Path], None]) -> Path:
    """Create ``final`` whole or not at all: ``write_contents(tmp)`` fills a hidden sibling, renamed at the end.

    Parent folders created here are removed again if anything fails, so a failure leaves
    nothing behind.

    Raises:
        OutputError: if ``final`` exists or anything fails at the operating-system level.
    """
    final = Path(final)
    if final.exists():
        raise OutputExistsError(final, f"cannot write {final}: it already exists")
    created: list[Path] = []
    parent = final.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        write_contents(tmp)
        # rename(2) onto an existing empty folder would succeed silently: refuse it explicitly.
        if final.exists():
            raise OutputExistsError(final, f"cannot write {final}: it already exists")
        os.rename(tmp, final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(e, OutputError):
            if str(tmp) not in e.message:
                raise
            # Name the folder the user asked for, not the hidden temporary one.
            raise OutputError(final, f"cannot write {final}: {e.reason}", e.reason) from None
        if isinstance(e, OSError):
            raise OutputError(final, f"cannot write {final}: {os_reason(e)}", os_reason(e)) from None
        raise
    return final


def write_run(
    frames: dict[str, pd.DataFrame],
    manifest: dict[str, Any],
    final: Path,
    *,
    snapshots: dict[int, dict[str, Any]] | None = None,
    extras: Callable[[Path], dict[str, Any]] | None = None,
) -> Path:
    """Write a run folder atomically: its tables, household snapshots, extras and ``manifest.json``.

    Args:
        frames: the run's tables (``timeseries``, ``towns``, ``events``).
        manifest: provenance and configuration; ``run_id`` and ``files`` are added here.
        final: the run folder to create (must not exist).
        snapshots: household tables by day, written as ``households_dayNNNN.parquet``.
        extras: called with the temporary folder to add files (figures, comparison tables);
            returns entries to add to the manifest.
    """

    def contents(tmp: Path) -> None:
        for name, df in frames.items():
            write_parquet(df, tmp / f"{name}.parquet")
        for day, snap in (snapshots or {}).items():
            write_parquet(pd.DataFrame(snap), tmp / f"households_day{day:04d}.parquet")
        full = dict(manifest, run_id=final.name)
        if extras is not None:
            full.update(extras(tmp))
        full["files"] = sorted(p.name for p in tmp.iterdir() if not p.name.startswith("."))
        write_json_atomic(full, tmp / "manifest.json")

    return write_folder(final, contents)

"""Store: *where results go*. A sweep folder of atomic Parquet parts that can be resumed.

Layout of ``<out>/<sweep name>/``::

    manifest.json     sweep file and hash, plan hash, design, root seed, code version, sessions
    design.parquet    one row per design point (unit coordinates and values)
    runs.parquet      one row per planned run: run, point, replicate, seed
    parts/part-NNNNNN.parquet   result rows, written in batches as runs finish

Each part is written to a temporary file and moved into place with
``os.replace``, so a part is either complete or absent, even after SIGKILL.
The set of completed runs is read from the parts on disk, never from memory,
so re-running a sweep skips exactly the runs already stored and the resumed
dataset equals an uninterrupted one. A lock file stops two processes writing
to the same folder.

Every stored file is read back through :mod:`sim.run.files`, so a missing, empty, truncated or
damaged manifest or part is one :class:`~sim.run.files.StoredFileError` naming the file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from sim.experiments.spec import SweepSpec
from sim.run.files import read_json, read_parquet, read_table
from sim.run.store import OutputError, os_reason, write_json_atomic, write_table_atomic
from sim.scenario.loader import ScenarioError

TIMING_COLUMNS = ("wall_time_s", "worker")
"""Columns that describe how a run was executed, not what it produced."""

SERIES_PREFIX = "series:"
_PART = re.compile(r"^part-(\d{6,})\.parquet$")
_ARROW = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "string": pa.string()}


def result_schema(spec: SweepSpec) -> pa.Schema:
    """The Arrow schema of every part of a sweep (same in every part, failed runs included)."""
    fields = [
        pa.field("run", pa.int64()),
        pa.field("point", pa.int64()),
        pa.field("replicate", pa.int64()),
        pa.field("seed", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("error", pa.string()),
        pa.field("traceback", pa.string()),
    ]
    fields += [pa.field(p.name, _ARROW[p.dtype]) for p in spec.parameters]
    fields += [pa.field(o, pa.float64()) for o in spec.outcomes]
    fields += [pa.field(SERIES_PREFIX + s, pa.list_(pa.float64())) for s in spec.series]
    fields += [pa.field("wall_time_s", pa.float64()), pa.field("worker", pa.string())]
    return pa.schema(fields)


class SweepStore:
    """The results folder of one sweep."""

    def __init__(self, root: str | Path, spec: SweepSpec | None = None) -> None:
        self.root = Path(root)
        self.spec = spec
        self.parts_dir = self.root / "parts"
        self._lock_fh = None
        self._next_part = 1

    # ------------------------------------------------------------------ paths

    @property
    def manifest_path(self) -> Path:
        """``manifest.json``."""
        return self.root / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        """The stored manifest."""
        if not self.manifest_path.exists():
            raise ScenarioError(self.root, "not a sweep results folder (no manifest.json)")
        return read_json(self.manifest_path, expect=dict)

    def part_files(self) -> list[Path]:
        """Completed parts in write order (temporary files are ignored)."""
        if not self.parts_dir.exists():
            return []
        parts = [p for p in self.parts_dir.iterdir() if _PART.match(p.name)]
        return sorted(parts, key=lambda p: int(_PART.match(p.name).group(1)))  # type: ignore[union-attr]

    # ------------------------------------------------------------------ writing

    def lock(self) -> None:
        """Take the folder's write lock (released when the process ends, even by SIGKILL)."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.root / ".lock", "w")  # held for the store lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise ScenarioError(self.root, "another process is writing this sweep (locked)") from None
        self._lock_fh = fh

    def unlock(self) -> None:
        """Release the write lock."""
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def prepare(
        self, manifest: dict[str, Any], design: pd.DataFrame, runs: pd.DataFrame, *, fresh: bool = False
    ) -> dict[int, str]:
        """Create or reopen the folder for writing; return the stored runs ``{run: status}``.

        Raises:
            ScenarioError: if the folder holds results of a different plan (unless ``fresh``).
        """
        created = [p for p in (self.root, *self.root.parents) if not p.exists()]
        self.lock()
        try:
            return self._prepare(manifest, design, runs, fresh=fresh)
        except BaseException as e:
            self.unlock()
            if created:  # a new folder that failed to set up: leave nothing behind
                shutil.rmtree(self.root, ignore_errors=True)
                for folder in created[1:]:
                    with contextlib.suppress(OSError):
                        folder.rmdir()
            if isinstance(e, OSError) and not isinstance(e, OutputError):
                raise OutputError(self.root, f"cannot write {self.root}: {os_reason(e)}", os_reason(e)) from None
            raise

    def _prepare(
        self, manifest: dict[str, Any], design: pd.DataFrame, runs: pd.DataFrame, *, fresh: bool
    ) -> dict[int, str]:
        if fresh:
            for name in ("parts", "manifest.json", "design.parquet", "runs.parquet"):
                target = self.root / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        old = read_json(self.manifest_path, expect=dict) if self.manifest_path.exists() else None
        if old is not None and old.get("plan_hash") != manifest["plan_hash"]:
            raise ScenarioError(
                manifest.get("sweep_file") or self.root,
                f"{self.root} holds results of a different plan of this sweep (parameters, seeds, "
                "scenario or outcomes changed); use --fresh to discard them or rename the sweep",
                key="name",
            )
        if old is None and self.part_files():
            raise ScenarioError(self.root, "has result parts but no manifest.json; use --fresh")
        done = self.completed()  # every stored part readable (else one error naming it) before anything is written
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.parts_dir.glob(".part-*"):  # left by a killed writer
            tmp.unlink()
        if old is not None:
            manifest = dict(manifest, created=old.get("created"), sessions=old.get("sessions", []))
        write_json_atomic(manifest, self.manifest_path)
        write_table_atomic(pa.Table.from_pandas(design, preserve_index=False), self.root / "design.parquet")
        write_table_atomic(pa.Table.from_pandas(runs, preserve_index=False), self.root / "runs.parquet")
        parts = self.part_files()
        self._next_part = 1 + (int(_PART.match(parts[-1].name).group(1)) if parts else 0)  # type: ignore[union-attr]
        return done

    def completed(self) -> dict[int, str]:
        """``{run: status}`` of every run stored in the parts on disk."""
        done: dict[int, str] = {}
        for part in self.part_files():
            t = read_table(part, columns=["run", "status"])
            done.update(zip(t.column("run").to_pylist(), t.column("status").to_pylist(), strict=True))
        return done

    def write_part(self, records: list[dict[str, Any]]) -> Path | None:
        """Write result records as the next part, atomically."""
        if not records:
            return None
        assert self.spec is not None, "a store opened for writing needs its spec"
        table = pa.Table.from_pylist(records, schema=result_schema(self.spec))
        path = self.parts_dir / f"part-{self._next_part:06d}.parquet"
        write_table_atomic(table, path)
        self._next_part += 1
        return path

    def add_session(self, session: dict[str, Any]) -> None:
        """Append one invocation's record (engine, runs, failures, time) to the manifest."""
        m = self.manifest()
        m.setdefault("sessions", []).append(session)
        m["updated"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        write_json_atomic(m, self.manifest_path)

    # ------------------------------------------------------------------ reading

    def load(self, *, timing: bool = False, series: bool = False) -> pd.DataFrame:
        """All stored result rows, sorted by run.

        Args:
            timing: keep the execution columns (wall time, worker).
            series: keep the daily series (list columns).
        """
        parts = self.part_files()
        if not parts:
            m = self.manifest()
            return pd.DataFrame(
                columns=[
                    "run",
                    "point",
                    "replicate",
                    "seed",
                    "status",
                    "error",
                    *m.get("parameter_columns", []),
                    *m.get("outcomes", []),
                ]
            )
        tables = [read_table(p, required=["run", "status"]) for p in parts]
        try:
            df = pa.concat_tables(tables).to_pandas()
        except (pa.ArrowException, ValueError) as e:  # parts written by another version of the sweep
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ScenarioError(self.parts_dir, f"result parts do not share one table schema: {first}") from None
        dup = df["run"].duplicated()
        if dup.any():  # cannot happen with one writer; keep the first record if it ever does
            df = df[~dup]
        drop = [] if timing else [c for c in TIMING_COLUMNS if c in df]
        if not series:
            drop += [c for c in df.columns if c.startswith(SERIES_PREFIX)]
        return df.drop(columns=drop).sort_values("run", kind="stable").reset_index(drop=True)

    def design(self) -> pd.DataFrame:
        """The design table."""
        return read_parquet(self.root / "design.parquet", required=["point"])

    def runs(self) -> pd.DataFrame:
        """The planned runs."""
        return read_parquet(self.root / "runs.parquet", required=["run", "point", "replicate", "seed"])

    def series(self, name: str) -> pd.DataFrame:
        """One daily series in long form: run, point, replicate, day, value."""
        col = SERIES_PREFIX + name
        df = self.load(series=True)
        if col not in df:
            raise KeyError(f"series {name!r} was not kept by this sweep")
        df = df[df["status"] == "ok"][["run", "point", "replicate", col]].explode(col)
        df["day"] = df.groupby("run").cumcount()
        return df.rename(columns={col: "value"}).astype({"value": float}).reset_index(drop=True)


def load_results(folder: str | Path, *, timing: bool = False, series: bool = False) -> pd.DataFrame:
    """Result rows of a sweep folder, sorted by run (see :meth:`SweepStore.load`)."""
    return SweepStore(folder).load(timing=timing, series=series)

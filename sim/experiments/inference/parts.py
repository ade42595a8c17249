"""A sampler's table, appended in atomically written Parquet parts and compacted at the end.

Layout in a calibration folder, for a table ``<name>``::

    <name>.parquet              the table as of the last compaction (what readers use)
    <name>.parts/part-NNNNNN.parquet   rows appended since, one part per batch

Each part is written to a temporary file and moved into place (``os.replace``), so a part is
complete or absent, even after SIGKILL: a kill loses at most the batch in flight, and nothing
already stored is rewritten while sampling. :meth:`PartTable.compact` folds the parts into
``<name>.parquet`` (atomically) and removes them; rows are told apart by their key columns, so
a kill between the two steps stores nothing twice. A table without parts (for instance one
written whole by an earlier version) is read as it is and continued.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pandas as pd

from sim.run.store import write_parquet

_PART = re.compile(r"^part-(\d{6,})\.parquet$")


class PartTable:
    """The table ``name`` of a folder, keyed by ``key`` and kept sorted by ``order``."""

    def __init__(self, folder: str | Path, name: str, key: tuple[str, ...], order: tuple[str, ...] | None = None):
        self.folder = Path(folder)
        self.path = self.folder / f"{name}.parquet"
        self.parts_dir = self.folder / f"{name}.parts"
        self.key = list(key)
        self.order = list(order or key)

    def part_files(self) -> list[Path]:
        """Completed parts in write order (temporary files are ignored)."""
        if not self.parts_dir.exists():
            return []
        parts = [p for p in self.parts_dir.iterdir() if _PART.match(p.name)]
        return sorted(parts, key=lambda p: int(_PART.match(p.name).group(1)))  # type: ignore[union-attr]

    def load(self) -> pd.DataFrame:
        """The compacted table and every part after it, without duplicate keys, sorted."""
        frames = [pd.read_parquet(self.path)] if self.path.exists() else []
        frames += [pd.read_parquet(p) for p in self.part_files()]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame()
        table = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        table = table.drop_duplicates(subset=self.key, keep="first")
        return table.sort_values(self.order, kind="stable").reset_index(drop=True)

    def append(self, rows: pd.DataFrame) -> Path | None:
        """Write ``rows`` as the next part, atomically."""
        if not len(rows):
            return None
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        parts = self.part_files()
        n = 1 + (int(_PART.match(parts[-1].name).group(1)) if parts else 0)  # type: ignore[union-attr]
        path = self.parts_dir / f"part-{n:06d}.parquet"
        write_parquet(rows.reset_index(drop=True), path)
        return path

    def rewrite(self, table: pd.DataFrame) -> None:
        """Store ``table`` as the whole table (atomically) and drop the parts it holds."""
        write_parquet(table.reset_index(drop=True), self.path)
        if self.parts_dir.exists():
            for p in self.parts_dir.iterdir():
                with contextlib.suppress(OSError):
                    p.unlink()
            with contextlib.suppress(OSError):
                self.parts_dir.rmdir()

    def compact(self) -> pd.DataFrame:
        """Fold the parts into ``<name>.parquet``; the whole table."""
        table = self.load()
        if self.part_files() or (len(table) and not self.path.exists()):
            self.rewrite(table)
        return table

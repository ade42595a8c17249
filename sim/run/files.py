"""The one reader per format of the files stored in results folders: JSON, Parquet, CSV and text.

Results folders are read back by ``sim plot``, ``sim analyze``, a resumed sweep or calibration,
the thesis and the API (:mod:`sim.analysis.results`). A file there may be missing, empty,
truncated (a copy that stopped half-way, a full disk), damaged, or of the wrong kind; every
such failure is raised as one :class:`StoredFileError` naming the file (and, for JSON, the
line) and the problem. It is a :class:`~sim.scenario.loader.ScenarioError`, so the command
line prints it as one line and exits with status 2, without a traceback, before writing anything.

Example::

    manifest = read_json(folder / "manifest.json", expect=dict)
    runs = read_parquet(folder / "runs.parquet", required=("run", "seed"))
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sim.scenario.loader import ScenarioError

__all__ = ["StoredFileError", "read_csv", "read_json", "read_parquet", "read_table", "read_text"]


class StoredFileError(ScenarioError):
    """A stored file that cannot be read back: one line naming the file and the problem."""


def _reason(e: OSError) -> str:
    if e.errno:
        return os.strerror(e.errno)
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _read_bytes(path: Path, kind: str, *, allow_empty: bool = False) -> bytes:
    """The bytes of a stored file, refusing a missing or unreadable one (and an empty one unless allowed)."""
    if not path.exists():
        raise StoredFileError(path, "file not found")
    if path.is_dir():
        raise StoredFileError(path, f"is a folder, not a {kind} file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise StoredFileError(path, f"cannot read: {_reason(e)}") from None
    if not allow_empty and not raw.strip():
        raise StoredFileError(path, f"empty file (expected {kind})")
    return raw


def read_text(path: str | Path, kind: str = "text", *, allow_empty: bool = True) -> str:
    """A stored UTF-8 text file (e.g. a ``report.md``).

    Raises:
        StoredFileError: missing, unreadable, not UTF-8, or empty where ``allow_empty`` is false.
    """
    path = Path(path)
    raw = _read_bytes(path, kind, allow_empty=allow_empty)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StoredFileError(path, f"not UTF-8 text ({e.reason} at byte {e.start}); damaged?") from None


def read_json(path: str | Path, *, expect: type | None = None) -> Any:
    """A stored JSON file (``manifest.json``, a calibration's or a thesis's JSON).

    Args:
        path: the file.
        expect: the type the document must have (``dict`` for a manifest), or None for any.

    Raises:
        StoredFileError: missing, unreadable, empty, not UTF-8, not JSON (a truncated file
            included, with the line where it stops making sense) or not of type ``expect``.
    """
    path = Path(path)
    text = read_text(path, "JSON", allow_empty=False)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        end = "; the file is cut short (truncated)" if e.pos >= len(text.rstrip()) else ""
        raise StoredFileError(path, f"not valid JSON: {e.msg} (column {e.colno}){end}", line=e.lineno) from None
    except RecursionError:
        raise StoredFileError(path, "not valid JSON: nested too deeply") from None
    if expect is not None and not isinstance(data, expect):
        want = {dict: "an object", list: "an array"}.get(expect, expect.__name__)
        raise StoredFileError(path, f"expected {want} in this JSON file, found {type(data).__name__}", line=1)
    return data


def _missing(path: Path, have: Iterable[str], wanted: Iterable[str]) -> None:
    have = list(have)
    missing = [c for c in wanted if c not in have]
    if missing:
        cols = ", ".join(map(repr, missing))
        raise StoredFileError(
            path, f"missing column{'s' if len(missing) > 1 else ''} {cols} (has: {', '.join(have) or 'none'})"
        )


@contextlib.contextmanager
def _parquet_errors(path: Path) -> Iterator[None]:
    """Map pyarrow's errors on reading ``path`` to one :class:`StoredFileError`."""
    try:
        yield
    except StoredFileError:
        raise
    except OSError as e:
        if e.errno:  # the operating system's error
            raise StoredFileError(path, f"cannot read: {_reason(e)}") from None
        # pyarrow reports damaged data as an OSError without errno, or as ArrowInvalid (a ValueError)
        raise StoredFileError(path, f"not a readable Parquet file (truncated or damaged?): {_first_line(e)}") from None
    except (pa.ArrowException, ValueError, TypeError) as e:
        raise StoredFileError(path, f"not a readable Parquet file (truncated or damaged?): {_first_line(e)}") from None


def _check_parquet(path: Path, columns: Sequence[str] | None, required: Sequence[str]) -> None:
    """Refuse a missing, non-file, empty or damaged Parquet file, or one without the columns asked for."""
    if not path.exists():
        raise StoredFileError(path, "file not found")
    if path.is_dir():
        raise StoredFileError(path, "is a folder, not a Parquet file")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise StoredFileError(path, f"cannot read: {_reason(e)}") from None
    if size == 0:
        raise StoredFileError(path, "empty file (expected Parquet)")
    with _parquet_errors(path):
        _missing(path, pq.read_schema(path).names, [*required, *(columns or ())])


def read_table(path: str | Path, columns: Sequence[str] | None = None, *, required: Sequence[str] = ()) -> pa.Table:
    """A stored Parquet file as an Arrow table.

    Args:
        path: the file.
        columns: read only these columns (each must exist).
        required: columns that must exist (others may too).

    Raises:
        StoredFileError: missing, unreadable, empty, not Parquet (a truncated file included)
            or without a column asked for.
    """
    path = Path(path)
    _check_parquet(path, columns, required)
    with _parquet_errors(path):
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    raise AssertionError("unreachable")  # pragma: no cover


def read_parquet(
    path: str | Path, columns: Sequence[str] | None = None, *, required: Sequence[str] = ()
) -> pd.DataFrame:
    """A stored Parquet file as a DataFrame, exactly as :func:`pandas.read_parquet` gives it.

    Raises:
        StoredFileError: as :func:`read_table`.
    """
    path = Path(path)
    _check_parquet(path, columns, required)
    with _parquet_errors(path):
        return pd.read_parquet(path, columns=list(columns) if columns is not None else None)
    raise AssertionError("unreachable")  # pragma: no cover


def read_csv(path: str | Path, *, required: Sequence[str] = (), **kw: Any) -> pd.DataFrame:
    """A stored CSV file as a DataFrame (``kw`` as :func:`pandas.read_csv` takes them).

    Raises:
        StoredFileError: missing, unreadable, empty, not UTF-8, malformed, or without a
            ``required`` column.
    """
    path = Path(path)
    text = read_text(path, "CSV", allow_empty=False)
    try:
        df = pd.read_csv(io.StringIO(text), **kw)
    except pd.errors.EmptyDataError:
        raise StoredFileError(path, "empty file (expected CSV)") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise StoredFileError(path, f"not a readable CSV file: {_first_line(e)}") from None
    _missing(path, [str(c) for c in df.columns], required)
    return df

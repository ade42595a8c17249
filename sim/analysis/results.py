"""Load stored results into DataFrames, list what is stored, and ``sim plot``.

Three kinds of results folder exist, each recognised by its files:

* a **run** (``results/<scenario>/<run-id>/``, written by :func:`sim.run.simulate.write_run`):
  ``manifest.json``, ``timeseries.parquet``, ``towns.parquet``, ``events.parquet``
  and ``record.csv`` for scenarios naming a record (``observed.csv`` for an ``observed`` block);
* a **sweep** (``results/sweeps/<name>/``, written by ``sim sweep``): ``manifest.json``
  with ``"kind": "sweep"``, ``design.parquet``, ``runs.parquet`` and ``parts/``;
* a **thesis** folder (``results/thesis/<scenario>/``, written by ``sim thesis``):
  ``report.md`` and CSV tables.

:func:`load` picks the right loader; :func:`list_results` walks a results root.
Loading needs only pandas and pyarrow; the plotting functions are imported when
a figure is asked for (this module is imported by the CLI on every call). Every
stored file is read through :mod:`sim.run.files`: a missing, empty, truncated or
damaged file is one :class:`~sim.run.files.StoredFileError` naming it.

Example::

    from sim.analysis import results
    from sim.viz import plots
    run = results.load("results/synthetic_grid/20180101T120000_seed1")
    plots.plot_summary(run.timeseries, run.scenario)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from sim.run.files import StoredFileError, read_csv, read_json, read_parquet, read_text

if TYPE_CHECKING:
    from sim.run.simulate import RunResult
    from sim.scenario.schema import Scenario

Kind = Literal["run", "sweep", "thesis"]
RUN_TABLES = ("timeseries", "towns", "events")
SERIES_PREFIX = "series:"


class ResultsError(ValueError):
    """A folder that is not a results folder, or one with files missing."""


# --------------------------------------------------------------------------- runs


@dataclass
class RunFolder:
    """One run: its three tables, the manifest, and the observed-vs-simulated table if any."""

    folder: Path | None
    manifest: dict[str, Any]
    timeseries: pd.DataFrame
    towns: pd.DataFrame
    events: pd.DataFrame
    observed: pd.DataFrame | None = None
    kind: Kind = "run"
    record: pd.DataFrame | None = None  # record.csv: the run against the scenario's record

    @property
    def name(self) -> str:
        """Scenario name."""
        return str(self.manifest.get("scenario", ""))

    @property
    def seed(self) -> int | None:
        """Root seed of the run."""
        return self.manifest.get("seed")

    @property
    def run_id(self) -> str | None:
        """Name of the run folder (None for a run held in memory)."""
        return self.manifest.get("run_id")

    @cached_property
    def scenario(self) -> Scenario:
        """The validated scenario the run used (rebuilt from the manifest)."""
        from pydantic import ValidationError

        from sim.scenario.loader import explain_validation_error
        from sim.scenario.schema import Scenario

        where = self.folder / "manifest.json" if self.folder is not None else "manifest"
        config = self.manifest.get("config")
        if not isinstance(config, dict):
            raise StoredFileError(where, "no scenario configuration ('config') in the manifest", key="config")
        try:
            return Scenario.model_validate(config)
        except ValidationError as exc:
            loc, msg = explain_validation_error(exc.errors()[0])
            key = ".".join(map(str, ("config", *loc)))
            raise StoredFileError(where, f"the stored scenario is not valid: {msg}", key=key) from None

    @property
    def policy(self) -> str:
        """Targeting policy of the air campaign."""
        return str(self.manifest.get("config", {}).get("air_campaign", {}).get("policy", ""))

    @property
    def has_calendar(self) -> bool:
        """Whether the scenario has dates (its tables carry a ``date`` column)."""
        return "date" in self.timeseries.columns

    def town_table(self) -> pd.DataFrame:
        """One row per town: name, position (x, y or lon, lat), persons, stance, border flag."""
        return town_table(self.manifest["config"])

    def date_of(self, day: int) -> pd.Timestamp | None:
        """Calendar date of a day index (None without a calendar)."""
        start = self.manifest.get("start_date")
        return None if start is None else pd.Timestamp(start) + pd.Timedelta(days=int(day))

    def day_of(self, when: int | str | pd.Timestamp | None) -> int:
        """Day index of a day number or a date (None: the last day)."""
        last = int(self.timeseries["day"].max())
        if when is None:
            return last
        if isinstance(when, int | float) and not isinstance(when, bool):
            day = int(when)
        else:
            start = self.manifest.get("start_date")
            if start is None:
                raise ResultsError(f"scenario {self.name!r} has no calendar; give a day number, not {when!r}")
            day = (pd.Timestamp(when) - pd.Timestamp(start)).days
        if not 0 <= day <= last:
            raise ResultsError(f"day {day} ({when}) is outside the run (0..{last})")
        return day


def town_table(config: dict[str, Any]) -> pd.DataFrame:
    """Towns of a scenario config (as stored in a manifest) with plotting coordinates.

    ``px``/``py`` are longitude/latitude for geographic scenarios and grid column/row
    otherwise; ``geo`` says which.
    """
    rows = []
    for t in config["towns"]:
        geo = t.get("lat") is not None
        rows.append(
            {
                "town": t["name"],
                "px": t["lon"] if geo else t["x"],
                "py": t["lat"] if geo else t["y"],
                "geo": geo,
                "persons": t["persons"],
                "stance": t["stance"],
                "border": bool(t.get("border", False)),
            }
        )
    return pd.DataFrame(rows)


def is_run_folder(path: Path) -> bool:
    """A run folder has a manifest and the three run tables."""
    return (path / "manifest.json").is_file() and (path / "timeseries.parquet").is_file()


def load_run_folder(folder: str | Path) -> RunFolder:
    """Load a run folder.

    Raises:
        ResultsError: if the folder is not a run folder or a table is missing.
    """
    folder = Path(folder)
    manifest = _read_manifest(folder)
    tables = {}
    for name in RUN_TABLES:
        path = folder / f"{name}.parquet"
        if not path.is_file():
            raise ResultsError(f"{folder}: not a complete run folder (no {name}.parquet)")
        tables[name] = read_parquet(path, required=["day"] if name == "timeseries" else ())
    observed = read_csv(folder / "observed.csv") if (folder / "observed.csv").is_file() else None
    record_csv = folder / "record.csv"
    record = read_csv(record_csv, keep_default_na=False, na_values=[""]) if record_csv.is_file() else None
    return RunFolder(folder, manifest, tables["timeseries"], tables["towns"], tables["events"], observed, record=record)


def from_result(result: RunResult) -> RunFolder:
    """Wrap an in-memory :class:`~sim.run.simulate.RunResult` like a loaded run (no folder)."""
    return RunFolder(None, dict(result.manifest), result.timeseries, result.towns, result.events)


def stack(
    runs: Iterable[RunFolder | RunResult], table: str = "timeseries", *, label: str | None = None
) -> pd.DataFrame:
    """One table of several runs in long form, with ``replicate`` and ``seed`` columns.

    Args:
        runs: loaded runs or in-memory results (e.g. the same scenario with several seeds).
        table: ``timeseries``, ``towns`` or ``events``.
        label: if given, a column of that name holding each run's targeting policy
            (useful to compare policies with :func:`sim.viz.plots.plot_bands`).
    """
    frames = []
    for i, r in enumerate(runs):
        rr = r if isinstance(r, RunFolder) else from_result(r)
        df = getattr(rr, table).copy()
        df.insert(0, "replicate", i)
        df.insert(1, "seed", rr.seed)
        if label is not None:
            df.insert(2, label, rr.policy)
        frames.append(df)
    if not frames:
        raise ResultsError("no runs to stack")
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- sweeps


@dataclass
class SweepFolder:
    """A sweep: one row per run (parameters, outcomes), the design and the manifest."""

    folder: Path
    manifest: dict[str, Any]
    results: pd.DataFrame
    design: pd.DataFrame
    runs: pd.DataFrame
    sensitivity: dict[str, pd.DataFrame] = field(default_factory=dict)
    kind: Kind = "sweep"

    @property
    def name(self) -> str:
        """Sweep name."""
        return str(self.manifest.get("name", self.folder.name))

    @property
    def parameters(self) -> list[str]:
        """Names of the varied parameters (columns of :attr:`results`)."""
        return list(self.manifest.get("parameter_columns", []))

    @property
    def outcomes(self) -> list[str]:
        """Names of the outcomes kept (columns of :attr:`results`)."""
        return list(self.manifest.get("outcomes", []))

    @property
    def series_names(self) -> list[str]:
        """Daily series kept per run."""
        return list(self.manifest.get("series", []))

    @property
    def ok(self) -> pd.DataFrame:
        """Runs that finished without error."""
        return self.results[self.results["status"] == "ok"]

    @property
    def failed(self) -> pd.DataFrame:
        """Runs that raised (with their error)."""
        return self.results[self.results["status"] != "ok"]

    def series(self, name: str) -> pd.DataFrame:
        """A daily series in long form: run, point, replicate, the parameters, day, value."""
        col = SERIES_PREFIX + name
        df = _read_parts(self.folder, series=True)
        if col not in df.columns:
            kept = ", ".join(self.series_names) or "none"
            raise ResultsError(f"series {name!r} was not kept by sweep {self.name!r} (kept: {kept})")
        df = df[df["status"] == "ok"][["run", "point", "replicate", *self.parameters, col]].explode(col)
        df["day"] = df.groupby("run").cumcount()
        df = df.rename(columns={col: "value"}).astype({"value": float}).reset_index(drop=True)
        start = (self.manifest.get("base_scenario") or {}).get("start_date")
        if start is not None:
            df["date"] = pd.Timestamp(start) + pd.to_timedelta(df["day"], unit="D")
        return df

    def point_means(self) -> pd.DataFrame:
        """Outcomes averaged over replicates, one row per design point (with ``n`` runs)."""
        ok = self.ok
        keys = ["point", *self.parameters]
        means = ok.groupby(keys, dropna=False, sort=True)[self.outcomes].mean()
        means["n"] = ok.groupby(keys, dropna=False, sort=True).size()
        return means.reset_index()


def is_sweep_folder(path: Path) -> bool:
    """A sweep folder has a manifest of kind ``sweep`` (or design and runs tables)."""
    if (path / "design.parquet").is_file() and (path / "runs.parquet").is_file():
        return True
    return _manifest_kind(path) == "sweep"


def _read_parts(folder: Path, *, series: bool = False) -> pd.DataFrame:
    from sim.experiments.store import load_results

    return load_results(folder, series=series)


def load_sweep_folder(folder: str | Path) -> SweepFolder:
    """Load a sweep folder (result rows of all stored runs, design, runs, sensitivity tables)."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    for name in ("design.parquet", "runs.parquet"):
        if not (folder / name).is_file():
            raise ResultsError(f"{folder}: not a complete sweep folder (no {name})")
    results = _read_parts(folder)  # a damaged part: one StoredFileError naming it
    sens = {p.stem: read_csv(p) for p in sorted(folder.glob("**/sensitivity*.csv"))}
    return SweepFolder(
        folder,
        manifest,
        results,
        read_parquet(folder / "design.parquet", required=["point"]),
        read_parquet(folder / "runs.parquet", required=["run", "point", "replicate", "seed"]),
        sens,
    )


# --------------------------------------------------------------------------- thesis


@dataclass
class ThesisFolder:
    """A thesis folder: the report, its CSV tables (by file stem) and figures."""

    folder: Path
    report: str
    tables: dict[str, pd.DataFrame]
    figures: list[Path]
    manifest: dict[str, Any] = field(default_factory=dict)
    kind: Kind = "thesis"

    @property
    def name(self) -> str:
        """Scenario the thesis test was run on."""
        return str(self.manifest.get("scenario", self.folder.name))

    def table(self, *names: str) -> pd.DataFrame | None:
        """The first table whose file stem is, or contains, one of ``names`` (else None)."""
        for n in names:
            if n in self.tables:
                return self.tables[n]
        for n in names:
            for stem, df in self.tables.items():
                if n in stem:
                    return df
        return None

    @property
    def verdicts(self) -> list[str]:
        """The verdict lines at the top of the report."""
        return [
            ln.strip("-* ").strip()
            for ln in self.report.splitlines()
            if any(w in ln.lower() for w in ("supported", "contradicted", "inconclusive"))
        ][:20]


def is_thesis_folder(path: Path) -> bool:
    """A thesis folder has ``report.md`` and at least one CSV table."""
    return (path / "report.md").is_file() and any(path.glob("*.csv"))


def load_thesis_folder(folder: str | Path) -> ThesisFolder:
    """Load a thesis folder (``report.md``, ``*.csv``, ``*.png``, optional ``manifest.json``)."""
    folder = Path(folder)
    if not (folder / "report.md").is_file():
        raise ResultsError(f"{folder}: not a thesis folder (no report.md)")
    tables = {p.stem: read_csv(p) for p in sorted(folder.glob("*.csv"))}
    manifest = _read_manifest(folder) if (folder / "manifest.json").is_file() else {}
    report = read_text(folder / "report.md", "Markdown")
    return ThesisFolder(folder, report, tables, sorted(folder.glob("*.png")), manifest)


# --------------------------------------------------------------------------- any folder


def kind_of(path: str | Path) -> Kind | None:
    """``run``, ``sweep``, ``thesis`` or None for a folder that holds none of them."""
    path = Path(path)
    if not path.is_dir():
        return None
    if is_sweep_folder(path):
        return "sweep"
    if is_run_folder(path):
        return "run"
    if is_thesis_folder(path):
        return "thesis"
    return None


def load(path: str | Path) -> RunFolder | SweepFolder | ThesisFolder:
    """Load a run, sweep or thesis folder, whichever it is.

    Raises:
        ResultsError: if the path is not a results folder.
    """
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such folder")
    if not path.is_dir():
        raise ResultsError(f"{path}: is a file, not a results folder")
    kind = kind_of(path)
    if kind == "run":
        return load_run_folder(path)
    if kind == "sweep":
        return load_sweep_folder(path)
    if kind == "thesis":
        return load_thesis_folder(path)
    if (path / "manifest.json").is_file():
        return load_run_folder(path)  # names the missing table
    raise ResultsError(f"{path}: not a results folder (no run, sweep or thesis files; see `sim results`)")


def list_results(root: str | Path = "results") -> pd.DataFrame:
    """Every run, sweep and thesis folder under ``root``, newest first.

    Columns: ``kind``, ``name`` (scenario or sweep), ``id`` (run id or folder name),
    ``created``, ``detail`` (seed and days, runs stored, or verdict count), ``path``.
    """
    root = Path(root)
    rows: list[dict[str, Any]] = []
    if root.is_dir():
        for path in sorted(_candidates(root)):
            kind = kind_of(path)
            if kind is None:
                continue
            m = _safe_manifest(path)
            if kind == "run":
                name, detail = m.get("scenario", path.parent.name), f"seed {m.get('seed')}, {m.get('days')} days"
            elif kind == "sweep":
                parts = len(list((path / "parts").glob("part-*.parquet"))) if (path / "parts").is_dir() else 0
                name, detail = m.get("name", path.name), f"{m.get('runs', '?')} runs planned, {parts} parts"
            else:
                name, detail = m.get("scenario", path.name), f"{len(list(path.glob('*.csv')))} tables"
            created = m.get("updated") or m.get("created")
            if created is None:
                created = pd.Timestamp.fromtimestamp(path.stat().st_mtime, tz="UTC").isoformat(timespec="seconds")
            rows.append(
                {"kind": kind, "name": name, "id": path.name, "created": created, "detail": detail, "path": str(path)}
            )
    df = pd.DataFrame(rows, columns=["kind", "name", "id", "created", "detail", "path"])
    return df.sort_values("created", ascending=False, kind="stable").reset_index(drop=True)


def _candidates(root: Path, depth: int = 3) -> Iterable[Path]:
    """Folders up to ``depth`` levels below root (hidden and temporary ones skipped)."""
    frontier = [root]
    for _ in range(depth):
        nxt = []
        for folder in frontier:
            for p in folder.iterdir():
                if p.is_dir() and not p.name.startswith(".") and p.name != "parts":
                    yield p
                    nxt.append(p)
        frontier = nxt


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    if not folder.is_dir():
        raise ResultsError(f"{folder}: no such folder")
    if not path.is_file():
        raise ResultsError(f"{folder}: not a results folder (no manifest.json)")
    return read_json(path, expect=dict)


def _safe_manifest(folder: Path) -> dict[str, Any]:
    """The manifest, or nothing for a listing (a damaged one is reported when the folder is loaded)."""
    try:
        return _read_manifest(folder)
    except (ResultsError, StoredFileError):
        return {}


def _manifest_kind(folder: Path) -> str | None:
    if not (folder / "manifest.json").is_file():
        return None
    return _safe_manifest(folder).get("kind")

"""sim.analysis.results: loading run, sweep and thesis folders; listing; ``sim plot`` on each kind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import results_data as data

from sim.analysis import results
from sim.model.collect import GOV_VARS, TOWN_VARS
from sim.viz import figures


def sim_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sim", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=data.ROOT,
    )


def test_load_run_folder():
    run = results.load(data.grid_run())
    assert isinstance(run, results.RunFolder) and run.kind == "run"
    assert run.name == "synthetic_grid" and run.run_id == "grid"
    assert len(run.timeseries) == 25 and set(GOV_VARS) <= set(run.timeseries.columns)
    assert set(TOWN_VARS) <= set(run.towns.columns)
    assert run.towns["town"].nunique() == len(run.scenario.towns)
    assert not run.has_calendar and run.observed is None
    pos = run.town_table()
    assert list(pos["town"]) == run.scenario.town_names and not pos["geo"].any()
    assert run.day_of(None) == 24 and run.day_of(3) == 3
    with pytest.raises(results.ResultsError, match="no calendar"):
        run.day_of("2018-01-01")


def test_load_calendar_run_with_observed():
    run = results.load(data.idlib_run())
    assert run.has_calendar and pd.api.types.is_datetime64_any_dtype(run.timeseries["date"])
    assert run.observed is not None and {"figure", "simulated", "observed"} <= set(run.observed.columns)
    assert run.record is not None and {"id", "kind", "recorded", "simulated", "agreement", "role"} <= set(run.record)
    assert run.town_table()["geo"].all()
    assert run.day_of("2017-11-11") == 10
    assert run.date_of(10) == pd.Timestamp("2017-11-11")


def test_stack_runs_for_replicates():
    runs = [results.load(p) for p in data.grid_replicates()]
    ts = results.stack(runs, label="policy")
    assert list(ts.columns[:3]) == ["replicate", "seed", "policy"]
    assert ts["replicate"].nunique() == 6 and set(ts["policy"]) == {"none", "resisting_towns"}
    towns = results.stack(runs[:2], "towns")
    assert len(towns) == 2 * len(runs[0].towns)


def test_load_sweep_folder():
    sw = results.load(data.sweep_folder())
    assert isinstance(sw, results.SweepFolder) and sw.kind == "sweep"
    assert sw.parameters == ["mechanisms.rally", "mechanisms.pretext_blame", "air_campaign.policy"]
    assert len(sw.ok) == 16 and sw.failed.empty
    means = sw.point_means()
    assert len(means) == 8 and (means["n"] == 2).all()
    series = sw.series("coop_share_resisting")
    assert len(series) == 16 * 15 and {"day", "value", "air_campaign.policy"} <= set(series.columns)
    with pytest.raises(results.ResultsError, match="not kept"):
        sw.series("hts_fighters")


def test_load_sweep_with_sensitivity():
    sw = results.load(data.morris_folder())
    assert "sensitivity" in sw.sensitivity
    assert {"parameter", "outcome", "mu_star"} <= set(sw.sensitivity["sensitivity"].columns)


def test_load_thesis_folder():
    th = results.load(data.thesis_folder())
    assert isinstance(th, results.ThesisFolder) and th.kind == "thesis"
    assert {"effects", "pairs", "ablation", "heatmap"} <= set(th.tables)
    assert th.table("effects") is th.tables["effects"]
    assert th.verdicts and any(w in th.verdicts[0].lower() for w in ("supported", "contradicted", "inconclusive"))


def test_list_results():
    data.grid_run(), data.idlib_run()
    df = results.list_results(data.workdir() / "results")
    assert set(df["kind"]) == {"run"}
    assert set(df["id"]) >= {"grid", "idlib"}
    assert list(df.columns) == ["kind", "name", "id", "created", "detail", "path"]
    assert results.list_results(data.workdir() / "nothing").empty


def test_kind_of_and_bad_folders(tmp_path: Path):
    assert results.kind_of(data.grid_run()) == "run"
    assert results.kind_of(data.sweep_folder()) == "sweep"
    assert results.kind_of(data.thesis_folder()) == "thesis"
    assert results.kind_of(tmp_path) is None
    with pytest.raises(results.ResultsError, match="not a results folder"):
        results.load(tmp_path)
    with pytest.raises(results.ResultsError, match="no such folder"):
        results.load(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text(json.dumps({"scenario": "x"}))
    with pytest.raises(results.ResultsError, match=r"no timeseries\.parquet"):
        results.load(broken)


@pytest.mark.slow
def test_sim_plot_run_folder(tmp_path: Path):
    out = tmp_path / "figs"
    proc = sim_cli("plot", data.idlib_run(), "--out", out)
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in out.glob("*.png")}
    assert {
        "summary.png",
        "towns_cooperation.png",
        "map.png",
        "observed.png",
        "displacement_check.png",
        "record.png",
    } <= names
    assert all(p.stat().st_size > 10_000 for p in out.glob("*.png"))


def test_sim_plot_sweep_and_thesis_folders(tmp_path: Path):
    files = figures.standard_figures(data.sweep_folder(), tmp_path / "sweep")
    names = {p.name for p in files}
    assert {"outcomes.png", "heatmap_coop_resisting_mean.png", "series_coop_share_resisting.png"} <= names
    files = figures.standard_figures(data.morris_folder(), tmp_path / "morris")
    assert "sensitivity.png" in {p.name for p in files}
    files = figures.standard_figures(data.thesis_folder(), tmp_path / "thesis")
    assert {p.name for p in files} == {"effects.png", "ablation.png", "heatmap.png"}
    assert all(p.exists() for p in files)


@pytest.fixture
def forks_allowed(monkeypatch):
    """Share figures out even though this test process (a pytest-xdist worker) may run other threads, which makes
    :func:`sim.viz.figures._share_out` draw everything here instead; the children draw and exit, nothing more."""
    monkeypatch.setattr(figures, "_other_threads", lambda: [])


NEEDS_FORK = pytest.mark.skipif(not figures.fork_available(), reason="figures are shared out with fork on 2+ CPUs")


@NEEDS_FORK
def test_figures_shared_out_among_processes_are_the_serial_figures(tmp_path: Path, monkeypatch, forks_allowed):
    """Forked children draw some of a folder's figures alongside the parent: the same files, byte for byte."""
    shared = figures.standard_figures(data.thesis_folder(), tmp_path / "shared")
    monkeypatch.setattr(figures, "_cpus", lambda: 1)  # one CPU: everything drawn in this process
    serial = figures.standard_figures(data.thesis_folder(), tmp_path / "serial")
    assert [p.name for p in shared] == [p.name for p in serial] == ["effects.png", "ablation.png", "heatmap.png"]
    for a, b in zip(shared, serial, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def _drawn_by(folder: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in folder.glob("*.pid")}


@NEEDS_FORK
def test_sharing_out_draws_each_figure_once_and_redraws_here_what_a_child_could_not(tmp_path: Path, forks_allowed):
    import os
    import time

    parent = os.getpid()
    marks = tmp_path / "marks"
    marks.mkdir()

    def draw(i: int) -> None:
        time.sleep(0.05)  # long enough for a child to take some items
        if i == 3 and os.getpid() != parent:
            raise RuntimeError("only the parent can draw item 3")
        (marks / f"{i}.pid").write_text(str(os.getpid()))

    left = figures._share_out(list(range(8)), draw)
    for i in left:  # what _save_jobs does with them
        draw(i)
    by = _drawn_by(marks)
    assert sorted(map(int, by)) == list(range(8))  # every item, once (a second draw would be a second writer)
    assert len(set(by.values())) >= 2  # shared out: at least one child drew
    assert by["3"] == parent and set(left) <= {3}  # left over only if a child took it, and then drawn here


@NEEDS_FORK
def test_an_error_in_this_process_stops_the_children_before_it_propagates(tmp_path: Path, forks_allowed):
    import os
    import time

    parent = os.getpid()

    def draw(i: int) -> None:
        if os.getpid() == parent:
            raise OSError("disk full")
        time.sleep(0.1)
        (tmp_path / f"{i}.png").write_text("x")

    with pytest.raises(OSError, match="disk full"):
        figures._share_out(list(range(50)), draw)
    after = sorted(p.name for p in tmp_path.iterdir())
    time.sleep(0.3)  # no child is left to write anything
    assert sorted(p.name for p in tmp_path.iterdir()) == after and len(after) < 50


def test_sim_plot_bad_input(tmp_path: Path):
    proc = sim_cli("plot", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    proc = sim_cli("plot", tmp_path / "missing")
    assert proc.returncode == 2 and "no such folder" in proc.stderr


# --------------------------------------------------------------------------- stored files that cannot be read back


def _one_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("figures", ".lock"))
    return dst


def test_a_truncated_manifest_is_one_line_naming_it(tmp_path: Path, run_cli):
    from sim.run.files import StoredFileError

    run = _copy(data.grid_run(), tmp_path / "run")
    text = (run / "manifest.json").read_text()
    (run / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(StoredFileError, match="truncated"):
        results.load(run)
    _one_line(run_cli("plot", run), f"{run / 'manifest.json'}:", "not valid JSON", "truncated")
    assert not (run / "figures").exists()


@pytest.mark.parametrize("damage", ["empty", "truncated", "not-parquet"])
def test_a_damaged_run_table_is_one_line_naming_it(tmp_path: Path, run_cli, damage: str):
    run = _copy(data.grid_run(), tmp_path / "run")
    table = run / "timeseries.parquet"
    raw = table.read_bytes()
    table.write_bytes({"empty": b"", "truncated": raw[: len(raw) // 2], "not-parquet": b"day,value\n1,2\n"}[damage])
    why = "empty file (expected Parquet)" if damage == "empty" else "not a readable Parquet file"
    _one_line(run_cli("plot", run, "--out", tmp_path / "figs"), str(table), why)
    assert not (tmp_path / "figs").exists()


def test_a_run_table_without_its_columns_is_one_line_naming_it(tmp_path: Path, run_cli):
    run = _copy(data.grid_run(), tmp_path / "run")
    pd.DataFrame({"x": [1, 2]}).to_parquet(run / "timeseries.parquet")
    _one_line(run_cli("plot", run), str(run / "timeseries.parquet"), "missing column 'day'")


def test_a_truncated_part_in_a_sweep_folder_is_one_line_naming_it(tmp_path: Path, run_cli):
    sweep = _copy(data.sweep_folder(), tmp_path / "sweep")
    part = sorted((sweep / "parts").glob("part-*.parquet"))[0]
    raw = part.read_bytes()
    part.write_bytes(raw[: len(raw) - 20])
    before = sorted(p for p in sweep.rglob("*"))
    _one_line(run_cli("plot", sweep), str(part), "not a readable Parquet file")
    assert sorted(p for p in sweep.rglob("*")) == before  # nothing written
    empty_runs = _copy(data.sweep_folder(), tmp_path / "sweep2")
    (empty_runs / "runs.parquet").write_bytes(b"")
    _one_line(run_cli("plot", empty_runs), str(empty_runs / "runs.parquet"), "empty file")


def test_readers_name_the_file_for_every_failure(tmp_path: Path):
    from sim.run.files import StoredFileError, read_csv, read_json, read_parquet

    cases = {
        "missing.json": (None, read_json, "file not found"),
        "empty.json": (b"  \n", read_json, "empty file (expected JSON)"),
        "latin1.json": (b'{"a": "\xe9"}', read_json, "not UTF-8"),
        "list.json": (b"[1, 2]", lambda p: read_json(p, expect=dict), "expected an object"),
        "empty.csv": (b"", read_csv, "empty file (expected CSV)"),
        "folder.parquet": ("dir", read_parquet, "is a folder"),
    }
    for name, (content, reader, needle) in cases.items():
        path = tmp_path / name
        if content == "dir":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content)
        with pytest.raises(StoredFileError) as err:
            reader(path)
        assert str(err.value).startswith(str(path)) and needle in str(err.value), str(err.value)

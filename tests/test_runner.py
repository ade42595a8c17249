"""Runs and run folders (sim/run/): reproducibility, manifest, atomic writes."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sim.model.model import AllegianceModel
from sim.run import store
from sim.run.simulate import simulate
from sim.scenario.loader import config_hash, load_scenario
from sim.viz import figures
from sim.viz.figures import write_run_folder

TINY = Path(__file__).parent / "data" / "tiny.yaml"
RUN_FILES = {"timeseries.parquet", "towns.parquet", "events.parquet", "manifest.json", "summary.png"}


@pytest.fixture(scope="module")
def tiny_loaded():
    return load_scenario(TINY)


@pytest.fixture(scope="module")
def result(tiny_loaded):
    return simulate(tiny_loaded)


# --------------------------------------------------------------------------- simulate


def test_simulate_returns_the_three_tables_for_every_day(result, tiny_loaded):
    sc = tiny_loaded.scenario
    assert len(result.timeseries) == sc.days
    assert list(result.timeseries["day"]) == list(range(sc.days))
    assert len(result.towns) == sc.days * len(sc.towns)
    assert set(result.towns["town"].astype(str)) == set(sc.town_names)
    assert {"strike", "displacement"} <= set(result.events["event"])


def test_same_seed_gives_identical_tables(tiny_loaded, result, identical):
    identical(result.frames, simulate(tiny_loaded).frames)


def test_different_seeds_differ(tiny_loaded, result, differ):
    other = simulate(tiny_loaded, seed=result.seed + 1)
    assert other.seed == result.seed + 1
    assert differ(result.frames, other.frames)
    assert not np.array_equal(result.timeseries["coop_share"], other.timeseries["coop_share"])


def test_household_agents_do_not_change_the_outcome(grid, identical):
    sc = grid("days=20")
    with_agents = simulate(sc, household_agents=True)
    bare = simulate(sc, household_agents=False)
    identical(with_agents.frames, bare.frames)


def test_household_agents_are_views_onto_the_arrays(tiny):
    from sim.model.actors import Household

    model = AllegianceModel(tiny(days=3), household_agents=True)
    households = list(model.agents_by_type[Household])
    assert len(households) == len(model.hh)
    model.run()
    h = households[5]
    assert h.stance == ("resist", "neutral", "cooperate")[model.hh.stance[5]]
    assert h.fear == pytest.approx(float(model.hh.fear[5]))
    assert h.home_town == "A"


def test_days_and_seed_overrides(tiny_loaded):
    res = simulate(tiny_loaded, seed=99, days=4)
    assert len(res.timeseries) == 4
    assert res.manifest["seed"] == 99 and res.manifest["days"] == 4


def test_manifest_records_what_reproduces_the_run(result, tiny_loaded):
    m = result.manifest
    assert m["seed"] == tiny_loaded.scenario.seed
    assert m["config"] == tiny_loaded.scenario.model_dump(mode="json")
    assert m["config_hash"] == config_hash(tiny_loaded.scenario)
    assert m["scenario_hash"] == tiny_loaded.scenario_hash
    assert list(m["scenario_files"].values()) == [tiny_loaded.file_hashes[str(TINY.resolve())]]
    assert re.fullmatch(r"[0-9a-f]{40}", m["code_version"]["git_commit"] or "")
    for pkg in ("python", "mesa", "numpy", "pandas", "pyarrow", "pydantic"):
        assert m["packages"].get(pkg), pkg
    assert m["packages"]["mesa"].startswith("3.3")
    assert m["wall_time_s"] > 0
    assert m["agents"] == 600  # 3 x 1,200 persons in households of 6


# --------------------------------------------------------------------------- run folders


def test_write_run_writes_every_file(result, tmp_path):
    folder = write_run_folder(result, tmp_path, "r1")
    assert folder == tmp_path / "tiny" / "r1"
    assert RUN_FILES <= {p.name for p in folder.iterdir()}
    assert (folder / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("timeseries", "towns", "events"):
        stored = pd.read_parquet(folder / f"{name}.parquet")
        pd.testing.assert_frame_equal(stored, result.frames[name], check_exact=True, check_categorical=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run_id"] == "r1"
    assert manifest["seed"] == result.seed
    assert manifest["config"]["name"] == "tiny"
    assert set(manifest["files"]) >= RUN_FILES - {"manifest.json"}
    assert [p.name for p in (tmp_path / "tiny").iterdir()] == ["r1"]  # no temporary folder left


def test_same_seed_gives_byte_identical_parquet(tiny_loaded, result, tmp_path):
    a = write_run_folder(result, tmp_path, "a", figures=False)
    b = write_run_folder(simulate(tiny_loaded), tmp_path, "b", figures=False)
    for name in ("timeseries", "towns", "events"):
        assert (a / f"{name}.parquet").read_bytes() == (b / f"{name}.parquet").read_bytes(), name


def test_household_snapshots_only_on_request(tiny, tmp_path):
    res = simulate(tiny(days=5, output={"household_snapshot_days": [0, 3]}))
    folder = write_run_folder(res, tmp_path, "snap", figures=False)
    assert sorted(p.name for p in folder.glob("households_day*.parquet")) == [
        "households_day0000.parquet",
        "households_day0003.parquet",
    ]
    snap = pd.read_parquet(folder / "households_day0003.parquet")
    assert len(snap) == res.manifest["agents"]
    assert {"home", "town", "stance", "g_regime", "g_hts", "fear", "displaced"} <= set(snap.columns)
    plain = write_run_folder(simulate(tiny(days=5)), tmp_path, "plain", figures=False)
    assert not list(plain.glob("households_day*"))


def test_an_existing_run_folder_is_never_overwritten(result, tmp_path):
    folder = write_run_folder(result, tmp_path, "r1", figures=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(FileExistsError):
        write_run_folder(result, tmp_path, "r1", figures=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize("fail_at", ["parquet", "figure"])
def test_a_failure_while_writing_leaves_no_run_folder(result, tmp_path, monkeypatch, fail_at):
    calls = {"n": 0}
    real = store.write_parquet

    def flaky_parquet(df, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(df, path)

    def broken_figure(*args, **kwargs):
        raise RuntimeError("figure failed")

    if fail_at == "parquet":
        monkeypatch.setattr(store, "write_parquet", flaky_parquet)
    else:
        monkeypatch.setattr(figures, "run_extras", broken_figure)
    with pytest.raises((OSError, RuntimeError)):
        write_run_folder(result, tmp_path, "r1")
    assert not (tmp_path / "tiny" / "r1").exists()
    assert _files_under(tmp_path) == []
    # no temporary folder, and no empty parent folder either (nothing left behind)
    assert not (tmp_path / "tiny").exists()


def test_a_figure_drawn_in_the_background_is_written_before_the_wait_returns(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "_other_threads", list)  # threads other tests left in this worker
    monkeypatch.setattr(figures, "_cpus", lambda: 2)
    target = tmp_path / "figure.txt"
    parent = os.getpid()

    def draw():
        target.write_text(str(os.getpid()))

    import threading

    monitor = threading.Event()  # a progress bar's monitor thread (sim run has one) does not stop the fork
    threading.Thread(target=monitor.wait, name="tqdm_monitor", daemon=True).start()
    try:
        wait = figures._in_background(draw)
        wait()
    finally:
        monitor.set()
    # drawn once, by another process (on Linux), and complete when wait() returns
    assert target.read_text() != str(parent) or not sys.platform.startswith("linux")


def test_a_figure_that_fails_in_the_background_fails_again_here(tmp_path, monkeypatch, capfd):
    """The child prints nothing; the parent draws again, so the error surfaces as any other."""
    monkeypatch.setattr(figures, "_other_threads", list)  # threads other tests left in this worker
    monkeypatch.setattr(figures, "_cpus", lambda: 2)
    calls = tmp_path / "calls"
    calls.mkdir()

    def draw():
        (calls / str(os.getpid())).touch()
        raise RuntimeError("cannot draw")

    wait = figures._in_background(draw)
    with pytest.raises(RuntimeError, match="cannot draw"):
        wait()
    assert len(list(calls.iterdir())) == (2 if sys.platform.startswith("linux") else 1)
    assert "Traceback" not in capfd.readouterr().err


def test_a_background_figure_that_hangs_is_stopped_and_drawn_here(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "_other_threads", list)  # threads other tests left in this worker
    monkeypatch.setattr(figures, "_cpus", lambda: 2)
    monkeypatch.setattr(figures, "BACKGROUND_TIMEOUT_S", 1.0)
    parent = os.getpid()
    target = tmp_path / "figure.txt"

    def draw():
        if os.getpid() != parent:
            __import__("time").sleep(60)  # a child stuck (a lock copied by fork)
        target.write_text("drawn here")

    wait = figures._in_background(draw)
    wait()
    assert target.read_text() == "drawn here"


def test_with_other_threads_running_a_background_figure_is_drawn_here(monkeypatch):
    import threading

    monkeypatch.setattr(figures, "_cpus", lambda: 2)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        drawn: list[int] = []
        figures._in_background(lambda: drawn.append(os.getpid()))()
        assert drawn == [os.getpid()]
    finally:
        stop.set()


def test_output_buffered_before_a_background_figure_is_printed_once():
    """Block-buffered stdout (a pipe, no PYTHONUNBUFFERED): the forked child must not print it again
    (multiprocessing flushes the streams before it forks; a bare os.fork would not)."""
    import subprocess

    code = (
        "from sim.viz import figures\n"
        "figures._cpus = lambda: 2\n"
        "print('before', end='')\n"
        "figures._in_background(lambda: None)()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out == "before"


def test_with_one_cpu_a_background_figure_is_drawn_here_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "_cpus", lambda: 1)
    drawn: list[int] = []
    wait = figures._in_background(lambda: drawn.append(os.getpid()))
    assert drawn == [os.getpid()]  # before any wait, in this process
    wait()
    assert len(drawn) == 1


def test_an_exception_mid_run_leaves_nothing_under_out(tmp_path, monkeypatch):
    """``sim run`` in-process with a model that fails on its fourth day."""
    from sim.cli.main import app

    real_step = AllegianceModel.step

    def failing_step(self):
        if self.day == 3:
            raise RuntimeError("boom on day 3")
        real_step(self)

    monkeypatch.setattr(AllegianceModel, "step", failing_step)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(TINY), "--out", str(out), "--run-id", "x"])
    assert res.exit_code != 0
    assert isinstance(res.exception, RuntimeError)
    assert _files_under(out) == []
    assert not (out / "tiny" / "x").exists()


# --------------------------------------------------------------------------- collection levels and reuse

IDLIB = Path(__file__).resolve().parents[1] / "scenarios" / "idlib_2017_2018.yaml"

#: The ``observed`` block the Idlib scenario had before it named a record (one figure or more of
#: every observed kind but cooperation_share): the observed machinery stays for scenarios that have one.
IDLIB_OBSERVED = """\
observed:
  replicates: 5
  figures:
    - name: displacements 15 Dec 2017 - 22 Jan 2018
      kind: displacements
      start: {date: 2017-12-15}
      end: {date: 2018-01-22}
      value: 212000
      role: calibration
      source: "ACAPS, Syria: Idlib displacement, 22 Jan 2018: about 212,000 displacements 15 Dec 2017 - 22 Jan 2018"
    - name: displacements 15 Dec 2017 - 3 Feb 2018
      kind: displacements
      start: {date: 2017-12-15}
      end: {date: 2018-02-03}
      value: 325443
      role: calibration
      source: "OCHA, 13 Feb 2018: 325,443 displacements 15 Dec 2017 - 3 Feb 2018"
    - name: share arriving in Dana, Salqin, Kafr Nobol, Ariha, Atareb sub-districts
      kind: arrival_share
      start: {date: 2017-12-15}
      end: {date: 2018-02-03}
      towns: [Dana, Sarmada, Atmeh camps, Salqin, Kafranbel, Ariha, Atarib]
      value: 0.5
      comparison: at_least
      role: calibration
      source: "OCHA, 13 Feb 2018: displacements 'mainly toward' these sub-districts"
      note: "'mainly' read as at least half (assumed)"
    - name: civilians killed in Idlib governorate, January 2018
      kind: killed
      start: {date: 2018-01-01}
      end: {date: 2018-01-31}
      towns: [Idlib city, Maarat al-Numan, Kafranbel, Saraqib, Jisr al-Shughur, Ariha, Khan Shaykhun, Sarmada,
              Dana, Harem, Salqin, Kafr Takharim, Binnish, Taftanaz, Sarmin, Darkush, Abu al-Duhur, Sinjar,
              Abu al-Duhur villages, Hish, Maarrat Misrin, Jisr al-Shughur villages, Idlib district villages,
              Harem district villages, Maarat district villages, Jabal al-Zawiya villages, Atmeh camps]
      value: 223
      role: calibration
      source: "SNHR, 1 Feb 2018: 223 civilians killed in Idlib governorate in January 2018"
      note: "governorate only: Atarib and Tell al-Daman (Aleppo) and NE Hama villages (Hama) excluded"
    - name: displaced hosted in Dana sub-district, January 2018
      kind: hosted_displaced
      end: {date: 2018-01-31}
      towns: [Dana, Sarmada, Atmeh camps]
      value: 60000
      range: [50000, 70000]
      role: validation
      source: "REACH, Dec 2017 and Jan 2018: Dana hosts 50,000 (Dec) and 70,000 (Jan) displaced"
      note: "Dana sub-district = Dana, Sarmada, Atmeh camps; the model counts every displaced person present, those
        displaced since 1 Nov 2017 and those displaced there before (the towns' displaced)"
    - name: Atarib council independent at the end
      kind: council_independent
      towns: [Atarib]
      value: 1
      role: validation
      source: "Atarib kept its own council through 2018 (HTS took it in January 2019): no primary source identified"
      note: "Atarib starts held by Nour al-Din al-Zenki: the check tests whether HTS retakes Atarib"
    - name: protest against HTS in southern Idlib, end of February 2018
      kind: protest_present
      start: {date: 2018-02-20}
      end: {date: 2018-02-28}
      towns: [Maarat al-Numan, Kafranbel, Hish, Maarat district villages, Jabal al-Zawiya villages]
      value: 1
      threshold: 0.002
      role: validation
      source: "Syria Direct, late February 2018: demonstrations against the regime and HTS in southern Idlib"
      note: "present = mean protest share above 0.2% of persons over 20-28 Feb (assumed reading)"
"""


def idlib_with_observed(tmp_path: Path, values: dict):
    """The shipped Idlib scenario (its record too) with :data:`IDLIB_OBSERVED`, and ``values`` set."""
    from sim.scenario.loader import with_values

    path = tmp_path / "idlib_observed.yaml"
    record = IDLIB.parent / "record" / "idlib_2017_2018.yaml"
    path.write_text(f"extends: {IDLIB}\nrecord: {record}\n{IDLIB_OBSERVED}", encoding="utf-8")
    return with_values(load_scenario(path).scenario, values, source="test")


def test_targets_level_keeps_the_measured_columns_exactly(tmp_path):
    """``collect="targets"`` keeps what the recorded figures read, with the full level's values."""
    from sim.analysis.observed import figure_value
    from sim.model.collect import TARGET_GOV_VARS, TARGET_TOWN_VARS

    sc = idlib_with_observed(tmp_path, {"households.sample_fraction": 0.01, "days": 80})
    full = simulate(sc, 5, household_agents=False).frames
    light = simulate(sc, 5, household_agents=False, collect="targets").frames
    ts_cols = ["day", *(["date"] if "date" in full["timeseries"] else []), *TARGET_GOV_VARS]
    pd.testing.assert_frame_equal(light["timeseries"], full["timeseries"][ts_cols], check_exact=True)
    town_cols = [c for c in full["towns"].columns if c in {"day", "date", "town", "initial_stance", *TARGET_TOWN_VARS}]
    pd.testing.assert_frame_equal(light["towns"], full["towns"][town_cols], check_exact=True)
    pd.testing.assert_frame_equal(light["events"], full["events"], check_exact=True)
    assert sc.observed.figures, "the scenario records figures"
    kinds = {f.kind for f in sc.observed.figures}
    assert len(kinds) >= 5
    for fig in sc.observed.figures:
        a, b = figure_value(fig, sc, full), figure_value(fig, sc, light)
        assert a == b or (np.isnan(a) and np.isnan(b)), fig.name


def test_targets_level_gives_the_record_calibration_targets_exactly(monkeypatch):
    """Every target of the shipped calibration file (record entries, calibration and validation) reads
    only what ``collect="targets"`` keeps: its value is the full run's, and calibration runs use that level."""
    import sim.run.simulate as simulate_module
    from sim.experiments.inference.targets import target_values
    from sim.run.record import target_value, targets_level_reads
    from sim.scenario.calibration import load_calibration
    from sim.scenario.loader import with_values

    root = Path(__file__).resolve().parents[1] / "scenarios"
    cal = load_calibration(root / "calibration" / "idlib_2017_2018.yaml", load_scenario(root / "idlib_2017_2018.yaml"))
    assert cal.record is not None
    items = [t.item for t in cal.targets]
    assert {"calibration", "validation"} <= {t.role for t in cal.targets}
    assert all(targets_level_reads(i) for i in items)
    sc = with_values(cal.scenario.scenario, {"households.sample_fraction": 0.01}, source="test")
    full = simulate(sc, 5, household_agents=False).frames
    light = simulate(sc, 5, household_agents=False, collect="targets").frames
    for item in items:
        a, b = target_value(item, sc, full, cal.record), target_value(item, sc, light, cal.record)
        assert a == b or (np.isnan(a) and np.isnan(b)), item.id
    # the calibration's runs collect the targets level; an entry it does not cover gets a full run
    levels = []
    real = simulate_module.simulate

    def spy(*args, **kwargs):
        levels.append(kwargs.get("collect", "full"))
        return real(*args, **kwargs)

    monkeypatch.setattr(simulate_module, "simulate", spy)
    base = with_values(sc, {"days": 20}, source="test").model_dump(mode="json")
    target_values(base, {}, 5, items[:1], target_value, cal.record)
    uncovered = next(e for e in cal.record.entries if not targets_level_reads(e))
    target_values(base, {}, 5, [uncovered], target_value, cal.record)
    assert levels == ["targets", "full"]


def test_unknown_collect_level_is_refused(tiny_loaded):
    with pytest.raises(ValueError, match="collect level"):
        AllegianceModel(tiny_loaded.scenario, 1, household_agents=False, collect="some")


def test_geography_is_built_once_per_process_and_runs_do_not_leak_models(tiny_loaded):
    from mesa.agent import Agent

    from sim.model.model import geography_for

    sc = tiny_loaded.scenario
    assert geography_for(sc) is geography_for(sc)
    assert not geography_for(sc).distance_km.flags.writeable
    before = len(Agent._ids)
    a = simulate(sc, 3, household_agents=False).frames
    b = simulate(sc, 3, household_agents=False).frames
    assert len(Agent._ids) == before  # finished models are dropped from Mesa's registry
    pd.testing.assert_frame_equal(a["timeseries"], b["timeseries"], check_exact=True)


def test_run_folder_replicates_in_workers_give_the_serial_observed_table(tmp_path):
    """The observed table from replicates run in worker processes (collecting only the measured
    columns) is the table of full runs in this process; ``replicates`` is recorded."""
    from sim.analysis.observed import compare

    sc = idlib_with_observed(tmp_path, {"households.sample_fraction": 0.005, "days": 70})
    result = simulate(sc, 11, household_agents=False)
    folder = write_run_folder(result, tmp_path, "r", replicates=3)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["observed"]["replicates"] == 3
    assert manifest["observed"]["replicates_from"] == "--replicates"
    assert len(manifest["observed"]["replicate_seeds"]) == 3
    table = pd.read_csv(folder / "observed.csv", keep_default_na=False, na_values=[""])
    serial, _ = compare(result, 3)  # full runs, one after the other, in this process
    serial = pd.read_csv(io.StringIO(serial.to_csv(index=False)), keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(table, serial, check_exact=True)
    assert (table["replicates"] == 3).all()

"""Reliability: every failure is one clear line, exit status 2, and loses nothing.

Each case runs the ``sim`` command line as a subprocess, the way users run it:
duplicate YAML keys, alias bombs, dates past the scenario window, unwritable
outputs, full disks, runs started together, and sensitivity designs that cannot
yield indices.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import results_data as data

from sim.scenario.loader import ScenarioError, read_yaml

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny.yaml"
TINY_TEXT = TINY.read_text()


def run_sim(command: list[str], *args: object, cwd: Path, timeout: float = 300, env=None):
    """One ``sim`` invocation as a subprocess."""
    return subprocess.run(
        [*command, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def assert_one_line(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit status 2, no traceback, exactly one ``error:`` line on stderr holding every needle."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def files_under(root: Path) -> list[Path]:
    """Every file and folder below ``root`` (empty folders count as leftovers too)."""
    return sorted(root.rglob("*")) if root.exists() else []


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- duplicate keys

DUP_NESTED = TINY_TEXT.replace("  sorties_per_day: 2\n", "  sorties_per_day: 2\n  sorties_per_day: 5\n")
DUP_TOP = TINY_TEXT + "days: 40\n"
DUP_FLOW = TINY_TEXT.replace("persons: 1200, stance: mixed}", "persons: 1200, stance: mixed, persons: 900}")


@pytest.mark.parametrize(
    ("case", "text", "key", "first", "second"),
    [
        ("top", DUP_TOP, "days", "days: 12", "days: 40"),
        ("nested", DUP_NESTED, "air_campaign.sorties_per_day", "sorties_per_day: 2", "sorties_per_day: 5"),
        ("flow", DUP_FLOW, "towns.2.persons", "name: Gamma", "name: Gamma"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_duplicate_keys_in_a_scenario_are_one_line_naming_both_lines(
    tmp_path, sim_command, case, text, key, first, second, command
):
    path = write(tmp_path / f"dup_{case}.yaml", text)
    a, b = line_of(text, first), line_of(text, second)
    out = tmp_path / "out"
    args = ["run", path, "--out", out] if command == "run" else ["validate", path]
    res = run_sim(sim_command, *args, cwd=tmp_path)
    line = assert_one_line(res, f"{path}:{b}", key, "duplicate key")
    assert (f"line {a} (columns" if a == b else f"lines {a} and {b}") in line
    assert files_under(out) == []


def test_duplicate_key_in_an_extended_file_names_that_file(tmp_path, sim_command):
    parent = write(tmp_path / "parent.yaml", DUP_NESTED)
    child = write(tmp_path / "child.yaml", "extends: parent.yaml\nseed: 3\n")
    res = run_sim(sim_command, "validate", child, cwd=tmp_path)
    assert_one_line(res, f"{parent}:", "air_campaign.sorties_per_day", "duplicate key")


def test_duplicate_key_in_a_set_override_is_refused(tmp_path, sim_command):
    res = run_sim(sim_command, "validate", TINY, "--set", "grid={cell_km: 1.0, cell_km: 3.0}", cwd=tmp_path)
    assert_one_line(res, "--set", "duplicate key 'cell_km'")


SWEEP = """name: dup_sweep
scenario: {scenario}
days: 3
root_seed: 1
replicates: 1
design: {{method: factorial}}
parameters:
  mechanisms.rally: {{values: [0.0, 1.0]}}
  mechanisms.rally: {{values: [2.0]}}
outcomes: [coop_resisting_mean]
"""


def test_duplicate_keys_in_a_sweep_file_are_one_line(tmp_path, sim_command):
    text = SWEEP.format(scenario=TINY)
    path = write(tmp_path / "sweep.yaml", text)
    out = tmp_path / "out"
    res = run_sim(sim_command, "sweep", path, "--out", out, "--workers", "1", cwd=tmp_path)
    assert_one_line(res, f"{path}:9", "parameters.mechanisms.rally", "lines 8 and 9")
    assert files_under(out) == []


def test_merge_keys_and_anchors_are_not_duplicates(tmp_path, sim_command):
    text = TINY_TEXT.replace(
        "  - {name: Gamma, x: 9, y: 5, persons: 1200, stance: mixed}",
        "  - &gamma {name: Gamma, x: 9, y: 5, persons: 1200, stance: mixed}\n  - {<<: *gamma, name: Delta, x: 12}",
    )
    path = write(tmp_path / "anchors.yaml", text)
    res = run_sim(sim_command, "validate", path, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "4 towns" in res.stdout


# --------------------------------------------------------------------------- alias bombs


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": nine aliases of nine aliases ... (9**9 leaves from a few hundred bytes)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghij", "bcdefghijk"[: levels - 1], strict=False):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_well_under_a_second(tmp_path):
    bomb = write(tmp_path / "bomb.yaml", alias_bomb())
    assert bomb.stat().st_size < 400
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError, match="alias"):
        read_yaml(bomb, "scenario")
    assert time.perf_counter() - t0 < 0.5


@pytest.mark.parametrize("command", ["validate", "sweep"])
def test_an_alias_bomb_is_one_line_through_the_cli(tmp_path, sim_command, command):
    bomb = write(tmp_path / "bomb.yaml", alias_bomb())
    t0 = time.perf_counter()
    res = run_sim(sim_command, command, bomb, cwd=tmp_path, timeout=60)
    assert time.perf_counter() - t0 < 30  # the interpreter's start-up included; unbounded it takes minutes
    assert_one_line(res, str(bomb), "alias")


def test_a_recursive_alias_is_refused(tmp_path, sim_command):
    path = write(tmp_path / "loop.yaml", TINY_TEXT + "description: &d [*d]\n")
    res = run_sim(sim_command, "validate", path, cwd=tmp_path)
    assert_one_line(res, str(path), "recursive YAML alias")


# --------------------------------------------------------------------------- dates and the scenario window

STRIKE = "    - {day: 2, town: Alpha, strikes: 2, killed: 6}\n"
DATED = TINY_TEXT.replace("days: 12\n", "days: 12\nstart_date: 2018-01-01\n")


@pytest.mark.parametrize(
    ("case", "text", "key", "needles"),
    [
        (
            "strike-day",
            TINY_TEXT,
            "air_campaign.calendar.1",
            ["day 30 is after the last day of the scenario, day 11"],
        ),
        (
            "strike-date",
            DATED,
            "air_campaign.calendar.1",
            ["date 2018-02-01 is after the last day of the scenario, 2018-01-12"],
        ),
        ("front-event", DATED, "front.events.0", ["date 2018-03-01 is after the last day"]),
        ("governance-body", DATED, "hts.governance_body", ["day 12 is after the last day of the scenario, day 11"]),
        ("observed-window", DATED, "observed.figures.0.end", ["date 2018-01-20 is after the last day"]),
    ],
)
def test_a_date_after_the_window_is_one_line_naming_file_line_and_key(tmp_path, sim_command, case, text, key, needles):
    additions = {
        "strike-day": (
            "    - {day: 2, town: Alpha, strikes: 2, killed: 6}\n",
            "    - {day: 30, town: Alpha, strikes: 1}\n",
        ),
        "strike-date": (
            "    - {day: 2, town: Alpha, strikes: 2, killed: 6}\n",
            "    - {date: 2018-02-01, town: Beta}\n",
        ),
    }
    if case in additions:
        anchor, extra = additions[case]
        text = text.replace(anchor, anchor + extra)
        needle = extra.strip()
    elif case == "front-event":
        text = text.replace("front:\n  enabled: false\n", "front:\n  enabled: false\n  events:\n")
        text += "    - {date: 2018-03-01, town: Gamma, status: regime}\n"
        needle = "2018-03-01"
    elif case == "governance-body":
        text += "hts:\n  governance_body: {day: 12}\n"
        needle = "governance_body"
    else:
        text += (
            "observed:\n  figures:\n    - name: moves\n      kind: displacements\n"
            "      start: {date: 2018-01-03}\n      end: {date: 2018-01-20}\n      value: 10\n      source: test\n"
        )
        needle = "end: {date: 2018-01-20}"
    path = write(tmp_path / f"{case}.yaml", text)
    out = tmp_path / "out"
    for args in (["validate", path], ["run", path, "--out", out]):
        res = run_sim(sim_command, *args, cwd=tmp_path)
        assert_one_line(res, f"{path}:{line_of(text, needle)}", key, *needles)
    assert files_under(out) == []


LATE_STRIKE = TINY_TEXT.replace(
    "    - {day: 2, town: Alpha, strikes: 2, killed: 6}\n",
    "    - {day: 2, town: Alpha, strikes: 2, killed: 6}\n    - {day: 8, town: Beta, strikes: 1}\n",
)


def test_a_shorter_or_longer_run_keeps_dates_of_the_scenario_window(tmp_path, sim_command):
    path = write(tmp_path / "late.yaml", LATE_STRIKE.replace("days: 12", "days: 8"))  # day 8 is past days 0..7
    assert_one_line(run_sim(sim_command, "validate", path, cwd=tmp_path), "day 8 is after the last day")
    # --days longer than the file's window reaches the strike; shorter than a valid window cuts it on purpose
    assert run_sim(sim_command, "validate", path, "--set", "days=9", cwd=tmp_path).returncode == 0
    ok = write(tmp_path / "ok.yaml", LATE_STRIKE)
    res = run_sim(sim_command, "validate", ok, "--set", "days=5", cwd=tmp_path)
    assert res.returncode == 0, res.stderr


RECORD = """\
record: tiny
scenario: tiny
window: {start: 2018-01-01, end: 2018-01-12}
governorate:
  towns: [Alpha, Beta, Gamma]
  reading: every tiny town
entries:
  - id: moves
    kind: displacements
    place: governorate
    window: {start: 2018-01-03, end: 2018-01-11}
    value: 100
    source: {publisher: test, title: "[test]", date: 2018-01-11}
    reading: test
    uncertainty: {relative: 0.25, reason: test}
    role: calibration
  - id: alpha-council
    kind: council
    place: Alpha
    date: 2018-01-05
    value: independent
    source: {publisher: test, title: "[test]", date: 2018-01-05}
    reading: test
    uncertainty: {days: 0, reason: test}
    role: validation
"""


def test_a_run_that_stops_before_a_record_entry_ends_says_not_reached(tmp_path, sim_command):
    """An entry whose window ends after the run's last day is "not reached" in record.csv (no
    simulated value, the note names the run's end) and the summary counts it so; an entry of the
    run's last day is compared; the full run compares both."""
    import pandas as pd

    record = write(tmp_path / "record.yaml", RECORD)
    path = write(tmp_path / "dated.yaml", DATED + f"record: {record}\n")
    out = tmp_path / "out"
    res = run_sim(sim_command, "run", path, "--days", "5", "--out", out, "--run-id", "short", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    [heading] = [line for line in res.stdout.splitlines() if "calibration entries" in line]
    assert "1 entries: 1 not reached" in heading
    [moves] = [line for line in res.stdout.splitlines() if "displacements:" in line]
    assert "1 not reached" in moves and "agree" not in moves and "nan" not in moves
    rec = pd.read_csv(out / "tiny" / "short" / "record.csv", keep_default_na=False, na_values=[""]).set_index("id")
    assert rec.loc["moves", "agreement"] == "not reached"
    assert pd.isna(rec.loc["moves", "simulated"])
    assert "the run ends on 2018-01-05" in rec.loc["moves", "note"]
    assert rec.loc["moves", "date"] == "2018-01-03..2018-01-11"
    assert rec.loc["alpha-council", "agreement"] != "not reached"  # an entry of the run's last day
    # the full run reaches the window: a simulated value and an agreement
    res = run_sim(sim_command, "run", path, "--out", out, "--run-id", "full", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "not reached" not in res.stdout
    full = pd.read_csv(out / "tiny" / "full" / "record.csv", keep_default_na=False, na_values=[""]).set_index("id")
    assert full.loc["moves", "agreement"] in ("agree", "disagree")
    assert float(full.loc["moves", "simulated"]) >= 0


# --------------------------------------------------------------------------- outputs: checked first, failures clean

#: Runs the real ``sim`` entry point with the one atomic writer failing like a full disk:
#: writes whose path contains SIM_FAIL_MATCH fail after the first SIM_FAIL_AFTER of them
#: succeeded (a few bytes land in the temporary file first, as on a real disk).
ENOSPC_LAUNCHER = """
import errno, os, sys
import sim.run.store as store

match, after = os.environ.get("SIM_FAIL_MATCH", ""), int(os.environ.get("SIM_FAIL_AFTER", "0"))
seen = 0
original = store.write_atomic

def full_disk(tmp):
    with open(tmp, "wb") as fh:
        fh.write(b"partial")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

def write_atomic(path, write):
    global seen
    if match in str(path):
        seen += 1
        if seen > after:
            write = full_disk
    return original(path, write)

store.write_atomic = write_atomic
from sim.cli.main import main
sys.argv[0] = "sim"
main()
"""


def run_full_disk(tmp_path: Path, *args: object, match: str = "", after: int = 0):
    """``sim ARGS`` as a subprocess whose writes fail with ENOSPC (see :data:`ENOSPC_LAUNCHER`)."""
    import os
    import sys

    launcher = tmp_path / "full_disk_sim.py"
    launcher.write_text(ENOSPC_LAUNCHER)
    env = dict(os.environ, SIM_FAIL_MATCH=match, SIM_FAIL_AFTER=str(after))
    return run_sim([sys.executable, str(launcher)], *args, cwd=tmp_path, env=env)


def assert_error_is_last_line(res: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Like :func:`assert_one_line` for commands that draw progress bars on stderr before failing."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert res.stderr.rstrip().splitlines()[-1] == errors[0]
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


@pytest.fixture(scope="module")
def a_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("file") / "results.txt"
    path.write_text("not a folder\n")
    return path


def sweep_file(tmp_path: Path, name: str = "tiny_sweep", **extra: object) -> Path:
    """A small factorial sweep of the tiny scenario: 4 points x 2 replicates, 2 runs per part."""
    text = (
        f"name: {name}\nscenario: {TINY}\ndays: 4\nroot_seed: 3\nreplicates: 2\nbatch_size: 2\n"
        "design: {method: factorial}\n"
        "parameters:\n  mechanisms.rally: {values: [0.0, 2.0]}\n  mechanisms.regime_blame: {values: [0.0, 1.0]}\n"
        "outcomes: [coop_resisting_mean, protest_resisting_mean]\n"
    )
    text += "".join(f"{k}: {v}\n" for k, v in extra.items())
    return write(tmp_path / f"{name}.yaml", text)


THESIS_ARGS = ["--replicates", "2", "--skip", "ablation", "--skip", "heatmap", "--days", "3", "--workers", "1"]
OUT_COMMANDS = {
    "run": lambda tmp, out: ["run", TINY, "--out", out],
    "sweep": lambda tmp, out: ["sweep", sweep_file(tmp), "--workers", "1", "--out", out],
    "thesis": lambda tmp, out: ["thesis", TINY, *THESIS_ARGS, "--out", out],
    "plot": lambda tmp, out: ["plot", DATA.parent.parent / "docs", "--out", out],
}


@pytest.mark.parametrize("where", ["is-a-file", "under-a-file", "unwritable"])
@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
def test_a_bad_output_location_is_refused_before_any_compute(tmp_path, sim_command, a_file, command, where):
    out = {"is-a-file": a_file, "under-a-file": a_file / "deeper" / "out", "unwritable": Path("/proc/sim-out")}[where]
    args = OUT_COMMANDS[command](tmp_path, out)
    if command == "plot":  # a real run folder to plot (the session's grid run, read-only)
        args[1] = data.grid_run()
    t0 = time.perf_counter()
    res = run_sim(sim_command, *args, cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    reason = {"is-a-file": "is not a folder", "under-a-file": "is a file", "unwritable": "cannot write here"}[where]
    line = assert_one_line(res, "--out", reason)  # one line: no progress bar, so nothing was computed
    assert str(a_file if where != "unwritable" else "/proc") in line
    assert a_file.read_text() == "not a folder\n"
    assert not (tmp_path / "results").exists()
    assert elapsed < 60


def test_disk_full_during_a_run_leaves_nothing(tmp_path):
    out = tmp_path / "new" / "out"
    for after in (0, 2):  # the first table, or a later file in the run folder
        res = run_full_disk(tmp_path, "run", TINY, "--out", out, "--set", "days=3", after=after)
        assert_error_is_last_line(res, f"cannot write {out / 'tiny'}", "No space left on device")
        assert not (tmp_path / "new").exists()  # not even the parent folders it created
    out.mkdir(parents=True)
    res = run_full_disk(tmp_path, "run", TINY, "--out", out, "--run-id", "r", after=1)
    assert_error_is_last_line(res, f"cannot write {out / 'tiny' / 'r'}: No space left on device")
    assert files_under(out) == []


def test_disk_full_at_the_start_of_a_sweep_or_thesis_leaves_nothing(tmp_path):
    sweep = sweep_file(tmp_path)
    res = run_full_disk(tmp_path, "sweep", sweep, "--workers", "1", "--out", tmp_path / "s" / "out")
    assert_error_is_last_line(res, f"{tmp_path / 's' / 'out' / 'tiny_sweep'}", "No space left on device")
    assert not (tmp_path / "s").exists()
    res = run_full_disk(tmp_path, *OUT_COMMANDS["thesis"](tmp_path, tmp_path / "t" / "thesis"))
    assert_error_is_last_line(res, str(tmp_path / "t" / "thesis"), "No space left on device")
    assert not (tmp_path / "t").exists()


def test_a_sweep_that_fails_writing_a_part_keeps_every_part_and_resumes(tmp_path, sim_command):
    import pandas as pd
    import pyarrow.parquet as pq

    from sim.experiments.store import load_results

    sweep = sweep_file(tmp_path)
    out = tmp_path / "out"
    res = run_full_disk(tmp_path, "sweep", sweep, "--workers", "1", "--out", out, match="part-", after=2)
    assert_error_is_last_line(res, "part-000003.parquet", "No space left on device")
    folder = out / "tiny_sweep"
    parts = sorted((folder / "parts").iterdir())
    assert [p.name for p in parts] == ["part-000001.parquet", "part-000002.parquet"]  # no temporary left
    assert sum(pq.read_table(p).num_rows for p in parts) == 4  # both complete and readable
    # space freed: the same command resumes and the result equals an uninterrupted serial sweep
    res = run_sim(sim_command, "sweep", sweep, "--workers", "1", "--out", out, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "4 already stored" in res.stdout
    res = run_sim(sim_command, "sweep", sweep, "--workers", "1", "--out", tmp_path / "whole", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    pd.testing.assert_frame_equal(load_results(folder), load_results(tmp_path / "whole" / "tiny_sweep"))
    assert len(load_results(folder)) == 8


def test_disk_full_while_plotting_leaves_no_figures_folder(tmp_path, sim_command):
    res = run_sim(sim_command, "run", TINY, "--out", tmp_path / "r", "--run-id", "one", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    run = tmp_path / "r" / "tiny" / "one"
    before = files_under(run)
    res = run_full_disk(tmp_path, "plot", run, match=".png", after=1)
    assert_error_is_last_line(res, f"cannot write {run / 'figures'}", "No space left on device")
    assert files_under(run) == before


# --------------------------------------------------------------------------- runs started together


def test_two_runs_started_together_both_land(tmp_path, sim_command):
    out = tmp_path / "D"
    procs = [
        subprocess.Popen(
            [*sim_command, "run", str(TINY), "--seed", "5", "--out", str(out)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    folders = sorted((out / "tiny").iterdir())
    assert len(folders) == 2 and folders[0].name != folders[1].name
    import json

    ids = set()
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["run_id"] == folder.name and manifest["seed"] == 5
        assert (folder / "timeseries.parquet").exists()
        ids.add(manifest["run_id"])
    assert len(ids) == 2
    assert not [p for p in (out / "tiny").iterdir() if p.name.startswith(".")]  # no temporary folders left


# --------------------------------------------------------------------------- sensitivity designs


@pytest.mark.parametrize("design", ["{method: sobol, samples: 8}", "{method: morris, trajectories: 4}"])
def test_a_sensitivity_design_of_one_parameter_is_refused_at_validation(tmp_path, sim_command, design):
    text = (
        f"name: one_parameter\nscenario: {TINY}\ndays: 3\nroot_seed: 1\ndesign: {design}\n"
        "parameters:\n  mechanisms.rally: {range: [0, 3]}\noutcomes: [coop_resisting_mean]\n"
    )
    path = write(tmp_path / "one.yaml", text)
    out = tmp_path / "out"
    res = run_sim(sim_command, "sweep", path, "--out", out, cwd=tmp_path)
    method = design.split()[1].rstrip(",")
    assert_one_line(res, f"{path}:7", "parameters", f"a {method} design needs at least two parameters (got 1)")
    assert files_under(out) == []

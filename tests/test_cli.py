"""The ``sim`` command line, run as a subprocess the way users run it.

Good input writes a complete run folder, reproducibly. Bad input of every kind
exits with status 2 and one clear line on stderr naming the file, the line where
the parser knows it, the key path and the problem; no traceback; nothing
written under ``--out``.
"""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
BAD = DATA / "bad"
TINY = DATA / "tiny.yaml"
RUN_FILES = {"timeseries.parquet", "towns.parquet", "events.parquet", "manifest.json", "summary.png"}
TABLES = ("timeseries.parquet", "towns.parquet", "events.parquet")


def run_sim(command: list[str], args: list, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


# --------------------------------------------------------------------------- good input


def test_validate_reports_what_the_scenario_resolves_to(run_cli):
    res = run_cli("validate", TINY)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok: ")
    assert "'tiny'" in res.stdout and "3 towns" in res.stdout and "12 days" in res.stdout
    assert "seed 11" in res.stdout


def test_validate_applies_overrides(run_cli):
    res = run_cli("validate", TINY, "--set", "days=7", "--set", "air_campaign.policy=random")
    assert res.returncode == 0, res.stderr
    assert "7 days" in res.stdout and "policy 'random'" in res.stdout


GOOD_RUNS = {
    "first": ["--run-id", "r"],
    "again": ["--run-id", "r"],  # same seed, another --out
    "seed12": ["--run-id", "r", "--seed", "12"],
    "options": ["--days", "5", "--seed", "3", "--set", "mechanisms.rally=0"],  # default run id
}


@pytest.fixture(scope="module")
def good_runs(tmp_path_factory, sim_command):
    """Good runs of the tiny scenario, each into its own --out, run concurrently."""
    root = tmp_path_factory.mktemp("good")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(run_sim, sim_command, ["run", TINY, "--out", root / name, *extra], root)
            for name, extra in GOOD_RUNS.items()
        }
        results = {name: f.result() for name, f in futures.items()}
    for name, res in results.items():
        assert res.returncode == 0, (name, res.stderr)
        assert "Traceback" not in res.stderr
    return root, results


def folder_of(good_runs, name: str) -> Path:
    root, results = good_runs
    folder = root / name / "tiny" / "r"
    assert f"results: {folder}" in results[name].stdout
    return folder


def test_run_writes_a_complete_run_folder(good_runs):
    folder = folder_of(good_runs, "first")
    assert RUN_FILES <= {p.name for p in folder.iterdir()}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 11 and manifest["days"] == 12
    assert manifest["config"]["name"] == "tiny"
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["config_hash"])
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["scenario_hash"])
    assert re.fullmatch(r"[0-9a-f]{40}", manifest["code_version"]["git_commit"])
    assert {"mesa", "numpy", "pandas", "pyarrow", "pydantic"} <= set(manifest["packages"])
    assert manifest["wall_time_s"] > 0
    assert [p.name for p in folder.parent.iterdir()] == ["r"]  # no temporary folder left
    assert "cooperation with HTS" in good_runs[1]["first"].stdout


def test_same_seed_gives_byte_identical_parquet_files(good_runs):
    a, b = folder_of(good_runs, "first"), folder_of(good_runs, "again")
    for name in TABLES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_different_seeds_give_different_results(good_runs):
    a, b = folder_of(good_runs, "first"), folder_of(good_runs, "seed12")
    assert json.loads((b / "manifest.json").read_text())["seed"] == 12
    assert (a / "timeseries.parquet").read_bytes() != (b / "timeseries.parquet").read_bytes()
    assert (a / "towns.parquet").read_bytes() != (b / "towns.parquet").read_bytes()


def only_run_folder(good_runs, name: str) -> Path:
    root, _ = good_runs
    (folder,) = (root / name / "tiny").iterdir()
    return folder


def test_run_options_reach_the_manifest(good_runs):
    manifest = json.loads((only_run_folder(good_runs, "options") / "manifest.json").read_text())
    assert manifest["days"] == 5 and manifest["seed"] == 3
    assert manifest["config"]["mechanisms"]["rally"] == 0
    assert "mechanisms.rally=0" in manifest["overrides"]


def test_default_run_id_is_time_and_seed(good_runs):
    # time to the microsecond, seed, random suffix: unique when runs start together
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}_seed3_[0-9a-f]{4}", only_run_folder(good_runs, "options").name)


def test_an_existing_run_id_is_refused_and_left_alone(good_runs, run_cli):
    folder = folder_of(good_runs, "first")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    res = run_cli("run", TINY, "--out", folder.parent.parent, "--run-id", "r", "--days", "4")
    assert res.returncode == 2
    assert "already exists" in res.stderr and "Traceback" not in res.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


# --------------------------------------------------------------------------- bad input

#: (scenario file, extra arguments, substrings the one error line must contain)
BAD_INPUT = {
    "malformed-yaml": (BAD / "malformed.yaml", [], ["malformed.yaml:5", "malformed YAML"]),
    "unknown-key": (BAD / "typo_key.yaml", [], ["typo_key.yaml:4", "mechanisms.rallly", "did you mean 'rally'"]),
    "unknown-key-in-extended-file": (
        BAD / "child_of_typo.yaml",
        [],
        ["parent_typo.yaml:6", "flight.exposure_rat", "did you mean 'exposure_rate'"],
    ),
    "wrong-type": (BAD / "wrong_type.yaml", [], ["wrong_type.yaml:3", "hts.fighters", "valid number", "'lots'"]),
    "out-of-range": (
        BAD / "out_of_range.yaml",
        [],
        ["out_of_range.yaml:3", "mechanisms.pretext_blame", "less than or equal to 1", "1.5"],
    ),
    "calendar-town": (
        BAD / "unknown_calendar_town.yaml",
        [],
        [
            "unknown_calendar_town.yaml:4",
            "air_campaign.calendar.0.town",
            "unknown town 'Alpah'",
            "did you mean 'Alpha'",
        ],
    ),
    "front-town": (
        BAD / "unknown_front_town.yaml",
        [],
        ["unknown_front_town.yaml:5", "front.events.0.town", "unknown town 'Atlantis'"],
    ),
    "rival-town": (
        BAD / "unknown_rival_town.yaml",
        [],
        ["unknown_rival_town.yaml:5", "rivals.groups.0.towns.Delta", "unknown town 'Delta'"],
    ),
    "extends-cycle": (BAD / "cycle_a.yaml", [], ["cycle_", "extends", "cycle: "]),
    "extends-missing": (
        BAD / "missing_parent.yaml",
        [],
        ["missing_parent.yaml:1", "extends", "'no_such_parent.yaml' not found"],
    ),
    "empty-file": (BAD / "empty.yaml", [], ["empty.yaml", "empty scenario file"]),
    "missing-file": (BAD / "does_not_exist.yaml", [], ["does_not_exist.yaml", "file not found"]),
    "not-a-mapping": (BAD / "not_a_mapping.yaml", [], ["not_a_mapping.yaml:1", "mapping"]),
    "folder-not-file": (BAD, [], ["bad", "folder"]),
    "towns-on-one-cell": (BAD / "same_cell.yaml", [], ["same_cell.yaml:4", "towns.1", "same cell"]),
    "set-without-equals": (TINY, ["--set", "nonsense"], ["--set 'nonsense'", "key.path=value"]),
    "set-unknown-key": (TINY, ["--set", "mechanisms.rallly=1"], ["mechanisms.rallly", "did you mean 'rally'", "--set"]),
    "set-wrong-type": (TINY, ["--set", "days=abc"], ["days", "valid integer", "--set days=abc"]),
    "set-out-of-range": (TINY, ["--seed", "-1"], ["seed", "greater than or equal to 0"]),
    "set-unknown-town": (TINY, ["--set", "towns.Alpah.persons=5"], ["towns.Alpah", "did you mean 'Alpha'"]),
    "file-typo-with-seed-option": (BAD / "seeds_typo.yaml", ["--seed", "3"], ["seeds_typo.yaml:2", "seeds"]),
    "run-id-escaping": (TINY, ["--run-id", "../escape"], ["--run-id", "plain folder name"]),
    "run-id-hidden": (TINY, ["--run-id", ".hidden"], ["--run-id", "plain folder name"]),
    "run-id-nested": (TINY, ["--run-id", "a/b"], ["--run-id", "plain folder name"]),
}

#: Cases also checked through ``sim validate`` (the others use options only ``run`` has).
VALIDATE_CASES = ["unknown-key", "calendar-town", "extends-cycle", "empty-file", "malformed-yaml", "set-unknown-key"]


def assert_one_clear_line(res, needles: list[str]) -> str:
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("error: ")
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, sim_command):
    """Every bad-input case through ``sim run`` and ``sim validate``, as subprocesses.

    The processes run four at a time (each costs about a second to import), so the
    whole matrix takes seconds; every test below then checks one of them.
    """
    root = tmp_path_factory.mktemp("bad")
    jobs = {}
    for case, (path, extra, _) in BAD_INPUT.items():
        out = root / case / "out"
        out.parent.mkdir()
        jobs[("run", case)] = (["run", path, "--out", out, *extra], out.parent, out)
        if case in VALIDATE_CASES:
            jobs[("validate", case)] = (["validate", path, *extra], out.parent, out)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(run_sim, sim_command, args, cwd) for key, (args, cwd, _) in jobs.items()}
        return {key: (f.result(), jobs[key][2]) for key, f in futures.items()}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_to_run_exits_2_with_one_line_and_writes_nothing(case, bad_runs):
    res, out = bad_runs[("run", case)]
    assert_one_clear_line(res, BAD_INPUT[case][2])
    assert files_under(out) == []
    assert files_under(out.parent) == []  # nor under results/ in the working folder


@pytest.mark.parametrize("case", VALIDATE_CASES)
def test_bad_input_to_validate_exits_2_with_one_line(case, bad_runs):
    res, _ = bad_runs[("validate", case)]
    assert_one_clear_line(res, BAD_INPUT[case][2])


# --------------------------------------------------------------------------- characters YAML refuses


@pytest.mark.parametrize(
    "char, needle",
    [("\x07", "control character U+0007"), ("\x85", "U+0085"), ("\ufeff", "byte-order mark (U+FEFF)")],
    ids=["bell", "next-line", "stray-bom"],
)
@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_scenario_with_a_refused_character_is_one_line_and_writes_nothing(run_cli, tmp_path, char, needle, command):
    path = tmp_path / "odd.yaml"
    path.write_text(TINY.read_text(encoding="utf-8").replace("name: tiny", f"name: ti{char}ny"), encoding="utf-8")
    out = tmp_path / "out"
    res = run_cli(command, path, *(["--out", out] if command == "run" else []))
    assert_one_clear_line(res, ["odd.yaml:3", "column 9", needle])
    assert files_under(out) == [] and not (tmp_path / "results").exists()


def test_resuming_a_sweep_with_a_truncated_part_is_one_line_and_changes_nothing(run_cli, tmp_path):
    sweep = tmp_path / "ishigami.yaml"
    sweep.write_text(
        "name: ishigami\nmodel: sim.experiments.tasks:ishigami\nroot_seed: 1\nbatch_size: 4\n"
        "design: {method: lhs, samples: 12}\noutcomes: [y]\n"
        "parameters: {x1: {range: [-3, 3]}, x2: {range: [-3, 3]}, x3: {range: [-3, 3]}}\n",
        encoding="utf-8",
    )
    first = run_cli("sweep", sweep, "--out", tmp_path / "out", "--workers", "1")
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "out" / "ishigami"
    part = sorted((folder / "parts").glob("part-*.parquet"))[1]
    part.write_bytes(part.read_bytes()[:100])
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}
    res = run_cli("sweep", sweep, "--out", tmp_path / "out", "--workers", "1")
    assert_one_clear_line(res, [str(part), "not a readable Parquet file"])
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"} == before

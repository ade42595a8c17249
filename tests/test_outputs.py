"""docs/OUTPUTS.md and the collector's column definitions: current, complete, one source for labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.model import collect, datadict
from sim.run.simulate import simulate
from sim.scenario.loader import load_scenario
from sim.viz.style import LABELS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def idlib_frames():
    """A short Idlib run: calendar dates, rival groups, strikes, flight and front events."""
    loaded = load_scenario(ROOT / "scenarios" / "idlib_2017_2018.yaml", ["households.sample_fraction=0.01", "days=90"])
    return simulate(loaded, household_agents=False).frames


def test_outputs_md_is_current():
    assert datadict.check(), "docs/OUTPUTS.md is stale: run python -m sim.model.datadict"


def test_check_flags_a_stale_file(tmp_path: Path):
    path = tmp_path / "OUTPUTS.md"
    text = datadict.OUTPUTS_PATH.read_text(encoding="utf-8")
    tampered = text.replace("| `coop_share` |", "| `coop_shared` |", 1)
    assert tampered != text
    path.write_text(tampered, encoding="utf-8")
    assert datadict.main(["--check", "--path", str(path)]) == 1
    assert datadict.main(["--path", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == text
    assert datadict.main(["--check", "--path", str(path)]) == 0


def _documented(table: dict[str, collect.Column], column: str) -> bool:
    if column in table:
        return True
    prefix = column.split(":", 1)[0]
    # per-group and per-controller columns are defined once, as "<prefix>:<group>" or "<prefix>:<controller>"
    return ":" in column and any(k.startswith(f"{prefix}:<") for k in table)


@pytest.mark.parametrize(
    ("name", "table"),
    [("timeseries", collect.TIMESERIES_COLUMNS), ("towns", collect.TOWN_COLUMNS), ("events", collect.EVENT_COLUMNS)],
)
def test_every_output_column_is_defined_and_every_definition_is_output(idlib_frames, name: str, table):
    frame = idlib_frames[name]
    undocumented = [c for c in frame.columns if not _documented(table, c)]
    assert not undocumented, f"{name} columns without a definition in sim/model/collect.py: {undocumented}"
    # Pattern entries stand for per-group columns, which the Idlib scenario has.
    missing = [k for k in table if "<" not in k and k not in frame.columns]
    assert not missing, f"{name}: defined but not written: {missing}"
    for k in (k for k in table if "<" in k):
        assert any(c.startswith(k.split("<", 1)[0]) for c in frame.columns), k
    # The documentation lists the columns in the order the table has them.
    assert [c for c in frame.columns if ":" not in c] == [k for k in table if "<" not in k]


def test_every_event_kind_is_documented(idlib_frames):
    kinds = set(idlib_frames["events"]["event"])
    assert {"strike", "displacement"} <= kinds
    assert kinds <= set(collect.EVENT_KINDS), f"undocumented event kinds: {kinds - set(collect.EVENT_KINDS)}"


def test_every_definition_has_title_unit_and_meaning():
    for table in (collect.TIMESERIES_COLUMNS, collect.TOWN_COLUMNS, collect.EVENT_COLUMNS):
        for name, col in table.items():
            assert col.title and col.unit and col.meaning.endswith("."), name


def test_shared_names_mean_the_same_quantity():
    """A name in both tables has one title and one unit, so axis labels cannot disagree."""
    both = set(collect.GOV_COLUMNS) & set(collect.TOWN_STATE_COLUMNS)
    assert {"coop_share", "killed", "persons_present"} <= both
    for name in both:
        gov, town = collect.GOV_COLUMNS[name], collect.TOWN_STATE_COLUMNS[name]
        assert (gov.title, gov.unit) == (town.title, town.unit), name


def test_labels_derive_from_the_definitions():
    for name, col in {**collect.TOWN_STATE_COLUMNS, **collect.GOV_COLUMNS}.items():
        assert LABELS[name] == (col.title, col.unit)
    assert set(LABELS) == set(collect.TOWN_STATE_COLUMNS) | set(collect.GOV_COLUMNS)

"""Scenario files -> validated config (sim/loader.py): extends, overrides, provenance, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.scenario.loader import ScenarioError, config_hash, deep_merge, load_scenario, parse_override
from sim.scenario.schema import Mechanisms

DATA = Path(__file__).parent / "data"
BAD = DATA / "bad"
TINY = DATA / "tiny.yaml"
GRID = Path(__file__).resolve().parents[1] / "scenarios" / "synthetic_grid.yaml"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def error_of(path: Path, overrides: list[str] | None = None) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    return info.value


# --------------------------------------------------------------------------- valid files


def test_shipped_scenario_loads_with_its_provenance():
    loaded = load_scenario(GRID)
    sc = loaded.scenario
    assert sc.name == "synthetic_grid"
    assert len(sc.towns) == 16 and len(sc.resisting_towns) == 3
    assert loaded.path == GRID
    assert list(loaded.file_hashes) == [str(GRID.resolve())]
    assert all(len(h) == 64 for h in loaded.file_hashes.values())
    assert loaded.config_hash == config_hash(sc)


def test_deep_merge_merges_mappings_and_replaces_lists_without_mutating():
    base = {"a": {"x": 1, "y": 2}, "l": [1, 2], "k": 1}
    over = {"a": {"y": 3, "z": 4}, "l": [9]}
    out = deep_merge(base, over)
    assert out == {"a": {"x": 1, "y": 3, "z": 4}, "l": [9], "k": 1}
    assert base == {"a": {"x": 1, "y": 2}, "l": [1, 2], "k": 1}


def test_extends_merges_key_by_key_relative_to_the_child(tmp_path):
    sub = tmp_path / "deeper"
    sub.mkdir()
    parent = TINY.resolve()
    child = write(
        sub / "child.yaml",
        f"extends: {parent}\nname: child\nmechanisms:\n  rally: 0.0\nair_campaign:\n  sorties_per_day: 9\n",
    )
    loaded = load_scenario(child)
    sc = loaded.scenario
    assert sc.name == "child"
    assert sc.mechanisms.rally == 0.0
    # neither file sets it: the schema default is kept
    assert sc.mechanisms.regime_blame == Mechanisms.model_fields["regime_blame"].default
    assert sc.air_campaign.sorties_per_day == 9
    assert sc.air_campaign.policy == "resisting_towns"  # merged from the parent
    assert [s.town for s in sc.air_campaign.calendar] == ["Alpha"]  # parent list kept
    assert loaded.files == [child.resolve(), parent]


def test_extends_path_is_relative_to_the_extending_file(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "a" / "base.yaml", TINY.read_text())
    child = write(tmp_path / "b" / "child.yaml", "extends: ../a/base.yaml\nname: rel\n")
    monkeypatch.chdir(tmp_path / "b")  # the working folder must not matter
    assert load_scenario(child).scenario.name == "rel"
    monkeypatch.chdir(tmp_path)
    assert load_scenario(Path("b") / "child.yaml").scenario.name == "rel"


def test_lists_in_the_child_replace_the_parents(tmp_path):
    child = write(
        tmp_path / "c.yaml",
        f"extends: {TINY.resolve()}\nair_campaign:\n  calendar:\n    - {{day: 5, town: Gamma}}\n",
    )
    cal = load_scenario(child).scenario.air_campaign.calendar
    assert [(c.town, c.day) for c in cal] == [("Gamma", 5)]


def test_a_chain_of_extends_is_followed(tmp_path):
    mid = write(tmp_path / "mid.yaml", f"extends: {TINY.resolve()}\nmechanisms: {{exit: 0}}\n")
    top = write(tmp_path / "top.yaml", f"extends: {mid.name}\nmechanisms: {{control: 2}}\n")
    loaded = load_scenario(top)
    assert loaded.scenario.mechanisms.exit == 0
    assert loaded.scenario.mechanisms.control == 2
    assert len(loaded.files) == 3


@pytest.mark.parametrize(
    ("text", "keys", "value"),
    [
        ("days=30", ["days"], 30),
        ("mechanisms.rally=0.5", ["mechanisms", "rally"], 0.5),
        ("front.enabled=false", ["front", "enabled"], False),
        ("air_campaign.policy=random", ["air_campaign", "policy"], "random"),
        ("output.household_snapshot_days=[1, 2]", ["output", "household_snapshot_days"], [1, 2]),
        ("description=a=b", ["description"], "a=b"),
    ],
)
def test_parse_override(text, keys, value):
    assert parse_override(text) == (keys, value)


def test_overrides_apply_last_and_reach_list_items_by_name_or_index():
    loaded = load_scenario(
        TINY,
        ["days=5", "towns.Beta.persons=600", "towns.0.council=0.1", "rivals.groups.Ahrar-like.alignment=0.5"],
    )
    sc = loaded.scenario
    assert sc.days == 5
    assert sc.towns[1].persons == 600
    assert sc.towns[0].council == 0.1
    assert sc.rivals.groups[0].alignment == 0.5
    assert loaded.overrides[0] == "days=5"


def test_hashes_track_files_and_overrides():
    a = load_scenario(TINY)
    b = load_scenario(TINY, ["days=5"])
    c = load_scenario(TINY, ["days=12"])  # same value as the file
    assert a.scenario_hash != b.scenario_hash
    assert a.config_hash != b.config_hash
    assert a.config_hash == c.config_hash  # same resolved configuration
    assert a.scenario_hash == load_scenario(TINY).scenario_hash


# --------------------------------------------------------------------------- errors


def test_unknown_key_names_file_line_key_and_suggests():
    e = error_of(BAD / "typo_key.yaml")
    assert Path(e.file).name == "typo_key.yaml"
    assert e.line == 4
    assert e.key == "mechanisms.rallly"
    assert "did you mean 'rally'" in e.message


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(tmp_path):
    f = write(tmp_path / "x.yaml", f"extends: {TINY.resolve()}\nfear:\n  zzz: 1\n")
    e = error_of(f)
    assert e.key == "fear.zzz" and "allowed: rate, decay" in e.message


def test_a_problem_in_an_extended_file_blames_that_file_and_its_line():
    e = error_of(BAD / "child_of_typo.yaml")
    assert Path(e.file).name == "parent_typo.yaml"
    assert e.line == 6
    assert e.key == "flight.exposure_rat"
    assert "did you mean 'exposure_rate'" in e.message


def test_a_missing_key_in_an_extended_file_blames_that_file():
    """The town lacking 'persons' is written in the parent (line 4), not in the child."""
    e = error_of(BAD / "child_missing_persons.yaml")
    assert e.key == "towns.1.persons"
    assert Path(e.file).name == "parent_missing_persons.yaml", str(e)
    assert e.line == 4, str(e)


@pytest.mark.parametrize(
    ("name", "line", "key", "needle"),
    [
        ("wrong_type.yaml", 3, "hts.fighters", "valid number"),
        ("out_of_range.yaml", 3, "mechanisms.pretext_blame", "less than or equal to 1"),
        ("unknown_calendar_town.yaml", 4, "air_campaign.calendar.0.town", "did you mean 'Alpha'"),
        ("unknown_front_town.yaml", 5, "front.events.0.town", "unknown town 'Atlantis'"),
        ("unknown_rival_town.yaml", 5, "rivals.groups.0.towns.Delta", "unknown town 'Delta'"),
        ("malformed.yaml", 5, "", "malformed YAML"),
        ("missing_parent.yaml", 1, "extends", "no_such_parent.yaml"),
        ("not_a_mapping.yaml", 1, "", "mapping"),
    ],
)
def test_bad_files_give_file_line_key_and_problem(name, line, key, needle):
    e = error_of(BAD / name)
    assert Path(e.file).name == name
    assert e.line == line
    assert e.key == key
    assert needle in e.message
    assert str(e).startswith(f"{e.file}:{line}: ")


def test_empty_and_missing_files(tmp_path):
    assert "empty" in error_of(BAD / "empty.yaml").message
    e = error_of(tmp_path / "nope.yaml")
    assert "not found" in e.message and e.file.endswith("nope.yaml")
    assert "folder" in error_of(tmp_path).message


def test_non_utf8_file(tmp_path):
    f = tmp_path / "latin.yaml"
    f.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert "UTF-8" in error_of(f).message


def test_an_extends_cycle_is_reported_with_the_extends_line():
    e = error_of(BAD / "cycle_a.yaml")
    assert "cycle" in e.message
    assert "cycle_a.yaml" in e.message and "cycle_b.yaml" in e.message
    assert e.key == "extends"
    # The file that closes the cycle names its 'extends' line (cycle_b.yaml:2, cycle_a.yaml:1).
    assert (Path(e.file).name, e.line) in {("cycle_b.yaml", 2), ("cycle_a.yaml", 1)}, str(e)


def test_self_extension_is_a_cycle(tmp_path):
    f = write(tmp_path / "self.yaml", "extends: self.yaml\nname: s\n")
    assert "cycle" in error_of(f).message


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("nonsense", "expected key.path=value"),
        ("=3", "empty key path"),
        ("mechanisms..rally=1", "empty key path"),
        ("mechanisms.rallly=1", "did you mean 'rally'"),
        ("days=abc", "valid integer"),
        ("towns.Nope.persons=1", "no list item named 'Nope'"),
        ("towns.Alpah.persons=1", "did you mean 'Alpha'"),
        ("towns.7.persons=1", "out of range"),
        ("days.x=1", "cannot set inside"),
    ],
)
def test_bad_overrides(override, needle):
    e = error_of(TINY, [override])
    assert needle in str(e)
    assert "--set" in str(e)


def test_an_error_in_the_file_is_not_blamed_on_an_unrelated_override():
    """``sim run FILE --seed 3`` adds the override ``seed=3``; the typo 'seeds' is in the file."""
    e = error_of(BAD / "seeds_typo.yaml", ["seed=3"])
    assert e.key == "seeds"
    assert "--set" not in e.message, str(e)
    assert Path(e.file).name == "seeds_typo.yaml"
    assert e.line == 2, str(e)


def test_an_error_caused_by_an_override_names_it():
    e = error_of(TINY, ["mechanisms.pretext_blame=3"])
    assert e.key == "mechanisms.pretext_blame"
    assert "--set mechanisms.pretext_blame=3" in e.message


# --------------------------------------------------------------------------- shipped scenarios

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SHIPPED = sorted(p for p in SCENARIOS.rglob("*.yaml") if not {"sweeps", "calibration", "record"} & set(p.parts))


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(SCENARIOS)) for p in SHIPPED])
def test_every_shipped_scenario_validates_and_fits_its_grid(path):
    from sim.scenario.geography import build_geography

    sc = load_scenario(path).scenario
    geo = build_geography(sc)
    assert len(geo.cells) == len(sc.towns)


@pytest.mark.parametrize("policy", ["none", "random", "hts_strongholds", "resisting_towns", "frontline", "calendar"])
def test_one_small_scenario_per_targeting_policy_extends_the_grid(policy):
    loaded = load_scenario(SCENARIOS / "policies" / f"{policy}.yaml")
    assert loaded.scenario.air_campaign.policy == policy
    assert loaded.files[-1] == GRID.resolve()
    assert len(loaded.scenario.towns) == len(load_scenario(GRID).scenario.towns)


def test_a_bad_value_overriding_a_good_one_blames_the_overriding_file(tmp_path):
    parent = write(tmp_path / "parent.yaml", TINY.read_text() + "mechanisms:\n  pretext_blame: 0.3\n")
    child = write(tmp_path / "child.yaml", "extends: parent.yaml\nname: c\nmechanisms:\n  pretext_blame: 1.5\n")
    e = error_of(child)
    assert (Path(e.file).name, e.line, e.key) == ("child.yaml", 4, "mechanisms.pretext_blame")
    assert parent.exists()


def test_an_override_of_a_whole_block_is_blamed_for_errors_inside_it():
    e = error_of(TINY, ["mechanisms={pretext_blame: 3}"])
    assert e.key == "mechanisms.pretext_blame"
    assert "--set mechanisms={pretext_blame: 3}" in e.message


# --------------------------------------------------------------------------- one YAML reader, one key-path helper


@pytest.mark.parametrize(
    "char, needle",
    [
        ("\x07", "control character U+0007"),
        ("\x00", "control character U+0000"),
        ("\x85", "U+0085 (NEXT LINE (NEL))"),
        ("\u2028", "U+2028 (LINE SEPARATOR)"),
        ("\ufeff", "byte-order mark (U+FEFF) inside the file"),
    ],
)
def test_characters_yaml_refuses_or_editors_miscount_are_one_error_with_their_line(tmp_path, char, needle):
    from sim.scenario.loader import read_yaml

    path = tmp_path / "odd.yaml"
    path.write_text(TINY.read_text(encoding="utf-8").replace("name: tiny", f"name: ti{char}ny"), encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        read_yaml(path, "scenario")
    assert str(err.value).startswith(f"{path}:3: column 9: ")  # the line and column an editor shows
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_leading_byte_order_mark_and_escaped_characters_are_fine(tmp_path):
    from sim.scenario.loader import read_yaml

    path = tmp_path / "bom.yaml"
    path.write_text('\ufeffname: "ti\\x07ny"\nnote: "a\\u2028b"\n', encoding="utf-8")
    assert read_yaml(path).data == {"name": "ti\x07ny", "note": "a\u2028b"}


@pytest.mark.parametrize(
    "text, needle",
    [
        ("a:\n\tb: 1\n", "YAML indents with spaces, not tabs"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("# nothing\n", "empty scenario file"),
        ("a: [1, 2\n", "malformed YAML"),
    ],
)
def test_every_yaml_failure_is_one_scenario_error(tmp_path, text, needle):
    from sim.scenario.loader import read_yaml

    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        read_yaml(path, "scenario")
    assert str(err.value).startswith(str(path)) and needle in str(err.value)
    path.write_bytes(b"a: \xff\n")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        read_yaml(path, "scenario")


def test_apply_values_sets_list_items_by_name_and_names_the_key_of_a_bad_value():
    from sim.scenario.loader import apply_values, value_at

    sc = load_scenario(TINY).scenario
    changed = apply_values(sc, {"towns.Beta.council": 0.55, "mechanisms.rally": 1.5})
    assert changed.towns[1].council == 0.55 and changed.mechanisms.rally == 1.5
    assert sc.towns[1].council == 0.2  # the base is left alone
    data = sc.model_dump(mode="json")
    assert apply_values(data, {"towns.0.council": 0.1}).towns[0].council == 0.1
    assert value_at(data, "towns.Gamma.persons") == 1200
    with pytest.raises(ScenarioError) as err:
        apply_values(sc, {"towns.Beta.council": 7}, source="probe")
    assert str(err.value).startswith("probe: towns.1.council: ")
    with pytest.raises(ScenarioError, match="did you mean 'Alpha'"):
        apply_values(sc, {"towns.Alpah.council": 0.1})


def test_explain_validation_error_hints_unknown_keys_from_the_schema_it_is_given():
    from pydantic import ValidationError

    from sim.experiments.spec import SweepFile
    from sim.scenario.loader import explain_validation_error

    bad = {"name": "x", "model": "a.b:c", "root_seed": 1, "outcomes": ["y"], "parameters": {"p": {"valeus": [1]}}}
    with pytest.raises(ValidationError) as exc:
        SweepFile.model_validate(bad)
    errors = [e for e in exc.value.errors() if e["type"] == "extra_forbidden"]
    loc, msg = explain_validation_error(errors[0], SweepFile)
    assert loc == ("parameters", "p", "valeus") and "did you mean 'values'" in msg

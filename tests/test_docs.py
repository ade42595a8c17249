"""docs/ODD.md stays true to the code: generated tables current, every parameter and mechanism described."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.scenario import odd as docs
from sim.scenario.schema import MECHANISM_NAMES, Mechanisms

ODD = docs.ODD_PATH

# MODEL.md's mechanism table: the label of each row and the strength that switches it.
MODEL_MECHANISMS = {
    "rally / protection": "rally",
    "asymmetric blame": "regime_blame",
    "institutions hollowed out": "institutions",
    "suppression / deterrence": "suppression",
    "blame on the pretext": "pretext_blame",
    "exit": "exit",
    "control drives collaboration": "control",
    "collaboration drives control": "consolidation",
}


@pytest.fixture(scope="module")
def odd_text() -> str:
    return ODD.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """Text of the section starting at ``heading`` up to the next heading of the same level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading)
    nxt = re.search(rf"^{re.escape(level)} ", text[start + len(heading) :], re.MULTILINE)
    return text[start:] if nxt is None else text[start : start + len(heading) + nxt.start()]


def _table_rows(section: str) -> list[str]:
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("|---")]


def test_parameter_tables_are_current():
    stale = docs.check(ODD)
    assert not stale, f"docs/ODD.md is stale ({', '.join(stale)}): run python -m sim.scenario.odd"


def test_check_cli_flags_a_stale_file(tmp_path: Path):
    stale_copy = tmp_path / "ODD.md"
    text = ODD.read_text(encoding="utf-8")
    # Tamper with one generated default: the check must notice.
    tampered = re.sub(r"(\| `exposure\.half_life_days` \| )`[^`]*`", r"\1`999`", text, count=1)
    assert tampered != text
    stale_copy.write_text(tampered, encoding="utf-8")
    assert docs.main(["--check", "--path", str(stale_copy)]) == 1
    assert docs.main(["--path", str(stale_copy)]) == 0  # regenerates
    assert stale_copy.read_text(encoding="utf-8") == text
    assert docs.main(["--check", "--path", str(stale_copy)]) == 0


def test_missing_block_is_stale_and_inserted(tmp_path: Path):
    text = ODD.read_text(encoding="utf-8")
    cut = re.sub(r"<!-- BEGIN PARAMS: fear -->.*?<!-- END PARAMS: fear -->", "", text, flags=re.DOTALL)
    new, stale = docs.update_text(cut)
    assert "fear" in stale
    assert "<!-- BEGIN PARAMS: fear -->" in new
    assert new.index("BEGIN PARAMS: fear") < new.index(docs.NEW_BLOCKS_MARKER)


def test_every_schema_parameter_appears(odd_text: str):
    keys = docs.all_parameter_keys()
    assert len(keys) > 100
    missing = [k for k in keys if f"`{k}`" not in odd_text]
    assert not missing, f"parameters missing from docs/ODD.md: {missing}"


def test_every_generated_row_has_unit_and_source_columns():
    for block, rows in docs.schema_blocks().items():
        for row in rows:
            assert row["unit"], (block, row["key"])
            assert row["source"], (block, row["key"])


def test_model_md_mechanisms_cover_the_schema():
    assert set(MODEL_MECHANISMS.values()) == set(MECHANISM_NAMES)


@pytest.mark.parametrize(("label", "name"), sorted(MODEL_MECHANISMS.items()))
def test_mechanism_described_with_its_parameters(odd_text: str, label: str, name: str):
    """Each mechanism row names its strength and every parameter the schema says it multiplies."""
    key = f"mechanisms.{name}"
    purpose = _section(odd_text, "### 1.2 Competing mechanisms")
    rows = [r for r in _table_rows(purpose) if f"`{key}`" in r]
    assert len(rows) == 1, f"section 1.2 needs one row for {key}"
    assert rows[0].lower().startswith(f"| {label}"), f"row of {key} should start with {label!r}"
    off = _section(odd_text, "### 7.10 Mechanism strengths")
    off_rows = [r for r in _table_rows(off) if r.startswith(f"| `{key}` |")]
    assert len(off_rows) == 1, f"section 7.10 needs one row for {key}"
    description = Mechanisms.model_fields[name].description or ""
    multiplied = (
        re.findall(r"[a-z_]+\.[a-z_]+", description.split("Multiplies", 1)[1]) if ("Multiplies" in description) else []
    )
    for param in multiplied:
        assert f"`{param}`" in rows[0], f"1.2 row of {key} omits {param}"
        assert f"`{param}`" in off_rows[0], f"7.10 row of {key} omits {param}"

"""The documentation stays true to the code.

* docs/ODD.md: generated tables current, every parameter and mechanism described;
* every name that README.md, a file under docs/ or a notebook names exists: dotted module
  paths ``sim.x.y`` import (and ``sim.x.y.attr`` resolves), every ``sim <command>`` exists,
  every ``--option`` after it is accepted by that command, every relative file path exists;
* no file of the project refers to a team document or an issue number a reader cannot open.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import import_module
from pathlib import Path

import pytest

from sim.scenario import odd as docs
from sim.scenario.schema import MECHANISM_NAMES, Mechanisms

ODD = docs.ODD_PATH
ROOT = Path(__file__).resolve().parents[1]

# The mechanism table of ODD 1.2: the label of each row and the strength that switches it.
MECHANISM_ROWS = {
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


def test_mechanism_rows_cover_the_schema():
    assert set(MECHANISM_ROWS.values()) == set(MECHANISM_NAMES)


@pytest.mark.parametrize(("label", "name"), sorted(MECHANISM_ROWS.items()))
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


# --------------------------------------------------------------------------- names the documents use

# A dotted path into the package: sim.x, sim.x.y, sim.x.y.attr (not part of a longer word or path).
DOTTED = re.compile(r"(?<![\w./-])sim(?:\.[A-Za-z_]\w*)+")
# A relative path into the repository, named in running text (generated outputs excluded below).
REPO_PATH = re.compile(r"(?<![\w./<-])(?:(?:scenarios|benchmarks|docs|tests|notebooks)/[\w./-]*[\w/]|sim/[\w/]+\.py)")
GENERATED = ("benchmarks/out/",)
# A path relative to sim/, as the ODD writes module paths (`model/actors.py`).
SIM_PATH = re.compile(r"(?<![\w./-])(?:scenario|model|run|experiments|analysis|viz|cli)/\w+\.py\b")
LINK = re.compile(r"\]\(([^)\s]+)\)")
# `sim <command> ...` at the start of a shell line: the command word, then the rest of the line.
COMMAND = re.compile(r"(?:^|[;&|(]\s*|\$\s*)sim ((?:--?[\w-]+|[a-z][\w-]*)(?:[^\n`]*))", re.MULTILINE)
OPTION = re.compile(r"(?<![\w-])--[a-z][\w-]*")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def documents() -> list[Path]:
    """README.md, every text file under docs/, every notebook."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*")), *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    return [p for p in found if p.is_file() and _text(p) is not None]


def _text(path: Path) -> str | None:
    """The file's text (a notebook's cells joined), or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if path.suffix == ".ipynb":
        cells = json.loads(text)["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] in ("markdown", "code"))
    return text


def _code(text: str, markdown: bool) -> list[str]:
    """The code a text shows: fenced and indented blocks and inline spans of Markdown; all of other text."""
    if not markdown:
        return text.splitlines()
    chunks: list[str] = []
    for block in FENCE.findall(text):
        chunks += block.splitlines()
    prose = FENCE.sub("", text)
    chunks += [line[4:] for line in prose.splitlines() if line.startswith("    ") and line.strip()]
    chunks += SPAN.findall(prose)
    return chunks


@cache
def _attribute_resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


@cache
def _cli_help(command: str | None) -> str | None:
    """The ``--help`` text of a ``sim`` command (None: no such command), from the app in-process."""
    from typer.testing import CliRunner

    from sim.cli.main import app  # registers every command at import

    args = ["--help"] if command is None else [command, "--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"}, terminal_width=250)
    return result.output if result.exit_code == 0 else None


def unresolved_names(text: str, base: Path, *, markdown: bool = True) -> list[str]:
    """Every name in ``text`` that does not exist: modules, attributes, commands, options, files.

    Relative links resolve against ``base`` (the document's folder); paths in running text
    against the repository root.
    """
    bad: list[str] = []
    for dotted in sorted(set(DOTTED.findall(text))):
        if not _attribute_resolves(dotted):
            bad.append(f"module or attribute {dotted}")
    for line in _code(text, markdown):
        for match in COMMAND.finditer(line):
            words = match.group(1).split()
            command = None if words[0].startswith("-") else words[0]
            help_text = _cli_help(command)
            if help_text is None:
                bad.append(f"command sim {command}")
                continue
            accepted = set(OPTION.findall(help_text))
            for option in OPTION.findall(match.group(1)):
                if option not in accepted:
                    bad.append(f"option {option} of sim {command or ''}".rstrip())
    for target in LINK.findall(text):
        target = target.split("#", 1)[0]
        if not target or re.match(r"[a-z][a-z+.-]*:", target):
            continue  # a URL or an anchor in the same page
        if not (base / target).exists():
            bad.append(f"link {target}")
    for path in sorted(set(REPO_PATH.findall(text))):
        if not path.startswith(GENERATED) and not (ROOT / path).exists():
            bad.append(f"file {path}")
    for path in sorted(set(SIM_PATH.findall(text))):
        if not (ROOT / "sim" / path).exists():
            bad.append(f"file sim/{path}")
    return sorted(set(bad))


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_name_a_document_uses_exists(path: Path):
    text = _text(path)
    assert text is not None
    bad = unresolved_names(text, path.parent, markdown=path.suffix in (".md", ".ipynb"))
    assert not bad, f"{path.relative_to(ROOT)} names what does not exist:\n  " + "\n  ".join(bad)


def test_the_checker_catches_made_up_names():
    text = """
Load with `sim.nonexistent.load(folder)`; the real one is `sim.analysis.results.load`.

```bash
sim frobnicate scenarios/synthetic_grid.yaml
sim run scenarios/synthetic_grid.yaml --no-such-option 3 --seed 7
```

See [the notes](docs/missing.md) and `scenarios/missing.yaml`.
"""
    bad = unresolved_names(text, ROOT)
    assert bad == [
        "command sim frobnicate",
        "file docs/missing.md",
        "file scenarios/missing.yaml",
        "link docs/missing.md",
        "module or attribute sim.nonexistent.load",
        "option --no-such-option of sim run",
    ]


def test_the_checker_accepts_real_names():
    text = """
`sim.analysis.results.load`, `sim.viz.maps.plot_map`, `sim.load_scenario`, `sim.__version__`.

    sim sweep scenarios/sweeps/blame_vs_protection.yaml --workers 2 --sensitivity
    sim --version

[ODD](docs/ODD.md), `benchmarks/bench_model.py`, `model/actors.py`, `benchmarks/out/bench_model.json`.
"""
    assert unresolved_names(text, ROOT) == []


# --------------------------------------------------------------------------- no references a reader cannot follow

# Team documents and issue numbers of a tracker the reader cannot open.
PRIVATE_REFERENCE = re.compile(r"MODEL\.md|RECORD\.md|\bissues? \d+|\bissue-\d+", re.IGNORECASE)
SCANNED = ("sim", "docs", "scenarios", "README.md", "notebooks", "benchmarks")


def _scanned_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        top = ROOT / name
        files += [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
    return files


def _private_references(paths: list[Path]) -> list[str]:
    hits = []
    for path in paths:
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for n, line in enumerate(text.splitlines(), 1):
            for m in PRIVATE_REFERENCE.finditer(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)}")
    return hits


def test_no_team_documents_or_issue_numbers():
    hits = _private_references(_scanned_files())
    assert not hits, "cite the primary source or docs/DECISIONS.md instead of:\n  " + "\n  ".join(hits)


def test_private_reference_pattern():
    assert PRIVATE_REFERENCE.search("as in MODEL.md") and PRIVATE_REFERENCE.search("(issue 12)")
    assert PRIVATE_REFERENCE.search("issues 12 and 13") and PRIVATE_REFERENCE.search("the issue-13 review")
    assert not PRIVATE_REFERENCE.search("an issue with the data") and not PRIVATE_REFERENCE.search("#0072B2")

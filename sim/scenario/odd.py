"""Keep the parameter tables of ``docs/ODD.md`` generated from the scenario schema.

``python -m sim.scenario.odd`` rewrites every table between marker comments::

    <!-- BEGIN PARAMS: exposure -->
    ...generated...
    <!-- END PARAMS: exposure -->

from :func:`sim.scenario.schema.parameter_table`, so the documentation and the
validation cannot drift apart. ``python -m sim.scenario.odd --check`` rewrites nothing
and exits with status 1 when a table is stale or a schema block has no markers.

Blocks are the top-level sections of the scenario (``exposure``, ``hts``, ...),
``scenario`` for the top-level settings, one block per schema nested in a list,
mapping or optional field (``towns[]``, ``rivals.groups[]``,
``air_campaign.calendar[]``, ``hts.governance_body``, ...), and
``households.initial.stance`` for the default initial stance shares. A block
added to the schema but missing from ``ODD.md`` is inserted before the
``<!-- PARAMS: NEW BLOCKS -->`` marker (or at the end) when writing.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sim.scenario.schema import InitialHouseholds, Scenario, StanceShares, parameter_table

ODD_PATH = Path(__file__).resolve().parents[2] / "docs" / "ODD.md"
NEW_BLOCKS_MARKER = "<!-- PARAMS: NEW BLOCKS -->"
STANCE_BLOCK = "households.initial.stance"
_BLOCK_RE = re.compile(
    r"<!-- BEGIN PARAMS: (?P<name>[^ ]+) -->\n(?P<body>.*?)<!-- END PARAMS: (?P=name) -->",
    re.DOTALL,
)
_HEADER = "| key | default | range | unit | source | meaning |\n|---|---|---|---|---|---|\n"


# --------------------------------------------------------------------------- schema walk


def _nested_model(ann: Any) -> tuple[type[BaseModel], str] | None:
    """A schema nested in a container annotation: (model, how it nests) or None.

    ``how`` is ``"[]"`` for lists, ``"{}"`` for mappings and ``""`` for optional
    fields. Plain sub-models (``grid: Grid``) are flattened by ``parameter_table``
    itself and are not returned here.
    """
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is list:
        inner = args[0] if args else None
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, "[]"
    elif origin is dict:
        inner = args[1] if len(args) == 2 else None
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner, "{}"
    elif origin in (typing.Union, types.UnionType):
        for a in args:
            if isinstance(a, type) and issubclass(a, BaseModel):
                return a, ""
    return None


def _blocks_of(model: type[BaseModel], prefix: str) -> list[tuple[str, type[BaseModel], str]]:
    """(block name, model, key prefix) for ``model`` and every schema nested in containers."""
    out: list[tuple[str, type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        path = f"{prefix}{name}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _blocks_of(ann, path + ".")
            continue
        nested = _nested_model(ann)
        if nested is None or nested[0] is StanceShares:
            continue
        sub, how = nested
        block = path + how if how == "[]" else path
        key_prefix = path + ("[]." if how == "[]" else ".<name>." if how == "{}" else ".")
        out.append((block, sub, key_prefix))
        out += _blocks_of(sub, key_prefix)
    return out


def schema_blocks() -> dict[str, list[dict[str, Any]]]:
    """Rows of ``parameter_table`` grouped by block, in schema order.

    Each row gets ``required`` (True when the key has no default).
    """
    blocks: dict[str, list[dict[str, Any]]] = {}
    for row in parameter_table(Scenario):
        top = row["key"].split(".", 1)[0]
        block = top if "." in row["key"] else "scenario"
        _annotate(row, Scenario, row["key"])
        blocks.setdefault(block, []).append(row)
    for block, sub, key_prefix in _blocks_of(Scenario, ""):
        rows = parameter_table(sub, key_prefix)
        for row in rows:
            _annotate(row, sub, row["key"][len(key_prefix) :])
        blocks[block] = rows
    return blocks


def _annotate(row: dict[str, Any], model: type[BaseModel], dotted: str) -> None:
    """Add ``required`` and, for ``Literal`` fields, the allowed ``choices`` to a row."""
    cur: Any = model
    parts = dotted.split(".")
    for part in parts[:-1]:
        cur = cur.model_fields[part].annotation
    field = cur.model_fields[parts[-1]]
    row["required"] = field.is_required()
    ann = field.annotation
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        ann = next((a for a in typing.get_args(ann) if a is not type(None)), ann)
    row["choices"] = list(typing.get_args(ann)) if typing.get_origin(ann) is typing.Literal else None


def all_parameter_keys() -> list[str]:
    """Every key path of the schema, nested list items included (``towns[].council``)."""
    return [row["key"] for rows in schema_blocks().values() for row in rows]


# --------------------------------------------------------------------------- rendering


def _fmt_num(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return f"{x:,}".replace(",", " ") if abs(x) >= 100_000 else str(x)
    if isinstance(x, float):
        if x.is_integer() and abs(x) >= 100_000:
            return f"{x:.0e}".replace("e+0", "e").replace("e+", "e")
        return f"{x:g}"
    return str(x)


def _fmt_default(row: dict[str, Any]) -> str:
    if row.get("required"):
        return "required"
    d = row["default"]
    if d is None:
        return "none"
    if isinstance(d, str):
        return "(see text)" if d == "(see text)" else f"`{d}`" if d else '`""`'
    if isinstance(d, (list, dict)):
        return "empty"
    return f"`{_fmt_num(d)}`"


def _fmt_range(row: dict[str, Any]) -> str:
    if row.get("choices"):
        return "one of " + ", ".join(f"`{c}`" for c in row["choices"])
    lo, hi = row["min"], row["max"]
    if lo is None and hi is None:
        return ""
    if hi is None or (isinstance(hi, int) and hi >= 2**62):
        return f">= {_fmt_num(lo)}"
    if lo is None:
        return f"<= {_fmt_num(hi)}"
    return f"{_fmt_num(lo)} .. {_fmt_num(hi)}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def render_block(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of parameter rows."""
    lines = [_HEADER]
    for r in rows:
        lines.append(
            f"| `{r['key']}` | {_fmt_default(r)} | {_cell(_fmt_range(r))} | {_cell(r['unit'])} "
            f"| {_cell(r['source'])} | {_cell(r['meaning'])} |\n"
        )
    return "".join(lines)


def render_stance_defaults() -> str:
    """Default initial stance shares per town stance label."""
    lines = [
        "| town stance label | resist | neutral | cooperate |\n",
        "|---|---|---|---|\n",
    ]
    for label, s in InitialHouseholds().stance.items():
        lines.append(f"| `{label}` | {s.resist:g} | {s.neutral:g} | {s.cooperate:g} |\n")
    return "".join(lines)


def rendered_blocks() -> dict[str, str]:
    """Block name -> generated Markdown (without markers)."""
    out = {name: render_block(rows) for name, rows in schema_blocks().items()}
    out[STANCE_BLOCK] = render_stance_defaults()
    return out


def _wrap(name: str, body: str) -> str:
    return f"<!-- BEGIN PARAMS: {name} -->\n{body}<!-- END PARAMS: {name} -->"


def update_text(text: str) -> tuple[str, list[str]]:
    """Regenerate every marked block of ``text``; return the new text and stale block names.

    A block is stale when its body differs from the generated one, when it has no
    markers in ``text`` (it is then inserted), or when ``text`` marks a block the
    schema no longer has (its markers are kept, its body replaced by a note).
    """
    blocks = rendered_blocks()
    stale: list[str] = []
    seen: set[str] = set()

    def repl(m: re.Match[str]) -> str:
        name = m.group("name")
        seen.add(name)
        body = blocks.get(name)
        if body is None:
            body = f"(no schema block named `{name}`: remove these markers)\n"
        if m.group("body") != body:
            stale.append(name)
        return _wrap(name, body)

    new = _BLOCK_RE.sub(repl, text)
    missing = [name for name in blocks if name not in seen]
    if missing:
        stale += missing
        extra = "".join(f"#### `{name}`\n\n{_wrap(name, blocks[name])}\n\n" for name in missing)
        if NEW_BLOCKS_MARKER in new:
            new = new.replace(NEW_BLOCKS_MARKER, extra + NEW_BLOCKS_MARKER, 1)
        else:
            new = new.rstrip("\n") + "\n\n" + extra
    return new, stale


def check(path: Path = ODD_PATH) -> list[str]:
    """Names of stale or missing parameter blocks in ``path`` (empty when current)."""
    return update_text(path.read_text(encoding="utf-8"))[1]


def main(argv: list[str] | None = None) -> int:
    """Command line: rewrite the tables (default) or ``--check`` them."""
    ap = argparse.ArgumentParser(prog="python -m sim.scenario.odd", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if ODD.md is stale; write nothing")
    ap.add_argument("--path", type=Path, default=ODD_PATH, help="the ODD file (default docs/ODD.md)")
    args = ap.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    new, stale = update_text(text)
    if args.check:
        if stale:
            print(f"{args.path}: stale tables: {', '.join(stale)} (run: python -m sim.scenario.odd)", file=sys.stderr)
            return 1
        print(f"{args.path}: parameter tables are current")
        return 0
    if new != text:
        args.path.write_text(new, encoding="utf-8")
    print(f"{args.path}: {len(stale)} table(s) updated" + (f": {', '.join(stale)}" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

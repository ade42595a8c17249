"""Scenario file -> validated :class:`~sim.scenario.schema.Scenario`, with precise errors.

A scenario file may ``extends: other.yaml`` (a path relative to itself) and
override any keys: mappings merge key by key, everything else (lists included)
replaces. ``--set key.path=value`` overrides are applied last. Every problem is
raised as one :class:`ScenarioError` naming the file, the line where the YAML
parser knows it, the key path and the problem.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NamedTuple, NoReturn, Union, get_args, get_origin

import numpy as np
import yaml
from pydantic import BaseModel, ValidationError

from sim.scenario import shipped
from sim.scenario.schema import Scenario, ScenarioRefError


class ScenarioError(Exception):
    """Bad input: one clear message, no traceback needed."""

    def __init__(self, file: str | Path | None, message: str, *, key: str = "", line: int | None = None):
        self.file = str(file) if file is not None else None
        self.key = key
        self.line = line
        self.message = message
        where = self.file or "<input>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")


# --------------------------------------------------------------------------- YAML with line numbers

#: Most nodes a document may expand to once aliases are followed. Scenario files have a few
#: thousand; the bound stops a "billion laughs" alias bomb in milliseconds instead of gigabytes.
MAX_YAML_NODES = 200_000


class Located:
    """Line numbers of every key path in one YAML document."""

    def __init__(self, node: yaml.Node | None):
        self.lines: dict[tuple[Any, ...], int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = k.value
                self.lines[(*path, key)] = k.start_mark.line + 1
                self._walk(v, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                self._walk(v, (*path, i))

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        """Line of the deepest known prefix of ``path``."""
        for n in range(len(path), -1, -1):
            hit = self.lines.get(tuple(path[:n]))
            if hit is not None:
                return hit
        return None


_Located = Located  # the former private name


class YamlDocument(NamedTuple):
    """One parsed YAML file: its data, the line of every key path, and the sha256 of its bytes."""

    data: dict[str, Any]
    located: Located
    sha256: str


def _check_expansion(root: yaml.Node, source: str | Path | None) -> None:
    """Refuse recursive aliases and documents that expand beyond :data:`MAX_YAML_NODES` nodes.

    Aliases share nodes, so sizes are memoized per node: linear in the document's text.
    """
    size: dict[int, int] = {}
    active: set[int] = set()

    def walk(node: yaml.Node) -> int:
        nid = id(node)
        if nid in size:
            return size[nid]
        if nid in active:
            raise ScenarioError(source, "recursive YAML alias", line=node.start_mark.line + 1)
        active.add(nid)
        n = 1
        if isinstance(node, yaml.MappingNode):
            n += sum(walk(k) + walk(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            n += sum(walk(v) for v in node.value)
        active.discard(nid)
        if n > MAX_YAML_NODES:
            raise ScenarioError(
                source,
                f"YAML aliases expand this document beyond {MAX_YAML_NODES:,} nodes (an alias bomb?); "
                "write the values out instead",
                line=node.start_mark.line + 1,
            )
        size[nid] = n
        return n

    walk(root)


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{node.id} key>"


def _check_duplicates(root: yaml.Node, source: str | Path | None) -> None:
    """Refuse a key given twice in one mapping (block or flow style), at any depth.

    Keys merged in by ``<<: *anchor`` may be overridden; only keys written out count.
    """
    seen_nodes: set[int] = set()

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        if id(node) in seen_nodes:  # an aliased node is checked once
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], yaml.Node] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:merge":
                    walk(v, path)
                    continue
                ident = (k.tag, _key_text(k))
                if isinstance(k, yaml.ScalarNode) and ident in first:
                    a, b = first[ident].start_mark, k.start_mark
                    where = f"lines {a.line + 1} and {b.line + 1}"
                    if a.line == b.line:
                        where = f"line {a.line + 1} (columns {a.column + 1} and {b.column + 1})"
                    key = ".".join(map(str, (*path, k.value)))
                    raise ScenarioError(source, f"duplicate key {k.value!r} on {where}", key=key, line=b.line + 1)
                first.setdefault(ident, k)
                walk(v, (*path, _key_text(k)))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    walk(root, ())


#: Characters refused in a YAML file, beyond what YAML itself refuses: NEL, LINE SEPARATOR and
#: PARAGRAPH SEPARATOR end a line for the YAML parser but not for most editors (so every line
#: number after them would be wrong), and a byte-order mark anywhere but at the start is an
#: invisible character that would become part of a key or a value.
_REFUSED = re.compile("[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
_CHAR_NAMES = {"\x85": "NEXT LINE (NEL)", "\u2028": "LINE SEPARATOR", "\u2029": "PARAGRAPH SEPARATOR"}


def _check_characters(text: str, source: str | Path | None) -> None:
    """Refuse control characters and invisible line breaks, naming the line and column (as editors count)."""
    body = text[1:] if text.startswith("\ufeff") else text
    m = _REFUSED.search(body)
    if m is None:
        return
    ch = m.group()
    before = body[: m.start()]
    line = before.count("\n") + 1
    column = m.start() - (before.rfind("\n") + 1) + 1
    if ch == "\ufeff":
        what = "a byte-order mark (U+FEFF) inside the file (only the first character may be one)"
    elif ch in _CHAR_NAMES:
        what = f"character U+{ord(ch):04X} ({_CHAR_NAMES[ch]}), a line break for YAML but not for editors"
    else:
        what = f"control character U+{ord(ch):04X}, which YAML does not allow"
    raise ScenarioError(
        source, f"column {column}: {what}; remove it, or write it as an escape in double quotes", line=line
    )


def _at_tab(e: yaml.YAMLError, text: str | None) -> bool:
    """Whether the error's mark points at a tab (libyaml's messages do not name the character)."""
    mark = getattr(e, "problem_mark", None)
    if mark is None or text is None:
        return False
    lines = text.splitlines()
    return mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t"


def _yaml_message(e: yaml.YAMLError, text: str | None = None) -> str:
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    context = getattr(e, "context", None)
    msg = f"malformed YAML: {problem}" + (f" ({context})" if context else "")
    if "'\\t'" in problem or _at_tab(e, text):
        msg += "; YAML indents with spaces, not tabs"
    return msg


#: libyaml's safe loader when PyYAML was built with it (the same nodes, marks and errors, parsed in C:
#: the Idlib scenario and its record load several times faster), else the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str, source: str | Path | None) -> tuple[Any, yaml.Node | None]:
    """Compose ``text``, check it (characters, aliases bounded, no duplicate keys), then build the Python data."""
    _check_characters(text, source)
    try:
        loader = _LOADER(text)
    except yaml.YAMLError as e:  # the reader's own character check (kept as a second line of defence)
        raise ScenarioError(source, _yaml_message(e)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expansion(node, source)
        _check_duplicates(node, source)
        return loader.construct_document(node), node
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ScenarioError(source, _yaml_message(e, text), line=line) from None
    finally:
        loader.dispose()


def parse_yaml_value(text: str, source: str | Path | None = None) -> Any:
    """A YAML value given on the command line (``--set key=value``), with the same checks as files."""
    data, _ = _parse(text, source)
    return data


def read_yaml(path: str | Path, kind: str = "YAML") -> YamlDocument:
    """Read one YAML file of the project (scenario, sweep, calibration): the one YAML reader.

    The document must be a mapping. Duplicate keys at any depth, recursive aliases and alias
    expansion beyond :data:`MAX_YAML_NODES` nodes are refused.

    Args:
        path: the file.
        kind: what the file is, for messages ("scenario", "sweep", ...).

    Returns:
        ``(data, located, sha256)``: the parsed mapping, line numbers by key path, and the
        sha256 of the file's bytes.

    Raises:
        ScenarioError: one message naming the file, the line and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise ScenarioError(path, "file not found")
    if path.is_dir():
        raise ScenarioError(path, f"is a folder, not a {kind} file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ScenarioError(path, f"cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    data, node = _parse(text, path)
    if data is None:
        raise ScenarioError(path, f"empty {kind} file")
    if not isinstance(data, dict):
        raise ScenarioError(path, f"a {kind} must be a mapping of keys, not a {type(data).__name__}", line=1)
    return YamlDocument(data, Located(node), hashlib.sha256(raw).hexdigest())


@dataclass
class _Doc:
    path: Path
    data: dict[str, Any]
    located: Located
    sha256: str


def _read_yaml(path: Path) -> _Doc:
    data, located, sha = read_yaml(path, "scenario")
    return _Doc(path, data, located, sha)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base``: mappings key by key, the rest replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@dataclass
class LoadedScenario:
    """A validated scenario with its provenance."""

    scenario: Scenario
    files: list[Path]
    file_hashes: dict[str, str]
    overrides: list[str] = field(default_factory=list)
    record: Any = None  # the scenario's record (sim.scenario.record.Record), when it names one

    @property
    def path(self) -> Path:
        """The file the user named."""
        return self.files[0]

    @property
    def config_hash(self) -> str:
        """sha256 of the fully resolved configuration (canonical JSON)."""
        return config_hash(self.scenario)

    @property
    def scenario_hash(self) -> str:
        """sha256 over the scenario file and everything it extends, plus overrides."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(self.file_hashes[str(f)].encode())
        for o in self.overrides:
            h.update(o.encode())
        return h.hexdigest()


def config_hash(scenario: Scenario) -> str:
    """sha256 of a scenario's canonical JSON form."""
    blob = json.dumps(scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _resolve(path: Path, chain: list[Path]) -> tuple[dict[str, Any], list[_Doc]]:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(p.name for p in [*chain, path])
        raise ScenarioError(chain[-1], f"'extends' cycle: {cycle}", key="extends")
    doc = _read_yaml(path)
    data = dict(doc.data)
    parent = data.pop("extends", None)
    if parent is None:
        return data, [doc]
    if not isinstance(parent, str):
        raise ScenarioError(
            path, "'extends' must be a file path", key="extends", line=doc.located.line_of(("extends",))
        )
    parent_path = path.parent / parent
    if parent_path.resolve() in [*chain, path]:
        cycle = " -> ".join(p.name for p in [*chain, path, parent_path.resolve()])
        raise ScenarioError(path, f"'extends' cycle: {cycle}", key="extends", line=doc.located.line_of(("extends",)))
    if not parent_path.exists():
        raise ScenarioError(
            path,
            f"extended file {parent!r} not found (looked at {parent_path})",
            key="extends",
            line=doc.located.line_of(("extends",)),
        )
    base, docs = _resolve(parent_path, [*chain, path])
    return deep_merge(base, data), [doc, *docs]


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``key.path=value`` (value as a YAML scalar or flow collection)."""
    if "=" not in text:
        raise ScenarioError(None, f"--set {text!r}: expected key.path=value")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ScenarioError(None, f"--set {text!r}: empty key path")
    try:
        value = parse_yaml_value(raw) if raw.strip() else ""
    except ScenarioError as e:
        if "malformed YAML" not in e.message:
            raise ScenarioError(None, f"--set {text!r}: {e.message}") from None
        value = raw
    return key.split("."), value


def set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set ``data[k1][k2]... = value``, indexing lists by integer and list items by name."""
    cur: Any = data
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(cur, list):
            idx = _list_index(cur, k, keys[: i + 1])
            if last:
                cur[idx] = value
            else:
                cur = cur[idx]
            continue
        if not isinstance(cur, dict):
            raise ScenarioError(None, f"cannot set inside a {type(cur).__name__}", key=".".join(keys[:i]))
        if last:
            cur[k] = value
        else:
            cur = cur.setdefault(k, {})


def apply_set_overrides(data: dict[str, Any], overrides: list[str], path: Path) -> None:
    """Apply ``key.path=value`` overrides to a parsed file, blaming ``path`` for bad ones."""
    for text in overrides:
        keys, value = parse_override(text)
        try:
            set_path(data, keys, value)
        except ScenarioError as e:
            raise ScenarioError(path, f"--set {text!r}: {e.message}", key=e.key) from None


def value_at(data: Any, key: str) -> Any:
    """The value at key path ``key`` of plain data (a scenario dict): list items by index or by name.

    Raises:
        KeyError: the path does not exist (the missing part is the argument).
    """
    cur: Any = data
    for part in key.split("."):
        if isinstance(cur, list):
            names = [it.get("name") for it in cur if isinstance(it, dict)]
            if part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
                cur = cur[int(part)]
            elif part in names:
                cur = cur[names.index(part)]
            else:
                raise KeyError(part)
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise KeyError(part)
    return cur


def apply_values(
    base: Scenario | Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    source: str | Path | None = "values",
    geography: bool = True,
) -> Scenario:
    """The one way to change a scenario by key paths: set ``{key.path: value}`` on a copy of ``base``, then validate.

    Key paths are dotted (``"mechanisms.rally"``); list items are named by index (``"towns.0.council"``)
    or by their ``name`` (``"towns.Atarib.council"``); a variant of a sweep sets several at once.
    The changed scenario is validated as a whole through the pydantic schema (ranges, types,
    unknown keys, cross-references) and, with ``geography``, its towns are placed on the grid
    (:func:`sim.scenario.geography.build_geography`). Values that are numpy scalars (from
    samplers) are stored as plain Python values. ``base`` is left unchanged.

    Sweeps (:mod:`sim.experiments.spec`, :mod:`sim.experiments.tasks`), calibration priors
    (:mod:`sim.scenario.calibration`), :func:`with_values` and :func:`sim.run.simulate.simulate`
    all change scenarios through this function.

    Args:
        base: a validated scenario, or a scenario as plain data (``Scenario.model_dump(mode="json")``).
        values: key paths to values, applied in order.
        source: what to name as the origin in error messages (a file, or a word like ``"values"``).
        geography: also check that the towns fit the grid.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: one message naming ``source``, the key path and the problem.
    """
    data = base.model_dump(mode="json") if isinstance(base, BaseModel) else copy.deepcopy(dict(base))
    for key, value in values.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise ScenarioError(source, f"{key!r}: expected a key path like 'mechanisms.rally'")
        if isinstance(value, np.generic):  # numpy scalars from samplers: plain Python values
            value = value.item()
        try:
            set_path(data, key.split("."), value)
        except ScenarioError as e:
            raise ScenarioError(source, e.message, key=e.key or key) from None
    try:
        changed = Scenario.model_validate(data)
    except ValidationError as exc:
        loc, msg = explain_validation_error(exc.errors()[0])
        raise ScenarioError(source, msg, key=".".join(str(p) for p in loc)) from None
    if geography:
        from sim.scenario.geography import GeographyError, build_geography

        try:
            build_geography(changed)
        except GeographyError as e:
            raise ScenarioError(source, e.message, key=".".join(map(str, e.loc))) from None
    return changed


def with_values(scenario: Scenario, values: Mapping[str, Any], *, source: str = "values") -> Scenario:
    """A validated copy of ``scenario`` with ``{key.path: value}`` changes, applied as ``--set`` applies them.

    ``Scenario.model_copy(update=...)`` skips validation; this does not: the changed
    scenario is validated as a whole (ranges, types, unknown keys, cross-references,
    geography), exactly like a scenario file with ``--set`` overrides. It is
    :func:`apply_values` on a validated scenario.

    Args:
        scenario: the scenario to copy (left unchanged).
        values: key paths (``"mechanisms.rally"``, ``"towns.Saraqib.council"``) to values.
        source: what to name as the origin in error messages.

    Raises:
        ScenarioError: one message naming the key and the problem.
    """
    return apply_values(scenario, values, source=source)


def _list_index(items: list[Any], key: str, path: list[str]) -> int:
    if key.lstrip("-").isdigit():
        idx = int(key)
        if not -len(items) <= idx < len(items):
            raise ScenarioError(None, f"index {idx} out of range (list has {len(items)})", key=".".join(path))
        return idx
    names = [it.get("name") for it in items if isinstance(it, dict)]
    if key in names:
        return names.index(key)
    hint = difflib.get_close_matches(key, [n for n in names if n], n=1)
    tip = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ScenarioError(None, f"no list item named {key!r}{tip}", key=".".join(path))


# --------------------------------------------------------------------------- validation messages


def _unwrap(ann: Any) -> list[Any]:
    """The alternatives of an annotation (``X | None`` -> ``[X]``; ``Annotated[X, ...]`` -> ``[X]``)."""
    origin = get_origin(ann)
    if origin is Annotated:
        return _unwrap(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        return [a for arg in get_args(ann) if arg is not type(None) for a in _unwrap(arg)]
    return [ann]


def _child(ann: Any, part: Any) -> Any:
    """The annotation one key below ``ann`` (a model's field, a dict's value, a list's item), or None."""
    for alt in _unwrap(ann):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            f = alt.model_fields.get(part) if isinstance(part, str) else None
            if f is not None:
                return f.annotation
            continue
        origin, args = get_origin(alt), get_args(alt)
        if origin in (dict, Mapping) and len(args) == 2:
            return args[1]
        if origin in (list, set, frozenset, Sequence) and args:
            return args[0]
        if origin is tuple and args:
            return args[0] if len(args) == 2 and args[1] is Ellipsis else args[part if isinstance(part, int) else 0]
    return None


def _schema_at(loc: tuple[Any, ...], schema: type[BaseModel] = Scenario) -> type[BaseModel] | None:
    """The pydantic model class that holds the last key of ``loc``, starting from ``schema``."""
    ann: Any = schema
    for part in loc[:-1]:
        ann = _child(ann, part)
        if ann is None:
            return None
    for alt in _unwrap(ann):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            return alt
    return None


def explain_validation_error(err: Mapping[str, Any], schema: type[BaseModel] = Scenario) -> tuple[tuple[Any, ...], str]:
    """One pydantic error (an item of ``ValidationError.errors()``) as ``(key path, message)`` for people.

    The key path drops pydantic's validator labels; an unknown key gets the nearest allowed key
    (``did you mean ...?``) or the list of allowed keys of its place in ``schema``; a value
    error loses its ``Value error,`` prefix; a wrong scalar is quoted (``(got ...)``); a
    cross-reference error of the scenario (:class:`~sim.scenario.schema.ScenarioRefError`)
    names the key it is about. Every file kind (scenario, sweep, calibration) explains its
    errors with this function, passing its own top-level model as ``schema``.

    Args:
        err: one error of ``ValidationError.errors()``.
        schema: the model that was validated (for the allowed keys of an unknown key).

    Returns:
        ``(loc, message)``: the key path as a tuple and the message (without the key).
    """
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    etype = err["type"]
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, ScenarioRefError):
        return tuple(loc) + tuple(cause.loc), cause.message
    if etype == "extra_forbidden":
        model = _schema_at(loc, schema)
        msg = f"unknown key {loc[-1]!r}"
        if model is not None:
            hint = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
            if hint:
                msg += f"; did you mean {hint[0]!r}?"
            else:
                msg += f" (allowed: {', '.join(model.model_fields)})"
        return loc, msg
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if etype not in ("missing",) and "input" in err and not isinstance(err["input"], (dict, list)):
        msg += f" (got {err['input']!r})"
    return loc, msg


_explain = explain_validation_error  # the former private name


def resolve_input(name_or_path: str | Path, kind: str = "scenario") -> Path:
    """A file path as given, or a shipped file by name (:mod:`sim.scenario.shipped`).

    Args:
        name_or_path: a path, or a shipped name (``"idlib_2017_2018"``; a sweep: ``"mechanisms_morris"``).
        kind: ``"scenario"`` or ``"sweep"``.

    Raises:
        ScenarioError: neither a file nor a shipped name; the message lists the shipped names.
    """
    path = shipped.resolve(name_or_path, kind)
    if not path.exists():
        names = shipped.shipped_names(kind)
        hint = f" (shipped {kind}s: {', '.join(names)})" if names else ""
        raise ScenarioError(path, f"file not found, and not the name of a shipped {kind}{hint}")
    return path


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> LoadedScenario:
    """Read, merge, override and validate a scenario file, or a shipped scenario by name.

    Args:
        path: a scenario file, or the name of a shipped scenario (``"idlib_2017_2018"``,
            ``"policies/none"``; see :func:`sim.scenario.shipped.shipped_names`).
        overrides: ``key.path=value`` strings, as ``--set`` takes them.

    Raises:
        ScenarioError: for any problem with the file, its extends chain,
            the overrides, or the values.
    """
    path = resolve_input(path)
    data, docs = _resolve(path, [])
    file_days = data.get("days", Scenario.model_fields["days"].default)
    overrides = list(overrides or [])
    apply_set_overrides(data, overrides, path)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        loc, msg = explain_validation_error(exc.errors()[0])
        more = len(exc.errors()) - 1
        if more:
            msg += f" (and {more} more problem{'s' if more > 1 else ''})"
        _blame(loc, msg, path, docs, overrides)
    # A dated item after the window of the files would silently never happen. A run made shorter
    # (--days, --set days=...) cuts the window on purpose; one made longer can reach the item.
    window = max(file_days, scenario.days) if isinstance(file_days, int) else scenario.days
    for loc, msg in scenario.dated_after(window):
        _blame(loc, msg, path, docs, overrides)
    _check_geography(scenario, docs)
    record = _load_record(scenario, path, docs, overrides)
    files = [d.path for d in docs]
    hashes = {str(d.path): d.sha256 for d in docs}
    if record is not None and record.file is not None:
        files.append(record.file)
        hashes[str(record.file)] = hashlib.sha256(record.file.read_bytes()).hexdigest()
    return LoadedScenario(scenario=scenario, files=files, file_hashes=hashes, overrides=overrides, record=record)


def record_path(scenario: Scenario, path: Path, docs: list[_Doc] | None = None) -> Path | None:
    """The record file a scenario names (``record:``), resolved against the file that names it
    (an override's against the scenario file the user named)."""
    if scenario.record is None:
        return None
    base = path
    for d in docs or []:
        if d.data.get("record") == scenario.record:
            base = d.path
            break
    return (base.parent / scenario.record).resolve()


#: Reads and checks a scenario's record file: ``(file, scenario) -> Record``. Set by
#: :mod:`sim.scenario.record` when the package is imported (the record module reads YAML through
#: this one, so this one does not import it).
RECORD_READER: Callable[[Path, Scenario], Any] | None = None


def _load_record(scenario: Scenario, path: Path, docs: list[_Doc], overrides: list[str]) -> Any:
    """The scenario's record, loaded and checked against the scenario (a problem names the record file)."""
    file = record_path(scenario, path, docs)
    if file is None:
        return None
    if not file.is_file():
        _blame(("record",), f"record file {scenario.record!r} not found (looked at {file})", path, docs, overrides)
    if RECORD_READER is None:
        raise RuntimeError("sim.scenario.record is not imported: no record reader")
    return RECORD_READER(file, scenario)


def _blame(loc: tuple[Any, ...], msg: str, path: Path, docs: list[_Doc], overrides: list[str]) -> NoReturn:
    """Raise ``msg`` for key path ``loc``, blaming the override that set it, else the file and line that hold it."""
    key = ".".join(str(p) for p in loc)
    # Blame the override if it set this key (or a key above or below it), else the file
    # whose content reaches deepest into the key path (lists come whole from one file).
    parts = [str(p) for p in loc]
    for text in overrides:
        set_parts = text.partition("=")[0].strip().split(".")
        n = min(len(parts), len(set_parts))
        if n and parts[:n] == set_parts[:n]:
            raise ScenarioError(path, f"{msg} (from --set {text})", key=key) from None
    best, best_depth = docs[0], -1
    for doc in docs:
        depth = _known_depth(doc.data, loc)
        if depth > best_depth:
            best, best_depth = doc, depth
    raise ScenarioError(best.path, msg, key=key, line=best.located.line_of(loc)) from None


def _known_depth(data: Any, loc: tuple[Any, ...]) -> int:
    """How many leading parts of ``loc`` exist in ``data``."""
    cur = data
    for depth, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        else:
            return depth
    return len(loc)


def _check_geography(scenario: Scenario, docs: list[_Doc]) -> None:
    """Towns must fit the grid, one per cell: checked here so the error has its line."""
    from sim.scenario.geography import GeographyError, build_geography

    try:
        build_geography(scenario)
    except GeographyError as e:
        loc = e.loc
        best = max(docs, key=lambda d: _known_depth(d.data, loc))
        raise ScenarioError(best.path, e.message, key=".".join(map(str, loc)), line=best.located.line_of(loc)) from None

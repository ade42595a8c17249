"""Command-line conventions of every ``sim`` command: readable metavars in help and usage.

Typer (0.29) prints a parameter's Python type where a metavar is missing (``<int>``,
``<list[str]>``, ``<bool>`` next to a flag) and wraps required arguments in braces in
the usage line (``{file}``). The command classes here print what command-line tools
conventionally print instead: the metavar given, else the type's name in capitals
(``INTEGER``, ``PATH``), nothing after a flag, and ``FILE`` / ``[FILE]`` for required /
optional arguments. :func:`sim.cli.main._register_commands` applies them to every command.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

# Python type names as conventional metavars.
_TYPE_METAVARS = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT", "path": "PATH", "bool": "BOOLEAN"}


class ReadableArgument(TyperArgument):
    """An argument shown as ``NAME`` (required) or ``[NAME]`` (optional), without a type label."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        """No ``<path>`` label: the metavar already says what the argument is."""
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")


def _readable(param: Any, ctx: typer.Context) -> None:
    """Give ``param`` a conventional metavar (in place; idempotent)."""
    if isinstance(param, TyperArgument) and not isinstance(param, ReadableArgument):
        if param.metavar is None:
            param.metavar = param.name.upper() if param.name else "ARG"
        param.__class__ = ReadableArgument  # same state, conventional display
    elif isinstance(param, TyperOption) and param.metavar is None:
        if param.is_flag or param.count:
            param.metavar = ""
        else:
            # typer's "<int>", "<list[str]>" (a repeatable option: still one value per use), "<a|b>"
            label = param.display_type(ctx).strip("<>").removeprefix("list[").removesuffix("]")
            param.metavar = _TYPE_METAVARS.get(label, label.upper())


class _Readable:
    def get_params(self, ctx: typer.Context) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            _readable(param, ctx)
        return params


class ReadableCommand(_Readable, TyperCommand):
    """A typer command whose help shows conventional metavars."""


class ReadableGroup(_Readable, TyperGroup):
    """The ``sim`` group: conventional metavars for its own options too."""

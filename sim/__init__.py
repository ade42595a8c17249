"""Agent-based simulation of civilian allegiance under air strikes in Idlib, 2017-2018."""

from sim._version import __version__

__all__ = ["__version__"]

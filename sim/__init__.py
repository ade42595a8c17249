"""Agent-based simulation of civilian allegiance under air strikes in Idlib, 2017-2018."""

__version__ = "0.1.0"

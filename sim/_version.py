"""The package version (one place; read by the provenance stamp and ``sim --version``)."""

__version__ = "0.2.0"

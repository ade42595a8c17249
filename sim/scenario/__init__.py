"""scenario layer."""

from sim.scenario import record as _record  # noqa: F401  (registers the record reader of load_scenario)

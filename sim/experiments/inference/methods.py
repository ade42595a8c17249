"""The registry of inference methods: name -> module with ``TITLE`` and ``run`` (see :mod:`.base`).

A new method is a module beside these with::

    TITLE = "..."
    def run(cal, folder, engine, measure, *, progress=None) -> SamplerResult

and one entry here. The calibration file's ``budget.method`` (or ``sim calibrate --method``)
names the entry.
"""

from __future__ import annotations

from sim.experiments.inference import mcmc, npe_method, rejection, smc
from sim.experiments.inference.base import Method

METHODS: dict[str, Method] = {
    "smc": smc,
    "rejection": rejection,
    "mcmc": mcmc,
    "npe": npe_method,
}  # type: ignore[dict-item]


def method(name: str) -> Method:
    """The method registered as ``name``.

    Raises:
        KeyError: no such method (the message lists the registered ones).
    """
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown inference method {name!r}; use one of {', '.join(METHODS)}") from None

"""Inference: calibrating the model's uncertain parameters against the record, in one place.

One module per method, each a module with ``run(cal, folder, engine, *, progress) -> SamplerResult``
registered in :data:`sim.experiments.inference.methods.METHODS`:

* :mod:`.smc` - ABC-SMC with pyabc (history database, resumable per generation);
* :mod:`.rejection` - rejection ABC with the record's tolerances as the kernel;
* :mod:`.mcmc` - rejection ABC for starting points, then ABC-MCMC chains;
* :mod:`.npe_method` - neural posterior estimation on a resumable reference table (``budget.method: npe``).

Shared pieces: :mod:`.base` (the sampler interface, its result and errors), :mod:`.priors`
(prior draws), :mod:`.targets` (the target statistics task run in workers), :mod:`.parts`
(tables appended in atomically written Parquet parts), :mod:`.folder` (folder preparation,
fingerprint, reading a stored calibration), :mod:`.posterior` (posterior tables, draws,
marginals), :mod:`.checks` (predictive and scale checks), :mod:`.driver` (:func:`calibrate`:
sampler, checks and the folder's tables) and :mod:`.thesis` (the posterior thesis runs).
:mod:`.npe` holds neural posterior estimation (an ensemble of sbi normalising flows on a
reference table; torch and sbi come with the ``inference`` extra).
Reports and figures of a stored folder belong to :mod:`sim.analysis.calibration` and
:mod:`sim.viz.calibration`.
"""

"""One seed derivation for the whole package: a root seed and named labels.

Every random stream that is not the model's own (replicates of a sweep, draws of a
calibration, chains and steps of a sampler, the bootstrap of an effect) is derived here
from the root seed the user gave and a path of labels naming what the stream is for::

    derive_seed(root, "sweep", "run", 17)          # the seed of run 17 of a sweep
    rng = generator(root, "calibration", "chain", 3, "step", 40)

The labels are turned into integers by a stable hash (the first 8 bytes of their SHA-256;
integers are used as they are), each followed by a word for its kind, appended to the root and handed to
:class:`numpy.random.SeedSequence`, whose hashing makes streams with different label paths
independent. Nothing depends on the order in which streams are asked for, so a resumed or
parallel job draws exactly what a serial one draws. The model's own streams are children of
its run seed (:mod:`sim.model.model`).
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["MAX_SEED", "derive_seed", "generator", "seed_sequence"]

#: Seeds handed to the model and recorded in results are integers in [0, 2**63).
MAX_SEED = 2**63


def _label_words(label: str | int) -> tuple[int, int]:
    """A label as (value, kind): the non-zero kind keeps ``("a", 0)`` apart from ``("a",)``.

    SeedSequence treats trailing zero words as absent, so a bare integer 0 at the end of a path
    would otherwise collide with the path without it.
    """
    if isinstance(label, bool):
        raise TypeError("a seed label is a string or an integer, not a bool")
    if isinstance(label, int | np.integer):
        if label < 0:
            raise ValueError(f"a seed label must be non-negative, not {label}")
        return int(label), 1
    if isinstance(label, str):
        return int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "little"), 2
    raise TypeError(f"a seed label is a string or an integer, not {type(label).__name__}")


def seed_sequence(root: int, *labels: str | int) -> np.random.SeedSequence:
    """The :class:`numpy.random.SeedSequence` of ``root`` and the label path ``labels``."""
    if int(root) < 0:
        raise ValueError(f"a root seed must be non-negative, not {root}")
    return np.random.SeedSequence([int(root), *(w for x in labels for w in _label_words(x))])


def derive_seed(root: int, *labels: str | int) -> int:
    """An integer seed in ``[0, 2**63)`` for the stream named by ``labels`` under ``root``."""
    return int(seed_sequence(root, *labels).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def generator(root: int, *labels: str | int) -> np.random.Generator:
    """A :class:`numpy.random.Generator` for the stream named by ``labels`` under ``root``."""
    return np.random.default_rng(seed_sequence(root, *labels))

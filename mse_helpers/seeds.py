"""Random streams derived from the one master seed.

Every random step asks for its own stream by name and index, so results do not
depend on the order in which steps run or on the number of workers: data set
``i`` of the imputation always gets the same stream, whichever process runs it.
"""

from __future__ import annotations

import numpy as np

#: One fixed number per random step; never renumber (it would change results).
#: Model selection has no random step; its number 4 stays unused.
STAGES: dict[str, int] = {
    "simulate": 1,
    "link": 2,
    "impute": 3,
    "bootstrap": 5,
    "estimate": 6,
    "resample": 7,
}


def seed_sequence(seed: int, stage: str, *index: int) -> np.random.SeedSequence:
    """Return the seed sequence of one random step.

    Parameters
    ----------
    seed : int
        The master seed (parameter ``seed``).
    stage : str
        A key of :data:`STAGES`.
    *index : int
        Position of the step within the stage, e.g. the completed data set.

    Returns
    -------
    numpy.random.SeedSequence
    """
    if stage not in STAGES:
        raise KeyError(f"unknown random stage {stage!r}; known: {sorted(STAGES)}")
    return np.random.SeedSequence(int(seed), spawn_key=(STAGES[stage], *map(int, index)))


def rng(seed: int, stage: str, *index: int) -> np.random.Generator:
    """Return a generator for one random step (see :func:`seed_sequence`)."""
    return np.random.default_rng(seed_sequence(seed, stage, *index))

"""The statistics the acceptance checks use: state-histogram entropy and a block-bootstrap CI
(the latter owned by :mod:`training.simulation.stats`, shared with the trade simulator).

``state_entropy_bits`` is the Shannon entropy (bits) of the filtered-state *histogram* of a day;
training's normalised posterior entropy is another measure with another name.
"""

from __future__ import annotations

import numpy as np

from training.simulation.stats import block_bootstrap_ci

__all__ = ["block_bootstrap_ci", "state_entropy_bits"]


def state_entropy_bits(states: np.ndarray) -> float:
    """Shannon entropy (bits) of the histogram of ``states`` (negative codes = no result, ignored).

    >>> state_entropy_bits(np.array([0, 0, 1, 1]))
    1.0
    >>> state_entropy_bits(np.array([2, 2, 2, -1]))
    0.0
    """
    states = np.asarray(states)
    states = states[states >= 0]
    if len(states) == 0:
        return 0.0
    p = np.bincount(states) / len(states)
    p = p[p > 0]
    return float(max(0.0, -(p * np.log2(p)).sum()))

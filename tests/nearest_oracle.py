"""The documented nearest-row rule of ``metrics.cross_view_retrieval`` in
rational arithmetic, for the tests that check the search against it
(tests/test_trust_oracles_s52.py, test_trust_ties_s53.py,
test_trust_small_s53.py, test_trust_mixed_s53.py)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np


def exact_nearest(query: np.ndarray, gallery: np.ndarray, metric: str) -> list:
    """Each query row's nearest gallery row in rational arithmetic on the
    values as given (integers as Python ints, floats as float64), the lowest
    index on a tie: the largest cosine (a zero row's cosine 0) or the
    smallest Euclidean distance."""
    def exact(a: np.ndarray) -> list:
        a = np.asarray(a)
        rows = a.tolist() if a.dtype.kind in "iu" else a.astype(np.float64).tolist()
        return [[Fraction(v) for v in row] for row in rows]

    q, g = exact(query), exact(gallery)
    nearest = []
    for a in q:
        if metric == "euclidean":
            keys = [sum((x - y) ** 2 for x, y in zip(a, b)) for b in g]
        else:  # the largest cos = p / (|a| sqrt(s)): the smallest -sign(p) p^2 / s
            keys = []
            for b in g:
                p, s = sum(x * y for x, y in zip(a, b)), sum(y * y for y in b)
                keys.append(-(p * abs(p)) / s if s else Fraction(0))
        nearest.append(keys.index(min(keys)))
    return nearest

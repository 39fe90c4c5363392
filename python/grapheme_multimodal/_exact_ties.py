"""Near ties of a nearest-neighbour search decided in exact arithmetic.

:func:`~grapheme_multimodal.metrics.cross_view_retrieval` finds each
query's nearest gallery row in float64, where rounding can split rows that
tie exactly (cosine: rows of one direction and different lengths; euclidean:
rows on a grid of 0.1). Candidates within rounding of the nearest are
decided here on the rows as given, the lowest index on a tie.
"""

from __future__ import annotations

import operator

import numpy as np

from . import _core

__all__ = ["ExactTies"]

#: Integers float64 holds exactly: arrays of them go to the core as float64.
_EXACT_INT = 2**53


class ExactTies:
    """Near ties of :func:`cross_view_retrieval` decided in exact arithmetic
    on the rows as given (``query`` and ``gallery``, as ``_finite_2d`` read
    them; floats as float64: float32 and float16 exactly, a long double
    rounded as the search rounded it), the lowest index on a tie.

    Euclidean: the smallest ``sum((g - q)^2)``, as ``|g|^2 - 2 q.g`` (``|q|^2``
    is common). Cosine: ``cos = p / (|q| sqrt(s))`` with ``p = q.g`` and
    ``s = g.g``, so the rows order as ``sign(p) p^2 / s``. Where every value
    is a float64 (every float, and integers up to 2**53 in magnitude) the
    core decides (:meth:`settle`: ``_core.exact_nearest_rows``, a
    double-double pass with a rigorous error bound, then the comparisons it
    leaves summed exactly on the values' integer significands), every near
    row of a block in one call with the GIL released: rows a timestamp
    dominates (every gallery row a candidate of every query) took 2.3 s for
    1,000 rows and a minute for 5,000 in the Python integers of
    :meth:`nearest`. So it decides int64 and uint64 values beyond 2**53,
    each split exactly into two float64s (:func:`_as_float64`; 10 s for
    3,000 such rows in Python integers, a third of it there). :meth:`nearest`
    (a caller's one row; integers of no numpy integer dtype): where
    every value is a small integer numpy's float64 sums are exact; else
    Python integers: a row is its integer significands times a power of two
    (:func:`_row_integers`), each gallery row's read once per call. Copies
    of one gallery row are decided together there: a tie of copies only at
    once, others by the lowest index of the rows equal to each (found once,
    for the first tie of more than 8 rows that are not all copies). Nothing
    is computed for a search without ties."""

    def __init__(self, metric: str, query: np.ndarray, gallery: np.ndarray) -> None:
        self.metric, self.query, self.gallery = metric, query, gallery
        self._first_copy: "np.ndarray | None" = None
        self._small_integers: "bool | None" = None
        self._integers: dict = {}  # gallery row -> (significands, exponent, sum of their squares)
        self._float64: "tuple | None" = None  # (query, gallery) as float64 for the core, or () where not exact

    def settle(self, start: int, scores: np.ndarray, rows: np.ndarray, thresholds: np.ndarray) -> "np.ndarray | None":
        """For each row ``i`` of ``rows`` (rows of the block ``scores`` of
        query rows from ``start``, one score per gallery row): the gallery
        row nearest query row ``start + i`` among those whose score is at
        least ``thresholds`` (cosine; at most it for Euclidean), in the core
        (-1 where none is); ``None`` where the values are no float64s
        (integers beyond 2**53), for :meth:`nearest` to decide."""
        if self._float64 is None:
            self._float64 = _as_float64(self.query, self.gallery)
        if not self._float64:
            return None
        query, gallery, top, left = self._float64
        return _core.exact_nearest_rows(query, gallery, top, scores, start, np.asarray(rows, dtype=np.int64),
                                        np.asarray(thresholds, dtype=np.float64), self.metric == "cosine", left)

    def nearest(self, row: int, candidates: np.ndarray) -> int:
        """The index among ``candidates`` (ascending) of the gallery row nearest query row ``row``."""
        rows = self.gallery[candidates]
        if (rows == rows[0]).all():  # copies of one row (duplicated events): the lowest index
            return int(candidates[0])
        if len(candidates) > 8:  # each distinct row once, at its lowest index among the candidates
            if self._first_copy is None:
                _, first, inverse = np.unique(self.gallery, axis=0, return_index=True, return_inverse=True)
                self._first_copy = first[inverse.reshape(-1)]
            candidates = np.sort(candidates[np.unique(self._first_copy[candidates], return_index=True)[1]])
            rows = self.gallery[candidates]
        query = self.query[row]
        if self._small_integers is None:
            self._small_integers = _small_integers(self.query, self.gallery)
        if self._small_integers:
            q, g = query.astype(np.float64), rows.astype(np.float64)
            if self.metric == "euclidean":
                key = [int(v) for v in (np.einsum("ij,ij->i", g, g) - 2 * (g @ q)).tolist()], None
            else:
                key = [int(v) for v in (g @ q).tolist()], [int(v) for v in np.einsum("ij,ij->i", g, g).tolist()]
        else:
            q, q_exponent, _ = _row_integers(query)
            dots, squares, exponents = [], [], []
            for index in candidates.tolist():
                if index not in self._integers:
                    self._integers[index] = _row_integers(self.gallery[index])
                g, exponent, square = self._integers[index]
                dots.append(sum(map(operator.mul, q, g)))
                squares.append(square)
                exponents.append(exponent)
            if self.metric == "euclidean":  # |g|^2 - 2 q.g at the candidates' smallest power of two
                low = min(e + min(e, q_exponent) for e in exponents)
                key = [(s << (2 * e - low)) - ((2 * p) << (q_exponent + e - low))
                       for p, s, e in zip(dots, squares, exponents)], None
            else:
                key = dots, squares
        if self.metric == "euclidean":
            distances = key[0]
            return int(candidates[distances.index(min(distances))])  # index(): the first of equal ones
        dots, squares = key
        best = 0
        for k in range(1, len(candidates)):
            p, s, bp, bs = dots[k], squares[k], dots[best], squares[best]
            sign, best_sign = (p > 0) - (p < 0), (bp > 0) - (bp < 0)
            if sign != best_sign:
                better = sign > best_sign
            else:  # p / sqrt(s) > bp / sqrt(bs): p^2 bs > bp^2 s for positives, < for negatives (0 ties 0)
                better = p * p * bs > bp * bp * s if sign > 0 else p * p * bs < bp * bp * s
            if better:
                best = k
        return int(candidates[best])


def _as_float64(query: np.ndarray, gallery: np.ndarray) -> tuple:
    """``(query, gallery, top, left)`` for the core: the two as C-ordered
    float64 where that holds their values as the search read them (floats,
    long doubles rounded as the search rounded them; integers up to 2**53
    in magnitude), their largest magnitude and ``None``; where an integer
    array holds values beyond 2**53 (int64, uint64: timestamps, ids), each
    value split exactly into two float64s of one sign, ``h + l``, as the
    core's ``Ties::split`` takes them (query ``[h, h, l, l]``, gallery
    ``[h, l, h, l]`` and ``left`` ``[h, h, l, l]`` per value of a column
    that needs it, the others whole; a float is ``x + 0``): in Python integers (:meth:`ExactTies.nearest`) rows a
    timestamp dominates took 10 s for 3,000 rows. Else (integers of no
    numpy integer dtype) ``()``."""
    if not all(a.dtype.kind in "iuf" for a in (query, gallery)):
        return ()
    if not any(a.dtype.kind in "iu" and a.size and (int(a.max()) > _EXACT_INT or int(a.min()) < -_EXACT_INT)
               for a in (query, gallery)):
        query, gallery = (np.ascontiguousarray(a, dtype=np.float64) for a in (query, gallery))
        return query, gallery, max(float(np.abs(a).max(initial=0.0)) for a in (query, gallery)), None
    (qh, ql), (gh, gl) = _split(query), _split(gallery)
    top = max(float(np.abs(h).max(initial=0.0)) for h in (qh, gh))
    # only the columns that hold a low part are split (a timestamp beside small features: 3 more columns,
    # not 3 more per column), the others kept whole: h + 0 pairs with h + 0 as the value with itself
    wide = np.flatnonzero((ql != 0).any(axis=0) | (gl != 0).any(axis=0))
    if wide.size == 0:  # multiples of 2**11 only: every value a float64
        return np.ascontiguousarray(qh), np.ascontiguousarray(gh), top, None
    whole = np.setdiff1d(np.arange(qh.shape[1]), wide)
    q = np.hstack([qh[:, whole], _interleaved(qh[:, wide], qh[:, wide], ql[:, wide], ql[:, wide])])
    g = np.hstack([gh[:, whole], _interleaved(gh[:, wide], gl[:, wide], gh[:, wide], gl[:, wide])])
    left = np.hstack([gh[:, whole], _interleaved(gh[:, wide], gh[:, wide], gl[:, wide], gl[:, wide])])
    return np.ascontiguousarray(q), np.ascontiguousarray(g), top, np.ascontiguousarray(left)


#: The low bits of an integer split off as ``l``: ``h``, the rest, has at most 64 - 11 = 53 significant bits.
_LOW_BITS = 11


def _split(values: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    """``values`` (2-D, integers or floats) as float64s ``h`` and ``l`` of
    one sign with ``values = h + l`` exactly: an integer's magnitude less
    its low 11 bits, and those bits (every int64 and uint64 in two float64s);
    a float is itself and 0."""
    if values.dtype.kind == "f":
        high = np.ascontiguousarray(values, dtype=np.float64)
        return high, np.zeros_like(high)
    if values.dtype.kind == "i":
        wide = values.astype(np.int64, copy=False)
        negative = wide < 0
        # the magnitude in uint64: -(v + 1) + 1, as -(-2**63) is no int64
        magnitude = np.where(negative, (-(wide + 1)).astype(np.uint64) + np.uint64(1), wide.astype(np.uint64))
    else:
        negative, magnitude = None, values.astype(np.uint64, copy=False)
    low = magnitude & np.uint64(2**_LOW_BITS - 1)
    high, low = (magnitude - low).astype(np.float64), low.astype(np.float64)  # both exact: 53 and 11 bits
    if negative is not None:
        high, low = np.where(negative, -high, high), np.where(negative, -low, low)
    return high, low


def _interleaved(*parts: np.ndarray) -> np.ndarray:
    """Rows of ``[parts[0][i, c], parts[1][i, c], ...]`` for each column ``c``, C-ordered float64."""
    n, d = parts[0].shape
    return np.ascontiguousarray(np.stack(parts, axis=-1).reshape(n, d * len(parts)))


def _small_integers(*arrays: np.ndarray) -> bool:
    """Whether every value of ``arrays`` (with the same columns) is an
    integer small enough that float64 sums of their products and squares
    over a row (``|g|^2 - 2 q.g``, ``q.g``, ``g.g``) are exact in any order,
    below 2**53."""
    top = 0.0
    for a in arrays:
        if a.dtype.kind in "iu":
            if a.size and (int(a.max()) >= 2**25 or int(a.min()) <= -(2**25)):  # int64 past 2**53 included
                return False
        elif not np.array_equal(a, np.trunc(a)):
            return False
        top = max(top, float(np.abs(a).max(initial=0)))
    return top < 2.0**25 and 3 * top * top * arrays[0].shape[1] < 2.0**53


def _row_integers(row: np.ndarray) -> "tuple[list, int, int]":
    """The real row ``row`` as Python ints ``m`` and one exponent ``e`` with
    ``row = m * 2**e`` (integers as they are, floats as float64), and the
    sum of the ``m`` squared."""
    if row.dtype.kind in "iu":
        ints, exponent = row.tolist(), 0
    else:
        x = row.astype(np.float64)
        mantissas, exponents = np.frexp(x)  # |mantissa| in [0.5, 1), or 0: times 2**53 an exact int64
        nonzero = x != 0
        exponent = int(exponents[nonzero].min()) - 53 if nonzero.any() else 0
        shifts = np.where(nonzero, exponents - 53 - exponent, 0).tolist()
        ints = [m << s for m, s in zip((mantissas * 2.0**53).astype(np.int64).tolist(), shifts)]
    return ints, exponent, sum(map(operator.mul, ints, ints))

"""Integers beyond 2**53, and long doubles, as float64 without rounding them first.

float64 holds every integer up to 2**53 only; nanosecond timestamps (near
2**61) or ids cast as they are round to float64's spacing there (256 and
more), so rows a few units apart become one value. What the package
computes from such columns (distances, standardised columns, covariances)
does not depend on a column's offset, so each column is shifted by an
offset (its smallest value) exactly in integers, and the difference is
rounded once. Long doubles (wider than float64) are shifted alike, in long
double: cast first, their variation below float64's spacing was lost.
"""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np

#: Integers beyond this magnitude are not all exact in float64 (53-bit significand).
FLOAT64_EXACT_INT = 2**53

#: An integer per column, split in its high and low 32 bits (int64 each: the
#: high part is a floor division by 2**32, the low part in [0, 2**32)), so that
#: int64 and uint64 values are kept alike and every difference of parts is
#: exact in int64.
IntOffset = Tuple[np.ndarray, np.ndarray]

#: What columns are shifted by: integers' smallest values (:data:`IntOffset`),
#: or long doubles' (a long double array).
Offset = Union[IntOffset, np.ndarray]

_LOW_BITS = 0xFFFFFFFF


def beyond_float64(*arrays: np.ndarray) -> bool:
    """Whether every array is of integers and one holds a value float64 cannot hold exactly."""
    return all(a.dtype.kind in "iu" for a in arrays) and any(
        a.size and (int(a.max()) > FLOAT64_EXACT_INT or int(a.min()) < -FLOAT64_EXACT_INT) for a in arrays
    )


def is_long_double(values: np.ndarray) -> bool:
    """Whether ``values`` are floats wider than float64 (long double, where the platform has one)."""
    return values.dtype.kind == "f" and values.dtype.itemsize > 8


def _split(values: np.ndarray) -> IntOffset:
    wide = values.astype(np.int64 if values.dtype.kind == "i" else np.uint64, copy=False)
    return (wide >> 32).astype(np.int64), (wide & _LOW_BITS).astype(np.int64)  # int64's shift is arithmetic


def column_minimum(*arrays: np.ndarray) -> Offset:
    """Each column's smallest value over ``arrays`` (integer, the same
    columns), exactly: numpy's minimum of int64 and uint64 is a float64.
    When one array is a long double, the minima are long doubles."""
    if any(is_long_double(a) for a in arrays):
        return np.min([a.min(axis=0).astype(np.longdouble) for a in arrays], axis=0)
    high, low = _split(arrays[0].min(axis=0))
    for a in arrays[1:]:
        h, l = _split(a.min(axis=0))
        lower = (h < high) | ((h == high) & (l < low))  # (high, low) orders as the integers do
        high, low = np.where(lower, h, high), np.where(lower, l, low)
    return high, low


def minus(values: np.ndarray, offset: Offset) -> np.ndarray:
    """``values - offset`` in float64, rounded once from the exact difference.

    Both halves' differences are exact in int64 and in float64, and their
    sum rounds once. A float array (already rounded) is shifted in float64;
    by a long double offset, any array is shifted in long double."""
    if isinstance(offset, np.ndarray):
        return (values.astype(offset.dtype) - offset).astype(np.float64)
    high, low = offset
    if values.dtype.kind not in "iu":
        return values.astype(np.float64) - (high.astype(np.float64) * 2.0**32 + low)
    values_high, values_low = _split(values)
    return (values_high - high).astype(np.float64) * 2.0**32 + (values_low - low).astype(np.float64)


def plus(offset: Offset, values: np.ndarray) -> np.ndarray:
    """``offset + values`` (float64 values, such as a shifted column's mean)
    in float64: a long double offset's sum rounded once."""
    if isinstance(offset, np.ndarray):
        return (offset + values).astype(np.float64)
    high, low = offset
    return high.astype(np.float64) * 2.0**32 + low + values

"""Equality by value for objects whose fields hold numpy arrays.

A dataclass's own ``==`` compares its fields as a tuple, and an array field
answers ``==`` element-wise: the comparison raised numpy's "The truth value
of an array with more than one element is ambiguous" (``a == b``,
``a in list_of_them``).
"""

from __future__ import annotations

import numbers
from dataclasses import fields
from typing import Any, Mapping

import numpy as np


def equal_values(x: Any, y: Any) -> bool:
    """``x == y`` where arrays, and mappings or sequences holding them, are
    compared by value: arrays with :func:`numpy.array_equal` (NaN equal to
    NaN, as for numbers), mappings by their keys (in any order, as ``dict``
    compares them: a checkpoint reads a weight average's tensors back in
    another order) and values, lists and tuples item by item (``None``
    equal only to ``None``)."""
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            return False
        try:
            return bool(np.array_equal(x, y, equal_nan=True))
        except TypeError:  # arrays np.isnan cannot take (strings, objects)
            return bool(np.array_equal(x, y))
    if isinstance(x, Mapping) or isinstance(y, Mapping):
        if not (isinstance(x, Mapping) and isinstance(y, Mapping)) or set(x) != set(y):
            return False
        return all(equal_values(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return type(x) is type(y) and len(x) == len(y) and all(equal_values(u, v) for u, v in zip(x, y))
    if isinstance(x, numbers.Number) and isinstance(y, numbers.Number):
        return bool(x == y or (x != x and y != y))  # NaN equal to NaN, as in the arrays
    return bool(x == y)


def equal_fields(a: Any, b: object) -> Any:
    """``a == b`` for a dataclass ``a``: of the same class, and every field equal by value."""
    if b.__class__ is not a.__class__:
        return NotImplemented
    return all(equal_values(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))

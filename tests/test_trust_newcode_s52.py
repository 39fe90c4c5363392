"""Hostile use of session 52's new code: ``_core.plain_items`` (lists of rows read at C speed)."""

import numpy as np
import pytest

from grapheme_multimodal import _core


def test_plain_items_rows_repeated_past_memory_are_left_to_numpy_not_a_panic():
    # [row] * n holds one row n times by reference: a list of a few MB asks for ~800 TB of float64. numpy's
    # PyArray_Zeros then fails with MemoryError, which rust-numpy's zeros turned into a Rust panic
    # (pyo3's PanicException, a BaseException that `except Exception` misses) out of every public function
    # that reads such a list; plain_items now declines (None), and numpy's own path answers as before it.
    row = [0.0] * 10**6
    assert _core.plain_items([row] * 10**8) is None
    assert _core.plain_items([[0] * 10**6] * 10**8) is None
    # the ordinary case still read: a list of rows at C speed, as numpy reads it
    got = _core.plain_items([row[:3]] * 4)
    assert got.shape == (4, 3) and got.dtype == np.float64


@pytest.mark.parametrize("rows", [
    [[1.0, 2.0], [1, 2]],            # a row of ints after a row of floats
    [[1.0, 2], [1.0, 2.0]],          # a mix within a row
    [[True, False], [1, 0]],         # bools
    [[1, 2], [2**70, 1]],            # an int beyond int64 in a later row
    [[1.0, 2.0], [1.0]],             # ragged
    [[1.0], []],                     # an empty row after a full one
    [[], []],                        # empty rows
    [[[1.0]], [[2.0]]],              # deeper
    [[1, 2], [1.5, 2.0]],            # floats after ints
])
def test_plain_items_declines_what_numpy_reads_otherwise(rows):
    assert _core.plain_items(rows) is None


@pytest.mark.parametrize("rows", [
    [(1.0, 2.0), [3.0, 4.0]],
    [[-0.0, float("nan"), float("inf")]],
    [[-2**63, 2**63 - 1], [0, 1]],
    ((5e-324, 1e300),),
])
def test_plain_items_reads_as_numpy_does(rows):
    got, want = _core.plain_items(rows), np.asarray(rows)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True) and (np.signbit(got) == np.signbit(want)).all()

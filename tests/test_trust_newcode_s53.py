"""Session 53's own new code attacked with fresh eyes: each test pins a defect
found in it (before the fix: a panic, a hang, a wrong answer or a misleading
message)."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import _core


# -- the exact tie decision's private binding ---------------------------------------------------------------------------
@pytest.mark.parametrize("start", [2**64 - 1, 2**64 - 2, 2**63])
def test_exact_nearest_rows_refuses_a_start_past_the_query_without_a_panic(start):
    # start + rows wrapped past usize::MAX, passed the shape check, and the core indexed far beyond the query
    # (a panic, caught as "internal error (a bug in grapheme-multimodal ...)")
    query, gallery, scores = np.ones((2, 2)), np.ones((3, 2)), np.ones((2, 3))
    with pytest.raises(ValueError, match="exact_nearest_rows: expected") as info:
        _core.exact_nearest_rows(query, gallery, 1.0, scores, start, np.array([0]), np.array([1.0]), True)
    assert not isinstance(info.value, gm.GraphemeError)  # the panic's error is one, "internal error"

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


# -- remembered column names --------------------------------------------------------------------------------------------
DIMS = (3, 2, 18, 32, 32, 16, 8)
SMALL = dict(input_dims=DIMS, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)


def test_column_names_of_numpy_strings_are_kept_and_shown_as_plain_str():
    # pandas 2 keeps numpy's str as column names (df.columns = list(np.array(names))); under numpy 2 their repr is
    # np.str_('a'): input_columns gave them back so and the refusal read "its columns [np.str_('c'), ...]"
    pd = pytest.importorskip("pandas")
    import warnings

    from grapheme_multimodal.metrics import cross_view_retrieval

    names = pd.Index([np.str_("a"), np.str_("b"), np.str_("c")], dtype=object)
    visual = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=names)
    assert all(type(c) is np.str_ for c in visual.columns)  # what the test is about
    model = gm.LearnableMultiModal(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": visual}, epochs=1, progress=False)
    assert model.input_columns("visual") == ("a", "b", "c")
    assert all(type(c) is str for c in model.input_columns("visual"))
    with pytest.raises(gm.InvalidValueError) as info:
        model.encode({"visual": visual[[np.str_("c"), np.str_("a"), np.str_("b")]]})
    assert "np.str_" not in str(info.value) and "its columns ['c', 'a', 'b']" in str(info.value), str(info.value)
    with pytest.raises(gm.InvalidValueError) as info:  # two frames side by side (metrics, standardize)
        cross_view_retrieval(visual, visual[[np.str_("c"), np.str_("a"), np.str_("b")]], np.arange(20))
    assert "np.str_" not in str(info.value), str(info.value)

"""A second hostile-use audit of the scikit-learn estimator: what sklearn
users pass (verbose=1, pandas output of several frames, frames then arrays)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import grapheme_multimodal as gm

from grapheme_multimodal.sklearn import MultimodalEmbedder

SMALL = dict(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, random_state=0)


def _views(n: int = 40):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, 3))
    return [z @ rng.normal(size=(3, 6)), z @ rng.normal(size=(3, 5))]


def _frames(views, index):
    return [
        pd.DataFrame(v, columns=[f"v{i}_{j}" for j in range(v.shape[1])], index=index) for i, v in enumerate(views)
    ]


@pytest.mark.parametrize("verbose", [0, 1, 2, np.int64(1)])
def test_verbose_given_as_an_int_as_scikit_learn_estimators_take_it(verbose, capsys):
    """Before: verbose=1 (sklearn's convention) raised "TypeError: verbose: expected a bool, got int"."""
    views = _views()
    out = MultimodalEmbedder(**SMALL, verbose=verbose).fit_transform(views)
    assert np.array_equal(out, MultimodalEmbedder(**SMALL).fit_transform(views))


@pytest.mark.parametrize("verbose", [-1, "yes", 1.0, None])
def test_a_verbose_neither_bool_nor_int_at_least_0_is_refused_by_name(verbose):
    """A negative or non-integer verbose is still refused, naming verbose and what it got."""
    with pytest.raises((TypeError, ValueError), match=r"^verbose: expected a bool or an int >= 0, got "):
        MultimodalEmbedder(**SMALL, verbose=verbose).fit(_views())


def test_pandas_output_of_several_frames_keeps_their_index():
    """Before: set_output(transform="pandas") on several frames indexed 100.. returned rows indexed 0..n-1."""
    views = _views()
    index = pd.Index(np.arange(100, 100 + len(views[0])), name="sample")
    frames = _frames(views, index)
    est = MultimodalEmbedder(**SMALL).set_output(transform="pandas")
    fitted_out = est.fit_transform(frames)
    out = est.transform(frames)
    for result in (fitted_out, out):
        assert isinstance(result, pd.DataFrame)
        assert result.index.equals(index)
        assert list(result.columns) == list(est.get_feature_names_out())
    plain = MultimodalEmbedder(**SMALL).fit(views)
    assert np.array_equal(out.to_numpy(), plain.transform(views))
    # arrays have no index: the default RangeIndex, as scikit-learn gives
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        assert est.transform(views).index.equals(pd.RangeIndex(len(views[0])))
    # default output is still a plain array
    assert isinstance(MultimodalEmbedder(**SMALL).fit(frames).transform(frames), np.ndarray)


def test_several_views_fitted_on_frames_warn_when_given_arrays_and_back():
    """Before: arrays after frames (or frames after arrays) went through silently; one view gets sklearn's warning."""
    views = _views()
    frames = _frames(views, pd.RangeIndex(len(views[0])))
    est = MultimodalEmbedder(**SMALL).fit(frames)
    with pytest.warns(UserWarning, match=r"^Xs\[0\] does not have valid feature names, but MultimodalEmbedder was fitted"):
        without = est.transform([views[0], frames[1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(without, est.transform(frames))
    on_arrays = MultimodalEmbedder(**SMALL).fit(views)
    with pytest.warns(UserWarning, match=r"^Xs\[1\] has feature names, but MultimodalEmbedder was fitted without"):
        on_arrays.transform([views[0], frames[1]])


def test_a_refit_on_one_view_forgets_the_column_names_of_an_earlier_fit_on_several():
    """Before: fit(two frames), fit(one array), transform(two frames) said "Xs[0]: columns ...; expected those seen in fit"."""
    views = _views()
    frames = _frames(views, pd.RangeIndex(len(views[0])))
    est = MultimodalEmbedder(**SMALL).fit(frames).fit(views[0])
    with pytest.raises(gm.ShapeError, match=r"^Xs: expected 1 view with \[6\] columns \(as in fit\), got \[5, 6\]"):
        est.transform([frames[1], frames[0]])


def test_several_views_as_nested_lists_say_how_to_give_views():
    """Before: "Found array with dim 3, while dim <= 2 is required", not that views are a list of arrays."""
    views = _views()
    est = MultimodalEmbedder(**SMALL)
    with pytest.raises(gm.InvalidValueError, match=r"^Xs: nested lists read as one 3-D array.*list of arrays") as info:
        est.fit([views[0].tolist(), (2 * views[0]).tolist()])  # of one width: no ragged list
    assert info.value.arg == "Xs" and not hasattr(est, "model_")
    # one view as nested lists is still one view
    assert est.fit(views[0].tolist()).n_views_ == 1

"""Leftovers of s64: binder_auc refuses views of no columns as the metrics do,
Graph.from_edges reads an object array of ints, ExactCCA reads a 1-D Y as
scikit-learn's CCA does, the estimator names X's column in the model's
float32 refusals, and nutrimouse_cv's anchors name their all-zero scores."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.evaluation import ExactCCA, binder_auc

pytest.importorskip("sklearn")

from grapheme_multimodal import evaluation  # noqa: E402
from grapheme_multimodal.evaluation import _nutrimouse  # noqa: E402
from grapheme_multimodal.sklearn import MultimodalEmbedder  # noqa: E402


# ------------------------------------------------ 1. binder_auc of views with no columns
def test_binder_auc_refuses_a_view_of_no_columns_naming_it() -> None:
    """It scored every pair alike (AUC 0.5) where cross_view_retrieval refuses such views."""
    views = {"a": np.ones((5, 3)), "b": np.zeros((5, 0))}
    with pytest.raises(gm.ShapeError, match=r"^view_embeddings\['b'\]: expected an \[N, E\] array of embeddings, "
                                            r"E at least 1, got shape \(5, 0\)") as err:
        binder_auc(lambda a, b: np.ones(len(a)), views)
    assert err.value.arg == "view_embeddings['b']"
    with pytest.raises(gm.ShapeError, match=r"^query: expected a non-empty 2-D array"):  # the metric's refusal alike
        gm.metrics.cross_view_retrieval(np.zeros((5, 0)), np.zeros((5, 0)), np.arange(5))


# ------------------------------------------------ 2. Graph.from_edges of an object array of ints
@pytest.mark.parametrize("edges", [
    np.array([[0, 1], [2, 0]], dtype=object),
    np.array([[np.int64(0), np.uint8(1)], [2, np.int32(0)]], dtype=object),
    [[np.uint64(0), np.int64(1)], [np.uint64(2), np.int64(0)]],  # numpy reads these as float64
])
def test_from_edges_reads_ints_that_numpy_holds_as_objects_or_floats_as_the_ints(edges) -> None:
    """An object array of ints was "got dtype object"; uint64 beside int64 a bare StopIteration."""
    graph = gm.Graph.from_edges(3, edges)
    assert graph.edges.tolist() == [[0, 1], [2, 0]]
    assert graph == gm.Graph.from_edges(3, [[0, 1], [2, 0]])


def test_from_edges_refuses_an_object_array_edge_out_of_range_by_the_edge() -> None:
    for big in (3, 2**70, -1):
        with pytest.raises(gm.InvalidValueError, match=rf"^edges: edge 1 is \(2, {big}\) but node indices must be 0 to 2"):
            gm.Graph.from_edges(3, np.array([[0, 1], [2, big]], dtype=object))


@pytest.mark.parametrize("bad", [1.5, 1.0, "1", True, None])
def test_from_edges_refuses_objects_other_than_ints_saying_what_is_read(bad) -> None:
    with pytest.raises(TypeError, match=r"^edges: expected integer node indices, got dtype object; an object array "
                                        r"\(or a list\) is read when every entry is an int, Python's or numpy's: "
                                        r"convert the others"):
        gm.Graph.from_edges(3, np.array([[0, 1], [2, bad]], dtype=object))


def test_from_edges_still_refuses_a_float_array_by_its_dtype() -> None:
    with pytest.raises(TypeError, match=r"^edges: expected integer node indices, got dtype float64$"):
        gm.Graph.from_edges(3, np.array([[0.0, 1.0]]))


# ------------------------------------------------ 3. ExactCCA of a 1-D Y, as scikit-learn's CCA
def _views() -> tuple:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    y = x @ rng.normal(size=4) + 0.1 * rng.normal(size=30)
    return x, y


def test_exact_cca_reads_a_1d_y_as_one_column_in_fit_and_transform() -> None:
    """It refused it as "Y: expected a non-empty 2-D array", where sklearn's CCA fits it."""
    from sklearn.cross_decomposition import CCA

    x, y = _views()
    CCA(n_components=1).fit(x, y)  # what the interface follows
    one_d = ExactCCA(n_components=1).fit(x, y)
    column = ExactCCA(n_components=1).fit(x, y[:, None])
    assert np.array_equal(one_d.y_weights_, column.y_weights_)
    assert np.array_equal(one_d.correlations_, column.correlations_)
    x_scores, y_scores = one_d.transform(x, y)
    expected = column.transform(x, y[:, None])
    assert y_scores.shape == (30, 1)
    assert np.array_equal(x_scores, expected[0]) and np.array_equal(y_scores, expected[1])
    assert one_d.correlations_[0] > 0.99
    if hasattr(CCA(), "__sklearn_tags__"):  # scikit-learn >= 1.6: its tags say so, as CCA's do
        assert one_d.__sklearn_tags__().target_tags.single_output == CCA().__sklearn_tags__().target_tags.single_output


def test_exact_cca_still_refuses_a_1d_x_as_sklearn_does() -> None:
    from sklearn.cross_decomposition import CCA

    x, y = _views()
    with pytest.raises(ValueError, match="Expected 2D array"):
        CCA(n_components=1).fit(y, x)
    with pytest.raises(gm.ShapeError, match=r"^X: expected a non-empty 2-D array \[n, d\], got shape \(30,\)"):
        ExactCCA(n_components=1).fit(y, x)
    fitted = ExactCCA(n_components=1).fit(x, y)
    with pytest.raises(gm.ShapeError, match=r"^X: expected a non-empty 2-D array"):
        fitted.transform(x[:, 0], y)


# ------------------------------------------------ 4. the model's float32 refusals name X's column
@pytest.mark.parametrize("low, high, words", [
    (1.2e-38, 1.3e-38, "vary, but by a standard deviation below float32's smallest normal number"),
    (0.0, 1e-39, "are at most 1e-39 in magnitude"),
])
def test_estimator_names_the_column_of_xs_in_the_models_float32_refusals(low, high, words) -> None:
    """It said "Xs[:, 4:10]: column 1's values ...", the view's column, read as X's column 1."""
    X = np.random.default_rng(0).normal(size=(20, 10)).astype(np.float32)
    X[:, 5], X[::2, 5] = np.float32(low), np.float32(high)
    estimator = MultimodalEmbedder(view_sizes=[4, 6], epochs=1)
    with pytest.raises(gm.InvalidValueError, match=rf"^Xs\[:, 4:10\]: the values of column 5 of Xs {words}") as err:
        estimator.fit(X)
    assert err.value.arg == "Xs[:, 4:10]"
    assert not hasattr(estimator, "model_")  # the failed fit left nothing behind
    with pytest.raises(gm.InvalidValueError, match=rf"^Xs\[1\]: column 1's values {words}"):  # a view of its own
        MultimodalEmbedder(epochs=1).fit([X[:, :4], X[:, 4:]])


# ------------------------------------------------ 5. nutrimouse_cv's anchors with an all-zero score row
class _ZeroFirstRowCCA(ExactCCA):
    """ExactCCA whose Y scores of the first row are zero."""

    def transform(self, X, Y=None):  # noqa: N803
        x_scores, y_scores = super().transform(X, Y)
        y_scores[0] = 0.0
        return x_scores, y_scores


def test_nutrimouse_cv_names_the_view_and_mouse_of_an_anchors_zero_scores(nutrimouse, monkeypatch) -> None:
    """They reached cross_view_retrieval, refused as its "gallery", no argument of nutrimouse_cv."""
    monkeypatch.setattr(_nutrimouse, "ExactCCA", _ZeroFirstRowCCA)
    from sklearn.model_selection import RepeatedStratifiedKFold

    _, first_test_rows = next(RepeatedStratifiedKFold(n_splits=5, n_repeats=1, random_state=0)
                              .split(nutrimouse.views["gene"], nutrimouse.diet))
    with pytest.raises(gm.InvalidValueError, match=rf"^data.views\['lipid'\]: the exact CCA\(2\) scores of 1 row\(s\) "
                                                   rf"\(first: row {first_test_rows[0]}\) are all zero") as err:
        evaluation.nutrimouse_cv(None, nutrimouse, n_repeats=1)
    assert err.value.arg == "data.views['lipid']"

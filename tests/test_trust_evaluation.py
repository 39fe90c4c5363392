"""Hostile use of the measurements: evaluate_model, the anchors (both the
closed-form ones of ``evaluation`` and scikit-learn's of ``anchors``),
the UCI training entry points and the plots. Every mistake is refused by
the name the caller used (``test.views['b']``, ``embedder.embed_views``,
``settings``), never by a helper's argument the caller never passed
(``others[0]``, ``query``, ``train_x``) or by a library's own words."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import anchors, datasets, evaluation, uci

pytest.importorskip("sklearn")


def split_pair(n_train: int = 40, n_test: int = 20, seed: int = 0):
    """Three views (widths 4, 3, 2) of three classes, train and test."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = np.arange(n) % 3
        views = {v: rng.normal(size=(n, d)) + labels[:, None] for v, d in (("a", 4), ("b", 3), ("c", 2))}
        return datasets.MultipleFeatures(views=views, labels=labels)

    return make(n_train), make(n_test)


def with_view(split, name, values):
    """``split`` with view ``name`` replaced by ``values``."""
    return datasets.MultipleFeatures(views={**split.views, name: values}, labels=split.labels)


class FirstColumns:
    """An embedder whose view embedding is the view's first two columns
    (``view_output`` may change it) and whose fused embedding is the
    views' first columns side by side (``fused_output`` may change it)."""

    def __init__(self, view_output=None, fused_output=None):
        self.view_output = view_output or (lambda name, x: x[:, :2])
        self.fused_output = fused_output or (lambda views, out: out)

    def embed_views(self, views):
        return {v: self.view_output(v, np.asarray(x, np.float64)) for v, x in views.items()}

    def embed_fused(self, views):
        return self.fused_output(views, np.hstack([np.asarray(views[v])[:, :1] for v in sorted(views)]))


# ------------------------------------------------------------ evaluate_model


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_evaluate_model_names_the_view_an_embedder_embedded_as_nan_or_inf(bad):
    # was cross_view_retrieval's "query: row 2 holds NaN or inf": an argument evaluate_model has not
    train, test = split_pair()

    def spoilt(name, x):
        out = x[:, :2].copy()
        if name == "b" and len(x) == len(test.labels):
            out[2, 1] = bad
        return out

    with pytest.raises(gm.NonFiniteError, match=r"^embedder\.embed_views\(\.\.\.\)\['b'\]: row 2 holds NaN or inf") as err:
        evaluation.evaluate_model(FirstColumns(view_output=spoilt), train, test, two_views=False)
    assert err.value.arg == "embedder.embed_views(...)['b']"


def test_evaluate_model_names_the_fused_embedding_an_embedder_gave_as_nan():
    # was the k-NN's "train_x: row 0 holds NaN or inf"
    train, test = split_pair()

    def spoilt(views, out):
        out = out.copy()
        if len(out) == len(train.labels):
            out[7, 0] = np.nan
        return out

    with pytest.raises(gm.NonFiniteError, match=r"^embedder\.embed_fused: row 7 holds NaN or inf") as err:
        evaluation.evaluate_model(FirstColumns(fused_output=spoilt), train, test, two_views=False)
    assert err.value.arg == "embedder.embed_fused"


def test_evaluate_model_names_view_embeddings_of_different_widths():
    # was "gallery must have the same shape as query", of arguments evaluate_model has not
    train, test = split_pair()
    embedder = FirstColumns(view_output=lambda name, x: x)  # widths 4, 3 and 2
    with pytest.raises(gm.ShapeError, match=r"^embedder\.embed_views: returned embeddings of different widths "
                                            r"\{'a': 4, 'b': 3, 'c': 2\}; expected one width") as err:
        evaluation.evaluate_model(embedder, train, test, two_views=False)
    assert err.value.arg == "embedder.embed_views"


def test_evaluate_model_names_fused_embeddings_of_other_widths_for_train_and_test():
    # was "test_x has 3 columns but train_x has 2"
    train, test = split_pair()
    wider_for_test = lambda views, out: np.hstack([out, out[:, :1]]) if len(out) == len(test.labels) else out  # noqa: E731
    with pytest.raises(gm.ShapeError, match=r"^embedder\.embed_fused: returned 4 columns for test's views, 3 for "
                                            r"train's; expected one width"):
        evaluation.evaluate_model(FirstColumns(fused_output=wider_for_test), train, test, two_views=False)


@pytest.mark.parametrize("output, error, words", [
    (lambda views: [1, 2], TypeError, r"^embedder\.hidden_features: returned list; expected a mapping view name"),
    (lambda views: {"a": views["a"]}, gm.InvalidValueError, r"^embedder\.hidden_features: returned no features for "
                                                             r"the views \['b', 'c'\]"),
    (lambda views: {v: np.asarray(x)[:5] for v, x in views.items()}, gm.ShapeError,
     r"^embedder\.hidden_features\(\.\.\.\)\['a'\]: returned shape \(5, \d\); expected \(40, d\)"),
    (lambda views: {v: np.full(np.shape(x), np.nan) for v, x in views.items()}, gm.NonFiniteError,
     r"^embedder\.hidden_features\(\.\.\.\)\['a'\]: row 0 holds NaN or inf"),
])
def test_evaluate_model_names_what_hidden_features_returned(output, error, words):
    # were unit_side_by_side's "names: ['b', 'c'] not in views", "views: expected a mapping" and
    # the probe's "train_y must have shape (5,) to match train_x rows"
    train, test = split_pair()
    embedder = FirstColumns()
    embedder.hidden_features = output
    with pytest.raises(error, match=words):
        evaluation.evaluate_model(embedder, train, test, two_views=False)


def test_evaluate_model_refuses_splits_of_one_view_or_one_test_row_by_their_names():
    # one view: binder_auc's "view_embeddings: expected at least 2 views", or for an embedder
    # without a binder no retrieval pairs at all and a mean retrieval of NaN; one test row:
    # binder_auc's "view_embeddings: ... at least 2 rows"
    train, test = split_pair()
    only = lambda split: datasets.MultipleFeatures(views={"a": split.views["a"]}, labels=split.labels)  # noqa: E731
    with pytest.raises(gm.InvalidValueError, match=r"^test: has 1 view \['a'\]; expected at least 2") as err:
        evaluation.evaluate_model(FirstColumns(), only(train), only(test))
    assert err.value.arg == "test"
    with pytest.raises(gm.ShapeError, match=r"^test: has 1 row; expected at least 2") as err:
        evaluation.evaluate_model(FirstColumns(), train, test.subset(np.array([0])))
    assert err.value.arg == "test"
    assert evaluation.evaluate_model(FirstColumns(), train, test.subset(np.array([0, 1])), two_views=False).retrieval

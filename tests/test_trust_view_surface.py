"""The data-science surface (metrics, anchors, evaluation, datasets) takes a
user's views one way throughout: bool features as the floats 0.0 and 1.0
(as scikit-learn's check_array and MultimodalEmbedder take them), view
names that would give two results one key refused up front, and
``n_components`` refused in the package's "<arg>: expected ..., got ..."
words.

Each test failed before its fix."""

from __future__ import annotations

from dataclasses import asdict
from typing import Dict, Mapping

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import anchors, datasets, evaluation, metrics

pytest.importorskip("sklearn")


def _bits(n: int, d: int, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``[n, d]`` bools that depend on the labels (so every figure is more than chance), no column
    constant, and no row without a True among its first 4 columns (cosine retrieval needs a direction)."""
    x = (rng.random((n, d)) < 0.3) ^ (labels[:, None] % 2 == 1) ^ (np.arange(d) % 3 == labels[:, None] % 3)
    x[0], x[1] = True, np.arange(d) % 2 == 0
    x[2] = ~x[1]  # every column holds both values
    empty = np.flatnonzero(~x[:, :4].any(axis=1))
    x[empty, empty % 4] = True
    return x


def _bool_splits(n_train: int = 40, n_test: int = 20, seed: int = 0, widths=(("a", 6), ("b", 5), ("c", 4))):
    """Train and test splits of bool views (by default three, widths 6, 5, 4), three classes."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = np.arange(n) % 3
        return datasets.MultipleFeatures(views={v: _bits(n, d, labels, rng) for v, d in widths},
                                         labels=labels)

    return make(n_train), make(n_test)


def _as_floats(split: datasets.MultipleFeatures) -> datasets.MultipleFeatures:
    """The same split, its views as float64 0.0/1.0."""
    return datasets.MultipleFeatures(views={v: x.astype(np.float64) for v, x in split.views.items()}, labels=split.labels)


class _Identity:
    """A ViewEmbedder whose embeddings are the views as given (bools stay bools)."""

    def embed_views(self, views: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return {v: np.asarray(x)[:, :4] for v, x in views.items()}

    def embed_fused(self, views: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.hstack([np.asarray(x) for x in views.values()])

    def hidden_features(self, views: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return {v: np.asarray(x) for v, x in views.items()}


# ------------------------------------------------ 1. bool views as 0.0/1.0
def test_the_metrics_take_bool_features_as_0_1_floats() -> None:
    # "query must hold real numbers, got dtype bool": binary fingerprints or one-hot columns that
    # MultimodalEmbedder and fit_views train on could not be measured
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    q, g = _bits(30, 6, y, rng), _bits(30, 6, y, rng)
    qf, gf = q.astype(np.float64), g.astype(np.float64)
    for metric in ("cosine", "euclidean"):
        assert metrics.cross_view_retrieval(q, g, y, metric) == metrics.cross_view_retrieval(qf, gf, y, metric)
    assert metrics.knn_accuracy(q, y, g, y, k=3) == metrics.knn_accuracy(qf, y, gf, y, k=3)
    assert metrics.linear_probe_accuracy(q, y, g, y) == metrics.linear_probe_accuracy(qf, y, gf, y)
    side = metrics.unit_side_by_side({"q": q, "g": g}, ["q", "g"])
    assert side.dtype == np.float64  # as for integers: no float dtype of the views' own to keep
    np.testing.assert_array_equal(side, metrics.unit_side_by_side({"q": qf, "g": gf}, ["q", "g"]))
    # what is really no number stays refused, in today's words
    with pytest.raises(TypeError, match=r"^query: expected real numbers, got complex dtype complex128"):
        metrics.cross_view_retrieval(qf + 0j, gf, y)
    with pytest.raises(TypeError, match=r"^train_x: expected a real-valued numeric array, got array of shape \(30, 6\) and dtype <U"):
        metrics.knn_accuracy(q.astype(str), y, g, y)
    with pytest.raises(TypeError, match=r"^views\['q'\]: expected a real-valued numeric array, got .*dtype object"):
        metrics.unit_side_by_side({"q": q.astype(object), "g": g}, ["q", "g"])


def test_exact_cca_and_standardize_take_bool_views_as_0_1_floats() -> None:
    train, test = _bool_splits()
    x, y = train.views["a"], train.views["b"]
    cca, cca_f = evaluation.ExactCCA(3).fit(x, y), evaluation.ExactCCA(3).fit(x.astype(float), y.astype(float))
    for attr in ("x_weights_", "y_weights_", "x_mean_", "y_mean_", "correlations_"):
        np.testing.assert_array_equal(getattr(cca, attr), getattr(cca_f, attr))
    for got, want in zip(cca.transform(test.views["a"], test.views["b"]),
                         cca_f.transform(test.views["a"].astype(float), test.views["b"].astype(float))):
        np.testing.assert_array_equal(got, want)
    got = datasets.standardize(train.views, test.views)
    want = datasets.standardize(_as_floats(train).views, _as_floats(test).views)
    for split_got, split_want in zip(got, want):
        for v in split_want:
            np.testing.assert_array_equal(split_got[v], split_want[v])
    with pytest.raises(TypeError, match=r"^X: expected real numbers, got complex dtype complex128"):
        evaluation.ExactCCA(2).fit(x + 0j, y)


def test_the_anchors_take_bool_views_as_0_1_floats() -> None:
    train, test = _bool_splits()
    train_f, test_f = _as_floats(train), _as_floats(test)
    assert anchors.knn_anchors(train, test, k=3) == anchors.knn_anchors(train_f, test_f, k=3)
    assert anchors.cca_anchor(train, test, "a", "b", n_components=2) == anchors.cca_anchor(train_f, test_f, "a", "b", 2)
    got = evaluation.compute_anchors(train, test, cca_components=3, multiview=[], k=3)
    assert asdict(got) == asdict(evaluation.compute_anchors(train_f, test_f, cca_components=3, multiview=[], k=3))
    # the retrievals of views already standardised: bools given as they are
    assert (evaluation.pairwise_cca_retrieval(train.views, test.views, test.labels, 3)
            == evaluation.pairwise_cca_retrieval(train_f.views, test_f.views, test.labels, 3))
    if evaluation.cca_zoo_available():
        assert (evaluation.multiview_cca_retrieval("MCCA", train.views, test.views, test.labels, 3)
                == evaluation.multiview_cca_retrieval("MCCA", train_f.views, test_f.views, test.labels, 3))


def test_evaluate_model_takes_bool_views_and_embeddings_as_0_1_floats() -> None:
    # an embedder's bool embeddings (and hidden features) reached the metrics, which refused them
    # as their own "query" and "views['a']"
    train, test = _bool_splits()
    got = evaluation.evaluate_model(_Identity(), train, test, k=3)
    want = evaluation.evaluate_model(_Identity(), _as_floats(train), _as_floats(test), k=3)
    assert got.to_dict() == want.to_dict()
    assert got.hidden_knn is not None


def test_nutrimouse_cv_takes_bool_views_as_0_1_floats() -> None:
    # np.ptp of a bool view: "numpy boolean subtract, the `-` operator, is not supported"
    rng = np.random.default_rng(0)
    diet, genotype = np.arange(40) % 5, (np.arange(40) // 5) % 2
    views = {"gene": _bits(40, 8, genotype, rng), "lipid": _bits(40, 5, genotype, rng)}

    def mice(views):
        return datasets.Nutrimouse(views=views, genotype=genotype, diet=diet, genotype_names=("ppar", "wt"),
                                   diet_names=("coc", "fish", "lin", "ref", "sun"),
                                   feature_names={v: tuple(str(i) for i in range(x.shape[1])) for v, x in views.items()})

    got = evaluation.nutrimouse_cv(None, mice(views), n_repeats=2)
    want = evaluation.nutrimouse_cv(None, mice({v: x.astype(np.float64) for v, x in views.items()}), n_repeats=2)
    assert got.keys() == want.keys()
    for method in want:
        for target in want[method]:
            np.testing.assert_array_equal(got[method][target], want[method][target])


# ------------------------------------------------ 2. view names that would share a result key
def _renamed(split: datasets.MultipleFeatures, names: Mapping[str, object]) -> datasets.MultipleFeatures:
    return datasets.MultipleFeatures(views={names[v]: x for v, x in split.views.items()}, labels=split.labels)


def test_knn_anchors_refuses_a_view_named_concat() -> None:
    # the view's own accuracy was overwritten by that of all views side by side, without a word
    train, test = (_as_floats(s) for s in _bool_splits())
    names = {"a": "a", "b": "concat", "c": "c"}
    with pytest.raises(gm.InvalidValueError, match=r"^train\.views: a view is named 'concat', the key of the results' "
                       r"k-NN accuracy of all views side by side.*expected another name") as err:
        anchors.knn_anchors(_renamed(train, names), _renamed(test, names), k=3)
    assert err.value.arg == "train.views"
    # a name like any other where no result has that key
    got = evaluation.compute_anchors(_renamed(train, names), _renamed(test, names), cca_components=2, multiview=[], k=3)
    assert sorted(got.cca) == sorted(evaluation.pair_key(q, g) for q, g in evaluation.ordered_pairs(["a", "concat", "c"]))


def _keyed_by_pair(train: datasets.MultipleFeatures, test: datasets.MultipleFeatures):
    """(the argument that holds the views, a call) for each entry point that keys its results by view pair."""
    return [
        ("train.views", lambda: evaluation.compute_anchors(train, test, cca_components=2, multiview=[], k=3)),
        ("train.views", lambda: evaluation.evaluate_model(_Identity(), train, test, k=3, two_views=False)),
        ("train_std", lambda: evaluation.pairwise_cca_retrieval(train.views, test.views, test.labels, 2)),
        ("train_std", lambda: evaluation.multiview_cca_retrieval("MCCA", train.views, test.views, test.labels, 2)),
    ]


def test_the_measurements_refuse_view_names_alike_as_text() -> None:
    # 1 and "1" both keyed "1->c": one pair's figures overwrote the other's, 6 pairs scored as 4
    train, test = (_renamed(_as_floats(s), {"a": 1, "b": "1", "c": "c"}) for s in _bool_splits())
    for arg, call in _keyed_by_pair(train, test):
        with pytest.raises(gm.InvalidValueError, match=rf"^{arg.replace('.', '[.]')}: the view names 1 and '1' are "
                           r"both '1' as text, .*expected view names that differ as strings") as err:
            call()
        assert err.value.arg == arg


def test_the_measurements_refuse_view_names_that_spell_another_pairs_key() -> None:
    # ("x", "y->z") and ("x->y", "z") are both "x->y->z"
    names = {"a": "x", "b": "y->z", "c": "x->y", "d": "z"}
    train, test = (_renamed(_as_floats(s), names) for s in _bool_splits(widths=(("a", 6), ("b", 5), ("c", 4), ("d", 4))))
    for arg, call in _keyed_by_pair(train, test):
        with pytest.raises(gm.InvalidValueError, match=rf"^{arg.replace('.', '[.]')}: the view pairs \('x', 'y->z'\) "
                           r"and \('x->y', 'z'\) are both keyed 'x->y->z'.*holding '->'") as err:
            call()
        assert err.value.arg == arg
    # a name holding "->" is refused only where two keys meet: without "z", every key is apart
    train, test = (_renamed(_as_floats(s), names) for s in _bool_splits())
    got = evaluation.compute_anchors(train, test, cca_components=2, multiview=[], k=3)
    assert sorted(got.cca) == sorted(["x->y->z", "x->x->y", "y->z->x", "y->z->x->y", "x->y->x", "x->y->y->z"])
    assert len(got.raw_two_view_knn) == 3


def test_two_view_keys_that_collide_are_refused_only_where_they_are_made() -> None:
    # "a+b" of ("a+b", "c") and ("a", "b+c"): the raw two-view k-NN of one pair overwrote the other's
    names = {"a": "a", "b": "b+c", "c": "a+b", "d": "c"}
    train, test = (_renamed(_as_floats(s), names) for s in _bool_splits(widths=(("a", 6), ("b", 5), ("c", 4), ("d", 4))))
    message = r"^train\.views: the view pairs \('a', 'b\+c'\) and \('a\+b', 'c'\) are both keyed 'a\+b\+c'.*holding '\+'"
    with pytest.raises(gm.InvalidValueError, match=message):
        evaluation.compute_anchors(train, test, cca_components=2, multiview=[], k=3)
    with pytest.raises(gm.InvalidValueError, match=message):
        evaluation.evaluate_model(_Identity(), train, test, k=3)
    # without the two-view figures no such key is made, and the pair keys ("a->b+c", ...) are all apart
    scores = evaluation.evaluate_model(_Identity(), train, test, k=3, two_views=False)
    assert len(scores.retrieval) == 12


# ------------------------------------------------ 3. n_components in the package's words
def test_n_components_is_refused_in_one_wording_naming_its_range() -> None:
    # "n_components must be an integer in [1, 2], got 3" (cca_anchor, ExactCCA) beside
    # "n_components: expected a positive int, got 0" (the retrievals) for the one argument
    train, test = (_as_floats(s) for s in _bool_splits())
    cases = [
        (lambda: anchors.cca_anchor(train, test, "a", "b", n_components=6),
         r"^n_components: expected an int in \[1, 5\] \(the fewest of the two views' columns and train's events\), got 6$"),
        (lambda: evaluation.ExactCCA(5).fit(train.views["b"], train.views["c"]),
         r"^n_components: expected an int in \[1, 4\] \(the smaller view's columns\), got 5$"),
        (lambda: evaluation.ExactCCA(0).fit(train.views["b"], train.views["c"]),
         r"^n_components: expected an int in \[1, 4\] .*, got 0$"),
        (lambda: evaluation.pairwise_cca_retrieval(train.views, test.views, test.labels, 0),
         r"^n_components: expected a positive int, got 0$"),  # no upper bound: a narrower pair gets its columns
    ]
    for call, message in cases:
        with pytest.raises(gm.InvalidValueError, match=message) as err:
            call()
        assert err.value.arg == "n_components"
    # a value of another type is a TypeError, as every n_components says it (tests/test_trust_eval_errors.py)
    with pytest.raises(TypeError, match=r"^n_components: expected an int in \[1, 5\] .*, got 1\.5 \(float\)$"):
        anchors.cca_anchor(train, test, "a", "b", n_components=1.5)

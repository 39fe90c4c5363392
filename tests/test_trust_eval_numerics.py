"""Hostile numerics of the measurements: views that are legal but nasty
(rank-deficient), labels beyond int64, and BLAS thread counts. Each figure
is finite and right, or a clear refusal naming the argument; the same
inputs give the same bits on any number of threads."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import anchors, datasets, evaluation
from grapheme_multimodal.metrics import knn_accuracy, linear_probe_accuracy

pytest.importorskip("sklearn")


def two_views(n: int, seed: int = 0, width_a: int = 4, width_b: int = 3):
    """Two views of three classes sharing a latent: ``[n, width_a]``, ``[n, width_b]``, labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    latent = rng.normal(size=(n, 3)) + labels[:, None]
    a = latent @ rng.normal(size=(3, width_a)) + 0.1 * rng.normal(size=(n, width_a))
    b = latent @ rng.normal(size=(3, width_b)) + 0.1 * rng.normal(size=(n, width_b))
    return a, b, labels


def split(a, b, labels):
    return datasets.MultipleFeatures(views={"a": a, "b": b}, labels=labels)


# ------------------------------------------------------------ cca_anchor past a view's rank


@pytest.mark.parametrize("view", ["a", "b"])
def test_cca_anchor_refuses_more_components_than_a_view_s_rank(view):
    # was, for the query view, numpy's "invalid value encountered in divide" twice, then scikit-learn's bare
    # ValueError "A has a NaN entry"; for the gallery view, "y residual is constant at iteration 1" and a figure
    # of components of nothing. Four copies of one column span one direction: NIPALS runs out after one.
    a, b, labels = two_views(40)
    c, d, test_labels = two_views(20, seed=1)
    copies = {"a": (np.repeat(a[:, :1], 4, axis=1), b), "b": (a, np.repeat(b[:, :1], 3, axis=1))}[view]
    test_copies = {"a": (np.repeat(c[:, :1], 4, axis=1), d), "b": (c, np.repeat(d[:, :1], 3, axis=1))}[view]
    train, test = split(*copies, labels), split(*test_copies, test_labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused before scikit-learn divides by the empty residual
        with pytest.raises(gm.InvalidValueError, match=rf"^n_components: expected at most 1, the rank of "
                                                       rf"train\.views\['{view}'\] standardised .* got 2$") as err:
            anchors.cca_anchor(train, test, "a", "b", 2)
        assert err.value.arg == "n_components"
        figures = anchors.cca_anchor(train, test, "a", "b", 1)  # as many components as the rank: a figure
    assert all(0 <= v <= 1 for v in figures.values())


def test_cca_anchor_refuses_components_past_train_s_centred_rows():
    # two training events standardised are one direction (each row the other's negative): the second
    # component was scikit-learn's "y residual is constant" warning and a component of nothing
    a, b, labels = two_views(2)
    c, d, test_labels = two_views(6, seed=1)
    with pytest.raises(gm.InvalidValueError, match=r"^n_components: expected at most 1, the rank of train\.views\['a'\]"):
        anchors.cca_anchor(split(a, b, labels), split(c, d, test_labels), "a", "b", 2)


def test_cca_anchor_of_views_of_full_rank_is_as_before():
    # the rank check refuses nothing NIPALS could fit: a duplicated column leaves the rest of the rank
    a, b, labels = two_views(40)
    c, d, test_labels = two_views(20, seed=1)
    wide = split(np.hstack([a, a[:, :1]]), b, labels), split(np.hstack([c, c[:, :1]]), d, test_labels)
    figures = anchors.cca_anchor(*wide, "a", "b", 3)
    assert set(figures) == {"class_precision_at_1", "instance_recall_at_1"}


# ------------------------------------------------------------ labels beyond int64


BIG = 2**70  # ids, 128-bit hashes: Python ints no int64 holds


def beyond_int64(labels: np.ndarray) -> np.ndarray:
    return np.array([BIG + int(v) for v in labels], dtype=object)


@pytest.mark.parametrize("classifier", [knn_accuracy, linear_probe_accuracy])
def test_the_classifiers_score_integer_labels_beyond_int64_as_the_retrieval_does(classifier):
    # were refused as "values of no one label type (None, or numbers mixed with strings?)": scikit-learn
    # calls them "unknown", where cross_view_retrieval (and cca_anchor) scored them
    a, _, labels = two_views(60)
    c, _, test_labels = two_views(30, seed=1)
    expected = classifier(a, labels, c, test_labels)
    assert classifier(a, beyond_int64(labels), c, beyond_int64(test_labels)) == expected
    # int64 training labels beside test labels of which one, no training event's, is beyond int64: a miss
    test_mixed = np.array([int(v) for v in test_labels], dtype=object)
    test_mixed[0] = 3 * BIG
    test_unseen = test_labels.copy()
    test_unseen[0] = 99
    assert classifier(a, labels, c, test_mixed) == classifier(a, labels, c, test_unseen)


def test_ties_of_the_k_nn_vote_go_to_the_smallest_label_beyond_int64_too():
    # two neighbours, one of each class: the smaller label wins, as for int64 labels
    train_x = np.array([[0.0], [1.0]])
    test_x = np.array([[0.5]])
    for train_y in ([BIG + 5, BIG + 1], [BIG + 1, BIG + 5]):
        y = np.array(train_y, dtype=object)
        assert knn_accuracy(train_x, y, test_x, np.array([BIG + 1], dtype=object), k=2) == 1.0


def test_the_anchors_take_split_labels_beyond_int64():
    # compute_anchors and knn_anchors refused them by train.labels, as the classifiers did
    a, b, labels = two_views(60)
    c, d, test_labels = two_views(30, seed=1)
    small = split(a, b, labels), split(c, d, test_labels)
    big = split(a, b, beyond_int64(labels)), split(c, d, beyond_int64(test_labels))
    assert anchors.knn_anchors(*big, k=3) == anchors.knn_anchors(*small, k=3)
    assert evaluation.compute_anchors(*big, multiview=[], k=3) == evaluation.compute_anchors(*small, multiview=[], k=3)


# ------------------------------------------------------------ BLAS threads


def test_exact_cca_gives_the_same_bits_on_any_number_of_blas_threads():
    # on OpenBLAS's default threads (two here) the correlations, weights and scores differed in their last
    # bits from those on one thread, the ones compute_anchors computed
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 240))
    y = x[:, :60] @ rng.normal(size=(60, 76)) + rng.normal(size=(1500, 76))
    bits = set()
    for threads in (1, 2, 4):
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            cca = evaluation.ExactCCA(10).fit(x, y)
            x_scores, y_scores = cca.transform(x, y)
        bits.add(b"".join(v.tobytes() for v in (cca.correlations_, cca.x_weights_, cca.y_weights_, x_scores, y_scores)))
    assert len(bits) == 1


@pytest.mark.parametrize("scales", [{0: 1e30}, {2: 1e-3}, {0: 1e300, 1: 1e-300}, {1: 1e-30, 3: 1e12}])
def test_exact_cca_does_not_depend_on_the_unit_of_a_column(scales):
    """The ridge was one number for the whole view (reg times the mean
    variance): a column 1e30 times the others made it 1e60 times their
    variances, and the correlations came out [0.15, 2e-27, ...] where CCA's
    are all near 1 (a column 1000 times smaller was already shrunk). Each
    column is now brought to one scale first, by a power of two."""
    from grapheme_multimodal.evaluation import ExactCCA

    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 4))
    x, y = z @ rng.normal(size=(4, 4)), z @ rng.normal(size=(4, 5)) + 0.01 * rng.normal(size=(500, 5))
    plain = ExactCCA(4).fit(x, y)
    scaled_x = x.copy()
    for column, scale in scales.items():
        scaled_x[:, column] *= scale
    scaled = ExactCCA(4).fit(scaled_x, y)
    np.testing.assert_allclose(scaled.correlations_, plain.correlations_, rtol=1e-5)
    # its scores correlate with the other view's as the plain fit says (unit variance each, on fit's rows)
    x_scores, y_scores = scaled.transform(scaled_x, y)
    np.testing.assert_allclose(np.sum(x_scores * y_scores, axis=0) / (len(x) - 1), plain.correlations_, rtol=1e-5)

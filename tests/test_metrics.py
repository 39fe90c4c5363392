"""Retrieval, k-NN and ROC-AUC metrics on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grapheme_multimodal.metrics import cross_view_retrieval, knn_accuracy, linear_probe_accuracy, roc_auc

METRICS = ("cosine", "euclidean")


def _reference_nearest(query, gallery, metric):
    """Per-row loop reference for the vectorised nearest-gallery search."""
    nearest = []
    for q in query:
        if metric == "cosine":
            d = [1 - q @ g / (np.linalg.norm(q) * np.linalg.norm(g)) for g in gallery]
        else:
            d = [np.linalg.norm(q - g) for g in gallery]
        nearest.append(int(np.argmin(d)))
    return np.array(nearest)


# --- cross_view_retrieval ------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_identical_distinct_query_and_gallery_give_perfect_scores(metric):
    x = np.random.default_rng(0).normal(size=(30, 5))
    result = cross_view_retrieval(x, x.copy(), np.arange(30) % 3, metric=metric)
    assert result == {"class_precision_at_1": 1.0, "instance_recall_at_1": 1.0}


@pytest.mark.parametrize("metric", METRICS)
def test_constructed_case_has_known_precision_and_recall(metric):
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    labels = np.array([0, 0, 1, 1])
    query = np.array([
        [0.9, 0.1],   # -> 0: own event
        [1.0, 0.2],   # -> 0: other event, same class
        [0.0, 1.0],   # -> 1: other event, other class (label 1 vs 0)
        [0.1, -1.0],  # -> 3: own event
    ])
    result = cross_view_retrieval(query, gallery, labels, metric=metric)
    assert result["class_precision_at_1"] == pytest.approx(3 / 4)
    assert result["instance_recall_at_1"] == pytest.approx(2 / 4)


def test_cosine_ignores_scale_and_euclidean_does_not():
    gallery = np.array([[10.0, 0.0], [0.5, 0.5]])
    query = np.array([[1.0, 0.0], [0.5, 0.5]])
    labels = np.array([0, 1])
    # Query 0 points along gallery 0 (cosine) but lies closer to gallery 1 (euclidean).
    cosine = cross_view_retrieval(query, gallery, labels, metric="cosine")
    euclidean = cross_view_retrieval(query, gallery, labels, metric="euclidean")
    assert cosine["instance_recall_at_1"] == 1.0
    assert euclidean["instance_recall_at_1"] == 0.5
    assert euclidean["class_precision_at_1"] == 0.5


def test_exact_ties_go_to_the_lowest_gallery_index():
    gallery = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    query = gallery.copy()
    # Query 1 ties between gallery 0 and 1 -> gallery 0 (another event).
    result = cross_view_retrieval(query, gallery, np.array([0, 1, 2]), metric="euclidean")
    assert result["instance_recall_at_1"] == pytest.approx(2 / 3)
    assert result["class_precision_at_1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_chunked_search_matches_a_per_row_reference(metric, chunk_size):
    rng = np.random.default_rng(3)
    query = rng.normal(size=(41, 6)).astype(np.float32)
    gallery = query + rng.normal(scale=1.2, size=query.shape).astype(np.float32)
    labels = rng.integers(0, 4, size=41)
    nearest = _reference_nearest(query.astype(np.float64), gallery.astype(np.float64), metric)
    result = cross_view_retrieval(query, gallery, labels, metric=metric, chunk_size=chunk_size)
    assert result["class_precision_at_1"] == pytest.approx(np.mean(labels[nearest] == labels))
    assert result["instance_recall_at_1"] == pytest.approx(np.mean(nearest == np.arange(41)))
    assert 0.0 < result["instance_recall_at_1"] < 1.0  # the case is not trivial


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(2, 12), st.just(3)),
               elements=st.floats(-10, 10, allow_nan=False)),
    st.randoms(use_true_random=False),
)
def test_scores_do_not_depend_on_the_order_of_events(x, random):
    """Relabelling events (same permutation of query, gallery and labels) keeps the scores."""
    n = x.shape[0]
    gallery = x[::-1].copy() + 0.5
    labels = np.arange(n) % 2
    perm = np.array(random.sample(range(n), n))
    # Ties would be broken by index and could change under a permutation.
    d = ((x[:, None, :] - gallery[None]) ** 2).sum(-1)
    sorted_d = np.sort(d, axis=1)
    if n > 1 and np.any(sorted_d[:, 1] - sorted_d[:, 0] < 1e-9):
        return
    before = cross_view_retrieval(x, gallery, labels, metric="euclidean")
    after = cross_view_retrieval(x[perm], gallery[perm], labels[perm], metric="euclidean")
    assert after == pytest.approx(before)


@pytest.mark.parametrize("scale, offset", [(1.0, 1e4), (1.0, 1e7), (1.0, -1e9), (1e-200, 1e-191), (1e240, 1e249)])
def test_euclidean_retrieval_does_not_depend_on_where_the_rows_lie(scale, offset):
    # ||g||^2 - 2 q.g ranked the distances: rows sharing an offset of 1e9 that differ by 0.01
    # lost every difference to rounding (precision 0.47 instead of 1.0, neighbours arbitrary)
    rng = np.random.default_rng(0)
    query = rng.normal(size=(60, 4)) * 0.01
    gallery = query + 1e-4 * rng.normal(size=(60, 4))
    labels = np.arange(60) % 3
    shifted = cross_view_retrieval(query * scale + offset, gallery * scale + offset, labels, metric="euclidean")
    assert shifted == cross_view_retrieval(query, gallery, labels, metric="euclidean")
    assert shifted["instance_recall_at_1"] == 1.0  # each gallery row is its query's nearest, by far


@pytest.mark.parametrize("offset", [0.0, 1e6, -1e9])
def test_knn_accuracy_does_not_depend_on_where_the_rows_lie(offset):
    # scikit-learn's brute-force neighbours (chosen for more than 15 columns) compute
    # ||a||^2 - 2 a.b + ||b||^2: with an offset of 1e6 the accuracy fell from 1.0 to 0.59
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20))
    labels = np.arange(300) % 3
    train, test = (0.01 * (centres[labels] + 0.3 * rng.normal(size=(300, 20))) for _ in range(2))
    assert knn_accuracy(train + offset, labels, test + offset, labels) == 1.0


def test_retrieval_rejects_bad_input():
    x = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"^gallery: expected the shape of query, \(3, 2\) \(row-aligned events\), got \(4, 2\)$"):
        cross_view_retrieval(x, np.ones((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=r"^labels: expected shape \(3,\)"):
        cross_view_retrieval(x, x, np.zeros(2))
    with pytest.raises(ValueError, match=r"^metric: expected one of"):
        cross_view_retrieval(x, x, np.zeros(3), metric="manhattan")
    with pytest.raises(ValueError, match="query: row 0 holds NaN"):
        cross_view_retrieval(np.array([[np.nan, 1.0]] * 3), x, np.zeros(3))
    with pytest.raises(ValueError, match="gallery has 1 all-zero rows"):
        cross_view_retrieval(x, np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]), np.zeros(3))
    with pytest.raises(ValueError, match="2-D"):
        cross_view_retrieval(np.ones(3), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="chunk_size"):
        cross_view_retrieval(x, x, np.zeros(3), chunk_size=0)


# --- knn_accuracy ------------------------------------------------------------


def test_knn_accuracy_on_a_hand_made_case():
    pytest.importorskip("sklearn")
    train_x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    train_y = np.array([0, 0, 0, 1, 1, 1])
    # 0.5 -> {0,1,2} class 0 (right); 11.5 -> {10,11,12} class 1 (right);
    # 4.0 -> {2,1,0} (distances 2,3,4 vs 6) class 0, labelled 1 (wrong).
    test_x = np.array([[0.5], [11.5], [4.0]])
    test_y = np.array([0, 1, 1])
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=3) == pytest.approx(2 / 3)
    # 1-NN on the training points themselves is perfect.
    assert knn_accuracy(train_x, train_y, train_x, train_y, k=1) == 1.0


def test_knn_accuracy_rejects_bad_input():
    x, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match=r"^k: expected an int in \[1, 4\] \(the number of train rows\), got 5$"):
        knn_accuracy(x, y, x, y, k=5)
    with pytest.raises(ValueError, match="test_x has 3 columns"):
        knn_accuracy(x, y, np.zeros((2, 3)), np.zeros(2), k=1)
    with pytest.raises(ValueError, match=r"^train_y: expected shape \(4,\)"):
        knn_accuracy(x, np.zeros(3), x, y, k=1)


# --- linear_probe_accuracy -----------------------------------------------------


def test_linear_probe_separates_what_a_line_separates_and_no_more():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    y = (x[:, 0] + 0.5 * x[:, 3] > 0).astype(int)
    assert linear_probe_accuracy(x[:200], y[:200], x[200:], y[200:]) >= 0.9  # chance 0.5
    # XOR of two signs: no line separates it, so the probe stays near chance.
    xor = (x[:, 0] > 0) ^ (x[:, 1] > 0)
    assert linear_probe_accuracy(x[:200], xor[:200], x[200:], xor[200:]) < 0.7
    # Scaling a column changes nothing: the probe standardises its input.
    scaled = x * np.array([1000.0, 1, 1, 1e-3, 1])
    assert linear_probe_accuracy(scaled[:200], y[:200], scaled[200:], y[200:]) == linear_probe_accuracy(
        x[:200], y[:200], x[200:], y[200:]
    )


def test_linear_probe_rejects_bad_input():
    x, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="C: expected a positive number"):
        linear_probe_accuracy(x, y, x, y, C=0)
    with pytest.raises(ValueError, match="test_x has 3 columns"):
        linear_probe_accuracy(x, y, np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        linear_probe_accuracy(np.full((4, 2), np.nan), y, x, y)


# --- roc_auc -----------------------------------------------------------------


def test_roc_auc_matches_a_hand_count_with_a_tie():
    # Pairs (p, n): 3>0, 3>2 -> 2; 2>0, 2==2 -> 1.5; 1>0, 1<2 -> 1. Total 4.5 / 6.
    assert roc_auc(np.array([3, 2, 1]), np.array([0, 2])) == pytest.approx(0.75)


def test_roc_auc_extremes():
    assert roc_auc(np.array([5.0, 6.0]), np.array([1.0, 2.0])) == 1.0
    assert roc_auc(np.array([1.0, 2.0]), np.array([5.0, 6.0])) == 0.0
    assert roc_auc(np.full(4, 0.3), np.full(7, 0.3)) == 0.5


def test_roc_auc_matches_sklearn_with_many_ties():
    sk_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    pos = rng.integers(0, 20, size=300).astype(np.float32)
    neg = rng.integers(0, 15, size=500).astype(np.float32)
    expected = sk_metrics.roc_auc_score(
        np.r_[np.ones(pos.size), np.zeros(neg.size)], np.r_[pos, neg]
    )
    assert roc_auc(pos, neg) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-5, 5)),
    hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(-5, 5)),
)
def test_roc_auc_of_swapped_classes_is_the_complement(pos, neg):
    assert roc_auc(pos, neg) + roc_auc(neg, pos) == pytest.approx(1.0)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([np.int64, np.uint64, np.float64]),
    st.sampled_from([np.int64, np.uint64, np.float64]),
    st.data(),
)
def test_roc_auc_counts_wins_exactly_for_any_real_dtype(pos_dtype, neg_dtype, data):
    # The Mann-Whitney count with Python's exact comparisons: integer scores
    # past 2**53 were cast to float64 and tied where they differ.
    def scores(dtype):
        if dtype is np.float64:
            elements = st.floats(-2.0**64, 2.0**64, allow_nan=False)
        else:
            info = np.iinfo(dtype)
            near = st.integers(-3, 3).map(lambda d: (2**63 + d) if dtype is np.uint64 else (2**62 + d))
            elements = st.one_of(st.integers(int(info.min), int(info.max)), near)
        return np.array(data.draw(st.lists(elements, min_size=1, max_size=8)), dtype=dtype)

    pos, neg = scores(pos_dtype), scores(neg_dtype)
    wins = sum((p > n) + 0.5 * (p == n) for p in pos.tolist() for n in neg.tolist())
    assert roc_auc(pos, neg) == pytest.approx(wins / (pos.size * neg.size), abs=1e-12)


def test_roc_auc_rejects_bad_input():
    with pytest.raises(ValueError, match="^positive_scores: expected a non-empty 1-D"):
        roc_auc(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError, match="negative_scores contains NaN"):
        roc_auc(np.array([1.0]), np.array([np.nan]))

"""Oracles for the numbers the package computes: each figure against an
independent statement of it written here (brute-force numpy, exact
arithmetic, scikit-learn, a float64 closed form), on random and adversarial
inputs, and the invariances each one promises. Each test says what a user
saw before its fix, or which promise it pins beyond the earlier tests."""

from __future__ import annotations

import numpy as np
import pytest

from grapheme_multimodal.evaluation import ExactCCA, pairwise_cca_retrieval

pytest.importorskip("sklearn")


# ------------------------------------------------------------ ExactCCA: directions fit's rows do not span


def _flagged_views(rng: np.random.Generator, n: int, flag_rate: float):
    """Two views of one 3-d latent with classes; the first view's last
    column a rare 0/1 flag, set in ``flag_rate`` of the rows."""
    a, b = np.random.default_rng(7).normal(size=(2, 3, 6))
    labels = rng.integers(0, 3, size=n)
    z = rng.normal(size=(n, 3))
    z[:, 0] += 2 * labels
    x = z @ a[:, :4] + 0.3 * rng.normal(size=(n, 4))
    y = z @ b + 0.3 * rng.normal(size=(n, 6))
    x[:, 3] = rng.random(n) < flag_rate
    return x, y, labels


def test_exact_cca_gives_no_weight_to_a_direction_fits_rows_do_not_vary_in():
    """A column constant in fit's rows (a flag never set in training) is a
    direction of zero training variance: the ridge alone whitened it by
    1/sqrt(ridge), and a test row holding the flag got a canonical score of
    1153 in that component beside scores of about 3 in the others (whose
    correlation fit reported as 0), which took over the cosine retrieval of
    that row. Fit's rows span only 3 directions of the first view; the 4th
    component has nothing to correlate, and scores 0 in that view."""
    rng = np.random.default_rng(0)
    x_train, y_train, _ = _flagged_views(rng, 500, 0.0)
    x_test, y_test, _ = _flagged_views(rng, 300, 0.1)
    cca = ExactCCA(4).fit(x_train, y_train)
    assert cca.correlations_[3] < 1e-12
    x_scores, y_scores = cca.transform(x_test, y_test)
    assert np.abs(x_scores[:, 3]).max() < 1e-9
    assert np.abs(x_scores[:, :3]).max() < 10 and np.abs(y_scores).max() < 10
    # the components within the rank are those of the view without the flag column (the ridge is of its own columns)
    within = ExactCCA(3).fit(x_train[:, :3], y_train)
    np.testing.assert_allclose(cca.correlations_[:3], within.correlations_, rtol=1e-5)


@pytest.mark.parametrize("rows", [6, 12])
def test_exact_cca_of_fewer_rows_than_columns_scores_new_rows_only_in_the_directions_fit_saw(rows):
    """With fewer training rows than columns the rows span ``rows - 1``
    directions: a component past them scored new rows by 1/sqrt(ridge)
    times their parts outside that span (scores of 100 to 200 beside about
    1), and cosine retrieval on the scores fell to chance."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 3, 20))

    def views(n):
        z = rng.normal(size=(n, 3))
        return z @ a + 0.3 * rng.normal(size=(n, 20)), z @ b + 0.3 * rng.normal(size=(n, 20))

    cca = ExactCCA(15).fit(*views(rows))
    x_scores, y_scores = cca.transform(*views(200))
    spanned = rows - 1
    assert np.all(cca.correlations_[spanned:] < 1e-9)
    assert np.abs(x_scores[:, spanned:]).max() < 1e-9 and np.abs(y_scores[:, spanned:]).max() < 1e-9
    assert np.abs(x_scores).max() < 50 and np.abs(y_scores).max() < 50


def test_pairwise_cca_retrieval_past_a_views_training_rank_is_that_of_the_components_within_it():
    """compute_anchors' exact-CCA figures (pairwise_cca_retrieval) of a view
    with a flag never set in the training split: the 4th component scored
    the test rows holding the flag ~1000, and they retrieved (and were
    retrieved) by it alone. Past the rank the first view's scores are 0 now;
    the second view's component past the rank is one of zero correlation,
    as any CCA component beyond what the views share."""
    rng = np.random.default_rng(0)
    x_train, y_train, _ = _flagged_views(rng, 500, 0.0)
    x_test, y_test, labels = _flagged_views(rng, 300, 0.1)
    train, test = {"x": x_train, "y": y_train}, {"x": x_test, "y": y_test}
    cca = ExactCCA(4).fit(x_train, y_train)
    x_scores, y_scores = cca.transform(x_test, y_test)
    got = pairwise_cca_retrieval(train, test, labels, n_components=4)
    from grapheme_multimodal.metrics import cross_view_retrieval

    assert got["x->y"] == cross_view_retrieval(x_scores, y_scores, labels)
    # every test row, flagged or not, scores as in a fit without the flag column (up to each component's sign)
    unflagged = ExactCCA(3).fit(x_train[:, :3], y_train).transform(x_test[:, :3])
    signs = np.sign(np.sum(x_scores[:, :3] * unflagged, axis=0))
    np.testing.assert_allclose(x_scores[:, :3] * signs, unflagged, atol=1e-4)
    assert np.abs(x_scores[:, 3]).max() < 1e-9 and (x_test[:, 3] == 1).sum() > 10


# ------------------------------------------------------------ retrieval: exact ties, on the rows as given

from nearest_oracle import exact_nearest  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from grapheme_multimodal.metrics import cross_view_retrieval  # noqa: E402


def _exact_nearest(query: np.ndarray, gallery: np.ndarray, metric: str) -> np.ndarray:
    """Each query row's nearest gallery row in exact rational arithmetic on
    the values as given, the lowest index on a tie: the documented
    definition, with nothing rounded (tests/nearest_oracle.py)."""
    return np.array(exact_nearest(query, gallery, metric))


def _figures(nearest: np.ndarray, labels: np.ndarray) -> dict:
    return {"class_precision_at_1": float(np.mean(labels[nearest] == labels)),
            "instance_recall_at_1": float(np.mean(nearest == np.arange(len(labels))))}


@pytest.mark.parametrize("first, second, direction", [(1, 3, [1.0, 1.0]), (1, 7, [1.0, 3.0]), (2, 5, [1.0, 2.0, 3.0]),
                                                      (3, 1, [1.0, 1.0]), (6, 1, [1.0, 1.0])])
def test_cosine_ties_of_gallery_rows_of_one_direction_go_to_the_lowest_index(first, second, direction):
    """Gallery rows ``first * v`` and ``second * v`` have the same cosine
    with every query, and both queries (v and -v) find row 0. Their unit
    rows round apart, and both queries found whichever rounded nearer: with
    [1, 1] and [3, 3] both found row 1 (P@1 and R@1 0.0 instead of 0.5),
    with [1, 1, 1] and [3, 3, 3] each its own (1.0), where the rule is the
    lowest gallery index."""
    v = np.array(direction)
    gallery = np.array([first * v, second * v])
    got = cross_view_retrieval(np.array([v, -v]), gallery, np.array([0, 1]), metric="cosine")
    assert got == {"class_precision_at_1": 0.5, "instance_recall_at_1": 0.5}


def test_euclidean_ties_of_rows_on_a_grid_of_0_1_go_to_the_lowest_index():
    """[-0.1, -0.2] lies exactly as far from [-0.4, 0.2] as from
    [0.4, -0.2] (0.3^2 + 0.4^2 = 0.5^2 in the float64 values too), but the
    squared differences computed alike rounded apart and the query found
    row 1."""
    query = np.array([[-0.1, -0.2], [0.4, -0.2]])
    gallery = np.array([[-0.4, 0.2], [0.4, -0.2]])
    assert cross_view_retrieval(query, gallery, np.array([0, 1]), metric="euclidean") == {
        "class_precision_at_1": 1.0, "instance_recall_at_1": 1.0}


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 3), st.sampled_from([1.0, 0.1, 0.3, 2.0**-600, 1e150]),
       st.sampled_from(["cosine", "euclidean"]), st.integers(0, 2**32 - 1))
def test_retrieval_finds_the_exact_nearest_row_of_the_values_as_given(n, d, unit, metric, seed):
    """On rows of small integers times ``unit`` (ties abound, and 0.1 or
    0.3 makes every difference and length round), with some gallery rows
    repeated and, for cosine, some rows scaled by 2 to 5 (same direction):
    P@1 and R@1 are those of the exact nearest rows, in rational arithmetic
    on the float64 values, the lowest index on a tie; the same for the
    gallery in float32 where the values are float32 too (unit 1)."""
    rng = np.random.default_rng(seed)
    query = rng.integers(-3, 4, size=(n, d)).astype(float)
    gallery = rng.integers(-3, 4, size=(n, d)).astype(float)
    if n > 2:
        gallery[rng.integers(0, n, size=n // 3)] = gallery[rng.integers(0, n)]
    if metric == "cosine":
        query[~query.any(axis=1), 0] = 1.0
        gallery[~gallery.any(axis=1), -1] = -1.0
        gallery *= rng.integers(1, 6, size=(n, 1)) ** (rng.random((n, 1)) < 0.5)
    query, gallery = query * unit, gallery * unit
    labels = rng.integers(0, 3, size=n)
    want = _figures(_exact_nearest(query, gallery, metric), labels)
    assert cross_view_retrieval(query, gallery, labels, metric=metric) == want
    if unit == 1.0:
        assert cross_view_retrieval(query.astype(np.float32), gallery.astype(np.float32), labels, metric=metric) == want


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 9), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_cosine_retrieval_does_not_depend_on_the_length_of_a_row(n, d, seed):
    """Cosine reads a row's direction alone: each gallery and query row
    scaled by its own positive factor (integers, 1/3, 1e-5 ...) gives the
    same P@1 and R@1. Rows of one direction were found by how their unit
    rows rounded, which the factors changed."""
    rng = np.random.default_rng(seed)
    query = rng.integers(-2, 3, size=(n, d)).astype(float)
    gallery = rng.integers(-2, 3, size=(n, d)).astype(float)
    query[~query.any(axis=1), 0] = 1.0
    gallery[~gallery.any(axis=1), 0] = 1.0
    labels = rng.integers(0, 3, size=n)
    want = cross_view_retrieval(query, gallery, labels)
    assert want == _figures(_exact_nearest(query, gallery, "cosine"), labels)
    factors = rng.choice([1.0, 2.0, 3.0, 7.0, 1 / 3, 1e-5, 1e5], size=(2, n, 1))
    # exact multiples of the integer rows only where the factor keeps them exact (1/3 and 1e-5 round)
    exact = np.all(factors == np.round(factors), axis=(1, 2))
    scaled = cross_view_retrieval(query * factors[0], gallery * factors[1], labels)
    if exact.all():
        assert scaled == want
    assert scaled == _figures(_exact_nearest(query * factors[0], gallery * factors[1], "cosine"), labels)


# ------------------------------------------------------------ ExactCCA against its closed form (held)


def _closed_form_cca(x: np.ndarray, y: np.ndarray, k: int, reg: float):
    """The textbook regularised CCA in float64: centre, whiten each view by
    ``(C + reg * trace(C) / d * I)^(-1/2)``, SVD of the whitened cross-covariance."""
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    n = len(x)

    def inverse_sqrt(c):
        values, vectors = np.linalg.eigh(c)
        return (vectors / np.sqrt(np.maximum(values, 0) + reg * np.trace(c) / len(c))) @ vectors.T

    wx, wy = inverse_sqrt(x.T @ x / (n - 1)), inverse_sqrt(y.T @ y / (n - 1))
    u, s, vt = np.linalg.svd(wx @ (x.T @ y / (n - 1)) @ wy)
    return s[:k], wx @ u[:, :k], wy @ vt[:k].T


@settings(max_examples=25, deadline=None)
@given(st.integers(8, 120), st.integers(1, 5), st.integers(1, 5), st.sampled_from([1e-8, 1e-6, 1e-3, 0.3]),
       st.integers(0, 2**32 - 1))
def test_exact_cca_is_its_closed_form_and_keeps_its_invariances(n, p, q, reg, seed):
    """On views whose columns have one root mean square (ExactCCA scales
    columns by powers of two, which the ridge sees; here they are all one),
    the correlations and the weights (up to each component's sign) are the
    closed form's; the scores of fit's rows have the correlations as their
    covariance. Swapping the views, permuting the rows, an affine map of a
    view's columns, float32 values and Fortran order keep the correlations."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    x = z @ rng.normal(size=(2, p)) + rng.normal(size=(n, p))
    y = z @ rng.normal(size=(2, q)) + rng.normal(size=(n, q))
    x, y = (x - x.mean(axis=0)) / x.std(axis=0), (y - y.mean(axis=0)) / y.std(axis=0)
    k = int(rng.integers(1, min(p, q) + 1))
    cca = ExactCCA(k, reg=reg).fit(x, y)
    s, wx, wy = _closed_form_cca(x, y, k, reg)
    np.testing.assert_allclose(cca.correlations_, s, rtol=1e-9, atol=1e-12)
    # the weights of a component are the closed form's only where its correlation stands apart from the
    # others: of equal ones (n <= p + q rows give several near 1) any rotation is a solution, rounding picks one
    every = _closed_form_cca(x, y, min(p, q), reg)[0]
    apart = np.array([min(abs(every[i] - every[j]) for j in range(len(every)) if j != i) > 1e-4 if len(every) > 1
                      else True for i in range(k)])
    signs = np.sign(np.sum(cca.x_weights_ * wx, axis=0))
    np.testing.assert_allclose((cca.x_weights_ * signs)[:, apart], wx[:, apart], rtol=1e-7, atol=1e-9 * np.abs(wx).max())
    np.testing.assert_allclose((cca.y_weights_ * signs)[:, apart], wy[:, apart], rtol=1e-7, atol=1e-9 * np.abs(wy).max())
    xs, ys = cca.transform(x, y)
    np.testing.assert_allclose(np.sum(xs * ys, axis=0) / (n - 1), cca.correlations_, rtol=1e-7, atol=1e-10)

    # a ridge of 1e-10: the default's shrinks columns scaled by other powers of two (the affine map) by ~1e-6
    plain = ExactCCA(k, reg=1e-10).fit(x, y).correlations_
    perm = rng.permutation(n)
    affine = x * rng.uniform(0.5, 3, size=p) + rng.normal(size=p) * 100
    for other in (ExactCCA(k, reg=1e-10).fit(y, x), ExactCCA(k, reg=1e-10).fit(x[perm], y[perm]),
                  ExactCCA(k, reg=1e-10).fit(affine, y)):
        np.testing.assert_allclose(other.correlations_, plain, rtol=1e-6, atol=1e-9)
    # float32 values are other data, each value moved by up to 6e-8 of it: a correlation moves by about that
    # much, absolutely (0.0013 by 5e-9 in one draw, 4e-6 of it, past a relative tolerance alone)
    single = ExactCCA(k, reg=1e-10).fit(x.astype(np.float32), y).correlations_
    np.testing.assert_allclose(single, plain, rtol=1e-6, atol=1e-6)
    fortran = ExactCCA(k, reg=1e-10).fit(np.asfortranarray(x), y[:, ::-1][:, ::-1])
    assert fortran.correlations_.tobytes() == plain.tobytes()


# ------------------------------------------------------------ the estimator: copies transform alike (held)


@pytest.mark.parametrize("options", [{"n_members": 2}, {"output": "hidden"}])
def test_a_pickled_or_copied_fitted_estimator_transforms_to_the_same_bits(options):
    """A fitted MultimodalEmbedder pickled, deep-copied, or cloned and
    refitted with the same random_state transforms to the same bits, as do
    its views in Fortran order, strided, or one row at a time."""
    import copy
    import pickle

    from sklearn.base import clone

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 2))
    views = [z @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(40, 5)), z @ rng.normal(size=(2, 3)) + 4]
    est = MultimodalEmbedder(embed_dim=4, hidden_dim=4, num_heads=1, epochs=2, batch_size=20, encoder_hidden=(4,),
                             shared_head=(4,), random_state=3, **options).fit(views)
    want = est.transform(views).tobytes()
    for twin in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est), clone(est).fit(views)):
        assert twin.transform(views).tobytes() == want
    assert est.transform([np.asfortranarray(v) for v in views]).tobytes() == want
    assert est.transform([np.repeat(v, 2, axis=0)[::2] for v in views]).tobytes() == want
    assert np.vstack([est.transform([v[i:i + 1] for v in views]) for i in range(40)]).tobytes() == want


def test_a_test_row_differing_from_the_training_mean_only_in_a_constant_column_is_refused_by_name():
    """Such a row has no canonical direction: within the view's rank its
    scores were 0 already (and refused), but past it the 4th component gave
    it a score of 709 and the retrieval a figure of that alone. Refused
    alike now, naming the row and why."""
    import grapheme_multimodal as gm

    rng = np.random.default_rng(0)
    x_train, y_train, _ = _flagged_views(rng, 200, 0.0)
    x_test, y_test, _ = _flagged_views(rng, 20, 0.0)
    x_test[0] = x_train.mean(axis=0)
    x_test[0, 3] = 1.0
    with pytest.raises(gm.InvalidValueError, match=r"^test_std\['x'\]: the canonical scores of 1 row\(s\) \(first: row 0\) "
                                                   r"are all zero.*differs from it only where the training rows do not "
                                                   r"vary, such as a column constant over them\)$"):
        pairwise_cca_retrieval({"x": x_train, "y": y_train}, {"x": x_test, "y": y_test}, np.arange(20) % 3, n_components=4)


# main_only (.ci/python-versions.sh): the core's nearest rows of float64 arrays against exact arithmetic,
# the same on every Python
@pytest.mark.main_only
@settings(max_examples=40, deadline=None)
@given(st.integers(3, 40), st.integers(1, 4), st.sampled_from(["cosine", "euclidean"]),
       st.sampled_from([1.7e9, 1.0, 3e-30, 2.0**100]), st.integers(0, 2**32 - 1))
def test_rows_a_column_dominates_find_the_exact_nearest(n, d, metric, scale, seed):
    """A column that dominates every row (timestamps near 1.7e9, a few
    values, beside features on a grid of 0.1: exact ties abound, repeated
    rows too), and the same at other scales: every cosine lies within
    float64's rounding of the best, and the rows found are still the exact
    nearest, the lowest index on a tie."""
    rng = np.random.default_rng(seed)
    stamps = scale + rng.integers(0, 3, size=(2 * n, 1)) * (scale / 1e9)
    rows = np.hstack([stamps, rng.integers(-3, 4, size=(2 * n, d)) * 0.1])
    query, gallery = rows[:n], rows[n:]
    if n > 3:
        gallery[rng.integers(0, n, size=n // 3)] = gallery[rng.integers(0, n)]
    labels = np.arange(n) % 4
    want = _figures(_exact_nearest(query, gallery, metric), labels)
    assert cross_view_retrieval(query, gallery, labels, metric=metric) == want


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

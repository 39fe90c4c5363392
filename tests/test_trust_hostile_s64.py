"""A hostile review (s64) of the public surfaces hardened least: the
metrics, the evaluation protocols and ``ExactCCA``, the ensembles, weight
averaging, the plots, the data sets and the graphs. Each test says what a
user saw before the fix."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.evaluation import ExactCCA


def _paired_views(seed, rows=20, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)) * scale + shift
    return x, x[:, :3] + 0.1 * rng.normal(size=(rows, 3))


def test_exact_cca_transform_of_both_views_scores_them_with_one_fit_when_refit_meanwhile():
    """``transform(X, Y)`` read the fitted attributes one by one: a refit
    between the scores of X and those of Y (another thread sharing the
    estimator; here X's own reading, deterministically) gave X's scores of
    the old fit and Y's of the new, a pair of no fit, without a word. One
    snapshot of the fit is read now (and fit sets its state in one update)."""
    x, y = _paired_views(0)
    x2, y2 = _paired_views(1, rows=30, shift=3.0, scale=5.0)
    cca = ExactCCA(2).fit(x, y)
    old_x, old_y = cca.transform(x, y)

    class RefitsWhenRead:
        def __array__(self, dtype=None, copy=None):
            cca.fit(x2, y2)
            return x

    got_x, got_y = cca.transform(RefitsWhenRead(), y)
    np.testing.assert_array_equal(got_x, old_x)
    np.testing.assert_array_equal(got_y, old_y)
    new_y = ExactCCA(2).fit(x2, y2).transform(x, y)[1]
    np.testing.assert_array_equal(cca.transform(x, y)[1], new_y)  # the refit itself took

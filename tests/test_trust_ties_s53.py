"""The exact tie rule of ``cross_view_retrieval`` decided in the core
(``_core.exact_nearest``: a double-double pass with a rigorous bound, then
exact sums on the values' integer significands), against rational
arithmetic on the float64 values: rows a column dominates (every gallery
row a candidate of every query, which took a minute for 5,000 rows in
Python integers), 1e300 beside 1e-300, mixed float32 and float64, negative
dots, zero rows, copies and multiples of rows, both metrics, and the same
under the portable kernels."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grapheme_multimodal import _core
from grapheme_multimodal._exact_ties import ExactTies
from grapheme_multimodal.metrics import cross_view_retrieval
from nearest_oracle import exact_nearest


def _core_nearest(query: np.ndarray, gallery: np.ndarray, metric: str) -> list:
    """Each query row's nearest gallery row as the core decides it, every gallery row a candidate."""
    q, g = (np.ascontiguousarray(a, dtype=np.float64) for a in (query, gallery))
    every = np.arange(len(g), dtype=np.int64)
    return [_core.exact_nearest(q, i, g, every, metric == "cosine") for i in range(len(q))]


def _figures(nearest, labels: np.ndarray) -> dict:
    nearest = np.asarray(nearest)
    return {"class_precision_at_1": float(np.mean(labels[nearest] == labels)),
            "instance_recall_at_1": float(np.mean(nearest == np.arange(len(labels))))}


def _dominated(rng: np.random.Generator, n: int, d: int, scale: float, tiny: float) -> "tuple[np.ndarray, np.ndarray]":
    """Rows whose first column (about ``scale``, a few values) dominates
    small features (a grid of ``tiny``), with copies and multiples of gallery rows."""
    stamps = scale + rng.integers(0, 3, size=(2 * n, 1)) * (scale / 1e9)
    rows = np.hstack([stamps, rng.integers(-3, 4, size=(2 * n, d)) * tiny])
    query, gallery = rows[:n], rows[n:].copy()
    if n > 3:
        gallery[rng.integers(0, n, size=n // 3)] = gallery[rng.integers(0, n)]
        twice = rng.integers(0, n, size=n // 5)
        gallery[twice] = gallery[rng.integers(0, n, size=twice.size)] * rng.choice([2.0, -1.0, 0.5], size=(twice.size, 1))
    return query, gallery


# main_only (.ci/python-versions.sh): the core's exact rule against rational arithmetic, float64 arrays in,
# the same on every Python (the dtype tests below run everywhere)
@pytest.mark.main_only
@settings(max_examples=60, deadline=None)
@given(st.integers(2, 30), st.integers(1, 4), st.sampled_from(["cosine", "euclidean"]),
       st.sampled_from([(1.7e9, 0.1), (1e300, 1e-300), (1.0, 1e-300), (2.0**100, 3e-30), (1e-300, 1e-310)]),
       st.integers(0, 2**32 - 1))
def test_the_core_finds_the_exact_nearest_where_a_column_dominates(n, d, metric, scales, seed):
    """Every gallery row a candidate of every query (a timestamp beside
    features on a grid, 1e300 beside 1e-300, subnormal features): the core's
    choice is the rational oracle's, the lowest index on a tie."""
    query, gallery = _dominated(np.random.default_rng(seed), n, d, *scales)
    assert _core_nearest(query, gallery, metric) == exact_nearest(query, gallery, metric)


@pytest.mark.main_only  # as the test above
@settings(max_examples=30, deadline=None)
@given(st.integers(4, 30), st.integers(1, 3), st.sampled_from(["cosine", "euclidean"]),
       st.sampled_from([(1.7e9, 0.1), (1e300, 1e-300), (-1.7e9, 0.1)]), st.integers(0, 2**32 - 1))
def test_retrieval_on_dominated_rows_gives_the_exact_figures(n, d, metric, scales, seed):
    """End to end, labels of many classes (so a row found wrongly shows):
    P@1 and R@1 are those of the rational oracle's rows."""
    rng = np.random.default_rng(seed)
    query, gallery = _dominated(rng, n, d, *scales)
    labels = rng.integers(0, max(2, n // 2), size=n)
    assert cross_view_retrieval(query, gallery, labels, metric=metric) == _figures(exact_nearest(query, gallery, metric), labels)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_huge_beside_tiny_rows_decide_below_float64s_reach(metric):
    """1e300 beside 1e-300 in every row: the cosines differ in about the
    4000th bit, and the nearest is still the exact one; a negative tiny
    part finds the row on its own side."""
    query = np.array([[1e300, 1e-300], [1e300, -1e-300], [1e300, 3e-300]])
    gallery = np.array([[1e300, 2e-300], [1e300, 1e-300], [1e300, 0.0]])
    want = exact_nearest(query, gallery, metric)
    assert want == [1, 2, 0]
    assert _core_nearest(query, gallery, metric) == want
    assert cross_view_retrieval(query, gallery, np.arange(3), metric=metric) == _figures(want, np.arange(3))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_float32_beside_float64_is_decided_on_the_values_as_given(metric):
    """A float32 query and a float64 gallery (float32 values are float64
    values exactly): the rows found are the oracle's on the values as given."""
    rng = np.random.default_rng(5)
    query = (1e4 + rng.integers(-3, 4, size=(25, 3)) * 0.1).astype(np.float32)
    gallery = query.astype(np.float64)[rng.permutation(25)]
    gallery[::3] += rng.integers(-1, 2, size=(9, 3)) * 2.0**-10
    want = exact_nearest(query, gallery, metric)
    labels = np.arange(25)
    assert cross_view_retrieval(query, gallery, labels, metric=metric) == _figures(want, labels)
    assert cross_view_retrieval(query.astype(np.float64), gallery, labels, metric=metric) == _figures(want, labels)


def test_negative_dots_find_the_least_negative_cosine():
    """Every cosine negative and within rounding of the best: the largest
    (least negative) is found, as the oracle finds it."""
    rng = np.random.default_rng(3)
    query = np.hstack([np.full((20, 1), 1.7e9), rng.integers(-3, 4, size=(20, 2)) * 0.1])
    gallery = -np.hstack([1.7e9 + rng.integers(0, 2, size=(20, 1)) * 1.7, rng.integers(-3, 4, size=(20, 2)) * 0.1])
    want = exact_nearest(query, gallery, "cosine")
    assert _core_nearest(query, gallery, "cosine") == want
    labels = np.arange(20)
    assert cross_view_retrieval(query, gallery, labels) == _figures(want, labels)


def test_zero_rows_and_copies_tie_to_the_lowest_index():
    """Euclidean with all-zero rows and copies in the gallery: the lowest
    index among the equally near rows; a zero query finds the smallest row."""
    query = np.array([[0.0, 0.0], [0.1, 0.2], [0.3, -0.1], [1e-300, 0.0]])
    gallery = np.array([[0.2, 0.4], [0.0, 0.0], [0.0, 0.0], [0.2, 0.4], [0.4, -0.2], [0.2, 0.0]])
    want = exact_nearest(query, gallery, "euclidean")
    assert want == [1, 0, 5, 1]
    assert _core_nearest(query, gallery, "euclidean") == want
    tie = ExactTies("euclidean", query, gallery)
    assert tie.nearest(1, np.array([0, 1, 2, 3])) == 0 and tie.nearest(0, np.array([1, 2])) == 1


def test_integers_beyond_float64_still_decide_in_python_integers():
    """int64 values past 2**53 (which float64 rounds) keep the exact path in
    Python integers: the row found is the oracle's on the integers."""
    big = 2**60
    query = np.array([[big, 1]], dtype=np.int64)
    gallery = np.array([[big, 0], [big, 1], [big + 1, 1]], dtype=np.int64)
    assert ExactTies("euclidean", query, gallery).nearest(0, np.array([0, 1, 2])) == 1
    assert ExactTies("cosine", query, gallery).nearest(0, np.array([0, 1, 2])) == 1


def test_the_core_refuses_what_it_cannot_decide():
    """Wrong row, no candidates, candidates past the gallery, non-finite
    values: a ValueError, never a panic."""
    q = np.ones((2, 3))
    with pytest.raises(ValueError):
        _core.exact_nearest(q, 2, q, np.array([0], dtype=np.int64), True)
    with pytest.raises(ValueError):
        _core.exact_nearest(q, 0, q, np.array([], dtype=np.int64), True)
    with pytest.raises(ValueError):
        _core.exact_nearest(q, 0, q, np.array([0, 2], dtype=np.int64), False)
    with pytest.raises(ValueError):
        _core.exact_nearest(q, 0, np.ones((2, 2)), np.array([0], dtype=np.int64), False)
    bad = q.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError):
        _core.exact_nearest(q, 0, bad, np.array([0, 1], dtype=np.int64), False)
    # a block's rows: scores of another gallery, rows past the block, a threshold short, a block past the query
    scores, rows, thresholds = np.zeros((2, 2)), np.array([0, 1], dtype=np.int64), np.zeros(2)
    assert _core.exact_nearest_rows(q, q, 1.0, scores, 0, rows, thresholds, True).tolist() == [0, 0]
    for args in [(q, q, 1.0, np.zeros((2, 3)), 0, rows, thresholds), (q, q, 1.0, scores, 0, rows + 1, thresholds),
                 (q, q, 1.0, scores, 0, rows, np.zeros(1)), (q, q, 1.0, scores, 1, rows, thresholds),
                 (q, np.ones((2, 2)), 1.0, scores, 0, rows, thresholds)]:
        with pytest.raises(ValueError):
            _core.exact_nearest_rows(*args, True)
    # no score within a row's threshold: -1 (the search keeps the row it found)
    assert _core.exact_nearest_rows(q, q, 1.0, scores, 0, rows, np.array([1.0, 0.0]), True).tolist() == [-1, 0]


PORTABLE_CHECK = r"""
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_trust_ties_s53 import _core_nearest, _dominated, exact_nearest
from grapheme_multimodal import _core
assert _core.kernel_path() == {path!r}, _core.kernel_path()
for seed in range(12):
    for scales in [(1.7e9, 0.1), (1e300, 1e-300)]:
        for metric in ["cosine", "euclidean"]:
            q, g = _dominated(np.random.default_rng(seed), 12, 2, *scales)
            assert _core_nearest(q, g, metric) == exact_nearest(q, g, metric), (seed, scales, metric)
print("ok")
"""


# main_only: which kernels the core runs is the core's, the same on every Python
@pytest.mark.main_only
@pytest.mark.parametrize("portable", ["1", "0"])
def test_the_same_rows_under_the_portable_kernels(portable):
    """GRAPHEME_MM_PORTABLE=1 (and not): the core's choices are the oracle's."""
    here = os.path.dirname(os.path.abspath(__file__))
    probe = subprocess.run([sys.executable, "-c", "from grapheme_multimodal import _core; print(_core.kernel_path())"],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "GRAPHEME_MM_PORTABLE": portable})
    assert probe.returncode == 0, probe.stderr
    path = probe.stdout.strip()
    if portable == "1":
        assert path == "portable"
    code = textwrap.dedent(PORTABLE_CHECK).format(tests=here, path=path)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GRAPHEME_MM_PORTABLE": portable})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]

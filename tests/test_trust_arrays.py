"""Array-likes from a hostile pass over what the public API takes (labels of
mixed kinds, pyarrow tables, duplicate column names, array-likes that read
otherwise each time, broadcast views, single objects): the same results as
the plain array, or a refusal naming the argument.

Each test failed before its fix."""

from __future__ import annotations

import decimal
import re

import numpy as np
import pandas as pd
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import InvalidValueError, TooLargeError, metrics
from grapheme_multimodal.stopping import fit_with_stopping

pa = pytest.importorskip("pyarrow")

N, D = 40, 4
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, D))
A = RNG.normal(size=(N, D))
Y = np.arange(N) % 3
FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, batch_size=32, validation_fraction=0.0, patience=0)


def small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, input_dims={"visual": D, "auditory": D})


# ------------------------------------------------ labels of mixed kinds
@pytest.mark.parametrize("labels", [
    [1 if i % 2 else "1" for i in range(N)],  # numpy reads the list as strings: '1' and '1', one class
    np.array([1 if i % 2 else "1" for i in range(N)], dtype=object),  # as objects, two classes
    [int(v) if i % 2 else f"c{v}" for i, v in enumerate(Y)],
    [b"a" if i % 2 else "a" for i in range(N)],
])
def test_labels_mixing_strings_with_numbers_are_refused_not_read_as_one_kind(labels) -> None:
    # The list's retrieval scored class precision 1.0 (1 and "1" one class), the same labels as objects
    # 0.5; k-NN and the linear probe took the list as strings, and refused the objects with numpy's
    # "'<' not supported between instances of 'int' and 'str'", naming no argument.
    calls = {
        "labels": lambda y: metrics.cross_view_retrieval(X, A, y),
        "train_y": lambda y: metrics.knn_accuracy(X, y, A, y, k=3),
        "train_y ": lambda y: metrics.linear_probe_accuracy(X, y, A, y),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidValueError, match=rf"^{name.strip()}: expected class labels of one kind, got ") as err:
            call(labels)
        assert err.value.arg == name.strip()
        assert "at row 0" in str(err.value) and "at row 1" in str(err.value)
    from grapheme_multimodal.datasets import train_test_indices

    with pytest.raises(InvalidValueError, match=r"^labels: expected class labels of one kind"):
        train_test_indices(labels)


def test_labels_of_one_kind_score_as_before() -> None:
    strings = [f"c{v}" for v in Y]
    assert metrics.cross_view_retrieval(X, A, strings) == metrics.cross_view_retrieval(X, A, Y)
    assert metrics.knn_accuracy(X, np.array(strings, dtype=object), A, strings, k=3) == metrics.knn_accuracy(X, Y, A, Y, k=3)
    assert metrics.cross_view_retrieval(X, A, np.array([1, 2.5, True] * (N // 3) + [1], dtype=object))  # no strings


def test_class_labels_that_do_not_order_are_refused_by_name() -> None:
    # was numpy's "'<' not supported between instances of 'tuple' and 'int'" from np.unique
    odd = np.empty(N, dtype=object)
    odd[:] = [1, (2, 3)] * (N // 2)
    for call in (metrics.knn_accuracy, metrics.linear_probe_accuracy):
        with pytest.raises(InvalidValueError, match=r"^train_y: labels that cannot be ordered") as err:
            call(X, odd, A, odd)
        assert err.value.arg == "train_y"

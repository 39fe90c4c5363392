"""Evaluation metrics for cross-modal binding and fused embeddings.

numpy only at import time; :func:`knn_accuracy` and
:func:`linear_probe_accuracy` import scikit-learn lazily (its neighbour
search and vote tie-breaking are what the SPEC §3 anchors used).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ._validation import as_real_array
from .exceptions import InvalidValueError, NonFiniteError, ShapeError

__all__ = ["cross_view_retrieval", "knn_accuracy", "linear_probe_accuracy", "roc_auc", "unit_side_by_side"]

_METRICS = ("cosine", "euclidean")
# Query rows per block of the [block, n_gallery] distance matrix (float64):
# 2048 x 100k gallery items is ~1.6 GB, 2048 x 2k is 32 MB.
_DEFAULT_CHUNK = 2048


def _finite_2d(name: str, x: object) -> np.ndarray:
    arr = as_real_array(x, name)  # refuses masked entries and non-numbers (timedelta64 included)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"{name} must be a non-empty 2-D array [n, d], got shape {arr.shape}", name)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name} contains NaN or infinite values", name)
    return arr


# Magnitudes whose squares float64 holds with room for sums of them.
_SAFE_MAX, _SAFE_MIN = 2.0**500, 2.0**-500


def _in_safe_range(*arrays: np.ndarray) -> tuple:
    """``arrays`` as float64, all scaled by one power of two when their
    largest magnitude is beyond ``2**±500``: squared there, values overflow
    to inf (or underflow to 0) and every distance ties, so the neighbours
    found were arbitrary. A power of two scales exactly, so no distance
    order changes; values in range are returned unscaled, as before."""
    out = tuple(a.astype(np.float64) for a in arrays)
    if not _out_of_range(*out):
        return out
    shift = -int(np.frexp(max(float(np.abs(a).max()) for a in out))[1])
    return tuple(np.ldexp(a, shift) for a in out)


def _out_of_range(*arrays: np.ndarray) -> bool:
    top = max(float(np.abs(a).max()) for a in arrays)
    return top != 0 and not _SAFE_MIN <= top <= _SAFE_MAX


def _labels_1d(name: str, y: object, n: int, n_name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise ShapeError(f"{name} must have shape ({n},) to match {n_name}, got {arr.shape}", name)
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():  # NaN equals no label: its rows would score 0 unseen
        row = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise NonFiniteError(f"{name} holds {arr[row]} at row {row}; expected finite labels", name)
    return arr


def _unit_rows(name: str, x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise InvalidValueError(
            f"{name} has {zero.size} all-zero rows (first: row {zero[0]}); cosine "
            "similarity is undefined for them, use metric='euclidean'",
            name,
        )
    return x / norms


def cross_view_retrieval(
    query: np.ndarray,
    gallery: np.ndarray,
    labels: np.ndarray,
    metric: str = "cosine",
    *,
    chunk_size: int = _DEFAULT_CHUNK,
) -> dict[str, float]:
    """Top-1 retrieval of each event's other view among all ``N`` events.

    ``query[i]`` and ``gallery[i]`` are two views (e.g. embeddings of two
    modalities) of the same event ``i``, with class ``labels[i]``. For every
    query ``i`` the nearest gallery row is

        nn(i) = argmin_j d(query[i], gallery[j]),   j over all N gallery rows,

    with ``d = 1 - cos(q, g)`` for ``metric="cosine"`` and ``d = ||q - g||``
    for ``metric="euclidean"``. The gallery *includes* the query's own event
    (that is what makes instance recall measurable). Exact distance ties go to
    the lowest gallery index.

        class_precision_at_1 = mean_i [labels[nn(i)] == labels[i]]
        instance_recall_at_1 = mean_i [nn(i) == i]

    Chance levels are ``sum_c (n_c / N)^2`` (0.1 for balanced 10 classes) and
    ``1 / N``.

    Protocol of the SPEC §3 CCA anchors (reproduced by
    :func:`grapheme_multimodal.anchors.cca_anchor`): scikit-learn
    ``CCA(n_components=10)`` fitted on the standardised 1,600 training events;
    query = CCA scores of the query view and gallery = CCA scores of the gallery
    view of the 400 held-out test events; ``metric="cosine"``; gallery includes
    the query's own event. Euclidean distance does not reproduce them:
    scikit-learn's x- and y-scores are on different scales, so zer->kar falls to
    ~0.12 with it.

    Args:
        query: ``[N, d]`` real array.
        gallery: ``[N, d]`` real array, row-aligned with ``query``.
        labels: ``[N]`` class labels of the events.
        metric: ``"cosine"`` or ``"euclidean"``.
        chunk_size: query rows per block of the distance matrix (memory bound only).

    Returns:
        ``{"class_precision_at_1": float, "instance_recall_at_1": float}``.
    """
    q = _finite_2d("query", query)
    g = _finite_2d("gallery", gallery)
    if g.shape != q.shape:
        raise ShapeError(
            f"gallery must have the same shape as query (row-aligned events), "
            f"got query {q.shape} and gallery {g.shape}",
            "gallery",
        )
    y = _labels_1d("labels", labels, q.shape[0], "query rows")
    if metric not in _METRICS:
        raise InvalidValueError(f"metric must be one of {_METRICS}, got {metric!r}", "metric")
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise InvalidValueError(f"chunk_size must be a positive integer, got {chunk_size!r}", "chunk_size")

    q, g = _in_safe_range(q, g)
    if metric == "cosine":
        q = _unit_rows("query", q)
        g = _unit_rows("gallery", g)
    else:
        g_sq = np.einsum("ij,ij->i", g, g)

    n = q.shape[0]
    nearest = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk_size):
        block = q[start : start + chunk_size]
        if metric == "cosine":
            # argmax of cosine similarity == argmin of 1 - cos.
            nearest[start : start + block.shape[0]] = np.argmax(block @ g.T, axis=1)
        else:
            # ||q||^2 is constant within a row, so it does not change the argmin.
            scores = g_sq[None, :] - 2.0 * (block @ g.T)
            nearest[start : start + block.shape[0]] = np.argmin(scores, axis=1)

    return {
        "class_precision_at_1": float(np.mean(y[nearest] == y)),
        "instance_recall_at_1": float(np.mean(nearest == np.arange(n))),
    }


def _classification_inputs(train_x, train_y, test_x, test_y):
    tx = _finite_2d("train_x", train_x)
    ty = _labels_1d("train_y", train_y, tx.shape[0], "train_x rows")
    vx = _finite_2d("test_x", test_x)
    vy = _labels_1d("test_y", test_y, vx.shape[0], "test_x rows")
    if vx.shape[1] != tx.shape[1]:
        raise ShapeError(f"test_x has {vx.shape[1]} columns but train_x has {tx.shape[1]}", "test_x")
    return tx, ty, vx, vy


def _sklearn(what: str):
    try:
        import sklearn  # noqa: F401
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"{what} needs scikit-learn: pip install 'grapheme-multimodal[sklearn]'",
            name="sklearn",
        ) from err


def knn_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    k: int = 5,
) -> float:
    """Accuracy of a k-nearest-neighbour majority vote (Euclidean distance).

        pred(x) = argmax_c #{j in kNN_train(x) : train_y[j] == c}
        accuracy = mean_i [pred(test_x[i]) == test_y[i]]

    Uniform weights; vote ties go to the smallest class label. This is
    scikit-learn's ``KNeighborsClassifier(n_neighbors=k).fit(train_x,
    train_y).score(test_x, test_y)``, which is used as-is so the SPEC §3 anchors
    are reproduced exactly (scikit-learn is imported lazily).
    """
    tx, ty, vx, vy = _classification_inputs(train_x, train_y, test_x, test_y)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= tx.shape[0]:
        raise InvalidValueError(f"k must be an integer in [1, {tx.shape[0]}] (train rows), got {k!r}", "k")
    _sklearn("knn_accuracy")
    from sklearn.neighbors import KNeighborsClassifier

    if _out_of_range(tx, vx):
        tx, vx = _in_safe_range(tx, vx)  # else sklearn's distances overflow and every neighbour ties
    classifier = KNeighborsClassifier(n_neighbors=int(k)).fit(tx, ty)
    return float(classifier.score(vx, vy))


def linear_probe_accuracy(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    C: float = 1.0,  # noqa: N803 - scikit-learn's name
) -> float:
    """Test accuracy of a linear probe: multinomial logistic regression fitted
    on ``train_x`` (standardised with the training statistics).

    This is scikit-learn's ``make_pipeline(StandardScaler(),
    LogisticRegression(C=C, max_iter=5000)).fit(train_x, train_y).score(test_x,
    test_y)`` (L-BFGS, deterministic); how linearly the classes separate in a
    representation, the usual read-out of a self-supervised embedding.
    """
    tx, ty, vx, vy = _classification_inputs(train_x, train_y, test_x, test_y)
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not (np.isfinite(C) and C > 0):
        raise InvalidValueError(f"C must be a positive number, got {C!r}", "C")
    _sklearn("linear_probe_accuracy")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=float(C), max_iter=5000))
    return float(probe.fit(tx, ty).score(vx, vy))


def roc_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a positive outscores a negative.

        AUC = (1 / (P * N)) * sum_{p, n} ( [s_p > s_n] + 0.5 * [s_p == s_n] )

    (the Mann-Whitney U statistic over P positive and N negative scores; equal to
    scikit-learn's ``roc_auc_score``). Computed in O((P + N) log N) by sorting
    the negatives, with no P x N matrix.
    """
    pos = np.asarray(positive_scores)
    neg = np.asarray(negative_scores)
    for name, arr in (("positive_scores", pos), ("negative_scores", neg)):
        if arr.ndim != 1 or arr.size == 0:
            raise ShapeError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}", name)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        if not np.isfinite(arr).all():
            raise NonFiniteError(f"{name} contains NaN or infinite values", name)
    neg_sorted = np.sort(neg.astype(np.float64))
    pos = pos.astype(np.float64)
    below = np.searchsorted(neg_sorted, pos, side="left")  # negatives strictly lower
    below_or_tied = np.searchsorted(neg_sorted, pos, side="right")
    wins = below.sum(dtype=np.float64) + 0.5 * (below_or_tied - below).sum(dtype=np.float64)
    return float(wins / (pos.size * neg.size))


def unit_side_by_side(views: Mapping[Any, np.ndarray], names: Sequence[Any]) -> np.ndarray:
    """Each view's rows L2-normalised (zero rows stay zero), the views
    ``names`` side by side: every view weighs the same in a distance."""
    tiny = np.finfo(np.float32).tiny
    return np.hstack([views[v] / np.maximum(np.linalg.norm(views[v], axis=1, keepdims=True), tiny) for v in names])

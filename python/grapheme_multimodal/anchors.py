"""The scikit-learn anchors of SPEC §3 on the UCI Multiple Features digits,
as the SPEC computed them.

:func:`cca_anchor` is scikit-learn's *iterative* ``CCA`` (NIPALS, capped
iterations), kept to reproduce the SPEC's numbers; it is weaker than CCA
solved exactly. The anchors the model is measured against are in
:mod:`grapheme_multimodal.evaluation` (closed-form
:class:`~grapheme_multimodal.evaluation.ExactCCA`, MCCA / GCCA, raw-view
k-NN and linear probe).

Protocol (reproduces every SPEC number to its three printed decimals):

* split: :func:`grapheme_multimodal.datasets.train_test_split` with the defaults,
  i.e. scikit-learn's stratified ``train_test_split(test_size=0.2,
  random_state=0)`` -> 1,600 train / 400 test events;
* features: each view standardised with mean/std of the training split
  (:func:`grapheme_multimodal.datasets.standardize`);
* k-NN: ``KNeighborsClassifier(n_neighbors=5)`` (Euclidean, uniform vote)
  fitted on the training split, accuracy on the test split; "concat" is the
  six standardised views side by side (649 columns);
* CCA: scikit-learn's ``CCA(n_components=10)`` fitted on the standardised training split of the
  two views; query = CCA scores of the test events' query view, gallery = CCA
  scores of the same 400 test events' gallery view; cosine distance; the
  gallery includes the query's own event
  (:func:`grapheme_multimodal.metrics.cross_view_retrieval`).

scikit-learn is imported lazily, inside the functions.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ._readonly import ReadOnlyMapping
from ._threadpools import one_blas_thread
from ._validation import IntLike, exact_int, is_int, sorted_names, wrong_type
from .datasets import VIEW_NAMES, MultipleFeatures
from .evaluation._anchors import check_same_views, check_split_labels, check_splits_whole, refuse_zero_rows, standardized_splits
from .evaluation._pairs import check_result_keys
from .exceptions import InvalidValueError
from .metrics import _sklearn, cross_view_retrieval, knn_accuracy

__all__ = [
    "SPEC_KNN_ACCURACY",
    "SPEC_CCA_PRECISION",
    "CCA_PAIRS",
    "knn_anchors",
    "cca_anchor",
]

#: SPEC §3: 5-NN test accuracy per view and for the six views concatenated.
#: The SPEC's numbers, read-only (as the two below): shared by every caller,
#: an edit of one (``spec = anchors.SPEC_KNN_ACCURACY; spec["pix"] = 1``)
#: changed the reference every later comparison in the process was made to.
SPEC_KNN_ACCURACY: Mapping[str, float] = ReadOnlyMapping({
    "pix": 0.978,
    "fac": 0.975,
    "kar": 0.950,
    "zer": 0.825,
    "fou": 0.818,
    "mor": 0.715,
    "concat": 0.985,
})
#: SPEC §3: scikit-learn's iterative CCA (10 components) cross-view class
#: precision@1, (query, gallery) -> value. Exact CCA gives 0.725 and 0.860.
SPEC_CCA_PRECISION: Mapping[tuple[str, str], float] = ReadOnlyMapping({
    ("fou", "pix"): 0.753,
    ("zer", "kar"): 0.768,
})
#: The (query view, gallery view) pairs the SPEC reports.
CCA_PAIRS: tuple[tuple[str, str], ...] = tuple(SPEC_CCA_PRECISION)


def _check_splits(train: MultipleFeatures, test: MultipleFeatures, views: Optional[Sequence[Any]] = None) -> None:
    """Two :class:`MultipleFeatures` with the same views, each (of ``views``
    only, when given) as wide in ``test`` as in ``train``: else the errors
    of standardize, naming its ``others[0]``, an argument the caller never
    passed, or numpy's "need at least one array to concatenate"."""
    _check_types(train, test)
    check_same_views(train, test, views)


def _check_types(train: MultipleFeatures, test: MultipleFeatures) -> None:
    for name, split in (("train", train), ("test", test)):
        if not isinstance(split, MultipleFeatures):
            raise TypeError(f"{name}: expected a MultipleFeatures (datasets.train_test_split), got {type(split).__name__}")
    check_splits_whole(train, test)  # before cca_anchor looks its views up: a list of views was numpy's "ambiguous"


def knn_anchors(
    train: MultipleFeatures, test: MultipleFeatures, k: IntLike = 5
) -> dict[str, float]:
    """k-NN test accuracy per view and for all views concatenated ("concat").

    ``train``/``test`` are raw (unstandardised) splits; each view is standardised
    with training statistics here. Keys follow :data:`VIEW_NAMES` order (views
    present in the data), then ``"concat"`` (a view of that name is refused).
    """
    _sklearn("knn_anchors")  # else "No module named 'sklearn.utils'", deep in the label checks
    _check_splits(train, test)
    # the result holds each view's figure by its name beside "concat": a view of that name was overwritten
    check_result_keys(train.views, "train.views", pair_keys=False,
                      reserved={"concat": "k-NN accuracy of all views side by side"})
    check_split_labels(train, test)
    names = [n for n in VIEW_NAMES if n in train.views] + [
        n for n in train.views if n not in VIEW_NAMES
    ]
    train_std, test_std = standardized_splits(train, test)
    result = {
        name: knn_accuracy(train_std[name], train.labels, test_std[name], test.labels, k=k)
        for name in names
    }
    result["concat"] = knn_accuracy(
        np.hstack([train_std[n] for n in names]),
        train.labels,
        np.hstack([test_std[n] for n in names]),
        test.labels,
        k=k,
    )
    return result


def cca_anchor(
    train: MultipleFeatures,
    test: MultipleFeatures,
    query_view: str,
    gallery_view: str,
    n_components: IntLike = 10,
) -> dict[str, float]:
    """scikit-learn's iterative CCA: cross-view retrieval on the test events
    (protocol in the module docstring). For exact CCA see
    :func:`grapheme_multimodal.evaluation.pairwise_cca_retrieval`.

    Returns :func:`~grapheme_multimodal.metrics.cross_view_retrieval`'s dict
    (``class_precision_at_1``, ``instance_recall_at_1``) for query = CCA scores
    of ``query_view``, gallery = CCA scores of ``gallery_view``.
    """
    _check_types(train, test)
    for arg, view in (("query_view", query_view), ("gallery_view", gallery_view)):
        try:
            known = view in train.views
        except TypeError:  # a list: "unhashable type: 'list'"
            known = False
        if not known:
            raise InvalidValueError(f"{arg}: expected one of train's views {sorted_names(train.views)}, got {view!r}", arg)
    _check_splits(train, test, (query_view, gallery_view))
    check_split_labels(train, test, test_only=True)  # retrieval reads only the test events' labels
    if query_view == gallery_view:
        raise InvalidValueError(
            f"gallery_view: expected a view other than query_view, got {gallery_view!r} for both", "gallery_view")
    max_components = min(
        train.views[query_view].shape[1], train.views[gallery_view].shape[1], train.n_events
    )
    expected = f"an int in [1, {max_components}] (the fewest of the two views' columns and train's events)"
    if not is_int(n_components):
        # a TypeError, as as_positive_int refuses the retrievals' n_components (2.5, "2", None, True):
        # a wrong type, where a value out of range is an InvalidValueError
        raise wrong_type("n_components", expected, n_components)
    n_components = exact_int(n_components)  # a 0-d array too: the int it holds
    if not 1 <= n_components <= max_components:
        from .types import bounded_repr  # on the error's path only, as metrics does

        # "n_components: expected ..., got ..." as ExactCCA and the package's other argument checks
        raise InvalidValueError(f"n_components: expected {expected}, got {bounded_repr(n_components)}", "n_components")
    try:
        from sklearn.cross_decomposition import CCA
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "cca_anchor needs scikit-learn: pip install 'grapheme-multimodal[sklearn]'",
            name="sklearn",
        ) from err
    train_std, test_std = standardized_splits(train, test, (query_view, gallery_view))
    for view in (query_view, gallery_view):
        if not train_std[view].any():  # standardize maps a constant column to 0
            # else scikit-learn's "A has a NaN entry", or the metric's all-zero "query" rows
            raise InvalidValueError(
                f"train.views[{view!r}]: every column is constant in the training split, which leaves CCA nothing "
                "to correlate; expected a view whose values vary", f"train.views[{view!r}]")
    for view in (query_view, gallery_view):
        # NIPALS deflates a view by one direction per component: past the view's rank its residual is 0,
        # and scikit-learn divided by it ("invalid value encountered in divide", then "A has a NaN entry"
        # for the query view; "y residual is constant" and components of nothing for the gallery view).
        # The rank of the float32 z-scores, at float32's resolution: what the data can tell apart.
        rank = int(np.linalg.matrix_rank(train_std[view]))
        if n_components > rank:
            raise InvalidValueError(
                f"n_components: expected at most {rank}, the rank of train.views[{view!r}] standardised (its "
                f"columns span only {rank} direction{'s' if rank != 1 else ''} over train's events), got "
                f"{n_components}", "n_components")
    # CCA's NIPALS loop does thousands of tiny matrix-vector products; a
    # multi-threaded BLAS only adds synchronisation (measured 0.8 s with one
    # thread vs 21 s with OpenBLAS's default threads on a busy 2-core machine).
    # One limit shared with every thread (threadpoolctl's own, on several threads at once, left BLAS
    # on one thread for the rest of the process).
    with one_blas_thread():
        cca = CCA(n_components=int(n_components))
        cca.fit(train_std[query_view], train_std[gallery_view])
        query_scores, gallery_scores = cca.transform(test_std[query_view], test_std[gallery_view])
    for view, scores in ((query_view, query_scores), (gallery_view, gallery_scores)):
        # as pairwise_cca_retrieval says it: the metric's own words named its "query" or "gallery", arguments the
        # caller never passed, and told them to use metric='euclidean', which cca_anchor does not take
        refuse_zero_rows(f"test.views[{view!r}]", scores, "canonical scores",
                         "the row is at the view's training mean, or differs from it only where the training rows do "
                         "not vary, such as a column constant over them")
    return cross_view_retrieval(query_scores, gallery_scores, test.labels, metric="cosine")

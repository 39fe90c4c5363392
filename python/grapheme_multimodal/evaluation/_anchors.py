"""The anchors a multi-view model is measured against, computed on the same
split: exact CCA per view pair, one-space multi-view CCA (MCCA / GCCA from
cca-zoo, when installed), and k-NN / linear probe on the raw views.

Every view is standardised with the training split's statistics first.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, ContextManager, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .._threadpools import one_blas_thread
from .._validation import (
    IntLike, as_positive_int, counted, describe, is_iterable, renamed, sorted_names,
)
from .._caller_warnings import warn_at_caller
from .._frames import refuse_unpaired_frames
from ..datasets import MultipleFeatures, standardize
from ..exceptions import GraphemeError, InvalidValueError, ShapeError
from ..metrics import (
    _check_neighbours, _class_labels, _exact_integer_columns, _finite_2d, _labels_1d, _out_of_range, _sklearn,
    cross_view_retrieval, knn_accuracy, linear_probe_accuracy,
)
from ._cca import ExactCCA
from ._pairs import check_result_keys, ordered_pairs, pair_key, two_view_key, unordered_pairs

__all__ = ["Anchors", "compute_anchors", "pairwise_cca_retrieval", "multiview_cca_retrieval", "MULTIVIEW_METHODS"]

#: cca-zoo's one-space methods measured beside ours.
MULTIVIEW_METHODS = ("MCCA", "GCCA")


@dataclass
class Anchors:
    """Anchor figures on one split. Pair keys are ``"q->g"`` (query view,
    gallery view) and, for two present views, ``"a+b"``; retrieval values are
    :func:`~grapheme_multimodal.metrics.cross_view_retrieval` dicts. View
    names that would give two pairs one key (``1`` beside ``"1"``, or
    ``"a"`` and ``"b->c"`` beside ``"a->b"`` and ``"c"``) are refused.

    Attributes:
        cca: exact CCA (``cca_components`` components, fewer for a view with
            fewer columns) fitted per view pair.
        multiview: ``{"MCCA": {pair: ...}, "GCCA": ...}`` — one space for all
            views (``multiview_components``, fewer when a view has fewer
            columns); empty when cca-zoo is absent.
        raw_knn, raw_probe: k-NN and linear-probe accuracy on all the
            standardised raw views side by side.
        raw_two_view_knn: k-NN on the two standardised raw views present.
    """

    cca: Dict[str, Dict[str, float]]
    raw_knn: float
    raw_probe: float
    raw_two_view_knn: Dict[str, float]
    multiview: Dict[str, Dict[str, Dict[str, float]]] = field(default_factory=dict)
    cca_components: int = 10
    multiview_components: int = 6


def pairwise_cca_retrieval(
    train_std: Dict[str, np.ndarray],
    test_std: Dict[str, np.ndarray],
    labels: np.ndarray,
    n_components: IntLike = 10,
) -> Dict[str, Dict[str, float]]:
    """Exact CCA fitted on each unordered view pair's training rows; both
    directions retrieve among the test events' canonical scores (cosine,
    gallery includes the query's own event). A pair whose smaller view has
    fewer than ``n_components`` columns gets that many (mor: 6). View names
    that would give two pairs one key are refused (:class:`Anchors`)."""
    train_std, test_std, labels, n_components = _checked_standardized(train_std, test_std, labels, n_components)
    return _pairwise_cca_retrieval(train_std, test_std, labels, n_components, ("train_std", "test_std"))


def _checked_standardized(
    train_std: Any, test_std: Any, labels: Any, n_components: Any
) -> Tuple[Dict[Any, np.ndarray], Dict[Any, np.ndarray], np.ndarray, int]:
    """The public retrievals' arguments checked whole, by their names: else
    "unhashable type: 'numpy.ndarray'" for a list of views, a KeyError for
    a view missing, ExactCCA's ``X`` and ``Y``, the metric's ``query`` and
    ``gallery``, or cca-zoo's and scikit-learn's words for rows that do not
    pair, NaN or ``n_components``. (:func:`compute_anchors` checks its
    splits itself.) Views come back as arrays, as they were when arrays."""
    for arg, views in (("train_std", train_std), ("test_std", test_std)):
        if not isinstance(views, Mapping):
            raise TypeError(f"{arg}: expected a mapping view name -> [n, d] array, got {describe(views)}")
    check_result_keys(train_std, "train_std")  # else one pair's figures overwrote another's under one key
    if set(test_std) != set(train_std):  # else a KeyError naming one view
        raise InvalidValueError(f"test_std: has views {sorted_names(test_std)}, expected the training views {sorted_names(train_std)}", "test_std")
    checked: list[Dict[Any, np.ndarray]] = []  # train's views, then test's
    refuse_unpaired_frames((f"train_std[{v!r}]", x) for v, x in train_std.items())
    refuse_unpaired_frames([(f"test_std[{v!r}]", x) for v, x in test_std.items()] + [("labels", labels)])
    for arg, views in (("train_std", train_std), ("test_std", test_std)):
        arrays = {v: _finite_2d(f"{arg}[{v!r}]", x) for v, x in views.items()}
        first = next(iter(arrays), None)
        for v, x in arrays.items():  # rows pair across views, by position
            if x.shape[0] != arrays[first].shape[0]:
                raise ShapeError(f"{arg}[{v!r}]: has {x.shape[0]} rows; expected {arrays[first].shape[0]}, as {arg}[{first!r}] "
                                 "(row i of every view is the same event)", f"{arg}[{v!r}]")
            if checked and x.shape[1] != checked[0][v].shape[1]:
                raise ShapeError(f"{arg}[{v!r}]: has {x.shape[1]} columns; expected {checked[0][v].shape[1]}, as "
                                 f"train_std[{v!r}]", f"{arg}[{v!r}]")
        checked.append(arrays)
    train, test = checked
    if test:  # no views: no pair, {}
        labels = _labels_1d("labels", labels, next(iter(test.values())).shape[0], "test_std's rows")
    return train, test, labels, as_positive_int(n_components, "n_components")


def _pairwise_cca_retrieval(
    train_std: Dict[str, np.ndarray],
    test_std: Dict[str, np.ndarray],
    labels: np.ndarray,
    n_components: int,
    arg_names: Tuple[str, str],
) -> Dict[str, Dict[str, float]]:
    """:func:`pairwise_cca_retrieval`, its errors naming the training and
    test views by ``arg_names`` (the caller's: ``("train.views", "test.views")``
    for :func:`compute_anchors`, whose caller passed no ``test_std``)."""
    train_arg, test_arg = arg_names  # both callers have checked the views
    out: Dict[str, Dict[str, float]] = {}
    names = list(train_std)
    for a, b in unordered_pairs(names):
        k = min(n_components, train_std[a].shape[1], train_std[b].shape[1])
        try:
            cca = ExactCCA(k).fit(train_std[a], train_std[b])
        except GraphemeError as err:  # a view constant in training, or of one row: named by the caller's name, not X or Y
            raise renamed(err, {"X": f"{train_arg}[{a!r}]", "Y": f"{train_arg}[{b!r}]"}) from None
        score_a, score_b = cca.transform(test_std[a], test_std[b])
        for name, scores in ((a, score_a), (b, score_b)):
            refuse_zero_rows(f"{test_arg}[{name!r}]", scores, "canonical scores",
                             "the row is at the view's training mean, or differs from it only where the training rows do "
                             "not vary, such as a column constant over them")
        out[pair_key(a, b)] = cross_view_retrieval(score_a, score_b, labels)
        out[pair_key(b, a)] = cross_view_retrieval(score_b, score_a, labels)
    return {pair_key(q, g): out[pair_key(q, g)] for q, g in ordered_pairs(names)}


def refuse_zero_rows(arg: str, rows: np.ndarray, what: str, cause: str, row_numbers: Optional[np.ndarray] = None) -> None:
    """InvalidValueError naming ``arg`` when a row of ``rows`` (its ``what``)
    is all zero: cosine retrieval has no direction for it, and the error was
    the metric's, about a ``query`` or ``gallery`` the caller never passed
    and a ``metric`` the caller's function does not take. ``cause``: why
    such rows come about. ``row_numbers``: each row's number in ``arg``,
    where ``rows`` are some of its rows (a fold's)."""
    zero = np.flatnonzero(~np.any(np.asarray(rows) != 0, axis=1))
    if zero.size:
        first = int(zero[0] if row_numbers is None else row_numbers[zero[0]])
        raise InvalidValueError(
            f"{arg}: the {what} of {zero.size} row(s) (first: row {first}) are all zero, which the cosine "
            f"retrieval cannot compare ({cause})", arg,
        )


def multiview_cca_retrieval(
    method: str,
    train_std: Dict[str, np.ndarray],
    test_std: Dict[str, np.ndarray],
    labels: np.ndarray,
    n_components: IntLike = 6,
) -> Dict[str, Dict[str, float]]:
    """cca-zoo's ``MCCA`` or ``GCCA`` fitted on all views at once (one shared
    space), then every ordered view pair retrieves in it; ``n_components``,
    or the narrowest view's columns when fewer (as
    :func:`pairwise_cca_retrieval` does per pair); no pair, ``{}``, for one
    view. Needs cca-zoo (Python >= 3.11): ``pip install 'grapheme-multimodal[bench]'``."""
    if not isinstance(method, str) or method not in MULTIVIEW_METHODS:  # an array was "truth value ... is ambiguous"
        raise InvalidValueError(f"method: expected one of {MULTIVIEW_METHODS}, got {method!r}", "method")
    train_std, test_std, labels, n_components = _checked_standardized(train_std, test_std, labels, n_components)
    if len(train_std) >= 2:  # one view fits nothing (``{}``): nothing to refuse
        for v, x in train_std.items():
            # as ExactCCA refuses them for pairwise_cca_retrieval: cca-zoo's words were scikit-learn's "Found array with
            # 1 sample(s)" and numpy's "Matrix is not positive definite" / "SVD did not converge", naming no view
            if x.shape[0] < 2:
                raise ShapeError(f"train_std[{v!r}]: has {x.shape[0]} row; expected at least 2 to estimate covariances",
                                 f"train_std[{v!r}]")
            if not (x != x[0]).any():
                raise InvalidValueError(
                    f"train_std[{v!r}]: every column is constant (all {x.shape[0]} rows alike), which leaves {method} "
                    "nothing to correlate; expected a view whose values vary", f"train_std[{v!r}]")
    return _multiview_cca_retrieval(method, train_std, test_std, labels, n_components, "test_std")


def _multiview_cca_retrieval(
    method: str, train_std: Dict[str, np.ndarray], test_std: Dict[str, np.ndarray], labels: np.ndarray, n_components: int,
    test_arg: str,
) -> Dict[str, Dict[str, float]]:
    """:func:`multiview_cca_retrieval` of arguments already checked, its
    errors naming the test views by ``test_arg`` (the caller's)."""
    names = list(train_std)
    # no pair to retrieve (cca-zoo's "At least 2 views are required"): nothing is fitted, so
    # nothing needs cca-zoo, which Pythons before 3.11 cannot install
    if len(names) < 2:
        return {}
    try:
        from cca_zoo import linear
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"{method} needs cca-zoo (Python >= 3.11): pip install 'grapheme-multimodal[bench]'", name="cca_zoo"
        ) from err
    # else cca-zoo's "n_components=6 must be at most 3", for compute_anchors' default on a view of 3 columns
    n_components = min(n_components, *(np.shape(train_std[v])[1] for v in names))
    model = getattr(linear, method)(n_components=n_components)
    views = {v: _conditioned(train_std[v], test_std[v]) for v in names}
    model.fit([views[v][0] for v in names])
    scores = dict(zip(names, model.transform([views[v][1] for v in names])))
    for name in names:  # else the metric's "query has all-zero rows ... use metric='euclidean'", no argument here
        refuse_zero_rows(f"{test_arg}[{name!r}]", scores[name], f"{method} scores",
                         "the row is at the view's training mean, or differs from it only where the training rows do "
                         "not vary, such as a column constant over them")
    return {pair_key(q, g): cross_view_retrieval(scores[q], scores[g], labels) for q, g in ordered_pairs(names)}


def _conditioned(train: np.ndarray, test: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One view's training and test rows as float64 for cca-zoo, which
    computes their covariances as they are: integers beyond 2**53 (and long
    doubles) less each column's smallest value, exactly, and a view whose
    largest magnitude lies beyond 2**±500 divided by one power of two (exact)
    to near 1. Else numpy's "Eigenvalues did not converge", "SVD did not
    converge" or "Matrix is not positive definite" (views of 1e200 or
    1e-200, ids near 2**62), naming no view, where ExactCCA's pairwise
    anchors fit them. MCCA and GCCA do not depend on a view's offset or
    scale; views in range (standardised ones) are passed as before."""
    train, test = (a.astype(np.float64, copy=False) for a in _exact_integer_columns(train, test))
    if _out_of_range(train):
        shift = -int(np.frexp(np.abs(train).max())[1])
        train, test = np.ldexp(train, shift), np.ldexp(test, shift)
    return train, test


def one_thread() -> ContextManager[None]:
    """A context in which BLAS and OpenMP run on one thread.

    The anchors and read-outs are many small products: on a busy 2-core
    machine, threaded BLAS made them 3-8x slower (measured: exact CCA of 15
    pairs 1.1 s on one thread, 9.1 s on two), and one thread also makes the
    figures independent of the core count. threadpoolctl comes with
    scikit-learn. Not threadpoolctl's own limit: run on several threads at
    once, it left BLAS on one thread for the rest of the process
    (:mod:`grapheme_multimodal._threadpools`).
    """
    return one_blas_thread(openmp=True)


def check_splits_whole(train: MultipleFeatures, test: MultipleFeatures) -> None:
    """Each split's views and labels checked as they are now (as
    ``train_test_split`` checks them), its errors naming ``train.views['a']``
    or ``test.labels``: a split's fields are plain attributes, and one
    replaced since it was made (a view by a 1-D array or a list, the labels
    by a list, the views by a list) failed in every measure as ``IndexError:
    tuple index out of range``, ``'list' object has no attribute 'shape'``
    or ``unhashable type: 'numpy.ndarray'``."""
    for name, split in (("train", train), ("test", test)):
        try:
            split._check()
        except (GraphemeError, TypeError) as err:
            views = split.views if isinstance(split.views, Mapping) else {}
            raise renamed(err, {"views": f"{name}.views", "labels": f"{name}.labels",
                                **{f"views[{v!r}]": f"{name}.views[{v!r}]" for v in views}}) from None
        # a training split of none was "train.labels: expected at least 1 classes, got only []", or cca_anchor's
        # "n_components: expected an int in [1, 0]", an argument that was fine; an empty test split is left to each
        # measure, which says how many rows it needs (evaluate_model: at least 2)
        if name == "train" and split.n_events == 0:
            raise ShapeError(f"{name}: has no events (0 rows); expected a split of at least one event", name)


def check_same_views(train: MultipleFeatures, test: MultipleFeatures, views: Optional[Sequence[Any]] = None) -> None:
    """``train`` holds a view, and ``test`` the views of ``train`` (any
    order), each as wide (of ``views`` only, when given): else a bare
    ``KeyError`` naming a view, numpy's "need at least one array to
    concatenate" for no views, or errors naming arguments of the helpers
    (``others[0]``, ``views['b']``) the caller never passed. Each split is
    first checked whole (:func:`check_splits_whole`)."""
    check_splits_whole(train, test)
    if not train.views:
        raise InvalidValueError("train: has no views; expected at least one view name -> [n, d] array", "train")
    if set(test.views) != set(train.views):
        raise InvalidValueError(
            f"test: has views {sorted_names(test.views)}; expected those of train, {sorted_names(train.views)}", "test"
        )
    for v in test.views if views is None else views:
        x = test.views[v]
        if x.shape[1] != train.views[v].shape[1]:
            raise ShapeError(
                f"test.views[{v!r}]: has {x.shape[1]} columns; expected {train.views[v].shape[1]}, as in train",
                f"test.views[{v!r}]",
            )


def check_split_labels(train: MultipleFeatures, test: MultipleFeatures, *, test_only: bool = False,
                       probe: bool = False) -> None:
    """The splits' labels are class labels (of ``test`` only, for retrieval
    alone), named ``train.labels`` and ``test.labels``: the metrics named
    their own ``labels``, ``train_y`` and ``test_y``, arguments the caller
    never passed. ``probe``: ``train`` needs two classes, which the linear
    probe tells apart."""
    test_y = _labels_1d("test.labels", test.labels, test.n_events, "test's rows")
    if test_only:
        return
    train_y = _labels_1d("train.labels", train.labels, train.n_events, "train's rows")
    train_codes, test_codes = _class_labels(train_y, test_y, at_least=1, names=("train.labels", "test.labels"))
    classes = np.unique(train_y)
    if probe and classes.size < 2:
        raise InvalidValueError(
            f"train.labels: expected at least 2 classes (the linear probe tells them apart), got only {classes.tolist()}",
            "train.labels")
    _warn_unseen_test_classes(train_codes, test_codes, test_y)


#: How many classes absent from training :func:`_warn_unseen_test_classes` lists before "...".
_SHOWN_CLASSES = 5


def _warn_unseen_test_classes(train_codes: np.ndarray, test_codes: np.ndarray, test_y: np.ndarray) -> None:
    """A ``UserWarning`` at the caller's line when ``test`` holds classes
    ``train`` lacks: a classifier fitted on ``train`` (the k-NN, the linear
    probe) never predicts them, so their rows count as wrong in every
    accuracy, and a split that left a class out of training scored lower
    (0.0 where no test class was trained) without a word. Scikit-learn's
    metrics warn where a figure is ill-defined (``UndefinedMetricWarning``);
    this figure is defined, only misleading, so it is a warning, not an error."""
    unseen = ~np.isin(test_codes, train_codes)
    if not unseen.any():
        return
    classes = np.unique(test_y[unseen]).tolist()
    shown = ", ".join(map(repr, classes[:_SHOWN_CLASSES])) + (", ..." if len(classes) > _SHOWN_CLASSES else "")
    rows = int(unseen.sum())
    warn_at_caller(
        f"test.labels: {counted(rows, 'test row')} of {test_codes.size} {'is' if rows == 1 else 'are'} of "
        f"{counted(len(classes), 'class', 'classes')} absent from train.labels "
        f"({shown}): the k-NN and linear-probe accuracies count those rows as wrong (a classifier never predicts a "
        "class it was not trained on); expected a split whose training part holds every test class "
        "(datasets.train_test_split stratifies)", UserWarning)


def standardized_splits(
    train: MultipleFeatures, test: MultipleFeatures, views: Optional[Sequence[Any]] = None
) -> Tuple[Dict[Any, np.ndarray], Dict[Any, np.ndarray]]:
    """:func:`~grapheme_multimodal.datasets.standardize` of the splits'
    views (of ``views`` only, when given), its errors naming the caller's
    ``train.views['v']`` and ``test.views['v']``: standardize names its own
    ``train_views`` and ``others[0]``, arguments the caller never passed."""
    names = list(train.views) if views is None else list(views)
    try:
        return standardize({v: train.views[v] for v in names}, {v: test.views[v] for v in names})  # type: ignore[return-value]
    except (GraphemeError, TypeError) as err:
        raise renamed(err, {
            **{f"train_views[{v!r}]": f"train.views[{v!r}]" for v in names},
            **{f"others[0][{v!r}]": f"test.views[{v!r}]" for v in names},
        }) from None


def cca_zoo_available() -> bool:
    """Whether cca-zoo can be imported (it needs Python >= 3.11)."""
    return importlib.util.find_spec("cca_zoo") is not None


def compute_anchors(
    train: MultipleFeatures,
    test: MultipleFeatures,
    *,
    cca_components: IntLike = 10,
    multiview_components: IntLike = 6,
    multiview: Optional[Sequence[str]] = None,
    k: IntLike = 5,
) -> Anchors:
    """All anchor figures of one split (see :class:`Anchors`).

    ``multiview``: cca-zoo methods to run (default: :data:`MULTIVIEW_METHODS`
    when cca-zoo is installed, else none; naming one without cca-zoo raises).
    View names that would give two pairs one key are refused (:class:`Anchors`).
    Test classes that ``train`` lacks are scored with a ``UserWarning``, as
    by :func:`~grapheme_multimodal.evaluation.evaluate_model`.
    """
    _sklearn("compute_anchors")  # else "No module named 'sklearn.utils'", deep in the label checks
    for name, split in (("train", train), ("test", test)):
        if not isinstance(split, MultipleFeatures):  # else "'dict' object has no attribute 'views'"
            raise TypeError(f"{name}: expected a MultipleFeatures (datasets.train_test_split), got {type(split).__name__}")
    check_same_views(train, test)
    check_result_keys(train.views, "train.views", two_view_keys=True)  # else one pair's figures overwrote another's
    check_split_labels(train, test, probe=True)
    # named here: ExactCCA's and cca-zoo's errors named their own n_components
    cca_components = as_positive_int(cca_components, "cca_components")
    multiview_components = as_positive_int(multiview_components, "multiview_components")
    _check_neighbours(k, train.n_events)  # before the CCA fits: k=0 was refused after all of them
    if multiview is not None:
        if isinstance(multiview, (str, bytes)) or not is_iterable(multiview):  # "MCCA" was read as 'M', 'C', ...
            raise TypeError(f"multiview: expected None or a sequence of method names such as {list(MULTIVIEW_METHODS)}, "
                            f"got {type(multiview).__name__}")
        multiview = list(multiview)
        unknown = [m for m in multiview if m not in MULTIVIEW_METHODS]
        if unknown:
            raise InvalidValueError(f"multiview: unknown methods {unknown}; expected some of {list(MULTIVIEW_METHODS)}", "multiview")
    train_std, test_std = standardized_splits(train, test)
    names = list(train_std)
    if multiview is None:
        multiview = MULTIVIEW_METHODS if cca_zoo_available() else ()

    def raw(views: Dict[str, np.ndarray], keys: Sequence[str]) -> np.ndarray:
        return np.hstack([views[v] for v in keys])

    with one_thread():
        return Anchors(
            cca=_pairwise_cca_retrieval(train_std, test_std, test.labels, cca_components, ("train.views", "test.views")),
            raw_knn=knn_accuracy(raw(train_std, names), train.labels, raw(test_std, names), test.labels, k=k),
            raw_probe=linear_probe_accuracy(raw(train_std, names), train.labels, raw(test_std, names), test.labels),
            raw_two_view_knn={
                two_view_key(a, b): knn_accuracy(
                    raw(train_std, (a, b)), train.labels, raw(test_std, (a, b)), test.labels, k=k
                )
                for a, b in unordered_pairs(names)
            },
            multiview={
                method: _multiview_cca_retrieval(method, train_std, test_std, test.labels, multiview_components,
                                                 "test.views")
                for method in multiview
            },
            cca_components=cca_components,
            multiview_components=multiview_components,
        )

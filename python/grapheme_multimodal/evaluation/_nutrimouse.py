"""The Nutrimouse protocol: with 32 training mice, does the gene view find
the lipid view of a mouse of the same genotype / diet?

Repeated stratified 5-fold cross-validation (stratified on the diet, 8 mice
of each; genotype is 20/20): in every fold, fit on 32 mice, embed the 8
held-out mice's two views, and retrieve gene → lipid (cosine, the gallery
includes the query's own mouse, as
:func:`~grapheme_multimodal.metrics.cross_view_retrieval`); class
precision@1 with the genotype and with the diet as the class. Anchors on
the same folds, each view standardised with the fold's training statistics:
scikit-learn's ``CCA(2)`` and ``PLSCanonical(2)`` (both iterative, NIPALS)
and the closed-form :class:`ExactCCA` (2 components).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence

import numpy as np

from .._readonly import ReadOnlyMapping
from .._threadpools import one_blas_thread
from .._validation import IntLike, as_positive_int, as_seed, check_flag, is_iterable, refuse_beyond_budget, sorted_names
from ..datasets import NUTRIMOUSE_TARGETS, Nutrimouse, load_nutrimouse, standardize
from ..exceptions import InvalidValueError
from ..metrics import _finite_2d, _sklearn, cross_view_retrieval
from ._cca import ExactCCA
from ._embedders import Recipe
from ._anchors import refuse_zero_rows
from ._multiview import _embedded_views

__all__ = ["nutrimouse_cv", "NUTRIMOUSE_ANCHORS"]

_QUERY, _GALLERY = "gene", "lipid"
#: The canonical components of every anchor (scikit-learn's CCA and PLSCanonical, ExactCCA).
_ANCHOR_COMPONENTS = 2


def _sklearn_scores(kind: str) -> Callable:
    def scores(x_train, y_train, x_test, y_test):
        from sklearn.cross_decomposition import CCA, PLSCanonical

        # NIPALS does thousands of tiny products: one BLAS thread is faster (one limit shared with
        # every thread: threadpoolctl's own, on several threads at once, left BLAS on one thread).
        # Its ConvergenceWarning is not silenced: warnings.catch_warnings sets the filters of the
        # whole process, so runs on two threads at once left it ignored for good, and other threads'
        # ConvergenceWarnings were dropped meanwhile. On the shipped mice NIPALS converges (at most
        # 37 of its 500 iterations); on other data the warning says an anchor stopped at its cap.
        with one_blas_thread():
            model = (CCA if kind == "cca" else PLSCanonical)(n_components=_ANCHOR_COMPONENTS)
            return model.fit(x_train, y_train).transform(x_test, y_test)

    return scores


def _exact_cca_scores(x_train, y_train, x_test, y_test):
    return ExactCCA(_ANCHOR_COMPONENTS).fit(x_train, y_train).transform(x_test, y_test)


#: Anchor name -> ``scores(x_train, y_train, x_test, y_test) -> (x_scores, y_scores)``.
#: Read-only: :func:`nutrimouse_cv` runs every anchor it holds, and a user's
#: edit of the shared dict (an anchor removed, or replaced by another method
#: under its name) changed what every later run in the process reported
#: under the anchors' names; ``dict(...)`` gives a copy to edit.
NUTRIMOUSE_ANCHORS: Mapping[str, Callable] = ReadOnlyMapping({
    "CCA(2), scikit-learn (iterative)": _sklearn_scores("cca"),
    "PLSCanonical(2), scikit-learn": _sklearn_scores("pls"),
    "exact CCA(2)": _exact_cca_scores,
})


def _check_anchor_ranks(data: Nutrimouse, fold_rows: Iterable[tuple], n_splits: int) -> None:
    """InvalidValueError naming the view when, standardised as the anchors
    get it, a view of some fold's training mice has rank below the anchors'
    components. NIPALS deflates a view by one direction per component: past
    its rank scikit-learn's CCA and PLSCanonical warned "y residual is
    constant at iteration 1" in every fold of a gallery view (a hundred
    warnings for the default ten repeats, naming no view) and scored one
    component under the name "CCA(2)"; past a query view's rank they scored
    without a word. The rule of :func:`~grapheme_multimodal.anchors.cca_anchor`,
    which refuses ``n_components`` past a view's rank. A view with some
    column varying has rank 1 at least (every column constant is refused
    before)."""
    for index, (train_rows, _) in enumerate(fold_rows):
        (train_std,) = standardize({v: data.views[v][train_rows] for v in (_QUERY, _GALLERY)})
        for view in (_QUERY, _GALLERY):
            rank = int(np.linalg.matrix_rank(train_std[view]))  # of the float32 z-scores the anchors fit
            if rank < _ANCHOR_COMPONENTS:
                raise InvalidValueError(
                    f"data.views[{view!r}]: standardised over the training mice of fold {index % n_splits} of repeat "
                    f"{index // n_splits}, its columns span only {rank} direction{'s' if rank != 1 else ''}; the "
                    f"anchors fit {_ANCHOR_COMPONENTS} canonical components, which need that many in each view; "
                    "expected a view of higher rank, or anchors=False", f"data.views[{view!r}]")


def _copies(views: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """A copy of each view, for a caller's function to do with as it likes."""
    return {v: x.copy() for v, x in views.items()}


def _precision(query: np.ndarray, gallery: np.ndarray, data: Nutrimouse, rows: np.ndarray) -> Dict[str, float]:
    return {
        t: cross_view_retrieval(query, gallery, data.targets[t][rows])["class_precision_at_1"] for t in NUTRIMOUSE_TARGETS
    }


def nutrimouse_cv(
    recipe: Optional[Recipe],
    data: Optional[Nutrimouse] = None,
    *,
    seeds: Sequence[IntLike] = (0,),
    n_repeats: IntLike = 10,
    n_splits: IntLike = 5,
    random_state: IntLike = 0,
    anchors: bool = True,
) -> Dict[str, Dict[str, np.ndarray]]:
    """Runs the protocol (module docstring) for ``recipe`` (``None``: anchors only).

    Returns:
        ``{"ours": {target: [len(seeds), n_repeats]}, <anchor name>: {target:
        [n_repeats]}}``: each value is one repeat's mean over its folds of the
        gene → lipid class precision@1, ``target`` in ``("genotype", "diet")``.
    """
    _sklearn("nutrimouse_cv")  # else "No module named 'sklearn.model_selection'"
    from sklearn.model_selection import RepeatedStratifiedKFold

    data = load_nutrimouse() if data is None else data
    if not isinstance(data, Nutrimouse):  # else a KeyError 'gene' for another data set
        raise TypeError(f"data: expected None or a Nutrimouse, got {type(data).__name__}")
    if not {_QUERY, _GALLERY} <= set(data.views):  # else a bare KeyError 'lipid'
        raise InvalidValueError(f"data: has views {sorted_names(data.views)}; expected {_QUERY!r} and {_GALLERY!r}", "data")
    if isinstance(seeds, (str, bytes)) or not is_iterable(seeds):  # "01" was the seeds "0" and "1"
        raise TypeError(f"seeds: expected a sequence of int seeds, got {type(seeds).__name__}")
    # ints from here: the recipe is given Python ints (Recipe), whatever integers the caller passed
    seed_list = [as_seed(seed, f"seeds[{i}]") for i, seed in enumerate(seeds)]
    if recipe is not None and not seed_list:  # else "ours" came back as empty arrays, scored as nothing
        raise InvalidValueError("seeds: expected at least one training seed for the recipe, got none", "seeds")
    if recipe is not None and not callable(recipe):
        raise TypeError(f"recipe: expected None or a Recipe, recipe(train_views, seed) -> ViewEmbedder, got {type(recipe).__name__}")
    # named here: scikit-learn's words were "Number of repetitions must be greater than 0", "Seed must be
    # between 0 and 2**32 - 1", and n_splits=True was taken for 1
    n_splits, n_repeats = as_positive_int(n_splits, "n_splits"), as_positive_int(n_repeats, "n_repeats")
    anchors = check_flag(anchors, "anchors")
    if recipe is None and not anchors:  # else {} after every fold's work, as if something were measured
        raise InvalidValueError(
            "anchors: got False with recipe None, which leaves nothing to measure; expected a recipe, or anchors=True",
            "anchors")
    for view in (_QUERY, _GALLERY):
        # here, by the data's row: standardize named a fold's row of its own train_views['gene']; and before the
        # diets are counted: a Nutrimouse of no mice was numpy's "zero-size array to reduction operation minimum"
        checked = _finite_2d(f"data.views[{view!r}]", data.views[view])  # bools as 0.0/1.0: np.ptp refuses them
        if anchors and data.views[view].shape[1] < _ANCHOR_COMPONENTS:
            # else scikit-learn's "`n_components` upper bound is 1. Got 2 instead", naming no view
            raise InvalidValueError(
                f"data.views[{view!r}]: has {data.views[view].shape[1]} column; the anchors fit {_ANCHOR_COMPONENTS} "
                f"canonical components, which need at least {_ANCHOR_COMPONENTS} columns in each view; expected a "
                "wider view, or anchors=False", f"data.views[{view!r}]")
        if anchors and not np.ptp(checked, axis=0).any():
            # else the anchors' all-zero scores, named as the metric's "query", which this function has not
            raise InvalidValueError(
                f"data.views[{view!r}]: every column is constant, which leaves the anchors' CCA nothing to correlate; "
                "expected a view whose values vary", f"data.views[{view!r}]")
    # the folds are stratified by diet: each needs a mouse of every diet the data holds. Counted over those diets
    # only: np.bincount counted a code no mouse has (a subset of the mice without one diet) as a diet of 0 mice,
    # and every n_splits was refused as outside "[2, 0]"
    fewest = int(np.unique(data.diet, return_counts=True)[1].min())
    if not 2 <= n_splits <= fewest:
        raise InvalidValueError(
            f"n_splits: expected an int in [2, {fewest}] (the fewest mice of one diet: the folds are stratified by it), "
            f"got {n_splits}", "n_splits")
    random_state = as_seed(random_state, "random_state", below=2**32)
    folds = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    methods = (["ours"] if recipe is not None else []) + (list(NUTRIMOUSE_ANCHORS) if anchors else [])
    shape = {m: (len(seed_list), n_repeats) if m == "ours" else (n_repeats,) for m in methods}
    # the figures of every repeat are held at once: past memory numpy's bare "Unable to allocate 7.28 TiB" (or,
    # past 2**63, "Maximum allowed dimension exceeded"), naming no argument
    cells = sum(int(np.prod(s, dtype=object)) for s in shape.values()) * len(NUTRIMOUSE_TARGETS)
    refuse_beyond_budget(8 * cells, "n_repeats", "the figures of {n_repeats:,} repeats take {bytes} bytes",
                         remedy="fewer repeats", n_repeats=n_repeats)
    sums = {m: {t: np.zeros(shape[m]) for t in NUTRIMOUSE_TARGETS} for m in methods}
    if anchors:  # before any fold's work (the recipe's training); an int random_state splits the same folds again
        _check_anchor_ranks(data, folds.split(data.views[_QUERY], data.diet), n_splits)
    for index, (train_rows, test_rows) in enumerate(folds.split(data.views[_QUERY], data.diet)):
        repeat = index // n_splits
        train_views = {v: x[train_rows] for v, x in data.views.items()}
        test_views = {v: x[test_rows] for v, x in data.views.items()}
        if recipe is not None:
            for s, seed in enumerate(seed_list):
                # copies for each call (the mice are few): a recipe or embedder that worked on its views in place
                # (np.log1p(x, out=x)) changed the views of the next seed's training and of the anchors after it
                embedder = recipe(_copies(train_views), seed)
                if not callable(getattr(embedder, "embed_views", None)):  # else an AttributeError
                    raise TypeError(f"recipe: returned {type(embedder).__name__}; expected a ViewEmbedder (with embed_views)")
                emb = _embedded_views(embedder.embed_views(_copies(test_views)), [_QUERY, _GALLERY], len(test_rows))
                for v in (_QUERY, _GALLERY):  # else the metric's "query has all-zero rows ... use metric='euclidean'"
                    refuse_zero_rows(f"embedder.embed_views(...)[{v!r}]", emb[v], "embeddings",
                                     "a view's own embedding of a row it holds needs a direction")
                for t, p in _precision(emb[_QUERY], emb[_GALLERY], data, test_rows).items():
                    sums["ours"][t][s, repeat] += p / n_splits
        if anchors:
            # the two views the anchors fit, as _check_anchor_ranks: every view of data was standardised, and a third
            # view that is no numbers (a view only the recipe reads) was refused as "train_views['extra']", no argument here
            train_std, test_std = standardize(*({v: views[v] for v in (_QUERY, _GALLERY)} for views in (train_views, test_views)))
            for name, scores in NUTRIMOUSE_ANCHORS.items():
                q, g = scores(train_std[_QUERY], train_std[_GALLERY], test_std[_QUERY], test_std[_GALLERY])
                for view, view_scores in ((_QUERY, q), (_GALLERY, g)):  # else named as the metric's "query" or "gallery"
                    refuse_zero_rows(f"data.views[{view!r}]", view_scores, f"{name} scores",
                                     "the mouse is at the view's mean over the fold's training mice, or differs from it "
                                     "only where they do not vary, such as a column constant over them", test_rows)
                for t, p in _precision(q, g, data, test_rows).items():
                    sums[name][t][repeat] += p / n_splits
    return sums

"""A trained multi-view model measured on the held-out split.

For every split the same definitions, shared by the demo, the benchmark and
the tests: cross-view retrieval for every ordered pair of views, k-NN and a
linear probe on the fused embedding, the fused embedding with only two views
present, and the binder's ROC-AUC; :func:`compare` sets them beside
:class:`~grapheme_multimodal.evaluation.Anchors` of the same split.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np

from ..datasets import MultipleFeatures
from .._validation import (
    FloatLike, IntLike, as_finite_float, as_real_array, as_seed, check_flag, counted, describe, is_iterable, non_finite_message,
    renamed, sorted_names,
)
from .._frames import refuse_unpaired_frames
from ..exceptions import GraphemeError, InvalidValueError, NonFiniteError, ShapeError
from ..metrics import (
    _check_neighbours, _sklearn, cross_view_retrieval, knn_accuracy, linear_probe_accuracy, roc_auc, unit_side_by_side,
)
from ._anchors import Anchors, check_same_views, check_split_labels, one_thread, refuse_zero_rows
from ._embedders import ViewEmbedder, optional_bind, optional_hidden_features
from ._pairs import check_result_keys, ordered_pairs, pair_key, two_view_key, unordered_pairs

__all__ = ["ModelScores", "evaluate_model", "binder_auc", "compare", "RETRIEVAL_METRICS"]

#: The two retrieval figures of every view pair.
RETRIEVAL_METRICS = ("class_precision_at_1", "instance_recall_at_1")

#: How far below a bound a figure may lie, relative to the larger magnitude of
#: the two (at least 1), and still reach it (:func:`reaches`): the figures are
#: ratios of counts (k / 400) and means of them, rounded by about 2**-52, as
#: is ``anchor - tolerance``; two different such ratios of fewer than 2**30
#: rows lie far further apart.
_ROUNDING = 2.0**-40


def reaches(value: float, bound: float) -> bool:
    """Whether the figure ``value`` is at least ``bound`` (an anchor, or an
    anchor less a tolerance), up to float rounding. With ``>=`` alone a
    figure exactly at the bound was counted below it when rounding fell the
    other way: three runs of 35/400 against an anchor of 35/400 (their mean
    rounds below it), or 0.8275 within 0.02 of 0.8475 (``0.8475 - 0.02``
    rounds above 0.8275)."""
    return value >= bound - _ROUNDING * max(1.0, abs(value), abs(bound))


#: What a ModelScores' retrieval holds, said when it holds no view pair.
_PAIRS_EXPECTED = "expected the figures of view pairs (evaluate_model scores every ordered pair of at least 2 views)"


@dataclass
class ModelScores:
    """A model's figures on the held-out split (keys as in :class:`Anchors`).

    Attributes:
        retrieval: ``"q->g"`` → class precision@1 and instance recall@1 of
            the query view's embeddings retrieving among the gallery view's
            (cosine, the gallery includes the query's own event).
        fused_knn: k-NN accuracy on the fused embedding (all views present;
            the training events' fused embeddings are the neighbours).
        fused_probe: linear-probe accuracy on the fused embedding.
        two_view_knn: ``"a+b"`` → k-NN accuracy on the fused embedding of
            only views ``a`` and ``b``, for training and test events alike.
        binder_auc: ROC-AUC of the binder (see :func:`binder_auc`), or
            ``None`` for a model without one.
        hidden_knn, hidden_probe: k-NN and linear-probe accuracy on the
            views' encoder hidden features side by side
            (:func:`~grapheme_multimodal.metrics.unit_side_by_side` of ``hidden_features``), or ``None``
            for an embedder without them.
    """

    retrieval: Dict[str, Dict[str, float]]
    fused_knn: float
    fused_probe: float
    two_view_knn: Dict[str, float]
    binder_auc: Optional[float]
    hidden_knn: Optional[float] = None
    hidden_probe: Optional[float] = None

    def mean_retrieval(self, metric: str) -> float:
        """Mean of ``metric`` (one of :data:`RETRIEVAL_METRICS`) over the view pairs."""
        if not isinstance(metric, str) or metric not in RETRIEVAL_METRICS:  # else a bare KeyError naming it
            raise InvalidValueError(f"metric: expected one of {list(RETRIEVAL_METRICS)}, got {metric!r}", "metric")
        if not self.retrieval:  # else NaN, with numpy's "Mean of empty slice"
            raise InvalidValueError(f"retrieval: holds no view pair, so {metric} has no mean; {_PAIRS_EXPECTED}", "retrieval")
        return float(np.mean([r[metric] for r in self.retrieval.values()]))

    def to_dict(self) -> Dict[str, Any]:
        """Plain dicts and floats (for JSON)."""
        return asdict(self)


def binder_auc(
    bind: Callable[[np.ndarray, np.ndarray], np.ndarray], view_embeddings: Mapping[str, np.ndarray], seed: IntLike = 0
) -> float:
    """ROC-AUC of ``bind(a, b)`` for same-event pairs ``(e_i(r), e_j(r))``
    against pairs whose second side is another event's ``(e_i(r), e_j(s))``,
    ``s != r`` drawn from ``seed``, pooled over every ordered pair of views.
    Each view ``[N, E]`` is read as the model reads its arrays (pandas
    frames too, nullable and pyarrow-backed ones included; frames of one
    index), and ``bind`` is given numpy arrays."""
    if not callable(bind):  # a model (not its .bind) or a mapping was "'...' object is not callable", naming nothing
        raise TypeError(f"bind: expected a callable bind(a, b) -> [N] strengths, such as model.bind, got {describe(bind)}")
    if not isinstance(view_embeddings, Mapping):  # else numpy's "only integer scalar arrays ..."
        raise TypeError(f"view_embeddings: expected a mapping view name -> [N, E] array, got {type(view_embeddings).__name__}")
    seed = as_seed(seed, "seed", below=None)  # else numpy's unnamed error
    names = list(view_embeddings)
    # a view's row r pairs with row r of the others: data frames of the same events in another order
    # were scored as the same events, without a word
    refuse_unpaired_frames((f"view_embeddings[{v!r}]", view_embeddings[v]) for v in names)
    views = {v: _view_array(view_embeddings[v], f"view_embeddings[{v!r}]") for v in names}
    rows = [views[v].shape[:1] for v in names]
    if len(names) < 2 or len(set(rows)) != 1 or rows[0][0] < 2:
        # else numpy's "need at least one array to concatenate", "low >= high" or a broadcast error
        raise ShapeError(
            f"view_embeddings: expected at least 2 views of the same events, at least 2 rows each, "
            f"got rows {dict(zip(names, (r[0] if r else None for r in rows)))}", "view_embeddings",
        )
    rng = np.random.default_rng(seed)
    n = rows[0][0]
    positives: list[np.ndarray] = []
    negatives: list[np.ndarray] = []
    for i, j in ordered_pairs(names):
        other = (np.arange(n) + rng.integers(1, n, size=n)) % n
        # copies (the negatives' second side is one): a bind that works in place (a *= 2, a /= norms) changed
        # the caller's embeddings, and scored the pairs after it (the negatives, the next views) on other values
        for scores, second in ((positives, views[j].copy()), (negatives, views[j][other])):
            strengths = np.asarray(bind(views[i].copy(), second))
            if strengths.shape != (n,):  # a scalar or [N, E] was a numpy error, or scores named positive_scores
                raise ShapeError(f"bind: returned shape {strengths.shape} for views {i!r}, {j!r}; expected ({n},), "
                                 "one strength per row", "bind")
            if strengths.dtype.kind not in "iuf":  # else roc_auc's error about positive_scores, an argument not passed
                raise TypeError(f"bind: returned {describe(strengths)} for views {i!r}, {j!r}; expected real-valued "
                                "strengths (not bools, strings or complex numbers)")
            if strengths.dtype.kind == "f" and not np.isfinite(strengths).all():
                raise NonFiniteError(f"bind: returned NaN or inf for views {i!r}, {j!r}; expected finite strengths", "bind")
            scores.append(strengths)
    return roc_auc(np.concatenate(positives), np.concatenate(negatives))


def _view_array(view: Any, name: str) -> np.ndarray:
    """One of :func:`binder_auc`'s views as the ``[N, E]`` array of real
    numbers the model's ``bind`` reads (pandas' nullable and pyarrow-backed
    frames included), finite, refused by ``name``: read with ``np.asarray``,
    such a frame became objects, and the bind refused it (or a masked array,
    or a 1-D view) naming its own argument, ``a`` or ``b``, no argument of
    the caller's."""
    arr = as_real_array(view, name)
    # no columns refused as cross_view_retrieval refuses them: a bind of empty rows scored every pair alike (AUC 0.5)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ShapeError(f"{name}: expected an [N, E] array of embeddings, E at least 1, got shape {arr.shape}", name)
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        # else the bind's own refusal, naming its argument: "a: contains a non-finite value" of model.bind
        at = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise NonFiniteError(f"{name}: row {at[0]} {non_finite_message(arr[at])}", name)
    return arr


def _own(x: Any) -> Any:
    """A copy of the array ``x`` for a caller's function to do with as it
    likes (anything else as it is)."""
    return x.copy() if isinstance(x, np.ndarray) else x


def evaluate_model(
    embedder: ViewEmbedder,
    train: MultipleFeatures,
    test: MultipleFeatures,
    *,
    k: IntLike = 5,
    seed: IntLike = 0,
    two_views: bool = True,
) -> ModelScores:
    """Measures ``embedder`` on ``test`` (raw views; the training split gives
    the neighbours and the probe's training rows). ``seed`` draws the
    binder's negative pairs; ``two_views=False`` skips the 15 two-view fits.
    View names that would give two pairs one key are refused, as by
    :func:`~grapheme_multimodal.evaluation.compute_anchors`.

    Test classes that ``train`` lacks are scored, but with a ``UserWarning``
    naming them: the k-NN and the linear probe never predict a class they
    were not trained on, so those rows count as wrong in every accuracy
    (``fused_knn``, ``fused_probe``, ``two_view_knn``, ``hidden_*``; not the
    retrieval, which reads the test labels alone)."""
    _sklearn("evaluate_model")  # else "No module named 'sklearn.utils'", deep in the label checks
    for name, split in (("train", train), ("test", test)):
        if not isinstance(split, MultipleFeatures):  # else "'dict' object has no attribute 'views'"
            raise TypeError(f"{name}: expected a MultipleFeatures (datasets.train_test_split), got {type(split).__name__}")
    check_same_views(train, test)
    if len(test.views) < 2:
        # else binder_auc's "view_embeddings: expected at least 2 views", or with no binder no pair
        # retrieved at all and a mean retrieval of NaN
        raise InvalidValueError(
            f"test: has {len(test.views)} view {list(test.views)}; expected at least 2 (the figures compare views "
            "with each other)", "test")
    if test.n_events < 2:  # else binder_auc's "view_embeddings: ... at least 2 rows each"
        raise ShapeError(
            f"test: has {counted(test.n_events, 'row')}; expected at least 2 (retrieval and the binder's negatives "
            "need another event)", "test")
    check_split_labels(train, test, probe=True)
    if not all(callable(getattr(embedder, method, None)) for method in ("embed_views", "embed_fused")):
        raise TypeError(f"embedder: expected a ViewEmbedder (with embed_views and embed_fused), got {type(embedder).__name__}")
    two_views = check_flag(two_views, "two_views")  # 0 or "no" would be read as a choice
    # before any embedding: else one pair's figures overwrote another's under one key
    check_result_keys(train.views, "train.views", two_view_keys=two_views)
    # here, not only by binder_auc: without a binder a seed of -1 or 1.5 passed, with one it failed after the k-NN work
    seed = as_seed(seed, "seed", below=None)
    _check_neighbours(k, train.n_events)  # before any embedding, as the seed: k=0 was refused once all were done
    with one_thread():
        return _evaluate(embedder, train, test, k, seed, two_views)


def _embedded(what: str, out: Any, rows: int) -> np.ndarray:
    """What an embedder returned, checked to be ``[rows, d]`` finite real
    numbers: else the metrics blamed their own arguments (train_y "to match
    train_x rows", "query: row 2 holds NaN") for the embedder's output."""
    arr = as_real_array(out, what)
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise ShapeError(f"{what}: returned shape {arr.shape}; expected ({rows}, d), one row per event", what)
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise NonFiniteError(f"{what}: row {row} holds NaN or inf; expected finite embeddings", what)
    return arr


def _embedded_views(
    out: Any, names: Sequence[str], rows: int, what: str = "embedder.embed_views", same_width: bool = True
) -> Dict[str, np.ndarray]:
    """``embed_views``' result (or another method's, ``what``), checked to
    hold every view ``[rows, d]``, with one ``d`` for all when
    ``same_width`` (views retrieve among each other: else "gallery must
    have the same shape as query", arguments the caller never passed)."""
    if not isinstance(out, Mapping):
        raise TypeError(f"{what}: returned {type(out).__name__}; expected a mapping view name -> [N, d] array")
    missing = [v for v in names if v not in out]
    if missing:  # else a KeyError naming the view
        raise InvalidValueError(f"{what}: returned no {'embedding' if same_width else 'features'} for the views {missing} "
                                f"(got {list(out)})", what)
    checked = {v: _embedded(f"{what}(...)[{v!r}]", out[v], rows) for v in names}
    widths = {v: x.shape[1] for v, x in checked.items()}
    if same_width and len(set(widths.values())) > 1:
        raise ShapeError(f"{what}: returned embeddings of different widths {widths}; expected one width (the views "
                         "are compared with each other)", what)
    return checked


def _same_width(what: str, train_out: np.ndarray, test_out: np.ndarray) -> None:
    """``what`` returned as many columns for the test split as for the
    training split: else the k-NN's "test_x has 3 columns but train_x has 2"."""
    if train_out.shape[1] != test_out.shape[1]:
        raise ShapeError(f"{what}: returned {test_out.shape[1]} columns for test's views, {train_out.shape[1]} for "
                         "train's; expected one width", what)


def _on_split(method: Callable[[Mapping[str, np.ndarray]], Any], split: str, views: Mapping[str, np.ndarray]) -> Any:
    """``method(views)`` of the embedder on ``split``'s views, its errors
    about its own ``views['a']`` named as the caller's ``test.views['a']``
    (a ModelEmbedder's "views: unknown view names" said nothing of which
    split it could not embed). The embedder gets a copy of each view, as
    :func:`binder_auc`'s bind does: one that worked on its views in place
    changed the caller's splits, and the figures of every later call (the
    fused embedding after the views', the next seed's run) were made on
    other values, without a word."""
    try:
        return method({v: _own(x) for v, x in views.items()})
    except (GraphemeError, TypeError) as err:
        names = {f"views[{v!r}]": f"{split}.views[{v!r}]" for v in views}
        raise renamed(err, {**names, "views": f"{split}.views"}) from None


def _evaluate(embedder, train, test, k, seed, two_views) -> ModelScores:
    names = list(test.views)
    n_train, n_test = len(train.labels), len(test.labels)
    test_views = _embedded_views(_on_split(embedder.embed_views, "test", test.views), names, n_test)
    test_fused = _embedded("embedder.embed_fused", _on_split(embedder.embed_fused, "test", test.views), n_test)
    train_fused = _embedded("embedder.embed_fused", _on_split(embedder.embed_fused, "train", train.views), n_train)
    _same_width("embedder.embed_fused", train_fused, test_fused)
    for v in names:
        refuse_zero_rows(f"embedder.embed_views(...)[{v!r}]", test_views[v], "embeddings",
                         "a view's own embedding of a row it holds needs a direction")
    retrieval = {
        pair_key(q, g): cross_view_retrieval(test_views[q], test_views[g], test.labels) for q, g in ordered_pairs(names)
    }
    two_view_knn = {}
    if two_views:
        for a, b in unordered_pairs(names):
            pick = lambda split: {a: split.views[a], b: split.views[b]}  # noqa: E731
            train_pair = _embedded("embedder.embed_fused", _on_split(embedder.embed_fused, "train", pick(train)), n_train)
            test_pair = _embedded("embedder.embed_fused", _on_split(embedder.embed_fused, "test", pick(test)), n_test)
            _same_width("embedder.embed_fused", train_pair, test_pair)
            two_view_knn[two_view_key(a, b)] = knn_accuracy(train_pair, train.labels, test_pair, test.labels, k=k)
    bind = optional_bind(embedder)
    hidden_knn = hidden_probe = None
    features = optional_hidden_features(embedder)
    if features is not None:
        what = "embedder.hidden_features"
        train_hidden, test_hidden = (
            unit_side_by_side(_embedded_views(_on_split(features, name, split.views), names, len(split.labels), what,
                                              same_width=False), names)
            for name, split in (("train", train), ("test", test))
        )
        _same_width(what, train_hidden, test_hidden)
        hidden_knn = knn_accuracy(train_hidden, train.labels, test_hidden, test.labels, k=k)
        hidden_probe = linear_probe_accuracy(train_hidden, train.labels, test_hidden, test.labels)
    return ModelScores(
        retrieval=retrieval,
        fused_knn=knn_accuracy(train_fused, train.labels, test_fused, test.labels, k=k),
        fused_probe=linear_probe_accuracy(train_fused, train.labels, test_fused, test.labels),
        two_view_knn=two_view_knn,
        binder_auc=None if bind is None else binder_auc(bind, test_views, seed),
        hidden_knn=hidden_knn,
        hidden_probe=hidden_probe,
    )


def _mean_std(values: Sequence[float]) -> Dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std())}


def _optional_mean_std(values: Sequence[Optional[float]]) -> Optional[Dict[str, float]]:
    """Mean and std when every run has the figure, else ``None``."""
    return None if any(v is None for v in values) else _mean_std(values)


def _figure(value: Any, where: str, optional: bool = False) -> None:
    """Nothing when ``value`` is a real number in [0, 1] (or ``None`` where
    ``optional``); else ``NonFiniteError`` for NaN or inf, ``TypeError`` for
    no number, ``InvalidValueError`` for one outside [0, 1], each naming ``where``."""
    if value is None and optional:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.number)) or isinstance(value, np.complexfloating):
        raise TypeError(f"{where}: expected a figure (a finite real number), got {describe(value)}")
    if not np.isfinite(float(value)):
        raise NonFiniteError(f"{where}: expected a finite figure, got {float(value)}", _argument(where))
    if not 0 <= float(value) <= 1:
        # every figure is a fraction (a precision, recall, accuracy or AUC): one in percent (85 for 0.85) or
        # negative counted as far above or below its bound, and every pair "within tolerance", without a word
        raise InvalidValueError(f"{where}: expected a figure in [0, 1] (a fraction: 0.85, not 85 percent), got "
                                f"{float(value)!r}", _argument(where))


def _argument(where: str) -> str:
    """The argument of ``compare`` that ``where`` (``"runs[0].fused_knn"``) lies in."""
    return where.split(".")[0].split("[")[0]


def _figures(mapping: Any, where: str, metrics: bool = False) -> None:
    """Each figure of the mapping ``mapping`` (pair -> figure, or pair -> the
    :data:`RETRIEVAL_METRICS` figures where ``metrics``) checked by :func:`_figure`."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{where}: expected a mapping view pair -> figure{'s' if metrics else ''}, got {describe(mapping)}")
    for pair, value in mapping.items():
        if not metrics:
            _figure(value, f"{where}[{pair!r}]")
            continue
        if not isinstance(value, Mapping) or any(m not in value for m in RETRIEVAL_METRICS):
            raise InvalidValueError(f"{where}[{pair!r}]: expected a mapping with the figures {list(RETRIEVAL_METRICS)}, "
                                    f"got {describe(value)}", _argument(where))
        for m in RETRIEVAL_METRICS:
            _figure(value[m], f"{where}[{pair!r}][{m!r}]")


def _refuse_odd_figures(runs: Sequence[ModelScores], anchors: Anchors) -> None:
    """A clear error for a figure of ``runs`` or ``anchors`` that is NaN, inf
    or no number (a hand-edited or failed run read back from JSON): NaN
    compared false with every bound, so a run or anchor of NaN counted as a
    target missed, and a NaN anchor made every figure beside it fall short,
    without a word."""
    for i, run in enumerate(runs):
        _figures(run.retrieval, f"runs[{i}].retrieval", metrics=True)
        _figure(run.fused_knn, f"runs[{i}].fused_knn")
        _figure(run.fused_probe, f"runs[{i}].fused_probe")
        _figures(run.two_view_knn, f"runs[{i}].two_view_knn")
        for name in ("binder_auc", "hidden_knn", "hidden_probe"):
            _figure(getattr(run, name), f"runs[{i}].{name}", optional=True)
    _figures(anchors.cca, "anchors.cca", metrics=True)
    _figure(anchors.raw_knn, "anchors.raw_knn")
    _figure(anchors.raw_probe, "anchors.raw_probe")
    _figures(anchors.raw_two_view_knn, "anchors.raw_two_view_knn")
    if not isinstance(anchors.multiview, Mapping):
        raise TypeError(f"anchors.multiview: expected a mapping method -> view pair -> figures, got {describe(anchors.multiview)}")
    for method, scores in anchors.multiview.items():
        _figures(scores, f"anchors.multiview[{method!r}]", metrics=True)


def compare(runs: Sequence[ModelScores], anchors: Anchors, tolerance: FloatLike = 0.02) -> Dict[str, Any]:
    """``runs`` (one per training seed) beside ``anchors``: every figure as
    mean and standard deviation over the runs, and the counts of view pairs
    where the runs' mean is within ``tolerance`` of exact CCA (or above it),
    and of two-view pairs where the fused k-NN is at least the raw views'
    (a figure exactly at its bound counts, whatever the rounding: :func:`reaches`).
    Every figure of ``runs`` and ``anchors`` must be a fraction in [0, 1]
    (``NonFiniteError`` for NaN or inf, ``TypeError`` for no number,
    ``InvalidValueError`` for one outside [0, 1], such as a figure in percent;
    each naming where it lies: ``runs[0].fused_knn``).
    """
    if isinstance(runs, (ModelScores, str, bytes, Mapping)) or not is_iterable(runs):
        # one ModelScores was "'ModelScores' object is not subscriptable", a generator the same
        raise TypeError(f"runs: expected a sequence of ModelScores (one per training seed), got {type(runs).__name__}")
    runs = list(runs)
    if not runs:
        raise InvalidValueError("runs: expected at least one ModelScores", "runs")
    for i, run in enumerate(runs):
        if not isinstance(run, ModelScores):
            raise TypeError(f"runs[{i}]: expected a ModelScores (evaluate_model's result), got {type(run).__name__}")
        if set(run.retrieval) != set(runs[0].retrieval) or set(run.two_view_knn) != set(runs[0].two_view_knn):
            # a KeyError naming a view pair, or pairs of the first run only compared
            raise InvalidValueError(
                f"runs[{i}]: scores view pairs {sorted_names(run.retrieval)} (two-view {sorted_names(run.two_view_knn)}); expected "
                f"those of runs[0], {sorted_names(runs[0].retrieval)} (two-view {sorted_names(runs[0].two_view_knn)})", f"runs[{i}]")
    if not runs[0].retrieval:  # else NaN means of no pairs, and "0 of 0" pairs within tolerance
        raise InvalidValueError(f"runs[0].retrieval: holds no view pair; {_PAIRS_EXPECTED}", "runs")
    if not isinstance(anchors, Anchors):
        raise TypeError(f"anchors: expected Anchors (compute_anchors' result), got {type(anchors).__name__}")
    missing = (sorted_names(set(runs[0].retrieval) - set(anchors.cca))
               + sorted_names(set(runs[0].two_view_knn) - set(anchors.raw_two_view_knn)))
    if missing:  # a KeyError naming the first pair: runs and anchors of different data
        raise InvalidValueError(f"anchors: no figures for the runs' view pairs {missing}; expected anchors computed on "
                                "the same views as the runs", "anchors")
    _refuse_odd_figures(runs, anchors)
    for method, scores in anchors.multiview.items():  # a bare KeyError naming the first pair a method lacks
        lacking = sorted_names(set(runs[0].retrieval) - set(scores))
        if lacking:
            raise InvalidValueError(f"anchors.multiview[{method!r}]: no figures for the runs' view pairs {lacking}; "
                                    "expected anchors computed on the same views as the runs", "anchors")
    # NaN compared false with every score: no pair within it, without a word
    tolerance = as_finite_float(tolerance, "tolerance", lambda t: t >= 0, "a finite number >= 0")
    pairs = list(runs[0].retrieval)
    retrieval = {
        p: {m: _mean_std([r.retrieval[p][m] for r in runs]) for m in RETRIEVAL_METRICS} for p in pairs
    }
    within = {
        m: sum(reaches(retrieval[p][m]["mean"], anchors.cca[p][m] - tolerance) for p in pairs) for m in RETRIEVAL_METRICS
    }
    two_view = {p: _mean_std([r.two_view_knn[p] for r in runs]) for p in runs[0].two_view_knn}
    return {
        "n_runs": len(runs),
        "tolerance": tolerance,
        "retrieval": retrieval,
        "mean_retrieval": {m: _mean_std([r.mean_retrieval(m) for r in runs]) for m in RETRIEVAL_METRICS},
        "pairs_within_tolerance_of_cca": within,
        "n_pairs": len(pairs),
        "fused_knn": _mean_std([r.fused_knn for r in runs]),
        "fused_probe": _mean_std([r.fused_probe for r in runs]),
        "two_view_knn": two_view,
        "two_view_pairs_at_least_raw": sum(reaches(two_view[p]["mean"], anchors.raw_two_view_knn[p]) for p in two_view),
        # over every run, as the hidden read-outs (it was the mean of the runs that had one, beside n_runs of all)
        "binder_auc": _optional_mean_std([r.binder_auc for r in runs]),
        "hidden_knn": _optional_mean_std([r.hidden_knn for r in runs]),
        "hidden_probe": _optional_mean_std([r.hidden_probe for r in runs]),
        "anchors": {
            "cca_mean_retrieval": {m: float(np.mean([anchors.cca[p][m] for p in pairs])) for m in RETRIEVAL_METRICS},
            "multiview_mean_retrieval": {
                method: {m: float(np.mean([scores[p][m] for p in pairs])) for m in RETRIEVAL_METRICS}
                for method, scores in anchors.multiview.items()
            },
        },
    }

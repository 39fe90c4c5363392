"""``fit()``: epochs of shuffled mini-batches with a progress bar, modality
dropout, input standardisation, validation and early stopping.

Every random choice (each epoch's shuffle and dropout) is drawn from a
generator seeded by ``(seed, epoch number)`` (``epoch_rng``: a stream of
its own for each pair), and the objectives' own draws
from the model's counter, so ``fit(epochs=2)`` twice — even across a
save/load — gives the same model as ``fit(epochs=4)``.
"""

from __future__ import annotations

__all__ = ["fit", "History", "MAX_STEPS"]

import contextlib
import contextvars
import functools
import math
import re
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, TypeVar

import numpy as np

from ._core import MODALITY_NAMES, NUM_MODALITIES
from ._parallel import bar_position, check_cancelled
from ._locking import call_fitting, call_metric, refuse_in_fit, uninterrupted, waiting_from_metric
from ._validation import MASK_TAKEN as _MASK_TAKEN, taking_no_mask
from ._validation import (
    FloatLike, IntLike, as_finite_float, call_with_set, check_flag, check_model, context_set, describe, exact_int, first_in_scope,
    is_int, leave_precision_scopes, one_modality_rows_hint, refuse_beyond_budget,
    renamed, shown_number, sorted_names, wrong_type,
)
from ._caller_warnings import warn_at_caller
from ._frames import frame_columns, missing_input_refusal, refuse_reordered_fitted_names, refuse_unpaired_columns
from .averaging import WeightAverage, check_decay, model_weights
from .averaging import resume as resume_average
from .batch import Batch, event_components
from .buffer import ExperienceBatch, ExperienceBuffer
from .checkpoint import _checked_epochs, _checked_history
from .learning import refuse_non_unit_experiences
from .exceptions import ConstantModalityWarning, InvalidValueError, NonFiniteError, ShapeError, UntrainedModalityWarning
from .objectives import (  # unmeasured_objectives...: train_step's check of one batch shares them
    _ONE_HELD_ROW, _ONE_ROW, _ONE_ROW_REASONS, ONE_ROW_REMEDY, OBJECTIVES, ROW_COMPARING_OBJECTIVES, _zero_because,
    all_zero_error, check_something_trains, neighborhood_without_neighbors_error, one_row_clause, resolve_weights,
    split_by_rows, unmeasured_objectives,
)
from .types import Modality, MultiModalEvent, bounded_repr, refuse_reordered_labels

if TYPE_CHECKING:
    from .model import LearnableMultiModal

Metric = Callable[["LearnableMultiModal"], float]
_R = TypeVar("_R")
#: The epoch records a History's repr shows at each end (the records between are counted).
_REPR_END_EPOCHS = 2


@dataclass
class History:
    """What :func:`fit` did: one record per epoch run (``epoch``, ``loss`` — the
    mean weighted total — each objective's mean, ``val_*`` losses and
    metrics, ``seconds``), the best epoch (``best_epoch``: its number as
    the records' ``epoch`` counts, the model's earlier epochs included)
    and whether it stopped early. With early stopping the model ends
    holding ``best_epoch``'s weights: the records (and the model's
    ``epochs_trained``, which counts every epoch run) include the epochs
    after it, which were rolled back; ``cv_curve``: when cross-validation chose
    the number of epochs
    (:func:`grapheme_multimodal.stopping.fit_with_stopping`), the folds' mean
    validation loss per epoch (the count chosen, ``len(epochs)``, is at
    ``cv_curve[len(epochs) - 1]``), else ``None``."""

    epochs: List[Dict[str, Any]] = field(default_factory=list)
    monitor: Optional[str] = None
    best_epoch: Optional[int] = None
    stopped_early: bool = False
    cv_curve: Optional[List[float]] = None

    def __repr__(self) -> str:
        # the dataclass's repr printed every epoch's record (and every value of cv_curve): 65 kB for the
        # recipe's 300 epochs, shown whole by a notebook for a `model.fit(...)` ending a cell; the first
        # and last records are shown, and how many lie between
        epochs = self.epochs
        if type(epochs) is list and len(epochs) > 2 * _REPR_END_EPOCHS + 1:
            k = _REPR_END_EPOCHS
            shown = ", ".join(bounded_repr(e) for e in epochs[:k])
            shown += f", ... {len(epochs) - 2 * k:,} more, " + ", ".join(bounded_repr(e) for e in epochs[-k:])
            shown = f"[{shown}]"
        else:
            shown = bounded_repr(epochs)
        return (f"{type(self).__name__}(epochs={shown}, monitor={self.monitor!r}, best_epoch={self.best_epoch!r}, "
                f"stopped_early={self.stopped_early!r}, cv_curve={bounded_repr(self.cv_curve)})")

    def __getitem__(self, key: str) -> List[float]:
        """``history["loss"]`` → that value per epoch. A key no epoch
        recorded is a KeyError (a misspelt ``"val_totl"`` was ``[]``), as
        is a position (``history[-1]``: the records are ``history.epochs``)."""
        if not isinstance(key, str):  # history[-1] was "not recorded", as if a name were misspelt
            raise KeyError(f"history[{key!r}]: expected the name of a recorded value ({self._recorded()}, e.g. 'loss'); "
                           f"the epochs' records are history.epochs, e.g. history.epochs[{key!r}]")
        values = [e[key] for e in self.epochs if key in e]
        if self.epochs and not values:
            raise KeyError(f"history[{key!r}]: not recorded; recorded: {self._recorded()}")
        return values

    def __contains__(self, key: object) -> bool:
        """Whether an epoch recorded ``key`` (``"val_total" in history``:
        validation ran), as ``history[key]`` reads it. Without it, ``in``
        fell back on iteration, ``history[0]``, and raised its KeyError."""
        return isinstance(key, str) and any(key in e for e in self.epochs)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        """Refused, naming what to iterate over: with ``__getitem__`` by
        name alone, ``list(history)`` and ``for`` called ``history[0]``."""
        raise TypeError("History: expected history.epochs to iterate over (one record per epoch), or a recorded "
                        "name to read per epoch, history['loss']")

    def _recorded(self) -> List[str]:
        return sorted_names({k for e in self.epochs for k in e})

    def plot(self, path: Any, title: str = "training") -> None:
        """Draws the loss curves (and validation curves) to ``path``, in the
        image format its name says (``.pdf``, ``.svg``, ...; PNG for
        ``.png`` or a name with none; needs matplotlib:
        ``pip install grapheme-multimodal[plot]``)."""
        from .plotting import plot_history

        plot_history(self.epochs, path, title=title, best_epoch=self.best_epoch)


#: The fit that the scopes set around a caller's own ``fit`` function (:func:`call_for_fit_of`) are meant
#: for: ``(model, data)``, or None (no such function called: every fit in the scopes is theirs).
_FIT_FOR: "contextvars.ContextVar[Optional[Tuple[Any, Any]]]" = contextvars.ContextVar("_FIT_FOR", default=None)


def call_for_fit_of(model: "LearnableMultiModal", data: Any, fit: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
    """``fit(*args, **kwargs)`` (a call of the user's own ``fit`` function, which
    :func:`~grapheme_multimodal.stopping.fit_with_stopping` takes), the
    scopes its caller set (:func:`call_training_on_split`, the data's names in a
    :func:`~._validation.precision_scope`, :func:`constant_rows_refused_as`,
    :func:`taking_no_mask`) hold for the fit of ``model`` on ``data``
    itself (the same objects) only. Another fit there, of another model or
    on other data (a side model the function fits too), is the user's: its
    data named and checked as fit's own. Such a fit on other data heard
    "inputs['auditory']: holds the same values in every row holding it among
    the rows trained on (those held out to stop on are not)" of rows no
    split had held out. Set by :func:`~._validation.call_with_set`: a Ctrl-C
    cannot leave it behind."""
    return call_with_set(_FIT_FOR, (model, data), fit, *args, **kwargs)


def _scopes_bound(function: Callable[..., "History"]) -> Callable[..., "History"]:
    """``fit``, run outside its callers' scopes when they were set for
    another fit (see :func:`call_for_fit_of`)."""

    @functools.wraps(function)
    def bound(*args: Any, **kwargs: Any) -> "History":
        meant = _FIT_FOR.get()
        if meant is None:
            return function(*args, **kwargs)
        model = args[0] if args else kwargs.get("model")
        data = args[1] if len(args) > 1 else kwargs.get("data")
        if meant[0] is model and meant[1] is data:  # the fit they were set for: nested fits (a metric's) are not
            return call_with_set(_FIT_FOR, None, function, *args, **kwargs)
        return _call_outside_scopes(function, *args, **kwargs)

    return bound


@_scopes_bound
def fit(
    model: "LearnableMultiModal",
    data: Any,
    *,
    mask: Any = None,
    epochs: IntLike = 10,
    batch_size: IntLike = 64,
    objectives: Optional[Mapping[str, float]] = None,
    lr: Optional[float] = None,
    validation: Any = None,
    validation_mask: Any = None,
    metrics: Optional[Mapping[str, Metric]] = None,
    early_stopping: Optional[IntLike] = None,
    monitor: Optional[str] = None,
    mode: Optional[str] = None,
    modality_dropout: float = 0.0,
    ema_decay: Optional[float] = None,
    standardize: bool = True,
    progress: bool = True,
    seed: Optional[IntLike] = None,
    _steps: Optional[Callable[..., "Steps"]] = None,
) -> History:
    """Trains ``model`` on ``data``.

    Args:
        data: per-modality arrays ``{modality: [N, d_m]}`` or lists of
            :class:`Graph` (with ``mask`` ``[N, 7]``; ``None`` in a list of
            graphs is a row absent from that modality, as False in ``mask``,
            which must not mark it present: the same training, bit for bit,
            as any graph there with False in ``mask``), a list of
            :class:`MultiModalEvent` (one with no components is a row
            holding no modality), or an
            :class:`ExperienceBuffer` (its raw inputs when every experience
            has them — the encoders then learn too — else its recorded
            embeddings, fused embeddings and rewards).
        epochs, batch_size: passes over ``data`` and rows per step (the last
            batch of an epoch may be smaller; a last batch of one row joins
            the one before it). With ``batch_size=1`` the other batches have
            one row each, on which the objectives that compare rows
            (contrastive, binding, fused_contrastive) contribute 0: a
            ``UserWarning`` says so, as it does for ``data`` of one row;
            one row with only those objectives weighted is refused, as is
            data on which every weighted objective is 0 (``contrastive``
            and ``binding`` need two rows holding the same two modalities,
            ``cross_modal`` a row holding two: one modality alone trains
            none of them). A row that holds no modality (False throughout
            ``mask``, ``None`` in every list of graphs, an event with no
            components) is taken, all three alike: every objective passes
            over it (data in which no row holds one is refused). More
            steps than Adam counts (``2**63 - 1`` in all, e.g.
            ``epochs=2**64``) are refused too.
        objectives: objective weights (default: the default mix; see
            :mod:`grapheme_multimodal.objectives`).
        lr: Adam step size (default ``config.learning_rate``).
        validation, validation_mask: data of the same kind (its mask beside
            arrays, as ``mask`` beside ``data``), evaluated after every epoch:
            ``val_total`` and ``val_<objective>`` losses. Of one row, the
            objectives that compare rows are 0 on it (and ``cross_modal``
            when it holds one modality): a ``UserWarning`` says so, and a
            ``monitor`` that would be 0 every epoch is refused.
            So is early stopping on an objective its rows make 0 every
            epoch: ``contrastive`` and ``binding`` need two rows holding the
            same two modalities, ``cross_modal`` a row holding two.
            A modality it holds that no row of ``data`` holds, and no
            earlier training reached, gets an
            :class:`~grapheme_multimodal.UntrainedModalityWarning`: its
            untrained encoder's embeddings count in the validation losses.
        metrics: extra validation metrics, ``{name: fn(model) -> float}``,
            recorded as ``val_<name>`` (so no name may be ``total`` or an
            objective's: those are the validation losses). ``fn`` sees the
            model after the epoch, its record in ``model.history`` (values
            of the metrics yet to run added after); a model it saves or
            pickles is the model ``fit`` leaves when it stops there (with
            averaging, the average in the weights).
        early_stopping: stop after this many epochs without improvement of
            ``monitor`` (default ``val_total`` with validation, else
            ``loss``) and restore the best epoch's weights and optimizer
            state. ``mode`` is ``"min"`` or ``"max"`` (default: ``"max"`` for
            custom metrics, ``"min"`` for losses and for a metric named
            ``loss``, recorded as ``val_loss``, the name a validation loss
            goes by elsewhere). Its record (the best value so far, the
            epochs waited since, the best epoch's weights) is this call's
            own, held by no model, checkpoint or pickle: a ``fit`` that
            resumes a run (after an interrupt, from a checkpoint saved at an
            epoch's end) starts it afresh and can restore only an epoch it
            ran itself, so it may stop, and end, elsewhere than the run
            never stopped; without ``early_stopping`` a resume is exact.
        modality_dropout: probability of hiding each present modality of a
            row during training (never the row's last one), so fused
            embeddings stay good when modalities are missing. Refused when
            no row holds two modalities (it would hide nothing).
        ema_decay: keep an exponential moving average of the weights, one
            update per epoch with this decay (warmed up as
            ``min(ema_decay, (1 + t) / (10 + t))``), and end with the model
            holding the average — at the best epoch with early stopping.
            Training, validation and early stopping see the trained
            weights; the next ``fit`` with averaging continues from them
            and from the average exactly (see
            :mod:`grapheme_multimodal.averaging`). ``None``: no averaging
            (a model that holds an average then trains on from it).
        standardize: learn each modality's input mean and std from ``data``
            before the first epoch, unless the model already has that
            modality's (stored in the model, applied at encode time, saved
            with it): a modality a later ``fit`` brings is standardised too,
            those the model has keep theirs. Data from which every present
            modality would learn its standardisation and whose rows are all
            the same (one row, copies of one) is refused: standardised, every
            input is 0 and nothing trains (pass ``standardize=False``).
            ``epochs=0`` learns none either: it checks every argument and
            leaves the model as it was.
            The model reads ``data`` in float32: a float64 column whose
            variation float32 cannot hold (``1e6 + 1e-3 * x``, Unix
            timestamps seconds apart) gets a
            :class:`~grapheme_multimodal.PrecisionLossWarning` naming it,
            with or without standardisation; subtract its mean (or rescale
            it) before passing it. ``fit`` trains on its own copy of the
            float32 arrays (and mask) the caller could write (a float64
            array's float32 cast is one already): another thread writing
            ``data`` or ``validation`` during ``fit`` changes nothing of
            what trains. A read-only array (``np.load(path,
            mmap_mode="r")``, ``x.flags.writeable = False``) is read in
            place, not copied, so data larger than memory trains; it must
            then not change until ``fit`` returns.
        progress: show a tqdm progress bar with the running loss on
            ``sys.stderr`` (it starts no thread: tqdm's monitor thread is
            off for it). A stderr that fails (closed, a broken pipe) ends
            the drawing, not the training.
        seed: seeds shuffling and dropout (default ``config.seed``): an int
            >= 0 of any size; every ``(seed, epoch)`` draws its own stream.
        _steps: internal: makes the :class:`Steps` that take each step
            (default :class:`LocalSteps`, in this process);
            :func:`grapheme_multimodal.distributed.fit` passes Ray workers.

    Returns:
        The :class:`History` of this call (also appended to ``model.history``).

    Every argument and every row of ``data`` and ``validation`` is checked
    before the first step (a NaN is reported at the user's row). If anything
    fails once training has started, the model is put back as it was before
    the call (weights, Adam state, standardisation, ``epochs_trained``,
    ``history``, weight average) and the error is raised. Interrupted (``KeyboardInterrupt``),
    it keeps the epochs completed so far and drops the partial one, so
    ``fit`` can resume exactly (but for ``early_stopping``'s record, which
    a new call starts afresh); interrupted before its first epoch
    completes, it leaves the model as it was before the call (the
    standardisation it learned is dropped too). Other threads may read the model during
    ``fit`` (they see it between steps); other writers wait until it ends.
    Another thread's assignment to ``epochs_trained`` or ``history`` (or a
    change of that list), which no lock holds back, makes ``fit`` fail with
    a ``RuntimeError`` when it next records an epoch, leaving the model as
    it was before the call.
    A ``metrics`` function may read the model (``encode``,
    ``losses``, ``state_dict``, ``save``) but not train or change it
    (``fit``, ``train_step``, ``backward``, ``step``, ``load_state_dict``,
    ``__setstate__``..., or an assignment to ``epochs_trained`` or
    ``history``, or a change of that list): ``RuntimeError``, since it
    runs in ``fit``'s own thread, in the middle of ``fit``, which then
    leaves the model as it was before the call; train a copy there instead.
    Other code that runs in ``fit``'s thread during ``fit`` — a signal
    handler, a ``__del__`` or weakref callback, a tracing hook — gets the
    same refusal for a ``fit`` of this model (and this ``fit`` then fails,
    leaving the model as it was); its other writes (``train_step``,
    ``load_state_dict``...) the model's lock lets in as ``fit``'s own, not
    refused: they land between two of ``fit``'s steps, in no epoch's
    record, and are undone with the rest if ``fit`` fails. Such code may
    read the model; a signal handler sees it between two steps (changes
    made of several calls hold signals back: ``_locking.uninterrupted``),
    but a ``__del__`` or weakref callback runs wherever the garbage
    collector does, and may see such a change half made.
    """
    check_model(model)  # a path or an estimator failed on "no attribute 'epochs_trained'"
    refuse_in_fit(model, "fit")  # first: nothing checked or changed yet
    _check_training_record(model)
    # Python ints: numpy's small ones wrap (np.uint8(200) batches of 300 rows: order[200:144], the rest never trained)
    epochs = _check_int(epochs, "epochs", 0)
    batch_size = _check_int(batch_size, "batch_size", 1)
    check_flag(standardize, "standardize")  # "no" would be true, and standardise
    check_flag(progress, "progress")  # "no" would be true, and draw a bar
    modality_dropout = _check_fraction(modality_dropout, "modality_dropout")
    if early_stopping is not None:
        early_stopping = _check_int(early_stopping, "early_stopping", 1)
    seed = _check_int(model.config.seed if seed is None else seed, "seed", 0)
    ema_decay = check_decay(ema_decay)
    lr = model._learning_rate(lr)
    metrics = _checked_metrics(metrics)

    # Every input is checked before the first step: a mistake found halfway
    # would leave some steps applied.
    known_columns = model._input_columns  # what an event's pandas Series labels are checked against (below)
    train = as_dataset(model, data, mask, "data", for_training=True)
    if validation is None and validation_mask is not None:  # else it would be ignored unseen
        raise InvalidValueError("validation_mask: given without validation; expected it only beside validation data", "validation_mask")
    val = as_dataset(model, validation, validation_mask, "validation") if validation is not None else None
    if val is not None:
        _refuse_validation_columns_reordered(data, validation)
    columns = frame_columns(data)  # {} unless data holds data frames: kept once this fit trains
    # checked again against the model's names under its lock: another thread's fit may learn them meanwhile
    given_columns = [(f"{arg}[{MODALITY_NAMES[m]!r}]", m, names)
                     for arg, frames in (("data", columns), ("validation", frame_columns(validation)))
                     for m, names in frames.items()]
    if isinstance(objectives, Mapping):
        # the weights checked here are the ones every step uses: each step read the caller's dict,
        # and a metric (or another thread) that changed it changed the objectives halfway, unchecked
        objectives = dict(objectives)
    weights = resolve_weights(objectives, train.has_fused, "objectives")
    if max(weights) <= 0:
        raise all_zero_error(objectives, "objectives")
    by_name = dict(zip(OBJECTIVES, weights))
    train_mask = train.mask_of(np.arange(len(train)))
    columns = {m: names for m, names in columns.items() if train_mask[:, m].any()}  # frames it learns from
    _check_model_computes(model, by_name)
    # refused first: its one-row refusal is _check_rows_to_compare's, which warned "only cross_modal will
    # train" before the refusal of one row of one modality said cross_modal was 0 there too
    check_something_trains(by_name, train_mask, "data", train.has_inputs)
    _check_rows_to_compare(by_name, len(train), batch_size, int(np.count_nonzero(train_mask.any(axis=1))))
    _refuse_rewards_of_1(by_name, train)
    _check_gradients_reach(model, by_name, train_mask, train.has_inputs, objectives is not None)
    # epochs=0 trains nothing: the model stays as it was, its standardisation too
    standardize = standardize and epochs > 0
    if standardize:  # after the refusals of what such rows cannot train, whose messages say more of the objectives
        # the model's write count as the check reads it (one int; reading the standardisations themselves
        # copied 14 arrays out of the core, 4 % of a small fit's time)
        checked_at = model._version
        _refuse_standardising_to_zero(model, train, train_mask)
    split = _SPLIT.get()
    if split != "fold":
        # Not refused in a cross-validation fold, which only chooses the epoch count: the final fit trains on all
        # rows, the fold's held-out ones too (fit_with_stopping refuses all rows lacking them before any fold trains)
        refuse_idle_modality_dropout(modality_dropout, train_mask,
                                     "of data" if split is None else "trained on (those not held out to stop on)")
    if val is not None:
        val_weights = resolve_weights(objectives, val.has_fused, "objectives")
    if monitor is None:  # not `or`: monitor=0 or "" would silently mean the default
        monitor = "val_total" if val is not None else "loss"
    _check_monitor(monitor, val is not None, metrics)
    if val is not None:  # without early stopping the monitor only names history.best_epoch
        check_validation_measures(dict(zip(OBJECTIVES, val_weights)), val.mask_of(np.arange(len(val))), monitor, "validation",
                                  "validation", early_stopping is not None, ", or early_stopping=None", val.has_inputs,
                                  "validation_mask" if validation_mask is not None else None)
    mode = resolve_mode(monitor, mode)
    if val is not None and val.has_inputs and train.has_inputs:
        _warn_of_validation_modalities_data_lacks(model, train_mask, val.mask_of(np.arange(len(val))), standardize)

    # other writers wait; readers get in between steps. From a metric of another fit, refused where the two would wait
    # for each other for ever (that model's fit in another thread waiting, in its own metric, for this thread's)
    with waiting_from_metric(model, "fit"), model._lock.updating():
        # the frames' names were checked before the lock: a fit (fit_normalization) of another thread that
        # learned them in another order since then would have this one train on the columns reordered
        for name, m, names in given_columns:
            refuse_reordered_fitted_names(name, model._input_columns[m], names, m)
        if model._input_columns != known_columns:
            # and the names the labels of events' pandas Series were checked against: another thread's
            # fit_normalization of a frame may have learned them since, and fit read such events reordered
            for arg, given in (("data", data), ("validation", validation)):
                _refuse_events_reordered(model, given, arg)
        if standardize and model._version != checked_at:
            # and the standardisations the check of rows all alike read: another thread's set_normalization that
            # removed one since (any write since: checked again) let such rows train on inputs standardised to 0,
            # the fit that check refuses
            _refuse_standardising_to_zero(model, train, train_mask)
        # the training record checked before the lock: another thread may have assigned it since (cheap: the
        # history's records checked then are not checked again). Each attribute read once, that value checked,
        # copied for the undo and counted from: read again, another thread's assignment between two reads went
        # unrefused, fit counting from a value its undo copy did not hold (the lock cannot see an attribute).
        record = _check_training_record(model)
        before = _TrainingState.of(model, record)
        left = _RecordLeft.of(record)  # what each epoch checks that no other thread changed before it writes
        # the counts the undo copy read (no second copy of Adam's moments to read them), nothing changed yet,
        # and no other writer can take a step before fit's own now
        _check_step_count(before.optimizer, int(epochs), train.num_batches(int(batch_size)))  # numpy ints would wrap
        try:
            with model._lock.writing(), uninterrupted():
                average = resume_average(model, ema_decay)  # the trained weights back in, when continuing
            if standardize and train.has_inputs:
                # per modality: one first present in a later fit was fed raw beside standardised ones
                unstandardised = [m for m in range(NUM_MODALITIES) if model.normalization(m) is None]
                if unstandardised:
                    train.fit_normalization(model, unstandardised)
            if columns and epochs > 0:  # read by position from now on: the same names in another order are refused
                model._remember_columns(columns)
            stepper = (_steps or LocalSteps)(model, train, objectives, lr)
            try:
                # a fit of it from this thread (a signal handler's) refused until it ends
                history = call_fitting(model, _train, model, stepper, train, val, epochs, batch_size, objectives,
                                       metrics, early_stopping, monitor, mode, modality_dropout, progress, seed,
                                       average, before, left)
            except BaseException:
                try:
                    stepper.close()
                except KeyboardInterrupt:
                    # Ctrl-C while the steps end after a failure (Ray workers stopping): the
                    # failure is raised, and the model restored for it. Raised in its place,
                    # it kept the failed epoch, as if that epoch had completed.
                    pass
                except Exception as err:  # the failure is raised, not the clean-up's error in its place
                    _warn_close_failed(err, "the fit failed (its error follows) and the model is put back as it was")
                raise
            try:
                stepper.close()
            except Exception as err:
                # The training is done and kept: raised, the error put the model back as it was
                # before the fit, every epoch lost to a clean-up after it (as to a progress bar's).
                _warn_close_failed(err, "the model keeps its training")
            return history
        except KeyboardInterrupt:
            if left.epochs == record.epochs:  # fit's own count, not the attribute another thread may have assigned
                # No epoch completed: nothing to keep. Standardisation may be half learned
                # (one modality's set, the next not) and a resumed average half undone.
                before.restore(model)
            raise  # else _train kept the epochs completed so far
        except BaseException:
            before.restore(model)
            raise


def _warn_close_failed(err: Exception, outcome: str) -> None:
    """Says that ending the steps (a distributed fit's Ray workers) failed:
    ``outcome`` is what became of the model."""
    # at the user's line (warn_at_caller): stacklevel=3 counted from fit itself pointed at a line of this file,
    # the wrapper _scopes_bound puts between fit and its caller (and model.fit one more)
    warn_at_caller(
        f"fit: ending its training steps (stopping the Ray workers of a distributed fit) failed with "
        f"{type(err).__name__}: {err}; {outcome}. Some workers or their reserved CPUs may still be held "
        "(ray.available_resources() shows them)",
        RuntimeWarning,
    )


def _train(
    model: "LearnableMultiModal",
    stepper: "Steps",
    train: "_Dataset",
    val: Optional["_Dataset"],
    epochs: int,
    batch_size: int,
    objectives: Optional[Mapping[str, float]],
    metrics: Mapping[str, Metric],
    early_stopping: Optional[int],
    monitor: str,
    mode: str,
    modality_dropout: float,
    progress: bool,
    seed: int,
    average: Optional[WeightAverage],
    before: "_TrainingState",
    left: "_RecordLeft",
) -> History:
    """The epochs of :func:`fit`, its arguments checked. Interrupted
    (``KeyboardInterrupt``), the model goes back to the end of the last
    completed epoch, so training can resume exactly. With ``average``, it
    is updated after each epoch and applied to the model at the end (also
    when interrupted). ``before``: the model as ``fit`` found it, which is
    where an interrupt in the first epoch leaves it (``fit`` restores it).
    ``left``: the training record as fit took it, then as each epoch leaves it."""
    history = History(monitor=monitor)
    best_value, best_state, waited = None, None, 0
    bar = _progress_bar(progress, epochs * train.num_batches(batch_size))
    try:
        for epoch in range(epochs):
            # An interrupt in the first epoch leaves no epoch completed, and fit restores `before`
            # whole right after this restore: no copy of the model taken for it (a third of a
            # one-epoch fit's copies of the weights and Adam state, as the recipe's folds run).
            epoch_start = before if epoch == 0 else _TrainingState.of(model, left.record())
            try:
                record, average = _run_epoch(
                    model, stepper, train, val, batch_size, objectives, metrics, modality_dropout, seed, bar, average, left
                )
            except KeyboardInterrupt:
                epoch_start.restore(model)
                # fit's count too: an interrupt in an epoch's metrics came after the count had moved on, and
                # fit then took the first epoch, undone here, for completed (its average left applied)
                left.restored(epoch_start)
                raise
            history.epochs.append(record)
            value = record.get(monitor)
            if value is None:
                raise InvalidValueError(f"monitor: {monitor!r} is not recorded; recorded: {sorted(record)}", "monitor")
            if math.isnan(value):  # it compares false with everything: stopping would keep the first epoch
                raise NonFiniteError(
                    f"monitor: {monitor!r} is NaN at epoch {record['epoch']}; expected a number to compare epochs by", "monitor"
                )
            if best_value is None or (value < best_value if mode == "min" else value > best_value):
                best_value, waited, history.best_epoch = value, 0, record["epoch"]
                if early_stopping is not None:
                    # as the core holds them (flat): restored by fit itself, unchecked (_restore_weights)
                    best_state = (model._core.get_params(), model._core.optimizer_state(), average)
            else:
                waited += 1
                if early_stopping is not None and waited >= early_stopping:
                    history.stopped_early = True
                    break
        # In the try: a Ctrl-C as the lock or the block below was entered (both interruptible) left the
        # last epoch's trained weights in the model without their average, which the next fit then
        # started afresh from them: neither fit(epochs=k)'s model nor its exact resume.
        with model._lock.writing(), uninterrupted():  # weights, Adam state and average of one epoch
            _refuse_record_changed_meanwhile(model, left)
            if best_state is not None and history.best_epoch != left.epochs:
                model._restore_weights(best_state[0])  # the record keeps the rolled-back epochs' rows
                model._restore_optimizer_state(best_state[1])
                average = best_state[2]
            if average is not None:
                model._weight_average = average.applied(model)
            average = None  # applied: a Ctrl-C held back to the block's end finds nothing left to apply
    except KeyboardInterrupt:
        if average is not None:
            with model._lock.writing(), uninterrupted():
                model._weight_average = average.applied(model)
        raise
    finally:
        if bar is not None:
            bar.close()
    return history


def _run_epoch(
    model: "LearnableMultiModal",
    stepper: "Steps",
    train: "_Dataset",
    val: Optional["_Dataset"],
    batch_size: int,
    objectives: Optional[Mapping[str, float]],
    metrics: Mapping[str, Metric],
    modality_dropout: float,
    seed: int,
    bar: Any,
    average: Optional[WeightAverage],
    left: "_RecordLeft",
) -> "tuple[Dict[str, Any], Optional[WeightAverage]]":
    """One epoch of steps, then its record (appended to ``model.history``)
    and ``average`` updated with the epoch's weights.

    The epoch is counted, and its record (what is known of it: the losses)
    and average are in the model, before ``metrics`` are called: a metric
    that saves or pickles the model (a checkpoint per epoch) wrote a model
    trained for ``epochs_trained`` epochs whose history lacked the last one,
    and, with averaging, the trained weights without their average, so the
    file neither read nor trained on as the model of that many epochs.
    ``left`` (the training record as fit left it) is checked before each
    write of the record, and updated by it."""
    epoch = left.epochs  # fit's own count: the model's attribute is checked against it when the epoch is recorded
    rng = epoch_rng(seed, epoch)
    start = time.perf_counter()
    sums: Dict[str, float] = {}
    steps = 0
    for rows in train.batches(batch_size, rng):
        check_cancelled()  # an ensemble's member trained on a thread: Ctrl-C in the caller stops it here
        keep = _dropout_mask(train.mask_of(rows), modality_dropout, rng)
        try:
            losses = stepper.step(rows, keep)
        except NonFiniteError as err:
            if err.arg == "weights":  # the core's name (train_step's) for the weights fit takes as `objectives`
                raise renamed(err, {"weights": "objectives"}) from None
            raise _blame_grown_parameters(model, train, train.in_user_rows(err, rows)) from None
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + v
        steps += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{losses['total']:.4f}", refresh=False)  # drawn at tqdm's interval
    stepper.end_epoch()
    if average is not None:
        average = average.updated(model_weights(model))
    record: Dict[str, Any] = {"epoch": epoch + 1}  # a Python int (left.epochs): the record is saved
    record.update({("loss" if k == "total" else k): v / max(steps, 1) for k, v in sums.items()})
    if val is not None:
        record.update({f"val_{k}": v for k, v in val.losses(model, objectives).items()})
    with model._lock.writing():
        _refuse_record_changed_meanwhile(model, left)
        model.epochs_trained = record["epoch"]
        history = left.history
        history.append(record)  # completed below by replacing it, under the lock (a save copies it)
        left.epochs, left.length, left.last = record["epoch"], len(history), record
    if metrics:
        # While they run, the weights are this epoch's last: the model holds fit's running
        # average (not applied; a checkpoint applies it, as fit's end does: averaging.py).
        # Not during the steps: a save then is of some step, without an average, as before.
        with model._lock.writing():
            model._weight_average = average
        try:
            for name, metric in metrics.items():
                # training this model from it: refused
                value = _call_outside_scopes(call_metric, model, name, metric, model)
                _refuse_record_changed_meanwhile(model, left, metric=name)
                value = _metric_value(name, value)
                with model._lock.writing():
                    _refuse_record_changed_meanwhile(model, left)
                    record = left.last = _completed(history, record, {f"val_{name}": value})
        finally:
            with model._lock.writing():
                model._weight_average = None  # dropped at fit's start (averaging.resume), or inert: an epoch trained
    extra: Dict[str, Any] = {}
    if model.config.learnable_temperature:
        extra.update({f"temperature_{k}": v for k, v in model.temperatures().items()})
    extra["seconds"] = time.perf_counter() - start
    with model._lock.writing():
        _refuse_record_changed_meanwhile(model, left)
        record = left.last = _completed(history, record, extra)
    return record, average


@dataclass
class _RecordLeft:
    """The model's training record as :func:`fit` last left it: ``epochs``
    counted, ``history`` (the list itself) of ``length`` records, the last
    of them ``last`` (None: empty)."""

    epochs: int
    history: List[Dict[str, Any]]
    length: int
    last: Optional[Dict[str, Any]]

    @classmethod
    def of(cls, record: "_TrainingRecord") -> "_RecordLeft":
        """As ``record`` (the model's, read once under fit's lock) holds it."""
        history = record.history
        return cls(record.epochs, history, len(history), history[-1] if history else None)

    def record(self) -> "_TrainingRecord":
        """The record as fit left it (an epoch's undo copy takes it: not read from the model again)."""
        return _TrainingRecord(self.epochs, self.epochs, self.history)

    def restored(self, state: "_TrainingState") -> None:
        """As ``state``'s restore leaves the record (an interrupted epoch undone)."""
        records = state.history_records
        self.epochs, self.history = exact_int(state.epochs_trained), state.history
        self.length, self.last = len(records), records[-1] if records else None


def _record_change(model: "LearnableMultiModal", left: _RecordLeft) -> Optional[str]:
    """What of the model's training record differs from what fit ``left``
    (``"model.history (in place)"``), or None: one look at each."""
    epochs, now = model.__dict__.get("epochs_trained"), model.__dict__.get("history")
    counted = is_int(epochs) and exact_int(epochs) == left.epochs
    if counted and now is left.history and len(now) == left.length and (not now or now[-1] is left.last):
        return None
    if not counted:
        to = f"to {epochs!r}" if "epochs_trained" in model.__dict__ else "deleted"
        return f"model.epochs_trained (from {left.epochs}, {to})"
    if now is not left.history:
        return "model.history (replaced it)" if "history" in model.__dict__ else "model.history (deleted it)"
    return "model.history (in place)"


def _refuse_record_changed_meanwhile(model: "LearnableMultiModal", left: _RecordLeft, metric: Optional[str] = None) -> None:
    """``RuntimeError`` when the model's training record is not what fit
    ``left``: ``metrics[metric]`` (``metric`` given) or another thread (fit's
    lock held) assigned ``epochs_trained`` or ``history`` (attributes: the
    lock that makes its writers wait cannot see them) in the middle of fit,
    which counted on from that number (the epochs' shuffles another fit's,
    or a bare "seed must be integer") or recorded its epochs into a list
    the caller had replaced or cleared, without a word."""
    what = _record_change(model, left)
    if what is not None and metric is not None:
        raise RuntimeError(
            f"metrics[{metric!r}]: changed {what} in the middle of fit, which counts the epochs and records them there; "
            "expected metrics that read the model (change its training record after fit returns)"
        )
    if what is not None:
        raise RuntimeError(
            f"fit: changed {what} in the middle of fit, from another thread or code run in fit's own (a signal "
            "handler, a __del__); fit counts the epochs and records them there, and leaves the model as it was "
            "before the call; expected the training record left alone until fit returns"
        )


def _completed(history: List[Dict[str, Any]], record: Dict[str, Any], entries: Mapping[str, Any]) -> Dict[str, Any]:
    """``record`` with ``entries`` added, as a new dict put in its place in
    ``history`` (``model.history``; its lock held for writing). A record in
    the history is never changed in place: a thread reading the history
    meanwhile without the model's lock (``json.dumps(model.history)``,
    ``pandas.DataFrame(model.history)``, a deepcopy) raised "dictionary
    changed size during iteration" when a metric's value landed."""
    completed = {**record, **entries}
    for i in range(len(history) - 1, -1, -1):  # the last, unless a metric changed the list
        if history[i] is record:
            history[i] = completed
            break
    return completed


@dataclass
class _TrainingState:
    """What :func:`fit` changes, copied: weights, Adam state (with the
    objectives' draw counter), the accumulated gradients (every step
    replaces them: a later ``step()`` applies them), input standardisation,
    epoch count, history, the applied weight average (immutable: held, not
    copied), the record of trained modalities."""

    # Weights and Adam state as the core gives them (flat; the moments, step and draw counter a tuple),
    # put back as they are (_restore_weights): they are the model's own. Each fit and each epoch takes
    # one of these; their split into tensors by name, and its check on the way back, cost more than the copy.
    weights: np.ndarray
    optimizer: Tuple[np.ndarray, np.ndarray, int, int]
    gradients: Optional[np.ndarray]  # flat; None: none accumulated
    pending_rows: List[int]  # the encoder rows of those gradients, which step records
    normalization: List[Any]
    epochs_trained: int
    history: List[Dict[str, Any]]  # the list itself (model.history: the caller may hold it)
    history_records: List[Dict[str, Any]]  # what it held (its records are never changed in place: _completed)
    weight_average: Optional[WeightAverage]
    input_columns: Tuple[Optional[Tuple[str, ...]], ...]  # per slot (immutable: held, not copied)
    trained_rows: Optional[List[int]]  # None: not known
    has_trained: Optional[bool]  # a step recorded (with rows all 0: none reached an encoder)

    @classmethod
    def of(cls, model: "LearnableMultiModal", record: Optional["_TrainingRecord"] = None) -> "_TrainingState":
        """The copy of ``model``; its epoch count and history those of ``record``
        when given (fit's, read once: not read from the model again)."""
        with model._lock.reading():
            if record is None:
                epochs = model.epochs_trained
                record = _TrainingRecord(epochs, epochs, model.history)
            return cls(
                weights=model._core.get_params(),
                optimizer=model._core.optimizer_state(),
                gradients=model._core.get_flat_grad() if model._core.has_gradients() else None,
                pending_rows=model._core.pending_rows(),
                normalization=[model.normalization(m) for m in range(NUM_MODALITIES)],
                epochs_trained=record.as_given,
                history=record.history,
                history_records=list(record.history),
                weight_average=model._weight_average,
                input_columns=model._input_columns,
                trained_rows=model._core.trained_rows(),
                has_trained=model._core.has_trained(),
            )

    def restore(self, model: "LearnableMultiModal") -> None:
        with model._lock.writing(), uninterrupted():  # a second Ctrl-C must not cut the restore in half
            model._restore_weights(self.weights)
            model._restore_optimizer_state(self.optimizer)
            if self.gradients is None:
                model.zero_grad()
            else:
                model._core.set_flat_grad(self.gradients, self.pending_rows)  # a step after records their rows, as before
            for m, stats in enumerate(self.normalization):
                model.set_normalization(m, *(stats if stats is not None else (None, None)))
            model.epochs_trained = self.epochs_trained
            # the list and what it held, whatever became of them (a metric that cleared or replaced
            # it: the rest of the restore was done, then deleting from None raised, the epoch count kept)
            self.history[:] = self.history_records
            model.history = self.history
            model._weight_average = self.weight_average
            model._input_columns = self.input_columns
            model._set_trained_rows(self.trained_rows, bool(self.has_trained))


# --------------------------------------------------------------------- steps
class Steps:
    """How :func:`fit` takes its training steps: made once per call (after
    standardisation, before the first step) from ``(model, train,
    objectives, lr)``; ``model`` must hold the new weights, optimizer state
    and ``rng_counter`` after each :meth:`end_epoch`."""

    def step(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Dict[str, float]:
        """One step on the rows ``rows`` of the training data (``keep``: the
        modality dropout mask); returns the losses and their ``"total"``."""
        raise NotImplementedError

    def end_epoch(self) -> None:
        """Called after each epoch's last step, before validation."""

    def close(self) -> None:
        """Called once when :func:`fit` ends, whatever the outcome."""


class LocalSteps(Steps):
    """Each step is ``model.train_step`` in this process (one that lets
    the one-row batches of ``batch_size=1`` through)."""

    def __init__(
        self, model: "LearnableMultiModal", train: "_Dataset", objectives: Optional[Mapping[str, float]], lr: Optional[float]
    ) -> None:
        self.model, self.train, self.objectives, self.lr = model, train, objectives, lr

    def step(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Dict[str, float]:
        return self.model._fit_step(self.train.batch(rows, keep), self.objectives, self.lr)


# ------------------------------------------------------------------ datasets
class _Dataset:
    """Rows of training data, batched by index. Holds arrays only (no
    model), so it pickles cheaply: Ray workers share one copy."""

    has_inputs = True
    #: Whether its batches carry recorded fused embeddings (``seed_consistency`` targets).
    has_fused = False
    #: What an error says when no row has anything to train on.
    nothing_present = "no row has a modality present (the mask is False everywhere)"

    def check(self, name: str) -> None:
        """Raises for any value a training step would refuse, naming the
        user's row (not its place in a shuffled batch)."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def num_batches(self, batch_size: int) -> int:
        full, last = _batch_layout(len(self), batch_size)
        return full + (last > 0)

    def batches(self, batch_size: int, rng: Optional[np.random.Generator]) -> List[np.ndarray]:
        """Row indices per batch (sizes: ``_batch_layout``), shuffled by
        ``rng`` (in order without)."""
        order = rng.permutation(len(self)) if rng is not None else np.arange(len(self))
        full, last = _batch_layout(len(order), batch_size)
        chunks = [order[i : i + batch_size] for i in range(0, full * batch_size, batch_size)]
        return chunks + [order[full * batch_size :]] if last else chunks

    def mask_of(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def batch(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Batch:
        raise NotImplementedError

    def fit_normalization(self, model: "LearnableMultiModal", modalities: Sequence[int]) -> None:
        """Learns the standardisation of the slots ``modalities`` from these rows (those present in none keep none)."""
        raise NotImplementedError

    def inputs_of(self, m: int) -> Optional["tuple[np.ndarray, Optional[np.ndarray]]"]:
        """``(x, present)``: the inputs of slot ``m`` and which of their rows
        :meth:`fit_normalization` learns from (``None``: all); ``None`` when
        none is present, or the data holds no inputs. Not copied."""
        raise NotImplementedError

    def in_user_rows(self, err: NonFiniteError, rows: np.ndarray) -> NonFiniteError:
        """``err``, raised on the batch of ``rows``, as the user's data would
        name it (by default as it is)."""
        return err

    def _row_fault_renamed(self, err: NonFiniteError, rows: np.ndarray, name_row: Any) -> NonFiniteError:
        """``err`` when it names a batch row (:data:`_ROW_FAULT`) as
        ``name_row(modality, rows[r], rest)`` → ``(message, arg)``; else ``err``."""
        found = _ROW_FAULT.match(str(err))
        if found is None or found[1] != "inputs" or err.arg != f"inputs[{found[2]}]":
            return err
        message, arg = name_row(found[2].strip("'"), int(rows[int(found[3])]), found[4])
        return NonFiniteError(message, arg)

    def losses(self, model: "LearnableMultiModal", objectives: Optional[Mapping[str, float]]) -> Dict[str, float]:
        """Validation losses over the whole set, in batches, each weighted by
        its rows that hold a modality: every objective passes over a row
        holding none, so a batch of such rows has no losses (weighted by all
        its rows, its 0.0 diluted the mean: the same rows gave a val_total
        of 11.7 or 0.8 as 1,024 empty rows came before them or not)."""
        totals: Dict[str, float] = {}
        counted = 0
        for rows in self.batches(1024, None):
            held = int(np.count_nonzero(self.mask_of(rows).any(axis=1)))
            if not held:
                continue  # fit refuses validation data in which no row holds a modality, so some batch counts
            try:
                losses = model.losses(self.batch(rows, None), weights=objectives)
            except NonFiniteError as err:
                raise _blame_grown_parameters(model, self, self.in_user_rows(err, rows)) from None
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + v * held
            counted += held
        return {k: v / counted for k, v in totals.items()}


class _ArrayDataset(_Dataset):
    def __init__(
        self, model: "LearnableMultiModal", inputs: Any, mask: Any, name: str, for_training: bool = False,
        snapshot: bool = True,
    ) -> None:
        # errors name the caller's arguments: `validation`, `validation_mask` beside `data`, `mask`
        mask_arg = "mask" if name in ("data", "inputs") else f"{name}_mask"
        arrays, given_mask = model.prepare_inputs(inputs, mask, arg=name, mask_arg=mask_arg, for_training=for_training)
        # fit reads these rows every epoch, after checking them once: a float32 array (or mask) of the
        # caller's, read in place, was trained on as another thread rewrote it, where a float64 one is cast
        if snapshot:
            callers = {id(v) for v in (inputs.values() if isinstance(inputs, Mapping) else inputs)} | {id(mask)}
            arrays = [None if a is None else _own_copy(a, callers, f"{name}[{MODALITY_NAMES[m]!r}]")
                      for m, a in enumerate(arrays)]
            given_mask = _own_copy(given_mask, callers, mask_arg)
        self.arrays, self.mask = arrays, given_mask
        self.name, self.mask_arg = name, mask_arg

    def in_user_rows(self, err: NonFiniteError, rows: np.ndarray) -> NonFiniteError:
        """An input row whose encoding or reconstruction overflowed, named by
        the core as the batch's ``inputs['m']: row r``, as this data's row
        ``rows[r]``."""
        return overflow_in_user_rows(err, {"inputs": rows}, self.name)

    def __len__(self) -> int:
        return len(self.mask)

    # take(rows, axis=0), not [rows]: the same rows, copied, at a third of the cost of fancy
    # indexing for the few rows of a step (7 modalities at batch_size=1 spent 6 us a step on it)
    def mask_of(self, rows: np.ndarray) -> np.ndarray:
        return self.mask.take(rows, axis=0)

    def batch(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Batch:
        mask = self.mask.take(rows, axis=0) if keep is None else self.mask.take(rows, axis=0) & keep
        return Batch(inputs=[None if a is None else a.take(rows, axis=0) for a in self.arrays], mask=mask)

    def fit_normalization(self, model: "LearnableMultiModal", modalities: Sequence[int]) -> None:
        model._fit_normalization_of_given(
            [a if m in modalities else None for m, a in enumerate(self.arrays)], self.mask, arg=self.name)

    def inputs_of(self, m: int) -> Optional["tuple[np.ndarray, Optional[np.ndarray]]"]:
        x, present = self.arrays[m], self.mask[:, m]
        if x is None or not present.any():
            return None
        return x, None if present.all() else present

    def check(self, name: str) -> None:
        for m, x in enumerate(self.arrays):
            if x is not None:
                arg = f"{name}[{MODALITY_NAMES[m]!r}]"
                _check_rows(x, self.mask[:, m], arg, lambda row: f"{arg}: row {row}", present_only=True, slot=m)
            elif self.mask[:, m].any():
                # else refused by the step whose batch held such a row, after the steps before
                # it had trained, and named by its row in that batch, not in the data
                row = int(np.argmax(self.mask[:, m]))
                raise InvalidValueError(
                    f"{self.mask_arg}: marks modality {MODALITY_NAMES[m]!r} present in row {row} but no input array "
                    "was given for it", self.mask_arg,
                )


def _own_copy(a: np.ndarray, callers: "set[int]", name: str) -> np.ndarray:
    """``a``, or a copy of it when the caller may write it while ``fit``
    runs: one of the caller's own arrays (its id in ``callers``) or a view
    of other memory (a data frame's block, a writable memory map), unless
    read-only. An array made for this call (a float64 input's float32 cast)
    is kept as it is. A read-only array (``np.load(..., mmap_mode="r")``) is
    read in place, so data larger than memory still trains."""
    if not a.flags.writeable or (a.flags.owndata and id(a) not in callers):
        return a
    refuse_beyond_budget(a.nbytes, name, "its copy, which fit trains on (a writable array another thread could "
                         "change during fit), takes {bytes} bytes", remedy="fewer rows, or the array read-only "
                         "(e.g. np.load(..., mmap_mode='r')), which fit reads in place")
    return a.copy()


#: The error for a row whose encoding overflowed float32: its argument, modality, row, and the rest.
_ENCODER_OVERFLOW = re.compile(r"^(\w+)\[('[a-z]+')\]: row (\d+) (overflows float32 in the encoder.*)$", re.DOTALL)
#: The errors that name one row of a batch's inputs (its encoding, or its reconstruction, overflowed
#: float32): argument, modality, row, and the rest of the message from just after the row number.
_ROW_FAULT = re.compile(
    r"^(\w+)\[('[a-z]+')\]: row (\d+)((?: overflows float32 in the encoder|: the reconstruction loss overflows float32).*)$",
    re.DOTALL,
)


def overflow_in_user_rows(err: NonFiniteError, rows_of: Mapping[str, np.ndarray], name: str) -> NonFiniteError:
    """``err`` when it is ``"X['m']: row r overflows float32 in the encoder ..."``
    or ``"X['m']: row r: the reconstruction loss overflows float32 ..."`` for
    an ``X`` of ``rows_of`` (the core's ``inputs`` of a batch, ``fit``'s
    ``data`` or ``validation`` of a slice) as ``"name['m']: row rows_of[X][r] ..."``,
    the row of the data the user gave; else ``err`` itself."""
    found = _ROW_FAULT.match(str(err))
    if found is None or found[1] not in rows_of or err.arg != f"{found[1]}[{found[2]}]":
        return err
    arg = f"{name}[{found[2]}]"
    return NonFiniteError(f"{arg}: row {int(rows_of[found[1]][int(found[3])])}{found[4]}", arg)


#: How :func:`_blame_grown_parameters`' error ends: callers whose learning rate is an argument of
#: their own (the recipe's settings, the estimator) recognise it by this and name that argument.
GROWN_PARAMETERS = "expected parameters of moderate size (too large a learning rate grows them)"


def grown_by_learning_rate(err: BaseException, learning_rate: float, arg: str, expected: str) -> BaseException:
    """``err`` blaming the model's parameters grown past float32 (named
    ``parameters``, no argument of the recipe's nor a flag of
    ``grapheme-mm train``, nor of the estimator) remade to name the learning
    rate that grew them, ``arg`` (``settings.learning_rate``, ``--lr``,
    ``learning_rate``), with ``expected`` as its remedy; else ``err``."""
    if not (isinstance(err, NonFiniteError) and err.arg == "parameters" and str(err).endswith(GROWN_PARAMETERS)):
        return err
    body = str(err)[len("parameters: "):-len(GROWN_PARAMETERS)]
    return NonFiniteError(f"{arg}: got {learning_rate!r}; {body}expected {expected} (too large a learning rate grows the "
                          "parameters)", arg)


def _blame_grown_parameters(model: "LearnableMultiModal", data: "_Dataset", err: NonFiniteError) -> NonFiniteError:
    """``err`` when it names a row of ``data`` whose encoding overflowed
    (``"data['m']: row r overflows float32 in the encoder ..."``), remade
    to blame the parameters of that encoder (and the shared head) when they
    are larger in magnitude than the row's values after normalization: too
    large a learning rate grows them until a row of moderate values
    overflows, and the row of the user's data was blamed. Else ``err``."""
    found = _ENCODER_OVERFLOW.match(str(err))
    if found is None or not isinstance(data, _ArrayDataset):
        return err
    m = MODALITY_NAMES.index(found[2].strip("'"))
    row = int(found[3])
    x = data.arrays[m][row].astype(np.float64)
    stats = model.normalization(m)
    if stats is not None:
        x = (x - stats[0]) / stats[1]
    largest_input = float(np.abs(x).max(initial=0.0))
    prefixes = (f"encoder.{MODALITY_NAMES[m]}.", "head.")
    largest_parameter = max(
        (float(np.abs(v).max(initial=0.0)) for k, v in model._parameters().items() if k.startswith(prefixes)), default=0.0
    )
    if largest_parameter <= largest_input:
        return err
    # no row named: the row is not to blame, and fit_with_stopping's slices number rows otherwise
    return NonFiniteError(
        f"parameters: the {MODALITY_NAMES[m]} encoder's parameters have grown to {largest_parameter:.3g} in magnitude, "
        f"and a row of moderate values (at most {largest_input:.3g} after the model's normalization) overflows float32 "
        f"in it; {GROWN_PARAMETERS}",
        "parameters",
    )


class _EventDataset(_Dataset):
    """Events featurised once into per-modality component tables, so a batch
    is a few numpy gathers (no per-event Python work per step)."""

    nothing_present = "no event has a component"

    def __init__(self, model: "LearnableMultiModal", events: Sequence[MultiModalEvent], name: str = "data") -> None:
        self.n = len(events)
        self.ids = [e.id for e in events]
        self.name = name
        #: per modality, None or the component table (x, owner, confidences, starts): starts[i] is event i's first row
        self.tables: List[Optional[Tuple[np.ndarray, ...]]] = []
        table: Optional[Tuple[np.ndarray, ...]]
        for table in event_components(model.config, events, name, columns=model._input_columns):
            if table is not None:
                # Event i's components are rows starts[i]:starts[i + 1] of the table.
                starts = np.concatenate(([0], np.cumsum(np.bincount(table[1], minlength=self.n))))
                table = table + (starts,)
            self.tables.append(table)
        self.mask = np.zeros((self.n, NUM_MODALITIES), bool)
        for m, t in enumerate(self.tables):
            if t is not None:
                self.mask[t[1], m] = True

    def in_user_rows(self, err: NonFiniteError, rows: np.ndarray) -> NonFiniteError:
        """A batch row the core named, as the event of the user's list (its
        index and id, as :meth:`check` names them)."""
        return self._row_fault_renamed(
            err, rows, lambda modality, row, rest: (f"{self.name}[{row}]: event {self.ids[row]}'s {modality} input{rest}", self.name))

    def __len__(self) -> int:
        return self.n

    def mask_of(self, rows: np.ndarray) -> np.ndarray:
        return self.mask[rows]

    def batch(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Batch:
        # Work in the batch's size, not the dataset's: each table is indexed
        # through `starts`, never scanned whole.
        by_event = np.argsort(rows)
        sorted_rows = rows[by_event]
        parts: List[Any] = [None] * NUM_MODALITIES
        for m, table in enumerate(self.tables):
            if table is None:
                continue
            x, owner, conf, starts = table
            first, count = starts[rows], starts[rows + 1] - starts[rows]
            total = int(count.sum())
            if not total:
                continue
            # The rows' components in table order: ranges first..first+count, merged.
            chosen = np.sort(np.repeat(first - np.cumsum(count) + count, count) + np.arange(total))
            pos = by_event[np.searchsorted(sorted_rows, owner[chosen])]
            if keep is not None:
                kept = keep[pos, m]
                chosen, pos = chosen[kept], pos[kept]
            if len(chosen):
                parts[m] = (x[chosen], pos, conf[chosen])
        return Batch(components=(len(rows), parts))

    def fit_normalization(self, model: "LearnableMultiModal", modalities: Sequence[int]) -> None:
        for m, table in enumerate(self.tables):
            if table is not None and m in modalities:  # every component of the table is present
                model.fit_normalization({m: table[0]})

    def inputs_of(self, m: int) -> Optional["tuple[np.ndarray, Optional[np.ndarray]]"]:
        table = self.tables[m]
        return None if table is None else (table[0], None)  # every component of the table is present

    def check(self, name: str) -> None:
        # An event with no components is a row holding no modality, as a row of arrays whose mask is
        # False throughout, and trains as one: every objective passes over it (as_dataset refuses data
        # in which no row holds any). It was refused here alone, while that row and a row None in every
        # list of graphs trained.
        for m, table in enumerate(self.tables):
            if table is not None:
                owners = table[1]
                _check_rows(
                    table[0], None, name,
                    lambda k: f"{name}[{owners[k]}]: event {self.ids[owners[k]]}'s {MODALITY_NAMES[m]} component",
                )


class _BufferDataset(_Dataset):
    has_fused = True
    nothing_present = "no experience has a modality"

    def __init__(self, buffer: ExperienceBuffer, name: str = "data") -> None:
        with buffer._lock:  # one snapshot, even while other threads record
            if not len(buffer):
                raise InvalidValueError(f"{name}: the experience buffer is empty", name)
            self.experiences = buffer.batch()
        self.has_inputs = bool(self.experiences.has_inputs.all())
        self.name = name

    def check_dims(self, model: "LearnableMultiModal") -> None:
        """ShapeError naming this argument when the buffer's experiences are
        of another ``embed_dim`` or input dims than ``model``'s (recorded by
        another model): else the error named ``embeddings`` or
        ``inputs['visual']``, arguments fit has not."""
        c, e = model.config, self.experiences
        given = e.embeddings.shape[2]
        if given != c.embed_dim:
            raise ShapeError(
                f"{self.name}: an experience buffer of embed_dim={given}; expected embed_dim={c.embed_dim} "
                "(a buffer of this model's fusions)", self.name,
            )
        if self.has_inputs:  # else its inputs are not read
            for modality, x, own in zip(MODALITY_NAMES, e.inputs, c.input_dims):
                if x is not None and x.shape[1] != own:
                    raise ShapeError(
                        f"{self.name}: an experience buffer whose {modality} inputs are {x.shape[1]} long; expected "
                        f"{own} (this model's input_dims)", self.name,
                    )

    def in_user_rows(self, err: NonFiniteError, rows: np.ndarray) -> NonFiniteError:
        """A batch row the core named, as the experience it holds (the
        buffer's order, as :meth:`check` names them)."""
        return self._row_fault_renamed(
            err, rows, lambda modality, row, rest: (f"{self.name}: experience {row}'s {modality} input{rest}", self.name))

    def check(self, name: str) -> None:
        e = self.experiences
        n = len(e)
        for field, x in (("embeddings", e.embeddings), ("fused", e.fused), ("rewards", e.rewards)):
            _check_rows(x.reshape(n, -1), None, name, lambda row: f"{name}: experience {row}'s {field}")
        if not self.has_inputs:  # trained on as recorded: the core's check named `embeddings` and a shuffled batch's row
            refuse_non_unit_experiences(e.embeddings, e.mask, name)
        else:
            for m, x in enumerate(e.inputs):
                if x is not None:
                    _check_rows(x, e.mask[:, m], name, lambda row: f"{name}: experience {row}'s {MODALITY_NAMES[m]} input")

    def __len__(self) -> int:
        return len(self.experiences)

    def mask_of(self, rows: np.ndarray) -> np.ndarray:
        return self.experiences.mask[rows]

    def batch(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Batch:
        e = self.experiences
        mask = e.mask[rows] if keep is None else e.mask[rows] & keep
        if self.has_inputs:
            inputs = [None if x is None or not mask[:, m].any() else x[rows] for m, x in enumerate(e.inputs)]
            return Batch(inputs=inputs, mask=mask, fused=e.fused[rows], rewards=e.rewards[rows])
        return Batch(embeddings=e.embeddings[rows], mask=mask, fused=e.fused[rows], rewards=e.rewards[rows])

    def fit_normalization(self, model: "LearnableMultiModal", modalities: Sequence[int]) -> None:
        e = self.experiences
        model._fit_normalization_of_given(
            [None if x is None or m not in modalities else np.nan_to_num(x) for m, x in enumerate(e.inputs)], e.mask)

    def inputs_of(self, m: int) -> Optional["tuple[np.ndarray, Optional[np.ndarray]]"]:
        e = self.experiences
        if not self.has_inputs or e.inputs[m] is None or not e.mask[:, m].any():
            return None
        return e.inputs[m], e.mask[:, m]


def as_dataset(
    model: "LearnableMultiModal", data: Any, mask: Any, name: str, for_training: bool = False, snapshot: bool = True
) -> _Dataset:
    """Wraps the accepted data forms. ``for_training``: the rows are learned
    from, and float64 arrays whose variation float32 loses warn
    (:meth:`~grapheme_multimodal.LearnableMultiModal.prepare_inputs`).
    ``snapshot``: arrays the caller could write during ``fit`` are copied
    (:func:`_own_copy`); ``False`` for data that is only checked."""
    ds: _Dataset
    if isinstance(data, ExperienceBuffer):
        if mask is not None:
            raise InvalidValueError(f"{name}: a mask is not used with an experience buffer (it has its own)", name)
        ds = _BufferDataset(data, name)
        ds.check_dims(model)
    elif isinstance(data, (list, tuple)) and data and all(isinstance(e, MultiModalEvent) for e in data):
        if mask is not None:
            raise InvalidValueError(f"{name}: a mask is not used with events (their components say what is present)", name)
        ds = _EventDataset(model, data, name)
    elif isinstance(data, (list, tuple)) and any(isinstance(e, MultiModalEvent) for e in data):
        # else read as 7 per-modality arrays: "expected a mapping ... or a sequence of 7 arrays/None"
        bad = next(i for i, e in enumerate(data) if not isinstance(e, MultiModalEvent))
        raise TypeError(f"{name}[{bad}]: expected a MultiModalEvent like the others, got {type(data[bad]).__name__}")
    elif isinstance(data, (list, tuple)) and not data:
        raise InvalidValueError(f"{name}: an empty list; expected per-modality arrays or at least one MultiModalEvent", name)
    elif isinstance(data, Mapping) or isinstance(data, (list, tuple)):
        ds = _ArrayDataset(model, data, mask, name, for_training, snapshot)
        if len(ds) == 0:
            raise InvalidValueError(f"{name}: no rows; expected at least one", name)
    else:
        raise TypeError(
            f"{name}: expected per-modality arrays, a list of MultiModalEvent or an ExperienceBuffer, got {type(data).__name__}"
            f"{one_modality_rows_hint(data)}{_SAMPLE_HINT if isinstance(data, ExperienceBatch) else ''}"
        )
    try:
        ds.check(name)
    except NonFiniteError as err:  # a NaN a frame never held is named as the pd.NA it was (on the error's path only)
        raise missing_input_refusal(data, mask, name) or err from None
    if name != "validation" and not ds.mask_of(np.arange(len(ds))).any():
        # every loss would be 0 and every step Adam's momentum alone: "training" that learns nothing
        arg = "mask" if mask is not None else name
        # without a mask, only None rows of graph lists leave every row absent: "the mask" was never given
        why = ds.nothing_present if mask is not None or not isinstance(ds, _ArrayDataset) else (
            "no row has a modality present (every row of every list of graphs is None)")
        raise InvalidValueError(f"{arg}: {why}; expected at least one present modality to train on", arg)
    return ds


# ------------------------------------------------------------------- helpers
def _dropout_mask(mask: np.ndarray, rate: float, rng: np.random.Generator) -> Optional[np.ndarray]:
    """Which present modalities to keep: each dropped with probability
    ``rate``, but a row always keeps at least one (a random present one)."""
    if rate <= 0:
        return None
    keep = mask & (rng.random(mask.shape) >= rate)
    emptied = mask.any(axis=1) & ~keep.any(axis=1)
    if emptied.any():
        scores = np.where(mask[emptied], rng.random((int(emptied.sum()), NUM_MODALITIES)), -1.0)
        keep[np.flatnonzero(emptied), scores.argmax(axis=1)] = True
    return keep


def _refuse_rewards_of_1(weights: Mapping[str, float], train: "_Dataset") -> None:
    """Refuses an experience buffer whose every reward is 1 when
    ``seed_consistency`` is the only objective weighted: it weighs each row
    by ``1 - reward``, so it was 0 on every row and fit ran Adam on zero
    gradients, its loss 0.0 every epoch."""
    if not isinstance(train, _BufferDataset) or [o for o, w in weights.items() if w > 0] != ["seed_consistency"]:
        return
    if (train.experiences.rewards == 1).all():
        raise InvalidValueError(
            "data: every experience's reward is 1, and seed_consistency, the only objective weighted, weighs each by "
            "1 - reward, so it is 0 on every one and nothing would train; expected rewards below 1, or other objectives "
            "weighted (binding, cross_modal, fused_contrastive learn from recorded embeddings)", "data",
        )


def refuse_idle_modality_dropout(modality_dropout: float, mask: np.ndarray, rows: str = "of data") -> None:
    """Refuses ``modality_dropout`` (checked) above 0 where no row of
    ``mask [N, 7]`` (``rows``: which rows, as the message says them) holds
    two modalities: a row always keeps one, so the option hid nothing,
    silently."""
    if modality_dropout > 0 and not (np.count_nonzero(mask, axis=1) >= 2).any():
        raise InvalidValueError(
            f"modality_dropout: got {modality_dropout:g}, but no row {rows} holds two modalities, and a row always keeps "
            "one, so nothing would be hidden; expected 0, or rows that hold several modalities", "modality_dropout",
        )


#: Which of its caller's rows fit trains on inside :func:`call_training_on_split`: ``None`` (the rows it is given,
#: as called), ``"slice"`` or ``"fold"``.
_SPLIT: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("_SPLIT", default=None)


def call_training_on_split(kind: str, fit: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
    """``fit(*args, **kwargs)``, which trains on part of its caller's rows
    (:func:`~grapheme_multimodal.stopping.fit_with_stopping`'s): ``"slice"``,
    the rows a slice held out to stop on leaves (that slice is fit's
    ``validation``), or ``"fold"``, a cross-validation fold's copy of the
    model, which only chooses the epoch count (the model then trains on all
    rows). What fit warns of the data is said of those rows: a modality
    constant on them, or present only in the held-out rows, was said as of
    the caller's data (a column constant but in one row "holds the same
    values in every row"; a ``validation`` never given named), and in a
    fold it is not said at all (the final fit, on all rows, says what holds
    of them). Per thread and task, as a context variable. A function, not
    a context manager: see :func:`~._validation.call_with_set`."""
    return call_with_set(_SPLIT, kind, fit, *args, **kwargs)


#: How the innermost :func:`constant_rows_refused_as` block says fit's refusal of rows that all standardise to 0.
_CONSTANT_REFUSAL: "contextvars.ContextVar[Optional[Tuple[Mapping[str, str], Callable[[str, str], Exception]]]]" = (
    contextvars.ContextVar("_CONSTANT_REFUSAL", default=None))


@contextlib.contextmanager
def constant_rows_refused_as(names: Mapping[str, str], refusal: Callable[[str, str], Exception]) -> Iterator[None]:
    """Inside the block, fit's refusal of training rows whose every input
    standardises to 0 is raised as ``refusal(rows, why)``: ``rows`` says
    which rows (``"all 36 rows hold the same 'fou', 'pix' values"``), each
    modality named by ``names`` (modality name -> the caller's name, e.g. its
    view's); ``why`` is the rest of fit's own message (its reason and
    remedy, which name ``standardize``).
    A caller without fit's ``data`` argument and ``standardize`` option (a
    recipe, the command line) so has it said in its own words where it is
    raised: rewording fit's message afterwards missed it once a wrapper
    between (fit_with_stopping) had renamed it. Per thread and task, as a
    context variable (the tasks of :func:`~._parallel.run_tasks` copy it)."""
    with context_set(_CONSTANT_REFUSAL, (names, refusal)):
        yield


def call_with_constant_rows_refused_as(names: Mapping[str, str], refusal: Callable[[str, str], Exception],
                                       function: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
    """``function(*args, **kwargs)`` in a :func:`constant_rows_refused_as`
    scope, opened by :func:`~._validation.call_with_set` (a Ctrl-C cannot
    leave it behind)."""
    return call_with_set(_CONSTANT_REFUSAL, (names, refusal), function, *args, **kwargs)


def _refuse_standardising_to_zero(model: "LearnableMultiModal", train: "_Dataset", train_mask: np.ndarray) -> None:
    """Refuses data whose every input standardisation would make 0: each
    present modality's standardisation is learned from these rows and its
    rows are all the same (one row; copies of one). Every embedding of a
    fresh model is then 0, and so every gradient: fit ran Adam on zeros,
    its history flat, after a warning that cross_modal would train. When
    other modalities vary, a :class:`ConstantModalityWarning` names each
    constant one instead (a text file of empty lines trained as a modality
    that says nothing, without a word)."""
    if not train.has_inputs:
        return
    constant, varying = [], False
    for m in range(NUM_MODALITIES):
        inputs = train.inputs_of(m)
        if inputs is None:
            continue
        if model.normalization(m) is not None or not _all_rows_equal(*inputs):
            varying = True  # this modality's inputs vary once standardised: something is learned
        else:
            constant.append(m)
    split = _SPLIT.get()
    if varying and split != "fold":  # a fold's rows are not the model's: the final fit says what holds of all rows
        for m in constant:  # once per modality in a call that fits several times (folds, a final fit)
            shown = first_in_scope("constant", f"data[{MODALITY_NAMES[m]!r}]")
            if shown is None:
                continue
            held = int(np.count_nonzero(train_mask[:, m]))
            rows = "its one row" if held == 1 else "every row holding it"
            if split == "slice":  # the rows held out may differ: not said of the caller's every row
                rows += " among the rows trained on (those held out to stop on are not)"
            warn_at_caller(
                f"{shown}: holds the same values in {rows}; standardised by the mean of "
                f"{'that row' if held == 1 else 'those rows'}, each of its inputs is 0, so its encoder learns nothing of "
                "the data (one constant embedding for every event); expected rows that differ, or leave the modality out",
                ConstantModalityWarning,  # the user's line, under stopping and the estimator too
            )
    if varying or not constant:
        return
    refused_as = _CONSTANT_REFUSAL.get()
    shown_as = {} if refused_as is None else refused_as[0]
    n, held = len(train), int(train_mask.any(axis=1).sum())
    names = ", ".join(shown_as.get(MODALITY_NAMES[m], MODALITY_NAMES[m]) for m in constant)
    rows = ("1 row" if n == 1 else f"1 of its {n} rows holds a modality" if held == 1
            else f"all {n} rows hold the same {names} values" if held == n
            else f"the {held} of its {n} rows that hold a modality hold the same {names} values")
    why = (f"standardize=True learns each modality's mean from {'it' if held == 1 else 'them'}, so every standardised "
           "input is 0 and nothing of the data can be learned (a new model's every gradient is 0: its loss would stay "
           "flat); expected rows that differ, or standardize=False")
    if refused_as is not None:
        raise refused_as[1](rows, why)
    err = InvalidValueError(f"data: {rows}; {why}", "data")
    # which rows, apart from fit's names and remedy (kept for callers outside a constant_rows_refused_as block)
    err.constant_rows = rows
    raise err


def _refuse_events_reordered(model: "LearnableMultiModal", data: Any, name: str) -> None:
    """:func:`~grapheme_multimodal.batch.event_components`' refusal of
    ``data``'s (when events) pandas Series whose labels are the column
    names ``model`` knows now in another order."""
    if not (isinstance(data, (list, tuple)) and data and all(isinstance(e, MultiModalEvent) for e in data)):
        return
    columns = model._input_columns
    for i, event in enumerate(data):
        refuse_reordered_labels(event._checked_components(f"{name}[{i}]"), columns, f"{name}[{i}]", event.id)


def _all_rows_equal(x: np.ndarray, present: Optional[np.ndarray] = None) -> bool:
    """Whether the rows of ``x [n, d]`` (those ``present`` marks, when given)
    are all the same. Rows that differ usually do so at once: the first two
    decide, without a pass over ``x``; else it is read in blocks, not copied."""
    rows = None if present is None else np.flatnonzero(present)
    count = len(x) if rows is None else len(rows)
    if count < 2:
        return True
    first, second = (x[0], x[1]) if rows is None else (x[rows[0]], x[rows[1]])
    if not np.array_equal(first, second):
        return False
    block = max(1, (1 << 22) // max(1, x.shape[1]))
    for start in range(0, count, block):
        chunk = x[start : start + block] if rows is None else x[rows[start : start + block]]
        if not (chunk == first).all():
            return False
    return True


class _TrainingRecord(NamedTuple):
    """A model's ``epochs_trained`` (``as_given``, and as the int it is:
    ``epochs``) and ``history`` (the list itself), each read once."""

    as_given: Any
    epochs: int
    history: List[Dict[str, Any]]


def _check_training_record(model: "LearnableMultiModal") -> _TrainingRecord:
    """The model's ``epochs_trained`` and ``history`` (public attributes,
    which a save checks too), each read once, when ``fit`` can continue
    them; else refused: 2.5 epochs was numpy's "seed must be integer" from
    the first shuffle, and a history that is no list failed the first
    epoch's record, then the restore of the model, whose own error replaced it."""
    as_given = model.epochs_trained
    epochs = _checked_epochs(as_given, "model.epochs_trained")
    history = model.history
    _check_history(model, history)
    return _TrainingRecord(as_given, epochs, history)


#: Per model, its history list and the records of it that the last fit found sound (by identity): a
#: fit checks only the others, so a loop of fit(epochs=1) does not check its whole history every call.
_SOUND_HISTORY: "weakref.WeakKeyDictionary[Any, Tuple[list, List[Any]]]" = weakref.WeakKeyDictionary()


def _check_history(model: "LearnableMultiModal", history: Any) -> None:
    """Refuses ``history`` (``model.history`` as read) when ``save`` would (a
    record fit accepted and save refused, ``[1, 2]``, trained and then could
    not be kept). The records checked by an earlier fit, still the same
    objects in the same places, are not checked again (a record edited in
    place since is still refused by ``save``)."""
    if not isinstance(history, list):
        raise InvalidValueError(
            f"model.history: expected a list of epoch records, got {type(history).__name__}", "model.history")
    known = _SOUND_HISTORY.get(model)
    start = 0
    # the records checked before, the same objects in the same places: a list's == compares each pair by
    # identity first, in C (6 us at 3,000 records; all(map(operator.is_, ...)) took 44, every fit)
    if known is not None and known[0] is history and history[:len(known[1])] == known[1]:
        start = len(known[1])
    try:
        _checked_history(history[start:], "model.history")
    except InvalidValueError:
        _checked_history(history, "model.history")  # again from the first: the error names the record's own index
        raise
    _SOUND_HISTORY[model] = (history, list(history))


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of epoch ``epoch``'s shuffle and dropout under ``seed``
    (both ints >= 0): a different stream for every ``(seed, epoch)``.

    numpy's ``SeedSequence`` takes each int as its 32-bit words and pads
    fewer than four words with zeros, so ``PCG64([seed, epoch])`` gave seed
    ``5 + 3 * 2**32`` at epoch 0 (words ``[5, 3, 0]``) the stream of seed 5
    at epoch 3 (``[5, 3]``). Seeds below ``2**32`` keep that formula (their
    streams, and the results and resumed trainings that hang on them, are
    as they were): its words, zero-padded, are four words, or five or more
    whose last is not zero (an epoch's highest word). A larger seed gives
    ``[n, seed's n words, epoch's words, 0]``: at least five words (n >= 2),
    ending in a zero, which no small seed's words are, and read back to one
    ``(seed, epoch)`` alone (n says where the seed ends)."""
    if seed < 2**32:
        return np.random.Generator(np.random.PCG64([seed, epoch]))
    seed_words = _uint32_words(seed)
    words = [len(seed_words), *seed_words, *_uint32_words(epoch), 0]
    return np.random.Generator(np.random.PCG64(np.array(words, dtype=np.uint32)))


def _uint32_words(value: int) -> List[int]:
    """``value``'s 32-bit words, lowest first, as numpy's ``SeedSequence``
    splits an int (``[0]`` for 0; no zero word on top)."""
    words = [value & 0xFFFFFFFF]
    value >>= 32
    while value:
        words.append(value & 0xFFFFFFFF)
        value >>= 32
    return words


def _check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as a Python int when it is an int (numpy's too, not a bool) >= ``minimum``:
    else a ``TypeError`` for another type (2.5, "3", True, None), an
    :class:`InvalidValueError` for an int below ``minimum``."""
    if not is_int(value):  # as the config's int fields and as_positive_int refuse a wrong type
        raise wrong_type(name, f"an int >= {minimum}", value)
    number = exact_int(value)  # the number checked is the number returned
    if number < minimum:
        raise InvalidValueError(f"{name}: expected an int >= {minimum}, got {shown_number(value)}", name)
    return number


#: The most steps Adam counts (as the objectives their draws, one a step):
#: the core's ``MAX_STEP``, ``i64::MAX``. It refuses the step after.
MAX_STEPS = 2**63 - 1


def _batch_layout(rows: int, batch_size: int) -> Tuple[int, int]:
    """An epoch's batches of ``rows`` rows as ``(full, last)``: ``full``
    batches of ``batch_size`` rows, then one of ``last`` rows when ``last``
    > 0. A last batch of one row joins the one before (the contrastive
    objectives need two rows), so with ``batch_size=1`` the last has two.
    ``fit``'s batches, its step count and progress bar, and the distributed
    draw count all read it."""
    full, last = divmod(rows, batch_size)
    if last == 0 and full:  # the last batch is a full one
        full, last = full - 1, batch_size
    if last == 1 and full:
        full, last = full - 1, batch_size + 1
    return full, last


def _check_step_count(optimizer: Tuple[Any, Any, int, int], epochs: int, batches: int) -> None:
    """Refuses ``epochs`` of ``batches`` steps each that the optimizer's
    step counter cannot count: such a fit could never finish (2**64 epochs
    ran for ever, and would have failed at the counter's end). ``optimizer``:
    the model's ``_core.optimizer_state()``, whose step and draw counts it reads."""
    taken = max(optimizer[2], optimizer[3])
    if epochs * batches > MAX_STEPS - taken:
        raise InvalidValueError(
            f"epochs: {shown_number(epochs, str)} epochs of {batches} steps is {shown_number(epochs * batches, str)} "
            "steps; expected at most "
            f"{(MAX_STEPS - taken) // batches} epochs, as Adam counts at most 2**63 - 1 steps "
            f"({taken} taken)",
            "epochs",
        )


def _check_fraction(value: Any, name: str) -> float:
    """``value`` as a float in [0, 1) (numpy scalars too, as for every other float setting)."""
    return as_finite_float(value, name, lambda v: 0 <= v < 1, "a number in [0, 1)")


#: What fit's refusal of a sample of the experience buffer adds: "got ExperienceBatch" said not what fit takes.
_SAMPLE_HINT = ("; fit takes the buffer itself (model.experience), and one sample of it trains one step as "
                "model.train_step(gm.Batch.from_experiences(sample))")

#: What a refusal of NaN or inf in training data adds for callers who can mark rows absent (fit's ``mask``).
MASK_NOTE = " (rows the mask marks absent may hold anything)"

def _call_outside_scopes(function: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
    """``function(*args, **kwargs)``, the user's own code called in fit (a
    ``metrics`` function), outside the scopes fit's callers set for their
    own fits (:func:`~._validation.precision_scope`,
    :func:`constant_rows_refused_as`, :func:`taking_no_mask`,
    :func:`call_training_on_split`). A metric may fit another model on other
    data: that fit is the user's, its data named and checked as fit's own.

    Run in a copy of the context with every scope at its default, which
    ``Context.run`` leaves in C whatever interrupts the call. Context
    managers put each scope back in Python: a Ctrl-C as one was entered or
    left kept its generator suspended, and when the garbage collector closed
    it, it put its scope back for good: in a cross-validation fold's epoch,
    "fold", and every later fit in the thread took itself for a fold (its
    refusals and warnings of the data unsaid)."""
    return contextvars.copy_context().run(_outside_scopes_then, function, args, kwargs)


def _outside_scopes_then(function: Callable[..., _R], args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> _R:
    """``function(*args, **kwargs)`` with every scope of this context at its
    default (call in a copy of the context: :func:`_call_outside_scopes`)."""
    leave_precision_scopes()
    _CONSTANT_REFUSAL.set(None)
    _MASK_TAKEN.set(True)
    _SPLIT.set(None)
    _FIT_FOR.set(None)
    return function(*args, **kwargs)


def _check_rows(
    x: np.ndarray, rows: Optional[np.ndarray], arg: str, where: Callable[[int], str], present_only: bool = False,
    slot: Optional[int] = None,
) -> None:
    """NonFiniteError (about ``arg``) for the first row of ``x [n, d]``
    (among ``rows``, when given) holding NaN or inf; ``where(row)`` names it.
    In blocks, so the check needs little memory on large data. A row of NaN
    throughout in modality ``slot``, as scikit-learn's habit and
    MultimodalEmbedder mark a missing view, is told how fit's mask marks it."""
    block = max(1, (1 << 22) // max(1, x.shape[1]))
    for start in range(0, len(x), block):
        bad = ~np.isfinite(x[start : start + block]).all(axis=1)
        if rows is not None:
            bad &= rows[start : start + block]
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            note = MASK_NOTE if present_only and _MASK_TAKEN.get() else ""
            if note and slot is not None and np.isnan(x[row]).all():
                mask = "validation_mask" if arg.startswith("validation") else "mask"
                note = (f"; a row of NaN throughout is a missing {MODALITY_NAMES[slot]} input only where {mask} says "
                        f"so: False at {mask}[{row}, {slot}] marks it absent (rows marked absent may hold anything)")
            raise NonFiniteError(f"{where(row)} holds NaN or inf; expected finite numbers{note}", arg)


def _metric_value(name: str, value: Any) -> float:
    """What ``metrics[name]`` returned, as a float (a real number, numpy's
    0-d arrays and scalars too); else an error naming the metric."""
    if (isinstance(value, (bool, np.timedelta64)) or not isinstance(value, (int, float, np.number, np.ndarray))
            or np.iscomplexobj(value)):
        raise TypeError(f"metrics[{name!r}]: returned {describe(value)}; expected a real number")
    if isinstance(value, np.ndarray) and value.shape != ():
        raise TypeError(f"metrics[{name!r}]: returned {describe(value)}; expected a real number")
    try:
        return float(value)
    except OverflowError:  # an int beyond float64
        raise InvalidValueError(f"metrics[{name!r}]: returned an int too large for a float", f"metrics[{name!r}]") from None
    except (TypeError, ValueError):  # a 0-d array of text or of durations: numpy's error named nothing
        raise TypeError(f"metrics[{name!r}]: returned {describe(value)}; expected a real number") from None


def _checked_metrics(metrics: Any) -> Dict[str, Metric]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics: expected a mapping name -> fn(model) -> float, got {type(metrics).__name__}")
    # the copy is what is checked and what fit calls: a mapping whose items change from one read to the
    # next passed the check with one name and recorded another ("total": over the validation loss)
    metrics = dict(metrics)
    for name, fn in metrics.items():
        if not isinstance(name, str) or not callable(fn):
            raise TypeError(f"metrics[{name!r}]: expected a str name and a callable fn(model) -> float, got {type(fn).__name__}")
        if name in ("total", *OBJECTIVES):
            # recorded as val_<name>, it overwrote that validation loss, which early stopping then watched
            raise InvalidValueError(
                f"metrics[{name!r}]: the name of a validation loss (recorded as 'val_{name}'); expected another name", "metrics"
            )
    return metrics


def _check_model_computes(model: "LearnableMultiModal", weights: Dict[str, float]) -> None:
    """Refuses, naming ``objectives``, a weighted objective this model cannot
    compute: reconstruction without its decoders (the core's refusal names
    its own ``weights``, which fit's caller never passed), and neighborhood
    with ``neighborhood_neighbors=0`` (no positives: it is 0 on every batch,
    so its weight trained nothing, alone or beside others, and a
    ``val_neighborhood`` watched for early stopping compared zeros)."""
    if weights["reconstruction"] > 0 and not model.config.reconstruction_decoders:
        raise InvalidValueError(
            f"objectives: reconstruction has weight {weights['reconstruction']}, but the model has no decoders to "
            "reconstruct the inputs with; expected weight 0, or a model made with reconstruction_decoders=True",
            "objectives",
        )
    if weights["neighborhood"] > 0 and model.config.neighborhood_neighbors == 0:
        raise neighborhood_without_neighbors_error(weights["neighborhood"], "objectives")


#: The objectives whose gradient reaches the encoders and nothing else
#: (``contrastive`` also trains its temperature when it is learned).
ENCODER_ONLY_OBJECTIVES = ("contrastive", "neighborhood")


def untrainable_objectives(encoder_objectives: Optional[Sequence[str]], learnable_temperature: bool,
                           weights: Mapping[str, float], has_inputs: bool = True) -> Dict[str, str]:
    """The weighted objectives of :data:`ENCODER_ONLY_OBJECTIVES` whose
    gradient reaches no parameter under a model config's
    ``encoder_objectives`` and ``learnable_temperature``, each with why: their loss is computed, but their weight changes
    nothing — on recorded embeddings (no encoders to reach), or where
    ``encoder_objectives`` leaves them out. (neighborhood on recorded
    embeddings is 0 as well: :func:`unmeasured_objectives` says so.)"""
    kept = encoder_objectives
    why = {}
    for o in ENCODER_ONLY_OBJECTIVES:
        if weights.get(o, 0.0) <= 0 or (o == "contrastive" and learnable_temperature):
            continue
        if not has_inputs:
            if o == "contrastive":
                why[o] = ("contrastive trains only the encoders (and a learned temperature: learnable_temperature is "
                          "False), which recorded embeddings do not reach")
        elif kept is not None and o not in kept:
            also = " (and a learned temperature: learnable_temperature is False)" if o == "contrastive" else ""
            why[o] = f"{o} trains only the encoders{also}, and encoder_objectives={kept} keeps its gradient from them"
    return why


def _check_rows_to_compare(weights: Mapping[str, float], rows: int, batch_size: int, held: int) -> None:
    """Refuses a fit in which nothing can learn (one row, or ``held``, the
    rows holding a modality, one; and only objectives that compare rows
    weighted: every step would be Adam on zero gradients, as with every
    weight 0) and warns when some weighted objectives will contribute
    nothing (one such row, or batches of one row)."""
    comparing, learning = split_by_rows(weights)
    if batch_size == 2 and rows >= 3 and weights.get("neighborhood", 0.0) > 0:
        warn_at_caller(
            "batch_size: 2; neighborhood ranks each row's neighbours among the other rows of its batch holding its "
            "modality, a softmax that is 1 over a single one, so it is 0 on batches of two rows (it trains only on "
            "an epoch's last batch when that takes three); expected batch_size >= 3 for it to train",
            UserWarning,
        )
    if not comparing or (held >= 2 and batch_size >= 2):
        return
    if held < 2:  # rows holding nothing are skipped: the one left is compared with none
        one_row = rows < 2
        clause = one_row_clause(comparing, _ONE_ROW if one_row else _ONE_HELD_ROW)
        if not learning:
            remedy = ONE_ROW_REMEDY if one_row else ONE_ROW_REMEDY.replace("2 rows", "2 rows holding a modality")
            raise InvalidValueError(f"data: {clause}, so nothing would train; {remedy}", "data")
        # by the caller's name for the data (fit_with_stopping's inputs, the estimator's Xs), at the user's line:
        # it said "data: 1 row; ...", fit's name, from a line of stopping.py (stacklevel 4 counted from fit)
        shown = first_in_scope("one row", "data")
        if shown is not None:
            warn_at_caller(f"{shown}: {clause}; only {', '.join(learning)} will train", UserWarning)
    else:
        warn_at_caller(
            f"batch_size: 1; {', '.join(comparing)} tell the rows of a batch apart and are 0 on batches of one row "
            "(they train only on the epoch's last batch, which takes two rows); expected batch_size >= 2 "
            "for them to train",
            UserWarning,
        )


def _check_gradients_reach(model: "LearnableMultiModal", weights: Mapping[str, float], mask: np.ndarray, has_inputs: bool,
                           chosen: bool) -> None:
    """Refuses a fit whose weighted objectives are all either 0 on the data
    (:func:`unmeasured_objectives`) or of no effect on any parameter
    (:func:`untrainable_objectives`: every step was Adam on zero gradients
    while the history showed losses), naming ``data`` for recorded
    embeddings and ``objectives`` for the model's ``encoder_objectives``;
    warns of the weighted objectives that train nothing while others train
    (said nowhere else but in the history) when the caller ``chosen`` them
    (the default mix is every objective that applies: contrastive in it on
    recorded embeddings is not the caller's mistake)."""
    idle = untrainable_objectives(model.config.encoder_objectives, model.config.learnable_temperature, weights, has_inputs)
    if not idle and has_inputs:  # the common case, without a second pass over the mask
        return
    zero = unmeasured_objectives(weights, mask, has_inputs)
    weighted = [o for o, w in weights.items() if w > 0]
    training = [o for o in weighted if o not in zero and o not in idle]
    # what is said: why the objectives that train nothing do not, when none
    # trains; beside others, those recorded embeddings leave at 0 (neighborhood,
    # reconstruction; other zeros of the data are not warned of) and the idle
    said = [o for o in weighted if o in zero and (not training or not has_inputs and o in ("neighborhood", "reconstruction"))]
    if training and not chosen:
        idle = {}
    if not idle and not said:
        return
    clauses = "; ".join(c for c in (_zero_because(zero, said) if said else "", *idle.values()) if c)
    arg = "data" if not has_inputs else "objectives"
    if not training:
        remedy = ("expected data with inputs, or an objective that trains what follows the embeddings (binding, "
                  "cross_modal, fused_contrastive, seed_consistency)" if not has_inputs
                  else "expected those objectives in encoder_objectives, or an objective it keeps")
        raise InvalidValueError(f"{arg}: {clauses}, so nothing would train; {remedy}", arg)
    warn_at_caller(f"{arg}: {clauses}; only {', '.join(training)} will train", UserWarning)


def check_validation_measures(weights: Mapping[str, float], mask: np.ndarray, monitor: str, what: str, arg: str,
                              early_stopping: bool, otherwise: str = "", has_inputs: bool = True,
                              mask_arg: Optional[str] = None) -> None:
    """What the validation rows (``what``, presence ``mask``, named ``arg``
    in errors) leave at 0 every epoch (:func:`unmeasured_objectives`):
    ``monitor`` being such a loss (or their total) is refused with
    ``early_stopping`` (it would compare zeros, keep the first epoch and
    stop; ``otherwise`` says how to go without it), and on a single row
    without it too, as one row of training data is; a single row that
    leaves other losses at 0 is warned of (``UserWarning``). Rows that hold
    no modality at all are refused (named ``mask_arg``, else ``arg``): every
    validation loss is 0 on them, as on training data of such rows."""
    present = np.asarray(mask, dtype=bool)
    if present.size and not present.any():
        # every val_ loss was 0 every epoch: early stopping kept the first epoch, without a word
        raise InvalidValueError(
            f"{mask_arg or what}: no row holds a modality, so every validation loss would be 0 every epoch; expected "
            "rows with at least one present modality", mask_arg or arg,
        )
    zero = unmeasured_objectives(weights, mask, has_inputs)
    if not zero:
        return
    one_row = np.count_nonzero(present.any(axis=1)) < 2  # rows holding nothing are skipped
    weighted = [o for o, w in weights.items() if w > 0]
    watched = [o for o in zero if monitor == f"val_{o}"]
    if not watched and monitor == "val_total" and all(o in zero for o in weighted):
        watched = weighted
    if watched and (early_stopping or one_row):
        reasons = {zero[o] for o in watched}
        need = ("at least 2 rows" if _ONE_ROW in reasons else "at least 2 rows holding a modality" if _ONE_HELD_ROW in reasons
                else "validation data with inputs" if {"neighborhood", "reconstruction"} & set(watched)
                else "at least 2 rows holding the same two modalities" if any(o != "cross_modal" for o in watched)
                else "a row holding two modalities")
        stopping = " (early stopping would keep the first epoch)" if early_stopping else ""
        raise InvalidValueError(
            f"{what}: {_zero_because(zero, watched)}, so monitor {monitor!r} would be 0 every epoch{stopping}; "
            f"expected {need}{otherwise if early_stopping and not reasons & _ONE_ROW_REASONS else ''}", arg,
        )
    if one_row:
        warn_at_caller(f"{what}: {_zero_because(zero, list(zero))}: their val_ losses will be 0", UserWarning)


def _warn_of_validation_modalities_data_lacks(
    model: "LearnableMultiModal", train_mask: np.ndarray, val_mask: np.ndarray, standardize: bool
) -> None:
    """An :class:`UntrainedModalityWarning` for each modality that
    validation holds, no row of data holds and no earlier training reached:
    this fit leaves its encoder at its initial random weights, and the
    validation losses (so early stopping and the best epoch) count its
    embeddings, without a word."""
    split = _SPLIT.get()
    if split == "fold":  # the final fit trains on every row, the fold's held-out ones too
        return
    record = model._core.trained_rows()
    for m in np.flatnonzero(val_mask.any(axis=0) & ~train_mask.any(axis=0)):
        if record is not None and record[m]:  # trained by an earlier fit: its encoder is learned
            continue
        raw = " and its inputs unstandardised" if standardize and model.normalization(int(m)) is None else ""
        if split == "slice":  # validation is the caller's rows held out, named as the caller names the data
            shown = first_in_scope("untrained", f"data[{MODALITY_NAMES[m]!r}]")
            if shown is None:
                continue
            count = int(val_mask[:, m].sum())
            warn_at_caller(
                f"{shown}: present in {count} row{'s' * (count != 1)}, all of them among the {len(val_mask)} rows held "
                f"out to stop on, none among the rows trained on: the model's encoder for it keeps its initial random "
                f"weights{raw}, and the validation losses (so the epoch kept) count its untrained embeddings; expected "
                "the modality in more rows, or left out",
                UntrainedModalityWarning,
            )
            continue
        warn_at_caller(
            f"validation: modality {MODALITY_NAMES[m]!r} is present in {int(val_mask[:, m].sum())} of its rows but in "
            f"no row of data, and no earlier training reached its encoder: this fit leaves it at its initial random "
            f"weights{raw}, and the validation losses count its untrained embeddings; expected validation of the "
            "modalities data holds, or data that holds it too",
            UntrainedModalityWarning,
        )


def _refuse_validation_columns_reordered(data: Any, validation: Any) -> None:
    """InvalidValueError naming ``validation[m]`` when it and ``data[m]`` are
    data frames whose columns are the same names in another order: the
    model reads a modality's columns by position, so the validation losses
    (and early stopping on them) were those of other features than the ones
    trained on, without a word. Called once both are read (as_dataset):
    the keys name modalities."""
    if not (isinstance(data, Mapping) and isinstance(validation, Mapping)):
        return
    trained = {Modality.parse(key).index: value for key, value in data.items()}
    for key, value in validation.items():
        m = Modality.parse(key)
        if m.index in trained:
            refuse_unpaired_columns((f"data[{str(m)!r}]", trained[m.index]), (f"validation[{str(m)!r}]", value))


def _check_monitor(monitor: Any, has_validation: bool, metrics: Mapping[str, Metric]) -> None:
    """``monitor`` names something an epoch records (checked again after the
    first epoch, for objectives that turn out not to be computed)."""
    losses = ["loss", *OBJECTIVES]
    known = set(losses) | {f"val_{m}" for m in metrics}
    if has_validation:
        known |= {"val_total"} | {f"val_{o}" for o in OBJECTIVES}
    if not isinstance(monitor, str) or monitor not in known:
        raise InvalidValueError(f"monitor: {monitor!r} is not recorded; expected one of {sorted(known)}", "monitor")


def resolve_mode(monitor: str, mode: Any) -> str:
    """``mode`` checked (``"min"`` or ``"max"``), or for ``None`` the default
    for ``monitor``: ``"min"`` for losses (``loss``, ``total``, an objective,
    with or without ``val_``), ``"max"`` for custom metrics, but for one
    named ``loss`` (``val_loss``): the name says it is a loss."""
    if mode is None:
        losses = {"loss", "total", *OBJECTIVES}
        mode = "min" if monitor in losses or (monitor.startswith("val_") and monitor[4:] in losses) else "max"
    if not isinstance(mode, str) or mode not in ("min", "max"):
        raise InvalidValueError(f"mode: expected 'min' or 'max', got {mode!r}", "mode")
    return mode


def _progress_bar(enabled: bool, total: int) -> Any:
    if not enabled or sys.stderr is None:
        # None: no stderr to draw on (started with it closed, pythonw); tqdm's first write raised
        # AttributeError at the first step, a training lost to its progress bar
        return None
    position = bar_position()  # members trained at once: one line each
    desc = "fit" if position is None else f"fit member {position}"
    # miniters=1: every step checks the clock (drawing at most every mininterval), so a bar whose
    # steps slow down never lags; that was the monitor thread's job, which _Bar does not start.
    # file: stderr behind _BarStream, so that a stream that fails (closed, a broken pipe, a terminal gone)
    # stops the drawing, never the fit: a closed stderr refused every fit at the bar's first flush, and a
    # write that failed at the bar's close, after the last epoch, failed the fit, which then put the model
    # back as it was before it, every epoch of its training lost to its progress bar.
    for stream in (sys.stdout, sys.stderr):  # as tqdm does for a bar on stderr: what was printed first shows first
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    try:
        return _bar_class()(total=total, unit="step", desc=desc, leave=True, dynamic_ncols=True, mininterval=0.5,
                            miniters=1, position=position, file=_BarStream(sys.stderr))
    except (OSError, ValueError):  # a stream that cannot even be asked its size (tqdm's dynamic_ncols)
        return None


class _BarStream:
    """The stream the progress bar draws on (``sys.stderr`` when ``fit``
    began), through which a write or flush that fails ends the drawing
    quietly instead of raising into ``fit``: after the first failure nothing
    more is written. ``OSError`` (``BrokenPipeError``, ``EIO`` of a terminal
    gone) and ``ValueError`` (a closed file) are what failing streams raise.
    tqdm's own guard lets most of them through, and one raised while it
    draws leaves its lock, which bars in other threads share, held."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._failed = False

    def write(self, text: str) -> int:
        if not self._failed:
            try:
                self._stream.write(text)
            except (OSError, ValueError):
                self._failed = True
        return len(text)

    def flush(self) -> None:
        if not self._failed:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._failed = True

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding: tqdm asks them of its file
        # from __dict__: on an instance without _stream (copy.copy's, before its state is set, asks it for
        # __setstate__), self._stream came back here, a RecursionError. Dunders are this object's own: on
        # Python < 3.11 (no object.__getstate__) copy took the wrapped StringIO's __getstate__ as its state
        stream = self.__dict__.get("_stream")
        if stream is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(stream, name)

    def __eq__(self, other: object) -> bool:
        # equal to the stream it draws on: tqdm.write (a program's message printed between bar updates)
        # finds the bars to clear first by comparing their files with sys.stdout and sys.stderr
        return other is self or self._stream == other

    def __hash__(self) -> int:
        return hash(self._stream)


_BAR_CLASS: Optional[type] = None


def _bar_class() -> type:
    """``tqdm.tqdm`` without its monitor thread. tqdm starts that thread
    with its first bar and never stops it: every ``fit`` with a progress
    bar left the process a thread it never asked for (a leak to a
    thread-leak check), waking every 10 s to take tqdm's lock, which a
    ``fork()`` at that moment left held in the child, whose first bar then
    waited forever. Built on first use (tqdm is imported only when a bar is
    drawn), again should ``tqdm.tqdm`` be another class by then (a test's
    stand-in)."""
    global _BAR_CLASS
    import tqdm as tqdm_module

    base = tqdm_module.tqdm
    if _BAR_CLASS is None or _BAR_CLASS.__bases__ != (base,):

        class _Bar(base):  # type: ignore[misc, valid-type]
            monitor_interval = 0  # read by tqdm.__new__ from the class: no monitor for these bars

            @classmethod
            def get_lock(cls) -> Any:
                # tqdm's own lock, shared with the program's bars (tqdm.set_lock's too); called on
                # this class first, tqdm would give it a lock of its own
                return base.get_lock()

        _BAR_CLASS = _Bar
    return _BAR_CLASS


def holdout_rows(n: int, fraction: FloatLike, seed: int, name: str = "validation_fraction") -> "tuple[np.ndarray, Optional[np.ndarray]]":
    """``(fit rows, validation rows)`` of ``n`` rows: ``round(n * fraction)``
    rows drawn from ``seed`` are held out (both sorted). Nothing is held out
    (``(all rows, None)``) when that would be fewer than 2 rows or leave
    fewer than 2 to fit on: contrastive losses need two rows. ``name``
    names ``fraction`` in the error for a value outside ``[0, 1)``."""
    fraction = _check_fraction(fraction, name)
    n_val = int(round(n * fraction))
    if n_val < 2 or n - n_val < 2:
        return np.arange(n), None
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


#: The options of Keras', PyTorch Lightning's and scikit-learn's fit that a newcomer passes to
#: ``model.fit``, and this fit's way to the same: Python's "got an unexpected keyword argument
#: 'patience'" said nothing of ``early_stopping``.
_OTHER_LIBRARIES_OPTIONS = {
    "patience": "early stopping's patience is early_stopping=k (epochs without improvement)",
    "verbose": "the progress bar is progress=True or False",
    "learning_rate": "the learning rate of this call is lr= (the model's own is its config's learning_rate)",
    "validation_split": ("hold rows out yourself and pass them as validation= "
                         "(grapheme_multimodal.stopping.fit_with_stopping holds out a fraction for you)"),
    "validation_data": "held-out data is validation= (its mask validation_mask=)",
    "random_state": "the seed of the shuffles and dropout is seed=",
    **dict.fromkeys(("n_epochs", "num_epochs", "max_epochs"), "the number of epochs is epochs="),
    **dict.fromkeys(("loss_weights", "weights"), "the objectives' weights are objectives={'contrastive': 1.0, ...}"),
}


def refuse_other_libraries_fit_options(positional: Tuple[Any, ...], options: Mapping[str, Any]) -> None:
    """TypeError for what ``model.fit`` was given beside ``data`` as
    another library's fit takes it: a second positional argument (labels,
    ``fit(X, y)``; the epochs, Keras' ``fit(x, y, batch_size, epochs)``),
    or an option named as another library names it, each with this fit's
    way to the same. Other unknown options are left to Python's refusal."""
    if positional:
        raise TypeError(
            f"LearnableMultiModal.fit() takes 2 positional arguments but {2 + len(positional)} were given: fit(data) "
            "learns without labels, and takes its options by keyword, e.g. fit(data, epochs=10, batch_size=64)")
    for name in options:
        hint = _OTHER_LIBRARIES_OPTIONS.get(name)
        if hint is not None:
            raise TypeError(f"fit() got an unexpected keyword argument {name!r}; {hint}")


def _show_fit_on_the_model() -> None:
    """``LearnableMultiModal.fit(data, **kwargs)`` forwards to :func:`fit`:
    it gets fit's signature (less ``model`` and the private ``_steps``) and
    documentation (less ``_steps``' entry, an argument the method does not
    take), so ``help(model.fit)``, ``inspect.signature`` and notebooks show
    the options, which ``**kwargs`` hid."""
    import inspect
    import re

    from .model import LearnableMultiModal

    method = LearnableMultiModal.fit
    signature = inspect.signature(fit)
    shown = [p for name, p in signature.parameters.items() if name not in ("model", "_steps")]
    method.__signature__ = signature.replace(
        parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *shown]
    )
    doc = (fit.__doc__ or "").replace("Trains ``model`` on ``data``.", "Trains this model on ``data``.", 1)
    # the entry and its deeper-indented continuation lines, up to the next entry or section
    method.__doc__ = re.sub(r"\n( +)_steps: .*?(?=\n(?!\1 ))", "", doc, count=1, flags=re.S)


_show_fit_on_the_model()

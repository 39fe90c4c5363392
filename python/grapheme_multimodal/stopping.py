"""When training stops if no validation data is given: early stopping on a
held-out slice of the rows — or, when that slice would be too small for its
loss to mean anything, an epoch count chosen by cross-validation.

The recipe (:func:`grapheme_multimodal.uci.train`), ``grapheme-mm train``
and :class:`~grapheme_multimodal.sklearn.MultimodalEmbedder` all train
through :func:`fit_with_stopping`, so they stop the same way.

Why cross-validation on small data: the contrastive loss of a held-out
slice of 3 rows (10 % of Nutrimouse's 32 training mice) is a softmax over
3 candidates, and the epoch it peaks at swings from 3 to 96 between
training seeds — some models stop before they have learned anything.
Averaging the held-out loss of ``k`` folds that together hold out every
row, epoch by epoch, gives a curve steady enough to stop on, and the final
model then trains on every row (docs/objectives.md, "Stopping on small
data").
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._locking import call_fitting, call_metric, refuse_in_fit, uninterrupted, waiting_from_metric
from ._core import MODALITY_NAMES
from ._validation import (
    SPREAD_BELOW_FLOAT32, FloatLike, IntLike, as_real_array, check_model, counted, describe,
    masked_inputs_remedy, precision_checked, precision_scoped, refuse_beyond_budget, renamed,
    shown_number,
)
from ._caller_warnings import holding_warnings, warn_at_caller
from ._frames import frame_columns, refuse_reordered_fitted_names
from .exceptions import EarlyStoppingSkippedWarning, GraphemeError, InvalidValueError, NonFiniteError, ShapeError
from .graph import is_graph_list, refuse_stray_graphs
from .objectives import OBJECTIVES, nothing_trains, resolve_weights
from .training import (
    History, _TrainingState, _check_fraction, _check_int, _check_monitor, _checked_metrics, as_dataset, check_something_trains,
    check_validation_measures, overflow_in_user_rows, holdout_rows, refuse_idle_modality_dropout, resolve_mode,
    call_for_fit_of, call_training_on_split, _all_rows_equal,
)
from .types import Modality

if TYPE_CHECKING:
    from .model import LearnableMultiModal

__all__ = ["fit_with_stopping", "cv_folds_for"]  # folds_bytes, planned_folds: the ensembles'

FitFn = Callable[..., History]

#: The address space a fold's copy of the model takes per parameter once it
#: has trained (measured: 24 bytes, six float32 buffers of the core's), and
#: what making a copy or a fold's training step takes besides, for a while
#: (measured under ``ulimit -v``: folds of a model that 5 * 24 + 24 bytes a
#: parameter fitted in still aborted in a training step; 5 * 24 + 32 is a
#: few percent more than the most that trained).
FOLD_BYTES_PER_PARAMETER, FOLD_STEP_BYTES_PER_PARAMETER = 24, 32


def cv_folds_for(n_rows: IntLike, validation_fraction: FloatLike, min_validation_rows: IntLike, folds: IntLike) -> int:
    """How many cross-validation folds choose the epoch count for ``n_rows``
    rows: ``0`` (hold out a slice instead) unless the slice of
    ``validation_fraction`` (``round(n_rows * validation_fraction)`` rows)
    would hold fewer than ``min_validation_rows`` rows but at least 2; then
    ``folds``, fewer when some fold would hold out fewer than 2 rows (and 0
    when not even 2 folds can). A slice of fewer than 2 rows holds nothing
    out: 0, and :func:`fit_with_stopping` runs every epoch on all rows."""
    # a public helper: a fraction of 2.0 (20 rows held out of 10) gave 5 folds, NaN numpy's unnamed error
    n_rows = _check_int(n_rows, "n_rows", 0)
    validation_fraction = _check_fraction(validation_fraction, "validation_fraction")
    min_validation_rows = _check_int(min_validation_rows, "min_validation_rows", 0)
    folds = _check_int(folds, "folds", 0)
    n_val = int(round(n_rows * validation_fraction))
    if folds < 2 or n_val >= min_validation_rows or n_val < 2:
        return 0
    folds = min(folds, n_rows // 2)
    return folds if folds >= 2 else 0


def folds_bytes(params: int, folds: int) -> int:
    """The bytes that ``folds`` cross-validation folds (:func:`cv_folds_for`)
    take for a while beside a model of ``params`` parameters: a copy of it
    each, and a training step's buffers (none without folds: a slice held
    out trains the model itself)."""
    return (folds * FOLD_BYTES_PER_PARAMETER + FOLD_STEP_BYTES_PER_PARAMETER) * params if folds else 0


def planned_folds(n_rows: int, validation_fraction: Any, min_validation_rows: Any, cv_folds: Any, patience: Any,
                  epochs: Any) -> int:
    """The cross-validation folds :func:`fit_with_stopping` makes with these
    options for ``n_rows`` rows (with no ``validation`` given); 0 when one
    of them is invalid, which it refuses by its name before any copy."""
    try:
        if not _check_int(patience, "patience", 0) or not _check_int(epochs, "epochs", 0):
            return 0
        return cv_folds_for(n_rows, validation_fraction, min_validation_rows, cv_folds)
    except (GraphemeError, TypeError, ValueError):
        return 0


# One PrecisionLossWarning per modality, by this function's name for the data (fit's
# is data), however many fits follow (the folds', the final one).
@precision_scoped(lambda: _AS_INPUTS)
def fit_with_stopping(
    model: "LearnableMultiModal",
    inputs: Mapping[Any, Any],
    *,
    mask: Optional[np.ndarray] = None,
    validation: Optional[Mapping[Any, Any]] = None,
    validation_mask: Optional[np.ndarray] = None,
    validation_fraction: FloatLike,
    patience: IntLike,
    monitor: str,
    seed: Optional[IntLike] = None,
    cv_folds: IntLike = 5,
    min_validation_rows: IntLike = 32,
    epochs: IntLike,
    fit: Optional[FitFn] = None,
    **fit_options: Any,
) -> History:
    """Trains ``model`` on ``inputs`` (modality → rows, aligned; ``mask``
    ``[N, 7]`` optional; ``None`` in a list of graphs is a row absent from
    that modality, as :func:`~grapheme_multimodal.training.fit` takes it) for at most ``epochs`` epochs and returns the
    :class:`~grapheme_multimodal.training.History` of the fit that made it.

    - ``validation`` given: stops after ``patience`` epochs (0: never)
      without a better ``monitor`` on it (lower, or higher with
      ``mode="max"``, the default for a custom metric, as in
      :func:`~grapheme_multimodal.training.fit`) and keeps the best
      epoch's weights.
    - Otherwise ``validation_fraction`` of the rows (drawn from ``seed``)
      are held out and watched the same way — unless they would be fewer
      than ``min_validation_rows``: then ``cv_folds``-fold cross-validation
      (:func:`cv_folds_for`) runs the folds side by side, one epoch at a
      time, stops by the same rule on their mean ``monitor``, and the model
      trains on all rows for the best epoch's count
      (``history.cv_curve`` holds that mean curve). With ``patience`` 0
      all ``epochs`` run on the rows not held out (the slice is still
      validated after every epoch); with nothing to hold out, on all rows
      (with ``patience`` > 0 an
      :class:`~grapheme_multimodal.exceptions.EarlyStoppingSkippedWarning`
      says so, once per call).

    What the fits warn of the data is said of the rows the model trains
    on: a modality constant on the rows a slice leaves (or present only in
    the slice) is said so, naming the slice, and the folds, which only
    choose the epoch count, warn of nothing the final fit on all rows does
    not.

    Rows held out that make ``monitor`` 0 every epoch (the slice, or every
    fold: see ``validation`` in :func:`~grapheme_multimodal.training.fit`,
    e.g. a view present in few rows) are refused, naming
    ``validation_fraction``, before anything trains; so are rows held out
    that leave the rows trained on nothing to learn from (the one row
    holding two modalities, for ``cross_modal``), naming the slice's
    ``validation_fraction`` or the fold's ``cv_folds``, and rows held out
    that leave the rows trained on all alike where the data differs (each
    standardised input 0: nothing to learn); with folds, a
    ``modality_dropout`` above 0 where no row holds two modalities is
    refused as ``fit`` refuses it, before any fold trains.

    ``seed`` (default ``model.config.seed``, as for
    :func:`~grapheme_multimodal.training.fit`) also seeds the fits'
    shuffles and dropout. ``fit`` takes the final fit (default ``model.fit``; the CLI passes
    :func:`grapheme_multimodal.distributed.fit` for Ray); the folds train
    in this process on copies of ``model`` as it is now, with ``model``'s
    lock held from those copies to the end of the final fit, as ``fit``
    holds it: other threads read the model meanwhile and their writes wait;
    ``fit`` is called in this thread, under that lock, and must train the
    model in this thread too (as ``distributed.fit`` does: one that waited
    for another thread training it would wait for ever). A ``metrics``
    function (in ``fit_options``) called on a fold may read ``model`` but
    not train or change it (``RuntimeError``, ``model`` left as it was), as
    ``fit`` refuses it for the model it trains. ``fit_options``
    go to every fit (``batch_size``, ``objectives``, ``standardize``, ...;
    not ``early_stopping``, which ``patience`` sets: given too, it is
    refused). ``validation_mask`` without ``validation`` is refused, as by
    ``fit``.
    """
    check_model(model)  # a path or an estimator failed on "no attribute 'config'"
    refuse_in_fit(model, "fit")  # from a metric of this model's fit (or its signal handler): before the folds train
    # Python ints: numpy's small ones wrap (np.int8(127) epochs: range(1, epochs + 1) ran none, and the model 0)
    epochs = _check_int(epochs, "epochs", 0)
    patience = _check_int(patience, "patience", 0)
    min_validation_rows = _check_int(min_validation_rows, "min_validation_rows", 0)
    cv_folds = _check_int(cv_folds, "cv_folds", 0)
    seed = model.config.seed if seed is None else seed
    seed = _check_int(seed, "seed", 0)  # else numpy's "expected non-negative integer" when the rows are drawn
    _check_fraction(validation_fraction, "validation_fraction")  # with validation given too: NaN or 2.0 passed unseen
    if validation is None and validation_mask is not None:  # fit refuses it; here it was dropped unseen
        raise InvalidValueError("validation_mask: given without validation; expected it only beside validation data",
                                "validation_mask")
    if "early_stopping" in fit_options:
        # patience is fit's early_stopping: given too, it was a bare "multiple values" TypeError
        # with a slice held out, and silently stopped the final fit on its training loss otherwise
        raise InvalidValueError(
            f"early_stopping: given beside patience ({fit_options['early_stopping']!r} and {patience}); this function "
            "passes patience to fit as early_stopping; expected patience alone", "early_stopping",
        )
    # Checked whether or not rows are held out: a misspelt monitor passed unseen when
    # the data were too few to hold any out, and was refused once they were more.
    _check_monitor(monitor, True, _checked_metrics(fit_options.get("metrics")))
    # fit's rule (a custom metric is maximised unless mode says otherwise), which the
    # folds' mean curve follows too: compared as a loss, it chose a metric's worst epoch
    mode = resolve_mode(monitor, fit_options.get("mode"))
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs: expected a mapping modality -> [N, d] array, got {describe(inputs)}")
    if fit is not None and not callable(fit):  # else "'str' object is not callable", after the checks of the data
        raise TypeError(f"fit: expected None or a callable fit(inputs, **options) -> History (such as "
                        f"distributed.fit), got {describe(fit)}")
    fit = model.fit if fit is None else _returning_history(fit, model)
    fit_options["seed"] = seed  # shuffles and dropout, as the held-out rows
    if validation is not None:
        try:
            return fit(inputs, mask=mask, validation=validation, validation_mask=validation_mask, epochs=epochs,
                       early_stopping=patience or None, monitor=monitor, **fit_options)
        except (GraphemeError, TypeError) as err:  # fit's name for them is data; this function's is inputs
            raise _patience_for_early_stopping(renamed(err, _AS_INPUTS)) from None
    n = _row_count(inputs, mask)
    fit_rows, val_rows = holdout_rows(n, validation_fraction, seed)
    if val_rows is None:  # nothing split: fit checks the data itself
        skipped = bool(patience and validation_fraction > 0 and epochs > 0)
        # Said after the fit (a fit refused ran no epoch to speak of); where warnings are errors
        # (-W error, filterwarnings = error) the call then fails, and leaves the model as it was.
        before = _TrainingState.of(model) if skipped else None
        try:
            history = fit(inputs, mask=mask, epochs=epochs, **fit_options)
        except (GraphemeError, TypeError) as err:  # fit's name for them is data; this function's is inputs
            raise renamed(err, _AS_INPUTS) from None
        if before is not None:
            try:
                _warn_stopping_skipped(n, validation_fraction, patience, epochs)
            except BaseException:
                before.restore(model)
                raise
        return history
    # What is checked below is what the slices, the folds and the final fit take: an array-like
    # read again for each of them could give other rows than those checked (a bare IndexError,
    # a NaN named as a row of a `validation` the caller never gave)
    inputs, mask = _read_once(inputs, mask)
    now = _row_count(inputs, mask)
    if now != n:
        raise ShapeError(
            f"inputs: {n} rows when first read and {now} when read again; expected inputs that give the same rows "
            "every time they are read (an array-like whose __array__ changes its answer)", "inputs",
        )
    # Checked whole before it is split: an error names the user's row, not a
    # row of the slice or a fold, and nothing has trained yet.
    data = as_dataset(model, inputs, mask, "inputs", for_training=True, snapshot=False)
    precision_checked()  # the slices and folds hold these rows: checked
    k = cv_folds_for(n, validation_fraction, min_validation_rows, cv_folds) if patience and epochs > 0 else 0
    weights = dict(zip(OBJECTIVES, resolve_weights(fit_options.get("objectives"), False, "objectives")))
    present = data.mask_of(np.arange(n))
    check_something_trains(weights, present, "inputs")  # before the held-out rows are blamed
    held_out = _fold_rows(n, k, seed) if k else [val_rows]  # what each fold, or the slice, holds out
    # fit refuses validation rows that hold no modality, naming a validation_mask never given:
    # with or without patience (the slice is validated after every epoch either way)
    for i, rows in enumerate(held_out):
        if present[rows].any():
            continue
        if k:
            raise InvalidValueError(
                f"cv_folds: fold {i + 1} of the {k} cross-validation folds holds out {len(rows)} rows that hold no "
                "modality, on which every validation loss would be 0; expected fewer folds, or fewer rows without any "
                "modality", "cv_folds",
            )
        raise InvalidValueError(
            f"validation_fraction: the {len(rows)} rows held out hold no modality, so every validation loss would be 0 "
            "every epoch; expected another validation_fraction, or fewer rows without any modality", "validation_fraction",
        )
    for i, rows in enumerate(held_out if k and not data.has_fused else ()):  # fused: fit weighs seed_consistency too
        _refuse_fold_of_one_present_row(weights, present[rows], monitor, i, k, data.has_inputs)
    if patience and epochs > 0:  # named here: fit would blame a `validation` the caller never gave
        what = (f"validation_fraction: the {len(val_rows)} rows held out to stop on" if k == 0
                else f"validation_fraction: the rows each of the {k} cross-validation folds holds out")
        refusals = []
        for rows in held_out:
            try:
                check_validation_measures(weights, present[rows], monitor, what, "validation_fraction", True,
                                          " among them, or patience=0 (no early stopping)")
            except InvalidValueError as err:
                refusals.append(err)
            else:  # the folds' mean curve is 0 every epoch only when every fold's is
                break
        else:
            raise refusals[0]
    # The slice or a fold may hold out every row the objectives learn from (the one row holding two
    # modalities, for cross_modal): fit refused the rows left to train on as the caller's whole data
    # ("Xs: no row holds two modalities"), which holds them.
    for i, rows in enumerate(held_out):
        kept = np.ones(n, dtype=bool)
        kept[rows] = False
        nothing = nothing_trains(weights, present[kept])
        if nothing is not None:  # its reason alone, not parsed out of check_something_trains' message
            raise _split_leaves(i, k, n, rows, f"nothing to learn from: among them, {nothing[0]}", "such rows",
                                ", or more rows the objectives learn from")
    if k:
        # A fold does not refuse modality_dropout on rows of one modality each (the final fit, on all rows, may
        # have rows of two): all rows without one were refused by the final fit, after every fold had trained
        # every epoch, minutes of training for a refusal known before any
        refuse_idle_modality_dropout(_check_fraction(fit_options.get("modality_dropout", 0.0), "modality_dropout"),
                                     present)
    standardize = fit_options.get("standardize", True)
    if epochs > 0 and type(standardize) in (bool, np.bool_) and standardize:
        _refuse_splits_standardising_to_zero(model, data, n, k, held_out)
    if k == 0:
        (train, train_mask), (held, held_mask) = _take(inputs, mask, fit_rows), _take(inputs, mask, val_rows)
        columns = frame_columns(inputs)
        # The model held from the check of the frames' names to their keeping, as fit holds it: the slice's
        # arrays carry no names for fit to check, and a fit of another thread that learned them in another
        # order after the check above had the model train on them reordered, keeping the other order.
        with waiting_from_metric(model, "fit_with_stopping"), model._lock.updating():
            for m, names in columns.items():
                refuse_reordered_fitted_names(f"inputs[{MODALITY_NAMES[m]!r}]", model._input_columns[m], names, m)
            # the slice's arrays carry no names: the data frames' kept before the fit, as fit keeps them. Kept
            # after it, a Ctrl-C in a later epoch (fit keeps the epochs completed) or as fit returned left a model
            # trained on the frames that had not learned their names: one in another order was not refused.
            known, trained_before = model._input_columns, model.epochs_trained
            try:
                if epochs > 0:
                    trained = present[fit_rows]
                    model._remember_columns({m: names for m, names in columns.items() if trained[:, m].any()})
                # its warnings say "the rows trained on", not a `validation` given
                history = call_training_on_split("slice", fit, train, mask=train_mask, validation=held,
                                                 validation_mask=held_mask, epochs=epochs,
                                                 early_stopping=patience or None, monitor=monitor, **fit_options)
            except BaseException as err:
                # as fit leaves the model: interrupted, the epochs completed are kept, and their names with them
                if not isinstance(err, KeyboardInterrupt) or model.epochs_trained == trained_before:
                    with uninterrupted():
                        model._input_columns = known
                if isinstance(err, NonFiniteError):  # a row whose encoding overflowed, named as the slice's
                    raise overflow_in_user_rows(err, {"data": fit_rows, "validation": val_rows}, "inputs") from None
                as_inputs = _column_as_inputs(err)
                if as_inputs is not err:
                    raise as_inputs from None
                raise
        return history
    # the k folds train copies of the model, all held at once: past memory, copying them aborted the process
    # (a Rust allocation that fails), where a slice held out makes no copy
    refuse_beyond_budget(
        folds_bytes(model.num_parameters(), k), "cv_folds",
        "its {k} cross-validation folds each train a copy of the model ({params:,} parameters), {bytes} bytes in all",
        remedy="fewer cv_folds, or a validation_fraction that holds out min_validation_rows rows or more (one slice, "
        "no copy)", k=k, params=model.num_parameters(),
    )
    # The model held from the folds' copies to the end of its own fit, as fit holds it (other threads' writes
    # wait; their reads get in): a write between the copies and the final fit, or during it, trained for
    # the folds' count of epochs a model the folds never saw.
    with waiting_from_metric(model, "fit_with_stopping"), model._lock.updating():
        # a fit of the model from this thread's own code meanwhile is refused, as during fit
        count, curve = call_fitting(model, _cv_epochs, model, inputs, mask, n, k, seed, patience, monitor, mode, epochs,
                                    fit_options)
        history = fit(inputs, mask=mask, epochs=count, **fit_options)
    # best_epoch is an epoch number as the records count them (after any
    # epochs the model had already trained), as fit's own; the count the
    # folds chose is len(history.epochs), its place in cv_curve.
    history.monitor, history.best_epoch, history.cv_curve = monitor, history.epochs[-1]["epoch"], curve
    return history


def _refusing(model: "LearnableMultiModal", name: str, metric: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``metric`` for a cross-validation fold of ``model``: training or
    changing ``model`` from it is refused, as from a metric of its own fit
    (``RuntimeError``), and so is an assignment to its ``epochs_trained``
    or ``history`` (or a change of that list), which no lock sees: put back
    as they were, as fit puts its model's back."""

    def measured(fold: Any) -> Any:
        held = {k: model.__dict__[k] for k in ("epochs_trained", "history") if k in model.__dict__}
        history = held.get("history")
        records = list(history) if isinstance(history, list) else None  # a handful: one per epoch trained
        try:
            value = call_metric(model, name, metric, fold)
        except BaseException:
            _put_back(model, held, records)
            raise
        changed = _put_back(model, held, records)
        if changed:
            raise RuntimeError(
                f"metrics[{name!r}]: changed model.{changed} of the model whose cross-validation folds it measures, in "
                "the middle of fit_with_stopping, which trains that model next; expected metrics that read the model "
                "(change its training record after fit_with_stopping returns)"
            )
        return value

    return measured


def _put_back(model: "LearnableMultiModal", held: Dict[str, Any], records: Optional[List[Any]]) -> Optional[str]:
    """The name of the attribute of ``model``'s training record that is no
    longer as ``held`` (and the list ``history`` held ``records``), put back
    as it was (under its lock, which this thread holds for the folds); None
    when none changed (a check of each, O(1) but for the records)."""
    now = {k: model.__dict__[k] for k in ("epochs_trained", "history") if k in model.__dict__}
    same_epochs = ("epochs_trained" in now) == ("epochs_trained" in held) and (
        "epochs_trained" not in held
        or (type(now["epochs_trained"]) is type(held["epochs_trained"]) and now["epochs_trained"] == held["epochs_trained"]))
    history = held.get("history")
    same_history = now.get("history", _ABSENT) is held.get("history", _ABSENT) and (
        records is None or (len(history) == len(records) and all(a is b for a, b in zip(history, records))))
    if same_epochs and same_history:
        return None
    with model._lock.writing():
        if records is not None:
            history[:] = records
        for k in ("epochs_trained", "history"):
            if k in held:
                model.__dict__[k] = held[k]
            else:
                model.__dict__.pop(k, None)
    return "epochs_trained" if not same_epochs else "history"


_ABSENT = object()


def _returning_history(fit: FitFn, model: "LearnableMultiModal") -> FitFn:
    """The caller's ``fit``, refusing what it returns unless a
    :class:`History` (``TypeError`` naming ``fit``), with ``model`` put back
    as it was before that call: ``history.epochs`` of ``None`` was an
    ``AttributeError`` once it had trained the model for cross-validation's
    count of epochs, which stayed trained, and any other value was returned
    as this function's History."""

    def checked(*args: Any, **kwargs: Any) -> History:
        before = _TrainingState.of(model)
        # the scopes set for the fit of model on these rows: not for another fit the function may run (a side model's)
        history = call_for_fit_of(model, args[0] if args else kwargs.get("inputs"), fit, *args, **kwargs)
        if not isinstance(history, History):
            before.restore(model)
            raise TypeError(f"fit: returned {describe(history)}; expected the History of the fit it ran (as "
                            "LearnableMultiModal.fit and distributed.fit return)")
        return history

    return checked


def _warn_stopping_skipped(n: int, validation_fraction: FloatLike, patience: int, epochs: int) -> None:
    """Says that early stopping, asked for, is skipped: ``validation_fraction``
    of the ``n`` rows holds out fewer than 2 or leaves fewer than 2 to train on
    (documented, but was silent: the caller asked to stop early)."""
    held = int(round(n * validation_fraction))
    run = "the 1 epoch runs" if epochs == 1 else f"all {epochs} epochs run"
    warn_at_caller(
        # counted: it said "of 1 rows"
        f"validation_fraction: {validation_fraction:g} of {counted(n, 'row')} holds out {held}, leaving {n - held} (at least 2 are "
        f"needed on each side), so early stopping (patience {shown_number(patience, str)}) is skipped: {run} on all rows; "
        "expected a validation_fraction that holds out 2 rows or more (or patience=0)",
        EarlyStoppingSkippedWarning,  # the user's line, under precision_scoped's wrapper too
    )


#: fit's remedy for validation rows that leave its monitor 0, of an argument this function sets by ``patience``
_FITS_REMEDY, _REMEDY = ", or early_stopping=None", ", or patience=0 (no early stopping)"


def _patience_for_early_stopping(err: Exception) -> Exception:
    """``err`` of the fit on the ``validation`` given, its remedy "or
    early_stopping=None" said as ``patience=0``: this function (and
    uci.fit_views, fit_ensemble, whose settings hold ``patience``) takes no
    ``early_stopping``, and refuses it given."""
    text = str(err)
    if isinstance(err, GraphemeError) and text.endswith(_FITS_REMEDY):
        return type(err)(text[: -len(_FITS_REMEDY)] + _REMEDY, err.arg)
    return err


#: fit's names for this function's ``inputs`` (``data``, ``data['visual']``, ...).
_AS_INPUTS: Dict[str, str] = {"data": "inputs", **{f"data[{name!r}]": f"inputs[{name!r}]" for name in MODALITY_NAMES}}


def _row_count(inputs: Mapping[Any, Any], mask: Any) -> int:
    """The number of rows: the mask's, else the first given modality's
    (``None`` is a modality not given, as ``fit`` takes it); 0 when there
    is neither, for ``fit`` to refuse. Was ``len()`` of the first value, a
    bare "object of type 'NoneType' has no len()" for ``None``, a scalar or
    a generator."""
    for name, value in ([("mask", mask)] if mask is not None else []) + [(f"inputs[{m!r}]", x) for m, x in inputs.items()]:
        if value is None:
            continue
        if is_graph_list(value):
            return len(value)
        try:
            rows = as_real_array(value, name)
        except (TypeError, ValueError):
            refuse_stray_graphs(value, name)
            raise
        if rows.ndim == 0:
            raise ShapeError(f"{name}: expected one row per sample, got a scalar {describe(value)}", name)
        return len(rows)
    return 0


def _read_once(inputs: Mapping[Any, Any], mask: Any) -> Tuple[Dict[Any, Any], Any]:
    """``inputs`` as a dict and ``mask``, each array-like among them read
    once into an array (its values as given, as :func:`_take` reads them).
    Kept as they are: ``None``, numpy arrays (masked ones too, which ``fit``
    refuses with its own words), lists of graphs (which ``fit``
    featurises) and data frames with an index (whose pairing ``fit``
    checks)."""

    def read(x: Any, name: str) -> Any:
        if x is None or isinstance(x, np.ndarray) or is_graph_list(x) or hasattr(getattr(x, "index", None), "equals"):
            return x
        try:
            return as_real_array(x, name, masked_inputs_remedy())
        except (TypeError, ValueError):  # numpy's "dtype object" named neither a stray item nor the graphs
            refuse_stray_graphs(x, name)
            raise

    def name_of(key: Any) -> str:
        try:  # fit's name for it: inputs['visual'] whatever the key (a Modality, an index)
            return f"inputs[{str(Modality.parse(key, 'inputs'))!r}]"
        except (TypeError, ValueError):  # a key fit refuses, by its own words
            return f"inputs[{key!r}]"

    return {m: read(x, name_of(m)) for m, x in dict(inputs).items()}, read(mask, "mask")


def _take(inputs: Mapping[Any, Any], mask: Optional[np.ndarray], rows: np.ndarray) -> Tuple[Dict[Any, Any], Optional[np.ndarray]]:
    """``rows`` of every modality's array, and of ``mask`` when given (lists
    and data frames as arrays: ``frame[rows]`` would pick columns, or fail;
    a list of graphs, which ``fit`` featurises, as a list of those graphs;
    ``None``, a modality not given, as ``None``)."""
    taken = {m: None if x is None else [x[i] for i in rows] if is_graph_list(x)
             else _frozen(as_real_array(x, f"inputs[{m!r}]")[rows]) for m, x in inputs.items()}
    return taken, None if mask is None else _frozen(as_real_array(mask, "mask")[rows])


def _frozen(rows: np.ndarray) -> np.ndarray:
    """``rows`` (a copy this module made, which nobody else holds) read-only,
    so that ``fit`` trains on it in place instead of copying it again."""
    rows.flags.writeable = False
    return rows


def _fold_rows(n: int, k: int, seed: int) -> List[np.ndarray]:
    """The rows each of the ``k`` cross-validation folds holds out, sorted: one part each of a permutation drawn from ``seed``."""
    return [np.sort(held) for held in np.array_split(np.random.default_rng(seed).permutation(n), k)]


def _column_as_inputs(err: BaseException) -> BaseException:
    """``err`` refusing a column of a slice's or fold's ``data['m']`` whose
    values vary by a std float32 cannot divide by, named as this function's
    ``inputs['m']`` (the column is the caller's); else ``err``."""
    if isinstance(err, InvalidValueError) and err.arg in _AS_INPUTS and SPREAD_BELOW_FLOAT32 in str(err):
        return renamed(err, _AS_INPUTS)
    return err


def _refuse_splits_standardising_to_zero(
    model: "LearnableMultiModal", data: Any, n: int, k: int, held_out: Sequence[np.ndarray]
) -> None:
    """Refuses, by ``cv_folds`` or ``validation_fraction``, a fold or the
    slice that holds out every row where the inputs differ: fit refused the
    rows left, all the same once standardised, as the caller's whole data
    ("data: all 80 rows hold the same visual values ... expected rows that
    differ", false: the held-out rows do), after the folds before it had
    trained. Data the same in every row is left to fit's own refusal. Two
    rows' look per modality and split, seldom more (``_all_rows_equal``)."""
    if not data.has_inputs:
        return
    inputs = []  # (slot, x, which rows hold it) of each modality whose standardisation fit would learn
    for m in range(len(Modality)):
        held = data.inputs_of(m)
        if held is None:
            continue
        if model.normalization(m) is not None:  # standardised as it is: its inputs vary, or were refused as such
            return
        x, present = held
        if len(x) != n:  # not one row per row of the caller's (no such dataset here): fit's own check stands
            return
        inputs.append((m, x, np.ones(len(x), dtype=bool) if present is None else present))
    if not inputs or all(_all_rows_equal(x, present) for _, x, present in inputs):
        return
    for i, rows in enumerate(held_out):
        kept = np.ones(n, dtype=bool)
        kept[rows] = False
        left = [(m, x, present & kept) for m, x, present in inputs if (present & kept).any()]
        if not left or not all(_all_rows_equal(x, present) for _, x, present in left):
            continue
        names = ", ".join(MODALITY_NAMES[m] for m, _, _ in left)
        why = (f"all alike (the same {names} values in each); standardize=True learns each modality's mean from them, "
               "so every standardised input is 0 and nothing can be learned")
        raise _split_leaves(i, k, n, rows, why, "rows that differ", ", more rows that differ, or standardize=False")


def _refuse_fold_of_one_present_row(weights: Mapping[str, float], present: np.ndarray, monitor: str, i: int,
                                    k: int, has_inputs: bool) -> None:
    """Refuses fold ``i`` of ``k`` whose held-out rows (``present``: their
    modalities) hold a modality in one row only, when its fit would refuse
    them for leaving ``monitor`` at 0 (one row, as one row of training data
    is): refused there, after the folds before it had trained, it was named
    as fit's ``validation``, an argument the caller never gave (nor train's
    command line). Said by the folds' name, ``cv_folds``."""
    if np.count_nonzero(present.any(axis=1)) != 1:
        return
    what = f"cv_folds: fold {i + 1} of the {k} cross-validation folds holds out {len(present)} rows"
    try:
        # only the refusal: the fold's fit says its own warning of a single row, as ever
        with holding_warnings(dropped=(UserWarning,), hold=False):
            check_validation_measures(weights, present, monitor, what, "cv_folds", False, has_inputs=has_inputs)
    except InvalidValueError as err:
        raise InvalidValueError(f"{err} among them: fewer folds, or fewer rows without any modality", "cv_folds") from None


def _split_leaves(i: int, k: int, n: int, rows: np.ndarray, what: str, keeps: str, remedy: str) -> InvalidValueError:
    """The refusal of fold ``i`` of ``k`` (``k`` 0: the slice), which holds
    out ``rows`` of ``n`` and leaves the rest to train on ``what``: named by
    ``cv_folds`` or ``validation_fraction``, the caller's own settings, with
    the way out (a slice that leaves ``keeps`` to train on) and ``remedy``."""
    if k:
        return InvalidValueError(
            f"cv_folds: fold {i + 1} of the {k} cross-validation folds holds out {len(rows)} rows that leave its "
            f"{n - len(rows)} rows to train on {what}; expected patience=0 (no early stopping: every epoch on all "
            f"rows){remedy}", "cv_folds",
        )
    return InvalidValueError(
        f"validation_fraction: the {len(rows)} rows held out to stop on leave the {n - len(rows)} rows trained on "
        f"{what}; expected a validation_fraction that leaves {keeps} to train on (0: none held out){remedy}",
        "validation_fraction",
    )


def _cv_epochs(
    model: "LearnableMultiModal",
    inputs: Mapping[Any, Any],
    mask: Optional[np.ndarray],
    n: int,
    k: int,
    seed: int,
    patience: int,
    monitor: str,
    mode: str,
    epochs: int,
    fit_options: Dict[str, Any],
) -> Tuple[int, List[float]]:
    """The epoch count at which the ``k`` folds' mean ``monitor`` was best
    (lowest for ``mode="min"``, highest for ``"max"``) when it stopped
    improving for ``patience`` epochs (or the
    budget ran out), and that mean per epoch. One ``fit`` call per fold and
    epoch continues exactly where the last one ended (shuffles and draws
    follow the epoch count), so a larger budget gives the same choice."""
    options = {**fit_options, "progress": False}
    if options.get("metrics"):
        # A fold's fit refuses its fold from them; the model they are copies of, which a metric may hold too,
        # is refused as well: trained or changed there, the final fit trained on from a model the folds never saw
        options["metrics"] = {name: _refusing(model, name, metric) for name, metric in _checked_metrics(options["metrics"]).items()}
    splits = []
    for held_rows in _fold_rows(n, k, seed):
        rest = np.setdiff1d(np.arange(n), held_rows)
        splits.append((copy.deepcopy(model), _take(inputs, mask, rest), _take(inputs, mask, held_rows),
                       {"data": rest, "validation": held_rows}))
    curve: List[float] = []
    best_epoch, waited = 0, 0
    for epoch in range(1, epochs + 1):
        values = []
        for fold, (train, train_mask), (held, held_mask), rows_of in splits:
            try:
                # what a fold's rows lack, the final fit's may not: it says its own
                history = call_training_on_split("fold", fold.fit, train, mask=train_mask, validation=held,
                                                 validation_mask=held_mask, epochs=1, monitor=monitor, **options)
            except NonFiniteError as err:  # a row whose encoding overflowed, named as the fold's
                raise overflow_in_user_rows(err, rows_of, "inputs") from None
            except InvalidValueError as err:
                as_inputs = _column_as_inputs(err)
                if as_inputs is not err:
                    raise as_inputs from None
                raise
            values.append(history.epochs[-1][monitor])
        curve.append(float(np.mean(values)))
        better = curve[-1] < curve[best_epoch - 1] if mode == "min" else curve[-1] > curve[best_epoch - 1]
        if best_epoch == 0 or better:
            best_epoch, waited = epoch, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return best_epoch, curve

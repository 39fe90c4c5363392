"""Exact resume after a Ctrl-C at any point of ``fit``'s epochs: the model
is left whole (as before the call, or as after its completed epochs, the
weight average applied), the ``KeyboardInterrupt`` is what the caller
gets, and the fit resumes from there, even in the handler of that
interrupt, as if never stopped."""

from __future__ import annotations

import copy
import gc
import json
import sys
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import stopping, training
from grapheme_multimodal.checkpoint import checkpoint_state
from grapheme_multimodal.stopping import fit_with_stopping

from ctrl_c_sweep import interrupted_at

pytestmark = [
    pytest.mark.usefixtures("default_sigint"),  # CI runs pytest with SIGINT ignored: no Ctrl-C would land
    pytest.mark.skipif(sys.platform == "win32", reason="a real SIGINT sent to the process itself"),
]

DIMS = {"visual": 3, "auditory": 2}


def small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=4, hidden_dim=4, num_heads=1, seed=0, input_dims=DIMS,
                                  encoder_hidden=(4,), encoder_input_dropout=0.2, learnable_temperature=True)


def rows(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, d)).astype(np.float32) for m, d in DIMS.items()}


def full_state(model: gm.LearnableMultiModal) -> tuple:
    """What a checkpoint holds (weights, Adam state, draw counter, weight
    average, epochs, history), comparable: the times left out."""
    tensors, meta = checkpoint_state(model)
    meta.pop("library_version")
    for record in meta["history"]:
        record.pop("seconds", None)  # an epoch record left half made lacks it: told apart by the other keys
    return {k: v.tobytes() for k, v in tensors.items()}, json.dumps(meta, sort_keys=True)


#: The estimator's fit and the functions it runs the fitting in (its undo on failure, its mark).
ESTIMATOR_FIT = ("fit", "_unchanged_on_failure", "_call_fitting")


def in_code(module, *names: str):
    """The code a sweep sends its Ctrl-C into: ``module``'s functions
    ``names`` (and what they call, the marks of their thread among it)."""
    return lambda code: code.co_filename == module.__file__ and code.co_name in names


def test_a_ctrl_c_anywhere_in_fit_s_epochs_keeps_whole_epochs_and_fit_resumes_in_its_handler() -> None:
    """Before: a Ctrl-C landing as ``fit`` began or ended a metric's call
    (``with calling_metric(...)``: contextlib's ``__enter__`` returning, or
    its ``__exit__`` starting) left the model marked as calling that metric:
    the caller got ``RuntimeError: _restore_weights: this model is being
    trained by fit, which is calling metrics['one']`` instead of the
    ``KeyboardInterrupt``, and the model was left in the middle of the epoch
    (counted, its record half made, the weight average not applied). As
    ``fit`` began or ended training (``with fitting(model)``), the model
    stayed marked as being fitted while the interrupt was handled, and a
    ``fit`` in its handler was refused ("this model's fit is running in
    this thread"). A Ctrl-C as the last epoch ended, before the average was
    applied, left the trained weights in the model without it. Now each
    point gives the ``KeyboardInterrupt`` and the model of the completed
    epochs (average applied), and a fit in its handler resumes exactly."""
    x = rows(8, 0)
    kw = dict(batch_size=8, ema_decay=0.5, progress=False, metrics={"one": lambda m: 1.0})
    start = small_model()
    start.fit(x, epochs=1, **kw)  # a fit that resumes an average
    expected = {}
    for k in (0, 1):
        reference = copy.deepcopy(start)
        reference.fit(x, epochs=k, **kw)
        expected[1 + k] = full_state(reference)

    wrong, n = [], 0
    while True:
        n += 1
        model = copy.deepcopy(start)

        def resumed_in_the_handler():
            if full_state(model) != expected.get(model.epochs_trained):
                wrong.append((n, f"not the model of {model.epochs_trained - 1} epochs of this fit"))
                return
            try:
                model.fit(x, epochs=2 - model.epochs_trained, **kw)
            except RuntimeError as err:
                wrong.append((n, f"resumed in the handler: {str(err)[:80]}"))
                return
            if full_state(model) != expected[2]:
                wrong.append((n, "resumed, not the uninterrupted model"))

        try:
            if not interrupted_at(n, lambda: model.fit(x, epochs=1, **kw), in_code(training, "fit", "_train", "_run_epoch"),
                                  handler=resumed_in_the_handler):
                break
        except RuntimeError as err:  # not the Ctrl-C: interrupted_at passes it on
            wrong.append((n, f"raised RuntimeError: {str(err)[:80]}"))
    assert n > 100, f"the sweep reached {n} points only"
    assert wrong == [], wrong[:5]



def test_a_ctrl_c_anywhere_in_the_estimator_s_fit_leaves_it_unfitted_and_its_parameters_settable() -> None:
    """Before: a Ctrl-C landing as the estimator's ``fit`` marked itself as
    running (contextlib's ``__enter__`` returning) or took the mark off
    (its ``__exit__`` starting) left the estimator marked while the
    interrupt was handled: ``set_params`` in the handler raised
    ``RuntimeError: set_params: called in the middle of this estimator's
    own fit``. Now the estimator is as it was (unfitted; or, interrupted as
    the fit returned, fitted whole) and its parameters are set there, and
    it then fits as if never interrupted."""
    from grapheme_multimodal import sklearn as gm_sklearn

    views = list(rows(12, 2).values())
    params = dict(embed_dim=4, hidden_dim=4, num_heads=1, encoder_hidden=(4,), encoder_output_dim=4, shared_head=(4,),
                  fused_neighbors=2, epochs=1, batch_size=12, patience=0, random_state=0)
    expected = gm_sklearn.MultimodalEmbedder(**params).fit(views).transform(views)
    whole = gm_sklearn.MultimodalEmbedder(**{**params, "epochs": 5}).fit(views).transform(views)
    wrong, n = [], 0
    while True:
        n += 1
        estimator = gm_sklearn.MultimodalEmbedder(**{**params, "epochs": 5})

        def refitted_in_the_handler():
            if hasattr(estimator, "model_") and not np.array_equal(estimator.transform(views), whole):
                wrong.append((n, "fitted in part"))
                return
            try:
                estimator.set_params(epochs=1)
            except RuntimeError as err:
                wrong.append((n, f"set_params in the handler: {str(err)[:80]}"))
                return
            if not np.array_equal(estimator.fit(views).transform(views), expected):
                wrong.append((n, "refitted, not the uninterrupted estimator"))

        if not interrupted_at(n, lambda: estimator.fit(views), in_code(gm_sklearn, *ESTIMATOR_FIT), handler=refitted_in_the_handler):
            break
    assert n > 10, f"the sweep reached {n} points only"
    assert wrong == [], wrong[:5]


def test_a_ctrl_c_in_a_cross_validation_fold_s_epoch_leaves_no_fold_behind_for_later_fits(monkeypatch) -> None:
    """Before: a Ctrl-C as a fold's epoch entered or left the scopes it
    calls a metric outside of (``with _outside_scopes()``) kept that
    context manager's generator suspended; when the garbage collector
    closed it, it put the fold's scope back for good, and every later fit
    in the thread took itself for a cross-validation fold: a modality the
    same in every row went without its ConstantModalityWarning (as other
    warnings and refusals of the data a fold leaves to the final fit). Now
    a later fit warns, wherever the Ctrl-Cs landed."""
    x = rows(12, 1)
    options = dict(validation_fraction=0.2, patience=2, min_validation_rows=5, cv_folds=2, monitor="val_total",
                   batch_size=12, progress=False, metrics={"one": lambda m: 1.0})
    # the points that matter: the first fold's epoch (not the other fold's, alike, nor the final fit's)
    in_epoch, folds, epochs = in_code(training, "_run_epoch"), [], []
    cv_epochs, run_epoch = stopping._cv_epochs, training._run_epoch

    def folds_run(*args, **kwargs):
        folds.append(True)
        epochs.clear()
        try:
            return cv_epochs(*args, **kwargs)
        finally:
            folds.clear()

    def epoch_run(*args, **kwargs):
        epochs.append(True)
        return run_epoch(*args, **kwargs)

    monkeypatch.setattr(stopping, "_cv_epochs", folds_run)
    monkeypatch.setattr(training, "_run_epoch", epoch_run)

    def in_a_fold_s_epoch(code) -> bool:
        return bool(folds) and len(epochs) == 1 and in_epoch(code)

    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # six rows a fold: the objectives that compare rows are few
        while True:
            n += 1
            model = small_model()
            if not interrupted_at(n, lambda: fit_with_stopping(model, x, epochs=1, **options), in_a_fold_s_epoch):
                break
    assert n > 30, f"the sweep reached {n} points only"
    gc.collect()  # closes whatever the interrupts left suspended
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        small_model().fit({"visual": x["visual"], "auditory": np.ones_like(x["auditory"])}, epochs=1, batch_size=12,
                          progress=False)
    assert any(issubclass(w.category, gm.ConstantModalityWarning) for w in said), [str(w.message) for w in said]


def test_a_ctrl_c_in_the_recipe_leaves_no_precision_scope_behind_for_later_fits() -> None:
    """Before: a Ctrl-C as ``fit_views`` entered or left one of its nested
    scopes kept that context manager's generator suspended; when the
    garbage collector closed it, it put back the scope around it, that of
    a fit long over, for good: a later fit's PrecisionLossWarning named its
    data as the recipe's views and was said once only, as if inside the
    recipe. Now every later fit warns, by its own name for the data."""
    from grapheme_multimodal import _validation, uci

    rng = np.random.default_rng(0)
    views = {"fou": rng.normal(size=(12, 3)), "kar": rng.normal(size=(12, 2))}
    settings = uci.TrainingSettings(embed_dim=4, hidden_dim=4, num_heads=1, encoder_hidden=(4,), encoder_output_dim=4,
                                    shared_head=(4,), epochs=1, batch_size=12, patience=2, fused_neighbors=2,
                                    neighborhood_neighbors=2, cv_folds=2, min_validation_rows=5, validation_fraction=0.25)
    names = ("fit_views", "train", "fit_with_stopping", "scoped", "_cv_epochs")  # the recipe's nested scopes

    def in_the_recipe(code) -> bool:
        return code.co_filename in (uci.__file__, stopping.__file__, _validation.__file__) and code.co_name in names

    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        while True:
            n += 1
            if not interrupted_at(n, lambda: uci.fit_views(views, settings=settings), in_the_recipe):
                break
    assert n > 100, f"the sweep reached {n} points only"
    gc.collect()  # closes whatever the interrupts left suspended
    timestamps = {"visual": 1e6 + 1e-3 * rng.normal(size=(12, 3)), "auditory": rng.normal(size=(12, 2))}
    for _ in range(2):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            small_model().fit(timestamps, epochs=1, batch_size=12, progress=False)
        texts = [str(w.message) for w in said if issubclass(w.category, gm.PrecisionLossWarning)]
        assert len(texts) == 1 and texts[0].startswith("data['visual']"), texts


def test_an_interrupted_estimator_fit_never_undoes_a_later_fit() -> None:
    """Before: a Ctrl-C as the estimator's ``fit`` entered its undo-on-failure
    block (contextlib's ``__enter__`` returning) kept that block's generator
    suspended while the interrupt was alive (a notebook keeps the last one
    in ``sys.last_value``); the estimator was then fitted again, and when
    the old interrupt was dropped, the generator's close put back the
    attributes of before the interrupted fit: the estimator silently lost
    its later fit (unfitted again). Now the later fit stays."""
    from grapheme_multimodal import sklearn as gm_sklearn

    views = list(rows(12, 2).values())
    params = dict(embed_dim=4, hidden_dim=4, num_heads=1, encoder_hidden=(4,), encoder_output_dim=4, shared_head=(4,),
                  fused_neighbors=2, epochs=1, batch_size=12, patience=0, random_state=0)
    expected = gm_sklearn.MultimodalEmbedder(**params).fit(views).transform(views)
    wrong, n = [], 0
    while True:
        n += 1
        estimator, kept = gm_sklearn.MultimodalEmbedder(**params), []
        if not interrupted_at(n, lambda: estimator.fit(views), in_code(gm_sklearn, *ESTIMATOR_FIT),
                              handler=lambda: kept.append(sys.exc_info()[1])):
            break
        estimator.fit(views)  # the next cell, the interrupt still kept
        kept.clear()
        gc.collect()  # closes whatever the interrupt left suspended
        if not hasattr(estimator, "model_") or not np.array_equal(estimator.transform(views), expected):
            wrong.append(n)
    assert n > 5, f"the sweep reached {n} points only"
    assert wrong == [], f"a Ctrl-C at points {wrong} undid the fit after it"

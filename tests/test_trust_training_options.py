"""A hostile user's audit of the training loop's options (``fit`` /
``fit_with_stopping``: ``epochs``, ``batch_size``, ``lr``,
``early_stopping``, ``patience``, ``monitor``, ``validation``,
``validation_mask``, ``validation_fraction``, ``min_validation_rows``,
``cv_folds``, ``ema_decay``, ``modality_dropout``, ``metrics``) and of the
model's capacity options (``encoder_hidden``, ``encoder_output_dim``,
``shared_head``, the dropouts, ``encoder_skip``, the temperature,
``weight_decay``, ``grad_clip``, the widths and heads) through the model,
``uci.TrainingSettings``, ``MultimodalEmbedder`` and ``grapheme-mm train``:
what it turned up, each test failing before its fix, and what held (last
tests). Bad values of each option by type and range are covered option by
option in test_fit.py, test_stopping.py, test_weight_average.py,
test_capacity.py and test_trust_interrupts.py."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError
from grapheme_multimodal.stopping import fit_with_stopping

from conftest import cli_train_args, model_state as state, run_concurrently
from conftest import two_view_data as views, two_view_model as model

QUIET = dict(batch_size=10, progress=False)
STOP = dict(validation_fraction=0.1, patience=2, monitor="val_total", epochs=3)


# ------------------------------------------------------------- what broke
def test_a_validation_mask_without_validation_data_is_refused_by_fit_with_stopping():
    """fit refuses a validation_mask given without validation data (it would
    be ignored unseen); fit_with_stopping dropped it silently and held out
    rows of its own, with their own mask."""
    m = model()
    before = state(m)
    with pytest.raises(InvalidValueError, match=r"^validation_mask: given without validation") as err:
        fit_with_stopping(m, views(), validation_mask=np.ones((6, 7), bool), **STOP, **QUIET)
    assert err.value.arg == "validation_mask" and state(m) == before


@pytest.mark.parametrize("fraction, min_rows", [(0.5, 0), (0.1, 32), (0.01, 32)])  # the slice, the folds, nothing held out
def test_early_stopping_beside_patience_is_refused_by_its_name(fraction, min_rows):
    """fit_with_stopping's patience is fit's early_stopping: given as well,
    fit's early_stopping was a bare TypeError "got multiple values" when a
    slice was held out, and was silently used — on the training loss, of
    the final fit on all rows — when cross-validation chose the epochs or
    nothing was held out."""
    m = model()
    before = state(m)
    with pytest.raises(InvalidValueError, match=r"^early_stopping: given beside patience") as err:
        fit_with_stopping(m, views(), **{**STOP, "validation_fraction": fraction}, min_validation_rows=min_rows,
                          early_stopping=3, **QUIET)
    assert err.value.arg == "early_stopping" and state(m) == before


def test_an_lr_whose_product_with_weight_decay_reaches_1_is_blamed_on_lr():
    """A model made with weight_decay=100 at learning_rate=0.001 is valid;
    fit(lr=0.5) then multiplies every weight by 1 - 50 each step. The
    refusal named weight_decay, which this call never gave and which the
    model was made with: the mistake is this call's lr."""
    m = model(weight_decay=100.0, learning_rate=0.001)
    before = state(m)
    for call in (lambda: m.fit(views(), epochs=1, lr=0.5, **QUIET), lambda: m.train_step(views(), lr=0.5)):
        with pytest.raises(InvalidValueError, match=r"^lr: got 0\.5 with the model's weight_decay=100: .*expected "
                                                    r"lr × weight_decay < 1") as err:
            call()
        assert err.value.arg == "lr" and state(m) == before
    # Made so, the model's own learning_rate is still blamed on weight_decay, as before.
    with pytest.raises(InvalidValueError, match=r"^weight_decay: got 1000 with learning_rate=0\.001") as err:
        model(weight_decay=1000.0, learning_rate=0.001)
    assert err.value.arg == "weight_decay"


def test_modality_dropout_where_no_row_holds_two_modalities_is_refused():
    """A row always keeps one modality, so on data whose rows hold one
    modality each modality_dropout hid nothing: the fit ran as without it,
    the option silently void."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    m = model(reconstruction_decoders=True)
    before = state(m)
    one_view = {"visual": views()["visual"]}
    with pytest.raises(InvalidValueError, match=r"^modality_dropout: got 0\.5, but no row of data holds two modalities") as err:
        m.fit(one_view, epochs=1, objectives={"reconstruction": 1.0}, modality_dropout=0.5, **QUIET)
    assert err.value.arg == "modality_dropout" and state(m) == before
    mask = np.zeros((20, 7), bool)
    mask[::2, 0] = mask[1::2, 1] = True  # two modalities, never in one row
    with pytest.raises(InvalidValueError, match=r"^modality_dropout: got 0\.5, but no row of data holds two"):
        m.fit(views(), mask=mask, epochs=1, objectives={"reconstruction": 1.0}, modality_dropout=0.5, **QUIET)
    assert state(m) == before
    with pytest.raises(InvalidValueError, match=r"^modality_dropout: got 0\.2, but no row of data holds two"):
        MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, batch_size=10, objectives={"reconstruction": 1.0},
                           modality_dropout=0.2).fit([views()["visual"]])
    # Where some row holds two, dropout hides some: it trains as before.
    mask[0, 1] = True
    m.fit(views(), mask=mask, epochs=1, objectives={"reconstruction": 1.0}, modality_dropout=0.5, **QUIET)
    assert m.epochs_trained == 1


def test_the_cli_refuses_early_stopping_when_its_split_holds_out_nothing(tmp_path, capsys):
    """--early-stopping with --validation-split 0 is refused ("needs
    --validation-split > 0"), but a split that rounds to fewer than 2 rows
    (0.01 of 40 rows) held out nothing, and all epochs ran on all rows with
    the given patience silently unused."""
    from grapheme_multimodal.cli import main

    checkpoint = tmp_path / "m.safetensors"
    args = cli_train_args(tmp_path, views(40), checkpoint)
    assert main([*args, "--early-stopping", "3", "--validation-split", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "grapheme-mm: error: --early-stopping: 3 given, but --validation-split 0.01 of 40 rows holds out 0" in err
    assert not checkpoint.exists()
    # Without --early-stopping the recipe's patience goes unused there as documented, and a split that
    # holds out rows (or hands them to cross-validation) watches them.
    assert main([*args, "--validation-split", "0.01"]) == 0
    assert main([*args, "--early-stopping", "3", "--validation-split", "0.1"]) == 0
    assert "cross-validation" in capsys.readouterr().out


# ------------------------------------------------------------- what held
CAPACITY = dict(encoder_hidden=(16,), encoder_output_dim=8, shared_head=(8,), encoder_input_dropout=0.2,
                encoder_hidden_dropout=0.3, learnable_temperature=True, weight_decay=0.01, grad_clip=1.0)


@pytest.mark.parametrize("options", [dict(ema_decay=0.7), dict(ema_decay=0.7, modality_dropout=0.3), dict()])
def test_every_capacity_option_resumes_exactly_across_a_checkpoint_and_a_pickle(tmp_path, options):
    whole = model(**CAPACITY)
    whole.fit(views(), epochs=4, batch_size=7, progress=False, **options)
    half = model(**CAPACITY)
    half.fit(views(), epochs=2, batch_size=7, progress=False, **options)
    half.save(tmp_path / "m.safetensors")
    for resumed in (gm.LearnableMultiModal.load(tmp_path / "m.safetensors"), pickle.loads(pickle.dumps(half)),
                    copy.deepcopy(half)):
        resumed.fit(views(), epochs=2, batch_size=7, progress=False, **options)
        assert state(resumed) == state(whole)
        assert resumed.history[-1]["loss"] == whole.history[-1]["loss"]


def test_dropout_is_off_at_inference_and_threads_embedding_during_fit_see_finite_embeddings():
    m = model(**{**CAPACITY, "encoder_input_dropout": 0.5, "encoder_hidden_dropout": 0.5})
    m.fit(views(), epochs=1, **QUIET)
    first = m.encode_and_fuse(views())[1]
    assert np.array_equal(first, m.encode_and_fuse(views())[1])
    seen = []
    run_concurrently(lambda: m.fit(views(), epochs=3, **QUIET),
                     *[lambda: seen.extend(m.encode_and_fuse(views())[1] for _ in range(5))] * 2)
    assert all(np.isfinite(e).all() for e in seen) and m.epochs_trained == 4


@pytest.mark.parametrize("name, value", [("epochs", 2.0), ("epochs", True), ("batch_size", True), ("lr", float("nan")),
                                         ("early_stopping", 0), ("ema_decay", 1), ("ema_decay", float("nan")),
                                         ("modality_dropout", 1.0), ("seed", -1), ("mode", "MIN")])
def test_bad_fit_options_are_named_and_change_nothing(name, value):
    m = model()
    before = state(m)
    # 2.0 or True epochs: a wrong type, a TypeError (which carries no arg) naming the option
    error = TypeError if name in ("epochs", "batch_size") else InvalidValueError
    with pytest.raises(error, match=f"^{name}: ") as err:
        m.fit(views(), **{**QUIET, "epochs": 1, name: value})
    assert getattr(err.value, "arg", name) == name and state(m) == before


def test_tiny_data_and_budgets_of_zero_train_or_say_why():
    m = model()
    assert m.fit(views(), epochs=0, **QUIET).epochs == [] and m.epochs_trained == 0
    history = fit_with_stopping(m, views(), **{**STOP, "epochs": 0}, **QUIET)
    assert history.epochs == [] and m.epochs_trained == 0
    for n in (2, 3):  # too few rows to hold out: all epochs on all rows
        m = model()
        assert len(fit_with_stopping(m, views(n), **STOP, **QUIET).epochs) == 3
    # More folds than rows: as many as hold out 2 rows each.
    history = fit_with_stopping(model(), views(), **{**STOP, "validation_fraction": 0.2}, cv_folds=100, **QUIET)
    assert history.cv_curve is not None


@pytest.mark.parametrize("name", ["encoder_hidden", "shared_head"])
def test_widths_given_as_a_0_d_array_are_one_width_or_refused_by_name(name):
    """One width is taken as an int (``encoder_hidden=16``), and a list of
    widths as a 1-d array; a 0-d array (``np.array(16)``, what
    ``np.int64`` arithmetic on an array gives) was a bare "len() of unsized
    object" naming nothing. A 0-d integer array is the int it holds, as for
    every int argument (one layer); a 0-d float array is refused by name."""
    given = {"encoder_hidden": (16,), "encoder_output_dim": 8, "shared_head": (8,), name: np.array(8)}
    assert getattr(model(**given).config, name) == (8,)
    with pytest.raises(TypeError, match=rf"^{name}: expected a sequence of layer widths \(ints\), got a 0-d array"):
        model(**{"encoder_hidden": (16,), "encoder_output_dim": 8, "shared_head": (8,), name: np.array(8.0)})
    with pytest.raises(TypeError, match=rf"^{name}: expected a sequence of layer widths \(ints\), got a 2-d array"):
        model(**{"encoder_hidden": (16,), "encoder_output_dim": 8, "shared_head": (8,), name: np.array([[8]])})
    assert getattr(model(**{"encoder_hidden": (16,), "encoder_output_dim": 8, name: np.array([8])}).config, name) == (8,)


def test_validation_rows_that_hold_no_modality_are_refused():
    """Training data whose mask marks nothing present is refused; validation
    data of such rows was taken, every val_ loss 0 every epoch, and early
    stopping on them kept the first epoch and stopped, without a word."""
    m = model()
    before = state(m)
    empty = np.zeros((10, 7), bool)
    for early_stopping in (None, 1):
        with pytest.raises(InvalidValueError, match=r"^validation_mask: no row holds a modality, so every validation "
                                                    r"loss would be 0 every epoch") as err:
            m.fit(views(), validation=views(10, 1), validation_mask=empty, epochs=3, early_stopping=early_stopping, **QUIET)
        assert err.value.arg == "validation_mask" and state(m) == before
    with pytest.raises(InvalidValueError, match=r"^validation_mask: no row holds a modality"):
        fit_with_stopping(m, views(), validation=views(10, 1), validation_mask=empty, **STOP, **QUIET)
    # Held-out rows of inputs that hold nothing are named by validation_fraction.
    mask = np.ones((20, 7), bool)
    mask[:, 2:] = False
    held = np.sort(np.random.default_rng(3).permutation(20)[:10])
    mask[held] = False
    for patience in (2, 0):  # validated after every epoch either way
        with pytest.raises(InvalidValueError, match=r"^validation_fraction: the 10 rows held out hold no modality") as err:
            fit_with_stopping(m, views(), mask=mask, **{**STOP, "validation_fraction": 0.5, "patience": patience},
                              min_validation_rows=0, **QUIET)
        assert err.value.arg == "validation_fraction" and state(m) == before
    # One row holding one modality: every validation loss is 0 on it (fused_contrastive too, which
    # compares rows, as on a single row): val_total was 0.0 every epoch; refused as a single row is.
    empty[0, 0] = True
    with pytest.raises(InvalidValueError, match=r"^validation: .*only 1 row holds a modality; .* so monitor 'val_total' "
                                                r"would be 0 every epoch"):
        m.fit(views(), validation=views(10, 1), validation_mask=empty, epochs=1, **QUIET)
    assert state(m) == before
    # Two are measured (fused_contrastive tells them apart): trained as before.
    empty[1, 0] = True
    assert m.fit(views(), validation=views(10, 1), validation_mask=empty, epochs=1, **QUIET).epochs[0]["val_total"] > 0


def test_a_cross_validation_fold_of_rows_that_hold_no_modality_is_named_by_cv_folds():
    """Such a fold's validation losses are 0 every epoch; its fit is refused
    (test above), which must not blame a validation_mask the caller never
    gave."""
    m = model()
    before = state(m)
    first_fold = np.sort(np.array_split(np.random.default_rng(3).permutation(20), 5)[0])
    mask = np.ones((20, 7), bool)
    mask[:, 2:] = False
    mask[first_fold] = False
    with pytest.raises(InvalidValueError, match=r"^cv_folds: fold 1 of the 5 cross-validation folds holds out 4 rows "
                                                r"that hold no modality") as err:
        fit_with_stopping(m, views(), mask=mask, **STOP, cv_folds=5, **QUIET)
    assert err.value.arg == "cv_folds" and state(m) == before

"""Second hostile-use audit of training (fit, train_step, the objectives'
weights, callbacks, degenerate data): each test says what a user saw before."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm

DIMS = {"visual": 5, "linguistic": 4, "auditory": 3}


def small(**overrides):
    return gm.LearnableMultiModal(**{"embed_dim": 8, "hidden_dim": 8, "num_heads": 2, "seed": 0, "input_dims": DIMS, **overrides})


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(n, d)) for name, d in DIMS.items()}


def snapshot(model):
    """Everything training changes, as bytes: a failed call must leave it bit for bit."""
    state = model.optimizer_state()
    return (
        {k: v.tobytes() for k, v in model.state_dict().items()},
        state["step"], state["rng_counter"],
        {k: v.tobytes() for k, v in state["exp_avg"].items()},
        {k: v.tobytes() for k, v in state["exp_avg_sq"].items()},
        [None if model.normalization(m) is None else tuple(np.asarray(a).tobytes() for a in model.normalization(m))
         for m in range(7)],
        model.epochs_trained, pickle.dumps(model.history), model.has_gradients(),
    )


@pytest.mark.parametrize("weight", [1e-50, np.float64(1e-300)])
def test_a_weight_that_float32_makes_0_is_refused_not_trained_on_as_0(weight):
    """objectives={"contrastive": 1e-50} passed the "every weight is 0" check
    in Python, became 0 in the core's float32: fit ran Adam on zero gradients
    and recorded a loss of 0.0 every epoch, without a word."""
    model = small()
    before = snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"^objectives\['contrastive'\]: got 1e-\d+, which is 0 in float32"):
        model.fit(data(), epochs=1, batch_size=8, progress=False, objectives={"contrastive": weight})
    with pytest.raises(gm.InvalidValueError, match=r"^weights\['contrastive'\]: got 1e-\d+, which is 0 in float32"):
        model.train_step(data(), weights={"contrastive": weight})
    assert snapshot(model) == before
    # a normal float32 weight, however small, is taken as before (a subnormal one is refused: test_leftovers2_s61)
    assert model.losses(data(), weights={"contrastive": 2e-38})["total"] > 0


def test_a_weight_given_as_a_one_element_array_is_named():
    """objectives={"contrastive": np.array([1.0])} raised numpy's bare
    "only 0-dimensional arrays can be converted to Python scalars"."""
    model = small()
    before = snapshot(model)
    with pytest.raises(TypeError, match=r"^objectives\['contrastive'\]: expected a number, got an array of shape \(1,\)"):
        model.fit(data(), epochs=1, batch_size=8, progress=False, objectives={"contrastive": np.array([1.0])})
    assert snapshot(model) == before
    # a 0-d array is a number, as before
    assert model.losses(data(), weights={"contrastive": np.array(1.0)})["total"] > 0


@pytest.mark.parametrize("form", ["arrays", "events"])
def test_a_modality_a_later_fit_brings_is_standardised_too(form):
    """Standardisation was learned only when the model had none at all: a
    modality first present in a second fit was fed raw (here values around
    1000) beside standardised ones, without a word."""
    rng = np.random.default_rng(1)
    first = {"visual": rng.normal(size=(24, 5)), "linguistic": rng.normal(size=(24, 4))}
    second = {**first, "auditory": 1000 + 50 * rng.normal(size=(24, 3))}
    model = small()
    model.fit(first, epochs=1, batch_size=8, progress=False)
    kept = [np.array(a) for a in model.normalization("visual")]
    assert model.normalization("auditory") is None
    if form == "events":
        second = [gm.MultiModalEvent(i, [gm.ModalFeatures(v[i], k) for k, v in second.items()]) for i in range(24)]
    model.fit(second, epochs=1, batch_size=8, progress=False)
    mean, std = model.normalization("auditory")
    assert np.allclose(mean, 1000, atol=30) and np.allclose(std, 50, rtol=0.5)
    for a, b in zip(kept, model.normalization("visual")):  # those it had are kept
        assert np.array_equal(a, b)
    # with standardize=False nothing is learned, as before
    raw = small()
    raw.fit(second if form == "arrays" else first, epochs=1, batch_size=8, progress=False, standardize=False)
    assert all(raw.normalization(m) is None for m in range(7))


@pytest.mark.parametrize("attribute, value, error, words", [
    ("epochs_trained", 2.5, TypeError, r"model\.epochs_trained: expected an int >= 0, got 2\.5 \(float\)"),
    ("epochs_trained", -1, gm.InvalidValueError, r"model\.epochs_trained: expected an int >= 0, got -1"),
    ("epochs_trained", None, TypeError, r"model\.epochs_trained: expected an int >= 0, got None"),
    ("history", (), gm.InvalidValueError, r"model\.history: expected a list of epoch records, got tuple"),
    ("history", None, gm.InvalidValueError, r"model\.history: expected a list of epoch records, got NoneType"),
])
def test_a_record_of_training_fit_cannot_continue_is_named_before_anything_trains(attribute, value, error, words):
    """model.epochs_trained = 2.5 made fit fail with numpy's "seed must be
    integer"; model.history = () failed after the first epoch, then in the
    restore, whose "'tuple' object does not support item deletion" replaced
    the error (and left the weight average and trained record unrestored)."""
    model = small()
    setattr(model, attribute, value)
    state = model.optimizer_state()
    with pytest.raises(error, match=rf"^{words}"):
        model.fit(data(), epochs=1, batch_size=8, progress=False)
    assert model.optimizer_state()["step"] == state["step"] == 0
    # a numpy int is an int, as a save takes it
    model = small()
    model.epochs_trained = np.int64(3)
    model.fit(data(), epochs=1, batch_size=8, progress=False)
    assert model.epochs_trained == 4 and model.history[-1]["epoch"] == 4


@pytest.mark.filterwarnings("ignore:data. (only )?1 row:UserWarning")  # what one row leaves at 0, said before the refusal
@pytest.mark.parametrize("form", ["one row", "copies of one row", "events"])
def test_rows_that_standardise_to_0_everywhere_are_refused_not_trained_on(form):
    """fit on one row (or copies of one), standardize=True by default: every
    input standardised to 0, so every embedding and gradient was 0; fit
    warned "only cross_modal will train", then ran Adam on zeros, its loss
    flat at 1.0 every epoch, the weights unchanged."""
    one = data(1)
    given = {"one row": one, "copies of one row": {k: np.repeat(v, 5, axis=0) for k, v in one.items()},
             "events": [gm.MultiModalEvent(i, [gm.ModalFeatures(v[0], k) for k, v in one.items()]) for i in range(4)]}[form]
    model = small()
    before = snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"^data: (1 row|all \d rows hold the same visual, auditory, "
                                                   r"linguistic values); standardize=True learns each modality's mean"):
        model.fit(given, epochs=2, batch_size=8, progress=False)
    assert snapshot(model) == before
    # unstandardised, such rows train cross_modal as before; beside a modality that varies, they train too
    raw = small()
    raw.fit(given, epochs=1, batch_size=8, progress=False, standardize=False)
    assert raw.optimizer_state()["step"] > 0
    if form == "copies of one row":
        varied = {**given, "visual": data(5)["visual"]}
        assert small().fit(varied, epochs=1, batch_size=8, progress=False).epochs
        last_differs = {k: v.copy() for k, v in given.items()}
        last_differs["auditory"][-1] += 1.0
        assert small().fit(last_differs, epochs=1, batch_size=8, progress=False).epochs
    if form == "one row":  # one row holding anything among rows that hold nothing: the same
        mask = np.zeros((6, 7), bool)
        mask[2, [0, 1, 2]] = True
        with pytest.raises(gm.InvalidValueError, match=r"^data: 1 of its 6 rows holds a modality; standardize=True"):
            model.fit(data(6), mask=mask, epochs=1, batch_size=8, progress=False)
        assert snapshot(model) == before
    # a model that has its standardisation learns from them as before
    trained = small()
    trained.fit(data(), epochs=1, batch_size=8, progress=False)
    assert trained.fit(given, epochs=1, batch_size=8, progress=False).epochs


def test_data_of_which_one_row_holds_a_modality_is_treated_as_one_row():
    """Rows holding nothing are skipped, so one row holding a modality among
    them is compared with none: fit with only fused_contrastive weighted ran
    Adam on zero gradients (loss 0.0 every epoch, weights unchanged) where
    one row alone is refused; the default mix trained cross_modal alone
    without the one-row warning; validation of such rows recorded val_total
    0.0 every epoch."""
    inputs = data(12)
    one = np.zeros((12, 7), bool)
    one[4, [0, 1, 2]] = True
    model = small()
    before = snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"^data: only 1 row holds a modality; fused_contrastive tell the rows "
                                                   r"of a batch apart .*expected at least 2 rows holding a modality"):
        model.fit(inputs, mask=one, objectives={"fused_contrastive": 1.0}, standardize=False, epochs=1, progress=False)
    with pytest.raises(gm.InvalidValueError, match=r"^validation: .*only 1 row holds a modality; .*so monitor 'val_total' "
                                                   r"would be 0 every epoch"):
        model.fit(data(), validation=inputs, validation_mask=one * (np.arange(7) == 0), early_stopping=1, epochs=2,
                  progress=False)  # its one modality: cross_modal is 0 too
    assert snapshot(model) == before
    with pytest.warns(UserWarning, match=r"^data: only 1 row holds a modality; contrastive, binding, fused_contrastive .* "
                                         r"only cross_modal will train"):
        model.fit(inputs, mask=one, standardize=False, epochs=1, progress=False)
    # two rows holding a modality are compared, as before
    one[7, [0, 1]] = True
    assert small().fit(inputs, mask=one, objectives={"fused_contrastive": 1.0}, epochs=1, progress=False)["loss"][0] > 0


def test_a_buffer_whose_every_reward_is_1_is_refused_when_only_seed_consistency_would_train():
    """seed_consistency weighs each experience by 1 - reward: with every
    reward 1 and it alone weighted, fit ran Adam on zero gradients, its loss
    0.0 every epoch, without a word."""
    recorder = small()
    recorder.record_batch(data(), rewards=np.ones(24))
    model = small()
    before = snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"^data: every experience's reward is 1, and seed_consistency"):
        model.fit(recorder.experience, objectives={"seed_consistency": 1.0}, epochs=1, batch_size=8, progress=False)
    assert snapshot(model) == before
    # beside other objectives, or with one reward below 1, it trains as before
    assert model.fit(recorder.experience, epochs=1, batch_size=8, progress=False).epochs
    recorder.record_batch({k: v[:2] for k, v in data().items()}, rewards=np.array([1.0, 0.5]))
    assert small().fit(recorder.experience, objectives={"seed_consistency": 1.0}, epochs=1, batch_size=8,
                       progress=False)["loss"][0] > 0


def test_fit_trains_with_the_objectives_it_checked_when_the_caller_s_dict_changes_during_it():
    """Each step read the caller's objectives dict: a metric (or another
    thread) that changed it changed the objectives halfway, past fit's
    checks: epochs 2 and 3 trained binding too, and a reconstruction weight
    on a model without decoders failed the second epoch naming "weights"."""
    objectives = {"contrastive": 1.0, "cross_modal": 1.0}

    def tuning(model):
        objectives["binding"] = 5.0
        return 1.0

    history = small().fit(data(), objectives=objectives, metrics={"tuning": tuning}, epochs=3, batch_size=8, progress=False)
    assert all("binding" not in record for record in history.epochs)
    reference = small().fit(data(), objectives={"contrastive": 1.0, "cross_modal": 1.0}, epochs=3, batch_size=8,
                            progress=False)
    assert history["loss"] == reference["loss"]


def test_numpy_s_small_ints_are_taken_as_the_numbers_they_are():
    """fit(batch_size=np.uint8(200)) on 300 rows sliced order[200:200 + 200],
    which uint8 wrapped to order[200:144]: 100 rows never trained, numpy's
    "overflow encountered in scalar add" the only sign; fit_with_stopping's
    cross-validation with epochs=np.int8(127) ran range(1, 127 + 1 = -128),
    no epoch, and trained the model 0 epochs."""
    import warnings

    from grapheme_multimodal.stopping import fit_with_stopping

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings
        small_ints = small().fit(data(300), epochs=np.uint8(1), batch_size=np.uint8(200), seed=np.uint8(3), progress=False)
        plain = small().fit(data(300), epochs=1, batch_size=200, seed=3, progress=False)
        assert small_ints["loss"] == plain["loss"]
        stopped = fit_with_stopping(small(), data(40), validation_fraction=0.2, patience=np.int8(1), cv_folds=np.int8(2),
                                    monitor="val_total", epochs=np.int8(127), batch_size=16, progress=False)
    assert stopped.cv_curve and len(stopped.epochs) >= 1


def test_train_step_refuses_a_batch_whose_mask_leaves_nothing_to_learn_from():
    """A mask marking nothing present took an Adam step on zero gradients
    (the model moved by its momentum; fit refuses such data); one row holding
    a modality among rows holding none, with only contrastive weighted,
    passed the one-row refusal (it counted rows, not rows holding one)."""
    model = small()
    model.fit(data(), epochs=1, batch_size=8, progress=False)  # momentum to move by
    before = snapshot(model)
    mask = np.zeros((6, 7), bool)
    with pytest.raises(gm.InvalidValueError, match=r"^batch: no row holds a modality \(the mask is False everywhere\)"):
        model.train_step(data(6), mask)
    mask[2, [0, 1, 2]] = True
    with pytest.raises(gm.InvalidValueError, match=r"^batch: only 1 row holds a modality; contrastive tell the rows"):
        model.train_step(data(6), mask, weights={"contrastive": 1.0})
    assert snapshot(model) == before
    # one such row with cross_modal, or two rows holding a modality, train as before
    model.train_step(data(6), mask)
    mask[3, [0, 1]] = True
    assert model.train_step(data(6), mask, weights={"contrastive": 1.0})["contrastive"] > 0


def test_validation_holding_a_modality_no_training_reaches_is_said() -> None:
    """Validation holding a modality the training data never holds counted
    that encoder's untrained, unstandardised embeddings in every val_ loss
    (and so in early stopping) without a word."""
    import warnings

    rng = np.random.default_rng(0)
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0,
                                   input_dims={"visual": 4, "auditory": 3, "linguistic": 5})
    train = {"visual": rng.normal(size=(20, 4)), "linguistic": rng.normal(size=(20, 5))}
    val = {"visual": rng.normal(size=(6, 4)), "auditory": rng.normal(size=(6, 3)), "linguistic": rng.normal(size=(6, 5))}
    with pytest.warns(gm.UntrainedModalityWarning, match=r"^validation: modality 'auditory' is present in 6 of its rows "
                      r"but in no row of data.*initial random weights and its inputs unstandardised") as record:
        model.fit(train, epochs=1, validation=val, progress=False)
    assert len(record) == 1 and record[0].filename == __file__  # said once, at the user's call
    model.fit({**train, "auditory": rng.normal(size=(20, 3))}, epochs=1, progress=False)  # now it has trained
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(train, epochs=1, validation=val, progress=False)  # an encoder trained earlier: nothing to say


@pytest.mark.parametrize("make", [
    lambda: {name: np.zeros((0, d)) for name, d in DIMS.items()},
    lambda: gm.Batch(inputs={name: np.zeros((0, d)) for name, d in DIMS.items()}),
    lambda: gm.Batch(embeddings=np.zeros((0, 7, 8), np.float32), mask=np.zeros((0, 7), bool)),
])
def test_losses_of_no_rows_are_refused_not_reported_as_0(make):
    """model.losses on an empty batch (a validation filter that kept nothing)
    returned 0.0 for every objective: a perfect score for a mean over nothing."""
    model = small()
    before = snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"^batch: no rows; expected at least one row") as info:
        model.losses(make())
    assert info.value.arg == "batch" and snapshot(model) == before
    assert model.losses({name: v[:2] for name, v in data().items()})["total"] > 0  # two rows: losses as before

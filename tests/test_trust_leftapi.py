"""Leftovers of the earlier audits of the Python API: a wrong type given for
an int or a number (2.5 epochs, seed "3", k=True) was an InvalidValueError
(a ValueError) where the config and the buffer raised a TypeError for one;
set_normalization named a mean of 1e39 ``mean`` and a NaN one
``normalization['visual'].mean``; the estimator blamed a learning rate too
large on ``parameters``, an argument it has not; it read a nested-list view
twice; and a subnormal ``grad_clip`` trained nothing without a word. Each
test says what a user saw before the fix."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics
from grapheme_multimodal.stopping import fit_with_stopping

_DIMS = {"visual": 6, "auditory": 5}


def _model(**options) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims=_DIMS, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,),
                                  seed=0, **options)


def _views(n: int = 24, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, d)) for m, d in _DIMS.items()}


_STOP = dict(validation_fraction=0.25, patience=1, monitor="val_total", progress=False)


def _embedder(**params):
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    return MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,), encoder_output_dim=8,
                              **{"epochs": 1, **params})


def _knn(k):
    x, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 0, 1])
    metrics.knn_accuracy(x, y, x, y, k=k)


# ------------------------------------------------ 1. a wrong type is a TypeError
# (call, argument (with "!" where None is taken: the default), the expected part of the message,
#  a value of the right type out of range)
_INT_ARGUMENTS = [
    (lambda m, v: m.fit(_views(), epochs=v, progress=False), "epochs", "an int >= 0", -1),
    (lambda m, v: m.fit(_views(), epochs=1, batch_size=v, progress=False), "batch_size", "an int >= 1", 0),
    (lambda m, v: m.fit(_views(), epochs=1, seed=v, progress=False), "seed!", "an int >= 0", -1),
    (lambda m, v: m.fit(_views(), epochs=1, early_stopping=v, validation=_views(8, 1), progress=False),
     "early_stopping!", "an int >= 1", 0),
    (lambda m, v: fit_with_stopping(m, _views(), epochs=v, **_STOP), "epochs", "an int >= 0", -1),
    (lambda m, v: fit_with_stopping(m, _views(), epochs=1, **{**_STOP, "patience": v}), "patience", "an int >= 0", -1),
    (lambda m, v: fit_with_stopping(m, _views(), epochs=1, seed=v, **_STOP), "seed!", "an int >= 0", -1),
    (lambda m, v: fit_with_stopping(m, _views(), epochs=1, cv_folds=v, **_STOP), "cv_folds", "an int >= 0", -1),
    (lambda m, v: gm.LearnableMultiModalConfig(seed=v), "seed", r"an int in \[0, 2\*\*64\)", -1),
    (lambda m, v: gm.ExperienceBuffer(4, seed=v), "seed", "an int >= 0", -1),
    (lambda m, v: gm.ExperienceBuffer(4, embed_dim=2).sample(v), "batch_size", "a positive int", 0),
    (lambda m, v: _knn(v), "k", r"an int in \[1, 4\] \(the number of train rows\)", 5),
    (lambda m, v: metrics.cross_view_retrieval(np.eye(3), np.eye(3), np.arange(3), chunk_size=v), "chunk_size",
     "a positive int", 0),
    (lambda m, v: m.hidden_features(_views(), layer=v), "layer", "an integer index into config.encoder_hidden", None),
]


_WRONG_INTS = [(2.5, r"2\.5 \(float\)"), ("3", r"'3' \(str\)"), (True, r"True \(bool\)"), (None, "None")]


@pytest.mark.parametrize("call, name, expected, out_of_range, value, shown", [
    pytest.param(call, name.rstrip("!"), expected, out_of_range, value, shown, id=f"{i}-{name.rstrip('!')}-{value!r}")
    for i, (call, name, expected, out_of_range) in enumerate(_INT_ARGUMENTS) for value, shown in _WRONG_INTS
    if not (value is None and name.endswith("!"))  # fit's and fit_with_stopping's seed and early_stopping take None
])
def test_a_wrong_type_for_an_int_is_a_type_error_naming_it(call, name, expected, out_of_range, value, shown) -> None:
    # was gm.InvalidValueError "epochs: expected an int >= 0, got 2.5" (a ValueError), while
    # LearnableMultiModalConfig(embed_dim=2.5) and ExperienceBuffer(2.5) raised TypeError
    model = _model()
    before = model.state_dict()
    with pytest.raises(TypeError, match=rf"^{name}: expected {expected}, got {shown}$") as err:
        call(model, value)
    # a TypeError, and an InvalidValueError as before (as scikit-learn's InvalidParameterError is both):
    # code that caught ValueError for it keeps working, and it names the argument
    assert isinstance(err.value, gm.InvalidTypeError) and isinstance(err.value, gm.InvalidValueError)
    assert err.value.arg == name
    again = pickle.loads(pickle.dumps(err.value))
    assert type(again) is gm.InvalidTypeError and again.arg == name and str(again) == str(err.value)
    assert model.epochs_trained == 0 and all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    if out_of_range is not None:  # the right type, out of range: still an InvalidValueError naming the argument
        with pytest.raises(gm.InvalidValueError, match=rf"^{name}: ") as err:
            call(model, out_of_range)
        assert err.value.arg == name


_NUMBER_ARGUMENTS = [
    (lambda v: gm.LearnableMultiModalConfig(learning_rate=v), "learning_rate", "a finite positive number"),
    (lambda v: gm.LearnableMultiModalConfig(encoder_input_dropout=v), "encoder_input_dropout", r"a probability in \[0, "),
    (lambda v: _model().fit(_views(), epochs=1, modality_dropout=v, progress=False), "modality_dropout",
     r"a number in \[0, 1\)"),
    (lambda v: fit_with_stopping(_model(), _views(), epochs=1, **{**_STOP, "validation_fraction": v}),
     "validation_fraction", r"a number in \[0, 1\)"),
    (lambda v: gm.ExperienceBuffer(4, embed_dim=2).sample(1, alpha=v), "alpha", "a finite number >= 0"),
]


@pytest.mark.parametrize("call, name, expected", _NUMBER_ARGUMENTS, ids=[case[1] for case in _NUMBER_ARGUMENTS])
@pytest.mark.parametrize("value, shown", [("0.1", r"'0\.1' \(str\)"), (True, r"True \(bool\)"), (0.1j, r"0\.1j \(complex\)")])
def test_a_wrong_type_for_a_number_is_a_type_error_too(call, name, expected, value, shown) -> None:
    # was gm.InvalidValueError "learning_rate: expected a finite positive number, got '0.1'"
    with pytest.raises(TypeError, match=rf"^{name}: expected {expected}.*, got {shown}$"):
        call(value)


@pytest.mark.parametrize("param, value, shown", [
    ("batch_size", 2.5, r"^batch_size: expected an int >= 1, got 2\.5 \(float\)$"),
    ("patience", "3", r"^patience: expected an int >= 0, got '3' \(str\)$"),
    ("random_state", None, r"^random_state: expected an int in \[0, 2\*\*64\) \(None or a RandomState is not taken"),
    ("learning_rate", "1e-3", r"^learning_rate: expected a finite positive number, got '1e-3' \(str\)$"),
    ("validation_fraction", True, r"^validation_fraction: expected a number in \[0, 1\), got True \(bool\)$"),
])
def test_the_estimator_refuses_a_wrong_type_as_the_model_does(param, value, shown) -> None:
    # batch_size=2.5 was an InvalidValueError, embed_dim=2.5 and n_members=2.5 a TypeError
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match=shown):
        _embedder(**{param: value}).fit([rng.normal(size=(20, 5)), rng.normal(size=(20, 4))])


def test_a_member_saved_with_an_epoch_count_of_another_type_is_named(tmp_path) -> None:
    # the save refuses model.epochs_trained = 2.0 with a TypeError now: save_ensemble still says which member
    from grapheme_multimodal.ensemble import save_ensemble

    members = [_model(), _model()]
    members[1].epochs_trained = 2.0
    with pytest.raises(TypeError, match=r"^models\[1\]: model\.epochs_trained: expected an int >= 0, got 2\.0 \(float\)$"):
        save_ensemble(members, tmp_path / "ensemble.safetensors")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------ 2. set_normalization: one name for its mean and std
@pytest.mark.parametrize("half", ["mean", "std"])
@pytest.mark.parametrize("bad", [1e39, np.nan, np.inf])
def test_set_normalization_names_a_bad_mean_or_std_alike(half, bad) -> None:
    # a mean of 1e39 (beyond float32) was "mean: ...", a NaN one "normalization['visual'].mean: ..."
    model = _model()
    values = {"mean": np.zeros(6), "std": np.ones(6)}
    values[half] = np.full(6, bad)
    with pytest.raises(ValueError) as err:
        model.set_normalization("visual", **values)
    name = f"normalization['visual'].{half}"
    assert str(err.value).startswith(f"{name}: ") and err.value.arg == name, err.value
    assert model.normalization("visual") is None
    with pytest.raises(gm.ShapeError, match=rf"^{re.escape(name)}: expected shape \(6,\), got \(3,\)"):
        model.set_normalization("visual", **{**{"mean": np.zeros(6), "std": np.ones(6)}, half: np.ones(3)})


# ------------------------------------------------ 3. the estimator's learning_rate, not the model's parameters
def test_the_estimator_blames_its_learning_rate_for_parameters_grown_past_float32() -> None:
    # was NonFiniteError "parameters: the visual encoder's parameters have grown to 1e+30 ... (too large a
    # learning rate grows them)": no argument of the estimator's
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(30, 5)), rng.normal(size=(30, 6))]
    with pytest.raises(gm.NonFiniteError, match=r"^learning_rate: got 1e\+30; the visual encoder's parameters have grown "
                                                r"to .* expected a smaller learning_rate") as err:
        _embedder(learning_rate=1e30, epochs=2).fit(xs)
    assert err.value.arg == "learning_rate"
    assert "parameters:" not in str(err.value)


# ------------------------------------------------ 4. a nested-list view is read once
def test_a_nested_list_view_is_read_once_and_embedded_as_its_array(monkeypatch) -> None:
    # check_array read the lists a second time after the check for dates had read them
    # (90 % of the views' check: 45 -> 24 ms CPU for 20,000 x 64)
    pytest.importorskip("sklearn")
    from grapheme_multimodal import sklearn as gm_sklearn

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 4))
    ints = rng.integers(-9, 9, size=(40, 5))
    one, two = _embedder().fit(x), _embedder().fit([x, y])
    want = (one.transform(x), two.transform([x, y]), one.transform(ints.astype(float)))
    given = []
    check_array = gm_sklearn.check_array
    monkeypatch.setattr(gm_sklearn, "check_array", lambda x, **kw: given.append(type(x)) or check_array(x, **kw))
    validate_data = gm_sklearn.validate_data
    monkeypatch.setattr(gm_sklearn, "validate_data",
                        lambda est, x, **kw: given.append(type(x)) or validate_data(est, x, **kw))
    got = (one.transform(x.tolist()), two.transform([x, y.tolist()]), one.transform(ints.tolist()))
    assert list not in given and given, given
    for a, b in zip(want, got):  # bit for bit, dtype included
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # lists of float32 scalars stay lists: their array would be float32, embedded as float32
    assert one.transform([[np.float32(v) for v in row] for row in x]).dtype == np.float64


# ------------------------------------------------ 6. a subnormal grad_clip
@pytest.mark.parametrize("clip", [1e-45, 1e-40, 1e-38])
def test_a_subnormal_grad_clip_is_refused_everywhere_it_is_taken(clip) -> None:
    # was taken: the clipped gradients were 0 in float32, and fit left every weight as it was
    # (1e-45: no change at all; 1e-40: changes of 1e-35), without a word
    words = rf"^grad_clip: got {re.escape(repr(clip))}, a subnormal float32 \(below 1\.18e-38"
    for make in (lambda: _model(grad_clip=clip), lambda: gm.LearnableMultiModalConfig(grad_clip=clip),
                 lambda: gm.LearnableMultiModalConfig.from_dict({**gm.LearnableMultiModalConfig().to_dict(), "grad_clip": clip})):
        with pytest.raises(gm.InvalidValueError, match=words) as err:
            make()
        assert err.value.arg == "grad_clip"
    model = _model(grad_clip=1.0)
    model.fit(_views(), epochs=1, progress=False)
    state = model.__getstate__()
    state["meta"] = {**state["meta"], "config": {**state["meta"]["config"], "grad_clip": clip}}
    from grapheme_multimodal.checkpoint import model_from_state

    with pytest.raises(gm.CheckpointError, match=r"grad_clip: got .*, a subnormal float32"):
        model_from_state(state["tensors"], state["meta"])


def test_the_smallest_normal_grad_clip_still_clips() -> None:
    tiny = float(np.finfo(np.float32).tiny)
    model = _model(grad_clip=tiny)
    assert model.config.grad_clip == tiny
    before = model.state_dict()
    model.fit(_views(), epochs=1, progress=False)
    assert any(not np.array_equal(v, model.state_dict()[k]) for k, v in before.items())

"""Small defects the s59 audits found and left: an ensemble's repr and save, the
optimizer's step on zero gradients, 0-d array numbers, reset_optimizer, ``grapheme-mm info``."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm

pytestmark = pytest.mark.filterwarnings("ignore::grapheme_multimodal.UntrainedModalityWarning")


def _member(seed: int):
    """A small untrained member over views a (visual) and b (auditory)."""
    from grapheme_multimodal import evaluation

    model = gm.LearnableMultiModal(input_dims={"visual": 5, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2,
                                   seed=seed)
    return evaluation.ModelEmbedder(model, {"a": "visual", "b": "auditory"})


@pytest.fixture
def ensemble():
    from grapheme_multimodal import evaluation

    return evaluation.EnsembleEmbedder([_member(0), _member(1)])


@pytest.mark.parametrize("members, shown", [((), "EnsembleEmbedder(0 members)"),
                                            (None, "EnsembleEmbedder(members=NoneType)"),
                                            ([1, 2], "EnsembleEmbedder(members=list)")])
def test_an_ensembles_repr_never_raises_whatever_its_members_became(ensemble, members, shown):
    """Before: ``ensemble.members = ()`` made ``repr(ensemble)`` raise IndexError (a traceback or a
    notebook could not show the object). Now: the repr says what the members are; the next call
    that needs them refuses them, as before."""
    assert repr(ensemble) == "EnsembleEmbedder(2 members, views=['a', 'b'])"
    ensemble.members = members
    assert repr(ensemble) == shown
    with pytest.raises(gm.InvalidValueError, match="members"):
        ensemble.models


@pytest.mark.parametrize("given, hint", [
    (lambda e: e, r"got EnsembleEmbedder; an EnsembleEmbedder's models are ensemble\.models"),
    (lambda e: e.members, r"models\[0\]: expected a LearnableMultiModal, got ModelEmbedder; .*ensemble\.models"),
    (lambda e: e.members[0], r"got ModelEmbedder; a ModelEmbedder's model is embedder\.model"),
])
def test_save_ensemble_given_embedders_names_where_their_models_are(ensemble, tmp_path, given, hint):
    """Before: ``gm.save_ensemble(ensemble, path)`` said only "expected a sequence of
    LearnableMultiModal, got EnsembleEmbedder" (its members: "got ModelEmbedder"). Now: the
    TypeError says to give ``ensemble.models`` (or ``embedder.model``); nothing is written, and
    ``ensemble.models`` saves."""
    path = tmp_path / "ensemble.safetensors"
    with pytest.raises(TypeError, match=hint) as refused:
        gm.save_ensemble(given(ensemble), path)
    assert isinstance(refused.value, gm.InvalidTypeError) and refused.value.arg.startswith("models")
    assert not path.exists()
    gm.save_ensemble(ensemble.models, path)
    assert len(gm.load_ensemble(path)) == 2


def _small_model(**config) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": 5, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2,
                                  seed=0, **config)


def _views(rows: int = 6) -> dict:
    rng = np.random.default_rng(0)
    return {"visual": rng.normal(size=(rows, 5)), "auditory": rng.normal(size=(rows, 3))}


def test_apply_gradients_of_zeros_is_a_documented_adam_step_as_in_pytorch():
    """Before: all-zero gradients given to ``apply_gradients`` were taken as an Adam step, counted,
    though ``train_step`` refuses a batch that trains nothing, and no docstring said so. Now the
    docstring and docs/objectives.md say what happens, as PyTorch does it: the step count advances,
    the moments decay, the weights move by the moments held, the draw counter and record stay."""
    from grapheme_multimodal._core import ADAM_BETA1, ADAM_BETA2

    doc = " ".join(gm.LearnableMultiModal.apply_gradients.__doc__.split())
    assert "All-zero gradients are taken, as PyTorch's ``optimizer.step()``" in doc
    model = _small_model()
    model.train_step(_views())
    before, weights, record = model.optimizer_state(), model.state_dict(), dict(model.trained_modalities)
    model.apply_gradients({name: np.zeros(shape, np.float32) for name, shape in model.parameter_shapes().items()})
    after = model.optimizer_state()
    assert (after["step"], after["rng_counter"]) == (before["step"] + 1, before["rng_counter"])
    for name in before["exp_avg"]:
        np.testing.assert_allclose(after["exp_avg"][name], ADAM_BETA1 * before["exp_avg"][name], rtol=1e-6)
        np.testing.assert_allclose(after["exp_avg_sq"][name], ADAM_BETA2 * before["exp_avg_sq"][name], rtol=1e-6)
    assert any(not np.array_equal(model.state_dict()[name], weights[name]) for name in weights)
    assert dict(model.trained_modalities) == record


def test_a_learning_rate_given_as_a_0d_array_is_the_number_it_holds():
    """Before: ``train_step(x, lr=np.array(1e-3))`` was refused ("lr: expected a finite positive
    number or None, got array of shape () ...") while ``weights={"contrastive": np.array(1.0)}`` was
    taken. Now a 0-d array is the number it holds wherever a float is read, as weights take it:
    the step is the one ``lr=1e-3`` takes, bit for bit; a config keeps a plain float."""
    plain, arrayed = _small_model(), _small_model()
    losses = plain.train_step(_views(), lr=1e-3, weights={"contrastive": 1.0, "binding": 1.0})
    assert arrayed.train_step(_views(), lr=np.array(1e-3),
                              weights={"contrastive": np.array(1.0), "binding": np.array(1.0)}) == losses
    for name, weight in plain.state_dict().items():
        np.testing.assert_array_equal(arrayed.state_dict()[name], weight)
    config = gm.LearnableMultiModalConfig(learning_rate=np.array(np.float32(0.5)), weight_decay=np.array(0))
    assert (type(config.learning_rate), config.learning_rate, type(config.weight_decay)) == (float, 0.5, float)


@pytest.mark.parametrize("lr, error", [(np.array(True), gm.InvalidTypeError), (np.array(1e-3 + 1j), gm.InvalidTypeError),
                                       (np.array(None), gm.InvalidTypeError), (np.array([1e-3]), gm.InvalidTypeError),
                                       (np.array(np.nan), gm.InvalidValueError), (np.array(-1.0), gm.InvalidValueError)])
def test_a_0d_array_learning_rate_is_refused_as_the_number_it_holds_would_be(lr, error):
    """A 0-d array holding a bool, a complex number, None, NaN or a negative number, and an array of
    one element, are refused naming ``lr`` (a type refused shows the array given), and the model is
    left as it was."""
    model = _small_model()
    before = model.optimizer_state()["step"]
    shown = "array of shape" if error is gm.InvalidTypeError else ""  # a value's repr: numpy's, by version
    with pytest.raises(error, match=rf"^lr: expected a finite positive number or None, got {shown}"):
        model.train_step(_views(), lr=lr)
    assert model.optimizer_state()["step"] == before


def test_reset_optimizer_keeps_the_draw_counter_and_the_gradients_as_its_docstring_says():
    """Before: ``reset_optimizer``'s docstring said only that Adam's moments and count are forgotten;
    whether the draw counter and the accumulated gradients go too was left to guess. Now it says
    they are kept (and the record of trained modalities), and they are."""
    doc = " ".join(gm.LearnableMultiModal.reset_optimizer.__doc__.split())
    assert "Kept: the draw counter" in doc and "the accumulated gradients" in doc
    model = _small_model()
    model.train_step(_views())
    model.backward(_views())
    counter, gradients, record = model.optimizer_state()["rng_counter"], model.gradients(), dict(model.trained_modalities)
    model.reset_optimizer()
    state = model.optimizer_state()
    assert (state["step"], state["rng_counter"], model.has_gradients()) == (0, counter, True)
    assert not any(np.any(moment) for moment in state["exp_avg"].values())
    for name, gradient in model.gradients().items():
        np.testing.assert_array_equal(gradient, gradients[name])
    assert dict(model.trained_modalities) == record


def _info(model: gm.LearnableMultiModal, path, capsys) -> str:
    from grapheme_multimodal.cli import main

    model.save(path)
    assert main(["info", str(path)]) == 0
    return capsys.readouterr().out


def test_info_says_its_row_count_is_rows_seen_over_all_epochs(tmp_path, capsys):
    """Before: ``grapheme-mm info`` said "trained on 120 rows" of a model fitted 3 epochs on 40 rows
    (the count is every epoch's rows summed), read as the size of its data. Now: "120 rows seen in
    training, summed over epochs"; a model trained by steps alone, no epochs, says no epochs."""
    fitted = _small_model()
    fitted.fit(_views(40), epochs=3, batch_size=8, progress=False)
    assert dict(fitted.trained_modalities) == {gm.Modality.VISUAL: 120, gm.Modality.AUDITORY: 120}
    info = _info(fitted, tmp_path / "fitted.safetensors", capsys)
    assert info.count("120 rows seen in training, summed over epochs") == 2 and "trained on" not in info
    stepped = _small_model()
    stepped.train_step(_views(6))
    info = _info(stepped, tmp_path / "stepped.safetensors", capsys)
    assert info.count("6 rows seen in training\n") == 2 and "summed" not in info

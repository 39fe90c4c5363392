"""Lifecycle and re-entrancy of the public API: what a call hands back is
the caller's, never a window onto state the model keeps and reuses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm


def _tiny_model(**overrides) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, **overrides)


def _event() -> gm.MultiModalEvent:
    event = gm.MultiModalEvent(1)
    event.add_component(gm.ModalGraph(gm.Graph.from_text("a cat"), gm.Modality.LINGUISTIC))
    event.add_component(gm.ModalGraph(gm.Graph.from_text("meow!"), gm.Modality.AUDITORY))
    return event


def test_editing_the_experience_record_fusion_returns_changes_nothing_the_model_answers_later() -> None:
    """record_fusion's Experience held the model's cached embeddings and
    mask of the event, not copies: zeroing its embeddings (or marking every
    modality present) changed what encode_event, compute_bindings and the
    attention returned for that event afterwards, without a word, and the
    next record_fusion of it failed on inputs it never had."""
    model, event = _tiny_model(), _event()
    query = np.ones(8, np.float32)
    encoded = model.encode_event(event)
    bindings = [b.strength for b in model.compute_bindings(event)]
    attended = model.attend_to_event(query, event)

    recorded = model.record_fusion(event)
    recorded.embeddings[:] = 0.0
    recorded.mask[:] = True

    again = model.encode_event(event)
    assert again.keys() == encoded.keys()
    for modality, embedding in encoded.items():
        np.testing.assert_array_equal(again[modality], embedding)
    assert [b.strength for b in model.compute_bindings(event)] == bindings
    np.testing.assert_array_equal(model.attend_to_event(query, event), attended)
    second = model.record_fusion(event)  # failed: "experience.inputs[0]: None, but experience.mask marks visual present"
    assert second.mask.tolist() == [False, True, True, False, False, False, False]
    assert np.abs(second.embeddings).sum() > 0


@pytest.mark.parametrize("edit", [
    lambda tensors, name: tensors.__setitem__(name, np.asarray(tensors[name], np.float32)),
    lambda tensors, name: tensors.pop(name),
    lambda tensors, name: tensors.clear(),
], ids=["replaced by float32", "removed", "cleared"])
def test_the_average_model_weight_average_hands_out_cannot_be_edited_into_an_unloadable_checkpoint(tmp_path, edit) -> None:
    """model.weight_average is documented read-only, and its arrays were;
    the dicts holding them were not: a mean replaced by its float32 copy
    was saved into a checkpoint that load refused ("expected float64"), and
    a mean removed dropped the average from the model and its checkpoints
    without a word. Editing them is refused; the model saves and loads
    with its average as before."""
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(40, 5)).astype(np.float32), "auditory": rng.normal(size=(40, 4)).astype(np.float32)}
    model = _tiny_model(input_dims={"visual": 5, "auditory": 4})
    model.fit(data, epochs=2, ema_decay=0.9, progress=False)
    average = model.weight_average
    for tensors in (average.mean, average.trained):
        with pytest.raises((TypeError, AttributeError)):
            edit(tensors, next(iter(tensors)))
    model.save(tmp_path / "averaged.safetensors")
    loaded = gm.LearnableMultiModal.load(tmp_path / "averaged.safetensors")
    assert loaded.weight_average is not None and loaded.weight_average.count == 2


def test_a_fit_of_no_epochs_without_averaging_leaves_an_averaged_model_as_it_was(tmp_path) -> None:
    """fit(epochs=0) changes nothing with ema_decay given; without it, it
    dropped the model's weight average (the trained weights kept beside
    it): the checkpoint saved after lacked it, and the next fit with
    averaging started a new average from the averaged weights instead of
    continuing, unlike a twin that never made the empty call."""
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(40, 5)).astype(np.float32), "auditory": rng.normal(size=(40, 4)).astype(np.float32)}
    model, twin = (_tiny_model(input_dims={"visual": 5, "auditory": 4}) for _ in range(2))
    for m in (model, twin):
        m.fit(data, epochs=2, ema_decay=0.9, progress=False)
    history = model.fit(data, epochs=0, progress=False)
    assert history.epochs == [] and model.weight_average is not None and model.weight_average.count == 2
    model.save(tmp_path / "after_no_epochs.safetensors")
    assert gm.LearnableMultiModal.load(tmp_path / "after_no_epochs.safetensors").weight_average is not None
    for m in (model, twin):
        m.fit(data, epochs=1, ema_decay=0.9, progress=False)
    for name, value in twin.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)


def test_the_objective_names_and_default_weights_the_package_exports_cannot_be_edited_under_every_fit() -> None:
    """gm.OBJECTIVES is the order every call maps weights to the core by,
    and gm.DEFAULT_WEIGHTS every fit's default mix; both were a plain list
    and dict: a user's ``names = gm.OBJECTIVES; names.sort()`` gave every
    later fit in the process its weights on other objectives (binding's
    weight became seed_consistency's), and ``weights = gm.DEFAULT_WEIGHTS;
    weights["binding"] = 0`` changed every later default fit. They refuse
    to be edited (uci.RECIPE_OBJECTIVES already did), and read as before."""
    order = list(gm.OBJECTIVES)
    for edit in (lambda names: names.sort(), lambda names: names.remove("binding"),
                 lambda names: names.__setitem__(0, "binding")):
        with pytest.raises((TypeError, AttributeError)):
            edit(gm.OBJECTIVES)
    with pytest.raises(TypeError):
        gm.DEFAULT_WEIGHTS["binding"] = 0.0
    assert list(gm.OBJECTIVES) == order and gm.DEFAULT_WEIGHTS["binding"] == 1.0
    assert {**gm.DEFAULT_WEIGHTS, "reconstruction": 0.5}["reconstruction"] == 0.5  # copies still take them
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(40, 5)).astype(np.float32), "auditory": rng.normal(size=(40, 4)).astype(np.float32)}
    history = _tiny_model(input_dims={"visual": 5, "auditory": 4}).fit(
        data, epochs=1, objectives={"binding": 1.0, "cross_modal": 0.5}, progress=False)
    assert {"binding", "cross_modal"} <= set(history.epochs[0]) and "seed_consistency" not in history.epochs[0]


@pytest.mark.parametrize("objectives", ["recipe", "default"])
def test_an_estimator_given_the_packages_own_objective_weights_clones_pickles_and_copies(objectives) -> None:
    """uci.RECIPE_OBJECTIVES was a MappingProxyType, which cannot be pickled
    or deep copied: MultimodalEmbedder(objectives=uci.RECIPE_OBJECTIVES) failed
    scikit-learn's clone (so GridSearchCV and cross_val_score), pickle and
    copy.deepcopy with "cannot pickle 'mappingproxy' object". The package's
    read-only weights pickle and copy, and stay read-only."""
    import copy
    import pickle

    from sklearn.base import clone

    from grapheme_multimodal import uci
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    weights = uci.RECIPE_OBJECTIVES if objectives == "recipe" else gm.DEFAULT_WEIGHTS
    estimator = MultimodalEmbedder(objectives=weights)
    for twin in (clone(estimator), pickle.loads(pickle.dumps(estimator)), copy.deepcopy(estimator)):
        assert twin.objectives == dict(weights)
        with pytest.raises(TypeError):
            twin.objectives["binding"] = 0.0
    if objectives == "recipe":
        assert uci.TrainingSettings(weights=weights).objectives == dict(weights)


def test_early_stopping_skipped_raised_as_an_error_leaves_the_model_untrained() -> None:
    """fit_with_stopping warns that early stopping was skipped (too few rows
    to hold out) after its fit: where warnings are errors (``-W error``,
    pytest's ``filterwarnings = error``) the call failed with the model
    trained for every epoch. The failed call now leaves the model as it was
    (weights, Adam state, epochs, history, standardisation)."""
    from grapheme_multimodal.stopping import fit_with_stopping

    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(12, 5)).astype(np.float32), "auditory": rng.normal(size=(12, 4)).astype(np.float32)}
    model = _tiny_model(input_dims={"visual": 5, "auditory": 4})
    before = model.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.EarlyStoppingSkippedWarning)
        with pytest.raises(gm.EarlyStoppingSkippedWarning, match="early stopping .* is skipped"):
            fit_with_stopping(model, data, validation_fraction=0.1, patience=2, monitor="val_total", seed=0, epochs=3,
                              progress=False)
    assert model.epochs_trained == 0 and model.history == [] and model.normalization("visual") is None
    assert model.optimizer_state()["step"] == 0
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)

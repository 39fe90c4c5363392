"""A PyTorch user's habits with LearnableMultiModal's training API and its
state dict (s55-torchuser): each test is a defect that user met, and says
what they saw. No torch import: torch is not installed in CI."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm

DIMS = {"visual": 6, "tactile": 4}
NORMALIZATION = ["normalization.visual.mean", "normalization.visual.std",
                 "normalization.tactile.mean", "normalization.tactile.std"]


def fitted_model(seed: int = 0, **options):
    """A small model fitted with the default standardize=True, and its data (shared with test_trust_state_dict_s55)."""
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(5, 3, (48, 6)).astype(np.float32), "tactile": rng.normal(-2, 4, (48, 4)).astype(np.float32)}
    model = gm.LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=16, seed=seed)
    model.fit(data, progress=False, **{"epochs": 1, **options})  # standardize=True, the default
    return model, data


def _snapshot(model):
    return {k: v.tobytes() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("habit", ["manual_sgd", "parameter_shapes", "file_from_before", "trained_weights"])
def test_a_strict_load_of_the_parameters_alone_keeps_the_standardisation_or_is_refused(habit) -> None:
    """A fitted model loaded strictly from a dict of its parameters alone —
    a manual update ``{k: sd[k] - lr * g[k] for k in model.gradients()}``,
    a dict keyed by ``parameter_shapes()``, a state dict saved before it
    held the standardisation, the trained weights beside a weight average
    (``model.weight_average.trained``) — lost the standardisation fit had learned,
    returned "all keys matched" ``([], [])``, and embedded the raw inputs
    from then on: other embeddings, said nowhere (PyTorch's strict load
    refuses a dict without a BatchNorm's statistics). Refused now, nothing
    changed; ``strict=False`` keeps the standardisation and names it missing."""
    model, data = fitted_model(**({"epochs": 2, "ema_decay": 0.9} if habit == "trained_weights" else {}))
    state, before = model.state_dict(), _snapshot(model)
    embedded = model.encode_and_fuse(data)[1]
    if habit == "manual_sgd":
        model.backward(data)
        grads = model.gradients()
        given = {k: state[k] - np.float32(1e-3) * grads[k] for k in grads}
    elif habit == "parameter_shapes":
        given = {k: state[k] for k in model.parameter_shapes()}
    elif habit == "file_from_before":
        given = {k: v for k, v in state.items() if not k.startswith("normalization.")}
    else:
        given = model.weight_average.trained
    with pytest.raises(gm.InvalidValueError, match=r"^state_dict: unexpected keys \[\], missing keys \['normalization\.visual"
                                                   r"\.mean', .*strict=False to keep the model's standardisation") as err:
        model.load_state_dict(given)
    assert err.value.arg == "state_dict"
    assert _snapshot(model) == before
    np.testing.assert_array_equal(model.encode_and_fuse(data)[1], embedded)
    assert model.load_state_dict(given, strict=False) == (NORMALIZATION, [])
    assert model.normalization("visual") is not None and model.normalization("tactile") is not None


def test_a_strict_load_refuses_a_dict_that_holds_one_modalitys_standardisation_of_two() -> None:
    model, _ = fitted_model()
    source, _ = fitted_model(seed=1)
    given = {k: v for k, v in source.state_dict().items() if not k.startswith("normalization.tactile.")}
    before = _snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"missing keys \['normalization\.tactile\.mean', "
                                                   r"'normalization\.tactile\.std'\] \(strict=True\): the model "
                                                   r"standardises the inputs of 'tactile'"):
        model.load_state_dict(given)
    assert _snapshot(model) == before


def test_a_full_state_dict_still_loads_strictly_into_any_model_of_the_config() -> None:
    """What the strict refusal leaves alone: a dict that holds the model's
    standardisations loads (into a model that standardises nothing too), and
    one without any into a model without any; removing the model's first
    makes a dict of the parameters alone the whole state."""
    model, data = fitted_model()
    fresh = gm.LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=16, seed=5)
    assert fresh.load_state_dict(model.state_dict()) == ([], [])
    np.testing.assert_array_equal(fresh.encode_and_fuse(data)[1], model.encode_and_fuse(data)[1])
    assert model.load_state_dict(model.state_dict()) == ([], [])  # its own dict into itself
    raw = gm.LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=16, seed=6)
    assert raw.load_state_dict(gm.LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=16, seed=7).state_dict()) == ([], [])
    for m in ("visual", "tactile"):
        fresh.set_normalization(m)
    assert fresh.load_state_dict(raw.state_dict()) == ([], [])
    assert fresh.normalization("visual") is None


def test_fit_resumes_from_the_state_dict_and_optimizer_state_only_with_the_epoch_count() -> None:
    """optimizer_state() said it was "everything besides the weights that
    training continues from", and the training API's example that with
    load_state_dict it "resumes bit for bit": a PyTorch-style resume of
    ``fit`` (a new model, ``load_state_dict`` + ``load_optimizer_state``)
    trained on other weights than the uninterrupted run, as each epoch's
    shuffle is drawn from ``(seed, epochs_trained)``. The docs now say to set
    ``epochs_trained`` too (or save a checkpoint); this pins what they say."""
    rng = np.random.default_rng(1)
    data = {"visual": rng.normal(size=(40, 6)), "tactile": rng.normal(size=(40, 4))}
    options = dict(batch_size=16, modality_dropout=0.3, progress=False)

    def make():
        return gm.LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=16, seed=0)

    whole, half = make(), make()
    whole.fit(data, epochs=2, **options)
    half.fit(data, epochs=1, **options)
    resumed, unmatched = make(), make()
    for model in (resumed, unmatched):
        model.load_state_dict(half.state_dict())
        model.load_optimizer_state(half.optimizer_state())
    resumed.epochs_trained = half.epochs_trained
    resumed.fit(data, epochs=1, **options)
    unmatched.fit(data, epochs=1, **options)
    assert _snapshot(resumed) == _snapshot(whole)
    assert _snapshot(unmatched) != _snapshot(whole)
    assert "epochs_trained" in type(whole).optimizer_state.__doc__


def test_gradients_are_a_copy_and_say_so() -> None:
    """A PyTorch user averaging an accumulation in place (``g /= n`` for each
    of ``model.gradients()``, as on ``p.grad``) then calling ``step()`` took
    a step on the unscaled sum: the arrays are a copy, which the docs did
    not say. They say it now; the way that works is pinned."""
    rng = np.random.default_rng(2)
    data = {"visual": rng.normal(size=(12, 6)), "tactile": rng.normal(size=(12, 4))}
    a = gm.LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=16, seed=0)
    b = gm.LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=16, seed=0)
    for model in (a, b):
        model.backward(data, weights={"contrastive": 1.0})
        model.backward(data, weights={"contrastive": 1.0})
    summed = a.gradients()
    for g in summed.values():
        g /= 2  # changes nothing in a
    assert all(np.array_equal(v, 2 * summed[k]) for k, v in a.gradients().items())
    a.apply_gradients(summed)
    b.zero_grad()
    b.backward(data, weights={"contrastive": 1.0})
    b.step()
    assert _snapshot(a) == _snapshot(b)
    assert "a copy" in type(a).gradients.__doc__

"""``encoder_skip``: a linear path from each encoder's input (after its
dropout) to its output layer, ``encoder.<modality>.skip.weight``, zeros at
first. The default (off) is the model as before; on, the model starts
exactly where it would without the path; the forward matches a NumPy
reference, the gradient is checked in ``rust/core/tests/core/gradients.rs``;
checkpoints, exact resume, the CLI and the estimator carry it."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError
from grapheme_multimodal.sklearn import MultimodalEmbedder

from conftest import assert_resumes_exactly, reloaded, small_model, two_cluster_views
from numpy_reference import l2norm, leaky

DIMS = {"visual": 6, "auditory": 9, "linguistic": 4}
DEEP = dict(encoder_hidden=(12,), encoder_output_dim=10, shared_head=(9, 8))


def model(**changes):
    return small_model(DIMS, **{**DEEP, **changes})


def with_random_skips(m, seed=0):
    """``m`` with every skip weight drawn at random (they start at zero)."""
    rng = np.random.default_rng(seed)
    state = m.state_dict()
    m.load_state_dict({k: (rng.normal(size=v.shape) * 0.5).astype(np.float32) if k.endswith(".skip.weight") else v
                       for k, v in state.items()})
    return m


def reference(m, xs):
    """The embeddings ``[B, E]`` of each modality in float64, from the state dict."""
    p = {k: np.asarray(v, np.float64) for k, v in m.state_dict().items()}
    out = {}
    for name, x in xs.items():
        x = np.asarray(x, np.float64)
        if m.normalization(name) is not None:
            mean, std = m.normalization(name)
            x = (x - mean) / std
        h = leaky(x @ p[f"encoder.{name}.0.weight"].T + p[f"encoder.{name}.0.bias"])
        z = h @ p[f"encoder.{name}.1.weight"].T + p[f"encoder.{name}.1.bias"] + x @ p[f"encoder.{name}.skip.weight"].T
        g = leaky(z @ p["head.0.weight"].T + p["head.0.bias"])
        out[name] = l2norm(g @ p["head.1.weight"].T + p["head.1.bias"])
    return out


def test_off_by_default_and_on_it_starts_as_the_model_without_it():
    assert gm.LearnableMultiModalConfig().encoder_skip is False
    plain, skip = model(), model(encoder_skip=True)
    shapes = {k: v.shape for k, v in skip.state_dict().items()}
    extra = sorted(set(skip.state_dict()) - set(plain.state_dict()))
    assert extra == sorted(f"encoder.{m.name.lower()}.skip.weight" for m in gm.Modality)
    assert tuple(shapes["encoder.auditory.skip.weight"]) == (10, 9)
    assert all(not skip.state_dict()[k].any() for k in extra)
    for name, value in plain.state_dict().items():  # zeros draw nothing: every other tensor is the same
        assert value.tobytes() == skip.state_dict()[name].tobytes(), name
    data = two_cluster_views(DIMS, 16)
    np.testing.assert_array_equal(plain.encode(data), skip.encode(data))


def test_forward_matches_the_numpy_reference_and_the_hidden_features_do_not_change():
    m = with_random_skips(model(encoder_skip=True))
    data = two_cluster_views(DIMS, 20)
    m.fit_normalization(data)
    emb = m.encode(data)
    want = reference(m, data)
    for name in DIMS:
        np.testing.assert_allclose(emb[:, gm.Modality.parse(name).index], want[name], atol=1e-5)
    without = m.state_dict()
    hidden = m.hidden_features(data)
    m.load_state_dict({k: np.zeros_like(v) if k.endswith(".skip.weight") else v for k, v in without.items()})
    np.testing.assert_array_equal(m.hidden_features(data), hidden)  # the path joins after the hidden layer
    assert not np.allclose(m.encode(data), emb, atol=1e-3)


def test_rows_whose_products_overflow_float32_are_embedded_exactly():
    # Such rows take the core's rescaled path; the skip scales with the rest.
    m = with_random_skips(model(encoder_skip=True))
    x = two_cluster_views(DIMS, 4)
    huge = {k: v * np.float32(3e37) for k, v in x.items()}
    emb = m.encode(huge)
    want = reference(m, huge)
    assert np.isfinite(emb).all()
    for name in DIMS:
        np.testing.assert_allclose(emb[:, gm.Modality.parse(name).index], want[name], atol=1e-5)


@pytest.mark.parametrize("changes, message", [
    ({"encoder_hidden": (), "encoder_output_dim": None, "shared_head": (8,)}, "encoder_hidden is empty"),
    ({"encoder_output_dim": None, "shared_head": ()}, "shared_head is empty"),
])
def test_without_a_hidden_layer_or_a_head_it_is_refused_by_name(changes, message):
    with pytest.raises(InvalidValueError, match=f"encoder_skip: got True, but {message}") as err:
        model(encoder_skip=True, **changes)
    assert err.value.arg == "encoder_skip"


@pytest.mark.parametrize("value", [1, "yes", None])
def test_a_non_bool_is_refused(value):
    with pytest.raises(TypeError, match="encoder_skip: expected a bool"):
        model(encoder_skip=value)


def test_the_core_refuses_it_by_itself():
    with pytest.raises(InvalidValueError) as err:
        gm._core.Model(8, 16, 1e-3, 2, 10, 0, [6] * 7, encoder_hidden=[12], encoder_skip=True)
    assert err.value.arg == "encoder_skip"


def test_training_moves_the_skips_resumes_exactly_and_is_checkpointed(tmp_path):
    data = two_cluster_views(DIMS, 48)
    kwargs = dict(epochs=2, batch_size=16, progress=False)
    make = lambda: model(encoder_skip=True, encoder_input_dropout=0.1, encoder_hidden_dropout=0.2)  # noqa: E731
    trained = assert_resumes_exactly(make, data, tmp_path, **kwargs)
    assert all(v.any() for k, v in trained.state_dict().items() if k.endswith(".skip.weight") and k.split(".")[1] in DIMS)
    loaded = reloaded(trained, tmp_path)
    assert loaded.config.encoder_skip is True
    assert loaded.encode(data).tobytes() == trained.encode(data).tobytes()


def test_checkpoints_without_the_field_load_without_the_path(tmp_path):
    m = model()
    loaded = reloaded(m, tmp_path, without=("encoder_skip",))
    assert loaded.config == m.config and loaded.config.encoder_skip is False


def test_the_estimator_and_the_cli_pass_it_on(tmp_path, capsys):
    rng = np.random.default_rng(0)
    Xs = [rng.normal(size=(60, 5)), rng.normal(size=(60, 4))]
    est = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, encoder_skip=True).fit(Xs)
    assert est.model_.config.encoder_skip and "encoder.visual.skip.weight" in est.model_.state_dict()
    from conftest import cli_train_args
    from grapheme_multimodal.cli import main

    ckpt = tmp_path / "m.safetensors"
    assert main([*cli_train_args(tmp_path, two_cluster_views(DIMS, 40), ckpt), "--encoder-skip"]) == 0
    assert gm.LearnableMultiModal.load(ckpt).config.encoder_skip is True

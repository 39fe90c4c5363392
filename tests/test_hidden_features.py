"""LearnableMultiModal.hidden_features: the encoders' own hidden layers, read
out before the aligned space."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError, NonFiniteError, ShapeError
from numpy_reference import leaky

DIMS = {"visual": 6, "auditory": 5}


def deep_model(**options):
    return gm.LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(16, 12),
                                  encoder_output_dim=10, shared_head=(9, 8), encoder_input_dropout=0.2,
                                  encoder_hidden_dropout=0.5, seed=3, **options)


def inputs(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return {m: (2.0 + 3.0 * rng.normal(size=(n, d))).astype(np.float32) for m, d in DIMS.items()}


def reference(model, x, modality, layer):
    """Standardise as the model does, then the hidden layers' LeakyReLU(W h + b), in float64."""
    sd = model.state_dict()
    h = np.asarray(x, np.float64)
    stats = model.normalization(modality)
    if stats is not None:
        h = (h - stats[0]) / stats[1]
    for i in range(layer + 1):
        h = leaky(h @ sd[f"encoder.{modality}.{i}.weight"].T.astype(np.float64) + sd[f"encoder.{modality}.{i}.bias"])
    return h


@pytest.mark.parametrize("normalized", [False, True])
def test_each_hidden_layer_matches_a_numpy_reference(normalized):
    model, x = deep_model(), inputs()
    if normalized:
        model.fit_normalization(x)
    for layer, width in [(0, 16), (1, 12), (-1, 12), (-2, 16)]:
        features = model.hidden_features(x, layer=layer)
        assert features.shape == (7, 7, width) and features.dtype == np.float32
        for m in DIMS:
            index = gm.Modality.parse(m).index
            np.testing.assert_allclose(features[:, index], reference(model, x[m], m, layer % 2), rtol=1e-4, atol=1e-5)
        others = [i for i in range(7) if i not in {gm.Modality.parse(m).index for m in DIMS}]
        assert not features[:, others].any()
    np.testing.assert_array_equal(model.hidden_features(x), model.hidden_features(x, layer=1))


def test_no_dropout_and_nothing_changes():
    model, x = deep_model(), inputs()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    first = model.hidden_features(x)
    np.testing.assert_array_equal(model.hidden_features(x), first)  # dropout would draw new masks
    for name, w in model.state_dict().items():
        np.testing.assert_array_equal(w, before[name], err_msg=name)


def test_absent_rows_are_zeros_and_the_others_do_not_depend_on_them():
    model, x = deep_model(), inputs()
    mask = np.zeros((7, 7), dtype=bool)
    mask[:, gm.Modality.parse("visual").index] = True
    audio = gm.Modality.parse("auditory").index
    mask[[1, 4, 5], audio] = True
    x_holes = {**x, "auditory": x["auditory"].copy()}
    x_holes["auditory"][~mask[:, audio]] = np.nan  # rows marked absent are never read
    partial = model.hidden_features(x_holes, mask=mask)
    full = model.hidden_features(x)
    np.testing.assert_allclose(partial[mask], full[mask], rtol=1e-6, atol=1e-7)
    assert not partial[~mask].any()


def test_a_trained_recipe_model_reads_out_through_the_view_embedder():
    from grapheme_multimodal import uci

    x = inputs(64)
    views = {"fac": x["visual"], "fou": x["auditory"]}
    embedder = uci.fit_views(views, 0, settings=uci.TrainingSettings(seed=0, epochs=2))
    features = embedder.hidden_features(views)
    width = embedder.model.config.encoder_hidden[-1]
    assert set(features) == set(views) and all(f.shape == (64, width) for f in features.values())
    direct = embedder.model.hidden_features({embedder.modalities[v]: a for v, a in views.items()})
    for v in views:
        np.testing.assert_array_equal(features[v], direct[:, embedder.modalities[v].index])


@pytest.mark.parametrize("layer, error, message", [
    (2, InvalidValueError, r"layer: expected an index into config.encoder_hidden = \(16, 12\) \(-2 to 1\), got 2"),
    (-3, InvalidValueError, r"got -3"),
    # a wrong type: a TypeError, as the package's other int arguments
    (True, TypeError, r"layer: expected an integer index into config.encoder_hidden, got True \(bool\)"),
    (0.0, TypeError, r"got 0.0 \(float\)"),
    ("0", TypeError, r"got '0' \(str\)"),
])
def test_bad_layers_are_refused(layer, error, message):
    with pytest.raises(error, match=message) as info:
        deep_model().hidden_features(inputs(), layer=layer)
    assert getattr(info.value, "arg", "layer") == "layer"


def test_a_model_without_hidden_layers_says_so():
    model = gm.LearnableMultiModal(input_dims=DIMS, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    with pytest.raises(InvalidValueError, match=r"no hidden layers \(config.encoder_hidden is empty\)"):
        model.hidden_features(inputs())


def test_bad_inputs_are_refused_as_encode_refuses_them():
    model, x = deep_model(), inputs()
    with pytest.raises(ShapeError, match="inputs"):
        model.hidden_features({**x, "visual": x["visual"][:, :5]})
    bad = {**x, "visual": x["visual"].copy()}
    bad["visual"][3, 2] = np.inf
    with pytest.raises(NonFiniteError, match=r"inputs\['visual'\].*row 3"):
        model.hidden_features(bad)
    # finite inputs whose hidden features exceed float32: an error, not inf
    weights = model.state_dict()
    weights["encoder.visual.0.weight"] = weights["encoder.visual.0.weight"] * 1e3
    model.load_state_dict(weights)
    huge = {**x, "visual": np.full((7, 6), 3e37, np.float32)}
    with pytest.raises(NonFiniteError, match=r"inputs\['visual'\]: row 0 overflows float32 in the encoder's hidden layer 0"):
        model.hidden_features(huge, layer=0)
    assert np.isfinite(model.encode(huge)).all()  # the unit embeddings are computed so that they cannot overflow

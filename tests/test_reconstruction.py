"""The ``reconstruction`` objective: from each event's fused embedding, a
linear decoder per modality (``config.reconstruction_decoders``) predicts
the modality's standardised input; the mean squared error per column over
the present (event, modality) pairs. Off by default, and the decoders with
it: checked here against a numpy reference, for what it trains, that the
default model is unchanged, reproducibility, exact resume and checkpoints.
The gradient is checked against finite differences in
``rust/core/tests/core/gradients.rs`` and ``gradient_combinations.rs``."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import (assert_option_trains_reproducibly, save_with_config_fields, save_without_config_fields, small_model,
                      two_cluster_views)

DIMS = {"visual": 6, "auditory": 9, "linguistic": 4}
ONLY = {"reconstruction": 1.0}


def model(**changes):
    return small_model(DIMS, **changes)


def views(n=48, seed=0):
    return two_cluster_views(DIMS, n, seed)


def reference_loss(m, data, mask=None) -> float:
    """The objective in float64: the decoders applied to the fused
    embeddings times sqrt(E), against the inputs as the encoders read them."""
    emb, fused = m.encode_and_fuse(data, mask)
    state = m.state_dict()
    errors = []
    for name, x in data.items():
        slot = gm.Modality.parse(name).index
        norm = m.normalization(slot)
        x = x.astype(np.float64) if norm is None else (x.astype(np.float64) - norm[0]) / norm[1]
        w, b = state[f"reconstruction.{name}.weight"].astype(np.float64), state[f"reconstruction.{name}.bias"].astype(np.float64)
        present = np.ones(len(x), dtype=bool) if mask is None else mask[:, slot]
        pred = np.sqrt(m.config.embed_dim) * fused[present].astype(np.float64) @ w.T + b
        errors += list(((pred - x[present]) ** 2).mean(1))
    return float(np.mean(errors))


def test_the_loss_is_the_reference():
    data = views(20)
    m = model(reconstruction_decoders=True)
    assert m.losses(data, weights=ONLY)["reconstruction"] == pytest.approx(reference_loss(m, data), rel=1e-4)
    m.fit(data, epochs=2, batch_size=10, objectives={"contrastive": 1.0, "reconstruction": 1.0}, progress=False)
    assert m.normalization(gm.Modality.VISUAL.index) is not None  # fit standardised the inputs: the targets are those
    assert m.losses(data, weights=ONLY)["reconstruction"] == pytest.approx(reference_loss(m, data), rel=1e-4)
    # Absent modalities are not reconstructed.
    mask = np.zeros((20, 7), dtype=bool)
    mask[:, :3] = True
    mask[::2, 1] = mask[1::3, 0] = False
    batch = gm.Batch(inputs=data, mask=mask)
    assert m.losses(batch, weights=ONLY)["reconstruction"] == pytest.approx(reference_loss(m, data, mask), rel=1e-4)


def test_off_by_default_and_the_default_model_is_unchanged():
    data = views(16)
    assert gm.DEFAULT_WEIGHTS.get("reconstruction", 0.0) == 0.0
    plain, with_decoders = model(), model(reconstruction_decoders=True)
    assert gm.LearnableMultiModal().num_parameters() == 70_337
    assert gm.LearnableMultiModalConfig().reconstruction_decoders is False
    assert "reconstruction" not in plain.losses(data)  # not in the default mix
    assert not any(n.startswith("reconstruction.") for n in plain.state_dict())
    # The decoders come after every other tensor: the others keep their initial values.
    extra = {n: v for n, v in with_decoders.state_dict().items() if n not in plain.state_dict()}
    assert sorted(extra) == sorted(f"reconstruction.{m.name.lower()}.{p}" for m in gm.Modality for p in ("weight", "bias"))
    assert extra["reconstruction.visual.weight"].shape == (6, 8) and extra["reconstruction.auditory.bias"].shape == (9,)
    for name, value in plain.state_dict().items():
        assert value.tobytes() == with_decoders.state_dict()[name].tobytes(), name
    np.testing.assert_array_equal(plain.encode_and_fuse(data)[1], with_decoders.encode_and_fuse(data)[1])
    # Without the objective in the mix, the decoders change nothing in training.
    a, b = model(), model(reconstruction_decoders=True)
    for m in (a, b):
        m.fit(data, epochs=2, batch_size=8, progress=False)
    for name, value in a.state_dict().items():
        assert value.tobytes() == b.state_dict()[name].tobytes(), name
    # Recorded embeddings: no inputs to reconstruct.
    emb = with_decoders.encode(data)
    batch = gm.Batch(embeddings=emb, mask=np.linalg.norm(emb, axis=2) > 0)
    assert with_decoders.losses(batch, weights=ONLY)["reconstruction"] == 0.0


def test_it_trains_the_decoders_the_fusion_and_the_encoders_and_learns_from_one_row():
    m = model(reconstruction_decoders=True)
    m.backward(views(16), weights=ONLY)
    grads = m.gradients()
    for name, g in grads.items():
        reached = name.startswith("fusion.") or (name.startswith(("encoder.", "reconstruction.")) and name.split(".")[1] in DIMS)
        assert bool(np.any(g)) == reached, name
    one = {v: x[:1] for v, x in views(4).items()}
    assert np.isfinite(m.train_step(one, weights=ONLY)["reconstruction"])  # it compares no rows


def test_training_on_it_lowers_it():
    data = views(48)
    m = model(reconstruction_decoders=True, learning_rate=0.01)
    m.fit_normalization(data)  # the targets fit reads (standardised inputs)
    before = m.losses(data, weights=ONLY)["reconstruction"]
    m.fit(data, epochs=100, batch_size=48, objectives=ONLY, progress=False)
    after = m.losses(data, weights=ONLY)["reconstruction"]
    assert after < 0.5 * before, (before, after)


def test_trains_reproducibly_resumes_exactly_and_is_checkpointed(tmp_path):
    make = lambda: model(reconstruction_decoders=True, learnable_temperature=True, fusion_residual=2.0)  # noqa: E731
    assert_option_trains_reproducibly(make, views(48), tmp_path, "reconstruction_decoders", True, epochs=2, batch_size=16,
                                      progress=False, objectives={"contrastive": 1.0, "fused_contrastive": 1.0, "reconstruction": 0.5})


def test_checkpoints_without_the_field_load_with_its_default(tmp_path):
    m = model()
    path = tmp_path / "old.safetensors"
    save_without_config_fields(m, path, "reconstruction_decoders", "reconstruction_subsets")
    assert gm.LearnableMultiModal.load(path).config == m.config
    assert m.config.reconstruction_decoders is False


def test_a_checkpoint_claiming_decoders_it_lacks_is_a_clean_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_with_config_fields(model(), path, reconstruction_decoders=True)
    with pytest.raises(gm.CheckpointError):
        gm.LearnableMultiModal.load(path)


@pytest.mark.parametrize("field", ["reconstruction_decoders", "reconstruction_subsets"])
@pytest.mark.parametrize("value", [1, 0, "true", None, 1.0])
def test_bad_values_name_the_argument(field, value):
    with pytest.raises(TypeError, match=field):
        model(**{field: value})


def test_from_subsets_every_present_modality_is_predicted_from_a_random_few():
    data = views(24)
    whole, subsets = model(reconstruction_decoders=True), model(reconstruction_decoders=True, reconstruction_subsets=True)
    assert whole.losses(data, weights=ONLY)["reconstruction"] == pytest.approx(reference_loss(whole, data), rel=1e-4)
    # The same weights; the subsets' fused embeddings differ from the events'.
    assert subsets.losses(data, weights=ONLY)["reconstruction"] != pytest.approx(reference_loss(subsets, data), rel=1e-4)
    # One modality per row: the subset is the whole row.
    mask = np.zeros((24, 7), dtype=bool)
    mask[np.arange(24), np.arange(24) % 3] = True
    batch = gm.Batch(inputs=data, mask=mask)
    assert subsets.losses(batch, weights=ONLY)["reconstruction"] == pytest.approx(reference_loss(subsets, data, mask), rel=1e-4)
    # The draws move with the step counter, reproducibly.
    a, b = model(reconstruction_decoders=True, reconstruction_subsets=True), subsets
    first = [m.train_step(data, weights=ONLY)["reconstruction"] for m in (a, b)]
    assert first[0] == first[1]


def test_from_subsets_trains_reproducibly_resumes_exactly_and_is_checkpointed(tmp_path):
    make = lambda: model(reconstruction_decoders=True, reconstruction_subsets=True, fusion_residual=2.0)  # noqa: E731
    assert_option_trains_reproducibly(make, views(48), tmp_path, "reconstruction_subsets", True, epochs=2, batch_size=16,
                                      progress=False, objectives={"contrastive": 1.0, "reconstruction": 0.5})


def test_the_objective_without_decoders_is_refused_naming_both():
    m = model()
    with pytest.raises(InvalidValueError, match="reconstruction_decoders") as err:
        m.train_step(views(8), weights={"contrastive": 1.0, "reconstruction": 0.5})
    assert err.value.arg == "weights"
    with pytest.raises(InvalidValueError, match="reconstruction"):
        m.losses(views(8), weights=ONLY)
    # fit's argument is objectives (the core's refusal named weights); nothing trained.
    before = m.state_dict()
    with pytest.raises(InvalidValueError, match=r"^objectives: reconstruction has weight 0\.5, .*reconstruction_decoders=True") as err:
        m.fit(views(8), epochs=1, objectives={"contrastive": 1.0, "reconstruction": 0.5}, progress=False)
    assert err.value.arg == "objectives"
    assert all(before[k].tobytes() == v.tobytes() for k, v in m.state_dict().items())


def test_an_input_whose_square_overflows_is_named_not_the_parameters():
    """Encoded, a row of 3e19 is a unit vector; squared in the reconstruction
    it overflows float32. The refusal blamed "the model's parameters"."""
    m = model(reconstruction_decoders=True)
    data = views(8)
    data["visual"][5] = 3e19
    before = {k: v.copy() for k, v in m.state_dict().items()}
    with pytest.raises(gm.NonFiniteError, match=r"row 5: the reconstruction loss overflows float32 on it \(largest magnitude 3\.000e19") as err:
        m.train_step(data, weights=ONLY)
    assert err.value.arg == "inputs['visual']"
    assert all(before[k].tobytes() == v.tobytes() for k, v in m.state_dict().items())


def test_the_recipe_s_settings_make_the_decoders_when_it_is_weighted():
    from grapheme_multimodal import uci

    assert uci.RECIPE_OBJECTIVES["reconstruction"] == 1.0  # the recipe's (docs/objectives.md, "Adopted: ...")
    assert uci.TrainingSettings().model_options()["reconstruction_decoders"] is True
    unweighted = uci.TrainingSettings(weights={k: w for k, w in uci.RECIPE_OBJECTIVES.items() if k != "reconstruction"})
    assert unweighted.model_options()["reconstruction_decoders"] is False
    weighted = uci.TrainingSettings(weights={**uci.RECIPE_OBJECTIVES, "reconstruction": 0.5})
    assert weighted.model_options()["reconstruction_decoders"] is True
    assert uci.TrainingSettings(reconstruction_decoders=True).model_options()["reconstruction_decoders"] is True
    assert uci.TrainingSettings(reconstruction_subsets=True).model_options()["reconstruction_subsets"] is True


def test_the_cli_and_the_estimator_make_the_decoders_when_it_is_weighted(tmp_path, capsys):
    from grapheme_multimodal.cli import main
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    from conftest import cli_train_args

    ckpt = tmp_path / "m.safetensors"
    base = cli_train_args(tmp_path, views(40), ckpt)
    assert main(base + ["--objectives", "contrastive=1,reconstruction=0.2"]) == 0, capsys.readouterr().err
    loaded = gm.LearnableMultiModal.load(ckpt)
    assert loaded.config.reconstruction_decoders is True and "reconstruction.visual.weight" in loaded.state_dict()
    assert main(base) == 0, capsys.readouterr().err  # the recipe weighs it
    assert gm.LearnableMultiModal.load(ckpt).config.reconstruction_decoders is True
    assert main(base + ["--objectives", "contrastive=1"]) == 0, capsys.readouterr().err
    assert gm.LearnableMultiModal.load(ckpt).config.reconstruction_decoders is False
    Xs = [x for x in views(60).values()]
    est = MultimodalEmbedder(embed_dim=8, epochs=1, objectives={"contrastive": 1.0, "reconstruction": 0.5}).fit(Xs)
    assert est.model_.config.reconstruction_decoders is True

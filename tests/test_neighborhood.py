"""The ``neighborhood`` objective: each modality's embeddings of a batch keep
the events' neighbourhood by their inputs (InfoNCE among one modality's
embeddings, the event itself left out, its ``neighborhood_neighbors``
nearest events by all their inputs the positives). Not in the default mix;
checked here against a numpy reference, for what it trains, reproducibility,
exact resume and checkpoints. The gradient is checked against finite
differences in ``rust/core/tests/core/gradients.rs`` and
``gradient_combinations.rs``."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import (assert_option_trains_reproducibly, cli_train_args, save_with_config_fields, save_without_config_fields, small_model,
                      two_cluster_views)

DIMS = {"visual": 6, "auditory": 9, "linguistic": 4}
ONLY = {"neighborhood": 1.0}


def model(**changes):
    return small_model(DIMS, **changes)


def views(n=48, seed=0):
    return two_cluster_views(DIMS, n, seed)


def reference_loss(emb: np.ndarray, x: np.ndarray, k: int, temperature: float) -> float:
    """The objective in float64 for a batch with every modality of ``DIMS``
    present: ``emb`` [B, 7, E] (absent slots zero), ``x`` the inputs side by
    side (the default ``input_distance="columns"``: the concatenation's
    squared distance ranks the neighbours; ties to the lower row)."""
    emb, x = emb.astype(np.float64), x.astype(np.float64)
    n = len(x)
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    neighbours = np.argsort(dist, axis=1, kind="stable")[:, :k]
    losses = []
    for m in range(emb.shape[1]):
        a = emb[:, m]
        if not np.any(a):
            continue  # an absent modality
        s = a @ a.T / temperature
        np.fill_diagonal(s, -np.inf)
        lse = np.log(np.exp(s - s.max(1, keepdims=True)).sum(1)) + s.max(1)
        targets = np.take_along_axis(s, neighbours, axis=1).mean(1)
        losses.append(np.mean(lse - targets))
    return float(np.mean(losses))


def test_the_loss_is_the_reference():
    data = views(20)
    x = np.concatenate([data[m] for m in DIMS], axis=1)  # the model's slot order is DIMS's (visual, auditory, linguistic)
    for k in (1, 3, 25):
        m = model(neighborhood_neighbors=k)
        got = m.losses(data, weights=ONLY)["neighborhood"]
        assert got == pytest.approx(reference_loss(m.encode(data), x, min(k, 19), 0.2), rel=1e-4), k
    # A temperature of its own (None: contrastive's, 0.2 here).
    for tau in (0.05, 0.5):
        m = model(neighborhood_neighbors=3, neighborhood_temperature=tau)
        got = m.losses(data, weights=ONLY)["neighborhood"]
        assert got == pytest.approx(reference_loss(m.encode(data), x, 3, tau), rel=1e-4), tau


def test_its_own_temperature_is_fixed_while_contrastive_s_is_learned():
    data = views(32)
    m = model(neighborhood_neighbors=3, neighborhood_temperature=0.3, learnable_temperature=True)
    x = np.concatenate([data[v] for v in DIMS], axis=1)
    x = (x - x.mean(0)) / x.std(0)  # fit standardises the inputs, and the neighbours are found by them
    m.fit(data, epochs=3, batch_size=32, objectives={"contrastive": 1.0, "neighborhood": 1.0}, progress=False)
    assert dict(m.temperatures())["contrastive"] != pytest.approx(0.2)  # learned
    assert m.losses(data, weights=ONLY)["neighborhood"] == pytest.approx(reference_loss(m.encode(data), x, 3, 0.3), rel=1e-4)
    assert m.config.neighborhood_temperature == 0.3


def test_off_by_default_zero_without_neighbours_or_inputs():
    data = views(16)
    assert gm.DEFAULT_WEIGHTS.get("neighborhood", 0.0) == 0.0
    plain = model()
    assert plain.config.neighborhood_neighbors == 10
    assert "neighborhood" not in plain.losses(data)  # not in the default mix
    assert model(neighborhood_neighbors=0).losses(data, weights=ONLY)["neighborhood"] == 0.0
    # Recorded embeddings: no inputs to find neighbours by, no encoders to train.
    emb = plain.encode(data)
    batch = gm.Batch(embeddings=emb, mask=np.linalg.norm(emb, axis=2) > 0)
    assert plain.losses(batch, weights=ONLY)["neighborhood"] == 0.0
    both = plain.losses(batch, weights={"contrastive": 1.0, "neighborhood": 1.0})
    assert both == {**plain.losses(batch, weights={"contrastive": 1.0}), "neighborhood": 0.0}


def _neighbour_agreement(m, data, k=5) -> float:
    """How many of each row's k nearest rows by its visual embedding are
    among its k nearest by the inputs, as a fraction."""
    x = np.concatenate([data[v] for v in DIMS], axis=1)
    dist = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    by_inputs = np.argsort(dist, 1)[:, :k]
    e = m.encode(data)[:, gm.Modality.VISUAL.index].astype(np.float64)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    by_embedding = np.argsort(-sim, 1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(by_inputs, by_embedding)]))


def test_training_on_it_brings_each_modality_s_neighbours_to_the_inputs_():
    # Views of one 3-d latent, no clusters: the neighbours are fine detail
    # that every view can express.
    rng = np.random.default_rng(5)
    latent = rng.normal(size=(64, 3))
    data = {v: (latent @ rng.normal(size=(3, d)) + 0.05 * rng.normal(size=(64, d))).astype(np.float32) for v, d in DIMS.items()}
    m = model(neighborhood_neighbors=5)
    before = _neighbour_agreement(m, data)
    loss_before = m.losses(data, weights=ONLY)["neighborhood"]
    m.fit(data, epochs=120, batch_size=64, objectives=ONLY, progress=False)
    assert m.losses(data, weights=ONLY)["neighborhood"] < loss_before - 0.1
    assert _neighbour_agreement(m, data) > before + 0.1


def test_only_the_encoders_learn_from_it():
    m = model(neighborhood_neighbors=3)
    m.backward(views(16), weights=ONLY)
    grads = m.gradients()
    for name, g in grads.items():
        if name.startswith("encoder."):
            continue
        assert not np.any(g), name
    assert any(np.any(g) for name, g in grads.items() if name.startswith("encoder."))


def test_trains_reproducibly_resumes_exactly_and_is_checkpointed(tmp_path):
    make = lambda: model(neighborhood_neighbors=4, learnable_temperature=True)  # noqa: E731
    assert_option_trains_reproducibly(make, views(48), tmp_path, "neighborhood_neighbors", 4, epochs=2, batch_size=16,
                                      progress=False, objectives={"contrastive": 1.0, "neighborhood": 0.5})


def test_its_temperature_trains_reproducibly_resumes_exactly_and_is_checkpointed(tmp_path):
    make = lambda: model(neighborhood_neighbors=4, neighborhood_temperature=0.35, learnable_temperature=True)  # noqa: E731
    assert_option_trains_reproducibly(make, views(48), tmp_path, "neighborhood_temperature", 0.35, epochs=2, batch_size=16,
                                      progress=False, objectives={"contrastive": 1.0, "neighborhood": 0.5})


def test_checkpoints_without_the_field_load_with_its_default(tmp_path):
    m = model()
    path = tmp_path / "old.safetensors"
    save_without_config_fields(m, path, "neighborhood_neighbors", "neighborhood_temperature")
    assert gm.LearnableMultiModal.load(path).config == m.config
    assert m.config.neighborhood_temperature is None  # contrastive's, as before the field


@pytest.mark.parametrize(
    "value, error",
    [(-1, InvalidValueError), (2**40, InvalidValueError), (2.5, TypeError), (True, TypeError), ("5", TypeError)],
)
def test_bad_values_name_the_argument(value, error):
    with pytest.raises(error, match="neighborhood_neighbors"):
        model(neighborhood_neighbors=value)


@pytest.mark.parametrize(
    "value, error",
    [(0, InvalidValueError), (-0.1, InvalidValueError), (float("nan"), InvalidValueError), (float("inf"), InvalidValueError),
     (1e-50, InvalidValueError), ("0.2", TypeError), ([0.2], TypeError)],
)
def test_bad_temperatures_name_the_argument(value, error):
    with pytest.raises(error, match="neighborhood_temperature"):
        model(neighborhood_temperature=value)


@pytest.mark.parametrize("value", [0.0, -0.1, float("nan"), float("inf"), 1e-50])
def test_the_core_refuses_bad_temperatures_by_itself(value):
    with pytest.raises(InvalidValueError) as err:
        gm._core.Model(8, 16, 1e-3, 2, 10, 0, [6] * 7, neighborhood_temperature=value)
    assert err.value.arg == "neighborhood_temperature"


def test_a_forged_checkpoint_with_a_bad_temperature_is_a_clean_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_with_config_fields(model(), path, neighborhood_temperature=-1.0)
    with pytest.raises(gm.CheckpointError, match="neighborhood_temperature"):
        gm.LearnableMultiModal.load(path)


def test_one_row_more_neighbours_than_rows_and_missing_modalities():
    data = views(6)
    mask = np.ones((6, 7), dtype=bool)
    mask[:, 3:] = False
    mask[0, 1] = mask[1, 0] = mask[2, 2] = False  # rows sharing fewer modalities
    m = model(neighborhood_neighbors=50)
    losses = m.train_step(gm.Batch(inputs=data, mask=mask), weights=ONLY)
    assert np.isfinite(losses["neighborhood"])
    one = {v: x[:1] for v, x in data.items()}
    with pytest.raises(ValueError, match="neighborhood"):  # it compares rows: refused on one row, as contrastive is
        m.train_step(one, weights=ONLY)


def test_the_cli_and_the_recipe_s_settings_set_it(tmp_path, capsys):
    from grapheme_multimodal import uci
    from grapheme_multimodal.cli import main

    ckpt = tmp_path / "m.safetensors"
    base = cli_train_args(tmp_path, views(40), ckpt)
    options = ["--objectives", "contrastive=1,neighborhood=0.2", "--neighborhood-neighbors", "3"]
    assert main(base + options) == 0, capsys.readouterr().err
    assert gm.LearnableMultiModal.load(ckpt).config.neighborhood_neighbors == 3
    assert main(base + ["--neighborhood-neighbors", "-1"]) == 2
    assert "--neighborhood-neighbors: " in capsys.readouterr().err
    for flag, expected in (("0.3", 0.3), ("0", None)):  # 0: contrastive's
        assert main(base + options + ["--overwrite", "--neighborhood-temperature", flag]) == 0, capsys.readouterr().err
        assert gm.LearnableMultiModal.load(ckpt).config.neighborhood_temperature == expected
    assert main(base + ["--overwrite", "--neighborhood-temperature", "-1"]) == 2
    assert "--neighborhood-temperature: " in capsys.readouterr().err
    assert "neighborhood" not in uci.RECIPE_OBJECTIVES  # an option, not the recipe (docs/objectives.md)
    assert uci.TrainingSettings(neighborhood_neighbors=4).model_options()["neighborhood_neighbors"] == 4
    assert uci.TrainingSettings(neighborhood_temperature=0.3).model_options()["neighborhood_temperature"] == 0.3

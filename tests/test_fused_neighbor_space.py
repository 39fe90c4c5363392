"""``fused_neighbor_space``: where ``fused_contrastive`` finds each event's
nearest events. ``"embeddings"`` (the config's default, the behaviour before
the option) ranks them by the modality embeddings; ``"inputs"`` (the
recipe's) by the encoder inputs, as ``contrastive_neighbors`` does. The
positives are constants of the batch, so the gradient is the one checked in
``rust/core/tests/core/gradients.rs``; the draws are checked in
``rust/core/tests/core/fused_contrastive.rs``."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import assert_option_trains_reproducibly, save_without_config_fields, small_model, two_cluster_views

DIMS = {"visual": 6, "auditory": 9, "linguistic": 4}
ONLY = {"fused_contrastive": 1.0}


def model(**changes):
    return small_model(DIMS, **{"fused_neighbors": 3, **changes})


def views(n=24, seed=0):
    return two_cluster_views(DIMS, n, seed)


def input_neighbours(data, k):
    """Each row's k nearest rows by mean squared difference over the concatenated inputs."""
    x = np.concatenate([data[m].astype(np.float64) for m in DIMS], axis=1)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return [list(np.argsort(row, kind="stable")[:k]) for row in d]


def test_default_is_the_embeddings_and_inputs_take_the_inputs_nearest_rows():
    data = views()
    assert gm.LearnableMultiModalConfig().fused_neighbor_space == "embeddings"
    by_inputs = model(fused_neighbor_space="inputs")
    *_, rows, _, _, positives = by_inputs._core.objective_draws(by_inputs._learning_args(data, None, None)[0])
    assert list(rows) == list(range(24))
    expected = input_neighbours(data, 3)
    assert [list(p) for p in positives] == [[r] + expected[r] for r in range(24)]
    assert all(p % 2 == r % 2 for r, pos in enumerate(positives) for p in pos), "the inputs' clusters"
    by_embeddings = model()
    *_, other = by_embeddings._core.objective_draws(by_embeddings._learning_args(data, None, None)[0])
    assert [list(p) for p in other] != [list(p) for p in positives]
    # The loss follows the positives; with no neighbours the space does not matter.
    assert by_inputs.losses(data, weights=ONLY)["fused_contrastive"] != pytest.approx(
        by_embeddings.losses(data, weights=ONLY)["fused_contrastive"], abs=1e-4)
    assert model(fused_neighbors=0, fused_neighbor_space="inputs").losses(data, weights=ONLY) == model(fused_neighbors=0).losses(data, weights=ONLY)


def test_recorded_embeddings_have_no_inputs_so_the_embeddings_decide():
    m = model(fused_neighbor_space="inputs")
    emb = m.encode(views(16))
    batch = gm.Batch(embeddings=emb, mask=np.linalg.norm(emb, axis=2) > 0)
    assert m.losses(batch, weights=ONLY) == model().losses(batch, weights=ONLY)


def test_trains_reproducibly_resumes_exactly_and_is_checkpointed(tmp_path):
    make = lambda: model(fused_neighbor_space="inputs")  # noqa: E731
    assert_option_trains_reproducibly(make, views(48), tmp_path, "fused_neighbor_space", "inputs", epochs=2, batch_size=16, progress=False)


def test_checkpoints_without_the_field_load_with_the_embeddings(tmp_path):
    m = model()
    path = tmp_path / "old.safetensors"
    save_without_config_fields(m, path, "fused_neighbor_space")
    assert gm.LearnableMultiModal.load(path).config == m.config


@pytest.mark.parametrize("value", ["input", "Inputs", "", None, 1, ["inputs"]])
def test_bad_values_name_the_argument(value):
    with pytest.raises(InvalidValueError, match="fused_neighbor_space"):
        model(fused_neighbor_space=value)


def test_missing_modalities_and_more_neighbours_than_rows():
    data = views(6)
    mask = np.ones((6, 7), dtype=bool)
    mask[:, 3:] = False
    mask[0, 1] = mask[1, 0] = mask[2, 2] = False
    m = model(fused_neighbors=50, fused_neighbor_space="inputs")
    before = m.state_dict()
    losses = m.train_step(gm.Batch(inputs=data, mask=mask), weights={"fused_contrastive": 1.0, "contrastive": 1.0})
    assert np.isfinite(losses["fused_contrastive"])
    assert any(not np.array_equal(v, before[k]) for k, v in m.state_dict().items())

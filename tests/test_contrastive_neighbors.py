"""``contrastive_neighbors``: the contrastive objective counts each row's
nearest rows of the batch, by their inputs, as partial positives. Off by
default (the plain InfoNCE, bit for bit); on, it changes the loss of encoded
batches only, trains reproducibly, resumes exactly and is carried by
checkpoints. The gradient is checked against finite differences in
``rust/core/tests/core/gradients.rs`` and ``objectives.rs``."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import assert_resumes_exactly, save_without_config_fields, small_model, two_cluster_views

DIMS = {"visual": 6, "auditory": 9, "linguistic": 4}
ONLY = {"contrastive": 1.0}


def model(**changes):
    return small_model(DIMS, **changes)


def views(n=48, seed=0):
    return two_cluster_views(DIMS, n, seed)


def test_off_by_default_and_weight_zero_is_the_plain_loss():
    data = views()
    plain = model()
    assert (plain.config.contrastive_neighbors, plain.config.contrastive_neighbor_weight) == (0, 0.2)
    zero_weight = model(contrastive_neighbors=4, contrastive_neighbor_weight=0.0)
    assert zero_weight.losses(data, weights=ONLY) == pytest.approx(plain.losses(data, weights=ONLY), abs=1e-6)
    on = model(contrastive_neighbors=4)
    assert on.losses(data, weights=ONLY)["contrastive"] != pytest.approx(plain.losses(data, weights=ONLY)["contrastive"], abs=1e-4)


def test_recorded_embeddings_have_no_inputs_to_take_neighbours_from():
    m, plain = model(contrastive_neighbors=4), model()
    emb = m.encode(views(16))
    mask = np.linalg.norm(emb, axis=2) > 0
    batch = gm.Batch(embeddings=emb, mask=mask)
    assert m.losses(batch, weights=ONLY) == plain.losses(batch, weights=ONLY)


def test_trains_reproducibly_resumes_exactly_and_is_checkpointed(tmp_path):
    data = views(48)
    kwargs = dict(epochs=2, batch_size=16, progress=False)
    make = lambda: model(contrastive_neighbors=3, contrastive_neighbor_weight=0.4)  # noqa: E731
    a, b = make(), make()
    a.fit(data, **kwargs)
    b.fit(data, **kwargs)
    for name, value in a.state_dict().items():
        assert value.tobytes() == b.state_dict()[name].tobytes(), name
    assert_resumes_exactly(make, data, tmp_path, **kwargs)


def test_checkpoints_without_the_fields_load_with_them_off(tmp_path):
    m = model()
    path = tmp_path / "old.safetensors"
    save_without_config_fields(m, path, "contrastive_neighbors", "contrastive_neighbor_weight")
    assert gm.LearnableMultiModal.load(path).config == m.config


@pytest.mark.parametrize(
    "changes, error, arg",
    [
        ({"contrastive_neighbors": -1}, InvalidValueError, "contrastive_neighbors"),
        ({"contrastive_neighbors": 2**40}, InvalidValueError, "contrastive_neighbors"),
        ({"contrastive_neighbors": 2.5}, TypeError, "contrastive_neighbors"),
        ({"contrastive_neighbors": True}, TypeError, "contrastive_neighbors"),
        ({"contrastive_neighbor_weight": 1.0}, InvalidValueError, "contrastive_neighbor_weight"),
        ({"contrastive_neighbor_weight": -0.1}, InvalidValueError, "contrastive_neighbor_weight"),
        ({"contrastive_neighbor_weight": float("nan")}, InvalidValueError, "contrastive_neighbor_weight"),
    ],
)
def test_bad_values_name_the_argument(changes, error, arg):
    with pytest.raises(error, match=arg):
        model(**changes)


def test_more_neighbours_than_rows_and_missing_modalities():
    data = views(6)
    mask = np.ones((6, 7), dtype=bool)
    mask[:, 3:] = False
    mask[0, 1] = mask[1, 0] = mask[2, 2] = False  # rows sharing fewer modalities
    m = model(contrastive_neighbors=50)
    losses = m.train_step(gm.Batch(inputs=data, mask=mask), weights=ONLY)
    assert np.isfinite(losses["contrastive"])

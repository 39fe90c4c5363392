"""``encoder_objectives``: which objectives' gradients reach the encoders.
The others train only what lies downstream of the embeddings — exactly as
on recorded embeddings (a stop-gradient). ``None`` (the default) = all."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import cli_train_args, save_without_config_fields

DIMS = {"visual": 6, "auditory": 9, "linguistic": 4}


def model(**changes):
    options = dict(embed_dim=8, hidden_dim=16, num_heads=2, input_dims=DIMS, seed=5, binder_kind="bilinear",
                   encoder_hidden=(12,), encoder_output_dim=10, shared_head=(10, 8))
    options.update(changes)
    return gm.LearnableMultiModal(**options)


def views(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, d)).astype(np.float32) for m, d in DIMS.items()}


def grads_of(m, batch, weights):
    m.zero_grad()
    m.backward(batch, weights=weights)
    return m.gradients()


def is_encoder_side(name):
    return name.startswith(("encoder.", "head."))


def test_kept_objectives_train_downstream_exactly_as_on_recorded_embeddings():
    data = views()
    kept = model(encoder_objectives=("contrastive",))
    plain = model()
    emb = plain.encode(data)
    recorded = gm.Batch(embeddings=emb, mask=np.linalg.norm(emb, axis=2) > 0)
    for objective in ("fused_contrastive", "binding", "cross_modal"):
        got = grads_of(kept, data, {objective: 1.0})
        want = grads_of(plain, recorded, {objective: 1.0})
        for name, g in got.items():
            if is_encoder_side(name):
                assert not g.any(), f"{objective} reached {name}"
            else:
                np.testing.assert_allclose(g, want[name], rtol=1e-5, atol=1e-7, err_msg=f"{objective}: {name}")
    # In a mix, the encoders get the contrastive gradient alone.
    mix = grads_of(kept, data, {"contrastive": 1.0, "fused_contrastive": 1.0, "binding": 0.5})
    alone = grads_of(plain, data, {"contrastive": 1.0})
    for name, g in mix.items():
        if is_encoder_side(name):
            np.testing.assert_allclose(g, alone[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_default_is_every_objective_and_the_names_are_canonical():
    assert model().config.encoder_objectives is None
    c = model(encoder_objectives=["binding", "contrastive", "binding"]).config
    assert c.encoder_objectives == ("contrastive", "binding")
    everything = model(encoder_objectives=tuple(gm.OBJECTIVES))
    data = views()
    g1, g2 = grads_of(everything, data, {"fused_contrastive": 1.0}), grads_of(model(), data, {"fused_contrastive": 1.0})
    assert all(np.array_equal(g1[n], g2[n]) for n in g1)


def test_no_objective_to_the_encoders_leaves_them_unchanged_by_training():
    m = model(encoder_objectives=())
    before = {n: v.copy() for n, v in m.state_dict().items()}
    m.fit(views(32), epochs=2, batch_size=16, progress=False)
    after = m.state_dict()
    for name, value in before.items():
        assert np.array_equal(value, after[name]) == is_encoder_side(name), name


def test_checkpoints_carry_it_and_older_ones_load(tmp_path):
    m = model(encoder_objectives=("contrastive", "binding"))
    path = tmp_path / "m.safetensors"
    m.save(path)
    assert gm.LearnableMultiModal.load(path).config == m.config
    save_without_config_fields(m, path, "encoder_objectives")
    assert gm.LearnableMultiModal.load(path).config.encoder_objectives is None


@pytest.mark.parametrize(
    "value, error",
    [(["contrastive", "nope"], InvalidValueError), ("contrastive", TypeError), (3, TypeError)],
)
def test_bad_values_name_the_argument(value, error):
    with pytest.raises(error, match="encoder_objectives"):
        model(encoder_objectives=value)


def test_the_cli_sets_the_learning_options(tmp_path, capsys):
    from grapheme_multimodal.cli import main

    ckpt = tmp_path / "m.safetensors"
    base = cli_train_args(tmp_path, views(40), ckpt)
    options = ["--encoder-objectives", "binding,contrastive", "--contrastive-neighbors", "3", "--contrastive-neighbor-weight", "0.3"]
    assert main(base + options) == 0, capsys.readouterr().err
    c = gm.LearnableMultiModal.load(ckpt).config
    assert (c.encoder_objectives, c.contrastive_neighbors, c.contrastive_neighbor_weight) == (("contrastive", "binding"), 3, 0.3)
    assert main(base) == 0
    assert gm.LearnableMultiModal.load(ckpt).config.encoder_objectives is None, "default: all"
    assert main(base + ["--encoder-objectives", "contrastive,typo"]) == 2
    assert "--encoder-objectives: unknown objectives ['typo']" in capsys.readouterr().err

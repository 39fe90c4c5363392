"""Hostile audit (s58) of the newer API: ensembles (save / load / embed),
hidden features, the reconstruction decoders, weight averaging and resume.
Each test pins a defect found and fixed: it failed before its fix."""

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import CheckpointError, LearnableMultiModal
from grapheme_multimodal.checkpoint import checkpoint_state
from grapheme_multimodal.cli import main
from grapheme_multimodal.ensemble import ENSEMBLE_FORMAT, save_ensemble
from grapheme_multimodal.io import write_tagged_safetensors

DIMS = {"visual": 5, "auditory": 3}


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {m: (z @ rng.normal(size=(3, d))).astype(np.float32) for m, d in DIMS.items()}


def _model(seed=0, **options):
    options = {"embed_dim": 8, "hidden_dim": 8, "num_heads": 2, "encoder_hidden": (6,), **options}
    model = LearnableMultiModal(input_dims=DIMS, seed=seed, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(_data(), epochs=1, batch_size=16, progress=False)
    return model


@pytest.fixture(scope="module")
def pair():
    return [_model(0), _model(1)]


def test_an_ensemble_of_one_gives_its_members_hidden_features(tmp_path, capsys):
    """EnsembleEmbedder of one member L2-normalised its hidden features, while
    ``grapheme-mm embed --hidden-features`` of an ensemble file of that one
    member wrote them raw (its member's bits), though the README says the two
    are the same; embed_views and embed_fused of an ensemble of one were the
    member's bits already."""
    from grapheme_multimodal.evaluation import EnsembleEmbedder, ModelEmbedder

    model = _model(0)
    member = ModelEmbedder(model, {"v": "visual", "a": "auditory"})
    views = {"v": _data()["visual"], "a": _data()["auditory"]}
    alone, one = member.hidden_features(views), EnsembleEmbedder([member]).hidden_features(views)
    for v in views:
        np.testing.assert_array_equal(one[v], alone[v])
    # and the command line's embedding of an ensemble file of that member: the same features
    save_ensemble([model], tmp_path / "one.gme")
    np.save(tmp_path / "v.npy", views["v"])
    code = main(["embed", str(tmp_path / "one.gme"), "-m", f"visual={tmp_path / 'v.npy'}",
                 "-o", str(tmp_path / "e.npy"), "--hidden-features", str(tmp_path / "h.npy")])
    assert code == 0, capsys.readouterr().err
    np.testing.assert_array_equal(np.load(tmp_path / "h.npy")[:, 0], one["v"])


def test_a_members_missing_tensor_is_named(pair, tmp_path):
    """One member's tensor left out of an ensemble file was refused as a
    forged list of members ("2 members listed, but the tensors of members[0]
    to members[1] alone take 302,016 bytes, more than ..."), with nothing said
    of which tensor is missing."""
    tensors, metas = {}, []
    for j, model in enumerate(pair):
        state, meta = checkpoint_state(model, False)
        tensors.update({f"member/{j}/{k}": v for k, v in state.items()})
        metas.append(meta)
    gone = "member/1/param/encoder.auditory.0.weight"
    assert gone in tensors
    del tensors[gone]
    path = tmp_path / "e.gme"
    write_tagged_safetensors(path, tensors, ENSEMBLE_FORMAT, {"library_version": metas[0]["library_version"], "members": metas})
    with pytest.raises(CheckpointError, match="missing tensors \\['member/1/param/encoder.auditory.0.weight'\\]"):
        gm.load_ensemble(path)

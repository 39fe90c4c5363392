"""Small defects the s59 audits found and left: an ensemble's repr and save, the
optimizer's step on zero gradients, 0-d array numbers, reset_optimizer, ``grapheme-mm info``."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm

pytestmark = pytest.mark.filterwarnings("ignore::grapheme_multimodal.UntrainedModalityWarning")


def _member(seed: int):
    """A small untrained member over views a (visual) and b (auditory)."""
    from grapheme_multimodal import evaluation

    model = gm.LearnableMultiModal(input_dims={"visual": 5, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2,
                                   seed=seed)
    return evaluation.ModelEmbedder(model, {"a": "visual", "b": "auditory"})


@pytest.fixture
def ensemble():
    from grapheme_multimodal import evaluation

    return evaluation.EnsembleEmbedder([_member(0), _member(1)])


@pytest.mark.parametrize("members, shown", [((), "EnsembleEmbedder(0 members)"),
                                            (None, "EnsembleEmbedder(members=NoneType)"),
                                            ([1, 2], "EnsembleEmbedder(members=list)")])
def test_an_ensembles_repr_never_raises_whatever_its_members_became(ensemble, members, shown):
    """Before: ``ensemble.members = ()`` made ``repr(ensemble)`` raise IndexError (a traceback or a
    notebook could not show the object). Now: the repr says what the members are; the next call
    that needs them refuses them, as before."""
    assert repr(ensemble) == "EnsembleEmbedder(2 members, views=['a', 'b'])"
    ensemble.members = members
    assert repr(ensemble) == shown
    with pytest.raises(gm.InvalidValueError, match="members"):
        ensemble.models


@pytest.mark.parametrize("given, hint", [
    (lambda e: e, r"got EnsembleEmbedder; an EnsembleEmbedder's models are ensemble\.models"),
    (lambda e: e.members, r"models\[0\]: expected a LearnableMultiModal, got ModelEmbedder; .*ensemble\.models"),
    (lambda e: e.members[0], r"got ModelEmbedder; a ModelEmbedder's model is embedder\.model"),
])
def test_save_ensemble_given_embedders_names_where_their_models_are(ensemble, tmp_path, given, hint):
    """Before: ``gm.save_ensemble(ensemble, path)`` said only "expected a sequence of
    LearnableMultiModal, got EnsembleEmbedder" (its members: "got ModelEmbedder"). Now: the
    TypeError says to give ``ensemble.models`` (or ``embedder.model``); nothing is written, and
    ``ensemble.models`` saves."""
    path = tmp_path / "ensemble.safetensors"
    with pytest.raises(TypeError, match=hint) as refused:
        gm.save_ensemble(given(ensemble), path)
    assert isinstance(refused.value, gm.InvalidTypeError) and refused.value.arg.startswith("models")
    assert not path.exists()
    gm.save_ensemble(ensemble.models, path)
    assert len(gm.load_ensemble(path)) == 2

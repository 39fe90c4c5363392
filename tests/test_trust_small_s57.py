"""Defects an audit (session 57) found and left, each met as a user meets
it; every test says what was seen before."""

from __future__ import annotations

import re

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.stopping import fit_with_stopping

pd = pytest.importorskip("pandas")


def _model(**kwargs) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2,
                                  seed=0, **kwargs)


def _weights(model: gm.LearnableMultiModal) -> dict:
    return {k: np.array(v, copy=True) for k, v in model.state_dict().items()}


# ------------------------------------------------------------------ 1. a frame with repeated column names
RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 3))
A = RNG.normal(size=(24, 2))
REPEATED = r"^{}: column names \['a'\] appear more than once \('a' at columns 0 and 2\); expected unique column names"


@pytest.mark.parametrize("call", ["fit_normalization", "encode", "encode_and_fuse", "hidden_features", "fit",
                                  "fit_validation", "fit_with_stopping"])
def test_a_frame_with_repeated_column_names_is_refused_naming_them_and_leaves_the_model_as_it_was(call) -> None:
    """Before: every call took it and fit learned its names as ('a', 'b',
    'a'): the same frame with its two a columns swapped later passed the
    check of a frame's names against the learned ones, read as other
    features without a word (the estimator refused it)."""
    frame = pd.DataFrame(X, columns=["a", "b", "a"])
    model = _model(encoder_hidden=(4,))
    before = _weights(model)
    name = "inputs['visual']"
    with pytest.raises(gm.InvalidValueError) as err:
        if call == "fit":
            name = "data['visual']"
            model.fit({"visual": frame, "auditory": A}, epochs=1, progress=False)
        elif call == "fit_validation":
            name = "validation['visual']"
            model.fit({"visual": X, "auditory": A}, validation={"visual": frame, "auditory": A}, epochs=1,
                      progress=False)
        elif call == "fit_with_stopping":
            fit_with_stopping(model, {"visual": frame, "auditory": A}, validation_fraction=0.25, patience=1,
                                 monitor="loss", epochs=1, progress=False)
        else:
            getattr(model, call)({"visual": frame})
    assert err.match(REPEATED.format(re.escape(name)))
    assert err.value.arg == name
    assert model.input_columns("visual") is None and model.epochs_trained == 0
    after = _weights(model)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)


def test_the_estimator_says_where_the_repeated_names_are_as_the_model_does() -> None:
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    frame = pd.DataFrame(X, columns=["a", "b", "a"])
    with pytest.raises(gm.InvalidValueError, match=REPEATED.format(r"Xs\[1\]")):
        MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, random_state=0).fit([A, frame])


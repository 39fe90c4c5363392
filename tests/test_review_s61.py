"""What the lead's own review of session 61 pinned."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm


def test_rows_near_float32s_limit_encode_in_a_deep_model_but_training_refuses_them_as_the_readme_says():
    """README ("Finite inputs give finite outputs or a NonFiniteError"): a
    model with hidden encoder layers rescales rows of about 3e38 in
    ``encode`` only; ``hidden_features`` and training refuse them, naming
    the row, and a refused step changes no weight."""
    x = np.random.default_rng(0).choice([3e38, -3e38, 1e38, 0.0], size=(8, 18))
    model = gm.LearnableMultiModal(encoder_hidden=(32,), shared_head=(64,), encoder_skip=True)
    assert np.isfinite(model.encode({"visual": x})).all()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    for call in (lambda: model.hidden_features({"visual": x}), lambda: model.losses({"visual": x, "auditory": x}),
                 lambda: model.train_step({"visual": x, "auditory": x})):
        with pytest.raises(gm.NonFiniteError, match=r"inputs\['visual'\]: row 5 overflows float32 in the encoder"):
            call()
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)

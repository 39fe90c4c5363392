"""The small three-modality model and views shared by the tests of the
record of trained modalities (test_untrained_modality, test_trust_record)."""

import numpy as np

import grapheme_multimodal as gm

DIMS = {"visual": 6, "auditory": 5, "linguistic": 4}
N = 24


def make(**changes) -> gm.LearnableMultiModal:
    """A small model with a hidden encoder layer; ``changes`` override its options."""
    options = dict(embed_dim=8, hidden_dim=16, num_heads=2, input_dims=DIMS, seed=3, encoder_hidden=(8,))
    return gm.LearnableMultiModal(**{**options, **changes})


def views(n: int = N, seed: int = 0, names=("visual", "auditory")) -> dict:
    """``n`` rows of the named modalities, standard normal."""
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, DIMS[m])).astype(np.float32) for m in names}
